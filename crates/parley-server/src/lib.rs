//! The `parley` server as a library: [`Application::build`] opens the database, loads the
//! server key, creates the first account on an empty database and binds the listener;
//! [`Application::run_until_stopped`] serves until a shutdown future resolves. The binary
//! (`src/main.rs`) only parses the command line; tests spawn an `Application` on port 0.

pub mod admin;
pub mod backup;
pub mod change_log;
pub mod cli;
pub mod config;
pub mod db;
pub mod import;
pub mod keys;
pub mod push;
pub mod serve;
pub mod telemetry;
pub mod token;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use parley_core::store::{Store, StoreResult};
use parley_core::Timestamp;
use parley_http::{AppState, HttpConfig};
use tokio::net::TcpListener;

use crate::admin::Bootstrap;
use crate::config::Config;

/// How often each node sweeps stale push bindings.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Rows deleted per sweep statement (short transactions; other writers interleave).
pub const SWEEP_BATCH: u32 = 1000;

/// A server ready to run: database open, listener bound.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: axum::Router,
    store: Arc<dyn Store>,
    binding_max_age_days: u32,
    bootstrap: Bootstrap,
    worker: Option<Arc<parley_push::Worker>>,
    webhooks: Option<Arc<parley_webhooks::Worker>>,
    conn: serve::ConnLimits,
    change_log: ChangeLogUpkeep,
    live: Arc<parley_http::live::Hub>,
    /// The HTTP state (for the live-client Sync tail) and the tail's poll interval.
    live_tail: (parley_http::AppState, std::time::Duration),
    credentials: parley_http::auth::CredentialWatcher,
    /// `--metrics-listen`: its listener and router.
    metrics: Option<(TcpListener, axum::Router)>,
}

/// What the change-log trimming task needs.
struct ChangeLogUpkeep {
    consumers: Vec<String>,
    retention: Duration,
    interval: Duration,
    trimmed: Option<prometheus::IntCounter>,
}

