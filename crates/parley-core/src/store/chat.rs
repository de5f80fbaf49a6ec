//! Chat core storage: channels, members, messages, invites, the user-channel view and the change
//! log. Every write that should notify appends its [`Event`] in the SAME transaction (a rolled
//! back change leaves no event; a committed one always has it), and every counter
//! (`members_count`, `messages_count`, a user's joined channels) changes in the same transaction
//! as the rows it counts.
//!
//! TEMPORARY: methods have default bodies answering "not implemented" so the workspace builds
//! while the backends are written; they are removed once both backends implement everything.

use crate::channel::{
    Channel, ChannelRef, ChannelType, ChannelUpdate, Invite, Member, MemberLimits, MemberRef,
    MemberUpdate, Message, MessageOrder, MessageUpdate, UserChannel,
};
use crate::event::Event;
use crate::paging::{Page, PageRequest};
use crate::store::{StoreError, StoreResult};
use crate::user::UserRef;
use crate::{AccountSid, InviteSid, MessageSid, ServiceSid, Timestamp, UserSid};

fn todo_backend<T>() -> StoreResult<T> {
    Err(StoreError::Other(anyhow::anyhow!(
        "not implemented by this backend yet"
    )))
}

/// Channels.
#[async_trait::async_trait]
pub trait ChannelStore: Send + Sync {
    /// Insert (`Conflict::ChannelUniqueNameTaken` when the unique name exists in the service;
    /// `NotFound` when the service does not exist in the account).
    async fn create_channel(&self, _channel: &Channel) -> StoreResult<Channel> {
        todo_backend()
    }
    /// Fetch by SID or unique name.
    async fn fetch_channel(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _channel: &ChannelRef,
    ) -> StoreResult<Channel> {
        todo_backend()
    }
    /// List by `(date_created, sid)`; `types` empty = all.
    async fn list_channels(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _types: &[ChannelType],
        _page: &PageRequest,
    ) -> StoreResult<Page<Channel>> {
        todo_backend()
    }
    /// Apply `update`; `date_updated` = `update.date_updated` or `now`.
    async fn update_channel(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _channel: &ChannelRef,
        _update: &ChannelUpdate,
        _now: Timestamp,
    ) -> StoreResult<Channel> {
        todo_backend()
    }
    /// Delete the channel with its members, messages and invites (no events: the channel is
    /// gone; members' joined-channel counts go down).
    async fn delete_channel(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _channel: &ChannelRef,
    ) -> StoreResult<()> {
        todo_backend()
    }
}

/// Members and the user-channel view.
#[async_trait::async_trait]
pub trait MemberStore: Send + Sync {
    /// Add `member` to its channel, in one transaction: `LimitExceeded(ChannelMembers)` when the
    /// channel has `limits.channel_members` members; `LimitExceeded(UserChannels)` when the user
    /// is in `limits.user_channels` channels; `Conflict::MemberExists` when the identity is
    /// already a member; `NotFound` when the channel is gone. Increments `members_count`,
    /// deletes the identity's pending invite to the channel, appends `added_to_channel`.
    async fn create_member(
        &self,
        _member: &Member,
        _limits: &MemberLimits,
        _actor: Option<&str>,
    ) -> StoreResult<Member> {
        todo_backend()
    }
    /// Fetch by SID or identity within the channel.
    async fn fetch_member(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _channel: &ChannelRef,
        _member: &MemberRef,
    ) -> StoreResult<Member> {
        todo_backend()
    }
    /// List by `(date_created, sid)`; `identities` empty = all.
    async fn list_members(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _channel: &ChannelRef,
        _identities: &[String],
        _page: &PageRequest,
    ) -> StoreResult<Page<Member>> {
        todo_backend()
    }
    /// Apply `update`; when the horizon index changes and no timestamp is given, the timestamp
    /// becomes `now`.
    async fn update_member(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _channel: &ChannelRef,
        _member: &MemberRef,
        _update: &MemberUpdate,
        _now: Timestamp,
    ) -> StoreResult<Member> {
        todo_backend()
    }
    /// Remove a member: decrements `members_count`, appends `removed_from_channel`.
    async fn delete_member(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _channel: &ChannelRef,
        _member: &MemberRef,
        _actor: Option<&str>,
        _now: Timestamp,
    ) -> StoreResult<()> {
        todo_backend()
    }
    /// Joined-channel counts of these users (users with none are absent from the answer).
    async fn joined_channel_counts(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _users: &[UserSid],
    ) -> StoreResult<Vec<(UserSid, i64)>> {
        todo_backend()
    }
    /// A user's channels: memberships (joined) and pending invites (invited), by
    /// `(date_created, channel_sid)` of the membership or invite.
    async fn list_user_channels(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _user: &UserRef,
        _page: &PageRequest,
    ) -> StoreResult<Page<UserChannel>> {
        todo_backend()
    }
    /// One of a user's channels.
    async fn fetch_user_channel(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _user: &UserRef,
        _channel: &ChannelRef,
    ) -> StoreResult<UserChannel> {
        todo_backend()
    }
}

