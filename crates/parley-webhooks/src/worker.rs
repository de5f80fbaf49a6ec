//! The durable post-event path (issue 12 item 6; `docs/WEBHOOK-DELIVERY.md`): change log → call queue →
//! receivers. Nothing here knows a backend: both stages work through the store traits.
//!
//! 1. **Consumer** — claims one service's new events as change-log consumer
//!    [`CONSUMER`] (`EventStore::claim_log`), turns each into its post-event ([`post_event`]) and
//!    the calls it causes — the service's `PostWebhookUrl` when the change allows webhooks and
//!    `WebhookFilters` list the event ([`service_post_target`]); each channel webhook that wants
//!    it ([`channel_hook_wants`]). Calls whose key (destination + channel) has nothing queued are
//!    **sent straight away** (one task per key, its calls in order; the consumer waits for them
//!    up to [`WorkerConfig::direct_wait`]); the others — keys that wait in the queue, calls to be
//!    retried and those behind them, runs that outlasted the wait, the call in flight leased to
//!    this node — are queued **in the same transaction that advances its log position**
//!    (`WebhookStore::enqueue_webhook_calls`). A crash before that commit leaves the events to
//!    be read again after the lease; a lease lost to another node queues nothing.
//! 2. **Sender** — claims due queued calls (only the oldest call of each destination + channel, so a
//!    channel's calls arrive in the order of its changes), sends each on its own task, bounded
//!    on this node globally and per destination host (a slow receiver fills only its own slots;
//!    calls for a host with no free slot go back to the queue for a moment), and settles it:
//!    delivered → removed; timeout/connection failure/429/503/504 with retries left → tried again after a backoff
//!    with `RetryCount` one higher; anything else → logged (Chat 50057 / 50076) and removed.
//!
//! A REST request never waits for any of this. Sends run at least once: a node that dies
//! mid-send leaves the call leased, and it is sent again when the lease runs out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parley_core::channel_webhook::ChannelWebhook;
use parley_core::event::{Event, EventKind, Resource};
use parley_core::log::LogClaim;
use parley_core::service::Service;
use parley_core::store::{Conflict, Store, StoreError};
use parley_core::webhook_call::{NewWebhookCall, Settle, WebhookCall};
use parley_core::{AccountSid, ChannelSid, ServiceSid, Timestamp};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};

use crate::client::{backoff, Call, Outcome, WebhookClient};
use crate::post::{post_event, PostEvent};
use crate::route::{channel_hook_wants, service_post_target, Method, Target, MAX_RETRY_COUNT};
use crate::tokens::AuthTokens;

/// The change-log consumer name of the webhook engine (its `log_positions` rows).
pub const CONSUMER: &str = "webhooks";

/// Worker settings.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// This node's lease owner id (unique per process).
    pub node_id: String,
    /// Sleep between polls when there is nothing to do.
    pub poll: Duration,
    /// Events read per log claim.
    pub events_per_claim: u32,
    /// Calls claimed per sender round (at most the free slots × `calls_per_key`).
    pub calls_per_claim: u32,
    /// Calls of one key (destination + channel) claimed together and sent one after the other
    /// by one task: a key's next calls need no claim of their own, so a channel's calls are
    /// not limited to one per claim round (whose writes queue behind the requests' writes).
    pub calls_per_key: u32,
    /// How long a claim (of log events or of a call) is held before another node may take the
    /// work over; must stay well above the send timeout.
    pub lease: Duration,
    /// Most sends in flight on this node.
    pub max_in_flight: usize,
    /// Most sends in flight per destination host on this node; as many more claimed calls for
    /// the host may wait in memory for a free slot (beyond that they go back to the queue).
    pub per_host: usize,
    /// How long a call for a host with no free slot waits before it is claimed again.
    pub host_busy_delay: Duration,
    /// Delay before a queued call's first try (0 in production; tests use it to stop a node
    /// between queueing and sending).
    pub first_try_delay: Duration,
    /// How long a stage that found work, but less than a full round, lets more gather before
    /// its next round. Under load this keeps the rounds — each a write that queues with the
    /// requests' writes — to about one per `gather` per stage instead of one per handful of
    /// events; it adds at most this much to a call's delay.
    pub gather: Duration,
    /// How long the consumer waits for the calls it sends itself (see [`Worker`]: calls whose
    /// key has nothing queued go out straight from the change log, and only calls that must
    /// wait are queued). A run still going after this is handed over to the queue — the call
    /// in flight queued leased to this node, the rest behind it — and its host is left to the
    /// queue for [`WorkerConfig::slow_host_for`]. Zero queues every call.
    pub direct_wait: Duration,
    /// How long a host whose call outlasted `direct_wait` gets its calls through the queue only.
    pub slow_host_for: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            node_id: format!("node-{}", parley_core::sid::random_hex32()),
            poll: Duration::from_millis(250),
            events_per_claim: 500,
            calls_per_claim: 512,
            calls_per_key: 16,
            lease: Duration::from_secs(60),
            max_in_flight: 256,
            per_host: 32,
            host_busy_delay: Duration::from_millis(200),
            first_try_delay: Duration::ZERO,
            gather: Duration::from_millis(20),
            direct_wait: Duration::from_millis(200),
            slow_host_for: Duration::from_secs(10),
        }
    }
}

/// Queue metrics: `parley_webhook_queue_depth` (calls waiting, refreshed every few seconds) and
/// `parley_webhook_calls_given_up_total{reason}` (`error_answer`, `timeout`, `connection_error`,
/// `refused`, `bad_url`, `no_token`: calls removed without a 2xx answer).
#[derive(Clone)]
pub struct QueueMetrics {
    depth: IntGauge,
    given_up: IntCounterVec,
}

