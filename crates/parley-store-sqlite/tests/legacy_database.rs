//! Databases made by earlier releases, whose SQLite store ran its migrations through `sqlx`
//! (`tests/fixtures/made-by-sqlx-release.db`: made with the `parley` binary of that release —
//! `parley account create` and a few rows through the API: a service, users `alice` and `bob`,
//! channel `general` with `alice` as member, one message, an invite for `bob`, a credential, a
//! role), open unchanged with this one (only the migrations newer than that release are applied);
//! and a new database gets the very same schema.

use std::path::{Path, PathBuf};

use parley_core::channel::{ChannelRef, MessageOrder};
use parley_core::paging::PageRequest;
use parley_core::store::testsuite::{message_value, user_at};
use parley_core::store::{
    AccountStore, ChannelStore, CredentialStore, InviteStore, MemberStore, MessageStore, RoleStore,
    ServiceStore, UserStore,
};
use parley_core::user::UserRef;
use parley_core::{AccountSid, Timestamp};
use parley_store_sqlite::SqliteStore;

const FIXTURE: &str = "tests/fixtures/made-by-sqlx-release.db";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

fn temp_path(tag: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("parley-sqlite-legacy");
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir.join(format!("{tag}-{}.db", parley_core::sid::random_hex32()))
}

/// A copy of the fixture, so the committed file never changes.
fn legacy_copy() -> PathBuf {
    let path = temp_path("legacy");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    std::fs::copy(&fixture, &path).expect("copy fixture");
    path
}

/// Every row of a query, each column as text (for exact comparisons).
fn rows(path: &Path, sql: &str) -> Vec<Vec<String>> {
    let c = rusqlite::Connection::open(path).expect("open");
    let mut st = c.prepare(sql).expect("prepare");
    let n = st.column_count();
    let out = st
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    let v: rusqlite::types::Value = r.get(i)?;
                    Ok(format!("{v:?}"))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    out
}

const SCHEMA: &str = "select type, name, tbl_name, sql from sqlite_master order by type, name";
const MIGRATIONS: &str = "select * from _sqlx_migrations order by version";
/// Migrations the fixture's release had (0001–0004); later ones are applied when it opens.
const RELEASE_MIGRATIONS: usize = 4;

/// The schema of a database this build creates.
async fn fresh_schema() -> Vec<Vec<String>> {
    let path = temp_path("fresh-schema");
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("create");
    store.close().await;
    drop(store);
    let schema = rows(&path, SCHEMA);
    remove(&path);
    schema
}

fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

