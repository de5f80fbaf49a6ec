//! The live client transport (`GET /v3/wsconnect`, twilsock v3) as a client sees it, against a
//! real `Application` on a TCP port, on both backends: init accepted and refused, upstream
//! requests, pings, token refresh and expiry, malformed / oversized / unknown frames, the
//! per-identity limit, a slow consumer cut off, and the goodbye at shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use hmac::Mac as _;
use parley_http::live::twilsock::Frame;
use parley_http::live::Hub;
use parley_server::config::{Config, Secret};
use parley_server::Application;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(super::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if super::postgres_skipped() {
                        return;
                    }
                    super::$name(super::Backend::Postgres).await
                }
            }
        )*
    };
}

both_backends!(
    init_is_accepted_and_upstream_requests_answer,
    init_with_a_bad_token_is_refused_and_closed,
    pings_arrive_within_the_interval,
    token_update_keeps_the_identity,
    a_short_token_warns_then_closes_410,
    malformed_oversized_and_unknown_frames_close_with_their_status,
    the_per_identity_limit_refuses_one_more_init,
    the_per_identity_limit_holds_under_a_flood_of_logins,
    a_slow_consumer_is_cut_off,
    shutdown_says_308_with_a_backoff,
    shutdown_answers_running_requests_before_308,
    an_upgraded_socket_outlives_http_timeouts_and_holds_its_connection_slot,
    requests_over_the_in_flight_limit_are_answered_429,
    repeated_failed_inits_are_throttled,
);

fn postgres_skipped() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if ci || !std::env::var("PARLEY_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        return false;
    }
    let url = postgres_url();
    let host = url
        .split('@')
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or("127.0.0.1:5432");
    std::net::TcpStream::connect(host).is_err()
}

fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn unique() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

struct Key {
    sid: String,
    secret: String,
}

/// A running server with one account, its API key, a second account's key and a service.
struct Live {
    addr: SocketAddr,
    hub: Arc<Hub>,
    account: String,
    key: Key,
    other_key: Key,
    service: String,
    /// `Basic …` of the account, for REST calls.
    basic: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: Option<TempDir>,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Live {
    async fn spawn(backend: Backend, tweak: impl FnOnce(&mut parley_http::LiveConfig)) -> Live {
        Self::spawn_with(backend, |c| tweak(&mut c.live)).await
    }

    async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Live {
        let (url, dir, key) = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("parley-live-{}", unique()));
                std::fs::create_dir_all(&dir).unwrap();
                let url = format!("sqlite://{}", dir.join("live.db").display());
                (url, Some(TempDir(dir)), None)
            }
            Backend::Postgres => {
                let base = postgres_url();
                let schema = format!("parley_test_{}_live_{}", now_secs(), unique());
                let store = parley_store_postgres::PgStore::connect_in_schema(&base, &schema)
                    .await
                    .expect("PostgreSQL reachable at TEST_DATABASE_URL");
                drop(store);
                let sep = if base.contains('?') { '&' } else { '?' };
                let key = parley_core::crypto::SecretBox::generate_hex();
                (
                    format!("{base}{sep}options[search_path]={schema}"),
                    None,
                    Some(key),
                )
            }
        };
        let mut config = Config::for_database(&url).unwrap();
        config.listen = "127.0.0.1:0".to_owned();
        if let Some(key) = key {
            config.db.secret_key = Some(Secret::new(key));
        }
        tweak(&mut config);
        let (store, secrets) = parley_server::db::open(&config.db).await.unwrap();
        let a = parley_server::admin::create_account(store.as_ref(), &secrets, None, None, None)
            .await
            .unwrap();
        let b = parley_server::admin::create_account(store.as_ref(), &secrets, None, None, None)
            .await
            .unwrap();
        let ka = parley_server::admin::create_api_key(store.as_ref(), &secrets, &a.sid, None)
            .await
            .unwrap();
        let kb = parley_server::admin::create_api_key(store.as_ref(), &secrets, &b.sid, None)
            .await
            .unwrap();
        drop(store);
        let app = Application::build(config).await.unwrap();
        let addr = app.local_addr();
        let hub = app.live();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let basic = STANDARD.encode(format!("{}:{}", a.sid, a.auth_token));
        let (status, body) = http(
            addr,
            &format!(
                "POST /v2/Services HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {basic}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 14\r\n\
                 Connection: close\r\n\r\nFriendlyName=s"
            ),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        Live {
            addr,
            hub,
            account: a.sid.to_string(),
            key: Key {
                sid: ka.sid.to_string(),
                secret: ka.secret,
            },
            other_key: Key {
                sid: kb.sid.to_string(),
                secret: kb.secret,
            },
            service: body["sid"].as_str().unwrap().to_owned(),
            basic,
            stop: Some(stop),
            server: Some(server),
            _dir: dir,
        }
    }

    /// A token for `identity` in the service, signed with `key`, expiring `ttl` seconds from now.
    fn token(&self, key: &Key, identity: &str, ttl: i64) -> String {
        access_token(key, &self.account, identity, &self.service, ttl)
    }

    async fn connect(&self) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v3/wsconnect", self.addr))
            .await
            .expect("websocket upgrade");
        Client { ws, n: 0 }
    }

    /// Connect and init with a fresh token for `identity`; returns the client and the reply.
    async fn login(&self, identity: &str) -> (Client, Frame) {
        let mut c = self.connect().await;
        let reply = c.init(&self.token(&self.key, identity, 3600)).await;
        (c, reply)
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(15), server)
                .await
                .expect("server stops")
                .unwrap()
                .unwrap();
        }
    }
}

