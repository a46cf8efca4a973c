//! `cerulean`: the one binary of the Cerulean platform.

mod models;
mod serve;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Run the whole platform: fetch the prebuilt models if missing, then serve them together with
    /// the models in $CERULEAN_HOME/repository.
    Up(serve::ServeArgs),
    /// Serve a Triton-layout model repository over KServe v2 (REST and gRPC).
    Serve(serve::ServeArgs),
    /// Prebuilt models: fetch and list.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Up(args) => serve::run(cli.config.as_deref(), args, true),
        Command::Serve(args) => serve::run(cli.config.as_deref(), args, false),
        Command::Models { command } => models::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