impl QueueMetrics {
    /// Register on `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let depth = IntGauge::new(
            "parley_webhook_queue_depth",
            "Post-event webhook calls waiting to be sent (all nodes).",
        )?;
        let given_up = IntCounterVec::new(
            Opts::new(
                "parley_webhook_calls_given_up_total",
                "Post-event webhook calls removed without a 2xx answer, by last outcome.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(depth.clone()))?;
        registry.register(Box::new(given_up.clone()))?;
        Ok(Self { depth, given_up })
    }
}

/// What one round did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Claimed something.
    Worked,
    /// Nothing was waiting.
    Idle,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn after(now: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_unix_micros(
        now.unix_micros()
            .saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
    )
}

/// A destination host's limits on this node: calls being sent, and calls held (sending or
/// waiting in memory for a sending slot).
#[derive(Clone)]
struct HostSlots {
    held: Arc<Semaphore>,
    sending: Arc<Semaphore>,
}

/// A finished run of calls waiting for their settlements to be written, with the node-wide
/// slot it holds.
struct Settled {
    items: Vec<(i64, Settle)>,
    _slot: OwnedSemaphorePermit,
}

/// The webhook worker of one node.
pub struct Worker {
    store: Arc<dyn Store>,
    tokens: Arc<AuthTokens>,
    client: WebhookClient,
    config: WorkerConfig,
    metrics: Option<QueueMetrics>,
    in_flight: Arc<Semaphore>,
    per_host: Mutex<HashMap<String, HostSlots>>,
    pending: Mutex<Vec<Settled>>,
    settling: tokio::sync::Mutex<()>,
    /// Rings when calls were queued or settled on this node (the sender then claims at once
    /// instead of waiting for its poll; other nodes' work is seen at the poll).
    wake: tokio::sync::Notify,
    /// Hosts whose calls go through the queue only, until the given time (a call to them
    /// outlasted [`WorkerConfig::direct_wait`]).
    slow_hosts: Mutex<HashMap<String, Instant>>,
}

/// What [`Worker::send_direct`] leaves to the queue: the calls to queue, in order, and for
/// each call queued while in flight, its index there and where its id goes.
type HandOver = (Vec<NewWebhookCall>, Vec<(usize, oneshot::Sender<i64>)>);

/// Where a run the consumer sends itself stands ([`Worker::send_direct`]).
#[derive(Debug, Default)]
struct DirectState {
    /// `calls[..done]` are settled: delivered, or given up and logged.
    done: usize,
    /// `calls[done]` is being sent (or waits for a sending slot when `false` and not ended).
    sending: bool,
    /// The run is over: every call settled, or `calls[done]` is to be retried (`retry`).
    ended: bool,
    /// `calls[done]` is to be tried again at .0, with .1 tries made.
    retry: Option<(Timestamp, i32)>,
    /// The consumer stopped waiting: `calls[done..]` are queued; when `sending`, `calls[done]`
    /// is queued leased to this node and the run settles it once its id is known.
    handed_over: bool,
}

/// A run of one key's calls that the consumer sends itself, one after the other.
struct DirectRun {
    calls: Vec<NewWebhookCall>,
    host: String,
    state: Mutex<DirectState>,
}

/// What a try needs of a call, queued ([`WebhookCall`]) or not ([`NewWebhookCall`], id 0).
struct TryOf<'a> {
    id: i64,
    account_sid: &'a AccountSid,
    service_sid: &'a ServiceSid,
    url: &'a str,
    method: &'a str,
    event_type: &'a str,
    params: &'a [(String, String)],
    attempts: i32,
    retry_count_max: i32,
}

impl<'a> From<&'a WebhookCall> for TryOf<'a> {
    fn from(c: &'a WebhookCall) -> Self {
        TryOf {
            id: c.id,
            account_sid: &c.account_sid,
            service_sid: &c.service_sid,
            url: &c.url,
            method: &c.method,
            event_type: &c.event_type,
            params: &c.params,
            attempts: c.attempts,
            retry_count_max: c.retry_count_max,
        }
    }
}

impl<'a> From<&'a NewWebhookCall> for TryOf<'a> {
    fn from(c: &'a NewWebhookCall) -> Self {
        TryOf {
            id: 0,
            account_sid: &c.account_sid,
            service_sid: &c.service_sid,
            url: &c.url,
            method: &c.method,
            event_type: &c.event_type,
            params: &c.params,
            attempts: c.attempts,
            retry_count_max: c.retry_count_max,
        }
    }
}

/// `items` grouped by order key, each group in the given order; groups in the order of their
/// first item.
fn by_key<T>(items: Vec<T>, key: impl Fn(&T) -> &str) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for item in items {
        match index.get(key(&item)) {
            Some(&i) => groups[i].push(item),
            None => {
                index.insert(key(&item).to_owned(), groups.len());
                groups.push(vec![item]);
            }
        }
    }
    groups
}

/// The queue entry of `target` for `post` (from `event`).
fn queued_call(
    event: &Event,
    post: &PostEvent,
    target: &Target,
    available_at: Timestamp,
    now: Timestamp,
) -> NewWebhookCall {
    NewWebhookCall {
        account_sid: event.account_sid.clone(),
        service_sid: event.service_sid.clone(),
        channel_sid: post.channel_sid.clone(),
        url: target.url.clone(),
        method: target.method.as_str().to_owned(),
        event_type: post.event_type.to_owned(),
        params: post.params.clone(),
        retry_count_max: i32::try_from(target.retries).unwrap_or(0),
        order_key: order_key(&target.url, event),
        available_at,
        date_created: now,
        attempts: 0,
        leased_to: None,
    }
}

