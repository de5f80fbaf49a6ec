//! `parley backup --to FILE`: a consistent copy of a (running) SQLite database, made with
//! SQLite's online backup API, and what is needed to open it: the key file copied to
//! `FILE.key` (mode 0600), or a note saying where the key is when it comes from the environment.
//! PostgreSQL is refused: `pg_dump` does that job (README, "Backups").

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::config::{Backend, DbConfig};
use crate::db::{self, KeySource};

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupReport {
    /// The database that was copied.
    pub database: PathBuf,
    /// The copy.
    pub to: PathBuf,
    /// Figures of the copy.
    pub summary: parley_store_sqlite::BackupSummary,
    /// The key file written beside the copy, when the key comes from a key file.
    pub key_file: Option<PathBuf>,
    /// The previous-keys file written beside the copy (a key rotation in progress).
    pub previous_key_file: Option<PathBuf>,
    /// Key id of the key that opens the copy.
    pub key_id: String,
}

/// The message for PostgreSQL.
pub const POSTGRES_BACKUP: &str = "parley backup copies SQLite databases only. Back up a \
    PostgreSQL database with pg_dump and keep PARLEY_SECRET_KEY with the dump: without that key \
    the auth tokens, API key secrets and push credentials in it cannot be opened. See README.md, \
    section \"Backups\".";

/// Where the key goes beside a backup file: `FILE.key`.
pub fn backup_key_path(to: &Path) -> PathBuf {
    db::key_file_path(to)
}

/// Back up the database `db_config` names to `to`.
pub async fn backup(db_config: &DbConfig, to: &Path) -> anyhow::Result<BackupReport> {
    if db_config.database_url.backend() == Backend::Postgres {
        bail!("{POSTGRES_BACKUP}");
    }
    let Some(database) = db_config.database_url.sqlite_path() else {
        bail!("an in-memory database cannot be backed up");
    };
    if !database.is_file() {
        bail!(
            "there is no SQLite database at {} (check --database-url / --data-dir)",
            database.display()
        );
    }
    if same_file(&database, to) {
        bail!("--to names the database itself");
    }
    // Open it as the server does: checks that the key opens its secrets, finds the key.
    let store = db::open_store(&db_config.database_url).await?;
    let (keys, source) = db::load_keys(db_config, store.as_ref()).await?;
    drop(store);

    let (src, dest) = (database.clone(), to.to_path_buf());
    let summary =
        tokio::task::spawn_blocking(move || parley_store_sqlite::backup_file(&src, &dest))
            .await
            .context("the backup task failed")??;

    let (key_file, previous_key_file) = match &source {
        KeySource::KeyFile(path) => {
            let key_to = backup_key_path(to);
            copy_restricted(path, &key_to)?;
            let previous = db::previous_key_file_path(path);
            let previous_to = if previous.is_file() {
                let previous_to = db::previous_key_file_path(&key_to);
                copy_restricted(&previous, &previous_to)?;
                Some(previous_to)
            } else {
                None
            };
            (Some(key_to), previous_to)
        }
        KeySource::Environment | KeySource::Ephemeral => (None, None),
    };
    Ok(BackupReport {
        database,
        to: to.to_path_buf(),
        summary,
        key_file,
        previous_key_file,
        key_id: keys.key_id(),
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Copy `from` to `to` with mode 0600 (replacing `to`).
fn copy_restricted(from: &Path, to: &Path) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(from).with_context(|| format!("cannot read key file {}", from.display()))?;
    let mut temp = to.as_os_str().to_owned();
    temp.push(".partial");
    let temp = PathBuf::from(temp);
    let _ = std::fs::remove_file(&temp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    {
        use std::io::Write as _;
        let mut file = options
            .open(&temp)
            .with_context(|| format!("cannot create {}", temp.display()))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", temp.display()))?;
    }
    std::fs::rename(&temp, to).with_context(|| format!("cannot write {}", to.display()))
}
