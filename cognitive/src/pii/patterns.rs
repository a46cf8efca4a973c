//! Strict, validated patterns for the structured PII the model finds unreliably.
//!
//! Rampart tags e-mail addresses and URLs well but phone numbers only in part (often just the area
//! code), and it has no label for IP addresses at all. Azure's own PII service combines its models
//! with pattern recognisers for exactly these kinds of entity, and so does the Python package that
//! ships Rampart; Cerulean does the same. Every pattern here is strict: a match must have the full
//! structure of its kind (a valid IPv4/IPv6 address as the standard library parses it, an e-mail
//! address with a real domain, a phone number in a NANP, international or European national
//! layout, a dashed US SSN or ITIN that passes the issuing rules) and must not be part of a longer
//! word or number. Matches are byte ranges into the text.
//!
//! The scanners are hand-written (no regular expressions) so that each one can check structure
//! while it matches, and so that they cost one pass over the text each.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// What a pattern found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatternKind {
    /// An e-mail address.
    Email,
    /// A URL with a scheme (`http://`, `https://`, `ftp://`) or starting with `www.`.
    Url,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// A phone number.
    Phone,
    /// A US taxpayer number in its dashed form (`AAA-GG-SSSS`).
    Taxpayer(TaxpayerKind),
}

/// A kind of US taxpayer number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaxpayerKind {
    /// A social security number.
    Ssn,
    /// An individual taxpayer identification number.
    Itin,
}

impl TaxpayerKind {
    /// The Azure category.
    pub fn category(self) -> &'static str {
        match self {
            TaxpayerKind::Ssn => super::categories::names::US_SSN,
            TaxpayerKind::Itin => super::categories::names::US_ITIN,
        }
    }
}

/// One pattern match: a byte range of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PatternMatch {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// What was found.
    pub kind: PatternKind,
}

/// Every pattern match in `text`, without overlaps (a longer match wins over a shorter one it
/// overlaps, e.g. a URL over an e-mail address inside its query), in text order.
pub(crate) fn find_all(text: &str) -> Vec<PatternMatch> {
    let mut all = Vec::new();
    all.extend(emails(text));
    all.extend(urls(text));
    all.extend(ip_addresses(text));
    all.extend(phones(text));
    all.extend(taxpayer_numbers(text));
    all.sort_by_key(|m| (std::cmp::Reverse(m.end - m.start), m.start));
    let mut kept: Vec<PatternMatch> = Vec::new();
    for m in all {
        if kept.iter().all(|k| m.end <= k.start || k.end <= m.start) {
            kept.push(m);
        }
    }
    kept.sort_by_key(|m| m.start);
    kept
}

/// The character that ends just before byte `i` (`None` at the start).
fn char_before(text: &str, i: usize) -> Option<char> {
    text.get(..i).and_then(|s| s.chars().next_back())
}

/// The character that starts at byte `i` (`None` at the end).
fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

// ---------------------------------------------------------------------------------------------
// E-mail

fn is_local_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-')
}

fn is_domain_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-')
}

/// E-mail addresses: `local@domain.tld`, where the local part is made of letters, digits and
/// `._%+-` without empty dot-separated parts, and the domain has at least two labels, no label
/// starts or ends with `-`, and the top-level label is at least two letters. Letters may be
/// non-ASCII (internationalised addresses, RFC 6531).
fn emails(text: &str) -> Vec<PatternMatch> {
    let mut out = Vec::new();
    let mut from = 0;
    for (at, _) in text.match_indices('@') {
        if at < from {
            continue;
        }
        let mut start = text[..at]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_local_char(c))
            .last()
            .map_or(at, |(i, _)| i);
        while start < at && text[start..].starts_with('.') {
            start += 1;
        }
        let mut end = text[at + 1..]
            .char_indices()
            .take_while(|&(_, c)| is_domain_char(c))
            .last()
            .map_or(at + 1, |(i, c)| at + 1 + i + c.len_utf8());
        while end > at + 1 && (text[..end].ends_with('.') || text[..end].ends_with('-')) {
            end -= 1;
        }
        let local = &text[start..at];
        let domain = &text[at + 1..end];
        let after_ok = char_at(text, end).is_none_or(|c| !is_word_char(c) && c != '@');
        if after_ok && valid_local(local) && valid_domain(domain) {
            out.push(PatternMatch {
                start,
                end,
                kind: PatternKind::Email,
            });
            from = end;
        }
    }
    out
}

