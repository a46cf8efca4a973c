//! Conversions between the generated `inference` messages and the protocol-neutral core types.
//!
//! Tensor data keeps its [`Bytes`] all the way: a `raw_input_contents` entry becomes a
//! [`Tensor`]'s data, and a [`Tensor`]'s data becomes a `raw_output_contents` entry, without copying.
//! Only typed `contents` (lists of numbers or strings) are serialised into the v2 byte layout.

use std::collections::HashMap;

use bytes::Bytes;
use cerulean_proto::inference as pb;
use pb::infer_parameter::ParameterChoice;
use pb::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};

use crate::datatype::DataType;
use crate::error::{Result, ServingError};
use crate::inference::{InferRequest, InferResponse, ModelMetadata, Parameters, RequestedOutput};
use crate::repository::IndexEntry;
use crate::server::{ModelStatistics, ServerMetadata};
use crate::stats::DurationSnapshot;
use crate::tensor::{self, Tensor};

/// A decoded `ModelInferRequest`: the model it names and the protocol-neutral request.
#[derive(Debug, Clone)]
pub struct DecodedInfer {
    /// The model's name.
    pub model_name: String,
    /// The version asked for; `None` when the request leaves the choice to the server.
    pub model_version: Option<String>,
    /// The request itself.
    pub request: InferRequest,
}

/// Decodes a `ModelInferRequest`.
///
/// With `raw_input_contents`, there must be exactly one raw entry per input and no input may also
/// set `contents`; each entry is taken as the tensor's data without copying. Otherwise each input's
/// typed `contents` are serialised per its datatype (FP16 and BF16 can only come raw). Every
/// tensor is checked against its shape; errors are [`ServingError::BadRequest`] naming the tensor.
pub fn decode_infer_request(request: pb::ModelInferRequest) -> Result<DecodedInfer> {
    let pb::ModelInferRequest {
        model_name,
        model_version,
        id,
        parameters,
        inputs,
        outputs,
        raw_input_contents,
    } = request;
    let inputs = if raw_input_contents.is_empty() {
        inputs
            .into_iter()
            .map(decode_typed_input)
            .collect::<Result<Vec<_>>>()?
    } else {
        decode_raw_inputs(inputs, raw_input_contents)?
    };
    let outputs = outputs
        .into_iter()
        .map(decode_requested_output)
        .collect::<Result<Vec<_>>>()?;
    Ok(DecodedInfer {
        model_name,
        model_version: non_empty(model_version),
        request: InferRequest {
            id,
            parameters: decode_parameters(parameters)?,
            inputs,
            outputs,
        },
    })
}

/// `None` for an empty string: the wire's way of leaving a version to the server.
pub(crate) fn non_empty(value: String) -> Option<String> {
    if value.is_empty() { None } else { Some(value) }
}

fn decode_requested_output(output: InferRequestedOutputTensor) -> Result<RequestedOutput> {
    Ok(RequestedOutput {
        name: output.name,
        parameters: decode_parameters(output.parameters)?,
    })
}

fn parse_datatype(name: &str, datatype: &str) -> Result<DataType> {
    datatype
        .parse::<DataType>()
        .map_err(|_| ServingError::tensor(name, format!("unknown datatype '{datatype}'")))
}

fn has_contents(contents: Option<&pb::InferTensorContents>) -> bool {
    contents.is_some_and(|c| {
        !(c.bool_contents.is_empty()
            && c.int_contents.is_empty()
            && c.int64_contents.is_empty()
            && c.uint_contents.is_empty()
            && c.uint64_contents.is_empty()
            && c.fp32_contents.is_empty()
            && c.fp64_contents.is_empty()
            && c.bytes_contents.is_empty())
    })
}

