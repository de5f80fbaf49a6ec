//! Parley storage on PostgreSQL: [`PgStore`] implements every `parley_core::store` trait.
//!
//! Several stateless `parley` nodes may share one database, so nothing here assumes a single
//! process: registrations are upserts retried on races, sweeps use `for update skip locked`,
//! and migrations run under sqlx's advisory lock.
//!
//! SQL lives next to each method, one module per resource; rows are decoded in [`rows`].

use std::sync::Arc;
use std::time::Duration;

use parley_core::store::{Store, StoreError, StoreResult};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection};

mod account;
mod binding;
mod channel;
mod channel_webhook;
mod credential;
mod error;
mod event;
mod invite;
mod log;
mod member;
mod message;
mod paging;
mod presence;
mod push;
mod role;
mod rows;
mod secret;
mod service;
mod signal;
mod user;
mod webhook_call;

/// The embedded migrations (`migrations/NNNN_name.sql`, same numbers as the SQLite tree).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Pool size per node.
const MAX_CONNECTIONS: u32 = 10;

/// A PostgreSQL-backed store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// `LISTEN`/`NOTIFY` signals between the nodes ([`signal`]).
    bus: Arc<signal::PgBus>,
}

impl PgStore {
    /// Connect to `url` (e.g. `postgres://user@host/db`) and run pending migrations.
    pub async fn connect(url: &str) -> anyhow::Result<PgStore> {
        let pool = pool_options().connect_with(connect_options(url)?).await?;
        Self::migrated(pool).await
    }

    /// As [`PgStore::connect`], for a background worker whose every transaction can be
    /// repeated (the webhook worker: its claims are leases, its settlements make at most a
    /// repeated call, and a batch's calls are queued in the transaction that moves its log
    /// position): a pool of at most `max_connections` of its own, so it never waits behind
    /// request handlers for a connection, and `synchronous_commit = off`, so its commits do
    /// not each wait for a WAL flush. A database crash may undo its last commits (well under
    /// a second of them); the work is then done again. Any later synchronous commit — every
    /// request's — flushes them first, so nothing that depends on them is kept without them.
    pub async fn connect_for_worker(url: &str, max_connections: u32) -> anyhow::Result<PgStore> {
        let options = connect_options(url)?.options([("synchronous_commit", "off")]);
        let pool = pool_options()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    /// Connect to `url` and use `schema` for everything (created if missing; `search_path` is
    /// set on every pooled connection), then run pending migrations inside it. Gives each test
    /// an isolated database. `schema` must be a plain identifier (`[A-Za-z0-9_]`, not starting
    /// with a digit).
    pub async fn connect_in_schema(url: &str, schema: &str) -> anyhow::Result<PgStore> {
        let valid = !schema.is_empty()
            && schema.len() <= 63
            && !schema.starts_with(|c: char| c.is_ascii_digit())
            && schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            anyhow::bail!("invalid schema name {schema:?}");
        }
        // Create the schema once, on a connection of its own. Two processes creating the same
        // schema at once can race on the catalog: a unique violation means it exists.
        let mut conn = PgConnection::connect_with(&connect_options(url)?).await?;
        match conn
            .execute(format!(r#"create schema if not exists "{schema}""#).as_str())
            .await
        {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
            Err(e) => return Err(e.into()),
        }
        conn.close().await?;

        let set_path: Arc<str> = format!(r#"set search_path to "{schema}""#).into();
        let pool = pool_options()
            .after_connect(move |conn, _meta| {
                let set_path = Arc::clone(&set_path);
                Box::pin(async move {
                    conn.execute(&*set_path).await?;
                    Ok(())
                })
            })
            .connect_with(connect_options(url)?)
            .await?;
        Self::migrated(pool).await
    }

    async fn migrated(pool: PgPool) -> anyhow::Result<PgStore> {
        MIGRATOR.run(&pool).await?;
        let bus = Arc::new(signal::PgBus::new(pool.clone()));
        Ok(PgStore { pool, bus })
    }

    /// The connection pool (for tests and maintenance tasks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Close every connection of the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Connection options from `url`, with PostgreSQL's notices below warnings turned off: the
/// idempotent DDL of migrations (`create … if not exists`) would log a NOTICE on every start.
fn connect_options(url: &str) -> anyhow::Result<PgConnectOptions> {
    let options: PgConnectOptions = url.parse()?;
    Ok(options.options([("client_min_messages", "warning")]))
}

fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(10))
}

#[async_trait::async_trait]
impl Store for PgStore {
    fn signals(&self) -> &dyn parley_core::signal::SignalBus {
        self.bus.as_ref()
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select 1")
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::Other(e.into()))?;
        Ok(())
    }

    fn pool_stats(&self) -> (u32, u32) {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        (self.pool.size(), idle)
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// `NNNN_name` of every `.sql` file in `dir`, sorted.
    fn migration_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read migrations dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter_map(|n| n.strip_suffix(".sql").map(str::to_owned))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn migration_files_mirror_the_sqlite_tree() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let ours = migration_names(&here.join("migrations"));
        let sqlite = migration_names(&here.join("../parley-store-sqlite/migrations"));
        assert_eq!(
            ours, sqlite,
            "both backends need the same NNNN_name.sql files"
        );
        let embedded: Vec<String> = super::MIGRATOR
            .iter()
            .map(|m| format!("{:04}_{}", m.version, m.description.replace(' ', "_")))
            .collect();
        assert_eq!(embedded, ours);
    }
}

#[cfg(test)]
mod plan_tests;
