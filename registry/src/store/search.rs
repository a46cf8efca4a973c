//! MLflow's search grammar: filters (`metrics.rmse < 1 AND params.model = 'lr'`), `order_by`
//! clauses (`metrics.rmse DESC`) and page tokens.
//!
//! A filter is comparisons joined by `AND`. The left side is an identifier: `<type>.<key>` with
//! type `metrics`/`metric`, `params`/`param`/`parameters`, `tags`/`tag`,
//! `attributes`/`attribute`/`attr`/`run`, `datasets`/`dataset`, or a bare attribute name; a key
//! with special characters is quoted with double quotes or backticks (`tags."user-name"`). The
//! operators are `=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`, `LIKE`, `ILIKE`, `IN (...)`,
//! `NOT IN (...)`, `IS NULL`, `IS NOT NULL`; values are single-quoted strings (double quotes are
//! accepted too), numbers, or parenthesized lists of strings.

use base64::Engine as _;

use crate::error::{RegistryError, Result};

/// What a filter or order key refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// `metrics.<key>`: the latest value of a metric.
    Metric,
    /// `params.<key>`.
    Param,
    /// `tags.<key>`.
    Tag,
    /// `attributes.<name>` or a bare name.
    Attribute,
    /// `datasets.<name|digest|context>`.
    Dataset,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE` (case-sensitive)
    Like,
    /// `ILIKE` (case-insensitive)
    ILike,
    /// `IN (...)`
    In,
    /// `NOT IN (...)`
    NotIn,
    /// `IS NULL`
    IsNull,
    /// `IS NOT NULL`
    IsNotNull,
}

impl Op {
    /// The SQL operator for the plain comparisons (`=`, `!=`, `<`, `<=`, `>`, `>=`).
    pub fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
            Op::ILike => "ILIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
            Op::IsNull => "IS NULL",
            Op::IsNotNull => "IS NOT NULL",
        }
    }

    /// Whether this is one of `<`, `<=`, `>`, `>=`.
    pub fn is_ordering(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

/// The right side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A quoted string.
    Str(String),
    /// A number.
    Num(f64),
    /// A parenthesized list (of `IN`).
    List(Vec<String>),
    /// Nothing (`IS NULL`, `IS NOT NULL`).
    None,
}

impl Value {
    /// The string, or an error naming the key.
    pub fn as_str(&self, key: &str) -> Result<&str> {
        match self {
            Value::Str(s) => Ok(s),
            _ => Err(RegistryError::invalid(format!(
                "Expected a quoted string value for '{key}'"
            ))),
        }
    }

    /// The number (a numeric string is accepted too), or an error naming the key.
    pub fn as_num(&self, key: &str) -> Result<f64> {
        match self {
            Value::Num(n) => Ok(*n),
            Value::Str(s) => s.trim().parse().map_err(|_| {
                RegistryError::invalid(format!("Expected a numeric value for '{key}'"))
            }),
            _ => Err(RegistryError::invalid(format!(
                "Expected a numeric value for '{key}'"
            ))),
        }
    }
}

/// One comparison of a filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// What the key refers to.
    pub kind: KeyKind,
    /// The key (metric/param/tag key, attribute name).
    pub key: String,
    /// The operator.
    pub op: Op,
    /// The value.
    pub value: Value,
}

/// One `order_by` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    /// What the key refers to.
    pub kind: KeyKind,
    /// The key.
    pub key: String,
    /// Ascending (the default) or descending.
    pub ascending: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Str(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '+' | ':' | '/')
}

fn tokenize(s: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let err = |msg: &str| RegistryError::invalid(format!("Error on parsing filter '{s}': {msg}"));
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '=' => {
                i += if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
                out.push(Tok::Op("="));
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Op("!="));
                i += 2
            }
            '<' => match chars.get(i + 1) {
                Some('=') => {
                    out.push(Tok::Op("<="));
                    i += 2
                }
                Some('>') => {
                    out.push(Tok::Op("!="));
                    i += 2
                }
                _ => {
                    out.push(Tok::Op("<"));
                    i += 1
                }
            },
            '>' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Tok::Op(">="));
                    i += 2
                } else {
                    out.push(Tok::Op(">"));
                    i += 1
                }
            }
            '\'' | '"' | '`' => {
                let quote = c;
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err("unterminated quoted text")),
                        Some('\\') if chars.get(i + 1).is_some() => {
                            text.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(&q) if q == quote => {
                            if chars.get(i + 1) == Some(&quote) {
                                text.push(quote);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(if quote == '\'' {
                    Tok::Str(text)
                } else {
                    Tok::Quoted(text)
                });
            }
            c if is_word_char(c) => {
                let start = i;
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
            other => return Err(err(&format!("unexpected character '{other}'"))),
        }
    }
    Ok(out)
}

