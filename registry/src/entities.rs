//! The registry's entities, whose JSON is MLflow's REST JSON.
//!
//! Field names are the proto names (`mlflow/protos/service.proto`, `model_registry.proto` of
//! MLflow 3.17); ids and model versions are strings; timestamps are milliseconds since the epoch
//! as JSON numbers (MLflow's `message_to_json` turns int64 back into numbers); enums are their
//! names; optional fields that are unset are omitted, and so are empty repeated fields, as
//! protobuf's JSON printer does. Doubles that are NaN or infinite are the strings `"NaN"`,
//! `"Infinity"` and `"-Infinity"`, as in protobuf JSON, and are read back from either form.

use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};

/// `lifecycle_stage` of an active experiment, run or logged model.
pub const LIFECYCLE_ACTIVE: &str = "active";
/// `lifecycle_stage` of a soft-deleted experiment, run or logged model.
pub const LIFECYCLE_DELETED: &str = "deleted";
/// The run tag that holds the run's name.
pub const TAG_RUN_NAME: &str = "mlflow.runName";
/// The run tag that holds the user who started the run.
pub const TAG_USER: &str = "mlflow.user";
/// The dataset-input tag that names the dataset's role (`training`, `eval`, ...).
pub const TAG_DATASET_CONTEXT: &str = "mlflow.data.context";

fn is_false(b: &bool) -> bool {
    !*b
}

/// Serde helpers for MLflow's JSON scalars.
pub mod json {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes a double as protobuf JSON does: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
    pub fn serialize_f64<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v.is_infinite() {
            s.serialize_str(if *v > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            s.serialize_f64(*v)
        }
    }

    /// Reads a double from a number or from a string (`"NaN"`, `"Infinity"`, `"-Infinity"`, or a
    /// decimal), as protobuf's JSON parser accepts.
    pub fn deserialize_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = f64;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a double, or \"NaN\", \"Infinity\", \"-Infinity\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
                match v {
                    "NaN" | "nan" => Ok(f64::NAN),
                    "Infinity" | "inf" => Ok(f64::INFINITY),
                    "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
                    other => other
                        .trim()
                        .parse()
                        .map_err(|_| E::custom(format!("invalid double {other:?}"))),
                }
            }
        }
        d.deserialize_any(V)
    }

    /// Reads an int64 from a number or a decimal string (protobuf JSON writes int64 as strings;
    /// MLflow writes numbers). `null` reads as 0: protobuf's JSON parser, which MLflow's server
    /// uses, takes `null` for an unset field, whose value is the default (e.g. a log-batch metric
    /// sent with `"step": null`, as the `mlflow-client` crate does, is logged at step 0).
    pub fn deserialize_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = i64;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer or a decimal string")
            }
            fn visit_unit<E: de::Error>(self) -> Result<i64, E> {
                Ok(0)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
                Ok(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
                i64::try_from(v).map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
                if v.fract() == 0.0 && v.abs() < 9.2e18 {
                    Ok(v as i64)
                } else {
                    Err(E::custom(format!("{v} is not an integer")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
                v.trim()
                    .parse()
                    .map_err(|_| E::custom(format!("invalid integer {v:?}")))
            }
        }
        d.deserialize_any(V)
    }

    /// [`deserialize_i64`] for an optional field (`null` reads as `None`).
    pub fn deserialize_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        #[derive(serde::Deserialize)]
        struct Wrap(#[serde(deserialize_with = "deserialize_i64")] i64);
        let v: Option<Wrap> = serde::Deserialize::deserialize(d)?;
        Ok(v.map(|w| w.0))
    }

    /// Reads a string from a string or a number (MLflow clients send model versions either way).
    pub fn deserialize_string_or_number<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<String, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = String;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
                Ok(v.to_owned())
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
                Ok(v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

/// A key/value tag (experiment, run, registered model, model version and logged-model tags all
/// share this shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// The tag's key.
    pub key: String,
    /// The tag's value.
    #[serde(default)]
    pub value: String,
}

impl Tag {
    /// A tag from its key and value.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// An experiment's tag.
pub type ExperimentTag = Tag;
/// A run's tag.
pub type RunTag = Tag;
/// A registered model's tag.
pub type RegisteredModelTag = Tag;
/// A model version's tag.
pub type ModelVersionTag = Tag;
/// A logged model's tag.
pub type LoggedModelTag = Tag;
/// A dataset input's tag (`mlflow.data.context`, ...).
pub type InputTag = Tag;

/// A run parameter (write-once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// The parameter's key.
    pub key: String,
    /// The parameter's value.
    #[serde(default)]
    pub value: String,
}

impl Param {
    /// A parameter from its key and value.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Param {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// A logged model's parameter (`LoggedModelParameter`).
pub type LoggedModelParameter = Param;

/// An experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// The id, a decimal string; the default experiment is `"0"`.
    pub experiment_id: String,
    /// The unique name.
    pub name: String,
    /// Where the experiment's artifacts live, e.g. `mlflow-artifacts:/1`.
    pub artifact_location: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
    /// Last update, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<i64>,
    /// Creation, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<i64>,
    /// The experiment's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<ExperimentTag>,
}

/// A run's status (`RunStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Running.
    Running,
    /// Scheduled, not started.
    Scheduled,
    /// Ended successfully.
    Finished,
    /// Ended with a failure.
    Failed,
    /// Killed.
    Killed,
}

impl RunStatus {
    /// The status's name, e.g. `RUNNING`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }

    /// Parses a status name (case-insensitive) or its proto number (1..5).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "RUNNING" | "1" => RunStatus::Running,
            "SCHEDULED" | "2" => RunStatus::Scheduled,
            "FINISHED" | "3" => RunStatus::Finished,
            "FAILED" | "4" => RunStatus::Failed,
            "KILLED" | "5" => RunStatus::Killed,
            _ => {
                return Err(RegistryError::invalid(format!(
                    "Invalid run status '{s}'. Valid values are RUNNING, SCHEDULED, FINISHED, \
                     FAILED, KILLED."
                )));
            }
        })
    }
}

