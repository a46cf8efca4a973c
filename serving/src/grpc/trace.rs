//! W3C Trace Context over gRPC: an RPC whose metadata carries a `traceparent` runs inside an
//! `info_span!("grpc", ...)` that carries its trace id and the caller's span id, so the server's log
//! lines join the caller's distributed trace; any other RPC runs in a `debug_span!("grpc", method)`.

use tonic::metadata::MetadataMap;

use crate::trace::request_span;

/// The span an RPC runs in: `grpc` with the method name, at info level with the trace and parent
/// ids when the caller sent a valid `traceparent`, at debug level without them otherwise (see
/// [`request_span`]).
pub fn rpc_span(method: &'static str, metadata: &MetadataMap) -> tracing::Span {
    let traceparent = metadata.get("traceparent").and_then(|v| v.to_str().ok());
    request_span!(traceparent, "grpc", method)
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;
    use crate::trace::tests::{TRACEPARENT, assert_carries_the_trace, log_inside};

    #[test]
    fn log_lines_carry_the_callers_trace() {
        let mut metadata = MetadataMap::new();
        metadata.insert("traceparent", TRACEPARENT.parse().unwrap());
        let line = log_inside(Level::INFO, || rpc_span("ModelInfer", &metadata));
        assert!(line.contains("method=\"ModelInfer\""), "{line}");
        assert_carries_the_trace(&line);
    }

    #[test]
    fn calls_without_a_traceparent_run_in_a_debug_span() {
        let line = log_inside(Level::INFO, || rpc_span("ModelInfer", &MetadataMap::new()));
        assert!(line.contains("handled"), "{line}");
        assert!(!line.contains("ModelInfer"), "{line}");
    }

    #[test]
    fn calls_without_a_traceparent_log_no_trace_fields() {
        let line = log_inside(Level::DEBUG, || rpc_span("ModelInfer", &MetadataMap::new()));
        assert!(line.contains("method=\"ModelInfer\""), "{line}");
        assert!(!line.contains("trace_id"), "{line}");
    }
}