fn valid_local(local: &str) -> bool {
    !local.is_empty()
        && local.chars().count() <= 64
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().any(char::is_alphanumeric)
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || domain.len() > 253 {
        return false;
    }
    let labels_ok = labels.iter().all(|l| {
        !l.is_empty() && l.chars().count() <= 63 && !l.starts_with('-') && !l.ends_with('-')
    });
    let tld = labels[labels.len() - 1];
    labels_ok && tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic)
}

// ---------------------------------------------------------------------------------------------
// URL

const URL_PREFIXES: [&str; 4] = ["https://", "http://", "ftp://", "www."];

/// URLs: a scheme (`http`, `https`, `ftp`) or `www.`, a valid host (a domain with a letter-only
/// top-level label, `localhost`, an IPv4 address or a bracketed IPv6 address), then anything up to
/// white space or a quote, less trailing sentence punctuation and unbalanced closing brackets.
fn urls(text: &str) -> Vec<PatternMatch> {
    let bytes = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let Some(prefix) = URL_PREFIXES
            .iter()
            .find(|p| lower.as_bytes()[i..].starts_with(p.as_bytes()))
        else {
            i += 1;
            continue;
        };
        let before_ok = char_before(text, i).is_none_or(|c| !is_word_char(c) && c != '.');
        if !before_ok {
            i += prefix.len();
            continue;
        }
        let mut end = i + prefix.len();
        while let Some(c) = char_at(text, end) {
            if c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '\'' | '`') {
                break;
            }
            end += c.len_utf8();
        }
        // Trim sentence punctuation and closing brackets the URL did not open.
        while end > i
            && let Some(last) = char_before(text, end)
        {
            let url = &text[i..end];
            let unbalanced = |open: char, close: char| {
                last == close && url.matches(open).count() < url.matches(close).count()
            };
            if matches!(last, '.' | ',' | ';' | ':' | '!' | '?')
                || unbalanced('(', ')')
                || unbalanced('[', ']')
                || unbalanced('{', '}')
            {
                end -= last.len_utf8();
            } else {
                break;
            }
        }
        let is_www = *prefix == "www.";
        let host_start = if is_www { i } else { i + prefix.len() };
        if end > i + prefix.len() && valid_url_host(&text[host_start..end], is_www) {
            out.push(PatternMatch {
                start: i,
                end,
                kind: PatternKind::Url,
            });
            i = end;
        } else {
            i += prefix.len();
        }
    }
    out
}

fn valid_url_host(rest: &str, is_www: bool) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6
            .split(']')
            .next()
            .is_some_and(|a| Ipv6Addr::from_str(a).is_ok());
    }
    let host = host_port.split(':').next().unwrap_or("");
    if !is_www && (host.eq_ignore_ascii_case("localhost") || Ipv4Addr::from_str(host).is_ok()) {
        return true;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let min_labels = if is_www { 3 } else { 2 };
    if labels.len() < min_labels {
        return false;
    }
    let labels_ok = labels.iter().all(|l| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    let tld = labels[labels.len() - 1];
    labels_ok && tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic)
}

// ---------------------------------------------------------------------------------------------
// IP addresses

