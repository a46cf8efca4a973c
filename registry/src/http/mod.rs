//! The MLflow REST API over a [`Registry`], as axum routes.
//!
//! [`router`] answers every route below under `/api/2.0/mlflow/` and mirrors it under
//! `/ajax-api/2.0/mlflow/` (MLflow's web UI calls the latter). Parameters of `GET` requests come
//! from the query string (a repeated key is a list: `order_by=a&order_by=b`); those of `POST`,
//! `PATCH` and `DELETE` requests from a JSON body (the query string when the body is empty). The
//! `Content-Type` is not checked. Answers are MLflow's JSON (protobuf field names; unset fields and
//! empty lists left out); errors are `{"error_code": "...", "message": "..."}` with MLflow's status
//! for the code (`RESOURCE_DOES_NOT_EXIST` 404, `RESOURCE_ALREADY_EXISTS` 400,
//! `INVALID_PARAMETER_VALUE` 400, `PERMISSION_DENIED` 403, ...).
//!
//! | area | routes (method, path below the prefix) |
//! |---|---|
//! | experiments | `POST experiments/create`, `GET experiments/get`, `GET experiments/get-by-name`, `GET`/`POST experiments/search`, `POST experiments/{update,delete,restore}`, `POST experiments/{set-experiment-tag,delete-experiment-tag}` |
//! | runs | `POST runs/create`, `GET runs/get`, `POST runs/{update,delete,restore}`, `POST`/`GET runs/search`, `POST runs/{log-metric,log-parameter,set-tag,delete-tag,log-batch,log-inputs,outputs,log-model}` |
//! | metrics | `GET metrics/get-history`, `GET metrics/get-history-bulk-interval` |
//! | run artifacts | `GET artifacts/list` (through the artifact store) |
//! | logged models (MLflow 3) | `POST logged-models`, `GET`/`PATCH`/`DELETE logged-models/{id}`, `POST logged-models/search`, `PATCH logged-models/{id}/tags`, `DELETE logged-models/{id}/tags/{key}`, `POST logged-models/{id}/params`, `GET logged-models/{id}/artifacts/directories` |
//! | registered models | `POST registered-models/create`, `GET registered-models/get`, `POST registered-models/rename`, `PATCH registered-models/update`, `DELETE registered-models/delete`, `GET`/`POST registered-models/search`, `POST registered-models/set-tag`, `DELETE registered-models/delete-tag`, `POST`/`GET registered-models/get-latest-versions` |
//! | aliases | `POST`/`DELETE`/`GET registered-models/alias` |
//! | model versions | `POST model-versions/create`, `GET model-versions/get`, `PATCH model-versions/update`, `DELETE model-versions/delete`, `GET`/`POST model-versions/search`, `GET model-versions/get-download-uri`, `POST model-versions/set-tag`, `DELETE model-versions/delete-tag`, `POST model-versions/transition-stage` |
//!
//! Besides: the artifact proxy of [`crate::artifacts::http::router`] (`/api/2.0/mlflow-artifacts/...`),
//! `GET /api/3.0/mlflow/server-info` (and its `/ajax-api/3.0` mirror; it advertises multipart
//! uploads, which the proxy implements), `GET /health` (`OK`) and `GET /version` (Cerulean's
//! version).
//!
//! Run artifact URIs are `mlflow-artifacts:/<experiment_id>/<run_id>/artifacts`, experiment
//! artifact locations `mlflow-artifacts:/<experiment_id>`, logged-model artifact locations
//! `mlflow-artifacts:/<experiment_id>/models/<model_id>/artifacts`: MLflow clients resolve them
//! to this server's artifact proxy. Model versions are answered without `model_id`, as MLflow
//! 3.17.2's server does (the `source` names the logged model).
//!
//! # Cerulean's extensions
//!
//! - **Alias history.** `GET /api/2.0/mlflow/registered-models/alias-history?name=&alias=&max_results=&page_token=`
//!   answers `{"events": [AliasEvent...], "next_page_token": "..."}`, newest first: each move of
//!   an alias with who moved it (the API key's name, or `anonymous` when authentication is off),
//!   when (ms), from which version to which (either absent when the alias was created or
//!   deleted), why, and whether it was implicit (a version or model deleted under it). `alias` is
//!   optional (all of the model's aliases); `max_results` defaults to 100 (at most 1000).
//! - **Reasons.** `POST /api/2.0/mlflow/registered-models/alias` takes an optional `reason`
//!   (free text) beside `name`, `alias` and `version`; so does `DELETE`. It is recorded in the
//!   history and carried by the `alias_moved` event.
//! - **Watch stream.** `GET /api/2.0/cerulean/watch?name=&job_id=&since_alias_event=` is a
//!   long-lived Server-Sent Events stream (`text/event-stream`) of registry events, for all models
//!   and jobs, or only the model (`name`) and/or the training job (`job_id`) named:
//!   `event: alias_moved` (or `version_created`, `stage_changed`, `job_changed`), `id: <sequence>`
//!   (increasing per event in this process), `data: <Envelope JSON>` (the event's fields, its
//!   `type` and `sequence`, and for alias moves `alias_event_id`, the move's id in the history).
//!   A `: ready` comment marks the start of the live part; `: keep-alive` comments come every
//!   15 s on an idle stream. A stream that falls behind gets a `: lagged` comment and the alias
//!   moves it missed, re-read from the store.
//!
//!   A follower that reconnects (after a network failure or a server restart) should re-read the
//!   current state it depends on (`GET registered-models/alias`), or pass the last
//!   `alias_event_id` it saw as `since_alias_event`: the stream then first replays every alias
//!   move recorded after that id (from the store, so also moves made through other server
//!   processes while it was away; `sequence` 0 and no `id:` line mark replayed events) and then
//!   goes live, with no move missed or repeated in between. Events of the live part come from
//!   this process: a follower of a deployment with several registry processes should reconnect
//!   now and then with `since_alias_event`, or read the alias.
//!
//! # Cerulean's training-job queue and dataset register
//!
//! Under `/api/2.0/cerulean/` (mirrored under `/ajax-api/2.0/cerulean/`), with the same error
//! shape; a worker's lease that is no longer current is `409 LEASE_LOST`.
//!
//! | route | parameters | answer |
//! |---|---|---|
//! | `POST jobs/submit` | `name`, `experiment?`, `spec` (object), `spec_text?`, `requires_gpu?` | `{"job"}` (400 `INVALID_PARAMETER_VALUE` when the installed spec validator refuses the spec) |
//! | `GET jobs/get` | `job_id` | `{"job"}` |
//! | `GET jobs/list` | `status?` (repeated or comma-separated), `max_results?` (100, at most 1000), `page_token?` | `{"jobs": [...], "next_page_token"?}`, newest first |
//! | `POST jobs/cancel` | `job_id` | `{"job"}` |
//! | `POST jobs/lease` | `worker_id`, `lease_ms?` (30000), `gpu?` | `{"job", "lease_token"}`, or `{}` when there is no work |
//! | `POST jobs/heartbeat` | `job_id`, `lease_token`, `lease_ms?`, `progress?`, `checkpoint_uri?` | `{"cancel_requested"}` |
//! | `POST jobs/set-run` | `job_id`, `lease_token`, `run_id` | `{"job"}` (the run recorded first is kept) |
//! | `POST jobs/finish` | `job_id`, `lease_token`, `status` (`SUCCEEDED`, `FAILED`, `CANCELLED`), `error?`, `error_context?`, `result?`, `checkpoint_uri?` | `{"job"}` |
//! | `POST jobs/logs/append` | `job_id`, `lease_token`, `lines` | `{"last_seq"}` |
//! | `GET jobs/logs` | `job_id`, `after_seq?` (0), `max_results?` (1000, at most 10000) | `{"lines": [{"seq", "timestamp", "line"}]}` |
//! | `POST datasets/register` | `name`, `uri`, `format`, `digest`, `schema?`, `row_count?`, `description?` | `{"dataset"}`: a new version, or the latest unchanged when the digest is the same |
//! | `GET datasets/get` | `name`, `version?` (the latest) | `{"dataset"}` |
//! | `GET datasets/list` | `name?` | `{"datasets": [...]}`: the latest version of each, or every version of `name` |
//!
//! Submissions, leases, finishes and cancels publish a `job_changed` event (`job_id`,
//! `job_name`, `status`, `cancel_requested`) on the watch stream, which `job_id=` narrows to one
//! job.
//!
//! # Authentication
//!
//! When the [`Registry`]'s [`crate::auth::Auth`] is enabled, every route goes through
//! [`crate::auth::require_role`] (reads need `reader`, writes `writer`, alias moves and stage
//! transitions `promoter`, deletions of models and versions `admin`), which records the caller
//! (the [`crate::auth::Principal`]) for the alias history. Exempt: `/health`, `/version`, the
//! server-info route (MLflow serves it without login) and the artifact proxy's multipart part
//! uploads (`/mlflow-artifacts/mpu/part/...`), whose URLs carry their own signature because
//! MLflow's client sends parts without credentials. When authentication is off the layer is not
//! installed at all and handlers act as `anonymous`.

