//! Fake APNs and FCM servers speaking the real protocols, for tests and local runs.
//! Its own crate (a dev-dependency of the tests, plus the `parley-fakes` binary), so the
//! `parley` binary does not contain it.
//!
//! * **APNs**: HTTP/2 cleartext (prior knowledge) `POST /3/device/<token>`. Checks HTTP/2, the
//!   `apns-topic`, `apns-push-type`, `apns-id` (UUID), `apns-priority`, `apns-expiration`
//!   headers, the provider JWT shape when an `authorization` header is sent (ES256, `kid`,
//!   `iss`, `iat` under an hour old), and the body (JSON object with `aps`, ≤ 4096 bytes).
//!   Answers 200 with the `apns-id` echoed, or `{"reason": …}` errors like Apple.
//! * **FCM**: `POST /token` (OAuth2 JWT-bearer grant; checks the RS256 assertion's shape:
//!   header `alg`, claims `iss`, `scope`, `aud`, `iat`, `exp`) issues `fake-access-<n>` tokens;
//!   `POST /v1/projects/<id>/messages:send` needs one as bearer and checks the message
//!   (`message.token`, string-only `data` ≤ 4096 bytes). Errors use Google's error JSON.
//!
//! # Scripting
//!
//! Per device token, by prefix: `dead-` (APNs 410 Unregistered / FCM 404 UNREGISTERED),
//! `badtoken-` (400 BadDeviceToken / 400 INVALID_ARGUMENT on `message.token`), `wrongtopic-`
//! (400 DeviceTokenNotForTopic / 403 SENDER_ID_MISMATCH), `ratelimit-` (429 with `Retry-After`),
//! `error-` (500), `unavailable-` (503), `forbidden-` (403 InvalidProviderToken /
//! PERMISSION_DENIED), `slow-` (answers 200 after a delay), `expiredjwt-` (APNs: 403
//! ExpiredProviderToken when the provider JWT was already used before, 200 for a fresh one). Explicit modes set through the admin
//! endpoint win over prefixes, which win over the global mode.
//!
//! # Admin endpoints (on both servers)
//!
//! * `GET /_fake/requests`: every recorded request as JSON; `DELETE` clears them.
//! * `POST /_fake/mode` with `{"mode": "rate_limit", "token": "<optional>", "retry_after": 7,
//!   "delay_ms": 2000}`: set the global mode (no `token`) or one token's mode; `GET` shows them.
//!   Modes: `normal`, `dead`, `bad_token`, `wrong_topic`, `rate_limit`, `error`, `unavailable`,
//!   `forbidden`, `slow`, `expired_provider_token`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use parley_push::fcm::{FCM_SCOPE, JWT_BEARER_GRANT};

/// How a fake answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FakeMode {
    /// Accept.
    #[default]
    Normal,
    /// The token is gone (APNs 410, FCM 404 UNREGISTERED).
    Dead,
    /// The token is malformed (APNs 400 BadDeviceToken, FCM 400 INVALID_ARGUMENT).
    BadToken,
    /// The token belongs to another app (APNs 400 DeviceTokenNotForTopic, FCM 403 SENDER_ID_MISMATCH).
    WrongTopic,
    /// 429 with `Retry-After`.
    RateLimit,
    /// 500.
    Error,
    /// 503.
    Unavailable,
    /// 403 (APNs InvalidProviderToken, FCM PERMISSION_DENIED).
    Forbidden,
    /// Accept after a delay.
    Slow,
    /// APNs: 403 `ExpiredProviderToken` for a provider JWT already used on an earlier request,
    /// 200 for a fresh one (FCM: like `normal`).
    ExpiredProviderToken,
}

impl FakeMode {
    /// The mode a token's prefix selects, if any.
    pub fn from_token(token: &str) -> Option<Self> {
        const PREFIXES: [(&str, FakeMode); 9] = [
            ("expiredjwt-", FakeMode::ExpiredProviderToken),
            ("dead-", FakeMode::Dead),
            ("badtoken-", FakeMode::BadToken),
            ("wrongtopic-", FakeMode::WrongTopic),
            ("ratelimit-", FakeMode::RateLimit),
            ("error-", FakeMode::Error),
            ("unavailable-", FakeMode::Unavailable),
            ("forbidden-", FakeMode::Forbidden),
            ("slow-", FakeMode::Slow),
        ];
        PREFIXES
            .iter()
            .find(|(p, _)| token.starts_with(p))
            .map(|(_, m)| *m)
    }
}

