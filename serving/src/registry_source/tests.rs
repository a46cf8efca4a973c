//! The follower against a real registry served in-process (SQLite, local artifacts).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cerulean_registry::auth::Principal;
use cerulean_registry::client::RegistryClient;
use cerulean_registry::service::{Registry, RegistryConfig};

use super::{FollowerConfig, RegistryFollower};
use crate::backend::candle::tests::write_mlp;
use crate::config::ModelDefaults;
use crate::error::ServingError;
use crate::metrics::Metrics;
use crate::repository::{ModelRepository, RepositorySources};

struct Fixture {
    registry: Arc<Registry>,
    client: RegistryClient,
    _data: tempfile::TempDir,
}

async fn start_registry() -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let config = RegistryConfig::new(
        format!("sqlite://{}", data.path().join("r.db").display()),
        data.path().join("artifacts").display().to_string(),
    );
    let registry = Arc::new(Registry::open(config).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = cerulean_registry::http::router(registry.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = RegistryClient::new(&format!("http://{addr}"), None).unwrap();
    Fixture {
        registry,
        client,
        _data: data,
    }
}

/// Logs `files` as the run artifact folder `model` of a new run and registers it as a version.
async fn register(client: &RegistryClient, name: &str, files: &[(&str, Vec<u8>)]) -> String {
    let experiment = client.ensure_experiment("follower-tests").await.unwrap();
    let run = client
        .create_run(&experiment, "train", 0, &[])
        .await
        .unwrap();
    let root = run
        .info
        .artifact_uri
        .strip_prefix("mlflow-artifacts:/")
        .unwrap()
        .to_string();
    for (file, bytes) in files {
        client
            .upload_artifact(&format!("{root}/model/{file}"), bytes.clone())
            .await
            .unwrap();
    }
    client.ensure_registered_model(name).await.unwrap();
    let run_id = run.info.run_id.clone();
    let version = client
        .create_model_version(
            name,
            &format!("runs:/{run_id}/model"),
            Some(&run_id),
            "",
            &[],
        )
        .await
        .unwrap();
    version.version
}

fn candle_files() -> Vec<(&'static str, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    write_mlp(dir.path(), false);
    let read = |f: &str| std::fs::read(dir.path().join(f)).unwrap();
    vec![
        ("model.json", read("model.json")),
        ("model.safetensors", read("model.safetensors")),
    ]
}

fn pyfunc_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "MLmodel",
            b"flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n  sklearn:\n    pickled_model: model.pkl\n"
                .to_vec(),
        ),
        ("model.pkl", b"not really a pickle".to_vec()),
    ]
}

fn repository(local: &Path) -> Arc<ModelRepository> {
    Arc::new(ModelRepository::new(
        RepositorySources {
            roots: vec![local.to_path_buf()],
            ..RepositorySources::default()
        },
        ModelDefaults {
            instance_count: 1,
            ..ModelDefaults::default()
        },
        Metrics::new(),
    ))
}

/// Waits up to 20 s for `check` to hold.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

fn default_of(repo: &ModelRepository, name: &str) -> Option<u64> {
    repo.get(name, None).ok().map(|m| m.version())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_versions_aliases_and_deletions() {
    let fixture = start_registry().await;
    let client = &fixture.client;
    let local = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let repo = repository(local.path());
    let mut config = FollowerConfig::new(cache.path());
    config.keep_versions = 1;
    config.poll_interval = Duration::from_secs(60);
    let follower = RegistryFollower::start(client.clone(), repo.clone(), config);

    // A version registered while following is served within seconds (the watch stream).
    register(client, "m", &candle_files()).await;
    eventually("version 1 serves", || default_of(&repo, "m") == Some(1)).await;
    assert!(cache.path().join("m/1/model.safetensors").exists());

    // The newest serves without a champion; the older one leaves the newest-1 policy.
    register(client, "m", &candle_files()).await;
    eventually("version 2 is the default", || {
        default_of(&repo, "m") == Some(2)
    })
    .await;
    eventually("version 1 is unloaded", || {
        repo.get("m", Some("1")).is_err()
    })
    .await;
    // ... but is loaded again on request.
    assert_eq!(repo.get_or_load("m", Some("1")).await.unwrap().version(), 1);

    // The champion alias picks the default.
    client
        .set_alias("m", "champion", "1", "better")
        .await
        .unwrap();
    eventually("the champion serves", || default_of(&repo, "m") == Some(1)).await;
    assert!(repo.get("m", Some("2")).is_ok(), "the newest stays loaded");
    follower.sync().await.unwrap();
    assert_eq!(default_of(&repo, "m"), Some(1), "a full read agrees");

    // A Python model is reported unavailable with the reason; the champion keeps serving.
    register(client, "m", &pyfunc_files()).await;
    eventually("version 3 is reported", || {
        repo.index(false)
            .iter()
            .any(|e| e.name == "m" && e.version == "3" && e.reason.contains("pyfunc"))
    })
    .await;
    let Err(err) = repo.get("m", Some("3")) else {
        panic!("version 3 serves")
    };
    assert!(
        matches!(&err, ServingError::Unavailable(r) if r.contains("sklearn")),
        "{err}"
    );
    assert_eq!(default_of(&repo, "m"), Some(1));

    // Without the alias the newest (unservable) is the target: the previous default keeps serving.
    client.delete_alias("m", "champion").await.unwrap();
    follower.sync().await.unwrap();
    assert_eq!(default_of(&repo, "m"), Some(1));

    // A deleted model is no longer served, and its cached files are removed.
    fixture
        .registry
        .delete_registered_model("m", &Principal::anonymous())
        .await
        .unwrap();
    follower.sync().await.unwrap();
    assert!(matches!(
        repo.get("m", None),
        Err(ServingError::NotFound(_))
    ));
    assert!(!cache.path().join("m").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_without_the_registry_and_catches_up() {
    // Nothing listens on this port yet: the follower retries.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let local = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let repo = repository(local.path());
    let client = RegistryClient::new(&format!("http://{addr}"), None).unwrap();
    let _follower = RegistryFollower::start(
        client.clone(),
        repo.clone(),
        FollowerConfig::new(cache.path()),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let data = tempfile::tempdir().unwrap();
    let config = RegistryConfig::new(
        format!("sqlite://{}", data.path().join("r.db").display()),
        data.path().join("artifacts").display().to_string(),
    );
    let registry = Arc::new(Registry::open(config).await.unwrap());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let app = cerulean_registry::http::router(registry);
    tokio::spawn(async move { axum::serve(listener, app).await });
    register(&client, "late", &candle_files()).await;
    for _ in 0..600 {
        if default_of(&repo, "late") == Some(1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the follower did not catch up with a registry that started late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_model_of_the_same_name_wins() {
    let fixture = start_registry().await;
    let local = tempfile::tempdir().unwrap();
    let dir = local.path().join("m/7");
    std::fs::create_dir_all(&dir).unwrap();
    write_mlp(&dir, false);
    let cache = tempfile::tempdir().unwrap();
    let repo = repository(local.path());
    repo.load_all().await;
    register(&fixture.client, "m", &candle_files()).await;
    let follower = RegistryFollower::start(
        fixture.client.clone(),
        repo.clone(),
        FollowerConfig::new(cache.path()),
    );
    follower.sync().await.unwrap();
    assert_eq!(default_of(&repo, "m"), Some(7));
    assert!(repo.managed_models().is_empty());
}
