//! `SecretStore`: the sealed secrets, for key rotation.

use parley_core::store::{SealedSecret, SecretKind, SecretStore, StoreResult};

use crate::error::db;
use crate::PgStore;

#[async_trait::async_trait]
impl SecretStore for PgStore {
    #[tracing::instrument(skip_all, fields(kind = kind.as_str()))]
    async fn list_sealed_secrets(
        &self,
        kind: SecretKind,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<SealedSecret>> {
        let (table, col) = kind.table_column();
        // The SID columns are `collate "C"`: byte order, as on SQLite.
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(&format!(
            "select sid, {col} from {table} where sid > $1 order by sid limit $2"
        ))
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|(sid, sealed)| SealedSecret { sid, sealed })
            .collect())
    }

    #[tracing::instrument(skip_all, fields(kind = kind.as_str(), sid = %sid))]
    async fn replace_sealed_secret(
        &self,
        kind: SecretKind,
        sid: &str,
        old: &[u8],
        new: &[u8],
    ) -> StoreResult<bool> {
        let (table, col) = kind.table_column();
        let done = sqlx::query(&format!(
            "update {table} set {col} = $1 where sid = $2 and {col} = $3"
        ))
        .bind(new)
        .bind(sid)
        .bind(old)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }
}
