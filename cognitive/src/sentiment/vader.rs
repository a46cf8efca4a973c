//! VADER (Valence Aware Dictionary and sEntiment Reasoner), ported from `vaderSentiment` 3.3.2.
//!
//! VADER is by C.J. Hutto and Eric Gilbert (ICWSM-14), MIT licence. This is a port of the
//! package's `vaderSentiment.py` rules to Rust; the lexicons (`vader_lexicon.txt`,
//! `emoji_utf8_lexicon.txt`) are read from the files the package ships. The port keeps the
//! original's behaviour, including its quirks (so scores equal the Python package's):
//!
//! * emoji (single code points in the emoji lexicon) are replaced by their descriptions;
//! * tokens are the whitespace-separated words with leading and trailing ASCII punctuation
//!   removed, unless that leaves two characters or fewer (so `:)` and `ok!` stay as they are);
//! * each lexicon word's valence is modified by up to three preceding booster/dampener words
//!   (scaled 1, 0.95, 0.9 by distance), negations (`not`, `n't`, `never`, …; `never so/this`
//!   boosts instead; `without doubt` keeps), `no` before a word, ALL-CAPS emphasis when only some
//!   words are capitalised, `least`, `kind of`, and the special idioms (`the bomb`, `bad ass`, …);
//! * after the first `but`, valences weigh 1.5 and before it 0.5 (with the original's lookup of
//!   each value's first occurrence);
//! * up to four `!` and more than one `?` amplify the sum, which is normalised to the compound
//!   score `x / sqrt(x² + 15)`; `pos`, `neu`, `neg` are the shares of positive, neutral and negative
//!   words. Scores are rounded as the original rounds them (compound to 4, the others to 3 decimals).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::error::{CognitiveError, Result};

/// Mean intensity increase of a booster word.
const B_INCR: f64 = 0.293;
/// Mean intensity decrease of a dampener word.
const B_DECR: f64 = -0.293;
/// Intensity increase of an ALL-CAPS word among non-caps words.
const C_INCR: f64 = 0.733;
/// The factor a negation applies.
const N_SCALAR: f64 = -0.74;

/// Negation words (a word containing `n't` negates too).
const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

/// Booster (degree adverb) and dampener words with their intensity change.
const BOOSTERS: &[(&str, f64)] = &[
    ("absolutely", B_INCR),
    ("amazingly", B_INCR),
    ("awfully", B_INCR),
    ("completely", B_INCR),
    ("considerable", B_INCR),
    ("considerably", B_INCR),
    ("decidedly", B_INCR),
    ("deeply", B_INCR),
    ("effing", B_INCR),
    ("enormous", B_INCR),
    ("enormously", B_INCR),
    ("entirely", B_INCR),
    ("especially", B_INCR),
    ("exceptional", B_INCR),
    ("exceptionally", B_INCR),
    ("extreme", B_INCR),
    ("extremely", B_INCR),
    ("fabulously", B_INCR),
    ("flipping", B_INCR),
    ("flippin", B_INCR),
    ("frackin", B_INCR),
    ("fracking", B_INCR),
    ("fricking", B_INCR),
    ("frickin", B_INCR),
    ("frigging", B_INCR),
    ("friggin", B_INCR),
    ("fully", B_INCR),
    ("fuckin", B_INCR),
    ("fucking", B_INCR),
    ("fuggin", B_INCR),
    ("fugging", B_INCR),
    ("greatly", B_INCR),
    ("hella", B_INCR),
    ("highly", B_INCR),
    ("hugely", B_INCR),
    ("incredible", B_INCR),
    ("incredibly", B_INCR),
    ("intensely", B_INCR),
    ("major", B_INCR),
    ("majorly", B_INCR),
    ("more", B_INCR),
    ("most", B_INCR),
    ("particularly", B_INCR),
    ("purely", B_INCR),
    ("quite", B_INCR),
    ("really", B_INCR),
    ("remarkably", B_INCR),
    ("so", B_INCR),
    ("substantially", B_INCR),
    ("thoroughly", B_INCR),
    ("total", B_INCR),
    ("totally", B_INCR),
    ("tremendous", B_INCR),
    ("tremendously", B_INCR),
    ("uber", B_INCR),
    ("unbelievably", B_INCR),
    ("unusually", B_INCR),
    ("utter", B_INCR),
    ("utterly", B_INCR),
    ("very", B_INCR),
    ("almost", B_DECR),
    ("barely", B_DECR),
    ("hardly", B_DECR),
    ("just enough", B_DECR),
    ("kind of", B_DECR),
    ("kinda", B_DECR),
    ("kindof", B_DECR),
    ("kind-of", B_DECR),
    ("less", B_DECR),
    ("little", B_DECR),
    ("marginal", B_DECR),
    ("marginally", B_DECR),
    ("occasional", B_DECR),
    ("occasionally", B_DECR),
    ("partly", B_DECR),
    ("scarce", B_DECR),
    ("scarcely", B_DECR),
    ("slight", B_DECR),
    ("slightly", B_DECR),
    ("somewhat", B_DECR),
    ("sort of", B_DECR),
    ("sorta", B_DECR),
    ("sortof", B_DECR),
    ("sort-of", B_DECR),
];

