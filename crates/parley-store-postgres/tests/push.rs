//! PostgreSQL push delivery state: claims that stay exclusive across concurrent callers and
//! several "nodes" (two `PgStore`s on one schema), leases that expire, fan-out recipients,
//! idempotent fan-out completion, settle outcomes, the APNs badge and the delivery log.
//! Data is built through the public store API, so every event comes with its outbox row.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use parley_core::binding::{Binding, NewBinding};
use parley_core::channel::{
    Channel, ChannelRef, ChannelType, Invite, Member, MemberLimits, MemberRef, MemberUpdate,
    Message, NotificationLevel,
};
use parley_core::credential::PushType;
use parley_core::event::{Event, EventKind};
use parley_core::paging::{Cursor, PageRequest};
use parley_core::push::{NewDelivery, PushLogEntry, Settle};
use parley_core::service::{NewService, Service};
use parley_core::store::{
    BindingStore, ChannelStore, EventStore, InviteStore, MemberStore, MessageStore, PushStore,
    ServiceStore, StoreError, UserStore,
};
use parley_core::user::User;
use parley_core::{
    AccountSid, BindingSid, ChannelSid, InviteSid, MemberSid, MessageSid, Timestamp, UserSid,
};
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
        .create_user(&User {
            sid: UserSid::generate(),
            account_sid: service.account_sid.clone(),
            service_sid: service.sid.clone(),
            identity: identity.to_owned(),
            friendly_name: None,
            attributes: None,
            role_sid: None,
            date_created: at(0),
            date_updated: at(0),
        })
        .await
        .expect("create user")
}

async fn channel(store: &PgStore, service: &Service, friendly_name: &str) -> Channel {
    store
        .create_channel(&Channel {
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
        })
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

async fn events(store: &PgStore, service: &Service) -> Vec<Event> {
    store
        .list_events(&service.sid, 0, 100_000)
        .await
        .expect("events")
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

#[tokio::test]
async fn claimed_rows_come_back_with_everything_and_in_order() {
    let Some(w) = world().await else {
        return;
    };
    let binding = register(&w.store, &w.alice, "tok", &ALL_TYPES).await;
    let m = post(&w.store, &w.ch, "bob", "hi there").await;
    let evs = events(&w.store, &w.svc).await;
    let now = soon();
    let items = w
        .store
        .claim_outbox(now, now.plus_secs(30), 10)
        .await
        .expect("claim");
    let got: Vec<Event> = items.iter().map(|i| i.event.clone()).collect();
    assert_eq!(got, evs, "full events, oldest first");
    let msg = &items[1].event;
    assert_eq!(msg.kind, EventKind::NewMessage);
    assert_eq!(msg.message_sid.as_ref(), Some(&m.sid));
    assert_eq!(msg.body.as_deref(), Some("hi there"));
    assert_eq!(msg.actor.as_deref(), Some("bob"));

    // Deliveries: due ones only, oldest first, every field back.
    let mut later = delivery(msg, &binding, now.plus_secs(100));
    later.id = format!("{}:later", msg.id);
    let first = delivery(msg, &binding, now.plus_secs(-2));
    let mut second = delivery(&items[0].event, &binding, now.plus_secs(-1));
    second.credential_sid = None;
    w.store
        .complete_fanout(msg.id, &[later.clone(), second.clone(), first.clone()])
        .await
        .expect("fan-out");
    let got = w
        .store
        .claim_deliveries(now, now.plus_secs(30), 10)
        .await
        .expect("claim");
    let got: Vec<NewDelivery> = got.into_iter().map(|d| d.new).collect();
    assert_eq!(got, vec![first, second]);
}

#[tokio::test]
async fn an_expired_lease_makes_outbox_and_deliveries_claimable_again() {
    let Some(w) = world().await else {
        return;
    };
    let binding = register(&w.store, &w.alice, "tok", &ALL_TYPES).await;
    let now = soon();
    let first = w
        .store
        .claim_outbox(now, now.plus_secs(10), 10)
        .await
        .expect("claim");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempts, 0);
    let event = first[0].event.clone();

    // Still leased (also exactly at the lease end: `lease_until < now` frees it).
    for t in [5, 10] {
        assert!(w
            .store
            .claim_outbox(now.plus_secs(t), now.plus_secs(t + 10), 10)
            .await
            .expect("claim")
            .is_empty());
    }
    // The claimer "crashed": after the lease, someone else gets it, with the attempt counted.
    let again = w
        .store
        .claim_outbox(now.plus_secs(11), now.plus_secs(21), 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event, event);
    assert_eq!(again[0].attempts, 1);

    // retry_outbox releases the lease and postpones.
    w.store
        .retry_outbox(event.id, now.plus_secs(60))
        .await
        .expect("retry");
    assert!(w
        .store
        .claim_outbox(now.plus_secs(59), now.plus_secs(100), 10)
        .await
        .expect("claim")
        .is_empty());
    let third = w
        .store
        .claim_outbox(now.plus_secs(60), now.plus_secs(100), 10)
        .await
        .expect("claim");
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].attempts, 2);

    // Same for deliveries.
    w.store
        .complete_fanout(event.id, &[delivery(&event, &binding, now)])
        .await
        .expect("fan-out");
    let d1 = w
        .store
        .claim_deliveries(now, now.plus_secs(10), 10)
        .await
        .expect("claim");
    assert_eq!(d1.len(), 1);
    assert_eq!(d1[0].attempts, 0);
    assert!(w
        .store
        .claim_deliveries(now.plus_secs(10), now.plus_secs(20), 10)
        .await
        .expect("claim")
        .is_empty());
    let d2 = w
        .store
        .claim_deliveries(now.plus_secs(11), now.plus_secs(20), 10)
        .await
        .expect("claim");
    assert_eq!(d2.len(), 1);
    assert_eq!(d2[0].attempts, 1);
    assert_eq!(d2[0].new, d1[0].new);
    // retry of a completed outbox entry: nothing to do.
    w.store
        .retry_outbox(event.id, now)
        .await
        .expect("retry gone");
}

