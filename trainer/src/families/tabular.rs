//! The tabular families' data preparation and export.
//!
//! - Split: `cerulean_lake::split(rows, dataset.validation_split, train.seed)`.
//! - Features: standardized with the training rows' mean and (population) standard deviation; a
//!   constant feature gets a standard deviation of 1. The statistics go into `model.json`'s
//!   `standardize` preprocessing, which the serving backend applies to raw requests.
//! - Classification targets: class indices into the sorted labels (see
//!   [`LabelValues::classes`](crate::LabelValues::classes)); the classes are taken from every row,
//!   so a class seen only in validation still has an output.
//! - Regression targets: standardized with the training rows' mean and standard deviation for
//!   training; export folds the scaling back into the last layer, so the served model predicts in
//!   the label's units.

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use crate::checkpoint::Weights;
use crate::data::{LabelValues, LoadedDataset};
use crate::error::{Result, TrainError};
use crate::export::{self, Head};
use crate::families::{Family, Network, Prepared, Target, mlp};
use crate::spec::{Activation, Task};

/// A tabular family: the layered network over standardized numeric features.
pub struct TabularFamily {
    name: &'static str,
    hidden: Vec<usize>,
    activation: Activation,
    task: Task,
    /// Set by `prepare`.
    shape: Option<Shape>,
}

/// What `prepare` learned from the data.
struct Shape {
    input_dim: usize,
    output_dim: usize,
    mean: Vec<f32>,
    std: Vec<f32>,
    head: Head,
}

impl TabularFamily {
    /// A family named `name` with `hidden` layers (none for linear and logistic).
    pub fn new(name: &'static str, hidden: Vec<usize>, activation: Activation, task: Task) -> Self {
        TabularFamily {
            name,
            hidden,
            activation,
            task,
            shape: None,
        }
    }

    fn shape(&self) -> Result<&Shape> {
        self.shape
            .as_ref()
            .ok_or_else(|| TrainError::Internal("the family was not prepared".into()))
    }

    /// What [`Family::export`] writes, before writing: the encoded weights and the spec (the
    /// text classifier wraps the spec).
    pub fn export_parts(&self, weights: &Weights) -> Result<(Vec<u8>, export::ModelSpec)> {
        let shape = self.shape()?;
        export::tabular_parts(&self.export_model(shape), weights)
    }

    /// The training features' per-feature mean and standard deviation (after
    /// [`Family::prepare`]), which the exported model applies to its input.
    pub fn standardization(&self) -> Result<(&[f32], &[f32])> {
        let shape = self.shape()?;
        Ok((&shape.mean, &shape.std))
    }

    /// [`TabularFamily::export_parts`] before encoding: the head's tensors and the spec.
    pub fn export_tensors(&self, weights: &Weights) -> Result<(Weights, export::ModelSpec)> {
        let shape = self.shape()?;
        export::tabular_tensors(&self.export_model(shape), weights)
    }

    fn export_model<'a>(&'a self, shape: &'a Shape) -> export::TabularModel<'a> {
        export::TabularModel {
            input_dim: shape.input_dim,
            hidden: &self.hidden,
            output_dim: shape.output_dim,
            activation: self.activation,
            mean: &shape.mean,
            std: &shape.std,
            head: &shape.head,
        }
    }

    fn widths(&self) -> Result<Vec<usize>> {
        let shape = self.shape()?;
        Ok(std::iter::once(shape.input_dim)
            .chain(self.hidden.iter().copied())
            .chain(std::iter::once(shape.output_dim))
            .collect())
    }
}

/// Mean and population standard deviation of `values` (1 when they are constant).
fn mean_std(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let (mut n, mut sum) = (0usize, 0.0f64);
    for v in values.clone() {
        n += 1;
        sum += v;
    }
    let mean = sum / n.max(1) as f64;
    let var = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n.max(1) as f64;
    let std = var.sqrt();
    (
        mean,
        if std > 0.0 && std.is_finite() {
            std
        } else {
            1.0
        },
    )
}

