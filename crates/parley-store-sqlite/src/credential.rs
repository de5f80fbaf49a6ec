//! `CredentialStore`: account-level push credentials; secrets stay sealed.

use crate::lite::{lite_err, lite_write_err, q, Q};
use crate::rows::{convert_all, CredentialRow};
use crate::{push_keyset, SqliteStore};
use parley_core::credential::Credential;
use parley_core::paging::{Page, PageRequest};
use parley_core::store::{Conflict, CredentialChange, CredentialStore, StoreResult};
use parley_core::{AccountSid, CredentialSid};

/// `<head> from credentials where … order by … limit …`.
pub(crate) fn list_query(head: &str, account: &AccountSid, page: &PageRequest) -> Q {
    let mut qb = q(format!("{head} from credentials where account_sid = "));
    qb.push_bind(account.as_str());
    push_keyset(&mut qb, page);
    qb
}

#[async_trait::async_trait]
impl CredentialStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(credential.sid = %credential.sid))]
    async fn create_credential(&self, credential: &Credential) -> StoreResult<Credential> {
        let row: CredentialRow = self
            .write_row(
                q(
                    "insert into credentials (sid, account_sid, friendly_name, credential_type,
                                            sandbox, secrets_sealed, needs_secret,
                                            date_created, date_updated)
                   values (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   returning *",
                )
                .bind(credential.sid.as_str())
                .bind(credential.account_sid.as_str())
                .bind(credential.friendly_name.as_deref())
                .bind(credential.credential_type.as_str())
                .bind(credential.sandbox)
                .bind(&credential.secrets_sealed)
                .bind(credential.needs_secret)
                .bind(credential.date_created.unix_micros())
                .bind(credential.date_updated.unix_micros()),
                |e| lite_write_err(e, Conflict::SidTaken, "account"),
            )
            .await?;
        row.try_into()
    }

    async fn fetch_credential(
        &self,
        account: &AccountSid,
        sid: &CredentialSid,
    ) -> StoreResult<Credential> {
        let row: CredentialRow = self.read_one(
            &q("select * from credentials where account_sid = ? and sid = ?")
                .bind(account.as_str())
                .bind(sid.as_str()),
        )?;
        row.try_into()
    }

    async fn list_credentials(
        &self,
        account: &AccountSid,
        page: &PageRequest,
    ) -> StoreResult<Page<Credential>> {
        let rows: Vec<CredentialRow> = self.read_all(&list_query("select *", account, page))?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    #[tracing::instrument(skip_all, fields(credential.sid = %sid))]
    async fn update_credential(
        &self,
        account: &AccountSid,
        sid: &CredentialSid,
        change: CredentialChange<'_>,
    ) -> StoreResult<Credential> {
        // One write transaction: nobody writes between the read and the write.
        let row: CredentialRow = self
            .write(|c| {
                let row: CredentialRow =
                    q("select * from credentials where account_sid = ? and sid = ?")
                        .bind(account.as_str())
                        .bind(sid.as_str())
                        .one(c)
                        .map_err(lite_err)?;
                let mut credential: Credential = row.try_into()?;
                change(&mut credential)?;
                q(
                    "update credentials set friendly_name = ?, sandbox = ?, secrets_sealed = ?,
                                          needs_secret = ?, date_updated = ?
                   where account_sid = ? and sid = ?
                   returning *",
                )
                .bind(credential.friendly_name.as_deref())
                .bind(credential.sandbox)
                .bind(&credential.secrets_sealed)
                .bind(credential.needs_secret)
                .bind(credential.date_updated.unix_micros())
                .bind(account.as_str())
                .bind(sid.as_str())
                .one(c)
                .map_err(lite_err)
            })
            .await?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(credential.sid = %sid))]
    async fn delete_credential(
        &self,
        account: &AccountSid,
        sid: &CredentialSid,
    ) -> StoreResult<()> {
        // Bindings using it go with it (`on delete cascade`): a binding never points at a
        // missing credential (docs/BINDINGS.md).
        self.write_some(
            q("delete from credentials where account_sid = ? and sid = ?")
                .bind(account.as_str())
                .bind(sid.as_str()),
        )
        .await
    }
}
