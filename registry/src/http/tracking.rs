//! Experiments, runs, metrics and run artifact listings.

use axum::extract::State;
use serde::Deserialize;

use super::extract::{
    ApiResult, Input, JsonObject, St, empty, lenient, missing, object1, required,
};
use crate::entities::{
    DatasetInput, Metric, ModelInput, ModelOutput, Param, RunStatus, RunTag, Tag, json,
};
use crate::error::RegistryError;
use crate::store::{CreateExperiment, CreateRun, SearchExperiments, SearchRuns, UpdateRun};
use crate::validation::MAX_BATCH_LOG_REQUEST_SIZE;

// ---- experiments ----------------------------------------------------------------------------

pub(super) async fn create_experiment(State(r): St, input: Input) -> ApiResult {
    let req: CreateExperiment = input.parse()?;
    if req.name.is_empty() {
        return Err(missing("name"));
    }
    let id = r.store().create_experiment(req).await?;
    Ok(object1("experiment_id", &id))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ExperimentId {
    experiment_id: Option<String>,
}

pub(super) async fn get_experiment(State(r): St, input: Input) -> ApiResult {
    let req: ExperimentId = input.parse()?;
    let id = required(&req.experiment_id, "experiment_id")?;
    let experiment = r.store().get_experiment(id).await?;
    Ok(object1("experiment", &experiment))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ExperimentName {
    experiment_name: Option<String>,
}

pub(super) async fn get_experiment_by_name(State(r): St, input: Input) -> ApiResult {
    let req: ExperimentName = input.parse()?;
    let name = required(&req.experiment_name, "experiment_name")?;
    let experiment = r.store().get_experiment_by_name(name).await?;
    Ok(object1("experiment", &experiment))
}

pub(super) async fn search_experiments(State(r): St, input: Input) -> ApiResult {
    let req: SearchExperiments = input.parse()?;
    let page = r.store().search_experiments(req).await?;
    Ok(JsonObject::with_capacity(1024)
        .list("experiments", &page.items)
        .opt("next_page_token", page.next_page_token.as_ref())
        .finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UpdateExperiment {
    experiment_id: Option<String>,
    new_name: Option<String>,
}

pub(super) async fn update_experiment(State(r): St, input: Input) -> ApiResult {
    let req: UpdateExperiment = input.parse()?;
    let id = required(&req.experiment_id, "experiment_id")?;
    match req.new_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => r.store().rename_experiment(id, name).await?,
        // Nothing to change, but the experiment must exist (as MLflow checks).
        None => {
            r.store().get_experiment(id).await?;
        }
    }
    Ok(empty())
}

pub(super) async fn delete_experiment(State(r): St, input: Input) -> ApiResult {
    let req: ExperimentId = input.parse()?;
    r.store()
        .delete_experiment(required(&req.experiment_id, "experiment_id")?)
        .await?;
    Ok(empty())
}

pub(super) async fn restore_experiment(State(r): St, input: Input) -> ApiResult {
    let req: ExperimentId = input.parse()?;
    r.store()
        .restore_experiment(required(&req.experiment_id, "experiment_id")?)
        .await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ExperimentTag {
    experiment_id: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

pub(super) async fn set_experiment_tag(State(r): St, input: Input) -> ApiResult {
    let req: ExperimentTag = input.parse()?;
    let id = required(&req.experiment_id, "experiment_id")?;
    let key = required(&req.key, "key")?;
    r.store()
        .set_experiment_tag(id, key, req.value.as_deref().unwrap_or_default())
        .await?;
    Ok(empty())
}

pub(super) async fn delete_experiment_tag(State(r): St, input: Input) -> ApiResult {
    let req: ExperimentTag = input.parse()?;
    let id = required(&req.experiment_id, "experiment_id")?;
    let key = required(&req.key, "key")?;
    r.store().delete_experiment_tag(id, key).await?;
    Ok(empty())
}

// ---- runs -----------------------------------------------------------------------------------

/// `run_id`, or the deprecated `run_uuid` (MLflow's client sends both).
#[derive(Deserialize, Default)]
#[serde(default)]
struct RunRef {
    run_id: Option<String>,
    run_uuid: Option<String>,
}

impl RunRef {
    fn get(&self) -> Result<&str, super::extract::ApiError> {
        match (self.run_id.as_deref(), self.run_uuid.as_deref()) {
            (Some(id), _) if !id.is_empty() => Ok(id),
            (_, Some(id)) if !id.is_empty() => Ok(id),
            _ => Err(missing("run_id")),
        }
    }
}

pub(super) async fn create_run(State(r): St, input: Input) -> ApiResult {
    let req: CreateRun = input.parse()?;
    let run = r.store().create_run(req).await?;
    Ok(object1("run", &run))
}

pub(super) async fn get_run(State(r): St, input: Input) -> ApiResult {
    let req: RunRef = input.parse()?;
    let run = r.store().get_run(req.get()?).await?;
    Ok(object1("run", &run))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UpdateRunRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    status: Option<String>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    end_time: Option<i64>,
    run_name: Option<String>,
}

pub(super) async fn update_run(State(r): St, input: Input) -> ApiResult {
    let req: UpdateRunRequest = input.parse()?;
    let run_id = RunRef {
        run_id: req.run_id,
        run_uuid: req.run_uuid,
    }
    .get()?
    .to_owned();
    let status = match req.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(RunStatus::parse(s)?),
        None => None,
    };
    let info = r
        .store()
        .update_run(UpdateRun {
            run_id,
            status,
            end_time: req.end_time,
            run_name: req.run_name.filter(|n| !n.is_empty()),
        })
        .await?;
    Ok(object1("run_info", &info))
}

pub(super) async fn delete_run(State(r): St, input: Input) -> ApiResult {
    let req: RunRef = input.parse()?;
    r.store().delete_run(req.get()?).await?;
    Ok(empty())
}

pub(super) async fn restore_run(State(r): St, input: Input) -> ApiResult {
    let req: RunRef = input.parse()?;
    r.store().restore_run(req.get()?).await?;
    Ok(empty())
}

pub(super) async fn search_runs(State(r): St, input: Input) -> ApiResult {
    let req: SearchRuns = input.parse()?;
    let page = r.store().search_runs(req).await?;
    Ok(JsonObject::with_capacity(4096)
        .list("runs", &page.items)
        .opt("next_page_token", page.next_page_token.as_ref())
        .finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LogMetric {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    #[serde(deserialize_with = "lenient::opt_f64")]
    value: Option<f64>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    timestamp: Option<i64>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    step: Option<i64>,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

pub(super) async fn log_metric(State(r): St, input: Input) -> ApiResult {
    let req: LogMetric = input.parse()?;
    let run_id = match (req.run_id, req.run_uuid) {
        (Some(id), _) if !id.is_empty() => id,
        (_, Some(id)) if !id.is_empty() => id,
        _ => return Err(missing("run_id")),
    };
    let key = match req.key {
        Some(k) if !k.is_empty() => k,
        _ => return Err(missing("key")),
    };
    let value = req.value.ok_or_else(|| missing("value"))?;
    let timestamp = req.timestamp.ok_or_else(|| missing("timestamp"))?;
    let metric = Metric {
        key,
        value,
        timestamp,
        step: req.step.unwrap_or(0),
        dataset_name: req.dataset_name.filter(|s| !s.is_empty()),
        dataset_digest: req.dataset_digest.filter(|s| !s.is_empty()),
        model_id: req.model_id.filter(|s| !s.is_empty()),
        run_id: None,
    };
    r.store().log_metric(&run_id, metric).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KeyValue {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    value: Option<String>,
}

impl KeyValue {
    fn parts(&self) -> Result<(&str, &str, &str), super::extract::ApiError> {
        let run_id = match (self.run_id.as_deref(), self.run_uuid.as_deref()) {
            (Some(id), _) if !id.is_empty() => id,
            (_, Some(id)) if !id.is_empty() => id,
            _ => return Err(missing("run_id")),
        };
        let key = required(&self.key, "key")?;
        let value = self.value.as_deref().ok_or_else(|| missing("value"))?;
        Ok((run_id, key, value))
    }
}

pub(super) async fn log_param(State(r): St, input: Input) -> ApiResult {
    let req: KeyValue = input.parse()?;
    let (run_id, key, value) = req.parts()?;
    r.store().log_param(run_id, Param::new(key, value)).await?;
    Ok(empty())
}

pub(super) async fn set_tag(State(r): St, input: Input) -> ApiResult {
    let req: KeyValue = input.parse()?;
    let (run_id, key, value) = req.parts()?;
    r.store().set_tag(run_id, Tag::new(key, value)).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeleteTag {
    run_id: Option<String>,
    key: Option<String>,
}

pub(super) async fn delete_tag(State(r): St, input: Input) -> ApiResult {
    let req: DeleteTag = input.parse()?;
    let run_id = required(&req.run_id, "run_id")?;
    let key = required(&req.key, "key")?;
    r.store().delete_tag(run_id, key).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LogBatch {
    run_id: Option<String>,
    metrics: Vec<Metric>,
    params: Vec<Param>,
    tags: Vec<RunTag>,
}

pub(super) async fn log_batch(State(r): St, input: Input) -> ApiResult {
    if input.body_len() > MAX_BATCH_LOG_REQUEST_SIZE {
        return Err(RegistryError::invalid(format!(
            "Batched logging API requests must be at most {MAX_BATCH_LOG_REQUEST_SIZE} bytes, got \
             a request of {} bytes.",
            input.body_len()
        ))
        .into());
    }
    let req: LogBatch = input.parse()?;
    let run_id = required(&req.run_id, "run_id")?;
    r.store()
        .log_batch(run_id, req.metrics, req.params, req.tags)
        .await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LogInputs {
    run_id: Option<String>,
    datasets: Vec<DatasetInput>,
    models: Vec<ModelInput>,
}

pub(super) async fn log_inputs(State(r): St, input: Input) -> ApiResult {
    let req: LogInputs = input.parse()?;
    let run_id = required(&req.run_id, "run_id")?;
    r.store()
        .log_inputs(run_id, req.datasets, req.models)
        .await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LogOutputs {
    run_id: Option<String>,
    models: Vec<ModelOutput>,
}

pub(super) async fn log_outputs(State(r): St, input: Input) -> ApiResult {
    let req: LogOutputs = input.parse()?;
    let run_id = required(&req.run_id, "run_id")?;
    r.store().log_outputs(run_id, req.models).await?;
    Ok(empty())
}

/// The run tag MLflow records logged models in (`runs/log-model`, MLflow 2's way).
const TAG_LOG_MODEL_HISTORY: &str = "mlflow.log-model.history";

#[derive(Deserialize, Default)]
#[serde(default)]
struct LogModel {
    run_id: Option<String>,
    model_json: Option<String>,
}

/// `runs/log-model`: appends the model's metadata to the run's `mlflow.log-model.history` tag.
pub(super) async fn log_model(State(r): St, input: Input) -> ApiResult {
    let req: LogModel = input.parse()?;
    let run_id = required(&req.run_id, "run_id")?;
    let model_json = required(&req.model_json, "model_json")?;
    let model: serde_json::Value = serde_json::from_str(model_json).map_err(|e| {
        RegistryError::invalid(format!(
            "Malformed model info. \n {model_json} \n is not a valid JSON. {e}"
        ))
    })?;
    let Some(fields) = model.as_object() else {
        return Err(RegistryError::invalid("Model json must be a JSON object.").into());
    };
    let mandatory = ["artifact_path", "flavors", "utc_time_created", "run_id"];
    let absent: Vec<&str> = mandatory
        .iter()
        .copied()
        .filter(|f| !fields.contains_key(*f))
        .collect();
    if !absent.is_empty() {
        return Err(RegistryError::invalid(format!(
            "Model json is missing mandatory fields: {absent:?}"
        ))
        .into());
    }
    let run = r.store().get_run(run_id).await?;
    let mut history: Vec<serde_json::Value> = run
        .data
        .tags
        .iter()
        .find(|t| t.key == TAG_LOG_MODEL_HISTORY)
        .and_then(|t| serde_json::from_str(&t.value).ok())
        .unwrap_or_default();
    history.push(model);
    let value = serde_json::to_string(&history)
        .map_err(|e| RegistryError::Internal(format!("cannot encode the model history: {e}")))?;
    r.store()
        .set_tag(run_id, Tag::new(TAG_LOG_MODEL_HISTORY, value))
        .await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MetricHistory {
    run_id: Option<String>,
    run_uuid: Option<String>,
    metric_key: Option<String>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

pub(super) async fn get_metric_history(State(r): St, input: Input) -> ApiResult {
    let req: MetricHistory = input.parse()?;
    let run = RunRef {
        run_id: req.run_id,
        run_uuid: req.run_uuid,
    };
    let run_id = run.get()?;
    let key = required(&req.metric_key, "metric_key")?;
    let page = r
        .store()
        .get_metric_history(
            run_id,
            key,
            req.max_results,
            req.page_token.as_deref().filter(|t| !t.is_empty()),
        )
        .await?;
    Ok(JsonObject::with_capacity(1024)
        .list("metrics", &page.items)
        .opt("next_page_token", page.next_page_token.as_ref())
        .finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BulkInterval {
    run_ids: Vec<String>,
    metric_key: Option<String>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    start_step: Option<i64>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    end_step: Option<i64>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    max_results: Option<i64>,
}

/// `metrics/get-history-bulk-interval` (the UI's charts): each run's values of one metric in a
/// step range, at most `max_results` per run (evenly sampled, the first and last kept).
pub(super) async fn get_metric_history_bulk_interval(State(r): St, input: Input) -> ApiResult {
    let req: BulkInterval = input.parse()?;
    let key = required(&req.metric_key, "metric_key")?;
    if req.run_ids.is_empty() {
        return Err(missing("run_ids"));
    }
    if req.run_ids.len() > 100 {
        return Err(RegistryError::invalid(
            "GetMetricHistoryBulkInterval request must specify at most 100 run_ids.",
        )
        .into());
    }
    let max = req.max_results.unwrap_or(320).clamp(1, 1000) as usize;
    let mut out: Vec<Metric> = Vec::new();
    for run_id in &req.run_ids {
        let mut values: Vec<Metric> = r
            .store()
            .get_metric_history(run_id, key, None, None)
            .await?
            .items
            .into_iter()
            .filter(|m| req.start_step.is_none_or(|s| m.step >= s))
            .filter(|m| req.end_step.is_none_or(|e| m.step <= e))
            .collect();
        values.sort_by_key(|m| (m.step, m.timestamp));
        if values.len() > max {
            let n = values.len();
            let picked: Vec<Metric> = (0..max)
                .map(|i| {
                    values[if max == 1 {
                        n - 1
                    } else {
                        i * (n - 1) / (max - 1)
                    }]
                    .clone()
                })
                .collect();
            values = picked;
        }
        for mut m in values {
            m.run_id = Some(run_id.clone());
            out.push(m);
        }
    }
    Ok(JsonObject::with_capacity(1024)
        .list("metrics", &out)
        .finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListArtifacts {
    run_id: Option<String>,
    run_uuid: Option<String>,
    path: Option<String>,
}

/// `artifacts/list`: one level of a run's artifacts, through the artifact store.
pub(super) async fn list_artifacts(State(r): St, input: Input) -> ApiResult {
    let req: ListArtifacts = input.parse()?;
    let run = RunRef {
        run_id: req.run_id,
        run_uuid: req.run_uuid,
    };
    let run = r.store().get_run(run.get()?).await?;
    let files = r
        .list_artifacts(&run.info.artifact_uri, req.path.as_deref())
        .await?;
    Ok(JsonObject::with_capacity(1024)
        .field("root_uri", &run.info.artifact_uri)
        .list("files", &files)
        .finish())
}