fn sids(recipients: &[parley_core::push::Recipient]) -> BTreeSet<BindingSid> {
    recipients.iter().map(|r| r.binding.sid.clone()).collect()
}

#[tokio::test]
async fn recipients_exclude_the_author_muted_members_and_unsubscribed_bindings() {
    let Some(w) = world().await else {
        return;
    };
    let (store, svc, ch) = (&w.store, &w.svc, &w.ch);
    let alice_b = register(store, &w.alice, "alice-1", &ALL_TYPES).await;
    let bob = user(store, svc, "bob").await;
    join(store, ch, &bob, NotificationLevel::Default).await;
    let bob_1 = register(store, &bob, "bob-1", &ALL_TYPES).await;
    let bob_2 = register(store, &bob, "bob-2", &["new_message"]).await;
    let carol = user(store, svc, "carol").await;
    join(store, ch, &carol, NotificationLevel::Muted).await;
    register(store, &carol, "carol-1", &ALL_TYPES).await;
    let dave = user(store, svc, "dave").await;
    join(store, ch, &dave, NotificationLevel::Default).await;
    let dave_1 = register(store, &dave, "dave-1", &["added_to_channel"]).await;
    let erin = user(store, svc, "erin").await; // member without devices
    join(store, ch, &erin, NotificationLevel::Default).await;
    let frank = user(store, svc, "frank").await; // not a member
    let frank_1 = register(store, &frank, "frank-1", &ALL_TYPES).await;
    // Another channel's member and another service's "bob" get nothing.
    let other = channel(store, svc, "other").await;
    join(store, &other, &frank, NotificationLevel::Default).await;
    let svc2 = service(store, &svc.account_sid).await;
    let bob_elsewhere = user(store, &svc2, "bob").await;
    register(store, &bob_elsewhere, "bob-elsewhere", &ALL_TYPES).await;

    // new_message by alice: bob's two devices only.
    post(store, ch, "alice", "hi").await;
    let ev = last_event(store, svc).await;
    assert_eq!(ev.kind, EventKind::NewMessage);
    let r = store.recipients(&ev).await.expect("recipients");
    assert_eq!(
        sids(&r),
        BTreeSet::from([bob_1.sid.clone(), bob_2.sid.clone()])
    );
    assert!(r.iter().all(|x| x.binding.identity == "bob"));

    // new_message by someone who is not a member (system): alice too.
    post(store, ch, "system", "announcement").await;
    let ev = last_event(store, svc).await;
    let r = store.recipients(&ev).await.expect("recipients");
    assert_eq!(
        sids(&r),
        BTreeSet::from([alice_b.sid.clone(), bob_1.sid.clone(), bob_2.sid.clone()])
    );

    // Muting bob silences him.
    store
        .update_member(
            &svc.account_sid,
            &svc.sid,
            &ChannelRef::Sid(ch.sid.clone()),
            &MemberRef::Identity("bob".to_owned()),
            &MemberUpdate {
                notification_level: Some(NotificationLevel::Muted),
                ..MemberUpdate::default()
            },
            Timestamp::now(),
        )
        .await
        .expect("mute bob");
    post(store, ch, "dave", "anyone?").await;
    let ev = last_event(store, svc).await;
    let r = store.recipients(&ev).await.expect("recipients");
    assert_eq!(sids(&r), BTreeSet::from([alice_b.sid.clone()]));

    // added_to_channel: dave's join went to his added-subscribed device.
    let added_dave = events(store, svc)
        .await
        .into_iter()
        .find(|e| e.kind == EventKind::AddedToChannel && e.identity.as_deref() == Some("dave"))
        .expect("dave's join event");
    let r = store.recipients(&added_dave).await.expect("recipients");
    assert_eq!(sids(&r), BTreeSet::from([dave_1.sid.clone()]));
    // carol joined muted: nothing.
    let added_carol = events(store, svc)
        .await
        .into_iter()
        .find(|e| e.kind == EventKind::AddedToChannel && e.identity.as_deref() == Some("carol"))
        .expect("carol's join event");
    assert!(store.recipients(&added_carol).await.expect("r").is_empty());

    // invited_to_channel: the invitee's devices (never muted).
    store
        .create_invite(
            &ChannelRef::Sid(ch.sid.clone()),
            &Invite {
                sid: InviteSid::generate(),
                account_sid: svc.account_sid.clone(),
                service_sid: svc.sid.clone(),
                channel_sid: ch.sid.clone(),
                identity: "frank".to_owned(),
                role_sid: None,
                created_by: Some("alice".to_owned()),
                date_created: at(5),
                date_updated: at(5),
            },
        )
        .await
        .expect("invite");
    let ev = last_event(store, svc).await;
    assert_eq!(ev.kind, EventKind::InvitedToChannel);
    let r = store.recipients(&ev).await.expect("recipients");
    assert_eq!(sids(&r), BTreeSet::from([frank_1.sid.clone()]));

    // removed_from_channel: alice's device (subscribed); dave's device is not subscribed.
    for who in ["alice", "dave"] {
        store
            .delete_member(
                &svc.account_sid,
                &svc.sid,
                &ChannelRef::Sid(ch.sid.clone()),
                &MemberRef::Identity(who.to_owned()),
                Some("admin"),
                Timestamp::now(),
            )
            .await
            .expect("remove");
    }
    let evs = events(store, svc).await;
    let removed: Vec<&Event> = evs
        .iter()
        .filter(|e| e.kind == EventKind::RemovedFromChannel)
        .collect();
    assert_eq!(removed.len(), 2);
    let r = store.recipients(removed[0]).await.expect("recipients");
    assert_eq!(sids(&r), BTreeSet::from([alice_b.sid.clone()]));
    assert!(store.recipients(removed[1]).await.expect("r").is_empty());
}

