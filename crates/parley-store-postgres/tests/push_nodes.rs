//! PostgreSQL-only push checks, next to the shared conformance suite (which covers every
//! `PushStore` behaviour on both backends, see `parley_core::store::testsuite::push`):
//! * two "nodes" (two `PgStore`s with their own pools on one schema) claiming at once get
//!   disjoint claims that cover everything (`FOR UPDATE SKIP LOCKED`). This needs a second
//!   store on the same database, which the suite's factory (one fresh, isolated store per case)
//!   cannot give, and several nodes on one database is a PostgreSQL-only deployment;
//! * a retried delivery keeps its error text (`last_error`), a column no `PushStore` method
//!   reads back, so only SQL can see it.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use parley_core::binding::{Binding, NewBinding};
use parley_core::channel::{
    Channel, ChannelRef, ChannelType, Member, MemberLimits, Message, NotificationLevel,
};
use parley_core::credential::PushType;
use parley_core::event::Event;
use parley_core::push::{NewDelivery, Settle};
use parley_core::service::{NewService, Service};
use parley_core::store::{
    BindingStore, ChannelStore, EventStore, MemberStore, MessageStore, PushStore, ServiceStore,
    UserStore,
};
use parley_core::user::User;
use parley_core::{AccountSid, BindingSid, ChannelSid, MemberSid, MessageSid, Timestamp, UserSid};
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

const ALL_TYPES: [&str; 4] = [
    "new_message",
    "added_to_channel",
    "invited_to_channel",
    "removed_from_channel",
];

/// Well after every event written by the test so far (events carry the real clock).
fn soon() -> Timestamp {
    Timestamp::now().plus_secs(5)
}

