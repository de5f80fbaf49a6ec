//! `PushStore` on SQLite, through the public store API: chat writes fill the outbox (trigger of
//! 0002_chat.sql), the fan-out turns it into deliveries, workers claim and settle them, the log
//! pages and prunes.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use parley_core::binding::{Binding, MESSAGE_TYPES};
use parley_core::channel::{
    Channel, ChannelRef, ChannelType, Member, MemberLimits, MemberRef, MemberUpdate, Message,
    NotificationLevel,
};
use parley_core::credential::PushType;
use parley_core::event::{Event, EventKind};
use parley_core::paging::{Cursor, PageRequest};
use parley_core::push::{NewDelivery, PushLogEntry, Settle};
use parley_core::service::Service;
use parley_core::store::testsuite::{account, registration, service, user, DynStore};
use parley_core::store::{PushStore, StoreError};
use parley_core::user::User;
use parley_core::{BindingSid, ChannelSid, InviteSid, MemberSid, MessageSid, Timestamp};
use parley_store_sqlite::SqliteStore;

// ---- fixtures -----------------------------------------------------------------------------------

fn fresh_path() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("parley-sqlite-push");
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir.join(format!("{}.db", parley_core::sid::random_hex32()))
}

struct Env {
    /// The concrete store (`PushStore` is not part of `Store` yet).
    push: Arc<SqliteStore>,
    /// The same store, for the shared fixtures.
    store: DynStore,
    svc: Service,
}

async fn env() -> Env {
    let url = format!("sqlite://{}", fresh_path().display());
    let push = Arc::new(SqliteStore::connect(&url).await.expect("connect"));
    let store: DynStore = push.clone();
    let acct = account(&store).await;
    let svc = service(&store, &acct).await;
    Env { push, store, svc }
}

const LIMITS: MemberLimits = MemberLimits {
    channel_members: 1_000,
    user_channels: 1_000,
};

impl Env {
    async fn user(&self, identity: &str) -> User {
        user(&self.store, &self.svc, identity).await
    }

    async fn channel(&self, name: &str) -> Channel {
        let now = Timestamp::now();
        self.store
            .create_channel(&Channel {
                sid: ChannelSid::generate(),
                account_sid: self.svc.account_sid.clone(),
                service_sid: self.svc.sid.clone(),
                friendly_name: Some(format!("{name} friendly")),
                unique_name: Some(name.to_owned()),
                attributes: None,
                channel_type: ChannelType::Public,
                created_by: Some("system".to_owned()),
                members_count: 0,
                messages_count: 0,
                last_message_sid: None,
                last_message_index: None,
                date_created: now,
                date_updated: now,
            })
            .await
            .expect("create channel")
    }

    async fn join(&self, channel: &Channel, user: &User, level: NotificationLevel) -> Member {
        let now = Timestamp::now();
        self.store
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
                    date_created: now,
                    date_updated: now,
                },
                &LIMITS,
                Some("system"),
            )
            .await
            .expect("join")
    }

    async fn post(&self, channel: &Channel, from: &str, body: &str) -> Message {
        let now = Timestamp::now();
        self.store
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
                    date_created: now,
                    date_updated: now,
                },
            )
            .await
            .expect("post")
    }

    /// Register a device of `user` subscribed to `types`.
    async fn bind(&self, user: &User, ty: PushType, address: &str, types: &[&str]) -> Binding {
        let mut reg = registration(
            user,
            ty,
            &format!("ep-{address}"),
            address,
            Timestamp::now(),
        );
        reg.message_types = types.iter().map(|t| (*t).to_owned()).collect();
        self.store
            .register_binding(&reg)
            .await
            .expect("register")
            .binding
    }

    async fn events(&self) -> Vec<Event> {
        self.store
            .list_events(&self.svc.sid, 0, 10_000)
            .await
            .expect("events")
    }

    async fn last_event(&self, kind: EventKind) -> Event {
        self.events()
            .await
            .into_iter()
            .rev()
            .find(|e| e.kind == kind)
            .expect("event of kind")
    }

    async fn recipient_sids(&self, event: &Event) -> BTreeSet<String> {
        self.push
            .recipients(event)
            .await
            .expect("recipients")
            .into_iter()
            .map(|r| r.binding.sid.as_str().to_owned())
            .collect()
    }

    async fn depth(&self) -> (i64, i64) {
        self.push.push_queue_depth().await.expect("depth")
    }

    /// Fan out `event` to `bindings` with `available_at`.
    async fn fan_out(&self, event: &Event, bindings: &[&Binding], available_at: Timestamp) {
        let deliveries: Vec<NewDelivery> = bindings
            .iter()
            .map(|b| delivery(event, b, available_at))
            .collect();
        self.push
            .complete_fanout(event.id, &deliveries)
            .await
            .expect("complete fanout");
    }
}

