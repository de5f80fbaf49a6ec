//! Parley storage on SQLite, the embedded default backend.
//!
//! One database file in WAL mode, opened through one driver, `rusqlite` (`lite.rs`). Every
//! statement runs **inline**, on the calling task's thread:
//! * reads on a small stack of `query_only` connections;
//! * writes on the single writer connection, under the store's async write lock (so writes
//!   queue in order without blocking a thread while they wait; nothing inside a write awaits),
//!   each in a savepoint of a `BEGIN IMMEDIATE` transaction that the writes arriving together
//!   share: one commit for the group (see [`SqliteStore::write`]);
//! * migrations on the writer connection when the store opens (`migrate.rs`, recorded in
//!   `_sqlx_migrations` as earlier releases did).
//!
//! An async driver that hands every statement and row to a per-connection thread and back
//! cost more than the statements themselves (bench/RESULTS.md).
//!
//! Automatic checkpoints are off; a checkpointer task checkpoints under the write lock on a
//! blocking thread (`lite::spawn_checkpointer`), which keeps the WAL bounded.
//!
//! SQL is written per resource (`account.rs`, `service.rs`, …) as runtime-checked queries; rows
//! decode into `rows.rs` structs and convert into `parley_core` types.
//!
//! Behaviour shared with the Postgres backend (checked by the conformance suite):
//! * every child row is matched by account *and* service; another tenant's row is `NotFound`;
//! * deleting a service removes its roles, users and bindings; deleting a user or a credential
//!   removes the bindings that hang off it; deleting a role sets its users' `role_sid` to null
//!   (all `on delete` actions in `migrations/0001_init.sql`);
//! * services and credentials need no `accounts` row (the account may come from configuration
//!   only); API keys do (`InvalidReference("account")`);
//! * lists are keyset pages over `(date_created, sid)` — messages over their index — walked
//!   along an index (see the query-plan test), so a page costs the same at any table size;
//! * chat writes that notify (`new_message`, `added_to_channel`, `invited_to_channel`,
//!   `removed_from_channel`) append their event, and its `push_outbox` row, in the same
//!   transaction as the change; counters change in that transaction too (`migrations/0002_chat.sql`,
//!   `member.rs`, `message.rs`);
//! * deleting a channel removes its members, messages and invites; deleting a user removes its
//!   memberships and invites (channel `members_count` follows, by trigger), appending one
//!   `removed_from_channel` event per membership in the same transaction.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use parley_core::paging::{Cursor, PageRequest};
use parley_core::store::{Store, StoreError, StoreResult};
use parley_core::ServiceSid;

pub use backup::{backup_file, BackupSummary};

mod account;
mod backup;
mod binding;
mod channel;
mod channel_webhook;
mod credential;
mod event;
mod invite;
mod lite;
mod log;
mod member;
mod message;
mod migrate;
mod presence;
mod push;
mod role;
mod rows;
mod secret;
mod service;
mod user;
mod webhook_call;

pub use migrate::{Migration, MIGRATIONS};

/// How long SQLite waits on a lock held by another connection (or process).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A Parley store on one SQLite database file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// *The* write lock: every write and the checkpointer's locked pass hold it. It guards
    /// whether the store is open and the write group in progress.
    writer: Arc<WriteLock>,
    /// Writes waiting for the write lock for the first time (a write leaves its group's
    /// transaction open for them).
    arriving: Arc<AtomicUsize>,
    /// How write groups ended (what a write waits on once its group is left open).
    groups: Arc<GroupLog>,
    /// The connections: readers and the writer.
    lite: Arc<lite::Lite>,
    /// The temporary file behind a `sqlite::memory:` store, removed with the last clone.
    _temp: Option<Arc<TempDb>>,
    /// Signals to this process's live clients (one process serves an SQLite file):
    /// `Changed` after every commit that appended events.
    bus: parley_core::signal::LocalBus,
}

/// The write lock; it guards whether the store is still open and the write group.
pub(crate) type WriteLock = tokio::sync::Mutex<WriteState>;

/// Most writes that share one transaction.
const MAX_GROUP: usize = 64;
/// Failed group commits remembered for their members.
const FAILED_KEPT: usize = 64;

/// How long a write waits for its group to end before it ends the group itself (the writes
/// it was left open for normally end it long before; this covers one that was cancelled).
const GROUP_WAIT: Duration = Duration::from_millis(50);

/// What the write lock guards.
#[derive(Debug)]
pub(crate) struct WriteState {
    /// `false` once the store is closed: writes fail.
    pub(crate) open: bool,
    /// The group whose transaction is open, and how many writes it holds.
    group: Option<(u64, usize)>,
    /// The id the next group gets.
    next_group: u64,
    /// How groups ended.
    log: Arc<GroupLog>,
}

impl WriteState {
    fn new(log: Arc<GroupLog>) -> WriteState {
        WriteState {
            open: true,
            group: None,
            next_group: 1,
            log,
        }
    }
}

