//! Push delivery state (issue "Push delivery"): the transactional outbox that chat writes fill
//! (`push_outbox`, one row per event, written with the event), the per-(event, binding)
//! deliveries the fan-out creates, and the delivery log. Workers on any number of nodes claim
//! work with leases (PostgreSQL: `FOR UPDATE SKIP LOCKED`); a crash loses nothing, because an
//! expired lease makes the work claimable again.

use crate::binding::Binding;
use crate::credential::PushType;
use crate::event::Event;
use crate::{AccountSid, BindingSid, CredentialSid, ServiceSid, Timestamp};

/// An outbox entry claimed for fan-out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxItem {
    /// The event to fan out.
    pub event: Event,
    /// Previous fan-out attempts.
    pub attempts: i32,
    /// The binding SID (byte order) up to which this event's deliveries were already written
    /// by an earlier, interrupted fan-out ([`crate::store::PushStore::fanout_progress`]);
    /// resume after it. `None`: start from the beginning.
    pub fanout_after: Option<String>,
}

/// One device to notify about an event, as found by the fan-out query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The binding (its `message_types` already include the event's kind).
    pub binding: Binding,
}

/// A delivery to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    /// Stable id of this (event, binding) send: `<event id>:<binding sid>`. Also the provider
    /// message id source (apns-id), so a rare repeat is recognisable.
    pub id: String,
    /// The event.
    pub event_id: i64,
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// Target binding.
    pub binding_sid: BindingSid,
    /// Credential to send with.
    pub credential_sid: Option<CredentialSid>,
    /// Provider kind.
    pub binding_type: PushType,
    /// Device token.
    pub address: String,
    /// Recipient identity (for the log).
    pub identity: String,
    /// The provider payload input, serialized by `parley-push` (opaque here).
    pub payload: String,
    /// When the event happened (event-to-send latency).
    pub event_at: Timestamp,
    /// Earliest send time.
    pub available_at: Timestamp,
}

/// A claimed delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// What was created.
    pub new: NewDelivery,
    /// Previous send attempts.
    pub attempts: i32,
}

/// How a claimed delivery ends (or doesn't).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Sent: remove it.
    Delivered,
    /// Try again at `at`, recording `error`.
    Retry {
        /// Next attempt.
        at: Timestamp,
        /// Why.
        error: String,
    },
    /// The provider said the token is dead: remove the delivery AND its binding.
    DeadToken {
        /// Provider reason.
        reason: String,
    },
    /// Give up (permanent error, or too many attempts / too old): remove it.
    Failed {
        /// Why.
        error: String,
    },
}

/// One delivery-log row (kept when the service's `Notifications.LogEnabled` is on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushLogEntry {
    /// The log's own sequence number (`push_log.seq`): filled by the store when reading, ignored
    /// by `append_push_log` (pass 0). Lists page by `(date_created, seq)`; the cursor's `sid` is
    /// `seq` as 20-digit zero-padded text.
    pub seq: i64,
    /// Delivery id.
    pub id: String,
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// The event.
    pub event_id: i64,
    /// Notification type (`new_message`, …).
    pub kind: String,
    /// Target binding.
    pub binding_sid: BindingSid,
    /// Recipient identity.
    pub identity: String,
    /// Provider kind.
    pub binding_type: PushType,
    /// `delivered`, `dead_token`, `failed`, `retrying`.
    pub outcome: String,
    /// Provider reason / error text.
    pub reason: Option<String>,
    /// Attempt number (1-based).
    pub attempt: i32,
    /// When.
    pub date_created: Timestamp,
}
