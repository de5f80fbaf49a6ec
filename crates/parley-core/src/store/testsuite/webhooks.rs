//! The webhook call queue (`WebhookStore`): queueing together with the change-log position,
//! strict order per key, isolation between keys, leases, retries.
//!
//! The queue is global to a database: these cases expect a store whose queue holds only their
//! own calls (every factory gives a fresh database). A lease on the log comes from
//! `claim_log(WEBHOOKS, …)` over the events the case's own writes append.

use std::collections::BTreeSet;

use crate::service::Service;
use crate::store::{Conflict, StoreError};
use crate::webhook_call::{NewWebhookCall, Settle, WebhookCall};
use crate::Timestamp;

use super::{account, at, service, user, DynStore};

/// The consumer name the webhook engine uses.
const WEBHOOKS: &str = "webhooks";

/// A call to queue for `service` with `key`, carrying `n` in its parameters.
fn call(service: &Service, key: &str, n: usize) -> NewWebhookCall {
    NewWebhookCall {
        account_sid: service.account_sid.clone(),
        service_sid: service.sid.clone(),
        channel_sid: None,
        url: format!("https://hooks.example.com/{key}"),
        method: "POST".to_owned(),
        event_type: "onUserAdded".to_owned(),
        params: vec![
            ("EventType".to_owned(), "onUserAdded".to_owned()),
            ("N".to_owned(), n.to_string()),
            ("Body".to_owned(), "ünïcødé & = ?".to_owned()),
        ],
        retry_count_max: 2,
        order_key: key.to_owned(),
        available_at: at(0),
        date_created: at(0),
        attempts: 0,
        leased_to: None,
    }
}

/// The `N` parameter of a claimed call.
fn n_of(c: &WebhookCall) -> usize {
    c.params
        .iter()
        .find(|(k, _)| k == "N")
        .and_then(|(_, v)| v.parse().ok())
        .expect("N param")
}

/// A service with one event (a user was added) and `owner`'s lease on its webhook log
/// position; returns the service and the seq of its last event.
async fn leased(store: &DynStore, owner: &str) -> (Service, i64) {
    let acc = account(store).await;
    let svc = service(store, &acc).await;
    user(store, &svc, "alice").await;
    let now = Timestamp::now();
    let claim = store
        .claim_log(WEBHOOKS, owner, now, now.plus_secs(60), 100)
        .await
        .expect("claim log")
        .expect("a service with events");
    assert_eq!(claim.service_sid, svc.sid);
    let last = claim.events.last().expect("events").seq;
    (svc, last)
}

/// Queue `calls` under a fresh lease of a new service.
async fn queued(store: &DynStore, calls: impl Fn(&Service) -> Vec<NewWebhookCall>) -> Service {
    let (svc, last) = leased(store, "consumer").await;
    store
        .enqueue_webhook_calls(WEBHOOKS, &svc.sid, "consumer", last, &calls(&svc))
        .await
        .expect("enqueue");
    svc
}

