//! PostgreSQL-specific checks: schema isolation, races between concurrent callers (as between
//! several nodes), keyset paging and cascades. The behaviour contract itself is the shared
//! conformance suite (tests/conformance.rs).

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use parley_core::binding::{BindingFilter, NewBinding, MESSAGE_TYPES};
use parley_core::credential::{Credential, PushType};
use parley_core::paging::{Cursor, PageRequest};
use parley_core::role::{NewRole, RoleType};
use parley_core::service::{NewService, Service};
use parley_core::store::{
    BindingStore, Conflict, CredentialStore, RoleStore, ServiceStore, StoreError, UserStore,
};
use parley_core::user::{User, UserRef, UserUpdate};
use parley_core::{AccountSid, BindingSid, CredentialSid, RoleSid, Timestamp, UserSid};
use parley_store_postgres::PgStore;
use support::fresh_pg;

const T0: i64 = 1_700_000_000_000_000;

fn at(us: i64) -> Timestamp {
    Timestamp::from_unix_micros(T0 + us)
}

async fn service(store: &PgStore, account: &AccountSid) -> Service {
    store
        .create_service(&NewService::with_defaults(account, "smoke", at(0)))
        .await
        .expect("create service")
}

fn user(service: &Service, identity: &str, t: i64) -> User {
    User {
        sid: UserSid::generate(),
        account_sid: service.account_sid.clone(),
        service_sid: service.sid.clone(),
        identity: identity.to_owned(),
        friendly_name: None,
        attributes: None,
        role_sid: service.default_service_role_sid.clone(),
        date_created: at(t),
        date_updated: at(t),
    }
}

fn registration(user: &User, endpoint: &str, address: &str, t: i64) -> NewBinding {
    NewBinding {
        sid: BindingSid::generate(),
        account_sid: user.account_sid.clone(),
        service_sid: user.service_sid.clone(),
        user_sid: user.sid.clone(),
        identity: user.identity.clone(),
        credential_sid: None,
        binding_type: PushType::Fcm,
        endpoint: endpoint.to_owned(),
        address: address.to_owned(),
        message_types: MESSAGE_TYPES.iter().map(|s| (*s).to_owned()).collect(),
        now: at(t),
        max_per_user: 20,
    }
}

#[tokio::test]
async fn migrations_table_lives_in_the_test_schema() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let (schema, in_schema): (String, bool) = sqlx::query_as(
        "select current_schema()::text,
                exists (select 1 from information_schema.tables
                        where table_schema = current_schema() and table_name = '_sqlx_migrations')",
    )
    .fetch_one(store.pool())
    .await
    .expect("query");
    assert!(schema.starts_with("parley_test_"), "{schema}");
    assert!(in_schema, "_sqlx_migrations is not in {schema}");
    let versions: Vec<i64> = sqlx::query_scalar("select version from _sqlx_migrations")
        .fetch_all(store.pool())
        .await
        .expect("versions");
    let embedded: Vec<i64> = parley_store_postgres::MIGRATOR
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, embedded);
}

#[tokio::test]
async fn connecting_twice_to_one_schema_keeps_its_data() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let schema: String = sqlx::query_scalar("select current_schema()::text")
        .fetch_one(store.pool())
        .await
        .expect("schema");
    let again = PgStore::connect_in_schema(&support::database_url(), &schema)
        .await
        .expect("reconnect");
    assert_eq!(
        again
            .fetch_service(&account, &svc.sid)
            .await
            .expect("fetch"),
        svc
    );
}

#[tokio::test]
async fn invalid_schema_names_are_rejected() {
    for bad in ["", "a\"b", "1abc", "x;drop"] {
        assert!(PgStore::connect_in_schema(&support::database_url(), bad)
            .await
            .is_err());
    }
}

#[tokio::test]
async fn create_service_stores_default_roles_and_delete_cascades() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let account = AccountSid::generate();
    let new = NewService::with_defaults(&account, "smoke", at(0));
    let svc = store.create_service(&new).await.expect("create");
    assert_eq!(svc, new.service);

    let roles = store
        .list_roles(&account, &svc.sid, &PageRequest::first(50))
        .await
        .expect("roles");
    assert_eq!(roles.items, new.roles);
    assert!(!roles.more);

    let u = store
        .create_user(&user(&svc, "alice", 1), &parley_core::event::Origin::rest())
        .await
        .expect("user");
    store
        .register_binding(&registration(&u, "e1", "tok1", 2))
        .await
        .expect("bind");

    let other = AccountSid::generate();
    assert!(matches!(
        store.delete_service(&other, &svc.sid).await,
        Err(StoreError::NotFound)
    ));
    store
        .delete_service(&account, &svc.sid)
        .await
        .expect("delete");
    for table in ["roles", "users", "bindings"] {
        let n: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(store.pool())
            .await
            .expect("count");
        assert_eq!(n, 0, "{table}");
    }
}

