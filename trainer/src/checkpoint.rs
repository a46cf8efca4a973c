//! [`Checkpoint`]: everything needed to continue a run exactly where it stopped, as one
//! safetensors file with JSON metadata.
//!
//! Tensors are stored as F32 under `model/<var>` (the weights), `adam_m/<var>` and `adam_v/<var>`
//! (the optimizer's moments) and `best/<var>` (the best epoch's weights, when there is one); the
//! metadata key `cerulean.checkpoint` holds the rest as JSON. The data position needs no state of
//! its own: the shuffle of epoch `e` is derived from `train.seed` and `e`, so the position is the
//! epoch and the batch index within it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::optim::AdamState;

/// The metadata key of the checkpoint's JSON.
const METADATA_KEY: &str = "cerulean.checkpoint";
/// The format version written in the metadata.
const FORMAT: u32 = 1;

/// A tensor copied to host memory: its shape and its F32 values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// The dimensions.
    pub shape: Vec<usize>,
    /// The values, `shape.iter().product()` of them.
    pub data: Vec<f32>,
}

/// Named tensors (a model's weights, an optimizer moment), sorted by name.
pub type Weights = BTreeMap<String, HostTensor>;

impl HostTensor {
    /// Copies `tensor` (any device, any float dtype) to the host as F32.
    pub fn from_tensor(tensor: &Tensor) -> Result<HostTensor> {
        let shape = tensor.dims().to_vec();
        let data = tensor
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(HostTensor { shape, data })
    }

    /// The tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &self.data,
            self.shape.as_slice(),
            device,
        )?)
    }

    fn to_le_bytes(&self) -> Vec<u8> {
        self.data.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}

impl safetensors::View for &HostTensor {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.to_le_bytes())
    }
    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

/// Encodes named F32 tensors (and optional metadata) as a safetensors file.
pub(crate) fn encode_safetensors(
    tensors: &BTreeMap<String, &HostTensor>,
    metadata: Option<HashMap<String, String>>,
) -> std::result::Result<Vec<u8>, safetensors::SafeTensorError> {
    safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), *v)), metadata)
}

/// Decodes every tensor of a safetensors file as F32 host tensors, with its metadata.
pub(crate) fn decode_safetensors(
    bytes: &[u8],
) -> std::result::Result<(Weights, HashMap<String, String>), String> {
    let (_, metadata) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let metadata = metadata.metadata().clone().unwrap_or_default();
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut out = Weights::new();
    for (name, view) in file.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(format!("tensor {name} is {:?}, expected F32", view.dtype()));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.insert(
            name,
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok((out, metadata))
}

/// The best epoch seen so far (by the primary validation metric).
#[derive(Debug, Clone, PartialEq)]
pub struct BestState {
    /// The epoch whose weights these are, counting from 1 (the epochs completed then).
    pub epoch: usize,
    /// Its primary validation metric.
    pub metric: f64,
    /// Its validation loss (the tie-breaker).
    pub val_loss: f64,
    /// Its weights.
    pub weights: Weights,
}

/// The state of a run between two optimisation steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The next epoch to run (from 0); equal to the epochs completed when `batch` is 0.
    pub epoch: usize,
    /// The next batch of that epoch (0 at an epoch boundary, which is where scheduled
    /// checkpoints are taken; a checkpoint taken on cancel may be mid-epoch).
    pub batch: usize,
    /// Optimisation steps done so far (the global step of the metrics).
    pub step: i64,
    /// The model's weights now.
    pub weights: Weights,
    /// The optimizer's state (AdamW moments and step count).
    pub optimizer: AdamState,
    /// The best epoch so far, when at least one epoch has been evaluated.
    pub best: Option<BestState>,
    /// Epochs since the primary validation metric last improved.
    pub epochs_without_improvement: usize,
    /// The summed training loss (times batch rows) of the batches done in the current epoch.
    pub partial_loss_sum: f64,
    /// The rows trained on in the current epoch so far.
    pub partial_samples: usize,
    /// What the run depends on (data, model and optimisation settings); a resume must match it.
    pub fingerprint: serde_json::Value,
}

