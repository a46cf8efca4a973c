//! The candle backend: models Cerulean trains itself, stored as `model.safetensors` beside a
//! `model.json` [`ModelSpec`] (architecture, signature, preprocessing, labels).

pub mod bert;
pub mod cnn;
pub mod device;
pub mod efficientnet;
mod image_input;
pub mod pixels;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use candle_core::{DType, Device, Module};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use self::device::DeviceSpec;
use crate::backend::text_encoder::{TextEncoder, TextEncoderProvider, TextEncoders};
use crate::backend::{BackendInstance, BatchInput, ModelBackend};
use crate::datatype::DataType;
use crate::error::{Result, ServingError};
use crate::signature::{Signature, TensorSpec};
use crate::tensor::{BytesElements, Tensor, append_bytes_element};

/// The file name of the spec that sits beside `model.safetensors`.
pub const SPEC_FILE: &str = "model.json";

/// Everything needed to rebuild and serve a trained model, stored as `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The network.
    pub architecture: Architecture,
    /// The single input: FP32 features `[-1, input_dim]`.
    pub inputs: Vec<TensorSpecJson>,
    /// The outputs, in order. An FP32 output carries the network's output; an INT64 output the index of
    /// the highest score; a BYTES output the label of the highest score.
    pub outputs: Vec<TensorSpecJson>,
    /// How raw features are transformed before the network sees them.
    #[serde(default)]
    pub preprocessing: Preprocessing,
    /// Class labels, in output order (classification models only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// A tensor description as written in `model.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpecJson {
    /// The tensor name.
    pub name: String,
    /// The v2 datatype name, e.g. `FP32`.
    pub datatype: String,
    /// The full shape, `-1` for the batch dimension.
    pub shape: Vec<i64>,
}

/// The network families the candle backend can rebuild.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "kebab-case")]
pub enum Architecture {
    /// A multilayer perceptron: `Linear` layers named `layers.{i}` (weights `[out, in]`), an
    /// activation between them and an optional one after the last. No hidden layers gives linear or
    /// logistic regression.
    Mlp {
        /// Features in.
        input_dim: usize,
        /// Width of each hidden layer.
        hidden: Vec<usize>,
        /// Values out.
        output_dim: usize,
        /// The activation between layers.
        #[serde(default)]
        activation: Activation,
        /// What the last layer's output goes through.
        #[serde(default)]
        output_activation: OutputActivation,
    },
    /// A text classifier: the sentence encoder named `encoder` (supplied by the server, see
    /// [`text_encoder`](crate::backend::text_encoder); not stored with the model) embeds each
    /// text of the `BYTES [-1, 1]` input, then the `head` (an [`Architecture::Mlp`] whose
    /// `input_dim` is the encoder's width, weights `layers.{i}`) classifies the embedding.
    TextClassifier {
        /// The encoder's name, e.g. `all-MiniLM-L6-v2`.
        encoder: String,
        /// Tokens the encoder reads from each text.
        max_length: usize,
        /// The network over the embeddings.
        head: Box<Architecture>,
        /// Whether the encoder was fine-tuned: then the model carries it (see [`bert`]: weights
        /// under `encoder.`, a tokenizer and a BERT configuration beside) instead of naming one
        /// the server provides.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        fine_tuned: bool,
    },
    /// An image classifier: a small convolutional network (see [`cnn`]).
    Cnn(cnn::CnnArchitecture),
    /// An image classifier trained by transfer learning: the pretrained `backbone` (weights in
    /// `model.safetensors` under `backbone.`) turns each RGB image into features, the spec's
    /// preprocessing standardizes them, and the `head` (an [`Architecture::Mlp`] whose
    /// `input_dim` is the backbone's width, weights `layers.{i}`) classifies them. The input is
    /// FP32 pixels `[-1, 3, S, S]` in `[0, 1]` or BYTES `[-1, 1]` encoded images.
    ImageTransfer {
        /// The feature extractor.
        backbone: Backbone,
        /// Input images are `image_size` x `image_size` pixels.
        image_size: usize,
        /// The most pixels (width x height) an encoded input image may have before decoding.
        #[serde(default = "pixels::default_max_pixels")]
        max_pixels: u64,
        /// The network over the features.
        head: Box<Architecture>,
    },
}

