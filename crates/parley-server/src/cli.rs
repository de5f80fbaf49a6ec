//! The command line: `parley serve` and the admin commands (`account`, `api-key`, `push`,
//! `token`, `backup`, `secret-key`).
//! Flags read their `PARLEY_*` environment variable when absent; both beat the `--config` file,
//! which beats the defaults (see [`crate::config`]).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use parley_core::{AccountSid, ApiKeySid};
use serde::Serialize;

use crate::admin::{self, AccountCredentials, ApiKeyCredentials, Bootstrap};
use crate::config::{
    BootstrapAccount, Config, DbConfig, Settings, SECRET_KEY_ENV, SECRET_KEY_FILE_ENV,
    SECRET_KEY_PREVIOUS_ENV,
};
use crate::telemetry::LogFormat;
use crate::Application;

/// How long in-flight requests may run after a shutdown signal before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Parley: a self-hosted server for the Twilio Programmable Chat REST API v2.
#[derive(Parser)]
#[command(name = "parley", version, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, env = "PARLEY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Sub-commands.
#[derive(Subcommand)]
pub enum Command {
    /// Serve the API (runs migrations; creates and prints an account on an empty database).
    Serve(ServeArgs),
    /// Manage accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Manage API keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Push operations.
    #[command(subcommand)]
    Push(PushCommand),
    /// Print an Access Token for the JavaScript SDK (development aid): HS256, chat grant for
    /// the service, signed with the account's "parley token" API key (created on first use).
    Token(TokenArgs),
    /// Copy a SQLite database, also while the server runs (SQLite's online backup), to FILE,
    /// and its key file to FILE.key (mode 0600). PostgreSQL: use pg_dump (README, "Backups").
    Backup(BackupArgs),
    /// Manage the server key that seals secrets at rest.
    #[command(subcommand, name = "secret-key")]
    SecretKey(SecretKeyCommand),
    /// Import data from another system into Parley.
    #[command(subcommand)]
    Import(ImportCommand),
}

/// `parley backup`.
#[derive(Args)]
pub struct BackupArgs {
    /// Database and config file.
    #[command(flatten)]
    pub db: DbArgs,
    /// The backup file to write (replaced if it exists); the key goes to FILE.key.
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
}

/// `parley secret-key …`.
#[derive(Subcommand)]
pub enum SecretKeyCommand {
    /// Re-seal every stored secret (auth tokens, API key secrets, push credential secrets)
    /// under a new server key, one short transaction per secret, so a running server keeps
    /// serving. With a SQLite key file the new key replaces the key file (the old one is kept in
    /// <key file>.previous until every secret is re-sealed); with PARLEY_SECRET_KEY the new key
    /// is printed (or written to --new-key-file) for you to install. Afterwards the old key
    /// opens nothing. Restart the server with the new key (README, "Rotating the server key").
    Rotate {
        /// Database and config file.
        #[command(flatten)]
        db: DbArgs,
        /// The new key (64 hex digits); if FILE does not exist, a new key is generated and
        /// written there (mode 0600) first.
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
        /// Only install the new key (key file: new key in place, old one in
        /// <key file>.previous; otherwise print it / write --new-key-file); re-seal nothing.
        /// Restart the server (it then opens secrets under both keys) and run `rotate` again
        /// to finish: no request fails during the rotation.
        #[arg(long)]
        stage: bool,
    },
}

/// `parley import …`.
#[derive(Subcommand)]
pub enum ImportCommand {
    /// Copy a Twilio account's chat data (Conversations API v1: services, roles, users,
    /// conversations as private channels, participants as members, messages) into the Parley
    /// account of the same SID, created if missing. SIDs, dates and message indexes are kept;
    /// running it again (also after an interruption) adds only what is missing.
    Twilio(ImportTwilioArgs),
}

