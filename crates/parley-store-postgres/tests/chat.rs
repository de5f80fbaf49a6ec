//! PostgreSQL-specific checks of the chat core: races between concurrent callers (as between
//! several nodes sharing one database — some cases use two `PgStore`s on one schema), the
//! change log written in the same transaction as each change, counters under cascades, and
//! index-ordered message paging. The behaviour contract itself is the shared conformance suite.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use parley_core::channel::{
    Channel, ChannelRef, ChannelType, Invite, Member, MemberLimits, MemberRef, MemberUpdate,
    Message, MessageOrder, NotificationLevel, UserChannelStatus,
};
use parley_core::event::EventKind;
use parley_core::paging::{Cursor, PageRequest};
use parley_core::service::{NewService, Service};
use parley_core::store::{
    ChannelStore, Conflict, EventStore, InviteStore, Limit, MemberStore, MessageStore,
    ServiceStore, StoreError, UserStore,
};
use parley_core::user::{User, UserRef};
use parley_core::{AccountSid, ChannelSid, InviteSid, MemberSid, MessageSid, Timestamp, UserSid};
use parley_store_postgres::PgStore;
use support::fresh_pg;

const T0: i64 = 1_700_000_000_000_000;

fn at(us: i64) -> Timestamp {
    Timestamp::from_unix_micros(T0 + us)
}

const WIDE: MemberLimits = MemberLimits {
    channel_members: 1000,
    user_channels: 1000,
};

async fn service(store: &PgStore, account: &AccountSid) -> Service {
    store
        .create_service(&NewService::with_defaults(account, "chat", at(0)))
        .await
        .expect("create service")
}

async fn user(store: &PgStore, service: &Service, identity: &str) -> User {
    store
        .create_user(
            &User {
                sid: UserSid::generate(),
                account_sid: service.account_sid.clone(),
                service_sid: service.sid.clone(),
                identity: identity.to_owned(),
                friendly_name: None,
                attributes: None,
                role_sid: None,
                date_created: at(0),
                date_updated: at(0),
            },
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("create user")
}

async fn channel(store: &PgStore, service: &Service, unique_name: Option<&str>) -> Channel {
    store
        .create_channel(
            &Channel {
                sid: ChannelSid::generate(),
                account_sid: service.account_sid.clone(),
                service_sid: service.sid.clone(),
                friendly_name: Some("general".to_owned()),
                unique_name: unique_name.map(str::to_owned),
                attributes: None,
                channel_type: ChannelType::Public,
                created_by: Some("system".to_owned()),
                members_count: 0,
                messages_count: 0,
                last_message_sid: None,
                last_message_index: None,
                date_created: at(1),
                date_updated: at(1),
            },
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("create channel")
}

fn member(channel: &Channel, user: &User, t: i64) -> Member {
    Member {
        sid: MemberSid::generate(),
        account_sid: channel.account_sid.clone(),
        service_sid: channel.service_sid.clone(),
        channel_sid: channel.sid.clone(),
        user_sid: user.sid.clone(),
        identity: user.identity.clone(),
        role_sid: None,
        last_consumed_message_index: None,
        last_consumption_timestamp: None,
        attributes: None,
        notification_level: NotificationLevel::Default,
        date_created: at(t),
        date_updated: at(t),
    }
}

fn message(channel: &Channel, from: &str, body: &str) -> Message {
    Message {
        sid: MessageSid::generate(),
        account_sid: channel.account_sid.clone(),
        service_sid: channel.service_sid.clone(),
        channel_sid: channel.sid.clone(),
        index: -1,
        from: from.to_owned(),
        body: Some(body.to_owned()),
        attributes: None,
        last_updated_by: None,
        was_edited: false,
        date_created: Timestamp::now(),
        date_updated: Timestamp::now(),
    }
}

fn invite(channel: &Channel, identity: &str, t: i64) -> Invite {
    Invite {
        sid: InviteSid::generate(),
        account_sid: channel.account_sid.clone(),
        service_sid: channel.service_sid.clone(),
        channel_sid: channel.sid.clone(),
        identity: identity.to_owned(),
        role_sid: None,
        created_by: Some("admin".to_owned()),
        date_created: at(t),
        date_updated: at(t),
    }
}

fn by_sid(channel: &Channel) -> ChannelRef {
    ChannelRef::Sid(channel.sid.clone())
}

async fn fetch(store: &PgStore, channel: &Channel) -> Channel {
    store
        .fetch_channel(&channel.account_sid, &channel.service_sid, &by_sid(channel))
        .await
        .expect("fetch channel")
}

/// The service's events of the push kinds (what these tests are about), in seq order.
async fn events(store: &PgStore, service: &Service) -> Vec<parley_core::event::Event> {
    store
        .list_events(&service.sid, 0, 10_000)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.kind.is_push())
        .collect()
}

/// Every push-kind event has exactly one outbox row, every outbox row such an event, and the
/// other kinds none.
async fn assert_outbox_matches_events(store: &PgStore) {
    let (events, outbox, joined): (i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from events
                 where kind in ('new_message', 'added_to_channel', 'invited_to_channel',
                                'removed_from_channel')),
                (select count(*) from push_outbox),
                (select count(*) from events e join push_outbox o on o.event_id = e.id)",
    )
    .fetch_one(store.pool())
    .await
    .expect("counts");
    assert_eq!((events, outbox), (joined, joined));
}

