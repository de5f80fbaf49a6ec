//! Channel webhooks (contract §12). At most [`MAX_CHANNEL_WEBHOOKS`] per channel, enforced in the
//! creating transaction (under the channel's lock, or SQLite's single writer), so concurrent
//! creates cannot overshoot. Rows go with their channel (and so with their service).
//!
//! [`MAX_CHANNEL_WEBHOOKS`]: crate::channel_webhook::MAX_CHANNEL_WEBHOOKS

use crate::channel::ChannelRef;
use crate::channel_webhook::{ChannelWebhook, WebhookConfiguration};
use crate::paging::{Page, PageRequest};
use crate::store::StoreResult;
use crate::{AccountSid, ChannelSid, ChannelWebhookSid, ServiceSid, Timestamp};

/// Channel webhooks.
#[async_trait::async_trait]
pub trait ChannelWebhookStore: Send + Sync {
    /// Insert `webhook` into `channel` (resolved within `webhook.account_sid` and
    /// `webhook.service_sid`; `webhook.channel_sid` is set from the channel):
    /// `LimitExceeded(ChannelWebhooks)` when the channel has its 5 already, `NotFound` when the
    /// channel does not exist. The configuration is stored as given (the caller validates it).
    async fn create_channel_webhook(
        &self,
        channel: &ChannelRef,
        webhook: &ChannelWebhook,
    ) -> StoreResult<ChannelWebhook>;
    /// Fetch one webhook of the channel.
    async fn fetch_channel_webhook(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &ChannelWebhookSid,
    ) -> StoreResult<ChannelWebhook>;
    /// List by `(date_created, sid)` (`NotFound` when the channel does not exist).
    async fn list_channel_webhooks(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        page: &PageRequest,
    ) -> StoreResult<Page<ChannelWebhook>>;
    /// Replace the configuration fields `patch` sets (others stay; the type never changes), in
    /// one transaction; `date_updated` becomes `now`.
    async fn update_channel_webhook(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &ChannelWebhookSid,
        patch: &WebhookConfiguration,
        now: Timestamp,
    ) -> StoreResult<ChannelWebhook>;
    /// Delete one webhook of the channel.
    async fn delete_channel_webhook(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &ChannelWebhookSid,
    ) -> StoreResult<()>;
    /// For the delivery engine, in one read: the webhooks of each of `channels` in the account
    /// and service, grouped by channel (in the order of `channels`), oldest first within one
    /// (`(date_created, sid)`). A channel deleted meanwhile gives the webhooks its
    /// `channel_removed` event recorded (the first such event after `after_seq` in the
    /// service's change log), so the events written before a deletion still reach the hooks
    /// the channel had; a channel that has none, or is not in the account and service, gives
    /// nothing.
    async fn channel_webhooks_for_delivery(
        &self,
        account: &AccountSid,
        service_sid: &ServiceSid,
        channels: &[ChannelSid],
        after_seq: i64,
    ) -> StoreResult<Vec<ChannelWebhook>>;
}