mod datasets;
mod extract;
mod jobs;
mod logged;
mod registry;
mod tracking;
mod watch;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};

use crate::auth::{self, Auth};
use crate::service::Registry;

pub use extract::MAX_BODY_BYTES;

/// The prefixes every MLflow REST route is served under.
pub const PREFIXES: [&str; 2] = ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"];

/// The prefixes Cerulean's job and dataset routes are served under.
pub const CERULEAN_PREFIXES: [&str; 2] = ["/api/2.0/cerulean", "/ajax-api/2.0/cerulean"];

/// The route of the watch stream.
pub const WATCH_PATH: &str = "/api/2.0/cerulean/watch";

/// The routes of the MLflow REST API, the artifact proxy, the watch stream, server-info,
/// `/health` and `/version` over `registry`, with the authentication layer when it is enabled.
/// The router has no fallback: merge it with the server's other routes and add one there (for
/// `/api/...` paths, [`not_found`] answers as MLflow does).
pub fn router(registry: Arc<Registry>) -> Router {
    let mut api: Router<Arc<Registry>> = Router::new();
    for prefix in PREFIXES {
        api = mlflow_routes(api, prefix);
    }
    for prefix in CERULEAN_PREFIXES {
        api = cerulean_routes(api, prefix);
    }
    let api = api
        .route(
            "/api/2.0/mlflow/registered-models/alias-history",
            get(registry::alias_history),
        )
        .route(
            "/ajax-api/2.0/mlflow/registered-models/alias-history",
            get(registry::alias_history),
        )
        .route(WATCH_PATH, get(watch::watch))
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route("/ajax-api/3.0/mlflow/server-info", get(server_info))
        .route("/health", get(health))
        .route("/version", get(version));
    let artifacts = crate::artifacts::http::router(
        registry.artifacts().clone(),
        registry.artifact_http_config().clone(),
    );
    let auth = registry.auth().clone();
    let app = api.with_state(registry).merge(artifacts);
    if auth.is_enabled() {
        app.layer(axum::middleware::from_fn_with_state(auth, guard))
    } else {
        app
    }
}

