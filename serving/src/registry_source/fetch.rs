//! Model files of registered versions, fetched through the registry's artifact proxy into a local
//! cache: `CACHE/<model>/<version>/`.
//!
//! A version folder is complete when its stamp file holds the registry's URL and the artifact path it
//! was fetched from; a complete folder is never fetched again. Files are fetched into a staging
//! folder beside it (each file's size checked against the listing), stamped, and renamed into place
//! in one step, so that a folder in place is always complete.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cerulean_registry::client::RegistryClient;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::FollowError;

/// The file in a version folder that records where it was fetched from.
const STAMP: &str = ".cerulean-source";
/// Most files fetched for one version.
const MAX_FILES: usize = 10_000;
/// Deepest folder nesting fetched for one version.
const MAX_DEPTH: usize = 16;
/// Largest `MLmodel` file read to name an unservable model's flavors.
const MAX_MLMODEL_BYTES: usize = 1 << 20;
/// Longest wait for one registry call or one chunk of a download.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// One file of a version's artifacts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RemoteFile {
    /// Its path below the version's artifact folder, `/`-separated.
    relative: String,
    /// Its size as listed, when listed.
    size: Option<u64>,
}

/// Fetches versions' files into the cache.
#[derive(Debug, Clone)]
pub(super) struct Fetcher {
    client: RegistryClient,
    cache_dir: PathBuf,
}

impl Fetcher {
    /// A fetcher from `client`'s registry into `cache_dir`.
    pub(super) fn new(client: RegistryClient, cache_dir: PathBuf) -> Fetcher {
        Fetcher { client, cache_dir }
    }

    /// The cache folder of a model.
    pub(super) fn model_dir(&self, name: &str) -> PathBuf {
        self.cache_dir.join(folder_name(name))
    }

    /// The cache folder of a version.
    pub(super) fn version_dir(&self, name: &str, version: u64) -> PathBuf {
        self.model_dir(name).join(version.to_string())
    }

    /// The folder holding the files of version `version` of `name`, fetched when not cached yet.
    pub(super) async fn materialize(
        &self,
        name: &str,
        version: u64,
    ) -> Result<PathBuf, FollowError> {
        let uri = within(
            "asking where the version's files are",
            self.client
                .get_model_version_download_uri(name, &version.to_string()),
        )
        .await??;
        let root = self.artifact_path(&uri).await?;
        let dir = self.version_dir(name, version);
        let stamp = format!("{}\n{root}\n", self.client.base_url());
        if tokio::fs::read_to_string(dir.join(STAMP))
            .await
            .ok()
            .as_deref()
            == Some(&stamp)
        {
            return Ok(dir);
        }
        let files = self.list_files(&root).await?;
        self.check_servable(&uri, &root, &files).await?;
        let staging = self.model_dir(name).join(format!(
            ".staging-{version}-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let fetched = self.fetch_into(&root, &files, &staging, &stamp).await;
        let placed = match fetched {
            Ok(()) => place(&staging, &dir, &stamp).await,
            Err(err) => Err(err),
        };
        if tokio::fs::metadata(&staging).await.is_ok() {
            let _ = tokio::fs::remove_dir_all(&staging).await;
        }
        placed.map(|()| dir)
    }

    /// Removes a model's cached files (or one version's).
    pub(super) async fn forget(&self, name: &str, version: Option<u64>) {
        let dir = match version {
            Some(v) => self.version_dir(name, v),
            None => self.model_dir(name),
        };
        if let Err(err) = tokio::fs::remove_dir_all(&dir).await
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %err, "cannot remove cached model files");
        }
    }

    /// The artifact-proxy path of a download URI: `mlflow-artifacts:/PATH`, `runs:/RUN/PATH` (the
    /// run's artifact location, which must itself be in the proxy) or an HTTP URL of the proxy.
    async fn artifact_path(&self, uri: &str) -> Result<String, FollowError> {
        if let Some(rest) = uri.strip_prefix("runs:") {
            let rest = rest.trim_start_matches('/');
            let (run_id, relative) = rest.split_once('/').unwrap_or((rest, ""));
            if run_id.is_empty() {
                return Err(FollowError::Unservable(format!(
                    "source '{uri}' names no run"
                )));
            }
            let run = within("reading the source run", self.client.get_run(run_id)).await??;
            let root = proxy_path(&run.info.artifact_uri).ok_or_else(|| outside_proxy(uri))?;
            return Ok(join(&root, relative.trim_matches('/')));
        }
        proxy_path(uri).ok_or_else(|| outside_proxy(uri))
    }