/// `parley import twilio`.
#[derive(Args)]
pub struct ImportTwilioArgs {
    /// Database and config file.
    #[command(flatten)]
    pub db: DbArgs,
    /// The Twilio account to read (also the Parley account written to).
    #[arg(long, value_name = "AC…")]
    pub account_sid: AccountSid,
    /// The Twilio account's auth token.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: String,
    /// Import only this service [default: every service].
    #[arg(long, value_name = "IS…")]
    pub service: Option<parley_core::ServiceSid>,
    /// Base URL of the Conversations API.
    #[arg(long, value_name = "URL", default_value = crate::import::DEFAULT_BASE_URL)]
    pub twilio_base_url: String,
}

/// `parley token`.
#[derive(Args)]
pub struct TokenArgs {
    /// Database and config file (the same as `serve`'s, and PARLEY_SECRET_KEY if it sets one).
    #[command(flatten)]
    pub db: DbArgs,
    /// The Chat service the token grants access to.
    #[arg(long, value_name = "IS…")]
    pub service: parley_core::ServiceSid,
    /// The user identity the token logs in as.
    #[arg(long)]
    pub identity: String,
    /// Lifetime in seconds (at most 86400).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub ttl: u32,
    /// Print one JSON object: {"token","identity","service_sid","account_sid","api_key_sid","expires"}
    /// instead of the bare token.
    #[arg(long)]
    pub json: bool,
}

/// `parley push …`.
#[derive(Subcommand)]
pub enum PushCommand {
    /// Send a test notification to one binding now and print the provider's verdict (exit 0
    /// when delivered). Provider URLs come from PARLEY_APNS_URL / PARLEY_APNS_SANDBOX_URL /
    /// PARLEY_FCM_URL.
    Test {
        /// Database and config file.
        #[command(flatten)]
        db: DbArgs,
        /// Owner account.
        #[arg(long, value_name = "AC…")]
        account: AccountSid,
        /// Service of the binding.
        #[arg(long, value_name = "IS…")]
        service: parley_core::ServiceSid,
        /// The binding.
        #[arg(long, value_name = "BS…")]
        binding: parley_core::BindingSid,
        /// Notification text.
        #[arg(long, default_value = "Parley test notification")]
        body: String,
    },
}

/// Where the data is: shared by every command.
#[derive(Args)]
pub struct DbArgs {
    /// Database URL: sqlite://PATH (created if missing), postgres://… or postgresql://…
    /// [default: sqlite://parley.db]
    #[arg(
        long,
        env = "PARLEY_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
    /// Directory of the default SQLite database (parley.db) and its key file (parley.db.key),
    /// created if missing; ignored when --database-url is given [default: the working
    /// directory].
    #[arg(long, env = "PARLEY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<String>,
    /// TOML file with the same settings (keys: listen, database_url, data_dir, public_url,
    /// secret_key, secret_key_previous,
    /// rate_limit, max_bindings_per_user, binding_max_age_days, push, push_log_retention_days,
    /// push_lease_secs, push_bad_token_threshold, webhooks, webhook_first_try_delay_ms,
    /// rest_pre_webhooks, live_poll_ms, request_log, metrics_listen,
    /// change_log_trim_interval_secs,
    /// change_log_retention_secs, header_read_timeout_secs, keep_alive_timeout_secs,
    /// body_read_timeout_secs,
    /// max_header_bytes,
    /// max_connections, auth_failure_limit, live_ping_interval_secs, live_max_frame_bytes,
    /// live_max_requests_in_flight, live_max_connections_per_identity, live_send_queue).
    #[arg(long, env = "PARLEY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl DbArgs {
    /// The flag/env layer of the settings. The secret key only comes from the environment:
    /// `PARLEY_SECRET_KEY`, or the file named by `PARLEY_SECRET_KEY_FILE` (container secrets);
    /// earlier keys during a rotation from `PARLEY_SECRET_KEY_PREVIOUS`.
    fn settings(&self) -> anyhow::Result<Settings> {
        let nonempty = |v: String| (!v.trim().is_empty()).then_some(v);
        let secret_key = match std::env::var(SECRET_KEY_ENV).ok().and_then(nonempty) {
            Some(key) => Some(key),
            None => match std::env::var(SECRET_KEY_FILE_ENV).ok().and_then(nonempty) {
                Some(path) => Some(std::fs::read_to_string(path.trim()).with_context(|| {
                    format!("cannot read {SECRET_KEY_FILE_ENV} file {}", path.trim())
                })?),
                None => None,
            },
        };
        Ok(Settings {
            database_url: self.database_url.clone(),
            data_dir: self.data_dir.clone(),
            secret_key,
            secret_key_previous: std::env::var(SECRET_KEY_PREVIOUS_ENV)
                .ok()
                .and_then(nonempty),
            ..Settings::default()
        })
    }

