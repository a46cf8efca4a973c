//! The `image-classifier` family, `architecture = "cnn"`: a small convolutional network trained
//! from scratch on an image folder.
//!
//! - Data: the split is `cerulean_lake::split(images, dataset.validation_split, train.seed)`;
//!   images are decoded, converted to `model.channels` (1 gray, 3 RGB; default 3) and resized to
//!   `model.image_size` (default 32) with the serving crate's
//!   [`image_to_pixels`](cerulean_serving::backend::candle::pixels::image_to_pixels); pixels
//!   stay in `[0, 1]`. Classes are the sub-folder names, sorted.
//! - Normalization: the per-channel mean and (population) standard deviation of the training
//!   images, applied inside the network, recorded in `model.json`, and applied again by the
//!   serving backend, so clients send plain pixels.
//! - Network: the serving crate's [`CnnNetwork`] itself (3x3 convolutions of `model.filters`
//!   widths, default `[32, 64]`, each with ReLU and 2x2 max pooling; linear layers of
//!   `model.hidden` widths, default `[128]`, with ReLU; a linear layer to the classes), so the
//!   trained and the served forward passes are one code path. Weights start uniform in
//!   `±1/sqrt(fan_in)` (PyTorch's default for `Conv2d` and `Linear`), drawn from the seed on the
//!   host.
//! - Export: `model.safetensors` plus a `model.json` of family `cnn`, input `image` FP32
//!   `[-1, C, H, W]` (pixels in `[0, 1]`; or, with `model.image_input = "encoded"`, BYTES
//!   `[-1, 1]` PNG or JPEG files the server decodes), outputs `probabilities`, `class_index` and
//!   `label`.
//!
//! `architecture = "efficientnet-lite0"` is transfer learning instead ([`super::transfer`]).

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use cerulean_serving::backend::candle::cnn::{CnnArchitecture, CnnNetwork};

use crate::checkpoint::{HostTensor, Weights, encode_safetensors};
use crate::data::LoadedDataset;
use crate::error::{Result, TrainError};
use crate::export::{Architecture, ModelSpec, OutputActivation, Preprocessing, TensorSpecJson};
use crate::families::{Family, Network, Prepared, Target};
use crate::images::decode_images;
use crate::rng::SplitMix64;
use crate::spec::{Hyperparameters, ImageArchitecture, ImageInput, ModelFamily, ModelSection};

/// The default image side.
pub const DEFAULT_IMAGE_SIZE: usize = 32;
/// The default number of image channels.
pub const DEFAULT_CHANNELS: usize = 3;
/// The default convolution widths.
pub const DEFAULT_FILTERS: [usize; 2] = [32, 64];
/// The most convolution blocks.
pub const MAX_CONV_BLOCKS: usize = 8;
/// The widest convolution.
pub const MAX_FILTERS: usize = 1024;
/// Validation images evaluated per forward pass (bounds the activations' memory).
const EVAL_CHUNK_IMAGES: usize = 256;
/// The generator stream of weight initialisation.
const INIT_STREAM: u64 = 0x1417_0000_0000_0c22;

