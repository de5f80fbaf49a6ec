//! Row structs (one per table, columns as stored) and their conversion into domain types.
//! Decoding checks SIDs and enums, so a damaged row is an error, not a panic.

use anyhow::anyhow;
use parley_core::account::{Account, ApiKey};
use parley_core::binding::Binding;
use parley_core::channel::{
    Channel, ChannelType, Invite, Member, Message, NotificationLevel, UserChannel,
    UserChannelStatus,
};
use parley_core::credential::{Credential, PushType};
use parley_core::event::{Event, EventKind};
use parley_core::role::{Role, RoleType};
use parley_core::service::Service;
use parley_core::store::StoreError;
use parley_core::user::User;
use parley_core::{
    AccountSid, ApiKeySid, BindingSid, ChannelSid, CredentialSid, InviteSid, MemberSid, MessageSid,
    RoleSid, ServiceSid, SidError, Timestamp, UserSid,
};

use crate::from_json;
use crate::lite::lite_row;

fn sid<T>(parse: fn(&str) -> Result<T, SidError>, s: &str) -> Result<T, StoreError> {
    parse(s).map_err(|e| StoreError::Other(anyhow!("stored row: {e}")))
}

fn opt_sid<T>(
    parse: fn(&str) -> Result<T, SidError>,
    s: Option<&str>,
) -> Result<Option<T>, StoreError> {
    s.map(|s| sid(parse, s)).transpose()
}

fn push_type(s: &str) -> Result<PushType, StoreError> {
    PushType::parse(s).ok_or_else(|| StoreError::Other(anyhow!("stored row: bad push type `{s}`")))
}

fn ts(us: i64) -> Timestamp {
    Timestamp::from_unix_micros(us)
}