    /// Every file below `root`, recursively.
    async fn list_files(&self, root: &str) -> Result<Vec<RemoteFile>, FollowError> {
        let mut files = Vec::new();
        let mut pending = vec![(String::new(), 0usize)];
        while let Some((relative, depth)) = pending.pop() {
            let listing = within(
                "listing the version's files",
                self.client.list_artifacts(&join(root, &relative)),
            )
            .await??;
            for (path, is_dir, size) in listing {
                let name = path.rsplit('/').next().unwrap_or_default();
                check_segment(name)?;
                let child = join(&relative, name);
                if is_dir {
                    if depth + 1 >= MAX_DEPTH {
                        return Err(FollowError::Unservable(format!(
                            "the model's files nest deeper than {MAX_DEPTH} folders"
                        )));
                    }
                    pending.push((child, depth + 1));
                } else {
                    files.push(RemoteFile {
                        relative: child,
                        size,
                    });
                }
                if files.len() + pending.len() > MAX_FILES {
                    return Err(FollowError::Unservable(format!(
                        "the model has more than {MAX_FILES} files"
                    )));
                }
            }
        }
        files.sort_by(|a, b| a.relative.cmp(&b.relative));
        Ok(files)
    }

    /// An error naming why a version cannot be served when its folder holds neither `model.onnx`
    /// nor `model.safetensors` with `model.json` (an MLflow Python model, typically).
    async fn check_servable(
        &self,
        uri: &str,
        root: &str,
        files: &[RemoteFile],
    ) -> Result<(), FollowError> {
        let has = |name: &str| files.iter().any(|f| f.relative == name);
        if has("model.onnx") || (has("model.safetensors") && has("model.json")) {
            return Ok(());
        }
        if has("MLmodel") {
            let flavors = match self.read_small(&join(root, "MLmodel")).await {
                Ok(text) => mlmodel_flavors(&text),
                Err(_) => Vec::new(),
            };
            let flavors = if flavors.is_empty() {
                String::new()
            } else {
                format!(" (flavors: {})", flavors.join(", "))
            };
            return Err(FollowError::Unservable(format!(
                "{uri} is an MLflow model{flavors} without model.onnx or model.safetensors + \
                 model.json: Python (pyfunc) models cannot be served by Cerulean; log the model \
                 as ONNX or train it with Cerulean"
            )));
        }
        let found: Vec<&str> = files.iter().take(10).map(|f| f.relative.as_str()).collect();
        Err(FollowError::Unservable(format!(
            "no model.onnx, and no model.safetensors with model.json, at {uri} (found: {})",
            if found.is_empty() {
                "no files".to_string()
            } else {
                found.join(", ")
            }
        )))
    }

    /// A small artifact's text.
    async fn read_small(&self, path: &str) -> Result<String, FollowError> {
        let mut stream = within("downloading", self.client.download_artifact(path)).await??;
        let mut bytes = Vec::new();
        while let Some(chunk) = within("downloading", stream.next()).await? {
            bytes.extend_from_slice(&chunk?);
            if bytes.len() > MAX_MLMODEL_BYTES {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Downloads every file into `staging` and writes the stamp.
    async fn fetch_into(
        &self,
        root: &str,
        files: &[RemoteFile],
        staging: &Path,
        stamp: &str,
    ) -> Result<(), FollowError> {
        for file in files {
            let target = file
                .relative
                .split('/')
                .fold(staging.to_path_buf(), |p, s| p.join(s));
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| FollowError::io("creating", parent, e))?;
            }
            self.download(&join(root, &file.relative), &target, file.size)
                .await?;
        }
        tokio::fs::write(staging.join(STAMP), stamp)
            .await
            .map_err(|e| FollowError::io("writing", &staging.join(STAMP), e))
    }

    /// Downloads one artifact to `target`, checking its size when the listing gave one.
    async fn download(
        &self,
        path: &str,
        target: &Path,
        size: Option<u64>,
    ) -> Result<(), FollowError> {
        let mut stream = within("downloading", self.client.download_artifact(path)).await??;
        let mut out = tokio::fs::File::create(target)
            .await
            .map_err(|e| FollowError::io("creating", target, e))?;
        let mut written = 0u64;
        while let Some(chunk) = within("downloading", stream.next()).await? {
            let chunk = chunk?;
            written += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .map_err(|e| FollowError::io("writing", target, e))?;
        }
        out.flush()
            .await
            .map_err(|e| FollowError::io("writing", target, e))?;
        match size {
            Some(expected) if expected != written => Err(FollowError::Incomplete(format!(
                "{path}: received {written} of {expected} bytes"
            ))),
            _ => Ok(()),
        }
    }
}

/// Moves a complete staging folder to `dir`, replacing a stale folder there. Another process that
/// placed the same files first is fine.
async fn place(staging: &Path, dir: &Path, stamp: &str) -> Result<(), FollowError> {
    if tokio::fs::metadata(dir).await.is_ok() {
        tokio::fs::remove_dir_all(dir)
            .await
            .map_err(|e| FollowError::io("replacing", dir, e))?;
    }
    match tokio::fs::rename(staging, dir).await {
        Ok(()) => Ok(()),
        Err(_)
            if tokio::fs::read_to_string(dir.join(STAMP))
                .await
                .ok()
                .as_deref()
                == Some(stamp) =>
        {
            Ok(())
        }
        Err(e) => Err(FollowError::io("moving into place", dir, e)),
    }
}

/// Runs a registry call, failing when it takes longer than [`CALL_TIMEOUT`].
async fn within<T>(
    what: &str,
    call: impl std::future::Future<Output = T>,
) -> Result<T, FollowError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| FollowError::Incomplete(format!("{what}: no answer within {CALL_TIMEOUT:?}")))
}

