//! Axum routes of MLflow's artifact proxy over an [`ArtifactStore`], all streaming.
//!
//! Under both `/api/2.0/mlflow-artifacts` and `/ajax-api/2.0/mlflow-artifacts`:
//!
//! | method and path | what |
//! |---|---|
//! | `GET /artifacts/{path}` | download (HTTP `Range` supported), `HEAD` too |
//! | `PUT /artifacts/{path}` | upload the raw body → `{}` |
//! | `DELETE /artifacts/{path}` | delete a file or a whole directory → `{}` |
//! | `GET /artifacts?path=dir` | list one level → `{"files":[{"path","is_dir","file_size"}]}` |
//! | `POST /mpu/create/{dir}` | `{path, num_parts}` → `{upload_id, credentials:[{url, part_number, headers}]}` |
//! | `PUT /mpu/part/{file}?upload_id&part_number&expires&signature` | one part (Cerulean's part URLs) → `ETag` |
//! | `POST /mpu/complete/{dir}` | `{path, upload_id, parts:[{part_number, etag}]}` → `{}` |
//! | `POST /mpu/abort/{dir}` | `{path, upload_id}` → `{}` |
//! | `GET /presigned/{path}` | `{url, headers, file_size}`: a URL of our own `GET` (ranged downloads) |
//!
//! Errors are MLflow's `{"error_code": "...", "message": "..."}` with the matching status.
//!
//! The multipart `create` answers with part URLs that point back at this server: MLflow's client
//! `PUT`s each part there with plain `requests.put` and no credentials, so each URL carries an
//! expiry and an HMAC signature (keyed by [`ArtifactHttpConfig::part_url_secret`]) that the part
//! route checks instead. An authentication layer in front of this router should let
//! `/mpu/part/` through for that reason.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    LAST_MODIFIED, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::path::percent_encode_segment;
use super::{ArtifactError, ArtifactMeta, ArtifactPath, ArtifactStore, ByteRange, CompletedPart};

/// Settings of the artifact routes.
#[derive(Clone)]
pub struct ArtifactHttpConfig {
    /// The externally visible base URL of this server (e.g. `https://mlflow.example.com/prefix`),
    /// used to build multipart part URLs and presigned download URLs. When `None`, it is taken
    /// from `X-Forwarded-Proto`/`X-Forwarded-Host` or the `Host` header of the request.
    pub public_base_url: Option<String>,
    /// Key of the HMAC that signs part URLs. Every replica behind one address needs the same key;
    /// the default is random per process.
    pub part_url_secret: Arc<[u8]>,
    /// How long part URLs stay valid.
    pub part_url_ttl: Duration,
}

impl Default for ArtifactHttpConfig {
    fn default() -> Self {
        let secret: [u8; 32] = rand::random();
        Self {
            public_base_url: None,
            part_url_secret: Arc::from(secret.as_slice()),
            part_url_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

impl std::fmt::Debug for ArtifactHttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactHttpConfig")
            .field("public_base_url", &self.public_base_url)
            .field("part_url_secret", &"<redacted>")
            .field("part_url_ttl", &self.part_url_ttl)
            .finish()
    }
}

struct Shared {
    store: Arc<ArtifactStore>,
    config: ArtifactHttpConfig,
}

type St = State<Arc<Shared>>;
type HttpResult<T> = Result<T, ArtifactError>;

/// The route prefixes MLflow serves the artifact proxy under.
pub const PREFIXES: [&str; 2] = [
    "/api/2.0/mlflow-artifacts",
    "/ajax-api/2.0/mlflow-artifacts",
];

/// The MLflow artifact proxy routes over `store` (see the module documentation). Merge the
/// returned router into the server's.
pub fn router(store: Arc<ArtifactStore>, config: ArtifactHttpConfig) -> Router {
    let shared = Arc::new(Shared { store, config });
    let mut router = Router::new();
    for base in PREFIXES {
        router = router
            .route(&format!("{base}/artifacts"), get(list))
            .route(
                &format!("{base}/artifacts/{{*path}}"),
                get(download).head(head).put(upload).delete(delete),
            )
            .route(&format!("{base}/mpu/create/{{*path}}"), post(mpu_create))
            .route(
                &format!("{base}/mpu/complete/{{*path}}"),
                post(mpu_complete),
            )
            .route(&format!("{base}/mpu/abort/{{*path}}"), post(mpu_abort))
            .route(&format!("{base}/mpu/part/{{*path}}"), put(mpu_part))
            .route(&format!("{base}/presigned/{{*path}}"), get(presigned));
    }
    router.with_state(shared)
}

impl IntoResponse for ArtifactError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "artifact request failed");
        } else {
            tracing::debug!(error = %self, "artifact request refused");
        }
        let body = json!({"error_code": self.error_code(), "message": self.public_message()});
        let mut response = (status, Json(body)).into_response();
        if let Self::RangeNotSatisfiable { size, .. } = self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            response.headers_mut().insert(CONTENT_RANGE, v);
        }
        response
    }
}