pub async fn calls_of_one_key_are_claimed_one_at_a_time_in_queue_order(store: DynStore) {
    // Arrange: key A has three calls, key B one.
    queued(&store, |svc| {
        vec![
            call(svc, "A", 1),
            call(svc, "B", 1),
            call(svc, "A", 2),
            call(svc, "A", 3),
        ]
    })
    .await;
    let lease = at(1000);
    // Act + Assert: only each key's head is claimable.
    let first = store
        .claim_webhook_calls("n1", at(10), lease, 10)
        .await
        .expect("claim");
    let got: Vec<(String, usize)> = first
        .iter()
        .map(|c| (c.order_key.clone(), n_of(c)))
        .collect();
    assert_eq!(got, vec![("A".to_owned(), 1), ("B".to_owned(), 1)]);
    assert!(first
        .iter()
        .all(|c| c.attempts == 0 && c.retry_count_max == 2));
    assert_eq!(
        first[0].params[2].1, "ünïcødé & = ?",
        "params round-trip in order"
    );
    assert_eq!(first[0].params[0].0, "EventType");
    assert_eq!(first[0].url, "https://hooks.example.com/A");
    assert_eq!(first[0].method, "POST");
    // While A1 is leased, A2 waits (even for another claimer).
    assert!(store
        .claim_webhook_calls("n2", at(20), lease, 10)
        .await
        .expect("claim")
        .is_empty());
    // A1 done → A2 is the head.
    store
        .settle_webhook_call(first[0].id, "n1", &Settle::Done)
        .await
        .expect("settle");
    let second = store
        .claim_webhook_calls("n2", at(30), lease, 10)
        .await
        .expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!((second[0].order_key.as_str(), n_of(&second[0])), ("A", 2));
    // A2 retried later: neither it nor A3 is claimable before its time.
    store
        .settle_webhook_call(
            second[0].id,
            "n2",
            &Settle::Retry {
                at: at(500),
                attempts: 1,
            },
        )
        .await
        .expect("settle retry");
    assert!(store
        .claim_webhook_calls("n1", at(100), lease, 10)
        .await
        .expect("claim")
        .is_empty());
    let again = store
        .claim_webhook_calls("n1", at(500), lease.plus_secs(1000), 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!((n_of(&again[0]), again[0].attempts), (2, 1));
    assert_eq!(again[0].available_at, at(500));
    assert_eq!(store.webhook_queue_depth().await.expect("depth"), 3);
}

pub async fn another_keys_calls_are_claimable_while_one_key_waits(store: DynStore) {
    // Arrange: key SLOW's head is in a long backoff; key FAST has calls behind nothing.
    queued(&store, |svc| {
        vec![
            call(svc, "SLOW", 1),
            call(svc, "SLOW", 2),
            call(svc, "FAST", 1),
            call(svc, "FAST", 2),
        ]
    })
    .await;
    let slow = store
        .claim_webhook_calls("n1", at(1), at(100), 1)
        .await
        .expect("claim");
    assert_eq!(slow[0].order_key, "SLOW");
    store
        .settle_webhook_call(
            slow[0].id,
            "n1",
            &Settle::Retry {
                at: at(10_000),
                attempts: 1,
            },
        )
        .await
        .expect("retry");
    // Act: FAST drains completely while SLOW waits.
    let mut fast = Vec::new();
    for round in 0..2 {
        let got = store
            .claim_webhook_calls("n1", at(2 + round), at(100), 10)
            .await
            .expect("claim");
        assert_eq!(got.len(), 1, "round {round}: one head claimable: {got:?}");
        assert_eq!(got[0].order_key, "FAST");
        fast.push(n_of(&got[0]));
        store
            .settle_webhook_call(got[0].id, "n1", &Settle::Done)
            .await
            .expect("done");
    }
    // Assert
    assert_eq!(fast, vec![1, 2]);
    assert_eq!(store.webhook_queue_depth().await.expect("depth"), 2);
}

pub async fn a_webhook_call_lease_hides_it_until_it_expires(store: DynStore) {
    queued(&store, |svc| vec![call(svc, "K", 1), call(svc, "K", 2)]).await;
    let first = store
        .claim_webhook_calls("n1", at(0), at(60), 10)
        .await
        .expect("claim");
    assert_eq!(first.len(), 1);
    assert!(store
        .claim_webhook_calls("n2", at(60), at(120), 10)
        .await
        .expect("claim")
        .is_empty());
    // Expired: another node takes it over (the same call, the key's later one still waits).
    let taken = store
        .claim_webhook_calls("n2", at(61), at(120), 10)
        .await
        .expect("claim");
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, first[0].id);
    // The old owner's settle changes nothing; the new owner's does.
    store
        .settle_webhook_call(first[0].id, "n1", &Settle::Done)
        .await
        .expect("stale settle");
    assert_eq!(store.webhook_queue_depth().await.expect("depth"), 2);
    store
        .settle_webhook_call(taken[0].id, "n2", &Settle::Done)
        .await
        .expect("settle");
    assert_eq!(store.webhook_queue_depth().await.expect("depth"), 1);
    let next = store
        .claim_webhook_calls("n1", at(62), at(120), 10)
        .await
        .expect("claim");
    assert_eq!(next.iter().map(n_of).collect::<Vec<_>>(), vec![2]);
}