/// A run's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run's id (32 hex digits).
    pub run_id: String,
    /// The same id, under its deprecated name (clients still read it).
    pub run_uuid: String,
    /// The run's name.
    #[serde(default)]
    pub run_name: String,
    /// The experiment's id.
    pub experiment_id: String,
    /// The user who created the run (deprecated in MLflow; the `mlflow.user` tag is read instead).
    #[serde(default)]
    pub user_id: String,
    /// The run's status.
    pub status: RunStatus,
    /// Start, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    /// End, ms since the epoch; absent while the run is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    /// Where the run's artifacts live, e.g. `mlflow-artifacts:/1/<run_id>/artifacts`.
    pub artifact_uri: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
}

/// One value of a metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The metric's key.
    pub key: String,
    /// The value; NaN and ±infinity are kept.
    #[serde(
        serialize_with = "json::serialize_f64",
        deserialize_with = "json::deserialize_f64"
    )]
    pub value: f64,
    /// When it was logged, ms since the epoch.
    #[serde(default, deserialize_with = "json::deserialize_i64")]
    pub timestamp: i64,
    /// The training step.
    #[serde(default, deserialize_with = "json::deserialize_i64")]
    pub step: i64,
    /// The dataset it was computed on (MLflow 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    /// The digest of that dataset (MLflow 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
    /// The logged model it belongs to (MLflow 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// The run it was logged to (set on logged-model metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl Metric {
    /// A metric value with no model or dataset.
    pub fn new(key: impl Into<String>, value: f64, timestamp: i64, step: i64) -> Self {
        Metric {
            key: key.into(),
            value,
            timestamp,
            step,
            dataset_name: None,
            dataset_digest: None,
            model_id: None,
            run_id: None,
        }
    }
}

/// A run's metrics (latest value per key), parameters and tags.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunData {
    /// The latest value of each metric key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// The parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// The tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<RunTag>,
}

