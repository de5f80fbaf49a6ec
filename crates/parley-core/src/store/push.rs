use crate::event::Event;
use crate::paging::{Page, PageRequest};
use crate::push::{Delivery, NewDelivery, OutboxItem, PushLogEntry, Recipient, Settle};
use crate::store::StoreResult;
use crate::{AccountSid, ServiceSid, Timestamp};

/// Push delivery state. Every method is safe to call from many nodes at once.
#[async_trait::async_trait]
pub trait PushStore: Send + Sync {
    /// Claim up to `limit` outbox entries whose `available_at <= now` and whose lease is free
    /// (`lease_until` null or `< now`), oldest event first, setting `lease_until` and
    /// incrementing `attempts`. PostgreSQL: `for update skip locked`.
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>>;
    /// The devices to notify for `event`:
    /// * `new_message`: bindings of the channel's members except the author (`event.actor`)
    ///   and members whose `notification_level` is `muted`;
    /// * `added_to_channel` / `invited_to_channel` / `removed_from_channel`: bindings of
    ///   `event.identity` (muted members get nothing for added/removed either);
    ///
    /// keeping only bindings whose `message_types` contain `event.kind`.
    async fn recipients(&self, event: &Event) -> StoreResult<Vec<Recipient>>;
    /// In one transaction: insert `deliveries` (ignoring ids that exist) and delete the outbox
    /// entry of `event_id`.
    async fn complete_fanout(&self, event_id: i64, deliveries: &[NewDelivery]) -> StoreResult<()>;
    /// One chunk of a large fan-out, in one transaction: insert `deliveries` (ignoring ids
    /// that exist) and record `after` — the greatest binding SID (byte order) written so far —
    /// as the entry's `fanout_after` (it never moves back). The outbox entry and its lease stay;
    /// the last chunk goes through [`PushStore::complete_fanout`].
    async fn fanout_progress(
        &self,
        event_id: i64,
        deliveries: &[NewDelivery],
        after: &str,
    ) -> StoreResult<()>;
    /// Put an outbox entry back for a later try (fan-out failed), releasing its lease.
    async fn retry_outbox(&self, event_id: i64, at: Timestamp) -> StoreResult<()>;
    /// Claim up to `limit` deliveries (`available_at <= now`, lease free), oldest first, setting
    /// `lease_until` and incrementing `attempts`.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;
    /// Settle one claimed delivery (see [`Settle`]).
    async fn settle_delivery(&self, id: &str, settle: &Settle) -> StoreResult<()>;
    /// Settle several claimed deliveries, as [`PushStore::settle_delivery`] would one by one;
    /// backends do it in one transaction. An error may leave none of them settled (their
    /// leases then expire and they are sent again).
    async fn settle_deliveries(&self, batch: &[(String, Settle)]) -> StoreResult<()> {
        for (id, settle) in batch {
            self.settle_delivery(id, settle).await?;
        }
        Ok(())
    }
    /// (outbox entries, deliveries) waiting, for `/metrics`.
    async fn push_queue_depth(&self) -> StoreResult<(i64, i64)>;
    /// Number of channels with exactly two members in which `identity` has unread messages
    /// (last consumed index below the channel's last message index): the APNs badge
    /// (push-payloads.md §4, GUESS documented there).
    async fn badge_count(&self, service: &ServiceSid, identity: &str) -> StoreResult<i64>;
    /// Append to the delivery log.
    async fn append_push_log(&self, entry: &PushLogEntry) -> StoreResult<()>;
    /// Read a service's delivery log by `(date_created, seq)` (cursor `sid` = `seq` as 20-digit text).
    async fn list_push_log(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        page: &PageRequest,
    ) -> StoreResult<Page<PushLogEntry>>;
    /// Delete log rows older than `cutoff` (retention), at most `limit`; returns how many.
    async fn prune_push_log(&self, cutoff: Timestamp, limit: u32) -> StoreResult<u64>;
}