/// IPv4 (dotted decimal, as [`Ipv4Addr`] parses it: no leading zeros) and IPv6 addresses (as
/// [`Ipv6Addr`] parses them), not part of a longer word or dotted number.
fn ip_addresses(text: &str) -> Vec<PatternMatch> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let starts_run = b.is_ascii_hexdigit() || b == b':';
        let before_ok =
            char_before(text, i).is_none_or(|c| !is_word_char(c) && c != '.' && c != ':');
        if !starts_run || !before_ok {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < bytes.len()
            && (bytes[end].is_ascii_hexdigit() || matches!(bytes[end], b'.' | b':'))
        {
            end += 1;
        }
        let next = end;
        let mut found = None;
        // Drop a trailing sentence full stop or colon, then try the run as IPv4 or IPv6.
        let mut cut = end;
        while cut > i && matches!(bytes[cut - 1], b'.' | b':') {
            cut -= 1;
        }
        for candidate_end in [end, cut] {
            let candidate = &text[i..candidate_end];
            let after_ok = char_at(text, candidate_end).is_none_or(|c| !is_word_char(c));
            if !after_ok || candidate.is_empty() {
                continue;
            }
            let v4 = !candidate.contains(':') && Ipv4Addr::from_str(candidate).is_ok();
            let v6 = candidate.matches(':').count() >= 2
                && candidate.bytes().any(|b| b.is_ascii_hexdigit())
                && Ipv6Addr::from_str(candidate).is_ok();
            if v4 || v6 {
                found = Some(candidate_end);
                break;
            }
        }
        if let Some(end) = found {
            out.push(PatternMatch {
                start: i,
                end,
                kind: PatternKind::IpAddress,
            });
        }
        i = next.max(i + 1);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// US taxpayer numbers

/// SSNs and ITINs in the dashed form `AAA-GG-SSSS` that pass [`us_taxpayer_number`], not part of
/// a longer number. Only the dashed form: nine bare digits are as likely anything else. The model
/// rarely tags these (its `TAX_ID` label barely fires on them), and the Python package that
/// ships it recognises them with a pattern too.
fn taxpayer_numbers(text: &str) -> Vec<PatternMatch> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 11 <= s.len() {
        let shaped = digits_at(s, i, 3)
            && s[i + 3] == b'-'
            && digits_at(s, i + 4, 2)
            && s[i + 6] == b'-'
            && digits_at(s, i + 7, 4);
        if shaped
            && phone_start_ok(text, i)
            && phone_end_ok(s, i + 11)
            && let Some(kind) = us_taxpayer_number(&text[i..i + 11])
        {
            out.push(PatternMatch {
                start: i,
                end: i + 11,
                kind: PatternKind::Taxpayer(kind),
            });
            i += 11;
            continue;
        }
        i += 1;
    }
    out
}

/// Which US taxpayer number `text` is, if it is a valid SSN or ITIN (`AAA-GG-SSSS`, `AAA GG SSSS` or nine bare digits).
pub(crate) fn us_taxpayer_number(text: &str) -> Option<TaxpayerKind> {
    let b = text.as_bytes();
    let digits: Vec<u8> = match b.len() {
        9 if b.iter().all(u8::is_ascii_digit) => b.to_vec(),
        11 if (b[3] == b'-' && b[6] == b'-') || (b[3] == b' ' && b[6] == b' ') => {
            let d: Vec<u8> = [&b[0..3], &b[4..6], &b[7..11]].concat();
            if !d.iter().all(u8::is_ascii_digit) {
                return None;
            }
            d
        }
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| {
        digits[r]
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let (area, group, serial) = (num(0..3), num(3..5), num(5..9));
    if area >= 900 {
        let itin_group = matches!(group, 50..=65 | 70..=88 | 90..=92 | 94..=99);
        return itin_group.then_some(TaxpayerKind::Itin);
    }
    (area != 0 && area != 666 && group != 0 && serial != 0).then_some(TaxpayerKind::Ssn)
}

// ---------------------------------------------------------------------------------------------
// Phone numbers

/// Phone numbers in three strict layouts (all ASCII):
///
/// * NANP: optional `+1`/`1` and a separator, an area code `NXX` or `(NXX)`, an exchange `NXX`
///   and four digits, separated by `-`, `.` or a space (the two separators agree when they are
///   `-` or `.`). `N` is 2–9. Ten bare digits do not count: without separators they are as likely
///   an order number.
/// * International: `+`, a country code of 1–3 digits, then digit groups separated by single
///   spaces, `-` or `.` (an optional `(0)` trunk marker is allowed), groups of at most eight
///   digits, 8–15 digits in all (E.164);
///   or `+` followed directly by 8–15 digits.
/// * European national: a trunk `0`, then groups with one separator kind throughout (space, `-`,
///   `/`, or `.` for two-digit groups), 9–12 digits in all.
///
/// A number must not continue a word or a longer number on either side.
fn phones(text: &str) -> Vec<PatternMatch> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if !(b.is_ascii_digit() || b == b'+' || b == b'(') || !phone_start_ok(text, i) {
            i += 1;
            continue;
        }
        let best = [nanp(s, i), international(s, i), national(s, i)]
            .into_iter()
            .flatten()
            .filter(|&end| phone_end_ok(s, end))
            .max();
        match best {
            Some(end) => {
                out.push(PatternMatch {
                    start: i,
                    end,
                    kind: PatternKind::Phone,
                });
                i = end;
            }
            None => i += 1,
        }
    }
    out
}

fn phone_start_ok(text: &str, i: usize) -> bool {
    let s = text.as_bytes();
    match char_before(text, i) {
        None => true,
        Some(c) if is_word_char(c) || c == '+' => false,
        Some('-' | '.' | '/') => !(i >= 2 && s[i - 2].is_ascii_digit()),
        Some(_) => true,
    }
}

