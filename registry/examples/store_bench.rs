//! Throughput of the metadata store alone (no HTTP): log-metric, log-batch, search-runs and
//! get-by-alias from N concurrent tasks, shaped like `bench/registry`'s scenarios.
//!
//! ```text
//! cargo run --release -p cerulean-registry --example store_bench -- \
//!     [URI] [SECONDS] [TASKS] [SCENARIO,...]
//! ```
//! URI defaults to a SQLite file in a temporary directory. SCENARIO is any of `log_metric`,
//! `log_batch` (100 metrics `m0`..`m99` per call, one run per task), `search_runs` (over 1000
//! runs: `metrics.acc >= 0.95 and params.lr = '0.01'`, `metrics.acc DESC`, 25 runs per answer)
//! and `get_by_alias`; all of them by default. `CERULEAN_BENCH_KEYS=per-task` logs one metric key
//! per task in `log_metric` instead of one shared key; `CERULEAN_BENCH_MAX_CONNECTIONS=N` sets
//! the store's `max_connections` (SQLite: reader connections).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cerulean_registry::entities::{Metric, Param, Tag};
use cerulean_registry::store::{
    CreateExperiment, CreateModelVersion, CreateRegisteredModel, CreateRun, MetadataStore,
    SearchRuns, SetAlias, SqlStore, StoreOptions,
};

/// This process's CPU time (user + system) so far, in seconds (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

async fn measure<F, Fut>(name: &str, tasks: usize, secs: u64, op: F)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let cpu0 = cpu_seconds();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (op, count) = (op.clone(), count.clone());
            tokio::spawn(async move {
                let mut i = t as u64 * 1_000_000_000;
                while Instant::now() < deadline {
                    op(i).await;
                    i += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let n = count.load(Ordering::Relaxed);
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{name}: {n} ops in {:.1}s = {:.0} ops/s ({tasks} tasks), {:.1} µs of this process's CPU \
         per op",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64(),
        cpu * 1e6 / n.max(1) as f64
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = tempfile::tempdir().unwrap();
    let uri = args
        .get(1)
        .cloned()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.path().display()));
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let tasks: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(16);
    let mut options = StoreOptions::default();
    if let Some(n) = std::env::var("CERULEAN_BENCH_MAX_CONNECTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        options.max_connections = n;
    }
    let store = Arc::new(SqlStore::connect(&uri, options).await.unwrap());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let exp = store
        .create_experiment(CreateExperiment {
            name: format!("bench-{suffix}"),
            ..Default::default()
        })
        .await
        .unwrap();
    let run = store
        .create_run(CreateRun {
            experiment_id: Some(exp.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .info
        .run_id;
    let model = format!("bench-{suffix}");
    store
        .create_registered_model(CreateRegisteredModel {
            name: model.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    store
        .create_model_version(CreateModelVersion {
            name: model.clone(),
            source: "s3://bucket/model".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    store
        .set_registered_model_alias(SetAlias {
            name: model.clone(),
            alias: "champion".into(),
            version: "1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    println!("store: {uri}");
    let only: Option<Vec<String>> = args
        .get(4)
        .map(|list| list.split(',').map(str::to_owned).collect());
    let wanted = |name: &str| only.as_ref().is_none_or(|l| l.iter().any(|n| n == name));
    let per_task = std::env::var("CERULEAN_BENCH_KEYS").as_deref() == Ok("per-task");
    if wanted("log_metric") {
        let s = store.clone();
        let run = run.clone();
        measure("log_metric", tasks, secs, move |i| {
            let (s, run) = (s.clone(), run.clone());
            async move {
                // One metric key per task when CERULEAN_BENCH_KEYS=per-task (no hot row).
                let key = if per_task {
                    format!("loss{}", i / 1_000_000_000)
                } else {
                    "loss".to_owned()
                };
                s.log_metric(&run, Metric::new(key, i as f64, i as i64, i as i64))
                    .await
                    .unwrap();
            }
        })
        .await;
    }
    if wanted("log_batch") {
        // One run per task, as bench/registry's log-batch scenario (one per connection).
        let mut runs = Vec::with_capacity(tasks);
        for _ in 0..tasks {
            let created = store
                .create_run(CreateRun {
                    experiment_id: Some(exp.clone()),
                    ..Default::default()
                })
                .await
                .unwrap();
            runs.push(created.info.run_id);
        }
        let runs = Arc::new(runs);
        let s = store.clone();
        measure("log_batch (100 metrics)", tasks, secs, move |i| {
            let (s, runs) = (s.clone(), runs.clone());
            async move {
                let task = (i / 1_000_000_000) as usize;
                let seq = (i % 1_000_000_000) as i64;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64;
                let metrics = (0..100)
                    .map(|k| Metric::new(format!("m{k}"), seq as f64 + 0.5, now, seq))
                    .collect();
                s.log_batch(&runs[task % runs.len()], metrics, Vec::new(), Vec::new())
                    .await
                    .unwrap();
            }
        })
        .await;
    }
    if wanted("search_runs") {
        let search_exp = store
            .create_experiment(CreateExperiment {
                name: format!("bench-search-{suffix}"),
                ..Default::default()
            })
            .await
            .unwrap();
        for i in 0..1000i64 {
            let created = store
                .create_run(CreateRun {
                    experiment_id: Some(search_exp.clone()),
                    run_name: Some(format!("r{i}")),
                    start_time: Some(1_700_000_000_000 + i),
                    ..Default::default()
                })
                .await
                .unwrap();
            let ts = created.info.start_time.unwrap_or_default();
            store
                .log_batch(
                    &created.info.run_id,
                    vec![
                        Metric::new("acc", i as f64 / 1000.0, ts, 0),
                        Metric::new("loss", 1.0 - i as f64 / 1000.0, ts, 0),
                    ],
                    vec![
                        Param::new("lr", if i % 2 == 0 { "0.01" } else { "0.1" }),
                        Param::new("idx", i.to_string()),
                    ],
                    vec![Tag::new("team", ["a", "b", "c"][i as usize % 3])],
                )
                .await
                .unwrap();
        }
        let s = store.clone();
        measure("search_runs (25 of 1000 runs)", tasks, secs, move |_| {
            let (s, search_exp) = (s.clone(), search_exp.clone());
            async move {
                let page = s
                    .search_runs(SearchRuns {
                        experiment_ids: vec![search_exp],
                        filter: Some("metrics.acc >= 0.95 and params.lr = '0.01'".into()),
                        max_results: Some(100),
                        order_by: vec!["metrics.acc DESC".into()],
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                assert_eq!(page.items.len(), 25);
            }
        })
        .await;
    }
    if wanted("get_by_alias") {
        let s = store.clone();
        measure("get_model_version_by_alias", tasks, secs, move |_| {
            let (s, model) = (s.clone(), model.clone());
            async move {
                s.get_model_version_by_alias(&model, "champion")
                    .await
                    .unwrap();
            }
        })
        .await;
    }
    store.close().await;
}
