//! Sentiment: the VADER lexicon and rules, ported to Rust, and its pipeline.
//!
//! [`vader`] is a faithful port of `vaderSentiment` 3.3.2 (MIT): per text it gives VADER's
//! `compound`, `pos`, `neu` and `neg`. [`SentimentAnalyzer`] shapes that like Azure's sentiment
//! analysis: the document is split into sentences ([`split_sentences`]), each sentence is scored
//! by VADER and labelled `positive` (compound ≥ 0.05), `negative` (compound ≤ −0.05) or `neutral`
//! (VADER's own thresholds), with confidence scores from [`confidence_scores`]; the document is
//! `mixed` when it has both a positive and a negative sentence, and otherwise labelled from the
//! mean of its sentences' compound scores.
//!
//! [`SentimentPipeline`] serves it as the `sentiment` model with outputs `SENTIMENT` BYTES `[1]`,
//! `SCORES` FP32 `[3]` (positive, neutral, negative) and `SENTENCES` BYTES `[1]` (a JSON array of
//! `{"text", "offset", "length", "sentiment", "confidenceScores"}`, offsets and lengths in Unicode
//! code points) per document.

pub mod binding;
pub mod bound;
pub mod vader;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cerulean_models::ModelStore;
use cerulean_serving::signature::TensorSpec;
use cerulean_serving::{DataType, Tensor};
use serde::Serialize;

use crate::error::{CognitiveError, Result};
use crate::pipeline::{TextPipeline, TextRunner, bytes_rows, fp32_rows};
pub use binding::{BindingError, SentimentBinding};
pub use bound::BoundSentiment;
pub use vader::{PolarityScores, Vader};

/// The model version reported with every result: the VADER 3.3.2 lexicon with the rules ported
/// to Rust.
pub const MODEL_VERSION: &str = "vader-3.3.2-lexicon";
/// The licence of the lexicon and of the rules ported from `vaderSentiment`.
pub const LICENCE: &str = "MIT";
/// The manifest entry that holds the lexicons.
pub const MODEL_ENTRY: &str = "vader-lexicon";
/// The sentiment lexicon inside the entry's directory.
pub const LEXICON_FILE: &str = "vader_lexicon.txt";
/// The emoji lexicon inside the entry's directory.
pub const EMOJI_LEXICON_FILE: &str = "emoji_utf8_lexicon.txt";
/// The compound score from which a text is positive (and, negated, negative); VADER's threshold.
pub const THRESHOLD: f64 = 0.05;
/// The pipeline's label output.
pub const SENTIMENT_OUTPUT: &str = "SENTIMENT";
/// The pipeline's confidence-score output (positive, neutral, negative).
pub const SCORES_OUTPUT: &str = "SCORES";
/// The pipeline's per-sentence output (JSON).
pub const SENTENCES_OUTPUT: &str = "SENTENCES";

/// A sentiment label, named as Azure names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sentiment {
    /// Compound ≥ 0.05.
    Positive,
    /// Compound strictly between −0.05 and 0.05.
    Neutral,
    /// Compound ≤ −0.05.
    Negative,
    /// A document with at least one positive and one negative sentence.
    Mixed,
}

impl Sentiment {
    /// The label of a compound score (never [`Sentiment::Mixed`]).
    pub fn from_compound(compound: f64) -> Sentiment {
        if compound >= THRESHOLD {
            Sentiment::Positive
        } else if compound <= -THRESHOLD {
            Sentiment::Negative
        } else {
            Sentiment::Neutral
        }
    }

    /// `positive`, `neutral`, `negative` or `mixed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Sentiment::Positive => "positive",
            Sentiment::Neutral => "neutral",
            Sentiment::Negative => "negative",
            Sentiment::Mixed => "mixed",
        }
    }
}

impl std::fmt::Display for Sentiment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Azure's confidence scores: three values in `[0, 1]` that sum to 1.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ConfidenceScores {
    /// Confidence that the text is positive.
    pub positive: f32,
    /// Confidence that the text is neutral.
    pub neutral: f32,
    /// Confidence that the text is negative.
    pub negative: f32,
}