#[tokio::test]
async fn a_database_made_by_the_sqlx_release_opens_keeps_its_rows_and_takes_writes() {
    // Arrange
    let path = legacy_copy();
    let schema_before = rows(&path, SCHEMA);
    let migrations_before = rows(&path, MIGRATIONS);
    assert_eq!(
        migrations_before.len(),
        RELEASE_MIGRATIONS,
        "{migrations_before:?}"
    );

    // Act
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the old database");

    // Assert: the rows are there.
    let account = AccountSid::parse(ACCOUNT).expect("sid");
    assert_eq!(
        store
            .fetch_account(&account)
            .await
            .expect("account")
            .friendly_name
            .as_deref(),
        Some("legacy")
    );
    let services = store
        .list_services(&account, &PageRequest::first(10))
        .await
        .expect("services")
        .items;
    assert_eq!(services.len(), 1);
    let svc = &services[0];
    assert_eq!(svc.friendly_name, "legacy-svc");
    let users = store
        .list_users(&account, &svc.sid, &PageRequest::first(10))
        .await
        .expect("users")
        .items;
    let identities: Vec<&str> = users.iter().map(|u| u.identity.as_str()).collect();
    assert_eq!(identities, ["alice", "bob"]);
    let general = ChannelRef::UniqueName("general".to_owned());
    let channel = store
        .fetch_channel(&account, &svc.sid, &general)
        .await
        .expect("channel");
    assert_eq!(
        (channel.members_count, channel.messages_count),
        (1, 1),
        "{channel:?}"
    );
    let messages = store
        .list_messages(
            &account,
            &svc.sid,
            &general,
            MessageOrder::Asc,
            &PageRequest::first(10),
        )
        .await
        .expect("messages")
        .items;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].body.as_deref(),
        Some("hello-from-the-old-release")
    );
    let members = store
        .list_members(&account, &svc.sid, &general, &[], &PageRequest::first(10))
        .await
        .expect("members")
        .items;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].identity, "alice");
    let invites = store
        .list_invites(&account, &svc.sid, &general, &[], &PageRequest::first(10))
        .await
        .expect("invites")
        .items;
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].identity, "bob");
    let credentials = store
        .list_credentials(&account, &PageRequest::first(10))
        .await
        .expect("credentials")
        .items;
    assert_eq!(credentials.len(), 1);
    let roles = store
        .list_roles(&account, &svc.sid, &PageRequest::first(50))
        .await
        .expect("roles")
        .items;
    assert!(
        roles.iter().any(|r| r.friendly_name == "extra"),
        "{roles:?}"
    );

    // Assert: it takes writes.
    let carol = store
        .create_user(
            &user_at(svc, "carol", Timestamp::now()),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("new user");
    assert_eq!(carol.identity, "carol");
    let posted = store
        .create_message(
            &general,
            &message_value(&channel, "alice", "after the upgrade"),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("post");
    assert_eq!(posted.index, 1, "indexes go on from the old ones");
    store
        .delete_user(
            &account,
            &svc.sid,
            &UserRef::Identity("bob".to_owned()),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("delete bob (and his invite)");
    assert!(store
        .list_invites(&account, &svc.sid, &general, &[], &PageRequest::first(10))
        .await
        .expect("invites")
        .items
        .is_empty());
    store.close().await;
    drop(store);

    // Assert: its migration records and schema objects are untouched; the newer migrations were
    // applied, so its schema is now that of a new database.
    let migrations_after = rows(&path, MIGRATIONS);
    assert_eq!(
        migrations_after.len(),
        parley_store_sqlite::MIGRATIONS.len(),
        "{migrations_after:?}"
    );
    assert_eq!(
        migrations_after[..RELEASE_MIGRATIONS],
        migrations_before[..]
    );
    let schema_after = rows(&path, SCHEMA);
    for object in &schema_before {
        assert!(
            schema_after.contains(object),
            "changed or dropped: {object:?}"
        );
    }
    assert_eq!(schema_after, fresh_schema().await);

    // And it opens again.
    let again = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("reopen");
    assert_eq!(
        again
            .fetch_user(&account, &svc.sid, &UserRef::Identity("carol".to_owned()))
            .await
            .expect("carol")
            .sid,
        carol.sid
    );
    again.close().await;
    drop(again);
    assert_eq!(
        rows(&path, MIGRATIONS),
        migrations_after,
        "not migrated again"
    );
    assert_eq!(rows(&path, SCHEMA), schema_after);
    remove(&path);
}

/// A new database gets exactly the schema the `sqlx` release made (every table, index and
/// trigger, `_sqlx_migrations` included, down to the SQL text) plus what the newer migrations
/// add, and the same migration records (versions, descriptions, checksums, success) for the
/// release's migrations.
#[tokio::test]
async fn a_new_database_gets_the_schema_of_the_sqlx_release() {
    let legacy = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let path = temp_path("fresh");
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("create");
    store.close().await;
    drop(store);

    let fresh = rows(&path, SCHEMA);
    for object in rows(&legacy, SCHEMA) {
        assert!(
            fresh.contains(&object),
            "differs from the release: {object:?}"
        );
    }
    let records =
        "select version, description, success, hex(checksum) from _sqlx_migrations order by version";
    let fresh_records = rows(&path, records);
    assert_eq!(fresh_records.len(), parley_store_sqlite::MIGRATIONS.len());
    assert_eq!(
        fresh_records[..RELEASE_MIGRATIONS],
        rows(&legacy, records)[..]
    );
    remove(&path);
}
