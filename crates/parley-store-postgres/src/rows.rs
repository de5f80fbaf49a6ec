//! Database rows (`#[derive(FromRow)]`, column names = struct fields) and their conversion into
//! domain types. A value that does not decode (bad SID, unknown enum, broken JSON) is an
//! internal error, never a panic.

use parley_core::account::{Account, ApiKey};
use parley_core::binding::Binding;
use parley_core::channel::{
    Channel, ChannelType, Invite, Member, Message, NotificationLevel, UserChannel,
    UserChannelStatus,
};
use parley_core::credential::{Credential, PushType};
use parley_core::event::{Event, EventKind};
use parley_core::role::{Role, RoleType};
use parley_core::service::{Service, ServiceSettings};
use parley_core::store::StoreError;
use parley_core::user::User;
use parley_core::{
    AccountSid, ApiKeySid, BindingSid, ChannelSid, CredentialSid, InviteSid, MemberSid, MessageSid,
    RoleSid, ServiceSid, SidError, Timestamp, UserSid,
};
use sqlx::FromRow;

use crate::error::corrupt;

fn sid<T>(parsed: Result<T, SidError>) -> Result<T, StoreError> {
    parsed.map_err(|e| corrupt("sid", e))
}

fn opt_sid<T>(
    value: Option<String>,
    parse: fn(&str) -> Result<T, SidError>,
) -> Result<Option<T>, StoreError> {
    value.map(|s| sid(parse(&s))).transpose()
}

fn push_type(s: &str) -> Result<PushType, StoreError> {
    PushType::parse(s).ok_or_else(|| corrupt("push type", s))
}

fn string_list(what: &str, json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|e| corrupt(what, e))
}

/// Encode a list of names as the JSON text stored in `permissions` / `message_types`.
pub(crate) fn to_json_text(value: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Other(e.into()))
}

/// `accounts`
#[derive(Debug, FromRow)]
pub struct AccountRow {
    sid: String,
    friendly_name: Option<String>,
    auth_token_sealed: Vec<u8>,
    date_created: i64,
    date_updated: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Self, StoreError> {
        Ok(Account {
            sid: sid(AccountSid::parse(&r.sid))?,
            friendly_name: r.friendly_name,
            auth_token_sealed: r.auth_token_sealed,
            date_created: Timestamp::from_unix_micros(r.date_created),
            date_updated: Timestamp::from_unix_micros(r.date_updated),
        })
    }
}

/// `api_keys`
#[derive(Debug, FromRow)]
pub struct ApiKeyRow {
    sid: String,
    account_sid: String,
    friendly_name: Option<String>,
    secret_sealed: Vec<u8>,
    date_created: i64,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self, StoreError> {
        Ok(ApiKey {
            sid: sid(ApiKeySid::parse(&r.sid))?,
            account_sid: sid(AccountSid::parse(&r.account_sid))?,
            friendly_name: r.friendly_name,
            secret_sealed: r.secret_sealed,
            date_created: Timestamp::from_unix_micros(r.date_created),
        })
    }
}