impl ConfidenceScores {
    /// `[positive, neutral, negative]`, the order of the `SCORES` output.
    pub fn to_array(self) -> [f32; 3] {
        [self.positive, self.neutral, self.negative]
    }
}

/// The positive confidence as a function of the compound score: piecewise linear through
/// (−1, 0), (−0.05, 0.1), (0, 0.2), (0.05, 0.45), (1, 1).
fn positive_confidence(compound: f64) -> f64 {
    const KNOTS: [(f64, f64); 5] = [
        (-1.0, 0.0),
        (-THRESHOLD, 0.1),
        (0.0, 0.2),
        (THRESHOLD, 0.45),
        (1.0, 1.0),
    ];
    let c = compound.clamp(-1.0, 1.0);
    for pair in KNOTS.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if c <= x1 {
            return y0 + (y1 - y0) * (c - x0) / (x1 - x0);
        }
    }
    1.0
}

/// Confidence scores for a VADER compound score.
///
/// `positive(c)` is piecewise linear through the points (−1, 0), (−0.05, 0.1), (0, 0.2),
/// (0.05, 0.45) and (1, 1); `negative(c) = positive(−c)`; `neutral = 1 − positive − negative`.
/// So the three always sum to 1, `positive` rises and `negative` falls monotonically with the
/// compound score, `neutral` peaks at 0.6 for a compound of 0 and falls to 0 at ±1, and the
/// largest score is the label's: `positive` for c ≥ 0.05, `negative` for c ≤ −0.05, `neutral`
/// in between (at exactly ±0.05 the polar score ties with `neutral` at 0.45 and the label is the
/// polar one, as VADER's thresholds are inclusive). Examples: c = 0.5 → (0.71, 0.24, 0.05);
/// c = −0.9 → (0.01, 0.05, 0.94).
pub fn confidence_scores(compound: f64) -> ConfidenceScores {
    let positive = positive_confidence(compound);
    let negative = positive_confidence(-compound);
    let neutral = (1.0 - positive - negative).max(0.0);
    ConfidenceScores {
        positive: positive as f32,
        neutral: neutral as f32,
        negative: negative as f32,
    }
}

/// A sentence of a document: its text and where it is, in Unicode code points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentenceSpan<'a> {
    /// The sentence, without surrounding whitespace.
    pub text: &'a str,
    /// Code points before the sentence in the document.
    pub offset: usize,
    /// Code points in the sentence.
    pub length: usize,
}

fn is_terminal(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

/// Full-width terminators, which end a sentence without a following space.
fn is_wide_terminal(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '｡')
}

fn is_closing(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '}' | '»' | '”' | '’' | '」' | '』' | '）'
    )
}

fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// Splits a document into sentences. A sentence ends at a line break, or after a run of `.`,
/// `!`, `?` or `…` (with any closing quotes or brackets after it) that is followed by whitespace
/// or the end of the text, so decimals (`3.5`), abbreviations inside words (`e.g.x`) and URLs do
/// not split; full-width `。！？` end a sentence wherever they are. Whitespace around sentences is
/// dropped, and so are empty sentences. Offsets and lengths count Unicode code points.
pub fn split_sentences(text: &str) -> Vec<SentenceSpan<'_>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut spans = Vec::new();
    let mut push = |start: usize, end: usize| {
        // `start` and `end` index `chars`.
        let mut s = start;
        let mut e = end;
        while s < e && chars[s].1.is_whitespace() {
            s += 1;
        }
        while e > s && chars[e - 1].1.is_whitespace() {
            e -= 1;
        }
        if s < e {
            let from = chars[s].0;
            let to = chars.get(e).map_or(text.len(), |(b, _)| *b);
            spans.push(SentenceSpan {
                text: &text[from..to],
                offset: s,
                length: e - s,
            });
        }
    };
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        if is_line_break(c) {
            push(start, i);
            i += 1;
            start = i;
        } else if is_wide_terminal(c) {
            while i < chars.len() && (is_wide_terminal(chars[i].1) || is_closing(chars[i].1)) {
                i += 1;
            }
            push(start, i);
            start = i;
        } else if is_terminal(c) {
            while i < chars.len() && is_terminal(chars[i].1) {
                i += 1;
            }
            while i < chars.len() && is_closing(chars[i].1) {
                i += 1;
            }
            if i == chars.len() || chars[i].1.is_whitespace() {
                push(start, i);
                start = i;
            }
        } else {
            i += 1;
        }
    }
    push(start, chars.len());
    spans
}