    /// Resolve the database settings (flag/env > file > default).
    pub fn db_config(&self) -> anyhow::Result<DbConfig> {
        DbConfig::from_settings(&self.settings()?.with_file(self.config.as_deref())?)
    }
}

/// `parley serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "PARLEY_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Database and config file.
    #[command(flatten)]
    pub db: DbArgs,
    /// Externally visible base URL used in `url` and `links` fields [default: http://<listen address>].
    #[arg(long, env = "PARLEY_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Per-account request rate limit in requests per second [default: off].
    #[arg(long, env = "PARLEY_RATE_LIMIT", value_name = "N")]
    pub rate_limit: Option<u32>,
    /// Push bindings kept per user; the least recently updated are evicted beyond it [default: 20].
    #[arg(long, env = "PARLEY_MAX_BINDINGS_PER_USER", value_name = "N")]
    pub max_bindings_per_user: Option<u32>,
    /// Delete push bindings not refreshed for this many days; 0 = never [default: 365].
    #[arg(long, env = "PARLEY_BINDING_MAX_AGE_DAYS", value_name = "DAYS")]
    pub binding_max_age_days: Option<u32>,
    /// Run the push delivery worker on this node [default: true]. Provider URLs come from
    /// PARLEY_APNS_URL, PARLEY_APNS_SANDBOX_URL and PARLEY_FCM_URL.
    #[arg(long, env = "PARLEY_PUSH", value_name = "BOOL")]
    pub push: Option<bool>,
    /// Days the push delivery log is kept [default: 7].
    #[arg(long, env = "PARLEY_PUSH_LOG_RETENTION_DAYS", value_name = "DAYS")]
    pub push_log_retention_days: Option<u32>,
    /// Seconds a node holds claimed push work (fan-outs, sends) before another node may take it
    /// over; after a crash, unfinished work resumes this long after it was claimed
    /// [default: 60, minimum 25].
    #[arg(long, env = "PARLEY_PUSH_LEASE_SECS", value_name = "SECS")]
    pub push_lease_secs: Option<u32>,
    /// A credential answering "bad device token" for this many distinct tokens with no success
    /// in between counts as misconfigured: its bindings are kept, not pruned [default: 20].
    #[arg(long, env = "PARLEY_PUSH_BAD_TOKEN_THRESHOLD", value_name = "N")]
    pub push_bad_token_threshold: Option<u32>,
    /// Run the webhook worker (post-event calls to service and channel webhook URLs) on this
    /// node [default: true]. Reachable addresses: PARLEY_WEBHOOK_ALLOW, PARLEY_WEBHOOK_DENY.
    #[arg(long, env = "PARLEY_WEBHOOKS", value_name = "BOOL")]
    pub webhooks: Option<bool>,
    /// Milliseconds a queued webhook call waits before its first try; a testing aid (e.g. to
    /// stop a node between queueing and sending) [default: 0].
    #[arg(long, env = "PARLEY_WEBHOOK_FIRST_TRY_DELAY_MS", value_name = "MS")]
    pub webhook_first_try_delay_ms: Option<u32>,
    /// Milliseconds between two full reads of the change log by this node's live-client tail
    /// when no wake-up came (wake-ups deliver changes at once; this bounds the delay when one
    /// is lost) [default: 1000].
    #[arg(long, env = "PARLEY_LIVE_POLL_MS", value_name = "MS")]
    pub live_poll_ms: Option<u32>,
    /// One log line per HTTP request at `info` (method, route template, status, latency,
    /// account SID; target `parley::request`) [default: true].
    #[arg(long, env = "PARLEY_REQUEST_LOG", value_name = "BOOL")]
    pub request_log: Option<bool>,
    /// Serve `/metrics` (and `/healthz`, `/readyz`) on this separate address instead of the
    /// main one, e.g. `127.0.0.1:9090` [default: on the main address].
    #[arg(long, env = "PARLEY_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Parley extension: services whose REST changes sent with `X-Twilio-Webhook-Enabled: true`
    /// call their pre-event webhook (`PreWebhookUrl`) first, as client changes do: comma-separated
    /// service SIDs, or `*` for every service [default: none — Twilio's behaviour].
    #[arg(long, env = "PARLEY_REST_PRE_WEBHOOKS", value_name = "SIDS")]
    pub rest_pre_webhooks: Option<String>,
    /// Seconds change-log events are kept at least: an event is trimmed once every consumer of
    /// the log has passed it and it is older than this [default: 604800 (7 days)].
    #[arg(long, env = "PARLEY_CHANGE_LOG_RETENTION_SECS", value_name = "SECS")]
    pub change_log_retention_secs: Option<u64>,
    /// Seconds between two trims of the change log on this node [default: 60].
    #[arg(
        long,
        env = "PARLEY_CHANGE_LOG_TRIM_INTERVAL_SECS",
        value_name = "SECS"
    )]
    pub change_log_trim_interval_secs: Option<u64>,
    /// Seconds a client has to send a whole request head; slower connections are closed
    /// [default: 10].
    #[arg(long, env = "PARLEY_HEADER_READ_TIMEOUT_SECS", value_name = "SECS")]
    pub header_read_timeout_secs: Option<u32>,
    /// Seconds an idle keep-alive connection stays open [default: 75].
    #[arg(long, env = "PARLEY_KEEP_ALIVE_TIMEOUT_SECS", value_name = "SECS")]
    pub keep_alive_timeout_secs: Option<u32>,
    /// Seconds a client has to send a whole request body, from its head; slower connections are
    /// closed [default: 60].
    #[arg(long, env = "PARLEY_BODY_READ_TIMEOUT_SECS", value_name = "SECS")]
    pub body_read_timeout_secs: Option<u32>,
    /// Largest request head (request line and headers) in bytes; larger ones are answered
    /// 431 (414 for a long URI) [default: 32768, minimum 8192].
    #[arg(long, env = "PARLEY_MAX_HEADER_BYTES", value_name = "BYTES")]
    pub max_header_bytes: Option<u32>,
    /// Open connections at most (never more than the open-file limit minus 128); more are
    /// answered 503 and closed [default: 10000].
    #[arg(long, env = "PARLEY_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<u32>,
    /// Failed logins (Basic auth or Access Token) per minute per client address before answers
    /// turn 429; 0 = off [default: 30].
    #[arg(long, env = "PARLEY_AUTH_FAILURE_LIMIT", value_name = "N")]
    pub auth_failure_limit: Option<u32>,
    /// Seconds between server pings on live client (twilsock) connections [default: 25].
    #[arg(long, env = "PARLEY_LIVE_PING_INTERVAL_SECS", value_name = "SECS")]
    pub live_ping_interval_secs: Option<u32>,
    /// Largest twilsock frame (websocket message) a live client may send; a larger one closes the
    /// connection (twilsock close 406) [default: 1048576, minimum 1024].
    #[arg(long, env = "PARLEY_LIVE_MAX_FRAME_BYTES", value_name = "BYTES")]
    pub live_max_frame_bytes: Option<u32>,
    /// Upstream requests one live connection may have running at once; more are answered with
    /// transport status 429 [default: 32].
    #[arg(long, env = "PARLEY_LIVE_MAX_REQUESTS_IN_FLIGHT", value_name = "N")]
    pub live_max_requests_in_flight: Option<u32>,
    /// Live connections one identity of one service may hold on this node; the `init` of one more
    /// is answered 429 [default: 50].
    #[arg(
        long,
        env = "PARLEY_LIVE_MAX_CONNECTIONS_PER_IDENTITY",
        value_name = "N"
    )]
    pub live_max_connections_per_identity: Option<u32>,
    /// Notifications queued per live connection; a connection that falls this far behind is
    /// closed (twilsock close 503) and recovers by reconnecting [default: 1024].
    #[arg(long, env = "PARLEY_LIVE_SEND_QUEUE", value_name = "N")]
    pub live_send_queue: Option<u32>,
}

