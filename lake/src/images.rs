//! Image folders: `root/<class>/<file>`, one sub-folder per class.

use std::collections::BTreeSet;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;

use crate::{LakeError, LakeUri, Result, open_store};

/// File extensions (lower case, without the dot) recognised as images; matching ignores case.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"];

/// One image of an image folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageItem {
    /// The image's path inside the store.
    pub location: Path,
    /// Index into [`ImageFolder::classes`].
    pub class: usize,
}

/// A listed image folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFolder {
    /// Class names (the sub-folder names), sorted; a class's index is its position here.
    pub classes: Vec<String>,
    /// The images, sorted by location.
    pub items: Vec<ImageItem>,
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
    let mut found: Vec<(Path, String)> = Vec::new();
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
            found.push((meta.location.clone(), class.clone()));
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
        .map(|(_, c)| c.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let items = found
        .into_iter()
        .map(|(location, class)| ImageItem {
            location,
            class: classes.binary_search(&class).expect("class listed above"),
        })
        .collect();
    Ok(ImageFolder { classes, items })
}
