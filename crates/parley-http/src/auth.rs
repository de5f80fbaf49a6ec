//! HTTP Basic auth (contract §0.1): Account SID + Auth Token, or API Key SID + secret.
//!
//! Secrets are stored sealed. A node remembers the credentials it has checked (the opened
//! secret and its account, per username) so a request needs no read of its credential, and
//! forgets them all whenever the database's credential version moves: a number that a trigger
//! moves on every update or deletion of an account or an API key, whoever makes it (any node, a
//! CLI in another process). [`CredentialWatcher`] reads it every [`CREDENTIAL_POLL`]; a
//! remembered check is used only while the last version check that succeeded began at most
//! [`CREDENTIAL_CHECK_VALID`] ago — otherwise (the watcher is not running, the database does not
//! answer) every request reads its credential as stored. So a rotated token or a deleted key is
//! refused on every node within [`CREDENTIAL_CHECK_VALID`] of its commit; the admin CLI waits
//! [`CREDENTIAL_CHANGE_WAIT`] before it reports such a change done.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use parley_core::crypto::secrets_equal;
use parley_core::store::{Store, StoreError};
use parley_core::{AccountSid, ApiKeySid};

use crate::error::ApiError;
use crate::AppState;

const CACHE_MAX: usize = 10_000;

/// How often a node reads the credential version ([`CredentialWatcher`]).
pub const CREDENTIAL_POLL: Duration = Duration::from_millis(100);
/// A remembered credential check is used only while the last successful version check began at
/// most this long ago.
pub const CREDENTIAL_CHECK_VALID: Duration = Duration::from_millis(250);
/// How long a command that changes a credential waits after its commit before it reports the
/// change done: by then no running node accepts the old secret.
pub const CREDENTIAL_CHANGE_WAIT: Duration = Duration::from_millis(300);

/// The caller, authenticated.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The account the credentials belong to.
    pub account_sid: AccountSid,
}

/// A credential as stored, opened.
struct Entry {
    secret: String,
    account_sid: AccountSid,
}

/// One checked credential: the sealed secret as read, its opening, its account, and the cache
/// generation it was read in.
struct Remembered {
    sealed: Vec<u8>,
    secret: String,
    account_sid: AccountSid,
    generation: u64,
}

#[derive(Default)]
struct CacheState {
    /// Moves whenever remembered checks may be stale (the credential version moved).
    generation: u64,
    /// The credential version last read.
    version: Option<i64>,
    /// When the last successful version check began.
    checked_at: Option<Instant>,
    entries: HashMap<String, Remembered>,
}

/// What [`AuthCache::check`] found.
enum Lookup {
    /// A usable remembered check: the account when the password matches, `None` when not.
    Known(Option<AccountSid>),
    /// Read the credential; remember it under this generation.
    Unknown(u64),
}

/// The credentials this node has checked (see the module docs).
#[derive(Default)]
pub struct AuthCache {
    state: Mutex<CacheState>,
}

impl AuthCache {
    /// Check `user`/`pass` against a remembered credential, if one may be used now.
    fn check(&self, user: &str, pass: &str, now: Instant) -> Lookup {
        let Ok(st) = self.state.lock() else {
            return Lookup::Unknown(u64::MAX);
        };
        let fresh = st
            .checked_at
            .is_some_and(|t| now.saturating_duration_since(t) <= CREDENTIAL_CHECK_VALID);
        match st.entries.get(user) {
            Some(e) if fresh && e.generation == st.generation => Lookup::Known(
                secrets_equal(e.secret.as_bytes(), pass.as_bytes()).then(|| e.account_sid.clone()),
            ),
            _ => Lookup::Unknown(st.generation),
        }
    }

    /// An earlier opening of exactly `sealed` for `user` (whatever its generation: opening the
    /// same bytes gives the same secret).
    fn opened(&self, user: &str, sealed: &[u8]) -> Option<String> {
        let st = self.state.lock().ok()?;
        st.entries
            .get(user)
            .filter(|e| e.sealed.as_slice() == sealed)
            .map(|e| e.secret.clone())
    }

    /// Remember a credential read in `generation` (usable only while that is still current).
    fn remember(&self, user: &str, entry: &Entry, sealed: Vec<u8>, generation: u64) {
        if let Ok(mut st) = self.state.lock() {
            if st.entries.len() >= CACHE_MAX {
                st.entries.clear();
            }
            st.entries.insert(
                user.to_owned(),
                Remembered {
                    sealed,
                    secret: entry.secret.clone(),
                    account_sid: entry.account_sid.clone(),
                    generation,
                },
            );
        }
    }

    /// A version check that began at `began` read `version`: a moved version makes every
    /// remembered check unusable; the check makes the cache usable until `began` +
    /// [`CREDENTIAL_CHECK_VALID`].
    pub fn version_checked(&self, began: Instant, version: i64) {
        if let Ok(mut st) = self.state.lock() {
            if st.version != Some(version) {
                st.generation = st.generation.wrapping_add(1);
                st.version = Some(version);
            }
            if st.checked_at.is_none_or(|t| began > t) {
                st.checked_at = Some(began);
            }
        }
    }
}

/// Reads the credential version every [`CREDENTIAL_POLL`] for one node's [`AuthCache`]
/// (`AppState::credential_watcher`); without it running the cache is never used.
pub struct CredentialWatcher {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) cache: Arc<AuthCache>,
}