/// `accounts`
pub(crate) struct AccountRow {
    pub sid: String,
    pub friendly_name: Option<String>,
    pub auth_token_sealed: Vec<u8>,
    pub date_created: i64,
    pub date_updated: i64,
}
lite_row!(AccountRow {
    sid,
    friendly_name,
    auth_token_sealed,
    date_created,
    date_updated
});

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Self, StoreError> {
        Ok(Account {
            sid: sid(AccountSid::parse, &r.sid)?,
            friendly_name: r.friendly_name,
            auth_token_sealed: r.auth_token_sealed,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

/// `api_keys`
pub(crate) struct ApiKeyRow {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: Option<String>,
    pub secret_sealed: Vec<u8>,
    pub date_created: i64,
}
lite_row!(ApiKeyRow {
    sid,
    account_sid,
    friendly_name,
    secret_sealed,
    date_created
});

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self, StoreError> {
        Ok(ApiKey {
            sid: sid(ApiKeySid::parse, &r.sid)?,
            account_sid: sid(AccountSid::parse, &r.account_sid)?,
            friendly_name: r.friendly_name,
            secret_sealed: r.secret_sealed,
            date_created: ts(r.date_created),
        })
    }
}

/// `services`
pub(crate) struct ServiceRow {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub default_service_role_sid: Option<String>,
    pub default_channel_role_sid: Option<String>,
    pub default_channel_creator_role_sid: Option<String>,
    pub settings: String,
    pub date_created: i64,
    pub date_updated: i64,
}
lite_row!(ServiceRow {
    sid,
    account_sid,
    friendly_name,
    default_service_role_sid,
    default_channel_role_sid,
    default_channel_creator_role_sid,
    settings,
    date_created,
    date_updated
});

impl TryFrom<ServiceRow> for Service {
    type Error = StoreError;
    fn try_from(r: ServiceRow) -> Result<Self, StoreError> {
        Ok(Service {
            sid: sid(ServiceSid::parse, &r.sid)?,
            account_sid: sid(AccountSid::parse, &r.account_sid)?,
            friendly_name: r.friendly_name,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
            default_service_role_sid: opt_sid(
                RoleSid::parse,
                r.default_service_role_sid.as_deref(),
            )?,
            default_channel_role_sid: opt_sid(
                RoleSid::parse,
                r.default_channel_role_sid.as_deref(),
            )?,
            default_channel_creator_role_sid: opt_sid(
                RoleSid::parse,
                r.default_channel_creator_role_sid.as_deref(),
            )?,
            settings: from_json("services.settings", &r.settings)?,
        })
    }
}

/// `roles`
pub(crate) struct RoleRow {
    pub sid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub friendly_name: String,
    pub role_type: String,
    pub permissions: String,
    pub date_created: i64,
    pub date_updated: i64,
}
lite_row!(RoleRow {
    sid,
    account_sid,
    service_sid,
    friendly_name,
    role_type,
    permissions,
    date_created,
    date_updated
});

impl TryFrom<RoleRow> for Role {
    type Error = StoreError;
    fn try_from(r: RoleRow) -> Result<Self, StoreError> {
        Ok(Role {
            sid: sid(RoleSid::parse, &r.sid)?,
            account_sid: sid(AccountSid::parse, &r.account_sid)?,
            service_sid: sid(ServiceSid::parse, &r.service_sid)?,
            friendly_name: r.friendly_name,
            role_type: RoleType::parse(&r.role_type).ok_or_else(|| {
                StoreError::Other(anyhow!("stored row: bad role type `{}`", r.role_type))
            })?,
            permissions: from_json("roles.permissions", &r.permissions)?,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

/// `users`
pub(crate) struct UserRow {
    pub sid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub identity: String,
    pub friendly_name: Option<String>,
    pub attributes: Option<String>,
    pub role_sid: Option<String>,
    pub date_created: i64,
    pub date_updated: i64,
}
lite_row!(UserRow {
    sid,
    account_sid,
    service_sid,
    identity,
    friendly_name,
    attributes,
    role_sid,
    date_created,
    date_updated
});

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            sid: sid(UserSid::parse, &r.sid)?,
            account_sid: sid(AccountSid::parse, &r.account_sid)?,
            service_sid: sid(ServiceSid::parse, &r.service_sid)?,
            identity: r.identity,
            friendly_name: r.friendly_name,
            attributes: r.attributes,
            role_sid: opt_sid(RoleSid::parse, r.role_sid.as_deref())?,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

/// `credentials`
pub(crate) struct CredentialRow {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: Option<String>,
    pub credential_type: String,
    pub sandbox: Option<bool>,
    pub secrets_sealed: Vec<u8>,
    pub date_created: i64,
    pub date_updated: i64,
}
lite_row!(CredentialRow {
    sid,
    account_sid,
    friendly_name,
    credential_type,
    sandbox,
    secrets_sealed,
    date_created,
    date_updated
});

impl TryFrom<CredentialRow> for Credential {
    type Error = StoreError;
    fn try_from(r: CredentialRow) -> Result<Self, StoreError> {
        Ok(Credential {
            sid: sid(CredentialSid::parse, &r.sid)?,
            account_sid: sid(AccountSid::parse, &r.account_sid)?,
            friendly_name: r.friendly_name,
            credential_type: push_type(&r.credential_type)?,
            sandbox: r.sandbox,
            secrets_sealed: r.secrets_sealed,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

/// `bindings`
pub(crate) struct BindingRow {
    pub sid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub user_sid: String,
    pub identity: String,
    pub credential_sid: Option<String>,
    pub binding_type: String,
    pub endpoint: String,
    pub address: String,
    pub message_types: String,
    pub date_created: i64,
    pub date_updated: i64,
}
lite_row!(BindingRow {
    sid,
    account_sid,
    service_sid,
    user_sid,
    identity,
    credential_sid,
    binding_type,
    endpoint,
    address,
    message_types,
    date_created,
    date_updated
});

impl TryFrom<BindingRow> for Binding {
    type Error = StoreError;
    fn try_from(r: BindingRow) -> Result<Self, StoreError> {
        Ok(Binding {
            sid: sid(BindingSid::parse, &r.sid)?,
            account_sid: sid(AccountSid::parse, &r.account_sid)?,
            service_sid: sid(ServiceSid::parse, &r.service_sid)?,
            user_sid: sid(UserSid::parse, &r.user_sid)?,
            identity: r.identity,
            credential_sid: opt_sid(CredentialSid::parse, r.credential_sid.as_deref())?,
            binding_type: push_type(&r.binding_type)?,
            endpoint: r.endpoint,
            address: r.address,
            message_types: from_json("bindings.message_types", &r.message_types)?,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

fn notification_level(s: &str) -> Result<NotificationLevel, StoreError> {
    NotificationLevel::parse(s)
        .ok_or_else(|| StoreError::Other(anyhow!("stored row: bad notification level `{s}`")))
}

/// `channels`
pub(crate) struct ChannelRow {
    pub sid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub friendly_name: Option<String>,
    pub unique_name: Option<String>,
    pub attributes: Option<String>,
    pub channel_type: String,
    pub created_by: Option<String>,
    pub members_count: i64,
    pub messages_count: i64,
    pub last_message_sid: Option<String>,
    pub last_message_index: Option<i64>,
    pub date_created: i64,
    pub date_updated: i64,
}
lite_row!(ChannelRow {
    sid,
    account_sid,
    service_sid,
    friendly_name,
    unique_name,
    attributes,
    channel_type,
    created_by,
    members_count,
    messages_count,
    last_message_sid,
    last_message_index,
    date_created,
    date_updated
});

impl TryFrom<ChannelRow> for Channel {
    type Error = StoreError;
    fn try_from(r: ChannelRow) -> Result<Self, StoreError> {
        Ok(Channel {
            sid: sid(ChannelSid::parse, &r.sid)?,
            account_sid: sid(AccountSid::parse, &r.account_sid)?,
            service_sid: sid(ServiceSid::parse, &r.service_sid)?,
            friendly_name: r.friendly_name,
            unique_name: r.unique_name,
            attributes: r.attributes,
            channel_type: ChannelType::parse(&r.channel_type).ok_or_else(|| {
                StoreError::Other(anyhow!("stored row: bad channel type `{}`", r.channel_type))
            })?,
            created_by: r.created_by,
            members_count: r.members_count,
            messages_count: r.messages_count,
            last_message_sid: opt_sid(MessageSid::parse, r.last_message_sid.as_deref())?,
            last_message_index: r.last_message_index,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

/// `members`
pub(crate) struct MemberRow {
    pub sid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub channel_sid: String,
    pub user_sid: String,
    pub identity: String,
    pub role_sid: Option<String>,
    pub last_consumed_message_index: Option<i64>,
    pub last_consumption_timestamp: Option<i64>,
    pub attributes: Option<String>,
    pub notification_level: String,
    pub date_created: i64,
    pub date_updated: i64,
}
lite_row!(MemberRow {
    sid,
    account_sid,
    service_sid,
    channel_sid,
    user_sid,
    identity,
    role_sid,
    last_consumed_message_index,
    last_consumption_timestamp,
    attributes,
    notification_level,
    date_created,
    date_updated
});

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;
    fn try_from(r: MemberRow) -> Result<Self, StoreError> {
        Ok(Member {
            sid: sid(MemberSid::parse, &r.sid)?,
            account_sid: sid(AccountSid::parse, &r.account_sid)?,
            service_sid: sid(ServiceSid::parse, &r.service_sid)?,
            channel_sid: sid(ChannelSid::parse, &r.channel_sid)?,
            user_sid: sid(UserSid::parse, &r.user_sid)?,
            identity: r.identity,
            role_sid: opt_sid(RoleSid::parse, r.role_sid.as_deref())?,
            last_consumed_message_index: r.last_consumed_message_index,
            last_consumption_timestamp: r.last_consumption_timestamp.map(ts),
            attributes: r.attributes,
            notification_level: notification_level(&r.notification_level)?,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

/// `messages`
pub(crate) struct MessageRow {
    pub sid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub channel_sid: String,
    pub msg_index: i64,
    pub msg_from: String,
    pub body: Option<String>,
    pub attributes: Option<String>,
    pub last_updated_by: Option<String>,
    pub was_edited: bool,
    pub date_created: i64,
    pub date_updated: i64,
}
lite_row!(MessageRow {
    sid,
    account_sid,
    service_sid,
    channel_sid,
    msg_index,
    msg_from,
    body,
    attributes,
    last_updated_by,
    was_edited,
    date_created,
    date_updated
});

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;
    fn try_from(r: MessageRow) -> Result<Self, StoreError> {
        Ok(Message {
            sid: sid(MessageSid::parse, &r.sid)?,
            account_sid: sid(AccountSid::parse, &r.account_sid)?,
            service_sid: sid(ServiceSid::parse, &r.service_sid)?,
            channel_sid: sid(ChannelSid::parse, &r.channel_sid)?,
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

/// `invites`
pub(crate) struct InviteRow {
    pub sid: String,
    pub account_sid: String,
    pub service_sid: String,
    pub channel_sid: String,
    pub identity: String,
    pub role_sid: Option<String>,
    pub created_by: Option<String>,
    pub date_created: i64,
    pub date_updated: i64,
}
lite_row!(InviteRow {
    sid,
    account_sid,
    service_sid,
    channel_sid,
    identity,
    role_sid,
    created_by,
    date_created,
    date_updated
});

impl TryFrom<InviteRow> for Invite {
    type Error = StoreError;
    fn try_from(r: InviteRow) -> Result<Self, StoreError> {
        Ok(Invite {
            sid: sid(InviteSid::parse, &r.sid)?,
            account_sid: sid(AccountSid::parse, &r.account_sid)?,
            service_sid: sid(ServiceSid::parse, &r.service_sid)?,
            channel_sid: sid(ChannelSid::parse, &r.channel_sid)?,
            identity: r.identity,
            role_sid: opt_sid(RoleSid::parse, r.role_sid.as_deref())?,
            created_by: r.created_by,
            date_created: ts(r.date_created),
            date_updated: ts(r.date_updated),
        })
    }
}

/// One row of the user-channel view (a membership or a pending invite; see `member.rs`).
pub(crate) struct UserChannelRow {
    pub account_sid: String,
    pub service_sid: String,
    pub channel_sid: String,
    pub user_sid: String,
    pub member_sid: Option<String>,
    pub status: String,
    pub last_consumed_message_index: Option<i64>,
    pub unread_messages_count: Option<i64>,
    pub notification_level: String,
    pub date_created: i64,
}
lite_row!(UserChannelRow {
    account_sid,
    service_sid,
    channel_sid,
    user_sid,
    member_sid,
    status,
    last_consumed_message_index,
    unread_messages_count,
    notification_level,
    date_created
});

impl TryFrom<UserChannelRow> for UserChannel {
    type Error = StoreError;
    fn try_from(r: UserChannelRow) -> Result<Self, StoreError> {
        let status = match r.status.as_str() {
            "joined" => UserChannelStatus::Joined,
            "invited" => UserChannelStatus::Invited,
            other => {
                return Err(StoreError::Other(anyhow!(
                    "stored row: bad user channel status `{other}`"
                )))
            }
        };
        Ok(UserChannel {
            account_sid: sid(AccountSid::parse, &r.account_sid)?,
            service_sid: sid(ServiceSid::parse, &r.service_sid)?,
            channel_sid: sid(ChannelSid::parse, &r.channel_sid)?,
            user_sid: sid(UserSid::parse, &r.user_sid)?,
            member_sid: opt_sid(MemberSid::parse, r.member_sid.as_deref())?,
            status,
            last_consumed_message_index: r.last_consumed_message_index,
            unread_messages_count: r.unread_messages_count,
            notification_level: notification_level(&r.notification_level)?,
            date_created: ts(r.date_created),
        })
    }
}

/// `events`
pub(crate) struct EventRow {
    pub id: i64,
    pub kind: String,
    pub account_sid: String,
    pub service_sid: String,
    pub channel_sid: String,
    pub channel_unique_name: Option<String>,
    pub channel_friendly_name: Option<String>,
    pub message_sid: Option<String>,
    pub message_index: Option<i64>,
    pub body: Option<String>,
    pub member_sid: Option<String>,
    pub invite_sid: Option<String>,
    pub identity: Option<String>,
    pub actor: Option<String>,
    pub date_created: i64,
}
lite_row!(EventRow {
    id,
    kind,
    account_sid,
    service_sid,
    channel_sid,
    channel_unique_name,
    channel_friendly_name,
    message_sid,
    message_index,
    body,
    member_sid,
    invite_sid,
    identity,
    actor,
    date_created
});

impl TryFrom<EventRow> for Event {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(Event {
            id: r.id,
            kind: EventKind::parse(&r.kind).ok_or_else(|| {
                StoreError::Other(anyhow!("stored row: bad event kind `{}`", r.kind))
            })?,
            account_sid: sid(AccountSid::parse, &r.account_sid)?,
            service_sid: sid(ServiceSid::parse, &r.service_sid)?,
            channel_sid: sid(ChannelSid::parse, &r.channel_sid)?,
            channel_unique_name: r.channel_unique_name,
            channel_friendly_name: r.channel_friendly_name,
            message_sid: opt_sid(MessageSid::parse, r.message_sid.as_deref())?,
            message_index: r.message_index,
            body: r.body,
            member_sid: opt_sid(MemberSid::parse, r.member_sid.as_deref())?,
            invite_sid: opt_sid(InviteSid::parse, r.invite_sid.as_deref())?,
            identity: r.identity,
            actor: r.actor,
            date_created: ts(r.date_created),
        })
    }
}

/// Convert every row of a fetched list.
pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
