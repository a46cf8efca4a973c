//! [`ArtifactStore`]: streaming artifact operations over `object_store`.

use std::collections::BTreeMap;
use std::io::SeekFrom;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt, ObjectStoreScheme,
    PutPayload, PutPayloadMut, WriteMultipart,
};
use reqwest::Url;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::azure::AzureContainerTarget;
use super::path::{RESERVED_SEGMENT, decode_key_part};
use super::{ArtifactError, ArtifactPath};
use crate::install_tls_provider as install_crypto_provider;

type Result<T, E = ArtifactError> = std::result::Result<T, E>;

/// Which backend an [`ArtifactStore`] writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// A directory of the local file system.
    Local,
    /// Azure Blob Storage or ADLS Gen2 (also Azurite).
    Azure,
    /// Amazon S3 or an S3-compatible server.
    S3,
    /// Process memory (tests) or a store given with [`ArtifactStore::from_object_store`].
    Other,
}

/// Size limits applied where artifact bytes enter.
#[derive(Debug, Clone)]
pub struct ArtifactLimits {
    /// Largest artifact accepted by a single `PUT` (bytes).
    pub max_artifact_bytes: u64,
    /// Largest multipart part (bytes). Parts for native multipart stores (S3, Azure) are held in
    /// memory while they are sent, so this bounds memory per concurrent part.
    pub max_part_bytes: u64,
    /// Most parts in one multipart upload.
    pub max_parts: u32,
    /// Chunk size of streamed uploads: bodies up to this size are written with one `put`, larger
    /// ones as a multipart upload of chunks this size (at least 5 MiB for S3).
    pub upload_chunk_bytes: usize,
    /// Chunks of one streamed upload sent concurrently.
    pub upload_concurrency: usize,
}

impl Default for ArtifactLimits {
    fn default() -> Self {
        Self {
            max_artifact_bytes: 100 << 30,
            max_part_bytes: 128 << 20,
            max_parts: 10_000,
            upload_chunk_bytes: 8 << 20,
            upload_concurrency: 4,
        }
    }
}

/// What a write produced.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    /// Bytes written.
    pub size: u64,
    /// The backend's entity tag, where it gives one.
    pub e_tag: Option<String>,
}

/// Metadata of one stored artifact.
#[derive(Debug, Clone)]
pub struct ArtifactMeta {
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub last_modified: SystemTime,
    /// The backend's entity tag, where it gives one.
    pub e_tag: Option<String>,
}

/// One entry of a one-level listing, in MLflow's `FileInfo` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// The entry's name relative to the listed directory (MLflow's proxy returns base names).
    pub path: String,
    /// Whether the entry is a directory (a common prefix).
    pub is_dir: bool,
    /// Size in bytes; absent for directories.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// A byte range of an HTTP `Range: bytes=...` header (a single range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last` (inclusive).
    FromTo(u64, u64),
    /// `bytes=first-`.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses a `Range` header value. Returns `None` for anything but a single `bytes` range
    /// (multiple ranges are answered with the whole artifact, as RFC 9110 allows).
    pub fn parse_header(value: &str) -> Option<Self> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let (first, last) = (first.trim(), last.trim());
        match (first.is_empty(), last.is_empty()) {
            (true, false) => Some(Self::Suffix(last.parse().ok()?)),
            (false, true) => Some(Self::From(first.parse().ok()?)),
            (false, false) => {
                let (a, b) = (first.parse().ok()?, last.parse().ok()?);
                (a <= b).then_some(Self::FromTo(a, b))
            }
            (true, true) => None,
        }
    }

    /// The half-open byte range this selects in an object of `size` bytes, or `None` when it is
    /// not satisfiable.
    pub fn resolve(self, size: u64) -> Option<Range<u64>> {
        match self {
            Self::FromTo(a, b) if a < size => Some(a..b.saturating_add(1).min(size)),
            Self::From(a) if a < size => Some(a..size),
            Self::Suffix(n) if n > 0 && size > 0 => Some(size.saturating_sub(n)..size),
            _ => None,
        }
    }
}

/// A download in progress: metadata, the selected range and the byte stream.
pub struct ArtifactDownload {
    /// The artifact's metadata (size is the whole object's).
    pub meta: ArtifactMeta,
    /// The bytes the stream yields, as a range of the whole object.
    pub range: Range<u64>,
    /// Whether a range was requested and honoured (HTTP 206).
    pub partial: bool,
    /// The bytes.
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl std::fmt::Debug for ArtifactDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactDownload")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .field("partial", &self.partial)
            .finish_non_exhaustive()
    }
}

