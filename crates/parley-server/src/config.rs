//! Configuration: one typed [`Config`], built from three layers —
//! command-line flag or `PARLEY_*` environment variable (clap merges these two), then the
//! optional TOML file given with `--config`, then built-in defaults.
//!
//! The same [`Settings`] struct is one layer: the CLI fills one, the TOML file deserializes
//! into another (unknown keys are an error), and [`Settings::or`] stacks them.
//! Secrets (the server key, the database password, the bootstrap auth token) never appear in
//! `Debug` output.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use parley_core::crypto::SecretBox;
use parley_core::AccountSid;
use serde::Deserialize;

/// Default `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default `--database-url`: a SQLite file in the working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://parley.db";
/// The file name of the default SQLite database, in the data directory.
pub const DEFAULT_DATABASE_FILE: &str = "parley.db";
/// Environment variable: the data directory (`--data-dir`).
pub const DATA_DIR_ENV: &str = "PARLEY_DATA_DIR";
/// Default `--max-bindings-per-user`.
pub const DEFAULT_MAX_BINDINGS_PER_USER: u32 = parley_core::binding::DEFAULT_MAX_BINDINGS_PER_USER;
/// Default `--binding-max-age-days`.
pub const DEFAULT_BINDING_MAX_AGE_DAYS: u32 = 365;

/// Default `--push-lease-secs`.
pub const DEFAULT_PUSH_LEASE_SECS: u32 = 60;
/// Smallest `--push-lease-secs`: longer than the per-send timeout (20 s) plus settling.
pub const MIN_PUSH_LEASE_SECS: u32 = 25;

/// Default `--push-bad-token-threshold`.
pub const DEFAULT_PUSH_BAD_TOKEN_THRESHOLD: u32 = 20;

/// Default `--change-log-retention-secs` (7 days).
pub const DEFAULT_CHANGE_LOG_RETENTION_SECS: u64 = 604_800;
/// Default `--change-log-trim-interval-secs` (a minute).
pub const DEFAULT_CHANGE_LOG_TRIM_INTERVAL_SECS: u64 = 60;
/// Default interval of the live-client change-log tail, in milliseconds.
pub const DEFAULT_LIVE_POLL_MS: u32 = 1000;

/// Environment variable holding the server key (64 hex digits).
pub const SECRET_KEY_ENV: &str = "PARLEY_SECRET_KEY";
/// Environment variable: earlier server keys (comma-separated) still accepted for opening
/// secrets during a key rotation.
pub const SECRET_KEY_PREVIOUS_ENV: &str = "PARLEY_SECRET_KEY_PREVIOUS";
/// Environment variable naming a file that holds the server key (when `PARLEY_SECRET_KEY` is unset).
pub const SECRET_KEY_FILE_ENV: &str = "PARLEY_SECRET_KEY_FILE";
/// Environment variable: SID of the account created on first start.
pub const BOOTSTRAP_SID_ENV: &str = "PARLEY_BOOTSTRAP_ACCOUNT_SID";
/// Environment variable: auth token of the account created on first start.
pub const BOOTSTRAP_TOKEN_ENV: &str = "PARLEY_BOOTSTRAP_AUTH_TOKEN";