/// How write groups ended, readable without the write lock.
#[derive(Debug)]
pub(crate) struct GroupLog {
    /// Every group up to this id has ended (committed or failed).
    ended: tokio::sync::watch::Sender<u64>,
    /// Recent groups whose commit failed, with the error.
    failed: std::sync::Mutex<VecDeque<(u64, String)>>,
}

impl GroupLog {
    fn new() -> GroupLog {
        GroupLog {
            ended: tokio::sync::watch::Sender::new(0),
            failed: std::sync::Mutex::new(VecDeque::new()),
        }
    }

    /// How group `id` ended, once it has: `Ok` when committed.
    fn outcome(&self, id: u64) -> Option<StoreResult<()>> {
        if *self.ended.borrow() < id {
            return None;
        }
        let failed = self.failed.lock().ok()?;
        Some(match failed.iter().find(|(g, _)| *g == id) {
            Some((_, e)) => Err(StoreError::Other(anyhow::anyhow!(
                "sqlite commit failed: {e}"
            ))),
            None => Ok(()),
        })
    }

    /// Record that group `id` ended (with the commit's error, if it failed) and wake its writes.
    fn end(&self, id: u64, error: Option<String>) {
        if let Some(e) = error {
            if let Ok(mut failed) = self.failed.lock() {
                if failed.len() >= FAILED_KEPT {
                    failed.pop_front();
                }
                failed.push_back((id, e));
            }
        }
        self.ended.send_replace(id);
    }

    /// Wait until group `id` has ended, at most `limit`; whether it has.
    async fn wait_ended(&self, id: u64, limit: Duration) -> bool {
        let mut rx = self.ended.subscribe();
        let ended = tokio::time::timeout(limit, rx.wait_for(|e| *e >= id))
            .await
            .is_ok_and(|r| r.is_ok());
        ended
    }
}

/// Commit the open write group, if any, and record how it ended. The caller holds the lock.
pub(crate) fn settle_open_group(lite: &lite::Lite, st: &mut WriteState) {
    let Some((id, _)) = st.group.take() else {
        return;
    };
    let error = match lite.commit_locked() {
        Ok(()) => None,
        Err(e) => {
            tracing::warn!(error = %e, "sqlite commit of a write group failed");
            Some(e.to_string())
        }
    };
    st.log.end(id, error);
}

/// A database file that exists only as long as its store (`sqlite::memory:`).
#[derive(Debug)]
struct TempDb(PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The file a `sqlite:` URL names: `sqlite://` or `sqlite:` prefix dropped, query string
/// dropped, `%XX` escapes decoded (as `sqlx` read these URLs); `None` for an in-memory
/// database (`sqlite::memory:`, `sqlite://:memory:`, `mode=memory`, or no path).
fn url_path(url: &str) -> anyhow::Result<Option<PathBuf>> {
    let rest = url
        .strip_prefix("sqlite:")
        .with_context(|| "invalid SQLite database URL: it must start with `sqlite:`")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = query.split('&').any(|p| p == "mode=memory");
    if path.is_empty() || path == ":memory:" || in_memory {
        return Ok(None);
    }
    Ok(Some(PathBuf::from(percent_decode(path)?)))
}

/// Decode `%XX` escapes.
fn percent_decode(s: &str) -> anyhow::Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .with_context(|| "invalid SQLite database URL: bad `%` escape")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).with_context(|| "invalid SQLite database URL: not UTF-8")
}

impl SqliteStore {
    /// Open (creating if missing) the database at `url` — `sqlite://parley.db`,
    /// `sqlite:///abs/path.db`, optionally with `?mode=rwc` — and apply pending migrations.
    ///
    /// `sqlite::memory:` (or `mode=memory`) gives a throw-away database for quick experiments
    /// and tests: a fresh file in the temporary directory, removed when the store is dropped.
    /// (The reader and writer connections need a file that several connections can open.)
    pub async fn connect(url: &str) -> anyhow::Result<SqliteStore> {
        let (path, temp) = match url_path(url)? {
            Some(path) => (path, None),
            None => {
                let path = std::env::temp_dir().join(format!(
                    "parley-memory-{}.db",
                    parley_core::sid::random_hex32()
                ));
                (path.clone(), Some(Arc::new(TempDb(path))))
            }
        };
        // Opening may create the file and migrate it: blocking work, off the async threads.
        let lite = tokio::task::spawn_blocking(move || lite::Lite::open(&path, BUSY_TIMEOUT))
            .await
            .with_context(|| "cannot open the SQLite database")?
            .with_context(|| "cannot open the SQLite database")?;
        tracing::debug!(url = %redact(url), "sqlite store ready");
        let lite = Arc::new(lite);
        let groups = Arc::new(GroupLog::new());
        let writer = Arc::new(tokio::sync::Mutex::new(WriteState::new(groups.clone())));
        lite::spawn_checkpointer(Arc::downgrade(&lite), Arc::downgrade(&writer));
        Ok(SqliteStore {
            writer,
            arriving: Arc::new(AtomicUsize::new(0)),
            groups,
            lite,
            _temp: temp,
            bus: parley_core::signal::LocalBus::new(),
        })
    }