impl ServeArgs {
    /// Resolve the full configuration (flag/env > file > default).
    pub fn config(&self) -> anyhow::Result<Config> {
        let cli = Settings {
            listen: self.listen.clone(),
            public_url: self.public_url.clone(),
            rate_limit: self.rate_limit,
            max_bindings_per_user: self.max_bindings_per_user,
            binding_max_age_days: self.binding_max_age_days,
            push: self.push,
            push_log_retention_days: self.push_log_retention_days,
            push_lease_secs: self.push_lease_secs,
            push_bad_token_threshold: self.push_bad_token_threshold,
            webhooks: self.webhooks,
            webhook_first_try_delay_ms: self.webhook_first_try_delay_ms,
            live_poll_ms: self.live_poll_ms,
            request_log: self.request_log,
            metrics_listen: self.metrics_listen.clone(),
            rest_pre_webhooks: self.rest_pre_webhooks.clone(),
            change_log_retention_secs: self.change_log_retention_secs,
            change_log_trim_interval_secs: self.change_log_trim_interval_secs,
            header_read_timeout_secs: self.header_read_timeout_secs,
            keep_alive_timeout_secs: self.keep_alive_timeout_secs,
            body_read_timeout_secs: self.body_read_timeout_secs,
            max_header_bytes: self.max_header_bytes,
            max_connections: self.max_connections,
            auth_failure_limit: self.auth_failure_limit,
            live_ping_interval_secs: self.live_ping_interval_secs,
            live_max_frame_bytes: self.live_max_frame_bytes,
            live_max_requests_in_flight: self.live_max_requests_in_flight,
            live_max_connections_per_identity: self.live_max_connections_per_identity,
            live_send_queue: self.live_send_queue,
            ..self.db.settings()?
        };
        let settings = cli.with_file(self.db.config.as_deref())?;
        Config::from_settings(&settings, BootstrapAccount::from_env()?)
    }
}