pub async fn queued_calls_keep_their_tries_and_a_leased_one_waits_for_its_owner(store: DynStore) {
    // Arrange: A1 is queued leased to "n1" until at(100) (its first try is still in flight
    // there), A2 behind it; B1 was tried twice already.
    let (svc, last) = leased(&store, "consumer").await;
    let mut a1 = call(&svc, "A", 1);
    a1.leased_to = Some(("n1".to_owned(), at(100)));
    let mut b1 = call(&svc, "B", 1);
    b1.attempts = 2;
    b1.available_at = at(5);
    let ids = store
        .enqueue_webhook_calls(
            WEBHOOKS,
            &svc.sid,
            "consumer",
            last,
            &[a1, call(&svc, "A", 2), b1],
        )
        .await
        .expect("enqueue");
    // Assert: one id per call, in queue order.
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
    // Only B1 is claimable (A1 is leased, A2 waits behind it), with its tries counted.
    let got = store
        .claim_webhook_calls("n2", at(10), at(200), 10)
        .await
        .expect("claim");
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id, got[0].order_key.as_str()), (ids[2], "B"));
    assert_eq!(got[0].attempts, 2);
    // The owner settles A1 by its id; then A2 is the head.
    store
        .settle_webhook_call(ids[0], "n1", &Settle::Done)
        .await
        .expect("settle");
    let next = store
        .claim_webhook_calls("n2", at(11), at(200), 10)
        .await
        .expect("claim");
    assert_eq!(next.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ids[1]]);
    // A leased call left unsettled (its owner died) is claimable once its lease runs out.
    let (svc2, last2) = leased(&store, "consumer").await;
    let mut c1 = call(&svc2, "C", 1);
    c1.leased_to = Some(("gone".to_owned(), at(50)));
    let c = store
        .enqueue_webhook_calls(WEBHOOKS, &svc2.sid, "consumer", last2, &[c1])
        .await
        .expect("enqueue");
    assert!(store
        .claim_webhook_calls("n2", at(50), at(200), 10)
        .await
        .expect("claim")
        .iter()
        .all(|x| x.id != c[0]));
    let taken = store
        .claim_webhook_calls("n2", at(51), at(200), 10)
        .await
        .expect("claim");
    assert!(taken.iter().any(|x| x.id == c[0] && x.attempts == 0));
}