    /// Checkpoint the whole WAL into the database file; writes fail afterwards (reads still
    /// work until the store is dropped).
    pub async fn close(&self) {
        let mut st = self.writer.lock().await;
        if st.open {
            settle_open_group(&self.lite, &mut st);
            st.open = false;
            if let Err(e) = self.lite.checkpoint_truncate_locked() {
                tracing::warn!(error = %e, "sqlite checkpoint on close failed");
            }
        }
    }

    /// Run `f` on a read connection (`lite.rs`), on this thread.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.lite.read(f)
    }

    /// Run `f` as one atomic change on the writer connection, under the write lock, and return
    /// once it is committed (or failed).
    ///
    /// **Write groups.** `f` runs in a savepoint of a `BEGIN IMMEDIATE` transaction: its
    /// changes are kept when it returns `Ok` and undone (only they) when it fails. If other
    /// writes are waiting for the lock at that moment, the transaction stays open for them
    /// (up to [`MAX_GROUP`] writes); the write that finds nobody waiting commits it, once for
    /// the group. A write whose group is left open returns when the group has ended (after
    /// [`GROUP_WAIT`] it takes the lock and commits the group itself, should the writes it
    /// waited for have been cancelled). Under concurrent writes
    /// this turns one commit — its WAL frames for every page touched — per write into one per
    /// group; alone, a write commits at once as before. A write that returns `Ok` is committed.
    pub(crate) async fn write<T: Send>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> StoreResult<T> + Send,
    ) -> StoreResult<T> {
        let mut st = {
            let _arriving = Arriving::new(&self.arriving);
            self.writer.lock().await
        };
        if !st.open {
            return Err(StoreError::Other(anyhow::anyhow!(
                "the SQLite store is closed"
            )));
        }
        let group = match st.group {
            Some((id, n)) => {
                st.group = Some((id, n + 1));
                id
            }
            None => {
                self.lite.begin_locked()?;
                let id = st.next_group;
                st.next_group += 1;
                st.group = Some((id, 1));
                id
            }
        };
        event::take_appended();
        let out = self.lite.in_savepoint_locked(f);
        let appended = event::take_appended();
        let size = st.group.map_or(0, |(_, n)| n);
        if self.arriving.load(Ordering::SeqCst) > 0 && size < MAX_GROUP {
            // Writers are coming: leave the transaction open for them; the last one commits.
            drop(st);
            if out.is_ok() && !self.groups.wait_ended(group, GROUP_WAIT).await {
                let mut st = self.writer.lock().await;
                if self.groups.outcome(group).is_none() {
                    settle_open_group(&self.lite, &mut st);
                }
            }
        } else {
            settle_open_group(&self.lite, &mut st);
            drop(st);
        }
        let out = out?;
        self.groups.outcome(group).unwrap_or(Ok(()))?;
        self.signal(appended);
        Ok(out)
    }

    /// `Changed` for each service whose log a committed write appended to.
    fn signal(&self, appended: Vec<String>) {
        if self.bus.has_subscribers() {
            for service in appended {
                match ServiceSid::parse(&service) {
                    Ok(service) => self.bus.send(parley_core::signal::Wake::Signal(
                        parley_core::signal::Signal::Changed { service },
                    )),
                    Err(_) => self.bus.send(parley_core::signal::Wake::Missed),
                }
            }
        }
    }
}

/// Counts a write among those arriving at the write lock until it has it (or is dropped).
struct Arriving<'a>(&'a AtomicUsize);

impl<'a> Arriving<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Arriving(n)
    }
}

impl Drop for Arriving<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SqliteStore {
    /// One statement as its own write transaction; `NotFound` when it changed no row.
    pub(crate) async fn write_some(&self, query: lite::Q) -> StoreResult<()> {
        self.write(|c| one_row(query.execute(c).map_err(lite::lite_err)?))
            .await
    }

    /// The row of one statement (`… returning`) run as its own write transaction; `err` maps
    /// its failure (`NotFound` when it returned no row, as with `lite_err`).
    pub(crate) async fn write_row<R: lite::FromLite + Send>(
        &self,
        query: lite::Q,
        err: impl FnOnce(rusqlite::Error) -> StoreError + Send,
    ) -> StoreResult<R> {
        self.write(|c| query.one(c).map_err(err)).await
    }

