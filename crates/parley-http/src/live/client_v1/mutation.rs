//! `X-Twilio-Mutation-Id`: the SDK sends a fresh id with every change it makes; a request that
//! repeats an id already seen from the same identity of the same service within [`WINDOW`] gets
//! the first answer again, and the change is not made twice. A duplicate that arrives while the
//! first is still running waits for it.
//!
//! This process's memory only, one cache per node (docs/live-clients.md, "Client API"): a
//! repeat that reaches another node is made again. At most [`MAX_ENTRIES`] answers
//! are kept; beyond that the oldest are forgotten first. Answers with a 5xx status are not kept
//! (the change did not happen, a retry should try again).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use parley_core::ServiceSid;
use tokio::sync::Notify;

use crate::live::ClientContext;

/// The request header.
pub const MUTATION_ID_HEADER: &str = "x-twilio-mutation-id";
/// How long an answer is replayed.
pub const WINDOW: Duration = Duration::from_secs(600);
/// Most answers kept on this node.
pub const MAX_ENTRIES: usize = 20_000;
/// Longest mutation id remembered (longer ids are served without deduplication).
const MAX_ID_LEN: usize = 128;
/// Largest answer body remembered.
const MAX_BODY: usize = 256 * 1024;
/// How long a duplicate waits for the first request to finish.
const WAIT: Duration = Duration::from_secs(30);

type Key = (ServiceSid, String, String);

#[derive(Clone)]
struct Answer {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

enum Slot {
    Running(Arc<Notify>),
    Done(Answer),
}

struct Entry {
    slot: Slot,
    at: Instant,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, Entry>,
    order: VecDeque<(Key, Instant)>,
}

/// The answers of recent mutations, per (service, identity, mutation id).
#[derive(Default)]
pub struct MutationCache {
    inner: Mutex<Inner>,
}

enum Claim {
    /// Run the request; then call [`MutationCache::finish`].
    Run,
    /// The first answer.
    Replay(Answer),
    /// Wait for the running first request.
    Wait(Arc<Notify>),
}

impl MutationCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn prune(inner: &mut Inner, now: Instant) {
        while let Some((key, at)) = inner.order.front() {
            let expired = now.duration_since(*at) >= WINDOW;
            if !expired && inner.map.len() < MAX_ENTRIES {
                break;
            }
            // Only remove the map entry this order record was made for (a key re-inserted
            // later has a newer record further back).
            if inner.map.get(key).is_some_and(|e| e.at == *at) {
                inner.map.remove(key);
            }
            inner.order.pop_front();
        }
    }

    /// Claim `key`: run it, replay it, or wait for it. A waiter gets its `Notified` future armed
    /// before the lock is released, so it cannot miss the wake-up.
    fn begin(&self, key: &Key) -> Claim {
        let now = Instant::now();
        let mut inner = self.lock();
        Self::prune(&mut inner, now);
        match inner.map.get(key) {
            Some(Entry {
                slot: Slot::Done(a),
                ..
            }) => Claim::Replay(a.clone()),
            Some(Entry {
                slot: Slot::Running(n),
                ..
            }) => Claim::Wait(n.clone()),
            None => {
                inner.map.insert(
                    key.clone(),
                    Entry {
                        slot: Slot::Running(Arc::new(Notify::new())),
                        at: now,
                    },
                );
                inner.order.push_back((key.clone(), now));
                Claim::Run
            }
        }
    }

    /// The first request of `key` finished with `answer` (`None`: not to be replayed).
    fn finish(&self, key: &Key, answer: Option<Answer>) {
        let mut inner = self.lock();
        let notify = match inner.map.get(key) {
            Some(Entry {
                slot: Slot::Running(n),
                ..
            }) => Some(n.clone()),
            _ => None,
        };
        match answer {
            Some(a) => {
                if let Some(e) = inner.map.get_mut(key) {
                    e.slot = Slot::Done(a);
                }
            }
            None => {
                inner.map.remove(key);
            }
        }
        drop(inner);
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }

    /// How many answers (and running requests) are held.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn replay(a: Answer) -> Response {
    let mut res = Response::new(Body::from(a.body));
    *res.status_mut() = a.status;
    if let Some(ct) = a.content_type {
        res.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    res
}

/// This node's cache (keys carry the service, so one cache serves every service).
fn cache() -> &'static MutationCache {
    static CACHE: std::sync::OnceLock<MutationCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(MutationCache::default)
}