#[tokio::test]
async fn complete_fanout_is_idempotent_and_drops_vanished_bindings() {
    let Some(w) = world().await else {
        return;
    };
    let b1 = register(&w.store, &w.alice, "tok-1", &ALL_TYPES).await;
    let b2 = register(&w.store, &w.alice, "tok-2", &ALL_TYPES).await;
    let now = soon();
    let item = w
        .store
        .claim_outbox(now, now.plus_secs(30), 10)
        .await
        .expect("claim")
        .pop()
        .expect("one event");
    let event = item.event;
    let mut deliveries = vec![delivery(&event, &b1, now), delivery(&event, &b2, now)];
    // A binding deleted after the recipients were read.
    let mut gone = delivery(&event, &b2, now);
    gone.binding_sid = BindingSid::generate();
    gone.id = format!("{}:{}", event.id, gone.binding_sid);
    deliveries.push(gone);

    w.store
        .complete_fanout(event.id, &deliveries)
        .await
        .expect("fan-out");
    assert_eq!(w.store.push_queue_depth().await.expect("depth"), (0, 2));
    // A second completion (e.g. by a node whose lease had run out) changes nothing...
    let mut changed = deliveries.clone();
    changed[0].payload = "changed".to_owned();
    w.store
        .complete_fanout(event.id, &changed)
        .await
        .expect("fan-out again");
    assert_eq!(w.store.push_queue_depth().await.expect("depth"), (0, 2));
    let got = w
        .store
        .claim_deliveries(now, now.plus_secs(30), 10)
        .await
        .expect("claim");
    let mut got: Vec<NewDelivery> = got.into_iter().map(|d| d.new).collect();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    let mut want = deliveries[..2].to_vec();
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got, want, "the first payload stays");
    // ...and an event with no recipients just leaves the outbox.
    post(&w.store, &w.ch, "alice", "to nobody").await;
    let ev = last_event(&w.store, &w.svc).await;
    w.store.complete_fanout(ev.id, &[]).await.expect("empty");
    assert_eq!(w.store.push_queue_depth().await.expect("depth"), (0, 2));
}

