//! Sweeps: a job whose hyperparameters are lists expands into [`Trial`]s of single values.
//!
//! - `grid` (the default, also without a `[sweep]` section): every combination, in the order of
//!   the swept keys below with the last varying fastest, cut to `max_trials` when given.
//! - `random`: `max_trials` distinct combinations, each parameter drawn uniformly from its list
//!   with a generator seeded by `train.seed` (all combinations, shuffled, when there are no more
//!   than `max_trials`).
//!
//! Swept keys, in order: `model.hidden`, `model.embedding_dim`, `model.max_length`,
//! `model.image_size`, `train.epochs`, `train.batch_size`, `train.learning_rate`,
//! `train.weight_decay`, `train.early_stopping_patience`.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::error::{Result, TrainError};
use crate::rng::SplitMix64;
use crate::spec::{JobSpec, Param, SweepStrategy};

/// The most trials one job may expand into.
pub const MAX_TRIALS: usize = 10_000;

/// The generator stream of random sweeps (so they do not repeat the weight initialisation's
/// numbers for the same seed).
const SWEEP_STREAM: u64 = 0x5EE9_0000_0000_0001;

/// One trial of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// The trial's position, from 0.
    pub index: usize,
    /// The swept keys and this trial's values as JSON text, e.g. `train.learning_rate -> 0.003`,
    /// `model.hidden -> [64,32]`; empty when nothing is swept.
    pub swept: BTreeMap<String, String>,
    /// The job with this trial's values: every parameter single, no `[sweep]` section.
    pub spec: JobSpec,
}