/// A dataset (lineage of runs' inputs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// The dataset's name.
    pub name: String,
    /// Its content digest.
    pub digest: String,
    /// The kind of source (`local`, `s3`, `http`, ...).
    pub source_type: String,
    /// The source, as JSON text.
    pub source: String,
    /// Its schema, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Its profile (row counts, ...), as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// A dataset used by a run, with the input's tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInput {
    /// The input's tags, e.g. `mlflow.data.context = training`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<InputTag>,
    /// The dataset.
    pub dataset: Dataset,
}

/// A logged model used as a run's input.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelInput {
    /// The logged model's id.
    pub model_id: String,
}

/// A logged model produced by a run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelOutput {
    /// The logged model's id.
    pub model_id: String,
    /// The step at which it was produced.
    #[serde(default, deserialize_with = "json::deserialize_i64")]
    pub step: i64,
}

/// A run's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunInputs {
    /// Datasets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dataset_inputs: Vec<DatasetInput>,
    /// Logged models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_inputs: Vec<ModelInput>,
}

/// A run's outputs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunOutputs {
    /// Logged models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_outputs: Vec<ModelOutput>,
}

/// A run: metadata, data, inputs and outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Metadata.
    pub info: RunInfo,
    /// Metrics (latest per key), parameters, tags.
    #[serde(default)]
    pub data: RunData,
    /// Datasets and models used.
    #[serde(default)]
    pub inputs: RunInputs,
    /// Models produced; absent on a freshly created run, as MLflow answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<RunOutputs>,
}

/// A model version's stage (deprecated in MLflow in favour of aliases, still called).
pub mod stages {
    /// No stage.
    pub const NONE: &str = "None";
    /// Staging.
    pub const STAGING: &str = "Staging";
    /// Production.
    pub const PRODUCTION: &str = "Production";
    /// Archived.
    pub const ARCHIVED: &str = "Archived";
    /// All stages, in MLflow's order.
    pub const ALL: [&str; 4] = [NONE, STAGING, PRODUCTION, ARCHIVED];

    /// The canonical spelling of a stage name given in any case, or `None` if it is not one.
    pub fn canonical(stage: &str) -> Option<&'static str> {
        ALL.iter()
            .copied()
            .find(|s| s.eq_ignore_ascii_case(stage.trim()))
    }
}

/// An alias of a registered model and the version it points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredModelAlias {
    /// The alias, e.g. `champion`.
    pub alias: String,
    /// The version, a decimal string.
    pub version: String,
}

/// A model version's registration status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ModelVersionStatus {
    /// Being registered.
    PendingRegistration,
    /// Registration failed.
    FailedRegistration,
    /// Ready to use.
    Ready,
}

impl ModelVersionStatus {
    /// The status's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelVersionStatus::PendingRegistration => "PENDING_REGISTRATION",
            ModelVersionStatus::FailedRegistration => "FAILED_REGISTRATION",
            ModelVersionStatus::Ready => "READY",
        }
    }

    /// Parses a status name; unknown names read as `READY`.
    pub fn parse(s: &str) -> Self {
        match s {
            "PENDING_REGISTRATION" => ModelVersionStatus::PendingRegistration,
            "FAILED_REGISTRATION" => ModelVersionStatus::FailedRegistration,
            _ => ModelVersionStatus::Ready,
        }
    }
}

/// A version of a registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// The registered model's name.
    pub name: String,
    /// The version number, a decimal string (`"1"`, `"2"`, ...).
    pub version: String,
    /// Creation, ms since the epoch.
    pub creation_timestamp: i64,
    /// Last update, ms since the epoch.
    pub last_updated_timestamp: i64,
    /// Who created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `None`, `Staging`, `Production` or `Archived`.
    pub current_stage: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the model's files are (`mlflow-artifacts:/...`, `models:/m-...`, `s3://...`).
    pub source: String,
    /// The run that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Registration status; always `READY` here (registration is synchronous).
    pub status: ModelVersionStatus,
    /// A message about the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// The version's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<ModelVersionTag>,
    /// A link to the run (may be empty).
    #[serde(default)]
    pub run_link: String,
    /// The aliases that point at this version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The MLflow 3 logged model this version was registered from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    /// The unique name.
    pub name: String,
    /// Creation, ms since the epoch.
    pub creation_timestamp: i64,
    /// Last update, ms since the epoch.
    pub last_updated_timestamp: i64,
    /// Who created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The latest version in each stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latest_versions: Vec<ModelVersion>,
    /// The model's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<RegisteredModelTag>,
    /// The model's aliases, each with its version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<RegisteredModelAlias>,
}