fn delivery(event: &Event, b: &Binding, available_at: Timestamp) -> NewDelivery {
    NewDelivery {
        id: format!("{}:{}", event.id, b.sid.as_str()),
        event_id: event.id,
        account_sid: b.account_sid.clone(),
        service_sid: b.service_sid.clone(),
        binding_sid: b.sid.clone(),
        credential_sid: b.credential_sid.clone(),
        binding_type: b.binding_type,
        address: b.address.clone(),
        identity: b.identity.clone(),
        payload: format!(r#"{{"event":{}}}"#, event.id),
        event_at: event.date_created,
        available_at,
    }
}

fn sids(bindings: &[&Binding]) -> BTreeSet<String> {
    bindings.iter().map(|b| b.sid.as_str().to_owned()).collect()
}

fn all_types() -> Vec<&'static str> {
    MESSAGE_TYPES.to_vec()
}

/// Two members in a channel and one message from alice: three events (two joins, one post).
async fn chat_with_a_message(e: &Env) -> (Channel, User, User) {
    let alice = e.user("alice").await;
    let bob = e.user("bob").await;
    let general = e.channel("general").await;
    e.join(&general, &alice, NotificationLevel::Default).await;
    e.join(&general, &bob, NotificationLevel::Default).await;
    e.post(&general, "alice", "hello").await;
    (general, alice, bob)
}

// ---- outbox -------------------------------------------------------------------------------------

#[tokio::test]
async fn claim_outbox_returns_each_event_once_per_lease_and_again_after_it_expires() {
    // Arrange
    let e = env().await;
    let (general, _, _) = chat_with_a_message(&e).await;
    let now = Timestamp::now().plus_secs(1);

    // Act
    let first = e
        .push
        .claim_outbox(now, now.plus_secs(60), 100)
        .await
        .expect("claim");
    let while_leased = e
        .push
        .claim_outbox(now.plus_secs(59), now.plus_secs(120), 100)
        .await;
    let after_expiry = e
        .push
        .claim_outbox(now.plus_secs(61), now.plus_secs(121), 100)
        .await
        .expect("claim again");

    // Assert
    let kinds: Vec<EventKind> = first.iter().map(|i| i.event.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::AddedToChannel,
            EventKind::AddedToChannel,
            EventKind::NewMessage
        ],
        "oldest event first"
    );
    assert!(first.iter().all(|i| i.attempts == 0), "{first:?}");
    let posted = &first[2].event;
    assert_eq!(
        posted,
        &e.last_event(EventKind::NewMessage).await,
        "the full event"
    );
    assert_eq!(posted.body.as_deref(), Some("hello"));
    assert_eq!(posted.actor.as_deref(), Some("alice"));
    assert_eq!(posted.channel_sid, general.sid);
    assert!(while_leased.expect("claim while leased").is_empty());
    assert_eq!(
        after_expiry.iter().map(|i| i.event.id).collect::<Vec<_>>(),
        first.iter().map(|i| i.event.id).collect::<Vec<_>>()
    );
    assert!(
        after_expiry.iter().all(|i| i.attempts == 1),
        "{after_expiry:?}"
    );
    assert_eq!(e.depth().await, (3, 0), "claiming removes nothing");
}

#[tokio::test]
async fn claim_outbox_respects_the_limit_and_future_entries_wait() {
    // Arrange
    let e = env().await;
    chat_with_a_message(&e).await;
    let now = Timestamp::now().plus_secs(1);
    let events = e.events().await;

    // Act
    let one = e
        .push
        .claim_outbox(now, now.plus_secs(60), 1)
        .await
        .expect("claim 1");
    let none_yet = e
        .push
        .claim_outbox(now.plus_secs(-3600), now.plus_secs(60), 10)
        .await
        .expect("claim before the events");
    e.push
        .retry_outbox(events[0].id, now.plus_secs(300))
        .await
        .expect("retry");
    let before_due = e
        .push
        .claim_outbox(now.plus_secs(10), now.plus_secs(1000), 10)
        .await;
    let due = e
        .push
        .claim_outbox(now.plus_secs(300), now.plus_secs(360), 10)
        .await
        .expect("claim when due");

    // Assert
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].event.id, events[0].id);
    assert!(none_yet.is_empty(), "available_at is the event time");
    let before_due: Vec<i64> = before_due
        .expect("claim before due")
        .iter()
        .map(|i| i.event.id)
        .collect();
    assert_eq!(
        before_due,
        [events[1].id, events[2].id],
        "the retried entry waits"
    );
    let due: Vec<i64> = due.iter().map(|i| i.event.id).collect();
    assert_eq!(
        due,
        [events[0].id],
        "retry released the lease; the others are leased"
    );
    e.push
        .retry_outbox(i64::MAX, now)
        .await
        .expect("retrying a missing entry is not an error");
}

// ---- recipients ---------------------------------------------------------------------------------