impl Application {
    /// Open the database (running migrations), load the server key, bind `config.listen`, and
    /// create the first account on an empty database.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        // Raise the soft open-file limit to the hard one; the connection cap stays below it.
        let open_files = serve::raise_open_file_limit();
        let mut conn = config.conn;
        conn.max_connections = serve::effective_max_connections(conn.max_connections, open_files);
        if conn.max_connections < config.conn.max_connections {
            tracing::warn!(
                max_connections = conn.max_connections,
                open_file_limit = open_files,
                "the open-file limit lowers the connection cap"
            );
        }
        let (store, secrets) = db::open(&config.db).await?;
        // Bind before creating the first account: were binding to fail after it, the generated
        // credentials would never be printed.
        let listener = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let metrics_listener = match &config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (metrics_listen)"))?,
            ),
            None => None,
        };
        let bootstrap =
            admin::ensure_first_account(store.as_ref(), &secrets, config.bootstrap.as_ref())
                .await?;
        let public_url = match &config.public_url {
            Some(url) => url.clone(),
            None => {
                if local_addr.ip().is_unspecified() {
                    tracing::warn!(
                        "listening on {local_addr} without --public-url: resource URLs will name \
                         an unspecified address; set PARLEY_PUBLIC_URL"
                    );
                }
                format!("http://{local_addr}")
            }
        };
        let http = HttpConfig {
            public_url,
            rate_limit_per_sec: config.rate_limit,
            max_bindings_per_user: config.max_bindings_per_user,
            fcm_token_uri_allow: parley_core::credential::parse_token_uri_allow(
                std::env::var(parley_core::credential::FCM_TOKEN_URI_ALLOW_ENV)
                    .ok()
                    .as_deref(),
            ),
            auth_failure_limit_per_min: config.auth_failure_limit,
            live: config.live.clone(),
            request_log: config.request_log,
            metrics_on_main: config.metrics_listen.is_none(),
        };
        let mut state = AppState::new(store.clone(), secrets.clone(), http);
        // The webhook client always exists: client (SDK) changes call a service's pre-event
        // webhook whenever the service has one, whatever the other webhook settings.
        let client_config = parley_webhooks::WebhookConfig::from_env()
            .context("invalid webhook destination policy")?;
        let webhook_client =
            parley_webhooks::WebhookClient::new(client_config, state.metrics.registry())
                .context("cannot set up the webhook client")?;
        // The webhook worker's store: on PostgreSQL its own small pool (posting at full speed
        // keeps every connection of the main pool busy; behind them the worker fell ever
        // further behind).
        let webhook_store = if config.webhooks {
            db::open_worker_store(&config.db.database_url, &store, 4).await?
        } else {
            store.clone()
        };
        // One cache of opened auth tokens (the signing keys) for pre- and post-event calls.
        let tokens = Arc::new(parley_webhooks::AuthTokens::new(
            webhook_store.clone(),
            secrets.clone(),
        ));
        state = state.with_pre_hooks(Arc::new(parley_http::PreHooks::new(
            config.rest_pre_webhooks.clone(),
            webhook_client.clone(),
            tokens.clone(),
        )));
        let webhooks = if config.webhooks {
            let client = webhook_client;
            let metrics = match parley_webhooks::QueueMetrics::register(state.metrics.registry()) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(error = %e, "webhook queue metrics unavailable");
                    None
                }
            };
            let worker_config = parley_webhooks::WorkerConfig {
                first_try_delay: Duration::from_millis(u64::from(
                    config.webhook_first_try_delay_ms,
                )),
                ..parley_webhooks::WorkerConfig::default()
            };
            Some(parley_webhooks::Worker::new(
                webhook_store,
                tokens,
                client,
                worker_config,
                metrics,
            ))
        } else {
            None
        };
        let worker = if config.push {
            let metrics = match parley_push::PushMetrics::register(state.metrics.registry()) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(error = %e, "push metrics unavailable");
                    None
                }
            };
            let worker_config = parley_push::WorkerConfig {
                log_retention: Duration::from_secs(
                    u64::from(config.push_log_retention_days) * 86_400,
                ),
                lease: Duration::from_secs(u64::from(config.push_lease_secs)),
                bad_token_threshold: usize::try_from(config.push_bad_token_threshold)
                    .unwrap_or(usize::MAX),
                ..parley_push::WorkerConfig::default()
            };
            let sender: Arc<dyn parley_push::PushSender> =
                Arc::new(parley_push::Providers::from_env());
            let worker = parley_push::Worker::new(
                store.clone(),
                store.clone(),
                secrets,
                sender,
                worker_config,
                metrics,
            );
            state = state.with_push_tester(Arc::new(push::WorkerTester(worker.clone())));
            Some(worker)
        } else {
            None
        };
        let change_log = ChangeLogUpkeep {
            consumers: change_log::registered_consumers(),
            retention: config.change_log_retention,
            interval: config.change_log_trim_interval,
            trimmed: change_log::register_trimmed_counter(state.metrics.registry())
                .map_err(|e| tracing::warn!(error = %e, "change-log metrics unavailable"))
                .ok(),
        };
        let live = state.live.clone();
        let live_tail = (state.clone(), config.live_poll);
        let credentials = state.credential_watcher();
        let metrics = metrics_listener.map(|l| (l, parley_http::metrics_router(state.clone())));
        let router = parley_http::router(state);
        Ok(Application {
            metrics,
            live,
            listener,
            local_addr,
            router,
            store,
            binding_max_age_days: config.binding_max_age_days,
            bootstrap,
            worker,
            webhooks,
            conn,
            change_log,
            live_tail,
            credentials,
        })
    }

    /// The bound port (useful with `listen = 127.0.0.1:0`).
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The bound metrics address (`--metrics-listen`), if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The store the server uses.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// This node's live client connections (e.g. to notify one from a test).
    pub fn live(&self) -> Arc<parley_http::live::Hub> {
        self.live.clone()
    }

    /// What start-up did about the first account (the caller prints generated credentials).
    pub fn bootstrap(&self) -> &Bootstrap {
        &self.bootstrap
    }

    /// Serve until `shutdown` resolves, then stop accepting connections and finish in-flight
    /// requests. The stale-binding sweep runs alongside.
    pub async fn run_until_stopped<F>(self, shutdown: F) -> anyhow::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let sweeper = (self.binding_max_age_days > 0)
            .then(|| tokio::spawn(sweep_forever(self.store.clone(), self.binding_max_age_days)));
        let credentials = tokio::spawn(self.credentials.run());
        let trimmer = tokio::spawn(change_log::trim_forever(
            self.store.clone(),
            self.change_log.consumers,
            self.change_log.retention,
            self.change_log.interval,
            self.change_log.trimmed,
        ));
        // One shutdown signal for the HTTP server, the push worker and the webhook worker.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let signal = stop_tx.clone();
        let live = self.live.clone();
        tokio::spawn(async move {
            shutdown.await;
            // Live sockets say goodbye (twilsock close 308) and close; the accept loop waits
            // for them like for any connection.
            live.begin_shutdown();
            let _ = signal.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let pusher = self
            .worker
            .clone()
            .map(|w| tokio::spawn(w.run(stopped(stop_rx.clone()))));
        let hooker = self
            .webhooks
            .clone()
            .map(|w| tokio::spawn(w.run(stopped(stop_rx.clone()))));
        // Live clients: Sync events from the change log to subscribed sockets.
        let (live_state, live_poll) = self.live_tail.clone();
        let tail = tokio::spawn(parley_http::live::sync::tail::run(
            live_state,
            live_poll,
            stopped(stop_rx.clone()),
        ));
        tracing::info!("listening on http://{}", self.local_addr);
        let metrics = self.metrics.map(|(listener, router)| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("metrics on http://{addr}/metrics");
            }
            tokio::spawn(serve::serve(listener, router, self.conn, stop_rx.clone()))
        });
        serve::serve(self.listener, self.router, self.conn, stop_rx).await;
        if let Some(task) = metrics {
            let _ = task.await;
        }
        self.live.begin_shutdown();
        let served: anyhow::Result<()> = Ok(());
        if let Some(task) = sweeper {
            task.abort();
        }
        trimmer.abort();
        credentials.abort();
        // The worker stops claiming and finishes the sends it started (also when the HTTP
        // server ended on its own).
        let _ = stop_tx.send(true);
        if let Some(task) = pusher {
            let _ = task.await;
        }
        if let Some(task) = hooker {
            let _ = task.await;
        }
        let _ = tail.await;
        tracing::info!("stopped");
        served
    }
}

