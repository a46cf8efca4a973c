//! The `image-classifier` family with `architecture = "efficientnet-lite0"`: transfer learning
//! on the prebuilt EfficientNet-Lite0, its ImageNet features frozen and a new head trained.
//!
//! - Backbone: EfficientNet-Lite0 from `cerulean models pull efficientnet-lite0`
//!   ([`crate::pretrained::efficientnet`]), the serving crate's
//!   [`EfficientNetLite0`](cerulean_serving::backend::candle::efficientnet::EfficientNetLite0)
//!   on the job's device. It is not trained: each image is decoded as RGB at `model.image_size`
//!   (default 224, at least 32) with the pixel decoder serving uses, and turned into its 1280
//!   features once, in chunks, before the first epoch.
//! - Head: the tabular network over the features, with the tabular families' split,
//!   standardisation and classes ([`TabularFamily`]): logistic regression without
//!   `model.hidden`, an MLP with it.
//! - Export: one `model.safetensors` holding the folded backbone (under `backbone.`) and the
//!   head (`layers.{i}`), so the registered model serves with no other file; `model.json` of
//!   family `image-transfer` (backbone `efficientnet-lite0`, `image_size`, the head's `mlp`),
//!   input `image` FP32 `[-1, 3, S, S]` (pixels in `[0, 1]`) or, with `model.image_input =
//!   "encoded"`, BYTES `[-1, 1]`; outputs `probabilities`, `class_index`, `label`.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use cerulean_serving::backend::candle::efficientnet::{self, EfficientNetLite0};
use cerulean_serving::backend::candle::pixels::DEFAULT_MAX_PIXELS;

use crate::checkpoint::Weights;
use crate::data::LoadedDataset;
use crate::error::{Result, TrainError};
use crate::export::{self, Architecture, Backbone, TensorSpecJson};
use crate::families::tabular::TabularFamily;
use crate::families::{Family, Network, Prepared};
use crate::images::decode_images;
use crate::pretrained::efficientnet::PretrainedLite0;
use crate::spec::{Hyperparameters, ImageInput, ModelSection, Task};

/// The image side unless `model.image_size` says otherwise (the weights' own).
pub const DEFAULT_IMAGE_SIZE: usize = efficientnet::NATIVE_IMAGE_SIZE;
/// Images through the backbone per forward pass (bounds the activations' memory).
const FEATURE_CHUNK: usize = 32;
/// The exported model's input name.
const IMAGE_INPUT: &str = "image";

/// The transfer-learning family (see the module documentation).
pub struct TransferFamily {
    head: TabularFamily,
    pretrained: Arc<PretrainedLite0>,
    image_size: usize,
    input: ImageInput,
}

/// Checks `[model]` of an `efficientnet-lite0` image classifier: no `filters`, 3 `channels`,
/// and an `image_size` the backbone takes.
pub(crate) fn validate_model(m: &ModelSection) -> Result<()> {
    if m.filters.is_some() {
        return Err(TrainError::spec(
            "model.filters",
            "not used by architecture efficientnet-lite0 (its layers are fixed)",
        ));
    }
    if let Some(c) = m.channels
        && c != 3
    {
        return Err(TrainError::spec(
            "model.channels",
            format!("efficientnet-lite0 reads RGB images: channels must be 3, got {c}"),
        ));
    }
    let range =
        efficientnet::MIN_IMAGE_SIZE..=cerulean_serving::backend::candle::cnn::MAX_IMAGE_SIZE;
    if let Some(sizes) = &m.image_size
        && let Some(s) = sizes.values().iter().find(|s| !range.contains(s))
    {
        return Err(TrainError::spec(
            "model.image_size",
            format!(
                "efficientnet-lite0 takes images from {} to {} pixels square, got {s}",
                range.start(),
                range.end()
            ),
        ));
    }
    Ok(())
}

/// The pretrained weights as `cerulean models pull` installed them under `$CERULEAN_HOME`.
pub fn default_backbone() -> Result<Arc<PretrainedLite0>> {
    let store = cerulean_models::ModelStore::from_env();
    Ok(Arc::new(crate::pretrained::efficientnet::from_store(
        &store,
    )?))
}

