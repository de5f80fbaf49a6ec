//! Signals between the nodes sharing one database (`parley_core::signal`), on PostgreSQL's
//! `LISTEN`/`NOTIFY`: no new infrastructure.
//!
//! * `parley_changes`: the `events_notify` trigger (migrations/0010_change_signal.sql) sends the
//!   service SID of every appended event at commit → [`Signal::Changed`].
//! * `parley_live`: [`SignalBus::publish`] sends the JSON of any other signal (a channel notice:
//!   typing) with `pg_notify`; every node, this one included, hears it.
//!
//! One listener connection per node, taken from the pool when the first subscriber arrives and
//! kept while anyone listens. Whenever the listener (re)connects — notifications sent while it
//! was away are lost — subscribers get [`Wake::Missed`], sent once the new `LISTEN` is in force,
//! and re-read what they follow.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parley_core::signal::{LocalBus, Signal, SignalBus, Wake, Wakes};
use parley_core::store::{StoreError, StoreResult};
use parley_core::ServiceSid;
use sqlx::postgres::{PgListener, PgPool};

/// The trigger's channel (payload: a service SID).
pub const CHANGES_CHANNEL: &str = "parley_changes";
/// The channel of published signals (payload: the signal's JSON).
pub const LIVE_CHANNEL: &str = "parley_live";
/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7999;
/// Pause before reconnecting a listener that failed.
const RETRY: Duration = Duration::from_secs(1);

/// The PostgreSQL signal bus of one [`crate::PgStore`].
#[derive(Debug)]
pub(crate) struct PgBus {
    pool: PgPool,
    local: LocalBus,
    listening: Arc<AtomicBool>,
}

impl PgBus {
    pub(crate) fn new(pool: PgPool) -> PgBus {
        PgBus {
            pool,
            local: LocalBus::new(),
            listening: Arc::new(AtomicBool::new(false)),
        }
    }
}

#[async_trait::async_trait]
impl SignalBus for PgBus {
    async fn publish(&self, signal: &Signal) -> StoreResult<()> {
        let payload =
            serde_json::to_string(signal).map_err(|e| StoreError::Other(anyhow::anyhow!(e)))?;
        if payload.len() > MAX_PAYLOAD {
            return Err(StoreError::Other(anyhow::anyhow!(
                "signal of {} bytes is over PostgreSQL's NOTIFY limit",
                payload.len()
            )));
        }
        sqlx::query("select pg_notify($1, $2)")
            .bind(LIVE_CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::Other(e.into()))?;
        Ok(())
    }

    fn subscribe(&self) -> Wakes {
        let wakes = self.local.wakes();
        if !self.listening.swap(true, Ordering::AcqRel) {
            tokio::spawn(listen(
                self.pool.clone(),
                self.local.clone(),
                self.listening.clone(),
            ));
        }
        wakes
    }
}

/// Turn one notification into a wake-up (`None`: not ours or unreadable).
fn decode(channel: &str, payload: &str) -> Option<Wake> {
    match channel {
        CHANGES_CHANNEL => ServiceSid::parse(payload)
            .ok()
            .map(|service| Wake::Signal(Signal::Changed { service })),
        LIVE_CHANNEL => serde_json::from_str::<Signal>(payload)
            .ok()
            .map(Wake::Signal),
        _ => None,
    }
}

/// Listen until nobody subscribes any more (or the pool is closed).
async fn listen(pool: PgPool, local: LocalBus, listening: Arc<AtomicBool>) {
    'connect: loop {
        if pool.is_closed() || !local.has_subscribers() {
            break;
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "signal listener: connect failed; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if let Err(e) = listener.listen_all([CHANGES_CHANNEL, LIVE_CHANNEL]).await {
            tracing::warn!(error = %e, "signal listener: LISTEN failed; retrying");
            tokio::time::sleep(RETRY).await;
            continue;
        }
        // Whatever was sent before this LISTEN took effect is not coming.
        local.send(Wake::Missed);
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    if let Some(wake) = decode(n.channel(), n.payload()) {
                        local.send(wake);
                    } else {
                        tracing::debug!(channel = n.channel(), "signal listener: ignored");
                    }
                }
                // The connection was lost: listen again on a new one, and only then say that
                // signals were missed (a change committed before the new LISTEN is found by the
                // re-read that `Missed` asks for; one after it is notified).
                Ok(None) => {
                    tracing::info!("signal listener: connection lost; listening again");
                    continue 'connect;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "signal listener failed; reconnecting");
                    local.send(Wake::Missed);
                    tokio::time::sleep(RETRY).await;
                    continue 'connect;
                }
            }
            if !local.has_subscribers() {
                break 'connect;
            }
        }
    }
    listening.store(false, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_and_published_payloads_decode() {
        let s = ServiceSid::generate();
        assert_eq!(
            decode(CHANGES_CHANNEL, s.as_str()),
            Some(Wake::Signal(Signal::Changed { service: s.clone() }))
        );
        assert_eq!(decode(CHANGES_CHANNEL, "not a sid"), None);
        let json = serde_json::to_string(&Signal::Changed { service: s.clone() }).expect("json");
        assert_eq!(
            decode(LIVE_CHANNEL, &json),
            Some(Wake::Signal(Signal::Changed { service: s }))
        );
        assert_eq!(decode(LIVE_CHANNEL, "{"), None);
        assert_eq!(decode("other", "x"), None);
    }
}