/// A logged model's status (`LoggedModelStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LoggedModelStatus {
    /// Unspecified (never stored).
    #[serde(rename = "LOGGED_MODEL_STATUS_UNSPECIFIED")]
    Unspecified,
    /// Created; its files are being uploaded.
    #[serde(rename = "LOGGED_MODEL_PENDING")]
    Pending,
    /// Finalized: its files are all there.
    #[serde(rename = "LOGGED_MODEL_READY")]
    Ready,
    /// The upload failed.
    #[serde(rename = "LOGGED_MODEL_UPLOAD_FAILED")]
    UploadFailed,
}

impl LoggedModelStatus {
    /// The proto enum number (as stored).
    pub fn to_i64(self) -> i64 {
        match self {
            LoggedModelStatus::Unspecified => 0,
            LoggedModelStatus::Pending => 1,
            LoggedModelStatus::Ready => 2,
            LoggedModelStatus::UploadFailed => 3,
        }
    }

    /// From the proto enum number.
    pub fn from_i64(v: i64) -> Self {
        match v {
            1 => LoggedModelStatus::Pending,
            2 => LoggedModelStatus::Ready,
            3 => LoggedModelStatus::UploadFailed,
            _ => LoggedModelStatus::Unspecified,
        }
    }

    /// The proto name, e.g. `LOGGED_MODEL_READY`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoggedModelStatus::Unspecified => "LOGGED_MODEL_STATUS_UNSPECIFIED",
            LoggedModelStatus::Pending => "LOGGED_MODEL_PENDING",
            LoggedModelStatus::Ready => "LOGGED_MODEL_READY",
            LoggedModelStatus::UploadFailed => "LOGGED_MODEL_UPLOAD_FAILED",
        }
    }

    /// Parses the proto name, the short names MLflow's Python entity uses (`PENDING`, `READY`,
    /// `FAILED`), or the proto number.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "LOGGED_MODEL_PENDING" | "PENDING" | "1" => LoggedModelStatus::Pending,
            "LOGGED_MODEL_READY" | "READY" | "2" => LoggedModelStatus::Ready,
            "LOGGED_MODEL_UPLOAD_FAILED" | "UPLOAD_FAILED" | "FAILED" | "3" => {
                LoggedModelStatus::UploadFailed
            }
            _ => {
                return Err(RegistryError::invalid(format!(
                    "Invalid logged model status '{s}'."
                )));
            }
        })
    }
}

/// A logged model's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModelInfo {
    /// `m-` and 32 hex digits.
    pub model_id: String,
    /// The experiment's id.
    pub experiment_id: String,
    /// The model's name (not unique).
    pub name: String,
    /// Creation, ms since the epoch.
    pub creation_timestamp_ms: i64,
    /// Last update, ms since the epoch.
    pub last_updated_timestamp_ms: i64,
    /// Where its files are: `<experiment artifact location>/models/<model_id>/artifacts`.
    pub artifact_uri: String,
    /// Pending, ready or failed.
    pub status: LoggedModelStatus,
    /// The flavor or kind, free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// The run that logged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_run_id: Option<String>,
    /// A message about the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// The model's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<LoggedModelTag>,
}

/// A logged model's parameters and metrics.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LoggedModelData {
    /// Parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<LoggedModelParameter>,
    /// Metrics logged with this model's id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

/// An MLflow 3 logged model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModel {
    /// Metadata.
    pub info: LoggedModelInfo,
    /// Parameters and metrics.
    #[serde(default)]
    pub data: LoggedModelData,
}

