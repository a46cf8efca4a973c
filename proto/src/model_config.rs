//! Model configurations as text: Triton's `config.pbtxt` (protobuf text format) and the JSON
//! form that `GET /v2/models/{name}/config` returns and that the repository load API takes in
//! its `config` parameter.
//!
//! Parsing goes through [`prost_reflect`] against the embedded descriptors and is then
//! transcoded into the generated [`ModelConfig`] struct, so every field of the schema is
//! understood without hand-written parsers.

use std::fmt;

use miette::Diagnostic;
use prost::Message;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions,
    text_format::FormatOptions,
};

use crate::inference::ModelConfig;

/// Full name of the model configuration message.
pub const MODEL_CONFIG_MESSAGE: &str = "inference.ModelConfig";

/// A place in a `config.pbtxt`, both counted from 1 (the column in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a model configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `config.pbtxt` text is not a valid `ModelConfig` in protobuf text format.
    #[error("invalid config.pbtxt{}: {message}{}", fmt_position(.position), fmt_field(.field))]
    Text {
        /// What is wrong, as the parser says it.
        message: String,
        /// Where, when the parser knows.
        position: Option<Position>,
        /// The field being set at that place, when it can be told and the message does not
        /// already name it.
        field: Option<String>,
    },
    /// The JSON is not a valid `ModelConfig` in the protobuf JSON mapping.
    #[error("invalid model configuration JSON: {0}")]
    Json(String),
    /// The parsed message could not be converted to the generated struct (a bug, not bad
    /// input: both sides come from the same descriptors).
    #[error("model configuration could not be converted: {0}")]
    Transcode(#[from] prost::DecodeError),
}

fn fmt_position(position: &Option<Position>) -> String {
    position.map(|p| format!(" at {p}")).unwrap_or_default()
}

fn fmt_field(field: &Option<String>) -> String {
    field
        .as_ref()
        .map(|f| format!(" (in field '{f}')"))
        .unwrap_or_default()
}

/// The descriptor of `inference.ModelConfig`.
pub fn descriptor() -> MessageDescriptor {
    crate::descriptor_pool()
        .get_message_by_name(MODEL_CONFIG_MESSAGE)
        .expect("inference.ModelConfig is in the embedded descriptor set")
}

/// Parses a Triton `config.pbtxt` (protobuf text format).
///
/// Unknown fields, unknown enum values, values of the wrong type and syntax errors are
/// refused with a [`ConfigError::Text`] that gives the line and column and, where it can be
/// told, the field.
pub fn parse_pbtxt(text: &str) -> Result<ModelConfig, ConfigError> {
    let normalized = Normalized::new(text);
    let dynamic = DynamicMessage::parse_text_format(descriptor(), &normalized.text)
        .map_err(|err| text_error(text, &normalized, &err))?;
    Ok(ModelConfig::decode(dynamic.encode_to_vec().as_slice())?)
}

/// The text handed to prost-reflect: the original with a `:` inserted between a field name
/// and a `[` that directly follows it.
///
/// The text format lets the colon be left out before a list of messages (`input [ { ... } ]`,
/// the form nearly every Triton `config.pbtxt` uses), but prost-reflect 0.16 only accepts the
/// list with a colon (`input: [ ... ]`). Adding the colon changes nothing for valid text. The
/// one leniency it adds: a list of scalars written without its colon (`dims [ 1 ]`), which
/// the text format refuses, is accepted too.
struct Normalized {
    text: String,
    /// Byte offsets, in `text`, of the inserted colons (ascending).
    inserted: Vec<usize>,
}

