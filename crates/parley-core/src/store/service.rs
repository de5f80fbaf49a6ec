use crate::paging::{Page, PageRequest};
use crate::service::{NewService, Service, ServicePatch};
use crate::store::StoreResult;
use crate::{AccountSid, ServiceSid, Timestamp};

/// Chat services.
#[async_trait::async_trait]
pub trait ServiceStore: Send + Sync {
    /// Insert the service and its default roles in one transaction.
    async fn create_service(&self, new: &NewService) -> StoreResult<Service>;
    /// Fetch a service of `account`.
    async fn fetch_service(&self, account: &AccountSid, sid: &ServiceSid) -> StoreResult<Service>;
    /// List `account`'s services by `(date_created, sid)`.
    async fn list_services(
        &self,
        account: &AccountSid,
        page: &PageRequest,
    ) -> StoreResult<Page<Service>>;
    /// Apply `patch` to the service as stored, atomically: read, change and write happen in one
    /// transaction holding the row's lock (PostgreSQL `SELECT … FOR UPDATE`, SQLite's single
    /// write transaction), so concurrent patches of different fields all survive. Sets
    /// `date_updated` to `now`; returns the stored row.
    async fn patch_service(
        &self,
        account: &AccountSid,
        sid: &ServiceSid,
        patch: &ServicePatch,
        now: Timestamp,
    ) -> StoreResult<Service>;
    /// Delete a service and everything it owns (roles, users, bindings, …).
    async fn delete_service(&self, account: &AccountSid, sid: &ServiceSid) -> StoreResult<()>;
}
