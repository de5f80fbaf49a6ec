//! Backend-neutral rows: one struct per table (columns as stored: SIDs and enums as text, times
//! as Unix microseconds, JSON as text) and their conversion into domain types, plus the small
//! decoding helpers both stores share. Each backend only fills these structs from its driver's
//! rows (see [`for_each_row!`](crate::for_each_row)); a value that does not decode (bad SID,
//! unknown enum, broken JSON) is an internal error, never a panic.

use crate::account::{Account, ApiKey};
use crate::binding::Binding;
use crate::channel::{
    Channel, ChannelRef, ChannelType, Invite, Member, MemberRef, Message, NotificationLevel,
    UserChannel, UserChannelStatus,
};
use crate::channel_webhook::{ChannelWebhook, WebhookType};
use crate::credential::{Credential, PushType};
use crate::event::{Event, EventKind, Origin, Resource, Source};
use crate::push::{Delivery, NewDelivery, PushLogEntry, Recipient};
use crate::role::{Role, RoleType};
use crate::service::Service;
use crate::store::StoreError;
use crate::user::{User, UserRef};
use crate::{
    AccountSid, ApiKeySid, BindingSid, ChannelSid, ChannelWebhookSid, CredentialSid, InviteSid,
    MemberSid, MessageSid, RoleSid, ServiceSid, SidError, Timestamp, UserSid,
};

/// A stored value that does not decode into the domain type.
pub fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow::anyhow!("corrupt {what} in database: {detail}"))
}

/// Parse a stored SID (kept without a copy: `X::from_string`).
pub fn sid<T>(parse: fn(String) -> Result<T, SidError>, s: String) -> Result<T, StoreError> {
    parse(s).map_err(|e| corrupt("sid", e))
}

/// Parse a stored optional SID.
pub fn opt_sid<T>(
    parse: fn(String) -> Result<T, SidError>,
    s: Option<String>,
) -> Result<Option<T>, StoreError> {
    s.map(|s| sid(parse, s)).transpose()
}

/// Parse a stored push type (`apn`, `fcm`, …).
pub fn push_type(s: &str) -> Result<PushType, StoreError> {
    PushType::parse(s).ok_or_else(|| corrupt("push type", s))
}

fn notification_level(s: &str) -> Result<NotificationLevel, StoreError> {
    NotificationLevel::parse(s).ok_or_else(|| corrupt("notification level", s))
}

/// A stored time (Unix microseconds).
pub fn ts(us: i64) -> Timestamp {
    Timestamp::from_unix_micros(us)
}

/// Decode a JSON text column (`what` names it in the error).
pub fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

/// Encode a value for a JSON text column.
pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Other(e.into()))
}

/// The column a [`ChannelRef`] matches (`sid` or `unique_name`) and its value.
pub fn channel_key(channel: &ChannelRef) -> (&'static str, &str) {
    match channel {
        ChannelRef::Sid(sid) => ("sid", sid.as_str()),
        ChannelRef::UniqueName(name) => ("unique_name", name.as_str()),
    }
}

/// The column a [`MemberRef`] matches (`sid` or `identity`) and its value.
pub fn member_key(member: &MemberRef) -> (&'static str, &str) {
    match member {
        MemberRef::Sid(sid) => ("sid", sid.as_str()),
        MemberRef::Identity(identity) => ("identity", identity.as_str()),
    }
}

/// The column a [`UserRef`] matches (`sid` or `identity`) and its value.
pub fn user_key(user: &UserRef) -> (&'static str, &str) {
    match user {
        UserRef::Sid(sid) => ("sid", sid.as_str()),
        UserRef::Identity(identity) => ("identity", identity.as_str()),
    }
}