/// `services`
#[derive(Debug, FromRow)]
pub struct ServiceRow {
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

impl TryFrom<ServiceRow> for Service {
    type Error = StoreError;
    fn try_from(r: ServiceRow) -> Result<Self, StoreError> {
        let settings: ServiceSettings =
            serde_json::from_str(&r.settings).map_err(|e| corrupt("service settings", e))?;
        Ok(Service {
            sid: sid(ServiceSid::parse(&r.sid))?,
            account_sid: sid(AccountSid::parse(&r.account_sid))?,
            friendly_name: r.friendly_name,
            date_created: Timestamp::from_unix_micros(r.date_created),
            date_updated: Timestamp::from_unix_micros(r.date_updated),
            default_service_role_sid: opt_sid(r.default_service_role_sid, RoleSid::parse)?,
            default_channel_role_sid: opt_sid(r.default_channel_role_sid, RoleSid::parse)?,
            default_channel_creator_role_sid: opt_sid(
                r.default_channel_creator_role_sid,
                RoleSid::parse,
            )?,
            settings,
        })
    }
}

/// `roles`
#[derive(Debug, FromRow)]
pub struct RoleRow {
    sid: String,
    account_sid: String,
    service_sid: String,
    friendly_name: String,
    role_type: String,
    permissions: String,
    date_created: i64,
    date_updated: i64,
}

impl TryFrom<RoleRow> for Role {
    type Error = StoreError;
    fn try_from(r: RoleRow) -> Result<Self, StoreError> {
        Ok(Role {
            sid: sid(RoleSid::parse(&r.sid))?,
            account_sid: sid(AccountSid::parse(&r.account_sid))?,
            service_sid: sid(ServiceSid::parse(&r.service_sid))?,
            friendly_name: r.friendly_name,
            role_type: RoleType::parse(&r.role_type)
                .ok_or_else(|| corrupt("role type", &r.role_type))?,
            permissions: string_list("role permissions", &r.permissions)?,
            date_created: Timestamp::from_unix_micros(r.date_created),
            date_updated: Timestamp::from_unix_micros(r.date_updated),
        })
    }
}

/// `users`
#[derive(Debug, FromRow)]
pub struct UserRow {
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

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            sid: sid(UserSid::parse(&r.sid))?,
            account_sid: sid(AccountSid::parse(&r.account_sid))?,
            service_sid: sid(ServiceSid::parse(&r.service_sid))?,
            identity: r.identity,
            friendly_name: r.friendly_name,
            attributes: r.attributes,
            role_sid: opt_sid(r.role_sid, RoleSid::parse)?,
            date_created: Timestamp::from_unix_micros(r.date_created),
            date_updated: Timestamp::from_unix_micros(r.date_updated),
        })
    }
}

/// `credentials`
#[derive(Debug, FromRow)]
pub struct CredentialRow {
    sid: String,
    account_sid: String,
    friendly_name: Option<String>,
    credential_type: String,
    sandbox: Option<bool>,
    secrets_sealed: Vec<u8>,
    date_created: i64,
    date_updated: i64,
}

impl TryFrom<CredentialRow> for Credential {
    type Error = StoreError;
    fn try_from(r: CredentialRow) -> Result<Self, StoreError> {
        Ok(Credential {
            sid: sid(CredentialSid::parse(&r.sid))?,
            account_sid: sid(AccountSid::parse(&r.account_sid))?,
            friendly_name: r.friendly_name,
            credential_type: push_type(&r.credential_type)?,
            sandbox: r.sandbox,
            secrets_sealed: r.secrets_sealed,
            date_created: Timestamp::from_unix_micros(r.date_created),
            date_updated: Timestamp::from_unix_micros(r.date_updated),
        })
    }
}

