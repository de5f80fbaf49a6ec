//! Push delivery state (`PushStore`): the outbox that chat writes fill, the fan-out that turns
//! an entry into deliveries, leases and claims, settlement, the APNs badge and the delivery log.
//!
//! Data is built through the public store API, so every event comes with its outbox entry.
//! The outbox, the deliveries and log pruning are global to a database: these cases expect a
//! store whose push queues hold nothing but their own rows (every factory gives a fresh
//! database). Events carry the server clock, so claims run at fixed instants far after it
//! ([`due`]); log rows and delivery times use fixed instants too.

use std::collections::BTreeSet;

use crate::binding::{Binding, BindingFilter, MESSAGE_TYPES};
use crate::channel::{
    Channel, ChannelRef, Member, MemberRef, MemberUpdate, Message, NotificationLevel,
};
use crate::credential::PushType;
use crate::event::{Event, EventKind, Origin};
use crate::paging::{Cursor, PageRequest};
use crate::push::{NewDelivery, PushLogEntry, Settle};
use crate::service::Service;
use crate::store::StoreError;
use crate::user::User;
use crate::{AccountSid, BindingSid, ServiceSid, Timestamp};

use super::chat::{channel, invite_value, member_value, message_value, NO_LIMITS};
use super::{account, assert_not_found, at, credential, registration, service, user, DynStore};

// ---- fixtures -----------------------------------------------------------------------------------

/// A fixed instant about a hundred years after [`at`]`(0)`, plus `secs`: after every event a
/// case writes (events carry the server clock), so claims at these instants see them all.
pub fn due(secs: i64) -> Timestamp {
    at(3_155_760_000 + secs)
}

/// Every notification type.
fn all_types() -> Vec<&'static str> {
    MESSAGE_TYPES.to_vec()
}

/// `user` joins `channel` with `level` (an `added_to_channel` event, actor `system`).
async fn join_as(
    store: &DynStore,
    channel: &Channel,
    user: &User,
    level: NotificationLevel,
) -> Member {
    let mut member = member_value(channel, user, Timestamp::now());
    member.notification_level = level;
    store
        .create_member(&member, &NO_LIMITS, Some("system"), &Origin::rest())
        .await
        .expect("join")
}

/// `from` posts `body` into `channel` (a `new_message` event).
async fn say(store: &DynStore, channel: &Channel, from: &str, body: &str) -> Message {
    store
        .create_message(
            &ChannelRef::Sid(channel.sid.clone()),
            &message_value(channel, from, body),
            &Origin::rest(),
        )
        .await
        .expect("post")
}

/// Register a device of `user` (endpoint `ep-<address>`) subscribed to `types`.
async fn bind(
    store: &DynStore,
    user: &User,
    binding_type: PushType,
    address: &str,
    types: &[&str],
) -> Binding {
    let mut reg = registration(
        user,
        binding_type,
        &format!("ep-{address}"),
        address,
        Timestamp::now(),
    );
    reg.message_types = types.iter().map(|t| (*t).to_owned()).collect();
    store
        .register_binding(&reg)
        .await
        .expect("register binding")
        .binding
}

/// The events of `service` the push engine consumes (the push kinds), oldest first.
async fn push_events_of(store: &DynStore, service: &Service) -> Vec<Event> {
    super::chat::events_of(store, service)
        .await
        .into_iter()
        .filter(|e| e.kind.is_push())
        .collect()
}

/// The newest event of `kind` in `service`.
async fn last_event(store: &DynStore, service: &Service, kind: EventKind) -> Event {
    push_events_of(store, service)
        .await
        .into_iter()
        .rev()
        .find(|e| e.kind == kind)
        .expect("event of kind")
}

/// The binding SIDs `recipients` returns for `event`.
async fn recipient_sids(store: &DynStore, event: &Event) -> BTreeSet<String> {
    store
        .recipients(event)
        .await
        .expect("recipients")
        .into_iter()
        .map(|r| r.binding.sid.as_str().to_owned())
        .collect()
}

fn sids(bindings: &[&Binding]) -> BTreeSet<String> {
    bindings.iter().map(|b| b.sid.as_str().to_owned()).collect()
}

/// (outbox entries, deliveries) waiting.
async fn depth(store: &DynStore) -> (i64, i64) {
    store.push_queue_depth().await.expect("queue depth")
}

/// The delivery id of (`event`, `binding`).
fn delivery_id(event: &Event, binding: &Binding) -> String {
    format!("{}:{}", event.id, binding.sid.as_str())
}

