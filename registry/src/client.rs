//! A typed async client of the registry's REST API (the MLflow API plus Cerulean's alias history,
//! watch stream, training-job queue and dataset register). Workers, serving and the CLI use it to
//! talk to a remote registry.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::entities::{
    AliasEvent, Experiment, Metric, ModelVersion, Param, RegisteredModel, Run, RunInfo, Tag,
};
use crate::events::RegistryEvent;

mod jobs;

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{status}: {error_code}: {message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// MLflow's error code, e.g. `RESOURCE_DOES_NOT_EXIST`.
        error_code: String,
        /// The server's message.
        message: String,
    },
    /// The server could not be reached or the connection failed.
    #[error("cannot reach the registry at {url}: {source}")]
    Transport {
        /// The URL called.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from {url}: {message}")]
    Decode {
        /// The URL called.
        url: String,
        /// What was wrong.
        message: String,
    },
}

impl ClientError {
    /// Whether the server said the thing does not exist (404, or MLflow's missing-alias 400).
    pub fn is_not_found(&self) -> bool {
        match self {
            ClientError::Api {
                status,
                error_code,
                message,
                ..
            } => {
                *status == StatusCode::NOT_FOUND
                    || error_code == "RESOURCE_DOES_NOT_EXIST"
                    || (error_code == "INVALID_PARAMETER_VALUE" && message.contains("not found"))
            }
            _ => false,
        }
    }

    /// Whether the server said the worker's lease on a job is no longer current (`LEASE_LOST`:
    /// another worker took the job over, or it ended): the worker must stop working on it.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, ClientError::Api { error_code, .. } if error_code == "LEASE_LOST")
    }
}

/// Result of a client call.
pub type ClientResult<T> = Result<T, ClientError>;