#[tokio::test]
async fn new_message_recipients_exclude_the_author_muted_members_and_unsubscribed_bindings() {
    // Arrange
    let e = env().await;
    let alice = e.user("alice").await;
    let bob = e.user("bob").await;
    let carol = e.user("carol").await;
    let dave = e.user("dave").await;
    let erin = e.user("erin").await;
    let general = e.channel("general").await;
    let other = e.channel("other").await;
    for u in [&alice, &bob, &dave] {
        e.join(&general, u, NotificationLevel::Default).await;
    }
    e.join(&general, &carol, NotificationLevel::Muted).await;
    e.join(&other, &erin, NotificationLevel::Default).await;
    let alice_phone = e.bind(&alice, PushType::Apn, "a1", &all_types()).await;
    let bob_phone = e.bind(&bob, PushType::Apn, "b1", &all_types()).await;
    let bob_tablet = e.bind(&bob, PushType::Fcm, "b2", &["new_message"]).await;
    let _bob_quiet = e
        .bind(&bob, PushType::Gcm, "b3", &["added_to_channel"])
        .await;
    let _carol_phone = e.bind(&carol, PushType::Apn, "c1", &all_types()).await;
    let _erin_phone = e.bind(&erin, PushType::Apn, "e1", &all_types()).await;
    e.post(&general, "alice", "hi").await;
    let from_alice = e.last_event(EventKind::NewMessage).await;
    e.post(&general, "system", "maintenance").await;
    let from_system = e.last_event(EventKind::NewMessage).await;

    // Act
    let to_alice_post = e.recipient_sids(&from_alice).await;
    let to_system_post = e.recipient_sids(&from_system).await;
    let full = e.push.recipients(&from_alice).await.expect("recipients");

    // Assert
    assert_eq!(to_alice_post, sids(&[&bob_phone, &bob_tablet]));
    assert_eq!(
        to_system_post,
        sids(&[&alice_phone, &bob_phone, &bob_tablet]),
        "a non-member author excludes no one"
    );
    let phone = full
        .iter()
        .find(|r| r.binding.sid == bob_phone.sid)
        .expect("bob's phone");
    assert_eq!(phone.binding, bob_phone, "the whole binding");
}

#[tokio::test]
async fn membership_recipients_are_the_identitys_bindings_unless_muted() {
    // Arrange
    let e = env().await;
    let bob = e.user("bob").await;
    let carol = e.user("carol").await;
    let erin = e.user("erin").await;
    let general = e.channel("general").await;
    let bob_phone = e.bind(&bob, PushType::Apn, "b1", &all_types()).await;
    let bob_tablet = e
        .bind(&bob, PushType::Fcm, "b2", &["added_to_channel"])
        .await;
    let _carol_phone = e.bind(&carol, PushType::Apn, "c1", &all_types()).await;
    let erin_phone = e
        .bind(&erin, PushType::Apn, "e1", &["invited_to_channel"])
        .await;
    let _erin_other = e.bind(&erin, PushType::Fcm, "e2", &["new_message"]).await;

    // Act
    e.join(&general, &bob, NotificationLevel::Default).await;
    let bob_added = e.last_event(EventKind::AddedToChannel).await;
    e.join(&general, &carol, NotificationLevel::Muted).await;
    let carol_added = e.last_event(EventKind::AddedToChannel).await;
    e.store
        .create_invite(
            &ChannelRef::Sid(general.sid.clone()),
            &parley_core::channel::Invite {
                sid: InviteSid::generate(),
                account_sid: general.account_sid.clone(),
                service_sid: general.service_sid.clone(),
                channel_sid: general.sid.clone(),
                identity: "erin".to_owned(),
                role_sid: None,
                created_by: Some("bob".to_owned()),
                date_created: Timestamp::now(),
                date_updated: Timestamp::now(),
            },
        )
        .await
        .expect("invite");
    let erin_invited = e.last_event(EventKind::InvitedToChannel).await;
    e.store
        .delete_member(
            &general.account_sid,
            &general.service_sid,
            &ChannelRef::Sid(general.sid.clone()),
            &MemberRef::Identity("bob".to_owned()),
            Some("system"),
            Timestamp::now(),
        )
        .await
        .expect("remove bob");
    let bob_removed = e.last_event(EventKind::RemovedFromChannel).await;

    // Assert
    assert_eq!(
        e.recipient_sids(&bob_added).await,
        sids(&[&bob_phone, &bob_tablet])
    );
    assert!(
        e.recipient_sids(&carol_added).await.is_empty(),
        "a muted member gets nothing"
    );
    assert_eq!(e.recipient_sids(&erin_invited).await, sids(&[&erin_phone]));
    assert_eq!(e.recipient_sids(&bob_removed).await, sids(&[&bob_phone]));
}

// ---- fan-out ------------------------------------------------------------------------------------