/// One sentence's sentiment, serialised as Azure's `sentences[]` item.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SentenceSentiment {
    /// The sentence.
    pub text: String,
    /// Code points before the sentence in the document.
    pub offset: usize,
    /// Code points in the sentence.
    pub length: usize,
    /// `positive`, `neutral` or `negative`.
    pub sentiment: Sentiment,
    /// The confidence scores ([`confidence_scores`] of the compound score).
    pub confidence_scores: ConfidenceScores,
    /// VADER's compound score of the sentence (not serialised).
    #[serde(skip)]
    pub compound: f64,
}

/// A document's sentiment.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentSentiment {
    /// `mixed` with both positive and negative sentences, else the label of [`Self::compound`].
    pub sentiment: Sentiment,
    /// For `mixed`, the mean of the sentences' scores; otherwise [`confidence_scores`] of
    /// [`Self::compound`]. They sum to 1.
    pub confidence_scores: ConfidenceScores,
    /// The mean of the sentences' compound scores (0 without sentences).
    pub compound: f64,
    /// The sentences in document order.
    pub sentences: Vec<SentenceSentiment>,
}

/// VADER shaped like Azure's sentiment analysis. Cheap to share: analysis takes `&self`.
#[derive(Debug, Clone)]
pub struct SentimentAnalyzer {
    vader: Vader,
}

impl SentimentAnalyzer {
    /// An analyser over a loaded VADER lexicon.
    pub fn new(vader: Vader) -> SentimentAnalyzer {
        SentimentAnalyzer { vader }
    }

    /// Reads `vader_lexicon.txt` and `emoji_utf8_lexicon.txt` from `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<SentimentAnalyzer> {
        let dir = dir.as_ref();
        Ok(SentimentAnalyzer::new(Vader::load(
            &dir.join(LEXICON_FILE),
            &dir.join(EMOJI_LEXICON_FILE),
        )?))
    }

    /// The lexicon files as pulled into `store` (lexicon, emoji lexicon); an error naming
    /// `cerulean models pull vader-lexicon` if one is absent.
    pub fn lexicon_paths(store: &ModelStore) -> Result<(PathBuf, PathBuf)> {
        let find = |dest: &str| {
            store.installed_file(MODEL_ENTRY, dest).ok_or_else(|| {
                CognitiveError::model(
                    MODEL_VERSION,
                    format!(
                        "{dest} of '{MODEL_ENTRY}' is not installed under {}: run `cerulean models pull {MODEL_ENTRY}`",
                        store.models_dir().display()
                    ),
                )
            })
        };
        Ok((find(LEXICON_FILE)?, find(EMOJI_LEXICON_FILE)?))
    }

    /// Loads the lexicons pulled into `store`.
    pub fn from_store(store: &ModelStore) -> Result<SentimentAnalyzer> {
        let (lexicon, emoji) = SentimentAnalyzer::lexicon_paths(store)?;
        Ok(SentimentAnalyzer::new(Vader::load(&lexicon, &emoji)?))
    }

    /// VADER's scores of `text` as one piece (no sentence splitting).
    pub fn polarity_scores(&self, text: &str) -> PolarityScores {
        self.vader.polarity_scores(text)
    }

    /// The sentiment of one sentence (or any text taken as one).
    pub fn sentence(&self, text: &str) -> (Sentiment, ConfidenceScores, f64) {
        let compound = self.vader.polarity_scores(text).compound;
        (
            Sentiment::from_compound(compound),
            confidence_scores(compound),
            compound,
        )
    }

    /// The document's sentiment, sentence by sentence.
    pub fn analyze(&self, text: &str) -> DocumentSentiment {
        let sentences: Vec<SentenceSentiment> = split_sentences(text)
            .into_iter()
            .map(|span| {
                let (sentiment, confidence_scores, compound) = self.sentence(span.text);
                SentenceSentiment {
                    text: span.text.to_string(),
                    offset: span.offset,
                    length: span.length,
                    sentiment,
                    confidence_scores,
                    compound,
                }
            })
            .collect();
        let n = sentences.len().max(1) as f64;
        let compound = sentences.iter().map(|s| s.compound).sum::<f64>() / n;
        let has = |label| sentences.iter().any(|s| s.sentiment == label);
        let (sentiment, confidence_scores) = if has(Sentiment::Positive) && has(Sentiment::Negative)
        {
            let mean = |f: fn(&ConfidenceScores) -> f32| {
                sentences
                    .iter()
                    .map(|s| f(&s.confidence_scores))
                    .sum::<f32>()
                    / n as f32
            };
            let scores = ConfidenceScores {
                positive: mean(|c| c.positive),
                neutral: mean(|c| c.neutral),
                negative: mean(|c| c.negative),
            };
            (Sentiment::Mixed, scores)
        } else {
            (
                Sentiment::from_compound(compound),
                confidence_scores(compound),
            )
        };
        DocumentSentiment {
            sentiment,
            confidence_scores,
            compound,
            sentences,
        }
    }
}

