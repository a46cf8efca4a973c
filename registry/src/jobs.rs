//! The training-job queue's entities and requests: a [`Job`] is submitted (`QUEUED`), leased by a
//! worker (`RUNNING`, with a lease the worker extends by heartbeats), and finished (`SUCCEEDED`,
//! `FAILED` or `CANCELLED`). A lease that expires (a dead worker) returns the job to the queue:
//! the next worker resumes it, keeping its `run_id`, from its last `checkpoint_uri`.
//!
//! The store ([`crate::store::MetadataStore`]) keeps the queue; [`crate::service::Registry`]
//! validates job specs (through an optional [`JobSpecValidator`]) and publishes `job_changed`
//! events; [`crate::http`] serves it under `/api/2.0/cerulean/jobs/...`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{RegistryError, Result};

/// Largest job spec (as JSON), job-file text, or error context, in bytes.
pub const MAX_JOB_DOCUMENT_BYTES: usize = 1 << 20;
/// Largest `progress` or `result` document (as JSON), in bytes.
pub const MAX_JOB_STATUS_BYTES: usize = 64 << 10;
/// Longest job name, worker id, experiment name, run id, error message or checkpoint URI.
pub const MAX_JOB_FIELD_LENGTH: usize = 4096;
/// Most log lines in one append.
pub const MAX_LOG_LINES_PER_APPEND: usize = 1000;
/// Longest log line, in characters.
pub const MAX_LOG_LINE_LENGTH: usize = 16 << 10;
/// Longest lease a worker may ask for, in ms (one day).
pub const MAX_LEASE_MS: i64 = 24 * 60 * 60 * 1000;
/// The lease a worker gets when it names none, in ms.
pub const DEFAULT_LEASE_MS: i64 = 30_000;
/// Most jobs in one page of `list_jobs` (default 100).
pub const MAX_JOBS_PER_PAGE: i64 = 1000;
/// Most log lines in one read of `job_logs` (default 1000).
pub const MAX_LOG_LINES_PER_READ: i64 = 10_000;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// Leased by a worker.
    Running,
    /// Ended well.
    Succeeded,
    /// Ended with an error.
    Failed,
    /// Cancelled before or while it ran.
    Cancelled,
}

impl JobStatus {
    /// The status's name, e.g. `QUEUED`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "QUEUED",
            JobStatus::Running => "RUNNING",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelled => "CANCELLED",
        }
    }

    /// Parses a status name (any case); an unknown one is `INVALID_PARAMETER_VALUE`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "QUEUED" => JobStatus::Queued,
            "RUNNING" => JobStatus::Running,
            "SUCCEEDED" => JobStatus::Succeeded,
            "FAILED" => JobStatus::Failed,
            "CANCELLED" | "CANCELED" => JobStatus::Cancelled,
            _ => {
                return Err(RegistryError::invalid(format!(
                    "Invalid job status '{s}'. Valid values are QUEUED, RUNNING, SUCCEEDED, \
                     FAILED, CANCELLED."
                )));
            }
        })
    }

    /// Whether the job has ended (`SUCCEEDED`, `FAILED` or `CANCELLED`).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Refuses a spec that is not a JSON object (a job file).
pub fn check_spec(spec: &Value) -> Result<()> {
    if spec.is_object() {
        Ok(())
    } else {
        Err(RegistryError::invalid(
            "Invalid value for parameter 'spec': it must be a JSON object (the job file).",
        ))
    }
}

