//! Cerulean's inference server: the KServe Open Inference Protocol v2 with Triton's extensions over
//! REST and gRPC, a Triton-layout model repository, ONNX Runtime and candle backends, and dynamic
//! batching.

pub mod backend;
pub mod datatype;
pub mod error;
pub mod metrics;
pub mod scheduler;
pub mod signature;
pub mod stats;
pub mod tensor;

pub use datatype::DataType;
pub use error::{Result, ServingError};
pub use tensor::Tensor;
