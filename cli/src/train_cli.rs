//! Training from the command line: `cerulean train submit|list|status|logs|cancel`,
//! `cerulean worker` and `cerulean datasets register|list`, through the registry's REST API.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cerulean_registry::client::RegistryClient;
use cerulean_registry::datasets::RegisterDataset;
use cerulean_registry::jobs::{Job, JobStatus, ListJobs, SubmitJob};
use cerulean_trainer::spec::JobSpec;
use cerulean_trainer::worker::{Worker, WorkerOptions};
use clap::{Args, Subcommand};

use crate::registry_cli::RegistryTarget;

/// `cerulean train` subcommands.
#[derive(Subcommand, Debug)]
pub enum TrainCommand {
    /// Queue a job file; prints the job's id.
    Submit(SubmitArgs),
    /// List jobs, newest first.
    List {
        /// Only jobs in this state (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED); repeatable.
        #[arg(long)]
        status: Vec<String>,
        #[command(flatten)]
        target: RegistryTarget,
    },
    /// Show one job as JSON.
    Status {
        /// The job's id.
        id: String,
        #[command(flatten)]
        target: RegistryTarget,
    },
    /// Print a job's log lines.
    Logs {
        /// The job's id.
        id: String,
        /// Keep printing new lines until the job ends.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        target: RegistryTarget,
    },
    /// Cancel a job: a queued one at once, a running one within seconds.
    Cancel {
        /// The job's id.
        id: String,
        #[command(flatten)]
        target: RegistryTarget,
    },
}

/// `cerulean train submit` flags.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// The job file (TOML).
    pub file: PathBuf,
    /// Follow the job's progress and exit when it ends: 0 when it succeeded (the model is
    /// registered), 1 when it failed or was cancelled.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub target: RegistryTarget,
}

/// `cerulean worker` flags.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub target: RegistryTarget,
    /// How long a job's lease lasts without a heartbeat: after a worker dies, its job goes to
    /// another worker this long after the last heartbeat.
    #[arg(long, env = "CERULEAN_WORKER_LEASE_SECONDS", default_value_t = 30)]
    pub lease_seconds: u64,
    /// Without a GPU, also take a GPU job that waited this long, and fail it with a clear error
    /// (so it does not wait forever in a pool without GPU workers).
    #[arg(long, env = "CERULEAN_WORKER_GPU_GRACE_SECONDS", default_value_t = 60)]
    pub gpu_grace_seconds: u64,
}

impl WorkerArgs {
    /// The worker's options from these flags.
    pub fn options(&self) -> WorkerOptions {
        let mut options = WorkerOptions::new(self.target.url.clone(), self.target.token());
        options.lease = Duration::from_secs(self.lease_seconds.max(1));
        options.heartbeat =
            (options.lease / 4).clamp(Duration::from_millis(200), options.heartbeat);
        options.gpu_grace = Some(Duration::from_secs(self.gpu_grace_seconds));
        options
    }
}

/// `cerulean datasets` subcommands.
#[derive(Subcommand, Debug)]
pub enum DatasetsCommand {
    /// Record a version of a dataset: content hash over its objects and their etags, schema,
    /// row count.
    Register {
        /// The dataset's name.
        name: String,
        /// Where it is: `file://`, `az://` or `s3://`, a file or a folder prefix.
        uri: String,
        /// parquet, csv, jsonl or image-folder.
        #[arg(long, default_value = "parquet")]
        format: String,
        #[command(flatten)]
        target: RegistryTarget,
    },
    /// List the registered datasets' latest versions.
    List {
        #[command(flatten)]
        target: RegistryTarget,
    },
}