pub async fn waiting_keys_are_the_keys_with_calls_queued(store: DynStore) {
    // Arrange: nothing queued yet.
    let (svc, last) = leased(&store, "consumer").await;
    assert!(store
        .waiting_webhook_keys(&svc.sid, &["A", "B"])
        .await
        .expect("keys")
        .is_empty());
    // Act: A is queued (and claimed, in flight), B is not.
    let ids = store
        .enqueue_webhook_calls(WEBHOOKS, &svc.sid, "consumer", last, &[call(&svc, "A", 1)])
        .await
        .expect("enqueue");
    let claimed = store
        .claim_webhook_calls("n1", at(1), at(100), 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    // Assert
    assert_eq!(
        store
            .waiting_webhook_keys(&svc.sid, &["A", "B"])
            .await
            .expect("keys"),
        vec!["A".to_owned()]
    );
    assert!(store
        .waiting_webhook_keys(&svc.sid, &[])
        .await
        .expect("keys")
        .is_empty());
    // Settled: nothing waits any more.
    store
        .settle_webhook_call(ids[0], "n1", &Settle::Done)
        .await
        .expect("settle");
    assert!(store
        .waiting_webhook_keys(&svc.sid, &["A", "B"])
        .await
        .expect("keys")
        .is_empty());
}

pub async fn enqueue_and_log_advance_are_one_transaction_under_the_lease(store: DynStore) {
    // Arrange: "a" holds the lease on the service's webhook position.
    let (svc, last) = leased(&store, "a").await;
    // Act: someone without the lease queues nothing and moves nothing.
    let lost = store
        .enqueue_webhook_calls(WEBHOOKS, &svc.sid, "b", last, &[call(&svc, "K", 1)])
        .await;
    assert!(
        matches!(lost, Err(StoreError::Conflict(Conflict::LeaseLost))),
        "{lost:?}"
    );
    assert_eq!(store.webhook_queue_depth().await.expect("depth"), 0);
    // The holder queues and advances at once.
    store
        .enqueue_webhook_calls(WEBHOOKS, &svc.sid, "a", last, &[call(&svc, "K", 1)])
        .await
        .expect("enqueue");
    assert_eq!(store.webhook_queue_depth().await.expect("depth"), 1);
    // Assert: the lease is released and the position passed the events: nothing to claim.
    let now = Timestamp::now();
    assert!(store
        .claim_log(WEBHOOKS, "b", now, now.plus_secs(60), 100)
        .await
        .expect("claim log")
        .is_none());
    // A second enqueue by the old holder (a retried round) queues nothing twice.
    let again = store
        .enqueue_webhook_calls(WEBHOOKS, &svc.sid, "a", last, &[call(&svc, "K", 1)])
        .await;
    assert!(matches!(
        again,
        Err(StoreError::Conflict(Conflict::LeaseLost))
    ));
    assert_eq!(store.webhook_queue_depth().await.expect("depth"), 1);
    // New events after the position are claimable; an expired lease taken over by "b" makes
    // "a"'s late enqueue fail.
    user(&store, &svc, "bob").await;
    let claim = store
        .claim_log(WEBHOOKS, "a", now, now.plus_secs(1), 100)
        .await
        .expect("claim log")
        .expect("new event");
    assert!(claim.events.iter().all(|e| e.seq > last));
    let later = now.plus_secs(5);
    let taken = store
        .claim_log(WEBHOOKS, "b", later, later.plus_secs(60), 100)
        .await
        .expect("claim log")
        .expect("expired lease taken over");
    let to = taken.events.last().expect("event").seq;
    let late = store
        .enqueue_webhook_calls(WEBHOOKS, &svc.sid, "a", to, &[call(&svc, "K", 2)])
        .await;
    assert!(matches!(
        late,
        Err(StoreError::Conflict(Conflict::LeaseLost))
    ));
    store
        .enqueue_webhook_calls(WEBHOOKS, &svc.sid, "b", to, &[call(&svc, "K", 2)])
        .await
        .expect("enqueue by the new holder");
    assert_eq!(store.webhook_queue_depth().await.expect("depth"), 2);
}

pub async fn concurrent_webhook_claims_never_share_a_call(store: DynStore) {
    // Arrange: 60 calls over 20 keys.
    queued(&store, |svc| {
        (0..60)
            .map(|i| call(svc, &format!("K{}", i % 20), i))
            .collect()
    })
    .await;
    // Act: four claimers drain the queue at once.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("node{w}");
            let mut seen = Vec::new();
            let mut idle = 0;
            while idle < 20 {
                let got = store
                    .claim_webhook_calls(&owner, at(1), at(1000), 3)
                    .await
                    .expect("claim");
                if got.is_empty() {
                    idle += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                idle = 0;
                for c in got {
                    seen.push((c.order_key.clone(), n_of(&c)));
                    store
                        .settle_webhook_call(c.id, &owner, &Settle::Done)
                        .await
                        .expect("settle");
                }
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("claimer"));
    }
    // Assert: each call exactly once.
    let distinct: BTreeSet<usize> = all.iter().map(|(_, n)| *n).collect();
    assert_eq!(all.len(), 60, "no call claimed twice");
    assert_eq!(distinct, (0..60).collect());
    assert_eq!(store.webhook_queue_depth().await.expect("depth"), 0);
}

pub async fn deleting_a_service_removes_its_webhook_calls(store: DynStore) {
    let svc = queued(&store, |svc| vec![call(svc, "K", 1), call(svc, "L", 1)]).await;
    let other = queued(&store, |svc| vec![call(svc, "M", 1)]).await;
    store
        .delete_service(&svc.account_sid, &svc.sid)
        .await
        .expect("delete service");
    let left = store
        .claim_webhook_calls("n1", at(1), at(100), 10)
        .await
        .expect("claim");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].service_sid, other.sid);
}