#[tokio::test]
async fn complete_fanout_of_ten_thousand_deliveries_is_fast() {
    let Some(w) = world().await else {
        return;
    };
    post(&w.store, &w.ch, "bob", "to everyone").await;
    let event = last_event(&w.store, &w.svc).await;
    // 10,000 devices of alice, inserted directly (registration is not what is measured here).
    let sids: Vec<String> = (0..10_000)
        .map(|_| BindingSid::generate().to_string())
        .collect();
    let addresses: Vec<String> = (0..10_000).map(|i| format!("token-{i}")).collect();
    sqlx::query(
        "insert into bindings (sid, account_sid, service_sid, user_sid, identity, binding_type,
                               endpoint, address, message_types, date_created, date_updated)
         select s, $3, $4, $5, 'alice', 'apn', 'e-' || a, a, '[\"new_message\"]', 0, 0
         from unnest($1::text[], $2::text[]) as u(s, a)",
    )
    .bind(&sids)
    .bind(&addresses)
    .bind(w.svc.account_sid.as_str())
    .bind(w.svc.sid.as_str())
    .bind(w.alice.sid.as_str())
    .execute(w.store.pool())
    .await
    .expect("bulk bindings");
    let r = w.store.recipients(&event).await.expect("recipients");
    assert_eq!(r.len(), 10_000);
    let now = Timestamp::now();
    let deliveries: Vec<NewDelivery> = r
        .iter()
        .map(|x| delivery(&event, &x.binding, now))
        .collect();
    let started = Instant::now();
    w.store
        .complete_fanout(event.id, &deliveries)
        .await
        .expect("fan-out");
    let took = started.elapsed();
    eprintln!("complete_fanout(10,000): {took:?}");
    assert!(took.as_secs() < 5, "took {took:?}");
    assert_eq!(
        count(&w.store, "select count(*) from push_deliveries").await,
        10_000
    );
    let outbox: i64 = sqlx::query_scalar("select count(*) from push_outbox where event_id = $1")
        .bind(event.id)
        .fetch_one(w.store.pool())
        .await
        .expect("count");
    assert_eq!(outbox, 0);
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

async fn binding_exists(store: &PgStore, sid: &BindingSid) -> bool {
    let n: i64 = sqlx::query_scalar("select count(*) from bindings where sid = $1")
        .bind(sid.as_str())
        .fetch_one(store.pool())
        .await
        .expect("count");
    n == 1
}