impl Family for TabularFamily {
    fn name(&self) -> &'static str {
        self.name
    }

    fn prepare(
        &mut self,
        data: &LoadedDataset,
        validation_split: f64,
        seed: u64,
        device: &Device,
    ) -> Result<Prepared> {
        let d = data.feature_count();
        if d == 0 {
            return Err(TrainError::spec(
                "dataset.features",
                format!(
                    "the dataset has no numeric feature columns besides the label '{}'",
                    data.label.name
                ),
            ));
        }
        let (train_idx, val_idx) = cerulean_lake::split(data.rows, validation_split, seed)?;
        if train_idx.is_empty() || val_idx.is_empty() {
            return Err(TrainError::data(format!(
                "{} rows with validation_split {validation_split} leave {} training and {} \
                 validation rows; each needs at least one",
                data.rows,
                train_idx.len(),
                val_idx.len()
            )));
        }
        let row = |r: usize| &data.features[r * d..(r + 1) * d];
        let mut mean = Vec::with_capacity(d);
        let mut std = Vec::with_capacity(d);
        for f in 0..d {
            let (m, s) = mean_std(train_idx.iter().map(|&r| f64::from(row(r)[f])));
            mean.push(m as f32);
            std.push(s as f32);
        }
        let gather = |rows: &[usize]| -> Result<Tensor> {
            let mut out = Vec::with_capacity(rows.len() * d);
            for &r in rows {
                out.extend(
                    row(r)
                        .iter()
                        .zip(mean.iter().zip(&std))
                        .map(|(x, (m, s))| (x - m) / s),
                );
            }
            Ok(Tensor::from_vec(out, (rows.len(), d), device)?)
        };
        let train_x = gather(&train_idx)?;
        let val_x = gather(&val_idx)?;

        let (train_y, val_y, target, head, output_dim) = match self.task {
            Task::Classification => {
                let (labels, indices) = data.label.values.classes()?;
                if labels.len() < 2 {
                    return Err(TrainError::column(
                        &data.label.name,
                        format!(
                            "has a single class {:?}; classification needs at least two",
                            labels.first().map(String::as_str).unwrap_or_default()
                        ),
                    ));
                }
                let pick = |rows: &[usize]| rows.iter().map(|&r| indices[r]).collect::<Vec<u32>>();
                let (train_truth, val_truth) = (pick(&train_idx), pick(&val_idx));
                let train_y = Tensor::from_vec(train_truth, train_idx.len(), device)?;
                let val_y = Tensor::from_slice(&val_truth, val_idx.len(), device)?;
                let output_dim = labels.len();
                (
                    train_y,
                    val_y,
                    Target::Classes {
                        labels: labels.clone(),
                        val_truth,
                    },
                    Head::Classes(labels),
                    output_dim,
                )
            }
            Task::Regression => {
                let LabelValues::Numeric { values, .. } = &data.label.values else {
                    return Err(TrainError::column(
                        &data.label.name,
                        "regression needs a numeric label",
                    ));
                };
                let (m, s) = mean_std(train_idx.iter().map(|&r| values[r]));
                let scaled = |rows: &[usize]| -> Result<Tensor> {
                    let v: Vec<f32> = rows.iter().map(|&r| ((values[r] - m) / s) as f32).collect();
                    Ok(Tensor::from_vec(v, (rows.len(), 1), device)?)
                };
                let val_truth = val_idx.iter().map(|&r| values[r] as f32).collect();
                (
                    scaled(&train_idx)?,
                    scaled(&val_idx)?,
                    Target::Values {
                        mean: m,
                        std: s,
                        val_truth,
                    },
                    Head::Values { mean: m, std: s },
                    1,
                )
            }
        };
        let description = format!(
            "{} training rows x {d} features, {} validation rows{}",
            train_idx.len(),
            val_idx.len(),
            match &head {
                Head::Classes(labels) => format!(", {} classes", labels.len()),
                Head::Values { .. } => String::new(),
            }
        );
        self.shape = Some(Shape {
            input_dim: d,
            output_dim,
            mean,
            std,
            head,
        });
        Ok(Prepared {
            train_x,
            train_y,
            val_x,
            val_y,
            target,
            train_rows: train_idx.len(),
            val_rows: val_idx.len(),
            description,
        })
    }

    fn build(&self, varmap: &VarMap, device: &Device, seed: u64) -> Result<Box<dyn Network>> {
        let widths = self.widths()?;
        Ok(Box::new(mlp::build(
            &widths,
            self.activation,
            varmap,
            device,
            seed,
        )?))
    }

    fn export(&self, weights: &Weights) -> Result<Vec<(String, Vec<u8>)>> {
        let shape = self.shape()?;
        export::tabular_files(&self.export_model(shape), weights)
    }
}
