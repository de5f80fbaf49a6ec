//! Reading the change log (`EventStore::claim_log`, `advance_log`, `trim_events`;
//! docs/change-log.md): per-consumer positions, leases, trimming.
//!
//! Events are written through the public store API (channels and messages); the expected
//! events are always what `list_events` shows, never a hard-coded count. Leases use fixed
//! instants ([`at`]): a claim compares its `now` only with stored `lease_until` values. Events
//! carry the server clock, so trimming cutoffs are taken from the clock between writes.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::channel::Channel;
use crate::event::Event;
use crate::log::LogClaim;
use crate::service::Service;
use crate::store::{Conflict, StoreError};
use crate::Timestamp;

use super::chat::{channel, events_of, post};
use super::push::due;
use super::{account, at, service, DynStore};

/// The consumer name the webhook sender uses.
const WEBHOOKS: &str = "webhooks";

/// Lease length used by these cases.
const LEASE: i64 = 60;

/// A service with a channel and `posts` messages in it; returns the service and the channel.
async fn service_with_posts(store: &DynStore, posts: usize) -> (Service, Channel) {
    let acct = account(store).await;
    let svc = service(store, &acct).await;
    let ch = channel(store, &svc, "log").await;
    for i in 0..posts {
        post(store, &ch, &format!("message {i}")).await;
    }
    (svc, ch)
}

/// `owner` claims for `consumer` at `at(now)`, lease [`LEASE`] seconds, up to `limit` events.
async fn claim(
    store: &DynStore,
    consumer: &str,
    owner: &str,
    now: i64,
    limit: u32,
) -> Option<LogClaim> {
    store
        .claim_log(consumer, owner, at(now), at(now + LEASE), limit)
        .await
        .expect("claim")
}

/// Claim, expecting a claim of `svc`.
async fn claim_of(
    store: &DynStore,
    svc: &Service,
    consumer: &str,
    owner: &str,
    now: i64,
    limit: u32,
) -> LogClaim {
    let c = claim(store, consumer, owner, now, limit)
        .await
        .unwrap_or_else(|| panic!("{owner} claims something for {consumer}"));
    assert_eq!(c.service_sid, svc.sid, "the claimed service");
    assert_eq!(c.account_sid, svc.account_sid, "its account");
    assert_eq!(c.consumer, consumer);
    c
}

/// Read `consumer`'s whole backlog of its only service as owner `reader` and advance to its
/// end; returns the events read.
async fn read_all(store: &DynStore, svc: &Service, consumer: &str, now: i64) -> Vec<Event> {
    let c = claim_of(store, svc, consumer, "reader", now, 10_000).await;
    store
        .advance_log(&c, "reader", c.last_seq())
        .await
        .expect("advance");
    c.events
}

/// Complete the push fan-out of every outbox entry (so events lose their `push_outbox` row),
/// except the entry of `keep`.
async fn fan_out_all_except(store: &DynStore, keep: Option<i64>) {
    let items = store
        .claim_outbox(due(0), due(60), 10_000)
        .await
        .expect("claim outbox");
    for item in items {
        if Some(item.event.id) != keep {
            store
                .complete_fanout(item.event.id, &[])
                .await
                .expect("complete fan-out");
        }
    }
}

/// The server clock, a little after every event written so far and before every later one.
async fn clock_between_writes() -> Timestamp {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t = Timestamp::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    t
}

fn seqs(events: &[Event]) -> Vec<i64> {
    events.iter().map(|e| e.seq).collect()
}

// ---- cases --------------------------------------------------------------------------------------

