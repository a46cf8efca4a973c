//! EfficientNet-Lite0 (Google's mobile EfficientNet variant: ReLU6, no squeeze-and-excitation,
//! fixed stem and head), the frozen feature extractor of image classifiers trained by transfer
//! learning ([`EfficientNetLite0`]).
//!
//! The network, for pixels `[n, 3, H, W]` in `[0, 1]` (RGB; any `H`, `W` of at least 32):
//! - normalization `(255 x - 127) / 128` (the TF-Lite convention the weights were trained with);
//! - stem: 3x3 convolution, stride 2, 32 channels, ReLU6;
//! - 16 inverted-residual blocks ([`BLOCKS`]): an optional 1x1 expansion with ReLU6, a
//!   depthwise `k`x`k` convolution with ReLU6, a 1x1 projection, and the input added back when
//!   the block keeps its shape;
//! - head: 1x1 convolution to [`FEATURES`] channels, ReLU6, global average pooling.
//!
//! Convolutions pad as TensorFlow's `SAME` does (the extra row and column at the bottom and
//! right), as the weights were trained. Batch normalization is folded into each convolution's
//! weight and bias before the weights are stored, so every convolution here has a bias. The
//! parameter names and shapes are [`parameter_shapes`].
//!
//! The depthwise convolutions run as one pass over each channel plane on the CPU
//! ([`depthwise_conv2d`]); candle's grouped convolution, which other devices use, splits the
//! input into one convolution per channel.

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Module, Shape, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};
use rayon::prelude::*;

/// Values in the feature vector of one image.
pub const FEATURES: usize = 1280;
/// The smallest image side the network accepts (five stride-2 stages leave one pixel).
pub const MIN_IMAGE_SIZE: usize = 32;
/// The image side the weights were trained at.
pub const NATIVE_IMAGE_SIZE: usize = 224;
/// Channels out of the stem.
const STEM_CHANNELS: usize = 32;
/// Channels into the head.
const HEAD_IN: usize = 320;

/// One inverted-residual block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockConfig {
    /// Channels in.
    pub input: usize,
    /// Channels out.
    pub output: usize,
    /// The expansion ratio (1: no expansion convolution).
    pub expand: usize,
    /// The depthwise kernel side.
    pub kernel: usize,
    /// The depthwise stride.
    pub stride: usize,
}

impl BlockConfig {
    /// Channels inside the block, after expansion.
    pub fn hidden(&self) -> usize {
        self.input * self.expand
    }

    /// Whether the input is added to the output.
    pub fn residual(&self) -> bool {
        self.stride == 1 && self.input == self.output
    }
}

const fn block(
    input: usize,
    output: usize,
    expand: usize,
    kernel: usize,
    stride: usize,
) -> BlockConfig {
    BlockConfig {
        input,
        output,
        expand,
        kernel,
        stride,
    }
}

/// EfficientNet-Lite0's blocks: the seven stages of EfficientNet-B0 (width and depth 1.0)
/// repeated 1, 2, 2, 3, 3, 4 and 1 times, the first block of a stage taking its stride.
pub const BLOCKS: [BlockConfig; 16] = [
    block(32, 16, 1, 3, 1),
    block(16, 24, 6, 3, 2),
    block(24, 24, 6, 3, 1),
    block(24, 40, 6, 5, 2),
    block(40, 40, 6, 5, 1),
    block(40, 80, 6, 3, 2),
    block(80, 80, 6, 3, 1),
    block(80, 80, 6, 3, 1),
    block(80, 112, 6, 5, 1),
    block(112, 112, 6, 5, 1),
    block(112, 112, 6, 5, 1),
    block(112, 192, 6, 5, 2),
    block(192, 192, 6, 5, 1),
    block(192, 192, 6, 5, 1),
    block(192, 192, 6, 5, 1),
    block(192, 320, 6, 3, 1),
];

