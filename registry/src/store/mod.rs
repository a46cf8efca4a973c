//! The metadata store: one trait, [`MetadataStore`], over experiments, runs, metrics, params,
//! tags, registered models, versions, aliases and MLflow 3 logged models, and its SQL
//! implementation ([`SqlStore`]) on SQLite (the default, one file) or PostgreSQL.
//!
//! The request types here deserialize from MLflow's request JSON (proto field names), so the REST
//! handlers can pass a parsed body straight to the store; the store validates (MLflow's rules, in
//! [`crate::validation`]), and answers entities whose JSON is MLflow's response JSON.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};

use crate::datasets::{DatasetRecord, RegisterDataset};
use crate::entities::{
    AliasEvent, DatasetInput, Experiment, ExperimentTag, LoggedModel, LoggedModelParameter,
    LoggedModelStatus, LoggedModelTag, Metric, ModelInput, ModelOutput, ModelVersion,
    ModelVersionTag, Param, RegisteredModel, RegisteredModelTag, Run, RunInfo, RunStatus, RunTag,
    json,
};
use crate::error::Result;
use crate::jobs::{FinishJob, HeartbeatReply, Job, JobLogLine, LeaseRequest, ListJobs, SubmitJob};

pub mod search;
mod sql;

pub use sql::{Backend, SqlStore, StoreOptions};

/// Which entities a search returns by lifecycle stage (`ViewType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ViewType {
    /// Only active ones (the default).
    #[default]
    ActiveOnly,
    /// Only soft-deleted ones.
    DeletedOnly,
    /// Both.
    All,
}

impl ViewType {
    /// Parses `ACTIVE_ONLY` / `DELETED_ONLY` / `ALL` (any case) or the proto numbers 1..3.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "ACTIVE_ONLY" | "1" => Some(ViewType::ActiveOnly),
            "DELETED_ONLY" | "2" => Some(ViewType::DeletedOnly),
            "ALL" | "3" => Some(ViewType::All),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for ViewType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = json::deserialize_string_or_number(d)?;
        ViewType::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("bad view type {s:?}")))
    }
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The results.
    pub items: Vec<T>,
    /// The token for the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// `experiments/create`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CreateExperiment {
    /// The unique name.
    pub name: String,
    /// Where its artifacts go; the server's default root plus the id when absent.
    pub artifact_location: Option<String>,
    /// Initial tags.
    pub tags: Vec<ExperimentTag>,
}

/// `experiments/search`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SearchExperiments {
    /// Page size (default 1000, at most 50000).
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    pub max_results: Option<i64>,
    /// The previous page's token.
    pub page_token: Option<String>,
    /// e.g. `name LIKE 'test-%' AND tags.team = 'nlp'`.
    pub filter: Option<String>,
    /// e.g. `["name ASC", "creation_time DESC"]`.
    pub order_by: Vec<String>,
    /// Active (default), deleted or all.
    pub view_type: Option<ViewType>,
}

/// `runs/create`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CreateRun {
    /// The experiment; the default experiment `"0"` when absent.
    pub experiment_id: Option<String>,
    /// Deprecated user id.
    pub user_id: Option<String>,
    /// The run's name; from the `mlflow.runName` tag, or generated, when absent.
    pub run_name: Option<String>,
    /// Start, ms since the epoch; now when absent.
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    pub start_time: Option<i64>,
    /// Initial tags.
    pub tags: Vec<RunTag>,
}

/// `runs/update`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct UpdateRun {
    /// The run (`run_uuid` is accepted too).
    #[serde(alias = "run_uuid")]
    pub run_id: String,
    /// The new status.
    pub status: Option<RunStatus>,
    /// End, ms since the epoch.
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    pub end_time: Option<i64>,
    /// A new name (also written to the `mlflow.runName` tag).
    pub run_name: Option<String>,
}