/// The artifact path in the raw (undecoded) request path after `marker`, validated.
fn path_from_uri(uri: &Uri, marker: &str) -> HttpResult<ArtifactPath> {
    let raw = uri.path();
    let tail = raw
        .find(marker)
        .map(|i| &raw[i + marker.len()..])
        .unwrap_or_default();
    ArtifactPath::from_url_path(tail)
}

fn check_declared_length(headers: &HeaderMap, limit: u64, what: &str) -> HttpResult<()> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => Err(ArtifactError::TooLarge {
            what: what.to_owned(),
            limit,
        }),
        _ => Ok(()),
    }
}

fn json_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> HttpResult<T> {
    let body = body.map_err(|e| ArtifactError::InvalidParameter(e.body_text()))?;
    let body: &[u8] = if body.is_empty() { b"{}" } else { &body };
    serde_json::from_slice(body)
        .map_err(|e| ArtifactError::InvalidParameter(format!("malformed JSON request body: {e}")))
}

fn missing(name: &str) -> ArtifactError {
    ArtifactError::InvalidParameter(format!("Missing value for required parameter '{name}'"))
}

/// An integer that may arrive as a JSON number or a string (MLflow's `_assert_intlike`).
#[derive(Deserialize)]
#[serde(untagged)]
enum IntLike {
    Int(i64),
    Text(String),
}

impl IntLike {
    fn get(&self, name: &str) -> HttpResult<i64> {
        match self {
            Self::Int(n) => Ok(*n),
            Self::Text(s) => s.trim().parse().map_err(|_| {
                ArtifactError::InvalidParameter(format!(
                    "parameter '{name}' must be an integer, got {s:?}"
                ))
            }),
        }
    }
}

// ---- downloads ------------------------------------------------------------------------------

const TEXT_EXTENSIONS: &[&str] = &[
    "txt",
    "log",
    "err",
    "cfg",
    "conf",
    "cnf",
    "cf",
    "ini",
    "properties",
    "prop",
    "hocon",
    "toml",
    "yaml",
    "yml",
    "xml",
    "json",
    "js",
    "py",
    "py3",
    "csv",
    "tsv",
    "md",
    "rst",
    "ipynb",
    "MLmodel",
    "MLproject",
];

/// The `Content-Type` MLflow's server would send for a file name: `text/plain` for its list of text
/// extensions (and `MLmodel`, `MLproject`), a small table of common types, else
/// `application/octet-stream`.
pub fn guess_content_type(file_name: &str) -> &'static str {
    let ext = match file_name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext,
        _ => file_name,
    };
    if TEXT_EXTENSIONS.contains(&ext) {
        return "text/plain";
    }
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "ico" => "image/vnd.microsoft.icon",
        "tif" | "tiff" => "image/tiff",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "tar" => "application/x-tar",
        "wav" => "audio/x-wav",
        "mp3" => "audio/mpeg",
        "flac" => "audio/flac",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => "application/octet-stream",
    }
}