/// The pretrained feature extractors of [`Architecture::ImageTransfer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backbone {
    /// EfficientNet-Lite0 ([`efficientnet`]), [`efficientnet::FEATURES`] features.
    EfficientnetLite0,
}

impl Backbone {
    /// The backbone's name in `model.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backbone::EfficientnetLite0 => "efficientnet-lite0",
        }
    }

    /// Values in one image's features.
    pub fn features(self) -> usize {
        match self {
            Backbone::EfficientnetLite0 => efficientnet::FEATURES,
        }
    }
}

impl Architecture {
    /// The layered network that computes the outputs: the architecture itself, or a text
    /// classifier's head (`None` when that head is not an MLP).
    pub fn mlp(&self) -> Option<&Architecture> {
        match self {
            Architecture::Mlp { .. } => Some(self),
            Architecture::TextClassifier { head, .. }
            | Architecture::ImageTransfer { head, .. } => match head.as_ref() {
                Architecture::Mlp { .. } => Some(head),
                _ => None,
            },
            Architecture::Cnn(_) => None,
        }
    }
}

/// Hidden-layer activations (also `[model] activation` in training job files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// max(0, x).
    #[default]
    Relu,
    /// tanh(x).
    Tanh,
    /// The Gaussian error linear unit.
    Gelu,
    /// 1 / (1 + e^-x).
    Sigmoid,
}

/// The transform applied to the last layer's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputActivation {
    /// Raw values (regression, or logits).
    #[default]
    None,
    /// Probabilities over classes.
    Softmax,
    /// Independent probabilities.
    Sigmoid,
}

/// Feature preprocessing recorded at training time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Preprocessing {
    /// Features are used as given.
    #[default]
    None,
    /// `(x - mean) / std`, per feature.
    Standardize {
        /// Per-feature means.
        mean: Vec<f32>,
        /// Per-feature standard deviations (zeros are treated as ones).
        std: Vec<f32>,
    },
}