#[tokio::test]
async fn complete_fanout_creates_deliveries_once_and_removes_the_outbox_entry() {
    // Arrange
    let e = env().await;
    let (_, alice, bob) = chat_with_a_message(&e).await;
    let a = e.bind(&alice, PushType::Apn, "a1", &all_types()).await;
    let b = e.bind(&bob, PushType::Fcm, "b1", &all_types()).await;
    let gone = e.bind(&bob, PushType::Gcm, "b2", &all_types()).await;
    let event = e.last_event(EventKind::NewMessage).await;
    let now = Timestamp::now();
    let deliveries: Vec<NewDelivery> = [&a, &b, &gone]
        .iter()
        .map(|x| delivery(&event, x, now))
        .collect();
    e.store
        .delete_binding(&gone.account_sid, &gone.service_sid, &gone.sid)
        .await
        .expect("delete binding");

    // Act
    e.push
        .complete_fanout(event.id, &deliveries)
        .await
        .expect("fanout");
    let after_first = e.depth().await;
    e.push
        .complete_fanout(event.id, &deliveries)
        .await
        .expect("fanout again");
    let after_second = e.depth().await;
    let claimed = e
        .push
        .claim_deliveries(now, now.plus_secs(60), 100)
        .await
        .expect("claim");

    // Assert
    assert_eq!(
        after_first,
        (2, 2),
        "outbox entry gone; no delivery to a deleted binding"
    );
    assert_eq!(after_second, (2, 2), "a re-run creates nothing twice");
    let claimed_ids: BTreeSet<String> = claimed.iter().map(|d| d.new.id.clone()).collect();
    let expected: BTreeSet<String> = deliveries[..2].iter().map(|d| d.id.clone()).collect();
    assert_eq!(claimed_ids, expected);
    for d in &claimed {
        let want = deliveries
            .iter()
            .find(|x| x.id == d.new.id)
            .expect("created");
        assert_eq!(&d.new, want, "round trip");
        assert_eq!(d.attempts, 0);
    }
    let left: Vec<i64> = e
        .push
        .claim_outbox(now.plus_secs(1), now.plus_secs(60), 100)
        .await
        .expect("claim outbox")
        .iter()
        .map(|i| i.event.id)
        .collect();
    assert!(!left.contains(&event.id));
}

#[tokio::test]
async fn complete_fanout_of_ten_thousand_deliveries_is_fast() {
    // Arrange
    let e = env().await;
    let (_, _, bob) = chat_with_a_message(&e).await;
    let b = e.bind(&bob, PushType::Fcm, "b1", &all_types()).await;
    let event = e.last_event(EventKind::NewMessage).await;
    let now = Timestamp::now();
    let deliveries: Vec<NewDelivery> = (0..10_000)
        .map(|i| NewDelivery {
            id: format!("{}:{}:{i}", event.id, b.sid.as_str()),
            ..delivery(&event, &b, now)
        })
        .collect();

    // Act
    let started = std::time::Instant::now();
    e.push
        .complete_fanout(event.id, &deliveries)
        .await
        .expect("fanout");
    let took = started.elapsed();

    // Assert
    assert_eq!(e.depth().await, (2, 10_000));
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
}

// ---- deliveries ---------------------------------------------------------------------------------

#[tokio::test]
async fn claimed_deliveries_are_leased_and_settled() {
    // Arrange
    let e = env().await;
    let (_, alice, bob) = chat_with_a_message(&e).await;
    let a = e.bind(&alice, PushType::Apn, "a1", &all_types()).await;
    let b = e.bind(&bob, PushType::Fcm, "b1", &all_types()).await;
    let c = e.bind(&bob, PushType::Gcm, "b2", &all_types()).await;
    let event = e.last_event(EventKind::NewMessage).await;
    let now = Timestamp::now();
    e.fan_out(&event, &[&a, &b, &c], now).await;
    let id = |x: &Binding| format!("{}:{}", event.id, x.sid.as_str());

    // Act + Assert: a claim leases everything due
    let first = e
        .push
        .claim_deliveries(now, now.plus_secs(30), 100)
        .await
        .expect("claim");
    assert_eq!(first.len(), 3);
    assert!(e
        .push
        .claim_deliveries(now.plus_secs(29), now.plus_secs(60), 100)
        .await
        .expect("claim while leased")
        .is_empty());

    // delivered: gone; failed: gone; retry: back at `at`, not before
    e.push
        .settle_delivery(&id(&a), &Settle::Delivered)
        .await
        .expect("delivered");
    e.push
        .settle_delivery(
            &id(&b),
            &Settle::Failed {
                error: "bad payload".to_owned(),
            },
        )
        .await
        .expect("failed");
    e.push
        .settle_delivery(
            &id(&c),
            &Settle::Retry {
                at: now.plus_secs(100),
                error: "503".to_owned(),
            },
        )
        .await
        .expect("retry");
    assert_eq!(e.depth().await, (2, 1));
    assert!(e
        .push
        .claim_deliveries(now.plus_secs(99), now.plus_secs(200), 100)
        .await
        .expect("claim before due")
        .is_empty());
    let again = e
        .push
        .claim_deliveries(now.plus_secs(100), now.plus_secs(130), 100)
        .await
        .expect("claim when due");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].new.id, id(&c));
    assert_eq!(again[0].attempts, 1, "one send before this claim");

    // an expired lease (a crashed worker) makes it claimable again
    let after_crash = e
        .push
        .claim_deliveries(now.plus_secs(131), now.plus_secs(160), 100)
        .await
        .expect("claim after lease expiry");
    assert_eq!(after_crash.len(), 1);
    assert_eq!(after_crash[0].attempts, 2);

    // settling something that is gone is not an error
    e.push
        .settle_delivery(&id(&a), &Settle::Delivered)
        .await
        .expect("settle twice");
}

