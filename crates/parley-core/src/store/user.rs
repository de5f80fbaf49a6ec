use crate::paging::{Page, PageRequest};
use crate::store::StoreResult;
use crate::user::{User, UserRef, UserUpdate, UserView};
use crate::{AccountSid, ServiceSid, Timestamp};

/// Users of a service.
#[async_trait::async_trait]
pub trait UserStore: Send + Sync {
    /// Insert a user (`Conflict::UserIdentityTaken` when the identity exists in the service;
    /// `NotFound` when the service does not exist in the account).
    async fn create_user(&self, user: &User) -> StoreResult<User>;
    /// The user with `user.identity`, inserting `user` if there is none. Safe under concurrency:
    /// many simultaneous calls for one identity yield one row. Returns (user, created).
    async fn get_or_create_user(&self, user: &User) -> StoreResult<(User, bool)>;
    /// Fetch by SID or identity.
    async fn fetch_user(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
    ) -> StoreResult<User>;
    /// Fetch by SID or identity, with what a single-user answer shows besides the row — its
    /// joined channels, and its bindings when the service has reachability on — in one read
    /// (the same figures as `fetch_user`, `joined_channel_counts`, `fetch_service` and
    /// `count_user_bindings` in turn). `NotFound` as `fetch_user`.
    async fn fetch_user_view(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
    ) -> StoreResult<UserView>;
    /// List by `(date_created, sid)`.
    async fn list_users(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        page: &PageRequest,
    ) -> StoreResult<Page<User>>;
    /// Apply `update` (fields that are `None` stay).
    async fn update_user(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
        update: &UserUpdate,
        now: Timestamp,
    ) -> StoreResult<User>;
    /// Delete a user with its bindings, memberships and invites. Each membership gets a
    /// `removed_from_channel` event (no actor) in the same transaction, as leaving does.
    async fn delete_user(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
    ) -> StoreResult<()>;
}
