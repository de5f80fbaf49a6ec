//! The delivery worker: chat events → notifications → APNs/FCM, durably.
//!
//! Two stages, both driven by leased claims on database rows so any number of `parley` nodes
//! share the work and a crash or SIGTERM loses nothing (an expired lease makes work claimable
//! again):
//!
//! 1. **Fan-out** claims `push_outbox` entries (written by chat writes in the same transaction
//!    as their event), checks the service's `Notifications.<Type>.Enabled`, finds the devices
//!    ([`PushStore::recipients`]: not the author, not muted members, only bindings subscribed to
//!    the type), renders the text (template or Twilio's default, sound, badge) once per
//!    recipient, and writes one delivery per binding — id `<event id>:<binding sid>`, so a
//!    repeated fan-out creates nothing twice — deleting the outbox entry in that transaction.
//!    A REST request never waits for any of this.
//! 2. **Delivery** claims deliveries and sends each on its own task, bounded globally and per
//!    credential (a slow or broken app's credential can't take every slot: deliveries beyond its
//!    share go back to the queue for a second). Outcomes: delivered → removed; dead token →
//!    the binding is deleted; 429/5xx/network → rescheduled with jittered exponential backoff
//!    honouring `Retry-After`, within the attempt and age bounds; credential failure → the
//!    credential is marked unhealthy for a while (its deliveries wait, then are dropped once too
//!    old), reported in logs and `/metrics`. A credential that answers "bad device token" for
//!    [`WorkerConfig::bad_token_threshold`] distinct tokens with no success in between is taken
//!    as misconfigured: its bindings are kept (no pruning) and it is marked unhealthy until a
//!    send succeeds (counted per node). A delivery given up is logged (warn), counted in
//!    `parley_push_given_up_total` and ends as `failed` in the push log.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use parley_core::crypto::SecretBox;
use parley_core::event::{Event, EventKind};
use parley_core::push::{Delivery, NewDelivery, PushLogEntry, Settle};
use parley_core::service::Service;
use parley_core::store::{PushStore, Store, StoreError};
use parley_core::Timestamp;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::notification::{Notification, NotificationKind};
use crate::retry::RetryPolicy;
use crate::sender::{is_bad_token_answer, PushCredential, PushSender, SendOutcome, Target};
use crate::template::{render, TemplateVars};

/// Worker settings.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Outbox entries claimed per fan-out round.
    pub fanout_batch: u32,
    /// Deliveries written per fan-out transaction: a large fan-out commits in chunks, so the
    /// first sends start while the rest is still being written.
    pub fanout_chunk: usize,
    /// Most sends in flight on this node.
    pub max_in_flight: usize,
    /// Most sends in flight per credential on this node.
    pub per_credential: usize,
    /// How long a claim is held before another node may take the work over.
    pub lease: Duration,
    /// Per-send timeout (must stay well under `lease`).
    pub send_timeout: Duration,
    /// Retry bounds for transient failures.
    pub retry: RetryPolicy,
    /// How long a credential that failed (bad certificate, revoked key, 401/403) is left alone.
    pub unhealthy_for: Duration,
    /// Sleep between polls when there is nothing to do.
    pub idle_poll: Duration,
    /// Most settlements written in one transaction.
    pub settle_batch: usize,
    /// Delivery-log retention.
    pub log_retention: Duration,
    /// A credential that answers "bad device token" for this many distinct tokens with no
    /// successful send in between is taken as misconfigured (wrong `Sandbox`, topic, project):
    /// its bindings are no longer pruned until a send succeeds (docs/PUSH.md).
    pub bad_token_threshold: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            fanout_batch: 16,
            fanout_chunk: 500,
            max_in_flight: 512,
            per_credential: 256,
            lease: Duration::from_secs(60),
            send_timeout: Duration::from_secs(20),
            retry: RetryPolicy {
                base: Duration::from_secs(1),
                max_delay: Duration::from_secs(60),
                max_attempts: 8,
                max_age: Duration::from_secs(10 * 60),
            },
            unhealthy_for: Duration::from_secs(60),
            idle_poll: Duration::from_millis(50),
            settle_batch: 512,
            log_retention: Duration::from_secs(7 * 24 * 3600),
            bad_token_threshold: DEFAULT_BAD_TOKEN_THRESHOLD,
        }
    }
}

/// Default [`WorkerConfig::bad_token_threshold`].
pub const DEFAULT_BAD_TOKEN_THRESHOLD: usize = 20;

/// Distinct bad-token answers of one credential since its last successful send.
#[derive(Default)]
struct BadTokens {
    tokens: HashSet<String>,
    /// Past the threshold: pruning stopped until a send succeeds.
    suspended: bool,
}

/// What one round did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Claimed something (fan-out or sends).
    Worked,
    /// Nothing was waiting.
    Idle,
}