#[tokio::test]
async fn claim_deliveries_takes_the_oldest_first_up_to_the_limit() {
    // Arrange
    let e = env().await;
    let (_, alice, bob) = chat_with_a_message(&e).await;
    let a = e.bind(&alice, PushType::Apn, "a1", &all_types()).await;
    let b = e.bind(&bob, PushType::Fcm, "b1", &all_types()).await;
    let event = e.last_event(EventKind::NewMessage).await;
    let now = Timestamp::now();
    let deliveries = vec![
        delivery(&event, &a, now.plus_secs(2)),
        delivery(&event, &b, now.plus_secs(1)),
    ];
    e.push
        .complete_fanout(event.id, &deliveries)
        .await
        .expect("fanout");

    // Act
    let not_yet = e
        .push
        .claim_deliveries(now, now.plus_secs(60), 10)
        .await
        .expect("claim early");
    let one = e
        .push
        .claim_deliveries(now.plus_secs(5), now.plus_secs(60), 1)
        .await
        .expect("claim one");

    // Assert
    assert!(not_yet.is_empty());
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].new.id, deliveries[1].id);
}

#[tokio::test]
async fn a_dead_token_deletes_the_binding_and_its_other_pending_deliveries() {
    // Arrange
    let e = env().await;
    let (general, alice, bob) = chat_with_a_message(&e).await;
    let dead = e.bind(&bob, PushType::Apn, "b1", &all_types()).await;
    let alive = e.bind(&alice, PushType::Apn, "a1", &all_types()).await;
    let first = e.last_event(EventKind::NewMessage).await;
    e.post(&general, "carol", "again").await;
    let second = e.last_event(EventKind::NewMessage).await;
    let now = Timestamp::now();
    e.fan_out(&first, &[&dead, &alive], now).await;
    e.fan_out(&second, &[&dead, &alive], now.plus_secs(3600))
        .await;
    let claimed = e
        .push
        .claim_deliveries(now, now.plus_secs(60), 100)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);

    // Act
    e.push
        .settle_delivery(
            &format!("{}:{}", first.id, dead.sid.as_str()),
            &Settle::DeadToken {
                reason: "Unregistered".to_owned(),
            },
        )
        .await
        .expect("dead token");

    // Assert
    let fetched = e
        .store
        .fetch_binding(&dead.account_sid, &dead.service_sid, &dead.sid)
        .await;
    assert!(matches!(fetched, Err(StoreError::NotFound)), "{fetched:?}");
    assert_eq!(
        e.depth().await.1,
        2,
        "alive's two deliveries remain; dead's two are gone"
    );
    let later: Vec<BindingSid> = e
        .push
        .claim_deliveries(now.plus_secs(3600), now.plus_secs(3660), 100)
        .await
        .expect("claim later")
        .into_iter()
        .map(|d| d.new.binding_sid)
        .collect();
    assert_eq!(
        later,
        [alive.sid.clone(), alive.sid.clone()],
        "alive's first lease expired too"
    );
}

#[tokio::test]
async fn a_dead_token_keeps_a_binding_that_reregistered_with_a_new_address() {
    // Arrange
    let e = env().await;
    let (_, _, bob) = chat_with_a_message(&e).await;
    let old = e.bind(&bob, PushType::Apn, "old-token", &all_types()).await;
    let event = e.last_event(EventKind::NewMessage).await;
    let now = Timestamp::now();
    e.fan_out(&event, &[&old], now).await;
    e.push
        .claim_deliveries(now, now.plus_secs(60), 10)
        .await
        .expect("claim");
    let mut reg = registration(&bob, PushType::Apn, "ep-old-token", "new-token", now);
    reg.sid = BindingSid::generate();
    let refreshed = e.store.register_binding(&reg).await.expect("re-register");
    assert_eq!(refreshed.binding.sid, old.sid, "same binding, new address");

    // Act
    e.push
        .settle_delivery(
            &format!("{}:{}", event.id, old.sid.as_str()),
            &Settle::DeadToken {
                reason: "BadDeviceToken".to_owned(),
            },
        )
        .await
        .expect("dead token");

    // Assert
    let kept = e
        .store
        .fetch_binding(&old.account_sid, &old.service_sid, &old.sid)
        .await
        .expect("binding kept");
    assert_eq!(kept.address, "new-token");
    assert_eq!(e.depth().await.1, 0, "the delivery itself is gone");
}

// ---- badge --------------------------------------------------------------------------------------

