//! Cerulean's job and dataset routes (`/api/2.0/cerulean/...`), served by a real `axum::serve`
//! on 127.0.0.1:0 over SQLite and PostgreSQL (`CERULEAN_TEST_PG_URL`), driven with
//! [`RegistryClient`]: a worker's whole cycle, the spec validator's refusals, the `job_changed`
//! events, and the dataset register.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cerulean_registry::client::{ClientError, RegistryClient};
use cerulean_registry::datasets::RegisterDataset;
use cerulean_registry::events::RegistryEvent;
use cerulean_registry::http::{not_found, router};
use cerulean_registry::jobs::{
    FinishJob, JobSpecSummary, JobStatus, LeaseRequest, ListJobs, SubmitJob,
};
use cerulean_registry::service::{Registry, RegistryConfig};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

/// The validator the binary would install: `train.epochs` must be a positive integer, the name
/// comes from `name`, a `cuda` device needs a GPU.
fn validator(spec: &Value) -> Result<JobSpecSummary, String> {
    let name = spec
        .get("name")
        .and_then(Value::as_str)
        .ok_or("job file: missing field `name`")?;
    match spec.pointer("/train/epochs") {
        Some(e) if e.as_u64().is_some_and(|n| n > 0) => {}
        _ => return Err("job file: `train.epochs` must be a positive integer".into()),
    }
    Ok(JobSpecSummary {
        name: name.trim().to_lowercase(),
        requires_gpu: spec
            .pointer("/train/device")
            .and_then(Value::as_str)
            .is_some_and(|d| d.starts_with("cuda")),
        experiment: spec
            .get("experiment")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

struct Server {
    base: String,
    _registry: Arc<Registry>,
    _tmp: tempfile::TempDir,
}

async fn start(store_uri: Option<String>) -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let uri = store_uri.unwrap_or_else(|| format!("sqlite://{}/registry.db", tmp.path().display()));
    let config = RegistryConfig::new(uri, tmp.path().join("artifacts").display().to_string())
        .with_job_spec_validator(validator);
    let registry = Arc::new(Registry::open(config).await.unwrap());
    let app = router(registry.clone()).fallback(not_found);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base: format!("http://{addr}"),
        _registry: registry,
        _tmp: tmp,
    }
}

fn api_error(err: ClientError) -> (StatusCode, String, String) {
    match err {
        ClientError::Api {
            status,
            error_code,
            message,
        } => (status, error_code, message),
        other => panic!("not an API error: {other}"),
    }
}

fn spec(name: &str) -> Value {
    json!({"name": name, "experiment": "digits", "train": {"epochs": 2, "device": "cpu"}})
}

async fn cycle(s: &Server) {
    let client = RegistryClient::new(&s.base, None).unwrap();
    let mut watch = Box::pin(client.watch(None, None).await.unwrap());

    // Submit: the validator's name and experiment are used.
    let job = client
        .submit_job(&SubmitJob {
            name: String::new(),
            spec: spec("  Digits-MLP "),
            spec_text: Some("name = \"Digits-MLP\"\n".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(job.name, "digits-mlp");
    assert_eq!(job.experiment.as_deref(), Some("digits"));
    assert_eq!(job.status, JobStatus::Queued);
    assert!(!job.requires_gpu);
    assert_eq!(client.get_job(&job.job_id).await.unwrap(), job);
    let gpu_job = client
        .submit_job(&SubmitJob {
            spec: json!({"name": "big", "train": {"epochs": 1, "device": "cuda:0"}}),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(gpu_job.requires_gpu, "the validator says cuda needs a GPU");

    // The validator's refusal names the field.
    let refused = client
        .submit_job(&SubmitJob {
            spec: json!({"name": "x", "train": {"epochs": "many"}}),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let (status, code, message) = api_error(refused);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("train.epochs"), "{message}");
    let (status, _, message) = api_error(
        client
            .submit_job(&SubmitJob {
                spec: json!("not an object"),
                ..Default::default()
            })
            .await
            .unwrap_err(),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("'spec'"), "{message}");

    // List, with paging and a status filter.
    let page = client
        .list_jobs(&ListJobs {
            max_results: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items[0].job_id, gpu_job.job_id, "newest first");
    let rest = client
        .list_jobs(&ListJobs {
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].job_id, job.job_id);
    assert!(rest.next_page_token.is_none());

    // A CPU worker gets the CPU job.
    let worker = LeaseRequest {
        worker_id: "worker-1".into(),
        lease_ms: 60_000,
        gpu: false,
        gpu_grace_ms: None,
    };
    let (leased, token) = client.lease_job(&worker).await.unwrap().unwrap();
    assert_eq!(leased.job_id, job.job_id);
    assert_eq!(leased.attempts, 1);
    assert!(client.lease_job(&worker).await.unwrap().is_none());
    let with_run = client
        .set_job_run(&job.job_id, &token, "0123456789abcdef0123456789abcdef")
        .await
        .unwrap();
    assert_eq!(
        with_run.run_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    let beat = client
        .heartbeat_job(
            &job.job_id,
            &token,
            60_000,
            Some(&json!({"epoch": 1, "loss": 0.5})),
            Some("mlflow-artifacts:/1/r/artifacts/ckpt/1"),
        )
        .await
        .unwrap();
    assert!(!beat.cancel_requested);
    let lines: Vec<String> = (1..=3).map(|i| format!("epoch {i}")).collect();
    assert_eq!(
        client
            .append_job_logs(&job.job_id, &token, &lines)
            .await
            .unwrap(),
        3
    );
    let logs = client.job_logs(&job.job_id, 1, None).await.unwrap();
    assert_eq!(
        logs.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
        vec!["epoch 2", "epoch 3"]
    );
    let running = client
        .list_jobs(&ListJobs {
            status: Some(vec![JobStatus::Running]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.items.len(), 1);
    assert_eq!(
        running.items[0].progress,
        Some(json!({"epoch": 1, "loss": 0.5}))
    );

    let done = client
        .finish_job(
            &job.job_id,
            &token,
            &FinishJob {
                result: Some(json!({"model": "digits", "version": "1"})),
                ..FinishJob::new(JobStatus::Succeeded)
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(
        done.checkpoint_uri.as_deref(),
        Some("mlflow-artifacts:/1/r/artifacts/ckpt/1")
    );
    // The lease is gone: a late heartbeat is a 409 LEASE_LOST.
    let lost = client
        .heartbeat_job(&job.job_id, &token, 1000, None, None)
        .await
        .unwrap_err();
    assert!(lost.is_lease_lost());
    let (status, code, _) = api_error(lost);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "LEASE_LOST")
    );

    // Cancel the queued GPU job.
    let cancelled = client.cancel_job(&gpu_job.job_id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(client.get_job("nope").await.unwrap_err().is_not_found());

    // Every change was published on the watch stream, in order.
    let mut changes = Vec::new();
    while changes.len() < 5 {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .unwrap();
        if let RegistryEvent::JobChanged { job_id, status, .. } = event {
            changes.push((job_id, status));
        }
    }
    assert_eq!(
        changes,
        vec![
            (job.job_id.clone(), JobStatus::Queued),
            (gpu_job.job_id.clone(), JobStatus::Queued),
            (job.job_id.clone(), JobStatus::Running),
            (job.job_id.clone(), JobStatus::Succeeded),
            (gpu_job.job_id.clone(), JobStatus::Cancelled),
        ]
    );
}

async fn job_watch_and_cancel(s: &Server) {
    let client = RegistryClient::new(&s.base, None).unwrap();
    let job = client
        .submit_job(&SubmitJob {
            spec: spec("watched"),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut events = Box::pin(client.watch_job(&job.job_id).await.unwrap());
    // Another job's events are not on this stream.
    client
        .submit_job(&SubmitJob {
            spec: spec("other"),
            ..Default::default()
        })
        .await
        .unwrap();
    let worker = LeaseRequest {
        worker_id: "w".into(),
        lease_ms: 60_000,
        gpu: true,
        gpu_grace_ms: None,
    };
    let (leased, token) = client.lease_job(&worker).await.unwrap().unwrap();
    assert_eq!(leased.job_id, job.job_id);
    let asked = client.cancel_job(&job.job_id).await.unwrap();
    assert!(asked.cancel_requested);
    assert!(
        client
            .heartbeat_job(&job.job_id, &token, 60_000, None, None)
            .await
            .unwrap()
            .cancel_requested
    );
    client
        .finish_job(&job.job_id, &token, &FinishJob::new(JobStatus::Cancelled))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .unwrap();
        match event {
            RegistryEvent::JobChanged {
                job_id,
                status,
                cancel_requested,
                ..
            } => {
                assert_eq!(job_id, job.job_id);
                seen.push((status, cancel_requested));
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            (JobStatus::Running, false),
            (JobStatus::Running, true),
            (JobStatus::Cancelled, true),
        ]
    );
}

async fn datasets(s: &Server) {
    let client = RegistryClient::new(&s.base, None).unwrap();
    let req = RegisterDataset {
        name: "digits".into(),
        uri: "file:///lake/digits.parquet".into(),
        format: "parquet".into(),
        digest: "sha256:aa".into(),
        schema: Some(json!({"fields": []})),
        row_count: Some(10),
        description: Some("8x8 digits".into()),
    };
    let v1 = client.register_dataset(&req).await.unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(client.register_dataset(&req).await.unwrap(), v1);
    let v2 = client
        .register_dataset(&RegisterDataset {
            digest: "sha256:bb".into(),
            ..req.clone()
        })
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(client.get_dataset("digits", None).await.unwrap(), v2);
    assert_eq!(client.get_dataset("digits", Some(1)).await.unwrap(), v1);
    assert!(
        client
            .get_dataset("digits", Some(3))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(client.list_datasets(None).await.unwrap(), vec![v2.clone()]);
    assert_eq!(
        client.list_datasets(Some("digits")).await.unwrap(),
        vec![v2, v1]
    );
    let (status, code, _) = api_error(
        client
            .register_dataset(&RegisterDataset {
                name: "a:b".into(),
                ..req
            })
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE")
    );
}

/// The routes' raw JSON: the `/ajax-api` mirror, `{}` when there is no work, missing
/// parameters, comma-separated statuses.
async fn raw_routes(s: &Server) {
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| http.post(format!("{}{path}", s.base)).json(&body).send();
    let response = post(
        "/ajax-api/2.0/cerulean/jobs/lease",
        json!({"worker_id": "w", "lease_ms": 1000}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
    let response = post("/api/2.0/cerulean/jobs/submit", json!({"name": "x"}))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE");
    assert!(body["message"].as_str().unwrap().contains("'spec'"));
    let response = http
        .get(format!(
            "{}/api/2.0/cerulean/jobs/list?status=QUEUED,RUNNING&max_results=5",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"jobs": []}));
    let response = http
        .get(format!("{}/api/2.0/cerulean/jobs/list?status=DONE", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = http
        .get(format!("{}/api/2.0/cerulean/jobs/get", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("'job_id'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_sqlite() {
    let s = start(None).await;
    raw_routes(&s).await;
    cycle(&s).await;
    job_watch_and_cancel(&s).await;
    datasets(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_postgres() {
    sqlx::any::install_default_drivers();
    let admin = common::pg_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {admin} ({e})"));
    let db = format!("cerulean_jobs_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{base}/{db}");
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        let s = start(Some(url)).await;
        raw_routes(&s).await;
        cycle(&s).await;
        job_watch_and_cancel(&s).await;
        datasets(&s).await;
    }))
    .await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