/// One layer of settings. Every field is optional; `None` defers to the next layer.
/// Also the schema of the `--config` TOML file (keys are these field names).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on (`host:port`).
    pub listen: Option<String>,
    /// `sqlite://…`, `postgres://…` or `postgresql://…`.
    pub database_url: Option<String>,
    /// Directory of the default SQLite database (`parley.db`) and its key file
    /// (default: the working directory); unused when `database_url` is set.
    pub data_dir: Option<String>,
    /// Externally visible base URL used in `url`/`links` fields.
    pub public_url: Option<String>,
    /// Server key, 64 hex digits (normally from `PARLEY_SECRET_KEY`).
    pub secret_key: Option<String>,
    /// Earlier server keys, comma-separated, that still open (never seal) secrets during a key
    /// rotation (normally from `PARLEY_SECRET_KEY_PREVIOUS`).
    pub secret_key_previous: Option<String>,
    /// Per-account request rate limit in requests per second (0 = off).
    pub rate_limit: Option<u32>,
    /// Cap of push bindings per user.
    pub max_bindings_per_user: Option<u32>,
    /// Bindings not refreshed for this many days are deleted (0 = never).
    pub binding_max_age_days: Option<u32>,
    /// Run the push delivery worker on this node (default true).
    pub push: Option<bool>,
    /// Days the push delivery log is kept.
    pub push_log_retention_days: Option<u32>,
    /// Seconds a node holds claimed push work before another node may take it over.
    pub push_lease_secs: Option<u32>,
    /// Distinct "bad device token" answers, with no success in between, after which a
    /// credential counts as misconfigured and its bindings are no longer pruned.
    pub push_bad_token_threshold: Option<u32>,
    /// Run the webhook worker (post-event calls) on this node (default true).
    pub webhooks: Option<bool>,
    /// Milliseconds a queued webhook call waits before its first try (default 0; a testing aid).
    pub webhook_first_try_delay_ms: Option<u32>,
    /// Milliseconds between two full change-log reads of the live-client tail without a
    /// wake-up (default 1000).
    pub live_poll_ms: Option<u32>,
    /// One `info` line per HTTP request (default true).
    pub request_log: Option<bool>,
    /// Separate address for `/metrics` (default: the main one).
    pub metrics_listen: Option<String>,
    /// Services whose REST changes (with `X-Twilio-Webhook-Enabled: true`) call their
    /// pre-event webhook: comma-separated service SIDs, or `*` for all; empty = none (Twilio).
    pub rest_pre_webhooks: Option<String>,
    /// Seconds change-log events are kept at least (they go once every consumer has passed
    /// them and they are this old).
    pub change_log_retention_secs: Option<u64>,
    /// Seconds between two trims of the change log on a node (default 60).
    pub change_log_trim_interval_secs: Option<u64>,
    /// Seconds a client has to send a whole request head.
    pub header_read_timeout_secs: Option<u32>,
    /// Seconds an idle keep-alive connection stays open.
    pub keep_alive_timeout_secs: Option<u32>,
    /// Seconds a client has to send a whole request body, from its head.
    pub body_read_timeout_secs: Option<u32>,
    /// Largest request head (request line and headers) in bytes.
    pub max_header_bytes: Option<u32>,
    /// Open connections at most.
    pub max_connections: Option<u32>,
    /// Failed logins per minute per client address (0 = off).
    pub auth_failure_limit: Option<u32>,
    /// Seconds between server pings on live client (twilsock) connections.
    pub live_ping_interval_secs: Option<u32>,
    /// Largest twilsock frame a live client may send, in bytes.
    pub live_max_frame_bytes: Option<u32>,
    /// Upstream requests one live connection may have running at once.
    pub live_max_requests_in_flight: Option<u32>,
    /// Live connections one identity of one service may hold on this node.
    pub live_max_connections_per_identity: Option<u32>,
    /// Notifications queued per live connection before it counts as a slow consumer and is closed.
    pub live_send_queue: Option<u32>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("data_dir", &self.data_dir)
            .field("public_url", &self.public_url)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field(
                "secret_key_previous",
                &self.secret_key_previous.as_ref().map(|_| "***"),
            )
            .field("rate_limit", &self.rate_limit)
            .field("max_bindings_per_user", &self.max_bindings_per_user)
            .field("binding_max_age_days", &self.binding_max_age_days)
            .field("push", &self.push)
            .field("push_log_retention_days", &self.push_log_retention_days)
            .field("push_lease_secs", &self.push_lease_secs)
            .field("push_bad_token_threshold", &self.push_bad_token_threshold)
            .field("webhooks", &self.webhooks)
            .field(
                "webhook_first_try_delay_ms",
                &self.webhook_first_try_delay_ms,
            )
            .field("live_poll_ms", &self.live_poll_ms)
            .field("request_log", &self.request_log)
            .field("metrics_listen", &self.metrics_listen)
            .field("rest_pre_webhooks", &self.rest_pre_webhooks)
            .field("change_log_retention_secs", &self.change_log_retention_secs)
            .field(
                "change_log_trim_interval_secs",
                &self.change_log_trim_interval_secs,
            )
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
            .field("keep_alive_timeout_secs", &self.keep_alive_timeout_secs)
            .field("body_read_timeout_secs", &self.body_read_timeout_secs)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("max_connections", &self.max_connections)
            .field("auth_failure_limit", &self.auth_failure_limit)
            .field("live_ping_interval_secs", &self.live_ping_interval_secs)
            .field("live_max_frame_bytes", &self.live_max_frame_bytes)
            .field(
                "live_max_requests_in_flight",
                &self.live_max_requests_in_flight,
            )
            .field(
                "live_max_connections_per_identity",
                &self.live_max_connections_per_identity,
            )
            .field("live_send_queue", &self.live_send_queue)
            .finish()
    }
}

impl Settings {
    /// This layer, with gaps filled from `lower`.
    pub fn or(self, lower: Settings) -> Settings {
        Settings {
            listen: self.listen.or(lower.listen),
            database_url: self.database_url.or(lower.database_url),
            data_dir: self.data_dir.or(lower.data_dir),
            public_url: self.public_url.or(lower.public_url),
            secret_key: self.secret_key.or(lower.secret_key),
            secret_key_previous: self.secret_key_previous.or(lower.secret_key_previous),
            rate_limit: self.rate_limit.or(lower.rate_limit),
            max_bindings_per_user: self.max_bindings_per_user.or(lower.max_bindings_per_user),
            binding_max_age_days: self.binding_max_age_days.or(lower.binding_max_age_days),
            push: self.push.or(lower.push),
            push_log_retention_days: self
                .push_log_retention_days
                .or(lower.push_log_retention_days),
            push_lease_secs: self.push_lease_secs.or(lower.push_lease_secs),
            push_bad_token_threshold: self
                .push_bad_token_threshold
                .or(lower.push_bad_token_threshold),
            webhooks: self.webhooks.or(lower.webhooks),
            webhook_first_try_delay_ms: self
                .webhook_first_try_delay_ms
                .or(lower.webhook_first_try_delay_ms),
            live_poll_ms: self.live_poll_ms.or(lower.live_poll_ms),
            request_log: self.request_log.or(lower.request_log),
            metrics_listen: self.metrics_listen.or(lower.metrics_listen),
            rest_pre_webhooks: self.rest_pre_webhooks.or(lower.rest_pre_webhooks),
            change_log_retention_secs: self
                .change_log_retention_secs
                .or(lower.change_log_retention_secs),
            change_log_trim_interval_secs: self
                .change_log_trim_interval_secs
                .or(lower.change_log_trim_interval_secs),
            header_read_timeout_secs: self
                .header_read_timeout_secs
                .or(lower.header_read_timeout_secs),
            keep_alive_timeout_secs: self
                .keep_alive_timeout_secs
                .or(lower.keep_alive_timeout_secs),
            body_read_timeout_secs: self.body_read_timeout_secs.or(lower.body_read_timeout_secs),
            max_header_bytes: self.max_header_bytes.or(lower.max_header_bytes),
            max_connections: self.max_connections.or(lower.max_connections),
            auth_failure_limit: self.auth_failure_limit.or(lower.auth_failure_limit),
            live_ping_interval_secs: self
                .live_ping_interval_secs
                .or(lower.live_ping_interval_secs),
            live_max_frame_bytes: self.live_max_frame_bytes.or(lower.live_max_frame_bytes),
            live_max_requests_in_flight: self
                .live_max_requests_in_flight
                .or(lower.live_max_requests_in_flight),
            live_max_connections_per_identity: self
                .live_max_connections_per_identity
                .or(lower.live_max_connections_per_identity),
            live_send_queue: self.live_send_queue.or(lower.live_send_queue),
        }
    }