fn decode_raw_inputs(inputs: Vec<InferInputTensor>, raw: Vec<Bytes>) -> Result<Vec<Tensor>> {
    if let Some(input) = inputs.iter().find(|i| has_contents(i.contents.as_ref())) {
        return Err(ServingError::tensor(
            &input.name,
            "sets 'contents' while the request uses 'raw_input_contents'; \
             when raw_input_contents is used, every input's data must be there",
        ));
    }
    if raw.len() != inputs.len() {
        let detail = format!(
            "the request has {} inputs but {} raw_input_contents entries; exactly one is needed per input",
            inputs.len(),
            raw.len()
        );
        return Err(match inputs.get(raw.len()) {
            Some(input) => ServingError::tensor(
                &input.name,
                format!("has no raw_input_contents entry: {detail}"),
            ),
            None => ServingError::BadRequest(detail),
        });
    }
    inputs
        .into_iter()
        .zip(raw)
        .map(|(input, data)| {
            let datatype = parse_datatype(&input.name, &input.datatype)?;
            Tensor::new(input.name, datatype, input.shape, data)
        })
        .collect()
}

/// The `InferTensorContents` field that carries a datatype's values.
fn contents_field(datatype: DataType) -> Option<&'static str> {
    Some(match datatype {
        DataType::Bool => "bool_contents",
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "int_contents",
        DataType::Int64 => "int64_contents",
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => "uint_contents",
        DataType::Uint64 => "uint64_contents",
        DataType::Fp32 => "fp32_contents",
        DataType::Fp64 => "fp64_contents",
        DataType::Bytes => "bytes_contents",
        DataType::Fp16 | DataType::Bf16 => return None,
    })
}

fn decode_typed_input(input: InferInputTensor) -> Result<Tensor> {
    let InferInputTensor {
        name,
        datatype,
        shape,
        contents,
        ..
    } = input;
    let datatype = parse_datatype(&name, &datatype)?;
    let Some(field) = contents_field(datatype) else {
        return Err(ServingError::tensor(
            &name,
            format!(
                "{datatype} data cannot be sent as typed contents; send it in raw_input_contents"
            ),
        ));
    };
    let count = tensor::element_count(&name, &shape)?;
    if contents.is_none() && count > 0 {
        return Err(ServingError::tensor(
            &name,
            "has no data: set its contents or the request's raw_input_contents",
        ));
    }
    let c = contents.unwrap_or_default();
    let lengths = [
        ("bool_contents", c.bool_contents.len()),
        ("int_contents", c.int_contents.len()),
        ("int64_contents", c.int64_contents.len()),
        ("uint_contents", c.uint_contents.len()),
        ("uint64_contents", c.uint64_contents.len()),
        ("fp32_contents", c.fp32_contents.len()),
        ("fp64_contents", c.fp64_contents.len()),
        ("bytes_contents", c.bytes_contents.len()),
    ];
    if let Some((other, _)) = lengths.iter().find(|(f, len)| *f != field && *len > 0) {
        return Err(ServingError::tensor(
            &name,
            format!("{datatype} data belongs in {field}, but {other} was set"),
        ));
    }
    let given = lengths
        .iter()
        .find(|(f, _)| *f == field)
        .map_or(0, |(_, len)| *len);
    if given != count {
        return Err(ServingError::tensor(
            &name,
            format!("shape {shape:?} needs {count} elements but {field} holds {given}"),
        ));
    }
    let data: Vec<u8> = match datatype {
        DataType::Bool => c.bool_contents.iter().map(|&b| u8::from(b)).collect(),
        DataType::Int8 => narrow(&name, datatype, &c.int_contents, i8::to_le_bytes)?,
        DataType::Int16 => narrow(&name, datatype, &c.int_contents, i16::to_le_bytes)?,
        DataType::Int32 => le_bytes(&c.int_contents, i32::to_le_bytes),
        DataType::Int64 => le_bytes(&c.int64_contents, i64::to_le_bytes),
        DataType::Uint8 => narrow(&name, datatype, &c.uint_contents, u8::to_le_bytes)?,
        DataType::Uint16 => narrow(&name, datatype, &c.uint_contents, u16::to_le_bytes)?,
        DataType::Uint32 => le_bytes(&c.uint_contents, u32::to_le_bytes),
        DataType::Uint64 => le_bytes(&c.uint64_contents, u64::to_le_bytes),
        DataType::Fp32 => le_bytes(&c.fp32_contents, f32::to_le_bytes),
        DataType::Fp64 => le_bytes(&c.fp64_contents, f64::to_le_bytes),
        DataType::Bytes => {
            tensor::encode_bytes_elements(c.bytes_contents.iter().map(AsRef::as_ref))
        }
        DataType::Fp16 | DataType::Bf16 => unreachable!("refused above: no typed contents field"),
    };
    Tensor::new(name, datatype, shape, Bytes::from(data))
}