/// The `sentiment` text pipeline: `SENTIMENT` BYTES, `SCORES` FP32 `[3]` and `SENTENCES` BYTES
/// (JSON) per document. Every runner shares one lexicon.
#[derive(Debug, Clone)]
pub struct SentimentPipeline {
    analyzer: Arc<SentimentAnalyzer>,
}

impl SentimentPipeline {
    /// A pipeline over a loaded analyser.
    pub fn new(analyzer: Arc<SentimentAnalyzer>) -> SentimentPipeline {
        SentimentPipeline { analyzer }
    }

    /// A pipeline over the lexicons pulled into `store`.
    pub fn from_store(store: &ModelStore) -> Result<SentimentPipeline> {
        Ok(SentimentPipeline::new(Arc::new(
            SentimentAnalyzer::from_store(store)?,
        )))
    }

    /// The analyser the runners use.
    pub fn analyzer(&self) -> &Arc<SentimentAnalyzer> {
        &self.analyzer
    }
}

impl TextPipeline for SentimentPipeline {
    fn outputs(&self) -> Vec<TensorSpec> {
        vec![
            TensorSpec::new(SENTIMENT_OUTPUT, DataType::Bytes, vec![1]),
            TensorSpec::new(SCORES_OUTPUT, DataType::Fp32, vec![3]),
            TensorSpec::new(SENTENCES_OUTPUT, DataType::Bytes, vec![1]),
        ]
    }

    fn runner(&self) -> Result<Box<dyn TextRunner>> {
        Ok(Box::new(SentimentRunner {
            analyzer: self.analyzer.clone(),
        }))
    }
}

/// One instance of the [`SentimentPipeline`].
struct SentimentRunner {
    analyzer: Arc<SentimentAnalyzer>,
}