impl ModelSpec {
    /// Reads and checks a `model.json`.
    pub fn read(path: &Path) -> Result<ModelSpec> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ServingError::Unavailable(format!("cannot read {}: {e}", path.display()))
        })?;
        let spec: ModelSpec = serde_json::from_str(&text)
            .map_err(|e| ServingError::Unavailable(format!("invalid {}: {e}", path.display())))?;
        spec.check()?;
        Ok(spec)
    }

    /// The model's signature.
    pub fn signature(&self) -> Result<Signature> {
        let convert = |t: &TensorSpecJson| -> Result<TensorSpec> {
            let datatype = t.datatype.parse::<DataType>().map_err(|e| {
                ServingError::Unavailable(format!("model.json tensor '{}': {e}", t.name))
            })?;
            Ok(TensorSpec::new(t.name.clone(), datatype, t.shape.clone()))
        };
        Ok(Signature {
            inputs: self.inputs.iter().map(convert).collect::<Result<_>>()?,
            outputs: self.outputs.iter().map(convert).collect::<Result<_>>()?,
        })
    }

    fn check(&self) -> Result<()> {
        if let Architecture::Cnn(arch) = &self.architecture {
            return cnn::check(self, arch);
        }
        let bad = |msg: String| Err(ServingError::Unavailable(format!("model.json: {msg}")));
        let Some(Architecture::Mlp {
            input_dim,
            output_dim,
            ..
        }) = self.architecture.mlp()
        else {
            return bad(
                "a text classifier's or image transfer model's head must be an MLP".to_string(),
            );
        };
        let signature = self.signature()?;
        let [input] = signature.inputs.as_slice() else {
            return bad(format!(
                "an MLP takes exactly one input, {} given",
                signature.inputs.len()
            ));
        };
        if let Architecture::ImageTransfer {
            backbone,
            image_size,
            max_pixels,
            ..
        } = &self.architecture
        {
            let image = transfer_input(*image_size, *max_pixels);
            if let Err(e) = image.check(input) {
                return bad(e);
            }
            if !(efficientnet::MIN_IMAGE_SIZE..=cnn::MAX_IMAGE_SIZE).contains(image_size) {
                return bad(format!(
                    "image_size must be between {} and {}, got {image_size}",
                    efficientnet::MIN_IMAGE_SIZE,
                    cnn::MAX_IMAGE_SIZE
                ));
            }
            if *input_dim != backbone.features() {
                return bad(format!(
                    "the head reads {input_dim} values but backbone {} gives {}",
                    backbone.as_str(),
                    backbone.features()
                ));
            }
        } else {
            let (datatype, dims) = match &self.architecture {
                Architecture::TextClassifier { .. } => (DataType::Bytes, [-1, 1]),
                _ => (DataType::Fp32, [-1, *input_dim as i64]),
            };
            if input.datatype != datatype || input.dims != dims {
                return bad(format!(
                    "input '{}' must be {datatype} {dims:?}, found {} {:?}",
                    input.name, input.datatype, input.dims
                ));
            }
        }
        if signature.outputs.is_empty() {
            return bad("no outputs declared".to_string());
        }
        for output in &signature.outputs {
            let ok = match output.datatype {
                DataType::Fp32 => output.dims == [-1, *output_dim as i64],
                DataType::Int64 | DataType::Bytes => output.dims == [-1, 1],
                _ => false,
            };
            if !ok {
                return bad(format!(
                    "output '{}' ({} {:?}) must be FP32 [-1, {output_dim}], INT64 [-1, 1] or BYTES [-1, 1]",
                    output.name, output.datatype, output.dims
                ));
            }
            if output.datatype == DataType::Bytes && self.labels.len() != *output_dim {
                return bad(format!(
                    "output '{}' returns labels but {} labels are given for {output_dim} classes",
                    output.name,
                    self.labels.len()
                ));
            }
        }
        if let Preprocessing::Standardize { mean, std } = &self.preprocessing
            && (mean.len() != *input_dim || std.len() != *input_dim)
        {
            return bad(format!(
                "standardization needs {input_dim} means and standard deviations"
            ));
        }
        Ok(())
    }
}

/// A trained model loaded for serving on the CPU.
pub struct CandleModel {
    weights: PathBuf,
    spec: ModelSpec,
    signature: Signature,
    /// A text classifier's encoder and the tokens it reads per text.
    encoder: Option<(Arc<dyn TextEncoderProvider>, usize)>,
    /// An image transfer model's backbone, loaded once; its instances share the weights.
    backbone: Option<ImageBackbone>,
    /// Where the model computes.
    device: Device,
}

/// An image transfer model's feature extractor and the images it takes.
#[derive(Debug, Clone)]
struct ImageBackbone {
    network: efficientnet::EfficientNetLite0,
    input: image_input::ImageInput,
}

/// The input of an image transfer model: RGB squares of `image_size`.
fn transfer_input(image_size: usize, max_pixels: u64) -> image_input::ImageInput {
    image_input::ImageInput {
        size: image_size,
        channels: 3,
        max_pixels,
    }
}

impl CandleModel {
    /// Loads `model.safetensors` at `path` and the `model.json` beside it (a text classifier
    /// needs [`CandleModel::load_with`]).
    pub fn load(path: &Path) -> Result<CandleModel> {
        CandleModel::load_with(path, &TextEncoders::default())
    }

    /// Loads `model.safetensors` at `path` and the `model.json` beside it; a text classifier's
    /// encoder comes from `encoders` (UNAVAILABLE, with the reason, when it is not there).
    pub fn load_with(path: &Path, encoders: &TextEncoders) -> Result<CandleModel> {
        CandleModel::load_on(path, encoders, DeviceSpec::Cpu)
    }

