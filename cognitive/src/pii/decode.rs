//! From per-token label probabilities to whole-word entity spans.
//!
//! The model labels word pieces, so a naive BIO merge cuts an e-mail address or a ZIP code into
//! fragments (each piece may get its own `B-` tag, and punctuation pieces inside an address may
//! be labelled `O`). Decoding here works in four steps, all on byte ranges of the text:
//!
//! 1. **Token types.** For each token the probabilities of `B-T` and `I-T` are added per entity
//!    type `T`, and the best type is a candidate if its total reaches [`Thresholds::low`]. The
//!    token is *sure* if the total also reaches [`Thresholds::high`] and beats `O`. Adding `B-`
//!    and `I-` keeps a piece whose probability is split between them (the usual cause of
//!    fragments). The piece begins an entity when `B-T` outweighs `I-T`.
//! 2. **Runs.** Consecutive candidate tokens of one type join: always when no white space
//!    separates them (pieces of one word, whatever their `B-`/`I-` tags), and across white space
//!    when the later token continues (`I-`). A token without letters or digits (punctuation, an
//!    emoji) only ever joins as a piece of a word already in a run.
//! 3. **Hysteresis.** A run with a sure token is kept. A run without one is kept only if it
//!    touches a kept run of the same family: names (`GIVEN_NAME`, `SURNAME`) with white space
//!    between, address parts (`BUILDING_NUMBER` … `ZIP_CODE`) with white space or commas between
//!    (see [`address_gap`]). So the `OR` of `Portland, OR 97201`, which the model is unsure is a
//!    state rather than the word "or", is kept beside a sure city and ZIP code, while an unsure
//!    tag on its own is not.
//! 4. **Whole words.** Each span is widened to the whole white-space-delimited word it touches,
//!    less the word's leading and trailing punctuation (`(`, `"`, `,`, `.`, …) and a possessive
//!    `'s`, without running into a neighbouring span; same-type spans that then touch are merged.
//!    So `john` `.` `smith` `@` … becomes one e-mail address and `627` `##04` one ZIP code.
//!
//! A span's confidence is the mean, over the tokens it covers, of the probability of its type
//! (`B-T` + `I-T`).

/// The probability thresholds of decoding (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Thresholds {
    /// A token whose type reaches this (and beats `O`) is sure.
    pub high: f32,
    /// A token whose type reaches this may extend a sure run of its family.
    pub low: f32,
}

/// Entity types that combine into one entity when they stand next to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// `GIVEN_NAME`, `SURNAME`: one person.
    Name,
    /// `BUILDING_NUMBER`, `STREET_NAME`, `SECONDARY_ADDRESS`, `CITY`, `STATE`, `ZIP_CODE`: one
    /// address.
    Address,
}

impl Family {
    /// The family of a Rampart entity type, if it has one.
    pub fn of(name: &str) -> Option<Family> {
        match name {
            "GIVEN_NAME" | "SURNAME" => Some(Family::Name),
            "BUILDING_NUMBER" | "STREET_NAME" | "SECONDARY_ADDRESS" | "CITY" | "STATE"
            | "ZIP_CODE" => Some(Family::Address),
            _ => None,
        }
    }

    /// Whether two parts of this family, `text[prev_start..prev_end]` and one starting at
    /// `next_start`, belong to one entity.
    pub fn joins(self, text: &str, prev_start: usize, prev_end: usize, next_start: usize) -> bool {
        let (Some(prev), Some(gap)) = (
            text.get(prev_start..prev_end),
            text.get(prev_end..next_start.max(prev_end)),
        ) else {
            return false;
        };
        match self {
            Family::Name => gap.chars().count() <= 4 && gap.chars().all(char::is_whitespace),
            Family::Address => address_gap(prev, gap),
        }
    }
}

/// Whether `gap` may separate two parts of one address, the first being `prev`: at most four
/// characters of white space and commas, after a `.` if `prev` ends in a short word (an
/// abbreviation such as `St.` or `Ave.`).
pub(crate) fn address_gap(prev: &str, gap: &str) -> bool {
    let last_word = prev
        .rsplit(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("");
    let gap = match gap.strip_prefix('.') {
        Some(rest) if (1..=4).contains(&last_word.chars().count()) => rest,
        _ => gap,
    };
    gap.chars().count() <= 4 && gap.chars().all(|c| c.is_whitespace() || c == ',')
}

/// A BIO tag of one label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// `O`: outside every entity.
    Outside,
    /// `B-T`: begins an entity of type `T` (an index into [`LabelSet::types`]).
    Begin(usize),
    /// `I-T`: continues an entity of type `T`.
    Inside(usize),
}

