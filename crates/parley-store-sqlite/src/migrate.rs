//! Schema migrations, run on the writer connection when a store opens.
//!
//! The files are `migrations/NNNN_name.sql`, embedded at compile time. Applied migrations are
//! recorded in `_sqlx_migrations`, the table (and row format) of the `sqlx` migrator that
//! earlier releases used, so a database made by any release opens unchanged and is never
//! migrated twice:
//! * `version` is the file's number, `description` its name with `_` as spaces, `checksum` the
//!   SHA-384 of its text, `execution_time` nanoseconds, `success` true;
//! * each pending migration runs in one transaction (`BEGIN IMMEDIATE`) with its record, so
//!   two processes opening a new file at once apply it once (the second sees the record);
//! * a recorded migration whose file changed, one that failed half-way (`success = false`), or
//!   one this build does not know (a newer release made the file) stops the open with an error.

use std::time::Instant;

use anyhow::{bail, Context as _};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior};
use sha2::{Digest as _, Sha384};

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The number the file name starts with.
    pub version: i64,
    /// The rest of the file name, `_` read as spaces, without `.sql`.
    pub description: &'static str,
    /// The file's text.
    pub sql: &'static str,
}

impl Migration {
    /// SHA-384 of the text (what `_sqlx_migrations.checksum` holds).
    pub fn checksum(&self) -> Vec<u8> {
        Sha384::digest(self.sql.as_bytes()).to_vec()
    }
}

/// Every migration, in order (`migration_list_is_the_directory` checks it against the files).
pub static MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "init",
        sql: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        description: "chat",
        sql: include_str!("../migrations/0002_chat.sql"),
    },
    Migration {
        version: 3,
        description: "push",
        sql: include_str!("../migrations/0003_push.sql"),
    },
    Migration {
        version: 4,
        description: "fanout progress",
        sql: include_str!("../migrations/0004_fanout_progress.sql"),
    },
    Migration {
        version: 5,
        description: "change log",
        sql: include_str!("../migrations/0005_change_log.sql"),
    },
    Migration {
        version: 6,
        description: "channel webhooks",
        sql: include_str!("../migrations/0006_channel_webhooks.sql"),
    },
    Migration {
        version: 7,
        description: "webhook calls",
        sql: include_str!("../migrations/0007_webhook_calls.sql"),
    },
    Migration {
        version: 8,
        description: "channel removed identities",
        sql: include_str!("../migrations/0008_channel_removed_identities.sql"),
    },
    Migration {
        version: 9,
        description: "presence",
        sql: include_str!("../migrations/0009_presence.sql"),
    },
    Migration {
        version: 10,
        description: "change signal",
        sql: include_str!("../migrations/0010_change_signal.sql"),
    },
    Migration {
        version: 11,
        description: "credential needs secret",
        sql: include_str!("../migrations/0011_credential_needs_secret.sql"),
    },
    Migration {
        version: 12,
        description: "service reachability column",
        sql: include_str!("../migrations/0012_service_reachability_column.sql"),
    },
    Migration {
        version: 13,
        description: "webhook calls unused index",
        sql: include_str!("../migrations/0013_webhook_calls_unused_index.sql"),
    },
    Migration {
        version: 14,
        description: "credential version",
        sql: include_str!("../migrations/0014_credential_version.sql"),
    },
];

/// The bookkeeping table, created with the exact text `sqlx` used (it is part of the schema
/// that `sqlite_master` shows).
const CREATE_TABLE: &str = r#"
CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
);
                "#;

