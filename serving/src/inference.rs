//! Protocol-neutral inference requests and responses: what the REST and gRPC layers decode into and
//! encode from.

use crate::tensor::Tensor;

/// Request and tensor parameters (v2 allows strings, numbers and booleans).
pub type Parameters = serde_json::Map<String, serde_json::Value>;

/// An inference request.
#[derive(Debug, Clone, Default)]
pub struct InferRequest {
    /// The client's request id, echoed back.
    pub id: String,
    /// Request parameters.
    pub parameters: Parameters,
    /// The input tensors.
    pub inputs: Vec<Tensor>,
    /// The outputs asked for; empty means every output.
    pub outputs: Vec<RequestedOutput>,
}

/// One output a client asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedOutput {
    /// The output's name.
    pub name: String,
    /// Output parameters (e.g. `binary_data` over HTTP).
    pub parameters: Parameters,
}

impl RequestedOutput {
    /// Asks for `name` with no parameters.
    pub fn named(name: impl Into<String>) -> RequestedOutput {
        RequestedOutput {
            name: name.into(),
            parameters: Parameters::new(),
        }
    }
}

/// An inference response.
#[derive(Debug, Clone)]
pub struct InferResponse {
    /// The model that answered.
    pub model_name: String,
    /// Its version.
    pub model_version: String,
    /// The request's id.
    pub id: String,
    /// The outputs, in the order requested (or the model's order when none were named).
    pub outputs: Vec<Tensor>,
}

/// A tensor as model metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TensorMetadata {
    /// The name.
    pub name: String,
    /// The v2 datatype name.
    pub datatype: String,
    /// The full shape, `-1` for variable dimensions (including the batch dimension).
    pub shape: Vec<i64>,
}

/// The answer to a model-metadata request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelMetadata {
    /// The model's name.
    pub name: String,
    /// The versions being served, as strings.
    pub versions: Vec<String>,
    /// The platform, e.g. `onnxruntime_onnx`.
    pub platform: String,
    /// The inputs.
    pub inputs: Vec<TensorMetadata>,
    /// The outputs.
    pub outputs: Vec<TensorMetadata>,
}