fn mlflow_routes(router: Router<Arc<Registry>>, p: &str) -> Router<Arc<Registry>> {
    use registry as reg;
    use tracking as tr;
    router
        // experiments
        .route(
            &format!("{p}/experiments/create"),
            post(tr::create_experiment),
        )
        .route(&format!("{p}/experiments/get"), get(tr::get_experiment))
        .route(
            &format!("{p}/experiments/get-by-name"),
            get(tr::get_experiment_by_name),
        )
        .route(
            &format!("{p}/experiments/search"),
            get(tr::search_experiments).post(tr::search_experiments),
        )
        .route(
            &format!("{p}/experiments/update"),
            post(tr::update_experiment),
        )
        .route(
            &format!("{p}/experiments/delete"),
            post(tr::delete_experiment),
        )
        .route(
            &format!("{p}/experiments/restore"),
            post(tr::restore_experiment),
        )
        .route(
            &format!("{p}/experiments/set-experiment-tag"),
            post(tr::set_experiment_tag),
        )
        .route(
            &format!("{p}/experiments/delete-experiment-tag"),
            post(tr::delete_experiment_tag),
        )
        // runs
        .route(&format!("{p}/runs/create"), post(tr::create_run))
        .route(&format!("{p}/runs/get"), get(tr::get_run))
        .route(&format!("{p}/runs/update"), post(tr::update_run))
        .route(&format!("{p}/runs/delete"), post(tr::delete_run))
        .route(&format!("{p}/runs/restore"), post(tr::restore_run))
        .route(
            &format!("{p}/runs/search"),
            post(tr::search_runs).get(tr::search_runs),
        )
        .route(&format!("{p}/runs/log-metric"), post(tr::log_metric))
        .route(&format!("{p}/runs/log-parameter"), post(tr::log_param))
        .route(&format!("{p}/runs/set-tag"), post(tr::set_tag))
        .route(&format!("{p}/runs/delete-tag"), post(tr::delete_tag))
        .route(&format!("{p}/runs/log-batch"), post(tr::log_batch))
        .route(&format!("{p}/runs/log-inputs"), post(tr::log_inputs))
        .route(&format!("{p}/runs/outputs"), post(tr::log_outputs))
        .route(&format!("{p}/runs/log-model"), post(tr::log_model))
        .route(
            &format!("{p}/metrics/get-history"),
            get(tr::get_metric_history),
        )
        .route(
            &format!("{p}/metrics/get-history-bulk-interval"),
            get(tr::get_metric_history_bulk_interval),
        )
        .route(&format!("{p}/artifacts/list"), get(tr::list_artifacts))
        // MLflow 3 logged models
        .route(&format!("{p}/logged-models"), post(logged::create))
        .route(&format!("{p}/logged-models/search"), post(logged::search))
        .route(
            &format!("{p}/logged-models/{{model_id}}"),
            get(logged::get)
                .patch(logged::finalize)
                .delete(logged::delete),
        )
        .route(
            &format!("{p}/logged-models/{{model_id}}/tags"),
            patch(logged::set_tags),
        )
        .route(
            &format!("{p}/logged-models/{{model_id}}/tags/{{*tag_key}}"),
            delete(logged::delete_tag),
        )
        .route(
            &format!("{p}/logged-models/{{model_id}}/params"),
            post(logged::log_params),
        )
        .route(
            &format!("{p}/logged-models/{{model_id}}/artifacts/directories"),
            get(logged::list_artifacts),
        )
        // registered models
        .route(
            &format!("{p}/registered-models/create"),
            post(reg::create_registered_model),
        )
        .route(
            &format!("{p}/registered-models/get"),
            get(reg::get_registered_model),
        )
        .route(
            &format!("{p}/registered-models/rename"),
            post(reg::rename_registered_model),
        )
        .route(
            &format!("{p}/registered-models/update"),
            patch(reg::update_registered_model),
        )
        .route(
            &format!("{p}/registered-models/delete"),
            delete(reg::delete_registered_model),
        )
        .route(
            &format!("{p}/registered-models/search"),
            get(reg::search_registered_models).post(reg::search_registered_models),
        )
        .route(
            &format!("{p}/registered-models/set-tag"),
            post(reg::set_registered_model_tag),
        )
        .route(
            &format!("{p}/registered-models/delete-tag"),
            delete(reg::delete_registered_model_tag),
        )
        .route(
            &format!("{p}/registered-models/get-latest-versions"),
            post(reg::get_latest_versions).get(reg::get_latest_versions),
        )
        .route(
            &format!("{p}/registered-models/alias"),
            post(reg::set_alias)
                .delete(reg::delete_alias)
                .get(reg::get_by_alias),
        )
        // model versions
        .route(
            &format!("{p}/model-versions/create"),
            post(reg::create_model_version),
        )
        .route(
            &format!("{p}/model-versions/get"),
            get(reg::get_model_version),
        )
        .route(
            &format!("{p}/model-versions/update"),
            patch(reg::update_model_version),
        )
        .route(
            &format!("{p}/model-versions/delete"),
            delete(reg::delete_model_version),
        )
        .route(
            &format!("{p}/model-versions/search"),
            get(reg::search_model_versions).post(reg::search_model_versions),
        )
        .route(
            &format!("{p}/model-versions/get-download-uri"),
            get(reg::get_model_version_download_uri),
        )
        .route(
            &format!("{p}/model-versions/set-tag"),
            post(reg::set_model_version_tag),
        )
        .route(
            &format!("{p}/model-versions/delete-tag"),
            delete(reg::delete_model_version_tag),
        )
        .route(
            &format!("{p}/model-versions/transition-stage"),
            post(reg::transition_model_version_stage),
        )
}