/// Delete bindings not refreshed for `max_age_days`, in batches of [`SWEEP_BATCH`] until a
/// batch comes back short. Safe on several nodes at once. Returns how many were deleted.
pub async fn sweep_stale_bindings(store: &dyn Store, max_age_days: u32) -> StoreResult<u64> {
    let cutoff = Timestamp::now().plus_secs(-i64::from(max_age_days) * 86_400);
    let mut total = 0;
    loop {
        let deleted = store.delete_stale_bindings(cutoff, SWEEP_BATCH).await?;
        total += deleted;
        if deleted < u64::from(SWEEP_BATCH) {
            return Ok(total);
        }
    }
}

async fn sweep_forever(store: Arc<dyn Store>, max_age_days: u32) {
    let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match sweep_stale_bindings(store.as_ref(), max_age_days).await {
            Ok(0) => tracing::debug!("binding sweep: nothing stale"),
            Ok(n) => tracing::info!(
                deleted = n,
                max_age_days,
                "binding sweep: deleted stale bindings"
            ),
            Err(e) => tracing::warn!(error = %e, "binding sweep failed; retrying next round"),
        }
    }
}

/// Install SIGTERM and SIGINT (Ctrl-C) handlers now, and return a future that resolves when
/// either arrives. Installing eagerly matters: a signal that arrives before the handlers exist
/// kills the process instead of stopping it gracefully. Call it inside the Tokio runtime.
#[cfg(unix)]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    })
}

/// Resolves on Ctrl-C (non-Unix platforms).
#[cfg(not(unix))]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    })
}
