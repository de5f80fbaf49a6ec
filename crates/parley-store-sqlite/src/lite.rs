//! Inline SQLite access with `rusqlite`: the store's only driver.
//!
//! An async driver that runs every connection on a thread of its own and hands each statement
//! and each row across a channel (`sqlx`, which this store used before) spent, measured under
//! load (`bench/`), over half of the server's CPU on those hand-offs (futex waits and
//! wake-ups), against ~1 % in SQLite itself. SQLite is a library, not a server: a statement on
//! an indexed table in the page cache takes microseconds, less than one such hand-off. So the
//! statements run right here, on the calling task's thread:
//!
//! * **reads** take an idle read-only connection from a small stack (or open one), run, and put
//!   it back — no thread switch, no `await`;
//! * **writes** first take the store's async write lock (so they queue, in order, without
//!   blocking a thread while they wait), then run their whole change at once on the single
//!   writer connection, in a savepoint of a `BEGIN IMMEDIATE` transaction. Nothing inside a
//!   change awaits, so the lock is held for its CPU time only. Writes that arrive together
//!   share one transaction and one commit (a *write group*, `crate::SqliteStore::write`).
//!
//! Every statement of the store, migrations included (`migrate.rs`), runs this way.
//! Statements are prepared once per connection and cached.
//!
//! [`Q`] is a small query builder (`q(sql).bind(a).bind(b).one(conn)`).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use parley_core::store::{Conflict, StoreError, StoreResult};
use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags, Row};

/// Idle read connections kept open (more are opened under load and closed again).
const MAX_IDLE_READERS: usize = 8;
/// Prepared statements cached per connection.
const STATEMENT_CACHE: usize = 128;
/// Bytes of the database file each read connection maps into memory: pages are read from the
/// mapping instead of being copied in by `pread` into every connection's own page cache
/// (measured: +20–25 % on random fetches over a 100k–1M row table). Mapped pages are the
/// kernel's page cache, shared and reclaimable, but they count in the process's RSS.
const READER_MMAP_SIZE: &str = "268435456";
/// How often the background checkpointer copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// The WAL file is cut back to this size when it restarts (it is reused from the start after
/// each complete checkpoint, so it only grows past this in a burst).
const WAL_SIZE_LIMIT: &str = "67108864";

/// The `rusqlite` side of a [`crate::SqliteStore`]: read connections and the writer.
pub(crate) struct Lite {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    /// Read connections taken from `idle` (or opened) and not yet given back.
    reading: AtomicU32,
    writer: Mutex<Connection>,
    /// The checkpointer's own connection (used on a blocking thread, under the write lock).
    checkpoint: Mutex<Connection>,
}

