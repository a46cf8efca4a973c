//! W3C Trace Context: a request with a `traceparent` header runs inside an info-level span that
//! carries the caller's trace id, so the server's log lines join the caller's distributed trace; any
//! other request runs in a debug-level span.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::trace::request_span;

/// Middleware: runs the request inside a span holding its trace context, and logs server errors
/// with the request's method and path.
pub async fn trace_context(request: Request, next: Next) -> Response {
    let span = request_span(&request);
    let method = request.method().clone();
    let uri = request.uri().clone();
    async move {
        let response = next.run(request).await;
        if response.status().is_server_error() {
            tracing::warn!(
                method = method.as_str(),
                path = uri.path(),
                status = response.status().as_u16(),
                "request failed"
            );
        }
        response
    }
    .instrument(span)
    .await
}

/// The span a request runs in: `http` with the method and path, at info level with the trace and
/// parent ids when the caller sent a valid `traceparent` header, at debug level without them
/// otherwise (see [`request_span`]).
fn request_span(request: &Request) -> tracing::Span {
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    request_span!(
        traceparent,
        "http",
        method = request.method().as_str(),
        path = request.uri().path()
    )
}

#[cfg(test)]
mod tests {
    use tracing::Level;

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
        let line = log_inside(Level::INFO, || request_span(&request(Some(TRACEPARENT))));
        assert!(line.contains("method=\"POST\""), "{line}");
        assert!(line.contains("path=\"/v2/models/m/infer\""), "{line}");
        assert_carries_the_trace(&line);
    }

    #[test]
    fn requests_without_a_valid_traceparent_run_in_a_debug_span() {
        for traceparent in [None, Some("00-not-a-trace-01")] {
            let line = log_inside(Level::INFO, || request_span(&request(traceparent)));
            assert!(line.contains("handled"), "{line}");
            assert!(!line.contains("/v2/models/m/infer"), "{line}");
        }
    }

    #[test]
    fn requests_without_a_valid_traceparent_log_no_trace_fields() {
        for traceparent in [None, Some("00-not-a-trace-01")] {
            let line = log_inside(Level::DEBUG, || request_span(&request(traceparent)));
            assert!(line.contains("path=\"/v2/models/m/infer\""), "{line}");
            assert!(!line.contains("trace_id"), "{line}");
            assert!(!line.contains("parent_id"), "{line}");
        }
    }
}