/// Serialises values as little-endian bytes.
fn le_bytes<T: Copy, const N: usize>(values: &[T], to_le: fn(T) -> [u8; N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * N);
    for &value in values {
        out.extend_from_slice(&to_le(value));
    }
    out
}

/// Narrows wider wire values (INT8/16 from `int32`, UINT8/16 from `uint32`), refusing any out of range.
fn narrow<W, T, const N: usize>(
    name: &str,
    datatype: DataType,
    values: &[W],
    to_le: fn(T) -> [u8; N],
) -> Result<Vec<u8>>
where
    W: Copy + std::fmt::Display,
    T: TryFrom<W>,
{
    let mut out = Vec::with_capacity(values.len() * N);
    for (index, &value) in values.iter().enumerate() {
        let narrowed = T::try_from(value).map_err(|_| {
            ServingError::tensor(
                name,
                format!("value {value} at index {index} is out of range for {datatype}"),
            )
        })?;
        out.extend_from_slice(&to_le(narrowed));
    }
    Ok(out)
}

/// Converts request, tensor or output parameters to JSON values (the core's representation).
pub fn decode_parameters(parameters: HashMap<String, pb::InferParameter>) -> Result<Parameters> {
    parameters
        .into_iter()
        .map(|(key, parameter)| {
            let value = match parameter.parameter_choice {
                None => serde_json::Value::Null,
                Some(ParameterChoice::BoolParam(b)) => b.into(),
                Some(ParameterChoice::Int64Param(i)) => i.into(),
                Some(ParameterChoice::Uint64Param(u)) => u.into(),
                Some(ParameterChoice::StringParam(s)) => s.into(),
                Some(ParameterChoice::DoubleParam(d)) => serde_json::Number::from_f64(d)
                    .map(serde_json::Value::Number)
                    .ok_or_else(|| {
                        ServingError::BadRequest(format!(
                            "parameter '{key}' is not a finite number ({d})"
                        ))
                    })?,
            };
            Ok((key, value))
        })
        .collect()
}

/// Converts JSON parameters back to the wire's `InferParameter`s; values with no wire form
/// (null, arrays, objects) are sent as their JSON text.
pub fn encode_parameters(parameters: &Parameters) -> HashMap<String, pb::InferParameter> {
    parameters
        .iter()
        .map(|(key, value)| {
            let choice = match value {
                serde_json::Value::Bool(b) => ParameterChoice::BoolParam(*b),
                serde_json::Value::String(s) => ParameterChoice::StringParam(s.clone()),
                serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                    (Some(i), _, _) => ParameterChoice::Int64Param(i),
                    (None, Some(u), _) => ParameterChoice::Uint64Param(u),
                    (_, _, Some(f)) => ParameterChoice::DoubleParam(f),
                    _ => ParameterChoice::StringParam(n.to_string()),
                },
                other => ParameterChoice::StringParam(other.to_string()),
            };
            (
                key.clone(),
                pb::InferParameter {
                    parameter_choice: Some(choice),
                },
            )
        })
        .collect()
}

/// Encodes a response: every output's name, datatype and shape in `outputs`, and all tensor data in
/// `raw_output_contents` (one entry per output, same order), moved without copying. tritonclient
/// reads output data only from `raw_output_contents`.
pub fn encode_infer_response(response: InferResponse) -> pb::ModelInferResponse {
    let mut outputs = Vec::with_capacity(response.outputs.len());
    let mut raw_output_contents = Vec::with_capacity(response.outputs.len());
    for tensor in response.outputs {
        outputs.push(pb::model_infer_response::InferOutputTensor {
            name: tensor.name,
            datatype: tensor.datatype.as_str().to_string(),
            shape: tensor.shape,
            parameters: HashMap::new(),
            contents: None,
        });
        raw_output_contents.push(tensor.data);
    }
    pb::ModelInferResponse {
        model_name: response.model_name,
        model_version: response.model_version,
        id: response.id,
        parameters: HashMap::new(),
        outputs,
        raw_output_contents,
    }
}