pub async fn a_settlement_batch_settles_each_call_and_skips_calls_not_leased_by_the_owner(
    store: DynStore,
) {
    // Arrange: three keys; n1 claims all three heads, then n2 takes C over after n1's lease.
    queued(&store, |svc| {
        vec![
            call(svc, "A", 1),
            call(svc, "A", 2),
            call(svc, "B", 1),
            call(svc, "C", 1),
        ]
    })
    .await;
    let heads = store
        .claim_webhook_calls("n1", at(10), at(100), 10)
        .await
        .expect("claim");
    let id = |key: &str| heads.iter().find(|c| c.order_key == key).expect("head").id;
    let taken = store
        .claim_webhook_calls("n2", at(200), at(1000), 10)
        .await
        .expect("claim after expiry");
    assert_eq!(taken.len(), 3, "every lease of n1 expired");
    store
        .settle_webhook_call(id("A"), "n2", &Settle::Done)
        .await
        .expect("n2 settles A1");
    store
        .settle_webhook_call(id("B"), "n2", &Settle::Done)
        .await
        .expect("n2 settles B1");
    // Act: n2 settles C1 (retry) and, stale, n1's settlement of C1 comes in the same batch.
    store
        .settle_webhook_calls(
            "n2",
            &[(
                id("C"),
                Settle::Retry {
                    at: at(300),
                    attempts: 1,
                },
            )],
        )
        .await
        .expect("batch");
    store
        .settle_webhook_calls("n1", &[(id("C"), Settle::Done), (id("A"), Settle::Done)])
        .await
        .expect("stale batch is a no-op");
    // Assert: A2 and the retried C1 remain; C1 was not deleted by the stale owner.
    assert_eq!(store.webhook_queue_depth().await.expect("depth"), 2);
    let next = store
        .claim_webhook_calls("n3", at(300), at(2000), 10)
        .await
        .expect("claim");
    let mut got: Vec<(String, usize, i32)> = next
        .iter()
        .map(|c| (c.order_key.clone(), n_of(c), c.attempts))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![("A".to_owned(), 2, 0), ("C".to_owned(), 1, 1)],
        "A2 is the new head of A; C1 is due again with one attempt"
    );
}