#[tokio::test]
async fn settle_delivered_failed_retry_and_dead_token() {
    let Some(w) = world().await else {
        return;
    };
    let store = &w.store;
    let b1 = register(store, &w.alice, "tok-1", &ALL_TYPES).await;
    let b2 = register(store, &w.alice, "tok-2", &ALL_TYPES).await;
    let mut evs = Vec::new();
    for i in 0..3 {
        post(store, &w.ch, "bob", &format!("m{i}")).await;
        evs.push(last_event(store, &w.svc).await);
    }
    let now = soon();
    for e in &evs {
        store
            .complete_fanout(e.id, &[delivery(e, &b1, now), delivery(e, &b2, now)])
            .await
            .expect("fan-out");
    }
    assert_eq!(store.push_queue_depth().await.expect("depth").1, 6);
    // Leased well past every time used below: only settled rows come back.
    let claimed = store
        .claim_deliveries(now, now.plus_secs(1000), 100)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 6);
    let id = |e: &Event, b: &Binding| format!("{}:{}", e.id, b.sid);

    store
        .settle_delivery(&id(&evs[0], &b1), &Settle::Delivered)
        .await
        .expect("delivered");
    assert!(delivery_row(store, &id(&evs[0], &b1)).await.is_none());
    store
        .settle_delivery(
            &id(&evs[0], &b2),
            &Settle::Failed {
                error: "400 bad payload".to_owned(),
            },
        )
        .await
        .expect("failed");
    assert!(delivery_row(store, &id(&evs[0], &b2)).await.is_none());
    // Settling a row that is gone is a no-op.
    store
        .settle_delivery(&id(&evs[0], &b2), &Settle::Delivered)
        .await
        .expect("settle again");

    // Retry: lease released, postponed, error kept; claimable at `at`, not before.
    let retry_id = id(&evs[1], &b1);
    store
        .settle_delivery(
            &retry_id,
            &Settle::Retry {
                at: now.plus_secs(60),
                error: "503 unavailable".to_owned(),
            },
        )
        .await
        .expect("retry");
    assert_eq!(
        delivery_row(store, &retry_id).await,
        Some((
            now.plus_secs(60).unix_micros(),
            None,
            Some("503 unavailable".to_owned())
        ))
    );
    assert!(store
        .claim_deliveries(now.plus_secs(59), now.plus_secs(100), 100)
        .await
        .expect("claim")
        .is_empty());
    let again = store
        .claim_deliveries(now.plus_secs(60), now.plus_secs(100), 100)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].new.id, retry_id);
    assert_eq!(again[0].attempts, 1);

    // Dead token: the delivery, the binding and the binding's other deliveries go.
    store
        .settle_delivery(
            &id(&evs[1], &b2),
            &Settle::DeadToken {
                reason: "Unregistered".to_owned(),
            },
        )
        .await
        .expect("dead token");
    assert!(!binding_exists(store, &b2.sid).await);
    assert!(binding_exists(store, &b1.sid).await);
    let left: BTreeSet<String> = sqlx::query_scalar("select id from push_deliveries")
        .fetch_all(store.pool())
        .await
        .expect("ids")
        .into_iter()
        .collect();
    assert_eq!(
        left,
        BTreeSet::from([id(&evs[1], &b1), id(&evs[2], &b1)]),
        "only b1's deliveries are left"
    );

    // A dead token reported for a binding that has re-registered with a fresh token since:
    // the delivery goes, the binding (now holding a live token) stays.
    let stale_id = id(&evs[2], &b1);
    sqlx::query("update bindings set address = 'tok-1-fresh' where sid = $1")
        .bind(b1.sid.as_str())
        .execute(store.pool())
        .await
        .expect("refresh token");
    store
        .settle_delivery(
            &stale_id,
            &Settle::DeadToken {
                reason: "BadDeviceToken".to_owned(),
            },
        )
        .await
        .expect("dead token");
    assert!(delivery_row(store, &stale_id).await.is_none());
    assert!(binding_exists(store, &b1.sid).await);
    // Outbox: alice's join event is still waiting (the three messages were fanned out).
    assert_eq!(store.push_queue_depth().await.expect("depth"), (1, 1));
}

