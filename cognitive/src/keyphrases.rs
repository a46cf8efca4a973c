//! Key phrases: candidate word n-grams ranked by embedding similarity to the document, with
//! diversity (Maximal Marginal Relevance), as KeyBERT does.
//!
//! 1. Candidates are the document's word n-grams of one to three words that have no punctuation
//!    inside, neither start nor end with an English stopword (nor have one inside other than
//!    "of" and "for"), do not start right after a linking verb ("was slow", "seemed tired") unless
//!    capitalised, and are not only numbers. This approximates noun phrases without a tagger. They
//!    are deduplicated case-insensitively (the first occurrence's spelling is kept).
//! 2. The document (in chunks of at most [`CHUNK_WORDS`] words, averaged, when it is longer than
//!    the encoder reads) and every candidate are embedded with the [`SentenceEncoder`] in one batch.
//! 3. The first phrase is the candidate closest to the document; each next one maximises
//!    `λ·cos(candidate, document) − (1 − λ)·max cos(candidate, already chosen)` with λ =
//!    [`DEFAULT_LAMBDA`], so near-duplicates ("food", "great food") do not crowd out other topics.
//!
//! Phrases are returned most relevant first, spelled as they appear in the text.

use std::collections::HashMap;

use cerulean_models::ModelStore;
use cerulean_serving::backend::BackendOptions;
use cerulean_serving::signature::TensorSpec;
use cerulean_serving::{DataType, Tensor};

use crate::encoder::{Embedding, EncoderFiles, SentenceEncoder, cosine};
use crate::error::{CognitiveError, Result};
use crate::pipeline::{TextPipeline, TextRunner, bytes_rows, runtime_options};

/// The version reported with key phrases: MMR over all-MiniLM-L6-v2 embeddings.
pub const MODEL_VERSION: &str = "mmr-all-MiniLM-L6-v2";
/// The name of the key-phrase pipeline's output (a JSON array of strings per document).
pub const KEY_PHRASES_OUTPUT: &str = "KEY_PHRASES";
/// The most phrases returned per document by default.
pub const DEFAULT_MAX_PHRASES: usize = 10;
/// The default MMR trade-off: 1 ranks by relevance only, 0 by diversity only.
pub const DEFAULT_LAMBDA: f32 = 0.6;
/// The most candidates embedded per document; beyond it the most frequent (then earliest) are kept.
pub const MAX_CANDIDATES: usize = 256;
/// The longest n-gram, in words.
pub const MAX_NGRAM: usize = 3;
/// Words per chunk when a long document is embedded in parts (about 200–250 tokens).
pub const CHUNK_WORDS: usize = 150;
/// Words longer than this (in characters) are not used in candidates (hashes, URLs, unspaced scripts).
const MAX_WORD_CHARS: usize = 40;

