//! PostgreSQL-only change-log check, next to the shared conformance suite (which covers every
//! `claim_log` / `advance_log` / `trim_events` behaviour on both backends): two "nodes" (two
//! `PgStore`s with their own pools on one schema) claiming at once never get the same
//! (consumer, service) while its lease holds (`for update skip locked`). This needs a second
//! store on the same database, which the suite's factory cannot give.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use parley_core::store::testsuite::{account, channel, post, service, DynStore};
use parley_core::{ServiceSid, Timestamp};
use parley_store_postgres::PgStore;
use support::fresh_pg;

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

const SERVICES: usize = 24;
const CLAIMERS_PER_NODE: usize = 6;

/// Every claimer claims until there is nothing left; returns (service, owner, seqs) per claim.
async fn claim_until_empty(
    nodes: &[DynStore],
    consumer: &'static str,
    now: Timestamp,
    advance: bool,
) -> Vec<(ServiceSid, String, Vec<i64>)> {
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for t in 0..CLAIMERS_PER_NODE {
            let node = node.clone();
            let owner = format!("node-{n}/task-{t}");
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(claim) = node
                    .claim_log(consumer, &owner, now, now.plus_secs(600), 2)
                    .await
                    .expect("claim")
                {
                    assert!(!claim.events.is_empty(), "a claim has events");
                    if advance {
                        node.advance_log(&claim, &owner, claim.last_seq())
                            .await
                            .expect("the holder advances");
                    }
                    let seqs = claim.events.iter().map(|e| e.seq).collect();
                    got.push((claim.service_sid.clone(), owner.clone(), seqs));
                }
                got
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_claiming_at_once_never_hold_the_same_consumer_and_service() {
    let Some(a) = fresh_pg().await else {
        return;
    };
    let b = second_node(&a).await;
    let a: DynStore = Arc::new(a);
    let b: DynStore = Arc::new(b);
    let acct = account(&a).await;
    let mut services = Vec::new();
    for i in 0..SERVICES {
        let svc = service(&a, &acct).await;
        let ch = channel(&a, &svc, &format!("c{i}")).await;
        for m in 0..3 {
            post(&a, &ch, &format!("m{m}")).await;
        }
        services.push(svc.sid);
    }
    let nodes = [a.clone(), b.clone()];
    let now = Timestamp::now();

    // Act 1: nobody advances, leases last 10 minutes: each (consumer, service) can be claimed
    // once, by exactly one claimer of either node.
    let held = claim_until_empty(&nodes, "webhooks", now, false).await;

    // Assert 1
    let mut by_service: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (svc, owner, _) in &held {
        by_service
            .entry(svc.as_str().to_owned())
            .or_default()
            .push(owner.clone());
    }
    let doubles: Vec<_> = by_service.iter().filter(|(_, o)| o.len() > 1).collect();
    assert!(
        doubles.is_empty(),
        "claimed twice while leased: {doubles:?}"
    );
    assert_eq!(by_service.len(), SERVICES, "every service was claimed");
    let owners: std::collections::BTreeSet<_> =
        held.iter().map(|(_, o, _)| o.split('/').next()).collect();
    assert_eq!(owners.len(), 2, "both nodes took part: {held:?}");

    // Act 2: another consumer, claims advanced as they go (limit 2 per claim, so a service is
    // claimed several times, one claim at a time): every event is read exactly once.
    let rounds = claim_until_empty(&nodes, "projector", now, true).await;

    // Assert 2: each service was read to its end: nothing left for either node.
    for node in &nodes {
        assert!(node
            .claim_log("projector", "late", now, now.plus_secs(600), 100)
            .await
            .expect("claim")
            .is_none());
    }
    let mut per_service: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (svc, _, seqs) in &rounds {
        per_service
            .entry(svc.as_str().to_owned())
            .or_default()
            .extend(seqs);
    }
    assert_eq!(per_service.len(), SERVICES);
    for svc in &services {
        let events = a.list_events(svc, 0, 1000).await.expect("events");
        let mut read = per_service.get(svc.as_str()).cloned().unwrap_or_default();
        read.sort_unstable();
        let expected: Vec<i64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(read, expected, "{svc}: every event read once");
    }
}
