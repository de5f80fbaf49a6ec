//! Every sealed secret, by kind: what re-sealing under a new server key (`parley secret-key
//! rotate`) walks through.

use crate::store::StoreResult;

/// The columns that hold sealed secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// `accounts.auth_token_sealed`, by account SID.
    AuthToken,
    /// `api_keys.secret_sealed`, by API key SID.
    ApiKeySecret,
    /// `credentials.secrets_sealed`, by credential SID (empty when a credential has none).
    CredentialSecrets,
}

impl SecretKind {
    /// Every kind.
    pub const ALL: [SecretKind; 3] = [
        SecretKind::AuthToken,
        SecretKind::ApiKeySecret,
        SecretKind::CredentialSecrets,
    ];

    /// A name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::AuthToken => "account auth token",
            SecretKind::ApiKeySecret => "API key secret",
            SecretKind::CredentialSecrets => "push credential secrets",
        }
    }

    /// The table and the sealed column that hold this kind (the same on every backend).
    pub fn table_column(self) -> (&'static str, &'static str) {
        match self {
            SecretKind::AuthToken => ("accounts", "auth_token_sealed"),
            SecretKind::ApiKeySecret => ("api_keys", "secret_sealed"),
            SecretKind::CredentialSecrets => ("credentials", "secrets_sealed"),
        }
    }
}

/// One stored sealed secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// The SID of the row holding it.
    pub sid: String,
    /// The sealed bytes as stored.
    pub sealed: Vec<u8>,
}

/// Reading and replacing sealed secrets, for key rotation. Each call is its own short
/// transaction, so a running server keeps serving while a rotation walks the rows.
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync {
    /// Up to `limit` secrets of `kind` whose SID sorts after `after` (all when `None`), in SID
    /// order (byte order, the same on every backend).
    async fn list_sealed_secrets(
        &self,
        kind: SecretKind,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<SealedSecret>>;

    /// Replace the sealed secret of `kind` on row `sid` with `new` if it still holds exactly
    /// `old` (a compare-and-set, so a concurrent change such as `account rotate-token` is never
    /// overwritten). True when it was replaced; false when the row changed or is gone. Nothing
    /// else on the row changes (`date_updated` included).
    async fn replace_sealed_secret(
        &self,
        kind: SecretKind,
        sid: &str,
        old: &[u8],
        new: &[u8],
    ) -> StoreResult<bool>;
}