#[tokio::test]
async fn badge_counts_two_member_channels_with_unread_messages() {
    // Arrange
    let e = env().await;
    let alice = e.user("alice").await;
    let bob = e.user("bob").await;
    let carol = e.user("carol").await;
    let dm_bob = e.channel("dm-bob").await;
    let dm_carol = e.channel("dm-carol").await;
    let quiet = e.channel("dm-quiet").await;
    let group = e.channel("group").await;
    for (ch, other) in [(&dm_bob, &bob), (&dm_carol, &carol), (&quiet, &bob)] {
        e.join(ch, &alice, NotificationLevel::Default).await;
        e.join(ch, other, NotificationLevel::Default).await;
    }
    for u in [&alice, &bob, &carol] {
        e.join(&group, u, NotificationLevel::Default).await;
    }
    e.post(&dm_bob, "bob", "one").await;
    e.post(&dm_bob, "bob", "two").await;
    e.post(&dm_carol, "carol", "hey").await;
    e.post(&group, "bob", "all").await;
    let set_horizon = |ch: &Channel, index: i64| {
        let ch = ch.clone();
        let store = e.store.clone();
        async move {
            store
                .update_member(
                    &ch.account_sid,
                    &ch.service_sid,
                    &ChannelRef::Sid(ch.sid.clone()),
                    &MemberRef::Identity("alice".to_owned()),
                    &MemberUpdate {
                        last_consumed_message_index: Some(Some(index)),
                        ..MemberUpdate::default()
                    },
                    Timestamp::now(),
                )
                .await
                .expect("set horizon")
        }
    };

    // Act + Assert
    let badge = || e.push.badge_count(&e.svc.sid, "alice");
    assert_eq!(
        badge().await.expect("badge"),
        2,
        "never read: both DMs with messages"
    );
    set_horizon(&dm_carol, 0).await;
    assert_eq!(badge().await.expect("badge"), 1, "read to the last message");
    set_horizon(&dm_bob, 0).await;
    assert_eq!(badge().await.expect("badge"), 1, "one of two read");
    set_horizon(&dm_bob, 1).await;
    assert_eq!(badge().await.expect("badge"), 0);
    assert_eq!(
        e.push.badge_count(&e.svc.sid, "bob").await.expect("badge"),
        1,
        "dm-bob: no horizon yet (own messages count); dm-quiet: no message; group: not a DM"
    );
    assert_eq!(
        e.push
            .badge_count(&e.svc.sid, "nobody")
            .await
            .expect("badge"),
        0
    );
    let other_service = service(&e.store, &e.svc.account_sid).await;
    assert_eq!(
        e.push
            .badge_count(&other_service.sid, "alice")
            .await
            .expect("badge"),
        0
    );
}

// ---- log ----------------------------------------------------------------------------------------

fn log_entry(e: &Env, id: &str, attempt: i32, outcome: &str, at: Timestamp) -> PushLogEntry {
    PushLogEntry {
        seq: 0,
        id: id.to_owned(),
        account_sid: e.svc.account_sid.clone(),
        service_sid: e.svc.sid.clone(),
        event_id: 7,
        kind: "new_message".to_owned(),
        binding_sid: BindingSid::generate(),
        identity: "bob".to_owned(),
        binding_type: PushType::Apn,
        outcome: outcome.to_owned(),
        reason: (outcome != "delivered").then(|| "503".to_owned()),
        attempt,
        date_created: at,
    }
}

/// The cursor `sid` of a log entry: its `seq`, 20-digit zero-padded.
fn seq_sid(entry: &PushLogEntry) -> String {
    format!("{:020}", entry.seq)
}

fn page(size: u32, key: Timestamp, sid: &str, backwards: bool) -> PageRequest {
    PageRequest {
        size,
        cursor: Some(Cursor {
            key: key.unix_micros(),
            sid: sid.to_owned(),
            backwards,
        }),
    }
}

