//! Database rows (`#[derive(FromRow)]`, column names = struct fields) and their conversion into
//! domain types. A value that does not decode (bad SID, unknown enum, broken JSON) is an
//! internal error, never a panic.

use parley_core::account::{Account, ApiKey};
use parley_core::binding::Binding;
use parley_core::credential::{Credential, PushType};
use parley_core::role::{Role, RoleType};
use parley_core::service::{Service, ServiceSettings};
use parley_core::store::StoreError;
use parley_core::user::User;
use parley_core::{
    AccountSid, ApiKeySid, BindingSid, CredentialSid, RoleSid, ServiceSid, SidError, Timestamp,
    UserSid,
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

/// Convert a list of fetched rows.
pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