    /// Parse a TOML document (unknown keys are an error).
    pub fn from_toml(text: &str) -> anyhow::Result<Settings> {
        Ok(toml::from_str(text)?)
    }

    /// Read a TOML config file.
    pub fn from_file(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// `self` over the file at `path` (if any).
    pub fn with_file(self, path: Option<&Path>) -> anyhow::Result<Settings> {
        match path {
            Some(path) => Ok(self.or(Settings::from_file(path)?)),
            None => Ok(self),
        }
    }
}

/// A secret string whose `Debug` is `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Which database backend a URL selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:` URLs.
    Sqlite,
    /// `postgres:` and `postgresql:` URLs.
    Postgres,
}

/// A database URL. `Debug` and `Display` hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    backend: Backend,
}

impl DatabaseUrl {
    /// Check the scheme: `sqlite:`, `postgres:` or `postgresql:`; anything else is an error.
    pub fn parse(url: &str) -> anyhow::Result<DatabaseUrl> {
        let url = url.trim();
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase())
            .unwrap_or_default();
        let backend = match scheme.as_str() {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            "" => bail!(
                "invalid database URL `{}`: expected sqlite://PATH, postgres://… or postgresql://…",
                redact_url(url)
            ),
            other => bail!(
                "unsupported database URL scheme `{other}:` in `{}`: Parley supports sqlite://PATH, \
                 postgres://… and postgresql://…",
                redact_url(url)
            ),
        };
        Ok(DatabaseUrl {
            url: url.to_owned(),
            backend,
        })
    }

    /// The default SQLite database (`parley.db`) in directory `dir`.
    pub fn sqlite_in(dir: &Path) -> anyhow::Result<DatabaseUrl> {
        let path = dir.join(DEFAULT_DATABASE_FILE);
        let text = path
            .to_str()
            .with_context(|| format!("the data directory {} is not valid UTF-8", dir.display()))?;
        if text.contains(['?', '%']) {
            bail!(
                "the data directory {} contains `?` or `%`; choose another directory or give \
                 --database-url",
                dir.display()
            );
        }
        DatabaseUrl::parse(&format!("sqlite://{text}"))
    }

    /// The backend the scheme selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The full URL, password included. Hand it to the driver only; never log it.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// For SQLite files: the database file path (`None` for in-memory databases and
    /// non-SQLite URLs). Mirrors sqlx: `sqlite://` or `sqlite:` prefix, query string dropped.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        let rest = &self.url["sqlite:".len()..];
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
            return None;
        }
        Some(std::path::PathBuf::from(path))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.url))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", redact_url(&self.url))
    }
}

/// `url` with any password replaced by `***` (and the query string dropped, since drivers
/// accept `password=` there too).
pub fn redact_url(url: &str) -> String {
    let without_query = url.split('?').next().unwrap_or(url);
    match url::Url::parse(without_query) {
        Ok(mut parsed) if parsed.password().is_some() => {
            if parsed.set_password(Some("***")).is_ok() {
                parsed.to_string()
            } else {
                "<redacted>".to_owned()
            }
        }
        Ok(_) => without_query.to_owned(),
        // Unparseable: show only the scheme, in case a password hides in the rest.
        Err(_) => match without_query.split_once(':') {
            Some((scheme, _)) => format!("{scheme}:<redacted>"),
            None => "<redacted>".to_owned(),
        },
    }
}

/// What every command that opens the database needs.
#[derive(Clone, Debug)]
pub struct DbConfig {
    /// Where the data lives.
    pub database_url: DatabaseUrl,
    /// The data directory the default database lives in, when `--data-dir` chose the database
    /// (created on open if missing).
    pub data_dir: Option<PathBuf>,
    /// The server key from `PARLEY_SECRET_KEY` or the config file, if given.
    /// SQLite falls back to a key file beside the database; PostgreSQL requires it.
    pub secret_key: Option<Secret>,
    /// Earlier keys that still open secrets sealed with them (a key rotation in progress).
    pub previous_keys: Vec<Secret>,
}

impl DbConfig {
    /// Resolve from merged settings (defaults applied here).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<DbConfig> {
        let data_dir = settings
            .data_dir
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty());
        let (database_url, data_dir) = match (settings.database_url.as_deref(), data_dir) {
            (Some(url), _) => (DatabaseUrl::parse(url)?, None),
            (None, Some(dir)) => (
                DatabaseUrl::sqlite_in(Path::new(dir))?,
                Some(PathBuf::from(dir)),
            ),
            (None, None) => (DatabaseUrl::parse(DEFAULT_DATABASE_URL)?, None),
        };
        let secret_key = match settings.secret_key.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(key) => {
                SecretBox::from_hex(key).with_context(|| format!("invalid {SECRET_KEY_ENV}"))?;
                Some(Secret::new(key))
            }
        };
        let mut previous_keys = Vec::new();
        for key in settings
            .secret_key_previous
            .as_deref()
            .unwrap_or_default()
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|k| !k.is_empty())
        {
            SecretBox::from_hex(key)
                .with_context(|| format!("invalid {SECRET_KEY_PREVIOUS_ENV}"))?;
            previous_keys.push(Secret::new(key));
        }
        Ok(DbConfig {
            database_url,
            data_dir,
            secret_key,
            previous_keys,
        })
    }
}

