//! MLflow's validation rules (`mlflow/utils/validation.py` of 3.17): name characters, length
//! limits and batch limits. Each refusal is `INVALID_PARAMETER_VALUE` and names the limit.

use crate::entities::{Metric, Param, RunTag};
use crate::error::{RegistryError, Result};

/// Most metrics in one `log-batch`.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// Most params, and most tags, in one `log-batch`.
pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
/// Most metrics, params and tags together in one `log-batch`.
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
/// Largest `log-batch` request body, in bytes (for the HTTP edge).
pub const MAX_BATCH_LOG_REQUEST_SIZE: usize = 1_000_000;
/// Longest metric, param or tag key.
pub const MAX_ENTITY_KEY_LENGTH: usize = 250;
/// Longest param value.
pub const MAX_PARAM_VAL_LENGTH: usize = 6000;
/// Longest run tag value (MLflow 3.17's `MAX_TAG_VAL_LENGTH`).
pub const MAX_TAG_VAL_LENGTH: usize = 8000;
/// Longest experiment name.
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
/// Longest experiment tag value.
pub const MAX_EXPERIMENT_TAG_VAL_LENGTH: usize = 20000;
/// Longest registered model / model version tag key.
pub const MAX_MODEL_REGISTRY_TAG_KEY_LENGTH: usize = 250;
/// Longest registered model / model version tag value.
pub const MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH: usize = 100_000;
/// Longest alias name.
pub const MAX_REGISTERED_MODEL_ALIAS_LENGTH: usize = 255;
/// Longest dataset name.
pub const MAX_DATASET_NAME_SIZE: usize = 500;
/// Longest dataset digest.
pub const MAX_DATASET_DIGEST_SIZE: usize = 36;
/// Longest dataset source.
pub const MAX_DATASET_SOURCE_SIZE: usize = 65535;
/// Longest dataset schema.
pub const MAX_DATASET_SCHEMA_SIZE: usize = 1_048_575;
/// Longest dataset profile.
pub const MAX_DATASET_PROFILE_SIZE: usize = 16_777_215;
/// Longest input tag key.
pub const MAX_INPUT_TAG_KEY_SIZE: usize = 255;
/// Longest input tag value.
pub const MAX_INPUT_TAG_VALUE_SIZE: usize = 500;
/// Most results of one search page of runs.
pub const MAX_RUNS_PER_PAGE: i64 = 50_000;
/// Most results of one search page of experiments.
pub const MAX_EXPERIMENTS_PER_PAGE: i64 = 50_000;
/// Most results of one search page of registered models.
pub const MAX_REGISTERED_MODELS_PER_PAGE: i64 = 1000;
/// Most results of one search page of model versions.
pub const MAX_MODEL_VERSIONS_PER_PAGE: i64 = 200_000;

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// "Invalid value "x" for parameter 'p' supplied." plus a hint.
fn invalid_value(path: &str, value: &str, hint: &str) -> RegistryError {
    let mut msg = format!(
        "Invalid value {} for parameter '{path}' supplied.",
        json_str(value)
    );
    if !hint.is_empty() {
        msg.push(' ');
        msg.push_str(hint);
    }
    RegistryError::invalid(msg)
}

/// Refuses a value longer than `limit` characters, naming the limit.
pub fn check_length(entity: &str, limit: usize, value: &str) -> Result<()> {
    if value.chars().count() > limit {
        return Err(RegistryError::invalid(format!(
            "'{entity}' exceeds the maximum length of {limit} characters"
        )));
    }
    Ok(())
}

/// POSIX `normpath`, as Python's `posixpath.normpath`.
fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let initial_slashes = if path.starts_with("//") && !path.starts_with("///") {
        2
    } else if path.starts_with('/') {
        1
    } else {
        0
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp != ".." || (initial_slashes == 0 && parts.is_empty()) || parts.last() == Some(&"..")
        {
            parts.push(comp);
        } else if !parts.is_empty() {
            parts.pop();
        }
    }
    let mut out = "/".repeat(initial_slashes);
    out.push_str(&parts.join("/"));
    if out.is_empty() { ".".into() } else { out }
}

fn path_not_unique(name: &str) -> bool {
    let norm = normpath(name);
    norm != name || norm == "." || norm.starts_with("..") || norm.starts_with('/')
}

fn valid_name_chars(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | ':' | '/'))
}

const BAD_CHARS: &str = "Names may only contain alphanumerics, underscores (_), dashes (-), \
                         periods (.), spaces ( ), colon(:) and slashes (/).";