/// Calls with the same key are delivered one after the other, in queue order: one destination
/// and one channel (or, for user events, one user; else the service).
pub fn order_key(url: &str, event: &Event) -> String {
    let object = match (&event.channel_sid, &event.state) {
        (Some(ch), _) => ch.as_str().to_owned(),
        (None, Some(Resource::User(u))) => u.sid.as_str().to_owned(),
        _ => event.service_sid.as_str().to_owned(),
    };
    format!("{url} {object}")
}

/// The target of a channel webhook (type `webhook` or `trigger`), if it has a URL.
fn hook_target(hook: &ChannelWebhook) -> Option<Target> {
    let c = &hook.configuration;
    let url = c.url.as_ref().filter(|u| !u.trim().is_empty())?;
    Some(Target {
        url: url.clone(),
        method: Method::parse(c.method.map(|m| m.as_str())),
        retries: u32::try_from(
            c.retry_count
                .unwrap_or(0)
                .clamp(0, i64::from(MAX_RETRY_COUNT)),
        )
        .unwrap_or(0),
    })
}

/// The calls `event` causes: the service's post-event URL, then the channel's webhooks (oldest
/// first). `hooks` are the webhooks of the event's channel.
pub fn calls_for(
    event: &Event,
    service: &Service,
    hooks: &[ChannelWebhook],
    available_at: Timestamp,
    now: Timestamp,
) -> Vec<NewWebhookCall> {
    let Some(post) = post_event(event) else {
        return Vec::new();
    };
    let mut calls = Vec::new();
    if let Some(target) = service_post_target(&service.settings, &post) {
        calls.push(queued_call(event, &post, &target, available_at, now));
    }
    for hook in hooks {
        let c = &hook.configuration;
        let wants = channel_hook_wants(
            hook.kind.as_str(),
            c.filters.as_deref().unwrap_or_default(),
            c.triggers.as_deref().unwrap_or_default(),
            &post,
        );
        if let Some(target) = wants.then(|| hook_target(hook)).flatten() {
            calls.push(queued_call(event, &post, &target, available_at, now));
        }
    }
    calls
}

/// Claimed calls (in id order) grouped by key, each group in id order; groups in the order of
/// their heads.
fn runs(claimed: Vec<WebhookCall>) -> Vec<Vec<WebhookCall>> {
    by_key(claimed, |c| c.order_key.as_str())
}

/// Hand `calls` back to the queue unsent (attempts unchanged): the first one due at `at`, the
/// others as they were (they wait behind it anyway).
fn release(out: &mut Vec<(i64, Settle)>, calls: &[WebhookCall], at: Timestamp) {
    for (i, call) in calls.iter().enumerate() {
        out.push((
            call.id,
            Settle::Retry {
                at: if i == 0 { at } else { call.available_at },
                attempts: call.attempts,
            },
        ));
    }
}

/// The host (and port) of a URL, for the per-destination bound.
fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_else(|| url.to_owned())
}

/// Paces the consumer: partial rounds of one service are at least `gather` apart (a full
/// round — more is waiting — is followed at once). The consumer sleeps the returned time
/// before its next claim, which may be another service's: that one is held up only when the
/// same service comes back within `gather`, i.e. when every service with events was served in
/// less than that.
struct Pacer {
    gather: Duration,
    /// When each service's last partial round may be followed by the next.
    next: HashMap<ServiceSid, Instant>,
}

impl Pacer {
    fn new(gather: Duration) -> Pacer {
        Pacer {
            gather,
            next: HashMap::new(),
        }
    }

    /// After a round that read `n` of at most `full` events of `service` at `now`: how long to
    /// wait before the next claim.
    fn after_round(
        &mut self,
        service: &ServiceSid,
        n: usize,
        full: usize,
        now: Instant,
    ) -> Duration {
        if n >= full {
            self.next.remove(service);
            return Duration::ZERO;
        }
        let wait = self
            .next
            .get(service)
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        if self.next.len() >= 10_000 {
            self.next.retain(|_, t| *t > now);
        }
        self.next.insert(service.clone(), now + wait + self.gather);
        wait
    }
}

