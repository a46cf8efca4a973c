//! API keys with roles. Each key carries one role; roles nest (`reader` < `writer` < `promoter` <
//! `admin`). When enabled, every route checks the caller's key: reads need `reader`, writes `writer`
//! (among them every training-job call but the reads: submit, cancel, lease, heartbeat, set-run,
//! finish, log appends; and dataset registrations), alias moves and stage transitions `promoter`,
//! deletions of registered models `admin`. Keys live in a TOML file that is re-read when it changes,
//! so keys rotate without a restart.
//!
//! ```toml
//! [[key]]
//! name = "ci"                       # who, as recorded in the alias history
//! role = "promoter"
//! sha256 = "9f86d08..."             # sha256 of the key, hex (preferred), or
//! # key = "plain-text-key"          # the key itself
//! ```
//!
//! Clients send the key as `Authorization: Bearer <key>` (what `MLFLOW_TRACKING_TOKEN` makes the
//! `mlflow` client send), as the password of `Authorization: Basic` (`MLFLOW_TRACKING_PASSWORD`), or
//! as `Ocp-Apim-Subscription-Key` (what Azure SDKs send).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use parking_lot::RwLock;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What a key may do. Roles nest: each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read anything.
    Reader,
    /// Create experiments, runs, models and versions; log; upload artifacts.
    Writer,
    /// Move aliases and transition stages.
    Promoter,
    /// Delete registered models and versions, and everything else.
    Admin,
}

/// The caller a request was authenticated as, available to handlers as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's name.
    pub name: String,
    /// The key's role.
    pub role: Role,
}

impl Principal {
    /// The caller when authentication is off.
    pub fn anonymous() -> Principal {
        Principal {
            name: "anonymous".to_string(),
            role: Role::Admin,
        }
    }
}

/// Errors reading a keys file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file cannot be read.
    #[error("cannot read the API keys file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("invalid API keys file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default, rename = "key")]
    keys: Vec<KeyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    role: Role,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    key: Option<String>,
}

/// A set of keys, by the sha256 of the key.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<([u8; 32], Principal)>,
}

impl KeySet {
    /// Parses a keys file's text; `path` is only for messages.
    pub fn parse(text: &str, path: &Path) -> Result<KeySet, AuthError> {
        let invalid = |message: String| AuthError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let file: KeysFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut keys = Vec::with_capacity(file.keys.len());
        for entry in file.keys {
            let digest = match (entry.sha256, entry.key) {
                (Some(hex_digest), None) => {
                    let bytes = hex::decode(hex_digest.trim())
                        .map_err(|_| invalid(format!("key '{}': sha256 is not hex", entry.name)))?;
                    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                        invalid(format!(
                            "key '{}': sha256 must be 64 hex digits",
                            entry.name
                        ))
                    })?
                }
                (None, Some(plain)) if !plain.is_empty() => Sha256::digest(plain.as_bytes()).into(),
                _ => {
                    return Err(invalid(format!(
                        "key '{}' needs exactly one of `sha256` or `key`",
                        entry.name
                    )));
                }
            };
            keys.push((
                digest,
                Principal {
                    name: entry.name,
                    role: entry.role,
                },
            ));
        }
        Ok(KeySet { keys })
    }

    /// Reads a keys file.
    pub fn load(path: &Path) -> Result<KeySet, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        KeySet::parse(&text, path)
    }

    /// The principal a presented key belongs to.
    pub fn lookup(&self, presented: &str) -> Option<&Principal> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Compare every entry without stopping early, so timing does not reveal which key matched.
        let mut found = None;
        for (candidate, principal) in &self.keys {
            let same = candidate
                .iter()
                .zip(&digest)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
            if same && found.is_none() {
                found = Some(principal);
            }
        }
        found
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The authentication state a server runs with: off, or a key set that follows its file.
#[derive(Clone)]
pub struct Auth {
    inner: Option<Arc<Keys>>,
}

struct Keys {
    path: PathBuf,
    current: RwLock<(KeySet, Option<SystemTime>)>,
}

impl Auth {
    /// Authentication switched off: every caller is an anonymous admin.
    pub fn disabled() -> Auth {
        Auth { inner: None }
    }

    /// Authentication with the keys in `path`, re-read whenever the file changes.
    pub fn from_file(path: &Path) -> Result<Auth, AuthError> {
        let keys = KeySet::load(path)?;
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Ok(Auth {
            inner: Some(Arc::new(Keys {
                path: path.to_path_buf(),
                current: RwLock::new((keys, modified)),
            })),
        })
    }

    /// Whether keys are checked.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Re-reads the keys file if it changed; a broken file keeps the previous keys (and is logged).
    pub fn reload_if_changed(&self) {
        let Some(keys) = &self.inner else { return };
        let modified = std::fs::metadata(&keys.path)
            .and_then(|m| m.modified())
            .ok();
        if modified == keys.current.read().1 {
            return;
        }
        match KeySet::load(&keys.path) {
            Ok(set) => {
                tracing::info!(path = %keys.path.display(), keys = set.len(), "API keys reloaded");
                *keys.current.write() = (set, modified);
            }
            Err(err) => {
                tracing::error!(error = %err, "API keys file is invalid; keeping the previous keys")
            }
        }
    }