/// A claim returns the events after the consumer's position in seq order, at most `limit`;
/// advancing moves the position so the next claim continues there; a consumer that has read
/// everything gets nothing until a new event arrives.
pub async fn log_claims_return_the_events_after_the_position_in_seq_order(store: DynStore) {
    // Arrange
    let (svc, ch) = service_with_posts(&store, 5).await;
    let all = events_of(&store, &svc).await;
    assert!(all.len() >= 6, "a channel and five messages: {all:?}");
    let expected: Vec<i64> = (1..=i64::try_from(all.len()).expect("len")).collect();
    assert_eq!(seqs(&all), expected, "a service's seqs are 1, 2, 3, …");

    // Act / Assert: three at a time.
    let first = claim_of(&store, &svc, WEBHOOKS, "node-a", 0, 3).await;
    assert_eq!(first.position, 0, "a new consumer starts at 0");
    assert_eq!(first.events, all[..3].to_vec());
    assert_eq!(first.last_seq(), all[2].seq);
    store
        .advance_log(&first, "node-a", first.last_seq())
        .await
        .expect("advance");

    let rest = claim_of(&store, &svc, WEBHOOKS, "node-a", 1, 100).await;
    assert_eq!(rest.position, all[2].seq);
    assert_eq!(rest.events, all[3..].to_vec());
    store
        .advance_log(&rest, "node-a", rest.last_seq())
        .await
        .expect("advance");

    assert!(
        claim(&store, WEBHOOKS, "node-a", 2, 100).await.is_none(),
        "everything read: nothing to claim"
    );

    let m = post(&store, &ch, "late").await;
    let again = claim_of(&store, &svc, WEBHOOKS, "node-a", 3, 100).await;
    assert_eq!(again.position, all.last().expect("events").seq);
    assert_eq!(
        again.events.len(),
        1,
        "only the new event: {:?}",
        again.events
    );
    assert_eq!(again.events[0].message_sid.as_ref(), Some(&m.sid));
    assert_eq!(again.events[0].seq, all.last().expect("events").seq + 1);
}

/// Positions are per consumer (and per service): one consumer reading everything does not move
/// another's, and each service has its own position.
pub async fn log_positions_are_independent_per_consumer_and_service(store: DynStore) {
    // Arrange
    let (svc, _) = service_with_posts(&store, 3).await;
    let all = events_of(&store, &svc).await;

    // Act: webhooks reads everything.
    let read = read_all(&store, &svc, WEBHOOKS, 0).await;

    // Assert
    assert_eq!(read, all);
    assert!(claim(&store, WEBHOOKS, "node-a", 1, 100).await.is_none());
    let other = claim_of(&store, &svc, "projector", "node-a", 1, 100).await;
    assert_eq!(other.position, 0, "another consumer starts at 0");
    assert_eq!(other.events, all, "and sees the whole retained log");

    // A second service: webhooks has a position of 0 there, whatever it read in the first.
    let (svc2, _) = service_with_posts(&store, 2).await;
    let all2 = events_of(&store, &svc2).await;
    let c2 = claim_of(&store, &svc2, WEBHOOKS, "node-a", 2, 100).await;
    assert_eq!(c2.position, 0);
    assert_eq!(c2.events, all2);
    assert!(c2.events.iter().all(|e| e.service_sid == svc2.sid));
}

/// While a lease holds, nobody else (nor the holder) gets that (consumer, service): a second
/// claimer gets another service, or nothing; after expiry the service is claimable again, from
/// the last advanced position. Another consumer is not blocked by the lease.
pub async fn a_leased_service_is_claimed_by_nobody_else_until_the_lease_expires(store: DynStore) {
    // Arrange: two services with events.
    let (svc1, _) = service_with_posts(&store, 2).await;
    let (svc2, _) = service_with_posts(&store, 2).await;

    // Act / Assert
    let a = claim(&store, WEBHOOKS, "node-a", 0, 100)
        .await
        .expect("node-a claims");
    let b = claim(&store, WEBHOOKS, "node-b", 1, 100)
        .await
        .expect("node-b claims");
    let both: BTreeSet<_> = [a.service_sid.clone(), b.service_sid.clone()].into();
    assert_eq!(
        both,
        [svc1.sid.clone(), svc2.sid.clone()].into(),
        "the second claimer gets the other service"
    );
    assert!(
        claim(&store, WEBHOOKS, "node-c", 2, 100).await.is_none(),
        "both leased: nothing for a third claimer"
    );
    assert!(
        claim(&store, WEBHOOKS, "node-a", 2, 100).await.is_none(),
        "nor for a holder"
    );
    assert!(
        claim(&store, WEBHOOKS, "node-c", LEASE, 100)
            .await
            .is_none(),
        "a lease holds up to its end"
    );
    let other_consumer = claim(&store, "projector", "node-c", 2, 100).await;
    assert!(other_consumer.is_some(), "leases are per consumer");

    // node-b finishes and releases; node-a's lease expires without an advance.
    store
        .advance_log(&b, "node-b", b.last_seq())
        .await
        .expect("advance");
    let taken = claim(&store, WEBHOOKS, "node-c", LEASE + 1, 100)
        .await
        .expect("an expired lease is claimable");
    assert_eq!(
        taken.service_sid, a.service_sid,
        "node-a's service, not the read one"
    );
    assert_eq!(taken.position, 0, "from the last advanced position");
    assert_eq!(taken.events, a.events, "the same events again");
}

