//! End-to-end tests of the registry as users run it: `cerulean up` (the registry on the inference
//! port) driven by the real `mlflow` client, the pipeline commands `cerulean promote` and
//! `cerulean models versions` with API keys, and durability of acknowledged writes across kill -9.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cerulean_registry::client::RegistryClient;
use cerulean_registry::entities::Metric;
use common::{Server, cerulean, http_get, mlflow_python, repo_root};
use parking_lot::Mutex;

fn sqlite_uri(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("registry.db").display())
}

/// `cerulean up` serves the registry and inference on one port; the stock mlflow client's flows all
/// work against it.
#[test]
fn up_serves_the_registry_beside_inference_for_the_mlflow_client() {
    let data = tempfile::tempdir().unwrap();
    let artifacts = data.path().join("artifacts");
    let home = std::env::var_os("CERULEAN_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| data.path().join("home"));
    let server = Server::start(
        "up",
        &[
            "--backend-store-uri",
            &sqlite_uri(data.path()),
            "--artifacts-destination",
            artifacts.to_str().unwrap(),
        ],
        &[("CERULEAN_HOME", home.as_path())],
    );
    let (status, body) = http_get(&server.http, "/api/2.0/mlflow/no-such-endpoint").unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("ENDPOINT_NOT_FOUND"), "{body}");
    let (status, body) = http_get(&server.http, "/v2/no-such-route").unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("\"error\""), "{body}");
    let (status, _) = http_get(&server.http, "/v2/models/silero_vad/ready").unwrap();
    assert_eq!(
        status, 200,
        "the prebuilt models are served on the same port"
    );

    let output = Command::new(mlflow_python())
        .arg(repo_root().join("tests/python/mlflow_e2e.py"))
        .args(["--tracking-uri", &server.base_url()])
        .args(["--artifact-check-dir", artifacts.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(" 0 failed"),
        "mlflow client checks failed:\n{stdout}\n{}\n--- server log\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
}

const KEYS: &str = r#"
[[key]]
name = "admin"
role = "admin"
key = "admin-key"

[[key]]
name = "ci"
role = "promoter"
key = "ci-key"

[[key]]
name = "viewer"
role = "reader"
key = "viewer-key"
"#;

fn promote(server: &Server, args: &[&str], key: Option<&str>) -> (i32, String, String) {
    let mut cmd = cerulean();
    cmd.arg("promote")
        .args(args)
        .args(["--registry", &server.base_url()]);
    cmd.env_remove("CERULEAN_API_KEY")
        .env_remove("MLFLOW_TRACKING_TOKEN");
    if let Some(key) = key {
        cmd.args(["--api-key", key]);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Pipelines promote with `cerulean promote` and read versions with `cerulean models versions`; exit
/// codes tell a CI job what happened, and keys with roles guard the registry.
#[tokio::test(flavor = "multi_thread")]
async fn promote_and_versions_commands_with_api_keys() {
    let data = tempfile::tempdir().unwrap();
    let keys = data.path().join("keys.toml");
    std::fs::write(&keys, KEYS).unwrap();
    let artifacts = data.path().join("artifacts");
    let server = Server::start_registry(
        &[
            "--backend-store-uri",
            &sqlite_uri(data.path()),
            "--artifacts-destination",
            artifacts.to_str().unwrap(),
            "--api-keys",
            keys.to_str().unwrap(),
        ],
        &[],
    );
    let admin = RegistryClient::new(&server.base_url(), Some("admin-key".into())).unwrap();
    admin.ensure_registered_model("digits").await.unwrap();
    for _ in 0..2 {
        admin
            .create_model_version("digits", "s3://models/digits", None, "", &[])
            .await
            .unwrap();
    }
    let anonymous = RegistryClient::new(&server.base_url(), None).unwrap();
    let refused = anonymous.get_registered_model("digits").await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");

    let (code, out, err) = promote(
        &server,
        &["digits", "--version", "1", "--reason", "first model"],
        Some("ci-key"),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "digits@champion: (none) -> 1");
    let (code, out, _) = promote(
        &server,
        &["digits", "--version", "2", "--reason", "better F1"],
        Some("ci-key"),
    );
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "digits@champion: 1 -> 2");
    let (code, _, err) = promote(&server, &["digits", "--version", "1"], Some("viewer-key"));
    assert_eq!(code, 3, "a reader may not promote: {err}");
    let (code, _, err) = promote(&server, &["digits", "--version", "1"], None);
    assert_eq!(code, 3, "no key: {err}");
    let (code, _, err) = promote(&server, &["digits", "--version", "9"], Some("ci-key"));
    assert_eq!(code, 2, "unknown version: {err}");
    assert!(
        err.contains("not found") || err.contains("RESOURCE_DOES_NOT_EXIST"),
        "{err}"
    );
    let (code, _, _) = promote(&server, &["nothing", "--version", "1"], Some("ci-key"));
    assert_eq!(code, 2);

    let versions = cerulean()
        .args([
            "models",
            "versions",
            "digits",
            "--registry",
            &server.base_url(),
            "--api-key",
            "viewer-key",
        ])
        .output()
        .unwrap();
    assert!(versions.status.success());
    let listing = String::from_utf8_lossy(&versions.stdout);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    assert!(
        lines[2].starts_with("2 ") && lines[2].contains("champion"),
        "{listing}"
    );
    assert!(
        lines[1].starts_with("1 ") && !lines[1].contains("champion"),
        "{listing}"
    );

    let history = admin
        .alias_history("digits", Some("champion"))
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].to_version.as_deref(), Some("2"));
    assert_eq!(history[0].from_version.as_deref(), Some("1"));
    assert_eq!(history[0].actor, "ci");
    assert_eq!(history[0].reason, "better F1");
    assert_eq!(history[1].reason, "first model");
}

