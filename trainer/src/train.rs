//! [`train`]: the training loop shared by every family.
//!
//! Per epoch `e`: the training rows are visited in the order `cerulean_lake::epoch_permutation(
//! rows, train.seed, e)`, in batches of `train.batch_size` (the last one smaller), each gathered
//! on the device with `index_select` from one tensor holding every row. Each step runs forward,
//! the task's loss (softmax cross-entropy or mean squared error), backward and an [`AdamW`]
//! update, all on the device; the loss is read back only when it is logged. After the last
//! batch the validation rows are evaluated, the epoch's metrics logged, the best epoch and the
//! early-stopping count updated, and a checkpoint saved when one is due.
//!
//! Everything the run depends on is derived from `train.seed` (initial weights, split, shuffles),
//! so a run resumed from a [`Checkpoint`] ends with the same weights as an uninterrupted one.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{DType, Tensor, Var};
use candle_nn::VarMap;

use crate::checkpoint::{BestState, Checkpoint, HostTensor, Weights};
use crate::context::TrainContext;
use crate::data::LoadedDataset;
use crate::device::{open_device, parse_device};
use crate::error::{Result, TrainError};
use crate::families::{self, Network, Prepared, Target, resolve_task};
use crate::metrics;
use crate::optim::{AdamW, AdamWConfig};
use crate::spec::{JobSpec, Task};

/// Validation rows evaluated per forward pass.
const EVAL_CHUNK_ROWS: usize = 8192;

/// Logged when training on the CPU without `RAYON_NUM_THREADS`: candle 0.11 then counts the
/// physical CPUs again (reading `/proc/cpuinfo`) on every matrix multiplication, which made the
/// digits MLP's steps about 3.5 times slower here. The library cannot set the variable safely
/// once threads run; the process that embeds it should, first thing in `main`
/// (see [`set_cpu_threads_at_startup`]).
pub const CPU_THREADS_HINT: &str = "note: RAYON_NUM_THREADS is not set, so candle re-detects the CPU count on every \
     matrix multiplication (~3x slower CPU training); set it, e.g. to the number of cores";

/// Sets `RAYON_NUM_THREADS` to the available parallelism unless it is set already (see
/// [`CPU_THREADS_HINT`]).
///
/// # Safety
/// Changes the process environment: call it first thing in `main`, before any other thread
/// (a tokio runtime, a thread pool) exists, as [`std::env::set_var`] requires.
pub unsafe fn set_cpu_threads_at_startup() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: the caller guarantees that no other thread reads or writes the environment.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
}

/// What a training run produced.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainOutcome {
    /// The model files to store and register (`model.safetensors`, `model.json`); empty when the
    /// run was cancelled. Not serialized (the worker stores them as run artifacts).
    #[serde(skip)]
    pub files: Vec<(String, Vec<u8>)>,
    /// The validation metrics of the exported weights (`val_loss` plus `val_accuracy` and
    /// `val_macro_f1`, or `val_rmse` and `val_mae`); on cancel, those of the last completed
    /// epoch (empty if none).
    pub metrics: BTreeMap<String, f64>,
    /// The primary validation metric: its name, value and whether higher is better (NaN when
    /// cancelled before any epoch completed).
    pub primary_metric: (String, f64, bool),
    /// Epochs completed in total, counting those before a resume.
    pub epochs_run: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Whether the run was cancelled through [`TrainContext::cancelled`].
    pub cancelled: bool,
    /// The epoch (counting from 1) whose weights were exported: the best one when early stopping
    /// is on, otherwise the last one.
    pub exported_epoch: usize,
    /// The task trained for.
    pub task: Task,
    /// The feature columns in the order the exported model takes them. Not serialized (the
    /// exported `model.json` has the input).
    #[serde(skip)]
    pub feature_names: Vec<String>,
    /// When cancelled: the state at the point of cancellation (possibly mid-epoch), which the
    /// caller may save to resume the run later. Not serialized.
    #[serde(skip)]
    pub resume: Option<Checkpoint>,
}

