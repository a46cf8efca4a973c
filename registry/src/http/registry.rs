//! Registered models, model versions and aliases (MLflow's `ModelRegistryService`), with
//! Cerulean's alias history.

use axum::Extension;
use axum::extract::State;
use serde::Deserialize;

use super::extract::{
    ApiResult, Input, JsonObject, St, actor, empty, lenient, missing, object1, required,
};
use crate::auth::Principal;
use crate::entities::{ModelVersion, RegisteredModel, json};
use crate::store::{CreateModelVersion, CreateRegisteredModel, SearchQuery, SetAlias};

/// MLflow 3.17.2's server leaves `model_id` out of the model versions it answers with (the
/// source names the logged model); so does Cerulean.
fn public_version(mut mv: ModelVersion) -> ModelVersion {
    mv.model_id = None;
    mv
}

fn public_model(mut rm: RegisteredModel) -> RegisteredModel {
    for mv in &mut rm.latest_versions {
        mv.model_id = None;
    }
    rm
}

type Caller = Option<Extension<Principal>>;

// ---- registered models ----------------------------------------------------------------------

pub(super) async fn create_registered_model(
    State(r): St,
    principal: Caller,
    input: Input,
) -> ApiResult {
    let req: CreateRegisteredModel = input.parse()?;
    if req.name.is_empty() {
        return Err(missing("name"));
    }
    let rm = r.create_registered_model(req, &actor(principal)).await?;
    Ok(object1("registered_model", &public_model(rm)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Name {
    name: Option<String>,
}

pub(super) async fn get_registered_model(State(r): St, input: Input) -> ApiResult {
    let req: Name = input.parse()?;
    let rm = r
        .store()
        .get_registered_model(required(&req.name, "name")?)
        .await?;
    Ok(object1("registered_model", &public_model(rm)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Rename {
    name: Option<String>,
    new_name: Option<String>,
}

pub(super) async fn rename_registered_model(State(r): St, input: Input) -> ApiResult {
    let req: Rename = input.parse()?;
    let name = required(&req.name, "name")?;
    let new_name = required(&req.new_name, "new_name")?;
    let rm = r.store().rename_registered_model(name, new_name).await?;
    Ok(object1("registered_model", &public_model(rm)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Describe {
    name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    version: Option<String>,
    description: Option<String>,
}

pub(super) async fn update_registered_model(State(r): St, input: Input) -> ApiResult {
    let req: Describe = input.parse()?;
    let name = required(&req.name, "name")?;
    let rm = r
        .store()
        .update_registered_model(name, req.description.as_deref())
        .await?;
    Ok(object1("registered_model", &public_model(rm)))
}

pub(super) async fn delete_registered_model(
    State(r): St,
    principal: Caller,
    input: Input,
) -> ApiResult {
    let req: Name = input.parse()?;
    r.delete_registered_model(required(&req.name, "name")?, &actor(principal))
        .await?;
    Ok(empty())
}

pub(super) async fn search_registered_models(State(r): St, input: Input) -> ApiResult {
    let req: SearchQuery = input.parse()?;
    let page = r.store().search_registered_models(req).await?;
    let items: Vec<RegisteredModel> = page.items.into_iter().map(public_model).collect();
    Ok(JsonObject::with_capacity(2048)
        .list("registered_models", &items)
        .opt("next_page_token", page.next_page_token.as_ref())
        .finish())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ModelTag {
    name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    version: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

pub(super) async fn set_registered_model_tag(State(r): St, input: Input) -> ApiResult {
    let req: ModelTag = input.parse()?;
    let name = required(&req.name, "name")?;
    let key = required(&req.key, "key")?;
    r.store()
        .set_registered_model_tag(name, key, req.value.as_deref().unwrap_or_default())
        .await?;
    Ok(empty())
}

pub(super) async fn delete_registered_model_tag(State(r): St, input: Input) -> ApiResult {
    let req: ModelTag = input.parse()?;
    let name = required(&req.name, "name")?;
    let key = required(&req.key, "key")?;
    r.store().delete_registered_model_tag(name, key).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LatestVersions {
    name: Option<String>,
    stages: Vec<String>,
}

pub(super) async fn get_latest_versions(State(r): St, input: Input) -> ApiResult {
    let req: LatestVersions = input.parse()?;
    let name = required(&req.name, "name")?;
    let versions = r.store().get_latest_versions(name, &req.stages).await?;
    let versions: Vec<ModelVersion> = versions.into_iter().map(public_version).collect();
    Ok(JsonObject::with_capacity(1024)
        .list("model_versions", &versions)
        .finish())
}

// ---- model versions -------------------------------------------------------------------------

pub(super) async fn create_model_version(
    State(r): St,
    principal: Caller,
    input: Input,
) -> ApiResult {
    let req: CreateModelVersion = input.parse()?;
    let mv = r.create_model_version(req, &actor(principal)).await?;
    Ok(object1("model_version", &public_version(mv)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct VersionRef {
    name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    version: Option<String>,
}

impl VersionRef {
    fn get(&self) -> Result<(&str, &str), super::extract::ApiError> {
        Ok((
            required(&self.name, "name")?,
            required(&self.version, "version")?,
        ))
    }
}

pub(super) async fn get_model_version(State(r): St, input: Input) -> ApiResult {
    let req: VersionRef = input.parse()?;
    let (name, version) = req.get()?;
    let mv = r.store().get_model_version(name, version).await?;
    Ok(object1("model_version", &public_version(mv)))
}

pub(super) async fn update_model_version(State(r): St, input: Input) -> ApiResult {
    let req: Describe = input.parse()?;
    let name = required(&req.name, "name")?;
    let version = required(&req.version, "version")?;
    let mv = r
        .store()
        .update_model_version(name, version, req.description.as_deref())
        .await?;
    Ok(object1("model_version", &public_version(mv)))
}

pub(super) async fn delete_model_version(
    State(r): St,
    principal: Caller,
    input: Input,
) -> ApiResult {
    let req: VersionRef = input.parse()?;
    let (name, version) = req.get()?;
    r.delete_model_version(name, version, &actor(principal))
        .await?;
    Ok(empty())
}

pub(super) async fn search_model_versions(State(r): St, input: Input) -> ApiResult {
    let req: SearchQuery = input.parse()?;
    let page = r.store().search_model_versions(req).await?;
    let items: Vec<ModelVersion> = page.items.into_iter().map(public_version).collect();
    Ok(JsonObject::with_capacity(2048)
        .list("model_versions", &items)
        .opt("next_page_token", page.next_page_token.as_ref())
        .finish())
}

pub(super) async fn get_model_version_download_uri(State(r): St, input: Input) -> ApiResult {
    let req: VersionRef = input.parse()?;
    let (name, version) = req.get()?;
    let uri = r.get_model_version_download_uri(name, version).await?;
    Ok(object1("artifact_uri", &uri))
}

pub(super) async fn set_model_version_tag(State(r): St, input: Input) -> ApiResult {
    let req: ModelTag = input.parse()?;
    let name = required(&req.name, "name")?;
    let version = required(&req.version, "version")?;
    let key = required(&req.key, "key")?;
    r.store()
        .set_model_version_tag(name, version, key, req.value.as_deref().unwrap_or_default())
        .await?;
    Ok(empty())
}

pub(super) async fn delete_model_version_tag(State(r): St, input: Input) -> ApiResult {
    let req: ModelTag = input.parse()?;
    let name = required(&req.name, "name")?;
    let version = required(&req.version, "version")?;
    let key = required(&req.key, "key")?;
    r.store()
        .delete_model_version_tag(name, version, key)
        .await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Transition {
    name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    version: Option<String>,
    stage: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    archive_existing_versions: Option<bool>,
}

pub(super) async fn transition_model_version_stage(State(r): St, input: Input) -> ApiResult {
    let req: Transition = input.parse()?;
    let name = required(&req.name, "name")?;
    let version = required(&req.version, "version")?;
    let stage = required(&req.stage, "stage")?;
    let archive = req
        .archive_existing_versions
        .ok_or_else(|| missing("archive_existing_versions"))?;
    let transition = r
        .transition_model_version_stage(name, version, stage, archive)
        .await?;
    Ok(object1(
        "model_version",
        &public_version(transition.model_version),
    ))
}

// ---- aliases --------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct AliasRequest {
    name: Option<String>,
    alias: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    version: Option<String>,
    reason: Option<String>,
}

/// `POST registered-models/alias`; Cerulean records the caller and the optional `reason`.
pub(super) async fn set_alias(State(r): St, principal: Caller, input: Input) -> ApiResult {
    let req: AliasRequest = input.parse()?;
    let name = required(&req.name, "name")?.to_owned();
    let alias = required(&req.alias, "alias")?.to_owned();
    let version = required(&req.version, "version")?.to_owned();
    r.set_registered_model_alias(
        SetAlias {
            name,
            alias,
            version,
            actor: None,
            reason: req.reason,
        },
        &actor(principal),
    )
    .await?;
    Ok(empty())
}

pub(super) async fn delete_alias(State(r): St, principal: Caller, input: Input) -> ApiResult {
    let req: AliasRequest = input.parse()?;
    let name = required(&req.name, "name")?;
    let alias = required(&req.alias, "alias")?;
    r.delete_registered_model_alias(name, alias, &actor(principal), req.reason.as_deref())
        .await?;
    Ok(empty())
}

pub(super) async fn get_by_alias(State(r): St, input: Input) -> ApiResult {
    let req: AliasRequest = input.parse()?;
    let name = required(&req.name, "name")?;
    let alias = required(&req.alias, "alias")?;
    let mv = r.store().get_model_version_by_alias(name, alias).await?;
    Ok(object1("model_version", &public_version(mv)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AliasHistory {
    name: Option<String>,
    alias: Option<String>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

/// `GET registered-models/alias-history` (Cerulean): the recorded moves of a model's aliases,
/// newest first.
pub(super) async fn alias_history(State(r): St, input: Input) -> ApiResult {
    let req: AliasHistory = input.parse()?;
    let name = required(&req.name, "name")?;
    let page = r
        .store()
        .list_alias_history(
            name,
            req.alias.as_deref().filter(|a| !a.is_empty()),
            req.max_results,
            req.page_token.as_deref().filter(|t| !t.is_empty()),
        )
        .await?;
    Ok(JsonObject::with_capacity(1024)
        .field("events", &page.items)
        .opt("next_page_token", page.next_page_token.as_ref())
        .finish())
}