fn kind_of(prefix: &str) -> Option<KeyKind> {
    Some(match prefix {
        "metric" | "metrics" => KeyKind::Metric,
        "param" | "params" | "parameter" | "parameters" => KeyKind::Param,
        "tag" | "tags" => KeyKind::Tag,
        "attribute" | "attributes" | "attr" | "run" => KeyKind::Attribute,
        "dataset" | "datasets" => KeyKind::Dataset,
        _ => return None,
    })
}

/// Reads an identifier at `toks[*i]`: `type.key`, `type."quoted key"`, a bare name, or a quoted
/// bare name.
fn parse_identifier(toks: &[Tok], i: &mut usize, input: &str) -> Result<(KeyKind, String)> {
    let bad = || RegistryError::invalid(format!("Invalid identifier in '{input}'"));
    match toks.get(*i) {
        Some(Tok::Word(w)) => {
            *i += 1;
            if let Some(prefix) = w.strip_suffix('.') {
                // `tags."a b"` / ``tags.`a b` ``
                let kind = kind_of(prefix).ok_or_else(|| invalid_entity(prefix))?;
                match toks.get(*i) {
                    Some(Tok::Quoted(q)) | Some(Tok::Str(q)) => {
                        *i += 1;
                        Ok((kind, q.clone()))
                    }
                    _ => Err(bad()),
                }
            } else if let Some((prefix, key)) = w.split_once('.') {
                let kind = kind_of(prefix).ok_or_else(|| invalid_entity(prefix))?;
                Ok((kind, key.to_owned()))
            } else {
                Ok((KeyKind::Attribute, w.clone()))
            }
        }
        Some(Tok::Quoted(q)) => {
            *i += 1;
            Ok((KeyKind::Attribute, q.clone()))
        }
        _ => Err(bad()),
    }
}

fn invalid_entity(prefix: &str) -> RegistryError {
    RegistryError::invalid(format!(
        "Invalid entity type '{prefix}'. Valid values are ['metric', 'parameter', 'tag', \
         'attribute', 'dataset']"
    ))
}

