//! W3C Trace Context over gRPC: each RPC runs inside an `info_span!("grpc", ...)` that carries the
//! trace id (and the caller's span id) of an incoming `traceparent` metadata entry, so the server's
//! log lines join the caller's distributed trace.

use tonic::metadata::MetadataMap;

use crate::trace::record_traceparent;

/// The span an RPC runs in: `grpc` with the method name and, when the caller sent a valid
/// `traceparent`, its trace and parent ids (left unset otherwise, so that the log formatter has
/// nothing to write for them).
pub fn rpc_span(method: &'static str, metadata: &MetadataMap) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc",
        method,
        trace_id = tracing::field::Empty,
        parent_id = tracing::field::Empty,
    );
    let traceparent = metadata.get("traceparent");
    record_traceparent(&span, traceparent.and_then(|v| v.to_str().ok()));
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::tests::{TRACEPARENT, assert_carries_the_trace, log_inside};

    #[test]
    fn log_lines_carry_the_callers_trace() {
        let mut metadata = MetadataMap::new();
        metadata.insert("traceparent", TRACEPARENT.parse().unwrap());
        let line = log_inside(|| rpc_span("ModelInfer", &metadata));
        assert!(line.contains("method=\"ModelInfer\""), "{line}");
        assert_carries_the_trace(&line);
    }

    #[test]
    fn calls_without_a_traceparent_log_no_trace_fields() {
        let line = log_inside(|| rpc_span("ModelInfer", &MetadataMap::new()));
        assert!(line.contains("method=\"ModelInfer\""), "{line}");
        assert!(!line.contains("trace_id"), "{line}");
    }
}
