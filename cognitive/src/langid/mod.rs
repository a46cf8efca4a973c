//! Language detection: a reader for fastText `.ftz` supervised models (lid.176) and its pipeline.
//!
//! [`LanguageDetector`] loads fastText's lid.176 (176 languages, quantized; see [`ftz`] for the
//! file format and the prediction it reproduces) and reports the most probable language with
//! Azure's fields: `iso6391Name` (see [`names`]), the English `name`, and the model's probability
//! as the confidence score. Newlines in the text act as spaces (fastText predicts one line).
//! Text with no letters at all (empty, digits, punctuation, emoji) has no signal, and is reported
//! as Azure reports it: `(Unknown)` with score 0.
//!
//! [`LanguageDetectionPipeline`] serves it as the `language-detection` model with outputs
//! `LANGUAGE` BYTES `[1]`, `NAME` BYTES `[1]` and `SCORE` FP32 `[1]` per document.

pub mod ftz;
pub mod names;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cerulean_models::ModelStore;
use cerulean_serving::signature::TensorSpec;
use cerulean_serving::{DataType, Tensor};

use crate::error::{CognitiveError, Result};
use crate::pipeline::{TextPipeline, TextRunner, bytes_rows, fp32_rows};
use ftz::FastTextModel;

/// The model version reported with every detection.
pub const MODEL_VERSION: &str = "fasttext-lid.176";
/// The model's licence (the lid.176 weights; the package that ships them is MIT).
pub const LICENCE: &str = "CC-BY-SA-3.0";
/// The manifest entry that holds the model.
pub const MODEL_ENTRY: &str = "lid176";
/// The model file inside the entry's directory.
pub const MODEL_FILE: &str = "lid.176.ftz";
/// What Azure reports for text in no detectable language (both `iso6391Name` and `name`).
pub const UNKNOWN: &str = "(Unknown)";
/// The pipeline's language-code output.
pub const LANGUAGE_OUTPUT: &str = "LANGUAGE";
/// The pipeline's language-name output.
pub const NAME_OUTPUT: &str = "NAME";
/// The pipeline's confidence output.
pub const SCORE_OUTPUT: &str = "SCORE";

/// One detected language.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// ISO 639-1 code where one exists, else the model's code; `(Unknown)` without signal.
    pub iso6391_name: String,
    /// English name of the language; `(Unknown)` without signal.
    pub name: String,
    /// The model's probability for this language, in `[0, 1]`; 0 without signal.
    pub score: f32,
}

impl Detection {
    /// Azure's answer for text without a detectable language.
    pub fn unknown() -> Detection {
        Detection {
            iso6391_name: UNKNOWN.to_string(),
            name: UNKNOWN.to_string(),
            score: 0.0,
        }
    }

    /// Whether this is the `(Unknown)` answer.
    pub fn is_unknown(&self) -> bool {
        self.iso6391_name == UNKNOWN
    }

    fn from_label(label: &str, probability: f32) -> Detection {
        let (iso, name) = names::language(label);
        Detection {
            iso6391_name: iso.to_string(),
            name: name.to_string(),
            score: probability.clamp(0.0, 1.0),
        }
    }
}

/// Whether `text` carries any signal for language detection (at least one letter).
pub fn has_signal(text: &str) -> bool {
    text.chars().any(char::is_alphabetic)
}

/// The lid.176 language detector. Cheap to share: prediction takes `&self`.
#[derive(Debug, Clone)]
pub struct LanguageDetector {
    model: FastTextModel,
}

impl LanguageDetector {
    /// Loads a fastText supervised model file (`lid.176.ftz`).
    pub fn load(path: impl AsRef<Path>) -> Result<LanguageDetector> {
        Ok(LanguageDetector {
            model: FastTextModel::load(path.as_ref(), MODEL_VERSION)?,
        })
    }

    /// The model file as pulled into `store`; an error naming `cerulean models pull lid176` if
    /// it is absent.
    pub fn model_path(store: &ModelStore) -> Result<PathBuf> {
        store.installed_file(MODEL_ENTRY, MODEL_FILE).ok_or_else(|| {
            CognitiveError::model(
                MODEL_VERSION,
                format!(
                    "{MODEL_FILE} of '{MODEL_ENTRY}' is not installed under {}: run `cerulean models pull {MODEL_ENTRY}`",
                    store.models_dir().display()
                ),
            )
        })
    }

    /// Loads the model pulled into `store`.
    pub fn from_store(store: &ModelStore) -> Result<LanguageDetector> {
        LanguageDetector::load(LanguageDetector::model_path(store)?)
    }

    /// The underlying fastText model.
    pub fn model(&self) -> &FastTextModel {
        &self.model
    }

    /// The most probable language of `text`, or [`Detection::unknown`] when the text has no
    /// letters.
    pub fn detect(&self, text: &str) -> Detection {
        self.detect_top(text, 1)
            .into_iter()
            .next()
            .unwrap_or_else(Detection::unknown)
    }

