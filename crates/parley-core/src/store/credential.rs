use crate::credential::Credential;
use crate::paging::{Page, PageRequest};
use crate::store::StoreResult;
use crate::{AccountSid, CredentialSid};

/// A change applied by [`CredentialStore::update_credential`] to the stored credential.
pub type CredentialChange<'a> = &'a (dyn Fn(&mut Credential) -> StoreResult<()> + Send + Sync);

/// Push credentials (account level).
#[async_trait::async_trait]
pub trait CredentialStore: Send + Sync {
    /// Insert a credential, with its SID, dates and `needs_secret` as given (the import keeps
    /// Twilio's). A SID already stored (in any account) is `Conflict::SidTaken` and the stored
    /// credential stays as it was.
    async fn create_credential(&self, credential: &Credential) -> StoreResult<Credential>;
    /// Fetch one.
    async fn fetch_credential(
        &self,
        account: &AccountSid,
        sid: &CredentialSid,
    ) -> StoreResult<Credential>;
    /// List by `(date_created, sid)`.
    async fn list_credentials(
        &self,
        account: &AccountSid,
        page: &PageRequest,
    ) -> StoreResult<Page<Credential>>;
    /// Update a credential atomically: read the current row under the write lock (`BEGIN
    /// IMMEDIATE` on SQLite, `SELECT … FOR UPDATE` on PostgreSQL), apply `change` to it, and
    /// store its mutable fields (friendly name, sandbox, sealed secrets, `needs_secret`,
    /// date_updated) in the same transaction, so concurrent updates of different fields all
    /// survive. An `Err` from `change` leaves the row as it was and is returned as is.
    async fn update_credential(
        &self,
        account: &AccountSid,
        sid: &CredentialSid,
        change: CredentialChange<'_>,
    ) -> StoreResult<Credential>;
    /// Delete a credential. Bindings that use it are deleted with it (documented in
    /// docs/BINDINGS.md): a binding never points at a missing credential.
    async fn delete_credential(&self, account: &AccountSid, sid: &CredentialSid)
        -> StoreResult<()>;
}