impl std::fmt::Debug for Lite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lite").field("path", &self.path).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Lite {
    /// Open (creating if missing) the database file in WAL mode, apply pending migrations
    /// (`migrate.rs`) and open the writer, the checkpointer's connection and a first reader.
    pub(crate) fn open(path: &Path, busy_timeout: Duration) -> anyhow::Result<Lite> {
        let mut writer = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        writer.busy_timeout(busy_timeout)?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        writer.pragma_update(None, "foreign_keys", "ON")?;
        writer.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        // Checkpoints (which fsync) run on a blocking thread, never inside a request.
        writer.pragma_update(None, "wal_autocheckpoint", "0")?;
        writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        // Each write of a write group runs in a savepoint, whose sub-journal keeps the pages it
        // changes; in memory it costs no file writes (a group is at most 64 writes).
        writer.pragma_update(None, "temp_store", "MEMORY")?;
        crate::migrate::run(&mut writer)?;
        let checkpoint = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        checkpoint.busy_timeout(busy_timeout)?;
        checkpoint.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let lite = Lite {
            path: path.to_owned(),
            busy_timeout,
            idle: Mutex::new(Vec::new()),
            reading: AtomicU32::new(0),
            writer: Mutex::new(writer),
            checkpoint: Mutex::new(checkpoint),
        };
        let first = lite.open_reader()?;
        lock(&lite.idle).push(first);
        Ok(lite)
    }

    fn open_reader(&self) -> rusqlite::Result<Connection> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(self.busy_timeout)?;
        c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        c.pragma_update(None, "query_only", "ON")?;
        c.pragma_update(None, "mmap_size", READER_MMAP_SIZE)?;
        Ok(c)
    }

    /// Run `f` on a read connection, on this thread.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let popped = {
            let mut idle = lock(&self.idle);
            let popped = idle.pop();
            // Counted under the lock, so `stats` never sees a connection in neither place.
            self.reading.fetch_add(1, Ordering::Relaxed);
            popped
        };
        let conn = match popped {
            Some(c) => c,
            None => match self.open_reader() {
                Ok(c) => c,
                Err(e) => {
                    self.reading.fetch_sub(1, Ordering::Relaxed);
                    return Err(lite_err(e));
                }
            },
        };
        let out = f(&conn);
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        self.reading.fetch_sub(1, Ordering::Relaxed);
        out
    }

    /// Read connections (open, idle): the idle ones plus those running a read now.
    pub(crate) fn reader_stats(&self) -> (u32, u32) {
        let idle = lock(&self.idle);
        let idle_n = u32::try_from(idle.len()).unwrap_or(u32::MAX);
        let reading = self.reading.load(Ordering::Relaxed);
        (idle_n.saturating_add(reading), idle_n)
    }

    /// Copy the whole WAL back into the database file and truncate it (on close), on the
    /// writer connection. The caller holds the write lock.
    pub(crate) fn checkpoint_truncate_locked(&self) -> rusqlite::Result<()> {
        let conn = lock(&self.writer);
        conn.query_row("pragma wal_checkpoint(truncate)", [], |_| Ok(()))
    }

    /// The writer connection, outside any transaction (tests and one-off maintenance).
    #[cfg(test)]
    pub(crate) fn writer(&self) -> std::sync::MutexGuard<'_, Connection> {
        lock(&self.writer)
    }

    /// Open a `BEGIN IMMEDIATE` transaction on the writer connection (a write group's). The
    /// caller holds the write lock ([`crate::SqliteStore::write`]).
    pub(crate) fn begin_locked(&self) -> StoreResult<()> {
        lock(&self.writer)
            .execute_batch("begin immediate")
            .map_err(lite_err)
    }

    /// Run `f` inside the open transaction, in a savepoint of its own: kept when it returns
    /// `Ok`, undone (and only it) otherwise. The caller holds the write lock.
    pub(crate) fn in_savepoint_locked<T>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let conn = lock(&self.writer);
        conn.execute_batch("savepoint w").map_err(lite_err)?;
        match f(&conn) {
            Ok(out) => {
                conn.execute_batch("release w").map_err(lite_err)?;
                Ok(out)
            }
            Err(e) => {
                conn.execute_batch("rollback to w; release w")
                    .map_err(lite_err)?;
                Err(e)
            }
        }
    }

    /// Commit the open transaction (rolled back if the commit fails). The caller holds the
    /// write lock.
    pub(crate) fn commit_locked(&self) -> rusqlite::Result<()> {
        let conn = lock(&self.writer);
        conn.execute_batch("commit").inspect_err(|_| {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("rollback");
            }
        })
    }
}