/// The delivery of `event` to `binding`, due at `available_at`.
fn delivery(event: &Event, binding: &Binding, available_at: Timestamp) -> NewDelivery {
    NewDelivery {
        id: delivery_id(event, binding),
        event_id: event.id,
        account_sid: binding.account_sid.clone(),
        service_sid: binding.service_sid.clone(),
        binding_sid: binding.sid.clone(),
        credential_sid: binding.credential_sid.clone(),
        binding_type: binding.binding_type,
        address: binding.address.clone(),
        identity: binding.identity.clone(),
        payload: format!(r#"{{"event":{},"body":{:?}}}"#, event.id, event.body),
        event_at: event.date_created,
        available_at,
    }
}

/// Fan `event` out to `bindings` (one chunk, completing the entry).
async fn fan_out(store: &DynStore, event: &Event, bindings: &[&Binding], available_at: Timestamp) {
    let deliveries: Vec<NewDelivery> = bindings
        .iter()
        .map(|b| delivery(event, b, available_at))
        .collect();
    store
        .complete_fanout(event.id, &deliveries)
        .await
        .expect("complete fan-out");
}

/// Event ids of an outbox claim at `now`.
async fn claim_outbox_ids(
    store: &DynStore,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Vec<i64> {
    store
        .claim_outbox(now, lease_until, limit)
        .await
        .expect("claim outbox")
        .into_iter()
        .map(|i| i.event.id)
        .collect()
}

/// Delivery ids of a delivery claim at `now`.
async fn claim_delivery_ids(
    store: &DynStore,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Vec<String> {
    store
        .claim_deliveries(now, lease_until, limit)
        .await
        .expect("claim deliveries")
        .into_iter()
        .map(|d| d.new.id)
        .collect()
}

/// A service with a channel `general` where alice and bob joined and alice said "hello":
/// three events (two joins, one message), all waiting in the outbox.
struct Chat {
    svc: Service,
    ch: Channel,
    alice: User,
    bob: User,
}

async fn chat_with_a_message(store: &DynStore) -> Chat {
    let acct = account(store).await;
    let svc = service(store, &acct).await;
    let alice = user(store, &svc, "alice").await;
    let bob = user(store, &svc, "bob").await;
    let ch = channel(store, &svc, "general").await;
    join_as(store, &ch, &alice, NotificationLevel::Default).await;
    join_as(store, &ch, &bob, NotificationLevel::Default).await;
    say(store, &ch, "alice", "hello").await;
    Chat {
        svc,
        ch,
        alice,
        bob,
    }
}

/// Set `identity`'s read horizon in `channel`.
async fn consume(store: &DynStore, channel: &Channel, identity: &str, index: i64) {
    store
        .update_member(
            &channel.account_sid,
            &channel.service_sid,
            &ChannelRef::Sid(channel.sid.clone()),
            &MemberRef::Identity(identity.to_owned()),
            &MemberUpdate {
                last_consumed_message_index: Some(Some(index)),
                ..MemberUpdate::default()
            },
            Timestamp::now(),
            &Origin::rest(),
        )
        .await
        .expect("set horizon");
}

/// The bindings of `service`, by SID.
async fn binding_sids(store: &DynStore, service: &Service) -> BTreeSet<String> {
    store
        .list_bindings(
            &service.account_sid,
            &service.sid,
            &BindingFilter::default(),
            &PageRequest::first(100),
        )
        .await
        .expect("list bindings")
        .items
        .into_iter()
        .map(|b| b.sid.as_str().to_owned())
        .collect()
}

// ---- outbox -------------------------------------------------------------------------------------

/// Every chat event waits in the outbox, due at its event's time. A claim takes the due
/// entries in `(available_at, event id)` order, at most `limit`, and hands out the full events
/// (oldest event first), counting no attempt yet.
pub async fn outbox_claims_full_events_by_available_at_then_id_up_to_the_limit(store: DynStore) {
    // Arrange: four events; two of them postponed to one later instant, one to a later still
    let c = chat_with_a_message(&store).await;
    say(&store, &c.ch, "bob", "second").await;
    let events = push_events_of(&store, &c.svc).await;
    assert_eq!(events.len(), 4);
    for (event, to) in [
        (&events[0], due(10)),
        (&events[3], due(5)),
        (&events[1], due(5)),
    ] {
        store.retry_outbox(event.id, to).await.expect("postpone");
    }

    // Act
    let before_the_events = claim_outbox_ids(&store, at(0), at(60), 10).await;
    let mut one_by_one = Vec::new();
    for _ in 0..4 {
        let got = store
            .claim_outbox(due(20), due(80), 1)
            .await
            .expect("claim one");
        assert_eq!(got.len(), 1, "the limit: {got:?}");
        one_by_one.extend(got);
    }
    let none_left = claim_outbox_ids(&store, due(20), due(80), 10).await;

    // Assert
    assert!(
        before_the_events.is_empty(),
        "an entry is due at its event's time"
    );
    let order: Vec<i64> = one_by_one.iter().map(|i| i.event.id).collect();
    assert_eq!(
        order,
        [events[2].id, events[1].id, events[3].id, events[0].id],
        "by available_at, then event id"
    );
    assert_eq!(one_by_one[0].event, events[2], "the full event");
    assert_eq!(one_by_one[0].event.body.as_deref(), Some("hello"));
    assert_eq!(one_by_one[0].event.actor.as_deref(), Some("alice"));
    assert_eq!(one_by_one[0].event.channel_sid.as_ref(), Some(&c.ch.sid));
    assert_eq!(one_by_one[1].event, events[1]);
    assert_eq!(one_by_one[2].event, events[3]);
    assert_eq!(one_by_one[3].event, events[0]);
    assert!(
        one_by_one
            .iter()
            .all(|i| i.attempts == 0 && i.fanout_after.is_none()),
        "postponing counts no attempt: {one_by_one:?}"
    );
    assert!(none_left.is_empty());
}

/// A claimed entry is leased: no one else gets it until the lease has passed (`lease_until <
/// now`; at the lease end it is still taken), then the next claim takes it over with the
/// attempt counted. Claiming removes nothing.
pub async fn an_outbox_lease_hides_the_entry_until_it_expires(store: DynStore) {
    // Arrange
    let c = chat_with_a_message(&store).await;
    let events = push_events_of(&store, &c.svc).await;
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();

    // Act
    let first = store
        .claim_outbox(due(0), due(10), 100)
        .await
        .expect("claim");
    let while_leased = claim_outbox_ids(&store, due(5), due(15), 100).await;
    let at_lease_end = claim_outbox_ids(&store, due(10), due(20), 100).await;
    let depth_while_leased = depth(&store).await;
    let after_expiry = store
        .claim_outbox(due(11), due(21), 100)
        .await
        .expect("claim after the lease");

    // Assert
    assert_eq!(first.iter().map(|i| i.event.id).collect::<Vec<_>>(), ids);
    assert!(first.iter().all(|i| i.attempts == 0), "{first:?}");
    assert!(while_leased.is_empty());
    assert!(at_lease_end.is_empty(), "lease_until < now frees an entry");
    assert_eq!(depth_while_leased, (3, 0), "claiming removes nothing");
    assert_eq!(
        after_expiry
            .iter()
            .map(|i| i.event.clone())
            .collect::<Vec<_>>(),
        events
    );
    assert!(
        after_expiry.iter().all(|i| i.attempts == 1),
        "{after_expiry:?}"
    );
}

/// `retry_outbox` releases the lease and postpones the entry: it waits until its new time
/// while the others stay leased; retrying an entry that is gone is not an error.
pub async fn retry_outbox_releases_the_lease_and_postpones_the_entry(store: DynStore) {
    // Arrange
    let c = chat_with_a_message(&store).await;
    let events = push_events_of(&store, &c.svc).await;
    let claimed = claim_outbox_ids(&store, due(0), due(1000), 100).await;
    assert_eq!(claimed.len(), 3);

    // Act
    store
        .retry_outbox(events[0].id, due(300))
        .await
        .expect("retry");
    let before_due = claim_outbox_ids(&store, due(299), due(2000), 100).await;
    let when_due = store
        .claim_outbox(due(300), due(2000), 100)
        .await
        .expect("claim when due");
    let missing = store.retry_outbox(i64::MAX, due(0)).await;

    // Assert
    assert!(before_due.is_empty(), "the retried entry waits");
    assert_eq!(
        when_due.iter().map(|i| i.event.id).collect::<Vec<_>>(),
        [events[0].id],
        "the others are still leased"
    );
    assert_eq!(when_due[0].attempts, 1);
    assert!(missing.is_ok(), "{missing:?}");
    assert_eq!(depth(&store).await, (3, 0));
}

// ---- recipients ---------------------------------------------------------------------------------

/// `new_message` goes to the bindings of the channel's members except the author, muted
/// members and bindings not subscribed to `new_message`; a non-member author excludes no one;
/// muting a member later silences them; other channels' members, non-members and another
/// service's user of the same identity get nothing. Each recipient is the whole binding.
pub async fn new_message_recipients_exclude_the_author_muted_and_unsubscribed(store: DynStore) {
    // Arrange
    let acct = account(&store).await;
    let svc = service(&store, &acct).await;
    let general = channel(&store, &svc, "general").await;
    let other = channel(&store, &svc, "other").await;
    let alice = user(&store, &svc, "alice").await;
    let bob = user(&store, &svc, "bob").await;
    let carol = user(&store, &svc, "carol").await;
    let dave = user(&store, &svc, "dave").await;
    let erin = user(&store, &svc, "erin").await;
    let frank = user(&store, &svc, "frank").await;
    for u in [&alice, &bob, &dave, &erin] {
        join_as(&store, &general, u, NotificationLevel::Default).await;
    }
    join_as(&store, &general, &carol, NotificationLevel::Muted).await;
    join_as(&store, &other, &frank, NotificationLevel::Default).await;
    let alice_phone = bind(&store, &alice, PushType::Apn, "a1", &all_types()).await;
    let bob_phone = bind(&store, &bob, PushType::Apn, "b1", &all_types()).await;
    let bob_tablet = bind(&store, &bob, PushType::Fcm, "b2", &["new_message"]).await;
    bind(&store, &bob, PushType::Gcm, "b3", &["added_to_channel"]).await;
    bind(&store, &carol, PushType::Apn, "c1", &all_types()).await;
    bind(&store, &dave, PushType::Fcm, "d1", &["added_to_channel"]).await;
    bind(&store, &frank, PushType::Apn, "f1", &all_types()).await;
    let svc2 = service(&store, &acct).await;
    let bob_elsewhere = user(&store, &svc2, "bob").await;
    bind(
        &store,
        &bob_elsewhere,
        PushType::Apn,
        "b-else",
        &all_types(),
    )
    .await;
    let elsewhere = channel(&store, &svc2, "general").await;
    join_as(
        &store,
        &elsewhere,
        &bob_elsewhere,
        NotificationLevel::Default,
    )
    .await;

    // Act
    say(&store, &general, "alice", "hi").await;
    let from_alice = last_event(&store, &svc, EventKind::NewMessage).await;
    say(&store, &general, "system", "maintenance").await;
    let from_system = last_event(&store, &svc, EventKind::NewMessage).await;
    let to_alice_post = recipient_sids(&store, &from_alice).await;
    let to_system_post = recipient_sids(&store, &from_system).await;
    let full = store.recipients(&from_alice).await.expect("recipients");
    store
        .update_member(
            &acct,
            &svc.sid,
            &ChannelRef::Sid(general.sid.clone()),
            &MemberRef::Identity("bob".to_owned()),
            &MemberUpdate {
                notification_level: Some(NotificationLevel::Muted),
                ..MemberUpdate::default()
            },
            Timestamp::now(),
            &Origin::rest(),
        )
        .await
        .expect("mute bob");
    say(&store, &general, "dave", "anyone?").await;
    let after_muting = last_event(&store, &svc, EventKind::NewMessage).await;
    let to_dave_post = recipient_sids(&store, &after_muting).await;

    // Assert
    assert_eq!(to_alice_post, sids(&[&bob_phone, &bob_tablet]));
    assert_eq!(
        to_system_post,
        sids(&[&alice_phone, &bob_phone, &bob_tablet]),
        "a non-member author excludes no one"
    );
    assert_eq!(to_dave_post, sids(&[&alice_phone]), "muting silences bob");
    let phone = full
        .iter()
        .find(|r| r.binding.sid == bob_phone.sid)
        .expect("bob's phone");
    assert_eq!(phone.binding, bob_phone, "the whole binding");
}

/// `added_to_channel` / `invited_to_channel` / `removed_from_channel` go to the bindings of
/// the event's identity subscribed to that kind; a member who joined muted gets nothing; an
/// invitee (not a member) gets the invite.
pub async fn membership_recipients_are_the_identitys_subscribed_bindings_unless_muted(
    store: DynStore,
) {
    // Arrange
    let acct = account(&store).await;
    let svc = service(&store, &acct).await;
    let general = channel(&store, &svc, "general").await;
    let bob = user(&store, &svc, "bob").await;
    let carol = user(&store, &svc, "carol").await;
    let dave = user(&store, &svc, "dave").await;
    let erin = user(&store, &svc, "erin").await;
    let bob_phone = bind(&store, &bob, PushType::Apn, "b1", &all_types()).await;
    let bob_tablet = bind(&store, &bob, PushType::Fcm, "b2", &["added_to_channel"]).await;
    bind(&store, &carol, PushType::Apn, "c1", &all_types()).await;
    bind(&store, &dave, PushType::Fcm, "d1", &["new_message"]).await;
    let erin_phone = bind(&store, &erin, PushType::Apn, "e1", &["invited_to_channel"]).await;
    bind(&store, &erin, PushType::Fcm, "e2", &["new_message"]).await;

    // Act
    join_as(&store, &general, &bob, NotificationLevel::Default).await;
    let bob_added = last_event(&store, &svc, EventKind::AddedToChannel).await;
    let to_bob_added = recipient_sids(&store, &bob_added).await;
    join_as(&store, &general, &carol, NotificationLevel::Muted).await;
    let carol_added = last_event(&store, &svc, EventKind::AddedToChannel).await;
    let to_carol_added = recipient_sids(&store, &carol_added).await;
    join_as(&store, &general, &dave, NotificationLevel::Default).await;
    let dave_added = last_event(&store, &svc, EventKind::AddedToChannel).await;
    let to_dave_added = recipient_sids(&store, &dave_added).await;
    store
        .create_invite(
            &ChannelRef::Sid(general.sid.clone()),
            &invite_value(&general, "erin", Timestamp::now()),
            &Origin::rest(),
        )
        .await
        .expect("invite erin");
    let erin_invited = last_event(&store, &svc, EventKind::InvitedToChannel).await;
    let to_erin_invited = recipient_sids(&store, &erin_invited).await;
    let mut removed = Vec::new();
    for who in ["bob", "dave"] {
        store
            .delete_member(
                &acct,
                &svc.sid,
                &ChannelRef::Sid(general.sid.clone()),
                &MemberRef::Identity(who.to_owned()),
                Some("system"),
                Timestamp::now(),
                &Origin::rest(),
            )
            .await
            .expect("remove");
        let event = last_event(&store, &svc, EventKind::RemovedFromChannel).await;
        removed.push(recipient_sids(&store, &event).await);
    }

    // Assert
    assert_eq!(to_bob_added, sids(&[&bob_phone, &bob_tablet]));
    assert!(to_carol_added.is_empty(), "a muted member gets nothing");
    assert!(
        to_dave_added.is_empty(),
        "not subscribed to added_to_channel"
    );
    assert_eq!(to_erin_invited, sids(&[&erin_phone]));
    assert_eq!(removed[0], sids(&[&bob_phone]));
    assert!(removed[1].is_empty());
}

// ---- fan-out ------------------------------------------------------------------------------------

/// `complete_fanout` inserts the deliveries and removes the outbox entry in one go; a delivery
/// to a binding deleted meanwhile is dropped; running it again (a node whose lease ran out)
/// inserts nothing twice and keeps the first payload; an event with no recipients just leaves
/// the outbox. Claimed deliveries come back with every field.
pub async fn complete_fanout_inserts_each_delivery_once_and_removes_the_entry(store: DynStore) {
    // Arrange
    let c = chat_with_a_message(&store).await;
    let a = bind(&store, &c.alice, PushType::Apn, "a1", &all_types()).await;
    let b = bind(&store, &c.bob, PushType::Fcm, "b1", &all_types()).await;
    let gone = bind(&store, &c.bob, PushType::Gcm, "b2", &all_types()).await;
    let event = last_event(&store, &c.svc, EventKind::NewMessage).await;
    let deliveries: Vec<NewDelivery> = [&a, &b, &gone]
        .iter()
        .map(|x| delivery(&event, x, due(0)))
        .collect();
    store
        .delete_binding(&gone.account_sid, &gone.service_sid, &gone.sid)
        .await
        .expect("delete binding");
    let mut changed = deliveries.clone();
    changed[0].payload = "changed".to_owned();
    let joined = push_events_of(&store, &c.svc).await[0].clone();

    // Act
    store
        .complete_fanout(event.id, &deliveries)
        .await
        .expect("fan-out");
    let after_first = depth(&store).await;
    store
        .complete_fanout(event.id, &changed)
        .await
        .expect("fan-out again");
    let after_second = depth(&store).await;
    store
        .complete_fanout(joined.id, &[])
        .await
        .expect("no recipients");
    let after_empty = depth(&store).await;
    let claimed = store
        .claim_deliveries(due(0), due(60), 100)
        .await
        .expect("claim");
    let outbox_left = claim_outbox_ids(&store, due(0), due(60), 100).await;

    // Assert
    assert_eq!(
        after_first,
        (2, 2),
        "entry gone; no delivery to a deleted binding"
    );
    assert_eq!(after_second, (2, 2), "a re-run inserts nothing twice");
    assert_eq!(after_empty, (1, 2), "no recipients: the entry just goes");
    let mut got: Vec<NewDelivery> = claimed.iter().map(|d| d.new.clone()).collect();
    got.sort_by(|x, y| x.id.cmp(&y.id));
    let mut want = deliveries[..2].to_vec();
    want.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(got, want, "every field back; the first payload stays");
    assert!(claimed.iter().all(|d| d.attempts == 0));
    assert!(!outbox_left.contains(&event.id));
    assert!(!outbox_left.contains(&joined.id));
}

/// One `complete_fanout` of 10,000 deliveries (more than one statement's worth on either
/// backend) writes them all.
pub async fn complete_fanout_writes_ten_thousand_deliveries(store: DynStore) {
    // Arrange
    let c = chat_with_a_message(&store).await;
    let b = bind(&store, &c.bob, PushType::Fcm, "b1", &all_types()).await;
    let event = last_event(&store, &c.svc, EventKind::NewMessage).await;
    let deliveries: Vec<NewDelivery> = (0..10_000)
        .map(|i| NewDelivery {
            id: format!("{}:{i:05}", delivery_id(&event, &b)),
            ..delivery(&event, &b, due(0))
        })
        .collect();

    // Act
    store
        .complete_fanout(event.id, &deliveries)
        .await
        .expect("fan-out");

    // Assert
    assert_eq!(depth(&store).await, (2, 10_000));
    let claimed: BTreeSet<String> = claim_delivery_ids(&store, due(0), due(60), 20_000)
        .await
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = deliveries.iter().map(|d| d.id.clone()).collect();
    assert_eq!(claimed, expected);
}

/// A chunked fan-out records its progress with each chunk (deliveries written, the entry and
/// its lease kept); a claim after the lease ran out (the fanning node died) hands the
/// progress over, which never moves back; the last chunk removes the entry.
pub async fn fan_out_progress_survives_a_lost_lease_and_never_moves_back(store: DynStore) {
    // Arrange
    let c = chat_with_a_message(&store).await;
    let mut bs = [
        bind(&store, &c.alice, PushType::Apn, "a1", &all_types()).await,
        bind(&store, &c.bob, PushType::Fcm, "b1", &all_types()).await,
        bind(&store, &c.bob, PushType::Gcm, "b2", &all_types()).await,
    ];
    bs.sort_by(|x, y| x.sid.as_str().cmp(y.sid.as_str()));
    let ev = last_event(&store, &c.svc, EventKind::NewMessage).await;
    let first = store
        .claim_outbox(due(0), due(30), 100)
        .await
        .expect("claim");
    let item = first.iter().find(|i| i.event.id == ev.id).expect("claimed");
    assert_eq!(item.fanout_after, None);

    // Act: one chunk, then an older progress from a stale node
    store
        .fanout_progress(ev.id, &[delivery(&ev, &bs[0], due(0))], bs[0].sid.as_str())
        .await
        .expect("chunk 1");
    store
        .fanout_progress(ev.id, &[], "BS0")
        .await
        .expect("older progress");
    let depth_mid_fanout = depth(&store).await;
    let while_leased = claim_outbox_ids(&store, due(29), due(60), 100).await;
    let again = store
        .claim_outbox(due(31), due(60), 100)
        .await
        .expect("claim after the lease");
    store
        .complete_fanout(
            ev.id,
            &[delivery(&ev, &bs[1], due(0)), delivery(&ev, &bs[2], due(0))],
        )
        .await
        .expect("last chunk");

    // Assert
    assert_eq!(
        depth_mid_fanout,
        (3, 1),
        "the entry stays; chunk 1 is written"
    );
    assert!(while_leased.is_empty(), "progress keeps the lease");
    let item = again
        .iter()
        .find(|i| i.event.id == ev.id)
        .expect("reclaimed");
    assert_eq!(item.fanout_after.as_deref(), Some(bs[0].sid.as_str()));
    assert_eq!(item.attempts, 1);
    assert_eq!(depth(&store).await, (2, 3));
    assert!(!claim_outbox_ids(&store, due(61), due(90), 100)
        .await
        .contains(&ev.id));
}

// ---- deliveries ---------------------------------------------------------------------------------

/// A delivery claim takes only due deliveries (`available_at <= now`), oldest first, at most
/// `limit`, each with every field (a missing credential included).
pub async fn delivery_claims_take_due_ones_oldest_first_up_to_the_limit(store: DynStore) {
    // Arrange
    let c = chat_with_a_message(&store).await;
    let a = bind(&store, &c.alice, PushType::Apn, "a1", &all_types()).await;
    let b = bind(&store, &c.bob, PushType::Fcm, "b1", &all_types()).await;
    let events = push_events_of(&store, &c.svc).await;
    let msg = &events[2];
    let mut later = delivery(msg, &b, due(100));
    later.id = format!("{}:later", msg.id);
    let second = delivery(msg, &a, due(-1));
    let first = delivery(msg, &b, due(-2));
    let third = delivery(&events[0], &a, due(0));
    let mut first = first;
    first.credential_sid = Some(
        credential(&store, &c.svc.account_sid, PushType::Fcm)
            .await
            .sid,
    );
    store
        .complete_fanout(
            msg.id,
            &[later.clone(), second.clone(), third.clone(), first.clone()],
        )
        .await
        .expect("fan-out");

    // Act
    let too_early = claim_delivery_ids(&store, due(-3), due(60), 10).await;
    let one = store
        .claim_deliveries(due(0), due(60), 1)
        .await
        .expect("claim one");
    let rest = store
        .claim_deliveries(due(0), due(60), 10)
        .await
        .expect("claim the rest");

    // Assert
    assert!(too_early.is_empty());
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].new, first);
    assert_eq!(one[0].attempts, 0);
    let rest: Vec<NewDelivery> = rest.into_iter().map(|d| d.new).collect();
    assert_eq!(rest, vec![second, third], "the later one waits");
}

/// A claimed delivery is leased: no one else gets it until the lease has passed (at the
/// lease end it is still taken); then the next claim (a worker crashed) takes it over with the
/// attempt counted.
pub async fn a_delivery_lease_hides_it_until_it_expires(store: DynStore) {
    // Arrange
    let c = chat_with_a_message(&store).await;
    let b = bind(&store, &c.bob, PushType::Fcm, "b1", &all_types()).await;
    let event = last_event(&store, &c.svc, EventKind::NewMessage).await;
    fan_out(&store, &event, &[&b], due(0)).await;

    // Act
    let first = store
        .claim_deliveries(due(0), due(10), 10)
        .await
        .expect("claim");
    let while_leased = claim_delivery_ids(&store, due(5), due(15), 10).await;
    let at_lease_end = claim_delivery_ids(&store, due(10), due(20), 10).await;
    let after_expiry = store
        .claim_deliveries(due(11), due(21), 10)
        .await
        .expect("claim after the lease");

    // Assert
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempts, 0);
    assert!(while_leased.is_empty());
    assert!(
        at_lease_end.is_empty(),
        "lease_until < now frees a delivery"
    );
    assert_eq!(after_expiry.len(), 1);
    assert_eq!(after_expiry[0].new, first[0].new);
    assert_eq!(after_expiry[0].attempts, 1);
    assert_eq!(depth(&store).await, (2, 1), "claiming removes nothing");
}

