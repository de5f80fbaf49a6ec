//! The change log (ARCHITECTURE §6): every committed mutation of channels, members, messages,
//! invites and users is appended in the same transaction as the change. An event carries
//! everything a consumer needs — no further reads: the kind, the resource's state (after the
//! change; before it, for removals), the fields an update changed, who did it and through which
//! door (REST or a client SDK), and whether webhooks may fire for it.
//!
//! Consumers: the push engine (the four push kinds, through `push_outbox`), webhooks (every kind,
//! by position), and later live clients (every kind, by position). The record is documented for
//! them in `docs/change-log.md`.

use crate::channel::{Channel, Invite, Member, Message};
use crate::channel_webhook::ChannelWebhook;
use crate::user::User;
use crate::{AccountSid, ChannelSid, InviteSid, MemberSid, MessageSid, ServiceSid, Timestamp};

/// What happened. The first four are the push notification types (push-payloads.md) and keep
/// their storage names; the others are named `<resource>_<past tense>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A message was posted. State: the message.
    NewMessage,
    /// A user became a member. State: the member.
    AddedToChannel,
    /// A user was invited. State: the invite.
    InvitedToChannel,
    /// A member was removed or left. State: the member as it was.
    RemovedFromChannel,
    /// A message's body or attributes (or other fields) changed. State: the message after.
    MessageUpdated,
    /// A message was deleted. State: the message as it was.
    MessageRemoved,
    /// A channel was created. State: the channel.
    ChannelAdded,
    /// A channel changed. State: the channel after.
    ChannelUpdated,
    /// A channel was destroyed (its members, messages and invites went with it; no event each).
    /// State: the channel as it was.
    ChannelRemoved,
    /// A member changed (attributes, role, consumption horizon, notification level — the user
    /// channel updates are member updates). State: the member after.
    MemberUpdated,
    /// An invite was deleted (not by joining: joining is `AddedToChannel`). State: the invite.
    InviteRemoved,
    /// A user was created. State: the user.
    UserAdded,
    /// A user changed. State: the user after.
    UserUpdated,
    /// A user was deleted. State: the user as it was (its memberships each get a
    /// `RemovedFromChannel` first).
    UserRemoved,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 14] = [
        Self::NewMessage,
        Self::AddedToChannel,
        Self::InvitedToChannel,
        Self::RemovedFromChannel,
        Self::MessageUpdated,
        Self::MessageRemoved,
        Self::ChannelAdded,
        Self::ChannelUpdated,
        Self::ChannelRemoved,
        Self::MemberUpdated,
        Self::InviteRemoved,
        Self::UserAdded,
        Self::UserUpdated,
        Self::UserRemoved,
    ];

    /// Storage name (and, for the first four, the push notification type).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewMessage => "new_message",
            Self::AddedToChannel => "added_to_channel",
            Self::InvitedToChannel => "invited_to_channel",
            Self::RemovedFromChannel => "removed_from_channel",
            Self::MessageUpdated => "message_updated",
            Self::MessageRemoved => "message_removed",
            Self::ChannelAdded => "channel_added",
            Self::ChannelUpdated => "channel_updated",
            Self::ChannelRemoved => "channel_removed",
            Self::MemberUpdated => "member_updated",
            Self::InviteRemoved => "invite_removed",
            Self::UserAdded => "user_added",
            Self::UserUpdated => "user_updated",
            Self::UserRemoved => "user_removed",
        }
    }

    /// Parse the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the push engine consumes this kind (it gets a `push_outbox` row).
    pub fn is_push(self) -> bool {
        matches!(
            self,
            Self::NewMessage
                | Self::AddedToChannel
                | Self::InvitedToChannel
                | Self::RemovedFromChannel
        )
    }
}

/// Through which door a change came.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The REST API (account credentials).
    Api,
    /// A client SDK (an Access Token's identity), once clients exist.
    Sdk,
}

impl Source {
    /// Storage name and the webhook `Source` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "API",
            Self::Sdk => "SDK",
        }
    }
    /// Parse the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "API" => Some(Self::Api),
            "SDK" => Some(Self::Sdk),
            _ => None,
        }
    }
}

