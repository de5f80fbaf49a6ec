//! `SecretStore`: the sealed secrets, for key rotation.

use parley_core::store::{SealedSecret, SecretKind, SecretStore, StoreResult};

use crate::lite::{lite_err, lite_row, q};
use crate::SqliteStore;

struct SecretRow {
    sid: String,
    sealed: Vec<u8>,
}
lite_row!(SecretRow { sid, sealed });

#[async_trait::async_trait]
impl SecretStore for SqliteStore {
    async fn list_sealed_secrets(
        &self,
        kind: SecretKind,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<SealedSecret>> {
        let (table, col) = kind.table_column();
        // SQLite compares text with BINARY (byte order) by default.
        let rows: Vec<SecretRow> = self.read_all(
            &q(format!(
                "select sid, {col} as sealed from {table} where sid > ? order by sid limit ?"
            ))
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit)),
        )?;
        Ok(rows
            .into_iter()
            .map(|r| SealedSecret {
                sid: r.sid,
                sealed: r.sealed,
            })
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
        let query = q(format!(
            "update {table} set {col} = ? where sid = ? and {col} = ?"
        ))
        .bind(new)
        .bind(sid)
        .bind(old);
        let changed = self.write(|c| query.execute(c).map_err(lite_err)).await?;
        Ok(changed == 1)
    }
}