impl CredentialWatcher {
    /// Poll until the task is aborted.
    pub async fn run(self) {
        let mut ticker = tokio::time::interval(CREDENTIAL_POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            ticker.tick().await;
            let began = Instant::now();
            match self.store.credential_version().await {
                Ok(v) => {
                    if failing {
                        tracing::info!("credential version readable again");
                        failing = false;
                    }
                    self.cache.version_checked(began, v);
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot read the credential version; every request reads its credential until it can");
                        failing = true;
                    }
                }
            }
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

/// The credential of `user` (an AC or SK SID) as stored now, opened (reusing an earlier opening
/// of the same sealed value) and remembered in `generation`; `None` if there is no such user.
async fn load(state: &AppState, user: &str, generation: u64) -> Result<Option<Entry>, ApiError> {
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
    let secret = match state.auth_cache.opened(user, &sealed) {
        Some(secret) => secret,
        None => state
            .secrets
            .open_str(&sealed)
            .map_err(ApiError::internal)?,
    };
    let entry = Entry {
        secret,
        account_sid,
    };
    state.auth_cache.remember(user, &entry, sealed, generation);
    Ok(Some(entry))
}

/// The account of `user`/`pass`, `None` when they are not a valid credential.
async fn authenticate(
    state: &AppState,
    user: &str,
    pass: &str,
) -> Result<Option<AccountSid>, ApiError> {
    let generation = match state.auth_cache.check(user, pass, Instant::now()) {
        Lookup::Known(account) => return Ok(account),
        Lookup::Unknown(generation) => generation,
    };
    Ok(load(state, user, generation)
        .await?
        .filter(|e| secrets_equal(e.secret.as_bytes(), pass.as_bytes()))
        .map(|e| e.account_sid))
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some((user, pass)) = basic_credentials(parts) else {
            return Err(ApiError::unauthorized().into_response());
        };
        let account_sid = authenticate(state, &user, &pass)
            .await
            .map_err(IntoResponse::into_response)?;
        let Some(account_sid) = account_sid else {
            return Err(ApiError::unauthorized().into_response());
        };
        if let Some(wait) = state.limiter.check(&account_sid) {
            return Err(too_many_requests(wait));
        }
        Ok(Self { account_sid })
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

    fn entry(secret: &str, account: &AccountSid) -> Entry {
        Entry {
            secret: secret.to_owned(),
            account_sid: account.clone(),
        }
    }

    fn generation_of(lookup: Lookup) -> u64 {
        match lookup {
            Lookup::Unknown(g) => g,
            Lookup::Known(_) => panic!("expected no usable remembered check"),
        }
    }

    #[test]
    fn a_remembered_check_is_used_only_after_a_fresh_version_check() {
        let cache = AuthCache::default();
        let a = AccountSid::generate();
        let t0 = Instant::now();
        // Nothing checked yet: remembered or not, the credential is read.
        let g = generation_of(cache.check("AC1", "pw", t0));
        cache.remember("AC1", &entry("pw", &a), vec![1], g);
        generation_of(cache.check("AC1", "pw", t0));

        // The first version check starts the generation; a read in the old one is not used.
        cache.version_checked(t0, 7);
        let g = generation_of(cache.check("AC1", "pw", t0));
        cache.remember("AC1", &entry("pw", &a), vec![1], g);
        assert!(matches!(cache.check("AC1", "pw", t0), Lookup::Known(Some(ref x)) if x == &a));
        assert!(matches!(
            cache.check("AC1", "wrong", t0),
            Lookup::Known(None)
        ));
        generation_of(cache.check("AC2", "pw", t0));

        // Without a newer successful check, it stops being used.
        let late = t0 + CREDENTIAL_CHECK_VALID + Duration::from_millis(1);
        generation_of(cache.check("AC1", "pw", late));
        cache.version_checked(late, 7);
        assert!(matches!(
            cache.check("AC1", "pw", late),
            Lookup::Known(Some(_))
        ));
    }

    #[test]
    fn a_moved_version_forgets_every_check_even_one_read_before_it_and_remembered_after() {
        let cache = AuthCache::default();
        let a = AccountSid::generate();
        let t0 = Instant::now();
        cache.version_checked(t0, 1);
        // A request reads the old token…
        let g = generation_of(cache.check("AC1", "old", t0));
        // …the token is rotated and the watcher sees the version move…
        cache.version_checked(t0 + Duration::from_millis(100), 2);
        // …then the request remembers what it read: never used.
        cache.remember("AC1", &entry("old", &a), vec![1], g);
        let g2 = generation_of(cache.check("AC1", "old", t0 + Duration::from_millis(100)));
        assert_ne!(g, g2);
        // The opening of the same sealed bytes is still reused; of other bytes, not.
        assert_eq!(cache.opened("AC1", &[1]).as_deref(), Some("old"));
        assert_eq!(cache.opened("AC1", &[2]), None);
        // A read in the new generation is used.
        cache.remember("AC1", &entry("new", &a), vec![2], g2);
        let t = t0 + Duration::from_millis(150);
        assert!(matches!(
            cache.check("AC1", "new", t),
            Lookup::Known(Some(_))
        ));
        assert!(matches!(cache.check("AC1", "old", t), Lookup::Known(None)));
        // An older check finishing late does not extend the window.
        cache.version_checked(t0, 2);
        let after = t0 + Duration::from_millis(100) + CREDENTIAL_CHECK_VALID;
        assert!(matches!(
            cache.check("AC1", "new", after),
            Lookup::Known(Some(_))
        ));
    }

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
