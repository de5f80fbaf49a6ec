//! Row structs (one per table, columns as stored) and their conversion into domain types.
//! Decoding checks SIDs and enums, so a damaged row is an error, not a panic.

use anyhow::anyhow;
use parley_core::account::{Account, ApiKey};
use parley_core::binding::Binding;
use parley_core::credential::{Credential, PushType};
use parley_core::role::{Role, RoleType};
use parley_core::service::Service;
use parley_core::store::StoreError;
use parley_core::user::User;
use parley_core::{
    AccountSid, ApiKeySid, BindingSid, CredentialSid, RoleSid, ServiceSid, SidError, Timestamp,
    UserSid,
};

use crate::from_json;

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
#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    pub sid: String,
    pub friendly_name: Option<String>,
    pub auth_token_sealed: Vec<u8>,
    pub date_created: i64,
    pub date_updated: i64,
}

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
#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: Option<String>,
    pub secret_sealed: Vec<u8>,
    pub date_created: i64,
}

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
#[derive(sqlx::FromRow)]
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
#[derive(sqlx::FromRow)]
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
#[derive(sqlx::FromRow)]
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
#[derive(sqlx::FromRow)]
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
#[derive(sqlx::FromRow)]
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

/// Convert every row of a fetched list.
pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