/// Server metadata as the wire message.
pub fn encode_server_metadata(metadata: ServerMetadata) -> pb::ServerMetadataResponse {
    pb::ServerMetadataResponse {
        name: metadata.name,
        version: metadata.version,
        extensions: metadata.extensions,
    }
}

/// Model metadata as the wire message.
pub fn encode_model_metadata(metadata: ModelMetadata) -> pb::ModelMetadataResponse {
    let tensors = |list: Vec<crate::inference::TensorMetadata>| {
        list.into_iter()
            .map(|t| pb::model_metadata_response::TensorMetadata {
                name: t.name,
                datatype: t.datatype,
                shape: t.shape,
            })
            .collect()
    };
    pb::ModelMetadataResponse {
        name: metadata.name,
        versions: metadata.versions,
        platform: metadata.platform,
        inputs: tensors(metadata.inputs),
        outputs: tensors(metadata.outputs),
    }
}

fn duration(d: DurationSnapshot) -> Option<pb::StatisticDuration> {
    Some(pb::StatisticDuration {
        count: d.count,
        ns: d.ns,
    })
}

/// Statistics as Triton's `ModelStatisticsResponse`.
pub fn encode_statistics(stats: Vec<ModelStatistics>) -> pb::ModelStatisticsResponse {
    pb::ModelStatisticsResponse {
        model_stats: stats
            .into_iter()
            .map(|m| {
                let s = m.stats;
                pb::ModelStatistics {
                    name: m.name,
                    version: m.version,
                    last_inference: s.last_inference,
                    inference_count: s.inference_count,
                    execution_count: s.execution_count,
                    inference_stats: Some(pb::InferStatistics {
                        success: duration(s.success),
                        fail: duration(s.fail),
                        queue: duration(s.queue),
                        compute_input: duration(s.compute_input),
                        compute_infer: duration(s.compute_infer),
                        compute_output: duration(s.compute_output),
                        cache_hit: duration(DurationSnapshot::default()),
                        cache_miss: duration(DurationSnapshot::default()),
                    }),
                    batch_stats: s
                        .batches
                        .into_iter()
                        .map(|b| pb::InferBatchStatistics {
                            batch_size: b.batch_size,
                            compute_input: duration(b.compute_input),
                            compute_infer: duration(b.compute_infer),
                            compute_output: duration(b.compute_output),
                        })
                        .collect(),
                    memory_usage: Vec::new(),
                    response_stats: HashMap::new(),
                }
            })
            .collect(),
    }
}