/// The model's labels (config.json `id2label`), parsed into tags and entity types.
#[derive(Debug, Clone)]
pub(crate) struct LabelSet {
    /// The tag of each label id.
    pub tags: Vec<Tag>,
    /// The entity types (`GIVEN_NAME`, `EMAIL`, …) in order of first appearance.
    pub types: Vec<String>,
    /// For each type, the label ids of its `B-` and `I-` tags.
    members: Vec<Vec<usize>>,
    /// The label ids tagged `O`.
    outside: Vec<usize>,
}

impl LabelSet {
    /// Parses labels given in id order (`O`, `B-GIVEN_NAME`, `I-GIVEN_NAME`, …). A label that is
    /// neither `O` nor `B-`/`I-` prefixed is treated as an `I-` tag of its own type.
    pub fn new<S: AsRef<str>>(labels: &[S]) -> LabelSet {
        let mut types: Vec<String> = Vec::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        let mut outside = Vec::new();
        let mut tags = Vec::with_capacity(labels.len());
        for (id, label) in labels.iter().enumerate() {
            let label = label.as_ref().trim();
            if label.eq_ignore_ascii_case("O") || label.is_empty() {
                tags.push(Tag::Outside);
                outside.push(id);
                continue;
            }
            let (begin, name) = match label.split_at_checked(2) {
                Some((p, rest)) if p.eq_ignore_ascii_case("B-") => (true, rest),
                Some((p, rest)) if p.eq_ignore_ascii_case("I-") => (false, rest),
                _ => (false, label),
            };
            let name = name.to_ascii_uppercase();
            let ty = match types.iter().position(|t| *t == name) {
                Some(ty) => ty,
                None => {
                    types.push(name);
                    members.push(Vec::new());
                    types.len() - 1
                }
            };
            members[ty].push(id);
            tags.push(if begin {
                Tag::Begin(ty)
            } else {
                Tag::Inside(ty)
            });
        }
        LabelSet {
            tags,
            types,
            members,
            outside,
        }
    }

    /// How many labels (the width of one row of probabilities).
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// The probability of type `ty` (its `B-` and `I-` labels together) in one row.
    pub fn type_probability(&self, row: &[f32], ty: usize) -> f32 {
        self.members[ty].iter().map(|&id| row[id]).sum()
    }

    fn outside_probability(&self, row: &[f32]) -> f32 {
        self.outside.iter().map(|&id| row[id]).sum()
    }

    /// The candidate entity type of one token, whether it begins an entity and whether it is
    /// sure; `None` for `O`.
    fn classify(&self, row: &[f32], thresholds: Thresholds) -> Option<(usize, bool, bool)> {
        let (ty, p) = (0..self.types.len())
            .map(|ty| (ty, self.type_probability(row, ty)))
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        if p < thresholds.low {
            return None;
        }
        let sure = p >= thresholds.high && p > self.outside_probability(row);
        let begin: f32 = self.members[ty]
            .iter()
            .filter(|&&id| matches!(self.tags[id], Tag::Begin(_)))
            .map(|&id| row[id])
            .sum();
        Some((ty, begin >= p - begin, sure))
    }
}

/// One token of a document: its byte range and its label probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenRef {
    /// First byte of the token in the text.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
}

/// A decoded span: a byte range, an entity type and its confidence.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// The entity type (an index into [`LabelSet::types`]).
    pub ty: usize,
    /// Mean probability of the type over the covered tokens.
    pub confidence: f32,
    /// How many tokens the span covers (weights for means over merged spans).
    pub tokens: usize,
}