pub async fn a_run_claims_a_keys_next_calls_in_order_up_to_the_first_that_waits(store: DynStore) {
    // Arrange: key A has five calls, the fourth not due before 500; key B has two.
    queued(&store, |svc| {
        let mut a4 = call(svc, "A", 4);
        a4.available_at = at(500);
        vec![
            call(svc, "A", 1),
            call(svc, "B", 1),
            call(svc, "A", 2),
            call(svc, "A", 3),
            a4,
            call(svc, "A", 5),
            call(svc, "B", 2),
        ]
    })
    .await;
    let names = |got: &[WebhookCall]| -> Vec<(String, usize)> {
        got.iter().map(|c| (c.order_key.clone(), n_of(c))).collect()
    };
    // Act: runs of up to 5 calls per key, 10 in all.
    let first = store
        .claim_webhook_runs("n1", at(10), at(1000), 10, 5)
        .await
        .expect("claim runs");
    // Assert: A's run stops before A4 (not due), B's run is whole; id order.
    assert_eq!(
        names(&first),
        vec![
            ("A".to_owned(), 1),
            ("B".to_owned(), 1),
            ("A".to_owned(), 2),
            ("A".to_owned(), 3),
            ("B".to_owned(), 2),
        ]
    );
    // Nothing of either key is claimable by anyone while their heads are leased.
    assert!(store
        .claim_webhook_runs("n2", at(20), at(1000), 10, 5)
        .await
        .expect("claim")
        .is_empty());
    // A1 done, A2 handed back unsent (a retry ended the run): A2 is A's head again.
    store
        .settle_webhook_calls(
            "n1",
            &[
                (first[0].id, Settle::Done),
                (
                    first[2].id,
                    Settle::Retry {
                        at: at(30),
                        attempts: 0,
                    },
                ),
            ],
        )
        .await
        .expect("settle");
    // A3 is still leased by n1: A2's run stops before it.
    let second = store
        .claim_webhook_runs("n2", at(30), at(1000), 10, 5)
        .await
        .expect("claim");
    assert_eq!(names(&second), vec![("A".to_owned(), 2)]);
    // Everything of A settled up to A3: A4 is the head, claimable only from 500.
    let done: Vec<(i64, Settle)> = [second[0].id, first[3].id]
        .into_iter()
        .map(|id| (id, Settle::Done))
        .collect();
    store
        .settle_webhook_calls("n2", &done[..1])
        .await
        .expect("settle A2");
    store
        .settle_webhook_calls("n1", &done[1..])
        .await
        .expect("settle A3");
    assert!(store
        .claim_webhook_runs("n1", at(100), at(1000), 10, 5)
        .await
        .expect("claim")
        .is_empty());
    // A limit smaller than the run cuts it.
    let last = store
        .claim_webhook_runs("n1", at(500), at(2000), 1, 5)
        .await
        .expect("claim");
    assert_eq!(names(&last), vec![("A".to_owned(), 4)]);
}

pub async fn concurrent_run_claims_keep_each_keys_order(store: DynStore) {
    use std::sync::{Arc, Mutex};
    // Arrange: 120 calls over 6 keys.
    queued(&store, |svc| {
        (0..120)
            .map(|i| call(svc, &format!("K{}", i % 6), i))
            .collect()
    })
    .await;
    // Act: four claimers take runs of up to 4 and settle them; each claim is logged under a
    // lock while the claimer still holds its lease, so the log is the order of delivery.
    let log: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("node{w}");
            let mut idle = 0;
            while idle < 20 {
                let got = store
                    .claim_webhook_runs(&owner, at(1), at(1000), 5, 4)
                    .await
                    .expect("claim");
                if got.is_empty() {
                    idle += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                idle = 0;
                log.lock()
                    .expect("log")
                    .extend(got.iter().map(|c| (c.order_key.clone(), n_of(c))));
                let done: Vec<(i64, Settle)> = got.iter().map(|c| (c.id, Settle::Done)).collect();
                store
                    .settle_webhook_calls(&owner, &done)
                    .await
                    .expect("settle");
            }
        }));
    }
    for t in tasks {
        t.await.expect("claimer");
    }
    // Assert: every call once, and each key's calls in queue order.
    let log = log.lock().expect("log").clone();
    assert_eq!(log.len(), 120, "no call claimed twice or lost");
    for k in 0..6 {
        let key = format!("K{k}");
        let ns: Vec<usize> = log
            .iter()
            .filter(|(kk, _)| *kk == key)
            .map(|(_, n)| *n)
            .collect();
        let want: Vec<usize> = (0..120).filter(|i| i % 6 == k).collect();
        assert_eq!(ns, want, "order of {key}");
    }
    assert_eq!(store.webhook_queue_depth().await.expect("depth"), 0);
}
