//! The worker: leases training jobs from the registry's queue, trains them, and reports back.
//!
//! A worker talks to the registry over its REST API only, so any number of workers run on any
//! machine that reaches it. For each job it:
//! 1. keeps the lease alive with a heartbeat (which also carries progress and tells it when the job
//!    was cancelled); a worker that dies stops heartbeating, the lease expires and the next worker
//!    takes the job over;
//! 2. creates the job's MLflow run on the first attempt, and continues the same run on later ones;
//! 3. streams the dataset from the lake and records its version on the run (`log-inputs`);
//! 4. trains on a blocking thread, sending metrics and log lines to the registry as they come and
//!    uploading checkpoints to the run's artifacts (resuming from the job's last one);
//! 5. uploads the model (`model.safetensors` + `model.json`) and registers it as a new version.
//!
//! Sweeps train each trial as a child run, up to `parallel` at once, and register the best; a
//! later attempt keeps the trials an earlier one finished and resumes the others from their
//! checkpoints ([`sweep`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use cerulean_registry::client::{ClientError, RegistryClient};
use cerulean_registry::entities::{Metric, Param, Run, Tag};
use cerulean_registry::jobs::{FinishJob, Job, JobStatus, LeaseRequest};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::Checkpoint;
use crate::context::TrainContext;
use crate::data::{LoadedDataset, load_dataset};
use crate::error::TrainError;
use crate::spec::JobSpec;
use crate::sweep::Trial;
use crate::train::{TrainOutcome, train};

mod sweep;

/// How a worker reaches the registry and paces itself.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The registry's base URL, e.g. `http://127.0.0.1:8080`.
    pub registry_url: String,
    /// An API key with the writer role, when the registry checks keys.
    pub token: Option<String>,
    /// This worker's name in leases and logs.
    pub worker_id: String,
    /// How long a lease lasts without a heartbeat.
    pub lease: Duration,
    /// How often the lease is renewed.
    pub heartbeat: Duration,
    /// How long to wait before asking again when the queue is empty.
    pub poll: Duration,
    /// Whether this worker offers a CUDA device.
    pub gpu: bool,
    /// Without a GPU: also take a GPU job that waited this long in the queue, and fail it with a
    /// clear error (so a pool with no GPU worker does not leave it queued forever). `None`: never.
    pub gpu_grace: Option<Duration>,
}

/// Whether this build has CUDA and the first GPU opens.
pub fn gpu_available() -> bool {
    cfg!(feature = "cuda") && crate::DeviceSpec::Cuda(0).open().is_ok()
}

impl WorkerOptions {
    /// Defaults: a 30 s lease renewed every 2 s, the queue polled every second, a GPU offered when
    /// this build has CUDA and a device answers.
    pub fn new(registry_url: impl Into<String>, token: Option<String>) -> WorkerOptions {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_string());
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        WorkerOptions {
            registry_url: registry_url.into(),
            token,
            worker_id: format!("{host}-{}-{}", std::process::id(), &suffix[..8]),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(2),
            poll: Duration::from_secs(1),
            gpu: gpu_available(),
            gpu_grace: Some(Duration::from_secs(60)),
        }
    }
}

/// A training worker.
pub struct Worker {
    client: RegistryClient,
    options: WorkerOptions,
}

/// How a job's execution ended, short of an error.
enum JobEnd {
    /// Trained (and registered, when the job asks for it).
    Succeeded(Value),
    /// Stopped because cancellation was asked for.
    Cancelled,
}

/// The job being run and the lease that entitles this worker to run it.
#[derive(Clone)]
struct Lease {
    client: RegistryClient,
    job_id: String,
    token: String,
    lease_ms: i64,
    /// Set when cancellation was asked for (or the lease was lost): training stops.
    stop: Arc<AtomicBool>,
    /// Set when another worker took the job over: nothing more is reported.
    lost: Arc<AtomicBool>,
    /// The latest progress, sent with each heartbeat.
    progress: Arc<Mutex<Value>>,
    /// The last checkpoint recorded on the job, by this attempt or an earlier one.
    checkpoint: Arc<Mutex<Option<String>>>,
}