/// `bindings`
#[derive(Debug, FromRow)]
pub struct BindingRow {
    pub(crate) sid: String,
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

impl TryFrom<BindingRow> for Binding {
    type Error = StoreError;
    fn try_from(r: BindingRow) -> Result<Self, StoreError> {
        Ok(Binding {
            sid: sid(BindingSid::parse(&r.sid))?,
            account_sid: sid(AccountSid::parse(&r.account_sid))?,
            service_sid: sid(ServiceSid::parse(&r.service_sid))?,
            user_sid: sid(UserSid::parse(&r.user_sid))?,
            identity: r.identity,
            credential_sid: opt_sid(r.credential_sid, CredentialSid::parse)?,
            binding_type: push_type(&r.binding_type)?,
            endpoint: r.endpoint,
            address: r.address,
            message_types: string_list("binding message types", &r.message_types)?,
            date_created: Timestamp::from_unix_micros(r.date_created),
            date_updated: Timestamp::from_unix_micros(r.date_updated),
        })
    }
}

/// A binding returned by the registration upsert, with whether the row was inserted.
#[derive(Debug, FromRow)]
pub struct RegisteredRow {
    #[sqlx(flatten)]
    pub(crate) binding: BindingRow,
    pub(crate) created: bool,
}

fn notification_level(s: &str) -> Result<NotificationLevel, StoreError> {
    NotificationLevel::parse(s).ok_or_else(|| corrupt("notification level", s))
}

/// `channels`
#[derive(Debug, FromRow)]
pub struct ChannelRow {
    pub(crate) sid: String,
    pub(crate) account_sid: String,
    pub(crate) service_sid: String,
    pub(crate) friendly_name: Option<String>,
    pub(crate) unique_name: Option<String>,
    attributes: Option<String>,
    channel_type: String,
    created_by: Option<String>,
    pub(crate) members_count: i64,
    messages_count: i64,
    last_message_sid: Option<String>,
    pub(crate) last_message_index: Option<i64>,
    date_created: i64,
    date_updated: i64,
}

impl TryFrom<ChannelRow> for Channel {
    type Error = StoreError;
    fn try_from(r: ChannelRow) -> Result<Self, StoreError> {
        Ok(Channel {
            sid: sid(ChannelSid::parse(&r.sid))?,
            account_sid: sid(AccountSid::parse(&r.account_sid))?,
            service_sid: sid(ServiceSid::parse(&r.service_sid))?,
            friendly_name: r.friendly_name,
            unique_name: r.unique_name,
            attributes: r.attributes,
            channel_type: ChannelType::parse(&r.channel_type)
                .ok_or_else(|| corrupt("channel type", &r.channel_type))?,
            created_by: r.created_by,
            members_count: r.members_count,
            messages_count: r.messages_count,
            last_message_sid: opt_sid(r.last_message_sid, MessageSid::parse)?,
            last_message_index: r.last_message_index,
            date_created: Timestamp::from_unix_micros(r.date_created),
            date_updated: Timestamp::from_unix_micros(r.date_updated),
        })
    }
}

/// `members`
#[derive(Debug, FromRow)]
pub struct MemberRow {
    pub(crate) sid: String,
    account_sid: String,
    service_sid: String,
    channel_sid: String,
    user_sid: String,
    pub(crate) identity: String,
    role_sid: Option<String>,
    last_consumed_message_index: Option<i64>,
    last_consumption_timestamp: Option<i64>,
    attributes: Option<String>,
    notification_level: String,
    date_created: i64,
    date_updated: i64,
}

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;
    fn try_from(r: MemberRow) -> Result<Self, StoreError> {
        Ok(Member {
            sid: sid(MemberSid::parse(&r.sid))?,
            account_sid: sid(AccountSid::parse(&r.account_sid))?,
            service_sid: sid(ServiceSid::parse(&r.service_sid))?,
            channel_sid: sid(ChannelSid::parse(&r.channel_sid))?,
            user_sid: sid(UserSid::parse(&r.user_sid))?,
            identity: r.identity,
            role_sid: opt_sid(r.role_sid, RoleSid::parse)?,
            last_consumed_message_index: r.last_consumed_message_index,
            last_consumption_timestamp: r
                .last_consumption_timestamp
                .map(Timestamp::from_unix_micros),
            attributes: r.attributes,
            notification_level: notification_level(&r.notification_level)?,
            date_created: Timestamp::from_unix_micros(r.date_created),
            date_updated: Timestamp::from_unix_micros(r.date_updated),
        })
    }
}