/// Decodes one document. `tokens` are in text order; `probs` holds one row of
/// `labels.len()` probabilities per token.
pub(crate) fn decode(
    text: &str,
    tokens: &[TokenRef],
    probs: &[f32],
    labels: &LabelSet,
    thresholds: Thresholds,
) -> Vec<Span> {
    let width = labels.len();
    if width == 0 || probs.len() < tokens.len() * width {
        return Vec::new();
    }
    let row = |i: usize| &probs[i * width..(i + 1) * width];

    // 1 + 2: token types, then runs (with whether each has a sure token).
    let mut spans: Vec<Span> = Vec::new();
    let mut sure: Vec<bool> = Vec::new();
    let mut open = false;
    for (i, token) in tokens.iter().enumerate() {
        if token.end <= token.start || text.get(token.start..token.end).is_none() {
            continue;
        }
        let Some((ty, begin, token_sure)) = labels.classify(row(i), thresholds) else {
            open = false;
            continue;
        };
        // A token of only symbols (punctuation, an emoji) belongs to an entity only as a piece
        // of a word the entity already reached.
        let wordless = !text[token.start..token.end]
            .chars()
            .any(char::is_alphanumeric);
        if open && let Some(last) = spans.last_mut() {
            // Tokens can share a character (normalisation can split one character into
            // several pieces), so an overlap counts as no gap.
            let gap = if token.start <= last.end {
                ""
            } else {
                text.get(last.end..token.start).unwrap_or("x")
            };
            let joined =
                last.ty == ty && gap.chars().all(char::is_whitespace) && (gap.is_empty() || !begin);
            if joined && (!wordless || gap.is_empty()) {
                last.end = last.end.max(token.end);
                if let Some(s) = sure.last_mut() {
                    *s |= token_sure;
                }
                continue;
            }
        }
        if wordless {
            open = false;
            continue;
        }
        spans.push(Span {
            start: token.start,
            end: token.end,
            ty,
            confidence: 0.0,
            tokens: 0,
        });
        sure.push(token_sure);
        open = true;
    }

    // 3: hysteresis. Unsure runs next to kept runs of their family are kept, until none is
    // added.
    let family = |span: &Span| Family::of(&labels.types[span.ty]);
    let mut kept = sure;
    loop {
        let mut changed = false;
        for k in 0..spans.len() {
            if kept[k] {
                continue;
            }
            let Some(f) = family(&spans[k]) else {
                continue;
            };
            let joins_prev = k > 0
                && kept[k - 1]
                && family(&spans[k - 1]) == Some(f)
                && f.joins(text, spans[k - 1].start, spans[k - 1].end, spans[k].start);
            let joins_next = k + 1 < spans.len()
                && kept[k + 1]
                && family(&spans[k + 1]) == Some(f)
                && f.joins(text, spans[k].start, spans[k].end, spans[k + 1].start);
            if joins_prev || joins_next {
                kept[k] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut spans: Vec<Span> = spans
        .into_iter()
        .zip(kept)
        .filter_map(|(span, kept)| kept.then_some(span))
        .collect();

    // 4: whole words.
    let n = spans.len();
    for k in 0..n {
        let lower = if k > 0 { spans[k - 1].end } else { 0 };
        let upper = if k + 1 < n {
            spans[k + 1].start
        } else {
            text.len()
        };
        let (word_start, _) = word_core(text, spans[k].start);
        let (_, word_end) = word_core(text, spans[k].end.saturating_sub(1).max(spans[k].start));
        let span = &mut spans[k];
        span.start = span.start.min(word_start.max(lower));
        span.end = span.end.max(word_end.min(upper));
    }
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        if let Some(last) = merged.last_mut()
            && last.ty == span.ty
            && span.start <= last.end
        {
            last.end = last.end.max(span.end);
            continue;
        }
        merged.push(span);
    }
    for span in &mut merged {
        let abbreviations = Family::of(&labels.types[span.ty]) == Some(Family::Address);
        (span.start, span.end) = tidy(text, span.start, span.end, abbreviations);
    }
    merged.retain(|s| s.end > s.start);

    // Confidence: mean type probability over the covered tokens.
    // Tokens are in text order, so each span's tokens start at the first token starting at or
    // after the span's start less the longest token.
    let longest = tokens
        .iter()
        .map(|t| t.end.saturating_sub(t.start))
        .max()
        .unwrap_or(0);
    for span in &mut merged {
        let first = tokens.partition_point(|t| t.start + longest < span.start);
        let (sum, count) = tokens[first..]
            .iter()
            .enumerate()
            .map(|(i, t)| (first + i, t))
            .take_while(|(_, t)| t.start < span.end)
            .filter(|(_, t)| t.end > t.start && t.end > span.start)
            .fold((0.0f32, 0usize), |(sum, count), (i, _)| {
                (sum + labels.type_probability(row(i), span.ty), count + 1)
            });
        span.confidence = if count == 0 { 0.0 } else { sum / count as f32 };
        span.tokens = count;
    }
    merged
}

/// `start..end` without punctuation the model tagged around the entity: sentence punctuation
/// and quotes at the end (but the `.` of a short abbreviation such as `St.` when `abbreviations`
/// is set), quotes at the start, and brackets without their partner inside the span.
fn tidy(text: &str, mut start: usize, mut end: usize, abbreviations: bool) -> (usize, usize) {
    let Some(span) = text.get(start..end) else {
        return (start, end);
    };
    let count = |c: char| span.chars().filter(|&x| x == c).count();
    let unbalanced_close = |c: char| match c {
        ')' => count('(') < count(')'),
        ']' => count('[') < count(']'),
        _ => false,
    };
    let unbalanced_open = |c: char| match c {
        '(' => count('(') > count(')'),
        '[' => count('[') > count(']'),
        _ => false,
    };
    while let Some(c) = text[start..end].chars().next_back() {
        let abbreviation = c == '.' && abbreviations && {
            let word = text[start..end - 1]
                .rsplit(|x: char| !x.is_alphanumeric())
                .next()
                .unwrap_or("");
            (1..=4).contains(&word.chars().count()) && word.chars().all(char::is_alphabetic)
        };
        let trim = matches!(
            c,
            ',' | ';' | ':' | '!' | '?' | '"' | '\'' | '»' | '”' | '’' | '…'
        ) || (c == '.' && !abbreviation)
            || unbalanced_close(c);
        if !trim {
            break;
        }
        end -= c.len_utf8();
    }
    while let Some(c) = text[start..end].chars().next() {
        if !(matches!(c, '"' | '\'' | '«' | '“' | '‘' | '„' | ',' | ';' | ':')
            || unbalanced_open(c))
        {
            break;
        }
        start += c.len_utf8();
    }
    (start, end)
}

/// Characters trimmed from the start of a word.
fn leading_punct(c: char) -> bool {
    matches!(
        c,
        '(' | '['
            | '{'
            | '<'
            | '"'
            | '\''
            | '«'
            | '“'
            | '‘'
            | '„'
            | ','
            | '.'
            | ';'
            | ':'
            | '!'
            | '?'
            | '¿'
            | '¡'
            | '*'
    )
}

/// Characters trimmed from the end of a word.
fn trailing_punct(c: char) -> bool {
    matches!(
        c,
        ')' | ']'
            | '}'
            | '>'
            | '"'
            | '\''
            | '»'
            | '”'
            | '’'
            | ','
            | '.'
            | ';'
            | ':'
            | '!'
            | '?'
            | '…'
            | '*'
    )
}

/// The byte range of the core of the white-space-delimited word around byte `at` (the word less
/// its leading and trailing punctuation and a possessive `'s`). Falls back to the character at
/// `at` when the word is all punctuation.
pub(crate) fn word_core(text: &str, at: usize) -> (usize, usize) {
    let at = floor_boundary(text, at.min(text.len()));
    let start = text[..at]
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let end = text[at..]
        .char_indices()
        .find(|(_, c)| c.is_whitespace())
        .map_or(text.len(), |(i, _)| at + i);
    let word = &text[start..end];
    let trimmed_start = word.trim_start_matches(leading_punct);
    let core_start = start + (word.len() - trimmed_start.len());
    let mut core = trimmed_start.trim_end_matches(trailing_punct);
    for possessive in ["'s", "’s", "'S", "’S"] {
        if let Some(stripped) = core.strip_suffix(possessive)
            && !stripped.is_empty()
        {
            core = stripped.trim_end_matches(trailing_punct);
            break;
        }
    }
    if core.is_empty() {
        let len = text[at..].chars().next().map_or(0, char::len_utf8);
        return (at, at + len);
    }
    (core_start, core_start + core.len())
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABELS: [&str; 9] = [
        "O",
        "B-EMAIL",
        "I-EMAIL",
        "B-ZIP_CODE",
        "I-ZIP_CODE",
        "B-GIVEN_NAME",
        "I-GIVEN_NAME",
        "B-CITY",
        "B-STATE",
    ];

    /// Tokens of `pieces` (`(start, end, label id, probability)`), the rest of each row spread
    /// over `O`.
    fn run(text: &str, pieces: &[(usize, usize, usize, f32)]) -> Vec<(String, String, f32)> {
        let labels = LabelSet::new(&LABELS);
        let mut probs = Vec::new();
        let mut tokens = Vec::new();
        for &(start, end, id, p) in pieces {
            tokens.push(TokenRef { start, end });
            let mut row = vec![0.0; LABELS.len()];
            row[id] = p;
            row[0] += 1.0 - p;
            probs.extend(row);
        }
        decode(
            text,
            &tokens,
            &probs,
            &labels,
            Thresholds {
                high: 0.5,
                low: 0.3,
            },
        )
        .into_iter()
        .map(|s| {
            (
                text[s.start..s.end].to_string(),
                labels.types[s.ty].clone(),
                s.confidence,
            )
        })
        .collect()
    }

    #[test]
    fn labels_parse_into_types() {
        let labels = LabelSet::new(&LABELS);
        assert_eq!(
            labels.types,
            ["EMAIL", "ZIP_CODE", "GIVEN_NAME", "CITY", "STATE"]
        );
        assert_eq!(labels.tags[3], Tag::Begin(1));
        assert_eq!(labels.tags[6], Tag::Inside(2));
        assert_eq!(labels.tags[0], Tag::Outside);
    }

    #[test]
    fn fragments_of_an_email_become_one_span() {
        // "a.b@x.com" as pieces a . b @ x . com; "@" and "." labelled O, "b" tagged B-.
        let text = "mail a.b@x.com.";
        let got = run(
            text,
            &[
                (0, 4, 0, 0.9),
                (5, 6, 1, 0.9),
                (6, 7, 0, 0.9),
                (7, 8, 1, 0.8),
                (8, 9, 0, 0.9),
                (9, 10, 2, 0.7),
                (10, 11, 2, 0.6),
                (11, 14, 2, 0.9),
                (14, 15, 0, 0.99),
            ],
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "a.b@x.com");
        assert_eq!(got[0].1, "EMAIL");
    }

    #[test]
    fn zip_pieces_with_begin_tags_merge_and_punctuation_is_left_out() {
        let text = "IL 62704.";
        let got = run(
            text,
            &[
                (0, 2, 0, 0.9),
                (3, 6, 3, 0.9),
                (6, 8, 3, 0.6),
                (8, 9, 0, 0.9),
            ],
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "62704");
        assert!((got[0].2 - 0.75).abs() < 1e-6, "{got:?}");
    }

    #[test]
    fn words_join_only_when_continued() {
        let text = "Ann Lee met Bo";
        let got = run(
            text,
            &[
                (0, 3, 5, 0.9),
                (4, 7, 6, 0.9),
                (8, 11, 0, 0.9),
                (12, 14, 5, 0.9),
            ],
        );
        let texts: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(texts, ["Ann Lee", "Bo"]);
        // A new B- after white space starts a new entity.
        let got = run(text, &[(0, 3, 5, 0.9), (4, 7, 5, 0.9)]);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn symbols_join_only_inside_words() {
        let text = "Köln 😀 (x)";
        let got = run(
            text,
            &[
                (0, 5, 7, 0.9),
                (6, 10, 7, 0.6),
                (11, 12, 1, 0.9),
                (12, 13, 2, 0.9),
                (13, 14, 2, 0.9),
            ],
        );
        let texts: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(texts, ["Köln", "x"]);
    }

    #[test]
    fn tidy_keeps_abbreviations_and_balanced_brackets() {
        let t = |text: &str, abbreviations: bool| {
            let (s, e) = tidy(text, 0, text.len(), abbreviations);
            text[s..e].to_string()
        };
        assert_eq!(t("Smith.", false), "Smith");
        assert_eq!(t("Elm St.", true), "Elm St.");
        assert_eq!(t("Elm Street.", true), "Elm Street");
        assert_eq!(t("(202) 555-0187", false), "(202) 555-0187");
        assert_eq!(t("(202", false), "202");
        assert_eq!(t("x)", false), "x");
        assert_eq!(t("\"Ann\",", false), "Ann");
        assert_eq!(t(".", false), "");
    }

    #[test]
    fn low_probability_tokens_are_outside() {
        let got = run("x y", &[(0, 1, 1, 0.4), (2, 3, 1, 0.9)]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "y");
    }

    #[test]
    fn unsure_parts_next_to_sure_parts_of_their_family_are_kept() {
        let text = "Portland, OR 97201 or OR";
        let got = run(
            text,
            &[
                (0, 8, 7, 0.99),
                (8, 9, 0, 0.99),
                (10, 12, 8, 0.43),
                (13, 18, 3, 0.99),
                (19, 21, 0, 0.99),
                (22, 24, 8, 0.43),
            ],
        );
        let texts: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(texts, ["Portland", "OR", "97201"]);
    }

    #[test]
    fn address_gaps_allow_commas_and_abbreviation_stops() {
        assert!(address_gap("221 Baker Street", ", "));
        assert!(address_gap("Baker St", "., "));
        assert!(!address_gap("Baker Street", ". "));
        assert!(!address_gap("Baker Street", " in "));
        assert!(address_gap("Springfield", "\n"));
    }

    #[test]
    fn word_core_trims_punctuation_and_possessives() {
        let text = "(Smith's) “é.x@y.z”, 62704.";
        let at = text.find('S').unwrap();
        assert_eq!(&text[word_core(text, at).0..word_core(text, at).1], "Smith");
        let at = text.find('x').unwrap();
        let (s, e) = word_core(text, at);
        assert_eq!(&text[s..e], "é.x@y.z");
        let at = text.find('6').unwrap();
        let (s, e) = word_core(text, at);
        assert_eq!(&text[s..e], "62704");
    }
}