/// Messages.
#[async_trait::async_trait]
pub trait MessageStore: Send + Sync {
    /// Post `message` into `channel` (resolved within `message.account_sid` and
    /// `message.service_sid`; `message.index` and `message.channel_sid` are ignored and set from
    /// the channel): assigns the channel's next index (strictly
    /// increasing, never reused, safe under many concurrent writers), increments
    /// `messages_count`, moves the channel's last message, appends `new_message`.
    async fn create_message(
        &self,
        _channel: &ChannelRef,
        _message: &Message,
    ) -> StoreResult<Message> {
        todo_backend()
    }
    /// Fetch one message of the channel.
    async fn fetch_message(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _channel: &ChannelRef,
        _sid: &MessageSid,
    ) -> StoreResult<Message> {
        todo_backend()
    }
    /// List by `index` (cursor key = index) in `order`.
    async fn list_messages(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _channel: &ChannelRef,
        _order: MessageOrder,
        _page: &PageRequest,
    ) -> StoreResult<Page<Message>> {
        todo_backend()
    }
    /// Apply `update` (`was_edited` becomes true when the body changes).
    async fn update_message(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _channel: &ChannelRef,
        _sid: &MessageSid,
        _update: &MessageUpdate,
        _now: Timestamp,
    ) -> StoreResult<Message> {
        todo_backend()
    }
    /// Delete: decrements `messages_count`; the channel's last message becomes the newest left.
    async fn delete_message(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _channel: &ChannelRef,
        _sid: &MessageSid,
    ) -> StoreResult<()> {
        todo_backend()
    }
    /// Messages of the channel with `index > after_index` (unread count).
    async fn count_messages_after(
        &self,
        _channel: &crate::ChannelSid,
        _after_index: i64,
    ) -> StoreResult<i64> {
        todo_backend()
    }
}

/// Invites.
#[async_trait::async_trait]
pub trait InviteStore: Send + Sync {
    /// Insert: `Conflict::InviteExists` when the identity is already invited,
    /// `Conflict::MemberExists` when it is already a member; appends `invited_to_channel`.
    async fn create_invite(&self, _channel: &ChannelRef, _invite: &Invite) -> StoreResult<Invite> {
        todo_backend()
    }
    /// Fetch one invite of the channel.
    async fn fetch_invite(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _channel: &ChannelRef,
        _sid: &InviteSid,
    ) -> StoreResult<Invite> {
        todo_backend()
    }
    /// List by `(date_created, sid)`; `identities` empty = all.
    async fn list_invites(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _channel: &ChannelRef,
        _identities: &[String],
        _page: &PageRequest,
    ) -> StoreResult<Page<Invite>> {
        todo_backend()
    }
    /// Delete one invite (no event).
    async fn delete_invite(
        &self,
        _account: &AccountSid,
        _service: &ServiceSid,
        _channel: &ChannelRef,
        _sid: &InviteSid,
    ) -> StoreResult<()> {
        todo_backend()
    }
}

/// The change log, read side.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Events with `id > after`, oldest first, at most `limit`, of one service.
    async fn list_events(
        &self,
        _service: &ServiceSid,
        _after: i64,
        _limit: u32,
    ) -> StoreResult<Vec<Event>> {
        todo_backend()
    }
}
