//! Image classifiers: a small convolutional network ([`CnnArchitecture`], family `cnn` in
//! `model.json`), rebuilt by [`CnnNetwork`] (the trainer trains this same type, so training and
//! serving run one forward pass).
//!
//! The network: for each width in `filters`, a 3x3 convolution (padding 1) named `convs.{i}`,
//! ReLU and 2x2 max pooling; then the flattened features go through linear layers named
//! `layers.{i}` of widths `hidden` (ReLU after each) and a last linear layer to one logit per
//! class. The input is normalized inside the network with the per-channel `mean` and `std`
//! recorded at training time, so clients send plain pixels in `[0, 1]`.
//!
//! Inputs (one, named in `model.json`):
//! - FP32 `[-1, C, H, W]`: pixels in `[0, 1]`, channels first (RGB or gray);
//! - BYTES `[-1, 1]`: encoded PNG or JPEG images, decoded, converted and resized on the server
//!   with [`image_to_pixels`] (refused above [`CnnArchitecture::max_pixels`] with a 400 naming
//!   the tensor).
//!
//! Outputs: probabilities FP32 `[-1, classes]` (softmax), class index INT64 `[-1, 1]`, label
//! BYTES `[-1, 1]`, as for the MLP classifiers.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::image_input::ImageInput;
use super::{ModelSpec, OutputActivation};
use crate::backend::{BackendInstance, BatchInput};
use crate::datatype::DataType;
use crate::error::{Result, ServingError};
use crate::signature::Signature;
use crate::tensor::Tensor as ServedTensor;

/// The largest `image_size` a CNN may declare.
pub const MAX_IMAGE_SIZE: usize = 1024;

/// A small convolutional image classifier, as written in `model.json` (`"family": "cnn"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnnArchitecture {
    /// Input images are `image_size` x `image_size` pixels.
    pub image_size: usize,
    /// Input channels: 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    /// Output channels of each 3x3 convolution (each followed by ReLU and 2x2 max pooling).
    pub filters: Vec<usize>,
    /// Widths of the hidden linear layers after the convolutions (ReLU after each).
    pub hidden: Vec<usize>,
    /// Classes out.
    pub output_dim: usize,
    /// Per-channel mean of the training pixels (in `[0, 1]` units), subtracted first.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation of the training pixels; the centred pixels are divided by it.
    pub std: Vec<f32>,
    /// What the last layer's output goes through (softmax for served classifiers).
    #[serde(default)]
    pub output_activation: OutputActivation,
    /// The most pixels (width x height) an encoded input image may have before decoding.
    #[serde(default = "super::pixels::default_max_pixels")]
    pub max_pixels: u64,
}

impl CnnArchitecture {
    /// The side of the feature maps after the last pooling.
    pub fn final_side(&self) -> usize {
        self.filters
            .iter()
            .fold(self.image_size, |side, _| side / 2)
    }

    /// Features into the first linear layer.
    pub fn flat_features(&self) -> usize {
        let side = self.final_side();
        self.filters.last().copied().unwrap_or(self.channels) * side * side
    }

    /// Values in one input image (`channels * image_size^2`).
    pub fn pixels_per_image(&self) -> usize {
        self.channels * self.image_size * self.image_size
    }

    /// The network's input: `image_size` squares of `channels`.
    pub(crate) fn image_input(&self) -> ImageInput {
        ImageInput {
            size: self.image_size,
            channels: self.channels,
            max_pixels: self.max_pixels,
        }
    }

    /// Checks the architecture's own fields.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !matches!(self.channels, 1 | 3) {
            return Err(format!("channels must be 1 or 3, got {}", self.channels));
        }
        if !(1..=MAX_IMAGE_SIZE).contains(&self.image_size) {
            return Err(format!(
                "image_size must be between 1 and {MAX_IMAGE_SIZE}, got {}",
                self.image_size
            ));
        }
        if self.final_side() == 0 {
            return Err(format!(
                "{} poolings leave nothing of {}x{} images",
                self.filters.len(),
                self.image_size,
                self.image_size
            ));
        }
        if self.filters.contains(&0) || self.hidden.contains(&0) || self.output_dim == 0 {
            return Err("layer widths must be at least 1".to_string());
        }
        if self.mean.len() != self.channels || self.std.len() != self.channels {
            return Err(format!(
                "normalization needs {} means and standard deviations",
                self.channels
            ));
        }
        Ok(())
    }
}