/// A training job. Unset optional fields are left out of its JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job's id (a UUID).
    pub job_id: String,
    /// Its name (from the job file).
    pub name: String,
    /// The experiment its run goes to, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// Where it is in its life.
    pub status: JobStatus,
    /// The job file as JSON; opaque to the registry.
    pub spec: Value,
    /// The job file's original TOML text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_text: Option<String>,
    /// The MLflow run it logs to: set by the first worker that leased it and kept across leases,
    /// so a resumed job continues the same run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// How many leases were granted.
    #[serde(default)]
    pub attempts: i64,
    /// The worker holding the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    /// When the lease runs out, ms since the epoch (the registry's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<i64>,
    /// Whether a cancel was asked for while it ran (the worker sees it at its next heartbeat).
    #[serde(default)]
    pub cancel_requested: bool,
    /// Submitted, ms since the epoch.
    pub created_at: i64,
    /// First leased, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// Ended, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    /// Why it failed (the message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where it failed (a traceback-like context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_context: Option<String>,
    /// The last checkpoint its worker reported (where a resumed job starts from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_uri: Option<String>,
    /// What it produced, e.g. `{"model": "digits", "version": "3"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Whether only a worker with a GPU may run it.
    #[serde(default)]
    pub requires_gpu: bool,
    /// The latest progress its worker reported (epoch, step, metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Value>,
}

/// `submit_job`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubmitJob {
    /// The job's name (required).
    pub name: String,
    /// The experiment its run goes to, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// The job file as JSON (an object).
    pub spec: Value,
    /// The job file's original TOML text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_text: Option<String>,
    /// Whether only a worker with a GPU may run it.
    pub requires_gpu: bool,
}

/// `list_jobs`: newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListJobs {
    /// Only jobs in these states (all when `None` or empty).
    pub status: Option<Vec<JobStatus>>,
    /// Page size (default 100, at most [`MAX_JOBS_PER_PAGE`]).
    pub max_results: Option<i64>,
    /// The previous page's token.
    pub page_token: Option<String>,
}

/// `lease_job`: a worker asking for work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// Who asks (recorded as the job's `lease_owner`).
    pub worker_id: String,
    /// How long the lease lasts without a heartbeat, in ms (1 to [`MAX_LEASE_MS`]).
    pub lease_ms: i64,
    /// Whether the worker has a GPU (only such workers get `requires_gpu` jobs, unless
    /// `gpu_grace_ms` says otherwise).
    pub gpu: bool,
    /// For a worker without a GPU: also take a `requires_gpu` job that has waited in the queue
    /// longer than this many ms, so that a pool with no GPU worker fails the job with a clear
    /// error instead of leaving it queued forever. `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_grace_ms: Option<i64>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Whether the job should stop: the worker then finishes it as `CANCELLED`.
    pub cancel_requested: bool,
}

/// What a worker reports when a job ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishJob {
    /// `SUCCEEDED`, `FAILED` or `CANCELLED`.
    pub status: JobStatus,
    /// Why it failed (the message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where it failed (a traceback-like context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_context: Option<String>,
    /// What it produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The last checkpoint (kept as it was when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_uri: Option<String>,
}

impl FinishJob {
    /// A finish with this status and nothing else.
    pub fn new(status: JobStatus) -> Self {
        FinishJob {
            status,
            error: None,
            error_context: None,
            result: None,
            checkpoint_uri: None,
        }
    }
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLogLine {
    /// Its number within the job's log: 1, 2, 3, ... in the order appended.
    pub seq: i64,
    /// When it was appended, ms since the epoch.
    pub timestamp: i64,
    /// The text.
    pub line: String,
}

/// What a [`JobSpecValidator`] makes of a job spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSpecSummary {
    /// The job's name, normalized; the submitted name is used when empty.
    pub name: String,
    /// Whether the job needs a GPU.
    pub requires_gpu: bool,
    /// The experiment the spec names, used when the submission names none.
    pub experiment: Option<String>,
}

/// Checks a job spec at submission: `Ok` with what the spec says, or `Err` with a message that
/// names the bad field (answered as `400 INVALID_PARAMETER_VALUE`). Installed by the binary in
/// [`crate::service::RegistryConfig::job_spec_validator`]; without one, specs are taken as they
/// come.
pub type JobSpecValidator =
    Arc<dyn Fn(&Value) -> std::result::Result<JobSpecSummary, String> + Send + Sync>;
