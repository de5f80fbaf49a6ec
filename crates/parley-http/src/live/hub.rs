//! This node's live connections: who is connected, and a bounded queue into each socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use parley_core::ServiceSid;
use tokio::sync::{mpsc, Notify};

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

/// Registry of this node's connections.
#[derive(Default)]
pub struct Hub {
    next: AtomicU64,
    conns: Mutex<HashMap<ConnId, Entry>>,
}

impl Hub {
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
        self.lock().remove(&id);
    }

    /// Queue `msg` for connection `id` without waiting. `false` when the connection is gone or
    /// its queue is full (a slow consumer: the connection is then told to close, and recovers by
    /// replay after reconnecting).
    pub fn send(&self, id: ConnId, msg: Outbound) -> bool {
        let (tx, kick) = match self.lock().get(&id) {
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
        let mut out: Vec<ConnId> = self
            .lock()
            .iter()
            .filter(|(_, e)| &e.service == service && e.identity == identity)
            .map(|(id, _)| *id)
            .collect();
        out.sort();
        out
    }

    /// The services with at least one connection (what a change-log tail must follow).
    pub fn services(&self) -> Vec<ServiceSid> {
        let mut out: Vec<ServiceSid> = self.lock().values().map(|e| e.service.clone()).collect();
        out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        out.dedup();
        out
    }

    /// How many connections are registered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every connection id (e.g. to close them all at shutdown).
    pub fn all(&self) -> Vec<ConnId> {
        let mut out: Vec<ConnId> = self.lock().keys().copied().collect();
        out.sort();
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Entry>> {
        // A poisoned registry still holds consistent data (every critical section is a single
        // map operation).
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }
}
