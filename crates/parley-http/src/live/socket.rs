//! `GET /v3/wsconnect`: one twilsock connection (sdk-transport.md §1; docs/live-clients.md has
//! every status and close code).
//!
//! One task per socket reads frames, writes frames and runs the timers; upstream requests
//! (`message` frames) run as their own tasks, up to `max_requests_in_flight` at once, and the
//! socket task writes their replies as they finish. The flow:
//!
//! 1. The first frame must be `init` within [`LiveConfig::init_timeout`]; its Access Token is
//!    verified exactly as the registration door does ([`crate::access_token::verify`] and the
//!    service must exist). The connection then registers in the [`Hub`] (bounded queue, the
//!    per-identity limit) and replies 200.
//! 2. Then: `message` → upstream request through [`crate::live::upstream_router`] with a
//!    [`ClientContext`]; `update` → new token for the same account/service/identity; `reply` →
//!    ack, ignored; `telemetry.v1` → ignored; `close` → closed. Anything else closes (417).
//! 3. The server sends `ping` every `ping_interval`, `client_update` `token_about_to_expire`
//!    before the token's `exp`, `close` 410 at `exp`, the Hub's notifications as `notification`
//!    frames, and `close` 308 at shutdown.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use parley_core::store::StoreError;
use parley_core::Timestamp;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, Notify};
use tokio::time::{sleep_until, Instant};
use tower::ServiceExt as _;

use super::twilsock::{Frame, FrameError};
use super::{ClientContext, ConnId, Outbound, RegisterError};
use crate::access_token::{self, ChatIdentity};
use crate::error::ApiError;
use crate::AppState;
use parley_core::store::PresenceKey;

/// Default `--live-ping-interval-secs`.
pub const DEFAULT_PING_INTERVAL_SECS: u32 = 25;
/// Default `--live-max-frame-bytes` (1 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 1024 * 1024;
/// Default `--live-max-requests-in-flight`.
pub const DEFAULT_MAX_REQUESTS_IN_FLIGHT: u32 = 32;
/// Default `--live-max-connections-per-identity`.
pub const DEFAULT_MAX_CONNECTIONS_PER_IDENTITY: u32 = 50;
/// Default `--live-send-queue`.
pub const DEFAULT_SEND_QUEUE: u32 = 1024;
/// Time allowed between the upgrade and the `init` frame.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Time allowed to write one frame to a client before the connection is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// `token_about_to_expire` is sent this long before `exp`, or at 3/4 of the remaining lifetime
/// when that is shorter.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(180);
/// `backoff_policy` of the shutdown `close` 308 and of a 429 `init` reply.
pub const RECONNECT_MIN_MS: u64 = 1_000;
/// See [`RECONNECT_MIN_MS`].
pub const RECONNECT_MAX_MS: u64 = 10_000;
/// Websocket read buffer per socket (chat frames are small; a larger frame grows it for itself).
const READ_BUFFER_BYTES: usize = 2 * 1024;
/// Largest upstream response body relayed in a reply.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Live client settings (`--live-*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveConfig {
    /// Server `ping` interval.
    pub ping_interval: Duration,
    /// Largest frame accepted from a client (also the websocket message and frame size limit).
    pub max_frame_bytes: usize,
    /// Upstream requests of one connection running at once; more are answered 429.
    pub max_requests_in_flight: usize,
    /// Connections one identity (of one service) may hold on this node.
    pub max_connections_per_identity: usize,
    /// Notifications queued for one connection; a connection that falls this far behind is
    /// closed (503).
    pub send_queue: usize,
    /// Time allowed for the `init` frame.
    pub init_timeout: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(DEFAULT_PING_INTERVAL_SECS.into()),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES as usize,
            max_requests_in_flight: DEFAULT_MAX_REQUESTS_IN_FLIGHT as usize,
            max_connections_per_identity: DEFAULT_MAX_CONNECTIONS_PER_IDENTITY as usize,
            send_queue: DEFAULT_SEND_QUEUE as usize,
            init_timeout: INIT_TIMEOUT,
        }
    }
}

/// Something the serving layer wants kept alive as long as the connection, upgraded sockets
/// included (parley-server puts its connection-cap permit here). Held by the socket task.
#[derive(Clone)]
pub struct ConnHold(pub Arc<dyn Any + Send + Sync>);

/// The router for upstream requests, built once per [`AppState`] (by [`crate::router`]).
#[derive(Clone)]
pub struct Upstream(Router);

impl Upstream {
    /// [`super::upstream_router`] with Parley's error rendering and panic guard, bound to `state`.
    pub fn new(state: AppState) -> Self {
        Self(
            super::upstream_router()
                .layer(axum::middleware::from_fn(crate::error::render_errors))
                .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                    crate::error::panic_response,
                ))
                .with_state(state),
        )
    }
}