impl Normalized {
    fn new(original: &str) -> Self {
        let bytes = original.as_bytes();
        let mut text = String::with_capacity(original.len() + 16);
        let mut inserted = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if c == b'#' {
                // Comment: copy up to the end of the line.
                let end = original[i..].find('\n').map_or(bytes.len(), |n| i + n);
                text.push_str(&original[i..end]);
                i = end;
            } else if c == b'"' || c == b'\'' {
                // String: copy up to the closing quote, honouring escapes.
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != c && bytes[j] != b'\n' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                let end = (j + 1).min(bytes.len());
                text.push_str(&original[i..end]);
                i = end;
            } else if c.is_ascii_alphanumeric() || c == b'_' {
                // A word: an identifier, a keyword-like value or a number.
                let mut j = i;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                text.push_str(&original[i..j]);
                if (c.is_ascii_alphabetic() || c == b'_')
                    && next_significant(bytes, j) == Some(b'[')
                {
                    inserted.push(text.len());
                    text.push(':');
                }
                i = j;
            } else {
                let len = original[i..].chars().next().map_or(1, char::len_utf8);
                text.push_str(&original[i..i + len]);
                i += len;
            }
        }
        Normalized { text, inserted }
    }

    /// Maps a byte offset in the normalized text back to the original text.
    fn original_offset(&self, offset: usize) -> usize {
        offset - self.inserted.iter().take_while(|&&at| at < offset).count()
    }
}

/// The next byte after `from` that is neither whitespace nor inside a `#` comment.
fn next_significant(bytes: &[u8], mut from: usize) -> Option<u8> {
    while from < bytes.len() {
        match bytes[from] {
            b' ' | b'\t' | b'\r' | b'\n' => from += 1,
            b'#' => {
                while from < bytes.len() && bytes[from] != b'\n' {
                    from += 1;
                }
            }
            other => return Some(other),
        }
    }
    None
}

/// Writes a configuration as `config.pbtxt` text (multi-line, fields in declaration order,
/// default values left out). [`parse_pbtxt`] reads it back to an equal value.
pub fn to_pbtxt(config: &ModelConfig) -> String {
    to_dynamic(config).to_text_format_with_options(&FormatOptions::new().pretty(true))
}

/// The JSON form of a configuration, as Triton's `GET /v2/models/{name}/config` returns it:
/// proto field names (`max_batch_size`), enums by name (`"TYPE_FP32"`), 64-bit integers as
/// JSON numbers (`"dims": [16]`), scalar, repeated and map fields printed even when empty or
/// zero, and unset message fields left out.
pub fn to_json(config: &ModelConfig) -> serde_json::Value {
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    to_dynamic(config)
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("a protobuf message always serializes to a JSON value")
}

/// Reads a configuration from its JSON form (the protobuf JSON mapping): field names in
/// proto (`max_batch_size`) or camel case (`maxBatchSize`), enums by name or number, 64-bit
/// integers as numbers or strings. Unknown fields are refused.
pub fn from_json(value: &serde_json::Value) -> Result<ModelConfig, ConfigError> {
    let dynamic =
        DynamicMessage::deserialize_with_options(descriptor(), value, &DeserializeOptions::new())
            .map_err(|err| ConfigError::Json(err.to_string()))?;
    Ok(ModelConfig::decode(dynamic.encode_to_vec().as_slice())?)
}

/// Reads a configuration from JSON text, as found in the load API's `config` parameter.
pub fn from_json_str(text: &str) -> Result<ModelConfig, ConfigError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|err| ConfigError::Json(err.to_string()))?;
    from_json(&value)
}

fn to_dynamic(config: &ModelConfig) -> DynamicMessage {
    let mut dynamic = DynamicMessage::new(descriptor());
    dynamic
        .transcode_from(config)
        .expect("a ModelConfig always decodes against its own descriptor");
    dynamic
}

/// Builds a [`ConfigError::Text`] from a prost-reflect parse error: the byte offset of its
/// first label becomes a line and column, and the field being set there is looked up.
fn text_error(
    text: &str,
    normalized: &Normalized,
    err: &prost_reflect::text_format::ParseError,
) -> ConfigError {
    let message = err.to_string();
    let offset = err
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| normalized.original_offset(label.offset()))
        .or_else(|| message.contains("end of input").then_some(text.len()));
    let position = offset.map(|offset| position_of(text, offset));
    let field = offset
        .and_then(|offset| field_before(text, offset))
        .filter(|field| !message.contains(&format!("'{field}'")));
    ConfigError::Text {
        message,
        position,
        field,
    }
}