/// Delivered and failed deliveries go; a retry releases the lease and comes back at its time,
/// not before, with the attempt counted; settling a delivery that is gone is not an error.
pub async fn settling_removes_finished_deliveries_and_postpones_retries(store: DynStore) {
    // Arrange
    let c = chat_with_a_message(&store).await;
    let a = bind(&store, &c.alice, PushType::Apn, "a1", &all_types()).await;
    let b = bind(&store, &c.bob, PushType::Fcm, "b1", &all_types()).await;
    let x = bind(&store, &c.bob, PushType::Gcm, "b2", &all_types()).await;
    let event = last_event(&store, &c.svc, EventKind::NewMessage).await;
    fan_out(&store, &event, &[&a, &b, &x], due(0)).await;
    let claimed = claim_delivery_ids(&store, due(0), due(1000), 100).await;
    assert_eq!(claimed.len(), 3);

    // Act
    store
        .settle_delivery(&delivery_id(&event, &a), &Settle::Delivered)
        .await
        .expect("delivered");
    store
        .settle_delivery(
            &delivery_id(&event, &b),
            &Settle::Failed {
                error: "400 bad payload".to_owned(),
            },
        )
        .await
        .expect("failed");
    store
        .settle_delivery(
            &delivery_id(&event, &x),
            &Settle::Retry {
                at: due(100),
                error: "503 unavailable".to_owned(),
            },
        )
        .await
        .expect("retry");
    let again_settled = store
        .settle_delivery(&delivery_id(&event, &a), &Settle::Delivered)
        .await;
    let before_due = claim_delivery_ids(&store, due(99), due(200), 100).await;
    let when_due = store
        .claim_deliveries(due(100), due(130), 100)
        .await
        .expect("claim when due");

    // Assert
    assert!(again_settled.is_ok(), "{again_settled:?}");
    assert!(
        before_due.is_empty(),
        "the retry waits (and the finished ones are gone)"
    );
    assert_eq!(when_due.len(), 1);
    assert_eq!(when_due[0].new.id, delivery_id(&event, &x));
    assert_eq!(when_due[0].attempts, 1, "one send before this claim");
    assert_eq!(depth(&store).await, (2, 1));
    assert_eq!(
        binding_sids(&store, &c.svc).await,
        sids(&[&a, &b, &x]),
        "no binding goes for these outcomes"
    );
}

