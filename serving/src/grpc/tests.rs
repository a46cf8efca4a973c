use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use pb::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::*;
use crate::DataType;
use crate::backend::candle::tests::write_mlp;
use crate::config::ModelDefaults;
use crate::inference::InferRequest;
use crate::metrics::Metrics;
use crate::repository::{ModelRepository, RepositorySources};
use crate::server::ServerOptions;
use crate::tensor::Tensor;

async fn server_over(root: &Path) -> Arc<InferenceServer> {
    let repo = ModelRepository::new(
        RepositorySources {
            roots: vec![root.to_path_buf()],
            models: vec![],
            builtin: vec![],
        },
        ModelDefaults::default(),
        Metrics::new(),
    );
    repo.load_all().await;
    let server = InferenceServer::new(Arc::new(repo), ServerOptions::default());
    server.mark_ready(true);
    server
}

/// A repository holding `mlp` version 1 (3 features → scores [2] and a BYTES label).
fn mlp_repository() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("mlp/1");
    std::fs::create_dir_all(&dir).unwrap();
    write_mlp(&dir, true);
    root
}

fn f32_bytes(values: &[f32]) -> Bytes {
    Bytes::from(
        values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
}

fn raw_request(id: &str, rows: &[[f32; 3]]) -> pb::ModelInferRequest {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    pb::ModelInferRequest {
        model_name: "mlp".into(),
        id: id.into(),
        inputs: vec![InferInputTensor {
            name: "features".into(),
            datatype: "FP32".into(),
            shape: vec![rows.len() as i64, 3],
            ..Default::default()
        }],
        raw_input_contents: vec![f32_bytes(&flat)],
        ..Default::default()
    }
}

#[tokio::test]
async fn model_ready_for_an_unknown_model_is_false_not_an_error() {
    let root = tempfile::tempdir().unwrap();
    let service = GrpcService::new(server_over(root.path()).await, Draining::new());
    let reply = service
        .model_ready(Request::new(pb::ModelReadyRequest {
            name: "ghost".into(),
            version: String::new(),
        }))
        .await
        .unwrap();
    assert!(!reply.into_inner().ready);
    let reply = service
        .model_ready(Request::new(pb::ModelReadyRequest {
            name: "ghost".into(),
            version: "x".into(),
        }))
        .await
        .unwrap();
    assert!(!reply.into_inner().ready);
    let live = service
        .server_live(Request::new(pb::ServerLiveRequest {}))
        .await
        .unwrap();
    assert!(live.into_inner().live);
    let metadata = service
        .server_metadata(Request::new(pb::ServerMetadataRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metadata.name, "cerulean");
    assert!(metadata.extensions.iter().any(|e| e == "model_repository"));
}

#[test]
fn load_config_parameter() {
    let string = |s: &str| pb::ModelRepositoryParameter {
        parameter_choice: Some(ParameterChoice::StringParam(s.to_string())),
    };
    assert_eq!(load_config(&HashMap::new()).unwrap(), None);
    let params = HashMap::from([("config".to_string(), string(r#"{"max_batch_size": 4}"#))]);
    assert_eq!(load_config(&params).unwrap().unwrap().max_batch_size, 4);
    let params = HashMap::from([("config".to_string(), string("{not json"))]);
    assert!(matches!(
        load_config(&params),
        Err(ServingError::BadRequest(_))
    ));
    let params = HashMap::from([(
        "config".to_string(),
        pb::ModelRepositoryParameter {
            parameter_choice: Some(ParameterChoice::BoolParam(true)),
        },
    )]);
    assert!(matches!(
        load_config(&params),
        Err(ServingError::BadRequest(_))
    ));
    let params = HashMap::from([("file:1/model.onnx".to_string(), string(""))]);
    assert!(matches!(
        load_config(&params),
        Err(ServingError::Unsupported(_))
    ));
}

#[tokio::test]
async fn stream_errors_carry_the_id_and_the_stream_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let server = server_over(root.path()).await;
    let requests = (0..3).map(|i| {
        Ok(pb::ModelInferRequest {
            model_name: "ghost".into(),
            id: i.to_string(),
            ..Default::default()
        })
    });
    let (tx, rx) = mpsc::channel(4);
    drive_stream(
        server.clone(),
        futures::stream::iter(requests),
        tx,
        Draining::new(),
    )
    .await;
    let responses: Vec<_> = ReceiverStream::new(rx).collect().await;
    assert_eq!(responses.len(), 3);
    let mut ids: Vec<String> = responses
        .into_iter()
        .map(|r| {
            let r = r.unwrap();
            assert!(r.error_message.contains("ghost"), "{}", r.error_message);
            r.infer_response.unwrap().id
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["0", "1", "2"]);

    // A broken transport ends the call with its status.
    let requests = vec![Err(Status::cancelled("gone"))];
    let (tx, rx) = mpsc::channel(4);
    drive_stream(server, futures::stream::iter(requests), tx, Draining::new()).await;
    let responses: Vec<_> = ReceiverStream::new(rx).collect().await;
    assert_eq!(responses.len(), 1);
    assert_eq!(
        responses[0].as_ref().unwrap_err().code(),
        tonic::Code::Cancelled
    );
}

#[tokio::test]
async fn end_to_end_over_a_real_connection() {
    let root = mlp_repository();
    let server = server_over(root.path()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(serve_grpc(server.clone(), listener, async {
        let _ = stopped.await;
    }));
    let endpoint = format!("http://{addr}");
    let mut client = GrpcInferenceServiceClient::connect(endpoint.clone())
        .await
        .unwrap();

    // Readiness, with a traceparent that the server must accept.
    let mut ready = Request::new(pb::ServerReadyRequest {});
    ready.metadata_mut().insert(
        "traceparent",
        crate::trace::tests::TRACEPARENT.parse().unwrap(),
    );
    assert!(client.server_ready(ready).await.unwrap().into_inner().ready);
    let model_ready = |name: &str| pb::ModelReadyRequest {
        name: name.into(),
        version: String::new(),
    };
    assert!(
        client
            .model_ready(model_ready("mlp"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !client
            .model_ready(model_ready("ghost"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );

    // Metadata.
    let metadata = client
        .model_metadata(pb::ModelMetadataRequest {
            name: "mlp".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metadata.name, "mlp");
    assert_eq!(metadata.versions, vec!["1"]);
    assert_eq!(metadata.inputs.len(), 1);
    assert_eq!(metadata.inputs[0].name, "features");
    assert_eq!(metadata.inputs[0].datatype, "FP32");
    assert_eq!(metadata.inputs[0].shape, vec![-1, 3]);
    let outputs: Vec<&str> = metadata.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outputs, ["scores", "label"]);

    // Infer with raw contents: the answer matches the core's.
    let rows = [[1.0f32, 2.0, 3.0], [-1.0, 0.5, 0.0]];
    let reply = client
        .model_infer(raw_request("r1", &rows))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.model_name, "mlp");
    assert_eq!(reply.model_version, "1");
    assert_eq!(reply.id, "r1");
    assert_eq!(reply.outputs.len(), 2);
    assert_eq!(reply.raw_output_contents.len(), 2);
    assert_eq!(reply.outputs[0].name, "scores");
    assert_eq!(reply.outputs[0].datatype, "FP32");
    assert_eq!(reply.outputs[0].shape, vec![2, 2]);
    assert_eq!(reply.outputs[1].datatype, "BYTES");
    assert!(reply.outputs.iter().all(|o| o.contents.is_none()));
    let direct = server
        .infer(
            "mlp",
            None,
            InferRequest {
                inputs: vec![
                    Tensor::new(
                        "features",
                        DataType::Fp32,
                        vec![2, 3],
                        f32_bytes(&rows.concat()),
                    )
                    .unwrap(),
                ],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(reply.raw_output_contents[0], direct.outputs[0].data);
    assert_eq!(reply.raw_output_contents[1], direct.outputs[1].data);

    // Typed contents and a requested output give the same data.
    let typed = pb::ModelInferRequest {
        model_name: "mlp".into(),
        model_version: "1".into(),
        inputs: vec![InferInputTensor {
            name: "features".into(),
            datatype: "FP32".into(),
            shape: vec![2, 3],
            contents: Some(pb::InferTensorContents {
                fp32_contents: rows.concat(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        outputs: vec![InferRequestedOutputTensor {
            name: "scores".into(),
            parameters: HashMap::new(),
        }],
        ..Default::default()
    };
    let reply = client.model_infer(typed).await.unwrap().into_inner();
    assert_eq!(reply.outputs.len(), 1);
    assert_eq!(
        reply.raw_output_contents,
        vec![direct.outputs[0].data.clone()]
    );

    // Streaming: three requests plus one that fails; every one is answered and the stream goes on.
    let mut requests: Vec<pb::ModelInferRequest> = (0..3)
        .map(|i| raw_request(&format!("s{i}"), &rows[..1]))
        .collect();
    requests.push(pb::ModelInferRequest {
        model_name: "ghost".into(),
        id: "bad".into(),
        ..Default::default()
    });
    let mut stream = client
        .model_stream_infer(futures::stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        let response = message.infer_response.unwrap();
        if message.error_message.is_empty() {
            assert_eq!(response.raw_output_contents.len(), 2);
            assert_eq!(response.outputs[0].shape, vec![1, 2]);
            ok.push(response.id);
        } else {
            assert!(
                message.error_message.contains("ghost"),
                "{}",
                message.error_message
            );
            failed.push(response.id);
        }
    }
    ok.sort();
    assert_eq!(ok, ["s0", "s1", "s2"]);
    assert_eq!(failed, ["bad"]);

    // Errors map onto gRPC codes.
    let mut unknown = raw_request("x", &rows);
    unknown.model_name = "ghost".into();
    let status = client.model_infer(unknown).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    let mut short = raw_request("x", &rows);
    short.raw_input_contents[0] = Bytes::from_static(&[0; 4]);
    let status = client.model_infer(short).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("features"),
        "{}",
        status.message()
    );
    let status = client
        .model_metadata(pb::ModelMetadataRequest {
            name: "ghost".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    // Configuration, statistics and the repository index.
    let config = client
        .model_config(pb::ModelConfigRequest {
            name: "mlp".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert!(config.max_batch_size > 0, "{config:?}");
    let stats = client
        .model_statistics(pb::ModelStatisticsRequest {
            name: String::new(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.model_stats.len(), 1);
    let mlp = &stats.model_stats[0];
    assert_eq!((mlp.name.as_str(), mlp.version.as_str()), ("mlp", "1"));
    let inference = mlp.inference_stats.unwrap();
    assert_eq!(
        inference.success.unwrap().count,
        6,
        "raw, direct, typed and three streamed"
    );
    assert!(
        mlp.inference_count >= 7 && mlp.execution_count >= 1,
        "{mlp:?}"
    );
    assert!(!mlp.batch_stats.is_empty());
    let index = client
        .repository_index(pb::RepositoryIndexRequest {
            repository_name: String::new(),
            ready: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(index.models.len(), 1);
    assert_eq!(index.models[0].name, "mlp");
    assert_eq!(index.models[0].version, "1");
    assert_eq!(index.models[0].state, "READY");

    // Unload, then load with a configuration given in the request.
    client
        .repository_model_unload(pb::RepositoryModelUnloadRequest {
            repository_name: String::new(),
            model_name: "mlp".into(),
            parameters: HashMap::new(),
        })
        .await
        .unwrap();
    assert!(
        !client
            .model_ready(model_ready("mlp"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let index = client
        .repository_index(pb::RepositoryIndexRequest {
            repository_name: String::new(),
            ready: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(index.models.is_empty(), "{index:?}");
    let config = pb::ModelRepositoryParameter {
        parameter_choice: Some(ParameterChoice::StringParam(
            r#"{"max_batch_size": 4}"#.into(),
        )),
    };
    client
        .repository_model_load(pb::RepositoryModelLoadRequest {
            repository_name: String::new(),
            model_name: "mlp".into(),
            parameters: HashMap::from([("config".to_string(), config)]),
        })
        .await
        .unwrap();
    assert!(
        client
            .model_ready(model_ready("mlp"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let config = client
        .model_config(pb::ModelConfigRequest {
            name: "mlp".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(config.max_batch_size, 4);
    let status = client
        .repository_model_load(pb::RepositoryModelLoadRequest {
            repository_name: String::new(),
            model_name: "ghost".into(),
            parameters: HashMap::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    // The standard health service follows readiness.
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let check = |service: &str| HealthCheckRequest {
        service: service.to_string(),
    };
    for service in ["", "inference.GRPCInferenceService"] {
        let status = health
            .check(check(service))
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }
    let status = health.check(check("nope")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    let mut watch = health.watch(check("")).await.unwrap().into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );
    server.mark_ready(false);
    let status = health.check(check("")).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::NotServing as i32);
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::NotServing as i32
    );
    server.mark_ready(true);
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );

    // A stream the client keeps open, and the watch, must not hold the shutdown: the stream
    // answers what it has read and ends, the watch sends NOT_SERVING and ends.
    let (requests_tx, requests_rx) = mpsc::channel(4);
    let mut open_stream = client
        .model_stream_infer(ReceiverStream::new(requests_rx))
        .await
        .unwrap()
        .into_inner();
    requests_tx
        .send(raw_request("open", &rows[..1]))
        .await
        .unwrap();
    let first = open_stream.message().await.unwrap().unwrap();
    assert_eq!(first.infer_response.unwrap().id, "open");

    stop.send(()).unwrap();
    let finished = tokio::time::timeout(std::time::Duration::from_secs(10), serving).await;
    finished
        .expect("shutdown finished while streams were open")
        .unwrap()
        .unwrap();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::NotServing as i32
    );
    assert!(watch.message().await.unwrap().is_none(), "the watch ended");
    assert!(
        open_stream.message().await.unwrap().is_none(),
        "the stream ended"
    );
    drop(requests_tx);
}