/// A client of one registry.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl RegistryClient {
    /// A client of the registry at `base_url` (e.g. `http://127.0.0.1:8080`), sending `token` as a
    /// bearer API key when given.
    pub fn new(base_url: &str, token: Option<String>) -> ClientResult<RegistryClient> {
        crate::install_tls_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| ClientError::Transport {
                url: base_url.to_string(),
                source,
            })?;
        Ok(RegistryClient {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// The registry's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        builder: RequestBuilder,
        path: &str,
    ) -> ClientResult<T> {
        let url = format!("{}{path}", self.base);
        let response = builder
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        if !status.is_success() {
            return Err(api_error(status, &body));
        }
        let text = if body.is_empty() {
            &b"{}"[..]
        } else {
            &body[..]
        };
        serde_json::from_slice(text).map_err(|e| ClientError::Decode {
            url,
            message: e.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> ClientResult<T> {
        self.send(self.request(Method::GET, path).query(query), path)
            .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> ClientResult<T> {
        self.send(self.request(method, path).json(body), path).await
    }

    // ---- tracking ----

    /// The experiment with this name, created when missing; returns its id.
    pub async fn ensure_experiment(&self, name: &str) -> ClientResult<String> {
        match self.get_experiment_by_name(name).await {
            Ok(experiment) => Ok(experiment.experiment_id),
            Err(err) if err.is_not_found() => {
                let created: ClientResult<Value> = self
                    .call(
                        Method::POST,
                        "/api/2.0/mlflow/experiments/create",
                        &json!({ "name": name }),
                    )
                    .await;
                match created {
                    Ok(value) => field_string(&value, "experiment_id"),
                    // Another client created it meanwhile.
                    Err(ClientError::Api { error_code, .. })
                        if error_code == "RESOURCE_ALREADY_EXISTS" =>
                    {
                        Ok(self.get_experiment_by_name(name).await?.experiment_id)
                    }
                    Err(err) => Err(err),
                }
            }
            Err(err) => Err(err),
        }
    }

    /// The experiment with this name.
    pub async fn get_experiment_by_name(&self, name: &str) -> ClientResult<Experiment> {
        let value: Value = self
            .get(
                "/api/2.0/mlflow/experiments/get-by-name",
                &[("experiment_name", name)],
            )
            .await?;
        take(value, "experiment")
    }

    /// Starts a run.
    pub async fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        start_time: i64,
        tags: &[Tag],
    ) -> ClientResult<Run> {
        let value: Value = self
            .call(
                Method::POST,
                "/api/2.0/mlflow/runs/create",
                &json!({ "experiment_id": experiment_id, "run_name": run_name, "start_time": start_time, "tags": tags }),
            )
            .await?;
        take(value, "run")
    }

    /// A run.
    pub async fn get_run(&self, run_id: &str) -> ClientResult<Run> {
        let value: Value = self
            .get("/api/2.0/mlflow/runs/get", &[("run_id", run_id)])
            .await?;
        take(value, "run")
    }

    /// Every run of `experiment_id` that matches the MLflow search `filter` (e.g.
    /// `tags.mlflow.parentRunId = '<id>'`), in the server's default order, all pages.
    pub async fn search_runs(&self, experiment_id: &str, filter: &str) -> ClientResult<Vec<Run>> {
        let mut runs = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let value: Value = self
                .call(
                    Method::POST,
                    "/api/2.0/mlflow/runs/search",
                    &json!({
                        "experiment_ids": [experiment_id],
                        "filter": filter,
                        "max_results": 1000,
                        "page_token": page_token,
                    }),
                )
                .await?;
            runs.extend(take_or_default::<Vec<Run>>(&value, "runs")?);
            page_token = value
                .get("next_page_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if page_token.is_none() {
                return Ok(runs);
            }
        }
    }

    /// Sets a run's status (`FINISHED`, `FAILED`, `KILLED`, `RUNNING`) and end time.
    pub async fn update_run(
        &self,
        run_id: &str,
        status: &str,
        end_time: Option<i64>,
    ) -> ClientResult<RunInfo> {
        let value: Value = self
            .call(
                Method::POST,
                "/api/2.0/mlflow/runs/update",
                &json!({ "run_id": run_id, "status": status, "end_time": end_time }),
            )
            .await?;
        take(value, "run_info")
    }

    /// Logs metrics, params and tags in one atomic call.
    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[Param],
        tags: &[Tag],
    ) -> ClientResult<()> {
        let _: Value = self
            .call(
                Method::POST,
                "/api/2.0/mlflow/runs/log-batch",
                &json!({ "run_id": run_id, "metrics": metrics, "params": params, "tags": tags }),
            )
            .await?;
        Ok(())
    }

    /// Logs one metric value.
    pub async fn log_metric(&self, run_id: &str, metric: &Metric) -> ClientResult<()> {
        let _: Value = self
            .call(
                Method::POST,
                "/api/2.0/mlflow/runs/log-metric",
                &json!({ "run_id": run_id, "key": metric.key, "value": metric.value,
                         "timestamp": metric.timestamp, "step": metric.step }),
            )
            .await?;
        Ok(())
    }

    /// Sets a run tag.
    pub async fn set_tag(&self, run_id: &str, key: &str, value: &str) -> ClientResult<()> {
        let _: Value = self
            .call(
                Method::POST,
                "/api/2.0/mlflow/runs/set-tag",
                &json!({ "run_id": run_id, "key": key, "value": value }),
            )
            .await?;
        Ok(())
    }

    /// Records the datasets a run read (MLflow `log-inputs`), for lineage. Each dataset is MLflow's
    /// `{name, digest, source_type, source, schema, profile}` object.
    pub async fn log_inputs(&self, run_id: &str, datasets: &[Value]) -> ClientResult<()> {
        let inputs: Vec<Value> = datasets
            .iter()
            .map(|d| json!({ "dataset": d, "tags": [] }))
            .collect();
        let _: Value = self
            .call(
                Method::POST,
                "/api/2.0/mlflow/runs/log-inputs",
                &json!({ "run_id": run_id, "datasets": inputs }),
            )
            .await?;
        Ok(())
    }

    /// Every value of one metric of a run, oldest first.
    pub async fn metric_history(&self, run_id: &str, key: &str) -> ClientResult<Vec<Metric>> {
        let mut metrics = Vec::new();
        let mut token = String::new();
        loop {
            let mut query = vec![
                ("run_id", run_id),
                ("metric_key", key),
                ("max_results", "25000"),
            ];
            if !token.is_empty() {
                query.push(("page_token", token.as_str()));
            }
            let value: Value = self
                .get("/api/2.0/mlflow/metrics/get-history", &query)
                .await?;
            let page: Vec<Metric> = take_or_default(&value, "metrics")?;
            metrics.extend(page);
            match value.get("next_page_token").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => token = next.to_string(),
                _ => return Ok(metrics),
            }
        }
    }

    // ---- artifacts ----

    /// Uploads bytes as the artifact at `path` (relative to the artifact root, e.g.
    /// `<experiment>/<run>/artifacts/model/model.safetensors`).
    pub async fn upload_artifact(
        &self,
        path: &str,
        data: impl Into<reqwest::Body>,
    ) -> ClientResult<()> {
        let route = format!("/api/2.0/mlflow-artifacts/artifacts/{path}");
        let _: Value = self
            .send(self.request(Method::PUT, &route).body(data), &route)
            .await?;
        Ok(())
    }

    /// Downloads the artifact at `path` as a stream of chunks.
    pub async fn download_artifact(
        &self,
        path: &str,
    ) -> ClientResult<impl Stream<Item = ClientResult<Bytes>> + use<>> {
        let route = format!("/api/2.0/mlflow-artifacts/artifacts/{path}");
        let url = format!("{}{route}", self.base);
        let response = self
            .request(Method::GET, &route)
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(api_error(status, &body));
        }
        Ok(response.bytes_stream().map(move |chunk| {
            chunk.map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })
        }))
    }

    /// The files and folders directly under `path` (`(relative path, is_dir, size)`).
    pub async fn list_artifacts(
        &self,
        path: &str,
    ) -> ClientResult<Vec<(String, bool, Option<u64>)>> {
        let value: Value = self
            .get("/api/2.0/mlflow-artifacts/artifacts", &[("path", path)])
            .await?;
        let files = value
            .get("files")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(files
            .iter()
            .map(|f| {
                (
                    f.get("path")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    f.get("is_dir").and_then(Value::as_bool).unwrap_or(false),
                    f.get("file_size")
                        .and_then(|s| s.as_u64().or_else(|| s.as_str()?.parse().ok())),
                )
            })
            .collect())
    }

    // ---- registry ----

    /// The registered model, created when missing.
    pub async fn ensure_registered_model(&self, name: &str) -> ClientResult<RegisteredModel> {
        let created: ClientResult<Value> = self
            .call(
                Method::POST,
                "/api/2.0/mlflow/registered-models/create",
                &json!({ "name": name }),
            )
            .await;
        match created {
            Ok(value) => take(value, "registered_model"),
            Err(ClientError::Api { error_code, .. }) if error_code == "RESOURCE_ALREADY_EXISTS" => {
                self.get_registered_model(name).await
            }
            Err(err) => Err(err),
        }
    }

    /// A registered model.
    pub async fn get_registered_model(&self, name: &str) -> ClientResult<RegisteredModel> {
        let value: Value = self
            .get("/api/2.0/mlflow/registered-models/get", &[("name", name)])
            .await?;
        take(value, "registered_model")
    }

    /// Every registered model (all pages of `registered-models/search`), with its aliases.
    pub async fn registered_models(&self) -> ClientResult<Vec<RegisteredModel>> {
        let mut models = Vec::new();
        let mut token = String::new();
        loop {
            let mut query = vec![("max_results", "1000")];
            if !token.is_empty() {
                query.push(("page_token", token.as_str()));
            }
            let value: Value = self
                .get("/api/2.0/mlflow/registered-models/search", &query)
                .await?;
            models.extend(take_or_default::<Vec<RegisteredModel>>(
                &value,
                "registered_models",
            )?);
            match value.get("next_page_token").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => token = next.to_string(),
                _ => return Ok(models),
            }
        }
    }

    /// Where a version's files are (`model-versions/get-download-uri`): its source, with
    /// `models:/` URIs resolved to the location they name.
    pub async fn get_model_version_download_uri(
        &self,
        name: &str,
        version: &str,
    ) -> ClientResult<String> {
        let value: Value = self
            .get(
                "/api/2.0/mlflow/model-versions/get-download-uri",
                &[("name", name), ("version", version)],
            )
            .await?;
        field_string(&value, "artifact_uri")
    }

    /// Registers a new version of `name` whose files are at `source`.
    pub async fn create_model_version(
        &self,
        name: &str,
        source: &str,
        run_id: Option<&str>,
        description: &str,
        tags: &[Tag],
    ) -> ClientResult<ModelVersion> {
        let value: Value = self
            .call(
                Method::POST,
                "/api/2.0/mlflow/model-versions/create",
                &json!({ "name": name, "source": source, "run_id": run_id, "description": description, "tags": tags }),
            )
            .await?;
        take(value, "model_version")
    }

    /// One version.
    pub async fn get_model_version(&self, name: &str, version: &str) -> ClientResult<ModelVersion> {
        let value: Value = self
            .get(
                "/api/2.0/mlflow/model-versions/get",
                &[("name", name), ("version", version)],
            )
            .await?;
        take(value, "model_version")
    }

    /// Every version of a registered model, in version order.
    pub async fn model_versions(&self, name: &str) -> ClientResult<Vec<ModelVersion>> {
        let filter = format!("name='{}'", name.replace('\'', "\\'"));
        let mut versions: Vec<ModelVersion> = Vec::new();
        let mut token = String::new();
        loop {
            let mut query = vec![("filter", filter.as_str()), ("max_results", "1000")];
            if !token.is_empty() {
                query.push(("page_token", token.as_str()));
            }
            let value: Value = self
                .get("/api/2.0/mlflow/model-versions/search", &query)
                .await?;
            versions.extend(take_or_default::<Vec<ModelVersion>>(
                &value,
                "model_versions",
            )?);
            match value.get("next_page_token").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => token = next.to_string(),
                _ => break,
            }
        }
        versions.sort_by_key(|v| v.version.parse::<u64>().unwrap_or(0));
        Ok(versions)
    }

    /// The version an alias points at.
    pub async fn get_model_version_by_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> ClientResult<ModelVersion> {
        let value: Value = self
            .get(
                "/api/2.0/mlflow/registered-models/alias",
                &[("name", name), ("alias", alias)],
            )
            .await?;
        take(value, "model_version")
    }

    /// Points `alias` at `version`, recording `reason` in the alias history.
    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        reason: &str,
    ) -> ClientResult<()> {
        let _: Value = self
            .call(
                Method::POST,
                "/api/2.0/mlflow/registered-models/alias",
                &json!({ "name": name, "alias": alias, "version": version, "reason": reason }),
            )
            .await?;
        Ok(())
    }

    /// Removes an alias.
    pub async fn delete_alias(&self, name: &str, alias: &str) -> ClientResult<()> {
        let _: Value = self
            .call(
                Method::DELETE,
                "/api/2.0/mlflow/registered-models/alias",
                &json!({ "name": name, "alias": alias }),
            )
            .await?;
        Ok(())
    }

    /// The moves of a model's aliases (all aliases, or one), newest first.
    pub async fn alias_history(
        &self,
        name: &str,
        alias: Option<&str>,
    ) -> ClientResult<Vec<AliasEvent>> {
        let mut query = vec![("name", name)];
        if let Some(alias) = alias {
            query.push(("alias", alias));
        }
        let value: Value = self
            .get("/api/2.0/mlflow/registered-models/alias-history", &query)
            .await?;
        take_or_default(&value, "events")
    }

    /// Follows registry events (for one model, or all) as they happen, without polling. With
    /// `since_alias_event`, alias moves recorded after that event id are replayed first, so a follower
    /// that reconnects misses none.
    pub async fn watch(
        &self,
        name: Option<&str>,
        since_alias_event: Option<i64>,
    ) -> ClientResult<impl Stream<Item = ClientResult<RegistryEvent>> + use<>> {
        let since = since_alias_event.map(|id| id.to_string());
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(name) = name {
            query.push(("name", name));
        }
        if let Some(since) = &since {
            query.push(("since_alias_event", since));
        }
        self.watch_query(&query).await
    }

    /// The watch stream with these query parameters.
    async fn watch_query(
        &self,
        query: &[(&str, &str)],
    ) -> ClientResult<impl Stream<Item = ClientResult<RegistryEvent>> + use<>> {
        let route = "/api/2.0/cerulean/watch";
        let url = format!("{}{route}", self.base);
        let response = self
            .request(Method::GET, route)
            .query(query)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(api_error(status, &body));
        }
        let chunks = response.bytes_stream();
        Ok(sse_events(chunks, url))
    }
}