#[tokio::test]
async fn children_of_a_service_in_another_account_are_not_found() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let mut stranger = user(&svc, "mallory", 1);
    stranger.account_sid = AccountSid::generate();
    assert!(matches!(
        store
            .create_user(&stranger, &parley_core::event::Origin::rest())
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .get_or_create_user(&stranger, &parley_core::event::Origin::rest())
            .await,
        Err(StoreError::NotFound)
    ));
    let role = NewRole {
        sid: RoleSid::generate(),
        account_sid: stranger.account_sid.clone(),
        service_sid: svc.sid.clone(),
        friendly_name: "x".into(),
        role_type: RoleType::Channel,
        permissions: vec!["sendMessage".into()],
        date_created: at(1),
        date_updated: at(1),
    };
    assert!(matches!(
        store.create_role(&role).await,
        Err(StoreError::NotFound)
    ));

    let alice = store
        .create_user(&user(&svc, "alice", 1), &parley_core::event::Origin::rest())
        .await
        .expect("user");
    // Same identity, the service's account: conflict; another account: not found.
    assert!(matches!(
        store
            .create_user(&user(&svc, "alice", 2), &parley_core::event::Origin::rest())
            .await,
        Err(StoreError::Conflict(Conflict::UserIdentityTaken))
    ));
    let mut other_account_alice = user(&svc, "alice", 3);
    other_account_alice.account_sid = stranger.account_sid.clone();
    assert!(matches!(
        store
            .get_or_create_user(&other_account_alice, &parley_core::event::Origin::rest())
            .await,
        Err(StoreError::NotFound)
    ));
    let r = store
        .register_binding(&registration(&alice, "e", "a", 2))
        .await
        .expect("bind");
    let mut hijack = registration(&alice, "e", "b", 3);
    hijack.account_sid = stranger.account_sid.clone();
    assert!(store.register_binding(&hijack).await.is_err());
    let still = store
        .fetch_binding(&account, &svc.sid, &r.binding.sid)
        .await
        .expect("fetch");
    assert_eq!(still.address, "a");
}

#[tokio::test]
async fn thirty_two_concurrent_identical_registrations_leave_one_binding() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let store = Arc::new(store);
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let u = store
        .create_user(&user(&svc, "alice", 1), &parley_core::event::Origin::rest())
        .await
        .expect("user");

    let mut tasks = Vec::new();
    for _ in 0..32 {
        let store = Arc::clone(&store);
        let new = registration(&u, "device-1", "token-1", 5);
        tasks.push(tokio::spawn(
            async move { store.register_binding(&new).await },
        ));
    }
    let mut sids = HashSet::new();
    let mut created = 0;
    for t in tasks {
        let r = t.await.expect("join").expect("register");
        sids.insert(r.binding.sid.clone());
        created += usize::from(r.created);
    }
    assert_eq!(sids.len(), 1, "every caller sees the same binding");
    assert_eq!(created, 1, "exactly one caller created it");
    let page = store
        .list_bindings(
            &account,
            &svc.sid,
            &BindingFilter::default(),
            &PageRequest::first(50),
        )
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn concurrent_registrations_of_one_token_under_many_endpoints_leave_one_binding() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let store = Arc::new(store);
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(
            store
                .create_user(
                    &user(&svc, &format!("u{i}"), i),
                    &parley_core::event::Origin::rest(),
                )
                .await
                .expect("user"),
        );
    }
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = Arc::clone(&store);
        let new = registration(&users[i % 4], &format!("endpoint-{i}"), "shared-token", 10);
        tasks.push(tokio::spawn(
            async move { store.register_binding(&new).await },
        ));
    }
    for t in tasks {
        t.await.expect("join").expect("register");
    }
    let page = store
        .list_bindings(
            &account,
            &svc.sid,
            &BindingFilter::default(),
            &PageRequest::first(50),
        )
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1, "{:?}", page.items);
}