fn word_is(tok: Option<&Tok>, kw: &str) -> bool {
    matches!(tok, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

/// Parses a filter into its comparisons (an empty or blank filter has none).
pub fn parse_filter(filter: Option<&str>) -> Result<Vec<Comparison>> {
    let Some(input) = filter.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(Vec::new());
    };
    let toks = tokenize(input)?;
    let err =
        |msg: &str| RegistryError::invalid(format!("Error on parsing filter '{input}': {msg}"));
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        let (kind, key) = parse_identifier(&toks, &mut i, input)?;
        let (op, value) = match toks.get(i) {
            Some(Tok::Op(o)) => {
                i += 1;
                let op = match *o {
                    "=" => Op::Eq,
                    "!=" => Op::Ne,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    ">" => Op::Gt,
                    _ => Op::Ge,
                };
                let value = match toks.get(i) {
                    Some(Tok::Str(s)) | Some(Tok::Quoted(s)) => Value::Str(s.clone()),
                    Some(Tok::Word(w)) => Value::Num(
                        w.parse()
                            .map_err(|_| err(&format!("expected a value, got '{w}'")))?,
                    ),
                    _ => return Err(err("expected a value")),
                };
                i += 1;
                (op, value)
            }
            Some(Tok::Word(w)) => {
                let w = w.to_ascii_uppercase();
                i += 1;
                match w.as_str() {
                    "LIKE" | "ILIKE" => {
                        let value = match toks.get(i) {
                            Some(Tok::Str(s)) | Some(Tok::Quoted(s)) => Value::Str(s.clone()),
                            _ => return Err(err("expected a quoted pattern")),
                        };
                        i += 1;
                        (if w == "LIKE" { Op::Like } else { Op::ILike }, value)
                    }
                    "IS" => {
                        let not = word_is(toks.get(i), "NOT");
                        if not {
                            i += 1;
                        }
                        if !word_is(toks.get(i), "NULL") {
                            return Err(err("expected NULL"));
                        }
                        i += 1;
                        (if not { Op::IsNotNull } else { Op::IsNull }, Value::None)
                    }
                    "IN" | "NOT" => {
                        let op = if w == "NOT" {
                            if !word_is(toks.get(i), "IN") {
                                return Err(err("expected IN after NOT"));
                            }
                            i += 1;
                            Op::NotIn
                        } else {
                            Op::In
                        };
                        if toks.get(i) != Some(&Tok::LParen) {
                            return Err(err("expected '(' after IN"));
                        }
                        i += 1;
                        let mut items = Vec::new();
                        loop {
                            match toks.get(i) {
                                Some(Tok::Str(s)) | Some(Tok::Quoted(s)) => items.push(s.clone()),
                                Some(Tok::Word(w)) => items.push(w.clone()),
                                _ => return Err(err("expected a value in the list")),
                            }
                            i += 1;
                            match toks.get(i) {
                                Some(Tok::Comma) => i += 1,
                                Some(Tok::RParen) => {
                                    i += 1;
                                    break;
                                }
                                _ => return Err(err("expected ',' or ')' in the list")),
                            }
                        }
                        (op, Value::List(items))
                    }
                    other => return Err(err(&format!("invalid comparator '{other}'"))),
                }
            }
            _ => return Err(err("expected a comparator")),
        };
        out.push(Comparison {
            kind,
            key,
            op,
            value,
        });
        match toks.get(i) {
            None => break,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("AND") => i += 1,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("OR") => {
                return Err(err("OR is not supported; only AND"));
            }
            _ => return Err(err("expected AND")),
        }
    }
    Ok(out)
}

/// Parses one `order_by` clause: an identifier, then `ASC` or `DESC` (any case).
pub fn parse_order_by(clause: &str) -> Result<OrderBy> {
    let toks = tokenize(clause.trim())?;
    let mut i = 0;
    let (kind, key) = parse_identifier(&toks, &mut i, clause)?;
    let ascending = match toks.get(i) {
        None => true,
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("ASC") => {
            i += 1;
            true
        }
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("DESC") => {
            i += 1;
            false
        }
        _ => {
            return Err(RegistryError::invalid(format!(
                "Invalid order_by clause '{clause}'. Could not be parsed."
            )));
        }
    };
    if i != toks.len() {
        return Err(RegistryError::invalid(format!(
            "Invalid order_by clause '{clause}'. Could not be parsed."
        )));
    }
    Ok(OrderBy {
        kind,
        key,
        ascending,
    })
}

/// Parses every `order_by` clause, refusing the same key twice.
pub fn parse_order_by_list(clauses: &[String]) -> Result<Vec<OrderBy>> {
    let mut out: Vec<OrderBy> = Vec::new();
    for c in clauses.iter().filter(|c| !c.trim().is_empty()) {
        let ob = parse_order_by(c)?;
        if out.iter().any(|o| o.kind == ob.kind && o.key == ob.key) {
            return Err(RegistryError::invalid(format!(
                "`order_by` contains duplicate fields: {clauses:?}"
            )));
        }
        out.push(ob);
    }
    Ok(out)
}

