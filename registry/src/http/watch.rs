//! `GET /api/2.0/cerulean/watch`: registry events as a Server-Sent Events stream (all of them, or
//! those of one model (`name=`) and/or one training job (`job_id=`)).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::extract::{ApiError, Input, St};
use crate::entities::{AliasEvent, json};
use crate::events::Envelope;
use crate::service::alias_moved;
use crate::store::MetadataStore;

/// Alias events read from the store per query when replaying.
const REPLAY_PAGE: i64 = 1000;
/// How many delivered alias-event ids a stream remembers to drop duplicates.
const SEEN_IDS: usize = 4096;
/// How often an idle stream sends a keep-alive comment.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Deserialize, Default)]
#[serde(default)]
struct WatchQuery {
    name: Option<String>,
    job_id: Option<String>,
    #[serde(deserialize_with = "json::deserialize_opt_i64")]
    since_alias_event: Option<i64>,
}

/// The SSE event of a live envelope: `event: <kind>`, `id: <sequence>`, `data: <envelope>`.
fn live_event(envelope: &Envelope) -> Option<Event> {
    let data = serde_json::to_string(envelope).ok()?;
    Some(
        Event::default()
            .event(envelope.event.kind().as_str())
            .id(envelope.sequence.to_string())
            .data(data),
    )
}

/// The SSE event of an alias move replayed from the store: `event: alias_moved` and the envelope
/// with `sequence` 0 (it was not published in this process) and no `id:` line.
fn replayed_event(event: &AliasEvent) -> Option<Event> {
    let envelope = Envelope {
        sequence: 0,
        alias_event_id: Some(event.id),
        event: alias_moved(event),
    };
    let data = serde_json::to_string(&envelope).ok()?;
    Some(Event::default().event("alias_moved").data(data))
}

/// The ids of alias events already sent on one stream.
#[derive(Default)]
struct Seen(BTreeSet<i64>);

impl Seen {
    /// Records `id`; false when it was sent already.
    fn insert(&mut self, id: i64) -> bool {
        let new = self.0.insert(id);
        while self.0.len() > SEEN_IDS {
            self.0.pop_first();
        }
        new
    }

    fn last(&self) -> Option<i64> {
        self.0.last().copied()
    }
}

struct Follower {
    store: std::sync::Arc<dyn MetadataStore>,
    name: Option<String>,
    job_id: Option<String>,
    tx: mpsc::Sender<Event>,
    seen: Seen,
}

impl Follower {
    /// Whether an event of this model (or of this job) is for this stream: every event when the
    /// stream names neither a model nor a job, else those of the model or the job it names.
    fn wanted(&self, model: Option<&str>, job: Option<&str>) -> bool {
        if self.name.is_none() && self.job_id.is_none() {
            return true;
        }
        let model_wanted = self.name.is_some() && self.name.as_deref() == model;
        let job_wanted = self.job_id.is_some() && self.job_id.as_deref() == job;
        model_wanted || job_wanted
    }

    /// Sends; false once the client has gone.
    async fn send(&self, event: Option<Event>) -> bool {
        match event {
            Some(event) => self.tx.send(event).await.is_ok(),
            None => true,
        }
    }

    /// Sends the alias moves recorded after `after` (in pages), skipping those sent already.
    /// False once the client has gone or the store failed.
    async fn replay(&mut self, mut after: i64, mut page: Option<Vec<AliasEvent>>) -> bool {
        loop {
            let events = match page.take() {
                Some(events) => events,
                None => match self.store.alias_events_since(after, REPLAY_PAGE).await {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::warn!(error = %e, "watch: replaying alias events failed");
                        let comment = Event::default().comment(format!("replay failed: {e}"));
                        let _ = self.tx.send(comment).await;
                        return false;
                    }
                },
            };
            let full = events.len() as i64 >= REPLAY_PAGE;
            for event in &events {
                after = after.max(event.id);
                if !self.seen.insert(event.id) || !self.wanted(Some(&event.name), None) {
                    continue;
                }
                if !self.send(replayed_event(event)).await {
                    return false;
                }
            }
            if !full {
                return true;
            }
        }
    }

    async fn run(
        mut self,
        mut events: broadcast::Receiver<std::sync::Arc<Envelope>>,
        since: Option<i64>,
        first_page: Option<Vec<AliasEvent>>,
    ) {
        if let Some(since) = since
            && !self.replay(since, first_page).await
        {
            return;
        }
        if self
            .tx
            .send(Event::default().comment("ready"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let received = tokio::select! {
                _ = self.tx.closed() => return,
                received = events.recv() => received,
            };
            match received {
                Ok(envelope) => {
                    if let Some(id) = envelope.alias_event_id
                        && !self.seen.insert(id)
                    {
                        continue;
                    }
                    if !self.wanted(envelope.event.model_name(), envelope.event.job_id()) {
                        continue;
                    }
                    if !self.send(live_event(&envelope)).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // The stream fell behind the bus: alias moves are recovered from the store
                    // (when this stream has delivered one to resume after); other kinds of events
                    // are lost, which the comment tells.
                    let comment =
                        Event::default().comment(format!("lagged: {missed} events missed"));
                    if self.tx.send(comment).await.is_err() {
                        return;
                    }
                    if let Some(last) = self.seen.last()
                        && !self.replay(last, None).await
                    {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// The watch stream (see the module documentation of [`crate::http`]).
pub(super) async fn watch(
    State(r): St,
    input: Input,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let query: WatchQuery = input.parse()?;
    // Subscribe before reading the store, so no move falls between the replay and the live part.
    let events = r.events().subscribe();
    let first_page = match query.since_alias_event {
        Some(since) => Some(r.store().alias_events_since(since, REPLAY_PAGE).await?),
        None => None,
    };
    let (tx, rx) = mpsc::channel(64);
    let follower = Follower {
        store: r.store().clone(),
        name: query.name.filter(|n| !n.is_empty()),
        job_id: query.job_id.filter(|j| !j.is_empty()),
        tx,
        seen: Seen::default(),
    };
    tokio::spawn(follower.run(events, query.since_alias_event, first_page));
    let stream = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}
