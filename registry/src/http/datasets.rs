//! Cerulean's dataset-register routes under `/api/2.0/cerulean/datasets/` (see [`super`]).

use axum::extract::State;
use serde::Deserialize;

use super::extract::{ApiResult, Input, JsonObject, St, object1, required};
use crate::datasets::RegisterDataset;
use crate::entities::json;

pub(super) async fn register(State(r): St, input: Input) -> ApiResult {
    let req: RegisterDataset = input.parse()?;
    let record = r.store().register_dataset(req).await?;
    Ok(object1("dataset", &record))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Get {
    name: Option<String>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    version: Option<i64>,
}

pub(super) async fn get(State(r): St, input: Input) -> ApiResult {
    let req: Get = input.parse()?;
    let record = r
        .store()
        .get_dataset(required(&req.name, "name")?, req.version)
        .await?;
    Ok(object1("dataset", &record))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct List {
    name: Option<String>,
}

pub(super) async fn list(State(r): St, input: Input) -> ApiResult {
    let req: List = input.parse()?;
    let records = r
        .store()
        .list_datasets(req.name.as_deref().filter(|n| !n.is_empty()))
        .await?;
    Ok(JsonObject::with_capacity(4096)
        .field("datasets", &records)
        .finish())
}