/// One completed part of a multipart upload, as MLflow's client reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// 1-based part number.
    pub part_number: u32,
    /// The `ETag` the part upload answered with.
    pub etag: String,
}

/// Artifacts under one root location, with streaming put/get/list/delete and multipart uploads.
#[derive(Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    /// Native multipart API (S3, Azure, memory); `None` stages parts as objects (local files).
    multipart: Option<Arc<dyn MultipartStore>>,
    prefix: ObjectPath,
    kind: StoreKind,
    location: String,
    limits: ArtifactLimits,
    azure_container: Option<AzureContainerTarget>,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("kind", &self.kind)
            .field("location", &self.location)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl ArtifactStore {
    /// Opens the artifact root at `location`:
    ///
    /// - `file:///abs/dir` or a plain path (created if missing; writes are fsynced);
    /// - `az://container/prefix`, `azure://container/prefix`, `abfs[s]://container/prefix`,
    ///   `abfs[s]://fs@account.dfs.core.windows.net/prefix`, `adl://...` and
    ///   `https://account.blob.core.windows.net/container/prefix`: Azure Blob / ADLS, configured from
    ///   the `AZURE_*` environment (`AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`,
    ///   `AZURE_STORAGE_USE_EMULATOR`, `AZURITE_BLOB_STORAGE_URL`, ...) and then `options`;
    /// - `s3://bucket/prefix`: S3, configured from the `AWS_*` environment (`AWS_ENDPOINT`,
    ///   `AWS_ALLOW_HTTP`, `AWS_ACCESS_KEY_ID`, ...) and then `options`.
    ///
    /// `options` are `object_store` configuration keys of the backend (`account_name`,
    /// `access_key`, `endpoint`, `allow_http`, `use_emulator`, `region`, ...); an unknown key is
    /// an error. Local roots take no options.
    pub fn open<K, V>(location: &str, options: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        let bad = |reason: String| ArtifactError::Location {
            location: location.to_owned(),
            reason,
        };
        let options: Vec<(String, String)> = options
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.into()))
            .collect();

        let scheme = location
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase());
        let Some(scheme) = scheme else {
            if let Some(rest) = location.strip_prefix("file:") {
                return Err(bad(format!(
                    "use file:///absolute/path (three slashes), not file:{rest}"
                )));
            }
            return Self::local_with_options(location, &options);
        };
        if scheme == "file" {
            let url = Url::parse(location).map_err(|e| bad(e.to_string()))?;
            let dir = url
                .to_file_path()
                .map_err(|()| bad("not an absolute local path".into()))?;
            return Self::local_with_options(dir, &options);
        }

        install_crypto_provider();
        let url = Url::parse(location).map_err(|e| bad(e.to_string()))?;
        let unsupported = || {
            bad(format!(
                "unsupported scheme {scheme:?}; use a path, file://, az://, azure://, abfs(s)://, adl://, https://<account>.blob.core.windows.net or s3://"
            ))
        };
        let (parsed_scheme, prefix) = ObjectStoreScheme::parse(&url).map_err(|_| unsupported())?;
        match parsed_scheme {
            ObjectStoreScheme::MicrosoftAzure => {
                let mut builder = MicrosoftAzureBuilder::from_env().with_url(location);
                for (key, value) in &options {
                    let key: AzureConfigKey = key
                        .parse()
                        .map_err(|_| bad(format!("unknown Azure option {key:?}")))?;
                    builder = builder.with_config(key, value);
                }
                let target = AzureContainerTarget::from_builder(&url, &builder);
                let azure = Arc::new(builder.build().map_err(|e| bad(e.to_string()))?);
                Ok(Self {
                    store: azure.clone(),
                    multipart: Some(azure),
                    prefix,
                    kind: StoreKind::Azure,
                    location: location.to_owned(),
                    limits: ArtifactLimits::default(),
                    azure_container: target,
                })
            }
            ObjectStoreScheme::AmazonS3 => {
                let mut builder = AmazonS3Builder::from_env().with_url(location);
                for (key, value) in &options {
                    let key: AmazonS3ConfigKey = key
                        .parse()
                        .map_err(|_| bad(format!("unknown S3 option {key:?}")))?;
                    builder = builder.with_config(key, value);
                }
                let s3 = Arc::new(builder.build().map_err(|e| bad(e.to_string()))?);
                Ok(Self {
                    store: s3.clone(),
                    multipart: Some(s3),
                    prefix,
                    kind: StoreKind::S3,
                    location: location.to_owned(),
                    limits: ArtifactLimits::default(),
                    azure_container: None,
                })
            }
            _ => Err(unsupported()),
        }
    }

    /// A store rooted at a local directory (created if missing).
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::local_with_options(dir, &[])
    }

    fn local_with_options(
        dir: impl AsRef<std::path::Path>,
        options: &[(String, String)],
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let bad = |reason: String| ArtifactError::Location {
            location: dir.display().to_string(),
            reason,
        };
        if let Some((key, _)) = options.first() {
            return Err(bad(format!(
                "local artifact roots take no options (got {key:?})"
            )));
        }
        if dir.as_os_str().is_empty() {
            return Err(bad("the path is empty".into()));
        }
        let dir = std::path::absolute(dir).map_err(|e| bad(e.to_string()))?;
        std::fs::create_dir_all(&dir).map_err(|e| bad(format!("cannot create it: {e}")))?;
        let fs = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| bad(e.to_string()))?
            .with_automatic_cleanup(true)
            .with_fsync(true);
        Ok(Self {
            store: Arc::new(fs),
            multipart: None,
            prefix: ObjectPath::default(),
            kind: StoreKind::Local,
            location: format!("file://{}", dir.display()),
            limits: ArtifactLimits::default(),
            azure_container: None,
        })
    }

    /// A store in process memory (tests).
    pub fn memory() -> Self {
        let mem = Arc::new(InMemory::new());
        Self {
            store: mem.clone(),
            multipart: Some(mem),
            prefix: ObjectPath::default(),
            kind: StoreKind::Other,
            location: "memory:///".into(),
            limits: ArtifactLimits::default(),
            azure_container: None,
        }
    }

    /// A store over an existing `object_store`, below `prefix`. Without `multipart`, multipart
    /// uploads stage their parts as objects under `<prefix>/.cerulean-mpu/`.
    pub fn from_object_store(
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        multipart: Option<Arc<dyn MultipartStore>>,
    ) -> Self {
        Self {
            location: format!("{store}/{prefix}"),
            store,
            multipart,
            prefix,
            kind: StoreKind::Other,
            limits: ArtifactLimits::default(),
            azure_container: None,
        }
    }

    /// Replaces the size limits.
    pub fn with_limits(mut self, limits: ArtifactLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The size limits in force.
    pub fn limits(&self) -> &ArtifactLimits {
        &self.limits
    }

    /// The backend kind.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The root location as given (no credentials are part of it).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The underlying `object_store` and the key prefix of the root.
    pub fn object_store(&self) -> (&Arc<dyn ObjectStore>, &ObjectPath) {
        (&self.store, &self.prefix)
    }

    /// Makes sure the root can take writes: for Azure, creates the container when it is missing
    /// (needs an account key; returns whether it was created); for S3, checks that the bucket
    /// answers (buckets are not created). Local roots already exist.
    pub async fn ensure_container(&self) -> Result<bool> {
        let created = match (&self.kind, &self.azure_container) {
            (StoreKind::Azure, Some(target)) => super::create_azure_container(target).await?,
            (StoreKind::Azure, None) => {
                return Err(ArtifactError::Container {
                    container: self.location.clone(),
                    reason: "the container name could not be derived from the location".into(),
                });
            }
            _ => false,
        };
        let prefix = (!self.prefix.is_root()).then_some(&self.prefix);
        self.store
            .list_with_delimiter(prefix)
            .await
            .map_err(|e| ArtifactError::Location {
                location: self.location.clone(),
                reason: format!(
                    "the bucket or container is missing or unreachable (S3 buckets are not created by Cerulean): {e}"
                ),
            })?;
        Ok(created)
    }

    fn key(&self, path: &ArtifactPath) -> ObjectPath {
        path.to_key(&self.prefix)
    }

    /// Writes an artifact from a byte stream (an HTTP request body). Bodies up to
    /// [`ArtifactLimits::upload_chunk_bytes`] are one `put`; larger ones are streamed as a
    /// multipart upload, a bounded number of chunks in flight. Refuses bodies over
    /// [`ArtifactLimits::max_artifact_bytes`].
    pub async fn put_stream<S, E>(&self, path: &ArtifactPath, body: S) -> Result<PutOutcome>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let key = self.key(path);
        let what = format!("artifact {:?}", path.as_str());
        self.write_stream(
            &key,
            body,
            self.limits.max_artifact_bytes,
            &what,
            path.as_str(),
        )
        .await
    }

    /// Writes an artifact from bytes in memory.
    pub async fn put_bytes(&self, path: &ArtifactPath, bytes: Bytes) -> Result<PutOutcome> {
        self.put_stream(
            path,
            stream::iter([Ok::<_, std::convert::Infallible>(bytes)]),
        )
        .await
    }

    async fn write_stream<S, E>(
        &self,
        key: &ObjectPath,
        body: S,
        limit: u64,
        what: &str,
        display_path: &str,
    ) -> Result<PutOutcome>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut body = std::pin::pin!(body);
        let chunk = self.limits.upload_chunk_bytes.max(1);
        let too_large = || ArtifactError::TooLarge {
            what: what.to_owned(),
            limit,
        };

        // Phase 1: small bodies are buffered (up to one chunk) and written with one put.
        let mut head = PutPayloadMut::new();
        let mut total: u64 = 0;
        loop {
            match body.next().await {
                None => {
                    let payload = head.freeze();
                    let result = self
                        .store
                        .put(key, payload)
                        .await
                        .map_err(|e| ArtifactError::storage("writing", display_path, e))?;
                    return Ok(PutOutcome {
                        size: total,
                        e_tag: result.e_tag,
                    });
                }
                Some(Err(e)) => return Err(ArtifactError::Body(e.to_string())),
                Some(Ok(bytes)) => {
                    total += bytes.len() as u64;
                    if total > limit {
                        return Err(too_large());
                    }
                    head.push(bytes);
                    if head.content_length() >= chunk {
                        break;
                    }
                }
            }
        }

        // Phase 2: a multipart upload, a bounded number of chunks in flight.
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(|e| ArtifactError::storage("writing", display_path, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, chunk);
        for bytes in head.freeze() {
            writer.put(bytes);
        }
        let concurrency = self.limits.upload_concurrency.max(1);
        loop {
            if let Err(e) = writer.wait_for_capacity(concurrency).await {
                let _ = writer.abort().await;
                return Err(ArtifactError::storage("writing", display_path, e));
            }
            match body.next().await {
                None => break,
                Some(Err(e)) => {
                    let _ = writer.abort().await;
                    return Err(ArtifactError::Body(e.to_string()));
                }
                Some(Ok(bytes)) => {
                    total += bytes.len() as u64;
                    if total > limit {
                        let _ = writer.abort().await;
                        return Err(too_large());
                    }
                    writer.put(bytes);
                }
            }
        }
        let result = writer
            .finish()
            .await
            .map_err(|e| ArtifactError::storage("writing", display_path, e))?;
        Ok(PutOutcome {
            size: total,
            e_tag: result.e_tag,
        })
    }

    /// The artifact's metadata; [`ArtifactError::NotFound`] when there is no such file.
    pub async fn head(&self, path: &ArtifactPath) -> Result<ArtifactMeta> {
        let meta = self
            .store
            .head(&self.key(path))
            .await
            .map_err(|e| ArtifactError::storage("reading", path.as_str(), e))?;
        Ok(ArtifactMeta {
            size: meta.size,
            last_modified: SystemTime::from(meta.last_modified),
            e_tag: meta.e_tag,
        })
    }

    /// Opens an artifact for streaming, the whole of it or one byte range.
    pub async fn get(
        &self,
        path: &ArtifactPath,
        range: Option<ByteRange>,
    ) -> Result<ArtifactDownload> {
        let key = self.key(path);
        let err = |e| ArtifactError::storage("reading", path.as_str(), e);
        let (options, partial) = match range {
            None => (GetOptions::default(), false),
            Some(range) => {
                // Azure has no suffix ranges, and out-of-range requests differ by backend:
                // resolve against the size first.
                let meta = self.head(path).await?;
                let Some(resolved) = range.resolve(meta.size) else {
                    return Err(ArtifactError::RangeNotSatisfiable {
                        path: path.to_string(),
                        size: meta.size,
                    });
                };
                let options = GetOptions {
                    range: Some(GetRange::Bounded(resolved)),
                    ..Default::default()
                };
                (options, true)
            }
        };
        let result = self.store.get_opts(&key, options).await.map_err(err)?;
        let meta = ArtifactMeta {
            size: result.meta.size,
            last_modified: SystemTime::from(result.meta.last_modified),
            e_tag: result.meta.e_tag.clone(),
        };
        let range = result.range.clone();
        let display = path.to_string();
        let body = match result.payload {
            GetResultPayload::File(file, _) => file_stream(file, range.clone(), display),
            GetResultPayload::Stream(s) => s
                .map_err(move |e| ArtifactError::storage("reading", &display, e))
                .boxed(),
        };
        Ok(ArtifactDownload {
            meta,
            range,
            partial,
            body,
        })
    }

    /// Lists one level below `dir` (the root when `None`): files with their sizes and
    /// directories (common prefixes) without. Names are relative to `dir`, sorted. A missing
    /// directory, or a path that names a file, lists as empty.
    pub async fn list(&self, dir: Option<&ArtifactPath>) -> Result<Vec<FileInfo>> {
        let key = match dir {
            Some(dir) => self.key(dir),
            None => self.prefix.clone(),
        };
        let shown = dir.map_or(String::new(), |d| d.to_string());
        let listing = match self
            .store
            .list_with_delimiter((!key.is_root()).then_some(&key))
            .await
        {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(ArtifactError::storage("listing", &shown, e)),
        };
        let mut files = Vec::with_capacity(listing.common_prefixes.len() + listing.objects.len());
        for prefix in &listing.common_prefixes {
            let Some(name) = prefix.filename() else {
                continue;
            };
            let name = decode_key_part(name);
            if dir.is_none() && name == RESERVED_SEGMENT {
                continue;
            }
            files.push(FileInfo {
                path: name,
                is_dir: true,
                file_size: None,
            });
        }
        for object in &listing.objects {
            let Some(name) = object.location.filename() else {
                continue;
            };
            files.push(FileInfo {
                path: decode_key_part(name),
                is_dir: false,
                file_size: Some(object.size),
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Deletes the artifact at `path` and everything below it (a file, a directory, or both).
    /// Returns how many objects were removed; deleting nothing is not an error (as in MLflow).
    pub async fn delete(&self, path: &ArtifactPath) -> Result<u64> {
        let key = self.key(path);
        self.delete_key_and_below(&key, path.as_str()).await
    }

    async fn delete_key_and_below(&self, key: &ObjectPath, shown: &str) -> Result<u64> {
        let children: Vec<ObjectPath> = self
            .store
            .list(Some(key))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(Vec::new()),
                e => Err(ArtifactError::storage("listing", shown, e)),
            })?;
        let mut deleted = 0;
        let mut results = self
            .store
            .delete_stream(stream::iter(children.into_iter().map(Ok)).boxed());
        while let Some(result) = results.next().await {
            match result {
                Ok(_) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(ArtifactError::storage("deleting", shown, e)),
            }
        }
        match self.store.head(key).await {
            Ok(_) => match self.store.delete(key).await {
                Ok(()) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(ArtifactError::storage("deleting", shown, e)),
            },
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(ArtifactError::storage("deleting", shown, e)),
        }
        Ok(deleted)
    }

    // ---- multipart uploads ----------------------------------------------------------------

    fn staging_dir(&self, upload_id: &str) -> ObjectPath {
        self.prefix.clone().join(RESERVED_SEGMENT).join(upload_id)
    }

    fn check_part_number(&self, part_number: u32) -> Result<()> {
        if part_number == 0 || part_number > self.limits.max_parts {
            return Err(ArtifactError::InvalidParameter(format!(
                "part_number {part_number} is outside 1..={}",
                self.limits.max_parts
            )));
        }
        Ok(())
    }

    /// Staged uploads name a directory after the id, so it must be exactly a simple UUID.
    fn check_staged_id(upload_id: &str) -> Result<()> {
        if upload_id.len() == 32 && upload_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err(ArtifactError::InvalidParameter(format!(
                "upload_id {upload_id:?} is not an upload id of this server"
            )))
        }
    }

    /// Reads the staged upload's target and checks that it is `path`.
    async fn check_staged_target(&self, path: &ArtifactPath, upload_id: &str) -> Result<()> {
        Self::check_staged_id(upload_id)?;
        let marker = self.staging_dir(upload_id).join("target");
        let not_found = || ArtifactError::NotFound {
            what: "multipart upload",
            path: format!("{path} (upload_id {upload_id})"),
        };
        let target = match self.store.get(&marker).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|e| ArtifactError::storage("reading", path.as_str(), e))?,
            Err(object_store::Error::NotFound { .. }) => return Err(not_found()),
            Err(e) => return Err(ArtifactError::storage("reading", path.as_str(), e)),
        };
        if target.as_ref() != path.as_str().as_bytes() {
            return Err(not_found());
        }
        Ok(())
    }

    /// Starts a multipart upload to `path` and returns its upload id. S3 and Azure use their
    /// native multipart APIs; local roots stage parts under `.cerulean-mpu/<upload_id>/`.
    pub async fn create_multipart(&self, path: &ArtifactPath) -> Result<String> {
        match &self.multipart {
            Some(mp) => {
                let id = mp.create_multipart(&self.key(path)).await.map_err(|e| {
                    ArtifactError::storage("starting an upload to", path.as_str(), e)
                })?;
                // Azure has no upload ids (blocks belong to the blob): hand out a fresh one.
                Ok(if id.is_empty() {
                    uuid::Uuid::new_v4().simple().to_string()
                } else {
                    id
                })
            }
            None => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let marker = self.staging_dir(&id).join("target");
                self.store
                    .put(&marker, PutPayload::from(path.to_string()))
                    .await
                    .map_err(|e| {
                        ArtifactError::storage("starting an upload to", path.as_str(), e)
                    })?;
                Ok(id)
            }
        }
    }

    /// Uploads part `part_number` (1-based) of a multipart upload from a byte stream and returns
    /// the opaque `ETag` value that [`ArtifactStore::complete_multipart`] expects back. Parts are
    /// limited to [`ArtifactLimits::max_part_bytes`].
    pub async fn upload_part<S, E>(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
        part_number: u32,
        body: S,
    ) -> Result<String>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        self.check_part_number(part_number)?;
        let limit = self.limits.max_part_bytes;
        let what = format!("part {part_number} of {:?}", path.as_str());
        let content_id = match &self.multipart {
            Some(mp) => {
                let mut body = std::pin::pin!(body);
                let mut payload = PutPayloadMut::new();
                while let Some(bytes) = body.next().await {
                    let bytes = bytes.map_err(|e| ArtifactError::Body(e.to_string()))?;
                    if (payload.content_length() + bytes.len()) as u64 > limit {
                        return Err(ArtifactError::TooLarge { what, limit });
                    }
                    payload.push(bytes);
                }
                let part = mp
                    .put_part(
                        &self.key(path),
                        &upload_id.to_owned(),
                        part_number as usize - 1,
                        payload.freeze(),
                    )
                    .await
                    .map_err(|e| ArtifactError::storage("uploading a part of", path.as_str(), e))?;
                part.content_id
            }
            None => {
                self.check_staged_target(path, upload_id).await?;
                let key = self
                    .staging_dir(upload_id)
                    .join(format!("part-{part_number:05}").as_str());
                let outcome = self
                    .write_stream(&key, body, limit, &what, path.as_str())
                    .await?;
                outcome.e_tag.unwrap_or_default()
            }
        };
        Ok(encode_etag(&content_id))
    }

    /// Completes a multipart upload from the parts' numbers and `ETag`s. The parts must be
    /// exactly `1..=n`, each once.
    pub async fn complete_multipart(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<PutOutcome> {
        let mut by_number = BTreeMap::new();
        for part in parts {
            self.check_part_number(part.part_number)?;
            let content_id = decode_etag(&part.etag).ok_or_else(|| {
                ArtifactError::InvalidParameter(format!(
                    "part {} has an etag this server did not issue: {:?}",
                    part.part_number, part.etag
                ))
            })?;
            if by_number.insert(part.part_number, content_id).is_some() {
                return Err(ArtifactError::InvalidParameter(format!(
                    "part {} is listed twice",
                    part.part_number
                )));
            }
        }
        if by_number.is_empty() {
            return Err(ArtifactError::InvalidParameter(
                "a multipart upload needs at least one part".into(),
            ));
        }
        if let Some((expected, got)) = by_number
            .keys()
            .enumerate()
            .map(|(i, n)| (i as u32 + 1, *n))
            .find(|(expected, got)| expected != got)
        {
            return Err(ArtifactError::InvalidParameter(format!(
                "parts must be numbered 1..={} without gaps; part {expected} is missing (next is {got})",
                by_number.len()
            )));
        }

        let key = self.key(path);
        match &self.multipart {
            Some(mp) => {
                let parts = by_number
                    .into_values()
                    .map(|content_id| PartId { content_id })
                    .collect();
                let result = mp
                    .complete_multipart(&key, &upload_id.to_owned(), parts)
                    .await
                    .map_err(|e| match e {
                        object_store::Error::NotFound { .. } => ArtifactError::NotFound {
                            what: "multipart upload",
                            path: format!("{path} (upload_id {upload_id})"),
                        },
                        e => ArtifactError::storage("completing an upload to", path.as_str(), e),
                    })?;
                let size = self.head(path).await.map(|m| m.size).unwrap_or_default();
                Ok(PutOutcome {
                    size,
                    e_tag: result.e_tag,
                })
            }
            None => {
                self.check_staged_target(path, upload_id).await?;
                let staging = self.staging_dir(upload_id);
                // Check every part before writing anything.
                let mut part_keys = Vec::with_capacity(by_number.len());
                for (number, content_id) in &by_number {
                    let part_key = staging.clone().join(format!("part-{number:05}").as_str());
                    let meta = self.store.head(&part_key).await.map_err(|e| match e {
                        object_store::Error::NotFound { .. } => ArtifactError::InvalidParameter(
                            format!("part {number} of upload {upload_id} was never uploaded"),
                        ),
                        e => ArtifactError::storage("reading", path.as_str(), e),
                    })?;
                    if meta.e_tag.as_deref().unwrap_or_default() != content_id {
                        return Err(ArtifactError::InvalidParameter(format!(
                            "part {number}: the etag does not match the uploaded part"
                        )));
                    }
                    part_keys.push(part_key);
                }
                let concatenated = concat_objects(self.store.clone(), part_keys, path.to_string());
                let outcome = self
                    .write_stream(&key, concatenated, u64::MAX, "artifact", path.as_str())
                    .await?;
                self.delete_key_and_below(&staging, path.as_str()).await?;
                Ok(outcome)
            }
        }
    }

    /// Deletes staged multipart uploads (local roots) that were started more than `max_age` ago
    /// and never completed or aborted; returns how many were removed. Native uploads are cleaned
    /// by the backend (S3 lifecycle rules; Azure drops uncommitted blocks after a week).
    pub async fn purge_stale_uploads(&self, max_age: std::time::Duration) -> Result<u64> {
        if self.multipart.is_some() {
            return Ok(0);
        }
        let staging = self.prefix.clone().join(RESERVED_SEGMENT);
        let listing = match self.store.list_with_delimiter(Some(&staging)).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(0),
            Err(e) => return Err(ArtifactError::storage("listing", RESERVED_SEGMENT, e)),
        };
        let cutoff = SystemTime::now()
            .checked_sub(max_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut purged = 0;
        for upload in listing.common_prefixes {
            let started = match self.store.head(&upload.clone().join("target")).await {
                Ok(meta) => SystemTime::from(meta.last_modified),
                Err(object_store::Error::NotFound { .. }) => SystemTime::UNIX_EPOCH,
                Err(e) => return Err(ArtifactError::storage("reading", RESERVED_SEGMENT, e)),
            };
            if started <= cutoff {
                self.delete_key_and_below(&upload, RESERVED_SEGMENT).await?;
                purged += 1;
            }
        }
        Ok(purged)
    }

    /// Aborts a multipart upload, discarding its parts (a no-op for Azure, whose uncommitted
    /// blocks expire on their own).
    pub async fn abort_multipart(&self, path: &ArtifactPath, upload_id: &str) -> Result<()> {
        match &self.multipart {
            Some(mp) => mp
                .abort_multipart(&self.key(path), &upload_id.to_owned())
                .await
                .map_err(|e| ArtifactError::storage("aborting an upload to", path.as_str(), e)),
            None => {
                self.check_staged_target(path, upload_id).await?;
                self.delete_key_and_below(&self.staging_dir(upload_id), path.as_str())
                    .await
                    .map(drop)
            }
        }
    }
}

