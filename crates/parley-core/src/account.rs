//! Accounts and API keys: the tenants and their credentials. Secrets are stored sealed
//! (see [`crate::crypto`]); this crate never sees them in clear except through a `SecretBox`.

use crate::{AccountSid, ApiKeySid, Timestamp};

/// A tenant. Every other row belongs to exactly one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// `AC…`
    pub sid: AccountSid,
    /// Human name.
    pub friendly_name: Option<String>,
    /// The auth token, sealed.
    pub auth_token_sealed: Vec<u8>,
    /// Created.
    pub date_created: Timestamp,
    /// Last changed (token rotation).
    pub date_updated: Timestamp,
}

/// An API key of an account: a second credential pair, and the signing key of Access Tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// `SK…`
    pub sid: ApiKeySid,
    /// Owner.
    pub account_sid: AccountSid,
    /// Human name.
    pub friendly_name: Option<String>,
    /// The secret, sealed.
    pub secret_sealed: Vec<u8>,
    /// Created.
    pub date_created: Timestamp,
}