impl Lease {
    /// Renews the lease, recording a new checkpoint when given. A lease another worker holds now
    /// stops this one.
    async fn renew(&self, checkpoint_uri: Option<&str>) -> Result<(), ClientError> {
        let progress = self.progress.lock().clone();
        let progress = (!progress.is_null()).then_some(progress);
        match self
            .client
            .heartbeat_job(
                &self.job_id,
                &self.token,
                self.lease_ms,
                progress.as_ref(),
                checkpoint_uri,
            )
            .await
        {
            Ok(reply) => {
                if let Some(uri) = checkpoint_uri {
                    *self.checkpoint.lock() = Some(uri.to_string());
                }
                if reply.cancel_requested {
                    self.stop.store(true, Ordering::SeqCst);
                }
                Ok(())
            }
            Err(err) => {
                if is_lease_lost(&err) {
                    self.lost.store(true, Ordering::SeqCst);
                    self.stop.store(true, Ordering::SeqCst);
                }
                Err(err)
            }
        }
    }

    fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

/// Whether the registry refused a lease operation because another worker holds the job now, or
/// it is no longer running.
fn is_lease_lost(err: &ClientError) -> bool {
    matches!(err, ClientError::Api { status, .. } if status.as_u16() == 409)
}

impl Worker {
    /// A worker for `options`.
    pub fn new(options: WorkerOptions) -> Result<Worker, TrainError> {
        let client = RegistryClient::new(&options.registry_url, options.token.clone())
            .map_err(|e| TrainError::Context(format!("registry client: {e}")))?;
        Ok(Worker { client, options })
    }

    /// This worker's id.
    pub fn id(&self) -> &str {
        &self.options.worker_id
    }

