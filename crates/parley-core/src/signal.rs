//! Signals between the nodes that serve live clients (ARCHITECTURE §7, docs/live-clients.md
//! "Several nodes"): wake-ups and notices that are never stored.
//!
//! * [`Signal::Changed`]: events were appended to a service's change log. It carries no event:
//!   a node that hears it reads the log from its own position, so a signal that is lost or
//!   repeated costs a delay or a read, never an event. Every backend emits it for every commit
//!   that appended events (SQLite: the store, in process; PostgreSQL: a trigger on `events`,
//!   `NOTIFY parley_changes`), whoever wrote — a REST handler, a client, a CLI on this node.
//! * [`Signal::ChannelNotice`]: an ephemeral notification for the live connections of a
//!   channel's members (typing), published by the node that received it and delivered by
//!   every node to its own connections.
//!
//! A [`SignalBus`] reaches every node of the deployment that shares the store, this one
//! included; a subscriber that may have missed signals (it lagged, or the bus lost its
//! connection) receives [`Wake::Missed`] and must re-read everything it follows.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::store::StoreResult;
use crate::{AccountSid, ChannelSid, ServiceSid};

/// How many signals a slow subscriber may fall behind before it gets [`Wake::Missed`].
pub const BUS_CAPACITY: usize = 4096;

/// One signal (see the module docs). Serialised as JSON with a `t` tag where a bus crosses
/// processes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Signal {
    /// The change log of `service` has new events.
    Changed {
        /// The service whose log grew.
        service: ServiceSid,
    },
    /// Tell the live connections of the members of `channel` (except `except_identity`'s):
    /// `message_type` with `payload`. Nothing is stored.
    ChannelNotice {
        /// Owner account.
        account: AccountSid,
        /// Owner service.
        service: ServiceSid,
        /// The channel.
        channel: ChannelSid,
        /// The identity that caused it (not told).
        except_identity: String,
        /// The twilsock notification's `message_type`.
        message_type: String,
        /// Its JSON payload.
        payload: serde_json::Value,
    },
}

/// What a subscriber receives.
#[derive(Clone, Debug, PartialEq)]
pub enum Wake {
    /// A signal, from any node.
    Signal(Signal),
    /// Signals may have been lost (the bus reconnected): re-read everything followed.
    Missed,
}

/// A subscription to a [`SignalBus`].
pub struct Wakes(broadcast::Receiver<Wake>);

impl Wakes {
    /// The next wake-up; [`Wake::Missed`] when this subscriber fell more than
    /// [`BUS_CAPACITY`] behind. `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<Wake> {
        match self.0.recv().await {
            Ok(w) => Some(w),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Wake::Missed),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// A wake-up that is already waiting, without blocking (for coalescing a burst).
    pub fn try_recv(&mut self) -> Option<Wake> {
        match self.0.try_recv() {
            Ok(w) => Some(w),
            Err(broadcast::error::TryRecvError::Lagged(_)) => Some(Wake::Missed),
            Err(_) => None,
        }
    }
}

/// Signals across the nodes sharing one store.
#[async_trait::async_trait]
pub trait SignalBus: Send + Sync {
    /// Send `signal` to every subscriber on every node (this one included).
    async fn publish(&self, signal: &Signal) -> StoreResult<()>;
    /// Start receiving (signals published from now on).
    fn subscribe(&self) -> Wakes;
}

/// The bus of a store that only one process serves (SQLite): an in-process broadcast.
#[derive(Clone, Debug)]
pub struct LocalBus {
    tx: broadcast::Sender<Wake>,
}

impl Default for LocalBus {
    fn default() -> Self {
        LocalBus::new()
    }
}

impl LocalBus {
    /// A bus with no subscribers yet.
    pub fn new() -> LocalBus {
        LocalBus {
            tx: broadcast::channel(BUS_CAPACITY).0,
        }
    }

    /// Deliver `wake` to this process's subscribers (none listening is fine).
    pub fn send(&self, wake: Wake) {
        let _ = self.tx.send(wake);
    }

    /// Whether anyone listens (a store skips building signals when no one does).
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// A subscription (the [`SignalBus::subscribe`] of buses built on this one).
    pub fn wakes(&self) -> Wakes {
        Wakes(self.tx.subscribe())
    }
}

#[async_trait::async_trait]
impl SignalBus for LocalBus {
    async fn publish(&self, signal: &Signal) -> StoreResult<()> {
        self.send(Wake::Signal(signal.clone()));
        Ok(())
    }

    fn subscribe(&self) -> Wakes {
        self.wakes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(s: &ServiceSid) -> Signal {
        Signal::Changed { service: s.clone() }
    }

    #[tokio::test]
    async fn local_bus_reaches_every_subscriber_and_reports_a_lag_as_missed() {
        let bus = LocalBus::new();
        let s = ServiceSid::generate();
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        bus.publish(&changed(&s)).await.expect("publish");
        assert_eq!(a.recv().await, Some(Wake::Signal(changed(&s))));
        assert_eq!(b.try_recv(), Some(Wake::Signal(changed(&s))));
        assert_eq!(b.try_recv(), None);
        for _ in 0..BUS_CAPACITY + 1 {
            bus.send(Wake::Signal(changed(&s)));
        }
        assert_eq!(a.recv().await, Some(Wake::Missed), "a lagging subscriber");
    }

    #[test]
    fn signals_round_trip_as_tagged_json() {
        let notice = Signal::ChannelNotice {
            account: AccountSid::generate(),
            service: ServiceSid::generate(),
            channel: ChannelSid::generate(),
            except_identity: "alice".into(),
            message_type: "twilio.ipmsg.typing_indicator".into(),
            payload: serde_json::json!({"identity": "alice"}),
        };
        let text = serde_json::to_string(&notice).expect("json");
        assert!(text.contains(r#""t":"channel_notice""#), "{text}");
        let back: Signal = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, notice);
        let s = ServiceSid::generate();
        let text = serde_json::to_string(&changed(&s)).expect("json");
        assert_eq!(text, format!(r#"{{"t":"changed","service":"{s}"}}"#));
    }
}
