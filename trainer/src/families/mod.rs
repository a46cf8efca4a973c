//! Model families: the seam between the generic training loop ([`crate::train`]) and what each
//! kind of model needs.
//!
//! A family turns a [`LoadedDataset`] into device tensors ([`Family::prepare`]), builds its
//! network over a [`VarMap`] with seeded weights ([`Family::build`]) and writes the trained
//! weights in a format the serving crate loads ([`Family::export`]). The loop only gathers
//! batches by row index, runs the network, computes the task's loss and steps the optimizer, so
//! a new family (text, images) is a new module implementing [`Family`] plus one arm in
//! [`select`].
//!
//! - [`linear`]: `linear` (regression) and `logistic` (classification): one linear layer.
//! - [`mlp`]: the layered network all tabular families share, and the `mlp` family.
//! - [`tabular`]: the tabular families' data preparation (split, standardisation, targets) and
//!   export.
//! - [`cnn`]: `image-classifier`, a small convolutional network over an image folder.
//! - [`text`]: `text-classifier`, the tabular head over a frozen sentence encoder's embeddings.
//! - [`fine_tune`]: `text-classifier` with `fine_tune_encoder = true`, the encoder trained too.
//! - [`transfer`]: `image-classifier` with `architecture = "efficientnet-lite0"`, the tabular
//!   head over the frozen EfficientNet-Lite0's image features.

pub mod cnn;
pub mod fine_tune;
pub mod linear;
pub mod mlp;
pub mod tabular;
pub mod text;
pub mod transfer;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use crate::checkpoint::Weights;
use crate::data::{LabelValues, LoadedDataset};
use crate::error::{Result, TrainError};
use crate::spec::{Hyperparameters, ImageArchitecture, JobSpec, ModelFamily, ModelSection, Task};

/// An integer label with at most this many distinct values makes an `mlp` without `model.task` a
/// classifier.
pub const AUTO_CLASSIFICATION_MAX_CLASSES: usize = 32;

/// A network being trained: maps a batch of inputs to logits (classification) or standardized
/// predictions (regression).
pub trait Network {
    /// The forward pass over a batch (rows first).
    fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor>;
    /// Validation rows per forward pass, when the network needs fewer than the loop's default
    /// (e.g. to bound a CNN's activations).
    fn eval_chunk_rows(&self) -> Option<usize> {
        None
    }
}

/// What the generic loop trains on, on the training device.
pub struct Prepared {
    /// Training inputs, one row per example (gathered with `index_select` on dimension 0).
    pub train_x: Tensor,
    /// Training targets: U32 class indices `[n]` or F32 standardized values `[n, 1]`.
    pub train_y: Tensor,
    /// Validation inputs.
    pub val_x: Tensor,
    /// Validation targets, like `train_y`.
    pub val_y: Tensor,
    /// How targets relate to the label, with the validation truth for metrics.
    pub target: Target,
    /// Training rows.
    pub train_rows: usize,
    /// Validation rows.
    pub val_rows: usize,
    /// A one-line description for the progress log, e.g. `1438 rows x 64 features`.
    pub description: String,
}

/// The targets of a prepared dataset.
pub enum Target {
    /// Class indices into `labels`.
    Classes {
        /// The class labels, in output order.
        labels: Vec<String>,
        /// The validation rows' class indices.
        val_truth: Vec<u32>,
    },
    /// Values standardized as `(y - mean) / std` for training.
    Values {
        /// The training targets' mean.
        mean: f64,
        /// The training targets' standard deviation (1 when they are constant).
        std: f64,
        /// The validation rows' values in the label's units.
        val_truth: Vec<f32>,
    },
}

