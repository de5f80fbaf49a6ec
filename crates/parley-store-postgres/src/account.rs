//! Accounts and API keys.

use parley_core::account::{Account, ApiKey};
use parley_core::store::{AccountStore, StoreResult};
use parley_core::{AccountSid, ApiKeySid, Timestamp};

use crate::error::db;
use crate::rows::{convert_all, AccountRow, ApiKeyRow, Pg};
use crate::PgStore;

#[async_trait::async_trait]
impl AccountStore for PgStore {
    #[tracing::instrument(skip_all, fields(account.sid = %account.sid))]
    async fn create_account(&self, account: &Account) -> StoreResult<Account> {
        let Pg(row): Pg<AccountRow> = sqlx::query_as(
            "insert into accounts (sid, friendly_name, auth_token_sealed, date_created, date_updated)
             values ($1, $2, $3, $4, $5)
             returning *",
        )
        .bind(account.sid.as_str())
        .bind(account.friendly_name.as_deref())
        .bind(account.auth_token_sealed.as_slice())
        .bind(account.date_created.unix_micros())
        .bind(account.date_updated.unix_micros())
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(account.sid = %sid))]
    async fn fetch_account(&self, sid: &AccountSid) -> StoreResult<Account> {
        let Pg(row): Pg<AccountRow> = sqlx::query_as("select * from accounts where sid = $1")
            .bind(sid.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all)]
    async fn list_accounts(&self) -> StoreResult<Vec<Account>> {
        let rows: Vec<Pg<AccountRow>> =
            sqlx::query_as("select * from accounts order by date_created, sid")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        convert_all(rows)
    }

    #[tracing::instrument(skip_all, fields(account.sid = %sid))]
    async fn set_auth_token(
        &self,
        sid: &AccountSid,
        sealed: &[u8],
        now: Timestamp,
    ) -> StoreResult<Account> {
        let Pg(row): Pg<AccountRow> = sqlx::query_as(
            "update accounts set auth_token_sealed = $2, date_updated = $3
             where sid = $1
             returning *",
        )
        .bind(sid.as_str())
        .bind(sealed)
        .bind(now.unix_micros())
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(account.sid = %key.account_sid, api_key.sid = %key.sid))]
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<ApiKey> {
        let Pg(row): Pg<ApiKeyRow> = sqlx::query_as(
            "insert into api_keys (sid, account_sid, friendly_name, secret_sealed, date_created)
             values ($1, $2, $3, $4, $5)
             returning *",
        )
        .bind(key.sid.as_str())
        .bind(key.account_sid.as_str())
        .bind(key.friendly_name.as_deref())
        .bind(key.secret_sealed.as_slice())
        .bind(key.date_created.unix_micros())
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(api_key.sid = %sid))]
    async fn fetch_api_key(&self, sid: &ApiKeySid) -> StoreResult<ApiKey> {
        let Pg(row): Pg<ApiKeyRow> = sqlx::query_as("select * from api_keys where sid = $1")
            .bind(sid.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(account.sid = %account))]
    async fn list_api_keys(&self, account: &AccountSid) -> StoreResult<Vec<ApiKey>> {
        let rows: Vec<Pg<ApiKeyRow>> = sqlx::query_as(
            "select * from api_keys where account_sid = $1 order by date_created, sid",
        )
        .bind(account.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        convert_all(rows)
    }

    #[tracing::instrument(skip_all, fields(api_key.sid = %sid))]
    async fn delete_api_key(&self, sid: &ApiKeySid) -> StoreResult<()> {
        let done = sqlx::query("delete from api_keys where sid = $1")
            .bind(sid.as_str())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        crate::error::one_row(done.rows_affected())
    }

    async fn credential_version(&self) -> StoreResult<i64> {
        sqlx::query_scalar("select version from credential_version where id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }
}