/// One move of an alias (Cerulean's extension): set, moved, or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasEvent {
    /// The event's id; increases with every recorded move.
    pub id: i64,
    /// The registered model's name at the time of the move.
    pub name: String,
    /// The alias.
    pub alias: String,
    /// The version it pointed at before; absent when the alias was new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    /// The version it points at after; absent when the alias was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_version: Option<String>,
    /// Who moved it (an API key's name, a user, `anonymous`).
    pub actor: String,
    /// Why, in the mover's words (may be empty).
    #[serde(default)]
    pub reason: String,
    /// When, ms since the epoch.
    pub timestamp: i64,
    /// Whether the move was a side effect of deleting the version or the model.
    #[serde(default, skip_serializing_if = "is_false")]
    pub implicit: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metric_json_keeps_nan_and_infinity() {
        let mut m = Metric::new("loss", f64::NAN, 5, 1);
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"key": "loss", "value": "NaN", "timestamp": 5, "step": 1})
        );
        m.value = f64::NEG_INFINITY;
        assert_eq!(serde_json::to_value(&m).unwrap()["value"], "-Infinity");
        let back: Metric =
            serde_json::from_value(json!({"key": "a", "value": "Infinity", "timestamp": "7"}))
                .unwrap();
        assert!(back.value.is_infinite() && back.value > 0.0);
        assert_eq!(back.timestamp, 7);
        assert_eq!(back.step, 0);
        let n: Metric = serde_json::from_value(json!({"key": "a", "value": 1})).unwrap();
        assert_eq!(n.value, 1.0);
        // `null` is an unset field, as protobuf's JSON parser reads it.
        let null: Metric =
            serde_json::from_value(json!({"key": "a", "value": 2, "timestamp": 9, "step": null}))
                .unwrap();
        assert_eq!((null.timestamp, null.step), (9, 0));
    }

    #[test]
    fn run_json_has_mlflow_field_names() {
        let run = Run {
            info: RunInfo {
                run_id: "abc".into(),
                run_uuid: "abc".into(),
                run_name: "r1".into(),
                experiment_id: "0".into(),
                user_id: String::new(),
                status: RunStatus::Running,
                start_time: Some(1),
                end_time: None,
                artifact_uri: "mlflow-artifacts:/0/abc/artifacts".into(),
                lifecycle_stage: "active".into(),
            },
            data: RunData {
                tags: vec![Tag::new(TAG_RUN_NAME, "r1")],
                ..Default::default()
            },
            inputs: RunInputs::default(),
            outputs: None,
        };
        let v = serde_json::to_value(&run).unwrap();
        assert_eq!(
            v,
            json!({
                "info": {"run_id": "abc", "run_uuid": "abc", "run_name": "r1",
                         "experiment_id": "0", "user_id": "", "status": "RUNNING",
                         "start_time": 1, "artifact_uri": "mlflow-artifacts:/0/abc/artifacts",
                         "lifecycle_stage": "active"},
                "data": {"tags": [{"key": "mlflow.runName", "value": "r1"}]},
                "inputs": {}
            })
        );
    }

    #[test]
    fn registry_json_shapes() {
        let mv = ModelVersion {
            name: "m".into(),
            version: "1".into(),
            creation_timestamp: 1,
            last_updated_timestamp: 2,
            user_id: None,
            current_stage: stages::NONE.into(),
            description: Some(String::new()),
            source: "s3://b/m".into(),
            run_id: None,
            status: ModelVersionStatus::Ready,
            status_message: None,
            tags: vec![],
            run_link: String::new(),
            aliases: vec!["champion".into()],
            model_id: None,
        };
        let v = serde_json::to_value(&mv).unwrap();
        assert_eq!(v["version"], "1");
        assert_eq!(v["status"], "READY");
        assert_eq!(v["current_stage"], "None");
        assert_eq!(v["aliases"], json!(["champion"]));
        assert_eq!(v["run_link"], "");
        assert!(v.get("run_id").is_none());
        let lm = LoggedModelStatus::Ready;
        assert_eq!(serde_json::to_value(lm).unwrap(), "LOGGED_MODEL_READY");
        assert_eq!(LoggedModelStatus::parse("READY").unwrap(), lm);
        assert_eq!(stages::canonical("production"), Some("Production"));
    }
}