/// `Ok` when a write touched a row, `NotFound` when it touched none.
pub fn one_row<N: PartialEq + Default>(rows_affected: N) -> Result<(), StoreError> {
    if rows_affected == N::default() {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// The recipients of an event of `kind` among the fetched bindings: those whose
/// `message_types` include the kind.
pub fn recipients(
    kind: EventKind,
    bindings: Vec<BindingRow>,
) -> Result<Vec<Recipient>, StoreError> {
    let kind = kind.as_str();
    let mut out = Vec::with_capacity(bindings.len());
    for row in bindings {
        let binding = Binding::try_from(row)?;
        if binding.message_types.iter().any(|t| t == kind) {
            out.push(Recipient { binding });
        }
    }
    Ok(out)
}

/// Convert every row of a fetched list.
pub fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// An event to append (a row of `events` to insert; the backend's `append` adds the per-service
/// `seq`): the kind, the resource's state (after the change; before it, for removals), who did it
/// and how ([`Origin`]), the fields an update changed, and the columns push reads (filled from the
/// state by [`NewEvent::new`]).
#[derive(Debug)]
pub struct NewEvent<'a> {
    pub kind: EventKind,
    pub account_sid: &'a str,
    pub service_sid: &'a str,
    /// `None` for user events.
    pub channel_sid: Option<&'a str>,
    /// The channel's names at the time (channel-scoped events).
    pub channel_unique_name: Option<&'a str>,
    pub channel_friendly_name: Option<&'a str>,
    pub message_sid: Option<&'a str>,
    pub message_index: Option<i64>,
    pub body: Option<&'a str>,
    pub member_sid: Option<&'a str>,
    pub invite_sid: Option<&'a str>,
    pub identity: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub origin: &'a Origin,
    pub state: &'a Resource,
    /// Wire names of the fields an update changed ([`changed_fields`]); empty otherwise.
    pub changed: Vec<String>,
    /// `channel_removed`: the channel's webhooks as they were (stored only when webhooks fire).
    pub channel_webhooks: Option<&'a [ChannelWebhook]>,
    /// `channel_removed`: the identities that had the channel (members and invitees).
    pub channel_identities: Option<&'a [String]>,
    /// When the change happened (server clock); also when the push is first due.
    pub now: Timestamp,
}

impl<'a> NewEvent<'a> {
    /// An event of `kind` about `state`, made by `origin`. Filled from the state: account,
    /// service and channel SIDs (a channel state also gives the channel names), the message's
    /// SID, index and body, the member's or invite's SID, and the affected identity (member,
    /// invite or user; none for messages and channels). The actor is, for `new_message` the
    /// author, for `invited_to_channel` the inviter, otherwise `origin.identity`, and for
    /// `channel_added` without one the channel's `created_by`; callers with a better answer
    /// (an explicit actor, a message's `last_updated_by`) set [`Self::actor`].
    pub fn new(kind: EventKind, state: &'a Resource, origin: &'a Origin, now: Timestamp) -> Self {
        let mut e = Self {
            kind,
            account_sid: "",
            service_sid: "",
            channel_sid: None,
            channel_unique_name: None,
            channel_friendly_name: None,
            message_sid: None,
            message_index: None,
            body: None,
            member_sid: None,
            invite_sid: None,
            identity: None,
            actor: origin.identity.as_deref(),
            origin,
            state,
            changed: Vec::new(),
            channel_webhooks: None,
            channel_identities: None,
            now,
        };
        match state {
            Resource::Channel(c) => {
                e.account_sid = c.account_sid.as_str();
                e.service_sid = c.service_sid.as_str();
                e.channel_sid = Some(c.sid.as_str());
                e.channel_unique_name = c.unique_name.as_deref();
                e.channel_friendly_name = c.friendly_name.as_deref();
                if kind == EventKind::ChannelAdded && e.actor.is_none() {
                    e.actor = c.created_by.as_deref();
                }
            }
            Resource::Member(m) => {
                e.account_sid = m.account_sid.as_str();
                e.service_sid = m.service_sid.as_str();
                e.channel_sid = Some(m.channel_sid.as_str());
                e.member_sid = Some(m.sid.as_str());
                e.identity = Some(m.identity.as_str());
            }
            Resource::Message(m) => {
                e.account_sid = m.account_sid.as_str();
                e.service_sid = m.service_sid.as_str();
                e.channel_sid = Some(m.channel_sid.as_str());
                e.message_sid = Some(m.sid.as_str());
                e.message_index = Some(m.index);
                e.body = m.body.as_deref();
                if kind == EventKind::NewMessage {
                    e.actor = Some(m.from.as_str());
                }
            }
            Resource::Invite(i) => {
                e.account_sid = i.account_sid.as_str();
                e.service_sid = i.service_sid.as_str();
                e.channel_sid = Some(i.channel_sid.as_str());
                e.invite_sid = Some(i.sid.as_str());
                e.identity = Some(i.identity.as_str());
                if kind == EventKind::InvitedToChannel {
                    e.actor = i.created_by.as_deref();
                }
            }
            Resource::User(u) => {
                e.account_sid = u.account_sid.as_str();
                e.service_sid = u.service_sid.as_str();
                e.identity = Some(u.identity.as_str());
            }
        }
        e
    }

    /// The channel's names as stored in `channel` (for events about a channel's children).
    pub fn in_channel(mut self, channel: &'a ChannelRow) -> Self {
        self.channel_unique_name = channel.unique_name.as_deref();
        self.channel_friendly_name = channel.friendly_name.as_deref();
        self
    }

    /// Set the actor.
    pub fn actor(mut self, actor: Option<&'a str>) -> Self {
        self.actor = actor;
        self
    }

    /// Set the changed fields (updates).
    pub fn changed(mut self, changed: Vec<String>) -> Self {
        self.changed = changed;
        self
    }

    /// The `state` column: the resource as JSON.
    pub fn state_json(&self) -> Result<String, StoreError> {
        to_json(self.state)
    }

    /// The `changed` column: a JSON array of field names.
    pub fn changed_json(&self) -> Result<String, StoreError> {
        to_json(&self.changed)
    }

    /// The `channel_webhooks` column: the snapshot as a JSON array, when webhooks fire for this
    /// change and a snapshot was taken; else null.
    pub fn channel_webhooks_json(&self) -> Result<Option<String>, StoreError> {
        match self.channel_webhooks {
            Some(hooks) if self.origin.webhooks => to_json(&hooks).map(Some),
            _ => Ok(None),
        }
    }

    /// The `channel_identities` column: a JSON array, for `channel_removed`; else null.
    pub fn channel_identities_json(&self) -> Result<Option<String>, StoreError> {
        self.channel_identities.map(to_json).transpose()
    }
}

/// The fields whose values differ between `before` and `after` (two states of one resource), by
/// their serialized (wire, snake_case) names in name order, `date_updated` excepted: the
/// `changed` list of an update event. Equal states give an empty list.
pub fn changed_fields<T: serde::Serialize>(before: &T, after: &T) -> Vec<String> {
    let (Ok(serde_json::Value::Object(before)), Ok(serde_json::Value::Object(after))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    let mut names: Vec<String> = after
        .iter()
        .filter(|(k, v)| before.get(k.as_str()) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(
            before
                .keys()
                .filter(|k| !after.contains_key(k.as_str()))
                .cloned(),
        )
        .filter(|k| k != "date_updated")
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Defines the row structs and [`for_each_row!`](crate::for_each_row), which hands each
/// struct's path and field names to a backend's decoder macro (`$d` is a literal `$`).
macro_rules! rows {
    ($d:tt $( #[doc = $doc:literal] $name:ident { $($field:ident : $ty:ty),* $(,)? } )*) => {
        $(
            #[doc = $doc]
            #[derive(Debug, Clone, PartialEq, Eq)]
            #[allow(missing_docs)]
            pub struct $name {
                $(pub $field: $ty),*
            }
        )*

        /// `for_each_row!(decoder)` expands to `decoder!(AccountRow { sid, … });` for every row
        /// struct of [`store::rows`](crate::store::rows), fields in declaration order, where the
        /// row names are in scope. A backend's `decoder` implements its driver's row decoding
        /// (columns named like fields).
        #[macro_export]
        macro_rules! for_each_row {
            ($d decoder:ident) => {
                $( $d decoder!($name { $($field),* }); )*
            };
        }
    };
}

rows! { $
    /// `accounts`
    AccountRow {
        sid: String,
        friendly_name: Option<String>,
        auth_token_sealed: Vec<u8>,
        date_created: i64,
        date_updated: i64,
    }
    /// `api_keys`
    ApiKeyRow {
        sid: String,
        account_sid: String,
        friendly_name: Option<String>,
        secret_sealed: Vec<u8>,
        date_created: i64,
    }
    /// `services`
    ServiceRow {
        sid: String,
        account_sid: String,
        friendly_name: String,
        default_service_role_sid: Option<String>,
        default_channel_role_sid: Option<String>,
        default_channel_creator_role_sid: Option<String>,
        settings: String,
        date_created: i64,
        date_updated: i64,
    }
    /// `roles`
    RoleRow {
        sid: String,
        account_sid: String,
        service_sid: String,
        friendly_name: String,
        role_type: String,
        permissions: String,
        date_created: i64,
        date_updated: i64,
    }
    /// `users`
    UserRow {
        sid: String,
        account_sid: String,
        service_sid: String,
        identity: String,
        friendly_name: Option<String>,
        attributes: Option<String>,
        role_sid: Option<String>,
        date_created: i64,
        date_updated: i64,
    }
    /// `credentials`
    CredentialRow {
        sid: String,
        account_sid: String,
        friendly_name: Option<String>,
        credential_type: String,
        sandbox: Option<bool>,
        secrets_sealed: Vec<u8>,
        date_created: i64,
        date_updated: i64,
        needs_secret: bool,
    }
    /// `bindings`
    BindingRow {
        sid: String,
        account_sid: String,
        service_sid: String,
        user_sid: String,
        identity: String,
        credential_sid: Option<String>,
        binding_type: String,
        endpoint: String,
        address: String,
        message_types: String,
        date_created: i64,
        date_updated: i64,
    }
    /// `channels`
    ChannelRow {
        sid: String,
        account_sid: String,
        service_sid: String,
        friendly_name: Option<String>,
        unique_name: Option<String>,
        attributes: Option<String>,
        channel_type: String,
        created_by: Option<String>,
        members_count: i64,
        messages_count: i64,
        last_message_sid: Option<String>,
        last_message_index: Option<i64>,
        date_created: i64,
        date_updated: i64,
    }
    /// `members`
    MemberRow {
        sid: String,
        account_sid: String,
        service_sid: String,
        channel_sid: String,
        user_sid: String,
        identity: String,
        role_sid: Option<String>,
        last_consumed_message_index: Option<i64>,
        last_consumption_timestamp: Option<i64>,
        attributes: Option<String>,
        notification_level: String,
        date_created: i64,
        date_updated: i64,
    }
    /// `messages`
    MessageRow {
        sid: String,
        account_sid: String,
        service_sid: String,
        channel_sid: String,
        msg_index: i64,
        msg_from: String,
        body: Option<String>,
        attributes: Option<String>,
        last_updated_by: Option<String>,
        was_edited: bool,
        date_created: i64,
        date_updated: i64,
    }
    /// `invites`
    InviteRow {
        sid: String,
        account_sid: String,
        service_sid: String,
        channel_sid: String,
        identity: String,
        role_sid: Option<String>,
        created_by: Option<String>,
        date_created: i64,
        date_updated: i64,
    }
    /// `channel_webhooks`
    ChannelWebhookRow {
        sid: String,
        account_sid: String,
        service_sid: String,
        channel_sid: String,
        webhook_type: String,
        configuration: String,
        date_created: i64,
        date_updated: i64,
    }
    /// One row of the user-channel view (a membership or a pending invite; see `member.rs`).
    UserChannelRow {
        account_sid: String,
        service_sid: String,
        channel_sid: String,
        user_sid: String,
        member_sid: Option<String>,
        status: String,
        last_consumed_message_index: Option<i64>,
        unread_messages_count: Option<i64>,
        notification_level: String,
        date_created: i64,
    }
    /// `events`
    EventRow {
        id: i64,
        seq: i64,
        kind: String,
        account_sid: String,
        service_sid: String,
        channel_sid: Option<String>,
        channel_unique_name: Option<String>,
        channel_friendly_name: Option<String>,
        message_sid: Option<String>,
        message_index: Option<i64>,
        body: Option<String>,
        member_sid: Option<String>,
        invite_sid: Option<String>,
        identity: Option<String>,
        actor: Option<String>,
        source: String,
        webhooks: bool,
        state: Option<String>,
        changed: String,
        date_created: i64,
        channel_webhooks: Option<String>,
        channel_identities: Option<String>,
    }
    /// `push_deliveries` as claimed (`attempts` already reduced to the count before the claim).
    DeliveryRow {
        id: String,
        event_id: i64,
        account_sid: String,
        service_sid: String,
        binding_sid: String,
        credential_sid: Option<String>,
        binding_type: String,
        address: String,
        identity: String,
        payload: String,
        event_at: i64,
        available_at: i64,
        attempts: i32,
    }
    /// `push_log`
    PushLogRow {
        seq: i64,
        id: String,
        account_sid: String,
        service_sid: String,
        event_id: i64,
        kind: String,
        binding_sid: String,
        identity: String,
        binding_type: String,
        outcome: String,
        reason: Option<String>,
        attempt: i32,
        date_created: i64,
    }
    /// `webhook_calls` (the lease columns are not read back).
    WebhookCallRow {
        id: i64,
        account_sid: String,
        service_sid: String,
        channel_sid: Option<String>,
        url: String,
        method: String,
        event_type: String,
        params: String,
        retry_count_max: i32,
        attempts: i32,
        available_at: i64,
        order_key: String,
        date_created: i64,
    }
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Self, StoreError> {
        Ok(Account {
            sid: sid(AccountSid::from_string, r.sid)?,
            friendly_name: r.friendly_name,
            auth_token_sealed: r.auth_token_sealed,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self, StoreError> {
        Ok(ApiKey {
            sid: sid(ApiKeySid::from_string, r.sid)?,
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            friendly_name: r.friendly_name,
            secret_sealed: r.secret_sealed,
            date_created: ts(r.date_created),
        })
    }
}

impl TryFrom<ServiceRow> for Service {
    type Error = StoreError;
    fn try_from(r: ServiceRow) -> Result<Self, StoreError> {
        Ok(Service {
            sid: sid(ServiceSid::from_string, r.sid)?,
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            friendly_name: r.friendly_name,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
            default_service_role_sid: opt_sid(RoleSid::from_string, r.default_service_role_sid)?,
            default_channel_role_sid: opt_sid(RoleSid::from_string, r.default_channel_role_sid)?,
            default_channel_creator_role_sid: opt_sid(
                RoleSid::from_string,
                r.default_channel_creator_role_sid,
            )?,
            settings: json("service settings", &r.settings)?,
        })
    }
}

impl TryFrom<RoleRow> for Role {
    type Error = StoreError;
    fn try_from(r: RoleRow) -> Result<Self, StoreError> {
        Ok(Role {
            sid: sid(RoleSid::from_string, r.sid)?,
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            service_sid: sid(ServiceSid::from_string, r.service_sid)?,
            friendly_name: r.friendly_name,
            role_type: RoleType::parse(&r.role_type)
                .ok_or_else(|| corrupt("role type", &r.role_type))?,
            permissions: json("role permissions", &r.permissions)?,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            sid: sid(UserSid::from_string, r.sid)?,
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            service_sid: sid(ServiceSid::from_string, r.service_sid)?,
            identity: r.identity,
            friendly_name: r.friendly_name,
            attributes: r.attributes,
            role_sid: opt_sid(RoleSid::from_string, r.role_sid)?,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

impl TryFrom<CredentialRow> for Credential {
    type Error = StoreError;
    fn try_from(r: CredentialRow) -> Result<Self, StoreError> {
        Ok(Credential {
            sid: sid(CredentialSid::from_string, r.sid)?,
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            friendly_name: r.friendly_name,
            credential_type: push_type(&r.credential_type)?,
            sandbox: r.sandbox,
            secrets_sealed: r.secrets_sealed,
            needs_secret: r.needs_secret,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

impl TryFrom<BindingRow> for Binding {
    type Error = StoreError;
    fn try_from(r: BindingRow) -> Result<Self, StoreError> {
        Ok(Binding {
            sid: sid(BindingSid::from_string, r.sid)?,
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            service_sid: sid(ServiceSid::from_string, r.service_sid)?,
            user_sid: sid(UserSid::from_string, r.user_sid)?,
            identity: r.identity,
            credential_sid: opt_sid(CredentialSid::from_string, r.credential_sid)?,
            binding_type: push_type(&r.binding_type)?,
            endpoint: r.endpoint,
            address: r.address,
            message_types: json("binding message types", &r.message_types)?,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

impl TryFrom<ChannelRow> for Channel {
    type Error = StoreError;
    fn try_from(r: ChannelRow) -> Result<Self, StoreError> {
        Ok(Channel {
            sid: sid(ChannelSid::from_string, r.sid)?,
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            service_sid: sid(ServiceSid::from_string, r.service_sid)?,
            friendly_name: r.friendly_name,
            unique_name: r.unique_name,
            attributes: r.attributes,
            channel_type: ChannelType::parse(&r.channel_type)
                .ok_or_else(|| corrupt("channel type", &r.channel_type))?,
            created_by: r.created_by,
            members_count: r.members_count,
            messages_count: r.messages_count,
            last_message_sid: opt_sid(MessageSid::from_string, r.last_message_sid)?,
            last_message_index: r.last_message_index,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;
    fn try_from(r: MemberRow) -> Result<Self, StoreError> {
        Ok(Member {
            sid: sid(MemberSid::from_string, r.sid)?,
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            service_sid: sid(ServiceSid::from_string, r.service_sid)?,
            channel_sid: sid(ChannelSid::from_string, r.channel_sid)?,
            user_sid: sid(UserSid::from_string, r.user_sid)?,
            identity: r.identity,
            role_sid: opt_sid(RoleSid::from_string, r.role_sid)?,
            last_consumed_message_index: r.last_consumed_message_index,
            last_consumption_timestamp: r.last_consumption_timestamp.map(ts),
            attributes: r.attributes,
            notification_level: notification_level(&r.notification_level)?,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;
    fn try_from(r: MessageRow) -> Result<Self, StoreError> {
        Ok(Message {
            sid: sid(MessageSid::from_string, r.sid)?,
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            service_sid: sid(ServiceSid::from_string, r.service_sid)?,
            channel_sid: sid(ChannelSid::from_string, r.channel_sid)?,
            index: r.msg_index,
            from: r.msg_from,
            body: r.body,
            attributes: r.attributes,
            last_updated_by: r.last_updated_by,
            was_edited: r.was_edited,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

impl TryFrom<InviteRow> for Invite {
    type Error = StoreError;
    fn try_from(r: InviteRow) -> Result<Self, StoreError> {
        Ok(Invite {
            sid: sid(InviteSid::from_string, r.sid)?,
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            service_sid: sid(ServiceSid::from_string, r.service_sid)?,
            channel_sid: sid(ChannelSid::from_string, r.channel_sid)?,
            identity: r.identity,
            role_sid: opt_sid(RoleSid::from_string, r.role_sid)?,
            created_by: r.created_by,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

impl TryFrom<ChannelWebhookRow> for ChannelWebhook {
    type Error = StoreError;
    fn try_from(r: ChannelWebhookRow) -> Result<Self, StoreError> {
        Ok(ChannelWebhook {
            sid: sid(ChannelWebhookSid::from_string, r.sid)?,
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            service_sid: sid(ServiceSid::from_string, r.service_sid)?,
            channel_sid: sid(ChannelSid::from_string, r.channel_sid)?,
            kind: WebhookType::parse(&r.webhook_type)
                .ok_or_else(|| corrupt("webhook type", &r.webhook_type))?,
            configuration: json("webhook configuration", &r.configuration)?,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

impl TryFrom<UserChannelRow> for UserChannel {
    type Error = StoreError;
    fn try_from(r: UserChannelRow) -> Result<Self, StoreError> {
        let status = match r.status.as_str() {
            "joined" => UserChannelStatus::Joined,
            "invited" => UserChannelStatus::Invited,
            other => return Err(corrupt("user channel status", other)),
        };
        Ok(UserChannel {
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            service_sid: sid(ServiceSid::from_string, r.service_sid)?,
            channel_sid: sid(ChannelSid::from_string, r.channel_sid)?,
            user_sid: sid(UserSid::from_string, r.user_sid)?,
            member_sid: opt_sid(MemberSid::from_string, r.member_sid)?,
            status,
            last_consumed_message_index: r.last_consumed_message_index,
            unread_messages_count: r.unread_messages_count,
            notification_level: notification_level(&r.notification_level)?,
            date_created: ts(r.date_created),
        })
    }
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(Event {
            id: r.id,
            seq: r.seq,
            kind: EventKind::parse(&r.kind).ok_or_else(|| corrupt("event kind", &r.kind))?,
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            service_sid: sid(ServiceSid::from_string, r.service_sid)?,
            channel_sid: opt_sid(ChannelSid::from_string, r.channel_sid)?,
            channel_unique_name: r.channel_unique_name,
            channel_friendly_name: r.channel_friendly_name,
            message_sid: opt_sid(MessageSid::from_string, r.message_sid)?,
            message_index: r.message_index,
            body: r.body,
            member_sid: opt_sid(MemberSid::from_string, r.member_sid)?,
            invite_sid: opt_sid(InviteSid::from_string, r.invite_sid)?,
            identity: r.identity,
            actor: r.actor,
            source: Source::parse(&r.source).ok_or_else(|| corrupt("event source", &r.source))?,
            webhooks: r.webhooks,
            state: match r.state {
                Some(json) => {
                    Some(serde_json::from_str(&json).map_err(|_| corrupt("event state", &json))?)
                }
                None => None,
            },
            changed: serde_json::from_str(&r.changed)
                .map_err(|_| corrupt("event changed fields", &r.changed))?,
            channel_webhooks: match r.channel_webhooks {
                Some(json) => serde_json::from_str(&json)
                    .map_err(|_| corrupt("event channel webhooks", &json))?,
                None => Vec::new(),
            },
            channel_identities: match r.channel_identities {
                Some(json) => Some(
                    serde_json::from_str(&json)
                        .map_err(|_| corrupt("event channel identities", &json))?,
                ),
                None => None,
            },
            date_created: ts(r.date_created),
        })
    }
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> Result<Self, StoreError> {
        Ok(Delivery {
            new: NewDelivery {
                id: r.id,
                event_id: r.event_id,
                account_sid: sid(AccountSid::from_string, r.account_sid)?,
                service_sid: sid(ServiceSid::from_string, r.service_sid)?,
                binding_sid: sid(BindingSid::from_string, r.binding_sid)?,
                credential_sid: opt_sid(CredentialSid::from_string, r.credential_sid)?,
                binding_type: push_type(&r.binding_type)?,
                address: r.address,
                identity: r.identity,
                payload: r.payload,
                event_at: ts(r.event_at),
                available_at: ts(r.available_at),
            },
            attempts: r.attempts,
        })
    }
}

impl TryFrom<PushLogRow> for PushLogEntry {
    type Error = StoreError;
    fn try_from(r: PushLogRow) -> Result<Self, StoreError> {
        Ok(PushLogEntry {
            seq: r.seq,
            id: r.id,
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            service_sid: sid(ServiceSid::from_string, r.service_sid)?,
            event_id: r.event_id,
            kind: r.kind,
            binding_sid: sid(BindingSid::from_string, r.binding_sid)?,
            identity: r.identity,
            binding_type: push_type(&r.binding_type)?,
            outcome: r.outcome,
            reason: r.reason,
            attempt: r.attempt,
            date_created: ts(r.date_created),
        })
    }
}

impl TryFrom<WebhookCallRow> for crate::webhook_call::WebhookCall {
    type Error = StoreError;
    fn try_from(r: WebhookCallRow) -> Result<Self, StoreError> {
        Ok(crate::webhook_call::WebhookCall {
            id: r.id,
            account_sid: sid(AccountSid::from_string, r.account_sid)?,
            service_sid: sid(ServiceSid::from_string, r.service_sid)?,
            channel_sid: opt_sid(ChannelSid::from_string, r.channel_sid)?,
            url: r.url,
            method: r.method,
            event_type: r.event_type,
            params: serde_json::from_str(&r.params)
                .map_err(|_| corrupt("webhook call params", &r.params))?,
            retry_count_max: r.retry_count_max,
            attempts: r.attempts,
            available_at: ts(r.available_at),
            order_key: r.order_key,
            date_created: ts(r.date_created),
        })
    }
}

/// The columns of [`WebhookCallRow`], for `select`/`returning`.
pub const WEBHOOK_CALL_COLUMNS: &str = "id, account_sid, service_sid, channel_sid, url, method, \
     event_type, params, retry_count_max, attempts, available_at, order_key, date_created";

#[cfg(test)]
mod tests {
    use super::changed_fields;

    #[derive(serde::Serialize)]
    struct Thing {
        body: Option<String>,
        attributes: Option<String>,
        was_edited: bool,
        date_updated: i64,
    }

    fn thing(body: Option<&str>, was_edited: bool, date_updated: i64) -> Thing {
        Thing {
            body: body.map(str::to_owned),
            attributes: Some("{}".to_owned()),
            was_edited,
            date_updated,
        }
    }

    #[test]
    fn changed_fields_name_the_differing_fields_in_order_without_date_updated() {
        let before = thing(Some("a"), false, 1);
        assert_eq!(
            changed_fields(&before, &thing(Some("b"), true, 2)),
            ["body", "was_edited"]
        );
        assert_eq!(changed_fields(&before, &thing(None, false, 1)), ["body"]);
        assert!(
            changed_fields(&before, &thing(Some("a"), false, 9)).is_empty(),
            "only date_updated moved"
        );
    }
}