/// One request as the fake saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// `apns`, `fcm` or `oauth`.
    pub provider: String,
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// `HTTP/2.0`, `HTTP/1.1`…
    pub version: String,
    /// Request headers (lowercase names; repeated headers joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// The body: parsed JSON when it is JSON, else the text (form bodies as an object).
    pub body: Value,
    /// Device token (APNs path token or FCM `message.token`).
    pub device_token: Option<String>,
    /// Status answered.
    pub status: u16,
    /// Error reason answered, if any.
    pub reason: Option<String>,
}

#[derive(Debug)]
struct FakeState {
    name: &'static str,
    verbose: bool,
    requests: Mutex<Vec<RecordedRequest>>,
    global: Mutex<FakeMode>,
    per_token: Mutex<HashMap<String, FakeMode>>,
    retry_after: AtomicU64,
    delay_ms: AtomicU64,
    access_tokens: Mutex<HashSet<String>>,
    issued: AtomicU64,
    sent: AtomicU64,
    tls_rejected: AtomicU64,
    jwts_seen: Mutex<HashSet<String>>,
}

/// Control and inspect one running fake (cheap to clone).
#[derive(Clone, Debug)]
pub struct FakeHandle {
    state: Arc<FakeState>,
}

impl FakeHandle {
    fn new(name: &'static str, verbose: bool) -> Self {
        Self {
            state: Arc::new(FakeState {
                name,
                verbose,
                requests: Mutex::default(),
                global: Mutex::default(),
                per_token: Mutex::default(),
                retry_after: AtomicU64::new(7),
                delay_ms: AtomicU64::new(2000),
                access_tokens: Mutex::default(),
                issued: AtomicU64::new(0),
                sent: AtomicU64::new(0),
                tls_rejected: AtomicU64::new(0),
                jwts_seen: Mutex::default(),
            }),
        }
    }

    /// Every recorded request, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// Recorded requests of one provider (`apns`, `fcm`, `oauth`).
    pub fn requests_of(&self, provider: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.provider == provider)
            .collect()
    }

    /// Forget the recorded requests.
    pub fn clear(&self) {
        lock(&self.state.requests).clear();
    }

    /// Set the mode of every token without an explicit mode or a scripted prefix.
    pub fn set_mode(&self, mode: FakeMode) {
        *lock(&self.state.global) = mode;
    }

    /// Set the mode of one token.
    pub fn set_token_mode(&self, token: &str, mode: FakeMode) {
        lock(&self.state.per_token).insert(token.to_owned(), mode);
    }

    /// `Retry-After` seconds sent with 429s.
    pub fn set_retry_after(&self, secs: u64) {
        self.state.retry_after.store(secs, Ordering::Relaxed);
    }

    /// Delay of `slow` answers.
    pub fn set_delay(&self, delay: Duration) {
        self.state.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// How many OAuth2 access tokens the fake FCM issued.
    pub fn access_tokens_issued(&self) -> u64 {
        self.state.issued.load(Ordering::Relaxed)
    }

    /// How many TLS handshakes the TLS fake APNs refused (no or untrusted client certificate).
    pub fn tls_handshakes_refused(&self) -> u64 {
        self.state.tls_rejected.load(Ordering::Relaxed)
    }

    /// Revoke every issued access token (the next FCM send gets a 401).
    pub fn revoke_access_tokens(&self) {
        lock(&self.state.access_tokens).clear();
    }

    fn mode_for(&self, token: &str) -> FakeMode {
        if let Some(m) = lock(&self.state.per_token).get(token) {
            return *m;
        }
        FakeMode::from_token(token).unwrap_or(*lock(&self.state.global))
    }

    fn record(&self, r: RecordedRequest) {
        if self.state.verbose {
            let body = serde_json::to_string(&r.body).unwrap_or_default();
            println!(
                "[{}] {} {} {} -> {}{} {}",
                r.provider,
                r.method,
                r.path,
                r.version,
                r.status,
                r.reason
                    .as_deref()
                    .map(|x| format!(" {x}"))
                    .unwrap_or_default(),
                body
            );
        }
        lock(&self.state.requests).push(r);
    }
}

