//! The MLflow REST layer (`cerulean_registry::http`), served by a real `axum::serve` on
//! 127.0.0.1:0 and driven with reqwest: shapes and errors, the alias history, the watch stream,
//! authentication; and the stock `mlflow` 3.17 client's end-to-end checks
//! (`tests/python/mlflow_e2e.py`, all 36) against SQLite and PostgreSQL with local artifacts, and
//! SQLite with Azurite and S3 (moto) artifacts (where the script's check of the stored bytes
//! looks at a local mirror of the container or bucket, read directly from it).
//!
//! Needs: the venv of `bash .ci/setup-mlflow.sh`, PostgreSQL on 127.0.0.1:5432
//! (`CERULEAN_TEST_PG_URL`), and Azurite and moto from `bash .ci/services.sh`. None is skipped.

mod common;

use std::collections::HashSet;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cerulean_registry::artifacts::{ArtifactPath, ArtifactStore};
use cerulean_registry::http::{not_found, router};
use cerulean_registry::service::{Registry, RegistryConfig};
use futures::StreamExt;
use object_store::ObjectStore;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const API: &str = "/api/2.0/mlflow";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

struct Server {
    base: String,
    client: reqwest::Client,
    registry: Arc<Registry>,
    artifacts_dir: Option<PathBuf>,
    _tmp: tempfile::TempDir,
}

impl Server {
    /// A server on a fresh SQLite file and local artifact directory.
    async fn sqlite() -> Server {
        Server::with(|_| {}).await
    }