impl Worker {
    /// A worker over `store`, signing with the account tokens of `tokens`, sending with
    /// `client`.
    pub fn new(
        store: Arc<dyn Store>,
        tokens: Arc<AuthTokens>,
        client: WebhookClient,
        config: WorkerConfig,
        metrics: Option<QueueMetrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            store,
            tokens,
            client,
            config,
            metrics,
            per_host: Mutex::new(HashMap::new()),
            pending: Mutex::new(Vec::new()),
            settling: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            slow_hosts: Mutex::new(HashMap::new()),
        })
    }

    /// One consumer round: claim one service's new events, send the calls they cause that
    /// need not wait (up to [`WorkerConfig::direct_wait`]), and queue the others while
    /// advancing the log position, in one transaction. Returns how many events were read.
    pub async fn consume_once(self: &Arc<Self>) -> Result<usize, StoreError> {
        self.consume_round().await.map(|(n, _)| n)
    }

    /// [`Worker::consume_once`], also naming the service whose events were read.
    async fn consume_round(self: &Arc<Self>) -> Result<(usize, Option<ServiceSid>), StoreError> {
        let now = Timestamp::now();
        let Some(claim) = self
            .store
            .claim_log(
                CONSUMER,
                &self.config.node_id,
                now,
                after(now, self.config.lease),
                self.config.events_per_claim,
            )
            .await?
        else {
            return Ok((0, None));
        };
        let service = claim.service_sid.clone();
        self.deliver_claim(claim, now)
            .await
            .map(|n| (n, Some(service)))
    }

    /// Send or queue the calls of `claim` and move the log position past it.
    async fn deliver_claim(
        self: &Arc<Self>,
        claim: LogClaim,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let calls = self.calls_of(&claim, now).await?;
        let n = claim.events.len();
        let direct = !calls.is_empty()
            && !self.config.direct_wait.is_zero()
            && self.config.first_try_delay.is_zero();
        let (queue, handed_over) = if direct {
            self.send_direct(&claim.service_sid, calls).await?
        } else {
            (calls, Vec::new())
        };
        match self
            .store
            .enqueue_webhook_calls(
                CONSUMER,
                &claim.service_sid,
                &self.config.node_id,
                claim.last_seq(),
                &queue,
            )
            .await
        {
            Ok(ids) => {
                // Calls still in flight were queued leased to us: their runs settle them.
                for (at, tx) in handed_over {
                    if let Some(id) = ids.get(at) {
                        let _ = tx.send(*id);
                    }
                }
                if !queue.is_empty() {
                    tracing::debug!(service.sid = %claim.service_sid, events = n,
                        calls = queue.len(), "webhook calls queued");
                    self.wake.notify_one();
                }
                Ok(n.max(1))
            }
            // Another node took the service over (our lease ran out): it reads these events
            // again; ours are dropped with the rolled-back transaction.
            Err(StoreError::Conflict(Conflict::LeaseLost) | StoreError::NotFound) => {
                tracing::warn!(service.sid = %claim.service_sid,
                    "webhook consumer lost its lease; another node handles these events");
                Ok(n.max(1))
            }
            Err(e) => Err(e),
        }
    }

    /// Send `calls` straight away where nothing of their key is queued and their host has room
    /// (one task per key, its calls one after the other), wait for them up to
    /// [`WorkerConfig::direct_wait`], and return what must be queued — calls of keys that wait
    /// in the queue, calls to be retried and those behind them, runs that outlasted the wait —
    /// in an order that keeps each key's order, with, for each call still in flight (queued
    /// leased to this node), its index in that list and where to send its id.
    async fn send_direct(
        self: &Arc<Self>,
        service: &ServiceSid,
        calls: Vec<NewWebhookCall>,
    ) -> Result<HandOver, StoreError> {
        let groups = by_key(calls, |c| c.order_key.as_str());
        let keys: Vec<&str> = groups.iter().map(|g| g[0].order_key.as_str()).collect();
        let waiting = self.store.waiting_webhook_keys(service, &keys).await?;
        let now = Instant::now();
        let mut queue = Vec::new();
        let mut runs: Vec<(Arc<DirectRun>, oneshot::Sender<i64>)> = Vec::new();
        let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<()>();
        for group in groups {
            let host = host_of(&group[0].url);
            let slow = lock(&self.slow_hosts)
                .get(&host)
                .is_some_and(|until| *until > now);
            if slow || waiting.contains(&group[0].order_key) {
                queue.extend(group);
                continue;
            }
            // A run waits for one of its host's sending slots (the round bounds how many
            // wait); the node-wide bound holds as for the sender.
            let slots = self.host_slots(&host);
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                queue.extend(group);
                continue;
            };
            let run = Arc::new(DirectRun {
                calls: group,
                host,
                state: Mutex::new(DirectState::default()),
            });
            let (id_tx, id_rx) = oneshot::channel();
            let worker = self.clone();
            let ended = ended_tx.clone();
            let task_run = run.clone();
            tokio::spawn(async move {
                worker
                    .direct_run(task_run, slots, permit, ended, id_rx)
                    .await;
            });
            runs.push((run, id_tx));
        }
        drop(ended_tx);
        // Wait for every run to end, or the deadline.
        let total = runs.len();
        let _ = tokio::time::timeout(self.config.direct_wait, async {
            for _ in 0..total {
                if ended_rx.recv().await.is_none() {
                    break;
                }
            }
        })
        .await;
        let mut handed_over = Vec::new();
        let stamp = Timestamp::now();
        for (run, id_tx) in runs {
            let mut st = lock(&run.state);
            let mut rest = run.calls[st.done..].to_vec();
            if st.ended {
                // Over: only a call to be retried (and the calls behind it) is left.
                let Some((at, attempts)) = st.retry else {
                    continue;
                };
                if let Some(head) = rest.first_mut() {
                    head.available_at = at;
                    head.attempts = attempts;
                }
            } else {
                // Still going: the rest of the run waits in the queue instead.
                st.handed_over = true;
                if st.sending {
                    self.mark_slow(&run.host, now);
                    handed_over.push((queue.len(), id_tx));
                    if let Some(head) = rest.first_mut() {
                        head.leased_to =
                            Some((self.config.node_id.clone(), after(stamp, self.config.lease)));
                    }
                }
            }
            queue.extend(rest);
        }
        Ok((queue, handed_over))
    }

    /// Leave `host`'s calls to the queue for [`WorkerConfig::slow_host_for`] (hosts whose time
    /// is over are forgotten meanwhile, so the map holds only hosts slow right now).
    fn mark_slow(&self, host: &str, now: Instant) {
        let mut slow = lock(&self.slow_hosts);
        slow.retain(|_, until| *until > now);
        slow.insert(host.to_owned(), now + self.config.slow_host_for);
        tracing::info!(host = %host, "webhook receiver slow: its calls are queued");
    }

    /// Send one run of [`Worker::send_direct`], one call after the other, until it ends or is
    /// handed over to the queue; a call in flight when it was handed over is settled in the
    /// queue once its id is known.
    async fn direct_run(
        self: Arc<Self>,
        run: Arc<DirectRun>,
        slots: HostSlots,
        permit: OwnedSemaphorePermit,
        ended: mpsc::UnboundedSender<()>,
        id: oneshot::Receiver<i64>,
    ) {
        let Ok(sending) = slots.sending.acquire_owned().await else {
            return;
        };
        let end = |st: &mut DirectState| {
            st.ended = true;
            st.sending = false;
            let _ = ended.send(());
        };
        for (i, call) in run.calls.iter().enumerate() {
            {
                let mut st = lock(&run.state);
                if st.handed_over {
                    return;
                }
                st.sending = true;
            }
            let outcome = self.attempt(call.into()).await;
            // Record the outcome; `Some` when the run was handed over meanwhile.
            let late = {
                let mut st = lock(&run.state);
                if st.handed_over {
                    Some(outcome)
                } else {
                    match outcome {
                        Ok(Settle::Done) => {
                            st.done = i + 1;
                            st.sending = false;
                            continue;
                        }
                        Ok(Settle::Retry { at, attempts }) => {
                            st.retry = Some((at, attempts));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "webhook call failed to start; it is queued");
                            let at = after(Timestamp::now(), Duration::from_secs(1));
                            st.retry = Some((at, call.attempts));
                        }
                    }
                    end(&mut st);
                    None
                }
            };
            // Queued leased to us meanwhile: settle that row as a claimed call (a call that
            // did not start keeps its lease, which runs out, and is tried again then).
            if let Some(Ok(settle)) = late {
                if let Ok(id) = id.await {
                    drop(sending);
                    self.settle(Settled {
                        items: vec![(id, settle)],
                        _slot: permit,
                    })
                    .await;
                }
            }
            return;
        }
        end(&mut lock(&run.state));
    }

    async fn calls_of(
        &self,
        claim: &LogClaim,
        now: Timestamp,
    ) -> Result<Vec<NewWebhookCall>, StoreError> {
        // Cheap checks first: most events of most services cause no call, and need no read.
        let firing: Vec<&Event> = claim
            .events
            .iter()
            .filter(|e| e.webhooks && e.state.is_some())
            .collect();
        if firing.is_empty() {
            return Ok(Vec::new());
        }
        let service = match self
            .store
            .fetch_service(&claim.account_sid, &claim.service_sid)
            .await
        {
            Ok(s) => s,
            // Deleted meanwhile: its position row goes with it, nothing to send.
            Err(StoreError::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        // The webhooks of every channel concerned, in one read. A channel deleted meanwhile
        // (also later in this batch) gives the hooks its channel_removed event kept.
        let mut channels: Vec<ChannelSid> = Vec::new();
        for e in &firing {
            if let Some(ch) = &e.channel_sid {
                if e.kind != EventKind::ChannelRemoved && !channels.contains(ch) {
                    channels.push(ch.clone());
                }
            }
        }
        let mut hooks: HashMap<ChannelSid, Vec<ChannelWebhook>> = HashMap::new();
        if !channels.is_empty() {
            for hook in self
                .store
                .channel_webhooks_for_delivery(
                    &claim.account_sid,
                    &claim.service_sid,
                    &channels,
                    claim.position,
                )
                .await?
            {
                hooks
                    .entry(hook.channel_sid.clone())
                    .or_default()
                    .push(hook);
            }
        }
        let available_at = after(now, self.config.first_try_delay);
        let mut calls = Vec::new();
        for event in firing {
            let channel_hooks: &[ChannelWebhook] = match &event.channel_sid {
                // The channel and its webhooks are gone: the event keeps them as they were.
                Some(_) if event.kind == EventKind::ChannelRemoved => &event.channel_webhooks,
                Some(ch) => hooks.get(ch).map(Vec::as_slice).unwrap_or_default(),
                None => &[],
            };
            calls.extend(calls_for(event, &service, channel_hooks, available_at, now));
        }
        Ok(calls)
    }

    fn host_slots(&self, host: &str) -> HostSlots {
        let n = self.config.per_host.max(1);
        lock(&self.per_host)
            .entry(host.to_owned())
            .or_insert_with(|| HostSlots {
                held: Arc::new(Semaphore::new(2 * n)),
                sending: Arc::new(Semaphore::new(n)),
            })
            .clone()
    }

    /// One sender round: claim due runs of calls (up to the free slots) and start their sends.
    /// Returns how many calls were claimed.
    pub async fn send_once(self: &Arc<Self>) -> Result<usize, StoreError> {
        let free = self.in_flight.available_permits();
        let per_key = self.config.calls_per_key.max(1);
        let limit = u32::try_from(free)
            .unwrap_or(u32::MAX)
            .saturating_mul(per_key)
            .min(self.config.calls_per_claim);
        if limit == 0 {
            return Ok(0);
        }
        let now = Timestamp::now();
        let claimed = self
            .store
            .claim_webhook_runs(
                &self.config.node_id,
                now,
                after(now, self.config.lease),
                limit,
                per_key,
            )
            .await?;
        let n = claimed.len();
        // Calls that cannot start now go back to the queue together, in one write (one per
        // call was what slowed delivery to a crawl once more keys were waiting than a host's
        // slots: every round handed the surplus back a statement at a time).
        let mut back = Vec::new();
        for run in runs(claimed) {
            let host = host_of(&run[0].url);
            let slots = self.host_slots(&host);
            let Ok(held) = slots.held.clone().try_acquire_owned() else {
                // This host has all its slots busy and as many runs waiting for them: let the
                // run wait its turn in the queue (its head is still the head of its key, so
                // order is kept) instead of holding it here.
                release(&mut back, &run, after(now, self.config.host_busy_delay));
                continue;
            };
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                drop(held);
                release(&mut back, &run, now);
                continue;
            };
            let worker = self.clone();
            tokio::spawn(async move {
                // Wait (leased, in memory) for one of the host's sending slots.
                let Ok(sending) = slots.sending.acquire_owned().await else {
                    return;
                };
                worker.deliver(run, sending, held, permit).await;
            });
        }
        if !back.is_empty() {
            self.store
                .settle_webhook_calls(&self.config.node_id, &back)
                .await?;
        }
        Ok(n)
    }

    /// Send one claimed run, one call after the other, free its host slots, and settle it
    /// (batched with the runs that finish meanwhile; the node-wide slot is held until the
    /// settlement is written, so [`Worker::wait_idle`] also waits for it). A call to be retried
    /// ends the run: it and the calls behind it go back to the queue, in order.
    async fn deliver(
        &self,
        run: Vec<WebhookCall>,
        sending: OwnedSemaphorePermit,
        held: OwnedSemaphorePermit,
        permit: OwnedSemaphorePermit,
    ) {
        let mut items = Vec::with_capacity(run.len());
        for (i, call) in run.iter().enumerate() {
            match self.attempt(call.into()).await {
                Ok(settle) => {
                    let retry = matches!(settle, Settle::Retry { .. });
                    items.push((call.id, settle));
                    if retry {
                        release(&mut items, &run[i + 1..], Timestamp::now());
                        break;
                    }
                }
                // Not settled: this call and the rest of the run keep their lease, which runs
                // out, and they are tried again then, in order.
                Err(e) => {
                    tracing::warn!(webhook_call.id = call.id, error = %e,
                        "webhook call failed to start");
                    break;
                }
            }
        }
        drop(sending);
        drop(held);
        if !items.is_empty() {
            self.settle(Settled {
                items,
                _slot: permit,
            })
            .await;
        }
    }

    /// Queue a settlement; the first to queue into an empty batch writes the batch, after the
    /// batch before it is written (so settlements that finish while one is written go together).
    async fn settle(&self, s: Settled) {
        let lead = {
            let mut pending = lock(&self.pending);
            pending.push(s);
            pending.len() == 1
        };
        if !lead {
            return;
        }
        let _writing = self.settling.lock().await;
        let batch = std::mem::take(&mut *lock(&self.pending));
        if batch.is_empty() {
            return;
        }
        let items: Vec<(i64, Settle)> =
            batch.iter().flat_map(|s| s.items.iter().cloned()).collect();
        if let Err(e) = self
            .store
            .settle_webhook_calls(&self.config.node_id, &items)
            .await
        {
            tracing::warn!(calls = items.len(), error = %e,
                "cannot settle webhook calls; they are sent again after their lease");
        }
        drop(batch);
        // Settled heads make their keys' next calls claimable: look at once, not at the poll.
        self.wake.notify_one();
    }

    /// One try of `call`: send it and say how to settle it.
    async fn attempt(&self, call: TryOf<'_>) -> Result<Settle, StoreError> {
        let Some(auth_token) = self.tokens.get(call.account_sid).await? else {
            self.given_up("no_token");
            tracing::warn!(webhook_call.id = call.id, account.sid = %call.account_sid,
                "webhook call dropped: the account or its auth token is gone");
            return Ok(Settle::Done);
        };
        let retry_count = u32::try_from(call.attempts).unwrap_or(0);
        let call_to_make = Call {
            url: call.url.to_owned(),
            method: Method::parse(Some(call.method)),
            params: call.params.to_vec(),
            auth_token,
            event_type: call.event_type.to_owned(),
            retry_count,
        };
        let outcome = self.client.send(&call_to_make).await;
        if outcome.is_delivered() {
            return Ok(Settle::Done);
        }
        if outcome.is_retryable_post() && call.attempts < call.retry_count_max {
            let next = retry_count + 1;
            tracing::info!(webhook_call.id = call.id, event = %call.event_type,
                outcome = outcome.label(), retry = next, "webhook call will be retried");
            return Ok(Settle::Retry {
                at: after(Timestamp::now(), backoff(next)),
                attempts: call.attempts + 1,
            });
        }
        self.given_up(outcome.label());
        let code = outcome
            .chat_code()
            .unwrap_or(crate::client::CODE_ERROR_ANSWER);
        let detail = match &outcome {
            Outcome::ErrorAnswer { status } => format!("status {status}"),
            Outcome::Connection(e) | Outcome::Refused(e) | Outcome::BadUrl(e) => e.clone(),
            Outcome::Timeout => "no answer in time".to_owned(),
            Outcome::Delivered { .. } => String::new(),
        };
        tracing::warn!(code, webhook_call.id = call.id, service.sid = %call.service_sid,
            event = %call.event_type, outcome = outcome.label(), retries = call.attempts,
            %detail, "post-event webhook failed");
        Ok(Settle::Done)
    }

    fn given_up(&self, reason: &str) {
        if let Some(m) = &self.metrics {
            m.given_up.with_label_values(&[reason]).inc();
        }
    }

    /// Refresh the queue-depth gauge.
    pub async fn observe_queue(&self) {
        if let (Some(m), Ok(depth)) = (&self.metrics, self.store.webhook_queue_depth().await) {
            m.depth.set(depth);
        }
    }

    /// Wait until every started send has settled.
    pub async fn wait_idle(&self) {
        let all = u32::try_from(self.config.max_in_flight.max(1)).unwrap_or(u32::MAX);
        if let Ok(p) = self.in_flight.acquire_many(all).await {
            drop(p);
        }
    }

    /// Run both stages until `shutdown` resolves, then stop claiming and let started sends
    /// finish (bounded by the send timeout; an unfinished call is sent again after its lease).
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()> + Send) {
        let (stop_tx, stop) = watch::channel(false);
        let consumer = tokio::spawn(self.clone().consume_loop(stop.clone()));
        let sender = tokio::spawn(self.clone().send_loop(stop));
        shutdown.await;
        let _ = stop_tx.send(true);
        let _ = consumer.await;
        let _ = sender.await;
        let grace = self.client.config().timeout + Duration::from_secs(1);
        let _ = tokio::time::timeout(grace, self.wait_idle()).await;
        tracing::info!("webhook worker stopped");
    }

    /// Sleep `d` unless stopped first; `true` when stopped.
    async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => true,
            _ = tokio::time::sleep(d) => false,
        }
    }

    /// The pause after a round that found `outcome` of at most `full` items: none after a full
    /// round (more is waiting), `gather` after a partial one, the poll after an empty one.
    fn pause_after(
        &self,
        outcome: Result<usize, StoreError>,
        full: usize,
        stage: &str,
    ) -> Option<Duration> {
        match outcome {
            Ok(0) => Some(self.config.poll),
            Ok(n) if n >= full => None,
            Ok(_) => Some(self.config.gather),
            Err(e) => {
                tracing::warn!(stage, error = %e, "webhook worker round failed");
                Some(Duration::from_secs(1))
            }
        }
    }

    /// Claim rounds back to back while services have events, paced per service by [`Pacer`].
    async fn consume_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let full = usize::try_from(self.config.events_per_claim).unwrap_or(usize::MAX);
        let mut pacer = Pacer::new(self.config.gather);
        loop {
            if *stop.borrow() {
                return;
            }
            // A round runs to its end (bounded by `direct_wait` and the store): cut short, calls
            // it sent would be sent again by whoever reads its events next.
            let outcome = self.consume_round().await;
            let pause = match outcome {
                Ok((0, _)) | Ok((_, None)) => Some(self.config.poll),
                Ok((n, Some(service))) => {
                    Some(pacer.after_round(&service, n, full, Instant::now()))
                }
                Err(e) => self.pause_after(Err(e), full, "consumer"),
            };
            if let Some(p) = pause.filter(|p| !p.is_zero()) {
                if Self::pause(&mut stop, p).await {
                    return;
                }
            }
        }
    }

    async fn send_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut last_gauge = Instant::now();
        loop {
            let outcome = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                r = self.send_once() => r,
            };
            if last_gauge.elapsed() > Duration::from_secs(5) {
                self.observe_queue().await;
                last_gauge = Instant::now();
            }
            // All slots busy: wait for one to free up (or the poll) rather than spin.
            if self.in_flight.available_permits() == 0 {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = self.in_flight.acquire() => {},
                    _ = tokio::time::sleep(self.config.poll) => {},
                }
                continue;
            }
            let full = usize::try_from(self.config.calls_per_claim).unwrap_or(usize::MAX);
            let found = matches!(outcome, Ok(n) if n > 0);
            match self.pause_after(outcome, full, "sender") {
                // Work was found: let more gather (a wake-up does not cut this short).
                Some(p) if found && Self::pause(&mut stop, p).await => return,
                Some(_) if found => {}
                Some(p) => {
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = self.wake.notified() => {},
                        _ = tokio::time::sleep(p) => {},
                    }
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use parley_core::channel_webhook::{WebhookConfiguration, WebhookMethod, WebhookType};
    use parley_core::event::{EventKind, Resource, Source};
    use parley_core::service::ServiceSettings;
    use parley_core::{AccountSid, ChannelWebhookSid, ServiceSid};

    use super::*;
    use crate::post::tests::{event, message, t0, user, AC, IS};

    fn service(url: Option<&str>, filters: &[&str], retries: i64) -> Service {
        Service {
            sid: ServiceSid::parse(IS).unwrap(),
            account_sid: AccountSid::parse(AC).unwrap(),
            friendly_name: "s".to_owned(),
            date_created: t0(),
            date_updated: t0(),
            default_service_role_sid: None,
            default_channel_role_sid: None,
            default_channel_creator_role_sid: None,
            settings: ServiceSettings {
                post_webhook_url: url.map(str::to_owned),
                webhook_filters: Some(filters.iter().map(|f| (*f).to_owned()).collect()),
                post_webhook_retry_count: retries,
                ..ServiceSettings::default()
            },
        }
    }

    fn hook(kind: WebhookType, url: &str, filters: &[&str], triggers: &[&str]) -> ChannelWebhook {
        let list = |l: &[&str]| Some(l.iter().map(|s| (*s).to_owned()).collect());
        ChannelWebhook {
            sid: ChannelWebhookSid::generate(),
            account_sid: AccountSid::parse(AC).unwrap(),
            service_sid: ServiceSid::parse(IS).unwrap(),
            channel_sid: ChannelSid::parse(crate::post::tests::CH).unwrap(),
            kind,
            configuration: WebhookConfiguration {
                url: Some(url.to_owned()),
                method: Some(WebhookMethod::Get),
                filters: list(filters),
                triggers: list(triggers),
                flow_sid: None,
                retry_count: Some(3),
            },
            date_created: t0(),
            date_updated: t0(),
        }
    }

    #[test]
    fn a_new_message_calls_the_service_url_and_the_hooks_that_want_it_in_order() {
        let mut m = message();
        m.body = Some("I need help".to_owned());
        let e = event(
            EventKind::NewMessage,
            Resource::Message(m),
            Source::Api,
            None,
        );
        let svc = service(Some("https://svc.example/post"), &["onMessageSent"], 2);
        let hooks = [
            hook(
                WebhookType::Webhook,
                "https://a.example/",
                &["onMessageSent"],
                &[],
            ),
            hook(
                WebhookType::Webhook,
                "https://b.example/",
                &["onMemberAdded"],
                &[],
            ),
            hook(WebhookType::Trigger, "https://t.example/", &[], &["help"]),
            hook(
                WebhookType::Studio,
                "https://s.example/",
                &["onMessageSent"],
                &[],
            ),
        ];
        let calls = calls_for(&e, &svc, &hooks, t0(), t0());
        let urls: Vec<&str> = calls.iter().map(|c| c.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://svc.example/post",
                "https://a.example/",
                "https://t.example/"
            ]
        );
        assert_eq!(
            (calls[0].method.as_str(), calls[0].retry_count_max),
            ("POST", 2)
        );
        assert_eq!(
            (calls[1].method.as_str(), calls[1].retry_count_max),
            ("GET", 3)
        );
        assert!(calls
            .iter()
            .all(|c| c.event_type == "onMessageSent"
                && !c.params.iter().any(|(k, _)| k == "RetryCount")));
        // One key per destination and channel.
        assert_eq!(
            calls[0].order_key,
            format!("https://svc.example/post {}", crate::post::tests::CH)
        );
        assert_ne!(calls[0].order_key, calls[1].order_key);
    }

    #[test]
    fn nothing_is_queued_without_the_webhook_flag_a_url_or_a_listed_filter() {
        let mut e = event(
            EventKind::NewMessage,
            Resource::Message(message()),
            Source::Api,
            None,
        );
        let svc = service(Some("https://svc.example/post"), &["onMessageSent"], 0);
        let hooks = [hook(
            WebhookType::Webhook,
            "https://a.example/",
            &["onMessageSent"],
            &[],
        )];
        assert_eq!(calls_for(&e, &svc, &hooks, t0(), t0()).len(), 2);
        e.webhooks = false;
        assert!(calls_for(&e, &svc, &hooks, t0(), t0()).is_empty());
        e.webhooks = true;
        assert!(calls_for(&e, &service(None, &["onMessageSent"], 0), &[], t0(), t0()).is_empty());
        assert!(calls_for(
            &e,
            &service(Some("https://x/"), &["onMessageUpdated"], 0),
            &[],
            t0(),
            t0()
        )
        .is_empty());
    }

    #[test]
    fn user_events_are_ordered_per_user() {
        let e = event(
            EventKind::UserAdded,
            Resource::User(user()),
            Source::Api,
            None,
        );
        let svc = service(Some("https://svc.example/post"), &["onUserAdded"], 0);
        let calls = calls_for(&e, &svc, &[], t0(), t0());
        assert_eq!(calls.len(), 1);
        assert_eq!(
            calls[0].order_key,
            format!("https://svc.example/post {}", user().sid.as_str())
        );
        assert_eq!(calls[0].channel_sid, None);
    }

    #[test]
    fn partial_rounds_of_one_service_are_gather_apart_and_full_ones_go_on() {
        let gather = Duration::from_millis(20);
        let mut pacer = Pacer::new(gather);
        let (a, b) = (ServiceSid::generate(), ServiceSid::generate());
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // The first partial round of a service goes on at once; the next one waits the rest.
        assert_eq!(pacer.after_round(&a, 3, 500, ms(0)), Duration::ZERO);
        assert_eq!(
            pacer.after_round(&a, 3, 500, ms(1)),
            Duration::from_millis(19)
        );
        // Steady load: one round per `gather`.
        assert_eq!(
            pacer.after_round(&a, 3, 500, ms(20)),
            Duration::from_millis(20)
        );
        assert_eq!(
            pacer.after_round(&a, 3, 500, ms(40)),
            Duration::from_millis(20)
        );
        // Another service is not held up by the first.
        assert_eq!(pacer.after_round(&b, 3, 500, ms(41)), Duration::ZERO);
        // A full round (a backlog) goes on at once, and resets the pace.
        assert_eq!(pacer.after_round(&a, 500, 500, ms(42)), Duration::ZERO);
        assert_eq!(pacer.after_round(&a, 3, 500, ms(43)), Duration::ZERO);
        // A service quiet for longer than `gather` goes on at once.
        assert_eq!(pacer.after_round(&b, 3, 500, ms(100)), Duration::ZERO);
    }

    #[test]
    fn hosts_are_keyed_with_their_port() {
        assert_eq!(host_of("https://a.example/x"), "a.example:443");
        assert_eq!(host_of("http://a.example:8080/x"), "a.example:8080");
        assert_eq!(host_of("http://127.0.0.1/x?y"), "127.0.0.1:80");
    }
}