/// The objects at `keys`, one after the other, as one byte stream.
fn concat_objects(
    store: Arc<dyn ObjectStore>,
    keys: Vec<ObjectPath>,
    shown: String,
) -> BoxStream<'static, Result<Bytes>> {
    stream::iter(keys)
        .then(move |key| {
            let store = store.clone();
            let shown = shown.clone();
            async move {
                match store.get(&key).await {
                    Ok(result) => {
                        let body: BoxStream<'static, Result<Bytes>> = result
                            .into_stream()
                            .map_err(move |e| ArtifactError::storage("reading", &shown, e))
                            .boxed();
                        Ok(body)
                    }
                    Err(e) => Err(ArtifactError::storage("reading", &shown, e)),
                }
            }
        })
        .try_flatten()
        .boxed()
}

/// The `ETag` we hand out for a part: the backend's part id, base64url, quoted (always a valid
/// header value, whatever the backend's id looks like).
fn encode_etag(content_id: &str) -> String {
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(content_id))
}

fn decode_etag(etag: &str) -> Option<String> {
    let etag = etag.trim();
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    let inner = etag
        .strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(etag);
    String::from_utf8(URL_SAFE_NO_PAD.decode(inner).ok()?).ok()
}

/// Streams a byte range of a local file in 256 KiB chunks (object_store's own reader uses 8 KiB).
fn file_stream(
    file: std::fs::File,
    range: Range<u64>,
    shown: String,
) -> BoxStream<'static, Result<Bytes>> {
    const CHUNK: u64 = 256 * 1024;
    let io_err = move |e: std::io::Error| ArtifactError::Storage {
        action: "reading",
        path: shown.clone(),
        source: object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        },
    };
    let state = (
        tokio::fs::File::from_std(file),
        range.start,
        range.end,
        false,
    );
    stream::try_unfold(state, move |(mut file, pos, end, seeked)| {
        let io_err = io_err.clone();
        async move {
            if pos >= end {
                return Ok(None);
            }
            if !seeked {
                file.seek(SeekFrom::Start(pos)).await.map_err(&io_err)?;
            }
            let want = (end - pos).min(CHUNK) as usize;
            let mut buf = BytesMut::with_capacity(want);
            while buf.len() < want {
                let n = (&mut file)
                    .take((want - buf.len()) as u64)
                    .read_buf(&mut buf)
                    .await
                    .map_err(&io_err)?;
                if n == 0 {
                    return Err(io_err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file became shorter while it was read",
                    )));
                }
            }
            let len = buf.len() as u64;
            Ok(Some((buf.freeze(), (file, pos + len, end, true))))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers_parse_and_resolve() {
        assert_eq!(
            ByteRange::parse_header("bytes=0-9"),
            Some(ByteRange::FromTo(0, 9))
        );
        assert_eq!(
            ByteRange::parse_header("bytes=5-"),
            Some(ByteRange::From(5))
        );
        assert_eq!(
            ByteRange::parse_header("bytes=-3"),
            Some(ByteRange::Suffix(3))
        );
        assert_eq!(ByteRange::parse_header("bytes=9-0"), None);
        assert_eq!(ByteRange::parse_header("bytes=0-1,4-5"), None);
        assert_eq!(ByteRange::parse_header("items=0-1"), None);
        assert_eq!(ByteRange::parse_header("bytes=-"), None);
        assert_eq!(ByteRange::FromTo(0, 9).resolve(5), Some(0..5));
        assert_eq!(ByteRange::FromTo(2, 3).resolve(5), Some(2..4));
        assert_eq!(ByteRange::From(5).resolve(5), None);
        assert_eq!(ByteRange::Suffix(3).resolve(10), Some(7..10));
        assert_eq!(ByteRange::Suffix(30).resolve(10), Some(0..10));
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
        assert_eq!(ByteRange::Suffix(1).resolve(0), None);
    }

    #[test]
    fn etags_round_trip() {
        for id in [
            "\"abc\"",
            "",
            "AAAAAAAAAAAAAAAAAAAA",
            "with \"quotes\" and / + =",
        ] {
            let etag = encode_etag(id);
            assert!(etag.starts_with('"') && etag.ends_with('"'));
            assert!(http::HeaderValue::from_str(&etag).is_ok());
            assert_eq!(decode_etag(&etag).as_deref(), Some(id));
        }
        assert_eq!(decode_etag("\"not base64!\""), None);
    }

    #[tokio::test]
    async fn memory_store_round_trip() {
        let store = ArtifactStore::memory();
        let path = ArtifactPath::parse("a/b.txt").unwrap();
        store
            .put_bytes(&path, Bytes::from_static(b"hello"))
            .await
            .unwrap();
        let got = store.get(&path, None).await.unwrap();
        let bytes: Vec<Bytes> = got.body.try_collect().await.unwrap();
        assert_eq!(bytes.concat(), b"hello");
        let listed = store.list(None).await.unwrap();
        assert_eq!(
            listed,
            vec![FileInfo {
                path: "a".into(),
                is_dir: true,
                file_size: None
            }]
        );
    }
}