/// Advancing never moves a position back, nor past the service's last event; advancing by a
/// lost lease is refused and changes nothing.
pub async fn advancing_never_moves_back_and_a_lost_lease_is_refused(store: DynStore) {
    // Arrange
    let (svc, ch) = service_with_posts(&store, 4).await;
    let all = events_of(&store, &svc).await;

    // Act / Assert: never back.
    let c = claim_of(&store, &svc, WEBHOOKS, "node-a", 0, 100).await;
    store
        .advance_log(&c, "node-a", all[3].seq)
        .await
        .expect("advance");
    let c = claim_of(&store, &svc, WEBHOOKS, "node-a", 1, 100).await;
    assert_eq!(c.position, all[3].seq);
    store
        .advance_log(&c, "node-a", all[1].seq)
        .await
        .expect("advancing to less is not an error");
    let c = claim_of(&store, &svc, WEBHOOKS, "node-a", 2, 100).await;
    assert_eq!(c.position, all[3].seq, "the position did not move back");
    assert_eq!(c.events, all[4..].to_vec());

    // Never past the log: a later event is still read.
    store
        .advance_log(&c, "node-a", c.last_seq() + 1_000)
        .await
        .expect("advance");
    let m = post(&store, &ch, "after the jump").await;
    let c = claim_of(&store, &svc, WEBHOOKS, "node-a", 3, 100).await;
    assert_eq!(c.position, all.last().expect("events").seq);
    assert_eq!(c.events.len(), 1);
    assert_eq!(c.events[0].message_sid.as_ref(), Some(&m.sid));

    // A lost lease: node-a's expires, node-b takes the service over.
    let b = claim_of(&store, &svc, WEBHOOKS, "node-b", 3 + LEASE + 1, 100).await;
    assert_eq!(b.position, c.position);
    let lost = store.advance_log(&c, "node-a", c.last_seq()).await;
    assert!(
        matches!(lost, Err(StoreError::Conflict(Conflict::LeaseLost))),
        "advancing by a lost lease: {lost:?}"
    );
    assert!(
        matches!(
            store.advance_log(&b, "node-a", b.last_seq()).await,
            Err(StoreError::Conflict(Conflict::LeaseLost))
        ),
        "an owner that never held the lease"
    );
    store
        .advance_log(&b, "node-b", b.position)
        .await
        .expect("the holder advances");
    let again = claim_of(&store, &svc, WEBHOOKS, "node-c", 3 + LEASE + 2, 100).await;
    assert_eq!(
        again.position, c.position,
        "the refused advance changed nothing"
    );
    assert_eq!(again.events, b.events);
    assert!(
        matches!(
            store.advance_log(&b, "node-b", b.last_seq()).await,
            Err(StoreError::Conflict(Conflict::LeaseLost))
        ),
        "node-b released it: node-c holds it now"
    );
}

