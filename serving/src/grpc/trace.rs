//! W3C Trace Context over gRPC: each RPC runs inside an `info_span!("grpc", ...)` that carries the
//! trace id (and the caller's span id) of an incoming `traceparent` metadata entry, so the server's
//! log lines join the caller's distributed trace.

use tonic::metadata::MetadataMap;

use crate::trace::parse_traceparent;

/// The span an RPC runs in: `grpc` with the method name and, when the caller sent a valid
/// `traceparent`, its trace and parent ids (empty otherwise).
pub fn rpc_span(method: &'static str, metadata: &MetadataMap) -> tracing::Span {
    let traceparent = metadata
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent);
    tracing::info_span!(
        "grpc",
        method,
        trace_id = traceparent.map(|t| t.trace_id).unwrap_or_default(),
        parent_id = traceparent.map(|t| t.parent_id).unwrap_or_default(),
    )
}
