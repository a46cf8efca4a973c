//! [`TrainContext`]: what the training loop reports to and asks of whoever runs it (the worker,
//! the CLI, a test).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::checkpoint::Checkpoint;
use crate::error::Result;

/// The training loop's view of its runner. [`train`](crate::train()) runs on a blocking thread and
/// calls these between optimisation steps; an error from `log_metrics` or `save_checkpoint` stops
/// training with that error.
pub trait TrainContext: Send {
    /// Records metrics at global step `step`: the training loss every `train.log_every_steps`
    /// steps (`train_loss`) and, at the end of each epoch, the epoch's metrics (`epoch`, `loss`,
    /// `val_loss`, `val_accuracy` and `val_macro_f1` or `val_rmse` and `val_mae`,
    /// `learning_rate`, `samples_per_second`).
    fn log_metrics(&mut self, step: i64, metrics: &[(&str, f64)]) -> Result<()>;
    /// A human progress line, e.g. `epoch 3/30 loss 0.4100 val_loss 0.2301 val_accuracy 0.9300
    /// 1234 samples/s`.
    fn log_line(&mut self, line: &str);
    /// Stores a checkpoint (every `train.checkpoint_every_epochs` epochs, after that epoch's
    /// metrics were logged).
    fn save_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<()>;
    /// Whether the run should stop. Checked before every optimisation step.
    fn cancelled(&self) -> bool;
}

/// A [`TrainContext`] that keeps everything in memory: for tests, examples and local runs.
#[derive(Debug, Default)]
pub struct RecordingContext {
    /// Every `log_metrics` call: the step and the metrics.
    pub metrics: Vec<(i64, Vec<(String, f64)>)>,
    /// Every progress line.
    pub lines: Vec<String>,
    /// Every saved checkpoint, encoded with [`Checkpoint::to_bytes`].
    pub checkpoints: Vec<Vec<u8>>,
    /// Set to cancel the run; shared so another thread can set it.
    pub cancel: Arc<AtomicBool>,
    /// Cancel automatically once this many optimisation steps have been reported as metrics
    /// (for tests of cancellation); `None` never.
    pub cancel_after_logged_steps: Option<i64>,
    /// Print progress lines to standard error as they come.
    pub echo: bool,
}

impl RecordingContext {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The values of metric `name` in the order they were logged, with their steps.
    pub fn series(&self, name: &str) -> Vec<(i64, f64)> {
        self.metrics
            .iter()
            .flat_map(|(step, ms)| {
                ms.iter()
                    .filter(|(n, _)| n == name)
                    .map(move |(_, v)| (*step, *v))
            })
            .collect()
    }
}

impl TrainContext for RecordingContext {
    fn log_metrics(&mut self, step: i64, metrics: &[(&str, f64)]) -> Result<()> {
        self.metrics.push((
            step,
            metrics.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect(),
        ));
        if let Some(limit) = self.cancel_after_logged_steps
            && step >= limit
        {
            self.cancel.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    fn log_line(&mut self, line: &str) {
        if self.echo {
            eprintln!("{line}");
        }
        self.lines.push(line.to_owned());
    }

    fn save_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.checkpoints.push(checkpoint.to_bytes()?);
        Ok(())
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}