/// Every parameter with its shape: `stem.{weight,bias}`, for each block `i`
/// `blocks.{i}.expand.{weight,bias}` (when it expands), `blocks.{i}.depthwise.{weight,bias}` and
/// `blocks.{i}.project.{weight,bias}`, then `head.{weight,bias}`.
pub fn parameter_shapes() -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let mut conv = |name: String, o: usize, i: usize, k: usize| {
        out.push((format!("{name}.weight"), vec![o, i, k, k]));
        out.push((format!("{name}.bias"), vec![o]));
    };
    conv("stem".into(), STEM_CHANNELS, 3, 3);
    for (i, b) in BLOCKS.iter().enumerate() {
        if b.expand != 1 {
            conv(format!("blocks.{i}.expand"), b.hidden(), b.input, 1);
        }
        conv(format!("blocks.{i}.depthwise"), b.hidden(), 1, b.kernel);
        conv(format!("blocks.{i}.project"), b.output, b.hidden(), 1);
    }
    conv("head".into(), FEATURES, HEAD_IN, 1);
    out
}

/// A depthwise convolution's weights and bias, with its kernel and stride.
#[derive(Debug, Clone)]
struct Depthwise {
    weight: Tensor,
    bias: Tensor,
    kernel: usize,
    stride: usize,
}

/// One block's layers.
#[derive(Debug, Clone)]
struct Block {
    expand: Option<Conv2d>,
    depthwise: Depthwise,
    project: Conv2d,
    residual: bool,
}

/// The EfficientNet-Lite0 feature extractor (see the module documentation).
#[derive(Debug, Clone)]
pub struct EfficientNetLite0 {
    stem_weight: Tensor,
    stem_bias: Tensor,
    blocks: Vec<Block>,
    head: Conv2d,
}

fn pointwise(
    vb: &VarBuilder<'_>,
    name: &str,
    input: usize,
    output: usize,
) -> candle_core::Result<Conv2d> {
    candle_nn::conv2d(input, output, 1, Conv2dConfig::default(), vb.pp(name))
}

impl EfficientNetLite0 {
    /// Builds the network from `vb` (the names of [`parameter_shapes`]).
    pub fn new(vb: VarBuilder<'_>) -> candle_core::Result<EfficientNetLite0> {
        let stem_weight = vb.get((STEM_CHANNELS, 3, 3, 3), "stem.weight")?;
        let stem_bias = vb.get(STEM_CHANNELS, "stem.bias")?;
        let mut blocks = Vec::with_capacity(BLOCKS.len());
        for (i, b) in BLOCKS.iter().enumerate() {
            let vb = vb.pp("blocks").pp(i);
            let hidden = b.hidden();
            let expand = if b.expand == 1 {
                None
            } else {
                Some(pointwise(&vb, "expand", b.input, hidden)?)
            };
            let depthwise = Depthwise {
                weight: vb.get((hidden, 1, b.kernel, b.kernel), "depthwise.weight")?,
                bias: vb
                    .get(hidden, "depthwise.bias")?
                    .reshape((1, hidden, 1, 1))?,
                kernel: b.kernel,
                stride: b.stride,
            };
            blocks.push(Block {
                expand,
                depthwise,
                project: pointwise(&vb, "project", hidden, b.output)?,
                residual: b.residual(),
            });
        }
        Ok(EfficientNetLite0 {
            stem_weight,
            stem_bias: stem_bias.reshape((1, STEM_CHANNELS, 1, 1))?,
            blocks,
            head: pointwise(&vb, "head", HEAD_IN, FEATURES)?,
        })
    }