/// The artifact-proxy path of an `mlflow-artifacts:` URI or of an HTTP URL of the proxy.
fn proxy_path(uri: &str) -> Option<String> {
    let path = if uri.starts_with("mlflow-artifacts:") {
        match cerulean_registry::service::artifact_path_of_uri(uri) {
            Ok(Some(Some(path))) => path.as_str().to_string(),
            _ => return None,
        }
    } else if uri.starts_with("http://") || uri.starts_with("https://") {
        let (_, path) = uri.split_once("/api/2.0/mlflow-artifacts/artifacts/")?;
        path.split(['?', '#']).next()?.trim_matches('/').to_string()
    } else {
        return None;
    };
    (!path.is_empty() && path.split('/').all(|s| check_segment(s).is_ok())).then_some(path)
}

fn outside_proxy(uri: &str) -> FollowError {
    FollowError::Unservable(format!(
        "source '{uri}' is not in the registry's artifact store: Cerulean fetches registered models \
         through the registry's artifact proxy (mlflow-artifacts:/..., runs:/..., models:/...)"
    ))
}

/// `a/b`, or either alone when the other is empty.
fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// Refuses a path segment that is not a plain file or folder name.
fn check_segment(segment: &str) -> Result<(), FollowError> {
    let plain = !segment.is_empty()
        && segment != "."
        && segment != ".."
        && !segment
            .chars()
            .any(|c| c.is_control() || matches!(c, '/' | '\\' | '?' | '#' | '%'));
    if plain {
        Ok(())
    } else {
        Err(FollowError::Unservable(format!(
            "artifact name {segment:?} is not a plain file name"
        )))
    }
}

/// A model name as one folder name: ASCII letters, digits, `-`, `_` and `.` kept (a leading `.`
/// escaped), every other byte as `%XX`.
fn folder_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, byte) in name.bytes().enumerate() {
        let keep =
            byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_') || (byte == b'.' && i > 0);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The flavor names of an `MLmodel` file (the keys of its `flavors:` mapping).
fn mlmodel_flavors(text: &str) -> Vec<String> {
    let mut flavors = Vec::new();
    let mut inside = false;
    let mut indent = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let depth = line.len() - line.trim_start().len();
        if depth == 0 {
            inside = line.trim_end() == "flavors:";
            indent = None;
            continue;
        }
        if !inside {
            continue;
        }
        let expected = *indent.get_or_insert(depth);
        if depth == expected
            && let Some((key, _)) = line.trim().split_once(':')
        {
            flavors.push(key.trim().to_string());
        }
    }
    flavors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_paths_of_uris() {
        assert_eq!(
            proxy_path("mlflow-artifacts:/1/abc/artifacts/model").as_deref(),
            Some("1/abc/artifacts/model")
        );
        assert_eq!(
            proxy_path("http://h:8080/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/m/")
                .as_deref(),
            Some("1/r/artifacts/m")
        );
        assert_eq!(proxy_path("mlflow-artifacts:/1/../etc"), None);
        assert_eq!(proxy_path("mlflow-artifacts:/"), None);
        assert_eq!(proxy_path("s3://bucket/model"), None);
        assert_eq!(proxy_path("/data/models/m"), None);
    }

    #[test]
    fn folder_names_are_safe() {
        assert_eq!(folder_name("fraud-model_v2.1"), "fraud-model_v2.1");
        assert_eq!(folder_name("team/model"), "team%2Fmodel");
        assert_eq!(folder_name(".."), "%2E.");
        assert_eq!(folder_name("naïve"), "na%C3%AFve");
    }

    #[test]
    fn segments_must_be_plain_names() {
        for bad in ["", ".", "..", "a/b", "a\\b", "x?y", "%2e", "a\u{0}"] {
            assert!(check_segment(bad).is_err(), "{bad:?}");
        }
        assert!(check_segment("model.safetensors").is_ok());
    }

    #[test]
    fn flavors_are_read_from_mlmodel() {
        let text = "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n    python_version: 3.11\n  sklearn:\n    pickled_model: model.pkl\nmlflow_version: 2.19.0\n";
        assert_eq!(mlmodel_flavors(text), vec!["python_function", "sklearn"]);
        assert!(mlmodel_flavors("run_id: x\n").is_empty());
    }
}