async fn service(store: &PgStore, account: &AccountSid) -> Service {
    store
        .create_service(&NewService::with_defaults(account, "push", at(0)))
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

async fn channel(store: &PgStore, service: &Service, friendly_name: &str) -> Channel {
    store
        .create_channel(
            &Channel {
                sid: ChannelSid::generate(),
                account_sid: service.account_sid.clone(),
                service_sid: service.sid.clone(),
                friendly_name: Some(friendly_name.to_owned()),
                unique_name: None,
                attributes: None,
                channel_type: ChannelType::Private,
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

async fn join(store: &PgStore, channel: &Channel, user: &User, level: NotificationLevel) -> Member {
    store
        .create_member(
            &Member {
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
                notification_level: level,
                date_created: at(2),
                date_updated: at(2),
            },
            &WIDE,
            Some("admin"),
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("join")
}

async fn post(store: &PgStore, channel: &Channel, from: &str, body: &str) -> Message {
    store
        .create_message(
            &ChannelRef::Sid(channel.sid.clone()),
            &Message {
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
            },
            &parley_core::event::Origin::rest(),
        )
        .await
        .expect("post")
}

async fn register(store: &PgStore, user: &User, address: &str, types: &[&str]) -> Binding {
    store
        .register_binding(&NewBinding {
            sid: BindingSid::generate(),
            account_sid: user.account_sid.clone(),
            service_sid: user.service_sid.clone(),
            user_sid: user.sid.clone(),
            identity: user.identity.clone(),
            credential_sid: None,
            binding_type: PushType::Fcm,
            endpoint: format!("endpoint-{address}"),
            address: address.to_owned(),
            message_types: types.iter().map(|t| (*t).to_owned()).collect(),
            now: at(3),
            max_per_user: 1000,
        })
        .await
        .expect("register binding")
        .binding
}

/// The service's events of the push kinds, in seq order.
async fn events(store: &PgStore, service: &Service) -> Vec<Event> {
    store
        .list_events(&service.sid, 0, 100_000)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.kind.is_push())
        .collect()
}

/// The newest event of the service.
async fn last_event(store: &PgStore, service: &Service) -> Event {
    events(store, service).await.pop().expect("an event")
}

fn delivery(event: &Event, binding: &Binding, available_at: Timestamp) -> NewDelivery {
    NewDelivery {
        id: format!("{}:{}", event.id, binding.sid),
        event_id: event.id,
        account_sid: binding.account_sid.clone(),
        service_sid: binding.service_sid.clone(),
        binding_sid: binding.sid.clone(),
        credential_sid: binding.credential_sid.clone(),
        binding_type: binding.binding_type,
        address: binding.address.clone(),
        identity: binding.identity.clone(),
        payload: format!("{{\"body\":{:?}}}", event.body.clone().unwrap_or_default()),
        event_at: event.date_created,
        available_at,
    }
}

async fn count(store: &PgStore, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .expect("count")
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

/// A service with one channel, one member `alice`, and her binding.
struct World {
    store: PgStore,
    svc: Service,
    ch: Channel,
    alice: User,
}

async fn world() -> Option<World> {
    let store = fresh_pg().await?;
    let svc = service(&store, &AccountSid::generate()).await;
    let ch = channel(&store, &svc, "general").await;
    let alice = user(&store, &svc, "alice").await;
    join(&store, &ch, &alice, NotificationLevel::Default).await;
    Some(World {
        store,
        svc,
        ch,
        alice,
    })
}

/// `tasks` claimers per node on two nodes, claiming `batch` at a time until nothing is left.
/// Returns each claimer's claimed keys.
async fn claim_all_concurrently<F, Fut>(
    a: &Arc<PgStore>,
    b: &Arc<PgStore>,
    tasks: usize,
    claim: F,
) -> Vec<Vec<String>>
where
    F: Fn(Arc<PgStore>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Vec<String>> + Send,
{
    let mut handles = Vec::new();
    for i in 0..tasks * 2 {
        let store = if i % 2 == 0 {
            Arc::clone(a)
        } else {
            Arc::clone(b)
        };
        let claim = claim.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = claim(Arc::clone(&store)).await;
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got);
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("join"));
    }
    out
}

fn assert_disjoint_cover(claims: &[Vec<String>], expected: &BTreeSet<String>) {
    let total: usize = claims.iter().map(Vec::len).sum();
    let union: BTreeSet<String> = claims.iter().flatten().cloned().collect();
    assert_eq!(total, union.len(), "some row was claimed twice");
    assert_eq!(&union, expected, "claims must cover every row");
    assert!(
        claims.iter().filter(|c| !c.is_empty()).count() > 1,
        "more than one claimer got work"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn outbox_claims_on_two_nodes_are_disjoint_and_cover_everything() {
    let Some(w) = world().await else {
        return;
    };
    for i in 0..199 {
        post(&w.store, &w.ch, "alice", &format!("m{i}")).await;
    }
    let expected: BTreeSet<String> = events(&w.store, &w.svc)
        .await
        .iter()
        .map(|e| e.id.to_string())
        .collect();
    assert_eq!(expected.len(), 200, "199 messages and alice's join");
    assert_eq!(
        count(&w.store, "select count(*) from push_outbox").await,
        200
    );

    let a = Arc::new(w.store);
    let b = Arc::new(second_node(&a).await);
    let now = soon();
    let claims = claim_all_concurrently(&a, &b, 4, move |s: Arc<PgStore>| async move {
        let items = s
            .claim_outbox(now, now.plus_secs(300), 7)
            .await
            .expect("claim outbox");
        assert!(items.len() <= 7);
        assert!(items.iter().all(|i| i.attempts == 0));
        items.iter().map(|i| i.event.id.to_string()).collect()
    })
    .await;
    assert_disjoint_cover(&claims, &expected);

    // Leased: nothing more to claim until the lease runs out.
    assert!(a
        .claim_outbox(now.plus_secs(1), now.plus_secs(400), 1000)
        .await
        .expect("claim")
        .is_empty());
    let (outbox, deliveries) = a.push_queue_depth().await.expect("depth");
    assert_eq!((outbox, deliveries), (200, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn delivery_claims_on_two_nodes_are_disjoint_and_cover_everything() {
    let Some(w) = world().await else {
        return;
    };
    let mut bindings = Vec::new();
    for i in 0..200 {
        bindings.push(register(&w.store, &w.alice, &format!("token-{i}"), &ALL_TYPES).await);
    }
    post(&w.store, &w.ch, "bob", "hello").await;
    let event = last_event(&w.store, &w.svc).await;
    let t = Timestamp::now();
    let new: Vec<NewDelivery> = bindings.iter().map(|b| delivery(&event, b, t)).collect();
    w.store
        .complete_fanout(event.id, &new)
        .await
        .expect("fan-out");
    let expected: BTreeSet<String> = new.iter().map(|d| d.id.clone()).collect();

    let a = Arc::new(w.store);
    let b = Arc::new(second_node(&a).await);
    let now = soon();
    let claims = claim_all_concurrently(&a, &b, 4, move |s: Arc<PgStore>| async move {
        let got = s
            .claim_deliveries(now, now.plus_secs(300), 9)
            .await
            .expect("claim deliveries");
        assert!(got.len() <= 9);
        assert!(got.iter().all(|d| d.attempts == 0));
        got.iter().map(|d| d.new.id.clone()).collect()
    })
    .await;
    assert_disjoint_cover(&claims, &expected);
    assert!(a
        .claim_deliveries(now.plus_secs(1), now.plus_secs(400), 1000)
        .await
        .expect("claim")
        .is_empty());
}

async fn delivery_row(store: &PgStore, id: &str) -> Option<(i64, Option<i64>, Option<String>)> {
    sqlx::query_as(
        "select available_at, lease_until, last_error from push_deliveries where id = $1",
    )
    .bind(id)
    .fetch_optional(store.pool())
    .await
    .expect("delivery row")
}

/// A retry releases the lease, postpones the delivery and records the provider's error.
#[tokio::test]
async fn a_retried_delivery_keeps_its_error() {
    let Some(w) = world().await else {
        return;
    };
    let store = &w.store;
    let b = register(store, &w.alice, "tok-1", &ALL_TYPES).await;
    post(store, &w.ch, "bob", "m").await;
    let ev = last_event(store, &w.svc).await;
    let now = soon();
    store
        .complete_fanout(ev.id, &[delivery(&ev, &b, now)])
        .await
        .expect("fan-out");
    assert_eq!(
        store
            .claim_deliveries(now, now.plus_secs(1000), 10)
            .await
            .expect("claim")
            .len(),
        1
    );
    let id = format!("{}:{}", ev.id, b.sid);

    store
        .settle_delivery(
            &id,
            &Settle::Retry {
                at: now.plus_secs(60),
                error: "503 unavailable".to_owned(),
            },
        )
        .await
        .expect("retry");

    assert_eq!(
        delivery_row(store, &id).await,
        Some((
            now.plus_secs(60).unix_micros(),
            None,
            Some("503 unavailable".to_owned())
        ))
    );
}