/// Checks the `image-classifier` settings of `[model]` (called by `JobSpec::validate`): keys of
/// other families are refused by the spec itself; here `channels`, `filters` and `architecture`
/// are checked, and that the poolings leave something of `image_size` (`efficientnet-lite0`
/// settings are checked by [`transfer::validate_model`](super::transfer::validate_model)).
pub(crate) fn validate_model(m: &ModelSection) -> Result<()> {
    let image = m.family == ModelFamily::ImageClassifier;
    for (key, set) in [
        ("architecture", m.architecture.is_some()),
        ("channels", m.channels.is_some()),
        ("filters", m.filters.is_some()),
        ("image_input", m.image_input.is_some()),
    ] {
        if set && !image {
            return Err(TrainError::spec(
                format!("model.{key}"),
                format!("not used by family {}", m.family.as_str()),
            ));
        }
    }
    if !image {
        return Ok(());
    }
    if m.architecture.unwrap_or_default() == ImageArchitecture::EfficientnetLite0 {
        return super::transfer::validate_model(m);
    }
    if let Some(c) = m.channels
        && !matches!(c, 1 | 3)
    {
        return Err(TrainError::spec(
            "model.channels",
            format!("must be 1 (grayscale) or 3 (RGB), got {c}"),
        ));
    }
    let filters = m
        .filters
        .clone()
        .unwrap_or_else(|| DEFAULT_FILTERS.to_vec());
    if filters.is_empty() || filters.len() > MAX_CONV_BLOCKS {
        return Err(TrainError::spec(
            "model.filters",
            format!("must list 1 to {MAX_CONV_BLOCKS} convolution widths"),
        ));
    }
    if let Some(w) = filters.iter().find(|&&w| w == 0 || w > MAX_FILTERS) {
        return Err(TrainError::spec(
            "model.filters",
            format!("widths must be between 1 and {MAX_FILTERS}, got {w}"),
        ));
    }
    let sizes = m
        .image_size
        .as_ref()
        .map_or_else(|| vec![DEFAULT_IMAGE_SIZE], |p| p.values().to_vec());
    let need = 1usize << filters.len();
    if let Some(s) = sizes.iter().find(|&&s| s < need) {
        return Err(TrainError::spec(
            "model.image_size",
            format!(
                "{} convolution blocks halve the image {} times: image_size must be at least \
                 {need}, got {s}",
                filters.len(),
                filters.len()
            ),
        ));
    }
    Ok(())
}

/// The family training `model` with the trial's hyperparameters (`hidden` linear widths).
pub fn family(model: &ModelSection, hyper: &Hyperparameters) -> Result<CnnFamily> {
    let image_size =
        super::single_setting("model.image_size", &model.image_size)?.unwrap_or(DEFAULT_IMAGE_SIZE);
    Ok(CnnFamily {
        image_size,
        channels: model.channels.unwrap_or(DEFAULT_CHANNELS),
        filters: model
            .filters
            .clone()
            .unwrap_or_else(|| DEFAULT_FILTERS.to_vec()),
        hidden: hyper.hidden.clone(),
        input: model.image_input.unwrap_or_default(),
        prepared: None,
    })
}

/// The `image-classifier` family (see the module documentation).
pub struct CnnFamily {
    image_size: usize,
    channels: usize,
    filters: Vec<usize>,
    hidden: Vec<usize>,
    input: ImageInput,
    /// Set by `prepare`: the architecture (with normalization) and the labels.
    prepared: Option<(CnnArchitecture, Vec<String>)>,
}

/// The training network: the serving crate's, behind the loop's trait.
struct Cnn(CnnNetwork);

impl Network for Cnn {
    fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        self.0.forward(input)
    }

    fn eval_chunk_rows(&self) -> Option<usize> {
        Some(EVAL_CHUNK_IMAGES)
    }
}

/// Per-channel mean and population standard deviation (1 when constant) of `pixels`, which
/// holds `[n, channels, plane]` values.
fn channel_stats(pixels: &[f32], channels: usize, plane: usize) -> (Vec<f32>, Vec<f32>) {
    let mut sum = vec![0.0f64; channels];
    let mut sq = vec![0.0f64; channels];
    let mut count = 0usize;
    for image in pixels.chunks_exact(channels * plane) {
        for (c, values) in image.chunks_exact(plane).enumerate() {
            for &v in values {
                sum[c] += f64::from(v);
                sq[c] += f64::from(v) * f64::from(v);
            }
        }
        count += plane;
    }
    let n = count.max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| {
            let s = (q / n - m * m).max(0.0).sqrt();
            if s > 1e-6 { s as f32 } else { 1.0 }
        })
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), std)
}

impl CnnFamily {
    fn prepared(&self) -> Result<&(CnnArchitecture, Vec<String>)> {
        self.prepared
            .as_ref()
            .ok_or_else(|| TrainError::Internal("the family was not prepared".into()))
    }
}

