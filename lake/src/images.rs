//! Image folders: `root/<class>/<file>`, one sub-folder per class: listing
//! ([`list_image_folder`]), with a [`DatasetVersion`] over the images' paths, sizes and entity
//! tags, and reading the images' bytes through the object store ([`open_image_folder`]), so
//! `file://`, `az://` and `s3://` folders read alike.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::{DatasetVersion, LakeError, LakeUri, Result, open_store};

/// File extensions (lower case, without the dot) recognised as images; matching ignores case.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"];

/// One image of an image folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageItem {
    /// The image's path inside the store.
    pub location: Path,
    /// Index into [`ImageFolder::classes`].
    pub class: usize,
    /// The object's size in bytes.
    pub size: u64,
}

/// A listed image folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFolder {
    /// Class names (the sub-folder names), sorted; a class's index is its position here.
    pub classes: Vec<String>,
    /// The images, sorted by location.
    pub items: Vec<ImageItem>,
    /// The folder's version: a content hash over the images' paths, sizes and entity tags (see
    /// [`image_folder_schema`] for the schema it is recorded with).
    pub version: DatasetVersion,
}

/// The schema an image folder's [`DatasetVersion`] records: one row per image, its encoded
/// bytes (`image`) and its class (`label`, the sub-folder's name).
pub fn image_folder_schema() -> Schema {
    Schema::new(vec![
        Field::new("image", DataType::Binary, false),
        Field::new("label", DataType::Utf8, false),
    ])
}

/// An image folder opened for reading: its listing and the store holding the images.
pub struct ImageFolderReader {
    store: Arc<dyn ObjectStore>,
    folder: ImageFolder,
}

impl std::fmt::Debug for ImageFolderReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageFolderReader")
            .field("folder", &self.folder)
            .finish_non_exhaustive()
    }
}

impl ImageFolderReader {
    /// The listing.
    pub fn folder(&self) -> &ImageFolder {
        &self.folder
    }

    /// The images' total size in bytes (encoded).
    pub fn total_bytes(&self) -> u64 {
        self.folder.items.iter().map(|i| i.size).sum()
    }

    /// The images' bytes, in listing order, as `(index into items, bytes)`, fetching up to
    /// `concurrency` objects at a time (at least one).
    pub fn read(&self, concurrency: usize) -> impl Stream<Item = Result<(usize, Bytes)>> + '_ {
        futures::stream::iter(self.folder.items.iter().enumerate())
            .map(move |(i, item)| async move {
                let bytes = self.store.get(&item.location).await?.bytes().await?;
                Ok((i, bytes))
            })
            .buffered(concurrency.max(1))
    }
}

/// Lists the image folder at `uri` (see [`list_image_folder`]) and keeps its store open for
/// reading the images.
pub async fn open_image_folder(uri: &LakeUri) -> Result<ImageFolderReader> {
    let (store, root) = open_store(uri)?;
    let folder = list_image_folder_in(store.as_ref(), &root, &uri.to_string()).await?;
    Ok(ImageFolderReader { store, folder })
}

/// Lists the image folder at `uri`: every object `root/<class>/<file>` whose extension is in
/// [`IMAGE_EXTENSIONS`]. Objects directly under the root, deeper than one sub-folder, with other
/// extensions, or whose names start with `.` are ignored. Classes are the sub-folders holding at
/// least one image, sorted by name.
pub async fn list_image_folder(uri: &LakeUri) -> Result<ImageFolder> {
    let (store, root) = open_store(uri)?;
    list_image_folder_in(store.as_ref(), &root, &uri.to_string()).await
}

/// [`list_image_folder`] over an already opened store; `uri` is used in error messages.
pub async fn list_image_folder_in(
    store: &dyn ObjectStore,
    root: &Path,
    uri: &str,
) -> Result<ImageFolder> {
    let prefix = (!root.as_ref().is_empty()).then_some(root);
    let objects: Vec<_> = store.list(prefix).try_collect().await?;
    let mut found: Vec<(Path, String, u64)> = Vec::new();
    let mut metas = Vec::new();
    for meta in objects {
        let Some(parts) = meta.location.prefix_match(root) else {
            continue;
        };
        let parts: Vec<String> = parts.map(|p| p.as_ref().to_owned()).collect();
        let [class, file] = parts.as_slice() else {
            continue;
        };
        let is_image = !file.starts_with('.')
            && !class.starts_with('.')
            && file.rsplit_once('.').is_some_and(|(_, ext)| {
                IMAGE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext))
            });
        if is_image {
            found.push((meta.location.clone(), class.clone(), meta.size));
            metas.push(meta);
        }
    }
    if found.is_empty() {
        return Err(LakeError::Empty {
            uri: uri.to_owned(),
            what: "images in class sub-folders (root/<class>/<image>)".into(),
        });
    }
    let classes: Vec<String> = found
        .iter()
        .map(|(_, c, _)| c.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let items: Vec<ImageItem> = found
        .into_iter()
        .map(|(location, class, size)| ImageItem {
            location,
            class: classes.binary_search(&class).unwrap_or_default(),
            size,
        })
        .collect();
    let version = DatasetVersion::from_parts(&metas, &image_folder_schema(), items.len() as u64);
    Ok(ImageFolder {
        classes,
        items,
        version,
    })
}