#[tokio::test]
async fn the_log_pages_by_date_then_insertion_order_within_its_service() {
    // Arrange: entries over 6 instants, appended out of order, several per instant; a delivery
    // id repeats across attempts (at later instants).
    let e = env().await;
    let t0 = Timestamp::now();
    let mut appended = Vec::new();
    for (sec, id, attempt) in [
        (3, "1:a", 1),
        (1, "1:b", 1),
        (2, "1:c", 1),
        (1, "1:d", 1),
        (0, "1:e", 1),
        (3, "1:f", 1),
        (4, "1:b", 2),
        (4, "1:a", 2),
        (5, "1:c", 2),
        (4, "1:d", 2),
    ] {
        let outcome = if attempt == 1 {
            "retrying"
        } else {
            "delivered"
        };
        appended.push(log_entry(&e, id, attempt, outcome, t0.plus_secs(sec)));
    }
    for (n, entry) in appended.iter_mut().enumerate() {
        e.push.append_push_log(entry).await.expect("append");
        entry.seq = i64::try_from(n).expect("small") + 1; // a fresh log numbers from 1
    }
    let other_service = service(&e.store, &e.svc.account_sid).await;
    let mut foreign = log_entry(&e, "9:x", 1, "delivered", t0);
    foreign.service_sid = other_service.sid.clone();
    e.push
        .append_push_log(&foreign)
        .await
        .expect("append other");
    foreign.seq = 11;
    let mut expected = appended.clone();
    expected.sort_by_key(|x| x.date_created); // stable: insertion order within an instant
    let (acct, svc) = (&e.svc.account_sid, &e.svc.sid);

    // Act: forward with cursors built from the last entry (date_created, seq), in pages
    // that split the entries of one instant
    let mut walked = Vec::new();
    let mut req = PageRequest::first(3);
    loop {
        let p = e.push.list_push_log(acct, svc, &req).await.expect("page");
        walked.extend(p.items.iter().cloned());
        match p.items.last() {
            Some(last) if p.more => req = page(3, last.date_created, &seq_sid(last), false),
            _ => break,
        }
        assert!(walked.len() <= expected.len());
    }

    // Assert
    assert_eq!(walked, expected);
    // after the first of two entries at one instant comes the second
    let by_seq = e
        .push
        .list_push_log(
            acct,
            svc,
            &page(20, appended[1].date_created, &seq_sid(&appended[1]), false),
        )
        .await
        .expect("by seq");
    let pos = expected
        .iter()
        .position(|x| x == &appended[1])
        .expect("present");
    assert_eq!(by_seq.items, expected[pos + 1..]);
    assert_eq!(by_seq.items[0], appended[3], "same instant, appended later");
    // backwards from the last entry
    let last = expected.last().expect("entries");
    let back = e
        .push
        .list_push_log(acct, svc, &page(4, last.date_created, &seq_sid(last), true))
        .await
        .expect("back");
    let n = expected.len();
    assert_eq!(back.items, expected[n - 5..n - 1]);
    assert!(back.more);
    // a cursor sid that is not a seq is refused
    let bad = e
        .push
        .list_push_log(acct, svc, &page(4, last.date_created, &last.id, false))
        .await;
    assert!(
        matches!(bad, Err(StoreError::InvalidReference("push log cursor"))),
        "{bad:?}"
    );
    // another account sees nothing; another service only its own
    let stranger = parley_core::AccountSid::generate();
    let none = e
        .push
        .list_push_log(&stranger, svc, &PageRequest::first(50))
        .await
        .expect("stranger");
    assert!(none.items.is_empty());
    let theirs = e
        .push
        .list_push_log(acct, &other_service.sid, &PageRequest::first(50))
        .await
        .expect("other service");
    assert_eq!(theirs.items, [foreign]);
}

#[tokio::test]
async fn the_log_prunes_old_rows_in_batches_and_needs_its_service() {
    // Arrange
    let e = env().await;
    let t0 = Timestamp::now();
    for i in 0..10 {
        let entry = log_entry(&e, &format!("{i}:x"), 1, "delivered", t0.plus_secs(i));
        e.push.append_push_log(&entry).await.expect("append");
    }
    let cutoff = t0.plus_secs(7);

    // Act
    let first = e.push.prune_push_log(cutoff, 4).await.expect("prune 1");
    let second = e.push.prune_push_log(cutoff, 4).await.expect("prune 2");
    let third = e.push.prune_push_log(cutoff, 4).await.expect("prune 3");
    let mut orphan = log_entry(&e, "1:x", 1, "delivered", t0);
    orphan.service_sid = parley_core::ServiceSid::generate();
    let orphan = e.push.append_push_log(&orphan).await;

    // Assert
    assert_eq!((first, second, third), (4, 3, 0));
    let left = e
        .push
        .list_push_log(&e.svc.account_sid, &e.svc.sid, &PageRequest::first(50))
        .await
        .expect("list");
    let ids: Vec<&str> = left.items.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids, ["7:x", "8:x", "9:x"]);
    assert!(matches!(orphan, Err(StoreError::NotFound)), "{orphan:?}");
}

#[tokio::test]
async fn deleting_a_service_removes_its_log_and_pending_deliveries() {
    // Arrange
    let e = env().await;
    let (_, _, bob) = chat_with_a_message(&e).await;
    let b = e.bind(&bob, PushType::Fcm, "b1", &all_types()).await;
    let event = e.last_event(EventKind::NewMessage).await;
    e.fan_out(&event, &[&b], Timestamp::now()).await;
    e.push
        .append_push_log(&log_entry(&e, "1:x", 1, "delivered", Timestamp::now()))
        .await
        .expect("append");

    // Act
    e.store
        .delete_service(&e.svc.account_sid, &e.svc.sid)
        .await
        .expect("delete service");

    // Assert
    assert_eq!(e.depth().await, (0, 0));
    let left = e
        .push
        .list_push_log(&e.svc.account_sid, &e.svc.sid, &PageRequest::first(50))
        .await
        .expect("list");
    assert!(left.items.is_empty());
}