/// Who made a change and how: passed by the caller to every mutating store method, recorded on
/// the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// REST or client.
    pub source: Source,
    /// The acting client's identity (`None` over REST).
    pub identity: Option<String>,
    /// Whether webhooks fire for this change: always for clients; over REST only with
    /// `X-Twilio-Webhook-Enabled: true` (webhooks.md §7).
    pub webhooks: bool,
    /// Whether the push kinds of this change queue push notifications (false only for data
    /// copied in by `parley import`: history is not news to anyone's devices).
    pub push: bool,
}

impl Origin {
    /// A REST change; `webhooks` is the `X-Twilio-Webhook-Enabled: true` header.
    pub fn api(webhooks: bool) -> Self {
        Self {
            source: Source::Api,
            identity: None,
            webhooks,
            push: true,
        }
    }
    /// Data copied in by an import: recorded like a REST change without webhooks, and queuing
    /// no push notification.
    pub fn import() -> Self {
        Self {
            push: false,
            ..Self::api(false)
        }
    }
    /// A REST change without the webhook header (what tests and internal callers use).
    pub fn rest() -> Self {
        Self::api(false)
    }
    /// A client SDK change by `identity` (webhooks always fire).
    pub fn client(identity: impl Into<String>) -> Self {
        Self {
            source: Source::Sdk,
            identity: Some(identity.into()),
            webhooks: true,
            push: true,
        }
    }
}

/// The resource an event is about, as it is after the change (as it was, for removals).
/// Stored as JSON (`events.state`, `{"type":"message","data":{…}}`, the domain type's fields in
/// snake_case); an internal format — consumers use this type.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Resource {
    /// A channel.
    Channel(Channel),
    /// A membership.
    Member(Member),
    /// A message.
    Message(Message),
    /// An invite.
    Invite(Invite),
    /// A user.
    User(User),
}

/// One change-log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Global row id (database identity; push claims by it). Not commit-ordered on PostgreSQL.
    pub id: i64,
    /// Per-service position: gapless, assigned in commit order (1, 2, 3, … within a service);
    /// consumers read a service's events by `seq` and keep their own position.
    pub seq: i64,
    /// What happened.
    pub kind: EventKind,
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// The channel, for channel, member, message and invite events; `None` for user events.
    pub channel_sid: Option<ChannelSid>,
    /// Channel unique name at the time (channel-scoped events).
    pub channel_unique_name: Option<String>,
    /// Channel friendly name at the time (channel-scoped events).
    pub channel_friendly_name: Option<String>,
    /// Message events (new_message, message_updated, message_removed): the message.
    pub message_sid: Option<MessageSid>,
    /// Message events: its index.
    pub message_index: Option<i64>,
    /// Message events: its body (after the change; before it, for message_removed).
    pub body: Option<String>,
    /// Member events (added/removed, member_updated): the membership.
    pub member_sid: Option<MemberSid>,
    /// Invite events (invited, invite_removed): the invite.
    pub invite_sid: Option<InviteSid>,
    /// The affected user's identity: the member's, the invitee's, or the user's (user events).
    /// `None` for message and channel events.
    pub identity: Option<String>,
    /// Who did it: new_message the author; invited the inviter; added/removed the actor the
    /// caller named (e.g. the leaving user), else the acting client's identity; other kinds the
    /// acting client's identity, else what the request names (`created_by` for channel_added,
    /// `LastUpdatedBy` for message_updated), else `None`.
    pub actor: Option<String>,
    /// REST or client.
    pub source: Source,
    /// Whether webhooks fire for this change ([`Origin::webhooks`]).
    pub webhooks: bool,
    /// The resource after the change (before it, for removals). `None` only for events written
    /// before schema v5 (consumers skip those).
    pub state: Option<Resource>,
    /// For updates: the wire names of the fields whose values changed, in name order (e.g.
    /// `["attributes", "body"]`; `date_updated` never counts); empty for other kinds and for an
    /// update that changed nothing (it still appends its event).
    pub changed: Vec<String>,
    /// `channel_removed` with webhooks on: the channel's webhooks as they were when it was
    /// deleted (the rows go with the channel, before the webhook consumer reads the event).
    /// Empty for every other event.
    pub channel_webhooks: Vec<ChannelWebhook>,
    /// `channel_removed`: the identities that had the channel in their channels when it was
    /// deleted (its members and invitees, sorted; their rows go with the channel, without an
    /// event each). `None` for every other event and for events written before schema v8.
    pub channel_identities: Option<Vec<String>>,
    /// When the change committed (server clock).
    pub date_created: Timestamp,
}
