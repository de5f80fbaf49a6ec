//! Presence shared by nodes ([`parley_core::store::PresenceStore`]): each live connection
//! counts in the `presence` table under this node's id from `init` until it closes. This node
//! pushes its rows' expiry [`PRESENCE_TTL_SECS`] ahead every [`HEARTBEAT_SECS`]; a node that
//! dies without cleanup stops counting at most `PRESENCE_TTL_SECS` after its last heartbeat, and
//! any node's sweep (same period) deletes its rows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parley_core::store::{PresenceKey, Store};
use parley_core::Timestamp;
use std::sync::Arc;

/// How long a presence row counts without a heartbeat of its node.
pub const PRESENCE_TTL_SECS: i64 = 90;
/// Heartbeat and sweep period.
pub const HEARTBEAT_SECS: u64 = 30;
/// Rows one sweep deletes at most.
const SWEEP_LIMIT: u32 = 500;

/// This node's presence bookkeeping.
pub struct Presence {
    /// This node's id in the `presence` table (random per process).
    pub node_id: String,
    started: AtomicBool,
}

impl Default for Presence {
    fn default() -> Self {
        Self {
            node_id: format!("node-{}", parley_core::sid::random_hex32()),
            started: AtomicBool::new(false),
        }
    }
}

impl Presence {
    /// A connection of `key` opened on this node. Starts the heartbeat on first use. Errors are
    /// logged: presence is best effort and never refuses a connection.
    pub async fn opened(&self, store: &Arc<dyn Store>, key: &PresenceKey) -> bool {
        self.start(store);
        let now = Timestamp::now();
        match store
            .presence_opened(key, &self.node_id, now, now.plus_secs(PRESENCE_TTL_SECS))
            .await
        {
            Ok(edge) => edge,
            Err(e) => {
                tracing::warn!(error = %e, "presence: recording a connection failed");
                false
            }
        }
    }

    /// A connection of `key` closed on this node.
    pub async fn closed(&self, store: &Arc<dyn Store>, key: &PresenceKey) -> bool {
        match store
            .presence_closed(key, &self.node_id, Timestamp::now())
            .await
        {
            Ok(edge) => edge,
            Err(e) => {
                tracing::warn!(error = %e, "presence: recording a disconnection failed");
                false
            }
        }
    }

    fn start(&self, store: &Arc<dyn Store>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = store.clone();
        let node = self.node_id.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(HEARTBEAT_SECS));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = Timestamp::now();
                if let Err(e) = store
                    .presence_heartbeat(&node, now.plus_secs(PRESENCE_TTL_SECS))
                    .await
                {
                    tracing::warn!(error = %e, "presence heartbeat failed");
                }
                if let Err(e) = store.expire_presence(now, SWEEP_LIMIT).await {
                    tracing::warn!(error = %e, "presence sweep failed");
                }
            }
        });
    }
}
