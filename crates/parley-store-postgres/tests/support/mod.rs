//! Test databases: every store gets a fresh schema in `TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`).
//!
//! Postgres unreachable: the tests FAIL, unless `PARLEY_SKIP_POSTGRES=1` is set (and `CI` is not
//! `true`), in which case each test prints `SKIPPED <test>` on the real stderr (shown by the test
//! runner) and returns early: only that test is skipped, every other test still runs.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parley_core::store::Store;
use parley_store_postgres::PgStore;
use sqlx::{Connection, PgConnection};

/// Test schemas are named `parley_test_<unix secs>_<random>`.
const SCHEMA_PREFIX: &str = "parley_test_";
/// Test schemas older than this are dropped by later test runs.
const STALE_AFTER_SECS: u64 = 3600;

static CLEANED: AtomicBool = AtomicBool::new(false);

/// The database the tests use.
pub fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A store over a new, empty, migrated schema; `None` when PostgreSQL is unreachable and the
/// tests may skip (the caller returns early).
pub async fn fresh_pg() -> Option<PgStore> {
    let url = database_url();
    let schema = format!(
        "{SCHEMA_PREFIX}{}_{:016x}",
        now_secs(),
        rand::random::<u64>()
    );
    match PgStore::connect_in_schema(&url, &schema).await {
        Ok(store) => {
            if !CLEANED.swap(true, Ordering::SeqCst) {
                drop_stale_schemas(&url).await;
            }
            Some(store)
        }
        Err(e) => {
            unreachable_postgres(&url, &e);
            None
        }
    }
}

/// [`fresh_pg`] as the trait object the conformance suite wants.
pub async fn fresh_store() -> Option<Arc<dyn Store>> {
    fresh_pg().await.map(|s| Arc::new(s) as Arc<dyn Store>)
}

/// Fails the test unless skipping is allowed; then says so where the runner shows it.
fn unreachable_postgres(url: &str, e: &anyhow::Error) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let skip = std::env::var("PARLEY_SKIP_POSTGRES").is_ok_and(|v| v == "1");
    if skip && !ci {
        // Straight to the stderr handle: libtest captures `eprintln!` of a passing test.
        use std::io::Write;
        let test = std::thread::current()
            .name()
            .unwrap_or("a PostgreSQL test")
            .to_owned();
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: PostgreSQL unusable at {url} (PARLEY_SKIP_POSTGRES=1): {e:#}"
        );
        return;
    }
    panic!(
        "PostgreSQL at {url} is not usable: {e:#}\n\
         Set TEST_DATABASE_URL, or PARLEY_SKIP_POSTGRES=1 to skip these tests outside CI."
    );
}

/// Drop test schemas left behind by runs more than an hour ago (best effort).
async fn drop_stale_schemas(url: &str) {
    let Ok(mut conn) = PgConnection::connect(url).await else {
        return;
    };
    let names: Vec<String> = sqlx::query_scalar(
        "select nspname::text from pg_namespace where nspname like 'parley\\_test\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    let cutoff = now_secs().saturating_sub(STALE_AFTER_SECS);
    for name in names {
        let created = name
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|secs| secs < cutoff) {
            let _ = sqlx::query(&format!(r#"drop schema if exists "{name}" cascade"#))
                .execute(&mut conn)
                .await;
        }
    }
    let _ = conn.close().await;
}