    /// Spawns a task that checks the keys file every `interval`, so rotated keys take effect without
    /// a restart.
    pub fn watch(&self, interval: Duration) {
        if self.inner.is_none() {
            return;
        }
        let auth = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                auth.reload_if_changed();
            }
        });
    }

    /// Who is calling, from the request headers; `Ok(None)` when no key was presented.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Principal>, AuthFailure> {
        let Some(keys) = &self.inner else {
            return Ok(Some(Principal::anonymous()));
        };
        let Some(presented) = presented_key(headers) else {
            return Ok(None);
        };
        keys.current
            .read()
            .0
            .lookup(&presented)
            .cloned()
            .map(Some)
            .ok_or(AuthFailure::Unauthenticated("the API key is not valid"))
    }
}

/// The key a request presents, if any.
fn presented_key(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        if let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        {
            return Some(token.trim().to_string());
        }
        if let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            return text
                .split_once(':')
                .map(|(_, password)| password.to_string());
        }
    }
    headers
        .get("ocp-apim-subscription-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No valid key (401, `UNAUTHENTICATED`).
    Unauthenticated(&'static str),
    /// A valid key without the role the route needs (403, `PERMISSION_DENIED`).
    Forbidden(Role),
}

impl IntoResponse for AuthFailure {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            AuthFailure::Unauthenticated(message) => (
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                message.to_string(),
            ),
            AuthFailure::Forbidden(role) => (
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                format!("this operation needs the {role:?} role (or higher)").to_lowercase(),
            ),
        };
        let mut response = (
            status,
            axum::Json(serde_json::json!({ "error_code": code, "message": message })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The role a request needs, from its method and path.
pub fn required_role(method: &Method, path: &str) -> Role {
    const READ_ONLY_POSTS: &[&str] = &[
        "/experiments/search",
        "/runs/search",
        "/registered-models/search",
        "/registered-models/get-latest-versions",
        "/model-versions/search",
        "/logged-models/search",
        "/v2/repository/index",
        "/infer",
    ];
    const PROMOTIONS: &[&str] = &[
        "/registered-models/alias",
        "/model-versions/transition-stage",
        "/promote",
    ];
    const ADMIN_DELETES: &[&str] = &["/registered-models/delete", "/model-versions/delete"];
    let is = |suffixes: &[&str]| {
        suffixes
            .iter()
            .any(|s| path.ends_with(s) || path.contains(&format!("{s}/")))
    };
    if let Some(repository) = path.strip_prefix("/v2/repository/models/") {
        // Loading and unloading models changes what the server serves.
        if repository.ends_with("/load") || repository.ends_with("/unload") {
            return Role::Admin;
        }
    }
    if is(ADMIN_DELETES) {
        return Role::Admin;
    }
    if is(PROMOTIONS) && *method != Method::GET {
        return Role::Promoter;
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || (*method == Method::POST && is(READ_ONLY_POSTS))
    {
        return Role::Reader;
    }
    Role::Writer
}

/// Paths anyone may call: health probes and metrics.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/health" | "/version" | "/metrics" | "/v2/health/live" | "/v2/health/ready"
    )
}

/// Middleware: authenticates the caller, checks the role the route needs, and stores the
/// [`Principal`] in the request extensions for handlers (the alias history records it).
pub async fn require_role(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    if !auth.is_enabled() {
        request.extensions_mut().insert(Principal::anonymous());
        return next.run(request).await;
    }
    let path = request.uri().path().to_string();
    if is_public(&path) {
        return next.run(request).await;
    }
    let principal = match auth.authenticate(request.headers()) {
        Ok(Some(principal)) => principal,
        Ok(None) => return AuthFailure::Unauthenticated("an API key is required").into_response(),
        Err(failure) => return failure.into_response(),
    };
    let needed = required_role(request.method(), &path);
    if principal.role < needed {
        return AuthFailure::Forbidden(needed).into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const KEYS: &str = r#"
        [[key]]
        name = "ci"
        role = "promoter"
        key = "ci-secret"

        [[key]]
        name = "viewer"
        role = "reader"
        sha256 = "5f5f1a9d5ba5e7cbd59ab8a3a3a0c2c3de0ce2a3a9f1e5df1bfb7ae6a0a2d0c1"
    "#;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn keys_are_found_by_any_supported_header() {
        let set = KeySet::parse(KEYS, Path::new("keys.toml")).unwrap();
        assert_eq!(set.len(), 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        std::fs::write(&path, KEYS).unwrap();
        let auth = Auth::from_file(&path).unwrap();
        let bearer = auth
            .authenticate(&headers("authorization", "Bearer ci-secret"))
            .unwrap()
            .unwrap();
        assert_eq!(
            bearer,
            Principal {
                name: "ci".into(),
                role: Role::Promoter
            }
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("user:ci-secret");
        assert!(
            auth.authenticate(&headers("authorization", &format!("Basic {basic}")))
                .unwrap()
                .is_some()
        );
        assert!(
            auth.authenticate(&headers("ocp-apim-subscription-key", "ci-secret"))
                .unwrap()
                .is_some()
        );
        assert_eq!(
            auth.authenticate(&headers("authorization", "Bearer wrong")),
            Err(AuthFailure::Unauthenticated("the API key is not valid"))
        );
        assert_eq!(auth.authenticate(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn hashed_keys_match_their_plain_text() {
        let digest = hex::encode(Sha256::digest(b"viewer-secret"));
        let text = format!("[[key]]\nname = \"v\"\nrole = \"reader\"\nsha256 = \"{digest}\"\n");
        let set = KeySet::parse(&text, Path::new("k")).unwrap();
        assert_eq!(set.lookup("viewer-secret").unwrap().role, Role::Reader);
        assert!(set.lookup("viewer-secreT").is_none());
    }

    #[test]
    fn invalid_files_are_refused_with_the_reason() {
        for bad in [
            "[[key]]\nname = \"x\"\nrole = \"reader\"\n",
            "[[key]]\nname = \"x\"\nrole = \"boss\"\nkey = \"k\"\n",
            "[[key]]\nname = \"x\"\nrole = \"reader\"\nsha256 = \"abc\"\n",
            "[[key]]\nname = \"x\"\nrole = \"reader\"\nkey = \"k\"\nsha256 = \"00\"\n",
        ] {
            assert!(KeySet::parse(bad, Path::new("k")).is_err(), "{bad}");
        }
    }

    #[test]
    fn rotated_keys_take_effect_without_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        std::fs::write(
            &path,
            "[[key]]\nname = \"a\"\nrole = \"writer\"\nkey = \"old\"\n",
        )
        .unwrap();
        let auth = Auth::from_file(&path).unwrap();
        assert!(
            auth.authenticate(&headers("authorization", "Bearer old"))
                .unwrap()
                .is_some()
        );
        // Make sure the modification time moves even on coarse-grained file systems.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(
            &path,
            "[[key]]\nname = \"a\"\nrole = \"writer\"\nkey = \"new\"\n",
        )
        .unwrap();
        let later = SystemTime::now() + Duration::from_secs(2);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        auth.reload_if_changed();
        assert!(
            auth.authenticate(&headers("authorization", "Bearer old"))
                .is_err()
        );
        assert!(
            auth.authenticate(&headers("authorization", "Bearer new"))
                .unwrap()
                .is_some()
        );
        // A broken file keeps the keys that work.
        std::fs::write(&path, "not toml [[").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later + Duration::from_secs(2))
            .unwrap();
        auth.reload_if_changed();
        assert!(
            auth.authenticate(&headers("authorization", "Bearer new"))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn routes_need_the_roles_they_should() {
        let api = "/api/2.0/mlflow";
        assert_eq!(
            required_role(&Method::GET, &format!("{api}/runs/get")),
            Role::Reader
        );
        assert_eq!(
            required_role(&Method::POST, &format!("{api}/runs/search")),
            Role::Reader
        );
        assert_eq!(
            required_role(&Method::POST, &format!("{api}/runs/log-metric")),
            Role::Writer
        );
        assert_eq!(
            required_role(
                &Method::PUT,
                "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/m.pkl"
            ),
            Role::Writer
        );
        assert_eq!(
            required_role(&Method::GET, &format!("{api}/registered-models/alias")),
            Role::Reader
        );
        assert_eq!(
            required_role(&Method::POST, &format!("{api}/registered-models/alias")),
            Role::Promoter
        );
        assert_eq!(
            required_role(&Method::DELETE, &format!("{api}/registered-models/alias")),
            Role::Promoter
        );
        assert_eq!(
            required_role(
                &Method::POST,
                &format!("{api}/model-versions/transition-stage")
            ),
            Role::Promoter
        );
        assert_eq!(
            required_role(&Method::DELETE, &format!("{api}/registered-models/delete")),
            Role::Admin
        );
        assert_eq!(
            required_role(&Method::DELETE, &format!("{api}/model-versions/delete")),
            Role::Admin
        );
        // Cerulean's jobs and datasets: reads need `reader`, a worker's and a submitter's calls
        // `writer`.
        let jobs = "/api/2.0/cerulean/jobs";
        for read in ["get", "list", "logs"] {
            assert_eq!(
                required_role(&Method::GET, &format!("{jobs}/{read}")),
                Role::Reader
            );
        }
        for write in [
            "submit",
            "cancel",
            "lease",
            "heartbeat",
            "set-run",
            "finish",
            "logs/append",
        ] {
            assert_eq!(
                required_role(&Method::POST, &format!("{jobs}/{write}")),
                Role::Writer,
                "{write}"
            );
        }
        let datasets = "/api/2.0/cerulean/datasets";
        assert_eq!(
            required_role(&Method::GET, &format!("{datasets}/get")),
            Role::Reader
        );
        assert_eq!(
            required_role(&Method::POST, &format!("{datasets}/register")),
            Role::Writer
        );
        assert!(
            Role::Admin > Role::Promoter
                && Role::Promoter > Role::Writer
                && Role::Writer > Role::Reader
        );
    }
}
