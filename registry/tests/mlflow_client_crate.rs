//! The `mlflow-client` crate (0.0.1, an unofficial Rust client of MLflow's tracking REST API,
//! written against the real MLflow server) as an independent client of our tracking endpoints.
//!
//! The server is the same as in `tests/http.rs`: a [`Registry`] over a fresh SQLite file and a
//! local artifact directory, served by `axum::serve` on 127.0.0.1:0. `mlflow-client` is blocking
//! (reqwest's blocking client, which runs its own runtime), so the server runs on a Tokio runtime
//! of its own and the test body is plain blocking code; the cross-checks go through the store
//! and through reqwest on that runtime.
//!
//! What the crate gets wrong against MLflow itself (not our server), and so is not tested here:
//! - `GetMetricHistoryResponse::metrics` has no `#[serde(default)]`, while MLflow (protobuf's
//!   JSON printer) leaves empty lists out: `metric_history` of a key never logged fails to decode
//!   `{}` (against MLflow as against us). We check that the server answers `{}` there, as MLflow
//!   does, and that the crate's error is the decode error, not an API error.
//! - `log_batch` splits an oversized batch in pieces but sends params in chunks of 100 only
//!   after *all* metrics, so it is not atomic; nothing to check on the server side.

use std::sync::Arc;

use cerulean_registry::http::{not_found, router};
use cerulean_registry::service::{Registry, RegistryConfig};
use cerulean_registry::store::{MetadataStore, SearchRuns};
use mlflow_client::Mlflow;
use mlflow_client::data::{
    CreateExperimentOptions, CreateRunOptions, ExperimentTag, Metric, Param, RunStatus, RunTag,
    SearchRunsOptions, Timestamp, UpdateRunOptions, ViewType,
};
use serde_json::Value;

/// A registry server on its own runtime (two worker threads), on a fresh SQLite file.
struct Server {
    base: String,
    registry: Arc<Registry>,
    rt: tokio::runtime::Runtime,
    _tmp: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let config = RegistryConfig::new(
            format!("sqlite://{}/registry.db", tmp.path().display()),
            tmp.path().join("artifacts").display().to_string(),
        );
        let (base, registry) = rt.block_on(async move {
            let registry = Arc::new(Registry::open(config).await.unwrap());
            let app = router(registry.clone()).fallback(not_found);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            (format!("http://{addr}"), registry)
        });
        Server {
            base,
            registry,
            rt,
            _tmp: tmp,
        }
    }

    fn store(&self) -> &Arc<dyn MetadataStore> {
        self.registry.store()
    }

    /// `GET {base}{path}?query` with reqwest (async, on the server's runtime): status and JSON.
    fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.rt.block_on(async move {
            let response = reqwest::Client::new()
                .get(url)
                .query(&query)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json().await.unwrap())
        })
    }
}

/// Values whose shortest decimal forms are long, tiny, huge or negative: they must come back
/// bit for bit.
const LOSSES: [f64; 6] = [
    0.1 + 0.2,
    1.0 / 3.0,
    -2.5e-300,
    1.797_693_134_862_315_7e308,
    0.0,
    123_456_789.123_456_78,
];

#[derive(serde::Serialize)]
struct Optimizer {
    name: &'static str,
    lr: f64,
}

#[derive(serde::Serialize)]
struct HyperParams {
    epochs: u32,
    dropout: f64,
    shuffle: bool,
    optimizer: Optimizer,
}

fn sorted_by_step(mut metrics: Vec<Metric>) -> Vec<Metric> {
    metrics.sort_by_key(|m| (m.step, m.timestamp));
    metrics
}

