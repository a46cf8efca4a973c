//! `cerulean`: the one binary of the Cerulean platform.

mod models;
mod registry_cli;
mod registry_server;
mod serve;
mod settings;
mod train_cli;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc instead of the C library's allocator. A request allocates and frees many short-lived
/// buffers on the tokio threads (HTTP/2 frames, tonic's codec buffers, protobuf strings), and
/// glibc's malloc spent about 17 % of the server's CPU under a gRPC load of the overhead-bound
/// benchmark model (`malloc_consolidate` alone 2.4 %); with jemalloc preloaded the same load gave
/// 25.8–28.4 k requests/s against 23.3–24.4 k, and the binary-tensor HTTP load the same requests
/// for 13 % less server CPU (bench/README.md, run 7).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Self-hosted machine learning and cognitive services in one program.
#[derive(Parser)]
#[command(name = "cerulean", version, about)]
struct Cli {
    /// Configuration file (TOML); defaults to $CERULEAN_HOME/cerulean.toml when that exists.
    #[arg(long, global = true, env = "CERULEAN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole platform: fetch the prebuilt models if missing, serve them together with the
    /// models in $CERULEAN_HOME/repository, and serve the registry on the same HTTP port.
    Up(UpArgs),
    /// Serve a Triton-layout model repository over KServe v2 (REST and gRPC).
    Serve(serve::ServeArgs),
    /// Run the MLflow-compatible tracking server and model registry on its own.
    Registry(registry_server::RegistryCommand),
    /// Models: fetch and list the prebuilt ones, list a registered model's versions.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Point an alias (e.g. `champion`) at a model version, recording why.
    Promote(registry_cli::PromoteArgs),
    /// Training jobs: submit a job file, list, follow, cancel.
    Train {
        #[command(subcommand)]
        command: train_cli::TrainCommand,
    },
    /// Run a training worker: lease jobs from the registry's queue and train them.
    Worker(train_cli::WorkerArgs),
    /// Datasets: register a version of a lake dataset by name, list them.
    Datasets {
        #[command(subcommand)]
        command: train_cli::DatasetsCommand,
    },
}

/// Runs `work` on a current-thread runtime; errors are printed with their context and exit 1.
fn run_async(work: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(code) => code,
        Err(err) => {
            if let Some(client) = err.downcast_ref::<cerulean_registry::client::ClientError>() {
                return registry_cli::failure(client);
            }
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a registry call to completion, mapping its failure to the documented exit codes.
fn block_on(
    call: impl std::future::Future<Output = Result<(), cerulean_registry::client::ClientError>>,
) -> ExitCode {
    run_async(async move {
        call.await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `cerulean up` flags: the server's and the registry's.
#[derive(clap::Args)]
struct UpArgs {
    #[command(flatten)]
    serve: serve::ServeArgs,
    #[command(flatten)]
    registry: registry_server::RegistryArgs,
}

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any other thread exists.
    unsafe { cerulean_trainer::train::set_cpu_threads_at_startup() };
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: log files and collectors get plain text, and each
        // request's span is not wrapped in escape sequences.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Up(args) => serve::run(cli.config.as_deref(), args.serve, Some(args.registry)),
        Command::Serve(args) => serve::run(cli.config.as_deref(), args, None),
        Command::Registry(args) => registry_server::run(cli.config.as_deref(), args),
        Command::Models { command } => return models::run(command),
        Command::Promote(args) => {
            return block_on(async move { registry_cli::promote(&args).await });
        }
        Command::Train { command } => return train_cli::train(command),
        Command::Worker(args) => return train_cli::worker(args),
        Command::Datasets { command } => return train_cli::datasets(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
