//! Cerulean's protocol definitions and their generated Rust code.
//!
//! * [`inference`]: the KServe v2 / Triton gRPC service `inference.GRPCInferenceService` and
//!   the Triton model configuration (`inference.ModelConfig`), wire-compatible with Triton so
//!   that stock clients such as Python's `tritonclient.grpc` work unchanged.
//! * [`jobs`]: Cerulean's training-job service `cerulean.jobs.v1.JobService`.
//! * [`model_config`]: reading and writing model configurations as `config.pbtxt` (protobuf
//!   text format) and as the JSON that `GET /v2/models/{name}/config` returns.
//! * [`FILE_DESCRIPTOR_SET`] / [`descriptor_pool`]: the compiled descriptors, for reflection.
//!
//! Every proto `bytes` field is generated as [`bytes::Bytes`] (`Vec<Bytes>` when repeated), so
//! decoding a request from a `Bytes` buffer slices it instead of copying tensor data.

use std::sync::LazyLock;

use prost_reflect::DescriptorPool;

/// Generated messages, client and server of the `inference` proto package.
///
/// The server side is
/// [`grpc_inference_service_server::GrpcInferenceService`] (the trait; every method has a
/// default body that answers `UNIMPLEMENTED`) wrapped by
/// [`grpc_inference_service_server::GrpcInferenceServiceServer`]; the client is
/// [`grpc_inference_service_client::GrpcInferenceServiceClient`].
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    rustdoc::all,
    unreachable_pub
)]
pub mod inference {
    tonic::include_proto!("inference");
}

/// Generated messages, client and server of Cerulean's training-job service
/// (`cerulean.jobs.v1.JobService`): submit, get, list and cancel jobs, stream their logs and
/// metrics. The server trait is [`jobs::job_service_server::JobService`]; the client is
/// [`jobs::job_service_client::JobServiceClient`].
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    rustdoc::all,
    unreachable_pub
)]
pub mod jobs {
    tonic::include_proto!("cerulean.jobs.v1");
}

/// Full name of the training-job gRPC service.
pub const JOB_SERVICE_NAME: &str = "cerulean.jobs.v1.JobService";

/// The encoded `google.protobuf.FileDescriptorSet` of every Cerulean proto file (without
/// source info), for gRPC reflection and for [`prost_reflect`].
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/cerulean_descriptor.bin"));

/// Full name of the inference gRPC service.
pub const INFERENCE_SERVICE_NAME: &str = "inference.GRPCInferenceService";

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(FILE_DESCRIPTOR_SET)
        .expect("the descriptor set embedded at build time decodes")
});

/// The descriptor pool built from [`FILE_DESCRIPTOR_SET`] (decoded once, on first use).
pub fn descriptor_pool() -> &'static DescriptorPool {
    &POOL
}

pub mod model_config;

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use prost::Message;

    use super::inference::{
        ModelInferRequest, ModelRepositoryParameter, RepositoryModelLoadRequest,
        model_infer_request::InferInputTensor, model_repository_parameter::ParameterChoice,
    };
    use super::*;

    #[test]
    fn raw_input_contents_is_field_7_and_bytes() {
        let request = ModelInferRequest {
            raw_input_contents: vec![Bytes::from_static(&[1, 2, 3])],
            ..Default::default()
        };
        // Field 7, wire type 2 (length-delimited): tag byte (7 << 3) | 2 = 0x3a.
        assert_eq!(request.encode_to_vec(), vec![0x3a, 3, 1, 2, 3]);
    }

    #[test]
    fn raw_input_contents_decode_without_copying() {
        let request = ModelInferRequest {
            model_name: "m".into(),
            inputs: vec![InferInputTensor {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![1, 4],
                ..Default::default()
            }],
            raw_input_contents: vec![Bytes::from(vec![7u8; 16])],
            ..Default::default()
        };
        let wire = Bytes::from(request.encode_to_vec());
        let decoded = ModelInferRequest::decode(wire.clone()).unwrap();
        assert_eq!(decoded, request);
        let raw = &decoded.raw_input_contents[0];
        let wire_range = wire.as_ptr() as usize..wire.as_ptr() as usize + wire.len();
        assert!(
            wire_range.contains(&(raw.as_ptr() as usize)),
            "raw_input_contents must be a slice of the request buffer"
        );
    }

    #[test]
    fn repository_load_request_numbers_follow_triton() {
        let request = RepositoryModelLoadRequest {
            model_name: "m".into(),
            ..Default::default()
        };
        // model_name is field 2 (tag 0x12); repository_name is field 1.
        assert_eq!(request.encode_to_vec(), vec![0x12, 1, b'm']);
        let request = RepositoryModelLoadRequest {
            repository_name: "r".into(),
            ..Default::default()
        };
        assert_eq!(request.encode_to_vec(), vec![0x0a, 1, b'r']);
        let param = ModelRepositoryParameter {
            parameter_choice: Some(ParameterChoice::BytesParam(Bytes::from_static(b"z"))),
        };
        assert_eq!(param.encode_to_vec(), vec![0x22, 1, b'z']);
    }

    #[test]
    fn descriptor_pool_has_every_triton_rpc() {
        let service = descriptor_pool()
            .get_service_by_name(INFERENCE_SERVICE_NAME)
            .expect("service in pool");
        let methods: Vec<String> = service.methods().map(|m| m.name().to_owned()).collect();
        let expected = [
            "ServerLive",
            "ServerReady",
            "ModelReady",
            "ServerMetadata",
            "ModelMetadata",
            "ModelInfer",
            "ModelStreamInfer",
            "ModelConfig",
            "ModelStatistics",
            "RepositoryIndex",
            "RepositoryModelLoad",
            "RepositoryModelUnload",
            "SystemSharedMemoryStatus",
            "SystemSharedMemoryRegister",
            "SystemSharedMemoryUnregister",
            "CudaSharedMemoryStatus",
            "CudaSharedMemoryRegister",
            "CudaSharedMemoryUnregister",
            "TraceSetting",
            "LogSettings",
        ];
        assert_eq!(methods, expected);
        let stream = service
            .methods()
            .find(|m| m.name() == "ModelStreamInfer")
            .unwrap();
        assert!(stream.is_client_streaming() && stream.is_server_streaming());
    }

    #[test]
    fn infer_parameter_has_double_and_uint64() {
        let message = descriptor_pool()
            .get_message_by_name("inference.InferParameter")
            .unwrap();
        assert_eq!(
            message.get_field_by_name("double_param").unwrap().number(),
            4
        );
        assert_eq!(
            message.get_field_by_name("uint64_param").unwrap().number(),
            5
        );
    }

    #[tokio::test]
    async fn default_stubs_answer_unimplemented() {
        use super::inference::grpc_inference_service_server::{
            GrpcInferenceService, GrpcInferenceServiceServer,
        };

        struct Empty;
        impl GrpcInferenceService for Empty {}

        let service = GrpcInferenceServiceServer::new(Empty);
        let status = Empty
            .server_live(tonic::Request::new(Default::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        drop(service);
    }
}