/// `parley account …`.
#[derive(Subcommand)]
pub enum AccountCommand {
    /// Create an account and print its SID and auth token (shown only once).
    Create {
        /// Database and config file.
        #[command(flatten)]
        db: DbArgs,
        /// Human name.
        #[arg(long)]
        friendly_name: Option<String>,
        /// Use this Account SID (AC + 32 hex digits) instead of a random one.
        #[arg(long, value_name = "AC…")]
        sid: Option<AccountSid>,
        /// Use this auth token instead of a random one.
        #[arg(long, value_name = "TOKEN")]
        auth_token: Option<String>,
        /// Print one JSON object: {"sid","auth_token","friendly_name"}.
        #[arg(long)]
        json: bool,
    },
    /// List accounts (without secrets).
    List {
        /// Database and config file.
        #[command(flatten)]
        db: DbArgs,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Replace an account's auth token with a new random one and print it (the old one stops
    /// working at once).
    RotateToken {
        /// Database and config file.
        #[command(flatten)]
        db: DbArgs,
        /// The account.
        #[arg(value_name = "AC…")]
        sid: AccountSid,
        /// Print one JSON object: {"sid","auth_token","friendly_name"}.
        #[arg(long)]
        json: bool,
    },
}

/// `parley api-key …`.
#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key and print its SID and secret (shown only once).
    Create {
        /// Database and config file.
        #[command(flatten)]
        db: DbArgs,
        /// Owner account.
        #[arg(long, value_name = "AC…")]
        account: AccountSid,
        /// Human name.
        #[arg(long)]
        friendly_name: Option<String>,
        /// Print one JSON object: {"sid","secret","account_sid"}.
        #[arg(long)]
        json: bool,
    },
    /// List an account's API keys (without secrets).
    List {
        /// Database and config file.
        #[command(flatten)]
        db: DbArgs,
        /// Owner account.
        #[arg(long, value_name = "AC…")]
        account: AccountSid,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Delete an API key.
    Delete {
        /// Database and config file.
        #[command(flatten)]
        db: DbArgs,
        /// The key.
        #[arg(value_name = "SK…")]
        sid: ApiKeySid,
    },
}

impl Cli {
    /// Default log filter when `RUST_LOG` is unset: chatty for the server, quiet for admin
    /// commands whose stdout is their result.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Serve(_) => "info",
            Command::Push(_) => "warn",
            _ => "warn",
        }
    }

    /// Run the command.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => {
                let shutdown =
                    crate::shutdown_signal().context("cannot install signal handlers")?;
                serve(args, shutdown).await
            }
            Command::Account(cmd) => account(cmd).await,
            Command::ApiKey(cmd) => api_key(cmd).await,
            Command::Push(cmd) => push(cmd).await,
            Command::Token(args) => token(args).await,
            Command::Backup(args) => backup(args).await,
            Command::SecretKey(cmd) => secret_key(cmd).await,
            Command::Import(ImportCommand::Twilio(args)) => import_twilio(args).await,
        }
    }
}