/// One model family's part of training (see the module documentation).
pub trait Family {
    /// The family's name, e.g. `mlp`.
    fn name(&self) -> &'static str;
    /// Splits and converts the dataset into device tensors; the split is
    /// `cerulean_lake::split(rows, validation_split, seed)`. The family keeps what it needs for
    /// export (e.g. standardisation statistics, labels).
    fn prepare(
        &mut self,
        data: &LoadedDataset,
        validation_split: f64,
        seed: u64,
        device: &Device,
    ) -> Result<Prepared>;
    /// Creates the network's variables in `varmap` (initialised from `seed`, identically on every
    /// device) and returns the network that uses them. Called after [`Family::prepare`].
    fn build(&self, varmap: &VarMap, device: &Device, seed: u64) -> Result<Box<dyn Network>>;
    /// The files that serve the trained `weights` (e.g. `model.safetensors` and `model.json`).
    fn export(&self, weights: &Weights) -> Result<Vec<(String, Vec<u8>)>>;
    /// The factor on the job's learning rate for the parameter `name` (1 unless the family
    /// trains some parameters at another rate, e.g. a fine-tuned encoder).
    fn learning_rate_factor(&self, _name: &str) -> f64 {
        1.0
    }
}

/// The single value of a model setting (a trial's, so never swept), `None` when the job leaves it
/// out.
pub(crate) fn single_setting<T: Copy>(
    field: &str,
    param: &Option<crate::spec::Param<T>>,
) -> Result<Option<T>> {
    match param {
        None => Ok(None),
        Some(p) => p.value().copied().map(Some).ok_or_else(|| {
            TrainError::spec(field, "is swept; train each trial of JobSpec::trials()")
        }),
    }
}

/// The task a job trains for:
/// - `model.task` when given (checked against the family);
/// - `linear`: regression; `logistic`, `text-classifier`, `image-classifier`: classification;
/// - `mlp` without `model.task`: classification when the label column holds strings or booleans,
///   or integers with at most [`AUTO_CLASSIFICATION_MAX_CLASSES`] distinct values; regression
///   otherwise (floating-point labels are always regression unless `task` says otherwise).
pub fn resolve_task(model: &ModelSection, data: &LoadedDataset) -> Result<Task> {
    let task = match (model.family, model.task) {
        (_, Some(task)) => task,
        (ModelFamily::Linear, None) => Task::Regression,
        (
            ModelFamily::Logistic | ModelFamily::TextClassifier | ModelFamily::ImageClassifier,
            None,
        ) => Task::Classification,
        (ModelFamily::Mlp, None) => match &data.label.values {
            LabelValues::Categorical(_) => Task::Classification,
            LabelValues::Numeric { integer: true, .. }
                if data
                    .label
                    .values
                    .distinct_up_to(AUTO_CLASSIFICATION_MAX_CLASSES)
                    <= AUTO_CLASSIFICATION_MAX_CLASSES =>
            {
                Task::Classification
            }
            LabelValues::Numeric { .. } => Task::Regression,
        },
    };
    if task == Task::Regression && matches!(data.label.values, LabelValues::Categorical(_)) {
        return Err(TrainError::column(
            &data.label.name,
            format!(
                "regression needs a numeric label, this one is {}",
                data.label.data_type
            ),
        ));
    }
    Ok(task)
}

/// The family that trains `spec`, for `task`.
pub fn select(spec: &JobSpec, hyper: &Hyperparameters, task: Task) -> Result<Box<dyn Family>> {
    match spec.model.family {
        ModelFamily::Linear | ModelFamily::Logistic => {
            Ok(Box::new(linear::family(spec.model.family, task)))
        }
        ModelFamily::Mlp => Ok(Box::new(mlp::family(
            hyper.hidden.clone(),
            hyper.activation,
            task,
        ))),
        ModelFamily::TextClassifier if spec.model.fine_tune_encoder == Some(true) => Ok(Box::new(
            fine_tune::family(spec, hyper, fine_tune::pretrained_from_store()?)?,
        )),
        ModelFamily::TextClassifier => Ok(Box::new(text::family(
            spec,
            hyper,
            text::default_encoder()?,
        )?)),
        ModelFamily::ImageClassifier => match spec.model.architecture.unwrap_or_default() {
            ImageArchitecture::Cnn => Ok(Box::new(cnn::family(&spec.model, hyper)?)),
            ImageArchitecture::EfficientnetLite0 => Ok(Box::new(transfer::family(
                &spec.model,
                hyper,
                transfer::default_backbone()?,
            )?)),
        },
    }
}