/// A dead token removes the delivery, its binding and the binding's other pending deliveries;
/// other bindings' deliveries stay.
pub async fn a_dead_token_deletes_the_binding_and_its_other_pending_deliveries(store: DynStore) {
    // Arrange
    let c = chat_with_a_message(&store).await;
    let dead = bind(&store, &c.bob, PushType::Apn, "b1", &all_types()).await;
    let alive = bind(&store, &c.alice, PushType::Apn, "a1", &all_types()).await;
    let first = last_event(&store, &c.svc, EventKind::NewMessage).await;
    say(&store, &c.ch, "carol", "again").await;
    let second = last_event(&store, &c.svc, EventKind::NewMessage).await;
    fan_out(&store, &first, &[&dead, &alive], due(0)).await;
    fan_out(&store, &second, &[&dead, &alive], due(3600)).await;
    assert_eq!(
        claim_delivery_ids(&store, due(0), due(60), 100).await.len(),
        2
    );

    // Act
    store
        .settle_delivery(
            &delivery_id(&first, &dead),
            &Settle::DeadToken {
                reason: "Unregistered".to_owned(),
            },
        )
        .await
        .expect("dead token");

    // Assert
    assert_not_found(
        store
            .fetch_binding(&dead.account_sid, &dead.service_sid, &dead.sid)
            .await,
        "the dead binding",
    );
    assert_eq!(binding_sids(&store, &c.svc).await, sids(&[&alive]));
    assert_eq!(
        depth(&store).await.1,
        2,
        "alive's two deliveries remain; dead's two are gone"
    );
    let later: Vec<BindingSid> = store
        .claim_deliveries(due(3600), due(3660), 100)
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

/// A dead token reported for a binding that has re-registered with a new token since: the
/// delivery goes, the binding (now holding a live token) stays.
pub async fn a_dead_token_keeps_a_binding_that_reregistered_with_a_new_address(store: DynStore) {
    // Arrange
    let c = chat_with_a_message(&store).await;
    let old = bind(&store, &c.bob, PushType::Apn, "old-token", &all_types()).await;
    let event = last_event(&store, &c.svc, EventKind::NewMessage).await;
    fan_out(&store, &event, &[&old], due(0)).await;
    claim_delivery_ids(&store, due(0), due(60), 10).await;
    let mut reg = registration(
        &c.bob,
        PushType::Apn,
        "ep-old-token",
        "new-token",
        Timestamp::now(),
    );
    reg.sid = BindingSid::generate();
    let refreshed = store.register_binding(&reg).await.expect("re-register");
    assert_eq!(refreshed.binding.sid, old.sid, "same binding, new address");

    // Act
    store
        .settle_delivery(
            &delivery_id(&event, &old),
            &Settle::DeadToken {
                reason: "BadDeviceToken".to_owned(),
            },
        )
        .await
        .expect("dead token");

    // Assert
    let kept = store
        .fetch_binding(&old.account_sid, &old.service_sid, &old.sid)
        .await
        .expect("binding kept");
    assert_eq!(kept.address, "new-token");
    assert_eq!(depth(&store).await.1, 0, "the delivery itself is gone");
}

/// `settle_deliveries` does to a batch what `settle_delivery` does to each: finished rows go,
/// retries are postponed, a dead token takes its binding and the binding's other deliveries;
/// ids that are gone are no-ops; deliveries not in the batch keep their lease.
pub async fn a_settle_batch_does_what_settling_one_by_one_does(store: DynStore) {
    // Arrange
    let c = chat_with_a_message(&store).await;
    let a = bind(&store, &c.alice, PushType::Apn, "a1", &all_types()).await;
    let b = bind(&store, &c.bob, PushType::Fcm, "b1", &all_types()).await;
    let x = bind(&store, &c.bob, PushType::Gcm, "b2", &all_types()).await;
    let first = last_event(&store, &c.svc, EventKind::NewMessage).await;
    say(&store, &c.ch, "alice", "second").await;
    let second = last_event(&store, &c.svc, EventKind::NewMessage).await;
    fan_out(&store, &first, &[&a, &b, &x], due(0)).await;
    fan_out(&store, &second, &[&a, &b, &x], due(0)).await;
    assert_eq!(
        claim_delivery_ids(&store, due(0), due(1000), 100)
            .await
            .len(),
        6
    );

    // Act
    store
        .settle_deliveries(&[
            (delivery_id(&first, &a), Settle::Delivered),
            (
                delivery_id(&second, &a),
                Settle::Failed {
                    error: "400".to_owned(),
                },
            ),
            (
                delivery_id(&first, &b),
                Settle::Retry {
                    at: due(100),
                    error: "503 unavailable".to_owned(),
                },
            ),
            (
                delivery_id(&first, &x),
                Settle::DeadToken {
                    reason: "UNREGISTERED".to_owned(),
                },
            ),
            (
                "999999:BS00000000000000000000000000000000".to_owned(),
                Settle::Delivered,
            ),
        ])
        .await
        .expect("batch");

    // Assert: b's retry is due at its time; b's second delivery is still leased; x's second
    // delivery went with its binding
    assert_eq!(depth(&store).await.1, 2);
    assert!(claim_delivery_ids(&store, due(99), due(200), 100)
        .await
        .is_empty());
    assert_eq!(
        claim_delivery_ids(&store, due(100), due(5000), 100).await,
        [delivery_id(&first, &b)]
    );
    assert_eq!(
        claim_delivery_ids(&store, due(1001), due(2000), 100).await,
        [delivery_id(&second, &b)],
        "the delivery left out of the batch, once its lease is over"
    );
    assert_eq!(
        binding_sids(&store, &c.svc).await,
        sids(&[&a, &b]),
        "the dead token's binding is gone"
    );
}

/// `push_queue_depth` counts outbox entries and deliveries waiting, leased or not, across
/// services; fan-out and settlement move them.
pub async fn queue_depth_counts_waiting_entries_and_deliveries(store: DynStore) {
    // Arrange
    let empty = depth(&store).await;
    let c = chat_with_a_message(&store).await;
    let other = chat_with_a_message(&store).await;
    let b = bind(&store, &c.bob, PushType::Fcm, "b1", &all_types()).await;
    let event = last_event(&store, &c.svc, EventKind::NewMessage).await;

    // Act + Assert
    assert_eq!(empty, (0, 0));
    assert_eq!(depth(&store).await, (6, 0), "three events in each service");
    claim_outbox_ids(&store, due(0), due(60), 2).await;
    assert_eq!(depth(&store).await, (6, 0), "leased entries still wait");
    fan_out(&store, &event, &[&b], due(0)).await;
    assert_eq!(depth(&store).await, (5, 1));
    claim_delivery_ids(&store, due(0), due(60), 10).await;
    assert_eq!(depth(&store).await, (5, 1), "a leased delivery still waits");
    store
        .settle_delivery(&delivery_id(&event, &b), &Settle::Delivered)
        .await
        .expect("settle");
    assert_eq!(depth(&store).await, (5, 0));
    let _ = other;
}

/// What `parley import` writes (`Origin::import`) queues no push: a member added and a message
/// imported leave the outbox empty, while the same changes made over REST queue theirs.
pub async fn imported_changes_queue_no_push(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "imported").await;
    let alice = user(&store, &svc, "alice").await;
    let bob = user(&store, &svc, "bob").await;
    let r = ChannelRef::Sid(ch.sid.clone());

    // Act: imported
    store
        .create_member(
            &member_value(&ch, &alice, at(10)),
            &NO_LIMITS,
            None,
            &Origin::import(),
        )
        .await
        .expect("import member");
    let mut old = message_value(&ch, "alice", "from the past");
    old.index = 7;
    store
        .import_message(&r, &old, &Origin::import())
        .await
        .expect("import message");
    let after_import = depth(&store).await;
    // ... and the same over REST.
    store
        .create_member(
            &member_value(&ch, &bob, at(20)),
            &NO_LIMITS,
            None,
            &Origin::rest(),
        )
        .await
        .expect("join");
    store
        .create_message(&r, &message_value(&ch, "bob", "news"), &Origin::rest())
        .await
        .expect("post");

    // Assert
    assert_eq!(after_import, (0, 0), "an import queued pushes");
    assert_eq!(
        depth(&store).await,
        (2, 0),
        "the REST join and post queue theirs"
    );
    let kinds: Vec<EventKind> = store
        .list_events(&svc.sid, 0, 100)
        .await
        .expect("events")
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == EventKind::NewMessage)
            .count(),
        2,
        "the import is in the change log all the same: {kinds:?}"
    );
}