/// Middleware over the client API: deduplicates mutations by `X-Twilio-Mutation-Id`.
pub async fn dedupe(req: Request, next: Next) -> Response {
    let is_mutation = matches!(*req.method(), Method::POST | Method::DELETE);
    let id = req
        .headers()
        .get(MUTATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= MAX_ID_LEN)
        .map(str::to_owned);
    let ctx = req.extensions().get::<ClientContext>().cloned();
    let (Some(id), Some(ctx), true) = (id, ctx, is_mutation) else {
        return next.run(req).await;
    };
    let key: Key = (ctx.identity.service_sid.clone(), ctx.identity.identity, id);
    let cache = cache();
    let deadline = Instant::now() + WAIT;
    loop {
        match cache.begin(&key) {
            Claim::Run => break,
            Claim::Replay(a) => return replay(a),
            Claim::Wait(n) => {
                let notified = n.notified();
                tokio::pin!(notified);
                // Armed before re-checking: a finish between `begin` and here is seen by the
                // next `begin`.
                notified.as_mut().enable();
                if !matches!(cache.begin_peek(&key), Some(true)) {
                    continue;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                    return crate::error::ApiError::new(
                        StatusCode::CONFLICT,
                        20409,
                        "A request with this X-Twilio-Mutation-Id is still running",
                    )
                    .to_response(&key.2);
                }
            }
        }
    }
    let res = next.run(req).await;
    let (parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            cache.finish(&key, None);
            return crate::error::ApiError::internal(format!("reading an answer: {e}"))
                .to_response(&key.2);
        }
    };
    let keep = !parts.status.is_server_error();
    cache.finish(
        &key,
        keep.then(|| Answer {
            status: parts.status,
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            body: bytes.clone(),
        }),
    );
    Response::from_parts(parts, Body::from(bytes))
}

impl MutationCache {
    /// `Some(true)` while `key` is running, `Some(false)` when it is done, `None` when unknown.
    fn begin_peek(&self, key: &Key) -> Option<bool> {
        self.lock()
            .map
            .get(key)
            .map(|e| matches!(e.slot, Slot::Running(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> Key {
        (ServiceSid::generate(), "alice".to_owned(), id.to_owned())
    }

    fn answer(body: &'static str) -> Answer {
        Answer {
            status: StatusCode::CREATED,
            content_type: None,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn first_runs_then_replays_and_unkept_answers_run_again() {
        let c = MutationCache::default();
        let k = key("m1");
        assert!(matches!(c.begin(&k), Claim::Run));
        assert!(matches!(c.begin(&k), Claim::Wait(_)));
        c.finish(&k, Some(answer("first")));
        match c.begin(&k) {
            Claim::Replay(a) => assert_eq!(a.body, Bytes::from_static(b"first")),
            _ => panic!("expected a replay"),
        }
        let k2 = key("m2");
        assert!(matches!(c.begin(&k2), Claim::Run));
        c.finish(&k2, None);
        assert!(matches!(c.begin(&k2), Claim::Run));
    }

    /// Two concurrent requests with one id: the handler runs once, both get its answer; a
    /// request without the header always runs.
    #[tokio::test]
    async fn a_concurrent_duplicate_waits_for_the_first_answer() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tower::ServiceExt;

        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let router = axum::Router::new()
            .route(
                "/m",
                axum::routing::post(move || {
                    let r = r.clone();
                    async move {
                        let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        (StatusCode::CREATED, format!("run {n}"))
                    }
                }),
            )
            .layer(axum::middleware::from_fn(dedupe));
        let ctx = ClientContext {
            conn: crate::live::ConnId(1),
            identity: crate::access_token::ChatIdentity {
                account_sid: parley_core::AccountSid::generate(),
                api_key_sid: parley_core::ApiKeySid::generate(),
                identity: "alice".to_owned(),
                service_sid: ServiceSid::generate(),
                endpoint_id: None,
                push_credential_sid: None,
                expires_at: None,
            },
        };
        let call = |id: Option<&'static str>| {
            let router = router.clone();
            let ctx = ctx.clone();
            async move {
                let mut req = axum::http::Request::builder()
                    .method(Method::POST)
                    .uri("/m");
                if let Some(id) = id {
                    req = req.header(MUTATION_ID_HEADER, id);
                }
                let mut req = req.body(Body::empty()).unwrap();
                req.extensions_mut().insert(ctx);
                let res = router.oneshot(req).await.unwrap();
                let status = res.status();
                let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
                (status, body)
            }
        };
        let (a, b) = tokio::join!(call(Some("same")), call(Some("same")));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(a, b);
        assert_eq!(a.0, StatusCode::CREATED);
        let c = call(Some("same")).await;
        assert_eq!(c, a, "replayed later too");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        call(None).await;
        call(None).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn memory_is_bounded() {
        let c = MutationCache::default();
        for i in 0..(MAX_ENTRIES + 50) {
            let k = key(&format!("m{i}"));
            assert!(matches!(c.begin(&k), Claim::Run));
            c.finish(&k, Some(answer("x")));
        }
        assert!(c.len() <= MAX_ENTRIES, "{}", c.len());
    }
}