#[tokio::test]
async fn concurrent_get_or_create_user_yields_one_row() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let store = Arc::new(store);
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = Arc::clone(&store);
        let u = user(&svc, "bob", 1);
        tasks.push(tokio::spawn(async move {
            store
                .get_or_create_user(&u, &parley_core::event::Origin::rest())
                .await
        }));
    }
    let mut sids = HashSet::new();
    let mut created = 0;
    for t in tasks {
        let (u, c) = t.await.expect("join").expect("get_or_create");
        sids.insert(u.sid);
        created += usize::from(c);
    }
    assert_eq!((sids.len(), created), (1, 1));
}

#[tokio::test]
async fn registration_refreshes_evicts_and_moves_tokens() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let alice = store
        .create_user(&user(&svc, "alice", 1), &parley_core::event::Origin::rest())
        .await
        .expect("alice");
    let bob = store
        .create_user(&user(&svc, "bob", 2), &parley_core::event::Origin::rest())
        .await
        .expect("bob");

    let first = store
        .register_binding(&registration(&alice, "e1", "t1", 10))
        .await
        .expect("first");
    assert!(first.created);
    let again = store
        .register_binding(&registration(&alice, "e1", "t1b", 20))
        .await
        .expect("refresh");
    assert!(!again.created);
    assert_eq!(again.binding.sid, first.binding.sid);
    assert_eq!(again.binding.address, "t1b");
    assert_eq!(again.binding.date_created, at(10));
    assert_eq!(again.binding.date_updated, at(20));

    // The token moves to bob: alice's binding goes.
    let moved = store
        .register_binding(&registration(&bob, "b1", "t1b", 30))
        .await
        .expect("move");
    assert!(moved.created);
    assert_eq!(
        store
            .count_user_bindings(&account, &svc.sid, &alice.sid)
            .await
            .expect("count"),
        0
    );

    // Cap of 3: registering a 4th evicts the least recently updated.
    let mut sids = Vec::new();
    for i in 0..4 {
        let mut new = registration(&alice, &format!("c{i}"), &format!("ct{i}"), 100 + i);
        new.max_per_user = 3;
        sids.push(store.register_binding(&new).await.expect("reg").binding.sid);
    }
    let page = store
        .list_bindings(
            &account,
            &svc.sid,
            &BindingFilter {
                user_sid: Some(alice.sid.clone()),
                ..Default::default()
            },
            &PageRequest::first(50),
        )
        .await
        .expect("list");
    let kept: Vec<_> = page.items.iter().map(|b| b.sid.clone()).collect();
    assert_eq!(kept, sids[1..].to_vec());
}

#[tokio::test]
async fn list_bindings_filters_combine() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let alice = store
        .create_user(&user(&svc, "alice", 1), &parley_core::event::Origin::rest())
        .await
        .expect("alice");
    let bob = store
        .create_user(&user(&svc, "bob", 2), &parley_core::event::Origin::rest())
        .await
        .expect("bob");
    let carol = store
        .create_user(&user(&svc, "carol", 3), &parley_core::event::Origin::rest())
        .await
        .expect("carol");
    let mut t = 10;
    for u in [&alice, &bob, &carol] {
        for ty in [PushType::Apn, PushType::Fcm] {
            let mut new = registration(
                u,
                &format!("{}-{}", u.identity, ty.as_str()),
                &format!("a{t}"),
                t,
            );
            new.binding_type = ty;
            store.register_binding(&new).await.expect("reg");
            t += 1;
        }
    }
    let list = |filter: BindingFilter| {
        let store = &store;
        let account = &account;
        let svc = &svc;
        async move {
            store
                .list_bindings(account, &svc.sid, &filter, &PageRequest::first(50))
                .await
                .expect("list")
                .items
                .into_iter()
                .map(|b| (b.identity, b.binding_type))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(BindingFilter::default()).await.len(), 6);
    assert_eq!(
        list(BindingFilter {
            identities: vec!["alice".into(), "carol".into()],
            types: vec![PushType::Fcm],
            ..Default::default()
        })
        .await,
        vec![
            ("alice".to_owned(), PushType::Fcm),
            ("carol".to_owned(), PushType::Fcm)
        ]
    );
    assert_eq!(
        list(BindingFilter {
            user_sid: Some(bob.sid.clone()),
            types: vec![PushType::Apn, PushType::Gcm],
            ..Default::default()
        })
        .await,
        vec![("bob".to_owned(), PushType::Apn)]
    );
}

