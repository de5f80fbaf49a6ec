//! Account and API key administration, shared by the `parley account` / `parley api-key`
//! commands and the first-start bootstrap. Secrets are generated here, sealed before they reach
//! the store, and returned in clear exactly once to the caller that shows them.

use anyhow::{anyhow, Context as _};
use parley_core::account::{Account, ApiKey};
use parley_core::crypto::{generate_token, SecretBox};
use parley_core::store::{Conflict, Store, StoreError};
use parley_core::{AccountSid, ApiKeySid, Timestamp};
use serde::Serialize;

use crate::config::{validate_auth_token, BootstrapAccount};

/// A new (or re-keyed) account with its auth token in clear — show it once.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct AccountCredentials {
    /// `AC…`
    pub sid: AccountSid,
    /// The auth token, in clear.
    pub auth_token: String,
    /// Human name.
    pub friendly_name: Option<String>,
}

impl std::fmt::Debug for AccountCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountCredentials")
            .field("sid", &self.sid)
            .field("auth_token", &"***")
            .field("friendly_name", &self.friendly_name)
            .finish()
    }
}

/// A new API key with its secret in clear — show it once.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyCredentials {
    /// `SK…`
    pub sid: ApiKeySid,
    /// The secret, in clear.
    pub secret: String,
    /// Owner.
    pub account_sid: AccountSid,
}

impl std::fmt::Debug for ApiKeyCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyCredentials")
            .field("sid", &self.sid)
            .field("secret", &"***")
            .field("account_sid", &self.account_sid)
            .finish()
    }
}

/// An account as listed (no secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountSummary {
    /// `AC…`
    pub sid: AccountSid,
    /// Human name.
    pub friendly_name: Option<String>,
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub date_created: String,
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub date_updated: String,
}

impl From<&Account> for AccountSummary {
    fn from(a: &Account) -> Self {
        Self {
            sid: a.sid.clone(),
            friendly_name: a.friendly_name.clone(),
            date_created: a.date_created.to_rfc3339_seconds(),
            date_updated: a.date_updated.to_rfc3339_seconds(),
        }
    }
}

/// An API key as listed (no secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiKeySummary {
    /// `SK…`
    pub sid: ApiKeySid,
    /// Owner.
    pub account_sid: AccountSid,
    /// Human name.
    pub friendly_name: Option<String>,
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub date_created: String,
}

impl From<&ApiKey> for ApiKeySummary {
    fn from(k: &ApiKey) -> Self {
        Self {
            sid: k.sid.clone(),
            account_sid: k.account_sid.clone(),
            friendly_name: k.friendly_name.clone(),
            date_created: k.date_created.to_rfc3339_seconds(),
        }
    }
}

/// Create an account. `sid` and `auth_token` default to fresh random values.
pub async fn create_account(
    store: &dyn Store,
    secrets: &SecretBox,
    sid: Option<AccountSid>,
    auth_token: Option<String>,
    friendly_name: Option<String>,
) -> anyhow::Result<AccountCredentials> {
    if let Some(token) = &auth_token {
        validate_auth_token(token)?;
    }
    let sid = sid.unwrap_or_else(AccountSid::generate);
    let auth_token = auth_token.unwrap_or_else(generate_token);
    let now = Timestamp::now();
    let account = Account {
        sid: sid.clone(),
        friendly_name: friendly_name.clone(),
        auth_token_sealed: secrets.seal_str(&auth_token),
        date_created: now,
        date_updated: now,
    };
    store.create_account(&account).await.map_err(|e| match e {
        StoreError::Conflict(Conflict::SidTaken) => anyhow!("account {sid} already exists"),
        other => anyhow::Error::new(other).context("cannot create the account"),
    })?;
    Ok(AccountCredentials {
        sid,
        auth_token,
        friendly_name,
    })
}

/// Every account, oldest first.
pub async fn list_accounts(store: &dyn Store) -> anyhow::Result<Vec<AccountSummary>> {
    let accounts = store
        .list_accounts()
        .await
        .context("cannot list accounts")?;
    Ok(accounts.iter().map(AccountSummary::from).collect())
}