impl Family for CnnFamily {
    fn name(&self) -> &'static str {
        "image-classifier (cnn)"
    }

    fn prepare(
        &mut self,
        data: &LoadedDataset,
        validation_split: f64,
        seed: u64,
        device: &Device,
    ) -> Result<Prepared> {
        let images = data.images.as_ref().ok_or_else(|| {
            TrainError::data("family image-classifier needs an image-folder dataset")
        })?;
        let (train_idx, val_idx) = cerulean_lake::split(data.rows, validation_split, seed)?;
        if train_idx.is_empty() || val_idx.is_empty() {
            return Err(TrainError::data(format!(
                "{} images with validation_split {validation_split} leave {} training and {} \
                 validation images; each needs at least one",
                data.rows,
                train_idx.len(),
                val_idx.len()
            )));
        }
        let (labels, indices) = data.label.values.classes()?;
        if labels.len() < 2 {
            return Err(TrainError::data(format!(
                "the image folder has a single class {:?}; classification needs at least two \
                 class sub-folders",
                labels.first().map(String::as_str).unwrap_or_default()
            )));
        }
        let (s, c) = (self.image_size, self.channels);
        let train_pixels = decode_images(images, &train_idx, s, c)?;
        let val_pixels = decode_images(images, &val_idx, s, c)?;
        let (mean, std) = channel_stats(&train_pixels, c, s * s);
        let pick = |rows: &[usize]| rows.iter().map(|&r| indices[r]).collect::<Vec<u32>>();
        let (train_truth, val_truth) = (pick(&train_idx), pick(&val_idx));
        let arch = CnnArchitecture {
            image_size: s,
            channels: c,
            filters: self.filters.clone(),
            hidden: self.hidden.clone(),
            output_dim: labels.len(),
            mean,
            std,
            output_activation: OutputActivation::Softmax,
            max_pixels: cerulean_serving::backend::candle::pixels::DEFAULT_MAX_PIXELS,
        };
        arch.check()
            .map_err(|e| TrainError::spec("model", format!("invalid image network: {e}")))?;
        let description = format!(
            "{} training images x {c}x{s}x{s}, {} validation images, {} classes",
            train_idx.len(),
            val_idx.len(),
            labels.len()
        );
        let prepared = Prepared {
            train_x: Tensor::from_vec(train_pixels, (train_idx.len(), c, s, s), device)?,
            train_y: Tensor::from_vec(train_truth, train_idx.len(), device)?,
            val_x: Tensor::from_vec(val_pixels, (val_idx.len(), c, s, s), device)?,
            val_y: Tensor::from_slice(&val_truth, val_idx.len(), device)?,
            target: Target::Classes {
                labels: labels.clone(),
                val_truth,
            },
            train_rows: train_idx.len(),
            val_rows: val_idx.len(),
            description,
        };
        self.prepared = Some((arch, labels));
        Ok(prepared)
    }

    fn build(&self, varmap: &VarMap, device: &Device, seed: u64) -> Result<Box<dyn Network>> {
        let (arch, _) = self.prepared()?;
        let mut rng = SplitMix64::new(seed, INIT_STREAM);
        {
            let mut vars = varmap
                .data()
                .lock()
                .map_err(|_| TrainError::Internal("the variable map's lock is poisoned".into()))?;
            for (name, shape) in parameter_shapes(arch) {
                let fan_in: usize = if shape.len() > 1 {
                    shape[1..].iter().product()
                } else {
                    // A bias: its layer's weight (inserted just before) gives the fan-in.
                    let weight = name.replace(".bias", ".weight");
                    vars.get(&weight)
                        .map_or(1, |w| w.dims()[1..].iter().product())
                };
                let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
                let count: usize = shape.iter().product();
                let values: Vec<f32> = (0..count).map(|_| rng.symmetric(bound)).collect();
                vars.insert(
                    name,
                    Var::from_tensor(&Tensor::from_vec(values, shape, device)?)?,
                );
            }
        }
        let vb = VarBuilder::from_varmap(varmap, DType::F32, device);
        Ok(Box::new(Cnn(CnnNetwork::new(arch, vb)?)))
    }

    fn export(&self, weights: &Weights) -> Result<Vec<(String, Vec<u8>)>> {
        let (arch, labels) = self.prepared()?;
        let shapes = parameter_shapes(arch);
        if weights.len() != shapes.len() {
            return Err(TrainError::Export(format!(
                "{} tensors given, the network has {}",
                weights.len(),
                shapes.len()
            )));
        }
        let mut refs: std::collections::BTreeMap<String, &HostTensor> = Default::default();
        for (name, shape) in shapes {
            let t = weights
                .get(&name)
                .ok_or_else(|| TrainError::Export(format!("no tensor {name}")))?;
            if t.shape != shape {
                return Err(TrainError::Export(format!(
                    "{name} has shape {:?}, expected {shape:?}",
                    t.shape
                )));
            }
            refs.insert(name, t);
        }
        let weights_bytes =
            encode_safetensors(&refs, None).map_err(|e| TrainError::Export(e.to_string()))?;
        let (c, s, k) = (
            arch.channels as i64,
            arch.image_size as i64,
            arch.output_dim as i64,
        );
        let spec = ModelSpec {
            architecture: Architecture::Cnn(arch.clone()),
            inputs: vec![match self.input {
                ImageInput::Pixels => tensor_spec("image", "FP32", vec![-1, c, s, s]),
                ImageInput::Encoded => tensor_spec("image", "BYTES", vec![-1, 1]),
            }],
            outputs: vec![
                tensor_spec("probabilities", "FP32", vec![-1, k]),
                tensor_spec("class_index", "INT64", vec![-1, 1]),
                tensor_spec("label", "BYTES", vec![-1, 1]),
            ],
            preprocessing: Preprocessing::None,
            labels: labels.clone(),
        };
        let spec_bytes =
            serde_json::to_vec_pretty(&spec).map_err(|e| TrainError::Export(e.to_string()))?;
        Ok(vec![
            (crate::export::WEIGHTS_FILE.to_owned(), weights_bytes),
            (crate::export::SPEC_FILE.to_owned(), spec_bytes),
        ])
    }
}

