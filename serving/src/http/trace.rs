//! W3C Trace Context: every request runs inside a span that carries the caller's trace id, so the
//! server's log lines join the caller's distributed trace.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::trace::parse_traceparent;

/// Middleware: runs the request inside a span holding its trace context, and logs server errors.
pub async fn trace_context(request: Request, next: Next) -> Response {
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent);
    let span = tracing::info_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
        trace_id = traceparent.map(|t| t.trace_id).unwrap_or_default(),
        parent_id = traceparent.map(|t| t.parent_id).unwrap_or_default(),
    );
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