/// Runs a `train` subcommand.
pub fn train(command: TrainCommand) -> ExitCode {
    crate::run_async(async move {
        match command {
            TrainCommand::Submit(args) => submit(args).await,
            TrainCommand::List { status, target } => list(&target.client()?, &status).await,
            TrainCommand::Status { id, target } => {
                let job = target.client()?.get_job(&id).await?;
                println!("{}", serde_json::to_string_pretty(&job)?);
                Ok(ExitCode::SUCCESS)
            }
            TrainCommand::Logs { id, follow, target } => {
                let client = target.client()?;
                let job = follow_logs(&client, &id, follow).await?;
                Ok(if follow {
                    job_exit(&job)
                } else {
                    ExitCode::SUCCESS
                })
            }
            TrainCommand::Cancel { id, target } => {
                let job = target.client()?.cancel_job(&id).await?;
                println!("{} {}", job.job_id, job.status);
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// Submits a job file; with `--wait`, follows it to its end.
async fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let spec = JobSpec::from_toml(&text).with_context(|| format!("in {}", args.file.display()))?;
    let client = args.target.client()?;
    let job = client
        .submit_job(&SubmitJob {
            name: spec.name.clone(),
            experiment: spec.experiment.clone(),
            spec: spec.to_json(),
            spec_text: Some(text),
            requires_gpu: spec.requires_gpu(),
        })
        .await?;
    println!("{}", job.job_id);
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let job = follow_logs(&client, &job.job_id, true).await?;
    Ok(job_exit(&job))
}

/// 0 for a job that succeeded, 1 otherwise; prints how it ended.
fn job_exit(job: &Job) -> ExitCode {
    match job.status {
        JobStatus::Succeeded => {
            if let Some(result) = &job.result {
                match (result.get("model"), result.get("version")) {
                    (Some(model), Some(version)) => eprintln!(
                        "job {} succeeded: registered {} version {}",
                        job.job_id,
                        model.as_str().unwrap_or_default(),
                        version.as_str().unwrap_or_default()
                    ),
                    _ => eprintln!("job {} succeeded", job.job_id),
                }
            }
            ExitCode::SUCCESS
        }
        status => {
            eprintln!(
                "job {} {status}{}",
                job.job_id,
                job.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
            ExitCode::FAILURE
        }
    }
}

/// Prints the job's log lines; with `follow`, until the job has ended and every line is printed.
/// Returns the job as last read.
async fn follow_logs(client: &RegistryClient, id: &str, follow: bool) -> anyhow::Result<Job> {
    let mut after = 0;
    loop {
        // Read the state first: lines logged before a job ended are all there once it has.
        let job = client.get_job(id).await?;
        loop {
            let lines = client.job_logs(id, after, Some(1000)).await?;
            for line in &lines {
                println!("{}", line.line);
                after = after.max(line.seq);
            }
            if lines.len() < 1000 {
                break;
            }
        }
        if !follow || job.status.is_terminal() {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Lists jobs in a table.
async fn list(client: &RegistryClient, status: &[String]) -> anyhow::Result<ExitCode> {
    let status = status
        .iter()
        .map(|s| JobStatus::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .context("--status")?;
    let jobs = client
        .list_jobs(&ListJobs {
            status: (!status.is_empty()).then_some(status),
            max_results: Some(100),
            page_token: None,
        })
        .await?;
    println!(
        "{:<36} {:<10} {:<24} {:>8} {:<32}",
        "JOB", "STATUS", "NAME", "ATTEMPTS", "RUN"
    );
    for job in &jobs.items {
        println!(
            "{:<36} {:<10} {:<24} {:>8} {:<32}",
            job.job_id,
            job.status,
            job.name,
            job.attempts,
            job.run_id.as_deref().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a worker until SIGINT or SIGTERM.
pub fn worker(args: WorkerArgs) -> ExitCode {
    crate::run_async(async move {
        let worker = Worker::new(args.options())?;
        worker.run(crate::serve::shutdown_signal()).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs a `datasets` subcommand.
pub fn datasets(command: DatasetsCommand) -> ExitCode {
    crate::run_async(async move {
        match command {
            DatasetsCommand::Register {
                name,
                uri,
                format,
                target,
            } => {
                cerulean_registry::install_tls_provider();
                let lake_uri = cerulean_lake::LakeUri::parse(&uri)?;
                let version = if format == "image-folder" {
                    cerulean_lake::list_image_folder(&lake_uri)
                        .await
                        .with_context(|| format!("reading {uri}"))?
                        .version
                } else {
                    let table_format: cerulean_lake::TableFormat = format
                        .parse()
                        .map_err(|e| anyhow::anyhow!("--format: {e}"))?;
                    cerulean_lake::dataset_version(&lake_uri, table_format)
                        .await
                        .with_context(|| format!("reading {uri}"))?
                };
                let record = target
                    .client()?
                    .register_dataset(&RegisterDataset {
                        name,
                        uri,
                        format,
                        digest: version.content_hash.clone(),
                        schema: serde_json::from_str(&version.schema).ok(),
                        row_count: Some(version.row_count as i64),
                        description: None,
                    })
                    .await?;
                println!(
                    "{} version {}: {} rows, digest {}",
                    record.name,
                    record.version,
                    record.row_count.unwrap_or_default(),
                    record.digest
                );
                Ok(ExitCode::SUCCESS)
            }
            DatasetsCommand::List { target } => {
                let datasets = target.client()?.list_datasets(None).await?;
                println!(
                    "{:<24} {:>7} {:>10} {:<18} URI",
                    "NAME", "VERSION", "ROWS", "DIGEST"
                );
                for d in &datasets {
                    println!(
                        "{:<24} {:>7} {:>10} {:<18} {}",
                        d.name,
                        d.version,
                        d.row_count.unwrap_or_default(),
                        d.digest,
                        d.uri
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