/// `runs/search`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SearchRuns {
    /// The experiments to search.
    pub experiment_ids: Vec<String>,
    /// e.g. `metrics.rmse < 1 and params.model = 'lr'`.
    pub filter: Option<String>,
    /// Active (default), deleted or all.
    pub run_view_type: Option<ViewType>,
    /// Page size (default 1000, at most 50000).
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    pub max_results: Option<i64>,
    /// e.g. `["metrics.rmse DESC", "attributes.start_time"]`.
    pub order_by: Vec<String>,
    /// The previous page's token.
    pub page_token: Option<String>,
}

/// `registered-models/search` and `model-versions/search`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SearchQuery {
    /// e.g. `name LIKE 'fraud-%'` or `run_id IN ('a', 'b')`.
    pub filter: Option<String>,
    /// Page size.
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    pub max_results: Option<i64>,
    /// e.g. `["name ASC"]`, `["version_number DESC"]`.
    pub order_by: Vec<String>,
    /// The previous page's token.
    pub page_token: Option<String>,
}

/// `registered-models/create`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CreateRegisteredModel {
    /// The unique name.
    pub name: String,
    /// Initial tags.
    pub tags: Vec<RegisteredModelTag>,
    /// Free text.
    pub description: Option<String>,
    /// Who creates it (set by the server from the caller's identity, not from the body).
    #[serde(skip)]
    pub user_id: Option<String>,
}

/// `model-versions/create`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CreateModelVersion {
    /// The registered model.
    pub name: String,
    /// Where the model's files are.
    pub source: String,
    /// The run that produced it.
    pub run_id: Option<String>,
    /// Initial tags.
    pub tags: Vec<ModelVersionTag>,
    /// A link to the run.
    pub run_link: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// The MLflow 3 logged model it comes from.
    pub model_id: Option<String>,
    /// Who creates it (set by the server from the caller's identity, not from the body).
    #[serde(skip)]
    pub user_id: Option<String>,
}

/// `registered-models/alias` (POST), with Cerulean's history fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SetAlias {
    /// The registered model.
    pub name: String,
    /// The alias.
    pub alias: String,
    /// The version it should point at.
    #[serde(deserialize_with = "json::deserialize_string_or_number")]
    pub version: String,
    /// Who moves it (set by the server from the caller's identity).
    pub actor: Option<String>,
    /// Why (free text; Cerulean extension).
    pub reason: Option<String>,
}

/// `logged-models` (POST).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CreateLoggedModel {
    /// The experiment.
    pub experiment_id: String,
    /// The model's name; generated when absent.
    pub name: Option<String>,
    /// The flavor or kind.
    pub model_type: Option<String>,
    /// The run logging it.
    pub source_run_id: Option<String>,
    /// Initial parameters.
    pub params: Vec<LoggedModelParameter>,
    /// Initial tags.
    pub tags: Vec<LoggedModelTag>,
}

/// One `order_by` entry of `logged-models/search`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct LoggedModelOrderBy {
    /// An attribute (`creation_timestamp`, `name`, ...) or `metrics.<key>`.
    pub field_name: String,
    /// Ascending (the default) or not.
    pub ascending: Option<bool>,
    /// Restrict a metric ordering to this dataset.
    pub dataset_name: Option<String>,
    /// Restrict a metric ordering to this dataset digest.
    pub dataset_digest: Option<String>,
}

/// `logged-models/search`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SearchLoggedModels {
    /// The experiments to search.
    pub experiment_ids: Vec<String>,
    /// e.g. `name = 'model' AND status = 'READY'`.
    pub filter: Option<String>,
    /// Page size (default 100).
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    pub max_results: Option<i64>,
    /// Orderings.
    pub order_by: Vec<LoggedModelOrderBy>,
    /// The previous page's token.
    pub page_token: Option<String>,
}

/// What `transition_model_version_stage` did, for the caller's events.
#[derive(Debug, Clone, PartialEq)]
pub struct StageTransition {
    /// The version, after the move.
    pub model_version: ModelVersion,
    /// Its stage before.
    pub previous_stage: String,
    /// Other versions moved to `Archived` by `archive_existing_versions`, with their old stage.
    pub archived: Vec<(String, String)>,
}