    /// A server on a fresh SQLite file and local artifacts, configured further by `edit`.
    async fn with(edit: impl FnOnce(&mut RegistryConfig)) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let artifacts = tmp.path().join("artifacts");
        let mut config = RegistryConfig::new(
            format!("sqlite://{}/registry.db", tmp.path().display()),
            artifacts.display().to_string(),
        );
        edit(&mut config);
        let local = config.artifacts_destination == artifacts.display().to_string();
        Server::start(config, tmp, local.then_some(artifacts)).await
    }

    async fn start(
        config: RegistryConfig,
        tmp: tempfile::TempDir,
        artifacts_dir: Option<PathBuf>,
    ) -> Server {
        let registry = Arc::new(Registry::open(config).await.unwrap());
        let app = router(registry.clone()).fallback(not_found);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder().build().unwrap(),
            registry,
            artifacts_dir,
            _tmp: tmp,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request (a JSON body for anything but GET, whose `params` go in the query
    /// string), with an optional bearer key; returns the status and the parsed JSON body.
    async fn call_as(
        &self,
        key: Option<&str>,
        method: Method,
        path: &str,
        params: Value,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method.clone(), self.url(path));
        if method == Method::GET {
            let pairs: Vec<(String, String)> = params
                .as_object()
                .map(|o| {
                    o.iter()
                        .flat_map(|(k, v)| match v {
                            Value::Array(items) => items
                                .iter()
                                .map(|i| (k.clone(), text(i)))
                                .collect::<Vec<_>>(),
                            v => vec![(k.clone(), text(v))],
                        })
                        .collect()
                })
                .unwrap_or_default();
            request = request.query(&pairs);
        } else {
            request = request.json(&params);
        }
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, body)
    }

    async fn call(&self, method: Method, path: &str, params: Value) -> (StatusCode, Value) {
        self.call_as(None, method, path, params).await
    }

    /// A call that must succeed; returns the body.
    async fn ok(&self, method: Method, path: &str, params: Value) -> Value {
        let (status, body) = self.call(method.clone(), path, params).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {body}");
        body
    }

    async fn put_artifact(&self, path: &str, bytes: &'static [u8]) {
        let response = self
            .client
            .put(self.url(&format!("/api/2.0/mlflow-artifacts/artifacts/{path}")))
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Asserts an MLflow error answer.
fn assert_error(got: (StatusCode, Value), status: u16, code: &str) -> String {
    let (s, body) = got;
    assert_eq!(s.as_u16(), status, "status; body {body}");
    assert_eq!(body["error_code"], code, "error_code; body {body}");
    body["message"].as_str().expect("a message").to_owned()
}

async fn new_run(s: &Server, experiment_name: &str) -> (String, String, String) {
    let exp = s
        .ok(
            Method::POST,
            &format!("{API}/experiments/create"),
            json!({"name": experiment_name}),
        )
        .await["experiment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = s
        .ok(
            Method::POST,
            &format!("{API}/runs/create"),
            json!({"experiment_id": exp, "run_name": "r", "start_time": 1}),
        )
        .await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();
    let uri = run["run"]["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    (exp, run_id, uri)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_shapes_and_errors() {
    let s = Server::sqlite().await;

    // The default experiment, on both prefixes.
    for prefix in ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"] {
        let body = s
            .ok(
                Method::GET,
                &format!("{prefix}/experiments/get"),
                json!({"experiment_id": "0"}),
            )
            .await;
        assert_eq!(body["experiment"]["name"], "Default");
        assert_eq!(
            body["experiment"]["artifact_location"],
            "mlflow-artifacts:/0"
        );
    }

    let (exp, run_id, uri) = new_run(&s, "shapes").await;
    assert_eq!(uri, format!("mlflow-artifacts:/{exp}/{run_id}/artifacts"));
    let body = s
        .ok(
            Method::GET,
            &format!("{API}/experiments/get-by-name"),
            json!({"experiment_name": "shapes"}),
        )
        .await;
    assert_eq!(
        body["experiment"]["artifact_location"],
        format!("mlflow-artifacts:/{exp}")
    );

    // MLflow's errors.
    let dup = s
        .call(
            Method::POST,
            &format!("{API}/experiments/create"),
            json!({"name": "shapes"}),
        )
        .await;
    assert_error(dup, 400, "RESOURCE_ALREADY_EXISTS");
    let unknown = s
        .call(
            Method::GET,
            &format!("{API}/runs/get"),
            json!({"run_id": "0123"}),
        )
        .await;
    assert_error(unknown, 404, "RESOURCE_DOES_NOT_EXIST");
    let message = assert_error(
        s.call(Method::GET, &format!("{API}/runs/get"), json!({}))
            .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_eq!(message, "Missing value for required parameter 'run_id'.");
    let malformed = s
        .client
        .post(s.url(&format!("{API}/runs/log-metric")))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["error_code"], "BAD_REQUEST");
    let no_route = s
        .call(Method::GET, "/api/2.0/mlflow/no/such/route", json!({}))
        .await;
    assert_error(no_route, 404, "ENDPOINT_NOT_FOUND");

    // A JSON body without a Content-Type is accepted; the answer is `{}`.
    let response = s
        .client
        .post(s.url(&format!("{API}/runs/log-metric")))
        .body(
            json!({"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 10, "step": 1})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "JSON answers"
    );
    assert_eq!(response.text().await.unwrap(), "{}");
    s.ok(
        Method::POST,
        &format!("{API}/runs/log-metric"),
        json!({"run_id": run_id, "key": "loss", "value": "NaN", "timestamp": 11, "step": 2}),
    )
    .await;
    let history = s
        .ok(
            Method::GET,
            &format!("{API}/metrics/get-history"),
            json!({"run_id": run_id, "metric_key": "loss"}),
        )
        .await;
    assert_eq!(history["metrics"].as_array().unwrap().len(), 2);
    assert_eq!(history["metrics"][1]["value"], "NaN");
    let empty = s
        .ok(
            Method::GET,
            &format!("{API}/metrics/get-history"),
            json!({"run_id": run_id, "metric_key": "never"}),
        )
        .await;
    assert_eq!(empty, json!({}), "an empty list is left out, as in MLflow");

    // MLflow's client sends run_id and run_uuid together.
    let info = s
        .ok(
            Method::POST,
            &format!("{API}/runs/update"),
            json!({"run_id": run_id, "run_uuid": run_id, "status": "FINISHED", "end_time": 20}),
        )
        .await;
    assert_eq!(info["run_info"]["status"], "FINISHED");
    assert_eq!(info["run_info"]["end_time"], 20);

    // log-batch, its size limit, and params.
    s.ok(
        Method::POST,
        &format!("{API}/runs/log-batch"),
        json!({"run_id": run_id, "params": [{"key": "lr", "value": "0.1"}],
               "tags": [{"key": "team", "value": "a"}],
               "metrics": [{"key": "acc", "value": 0.9, "timestamp": 5, "step": 0}]}),
    )
    .await;
    let big: Vec<Value> = (0..1000)
        .map(|i| json!({"key": format!("k{i}"), "value": 1.0, "timestamp": 1, "step": 0, "pad": "x".repeat(1000)}))
        .collect();
    let too_big = s
        .call(
            Method::POST,
            &format!("{API}/runs/log-batch"),
            json!({"run_id": run_id, "metrics": big}),
        )
        .await;
    assert!(
        assert_error(too_big, 400, "INVALID_PARAMETER_VALUE").contains("at most 1000000 bytes")
    );
    let conflict = s
        .call(
            Method::POST,
            &format!("{API}/runs/log-parameter"),
            json!({"run_id": run_id, "key": "lr", "value": "0.2"}),
        )
        .await;
    assert_error(conflict, 400, "INVALID_PARAMETER_VALUE");

    // Search over GET (repeated keys for lists) and POST; `params.x IN (...)` is refused.
    let found = s
        .ok(
            Method::GET,
            &format!("{API}/runs/search"),
            json!({"experiment_ids": [exp, "0"], "filter": "params.lr = '0.1'",
                   "order_by": ["metrics.acc DESC", "attributes.start_time"]}),
        )
        .await;
    assert_eq!(found["runs"].as_array().unwrap().len(), 1);
    assert_eq!(found["runs"][0]["data"]["params"][0]["value"], "0.1");
    // Search results carry exact metric values, infinities and NaN.
    for (key, value) in [
        ("third", json!(0.30000000000000004)),
        ("inf", json!("Infinity")),
        ("neg", json!("-Infinity")),
        ("big", json!(1e300)),
    ] {
        s.ok(
            Method::POST,
            &format!("{API}/runs/log-metric"),
            json!({"run_id": run_id, "key": key, "value": value, "timestamp": 30, "step": 0}),
        )
        .await;
    }
    let found = s
        .ok(
            Method::POST,
            &format!("{API}/runs/search"),
            json!({"experiment_ids": [exp], "filter": "metrics.big > 1e299"}),
        )
        .await;
    let metrics: Vec<(Value, Value)> = found["runs"][0]["data"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["key"].clone(), m["value"].clone()))
        .collect();
    assert_eq!(
        metrics,
        vec![
            (json!("acc"), json!(0.9)),
            (json!("big"), json!(1e300)),
            (json!("inf"), json!("Infinity")),
            (json!("loss"), json!("NaN")),
            (json!("neg"), json!("-Infinity")),
            (json!("third"), json!(0.30000000000000004)),
        ]
    );
    let refused = s
        .call(
            Method::POST,
            &format!("{API}/runs/search"),
            json!({"experiment_ids": [exp], "filter": "params.lr IN ('0.1')"}),
        )
        .await;
    assert_error(refused, 400, "INVALID_PARAMETER_VALUE");
    let experiments = s
        .ok(
            Method::GET,
            &format!("{API}/experiments/search"),
            json!({"filter": "name = 'shapes'", "max_results": 5, "view_type": "ALL"}),
        )
        .await;
    assert_eq!(experiments["experiments"][0]["experiment_id"], exp);

    // artifacts/list goes through the artifact store; a 0-byte file has no file_size.
    s.put_artifact(&format!("{exp}/{run_id}/artifacts/a.txt"), b"hello")
        .await;
    s.put_artifact(&format!("{exp}/{run_id}/artifacts/dir/empty.txt"), b"")
        .await;
    s.put_artifact(&format!("{exp}/{run_id}/artifacts/dir/sub/x.bin"), b"xyz")
        .await;
    let root = s
        .ok(
            Method::GET,
            &format!("{API}/artifacts/list"),
            json!({"run_id": run_id}),
        )
        .await;
    assert_eq!(root["root_uri"], uri);
    assert_eq!(
        root["files"],
        json!([{"path": "a.txt", "is_dir": false, "file_size": 5},
               {"path": "dir", "is_dir": true}])
    );
    let dir = s
        .ok(
            Method::GET,
            &format!("{API}/artifacts/list"),
            json!({"run_id": run_id, "path": "dir"}),
        )
        .await;
    assert_eq!(
        dir["files"],
        json!([{"path": "dir/empty.txt", "is_dir": false},
               {"path": "dir/sub", "is_dir": true}])
    );
    let escape = s
        .call(
            Method::GET,
            &format!("{API}/artifacts/list"),
            json!({"run_id": run_id, "path": "../../x"}),
        )
        .await;
    assert_error(escape, 400, "INVALID_PARAMETER_VALUE");

    // server-info, health, version.
    let info = s
        .ok(Method::GET, "/api/3.0/mlflow/server-info", json!({}))
        .await;
    assert_eq!(info["multipart_uploads_enabled"], true);
    assert_eq!(info["store_type"], "SqlStore");
    assert_eq!(s.ok(Method::GET, "/health", json!({})).await, "OK");
    let version = s.ok(Method::GET, "/version", json!({})).await;
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_shapes_sources_and_logged_models() {
    let s = Server::sqlite().await;
    let (exp, run_id, uri) = new_run(&s, "registry").await;
    let (_, other_run, other_uri) = new_run(&s, "registry-other").await;

    let rm = s
        .ok(
            Method::POST,
            &format!("{API}/registered-models/create"),
            json!({"name": "fraud", "description": "d", "tags": [{"key": "t", "value": "1"}]}),
        )
        .await;
    assert_eq!(rm["registered_model"]["name"], "fraud");
    assert!(rm["registered_model"].get("user_id").is_none());

    // Sources as MLflow 3.17 validates them.
    let create = |source: String, run: Option<&str>| {
        let mut body = json!({"name": "fraud", "source": source});
        if let Some(run) = run {
            body["run_id"] = json!(run);
        }
        body
    };
    let ok = s
        .ok(
            Method::POST,
            &format!("{API}/model-versions/create"),
            create(format!("{uri}/model"), Some(&run_id)),
        )
        .await;
    assert_eq!(ok["model_version"]["version"], "1");
    assert_eq!(ok["model_version"]["status"], "READY");
    let runs_uri = s
        .ok(
            Method::POST,
            &format!("{API}/model-versions/create"),
            create(format!("runs:/{run_id}/model"), Some(&run_id)),
        )
        .await;
    assert_eq!(runs_uri["model_version"]["version"], "2");
    for (source, run, why) in [
        (
            format!("{uri}/model"),
            Some(other_run.as_str()),
            "another run's artifacts",
        ),
        (format!("{other_uri}/model"), None, "no run_id"),
        (
            format!("runs:/{run_id}/model"),
            Some(other_run.as_str()),
            "runs:/ of another run",
        ),
        (
            format!("{uri}/../../x"),
            Some(run_id.as_str()),
            "a relative path",
        ),
        (
            "/etc/passwd".to_owned(),
            Some(run_id.as_str()),
            "a local path outside the run",
        ),
    ] {
        let refused = s
            .call(
                Method::POST,
                &format!("{API}/model-versions/create"),
                create(source, run),
            )
            .await;
        let message = assert_error(refused, 400, "INVALID_PARAMETER_VALUE");
        assert!(
            message.starts_with("Invalid model version source"),
            "{why}: {message}"
        );
    }
    let s3 = s
        .ok(
            Method::POST,
            &format!("{API}/model-versions/create"),
            create("s3://bucket/models/fraud".into(), None),
        )
        .await;
    assert_eq!(s3["model_version"]["version"], "3");

    // Versions by GET and POST of get-latest-versions; search by run_id.
    for method in [Method::GET, Method::POST] {
        let latest = s
            .ok(
                method,
                &format!("{API}/registered-models/get-latest-versions"),
                json!({"name": "fraud", "stages": ["None"]}),
            )
            .await;
        assert_eq!(latest["model_versions"][0]["version"], "3");
    }
    let found = s
        .ok(
            Method::GET,
            &format!("{API}/model-versions/search"),
            json!({"filter": format!("run_id = '{run_id}'"), "order_by": ["version_number ASC"]}),
        )
        .await;
    let versions: Vec<&str> = found["model_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1", "2"]);

    // Aliases: a missing one is INVALID_PARAMETER_VALUE, as MLflow answers.
    let missing = s
        .call(
            Method::GET,
            &format!("{API}/registered-models/alias"),
            json!({"name": "fraud", "alias": "champion"}),
        )
        .await;
    assert_eq!(
        assert_error(missing, 400, "INVALID_PARAMETER_VALUE"),
        "Registered model alias champion not found."
    );
    s.ok(
        Method::POST,
        &format!("{API}/registered-models/alias"),
        json!({"name": "fraud", "alias": "champion", "version": 2}),
    )
    .await;
    let by_alias = s
        .ok(
            Method::GET,
            &format!("{API}/registered-models/alias"),
            json!({"name": "fraud", "alias": "champion"}),
        )
        .await;
    assert_eq!(by_alias["model_version"]["version"], "2");
    assert_eq!(by_alias["model_version"]["aliases"], json!(["champion"]));
    let unknown_version = s
        .call(
            Method::POST,
            &format!("{API}/registered-models/alias"),
            json!({"name": "fraud", "alias": "x", "version": "99"}),
        )
        .await;
    assert_error(unknown_version, 404, "RESOURCE_DOES_NOT_EXIST");

    // Stages.
    let moved = s
        .ok(
            Method::POST,
            &format!("{API}/model-versions/transition-stage"),
            json!({"name": "fraud", "version": "1", "stage": "production",
                   "archive_existing_versions": false}),
        )
        .await;
    assert_eq!(moved["model_version"]["current_stage"], "Production");

    // A logged model: create, params, tags (a key with a slash), finalize, search, artifacts.
    let lm = s
        .ok(
            Method::POST,
            &format!("{API}/logged-models"),
            json!({"experiment_id": exp, "name": "adder", "source_run_id": run_id,
                   "params": [{"key": "n", "value": "7"}]}),
        )
        .await;
    let model_id = lm["model"]["info"]["model_id"].as_str().unwrap().to_owned();
    let location = lm["model"]["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(model_id.starts_with("m-"));
    assert_eq!(
        location,
        format!("mlflow-artifacts:/{exp}/models/{model_id}/artifacts")
    );
    assert_eq!(lm["model"]["info"]["status"], "LOGGED_MODEL_PENDING");
    s.ok(
        Method::POST,
        &format!("{API}/logged-models/{model_id}/params"),
        json!({"params": [{"key": "m", "value": "1"}]}),
    )
    .await;
    let tagged = s
        .ok(
            Method::PATCH,
            &format!("{API}/logged-models/{model_id}/tags"),
            json!({"tags": [{"key": "a/b", "value": "1"}, {"key": "keep", "value": "2"}]}),
        )
        .await;
    assert_eq!(tagged["model"]["info"]["tags"].as_array().unwrap().len(), 2);
    s.ok(
        Method::DELETE,
        &format!("{API}/logged-models/{model_id}/tags/a/b"),
        json!({}),
    )
    .await;
    let finalized = s
        .ok(
            Method::PATCH,
            &format!("{API}/logged-models/{model_id}"),
            json!({"model_id": model_id, "status": "LOGGED_MODEL_READY"}),
        )
        .await;
    assert_eq!(finalized["model"]["info"]["status"], "LOGGED_MODEL_READY");
    assert_eq!(
        finalized["model"]["info"]["tags"],
        json!([{"key": "keep", "value": "2"}])
    );
    let found = s
        .ok(
            Method::POST,
            &format!("{API}/logged-models/search"),
            json!({"experiment_ids": [exp], "filter": "name = 'adder'"}),
        )
        .await;
    assert_eq!(found["models"][0]["info"]["model_id"], model_id);
    s.put_artifact(
        &format!("{exp}/models/{model_id}/artifacts/MLmodel"),
        b"flavors: {}\n",
    )
    .await;
    let files = s
        .ok(
            Method::GET,
            &format!("{API}/logged-models/{model_id}/artifacts/directories"),
            json!({}),
        )
        .await;
    assert_eq!(files["root_uri"], location);
    assert_eq!(files["files"][0]["path"], "MLmodel");

    // A version from the logged model: run_id comes from the model, model_id is not echoed,
    // the download URI is the model's artifact location, and the model is tagged with it.
    let mv = s
        .ok(
            Method::POST,
            &format!("{API}/model-versions/create"),
            json!({"name": "fraud", "source": format!("models:/{model_id}"), "model_id": model_id}),
        )
        .await;
    assert_eq!(mv["model_version"]["run_id"], run_id);
    assert!(mv["model_version"].get("model_id").is_none());
    let version = mv["model_version"]["version"].as_str().unwrap().to_owned();
    let download = s
        .ok(
            Method::GET,
            &format!("{API}/model-versions/get-download-uri"),
            json!({"name": "fraud", "version": version}),
        )
        .await;
    assert_eq!(download["artifact_uri"], location);
    let model = s
        .ok(
            Method::GET,
            &format!("{API}/logged-models/{model_id}"),
            json!({}),
        )
        .await;
    let tags = model["model"]["info"]["tags"].as_array().unwrap();
    let versions = tags
        .iter()
        .find(|t| t["key"] == "mlflow.modelVersions")
        .expect("mlflow.modelVersions tag");
    assert_eq!(
        versions["value"],
        format!(r#"[{{"name": "fraud", "version": {version}}}]"#)
    );
    let wrong_model = s
        .call(
            Method::POST,
            &format!("{API}/model-versions/create"),
            json!({"name": "fraud", "source": format!("models:/{model_id}"), "model_id": "m-other"}),
        )
        .await;
    assert_error(wrong_model, 400, "INVALID_PARAMETER_VALUE");

    // models:/NAME/VERSION sources take that version's lineage.
    let copy = s
        .ok(
            Method::POST,
            &format!("{API}/model-versions/create"),
            json!({"name": "fraud", "source": "models:/fraud@champion"}),
        )
        .await;
    assert_eq!(copy["model_version"]["source"], "models:/fraud/2");
    assert_eq!(copy["model_version"]["run_id"], run_id);

    // Registered-model search leaves prompts out but keeps models without the prompt tag.
    s.ok(
        Method::POST,
        &format!("{API}/registered-models/create"),
        json!({"name": "a-prompt", "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]}),
    )
    .await;
    let models = s
        .ok(
            Method::GET,
            &format!("{API}/registered-models/search"),
            json!({"filter": "tag.`mlflow.prompt.is_prompt` != 'true'"}),
        )
        .await;
    let names: Vec<&str> = models["registered_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fraud"]);

    // Rename, delete; then 404s.
    s.ok(
        Method::POST,
        &format!("{API}/registered-models/rename"),
        json!({"name": "fraud", "new_name": "fraud2"}),
    )
    .await;
    s.ok(
        Method::DELETE,
        &format!("{API}/registered-models/delete"),
        json!({"name": "fraud2"}),
    )
    .await;
    let gone = s
        .call(
            Method::GET,
            &format!("{API}/registered-models/get"),
            json!({"name": "fraud2"}),
        )
        .await;
    assert_error(gone, 404, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_history_records_moves_with_reasons() {
    let s = Server::sqlite().await;
    let (_, run_id, uri) = new_run(&s, "history").await;
    s.ok(
        Method::POST,
        &format!("{API}/registered-models/create"),
        json!({"name": "m"}),
    )
    .await;
    for _ in 0..3 {
        s.ok(
            Method::POST,
            &format!("{API}/model-versions/create"),
            json!({"name": "m", "source": format!("{uri}/model"), "run_id": run_id}),
        )
        .await;
    }
    let set = |version: &str, reason: &str| json!({"name": "m", "alias": "champion", "version": version, "reason": reason});
    s.ok(
        Method::POST,
        &format!("{API}/registered-models/alias"),
        set("1", "first"),
    )
    .await;
    s.ok(
        Method::POST,
        &format!("{API}/registered-models/alias"),
        set("2", "better auc"),
    )
    .await;
    s.ok(
        Method::POST,
        &format!("{API}/registered-models/alias"),
        json!({"name": "m", "alias": "other", "version": "3"}),
    )
    .await;
    s.ok(
        Method::DELETE,
        &format!("{API}/registered-models/alias"),
        json!({"name": "m", "alias": "champion", "reason": "rollback"}),
    )
    .await;
    // Deleting version 3 moves `other` away implicitly.
    s.ok(
        Method::DELETE,
        &format!("{API}/model-versions/delete"),
        json!({"name": "m", "version": "3"}),
    )
    .await;

    let history = s
        .ok(
            Method::GET,
            &format!("{API}/registered-models/alias-history"),
            json!({"name": "m", "alias": "champion"}),
        )
        .await;
    let events = history["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{history}");
    let summary: Vec<(Value, Value, Value)> = events
        .iter()
        .map(|e| {
            (
                e["from_version"].clone(),
                e["to_version"].clone(),
                e["reason"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (json!("2"), Value::Null, json!("rollback")),
            (json!("1"), json!("2"), json!("better auc")),
            (Value::Null, json!("1"), json!("first")),
        ],
        "newest first, with from, to and why"
    );
    for e in events {
        assert_eq!(e["actor"], "anonymous");
        assert_eq!(e["name"], "m");
        assert!(e["timestamp"].as_i64().unwrap() > 0);
        assert!(e["id"].as_i64().unwrap() > 0);
    }
    let all = s
        .ok(
            Method::GET,
            &format!("{API}/registered-models/alias-history"),
            json!({"name": "m"}),
        )
        .await;
    let all = all["events"].as_array().unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0]["alias"], "other");
    assert_eq!(all[0]["implicit"], true);
    assert_eq!(all[0]["to_version"], Value::Null);

    // Paging.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = json!({"name": "m", "max_results": 2});
        if let Some(t) = &token {
            params["page_token"] = json!(t);
        }
        let page = s
            .ok(
                Method::GET,
                &format!("{API}/registered-models/alias-history"),
                params,
            )
            .await;
        seen.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].clone()),
        );
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    let ids: Vec<Value> = all.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(seen, ids);
    let unknown = s
        .call(
            Method::GET,
            &format!("{API}/registered-models/alias-history"),
            json!({"name": "nope"}),
        )
        .await;
    assert_error(unknown, 404, "RESOURCE_DOES_NOT_EXIST");
}

/// Reads Server-Sent Events from a response: (event name, data) pairs and comments.
struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Sse {
    Comment(String),
    Event {
        event: String,
        id: Option<String>,
        data: Value,
    },
}

impl SseReader {
    async fn open(s: &Server, query: &str) -> SseReader {
        let response = s
            .client
            .get(s.url(&format!("/api/2.0/cerulean/watch?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        SseReader {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event or comment, within 10 s.
    async fn next(&mut self) -> Sse {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let (mut event, mut id, mut data, mut comment) =
                        (String::new(), None, String::new(), None);
                    for line in block.lines() {
                        if let Some(c) = line.strip_prefix(':') {
                            comment = Some(c.trim().to_owned());
                        } else if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("id:") {
                            id = Some(v.trim().to_owned());
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim());
                        }
                    }
                    if let Some(comment) = comment.filter(|_| event.is_empty()) {
                        return Sse::Comment(comment);
                    }
                    return Sse::Event {
                        event,
                        id,
                        data: serde_json::from_str(&data).unwrap(),
                    };
                }
                let chunk = self.stream.next().await.expect("the stream ends").unwrap();
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("an event within 10 s")
    }

    /// The next event, skipping comments.
    async fn next_event(&mut self) -> (String, Option<String>, Value) {
        loop {
            if let Sse::Event { event, id, data } = self.next().await {
                return (event, id, data);
            }
        }
    }

    async fn until_ready(&mut self) -> Vec<(String, Option<String>, Value)> {
        let mut before = Vec::new();
        loop {
            match self.next().await {
                Sse::Comment(c) if c == "ready" => return before,
                Sse::Comment(_) => {}
                Sse::Event { event, id, data } => before.push((event, id, data)),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_stream_follows_alias_moves() {
    let s = Server::sqlite().await;
    let (_, run_id, uri) = new_run(&s, "watch").await;
    for name in ["served", "unrelated"] {
        s.ok(
            Method::POST,
            &format!("{API}/registered-models/create"),
            json!({"name": name}),
        )
        .await;
        for _ in 0..2 {
            s.ok(
                Method::POST,
                &format!("{API}/model-versions/create"),
                json!({"name": name, "source": format!("{uri}/model"), "run_id": run_id}),
            )
            .await;
        }
    }
    let mut all = SseReader::open(&s, "").await;
    assert!(all.until_ready().await.is_empty());
    let mut served = SseReader::open(&s, "name=served").await;
    served.until_ready().await;

    s.ok(
        Method::POST,
        &format!("{API}/registered-models/alias"),
        json!({"name": "unrelated", "alias": "champion", "version": "1"}),
    )
    .await;
    s.ok(
        Method::POST,
        &format!("{API}/registered-models/alias"),
        json!({"name": "served", "alias": "champion", "version": "2", "reason": "promote"}),
    )
    .await;

    let (event, id, data) = served.next_event().await;
    assert_eq!(event, "alias_moved");
    assert_eq!(data["type"], "alias_moved");
    assert_eq!(data["name"], "served", "the name filter drops other models");
    assert_eq!(data["to_version"], "2");
    assert_eq!(data["reason"], "promote");
    assert_eq!(data["actor"], "anonymous");
    assert_eq!(id.as_deref(), Some(data["sequence"].to_string().as_str()));
    let served_event_id = data["alias_event_id"].as_i64().unwrap();

    let (_, _, first) = all.next_event().await;
    assert_eq!(first["name"], "unrelated");
    let (_, _, second) = all.next_event().await;
    assert_eq!(second["name"], "served");
    assert!(second["sequence"].as_u64() > first["sequence"].as_u64());

    // Other kinds of events: a version created, a stage changed.
    s.ok(
        Method::POST,
        &format!("{API}/model-versions/transition-stage"),
        json!({"name": "served", "version": "2", "stage": "Staging", "archive_existing_versions": false}),
    )
    .await;
    let (event, _, data) = served.next_event().await;
    assert_eq!(event, "stage_changed");
    assert_eq!(
        (data["from_stage"].as_str(), data["to_stage"].as_str()),
        (Some("None"), Some("Staging"))
    );
    s.ok(
        Method::POST,
        &format!("{API}/model-versions/create"),
        json!({"name": "served", "source": format!("{uri}/model"), "run_id": run_id}),
    )
    .await;
    let (event, _, data) = served.next_event().await;
    assert_eq!(event, "version_created");
    assert_eq!(data["version"], "3");

    // A follower that was away replays what it missed from the store, then goes live.
    drop(served);
    s.ok(
        Method::POST,
        &format!("{API}/registered-models/alias"),
        json!({"name": "served", "alias": "champion", "version": "1", "reason": "rollback"}),
    )
    .await;
    s.ok(
        Method::DELETE,
        &format!("{API}/registered-models/alias"),
        json!({"name": "served", "alias": "champion"}),
    )
    .await;
    let mut resumed = SseReader::open(
        &s,
        &format!("name=served&since_alias_event={served_event_id}"),
    )
    .await;
    let replayed = resumed.until_ready().await;
    let moves: Vec<(Value, Value, Option<String>)> = replayed
        .iter()
        .map(|(event, id, data)| {
            assert_eq!(event, "alias_moved");
            assert_eq!(data["sequence"], 0, "replayed events have sequence 0");
            (
                data["from_version"].clone(),
                data["to_version"].clone(),
                id.clone(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        vec![
            (json!("2"), json!("1"), None),
            (json!("1"), Value::Null, None)
        ]
    );
    s.ok(
        Method::POST,
        &format!("{API}/registered-models/alias"),
        json!({"name": "served", "alias": "champion", "version": "3"}),
    )
    .await;
    let (_, id, data) = resumed.next_event().await;
    assert_eq!(data["to_version"], "3");
    assert!(id.is_some(), "live events carry their sequence as id");
    let bad = s
        .call(
            Method::GET,
            "/api/2.0/cerulean/watch",
            json!({"since_alias_event": "x"}),
        )
        .await;
    assert_error(bad, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_and_roles() {
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        keys.path(),
        r#"
        [[key]]
        name = "viewer"
        role = "reader"
        key = "reader-key"

        [[key]]
        name = "trainer"
        role = "writer"
        key = "writer-key"

        [[key]]
        name = "ci"
        role = "promoter"
        key = "promoter-key"

        [[key]]
        name = "root"
        role = "admin"
        key = "admin-key"
        "#,
    )
    .unwrap();
    let path = keys.path().to_path_buf();
    let s = Server::with(move |c| c.keys_file = Some(path)).await;
    let get_path = format!("{API}/experiments/get");
    let get0 = |key: Option<&'static str>| {
        s.call_as(key, Method::GET, &get_path, json!({"experiment_id": "0"}))
    };
    assert_error(get0(None).await, 401, "UNAUTHENTICATED");
    assert_error(get0(Some("wrong")).await, 401, "UNAUTHENTICATED");
    assert_eq!(get0(Some("reader-key")).await.0, StatusCode::OK);

    let create_path = format!("{API}/registered-models/create");
    let create = |key: &'static str, name: &'static str| {
        s.call_as(Some(key), Method::POST, &create_path, json!({"name": name}))
    };
    assert_error(create("reader-key", "x").await, 403, "PERMISSION_DENIED");
    let (status, body) = create("writer-key", "guarded").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["registered_model"]["user_id"], "trainer");
    let (status, body) = s
        .call_as(
            Some("writer-key"),
            Method::POST,
            &format!("{API}/model-versions/create"),
            json!({"name": "guarded", "source": "s3://b/m"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let alias_path = format!("{API}/registered-models/alias");
    let alias = |key: &'static str| {
        s.call_as(
            Some(key),
            Method::POST,
            &alias_path,
            json!({"name": "guarded", "alias": "champion", "version": "1", "reason": "ok"}),
        )
    };
    assert_error(alias("writer-key").await, 403, "PERMISSION_DENIED");
    assert_eq!(alias("promoter-key").await.0, StatusCode::OK);
    let (_, history) = s
        .call_as(
            Some("reader-key"),
            Method::GET,
            &format!("{API}/registered-models/alias-history"),
            json!({"name": "guarded"}),
        )
        .await;
    assert_eq!(
        history["events"][0]["actor"], "ci",
        "the key's name is recorded"
    );

    let delete_path = format!("{API}/registered-models/delete");
    let delete = |key: &'static str| {
        s.call_as(
            Some(key),
            Method::DELETE,
            &delete_path,
            json!({"name": "guarded"}),
        )
    };
    assert_error(delete("promoter-key").await, 403, "PERMISSION_DENIED");
    assert_eq!(delete("admin-key").await.0, StatusCode::OK);

    // Open without a key: health, version, server-info; multipart part uploads are checked by
    // their URL signature instead (here a missing one: 403 from the artifact routes, not 401).
    assert_eq!(
        s.call(Method::GET, "/health", json!({})).await.0,
        StatusCode::OK
    );
    assert_eq!(
        s.call(Method::GET, "/api/3.0/mlflow/server-info", json!({}))
            .await
            .0,
        StatusCode::OK
    );
    let part = s
        .client
        .put(s.url(
            "/api/2.0/mlflow-artifacts/mpu/part/1/x/artifacts/f.bin?upload_id=u&part_number=1",
        ))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::FORBIDDEN);
    let body: Value = part.json().await.unwrap();
    assert_eq!(body["error_code"], "PERMISSION_DENIED");
    let upload = s
        .client
        .put(s.url("/api/2.0/mlflow-artifacts/artifacts/1/x/artifacts/f.bin"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        upload.status(),
        StatusCode::UNAUTHORIZED,
        "plain uploads need a key"
    );
    // The watch stream needs a key too.
    let watch = s
        .call(Method::GET, "/api/2.0/cerulean/watch", json!({}))
        .await;
    assert_error(watch, 401, "UNAUTHENTICATED");
}

// ---- the stock mlflow client, end to end ------------------------------------------------------

/// Runs one end-to-end check at a time: each drives a server with a Python process, and the
/// machine has few cores.
static E2E: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The Python of the venv `.ci/setup-mlflow.sh` makes (`CERULEAN_MLFLOW_PYTHON` overrides it).
fn mlflow_python() -> PathBuf {
    if let Ok(python) = std::env::var("CERULEAN_MLFLOW_PYTHON") {
        return python.into();
    }
    let venv = std::env::var("CERULEAN_MLFLOW_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/cerulean/mlflow-venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.is_file() && venv.join(".cerulean-requirements.sha256").is_file(),
        "the mlflow 3.17.2 virtual environment is missing at {}: create it with \
         `bash .ci/setup-mlflow.sh` (or set CERULEAN_MLFLOW_PYTHON); this test does not skip",
        venv.display()
    );
    python
}

/// Panics with instructions when a service does not accept connections.
fn require_service(name: &str, endpoint: &str) {
    let host_port = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let reachable = host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "{name} is not running at {endpoint}. Start the test services with `bash .ci/services.sh`; \
         this test does not skip."
    );
}

/// Runs `tests/python/mlflow_e2e.py` against the server; returns its summary line after
/// asserting that every check passed (`expected` checks).
async fn run_mlflow_e2e(s: &Server, label: &str, expected: usize) -> String {
    let python = mlflow_python();
    let script = repo_root().join("tests/python/mlflow_e2e.py");
    let mut command = tokio::process::Command::new(&python);
    command
        .arg(&script)
        .arg("--tracking-uri")
        .arg(&s.base)
        .arg("--wait")
        .arg("30")
        .current_dir(repo_root())
        .env("MLFLOW_TRACKING_URI", &s.base)
        .kill_on_drop(true);
    if let Some(dir) = &s.artifacts_dir {
        command.arg("--artifact-check-dir").arg(dir);
    }
    let output = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .expect("the mlflow checks finish within 10 minutes")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" passed, "))
        .unwrap_or("no summary")
        .to_owned();
    println!("[{label}] {summary}");
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        output.status.success() && failures.is_empty(),
        "[{label}] mlflow end-to-end checks failed: {summary}\n{}\n--- stdout ---\n{stdout}\n--- \
         stderr (tail) ---\n{}",
        failures.join("\n"),
        stderr
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        summary,
        format!("{expected} passed, 0 failed"),
        "[{label}] every check runs"
    );
    summary
}

/// Mirrors a remote artifact store into a local directory every 100 ms, reading the bucket or
/// container directly (not through the server), so `--artifact-check-dir` can check that the
/// bytes the mlflow client uploaded landed in Azurite or S3.
fn mirror(store: Arc<ArtifactStore>, dir: PathBuf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut done: HashSet<(String, Option<u64>)> = HashSet::new();
        loop {
            let mut pending: Vec<Option<ArtifactPath>> = vec![None];
            while let Some(at) = pending.pop() {
                let Ok(entries) = store.list(at.as_ref()).await else {
                    continue;
                };
                for entry in entries {
                    let path = ArtifactPath::join_opt(at.as_ref(), &entry.path).unwrap();
                    if entry.is_dir {
                        pending.push(Some(path));
                        continue;
                    }
                    if !done.insert((path.to_string(), entry.file_size)) {
                        continue;
                    }
                    let Ok(download) = store.get(&path, None).await else {
                        continue;
                    };
                    let chunks: Vec<_> = download.body.collect().await;
                    let bytes: Vec<u8> = chunks
                        .into_iter()
                        .flat_map(|c| c.map(|b| b.to_vec()).unwrap_or_default())
                        .collect();
                    let local = dir.join(path.as_str());
                    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
                    std::fs::write(local, bytes).unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// For remote artifact stores: the files the checks logged are in the bucket or container,
/// under `<experiment>/<run>/artifacts/...`.
async fn assert_artifacts_stored(s: &Server) {
    let (store, prefix) = s.registry.artifacts().object_store();
    let keys: Vec<String> = store
        .list(Some(prefix))
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await;
    for tail in [
        "/artifacts/hello.txt",
        "/artifacts/tree/nested/deeper/c.bin",
        "/artifacts/blobs/big.bin",
        "/artifacts/MLmodel",
    ] {
        assert!(
            keys.iter().any(|k| k.ends_with(tail)),
            "no object ending in {tail} among {} keys",
            keys.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlflow_client_sqlite_local_artifacts() {
    let _one = E2E.lock().await;
    let s = Server::sqlite().await;
    run_mlflow_e2e(&s, "sqlite + local", 36).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlflow_client_postgres_local_artifacts() {
    use sqlx::Connection;
    let _one = E2E.lock().await;
    sqlx::any::install_default_drivers();
    let admin = common::pg_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {admin} ({e}); start one (trust auth, user postgres) \
             or point CERULEAN_TEST_PG_URL at one"
        )
    });
    let db = format!("cerulean_http_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{base}/{db}");
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        let tmp = tempfile::tempdir().unwrap();
        let artifacts = tmp.path().join("artifacts");
        let config = RegistryConfig::new(url.clone(), artifacts.display().to_string());
        let s = Server::start(config, tmp, Some(artifacts)).await;
        run_mlflow_e2e(&s, "postgresql + local", 36).await;
        drop(s);
    }))
    .await;
    // The server's pool may still hold connections: FORCE closes them.
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlflow_client_sqlite_azurite_artifacts() {
    let _one = E2E.lock().await;
    let url = std::env::var("CERULEAN_TEST_AZURITE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:10000".into());
    require_service("Azurite", &url);
    let container = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    let s = Server::with(|c| {
        c.artifacts_destination = format!("az://{container}/mlflow");
        c.artifact_options = vec![
            ("account_name".into(), "devstoreaccount1".into()),
            ("access_key".into(), AZURITE_KEY.into()),
            ("endpoint".into(), format!("{url}/devstoreaccount1")),
            ("allow_http".into(), "true".into()),
        ];
    })
    .await;
    let mirrored = tempfile::tempdir().unwrap();
    let mirroring = mirror(
        s.registry.artifacts().clone(),
        mirrored.path().to_path_buf(),
    );
    let s = Server {
        artifacts_dir: Some(mirrored.path().to_path_buf()),
        ..s
    };
    run_mlflow_e2e(&s, "sqlite + azurite", 36).await;
    mirroring.abort();
    assert_artifacts_stored(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlflow_client_sqlite_s3_artifacts() {
    let _one = E2E.lock().await;
    let endpoint = std::env::var("CERULEAN_TEST_S3_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5000".into());
    require_service("The S3 server (moto)", &endpoint);
    let bucket =
        std::env::var("CERULEAN_TEST_S3_BUCKET").unwrap_or_else(|_| "cerulean-test".into());
    let s = Server::with(|c| {
        c.artifacts_destination = format!("s3://{bucket}/{}", uuid::Uuid::new_v4().simple());
        c.artifact_options = vec![
            ("endpoint".into(), endpoint.clone()),
            ("allow_http".into(), "true".into()),
            ("access_key_id".into(), "testing".into()),
            ("secret_access_key".into(), "testing".into()),
            ("region".into(), "us-east-1".into()),
        ];
    })
    .await;
    let mirrored = tempfile::tempdir().unwrap();
    let mirroring = mirror(
        s.registry.artifacts().clone(),
        mirrored.path().to_path_buf(),
    );
    let s = Server {
        artifacts_dir: Some(mirrored.path().to_path_buf()),
        ..s
    };
    run_mlflow_e2e(&s, "sqlite + s3 (moto)", 36).await;
    mirroring.abort();
    assert_artifacts_stored(&s).await;
}