fn phone_end_ok(s: &[u8], end: usize) -> bool {
    match s.get(end) {
        None => true,
        Some(b) if b.is_ascii_alphanumeric() || *b == b'_' || *b >= 0x80 => {
            // A non-ASCII byte may start a letter; be strict.
            false
        }
        Some(b'-' | b'.' | b'/') => !s.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

fn digits_at(s: &[u8], i: usize, n: usize) -> bool {
    i + n <= s.len() && s[i..i + n].iter().all(u8::is_ascii_digit)
}

fn nxx_at(s: &[u8], i: usize) -> bool {
    digits_at(s, i, 3) && s[i] >= b'2'
}

/// A NANP number starting at `i`; returns its end.
fn nanp(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    if s[j..].starts_with(b"+1") {
        j += 2;
        if matches!(s.get(j), Some(b' ' | b'-' | b'.')) {
            j += 1;
        }
    } else if s[j] == b'1' && matches!(s.get(j + 1), Some(b' ' | b'-' | b'.')) {
        j += 2;
    }
    let sep1;
    if s.get(j) == Some(&b'(') {
        if !nxx_at(s, j + 1) || s.get(j + 4) != Some(&b')') {
            return None;
        }
        j += 5;
        sep1 = b')';
        if matches!(s.get(j), Some(b' ' | b'-')) {
            j += 1;
        }
    } else {
        if !nxx_at(s, j) {
            return None;
        }
        j += 3;
        sep1 = *s.get(j).filter(|b| matches!(b, b'-' | b'.' | b' '))?;
        j += 1;
    }
    if !nxx_at(s, j) {
        return None;
    }
    j += 3;
    let sep2 = *s.get(j).filter(|b| matches!(b, b'-' | b'.' | b' '))?;
    if matches!(sep1, b'-' | b'.') && sep2 != sep1 {
        return None;
    }
    j += 1;
    if !digits_at(s, j, 4) || s.get(j + 4).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(j + 4)
}

fn digit_run(s: &[u8], i: usize) -> usize {
    s[i.min(s.len())..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// An international number (`+CC ...`) starting at `i`; returns its end.
fn international(s: &[u8], i: usize) -> Option<usize> {
    if s[i] != b'+' {
        return None;
    }
    let run = digit_run(s, i + 1);
    if run == 0 || s[i + 1] == b'0' {
        return None;
    }
    let after_run = i + 1 + run;
    if (8..=15).contains(&run) && !matches!(s.get(after_run), Some(b' ' | b'-' | b'.' | b'(')) {
        // Compact E.164.
        return Some(after_run);
    }
    if run > 3 {
        return None;
    }
    let mut total = run;
    let mut j = after_run;
    let mut groups = 0;
    let mut trunk_seen = false;
    loop {
        let mut k = j;
        let sep = s.get(k).copied();
        if matches!(sep, Some(b' ' | b'-' | b'.')) {
            k += 1;
        }
        if !trunk_seen && s[k.min(s.len())..].starts_with(b"(0)") {
            trunk_seen = true;
            k += 3;
            if matches!(s.get(k), Some(b' ' | b'-')) {
                k += 1;
            }
        }
        if k == j {
            break;
        }
        let n = digit_run(s, k);
        if n == 0 || n > 8 {
            break;
        }
        if total + n > 15 {
            if sep == Some(b' ') {
                break;
            }
            return None;
        }
        total += n;
        groups += 1;
        j = k + n;
    }
    (groups >= 1 && (8..=15).contains(&total)).then_some(j)
}

/// A European national number (trunk `0`) starting at `i`; returns its end.
fn national(s: &[u8], i: usize) -> Option<usize> {
    if s[i] != b'0' || !s.get(i + 1).is_some_and(|b| (b'1'..=b'9').contains(b)) {
        return None;
    }
    let first = digit_run(s, i);
    if !(2..=5).contains(&first) {
        return None;
    }
    let sep = *s
        .get(i + first)
        .filter(|b| matches!(b, b' ' | b'-' | b'/' | b'.'))?;
    let mut total = first;
    let mut sizes = vec![first];
    let mut j = i + first;
    while s.get(j) == Some(&sep) {
        let n = digit_run(s, j + 1);
        if !(2..=8).contains(&n) {
            break;
        }
        if total + n > 12 {
            if sep == b' ' {
                break;
            }
            return None;
        }
        total += n;
        sizes.push(n);
        j += 1 + n;
    }
    if sep == b'.' && sizes.iter().any(|&n| n != 2) {
        return None;
    }
    (sizes.len() >= 2 && (9..=12).contains(&total)).then_some(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(&str, PatternKind)> {
        find_all(text)
            .into_iter()
            .map(|m| (&text[m.start..m.end], m.kind))
            .collect()
    }

    fn kinds(text: &str, kind: PatternKind) -> Vec<&str> {
        found(text)
            .into_iter()
            .filter(|(_, k)| *k == kind)
            .map(|(t, _)| t)
            .collect()
    }

    #[test]
    fn emails_are_whole_and_validated() {
        assert_eq!(
            kinds(
                "Mail john.smith@example.com. Or a_b+c@mail.co.uk, not x@y or a@b.c1",
                PatternKind::Email
            ),
            ["john.smith@example.com", "a_b+c@mail.co.uk"]
        );
        assert!(kinds("user@@example.com @example.com", PatternKind::Email).is_empty());
        assert_eq!(
            kinds("(é: me@ex-ample.org)", PatternKind::Email),
            ["me@ex-ample.org"]
        );
        assert_eq!(
            kinds(
                "an anna.müller@example.de, José@correo.es.",
                PatternKind::Email
            ),
            ["anna.müller@example.de", "José@correo.es"]
        );
    }

    #[test]
    fn urls_drop_trailing_punctuation() {
        assert_eq!(
            kinds(
                "See https://example.com/a?b=1, www.example.org. and (http://x.io/wiki/Foo_(bar)).",
                PatternKind::Url
            ),
            [
                "https://example.com/a?b=1",
                "www.example.org",
                "http://x.io/wiki/Foo_(bar)"
            ]
        );
        assert!(kinds("http:// and www.x and https://nodot", PatternKind::Url).is_empty());
        assert_eq!(
            kinds("http://localhost:8080/x", PatternKind::Url),
            ["http://localhost:8080/x"]
        );
    }

    #[test]
    fn ip_addresses_parse_strictly() {
        assert_eq!(
            kinds(
                "Hosts 192.168.1.20, 10.0.0.1. and fe80::1 and 2001:db8:0:0:0:0:2:1; not 999.1.1.1, 1.2.3.4.5, 01.2.3.4, 12:34:56, v1.2.3.4",
                PatternKind::IpAddress
            ),
            [
                "192.168.1.20",
                "10.0.0.1",
                "fe80::1",
                "2001:db8:0:0:0:0:2:1"
            ]
        );
    }

    #[test]
    fn phones_in_strict_layouts() {
        assert_eq!(
            kinds(
                "Call 415-555-0132, (415) 555-0133, +1 415 555 0134, 1-800-555-0199 or 415.555.0135.",
                PatternKind::Phone
            ),
            [
                "415-555-0132",
                "(415) 555-0133",
                "+1 415 555 0134",
                "1-800-555-0199",
                "415.555.0135"
            ]
        );
        assert_eq!(
            kinds(
                "UK +44 20 7946 0958, DE +49 (0)30 1234567, FR 06 12 34 56 78, +4930123456",
                PatternKind::Phone
            ),
            [
                "+44 20 7946 0958",
                "+49 (0)30 1234567",
                "06 12 34 56 78",
                "+4930123456"
            ]
        );
    }

    #[test]
    fn non_phones_are_rejected() {
        for text in [
            "ZIP 62704",
            "order 4155550132",
            "on 2023-01-15 or 01-15-2023 or 01.02.2023",
            "ip 192.168.100.200",
            "isbn 978-0-306-40615-7",
            "card 4111 1111 1111 1111",
            "415-555-0132-99",
            "id 123-45-6789",
            "v415-555-0132",
            "415-555.0132",
            "version 0.12.3",
            "+1 2020",
        ] {
            assert!(kinds(text, PatternKind::Phone).is_empty(), "{text}");
        }
    }

    #[test]
    fn taxpayer_numbers_are_dashed_and_valid() {
        assert_eq!(
            found(
                "SSN 123-45-6789, ITIN 912-70-1234, not 666-12-3456, 123-45-67890 or 1123-45-6789"
            ),
            [
                ("123-45-6789", PatternKind::Taxpayer(TaxpayerKind::Ssn)),
                ("912-70-1234", PatternKind::Taxpayer(TaxpayerKind::Itin)),
            ]
        );
    }

    #[test]
    fn longest_match_wins() {
        assert_eq!(
            found("https://example.com/?to=john@example.com"),
            [("https://example.com/?to=john@example.com", PatternKind::Url)]
        );
    }
}