    /// Leases and runs jobs until `shutdown` completes. A job in progress at shutdown is left to
    /// its lease: it expires and the next worker resumes the job from its last checkpoint.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tracing::info!(worker = %self.options.worker_id, gpu = self.options.gpu, registry = %self.options.registry_url, "worker started");
        tokio::pin!(shutdown);
        let mut backoff = self.options.poll;
        loop {
            let next = tokio::select! {
                _ = &mut shutdown => break,
                next = self.run_once() => next,
            };
            match next {
                Ok(true) => backoff = self.options.poll,
                Ok(false) => {
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(self.options.poll) => {}
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot lease a job; retrying");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        tracing::info!(worker = %self.options.worker_id, "worker stopped");
    }

    /// Leases one job and runs it to its end; `false` when the queue had none.
    pub async fn run_once(&self) -> Result<bool, ClientError> {
        let lease_ms = self.options.lease.as_millis() as i64;
        let request = LeaseRequest {
            worker_id: self.options.worker_id.clone(),
            lease_ms,
            gpu: self.options.gpu,
            gpu_grace_ms: self.options.gpu_grace.map(|d| d.as_millis() as i64),
        };
        let Some((job, token)) = self.client.lease_job(&request).await? else {
            return Ok(false);
        };
        let lease = Lease {
            client: self.client.clone(),
            job_id: job.job_id.clone(),
            token,
            lease_ms,
            stop: Arc::new(AtomicBool::new(false)),
            lost: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(Mutex::new(Value::Null)),
            checkpoint: Arc::new(Mutex::new(job.checkpoint_uri.clone())),
        };
        tracing::info!(job = %job.job_id, name = %job.name, attempt = job.attempts, "leased a job");
        let heartbeat = tokio::spawn(keep_alive(lease.clone(), self.options.heartbeat));
        let outcome = self.execute(&job, &lease).await;
        heartbeat.abort();
        if lease.lost() {
            tracing::warn!(job = %job.job_id, "another worker holds the job now; leaving it");
            return Ok(true);
        }
        self.finish(&job, &lease, outcome).await;
        Ok(true)
    }

    /// Reports how the job ended, on the job and on its run.
    async fn finish(
        &self,
        job: &Job,
        lease: &Lease,
        (run_id, outcome): (Option<String>, anyhow::Result<JobEnd>),
    ) {
        let now = now_ms();
        let run_id = run_id.or_else(|| job.run_id.clone());
        let (status, run_status, error, context, result) = match outcome {
            Ok(JobEnd::Succeeded(result)) => ("SUCCEEDED", "FINISHED", None, None, Some(result)),
            Ok(JobEnd::Cancelled) => ("CANCELLED", "KILLED", None, None, None),
            Err(err) => {
                let message = format!("{err:#}");
                let context = failure_context(&err, job, &self.options.worker_id, lease);
                ("FAILED", "FAILED", Some(message), Some(context), None)
            }
        };
        if let Some(error) = &error {
            tracing::warn!(job = %job.job_id, %error, "job failed");
            let _ = self
                .client
                .append_job_logs(&job.job_id, &lease.token, &[format!("job failed: {error}")])
                .await;
        } else {
            tracing::info!(job = %job.job_id, status, "job ended");
        }
        if let Some(run_id) = &run_id
            && let Err(err) = self.client.update_run(run_id, run_status, Some(now)).await
        {
            tracing::warn!(run = %run_id, error = %err, "cannot end the run");
        }
        let status = match status {
            "SUCCEEDED" => JobStatus::Succeeded,
            "CANCELLED" => JobStatus::Cancelled,
            _ => JobStatus::Failed,
        };
        let finish = FinishJob {
            status,
            error,
            error_context: context,
            result,
            checkpoint_uri: None,
        };
        if let Err(err) = self
            .client
            .finish_job(&job.job_id, &lease.token, &finish)
            .await
        {
            tracing::warn!(job = %job.job_id, error = %err, "cannot record the job's end");
        }
    }

    /// Runs the job; answers its run (once one exists) beside how it ended.
    async fn execute(&self, job: &Job, lease: &Lease) -> (Option<String>, anyhow::Result<JobEnd>) {
        let spec = match JobSpec::from_json(&job.spec).context("reading the job's spec") {
            Ok(spec) => spec,
            Err(err) => return (None, Err(err)),
        };
        let run = match self.job_run(job, lease, &spec).await {
            Ok(run) => run,
            Err(err) => return (None, Err(err)),
        };
        let run_id = run.info.run_id.clone();
        let logs = LogPump::start(self.client.clone(), lease.clone());
        let end = self.train_job(job, lease, &spec, &run, &logs).await;
        logs.flush().await;
        (Some(run_id), end)
    }

    /// The job's run: the one recorded on the job (a resumed job), or a new one.
    async fn job_run(&self, job: &Job, lease: &Lease, spec: &JobSpec) -> anyhow::Result<Run> {
        if let Some(run_id) = &job.run_id {
            return self
                .client
                .get_run(run_id)
                .await
                .with_context(|| format!("reading the job's run {run_id}"));
        }
        let experiment = spec.experiment.as_deref().unwrap_or("Default");
        let experiment_id = self
            .client
            .ensure_experiment(experiment)
            .await
            .with_context(|| format!("creating the experiment '{experiment}'"))?;
        let tags = [
            Tag::new("cerulean.job_id", job.job_id.clone()),
            Tag::new("mlflow.source.type", "JOB"),
            Tag::new("mlflow.source.name", "cerulean-worker"),
            Tag::new("mlflow.user", "cerulean"),
        ];
        let run = self
            .client
            .create_run(&experiment_id, &spec.name, now_ms(), &tags)
            .await
            .context("creating the job's run")?;
        self.client
            .set_job_run(&job.job_id, &lease.token, &run.info.run_id)
            .await
            .context("recording the run on the job")?;
        Ok(run)
    }

    /// Loads the data and trains every trial; registers the best.
    async fn train_job(
        &self,
        job: &Job,
        lease: &Lease,
        spec: &JobSpec,
        run: &Run,
        logs: &LogPump,
    ) -> anyhow::Result<JobEnd> {
        let run_id = run.info.run_id.as_str();
        if job.attempts > 1 {
            logs.line(format!(
                "attempt {} on worker {}: resuming",
                job.attempts, self.options.worker_id
            ));
        }
        let trials = spec.trials().context("expanding the sweep")?;
        let params = spec_params(spec);
        self.client
            .log_batch(run_id, &[], &params, &[])
            .await
            .context("logging the job's parameters")?;
        logs.line(format!("loading {}", spec.dataset.uri));
        let data = Arc::new(
            load_dataset(&spec.dataset)
                .await
                .with_context(|| format!("loading the dataset {}", spec.dataset.uri))?,
        );
        logs.line(format!(
            "dataset: {} rows, digest {}",
            data.version.row_count, data.version.content_hash
        ));
        self.client
            .log_inputs(run_id, &[dataset_input(spec, &data)])
            .await
            .context("recording the dataset on the run")?;

        let (trial, outcome) = if trials.len() == 1 {
            let trial = trials
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("no trial"))?;
            let resume = self.resume_checkpoint(job, logs).await?;
            let outcome = self
                .train_trial(lease, &trial, data, resume, run, logs)
                .await?;
            (trial, outcome)
        } else {
            match self.sweep(lease, spec, trials, data, run, logs).await? {
                Some(best) => best,
                None => return Ok(JobEnd::Cancelled),
            }
        };
        if outcome.cancelled {
            logs.line("cancelled".to_string());
            return Ok(JobEnd::Cancelled);
        }
        self.register(job, spec, &trial, &outcome, run, logs).await
    }

    /// The checkpoint the job's previous attempt left, if any.
    async fn resume_checkpoint(
        &self,
        job: &Job,
        logs: &LogPump,
    ) -> anyhow::Result<Option<Checkpoint>> {
        let Some(uri) = job.checkpoint_uri.as_deref() else {
            return Ok(None);
        };
        let path = proxied_path(uri)?;
        let bytes = download(&self.client, &path)
            .await
            .with_context(|| format!("downloading the checkpoint {uri}"))?;
        let checkpoint = Checkpoint::from_bytes(&bytes)
            .with_context(|| format!("reading the checkpoint {uri}"))?;
        logs.line(format!(
            "resuming from {uri} (epoch {}, step {})",
            checkpoint.epoch, checkpoint.step
        ));
        Ok(Some(checkpoint))
    }

    /// Trains one trial on a blocking thread, its metrics going to `run`.
    async fn train_trial(
        &self,
        lease: &Lease,
        trial: &Trial,
        data: Arc<LoadedDataset>,
        resume: Option<Checkpoint>,
        run: &Run,
        logs: &LogPump,
    ) -> anyhow::Result<TrainOutcome> {
        let metrics = metric_pump(self.client.clone(), run.info.run_id.clone());
        let mut context = WorkerContext {
            lease: lease.clone(),
            metrics: metrics.clone(),
            logs: logs.clone(),
            artifacts: artifact_root(run)?,
            runtime: tokio::runtime::Handle::current(),
            prefix: if trial.swept.is_empty() {
                String::new()
            } else {
                format!("trial {}: ", trial.index)
            },
        };
        let spec = trial.spec.clone();
        let outcome =
            tokio::task::spawn_blocking(move || train(&spec, &data, resume, &mut context))
                .await
                .context("the training thread panicked")?;
        metrics.flush().await;
        Ok(outcome?)
    }

    /// Uploads the trained model to the run's artifacts and registers it.
    async fn register(
        &self,
        job: &Job,
        spec: &JobSpec,
        trial: &Trial,
        outcome: &TrainOutcome,
        run: &Run,
        logs: &LogPump,
    ) -> anyhow::Result<JobEnd> {
        let run_id = run.info.run_id.as_str();
        let root = artifact_root(run)?;
        for (name, bytes) in &outcome.files {
            self.client
                .upload_artifact(&format!("{root}/model/{name}"), bytes.clone())
                .await
                .with_context(|| format!("uploading model/{name}"))?;
        }
        let final_metrics: Vec<Metric> = outcome
            .metrics
            .iter()
            .map(|(k, v)| Metric::new(format!("final_{k}"), *v, now_ms(), 0))
            .collect();
        self.client
            .log_batch(run_id, &final_metrics, &[], &[])
            .await
            .context("logging the final metrics")?;
        let mut result = json!({
            "run_id": run_id,
            "metrics": outcome.metrics,
            "epochs": outcome.epochs_run,
            "stopped_early": outcome.stopped_early,
            "trial": trial.index,
            "swept": trial.swept,
        });
        let Some(name) = spec.register_as.as_deref() else {
            logs.line("trained; not registered (the job has no register_as)".to_string());
            return Ok(JobEnd::Succeeded(result));
        };
        self.client
            .ensure_registered_model(name)
            .await
            .with_context(|| format!("creating the registered model '{name}'"))?;
        let (metric, value, _) = &outcome.primary_metric;
        let tags = [
            Tag::new("cerulean.job_id", job.job_id.clone()),
            Tag::new("cerulean.family", spec.model.family.as_str()),
            Tag::new(format!("val_{metric}"), format!("{value}")),
        ];
        let source = format!("{}/model", run.info.artifact_uri);
        let description = format!("{} trained by job {}", spec.name, job.job_id);
        let version = self
            .client
            .create_model_version(name, &source, Some(run_id), &description, &tags)
            .await
            .with_context(|| format!("registering a version of '{name}'"))?;
        logs.line(format!(
            "registered {name} version {} ({metric} {value:.4})",
            version.version
        ));
        result["model"] = json!(name);
        result["version"] = json!(version.version);
        Ok(JobEnd::Succeeded(result))
    }
}

/// The failure's context, as a traceback would give it: each cause from the outermost in, then
/// where it happened (worker, attempt, the job's last progress and checkpoint).
fn failure_context(err: &anyhow::Error, job: &Job, worker: &str, lease: &Lease) -> String {
    let mut context = String::from("error chain (outermost first):\n");
    for (depth, cause) in err.chain().enumerate() {
        context.push_str(&format!("  {depth}: {cause}\n"));
    }
    context.push_str(&format!(
        "worker {worker}, attempt {}, job {}\n",
        job.attempts, job.job_id
    ));
    let progress = lease.progress.lock().clone();
    if !progress.is_null() {
        context.push_str(&format!("last progress: {progress}\n"));
    }
    if let Some(checkpoint) = lease.checkpoint.lock().as_deref() {
        context.push_str(&format!("last checkpoint: {checkpoint}\n"));
    }
    context
}

/// Renews the lease until aborted.
async fn keep_alive(lease: Lease, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match lease.renew(None).await {
            Ok(()) => {}
            Err(err) if lease.lost() => {
                tracing::warn!(job = %lease.job_id, error = %err, "lease lost");
                return;
            }
            Err(err) => tracing::warn!(job = %lease.job_id, error = %err, "heartbeat failed"),
        }
    }
}

/// The training loop's view of the worker ([`TrainContext`]), called on the blocking thread.
struct WorkerContext {
    lease: Lease,
    metrics: MetricPump,
    logs: LogPump,
    /// The run's artifact path under the proxy (`<experiment>/<run>/artifacts`).
    artifacts: String,
    runtime: tokio::runtime::Handle,
    /// Put before log lines (the trial, in a sweep).
    prefix: String,
}

impl TrainContext for WorkerContext {
    fn log_metrics(&mut self, step: i64, metrics: &[(&str, f64)]) -> crate::error::Result<()> {
        let timestamp = now_ms();
        let mut progress = self.lease.progress.lock();
        if !progress.is_object() {
            *progress = json!({});
        }
        for (key, value) in metrics {
            self.metrics
                .send(Metric::new(*key, *value, timestamp, step));
            if value.is_finite() {
                progress[*key] = json!(value);
            }
        }
        progress["step"] = json!(step);
        Ok(())
    }