fn tensor_spec(name: &str, datatype: &str, shape: Vec<i64>) -> TensorSpecJson {
    TensorSpecJson {
        name: name.to_owned(),
        datatype: datatype.to_owned(),
        shape,
    }
}

/// Every parameter of `arch` with its shape, weights before biases, in layer order.
fn parameter_shapes(arch: &CnnArchitecture) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let mut in_channels = arch.channels;
    for (i, &f) in arch.filters.iter().enumerate() {
        out.push((format!("convs.{i}.weight"), vec![f, in_channels, 3, 3]));
        out.push((format!("convs.{i}.bias"), vec![f]));
        in_channels = f;
    }
    let widths: Vec<usize> = std::iter::once(arch.flat_features())
        .chain(arch.hidden.iter().copied())
        .chain(std::iter::once(arch.output_dim))
        .collect();
    for (i, w) in widths.windows(2).enumerate() {
        out.push((format!("layers.{i}.weight"), vec![w[1], w[0]]));
        out.push((format!("layers.{i}.bias"), vec![w[1]]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_statistics() {
        // Two 1x2 images, two channels: channel 0 is [0, 1, 0, 1], channel 1 constant 0.5.
        let pixels = [0.0, 1.0, 0.5, 0.5, 0.0, 1.0, 0.5, 0.5];
        let (mean, std) = channel_stats(&pixels, 2, 2);
        assert_eq!(mean, vec![0.5, 0.5]);
        assert_eq!(std, vec![0.5, 1.0]);
    }

    #[test]
    fn parameters_follow_the_architecture() {
        let arch = CnnArchitecture {
            image_size: 16,
            channels: 1,
            filters: vec![4, 8],
            hidden: vec![10],
            output_dim: 3,
            mean: vec![0.0],
            std: vec![1.0],
            output_activation: OutputActivation::Softmax,
            max_pixels: 100,
        };
        let shapes = parameter_shapes(&arch);
        assert_eq!(shapes[0], ("convs.0.weight".to_owned(), vec![4, 1, 3, 3]));
        assert_eq!(shapes[2], ("convs.1.weight".to_owned(), vec![8, 4, 3, 3]));
        assert_eq!(
            shapes[4],
            ("layers.0.weight".to_owned(), vec![10, 8 * 4 * 4])
        );
        assert_eq!(shapes[7], ("layers.1.bias".to_owned(), vec![3]));
        let family = CnnFamily {
            image_size: 16,
            channels: 1,
            filters: vec![4, 8],
            hidden: vec![10],
            input: ImageInput::Pixels,
            prepared: Some((arch, vec!["a".into(), "b".into(), "c".into()])),
        };
        let varmap = VarMap::new();
        let net = family.build(&varmap, &Device::Cpu, 3).unwrap();
        let x = Tensor::zeros((2, 1, 16, 16), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(net.forward(&x).unwrap().dims(), &[2, 3]);
        assert_eq!(varmap.data().lock().unwrap().len(), 8);
    }
}