/// English stopwords: no candidate starts or ends with one, and only [`INNER_STOPWORDS`] may be
/// inside one.
#[rustfmt::skip]
const STOPWORDS: &[&str] = &[
    "a", "about", "above", "across", "after", "afterwards", "again", "against", "ago", "all",
    "almost", "alone", "along", "already", "also", "although", "always", "am", "among",
    "amongst", "an", "and", "another", "any", "anybody", "anyhow", "anyone", "anything",
    "anyway", "anywhere", "are", "aren't", "around", "as", "at", "away", "be", "became",
    "because", "become", "becomes", "been", "before", "beforehand", "behind", "being", "below",
    "beside", "besides", "between", "beyond", "both", "but", "by", "can", "can't", "cannot",
    "could", "couldn't", "did", "didn't", "do", "does", "doesn't", "doing", "don't", "done",
    "down", "due", "during", "each", "either", "else", "elsewhere", "enough", "etc", "even",
    "ever", "every", "everyone", "everything", "everywhere", "except", "few", "for", "from",
    "further", "furthermore", "get", "gets", "getting", "got", "gotten", "had", "hadn't", "has",
    "hasn't", "have", "haven't", "having", "he", "he'd", "he'll", "he's", "hence", "her",
    "here", "here's", "hers", "herself", "him", "himself", "his", "how", "how's", "however",
    "i", "i'd", "i'll", "i'm", "i've", "if", "in", "indeed", "instead", "into", "is", "isn't",
    "it", "it'd", "it'll", "it's", "its", "itself", "just", "least", "less", "let", "let's",
    "like", "likely", "made", "make", "makes", "many", "may", "maybe", "me", "meanwhile",
    "might", "mine", "more", "moreover", "most", "mostly", "much", "must", "mustn't", "my",
    "myself", "namely", "neither", "never", "nevertheless", "next", "no", "nobody", "none",
    "nor", "not", "nothing", "now", "nowhere", "of", "off", "often", "on", "once", "one",
    "ones", "only", "onto", "or", "other", "others", "otherwise", "our", "ours", "ourselves",
    "out", "over", "own", "per", "perhaps", "quite", "rather", "really", "said", "same", "say",
    "says", "see", "seem", "seemed", "seems", "several", "shall", "shan't", "she", "she'd",
    "she'll", "she's", "should", "shouldn't", "since", "so", "some", "somebody", "somehow",
    "someone", "something", "sometime", "sometimes", "somewhere", "still", "such", "than",
    "that", "that's", "the", "their", "theirs", "them", "themselves", "then", "there",
    "there's", "thereby", "therefore", "these", "they", "they'd", "they'll", "they're",
    "they've", "this", "those", "though", "through", "throughout", "thus", "to", "together",
    "too", "toward", "towards", "under", "unless", "until", "up", "upon", "us", "use", "used",
    "using", "very", "via", "was", "wasn't", "we", "we'd", "we'll", "we're", "we've", "well",
    "were", "weren't", "what", "what's", "whatever", "when", "when's", "whenever", "where",
    "where's", "whereas", "wherever", "whether", "which", "while", "who", "who's", "whoever",
    "whole", "whom", "whose", "why", "why's", "will", "with", "within", "without", "won't",
    "would", "wouldn't", "yes", "yet", "you", "you'd", "you'll", "you're", "you've", "your",
    "yours", "yourself", "yourselves",
];

/// The stopwords a candidate may have between its first and last word ("bank of England",
/// "centre for research"); other stopwords inside rule it out: "food was good" is no phrase, and
/// "food and service" is two.
const INNER_STOPWORDS: &[&str] = &["for", "of"];

/// Whether `word` (any case; either apostrophe) is an English stopword.
pub fn is_stopword(word: &str) -> bool {
    let key = normalise_word(word);
    STOPWORDS.binary_search(&key.as_str()).is_ok()
}

/// Lower case with typographic apostrophes made plain, the key for stopwords and deduplication.
fn normalise_word(word: &str) -> String {
    word.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'")
}

/// One word of the document: its byte span and the punctuation-free run it belongs to.
#[derive(Debug, Clone)]
struct Word {
    start: usize,
    end: usize,
    /// Words in the same run are separated by whitespace only.
    run: usize,
}

/// Characters that may join two alphanumeric characters inside one word.
fn joins(c: char, before: char, after: char) -> bool {
    match c {
        '\'' | '\u{2019}' | '-' | '\u{2010}' | '\u{2011}' => true,
        '.' | ',' => before.is_ascii_digit() && after.is_ascii_digit(),
        _ => false,
    }
}

/// Splits `text` into words, numbering runs that punctuation or line breaks separate.
fn words(text: &str) -> Vec<Word> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut words = Vec::new();
    let mut run = 0;
    let mut broken = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        if c.is_alphanumeric() {
            let mut j = i + 1;
            loop {
                if j < chars.len() && chars[j].1.is_alphanumeric() {
                    j += 1;
                } else if j + 1 < chars.len()
                    && chars[j + 1].1.is_alphanumeric()
                    && joins(chars[j].1, chars[j - 1].1, chars[j + 1].1)
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if broken && !words.is_empty() {
                run += 1;
            }
            broken = false;
            let end = chars.get(j).map_or(text.len(), |&(at, _)| at);
            words.push(Word {
                start: chars[i].0,
                end,
                run,
            });
            i = j;
        } else {
            if !c.is_whitespace() || c == '\n' || c == '\r' {
                broken = true;
            }
            i += 1;
        }
    }
    words
}

/// Forms of "to be" and other linking verbs; the lower-case words right after one describe the
/// subject ("was slow", "seemed overwhelmed") rather than name something, so no candidate starts
/// there.
const COPULAS: &[&str] = &[
    "am", "are", "be", "became", "become", "becomes", "been", "being", "feel", "feels", "felt",
    "is", "looked", "looks", "remain", "remained", "remains", "seem", "seemed", "seems", "was",
    "were",
];

