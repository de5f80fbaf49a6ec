//! Parley's HTTP layer: the Twilio Chat v2 REST API (axum), the push-registration endpoints,
//! and `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use parley_core::crypto::SecretBox;
use parley_core::store::Store;

pub mod access_token;
mod actions;
pub mod auth;
pub mod credential_check;
pub mod error;
pub mod live;
pub mod ops;
pub mod origin;
pub mod paging;
pub mod params;
pub mod pre_hooks;
pub mod registrations;
pub mod urls;
mod v2;

pub use live::{ConnHold, LiveConfig};
pub use pre_hooks::{PreHookScope, PreHooks};

/// Settings the HTTP layer needs (built by `parley-server` from its config).
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Externally visible base URL, e.g. `http://127.0.0.1:8080` (no trailing slash needed).
    pub public_url: String,
    /// Per-account request rate limit in requests per second; `None` = off.
    pub rate_limit_per_sec: Option<u32>,
    /// Cap of push bindings per user (oldest-updated evicted beyond it).
    pub max_bindings_per_user: u32,
    /// FCM `token_uri` prefixes allowed besides Google's (`PARLEY_FCM_TOKEN_URI_ALLOW`).
    pub fcm_token_uri_allow: Vec<String>,
    /// Failed logins per minute per client address; `None` = off.
    pub auth_failure_limit_per_min: Option<u32>,
    /// Live client (twilsock) limits and timers.
    pub live: live::LiveConfig,
    /// One `info` line per request (target `parley::request`).
    pub request_log: bool,
    /// Serve `/metrics` on the main router (false when it has an address of its own).
    pub metrics_on_main: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".to_owned(),
            rate_limit_per_sec: None,
            max_bindings_per_user: parley_core::binding::DEFAULT_MAX_BINDINGS_PER_USER,
            fcm_token_uri_allow: Vec::new(),
            auth_failure_limit_per_min: None,
            live: live::LiveConfig::default(),
            request_log: true,
            metrics_on_main: true,
        }
    }
}

/// The provider's verdict on a test notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestVerdict {
    /// `delivered`, `invalid_token`, `retry`, `credential_failed` or `failed`.
    pub outcome: &'static str,
    /// The provider's reason, when not delivered.
    pub reason: Option<String>,
}

/// Sends a test notification to one binding (implemented by the push engine in `parley-server`).
#[async_trait::async_trait]
pub trait PushTester: Send + Sync {
    /// Send `text` to `binding` now, bypassing the queue.
    async fn send_test(
        &self,
        binding: &parley_core::binding::Binding,
        text: &str,
    ) -> Result<TestVerdict, String>;
}

/// Shared state of every handler: one `Arc`, so the per-request clones made by the `State`
/// extractor and the middleware are one reference-count increment each (the fields, among them
/// the URL builder's `String` and the secret box's keys, are not copied per request).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

/// The fields of [`AppState`] (reached through `Deref`: `state.store`, `state.urls`, …).
#[derive(Clone)]
pub struct AppStateInner {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Seals and opens secrets at rest; signs paging tokens.
    pub secrets: SecretBox,
    /// Settings.
    pub config: Arc<HttpConfig>,
    /// Absolute URL builder.
    pub urls: urls::UrlBuilder,
    /// Prometheus metrics.
    pub metrics: Arc<ops::Metrics>,
    /// Test-notification sender, when push delivery runs on this server.
    pub push_tester: Option<Arc<dyn PushTester>>,
    /// Pre-event webhooks: for client changes, and for the REST changes of opted-in services.
    pub pre_hooks: Option<Arc<pre_hooks::PreHooks>>,
    /// This node's live client connections.
    pub live: Arc<live::Hub>,
    /// This node's Sync subscriptions (live clients).
    pub sync: Arc<live::sync::Registry>,
    auth_cache: Arc<auth::AuthCache>,
    limiter: Arc<auth::RateLimiter>,
    failures: Arc<auth::FailureLimiter>,
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

impl AppState {
    /// Build the state.
    pub fn new(store: Arc<dyn Store>, secrets: SecretBox, config: HttpConfig) -> Self {
        // Metric names are static and valid, so registration cannot fail.
        #[allow(clippy::expect_used)]
        let metrics = ops::Metrics::new().expect("BUG: static metric definitions are valid");
        Self(Arc::new(AppStateInner {
            store,
            secrets,
            urls: urls::UrlBuilder::new(&config.public_url),
            limiter: Arc::new(auth::RateLimiter::new(config.rate_limit_per_sec)),
            failures: Arc::new(auth::FailureLimiter::new(config.auth_failure_limit_per_min)),
            config: Arc::new(config),
            metrics: Arc::new(metrics),
            auth_cache: Arc::new(auth::AuthCache::default()),
            push_tester: None,
            pre_hooks: None,
            live: Arc::new(live::Hub::default()),
            sync: Arc::new(live::sync::Registry::default()),
        }))
    }

    /// With pre-event webhooks for the REST changes of the services they name.
    pub fn with_pre_hooks(mut self, hooks: Arc<pre_hooks::PreHooks>) -> Self {
        Arc::make_mut(&mut self.0).pre_hooks = Some(hooks);
        self
    }

    /// The task that keeps this node's remembered credential checks honest: spawn its `run` for
    /// as long as the router serves (without it every request reads its credential).
    pub fn credential_watcher(&self) -> auth::CredentialWatcher {
        auth::CredentialWatcher {
            store: self.store.clone(),
            cache: self.auth_cache.clone(),
        }
    }

    /// With a test-notification sender.
    pub fn with_push_tester(mut self, tester: Arc<dyn PushTester>) -> Self {
        Arc::make_mut(&mut self.0).push_tester = Some(tester);
        self
    }
}

/// The router of a separate metrics address (`--metrics-listen`): `/metrics`, `/healthz`,
/// `/readyz`; anything else is a Twilio-style 404.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(error::no_route)
        .layer(axum::middleware::from_fn(error::render_errors))
        .with_state(state)
}

/// The whole application router (API, registrations, health, metrics), ready to serve.
pub fn router(state: AppState) -> Router {
    let upstream = live::socket::Upstream::new(state.clone());
    let mut ops_routes = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz));
    if state.config.metrics_on_main {
        ops_routes = ops_routes.route("/metrics", get(ops::metrics));
    }
    Router::new()
        .route(
            "/v3/wsconnect",
            get(live::socket::wsconnect).layer(axum::Extension(upstream)),
        )
        .merge(ops_routes)
        .merge(v2::routes())
        .merge(registrations::routes())
        .fallback(error::no_route)
        .layer(axum::middleware::from_fn(ops::webhook_header))
        .layer(axum::middleware::from_fn(error::render_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::track,
        ))
        .layer(axum::middleware::from_fn(ops::cors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panic_response,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
