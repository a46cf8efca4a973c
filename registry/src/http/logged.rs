//! MLflow 3 logged models (`/mlflow/logged-models...`).

use axum::extract::{Path, State};
use serde::Deserialize;

use super::extract::{
    ApiResult, Input, JsonObject, St, empty, lenient, missing, object1, required,
};
use crate::entities::{LoggedModelParameter, LoggedModelStatus, LoggedModelTag};
use crate::store::{CreateLoggedModel, SearchLoggedModels};

pub(super) async fn create(State(r): St, input: Input) -> ApiResult {
    let req: CreateLoggedModel = input.parse()?;
    if req.experiment_id.is_empty() {
        return Err(missing("experiment_id"));
    }
    let model = r.store().create_logged_model(req).await?;
    Ok(object1("model", &model))
}

pub(super) async fn get(State(r): St, Path(model_id): Path<String>) -> ApiResult {
    let model = r.store().get_logged_model(&model_id).await?;
    Ok(object1("model", &model))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Finalize {
    #[serde(deserialize_with = "lenient::opt_string")]
    status: Option<String>,
}

/// `PATCH logged-models/{id}`: finalizes the model (status READY or UPLOAD_FAILED).
pub(super) async fn finalize(
    State(r): St,
    Path(model_id): Path<String>,
    input: Input,
) -> ApiResult {
    let req: Finalize = input.parse()?;
    let status = LoggedModelStatus::parse(required(&req.status, "status")?)?;
    let model = r.store().finalize_logged_model(&model_id, status).await?;
    Ok(object1("model", &model))
}

pub(super) async fn delete(State(r): St, Path(model_id): Path<String>) -> ApiResult {
    r.store().delete_logged_model(&model_id).await?;
    Ok(empty())
}

pub(super) async fn search(State(r): St, input: Input) -> ApiResult {
    let req: SearchLoggedModels = input.parse()?;
    let page = r.store().search_logged_models(req).await?;
    Ok(JsonObject::with_capacity(2048)
        .list("models", &page.items)
        .opt("next_page_token", page.next_page_token.as_ref())
        .finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Tags {
    tags: Vec<LoggedModelTag>,
}

pub(super) async fn set_tags(
    State(r): St,
    Path(model_id): Path<String>,
    input: Input,
) -> ApiResult {
    let req: Tags = input.parse()?;
    let model = r.store().set_logged_model_tags(&model_id, req.tags).await?;
    Ok(object1("model", &model))
}

/// `DELETE logged-models/{id}/tags/{key}` (the key may hold slashes: MLflow's client does not
/// escape it).
pub(super) async fn delete_tag(
    State(r): St,
    Path((model_id, key)): Path<(String, String)>,
) -> ApiResult {
    r.store().delete_logged_model_tag(&model_id, &key).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Params {
    params: Vec<LoggedModelParameter>,
}

pub(super) async fn log_params(
    State(r): St,
    Path(model_id): Path<String>,
    input: Input,
) -> ApiResult {
    let req: Params = input.parse()?;
    r.store()
        .log_logged_model_params(&model_id, req.params)
        .await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Directories {
    artifact_directory_path: Option<String>,
}

/// `GET logged-models/{id}/artifacts/directories`: one level of the model's artifacts.
pub(super) async fn list_artifacts(
    State(r): St,
    Path(model_id): Path<String>,
    input: Input,
) -> ApiResult {
    let req: Directories = input.parse()?;
    let model = r.store().get_logged_model(&model_id).await?;
    let files = r
        .list_artifacts(
            &model.info.artifact_uri,
            req.artifact_directory_path.as_deref(),
        )
        .await?;
    Ok(JsonObject::with_capacity(1024)
        .field("root_uri", &model.info.artifact_uri)
        .list("files", &files)
        .finish())
}
