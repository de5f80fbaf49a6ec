//! The `parley` binary on PostgreSQL: each test gets a fresh schema in `TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`), selected with the URL's
//! `options[search_path]`. Unreachable PostgreSQL fails the tests unless
//! `PARLEY_SKIP_POSTGRES=1` is set outside CI (the project-wide convention).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use parley_core::store::AccountStore as _;
use parley_core::AccountSid;
use parley_store_postgres::PgStore;

/// A fresh, migrated schema. Named like the store tests' schemas (`parley_test_<secs>_…`), so
/// their stale-schema clean-up removes it later.
struct PgSchema {
    url: String,
    store: PgStore,
    runtime: tokio::runtime::Runtime,
}

impl PgSchema {
    /// `None` when PostgreSQL is unreachable and skipping is allowed.
    fn create() -> Option<PgSchema> {
        let base = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let schema = format!("parley_test_{secs}_cli_{}", unique());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        match runtime.block_on(PgStore::connect_in_schema(&base, &schema)) {
            Ok(store) => {
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options[search_path]={schema}");
                Some(PgSchema {
                    url,
                    store,
                    runtime,
                })
            }
            Err(e) => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true");
                if !ci && std::env::var("PARLEY_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
                    eprintln!("PostgreSQL unreachable at {base}; PARLEY_SKIP_POSTGRES=1: skipping");
                    return None;
                }
                panic!("PostgreSQL unreachable at {base}: {e:#} (set PARLEY_SKIP_POSTGRES=1 outside CI to skip)");
            }
        }
    }

    fn sealed_token(&self, sid: &str) -> Vec<u8> {
        let sid = AccountSid::parse(sid).unwrap();
        self.runtime
            .block_on(self.store.fetch_account(&sid))
            .unwrap()
            .auth_token_sealed
    }
}

impl Db for PgSchema {
    fn url(&self) -> String {
        self.url.clone()
    }
}

#[test]
fn postgres_admin_commands_and_serve_use_the_shared_key_and_refuse_another() {
    // Arrange
    let Some(db) = PgSchema::create() else { return };
    let key = "ab".repeat(32);
    let env = [("PARLEY_SECRET_KEY", key.as_str())];
    // Act
    let created = json_env(&db, &["account", "create", "--json"], &env);
    let key_made = json_env(
        &db,
        &[
            "api-key",
            "create",
            "--account",
            created["sid"].as_str().unwrap(),
            "--json",
        ],
        &env,
    );
    let server = Server::start(&db, &env);
    let health = server.get("/healthz");
    let (clean_exit, stdout) = server.terminate();
    let wrong_key = "cd".repeat(32);
    let wrong = parley_env(
        &db,
        &["account", "list"],
        &[("PARLEY_SECRET_KEY", &wrong_key)],
    );
    let no_key = parley(&db, &["account", "list"]);
    // Assert
    let sid = created["sid"].as_str().unwrap();
    let token = created["auth_token"].as_str().unwrap();
    assert!(is_hex32(token));
    assert!(
        !windows_contain(&db.sealed_token(sid), token.as_bytes()),
        "stored sealed"
    );
    assert_eq!(key_made["account_sid"], sid);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(clean_exit, "exit 0 on SIGTERM");
    assert!(
        !stdout.contains("Auth Token"),
        "accounts exist: no bootstrap: {stdout}"
    );
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("cannot open the secrets"),
        "{}",
        stderr(&wrong)
    );
    assert!(!no_key.status.success());
    assert!(
        stderr(&no_key).contains("PARLEY_SECRET_KEY is required"),
        "{}",
        stderr(&no_key)
    );
}

#[test]
fn postgres_first_start_prints_the_account_once() {
    // Arrange
    let Some(db) = PgSchema::create() else { return };
    let key = "ef".repeat(32);
    let env = [("PARLEY_SECRET_KEY", key.as_str())];
    // Act
    let (first_exit, first) = Server::start(&db, &env).terminate();
    let (second_exit, second) = Server::start(&db, &env).terminate();
    // Assert
    assert!(first_exit && second_exit);
    assert!(first.contains("Account SID: AC"), "{first}");
    assert!(!second.contains("Account SID"), "{second}");
    let listed = json_env(&db, &["account", "list", "--json"], &env);
    assert_eq!(listed.as_array().unwrap().len(), 1);
}