/// Prometheus metrics of the push engine.
#[derive(Clone)]
pub struct PushMetrics {
    sends: IntCounterVec,
    send_latency: HistogramVec,
    event_to_send: HistogramVec,
    pruned: IntCounterVec,
    queue: IntGaugeVec,
    unhealthy: IntGauge,
    given_up: IntCounterVec,
}

impl PushMetrics {
    /// Create and register in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let buckets = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
        ];
        let sends = IntCounterVec::new(
            Opts::new(
                "parley_push_sends_total",
                "Push sends by provider and outcome",
            ),
            &["provider", "outcome"],
        )?;
        let send_latency = HistogramVec::new(
            HistogramOpts::new(
                "parley_push_send_duration_seconds",
                "Provider request latency",
            )
            .buckets(buckets.clone()),
            &["provider"],
        )?;
        let event_to_send = HistogramVec::new(
            HistogramOpts::new(
                "parley_push_event_to_send_seconds",
                "From the chat event to the provider's answer",
            )
            .buckets(buckets),
            &["provider"],
        )?;
        let pruned = IntCounterVec::new(
            Opts::new(
                "parley_push_pruned_bindings_total",
                "Bindings deleted on dead-token answers",
            ),
            &["provider"],
        )?;
        let queue = IntGaugeVec::new(
            Opts::new("parley_push_queue_depth", "Push work waiting"),
            &["stage"],
        )?;
        let unhealthy = IntGauge::new(
            "parley_push_unhealthy_credentials",
            "Credentials currently failing",
        )?;
        registry.register(Box::new(sends.clone()))?;
        registry.register(Box::new(send_latency.clone()))?;
        registry.register(Box::new(event_to_send.clone()))?;
        registry.register(Box::new(pruned.clone()))?;
        registry.register(Box::new(queue.clone()))?;
        let given_up = IntCounterVec::new(
            Opts::new(
                "parley_push_given_up_total",
                "Deliveries dropped after the last attempt or past the age bound",
            ),
            &["provider"],
        )?;
        registry.register(Box::new(unhealthy.clone()))?;
        registry.register(Box::new(given_up.clone()))?;
        Ok(Self {
            sends,
            send_latency,
            event_to_send,
            pruned,
            queue,
            unhealthy,
            given_up,
        })
    }
}

/// The stored form of a [`Notification`] inside a delivery row.
#[derive(Serialize, Deserialize)]
struct StoredNotification {
    id: String,
    kind: String,
    service_sid: String,
    channel_sid: String,
    channel_unique_name: Option<String>,
    channel_friendly_name: Option<String>,
    message_sid: Option<String>,
    message_index: Option<u64>,
    author: Option<String>,
    body: Option<String>,
    recipient: String,
    badge: Option<u32>,
    sound: Option<String>,
    text: String,
}

impl StoredNotification {
    fn from_notification(n: &Notification) -> Self {
        Self {
            id: n.id.clone(),
            kind: n.kind.short_name().to_owned(),
            service_sid: n.service_sid.clone(),
            channel_sid: n.channel_sid.clone(),
            channel_unique_name: n.channel_unique_name.clone(),
            channel_friendly_name: n.channel_friendly_name.clone(),
            message_sid: n.message_sid.clone(),
            message_index: n.message_index,
            author: n.author.clone(),
            body: n.body.clone(),
            recipient: n.recipient.clone(),
            badge: n.badge,
            sound: n.sound.clone(),
            text: n.text.clone(),
        }
    }

    fn into_notification(self) -> Option<Notification> {
        Some(Notification {
            id: self.id,
            kind: NotificationKind::parse(&self.kind)?,
            service_sid: self.service_sid,
            channel_sid: self.channel_sid,
            channel_unique_name: self.channel_unique_name,
            channel_friendly_name: self.channel_friendly_name,
            message_sid: self.message_sid,
            message_index: self.message_index,
            author: self.author,
            body: self.body,
            recipient: self.recipient,
            badge: self.badge,
            sound: self.sound,
            text: self.text,
        })
    }
}

fn kind_of(kind: EventKind) -> NotificationKind {
    match kind {
        EventKind::NewMessage => NotificationKind::NewMessage,
        EventKind::AddedToChannel => NotificationKind::AddedToChannel,
        EventKind::InvitedToChannel => NotificationKind::InvitedToChannel,
        EventKind::RemovedFromChannel => NotificationKind::RemovedFromChannel,
    }
}

/// The recipients a fan-out still has to write: in binding-SID byte order (the order its
/// chunks are written in, whatever the database's collation), after `after` (the progress an
/// interrupted fan-out recorded).
fn still_to_write(
    mut recipients: Vec<parley_core::push::Recipient>,
    after: Option<&str>,
) -> Vec<parley_core::push::Recipient> {
    recipients.sort_by(|a, b| a.binding.sid.as_str().cmp(b.binding.sid.as_str()));
    if let Some(after) = after {
        recipients.retain(|r| r.binding.sid.as_str() > after);
    }
    recipients
}

