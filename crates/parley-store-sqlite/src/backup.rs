//! `parley backup`: a consistent copy of a live database with SQLite's online backup API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::backup::StepResult;
use rusqlite::{Connection, OpenFlags};

/// What a backup copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// Database pages copied.
    pub pages: u64,
    /// Size of the backup file in bytes.
    pub bytes: u64,
    /// Rows in `accounts` in the copy (a quick sanity figure).
    pub accounts: u64,
}

/// Copy the SQLite database file `src` to `dest` with SQLite's online backup API, while the
/// server (or anything else) keeps writing to it. The copy is one consistent snapshot: in WAL
/// mode the backup reads inside a single read transaction (one step over every page), which
/// writers do not wait for and which never sees half a transaction. The copy is written to a
/// temporary file beside `dest`, switched to a rollback journal (one self-contained file),
/// checked (`quick_check`), given mode 0600 and then renamed over `dest`.
pub fn backup_file(src: &Path, dest: &Path) -> anyhow::Result<BackupSummary> {
    if !src.is_file() {
        anyhow::bail!("there is no SQLite database at {}", src.display());
    }
    let source = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open the SQLite database {}", src.display()))?;
    source.busy_timeout(Duration::from_secs(10))?;
    source.pragma_update(None, "query_only", "ON")?;

    let temp = temp_path(dest);
    let _ = std::fs::remove_file(&temp);
    let result = copy_into(&source, &temp);
    drop(source);
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    restrict(&temp)?;
    std::fs::rename(&temp, dest).with_context(|| {
        format!(
            "cannot move the backup {} to {}",
            temp.display(),
            dest.display()
        )
    })?;
    let bytes = std::fs::metadata(dest)
        .with_context(|| format!("cannot read {}", dest.display()))?
        .len();
    Ok(BackupSummary { bytes, ..summary })
}

fn copy_into(source: &Connection, temp: &Path) -> anyhow::Result<BackupSummary> {
    let mut copy = Connection::open(temp)
        .with_context(|| format!("cannot create the backup file {}", temp.display()))?;
    restrict(temp)?;
    let pages = {
        let backup = rusqlite::backup::Backup::new(source, &mut copy)
            .context("cannot start the SQLite backup")?;
        // -1: every page in one step, so the copy is one snapshot even while others write
        // (a step in parts restarts whenever another connection writes in between).
        let mut tries = 0;
        loop {
            match backup.step(-1).context("the SQLite backup failed")? {
                StepResult::Done => break,
                StepResult::More | StepResult::Busy | StepResult::Locked if tries < 200 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => anyhow::bail!("the SQLite backup did not finish: {other:?}"),
            }
        }
        let progress = backup.progress();
        u64::try_from(progress.pagecount).unwrap_or(0)
    };
    // One self-contained file: no -wal beside it.
    copy.pragma_update_and_check(None, "journal_mode", "DELETE", |_| Ok(()))
        .context("cannot switch the backup to a rollback journal")?;
    let check: String = copy
        .query_row("pragma quick_check", [], |r| r.get(0))
        .context("cannot check the backup")?;
    if check != "ok" {
        anyhow::bail!("the backup failed its integrity check: {check}");
    }
    let accounts: i64 = copy
        .query_row("select count(*) from accounts", [], |r| r.get(0))
        .context("the backup holds no Parley database")?;
    copy.close()
        .map_err(|(_, e)| e)
        .context("cannot close the backup file")?;
    let file = std::fs::File::open(temp)?;
    file.sync_all()
        .with_context(|| format!("cannot sync {}", temp.display()))?;
    Ok(BackupSummary {
        pages,
        bytes: 0,
        accounts: u64::try_from(accounts).unwrap_or(0),
    })
}

fn temp_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(format!(".partial-{}", std::process::id()));
    PathBuf::from(name)
}

/// Mode 0600: the copy holds every row (secrets sealed, the rest in clear).
fn restrict(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict the permissions of {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_core::store::AccountStore as _;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backup_of_an_open_store_holds_its_rows() {
        let dir = std::env::temp_dir().join(format!(
            "parley-backup-{}",
            parley_core::sid::random_hex32()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let db = dir.join("p.db");
        let store = crate::SqliteStore::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open");
        let now = parley_core::Timestamp::now();
        store
            .create_account(&parley_core::account::Account {
                sid: parley_core::AccountSid::generate(),
                friendly_name: None,
                auth_token_sealed: vec![1],
                date_created: now,
                date_updated: now,
            })
            .await
            .expect("account");
        let dest = dir.join("copy.db");
        let summary = backup_file(&db, &dest).expect("backup");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(summary.accounts, 1, "{summary:?}");
        assert!(summary.pages > 0, "{summary:?}");
    }
}