/// Both fakes, running in this process.
#[derive(Clone, Debug)]
pub struct Fakes {
    /// Base URL of the fake APNs (`http://127.0.0.1:<port>`, h2c).
    pub apns_url: String,
    /// Base URL of the fake FCM.
    pub fcm_url: String,
    /// OAuth2 token endpoint of the fake FCM (`<fcm_url>/token`), for service-account JSONs.
    pub token_uri: String,
    /// APNs control.
    pub apns: FakeHandle,
    /// FCM control.
    pub fcm: FakeHandle,
}

/// Start both fakes on ephemeral loopback ports (quiet).
pub async fn spawn_fakes() -> std::io::Result<Fakes> {
    let local: SocketAddr = ([127, 0, 0, 1], 0).into();
    let (apns_addr, apns) = spawn_apns(local, false).await?;
    let (fcm_addr, fcm) = spawn_fcm(local, false).await?;
    let fcm_url = format!("http://{fcm_addr}");
    Ok(Fakes {
        apns_url: format!("http://{apns_addr}"),
        token_uri: format!("{fcm_url}/token"),
        fcm_url,
        apns,
        fcm,
    })
}

async fn serve(addr: SocketAddr, router: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "fake server stopped");
        }
    });
    Ok(bound)
}

/// Start a fake APNs on `addr`; `verbose` prints every request.
pub async fn spawn_apns(
    addr: SocketAddr,
    verbose: bool,
) -> std::io::Result<(SocketAddr, FakeHandle)> {
    let h = FakeHandle::new("apns", verbose);
    Ok((serve(addr, apns_router(h.clone())).await?, h))
}

/// Start a fake FCM (with its OAuth2 token endpoint) on `addr`.
pub async fn spawn_fcm(
    addr: SocketAddr,
    verbose: bool,
) -> std::io::Result<(SocketAddr, FakeHandle)> {
    let h = FakeHandle::new("fcm", verbose);
    Ok((serve(addr, fcm_router(h.clone())).await?, h))
}

/// TLS material of [`spawn_apns_tls`] (PEM texts).
#[derive(Clone, Copy, Debug)]
pub struct FakeTls<'a> {
    /// Server certificate chain.
    pub server_cert_pem: &'a str,
    /// Server private key.
    pub server_key_pem: &'a str,
    /// CA that client certificates must chain to (client certificates are required).
    pub client_ca_pem: &'a str,
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Start a fake APNs over TLS (HTTP/2 via ALPN) that **requires** a client certificate issued
/// by `tls.client_ca_pem`, as Apple does for certificate auth. Token-auth requests without a
/// client certificate are refused at the handshake ([`FakeHandle::tls_handshakes_refused`]).
pub async fn spawn_apns_tls(
    addr: SocketAddr,
    tls: FakeTls<'_>,
    verbose: bool,
) -> std::io::Result<(SocketAddr, FakeHandle)> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_slice_iter(tls.server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err)?;
    let key = PrivateKeyDer::from_pem_slice(tls.server_key_pem.as_bytes()).map_err(io_err)?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(tls.client_ca_pem.as_bytes()) {
        roots.add(ca.map_err(io_err)?).map_err(io_err)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(io_err)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(io_err)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpListener::bind(addr).await?;
    let bound = tcp.local_addr()?;
    let h = FakeHandle::new("apns", verbose);
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        handle: h.clone(),
    };
    let router = apns_router(h.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "fake TLS server stopped");
        }
    });
    Ok((bound, h))
}

struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handle: FakeHandle,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, peer) = match self.tcp.accept().await {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            // Handshakes are sequential: fine for a test fake, bounded by a timeout.
            match tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => return (tls, peer),
                Ok(Err(e)) => {
                    self.handle
                        .state
                        .tls_rejected
                        .fetch_add(1, Ordering::Relaxed);
                    if self.handle.state.verbose {
                        println!("[apns] TLS handshake refused: {e}");
                    }
                }
                Err(_) => {
                    self.handle
                        .state
                        .tls_rejected
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

fn admin_routes(router: Router<FakeHandle>) -> Router<FakeHandle> {
    router
        .route(
            "/_fake/requests",
            get(|State(h): State<FakeHandle>| async move { Json(h.requests()) }).delete(
                |State(h): State<FakeHandle>| async move {
                    h.clear();
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route("/_fake/mode", get(get_mode).post(set_mode))
}

#[derive(Deserialize)]
struct ModeRequest {
    mode: FakeMode,
    token: Option<String>,
    retry_after: Option<u64>,
    delay_ms: Option<u64>,
}

async fn set_mode(State(h): State<FakeHandle>, Json(m): Json<ModeRequest>) -> Json<Value> {
    match &m.token {
        Some(t) => h.set_token_mode(t, m.mode),
        None => h.set_mode(m.mode),
    }
    if let Some(s) = m.retry_after {
        h.set_retry_after(s);
    }
    if let Some(ms) = m.delay_ms {
        h.set_delay(Duration::from_millis(ms));
    }
    get_mode(State(h)).await
}

async fn get_mode(State(h): State<FakeHandle>) -> Json<Value> {
    Json(json!({
        "server": h.state.name,
        "mode": *lock(&h.state.global),
        "tokens": lock(&h.state.per_token).clone(),
        "retry_after": h.state.retry_after.load(Ordering::Relaxed),
        "delay_ms": h.state.delay_ms.load(Ordering::Relaxed),
    }))
}

/// The fake APNs routes.
pub fn apns_router(h: FakeHandle) -> Router {
    admin_routes(Router::new().route("/3/device/{token}", post(apns_send))).with_state(h)
}

/// The fake FCM routes (`/token` and `/v1/projects/{project}/messages:send`).
pub fn fcm_router(h: FakeHandle) -> Router {
    admin_routes(
        Router::new()
            .route("/token", post(oauth_token))
            .route("/v1/projects/{project}/messages:send", post(fcm_send)),
    )
    .with_state(h)
}

struct Incoming {
    method: String,
    path: String,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
}

async fn read(req: Request) -> Incoming {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    Incoming {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        version: parts.version,
        headers: parts.headers,
        body,
    }
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn record(
        &self,
        provider: &str,
        body: Value,
        device_token: Option<String>,
        status: u16,
        reason: Option<String>,
    ) -> RecordedRequest {
        let mut headers = BTreeMap::<String, String>::new();
        for (k, v) in &self.headers {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            headers
                .entry(k.as_str().to_owned())
                .and_modify(|e| {
                    e.push_str(", ");
                    e.push_str(&v);
                })
                .or_insert(v);
        }
        RecordedRequest {
            provider: provider.to_owned(),
            method: self.method.clone(),
            path: self.path.clone(),
            version: format!("{:?}", self.version),
            headers,
            body,
            device_token,
            status,
            reason,
        }
    }
}

fn body_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Decode a JWT's header and claims without checking the signature; `Err` says what is wrong.
fn jwt_parts(jwt: &str) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err("not a compact JWS (three non-empty parts)".into());
    }
    let decode = |p: &str| -> Result<Value, String> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|e| format!("bad base64url: {e}"))?;
        serde_json::from_slice(&raw).map_err(|e| format!("bad JSON: {e}"))
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|e| format!("bad signature encoding: {e}"))?;
    Ok((decode(parts[0])?, decode(parts[1])?))
}

fn check_provider_jwt(auth: &str) -> Result<(), &'static str> {
    let jwt = auth
        .strip_prefix("bearer ")
        .or_else(|| auth.strip_prefix("Bearer "))
        .ok_or("InvalidProviderToken")?;
    let (header, claims) = jwt_parts(jwt).map_err(|_| "InvalidProviderToken")?;
    if header["alg"] != "ES256" || !header["kid"].is_string() || !claims["iss"].is_string() {
        return Err("InvalidProviderToken");
    }
    let iat = claims["iat"].as_u64().ok_or("InvalidProviderToken")?;
    if iat + 3600 < now_secs() {
        return Err("ExpiredProviderToken");
    }
    Ok(())
}

