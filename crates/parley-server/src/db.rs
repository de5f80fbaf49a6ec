//! Opening the database: pick the backend from the URL scheme (the store's `connect` runs the
//! migrations), then find the server key that seals secrets at rest.
//!
//! Key rules:
//! * `PARLEY_SECRET_KEY` (or `secret_key` in the config file) wins when set;
//! * otherwise, on SQLite, the key lives in `<database file>.key` (mode 0600), generated on
//!   first start and reused after; an in-memory database gets a throw-away key;
//! * otherwise, on PostgreSQL, start-up fails: several nodes must share one key.
//!
//! Whatever its source, the key is checked against the stored accounts, so a wrong or lost key
//! is a clear start-up error rather than failing logins later.
//!
//! During a key rotation (`parley secret-key rotate`, see `keys.rs`) earlier keys still open
//! what they sealed: `PARLEY_SECRET_KEY_PREVIOUS`, and beside a key file
//! `<database file>.key.previous` (one key per line).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use parley_core::crypto::SecretBox;
use parley_core::store::Store;

use crate::config::{Backend, DatabaseUrl, DbConfig, SECRET_KEY_ENV, SECRET_KEY_PREVIOUS_ENV};

const POSTGRES_NEEDS_KEY: &str = "PARLEY_SECRET_KEY is required with PostgreSQL: every node \
    must seal and open secrets with the same key. Generate one with `openssl rand -hex 32` and \
    give the same value to all nodes.";

/// Open the store the URL names and apply pending migrations.
pub async fn open_store(url: &DatabaseUrl) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match url.backend() {
        Backend::Sqlite => {
            if let Some(dir) = url.sqlite_path().as_deref().and_then(Path::parent) {
                if !dir.as_os_str().is_empty() && !dir.is_dir() {
                    bail!(
                        "cannot open the SQLite database {url}: directory {} does not exist",
                        dir.display()
                    );
                }
            }
            Arc::new(
                parley_store_sqlite::SqliteStore::connect(url.expose())
                    .await
                    .with_context(|| format!("cannot open the SQLite database {url}"))?,
            )
        }
        Backend::Postgres => Arc::new(
            parley_store_postgres::PgStore::connect(url.expose())
                .await
                .with_context(|| format!("cannot open the PostgreSQL database {url}"))?,
        ),
    };
    tracing::info!(backend = store.backend(), database = %url, "database ready");
    Ok(store)
}

/// The store and the server key, checked against each other.
/// The store a background worker uses: on PostgreSQL a pool of its own (at most
/// `max_connections`), so it never queues behind request handlers for a connection; on SQLite
/// `main` itself (one writer per process).
pub async fn open_worker_store(
    url: &DatabaseUrl,
    main: &Arc<dyn Store>,
    max_connections: u32,
) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match url.backend() {
        Backend::Sqlite => main.clone(),
        Backend::Postgres => Arc::new(
            parley_store_postgres::PgStore::connect_for_worker(url.expose(), max_connections)
                .await
                .with_context(|| format!("cannot open the PostgreSQL database {url}"))?,
        ),
    })
}

pub async fn open(db: &DbConfig) -> anyhow::Result<(Arc<dyn Store>, SecretBox)> {
    if db.secret_key.is_none() && db.database_url.backend() == Backend::Postgres {
        bail!("{POSTGRES_NEEDS_KEY}");
    }
    ensure_data_dir(db)?;
    let store = open_store(&db.database_url).await?;
    let secrets = load_secret_box(db, store.as_ref()).await?;
    Ok((store, secrets))
}

/// Create the data directory (`--data-dir`) if it is missing.
pub fn ensure_data_dir(db: &DbConfig) -> anyhow::Result<()> {
    if let Some(dir) = &db.data_dir {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
            tracing::info!(path = %dir.display(), "created the data directory");
        }
    }
    Ok(())
}

/// Where the server key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `PARLEY_SECRET_KEY`, `PARLEY_SECRET_KEY_FILE` or `secret_key` in the config file.
    Environment,
    /// The key file beside a SQLite database.
    KeyFile(PathBuf),
    /// A throw-away key (in-memory database).
    Ephemeral,
}

/// Where earlier keys live beside a key file during a rotation: `<key file>.previous`.
pub fn previous_key_file_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".previous");
    PathBuf::from(name)
}

