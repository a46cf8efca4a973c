//! Model configuration: Triton's `config.pbtxt` completed from the model file the way Triton's
//! auto-complete does, then turned into the settings the server runs with.

use std::time::Duration;

use cerulean_proto::inference::{
    ModelConfig, ModelDynamicBatching, ModelInput, ModelOutput, ModelParameter, ModelVersionPolicy,
    model_config, model_version_policy,
};

use crate::backend::{BackendOptions, ModelBackend};
use crate::datatype::DataType;
use crate::error::{Result, ServingError};
use crate::scheduler::BatchingPolicy;
use crate::signature::{Signature, TensorSpec};

/// Server-wide defaults applied where a model's configuration is silent.
#[derive(Debug, Clone)]
pub struct ModelDefaults {
    /// `max_batch_size` given to a model that can batch and whose configuration names none.
    pub max_batch_size: usize,
    /// Queue capacity when the configuration sets no `max_queue_size`.
    pub queue_capacity: usize,
    /// Instances per model when the configuration has no `instance_group`.
    pub instance_count: usize,
    /// Backend options (threads, runtime library).
    pub backend: BackendOptions,
}

impl Default for ModelDefaults {
    fn default() -> Self {
        ModelDefaults {
            max_batch_size: 32,
            queue_capacity: 1024,
            instance_count: 1,
            backend: BackendOptions::default(),
        }
    }
}

/// What the server runs a model version with, derived from its completed configuration.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// The inputs and outputs; for a batching model the dims exclude the batch dimension.
    pub signature: Signature,
    /// Triton's `max_batch_size`: 0 when the model does not batch.
    pub max_batch_size: usize,
    /// How requests are queued and combined.
    pub batching: BatchingPolicy,
    /// Model instances running in parallel.
    pub instance_count: usize,
}

/// The backend options a configuration asks for, using the parameter names of Triton's ONNX Runtime
/// backend (`intra_op_thread_count`, `inter_op_thread_count`) and `allow_spinning`.
pub fn backend_options(config: &ModelConfig, defaults: &ModelDefaults) -> Result<BackendOptions> {
    let mut options = defaults.backend.clone();
    let threads = |key: &str| -> Result<Option<usize>> {
        config
            .parameters
            .get(key)
            .map(|p| {
                p.string_value.trim().parse::<usize>().map_err(|_| {
                    ServingError::Unavailable(format!(
                        "parameter '{key}' must be a whole number, not '{}'",
                        p.string_value
                    ))
                })
            })
            .transpose()
    };
    if let Some(n) = threads("intra_op_thread_count")? {
        options.intra_op_threads = n.max(1);
    }
    if let Some(n) = threads("inter_op_thread_count")? {
        options.inter_op_threads = n.max(1);
    }
    if let Some(p) = config.parameters.get("allow_spinning") {
        options.allow_spinning = match p.string_value.trim() {
            "1" | "true" | "on" => true,
            "0" | "false" | "off" => false,
            other => {
                return Err(ServingError::Unavailable(format!(
                    "parameter 'allow_spinning' must be true or false, not '{other}'"
                )));
            }
        };
    }
    Ok(options)
}