async fn consume(store: &PgStore, ch: &Channel, identity: &str, index: Option<i64>) {
    store
        .update_member(
            &ch.account_sid,
            &ch.service_sid,
            &ChannelRef::Sid(ch.sid.clone()),
            &MemberRef::Identity(identity.to_owned()),
            &MemberUpdate {
                last_consumed_message_index: Some(index),
                ..MemberUpdate::default()
            },
            Timestamp::now(),
        )
        .await
        .expect("consume");
}

#[tokio::test]
async fn badge_counts_unread_two_member_channels() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let svc = service(&store, &AccountSid::generate()).await;
    let alice = user(&store, &svc, "alice").await;
    let bob = user(&store, &svc, "bob").await;
    let carol = user(&store, &svc, "carol").await;
    let badge = |identity: &'static str| {
        let store = &store;
        let svc = &svc;
        async move { store.badge_count(&svc.sid, identity).await.expect("badge") }
    };
    assert_eq!(badge("alice").await, 0);
    assert_eq!(badge("nobody").await, 0);

    // Two one-to-one channels with alice, one group, one empty one-to-one.
    let ab = channel(&store, &svc, "ab").await;
    let ac = channel(&store, &svc, "ac").await;
    let group = channel(&store, &svc, "group").await;
    let empty = channel(&store, &svc, "empty").await;
    for (ch, users) in [
        (&ab, vec![&alice, &bob]),
        (&ac, vec![&alice, &carol]),
        (&group, vec![&alice, &bob, &carol]),
        (&empty, vec![&alice, &bob]),
    ] {
        for u in users {
            join(&store, ch, u, NotificationLevel::Default).await;
        }
    }
    assert_eq!(badge("alice").await, 0, "no messages yet");
    post(&store, &ab, "bob", "1").await;
    post(&store, &ab, "bob", "2").await;
    post(&store, &group, "bob", "g").await;
    // No horizon yet and the channel has messages: unread.
    assert_eq!(badge("alice").await, 1);
    assert_eq!(badge("bob").await, 1);
    post(&store, &ac, "carol", "hey").await;
    assert_eq!(badge("alice").await, 2);
    assert_eq!(badge("carol").await, 1);

    consume(&store, &ab, "alice", Some(0)).await;
    assert_eq!(badge("alice").await, 2, "index 1 still unread");
    consume(&store, &ab, "alice", Some(1)).await;
    assert_eq!(badge("alice").await, 1);
    consume(&store, &ac, "alice", Some(0)).await;
    assert_eq!(badge("alice").await, 0);
    post(&store, &ac, "carol", "again").await;
    assert_eq!(badge("alice").await, 1);

    // Another service's alice is someone else.
    let svc2 = service(&store, &svc.account_sid).await;
    user(&store, &svc2, "alice").await;
    assert_eq!(store.badge_count(&svc2.sid, "alice").await.expect("b"), 0);
}

fn log_entry(svc: &Service, n: i64, date_created: Timestamp) -> PushLogEntry {
    PushLogEntry {
        seq: 0,
        id: format!("{n}:BS00000000000000000000000000000000"),
        account_sid: svc.account_sid.clone(),
        service_sid: svc.sid.clone(),
        event_id: n,
        kind: "new_message".to_owned(),
        binding_sid: BindingSid::parse("BS00000000000000000000000000000000").expect("sid"),
        identity: "alice".to_owned(),
        binding_type: PushType::Apn,
        outcome: if n % 2 == 0 { "delivered" } else { "retrying" }.to_owned(),
        reason: (n % 2 == 1).then(|| "503".to_owned()),
        attempt: 1,
        date_created,
    }
}

/// The cursor of a listed log entry.
fn log_cursor(entry: &PushLogEntry, backwards: bool) -> Cursor {
    Cursor {
        key: entry.date_created.unix_micros(),
        sid: format!("{:020}", entry.seq),
        backwards,
    }
}

/// `entries` with the store-assigned `seq` cleared, to compare with what was appended.
fn without_seq(entries: &[PushLogEntry]) -> Vec<PushLogEntry> {
    entries
        .iter()
        .map(|e| PushLogEntry {
            seq: 0,
            ..e.clone()
        })
        .collect()
}