    /// The features `[n, FEATURES]` of pixels `[n, 3, H, W]` in `[0, 1]`.
    pub fn features(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let (_, c, h, w) = pixels.dims4()?;
        if c != 3 || h < MIN_IMAGE_SIZE || w < MIN_IMAGE_SIZE {
            candle_core::bail!(
                "EfficientNet-Lite0 takes RGB images of at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} \
                 pixels, got {c} channels of {h}x{w}"
            );
        }
        let x = ((pixels * (255.0 / 128.0))? - (127.0 / 128.0))?;
        let (top, bottom) = same_padding(h, 3, 2);
        let (left, right) = same_padding(w, 3, 2);
        let x = x
            .pad_with_zeros(2, top, bottom)?
            .pad_with_zeros(3, left, right)?
            .conv2d(&self.stem_weight, 0, 2, 1, 1)?
            .broadcast_add(&self.stem_bias)?;
        let mut x = relu6(&x)?;
        for block in &self.blocks {
            let input = x.clone();
            if let Some(expand) = &block.expand {
                x = relu6(&expand.forward(&x)?)?;
            }
            let d = &block.depthwise;
            x = depthwise_conv2d(&x, &d.weight, d.kernel, d.stride)?.broadcast_add(&d.bias)?;
            x = relu6(&x)?;
            x = block.project.forward(&x)?;
            if block.residual {
                x = (x + input)?;
            }
        }
        relu6(&self.head.forward(&x)?)?.mean((2, 3))
    }
}

fn relu6(x: &Tensor) -> candle_core::Result<Tensor> {
    x.clamp(0f32, 6f32)
}

/// TensorFlow's `SAME` padding of one side of `size` for a `kernel` at `stride`: the output has
/// `ceil(size / stride)` positions and the padding's odd element goes after (bottom or right).
pub fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// A depthwise convolution (one `kernel`x`kernel` filter per channel, weights `[C, 1, k, k]`)
/// of `x` `[n, C, H, W]` at `stride` with `SAME` padding, without bias. On the CPU with F32
/// values it is one pass over each channel plane; elsewhere candle's grouped convolution.
pub fn depthwise_conv2d(
    x: &Tensor,
    weight: &Tensor,
    kernel: usize,
    stride: usize,
) -> candle_core::Result<Tensor> {
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && weight.dtype() == DType::F32
    {
        return x.apply_op2_no_bwd(weight, &DepthwiseOp { kernel, stride });
    }
    grouped_depthwise_conv2d(x, weight, kernel, stride)
}

/// [`depthwise_conv2d`] through candle's grouped convolution (any device).
pub fn grouped_depthwise_conv2d(
    x: &Tensor,
    weight: &Tensor,
    kernel: usize,
    stride: usize,
) -> candle_core::Result<Tensor> {
    let (_, c, h, w) = x.dims4()?;
    let (top, bottom) = same_padding(h, kernel, stride);
    let (left, right) = same_padding(w, kernel, stride);
    x.pad_with_zeros(2, top, bottom)?
        .pad_with_zeros(3, left, right)?
        .conv2d(weight, 0, stride, 1, c)
}

/// The CPU depthwise convolution (see [`depthwise_conv2d`]).
struct DepthwiseOp {
    kernel: usize,
    stride: usize,
}

impl CustomOp2 for DepthwiseOp {
    fn name(&self) -> &'static str {
        "efficientnet-depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l1.shape().dims4()?;
        let (wc, one, kh, kw) = l2.shape().dims4()?;
        let k = self.kernel;
        if wc != c || one != 1 || kh != k || kw != k {
            candle_core::bail!(
                "depthwise weights {:?} do not fit {c} channels and kernel {k}",
                l2.shape().dims()
            );
        }
        let (Some((x_start, x_end)), Some((w_start, w_end))) =
            (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("the depthwise convolution needs contiguous tensors");
        };
        let x = &s1.as_slice::<f32>()?[x_start..x_end];
        let weights = &s2.as_slice::<f32>()?[w_start..w_end];
        let s = self.stride;
        let (oh, ow) = (h.div_ceil(s), w.div_ceil(s));
        let (top, _) = same_padding(h, k, s);
        let (left, _) = same_padding(w, k, s);
        let mut out = vec![0f32; n * c * oh * ow];
        out.par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(plane_index, plane)| {
                let channel = plane_index % c;
                let input = &x[plane_index * h * w..(plane_index + 1) * h * w];
                let filter = &weights[channel * k * k..(channel + 1) * k * k];
                depthwise_plane(input, (h, w), filter, k, s, (top, left), plane, ow);
            });
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }
}

