//! Accounts' auth tokens, the signing key of every webhook call (webhooks.md §5), opened from
//! their sealed form and kept briefly: one cache per node, shared by the post-event sender
//! ([`crate::Worker`]) and the pre-event calls of the HTTP layer.
//!
//! A call signed within [`TOKEN_TTL`] of a token rotation may carry the old token's signature
//! (receivers then reject it; a post-event is retried only on the outcomes of webhooks.md §4).
//! This cache only ever signs; it never decides whether a request is authenticated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use parley_core::crypto::SecretBox;
use parley_core::store::{Store, StoreError};
use parley_core::AccountSid;

/// How long an opened auth token is reused before it is read again.
pub const TOKEN_TTL: Duration = Duration::from_secs(5);

/// Entries kept at most; past it, expired ones go (all of them if none has expired).
const MAX_ENTRIES: usize = 10_000;

/// The opened auth tokens of accounts, each reused for [`TOKEN_TTL`].
pub struct AuthTokens {
    store: Arc<dyn Store>,
    secrets: SecretBox,
    ttl: Duration,
    entries: Mutex<HashMap<AccountSid, (Option<String>, Instant)>>,
}

impl std::fmt::Debug for AuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthTokens")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl AuthTokens {
    /// Tokens read from `store`, opened with `secrets`, kept [`TOKEN_TTL`].
    pub fn new(store: Arc<dyn Store>, secrets: SecretBox) -> Self {
        Self::with_ttl(store, secrets, TOKEN_TTL)
    }

    /// As [`AuthTokens::new`], kept `ttl` (tests).
    pub fn with_ttl(store: Arc<dyn Store>, secrets: SecretBox, ttl: Duration) -> Self {
        Self {
            store,
            secrets,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The account's auth token; `None` when the account is gone or its token cannot be opened
    /// (logged). Read from the store at most once per account every TTL.
    pub async fn get(&self, account: &AccountSid) -> Result<Option<String>, StoreError> {
        if let Some(token) = self.cached(account) {
            return Ok(token);
        }
        let token = match self.store.fetch_account(account).await {
            Ok(acc) => match self.secrets.open_str(&acc.auth_token_sealed) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::error!(account.sid = %account, error = %e,
                        "cannot open the account's auth token to sign webhooks");
                    None
                }
            },
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(account.clone(), (token.clone(), Instant::now()));
        Ok(token)
    }

    fn cached(&self, account: &AccountSid) -> Option<Option<String>> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(account)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(token, _)| token.clone())
    }
}