/// The account to create on first start, from `PARLEY_BOOTSTRAP_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapAccount {
    /// Its `AC…` SID.
    pub sid: AccountSid,
    /// Its auth token.
    pub auth_token: Secret,
}

impl BootstrapAccount {
    /// Both variables or neither; the SID must be a valid `AC…` SID.
    pub fn from_env_values(
        sid: Option<String>,
        token: Option<String>,
    ) -> anyhow::Result<Option<BootstrapAccount>> {
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        match (nonempty(sid), nonempty(token)) {
            (None, None) => Ok(None),
            (Some(sid), Some(token)) => {
                let sid = AccountSid::parse(sid.trim()).map_err(|_| {
                    anyhow::anyhow!(
                        "{BOOTSTRAP_SID_ENV} must be an Account SID: AC followed by 32 hex digits"
                    )
                })?;
                validate_auth_token(token.trim())
                    .with_context(|| format!("invalid {BOOTSTRAP_TOKEN_ENV}"))?;
                Ok(Some(BootstrapAccount {
                    sid,
                    auth_token: Secret::new(token.trim()),
                }))
            }
            _ => bail!("set both {BOOTSTRAP_SID_ENV} and {BOOTSTRAP_TOKEN_ENV}, or neither"),
        }
    }

    /// Read `PARLEY_BOOTSTRAP_ACCOUNT_SID` and `PARLEY_BOOTSTRAP_AUTH_TOKEN`.
    pub fn from_env() -> anyhow::Result<Option<BootstrapAccount>> {
        Self::from_env_values(
            std::env::var(BOOTSTRAP_SID_ENV).ok(),
            std::env::var(BOOTSTRAP_TOKEN_ENV).ok(),
        )
    }
}

/// An operator-chosen auth token: printable ASCII, no spaces (it travels in HTTP Basic auth),
/// 8 to 256 characters.
pub fn validate_auth_token(token: &str) -> anyhow::Result<()> {
    if token.len() < 8 || token.len() > 256 {
        bail!("an auth token must be 8 to 256 characters long");
    }
    if !token.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        bail!("an auth token may only contain printable ASCII characters other than `:`");
    }
    Ok(())
}

/// Everything `parley serve` needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to bind (`host:port`; port 0 picks a free port).
    pub listen: String,
    /// Base URL for `url`/`links`; `None` = `http://<bound address>`.
    pub public_url: Option<String>,
    /// Database and server key.
    pub db: DbConfig,
    /// Per-account requests per second; `None` = off.
    pub rate_limit: Option<u32>,
    /// Cap of push bindings per user.
    pub max_bindings_per_user: u32,
    /// Delete bindings not refreshed for this many days; 0 = never.
    pub binding_max_age_days: u32,
    /// Run the push delivery worker on this node.
    pub push: bool,
    /// Days the push delivery log is kept.
    pub push_log_retention_days: u32,
    /// Lease on claimed push work, in seconds.
    pub push_lease_secs: u32,
    /// Bad-token answers after which a credential counts as misconfigured (at least 1).
    pub push_bad_token_threshold: u32,
    /// Run the webhook worker on this node.
    pub webhooks: bool,
    /// Delay of a queued webhook call's first try, in milliseconds.
    pub webhook_first_try_delay_ms: u32,
    /// Interval of the live-client change-log tail.
    pub live_poll: std::time::Duration,
    /// One `info` line per HTTP request.
    pub request_log: bool,
    /// Serve `/metrics` here instead of on `listen`.
    pub metrics_listen: Option<String>,
    /// Services whose REST changes fire pre-events (Parley extension; default none).
    pub rest_pre_webhooks: parley_http::PreHookScope,
    /// Change-log events are trimmed once every consumer has passed them and they are older
    /// than this.
    pub change_log_retention: std::time::Duration,
    /// How often a node trims the change log.
    pub change_log_trim_interval: std::time::Duration,
    /// Account to create on first start instead of a random one.
    pub bootstrap: Option<BootstrapAccount>,
    /// Connection limits (header-read and keep-alive timeouts, head size, connection cap).
    pub conn: crate::serve::ConnLimits,
    /// Failed logins per minute per client address; `None` = off.
    pub auth_failure_limit: Option<u32>,
    /// Live client (twilsock) limits and timers.
    pub live: parley_http::LiveConfig,
}

