//! [`JobSpec`]: a training job as written in a job file (TOML) or stored by the registry (JSON).
//!
//! ```toml
//! name = "digits-mlp"
//! experiment = "digits"
//! register_as = "digits"
//! [dataset]
//! uri = "file:///data/digits.parquet"   # also az://container/path and s3://bucket/path
//! format = "parquet"                     # parquet | csv | jsonl | image-folder
//! label = "target"
//! validation_split = 0.2
//! [model]
//! family = "mlp"                         # linear | logistic | mlp | text-classifier | image-classifier
//! hidden = [64, 32]
//! [train]
//! epochs = 30
//! batch_size = 64
//! learning_rate = 0.001
//! device = "cpu"                         # cpu | cuda | cuda:N
//! seed = 42
//! ```
//!
//! Every numeric hyperparameter of `[model]` and `[train]` ([`Param`]) may be given as a list to
//! sweep over (`learning_rate = [1e-3, 3e-3]`, `hidden = [[64], [64, 32]]`); see
//! [`JobSpec::trials`]. Unknown keys are errors that name the key.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::device::parse_device;
use crate::error::{Result, TrainError};
use crate::metrics;
use crate::sweep::{self, Trial};

/// The largest number of epochs a job may ask for.
pub const MAX_EPOCHS: usize = 100_000;
/// The largest width of one hidden layer.
pub const MAX_LAYER_WIDTH: usize = 65_536;
/// The largest number of hidden layers.
pub const MAX_HIDDEN_LAYERS: usize = 64;

/// A training job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The job's name (also the run name).
    pub name: String,
    /// The experiment the run is recorded under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// The registered model a successful run becomes a new version of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_as: Option<String>,
    /// `[dataset]`: where the data is and which columns to use.
    pub dataset: DatasetSpec,
    /// `[model]`: the model family and its hyperparameters.
    pub model: ModelSection,
    /// `[train]`: the optimisation settings.
    #[serde(default)]
    pub train: TrainSection,
    /// `[sweep]`: how swept hyperparameters are expanded into trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepSection>,
}

/// `[dataset]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// A lake URI: `file:///path`, a plain path, `az://container/path` or `s3://bucket/path`; a
    /// single file or a prefix holding several files of the format.
    pub uri: String,
    /// The file format.
    pub format: DatasetFormat,
    /// The label (target) column. Required for every format but `image-folder`, whose classes
    /// are its sub-folders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The feature columns, in the order the model takes them. Default: every numeric column
    /// except the label (and the text column), in schema order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// The fraction of rows held out for validation (chosen by a seeded permutation of the rows
    /// from `train.seed`); strictly between 0 and 1. Default 0.2.
    #[serde(default = "default_validation_split")]
    pub validation_split: f64,
    /// The column holding the text (family `text-classifier` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_column: Option<String>,
}

fn default_validation_split() -> f64 {
    0.2
}

/// `[dataset] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetFormat {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// `root/<class>/<image>` folders.
    ImageFolder,
}

impl DatasetFormat {
    /// The lake's table format, or `None` for image folders.
    pub fn table_format(self) -> Option<cerulean_lake::TableFormat> {
        match self {
            DatasetFormat::Parquet => Some(cerulean_lake::TableFormat::Parquet),
            DatasetFormat::Csv => Some(cerulean_lake::TableFormat::Csv),
            DatasetFormat::Jsonl => Some(cerulean_lake::TableFormat::JsonLines),
            DatasetFormat::ImageFolder => None,
        }
    }
}

/// `[model] family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelFamily {
    /// Linear regression (one linear layer, mean squared error).
    Linear,
    /// Logistic regression, binary or multinomial (one linear layer, softmax cross-entropy).
    Logistic,
    /// A multilayer perceptron: hidden linear layers with an activation, then a linear output
    /// layer; classification (softmax cross-entropy) or regression (mean squared error).
    Mlp,
    /// A text classifier over `dataset.text_column`: a frozen sentence encoder (all-MiniLM-L6-v2)
    /// and a logistic or MLP head trained on its embeddings.
    TextClassifier,
    /// An image classifier over an `image-folder` dataset: a small convolutional network
    /// trained from scratch (`architecture = "cnn"`).
    ImageClassifier,
}