fn cerulean_routes(router: Router<Arc<Registry>>, p: &str) -> Router<Arc<Registry>> {
    router
        .route(&format!("{p}/jobs/submit"), post(jobs::submit))
        .route(&format!("{p}/jobs/get"), get(jobs::get))
        .route(&format!("{p}/jobs/list"), get(jobs::list))
        .route(&format!("{p}/jobs/cancel"), post(jobs::cancel))
        .route(&format!("{p}/jobs/lease"), post(jobs::lease))
        .route(&format!("{p}/jobs/heartbeat"), post(jobs::heartbeat))
        .route(&format!("{p}/jobs/set-run"), post(jobs::set_run))
        .route(&format!("{p}/jobs/finish"), post(jobs::finish))
        .route(&format!("{p}/jobs/logs"), get(jobs::logs))
        .route(&format!("{p}/jobs/logs/append"), post(jobs::append_logs))
        .route(&format!("{p}/datasets/register"), post(datasets::register))
        .route(&format!("{p}/datasets/get"), get(datasets::get))
        .route(&format!("{p}/datasets/list"), get(datasets::list))
}

/// The authentication layer: [`auth::require_role`], except for the routes that must answer
/// without credentials (multipart part uploads carry a signature; server-info is public in
/// MLflow).
async fn guard(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.contains("/mlflow-artifacts/mpu/part/") || path.ends_with("/mlflow/server-info") {
        return next.run(request).await;
    }
    auth::require_role(State(auth), request, next).await
}

