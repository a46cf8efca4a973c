//! The training loop end to end on synthetic Parquet data read through the lake: determinism and
//! exact resume, cancellation, early stopping, checkpoint cadence, metrics, regression quality,
//! and the errors of unimplemented families and missing devices.

mod common;

use std::sync::atomic::Ordering;

use cerulean_trainer::{
    Checkpoint, JobSpec, RecordingContext, Task, TrainError, TrainOutcome, train,
};

fn weights_of(outcome: &TrainOutcome) -> &[u8] {
    &outcome
        .files
        .iter()
        .find(|(name, _)| name == "model.safetensors")
        .expect("model.safetensors exported")
        .1
}

fn run(spec: &JobSpec, data: &cerulean_trainer::LoadedDataset) -> (TrainOutcome, RecordingContext) {
    let mut ctx = RecordingContext::new();
    let outcome = train(spec, data, None, &mut ctx).unwrap();
    (outcome, ctx)
}

#[test]
fn resuming_from_a_checkpoint_gives_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::blobs(dir.path(), 300);
    let six = common::job(
        &path,
        "target",
        "mlp",
        "hidden = [16, 8]",
        "epochs = 6\nbatch_size = 16\nweight_decay = 0.01",
    );
    let three = common::job(
        &path,
        "target",
        "mlp",
        "hidden = [16, 8]",
        "epochs = 3\nbatch_size = 16\nweight_decay = 0.01",
    );
    let data = common::load(&six);

    let (straight, _) = run(&six, &data);
    let (again, _) = run(&six, &data);
    assert_eq!(
        weights_of(&straight),
        weights_of(&again),
        "training is deterministic"
    );

    // 3 epochs, the epoch-3 checkpoint through bytes, 3 more epochs.
    let (first, ctx) = run(&three, &data);
    assert_eq!(first.epochs_run, 3);
    assert_eq!(ctx.checkpoints.len(), 3);
    let checkpoint = Checkpoint::from_bytes(ctx.checkpoints.last().unwrap()).unwrap();
    assert_eq!(checkpoint.epoch, 3);
    assert_eq!(checkpoint.batch, 0);
    let mut ctx = RecordingContext::new();
    let resumed = train(&six, &data, Some(checkpoint), &mut ctx).unwrap();
    assert_eq!(resumed.epochs_run, 6);
    assert_eq!(
        weights_of(&resumed),
        weights_of(&straight),
        "bit-identical after resume"
    );
    assert_eq!(resumed.metrics, straight.metrics);
    assert!(
        ctx.lines
            .iter()
            .any(|l| l.starts_with("resuming at epoch 4/6"))
    );

    // Cancelled mid-epoch, resumed from the returned state.
    let mut ctx = RecordingContext::new();
    // 240 training rows / 16 = 15 steps per epoch: step 40 is batch 9 of epoch index 2.
    ctx.cancel_after_logged_steps = Some(40);
    let spec = common::job(
        &path,
        "target",
        "mlp",
        "hidden = [16, 8]",
        "epochs = 6\nbatch_size = 16\nweight_decay = 0.01\nlog_every_steps = 1",
    );
    let cancelled = train(&spec, &data, None, &mut ctx).unwrap();
    assert!(cancelled.cancelled);
    assert!(cancelled.files.is_empty());
    let state = cancelled.resume.expect("cancel returns the state");
    assert_eq!((state.epoch, state.batch, state.step), (2, 10, 40));
    let state = Checkpoint::from_bytes(&state.to_bytes().unwrap()).unwrap();
    let mut ctx = RecordingContext::new();
    let finished = train(&spec, &data, Some(state), &mut ctx).unwrap();
    assert_eq!(
        weights_of(&finished),
        weights_of(&straight),
        "bit-identical after a mid-epoch resume"
    );
}

#[test]
fn a_checkpoint_from_another_job_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::blobs(dir.path(), 90);
    let spec = common::job(&path, "target", "logistic", "", "epochs = 1");
    let data = common::load(&spec);
    let (_, ctx) = run(&spec, &data);
    let checkpoint = Checkpoint::from_bytes(&ctx.checkpoints[0]).unwrap();
    let other = common::job(
        &path,
        "target",
        "logistic",
        "",
        "epochs = 2\nlearning_rate = 0.01",
    );
    let e = train(
        &other,
        &data,
        Some(checkpoint),
        &mut RecordingContext::new(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "checkpoint: it was made for a different run: train.learning_rate was 0.001, is now 0.01"
    );
}

