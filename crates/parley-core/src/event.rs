//! The change log: every committed chat change that someone outside may care about is appended
//! in the same transaction as the change (ARCHITECTURE §6). An event carries everything a
//! consumer needs to address it — no further joins.

use crate::{AccountSid, ChannelSid, InviteSid, MemberSid, MessageSid, ServiceSid, Timestamp};

/// What happened. The names are the push notification types (push-payloads.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A message was posted.
    NewMessage,
    /// A user became a member.
    AddedToChannel,
    /// A user was invited.
    InvitedToChannel,
    /// A member was removed or left.
    RemovedFromChannel,
}

impl EventKind {
    /// Storage and notification-type name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewMessage => "new_message",
            Self::AddedToChannel => "added_to_channel",
            Self::InvitedToChannel => "invited_to_channel",
            Self::RemovedFromChannel => "removed_from_channel",
        }
    }
    /// Parse the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "new_message" => Some(Self::NewMessage),
            "added_to_channel" => Some(Self::AddedToChannel),
            "invited_to_channel" => Some(Self::InvitedToChannel),
            "removed_from_channel" => Some(Self::RemovedFromChannel),
            _ => None,
        }
    }
}

/// One change-log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Monotonic id (database sequence).
    pub id: i64,
    /// What happened.
    pub kind: EventKind,
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// The channel.
    pub channel_sid: ChannelSid,
    /// Channel unique name at the time.
    pub channel_unique_name: Option<String>,
    /// Channel friendly name at the time.
    pub channel_friendly_name: Option<String>,
    /// new_message: the message.
    pub message_sid: Option<MessageSid>,
    /// new_message: its index.
    pub message_index: Option<i64>,
    /// new_message: its body.
    pub body: Option<String>,
    /// added/removed: the membership.
    pub member_sid: Option<MemberSid>,
    /// invited: the invite.
    pub invite_sid: Option<InviteSid>,
    /// added/invited/removed: the affected user's identity. new_message: `None`.
    pub identity: Option<String>,
    /// new_message: the author; invited: the inviter; otherwise who did it when known.
    pub actor: Option<String>,
    /// When the change committed (server clock).
    pub date_created: Timestamp,
}