/// A swept key and its values as JSON.
type Axis = (&'static str, Vec<serde_json::Value>);

fn axis<T: Serialize>(key: &'static str, param: Option<&Param<T>>, axes: &mut Vec<Axis>) {
    if let Some(Param::Sweep(values)) = param {
        let values = values
            .iter()
            .map(|v| serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
            .collect();
        axes.push((key, values));
    }
}

/// The swept keys of `spec`, in the documented order.
fn axes(spec: &JobSpec) -> Vec<Axis> {
    let mut axes = Vec::new();
    let (m, t) = (&spec.model, &spec.train);
    axis("model.hidden", m.hidden.as_ref(), &mut axes);
    axis("model.embedding_dim", m.embedding_dim.as_ref(), &mut axes);
    axis("model.max_length", m.max_length.as_ref(), &mut axes);
    axis("model.image_size", m.image_size.as_ref(), &mut axes);
    axis("train.epochs", Some(&t.epochs), &mut axes);
    axis("train.batch_size", Some(&t.batch_size), &mut axes);
    axis("train.learning_rate", Some(&t.learning_rate), &mut axes);
    axis("train.weight_decay", Some(&t.weight_decay), &mut axes);
    axis(
        "train.early_stopping_patience",
        t.early_stopping_patience.as_ref(),
        &mut axes,
    );
    axes
}

/// Expands `spec` into its trials (see the module documentation).
pub(crate) fn expand(spec: &JobSpec) -> Result<Vec<Trial>> {
    let axes = axes(spec);
    let mut base = spec.clone();
    base.sweep = None;
    if axes.is_empty() {
        return Ok(vec![Trial {
            index: 0,
            swept: BTreeMap::new(),
            spec: base,
        }]);
    }
    let sizes: Vec<usize> = axes.iter().map(|(_, v)| v.len()).collect();
    let grid = sizes
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .unwrap_or(usize::MAX);
    let strategy = spec.sweep.as_ref().map(|s| s.strategy).unwrap_or_default();
    let max_trials = spec.sweep.as_ref().and_then(|s| s.max_trials);
    if let Some(max) = max_trials
        && max > MAX_TRIALS
    {
        return Err(TrainError::spec(
            "sweep.max_trials",
            format!("at most {MAX_TRIALS}, got {max}"),
        ));
    }
    let count = max_trials.unwrap_or(grid).min(grid);
    if count > MAX_TRIALS {
        return Err(TrainError::spec(
            "sweep.max_trials",
            format!("the grid has {grid} trials, more than {MAX_TRIALS}; set a smaller max_trials"),
        ));
    }
    let combos: Vec<Vec<usize>> = match strategy {
        SweepStrategy::Grid => (0..count).map(|k| grid_combo(k, &sizes)).collect(),
        SweepStrategy::Random if grid <= count.saturating_mul(2) => {
            cerulean_lake::permutation(grid, spec.train.seed ^ SWEEP_STREAM)
                .into_iter()
                .take(count)
                .map(|k| grid_combo(k, &sizes))
                .collect()
        }
        SweepStrategy::Random => {
            let mut rng = SplitMix64::new(spec.train.seed, SWEEP_STREAM);
            let mut seen = HashSet::new();
            let mut combos = Vec::with_capacity(count);
            while combos.len() < count {
                let combo: Vec<usize> = sizes
                    .iter()
                    .map(|&n| rng.below(n as u64) as usize)
                    .collect();
                if seen.insert(combo.clone()) {
                    combos.push(combo);
                }
            }
            combos
        }
    };
    let base_json = base.to_json();
    combos
        .into_iter()
        .enumerate()
        .map(|(index, combo)| {
            let mut json = base_json.clone();
            let mut swept = BTreeMap::new();
            for ((key, values), &choice) in axes.iter().zip(&combo) {
                let value = values[choice].clone();
                let pointer = format!("/{}", key.replace('.', "/"));
                if let Some(slot) = json.pointer_mut(&pointer) {
                    *slot = value.clone();
                }
                swept.insert((*key).to_owned(), value.to_string());
            }
            let spec = JobSpec::from_json(&json)?;
            Ok(Trial { index, swept, spec })
        })
        .collect()
}

/// The `k`-th combination of the grid, the last axis varying fastest.
fn grid_combo(mut k: usize, sizes: &[usize]) -> Vec<usize> {
    let mut combo = vec![0; sizes.len()];
    for (slot, &n) in combo.iter_mut().zip(sizes).rev() {
        *slot = k % n;
        k /= n;
    }
    combo
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = r#"
name = "sweep"
[dataset]
uri = "file:///data/x.parquet"
format = "parquet"
label = "y"
[model]
family = "mlp"
hidden = [[64], [64, 32]]
[train]
learning_rate = [1e-3, 3e-3, 1e-2]
seed = 5
"#;

    #[test]
    fn grid_expands_every_combination_in_order() {
        let spec = JobSpec::from_toml(JOB).unwrap();
        let trials = spec.trials().unwrap();
        assert_eq!(trials.len(), 6);
        assert_eq!(trials[0].swept["model.hidden"], "[64]");
        assert_eq!(trials[0].swept["train.learning_rate"], "0.001");
        assert_eq!(trials[1].swept["train.learning_rate"], "0.003");
        assert_eq!(trials[3].swept["model.hidden"], "[64,32]");
        for (i, t) in trials.iter().enumerate() {
            assert_eq!(t.index, i);
            let h = t.spec.hyperparameters().unwrap();
            assert_eq!(h.learning_rate.to_string(), t.swept["train.learning_rate"]);
            assert!(t.spec.sweep.is_none());
            assert_eq!(t.spec.trials().unwrap().len(), 1);
        }
        let capped = JobSpec::from_toml(&format!("{JOB}[sweep]\nmax_trials = 4\n")).unwrap();
        assert_eq!(capped.trials().unwrap().len(), 4);
    }

    #[test]
    fn random_is_seeded_and_distinct() {
        let text = format!("{JOB}[sweep]\nstrategy = \"random\"\nmax_trials = 4\nparallel = 2\n");
        let spec = JobSpec::from_toml(&text).unwrap();
        let a = spec.trials().unwrap();
        let b = spec.trials().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 4);
        let distinct: HashSet<_> = a.iter().map(|t| t.swept.clone()).collect();
        assert_eq!(distinct.len(), 4);
        let other = JobSpec::from_toml(&text.replace("seed = 5", "seed = 6")).unwrap();
        assert_ne!(
            other
                .trials()
                .unwrap()
                .iter()
                .map(|t| t.swept.clone())
                .collect::<Vec<_>>(),
            a.iter().map(|t| t.swept.clone()).collect::<Vec<_>>()
        );
        // A large grid is sampled, not enumerated.
        let big = text.replace(
            "learning_rate = [1e-3, 3e-3, 1e-2]",
            "learning_rate = [1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4, 7e-4, 8e-4, 9e-4, 1e-3]\nbatch_size = [8, 16, 32, 64, 128]",
        );
        let trials = JobSpec::from_toml(&big).unwrap().trials().unwrap();
        assert_eq!(trials.len(), 4);
    }

    #[test]
    fn grid_combos_cover_the_grid() {
        let sizes = [2, 3];
        let all: Vec<Vec<usize>> = (0..6).map(|k| grid_combo(k, &sizes)).collect();
        assert_eq!(all[0], vec![0, 0]);
        assert_eq!(all[1], vec![0, 1]);
        assert_eq!(all[5], vec![1, 2]);
    }
}