/// Idioms and phrases containing lexicon words, with the valence they take.
const SPECIAL_CASES: &[(&str, f64)] = &[
    ("the shit", 3.0),
    ("the bomb", 3.0),
    ("bad ass", 1.5),
    ("badass", 1.5),
    ("bus stop", 0.0),
    ("yeah right", -2.0),
    ("kiss of death", -1.5),
    ("to die for", 3.0),
    ("beating heart", 3.5),
];

fn booster(word: &str) -> Option<f64> {
    BOOSTERS.iter().find(|(w, _)| *w == word).map(|(_, v)| *v)
}

fn special_case(phrase: &str) -> Option<f64> {
    SPECIAL_CASES
        .iter()
        .find(|(w, _)| *w == phrase)
        .map(|(_, v)| *v)
}

/// VADER's scores for one text.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PolarityScores {
    /// Share of negative words, in `[0, 1]` (3 decimals).
    pub neg: f64,
    /// Share of neutral words, in `[0, 1]` (3 decimals).
    pub neu: f64,
    /// Share of positive words, in `[0, 1]` (3 decimals).
    pub pos: f64,
    /// Normalised sum of the valences, in `[-1, 1]` (4 decimals).
    pub compound: f64,
}

/// Python's `str.isspace` for one character (Rust's `char::is_whitespace` plus the information
/// separators U+001C..U+001F).
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.isupper`: at least one cased character and no lowercase or titlecase one.
fn is_py_upper(s: &str) -> bool {
    let mut upper = false;
    for c in s.chars() {
        if c.is_lowercase() || is_titlecase(c) {
            return false;
        }
        upper |= c.is_uppercase();
    }
    upper
}

/// The Unicode titlecase letters (general category Lt).
fn is_titlecase(c: char) -> bool {
    matches!(c,
        '\u{01C5}' | '\u{01C8}' | '\u{01CB}' | '\u{01F2}'
        | '\u{1F88}'..='\u{1F8F}' | '\u{1F98}'..='\u{1F9F}' | '\u{1FA8}'..='\u{1FAF}'
        | '\u{1FBC}' | '\u{1FCC}' | '\u{1FFC}')
}

/// Python's `str.split()` with no argument.
fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|w| !w.is_empty())
}

/// Python's `round(x, digits)` (round half to even on the exact binary value, as Rust's
/// formatting does).
fn py_round(x: f64, digits: usize) -> f64 {
    format!("{x:.digits$}").parse().unwrap_or(x)
}

/// Removes leading and trailing punctuation from a token unless that leaves two characters or
/// fewer (`_strip_punc_if_word`).
fn strip_punctuation(token: &str) -> &str {
    let stripped = token.trim_matches(|c: char| c.is_ascii_punctuation());
    if stripped.chars().count() <= 2 {
        token
    } else {
        stripped
    }
}

/// Whether a (lower-cased) word negates (`negated([word])`).
fn negated(word: &str) -> bool {
    NEGATE.contains(&word) || word.contains("n't")
}

/// The VADER analyser: the sentiment lexicon and the emoji descriptions.
#[derive(Debug, Clone)]
pub struct Vader {
    lexicon: HashMap<String, f64>,
    emojis: HashMap<char, String>,
}

impl Vader {
    /// Parses the lexicon (`word<TAB>mean<TAB>…` per line) and the emoji lexicon
    /// (`emoji<TAB>description` per line). Emoji entries longer than one code point are kept
    /// out, as the original only ever looks up single characters.
    pub fn from_texts(lexicon: &str, emoji_lexicon: &str) -> Result<Vader> {
        let bad = |what: &str, n: usize, line: &str| {
            CognitiveError::model(
                super::MODEL_VERSION,
                format!("{what} line {n} is malformed: {line:?}"),
            )
        };
        let mut lex = HashMap::new();
        for (n, line) in lexicon.trim_end_matches('\n').split('\n').enumerate() {
            let line = line.trim_matches(is_py_space);
            if line.is_empty() {
                continue;
            }
            let mut fields = line.split('\t');
            let (Some(word), Some(measure)) = (fields.next(), fields.next()) else {
                return Err(bad("lexicon", n + 1, line));
            };
            let measure: f64 = measure
                .trim()
                .parse()
                .map_err(|_| bad("lexicon", n + 1, line))?;
            lex.insert(word.to_string(), measure);
        }
        if lex.is_empty() {
            return Err(CognitiveError::model(
                super::MODEL_VERSION,
                "the lexicon is empty",
            ));
        }
        let mut emojis = HashMap::new();
        for (n, line) in emoji_lexicon.trim_end_matches('\n').split('\n').enumerate() {
            let line = line.trim_matches(is_py_space);
            if line.is_empty() {
                continue;
            }
            let mut fields = line.split('\t');
            let (Some(emoji), Some(description)) = (fields.next(), fields.next()) else {
                return Err(bad("emoji lexicon", n + 1, line));
            };
            let mut chars = emoji.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                emojis.insert(c, description.to_string());
            }
        }
        Ok(Vader {
            lexicon: lex,
            emojis,
        })
    }

    /// Reads `vader_lexicon.txt` and `emoji_utf8_lexicon.txt`.
    pub fn load(lexicon: &Path, emoji_lexicon: &Path) -> Result<Vader> {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| CognitiveError::io(p, e));
        Vader::from_texts(&read(lexicon)?, &read(emoji_lexicon)?)
    }

    /// The number of lexicon entries.
    pub fn lexicon_len(&self) -> usize {
        self.lexicon.len()
    }

    fn in_lexicon(&self, lower: &str) -> bool {
        self.lexicon.contains_key(lower)
    }

    /// VADER's `polarity_scores`: compound, pos, neu and neg of `text`.
    pub fn polarity_scores(&self, text: &str) -> PolarityScores {
        // Emoji → descriptions.
        let mut replaced = String::with_capacity(text.len());
        let mut prev_space = true;
        for c in text.chars() {
            if let Some(description) = self.emojis.get(&c) {
                if !prev_space {
                    replaced.push(' ');
                }
                replaced.push_str(description);
                prev_space = false;
            } else {
                replaced.push(c);
                prev_space = c == ' ';
            }
        }
        let text = replaced.trim_matches(is_py_space);

        let words: Vec<&str> = py_split(text).map(strip_punctuation).collect();
        let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let caps = words.iter().filter(|w| is_py_upper(w)).count();
        let is_cap_diff = caps > 0 && caps < words.len();

        let mut sentiments = Vec::with_capacity(words.len());
        for i in 0..words.len() {
            if booster(&lower[i]).is_some()
                || (i + 1 < words.len() && lower[i] == "kind" && lower[i + 1] == "of")
            {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(self.valence(&words, &lower, i, is_cap_diff));
        }
        but_check(&lower, &mut sentiments);
        score_valence(&sentiments, text)
    }

    /// `sentiment_valence` for the word at `i`.
    fn valence(&self, words: &[&str], lower: &[String], i: usize, is_cap_diff: bool) -> f64 {
        let Some(&base) = self.lexicon.get(&lower[i]) else {
            return 0.0;
        };
        let mut valence = base;
        if lower[i] == "no" && i + 1 < words.len() && self.in_lexicon(&lower[i + 1]) {
            // "no" negates the next word instead of counting on its own.
            valence = 0.0;
        }
        if (i > 0 && lower[i - 1] == "no")
            || (i > 1 && lower[i - 2] == "no")
            || (i > 2 && lower[i - 3] == "no" && (lower[i - 1] == "or" || lower[i - 1] == "nor"))
        {
            valence = base * N_SCALAR;
        }
        if is_py_upper(words[i]) && is_cap_diff {
            if valence > 0.0 {
                valence += C_INCR;
            } else {
                valence -= C_INCR;
            }
        }
        for start in 0..3 {
            if i > start && !self.in_lexicon(&lower[i - (start + 1)]) {
                let mut s = scalar_inc_dec(
                    words[i - (start + 1)],
                    &lower[i - (start + 1)],
                    valence,
                    is_cap_diff,
                );
                if start == 1 && s != 0.0 {
                    s *= 0.95;
                }
                if start == 2 && s != 0.0 {
                    s *= 0.9;
                }
                valence += s;
                valence = negation_check(valence, lower, start, i);
                if start == 2 {
                    valence = special_idioms_check(valence, lower, i);
                }
            }
        }
        self.least_check(valence, lower, i)
    }

    /// `_least_check`: "least" before a word negates it, unless "at least" / "very least".
    fn least_check(&self, valence: f64, lower: &[String], i: usize) -> f64 {
        if i > 1 && !self.in_lexicon(&lower[i - 1]) && lower[i - 1] == "least" {
            if lower[i - 2] != "at" && lower[i - 2] != "very" {
                return valence * N_SCALAR;
            }
        } else if i > 0 && !self.in_lexicon(&lower[i - 1]) && lower[i - 1] == "least" {
            return valence * N_SCALAR;
        }
        valence
    }
}

/// `scalar_inc_dec`: the intensity change a preceding booster/dampener word brings.
fn scalar_inc_dec(word: &str, lower: &str, valence: f64, is_cap_diff: bool) -> f64 {
    let Some(mut scalar) = booster(lower) else {
        return 0.0;
    };
    if valence < 0.0 {
        scalar = -scalar;
    }
    if is_py_upper(word) && is_cap_diff {
        if valence > 0.0 {
            scalar += C_INCR;
        } else {
            scalar -= C_INCR;
        }
    }
    scalar
}

/// `_negation_check` for the word `start + 1` places before `i`.
fn negation_check(valence: f64, lower: &[String], start: usize, i: usize) -> f64 {
    let w = |back: usize| lower[i - back].as_str();
    if start == 0 {
        if negated(w(1)) {
            return valence * N_SCALAR;
        }
    } else if start == 1 {
        if w(2) == "never" && (w(1) == "so" || w(1) == "this") {
            return valence * 1.25;
        } else if w(2) == "without" && w(1) == "doubt" {
            return valence;
        } else if negated(w(2)) {
            return valence * N_SCALAR;
        }
    } else if start == 2 {
        // As in the original: `never so/this` two words back, or `so`/`this` right before.
        if (w(3) == "never" && (w(2) == "so" || w(2) == "this")) || (w(1) == "so" || w(1) == "this")
        {
            return valence * 1.25;
        } else if w(3) == "without" && (w(2) == "doubt" || w(1) == "doubt") {
            return valence;
        } else if negated(w(3)) {
            return valence * N_SCALAR;
        }
    }
    valence
}

/// `_special_idioms_check` for the word at `i` (`i ≥ 3`).
fn special_idioms_check(mut valence: f64, lower: &[String], i: usize) -> f64 {
    let w = |k: usize| lower[k].as_str();
    let onezero = format!("{} {}", w(i - 1), w(i));
    let twoonezero = format!("{} {} {}", w(i - 2), w(i - 1), w(i));
    let twoone = format!("{} {}", w(i - 2), w(i - 1));
    let threetwoone = format!("{} {} {}", w(i - 3), w(i - 2), w(i - 1));
    let threetwo = format!("{} {}", w(i - 3), w(i - 2));
    for seq in [&onezero, &twoonezero, &twoone, &threetwoone, &threetwo] {
        if let Some(v) = special_case(seq) {
            valence = v;
            break;
        }
    }
    if lower.len() - 1 > i
        && let Some(v) = special_case(&format!("{} {}", w(i), w(i + 1)))
    {
        valence = v;
    }
    if lower.len() - 1 > i + 1
        && let Some(v) = special_case(&format!("{} {} {}", w(i), w(i + 1), w(i + 2)))
    {
        valence = v;
    }
    for ngram in [&threetwoone, &threetwo, &twoone] {
        if let Some(v) = booster(ngram) {
            valence += v;
        }
    }
    valence
}

/// `_but_check`: after the first "but" valences weigh 1.5, before it 0.5.
///
/// The original walks the list and, for each value, rescales the *first* element equal to it
/// (`list.index`), so equal values before and after "but" interact; this reproduces that exactly,
/// in O(n log n) instead of the original's O(n²).
fn but_check(lower: &[String], sentiments: &mut [f64]) {
    let Some(bi) = lower.iter().position(|w| w == "but") else {
        return;
    };
    // Python compares floats by value, so 0.0 and -0.0 are one key.
    let key = |v: f64| if v == 0.0 { 0_u64 } else { v.to_bits() };
    let mut positions: HashMap<u64, BTreeSet<usize>> = HashMap::new();
    for (i, &v) in sentiments.iter().enumerate() {
        positions.entry(key(v)).or_default().insert(i);
    }
    for k in 0..sentiments.len() {
        let v = sentiments[k];
        let Some(&si) = positions.get(&key(v)).and_then(|set| set.first()) else {
            continue;
        };
        let new = match si.cmp(&bi) {
            std::cmp::Ordering::Less => v * 0.5,
            std::cmp::Ordering::Greater => v * 1.5,
            std::cmp::Ordering::Equal => continue,
        };
        if let Some(set) = positions.get_mut(&key(v)) {
            set.remove(&si);
        }
        positions.entry(key(new)).or_default().insert(si);
        sentiments[si] = new;
    }
}

/// `_punctuation_emphasis`: up to four `!` add 0.292 each; two or three `?` add 0.18 each, more
/// add 0.96.
fn punctuation_emphasis(text: &str) -> f64 {
    let ep = text.matches('!').count().min(4) as f64 * 0.292;
    let qm = match text.matches('?').count() {
        0 | 1 => 0.0,
        n @ 2..=3 => n as f64 * 0.18,
        _ => 0.96,
    };
    ep + qm
}

/// `normalize`: `score / sqrt(score² + 15)`, clamped to `[-1, 1]`.
fn normalize(score: f64) -> f64 {
    (score / (score * score + 15.0).sqrt()).clamp(-1.0, 1.0)
}

/// `score_valence`: the compound score and the positive, neutral and negative shares.
fn score_valence(sentiments: &[f64], text: &str) -> PolarityScores {
    if sentiments.is_empty() {
        return PolarityScores::default();
    }
    let mut sum: f64 = sentiments.iter().sum();
    let amplifier = punctuation_emphasis(text);
    if sum > 0.0 {
        sum += amplifier;
    } else if sum < 0.0 {
        sum -= amplifier;
    }
    let compound = normalize(sum);
    let (mut pos_sum, mut neg_sum, mut neu_count) = (0.0_f64, 0.0_f64, 0_usize);
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu_count += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += amplifier;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= amplifier;
    }
    let total = pos_sum + neg_sum.abs() + neu_count as f64;
    PolarityScores {
        neg: py_round((neg_sum / total).abs(), 3),
        neu: py_round((neu_count as f64 / total).abs(), 3),
        pos: py_round((pos_sum / total).abs(), 3),
        compound: py_round(compound, 4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Vader {
        let lexicon = "good\t1.9\t0.9\t[]\r\nbad\t-2.5\t0.5\t[]\r\nhappy\t2.7\t0.7\t[]\r\nno\t-1.2\t0.7\t[]\r\n:)\t2.0\t0.1\t[]\r\n";
        let emoji = "😀\tgrinning face\n👍🏽\tthumbs up: medium skin tone\n";
        Vader::from_texts(lexicon, emoji).unwrap()
    }

    #[test]
    fn python_string_helpers() {
        assert!(is_py_upper("GOOD!"));
        assert!(!is_py_upper("Good"));
        assert!(!is_py_upper("123"));
        assert!(!is_py_upper("ǅ"));
        assert_eq!(strip_punctuation("good!!!"), "good");
        assert_eq!(strip_punctuation(":)"), ":)");
        assert_eq!(strip_punctuation("ok!"), "ok!");
        assert_eq!(
            py_split(" a\u{1f}b  c\u{3000}").collect::<Vec<_>>(),
            vec!["a", "b", "c"]
        );
        assert_eq!(py_round(0.12345, 3), 0.123);
        assert_eq!(py_round(-0.45678, 4), -0.4568);
    }

    #[test]
    fn lexicon_parsing() {
        let v = tiny();
        assert_eq!(v.lexicon_len(), 5);
        // Only single code points are kept from the emoji lexicon.
        assert_eq!(v.emojis.len(), 1);
        assert!(Vader::from_texts("word-without-measure\n", "").is_err());
        assert!(Vader::from_texts("good\tnot-a-number\n", "").is_err());
    }

    #[test]
    fn basic_rules() {
        let v = tiny();
        let good = v.polarity_scores("good");
        // 1.9 / sqrt(1.9² + 15)
        assert!((good.compound - 0.4404).abs() < 1e-9, "{good:?}");
        assert_eq!((good.pos, good.neu, good.neg), (1.0, 0.0, 0.0));
        assert!(v.polarity_scores("not good").compound < 0.0);
        assert!(v.polarity_scores("good!").compound > good.compound);
        assert!(v.polarity_scores("very good").compound > good.compound);
        assert!(v.polarity_scores("😀").compound == 0.0);
        assert_eq!(v.polarity_scores(""), PolarityScores::default());
        assert_eq!(v.polarity_scores("   "), PolarityScores::default());
    }

    /// The original `_but_check`, quadratic, as written in Python.
    fn but_check_naive(lower: &[String], sentiments: &mut [f64]) {
        let Some(bi) = lower.iter().position(|w| w == "but") else {
            return;
        };
        for k in 0..sentiments.len() {
            let v = sentiments[k];
            let si = sentiments.iter().position(|x| *x == v).unwrap();
            if si < bi {
                sentiments[si] = v * 0.5;
            } else if si > bi {
                sentiments[si] = v * 1.5;
            }
        }
    }

    #[test]
    fn but_check_matches_the_original_quirks() {
        let cases: Vec<Vec<f64>> = vec![
            vec![1.0, 0.0, 0.5, 2.0],
            vec![1.5, 1.5, 0.0, 1.5],
            vec![0.5, 1.0, 0.0, 0.5, 0.25, 2.0, 1.0],
            vec![-0.0, 0.0, 0.0, -1.0, 1.0, 0.5],
            vec![3.0, 1.5, 0.0, 2.0, 3.0, 0.75, 1.5],
        ];
        for case in cases {
            let mut words: Vec<String> = (0..case.len()).map(|i| format!("w{i}")).collect();
            let bi = case.iter().position(|v| *v == 0.0).unwrap();
            words[bi] = "but".into();
            let mut fast = case.clone();
            let mut naive = case.clone();
            but_check(&words, &mut fast);
            but_check_naive(&words, &mut naive);
            assert_eq!(fast, naive, "{case:?}");
        }
    }
}