/// Accumulates one channel plane: for each kernel tap, the rows and columns whose input lies
/// inside the image (the rest is padding, which adds nothing).
#[allow(clippy::too_many_arguments)]
fn depthwise_plane(
    input: &[f32],
    (h, w): (usize, usize),
    filter: &[f32],
    k: usize,
    s: usize,
    (top, left): (usize, usize),
    out: &mut [f32],
    ow: usize,
) {
    let oh = out.len() / ow;
    for ky in 0..k {
        for kx in 0..k {
            let tap = filter[ky * k + kx];
            // Output positions o with 0 <= o*s + kx - left < w (and the same for rows).
            let first = |pad: usize, kk: usize| pad.saturating_sub(kk).div_ceil(s);
            let end = |size: usize, pad: usize, kk: usize, outs: usize| {
                // o*s + kk - pad <= size - 1  <=>  o <= (size - 1 + pad - kk) / s
                ((size - 1 + pad).checked_sub(kk)).map_or(0, |v| (v / s + 1).min(outs))
            };
            let (y0, y1) = (first(top, ky), end(h, top, ky, oh));
            let (x0, x1) = (first(left, kx), end(w, left, kx, ow));
            if x0 >= x1 {
                continue;
            }
            for oy in y0..y1 {
                let iy = oy * s + ky - top;
                let row = &input[iy * w..(iy + 1) * w];
                let dst = &mut out[oy * ow + x0..oy * ow + x1];
                let start = x0 * s + kx - left;
                if s == 1 {
                    for (d, v) in dst.iter_mut().zip(&row[start..start + (x1 - x0)]) {
                        *d += tap * v;
                    }
                } else {
                    for (j, d) in dst.iter_mut().enumerate() {
                        *d += tap * row[start + j * s];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let count: usize = shape.iter().product();
        let mut state = seed;
        let values: Vec<f32> = (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn same_padding_puts_the_odd_row_after() {
        assert_eq!(same_padding(224, 3, 2), (0, 1));
        assert_eq!(same_padding(224, 5, 2), (1, 2));
        assert_eq!(same_padding(112, 3, 1), (1, 1));
        assert_eq!(same_padding(7, 5, 1), (2, 2));
        assert_eq!(same_padding(7, 3, 2), (1, 1));
    }

    #[test]
    fn the_cpu_depthwise_pass_equals_candles_grouped_convolution() {
        for (size, kernel, stride) in [
            (9, 3, 1),
            (9, 3, 2),
            (10, 5, 2),
            (7, 5, 1),
            (8, 5, 2),
            (3, 5, 1),
        ] {
            let x = random(&[2, 3, size, size + 1], size as u64);
            let w = random(&[3, 1, kernel, kernel], kernel as u64);
            let fast = depthwise_conv2d(&x, &w, kernel, stride).unwrap();
            let grouped = grouped_depthwise_conv2d(&x, &w, kernel, stride).unwrap();
            assert_eq!(fast.dims(), grouped.dims(), "{size} {kernel} {stride}");
            let diff = (fast - grouped)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "{size} {kernel} {stride}: {diff}");
        }
    }

    #[test]
    fn the_network_maps_images_to_features() {
        let varmap = VarMap::new();
        {
            let mut vars = varmap.data().lock().unwrap();
            for (i, (name, shape)) in parameter_shapes().into_iter().enumerate() {
                let t = (random(&shape, i as u64 + 1) * 0.2).unwrap();
                vars.insert(name, candle_core::Var::from_tensor(&t).unwrap());
            }
        }
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let net = EfficientNetLite0::new(vb).unwrap();
        let x = (random(&[2, 3, 64, 48], 7) + 0.5).unwrap();
        let features = net.features(&x).unwrap();
        assert_eq!(features.dims(), &[2, FEATURES]);
        let values: Vec<f32> = features.flatten_all().unwrap().to_vec1().unwrap();
        assert!(
            values
                .iter()
                .all(|v| v.is_finite() && (0.0..=6.0).contains(v))
        );
        let small = random(&[1, 3, 16, 16], 8);
        let e = net.features(&small).unwrap_err().to_string();
        assert!(e.contains("at least 32x32"), "{e}");
        assert_eq!(parameter_shapes().len(), 2 * (1 + 15 * 3 + 2 + 1));
    }
}