/// Replace an account's auth token with a fresh one. The old token stops working at once.
pub async fn rotate_auth_token(
    store: &dyn Store,
    secrets: &SecretBox,
    sid: &AccountSid,
) -> anyhow::Result<AccountCredentials> {
    let auth_token = generate_token();
    let account = store
        .set_auth_token(sid, &secrets.seal_str(&auth_token), Timestamp::now())
        .await
        .map_err(|e| not_found_as(e, || format!("unknown account {sid}")))?;
    // Running nodes forget remembered credential checks within this (parley_http::auth).
    tokio::time::sleep(parley_http::auth::CREDENTIAL_CHANGE_WAIT).await;
    Ok(AccountCredentials {
        sid: account.sid,
        auth_token,
        friendly_name: account.friendly_name,
    })
}

/// Create an API key for an existing account.
pub async fn create_api_key(
    store: &dyn Store,
    secrets: &SecretBox,
    account: &AccountSid,
    friendly_name: Option<String>,
) -> anyhow::Result<ApiKeyCredentials> {
    store
        .fetch_account(account)
        .await
        .map_err(|e| not_found_as(e, || format!("unknown account {account}")))?;
    let secret = generate_token();
    let key = ApiKey {
        sid: ApiKeySid::generate(),
        account_sid: account.clone(),
        friendly_name,
        secret_sealed: secrets.seal_str(&secret),
        date_created: Timestamp::now(),
    };
    let key = store.create_api_key(&key).await.map_err(|e| match e {
        StoreError::InvalidReference(_) | StoreError::NotFound => {
            anyhow!("unknown account {account}")
        }
        other => anyhow::Error::new(other).context("cannot create the API key"),
    })?;
    Ok(ApiKeyCredentials {
        sid: key.sid,
        secret,
        account_sid: key.account_sid,
    })
}

/// An account's API keys, oldest first.
pub async fn list_api_keys(
    store: &dyn Store,
    account: &AccountSid,
) -> anyhow::Result<Vec<ApiKeySummary>> {
    store
        .fetch_account(account)
        .await
        .map_err(|e| not_found_as(e, || format!("unknown account {account}")))?;
    let keys = store
        .list_api_keys(account)
        .await
        .context("cannot list API keys")?;
    Ok(keys.iter().map(ApiKeySummary::from).collect())
}

/// Delete an API key.
pub async fn delete_api_key(store: &dyn Store, sid: &ApiKeySid) -> anyhow::Result<()> {
    store
        .delete_api_key(sid)
        .await
        .map_err(|e| not_found_as(e, || format!("unknown API key {sid}")))?;
    // Running nodes forget remembered credential checks within this (parley_http::auth).
    tokio::time::sleep(parley_http::auth::CREDENTIAL_CHANGE_WAIT).await;
    Ok(())
}

/// What first start did about accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// The database already had accounts.
    Existing,
    /// Created an account with a random SID and token (print them once).
    Generated(AccountCredentials),
    /// Created the account given by `PARLEY_BOOTSTRAP_*`.
    FromEnv(AccountSid),
}

/// On an empty database, create the first account: the one from `PARLEY_BOOTSTRAP_*` if
/// given, else a random one. If another node wins the race for the same SID, that is fine.
pub async fn ensure_first_account(
    store: &dyn Store,
    secrets: &SecretBox,
    bootstrap: Option<&BootstrapAccount>,
) -> anyhow::Result<Bootstrap> {
    if !store
        .list_accounts()
        .await
        .context("cannot list accounts")?
        .is_empty()
    {
        return Ok(Bootstrap::Existing);
    }
    match bootstrap {
        Some(b) => {
            let token = Some(b.auth_token.expose().to_owned());
            match create_account(store, secrets, Some(b.sid.clone()), token, None).await {
                Ok(created) => Ok(Bootstrap::FromEnv(created.sid)),
                Err(e) if store.fetch_account(&b.sid).await.is_ok() => {
                    tracing::debug!(error = %e, "bootstrap account created concurrently");
                    Ok(Bootstrap::Existing)
                }
                Err(e) => Err(e),
            }
        }
        None => Ok(Bootstrap::Generated(
            create_account(store, secrets, None, None, None).await?,
        )),
    }
}

/// `NotFound` becomes `message`; anything else keeps its cause.
fn not_found_as(e: StoreError, message: impl FnOnce() -> String) -> anyhow::Error {
    match e {
        StoreError::NotFound => anyhow!(message()),
        other => anyhow::Error::new(other),
    }
}