#[test]
fn metrics_lines_and_checkpoints_follow_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::blobs(dir.path(), 300);
    let spec = common::job(
        &path,
        "target",
        "mlp",
        "hidden = [8]",
        "epochs = 5\nbatch_size = 32\ncheckpoint_every_epochs = 2\nlog_every_steps = 4\nlearning_rate = 0.01",
    );
    let data = common::load(&spec);
    assert_eq!(data.rows, 300);
    assert_eq!(data.feature_names, vec!["x0", "x1", "x2", "x3"]);
    let (outcome, ctx) = run(&spec, &data);
    assert_eq!(
        outcome.task,
        Task::Classification,
        "integer label with 3 values"
    );
    // 240 training rows / 32 = 8 steps per epoch, 40 in all; train_loss every 4 steps.
    let steps: Vec<i64> = ctx.series("train_loss").iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, (1..=10).map(|i| i * 4).collect::<Vec<_>>());
    let epochs = ctx.series("epoch");
    assert_eq!(
        epochs,
        (1..=5).map(|e| (e * 8, e as f64)).collect::<Vec<_>>()
    );
    for name in [
        "loss",
        "val_loss",
        "val_accuracy",
        "val_macro_f1",
        "learning_rate",
        "samples_per_second",
    ] {
        assert_eq!(ctx.series(name).len(), 5, "{name}");
    }
    assert_eq!(ctx.series("learning_rate")[0].1, 0.01);
    let checkpoints: Vec<usize> = ctx
        .checkpoints
        .iter()
        .map(|b| Checkpoint::from_bytes(b).unwrap().epoch)
        .collect();
    assert_eq!(checkpoints, vec![2, 4]);
    let line = ctx
        .lines
        .iter()
        .find(|l| l.starts_with("epoch 3/5 "))
        .unwrap();
    assert!(
        line.contains(" val_accuracy ") && line.ends_with(" samples/s"),
        "{line}"
    );
    assert!(!outcome.stopped_early && !outcome.cancelled);
    assert_eq!(outcome.epochs_run, 5);
    assert_eq!(outcome.exported_epoch, 5);
    assert_eq!(outcome.primary_metric.0, "val_accuracy");
    assert!(outcome.primary_metric.2);
    assert_eq!(outcome.primary_metric.1, outcome.metrics["val_accuracy"]);
    assert_eq!(
        ctx.series("val_accuracy").last().unwrap().1,
        outcome.metrics["val_accuracy"]
    );
    assert!(
        outcome.metrics["val_accuracy"] > 0.7,
        "{:?}",
        outcome.metrics
    );
    let losses = ctx.series("loss");
    assert!(losses.last().unwrap().1 < losses[0].1, "{losses:?}");
}

#[test]
fn early_stopping_exports_the_best_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::blobs(dir.path(), 150);
    let spec = common::job(
        &path,
        "target",
        "mlp",
        "hidden = [32]",
        "epochs = 300\nbatch_size = 8\nlearning_rate = 0.01\nearly_stopping_patience = 3",
    );
    let data = common::load(&spec);
    let (outcome, ctx) = run(&spec, &data);
    assert!(outcome.stopped_early, "{:?}", ctx.lines.last());
    assert!(outcome.epochs_run < 300);
    assert_eq!(outcome.exported_epoch + 3, outcome.epochs_run);
    // The exported weights are the best epoch's: its logged accuracy is the outcome's.
    let best = ctx.series("val_accuracy")[outcome.exported_epoch - 1].1;
    assert_eq!(outcome.metrics["val_accuracy"], best);
    let max = ctx
        .series("val_accuracy")
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0, f64::max);
    assert_eq!(best, max);
    assert!(
        ctx.lines
            .iter()
            .any(|l| l.starts_with("early stopping: val_accuracy"))
    );
}