impl ModelFamily {
    /// The name used in job files, e.g. `mlp`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelFamily::Linear => "linear",
            ModelFamily::Logistic => "logistic",
            ModelFamily::Mlp => "mlp",
            ModelFamily::TextClassifier => "text-classifier",
            ModelFamily::ImageClassifier => "image-classifier",
        }
    }

    /// Whether the family trains on a numeric feature matrix.
    pub fn is_tabular(self) -> bool {
        matches!(
            self,
            ModelFamily::Linear | ModelFamily::Logistic | ModelFamily::Mlp
        )
    }
}

/// `[model] task`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Predict one of a set of classes (softmax cross-entropy).
    Classification,
    /// Predict a number (mean squared error).
    Regression,
}

impl Task {
    /// `classification` or `regression`.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
        }
    }
}

/// `[model] activation`: the activation between hidden layers, the serving backend's own type
/// (what a job file names is what `model.json` stores).
pub use cerulean_serving::backend::candle::Activation;

/// `[model]`. Fields that do not apply to the chosen family are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// The model family.
    pub family: ModelFamily,
    /// Classification or regression. Default: `regression` for `linear`; `classification` for
    /// `logistic`, `text-classifier` and `image-classifier`; for `mlp` it depends on the label
    /// column (see [`resolve_task`](crate::resolve_task)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    /// Hidden-layer widths (`mlp`, default `[64]`; `image-classifier` with `cnn`, default
    /// `[128]`; `text-classifier` and `image-classifier` with `efficientnet-lite0`, whose heads
    /// are logistic without them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Param<Vec<usize>>>,
    /// The activation between hidden layers (`mlp` and `text-classifier`). Default `relu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    /// Embedding width (`text-classifier` only): the frozen all-MiniLM-L6-v2 encoder gives 384,
    /// the only value accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_dim: Option<Param<usize>>,
    /// Tokens kept per text (`text-classifier` only). Default 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<Param<usize>>,
    /// Trains the encoder too (`text-classifier` only): all-MiniLM-L6-v2's FP32 weights with
    /// candle's BERT, carried by the exported model. Default false (the encoder is frozen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fine_tune_encoder: Option<bool>,
    /// The encoder's learning rate when `fine_tune_encoder` is on (the head keeps
    /// `train.learning_rate`). Default 3e-5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder_learning_rate: Option<f64>,
    /// Images are resized to `image_size` x `image_size` pixels (`image-classifier` only).
    /// Default 32 for `cnn`, 224 for `efficientnet-lite0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<Param<usize>>,
    /// The image network (`image-classifier` only). Default `cnn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<ImageArchitecture>,
    /// Image channels the network reads: 1 (grayscale) or 3 (RGB) (`image-classifier` only).
    /// Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
    /// Output channels of each 3x3 convolution block of a `cnn` (`image-classifier` only).
    /// Default `[32, 64]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<usize>>,
    /// What the exported model takes (`image-classifier` only): `pixels` (default; FP32
    /// `[-1, C, H, W]` in `[0, 1]`) or `encoded` (BYTES `[-1, 1]` PNG or JPEG files, decoded
    /// and resized by the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_input: Option<ImageInput>,
}

/// `[model] image_input` of an `image-classifier`: what the served model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageInput {
    /// FP32 `[-1, C, H, W]` pixels in `[0, 1]`, channels first.
    #[default]
    Pixels,
    /// BYTES `[-1, 1]`: encoded PNG or JPEG images.
    Encoded,
}

/// `[model] architecture` of an `image-classifier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageArchitecture {
    /// A small convolutional network trained from scratch (see `filters` and `hidden`).
    #[default]
    Cnn,
    /// Transfer learning on the prebuilt EfficientNet-Lite0: its ImageNet features frozen, a new
    /// head (`hidden`, default none: logistic regression on the features) trained.
    #[serde(rename = "efficientnet-lite0")]
    EfficientnetLite0,
}

/// `[train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Passes over the training rows. Default 10.
    #[serde(default = "default_epochs")]
    pub epochs: Param<usize>,
    /// Rows per optimisation step (the last batch of an epoch may be smaller). Default 64.
    #[serde(default = "default_batch_size")]
    pub batch_size: Param<usize>,
    /// AdamW's step size. Default 0.001.
    #[serde(default = "default_learning_rate")]
    pub learning_rate: Param<f64>,
    /// AdamW's decoupled weight decay. Default 0.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: Param<f64>,
    /// `cpu` (default), `cuda` (= `cuda:0`) or `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    /// Seeds the weight initialisation, the validation split, the epoch shuffles and random
    /// sweeps. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// Stop after this many epochs without improvement of the validation primary metric, and
    /// export the best epoch's weights. Default: no early stopping (the last epoch's weights
    /// are exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping_patience: Option<Param<usize>>,
    /// Save a checkpoint at the end of every this many epochs; 0 saves none. Default 1.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every_epochs: usize,
    /// Report the training loss every this many optimisation steps. Default 10.
    #[serde(default = "default_log_every")]
    pub log_every_steps: usize,
}