/// The rebuilt network (see the module documentation); training and serving share it.
#[derive(Debug, Clone)]
pub struct CnnNetwork {
    convs: Vec<Conv2d>,
    layers: Vec<Linear>,
    mean: Tensor,
    inv_std: Tensor,
}

impl CnnNetwork {
    /// Builds the network of `arch` from `vb` (`convs.{i}.weight` `[out, in, 3, 3]`,
    /// `convs.{i}.bias` `[out]`, `layers.{i}.weight` `[out, in]`, `layers.{i}.bias` `[out]`).
    pub fn new(arch: &CnnArchitecture, vb: VarBuilder<'_>) -> candle_core::Result<CnnNetwork> {
        let config = Conv2dConfig {
            padding: 1,
            ..Conv2dConfig::default()
        };
        let mut convs = Vec::with_capacity(arch.filters.len());
        let mut in_channels = arch.channels;
        for (i, &out) in arch.filters.iter().enumerate() {
            convs.push(candle_nn::conv2d(
                in_channels,
                out,
                3,
                config,
                vb.pp("convs").pp(i),
            )?);
            in_channels = out;
        }
        let widths: Vec<usize> = std::iter::once(arch.flat_features())
            .chain(arch.hidden.iter().copied())
            .chain(std::iter::once(arch.output_dim))
            .collect();
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| candle_nn::linear(w[0], w[1], vb.pp("layers").pp(i)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let device = vb.device();
        let c = arch.channels;
        let inv: Vec<f32> = arch
            .std
            .iter()
            .map(|&s| if s > 0.0 { 1.0 / s } else { 1.0 })
            .collect();
        Ok(CnnNetwork {
            convs,
            layers,
            mean: Tensor::from_slice(&arch.mean, (1, c, 1, 1), device)?,
            inv_std: Tensor::from_vec(inv, (1, c, 1, 1), device)?,
        })
    }

    /// Logits `[n, classes]` of pixels `[n, C, H, W]` in `[0, 1]`.
    pub fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = pixels
            .broadcast_sub(&self.mean)?
            .broadcast_mul(&self.inv_std)?;
        for conv in &self.convs {
            x = conv.forward(&x)?.relu()?.max_pool2d(2)?;
        }
        let mut x = x.flatten_from(1)?;
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x)?;
            if i < last {
                x = x.relu()?;
            }
        }
        Ok(x)
    }
}

/// Checks a CNN `model.json`: the architecture, its one input and the classifier outputs.
pub(super) fn check(spec: &ModelSpec, arch: &CnnArchitecture) -> Result<()> {
    let bad = |msg: String| Err(ServingError::Unavailable(format!("model.json: {msg}")));
    if let Err(e) = arch.check() {
        return bad(e);
    }
    let signature = spec.signature()?;
    let [input] = signature.inputs.as_slice() else {
        return bad(format!(
            "a CNN takes exactly one input, {} given",
            signature.inputs.len()
        ));
    };
    if let Err(e) = arch.image_input().check(input) {
        return bad(e);
    }
    if signature.outputs.is_empty() {
        return bad("no outputs declared".to_string());
    }
    let classes = arch.output_dim;
    for output in &signature.outputs {
        let ok = match output.datatype {
            DataType::Fp32 => output.dims == [-1, classes as i64],
            DataType::Int64 | DataType::Bytes => output.dims == [-1, 1],
            _ => false,
        };
        if !ok {
            return bad(format!(
                "output '{}' ({} {:?}) must be FP32 [-1, {classes}], INT64 [-1, 1] or BYTES [-1, 1]",
                output.name, output.datatype, output.dims
            ));
        }
        if output.datatype == DataType::Bytes && spec.labels.len() != classes {
            return bad(format!(
                "output '{}' returns labels but {} labels are given for {classes} classes",
                output.name,
                spec.labels.len()
            ));
        }
    }
    Ok(())
}