/// The repository index as the wire message.
pub fn encode_index(entries: Vec<IndexEntry>) -> pb::RepositoryIndexResponse {
    pb::RepositoryIndexResponse {
        models: entries
            .into_iter()
            .map(|e| pb::repository_index_response::ModelIndex {
                name: e.name,
                version: e.version,
                state: e.state,
                reason: e.reason,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::encode_bytes_elements;

    fn input(
        name: &str,
        datatype: &str,
        shape: Vec<i64>,
        contents: Option<pb::InferTensorContents>,
    ) -> InferInputTensor {
        InferInputTensor {
            name: name.to_string(),
            datatype: datatype.to_string(),
            shape,
            parameters: HashMap::new(),
            contents,
        }
    }

    fn typed(inputs: Vec<InferInputTensor>) -> pb::ModelInferRequest {
        pb::ModelInferRequest {
            model_name: "m".into(),
            inputs,
            ..Default::default()
        }
    }

    fn decode_one(i: InferInputTensor) -> Result<Tensor> {
        decode_infer_request(typed(vec![i])).map(|mut d| d.request.inputs.remove(0))
    }

    fn bad_request_naming(err: ServingError, name: &str) -> String {
        assert!(matches!(err, ServingError::BadRequest(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&format!("'{name}'")), "{text}");
        text
    }

    #[test]
    fn raw_contents_are_taken_without_copying() {
        let fp32 = Bytes::from(le_bytes(&[1.0f32, 2.0, 3.0, 4.0], f32::to_le_bytes));
        let int64 = Bytes::from(le_bytes(&[7i64, -8], i64::to_le_bytes));
        let strings = Bytes::from(encode_bytes_elements([&b"ab"[..], b""]));
        let fp16 = Bytes::from(vec![0u8; 6]);
        let boolean = Bytes::from(vec![1u8, 0]);
        let raw = vec![
            fp32.clone(),
            int64.clone(),
            strings.clone(),
            fp16.clone(),
            boolean.clone(),
        ];
        let request = pb::ModelInferRequest {
            model_name: "m".into(),
            model_version: "2".into(),
            id: "req-1".into(),
            inputs: vec![
                input("a", "FP32", vec![2, 2], None),
                input("b", "INT64", vec![2], None),
                input("c", "BYTES", vec![2], None),
                input("d", "FP16", vec![3], None),
                input("e", "BOOL", vec![1, 2], None),
            ],
            raw_input_contents: raw.clone(),
            ..Default::default()
        };
        let decoded = decode_infer_request(request).unwrap();
        assert_eq!(decoded.model_name, "m");
        assert_eq!(decoded.model_version.as_deref(), Some("2"));
        assert_eq!(decoded.request.id, "req-1");
        let inputs = decoded.request.inputs;
        assert_eq!(inputs[3].datatype, DataType::Fp16);
        for (tensor, bytes) in inputs.iter().zip(&raw) {
            assert_eq!(
                tensor.data.as_ptr(),
                bytes.as_ptr(),
                "{} was copied",
                tensor.name
            );
            assert_eq!(tensor.data, bytes);
        }
    }

    #[test]
    fn raw_contents_must_match_inputs_one_to_one() {
        let request = pb::ModelInferRequest {
            inputs: vec![
                input("a", "FP32", vec![1], None),
                input("b", "FP32", vec![1], None),
            ],
            raw_input_contents: vec![Bytes::from(vec![0u8; 4])],
            ..Default::default()
        };
        let text = bad_request_naming(decode_infer_request(request).unwrap_err(), "b");
        assert!(text.contains("2 inputs but 1 raw_input_contents"), "{text}");

        let request = pb::ModelInferRequest {
            inputs: vec![input("a", "FP32", vec![1], None)],
            raw_input_contents: vec![Bytes::from(vec![0u8; 4]), Bytes::from(vec![0u8; 4])],
            ..Default::default()
        };
        let err = decode_infer_request(request).unwrap_err();
        assert!(
            err.to_string()
                .contains("1 inputs but 2 raw_input_contents"),
            "{err}"
        );

        let request = pb::ModelInferRequest {
            inputs: vec![input("a", "FP32", vec![2], None)],
            raw_input_contents: vec![Bytes::from(vec![0u8; 4])],
            ..Default::default()
        };
        let text = bad_request_naming(decode_infer_request(request).unwrap_err(), "a");
        assert!(text.contains("needs 8 bytes"), "{text}");
    }

    #[test]
    fn raw_and_typed_contents_together_are_refused() {
        let contents = pb::InferTensorContents {
            fp32_contents: vec![1.0],
            ..Default::default()
        };
        let request = pb::ModelInferRequest {
            inputs: vec![
                input("a", "FP32", vec![1], None),
                input("b", "FP32", vec![1], Some(contents)),
            ],
            raw_input_contents: vec![Bytes::from(vec![0u8; 4]), Bytes::from(vec![0u8; 4])],
            ..Default::default()
        };
        let text = bad_request_naming(decode_infer_request(request).unwrap_err(), "b");
        assert!(text.contains("raw_input_contents"), "{text}");
    }

    #[test]
    fn typed_contents_for_every_datatype_family() {
        let c = |f: fn(&mut pb::InferTensorContents)| {
            let mut contents = pb::InferTensorContents::default();
            f(&mut contents);
            Some(contents)
        };
        let cases: Vec<(&str, Option<pb::InferTensorContents>, Vec<u8>)> = vec![
            (
                "BOOL",
                c(|c| c.bool_contents = vec![true, false]),
                vec![1, 0],
            ),
            (
                "INT8",
                c(|c| c.int_contents = vec![-1, 127]),
                vec![0xff, 0x7f],
            ),
            (
                "INT16",
                c(|c| c.int_contents = vec![-2, 258]),
                vec![0xfe, 0xff, 2, 1],
            ),
            (
                "INT32",
                c(|c| c.int_contents = vec![-1, 1]),
                vec![0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0],
            ),
            (
                "INT64",
                c(|c| c.int64_contents = vec![-1, 2]),
                [(-1i64).to_le_bytes(), 2i64.to_le_bytes()].concat(),
            ),
            ("UINT8", c(|c| c.uint_contents = vec![255, 1]), vec![255, 1]),
            (
                "UINT16",
                c(|c| c.uint_contents = vec![65535, 1]),
                vec![255, 255, 1, 0],
            ),
            (
                "UINT32",
                c(|c| c.uint_contents = vec![u32::MAX, 1]),
                vec![255, 255, 255, 255, 1, 0, 0, 0],
            ),
            (
                "UINT64",
                c(|c| c.uint64_contents = vec![u64::MAX, 3]),
                [u64::MAX.to_le_bytes(), 3u64.to_le_bytes()].concat(),
            ),
            (
                "FP32",
                c(|c| c.fp32_contents = vec![1.5, -2.0]),
                [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat(),
            ),
            (
                "FP64",
                c(|c| c.fp64_contents = vec![0.25, 8.0]),
                [0.25f64.to_le_bytes(), 8.0f64.to_le_bytes()].concat(),
            ),
            (
                "BYTES",
                c(|c| c.bytes_contents = vec![Bytes::from_static(b"hi"), Bytes::from_static(b"")]),
                encode_bytes_elements([&b"hi"[..], b""]),
            ),
        ];
        for (datatype, contents, expected) in cases {
            let tensor = decode_one(input("x", datatype, vec![2], contents)).unwrap();
            assert_eq!(tensor.datatype.as_str(), datatype);
            assert_eq!(tensor.shape, vec![2]);
            assert_eq!(tensor.data.as_ref(), expected.as_slice(), "{datatype}");
        }
    }

    #[test]
    fn typed_contents_are_checked() {
        let c = |f: fn(&mut pb::InferTensorContents)| {
            let mut contents = pb::InferTensorContents::default();
            f(&mut contents);
            Some(contents)
        };
        let err = decode_one(input(
            "small",
            "INT8",
            vec![2],
            c(|c| c.int_contents = vec![1, 300]),
        ))
        .unwrap_err();
        let text = bad_request_naming(err, "small");
        assert!(text.contains("300") && text.contains("INT8"), "{text}");
        let err = decode_one(input(
            "u",
            "UINT16",
            vec![1],
            c(|c| c.uint_contents = vec![70000]),
        ))
        .unwrap_err();
        bad_request_naming(err, "u");

        let err = decode_one(input(
            "n",
            "FP32",
            vec![3],
            c(|c| c.fp32_contents = vec![1.0]),
        ))
        .unwrap_err();
        let text = bad_request_naming(err, "n");
        assert!(
            text.contains("needs 3 elements but fp32_contents holds 1"),
            "{text}"
        );

        let err = decode_one(input(
            "w",
            "FP32",
            vec![1],
            c(|c| c.fp64_contents = vec![1.0]),
        ))
        .unwrap_err();
        let text = bad_request_naming(err, "w");
        assert!(
            text.contains("fp32_contents") && text.contains("fp64_contents"),
            "{text}"
        );

        let err = decode_one(input("none", "INT32", vec![1], None)).unwrap_err();
        bad_request_naming(err, "none");
        let empty = decode_one(input("empty", "INT32", vec![0], None)).unwrap();
        assert!(empty.data.is_empty());
    }

    #[test]
    fn half_precision_must_come_raw() {
        for datatype in ["FP16", "BF16"] {
            let contents = pb::InferTensorContents {
                fp32_contents: vec![1.0],
                ..Default::default()
            };
            let err = decode_one(input("h", datatype, vec![1], Some(contents))).unwrap_err();
            let text = bad_request_naming(err, "h");
            assert!(text.contains("raw_input_contents"), "{text}");
        }
    }

    #[test]
    fn unknown_datatype_names_the_tensor() {
        let err = decode_one(input("t", "FLOAT32", vec![1], None)).unwrap_err();
        let text = bad_request_naming(err, "t");
        assert!(text.contains("FLOAT32"), "{text}");
        let request = pb::ModelInferRequest {
            inputs: vec![input("r", "FLOAT32", vec![1], None)],
            raw_input_contents: vec![Bytes::from(vec![0u8; 4])],
            ..Default::default()
        };
        bad_request_naming(decode_infer_request(request).unwrap_err(), "r");
    }

    #[test]
    fn parameters_and_requested_outputs() {
        let p = |choice| pb::InferParameter {
            parameter_choice: Some(choice),
        };
        let parameters = HashMap::from([
            ("b".to_string(), p(ParameterChoice::BoolParam(true))),
            ("i".to_string(), p(ParameterChoice::Int64Param(-3))),
            ("s".to_string(), p(ParameterChoice::StringParam("x".into()))),
            ("d".to_string(), p(ParameterChoice::DoubleParam(0.5))),
            ("u".to_string(), p(ParameterChoice::Uint64Param(u64::MAX))),
        ]);
        let request = pb::ModelInferRequest {
            parameters: parameters.clone(),
            outputs: vec![InferRequestedOutputTensor {
                name: "out".into(),
                parameters: HashMap::from([(
                    "classification".to_string(),
                    p(ParameterChoice::Int64Param(2)),
                )]),
            }],
            ..Default::default()
        };
        let decoded = decode_infer_request(request).unwrap();
        assert_eq!(decoded.model_version, None);
        let json = serde_json::Value::Object(decoded.request.parameters.clone());
        assert_eq!(
            json,
            serde_json::json!({"b": true, "i": -3, "s": "x", "d": 0.5, "u": u64::MAX})
        );
        assert_eq!(decoded.request.outputs[0].name, "out");
        assert_eq!(decoded.request.outputs[0].parameters["classification"], 2);
        assert_eq!(encode_parameters(&decoded.request.parameters), parameters);

        let bad = pb::ModelInferRequest {
            parameters: HashMap::from([(
                "nan".to_string(),
                p(ParameterChoice::DoubleParam(f64::NAN)),
            )]),
            ..Default::default()
        };
        assert!(matches!(
            decode_infer_request(bad),
            Err(ServingError::BadRequest(_))
        ));
    }

    #[test]
    fn responses_put_all_data_in_raw_output_contents() {
        let scores = Bytes::from(le_bytes(&[0.5f32, 0.25], f32::to_le_bytes));
        let labels = Bytes::from(encode_bytes_elements([&b"yes"[..]]));
        let response = InferResponse {
            model_name: "m".into(),
            model_version: "3".into(),
            id: "abc".into(),
            outputs: vec![
                Tensor::new("scores", DataType::Fp32, vec![1, 2], scores.clone()).unwrap(),
                Tensor::new("label", DataType::Bytes, vec![1, 1], labels.clone()).unwrap(),
            ],
        };
        let encoded = encode_infer_response(response);
        assert_eq!(
            (
                encoded.model_name.as_str(),
                encoded.model_version.as_str(),
                encoded.id.as_str()
            ),
            ("m", "3", "abc")
        );
        assert_eq!(encoded.outputs.len(), 2);
        assert_eq!(encoded.outputs[0].name, "scores");
        assert_eq!(encoded.outputs[0].datatype, "FP32");
        assert_eq!(encoded.outputs[0].shape, vec![1, 2]);
        assert!(encoded.outputs.iter().all(|o| o.contents.is_none()));
        assert_eq!(encoded.outputs[1].datatype, "BYTES");
        assert_eq!(
            encoded.raw_output_contents[0].as_ptr(),
            scores.as_ptr(),
            "zero copy"
        );
        assert_eq!(encoded.raw_output_contents[1], labels);
    }
}
