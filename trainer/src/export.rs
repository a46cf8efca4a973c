//! Export: trained weights as the two files the serving crate's candle backend serves,
//! `model.safetensors` (F32 `layers.{i}.weight` `[out, in]` and `layers.{i}.bias` `[out]`) and
//! `model.json` (a [`ModelSpec`]: architecture, signature, preprocessing, labels).
//!
//! The `model.json` types are the serving crate's own ([`ModelSpec`] and its parts), so what the
//! trainer writes is by construction what the server reads; a test also loads an exported model
//! with the serving backend and compares predictions.
//!
//! Signatures:
//! - classification: input `features` FP32 `[-1, d]`; outputs `probabilities` FP32 `[-1, C]`
//!   (softmax), `class_index` INT64 `[-1, 1]` and `label` BYTES `[-1, 1]`; `labels` in class
//!   order.
//! - regression: input `features` FP32 `[-1, d]`; output `prediction` FP32 `[-1, 1]` in the
//!   label's units (the training-time target scaling is folded into the last layer).

use std::collections::BTreeMap;

pub use cerulean_serving::backend::candle::{
    Architecture, Backbone, ModelSpec, OutputActivation, Preprocessing, TensorSpecJson,
};

use crate::checkpoint::{HostTensor, Weights, encode_safetensors};
use crate::error::{Result, TrainError};
use crate::spec::Activation;

/// The weights file's name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The spec file's name.
pub const SPEC_FILE: &str = "model.json";

/// What the model predicts.
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    /// One of these classes (output order).
    Classes(Vec<String>),
    /// A value trained as `(y - mean) / std`.
    Values {
        /// The training targets' mean.
        mean: f64,
        /// The training targets' standard deviation.
        std: f64,
    },
}

/// A trained tabular network to export.
#[derive(Debug, Clone)]
pub struct TabularModel<'a> {
    /// Features in.
    pub input_dim: usize,
    /// Hidden-layer widths.
    pub hidden: &'a [usize],
    /// Values out (classes, or 1).
    pub output_dim: usize,
    /// The activation between layers.
    pub activation: Activation,
    /// Feature means.
    pub mean: &'a [f32],
    /// Feature standard deviations.
    pub std: &'a [f32],
    /// What is predicted.
    pub head: &'a Head,
}

fn tensor_spec(name: &str, datatype: &str, shape: Vec<i64>) -> TensorSpecJson {
    TensorSpecJson {
        name: name.to_owned(),
        datatype: datatype.to_owned(),
        shape,
    }
}

/// `model.safetensors` and `model.json` for a tabular network with `weights` (as trained; a
/// regression head's target scaling is folded into the last layer here).
pub fn tabular_files(
    model: &TabularModel<'_>,
    weights: &Weights,
) -> Result<Vec<(String, Vec<u8>)>> {
    let (weights_bytes, spec) = tabular_parts(model, weights)?;
    files(weights_bytes, &spec)
}

/// The two files from the encoded weights and the spec.
pub fn files(weights_bytes: Vec<u8>, spec: &ModelSpec) -> Result<Vec<(String, Vec<u8>)>> {
    let spec_bytes =
        serde_json::to_vec_pretty(spec).map_err(|e| TrainError::Export(e.to_string()))?;
    Ok(vec![
        (WEIGHTS_FILE.to_owned(), weights_bytes),
        (SPEC_FILE.to_owned(), spec_bytes),
    ])
}

/// What [`tabular_files`] writes, before writing: the encoded `model.safetensors` and the
/// [`ModelSpec`] (for families that serve a tabular network behind other inputs).
pub fn tabular_parts(model: &TabularModel<'_>, weights: &Weights) -> Result<(Vec<u8>, ModelSpec)> {
    let (tensors, spec) = tabular_tensors(model, weights)?;
    Ok((encode_weights(&tensors)?, spec))
}

/// Encodes named weights as the bytes of `model.safetensors`.
pub fn encode_weights(weights: &Weights) -> Result<Vec<u8>> {
    let refs: BTreeMap<String, &HostTensor> = weights.iter().map(|(k, v)| (k.clone(), v)).collect();
    encode_safetensors(&refs, None).map_err(|e| TrainError::Export(e.to_string()))
}