/// Completes `config` from the loaded model and derives the settings to serve it with.
///
/// Like Triton: a missing name, platform, backend, input or output is filled in from the model; a
/// model whose inputs and outputs all start with a dynamic dimension gets `max_batch_size` from the
/// defaults and dynamic batching; inputs and outputs the configuration names must exist in the model
/// with the same datatype and compatible dims.
pub fn complete(
    mut config: ModelConfig,
    name: &str,
    backend: &dyn ModelBackend,
    defaults: &ModelDefaults,
) -> Result<(ModelConfig, ModelSettings)> {
    let invalid = |msg: String| {
        ServingError::Unavailable(format!("invalid configuration for '{name}': {msg}"))
    };
    if config.name.is_empty() {
        config.name = name.to_string();
    } else if config.name != name {
        return Err(invalid(format!(
            "the configuration names model '{}' but its directory is '{name}'",
            config.name
        )));
    }
    if config.platform.is_empty() {
        config.platform = backend.platform().to_string();
    }
    if config.backend.is_empty() {
        config.backend = backend.backend_name().to_string();
    }
    for (key, value) in backend.parameters() {
        config.parameters.entry(key).or_insert(ModelParameter {
            string_value: value,
        });
    }
    if config.version_policy.is_none() {
        config.version_policy = Some(ModelVersionPolicy {
            policy_choice: Some(model_version_policy::PolicyChoice::Latest(
                model_version_policy::Latest { num_versions: 1 },
            )),
        });
    }
    if config.max_batch_size < 0 {
        return Err(invalid("max_batch_size must not be negative".to_string()));
    }
    let natural = backend.natural_signature();
    if config.max_batch_size == 0 && natural.supports_batching() && defaults.max_batch_size > 0 {
        config.max_batch_size = defaults.max_batch_size as i32;
        if config.scheduling_choice.is_none() {
            config.scheduling_choice = Some(model_config::SchedulingChoice::DynamicBatching(
                ModelDynamicBatching::default(),
            ));
        }
    }
    let max_batch_size = config.max_batch_size as usize;
    if max_batch_size > 0 && !natural.supports_batching() {
        return Err(invalid(format!(
            "max_batch_size is {max_batch_size} but the model's inputs and outputs do not all start with a \
             dynamic batch dimension"
        )));
    }
    let strip = |spec: &TensorSpec| -> Vec<i64> {
        if max_batch_size > 0 {
            spec.dims[1..].to_vec()
        } else {
            spec.dims.clone()
        }
    };

    let mut inputs = Vec::with_capacity(natural.inputs.len());
    for spec in &natural.inputs {
        let dims = strip(spec);
        let configured = config.input.iter().find(|i| i.name == spec.name);
        let dims = match configured {
            Some(input) => {
                check_tensor(
                    &spec.name,
                    spec.datatype,
                    &dims,
                    input.data_type,
                    &input.dims,
                    input.reshape.is_some(),
                )
                .map_err(invalid)?;
                input.dims.clone()
            }
            None => {
                config.input.push(ModelInput {
                    name: spec.name.clone(),
                    data_type: spec.datatype.config_value(),
                    dims: dims.clone(),
                    ..Default::default()
                });
                dims
            }
        };
        inputs.push(TensorSpec::new(spec.name.clone(), spec.datatype, dims));
    }
    if let Some(extra) = config
        .input
        .iter()
        .find(|i| natural.input(&i.name).is_none())
    {
        return Err(invalid(format!("the model has no input '{}'", extra.name)));
    }

    let mut outputs = Vec::with_capacity(natural.outputs.len());
    for spec in &natural.outputs {
        let dims = strip(spec);
        let configured = config.output.iter().find(|o| o.name == spec.name);
        let dims = match configured {
            Some(output) => {
                check_tensor(
                    &spec.name,
                    spec.datatype,
                    &dims,
                    output.data_type,
                    &output.dims,
                    output.reshape.is_some(),
                )
                .map_err(invalid)?;
                output.dims.clone()
            }
            None => {
                config.output.push(ModelOutput {
                    name: spec.name.clone(),
                    data_type: spec.datatype.config_value(),
                    dims: dims.clone(),
                    ..Default::default()
                });
                dims
            }
        };
        outputs.push(TensorSpec::new(spec.name.clone(), spec.datatype, dims));
    }
    if let Some(extra) = config
        .output
        .iter()
        .find(|o| natural.output(&o.name).is_none())
    {
        return Err(invalid(format!("the model has no output '{}'", extra.name)));
    }

    let dynamic = match &config.scheduling_choice {
        Some(model_config::SchedulingChoice::DynamicBatching(d)) => Some(d.clone()),
        Some(model_config::SchedulingChoice::SequenceBatching(_)) => {
            return Err(invalid("sequence batching is not supported".to_string()));
        }
        Some(model_config::SchedulingChoice::EnsembleScheduling(_)) => {
            return Err(invalid("ensembles are not supported".to_string()));
        }
        None => None,
    };
    let queue_capacity = dynamic
        .as_ref()
        .and_then(|d| d.default_queue_policy.as_ref())
        .map(|q| q.max_queue_size as usize)
        .filter(|&n| n > 0)
        .unwrap_or(defaults.queue_capacity);
    let batching = BatchingPolicy {
        max_batch_size: if dynamic.is_some() { max_batch_size } else { 0 },
        max_queue_delay: Duration::from_micros(
            dynamic
                .as_ref()
                .map_or(0, |d| d.max_queue_delay_microseconds),
        ),
        preferred_batch_sizes: dynamic
            .as_ref()
            .map(|d| {
                d.preferred_batch_size
                    .iter()
                    .map(|&p| p.max(0) as usize)
                    .collect()
            })
            .unwrap_or_default(),
        queue_capacity,
    };
    let configured_instances: i64 = config
        .instance_group
        .iter()
        .map(|g| i64::from(g.count.max(1)))
        .sum();
    let instance_count = if config.instance_group.is_empty() {
        defaults.instance_count.max(1)
    } else {
        usize::try_from(configured_instances).unwrap_or(1).max(1)
    };
    let settings = ModelSettings {
        signature: Signature { inputs, outputs },
        max_batch_size,
        batching,
        instance_count,
    };
    Ok((config, settings))
}