/// One epoch's evaluation of the validation rows.
struct Evaluation {
    val_loss: f64,
    metrics: Vec<(&'static str, f64)>,
    primary: f64,
}

impl Evaluation {
    fn as_map(&self) -> BTreeMap<String, f64> {
        std::iter::once(("val_loss", self.val_loss))
            .chain(self.metrics.iter().copied())
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }
}

/// The loop's position and bookkeeping, saved in checkpoints.
struct State {
    epoch: usize,
    batch: usize,
    step: i64,
    best: Option<BestState>,
    epochs_without_improvement: usize,
    partial_loss_sum: f64,
    partial_samples: usize,
}

/// Trains one trial (a spec whose hyperparameters are all single values, e.g. from
/// [`JobSpec::trials`]) on `data`, from scratch or from `resume`, reporting to `ctx`.
///
/// Runs on the calling thread (use a blocking thread under async code). Returns `Ok` with
/// `cancelled: true` soon after `ctx.cancelled()` turns true (it is checked before every step).
/// Errors: an invalid or still-swept spec, an unusable dataset, an unavailable device, a
/// checkpoint from another job, or a failing context.
pub fn train(
    trial: &JobSpec,
    data: &LoadedDataset,
    resume: Option<Checkpoint>,
    ctx: &mut dyn TrainContext,
) -> Result<TrainOutcome> {
    trial.validate()?;
    let hyper = trial.hyperparameters()?;
    let device_spec = parse_device(&trial.train.device)?;
    let task = resolve_task(&trial.model, data)?;
    let mut family = families::select(trial, &hyper, task)?;
    let device = open_device(device_spec)?;
    let seed = trial.train.seed;
    let prepared = family.prepare(data, trial.dataset.validation_split, seed, &device)?;
    if prepared.train_rows > u32::MAX as usize {
        return Err(TrainError::data(format!(
            "{} training rows are more than this trainer indexes ({})",
            prepared.train_rows,
            u32::MAX
        )));
    }
    let varmap = VarMap::new();
    let network = family.build(&varmap, &device, seed)?;
    let params = sorted_vars(&varmap)?;
    let learning_rate = hyper.learning_rate;
    let mut optimizer = AdamW::new(
        params.clone(),
        AdamWConfig {
            learning_rate,
            weight_decay: hyper.weight_decay,
            ..AdamWConfig::default()
        },
    )?;
    optimizer.scale_learning_rate(|name| family.learning_rate_factor(name))?;
    let fingerprint = fingerprint(trial, data);
    let mut state = State {
        epoch: 0,
        batch: 0,
        step: 0,
        best: None,
        epochs_without_improvement: 0,
        partial_loss_sum: 0.0,
        partial_samples: 0,
    };
    let resumed = resume.is_some();
    if let Some(checkpoint) = resume {
        check_fingerprint(&checkpoint.fingerprint, &fingerprint)?;
        load_weights(&params, &checkpoint.weights)?;
        optimizer.load_state(&checkpoint.optimizer)?;
        state = State {
            epoch: checkpoint.epoch,
            batch: checkpoint.batch,
            step: checkpoint.step,
            best: checkpoint.best,
            epochs_without_improvement: checkpoint.epochs_without_improvement,
            partial_loss_sum: checkpoint.partial_loss_sum,
            partial_samples: checkpoint.partial_samples,
        };
    }

    let n = prepared.train_rows;
    let batch_size = hyper.batch_size.min(n);
    let batches = n.div_ceil(batch_size);
    let epochs = hyper.epochs;
    let (primary_name, higher_is_better) = metrics::primary_metric(task);
    ctx.log_line(&format!(
        "training {} ({}) on {}; {batches} steps of {batch_size} rows per epoch; device {device_spec}",
        family.name(),
        task.as_str(),
        prepared.description,
    ));
    if device.is_cpu() && std::env::var_os("RAYON_NUM_THREADS").is_none() {
        ctx.log_line(CPU_THREADS_HINT);
    }
    if resumed {
        ctx.log_line(&format!(
            "resuming at epoch {}/{epochs}, batch {} (step {})",
            state.epoch + 1,
            state.batch,
            state.step
        ));
    }

    let patience = hyper.early_stopping_patience;
    let exhausted = |s: &State| patience.is_some_and(|p| s.epochs_without_improvement >= p);
    let mut stopped_early = exhausted(&state);
    let mut last_eval: Option<Evaluation> = None;
    let log_every = trial.train.log_every_steps.max(1) as i64;

    while state.epoch < epochs && !stopped_early {
        let order: Vec<u32> = cerulean_lake::epoch_permutation(n, seed, state.epoch as u64)
            .into_iter()
            .map(|i| i as u32)
            .collect();
        let order = Tensor::from_vec(order, n, &device)?;
        let started = Instant::now();
        let mut loss_sum = Tensor::zeros((), DType::F32, &device)?;
        let mut samples_now = 0usize;
        for b in state.batch..batches {
            if ctx.cancelled() {
                let partial = state.partial_loss_sum + f64::from(loss_sum.to_scalar::<f32>()?);
                state.batch = b;
                state.partial_loss_sum = partial;
                state.partial_samples += samples_now;
                ctx.log_line(&format!(
                    "cancelled at epoch {}/{epochs}, batch {b}/{batches} (step {})",
                    state.epoch + 1,
                    state.step
                ));
                let checkpoint = make_checkpoint(&state, &params, &optimizer, &fingerprint)?;
                let metrics = last_eval
                    .as_ref()
                    .map(Evaluation::as_map)
                    .unwrap_or_default();
                let value = last_eval.as_ref().map_or(f64::NAN, |e| e.primary);
                return Ok(TrainOutcome {
                    files: Vec::new(),
                    metrics,
                    primary_metric: (primary_name.to_owned(), value, higher_is_better),
                    epochs_run: state.epoch,
                    stopped_early: false,
                    cancelled: true,
                    exported_epoch: 0,
                    task,
                    feature_names: data.feature_names.clone(),
                    resume: Some(checkpoint),
                });
            }
            let start = b * batch_size;
            let len = batch_size.min(n - start);
            let rows = order.narrow(0, start, len)?;
            let x = prepared.train_x.index_select(&rows, 0)?;
            let y = prepared.train_y.index_select(&rows, 0)?;
            let loss = loss_of(task, &network.forward(&x)?, &y)?;
            let grads = loss.backward()?;
            optimizer.step(&grads)?;
            state.step += 1;
            samples_now += len;
            let loss = loss.detach();
            loss_sum = (loss_sum + loss.affine(len as f64, 0.0)?)?;
            if state.step % log_every == 0 {
                let value = f64::from(loss.to_scalar::<f32>()?);
                ctx.log_metrics(state.step, &[("train_loss", value)])?;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let samples_per_second = samples_now as f64 / seconds.max(1e-9);
        let epoch_samples = state.partial_samples + samples_now;
        let train_loss = (state.partial_loss_sum + f64::from(loss_sum.to_scalar::<f32>()?))
            / epoch_samples.max(1) as f64;
        state.batch = 0;
        state.partial_loss_sum = 0.0;
        state.partial_samples = 0;
        state.epoch += 1;

        let eval = evaluate(network.as_ref(), &prepared, task)?;
        let mut logged: Vec<(&str, f64)> = vec![
            ("epoch", state.epoch as f64),
            ("loss", train_loss),
            ("val_loss", eval.val_loss),
        ];
        logged.extend(eval.metrics.iter().copied());
        logged.push(("learning_rate", learning_rate));
        logged.push(("samples_per_second", samples_per_second));
        ctx.log_metrics(state.step, &logged)?;
        let shown: Vec<String> = eval
            .metrics
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        ctx.log_line(&format!(
            "epoch {}/{epochs} loss {train_loss:.4} val_loss {:.4} {} {samples_per_second:.0} samples/s",
            state.epoch,
            eval.val_loss,
            shown.join(" "),
        ));

        let improved = match &state.best {
            None => !eval.primary.is_nan(),
            Some(best) => is_better(eval.primary, eval.val_loss, best, higher_is_better),
        };
        if improved {
            state.best = Some(BestState {
                epoch: state.epoch,
                metric: eval.primary,
                val_loss: eval.val_loss,
                weights: snapshot(&params)?,
            });
            state.epochs_without_improvement = 0;
        } else {
            state.epochs_without_improvement += 1;
        }
        stopped_early = exhausted(&state) && state.epoch < epochs;
        let every = trial.train.checkpoint_every_epochs;
        if every > 0 && state.epoch.is_multiple_of(every) {
            let checkpoint = make_checkpoint(&state, &params, &optimizer, &fingerprint)?;
            ctx.save_checkpoint(&checkpoint)?;
        }
        if stopped_early {
            ctx.log_line(&format!(
                "early stopping: {primary_name} has not improved for {} epochs",
                state.epochs_without_improvement
            ));
        }
        last_eval = Some(eval);
    }

    let mut exported_epoch = state.epoch;
    if patience.is_some()
        && let Some(best) = &state.best
    {
        load_weights(&params, &best.weights)?;
        exported_epoch = best.epoch;
    }
    let final_eval = evaluate(network.as_ref(), &prepared, task)?;
    let files = family.export(&snapshot(&params)?)?;
    ctx.log_line(&format!(
        "done after {} epochs; exported epoch {exported_epoch}: {primary_name} {:.4}",
        state.epoch, final_eval.primary
    ));
    Ok(TrainOutcome {
        files,
        metrics: final_eval.as_map(),
        primary_metric: (
            primary_name.to_owned(),
            final_eval.primary,
            higher_is_better,
        ),
        epochs_run: state.epoch,
        stopped_early,
        cancelled: false,
        exported_epoch,
        task,
        feature_names: data.feature_names.clone(),
        resume: None,
    })
}

/// The task's loss: softmax cross-entropy over logits and class indices, or mean squared error.
fn loss_of(task: Task, output: &Tensor, target: &Tensor) -> candle_core::Result<Tensor> {
    match task {
        Task::Classification => cross_entropy(output, target),
        Task::Regression => candle_nn::loss::mse(output, target),
    }
}

/// Mean softmax cross-entropy of logits `[n, C]` against U32 class indices `[n]`:
/// `mean(logsumexp(z) - z[y])`, computed as `candle_nn::loss::cross_entropy` does but with the
/// row maximum treated as a constant (as PyTorch does): its gradient cancels out, and not
/// tracing it saves a third of the backward pass of this small graph.
fn cross_entropy(logits: &Tensor, target: &Tensor) -> candle_core::Result<Tensor> {
    let max = logits.max_keepdim(1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_sum_exp = shifted.exp()?.sum_keepdim(1)?.log()?;
    let picked = shifted.gather(&target.unsqueeze(1)?, 1)?;
    (log_sum_exp - picked)?.mean_all()
}

/// Whether `metric` (with `val_loss` as tie-breaker) beats `best`.
fn is_better(metric: f64, val_loss: f64, best: &BestState, higher_is_better: bool) -> bool {
    if metric.is_nan() {
        return false;
    }
    let (a, b) = if higher_is_better {
        (metric, best.metric)
    } else {
        (best.metric, metric)
    };
    a > b || (a == b && val_loss < best.val_loss)
}

/// Evaluates the validation rows: loss and the task's metrics.
fn evaluate(network: &dyn Network, prepared: &Prepared, task: Task) -> Result<Evaluation> {
    let n = prepared.val_rows;
    let mut loss_sum = 0.0f64;
    let mut classes: Vec<u32> = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    let chunk = network.eval_chunk_rows().unwrap_or(EVAL_CHUNK_ROWS).max(1);
    for start in (0..n).step_by(chunk) {
        let len = chunk.min(n - start);
        let x = prepared.val_x.narrow(0, start, len)?;
        let y = prepared.val_y.narrow(0, start, len)?;
        let output = network.forward(&x)?.detach();
        loss_sum += f64::from(loss_of(task, &output, &y)?.to_scalar::<f32>()?) * len as f64;
        match task {
            Task::Classification => classes.extend(output.argmax(1)?.to_vec1::<u32>()?),
            Task::Regression => values.extend(output.flatten_all()?.to_vec1::<f32>()?),
        }
    }
    let val_loss = loss_sum / n.max(1) as f64;
    let (metrics, primary) = match &prepared.target {
        Target::Classes { labels, val_truth } => {
            let (accuracy, macro_f1) = metrics::classification(&classes, val_truth, labels.len());
            (
                vec![("val_accuracy", accuracy), ("val_macro_f1", macro_f1)],
                accuracy,
            )
        }
        Target::Values {
            mean,
            std,
            val_truth,
        } => {
            let predicted: Vec<f32> = values
                .iter()
                .map(|&v| (f64::from(v) * std + mean) as f32)
                .collect();
            let (rmse, mae) = metrics::regression(&predicted, val_truth);
            (vec![("val_rmse", rmse), ("val_mae", mae)], rmse)
        }
    };
    Ok(Evaluation {
        val_loss,
        metrics,
        primary,
    })
}

/// The variables of `varmap`, sorted by name.
fn sorted_vars(varmap: &VarMap) -> Result<Vec<(String, Var)>> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| TrainError::Internal("the variable map's lock is poisoned".into()))?;
    let mut out: Vec<(String, Var)> = vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The variables' values, copied to the host.
fn snapshot(params: &[(String, Var)]) -> Result<Weights> {
    params
        .iter()
        .map(|(name, var)| Ok((name.clone(), HostTensor::from_tensor(var.as_tensor())?)))
        .collect()
}

/// Sets the variables from saved weights (same names and shapes).
fn load_weights(params: &[(String, Var)], weights: &Weights) -> Result<()> {
    if weights.len() != params.len() {
        return Err(TrainError::Checkpoint(format!(
            "{} weight tensors saved, the model has {}",
            weights.len(),
            params.len()
        )));
    }
    for (name, var) in params {
        let saved = weights
            .get(name)
            .ok_or_else(|| TrainError::Checkpoint(format!("no weights for {name}")))?;
        if saved.shape != var.dims() {
            return Err(TrainError::Checkpoint(format!(
                "{name} was saved with shape {:?}, the model has {:?}",
                saved.shape,
                var.dims()
            )));
        }
        var.set(&saved.to_tensor(var.device())?)?;
    }
    Ok(())
}

fn make_checkpoint(
    state: &State,
    params: &[(String, Var)],
    optimizer: &AdamW,
    fingerprint: &serde_json::Value,
) -> Result<Checkpoint> {
    Ok(Checkpoint {
        epoch: state.epoch,
        batch: state.batch,
        step: state.step,
        weights: snapshot(params)?,
        optimizer: optimizer.state()?,
        best: state.best.clone(),
        epochs_without_improvement: state.epochs_without_improvement,
        partial_loss_sum: state.partial_loss_sum,
        partial_samples: state.partial_samples,
        fingerprint: fingerprint.clone(),
    })
}

/// What a run's state depends on: the data (spec and version), the model and the optimisation
/// settings. `epochs`, early stopping, the device and the logging and checkpoint cadence may
/// change between a checkpoint and its resume.
fn fingerprint(trial: &JobSpec, data: &LoadedDataset) -> serde_json::Value {
    let json = trial.to_json();
    let train = &json["train"];
    serde_json::json!({
        "dataset": json["dataset"],
        "dataset_version": data.version.content_hash,
        "model": json["model"],
        "train": {
            "batch_size": train["batch_size"],
            "learning_rate": train["learning_rate"],
            "weight_decay": train["weight_decay"],
            "seed": train["seed"],
        },
    })
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

/// Fails, naming the first setting that differs, when a checkpoint belongs to another job.
fn check_fingerprint(saved: &serde_json::Value, now: &serde_json::Value) -> Result<()> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", saved, &mut a);
    flatten("", now, &mut b);
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for key in keys {
        let (was, is) = (a.get(key), b.get(key));
        if was != is {
            let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(unset)".into());
            return Err(TrainError::Checkpoint(format!(
                "it was made for a different run: {key} was {}, is now {}",
                show(was),
                show(is)
            )));
        }
    }
    Ok(())
}