    /// The `k` most probable languages of `text`, best first; empty when the text has no
    /// letters.
    pub fn detect_top(&self, text: &str, k: usize) -> Vec<Detection> {
        if !has_signal(text) {
            return Vec::new();
        }
        self.model
            .predict(text, k, 0.0)
            .into_iter()
            .map(|p| Detection::from_label(&p.label, p.probability))
            .collect()
    }
}

/// The `language-detection` text pipeline: `LANGUAGE` BYTES, `NAME` BYTES and `SCORE` FP32 per
/// document. Every runner shares one loaded model.
#[derive(Debug, Clone)]
pub struct LanguageDetectionPipeline {
    detector: Arc<LanguageDetector>,
}

impl LanguageDetectionPipeline {
    /// A pipeline over a loaded detector.
    pub fn new(detector: Arc<LanguageDetector>) -> LanguageDetectionPipeline {
        LanguageDetectionPipeline { detector }
    }

    /// A pipeline over the model pulled into `store`.
    pub fn from_store(store: &ModelStore) -> Result<LanguageDetectionPipeline> {
        Ok(LanguageDetectionPipeline::new(Arc::new(
            LanguageDetector::from_store(store)?,
        )))
    }

    /// The detector the runners use.
    pub fn detector(&self) -> &Arc<LanguageDetector> {
        &self.detector
    }
}

impl TextPipeline for LanguageDetectionPipeline {
    fn outputs(&self) -> Vec<TensorSpec> {
        vec![
            TensorSpec::new(LANGUAGE_OUTPUT, DataType::Bytes, vec![1]),
            TensorSpec::new(NAME_OUTPUT, DataType::Bytes, vec![1]),
            TensorSpec::new(SCORE_OUTPUT, DataType::Fp32, vec![1]),
        ]
    }

    fn runner(&self) -> Result<Box<dyn TextRunner>> {
        Ok(Box::new(LanguageDetectionRunner {
            detector: self.detector.clone(),
        }))
    }
}

/// One instance of the [`LanguageDetectionPipeline`].
struct LanguageDetectionRunner {
    detector: Arc<LanguageDetector>,
}

impl TextRunner for LanguageDetectionRunner {
    fn run(&mut self, texts: &[&str]) -> Result<Vec<Tensor>> {
        let detections: Vec<Detection> = texts.iter().map(|t| self.detector.detect(t)).collect();
        let codes: Vec<&str> = detections.iter().map(|d| d.iso6391_name.as_str()).collect();
        let names: Vec<&str> = detections.iter().map(|d| d.name.as_str()).collect();
        let scores: Vec<f32> = detections.iter().map(|d| d.score).collect();
        Ok(vec![
            bytes_rows(LANGUAGE_OUTPUT, &codes)?,
            bytes_rows(NAME_OUTPUT, &names)?,
            fp32_rows(SCORE_OUTPUT, texts.len(), &[1], &scores)?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cerulean_serving::tensor::BytesElements;

    fn tiny_detector() -> LanguageDetector {
        let tiny = ftz::tests::TinyModel {
            dim: 2,
            loss: 3,
            minn: 0,
            maxn: 0,
            bucket: 0,
            word_ngrams: 1,
            words: vec![(ftz::EOS, 10), ("hello", 5), ("bonjour", 4)],
            labels: vec![("__label__en", 7), ("__label__fr", 3)],
            input: vec![0.0, 0.0, 4.0, 0.0, 0.0, 4.0],
            output: vec![1.0, 0.0, 0.0, 1.0],
        };
        LanguageDetector {
            model: FastTextModel::from_bytes(&tiny.bytes(), "tiny").unwrap(),
        }
    }

    #[test]
    fn no_signal_is_unknown() {
        let detector = tiny_detector();
        for text in ["", "   ", "12345 678", "?!…", "🙂🙂"] {
            assert_eq!(detector.detect(text), Detection::unknown(), "{text:?}");
            assert!(detector.detect_top(text, 3).is_empty());
        }
        let d = detector.detect("bonjour\nbonjour");
        assert_eq!((d.iso6391_name.as_str(), d.name.as_str()), ("fr", "French"));
        assert!(d.score > 0.5 && d.score <= 1.0);
    }

    #[test]
    fn pipeline_rows_follow_the_batch() {
        let pipeline = LanguageDetectionPipeline::new(Arc::new(tiny_detector()));
        assert_eq!(pipeline.outputs().len(), 3);
        let mut runner = pipeline.runner().unwrap();
        let out = runner.run(&["hello hello", "", "bonjour"]).unwrap();
        let codes: Vec<&[u8]> = BytesElements::new(&out[0].data).collect();
        assert_eq!(codes, vec![b"en".as_slice(), b"(Unknown)", b"fr"]);
        let names: Vec<&[u8]> = BytesElements::new(&out[1].data).collect();
        assert_eq!(names[2], b"French");
        assert_eq!(out[2].shape, vec![3, 1]);
        let scores: Vec<f32> = out[2]
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(scores[1], 0.0);
        assert!(scores[0] > 0.5);
    }

    #[test]
    fn missing_model_names_the_pull_command() {
        let home = tempfile::tempdir().unwrap();
        let store = ModelStore::new(home.path());
        let err = LanguageDetector::from_store(&store)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cerulean models pull lid176"), "{err}");
    }
}
