//! This node's live connections: who is connected, and a bounded queue into each socket.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use parley_core::ServiceSid;
use tokio::sync::{mpsc, watch, Notify};

/// A connection's id, unique on this node for its lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Something to send down a socket (the socket task frames it).
#[derive(Clone, Debug)]
pub enum Outbound {
    /// A twilsock `notification` frame: `message_type` and a JSON payload.
    Notification {
        /// e.g. `twilio.sync.event`, `com.twilio.rtd.cds.list`, `twilio.ipmsg.typing_indicator`.
        message_type: String,
        /// The JSON payload.
        payload: serde_json::Value,
    },
    /// Close the connection with a twilsock `close` frame of this status code and text.
    Close {
        /// e.g. 308 (offload), 410 (token expired).
        code: u16,
        /// Status text.
        status: String,
    },
}

struct Entry {
    service: ServiceSid,
    identity: String,
    tx: mpsc::Sender<Outbound>,
    kick: Arc<Notify>,
}

#[derive(Default)]
struct Registry {
    conns: HashMap<ConnId, Entry>,
    /// The connections of each (service, identity): fan-out and the per-identity limit without
    /// scanning every connection.
    by_identity: HashMap<(ServiceSid, String), BTreeSet<ConnId>>,
}

impl Registry {
    fn insert(&mut self, id: ConnId, entry: Entry) {
        self.by_identity
            .entry((entry.service.clone(), entry.identity.clone()))
            .or_default()
            .insert(id);
        self.conns.insert(id, entry);
    }

    fn remove(&mut self, id: ConnId) -> Option<Entry> {
        let entry = self.conns.remove(&id)?;
        let key = (entry.service.clone(), entry.identity.clone());
        if let Some(set) = self.by_identity.get_mut(&key) {
            set.remove(&id);
            if set.is_empty() {
                self.by_identity.remove(&key);
            }
        }
        Some(entry)
    }

    fn count_of(&self, service: &ServiceSid, identity: &str) -> usize {
        // The key is owned; building it costs two small allocations per look-up.
        self.by_identity
            .get(&(service.clone(), identity.to_owned()))
            .map_or(0, BTreeSet::len)
    }
}

/// Registry of this node's connections.
pub struct Hub {
    next: AtomicU64,
    conns: Mutex<Registry>,
    /// Turns `true` when the server shuts down: every socket says goodbye (308) and closes.
    shutdown: watch::Sender<bool>,
    /// This node's rows in the presence table shared by nodes.
    pub presence: super::presence::Presence,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            next: AtomicU64::new(0),
            conns: Mutex::new(Registry::default()),
            shutdown: watch::Sender::new(false),
            presence: super::presence::Presence::default(),
        }
    }
}

/// Why [`Hub::try_register`] refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// The identity already has this many connections (the per-identity limit).
    TooManyConnections(usize),
    /// The server is shutting down.
    ShuttingDown,
}

impl Hub {
    /// Register like [`Hub::register`], unless `identity` already has `max_per_identity`
    /// connections on this node or the server is shutting down (checked and inserted under one
    /// lock, so concurrent connections cannot overshoot the limit).
    pub fn try_register(
        &self,
        service: ServiceSid,
        identity: String,
        tx: mpsc::Sender<Outbound>,
        kick: Arc<Notify>,
        max_per_identity: usize,
    ) -> Result<ConnId, RegisterError> {
        if *self.shutdown.borrow() {
            return Err(RegisterError::ShuttingDown);
        }
        let mut reg = self.lock();
        let have = reg.count_of(&service, &identity);
        if have >= max_per_identity {
            return Err(RegisterError::TooManyConnections(have));
        }
        let id = ConnId(self.next.fetch_add(1, Ordering::Relaxed) + 1);
        reg.insert(
            id,
            Entry {
                service,
                identity,
                tx,
                kick,
            },
        );
        Ok(id)
    }

    /// Tell every socket to close because the server stops (each sends a twilsock `close` 308
    /// and closes); later connections are refused.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Whether [`Hub::begin_shutdown`] was called.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A receiver that turns `true` at [`Hub::begin_shutdown`].
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Register a connection of `identity` in `service`, sending into `tx` (bounded). `kick` is
    /// notified when the connection must close because it fell behind (its queue was full).
    pub fn register(
        &self,
        service: ServiceSid,
        identity: String,
        tx: mpsc::Sender<Outbound>,
        kick: Arc<Notify>,
    ) -> ConnId {
        let id = ConnId(self.next.fetch_add(1, Ordering::Relaxed) + 1);
        self.lock().insert(
            id,
            Entry {
                service,
                identity,
                tx,
                kick,
            },
        );
        id
    }

    /// Forget a connection (it closed).
    pub fn unregister(&self, id: ConnId) {
        self.lock().remove(id);
    }

