use crate::account::{Account, ApiKey};
use crate::store::StoreResult;
use crate::{AccountSid, ApiKeySid, Timestamp};

/// Accounts and API keys. Secrets arrive and leave sealed.
#[async_trait::async_trait]
pub trait AccountStore: Send + Sync {
    /// Insert an account (`Conflict::SidTaken` if the SID exists).
    async fn create_account(&self, account: &Account) -> StoreResult<Account>;
    /// Fetch one account.
    async fn fetch_account(&self, sid: &AccountSid) -> StoreResult<Account>;
    /// Every account, oldest first.
    async fn list_accounts(&self) -> StoreResult<Vec<Account>>;
    /// Replace the sealed auth token.
    async fn set_auth_token(
        &self,
        sid: &AccountSid,
        sealed: &[u8],
        now: Timestamp,
    ) -> StoreResult<Account>;
    /// Insert an API key (the account must exist: `InvalidReference` otherwise).
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<ApiKey>;
    /// Fetch one API key.
    async fn fetch_api_key(&self, sid: &ApiKeySid) -> StoreResult<ApiKey>;
    /// An account's API keys, oldest first.
    async fn list_api_keys(&self, account: &AccountSid) -> StoreResult<Vec<ApiKey>>;
    /// Delete an API key.
    async fn delete_api_key(&self, sid: &ApiKeySid) -> StoreResult<()>;
    /// The credential version: a number the database moves (a trigger, whoever writes) whenever
    /// an account or an API key is updated or deleted. Nodes that remember credential checks
    /// forget them when it moves (`parley_http::auth`).
    async fn credential_version(&self) -> StoreResult<i64>;
}
