//! The gRPC front end: Triton's `inference.GRPCInferenceService` (KServe v2 plus Triton's streaming,
//! configuration, statistics and repository extensions) over the protocol-neutral
//! [`InferenceServer`], and the standard `grpc.health.v1.Health` service.
//!
//! * [`GrpcService`] implements the generated service trait; shared-memory, trace and log RPCs keep
//!   the generated `UNIMPLEMENTED` answers.
//! * [`inference_service`] wraps it with the server's message-size limits, [`grpc_routes`] adds
//!   the health service, and [`serve_grpc`] runs both on a listener until a shutdown signal, then
//!   fires [`Draining`] so that open streams and health watches end instead of holding the shutdown.
//! * An RPC with an incoming W3C `traceparent` runs in an `info_span!("grpc", method, trace_id,
//!   parent_id)` that carries it; any other in a `debug_span!("grpc", method)` ([`trace`]).
//!
//! Tensor data is never copied on the way through: `raw_input_contents` entries become the inputs'
//! bytes and the outputs' bytes become `raw_output_contents` ([`convert`]).

pub mod convert;
pub mod health;
pub mod trace;

use std::future::Future;
use std::sync::Arc;

use cerulean_proto::inference as pb;
use cerulean_proto::model_config;
use futures::Stream;
use futures::stream::{FuturesUnordered, StreamExt};
use pb::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use pb::model_repository_parameter::ParameterChoice;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::codegen::BoxStream;
use tonic::service::Routes;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::error::{Result, ServingError};
use crate::server::InferenceServer;

pub use health::{ReadinessHealth, health_service};

/// Most requests of one `ModelStreamInfer` call processed at once; beyond it the server stops
/// reading the stream (HTTP/2 flow control then holds the client back) until one completes.
pub const MAX_STREAM_IN_FLIGHT: usize = 256;

/// Responses of one `ModelStreamInfer` call buffered for a slow reader.
const STREAM_BUFFER: usize = 32;

/// Tells the long-lived calls, `ModelStreamInfer` and the health service's `Watch`, that the server
/// is stopping, so that a graceful shutdown does not wait forever on a client that keeps a stream
/// open: a stream call stops reading new requests, answers those in flight and ends; a watch
/// sends `NOT_SERVING` and ends. [`serve_grpc`] starts draining when its shutdown signal fires.
#[derive(Debug, Clone)]
pub struct Draining {
    tx: Arc<watch::Sender<bool>>,
}

