//! Cerulean's training-job service over gRPC (`cerulean.jobs.v1.JobService`): the same
//! operations as the REST routes under `/api/2.0/cerulean/jobs` (submit, get, list, cancel, and
//! streams of a job's log lines and of its run's metrics), on the same [`Registry`].
//!
//! Keys are checked as on the REST routes: the `authorization` metadata carries the key
//! (`Bearer KEY`); reading needs the reader role, submitting and cancelling the writer role.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cerulean_proto::jobs::job_service_server::{JobService, JobServiceServer};
use cerulean_proto::jobs::{
    CancelJobRequest, GetJobRequest, Job as JobMessage, JobReply, ListJobsReply, ListJobsRequest,
    LogLine, MetricPoint, StreamLogsRequest, StreamMetricsRequest, SubmitJobRequest,
    submit_job_request,
};
use futures::Stream;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::auth::{AuthFailure, Role};
use crate::error::RegistryError;
use crate::jobs::{Job, JobStatus, ListJobs, SubmitJob};
use crate::service::Registry;

/// How often a followed stream looks for new lines or metric values.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(300);
/// Lines read per store call while streaming logs.
const LOG_PAGE: i64 = 1000;

/// The job service over a registry.
#[derive(Clone)]
pub struct JobGrpc {
    registry: Arc<Registry>,
}

impl JobGrpc {
    /// The service, ready to add to a tonic server.
    pub fn server(registry: Arc<Registry>) -> JobServiceServer<JobGrpc> {
        JobServiceServer::new(JobGrpc { registry })
    }

    /// Refuses the call unless its key has at least `role` (nothing to check with keys off).
    fn authorize<T>(&self, request: &Request<T>, role: Role) -> Result<(), Status> {
        let headers = request.metadata().clone().into_headers();
        match self.registry.auth().authenticate(&headers) {
            Ok(Some(principal)) if principal.role >= role => Ok(()),
            Ok(Some(principal)) => Err(Status::permission_denied(format!(
                "the key '{}' has the {:?} role; this call needs {role:?}",
                principal.name, principal.role
            ))),
            Ok(None) => Err(Status::unauthenticated(
                "an API key is required (authorization: Bearer KEY)",
            )),
            Err(AuthFailure::Unauthenticated(message)) => Err(Status::unauthenticated(message)),
            Err(AuthFailure::Forbidden(needed)) => Err(Status::permission_denied(format!(
                "this call needs the {needed:?} role"
            ))),
        }
    }
}

