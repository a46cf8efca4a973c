//! Shared helpers of the trainer's integration tests: Parquet fixtures written with the parquet
//! crate's ArrowWriter, synthetic datasets, and the scikit-learn data files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array};
use cerulean_trainer::{JobSpec, LoadedDataset, load_dataset};

// The Parquet writer and the scikit-learn fixtures, shared with the end-to-end tests.
#[path = "../../../tests/common/sklearn.rs"]
mod sklearn;
pub use sklearn::*;

/// A small deterministic generator for fixtures (SplitMix64 + Box-Muller).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Three Gaussian blobs in 4 dimensions (classes 0, 1, 2), `rows` rows, written to
/// `dir/blobs.parquet`.
pub fn blobs(dir: &Path, rows: usize) -> PathBuf {
    let mut rng = Rng::new(11);
    let centers = [
        [0.0, 0.0, 0.0, 0.0],
        [2.5, 0.0, 1.0, -1.0],
        [0.0, 2.5, -1.0, 1.0],
    ];
    let mut features = Vec::new();
    let mut target = Vec::new();
    for i in 0..rows {
        let c = i % 3;
        for &center in &centers[c] {
            features.push(center + rng.normal() * 0.8);
        }
        target.push(c as i64);
    }
    let names: Vec<String> = (0..4).map(|j| format!("x{j}")).collect();
    let path = dir.join("blobs.parquet");
    write_table(&path, &names, &features, &target);
    path
}

/// `y = 3a - 2b + 5 + noise` (noise standard deviation `noise`), `rows` rows, written to
/// `dir/linear.parquet` with columns `a`, `b`, `y`.
pub fn linear_data(dir: &Path, rows: usize, noise: f64) -> PathBuf {
    let mut rng = Rng::new(3);
    let (mut a, mut b, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rows {
        let (x1, x2) = (rng.normal() * 2.0 + 1.0, rng.normal() * 0.5 - 3.0);
        a.push(x1);
        b.push(x2);
        y.push(3.0 * x1 - 2.0 * x2 + 5.0 + rng.normal() * noise);
    }
    let path = dir.join("linear.parquet");
    write_parquet(
        &path,
        vec![
            ("a".into(), Arc::new(Float64Array::from(a)) as ArrayRef),
            ("b".into(), Arc::new(Float64Array::from(b)) as ArrayRef),
            ("y".into(), Arc::new(Float64Array::from(y)) as ArrayRef),
        ],
    );
    path
}

/// A job over the Parquet file at `path`, with `extra_model` and `extra_train` lines appended to
/// those sections.
pub fn job(
    path: &Path,
    label: &str,
    family: &str,
    extra_model: &str,
    extra_train: &str,
) -> JobSpec {
    let text = format!(
        r#"
name = "test"
[dataset]
uri = "file://{}"
format = "parquet"
label = "{label}"
validation_split = 0.2
[model]
family = "{family}"
{extra_model}
[train]
seed = 7
{extra_train}
"#,
        path.display()
    );
    JobSpec::from_toml(&text).unwrap()
}

/// Loads the job's dataset through the lake.
pub fn load(spec: &JobSpec) -> LoadedDataset {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(load_dataset(&spec.dataset))
        .unwrap()
}