#[tokio::test]
async fn push_log_pages_by_date_and_seq_and_prunes() {
    let Some(store) = fresh_pg().await else {
        return;
    };
    let svc = service(&store, &AccountSid::generate()).await;
    let other = service(&store, &svc.account_sid).await;
    // Seven rows, several in the same microsecond, appended out of date order.
    let dates = [3, 1, 1, 2, 1, 3, 0];
    let mut want = Vec::new();
    for (n, d) in dates.iter().enumerate() {
        let e = log_entry(&svc, n as i64, at(*d));
        store.append_push_log(&e).await.expect("append");
        want.push(e);
    }
    store
        .append_push_log(&log_entry(&other, 99, at(1)))
        .await
        .expect("append other");
    // List order: by date, then by append order within a date.
    want.sort_by_key(|e| (e.date_created, e.event_id));

    // Forward in pages of 3.
    let mut got = Vec::new();
    let mut page = PageRequest::first(3);
    loop {
        let p = store
            .list_push_log(&svc.account_sid, &svc.sid, &page)
            .await
            .expect("list");
        got.extend(p.items);
        if !p.more {
            break;
        }
        page.cursor = got.last().map(|e| log_cursor(e, false));
    }
    assert_eq!(without_seq(&got), want);
    assert!(got.iter().all(|e| e.seq > 0));
    assert!(
        got.windows(2)
            .all(|w| w[0].seq < w[1].seq || w[0].date_created < w[1].date_created),
        "seq breaks ties in append order"
    );
    // Backwards from the last row.
    let back = PageRequest {
        size: 3,
        cursor: Some(log_cursor(&got[6], true)),
    };
    let p = store
        .list_push_log(&svc.account_sid, &svc.sid, &back)
        .await
        .expect("list back");
    assert_eq!(p.items, got[3..6].to_vec());
    assert!(p.more);
    // Another account sees nothing; a malformed cursor is refused.
    let p = store
        .list_push_log(&AccountSid::generate(), &svc.sid, &PageRequest::first(50))
        .await
        .expect("list");
    assert!(p.items.is_empty());
    let bad = PageRequest {
        size: 3,
        cursor: Some(Cursor {
            key: 0,
            sid: "not-a-seq".to_owned(),
            backwards: false,
        }),
    };
    assert!(matches!(
        store.list_push_log(&svc.account_sid, &svc.sid, &bad).await,
        Err(StoreError::InvalidReference(_))
    ));

    // Prune rows older than at(2): four of this service, one of the other; at most 3 a call.
    assert_eq!(store.prune_push_log(at(2), 3).await.expect("prune"), 3);
    assert_eq!(store.prune_push_log(at(2), 3).await.expect("prune"), 2);
    assert_eq!(store.prune_push_log(at(2), 3).await.expect("prune"), 0);
    let p = store
        .list_push_log(&svc.account_sid, &svc.sid, &PageRequest::first(50))
        .await
        .expect("list");
    assert_eq!(p.items, got[4..].to_vec());
    assert_eq!(count(&store, "select count(*) from push_log").await, 3);

    // The log goes with its service.
    store
        .delete_service(&svc.account_sid, &svc.sid)
        .await
        .expect("delete service");
    assert_eq!(count(&store, "select count(*) from push_log").await, 0);
}