fn access_token(key: &Key, account: &str, identity: &str, service: &str, ttl: i64) -> String {
    let now = now_secs();
    let header = json!({"alg": "HS256", "cty": "twilio-fpa;v=1", "typ": "JWT"});
    let payload = json!({
        "jti": format!("{}-{now}", key.sid),
        "grants": {"chat": {"service_sid": service}, "identity": identity},
        "iss": key.sid,
        "exp": now + ttl,
        "nbf": now - 1,
        "sub": account,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key.secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// One raw HTTP/1.1 exchange (the request closes the connection): status and JSON body.
async fn http(addr: SocketAddr, request: &str) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

/// What the server sent next.
#[derive(Debug)]
enum Got {
    Frame(Frame),
    /// A websocket close frame (code), or the stream ended (None).
    Closed(Option<u16>),
}

struct Client {
    ws: Ws,
    n: u32,
}

impl Client {
    fn id(&mut self) -> String {
        self.n += 1;
        format!("TMtest{}", self.n)
    }

    async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    async fn send(&mut self, f: &Frame) {
        self.send_raw(f.encode()).await;
    }

    /// The next twilsock frame or the close, within `limit`.
    async fn next_within(&mut self, limit: Duration) -> Got {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("the server answers in time");
            match msg {
                Some(Ok(Message::Binary(b))) => {
                    return Got::Frame(Frame::parse(&b).expect("the server's frames parse"))
                }
                Some(Ok(Message::Close(c))) => return Got::Closed(c.map(|c| u16::from(c.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Got::Closed(None),
            }
        }
    }

    async fn next(&mut self) -> Got {
        self.next_within(Duration::from_secs(10)).await
    }

    /// The next frame that is not a ping.
    async fn frame(&mut self) -> Frame {
        loop {
            match self.next().await {
                Got::Frame(f) if f.method() == "ping" => continue,
                Got::Frame(f) => return f,
                Got::Closed(c) => panic!("closed ({c:?}) while a frame was expected"),
            }
        }
    }

    async fn init(&mut self, token: &str) -> Frame {
        let id = self.id();
        let init = Frame::new("init", &id)
            .with("token", json!(token))
            .with("continuation_token", Value::Null)
            .with(
                "capabilities",
                json!(["client_update", "offline_storage", "telemetry.v1"]),
            )
            .with(
                "registrations",
                json!([{"product": "ip_messaging", "type": "ers", "notification_protocol_version": 0,
                    "message_types": ["twilio.sync.event", "twilio.ipmsg.typing_indicator"]}]),
            )
            .with("metadata", json!({"type": "chat", "sdk": "JS"}));
        self.send(&init).await;
        let reply = self.frame().await;
        assert_eq!(reply.method(), "reply");
        assert_eq!(reply.id(), Some(id.as_str()));
        reply
    }

    /// An upstream request; returns the reply.
    async fn request(&mut self, method: &str, path: &str, body: Option<Value>) -> Frame {
        let id = self.id();
        let mut f = Frame::new("message", &id)
            .with("active_grant", json!("ip_messaging"))
            .with(
                "http_request",
                json!({"host": "aim.us1.twilio.com", "path": path, "method": method,
                    "params": {}, "headers": {"Content-Type": "application/json"}}),
            )
            .with("payload_type", json!("application/json"));
        if let Some(b) = body {
            f.payload = b.to_string().into_bytes();
        }
        self.send(&f).await;
        let reply = self.frame().await;
        assert_eq!(reply.method(), "reply");
        assert_eq!(reply.id(), Some(id.as_str()));
        reply
    }

    /// Expect a twilsock `close` with `code`, then the websocket close with `ws_code`.
    async fn expect_close(&mut self, code: u16, ws_code: u16) -> Frame {
        let f = self.frame().await;
        assert_eq!(f.method(), "close", "{:?}", f.header);
        assert_eq!(f.header["status"]["code"], code, "{:?}", f.header);
        self.expect_ws_close(ws_code).await;
        f
    }

    async fn expect_ws_close(&mut self, ws_code: u16) {
        loop {
            match self.next().await {
                Got::Frame(f) if f.method() == "ping" => continue,
                Got::Frame(f) => panic!("a frame after the end: {:?}", f.header),
                Got::Closed(c) => {
                    assert_eq!(c, Some(ws_code));
                    return;
                }
            }
        }
    }
}

fn status_code(f: &Frame) -> u64 {
    f.header["status"]["code"].as_u64().unwrap_or(0)
}

fn payload_json(f: &Frame) -> Value {
    serde_json::from_slice(&f.payload).unwrap_or(Value::Null)
}

async fn init_is_accepted_and_upstream_requests_answer(b: Backend) {
    let mut live = Live::spawn(b, |_| {}).await;
    let (mut c, reply) = live.login("alice").await;
    assert_eq!(status_code(&reply), 200, "{:?}", reply.header);
    assert_eq!(
        reply.header["capabilities"],
        json!(["client_update", "offline_storage"])
    );
    assert!(reply.str("continuation_token").is_some());
    assert_eq!(
        reply.header["init_registrations"][0]["message_types"],
        json!(["twilio.sync.event", "twilio.ipmsg.typing_indicator"])
    );
    assert!(reply.header["offline_storage"]["ip_messaging"]["storage_id"].is_string());
    assert_eq!(
        live.hub
            .connections_of(
                &parley_core::ServiceSid::parse(&live.service).unwrap(),
                "alice"
            )
            .len(),
        1
    );

    // An upstream request to a path nobody serves: transport OK, HTTP 404 with Twilio's body.
    let r = c.request("GET", "/Client/v1/Nothing/Here", None).await;
    assert_eq!(status_code(&r), 200);
    assert_eq!(r.header["http_status"]["code"], 404);
    assert_eq!(r.payload_type(), Some("application/json"));
    let body = payload_json(&r);
    assert_eq!(body["code"], 20404, "{body}");
    assert_eq!(body["status"], 404, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));

    // Query parameters travel too; a POST with a JSON body reaches the router as well.
    let r = c
        .request("POST", "/v1/unknown", Some(json!({"a": 1})))
        .await;
    assert_eq!(r.header["http_status"]["code"], 404);

    // A message frame the server cannot turn into a request: 400 transport status, still open.
    let id = c.id();
    c.send(&Frame::new("message", &id).with("http_request", json!({"path": "relative"})))
        .await;
    let r = c.frame().await;
    assert_eq!(r.id(), Some(id.as_str()));
    assert_eq!(status_code(&r), 400, "{:?}", r.header);
    assert!(r.header["status"]["description"].is_string());

    // A plain GET of the socket path (no upgrade) is a Twilio error, not a hang.
    let (status, body) = http(
        live.addr,
        "GET /v3/wsconnect HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!((400..500).contains(&status), "{status} {body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["code"].as_u64().is_some(), "{body}");

    // Metrics see the connection.
    let (status, _) = http(
        live.addr,
        "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let mut s = tokio::net::TcpStream::connect(live.addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.contains("parley_live_connections 1"), "{out}");
    assert!(
        out.contains("parley_live_frames_total{direction=\"in\"}"),
        "{out}"
    );

    // The client's close ends the connection.
    c.send(&Frame::new("close", "TMbye")).await;
    c.expect_ws_close(1000).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live.hub.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(live.hub.is_empty(), "unregistered after close");
    live.stop().await;
}

async fn init_with_a_bad_token_is_refused_and_closed(b: Backend) {
    let mut live = Live::spawn(b, |_| {}).await;
    let wrong_secret = Key {
        sid: live.key.sid.clone(),
        secret: "not-the-secret".into(),
    };
    let cases = [
        (
            "bad signature",
            live.token(&wrong_secret, "alice", 3600),
            20101,
        ),
        ("expired", live.token(&live.key, "alice", -3600), 20104),
        (
            "another account's key",
            live.token(&live.other_key, "alice", 3600),
            20107,
        ),
        (
            "no such service",
            access_token(
                &live.key,
                &live.account,
                "alice",
                "IS00000000000000000000000000000000",
                3600,
            ),
            20106,
        ),
        ("garbage", "not.a.jwt".to_owned(), 20102),
        ("empty", String::new(), 20101),
    ];
    for (what, token, code) in cases {
        let mut c = live.connect().await;
        let reply = c.init(&token).await;
        assert_eq!(status_code(&reply), 401, "{what}: {:?}", reply.header);
        assert_eq!(reply.header["status"]["errorCode"], code, "{what}");
        assert!(
            reply.header["status"]["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{what}"
        );
        c.expect_ws_close(1008).await;
    }
    assert!(live.hub.is_empty());
    live.stop().await;
}

async fn pings_arrive_within_the_interval(b: Backend) {
    let mut live = Live::spawn(b, |l| l.ping_interval = Duration::from_secs(1)).await;
    let (mut c, reply) = live.login("alice").await;
    assert_eq!(status_code(&reply), 200);
    let started = Instant::now();
    for _ in 0..2 {
        match c.next_within(Duration::from_secs(3)).await {
            Got::Frame(f) => {
                assert_eq!(f.method(), "ping", "{:?}", f.header);
                // The client acks it, as the SDK does.
                let id = f.id().unwrap().to_owned();
                c.send(
                    &Frame::new("reply", &id).with("status", json!({"code": 200, "status": "OK"})),
                )
                .await;
            }
            Got::Closed(code) => panic!("closed {code:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    // Still usable after the acks.
    let r = c.request("GET", "/nothing", None).await;
    assert_eq!(r.header["http_status"]["code"], 404);
    live.stop().await;
}

async fn token_update_keeps_the_identity(b: Backend) {
    let mut live = Live::spawn(b, |_| {}).await;
    let (mut c, _) = live.login("alice").await;
    let fresh = live.token(&live.key, "alice", 7200);
    c.send(&Frame::new("update", "TMu1").with("token", json!(fresh)))
        .await;
    let r = c.frame().await;
    assert_eq!(r.id(), Some("TMu1"));
    assert_eq!(status_code(&r), 200, "{:?}", r.header);
    let r = c.request("GET", "/nothing", None).await;
    assert_eq!(r.header["http_status"]["code"], 404, "still connected");

    // An expired token: 401 with 20104 (the SDK's tokenExpired), then closed.
    let expired = live.token(&live.key, "alice", -3600);
    c.send(&Frame::new("update", "TMu2").with("token", json!(expired)))
        .await;
    let r = c.frame().await;
    assert_eq!(status_code(&r), 401, "{:?}", r.header);
    assert_eq!(r.header["status"]["errorCode"], 20104);
    c.expect_ws_close(1008).await;

    // Another identity's token: 403, then closed.
    let (mut c, _) = live.login("alice").await;
    let bob = live.token(&live.key, "bob", 3600);
    c.send(&Frame::new("update", "TMu3").with("token", json!(bob)))
        .await;
    let r = c.frame().await;
    assert_eq!(status_code(&r), 403, "{:?}", r.header);
    assert_eq!(r.header["status"]["errorCode"], 20101);
    c.expect_ws_close(1008).await;
    live.stop().await;
}

async fn a_short_token_warns_then_closes_410(b: Backend) {
    let mut live = Live::spawn(b, |_| {}).await;
    let mut c = live.connect().await;
    let started = Instant::now();
    let reply = c.init(&live.token(&live.key, "alice", 4)).await;
    assert_eq!(status_code(&reply), 200);
    let warn = c.frame().await;
    assert_eq!(warn.method(), "client_update", "{:?}", warn.header);
    assert_eq!(
        warn.str("client_update_type"),
        Some("token_about_to_expire")
    );
    let warned = started.elapsed();
    let close = c.expect_close(410, 1000).await;
    let closed = started.elapsed();
    assert!(close.header["status"]["status"].is_string());
    assert!(warned < closed, "{warned:?} {closed:?}");
    assert!(
        closed > Duration::from_millis(2500) && closed < Duration::from_secs(7),
        "closed after {closed:?}"
    );
    live.stop().await;
}

async fn malformed_oversized_and_unknown_frames_close_with_their_status(b: Backend) {
    let mut live = Live::spawn(b, |l| l.max_frame_bytes = 4096).await;
    // Malformed after init: 406, websocket 1002.
    let (mut c, _) = live.login("alice").await;
    c.send_raw(b"TWILSOCK V3.0 999\r\n{}".to_vec()).await;
    let f = c.expect_close(406, 1002).await;
    assert!(f.header["status"]["status"]
        .as_str()
        .is_some_and(|s| s.contains("malformed")));

    // Malformed as the first frame: same.
    let mut c = live.connect().await;
    c.send_raw(b"hello".to_vec()).await;
    c.expect_close(406, 1002).await;

    // Oversized: 406, websocket 1009.
    let (mut c, _) = live.login("alice").await;
    let mut big = Frame::new("message", "TMbig").with(
        "http_request",
        json!({"host": "h", "path": "/x", "method": "POST"}),
    );
    big.payload = vec![b'a'; 8192];
    c.send(&big).await;
    let f = c.expect_close(406, 1009).await;
    assert!(f.header["status"]["status"]
        .as_str()
        .is_some_and(|s| s.contains("too large")));

    // Unknown method: 417, websocket 1002.
    let (mut c, _) = live.login("alice").await;
    c.send(&Frame::new("frobnicate", "TMx")).await;
    c.expect_close(417, 1002).await;

    // A first frame other than init: 417.
    let mut c = live.connect().await;
    c.send(&Frame::new("message", "TMy")).await;
    c.expect_close(417, 1002).await;
    live.stop().await;
}

async fn the_per_identity_limit_refuses_one_more_init(b: Backend) {
    let mut live = Live::spawn(b, |l| l.max_connections_per_identity = 2).await;
    let (_c1, r1) = live.login("alice").await;
    let (_c2, r2) = live.login("alice").await;
    assert_eq!(status_code(&r1), 200);
    assert_eq!(status_code(&r2), 200);
    let (mut c3, r3) = live.login("alice").await;
    assert_eq!(status_code(&r3), 429, "{:?}", r3.header);
    assert!(r3.header["status"]["description"]
        .as_str()
        .is_some_and(|d| d.contains("connections")));
    assert!(payload_json(&r3)["backoff_policy"]["reconnect_min_ms"].is_u64());
    c3.expect_ws_close(1013).await;
    // Another identity is not affected.
    let (_b, rb) = live.login("bob").await;
    assert_eq!(status_code(&rb), 200);
    live.stop().await;
}

/// 40 logins of one identity at once against a limit of 5: exactly 5 are accepted (the
/// limit is checked and taken under one lock), the others refused with 429; the accepted ones
/// keep working and the limit frees up when one closes.
async fn the_per_identity_limit_holds_under_a_flood_of_logins(b: Backend) {
    let mut live = Live::spawn(b, |l| l.max_connections_per_identity = 5).await;
    let token = live.token(&live.key, "alice", 3600);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (addr, token) = (live.addr, token.clone());
        tasks.spawn(async move {
            let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v3/wsconnect"))
                .await
                .expect("websocket upgrade");
            let mut c = Client { ws, n: 0 };
            let reply = c.init(&token).await;
            (status_code(&reply), c)
        });
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    while let Some(done) = tasks.join_next().await {
        let (code, c) = done.unwrap();
        match code {
            200 => accepted.push(c),
            429 => refused += 1,
            other => panic!("init answered {other}"),
        }
    }
    assert_eq!((accepted.len(), refused), (5, 35));
    for c in &mut accepted {
        let r = c.request("GET", "/nothing", None).await;
        assert_eq!(status_code(&r), 200);
    }
    drop(accepted.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_c, r) = live.login("alice").await;
        if status_code(&r) == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed slot was never reusable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    live.stop().await;
}

async fn a_slow_consumer_is_cut_off(b: Backend) {
    let mut live = Live::spawn(b, |l| l.send_queue = 4).await;
    let (mut c, _) = live.login("alice").await;
    let service = parley_core::ServiceSid::parse(&live.service).unwrap();
    let conn = live.hub.connections_of(&service, "alice")[0];
    // A first notification arrives framed as the SDK expects.
    assert!(live
        .hub
        .notify(conn, "twilio.ipmsg.typing_indicator", json!({"n": 0})));
    let n = c.frame().await;
    assert_eq!(n.method(), "notification");
    assert_eq!(n.str("message_type"), Some("twilio.ipmsg.typing_indicator"));
    assert_eq!(n.str("notification_ctx_id"), Some(""));
    assert_eq!(n.payload_type(), Some("application/json"));
    assert_eq!(payload_json(&n), json!({"n": 0}));
    // Without reading, far more than the queue holds.
    let big = "x".repeat(16 * 1024);
    let mut refused = 0;
    for i in 0..20_000 {
        if !live
            .hub
            .notify(conn, "twilio.sync.event", json!({"n": i, "pad": big}))
        {
            refused += 1;
        }
    }
    assert!(refused > 0, "the queue overflowed");
    assert!(live.hub.connections_of(&service, "alice").is_empty());
    // The client finds the notifications that were queued, then the close.
    loop {
        let f = c.frame().await;
        if f.method() == "close" {
            assert_eq!(f.header["status"]["code"], 503, "{:?}", f.header);
            break;
        }
        assert_eq!(f.method(), "notification");
    }
    c.expect_ws_close(1013).await;
    live.stop().await;
}

async fn shutdown_says_308_with_a_backoff(b: Backend) {
    let mut live = Live::spawn(b, |_| {}).await;
    let (mut c, _) = live.login("alice").await;
    // A socket still waiting for its init is told too (it does not hold the shutdown up).
    let mut waiting = live.connect().await;
    let stop = live.stop.take().unwrap();
    let stopping = Instant::now();
    stop.send(()).unwrap();
    waiting.expect_close(308, 1001).await;
    let f = c.frame().await;
    assert_eq!(f.method(), "close");
    assert_eq!(f.header["status"]["code"], 308);
    let body = payload_json(&f);
    assert!(
        body["backoff_policy"]["reconnect_min_ms"].is_u64(),
        "{body}"
    );
    assert!(
        body["backoff_policy"]["reconnect_max_ms"].is_u64(),
        "{body}"
    );
    c.expect_ws_close(1001).await;
    live.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
}

/// A pre-event webhook that answers 200 after `delay`; returns its URL.
async fn slow_hook(delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    format!("http://{addr}/pre")
}

/// SIGTERM while a client's change is running (its pre-event webhook takes 1.5 s): the socket
/// stops reading but sends that change's reply (201) before the reconnect code, so the client
/// learns its change was made.
async fn shutdown_answers_running_requests_before_308(b: Backend) {
    // Arrange
    let mut live = Live::spawn(b, |_| {}).await;
    let hook = slow_hook(Duration::from_millis(1500)).await;
    let form = format!("PreWebhookUrl={hook}&WebhookFilters=onChannelAdd");
    let (status, body) = http(
        live.addr,
        &format!(
            "POST /v2/Services/{} HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{form}",
            live.service,
            live.basic,
            form.len()
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (mut c, _) = live.login("alice").await;
    let id = c.id();
    let mut f = Frame::new("message", &id)
        .with("active_grant", json!("ip_messaging"))
        .with(
            "http_request",
            json!({"host": "aim.us1.twilio.com", "path": "/Client/v1/Conversations",
                "method": "POST", "params": {}, "headers": {"Content-Type": "application/json"}}),
        )
        .with("payload_type", json!("application/json"));
    f.payload = json!({"friendly_name": "made during shutdown"})
        .to_string()
        .into_bytes();
    c.send(&f).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act
    let stop = live.stop.take().unwrap();
    stop.send(()).unwrap();

    // Assert
    let reply = c.frame().await;
    assert_eq!(reply.method(), "reply", "the reply comes first: {reply:?}");
    assert_eq!(reply.id(), Some(id.as_str()));
    assert_eq!(reply.header["http_status"]["code"], 201, "{reply:?}");
    assert_eq!(
        payload_json(&reply)["friendly_name"],
        "made during shutdown"
    );
    let close = c.frame().await;
    assert_eq!(close.method(), "close");
    assert_eq!(close.header["status"]["code"], 308);
    c.expect_ws_close(1001).await;
    live.stop().await;
}

async fn an_upgraded_socket_outlives_http_timeouts_and_holds_its_connection_slot(b: Backend) {
    let mut live = Live::spawn_with(b, |c| {
        c.conn.header_read_timeout = Duration::from_secs(1);
        c.conn.keep_alive_timeout = Duration::from_secs(1);
        c.conn.body_read_timeout = Duration::from_secs(1);
        c.conn.max_connections = 2;
        c.live.ping_interval = Duration::from_secs(60);
    })
    .await;
    let (mut c1, _) = live.login("alice").await;
    let (_c2, _) = live.login("alice").await;
    // Idle for longer than every HTTP timeout: still open and usable.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = c1.request("GET", "/nothing", None).await;
    assert_eq!(r.header["http_status"]["code"], 404);
    // The two sockets hold both connection slots: plain HTTP is refused 503 meanwhile.
    let (status, body) = http(
        live.addr,
        "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 503, "{body}");
    // Closing one frees its slot.
    c1.send(&Frame::new("close", "TMbye")).await;
    c1.expect_ws_close(1000).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut status = 0;
    while Instant::now() < deadline {
        status = http(
            live.addr,
            "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await
        .0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
    live.stop().await;
}

async fn requests_over_the_in_flight_limit_are_answered_429(b: Backend) {
    let mut live = Live::spawn(b, |l| l.max_requests_in_flight = 1).await;
    let (mut c, _) = live.login("alice").await;
    // A burst in one write: the socket reads the frames faster than requests finish.
    let n = 200;
    for i in 0..n {
        let f = Frame::new("message", &format!("TMb{i}")).with(
            "http_request",
            json!({"host": "aim.us1.twilio.com", "path": "/nothing", "method": "GET"}),
        );
        c.ws.feed(Message::Binary(f.encode().into())).await.unwrap();
    }
    c.ws.flush().await.unwrap();
    let (mut answered, mut refused) = (0, 0);
    for _ in 0..n {
        let r = c.frame().await;
        assert_eq!(r.method(), "reply");
        match status_code(&r) {
            200 => {
                assert_eq!(r.header["http_status"]["code"], 404);
                answered += 1;
            }
            429 => {
                assert!(r.header["status"]["description"].is_string());
                refused += 1;
            }
            other => panic!("status {other}: {:?}", r.header),
        }
    }
    assert!(answered >= 1, "{answered} answered, {refused} refused");
    assert!(refused >= 1, "{answered} answered, {refused} refused");
    // Once the burst is over, requests are served again.
    let r = c.request("GET", "/nothing", None).await;
    assert_eq!(status_code(&r), 200);
    live.stop().await;
}

async fn repeated_failed_inits_are_throttled(b: Backend) {
    let mut live = Live::spawn_with(b, |c| c.auth_failure_limit = Some(2)).await;
    let bad = Key {
        sid: live.key.sid.clone(),
        secret: "wrong".into(),
    };
    for _ in 0..2 {
        let mut c = live.connect().await;
        let r = c.init(&live.token(&bad, "alice", 3600)).await;
        assert_eq!(status_code(&r), 401);
        c.expect_ws_close(1008).await;
    }
    // Over the limit: even a good token waits (429 with a backoff), as on the HTTP doors.
    let mut c = live.connect().await;
    let r = c.init(&live.token(&live.key, "alice", 3600)).await;
    assert_eq!(status_code(&r), 429, "{:?}", r.header);
    assert_eq!(r.header["status"]["errorCode"], 20429);
    assert!(payload_json(&r)["backoff_policy"]["reconnect_min_ms"].is_u64());
    c.expect_ws_close(1013).await;
    live.stop().await;
}