/// The family for `model` (an `efficientnet-lite0` image classifier) with the trial's `hyper`
/// and the `pretrained` backbone.
pub fn family(
    model: &ModelSection,
    hyper: &Hyperparameters,
    pretrained: Arc<PretrainedLite0>,
) -> Result<TransferFamily> {
    let image_size =
        super::single_setting("model.image_size", &model.image_size)?.unwrap_or(DEFAULT_IMAGE_SIZE);
    Ok(TransferFamily {
        head: TabularFamily::new(
            "image-classifier (efficientnet-lite0)",
            hyper.hidden.clone(),
            hyper.activation,
            Task::Classification,
        ),
        pretrained,
        image_size,
        input: model.image_input.unwrap_or_default(),
    })
}

/// The features `[rows, 1280]` (row-major) of the images `rows` of `data`, decoded at `size`.
pub fn image_features(
    backbone: &EfficientNetLite0,
    data: &LoadedDataset,
    rows: &[usize],
    size: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    let images = data
        .images
        .as_ref()
        .ok_or_else(|| TrainError::data("family image-classifier needs an image-folder dataset"))?;
    let mut out = Vec::with_capacity(rows.len() * efficientnet::FEATURES);
    for chunk in rows.chunks(FEATURE_CHUNK) {
        let pixels = decode_images(images, chunk, size, 3)?;
        let x = Tensor::from_vec(pixels, (chunk.len(), 3, size, size), device)?;
        let features = backbone.features(&x)?.flatten_all()?.to_vec1::<f32>()?;
        out.extend(features);
    }
    Ok(out)
}

impl Family for TransferFamily {
    fn name(&self) -> &'static str {
        "image-classifier (efficientnet-lite0)"
    }

    fn prepare(
        &mut self,
        data: &LoadedDataset,
        validation_split: f64,
        seed: u64,
        device: &Device,
    ) -> Result<Prepared> {
        let backbone = crate::pretrained::efficientnet::network(&self.pretrained.backbone, device)?;
        let all: Vec<usize> = (0..data.rows).collect();
        let features = image_features(&backbone, data, &all, self.image_size, device)?;
        // The head sees the features as its columns; the encoded images are not needed again.
        let featured = LoadedDataset {
            feature_names: (0..efficientnet::FEATURES)
                .map(|i| format!("feature_{i}"))
                .collect(),
            features,
            images: None,
            ..data.clone()
        };
        let mut prepared = self
            .head
            .prepare(&featured, validation_split, seed, device)?;
        prepared.description = format!(
            "{} images through EfficientNet-Lite0 at {s}x{s} ({} features): {}",
            data.rows,
            efficientnet::FEATURES,
            prepared.description,
            s = self.image_size
        );
        Ok(prepared)
    }

    fn build(&self, varmap: &VarMap, device: &Device, seed: u64) -> Result<Box<dyn Network>> {
        self.head.build(varmap, device, seed)
    }

    fn export(&self, weights: &Weights) -> Result<Vec<(String, Vec<u8>)>> {
        let (mut tensors, mut spec) = self.head.export_tensors(weights)?;
        for (name, t) in &self.pretrained.backbone {
            tensors.insert(format!("backbone.{name}"), t.clone());
        }
        spec.architecture = Architecture::ImageTransfer {
            backbone: Backbone::EfficientnetLite0,
            image_size: self.image_size,
            max_pixels: DEFAULT_MAX_PIXELS,
            head: Box::new(spec.architecture),
        };
        let s = self.image_size as i64;
        spec.inputs = vec![match self.input {
            ImageInput::Pixels => TensorSpecJson {
                name: IMAGE_INPUT.to_owned(),
                datatype: "FP32".to_owned(),
                shape: vec![-1, 3, s, s],
            },
            ImageInput::Encoded => TensorSpecJson {
                name: IMAGE_INPUT.to_owned(),
                datatype: "BYTES".to_owned(),
                shape: vec![-1, 1],
            },
        }];
        export::files(export::encode_weights(&tensors)?, &spec)
    }
}
