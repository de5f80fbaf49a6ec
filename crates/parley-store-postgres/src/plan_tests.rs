//! Keyset lists must walk an index in list order: no `Sort` node, so a page costs the same on
//! a table of any size. Checked with `EXPLAIN` on the very queries the store builds, with
//! sequential scans, bitmap scans and sorts priced out (`enable_* = off`) so that a plan still
//! containing a Sort proves no index gives the order.

use parley_core::binding::BindingFilter;
use parley_core::credential::PushType;
use parley_core::paging::{Cursor, PageRequest};
use parley_core::{AccountSid, ServiceSid, UserSid};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};

use crate::PgStore;

async fn connection() -> Option<(PgStore, PgConnection)> {
    let url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!(
        "parley_test_{}_{:016x}",
        parley_core::Timestamp::now().unix_secs(),
        rand::random::<u64>()
    );
    let store = match PgStore::connect_in_schema(&url, &schema).await {
        Ok(store) => store,
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            let skip = std::env::var("PARLEY_SKIP_POSTGRES").is_ok_and(|v| v == "1");
            assert!(skip && !ci, "PostgreSQL at {url} is not usable: {e:#}");
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "*** SKIPPED: query plan test: {e:#}");
            return None;
        }
    };
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql(&format!(
        r#"set search_path to "{schema}"; set enable_seqscan = off; set enable_bitmapscan = off;
           set enable_sort = off;"#
    ))
    .execute(&mut conn)
    .await
    .expect("session settings");
    Some((store, conn))
}

async fn plan<'a>(
    conn: &mut PgConnection,
    build: impl FnOnce(&mut QueryBuilder<'a, Postgres>),
) -> String {
    let mut qb = QueryBuilder::new("explain ");
    build(&mut qb);
    let lines: Vec<String> = qb
        .build_query_scalar()
        .fetch_all(&mut *conn)
        .await
        .expect("explain");
    lines.join("\n")
}

fn pages() -> [PageRequest; 3] {
    let cursor = |backwards| Cursor {
        key: 1_700_000_000_000_000,
        sid: "XX00000000000000000000000000000000".to_owned(),
        backwards,
    };
    [
        PageRequest::first(50),
        PageRequest {
            size: 50,
            cursor: Some(cursor(false)),
        },
        PageRequest {
            size: 50,
            cursor: Some(cursor(true)),
        },
    ]
}

#[track_caller]
fn assert_index_walk(plan: &str, what: &str) {
    assert!(
        plan.contains("Index") && !plan.contains("Sort"),
        "{what} is not an ordered index walk:\n{plan}"
    );
}

#[tokio::test]
async fn every_list_walks_an_index_in_order() {
    let Some((_store, mut conn)) = connection().await else {
        return;
    };
    let account = AccountSid::generate();
    let service = ServiceSid::generate();
    let user = UserSid::generate();
    let filters = [
        ("all bindings", BindingFilter::default()),
        (
            "bindings of a user",
            BindingFilter {
                user_sid: Some(user.clone()),
                ..BindingFilter::default()
            },
        ),
        (
            "bindings of a user by type",
            BindingFilter {
                user_sid: Some(user.clone()),
                types: vec![PushType::Apn, PushType::Fcm],
                ..BindingFilter::default()
            },
        ),
        (
            "bindings of one identity",
            BindingFilter {
                identities: vec!["alice".to_owned()],
                ..BindingFilter::default()
            },
        ),
        (
            "bindings by type",
            BindingFilter {
                types: vec![PushType::Gcm],
                ..BindingFilter::default()
            },
        ),
    ];
    for page in &pages() {
        let p = plan(&mut conn, |qb| {
            crate::service::push_list_services(qb, &account, page)
        })
        .await;
        assert_index_walk(&p, "services");
        let p = plan(&mut conn, |qb| {
            crate::credential::push_list_credentials(qb, &account, page)
        })
        .await;
        assert_index_walk(&p, "credentials");
        let p = plan(&mut conn, |qb| {
            crate::role::push_list_roles(qb, &account, &service, page)
        })
        .await;
        assert_index_walk(&p, "roles");
        let p = plan(&mut conn, |qb| {
            crate::user::push_list_users(qb, &account, &service, page)
        })
        .await;
        assert_index_walk(&p, "users");
        for (what, filter) in &filters {
            let p = plan(&mut conn, |qb| {
                crate::binding::push_list_bindings(qb, &account, &service, filter, page)
            })
            .await;
            assert_index_walk(&p, what);
        }
    }
}

#[tokio::test]
async fn chat_lists_walk_an_index_in_order() {
    use parley_core::channel::{ChannelRef, ChannelType, MessageOrder};
    let Some((_store, mut conn)) = connection().await else {
        return;
    };
    let account = AccountSid::generate();
    let service = ServiceSid::generate();
    let channel = ChannelRef::UniqueName("general".to_owned());
    let one = vec!["alice".to_owned()];
    let none: Vec<String> = Vec::new();
    for page in &pages() {
        for types in [vec![], vec![ChannelType::Private]] {
            let p = plan(&mut conn, |qb| {
                crate::channel::push_list_channels(qb, &account, &service, &types, page)
            })
            .await;
            assert_index_walk(&p, "channels");
        }
        for ids in [&none, &one] {
            let p = plan(&mut conn, |qb| {
                crate::member::push_list_members(qb, &account, &service, &channel, ids, page)
            })
            .await;
            assert_index_walk(&p, "members");
            let p = plan(&mut conn, |qb| {
                crate::invite::push_list_invites(qb, &account, &service, &channel, ids, page)
            })
            .await;
            assert_index_walk(&p, "invites");
        }
        let p = plan(&mut conn, |qb| {
            crate::channel_webhook::push_list_channel_webhooks(
                qb, &account, &service, &channel, page,
            )
        })
        .await;
        assert_index_walk(&p, "channel webhooks");
        // Message cursors are indexes: the newest page of a huge channel is a short backward
        // walk of (channel_sid, msg_index).
        let page = PageRequest {
            size: page.size,
            cursor: page.cursor.clone().map(|c| Cursor { key: 500, ..c }),
        };
        for order in [MessageOrder::Asc, MessageOrder::Desc] {
            let p = plan(&mut conn, |qb| {
                crate::message::push_list_messages(qb, &account, &service, &channel, order, &page)
            })
            .await;
            assert_index_walk(&p, "messages");
        }
    }
}
