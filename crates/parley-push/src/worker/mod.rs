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

mod delivery;
mod fanout;
mod health;
mod metrics;
mod settle;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use parley_core::crypto::SecretBox;
use parley_core::service::Service;
use parley_core::store::{PushStore, Store, StoreError};
use parley_core::Timestamp;
use tokio::sync::{mpsc, Semaphore};

use crate::retry::RetryPolicy;
use crate::sender::{PushCredential, PushSender};

use health::BadTokens;
pub use metrics::PushMetrics;
use settle::Settlement;

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

/// What one round did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Claimed something (fan-out or sends).
    Worked,
    /// Nothing was waiting.
    Idle,
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
}