#[test]
fn cancelling_before_the_first_step_returns_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::blobs(dir.path(), 90);
    let spec = common::job(&path, "target", "mlp", "", "epochs = 1000");
    let data = common::load(&spec);
    let mut ctx = RecordingContext::new();
    ctx.cancel.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let outcome = train(&spec, &data, None, &mut ctx).unwrap();
    assert!(started.elapsed().as_secs_f64() < 1.0);
    assert!(outcome.cancelled);
    assert_eq!(outcome.epochs_run, 0);
    assert!(outcome.metrics.is_empty());
    assert!(outcome.primary_metric.1.is_nan());
    assert!(ctx.checkpoints.is_empty());
}

#[test]
fn linear_regression_reaches_the_noise_floor() {
    let dir = tempfile::tempdir().unwrap();
    let noise = 0.1;
    let path = common::linear_data(dir.path(), 1000, noise);
    let spec = common::job(
        &path,
        "y",
        "linear",
        "",
        "epochs = 40\nbatch_size = 32\nlearning_rate = 0.01",
    );
    let data = common::load(&spec);
    let (outcome, _) = run(&spec, &data);
    assert_eq!(outcome.task, Task::Regression);
    let rmse = outcome.metrics["val_rmse"];
    println!(
        "linear regression on y = 3a - 2b + 5 + N(0, {noise}^2): val_rmse {rmse:.4}, val_mae {:.4}",
        outcome.metrics["val_mae"]
    );
    assert!(rmse < noise * 1.3, "rmse {rmse}");
    assert_eq!(outcome.primary_metric, ("val_rmse".to_owned(), rmse, false));
    // An mlp on a float label is a regression too.
    let mlp = common::job(
        &path,
        "y",
        "mlp",
        "hidden = [16]",
        "epochs = 20\nlearning_rate = 0.01",
    );
    let (outcome, _) = run(&mlp, &data);
    assert_eq!(outcome.task, Task::Regression);
    assert!(outcome.metrics["val_rmse"] < 0.5, "{:?}", outcome.metrics);
}

#[test]
fn efficientnet_transfer_learning_parses_and_names_the_missing_weights() {
    let spec = JobSpec::from_toml(
        "name = \"i\"\n[dataset]\nuri = \"file:///tmp/images\"\nformat = \"image-folder\"\n\
         [model]\nfamily = \"image-classifier\"\narchitecture = \"efficientnet-lite0\"\n",
    )
    .unwrap();
    let hyper = spec.hyperparameters().unwrap();
    assert!(hyper.hidden.is_empty(), "a logistic head by default");
    let empty = tempfile::tempdir().unwrap();
    let e = cerulean_trainer::pretrained::efficientnet::from_store(
        &cerulean_models::ModelStore::new(empty.path()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("pretrained model: the EfficientNet-Lite0 weights are not installed")
            && e.contains("cerulean models pull efficientnet-lite0"),
        "{e}"
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn a_cuda_job_on_a_cpu_build_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::blobs(dir.path(), 30);
    let spec = common::job(&path, "target", "logistic", "", "device = \"cuda:0\"");
    assert!(spec.requires_gpu());
    let data = common::load(&spec);
    let e = train(&spec, &data, None, &mut RecordingContext::new()).unwrap_err();
    assert!(matches!(e, TrainError::Device(_)));
    assert!(
        e.to_string().contains("this build has no CUDA support"),
        "{e}"
    );
}

#[test]
fn a_swept_spec_must_be_split_into_trials_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::blobs(dir.path(), 30);
    let spec = common::job(
        &path,
        "target",
        "logistic",
        "",
        "learning_rate = [0.1, 0.2]",
    );
    let data = common::load(&spec);
    let e = train(&spec, &data, None, &mut RecordingContext::new()).unwrap_err();
    assert!(
        e.to_string().starts_with("train.learning_rate: is swept"),
        "{e}"
    );
    let trials = spec.trials().unwrap();
    assert_eq!(trials.len(), 2);
    for trial in trials {
        let mut ctx = RecordingContext::new();
        let outcome = train(&trial.spec, &data, None, &mut ctx).unwrap();
        assert_eq!(outcome.files.len(), 2);
    }
}