fn is_copula(word: &str) -> bool {
    COPULAS.contains(&normalise_word(word).as_str())
}

/// Whether a word is only digits (and the separators inside numbers).
fn is_number(word: &str) -> bool {
    word.chars().any(|c| c.is_numeric())
        && word
            .chars()
            .all(|c| c.is_numeric() || c == '.' || c == ',' || c == '-')
}

/// A candidate phrase: its spelling at its first occurrence and how often it occurs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    text: String,
    /// The words, normalised (lower case, plain apostrophes).
    words: Vec<String>,
    count: usize,
    first: usize,
}

/// The candidate phrases of `text`, deduplicated case-insensitively, in order of first occurrence
/// (1–[`MAX_NGRAM`]-word n-grams without punctuation inside, not starting or ending with a
/// stopword, not only numbers).
pub fn candidate_phrases(text: &str) -> Vec<String> {
    candidates(text).into_iter().map(|c| c.text).collect()
}

fn candidates(text: &str) -> Vec<Candidate> {
    let words = words(text);
    let usable: Vec<bool> = words
        .iter()
        .map(|w| text[w.start..w.end].chars().count() <= MAX_WORD_CHARS)
        .collect();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut found: Vec<Candidate> = Vec::new();
    for start in 0..words.len() {
        if start > 0 && words[start - 1].run == words[start].run && {
            let before = &text[words[start - 1].start..words[start - 1].end];
            let first = &text[words[start].start..words[start].end];
            is_copula(before) && !first.starts_with(char::is_uppercase)
        } {
            // A predicate ("the service was slow", "was perfectly cooked"): no noun phrase starts here.
            continue;
        }
        for n in 1..=MAX_NGRAM {
            let end = start + n; // exclusive
            if end > words.len() || words[end - 1].run != words[start].run {
                break;
            }
            if !usable[end - 1] {
                break;
            }
            if !usable[start] {
                break;
            }
            let span = &words[start..end];
            let first = &text[span[0].start..span[0].end];
            let last = &text[span[n - 1].start..span[n - 1].end];
            if is_stopword(first) || is_stopword(last) {
                continue;
            }
            if n > 2
                && span[1..n - 1].iter().any(|w| {
                    let word = &text[w.start..w.end];
                    is_stopword(word) && !INNER_STOPWORDS.contains(&normalise_word(word).as_str())
                })
            {
                continue;
            }
            if span.iter().all(|w| is_number(&text[w.start..w.end])) {
                continue;
            }
            let phrase = span
                .iter()
                .map(|w| &text[w.start..w.end])
                .collect::<Vec<_>>()
                .join(" ");
            let key = normalise_word(&phrase);
            match by_key.get(&key) {
                Some(&i) => found[i].count += 1,
                None => {
                    let words = key.split(' ').map(str::to_string).collect();
                    by_key.insert(key, found.len());
                    found.push(Candidate {
                        words,
                        text: phrase,
                        count: 1,
                        first: found.len(),
                    });
                }
            }
        }
    }
    if found.len() > MAX_CANDIDATES {
        found.sort_by(|a, b| b.count.cmp(&a.count).then(a.first.cmp(&b.first)));
        found.truncate(MAX_CANDIDATES);
        found.sort_by_key(|c| c.first);
    }
    found
}

/// Whether one word sequence occurs inside the other ("pasta" and "handmade pasta").
fn overlaps(a: &[String], b: &[String]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    !short.is_empty() && long.windows(short.len()).any(|w| w == short)
}

/// The document split into chunks of at most [`CHUNK_WORDS`] words (one chunk for short texts).
fn chunks(text: &str) -> Vec<&str> {
    let words = words(text);
    if words.len() <= CHUNK_WORDS {
        return if words.is_empty() { vec![] } else { vec![text] };
    }
    words
        .chunks(CHUNK_WORDS)
        .map(|part| &text[part[0].start..part[part.len() - 1].end])
        .collect()
}