/// The JSON part of a checkpoint.
#[derive(Serialize, Deserialize)]
struct Meta {
    format: u32,
    epoch: usize,
    batch: usize,
    step: i64,
    adam_t: u64,
    best: Option<BestMeta>,
    epochs_without_improvement: usize,
    partial_loss_sum: f64,
    partial_samples: usize,
    fingerprint: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct BestMeta {
    epoch: usize,
    metric: f64,
    val_loss: f64,
}

impl Checkpoint {
    /// Encodes the checkpoint as one safetensors file with JSON metadata.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let meta = Meta {
            format: FORMAT,
            epoch: self.epoch,
            batch: self.batch,
            step: self.step,
            adam_t: self.optimizer.t,
            best: self.best.as_ref().map(|b| BestMeta {
                epoch: b.epoch,
                metric: b.metric,
                val_loss: b.val_loss,
            }),
            epochs_without_improvement: self.epochs_without_improvement,
            partial_loss_sum: self.partial_loss_sum,
            partial_samples: self.partial_samples,
            fingerprint: self.fingerprint.clone(),
        };
        let json =
            serde_json::to_string(&meta).map_err(|e| TrainError::Checkpoint(e.to_string()))?;
        let mut tensors: BTreeMap<String, &HostTensor> = BTreeMap::new();
        let groups = [
            ("model", Some(&self.weights)),
            ("adam_m", Some(&self.optimizer.m)),
            ("adam_v", Some(&self.optimizer.v)),
            ("best", self.best.as_ref().map(|b| &b.weights)),
        ];
        for (prefix, weights) in groups {
            for (name, t) in weights.into_iter().flatten() {
                tensors.insert(format!("{prefix}/{name}"), t);
            }
        }
        encode_safetensors(
            &tensors,
            Some(HashMap::from([(METADATA_KEY.to_owned(), json)])),
        )
        .map_err(|e| TrainError::Checkpoint(e.to_string()))
    }

    /// Decodes a checkpoint written by [`Checkpoint::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint> {
        let (tensors, metadata) = decode_safetensors(bytes)
            .map_err(|e| TrainError::Checkpoint(format!("not a checkpoint file: {e}")))?;
        let json = metadata.get(METADATA_KEY).ok_or_else(|| {
            TrainError::Checkpoint(format!(
                "no {METADATA_KEY} metadata: not a Cerulean checkpoint"
            ))
        })?;
        let meta: Meta = serde_json::from_str(json)
            .map_err(|e| TrainError::Checkpoint(format!("invalid metadata: {e}")))?;
        if meta.format != FORMAT {
            return Err(TrainError::Checkpoint(format!(
                "format {} is not supported (this trainer reads format {FORMAT})",
                meta.format
            )));
        }
        let mut groups: BTreeMap<&str, Weights> = BTreeMap::new();
        for (name, tensor) in tensors {
            let Some((prefix, var)) = name.split_once('/') else {
                return Err(TrainError::Checkpoint(format!("unexpected tensor {name}")));
            };
            let prefix = match prefix {
                "model" => "model",
                "adam_m" => "adam_m",
                "adam_v" => "adam_v",
                "best" => "best",
                _ => return Err(TrainError::Checkpoint(format!("unexpected tensor {name}"))),
            };
            groups
                .entry(prefix)
                .or_default()
                .insert(var.to_owned(), tensor);
        }
        let mut take = |prefix: &str| groups.remove(prefix).unwrap_or_default();
        let weights = take("model");
        let optimizer = AdamState {
            t: meta.adam_t,
            m: take("adam_m"),
            v: take("adam_v"),
        };
        let best_weights = take("best");
        let best = meta.best.map(|b| BestState {
            epoch: b.epoch,
            metric: b.metric,
            val_loss: b.val_loss,
            weights: best_weights,
        });
        Ok(Checkpoint {
            epoch: meta.epoch,
            batch: meta.batch,
            step: meta.step,
            weights,
            optimizer,
            best,
            epochs_without_improvement: meta.epochs_without_improvement,
            partial_loss_sum: meta.partial_loss_sum,
            partial_samples: meta.partial_samples,
            fingerprint: meta.fingerprint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(values: &[f32], shape: &[usize]) -> HostTensor {
        HostTensor {
            shape: shape.to_vec(),
            data: values.to_vec(),
        }
    }

    #[test]
    fn round_trips_exactly() {
        let weights = Weights::from([
            (
                "layers.0.weight".into(),
                tensor(&[0.1, -0.2, 1e-30, 3.5], &[2, 2]),
            ),
            (
                "layers.0.bias".into(),
                tensor(&[f32::MIN_POSITIVE, -0.0], &[2]),
            ),
        ]);
        let checkpoint = Checkpoint {
            epoch: 3,
            batch: 0,
            step: 69,
            weights: weights.clone(),
            optimizer: AdamState {
                t: 69,
                m: weights.clone(),
                v: weights.clone(),
            },
            best: Some(BestState {
                epoch: 1,
                metric: 0.93,
                val_loss: 0.25,
                weights: weights.clone(),
            }),
            epochs_without_improvement: 1,
            partial_loss_sum: 0.0,
            partial_samples: 0,
            fingerprint: serde_json::json!({"train": {"seed": 1}}),
        };
        let bytes = checkpoint.to_bytes().unwrap();
        let back = Checkpoint::from_bytes(&bytes).unwrap();
        assert_eq!(back, checkpoint);
        let weights_bits: Vec<u32> = back.weights["layers.0.weight"]
            .data
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(weights_bits[2], 1e-30f32.to_bits());
    }

    #[test]
    fn garbage_is_an_error() {
        let e = Checkpoint::from_bytes(b"not a checkpoint").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("checkpoint: not a checkpoint file"),
            "{e}"
        );
    }

    #[test]
    fn host_tensors_round_trip_through_candle() {
        let t = tensor(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        let back = HostTensor::from_tensor(&t.to_tensor(&Device::Cpu).unwrap()).unwrap();
        assert_eq!(back, t);
    }
}