fn is_uuid(s: &str) -> bool {
    let lens: Vec<usize> = s.split('-').map(str::len).collect();
    lens == [8, 4, 4, 4, 12] && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

/// Validate an APNs request (before the scripted mode applies).
fn apns_check(inc: &Incoming, token: &str) -> Result<(), (u16, &'static str)> {
    if inc.version != Version::HTTP_2 {
        return Err((400, "Http2Required"));
    }
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err((400, "BadDeviceToken"));
    }
    if inc.header("apns-topic").is_none_or(str::is_empty) {
        return Err((400, "MissingTopic"));
    }
    match inc.header("apns-push-type") {
        Some(
            "alert" | "background" | "voip" | "complication" | "fileprovider" | "mdm" | "location"
            | "liveactivity" | "pushtotalk",
        ) => {}
        _ => return Err((400, "InvalidPushType")),
    }
    if inc.header("apns-id").is_some_and(|id| !is_uuid(id)) {
        return Err((400, "BadMessageId"));
    }
    if inc
        .header("apns-priority")
        .is_some_and(|p| !matches!(p, "1" | "5" | "10"))
    {
        return Err((400, "BadPriority"));
    }
    if inc
        .header("apns-expiration")
        .is_some_and(|e| e.parse::<u64>().is_err())
    {
        return Err((400, "BadExpirationDate"));
    }
    if let Some(auth) = inc.header("authorization") {
        check_provider_jwt(auth).map_err(|r| (403, r))?;
    }
    if inc.body.is_empty() {
        return Err((400, "PayloadEmpty"));
    }
    if inc.body.len() > 4096 {
        return Err((413, "PayloadTooLarge"));
    }
    match serde_json::from_slice::<Value>(&inc.body) {
        Ok(Value::Object(o)) if o.get("aps").is_some_and(Value::is_object) => Ok(()),
        _ => Err((400, "BadPayload")),
    }
}

async fn apns_send(
    State(h): State<FakeHandle>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let inc = read(req).await;
    let jwt_seen_before = inc
        .header("authorization")
        .is_some_and(|a| !lock(&h.state.jwts_seen).insert(a.to_owned()));
    let result = match apns_check(&inc, &token) {
        Err(e) => Err(e),
        Ok(()) => match h.mode_for(&token) {
            FakeMode::Normal => Ok(()),
            FakeMode::ExpiredProviderToken if jwt_seen_before => Err((403, "ExpiredProviderToken")),
            FakeMode::ExpiredProviderToken => Ok(()),
            FakeMode::Slow => {
                tokio::time::sleep(Duration::from_millis(
                    h.state.delay_ms.load(Ordering::Relaxed),
                ))
                .await;
                Ok(())
            }
            FakeMode::Dead => Err((410, "Unregistered")),
            FakeMode::BadToken => Err((400, "BadDeviceToken")),
            FakeMode::WrongTopic => Err((400, "DeviceTokenNotForTopic")),
            FakeMode::RateLimit => Err((429, "TooManyRequests")),
            FakeMode::Error => Err((500, "InternalServerError")),
            FakeMode::Unavailable => Err((503, "ServiceUnavailable")),
            FakeMode::Forbidden => Err((403, "InvalidProviderToken")),
        },
    };
    let apns_id = inc
        .header("apns-id")
        .map(str::to_owned)
        .unwrap_or_else(|| parley_push::notification::stable_uuid("fake", &token));
    let (status, reason) = match result {
        Ok(()) => (200, None),
        Err((s, r)) => (s, Some(r.to_owned())),
    };
    h.record(inc.record(
        "apns",
        body_value(&inc.body),
        Some(token),
        status,
        reason.clone(),
    ));
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&apns_id) {
        headers.insert("apns-id", v);
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match reason {
        None => (code, headers).into_response(),
        Some(r) => {
            if status == 429 {
                headers.insert(
                    "retry-after",
                    HeaderValue::from(h.state.retry_after.load(Ordering::Relaxed)),
                );
            }
            let mut body = json!({ "reason": r });
            if status == 410 {
                body["timestamp"] = json!(now_secs() * 1000);
            }
            (code, headers, Json(body)).into_response()
        }
    }
}