/// Picks up to `count` of `candidates` by Maximal Marginal Relevance against `document`, returning
/// their indices in the order chosen. Once a candidate is chosen, every candidate `i` with
/// `conflicts(i, chosen)` is dropped (the extractor drops phrases that contain, or are contained
/// in, a chosen one).
pub fn mmr(
    document: &Embedding,
    candidates: &[Embedding],
    count: usize,
    lambda: f32,
    conflicts: impl Fn(usize, usize) -> bool,
) -> Vec<usize> {
    let relevance: Vec<f32> = candidates.iter().map(|c| cosine(c, document)).collect();
    // The highest similarity of each candidate to any chosen one.
    let mut redundancy = vec![f32::NEG_INFINITY; candidates.len()];
    let mut chosen: Vec<usize> = Vec::new();
    let mut open: Vec<bool> = vec![true; candidates.len()];
    while chosen.len() < count.min(candidates.len()) {
        let score = |i: usize| {
            if chosen.is_empty() {
                relevance[i]
            } else {
                lambda * relevance[i] - (1.0 - lambda) * redundancy[i]
            }
        };
        let Some(best) = (0..candidates.len())
            .filter(|&i| open[i])
            .max_by(|&a, &b| score(a).total_cmp(&score(b)).then(b.cmp(&a)))
        else {
            break;
        };
        open[best] = false;
        chosen.push(best);
        for (i, r) in redundancy.iter_mut().enumerate() {
            if open[i] {
                if conflicts(i, best) {
                    open[i] = false;
                } else {
                    *r = r.max(cosine(&candidates[i], &candidates[best]));
                }
            }
        }
    }
    chosen
}

/// How many phrases to return for a document with `candidates` candidates: about one per two
/// candidates (a run of two content words yields three), at least three (when there are), at
/// most `max`.
fn phrase_count(candidates: usize, max: usize) -> usize {
    candidates.div_ceil(2).max(candidates.min(3)).min(max)
}

/// Extracts key phrases with a [`SentenceEncoder`].
#[derive(Debug)]
pub struct KeyPhraseExtractor {
    encoder: SentenceEncoder,
    max_phrases: usize,
    lambda: f32,
}

impl KeyPhraseExtractor {
    /// An extractor returning up to [`DEFAULT_MAX_PHRASES`] phrases with λ = [`DEFAULT_LAMBDA`].
    pub fn new(encoder: SentenceEncoder) -> KeyPhraseExtractor {
        KeyPhraseExtractor {
            encoder,
            max_phrases: DEFAULT_MAX_PHRASES,
            lambda: DEFAULT_LAMBDA,
        }
    }

    /// Returns at most `max` phrases per document.
    pub fn with_max_phrases(mut self, max: usize) -> KeyPhraseExtractor {
        self.max_phrases = max;
        self
    }

    /// Sets the MMR trade-off (clamped to 0–1): 1 ranks by relevance only, lower favours diversity.
    pub fn with_lambda(mut self, lambda: f32) -> KeyPhraseExtractor {
        self.lambda = if lambda.is_finite() {
            lambda.clamp(0.0, 1.0)
        } else {
            DEFAULT_LAMBDA
        };
        self
    }

    /// The encoder, e.g. to embed other texts with the same session.
    pub fn encoder_mut(&mut self) -> &mut SentenceEncoder {
        &mut self.encoder
    }

    /// The key phrases of one document, most relevant first (none for a text without words).
    pub fn extract(&mut self, text: &str) -> Result<Vec<String>> {
        Ok(self.extract_batch(&[text])?.pop().unwrap_or_default())
    }

    /// The key phrases of each document; every document and candidate goes to the encoder in one
    /// batch.
    pub fn extract_batch(&mut self, texts: &[&str]) -> Result<Vec<Vec<String>>> {
        struct Doc<'t> {
            chunks: Vec<&'t str>,
            candidates: Vec<Candidate>,
        }
        let docs: Vec<Doc<'_>> = texts
            .iter()
            .map(|t| Doc {
                chunks: chunks(t),
                candidates: candidates(t),
            })
            .collect();
        let mut inputs: Vec<&str> = Vec::new();
        for doc in &docs {
            if doc.candidates.is_empty() {
                continue;
            }
            inputs.extend(&doc.chunks);
            inputs.extend(doc.candidates.iter().map(|c| c.text.as_str()));
        }
        let embeddings = self.encoder.encode(&inputs)?;
        let mut at = 0;
        let mut results = Vec::with_capacity(docs.len());
        for doc in &docs {
            if doc.candidates.is_empty() {
                results.push(Vec::new());
                continue;
            }
            let take = |at: &mut usize, n: usize| {
                let part = embeddings.get(*at..*at + n).ok_or_else(|| {
                    CognitiveError::Runtime("the encoder returned too few embeddings".into())
                });
                *at += n;
                part
            };
            let chunk_embeddings = take(&mut at, doc.chunks.len())?;
            let candidate_embeddings = take(&mut at, doc.candidates.len())?;
            let document = mean_direction(chunk_embeddings);
            let count = phrase_count(doc.candidates.len(), self.max_phrases);
            let words = &doc.candidates;
            let chosen = mmr(
                &document,
                candidate_embeddings,
                count,
                self.lambda,
                |a, b| overlaps(&words[a].words, &words[b].words),
            );
            results.push(
                chosen
                    .into_iter()
                    .map(|i| doc.candidates[i].text.clone())
                    .collect(),
            );
        }
        Ok(results)
    }
}

