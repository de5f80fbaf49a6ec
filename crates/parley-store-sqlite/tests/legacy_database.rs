//! Databases made by earlier releases, whose SQLite store ran its migrations through `sqlx`
//! (`tests/fixtures/made-by-sqlx-release.db`: made with the `parley` binary of that release —
//! `parley account create` and a few rows through the API: a service, users `alice` and `bob`,
//! channel `general` with `alice` as member, one message, an invite for `bob`, a credential, a
//! role), open with this one — keeping their rows, upgraded by the migrations added since (from
//! 0005 on), once — and a new database gets the very same schema.

use std::path::{Path, PathBuf};

use parley_core::channel::{ChannelRef, MessageOrder};
use parley_core::paging::PageRequest;
use parley_core::store::testsuite::{message_value, user_at};
use parley_core::store::{
    AccountStore, ChannelStore, CredentialStore, EventStore, InviteStore, MemberStore,
    MessageStore, RoleStore, ServiceStore, UserStore,
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
    let migrations_before = rows(&path, MIGRATIONS);
    assert_eq!(migrations_before.len(), 4, "{migrations_before:?}");
    let legacy_events = rows(&path, "select id from events order by id");

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
    assert!(
        !credentials[0].needs_secret,
        "a credential made before 0011 has its secret"
    );
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
    // The old events got seqs 1..n (in id order); new ones go on from there.
    let events = store.list_events(&svc.sid, 0, 100).await.expect("events");
    let n = i64::try_from(legacy_events.len()).expect("small");
    assert!(n > 0, "the fixture has events");
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=n + 2).collect::<Vec<i64>>(), "{events:#?}");
    let old_ids: Vec<String> = events[..legacy_events.len()]
        .iter()
        .map(|e| format!("Integer({})", e.id))
        .collect();
    assert_eq!(
        old_ids,
        legacy_events.into_iter().flatten().collect::<Vec<String>>()
    );
    assert!(
        events[..events.len() - 2].iter().all(|e| e.state.is_none()),
        "events written before v5 have no state"
    );
    assert!(events[events.len() - 1].state.is_some());
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

    // Assert: the old migration records stay, the new migrations are recorded once each.
    let migrations_after = rows(&path, MIGRATIONS);
    assert_eq!(migrations_after[..4], migrations_before[..]);
    let added: Vec<(String, String)> = migrations_after[4..]
        .iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let expected: Vec<(String, String)> = parley_store_sqlite::MIGRATIONS[4..]
        .iter()
        .map(|m| {
            (
                format!("Integer({})", m.version),
                format!("Text({:?})", m.description),
            )
        })
        .collect();
    assert_eq!(added, expected);
    let schema_after = rows(&path, SCHEMA);

    // And it opens again, without migrating again.
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
    assert_eq!(rows(&path, MIGRATIONS), migrations_after);
    assert_eq!(rows(&path, SCHEMA), schema_after);
    remove(&path);
}

/// A new database gets exactly the schema of a database the `sqlx` release made, once this
/// release upgraded it (every table, index and trigger, `_sqlx_migrations` included, down to
/// the SQL text), and the same migration records (versions, descriptions, checksums, success).
#[tokio::test]
async fn a_new_database_gets_the_schema_of_the_sqlx_release() {
    let legacy = legacy_copy();
    SqliteStore::connect(&format!("sqlite://{}", legacy.display()))
        .await
        .expect("upgrade the old database")
        .close()
        .await;
    let path = temp_path("fresh");
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("create");
    store.close().await;
    drop(store);

    assert_eq!(rows(&path, SCHEMA), rows(&legacy, SCHEMA));
    let records =
        "select version, description, success, hex(checksum) from _sqlx_migrations order by version";
    assert_eq!(rows(&path, records), rows(&legacy, records));
    remove(&path);
    remove(&legacy);
}
