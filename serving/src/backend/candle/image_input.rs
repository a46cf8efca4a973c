//! The single input of the candle image classifiers (the CNN and the transfer-learned
//! EfficientNet-Lite0): FP32 pixels `[-1, C, S, S]` in `[0, 1]`, or BYTES `[-1, 1]` encoded PNG
//! or JPEG images that the server decodes and resizes with [`image_to_pixels`].

use candle_core::{Device, Tensor};

use super::pixels::image_to_pixels;
use crate::backend::BatchInput;
use crate::datatype::DataType;
use crate::error::{Result, ServingError};
use crate::signature::TensorSpec;
use crate::tensor::BytesElements;

/// What an image classifier's input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ImageInput {
    /// Images are `size` x `size` pixels.
    pub size: usize,
    /// 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    /// The most pixels an encoded image may have before it is decoded.
    pub max_pixels: u64,
}

impl ImageInput {
    /// Values in one image.
    fn pixels_per_image(&self) -> usize {
        self.channels * self.size * self.size
    }

    /// Checks a declared input: FP32 `[-1, C, S, S]` or BYTES `[-1, 1]` (the error is the
    /// `model.json` complaint).
    pub fn check(&self, input: &TensorSpec) -> std::result::Result<(), String> {
        let (c, s) = (self.channels as i64, self.size as i64);
        let ok = match input.datatype {
            DataType::Fp32 => input.dims == [-1, c, s, s],
            DataType::Bytes => input.dims == [-1, 1],
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "input '{}' must be FP32 [-1, {c}, {s}, {s}] or BYTES [-1, 1], found {} {:?}",
                input.name, input.datatype, input.dims
            ))
        }
    }

    /// The pixels `[rows, C, S, S]` of a batch's input: FP32 pixels as sent, or encoded images
    /// decoded and resized (a bad image is a 400 naming the tensor and the element).
    pub fn pixels(&self, input: &BatchInput<'_>, device: &Device) -> Result<Tensor> {
        let per_image = self.pixels_per_image();
        let mut pixels: Vec<f32> = Vec::new();
        let rows;
        if input.spec.datatype == DataType::Bytes {
            let mut count = 0usize;
            for part in &input.parts {
                for bytes in BytesElements::new(part) {
                    let decoded = image_to_pixels(bytes, self.size, self.channels, self.max_pixels)
                        .map_err(|e| {
                            ServingError::BadRequest(format!(
                                "input tensor '{}', element {count}: {e}",
                                input.spec.name
                            ))
                        })?;
                    pixels.extend_from_slice(&decoded);
                    count += 1;
                }
            }
            rows = count;
        } else {
            rows = usize::try_from(input.shape[0]).unwrap_or(0);
            pixels.reserve(rows * per_image);
            for part in &input.parts {
                pixels.extend(
                    part.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
            }
            if pixels.len() != rows * per_image {
                return Err(ServingError::BadRequest(format!(
                    "input tensor '{}' holds {} values, expected {rows} x {per_image}",
                    input.spec.name,
                    pixels.len()
                )));
            }
        }
        let s = self.size;
        Tensor::from_vec(pixels, (rows, self.channels, s, s), device)
            .map_err(|e| ServingError::Internal(format!("candle failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: ImageInput = ImageInput {
        size: 4,
        channels: 1,
        max_pixels: 100,
    };

    #[test]
    fn declared_inputs_are_checked() {
        let spec = |datatype, dims: Vec<i64>| TensorSpec::new("image".to_string(), datatype, dims);
        assert!(
            INPUT
                .check(&spec(DataType::Fp32, vec![-1, 1, 4, 4]))
                .is_ok()
        );
        assert!(INPUT.check(&spec(DataType::Bytes, vec![-1, 1])).is_ok());
        let e = INPUT
            .check(&spec(DataType::Fp32, vec![-1, 3, 4, 4]))
            .unwrap_err();
        assert!(e.contains("must be FP32 [-1, 1, 4, 4]"), "{e}");
    }

    #[test]
    fn a_short_pixel_tensor_is_a_bad_request() {
        let input_spec = TensorSpec::new("image".to_string(), DataType::Fp32, vec![-1, 1, 4, 4]);
        let bytes = vec![0u8; 4 * 15];
        let e = INPUT
            .pixels(
                &BatchInput {
                    spec: &input_spec,
                    shape: vec![1, 1, 4, 4],
                    parts: vec![&bytes],
                },
                &Device::Cpu,
            )
            .unwrap_err();
        assert!(matches!(e, ServingError::BadRequest(_)), "{e}");
        assert!(e.to_string().contains("'image'"), "{e}");
    }
}