fn default_epochs() -> Param<usize> {
    Param::Value(10)
}
fn default_batch_size() -> Param<usize> {
    Param::Value(64)
}
fn default_learning_rate() -> Param<f64> {
    Param::Value(1e-3)
}
fn default_weight_decay() -> Param<f64> {
    Param::Value(0.0)
}
fn default_device() -> String {
    "cpu".to_owned()
}
fn default_checkpoint_every() -> usize {
    1
}
fn default_log_every() -> usize {
    10
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            epochs: default_epochs(),
            batch_size: default_batch_size(),
            learning_rate: default_learning_rate(),
            weight_decay: default_weight_decay(),
            device: default_device(),
            seed: 0,
            early_stopping_patience: None,
            checkpoint_every_epochs: default_checkpoint_every(),
            log_every_steps: default_log_every(),
        }
    }
}

/// `[sweep]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSection {
    /// How trials are chosen. Default `grid`.
    #[serde(default)]
    pub strategy: SweepStrategy,
    /// At most this many trials. Required for `random`; for `grid`, the first ones in grid order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trials: Option<usize>,
    /// How many trials may run at once (a hint for the worker). Default 1.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// The validation metric that ranks trials, e.g. `val_accuracy` or `val_rmse`. Default: the
    /// primary metric of the trial's task (see [`primary_metric`](crate::primary_metric)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
}

fn default_parallel() -> usize {
    1
}

/// `[sweep] strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepStrategy {
    /// Every combination, the first swept key varying slowest.
    #[default]
    Grid,
    /// `max_trials` distinct combinations drawn from the lists with `train.seed`.
    Random,
}

/// A hyperparameter: one value, or a list of values to sweep over.
///
/// In a job file a list means a sweep: `learning_rate = [1e-3, 3e-3]`. For a parameter whose value
/// is itself a list (`hidden`), a list of lists is a sweep: `hidden = [[64], [64, 32]]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Param<T> {
    /// One value.
    Value(T),
    /// Values to sweep over.
    Sweep(Vec<T>),
}

impl<T> Param<T> {
    /// Every value: one, or the swept list.
    pub fn values(&self) -> &[T] {
        match self {
            Param::Value(v) => std::slice::from_ref(v),
            Param::Sweep(vs) => vs,
        }
    }

    /// The value, or `None` when swept.
    pub fn value(&self) -> Option<&T> {
        match self {
            Param::Value(v) => Some(v),
            Param::Sweep(_) => None,
        }
    }

    /// Whether this parameter is a list to sweep over.
    pub fn is_swept(&self) -> bool {
        matches!(self, Param::Sweep(_))
    }
}

impl<T: Serialize> Serialize for Param<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Param::Value(v) => v.serialize(serializer),
            Param::Sweep(vs) => vs.serialize(serializer),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Param<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(deserializer)?;
        match serde_json::from_value::<T>(raw.clone()) {
            Ok(v) => Ok(Param::Value(v)),
            Err(single) => match raw {
                serde_json::Value::Array(_) => serde_json::from_value::<Vec<T>>(raw)
                    .map(Param::Sweep)
                    .map_err(|e| {
                        D::Error::custom(format!(
                            "{single}; as a list of values to sweep over: {e}"
                        ))
                    }),
                _ => Err(D::Error::custom(single)),
            },
        }
    }
}

/// The hyperparameters of one trial, resolved to scalars with their defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Hyperparameters {
    /// Hidden-layer widths (empty for `linear` and `logistic`).
    pub hidden: Vec<usize>,
    /// The activation between hidden layers.
    pub activation: Activation,
    /// Epochs to run.
    pub epochs: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// AdamW's step size.
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Epochs without improvement before stopping, if early stopping is on.
    pub early_stopping_patience: Option<usize>,
}