/// Builds the network of `arch` from the weights file at `weights`.
pub(super) fn load_network(
    weights: &Path,
    arch: &CnnArchitecture,
    device: &Device,
) -> Result<CnnNetwork> {
    let data = std::fs::read(weights).map_err(|e| {
        ServingError::Unavailable(format!("cannot read {}: {e}", weights.display()))
    })?;
    let vb = VarBuilder::from_buffered_safetensors(data, DType::F32, device)
        .map_err(|e| ServingError::Unavailable(format!("invalid {}: {e}", weights.display())))?;
    CnnNetwork::new(arch, vb).map_err(|e| {
        ServingError::Unavailable(format!(
            "{} does not match model.json: {e}",
            weights.display()
        ))
    })
}

/// A new instance serving the CNN `arch` with the weights at `weights`.
pub(super) fn instance(
    weights: &Path,
    spec: &ModelSpec,
    arch: &CnnArchitecture,
    signature: &Signature,
    device: &Device,
) -> Result<Box<dyn BackendInstance>> {
    Ok(Box::new(CnnInstance {
        network: load_network(weights, arch, device)?,
        device: device.clone(),
        arch: arch.clone(),
        labels: spec.labels.clone(),
        signature: signature.clone(),
    }))
}

/// One instance: the network and what its outputs need.
struct CnnInstance {
    network: CnnNetwork,
    device: Device,
    arch: CnnArchitecture,
    labels: Vec<String>,
    signature: Signature,
}

impl BackendInstance for CnnInstance {
    fn execute(&mut self, inputs: &[BatchInput<'_>]) -> Result<Vec<ServedTensor>> {
        let input = inputs
            .first()
            .ok_or_else(|| ServingError::Internal("no input given".to_string()))?;
        let x = self.arch.image_input().pixels(input, &self.device)?;
        let rows = x.dims()[0];
        let compute = |e: candle_core::Error| ServingError::Internal(format!("candle failed: {e}"));
        let logits = self.network.forward(&x).map_err(compute)?;
        let scores = match self.arch.output_activation {
            OutputActivation::None => Ok(logits),
            OutputActivation::Softmax => candle_nn::ops::softmax_last_dim(&logits),
            OutputActivation::Sigmoid => candle_nn::ops::sigmoid(&logits),
        }
        .map_err(compute)?;
        let scores: Vec<f32> = scores
            .flatten_all()
            .and_then(|y| y.to_vec1())
            .map_err(compute)?;
        super::outputs_of_scores(
            &self.signature,
            &scores,
            rows,
            self.arch.output_dim,
            &self.labels,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::candle::{Architecture, Preprocessing, TensorSpecJson};

    fn arch() -> CnnArchitecture {
        CnnArchitecture {
            image_size: 4,
            channels: 1,
            filters: vec![2],
            hidden: vec![],
            output_dim: 2,
            mean: vec![0.5],
            std: vec![0.25],
            output_activation: OutputActivation::Softmax,
            max_pixels: 100,
        }
    }

    fn spec(input: (&str, Vec<i64>)) -> ModelSpec {
        let t = |name: &str, datatype: &str, shape: Vec<i64>| TensorSpecJson {
            name: name.into(),
            datatype: datatype.into(),
            shape,
        };
        ModelSpec {
            architecture: Architecture::Cnn(arch()),
            inputs: vec![t("image", input.0, input.1)],
            outputs: vec![
                t("probabilities", "FP32", vec![-1, 2]),
                t("label", "BYTES", vec![-1, 1]),
            ],
            preprocessing: Preprocessing::None,
            labels: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn signatures_are_checked() {
        let a = arch();
        assert!(check(&spec(("FP32", vec![-1, 1, 4, 4])), &a).is_ok());
        assert!(check(&spec(("BYTES", vec![-1, 1])), &a).is_ok());
        let e = check(&spec(("FP32", vec![-1, 3, 4, 4])), &a).unwrap_err();
        assert!(e.to_string().contains("must be FP32 [-1, 1, 4, 4]"), "{e}");
        let mut bad = arch();
        bad.filters = vec![2, 2, 2];
        let e = check(&spec(("FP32", vec![-1, 1, 4, 4])), &bad).unwrap_err();
        assert!(e.to_string().contains("3 poolings leave nothing"), "{e}");
        let mut wrong_labels = spec(("BYTES", vec![-1, 1]));
        wrong_labels.labels.pop();
        assert!(check(&wrong_labels, &a).is_err());
    }
}
