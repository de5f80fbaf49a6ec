use crate::binding::{Binding, BindingFilter, NewBinding, Registered};
use crate::paging::{Page, PageRequest};
use crate::store::StoreResult;
use crate::{AccountSid, BindingSid, ServiceSid, Timestamp};

/// Push bindings.
#[async_trait::async_trait]
pub trait BindingStore: Send + Sync {
    /// Register a device, in one transaction:
    /// 1. any binding of the service with the same (binding_type, address) but a different
    ///    (identity, endpoint) is deleted — a device token belongs to one user per service;
    /// 2. the binding with the same (service, identity, endpoint, binding_type) is updated
    ///    (address, credential, message types, date_updated; SID kept), or `new` is inserted;
    /// 3. beyond `max_per_user` bindings for the user, the least recently updated are deleted.
    ///
    /// Concurrent identical registrations leave exactly one binding.
    async fn register_binding(&self, new: &NewBinding) -> StoreResult<Registered>;
    /// Fetch one binding of the service.
    async fn fetch_binding(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &BindingSid,
    ) -> StoreResult<Binding>;
    /// List by `(date_created, sid)` with a filter.
    async fn list_bindings(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        filter: &BindingFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Binding>>;
    /// Delete one binding.
    async fn delete_binding(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &BindingSid,
    ) -> StoreResult<()>;
    /// Number of bindings a user has (for `is_notifiable`).
    async fn count_user_bindings(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &crate::UserSid,
    ) -> StoreResult<u64>;
    /// Delete bindings whose `date_updated` is older than `cutoff`, at most `limit` rows per call.
    /// Safe to run on several nodes at once. Returns how many were deleted.
    async fn delete_stale_bindings(&self, cutoff: Timestamp, limit: u32) -> StoreResult<u64>;
}