/// Checkpoint the WAL every [`CHECKPOINT_EVERY`] until the store is gone (`lite` no longer
/// upgrades). Writers have automatic checkpoints off; instead this task runs two passive
/// checkpoints on a blocking thread: one while writers go on (it copies most of the WAL), then
/// one holding the write lock, which has only the last
/// few frames to copy. The locked pass matters: with no frames appended meanwhile it completes,
/// so the next write restarts the WAL from its beginning and the file stays small under a
/// constant write load (without it, writers keep appending while the checkpoint copies, the
/// log never restarts and the file grows without bound); the unlocked pass keeps the time
/// writers wait short. The fsyncs happen off the async threads.
pub(crate) fn spawn_checkpointer(
    lite: std::sync::Weak<Lite>,
    write_lock: std::sync::Weak<crate::WriteLock>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Pass 1, without the lock: copy (and fsync) most of the WAL while writers go on.
            let Some(first) = lite.upgrade() else {
                return;
            };
            let _ = checkpoint(first).await;
            // Pass 2, under the lock: only the frames appended meanwhile, so it is short and
            // complete, and the next write restarts the WAL.
            let (Some(lite), Some(write_lock)) = (lite.upgrade(), write_lock.upgrade()) else {
                return;
            };
            let mut held = write_lock.lock().await;
            if !held.open {
                return; // closed
            }
            // A write group left open for writers that never came: commit it first.
            crate::settle_open_group(&lite, &mut held);
            let done = checkpoint(lite).await;
            drop(held);
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "sqlite checkpoint failed"),
                Err(e) => tracing::warn!(error = %e, "sqlite checkpoint task failed"),
            }
        }
    });
}

/// One passive checkpoint on the checkpointer's connection, on a blocking thread.
async fn checkpoint(
    lite: std::sync::Arc<Lite>,
) -> Result<rusqlite::Result<()>, tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        let conn = lock(&lite.checkpoint);
        conn.query_row("pragma wal_checkpoint(passive)", [], |_| Ok(()))
    })
    .await
}

// ---- errors -------------------------------------------------------------------------------------

/// No row → `NotFound`; everything else → `Other`.
pub(crate) fn lite_err(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        other => StoreError::Other(anyhow::Error::new(other)),
    }
}

/// Like [`lite_err`], but a unique violation becomes `Conflict(conflict)` and a foreign-key
/// violation `InvalidReference(reference)`.
pub(crate) fn lite_write_err(
    e: rusqlite::Error,
    conflict: Conflict,
    reference: &'static str,
) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == ErrorCode::ConstraintViolation {
            // Extended codes: SQLITE_CONSTRAINT_UNIQUE (2067), _PRIMARYKEY (1555),
            // _FOREIGNKEY (787).
            match f.extended_code {
                2067 | 1555 => return StoreError::Conflict(conflict),
                787 => return StoreError::InvalidReference(reference),
                _ => {}
            }
        }
    }
    lite_err(e)
}

// ---- rows ---------------------------------------------------------------------------------------

/// A row type decoded from a `rusqlite` row.
pub(crate) trait FromLite: Sized {
    /// The columns read, by name, in the order `from_lite` takes them; empty = by position.
    const COLUMNS: &'static [&'static str] = &[];
    /// Decode `row`; `idx[i]` is the position of `COLUMNS[i]` in the statement (looked up once
    /// per statement, not per row).
    fn from_lite(row: &Row<'_>, idx: &[usize]) -> rusqlite::Result<Self>;
}

/// Positions of `R::COLUMNS` in `st`.
fn column_positions<R: FromLite>(st: &rusqlite::Statement<'_>) -> rusqlite::Result<Vec<usize>> {
    R::COLUMNS.iter().map(|c| st.column_index(c)).collect()
}

/// The next position of a [`lite_row!`] decoder.
pub(crate) fn next_position(it: &mut std::slice::Iter<'_, usize>) -> rusqlite::Result<usize> {
    it.next()
        .copied()
        .ok_or(rusqlite::Error::InvalidColumnIndex(usize::MAX))
}

/// `impl FromLite for Row { field: <column "field">, … }` for a row struct whose fields are
/// named like its columns.
macro_rules! lite_row {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl $crate::lite::FromLite for $ty {
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];
            fn from_lite(row: &rusqlite::Row<'_>, idx: &[usize]) -> rusqlite::Result<Self> {
                let mut it = idx.iter();
                Ok(Self { $($field: row.get($crate::lite::next_position(&mut it)?)?),* })
            }
        }
    };
}
pub(crate) use lite_row;

