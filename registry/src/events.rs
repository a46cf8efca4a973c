//! Registry events — a version created, an alias moved, a stage changed, a training job changed —
//! broadcast to watchers (the watch stream that serving and pipelines follow instead of polling)
//! and delivered to webhooks: a signed POST to each configured URL, retried with backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{broadcast, mpsc};

use crate::jobs::{Job, JobStatus};

/// Something that happened in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RegistryEvent {
    /// A model version was created.
    VersionCreated {
        /// The registered model.
        name: String,
        /// The new version.
        version: String,
        /// Where its files are.
        source: String,
        /// The run that produced it, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        /// When, in ms since the epoch.
        timestamp: i64,
    },
    /// An alias was set, moved or deleted.
    AliasMoved {
        /// The registered model.
        name: String,
        /// The alias, e.g. `champion`.
        alias: String,
        /// The version it pointed at before, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_version: Option<String>,
        /// The version it points at now; `None` when deleted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_version: Option<String>,
        /// Who moved it.
        actor: String,
        /// Why, in the mover's words.
        #[serde(default)]
        reason: String,
        /// When, in ms since the epoch.
        timestamp: i64,
    },
    /// A version's stage changed (MLflow's deprecated stages).
    StageChanged {
        /// The registered model.
        name: String,
        /// The version.
        version: String,
        /// The stage before.
        from_stage: String,
        /// The stage now.
        to_stage: String,
        /// When, in ms since the epoch.
        timestamp: i64,
    },
    /// A training job was submitted, leased, finished or cancelled (or a cancel was asked for).
    JobChanged {
        /// The job.
        job_id: String,
        /// The job's name.
        job_name: String,
        /// Its status now.
        status: JobStatus,
        /// Whether a cancel is pending (the job is still running).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        cancel_requested: bool,
        /// When, in ms since the epoch.
        timestamp: i64,
    },
}

impl RegistryEvent {
    /// The event's kind, as webhooks are subscribed to it.
    pub fn kind(&self) -> EventKind {
        match self {
            RegistryEvent::VersionCreated { .. } => EventKind::VersionCreated,
            RegistryEvent::AliasMoved { .. } => EventKind::AliasMoved,
            RegistryEvent::StageChanged { .. } => EventKind::StageChanged,
            RegistryEvent::JobChanged { .. } => EventKind::JobChanged,
        }
    }

    /// The registered model the event concerns; `None` for job events.
    pub fn model_name(&self) -> Option<&str> {
        match self {
            RegistryEvent::VersionCreated { name, .. }
            | RegistryEvent::AliasMoved { name, .. }
            | RegistryEvent::StageChanged { name, .. } => Some(name),
            RegistryEvent::JobChanged { .. } => None,
        }
    }

    /// The training job the event concerns; `None` for model events.
    pub fn job_id(&self) -> Option<&str> {
        match self {
            RegistryEvent::JobChanged { job_id, .. } => Some(job_id),
            _ => None,
        }
    }

    /// The `job_changed` event of a job in its current state, stamped now.
    pub fn job_changed(job: &Job) -> RegistryEvent {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        RegistryEvent::JobChanged {
            job_id: job.job_id.clone(),
            job_name: job.name.clone(),
            status: job.status,
            cancel_requested: job.cancel_requested,
            timestamp,
        }
    }
}

/// The kinds of [`RegistryEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// [`RegistryEvent::VersionCreated`].
    VersionCreated,
    /// [`RegistryEvent::AliasMoved`].
    AliasMoved,
    /// [`RegistryEvent::StageChanged`].
    StageChanged,
    /// [`RegistryEvent::JobChanged`].
    JobChanged,
}

impl EventKind {
    /// The name used in headers and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::VersionCreated => "version_created",
            EventKind::AliasMoved => "alias_moved",
            EventKind::StageChanged => "stage_changed",
            EventKind::JobChanged => "job_changed",
        }
    }
}

/// An event with its sequence number in this process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    /// Increases by one per event.
    pub sequence: u64,
    /// For an alias move, its id in the store's alias history ([`crate::entities::AliasEvent`]'s
    /// `id`): a follower that reconnects passes the last one it saw as `since_alias_event` to the
    /// watch stream and misses nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_event_id: Option<i64>,
    /// The event.
    #[serde(flatten)]
    pub event: RegistryEvent,
}

/// Fans events out to watchers and webhooks.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Envelope>>,
    sequence: Arc<AtomicU64>,
}