impl Draining {
    /// A signal that has not fired.
    pub fn new() -> Draining {
        Draining {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    /// Fires the signal (idempotent).
    pub fn start(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the signal has fired.
    pub fn is_draining(&self) -> bool {
        *self.tx.borrow()
    }

    /// Completes once the signal has fired.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so this cannot fail.
        let _ = rx.wait_for(|draining| *draining).await;
    }
}

impl Default for Draining {
    fn default() -> Self {
        Draining::new()
    }
}

/// The `inference.GRPCInferenceService` implementation over an [`InferenceServer`].
#[derive(Clone)]
pub struct GrpcService {
    server: Arc<InferenceServer>,
    draining: Draining,
}

impl GrpcService {
    /// A service answering from `server`; its stream calls end when `draining` fires.
    pub fn new(server: Arc<InferenceServer>, draining: Draining) -> GrpcService {
        GrpcService { server, draining }
    }

    /// The server it answers from.
    pub fn server(&self) -> &Arc<InferenceServer> {
        &self.server
    }
}

/// The inference service with the decoding and encoding limits set to
/// `server.options().grpc_message_limit`.
pub fn inference_service(
    server: Arc<InferenceServer>,
    draining: Draining,
) -> GrpcInferenceServiceServer<GrpcService> {
    let limit = server.options().grpc_message_limit;
    GrpcInferenceServiceServer::new(GrpcService::new(server, draining))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit)
}

/// The inference service and the health service, as routes that a tonic server can serve (and to
/// which other services, such as Cerulean's job and registry services, can be added). Fire
/// `draining` when the server's shutdown begins.
pub fn grpc_routes(server: Arc<InferenceServer>, draining: Draining) -> Routes {
    Routes::new(inference_service(server.clone(), draining.clone()))
        .add_service(health_service(server, draining))
}

/// Serves [`grpc_routes`] on `listener` until `shutdown` completes; then it stops accepting
/// connections, fires [`Draining`] and returns once the calls in flight have finished.
pub async fn serve_grpc(
    server: Arc<InferenceServer>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let draining = Draining::new();
    let routes = grpc_routes(server, draining.clone());
    serve_grpc_routes(routes, listener, async move {
        shutdown.await;
        draining.start();
    })
    .await
}

/// Serves any set of gRPC `routes` on `listener` until `shutdown` completes. Accepted connections
/// get `TCP_NODELAY`, so small responses are not held back by Nagle's algorithm.
pub async fn serve_grpc_routes(
    routes: Routes,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let incoming = TcpListenerStream::new(listener).map(|connection| {
        if let Ok(stream) = &connection
            && let Err(err) = stream.set_nodelay(true)
        {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        connection
    });
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// Runs one RPC body inside its tracing span and logs a failure at debug level.
async fn traced<T, R, F, Fut>(
    method: &'static str,
    request: Request<T>,
    body: F,
) -> Result<Response<R>, Status>
where
    F: FnOnce(T) -> Fut,
    Fut: Future<Output = Result<R>>,
{
    let span = trace::rpc_span(method, request.metadata());
    let message = request.into_inner();
    async move {
        match body(message).await {
            Ok(reply) => Ok(Response::new(reply)),
            Err(err) => {
                tracing::debug!(error = %err, "request failed");
                Err(Status::from(err))
            }
        }
    }
    .instrument(span)
    .await
}

/// `None` for the empty string, which the wire uses for "let the server choose".
fn optional(value: &str) -> Option<&str> {
    if value.is_empty() { None } else { Some(value) }
}

/// Decodes and runs one inference request.
async fn infer(
    server: &InferenceServer,
    request: pb::ModelInferRequest,
) -> Result<pb::ModelInferResponse> {
    let decoded = convert::decode_infer_request(request)?;
    let response = server
        .infer(
            &decoded.model_name,
            decoded.model_version.as_deref(),
            decoded.request,
        )
        .await?;
    Ok(convert::encode_infer_response(response))
}

/// One stream request's answer: the response, or the error with the request's id (as Triton sets it,
/// so that the client knows which request failed) and the stream goes on.
async fn stream_infer_one(
    server: Arc<InferenceServer>,
    request: pb::ModelInferRequest,
) -> pb::ModelStreamInferResponse {
    let failed = pb::ModelInferResponse {
        model_name: request.model_name.clone(),
        model_version: request.model_version.clone(),
        id: request.id.clone(),
        ..Default::default()
    };
    match infer(&server, request).await {
        Ok(response) => pb::ModelStreamInferResponse {
            error_message: String::new(),
            infer_response: Some(response),
        },
        Err(err) => {
            tracing::debug!(id = %failed.id, error = %err, "stream request failed");
            pb::ModelStreamInferResponse {
                error_message: err.to_string(),
                infer_response: Some(failed),
            }
        }
    }
}

/// Reads a `ModelStreamInfer` call's requests, runs them concurrently (at most
/// [`MAX_STREAM_IN_FLIGHT`] at a time) and sends each response as it completes. It ends once the
/// client has closed its side (or the server is draining) and every response is sent, when the
/// client goes away (the requests in flight are dropped, which the scheduler skips), or on a
/// transport error, which ends the call.
async fn drive_stream<S>(
    server: Arc<InferenceServer>,
    mut incoming: S,
    tx: mpsc::Sender<Result<pb::ModelStreamInferResponse, Status>>,
    draining: Draining,
) where
    S: Stream<Item = Result<pb::ModelInferRequest, Status>> + Unpin,
{
    let mut in_flight = FuturesUnordered::new();
    let mut reading = true;
    loop {
        if !reading && in_flight.is_empty() {
            return;
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = draining.wait(), if reading => {
                tracing::debug!(in_flight = in_flight.len(), "server draining: ending the stream");
                reading = false;
            }
            next = incoming.next(), if reading && in_flight.len() < MAX_STREAM_IN_FLIGHT => match next {
                Some(Ok(request)) => in_flight.push(stream_infer_one(server.clone(), request)),
                Some(Err(status)) => {
                    tracing::debug!(code = ?status.code(), message = status.message(), "stream broke");
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                None => reading = false,
            },
            Some(response) = in_flight.next(), if !in_flight.is_empty() => {
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The `config` parameter of a load request: a JSON `ModelConfig` that replaces the model's own.
fn load_config(
    parameters: &std::collections::HashMap<String, pb::ModelRepositoryParameter>,
) -> Result<Option<pb::ModelConfig>> {
    if let Some(key) = parameters.keys().find(|k| k.starts_with("file:")) {
        return Err(ServingError::Unsupported(format!(
            "load parameter '{key}': overriding model files in a load request is not supported"
        )));
    }
    let Some(parameter) = parameters.get("config") else {
        return Ok(None);
    };
    let text = match &parameter.parameter_choice {
        Some(ParameterChoice::StringParam(s)) => s.as_str(),
        Some(ParameterChoice::BytesParam(b)) => std::str::from_utf8(b).map_err(|_| {
            ServingError::BadRequest("load parameter 'config' is not UTF-8 text".to_string())
        })?,
        _ => {
            return Err(ServingError::BadRequest(
                "load parameter 'config' must be a string holding a JSON model configuration"
                    .to_string(),
            ));
        }
    };
    model_config::from_json_str(text).map(Some).map_err(|e| {
        ServingError::BadRequest(format!(
            "load parameter 'config' is not a valid model configuration: {e}"
        ))
    })
}

fn require_model_name(name: &str) -> Result<()> {
    if name.is_empty() {
        Err(ServingError::BadRequest(
            "model_name must be given".to_string(),
        ))
    } else {
        Ok(())
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for GrpcService {
    async fn server_live(
        &self,
        request: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        traced("ServerLive", request, |_| async {
            Ok(pb::ServerLiveResponse {
                live: self.server.is_live(),
            })
        })
        .await
    }

    async fn server_ready(
        &self,
        request: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        traced("ServerReady", request, |_| async {
            Ok(pb::ServerReadyResponse {
                ready: self.server.is_ready(),
            })
        })
        .await
    }

    /// An unknown model is `ready = false`, not an error (Triton's behaviour; clients expect a bool).
    async fn model_ready(
        &self,
        request: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        traced("ModelReady", request, |r| async move {
            Ok(pb::ModelReadyResponse {
                ready: self.server.is_model_ready(&r.name, optional(&r.version)),
            })
        })
        .await
    }

    async fn server_metadata(
        &self,
        request: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        traced("ServerMetadata", request, |_| async {
            Ok(convert::encode_server_metadata(self.server.metadata()))
        })
        .await
    }

    async fn model_metadata(
        &self,
        request: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        traced("ModelMetadata", request, |r| async move {
            let metadata = self.server.model_metadata(&r.name, optional(&r.version))?;
            Ok(convert::encode_model_metadata(metadata))
        })
        .await
    }

    async fn model_infer(
        &self,
        request: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        traced("ModelInfer", request, |r| infer(&self.server, r)).await
    }

    async fn model_stream_infer(
        &self,
        request: Request<Streaming<pb::ModelInferRequest>>,
    ) -> Result<Response<BoxStream<pb::ModelStreamInferResponse>>, Status> {
        let span = trace::rpc_span("ModelStreamInfer", request.metadata());
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let driver = drive_stream(
            self.server.clone(),
            request.into_inner(),
            tx,
            self.draining.clone(),
        );
        tokio::spawn(driver.instrument(span));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn model_config(
        &self,
        request: Request<pb::ModelConfigRequest>,
    ) -> Result<Response<pb::ModelConfigResponse>, Status> {
        traced("ModelConfig", request, |r| async move {
            let config = self.server.model_config(&r.name, optional(&r.version))?;
            Ok(pb::ModelConfigResponse {
                config: Some(config),
            })
        })
        .await
    }

    /// Every ready model version when `name` is empty; otherwise one model (and version).
    async fn model_statistics(
        &self,
        request: Request<pb::ModelStatisticsRequest>,
    ) -> Result<Response<pb::ModelStatisticsResponse>, Status> {
        traced("ModelStatistics", request, |r| async move {
            let stats = self
                .server
                .statistics(optional(&r.name), optional(&r.version))?;
            Ok(convert::encode_statistics(stats))
        })
        .await
    }

    /// Every model in the repository (only ready versions when `ready` is set); the repository
    /// name is ignored, as this server has one repository.
    async fn repository_index(
        &self,
        request: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        traced("RepositoryIndex", request, |r| async move {
            Ok(convert::encode_index(self.server.index(r.ready)))
        })
        .await
    }

    /// Loads or reloads `model_name`; a `config` string parameter holds a JSON model configuration
    /// that replaces the model's own. Answers `UNIMPLEMENTED` when model control is off.
    async fn repository_model_load(
        &self,
        request: Request<pb::RepositoryModelLoadRequest>,
    ) -> Result<Response<pb::RepositoryModelLoadResponse>, Status> {
        traced("RepositoryModelLoad", request, |r| async move {
            require_model_name(&r.model_name)?;
            let config = load_config(&r.parameters)?;
            self.server.load(&r.model_name, config).await?;
            Ok(pb::RepositoryModelLoadResponse {})
        })
        .await
    }

    async fn repository_model_unload(
        &self,
        request: Request<pb::RepositoryModelUnloadRequest>,
    ) -> Result<Response<pb::RepositoryModelUnloadResponse>, Status> {
        traced("RepositoryModelUnload", request, |r| async move {
            require_model_name(&r.model_name)?;
            self.server.unload(&r.model_name).await?;
            Ok(pb::RepositoryModelUnloadResponse {})
        })
        .await
    }
}

#[cfg(test)]
mod tests;