/// Turns a byte stream of Server-Sent Events into the registry events their `data` lines hold.
fn sse_events(
    chunks: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    url: String,
) -> impl Stream<Item = ClientResult<RegistryEvent>> {
    let state = (Box::pin(chunks), Vec::<u8>::new(), String::new(), url);
    futures::stream::unfold(
        state,
        |(mut chunks, mut buffer, mut data, url)| async move {
            loop {
                // Complete lines first.
                if let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line);
                    let line = line.trim_end_matches(['\n', '\r']);
                    if line.is_empty() {
                        if data.is_empty() {
                            continue;
                        }
                        let event = serde_json::from_str::<RegistryEvent>(&data).map_err(|e| {
                            ClientError::Decode {
                                url: url.clone(),
                                message: format!("bad event {data}: {e}"),
                            }
                        });
                        data.clear();
                        return Some((event, (chunks, buffer, data, url)));
                    }
                    if let Some(payload) = line.strip_prefix("data:") {
                        if !data.is_empty() {
                            data.push('\n');
                        }
                        data.push_str(payload.strip_prefix(' ').unwrap_or(payload));
                    }
                    continue;
                }
                match chunks.next().await {
                    Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                    Some(Err(source)) => {
                        let err = ClientError::Transport {
                            url: url.clone(),
                            source,
                        };
                        return Some((Err(err), (chunks, buffer, data, url)));
                    }
                    None => return None,
                }
            }
        },
    )
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    ClientError::Api {
        status,
        error_code: field("error_code")
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("ERROR").to_string()),
        message: field("message")
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect()),
    }
}