/// Short-lived caches so a fan-out of thousands costs one lookup per service / credential.
struct Cached<T> {
    value: T,
    at: Instant,
}

const CACHE_TTL: Duration = Duration::from_secs(2);

/// The push worker of one node.
pub struct Worker {
    store: Arc<dyn Store>,
    push: Arc<dyn PushStore>,
    secrets: SecretBox,
    sender: Arc<dyn PushSender>,
    config: WorkerConfig,
    metrics: Option<PushMetrics>,
    in_flight: Arc<Semaphore>,
    per_credential: Mutex<HashMap<String, Arc<Semaphore>>>,
    credentials: Mutex<HashMap<String, Cached<Option<Arc<PushCredential>>>>>,
    services: Mutex<HashMap<String, Cached<Option<Arc<Service>>>>>,
    unhealthy: Mutex<HashMap<String, (Instant, String)>>,
    bad_tokens: Mutex<HashMap<String, BadTokens>>,
    /// The settler task's queue (started on first use, inside the runtime).
    settler: OnceLock<mpsc::UnboundedSender<Settlement>>,
}

/// A settlement for the settler task, acknowledged once it is stored (or failed to be).
struct Settlement {
    id: String,
    settle: Settle,
    done: oneshot::Sender<()>,
}

/// Write settlements as they come, many per transaction: every send's outcome is one write,
/// and on SQLite's single writer (or a PostgreSQL round trip each) writing them one by one
/// costs more than the sends themselves. A batch that fails is retried one by one, so one bad
/// row cannot keep the others unsettled.
async fn settle_loop(
    push: Arc<dyn PushStore>,
    mut rx: mpsc::UnboundedReceiver<Settlement>,
    max: usize,
) {
    let mut buf = Vec::with_capacity(max);
    while rx.recv_many(&mut buf, max).await > 0 {
        let (batch, done): (Vec<(String, Settle)>, Vec<oneshot::Sender<()>>) =
            buf.drain(..).map(|s| ((s.id, s.settle), s.done)).unzip();
        if let Err(e) = push.settle_deliveries(&batch).await {
            tracing::warn!(error = %e, n = batch.len(), "batch settle failed; settling one by one");
            for (id, settle) in &batch {
                if let Err(e) = push.settle_delivery(id, settle).await {
                    // The lease expires and another round retries; a repeat keeps its apns-id.
                    tracing::warn!(delivery = %id, error = %e, "cannot settle delivery");
                }
            }
        }
        for d in done {
            let _ = d.send(());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ts_after(now: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_unix_micros(
        now.unix_micros()
            .saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
    )
}

impl Worker {
    /// A worker over `store` (chat data) and `push` (push state: usually the same store).
    pub fn new(
        store: Arc<dyn Store>,
        push: Arc<dyn PushStore>,
        secrets: SecretBox,
        sender: Arc<dyn PushSender>,
        config: WorkerConfig,
        metrics: Option<PushMetrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            store,
            push,
            secrets,
            sender,
            config,
            metrics,
            per_credential: Mutex::new(HashMap::new()),
            credentials: Mutex::new(HashMap::new()),
            services: Mutex::new(HashMap::new()),
            unhealthy: Mutex::new(HashMap::new()),
            bad_tokens: Mutex::new(HashMap::new()),
            settler: OnceLock::new(),
        })
    }

    /// Store `settle` for delivery `id` through the settler task; returns once it is written.
    async fn settle(&self, id: &str, settle: Settle) {
        let tx = self.settler.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(settle_loop(
                self.push.clone(),
                rx,
                self.config.settle_batch.max(1),
            ));
            tx
        });
        let (done, wait) = oneshot::channel();
        let item = Settlement {
            id: id.to_owned(),
            settle,
            done,
        };
        match tx.send(item) {
            Ok(()) => {
                let _ = wait.await;
            }
            Err(mpsc::error::SendError(item)) => {
                if let Err(e) = self.push.settle_delivery(&item.id, &item.settle).await {
                    tracing::warn!(delivery = %item.id, error = %e, "cannot settle delivery");
                }
            }
        }
    }

    /// The service's current settings, read per event so a settings change applies to the next
    /// event on every node.
    async fn service(&self, event: &Event) -> Result<Option<Arc<Service>>, StoreError> {
        match self
            .store
            .fetch_service(&event.account_sid, &event.service_sid)
            .await
        {
            Ok(s) => Ok(Some(Arc::new(s))),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the service keeps a delivery log (cached briefly: this is asked per delivery).
    async fn log_enabled(&self, d: &Delivery) -> bool {
        let key = d.new.service_sid.to_string();
        if let Some(c) = lock(&self.services)
            .get(&key)
            .filter(|c| c.at.elapsed() < CACHE_TTL)
        {
            return c
                .value
                .as_ref()
                .is_some_and(|s| s.settings.notifications.log_enabled);
        }
        let value = self
            .store
            .fetch_service(&d.new.account_sid, &d.new.service_sid)
            .await
            .ok()
            .map(Arc::new);
        let on = value
            .as_ref()
            .is_some_and(|s| s.settings.notifications.log_enabled);
        lock(&self.services).insert(
            key,
            Cached {
                value,
                at: Instant::now(),
            },
        );
        on
    }

    async fn credential(&self, d: &Delivery) -> Result<Option<Arc<PushCredential>>, StoreError> {
        let Some(sid) = &d.new.credential_sid else {
            return Ok(None);
        };
        let key = sid.to_string();
        if let Some(c) = lock(&self.credentials)
            .get(&key)
            .filter(|c| c.at.elapsed() < CACHE_TTL)
        {
            return Ok(c.value.clone());
        }
        let value = match self.store.fetch_credential(&d.new.account_sid, sid).await {
            Ok(c) => match PushCredential::open(&c, &self.secrets) {
                Ok(p) => Some(Arc::new(p)),
                Err(e) => {
                    tracing::error!(credential.sid = %sid, error = %e, "cannot open push credential");
                    None
                }
            },
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        lock(&self.credentials).insert(
            key,
            Cached {
                value: value.clone(),
                at: Instant::now(),
            },
        );
        Ok(value)
    }

    /// One fan-out round: claim outbox entries and turn them into deliveries.
    pub async fn fanout_once(&self) -> Result<usize, StoreError> {
        let now = Timestamp::now();
        let items = self
            .push
            .claim_outbox(
                now,
                ts_after(now, self.config.lease),
                self.config.fanout_batch,
            )
            .await?;
        let n = items.len();
        for item in items {
            let event_id = item.event.id;
            if let Err(e) = self
                .fanout_event(&item.event, item.fanout_after.as_deref())
                .await
            {
                tracing::warn!(event.id = event_id, error = %e, "fan-out failed; will retry");
                let delay = self
                    .config
                    .retry
                    .ceiling(u32::try_from(item.attempts.max(1)).unwrap_or(1));
                self.push
                    .retry_outbox(event_id, ts_after(Timestamp::now(), delay))
                    .await?;
            }
        }
        Ok(n)
    }

    /// Fan `event` out: its recipients in binding-SID order (byte order, whatever the
    /// database's collation), skipping those up to `after` (written by an interrupted earlier
    /// fan-out), in chunks of `fanout_chunk`, each chunk one transaction that also records the
    /// progress; the last chunk removes the outbox entry.
    async fn fanout_event(&self, event: &Event, after: Option<&str>) -> Result<(), StoreError> {
        let kind = kind_of(event.kind);
        let Some(service) = self.service(event).await? else {
            return self.push.complete_fanout(event.id, &[]).await;
        };
        let setting = kind.setting(&service.settings.notifications);
        if !setting.enabled {
            return self.push.complete_fanout(event.id, &[]).await;
        }
        let recipients = still_to_write(self.push.recipients(event).await?, after);
        let vars = TemplateVars {
            channel_sid: event.channel_sid.as_str(),
            channel_unique_name: event.channel_unique_name.as_deref(),
            channel_friendly_name: event.channel_friendly_name.as_deref(),
            user_identity: event.actor.as_deref(),
            user_friendly_name: None,
            message: event.body.as_deref(),
        };
        let text = render(kind, setting.template.as_deref(), &vars);
        let badge_on =
            kind == NotificationKind::NewMessage && setting.badge_count_enabled == Some(true);
        let mut per_identity: HashMap<String, String> = HashMap::new();
        let chunk_size = self.config.fanout_chunk.max(1);
        let total = recipients.len();
        let mut chunks = recipients.chunks(chunk_size).peekable();
        if chunks.peek().is_none() {
            return self.push.complete_fanout(event.id, &[]).await;
        }
        while let Some(chunk) = chunks.next() {
            let now = Timestamp::now();
            let mut deliveries = Vec::with_capacity(chunk.len());
            for r in chunk {
                let b = &r.binding;
                let payload = match per_identity.get(&b.identity) {
                    Some(p) => p.clone(),
                    None => {
                        let badge = if badge_on {
                            let n = self
                                .push
                                .badge_count(&event.service_sid, &b.identity)
                                .await?;
                            Some(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
                        } else {
                            None
                        };
                        let n = Notification {
                            id: format!("{}:{}", event.service_sid, event.id),
                            kind,
                            service_sid: event.service_sid.to_string(),
                            channel_sid: event.channel_sid.to_string(),
                            channel_unique_name: event.channel_unique_name.clone(),
                            channel_friendly_name: event.channel_friendly_name.clone(),
                            message_sid: event.message_sid.as_ref().map(ToString::to_string),
                            message_index: event.message_index.and_then(|i| u64::try_from(i).ok()),
                            author: event.actor.clone(),
                            body: event.body.clone(),
                            recipient: b.identity.clone(),
                            badge,
                            sound: setting.sound.clone(),
                            text: text.clone(),
                        };
                        let p = serde_json::to_string(&StoredNotification::from_notification(&n))
                            .map_err(|e| StoreError::Other(e.into()))?;
                        per_identity.insert(b.identity.clone(), p.clone());
                        p
                    }
                };
                deliveries.push(NewDelivery {
                    id: format!("{}:{}", event.id, b.sid),
                    event_id: event.id,
                    account_sid: b.account_sid.clone(),
                    service_sid: b.service_sid.clone(),
                    binding_sid: b.sid.clone(),
                    credential_sid: b.credential_sid.clone(),
                    binding_type: b.binding_type,
                    address: b.address.clone(),
                    identity: b.identity.clone(),
                    payload,
                    event_at: event.date_created,
                    available_at: now,
                });
            }
            match (chunks.peek(), chunk.last()) {
                (Some(_), Some(last)) => {
                    self.push
                        .fanout_progress(event.id, &deliveries, last.binding.sid.as_str())
                        .await?;
                }
                _ => self.push.complete_fanout(event.id, &deliveries).await?,
            }
        }
        tracing::debug!(event.id = event.id, deliveries = total, "fan-out");
        Ok(())
    }

    /// One delivery round: claim as many deliveries as there are free send slots and start a
    /// task for each. Returns how many were claimed.
    pub async fn deliver_once(self: &Arc<Self>) -> Result<usize, StoreError> {
        // Every slot busy: wait for a few to come back (sends finishing) instead of reporting
        // "nothing to do", which would make the loop sleep while work is queued.
        if self.in_flight.available_permits() == 0 {
            let want = u32::try_from((self.config.max_in_flight / 8).max(1)).unwrap_or(1);
            if let Ok(p) = self.in_flight.acquire_many(want).await {
                drop(p);
            }
        }
        let free = self.in_flight.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let now = Timestamp::now();
        let claimed = self
            .push
            .claim_deliveries(
                now,
                ts_after(now, self.config.lease),
                u32::try_from(free).unwrap_or(u32::MAX),
            )
            .await?;
        let n = claimed.len();
        for d in claimed {
            let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
                break;
            };
            let me = self.clone();
            tokio::spawn(async move {
                me.deliver(d).await;
                drop(permit);
            });
        }
        Ok(n)
    }

    fn credential_slot(&self, sid: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let sem = lock(&self.per_credential)
            .entry(sid.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_credential)))
            .clone();
        sem.try_acquire_owned().ok()
    }

    fn unhealthy_until(&self, sid: &str) -> Option<(Instant, String)> {
        let mut map = lock(&self.unhealthy);
        match map.get(sid) {
            Some((until, reason)) if *until > Instant::now() => Some((*until, reason.clone())),
            Some(_) => {
                map.remove(sid);
                if let Some(m) = &self.metrics {
                    m.unhealthy.set(i64::try_from(map.len()).unwrap_or(0));
                }
                None
            }
            None => None,
        }
    }

    /// A send with credential `sid` succeeded: its bad-token count starts over, and pruning
    /// resumes if it was stopped.
    fn send_succeeded(&self, sid: &str) {
        let mut map = lock(&self.bad_tokens);
        if let Some(state) = map.remove(sid) {
            if state.suspended {
                tracing::info!(
                    credential.sid = sid,
                    "push credential delivered again; dead-token pruning resumes"
                );
            }
        }
    }

    /// Count a bad-token answer of credential `sid` for `address`; `true` when the credential
    /// is (now) past the threshold, so the binding must be kept.
    fn bad_token_suspends(&self, sid: &str, address: &str) -> bool {
        let mut map = lock(&self.bad_tokens);
        let state = map.entry(sid.to_owned()).or_default();
        if !state.suspended {
            state.tokens.insert(address.to_owned());
            if state.tokens.len() >= self.config.bad_token_threshold.max(1) {
                state.suspended = true;
                state.tokens = HashSet::new();
            }
        }
        state.suspended
    }

    fn mark_unhealthy(&self, sid: &str, reason: &str) {
        let mut map = lock(&self.unhealthy);
        map.insert(
            sid.to_owned(),
            (
                Instant::now() + self.config.unhealthy_for,
                reason.to_owned(),
            ),
        );
        if let Some(m) = &self.metrics {
            m.unhealthy.set(i64::try_from(map.len()).unwrap_or(0));
        }
        tracing::error!(
            credential.sid = sid,
            reason,
            "push credential failing; its deliveries are paused"
        );
    }

    /// Retry `d` after `delay` if the bounds allow, else give up.
    fn retry_or_fail(&self, d: &Delivery, delay: Option<Duration>, error: String) -> Settle {
        let now = Timestamp::now();
        let age = Duration::from_micros(
            u64::try_from(now.unix_micros() - d.new.event_at.unix_micros()).unwrap_or(0),
        );
        // Claims report earlier attempts; this send is one more.
        let attempts = u32::try_from(d.attempts.max(0) + 1).unwrap_or(1);
        let next = self
            .config
            .retry
            .next_delay(attempts, age, delay, &mut rand::thread_rng());
        match next {
            Some(after) => Settle::Retry {
                at: ts_after(now, after),
                error,
            },
            None => Settle::Failed {
                error: format!("gave up after {attempts} attempts: {error}"),
            },
        }
    }

    async fn deliver(&self, d: Delivery) {
        let provider = match d.new.binding_type {
            parley_core::credential::PushType::Apn => "apns",
            _ => "fcm",
        };
        let (settle, outcome_label, reason) = self.attempt(&d, provider).await;
        if let Some(m) = &self.metrics {
            m.sends.with_label_values(&[provider, outcome_label]).inc();
            if matches!(settle, Settle::DeadToken { .. }) {
                m.pruned.with_label_values(&[provider]).inc();
            }
        }
        // A delivery that is dropped ends as `failed` in the push log, whatever this attempt's
        // answer was (a retry or pause that ran out of attempts or time).
        let (log_outcome, log_reason) = match &settle {
            Settle::Failed { error } if outcome_label != "failed" => {
                if let Some(m) = &self.metrics {
                    m.given_up.with_label_values(&[provider]).inc();
                }
                tracing::warn!(
                    delivery = %d.new.id,
                    binding.sid = %d.new.binding_sid,
                    credential.sid = d.new.credential_sid.as_ref().map(|c| c.to_string()).unwrap_or_default(),
                    reason = %error,
                    "push delivery given up"
                );
                ("failed", Some(error.clone()))
            }
            _ => (outcome_label, reason),
        };
        self.settle(&d.new.id, settle).await;
        self.log(&d, log_outcome, log_reason).await;
    }

    /// Send once; returns the settlement, a metrics label and the reason.
    async fn attempt(
        &self,
        d: &Delivery,
        provider: &str,
    ) -> (Settle, &'static str, Option<String>) {
        let Some(notification) = serde_json::from_str::<StoredNotification>(&d.new.payload)
            .ok()
            .and_then(StoredNotification::into_notification)
        else {
            return (
                Settle::Failed {
                    error: "unreadable payload".into(),
                },
                "failed",
                Some("unreadable payload".into()),
            );
        };
        let credential = match self.credential(d).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                let why = "credential missing or unreadable".to_owned();
                return (Settle::Failed { error: why.clone() }, "failed", Some(why));
            }
            Err(e) => {
                let why = format!("store: {e}");
                return (self.retry_or_fail(d, None, why.clone()), "retry", Some(why));
            }
        };
        if let Some((until, reason)) = self.unhealthy_until(&credential.sid) {
            let wait = until.saturating_duration_since(Instant::now());
            let why = format!("credential unhealthy: {reason}");
            // Not a send attempt: don't count it against the attempt budget, only against age.
            return (
                self.retry_or_fail(d, Some(wait), why.clone()),
                "paused",
                Some(why),
            );
        }
        let Some(_slot) = self.credential_slot(&credential.sid) else {
            let at = ts_after(Timestamp::now(), Duration::from_secs(1));
            return (
                Settle::Retry {
                    at,
                    error: "credential busy".into(),
                },
                "deferred",
                None,
            );
        };
        let target = Target {
            binding_sid: d.new.binding_sid.to_string(),
            binding_type: d.new.binding_type,
            address: d.new.address.clone(),
            credential: credential.clone(),
        };
        let started = Instant::now();
        let outcome = match tokio::time::timeout(
            self.config.send_timeout,
            self.sender.send(&target, &notification),
        )
        .await
        {
            Ok(o) => o,
            Err(_) => SendOutcome::Retry {
                after: None,
                reason: "timeout".into(),
            },
        };
        if let Some(m) = &self.metrics {
            m.send_latency
                .with_label_values(&[provider])
                .observe(started.elapsed().as_secs_f64());
            let since_event = Timestamp::now().unix_micros() - d.new.event_at.unix_micros();
            #[allow(clippy::cast_precision_loss)]
            m.event_to_send
                .with_label_values(&[provider])
                .observe(since_event.max(0) as f64 / 1e6);
        }
        match outcome {
            SendOutcome::Delivered => {
                self.send_succeeded(&credential.sid);
                (Settle::Delivered, "delivered", None)
            }
            SendOutcome::InvalidToken { reason }
                if is_bad_token_answer(&reason)
                    && self.bad_token_suspends(&credential.sid, &d.new.address) =>
            {
                let why = format!(
                    "credential answered 'bad device token' for {} distinct device tokens with \
                     no successful send in between: it looks misconfigured (wrong Sandbox flag, \
                     topic or project?), not surrounded by dead devices; its bindings are kept \
                     and not pruned until a send succeeds (last answer: {reason})",
                    self.config.bad_token_threshold.max(1)
                );
                self.mark_unhealthy(&credential.sid, &why);
                (
                    self.retry_or_fail(d, Some(self.config.unhealthy_for), why.clone()),
                    "credential_failed",
                    Some(why),
                )
            }
            SendOutcome::InvalidToken { reason } => {
                tracing::info!(binding.sid = %d.new.binding_sid, reason, "dead device token; binding deleted");
                (
                    Settle::DeadToken {
                        reason: reason.clone(),
                    },
                    "dead_token",
                    Some(reason),
                )
            }
            SendOutcome::Retry { after, reason } => (
                self.retry_or_fail(d, after, reason.clone()),
                "retry",
                Some(reason),
            ),
            SendOutcome::CredentialFailed { reason } => {
                self.mark_unhealthy(&credential.sid, &reason);
                (
                    self.retry_or_fail(d, Some(self.config.unhealthy_for), reason.clone()),
                    "credential_failed",
                    Some(reason),
                )
            }
            SendOutcome::Failed { reason } => (
                Settle::Failed {
                    error: reason.clone(),
                },
                "failed",
                Some(reason),
            ),
        }
    }

    async fn log(&self, d: &Delivery, outcome: &str, reason: Option<String>) {
        if outcome == "deferred" || !self.log_enabled(d).await {
            return;
        }
        let kind = serde_json::from_str::<StoredNotification>(&d.new.payload)
            .map(|n| n.kind)
            .unwrap_or_default();
        let entry = PushLogEntry {
            seq: 0,
            id: d.new.id.clone(),
            account_sid: d.new.account_sid.clone(),
            service_sid: d.new.service_sid.clone(),
            event_id: d.new.event_id,
            kind,
            binding_sid: d.new.binding_sid.clone(),
            identity: d.new.identity.clone(),
            binding_type: d.new.binding_type,
            outcome: outcome.to_owned(),
            reason,
            attempt: d.attempts + 1,
            date_created: Timestamp::now(),
        };
        if let Err(e) = self.push.append_push_log(&entry).await {
            tracing::warn!(error = %e, "cannot write push log");
        }
    }

    /// Refresh the queue-depth gauges.
    pub async fn observe_queue(&self) {
        if let (Some(m), Ok((outbox, deliveries))) =
            (&self.metrics, self.push.push_queue_depth().await)
        {
            m.queue.with_label_values(&["outbox"]).set(outbox);
            m.queue.with_label_values(&["deliveries"]).set(deliveries);
        }
    }

    /// One round of both stages.
    pub async fn run_once(self: &Arc<Self>) -> Result<RunOutcome, StoreError> {
        let fanned = self.fanout_once().await?;
        let sent = self.deliver_once().await?;
        Ok(if fanned + sent > 0 {
            RunOutcome::Worked
        } else {
            RunOutcome::Idle
        })
    }

    /// Wait until every started send has settled.
    pub async fn wait_idle(&self) {
        let all = u32::try_from(self.config.max_in_flight).unwrap_or(u32::MAX);
        if let Ok(p) = self.in_flight.acquire_many(all).await {
            drop(p);
        }
    }

    /// Run rounds until nothing is left (tests and tools): fan-out, sends, settles.
    pub async fn drain(self: &Arc<Self>) -> Result<(), StoreError> {
        loop {
            let outcome = self.run_once().await?;
            self.wait_idle().await;
            if outcome == RunOutcome::Idle {
                return Ok(());
            }
        }
    }

    /// Run until `shutdown` resolves, then stop claiming and let started sends finish (bounded
    /// by the send timeout; anything unfinished is re-claimed after its lease).
    ///
    /// The two stages run side by side, so a large fan-out (written in chunks) is being sent
    /// while it is still being written.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()> + Send) {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let fanout = tokio::spawn(self.clone().fanout_loop(stop.clone()));
        let deliver = tokio::spawn(self.clone().deliver_loop(stop));
        shutdown.await;
        let _ = stop_tx.send(true);
        let _ = fanout.await;
        let _ = deliver.await;
        let _ = tokio::time::timeout(
            self.config.send_timeout + Duration::from_secs(1),
            self.wait_idle(),
        )
        .await;
        tracing::info!("push worker stopped");
    }

    /// Sleep `d` unless stopped first; `true` when stopped.
    async fn pause(stop: &mut tokio::sync::watch::Receiver<bool>, d: Duration) -> bool {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => true,
            _ = tokio::time::sleep(d) => false,
        }
    }

    /// The pause after a round: none after work, the idle poll after none, a second after an
    /// error.
    fn pause_after(&self, outcome: Result<usize, StoreError>, stage: &str) -> Option<Duration> {
        match outcome {
            Ok(0) => Some(self.config.idle_poll),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(stage, error = %e, "push worker round failed");
                Some(Duration::from_secs(1))
            }
        }
    }

    async fn fanout_loop(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let outcome = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                r = self.fanout_once() => r,
            };
            if let Some(p) = self.pause_after(outcome, "fan-out") {
                if Self::pause(&mut stop, p).await {
                    return;
                }
            }
        }
    }

    async fn deliver_loop(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut last_prune = Instant::now();
        let mut last_gauge = Instant::now();
        loop {
            let outcome = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                r = self.deliver_once() => r,
            };
            if last_gauge.elapsed() > Duration::from_secs(5) {
                self.observe_queue().await;
                last_gauge = Instant::now();
            }
            if last_prune.elapsed() > Duration::from_secs(600) {
                let cutoff = Timestamp::now()
                    .plus_secs(-i64::try_from(self.config.log_retention.as_secs()).unwrap_or(0));
                if let Err(e) = self.push.prune_push_log(cutoff, 10_000).await {
                    tracing::warn!(error = %e, "push log pruning failed");
                }
                last_prune = Instant::now();
            }
            if let Some(p) = self.pause_after(outcome, "delivery") {
                if Self::pause(&mut stop, p).await {
                    return;
                }
            }
        }
    }

    /// Send a test notification to one binding now, bypassing the queue; answers the provider's
    /// verdict (`parley push test`).
    pub async fn send_test(
        &self,
        binding: &parley_core::binding::Binding,
        text: &str,
    ) -> Result<SendOutcome, StoreError> {
        let Some(cred_sid) = binding.credential_sid.clone() else {
            return Ok(SendOutcome::Failed {
                reason: "binding has no credential".into(),
            });
        };
        let d = Delivery {
            new: NewDelivery {
                id: format!("test:{}", binding.sid),
                event_id: 0,
                account_sid: binding.account_sid.clone(),
                service_sid: binding.service_sid.clone(),
                binding_sid: binding.sid.clone(),
                credential_sid: Some(cred_sid),
                binding_type: binding.binding_type,
                address: binding.address.clone(),
                identity: binding.identity.clone(),
                payload: String::new(),
                event_at: Timestamp::now(),
                available_at: Timestamp::now(),
            },
            attempts: 0,
        };
        let Some(credential) = self.credential(&d).await? else {
            return Ok(SendOutcome::Failed {
                reason: "credential missing or unreadable".into(),
            });
        };
        let n = Notification {
            id: format!("test:{}:{}", binding.sid, Timestamp::now().unix_micros()),
            kind: NotificationKind::NewMessage,
            service_sid: binding.service_sid.to_string(),
            channel_sid: String::new(),
            channel_unique_name: None,
            channel_friendly_name: Some("Parley test".into()),
            message_sid: None,
            message_index: None,
            author: Some("parley".into()),
            body: Some(text.to_owned()),
            recipient: binding.identity.clone(),
            badge: None,
            sound: None,
            text: text.to_owned(),
        };
        let target = Target {
            binding_sid: binding.sid.to_string(),
            binding_type: binding.binding_type,
            address: binding.address.clone(),
            credential,
        };
        Ok(self.sender.send(&target, &n).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_core::binding::Binding;
    use parley_core::credential::PushType;
    use parley_core::push::Recipient;
    use parley_core::{AccountSid, BindingSid, ServiceSid, UserSid};

    fn recipient(sid: &str) -> Recipient {
        Recipient {
            binding: Binding {
                sid: BindingSid::parse(sid).expect("sid"),
                account_sid: AccountSid::generate(),
                service_sid: ServiceSid::generate(),
                user_sid: UserSid::generate(),
                identity: "x".into(),
                credential_sid: None,
                binding_type: PushType::Fcm,
                endpoint: "e".into(),
                address: "a".into(),
                message_types: vec![],
                date_created: Timestamp::now(),
                date_updated: Timestamp::now(),
            },
        }
    }

    fn sids(r: &[Recipient]) -> Vec<&str> {
        r.iter().map(|r| r.binding.sid.as_str()).collect()
    }

    #[test]
    fn a_resumed_fan_out_writes_only_what_comes_after_its_progress_in_byte_order() {
        let a = "BS0000000000000000000000000000000a";
        let b = "BS0000000000000000000000000000000b";
        let c = "BS000000000000000000000000000000c0";
        let d = "BSf0000000000000000000000000000000";
        let all = || vec![recipient(d), recipient(b), recipient(c), recipient(a)];
        assert_eq!(sids(&still_to_write(all(), None)), vec![a, b, c, d]);
        assert_eq!(sids(&still_to_write(all(), Some(b))), vec![c, d]);
        assert_eq!(sids(&still_to_write(all(), Some(d))), Vec::<&str>::new());
        // A progress that is not one of the recipients (that binding was deleted since).
        let between = "BS0000000000000000000000000000000c";
        assert_eq!(sids(&still_to_write(all(), Some(between))), vec![c, d]);
    }
}