/// `messages`
#[derive(Debug, FromRow)]
pub struct MessageRow {
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

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;
    fn try_from(r: MessageRow) -> Result<Self, StoreError> {
        Ok(Message {
            sid: sid(MessageSid::parse(&r.sid))?,
            account_sid: sid(AccountSid::parse(&r.account_sid))?,
            service_sid: sid(ServiceSid::parse(&r.service_sid))?,
            channel_sid: sid(ChannelSid::parse(&r.channel_sid))?,
            index: r.msg_index,
            from: r.msg_from,
            body: r.body,
            attributes: r.attributes,
            last_updated_by: r.last_updated_by,
            was_edited: r.was_edited,
            date_created: Timestamp::from_unix_micros(r.date_created),
            date_updated: Timestamp::from_unix_micros(r.date_updated),
        })
    }
}

/// `invites`
#[derive(Debug, FromRow)]
pub struct InviteRow {
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

impl TryFrom<InviteRow> for Invite {
    type Error = StoreError;
    fn try_from(r: InviteRow) -> Result<Self, StoreError> {
        Ok(Invite {
            sid: sid(InviteSid::parse(&r.sid))?,
            account_sid: sid(AccountSid::parse(&r.account_sid))?,
            service_sid: sid(ServiceSid::parse(&r.service_sid))?,
            channel_sid: sid(ChannelSid::parse(&r.channel_sid))?,
            identity: r.identity,
            role_sid: opt_sid(r.role_sid, RoleSid::parse)?,
            created_by: r.created_by,
            date_created: Timestamp::from_unix_micros(r.date_created),
            date_updated: Timestamp::from_unix_micros(r.date_updated),
        })
    }
}

/// One row of the user-channel view (a membership or a pending invite).
#[derive(Debug, FromRow)]
pub struct UserChannelRow {
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

impl TryFrom<UserChannelRow> for UserChannel {
    type Error = StoreError;
    fn try_from(r: UserChannelRow) -> Result<Self, StoreError> {
        let status = match r.status.as_str() {
            "joined" => UserChannelStatus::Joined,
            "invited" => UserChannelStatus::Invited,
            other => return Err(corrupt("user channel status", other)),
        };
        Ok(UserChannel {
            account_sid: sid(AccountSid::parse(&r.account_sid))?,
            service_sid: sid(ServiceSid::parse(&r.service_sid))?,
            channel_sid: sid(ChannelSid::parse(&r.channel_sid))?,
            user_sid: sid(UserSid::parse(&r.user_sid))?,
            member_sid: opt_sid(r.member_sid, MemberSid::parse)?,
            status,
            last_consumed_message_index: r.last_consumed_message_index,
            unread_messages_count: r.unread_messages_count,
            notification_level: notification_level(&r.notification_level)?,
            date_created: Timestamp::from_unix_micros(r.date_created),
        })
    }
}

/// `events`
#[derive(Debug, FromRow)]
pub struct EventRow {
    id: i64,
    kind: String,
    account_sid: String,
    service_sid: String,
    channel_sid: String,
    channel_unique_name: Option<String>,
    channel_friendly_name: Option<String>,
    message_sid: Option<String>,
    message_index: Option<i64>,
    body: Option<String>,
    member_sid: Option<String>,
    invite_sid: Option<String>,
    identity: Option<String>,
    actor: Option<String>,
    date_created: i64,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(Event {
            id: r.id,
            kind: EventKind::parse(&r.kind).ok_or_else(|| corrupt("event kind", &r.kind))?,
            account_sid: sid(AccountSid::parse(&r.account_sid))?,
            service_sid: sid(ServiceSid::parse(&r.service_sid))?,
            channel_sid: sid(ChannelSid::parse(&r.channel_sid))?,
            channel_unique_name: r.channel_unique_name,
            channel_friendly_name: r.channel_friendly_name,
            message_sid: opt_sid(r.message_sid, MessageSid::parse)?,
            message_index: r.message_index,
            body: r.body,
            member_sid: opt_sid(r.member_sid, MemberSid::parse)?,
            invite_sid: opt_sid(r.invite_sid, InviteSid::parse)?,
            identity: r.identity,
            actor: r.actor,
            date_created: Timestamp::from_unix_micros(r.date_created),
        })
    }
}

/// Convert a list of fetched rows.
pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