fn form_decode(body: &[u8]) -> BTreeMap<String, String> {
    fn unescape(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn check_assertion(
    form: &BTreeMap<String, String>,
    expected_aud_suffix: &str,
) -> Result<(), String> {
    if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER_GRANT) {
        return Err("unsupported_grant_type".into());
    }
    let assertion = form.get("assertion").ok_or("missing assertion")?;
    let (header, claims) = jwt_parts(assertion)?;
    if header["alg"] != "RS256" {
        return Err(format!("alg must be RS256, not {}", header["alg"]));
    }
    if !claims["iss"].as_str().is_some_and(|s| s.contains('@')) {
        return Err("iss must be the service account email".into());
    }
    if !claims["scope"]
        .as_str()
        .is_some_and(|s| s.split(' ').any(|x| x == FCM_SCOPE))
    {
        return Err("scope must include firebase.messaging".into());
    }
    if !claims["aud"]
        .as_str()
        .is_some_and(|a| a.ends_with(expected_aud_suffix))
    {
        return Err("aud must be the token endpoint".into());
    }
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    let (Some(iat), Some(exp)) = (iat, exp) else {
        return Err("iat and exp are required".into());
    };
    let now = now_secs();
    if exp <= iat || exp - iat > 3600 || exp + 60 < now || iat > now + 300 {
        return Err("iat/exp out of range (at most one hour, not expired)".into());
    }
    Ok(())
}

async fn oauth_token(State(h): State<FakeHandle>, req: Request) -> Response {
    let inc = read(req).await;
    let form = form_decode(&inc.body);
    let recorded_form = json!(form);
    let (status, body, reason) = match check_assertion(&form, "/token") {
        Ok(()) => {
            let n = h.state.issued.fetch_add(1, Ordering::Relaxed) + 1;
            let token = format!("fake-access-{n}");
            lock(&h.state.access_tokens).insert(token.clone());
            (
                200,
                json!({"access_token": token, "expires_in": 3600, "token_type": "Bearer"}),
                None,
            )
        }
        Err(e) => (
            400,
            json!({"error": "invalid_grant", "error_description": e}),
            Some(e),
        ),
    };
    h.record(inc.record("oauth", recorded_form, None, status, reason));
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        Json(body),
    )
        .into_response()
}

fn google_error(status: u16, code: &str, message: &str, extra: Option<Value>) -> Value {
    let status_name = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let mut details = vec![json!({
        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
        "errorCode": code,
    })];
    details.extend(extra);
    json!({"error": {"code": status, "message": message, "status": status_name, "details": details}})
}

/// Validate an FCM send (before the scripted mode applies); returns the device token.
fn fcm_check(h: &FakeHandle, inc: &Incoming, body: &Value) -> Result<String, (u16, Value)> {
    let bearer = inc.header("authorization").and_then(|a| {
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("bearer "))
    });
    if !bearer.is_some_and(|t| lock(&h.state.access_tokens).contains(t)) {
        return Err((
            401,
            google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
                None,
            ),
        ));
    }
    let bad = |msg: &str| (400, google_error(400, "INVALID_ARGUMENT", msg, None));
    let message = body
        .get("message")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("Invalid JSON payload received: message is required"))?;
    let token = message
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("Recipient of the message is not set."))?;
    if let Some(data) = message.get("data") {
        let data = data
            .as_object()
            .ok_or_else(|| bad("Invalid value at 'message.data'"))?;
        if data.values().any(|v| !v.is_string()) {
            return Err(bad(
                "Invalid value at 'message.data[0].value' (TYPE_STRING)",
            ));
        }
        let size: usize = data
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if size > 4096 {
            return Err(bad("Android message is too big"));
        }
    }
    Ok(token.to_owned())
}

