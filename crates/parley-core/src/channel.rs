//! Channels, members, messages, invites and the user-channel view (contract §6–§10).

use crate::sid::is_sid;
use crate::store::{Limit, StoreError};
use crate::{
    AccountSid, ChannelSid, InviteSid, MemberSid, MessageSid, RoleSid, ServiceSid, Timestamp,
    UserSid,
};

/// Longest channel friendly/unique name (contract §7: 256 on update; 64 on create in the spec
/// text — Parley accepts 256 on both, documented).
pub const MAX_CHANNEL_NAME: usize = 256;
/// Longest message body (Chat 50504; Twilio's documented limit is 32 KiB of text).
pub const MAX_BODY_BYTES: usize = 32 * 1024;

/// `public` or `private`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelType {
    /// Listed and joinable by anyone with `joinChannel`.
    Public,
    /// Invitation only.
    Private,
}

impl ChannelType {
    /// Wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }
    /// Parse the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Self::Public),
            "private" => Some(Self::Private),
            _ => None,
        }
    }
}

/// A channel.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Channel {
    /// `CH…`
    pub sid: ChannelSid,
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// Display name.
    pub friendly_name: Option<String>,
    /// Unique within the service; never shaped like a CH SID.
    pub unique_name: Option<String>,
    /// JSON text.
    pub attributes: Option<String>,
    /// public / private.
    pub channel_type: ChannelType,
    /// Creator identity (`system` over REST by default).
    pub created_by: Option<String>,
    /// Exact number of members (maintained in the same transactions as member changes).
    pub members_count: i64,
    /// Exact number of messages.
    pub messages_count: i64,
    /// The newest message, for `links.last_message` and unread counts.
    pub last_message_sid: Option<MessageSid>,
    /// The newest message's index.
    pub last_message_index: Option<i64>,
    /// Created (may be overridden by importers).
    pub date_created: Timestamp,
    /// Last updated.
    pub date_updated: Timestamp,
}

/// A channel named in a path: SID or unique name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ChannelRef {
    /// `CH…`
    Sid(ChannelSid),
    /// `unique_name`.
    UniqueName(String),
}

impl ChannelRef {
    /// A path segment: a SID when it looks like one, else a unique name.
    pub fn parse(segment: &str) -> Self {
        if is_sid(ChannelSid::PREFIX, segment) {
            if let Ok(sid) = ChannelSid::parse(segment) {
                return Self::Sid(sid);
            }
        }
        Self::UniqueName(segment.to_owned())
    }
}

/// Changes to a channel. Outer `None` = leave as is; `Some(None)` = clear.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelUpdate {
    /// New friendly name.
    pub friendly_name: Option<Option<String>>,
    /// New unique name (`Conflict::ChannelUniqueNameTaken` if taken).
    pub unique_name: Option<Option<String>>,
    /// New attributes.
    pub attributes: Option<String>,
    /// New creator.
    pub created_by: Option<String>,
    /// Importer override of date_created.
    pub date_created: Option<Timestamp>,
    /// Importer override of date_updated (else: now).
    pub date_updated: Option<Timestamp>,
}

/// `default` or `muted` (a member's push preference).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationLevel {
    /// Pushes as the service says.
    Default,
    /// No pushes for this channel.
    Muted,
}

impl NotificationLevel {
    /// Wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Muted => "muted",
        }
    }
    /// Parse the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "default" => Some(Self::Default),
            "muted" => Some(Self::Muted),
            _ => None,
        }
    }
}

/// A channel member.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// `MB…`
    pub sid: MemberSid,
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// The channel.
    pub channel_sid: ChannelSid,
    /// The user (always exists: joining creates it).
    pub user_sid: UserSid,
    /// The user's identity.
    pub identity: String,
    /// Channel role.
    pub role_sid: Option<RoleSid>,
    /// Consumption horizon.
    pub last_consumed_message_index: Option<i64>,
    /// When the horizon last moved.
    pub last_consumption_timestamp: Option<Timestamp>,
    /// JSON text.
    pub attributes: Option<String>,
    /// Push preference for this channel.
    pub notification_level: NotificationLevel,
    /// Joined (may be overridden by importers).
    pub date_created: Timestamp,
    /// Last updated.
    pub date_updated: Timestamp,
}

/// A member named in a path: SID or identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MemberRef {
    /// `MB…`
    Sid(MemberSid),
    /// The member's identity.
    Identity(String),
}

impl MemberRef {
    /// A path segment: a SID when it looks like one, else an identity.
    pub fn parse(segment: &str) -> Self {
        if is_sid(MemberSid::PREFIX, segment) {
            if let Ok(sid) = MemberSid::parse(segment) {
                return Self::Sid(sid);
            }
        }
        Self::Identity(segment.to_owned())
    }
}

