//! `cerulean-bench`: latency and throughput of a KServe v2 / Triton inference server (Cerulean or
//! any other) over REST with JSON tensors, REST with the binary tensor extension, and gRPC; the
//! in-process ONNX Runtime floor; and `all`, which runs the whole matrix of bench/README.md.
//!
//! ```text
//! cerulean-bench floor --model DIR/mlp_compute/1/model.onnx --batch 32 --threads 2
//! cerulean-bench load --model mlp_overhead --http 127.0.0.1:8080 --grpc 127.0.0.1:8081
//! cerulean-bench all --kserve
//! cerulean-bench embeddings
//! ```

mod all;
mod embeddings;
mod floor;
mod grpc_client;
mod load;
mod procs;
mod stats;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Command line of `cerulean-bench`.
#[derive(Parser, Debug)]
#[command(name = "cerulean-bench", version, about)]
struct Cli {
    /// Worker threads of the load generator's async runtime (it shares the machine with the server).
    #[arg(long, global = true, default_value_t = 1)]
    client_threads: usize,
    #[command(subcommand)]
    command: Cmd,
}

/// What to run.
#[derive(Subcommand, Debug)]
enum Cmd {
    /// Calls an ONNX file in-process through `ort` in a loop: rows/s and per-call latency.
    Floor(floor::FloorArgs),
    /// Loads a running v2 server with batch-1 requests at each concurrency and transport.
    Load(load::LoadArgs),
    /// Makes the models, runs the floors, starts `cerulean serve` (and KServe with --kserve), runs
    /// the whole matrix and prints the tables and target ratios.
    All(all::AllArgs),
    /// Sentences per second of the `embeddings` model through `/v1/embeddings` and v2 against the
    /// in-process floor and a Python loop (starts `cerulean up`).
    Embeddings(embeddings::EmbeddingsArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Floor(args) => {
            let result = floor::run_floor(&args)?;
            println!(
                "{} batch {} sessions×threads {}: {:.0} rows/s, {:.0} calls/s, per call p50 {:.1} µs p99 {:.1} µs, other CPU {:.2}",
                result.model,
                result.batch,
                result.layout(),
                result.rows_per_s,
                result.calls_per_s,
                result.latency.p50_us,
                result.latency.p99_us,
                result.other_cpu.unwrap_or(f64::NAN)
            );
            Ok(())
        }
        Cmd::Load(args) => runtime(cli.client_threads)?.block_on(load_command(args)),
        Cmd::Embeddings(args) => {
            let rows = runtime(cli.client_threads)?.block_on(embeddings::run(args))?;
            println!("{}", embeddings::render(&rows));
            Ok(())
        }
        Cmd::All(args) => {
            let report = runtime(cli.client_threads)?.block_on(all::run_all(args))?;
            println!("{}", all::render(&report));
            Ok(())
        }
    }
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn load_command(args: load::LoadArgs) -> anyhow::Result<()> {
    let width = match args.input_width {
        Some(width) => width,
        None => load::input_width_from_metadata(args.http, &args.model).await?,
    };
    let mut loads = Vec::new();
    for &transport in &args.transports {
        for &concurrency in &args.concurrency {
            let spec = load::LoadSpec {
                server: "server".into(),
                model: args.model.clone(),
                input_width: width,
                transport,
                concurrency,
                http: args.http,
                grpc: args.grpc,
                timing: args.timing,
                server_pid: args.server_pid,
            };
            let result = load::run_load(&spec).await?;
            eprintln!("{}", all::load_line(&result));
            loads.push(result);
        }
    }
    let report = all::Report {
        floors: Vec::new(),
        loads,
        adjacent_floors: Vec::new(),
        ratios: Vec::new(),
    };
    println!("{}", all::render(&report));
    Ok(())
}