/// Checks a configured tensor against the model's.
fn check_tensor(
    name: &str,
    model_type: DataType,
    model_dims: &[i64],
    config_type: i32,
    config_dims: &[i64],
    reshaped: bool,
) -> std::result::Result<(), String> {
    if reshaped {
        return Err(format!("tensor '{name}': reshape is not supported"));
    }
    let config_type = DataType::from_config_value(config_type)
        .ok_or_else(|| format!("tensor '{name}': data_type {config_type} is not a valid type"))?;
    if config_type != model_type {
        return Err(format!(
            "tensor '{name}': the configuration says {config_type} but the model has {model_type}"
        ));
    }
    let compatible = config_dims.len() == model_dims.len()
        && config_dims
            .iter()
            .zip(model_dims)
            .all(|(&c, &m)| m < 0 || c == m);
    if !compatible {
        return Err(format!(
            "tensor '{name}': dims {config_dims:?} do not fit the model's {model_dims:?}"
        ));
    }
    Ok(())
}

/// The versions a policy serves, out of those present, highest first.
pub fn select_versions(policy: Option<&ModelVersionPolicy>, available: &[u64]) -> Vec<u64> {
    let mut sorted: Vec<u64> = available.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    match policy.and_then(|p| p.policy_choice.as_ref()) {
        Some(model_version_policy::PolicyChoice::All(_)) => sorted,
        Some(model_version_policy::PolicyChoice::Specific(s)) => sorted
            .into_iter()
            .filter(|v| s.versions.iter().any(|&w| u64::try_from(w) == Ok(*v)))
            .collect(),
        Some(model_version_policy::PolicyChoice::Latest(l)) => sorted
            .into_iter()
            .take(l.num_versions.max(1) as usize)
            .collect(),
        None => sorted.into_iter().take(1).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendInstance;
    use cerulean_proto::model_config::parse_pbtxt;

    struct Fake(Signature);

    impl ModelBackend for Fake {
        fn platform(&self) -> &'static str {
            "onnxruntime_onnx"
        }
        fn backend_name(&self) -> &'static str {
            "onnxruntime"
        }
        fn natural_signature(&self) -> &Signature {
            &self.0
        }
        fn create_instance(&self) -> Result<Box<dyn BackendInstance>> {
            Err(ServingError::Internal("not needed".into()))
        }
    }

    fn batchable() -> Fake {
        Fake(Signature {
            inputs: vec![TensorSpec::new("INPUT0", DataType::Fp32, vec![-1, 16])],
            outputs: vec![TensorSpec::new("OUTPUT0", DataType::Fp32, vec![-1, 4])],
        })
    }

    #[test]
    fn an_absent_config_is_completed_from_the_model() {
        let (config, settings) = complete(
            ModelConfig::default(),
            "mlp",
            &batchable(),
            &ModelDefaults::default(),
        )
        .unwrap();
        assert_eq!(config.name, "mlp");
        assert_eq!(config.platform, "onnxruntime_onnx");
        assert_eq!(config.max_batch_size, 32);
        assert_eq!(config.input[0].dims, vec![16]);
        assert_eq!(config.input[0].data_type, DataType::Fp32.config_value());
        assert!(matches!(
            config.scheduling_choice,
            Some(model_config::SchedulingChoice::DynamicBatching(_))
        ));
        assert_eq!(settings.signature.inputs[0].dims, vec![16]);
        assert_eq!(settings.batching.max_batch_size, 32);
        assert_eq!(settings.instance_count, 1);
    }

    #[test]
    fn a_written_config_is_honoured() {
        let config = parse_pbtxt(
            r#"name: "mlp" max_batch_size: 8
               input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
               dynamic_batching { max_queue_delay_microseconds: 500 preferred_batch_size: [ 4 ]
                                  default_queue_policy { max_queue_size: 7 } }
               instance_group [ { count: 2 kind: KIND_CPU } ]
               parameters { key: "intra_op_thread_count" value: { string_value: "2" } }
               parameters { key: "allow_spinning" value: { string_value: "true" } }"#,
        )
        .unwrap();
        let options = backend_options(&config, &ModelDefaults::default()).unwrap();
        assert_eq!(options.intra_op_threads, 2);
        assert!(options.allow_spinning);
        let (config, settings) =
            complete(config, "mlp", &batchable(), &ModelDefaults::default()).unwrap();
        assert_eq!(
            config.output[0].name, "OUTPUT0",
            "the missing output is filled in"
        );
        assert_eq!(settings.max_batch_size, 8);
        assert_eq!(
            settings.batching.max_queue_delay,
            Duration::from_micros(500)
        );
        assert_eq!(settings.batching.preferred_batch_sizes, vec![4]);
        assert_eq!(settings.batching.queue_capacity, 7);
        assert_eq!(settings.instance_count, 2);
    }

    #[test]
    fn a_config_that_contradicts_the_model_is_refused() {
        let wrong_type = parse_pbtxt(
            r#"input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] } ] max_batch_size: 4"#,
        )
        .unwrap();
        let err = complete(wrong_type, "mlp", &batchable(), &ModelDefaults::default()).unwrap_err();
        assert!(err.to_string().contains("INPUT0"), "{err}");
        let wrong_name = parse_pbtxt(
            r#"input [ { name: "X" data_type: TYPE_FP32 dims: [ 16 ] } ] max_batch_size: 4"#,
        )
        .unwrap();
        assert!(complete(wrong_name, "mlp", &batchable(), &ModelDefaults::default()).is_err());
        let other_dir = parse_pbtxt(r#"name: "other""#).unwrap();
        assert!(complete(other_dir, "mlp", &batchable(), &ModelDefaults::default()).is_err());
        let fixed = Fake(Signature {
            inputs: vec![TensorSpec::new("x", DataType::Fp32, vec![1, 16])],
            outputs: vec![TensorSpec::new("y", DataType::Fp32, vec![1, 4])],
        });
        let batching = parse_pbtxt("max_batch_size: 8").unwrap();
        assert!(complete(batching, "m", &fixed, &ModelDefaults::default()).is_err());
        let (_, settings) = complete(
            ModelConfig::default(),
            "m",
            &fixed,
            &ModelDefaults::default(),
        )
        .unwrap();
        assert_eq!(
            settings.max_batch_size, 0,
            "a fixed-shape model does not batch"
        );
        assert_eq!(settings.signature.inputs[0].dims, vec![1, 16]);
    }

    #[test]
    fn version_policies() {
        let available = [1, 3, 2, 10];
        assert_eq!(select_versions(None, &available), vec![10]);
        let all = parse_pbtxt("version_policy: { all { } }").unwrap();
        assert_eq!(
            select_versions(all.version_policy.as_ref(), &available),
            vec![10, 3, 2, 1]
        );
        let latest = parse_pbtxt("version_policy: { latest { num_versions: 2 } }").unwrap();
        assert_eq!(
            select_versions(latest.version_policy.as_ref(), &available),
            vec![10, 3]
        );
        let specific = parse_pbtxt("version_policy: { specific { versions: [1, 3, 7] } }").unwrap();
        assert_eq!(
            select_versions(specific.version_policy.as_ref(), &available),
            vec![3, 1]
        );
    }
}