/// A metric, param or tag key: allowed characters, not a path that normalizes to something
/// else, not empty.
pub fn validate_key(kind: &str, path: &str, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(invalid_value(
            path,
            key,
            &format!("{kind} name cannot be empty."),
        ));
    }
    if !valid_name_chars(key) {
        return Err(invalid_value(path, key, BAD_CHARS));
    }
    if path_not_unique(key) {
        return Err(invalid_value(
            path,
            key,
            &format!(
                "Names cannot be a path that resolves to another name (normalized: '{}').",
                normpath(key)
            ),
        ));
    }
    check_length(&format!("{kind} key"), MAX_ENTITY_KEY_LENGTH, key)
}

/// A metric: key rules, non-negative timestamp.
pub fn validate_metric(m: &Metric, path: &str) -> Result<()> {
    validate_key("Metric", &join_path(path, "key"), &m.key)?;
    if m.timestamp < 0 {
        return Err(invalid_value(
            &join_path(path, "timestamp"),
            &m.timestamp.to_string(),
            "Timestamp must be a nonnegative long (64-bit integer).",
        ));
    }
    Ok(())
}

/// A run parameter: key rules, value at most [`MAX_PARAM_VAL_LENGTH`].
pub fn validate_param(p: &Param, path: &str) -> Result<()> {
    validate_key("Param", &join_path(path, "key"), &p.key)?;
    check_length("Param value", MAX_PARAM_VAL_LENGTH, &p.value)
}

/// A run tag: key rules, value at most [`MAX_TAG_VAL_LENGTH`].
pub fn validate_run_tag(t: &RunTag, path: &str) -> Result<()> {
    validate_key("Tag", &join_path(path, "key"), &t.key)?;
    check_length("Tag value", MAX_TAG_VAL_LENGTH, &t.value)
}

/// An experiment tag.
pub fn validate_experiment_tag(key: &str, value: &str) -> Result<()> {
    validate_key("Tag", "key", key)?;
    check_length("value", MAX_EXPERIMENT_TAG_VAL_LENGTH, value)
}

/// A registered model or model version tag.
pub fn validate_registry_tag(key: &str, value: &str) -> Result<()> {
    validate_key("Tag", "key", key)?;
    check_length("key", MAX_MODEL_REGISTRY_TAG_KEY_LENGTH, key)?;
    check_length("value", MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH, value)
}

fn join_path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

fn batch_limit(entity: &str, limit: usize, len: usize) -> Result<()> {
    if len > limit {
        return Err(RegistryError::invalid(format!(
            "A batch logging request can contain at most {limit} {entity}. Got {len} {entity}. \
             Please split up {entity} across multiple requests and try again."
        )));
    }
    Ok(())
}

/// The whole of a `log-batch`: counts, every entity, and no repeated param key.
pub fn validate_batch(metrics: &[Metric], params: &[Param], tags: &[RunTag]) -> Result<()> {
    batch_limit("metrics", MAX_METRICS_PER_BATCH, metrics.len())?;
    batch_limit("params", MAX_PARAMS_TAGS_PER_BATCH, params.len())?;
    batch_limit("tags", MAX_PARAMS_TAGS_PER_BATCH, tags.len())?;
    batch_limit(
        "metrics, params, and tags",
        MAX_ENTITIES_PER_BATCH,
        metrics.len() + params.len() + tags.len(),
    )?;
    for (i, m) in metrics.iter().enumerate() {
        validate_metric(m, &format!("metrics[{i}]"))?;
    }
    for (i, p) in params.iter().enumerate() {
        validate_param(p, &format!("params[{i}]"))?;
    }
    for (i, t) in tags.iter().enumerate() {
        validate_run_tag(t, &format!("tags[{i}]"))?;
    }
    let mut seen = std::collections::HashSet::new();
    let mut dupes = Vec::new();
    for p in params {
        if !seen.insert(p.key.as_str()) {
            dupes.push(p.key.clone());
        }
    }
    if !dupes.is_empty() {
        return Err(RegistryError::invalid(format!(
            "Duplicate parameter keys have been submitted: {dupes:?}. Please ensure the request \
             contains only one param value per param key."
        )));
    }
    Ok(())
}

/// An experiment name: non-empty, at most [`MAX_EXPERIMENT_NAME_LENGTH`].
pub fn validate_experiment_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(RegistryError::invalid(format!(
            "Invalid experiment name: '{name}'"
        )));
    }
    check_length("name", MAX_EXPERIMENT_NAME_LENGTH, name)
}

/// A registered model name: non-empty, no `/` or `:`, not a path that normalizes elsewhere.
pub fn validate_model_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(RegistryError::invalid(
            "Missing value for required parameter 'name'.",
        ));
    }
    if name.contains('/') || name.contains(':') {
        return Err(RegistryError::invalid(format!(
            "Invalid model name '{name}'. Names cannot contain '/' or ':'."
        )));
    }
    if path_not_unique(name) {
        return Err(invalid_value(
            "name",
            name,
            "Names cannot be a path that resolves to another name.",
        ));
    }
    Ok(())
}

