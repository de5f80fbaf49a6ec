use crate::credential::Credential;
use crate::paging::{Page, PageRequest};
use crate::store::StoreResult;
use crate::{AccountSid, CredentialSid};

/// Push credentials (account level).
#[async_trait::async_trait]
pub trait CredentialStore: Send + Sync {
    /// Insert a credential.
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
    /// Store every mutable field of `credential` (friendly name, sandbox, sealed secrets, date_updated).
    async fn update_credential(&self, credential: &Credential) -> StoreResult<Credential>;
    /// Delete a credential. Bindings that use it are deleted with it (documented in
    /// docs/BINDINGS.md): a binding never points at a missing credential.
    async fn delete_credential(&self, account: &AccountSid, sid: &CredentialSid)
        -> StoreResult<()>;
}
