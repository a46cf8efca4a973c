//! Where data lives: lake URIs (`file://`, plain paths, `az://`, `s3://`), object-store
//! configuration, streaming dataset readers (Parquet, CSV, JSON lines, image folders),
//! deterministic splits and shuffles, and dataset versions by content hash.

#![warn(missing_docs)]

mod error;
pub mod images;
pub mod split;
pub mod table;
pub mod uri;
pub mod version;

pub use error::LakeError;
pub use images::{
    IMAGE_EXTENSIONS, ImageFolder, ImageFolderReader, ImageItem, image_folder_schema,
    list_image_folder, list_image_folder_in, open_image_folder,
};
pub use split::{epoch_permutation, permutation, split};
pub use table::{Table, TableFormat, list_dataset_objects, open_table, open_table_in};
pub use uri::{LakeUri, open_store};
pub use version::{DatasetVersion, VersionedObject, dataset_version, schema_json};

/// The crate's result type.
pub type Result<T, E = LakeError> = std::result::Result<T, E>;