#[test]
fn mlflow_client_crate_drives_the_tracking_api() {
    let server = Server::start();
    let mlflow = Mlflow::new(&server.base).unwrap();

    // ---- experiments ----
    assert!(
        mlflow.experiment_by_name("crate-exp").unwrap().is_none(),
        "get-by-name of a missing experiment must be RESOURCE_DOES_NOT_EXIST"
    );
    assert!(mlflow.experiment("987654").unwrap().is_none());
    let tags = [ExperimentTag {
        key: "team".into(),
        value: "vision".into(),
    }];
    let experiment = mlflow
        .create_experiment_if_not_exists(
            "crate-exp",
            CreateExperimentOptions {
                artifact_location: None,
                tags: &tags,
            },
        )
        .unwrap();
    assert_eq!(experiment.name(), "crate-exp");
    assert_eq!(experiment.data().lifecycle_stage, "active");
    assert_eq!(
        experiment.data().artifact_location,
        format!("mlflow-artifacts:/{}", experiment.id())
    );
    assert_eq!(experiment.data().tags, tags.to_vec());
    // The second call finds it by name instead of creating it.
    let again = mlflow
        .create_experiment_if_not_exists("crate-exp", Default::default())
        .unwrap();
    assert_eq!(again.id(), experiment.id());
    // A duplicate create is RESOURCE_ALREADY_EXISTS.
    match mlflow.create_experiment("crate-exp", Default::default()) {
        Err(mlflow_client::Error::ApiError { error_code, .. }) => {
            assert_eq!(error_code, "RESOURCE_ALREADY_EXISTS")
        }
        other => panic!("a duplicate experiment was not refused: {other:?}"),
    }
    let listed: Vec<String> = mlflow
        .experiments()
        .unwrap()
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    assert!(listed.contains(&"crate-exp".to_owned()), "{listed:?}");
    assert!(listed.contains(&"Default".to_owned()), "{listed:?}");
    experiment.set_tag("stage", "dev").unwrap();
    let reloaded = experiment.reload().unwrap();
    assert!(
        reloaded
            .data()
            .tags
            .iter()
            .any(|t| t.key == "stage" && t.value == "dev")
    );
    assert!(reloaded.data().last_update_time >= reloaded.data().creation_time);

    // ---- a run written through MlflowRunWriter (log_batch in a background thread) ----
    let mut writer = experiment.start_run("crate-run").unwrap();
    let run_id = writer.run().id().to_owned();
    assert_eq!(writer.run().name(), "crate-run");
    assert_eq!(writer.run().data().info.status, RunStatus::Running);
    assert_eq!(writer.run().data().info.experiment_id, experiment.id());
    writer
        .log_params(
            "",
            HyperParams {
                epochs: 3,
                dropout: 0.25,
                shuffle: true,
                optimizer: Optimizer {
                    name: "adam",
                    lr: 0.001,
                },
            },
        )
        .unwrap();
    writer.log_param("seed", "42").unwrap();
    for (step, loss) in LOSSES.iter().enumerate() {
        writer.log_metric("loss", *loss, Some(step as i64)).unwrap();
    }
    writer
        .log_metrics(&[("acc", 0.875), ("f1", 0.5)], Some(7))
        .unwrap();
    // No step: the crate sends `"step": null`, which MLflow reads as step 0.
    writer.log_metric("lr", 1e-3, None).unwrap();
    writer.finish().unwrap();

    // ---- read back through the crate ----
    let run = experiment.run(&run_id).unwrap().expect("the run");
    let info = &run.data().info;
    assert_eq!(info.run_id, run_id);
    assert_eq!(info.run_name, "crate-run");
    assert_eq!(info.status, RunStatus::Finished);
    assert_eq!(info.lifecycle_stage, "active");
    assert!(info.end_time.is_some_and(|end| end >= info.start_time));
    assert_eq!(
        info.artifact_uri,
        format!("mlflow-artifacts:/{}/{run_id}/artifacts", experiment.id())
    );
    let params: Vec<(String, String)> = run
        .data()
        .data
        .params
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    let expected_params: Vec<(String, String)> = [
        ("dropout", "0.25"),
        ("epochs", "3"),
        ("optimizer.lr", "0.001"),
        ("optimizer.name", "adam"),
        ("seed", "42"),
        ("shuffle", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(params, expected_params);
    assert!(
        run.data()
            .data
            .tags
            .iter()
            .any(|t| t.key == "mlflow.runName" && t.value == "crate-run")
    );
    // Latest value per key: the greatest step.
    let latest: Vec<(String, f64, Option<i64>)> = run
        .data()
        .data
        .metrics
        .iter()
        .map(|m| (m.key.clone(), m.value, m.step))
        .collect();
    assert_eq!(
        latest,
        vec![
            ("acc".to_owned(), 0.875, Some(7)),
            ("f1".to_owned(), 0.5, Some(7)),
            ("loss".to_owned(), LOSSES[5], Some(5)),
            ("lr".to_owned(), 1e-3, Some(0)),
        ]
    );

    // Metric history: every value, bit for bit, with its step.
    let history = sorted_by_step(run.metric_history("loss").unwrap());
    assert_eq!(history.len(), LOSSES.len());
    for (step, (m, loss)) in history.iter().zip(LOSSES).enumerate() {
        assert_eq!(m.key, "loss");
        assert_eq!(m.step, Some(step as i64));
        assert_eq!(m.value.to_bits(), loss.to_bits(), "step {step}");
    }

    // ---- the same data seen by the store and by a plain HTTP client ----
    let stored = server.rt.block_on(server.store().get_run(&run_id)).unwrap();
    assert_eq!(stored.info.status.as_str(), "FINISHED");
    assert_eq!(stored.info.end_time, info.end_time.map(i64::from));
    assert_eq!(
        stored
            .data
            .params
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect::<Vec<_>>(),
        expected_params
    );
    let stored_history = server
        .rt
        .block_on(
            server
                .store()
                .get_metric_history(&run_id, "loss", None, None),
        )
        .unwrap()
        .items;
    let mut stored_steps: Vec<(i64, u64)> = stored_history
        .iter()
        .map(|m| (m.step, m.value.to_bits()))
        .collect();
    stored_steps.sort();
    let expected_steps: Vec<(i64, u64)> = LOSSES
        .iter()
        .enumerate()
        .map(|(s, v)| (s as i64, v.to_bits()))
        .collect();
    assert_eq!(stored_steps, expected_steps);
    for (m, stored) in history.iter().zip(sorted_by_step_store(stored_history)) {
        assert_eq!(i64::from(m.timestamp), stored.timestamp);
    }
    let (status, body) = server.get("/api/2.0/mlflow/runs/get", &[("run_id", &run_id)]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["run"]["info"]["status"], "FINISHED");
    assert_eq!(body["run"]["info"]["run_name"], "crate-run");
    assert_eq!(body["run"]["data"]["params"].as_array().unwrap().len(), 6);

    // ---- MlflowRun's direct calls: explicit timestamps, tags, batch, update ----
    let run = experiment
        .create_run(
            "direct",
            CreateRunOptions {
                start_time: Some(Timestamp(1_700_000_000_000)),
                tags: &[RunTag {
                    key: "origin".into(),
                    value: "crate".into(),
                }],
            },
        )
        .unwrap();
    assert_eq!(run.data().info.start_time, Timestamp(1_700_000_000_000));
    let direct_id = run.id().to_owned();
    for step in 0..5i64 {
        run.log_metric(
            "score",
            step as f64 * 0.1,
            Timestamp(1_700_000_000_000 + step * 1000),
            Some(step),
        )
        .unwrap();
    }
    // An older step logged last does not become the latest value.
    run.log_metric("score", 99.0, Timestamp(1_700_000_100_000), Some(1))
        .unwrap();
    run.log_batch(
        &[
            Metric {
                key: "val_loss".into(),
                value: 0.75,
                timestamp: Timestamp(1_700_000_000_500),
                step: Some(10),
            },
            Metric {
                key: "val_loss".into(),
                value: 0.5,
                timestamp: Timestamp(1_700_000_000_600),
                step: Some(11),
            },
        ],
        &[Param {
            key: "arch".into(),
            value: "resnet".into(),
        }],
        &[RunTag {
            key: "note".into(),
            value: "first".into(),
        }],
    )
    .unwrap();
    run.set_tag("note", "second").unwrap();
    run.set_tag("temp", "x").unwrap();
    run.delete_tag("temp").unwrap();
    match run.delete_tag("temp") {
        Err(e) => assert!(e.is_resource_does_not_exist(), "{e}"),
        Ok(()) => panic!("deleting a missing tag succeeded"),
    }
    // Params are write-once: the same value again is fine, another one is refused.
    run.log_param("arch", "resnet").unwrap();
    match run.log_param("arch", "vit") {
        Err(mlflow_client::Error::ApiError { error_code, .. }) => {
            assert_eq!(error_code, "INVALID_PARAMETER_VALUE")
        }
        other => panic!("changing a param was not refused: {other:?}"),
    }
    run.update(UpdateRunOptions {
        status: Some(RunStatus::Killed),
        end_time: Some(Timestamp(1_700_000_200_000)),
        run_name: Some("direct-renamed"),
    })
    .unwrap();
    let run = run.reload().unwrap();
    let info = &run.data().info;
    assert_eq!(info.run_name, "direct-renamed");
    assert_eq!(info.status, RunStatus::Killed);
    assert_eq!(info.end_time, Some(Timestamp(1_700_000_200_000)));
    let metric = |key: &str| {
        run.data()
            .data
            .metrics
            .iter()
            .find(|m| m.key == key)
            .cloned()
            .unwrap_or_else(|| panic!("no metric {key}"))
    };
    let score = metric("score");
    assert_eq!(
        (score.value, score.timestamp, score.step),
        (0.4, Timestamp(1_700_000_004_000), Some(4))
    );
    let val_loss = metric("val_loss");
    assert_eq!(
        (val_loss.value, val_loss.timestamp, val_loss.step),
        (0.5, Timestamp(1_700_000_000_600), Some(11))
    );
    let tag = |key: &str| {
        run.data()
            .data
            .tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.clone())
    };
    assert_eq!(tag("note").as_deref(), Some("second"));
    assert_eq!(tag("origin").as_deref(), Some("crate"));
    assert_eq!(tag("temp"), None);
    assert_eq!(tag("mlflow.runName").as_deref(), Some("direct-renamed"));
    let score_history = run.metric_history("score").unwrap();
    let mut got: Vec<(i64, Option<i64>, f64)> = score_history
        .iter()
        .map(|m| (m.timestamp.0, m.step, m.value))
        .collect();
    got.sort_by_key(|(ts, step, _)| (*ts, *step));
    let mut expected: Vec<(i64, Option<i64>, f64)> = (0..5i64)
        .map(|s| (1_700_000_000_000 + s * 1000, Some(s), s as f64 * 0.1))
        .collect();
    expected.push((1_700_000_100_000, Some(1), 99.0));
    assert_eq!(got, expected);
    // The server's order is MLflow's: by timestamp, then step, then value.
    assert_eq!(
        score_history
            .iter()
            .map(|m| m.timestamp.0)
            .collect::<Vec<_>>(),
        expected.iter().map(|e| e.0).collect::<Vec<_>>()
    );

    // A key never logged: the server answers `{}` as MLflow does, which the crate cannot decode
    // (see the top of the file).
    let (status, body) = server.get(
        "/api/2.0/mlflow/metrics/get-history",
        &[("run_id", &direct_id), ("metric_key", "never")],
    );
    assert_eq!((status, body), (200, serde_json::json!({})));
    match run.metric_history("never") {
        Err(mlflow_client::Error::ReqwestError(e)) => assert!(e.is_decode(), "{e}"),
        other => panic!("expected the crate's decode error, got {other:?}"),
    }

    // ---- listing runs ----
    let runs = experiment.runs().unwrap();
    let mut ids: Vec<&str> = runs.iter().map(|r| r.id()).collect();
    ids.sort_unstable();
    let mut expected_ids = vec![run_id.as_str(), direct_id.as_str()];
    expected_ids.sort_unstable();
    assert_eq!(ids, expected_ids);
    // Newest start first (MLflow's default order): "direct" started in 2023, "crate-run" now.
    assert_eq!(runs[0].id(), run_id);
    let listed = runs.iter().find(|r| r.id() == direct_id).unwrap();
    assert_eq!(listed.data().data.metrics, run.data().data.metrics);
    assert_eq!(listed.data().data.params, run.data().data.params);
    assert_eq!(listed.data().data.tags, run.data().data.tags);
    let filtered = experiment
        .runs_with(SearchRunsOptions {
            filter: "params.arch = 'resnet' and metrics.score >= 0.4",
            run_view_type: ViewType::ActiveOnly,
            order_by: &["metrics.score DESC"],
        })
        .unwrap();
    assert_eq!(
        filtered.iter().map(|r| r.id()).collect::<Vec<_>>(),
        vec![direct_id.as_str()]
    );
    let by_name = experiment
        .runs_with(SearchRunsOptions {
            filter: "attributes.run_name = 'crate-run'",
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        by_name.iter().map(|r| r.id()).collect::<Vec<_>>(),
        vec![run_id.as_str()]
    );
    let from_store = server
        .rt
        .block_on(server.store().search_runs(SearchRuns {
            experiment_ids: vec![experiment.id().to_owned()],
            filter: Some("metrics.loss < 1000000000".into()),
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(
        from_store
            .items
            .iter()
            .map(|r| r.info.run_id.as_str())
            .collect::<Vec<_>>(),
        vec![run_id.as_str()]
    );

    // ---- delete and restore ----
    run.delete().unwrap();
    assert_eq!(
        experiment
            .runs()
            .unwrap()
            .iter()
            .map(|r| r.id())
            .collect::<Vec<_>>(),
        vec![run_id.as_str()]
    );
    let deleted = experiment
        .runs_with(SearchRunsOptions {
            run_view_type: ViewType::DeletedOnly,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        deleted.iter().map(|r| r.id()).collect::<Vec<_>>(),
        vec![direct_id.as_str()]
    );
    match run.log_param("late", "x") {
        Err(mlflow_client::Error::ApiError { error_code, .. }) => {
            assert_eq!(error_code, "INVALID_PARAMETER_VALUE")
        }
        other => panic!("logging to a deleted run was not refused: {other:?}"),
    }
    run.restore().unwrap();
    assert_eq!(experiment.runs().unwrap().len(), 2);

    experiment.update("crate-exp-renamed").unwrap();
    assert!(mlflow.experiment_by_name("crate-exp").unwrap().is_none());
    assert_eq!(
        mlflow
            .experiment_by_name("crate-exp-renamed")
            .unwrap()
            .unwrap()
            .id(),
        experiment.id()
    );
    experiment.delete().unwrap();
    assert_eq!(
        mlflow
            .experiment(experiment.id())
            .unwrap()
            .unwrap()
            .data()
            .lifecycle_stage,
        "deleted"
    );
    assert!(
        !mlflow
            .experiments()
            .unwrap()
            .iter()
            .any(|e| e.id() == experiment.id())
    );
    experiment.restore().unwrap();
    assert_eq!(
        experiment.reload().unwrap().data().lifecycle_stage,
        "active"
    );
}

fn sorted_by_step_store(
    mut metrics: Vec<cerulean_registry::entities::Metric>,
) -> Vec<cerulean_registry::entities::Metric> {
    metrics.sort_by_key(|m| (m.step, m.timestamp));
    metrics
}