impl TextRunner for SentimentRunner {
    fn run(&mut self, texts: &[&str]) -> Result<Vec<Tensor>> {
        let mut labels = Vec::with_capacity(texts.len());
        let mut scores = Vec::with_capacity(texts.len() * 3);
        let mut sentences = Vec::with_capacity(texts.len());
        for text in texts {
            let doc = self.analyzer.analyze(text);
            labels.push(doc.sentiment.as_str());
            scores.extend(doc.confidence_scores.to_array());
            sentences.push(serde_json::to_vec(&doc.sentences).map_err(|e| {
                CognitiveError::model(MODEL_VERSION, format!("sentences as JSON: {e}"))
            })?);
        }
        Ok(vec![
            bytes_rows(SENTIMENT_OUTPUT, &labels)?,
            fp32_rows(SCORES_OUTPUT, texts.len(), &[3], &scores)?,
            bytes_rows(SENTENCES_OUTPUT, &sentences)?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cerulean_serving::tensor::BytesElements;

    fn analyzer() -> SentimentAnalyzer {
        let lexicon =
            "good\t1.9\t0.9\t[]\nbad\t-2.5\t0.5\t[]\nlove\t3.2\t0.4\t[]\nawful\t-2.0\t0.4\t[]\n";
        SentimentAnalyzer::new(Vader::from_texts(lexicon, "😀\tgrinning face\n").unwrap())
    }

    #[test]
    fn confidence_scores_sum_to_one_and_follow_the_label() {
        let mut last = confidence_scores(-1.0);
        for step in 0..=2000 {
            let c = -1.0 + step as f64 / 1000.0;
            let s = confidence_scores(c);
            let sum = s.positive + s.neutral + s.negative;
            assert!((sum - 1.0).abs() < 1e-6, "{c}: {s:?}");
            assert!(
                s.positive >= last.positive && s.negative <= last.negative,
                "{c}"
            );
            let max = s.positive.max(s.neutral).max(s.negative);
            let label_score = match Sentiment::from_compound(c) {
                Sentiment::Positive => s.positive,
                Sentiment::Negative => s.negative,
                _ => s.neutral,
            };
            assert_eq!(label_score, max, "{c}: {s:?}");
            last = s;
        }
        let s = confidence_scores(0.0);
        assert!((s.neutral - 0.6).abs() < 1e-6 && (s.positive - 0.2).abs() < 1e-6);
        let s = confidence_scores(1.0);
        assert_eq!(s.to_array(), [1.0, 0.0, 0.0]);
    }

    #[test]
    fn sentences_split_with_code_point_offsets() {
        let text = "Héllo wörld! Price is 3.5 dollars.\nSecond line  ?? Last one… \"Quoted.\" end";
        let spans = split_sentences(text);
        let texts: Vec<&str> = spans.iter().map(|s| s.text).collect();
        assert_eq!(
            texts,
            vec![
                "Héllo wörld!",
                "Price is 3.5 dollars.",
                "Second line  ??",
                "Last one…",
                "\"Quoted.\"",
                "end"
            ]
        );
        let chars: Vec<char> = text.chars().collect();
        for span in &spans {
            let got: String = chars[span.offset..span.offset + span.length]
                .iter()
                .collect();
            assert_eq!(got, span.text);
        }
        assert_eq!(spans[1].offset, 13);
        assert!(split_sentences("  \n\n ").is_empty());
        let cjk = split_sentences("今日は良い天気。明日も！");
        assert_eq!(cjk.len(), 2);
        assert_eq!((cjk[1].offset, cjk[1].length), (8, 4));
    }

    #[test]
    fn document_labels() {
        let a = analyzer();
        let doc = a.analyze("I love it. This is good!");
        assert_eq!(doc.sentiment, Sentiment::Positive);
        assert_eq!(doc.sentences.len(), 2);
        let doc = a.analyze("I love the food. The service was awful.");
        assert_eq!(doc.sentiment, Sentiment::Mixed);
        let sum: f32 = doc.confidence_scores.to_array().iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
        let doc = a.analyze("The meeting is on Tuesday.");
        assert_eq!(doc.sentiment, Sentiment::Neutral);
        let doc = a.analyze("");
        assert_eq!(doc.sentiment, Sentiment::Neutral);
        assert!(doc.sentences.is_empty());
    }

    #[test]
    fn pipeline_outputs() {
        let pipeline = SentimentPipeline::new(Arc::new(analyzer()));
        let mut runner = pipeline.runner().unwrap();
        let out = runner.run(&["So bad.", "Ünïcode is good. 😀"]).unwrap();
        let labels: Vec<&[u8]> = BytesElements::new(&out[0].data).collect();
        assert_eq!(labels, vec![b"negative".as_slice(), b"positive"]);
        assert_eq!(out[1].shape, vec![2, 3]);
        let sentences: Vec<&[u8]> = BytesElements::new(&out[2].data).collect();
        let json: serde_json::Value = serde_json::from_slice(sentences[1]).unwrap();
        assert_eq!(json[1]["text"], "😀");
        assert_eq!(json[1]["offset"], 17);
        assert_eq!(json[1]["length"], 1);
        assert_eq!(json[0]["sentiment"], "positive");
        assert!(json[0]["confidenceScores"]["positive"].as_f64().unwrap() > 0.5);
        assert!(json[0].get("compound").is_none());
    }

    #[test]
    fn missing_lexicon_names_the_pull_command() {
        let home = tempfile::tempdir().unwrap();
        let store = ModelStore::new(home.path());
        let err = SentimentAnalyzer::from_store(&store)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cerulean models pull vader-lexicon"), "{err}");
    }
}
