//! `AccountStore`: accounts and API keys.

use parley_core::account::{Account, ApiKey};
use parley_core::store::{AccountStore, Conflict, StoreResult};
use parley_core::{AccountSid, ApiKeySid, Timestamp};

use crate::lite::{lite_err, lite_write_err, q};
use crate::rows::{convert_all, AccountRow, ApiKeyRow};
use crate::SqliteStore;

#[async_trait::async_trait]
impl AccountStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(account.sid = %account.sid))]
    async fn create_account(&self, account: &Account) -> StoreResult<Account> {
        let row: AccountRow = self
            .write_row(
                q(
                    "insert into accounts (sid, friendly_name, auth_token_sealed, date_created,
                                         date_updated)
                   values (?, ?, ?, ?, ?)
                   returning *",
                )
                .bind(account.sid.as_str())
                .bind(account.friendly_name.as_deref())
                .bind(&account.auth_token_sealed)
                .bind(account.date_created.unix_micros())
                .bind(account.date_updated.unix_micros()),
                |e| lite_write_err(e, Conflict::SidTaken, "account"),
            )
            .await?;
        row.try_into()
    }

    async fn fetch_account(&self, sid: &AccountSid) -> StoreResult<Account> {
        let row: AccountRow =
            self.read_one(&q("select * from accounts where sid = ?").bind(sid.as_str()))?;
        row.try_into()
    }

    async fn list_accounts(&self) -> StoreResult<Vec<Account>> {
        let rows: Vec<AccountRow> =
            self.read_all(&q("select * from accounts order by date_created, sid"))?;
        convert_all(rows)
    }

    #[tracing::instrument(skip_all, fields(account.sid = %sid))]
    async fn set_auth_token(
        &self,
        sid: &AccountSid,
        sealed: &[u8],
        now: Timestamp,
    ) -> StoreResult<Account> {
        let row: AccountRow = self
            .write_row(
                q(
                    "update accounts set auth_token_sealed = ?, date_updated = ? where sid = ?
                   returning *",
                )
                .bind(sealed)
                .bind(now.unix_micros())
                .bind(sid.as_str()),
                lite_err,
            )
            .await?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(account.sid = %key.account_sid))]
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<ApiKey> {
        let row: ApiKeyRow = self
            .write_row(
                q(
                    "insert into api_keys (sid, account_sid, friendly_name, secret_sealed,
                                         date_created)
                   values (?, ?, ?, ?, ?)
                   returning *",
                )
                .bind(key.sid.as_str())
                .bind(key.account_sid.as_str())
                .bind(key.friendly_name.as_deref())
                .bind(&key.secret_sealed)
                .bind(key.date_created.unix_micros()),
                |e| lite_write_err(e, Conflict::SidTaken, "account"),
            )
            .await?;
        row.try_into()
    }

    async fn fetch_api_key(&self, sid: &ApiKeySid) -> StoreResult<ApiKey> {
        let row: ApiKeyRow =
            self.read_one(&q("select * from api_keys where sid = ?").bind(sid.as_str()))?;
        row.try_into()
    }

    async fn list_api_keys(&self, account: &AccountSid) -> StoreResult<Vec<ApiKey>> {
        let rows: Vec<ApiKeyRow> = self.read_all(
            &q("select * from api_keys where account_sid = ? order by date_created, sid")
                .bind(account.as_str()),
        )?;
        convert_all(rows)
    }

    async fn delete_api_key(&self, sid: &ApiKeySid) -> StoreResult<()> {
        self.write_some(q("delete from api_keys where sid = ?").bind(sid.as_str()))
            .await
    }

    async fn credential_version(&self) -> StoreResult<i64> {
        self.read_one(&q("select version from credential_version where id = 1"))
    }
}