/// Apply the pending migrations on `conn` (see the module doc).
pub(crate) fn run(conn: &mut Connection) -> anyhow::Result<()> {
    conn.execute_batch(CREATE_TABLE)
        .context("cannot create _sqlx_migrations")?;
    for m in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if check_applied(&tx, m)? {
            continue; // dropping `tx` ends the read-only transaction
        }
        let started = Instant::now();
        tx.execute_batch(m.sql)
            .with_context(|| format!("migration {} ({}) failed", m.version, m.description))?;
        tx.execute(
            "insert into _sqlx_migrations (version, description, success, checksum,
                                           execution_time)
             values (?1, ?2, true, ?3, ?4)",
            rusqlite::params![
                m.version,
                m.description,
                m.checksum(),
                i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX)
            ],
        )?;
        tx.commit()?;
        tracing::debug!(version = m.version, "sqlite migration applied");
    }
    let newer: Option<i64> = conn
        .query_row("select max(version) from _sqlx_migrations", [], |r| {
            r.get::<_, Option<i64>>(0)
        })?
        .filter(|v| MIGRATIONS.iter().all(|m| m.version != *v));
    if let Some(v) = newer {
        bail!("the database has migration {v}, which this build does not know (a newer release made it)");
    }
    Ok(())
}

/// Whether `m` is recorded as applied; an error when it is recorded but failed or changed.
fn check_applied(conn: &Connection, m: &Migration) -> anyhow::Result<bool> {
    let row: Option<(bool, Vec<u8>)> = conn
        .query_row(
            "select success, checksum from _sqlx_migrations where version = ?",
            [m.version],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        None => Ok(false),
        Some((false, _)) => bail!(
            "migration {} ({}) is recorded as failed: the database needs repair",
            m.version,
            m.description
        ),
        Some((true, sum)) if sum != m.checksum() => bail!(
            "migration {} ({}) was applied but its file has changed since",
            m.version,
            m.description
        ),
        Some(_) => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded list is the `migrations/` directory: same numbers, names, order.
    #[test]
    fn migration_list_is_the_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("migrations dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.description.replace(' ', "_")))
            .collect();
        assert_eq!(listed, files);
        for (m, f) in MIGRATIONS.iter().zip(&files) {
            let text = std::fs::read_to_string(dir.join(f)).expect("read");
            assert_eq!(m.sql, text, "{f}");
        }
    }

    #[test]
    fn running_twice_applies_once_and_a_changed_file_is_an_error() {
        let mut c = Connection::open_in_memory().expect("open");
        run(&mut c).expect("first");
        run(&mut c).expect("second");
        let n: i64 = c
            .query_row(
                "select count(*) from _sqlx_migrations where success",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(n, i64::try_from(MIGRATIONS.len()).expect("len"));
        c.execute(
            "update _sqlx_migrations set checksum = x'00' where version = 2",
            [],
        )
        .expect("tamper");
        let err = run(&mut c).expect_err("changed");
        assert!(err.to_string().contains("changed"), "{err}");
        c.execute(
            "insert into _sqlx_migrations (version, description, success, checksum,
                                           execution_time) values (99, 'future', true, x'', 0)",
            [],
        )
        .expect("future");
        c.execute(
            "update _sqlx_migrations set checksum = ? where version = 2",
            [MIGRATIONS[1].checksum()],
        )
        .expect("restore");
        let err = run(&mut c).expect_err("newer");
        assert!(err.to_string().contains("99"), "{err}");
    }

    /// 0012 copies each existing service's `reachability_enabled` setting into its column.
    #[test]
    fn the_reachability_column_starts_as_the_stored_setting() {
        let c = Connection::open_in_memory().expect("open");
        for m in MIGRATIONS.iter().filter(|m| m.version < 12) {
            c.execute_batch(m.sql).expect("migration");
        }
        for (sid, settings) in [
            ("ISon", r#"{"reachability_enabled":true,"x":1}"#),
            ("ISoff", r#"{"reachability_enabled":false}"#),
            ("ISunset", "{}"),
        ] {
            c.execute(
                "insert into services (sid, account_sid, friendly_name, settings, date_created,
                                       date_updated) values (?, 'AC1', 'f', ?, 0, 0)",
                [sid, settings],
            )
            .expect("service");
        }
        let m12 = MIGRATIONS.iter().find(|m| m.version == 12).expect("0012");
        c.execute_batch(m12.sql).expect("0012");
        let mut st = c
            .prepare("select sid, reachability_enabled from services order by sid")
            .expect("prepare");
        let rows: Vec<(String, bool)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            rows,
            vec![
                ("ISoff".to_owned(), false),
                ("ISon".to_owned(), true),
                ("ISunset".to_owned(), false),
            ]
        );
    }
}