/// `Content-Disposition: attachment` with the file name, RFC 6266/5987 style like MLflow's.
fn content_disposition(file_name: &str) -> String {
    let plain = |c: char| c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ';
    if file_name.chars().all(plain) {
        return format!("attachment; filename=\"{file_name}\"");
    }
    let fallback: String = file_name
        .chars()
        .map(|c| if plain(c) { c } else { '_' })
        .collect();
    let mut encoded = String::new();
    for b in file_name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

fn file_headers(headers: &mut HeaderMap, path: &ArtifactPath, meta: &ArtifactMeta, length: u64) {
    let name = path.file_name();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(guess_content_type(name)),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&content_disposition(name)) {
        headers.insert(CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(meta.last_modified)) {
        headers.insert(LAST_MODIFIED, v);
    }
    if let Some(tag) = &meta.e_tag {
        let tag = if tag.starts_with('"') || tag.starts_with("W/") {
            tag.clone()
        } else {
            format!("\"{tag}\"")
        };
        if let Ok(v) = HeaderValue::from_str(&tag) {
            headers.insert(ETAG, v);
        }
    }
}

/// A missing file that is a directory gets MLflow's "refers to a directory" 400 instead of 404.
async fn not_found_or_directory(
    store: &ArtifactStore,
    path: &ArtifactPath,
    e: ArtifactError,
) -> ArtifactError {
    if matches!(e, ArtifactError::NotFound { .. })
        && store.list(Some(path)).await.is_ok_and(|l| !l.is_empty())
    {
        return ArtifactError::InvalidParameter(format!(
            "Artifact path refers to a directory, not a file: '{path}'"
        ));
    }
    e
}

async fn download(State(s): St, uri: Uri, headers: HeaderMap) -> HttpResult<Response> {
    let path = path_from_uri(&uri, "/mlflow-artifacts/artifacts/")?;
    let range = headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(ByteRange::parse_header);
    let download = match s.store.get(&path, range).await {
        Ok(d) => d,
        Err(e) => return Err(not_found_or_directory(&s.store, &path, e).await),
    };
    let length = download.range.end - download.range.start;
    let mut response = Response::new(Body::from_stream(download.body));
    file_headers(response.headers_mut(), &path, &download.meta, length);
    if download.partial {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!(
            "bytes {}-{}/{}",
            download.range.start,
            download.range.end.saturating_sub(1),
            download.meta.size
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

async fn head(State(s): St, uri: Uri) -> HttpResult<Response> {
    let path = path_from_uri(&uri, "/mlflow-artifacts/artifacts/")?;
    let meta = match s.store.head(&path).await {
        Ok(m) => m,
        Err(e) => return Err(not_found_or_directory(&s.store, &path, e).await),
    };
    let mut response = Response::new(Body::empty());
    file_headers(response.headers_mut(), &path, &meta, meta.size);
    Ok(response)
}

// ---- uploads, listing, deletion -------------------------------------------------------------

async fn upload(State(s): St, uri: Uri, headers: HeaderMap, body: Body) -> HttpResult<Json<Value>> {
    let path = path_from_uri(&uri, "/mlflow-artifacts/artifacts/")?;
    let what = format!("artifact {:?}", path.as_str());
    check_declared_length(&headers, s.store.limits().max_artifact_bytes, &what)?;
    s.store.put_stream(&path, body.into_data_stream()).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct ListQuery {
    path: Option<String>,
}

async fn list(
    State(s): St,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> HttpResult<Json<Value>> {
    let Query(query) = query.map_err(|e| ArtifactError::InvalidParameter(e.body_text()))?;
    let dir = ArtifactPath::parse_dir(query.path.as_deref().unwrap_or_default())?;
    let files = s.store.list(dir.as_ref()).await?;
    // MLflow's proto JSON leaves out an empty repeated field: an empty listing is `{}`.
    Ok(Json(if files.is_empty() {
        json!({})
    } else {
        json!({ "files": files })
    }))
}

async fn delete(State(s): St, uri: Uri) -> HttpResult<Json<Value>> {
    let path = path_from_uri(&uri, "/mlflow-artifacts/artifacts/")?;
    s.store.delete(&path).await?;
    Ok(Json(json!({})))
}

// ---- multipart uploads ----------------------------------------------------------------------

/// The base URL clients reach this server at.
fn base_url(config: &ArtifactHttpConfig, uri: &Uri, headers: &HeaderMap) -> HttpResult<String> {
    if let Some(base) = &config.public_base_url {
        return Ok(base.trim_end_matches('/').to_owned());
    }
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let scheme = first("x-forwarded-proto")
        .or_else(|| uri.scheme_str().map(str::to_owned))
        .unwrap_or_else(|| "http".into())
        .to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(ArtifactError::InvalidParameter(format!(
            "cannot build part URLs for scheme {scheme:?}"
        )));
    }
    let host = first("x-forwarded-host")
        .or_else(|| first("host"))
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .ok_or_else(|| {
            ArtifactError::InvalidParameter(
                "cannot build part URLs: the request has no Host header (configure public_base_url)".into(),
            )
        })?;
    let host_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
    if !host_ok {
        return Err(ArtifactError::InvalidParameter(format!(
            "cannot build part URLs from host {host:?}"
        )));
    }
    Ok(format!("{scheme}://{host}"))
}

fn part_signature(
    secret: &[u8],
    path: &ArtifactPath,
    upload_id: &str,
    part_number: u32,
    expires: u64,
) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(
        format!("cerulean-mpu-part\n{path}\n{upload_id}\n{part_number}\n{expires}").as_bytes(),
    );
    mac
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct CreateBody {
    path: Option<String>,
    num_parts: Option<IntLike>,
}

async fn mpu_create(
    State(s): St,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> HttpResult<Json<Value>> {
    let dir = path_from_uri(&uri, "/mlflow-artifacts/mpu/create/")?;
    let request: CreateBody = json_body(body)?;
    let local = request.path.ok_or_else(|| missing("path"))?;
    let dest = dir.join(super::client_file_name(&local))?;
    let num_parts = match &request.num_parts {
        Some(n) => n.get("num_parts")?,
        None => 1,
    };
    let max_parts = s.store.limits().max_parts;
    if num_parts < 1 || num_parts > i64::from(max_parts) {
        return Err(ArtifactError::InvalidParameter(format!(
            "num_parts must be between 1 and {max_parts}, got {num_parts}"
        )));
    }
    let base = base_url(&s.config, &uri, &headers)?;
    let upload_id = s.store.create_multipart(&dest).await?;
    let expires = unix_now() + s.config.part_url_ttl.as_secs();
    let url_path = dest.to_url_path();
    let encoded_id = percent_encode_segment(&upload_id);
    let credentials: Vec<Value> = (1..=num_parts as u32)
        .map(|part_number| {
            let signature = hex::encode(
                part_signature(&s.config.part_url_secret, &dest, &upload_id, part_number, expires)
                    .finalize()
                    .into_bytes(),
            );
            let url = format!(
                "{base}{}/mpu/part/{url_path}?upload_id={encoded_id}&part_number={part_number}&expires={expires}&signature={signature}",
                PREFIXES[0]
            );
            json!({"url": url, "part_number": part_number, "headers": {}})
        })
        .collect();
    Ok(Json(
        json!({"upload_id": upload_id, "credentials": credentials}),
    ))
}

#[derive(Deserialize)]
struct PartQuery {
    upload_id: Option<String>,
    part_number: Option<String>,
    expires: Option<String>,
    signature: Option<String>,
}

#[derive(Debug)]
struct Denied(String);

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let body = json!({"error_code": "PERMISSION_DENIED", "message": self.0});
        (StatusCode::FORBIDDEN, Json(body)).into_response()
    }
}

async fn mpu_part(
    State(s): St,
    uri: Uri,
    headers: HeaderMap,
    query: Result<Query<PartQuery>, QueryRejection>,
    body: Body,
) -> Result<Response, Response> {
    let dest =
        path_from_uri(&uri, "/mlflow-artifacts/mpu/part/").map_err(IntoResponse::into_response)?;
    let Query(query) =
        query.map_err(|e| ArtifactError::InvalidParameter(e.body_text()).into_response())?;
    let upload_id = query
        .upload_id
        .ok_or_else(|| missing("upload_id").into_response())?;
    let part_number: u32 = query
        .part_number
        .as_deref()
        .ok_or_else(|| missing("part_number").into_response())?
        .parse()
        .map_err(|_| {
            ArtifactError::InvalidParameter("part_number must be a positive integer".into())
                .into_response()
        })?;
    let expires: u64 = query
        .expires
        .as_deref()
        .and_then(|e| e.parse().ok())
        .ok_or_else(|| Denied("the part URL has no valid expiry".into()).into_response())?;
    let signature = query
        .signature
        .as_deref()
        .and_then(|sig| hex::decode(sig).ok())
        .ok_or_else(|| Denied("the part URL has no valid signature".into()).into_response())?;
    part_signature(
        &s.config.part_url_secret,
        &dest,
        &upload_id,
        part_number,
        expires,
    )
    .verify_slice(&signature)
    .map_err(|_| Denied("the part URL's signature does not match".into()).into_response())?;
    if expires < unix_now() {
        return Err(
            Denied("the part URL has expired; create the upload again".into()).into_response(),
        );
    }
    let what = format!("part {part_number} of {:?}", dest.as_str());
    check_declared_length(&headers, s.store.limits().max_part_bytes, &what)
        .map_err(IntoResponse::into_response)?;
    let etag = s
        .store
        .upload_part(&dest, &upload_id, part_number, body.into_data_stream())
        .await
        .map_err(IntoResponse::into_response)?;
    let mut response = Json(json!({})).into_response();
    let etag = HeaderValue::from_str(&etag).map_err(|_| {
        ArtifactError::InvalidParameter("the backend's part id cannot be an ETag".into())
            .into_response()
    })?;
    response.headers_mut().insert(ETAG, etag);
    Ok(response)
}

#[derive(Deserialize)]
struct CompleteBody {
    path: Option<String>,
    upload_id: Option<String>,
    parts: Option<Vec<PartBody>>,
}

#[derive(Deserialize)]
struct PartBody {
    part_number: Option<IntLike>,
    etag: Option<String>,
}

async fn mpu_complete(
    State(s): St,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> HttpResult<Json<Value>> {
    let dir = path_from_uri(&uri, "/mlflow-artifacts/mpu/complete/")?;
    let request: CompleteBody = json_body(body)?;
    let local = request.path.ok_or_else(|| missing("path"))?;
    let dest = dir.join(super::client_file_name(&local))?;
    let upload_id = request.upload_id.ok_or_else(|| missing("upload_id"))?;
    let parts = request.parts.ok_or_else(|| missing("parts"))?;
    let parts = parts
        .into_iter()
        .map(|part| {
            let number = part
                .part_number
                .ok_or_else(|| missing("parts.part_number"))?;
            let number = number.get("part_number")?;
            let part_number = u32::try_from(number).map_err(|_| {
                ArtifactError::InvalidParameter(format!("part_number {number} is out of range"))
            })?;
            let etag = part.etag.filter(|e| !e.is_empty()).ok_or_else(|| {
                ArtifactError::InvalidParameter(format!("part {part_number} has no etag"))
            })?;
            Ok(CompletedPart { part_number, etag })
        })
        .collect::<HttpResult<Vec<_>>>()?;
    s.store
        .complete_multipart(&dest, &upload_id, &parts)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct AbortBody {
    path: Option<String>,
    upload_id: Option<String>,
}

async fn mpu_abort(
    State(s): St,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> HttpResult<Json<Value>> {
    let dir = path_from_uri(&uri, "/mlflow-artifacts/mpu/abort/")?;
    let request: AbortBody = json_body(body)?;
    let local = request.path.ok_or_else(|| missing("path"))?;
    let dest = dir.join(super::client_file_name(&local))?;
    let upload_id = request.upload_id.ok_or_else(|| missing("upload_id"))?;
    s.store.abort_multipart(&dest, &upload_id).await?;
    Ok(Json(json!({})))
}

async fn presigned(State(s): St, uri: Uri, headers: HeaderMap) -> HttpResult<Json<Value>> {
    let path = path_from_uri(&uri, "/mlflow-artifacts/presigned/")?;
    let meta = s.store.head(&path).await?;
    let base = base_url(&s.config, &uri, &headers)?;
    let url = format!("{base}{}/artifacts/{}", PREFIXES[0], path.to_url_path());
    Ok(Json(
        json!({"url": url, "headers": {}, "file_size": meta.size}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_mlflow() {
        assert_eq!(guess_content_type("MLmodel"), "text/plain");
        assert_eq!(guess_content_type("conda.yaml"), "text/plain");
        assert_eq!(guess_content_type("metrics.json"), "text/plain");
        assert_eq!(guess_content_type("plot.PNG"), "image/png");
        assert_eq!(
            guess_content_type("model.safetensors"),
            "application/octet-stream"
        );
        assert_eq!(guess_content_type(".bashrc"), "application/octet-stream");
        assert_eq!(guess_content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn content_disposition_quotes_and_encodes() {
        assert_eq!(
            content_disposition("a b.txt"),
            "attachment; filename=\"a b.txt\""
        );
        assert_eq!(
            content_disposition("模型.bin"),
            "attachment; filename=\"__.bin\"; filename*=UTF-8''%E6%A8%A1%E5%9E%8B.bin"
        );
        assert!(content_disposition("x\"y").contains("filename=\"x_y\""));
        for name in ["a\"b", "é", "a\\b"] {
            assert!(HeaderValue::from_str(&content_disposition(name)).is_ok());
        }
    }

    #[test]
    fn base_urls() {
        let config = ArtifactHttpConfig::default();
        let uri: Uri = "/api/2.0/mlflow-artifacts/mpu/create/x".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(
            base_url(&config, &uri, &headers).unwrap(),
            "http://127.0.0.1:8080"
        );
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("ml.example.com"),
        );
        assert_eq!(
            base_url(&config, &uri, &headers).unwrap(),
            "https://ml.example.com"
        );
        headers.insert("x-forwarded-host", HeaderValue::from_static("evil.com/x?"));
        assert!(base_url(&config, &uri, &headers).is_err());
        let config = ArtifactHttpConfig {
            public_base_url: Some("https://ml.example.com/mlflow/".into()),
            ..Default::default()
        };
        assert_eq!(
            base_url(&config, &uri, &headers).unwrap(),
            "https://ml.example.com/mlflow"
        );
    }
}
