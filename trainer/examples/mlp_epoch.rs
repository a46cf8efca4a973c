//! Times training epochs of the digits MLP (64 → 64 → 32 → 10, batch 64, AdamW 1e-3), for the
//! comparison with PyTorch on the CPU.
//!
//! ```text
//! cargo run --release -p cerulean-trainer --example mlp_epoch -- [EPOCHS] [DEVICE]
//! CERULEAN_SKLEARN_DATA=.../sklearn/datasets/data cargo run ... # scikit-learn's digits
//! ```
//!
//! Uses scikit-learn's digits (`$CERULEAN_SKLEARN_DATA`, or the scikit-learn in
//! `${CERULEAN_VENV:-$HOME/.cache/cerulean/venv}`). The data goes through Parquet and the lake as
//! in a real job. Prints each epoch's training time (forward, backward and optimizer steps only), its wall
//! time including validation, and samples per second, then the medians.

use std::time::Instant;

use cerulean_trainer::{Checkpoint, JobSpec, TrainContext, load_dataset, train};

// scikit-learn's digits as Parquet, written as the tests write them.
#[path = "../../tests/common/sklearn.rs"]
mod sklearn;

struct Timing {
    epoch_started: Instant,
    epochs: Vec<(f64, f64)>,
}

impl TrainContext for Timing {
    fn log_metrics(&mut self, _step: i64, metrics: &[(&str, f64)]) -> cerulean_trainer::Result<()> {
        if let Some((_, sps)) = metrics.iter().find(|(n, _)| *n == "samples_per_second") {
            let wall = self.epoch_started.elapsed().as_secs_f64();
            self.epochs.push((*sps, wall));
            self.epoch_started = Instant::now();
        }
        Ok(())
    }
    fn log_line(&mut self, line: &str) {
        println!("{line}");
    }
    fn save_checkpoint(&mut self, _checkpoint: &Checkpoint) -> cerulean_trainer::Result<()> {
        Ok(())
    }
    fn cancelled(&self) -> bool {
        false
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: first thing in main; no other thread exists yet.
    unsafe { cerulean_trainer::set_cpu_threads_at_startup() };
    let mut args = std::env::args().skip(1);
    let epochs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20);
    let device = args.next().unwrap_or_else(|| "cpu".to_owned());
    let data_dir = sklearn::sklearn_data().ok_or(
        "scikit-learn's digits not found: run `bash .ci/setup-python.sh` or set CERULEAN_SKLEARN_DATA",
    )?;
    let source = "scikit-learn digits";
    let dir = tempfile::tempdir()?;
    let path = sklearn::digits_parquet(&data_dir, dir.path());
    let spec = JobSpec::from_toml(&format!(
        r#"
name = "mlp-epoch"
[dataset]
uri = "file://{}"
format = "parquet"
label = "target"
validation_split = 0.2
[model]
family = "mlp"
hidden = [64, 32]
[train]
epochs = {epochs}
batch_size = 64
learning_rate = 0.001
device = "{device}"
seed = 42
checkpoint_every_epochs = 0
log_every_steps = 1000000
"#,
        path.display()
    ))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let data = runtime.block_on(load_dataset(&spec.dataset))?;
    println!(
        "data: {source}, {} rows x {} features",
        data.rows,
        data.feature_count()
    );
    let mut timing = Timing {
        epoch_started: Instant::now(),
        epochs: Vec::new(),
    };
    let started = Instant::now();
    let outcome = train(&spec, &data, None, &mut timing)?;
    let total = started.elapsed().as_secs_f64();
    let train_rows = (data.rows as f64 * 0.8).round();
    let mut train_ms: Vec<f64> = timing
        .epochs
        .iter()
        .map(|(sps, _)| train_rows / sps * 1e3)
        .collect();
    let mut wall_ms: Vec<f64> = timing.epochs.iter().map(|(_, w)| w * 1e3).collect();
    let mut sps: Vec<f64> = timing.epochs.iter().map(|(s, _)| *s).collect();
    for (i, ((t, w), s)) in train_ms.iter().zip(&wall_ms).zip(&sps).enumerate() {
        println!(
            "epoch {:>3}: train {t:7.2} ms, with validation {w:7.2} ms, {s:9.0} samples/s",
            i + 1
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "median epoch: train {:.2} ms, with validation {:.2} ms, {:.0} samples/s; {} epochs in {:.2} s; val_accuracy {:.4}",
        median(&mut train_ms),
        median(&mut wall_ms),
        median(&mut sps),
        outcome.epochs_run,
        total,
        outcome
            .metrics
            .get("val_accuracy")
            .copied()
            .unwrap_or(f64::NAN)
    );
    Ok(())
}