    /// [`CandleModel::load_with`], computing on `device` (UNAVAILABLE, with the reason, when it
    /// cannot be opened: no GPU, or a build without CUDA).
    pub fn load_on(
        path: &Path,
        encoders: &TextEncoders,
        device: DeviceSpec,
    ) -> Result<CandleModel> {
        let device = device.open().map_err(|e| {
            ServingError::Unavailable(format!("candle device for {}: {e}", path.display()))
        })?;
        let spec_path = path.with_file_name(SPEC_FILE);
        let spec = ModelSpec::read(&spec_path)?;
        let signature = spec.signature()?;
        let encoder = match &spec.architecture {
            Architecture::TextClassifier {
                encoder,
                max_length,
                head,
                fine_tuned: true,
            } => {
                let provider: Arc<dyn TextEncoderProvider> = Arc::new(bert::CarriedEncoder::load(
                    encoder,
                    path,
                    read_weights(path, &device)?,
                    *max_length,
                    &device,
                )?);
                check_head_width(head, encoder, provider.dimensions())?;
                Some((provider, *max_length))
            }
            Architecture::TextClassifier {
                encoder,
                max_length,
                head,
                fine_tuned: false,
            } => {
                let provider = encoders.get(encoder).ok_or_else(|| {
                    ServingError::Unavailable(format!(
                        "the text classifier needs the text encoder '{encoder}', which this server \
                         does not provide (it provides: {:?}; `cerulean up` and `cerulean serve` \
                         provide all-MiniLM-L6-v2 once `cerulean models pull` has fetched it)",
                        encoders.names()
                    ))
                })?;
                check_head_width(head, encoder, provider.dimensions())?;
                Some((provider, *max_length))
            }
            _ => None,
        };
        let backbone = match &spec.architecture {
            Architecture::ImageTransfer {
                backbone: Backbone::EfficientnetLite0,
                image_size,
                max_pixels,
                ..
            } => Some(ImageBackbone {
                network: efficientnet::EfficientNetLite0::new(
                    read_weights(path, &device)?.pp("backbone"),
                )
                .map_err(|e| {
                    ServingError::Unavailable(format!(
                        "{} does not hold the efficientnet-lite0 backbone model.json names: {e}",
                        path.display()
                    ))
                })?,
                input: transfer_input(*image_size, *max_pixels),
            }),
            _ => None,
        };
        let model = CandleModel {
            weights: path.to_path_buf(),
            spec,
            signature,
            encoder,
            backbone,
            device,
        };
        // Build one network now so that a broken file is reported at load time, not on first request.
        if let Architecture::Cnn(arch) = &model.spec.architecture {
            cnn::load_network(&model.weights, arch, &model.device)?;
            return Ok(model);
        }
        model.build_network()?;
        Ok(model)
    }

    fn build_network(&self) -> Result<Mlp> {
        let vb = read_weights(&self.weights, &self.device)?;
        Mlp::new(&self.spec.architecture, vb).map_err(|e| {
            ServingError::Unavailable(format!(
                "{} does not match model.json: {e}",
                self.weights.display()
            ))
        })
    }
}

/// Checks that a text classifier's head reads what its encoder gives.
fn check_head_width(head: &Architecture, encoder: &str, dimensions: usize) -> Result<()> {
    match head {
        Architecture::Mlp { input_dim, .. } if *input_dim != dimensions => {
            Err(ServingError::Unavailable(format!(
                "model.json: the head reads {input_dim} values but encoder '{encoder}' gives \
                 {dimensions}"
            )))
        }
        _ => Ok(()),
    }
}

/// The safetensors file at `path`, read into memory, as a variable builder on `device`.
fn read_weights(path: &Path, device: &Device) -> Result<VarBuilder<'static>> {
    let data = std::fs::read(path)
        .map_err(|e| ServingError::Unavailable(format!("cannot read {}: {e}", path.display())))?;
    VarBuilder::from_buffered_safetensors(data, DType::F32, device)
        .map_err(|e| ServingError::Unavailable(format!("invalid {}: {e}", path.display())))
}