#[tokio::test]
async fn keyset_paging_walks_forward_and_back() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let mut all = Vec::new();
    for i in 0..7 {
        // Two users share each timestamp: the SID breaks the tie.
        all.push(
            store
                .create_user(
                    &user(&svc, &format!("u{i}"), i / 2),
                    &parley_core::event::Origin::rest(),
                )
                .await
                .expect("user"),
        );
    }
    all.sort_by(|a, b| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)));

    let mut seen = Vec::new();
    let mut req = PageRequest::first(3);
    loop {
        let page = store
            .list_users(&account, &svc.sid, &req)
            .await
            .expect("page");
        let last = page.items.last().cloned();
        seen.extend(page.items);
        if !page.more {
            break;
        }
        let last = last.expect("a page with more has rows");
        req.cursor = Some(Cursor {
            key: last.date_created.unix_micros(),
            sid: last.sid.to_string(),
            backwards: false,
        });
    }
    assert_eq!(seen, all);

    // Back from the last row: the three before it, ascending, with more before them.
    let last = &all[6];
    let back = PageRequest {
        size: 3,
        cursor: Some(Cursor {
            key: last.date_created.unix_micros(),
            sid: last.sid.to_string(),
            backwards: true,
        }),
    };
    let page = store
        .list_users(&account, &svc.sid, &back)
        .await
        .expect("back");
    assert_eq!(page.items, all[3..6].to_vec());
    assert!(page.more);
}

#[tokio::test]
async fn deleting_a_credential_removes_its_bindings_and_deleting_a_role_clears_users() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let cred = store
        .create_credential(&Credential {
            sid: CredentialSid::generate(),
            account_sid: account.clone(),
            friendly_name: Some("fcm".into()),
            credential_type: PushType::Fcm,
            sandbox: None,
            secrets_sealed: vec![1, 2, 3],
            needs_secret: false,
            date_created: at(0),
            date_updated: at(0),
        })
        .await
        .expect("cred");
    let alice = store
        .create_user(&user(&svc, "alice", 1), &parley_core::event::Origin::rest())
        .await
        .expect("alice");
    let mut with_cred = registration(&alice, "e1", "t1", 2);
    with_cred.credential_sid = Some(cred.sid.clone());
    store.register_binding(&with_cred).await.expect("b1");
    store
        .register_binding(&registration(&alice, "e2", "t2", 3))
        .await
        .expect("b2");
    store
        .delete_credential(&account, &cred.sid)
        .await
        .expect("del");
    assert_eq!(
        store
            .count_user_bindings(&account, &svc.sid, &alice.sid)
            .await
            .expect("count"),
        1
    );

    let role = alice.role_sid.clone().expect("default role");
    store
        .delete_role(&account, &svc.sid, &role)
        .await
        .expect("del role");
    let alice = store
        .fetch_user(&account, &svc.sid, &UserRef::Identity("alice".into()))
        .await
        .expect("fetch");
    assert_eq!(alice.role_sid, None);

    // Unknown role on update: an invalid reference, not a crash.
    let bad = UserUpdate {
        role_sid: Some(RoleSid::generate()),
        ..Default::default()
    };
    assert!(matches!(
        store
            .update_user(
                &account,
                &svc.sid,
                &UserRef::Sid(alice.sid.clone()),
                &bad,
                at(9),
                &parley_core::event::Origin::rest()
            )
            .await,
        Err(StoreError::InvalidReference(_))
    ));
}

#[tokio::test]
async fn stale_bindings_are_swept_in_batches() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let alice = store
        .create_user(&user(&svc, "alice", 1), &parley_core::event::Origin::rest())
        .await
        .expect("alice");
    for i in 0..5 {
        store
            .register_binding(&registration(&alice, &format!("e{i}"), &format!("t{i}"), i))
            .await
            .expect("reg");
    }
    let (a, b) = tokio::join!(
        store.delete_stale_bindings(at(3), 2),
        store.delete_stale_bindings(at(3), 2)
    );
    assert_eq!(a.expect("sweep a") + b.expect("sweep b"), 3);
    assert_eq!(
        store.delete_stale_bindings(at(3), 10).await.expect("again"),
        0
    );
    assert_eq!(
        store
            .count_user_bindings(&account, &svc.sid, &alice.sid)
            .await
            .expect("count"),
        2
    );
}

#[tokio::test]
async fn store_trait_object_reports_postgres() {
    let Some(store) = support::fresh_store().await else {
        return;
    };
    store.ping().await.expect("ping");
    assert_eq!(store.backend(), "postgres");
    let (open, idle) = store.pool_stats();
    assert!(open >= 1 && idle <= open);
}
