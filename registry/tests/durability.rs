//! An acknowledged write survives `kill -9` of the process (SQLite, WAL, `synchronous=NORMAL`).
//!
//! The test re-executes this test binary as a child (`durability_child`, which does nothing
//! unless `CERULEAN_DURABILITY_DB` is set). The child writes metrics from several concurrent
//! writers and creates model versions, printing a line for each write once the store has
//! acknowledged it. The parent kills the child with SIGKILL mid-stream, reopens the database, and
//! checks that every acknowledged write is there.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cerulean_registry::entities::{Metric, Param};
use cerulean_registry::store::{
    CreateExperiment, CreateModelVersion, CreateRegisteredModel, CreateRun, MetadataStore,
    SqlStore, StoreOptions,
};

const DB_ENV: &str = "CERULEAN_DURABILITY_DB";
const RUN_ENV: &str = "CERULEAN_DURABILITY_RUN";
const WRITERS: usize = 4;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// The child: writes until killed. A no-op in a normal test run.
#[test]
fn durability_child() {
    let Ok(db) = std::env::var(DB_ENV) else {
        return;
    };
    let run_id = std::env::var(RUN_ENV).expect("the run id");
    runtime().block_on(async move {
        let store = Arc::new(
            SqlStore::connect(&db, StoreOptions::default())
                .await
                .unwrap(),
        );
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (s, run) = (store.clone(), run_id.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0i64.. {
                    s.log_metric(&run, Metric::new(format!("w{w}"), i as f64, i, i))
                        .await
                        .unwrap();
                    println!("ACK metric {w} {i}");
                }
            }));
        }
        let (s, run) = (store.clone(), run_id.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0i64.. {
                s.log_batch(
                    &run,
                    vec![Metric::new("batch", i as f64, i, i)],
                    vec![Param::new(format!("p{i}"), i.to_string())],
                    vec![],
                )
                .await
                .unwrap();
                println!("ACK batch {i}");
            }
        }));
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let v = s
                    .create_model_version(CreateModelVersion {
                        name: "durable".into(),
                        source: "s3://bucket/model".into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                println!("ACK version {}", v.version);
            }
        }));
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite://{}/durable.db", dir.path().display());
    let rt = runtime();
    let run_id = rt.block_on(async {
        let s = SqlStore::connect(&uri, StoreOptions::default())
            .await
            .unwrap();
        let exp = s
            .create_experiment(CreateExperiment {
                name: "durability".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let run = s
            .create_run(CreateRun {
                experiment_id: Some(exp),
                ..Default::default()
            })
            .await
            .unwrap();
        s.create_registered_model(CreateRegisteredModel {
            name: "durable".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        s.close().await;
        run.info.run_id
    });

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "durability_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DB_ENV, &uri)
        .env(RUN_ENV, &run_id)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut metrics: BTreeMap<usize, BTreeSet<i64>> = BTreeMap::new();
    let mut batches: BTreeSet<i64> = BTreeSet::new();
    let mut versions: BTreeSet<i64> = BTreeSet::new();
    let mut record = |line: &str| {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["ACK", "metric", w, i] => {
                metrics
                    .entry(w.parse().unwrap())
                    .or_default()
                    .insert(i.parse().unwrap());
            }
            ["ACK", "batch", i] => {
                batches.insert(i.parse().unwrap());
            }
            ["ACK", "version", v] => {
                versions.insert(v.parse().unwrap());
            }
            _ => {}
        }
    };
    let started = Instant::now();
    let mut acks = 0usize;
    // Let it write for a while (at least 2000 acknowledged writes), then kill it mid-stream.
    while acks < 2000 && started.elapsed() < Duration::from_secs(60) {
        match lines.next() {
            Some(Ok(line)) => {
                if line.starts_with("ACK") {
                    acks += 1;
                }
                record(&line);
            }
            _ => break,
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Lines already in the pipe were acknowledged before the kill.
    for line in lines.map_while(|l| l.ok()) {
        record(&line);
    }
    let total: usize =
        metrics.values().map(BTreeSet::len).sum::<usize>() + batches.len() + versions.len();
    assert!(total >= 1000, "the child acknowledged only {total} writes");

    rt.block_on(async {
        let s = SqlStore::connect(&uri, StoreOptions::default())
            .await
            .unwrap();
        for (w, acked) in &metrics {
            let stored: BTreeSet<i64> = s
                .get_metric_history(&run_id, &format!("w{w}"), None, None)
                .await
                .unwrap()
                .items
                .iter()
                .map(|m| m.step)
                .collect();
            let lost: Vec<_> = acked.difference(&stored).collect();
            assert!(
                lost.is_empty(),
                "writer {w} lost acknowledged metrics {lost:?}"
            );
        }
        let stored: BTreeSet<i64> = s
            .get_metric_history(&run_id, "batch", None, None)
            .await
            .unwrap()
            .items
            .iter()
            .map(|m| m.step)
            .collect();
        assert!(batches.is_subset(&stored), "lost acknowledged batches");
        let run = s.get_run(&run_id).await.unwrap();
        for b in &batches {
            assert!(
                run.data.params.iter().any(|p| p.key == format!("p{b}")),
                "lost the param of batch {b}"
            );
        }
        for v in &versions {
            s.get_model_version("durable", &v.to_string())
                .await
                .unwrap_or_else(|e| panic!("lost acknowledged version {v}: {e}"));
        }
        // Numbering goes on after the last stored version, never repeating one.
        let next = s
            .create_model_version(CreateModelVersion {
                name: "durable".into(),
                source: "s3://bucket/model".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let next: i64 = next.version.parse().unwrap();
        assert!(versions.iter().all(|v| *v < next));
        eprintln!(
            "durability: {} metric, {} batch and {} version writes acknowledged before kill -9, \
             all present",
            metrics.values().map(BTreeSet::len).sum::<usize>(),
            batches.len(),
            versions.len()
        );
        s.close().await;
    });
}
