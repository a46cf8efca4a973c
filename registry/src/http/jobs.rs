//! Cerulean's training-job routes under `/api/2.0/cerulean/jobs/` (see [`super`]).

use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;

use super::extract::{
    ApiResult, Input, JsonObject, St, empty, lenient, missing, object1, required,
};
use crate::entities::json;
use crate::error::RegistryError;
use crate::jobs::{DEFAULT_LEASE_MS, FinishJob, JobStatus, LeaseRequest, ListJobs, SubmitJob};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Submit {
    name: Option<String>,
    experiment: Option<String>,
    spec: Option<Value>,
    spec_text: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    requires_gpu: Option<bool>,
}

pub(super) async fn submit(State(r): St, input: Input) -> ApiResult {
    let req: Submit = input.parse()?;
    let Some(spec) = req.spec else {
        return Err(missing("spec"));
    };
    let job = r
        .submit_job(SubmitJob {
            name: req.name.unwrap_or_default(),
            experiment: req.experiment.filter(|e| !e.is_empty()),
            spec,
            spec_text: req.spec_text,
            requires_gpu: req.requires_gpu.unwrap_or(false),
        })
        .await?;
    Ok(object1("job", &job))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JobId {
    job_id: Option<String>,
}

pub(super) async fn get(State(r): St, input: Input) -> ApiResult {
    let req: JobId = input.parse()?;
    let job = r.store().get_job(required(&req.job_id, "job_id")?).await?;
    Ok(object1("job", &job))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct List {
    /// One or more statuses: repeated (`status=A&status=B`), a list, or comma-separated.
    #[serde(deserialize_with = "string_or_list")]
    status: Vec<String>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

/// A list of strings from a list, or from one string.
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

pub(super) async fn list(State(r): St, input: Input) -> ApiResult {
    let req: List = input.parse()?;
    let status = req
        .status
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(JobStatus::parse)
        .collect::<Result<Vec<_>, RegistryError>>()?;
    let page = r
        .store()
        .list_jobs(ListJobs {
            status: Some(status),
            max_results: req.max_results,
            page_token: req.page_token.filter(|t| !t.is_empty()),
        })
        .await?;
    Ok(JsonObject::with_capacity(4096)
        .field("jobs", &page.items)
        .opt("next_page_token", page.next_page_token.as_ref())
        .finish())
}

pub(super) async fn cancel(State(r): St, input: Input) -> ApiResult {
    let req: JobId = input.parse()?;
    let job = r.cancel_job(required(&req.job_id, "job_id")?).await?;
    Ok(object1("job", &job))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Lease {
    worker_id: Option<String>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    lease_ms: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    gpu: Option<bool>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    gpu_grace_ms: Option<i64>,
}

pub(super) async fn lease(State(r): St, input: Input) -> ApiResult {
    let req: Lease = input.parse()?;
    let leased = r
        .lease_job(LeaseRequest {
            worker_id: required(&req.worker_id, "worker_id")?.to_owned(),
            lease_ms: req.lease_ms.unwrap_or(DEFAULT_LEASE_MS),
            gpu: req.gpu.unwrap_or(false),
            gpu_grace_ms: req.gpu_grace_ms,
        })
        .await?;
    Ok(match leased {
        Some((job, token)) => JsonObject::with_capacity(4096)
            .field("job", &job)
            .field("lease_token", &token)
            .finish(),
        None => empty(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Heartbeat {
    job_id: Option<String>,
    lease_token: Option<String>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    lease_ms: Option<i64>,
    progress: Option<Value>,
    checkpoint_uri: Option<String>,
}

pub(super) async fn heartbeat(State(r): St, input: Input) -> ApiResult {
    let req: Heartbeat = input.parse()?;
    let reply = r
        .store()
        .heartbeat_job(
            required(&req.job_id, "job_id")?,
            required(&req.lease_token, "lease_token")?,
            req.lease_ms.unwrap_or(DEFAULT_LEASE_MS),
            req.progress.filter(|p| !p.is_null()),
            req.checkpoint_uri,
        )
        .await?;
    Ok(object1("cancel_requested", &reply.cancel_requested))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SetRun {
    job_id: Option<String>,
    lease_token: Option<String>,
    run_id: Option<String>,
}

pub(super) async fn set_run(State(r): St, input: Input) -> ApiResult {
    let req: SetRun = input.parse()?;
    let job = r
        .store()
        .set_job_run(
            required(&req.job_id, "job_id")?,
            required(&req.lease_token, "lease_token")?,
            required(&req.run_id, "run_id")?,
        )
        .await?;
    Ok(object1("job", &job))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Finish {
    job_id: Option<String>,
    lease_token: Option<String>,
    status: Option<String>,
    error: Option<String>,
    error_context: Option<String>,
    result: Option<Value>,
    checkpoint_uri: Option<String>,
}

pub(super) async fn finish(State(r): St, input: Input) -> ApiResult {
    let req: Finish = input.parse()?;
    let status = JobStatus::parse(required(&req.status, "status")?)?;
    let job = r
        .finish_job(
            required(&req.job_id, "job_id")?,
            required(&req.lease_token, "lease_token")?,
            FinishJob {
                status,
                error: req.error,
                error_context: req.error_context,
                result: req.result.filter(|v| !v.is_null()),
                checkpoint_uri: req.checkpoint_uri,
            },
        )
        .await?;
    Ok(object1("job", &job))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AppendLogs {
    job_id: Option<String>,
    lease_token: Option<String>,
    #[serde(deserialize_with = "string_or_list")]
    lines: Vec<String>,
}

pub(super) async fn append_logs(State(r): St, input: Input) -> ApiResult {
    let req: AppendLogs = input.parse()?;
    let last = r
        .store()
        .append_job_logs(
            required(&req.job_id, "job_id")?,
            required(&req.lease_token, "lease_token")?,
            req.lines,
        )
        .await?;
    Ok(object1("last_seq", &last))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Logs {
    job_id: Option<String>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    after_seq: Option<i64>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    max_results: Option<i64>,
}

pub(super) async fn logs(State(r): St, input: Input) -> ApiResult {
    let req: Logs = input.parse()?;
    let lines = r
        .store()
        .job_logs(
            required(&req.job_id, "job_id")?,
            req.after_seq.unwrap_or(0),
            req.max_results.unwrap_or(0),
        )
        .await?;
    Ok(JsonObject::with_capacity(4096)
        .field("lines", &lines)
        .finish())
}
