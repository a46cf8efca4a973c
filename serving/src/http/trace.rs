//! W3C Trace Context: every request runs inside a span that carries the caller's trace id, so the
//! server's log lines join the caller's distributed trace.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::trace::record_traceparent;

/// Middleware: runs the request inside a span holding its trace context, and logs server errors.
pub async fn trace_context(request: Request, next: Next) -> Response {
    let span = request_span(&request);
    async move {
        let response = next.run(request).await;
        if response.status().is_server_error() {
            tracing::warn!(status = response.status().as_u16(), "request failed");
        }
        response
    }
    .instrument(span)
    .await
}

/// The span a request runs in: `http` with the method and path and, when the caller sent a valid
/// `traceparent` header, its trace and parent ids (left unset otherwise, so that the log formatter
/// has nothing to write for them).
fn request_span(request: &Request) -> tracing::Span {
    let span = tracing::info_span!(
        "http",
        method = request.method().as_str(),
        path = request.uri().path(),
        trace_id = tracing::field::Empty,
        parent_id = tracing::field::Empty,
    );
    let traceparent = request.headers().get("traceparent");
    record_traceparent(&span, traceparent.and_then(|v| v.to_str().ok()));
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::tests::{TRACEPARENT, assert_carries_the_trace, log_inside};

    fn request(traceparent: Option<&str>) -> Request {
        let mut builder = Request::post("/v2/models/m/infer");
        if let Some(value) = traceparent {
            builder = builder.header("traceparent", value);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn log_lines_carry_the_callers_trace() {
        let line = log_inside(|| request_span(&request(Some(TRACEPARENT))));
        assert!(line.contains("method=\"POST\""), "{line}");
        assert!(line.contains("path=\"/v2/models/m/infer\""), "{line}");
        assert_carries_the_trace(&line);
    }

    #[test]
    fn requests_without_a_valid_traceparent_log_no_trace_fields() {
        for traceparent in [None, Some("00-not-a-trace-01")] {
            let line = log_inside(|| request_span(&request(traceparent)));
            assert!(line.contains("path=\"/v2/models/m/infer\""), "{line}");
            assert!(!line.contains("trace_id"), "{line}");
            assert!(!line.contains("parent_id"), "{line}");
        }
    }
}
