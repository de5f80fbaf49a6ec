//! The storage contract: one small trait per resource, one object-safe [`Store`] supertrait.
//! Both backends implement every trait and pass the shared conformance suite
//! ([`testsuite`], feature `testsuite`).
//!
//! Tenancy: every read and write of a service's children is scoped by account *and* service,
//! so a caller holding another account's credentials sees `NotFound`, never the row.

mod account;
mod binding;
mod channel_webhook;
mod chat;
mod credential;
mod presence;
mod push;
mod role;
pub mod rows;
mod secret;
mod service;
mod user;
mod webhook_call;

#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use account::AccountStore;
pub use binding::BindingStore;
pub use channel_webhook::ChannelWebhookStore;
pub use chat::{ChannelStore, EventStore, InviteStore, MemberStore, MessageStore};
pub use credential::{CredentialChange, CredentialStore};
pub use presence::{PresenceKey, PresenceStore};
pub use push::PushStore;
pub use role::RoleStore;
pub use secret::{SealedSecret, SecretKind, SecretStore};
pub use service::ServiceStore;
pub use user::UserStore;
pub use webhook_call::WebhookStore;

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// What went wrong in a store call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row (or it belongs to another account or service).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken.
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    /// A counter limit would be exceeded.
    #[error("limit exceeded: {0:?}")]
    LimitExceeded(Limit),
    /// A referenced row does not exist or is not acceptable.
    #[error("invalid reference: {0}")]
    InvalidReference(&'static str),
    /// Database or decoding failure.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Which uniqueness rule was broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// A user with this identity exists in the service (Chat 50201).
    UserIdentityTaken,
    /// An account or API key with this SID exists.
    SidTaken,
    /// A channel with this unique name exists in the service (Chat 50307).
    ChannelUniqueNameTaken,
    /// The identity is already a member of the channel (Chat 50404).
    MemberExists,
    /// The identity is already invited to the channel (Chat 50212).
    InviteExists,
    /// A change-log lease is no longer held by the caller (it expired and another owner claimed
    /// the service): the work done under that claim must not be recorded.
    LeaseLost,
}

/// Which counter limit a change would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `limits.channel_members` (Chat 50403).
    ChannelMembers,
    /// `limits.user_channels` (Chat 50208).
    UserChannels,
    /// Five webhooks per channel (Chat 50321).
    ChannelWebhooks,
}

/// Everything a Parley server needs from storage.
#[async_trait::async_trait]
pub trait Store:
    AccountStore
    + ServiceStore
    + RoleStore
    + UserStore
    + CredentialStore
    + BindingStore
    + ChannelStore
    + MemberStore
    + MessageStore
    + InviteStore
    + ChannelWebhookStore
    + EventStore
    + PushStore
    + PresenceStore
    + WebhookStore
    + SecretStore
    + Send
    + Sync
{
    /// Cheap round trip to the database, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;
    /// Pool gauges for `/metrics`: (connections open, connections idle).
    fn pool_stats(&self) -> (u32, u32);
    /// Which backend: `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
    /// The signals between the nodes sharing this store ([`crate::signal`]): every commit that
    /// appended change-log events publishes [`crate::signal::Signal::Changed`] on it.
    fn signals(&self) -> &dyn crate::signal::SignalBus;
}
