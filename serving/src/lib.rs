//! Cerulean's inference server: the KServe Open Inference Protocol v2 with Triton's extensions over
//! REST and gRPC, a Triton-layout model repository, ONNX Runtime and candle backends, and dynamic
//! batching, and registered models served straight from the model registry ([`registry_source`]).

pub mod backend;
pub mod config;
pub mod datatype;
pub mod error;
pub mod grpc;
pub mod http;
pub mod inference;
pub mod metrics;
pub mod model;
pub mod registry_source;
pub mod repository;
pub mod scheduler;
pub mod server;
pub mod signature;
pub mod stats;
pub mod tensor;
pub mod trace;

pub use datatype::DataType;
pub use error::{Result, ServingError};
pub use tensor::Tensor;
