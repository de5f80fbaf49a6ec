use crate::event::Origin;
use crate::paging::{Page, PageRequest};
use crate::store::StoreResult;
use crate::user::{User, UserRef, UserUpdate, UserView};
use crate::{AccountSid, ServiceSid, Timestamp};

/// Users of a service.
#[async_trait::async_trait]
pub trait UserStore: Send + Sync {
    /// Insert a user (`Conflict::UserIdentityTaken` when the identity exists in the service;
    /// `NotFound` when the service does not exist in the account). Appends `user_added`.
    async fn create_user(&self, user: &User, origin: &Origin) -> StoreResult<User>;
    /// The user with `user.identity`, inserting `user` if there is none. Safe under concurrency:
    /// many simultaneous calls for one identity yield one row. Returns (user, created); appends
    /// `user_added` only when it created the user.
    async fn get_or_create_user(&self, user: &User, origin: &Origin) -> StoreResult<(User, bool)>;
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
    /// Apply `update` (fields that are `None` stay). Appends `user_updated`.
    async fn update_user(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
        update: &UserUpdate,
        now: Timestamp,
        origin: &Origin,
    ) -> StoreResult<User>;
    /// Delete a user with its bindings, memberships and invites. Each membership gets a
    /// `removed_from_channel` event (actor: `origin.identity`), as leaving does, then the user
    /// its `user_removed` (the user as it was), all in the same transaction.
    async fn delete_user(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
        origin: &Origin,
    ) -> StoreResult<()>;
}