/// A page token: base64 of `{"offset": N}` (MLflow's own format; clients pass it back as is).
pub fn page_token(offset: i64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

/// The offset in a page token (0 when absent).
pub fn parse_page_token(token: Option<&str>) -> Result<i64> {
    let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let bad = || RegistryError::invalid(format!("Invalid page token '{token}'."));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(token))
        .map_err(|_| bad())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    match v.get("offset").and_then(|o| o.as_i64()) {
        Some(o) if o >= 0 => Ok(o),
        _ => Err(bad()),
    }
}

/// Checks a requested page size against a default and a maximum.
pub fn page_size(max_results: Option<i64>, default: i64, max: i64) -> Result<i64> {
    match max_results {
        None => Ok(default),
        Some(n) if n < 1 => Err(RegistryError::invalid(format!(
            "Invalid value for max_results. It must be a positive integer, but got {n}"
        ))),
        Some(n) if n > max => Err(RegistryError::invalid(format!(
            "Invalid value for request parameter max_results. It must be at most {max}, but got \
             value {n}"
        ))),
        Some(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(kind: KeyKind, key: &str, op: Op, value: Value) -> Comparison {
        Comparison {
            kind,
            key: key.into(),
            op,
            value,
        }
    }

    #[test]
    fn filters() {
        let f = parse_filter(Some(
            "metrics.rmse < 1 and params.model = 'lr' AND tags.\"user-name\" != 'x'",
        ))
        .unwrap();
        assert_eq!(
            f,
            vec![
                c(KeyKind::Metric, "rmse", Op::Lt, Value::Num(1.0)),
                c(KeyKind::Param, "model", Op::Eq, Value::Str("lr".into())),
                c(KeyKind::Tag, "user-name", Op::Ne, Value::Str("x".into())),
            ]
        );
        let f = parse_filter(Some(
            "attributes.run_id IN ('a','b') and tags.mlflow.runName LIKE 'r%' and \
             metrics.`a b`>=-1.5e2 and params.p IS NOT NULL and run_name ILIKE '%X%'",
        ))
        .unwrap();
        assert_eq!(f[0].value, Value::List(vec!["a".into(), "b".into()]));
        assert_eq!(f[1].key, "mlflow.runName");
        assert_eq!(f[2], c(KeyKind::Metric, "a b", Op::Ge, Value::Num(-150.0)));
        assert_eq!(f[3].op, Op::IsNotNull);
        assert_eq!(
            f[4],
            c(
                KeyKind::Attribute,
                "run_name",
                Op::ILike,
                Value::Str("%X%".into())
            )
        );
        let f = parse_filter(Some("run_id NOT IN ('a') AND name = 'it''s'")).unwrap();
        assert_eq!(f[0].op, Op::NotIn);
        assert_eq!(f[1].value, Value::Str("it's".into()));
        assert!(parse_filter(Some("metrics.a < 1 OR metrics.b > 2")).is_err());
        assert!(parse_filter(Some("foo.bar = 'x'")).is_err());
        assert!(parse_filter(Some("metrics.a <")).is_err());
        assert!(parse_filter(Some("  ")).unwrap().is_empty());
    }

    #[test]
    fn order_by() {
        let o = parse_order_by("metrics.rmse DESC").unwrap();
        assert_eq!(
            (o.kind, o.key.as_str(), o.ascending),
            (KeyKind::Metric, "rmse", false)
        );
        let o = parse_order_by("attributes.start_time").unwrap();
        assert_eq!((o.kind, o.ascending), (KeyKind::Attribute, true));
        let o = parse_order_by("params.`a b` asc").unwrap();
        assert_eq!(o.key, "a b");
        assert!(parse_order_by("name sideways").is_err());
        assert!(parse_order_by_list(&["name".into(), "name DESC".into()]).is_err());
    }

    #[test]
    fn tokens() {
        assert_eq!(parse_page_token(None).unwrap(), 0);
        assert_eq!(parse_page_token(Some(&page_token(42))).unwrap(), 42);
        assert!(parse_page_token(Some("garbage!")).is_err());
        assert_eq!(page_size(None, 100, 1000).unwrap(), 100);
        assert!(page_size(Some(1001), 100, 1000).is_err());
        assert!(page_size(Some(0), 100, 1000).is_err());
    }
}
