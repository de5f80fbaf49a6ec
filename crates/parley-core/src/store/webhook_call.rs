use crate::store::StoreResult;
use crate::webhook_call::{NewWebhookCall, Settle, WebhookCall};
use crate::{ServiceSid, Timestamp};

/// The webhook call queue ([`crate::webhook_call`]). Every method is safe to call from many
/// nodes at once.
#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync {
    /// In ONE transaction, only if `owner` still holds `consumer`'s lease on `service`'s log
    /// (`log_positions`): insert `calls` (ids in the given order) and advance the position as
    /// `EventStore::advance_log` does (to `to_seq`, never back), releasing the lease. A lost
    /// lease is `Conflict(LeaseLost)` (`NotFound` when the service is gone) and queues nothing,
    /// so a crash between reading events and queueing loses nothing, and a lease taken over
    /// queues nothing twice. Each call keeps its `attempts` and, when `leased_to` is set, is
    /// queued leased (claimable by nobody until the lease runs out; its owner settles it).
    /// Returns the ids given to `calls`, in their order.
    async fn enqueue_webhook_calls(
        &self,
        consumer: &str,
        service: &ServiceSid,
        owner: &str,
        to_seq: i64,
        calls: &[NewWebhookCall],
    ) -> StoreResult<Vec<i64>>;
    /// Which of `keys` (order keys of `service`'s calls) have calls queued now, in any state.
    /// A call for one of them must queue behind those; a call for any other key may be sent
    /// at once. Read without locks: only `service`'s log consumer queues calls for its keys.
    async fn waiting_webhook_keys(
        &self,
        service: &ServiceSid,
        keys: &[&str],
    ) -> StoreResult<Vec<String>>;
    /// Claim up to `limit` due calls (`available_at <= now`, lease free or expired), only the
    /// head (lowest id) of each `order_key` — a key's later calls wait while its head is
    /// pending, in backoff, or leased — oldest first, setting the lease to (`owner`,
    /// `lease_until`). Two claimers never hold the same call (PostgreSQL: `skip locked`).
    async fn claim_webhook_calls(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<WebhookCall>> {
        self.claim_webhook_runs(owner, now, lease_until, limit, 1)
            .await
    }
    /// Claim runs: for each `order_key` whose head is claimable (as for
    /// [`claim_webhook_calls`](Self::claim_webhook_calls)), the head and the calls queued right
    /// behind it (next ids of the key) while they are due and free, up to `per_key` calls of
    /// the key; at most `limit` calls in all, keys taken oldest head first. The result is in id
    /// order. A call is only ever claimed together with every earlier call of its key that is
    /// still queued, so whoever holds a key's head holds its run: a sender that sends a run in
    /// order, stopping at the first call to retry and releasing the rest (`Settle::Retry` with
    /// the attempts unchanged), keeps the key's order. `per_key` 1 claims heads only.
    async fn claim_webhook_runs(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        per_key: u32,
    ) -> StoreResult<Vec<WebhookCall>>;
    /// Settle a claimed call, only while `owner` holds its lease (otherwise nothing happens:
    /// another node took it over). [`Settle::Done`] deletes it; [`Settle::Retry`] reschedules
    /// it, records the attempts and releases the lease.
    async fn settle_webhook_call(&self, id: i64, owner: &str, settle: &Settle) -> StoreResult<()>;
    /// Settle several claimed calls, as [`settle_webhook_call`](Self::settle_webhook_call)
    /// does each (a backend may write them in one transaction).
    async fn settle_webhook_calls(&self, owner: &str, batch: &[(i64, Settle)]) -> StoreResult<()> {
        for (id, settle) in batch {
            self.settle_webhook_call(*id, owner, settle).await?;
        }
        Ok(())
    }
    /// Calls waiting (for `/metrics`).
    async fn webhook_queue_depth(&self) -> StoreResult<i64>;
}