/// Listening beyond loopback without keys is refused unless asked for.
#[test]
fn an_open_registry_on_the_network_needs_keys_or_no_auth() {
    let data = tempfile::tempdir().unwrap();
    let out = cerulean()
        .args([
            "registry",
            "--http-addr",
            &format!("0.0.0.0:{}", common::free_port()),
        ])
        .args(["--backend-store-uri", &sqlite_uri(data.path())])
        .args([
            "--artifacts-destination",
            data.path().join("a").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--api-keys"), "{err}");
}

/// Concurrent writers, kill -9 of the server, restart: every acknowledged metric and version is
/// there, and version numbers never repeat.
#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start_registry(
        &[
            "--backend-store-uri",
            &sqlite_uri(data.path()),
            "--artifacts-destination",
            data.path().join("artifacts").to_str().unwrap(),
        ],
        &[],
    );
    let client = RegistryClient::new(&server.base_url(), None).unwrap();
    let experiment = client.ensure_experiment("durability").await.unwrap();
    let run = client
        .create_run(&experiment, "writers", 0, &[])
        .await
        .unwrap();
    let run_id = run.info.run_id.clone();
    client.ensure_registered_model("durable").await.unwrap();

    let acked_metrics: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let acked_versions: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8 {
        let client = client.clone();
        let run_id = run_id.clone();
        let acked = acked_metrics.clone();
        writers.push(tokio::spawn(async move {
            for step in 0.. {
                let key = format!("w{w}");
                let metric = Metric::new(&key, step as f64, 1_700_000_000_000 + step, step);
                if client.log_metric(&run_id, &metric).await.is_err() {
                    return;
                }
                acked.lock().push((key, step));
            }
        }));
    }
    for _ in 0..2 {
        let client = client.clone();
        let acked = acked_versions.clone();
        writers.push(tokio::spawn(async move {
            loop {
                match client
                    .create_model_version("durable", "s3://models/durable", None, "", &[])
                    .await
                {
                    Ok(version) => acked.lock().push(version.version),
                    Err(_) => return,
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked_metrics.lock().len() < 500 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let metrics = acked_metrics.lock().clone();
    let versions = acked_versions.lock().clone();
    assert!(
        metrics.len() >= 500,
        "only {} writes were acknowledged",
        metrics.len()
    );

    server.restart();
    for w in 0..8 {
        let key = format!("w{w}");
        let history = client.metric_history(&run_id, &key).await.unwrap();
        let stored: std::collections::HashSet<i64> = history.iter().map(|m| m.step).collect();
        for (_, step) in metrics.iter().filter(|(k, _)| *k == key) {
            assert!(
                stored.contains(step),
                "acknowledged {key} step {step} was lost"
            );
        }
    }
    let stored = client.model_versions("durable").await.unwrap();
    for version in &versions {
        assert!(
            stored.iter().any(|v| &v.version == version),
            "acknowledged version {version} was lost"
        );
    }
    let mut numbers: Vec<u64> = stored.iter().map(|v| v.version.parse().unwrap()).collect();
    let count = numbers.len();
    numbers.dedup();
    assert_eq!(numbers.len(), count, "version numbers repeat");
    let next = client
        .create_model_version("durable", "s3://models/durable", None, "", &[])
        .await
        .unwrap();
    assert!(
        next.version.parse::<u64>().unwrap() > *numbers.iter().max().unwrap(),
        "a number used before the crash is never given again"
    );
}