impl FromLite for i64 {
    fn from_lite(row: &Row<'_>, _: &[usize]) -> rusqlite::Result<Self> {
        row.get(0)
    }
}

impl FromLite for String {
    fn from_lite(row: &Row<'_>, _: &[usize]) -> rusqlite::Result<Self> {
        row.get(0)
    }
}

impl FromLite for (String, i64) {
    fn from_lite(row: &Row<'_>, _: &[usize]) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?))
    }
}

impl FromLite for (String, String) {
    fn from_lite(row: &Row<'_>, _: &[usize]) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?))
    }
}

impl FromLite for (String, String, String) {
    fn from_lite(row: &Row<'_>, _: &[usize]) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    }
}

impl FromLite for (i64, i64) {
    fn from_lite(row: &Row<'_>, _: &[usize]) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?))
    }
}

/// A row of `explain query plan` (plan tests).
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct PlanRow {
    pub detail: String,
}

#[cfg(test)]
lite_row!(PlanRow { detail });

// ---- queries ------------------------------------------------------------------------------------

/// A value bound to a `?` placeholder.
pub(crate) trait Arg {
    fn value(self) -> Value;
}

impl Arg for &str {
    fn value(self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl Arg for &String {
    fn value(self) -> Value {
        Value::Text(self.clone())
    }
}
impl Arg for String {
    fn value(self) -> Value {
        Value::Text(self)
    }
}
impl Arg for i64 {
    fn value(self) -> Value {
        Value::Integer(self)
    }
}
impl Arg for bool {
    fn value(self) -> Value {
        Value::Integer(i64::from(self))
    }
}
impl Arg for i32 {
    fn value(self) -> Value {
        Value::Integer(i64::from(self))
    }
}
impl Arg for &Vec<u8> {
    fn value(self) -> Value {
        Value::Blob(self.clone())
    }
}
impl Arg for &[u8] {
    fn value(self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl<T: Arg> Arg for Option<T> {
    fn value(self) -> Value {
        self.map_or(Value::Null, Arg::value)
    }
}

/// A statement and its bound values; also a builder for statements made of parts.
#[derive(Debug, Default)]
pub(crate) struct Q {
    /// Borrowed when it is a constant (most statements): not copied for every execution.
    sql: Cow<'static, str>,
    args: Vec<Value>,
}

/// `sql` on one line: each run of whitespace becomes one space (for long constant statements:
/// rusqlite's statement cache hashes the text, and copies it, on every execution). Only for
/// statements without string literals that hold whitespace.
pub(crate) fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Start a query.
pub(crate) fn q(sql: impl Into<Cow<'static, str>>) -> Q {
    Q {
        sql: sql.into(),
        args: Vec::new(),
    }
}

impl Q {
    /// Bind the next `?`.
    pub(crate) fn bind(mut self, v: impl Arg) -> Self {
        self.args.push(v.value());
        self
    }

    /// Append SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.to_mut().push_str(sql);
        self
    }

    /// Append a `?` and bind it.
    pub(crate) fn push_bind(&mut self, v: impl Arg) -> &mut Self {
        self.sql.to_mut().push('?');
        self.args.push(v.value());
        self
    }

    /// Append `?, ?, …` binding each value.
    pub(crate) fn push_list<A: Arg>(&mut self, values: impl IntoIterator<Item = A>) -> &mut Self {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.sql.to_mut().push_str(", ");
            }
            self.push_bind(v);
        }
        self
    }

    /// The SQL text (plan tests).
    #[cfg(test)]
    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }

    fn params(&self) -> rusqlite::ParamsFromIter<std::slice::Iter<'_, Value>> {
        rusqlite::params_from_iter(self.args.iter())
    }

    /// Exactly one row (`NotFound` when there is none).
    pub(crate) fn one<R: FromLite>(&self, c: &Connection) -> rusqlite::Result<R> {
        self.optional(c)?
            .ok_or(rusqlite::Error::QueryReturnedNoRows)
    }