/// `parley serve`: build, print first-start credentials, serve until `shutdown`.
pub async fn serve(
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = args.config()?;
    tracing::info!(
        "starting parley {}: {}",
        env!("CARGO_PKG_VERSION"),
        config.summary()
    );
    let app = Application::build(config).await?;
    match app.bootstrap() {
        Bootstrap::Generated(created) => print_bootstrap(created),
        Bootstrap::FromEnv(sid) => {
            print_or_warn(&format!("Parley created the bootstrap account {sid} from PARLEY_BOOTSTRAP_ACCOUNT_SID / PARLEY_BOOTSTRAP_AUTH_TOKEN.\n"));
        }
        Bootstrap::Existing => {}
    }

    // Past the grace period after a signal, stop waiting for slow requests.
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    };
    let deadline = async move {
        if signalled_rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = app.run_until_stopped(shutdown) => served,
        () = deadline => {
            tracing::warn!("in-flight requests still running {SHUTDOWN_GRACE:?} after the shutdown signal; exiting");
            Ok(())
        }
    }
}

fn print_bootstrap(created: &AccountCredentials) {
    let rule = "================================================================";
    print_or_warn(&format!(
        "{rule}\nParley created the first account. Save these credentials now:\n\
         the auth token is shown only once.\n\n  Account SID: {}\n  Auth Token:  {}\n{rule}\n",
        created.sid, created.auth_token
    ));
}

/// Write to stdout; a closed or broken stdout is logged, never a panic (`println!` would panic
/// and take the server down before it serves).
fn print_or_warn(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        tracing::warn!(error = %e, "cannot write to stdout (first-start message lost; `parley account rotate-token` issues a new token)");
    }
}

async fn account(cmd: AccountCommand) -> anyhow::Result<()> {
    match cmd {
        AccountCommand::Create {
            db,
            friendly_name,
            sid,
            auth_token,
            json,
        } => {
            let (store, secrets) = crate::db::open(&db.db_config()?).await?;
            let created =
                admin::create_account(store.as_ref(), &secrets, sid, auth_token, friendly_name)
                    .await?;
            print_account(&created, json)
        }
        AccountCommand::List { db, json } => {
            let (store, _) = crate::db::open(&db.db_config()?).await?;
            let accounts = admin::list_accounts(store.as_ref()).await?;
            if json {
                return print_json(&accounts);
            }
            println!("{:<34}  {:<20}  FRIENDLY NAME", "SID", "CREATED");
            for a in accounts {
                println!(
                    "{:<34}  {:<20}  {}",
                    a.sid,
                    a.date_created,
                    a.friendly_name.as_deref().unwrap_or("")
                );
            }
            Ok(())
        }
        AccountCommand::RotateToken { db, sid, json } => {
            let (store, secrets) = crate::db::open(&db.db_config()?).await?;
            let rotated = admin::rotate_auth_token(store.as_ref(), &secrets, &sid).await?;
            print_account(&rotated, json)
        }
    }
}

