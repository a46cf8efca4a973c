//! The v2 REST inference body: JSON, optionally followed by raw tensors (Triton's binary tensor data
//! extension, `Inference-Header-Content-Length`). JSON tensor data is decoded straight into the raw
//! little-endian layout, and binary tensors are slices of the request body, never copied.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::datatype::DataType;
use crate::error::{Result, ServingError};
use crate::inference::{InferRequest, InferResponse, Parameters, RequestedOutput};
use crate::tensor::{Tensor, append_bytes_element};

/// The header that carries the length of the JSON part of a binary request or response.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

#[derive(Deserialize)]
struct JsonRequest<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(borrow)]
    inputs: Vec<JsonInput<'a>>,
    #[serde(default)]
    outputs: Vec<JsonOutput>,
}

#[derive(Deserialize)]
struct JsonInput<'a> {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct JsonOutput {
    name: String,
    #[serde(default)]
    parameters: Option<Parameters>,
}

/// Decodes a request body. `header_length` is the `Inference-Header-Content-Length` value, when the
/// body carries binary tensors after its JSON.
pub fn decode_request(body: Bytes, header_length: Option<usize>) -> Result<InferRequest> {
    let json_len = header_length.unwrap_or(body.len());
    if json_len > body.len() {
        return Err(ServingError::BadRequest(format!(
            "Inference-Header-Content-Length is {json_len} but the body has only {} bytes",
            body.len()
        )));
    }
    let mut binary = body.slice(json_len..);
    let request: JsonRequest<'_> = serde_json::from_slice(&body[..json_len])
        .map_err(|e| ServingError::BadRequest(format!("invalid inference request JSON: {e}")))?;
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        let datatype: DataType = input.datatype.parse().map_err(|_| {
            ServingError::tensor(
                &input.name,
                format!("unknown datatype '{}'", input.datatype),
            )
        })?;
        let binary_size = binary_data_size(&input.name, input.parameters.as_ref())?;
        let data = match (input.data, binary_size) {
            (Some(_), Some(_)) => {
                return Err(ServingError::tensor(
                    &input.name,
                    "has both JSON data and binary_data_size",
                ));
            }
            (Some(raw), None) => decode_json_data(&input.name, datatype, raw)?,
            (None, Some(size)) => {
                if size > binary.len() {
                    return Err(ServingError::tensor(
                        &input.name,
                        format!(
                            "binary_data_size is {size} but only {} binary bytes remain",
                            binary.len()
                        ),
                    ));
                }
                binary.split_to(size)
            }
            (None, None) => return Err(ServingError::tensor(&input.name, "has no data")),
        };
        inputs.push(Tensor::new(input.name, datatype, input.shape, data)?);
    }
    if !binary.is_empty() {
        return Err(ServingError::BadRequest(format!(
            "{} binary bytes follow the JSON but no input claims them",
            binary.len()
        )));
    }
    Ok(InferRequest {
        id: request.id.unwrap_or_default(),
        parameters: request.parameters.unwrap_or_default(),
        inputs,
        outputs: request
            .outputs
            .into_iter()
            .map(|o| RequestedOutput {
                name: o.name,
                parameters: o.parameters.unwrap_or_default(),
            })
            .collect(),
    })
}

fn binary_data_size(name: &str, parameters: Option<&Parameters>) -> Result<Option<usize>> {
    match parameters.and_then(|p| p.get("binary_data_size")) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| {
                ServingError::tensor(name, "binary_data_size must be a non-negative integer")
            }),
    }
}

/// Decodes JSON tensor data (flat or nested arrays) into the raw layout of `datatype`.
fn decode_json_data(name: &str, datatype: DataType, raw: &RawValue) -> Result<Bytes> {
    if let Some(decoded) = decode_float_array(datatype, raw.get()) {
        return Ok(Bytes::from(decoded));
    }
    let mut out = Vec::with_capacity(raw.get().len());
    let mut de = serde_json::Deserializer::from_str(raw.get());
    Flatten {
        datatype,
        out: &mut out,
    }
    .deserialize(&mut de)
    .map_err(|e| ServingError::tensor(name, format!("invalid data: {e}")))?;
    Ok(Bytes::from(out))
}

