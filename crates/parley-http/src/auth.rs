//! HTTP Basic auth (contract §0.1): Account SID + Auth Token, or API Key SID + secret.
//! Secrets are stored sealed; opened secrets are cached briefly (5 s) so a request costs no
//! decryption and usually no query. A rotated token takes effect on every node within that TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use parley_core::crypto::secrets_equal;
use parley_core::store::StoreError;
use parley_core::{AccountSid, ApiKeySid};

use crate::error::ApiError;
use crate::AppState;

const CACHE_TTL: Duration = Duration::from_secs(5);
const CACHE_MAX: usize = 10_000;

/// The caller, authenticated.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The account the credentials belong to.
    pub account_sid: AccountSid,
}

#[derive(Clone)]
struct Entry {
    secret: String,
    account_sid: AccountSid,
    at: Instant,
}

/// Short-lived cache of opened secrets, keyed by username (AC… or SK…).
#[derive(Default)]
pub struct AuthCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl AuthCache {
    fn get(&self, user: &str) -> Option<Entry> {
        let map = self.entries.lock().ok()?;
        map.get(user)
            .filter(|e| e.at.elapsed() < CACHE_TTL)
            .cloned()
    }

    fn put(&self, user: &str, entry: Entry) {
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= CACHE_MAX {
                map.retain(|_, e| e.at.elapsed() < CACHE_TTL);
                if map.len() >= CACHE_MAX {
                    map.clear();
                }
            }
            map.insert(user.to_owned(), entry);
        }
    }
}

/// Split `Authorization: Basic …` into (user, password).
pub fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// Look up and open the secret of `user` (an AC or SK SID); `None` if there is no such user.
async fn load(state: &AppState, user: &str) -> Result<Option<Entry>, ApiError> {
    if let Some(e) = state.auth_cache.get(user) {
        return Ok(Some(e));
    }
    let opened = if let Ok(sid) = AccountSid::parse(user) {
        match state.store.fetch_account(&sid).await {
            Ok(acc) => Some((acc.auth_token_sealed, acc.sid)),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        }
    } else if let Ok(sid) = ApiKeySid::parse(user) {
        match state.store.fetch_api_key(&sid).await {
            Ok(key) => Some((key.secret_sealed, key.account_sid)),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let Some((sealed, account_sid)) = opened else {
        return Ok(None);
    };
    let secret = state
        .secrets
        .open_str(&sealed)
        .map_err(ApiError::internal)?;
    let entry = Entry {
        secret,
        account_sid,
        at: Instant::now(),
    };
    state.auth_cache.put(user, entry.clone());
    Ok(Some(entry))
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some((user, pass)) = basic_credentials(parts) else {
            return Err(ApiError::unauthorized().into_response());
        };
        let entry = load(state, &user)
            .await
            .map_err(IntoResponse::into_response)?;
        let Some(entry) = entry else {
            return Err(ApiError::unauthorized().into_response());
        };
        if !secrets_equal(entry.secret.as_bytes(), pass.as_bytes()) {
            return Err(ApiError::unauthorized().into_response());
        }
        if let Some(wait) = state.limiter.check(&entry.account_sid) {
            let mut res = ApiError::new(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests")
                .into_response();
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Err(res);
        }
        Ok(Self {
            account_sid: entry.account_sid,
        })
    }
}

/// Per-account token bucket (per node: with N nodes the effective limit is N× this).
pub struct RateLimiter {
    per_sec: Option<u32>,
    buckets: Mutex<HashMap<AccountSid, (f64, Instant)>>,
}

impl RateLimiter {
    /// `None` disables limiting.
    pub fn new(per_sec: Option<u32>) -> Self {
        Self {
            per_sec: per_sec.filter(|n| *n > 0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `None` if the request may go ahead, else how long to wait.
    pub fn check(&self, account: &AccountSid) -> Option<Duration> {
        let rate = f64::from(self.per_sec?);
        let mut map = self.buckets.lock().ok()?;
        let now = Instant::now();
        let (tokens, last) = map.entry(account.clone()).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_burst_then_refuses() {
        let l = RateLimiter::new(Some(3));
        let a = AccountSid::generate();
        assert!(l.check(&a).is_none());
        assert!(l.check(&a).is_none());
        assert!(l.check(&a).is_none());
        let wait = l.check(&a).expect("limited");
        assert!(wait <= Duration::from_secs(1));
        assert!(
            l.check(&AccountSid::generate()).is_none(),
            "other accounts unaffected"
        );
        assert!(RateLimiter::new(None).check(&a).is_none());
    }
}