    /// The first row, if any.
    pub(crate) fn optional<R: FromLite>(&self, c: &Connection) -> rusqlite::Result<Option<R>> {
        let mut st = c.prepare_cached(&self.sql)?;
        let idx = column_positions::<R>(&st)?;
        let mut rows = st.query(self.params())?;
        rows.next()?.map(|r| R::from_lite(r, &idx)).transpose()
    }

    /// Every row.
    pub(crate) fn all<R: FromLite>(&self, c: &Connection) -> rusqlite::Result<Vec<R>> {
        let mut st = c.prepare_cached(&self.sql)?;
        let idx = column_positions::<R>(&st)?;
        let mut rows = st.query(self.params())?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(R::from_lite(row, &idx)?);
        }
        Ok(out)
    }

    /// Run a statement; returns the number of rows changed.
    pub(crate) fn execute(&self, c: &Connection) -> rusqlite::Result<usize> {
        let mut st = c.prepare_cached(&self.sql)?;
        st.execute(self.params())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Connection {
        let c = Connection::open_in_memory().expect("open");
        c.execute_batch(
            "create table t (id integer primary key, name text not null unique, note text);
             create table u (t_id integer not null references t (id));
             pragma foreign_keys = on;",
        )
        .expect("schema");
        c
    }

    #[derive(Debug, PartialEq)]
    struct TRow {
        id: i64,
        name: String,
        note: Option<String>,
    }
    lite_row!(TRow { id, name, note });

    #[test]
    fn binds_in_order_and_decodes_by_column_name() {
        let c = memory();
        q("insert into t (name, note) values (?, ?)")
            .bind("a")
            .bind(None::<&str>)
            .execute(&c)
            .expect("insert");
        q("insert into t (name, note) values (?, ?)")
            .bind("b")
            .bind(Some("x"))
            .execute(&c)
            .expect("insert");
        let rows: Vec<TRow> = q("select note, name, id from t order by id")
            .all(&c)
            .expect("rows");
        assert_eq!(
            rows,
            vec![
                TRow {
                    id: 1,
                    name: "a".into(),
                    note: None
                },
                TRow {
                    id: 2,
                    name: "b".into(),
                    note: Some("x".into())
                },
            ]
        );
        let mut built = q("select * from t where name in (");
        built
            .push_list(["b", "zz"])
            .push(") and id > ")
            .push_bind(0_i64);
        assert_eq!(
            built.sql(),
            "select * from t where name in (?, ?) and id > ?"
        );
        let one: TRow = built.one(&c).expect("one");
        assert_eq!(one.name, "b");
    }

    #[test]
    fn one_line_keeps_the_words_and_cuts_the_whitespace() {
        assert_eq!(
            one_line("select a,\n        b  from t\n where x = ?  "),
            "select a, b from t where x = ?"
        );
    }

    #[test]
    fn missing_rows_and_constraint_violations_map_to_store_errors() {
        let c = memory();
        let none = q("select * from t where id = ?")
            .bind(9_i64)
            .one::<TRow>(&c)
            .map_err(lite_err);
        assert!(matches!(none, Err(StoreError::NotFound)));
        assert!(q("select * from t where id = ?")
            .bind(9_i64)
            .optional::<TRow>(&c)
            .expect("ok")
            .is_none());
        q("insert into t (name) values ('a')")
            .execute(&c)
            .expect("insert");
        let dup = q("insert into t (name) values ('a')")
            .execute(&c)
            .map_err(|e| lite_write_err(e, Conflict::SidTaken, "t"));
        assert!(matches!(dup, Err(StoreError::Conflict(Conflict::SidTaken))));
        let fk = q("insert into u (t_id) values (42)")
            .execute(&c)
            .map_err(|e| lite_write_err(e, Conflict::SidTaken, "t"));
        assert!(matches!(fk, Err(StoreError::InvalidReference("t"))));
    }
}