/// A second store (another "node") on the schema of `store`.
async fn second_node(store: &PgStore) -> PgStore {
    let schema: String = sqlx::query_scalar("select current_schema()::text")
        .fetch_one(store.pool())
        .await
        .expect("schema");
    PgStore::connect_in_schema(&support::database_url(), &schema)
        .await
        .expect("second node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn sixty_four_concurrent_posts_get_indexes_0_to_63_on_two_nodes() {
    let Some(a) = fresh_pg().await else {
        return;
    };
    let a = Arc::new(a);
    let b = Arc::new(second_node(&a).await);
    let account = AccountSid::generate();
    let svc = service(&a, &account).await;
    let ch = channel(&a, &svc, Some("busy")).await;

    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        // Half by SID, half by unique name.
        let channel_ref = if i % 3 == 0 {
            ChannelRef::UniqueName("busy".to_owned())
        } else {
            by_sid(&ch)
        };
        let msg = message(&ch, "alice", &format!("m{i}"));
        tasks.push(tokio::spawn(async move {
            store
                .create_message(&channel_ref, &msg, &parley_core::event::Origin::rest())
                .await
        }));
    }
    let mut indexes = Vec::new();
    for t in tasks {
        indexes.push(t.await.expect("join").expect("post").index);
    }
    let unique: BTreeSet<i64> = indexes.iter().copied().collect();
    assert_eq!(unique, (0..64).collect::<BTreeSet<i64>>(), "{indexes:?}");

    let ch = fetch(&a, &ch).await;
    assert_eq!(ch.messages_count, 64);
    assert_eq!(ch.last_message_index, Some(63));
    let page = a
        .list_messages(
            &account,
            &svc.sid,
            &by_sid(&ch),
            MessageOrder::Asc,
            &PageRequest::first(100),
        )
        .await
        .expect("list");
    let listed: Vec<i64> = page.items.iter().map(|m| m.index).collect();
    assert_eq!(listed, (0..64).collect::<Vec<i64>>());
    assert_eq!(
        ch.last_message_sid.as_ref(),
        Some(&page.items[63].sid),
        "last message is the one with the highest index"
    );

    let evs = events(&a, &svc).await;
    assert_eq!(evs.len(), 64);
    assert!(evs.iter().all(|e| e.kind == EventKind::NewMessage));
    let mut evidx: Vec<i64> = evs.iter().filter_map(|e| e.message_index).collect();
    evidx.sort_unstable();
    assert_eq!(evidx, (0..64).collect::<Vec<i64>>());
    assert_outbox_matches_events(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_joins_racing_for_the_last_slots_never_exceed_channel_members() {
    let Some(a) = fresh_pg().await else {
        return;
    };
    let a = Arc::new(a);
    let b = Arc::new(second_node(&a).await);
    let account = AccountSid::generate();
    let svc = service(&a, &account).await;
    let ch = channel(&a, &svc, None).await;
    let limits = MemberLimits {
        channel_members: 5,
        user_channels: 100,
    };
    // Two members already: three slots left for 24 racers.
    for name in ["first", "second"] {
        let u = user(&a, &svc, name).await;
        a.create_member(
            &member(&ch, &u, 2),
            &limits,
            None,
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("join");
    }
    let mut tasks = Vec::new();
    for i in 0..24 {
        let u = user(&a, &svc, &format!("racer{i}")).await;
        let store = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        let m = member(&ch, &u, 3);
        tasks.push(tokio::spawn(async move {
            store
                .create_member(
                    &m,
                    &limits,
                    Some("racer"),
                    &parley_core::event::Origin::rest(),
                )
                .await
        }));
    }
    let (mut ok, mut full) = (0, 0);
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => ok += 1,
            Err(StoreError::LimitExceeded(Limit::ChannelMembers)) => full += 1,
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    assert_eq!((ok, full), (3, 21));
    let ch = fetch(&a, &ch).await;
    assert_eq!(ch.members_count, 5);
    let listed = a
        .list_members(
            &account,
            &svc.sid,
            &by_sid(&ch),
            &[],
            &PageRequest::first(100),
        )
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 5);
    let added = events(&a, &svc)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::AddedToChannel)
        .count();
    assert_eq!(added, 5, "failed joins leave no event");
    assert_outbox_matches_events(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_joins_of_one_user_never_exceed_user_channels() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let store = Arc::new(store);
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let u = user(&store, &svc, "hopper").await;
    let limits = MemberLimits {
        channel_members: 100,
        user_channels: 3,
    };
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let ch = channel(&store, &svc, None).await;
        let m = member(&ch, &u, 3);
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .create_member(&m, &limits, None, &parley_core::event::Origin::rest())
                .await
        }));
    }
    let (mut ok, mut full) = (0, 0);
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => ok += 1,
            Err(StoreError::LimitExceeded(Limit::UserChannels)) => full += 1,
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    assert_eq!((ok, full), (3, 13));
    let counts = store
        .joined_channel_counts(&account, &svc.sid, std::slice::from_ref(&u.sid))
        .await
        .expect("counts");
    assert_eq!(counts, vec![(u.sid.clone(), 3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_joins_of_one_identity_make_one_member_and_one_event() {
    let Some(a) = fresh_pg().await else {
        return;
    };
    let a = Arc::new(a);
    let b = Arc::new(second_node(&a).await);
    let account = AccountSid::generate();
    let svc = service(&a, &account).await;
    let ch = channel(&a, &svc, None).await;
    let u = user(&a, &svc, "twin").await;
    a.create_invite(
        &by_sid(&ch),
        &invite(&ch, "twin", 2),
        &parley_core::event::Origin::rest(),
    )
    .await
    .expect("invite");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        let m = member(&ch, &u, 3);
        tasks.push(tokio::spawn(async move {
            store
                .create_member(&m, &WIDE, None, &parley_core::event::Origin::rest())
                .await
        }));
    }
    let (mut ok, mut exists) = (0, 0);
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(Conflict::MemberExists)) => exists += 1,
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    assert_eq!((ok, exists), (1, 15));
    assert_eq!(fetch(&a, &ch).await.members_count, 1);
    let evs = events(&a, &svc).await;
    let kinds: Vec<EventKind> = evs.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::InvitedToChannel, EventKind::AddedToChannel]
    );
    // Joining accepted the invite.
    let invites = a
        .list_invites(
            &account,
            &svc.sid,
            &by_sid(&ch),
            &[],
            &PageRequest::first(10),
        )
        .await
        .expect("invites");
    assert!(invites.items.is_empty());
    assert_outbox_matches_events(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn user_deletions_racing_joins_keep_members_count_exact() {
    let Some(a) = fresh_pg().await else {
        return;
    };
    let a = Arc::new(a);
    let b = Arc::new(second_node(&a).await);
    let account = AccountSid::generate();
    let svc = service(&a, &account).await;
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(channel(&a, &svc, None).await);
    }
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(user(&a, &svc, &format!("u{i}")).await);
    }
    // Every user joins every channel while half of the users are deleted, on two nodes.
    let mut tasks = Vec::new();
    for (i, u) in users.iter().enumerate() {
        for ch in &channels {
            let store = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            let m = member(ch, u, 3);
            tasks.push(tokio::spawn(async move {
                match store
                    .create_member(&m, &WIDE, None, &parley_core::event::Origin::rest())
                    .await
                {
                    Ok(_) | Err(StoreError::NotFound) => Ok(()),
                    Err(e) => Err(e),
                }
            }));
        }
        if i % 2 == 1 {
            let store = Arc::clone(&b);
            let (account, service, sid) = (account.clone(), svc.sid.clone(), u.sid.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .delete_user(
                        &account,
                        &service,
                        &UserRef::Sid(sid),
                        &parley_core::event::Origin::rest(),
                    )
                    .await
            }));
        }
    }
    for t in tasks {
        t.await.expect("join").expect("no deadlock or other error");
    }
    for ch in &channels {
        let counted: i64 =
            sqlx::query_scalar("select count(*) from members where channel_sid = $1")
                .bind(ch.sid.as_str())
                .fetch_one(a.pool())
                .await
                .expect("count");
        assert_eq!(fetch(&a, ch).await.members_count, counted);
        assert_eq!(counted, 6, "only the surviving users remain");
    }
}