/// A model version number given as text: a positive decimal integer.
pub fn parse_version(version: &str) -> Result<i64> {
    match version.trim().parse::<i64>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(RegistryError::invalid(format!(
            "Parameter 'version' must be an integer, got '{version}'."
        ))),
    }
}

/// An alias name: `[A-Za-z0-9_-]+`, at most 255 characters, not `latest`, not `v<digits>`.
pub fn validate_alias(alias: &str) -> Result<()> {
    if alias.is_empty() {
        return Err(RegistryError::invalid(
            "Registered model alias name cannot be empty.",
        ));
    }
    if !alias
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(RegistryError::invalid(format!(
            "Invalid alias name: '{alias}'. Names may only contain alphanumerics, underscores \
             (_), and dashes (-)."
        )));
    }
    check_length(
        "Registered model alias name",
        MAX_REGISTERED_MODEL_ALIAS_LENGTH,
        alias,
    )?;
    if alias.eq_ignore_ascii_case("latest") {
        return Err(RegistryError::invalid(
            "'latest' alias name (case insensitive) is reserved.",
        ));
    }
    let mut chars = alias.chars();
    if matches!(chars.next(), Some('v' | 'V'))
        && alias.len() > 1
        && chars.all(|c| c.is_ascii_digit())
    {
        return Err(RegistryError::invalid(format!(
            "Version alias name '{alias}' is reserved."
        )));
    }
    Ok(())
}

/// A logged model name: non-empty, none of `/ : . % " '`.
pub fn validate_logged_model_name(name: &str) -> Result<()> {
    const BAD: [char; 6] = ['/', ':', '.', '%', '"', '\''];
    if name.is_empty() || name.contains(BAD) {
        return Err(RegistryError::invalid(format!(
            "Invalid model name ('{name}') provided. Model name must be a non-empty string and \
             cannot contain the following characters: ('/', ':', '.', '%', '\"', \"'\")"
        )));
    }
    Ok(())
}

/// A dataset input: required fields and sizes.
pub fn validate_dataset_input(input: &crate::entities::DatasetInput) -> Result<()> {
    let d = &input.dataset;
    check_length("name", MAX_DATASET_NAME_SIZE, &d.name)?;
    check_length("digest", MAX_DATASET_DIGEST_SIZE, &d.digest)?;
    check_length("source", MAX_DATASET_SOURCE_SIZE, &d.source)?;
    if let Some(s) = &d.schema {
        check_length("schema", MAX_DATASET_SCHEMA_SIZE, s)?;
    }
    if let Some(p) = &d.profile {
        check_length("profile", MAX_DATASET_PROFILE_SIZE, p)?;
    }
    for t in &input.tags {
        check_length("key", MAX_INPUT_TAG_KEY_SIZE, &t.key)?;
        check_length("value", MAX_INPUT_TAG_VALUE_SIZE, &t.value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for ok in ["loss", "train/loss", "a.b-c_d e:f", "ümlaut"] {
            validate_key("Metric", "key", ok).unwrap();
        }
        for bad in [
            "", "a//b", "./a", "a/", "/a", "..", "a/../b", "bad$", "x\"y",
        ] {
            assert!(validate_key("Metric", "key", bad).is_err(), "{bad}");
        }
        assert!(validate_key("Metric", "key", &"k".repeat(251)).is_err());
    }

    #[test]
    fn batch_limits() {
        let m = Metric::new("m", 1.0, 0, 0);
        let many: Vec<Metric> = (0..1001).map(|_| m.clone()).collect();
        let err = validate_batch(&many, &[], &[]).unwrap_err();
        assert!(err.to_string().contains("at most 1000 metrics"), "{err}");
        let params: Vec<Param> = (0..101).map(|i| Param::new(format!("p{i}"), "v")).collect();
        assert!(validate_batch(&[], &params, &[]).is_err());
        let total: Vec<Metric> = (0..950).map(|_| m.clone()).collect();
        let p100: Vec<Param> = (0..100).map(|i| Param::new(format!("p{i}"), "v")).collect();
        let err = validate_batch(&total, &p100, &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("at most 1000 metrics, params, and tags")
        );
        let long = Param::new("p", "x".repeat(6001));
        assert!(validate_batch(&[], &[long], &[]).is_err());
        let ok = Param::new("p", "x".repeat(6000));
        validate_batch(&[], &[ok], &[]).unwrap();
        let dup = [Param::new("p", "1"), Param::new("p", "1")];
        assert!(validate_batch(&[], &dup, &[]).is_err());
    }

    #[test]
    fn aliases_and_versions() {
        validate_alias("champion").unwrap();
        validate_alias("v1beta").unwrap();
        for bad in ["", "latest", "LATEST", "v1", "V22", "a b", "x/y"] {
            assert!(validate_alias(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_version("3").unwrap(), 3);
        assert!(parse_version("x").is_err());
        assert!(parse_version("0").is_err());
    }
}