async fn api_key(cmd: ApiKeyCommand) -> anyhow::Result<()> {
    match cmd {
        ApiKeyCommand::Create {
            db,
            account,
            friendly_name,
            json,
        } => {
            let (store, secrets) = crate::db::open(&db.db_config()?).await?;
            let created =
                admin::create_api_key(store.as_ref(), &secrets, &account, friendly_name).await?;
            print_api_key(&created, json)
        }
        ApiKeyCommand::List { db, account, json } => {
            let (store, _) = crate::db::open(&db.db_config()?).await?;
            let keys = admin::list_api_keys(store.as_ref(), &account).await?;
            if json {
                return print_json(&keys);
            }
            println!("{:<34}  {:<20}  FRIENDLY NAME", "SID", "CREATED");
            for k in keys {
                println!(
                    "{:<34}  {:<20}  {}",
                    k.sid,
                    k.date_created,
                    k.friendly_name.as_deref().unwrap_or("")
                );
            }
            Ok(())
        }
        ApiKeyCommand::Delete { db, sid } => {
            let (store, _) = crate::db::open(&db.db_config()?).await?;
            admin::delete_api_key(store.as_ref(), &sid).await?;
            println!("Deleted API key {sid}");
            Ok(())
        }
    }
}

async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let report = crate::backup::backup(&args.db.db_config()?, &args.to).await?;
    println!(
        "Backed up {} to {} ({} pages, {} bytes, {} account(s)).",
        report.database.display(),
        report.to.display(),
        report.summary.pages,
        report.summary.bytes,
        report.summary.accounts
    );
    match (&report.key_file, &report.previous_key_file) {
        (Some(key), previous) => {
            println!(
                "Server key (key id {}) copied to {} (mode 0600).",
                report.key_id,
                key.display()
            );
            if let Some(previous) = previous {
                println!(
                    "A key rotation is in progress: earlier keys copied to {}.",
                    previous.display()
                );
            }
            println!(
                "Keep both files together and away from the server. To restore, stop the \
                 server and put them back as {} and {}.",
                report.database.display(),
                crate::db::key_file_path(&report.database).display()
            );
        }
        (None, _) => println!(
            "The server key (key id {}) comes from {SECRET_KEY_ENV} ({SECRET_KEY_FILE_ENV} or \
             secret_key in the config file) and was NOT written with the backup: keep that key \
             with it, the backup cannot be opened without it.",
            report.key_id
        ),
    }
    Ok(())
}

async fn secret_key(cmd: SecretKeyCommand) -> anyhow::Result<()> {
    match cmd {
        SecretKeyCommand::Rotate {
            db,
            new_key_file,
            stage,
        } => {
            let rotation =
                crate::keys::rotate(&db.db_config()?, new_key_file.as_deref(), stage, |key| {
                    use std::io::Write as _;
                    let mut out = std::io::stdout().lock();
                    writeln!(
                        out,
                        "New server key (install it as {SECRET_KEY_ENV}): {key}"
                    )
                    .and_then(|()| out.flush())
                    .context("cannot print the new key; nothing was changed")
                })
                .await?;
            report_rotation(&rotation);
            Ok(())
        }
    }
}

fn report_rotation(r: &crate::keys::Rotation) {
    use crate::db::KeySource;
    let old = if r.old_key_ids.is_empty() {
        "none".to_owned()
    } else {
        r.old_key_ids.join(", ")
    };
    if let Some(file) = &r.new_key_file {
        println!(
            "New server key: key id {}, in {}.",
            r.new_key_id,
            file.display()
        );
    } else {
        println!("New server key: key id {}.", r.new_key_id);
    }
    if r.staged {
        match &r.source {
            KeySource::KeyFile(path) => println!(
                "Staged: {} holds the new key, {} the old one ({old}). Restart the server \
                 (it opens secrets under both), then run `parley secret-key rotate` again to \
                 re-seal.",
                path.display(),
                crate::db::previous_key_file_path(path).display()
            ),
            _ => println!(
                "Staged: restart every node with {SECRET_KEY_ENV}=<the new key> and \
                 {SECRET_KEY_PREVIOUS_ENV}=<the old key>, then run `parley secret-key rotate \
                 --new-key-file <file with the new key>` with that environment to re-seal."
            ),
        }
        return;
    }
    println!(
        "Re-sealed {} secret(s) ({} already under the new key, {} empty); the old key(s) \
         ({old}) open nothing any more.",
        r.counts.resealed, r.counts.current, r.counts.empty
    );
    match &r.source {
        KeySource::KeyFile(path) => println!(
            "The new key is in {}. Restart the server to use it.",
            path.display()
        ),
        _ => println!(
            "Set {SECRET_KEY_ENV} to the new key on every node, remove \
             {SECRET_KEY_PREVIOUS_ENV}, and restart them."
        ),
    }
}