    fn log_line(&mut self, line: &str) {
        self.logs.line(format!("{}{line}", self.prefix));
    }

    fn save_checkpoint(&mut self, checkpoint: &Checkpoint) -> crate::error::Result<()> {
        let bytes = checkpoint.to_bytes()?;
        let path = format!(
            "{}/checkpoints/epoch-{:05}.ckpt",
            self.artifacts, checkpoint.epoch
        );
        let uri = format!("mlflow-artifacts:/{path}");
        let (metrics, lease, client) = (
            self.metrics.clone(),
            self.lease.clone(),
            self.lease.client.clone(),
        );
        let recorded = uri.clone();
        self.runtime
            .block_on(async move {
                // The metrics before the checkpoint are stored before the checkpoint is recorded,
                // so a resumed run's history has no gap.
                metrics.flush().await;
                client.upload_artifact(&path, bytes).await?;
                lease.renew(Some(&recorded)).await
            })
            .map_err(|e| TrainError::Context(format!("saving the checkpoint {uri}: {e}")))
    }

    fn cancelled(&self) -> bool {
        self.lease.stop.load(Ordering::Relaxed)
    }
}

/// What the pumps carry.
enum PumpMessage<T> {
    Item(T),
    Flush(oneshot::Sender<()>),
}

/// Sends items to the registry in batches, in order, off the training thread.
struct Pump<T> {
    sender: mpsc::UnboundedSender<PumpMessage<T>>,
}

impl<T> Clone for Pump<T> {
    fn clone(&self) -> Self {
        Pump {
            sender: self.sender.clone(),
        }
    }
}

impl<T: Clone + Send + 'static> Pump<T> {
    /// Starts the task that sends batches of at most `max` items with `send`.
    fn start<F, Fut>(max: usize, send: F) -> Pump<T>
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), ClientError>> + Send + 'static,
    {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(pump(receiver, max, send));
        Pump { sender }
    }

    fn send(&self, item: T) {
        let _ = self.sender.send(PumpMessage::Item(item));
    }

    /// Waits until everything sent before is stored (or given up on).
    async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(PumpMessage::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// Metric values to a run.
type MetricPump = Pump<Metric>;

/// Starts sending metric values to `run_id`.
fn metric_pump(client: RegistryClient, run_id: String) -> MetricPump {
    Pump::start(1000, move |batch: Vec<Metric>| {
        let (client, run_id) = (client.clone(), run_id.clone());
        async move { client.log_batch(&run_id, &batch, &[], &[]).await }
    })
}

/// Log lines to the job; also traced.
#[derive(Clone)]
struct LogPump {
    lines: Pump<String>,
    job_id: String,
}

impl LogPump {
    fn start(client: RegistryClient, lease: Lease) -> LogPump {
        let job_id = lease.job_id.clone();
        let lines = Pump::start(500, move |batch: Vec<String>| {
            let (client, lease) = (client.clone(), lease.clone());
            async move {
                client
                    .append_job_logs(&lease.job_id, &lease.token, &batch)
                    .await
                    .map(|_last_seq| ())
            }
        });
        LogPump { lines, job_id }
    }

    fn line(&self, line: String) {
        tracing::info!(job = %self.job_id, "{line}");
        self.lines.send(line);
    }

    async fn flush(&self) {
        self.lines.flush().await;
    }
}

/// Drains `receiver` in batches of at most `max`, sending each with `send` (retried a few times
/// with backoff), and answers flushes once everything before them is sent.
async fn pump<T, F, Fut>(mut receiver: mpsc::UnboundedReceiver<PumpMessage<T>>, max: usize, send: F)
where
    F: Fn(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<(), ClientError>>,
    T: Clone,
{
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = receiver.recv().await {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                PumpMessage::Item(item) => batch.push(item),
                PumpMessage::Flush(done) => flushes.push(done),
            }
            next = if batch.len() < max && flushes.is_empty() {
                receiver.try_recv().ok()
            } else {
                None
            };
        }
        if !batch.is_empty() {
            let items = std::mem::take(&mut batch);
            let mut delay = Duration::from_millis(200);
            for attempt in 1..=5 {
                match send(items.clone()).await {
                    Ok(()) => break,
                    Err(err) if attempt == 5 || is_lease_lost(&err) => {
                        tracing::warn!(error = %err, "giving up sending {} items", items.len());
                        break;
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, "retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// The job's settings as MLflow params (`train.learning_rate` = `0.001`, ...).
fn spec_params(spec: &JobSpec) -> Vec<Param> {
    spec.params()
        .into_iter()
        .map(|(key, mut value)| {
            // MLflow's limit on a param value.
            value.truncate(6000);
            Param::new(key, value)
        })
        .collect()
}

/// The longest dataset digest MLflow accepts.
const MLFLOW_DIGEST_LIMIT: usize = 36;

/// MLflow's dataset object for `log-inputs`: name, digest, source, schema and row count.
fn dataset_input(spec: &JobSpec, data: &LoadedDataset) -> Value {
    let version = &data.version;
    let name = spec
        .dataset
        .uri
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("dataset")
        .to_string();
    let scheme = spec.dataset.uri.split("://").next().unwrap_or("file");
    json!({
        "name": name,
        // MLflow limits a dataset digest to 36 characters: the hash's first ones (the full hash
        // is in the profile).
        "digest": version.content_hash.chars().take(MLFLOW_DIGEST_LIMIT).collect::<String>(),
        "source_type": match scheme { "az" => "azure_blob", "s3" => "s3", _ => "local" },
        "source": json!({ "uri": spec.dataset.uri }).to_string(),
        "schema": version.schema,
        "profile": json!({ "num_rows": version.row_count, "content_hash": version.content_hash }).to_string(),
    })
}

/// The run's artifact folder as a path under the artifact proxy.
fn artifact_root(run: &Run) -> anyhow::Result<String> {
    proxied_path(&run.info.artifact_uri)
}

/// `mlflow-artifacts:/0/abc/artifacts/x` → `0/abc/artifacts/x`: the path the proxy serves.
fn proxied_path(uri: &str) -> anyhow::Result<String> {
    let rest = uri.strip_prefix("mlflow-artifacts:").ok_or_else(|| {
        anyhow!("artifact location {uri} is not served by the registry's artifact proxy (mlflow-artifacts:)")
    })?;
    let rest = rest.trim_start_matches('/');
    // `mlflow-artifacts://host/path` carries a host before the path.
    let rest = if uri.starts_with("mlflow-artifacts://") {
        rest.split_once('/').map_or("", |(_, p)| p)
    } else {
        rest
    };
    Ok(rest.trim_end_matches('/').to_string())
}

/// Downloads one artifact whole.
async fn download(client: &RegistryClient, path: &str) -> Result<Vec<u8>, ClientError> {
    let mut stream = Box::pin(client.download_artifact(path).await?);
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(bytes)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_paths() {
        assert_eq!(
            proxied_path("mlflow-artifacts:/1/abc/artifacts").unwrap(),
            "1/abc/artifacts"
        );
        assert_eq!(
            proxied_path("mlflow-artifacts://host:8080/1/abc/artifacts/").unwrap(),
            "1/abc/artifacts"
        );
        assert!(proxied_path("s3://bucket/x").is_err());
    }
}