impl Config {
    /// The settings in effect as readable `key=value` pairs, for the start-up log line: the
    /// database URL without its password; the server key, auth tokens and other secrets never.
    pub fn summary(&self) -> String {
        let secs = |d: std::time::Duration| d.as_secs_f64();
        let pre = match &self.rest_pre_webhooks {
            parley_http::PreHookScope::Off => "off".to_owned(),
            parley_http::PreHookScope::All => "*".to_owned(),
            parley_http::PreHookScope::Services(s) => {
                let mut sids: Vec<&str> = s.iter().map(|x| x.as_str()).collect();
                sids.sort_unstable();
                sids.join(",")
            }
        };
        let pairs: Vec<(&str, String)> = vec![
            ("listen", self.listen.clone()),
            (
                "public_url",
                self.public_url
                    .clone()
                    .unwrap_or_else(|| "(from Host)".into()),
            ),
            ("database", self.db.database_url.to_string()),
            (
                "data_dir",
                self.db
                    .data_dir
                    .as_ref()
                    .map_or("none".into(), |d| d.display().to_string()),
            ),
            (
                "secret_key",
                if self.db.secret_key.is_some() {
                    "set"
                } else {
                    "key file"
                }
                .into(),
            ),
            (
                "rate_limit",
                self.rate_limit.map_or("off".into(), |n| n.to_string()),
            ),
            ("push", self.push.to_string()),
            ("webhooks", self.webhooks.to_string()),
            ("rest_pre_webhooks", pre),
            (
                "max_bindings_per_user",
                self.max_bindings_per_user.to_string(),
            ),
            (
                "binding_max_age_days",
                self.binding_max_age_days.to_string(),
            ),
            (
                "push_log_retention_days",
                self.push_log_retention_days.to_string(),
            ),
            (
                "change_log_retention_secs",
                self.change_log_retention.as_secs().to_string(),
            ),
            (
                "change_log_trim_interval_secs",
                self.change_log_trim_interval.as_secs().to_string(),
            ),
            ("live_poll_ms", self.live_poll.as_millis().to_string()),
            ("request_log", self.request_log.to_string()),
            (
                "metrics_listen",
                self.metrics_listen
                    .clone()
                    .unwrap_or_else(|| "(main address)".into()),
            ),
            (
                "live_ping_interval_secs",
                secs(self.live.ping_interval).to_string(),
            ),
            (
                "live_max_requests_in_flight",
                self.live.max_requests_in_flight.to_string(),
            ),
            (
                "live_max_connections_per_identity",
                self.live.max_connections_per_identity.to_string(),
            ),
            ("live_send_queue", self.live.send_queue.to_string()),
            ("max_connections", self.conn.max_connections.to_string()),
            ("max_header_bytes", self.conn.max_header_bytes.to_string()),
            (
                "auth_failure_limit",
                self.auth_failure_limit
                    .map_or("off".into(), |n| n.to_string()),
            ),
            (
                "bootstrap_account",
                self.bootstrap
                    .as_ref()
                    .map_or("none".into(), |b| b.sid.to_string()),
            ),
        ];
        pairs
            .into_iter()
            .map(|(k, v)| {
                if v.is_empty() || v.contains(char::is_whitespace) || v.contains('"') {
                    format!("{k}={v:?}")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Resolve from merged settings (defaults applied here) and the bootstrap account.
    pub fn from_settings(
        settings: &Settings,
        bootstrap: Option<BootstrapAccount>,
    ) -> anyhow::Result<Config> {
        let listen = settings
            .listen
            .clone()
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let public_url = settings
            .public_url
            .as_deref()
            .map(normalize_public_url)
            .transpose()?;
        let max_bindings_per_user = settings
            .max_bindings_per_user
            .unwrap_or(DEFAULT_MAX_BINDINGS_PER_USER);
        if max_bindings_per_user == 0 {
            bail!("max_bindings_per_user must be at least 1");
        }
        Ok(Config {
            listen,
            public_url,
            db: DbConfig::from_settings(settings)?,
            rate_limit: settings.rate_limit.filter(|&n| n > 0),
            max_bindings_per_user,
            binding_max_age_days: settings
                .binding_max_age_days
                .unwrap_or(DEFAULT_BINDING_MAX_AGE_DAYS),
            push: settings.push.unwrap_or(true),
            push_log_retention_days: settings.push_log_retention_days.unwrap_or(7),
            push_lease_secs: match settings.push_lease_secs.unwrap_or(DEFAULT_PUSH_LEASE_SECS) {
                // Sends time out after 20 s; the lease must outlast a send.
                n if n < MIN_PUSH_LEASE_SECS => {
                    bail!("push_lease_secs must be at least {MIN_PUSH_LEASE_SECS}")
                }
                n => n,
            },
            push_bad_token_threshold: match settings
                .push_bad_token_threshold
                .unwrap_or(DEFAULT_PUSH_BAD_TOKEN_THRESHOLD)
            {
                0 => bail!("push_bad_token_threshold must be at least 1"),
                n => n,
            },
            webhooks: settings.webhooks.unwrap_or(true),
            webhook_first_try_delay_ms: settings.webhook_first_try_delay_ms.unwrap_or(0),
            live_poll: std::time::Duration::from_millis(u64::from(
                settings.live_poll_ms.unwrap_or(DEFAULT_LIVE_POLL_MS).max(1),
            )),
            request_log: settings.request_log.unwrap_or(true),
            metrics_listen: settings
                .metrics_listen
                .clone()
                .filter(|s| !s.trim().is_empty()),
            rest_pre_webhooks: parley_http::PreHookScope::parse(
                settings.rest_pre_webhooks.as_deref().unwrap_or(""),
            )
            .map_err(|e| {
                anyhow::anyhow!("invalid rest_pre_webhooks (PARLEY_REST_PRE_WEBHOOKS): {e}")
            })?,
            change_log_retention: std::time::Duration::from_secs(
                settings
                    .change_log_retention_secs
                    .unwrap_or(DEFAULT_CHANGE_LOG_RETENTION_SECS),
            ),
            change_log_trim_interval: std::time::Duration::from_secs(
                match settings.change_log_trim_interval_secs {
                    Some(0) => anyhow::bail!(
                        "change_log_trim_interval_secs (PARLEY_CHANGE_LOG_TRIM_INTERVAL_SECS) must be at least 1"
                    ),
                    Some(n) => n,
                    None => DEFAULT_CHANGE_LOG_TRIM_INTERVAL_SECS,
                },
            ),
            bootstrap,
            conn: conn_limits(settings)?,
            auth_failure_limit: settings
                .auth_failure_limit
                .map_or(Some(DEFAULT_AUTH_FAILURE_LIMIT), |n| (n > 0).then_some(n)),
            live: live_config(settings)?,
        })
    }

    /// Defaults everywhere, on the given database (handy in tests).
    pub fn for_database(database_url: &str) -> anyhow::Result<Config> {
        let settings = Settings {
            database_url: Some(database_url.to_owned()),
            ..Settings::default()
        };
        Config::from_settings(&settings, None)
    }
}

/// The live client settings from merged settings (defaults applied here; each at least 1).
fn live_config(settings: &Settings) -> anyhow::Result<parley_http::LiveConfig> {
    use parley_http::live::socket::{
        DEFAULT_MAX_CONNECTIONS_PER_IDENTITY, DEFAULT_MAX_FRAME_BYTES,
        DEFAULT_MAX_REQUESTS_IN_FLIGHT, DEFAULT_PING_INTERVAL_SECS, DEFAULT_SEND_QUEUE,
    };
    let at_least_1 = |v: Option<u32>, default: u32, name: &str| -> anyhow::Result<u32> {
        match v.unwrap_or(default) {
            0 => bail!("{name} must be at least 1"),
            n => Ok(n),
        }
    };
    let usize_of = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    let max_frame_bytes = at_least_1(
        settings.live_max_frame_bytes,
        DEFAULT_MAX_FRAME_BYTES,
        "live_max_frame_bytes",
    )?;
    if max_frame_bytes < 1024 {
        bail!("live_max_frame_bytes must be at least 1024");
    }
    Ok(parley_http::LiveConfig {
        ping_interval: std::time::Duration::from_secs(
            at_least_1(
                settings.live_ping_interval_secs,
                DEFAULT_PING_INTERVAL_SECS,
                "live_ping_interval_secs",
            )?
            .into(),
        ),
        max_frame_bytes: usize_of(max_frame_bytes),
        max_requests_in_flight: usize_of(at_least_1(
            settings.live_max_requests_in_flight,
            DEFAULT_MAX_REQUESTS_IN_FLIGHT,
            "live_max_requests_in_flight",
        )?),
        max_connections_per_identity: usize_of(at_least_1(
            settings.live_max_connections_per_identity,
            DEFAULT_MAX_CONNECTIONS_PER_IDENTITY,
            "live_max_connections_per_identity",
        )?),
        send_queue: usize_of(at_least_1(
            settings.live_send_queue,
            DEFAULT_SEND_QUEUE,
            "live_send_queue",
        )?),
        ..parley_http::LiveConfig::default()
    })
}

/// Default `--auth-failure-limit`: failed logins per minute per client address.
pub const DEFAULT_AUTH_FAILURE_LIMIT: u32 = 30;

/// The connection limits from merged settings (defaults applied here).
fn conn_limits(settings: &Settings) -> anyhow::Result<crate::serve::ConnLimits> {
    use crate::serve::{
        DEFAULT_BODY_READ_TIMEOUT_SECS, DEFAULT_HEADER_READ_TIMEOUT_SECS,
        DEFAULT_KEEP_ALIVE_TIMEOUT_SECS, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_BYTES,
        MIN_MAX_HEADER_BYTES,
    };
    let secs = |v: Option<u32>, default: u32, name: &str| -> anyhow::Result<std::time::Duration> {
        match v.unwrap_or(default) {
            0 => bail!("{name} must be at least 1"),
            n => Ok(std::time::Duration::from_secs(n.into())),
        }
    };
    let max_header_bytes = settings
        .max_header_bytes
        .unwrap_or(DEFAULT_MAX_HEADER_BYTES);
    if max_header_bytes < MIN_MAX_HEADER_BYTES {
        bail!("max_header_bytes must be at least {MIN_MAX_HEADER_BYTES}");
    }
    let max_connections = settings.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if max_connections == 0 {
        bail!("max_connections must be at least 1");
    }
    Ok(crate::serve::ConnLimits {
        header_read_timeout: secs(
            settings.header_read_timeout_secs,
            DEFAULT_HEADER_READ_TIMEOUT_SECS,
            "header_read_timeout_secs",
        )?,
        keep_alive_timeout: secs(
            settings.keep_alive_timeout_secs,
            DEFAULT_KEEP_ALIVE_TIMEOUT_SECS,
            "keep_alive_timeout_secs",
        )?,
        body_read_timeout: secs(
            settings.body_read_timeout_secs,
            DEFAULT_BODY_READ_TIMEOUT_SECS,
            "body_read_timeout_secs",
        )?,
        max_header_bytes: max_header_bytes as usize,
        max_connections: max_connections as usize,
    })
}

/// An absolute `http(s)` URL without a trailing slash.
fn normalize_public_url(url: &str) -> anyhow::Result<String> {
    let parsed =
        url::Url::parse(url.trim()).with_context(|| format!("invalid public URL `{url}`"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        bail!("the public URL must be an absolute http:// or https:// URL, got `{url}`");
    }
    Ok(url.trim().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn flag_or_env_beats_file_beats_default() {
        let cli = Settings {
            listen: Some("0.0.0.0:9000".into()),
            ..Settings::default()
        };
        let file = Settings::from_toml(
            "listen = \"127.0.0.1:1\"\nrate_limit = 5\ndatabase_url = \"sqlite:///tmp/x.db\"\n",
        )
        .expect("toml");
        let config = Config::from_settings(&cli.or(file), None).expect("config");
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.rate_limit, Some(5));
        assert_eq!(config.db.database_url.expose(), "sqlite:///tmp/x.db");
        assert_eq!(config.max_bindings_per_user, 20);
        assert_eq!(config.binding_max_age_days, 365);
        assert_eq!(config.public_url, None);
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = Config::from_settings(&Settings::default(), None).expect("config");
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert_eq!(config.db.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(config.db.database_url.backend(), Backend::Sqlite);
        assert_eq!(config.rate_limit, None);
        assert!(config.db.secret_key.is_none());
        assert_eq!(config.push_bad_token_threshold, 20);
    }

    #[test]
    fn connection_limits_and_the_failed_login_limit_have_defaults_and_layers() {
        let config = Config::from_settings(&Settings::default(), None).expect("config");
        assert_eq!(config.conn, crate::serve::ConnLimits::default());
        assert_eq!(config.conn.header_read_timeout.as_secs(), 10);
        assert_eq!(config.conn.keep_alive_timeout.as_secs(), 75);
        assert_eq!(config.conn.body_read_timeout.as_secs(), 60);
        assert_eq!(config.conn.max_header_bytes, 32 * 1024);
        assert_eq!(config.conn.max_connections, 10_000);
        assert_eq!(config.auth_failure_limit, Some(30), "on by default");
        let file = Settings::from_toml(
            "header_read_timeout_secs = 3\nkeep_alive_timeout_secs = 4\nmax_header_bytes = 16384\n\
             max_connections = 50\nauth_failure_limit = 0\n",
        )
        .expect("toml");
        let config = Config::from_settings(&file, None).expect("config");
        assert_eq!(config.conn.header_read_timeout.as_secs(), 3);
        assert_eq!(config.conn.keep_alive_timeout.as_secs(), 4);
        assert_eq!(config.conn.max_header_bytes, 16384);
        assert_eq!(config.conn.max_connections, 50);
        assert_eq!(config.auth_failure_limit, None, "0 = off");
        let tiny = Settings {
            max_header_bytes: Some(100),
            ..Settings::default()
        };
        assert!(Config::from_settings(&tiny, None).is_err());
    }

    #[test]
    fn change_log_trim_interval_defaults_to_a_minute_and_refuses_zero() {
        let config = Config::from_settings(&Settings::default(), None).expect("config");
        assert_eq!(config.change_log_trim_interval.as_secs(), 60);
        let file = Settings::from_toml("change_log_trim_interval_secs = 2\n").expect("toml");
        let config = Config::from_settings(&file, None).expect("config");
        assert_eq!(config.change_log_trim_interval.as_secs(), 2);
        let zero = Settings {
            change_log_trim_interval_secs: Some(0),
            ..Settings::default()
        };
        assert!(Config::from_settings(&zero, None).is_err());
    }

    #[test]
    fn change_log_retention_defaults_to_seven_days_and_layers() {
        let config = Config::from_settings(&Settings::default(), None).expect("config");
        assert_eq!(config.change_log_retention.as_secs(), 7 * 24 * 3600);
        let file = Settings::from_toml("change_log_retention_secs = 3600\n").expect("toml");
        let config = Config::from_settings(&file, None).expect("config");
        assert_eq!(config.change_log_retention.as_secs(), 3600);
        let cli = Settings {
            change_log_retention_secs: Some(60),
            ..Settings::default()
        };
        let config = Config::from_settings(&cli.or(file), None).expect("config");
        assert_eq!(config.change_log_retention.as_secs(), 60);
    }

    #[test]
    fn rest_pre_webhooks_is_off_by_default_and_takes_sids_or_a_star() {
        let config = Config::from_settings(&Settings::default(), None).expect("config");
        assert_eq!(config.rest_pre_webhooks, parley_http::PreHookScope::Off);
        let file = Settings::from_toml("rest_pre_webhooks = \"*\"\n").expect("toml");
        let config = Config::from_settings(&file, None).expect("config");
        assert_eq!(config.rest_pre_webhooks, parley_http::PreHookScope::All);
        let sid = format!("IS{}", "ab".repeat(16));
        let cli = Settings {
            rest_pre_webhooks: Some(format!("{sid}, ")),
            ..Settings::default()
        };
        let config = Config::from_settings(&cli.or(file), None).expect("config");
        let parsed = parley_core::ServiceSid::parse(&sid).expect("sid");
        assert!(config.rest_pre_webhooks.includes(&parsed));
        assert_ne!(config.rest_pre_webhooks, parley_http::PreHookScope::All);
        let bad = Settings {
            rest_pre_webhooks: Some("ISnope".into()),
            ..Settings::default()
        };
        let err = Config::from_settings(&bad, None).expect_err("bad sid");
        assert!(err.to_string().contains("rest_pre_webhooks"), "{err}");
    }

    #[test]
    fn live_settings_have_defaults_layers_and_lower_bounds() {
        let config = Config::from_settings(&Settings::default(), None).expect("config");
        assert_eq!(config.live, parley_http::LiveConfig::default());
        assert_eq!(config.live.ping_interval.as_secs(), 25);
        assert_eq!(config.live.max_frame_bytes, 1024 * 1024);
        assert_eq!(config.live.max_requests_in_flight, 32);
        assert_eq!(config.live.max_connections_per_identity, 50);
        assert_eq!(config.live.send_queue, 1024);
        let file = Settings::from_toml(
            "live_ping_interval_secs = 5\nlive_max_frame_bytes = 65536\n\
             live_max_requests_in_flight = 4\nlive_max_connections_per_identity = 3\n\
             live_send_queue = 16\n",
        )
        .expect("toml");
        let cli = Settings {
            live_send_queue: Some(8),
            ..Settings::default()
        };
        let config = Config::from_settings(&cli.or(file), None).expect("config");
        assert_eq!(config.live.ping_interval.as_secs(), 5);
        assert_eq!(config.live.max_frame_bytes, 65536);
        assert_eq!(config.live.max_requests_in_flight, 4);
        assert_eq!(config.live.max_connections_per_identity, 3);
        assert_eq!(config.live.send_queue, 8, "flag beats file");
        for bad in [
            "live_ping_interval_secs = 0\n",
            "live_max_frame_bytes = 100\n",
            "live_max_requests_in_flight = 0\n",
            "live_max_connections_per_identity = 0\n",
            "live_send_queue = 0\n",
        ] {
            let settings = Settings::from_toml(bad).expect("toml");
            assert!(Config::from_settings(&settings, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        let err = Settings::from_toml("listen = \"x:1\"\nlisten_adress = \"y\"\n")
            .expect_err("unknown key");
        assert!(err.to_string().contains("listen_adress"), "{err}");
    }

    #[test]
    fn unknown_scheme_is_a_clear_error() {
        let err = DatabaseUrl::parse("mysql://root:hunter2@db/parley").expect_err("mysql");
        let text = err.to_string();
        assert!(
            text.contains("unsupported database URL scheme `mysql:`"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(
            DatabaseUrl::parse("postgresql://u@h/db")
                .expect("pg")
                .backend(),
            Backend::Postgres
        );
    }

    #[test]
    fn debug_redacts_secret_key_and_database_password() {
        let settings = Settings {
            database_url: Some("postgres://parley:hunter2@db:5432/parley".into()),
            secret_key: Some(KEY.into()),
            ..Settings::default()
        };
        let bootstrap = BootstrapAccount::from_env_values(
            Some(format!("AC{}", "a".repeat(32))),
            Some("supersecrettoken".into()),
        )
        .expect("bootstrap");
        let config = Config::from_settings(&settings, bootstrap).expect("config");
        for text in [
            format!("{config:?}"),
            format!("{settings:?}"),
            config.db.database_url.to_string(),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains(KEY), "{text}");
            assert!(!text.contains("supersecrettoken"), "{text}");
        }
        assert!(format!("{config:?}").contains("postgres://parley:***@db:5432/parley"));
    }

    #[test]
    fn data_dir_places_the_default_database_and_an_explicit_url_wins() {
        let file = Settings::from_toml("data_dir = \"/var/lib/parley\"\n").expect("toml");
        let db = DbConfig::from_settings(&file).expect("db");
        assert_eq!(
            db.database_url.expose(),
            "sqlite:///var/lib/parley/parley.db"
        );
        assert_eq!(
            db.database_url.sqlite_path(),
            Some("/var/lib/parley/parley.db".into())
        );
        assert_eq!(db.data_dir, Some(PathBuf::from("/var/lib/parley")));
        let cli = Settings {
            database_url: Some("sqlite://elsewhere.db".into()),
            ..Settings::default()
        };
        let db = DbConfig::from_settings(&cli.or(file)).expect("db");
        assert_eq!(db.database_url.expose(), "sqlite://elsewhere.db");
        assert_eq!(db.data_dir, None, "the data dir is not used");
        let db = DbConfig::from_settings(&Settings::default()).expect("db");
        assert_eq!(db.database_url.expose(), DEFAULT_DATABASE_URL);
        let odd = Settings {
            data_dir: Some("/tmp/what?".into()),
            ..Settings::default()
        };
        assert!(DbConfig::from_settings(&odd).is_err());
    }

    #[test]
    fn previous_keys_are_a_comma_separated_list_of_valid_keys() {
        let other = "ab".repeat(32);
        let settings = Settings {
            secret_key_previous: Some(format!("{KEY}, {other}")),
            ..Settings::default()
        };
        let db = DbConfig::from_settings(&settings).expect("db");
        assert_eq!(db.previous_keys.len(), 2);
        assert!(!format!("{db:?}").contains(&other), "never printed");
        let bad = Settings {
            secret_key_previous: Some("nope".into()),
            ..Settings::default()
        };
        let err = DbConfig::from_settings(&bad).expect_err("bad key");
        assert!(
            format!("{err:#}").contains("PARLEY_SECRET_KEY_PREVIOUS"),
            "{err:#}"
        );
    }

    #[test]
    fn bad_secret_key_is_rejected() {
        let settings = Settings {
            secret_key: Some("abcd".into()),
            ..Settings::default()
        };
        let err = DbConfig::from_settings(&settings).expect_err("bad key");
        assert!(format!("{err:#}").contains("64 hex digits"), "{err:#}");
    }

    #[test]
    fn sqlite_paths_follow_sqlx_url_rules() {
        let path = |u: &str| DatabaseUrl::parse(u).expect("url").sqlite_path();
        assert_eq!(path("sqlite://parley.db"), Some("parley.db".into()));
        assert_eq!(
            path("sqlite:///var/lib/p.db?mode=rwc"),
            Some("/var/lib/p.db".into())
        );
        assert_eq!(path("sqlite:data/p.db"), Some("data/p.db".into()));
        assert_eq!(path("sqlite::memory:"), None);
        assert_eq!(path("postgres://h/db"), None);
    }

    #[test]
    fn bootstrap_needs_both_values_and_a_valid_sid() {
        assert_eq!(
            BootstrapAccount::from_env_values(None, None).expect("none"),
            None
        );
        assert!(
            BootstrapAccount::from_env_values(Some(format!("AC{}", "1".repeat(32))), None).is_err()
        );
        let err =
            BootstrapAccount::from_env_values(Some("AC123".into()), Some("tokentoken".into()))
                .expect_err("bad sid");
        assert!(err.to_string().contains("Account SID"), "{err}");
    }

    #[test]
    fn public_url_is_validated_and_trimmed() {
        let settings = Settings {
            public_url: Some("https://chat.example.com/".into()),
            ..Settings::default()
        };
        let config = Config::from_settings(&settings, None).expect("config");
        assert_eq!(
            config.public_url.as_deref(),
            Some("https://chat.example.com")
        );
        let settings = Settings {
            public_url: Some("chat.example.com".into()),
            ..Settings::default()
        };
        assert!(Config::from_settings(&settings, None).is_err());
    }
}