/// Trimming deletes exactly the events older than the cutoff that every named consumer has
/// passed (no position = 0) and that have no push_outbox row, at most `limit` per call.
pub async fn trimming_deletes_only_old_events_every_consumer_passed_without_an_outbox_row(
    store: DynStore,
) {
    // Arrange: old events, one of them still waiting for its push fan-out; then the cutoff;
    // then young events. `webhooks` reads everything, `audit` the first few old ones.
    let (svc, ch) = service_with_posts(&store, 6).await;
    let old = events_of(&store, &svc).await;
    let pending = old
        .iter()
        .rev()
        .find(|e| e.kind.is_push())
        .expect("a message event")
        .clone();
    fan_out_all_except(&store, Some(pending.id)).await;
    let cutoff = clock_between_writes().await;
    post(&store, &ch, "young 1").await;
    post(&store, &ch, "young 2").await;
    fan_out_all_except(&store, Some(pending.id)).await;
    let all = events_of(&store, &svc).await;
    assert!(all
        .iter()
        .all(|e| (e.date_created < cutoff) == (e.seq <= old.last().expect("old").seq)));
    read_all(&store, &svc, WEBHOOKS, 0).await;
    let k = old[2].seq;
    let audit = claim_of(&store, &svc, "audit", "reader", 0, 100).await;
    store
        .advance_log(&audit, "reader", k)
        .await
        .expect("advance audit");
    let consumers = [WEBHOOKS, "audit"];

    // Act / Assert: a consumer that never read the service holds everything.
    assert_eq!(
        store
            .trim_events(&[WEBHOOKS, "never-ran"], cutoff, 1000)
            .await
            .expect("trim"),
        0
    );
    assert_eq!(events_of(&store, &svc).await, all);

    // Up to audit's position, one at a time, then the rest of the batch.
    let eligible =
        |e: &Event, bound: i64| e.date_created < cutoff && e.seq <= bound && e.id != pending.id;
    let first_round: Vec<i64> = all
        .iter()
        .filter(|e| eligible(e, k))
        .map(|e| e.seq)
        .collect();
    assert!(!first_round.is_empty());
    assert_eq!(
        store
            .trim_events(&consumers, cutoff, 1)
            .await
            .expect("trim"),
        1,
        "at most the limit"
    );
    let n = store
        .trim_events(&consumers, cutoff, 1000)
        .await
        .expect("trim");
    assert_eq!(n + 1, u64::try_from(first_round.len()).expect("len"));
    let left: Vec<Event> = all
        .iter()
        .filter(|e| !first_round.contains(&e.seq))
        .cloned()
        .collect();
    assert_eq!(events_of(&store, &svc).await, left);

    // audit catches up: every old event goes except the one push has not fanned out.
    let audit = claim_of(&store, &svc, "audit", "reader", 1, 100).await;
    store
        .advance_log(&audit, "reader", audit.last_seq())
        .await
        .expect("advance audit");
    let last = all.last().expect("events").seq;
    let second_round = left.iter().filter(|e| eligible(e, last)).count();
    assert_eq!(
        store
            .trim_events(&consumers, cutoff, 1000)
            .await
            .expect("trim"),
        u64::try_from(second_round).expect("len")
    );
    let kept: Vec<Event> = all
        .iter()
        .filter(|e| e.id == pending.id || e.date_created >= cutoff)
        .cloned()
        .collect();
    assert_eq!(events_of(&store, &svc).await, kept);
    assert!(
        kept.iter().any(|e| e.id == pending.id),
        "the pending push event stays"
    );
    assert_eq!(
        store
            .trim_events(&consumers, cutoff, 1000)
            .await
            .expect("trim"),
        0,
        "nothing left to trim"
    );

    // Once fanned out, it goes too.
    store
        .complete_fanout(pending.id, &[])
        .await
        .expect("complete fan-out");
    assert_eq!(
        store
            .trim_events(&consumers, cutoff, 1000)
            .await
            .expect("trim"),
        1
    );
    assert!(events_of(&store, &svc)
        .await
        .iter()
        .all(|e| e.date_created >= cutoff));
}

/// Trimming never touches the per-service counter: after every event was trimmed, the next one
/// gets the next seq, and a consumer reads it.
pub async fn trimming_everything_never_makes_seq_go_back(store: DynStore) {
    // Arrange
    let (svc, ch) = service_with_posts(&store, 3).await;
    fan_out_all_except(&store, None).await;
    let all = read_all(&store, &svc, WEBHOOKS, 0).await;
    let last = all.last().expect("events").seq;
    let cutoff = clock_between_writes().await;

    // Act
    let n = store
        .trim_events(&[WEBHOOKS], cutoff, 1000)
        .await
        .expect("trim");
    let m = post(&store, &ch, "after trimming").await;

    // Assert
    assert_eq!(n, u64::try_from(all.len()).expect("len"));
    let now = events_of(&store, &svc).await;
    assert_eq!(now.len(), 1, "only the new event: {now:?}");
    assert_eq!(now[0].seq, last + 1, "the seq goes on");
    assert_eq!(now[0].message_sid.as_ref(), Some(&m.sid));
    let c = claim_of(&store, &svc, WEBHOOKS, "node-a", 1, 100).await;
    assert_eq!(c.position, last);
    assert_eq!(c.events, now);
    assert!(
        claim(&store, "new-consumer", "node-a", 1, 100)
            .await
            .is_some_and(|c| c.events == now),
        "a new consumer sees what is retained"
    );
}
