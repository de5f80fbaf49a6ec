//! Operations: `/healthz` (liveness, no database), `/readyz` (database reachable), `/metrics`
//! (Prometheus), request metrics and CORS headers.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::error::ApiError;
use crate::AppState;

/// Prometheus metrics of the HTTP layer.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool: IntGaugeVec,
    /// Failed logins (401 answers to requests that carried credentials), by kind.
    pub(crate) auth_failures: IntCounterVec,
    /// Requests refused 429 because their address failed to log in too often, by kind.
    pub(crate) auth_throttled: IntCounterVec,
    /// Open live (twilsock) connections past `init`.
    pub(crate) live_connections: IntGauge,
    /// twilsock frames by direction (`in`, `out`).
    pub(crate) live_frames: IntCounterVec,
    /// Sync subscription establishments by outcome (`completed`, `interrupted`).
    pub(crate) sync_replays: IntCounterVec,
}

impl Metrics {
    /// Register the metrics in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "parley_http_requests_total",
                "HTTP requests by route template, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "parley_http_request_duration_seconds",
                "HTTP request latency by route template",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route", "method"],
        )?;
        let pool = IntGaugeVec::new(
            Opts::new(
                "parley_db_pool_connections",
                "Database pool connections by state",
            ),
            &["state"],
        )?;
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "parley_auth_failures_total",
                "Failed logins (Basic auth or Access Token) by kind",
            ),
            &["kind"],
        )?;
        let auth_throttled = IntCounterVec::new(
            Opts::new(
                "parley_auth_throttled_total",
                "Requests refused 429 after too many failed logins from their address, by kind",
            ),
            &["kind"],
        )?;
        let live_connections = IntGauge::new(
            "parley_live_connections",
            "Open live client (twilsock) connections that passed init",
        )?;
        let live_frames = IntCounterVec::new(
            Opts::new(
                "parley_live_frames_total",
                "twilsock frames received (in) and sent (out)",
            ),
            &["direction"],
        )?;
        let sync_replays = IntCounterVec::new(
            Opts::new(
                "parley_sync_replays_total",
                "Sync subscriptions established, by replay outcome (completed, interrupted: the events after the client's last_event_id were trimmed)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(live_connections.clone()))?;
        registry.register(Box::new(sync_replays.clone()))?;
        // Both outcomes are listed from the start (at 0), so a reader can tell "none" from "absent".
        for outcome in ["completed", "interrupted"] {
            sync_replays.with_label_values(&[outcome]);
        }
        registry.register(Box::new(live_frames.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        registry.register(Box::new(auth_throttled.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            pool,
            auth_failures,
            auth_throttled,
            live_connections,
            live_frames,
            sync_replays,
        })
    }

    /// The registry, for other crates to add their metrics to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// `GET /healthz`: the process is alive. No auth, no database.
pub async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

/// `GET /readyz`: the database answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":"ready"}"#,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                20503,
                "Database unavailable",
            )
            .into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let (open, idle) = state.store.pool_stats();
    state
        .metrics
        .pool
        .with_label_values(&["open"])
        .set(i64::from(open));
    state
        .metrics
        .pool
        .with_label_values(&["idle"])
        .set(i64::from(idle));
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&state.metrics.registry.gather(), &mut buf) {
        return ApiError::internal(e).into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], buf).into_response()
}

/// Middleware: count and time every request by its route template (not its raw path, so SIDs
/// don't explode the label set), and limit failed logins per client address
/// ([`crate::auth::LoginAttempt`]).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let account = if state.config.request_log {
        basic_user(&req)
    } else {
        None
    };
    let start = Instant::now();
    let login = crate::auth::LoginAttempt::of(&req);
    let throttled = login
        .as_ref()
        .and_then(|l| l.throttled(&state, req.uri().path()));
    let res = match throttled {
        Some(res) => res,
        None => next.run(req).await,
    };
    if let Some(login) = &login {
        login.settle(&state, res.status());
    }
    state
        .metrics
        .latency
        .with_label_values(&[&route, &method])
        .observe(start.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .with_label_values(&[&route, &method, res.status().as_str()])
        .inc();
    if state.config.request_log {
        let latency_ms = (start.elapsed().as_secs_f64() * 1e5).round() / 100.0;
        let account = account.as_deref().unwrap_or("-");
        let status = res.status().as_u16();
        // Probes (load balancers poll these every few seconds) only at debug level.
        if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
            tracing::debug!(target: "parley::request", method = %method, route = %route,
                status, latency_ms, account = %account, "request");
        } else {
            tracing::info!(target: "parley::request", method = %method, route = %route,
                status, latency_ms, account = %account, "request");
        }
    }
    res
}

/// Who a request authenticates as, for the request log: the Basic auth user when it is an
/// account SID (`AC…`) or API key SID (`SK…`); `None` for anything else or no credentials.
/// Never the password.
fn basic_user(req: &Request) -> Option<String> {
    use base64::Engine as _;
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, _) = text.split_once(':')?;
    let looks_like_sid = (user.starts_with("AC") || user.starts_with("SK"))
        && user.len() == 34
        && user[2..].bytes().all(|b| b.is_ascii_hexdigit());
    looks_like_sid.then(|| user.to_owned())
}

/// Middleware: `X-Twilio-Webhook-Enabled`, when sent, must be `true` or `false` (the spec's enum).
/// Handlers of changes read it with [`crate::origin::ApiOrigin`] (the event's `webhooks` flag).
pub async fn webhook_header(req: Request, next: Next) -> Response {
    if let Some(v) = req.headers().get("x-twilio-webhook-enabled") {
        let ok = v
            .to_str()
            .is_ok_and(|s| s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false"));
        if !ok {
            return ApiError::invalid_param(
                "X-Twilio-Webhook-Enabled",
                "X-Twilio-Webhook-Enabled must be true or false",
            )
            .into_response();
        }
    }
    next.run(req).await
}

const ALLOW_HEADERS: &str =
    "Accept, Authorization, Content-Type, If-Match, If-Modified-Since, If-None-Match, If-Unmodified-Since, X-Twilio-Token, X-Twilio-Webhook-Enabled";

/// Middleware: the CORS headers the spec declares on 200/201 answers (contract §0.1), and
/// preflight `OPTIONS` answered without auth.
pub async fn cors(req: Request, next: Next) -> Response {
    if req.method() == Method::OPTIONS {
        let mut res = StatusCode::OK.into_response();
        add_cors(&mut res);
        return res;
    }
    let mut res = next.run(req).await;
    if res.status() != StatusCode::NO_CONTENT {
        add_cors(&mut res);
    }
    res
}

/// Any origin, without credentials: a browser accepts `*` only when credentials are not allowed
/// (`*` with `Allow-Credentials: true` is rejected). Clients send `Authorization` or
/// `X-Twilio-Token` explicitly (listed in Allow-Headers, which a `*` there would not cover), which
/// needs no credentials mode; allowing credentials for every origin would instead let any web
/// page use Basic credentials a browser has cached.
fn add_cors(res: &mut Response) {
    let h = res.headers_mut();
    let pairs: [(HeaderName, &'static str); 5] = [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET, POST, DELETE, OPTIONS",
        ),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS),
        (header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "false"),
        (header::ACCESS_CONTROL_EXPOSE_HEADERS, "ETag"),
    ];
    for (k, v) in pairs {
        h.insert(k, HeaderValue::from_static(v));
    }
}
