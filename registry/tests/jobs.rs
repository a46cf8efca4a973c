//! The training-job queue and the dataset register of the metadata store, run against SQLite and
//! PostgreSQL (`CERULEAN_TEST_PG_URL`, see `common`).

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cerulean_registry::datasets::RegisterDataset;
use cerulean_registry::error::RegistryError;
use cerulean_registry::jobs::{FinishJob, JobStatus, LeaseRequest, ListJobs, SubmitJob};
use cerulean_registry::store::{MetadataStore, SqlStore};
use serde_json::json;

type S = Arc<SqlStore>;

fn code<T: std::fmt::Debug>(r: Result<T, RegistryError>) -> &'static str {
    r.expect_err("an error").error_code()
}

fn submit(name: &str) -> SubmitJob {
    SubmitJob {
        name: name.into(),
        experiment: Some("digits".into()),
        spec: json!({"name": name, "train": {"epochs": 3}}),
        spec_text: Some(format!("name = \"{name}\"\n")),
        requires_gpu: false,
    }
}

fn lease(worker: &str, lease_ms: i64) -> LeaseRequest {
    LeaseRequest {
        worker_id: worker.into(),
        lease_ms,
        gpu: false,
        gpu_grace_ms: None,
    }
}

// ------------------------------------------------------------------ submit, get, list

async fn submit_get_list(s: S) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let job = s.submit_job(submit(&format!("job-{i}"))).await.unwrap();
        assert_eq!(job.status, JobStatus::Queued);
        assert_eq!(job.attempts, 0);
        assert!(job.run_id.is_none() && job.started_at.is_none());
        ids.push(job.job_id);
    }
    let got = s.get_job(&ids[2]).await.unwrap();
    assert_eq!(got.name, "job-2");
    assert_eq!(got.experiment.as_deref(), Some("digits"));
    assert_eq!(got.spec["train"]["epochs"], 3);
    assert_eq!(got.spec_text.as_deref(), Some("name = \"job-2\"\n"));
    assert_eq!(code(s.get_job("nope").await), "RESOURCE_DOES_NOT_EXIST");

    // Newest first, in pages of two.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = s
            .list_jobs(ListJobs {
                status: None,
                max_results: Some(2),
                page_token: token.clone(),
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|j| j.job_id));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    // By status.
    let (leased, _) = s.lease_job(lease("w", 60_000)).await.unwrap().unwrap();
    assert_eq!(leased.job_id, ids[0]);
    let running = s
        .list_jobs(ListJobs {
            status: Some(vec![JobStatus::Running]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.items.len(), 1);
    assert_eq!(running.items[0].job_id, ids[0]);
    let queued = s
        .list_jobs(ListJobs {
            status: Some(vec![JobStatus::Queued, JobStatus::Cancelled]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(queued.items.len(), 4);

    // Refusals name the field.
    let bad = s
        .submit_job(SubmitJob {
            spec: json!([1, 2]),
            ..submit("x")
        })
        .await
        .unwrap_err();
    assert_eq!(bad.error_code(), "INVALID_PARAMETER_VALUE");
    assert!(bad.to_string().contains("'spec'"), "{bad}");
    let bad = s.submit_job(submit("  ")).await.unwrap_err();
    assert!(bad.to_string().contains("'name'"), "{bad}");
    let bad = s
        .list_jobs(ListJobs {
            max_results: Some(0),
            ..Default::default()
        })
        .await;
    assert_eq!(code(bad), "INVALID_PARAMETER_VALUE");
}
both!(submit_get_list_paging, crate::submit_get_list);

// ------------------------------------------------------------------ leasing

async fn lease_oldest(s: S) {
    let a = s.submit_job(submit("a")).await.unwrap();
    let b = s.submit_job(submit("b")).await.unwrap();
    let (first, token) = s.lease_job(lease("w1", 60_000)).await.unwrap().unwrap();
    assert_eq!(first.job_id, a.job_id);
    assert_eq!(first.status, JobStatus::Running);
    assert_eq!(first.attempts, 1);
    assert_eq!(first.lease_owner.as_deref(), Some("w1"));
    assert!(first.started_at.is_some());
    assert!(first.lease_expires_at.unwrap() > first.started_at.unwrap());
    assert!(!token.is_empty());
    let stored = s.get_job(&a.job_id).await.unwrap();
    assert_eq!(stored, first);
    let (second, token2) = s.lease_job(lease("w2", 60_000)).await.unwrap().unwrap();
    assert_eq!(second.job_id, b.job_id);
    assert_ne!(token, token2);
    assert!(s.lease_job(lease("w3", 60_000)).await.unwrap().is_none());
    // Bad requests.
    assert_eq!(
        code(s.lease_job(lease("", 1000)).await),
        "INVALID_PARAMETER_VALUE"
    );
    assert_eq!(
        code(s.lease_job(lease("w", 0)).await),
        "INVALID_PARAMETER_VALUE"
    );
}
both!(lease_picks_oldest, crate::lease_oldest);

async fn concurrent(s: S) {
    let mut submitted = HashSet::new();
    for i in 0..5 {
        submitted.insert(s.submit_job(submit(&format!("c{i}"))).await.unwrap().job_id);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                s.lease_job(lease(&format!("w{w}"), 60_000)).await.unwrap()
            })
        })
        .collect();
    let mut leased = Vec::new();
    for t in tasks {
        if let Some((job, token)) = t.await.unwrap() {
            leased.push((job.job_id, token));
        }
    }
    assert_eq!(leased.len(), 5, "every job leased once: {leased:?}");
    let ids: HashSet<String> = leased.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, submitted, "no job leased twice");
    for (id, _) in &leased {
        assert_eq!(s.get_job(id).await.unwrap().attempts, 1);
    }
}
both!(concurrent_workers_never_share_a_job, crate::concurrent);