/// Where a SQLite database keeps its generated key: `<database file>.key`.
pub fn key_file_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// Find (or, for a new SQLite database, create) the server key; see the module docs.
pub async fn load_secret_box(db: &DbConfig, store: &dyn Store) -> anyhow::Result<SecretBox> {
    Ok(load_keys(db, store).await?.0)
}

/// [`load_secret_box`], also saying where the key came from.
pub async fn load_keys(db: &DbConfig, store: &dyn Store) -> anyhow::Result<(SecretBox, KeySource)> {
    let accounts = store
        .list_accounts()
        .await
        .context("cannot list accounts")?;
    let (secrets, source, key_source) = match (&db.secret_key, db.database_url.backend()) {
        (Some(key), _) => (
            SecretBox::from_hex(key.expose())
                .with_context(|| format!("invalid {SECRET_KEY_ENV}"))?,
            format!("{SECRET_KEY_ENV} (or secret_key in the config file)"),
            KeySource::Environment,
        ),
        (None, Backend::Postgres) => bail!("{POSTGRES_NEEDS_KEY}"),
        (None, Backend::Sqlite) => match db.database_url.sqlite_path() {
            None => (
                SecretBox::from_hex(&SecretBox::generate_hex())?,
                "a throw-away key (in-memory database)".to_owned(),
                KeySource::Ephemeral,
            ),
            Some(path) => {
                let key_path = key_file_path(&path);
                let key = if key_path.exists() {
                    read_key_file(&key_path)?
                } else if accounts.is_empty() {
                    create_key_file(&key_path)?
                } else {
                    bail!(
                        "the database {} holds accounts but its key file {} is missing: restore \
                         the key file from the backup taken with the database, or set \
                         {SECRET_KEY_ENV}",
                        path.display(),
                        key_path.display()
                    );
                };
                let previous = read_previous_key_file(&previous_key_file_path(&key_path))?;
                (
                    key.with_previous(previous),
                    format!("key file {}", key_path.display()),
                    KeySource::KeyFile(key_path),
                )
            }
        },
    };
    let mut previous = Vec::new();
    for key in &db.previous_keys {
        previous.push(
            SecretBox::from_hex(key.expose())
                .with_context(|| format!("invalid {SECRET_KEY_PREVIOUS_ENV}"))?,
        );
    }
    let secrets = secrets.with_previous(previous);
    // The key must open what is already sealed.
    if let Some(account) = accounts.first() {
        if secrets.open(&account.auth_token_sealed).is_err() {
            bail!(
                "the server key from {source} (key id {}) cannot open the secrets stored in the \
                 database: it is not the key they were sealed with",
                secrets.key_id()
            );
        }
    }
    let previous = secrets.previous_key_ids();
    if previous.is_empty() {
        tracing::debug!(key_id = %secrets.key_id(), "server key loaded");
    } else {
        tracing::info!(
            key_id = %secrets.key_id(),
            previous = %previous.join(","),
            "server key loaded; earlier keys still open their secrets until `parley secret-key rotate` re-seals them"
        );
    }
    Ok((secrets, key_source))
}

/// The earlier keys in `<key file>.previous` (none when the file is missing).
pub fn read_previous_key_file(path: &Path) -> anyhow::Result<Vec<SecretBox>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read key file {}", path.display()))
        }
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            SecretBox::from_hex(l).with_context(|| format!("invalid key file {}", path.display()))
        })
        .collect()
}

fn read_key_file(path: &Path) -> anyhow::Result<SecretBox> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    warn_if_readable_by_others(path);
    SecretBox::from_hex(&text).with_context(|| format!("invalid key file {}", path.display()))
}

/// Write a fresh key with mode 0600. If another process created the file meanwhile, use theirs.
fn create_key_file(path: &Path) -> anyhow::Result<SecretBox> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let key = SecretBox::generate_hex();
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{key}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write key file {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a new server key; back it up with the database");
            Ok(SecretBox::from_hex(&key)?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path),
        Err(e) => Err(e).with_context(|| format!("cannot create key file {}", path.display())),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the key file is readable by other users; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_sits_beside_the_database() {
        assert_eq!(
            key_file_path(Path::new("/var/lib/parley.db")),
            PathBuf::from("/var/lib/parley.db.key")
        );
        assert_eq!(
            key_file_path(Path::new("parley.db")),
            PathBuf::from("parley.db.key")
        );
    }
}