#[tokio::test]
async fn a_change_that_fails_leaves_no_event() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, None).await;
    let u = user(&store, &svc, "bob").await;
    let tight = MemberLimits {
        channel_members: 0,
        user_channels: 10,
    };
    assert!(matches!(
        store
            .create_member(
                &member(&ch, &u, 2),
                &tight,
                None,
                &parley_core::event::Origin::rest()
            )
            .await,
        Err(StoreError::LimitExceeded(Limit::ChannelMembers))
    ));
    // A message whose SID is taken fails after the index was taken: all of it rolls back.
    let first = store
        .create_message(
            &by_sid(&ch),
            &message(&ch, "bob", "hi"),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("post");
    let mut dup = message(&ch, "bob", "again");
    dup.sid = first.sid.clone();
    assert!(store
        .create_message(&by_sid(&ch), &dup, &parley_core::event::Origin::rest())
        .await
        .is_err());
    // An invite of a user that does not exist.
    assert!(matches!(
        store
            .create_invite(
                &by_sid(&ch),
                &invite(&ch, "nobody", 3),
                &parley_core::event::Origin::rest()
            )
            .await,
        Err(StoreError::NotFound)
    ));
    let ch_now = fetch(&store, &ch).await;
    assert_eq!(ch_now.messages_count, 1);
    assert_eq!(ch_now.members_count, 0);
    let next = store
        .create_message(
            &by_sid(&ch),
            &message(&ch, "bob", "third"),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("post");
    assert_eq!(next.index, 1, "the rolled-back post did not use an index");
    let kinds: Vec<EventKind> = events(&store, &svc).await.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::NewMessage, EventKind::NewMessage]);
    assert_outbox_matches_events(&store).await;
}