fn take<T: DeserializeOwned>(mut value: Value, field: &str) -> ClientResult<T> {
    let inner = value
        .get_mut(field)
        .map(Value::take)
        .ok_or_else(|| ClientError::Decode {
            url: String::new(),
            message: format!("no '{field}' in the answer"),
        })?;
    serde_json::from_value(inner).map_err(|e| ClientError::Decode {
        url: String::new(),
        message: format!("'{field}': {e}"),
    })
}

fn take_or_default<T: DeserializeOwned + Default>(value: &Value, field: &str) -> ClientResult<T> {
    match value.get(field) {
        None => Ok(T::default()),
        Some(inner) => serde_json::from_value(inner.clone()).map_err(|e| ClientError::Decode {
            url: String::new(),
            message: format!("'{field}': {e}"),
        }),
    }
}

fn field_string(value: &Value, field: &str) -> ClientResult<String> {
    value
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Decode {
            url: String::new(),
            message: format!("no '{field}' in the answer"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn server_sent_events_are_parsed_across_chunk_boundaries() {
        let event = RegistryEvent::AliasMoved {
            name: "digits".into(),
            alias: "champion".into(),
            from_version: Some("1".into()),
            to_version: Some("2".into()),
            actor: "ci".into(),
            reason: "better".into(),
            timestamp: 5,
        };
        let text = format!(
            ": keep-alive\n\nevent: alias_moved\nid: 1\ndata: {}\n\n",
            serde_json::to_string(&event).unwrap()
        );
        // Split the stream at awkward places.
        let bytes = text.into_bytes();
        let chunks: Vec<reqwest::Result<Bytes>> = bytes
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let events: Vec<_> = sse_events(futures::stream::iter(chunks), "u".into())
            .collect()
            .await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].as_ref().unwrap(), &event);
    }

    #[test]
    fn api_errors_keep_mlflow_codes() {
        let err = api_error(
            StatusCode::BAD_REQUEST,
            br#"{"error_code":"INVALID_PARAMETER_VALUE","message":"Registered model alias champion not found."}"#,
        );
        assert!(err.is_not_found());
        assert!(err.to_string().contains("INVALID_PARAMETER_VALUE"));
        let plain = api_error(StatusCode::BAD_GATEWAY, b"<html>");
        assert!(!plain.is_not_found());
        assert!(plain.to_string().contains("<html>"));
    }
}