/// Counter limits checked when a member is added (service `limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberLimits {
    /// Members per channel.
    pub channel_members: i64,
    /// Channels per user.
    pub user_channels: i64,
}

impl MemberLimits {
    /// Whether a channel that has `members` members may take one more
    /// (`LimitExceeded(ChannelMembers)` when not).
    pub fn admit_to_channel(&self, members: i64) -> Result<(), StoreError> {
        if members >= self.channel_members {
            return Err(StoreError::LimitExceeded(Limit::ChannelMembers));
        }
        Ok(())
    }

    /// Whether a user who is in `channels` channels may join one more
    /// (`LimitExceeded(UserChannels)` when not).
    pub fn admit_user(&self, channels: i64) -> Result<(), StoreError> {
        if channels >= self.user_channels {
            return Err(StoreError::LimitExceeded(Limit::UserChannels));
        }
        Ok(())
    }
}

/// Changes to a member. Outer `None` = leave as is; `Some(None)` = clear.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberUpdate {
    /// New channel role.
    pub role_sid: Option<RoleSid>,
    /// New horizon (may clear).
    pub last_consumed_message_index: Option<Option<i64>>,
    /// New horizon timestamp.
    pub last_consumption_timestamp: Option<Timestamp>,
    /// New attributes.
    pub attributes: Option<String>,
    /// New push preference.
    pub notification_level: Option<NotificationLevel>,
    /// Importer override.
    pub date_created: Option<Timestamp>,
    /// Importer override (else: now).
    pub date_updated: Option<Timestamp>,
}

/// A message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// `IM…`
    pub sid: MessageSid,
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// The channel.
    pub channel_sid: ChannelSid,
    /// Position in the channel: strictly increasing, never reused (may skip after deletes).
    pub index: i64,
    /// Author identity (`system` by default).
    pub from: String,
    /// Text.
    pub body: Option<String>,
    /// JSON text.
    pub attributes: Option<String>,
    /// Last editor.
    pub last_updated_by: Option<String>,
    /// Whether the body was changed after creation.
    pub was_edited: bool,
    /// Sent (may be overridden by importers).
    pub date_created: Timestamp,
    /// Last updated.
    pub date_updated: Timestamp,
}

/// Changes to a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageUpdate {
    /// New body (sets `was_edited`).
    pub body: Option<String>,
    /// New attributes.
    pub attributes: Option<String>,
    /// New author.
    pub from: Option<String>,
    /// Who edited.
    pub last_updated_by: Option<String>,
    /// Importer override.
    pub date_created: Option<Timestamp>,
    /// Importer override (else: now).
    pub date_updated: Option<Timestamp>,
}

/// List order of messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageOrder {
    /// Oldest first (default).
    Asc,
    /// Newest first.
    Desc,
}

/// An invite.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Invite {
    /// `IN…`
    pub sid: InviteSid,
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// The channel.
    pub channel_sid: ChannelSid,
    /// Invitee identity (the user exists).
    pub identity: String,
    /// Role given on joining.
    pub role_sid: Option<RoleSid>,
    /// Inviter.
    pub created_by: Option<String>,
    /// Created.
    pub date_created: Timestamp,
    /// Last updated.
    pub date_updated: Timestamp,
}

/// `joined` or `invited`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserChannelStatus {
    /// A member.
    Joined,
    /// Invited, not (yet) a member.
    Invited,
}

impl UserChannelStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Joined => "joined",
            Self::Invited => "invited",
        }
    }
}

/// One channel as seen from a user (contract §6): a membership or a pending invite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserChannel {
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// The channel.
    pub channel_sid: ChannelSid,
    /// The user.
    pub user_sid: UserSid,
    /// The membership, when joined.
    pub member_sid: Option<MemberSid>,
    /// joined / invited.
    pub status: UserChannelStatus,
    /// Horizon (joined only).
    pub last_consumed_message_index: Option<i64>,
    /// Messages after the horizon; `None` when there is no horizon yet or not joined.
    pub unread_messages_count: Option<i64>,
    /// Push preference (joined only; `Default` otherwise).
    pub notification_level: NotificationLevel,
    /// Membership or invite date: the list order key.
    pub date_created: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_limits_admit_below_and_refuse_at_the_limit() {
        let limits = MemberLimits {
            channel_members: 2,
            user_channels: 3,
        };
        assert!(limits.admit_to_channel(1).is_ok());
        assert!(matches!(
            limits.admit_to_channel(2),
            Err(StoreError::LimitExceeded(Limit::ChannelMembers))
        ));
        assert!(limits.admit_user(2).is_ok());
        assert!(matches!(
            limits.admit_user(3),
            Err(StoreError::LimitExceeded(Limit::UserChannels))
        ));
    }
}