/// A server stream of `T`.
type ServerStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl JobService for JobGrpc {
    async fn submit_job(
        &self,
        request: Request<SubmitJobRequest>,
    ) -> Result<Response<JobReply>, Status> {
        self.authorize(&request, Role::Writer)?;
        let (spec, spec_text) = match request.into_inner().spec {
            Some(submit_job_request::Spec::SpecToml(text)) => {
                let table: toml::Table = toml::from_str(&text)
                    .map_err(|e| Status::invalid_argument(format!("spec_toml: {e}")))?;
                let spec = serde_json::to_value(table)
                    .map_err(|e| Status::invalid_argument(format!("spec_toml: {e}")))?;
                (spec, Some(text))
            }
            Some(submit_job_request::Spec::SpecJson(text)) => {
                let spec: Value = serde_json::from_str(&text)
                    .map_err(|e| Status::invalid_argument(format!("spec_json: {e}")))?;
                (spec, None)
            }
            None => {
                return Err(Status::invalid_argument(
                    "spec: give spec_toml or spec_json",
                ));
            }
        };
        let name = spec
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let experiment = spec
            .get("experiment")
            .and_then(Value::as_str)
            .map(str::to_string);
        let job = self
            .registry
            .submit_job(SubmitJob {
                name,
                experiment,
                spec,
                spec_text,
                requires_gpu: false,
            })
            .await
            .map_err(status)?;
        Ok(Response::new(reply(&job)))
    }

    async fn get_job(&self, request: Request<GetJobRequest>) -> Result<Response<JobReply>, Status> {
        self.authorize(&request, Role::Reader)?;
        let job = self
            .registry
            .store()
            .get_job(&request.into_inner().job_id)
            .await
            .map_err(status)?;
        Ok(Response::new(reply(&job)))
    }

    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsReply>, Status> {
        self.authorize(&request, Role::Reader)?;
        let request = request.into_inner();
        let statuses = request
            .status
            .iter()
            .map(|s| JobStatus::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(status)?;
        let page = self
            .registry
            .store()
            .list_jobs(ListJobs {
                status: (!statuses.is_empty()).then_some(statuses),
                max_results: (request.max_results > 0).then_some(request.max_results),
                page_token: (!request.page_token.is_empty()).then_some(request.page_token),
            })
            .await
            .map_err(status)?;
        Ok(Response::new(ListJobsReply {
            jobs: page.items.iter().map(job_message).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn cancel_job(
        &self,
        request: Request<CancelJobRequest>,
    ) -> Result<Response<JobReply>, Status> {
        self.authorize(&request, Role::Writer)?;
        let job = self
            .registry
            .cancel_job(&request.into_inner().job_id)
            .await
            .map_err(status)?;
        Ok(Response::new(reply(&job)))
    }

    async fn stream_logs(
        &self,
        request: Request<StreamLogsRequest>,
    ) -> Result<Response<ServerStream<LogLine>>, Status> {
        self.authorize(&request, Role::Reader)?;
        let request = request.into_inner();
        let store = self.registry.store().clone();
        // Unknown jobs fail the call itself rather than the stream.
        store.get_job(&request.job_id).await.map_err(status)?;
        let (sender, receiver) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut after = request.after_seq;
            loop {
                // The state is read before the lines: every line of an ended job is there.
                let ended = match store.get_job(&request.job_id).await {
                    Ok(job) => job.status.is_terminal(),
                    Err(err) => {
                        let _ = sender.send(Err(status(err))).await;
                        return;
                    }
                };
                loop {
                    let lines = match store.job_logs(&request.job_id, after, LOG_PAGE).await {
                        Ok(lines) => lines,
                        Err(err) => {
                            let _ = sender.send(Err(status(err))).await;
                            return;
                        }
                    };
                    let full = lines.len() as i64 == LOG_PAGE;
                    for line in lines {
                        after = after.max(line.seq);
                        let message = LogLine {
                            seq: line.seq,
                            timestamp: line.timestamp,
                            line: line.line,
                        };
                        if sender.send(Ok(message)).await.is_err() {
                            return; // the client went away
                        }
                    }
                    if !full {
                        break;
                    }
                }
                if !request.follow || ended {
                    return;
                }
                tokio::time::sleep(FOLLOW_INTERVAL).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn stream_metrics(
        &self,
        request: Request<StreamMetricsRequest>,
    ) -> Result<Response<ServerStream<MetricPoint>>, Status> {
        self.authorize(&request, Role::Reader)?;
        let request = request.into_inner();
        let store = self.registry.store().clone();
        store.get_job(&request.job_id).await.map_err(status)?;
        let (sender, receiver) = mpsc::channel(256);
        tokio::spawn(async move {
            // How many values of each key were sent already.
            let mut sent: HashMap<String, usize> = HashMap::new();
            loop {
                let job = match store.get_job(&request.job_id).await {
                    Ok(job) => job,
                    Err(err) => {
                        let _ = sender.send(Err(status(err))).await;
                        return;
                    }
                };
                if let Some(run_id) = &job.run_id {
                    match new_metric_values(store.as_ref(), run_id, &mut sent).await {
                        Ok(points) => {
                            for point in points {
                                if sender.send(Ok(point)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(err) => {
                            let _ = sender.send(Err(status(err))).await;
                            return;
                        }
                    }
                }
                if !request.follow || job.status.is_terminal() {
                    return;
                }
                tokio::time::sleep(FOLLOW_INTERVAL).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

/// The run's metric values not sent yet, oldest first per key; updates `sent`.
async fn new_metric_values(
    store: &dyn crate::store::MetadataStore,
    run_id: &str,
    sent: &mut HashMap<String, usize>,
) -> Result<Vec<MetricPoint>, RegistryError> {
    let run = store.get_run(run_id).await?;
    let mut points = Vec::new();
    for latest in &run.data.metrics {
        let mut history = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = store
                .get_metric_history(run_id, &latest.key, None, token.as_deref())
                .await?;
            history.extend(page.items);
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        let already = sent.entry(latest.key.clone()).or_default();
        for metric in history.iter().skip(*already) {
            points.push(MetricPoint {
                key: metric.key.clone(),
                value: metric.value,
                step: metric.step,
                timestamp: metric.timestamp,
            });
        }
        *already = history.len().max(*already);
    }
    Ok(points)
}

fn reply(job: &Job) -> JobReply {
    JobReply {
        job: Some(job_message(job)),
    }
}

/// A job as its protobuf message.
pub fn job_message(job: &Job) -> JobMessage {
    let json = |v: &Option<Value>| v.as_ref().map(Value::to_string).unwrap_or_default();
    JobMessage {
        job_id: job.job_id.clone(),
        name: job.name.clone(),
        experiment: job.experiment.clone().unwrap_or_default(),
        status: job.status.as_str().to_string(),
        spec_json: job.spec.to_string(),
        run_id: job.run_id.clone().unwrap_or_default(),
        attempts: job.attempts,
        lease_owner: job.lease_owner.clone().unwrap_or_default(),
        cancel_requested: job.cancel_requested,
        created_at: job.created_at,
        started_at: job.started_at.unwrap_or_default(),
        ended_at: job.ended_at.unwrap_or_default(),
        error: job.error.clone().unwrap_or_default(),
        error_context: job.error_context.clone().unwrap_or_default(),
        checkpoint_uri: job.checkpoint_uri.clone().unwrap_or_default(),
        result_json: json(&job.result),
        progress_json: json(&job.progress),
    }
}

/// The gRPC status for a registry error.
fn status(err: RegistryError) -> Status {
    let message = err.to_string();
    match err {
        RegistryError::InvalidParameter(_) | RegistryError::BadRequest(_) => {
            Status::invalid_argument(message)
        }
        RegistryError::NotFound(_) | RegistryError::EndpointNotFound(_) => {
            Status::not_found(message)
        }
        RegistryError::AlreadyExists(_) => Status::already_exists(message),
        RegistryError::PermissionDenied(_) => Status::permission_denied(message),
        RegistryError::Unauthenticated(_) => Status::unauthenticated(message),
        RegistryError::Conflict(_) | RegistryError::LeaseLost(_) => Status::aborted(message),
        RegistryError::InvalidState(_) => Status::failed_precondition(message),
        RegistryError::Unavailable(_) => Status::unavailable(message),
        RegistryError::Internal(_) | RegistryError::Database(_) => Status::internal(message),
    }
}