impl JobSpec {
    /// Parses and validates a TOML job file. Errors name the field: `train.learning_rate: must be
    /// > 0`, `train.lr: unknown key ...`, `dataset.uri: is required`.
    pub fn from_toml(text: &str) -> Result<JobSpec> {
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|e| TrainError::Syntax(toml_message(text, &e)))?;
        let spec: JobSpec = serde_path_to_error::deserialize(deserializer)
            .map_err(|e| field_error(&e.path().to_string(), e.inner().message()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Parses and validates a job stored as JSON (the form [`JobSpec::to_json`] writes).
    pub fn from_json(value: &serde_json::Value) -> Result<JobSpec> {
        let spec: JobSpec = serde_path_to_error::deserialize(value)
            .map_err(|e| field_error(&e.path().to_string(), &e.inner().to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// The job as JSON; [`JobSpec::from_json`] reads it back to an equal spec.
    pub fn to_json(&self) -> serde_json::Value {
        // Every field is a string, number, bool, list or map with string keys: this cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Whether the job needs a GPU (`train.device` starts with `cuda`).
    pub fn requires_gpu(&self) -> bool {
        self.train.device.trim().starts_with("cuda")
    }

    /// Expands the swept hyperparameters into trials (one trial when nothing is swept); each
    /// trial's spec holds only single values and no `[sweep]` section. See [`crate::sweep`].
    pub fn trials(&self) -> Result<Vec<Trial>> {
        sweep::expand(self)
    }

    /// The scalar hyperparameters of this spec with their defaults applied. Fails, naming the
    /// field, when a parameter is still a list: train each of [`JobSpec::trials`] instead.
    pub fn hyperparameters(&self) -> Result<Hyperparameters> {
        fn one<T: Clone + std::fmt::Debug>(field: &str, p: &Param<T>) -> Result<T> {
            p.value().cloned().ok_or_else(|| {
                TrainError::spec(
                    field,
                    format!(
                        "is swept ({:?}); train each trial of JobSpec::trials()",
                        p.values()
                    ),
                )
            })
        }
        let hidden = match (self.model.family, &self.model.hidden) {
            (
                ModelFamily::Mlp | ModelFamily::TextClassifier | ModelFamily::ImageClassifier,
                Some(h),
            ) => one("model.hidden", h)?,
            (ModelFamily::Mlp, None) => vec![64],
            (ModelFamily::ImageClassifier, None)
                if self.model.architecture.unwrap_or_default() == ImageArchitecture::Cnn =>
            {
                vec![128]
            }
            _ => Vec::new(),
        };
        Ok(Hyperparameters {
            hidden,
            activation: self.model.activation.unwrap_or_default(),
            epochs: one("train.epochs", &self.train.epochs)?,
            batch_size: one("train.batch_size", &self.train.batch_size)?,
            learning_rate: one("train.learning_rate", &self.train.learning_rate)?,
            weight_decay: one("train.weight_decay", &self.train.weight_decay)?,
            early_stopping_patience: match &self.train.early_stopping_patience {
                Some(p) => Some(one("train.early_stopping_patience", p)?),
                None => None,
            },
        })
    }

    /// The job's settings as flat `section.key -> value` pairs for recording as run parameters
    /// (`train.learning_rate -> 0.001`, `model.hidden -> [64,32]`); lists are written as JSON.
    pub fn params(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let json = self.to_json();
        for section in ["dataset", "model", "train"] {
            if let Some(serde_json::Value::Object(map)) = json.get(section) {
                for (key, value) in map {
                    let text = match value {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    out.insert(format!("{section}.{key}"), text);
                }
            }
        }
        out
    }

    /// Checks every field; the error names the first field at fault.
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(TrainError::spec("name", "must not be empty"));
        }
        self.validate_dataset()?;
        self.validate_model()?;
        self.validate_train()?;
        self.validate_sweep()
    }

    fn validate_dataset(&self) -> Result<()> {
        let d = &self.dataset;
        let family = self.model.family;
        cerulean_lake::LakeUri::parse(&d.uri)
            .map_err(|e| TrainError::spec("dataset.uri", e.to_string()))?;
        if !(d.validation_split > 0.0 && d.validation_split < 1.0) {
            return Err(TrainError::spec(
                "dataset.validation_split",
                format!("must be > 0 and < 1, got {}", d.validation_split),
            ));
        }
        match (family, d.format) {
            (ModelFamily::ImageClassifier, DatasetFormat::ImageFolder) => {}
            (ModelFamily::ImageClassifier, other) => {
                return Err(TrainError::spec(
                    "dataset.format",
                    format!(
                        "family image-classifier reads an image-folder dataset, not {}",
                        format_name(other)
                    ),
                ));
            }
            (_, DatasetFormat::ImageFolder) => {
                return Err(TrainError::spec(
                    "dataset.format",
                    format!(
                        "image-folder datasets are for family image-classifier, not {}",
                        family.as_str()
                    ),
                ));
            }
            _ => {}
        }
        if family == ModelFamily::ImageClassifier {
            if d.label.is_some() {
                return Err(TrainError::spec(
                    "dataset.label",
                    "an image folder's classes are its sub-folders; remove this key",
                ));
            }
        } else {
            match &d.label {
                None => return Err(TrainError::spec("dataset.label", "is required")),
                Some(l) if l.is_empty() => {
                    return Err(TrainError::spec("dataset.label", "must not be empty"));
                }
                Some(_) => {}
            }
        }
        if let Some(features) = &d.features {
            if !family.is_tabular() {
                return Err(TrainError::spec(
                    "dataset.features",
                    format!("not used by family {}", family.as_str()),
                ));
            }
            if features.is_empty() {
                return Err(TrainError::spec(
                    "dataset.features",
                    "must list at least one column (or be left out for every numeric column)",
                ));
            }
            for (i, f) in features.iter().enumerate() {
                if Some(f) == d.label.as_ref() {
                    return Err(TrainError::spec(
                        format!("dataset.features[{i}]"),
                        format!("'{f}' is the label column"),
                    ));
                }
                if features[..i].contains(f) {
                    return Err(TrainError::spec(
                        format!("dataset.features[{i}]"),
                        format!("'{f}' is listed twice"),
                    ));
                }
            }
        }
        match (family, &d.text_column) {
            (ModelFamily::TextClassifier, None) => {
                return Err(TrainError::spec(
                    "dataset.text_column",
                    "is required for family text-classifier",
                ));
            }
            (ModelFamily::TextClassifier, Some(t)) if Some(t) == d.label.as_ref() => {
                return Err(TrainError::spec(
                    "dataset.text_column",
                    "must differ from dataset.label",
                ));
            }
            (ModelFamily::TextClassifier, Some(_)) | (_, None) => {}
            (other, Some(_)) => {
                return Err(TrainError::spec(
                    "dataset.text_column",
                    format!("not used by family {}", other.as_str()),
                ));
            }
        }
        Ok(())
    }

    fn validate_model(&self) -> Result<()> {
        let m = &self.model;
        let family = m.family;
        let not_used = |field: &str| {
            Err(TrainError::spec(
                format!("model.{field}"),
                format!("not used by family {}", family.as_str()),
            ))
        };
        match (family, m.task) {
            (ModelFamily::Linear, Some(Task::Classification)) => {
                return Err(TrainError::spec(
                    "model.task",
                    "family linear is regression; use logistic or mlp for classification",
                ));
            }
            (ModelFamily::Logistic, Some(Task::Regression)) => {
                return Err(TrainError::spec(
                    "model.task",
                    "family logistic is classification; use linear or mlp for regression",
                ));
            }
            (
                ModelFamily::TextClassifier | ModelFamily::ImageClassifier,
                Some(Task::Regression),
            ) => {
                return Err(TrainError::spec(
                    "model.task",
                    format!("family {} is classification", family.as_str()),
                ));
            }
            _ => {}
        }
        // A text classifier's head is logistic without `hidden`, an MLP with it.
        let layered = matches!(family, ModelFamily::Mlp | ModelFamily::TextClassifier);
        if let Some(hidden) = &m.hidden {
            if !layered && family != ModelFamily::ImageClassifier {
                return not_used("hidden");
            }
            check_list("model.hidden", hidden, |widths| {
                if widths.len() > MAX_HIDDEN_LAYERS {
                    return Err(format!("at most {MAX_HIDDEN_LAYERS} hidden layers"));
                }
                match widths.iter().find(|&&w| w == 0 || w > MAX_LAYER_WIDTH) {
                    Some(w) => Err(format!(
                        "layer widths must be between 1 and {MAX_LAYER_WIDTH}, got {w}"
                    )),
                    None => Ok(()),
                }
            })?;
        }
        if m.activation.is_some() && !layered {
            return not_used("activation");
        }
        if m.fine_tune_encoder.is_some() && family != ModelFamily::TextClassifier {
            return not_used("fine_tune_encoder");
        }
        if let Some(rate) = m.encoder_learning_rate {
            if m.fine_tune_encoder != Some(true) {
                return Err(TrainError::spec(
                    "model.encoder_learning_rate",
                    "only used with fine_tune_encoder = true",
                ));
            }
            if !(rate > 0.0 && rate <= 1.0) {
                return Err(TrainError::spec(
                    "model.encoder_learning_rate",
                    format!("must be in (0, 1], got {rate}"),
                ));
            }
        }
        for (field, param, family_of) in [
            (
                "embedding_dim",
                &m.embedding_dim,
                ModelFamily::TextClassifier,
            ),
            ("max_length", &m.max_length, ModelFamily::TextClassifier),
            ("image_size", &m.image_size, ModelFamily::ImageClassifier),
        ] {
            if let Some(p) = param {
                if family != family_of {
                    return not_used(field);
                }
                check_list(&format!("model.{field}"), p, |&v| {
                    if (1..=MAX_LAYER_WIDTH).contains(&v) {
                        Ok(())
                    } else {
                        Err(format!("must be between 1 and {MAX_LAYER_WIDTH}, got {v}"))
                    }
                })?;
            }
        }
        crate::families::cnn::validate_model(m)
    }

    fn validate_train(&self) -> Result<()> {
        let t = &self.train;
        check_list("train.epochs", &t.epochs, |&e| {
            if (1..=MAX_EPOCHS).contains(&e) {
                Ok(())
            } else {
                Err(format!("must be between 1 and {MAX_EPOCHS}, got {e}"))
            }
        })?;
        check_list("train.batch_size", &t.batch_size, |&b| {
            if b >= 1 {
                Ok(())
            } else {
                Err("must be >= 1".into())
            }
        })?;
        check_list("train.learning_rate", &t.learning_rate, |&lr| {
            if lr.is_finite() && lr > 0.0 {
                Ok(())
            } else {
                Err(format!("must be > 0, got {lr}"))
            }
        })?;
        check_list("train.weight_decay", &t.weight_decay, |&wd| {
            if wd.is_finite() && wd >= 0.0 {
                Ok(())
            } else {
                Err(format!("must be >= 0, got {wd}"))
            }
        })?;
        if let Some(p) = &t.early_stopping_patience {
            check_list("train.early_stopping_patience", p, |&p| {
                if p >= 1 {
                    Ok(())
                } else {
                    Err("must be >= 1 (leave it out to turn early stopping off)".into())
                }
            })?;
        }
        parse_device(&t.device)?;
        if t.log_every_steps == 0 {
            return Err(TrainError::spec("train.log_every_steps", "must be >= 1"));
        }
        Ok(())
    }

    fn validate_sweep(&self) -> Result<()> {
        let Some(s) = &self.sweep else {
            return Ok(());
        };
        if s.max_trials == Some(0) {
            return Err(TrainError::spec("sweep.max_trials", "must be >= 1"));
        }
        if s.strategy == SweepStrategy::Random && s.max_trials.is_none() {
            return Err(TrainError::spec(
                "sweep.max_trials",
                "is required with strategy = \"random\"",
            ));
        }
        if s.parallel == 0 {
            return Err(TrainError::spec("sweep.parallel", "must be >= 1"));
        }
        if let Some(metric) = &s.metric
            && !metrics::VALIDATION_METRICS.contains(&metric.as_str())
        {
            return Err(TrainError::spec(
                "sweep.metric",
                format!(
                    "unknown metric '{metric}'; use one of {}",
                    metrics::VALIDATION_METRICS.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

fn format_name(format: DatasetFormat) -> &'static str {
    match format {
        DatasetFormat::Parquet => "parquet",
        DatasetFormat::Csv => "csv",
        DatasetFormat::Jsonl => "jsonl",
        DatasetFormat::ImageFolder => "image-folder",
    }
}

/// Checks every value of `param` (naming `field[i]` for a value of a swept list).
fn check_list<T>(
    field: &str,
    param: &Param<T>,
    check: impl Fn(&T) -> std::result::Result<(), String>,
) -> Result<()> {
    match param {
        Param::Value(v) => check(v).map_err(|m| TrainError::spec(field, m)),
        Param::Sweep(values) => {
            if values.is_empty() {
                return Err(TrainError::spec(
                    field,
                    "an empty list; give one value or a list of values to sweep over",
                ));
            }
            for (i, v) in values.iter().enumerate() {
                check(v).map_err(|m| TrainError::spec(format!("{field}[{i}]"), m))?;
            }
            Ok(())
        }
    }
}

/// Turns serde's messages into field errors: `unknown field `x`, expected ...` at `train`
/// becomes `train.x: unknown key (expected ...)`, `missing field `uri`` at `dataset` becomes
/// `dataset.uri: is required`.
fn field_error(path: &str, message: &str) -> TrainError {
    let path = if path == "." { "" } else { path };
    // serde_path_to_error's path already ends with an unknown key, but not with a missing one.
    let join = |name: &str| {
        if path.is_empty() || path == name {
            name.to_owned()
        } else if path.ends_with(&format!(".{name}")) {
            path.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((name, tail)) = rest.split_once('`')
    {
        let tail = tail.trim_start_matches(',').trim();
        let message = if tail.is_empty() {
            "unknown key".to_owned()
        } else {
            format!("unknown key ({tail})")
        };
        return TrainError::spec(join(name), message);
    }
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((name, _)) = rest.split_once('`')
    {
        return TrainError::spec(join(name), "is required");
    }
    TrainError::spec(if path.is_empty() { "job" } else { path }, message)
}

/// A TOML syntax error with its line number.
fn toml_message(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", error.message())
        }
        None => error.message().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGITS: &str = r#"
name = "digits-mlp"
experiment = "digits"
register_as = "digits"
[dataset]
uri = "file:///path/to/digits.parquet"   # also az://container/path and s3://bucket/path
format = "parquet"                        # parquet | csv | jsonl | image-folder
label = "target"
validation_split = 0.2
[model]
family = "mlp"                            # linear | logistic | mlp | text-classifier | image-classifier
hidden = [64, 32]
[train]
epochs = 30
batch_size = 64
learning_rate = 0.001
device = "cpu"                            # cpu | cuda:0
seed = 42
"#;

    fn err(text: &str) -> String {
        JobSpec::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn the_documented_job_parses() {
        let spec = JobSpec::from_toml(DIGITS).unwrap();
        assert_eq!(spec.name, "digits-mlp");
        assert_eq!(spec.experiment.as_deref(), Some("digits"));
        assert_eq!(spec.dataset.format, DatasetFormat::Parquet);
        assert_eq!(spec.dataset.label.as_deref(), Some("target"));
        assert_eq!(spec.model.family, ModelFamily::Mlp);
        assert_eq!(spec.model.hidden, Some(Param::Value(vec![64, 32])));
        let h = spec.hyperparameters().unwrap();
        assert_eq!(h.hidden, vec![64, 32]);
        assert_eq!(h.epochs, 30);
        assert_eq!(h.learning_rate, 0.001);
        assert_eq!(spec.train.seed, 42);
        assert!(!spec.requires_gpu());
        assert_eq!(spec.trials().unwrap().len(), 1);
        // JSON round trip.
        let json = spec.to_json();
        assert_eq!(JobSpec::from_json(&json).unwrap(), spec);
        assert_eq!(spec.params()["train.learning_rate"], "0.001");
        assert_eq!(spec.params()["model.hidden"], "[64,32]");
    }

    #[test]
    fn remote_uris_and_other_formats_parse() {
        for (uri, format) in [
            ("az://container/path", "csv"),
            ("s3://bucket/path", "jsonl"),
        ] {
            let text = DIGITS
                .replace("file:///path/to/digits.parquet", uri)
                .replace("format = \"parquet\"", &format!("format = \"{format}\""));
            JobSpec::from_toml(&text).unwrap();
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            err(&DIGITS.replace("learning_rate = 0.001", "learning_rate = 0")),
            "train.learning_rate: must be > 0, got 0"
        );
        let e = err(&DIGITS.replace("seed = 42", "seed = 42\nlr = 1"));
        assert!(e.starts_with("train.lr: unknown key"), "{e}");
        let e = err(&DIGITS.replace("hidden = [64, 32]", "hidden = [64, 32]\nlayers = 3"));
        assert!(e.starts_with("model.layers: unknown key"), "{e}");
        let e = err(&DIGITS.replace("name = \"digits-mlp\"", "name = \"x\"\ncolor = 1"));
        assert!(e.starts_with("color: unknown key"), "{e}");
        let e = err(&DIGITS.replace("uri = \"file:///path/to/digits.parquet\"", ""));
        assert_eq!(e, "dataset.uri: is required");
        let e = err(&DIGITS.replace("epochs = 30", "epochs = 2.5"));
        assert!(e.starts_with("train.epochs: "), "{e}");
        let e = err(&DIGITS.replace("family = \"mlp\"", "family = \"cnn\""));
        assert!(e.starts_with("model.family: unknown variant `cnn`"), "{e}");
        let e = err(&DIGITS.replace("validation_split = 0.2", "validation_split = 1.5"));
        assert!(e.starts_with("dataset.validation_split: "), "{e}");
        let e = err(&DIGITS.replace("device = \"cpu\"", "device = \"tpu\""));
        assert!(e.starts_with("train.device: "), "{e}");
        let e = err(&DIGITS.replace("family = \"mlp\"", "family = \"logistic\""));
        assert_eq!(e, "model.hidden: not used by family logistic");
        let e = err(&DIGITS.replace("learning_rate = 0.001", "learning_rate = [0.1, -1]"));
        assert!(e.starts_with("train.learning_rate[1]: must be > 0"), "{e}");
        let e = err("name = \"x\"\n[dataset\n");
        assert!(e.starts_with("invalid job file: line 2"), "{e}");
    }

    #[test]
    fn sweeps_parse_as_lists() {
        let text = DIGITS
            .replace("learning_rate = 0.001", "learning_rate = [1e-3, 3e-3]")
            .replace("hidden = [64, 32]", "hidden = [[64], [64, 32]]");
        let spec = JobSpec::from_toml(&text).unwrap();
        assert_eq!(spec.train.learning_rate, Param::Sweep(vec![1e-3, 3e-3]));
        assert_eq!(
            spec.model.hidden,
            Some(Param::Sweep(vec![vec![64], vec![64, 32]]))
        );
        let e = spec.hyperparameters().unwrap_err().to_string();
        assert!(e.starts_with("model.hidden: is swept"), "{e}");
        assert_eq!(JobSpec::from_json(&spec.to_json()).unwrap(), spec);
    }

    #[test]
    fn text_and_image_families_parse() {
        let text = r#"
name = "reviews"
[dataset]
uri = "s3://bucket/reviews/"
format = "jsonl"
label = "sentiment"
text_column = "review"
[model]
family = "text-classifier"
embedding_dim = 32
max_length = 128
"#;
        let spec = JobSpec::from_toml(text).unwrap();
        assert_eq!(spec.model.family, ModelFamily::TextClassifier);
        let e = err(&text.replace("text_column = \"review\"", ""));
        assert_eq!(
            e,
            "dataset.text_column: is required for family text-classifier"
        );
        let image = r#"
name = "pets"
[dataset]
uri = "az://images/pets/"
format = "image-folder"
[model]
family = "image-classifier"
image_size = 96
[train]
device = "cuda:0"
"#;
        let spec = JobSpec::from_toml(image).unwrap();
        assert!(spec.requires_gpu());
        let e = err(&image.replace("format = \"image-folder\"", "format = \"parquet\""));
        assert!(e.starts_with("dataset.format: "), "{e}");
        let e = err(&image.replace("image_size = 96", "max_length = 3"));
        assert_eq!(e, "model.max_length: not used by family image-classifier");
        let e = err(&image.replace("image_size = 96", "fine_tune_encoder = true"));
        assert_eq!(
            e,
            "model.fine_tune_encoder: not used by family image-classifier"
        );
        let tuned = text.replace(
            "max_length = 128",
            "max_length = 128\nfine_tune_encoder = true",
        );
        let spec = JobSpec::from_toml(&format!("{tuned}encoder_learning_rate = 5e-5\n")).unwrap();
        assert_eq!(spec.model.encoder_learning_rate, Some(5e-5));
        let e = err(&format!("{text}encoder_learning_rate = 5e-5\n"));
        assert_eq!(
            e,
            "model.encoder_learning_rate: only used with fine_tune_encoder = true"
        );
        let e = err(&format!("{tuned}encoder_learning_rate = 0.0\n"));
        assert!(
            e.starts_with("model.encoder_learning_rate: must be in (0, 1]"),
            "{e}"
        );
    }

    #[test]
    fn sweep_section_is_checked() {
        let e = err(&format!("{DIGITS}[sweep]\nstrategy = \"random\"\n"));
        assert!(e.starts_with("sweep.max_trials: is required"), "{e}");
        let e = err(&format!("{DIGITS}[sweep]\nmetric = \"val_banana\"\n"));
        assert!(e.starts_with("sweep.metric: unknown metric"), "{e}");
        let e = err(&format!("{DIGITS}[sweep]\nparallel = 0\n"));
        assert_eq!(e, "sweep.parallel: must be >= 1");
    }
}
