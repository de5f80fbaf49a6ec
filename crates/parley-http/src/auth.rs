//! HTTP Basic auth (contract §0.1): Account SID + Auth Token, or API Key SID + secret.
//! Secrets are stored sealed. Every request reads the stored (sealed) secret, so a rotated token
//! or a deleted key stops working at once, on every node; what is cached is only the opening of
//! a sealed secret (keyed by the sealed bytes themselves, so a changed secret is never matched
//! against its old opened form).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
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
}

/// Opened secrets, keyed by username (AC… or SK…) and valid only for the sealed value they were
/// opened from.
#[derive(Default)]
pub struct AuthCache {
    entries: Mutex<HashMap<String, (Vec<u8>, String)>>,
}

impl AuthCache {
    fn opened(&self, user: &str, sealed: &[u8]) -> Option<String> {
        let map = self.entries.lock().ok()?;
        map.get(user)
            .filter(|(s, _)| s.as_slice() == sealed)
            .map(|(_, secret)| secret.clone())
    }

    fn put(&self, user: &str, sealed: Vec<u8>, secret: String) {
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= CACHE_MAX {
                map.clear();
            }
            map.insert(user.to_owned(), (sealed, secret));
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

/// Look up the secret of `user` (an AC or SK SID) as stored now, and open it (reusing an earlier
/// opening of the same sealed value); `None` if there is no such user.
async fn load(state: &AppState, user: &str) -> Result<Option<Entry>, ApiError> {
    let stored = if let Ok(sid) = AccountSid::parse(user) {
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
    let Some((sealed, account_sid)) = stored else {
        return Ok(None);
    };
    if let Some(secret) = state.auth_cache.opened(user, &sealed) {
        return Ok(Some(Entry {
            secret,
            account_sid,
        }));
    }
    let secret = state
        .secrets
        .open_str(&sealed)
        .map_err(ApiError::internal)?;
    state.auth_cache.put(user, sealed, secret.clone());
    Ok(Some(Entry {
        secret,
        account_sid,
    }))
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
            return Err(too_many_requests(wait));
        }
        Ok(Self {
            account_sid: entry.account_sid,
        })
    }
}

/// 429 / 20429 with `Retry-After` (whole seconds, at least 1).
fn too_many_requests(wait: Duration) -> Response {
    let mut res =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests").into_response();
    set_retry_after(&mut res, wait);
    res
}

fn set_retry_after(res: &mut Response, wait: Duration) {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// Addresses remembered by the [`FailureLimiter`] at most.
pub const FAILURE_TABLE_MAX: usize = 65_536;

/// Failed logins per client address: a token bucket of `per_min` failures, refilled at `per_min`
/// per minute. An address whose bucket is empty is answered 429 before its credentials are
/// checked; a successful login costs nothing. Per node, and per address as seen by the server:
/// behind a reverse proxy every client shares the proxy's address (and so its bucket).
/// IPv6 addresses count per /64 (one host usually owns a whole /64).
pub struct FailureLimiter {
    per_min: Option<u32>,
    /// How many addresses the table holds (read without the lock: 0 = nobody is limited).
    len: AtomicUsize,
    table: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl FailureLimiter {
    /// `None` (or 0) disables limiting.
    pub fn new(per_min: Option<u32>) -> Self {
        Self {
            per_min: per_min.filter(|n| *n > 0),
            len: AtomicUsize::new(0),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// The bucket an address counts in.
    fn key(ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
            v4 => v4,
        }
    }

    /// Refill `bucket` up to `cap` for the time since it was last touched.
    fn refill(cap: f64, bucket: &mut (f64, Instant), now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.1).as_secs_f64();
        bucket.0 = (bucket.0 + elapsed * cap / 60.0).min(cap);
        bucket.1 = now;
    }

    /// `None` if `ip` may try to log in, else how long it must wait.
    pub fn check(&self, ip: IpAddr) -> Option<Duration> {
        let cap = f64::from(self.per_min?);
        if self.len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut table = self.table.lock().ok()?;
        let bucket = table.get_mut(&Self::key(ip))?;
        Self::refill(cap, bucket, Instant::now());
        if bucket.0 >= 1.0 {
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - bucket.0) * 60.0 / cap))
        }
    }