/// MLflow's answer to a path it has no endpoint for: 404 `ENDPOINT_NOT_FOUND`. The server's
/// fallback for `/api/...` and `/ajax-api/...` paths.
pub async fn not_found(method: Method, uri: Uri) -> Response {
    extract::error_response(
        StatusCode::NOT_FOUND,
        "ENDPOINT_NOT_FOUND",
        &format!("No API endpoint found for {method} {}", uri.path()),
    )
}

/// `GET /api/3.0/mlflow/server-info`: how the server is set up, as MLflow 3.17 answers it. The
/// client reads `multipart_uploads_enabled` to decide whether files over
/// `MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE` go up in parts through the proxy's `mpu/` routes.
async fn server_info() -> Response {
    const BODY: &str = r#"{"store_type":"SqlStore","workspaces_enabled":false,"trace_archival_enabled":false,"multipart_uploads_enabled":true,"multipart_downloads_enabled":false,"presigned_upload_run_id_supported":false,"presigned_upload_model_id_supported":false,"features_enabled":{"gateway":false}}"#;
    ([(header::CONTENT_TYPE, "application/json")], BODY).into_response()
}

/// `GET /health`: `OK` once the server answers (MLflow's probe).
async fn health() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "OK").into_response()
}

/// `GET /version`: Cerulean's version, as text (MLflow answers its own version there).
async fn version() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        env!("CARGO_PKG_VERSION"),
    )
        .into_response()
}