fn position_of(text: &str, offset: usize) -> Position {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line,
        column: before[line_start..].chars().count() + 1,
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Best effort: the name of the field whose value starts at `offset`, i.e. the identifier
/// before `name:` / `name [` ... at that place, skipping back over the elements of a list.
fn field_before(text: &str, offset: usize) -> Option<String> {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let mut before = strip_comments(&text[..offset]);
    loop {
        let trimmed = before.trim_end();
        if trimmed.ends_with(',') || trimmed.ends_with('[') {
            // Inside a list: go back to its unmatched '['.
            let open = unmatched_open_bracket(trimmed)?;
            before = trimmed[..open].to_owned();
            continue;
        }
        let trimmed = trimmed.strip_suffix(':').unwrap_or(trimmed).trim_end();
        let start = trimmed
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let ident = &trimmed[start..];
        let is_ident = ident
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        return is_ident.then(|| ident.to_owned());
    }
}

/// Removes `#` comments (outside strings) so they do not confuse [`field_before`].
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let mut quote: Option<char> = None;
        let mut escaped = false;
        let mut cut = line.len();
        for (i, c) in line.char_indices() {
            match quote {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == q {
                        quote = None;
                    }
                }
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c == '#' => {
                    cut = i;
                    break;
                }
                None => {}
            }
        }
        out.push_str(&line[..cut]);
        if cut < line.len() && line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