// ---- badge --------------------------------------------------------------------------------------

/// The badge counts the identity's two-member channels with messages past its read horizon
/// (no horizon yet: any message counts, own ones too); groups, empty channels, other
/// identities and other services do not count.
pub async fn badge_counts_unread_two_member_channels(store: DynStore) {
    // Arrange
    let acct = account(&store).await;
    let svc = service(&store, &acct).await;
    let alice = user(&store, &svc, "alice").await;
    let bob = user(&store, &svc, "bob").await;
    let carol = user(&store, &svc, "carol").await;
    let ab = channel(&store, &svc, "dm-bob").await;
    let ac = channel(&store, &svc, "dm-carol").await;
    let quiet = channel(&store, &svc, "dm-quiet").await;
    let group = channel(&store, &svc, "group").await;
    for (ch, other) in [(&ab, &bob), (&ac, &carol), (&quiet, &bob)] {
        join_as(&store, ch, &alice, NotificationLevel::Default).await;
        join_as(&store, ch, other, NotificationLevel::Default).await;
    }
    for u in [&alice, &bob, &carol] {
        join_as(&store, &group, u, NotificationLevel::Default).await;
    }
    let svc2 = service(&store, &acct).await;
    let alice2 = user(&store, &svc2, "alice").await;
    let bob2 = user(&store, &svc2, "bob").await;
    let dm2 = channel(&store, &svc2, "dm").await;
    join_as(&store, &dm2, &alice2, NotificationLevel::Default).await;
    join_as(&store, &dm2, &bob2, NotificationLevel::Default).await;
    say(&store, &dm2, "bob", "elsewhere").await;
    let badge = |svc: ServiceSid, identity: &'static str| {
        let store = store.clone();
        async move { store.badge_count(&svc, identity).await.expect("badge") }
    };

    // Act + Assert
    assert_eq!(badge(svc.sid.clone(), "alice").await, 0, "no messages yet");
    say(&store, &ab, "bob", "one").await;
    say(&store, &ab, "bob", "two").await;
    say(&store, &group, "bob", "all").await;
    assert_eq!(badge(svc.sid.clone(), "alice").await, 1);
    assert_eq!(
        badge(svc.sid.clone(), "bob").await,
        1,
        "dm-bob: no horizon yet (own messages count); dm-quiet: no message; group: not a DM"
    );
    say(&store, &ac, "carol", "hey").await;
    assert_eq!(badge(svc.sid.clone(), "alice").await, 2);
    assert_eq!(badge(svc.sid.clone(), "carol").await, 1);
    consume(&store, &ab, "alice", 0).await;
    assert_eq!(badge(svc.sid.clone(), "alice").await, 2, "index 1 unread");
    consume(&store, &ab, "alice", 1).await;
    assert_eq!(badge(svc.sid.clone(), "alice").await, 1);
    consume(&store, &ac, "alice", 0).await;
    assert_eq!(badge(svc.sid.clone(), "alice").await, 0, "all read");
    say(&store, &ac, "carol", "again").await;
    assert_eq!(badge(svc.sid.clone(), "alice").await, 1);
    assert_eq!(badge(svc.sid.clone(), "nobody").await, 0);
    assert_eq!(
        badge(svc2.sid.clone(), "alice").await,
        1,
        "another service's alice is someone else"
    );
    let svc3 = service(&store, &acct).await;
    assert_eq!(badge(svc3.sid.clone(), "alice").await, 0);
}

