//! The shared store conformance suite (parley_core::store::testsuite) on SQLite, one fresh
//! database file per case, plus SQLite-specific checks.

use std::path::PathBuf;
use std::sync::Arc;

use parley_core::store::Store;
use parley_store_sqlite::SqliteStore;

/// A new database file under Cargo's per-target temp dir. Files of earlier runs (older than
/// an hour) are removed on first use, so the directory does not grow without bound.
fn fresh_path() -> PathBuf {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("parley-sqlite-conformance");
    std::fs::create_dir_all(&dir).expect("create temp dir");
    SWEEP.call_once(|| remove_old_files(&dir));
    dir.join(format!("{}.db", parley_core::sid::random_hex32()))
}

fn remove_old_files(dir: &std::path::Path) {
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < hour_ago);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

async fn fresh_store() -> Arc<dyn Store> {
    let url = format!("sqlite://{}", fresh_path().display());
    Arc::new(SqliteStore::connect(&url).await.expect("connect"))
}

parley_core::store_conformance_tests!(fresh_store);

/// The same suite on `sqlite::memory:` (a temporary file, removed with the store), which
/// tests elsewhere may use for speed.
mod in_memory {
    use super::*;

    async fn memory_store() -> Arc<dyn Store> {
        Arc::new(
            SqliteStore::connect("sqlite::memory:")
                .await
                .expect("connect"),
        )
    }

    parley_core::store_conformance_tests!(memory_store);
}

/// Both backends carry the same migration files (same numbers and names), so a schema change
/// cannot land in one and be forgotten in the other.
#[test]
fn migration_files_match_the_postgres_backend() {
    let names = |dir: &str| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .map(|entry| {
                entry
                    .expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".sql"))
            .collect();
        names.sort();
        names
    };
    let sqlite = names("migrations");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, names("../parley-store-postgres/migrations"));
    let versions: Vec<i64> = parley_store_sqlite::MIGRATIONS
        .iter()
        .map(|m| m.version)
        .collect();
    let from_names: Vec<i64> = sqlite
        .iter()
        .map(|n| {
            n.split('_')
                .next()
                .and_then(|v| v.parse().ok())
                .expect("NNNN_ prefix")
        })
        .collect();
    assert_eq!(
        versions, from_names,
        "the embedded migrations are the files on disk"
    );
}

/// Opening an existing database again keeps its rows and does not re-run migrations.
#[tokio::test]
async fn reopening_a_database_keeps_its_rows() {
    let path = fresh_path();
    let url = format!("sqlite://{}", path.display());
    let account = {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await.expect("connect"));
        let account = parley_core::store::testsuite::account(&store).await;
        store.ping().await.expect("ping");
        assert_eq!(store.backend(), "sqlite");
        account
    };
    let again = SqliteStore::connect(&url).await.expect("reconnect");
    assert_eq!(
        parley_core::store::AccountStore::fetch_account(&again, &account)
            .await
            .expect("fetch")
            .sid,
        account
    );
    again.close().await;
    assert!(path.exists());
}

/// Two stores on one file (a server and an admin command, say) write at the same time: each
/// waits for the other's lock (`BEGIN IMMEDIATE` + `busy_timeout`) instead of failing with
/// `SQLITE_BUSY`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_write_concurrently_without_busy_errors() {
    use parley_core::credential::PushType;
    use parley_core::store::testsuite::{account, registration, service, user_at};
    use parley_core::Timestamp;

    // Arrange
    let url = format!("sqlite://{}", fresh_path().display());
    let a: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await.expect("connect a"));
    let b: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await.expect("connect b"));
    let acct = account(&a).await;
    let svc = service(&a, &acct).await;

    // Act: 2 × 24 tasks, each creating a user and registering a device for it.
    let mut tasks = Vec::new();
    for i in 0..48 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let u = user_at(&svc, &format!("user-{i}"), Timestamp::now());
        tasks.push(tokio::spawn(async move {
            let (u, _) = store
                .get_or_create_user(&u, &parley_core::event::Origin::rest())
                .await?;
            let reg = registration(
                &u,
                PushType::Fcm,
                "phone",
                &format!("tok-{i}"),
                Timestamp::now(),
            );
            store.register_binding(&reg).await
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.expect("task") {
            failures.push(e.to_string());
        }
    }

    // Assert
    assert!(failures.is_empty(), "{failures:?}");
    let page = parley_core::paging::PageRequest::first(100);
    let listed = b
        .list_bindings(&acct, &svc.sid, &Default::default(), &page)
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 48);
}