fn unmatched_open_bracket(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices().rev() {
        match c {
            ']' => depth += 1,
            '[' if depth == 0 => return Some(i),
            '[' => depth -= 1,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::{
        DataType, ModelInstanceGroup, model_config::SchedulingChoice, model_instance_group::Kind,
        model_optimization_policy::ModelPriority, model_version_policy::PolicyChoice,
    };

    /// A config in the shape Triton users write: comments, `key: value` and `key [...]`
    /// forms, lists of messages, maps, enums.
    const REALISTIC: &str = r#"
# An image classifier.
name: "resnet"
platform: "onnxruntime_onnx"
backend: "onnxruntime"
max_batch_size : 8
version_policy: { specific { versions: [1, 3] } }
input [
  {
    name: "input"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
    reshape: { shape: [ 1, 3, 224, 224 ] }
  }
]
output [
  {
    name: "probs"
    data_type: TYPE_FP32
    dims: [ 16 ]
    label_filename: "labels.txt"
  },
  {
    name: "aux"
    data_type: TYPE_INT64
    dims: [ -1 ]
  }
]
dynamic_batching {
  max_queue_delay_microseconds: 100
  preferred_batch_size: [4, 8]
  priority_levels: 2
  default_priority_level: 1
  default_queue_policy { timeout_action: DELAY max_queue_size: 64 }
  priority_queue_policy { key: 1 value: { default_timeout_microseconds: 5000 } }
}
instance_group [{ count: 2 kind: KIND_CPU }]
instance_group [
  { name: "gpu" count: 1 kind: KIND_GPU gpus: [ 0, 1 ] }
]
parameters { key: "x" value: { string_value: "y" } }
parameters: { key: "threads" value: { string_value: "4" } }
optimization {
  graph { level: 1 }
  priority: PRIORITY_MAX
  execution_accelerators {
    gpu_execution_accelerator: [
      { name: "tensorrt" parameters { key: "precision_mode" value: "FP16" } }
    ]
    cpu_execution_accelerator: [ { name: "openvino" } ]
  }
  input_pinned_memory { enable: false }
}
model_warmup [
  {
    name: "zeros"
    batch_size: 1
    inputs { key: "input" value: { data_type: TYPE_FP32 dims: [3, 224, 224] zero_data: true } }
  }
]
response_cache { enable: true }
model_transaction_policy { decoupled: false }
metric_tags { key: "team" value: "vision" }
"#;

    #[test]
    fn parses_a_realistic_config() {
        let config = parse_pbtxt(REALISTIC).unwrap();
        assert_eq!(config.name, "resnet");
        assert_eq!(config.backend, "onnxruntime");
        assert_eq!(config.max_batch_size, 8);

        let input = &config.input[0];
        assert_eq!(input.name, "input");
        assert_eq!(input.data_type(), DataType::TypeFp32);
        assert_eq!(input.dims, vec![3, 224, 224]);
        assert_eq!(input.reshape.as_ref().unwrap().shape, vec![1, 3, 224, 224]);
        assert_eq!(config.output.len(), 2);
        assert_eq!(config.output[0].dims, vec![16]);
        assert_eq!(config.output[1].dims, vec![-1]);
        assert_eq!(config.output[1].data_type(), DataType::TypeInt64);

        let Some(SchedulingChoice::DynamicBatching(batching)) = &config.scheduling_choice else {
            panic!(
                "dynamic_batching expected, got {:?}",
                config.scheduling_choice
            );
        };
        assert_eq!(batching.max_queue_delay_microseconds, 100);
        assert_eq!(batching.preferred_batch_size, vec![4, 8]);
        assert_eq!(batching.priority_levels, 2);
        assert_eq!(
            batching.priority_queue_policy[&1].default_timeout_microseconds,
            5000
        );
        assert_eq!(
            batching
                .default_queue_policy
                .as_ref()
                .unwrap()
                .max_queue_size,
            64
        );

        assert_eq!(config.instance_group.len(), 2);
        let cpu: &ModelInstanceGroup = &config.instance_group[0];
        assert_eq!((cpu.count, cpu.kind()), (2, Kind::Cpu));
        assert_eq!(config.instance_group[1].gpus, vec![0, 1]);

        let Some(PolicyChoice::Specific(specific)) = config
            .version_policy
            .as_ref()
            .and_then(|p| p.policy_choice.as_ref())
        else {
            panic!("specific version policy expected");
        };
        assert_eq!(specific.versions, vec![1, 3]);

        assert_eq!(config.parameters["x"].string_value, "y");
        assert_eq!(config.parameters["threads"].string_value, "4");
        assert_eq!(config.metric_tags["team"], "vision");

        let optimization = config.optimization.as_ref().unwrap();
        assert_eq!(optimization.graph.as_ref().unwrap().level, 1);
        assert_eq!(optimization.priority(), ModelPriority::PriorityMax);
        let accelerators = optimization.execution_accelerators.as_ref().unwrap();
        assert_eq!(
            accelerators.gpu_execution_accelerator[0].parameters["precision_mode"],
            "FP16"
        );
        assert_eq!(accelerators.cpu_execution_accelerator[0].name, "openvino");
        assert!(!optimization.input_pinned_memory.as_ref().unwrap().enable);

        assert_eq!(
            config.model_warmup[0].inputs["input"].dims,
            vec![3, 224, 224]
        );
        assert!(config.response_cache.as_ref().unwrap().enable);
    }

    #[test]
    fn parses_sequence_and_ensemble_configs() {
        let sequence = parse_pbtxt(
            r#"
name: "seq"
max_batch_size: 4
sequence_batching {
  max_sequence_idle_microseconds: 5000000
  oldest { max_candidate_sequences: 4 preferred_batch_size: [2] }
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] } ] },
    { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] }
  ]
  state [ { input_name: "IN_STATE" output_name: "OUT_STATE" data_type: TYPE_FP32 dims: [ -1 ]
            initial_state: { name: "init" data_type: TYPE_FP32 dims: [ 1 ] zero_data: true } } ]
}
"#,
        )
        .unwrap();
        let Some(SchedulingChoice::SequenceBatching(batching)) = sequence.scheduling_choice else {
            panic!("sequence_batching expected");
        };
        assert_eq!(batching.control_input.len(), 2);
        assert_eq!(batching.state[0].initial_state[0].name, "init");

        let ensemble = parse_pbtxt(
            r#"
name: "pipeline"
platform: "ensemble"
ensemble_scheduling {
  step [
    { model_name: "pre" model_version: -1 input_map { key: "RAW" value: "text" }
      output_map { key: "IDS" value: "ids" } },
    { model_name: "bert" model_version: -1 input_map { key: "input_ids" value: "ids" } }
  ]
}
"#,
        )
        .unwrap();
        let Some(SchedulingChoice::EnsembleScheduling(ensemble)) = ensemble.scheduling_choice
        else {
            panic!("ensemble_scheduling expected");
        };
        assert_eq!(ensemble.step[1].model_version, -1);
        assert_eq!(ensemble.step[0].output_map["IDS"], "ids");
    }

    #[test]
    fn json_matches_triton_shape_and_round_trips() {
        let config = parse_pbtxt(REALISTIC).unwrap();
        let json = to_json(&config);

        assert_eq!(json["max_batch_size"], 8);
        assert_eq!(json["input"][0]["data_type"], "TYPE_FP32");
        assert_eq!(json["output"][0]["dims"], serde_json::json!([16]));
        assert_eq!(json["output"][1]["dims"], serde_json::json!([-1]));
        assert!(
            json["output"][0]["dims"][0].is_i64(),
            "dims are JSON numbers"
        );
        assert_eq!(
            json["dynamic_batching"]["max_queue_delay_microseconds"],
            100
        );
        assert_eq!(
            json["version_policy"]["specific"]["versions"],
            serde_json::json!([1, 3])
        );
        assert_eq!(json["instance_group"][0]["kind"], "KIND_CPU");
        assert_eq!(
            json["parameters"]["x"],
            serde_json::json!({"string_value": "y"})
        );
        // Scalars and collections are printed even when empty, as Triton does...
        assert_eq!(json["input"][0]["optional"], false);
        assert_eq!(json["default_model_filename"], "");
        assert_eq!(json["batch_input"], serde_json::json!([]));
        assert_eq!(json["cc_model_filenames"], serde_json::json!({}));
        // ...while unset messages are left out.
        assert!(json["output"][0].get("reshape").is_none());
        assert!(json.get("sequence_batching").is_none());

        assert_eq!(from_json(&json).unwrap(), config);
        assert_eq!(from_json_str(&json.to_string()).unwrap(), config);
    }

    #[test]
    fn json_accepts_strings_for_64_bit_integers_and_camel_case() {
        let config = from_json(&serde_json::json!({
            "name": "m",
            "maxBatchSize": 4,
            "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": ["16", 2]}],
            "dynamic_batching": {"max_queue_delay_microseconds": "250"}
        }))
        .unwrap();
        assert_eq!(config.max_batch_size, 4);
        assert_eq!(config.input[0].dims, vec![16, 2]);
        let Some(SchedulingChoice::DynamicBatching(batching)) = config.scheduling_choice else {
            panic!("dynamic_batching expected");
        };
        assert_eq!(batching.max_queue_delay_microseconds, 250);
    }

    #[test]
    fn json_errors_name_the_field() {
        let err = from_json(&serde_json::json!({"name": "m", "max_batch_sise": 4})).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConfigError::Json(_)));
        assert!(text.contains("max_batch_sise"), "{text}");

        let err = from_json(&serde_json::json!({"input": [{"data_type": "TYPE_FP33"}]}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TYPE_FP33"), "{err}");
    }

    #[test]
    fn unknown_field_error_names_field_and_position() {
        let err = parse_pbtxt("name: \"m\"\nmax_batch_sise: 8\n").unwrap_err();
        let ConfigError::Text {
            message, position, ..
        } = &err
        else {
            panic!("text error expected, got {err:?}");
        };
        assert!(message.contains("max_batch_sise"), "{message}");
        assert!(message.contains("inference.ModelConfig"), "{message}");
        assert_eq!(*position, Some(Position { line: 2, column: 1 }));
        let text = err.to_string();
        assert!(text.contains("line 2, column 1"), "{text}");
    }

    #[test]
    fn nested_unknown_field_is_reported_where_it_is() {
        let err = parse_pbtxt("input [\n  {\n    name: \"x\"\n    dimz: [ 1 ]\n  }\n]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'dimz'"), "{err}");
        assert!(err.contains("inference.ModelInput"), "{err}");
        assert!(err.contains("line 4, column 5"), "{err}");
    }

    #[test]
    fn bad_value_error_names_the_field() {
        let err = parse_pbtxt("name: \"m\"\ninput [ { name: \"x\" data_type: TYPE_FP33 } ]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("TYPE_FP33"), "{err}");
        assert!(err.contains("inference.DataType"), "{err}");
        assert!(err.contains("data_type"), "{err}");
        assert!(err.contains("line 2, column 32"), "{err}");

        let err = parse_pbtxt("max_batch_size: \"eight\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'max_batch_size'"), "{err}");
        assert!(err.contains("line 1, column 17"), "{err}");

        let err = parse_pbtxt("input [ { name: \"x\" dims: [ 3, # channels\n 2.5 ] } ]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'dims'"), "{err}");
        assert!(err.contains("line 2, column 2"), "{err}");
    }

    #[test]
    fn syntax_error_at_end_has_a_position() {
        let err = parse_pbtxt("name: \"m\"\ninput [ { name: \"x\"\n").unwrap_err();
        let ConfigError::Text { position, .. } = &err else {
            panic!("text error expected");
        };
        assert!(position.is_some(), "{err}");
    }

    #[test]
    fn pbtxt_round_trips() {
        let config = parse_pbtxt(REALISTIC).unwrap();
        let text = to_pbtxt(&config);
        assert!(text.contains("max_batch_size: 8"), "{text}");
        assert_eq!(parse_pbtxt(&text).unwrap(), config);
    }

    #[test]
    fn empty_config_is_valid() {
        assert_eq!(parse_pbtxt("").unwrap(), ModelConfig::default());
        assert_eq!(
            parse_pbtxt("# nothing but a comment\n").unwrap(),
            ModelConfig::default()
        );
    }
}