/// The fast path for the commonest JSON payload, FP32 or FP64 numbers in (nested) arrays, decoded
/// in one pass without serde's general value handling (the largest cost of a JSON inference
/// request). Each number becomes the nearest f64, narrowed to f32 for FP32, as Triton reads JSON
/// numbers. `text` is a JSON value already validated by serde, so structure needs no checking here.
/// Returns `None` for any other datatype, any non-numeric token, and any number out of range; the
/// general path then decodes the data and words the error.
fn decode_float_array(datatype: DataType, text: &str) -> Option<Vec<u8>> {
    let element_size = match datatype {
        DataType::Fp32 => 4,
        DataType::Fp64 => 8,
        _ => return None,
    };
    let bytes = text.as_bytes();
    // A number takes at least one character and one separator.
    let mut out = Vec::with_capacity(bytes.len() / 2 * element_size);
    let mut position = 0;
    while let Some(&byte) = bytes.get(position) {
        match byte {
            b'[' | b']' | b',' | b' ' | b'\t' | b'\n' | b'\r' => position += 1,
            b'-' | b'0'..=b'9' => {
                let value = parse_json_number(text, &mut position).filter(|v| v.is_finite())?;
                if datatype == DataType::Fp32 {
                    let narrowed = value as f32;
                    if !narrowed.is_finite() {
                        return None;
                    }
                    out.extend_from_slice(&narrowed.to_le_bytes());
                } else {
                    out.extend_from_slice(&value.to_le_bytes());
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Powers of ten that f64 holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses the JSON number that starts at `*position` to the nearest f64 and moves past it. A
/// significand of at most 2^53 with a power of ten that f64 holds exactly is computed with one
/// correctly rounded multiplication or division (Clinger's fast path); anything else goes to the
/// standard library's parser, which is correctly rounded too.
fn parse_json_number(text: &str, position: &mut usize) -> Option<f64> {
    let bytes = text.as_bytes();
    let start = *position;
    let mut at = start;
    let negative = bytes[at] == b'-';
    if negative {
        at += 1;
    }
    let mut significand: u64 = 0;
    let mut exponent: i64 = 0;
    let mut exact = true;
    let mut digit = |d: u8, significand: &mut u64| match significand
        .checked_mul(10)
        .and_then(|s| s.checked_add(u64::from(d - b'0')))
    {
        Some(next) => *significand = next,
        None => exact = false,
    };
    while let Some(&d @ b'0'..=b'9') = bytes.get(at) {
        digit(d, &mut significand);
        at += 1;
    }
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        while let Some(&d @ b'0'..=b'9') = bytes.get(at) {
            digit(d, &mut significand);
            exponent -= 1;
            at += 1;
        }
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        let negative_exponent = bytes.get(at) == Some(&b'-');
        if let Some(b'-' | b'+') = bytes.get(at) {
            at += 1;
        }
        let mut explicit: i64 = 0;
        while let Some(&d @ b'0'..=b'9') = bytes.get(at) {
            explicit = (explicit * 10 + i64::from(d - b'0')).min(1 << 20);
            at += 1;
        }
        exponent += if negative_exponent {
            -explicit
        } else {
            explicit
        };
    }
    *position = at;
    let power = EXACT_POWERS_OF_TEN.get(exponent.unsigned_abs() as usize);
    let magnitude = match power {
        Some(&power) if exact && significand <= 1 << 53 => {
            if exponent >= 0 {
                significand as f64 * power
            } else {
                significand as f64 / power
            }
        }
        _ => return text[start..at].parse().ok(),
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Appends every scalar of a (possibly nested) JSON array to `out`, encoded as `datatype`.
struct Flatten<'a> {
    datatype: DataType,
    out: &'a mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

macro_rules! push_int {
    ($out:expr, $value:expr, $ty:ty, $dt:expr) => {{
        let v = <$ty>::try_from($value)
            .map_err(|_| E::custom(format!("{} is out of range for {}", $value, $dt)))?;
        $out.extend_from_slice(&v.to_le_bytes());
    }};
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of {} values", self.datatype)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while seq
            .next_element_seed(Flatten {
                datatype: self.datatype,
                out: &mut *self.out,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<(), E> {
        match self.datatype {
            DataType::Bool => {
                self.out.push(u8::from(v));
                Ok(())
            }
            other => Err(E::custom(format!("a boolean cannot be a {other} value"))),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<(), E> {
        self.push_integer(i128::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<(), E> {
        self.push_integer(i128::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<(), E> {
        match self.datatype {
            DataType::Fp32 => self.out.extend_from_slice(&(v as f32).to_le_bytes()),
            DataType::Fp64 => self.out.extend_from_slice(&v.to_le_bytes()),
            DataType::Fp16 => self
                .out
                .extend_from_slice(&half::f16::from_f64(v).to_le_bytes()),
            DataType::Bf16 => self
                .out
                .extend_from_slice(&half::bf16::from_f64(v).to_le_bytes()),
            other => {
                return Err(E::custom(format!(
                    "{v} is not a whole number, as {other} needs"
                )));
            }
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<(), E> {
        match self.datatype {
            DataType::Bytes => {
                append_bytes_element(self.out, v.as_bytes());
                Ok(())
            }
            other => Err(E::custom(format!("a string cannot be a {other} value"))),
        }
    }
}

impl Flatten<'_> {
    fn push_integer<E: de::Error>(self, v: i128) -> std::result::Result<(), E> {
        let out = self.out;
        match self.datatype {
            DataType::Bool => match v {
                0 | 1 => out.push(v as u8),
                _ => return Err(E::custom(format!("{v} is not a BOOL value"))),
            },
            DataType::Uint8 => push_int!(out, v, u8, "UINT8"),
            DataType::Uint16 => push_int!(out, v, u16, "UINT16"),
            DataType::Uint32 => push_int!(out, v, u32, "UINT32"),
            DataType::Uint64 => push_int!(out, v, u64, "UINT64"),
            DataType::Int8 => push_int!(out, v, i8, "INT8"),
            DataType::Int16 => push_int!(out, v, i16, "INT16"),
            DataType::Int32 => push_int!(out, v, i32, "INT32"),
            DataType::Int64 => push_int!(out, v, i64, "INT64"),
            DataType::Fp32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
            DataType::Fp64 => out.extend_from_slice(&(v as f64).to_le_bytes()),
            DataType::Fp16 => out.extend_from_slice(&half::f16::from_f64(v as f64).to_le_bytes()),
            DataType::Bf16 => out.extend_from_slice(&half::bf16::from_f64(v as f64).to_le_bytes()),
            DataType::Bytes => {
                return Err(E::custom(format!(
                    "{v} is a number, but BYTES needs strings"
                )));
            }
        }
        Ok(())
    }
}

/// An encoded response: the JSON header, then the binary tensors, which are the outputs' own buffers
/// (not copies) and are written after the header in order.
#[derive(Debug)]
pub struct EncodedResponse {
    /// The JSON part.
    pub json: Bytes,
    /// The binary tensors that follow the JSON, in output order.
    pub binary: Vec<Bytes>,
}

impl EncodedResponse {
    /// `Some(json length)` when binary tensors follow the JSON (the `Inference-Header-Content-Length`).
    pub fn header_length(&self) -> Option<usize> {
        (!self.binary.is_empty()).then_some(self.json.len())
    }

    /// The total body length.
    pub fn len(&self) -> usize {
        self.json.len() + self.binary.iter().map(Bytes::len).sum::<usize>()
    }

    /// Whether the body is empty (it never is: the JSON part always has content).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Serialize)]
struct JsonResponse<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    id: &'a str,
    outputs: Vec<JsonOutputTensor<'a>>,
}

#[derive(Serialize)]
struct JsonOutputTensor<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [i64],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinarySize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<JsonData<'a>>,
}

#[derive(Serialize)]
struct BinarySize {
    binary_data_size: usize,
}

/// Encodes a response. Each output goes binary when its request asked (`binary_data` on the output,
/// else `binary_data_output` on the request); the others are JSON arrays.
pub fn encode_response(
    response: &InferResponse,
    request_parameters: &Parameters,
    requested: &[RequestedOutput],
) -> Result<EncodedResponse> {
    let default_binary = flag(request_parameters, "binary_data_output").unwrap_or(false);
    let binary: Vec<bool> = response
        .outputs
        .iter()
        .map(|o| {
            requested
                .iter()
                .find(|r| r.name == o.name)
                .and_then(|r| flag(&r.parameters, "binary_data"))
                .unwrap_or(default_binary)
        })
        .collect();
    let outputs = response
        .outputs
        .iter()
        .zip(&binary)
        .map(|(o, &is_binary)| JsonOutputTensor {
            name: &o.name,
            datatype: o.datatype.as_str(),
            shape: &o.shape,
            parameters: is_binary.then(|| BinarySize {
                binary_data_size: o.data.len(),
            }),
            data: (!is_binary).then_some(JsonData(o)),
        })
        .collect();
    let header = JsonResponse {
        model_name: &response.model_name,
        model_version: &response.model_version,
        id: &response.id,
        outputs,
    };
    let json = serde_json::to_vec(&header)
        .map_err(|e| ServingError::Internal(format!("cannot encode the response: {e}")))?;
    Ok(EncodedResponse {
        json: Bytes::from(json),
        binary: response
            .outputs
            .iter()
            .zip(&binary)
            .filter(|(_, b)| **b)
            .map(|(o, _)| o.data.clone())
            .collect(),
    })
}

fn flag(parameters: &Parameters, key: &str) -> Option<bool> {
    parameters.get(key).and_then(serde_json::Value::as_bool)
}

/// A tensor's contents written as a flat JSON array.
struct JsonData<'a>(&'a Tensor);

impl Serialize for JsonData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let tensor = self.0;
        let data = &tensor.data[..];
        macro_rules! numbers {
            ($ty:ty, $n:expr, $map:expr) => {{
                let mut seq = serializer.serialize_seq(Some(data.len() / $n))?;
                for chunk in data.chunks_exact($n) {
                    let value = <$ty>::from_le_bytes(chunk.try_into().expect("chunk size"));
                    seq.serialize_element(&$map(value))?;
                }
                seq.end()
            }};
        }
        match tensor.datatype {
            DataType::Bool => {
                let mut seq = serializer.serialize_seq(Some(data.len()))?;
                for &b in data {
                    seq.serialize_element(&(b != 0))?;
                }
                seq.end()
            }
            DataType::Uint8 => numbers!(u8, 1, |v| v),
            DataType::Uint16 => numbers!(u16, 2, |v| v),
            DataType::Uint32 => numbers!(u32, 4, |v| v),
            DataType::Uint64 => numbers!(u64, 8, |v| v),
            DataType::Int8 => numbers!(i8, 1, |v| v),
            DataType::Int16 => numbers!(i16, 2, |v| v),
            DataType::Int32 => numbers!(i32, 4, |v| v),
            DataType::Int64 => numbers!(i64, 8, |v| v),
            DataType::Fp16 => numbers!(u16, 2, |v| half::f16::from_bits(v).to_f32()),
            DataType::Bf16 => numbers!(u16, 2, |v| half::bf16::from_bits(v).to_f32()),
            DataType::Fp32 => numbers!(f32, 4, |v| v),
            DataType::Fp64 => numbers!(f64, 8, |v| v),
            DataType::Bytes => {
                let mut seq = serializer.serialize_seq(None)?;
                for element in tensor.bytes_elements() {
                    seq.serialize_element(&String::from_utf8_lossy(element))?;
                }
                seq.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn floats(data: &[u8]) -> Vec<f32> {
        data.chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn json_data_nested_or_flat() {
        let body = json!({"id": "7", "inputs": [
            {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2.5], [3, 4]]},
            {"name": "b", "shape": [3], "datatype": "INT8", "data": [-128, 0, 127]},
            {"name": "c", "shape": [2], "datatype": "BYTES", "data": ["hé", ""]},
            {"name": "d", "shape": [2], "datatype": "BOOL", "data": [true, false]}
        ], "outputs": [{"name": "y", "parameters": {"binary_data": true}}]});
        let request = decode_request(Bytes::from(body.to_string()), None).unwrap();
        assert_eq!(request.id, "7");
        assert_eq!(floats(&request.inputs[0].data), vec![1.0, 2.5, 3.0, 4.0]);
        assert_eq!(&request.inputs[1].data[..], &[0x80, 0, 0x7f]);
        assert_eq!(
            request.inputs[2].bytes_elements().collect::<Vec<_>>(),
            vec!["hé".as_bytes(), b""]
        );
        assert_eq!(&request.inputs[3].data[..], &[1, 0]);
        assert_eq!(request.outputs[0].name, "y");
    }

    /// The general (serde) decoding of `text` as `datatype`, which the fast path must match.
    fn general_path(datatype: DataType, text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut de = serde_json::Deserializer::from_str(text);
        Flatten {
            datatype,
            out: &mut out,
        }
        .deserialize(&mut de)
        .unwrap();
        out
    }

    #[test]
    fn float_fast_path_matches_the_general_path() {
        let numbers = [
            "0",
            "-0",
            "1",
            "-17",
            "2.5",
            "0.10000000149011612",
            "-3.4028234663852886e38",
            "1.17549435e-38",
            "1e-45",
            "6.02214076E23",
            "123456789",
            "1.5e+3",
            "0.333333333333",
        ];
        let text = format!(
            "[[{}], [ {} ]]",
            numbers[..6].join(","),
            numbers[6..].join(" ,\n\t")
        );
        let fp32 = decode_float_array(DataType::Fp32, &text).expect("numbers take the fast path");
        assert_eq!(fp32, general_path(DataType::Fp32, &text));
        assert_eq!(fp32.len(), numbers.len() * 4);
        // FP64 is correctly rounded, where serde_json's default parser may be one ulp off (it is
        // for two of these numbers).
        let fp64 = decode_float_array(DataType::Fp64, &text).expect("numbers take the fast path");
        let nearest: Vec<u8> = numbers
            .iter()
            .flat_map(|n| n.parse::<f64>().unwrap().to_le_bytes())
            .collect();
        assert_eq!(fp64, nearest);
        let fast = decode_float_array(DataType::Fp32, "[0.1, -2]").unwrap();
        assert_eq!(floats(&fast), vec![0.1, -2.0]);
    }

    #[test]
    fn float_fast_path_gives_the_nearest_double() {
        // Short and long significands, exponents in and beyond f64's exact powers of ten, tokens
        // past 19 digits, subnormals: every one must equal the correctly rounded f64 (and that,
        // narrowed, for FP32).
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut numbers: Vec<String> = [
            "123456789012345678901234",
            "0.0000000000000000000000001",
            "5e-324",
            "1e-30",
            "9007199254740993",
            "-9007199254740992",
            "4.9406564584124654e-324",
            "1e22",
            "1e23",
            "0.000123",
            "-0.0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let single = f32::from_bits((state >> 32) as u32);
            let double = f64::from_bits(state);
            for value in [single as f64, double] {
                if value.is_finite() {
                    numbers.push(format!("{value}"));
                    numbers.push(format!("{value:e}"));
                }
            }
            if single.is_finite() {
                numbers.push(format!("{single}"));
            }
        }
        let fp64 = decode_float_array(DataType::Fp64, &format!("[{}]", numbers.join(","))).unwrap();
        for (i, number) in numbers.iter().enumerate() {
            let nearest: f64 = number.parse().unwrap();
            assert_eq!(fp64[i * 8..i * 8 + 8], nearest.to_le_bytes(), "{number}");
        }
        numbers.retain(|n| n.parse::<f64>().is_ok_and(|v| (v as f32).is_finite()));
        let fp32 = decode_float_array(DataType::Fp32, &format!("[{}]", numbers.join(","))).unwrap();
        for (i, number) in numbers.iter().enumerate() {
            let nearest = number.parse::<f64>().unwrap() as f32;
            assert_eq!(fp32[i * 4..i * 4 + 4], nearest.to_le_bytes(), "{number}");
        }
    }

    #[test]
    fn float_fast_path_leaves_other_data_to_the_general_path() {
        for (datatype, text) in [
            (DataType::Fp32, r#"["1.5"]"#),
            (DataType::Fp32, "[true]"),
            (DataType::Fp32, "[null]"),
            (DataType::Fp32, "[1e39]"),
            (DataType::Fp64, "[1e400]"),
            (DataType::Int32, "[1, 2]"),
            (DataType::Bytes, r#"["a"]"#),
        ] {
            assert_eq!(
                decode_float_array(datatype, text),
                None,
                "{datatype} {text}"
            );
        }
        // An FP32 overflow is infinity, as it always was (parsed as f64, then narrowed).
        let request = decode_request(
            Bytes::from(
                json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1e39]}]})
                    .to_string(),
            ),
            None,
        )
        .unwrap();
        assert_eq!(floats(&request.inputs[0].data), vec![f32::INFINITY]);
    }

    #[test]
    fn json_errors_name_the_tensor() {
        let cases = [
            json!({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}]}),
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "INT8", "data": [300]}]}),
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1.5]}]}),
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP33", "data": [1]}]}),
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}),
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": ["a"]}]}),
        ];
        for case in cases {
            let err = decode_request(Bytes::from(case.to_string()), None).unwrap_err();
            assert!(matches!(err, ServingError::BadRequest(_)), "{err}");
            assert!(err.to_string().contains("'x'"), "{case}: {err}");
        }
        let err = decode_request(Bytes::from_static(b"{not json"), None).unwrap_err();
        assert!(matches!(err, ServingError::BadRequest(_)));
    }

    #[test]
    fn binary_inputs_are_slices_of_the_body() {
        let header = json!({"inputs": [
            {"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
            {"name": "s", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 7}}
        ]})
        .to_string();
        let mut body = header.clone().into_bytes();
        body.extend_from_slice(&1.5f32.to_le_bytes());
        body.extend_from_slice(&(-2f32).to_le_bytes());
        body.extend_from_slice(&[3, 0, 0, 0, b'a', b'b', b'c']);
        let body = Bytes::from(body);
        let request = decode_request(body.clone(), Some(header.len())).unwrap();
        assert_eq!(floats(&request.inputs[0].data), vec![1.5, -2.0]);
        assert_eq!(
            request.inputs[0].data.as_ptr(),
            body[header.len()..].as_ptr(),
            "no copy"
        );
        assert_eq!(request.inputs[1].bytes_elements().next().unwrap(), b"abc");

        let short = decode_request(body.slice(..body.len() - 1), Some(header.len())).unwrap_err();
        assert!(short.to_string().contains("'s'"), "{short}");
        assert!(decode_request(body.clone(), Some(body.len() + 1)).is_err());
    }

    #[test]
    fn responses_mix_json_and_binary_outputs() {
        let response = InferResponse {
            model_name: "m".into(),
            model_version: "1".into(),
            id: "".into(),
            outputs: vec![
                Tensor::new(
                    "a",
                    DataType::Fp32,
                    vec![2],
                    Bytes::from(
                        [1f32, 2.0]
                            .iter()
                            .flat_map(|v| v.to_le_bytes())
                            .collect::<Vec<_>>(),
                    ),
                )
                .unwrap(),
                Tensor::new(
                    "b",
                    DataType::Int64,
                    vec![1],
                    Bytes::from(7i64.to_le_bytes().to_vec()),
                )
                .unwrap(),
            ],
        };
        let json_only = encode_response(&response, &Parameters::new(), &[]).unwrap();
        assert_eq!(json_only.header_length(), None);
        let value: serde_json::Value = serde_json::from_slice(&json_only.json).unwrap();
        assert_eq!(value["outputs"][0]["data"], json!([1.0, 2.0]));
        assert_eq!(value["outputs"][1]["data"], json!([7]));
        assert!(value.get("id").is_none());

        let mut params = Parameters::new();
        params.insert("binary_data_output".into(), json!(true));
        let mut b_json = RequestedOutput::named("b");
        b_json.parameters.insert("binary_data".into(), json!(false));
        let mixed = encode_response(&response, &params, &[b_json]).unwrap();
        assert_eq!(mixed.header_length(), Some(mixed.json.len()));
        let value: serde_json::Value = serde_json::from_slice(&mixed.json).unwrap();
        assert_eq!(
            value["outputs"][0]["parameters"]["binary_data_size"],
            json!(8)
        );
        assert!(value["outputs"][0].get("data").is_none());
        assert_eq!(value["outputs"][1]["data"], json!([7]));
        assert_eq!(mixed.binary.len(), 1);
        assert_eq!(floats(&mixed.binary[0]), vec![1.0, 2.0]);
        assert_eq!(
            mixed.binary[0].as_ptr(),
            response.outputs[0].data.as_ptr(),
            "no copy"
        );
    }

    #[test]
    fn half_precision_and_bytes_as_json() {
        let f16 = half::f16::from_f32(1.5).to_le_bytes();
        let response = InferResponse {
            model_name: "m".into(),
            model_version: "1".into(),
            id: "x".into(),
            outputs: vec![
                Tensor::new("h", DataType::Fp16, vec![1], Bytes::from(f16.to_vec())).unwrap(),
                Tensor::new(
                    "s",
                    DataType::Bytes,
                    vec![1],
                    Bytes::from(crate::tensor::encode_bytes_elements([&b"ok"[..]])),
                )
                .unwrap(),
            ],
        };
        let encoded = encode_response(&response, &Parameters::new(), &[]).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&encoded.json).unwrap();
        assert_eq!(value["outputs"][0]["data"], json!([1.5]));
        assert_eq!(value["outputs"][1]["data"], json!(["ok"]));
        assert_eq!(value["id"], json!("x"));
    }
}
