use crate::store::StoreResult;
use crate::{AccountSid, ServiceSid, Timestamp};

/// Whose presence: one user (by identity) of one service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PresenceKey {
    /// Owner account.
    pub account: AccountSid,
    /// Owner service.
    pub service: ServiceSid,
    /// The user's identity.
    pub identity: String,
}

/// Live connections shared by every node (table `presence`, migration 0009): one row per
/// (account, service, identity, node) with a connection count and an expiry. A user is online
/// while some row of theirs has `connections > 0` and `expires_at > now`. A node pushes its
/// rows' expiry forward with [`PresenceStore::presence_heartbeat`]; a node that dies without
/// cleanup stops counting once its rows' expiry passes, and
/// [`PresenceStore::expire_presence`] (run by any node) deletes them and reports who went
/// offline.
#[async_trait::async_trait]
pub trait PresenceStore: Send + Sync {
    /// One more connection of `key` on `node`, the row's expiry set to `expires_at`. Returns
    /// true when the user was offline everywhere (no live row at `now`) before this call.
    async fn presence_opened(
        &self,
        key: &PresenceKey,
        node: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<bool>;
    /// One connection of `key` on `node` gone (the row goes at zero; nothing happens when
    /// there is no row). Returns true when the user was online before and no live row remains
    /// at `now` (the last connection anywhere closed).
    async fn presence_closed(
        &self,
        key: &PresenceKey,
        node: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Move the expiry of every row of `node` to `expires_at`; returns how many rows.
    async fn presence_heartbeat(&self, node: &str, expires_at: Timestamp) -> StoreResult<u64>;
    /// Delete at most `limit` rows whose expiry is at or before `now`; returns the users that
    /// are offline afterwards (no live row left), each once. Safe on several nodes at once: a
    /// row is deleted, and its user reported, by one caller only.
    async fn expire_presence(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<PresenceKey>>;
    /// Whether `key` has a live row at `now`.
    async fn is_online(&self, key: &PresenceKey, now: Timestamp) -> StoreResult<bool>;
}
