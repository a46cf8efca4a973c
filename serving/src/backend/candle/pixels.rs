//! Encoded images (PNG, JPEG) to the pixels an image classifier takes: decoded, converted to
//! grayscale or RGB, resized to a square with bilinear filtering, and scaled to `[0, 1]`,
//! channels first (`[C, H, W]`).
//!
//! The trainer prepares its image folders with [`image_to_pixels`] and the candle backend decodes
//! `BYTES` image inputs with it, so what the served model sees is exactly what it was trained on.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader};

/// The default limit on an encoded image's pixels (width x height) before it is decoded:
/// 40 megapixels (e.g. 8000 x 5000).
pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;

/// [`DEFAULT_MAX_PIXELS`], for `#[serde(default)]` in `model.json`.
pub(crate) fn default_max_pixels() -> u64 {
    DEFAULT_MAX_PIXELS
}

/// Why an image cannot be turned into pixels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PixelError {
    /// The bytes are not a PNG or JPEG image this build can decode.
    #[error("cannot decode the image (PNG and JPEG are supported): {0}")]
    Undecodable(String),
    /// The image has more pixels than allowed.
    #[error("the image is {width}x{height} = {pixels} pixels, more than the limit of {limit}")]
    TooLarge {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// `width * height`.
        pixels: u64,
        /// The limit.
        limit: u64,
    },
    /// The requested output is not a square of 1 or 3 channels.
    #[error("unsupported image settings: {0}")]
    Settings(String),
}

/// Decodes `bytes` (PNG or JPEG) and returns `channels * size * size` values in `[0, 1]`,
/// channels first: `channels` 1 gives luma (grayscale), 3 gives RGB (an alpha channel is
/// dropped). Refuses images of more than `max_pixels` pixels before decoding them.
pub fn image_to_pixels(
    bytes: &[u8],
    size: usize,
    channels: usize,
    max_pixels: u64,
) -> Result<Vec<f32>, PixelError> {
    if size == 0 || size > u32::MAX as usize || !matches!(channels, 1 | 3) {
        return Err(PixelError::Settings(format!(
            "size {size} and channels {channels} (need size >= 1 and channels 1 or 3)"
        )));
    }
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| PixelError::Undecodable(e.to_string()))
    };
    let (width, height) = reader()?
        .into_dimensions()
        .map_err(|e| PixelError::Undecodable(e.to_string()))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(PixelError::TooLarge {
            width,
            height,
            pixels,
            limit: max_pixels,
        });
    }
    let decoded = reader()?
        .decode()
        .map_err(|e| PixelError::Undecodable(e.to_string()))?;
    Ok(to_pixels(&decoded, size as u32, channels))
}

/// Converts, resizes and scales a decoded image (see [`image_to_pixels`]).
fn to_pixels(decoded: &DynamicImage, size: u32, channels: usize) -> Vec<f32> {
    let plane = (size as usize) * (size as usize);
    let mut out = vec![0.0f32; channels * plane];
    let scale = |v: u8| f32::from(v) / 255.0;
    if channels == 1 {
        let luma = decoded.to_luma8();
        let resized = resize(&luma, size);
        for (o, p) in out.iter_mut().zip(resized.pixels()) {
            *o = scale(p.0[0]);
        }
    } else {
        let rgb = decoded.to_rgb8();
        let resized = resize(&rgb, size);
        for (i, p) in resized.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = scale(p.0[c]);
            }
        }
    }
    out
}

/// `image` resized to `size` x `size` (bilinear; unchanged when it already has that size).
fn resize<P: image::Pixel<Subpixel = u8> + 'static>(
    image: &image::ImageBuffer<P, Vec<u8>>,
    size: u32,
) -> image::ImageBuffer<P, Vec<u8>> {
    if image.width() == size && image.height() == size {
        image.clone()
    } else {
        image::imageops::resize(image, size, size, FilterType::Triangle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(width, height, image::Rgb(rgb));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_resizes_and_scales_channels_first() {
        let bytes = png(7, 5, [255, 0, 51]);
        let rgb = image_to_pixels(&bytes, 4, 3, 100).unwrap();
        assert_eq!(rgb.len(), 3 * 16);
        assert!(rgb[..16].iter().all(|&v| v == 1.0));
        assert!(rgb[16..32].iter().all(|&v| v == 0.0));
        assert!(rgb[32..].iter().all(|&v| (v - 0.2).abs() < 1e-6));
        let gray = image_to_pixels(&bytes, 2, 1, 100).unwrap();
        assert_eq!(gray.len(), 4);
        assert!(gray.iter().all(|&v| v > 0.0 && v < 1.0));

        let mut jpeg = Cursor::new(Vec::new());
        image::RgbImage::from_pixel(16, 16, image::Rgb([200, 200, 200]))
            .write_to(&mut jpeg, image::ImageFormat::Jpeg)
            .unwrap();
        let pixels = image_to_pixels(jpeg.get_ref(), 8, 1, 1000).unwrap();
        assert!(pixels.iter().all(|&v| (v - 200.0 / 255.0).abs() < 0.02));
    }

    #[test]
    fn bad_images_are_errors() {
        let e = image_to_pixels(b"not an image", 4, 3, 100).unwrap_err();
        assert!(matches!(e, PixelError::Undecodable(_)), "{e}");
        let e = image_to_pixels(&png(20, 10, [0; 3]), 4, 3, 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the image is 20x10 = 200 pixels, more than the limit of 100"
        );
        let e = image_to_pixels(&png(2, 2, [0; 3]), 4, 2, 100).unwrap_err();
        assert!(matches!(e, PixelError::Settings(_)), "{e}");
        let mut truncated = png(8, 8, [1, 2, 3]);
        truncated.truncate(truncated.len() / 2);
        assert!(image_to_pixels(&truncated, 4, 3, 100).is_err());
    }
}