/// `GET /v3/wsconnect`: upgrade to a twilsock websocket.
pub async fn wsconnect(
    State(state): State<AppState>,
    Extension(upstream): Extension<Upstream>,
    hold: Option<Extension<ConnHold>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    ws: WebSocketUpgrade,
) -> Response {
    let max = state.config.live.max_frame_bytes;
    let peer = peer.map(|Extension(ConnectInfo(p))| p);
    // A small read buffer (tungstenite's default is 128 KiB per socket, allocated up front): idle
    // sockets must stay cheap; a large frame still arrives whole (the buffer grows for it).
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(max)
        .max_frame_size(max)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            let _hold = hold;
            Conn::new(state, upstream, peer, socket).run().await;
        })
        .into_response()
}

/// Why the connection ended, as the client is told: twilsock `close` status (when one is sent)
/// and websocket close code.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ending {
    /// twilsock close status code and text, `None` = no twilsock `close` frame.
    twilsock: Option<(u16, String)>,
    /// A `backoff_policy` payload for the twilsock close.
    backoff: bool,
    /// Websocket close code and reason.
    ws: (u16, &'static str),
}

impl Ending {
    fn new(code: u16, status: impl Into<String>, ws: (u16, &'static str)) -> Self {
        Self {
            twilsock: Some((code, status.into())),
            backoff: false,
            ws,
        }
    }

    fn quiet(ws: (u16, &'static str)) -> Self {
        Self {
            twilsock: None,
            backoff: false,
            ws,
        }
    }
}

// Websocket close codes (RFC 6455 §7.4.1).
const WS_NORMAL: (u16, &str) = (1000, "closed");
const WS_GOING_AWAY: (u16, &str) = (1001, "server shutting down");
const WS_PROTOCOL: (u16, &str) = (1002, "twilsock protocol error");
const WS_POLICY: (u16, &str) = (1008, "refused");
const WS_TOO_BIG: (u16, &str) = (1009, "frame too large");
const WS_TRY_LATER: (u16, &str) = (1013, "try again later");

/// A verified `init` / `update` outcome.
struct Session {
    conn: ConnId,
    identity: ChatIdentity,
    /// When to send `token_about_to_expire` (`None`: sent, or never).
    warn_at: Option<Instant>,
    /// When the token expires (`None`: never, as far as a timer can tell).
    expire_at: Option<Instant>,
}

/// The upstream requests of a connection still running. Empty costs nothing (idle sockets stay
/// small); when the connection ends, running requests are left to finish (detached, not
/// aborted: a change half made is not cut short), their replies dropped.
struct InFlight(tokio::task::JoinSet<Frame>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.detach_all();
    }
}

struct Conn {
    state: AppState,
    upstream: Upstream,
    peer: Option<SocketAddr>,
    ws: WebSocket,
    /// Server frame ids.
    seq: AtomicU64,
}

/// The result of reading one websocket message.
enum Incoming {
    Frame(Frame),
    /// Closed, or a transport error: end without a twilsock frame.
    Gone,
    /// A bad frame: end with this.
    Bad(Ending),
    /// A websocket ping/pong: nothing to do.
    Nothing,
}

impl Conn {
    fn new(state: AppState, upstream: Upstream, peer: Option<SocketAddr>, ws: WebSocket) -> Self {
        Self {
            state,
            upstream,
            peer,
            ws,
            seq: AtomicU64::new(0),
        }
    }

    fn next_id(&self) -> String {
        format!("TMs{}", self.seq.fetch_add(1, Ordering::Relaxed) + 1)
    }

    async fn run(mut self) {
        let ending = self.serve().await;
        self.finish(ending).await;
    }

    /// Send the ending's frames and close the socket.
    async fn finish(&mut self, ending: Ending) {
        if let Some((code, status)) = &ending.twilsock {
            let mut f = Frame::new("close", &self.next_id())
                .with("status", json!({"code": code, "status": status}));
            if ending.backoff {
                f = f.with_json(&backoff_body());
            }
            let _ = self.send(&f).await;
        }
        let (code, reason) = ending.ws;
        let _ = tokio::time::timeout(
            WRITE_TIMEOUT,
            self.ws.send(Message::Close(Some(CloseFrame {
                code,
                reason: axum::extract::ws::Utf8Bytes::from_static(reason),
            }))),
        )
        .await;
    }

