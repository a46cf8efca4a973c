//! The standard gRPC health service (`grpc.health.v1.Health`), for Kubernetes gRPC probes and load
//! balancers. It reads the server's readiness on every call: `""` (the whole server) and
//! `inference.GRPCInferenceService` are `SERVING` once the server is ready and `NOT_SERVING` before
//! that and while it shuts down. Once the gRPC server drains ([`Draining`]), every status is
//! `NOT_SERVING` and `Watch` calls end.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use super::Draining;
use crate::server::InferenceServer;

/// How often a `Watch` call re-reads readiness.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// The services this health endpoint reports on.
pub const HEALTH_SERVICES: [&str; 2] = ["", cerulean_proto::INFERENCE_SERVICE_NAME];

/// `grpc.health.v1.Health` over an [`InferenceServer`]'s readiness.
#[derive(Clone)]
pub struct ReadinessHealth {
    server: Arc<InferenceServer>,
    draining: Draining,
}

impl ReadinessHealth {
    /// A health service reporting on `server`, `NOT_SERVING` once `draining` fires.
    pub fn new(server: Arc<InferenceServer>, draining: Draining) -> ReadinessHealth {
        ReadinessHealth { server, draining }
    }

    /// The status of `service`, or `None` for a service this endpoint does not know.
    pub fn status(&self, service: &str) -> Option<ServingStatus> {
        HEALTH_SERVICES.contains(&service).then(|| {
            if self.server.is_ready() && !self.draining.is_draining() {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            }
        })
    }
}

/// The health service ready to be added to a tonic server.
pub fn health_service(
    server: Arc<InferenceServer>,
    draining: Draining,
) -> HealthServer<ReadinessHealth> {
    HealthServer::new(ReadinessHealth::new(server, draining))
}

#[tonic::async_trait]
impl Health for ReadinessHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = &request.get_ref().service;
        match self.status(service) {
            Some(status) => Ok(Response::new(HealthCheckResponse {
                status: status as i32,
            })),
            None => Err(Status::not_found(format!(
                "service '{service}' is not registered"
            ))),
        }
    }

    type WatchStream = BoxStream<'static, Result<HealthCheckResponse, Status>>;

    /// Sends the current status at once and again whenever it changes; an unknown service is
    /// reported as `SERVICE_UNKNOWN` and the call stays open, as the health protocol says. When the
    /// server drains, the call sends its last status and ends.
    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        let health = self.clone();
        let mut interval = tokio::time::interval(WATCH_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let state = WatchState {
            last: None,
            interval,
            done: false,
        };
        let stream = futures::stream::unfold(state, move |mut state| {
            let health = health.clone();
            let service = service.clone();
            async move {
                if state.done {
                    return None;
                }
                loop {
                    tokio::select! {
                        _ = state.interval.tick() => {}
                        _ = health.draining.wait() => state.done = true,
                    }
                    let status = health
                        .status(&service)
                        .unwrap_or(ServingStatus::ServiceUnknown);
                    if state.last != Some(status) {
                        state.last = Some(status);
                        let response = HealthCheckResponse {
                            status: status as i32,
                        };
                        return Some((Ok(response), state));
                    }
                    if state.done {
                        return None;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Where a `Watch` call stands.
struct WatchState {
    last: Option<ServingStatus>,
    interval: tokio::time::Interval,
    done: bool,
}