// ---- log ----------------------------------------------------------------------------------------

/// A log row of `svc` for delivery `id`.
fn log_entry(
    svc: &Service,
    id: &str,
    attempt: i32,
    outcome: &str,
    date: Timestamp,
) -> PushLogEntry {
    PushLogEntry {
        seq: 0,
        id: id.to_owned(),
        account_sid: svc.account_sid.clone(),
        service_sid: svc.sid.clone(),
        event_id: 7,
        kind: "new_message".to_owned(),
        binding_sid: BindingSid::generate(),
        identity: "bob".to_owned(),
        binding_type: PushType::Apn,
        outcome: outcome.to_owned(),
        reason: (outcome != "delivered").then(|| "503".to_owned()),
        attempt,
        date_created: date,
    }
}

/// A page request after (or before) a listed log row: its date and its `seq` as 20 digits.
fn log_page(size: u32, entry: &PushLogEntry, backwards: bool) -> PageRequest {
    PageRequest {
        size,
        cursor: Some(Cursor {
            key: entry.date_created.unix_micros(),
            sid: format!("{:020}", entry.seq),
            backwards,
        }),
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

/// The log lists a service's rows by `(date_created, seq)`: by date, then in append order
/// within an instant (seq is assigned by the store, increasing); cursors built from a row's
/// date and seq page forwards (also between two rows of one instant) and backwards. Another
/// account sees nothing; another service only its own rows.
pub async fn the_push_log_pages_by_date_then_append_order_within_its_service(store: DynStore) {
    // Arrange: rows over 6 instants, appended out of order, several per instant; a delivery id
    // repeats across attempts
    let acct = account(&store).await;
    let svc = service(&store, &acct).await;
    let other = service(&store, &acct).await;
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
        let entry = log_entry(&svc, id, attempt, outcome, at(sec));
        store.append_push_log(&entry).await.expect("append");
        appended.push(entry);
    }
    let foreign = log_entry(&other, "9:x", 1, "delivered", at(1));
    store
        .append_push_log(&foreign)
        .await
        .expect("append to the other service");
    let mut expected = appended.clone();
    expected.sort_by_key(|x| x.date_created); // stable: append order within an instant

    // Act: forward in pages of 3 (splitting the rows of one instant)
    let mut walked = Vec::new();
    let mut req = PageRequest::first(3);
    loop {
        let p = store
            .list_push_log(&acct, &svc.sid, &req)
            .await
            .expect("page");
        walked.extend(p.items.iter().cloned());
        match p.items.last() {
            Some(last) if p.more => req = log_page(3, last, false),
            _ => break,
        }
        assert!(walked.len() <= expected.len(), "paging does not terminate");
    }

    // Assert
    assert_eq!(without_seq(&walked), expected);
    assert!(walked.iter().all(|e| e.seq > 0));
    let seqs: BTreeSet<i64> = walked.iter().map(|e| e.seq).collect();
    assert_eq!(seqs.len(), walked.len(), "seq is unique");
    assert!(
        walked
            .windows(2)
            .all(|w| w[0].date_created < w[1].date_created || w[0].seq < w[1].seq),
        "seq breaks ties in append order"
    );
    // after the first of two rows at one instant comes the second
    let first_at_1 = &walked[1];
    assert_eq!(first_at_1.id, "1:b");
    let after = store
        .list_push_log(&acct, &svc.sid, &log_page(20, first_at_1, false))
        .await
        .expect("after one row");
    assert_eq!(after.items, walked[2..]);
    assert_eq!(after.items[0].id, "1:d", "same instant, appended later");
    assert!(!after.more);
    // backwards from the last row
    let n = walked.len();
    let back = store
        .list_push_log(&acct, &svc.sid, &log_page(4, &walked[n - 1], true))
        .await
        .expect("back");
    assert_eq!(back.items, walked[n - 5..n - 1]);
    assert!(back.more);
    // another account sees nothing; another service only its own rows
    let stranger = store
        .list_push_log(&AccountSid::generate(), &svc.sid, &PageRequest::first(50))
        .await
        .expect("stranger");
    assert!(stranger.items.is_empty());
    let theirs = store
        .list_push_log(&acct, &other.sid, &PageRequest::first(50))
        .await
        .expect("other service");
    assert_eq!(without_seq(&theirs.items), [foreign]);
}

/// A log cursor whose `sid` is not a seq (a delivery id, free text) is refused as an invalid
/// reference, forwards and backwards.
pub async fn a_push_log_cursor_that_is_not_a_seq_is_refused(store: DynStore) {
    // Arrange
    let acct = account(&store).await;
    let svc = service(&store, &acct).await;
    let entry = log_entry(&svc, "1:a", 1, "delivered", at(0));
    store.append_push_log(&entry).await.expect("append");

    // Act + Assert
    for (sid, backwards) in [("1:a", false), ("not-a-seq", false), ("not-a-seq", true)] {
        let req = PageRequest {
            size: 4,
            cursor: Some(Cursor {
                key: at(0).unix_micros(),
                sid: sid.to_owned(),
                backwards,
            }),
        };
        let result = store.list_push_log(&acct, &svc.sid, &req).await;
        assert!(
            matches!(result, Err(StoreError::InvalidReference("push log cursor"))),
            "{sid} (backwards: {backwards}): {result:?}"
        );
    }
}

/// Retention: `prune_push_log` deletes rows older than the cutoff in every service, at most
/// `limit` a call, and says how many; newer rows stay.
pub async fn the_push_log_prunes_old_rows_in_batches(store: DynStore) {
    // Arrange: ten rows at at(0..10) in one service, two older rows in another
    let acct = account(&store).await;
    let svc = service(&store, &acct).await;
    let other = service(&store, &acct).await;
    for i in 0..10 {
        let entry = log_entry(&svc, &format!("{i}:x"), 1, "delivered", at(i));
        store.append_push_log(&entry).await.expect("append");
    }
    for i in [2, 9] {
        let entry = log_entry(&other, &format!("{i}:y"), 1, "delivered", at(i));
        store.append_push_log(&entry).await.expect("append other");
    }
    let cutoff = at(7);

    // Act
    let first = store.prune_push_log(cutoff, 4).await.expect("prune 1");
    let second = store.prune_push_log(cutoff, 4).await.expect("prune 2");
    let third = store.prune_push_log(cutoff, 4).await.expect("prune 3");

    // Assert
    assert_eq!((first, second, third), (4, 4, 0), "7 + 1 older rows");
    let ids = |svc: &Service| {
        let store = store.clone();
        let (acct, sid) = (svc.account_sid.clone(), svc.sid.clone());
        async move {
            store
                .list_push_log(&acct, &sid, &PageRequest::first(50))
                .await
                .expect("list")
                .items
                .into_iter()
                .map(|x| x.id)
                .collect::<Vec<String>>()
        }
    };
    assert_eq!(ids(&svc).await, ["7:x", "8:x", "9:x"]);
    assert_eq!(ids(&other).await, ["9:y"]);
}

/// Appending a log row for a service that does not exist is `NotFound`, and lists nothing.
pub async fn appending_to_the_log_of_a_missing_service_is_not_found(store: DynStore) {
    // Arrange
    let acct = account(&store).await;
    let svc = service(&store, &acct).await;
    let mut orphan = log_entry(&svc, "1:x", 1, "delivered", at(0));
    orphan.service_sid = ServiceSid::generate();
    let mut wrong_account = log_entry(&svc, "2:x", 1, "delivered", at(0));
    wrong_account.account_sid = AccountSid::generate();

    // Act
    let missing_service = store.append_push_log(&orphan).await;
    let other_account = store.append_push_log(&wrong_account).await;

    // Assert
    assert_not_found(missing_service, "a missing service");
    assert_not_found(other_account, "the service under another account");
    let listed = store
        .list_push_log(&acct, &svc.sid, &PageRequest::first(50))
        .await
        .expect("list");
    assert!(listed.items.is_empty());
}

/// Deleting a service removes its log, its outbox entries and its pending deliveries; another
/// service's stay.
pub async fn deleting_a_service_removes_its_log_and_push_queues(store: DynStore) {
    // Arrange
    let c = chat_with_a_message(&store).await;
    let kept = chat_with_a_message(&store).await;
    let b = bind(&store, &c.bob, PushType::Fcm, "b1", &all_types()).await;
    let event = last_event(&store, &c.svc, EventKind::NewMessage).await;
    fan_out(&store, &event, &[&b], due(0)).await;
    store
        .append_push_log(&log_entry(&c.svc, "1:x", 1, "delivered", at(0)))
        .await
        .expect("append");
    store
        .append_push_log(&log_entry(&kept.svc, "2:x", 1, "delivered", at(0)))
        .await
        .expect("append kept");
    assert_eq!(depth(&store).await, (5, 1));

    // Act
    store
        .delete_service(&c.svc.account_sid, &c.svc.sid)
        .await
        .expect("delete service");

    // Assert
    assert_eq!(depth(&store).await, (3, 0), "the other service's 3 entries");
    let left = store
        .list_push_log(&c.svc.account_sid, &c.svc.sid, &PageRequest::first(50))
        .await
        .expect("list");
    assert!(left.items.is_empty());
    let theirs = store
        .list_push_log(
            &kept.svc.account_sid,
            &kept.svc.sid,
            &PageRequest::first(50),
        )
        .await
        .expect("list kept");
    assert_eq!(theirs.items.len(), 1);
}
