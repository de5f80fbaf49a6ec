//! Chat core storage: channels, members, messages, invites, the user-channel view and the change
//! log. Every mutation appends exactly one [`Event`] (the kind named on each method; deleting a
//! user appends one per membership, then its own) in the SAME transaction, with the caller's
//! [`Origin`] (the last parameter of every mutating method): a rolled back change leaves no
//! event, a committed one always has it, and a service's events get `seq` 1, 2, 3… in commit
//! order. An update that changes nothing still appends its `…_updated` event, with `changed`
//! empty. Every counter (`members_count`, `messages_count`, a user's joined channels) changes in
//! the same transaction as the rows it counts.

use crate::channel::{
    Channel, ChannelRef, ChannelType, ChannelUpdate, Invite, Member, MemberLimits, MemberRef,
    MemberUpdate, Message, MessageOrder, MessageUpdate, UserChannel,
};
use crate::event::{Event, Origin};
use crate::paging::{Page, PageRequest};
use crate::store::StoreResult;
use crate::user::UserRef;
use crate::{AccountSid, InviteSid, MessageSid, ServiceSid, Timestamp, UserSid};

/// Channels.
#[async_trait::async_trait]
pub trait ChannelStore: Send + Sync {
    /// Insert (`Conflict::ChannelUniqueNameTaken` when the unique name exists in the service;
    /// `NotFound` when the service does not exist in the account). Appends `channel_added`.
    async fn create_channel(&self, channel: &Channel, origin: &Origin) -> StoreResult<Channel>;
    /// Fetch by SID or unique name.
    async fn fetch_channel(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
    ) -> StoreResult<Channel>;
    /// List by `(date_created, sid)`; `types` empty = all.
    async fn list_channels(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        types: &[ChannelType],
        page: &PageRequest,
    ) -> StoreResult<Page<Channel>>;
    /// Apply `update`; `date_updated` = `update.date_updated` or `now`. Appends
    /// `channel_updated`.
    async fn update_channel(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        update: &ChannelUpdate,
        now: Timestamp,
        origin: &Origin,
    ) -> StoreResult<Channel>;
    /// Delete the channel with its members, messages and invites (members' joined-channel
    /// counts go down). Appends `channel_removed` (the channel as it was; no event per member,
    /// message or invite).
    async fn delete_channel(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        origin: &Origin,
    ) -> StoreResult<()>;
}

/// Members and the user-channel view.
#[async_trait::async_trait]
pub trait MemberStore: Send + Sync {
    /// Add `member` to its channel, in one transaction: `LimitExceeded(ChannelMembers)` when the
    /// channel has `limits.channel_members` members; `LimitExceeded(UserChannels)` when the user
    /// is in `limits.user_channels` channels; `Conflict::MemberExists` when the identity is
    /// already a member; `NotFound` when the channel is gone. Increments `members_count`,
    /// deletes the identity's pending invite to the channel (no event of its own), appends
    /// `added_to_channel` (actor: `actor`, else `origin.identity`).
    async fn create_member(
        &self,
        member: &Member,
        limits: &MemberLimits,
        actor: Option<&str>,
        origin: &Origin,
    ) -> StoreResult<Member>;
    /// Fetch by SID or identity within the channel.
    async fn fetch_member(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        member: &MemberRef,
    ) -> StoreResult<Member>;
    /// List by `(date_created, sid)`; `identities` empty = all.
    async fn list_members(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        identities: &[String],
        page: &PageRequest,
    ) -> StoreResult<Page<Member>>;
    /// Apply `update`; when the horizon index changes and no timestamp is given, the timestamp
    /// becomes `now`. Appends `member_updated` (this is also the user-channel update).
    #[allow(clippy::too_many_arguments)] // the row's address, the change, `now` and the origin
    async fn update_member(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        member: &MemberRef,
        update: &MemberUpdate,
        now: Timestamp,
        origin: &Origin,
    ) -> StoreResult<Member>;
    /// Remove a member: decrements `members_count`, appends `removed_from_channel` (the member
    /// as it was; actor: `actor`, else `origin.identity`).
    #[allow(clippy::too_many_arguments)] // the row's address, the change, `now` and the origin
    async fn delete_member(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        member: &MemberRef,
        actor: Option<&str>,
        now: Timestamp,
        origin: &Origin,
    ) -> StoreResult<()>;
    /// Joined-channel counts of these users (users with none are absent from the answer).
    async fn joined_channel_counts(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        users: &[UserSid],
    ) -> StoreResult<Vec<(UserSid, i64)>>;
    /// A user's channels: memberships (joined) and pending invites (invited), by
    /// `(date_created, channel_sid)` of the membership or invite.
    async fn list_user_channels(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
        page: &PageRequest,
    ) -> StoreResult<Page<UserChannel>>;
    /// One of a user's channels.
    async fn fetch_user_channel(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
        channel: &ChannelRef,
    ) -> StoreResult<UserChannel>;
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
        channel: &ChannelRef,
        message: &Message,
        origin: &Origin,
    ) -> StoreResult<Message>;
    /// Insert `message` with its own `index` (an import keeping another system's indexes; the
    /// channel is resolved as in `create_message`, `message.channel_sid` is ignored):
    /// `next_message_index` becomes at least `index + 1`, `messages_count` goes up, the channel's
    /// last message moves only when `index` is past it; `was_edited` is kept. Appends
    /// `new_message`. `Conflict::SidTaken` when the SID, or another message with this index,
    /// exists in the channel (nothing changes).
    async fn import_message(
        &self,
        channel: &ChannelRef,
        message: &Message,
        origin: &Origin,
    ) -> StoreResult<Message>;
    /// Fetch one message of the channel.
    async fn fetch_message(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &MessageSid,
    ) -> StoreResult<Message>;
    /// List by `index` (cursor key = index) in `order`.
    async fn list_messages(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        order: MessageOrder,
        page: &PageRequest,
    ) -> StoreResult<Page<Message>>;
    /// Apply `update` (`was_edited` becomes true when the body changes). Appends
    /// `message_updated` (actor: `origin.identity`, else `update.last_updated_by`).
    #[allow(clippy::too_many_arguments)] // the row's address, the change, `now` and the origin
    async fn update_message(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &MessageSid,
        update: &MessageUpdate,
        now: Timestamp,
        origin: &Origin,
    ) -> StoreResult<Message>;
    /// Delete: decrements `messages_count`; the channel's last message becomes the newest left.
    /// Appends `message_removed` (the message as it was).
    async fn delete_message(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &MessageSid,
        origin: &Origin,
    ) -> StoreResult<()>;
    /// Messages of the channel with `index > after_index` (unread count).
    async fn count_messages_after(
        &self,
        channel: &crate::ChannelSid,
        after_index: i64,
    ) -> StoreResult<i64>;
}

