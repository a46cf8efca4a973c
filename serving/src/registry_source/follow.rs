//! The follower's background task: connect to the registry's watch stream, read the whole registry,
//! apply each event's model as it comes, read everything again every poll interval, and reconnect
//! with backoff when the stream ends or the registry cannot be reached.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::{Instant, sleep, sleep_until};

use super::sync::Follower;

/// The first wait before reconnecting; doubled after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait before reconnecting.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A watch stream is reopened after this long even when nothing went wrong, so that a connection
/// that died silently is noticed.
const MAX_STREAM_AGE: Duration = Duration::from_secs(600);

/// Follows the registry until the task is aborted.
pub(super) async fn run(follower: Arc<Follower>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        // Connect before reading everything, so that nothing that happens in between is missed.
        let stream = match follower.client().watch(None, None).await {
            Ok(stream) => Some(stream),
            Err(err) => {
                tracing::warn!(registry = %follower.registry_url(), error = %err, "cannot watch the registry; retrying");
                None
            }
        };
        match follower.sync_all().await {
            Ok(()) => {}
            Err(err) => {
                tracing::warn!(registry = %follower.registry_url(), error = %err, "cannot read the registry; retrying");
            }
        }
        if let Some(stream) = stream {
            backoff = FIRST_BACKOFF;
            follow_stream(&follower, stream).await;
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Applies the stream's events (and a full read every poll interval) until the stream ends, fails
/// or reaches [`MAX_STREAM_AGE`].
async fn follow_stream<S, E>(follower: &Follower, stream: S)
where
    S: futures::Stream<Item = Result<cerulean_registry::events::RegistryEvent, E>>,
    E: std::fmt::Display,
{
    let mut stream = std::pin::pin!(stream);
    let poll = follower.config().poll_interval;
    let mut next_poll = Instant::now() + poll;
    let reopen = Instant::now() + MAX_STREAM_AGE;
    loop {
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(event)) => {
                    // Events that concern no model (training jobs) are not the server's business.
                    let Some(name) = event.model_name() else { continue };
                    tracing::debug!(model = %name, kind = event.kind().as_str(), "registry event");
                    if let Err(err) = follower.sync_model(name).await {
                        tracing::warn!(model = %name, error = %err, "cannot apply a registry event; the next full read will");
                    }
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "the registry's watch stream failed; reconnecting");
                    return;
                }
                None => {
                    tracing::info!("the registry's watch stream ended; reconnecting");
                    return;
                }
            },
            () = sleep_until(next_poll) => {
                if let Err(err) = follower.sync_all().await {
                    tracing::warn!(error = %err, "cannot read the registry; retrying at the next poll");
                }
                next_poll = Instant::now() + poll;
            }
            () = sleep_until(reopen) => return,
        }
    }
}