async fn fcm_send(
    State(h): State<FakeHandle>,
    Path(project): Path<String>,
    req: Request,
) -> Response {
    let inc = read(req).await;
    let body = body_value(&inc.body);
    let token = body["message"]["token"].as_str().map(str::to_owned);
    let result = match fcm_check(&h, &inc, &body) {
        Err(e) => Err(e),
        Ok(token) => {
            let bad_token = json!({
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}],
            });
            match h.mode_for(&token) {
                FakeMode::Normal | FakeMode::ExpiredProviderToken => Ok(()),
                FakeMode::Slow => {
                    tokio::time::sleep(Duration::from_millis(
                        h.state.delay_ms.load(Ordering::Relaxed),
                    ))
                    .await;
                    Ok(())
                }
                FakeMode::Dead => Err((
                    404,
                    google_error(404, "UNREGISTERED", "Requested entity was not found.", None),
                )),
                FakeMode::BadToken => Err((
                    400,
                    google_error(
                        400,
                        "INVALID_ARGUMENT",
                        "The registration token is not a valid FCM registration token",
                        Some(bad_token),
                    ),
                )),
                FakeMode::WrongTopic => Err((
                    403,
                    google_error(403, "SENDER_ID_MISMATCH", "SenderId mismatch", None),
                )),
                FakeMode::RateLimit => Err((
                    429,
                    google_error(429, "QUOTA_EXCEEDED", "Quota exceeded.", None),
                )),
                FakeMode::Error => {
                    Err((500, google_error(500, "INTERNAL", "Internal error.", None)))
                }
                FakeMode::Unavailable => Err((
                    503,
                    google_error(503, "UNAVAILABLE", "The service is unavailable.", None),
                )),
                FakeMode::Forbidden => Err((
                    403,
                    google_error(403, "PERMISSION_DENIED", "Permission denied.", None),
                )),
            }
        }
    };
    let (status, answer, reason) = match result {
        Ok(()) => {
            let n = h.state.sent.fetch_add(1, Ordering::Relaxed) + 1;
            (
                200,
                json!({"name": format!("projects/{project}/messages/{n}")}),
                None,
            )
        }
        Err((s, v)) => {
            let code = v["error"]["details"][0]["errorCode"]
                .as_str()
                .map(str::to_owned);
            (s, v, code)
        }
    };
    h.record(inc.record("fcm", body, token, status, reason));
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = HeaderMap::new();
    if status == 429 {
        headers.insert(
            "retry-after",
            HeaderValue::from(h.state.retry_after.load(Ordering::Relaxed)),
        );
    }
    (code, headers, Json(answer)).into_response()
}

/// Lock a std mutex, ignoring poisoning (the data are plain values).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(FakeMode::from_token("dead-1"), Some(FakeMode::Dead));
        assert_eq!(
            FakeMode::from_token("ratelimit-x"),
            Some(FakeMode::RateLimit)
        );
        assert_eq!(FakeMode::from_token("abcdef"), None);
    }

    #[test]
    fn form_decoding() {
        let f = form_decode(b"grant_type=urn%3Aietf%3Aparams&assertion=a.b.c&x=1+2&y=%zz");
        assert_eq!(f["grant_type"], "urn:ietf:params");
        assert_eq!(f["assertion"], "a.b.c");
        assert_eq!(f["x"], "1 2");
        assert_eq!(f["y"], "%zz");
    }

    #[test]
    fn uuids() {
        assert!(is_uuid("123e4567-e89b-12d3-a456-426655440000"));
        assert!(!is_uuid("123e4567e89b12d3a456426655440000"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42665544000g"));
    }
}

/// A webhook receiver for benchmarks and local runs: answers every call to any path except
/// `/_sink/*` with 200 and an empty body, and counts the calls. `GET /_sink/count` returns the
/// count as text; `DELETE /_sink/count` resets it.
#[derive(Clone, Debug, Default)]
pub struct WebhookSink {
    calls: Arc<AtomicU64>,
}

impl WebhookSink {
    /// Calls received since start or the last reset.
    pub fn count(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

/// Start a [`WebhookSink`] on `addr`.
pub async fn spawn_webhook_sink(addr: SocketAddr) -> std::io::Result<(SocketAddr, WebhookSink)> {
    use axum::routing::get;
    let sink = WebhookSink::default();
    let counted = sink.clone();
    let read = sink.clone();
    let reset = sink.clone();
    let router = Router::new()
        .route(
            "/_sink/count",
            get(move || async move { read.count().to_string() }).delete(move || async move {
                reset.calls.store(0, Ordering::Relaxed);
                ""
            }),
        )
        .fallback(move || async move {
            counted.calls.fetch_add(1, Ordering::Relaxed);
            ""
        });
    Ok((serve(addr, router).await?, sink))
}