/// The normalised mean of unit vectors (the document's direction over its chunks).
fn mean_direction(vectors: &[Embedding]) -> Embedding {
    let mut sum = [0.0_f32; crate::encoder::DIMENSIONS];
    for v in vectors {
        for (s, x) in sum.iter_mut().zip(v) {
            *s += x;
        }
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        sum.iter_mut().for_each(|x| *x /= norm);
    }
    sum
}

/// The `key-phrases` text pipeline: one `KEY_PHRASES` BYTES element per document, a JSON array of
/// strings.
#[derive(Debug, Clone)]
pub struct KeyPhrasePipeline {
    files: EncoderFiles,
    options: BackendOptions,
    max_phrases: usize,
}

impl KeyPhrasePipeline {
    /// A pipeline whose runners load `files`, each with its own session created with `options`.
    pub fn new(files: EncoderFiles, options: BackendOptions) -> KeyPhrasePipeline {
        KeyPhrasePipeline {
            files,
            options,
            max_phrases: DEFAULT_MAX_PHRASES,
        }
    }

    /// A pipeline over the files pulled into `store`; when `options` names no ONNX Runtime
    /// library, the one in `store` is used.
    pub fn from_store(store: &ModelStore, options: &BackendOptions) -> Result<KeyPhrasePipeline> {
        Ok(KeyPhrasePipeline::new(
            EncoderFiles::from_store(store)?,
            runtime_options(options, store),
        ))
    }

    /// Returns at most `max` phrases per document.
    pub fn with_max_phrases(mut self, max: usize) -> KeyPhrasePipeline {
        self.max_phrases = max;
        self
    }
}

impl TextPipeline for KeyPhrasePipeline {
    fn outputs(&self) -> Vec<TensorSpec> {
        vec![TensorSpec::new(
            KEY_PHRASES_OUTPUT,
            DataType::Bytes,
            vec![1],
        )]
    }

    fn runner(&self) -> Result<Box<dyn TextRunner>> {
        let encoder = SentenceEncoder::load(&self.files, &self.options)?;
        Ok(Box::new(KeyPhraseRunner {
            extractor: KeyPhraseExtractor::new(encoder).with_max_phrases(self.max_phrases),
        }))
    }
}

/// One instance of the [`KeyPhrasePipeline`].
struct KeyPhraseRunner {
    extractor: KeyPhraseExtractor,
}