    /// Queue `msg` for connection `id` without waiting. `false` when the connection is gone or
    /// its queue is full (a slow consumer: the connection is then told to close, and recovers by
    /// replay after reconnecting).
    pub fn send(&self, id: ConnId, msg: Outbound) -> bool {
        let (tx, kick) = match self.lock().conns.get(&id) {
            Some(e) => (e.tx.clone(), e.kick.clone()),
            None => return false,
        };
        match tx.try_send(msg) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // A slow consumer: forget it and tell its socket task to close; the client
                // reconnects and replays what it missed.
                self.unregister(id);
                kick.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.unregister(id);
                false
            }
        }
    }

    /// Wait until connection `id`'s queue has room for `n` more frames (at most half its size),
    /// or it is gone, or `limit` passed. A replay paces itself with this: it may send far more
    /// than a queue holds (everything a client missed), and must not be taken for a slow
    /// consumer while the client reads as fast as the network lets it. Live sends never wait.
    pub async fn room(&self, id: ConnId, n: usize, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let tx = match self.lock().conns.get(&id) {
                Some(e) => e.tx.clone(),
                None => return,
            };
            let want = n.min(tx.max_capacity() / 2).max(1);
            if tx.is_closed() || tx.capacity() >= want || tokio::time::Instant::now() >= deadline {
                return;
            }
            drop(tx);
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    /// Queue a notification for connection `id` (see [`Hub::send`]).
    pub fn notify(&self, id: ConnId, message_type: &str, payload: serde_json::Value) -> bool {
        self.send(
            id,
            Outbound::Notification {
                message_type: message_type.to_owned(),
                payload,
            },
        )
    }

    /// The connections of `identity` in `service`.
    pub fn connections_of(&self, service: &ServiceSid, identity: &str) -> Vec<ConnId> {
        self.lock()
            .by_identity
            .get(&(service.clone(), identity.to_owned()))
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The services with at least one connection (what a change-log tail must follow).
    pub fn services(&self) -> Vec<ServiceSid> {
        let mut out: Vec<ServiceSid> = self
            .lock()
            .by_identity
            .keys()
            .map(|(s, _)| s.clone())
            .collect();
        out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        out.dedup();
        out
    }

    /// How many connections are registered.
    pub fn len(&self) -> usize {
        self.lock().conns.len()
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every connection id (e.g. to close them all at shutdown).
    pub fn all(&self) -> Vec<ConnId> {
        let mut out: Vec<ConnId> = self.lock().conns.keys().copied().collect();
        out.sort();
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A poisoned registry still holds consistent data (every critical section is a single
        // map operation).
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> ServiceSid {
        ServiceSid::parse("IS00000000000000000000000000000001").expect("sid")
    }

    #[test]
    fn the_per_identity_limit_counts_live_connections_only() {
        let hub = Hub::default();
        let (tx, _rx) = mpsc::channel(4);
        let kick = Arc::new(Notify::new());
        let a = hub
            .try_register(service(), "alice".into(), tx.clone(), kick.clone(), 2)
            .expect("first");
        let b = hub
            .try_register(service(), "alice".into(), tx.clone(), kick.clone(), 2)
            .expect("second");
        assert_eq!(
            hub.try_register(service(), "alice".into(), tx.clone(), kick.clone(), 2),
            Err(RegisterError::TooManyConnections(2))
        );
        // Another identity is not affected.
        let c = hub
            .try_register(service(), "bob".into(), tx.clone(), kick.clone(), 2)
            .expect("bob");
        assert_eq!(hub.connections_of(&service(), "alice"), vec![a, b]);
        hub.unregister(a);
        assert_eq!(hub.connections_of(&service(), "alice"), vec![b]);
        assert!(hub
            .try_register(service(), "alice".into(), tx.clone(), kick.clone(), 2)
            .is_ok());
        assert_eq!(hub.services(), vec![service()]);
        assert_eq!(hub.len(), 3);
        hub.unregister(c);
        assert!(hub.connections_of(&service(), "bob").is_empty());
        hub.begin_shutdown();
        assert_eq!(
            hub.try_register(service(), "carol".into(), tx, kick, 2),
            Err(RegisterError::ShuttingDown)
        );
    }

    #[test]
    fn a_full_queue_unregisters_and_kicks() {
        let hub = Hub::default();
        let (tx, mut rx) = mpsc::channel(1);
        let kick = Arc::new(Notify::new());
        let id = hub.register(service(), "alice".into(), tx, kick.clone());
        assert!(hub.notify(id, "t", serde_json::json!({"n": 1})));
        assert!(!hub.notify(id, "t", serde_json::json!({"n": 2})));
        assert!(hub.connections_of(&service(), "alice").is_empty());
        assert!(hub.is_empty());
        // The kick was stored for the socket task to see.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(1), kick.notified())
                .await
                .expect("kicked");
        });
        assert!(matches!(rx.try_recv(), Ok(Outbound::Notification { .. })));
    }
}