#[tokio::test]
async fn events_carry_their_payload_and_page_by_id() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let other = service(&store, &account).await;
    let ch = channel(&store, &svc, Some("room")).await;
    let u = user(&store, &svc, "carol").await;
    let _ = user(&store, &svc, "dave").await;
    let inv = store
        .create_invite(
            &by_sid(&ch),
            &invite(&ch, "dave", 2),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("invite");
    let m = store
        .create_member(
            &member(&ch, &u, 3),
            &WIDE,
            Some("admin"),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("join");
    let msg = store
        .create_message(
            &by_sid(&ch),
            &message(&ch, "carol", "hello"),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("post");
    store
        .delete_member(
            &account,
            &svc.sid,
            &ChannelRef::UniqueName("room".to_owned()),
            &MemberRef::Identity("carol".to_owned()),
            Some("carol"),
            at(9),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("leave");
    let evs = events(&store, &svc).await;
    assert_eq!(evs.len(), 4);
    assert!(evs.windows(2).all(|w| w[0].id < w[1].id));
    assert!(evs.iter().all(|e| e.channel_sid.as_ref() == Some(&ch.sid)
        && e.service_sid == svc.sid
        && e.account_sid == account
        && e.channel_unique_name.as_deref() == Some("room")
        && e.channel_friendly_name.as_deref() == Some("general")));
    let (i, a, n, r) = (&evs[0], &evs[1], &evs[2], &evs[3]);
    assert_eq!(i.kind, EventKind::InvitedToChannel);
    assert_eq!(i.invite_sid.as_ref(), Some(&inv.sid));
    assert_eq!(i.identity.as_deref(), Some("dave"));
    assert_eq!(i.actor.as_deref(), Some("admin"));
    assert_eq!(a.kind, EventKind::AddedToChannel);
    assert_eq!(a.member_sid.as_ref(), Some(&m.sid));
    assert_eq!(a.identity.as_deref(), Some("carol"));
    assert_eq!(a.actor.as_deref(), Some("admin"));
    assert_eq!(n.kind, EventKind::NewMessage);
    assert_eq!(n.message_sid.as_ref(), Some(&msg.sid));
    assert_eq!(n.message_index, Some(0));
    assert_eq!(n.body.as_deref(), Some("hello"));
    assert_eq!(n.identity, None);
    assert_eq!(n.actor.as_deref(), Some("carol"));
    assert_eq!(r.kind, EventKind::RemovedFromChannel);
    assert_eq!(r.member_sid.as_ref(), Some(&m.sid));
    assert_eq!(r.identity.as_deref(), Some("carol"));
    assert_eq!(r.date_created, at(9));

    let after = store
        .list_events(&svc.sid, evs[1].seq, 1)
        .await
        .expect("page");
    assert_eq!(after, vec![evs[2].clone()]);
    assert!(events(&store, &other).await.is_empty());
    assert_outbox_matches_events(&store).await;
    // The log outlives the channel; it goes with the service.
    store
        .delete_channel(
            &account,
            &svc.sid,
            &by_sid(&ch),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("delete channel");
    assert_eq!(events(&store, &svc).await.len(), 4);
    store
        .delete_service(&account, &svc.sid)
        .await
        .expect("delete service");
    assert_outbox_matches_events(&store).await;
    let left: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn deleting_users_and_channels_keeps_counters_and_cascades() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let ch1 = channel(&store, &svc, None).await;
    let ch2 = channel(&store, &svc, None).await;
    let alice = user(&store, &svc, "alice").await;
    let bob = user(&store, &svc, "bob").await;
    for ch in [&ch1, &ch2] {
        for u in [&alice, &bob] {
            store
                .create_member(
                    &member(ch, u, 2),
                    &WIDE,
                    None,
                    &parley_core::event::Origin::rest(),
                )
                .await
                .expect("join");
        }
    }
    let _ = user(&store, &svc, "carol").await;
    store
        .create_invite(
            &by_sid(&ch1),
            &invite(&ch1, "carol", 3),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("invite");
    store
        .create_message(
            &by_sid(&ch1),
            &message(&ch1, "alice", "x"),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("post");
    assert_eq!(fetch(&store, &ch1).await.members_count, 2);

    store
        .delete_user(
            &account,
            &svc.sid,
            &UserRef::Identity("alice".to_owned()),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("delete user");
    assert_eq!(fetch(&store, &ch1).await.members_count, 1);
    assert_eq!(fetch(&store, &ch2).await.members_count, 1);
    store
        .delete_user(
            &account,
            &svc.sid,
            &UserRef::Identity("carol".to_owned()),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("delete invited user");
    let invites = store
        .list_invites(
            &account,
            &svc.sid,
            &by_sid(&ch1),
            &[],
            &PageRequest::first(10),
        )
        .await
        .expect("invites");
    assert!(invites.items.is_empty(), "the invite went with its user");

    store
        .delete_channel(
            &account,
            &svc.sid,
            &by_sid(&ch1),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("delete channel");
    let left: (i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from members where channel_sid = $1),
                (select count(*) from messages where channel_sid = $1),
                (select count(*) from invites where channel_sid = $1)",
    )
    .bind(ch1.sid.as_str())
    .fetch_one(store.pool())
    .await
    .expect("counts");
    assert_eq!(left, (0, 0, 0));
    let counts = store
        .joined_channel_counts(&account, &svc.sid, &[alice.sid.clone(), bob.sid.clone()])
        .await
        .expect("counts");
    assert_eq!(counts, vec![(bob.sid.clone(), 1)]);
    assert!(matches!(
        store
            .list_members(
                &account,
                &svc.sid,
                &by_sid(&ch1),
                &[],
                &PageRequest::first(10)
            )
            .await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn messages_page_by_index_both_ways_and_deletes_move_the_last_message() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, None).await;
    let mut posted = Vec::new();
    for i in 0..7 {
        posted.push(
            store
                .create_message(
                    &by_sid(&ch),
                    &message(&ch, "a", &format!("{i}")),
                    &parley_core::event::Origin::rest(),
                )
                .await
                .expect("post"),
        );
    }
    let list = |order, page: PageRequest| {
        let store = store.clone();
        let (account, service, channel) = (account.clone(), svc.sid.clone(), by_sid(&ch));
        async move {
            let p = store
                .list_messages(&account, &service, &channel, order, &page)
                .await
                .expect("list");
            (
                p.items.iter().map(|m| m.index).collect::<Vec<i64>>(),
                p.more,
            )
        }
    };
    let cur = |index: i64, backwards: bool| PageRequest {
        size: 3,
        cursor: Some(Cursor {
            key: index,
            sid: posted[usize::try_from(index).expect("index")]
                .sid
                .to_string(),
            backwards,
        }),
    };
    assert_eq!(
        list(MessageOrder::Asc, PageRequest::first(3)).await,
        (vec![0, 1, 2], true)
    );
    assert_eq!(
        list(MessageOrder::Asc, cur(2, false)).await,
        (vec![3, 4, 5], true)
    );
    assert_eq!(
        list(MessageOrder::Asc, cur(5, false)).await,
        (vec![6], false)
    );
    assert_eq!(
        list(MessageOrder::Asc, cur(3, true)).await,
        (vec![0, 1, 2], false)
    );
    assert_eq!(
        list(MessageOrder::Desc, PageRequest::first(3)).await,
        (vec![6, 5, 4], true)
    );
    assert_eq!(
        list(MessageOrder::Desc, cur(4, false)).await,
        (vec![3, 2, 1], true)
    );
    assert_eq!(
        list(MessageOrder::Desc, cur(1, false)).await,
        (vec![0], false)
    );
    assert_eq!(
        list(MessageOrder::Desc, cur(3, true)).await,
        (vec![6, 5, 4], false)
    );
    assert_eq!(
        list(MessageOrder::Desc, cur(1, true)).await,
        (vec![4, 3, 2], true)
    );

    // Deleting the newest moves the last message back; indexes are never reused.
    store
        .delete_message(
            &account,
            &svc.sid,
            &by_sid(&ch),
            &posted[6].sid,
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("delete");
    let c = fetch(&store, &ch).await;
    assert_eq!(
        (c.messages_count, c.last_message_index, c.last_message_sid),
        (6, Some(5), Some(posted[5].sid.clone()))
    );
    store
        .delete_message(
            &account,
            &svc.sid,
            &by_sid(&ch),
            &posted[2].sid,
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("delete");
    assert_eq!(fetch(&store, &ch).await.last_message_index, Some(5));
    let next = store
        .create_message(
            &by_sid(&ch),
            &message(&ch, "a", "late"),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("post");
    assert_eq!(next.index, 7);
    assert_eq!(
        store.count_messages_after(&ch.sid, 3).await.expect("count"),
        3,
        "4, 5 and 7"
    );
    assert!(matches!(
        store
            .delete_message(
                &account,
                &svc.sid,
                &by_sid(&ch),
                &posted[2].sid,
                &parley_core::event::Origin::rest()
            )
            .await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn user_channels_merge_memberships_and_invites_with_unread_counts() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let u = user(&store, &svc, "erin").await;
    let mut chans = Vec::new();
    for _ in 0..5 {
        chans.push(channel(&store, &svc, None).await);
    }
    // Joined 0 (t=10), 2 (t=30), 4 (t=50); invited to 1 (t=20), 3 (t=40).
    for (i, ch) in chans.iter().enumerate() {
        let t = 10 * (i64::try_from(i).expect("i") + 1);
        if i % 2 == 0 {
            store
                .create_member(
                    &member(ch, &u, t),
                    &WIDE,
                    None,
                    &parley_core::event::Origin::rest(),
                )
                .await
                .expect("join");
        } else {
            store
                .create_invite(
                    &by_sid(ch),
                    &invite(ch, "erin", t),
                    &parley_core::event::Origin::rest(),
                )
                .await
                .expect("invite");
        }
    }
    for _ in 0..4 {
        store
            .create_message(
                &by_sid(&chans[2]),
                &message(&chans[2], "x", "m"),
                &parley_core::event::Origin::rest(),
            )
            .await
            .expect("post");
    }
    store
        .update_member(
            &account,
            &svc.sid,
            &by_sid(&chans[2]),
            &MemberRef::Identity("erin".to_owned()),
            &MemberUpdate {
                last_consumed_message_index: Some(Some(1)),
                ..MemberUpdate::default()
            },
            at(100),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("horizon");
    let user_ref = UserRef::Sid(u.sid.clone());
    let first = store
        .list_user_channels(&account, &svc.sid, &user_ref, &PageRequest::first(3))
        .await
        .expect("page 1");
    assert!(first.more);
    let sids: Vec<&ChannelSid> = first.items.iter().map(|c| &c.channel_sid).collect();
    assert_eq!(sids, vec![&chans[0].sid, &chans[1].sid, &chans[2].sid]);
    assert_eq!(first.items[0].status, UserChannelStatus::Joined);
    assert_eq!(first.items[0].unread_messages_count, None);
    assert_eq!(first.items[1].status, UserChannelStatus::Invited);
    assert_eq!(first.items[1].member_sid, None);
    assert_eq!(first.items[2].unread_messages_count, Some(2));
    assert_eq!(first.items[2].last_consumed_message_index, Some(1));
    let last = &first.items[2];
    let second = store
        .list_user_channels(
            &account,
            &svc.sid,
            &UserRef::Identity("erin".to_owned()),
            &PageRequest {
                size: 3,
                cursor: Some(Cursor {
                    key: last.date_created.unix_micros(),
                    sid: last.channel_sid.to_string(),
                    backwards: false,
                }),
            },
        )
        .await
        .expect("page 2");
    assert!(!second.more);
    let sids: Vec<&ChannelSid> = second.items.iter().map(|c| &c.channel_sid).collect();
    assert_eq!(sids, vec![&chans[3].sid, &chans[4].sid]);
    let back = store
        .list_user_channels(
            &account,
            &svc.sid,
            &user_ref,
            &PageRequest {
                size: 2,
                cursor: Some(Cursor {
                    key: second.items[0].date_created.unix_micros(),
                    sid: second.items[0].channel_sid.to_string(),
                    backwards: true,
                }),
            },
        )
        .await
        .expect("back");
    let sids: Vec<&ChannelSid> = back.items.iter().map(|c| &c.channel_sid).collect();
    assert_eq!(sids, vec![&chans[1].sid, &chans[2].sid]);
    assert!(back.more);

    let one = store
        .fetch_user_channel(&account, &svc.sid, &user_ref, &by_sid(&chans[3]))
        .await
        .expect("fetch invited");
    assert_eq!(one.status, UserChannelStatus::Invited);
    let none = store
        .fetch_user_channel(
            &account,
            &svc.sid,
            &user_ref,
            &by_sid(&channel(&store, &svc, None).await),
        )
        .await;
    assert!(matches!(none, Err(StoreError::NotFound)));
    // Another account sees nothing.
    assert!(matches!(
        store
            .list_user_channels(
                &AccountSid::generate(),
                &svc.sid,
                &user_ref,
                &PageRequest::first(3)
            )
            .await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn invites_conflict_with_invites_and_members_and_channel_names_are_unique() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let account = AccountSid::generate();
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, Some("lobby")).await;
    assert!(matches!(
        store
            .create_channel(
                &Channel {
                    sid: ChannelSid::generate(),
                    ..ch.clone()
                },
                &parley_core::event::Origin::rest()
            )
            .await,
        Err(StoreError::Conflict(Conflict::ChannelUniqueNameTaken))
    ));
    let u = user(&store, &svc, "frank").await;
    store
        .create_invite(
            &ChannelRef::UniqueName("lobby".to_owned()),
            &invite(&ch, "frank", 2),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("invite");
    assert!(matches!(
        store
            .create_invite(
                &by_sid(&ch),
                &invite(&ch, "frank", 3),
                &parley_core::event::Origin::rest()
            )
            .await,
        Err(StoreError::Conflict(Conflict::InviteExists))
    ));
    store
        .create_member(
            &member(&ch, &u, 4),
            &WIDE,
            None,
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("join");
    assert!(matches!(
        store
            .create_invite(
                &by_sid(&ch),
                &invite(&ch, "frank", 5),
                &parley_core::event::Origin::rest()
            )
            .await,
        Err(StoreError::Conflict(Conflict::MemberExists))
    ));
    let kinds: Vec<String> = sqlx::query_scalar(
        "select kind from events
         where kind in ('invited_to_channel', 'added_to_channel') order by seq",
    )
    .fetch_all(store.pool())
    .await
    .expect("kinds");
    let distinct: HashSet<&String> = kinds.iter().collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}: one invite, one join");
    assert_eq!(distinct.len(), 2);
}

/// Two nodes (two `PgStore`s, each with its own pool, on one schema) write to one service at
/// once — 2 × 4 tasks, each posting 25 messages into one of 4 channels and moving its member's
/// horizon every fifth post — while a reader on each node polls the log. Every seq from 1 to the
/// last is taken exactly once, and no reader ever sees a seq before all lower ones (a later seq
/// never commits first); within a channel, seq order is message-index order.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_nodes_writing_to_one_service_append_a_gapless_seq_in_commit_order() {
    use parley_core::event::Origin;
    use std::sync::atomic::{AtomicBool, Ordering};

    let Some(a) = fresh_pg().await else {
        return;
    };
    let a = Arc::new(a);
    let b = Arc::new(second_node(&a).await);
    let account = AccountSid::generate();
    let svc = service(&a, &account).await;
    let mut channels = Vec::new();
    for i in 0..4_i64 {
        let ch = channel(&a, &svc, Some(&format!("ch{i}"))).await;
        let u = user(&a, &svc, &format!("writer{i}")).await;
        a.create_member(&member(&ch, &u, i), &WIDE, None, &Origin::rest())
            .await
            .expect("join");
        channels.push((ch, u.identity));
    }
    let setup = a
        .list_events(&svc.sid, 0, 1000)
        .await
        .expect("setup events")
        .len();
    const TASKS_PER_NODE: usize = 4;
    const POSTS: usize = 25;
    let done = Arc::new(AtomicBool::new(false));

    let mut readers = Vec::new();
    for node in [Arc::clone(&a), Arc::clone(&b)] {
        let sid = svc.sid.clone();
        let done = Arc::clone(&done);
        readers.push(tokio::spawn(async move {
            let mut seen = 0i64;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let batch = node.list_events(&sid, seen, 1000).await.expect("poll");
                for e in &batch {
                    assert_eq!(e.seq, seen + 1, "seq {} visible before {}", e.seq, seen + 1);
                    seen = e.seq;
                }
                if finished && batch.is_empty() {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut writers = Vec::new();
    for t in 0..2 * TASKS_PER_NODE {
        let store = if t % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        let (ch, identity) = channels[t % channels.len()].clone();
        let account = account.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..POSTS {
                let posted = store
                    .create_message(
                        &by_sid(&ch),
                        &message(&ch, &identity, &format!("{t}-{i}")),
                        &Origin::rest(),
                    )
                    .await
                    .expect("post");
                if i % 5 == 4 {
                    store
                        .update_member(
                            &account,
                            &ch.service_sid,
                            &by_sid(&ch),
                            &MemberRef::Identity(identity.clone()),
                            &MemberUpdate {
                                last_consumed_message_index: Some(Some(posted.index)),
                                ..MemberUpdate::default()
                            },
                            Timestamp::now(),
                            &Origin::rest(),
                        )
                        .await
                        .expect("horizon");
                }
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    done.store(true, Ordering::SeqCst);

    let total = setup + 2 * TASKS_PER_NODE * (POSTS + POSTS / 5);
    let total = i64::try_from(total).expect("small");
    for r in readers {
        assert_eq!(
            r.await.expect("reader"),
            total,
            "each reader saw every event"
        );
    }
    let all = b.list_events(&svc.sid, 0, 10_000).await.expect("events");
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<i64>>());
    for (ch, _) in &channels {
        let indexes: Vec<i64> = all
            .iter()
            .filter(|e| e.kind == EventKind::NewMessage && e.channel_sid.as_ref() == Some(&ch.sid))
            .filter_map(|e| e.message_index)
            .collect();
        let n = i64::try_from(indexes.len()).expect("small");
        assert_eq!(
            indexes,
            (0..n).collect::<Vec<i64>>(),
            "index order = seq order"
        );
    }
    let last_seq: i64 =
        sqlx::query_scalar("select last_seq from event_seqs where service_sid = $1")
            .bind(svc.sid.as_str())
            .fetch_one(a.pool())
            .await
            .expect("event_seqs");
    assert_eq!(last_seq, total);
    assert_outbox_matches_events(&a).await;
}
