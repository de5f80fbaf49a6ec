//! The durable queue of post-event webhook calls (webhooks.md §4, §6; `docs/WEBHOOK-DELIVERY.md`).
//!
//! The webhook consumer of the change log turns each event into the calls it causes (the
//! service's post-event URL, the channel's webhooks), sends those that need not wait, and
//! queues the others with
//! [`crate::store::WebhookStore::enqueue_webhook_calls`] in the transaction that advances its
//! log position. Senders on any number of nodes claim calls with leases; calls that share an
//! [`NewWebhookCall::order_key`] (one destination and one channel, or one other object) are
//! delivered strictly one after the other, in the order they were queued.

use crate::{AccountSid, ChannelSid, ServiceSid, Timestamp};

/// A call to queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWebhookCall {
    /// Owner account (whose auth token signs the call).
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// The channel the event is about (`None` for user events).
    pub channel_sid: Option<ChannelSid>,
    /// Destination URL, exactly as configured (it is what the signature covers).
    pub url: String,
    /// `GET` or `POST`.
    pub method: String,
    /// The post-event name (`onMessageSent`, …).
    pub event_type: String,
    /// The parameters in order, without `RetryCount` (the sender adds it per try).
    pub params: Vec<(String, String)>,
    /// Retries allowed after the first try (the service's `post_webhook_retry_count`, or the
    /// channel webhook's `configuration.retry_count`).
    pub retry_count_max: i32,
    /// Calls with the same key are delivered strictly in queue order: destination + channel
    /// (or + the object, for events without a channel).
    pub order_key: String,
    /// Earliest send time.
    pub available_at: Timestamp,
    /// When it was queued.
    pub date_created: Timestamp,
    /// Tries already made (0 for a new call; the consumer queues a call it tried itself, and
    /// that must be retried, with its tries counted).
    pub attempts: i32,
    /// Queued already leased to (`owner`, `until`): a call whose first try is still in flight
    /// on the consumer's node when it queues it; that node settles it like a claimed call.
    pub leased_to: Option<(String, Timestamp)>,
}

/// A queued call, as a claim returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookCall {
    /// Queue id: increasing in queue order.
    pub id: i64,
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// The channel, if any.
    pub channel_sid: Option<ChannelSid>,
    /// Destination URL.
    pub url: String,
    /// `GET` or `POST`.
    pub method: String,
    /// The post-event name.
    pub event_type: String,
    /// The parameters in order, without `RetryCount`.
    pub params: Vec<(String, String)>,
    /// Retries allowed after the first try.
    pub retry_count_max: i32,
    /// Tries made so far: this try sends `RetryCount = attempts`.
    pub attempts: i32,
    /// Earliest send time.
    pub available_at: Timestamp,
    /// The ordering key.
    pub order_key: String,
    /// When it was queued.
    pub date_created: Timestamp,
}

/// What became of a claimed call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Delivered, or given up: the row is deleted (the next call of its key becomes claimable).
    Done,
    /// Try again at `at` (releasing the lease); `attempts` = tries made so far.
    Retry {
        /// Earliest next try.
        at: Timestamp,
        /// Tries made so far (the next sends `RetryCount = attempts`).
        attempts: i32,
    },
}