impl TextRunner for KeyPhraseRunner {
    fn run(&mut self, texts: &[&str]) -> Result<Vec<Tensor>> {
        let phrases = self.extractor.extract_batch(texts)?;
        let rows = phrases
            .iter()
            .map(serde_json::to_vec)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| CognitiveError::Runtime(format!("cannot write key phrases: {e}")))?;
        Ok(vec![bytes_rows(KEY_PHRASES_OUTPUT, &rows)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]), "sort STOPWORDS");
        assert!(is_stopword("The"));
        assert!(is_stopword("don\u{2019}t"));
        assert!(!is_stopword("food"));
    }

    #[test]
    fn candidates_respect_punctuation_stopwords_and_numbers() {
        let c =
            candidate_phrases("The food was great, but the service at Luigi's was slow in 2023.");
        for expected in ["food", "service", "Luigi's"] {
            assert!(c.iter().any(|p| p == expected), "{expected} not in {c:?}");
        }
        // No n-gram crosses the comma; none starts or ends with a stopword; no bare number.
        assert!(!c.iter().any(|p| p.contains("great but")), "{c:?}");
        assert!(
            !c.iter()
                .any(|p| p.starts_with("The ") || p.ends_with(" was"))
        );
        assert!(!c.contains(&"2023".to_string()));
        assert!(!c.contains(&"slow".to_string()), "{c:?}");
        // Inner stopwords other than "of" and "for" rule a candidate out.
        assert!(!c.contains(&"service at Luigi's".to_string()), "{c:?}");
        // Nothing starts right after a linking verb unless it is capitalised.
        let c = candidate_phrases("The pasta was perfectly cooked. The winner was Microsoft.");
        assert!(!c.iter().any(|p| p.starts_with("perfectly")), "{c:?}");
        assert!(c.contains(&"cooked".to_string()), "{c:?}");
        assert!(c.contains(&"Microsoft".to_string()), "{c:?}");
        let c = candidate_phrases("Bank of England");
        assert!(c.contains(&"Bank of England".to_string()), "{c:?}");
    }

    #[test]
    fn candidates_are_deduplicated_case_insensitively() {
        let c = candidate_phrases("Rust is fast. rust is safe. RUST!");
        assert_eq!(
            c.iter().filter(|p| p.eq_ignore_ascii_case("rust")).count(),
            1
        );
        assert_eq!(c[0], "Rust");
    }

    #[test]
    fn words_keep_hyphens_apostrophes_and_decimals() {
        let text = "state-of-the-art 3.5 stars, isn't it";
        let w: Vec<&str> = words(text).iter().map(|w| &text[w.start..w.end]).collect();
        assert_eq!(w, vec!["state-of-the-art", "3.5", "stars", "isn't", "it"]);
    }

    #[test]
    fn line_breaks_split_runs() {
        let c = candidate_phrases("Introduction\nNeural networks");
        assert!(
            !c.iter().any(|p| p.contains("Introduction Neural")),
            "{c:?}"
        );
    }

    #[test]
    fn empty_and_punctuation_only_texts_have_no_candidates() {
        assert!(candidate_phrases("").is_empty());
        assert!(candidate_phrases("  ... !!! ").is_empty());
        assert!(candidate_phrases("the and of").is_empty());
        assert!(chunks("").is_empty());
    }

    #[test]
    fn long_documents_are_chunked() {
        let text = "word ".repeat(CHUNK_WORDS * 2 + 1);
        assert_eq!(chunks(&text).len(), 3);
        assert_eq!(chunks("a short text").len(), 1);
    }

    #[test]
    fn mmr_prefers_diverse_phrases() {
        let mut doc = [0.0; crate::encoder::DIMENSIONS];
        doc[0] = 0.8;
        doc[1] = 0.6;
        let unit = |x: f32, y: f32| {
            let mut v = [0.0; crate::encoder::DIMENSIONS];
            let n = (x * x + y * y).sqrt();
            v[0] = x / n;
            v[1] = y / n;
            v
        };
        let candidates = [unit(1.0, 0.0), unit(0.99, 0.01), unit(0.0, 1.0)];
        // Relevance alone picks the two near-identical ones; MMR swaps the second for the other axis.
        let none = |_, _| false;
        assert_eq!(mmr(&doc, &candidates, 2, 1.0, none), vec![1, 0]);
        assert_eq!(mmr(&doc, &candidates, 2, 0.6, none), vec![1, 2]);
        assert!(mmr(&doc, &[], 3, 0.6, none).is_empty());
        // A conflicting candidate is never chosen after the one it conflicts with.
        assert_eq!(
            mmr(&doc, &candidates, 3, 1.0, |a, b| a + b == 1),
            vec![1, 2]
        );
    }

    #[test]
    fn overlapping_phrases_are_detected() {
        let words = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert!(overlaps(&words("pasta"), &words("handmade pasta")));
        assert!(overlaps(&words("bank of england"), &words("bank of")));
        assert!(!overlaps(&words("wine list"), &words("list wine")));
        assert!(!overlaps(&words("pasta"), &words("pastas")));
    }

    #[test]
    fn phrase_count_is_bounded() {
        assert_eq!(phrase_count(0, 10), 0);
        assert_eq!(phrase_count(2, 10), 2);
        assert_eq!(phrase_count(5, 10), 3);
        assert_eq!(phrase_count(9, 10), 5);
        assert_eq!(phrase_count(9, 2), 2);
        assert_eq!(phrase_count(90, 10), 10);
    }
}