impl ModelBackend for CandleModel {
    fn platform(&self) -> &'static str {
        "candle"
    }

    fn backend_name(&self) -> &'static str {
        "candle"
    }

    fn natural_signature(&self) -> &Signature {
        &self.signature
    }

    fn parameters(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.spec.labels.is_empty() {
            // Serialising strings cannot fail.
            let labels = serde_json::to_string(&self.spec.labels).unwrap_or_default();
            out.push(("labels".to_string(), labels));
        }
        match &self.spec.architecture {
            Architecture::TextClassifier { encoder, .. } => {
                out.push(("text_encoder".to_string(), encoder.clone()));
            }
            Architecture::ImageTransfer { backbone, .. } => {
                out.push(("backbone".to_string(), backbone.as_str().to_string()));
            }
            _ => {}
        }
        out
    }

    fn create_instance(&self) -> Result<Box<dyn BackendInstance>> {
        if let Architecture::Cnn(arch) = &self.spec.architecture {
            return cnn::instance(
                &self.weights,
                &self.spec,
                arch,
                &self.signature,
                &self.device,
            );
        }
        let encoder = match &self.encoder {
            Some((provider, max_tokens)) => Some(provider.create(*max_tokens)?),
            None => None,
        };
        Ok(Box::new(CandleInstance {
            encoder,
            backbone: self.backbone.clone(),
            network: self.build_network()?,
            device: self.device.clone(),
            spec: self.spec.clone(),
            signature: self.signature.clone(),
        }))
    }
}

/// The rebuilt network.
struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
    output_activation: OutputActivation,
    input_dim: usize,
    output_dim: usize,
}

impl Mlp {
    fn new(architecture: &Architecture, vb: VarBuilder<'_>) -> candle_core::Result<Mlp> {
        let Some(Architecture::Mlp {
            input_dim,
            hidden,
            output_dim,
            activation,
            output_activation,
        }) = architecture.mlp()
        else {
            return Err(candle_core::Error::Msg(
                "the architecture has no MLP to build".to_string(),
            ));
        };
        let widths: Vec<usize> = std::iter::once(*input_dim)
            .chain(hidden.iter().copied())
            .chain(std::iter::once(*output_dim))
            .collect();
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| candle_nn::linear(w[0], w[1], vb.pp("layers").pp(i)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Mlp {
            layers,
            activation: *activation,
            output_activation: *output_activation,
            input_dim: *input_dim,
            output_dim: *output_dim,
        })
    }

    fn forward(&self, x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
        let mut x = x.clone();
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x)?;
            if i < last {
                x = match self.activation {
                    Activation::Relu => x.relu()?,
                    Activation::Tanh => x.tanh()?,
                    Activation::Gelu => x.gelu()?,
                    Activation::Sigmoid => candle_nn::ops::sigmoid(&x)?,
                };
            }
        }
        match self.output_activation {
            OutputActivation::None => Ok(x),
            OutputActivation::Softmax => candle_nn::ops::softmax_last_dim(&x),
            OutputActivation::Sigmoid => candle_nn::ops::sigmoid(&x),
        }
    }
}

struct CandleInstance {
    /// A text classifier's encoder.
    encoder: Option<Box<dyn TextEncoder>>,
    /// An image transfer model's feature extractor.
    backbone: Option<ImageBackbone>,
    /// Where the model computes.
    device: Device,
    network: Mlp,
    spec: ModelSpec,
    signature: Signature,
}