/// `settle_deliveries` does to a batch what `settle_delivery` does to each: finished rows go,
/// retries are postponed with their error, a dead token takes its binding (only while the
/// binding still holds that token) and the binding's other deliveries; ids that are gone are
/// no-ops.
#[tokio::test]
async fn a_settle_batch_does_what_settling_one_by_one_does() {
    let Some(w) = world().await else {
        return;
    };
    let store = &w.store;
    let b1 = register(store, &w.alice, "batch-1", &ALL_TYPES).await;
    let b2 = register(store, &w.alice, "batch-2", &ALL_TYPES).await;
    let b3 = register(store, &w.alice, "batch-3", &ALL_TYPES).await;
    let mut evs = Vec::new();
    for i in 0..2 {
        post(store, &w.ch, "bob", &format!("m{i}")).await;
        evs.push(last_event(store, &w.svc).await);
    }
    let now = soon();
    for e in &evs {
        store
            .complete_fanout(
                e.id,
                &[
                    delivery(e, &b1, now),
                    delivery(e, &b2, now),
                    delivery(e, &b3, now),
                ],
            )
            .await
            .expect("fan-out");
    }
    let claimed = store
        .claim_deliveries(now, now.plus_secs(1000), 100)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 6);
    let id = |e: &Event, b: &Binding| format!("{}:{}", e.id, b.sid);

    store
        .settle_deliveries(&[
            (id(&evs[0], &b1), Settle::Delivered),
            (
                id(&evs[1], &b1),
                Settle::Failed {
                    error: "400".to_owned(),
                },
            ),
            (
                id(&evs[0], &b2),
                Settle::Retry {
                    at: now.plus_secs(60),
                    error: "503 unavailable".to_owned(),
                },
            ),
            (
                id(&evs[0], &b3),
                Settle::DeadToken {
                    reason: "Unregistered".to_owned(),
                },
            ),
            (
                "999999:BS00000000000000000000000000000000".to_owned(),
                Settle::Delivered,
            ),
        ])
        .await
        .expect("batch");

    assert!(delivery_row(store, &id(&evs[0], &b1)).await.is_none());
    assert!(delivery_row(store, &id(&evs[1], &b1)).await.is_none());
    assert_eq!(
        delivery_row(store, &id(&evs[0], &b2)).await,
        Some((
            now.plus_secs(60).unix_micros(),
            None,
            Some("503 unavailable".to_owned())
        ))
    );
    assert!(!binding_exists(store, &b3.sid).await, "dead token pruned");
    assert!(binding_exists(store, &b1.sid).await);
    let left: BTreeSet<String> = sqlx::query_scalar("select id from push_deliveries")
        .fetch_all(store.pool())
        .await
        .expect("ids")
        .into_iter()
        .collect();
    assert_eq!(
        left,
        BTreeSet::from([id(&evs[0], &b2), id(&evs[1], &b2)]),
        "b3's other delivery went with it; b2's second is still leased"
    );
}

/// A chunked fan-out records its progress with each chunk; a claim after the lease ran out
/// (the fanning node died) hands the progress over, which never moves back; the last chunk
/// removes the entry.
#[tokio::test]
async fn fan_out_progress_survives_a_lost_lease_and_never_moves_back() {
    let Some(w) = world().await else {
        return;
    };
    let store = &w.store;
    let mut bs = Vec::new();
    for i in 0..3 {
        bs.push(register(store, &w.alice, &format!("chunk-{i}"), &ALL_TYPES).await);
    }
    bs.sort_by(|a, b| a.sid.as_str().cmp(b.sid.as_str()));
    post(store, &w.ch, "bob", "hello").await;
    let ev = last_event(store, &w.svc).await;
    let now = soon();
    let first = store
        .claim_outbox(now, now.plus_secs(30), 100)
        .await
        .expect("claim");
    let item = first.iter().find(|i| i.event.id == ev.id).expect("claimed");
    assert_eq!(item.fanout_after, None);

    store
        .fanout_progress(ev.id, &[delivery(&ev, &bs[0], now)], bs[0].sid.as_str())
        .await
        .expect("chunk 1");
    store
        .fanout_progress(ev.id, &[], "BS0")
        .await
        .expect("a stale node's older progress");
    let again = store
        .claim_outbox(now.plus_secs(31), now.plus_secs(60), 100)
        .await
        .expect("claim after the lease");
    let item = again
        .iter()
        .find(|i| i.event.id == ev.id)
        .expect("reclaimed");
    assert_eq!(item.fanout_after.as_deref(), Some(bs[0].sid.as_str()));
    assert_eq!(item.attempts, 1);

    store
        .complete_fanout(
            ev.id,
            &[delivery(&ev, &bs[1], now), delivery(&ev, &bs[2], now)],
        )
        .await
        .expect("last chunk");
    let (outbox, deliveries) = store.push_queue_depth().await.expect("depth");
    assert_eq!(deliveries, 3);
    assert!(
        store
            .claim_outbox(now.plus_secs(61), now.plus_secs(90), 100)
            .await
            .expect("claim")
            .iter()
            .all(|i| i.event.id != ev.id),
        "the entry is gone ({outbox} others left)"
    );
}