/// Invites.
#[async_trait::async_trait]
pub trait InviteStore: Send + Sync {
    /// Insert: `Conflict::InviteExists` when the identity is already invited,
    /// `Conflict::MemberExists` when it is already a member; appends `invited_to_channel`.
    async fn create_invite(
        &self,
        channel: &ChannelRef,
        invite: &Invite,
        origin: &Origin,
    ) -> StoreResult<Invite>;
    /// Fetch one invite of the channel.
    async fn fetch_invite(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &InviteSid,
    ) -> StoreResult<Invite>;
    /// List by `(date_created, sid)`; `identities` empty = all.
    async fn list_invites(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        identities: &[String],
        page: &PageRequest,
    ) -> StoreResult<Page<Invite>>;
    /// Delete one invite; appends `invite_removed` (the invite as it was). Joining removes an
    /// invite without this event (see [`MemberStore::create_member`]).
    async fn delete_invite(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &InviteSid,
        origin: &Origin,
    ) -> StoreResult<()>;
}

/// The change log, read side.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Events of one service with `seq > after_seq`, in `seq` (= commit) order, at most
    /// `limit`.
    async fn list_events(
        &self,
        service: &ServiceSid,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<Event>>;

    /// The service's last assigned `seq` (`event_seqs.last_seq`): every event of the service
    /// with a greater seq commits after this read. 0 when the service never had an event (also
    /// when it does not exist). Trimming never lowers it.
    async fn last_seq(&self, service: &ServiceSid) -> StoreResult<i64>;

    /// Claim one service's events for `consumer` (docs/change-log.md, "Consumers"): choose a
    /// service whose last `seq` is past the consumer's position there and whose lease for this
    /// consumer is free (no owner, or `lease_until < now`) — services never claimed first, then
    /// those whose last lease ended earliest — take the lease for `owner` until `lease_until`,
    /// and return up to `limit` events after the position, in `seq` order. The position row is
    /// created on first use at 0 (a new consumer sees the retained history). `None`: nothing to
    /// read. Several nodes: no claim returns a (consumer, service) whose lease another owner
    /// holds unexpired. `owner` must be unique per claimer (e.g. a node id).
    async fn claim_log(
        &self,
        consumer: &str,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Option<crate::log::LogClaim>>;

    /// Record that `claim`'s consumer is done with its events up to `to_seq` and release the
    /// lease: position = max(position, min(to_seq, the service's last seq)) — it never moves
    /// back. Only while `owner` still holds the lease; otherwise (another owner claimed the
    /// service after the lease expired) `Conflict(LeaseLost)` and nothing changes.
    async fn advance_log(
        &self,
        claim: &crate::log::LogClaim,
        owner: &str,
        to_seq: i64,
    ) -> StoreResult<()>;

    /// Delete at most `limit` events that are older than `cutoff` (`date_created < cutoff`),
    /// that every consumer in `consumers` has passed (`seq <=` its position in that service; no
    /// position row = 0) and that have no `push_outbox` row (push has not fanned them out yet).
    /// Returns how many were deleted. The per-service seq counter is left alone: the next event
    /// still gets the next seq, also after every event was trimmed. Safe on several nodes.
    async fn trim_events(
        &self,
        consumers: &[&str],
        cutoff: Timestamp,
        limit: u32,
    ) -> StoreResult<u64>;
}