/// The registry's metadata, whatever the database.
///
/// Every method validates its input with MLflow's rules and answers MLflow's errors
/// ([`crate::error::RegistryError`]); ids and versions are the strings of the REST API. Writes
/// are durable once the method returns.
#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// The database behind the store.
    fn backend(&self) -> Backend;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;

    // ---- experiments ----

    /// Creates an experiment and returns its id. A taken name is `RESOURCE_ALREADY_EXISTS`.
    async fn create_experiment(&self, req: CreateExperiment) -> Result<String>;
    /// An experiment by id (deleted ones too).
    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment>;
    /// An experiment by name (deleted ones too); `RESOURCE_DOES_NOT_EXIST` when there is none.
    async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment>;
    /// Experiments matching a filter (`name`, `tags.<k>`, `creation_time`, `last_update_time`),
    /// ordered and paged.
    async fn search_experiments(&self, req: SearchExperiments) -> Result<Page<Experiment>>;
    /// Renames an active experiment.
    async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()>;
    /// Soft-deletes an experiment and its runs.
    async fn delete_experiment(&self, experiment_id: &str) -> Result<()>;
    /// Restores a soft-deleted experiment and its runs.
    async fn restore_experiment(&self, experiment_id: &str) -> Result<()>;
    /// Sets (overwrites) an experiment tag.
    async fn set_experiment_tag(&self, experiment_id: &str, key: &str, value: &str) -> Result<()>;
    /// Deletes an experiment tag.
    async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()>;

    // ---- runs ----

    /// Creates a run (status RUNNING) in an active experiment.
    async fn create_run(&self, req: CreateRun) -> Result<Run>;
    /// A run with its latest metrics, params, tags, inputs and outputs.
    async fn get_run(&self, run_id: &str) -> Result<Run>;
    /// Updates status, end time and/or name.
    async fn update_run(&self, req: UpdateRun) -> Result<RunInfo>;
    /// Soft-deletes a run.
    async fn delete_run(&self, run_id: &str) -> Result<()>;
    /// Restores a soft-deleted run.
    async fn restore_run(&self, run_id: &str) -> Result<()>;
    /// Runs of some experiments matching MLflow's filter grammar, ordered and paged.
    async fn search_runs(&self, req: SearchRuns) -> Result<Page<Run>>;
    /// Appends a metric value (an exact duplicate is ignored); keeps the latest per key.
    async fn log_metric(&self, run_id: &str, metric: Metric) -> Result<()>;
    /// Logs a parameter: the same value again is a no-op, another value is
    /// `INVALID_PARAMETER_VALUE`.
    async fn log_param(&self, run_id: &str, param: Param) -> Result<()>;
    /// Sets (overwrites) a run tag; `mlflow.runName` also renames the run.
    async fn set_tag(&self, run_id: &str, tag: RunTag) -> Result<()>;
    /// Deletes a run tag; `RESOURCE_DOES_NOT_EXIST` when it is not there.
    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()>;
    /// Metrics, params and tags at once, atomically, within MLflow's batch limits.
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<RunTag>,
    ) -> Result<()>;
    /// Records datasets (and logged models) the run used.
    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()>;
    /// Records logged models the run produced.
    async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()>;
    /// Every value of one metric of a run, by timestamp then step, optionally paged.
    async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>>;

    // ---- registered models ----

    /// Creates a registered model; a taken name is `RESOURCE_ALREADY_EXISTS`.
    async fn create_registered_model(&self, req: CreateRegisteredModel) -> Result<RegisteredModel>;
    /// A registered model with its latest versions per stage, tags and aliases.
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel>;
    /// Renames a registered model; its versions, tags and aliases follow.
    async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel>;
    /// Sets the description.
    async fn update_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<RegisteredModel>;
    /// Deletes a registered model with its versions, tags and aliases; returns the alias
    /// deletions it recorded.
    async fn delete_registered_model(&self, name: &str, actor: &str) -> Result<Vec<AliasEvent>>;
    /// Registered models matching `name = / != / LIKE / ILIKE` and `tags.<k>` filters.
    async fn search_registered_models(&self, req: SearchQuery) -> Result<Page<RegisteredModel>>;
    /// Sets (overwrites) a registered model tag.
    async fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()>;
    /// Deletes a registered model tag.
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()>;
    /// The latest version in each of the given stages (all stages when empty).
    async fn get_latest_versions(&self, name: &str, stages: &[String])
    -> Result<Vec<ModelVersion>>;

    // ---- model versions ----

    /// Creates the next version (1, 2, 3, ...; numbers are never reused, even after deletes).
    async fn create_model_version(&self, req: CreateModelVersion) -> Result<ModelVersion>;
    /// A model version with its tags and aliases.
    async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion>;
    /// Sets the description.
    async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: Option<&str>,
    ) -> Result<ModelVersion>;
    /// Deletes a version, its tags and the aliases that pointed at it; returns the alias
    /// deletions it recorded.
    async fn delete_model_version(
        &self,
        name: &str,
        version: &str,
        actor: &str,
    ) -> Result<Vec<AliasEvent>>;
    /// Versions matching `name`, `run_id` (`=`, `IN`), `source_path`, `version_number`,
    /// `tags.<k>` filters.
    async fn search_model_versions(&self, req: SearchQuery) -> Result<Page<ModelVersion>>;
    /// Where the version's files are (its `source`).
    async fn get_model_version_download_uri(&self, name: &str, version: &str) -> Result<String>;
    /// Sets (overwrites) a model version tag.
    async fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
        value: &str,
    ) -> Result<()>;
    /// Deletes a model version tag.
    async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()>;
    /// Moves a version to a stage, optionally archiving the others in that stage.
    async fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing_versions: bool,
    ) -> Result<StageTransition>;

    // ---- aliases ----

    /// Points an alias at a version, recording the move (who, why, from, to) and returning it.
    async fn set_registered_model_alias(&self, req: SetAlias) -> Result<AliasEvent>;
    /// Deletes an alias, recording and returning the move; a missing alias is
    /// `INVALID_PARAMETER_VALUE` as in MLflow.
    async fn delete_registered_model_alias(
        &self,
        name: &str,
        alias: &str,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<AliasEvent>;
    /// The version an alias points at.
    async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion>;
    /// The recorded moves of a model's aliases (of one alias when given), newest first.
    async fn list_alias_history(
        &self,
        name: &str,
        alias: Option<&str>,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<AliasEvent>>;
    /// Alias moves recorded after the event `after_id`, oldest first (for watchers resuming
    /// after a disconnect).
    async fn alias_events_since(&self, after_id: i64, limit: i64) -> Result<Vec<AliasEvent>>;

    // ---- MLflow 3 logged models ----

    /// Creates a logged model (status PENDING) in an active experiment.
    async fn create_logged_model(&self, req: CreateLoggedModel) -> Result<LoggedModel>;
    /// A logged model with its tags, params and metrics (not deleted ones).
    async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel>;
    /// Sets the status (READY or UPLOAD_FAILED when finalizing).
    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel>;
    /// Soft-deletes a logged model.
    async fn delete_logged_model(&self, model_id: &str) -> Result<()>;
    /// Logged models of some experiments matching simple filters on attributes, params and tags.
    async fn search_logged_models(&self, req: SearchLoggedModels) -> Result<Page<LoggedModel>>;
    /// Sets (overwrites) tags and returns the model.
    async fn set_logged_model_tags(
        &self,
        model_id: &str,
        tags: Vec<LoggedModelTag>,
    ) -> Result<LoggedModel>;
    /// Deletes a tag; `RESOURCE_DOES_NOT_EXIST` when it is not there.
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()>;
    /// Adds parameters (the same key again overwrites, as MLflow does).
    async fn log_logged_model_params(
        &self,
        model_id: &str,
        params: Vec<LoggedModelParameter>,
    ) -> Result<()>;

    // ---- training jobs (Cerulean) ----

    /// Queues a job (status `QUEUED`). The spec must be a JSON object; sizes are limited (see
    /// [`crate::jobs`]).
    async fn submit_job(&self, req: SubmitJob) -> Result<Job>;
    /// A job by id; `RESOURCE_DOES_NOT_EXIST` when there is none.
    async fn get_job(&self, job_id: &str) -> Result<Job>;
    /// Jobs, newest first, optionally only those in some states, paged.
    async fn list_jobs(&self, req: ListJobs) -> Result<Page<Job>>;
    /// Atomically gives the worker the oldest job it can run — a `QUEUED` one, or a `RUNNING` one
    /// whose lease expired (its worker is gone); a `requires_gpu` job only to a worker with a
    /// GPU; none with a cancel pending — and answers it (`RUNNING`, leased to the worker until
    /// now + `lease_ms`, `attempts` + 1, `run_id` kept) with a fresh lease token; `None` when
    /// there is no work. Running jobs whose lease expired with a cancel pending end as
    /// `CANCELLED` instead. Safe with any number of concurrent workers.
    async fn lease_job(&self, req: LeaseRequest) -> Result<Option<(Job, String)>>;
    /// Ends as `CANCELLED` the running jobs whose lease expired while a cancel was pending, and
    /// returns them ([`Self::lease_job`] does this too, without telling which).
    async fn reap_cancelled_jobs(&self) -> Result<Vec<Job>>;
    /// Extends the lease to now + `lease_ms` and records the progress and checkpoint given;
    /// answers whether a cancel is pending. `LEASE_LOST` (409) when `lease_token` is not the
    /// job's current one or the job is no longer `RUNNING`.
    async fn heartbeat_job(
        &self,
        job_id: &str,
        lease_token: &str,
        lease_ms: i64,
        progress: Option<serde_json::Value>,
        checkpoint_uri: Option<String>,
    ) -> Result<HeartbeatReply>;
    /// Records the job's MLflow run, unless one is recorded already (which is kept: a resumed
    /// job continues its run); returns the job. `LEASE_LOST` as for heartbeats.
    async fn set_job_run(&self, job_id: &str, lease_token: &str, run_id: &str) -> Result<Job>;
    /// Ends the job (`SUCCEEDED`, `FAILED` or `CANCELLED`) and clears its lease; returns it.
    /// `LEASE_LOST` as for heartbeats.
    async fn finish_job(&self, job_id: &str, lease_token: &str, req: FinishJob) -> Result<Job>;
    /// Cancels a job: a queued one (or a running one whose lease expired) ends as `CANCELLED` at
    /// once; a running one gets `cancel_requested`, which its worker sees at its next heartbeat;
    /// an ended one is answered unchanged.
    async fn cancel_job(&self, job_id: &str) -> Result<Job>;
    /// Appends lines to the job's log (numbered on from the last one); returns the number of the
    /// last line. `LEASE_LOST` as for heartbeats.
    async fn append_job_logs(
        &self,
        job_id: &str,
        lease_token: &str,
        lines: Vec<String>,
    ) -> Result<i64>;
    /// The job's log lines numbered after `after_seq`, in order, at most `max` (1000 when
    /// `max` < 1, at most 10,000).
    async fn job_logs(&self, job_id: &str, after_seq: i64, max: i64) -> Result<Vec<JobLogLine>>;

    // ---- dataset register (Cerulean) ----

    /// Registers a dataset version: the next version of the name, or the latest one unchanged
    /// when its digest equals the one given.
    async fn register_dataset(&self, req: RegisterDataset) -> Result<DatasetRecord>;
    /// A version of a dataset (the latest when `version` is `None`); `RESOURCE_DOES_NOT_EXIST`
    /// when there is none.
    async fn get_dataset(&self, name: &str, version: Option<i64>) -> Result<DatasetRecord>;
    /// The latest version of every dataset, by name; or, with `name`, every version of that
    /// dataset, newest first.
    async fn list_datasets(&self, name: Option<&str>) -> Result<Vec<DatasetRecord>>;
}

/// Opens the store named by a URI — `sqlite:///abs/path.db`, `sqlite://rel.db` (created when
/// missing), `postgresql://user@host/db` or `postgres://...` — and runs its migrations.
pub async fn open(uri: &str, options: StoreOptions) -> Result<Arc<dyn MetadataStore>> {
    Ok(Arc::new(SqlStore::connect(uri, options).await?))
}