async fn import_twilio(args: ImportTwilioArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let (store, secrets) = crate::db::open(&args.db.db_config()?).await?;
    if let Some(created) =
        crate::import::ensure_account(store.as_ref(), &secrets, &args.account_sid).await?
    {
        let rule = "================================================================";
        print_or_warn(&format!(
            "{rule}\nParley created the account {} for this import. Save its auth token now:\n\
             it is shown only once (it is not the Twilio auth token).\n\n  Account SID: {}\n  \
             Auth Token:  {}\n{rule}\n",
            created.sid, created.sid, created.auth_token
        ));
    }
    let opts = crate::import::ImportOptions {
        account_sid: args.account_sid,
        auth_token: args.auth_token,
        service: args.service,
        base_url: args.twilio_base_url,
    };
    // A spinner with the latest step on a terminal; plain lines otherwise (logs, pipes).
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let mut progress = |line: &str| match &bar {
        Some(bar) => bar.set_message(format!("import: {line}")),
        None => {
            let _ = writeln!(std::io::stderr(), "import: {line}");
        }
    };
    let summary = crate::import::import_twilio(store.as_ref(), &opts, &mut progress).await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    match summary {
        Ok(summary) => {
            print_or_warn(&summary.render());
            Ok(())
        }
        Err(e) => Err(e.context(
            "the import stopped; what was imported is kept, and running the same command again \
             continues where it stopped",
        )),
    }
}

async fn token(args: TokenArgs) -> anyhow::Result<()> {
    let (store, secrets) = crate::db::open(&args.db.db_config()?).await?;
    let issued = crate::token::issue(
        store.as_ref(),
        &secrets,
        &args.service,
        &args.identity,
        args.ttl,
        parley_core::Timestamp::now(),
    )
    .await?;
    if args.json {
        return print_json(&issued);
    }
    println!("{}", issued.token);
    Ok(())
}

async fn push(cmd: PushCommand) -> anyhow::Result<()> {
    match cmd {
        PushCommand::Test {
            db,
            account,
            service,
            binding,
            body,
        } => {
            let (store, secrets) = crate::db::open(&db.db_config()?).await?;
            let binding = store
                .fetch_binding(&account, &service, &binding)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot find binding {binding} in {service} of {account}: {e}")
                })?;
            let sender: std::sync::Arc<dyn parley_push::PushSender> =
                std::sync::Arc::new(parley_push::Providers::from_env());
            let worker = parley_push::Worker::new(
                store.clone(),
                store,
                secrets,
                sender,
                parley_push::WorkerConfig::default(),
                None,
            );
            let outcome = worker.send_test(&binding, &body).await?;
            let verdict = crate::push::verdict(outcome);
            print_json(&serde_json::json!({
                "binding_sid": binding.sid.as_str(),
                "binding_type": binding.binding_type.as_str(),
                "outcome": verdict.outcome,
                "reason": verdict.reason,
            }))?;
            if verdict.outcome != "delivered" {
                anyhow::bail!("not delivered: {}", verdict.outcome);
            }
            Ok(())
        }
    }
}

fn print_account(a: &AccountCredentials, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(a);
    }
    println!("Account SID:   {}", a.sid);
    println!("Auth Token:    {}   (shown only once)", a.auth_token);
    if let Some(name) = &a.friendly_name {
        println!("Friendly Name: {name}");
    }
    Ok(())
}

fn print_api_key(k: &ApiKeyCredentials, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(k);
    }
    println!("API Key SID: {}", k.sid);
    println!("Secret:      {}   (shown only once)", k.secret);
    println!("Account SID: {}", k.account_sid);
    Ok(())
}

fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string(value).context("cannot encode JSON")?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
