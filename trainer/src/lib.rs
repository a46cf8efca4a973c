//! Cerulean's training core: job specs and sweeps ([`JobSpec`], [`Trial`]), datasets from the
//! lake ([`load_dataset`]), candle model families for tabular data (`linear`, `logistic`, `mlp`),
//! text (`text-classifier`: a head on the prebuilt MiniLM encoder, frozen or fine-tuned) and
//! image folders (`image-classifier`: a small CNN, or a head on the pretrained EfficientNet-Lite0
//! read by [`pretrained`]; see [`images`]),
//! a checkpointable AdamW ([`AdamW`]), the training loop with metrics, early stopping,
//! checkpoints and cancellation ([`train()`]), and export to the files the serving crate's candle
//! backend serves ([`export`]).
//!
//! The [`worker`] leases a job from the registry's queue, calls
//! [`JobSpec::from_json`], [`JobSpec::trials`], [`load_dataset`] and then [`train()`] for each
//! trial on a blocking thread with its own [`TrainContext`].
//!
//! ```no_run
//! # async fn run() -> cerulean_trainer::Result<()> {
//! use cerulean_trainer::{JobSpec, RecordingContext, load_dataset, train};
//! let spec = JobSpec::from_toml(&std::fs::read_to_string("job.toml").unwrap())?;
//! let data = load_dataset(&spec.dataset).await?;
//! for trial in spec.trials()? {
//!     let mut ctx = RecordingContext::new();
//!     let outcome = train(&trial.spec, &data, None, &mut ctx)?;
//!     println!("{:?} {:?}", trial.swept, outcome.primary_metric);
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod checkpoint;
pub mod context;
pub mod data;
pub mod device;
mod error;
pub mod export;
mod families;
pub mod images;
pub mod metrics;
pub mod optim;
pub mod pretrained;
mod rng;
pub mod spec;
pub mod sweep;
pub mod train;
pub mod worker;

pub use checkpoint::{BestState, Checkpoint, HostTensor, Weights};
pub use context::{RecordingContext, TrainContext};
pub use data::{LabelColumn, LabelValues, LoadedDataset, TextColumn, load_dataset};
pub use device::DeviceSpec;
pub use error::{Result, TrainError};
pub use families::{AUTO_CLASSIFICATION_MAX_CLASSES, resolve_task};
pub use images::ImageSet;
pub use metrics::{higher_is_better, primary_metric};
pub use optim::{AdamState, AdamW, AdamWConfig};
pub use spec::{
    Activation, DatasetFormat, DatasetSpec, Hyperparameters, ImageArchitecture, ImageInput,
    JobSpec, ModelFamily, ModelSection, Param, SweepSection, SweepStrategy, Task, TrainSection,
};
pub use sweep::Trial;
pub use train::{CPU_THREADS_HINT, TrainOutcome, set_cpu_threads_at_startup, train};
