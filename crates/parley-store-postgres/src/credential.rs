//! Push credentials (contract §5): account level, secrets sealed.

use parley_core::credential::Credential;
use parley_core::paging::{Page, PageRequest};
use parley_core::store::{CredentialChange, CredentialStore, StoreResult};
use parley_core::{AccountSid, CredentialSid};
use sqlx::{Postgres, QueryBuilder};

use crate::error::{db, one_row};
use crate::paging::push_keyset;
use crate::rows::{convert_all, CredentialRow, Pg};
use crate::PgStore;

/// Append the `list_credentials` query to `qb` (shared with the query-plan test).
pub(crate) fn push_list_credentials<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    account: &'a AccountSid,
    page: &PageRequest,
) {
    qb.push("select * from credentials where account_sid = ")
        .push_bind(account.as_str());
    push_keyset(qb, page);
}

#[async_trait::async_trait]
impl CredentialStore for PgStore {
    #[tracing::instrument(skip_all, fields(credential.sid = %credential.sid))]
    async fn create_credential(&self, credential: &Credential) -> StoreResult<Credential> {
        let Pg(row): Pg<CredentialRow> = sqlx::query_as(
            "insert into credentials (sid, account_sid, friendly_name, credential_type, sandbox,
                                      secrets_sealed, date_created, date_updated, needs_secret)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             returning *",
        )
        .bind(credential.sid.as_str())
        .bind(credential.account_sid.as_str())
        .bind(credential.friendly_name.as_deref())
        .bind(credential.credential_type.as_str())
        .bind(credential.sandbox)
        .bind(credential.secrets_sealed.as_slice())
        .bind(credential.date_created.unix_micros())
        .bind(credential.date_updated.unix_micros())
        .bind(credential.needs_secret)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(credential.sid = %sid))]
    async fn fetch_credential(
        &self,
        account: &AccountSid,
        sid: &CredentialSid,
    ) -> StoreResult<Credential> {
        let Pg(row): Pg<CredentialRow> =
            sqlx::query_as("select * from credentials where account_sid = $1 and sid = $2")
                .bind(account.as_str())
                .bind(sid.as_str())
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(account.sid = %account))]
    async fn list_credentials(
        &self,
        account: &AccountSid,
        page: &PageRequest,
    ) -> StoreResult<Page<Credential>> {
        let mut qb = QueryBuilder::new("");
        push_list_credentials(&mut qb, account, page);
        let rows: Vec<Pg<CredentialRow>> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    #[tracing::instrument(skip_all, fields(credential.sid = %sid))]
    async fn update_credential(
        &self,
        account: &AccountSid,
        sid: &CredentialSid,
        change: CredentialChange<'_>,
    ) -> StoreResult<Credential> {
        // The row lock is held from the read to the commit: concurrent updates queue up and
        // each applies its change to the previous one's result.
        let mut tx = self.pool.begin().await.map_err(db)?;
        let Pg(row): Pg<CredentialRow> = sqlx::query_as(
            "select * from credentials where account_sid = $1 and sid = $2 for update",
        )
        .bind(account.as_str())
        .bind(sid.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let mut credential: Credential = row.try_into()?;
        change(&mut credential)?;
        let Pg(row): Pg<CredentialRow> = sqlx::query_as(
            "update credentials
             set friendly_name = $3, sandbox = $4, secrets_sealed = $5, date_updated = $6,
                 needs_secret = $7
             where account_sid = $1 and sid = $2
             returning *",
        )
        .bind(account.as_str())
        .bind(sid.as_str())
        .bind(credential.friendly_name.as_deref())
        .bind(credential.sandbox)
        .bind(credential.secrets_sealed.as_slice())
        .bind(credential.date_updated.unix_micros())
        .bind(credential.needs_secret)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(credential.sid = %sid))]
    async fn delete_credential(
        &self,
        account: &AccountSid,
        sid: &CredentialSid,
    ) -> StoreResult<()> {
        // Bindings using it go with it (on delete cascade; docs/BINDINGS.md).
        let done = sqlx::query("delete from credentials where account_sid = $1 and sid = $2")
            .bind(account.as_str())
            .bind(sid.as_str())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        one_row(done.rows_affected())
    }
}