    /// Record a failed login from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let Some(per_min) = self.per_min else { return };
        let cap = f64::from(per_min);
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        let key = Self::key(ip);
        let now = Instant::now();
        if table.len() >= FAILURE_TABLE_MAX && !table.contains_key(&key) {
            // Forget the addresses whose buckets have refilled; if a spray of addresses still
            // fills the table, start over (memory stays bounded).
            table.retain(|_, bucket| {
                Self::refill(cap, bucket, now);
                bucket.0 < cap
            });
            if table.len() >= FAILURE_TABLE_MAX {
                table.clear();
            }
        }
        let bucket = table.entry(key).or_insert((cap, now));
        Self::refill(cap, bucket, now);
        bucket.0 = (bucket.0 - 1.0).max(0.0);
        self.len.store(table.len(), Ordering::Relaxed);
    }
}

/// A request that carries credentials (`Authorization` or `X-Twilio-Token`): a login attempt,
/// limited per client address by the [`FailureLimiter`] (checked in `ops::track`, so the limit
/// costs no extra middleware). An address over the limit is answered 429 / 20429 with
/// `Retry-After` before its credentials are checked; a 401 answer to an attempt counts as a
/// failure. Requests without a known client address (in-process tests) are not limited. Both
/// are counted in `/metrics`.
pub(crate) struct LoginAttempt {
    kind: &'static str,
    ip: Option<IpAddr>,
}

impl LoginAttempt {
    /// `None` when `req` carries no credentials.
    pub(crate) fn of(req: &Request) -> Option<Self> {
        let headers = req.headers();
        let kind = if headers.contains_key(header::AUTHORIZATION) {
            "basic"
        } else if headers.contains_key("x-twilio-token") {
            "access_token"
        } else {
            return None;
        };
        let ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Some(Self { kind, ip })
    }

    /// The 429 answer (rendered, for `path`) when the address is over the limit.
    pub(crate) fn throttled(&self, state: &AppState, path: &str) -> Option<Response> {
        let wait = state.failures.check(self.ip?)?;
        state
            .metrics
            .auth_throttled
            .with_label_values(&[self.kind])
            .inc();
        let mut res = ApiError::new(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests")
            .to_response(path);
        set_retry_after(&mut res, wait);
        Some(res)
    }

    /// Count the attempt as failed if it was answered 401.
    pub(crate) fn settle(&self, state: &AppState, status: StatusCode) {
        if status == StatusCode::UNAUTHORIZED {
            state
                .metrics
                .auth_failures
                .with_label_values(&[self.kind])
                .inc();
            if let Some(ip) = self.ip {
                state.failures.failed(ip);
            }
        }
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

    #[test]
    fn failure_limiter_counts_failures_per_address_and_refills() {
        let l = FailureLimiter::new(Some(3));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..3 {
            assert!(l.check(a).is_none());
            l.failed(a);
        }
        let wait = l.check(a).expect("limited after 3 failures");
        assert!(wait <= Duration::from_secs(20), "{wait:?}");
        assert!(l.check(b).is_none(), "other addresses unaffected");
        // One /64 is one bucket.
        let v6a: IpAddr = "2001:db8::1".parse().expect("ip");
        let v6b: IpAddr = "2001:db8::ffff".parse().expect("ip");
        for _ in 0..3 {
            l.failed(v6a);
        }
        assert!(l.check(v6b).is_some());
        let off = FailureLimiter::new(Some(0));
        off.failed(a);
        off.failed(a);
        assert!(off.check(a).is_none());
    }

    #[test]
    fn failure_table_stays_bounded_under_a_spray_of_addresses() {
        let l = FailureLimiter::new(Some(1));
        for i in 0..(FAILURE_TABLE_MAX as u32 + 10) {
            l.failed(IpAddr::from(std::net::Ipv4Addr::from(i)));
        }
        let len = l.table.lock().expect("lock").len();
        assert!(len <= FAILURE_TABLE_MAX, "{len}");
    }
}