    /// Write one frame; `false` when the socket is gone or too slow.
    async fn send(&mut self, frame: &Frame) -> bool {
        let bytes = frame.encode();
        match tokio::time::timeout(WRITE_TIMEOUT, self.ws.send(Message::Binary(bytes.into()))).await
        {
            Ok(Ok(())) => {
                self.state
                    .metrics
                    .live_frames
                    .with_label_values(&["out"])
                    .inc();
                true
            }
            _ => false,
        }
    }

    async fn recv(&mut self) -> Incoming {
        let msg = match self.ws.recv().await {
            None => return Incoming::Gone,
            Some(Ok(m)) => m,
            Some(Err(e)) => return read_error(e),
        };
        let bytes: Bytes = match msg {
            Message::Binary(b) => b,
            Message::Text(t) => Bytes::copy_from_slice(t.as_str().as_bytes()),
            Message::Close(_) => return Incoming::Gone,
            Message::Ping(_) | Message::Pong(_) => return Incoming::Nothing,
        };
        self.state
            .metrics
            .live_frames
            .with_label_values(&["in"])
            .inc();
        match Frame::parse(&bytes) {
            Ok(f) => Incoming::Frame(f),
            Err(e) => Incoming::Bad(malformed(&e)),
        }
    }

    /// The whole connection; returns how it ends.
    async fn serve(&mut self) -> Ending {
        let live = self.state.config.live.clone();
        // 1. init.
        let init_deadline = Instant::now() + live.init_timeout;
        let mut shutdown = self.state.live.shutdown_signal();
        let init = loop {
            let got = tokio::select! {
                got = tokio::time::timeout_at(init_deadline, self.recv()) => got,
                () = shutting_down(&mut shutdown) => return goodbye(),
            };
            match got {
                Err(_) => return Ending::new(408, "Timed out waiting for init", WS_POLICY),
                Ok(Incoming::Nothing) => continue,
                Ok(Incoming::Gone) => return Ending::quiet(WS_NORMAL),
                Ok(Incoming::Bad(e)) => return e,
                Ok(Incoming::Frame(f)) if f.method() == "init" => break f,
                Ok(Incoming::Frame(f)) => {
                    return Ending::new(
                        417,
                        format!("Protocol error: expected init, got {}", f.method()),
                        WS_PROTOCOL,
                    )
                }
            }
        };
        let init_id = init.id().unwrap_or("").to_owned();
        let token = init.str("token").unwrap_or("").to_owned();
        // The failed-login limiter of the HTTP doors applies to `init` too (per address).
        let ip = self.peer.map(|p| p.ip());
        if let Some(wait) = ip.and_then(|ip| self.state.failures.check(ip)) {
            self.state
                .metrics
                .auth_throttled
                .with_label_values(&["access_token"])
                .inc();
            let ms = u64::try_from(wait.as_millis())
                .unwrap_or(u64::MAX)
                .max(RECONNECT_MIN_MS);
            let reply = Frame::new("reply", &init_id)
                .with(
                    "status",
                    json!({"code": 429, "status": "Too Many Requests", "errorCode": 20429,
                        "description": "Too many failed logins from this address; retry later"}),
                )
                .with_json(&json!({"backoff_policy": {"reconnect_min_ms": ms, "reconnect_max_ms": ms.max(RECONNECT_MAX_MS)}}));
            self.send(&reply).await;
            return Ending::quiet(WS_TRY_LATER);
        }
        let identity = match authenticate(&self.state, &token).await {
            Ok(i) => i,
            Err(e) => {
                if e.status == StatusCode::UNAUTHORIZED {
                    self.state
                        .metrics
                        .auth_failures
                        .with_label_values(&["access_token"])
                        .inc();
                    if let Some(ip) = ip {
                        self.state.failures.failed(ip);
                    }
                }
                let reply = auth_failure_reply(&init_id, &e);
                self.send(&reply).await;
                return Ending::quiet(WS_POLICY);
            }
        };
        let (tx, mut out_rx) = mpsc::channel::<Outbound>(live.send_queue.max(1));
        let kick = Arc::new(Notify::new());
        let hub = self.state.live.clone();
        let conn = match hub.try_register(
            identity.service_sid.clone(),
            identity.identity.clone(),
            tx,
            kick.clone(),
            live.max_connections_per_identity,
        ) {
            Ok(c) => c,
            Err(RegisterError::TooManyConnections(n)) => {
                let reply = Frame::new("reply", &init_id)
                    .with(
                        "status",
                        json!({"code": 429, "status": "Too Many Requests",
                        "description": format!("Too many connections for this identity ({n}; the limit is {})", live.max_connections_per_identity)}),
                    )
                    .with_json(&backoff_body());
                self.send(&reply).await;
                return Ending::quiet(WS_TRY_LATER);
            }
            Err(RegisterError::ShuttingDown) => {
                let reply = Frame::new("reply", &init_id)
                    .with(
                        "status",
                        json!({"code": 503, "status": "Service Unavailable",
                        "description": "The server is shutting down"}),
                    )
                    .with_json(&backoff_body());
                self.send(&reply).await;
                return Ending::quiet(WS_GOING_AWAY);
            }
        };
        let presence_key = PresenceKey {
            account: identity.account_sid.clone(),
            service: identity.service_sid.clone(),
            identity: identity.identity.clone(),
        };
        let registered = Registered {
            state: self.state.clone(),
            conn,
            presence: presence_key.clone(),
        };
        registered.gauge().inc();
        // Counted in the presence shared by nodes (after `Registered`, whose drop uncounts it).
        hub.presence.opened(&self.state.store, &presence_key).await;
        let mut session = Session::new(conn, identity, Timestamp::now());
        let reply = init_reply(&init, &init_id, &session);
        // Nothing of the init frame (token, metadata, registrations) is kept per connection.
        drop((init, init_id, token));
        if !self.send(&reply).await {
            return Ending::quiet(WS_NORMAL);
        }
        drop(reply);
        tracing::debug!(conn = conn.0, identity = %session.identity.identity, "live connection initialised");

        // 2. The connection.
        let mut ping = tokio::time::interval_at(
            Instant::now() + live.ping_interval,
            live.ping_interval.max(Duration::from_millis(10)),
        );
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut in_flight = InFlight(tokio::task::JoinSet::new());
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        loop {
            let warn_at = session.warn_at;
            let expire_at = session.expire_at;
            tokio::select! {
                biased;
                () = kick.notified() => {
                    return Ending::new(503, "Slow consumer: the connection fell behind; reconnect", WS_TRY_LATER);
                }
                () = shutting_down(&mut shutdown) => {
                    // Stop reading; answer what is running (its change may be made: the
                    // client must learn it was), then the reconnect code.
                    let until = Instant::now() + SHUTDOWN_DRAIN;
                    while let Ok(Some(done)) =
                        tokio::time::timeout_at(until, in_flight.0.join_next()).await
                    {
                        if let Ok(reply) = done {
                            if !self.send(&reply).await {
                                return Ending::quiet(WS_NORMAL);
                            }
                        }
                    }
                    return goodbye();
                }
                () = sleep_until(expire_at.unwrap_or(far)), if expire_at.is_some() => {
                    return Ending::new(410, "Token expired", WS_NORMAL);
                }
                () = sleep_until(warn_at.unwrap_or(far)), if warn_at.is_some() => {
                    session.warn_at = None;
                    let f = Frame::new("client_update", &self.next_id())
                        .with("client_update_type", json!("token_about_to_expire"));
                    if !self.send(&f).await {
                        return Ending::quiet(WS_NORMAL);
                    }
                }
                _ = ping.tick() => {
                    let f = Frame::new("ping", &self.next_id());
                    if !self.send(&f).await {
                        return Ending::quiet(WS_NORMAL);
                    }
                }
                Some(done) = in_flight.0.join_next(), if !in_flight.0.is_empty() => {
                    match done {
                        Ok(reply) => {
                            if !self.send(&reply).await {
                                return Ending::quiet(WS_NORMAL);
                            }
                        }
                        // The router catches handler panics; this is not expected.
                        Err(e) => tracing::error!(error = %e, "upstream request task failed"),
                    }
                }
                out = out_rx.recv() => match out {
                    Some(Outbound::Notification { message_type, payload }) => {
                        let f = Frame::new("notification", &self.next_id())
                            .with("message_type", Value::from(message_type))
                            .with("notification_ctx_id", json!(""))
                            .with_json(&payload);
                        if !self.send(&f).await {
                            return Ending::quiet(WS_NORMAL);
                        }
                    }
                    Some(Outbound::Close { code, status }) => {
                        return Ending::new(code, status, WS_NORMAL);
                    }
                    // Unregistered (a full queue: the kick is pending) or the Hub dropped us.
                    None => {
                        return Ending::new(503, "Slow consumer: the connection fell behind; reconnect", WS_TRY_LATER);
                    }
                },
                incoming = self.recv() => {
                    let frame = match incoming {
                        Incoming::Frame(f) => f,
                        Incoming::Nothing => continue,
                        Incoming::Gone => return Ending::quiet(WS_NORMAL),
                        Incoming::Bad(e) => return e,
                    };
                    let id = frame.id().unwrap_or("").to_owned();
                    match frame.method() {
                        "message" => {
                            if in_flight.0.len() >= live.max_requests_in_flight {
                                let f = status_reply(&id, 429, "Too Many Requests", Some(format!(
                                    "More than {} requests in flight on this connection",
                                    live.max_requests_in_flight
                                )));
                                if !self.send(&f).await {
                                    return Ending::quiet(WS_NORMAL);
                                }
                                continue;
                            }
                            match build_request(&frame, &session, self.peer) {
                                Ok(req) => {
                                    let router = self.upstream.0.clone();
                                    in_flight.0.spawn(async move {
                                        call_upstream(router, req, &id).await
                                    });
                                }
                                Err(description) => {
                                    let f = status_reply(&id, 400, "Bad Request", Some(description));
                                    if !self.send(&f).await {
                                        return Ending::quiet(WS_NORMAL);
                                    }
                                }
                            }
                        }
                        "update" => {
                            let token = frame.str("token").unwrap_or("").to_owned();
                            match refresh(&self.state, &session, &token).await {
                                Ok(identity) => {
                                    session = Session::new(conn, identity, Timestamp::now());
                                    let f = status_reply(&id, 200, "OK", None);
                                    if !self.send(&f).await {
                                        return Ending::quiet(WS_NORMAL);
                                    }
                                }
                                Err(e) => {
                                    let reply = auth_failure_reply(&id, &e);
                                    let sent = self.send(&reply).await;
                                    // A refused token ends the connection; a database failure
                                    // (500) does not: the old token still holds and the SDK
                                    // retries the update.
                                    if !sent || e.status.is_client_error() {
                                        return Ending::quiet(WS_POLICY);
                                    }
                                }
                            }
                        }
                        // Acks of our pings and notifications; telemetry we did not confirm.
                        "reply" | "telemetry.v1" => {}
                        "close" => return Ending::quiet(WS_NORMAL),
                        other => {
                            return Ending::new(
                                417,
                                format!("Protocol error: unsupported method {}", truncate(other, 64)),
                                WS_PROTOCOL,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Verify an `init` token as the registration door does: the token, then its service.
async fn authenticate(state: &AppState, token: &str) -> Result<ChatIdentity, ApiError> {
    let who = access_token::verify(state, token, Timestamp::now()).await?;
    match state
        .store
        .fetch_service(&who.account_sid, &who.service_sid)
        .await
    {
        Ok(_) => Ok(who),
        Err(StoreError::NotFound) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            20106,
            "Invalid Access Token grants: the chat service does not exist in this account",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Verify an `update` token: valid, and for the connection's account, service and identity.
async fn refresh(
    state: &AppState,
    session: &Session,
    token: &str,
) -> Result<ChatIdentity, ApiError> {
    let who = authenticate(state, token).await?;
    let old = &session.identity;
    if who.account_sid != old.account_sid
        || who.service_sid != old.service_sid
        || who.identity != old.identity
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            20101,
            "Invalid Access Token: a refreshed token must name the connection's account, \
             service and identity",
        ));
    }
    Ok(who)
}

/// Resolves when the server shuts down (also if the Hub's signal is gone).
async fn shutting_down(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Unregisters the connection and keeps the gauge right, however the task ends.
struct Registered {
    state: AppState,
    conn: ConnId,
    presence: PresenceKey,
}

impl Registered {
    fn gauge(&self) -> &prometheus::IntGauge {
        &self.state.metrics.live_connections
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.state.live.unregister(self.conn);
        // Its Sync subscriptions go with it.
        self.state.sync.forget(self.conn);
        self.gauge().dec();
        // Uncount it in the shared presence (a task: drop cannot wait).
        let state = self.state.clone();
        let key = self.presence.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                state.live.presence.closed(&state.store, &key).await;
            });
        }
    }
}

impl Session {
    fn new(conn: ConnId, identity: ChatIdentity, now: Timestamp) -> Self {
        let (warn_at, expire_at) = match identity.expires_at {
            Some(exp) => expiry_timers(now, exp, Instant::now()),
            None => (None, None),
        };
        Self {
            conn,
            identity,
            warn_at,
            expire_at,
        }
    }
}

/// When to warn and when to close for a token expiring at `exp`, seen at `now` (wall clock)
/// = `mono` (monotonic clock). The warning comes [`EXPIRY_WARNING`] before `exp`, or after 3/4 of
/// the remaining lifetime when that is shorter; `None` for a time no timer can reach.
fn expiry_timers(
    now: Timestamp,
    exp: Timestamp,
    mono: Instant,
) -> (Option<Instant>, Option<Instant>) {
    let left_us = exp.unix_micros().saturating_sub(now.unix_micros()).max(0);
    let left = Duration::from_micros(u64::try_from(left_us).unwrap_or(0));
    let lead = EXPIRY_WARNING.min(left / 4);
    let expire_at = mono.checked_add(left);
    let warn_at = mono.checked_add(left.saturating_sub(lead));
    (warn_at, expire_at)
}

/// At shutdown, how long a connection waits for its running upstream requests to answer
/// before it sends the reconnect code anyway.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);

/// The shutdown ending: twilsock `close` 308 with a backoff, websocket 1001.
fn goodbye() -> Ending {
    let mut e = Ending::new(308, "Server shutting down; reconnect", WS_GOING_AWAY);
    e.backoff = true;
    e
}

fn backoff_body() -> Value {
    json!({"backoff_policy": {"reconnect_min_ms": RECONNECT_MIN_MS, "reconnect_max_ms": RECONNECT_MAX_MS}})
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The ending for an unreadable frame.
fn malformed(e: &FrameError) -> Ending {
    Ending::new(
        406,
        format!("Not acceptable: malformed frame ({e})"),
        WS_PROTOCOL,
    )
}

/// The ending for a websocket read error: a too large message is a twilsock 406, anything else
/// a vanished peer.
fn read_error(e: axum::Error) -> Incoming {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(c)) => Incoming::Bad(Ending::new(
            406,
            format!("Not acceptable: frame too large ({c})"),
            WS_TOO_BIG,
        )),
        Some(tungstenite::Error::Protocol(p)) => {
            tracing::debug!(error = %p, "websocket protocol error");
            Incoming::Bad(Ending::quiet(WS_PROTOCOL))
        }
        _ => Incoming::Gone,
    }
}

/// A reply with only a transport status.
fn status_reply(id: &str, code: u16, status: &str, description: Option<String>) -> Frame {
    let mut s = json!({"code": code, "status": status});
    if let (Some(d), Some(o)) = (description, s.as_object_mut()) {
        o.insert("description".to_owned(), Value::from(d));
    }
    Frame::new("reply", id).with("status", s)
}

/// The reply to an `init` / `update` whose token was refused: 401 (403 for a refreshed token of
/// another identity) with the Twilio `errorCode`; 500 when the database failed (the client
/// retries).
fn auth_failure_reply(id: &str, e: &ApiError) -> Frame {
    let code = e.status.as_u16();
    let (code, status) = match code {
        401 => (401, "Unauthorized"),
        403 => (403, "Forbidden"),
        _ => (500, "Internal Server Error"),
    };
    let body = e.body_json("");
    let description = body["message"].as_str().unwrap_or("").to_owned();
    Frame::new("reply", id).with(
        "status",
        json!({"code": code, "status": status, "errorCode": e.code, "description": description}),
    )
}

fn init_reply(init: &Frame, id: &str, session: &Session) -> Frame {
    let capabilities: Vec<Value> = init
        .header
        .get("capabilities")
        .and_then(Value::as_array)
        .map(|caps| {
            caps.iter()
                .filter(|c| c.as_str().is_some_and(|c| c != "telemetry.v1"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let registrations: Vec<Value> = init
        .header
        .get("registrations")
        .and_then(Value::as_array)
        .map(|regs| {
            regs.iter()
                .filter_map(Value::as_object)
                .map(|r| {
                    let mut echo = Map::new();
                    for k in [
                        "product",
                        "type",
                        "notification_protocol_version",
                        "message_types",
                    ] {
                        if let Some(v) = r.get(k) {
                            echo.insert(k.to_owned(), v.clone());
                        }
                    }
                    Value::Object(echo)
                })
                .collect()
        })
        .unwrap_or_default();
    let resumed = init
        .header
        .get("continuation_token")
        .is_some_and(|t| !t.is_null());
    let who = &session.identity;
    Frame::new("reply", id)
        .with("status", json!({"code": 200, "status": "OK"}))
        .with("continuation_token", Value::from(continuation_token()))
        .with(
            "continuation_token_status",
            json!({
                "reissued": resumed,
                "reissue_reason": if resumed { "Sessions are not resumed; a new one started" } else { "" },
                "reissue_message": if resumed { "Sessions are not resumed; a new one started" } else { "" },
            }),
        )
        .with("capabilities", Value::Array(capabilities))
        .with(
            "offline_storage",
            json!({"ip_messaging": {"storage_id": storage_id(who)}}),
        )
        .with("init_registrations", Value::Array(registrations))
        .with(
            "debug_info",
            json!({"server": "parley", "version": env!("CARGO_PKG_VERSION"), "connection": session.conn.0}),
        )
}

/// A fresh opaque continuation token (sessions are not resumed yet).
fn continuation_token() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    // The system RNG does not fail in practice; an all-zero token would still be a valid
    // (if not unique) opaque value.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("PCT{hex}")
}

/// A stable storage id per (account, service, identity).
fn storage_id(who: &ChatIdentity) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(who.account_sid.as_str().as_bytes());
    h.update([0]);
    h.update(who.service_sid.as_str().as_bytes());
    h.update([0]);
    h.update(who.identity.as_bytes());
    let digest = h.finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Characters escaped in query parameter values. Values arrive as they appear in a URL (the JS
/// SDK copies them out of the URL it was given, already percent-encoded), so `%` is kept; what
/// would break the query's structure is escaped.
const QUERY_ESCAPE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'&')
    .add(b'<')
    .add(b'>')
    .add(b'=')
    .add(b'`')
    .add(b'{')
    .add(b'}');

fn push_param(query: &mut String, key: &str, value: Option<&str>) {
    if !query.is_empty() {
        query.push('&');
    }
    query.extend(percent_encoding::utf8_percent_encode(key, QUERY_ESCAPE));
    if let Some(v) = value {
        query.push('=');
        query.extend(percent_encoding::utf8_percent_encode(v, QUERY_ESCAPE));
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The upstream request of a `message` frame, or why it cannot be made.
fn build_request(
    frame: &Frame,
    session: &Session,
    peer: Option<SocketAddr>,
) -> Result<Request<Body>, String> {
    let http = frame
        .header
        .get("http_request")
        .and_then(Value::as_object)
        .ok_or("message without http_request")?;
    let method = http.get("method").and_then(Value::as_str).unwrap_or("GET");
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid http_request.method {}", truncate(method, 32)))?;
    let path = http
        .get("path")
        .and_then(Value::as_str)
        .filter(|p| p.starts_with('/'))
        .ok_or("http_request.path must be an absolute path")?;
    let mut query = String::new();
    if let Some(params) = http.get("params").and_then(Value::as_object) {
        for (k, v) in params {
            match v {
                Value::Array(items) => {
                    for item in items {
                        push_param(&mut query, k, scalar(item).as_deref());
                    }
                }
                other => push_param(&mut query, k, scalar(other).as_deref()),
            }
        }
    }
    let uri = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let uri: Uri = uri
        .parse()
        .map_err(|_| format!("invalid http_request.path {}", truncate(path, 128)))?;
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(frame.payload.clone()))
        .map_err(|e| format!("invalid request: {e}"))?;
    let headers = req.headers_mut();
    if let Some(hs) = http.get("headers").and_then(Value::as_object) {
        for (k, v) in hs {
            let (Ok(name), Some(value)) = (HeaderName::from_bytes(k.as_bytes()), scalar(v)) else {
                continue;
            };
            if matches!(
                name,
                header::HOST
                    | header::CONTENT_LENGTH
                    | header::TRANSFER_ENCODING
                    | header::CONNECTION
                    | header::UPGRADE
                    | header::CONTENT_TYPE
            ) {
                continue;
            }
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(name, value);
            }
        }
    }
    if let Some(host) = http
        .get("host")
        .and_then(Value::as_str)
        .and_then(|h| HeaderValue::from_str(h).ok())
    {
        headers.insert(header::HOST, host);
    }
    if let Some(ct) = frame
        .payload_type()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    req.extensions_mut().insert(ClientContext {
        conn: session.conn,
        identity: session.identity.clone(),
    });
    if let Some(peer) = peer {
        req.extensions_mut().insert(ConnectInfo(peer));
    }
    Ok(req)
}

/// Run an upstream request and frame its answer.
async fn call_upstream(router: Router, req: Request<Body>, id: &str) -> Frame {
    let res = match router.oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    let (parts, body) = res.into_parts();
    let body = match axum::body::to_bytes(body, MAX_RESPONSE_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "upstream response body unreadable");
            return status_reply(
                id,
                500,
                "Internal Server Error",
                Some("Upstream response unreadable".to_owned()),
            );
        }
    };
    let mut http_headers = Map::new();
    for (name, value) in &parts.headers {
        let Ok(v) = value.to_str() else { continue };
        match http_headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(v);
            }
            _ => {
                http_headers.insert(name.as_str().to_owned(), Value::from(v));
            }
        }
    }
    let payload_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if body.is_empty() {
                "application/json".to_owned()
            } else {
                "application/octet-stream".to_owned()
            }
        });
    let mut f = Frame::new("reply", id)
        .with("status", json!({"code": 200, "status": "OK"}))
        .with(
            "http_status",
            json!({"code": parts.status.as_u16(), "status": parts.status.canonical_reason().unwrap_or("")}),
        )
        .with("http_headers", Value::Object(http_headers))
        .with("payload_type", Value::from(payload_type));
    f.payload = body.to_vec();
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_warning_is_three_minutes_before_or_at_three_quarters() {
        let now = Timestamp::from_unix_secs(1_000_000);
        let mono = Instant::now();
        let (warn, exp) = expiry_timers(now, now.plus_secs(3600), mono);
        assert_eq!(exp, Some(mono + Duration::from_secs(3600)));
        assert_eq!(warn, Some(mono + Duration::from_secs(3600 - 180)));
        let (warn, exp) = expiry_timers(now, now.plus_secs(20), mono);
        assert_eq!(exp, Some(mono + Duration::from_secs(20)));
        assert_eq!(warn, Some(mono + Duration::from_secs(15)));
        // Already expired (accepted within the leeway): both now.
        let (warn, exp) = expiry_timers(now, now.plus_secs(-30), mono);
        assert_eq!((warn, exp), (Some(mono), Some(mono)));
        // Far future: no panic, a timer or none.
        let _ = expiry_timers(now, Timestamp::from_unix_secs(i64::MAX), mono);
    }

    fn session() -> Session {
        Session {
            conn: ConnId(7),
            identity: ChatIdentity {
                account_sid: parley_core::AccountSid::parse("AC00000000000000000000000000000001")
                    .expect("sid"),
                api_key_sid: parley_core::ApiKeySid::parse("SK00000000000000000000000000000001")
                    .expect("sid"),
                identity: "alice".into(),
                service_sid: parley_core::ServiceSid::parse("IS00000000000000000000000000000001")
                    .expect("sid"),
                endpoint_id: None,
                push_credential_sid: None,
                expires_at: None,
            },
            warn_at: None,
            expire_at: None,
        }
    }

    #[test]
    fn message_frames_become_requests() {
        let f = Frame::new("message", "TM1")
            .with(
                "http_request",
                json!({"host": "cds.us1.twilio.com", "path": "/v3/Maps/x/Items", "method": "get",
                "params": {"Order": "desc", "PageSize": 30, "Key": ["a%20b", "c&d"], "Flag": null},
                "headers": {"X-Twilio-Mutation-Id": "m1", "Content-Length": "999", "Bad Name": "x"}}),
            )
            .with("payload_type", json!("application/json"));
        let req = build_request(&f, &session(), None).expect("request");
        assert_eq!(req.method(), Method::GET);
        assert_eq!(
            req.uri().to_string(),
            "/v3/Maps/x/Items?Flag&Key=a%20b&Key=c%26d&Order=desc&PageSize=30"
        );
        assert_eq!(req.headers()["host"], "cds.us1.twilio.com");
        assert_eq!(req.headers()["x-twilio-mutation-id"], "m1");
        assert_eq!(req.headers()["content-type"], "application/json");
        assert!(req.headers().get("content-length").is_none());
        let ctx = req.extensions().get::<ClientContext>().expect("context");
        assert_eq!(ctx.conn, ConnId(7));
        assert_eq!(ctx.identity.identity, "alice");
    }

    #[test]
    fn unusable_message_frames_are_refused_with_a_reason() {
        for http in [
            json!(null),
            json!({"path": "no-slash", "method": "GET"}),
            json!({"path": "/x", "method": "G E T"}),
            json!({"path": "/x y", "method": "GET"}),
        ] {
            let f = Frame::new("message", "TM1").with("http_request", http.clone());
            assert!(build_request(&f, &session(), None).is_err(), "{http}");
        }
    }

    #[test]
    fn init_reply_confirms_capabilities_but_telemetry() {
        let init = Frame::new("init", "TMi")
            .with("capabilities", json!(["client_update", "offline_storage", "telemetry.v1"]))
            .with("continuation_token", json!(null))
            .with(
                "registrations",
                json!([{"product": "ip_messaging", "type": "ers", "notification_protocol_version": 0,
                    "message_types": ["twilio.sync.event"]}]),
            );
        let reply = init_reply(&init, "TMi", &session());
        assert_eq!(reply.method(), "reply");
        assert_eq!(reply.id(), Some("TMi"));
        assert_eq!(reply.header["status"]["code"], 200);
        assert_eq!(
            reply.header["capabilities"],
            json!(["client_update", "offline_storage"])
        );
        assert_eq!(
            reply.header["init_registrations"][0]["message_types"],
            json!(["twilio.sync.event"])
        );
        assert_eq!(reply.header["continuation_token_status"]["reissued"], false);
        let storage = &reply.header["offline_storage"]["ip_messaging"]["storage_id"];
        assert_eq!(storage.as_str().map(str::len), Some(32));
        assert!(reply.str("continuation_token").is_some_and(|t| t.len() > 8));
    }
}
