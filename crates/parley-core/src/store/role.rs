use crate::paging::{Page, PageRequest};
use crate::role::{NewRole, Role};
use crate::store::StoreResult;
use crate::{AccountSid, RoleSid, ServiceSid, Timestamp};

/// Roles of a service.
#[async_trait::async_trait]
pub trait RoleStore: Send + Sync {
    /// Insert a role (the service must exist in the account: `NotFound` otherwise).
    async fn create_role(&self, role: &NewRole) -> StoreResult<Role>;
    /// Fetch a role.
    async fn fetch_role(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &RoleSid,
    ) -> StoreResult<Role>;
    /// List roles by `(date_created, sid)`.
    async fn list_roles(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        page: &PageRequest,
    ) -> StoreResult<Page<Role>>;
    /// Replace a role's permissions.
    async fn update_role_permissions(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &RoleSid,
        permissions: &[String],
        now: Timestamp,
    ) -> StoreResult<Role>;
    /// Delete a role. Users holding it keep a dangling `role_sid` set to null.
    async fn delete_role(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &RoleSid,
    ) -> StoreResult<()>;
}
