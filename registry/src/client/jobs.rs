//! [`RegistryClient`]'s calls of Cerulean's training-job queue and dataset register
//! (`/api/2.0/cerulean/...`, see [`crate::http`]).

use futures::Stream;
use reqwest::Method;
use serde_json::{Value, json};

use super::{ClientError, ClientResult, RegistryClient, take, take_or_default};
use crate::datasets::{DatasetRecord, RegisterDataset};
use crate::events::RegistryEvent;
use crate::jobs::{FinishJob, HeartbeatReply, Job, JobLogLine, LeaseRequest, ListJobs, SubmitJob};
use crate::store::Page;

const JOBS: &str = "/api/2.0/cerulean/jobs";
const DATASETS: &str = "/api/2.0/cerulean/datasets";

impl RegistryClient {
    // ---- training jobs ----

    /// Queues a job; answers it (`QUEUED`). A spec the server's validator refuses is an
    /// `INVALID_PARAMETER_VALUE` error whose message names the bad field.
    pub async fn submit_job(&self, req: &SubmitJob) -> ClientResult<Job> {
        let value: Value = self
            .call(Method::POST, &format!("{JOBS}/submit"), req)
            .await?;
        take(value, "job")
    }

    /// A job by id ([`ClientError::is_not_found`] when there is none).
    pub async fn get_job(&self, job_id: &str) -> ClientResult<Job> {
        let value: Value = self
            .get(&format!("{JOBS}/get"), &[("job_id", job_id)])
            .await?;
        take(value, "job")
    }

    /// One page of jobs, newest first, optionally only those in some states.
    pub async fn list_jobs(&self, req: &ListJobs) -> ClientResult<Page<Job>> {
        let statuses: Vec<&str> = req
            .status
            .iter()
            .flatten()
            .map(|status| status.as_str())
            .collect();
        let max_results = req.max_results.map(|n| n.to_string());
        let mut query: Vec<(&str, &str)> = statuses.iter().map(|s| ("status", *s)).collect();
        if let Some(max) = &max_results {
            query.push(("max_results", max));
        }
        if let Some(token) = &req.page_token {
            query.push(("page_token", token));
        }
        let value: Value = self.get(&format!("{JOBS}/list"), &query).await?;
        Ok(Page {
            items: take_or_default(&value, "jobs")?,
            next_page_token: take_or_default(&value, "next_page_token")?,
        })
    }

    /// Cancels a job: a queued one at once, a running one at its worker's next heartbeat; an
    /// ended one is answered unchanged.
    pub async fn cancel_job(&self, job_id: &str) -> ClientResult<Job> {
        let value: Value = self
            .call(
                Method::POST,
                &format!("{JOBS}/cancel"),
                &json!({ "job_id": job_id }),
            )
            .await?;
        take(value, "job")
    }

    /// Asks for work: the oldest job this worker can run, leased to it, with the lease token
    /// every later call about the job needs; `None` when there is nothing to do.
    pub async fn lease_job(&self, req: &LeaseRequest) -> ClientResult<Option<(Job, String)>> {
        let value: Value = self
            .call(Method::POST, &format!("{JOBS}/lease"), req)
            .await?;
        if value.get("job").is_none_or(Value::is_null) {
            return Ok(None);
        }
        let token: String = take(value.clone(), "lease_token")?;
        Ok(Some((take(value, "job")?, token)))
    }

    /// Extends the lease by `lease_ms` from now, reporting progress and the last checkpoint;
    /// answers whether the job should stop (a cancel is pending). Fails with
    /// [`ClientError::is_lease_lost`] when the lease is no longer this worker's.
    pub async fn heartbeat_job(
        &self,
        job_id: &str,
        lease_token: &str,
        lease_ms: i64,
        progress: Option<&Value>,
        checkpoint_uri: Option<&str>,
    ) -> ClientResult<HeartbeatReply> {
        self.call(
            Method::POST,
            &format!("{JOBS}/heartbeat"),
            &json!({
                "job_id": job_id,
                "lease_token": lease_token,
                "lease_ms": lease_ms,
                "progress": progress,
                "checkpoint_uri": checkpoint_uri,
            }),
        )
        .await
    }

