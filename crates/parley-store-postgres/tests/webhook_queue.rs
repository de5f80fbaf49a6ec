//! PostgreSQL-only webhook queue checks, beside the shared conformance suite (which covers what
//! a claim and a settlement do on both backends): how they behave against other sessions.

mod support;

use std::sync::Arc;
use std::time::Duration;

use parley_core::store::testsuite::{account, service, user, DynStore};
use parley_core::webhook_call::{NewWebhookCall, Settle};
use parley_core::Timestamp;
use support::fresh_pg;

const WEBHOOKS: &str = "webhooks";

/// `n` queued calls of one new service, each with its own order key, all claimed by `owner`;
/// returns their ids, oldest first.
async fn claimed_calls(store: &DynStore, n: usize, owner: &str) -> Vec<i64> {
    let acct = account(store).await;
    let svc = service(store, &acct).await;
    user(store, &svc, "alice").await;
    let now = Timestamp::now();
    let claim = store
        .claim_log(WEBHOOKS, "consumer", now, now.plus_secs(60), 10)
        .await
        .expect("claim log")
        .expect("events");
    let calls: Vec<NewWebhookCall> = (0..n)
        .map(|i| NewWebhookCall {
            account_sid: acct.clone(),
            service_sid: svc.sid.clone(),
            channel_sid: None,
            url: format!("https://hooks.example.com/{i}"),
            method: "POST".to_owned(),
            event_type: "onUserAdded".to_owned(),
            params: vec![("N".to_owned(), i.to_string())],
            retry_count_max: 1,
            order_key: format!("key-{i}"),
            available_at: now,
            date_created: now,
            attempts: 0,
            leased_to: None,
        })
        .collect();
    store
        .enqueue_webhook_calls(WEBHOOKS, &svc.sid, "consumer", claim.last_seq(), &calls)
        .await
        .expect("enqueue");
    let claimed = store
        .claim_webhook_calls(owner, now, now.plus_secs(60), 1000)
        .await
        .expect("claim calls");
    assert_eq!(claimed.len(), n);
    claimed.iter().map(|c| c.id).collect()
}

/// A settlement batch is written as one statement (the sender's round trips per call were what
/// kept PostgreSQL delivery at ~40 calls/s against busy writers): while another session holds
/// one call of the batch locked, none of the batch is settled; once it lets go, all are. Settled
/// one call at a time, the calls before the locked one would already be gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_batch_is_one_statement_not_one_per_call() {
    let Some(pg) = fresh_pg().await else {
        return;
    };
    let pool = pg.pool().clone();
    let store: DynStore = Arc::new(pg);
    let ids = claimed_calls(&store, 40, "sender").await;
    let mut blocker = pool.begin().await.expect("begin");
    sqlx::query("select id from webhook_calls where id = $1 for update")
        .bind(ids[20])
        .execute(&mut *blocker)
        .await
        .expect("lock one call");

    // Act: half delivered, half to be retried.
    let later = Timestamp::now().plus_secs(30);
    let batch: Vec<(i64, Settle)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let settle = if i % 2 == 0 {
                Settle::Done
            } else {
                Settle::Retry {
                    at: later,
                    attempts: 1,
                }
            };
            (*id, settle)
        })
        .collect();
    let settling = {
        let store = store.clone();
        tokio::spawn(async move { store.settle_webhook_calls("sender", &batch).await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Assert: nothing settled while one call is locked …
    assert_eq!(
        store.webhook_queue_depth().await.expect("depth"),
        40,
        "calls settled before the locked one: the batch is not one statement"
    );
    let leased: i64 =
        sqlx::query_scalar("select count(*) from webhook_calls where lease_owner is not null")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(leased, 40);
    assert!(!settling.is_finished());
    // … and all of it once the lock is gone.
    blocker.rollback().await.expect("rollback");
    tokio::time::timeout(Duration::from_secs(10), settling)
        .await
        .expect("the settlement finishes")
        .expect("task")
        .expect("settle");
    assert_eq!(store.webhook_queue_depth().await.expect("depth"), 20);
    let retried: Vec<(i64, i32, Option<String>)> =
        sqlx::query_as("select available_at, attempts, lease_owner from webhook_calls order by id")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert!(retried.iter().all(|r| *r == (later.unix_micros(), 1, None)));
}
