//! Stage 2, delivery: claim deliveries and send each on its own task, bounded globally and per
//! credential; turn the provider's answer into a settlement and a push-log entry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_core::push::{Delivery, NewDelivery, PushLogEntry, Settle};
use parley_core::store::StoreError;
use parley_core::Timestamp;
use tokio::sync::Semaphore;

use super::fanout::StoredNotification;
use super::{lock, ts_after, Cached, Worker, CACHE_TTL};
use crate::notification::{Notification, NotificationKind};
use crate::sender::{is_bad_token_answer, PushCredential, SendOutcome, Target};

impl Worker {
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
        let outcome = if let Some(reason) = &credential.missing_secret {
            // Imported without its secret: no provider could accept it, none is asked (and no
            // send latency is measured).
            SendOutcome::CredentialFailed {
                reason: reason.clone(),
            }
        } else {
            match tokio::time::timeout(
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
            }
        };
        if let Some(m) = self
            .metrics
            .as_ref()
            .filter(|_| credential.missing_secret.is_none())
        {
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
        // A test reads the credential as stored now (one just updated, e.g. given its secret,
        // is tested as it is), refreshing the cache the deliveries use too.
        if let Some(sid) = &d.new.credential_sid {
            lock(&self.credentials).remove(sid.as_str());
        }
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
        if let Some(reason) = &target.credential.missing_secret {
            return Ok(SendOutcome::CredentialFailed {
                reason: reason.clone(),
            });
        }
        Ok(self.sender.send(&target, &n).await)
    }
}