impl EventBus {
    /// A bus whose slowest watcher may lag `capacity` events before it misses some.
    pub fn new(capacity: usize) -> EventBus {
        EventBus {
            sender: broadcast::channel(capacity.max(1)).0,
            sequence: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Publishes an event to everyone listening now.
    pub fn publish(&self, event: RegistryEvent) {
        self.publish_with_alias_event_id(event, None);
    }

    /// Publishes an event that the store recorded in its alias history under `alias_event_id`
    /// (an alias move), so followers can resume from it.
    pub fn publish_with_alias_event_id(&self, event: RegistryEvent, alias_event_id: Option<i64>) {
        let envelope = Envelope {
            sequence: self.sequence.fetch_add(1, Ordering::Relaxed) + 1,
            alias_event_id,
            event,
        };
        // No receivers is fine: nobody is watching.
        let _ = self.sender.send(Arc::new(envelope));
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.sender.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(1024)
    }
}

/// One webhook: where to POST, with which secret, for which events.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL to POST to.
    pub url: String,
    /// The HMAC-SHA256 key of the `X-Cerulean-Signature` header.
    pub secret: String,
    /// The events to deliver; empty means all.
    #[serde(default)]
    pub events: Vec<EventKind>,
}

/// How deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time after.
    pub first_backoff: Duration,
    /// Time allowed for one attempt.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            first_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The `X-Cerulean-Signature` value for a body: `sha256=` and the hex HMAC-SHA256 of the body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Starts delivering the bus's events to each webhook, one background task per webhook, in order.
/// Returns the tasks' handles.
pub fn start_webhooks(
    bus: &EventBus,
    webhooks: Vec<WebhookConfig>,
    retry: RetryPolicy,
) -> Vec<tokio::task::JoinHandle<()>> {
    crate::install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(retry.timeout)
        .build()
        .expect("an HTTP client with rustls and a timeout builds");
    webhooks
        .into_iter()
        .map(|hook| {
            let mut events = bus.subscribe();
            let (queue, mut pending) = mpsc::channel::<Arc<Envelope>>(4096);
            let client = client.clone();
            let url = hook.url.clone();
            let secret = hook.secret.clone();
            // Reading the bus never waits on deliveries, so a slow endpoint cannot make the bus drop
            // events for other listeners.
            tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(envelope) => {
                            let wanted = hook.events.is_empty() || hook.events.contains(&envelope.event.kind());
                            if wanted && queue.try_send(envelope).is_err() {
                                tracing::error!(url = %hook.url, "webhook queue is full; event dropped");
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::error!(url = %hook.url, missed, "webhook fell behind; events dropped");
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            });
            tokio::spawn(async move {
                while let Some(envelope) = pending.recv().await {
                    deliver(&client, &url, &secret, &envelope, retry).await;
                }
            })
        })
        .collect()
}

/// POSTs one event until it is accepted (2xx) or the attempts run out.
async fn deliver(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    envelope: &Envelope,
    retry: RetryPolicy,
) -> bool {
    let body = match serde_json::to_vec(envelope) {
        Ok(body) => body,
        Err(err) => {
            tracing::error!(error = %err, "cannot encode a webhook event");
            return false;
        }
    };
    let signature = signature(secret, &body);
    let mut backoff = retry.first_backoff;
    for attempt in 1..=retry.attempts.max(1) {
        let result = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-cerulean-event", envelope.event.kind().as_str())
            .header("x-cerulean-delivery", envelope.sequence.to_string())
            .header("x-cerulean-signature", &signature)
            .body(body.clone())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => return true,
            Ok(response) => {
                tracing::warn!(
                    url,
                    attempt,
                    status = response.status().as_u16(),
                    "webhook refused the event"
                )
            }
            Err(err) => tracing::warn!(url, attempt, error = %err, "webhook delivery failed"),
        }
        if attempt < retry.attempts {
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
    }
    tracing::error!(
        url,
        sequence = envelope.sequence,
        "webhook delivery gave up"
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use parking_lot::Mutex;

    fn alias_event(version: &str) -> RegistryEvent {
        RegistryEvent::AliasMoved {
            name: "digits".into(),
            alias: "champion".into(),
            from_version: None,
            to_version: Some(version.into()),
            actor: "ci".into(),
            reason: "better".into(),
            timestamp: 1,
        }
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // The HMAC-SHA256 test vector of RFC 4231, case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn events_serialise_with_their_type() {
        let json = serde_json::to_value(Envelope {
            sequence: 3,
            alias_event_id: None,
            event: alias_event("2"),
        })
        .unwrap();
        assert_eq!(json["type"], "alias_moved");
        assert_eq!(json["sequence"], 3);
        assert_eq!(json["to_version"], "2");
        assert!(json.get("from_version").is_none());
    }

    #[tokio::test]
    async fn watchers_receive_events_in_order() {
        let bus = EventBus::new(16);
        let mut watcher = bus.subscribe();
        bus.publish(alias_event("1"));
        bus.publish(alias_event("2"));
        assert_eq!(watcher.recv().await.unwrap().sequence, 1);
        let second = watcher.recv().await.unwrap();
        assert_eq!(second.sequence, 2);
        assert_eq!(second.event, alias_event("2"));
    }

    #[tokio::test]
    async fn webhooks_are_signed_filtered_and_retried() {
        let received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
        let calls = Arc::new(AtomicU64::new(0));
        let app = axum::Router::new().route(
            "/hook",
            post({
                let received = received.clone();
                let calls = calls.clone();
                move |headers: HeaderMap, body: Bytes| async move {
                    // Refuse the first attempt, to exercise the retry.
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    received.lock().push((headers, body));
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let bus = EventBus::new(16);
        let retry = RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
        };
        let hooks = vec![WebhookConfig {
            url: format!("http://{addr}/hook"),
            secret: "s3cret".into(),
            events: vec![EventKind::AliasMoved],
        }];
        let _tasks = start_webhooks(&bus, hooks, retry);
        bus.publish(RegistryEvent::VersionCreated {
            name: "digits".into(),
            version: "1".into(),
            source: "s".into(),
            run_id: None,
            timestamp: 1,
        });
        bus.publish(alias_event("1"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while received.lock().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no delivery arrived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (headers, body) = received.lock()[0].clone();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one refusal, one retry");
        assert_eq!(headers["x-cerulean-event"], "alias_moved");
        assert_eq!(
            headers["x-cerulean-signature"],
            signature("s3cret", &body).as_str()
        );
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["alias"], "champion");
        assert_eq!(
            received.lock().len(),
            1,
            "the version_created event was filtered out"
        );
    }
}