#[cfg(test)]
mod normalize_tests {
    use super::*;

    #[test]
    fn message_lists_parse_with_or_without_colon_and_spacing() {
        let config = parse_pbtxt(
            "name: \"a#b [\" input[{ name: \"x\" }] output # outputs\n [ { name: 'y]' } ]\n\
             batch_input [ ] batch_output: [ ] instance_group: [ { count: 1 } ]",
        )
        .unwrap();
        assert_eq!(config.name, "a#b [");
        assert_eq!(config.input[0].name, "x");
        assert_eq!(config.output[0].name, "y]");
        assert!(config.batch_input.is_empty());
        assert_eq!(config.instance_group[0].count, 1);
    }

    #[test]
    fn scalar_list_without_colon_is_tolerated() {
        let config = parse_pbtxt("input [ { name: \"x\" dims [ 1, -1 ] } ]").unwrap();
        assert_eq!(config.input[0].dims, vec![1, -1]);
    }

    #[test]
    fn positions_after_inserted_colons_are_in_the_original_text() {
        // Two colons are inserted before the error (after `input` and `output`).
        let err = parse_pbtxt("input [ { name: \"x\" } ] output [ { nme: \"y\" } ]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1, column 36"), "{err}");
        assert!(err.contains("'nme'"), "{err}");
    }

    #[test]
    fn error_messages_read_well() {
        for text in [
            "max_batch_sise: 8\n",
            "input [ { name: \"x\" data_type: TYPE_FP33 } ]",
            "max_batch_size: \"eight\"",
            "input [ { name: \"x\" dims: [ 3, 2.5 ] } ]",
            "input [ { name: \"x\"",
            "dynamic_batching { max_queue_delay_microseconds: -1 }",
            "name: \"m\" name: \"n\"",
        ] {
            let err = parse_pbtxt(text).unwrap_err().to_string();
            assert!(err.starts_with("invalid config.pbtxt at line 1"), "{err}");
        }
    }
}
