//! Image-folder datasets: `root/<class>/<image>` read through the lake's object store (so
//! `file://`, `az://` and `s3://` folders work alike) into a [`LoadedDataset`] whose
//! [`ImageSet`] holds each image's encoded bytes and whose label is the class (sub-folder) name.
//!
//! Decoding happens per trial in [`decode_images`] (the image size and channels are model
//! settings, and may be swept), with the same function the serving backend uses for encoded
//! inputs, so training and serving see identical pixels.
//!
//! Memory: everything is held in memory. The encoded images may total at most
//! [`MAX_ENCODED_BYTES`] (checked from the listing, before anything is fetched), and the decoded
//! dataset (`images x channels x size x size` F32 values) at most [`MAX_DECODED_BYTES`]
//! (checked before decoding); larger datasets are refused with an error naming the limit.

use cerulean_lake::{LakeUri, open_image_folder};
use cerulean_serving::backend::candle::pixels::{DEFAULT_MAX_PIXELS, image_to_pixels};
use futures::TryStreamExt;

use crate::data::{LabelColumn, LabelValues, LoadedDataset};
use crate::error::{Result, TrainError};
use crate::spec::DatasetSpec;

/// The most encoded image bytes an image-folder dataset may hold (2 GiB).
pub const MAX_ENCODED_BYTES: u64 = 2 << 30;
/// The most bytes the decoded, resized images may take as F32 pixels (2 GiB).
pub const MAX_DECODED_BYTES: u64 = 2 << 30;
/// Images fetched from the store at a time.
const FETCH_CONCURRENCY: usize = 16;
/// The label column's name in an image-folder dataset.
pub const LABEL_NAME: &str = "label";

/// The images of an image-folder dataset, in the lake's listing order (by path).
#[derive(Clone, Default)]
pub struct ImageSet {
    /// Each image's path inside its store (for error messages).
    pub paths: Vec<String>,
    /// Each image's encoded bytes (PNG or JPEG).
    pub encoded: Vec<Vec<u8>>,
}

impl std::fmt::Debug for ImageSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageSet")
            .field("images", &self.paths.len())
            .field("bytes", &self.encoded.iter().map(Vec::len).sum::<usize>())
            .finish()
    }
}

/// Reads the image folder `spec` names: lists it, refuses it above [`MAX_ENCODED_BYTES`], and
/// fetches every image. The dataset's label is each image's class name; its version is the
/// lake's image-folder version (paths, sizes, entity tags).
pub async fn load_image_folder(spec: &DatasetSpec) -> Result<LoadedDataset> {
    let uri =
        LakeUri::parse(&spec.uri).map_err(|e| TrainError::spec("dataset.uri", e.to_string()))?;
    let reader = open_image_folder(&uri).await?;
    let total = reader.total_bytes();
    if total > MAX_ENCODED_BYTES {
        return Err(TrainError::data(format!(
            "{} holds {total} bytes of images, more than the {MAX_ENCODED_BYTES} bytes this \
             trainer loads into memory",
            spec.uri
        )));
    }
    let folder = reader.folder();
    let n = folder.items.len();
    let mut encoded: Vec<Vec<u8>> = vec![Vec::new(); n];
    let mut stream = std::pin::pin!(reader.read(FETCH_CONCURRENCY));
    while let Some((i, bytes)) = stream.try_next().await? {
        encoded[i] = Vec::from(bytes);
    }
    let labels = folder
        .items
        .iter()
        .map(|item| folder.classes[item.class].clone())
        .collect();
    Ok(LoadedDataset {
        uri: spec.uri.clone(),
        version: folder.version.clone(),
        rows: n,
        feature_names: Vec::new(),
        features: Vec::new(),
        label: LabelColumn {
            name: LABEL_NAME.to_owned(),
            data_type: "Utf8".to_owned(),
            values: LabelValues::Categorical(labels),
        },
        text: None,
        images: Some(ImageSet {
            paths: folder
                .items
                .iter()
                .map(|i| i.location.to_string())
                .collect(),
            encoded,
        }),
    })
}

/// Decodes the images `rows` of `images` to `channels x size x size` pixels in `[0, 1]` each
/// (channels first, rows in the given order), on every available core. Fails, naming the image,
/// when one cannot be decoded, and before decoding when the result would exceed
/// [`MAX_DECODED_BYTES`].
pub fn decode_images(
    images: &ImageSet,
    rows: &[usize],
    size: usize,
    channels: usize,
) -> Result<Vec<f32>> {
    let per_image = channels * size * size;
    let bytes = (rows.len() as u64).saturating_mul(per_image as u64 * 4);
    if bytes > MAX_DECODED_BYTES {
        return Err(TrainError::data(format!(
            "{} images of {channels}x{size}x{size} take {bytes} bytes decoded, more than the \
             {MAX_DECODED_BYTES} bytes this trainer holds in memory; use a smaller \
             model.image_size or fewer images",
            rows.len()
        )));
    }
    let mut out = vec![0.0f32; rows.len() * per_image];
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(rows.len().max(1));
    let per_thread = rows.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = out
            .chunks_mut(per_thread * per_image.max(1))
            .zip(rows.chunks(per_thread))
            .map(|(dst, rows)| {
                scope.spawn(move || -> Result<()> {
                    for (slot, &r) in dst.chunks_mut(per_image.max(1)).zip(rows) {
                        let encoded = images.encoded.get(r).ok_or_else(|| {
                            TrainError::Internal(format!("image row {r} out of range"))
                        })?;
                        let pixels = image_to_pixels(encoded, size, channels, DEFAULT_MAX_PIXELS)
                            .map_err(|e| {
                            TrainError::data(format!(
                                "image {}: {e}",
                                images.paths.get(r).map_or("?", String::as_str)
                            ))
                        })?;
                        slot.copy_from_slice(&pixels);
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .map_err(|_| TrainError::Internal("an image-decoding thread panicked".into()))?
        })
    })?;
    Ok(out)
}