impl BackendInstance for CandleInstance {
    fn execute(&mut self, inputs: &[BatchInput<'_>]) -> Result<Vec<Tensor>> {
        let input = inputs
            .first()
            .ok_or_else(|| ServingError::Internal("no input given".to_string()))?;
        let rows = usize::try_from(input.shape[0]).unwrap_or(0);
        let compute = |e: candle_core::Error| ServingError::Internal(format!("candle failed: {e}"));
        let mut features: Vec<f32> = Vec::with_capacity(rows * self.network.input_dim);
        if let Some(backbone) = &self.backbone {
            let pixels = backbone.input.pixels(input, &self.device)?;
            if pixels.dims()[0] != rows {
                return Err(ServingError::BadRequest(format!(
                    "input '{}' holds {} images for {rows} rows",
                    input.spec.name,
                    pixels.dims()[0]
                )));
            }
            features = backbone
                .network
                .features(&pixels)
                .and_then(|f| f.flatten_all())
                .and_then(|f| f.to_vec1())
                .map_err(compute)?;
        } else if let Some(encoder) = &mut self.encoder {
            let texts = input
                .parts
                .iter()
                .flat_map(|part| BytesElements::new(part))
                .map(|bytes| {
                    std::str::from_utf8(bytes).map_err(|e| {
                        ServingError::BadRequest(format!(
                            "input '{}' holds text that is not UTF-8: {e}",
                            input.spec.name
                        ))
                    })
                })
                .collect::<Result<Vec<&str>>>()?;
            if texts.len() != rows {
                return Err(ServingError::BadRequest(format!(
                    "input '{}' holds {} texts for {rows} rows",
                    input.spec.name,
                    texts.len()
                )));
            }
            features = encoder.encode(&texts)?;
            if features.len() != rows * self.network.input_dim {
                return Err(ServingError::Internal(format!(
                    "the text encoder gave {} values for {rows} texts of width {}",
                    features.len(),
                    self.network.input_dim
                )));
            }
        } else {
            for part in &input.parts {
                features.extend(
                    part.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
            }
        }
        if let Preprocessing::Standardize { mean, std } = &self.spec.preprocessing {
            for row in features.chunks_exact_mut(self.network.input_dim) {
                for ((x, m), s) in row.iter_mut().zip(mean).zip(std) {
                    *x = (*x - m) / if *s == 0.0 { 1.0 } else { *s };
                }
            }
        }
        let x =
            candle_core::Tensor::from_vec(features, (rows, self.network.input_dim), &self.device)
                .map_err(compute)?;
        let scores: Vec<f32> = self
            .network
            .forward(&x)
            .and_then(|y| y.flatten_all())
            .and_then(|y| y.to_vec1())
            .map_err(compute)?;
        outputs_of_scores(
            &self.signature,
            &scores,
            rows,
            self.network.output_dim,
            &self.spec.labels,
        )
    }
}

/// The output tensors of a network's `scores` (`rows` × `classes`, row-major), in the order the
/// signature declares them: FP32 outputs carry the scores, INT64 ones the index of each row's
/// highest score, BYTES ones its label (empty when `labels` has none for it). Shared by the MLP and
/// CNN instances.
pub(crate) fn outputs_of_scores(
    signature: &Signature,
    scores: &[f32],
    rows: usize,
    classes: usize,
    labels: &[String],
) -> Result<Vec<Tensor>> {
    let argmax: Vec<usize> = scores
        .chunks_exact(classes.max(1))
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                })
                .0
        })
        .collect();
    signature
        .outputs
        .iter()
        .map(|out| {
            let (shape, data) = match out.datatype {
                DataType::Fp32 => (
                    vec![rows as i64, classes as i64],
                    Bytes::from(bytemuck::cast_slice::<f32, u8>(scores).to_vec()),
                ),
                DataType::Int64 => (
                    vec![rows as i64, 1],
                    Bytes::from(
                        argmax
                            .iter()
                            .flat_map(|&i| (i as i64).to_le_bytes())
                            .collect::<Vec<u8>>(),
                    ),
                ),
                _ => {
                    let mut buf = Vec::new();
                    for &i in &argmax {
                        let label = labels.get(i).map_or("", String::as_str);
                        append_bytes_element(&mut buf, label.as_bytes());
                    }
                    (vec![rows as i64, 1], Bytes::from(buf))
                }
            };
            Ok(Tensor {
                name: out.name.clone(),
                datatype: out.datatype,
                shape,
                data,
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Writes a 3 → 4 → 2 MLP with known weights and returns its directory.
    pub(crate) fn write_mlp(dir: &Path, labels: bool) -> PathBuf {
        let device = Device::Cpu;
        let mut tensors = HashMap::new();
        let w0: Vec<f32> = (0..12).map(|i| (i as f32 - 6.0) / 10.0).collect();
        tensors.insert(
            "layers.0.weight".to_string(),
            candle_core::Tensor::from_vec(w0, (4, 3), &device).unwrap(),
        );
        tensors.insert(
            "layers.0.bias".to_string(),
            candle_core::Tensor::from_vec(vec![0.1f32, -0.1, 0.2, 0.0], 4, &device).unwrap(),
        );
        let w1: Vec<f32> = (0..8).map(|i| (i as f32 - 3.0) / 5.0).collect();
        tensors.insert(
            "layers.1.weight".to_string(),
            candle_core::Tensor::from_vec(w1, (2, 4), &device).unwrap(),
        );
        tensors.insert(
            "layers.1.bias".to_string(),
            candle_core::Tensor::from_vec(vec![0.5f32, -0.5], 2, &device).unwrap(),
        );
        let weights = dir.join("model.safetensors");
        candle_core::safetensors::save(&tensors, &weights).unwrap();
        let mut outputs = vec![TensorSpecJson {
            name: "scores".into(),
            datatype: "FP32".into(),
            shape: vec![-1, 2],
        }];
        if labels {
            outputs.push(TensorSpecJson {
                name: "label".into(),
                datatype: "BYTES".into(),
                shape: vec![-1, 1],
            });
        }
        let spec = ModelSpec {
            architecture: Architecture::Mlp {
                input_dim: 3,
                hidden: vec![4],
                output_dim: 2,
                activation: Activation::Relu,
                output_activation: OutputActivation::None,
            },
            inputs: vec![TensorSpecJson {
                name: "features".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 3],
            }],
            outputs,
            preprocessing: Preprocessing::None,
            labels: if labels {
                vec!["no".into(), "yes".into()]
            } else {
                vec![]
            },
        };
        std::fs::write(
            dir.join(SPEC_FILE),
            serde_json::to_string_pretty(&spec).unwrap(),
        )
        .unwrap();
        weights
    }

    /// The same network computed by hand.
    fn reference(x: [f32; 3]) -> [f32; 2] {
        let w0: Vec<f32> = (0..12).map(|i| (i as f32 - 6.0) / 10.0).collect();
        let b0 = [0.1f32, -0.1, 0.2, 0.0];
        let w1: Vec<f32> = (0..8).map(|i| (i as f32 - 3.0) / 5.0).collect();
        let b1 = [0.5f32, -0.5];
        let h: Vec<f32> = (0..4)
            .map(|o| (0..3).map(|i| w0[o * 3 + i] * x[i]).sum::<f32>() + b0[o])
            .map(|v| v.max(0.0))
            .collect();
        [0, 1].map(|o| (0..4).map(|i| w1[o * 4 + i] * h[i]).sum::<f32>() + b1[o])
    }

    #[test]
    fn serves_what_the_weights_say() {
        let dir = tempfile::tempdir().unwrap();
        let weights = write_mlp(dir.path(), true);
        let model = CandleModel::load(&weights).unwrap();
        assert_eq!(model.natural_signature().inputs[0].name, "features");
        let mut instance = model.create_instance().unwrap();
        let rows: [[f32; 3]; 2] = [[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]];
        let part0 = bytemuck::cast_slice::<f32, u8>(&rows[0]).to_vec();
        let part1 = bytemuck::cast_slice::<f32, u8>(&rows[1]).to_vec();
        let spec = model.natural_signature().inputs[0].clone();
        let out = instance
            .execute(&[BatchInput {
                spec: &spec,
                shape: vec![2, 3],
                parts: vec![&part0, &part1],
            }])
            .unwrap();
        assert_eq!(out[0].shape, vec![2, 2]);
        let scores: Vec<f32> = out[0]
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        for (r, row) in rows.iter().enumerate() {
            let want = reference(*row);
            for c in 0..2 {
                assert!(
                    (scores[r * 2 + c] - want[c]).abs() < 1e-5,
                    "{scores:?} vs {want:?}"
                );
            }
        }
        let labels: Vec<&[u8]> = out[1].bytes_elements().collect();
        for (r, row) in rows.iter().enumerate() {
            let want = reference(*row);
            let expected: &[u8] = if want[1] > want[0] { b"yes" } else { b"no" };
            assert_eq!(labels[r], expected);
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_gpu_on_a_build_without_cuda_is_unavailable_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let weights = write_mlp(dir.path(), false);
        let err = CandleModel::load_on(&weights, &TextEncoders::default(), DeviceSpec::Cuda(0))
            .err()
            .unwrap();
        assert!(matches!(err, ServingError::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("no CUDA support"), "{err}");
    }

    #[test]
    fn mismatched_weights_are_reported_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let weights = write_mlp(dir.path(), false);
        let mut spec = ModelSpec::read(&dir.path().join(SPEC_FILE)).unwrap();
        spec.architecture = Architecture::Mlp {
            input_dim: 3,
            hidden: vec![5],
            output_dim: 2,
            activation: Activation::Relu,
            output_activation: OutputActivation::None,
        };
        std::fs::write(
            dir.path().join(SPEC_FILE),
            serde_json::to_string(&spec).unwrap(),
        )
        .unwrap();
        let err = CandleModel::load(&weights).err().unwrap();
        assert!(matches!(err, ServingError::Unavailable(_)), "{err}");
    }

    #[test]
    fn image_transfer_specs_are_checked() {
        let t = |name: &str, datatype: &str, shape: Vec<i64>| TensorSpecJson {
            name: name.into(),
            datatype: datatype.into(),
            shape,
        };
        let spec = |input_dim: usize, image_size: usize, input: TensorSpecJson| ModelSpec {
            architecture: Architecture::ImageTransfer {
                backbone: Backbone::EfficientnetLite0,
                image_size,
                max_pixels: 100,
                head: Box::new(Architecture::Mlp {
                    input_dim,
                    hidden: vec![],
                    output_dim: 2,
                    activation: Activation::Relu,
                    output_activation: OutputActivation::Softmax,
                }),
            },
            inputs: vec![input],
            outputs: vec![t("probabilities", "FP32", vec![-1, 2])],
            preprocessing: Preprocessing::None,
            labels: vec![],
        };
        assert!(
            spec(1280, 64, t("image", "FP32", vec![-1, 3, 64, 64]))
                .check()
                .is_ok()
        );
        assert!(
            spec(1280, 64, t("image", "BYTES", vec![-1, 1]))
                .check()
                .is_ok()
        );
        let e = spec(1280, 64, t("image", "FP32", vec![-1, 1, 64, 64]))
            .check()
            .unwrap_err();
        assert!(
            e.to_string().contains("must be FP32 [-1, 3, 64, 64]"),
            "{e}"
        );
        let e = spec(10, 64, t("image", "BYTES", vec![-1, 1]))
            .check()
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("the head reads 10 values but backbone efficientnet-lite0 gives 1280"),
            "{e}"
        );
        let e = spec(1280, 16, t("image", "BYTES", vec![-1, 1]))
            .check()
            .unwrap_err();
        assert!(
            e.to_string().contains("image_size must be between 32"),
            "{e}"
        );
        let json = serde_json::to_value(spec(1280, 64, t("image", "BYTES", vec![-1, 1]))).unwrap();
        assert_eq!(json["architecture"]["family"], "image-transfer");
        assert_eq!(json["architecture"]["backbone"], "efficientnet-lite0");
    }

    #[test]
    fn labels_must_match_classes() {
        let dir = tempfile::tempdir().unwrap();
        write_mlp(dir.path(), true);
        let path = dir.path().join(SPEC_FILE);
        let mut spec = ModelSpec::read(&path).unwrap();
        spec.labels.pop();
        std::fs::write(&path, serde_json::to_string(&spec).unwrap()).unwrap();
        let err = ModelSpec::read(&path).unwrap_err();
        assert!(err.to_string().contains("labels"), "{err}");
    }
}