    /// One statement as its own write transaction; the number of rows it changed.
    pub(crate) async fn write_count(&self, query: lite::Q) -> StoreResult<u64> {
        let n = self
            .write(|c| query.execute(c).map_err(lite::lite_err))
            .await?;
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    /// The row of one statement, on a read connection (`NotFound` when there is none).
    pub(crate) fn read_one<R: lite::FromLite>(&self, query: &lite::Q) -> StoreResult<R> {
        self.read(|c| query.one(c).map_err(lite::lite_err))
    }

    /// Every row of one statement, on a read connection.
    pub(crate) fn read_all<R: lite::FromLite>(&self, query: &lite::Q) -> StoreResult<Vec<R>> {
        self.read(|c| query.all(c).map_err(lite::lite_err))
    }
}

/// The URL without its query string (which may name a key file or similar).
fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn signals(&self) -> &dyn parley_core::signal::SignalBus {
        &self.bus
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| {
            lite::q("select 1")
                .one::<i64>(c)
                .map_err(lite::lite_err)
                .map(|_| ())
        })
    }

    /// The read connections (idle, or running a read now) and the writer (idle unless a write
    /// transaction holds the write lock; not counted once closed).
    fn pool_stats(&self) -> (u32, u32) {
        let (readers, idle_readers) = self.lite.reader_stats();
        let (writer, writer_idle) = match self.writer.try_lock() {
            Ok(st) => (u32::from(st.open), u32::from(st.open && st.group.is_none())),
            Err(_) => (1, 0),
        };
        (
            readers.saturating_add(writer),
            idle_readers.saturating_add(writer_idle),
        )
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

// ---- helpers ------------------------------------------------------------------------------------

pub(crate) use parley_core::store::rows::one_row;

pub(crate) use parley_core::store::rows::to_json;

/// `NotFound` unless `service` exists in `account` (run inside the write transaction that
/// adds a child row, so the check and the insert see the same state).
pub(crate) fn require_service(
    c: &rusqlite::Connection,
    account: &parley_core::AccountSid,
    service: &parley_core::ServiceSid,
) -> StoreResult<()> {
    lite::q("select 1 from services where account_sid = ? and sid = ?")
        .bind(account.as_str())
        .bind(service.as_str())
        .one::<i64>(c)
        .map_err(lite::lite_err)
        .map(|_| ())
}

// ---- keyset paging ------------------------------------------------------------------------------

/// The keyset part of a list query: `and (date_created, sid) > (?, ?) order by … limit ?`
/// (or `<`/`desc` for a backwards cursor), pushed onto a query whose `where` clause is already
/// open. Rows come back in travel order; finish with `Page::from_fetched`.
pub(crate) fn push_keyset(q: &mut lite::Q, page: &PageRequest) {
    push_keyset_condition(q, page, "date_created", "sid");
    push_keyset_order(q, page, "date_created", "sid");
}

/// The condition half of a keyset: `and (key_col, sid_col) > (?, ?)` (`<` backwards), nothing
/// without a cursor. Compound queries push it into every arm.
pub(crate) fn push_keyset_condition(
    q: &mut lite::Q,
    page: &PageRequest,
    key_col: &str,
    sid_col: &str,
) {
    if let Some(Cursor {
        key,
        sid,
        backwards,
    }) = &page.cursor
    {
        let op = if *backwards { "<" } else { ">" };
        q.push(&format!(" and ({key_col}, {sid_col}) {op} ("));
        q.push_bind(*key);
        q.push(", ");
        q.push_bind(sid.as_str());
        q.push(")");
    }
}

/// The order half of a keyset: `order by key_col, sid_col limit ?` (descending backwards).
pub(crate) fn push_keyset_order(q: &mut lite::Q, page: &PageRequest, key_col: &str, sid_col: &str) {
    if page.cursor.as_ref().is_some_and(|c| c.backwards) {
        q.push(&format!(" order by {key_col} desc, {sid_col} desc limit "));
    } else {
        q.push(&format!(" order by {key_col}, {sid_col} limit "));
    }
    q.push_bind(page.fetch_limit());
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_core::binding::BindingFilter;
    use parley_core::channel::{ChannelType, MessageOrder};
    use parley_core::credential::PushType;
    use parley_core::{AccountSid, ServiceSid, UserSid};

    #[test]
    fn redact_drops_the_query_string() {
        assert_eq!(redact("sqlite://a.db?mode=rwc"), "sqlite://a.db");
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
    }

    async fn temp_store() -> (SqliteStore, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "parley-unit-{}.db",
            parley_core::sid::random_hex32()
        ));
        let store = SqliteStore::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("connect");
        (store, path)
    }

    /// Insert account `sid` through `write` (a plain write, as the stores make them).
    async fn insert_account(store: &SqliteStore, sid: String) -> StoreResult<()> {
        store
            .write(move |c| {
                lite::q("insert into accounts (sid, friendly_name, auth_token_sealed, date_created, date_updated) values (?, null, x'00', 0, 0)")
                    .bind(sid)
                    .execute(c)
                    .map_err(|e| lite::lite_write_err(e, parley_core::store::Conflict::SidTaken, "account"))?;
                Ok(())
            })
            .await
    }

    fn count_accounts(store: &SqliteStore) -> i64 {
        store
            .read_one::<i64>(&lite::q("select count(*) from accounts"))
            .expect("count")
    }

    /// Writes that arrive together share a commit, every one of them is committed when it
    /// returns `Ok`, and one that fails inside a group undoes only its own change.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_a_failing_one_undoes_only_itself() {
        let (store, path) = temp_store().await;
        let before = count_accounts(&store);
        insert_account(&store, "AC-taken".to_owned())
            .await
            .expect("first insert");
        let groups_before = store.writer.lock().await.next_group;

        let mut tasks = Vec::new();
        for i in 0..400 {
            let store = store.clone();
            // Every tenth write fails (the SID is taken) in the middle of the others.
            let sid = if i % 10 == 5 {
                "AC-taken".to_owned()
            } else {
                format!("AC-{i}")
            };
            tasks.push(tokio::spawn(async move {
                let out = insert_account(&store, sid.clone()).await;
                // Returned Ok: committed, so a reader (another connection) sees it now.
                let seen = store
                    .read_one::<i64>(
                        &lite::q("select count(*) from accounts where sid = ?").bind(sid),
                    )
                    .expect("read");
                (i, out, seen)
            }));
        }
        for t in tasks {
            let (i, out, seen) = t.await.expect("task");
            if i % 10 == 5 {
                assert!(
                    matches!(out, Err(StoreError::Conflict(_))),
                    "write {i}: {out:?}"
                );
            } else {
                assert!(out.is_ok(), "write {i}: {out:?}");
                assert_eq!(seen, 1, "write {i} is visible once it returned");
            }
        }
        let groups = store.writer.lock().await.next_group - groups_before;

        assert_eq!(count_accounts(&store), before + 1 + 360);
        assert!(
            groups < 400,
            "400 concurrent writes took {groups} commits: none were shared"
        );
        assert!(
            store.writer.lock().await.group.is_none(),
            "no group left open"
        );
        store.close().await;
        let _ = std::fs::remove_file(&path);
    }

    /// A write alone commits at once (no group is left open waiting for writers).
    #[tokio::test]
    async fn a_lone_write_commits_at_once() {
        let (store, path) = temp_store().await;
        insert_account(&store, "AC-alone".to_owned())
            .await
            .expect("insert");
        assert!(store.writer.lock().await.group.is_none());
        assert_eq!(
            store
                .read_one::<i64>(&lite::q(
                    "select count(*) from accounts where sid = 'AC-alone'"
                ))
                .expect("read"),
            1
        );
        store.close().await;
        let _ = std::fs::remove_file(&path);
    }

    fn pragma(c: &rusqlite::Connection, name: &str) -> String {
        c.query_row(&format!("pragma {name}"), [], |r| {
            let v: rusqlite::types::Value = r.get(0)?;
            Ok(match v {
                rusqlite::types::Value::Integer(n) => n.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
        })
        .expect("pragma")
    }

    /// The connection settings the module doc promises are in effect, and readers cannot write.
    #[tokio::test]
    async fn connections_use_wal_normal_sync_foreign_keys_and_a_busy_timeout() {
        let (store, path) = temp_store().await;
        {
            let w = store.lite.writer();
            assert_eq!(pragma(&w, "journal_mode"), "wal");
            assert_eq!(pragma(&w, "foreign_keys"), "1");
            assert_eq!(pragma(&w, "busy_timeout"), "5000");
            assert_eq!(pragma(&w, "synchronous"), "1", "NORMAL");
            assert_eq!(pragma(&w, "wal_autocheckpoint"), "0");
            assert_eq!(pragma(&w, "temp_store"), "2", "MEMORY");
        }
        store
            .read(|c| {
                assert_eq!(pragma(c, "journal_mode"), "wal");
                assert_eq!(pragma(c, "busy_timeout"), "5000");
                assert_eq!(pragma(c, "query_only"), "1");
                let write = c.execute("delete from accounts", []);
                assert!(write.is_err(), "reader connections are query_only");
                Ok(())
            })
            .expect("read");
        assert!(path.exists(), "the file was created");
        store.close().await;
        let _ = std::fs::remove_file(&path);
    }

    /// The URL forms `sqlx` accepted name the same files.
    #[test]
    fn sqlite_urls_name_files_as_before() {
        let p = |u: &str| url_path(u).expect("url");
        assert_eq!(p("sqlite://parley.db"), Some(PathBuf::from("parley.db")));
        assert_eq!(
            p("sqlite:parley.db?mode=rwc"),
            Some(PathBuf::from("parley.db"))
        );
        assert_eq!(
            p("sqlite:///abs/a%20b.db"),
            Some(PathBuf::from("/abs/a b.db"))
        );
        assert_eq!(p("sqlite::memory:"), None);
        assert_eq!(p("sqlite://:memory:"), None);
        assert_eq!(p("sqlite://x.db?mode=memory"), None);
        assert!(url_path("postgres://x").is_err());
        assert!(url_path("sqlite://bad%zz.db").is_err());
    }

    /// Pool gauges count the connections that serve requests: readers plus the writer, the
    /// writer busy while a write holds the lock.
    #[tokio::test]
    async fn pool_stats_count_readers_and_the_writer() {
        let (store, path) = temp_store().await;
        let (open, idle) = store.pool_stats();
        assert_eq!((open, idle), (2, 2), "one idle reader, the idle writer");
        let during_read = store.read(|_| Ok(store.pool_stats())).expect("read");
        assert_eq!(during_read, (2, 1), "the reader is in use");
        let held = store.writer.lock().await;
        assert_eq!(store.pool_stats(), (2, 1), "the writer is busy");
        drop(held);
        store.close().await;
        assert_eq!(store.pool_stats(), (1, 1), "a closed store has no writer");
        let _ = std::fs::remove_file(&path);
    }

    /// Every list query walks an index in list order: no full scan, no sort. This is what
    /// keeps a page's cost independent of the table size.
    #[tokio::test]
    async fn list_queries_use_an_index_in_list_order() {
        let (store, path) = temp_store().await;
        let (account, service) = (AccountSid::generate(), ServiceSid::generate());
        let after = PageRequest {
            size: 10,
            cursor: Some(Cursor {
                key: 1,
                sid: "x".to_owned(),
                backwards: false,
            }),
        };
        let before = PageRequest {
            cursor: after.cursor.clone().map(|c| Cursor {
                backwards: true,
                ..c
            }),
            ..after.clone()
        };
        let filters = [
            BindingFilter::default(),
            BindingFilter {
                user_sid: Some(UserSid::generate()),
                types: vec![PushType::Apn, PushType::Fcm],
                ..BindingFilter::default()
            },
            BindingFilter {
                identities: vec!["alice".to_owned()],
                ..BindingFilter::default()
            },
            BindingFilter {
                identities: vec!["alice".to_owned(), "bob".to_owned()],
                types: vec![PushType::Gcm],
                ..BindingFilter::default()
            },
        ];
        let channel_types = [
            vec![],
            vec![ChannelType::Public],
            vec![ChannelType::Private],
            vec![ChannelType::Public, ChannelType::Private],
        ];
        let identities = [
            vec![],
            vec!["alice".to_owned()],
            vec!["alice".to_owned(), "bob".to_owned()],
        ];
        const CH: &str = "CH00000000000000000000000000000000";
        const US: &str = "US00000000000000000000000000000000";
        const HEAD: &str = "explain query plan select *";
        for page in [PageRequest::first(10), after, before] {
            let mut queries = vec![
                ("services", service::list_query(HEAD, &account, &page)),
                ("roles", role::list_query(HEAD, &account, &service, &page)),
                ("credentials", credential::list_query(HEAD, &account, &page)),
                ("users", user::list_query(HEAD, &account, &service, &page)),
            ];
            for f in &filters {
                queries.push((
                    "bindings",
                    binding::list_query(HEAD, &account, &service, f, &page),
                ));
            }
            for types in &channel_types {
                queries.push((
                    "channels",
                    channel::list_query(HEAD, &account, &service, types, &page),
                ));
            }
            for ids in &identities {
                // With an `Identity` filter the unique (channel_sid, identity) index finds at
                // most one row per identity given; sorting those few rows is fine.
                let (members, invites) = if ids.is_empty() {
                    ("members", "invites")
                } else {
                    (
                        "members by identity (may sort)",
                        "invites by identity (may sort)",
                    )
                };
                queries.push((members, member::list_query(HEAD, CH, ids, &page)));
                queries.push((invites, invite::list_query(HEAD, CH, ids, &page)));
            }
            for order in [MessageOrder::Asc, MessageOrder::Desc] {
                queries.push(("messages", message::list_query(HEAD, CH, order, &page)));
            }
            queries.push((
                "channel webhooks",
                channel_webhook::list_query(HEAD, CH, &page),
            ));
            queries.push((
                "user channels",
                member::user_channels_query("explain query plan ", US, None, &page),
            ));
            let mut plans: Vec<(&str, Vec<String>)> = Vec::new();
            for (what, q) in queries {
                let plan: Vec<lite::PlanRow> = store
                    .read(|c| q.all(c).map_err(lite::lite_err))
                    .expect("explain");
                plans.push((what, plan.into_iter().map(|r| r.detail).collect()));
            }
            for (what, plan) in plans {
                let details: Vec<&str> = plan.iter().map(String::as_str).collect();
                let scans: Vec<&&str> = details
                    .iter()
                    .filter(|d| d.starts_with("SCAN ") || d.starts_with("SEARCH "))
                    .collect();
                assert!(
                    !scans.is_empty()
                        && scans.iter().all(|d| {
                            d.starts_with("SEARCH ")
                                && (d.contains("USING INDEX") || d.contains("USING COVERING INDEX"))
                        }),
                    "{what} {page:?}: {details:?}"
                );
                assert!(
                    what.ends_with("(may sort)")
                        || !details.iter().any(|d| d.contains("TEMP B-TREE")),
                    "{what} sorts: {details:?}"
                );
            }
        }
        store.close().await;
        let _ = std::fs::remove_file(&path);
    }

    /// Under a constant write load the WAL stays bounded: the checkpointer's locked pass lets
    /// it restart from its beginning, instead of growing by every page ever written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_a_constant_write_load() {
        use parley_core::store::testsuite::{account, service, user_at, DynStore};
        use parley_core::Timestamp;

        let (sqlite, path) = temp_store().await;
        let store: DynStore = std::sync::Arc::new(sqlite.clone());
        let acct = account(&store).await;
        let svc = service(&store, &acct).await;
        // 14,000 writes of a user with 6 KB of attributes: each adds at least six pages to the
        // WAL (two overflow pages, the table leaf, three index leaves), so a log that never
        // restarted would reach 14,000 × 24 KiB ≈ 328 MiB.
        const WRITES: u64 = 14_000;
        let started = std::time::Instant::now();
        for n in 0..WRITES {
            let mut u = user_at(&svc, &format!("load-{n}"), Timestamp::now());
            u.attributes = Some(format!("{{\"pad\":\"{}\"}}", "x".repeat(6000)));
            store
                .create_user(&u, &parley_core::event::Origin::rest())
                .await
                .expect("write");
        }
        let took = started.elapsed();
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let wal_bytes = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        // Restarting every checkpoint (every 500 ms), cut back to 64 MiB when it restarts; half
        // the never-restarted size leaves room for a checkpoint slowed by a busy disk.
        assert!(
            wal_bytes < 164 * 1024 * 1024,
            "WAL of {wal_bytes} bytes after {WRITES} writes in {took:?}: it did not restart"
        );
        sqlite.close().await;
        drop(sqlite);
        let _ = std::fs::remove_file(&path);
    }

    /// Every event of a push kind gets its `push_outbox` row (by trigger, in the same
    /// statement), due at the event's time and unclaimed; other kinds get none; a failed write
    /// leaves neither.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_event_has_its_push_outbox_row() {
        use parley_core::channel::{ChannelRef, MemberLimits, MemberRef};
        use parley_core::store::testsuite::{
            account, channel, invite, member_value, post, service, user, DynStore, NO_LIMITS,
        };
        use parley_core::Timestamp;

        let (sqlite, path) = temp_store().await;
        let store: DynStore = std::sync::Arc::new(sqlite.clone());
        let acct = account(&store).await;
        let svc = service(&store, &acct).await;
        let ch = channel(&store, &svc, "general").await;
        let alice = user(&store, &svc, "alice").await;
        let bob = user(&store, &svc, "bob").await;
        store
            .create_member(
                &member_value(&ch, &alice, Timestamp::now()),
                &NO_LIMITS,
                None,
                &parley_core::event::Origin::rest(),
            )
            .await
            .expect("join");
        for i in 0..3 {
            post(&store, &ch, &format!("m{i}")).await;
        }
        invite(&store, &ch, "bob").await;
        let full = MemberLimits {
            channel_members: 1,
            user_channels: 10,
        };
        let failed = store
            .create_member(
                &member_value(&ch, &bob, Timestamp::now()),
                &full,
                None,
                &parley_core::event::Origin::rest(),
            )
            .await;
        assert!(failed.is_err());
        store
            .delete_member(
                &acct,
                &svc.sid,
                &ChannelRef::Sid(ch.sid.clone()),
                &MemberRef::Identity("alice".to_owned()),
                None,
                Timestamp::now(),
                &parley_core::event::Origin::rest(),
            )
            .await
            .expect("leave");

        /// (event id, event date, available_at, lease_until, attempts)
        type Queued = (i64, i64, Option<i64>, Option<i64>, Option<i64>);
        let kinds: Vec<String> = sqlite
            .read(|c| {
                lite::q("select kind from events order by seq")
                    .all(c)
                    .map_err(lite::lite_err)
            })
            .expect("kinds");
        assert_eq!(
            kinds,
            [
                "channel_added",
                "user_added",
                "user_added",
                "added_to_channel",
                "new_message",
                "new_message",
                "new_message",
                "invited_to_channel",
                "removed_from_channel"
            ]
        );
        let rows: Vec<Queued> = sqlite
            .read(|c| {
                let mut st = c
                    .prepare(
                        "select e.id, e.date_created, o.available_at, o.lease_until, o.attempts
                         from events e left join push_outbox o on o.event_id = e.id
                         where e.kind in ('new_message', 'added_to_channel',
                                          'invited_to_channel', 'removed_from_channel')
                         order by e.id",
                    )
                    .map_err(lite::lite_err)?;
                let rows = st
                    .query_map([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .map_err(lite::lite_err)?;
                rows.collect::<Result<Vec<Queued>, _>>()
                    .map_err(lite::lite_err)
            })
            .expect("events with outbox rows");
        assert_eq!(rows.len(), 6, "join, 3 posts, invite, leave: {rows:?}");
        for (id, date, available_at, lease_until, attempts) in rows {
            assert_eq!(
                available_at,
                Some(date),
                "event {id} is queued, due at once"
            );
            assert_eq!(
                (lease_until, attempts),
                (None, Some(0)),
                "event {id} unclaimed"
            );
        }
        let outbox: i64 = sqlite
            .read(|c| {
                lite::q("select count(*) from push_outbox")
                    .one(c)
                    .map_err(lite::lite_err)
            })
            .expect("count");
        assert_eq!(outbox, 6, "the failed join queued nothing");
        sqlite.close().await;
        let _ = std::fs::remove_file(&path);
    }

    /// Benchmark-shaped check (run with `--ignored --nocapture`): messages per second into one
    /// channel from 64 concurrent writers, and the newest-first page of a 1,000,000-message
    /// channel against a 1,000-message one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "slow: seeds a million messages"]
    async fn posting_rate_and_newest_page_at_a_million_messages() {
        use parley_core::channel::{ChannelRef, MessageOrder};
        use parley_core::store::testsuite::{account, channel, message_value, service, DynStore};
        use std::time::Instant;

        let (sqlite, path) = temp_store().await;
        let store: DynStore = std::sync::Arc::new(sqlite.clone());
        let acct = account(&store).await;
        let svc = service(&store, &acct).await;
        let busy = channel(&store, &svc, "busy").await;

        // posting rate
        const POSTS: usize = 4_000;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..64 {
            let store = store.clone();
            let busy = busy.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..POSTS / 64 {
                    let m = message_value(&busy, &format!("w{w}"), &format!("hello {i}"));
                    store
                        .create_message(
                            &ChannelRef::Sid(busy.sid.clone()),
                            &m,
                            &parley_core::event::Origin::rest(),
                        )
                        .await
                        .expect("post");
                }
            }));
        }
        for t in tasks {
            t.await.expect("writer");
        }
        let rate = POSTS as f64 / started.elapsed().as_secs_f64();
        println!("posting: {rate:.0} messages/s (64 writers, one channel)");

        // newest page, 1k vs 1M messages (seeded directly, SIDs `IM<channel no><index>`)
        let small = channel(&store, &svc, "small").await;
        let big = channel(&store, &svc, "big").await;
        let mut per_page = Vec::new();
        for (k, ch, n) in [(1_i64, &small, 1_000_i64), (2, &big, 1_000_000)] {
            let seeding = Instant::now();
            sqlite
                .write(|c| {
                    lite::q(
                        "insert into messages (sid, account_sid, service_sid, channel_sid,
                                               msg_index, msg_from, body, date_created,
                                               date_updated)
                         with recursive n(i) as
                             (select 0 union all select i + 1 from n where i + 1 < ?)
                         select printf('IM%02x%030x', ?, i), ?, ?, ?, i, 'seed', 'body', i, i
                         from n",
                    )
                    .bind(n)
                    .bind(k)
                    .bind(acct.as_str())
                    .bind(svc.sid.as_str())
                    .bind(ch.sid.as_str())
                    .execute(c)
                    .map_err(lite::lite_err)
                })
                .await
                .expect("seed");
            println!("seeded {n} messages in {:?}", seeding.elapsed());
            let page = PageRequest::first(50);
            let r = ChannelRef::Sid(ch.sid.clone());
            let started = Instant::now();
            for _ in 0..200 {
                let p = store
                    .list_messages(&acct, &svc.sid, &r, MessageOrder::Desc, &page)
                    .await
                    .expect("page");
                assert_eq!(p.items.first().map(|m| m.index), Some(n - 1));
            }
            per_page.push(started.elapsed() / 200);
        }
        println!(
            "newest page of 50: {:?} at 1k messages, {:?} at 1M messages",
            per_page[0], per_page[1]
        );
        // The target is for optimised builds (`cargo test --release -- --ignored`); a debug
        // build of SQLite is several times slower.
        if !cfg!(debug_assertions) {
            assert!(rate >= 2_000.0, "posting rate {rate:.0}/s");
        }
        assert!(
            per_page[1] < per_page[0] * 3,
            "page cost grows with the channel: {per_page:?}"
        );
        sqlite.close().await;
        let _ = std::fs::remove_file(&path);
    }
}