/// [`tabular_parts`] before encoding: the network's tensors (the regression scaling folded into
/// the last layer) and the [`ModelSpec`].
pub fn tabular_tensors(
    model: &TabularModel<'_>,
    weights: &Weights,
) -> Result<(Weights, ModelSpec)> {
    let widths: Vec<usize> = std::iter::once(model.input_dim)
        .chain(model.hidden.iter().copied())
        .chain(std::iter::once(model.output_dim))
        .collect();
    let layers = widths.len() - 1;
    let mut out: BTreeMap<String, HostTensor> = BTreeMap::new();
    for (i, w) in widths.windows(2).enumerate() {
        for (name, shape) in [
            (format!("layers.{i}.weight"), vec![w[1], w[0]]),
            (format!("layers.{i}.bias"), vec![w[1]]),
        ] {
            let t = weights
                .get(&name)
                .ok_or_else(|| TrainError::Export(format!("no tensor {name}")))?;
            if t.shape != shape {
                return Err(TrainError::Export(format!(
                    "{name} has shape {:?}, expected {shape:?}",
                    t.shape
                )));
            }
            out.insert(name, t.clone());
        }
    }
    if weights.len() != out.len() {
        return Err(TrainError::Export(format!(
            "{} tensors given, the network has {}",
            weights.len(),
            out.len()
        )));
    }
    if let Head::Values { mean, std } = model.head {
        let last = layers - 1;
        if let Some(w) = out.get_mut(&format!("layers.{last}.weight")) {
            for v in &mut w.data {
                *v = (f64::from(*v) * std) as f32;
            }
        }
        if let Some(b) = out.get_mut(&format!("layers.{last}.bias")) {
            for v in &mut b.data {
                *v = (f64::from(*v) * std + mean) as f32;
            }
        }
    }
    let d = model.input_dim as i64;
    let c = model.output_dim as i64;
    let (outputs, output_activation, labels) = match model.head {
        Head::Classes(labels) => (
            vec![
                tensor_spec("probabilities", "FP32", vec![-1, c]),
                tensor_spec("class_index", "INT64", vec![-1, 1]),
                tensor_spec("label", "BYTES", vec![-1, 1]),
            ],
            OutputActivation::Softmax,
            labels.clone(),
        ),
        Head::Values { .. } => (
            vec![tensor_spec("prediction", "FP32", vec![-1, c])],
            OutputActivation::None,
            Vec::new(),
        ),
    };
    let spec = ModelSpec {
        architecture: Architecture::Mlp {
            input_dim: model.input_dim,
            hidden: model.hidden.to_vec(),
            output_dim: model.output_dim,
            activation: model.activation,
            output_activation,
        },
        inputs: vec![tensor_spec("features", "FP32", vec![-1, d])],
        outputs,
        preprocessing: Preprocessing::Standardize {
            mean: model.mean.to_vec(),
            std: model.std.to_vec(),
        },
        labels,
    };
    Ok((out, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_scaling_is_folded_into_the_last_layer() {
        let weights = Weights::from([
            (
                "layers.0.weight".to_owned(),
                HostTensor {
                    shape: vec![1, 2],
                    data: vec![1.0, -1.0],
                },
            ),
            (
                "layers.0.bias".to_owned(),
                HostTensor {
                    shape: vec![1],
                    data: vec![0.5],
                },
            ),
        ]);
        let head = Head::Values {
            mean: 10.0,
            std: 2.0,
        };
        let files = tabular_files(
            &TabularModel {
                input_dim: 2,
                hidden: &[],
                output_dim: 1,
                activation: Activation::Relu,
                mean: &[0.0, 0.0],
                std: &[1.0, 1.0],
                head: &head,
            },
            &weights,
        )
        .unwrap();
        let (w, _) = crate::checkpoint::decode_safetensors(&files[0].1).unwrap();
        assert_eq!(w["layers.0.weight"].data, vec![2.0, -2.0]);
        assert_eq!(w["layers.0.bias"].data, vec![11.0]);
        let spec: ModelSpec = serde_json::from_slice(&files[1].1).unwrap();
        assert_eq!(spec.outputs[0].name, "prediction");
        assert!(spec.labels.is_empty());
        let json: serde_json::Value = serde_json::from_slice(&files[1].1).unwrap();
        assert_eq!(json["architecture"]["family"], "mlp");
        assert_eq!(json["preprocessing"]["kind"], "standardize");
        assert_eq!(json["architecture"]["output_activation"], "none");
    }

    #[test]
    fn missing_or_misshapen_weights_are_errors() {
        let head = Head::Classes(vec!["a".into(), "b".into()]);
        let model = TabularModel {
            input_dim: 2,
            hidden: &[],
            output_dim: 2,
            activation: Activation::Relu,
            mean: &[0.0, 0.0],
            std: &[1.0, 1.0],
            head: &head,
        };
        let e = tabular_files(&model, &Weights::new())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "export: no tensor layers.0.weight");
    }
}