async fn expired_lease(s: S) {
    let job = s.submit_job(submit("resume")).await.unwrap();
    let (first, old) = s.lease_job(lease("w1", 1000)).await.unwrap().unwrap();
    assert_eq!(first.job_id, job.job_id);
    let with_run = s.set_job_run(&job.job_id, &old, "run-1").await.unwrap();
    assert_eq!(with_run.run_id.as_deref(), Some("run-1"));
    s.heartbeat_job(
        &job.job_id,
        &old,
        1000,
        Some(json!({"epoch": 1})),
        Some("mlflow-artifacts:/1/run-1/artifacts/checkpoints/1".into()),
    )
    .await
    .unwrap();
    // Not expired yet: nothing to lease.
    assert!(s.lease_job(lease("w2", 60_000)).await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(1300)).await;

    let (resumed, new) = s.lease_job(lease("w2", 60_000)).await.unwrap().unwrap();
    assert_eq!(resumed.job_id, job.job_id);
    assert_eq!(resumed.attempts, 2);
    assert_eq!(resumed.run_id.as_deref(), Some("run-1"), "the run is kept");
    assert_eq!(resumed.lease_owner.as_deref(), Some("w2"));
    assert_eq!(resumed.progress, Some(json!({"epoch": 1})));
    assert_eq!(
        resumed.checkpoint_uri.as_deref(),
        Some("mlflow-artifacts:/1/run-1/artifacts/checkpoints/1")
    );
    assert_eq!(resumed.started_at, first.started_at, "first lease kept");
    assert_ne!(old, new);

    // The first worker has lost the job.
    let lost = s
        .heartbeat_job(&job.job_id, &old, 1000, None, None)
        .await
        .unwrap_err();
    assert_eq!(lost.error_code(), "LEASE_LOST");
    assert_eq!(lost.http_status(), 409);
    assert!(lost.to_string().contains("w2"), "{lost}");
    let finish = s
        .finish_job(&job.job_id, &old, FinishJob::new(JobStatus::Succeeded))
        .await;
    assert_eq!(code(finish), "LEASE_LOST");
    let logs = s
        .append_job_logs(&job.job_id, &old, vec!["late".into()])
        .await;
    assert_eq!(code(logs), "LEASE_LOST");
    assert_eq!(
        code(s.set_job_run(&job.job_id, &old, "run-x").await),
        "LEASE_LOST"
    );

    // The second one carries on in the same run.
    let kept = s.set_job_run(&job.job_id, &new, "run-2").await.unwrap();
    assert_eq!(kept.run_id.as_deref(), Some("run-1"));
    let beat = s
        .heartbeat_job(&job.job_id, &new, 60_000, None, None)
        .await
        .unwrap();
    assert!(!beat.cancel_requested);
    let done = s
        .finish_job(
            &job.job_id,
            &new,
            FinishJob {
                result: Some(json!({"model": "digits", "version": "3"})),
                ..FinishJob::new(JobStatus::Succeeded)
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert!(done.ended_at.is_some());
    assert!(done.lease_expires_at.is_none());
    assert_eq!(s.get_job(&job.job_id).await.unwrap(), done);
    assert_eq!(
        done.result,
        Some(json!({"model": "digits", "version": "3"}))
    );
    // An ended job takes no more heartbeats, and is not leased again.
    let after = s.heartbeat_job(&job.job_id, &new, 1000, None, None).await;
    assert_eq!(code(after), "LEASE_LOST");
    assert!(s.lease_job(lease("w3", 60_000)).await.unwrap().is_none());
    // Unknown jobs are 404, not lost leases.
    assert_eq!(
        code(s.heartbeat_job("nope", &new, 1000, None, None).await),
        "RESOURCE_DOES_NOT_EXIST"
    );
}
both!(expired_lease_is_taken_over, crate::expired_lease);

async fn failures(s: S) {
    s.submit_job(submit("boom")).await.unwrap();
    let (job, token) = s.lease_job(lease("w", 60_000)).await.unwrap().unwrap();
    let bad = s
        .finish_job(&job.job_id, &token, FinishJob::new(JobStatus::Running))
        .await;
    assert_eq!(code(bad), "INVALID_PARAMETER_VALUE");
    let failed = s
        .finish_job(
            &job.job_id,
            &token,
            FinishJob {
                error: Some("shape mismatch".into()),
                error_context: Some("at epoch 2, step 10\n  in forward".into()),
                checkpoint_uri: Some("file:///ckpt/2".into()),
                ..FinishJob::new(JobStatus::Failed)
            },
        )
        .await
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("shape mismatch"));
    assert_eq!(s.get_job(&job.job_id).await.unwrap(), failed);
}
both!(failed_jobs_keep_their_error, crate::failures);

async fn gpu(s: S) {
    let big = s
        .submit_job(SubmitJob {
            requires_gpu: true,
            ..submit("big")
        })
        .await
        .unwrap();
    let small = s.submit_job(submit("small")).await.unwrap();
    let (cpu_job, _) = s.lease_job(lease("cpu", 60_000)).await.unwrap().unwrap();
    assert_eq!(cpu_job.job_id, small.job_id, "the GPU job is skipped");
    assert!(s.lease_job(lease("cpu", 60_000)).await.unwrap().is_none());
    let (gpu_job, _) = s
        .lease_job(LeaseRequest {
            gpu: true,
            ..lease("gpu", 60_000)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gpu_job.job_id, big.job_id);
    assert!(gpu_job.requires_gpu);

    // With a grace period, a CPU worker takes a GPU job that waited longer than it (to fail it
    // with a clear error when no GPU worker is there), and not one that waited less.
    let waiting = s
        .submit_job(SubmitJob {
            requires_gpu: true,
            ..submit("waiting")
        })
        .await
        .unwrap();
    let patient = LeaseRequest {
        gpu_grace_ms: Some(60_000),
        ..lease("cpu", 60_000)
    };
    assert!(s.lease_job(patient.clone()).await.unwrap().is_none());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let eager = LeaseRequest {
        gpu_grace_ms: Some(1),
        ..lease("cpu", 60_000)
    };
    let (taken, _) = s.lease_job(eager).await.unwrap().unwrap();
    assert_eq!(taken.job_id, waiting.job_id);
}
both!(gpu_jobs_skip_cpu_workers, crate::gpu);

// ------------------------------------------------------------------ cancel

async fn cancel(s: S) {
    // Queued: cancelled at once, never leased.
    let queued = s.submit_job(submit("q")).await.unwrap();
    let cancelled = s.cancel_job(&queued.job_id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(cancelled.ended_at.is_some());
    assert!(s.lease_job(lease("w", 60_000)).await.unwrap().is_none());
    // Ended: answered unchanged.
    assert_eq!(s.cancel_job(&queued.job_id).await.unwrap(), cancelled);
    assert_eq!(code(s.cancel_job("nope").await), "RESOURCE_DOES_NOT_EXIST");

    // Running: the worker sees it at its next heartbeat and finishes as CANCELLED.
    let running = s.submit_job(submit("r")).await.unwrap();
    let (_, token) = s.lease_job(lease("w", 60_000)).await.unwrap().unwrap();
    let asked = s.cancel_job(&running.job_id).await.unwrap();
    assert_eq!(asked.status, JobStatus::Running);
    assert!(asked.cancel_requested);
    let beat = s
        .heartbeat_job(&running.job_id, &token, 60_000, None, None)
        .await
        .unwrap();
    assert!(beat.cancel_requested);
    let done = s
        .finish_job(
            &running.job_id,
            &token,
            FinishJob::new(JobStatus::Cancelled),
        )
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);

    // Running, and its worker died: the next lease ends it instead of handing it out.
    let orphan = s.submit_job(submit("o")).await.unwrap();
    let (_, _) = s.lease_job(lease("w", 200)).await.unwrap().unwrap();
    s.cancel_job(&orphan.job_id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(s.lease_job(lease("w2", 60_000)).await.unwrap().is_none());
    let ended = s.get_job(&orphan.job_id).await.unwrap();
    assert_eq!(ended.status, JobStatus::Cancelled);
    assert_eq!(ended.attempts, 1);

    // A cancel of a running job whose lease already expired ends it at once.
    let stale = s.submit_job(submit("s")).await.unwrap();
    let (_, _) = s.lease_job(lease("w", 100)).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_once = s.cancel_job(&stale.job_id).await.unwrap();
    assert_eq!(at_once.status, JobStatus::Cancelled);

    // reap_cancelled_jobs: what the registry calls to publish such endings.
    let reaped_job = s.submit_job(submit("reaped")).await.unwrap();
    let (_, _) = s.lease_job(lease("w", 1000)).await.unwrap().unwrap();
    assert!(
        s.cancel_job(&reaped_job.job_id)
            .await
            .unwrap()
            .cancel_requested
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let reaped = s.reap_cancelled_jobs().await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].job_id, reaped_job.job_id);
    assert_eq!(reaped[0].status, JobStatus::Cancelled);
    assert!(s.reap_cancelled_jobs().await.unwrap().is_empty());
}
both!(cancel_queued_and_running, crate::cancel);

// ------------------------------------------------------------------ logs

async fn logs(s: S) {
    let job = s.submit_job(submit("logs")).await.unwrap();
    let (_, token) = s.lease_job(lease("w", 60_000)).await.unwrap().unwrap();
    let last = s
        .append_job_logs(
            &job.job_id,
            &token,
            vec!["a".into(), "b".into(), "c".into()],
        )
        .await
        .unwrap();
    assert_eq!(last, 3);
    let last = s
        .append_job_logs(&job.job_id, &token, vec!["d".into(), "é ✓".into()])
        .await
        .unwrap();
    assert_eq!(last, 5);
    assert_eq!(
        s.append_job_logs(&job.job_id, &token, vec![])
            .await
            .unwrap(),
        5
    );
    let all = s.job_logs(&job.job_id, 0, 0).await.unwrap();
    let text: Vec<(i64, &str)> = all.iter().map(|l| (l.seq, l.line.as_str())).collect();
    assert_eq!(
        text,
        vec![(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "é ✓")]
    );
    assert!(all.iter().all(|l| l.timestamp > 0));
    let tail = s.job_logs(&job.job_id, 3, 0).await.unwrap();
    assert_eq!(tail.iter().map(|l| l.seq).collect::<Vec<_>>(), vec![4, 5]);
    let two = s.job_logs(&job.job_id, 0, 2).await.unwrap();
    assert_eq!(two.iter().map(|l| l.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert!(s.job_logs(&job.job_id, 5, 0).await.unwrap().is_empty());
    assert_eq!(
        code(s.job_logs("nope", 0, 0).await),
        "RESOURCE_DOES_NOT_EXIST"
    );
    // A big append, over the chunking of the inserts; and one over the limit.
    let many: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
    assert_eq!(
        s.append_job_logs(&job.job_id, &token, many).await.unwrap(),
        1005
    );
    assert_eq!(
        s.job_logs(&job.job_id, 1004, 0).await.unwrap()[0].line,
        "line 999"
    );
    let too_many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let err = s
        .append_job_logs(&job.job_id, &token, too_many)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1000"), "{err}");
}
both!(logs_append_and_read_after_seq, crate::logs);

// ------------------------------------------------------------------ datasets

fn dataset(name: &str, digest: &str) -> RegisterDataset {
    RegisterDataset {
        name: name.into(),
        uri: format!("file:///lake/{name}.parquet"),
        format: "parquet".into(),
        digest: digest.into(),
        schema: Some(json!({"fields": [{"name": "x", "type": "float32"}]})),
        row_count: Some(1797),
        description: None,
    }
}

async fn datasets(s: S) {
    let v1 = s
        .register_dataset(dataset("digits", "sha256:aa"))
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.row_count, Some(1797));
    let same = s
        .register_dataset(dataset("digits", "sha256:aa"))
        .await
        .unwrap();
    assert_eq!(same, v1, "the same digest is the same version");
    let v2 = s
        .register_dataset(dataset("digits", "sha256:bb"))
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    // Back to the first content: a new version (only the latest is compared).
    let v3 = s
        .register_dataset(dataset("digits", "sha256:aa"))
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    s.register_dataset(dataset("iris", "d1")).await.unwrap();

    assert_eq!(s.get_dataset("digits", None).await.unwrap(), v3);
    assert_eq!(s.get_dataset("digits", Some(1)).await.unwrap(), v1);
    assert_eq!(s.get_dataset("digits", Some(2)).await.unwrap(), v2);
    assert_eq!(
        code(s.get_dataset("digits", Some(9)).await),
        "RESOURCE_DOES_NOT_EXIST"
    );
    assert_eq!(
        code(s.get_dataset("nope", None).await),
        "RESOURCE_DOES_NOT_EXIST"
    );
    let latest = s.list_datasets(None).await.unwrap();
    let names: Vec<(&str, i64)> = latest
        .iter()
        .map(|d| (d.name.as_str(), d.version))
        .collect();
    assert_eq!(names, vec![("digits", 3), ("iris", 1)]);
    let versions = s.list_datasets(Some("digits")).await.unwrap();
    assert_eq!(
        versions.iter().map(|d| d.version).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );

    let bad = s.register_dataset(dataset("a/b", "x")).await.unwrap_err();
    assert_eq!(bad.error_code(), "INVALID_PARAMETER_VALUE");
    assert!(bad.to_string().contains("dataset name"), "{bad}");
    let bad = s
        .register_dataset(RegisterDataset {
            digest: String::new(),
            ..dataset("ok", "")
        })
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("'digest'"), "{bad}");

    // Concurrent registrations of new content get distinct versions.
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.register_dataset(dataset("busy", &format!("d{i}")))
                    .await
                    .unwrap()
                    .version
            })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    got.sort();
    assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
}
both!(dataset_register_versions, crate::datasets);