/// `settle_deliveries` does to a batch what `settle_delivery` does to each, in one transaction:
/// finished rows go, retries are postponed, a dead token takes its binding (and the binding's
/// other deliveries); ids that are gone are no-ops.
#[tokio::test]
async fn a_settle_batch_does_what_settling_one_by_one_does() {
    // Arrange
    let e = env().await;
    let (ch, alice, bob) = chat_with_a_message(&e).await;
    let a = e.bind(&alice, PushType::Apn, "a1", &all_types()).await;
    let b = e.bind(&bob, PushType::Fcm, "b1", &all_types()).await;
    let c = e.bind(&bob, PushType::Gcm, "b2", &all_types()).await;
    let first = e.last_event(EventKind::NewMessage).await;
    let now = Timestamp::now();
    e.fan_out(&first, &[&a, &b, &c], now).await;
    e.post(&ch, "alice", "second").await;
    let second = e.last_event(EventKind::NewMessage).await;
    e.fan_out(&second, &[&c], now).await;
    let id = |ev: &Event, x: &Binding| format!("{}:{}", ev.id, x.sid.as_str());
    assert_eq!(
        e.push
            .claim_deliveries(now, now.plus_secs(30), 100)
            .await
            .expect("claim")
            .len(),
        4
    );

    // Act
    e.push
        .settle_deliveries(&[
            (id(&first, &a), Settle::Delivered),
            (
                id(&first, &b),
                Settle::Retry {
                    at: now.plus_secs(100),
                    error: "503".to_owned(),
                },
            ),
            (
                id(&first, &c),
                Settle::DeadToken {
                    reason: "UNREGISTERED".to_owned(),
                },
            ),
            (
                "1:BS00000000000000000000000000000000".to_owned(),
                Settle::Delivered,
            ),
        ])
        .await
        .expect("batch");

    // Assert: only b's retry is left (c's second delivery went with its binding)
    assert_eq!(e.depth().await.1, 1);
    let again = e
        .push
        .claim_deliveries(now.plus_secs(100), now.plus_secs(130), 100)
        .await
        .expect("claim when due");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].new.id, id(&first, &b));
    let bindings = e
        .store
        .list_bindings(
            &e.svc.account_sid,
            &e.svc.sid,
            &parley_core::binding::BindingFilter::default(),
            &PageRequest::first(50),
        )
        .await
        .expect("bindings");
    let left: BTreeSet<String> = bindings.items.iter().map(|x| x.sid.to_string()).collect();
    assert_eq!(
        left,
        BTreeSet::from([a.sid.to_string(), b.sid.to_string()]),
        "the dead token's binding is gone"
    );
}

/// A chunked fan-out records its progress with each chunk; a claim after the lease ran out
/// (the fanning worker died) hands the progress over, which never moves back; the last chunk
/// removes the entry.
#[tokio::test]
async fn fan_out_progress_survives_a_lost_lease_and_never_moves_back() {
    // Arrange
    let e = env().await;
    let (_, alice, bob) = chat_with_a_message(&e).await;
    let mut bs = [
        e.bind(&alice, PushType::Apn, "a1", &all_types()).await,
        e.bind(&bob, PushType::Fcm, "b1", &all_types()).await,
        e.bind(&bob, PushType::Gcm, "b2", &all_types()).await,
    ];
    bs.sort_by(|a, b| a.sid.as_str().cmp(b.sid.as_str()));
    let ev = e.last_event(EventKind::NewMessage).await;
    let now = Timestamp::now().plus_secs(1);
    let first = e
        .push
        .claim_outbox(now, now.plus_secs(30), 100)
        .await
        .expect("claim");
    let item = first.iter().find(|i| i.event.id == ev.id).expect("claimed");
    assert_eq!(item.fanout_after, None);

    // Act: one chunk, then an older progress from a stale worker
    e.push
        .fanout_progress(ev.id, &[delivery(&ev, &bs[0], now)], bs[0].sid.as_str())
        .await
        .expect("chunk 1");
    e.push
        .fanout_progress(ev.id, &[], "BS0")
        .await
        .expect("older progress");

    // Assert
    let again = e
        .push
        .claim_outbox(now.plus_secs(31), now.plus_secs(60), 100)
        .await
        .expect("claim after the lease");
    let item = again
        .iter()
        .find(|i| i.event.id == ev.id)
        .expect("reclaimed");
    assert_eq!(item.fanout_after.as_deref(), Some(bs[0].sid.as_str()));
    assert_eq!(item.attempts, 1);
    e.push
        .complete_fanout(
            ev.id,
            &[delivery(&ev, &bs[1], now), delivery(&ev, &bs[2], now)],
        )
        .await
        .expect("last chunk");
    assert_eq!(e.depth().await.1, 3);
    assert!(e
        .push
        .claim_outbox(now.plus_secs(61), now.plus_secs(90), 100)
        .await
        .expect("claim")
        .iter()
        .all(|i| i.event.id != ev.id));
}
