use crate::paging::{Page, PageRequest};
use crate::service::{NewService, Service};
use crate::store::StoreResult;
use crate::{AccountSid, ServiceSid};

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
    /// Store every field of `service` (matched by account and SID); returns the stored row.
    async fn update_service(&self, service: &Service) -> StoreResult<Service>;
    /// Delete a service and everything it owns (roles, users, bindings, …).
    async fn delete_service(&self, account: &AccountSid, sid: &ServiceSid) -> StoreResult<()>;
}