    /// Records the job's MLflow run unless one is recorded already; answers the job, whose
    /// `run_id` is the run to log to (a resumed job keeps its first run).
    pub async fn set_job_run(
        &self,
        job_id: &str,
        lease_token: &str,
        run_id: &str,
    ) -> ClientResult<Job> {
        let value: Value = self
            .call(
                Method::POST,
                &format!("{JOBS}/set-run"),
                &json!({ "job_id": job_id, "lease_token": lease_token, "run_id": run_id }),
            )
            .await?;
        take(value, "job")
    }

    /// Ends the job (`SUCCEEDED`, `FAILED` or `CANCELLED`) and gives its lease back.
    pub async fn finish_job(
        &self,
        job_id: &str,
        lease_token: &str,
        req: &FinishJob,
    ) -> ClientResult<Job> {
        let mut body = serde_json::to_value(req).map_err(|e| ClientError::Decode {
            url: format!("{}{JOBS}/finish", self.base),
            message: format!("cannot encode the request: {e}"),
        })?;
        if let Some(object) = body.as_object_mut() {
            object.insert("job_id".into(), json!(job_id));
            object.insert("lease_token".into(), json!(lease_token));
        }
        let value: Value = self
            .call(Method::POST, &format!("{JOBS}/finish"), &body)
            .await?;
        take(value, "job")
    }

    /// Appends lines to the job's log (at most
    /// [`MAX_LOG_LINES_PER_APPEND`](crate::jobs::MAX_LOG_LINES_PER_APPEND) per call); answers the
    /// number of the last line.
    pub async fn append_job_logs(
        &self,
        job_id: &str,
        lease_token: &str,
        lines: &[String],
    ) -> ClientResult<i64> {
        let value: Value = self
            .call(
                Method::POST,
                &format!("{JOBS}/logs/append"),
                &json!({ "job_id": job_id, "lease_token": lease_token, "lines": lines }),
            )
            .await?;
        take(value, "last_seq")
    }

    /// The job's log lines numbered after `after_seq` (0: from the start), in order, at most
    /// `max` (the server's default, 1000, when `None`).
    pub async fn job_logs(
        &self,
        job_id: &str,
        after_seq: i64,
        max: Option<i64>,
    ) -> ClientResult<Vec<JobLogLine>> {
        let after = after_seq.to_string();
        let max = max.map(|m| m.to_string());
        let mut query = vec![("job_id", job_id), ("after_seq", after.as_str())];
        if let Some(max) = &max {
            query.push(("max_results", max));
        }
        let value: Value = self.get(&format!("{JOBS}/logs"), &query).await?;
        take_or_default(&value, "lines")
    }

    /// Follows one job's `job_changed` events (submitted, leased, finished, cancelled) as they
    /// happen. Events of this server process only: re-read the job ([`Self::get_job`]) after
    /// connecting, and after a reconnect.
    pub async fn watch_job(
        &self,
        job_id: &str,
    ) -> ClientResult<impl Stream<Item = ClientResult<RegistryEvent>> + use<>> {
        self.watch_query(&[("job_id", job_id)]).await
    }

    // ---- dataset register ----

    /// Registers a dataset version: the next version of the name, or the latest one unchanged
    /// when its digest is the one given.
    pub async fn register_dataset(&self, req: &RegisterDataset) -> ClientResult<DatasetRecord> {
        let value: Value = self
            .call(Method::POST, &format!("{DATASETS}/register"), req)
            .await?;
        take(value, "dataset")
    }

    /// A version of a dataset, the latest when `version` is `None`.
    pub async fn get_dataset(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> ClientResult<DatasetRecord> {
        let version = version.map(|v| v.to_string());
        let mut query = vec![("name", name)];
        if let Some(version) = &version {
            query.push(("version", version));
        }
        let value: Value = self.get(&format!("{DATASETS}/get"), &query).await?;
        take(value, "dataset")
    }

    /// The latest version of every dataset; or, with `name`, every version of it, newest first.
    pub async fn list_datasets(&self, name: Option<&str>) -> ClientResult<Vec<DatasetRecord>> {
        let query: Vec<(&str, &str)> = name.map(|n| ("name", n)).into_iter().collect();
        let value: Value = self.get(&format!("{DATASETS}/list"), &query).await?;
        take_or_default(&value, "datasets")
    }
}
