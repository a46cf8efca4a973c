//! Throughput of the metadata store alone (no HTTP): log-metric and get-by-alias from N
//! concurrent tasks.
//!
//! ```text
//! cargo run --release -p cerulean-registry --example store_bench -- [URI] [SECONDS] [TASKS]
//! ```
//! URI defaults to a SQLite file in a temporary directory. `CERULEAN_BENCH_KEYS=per-task` logs
//! one metric key per task instead of one shared key.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cerulean_registry::entities::Metric;
use cerulean_registry::store::{
    CreateExperiment, CreateModelVersion, CreateRegisteredModel, CreateRun, MetadataStore,
    SetAlias, SqlStore, StoreOptions,
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
    let store = Arc::new(
        SqlStore::connect(&uri, StoreOptions::default())
            .await
            .unwrap(),
    );
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
            experiment_id: Some(exp),
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
    let per_task = std::env::var("CERULEAN_BENCH_KEYS").as_deref() == Ok("per-task");
    let s = store.clone();
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
    store.close().await;
}
