//! Presence shared by nodes: connection counts per node, the online edge, heartbeats and the
//! expiry of a dead node's rows.

use std::collections::HashSet;

use crate::store::PresenceKey;

use super::{account, at, service, DynStore};

async fn key(store: &DynStore, identity: &str) -> PresenceKey {
    let account = account(store).await;
    let svc = service(store, &account).await;
    PresenceKey {
        account,
        service: svc.sid,
        identity: identity.to_owned(),
    }
}

/// Two connections on two nodes: only the first open is the online edge, only the last close
/// the offline edge; closing on a node without a row changes nothing.
pub async fn presence_online_edges_count_connections_across_nodes(store: DynStore) {
    // Arrange
    let alice = key(&store, "alice").await;
    let bob = PresenceKey {
        identity: "bob".to_owned(),
        ..alice.clone()
    };
    let (now, exp) = (at(0), at(60));

    // Act + Assert
    assert!(!store.is_online(&alice, now).await.expect("online?"));
    assert!(store
        .presence_opened(&alice, "node-a", now, exp)
        .await
        .expect("open 1"));
    assert!(store.is_online(&alice, now).await.expect("online?"));
    assert!(!store.is_online(&bob, now).await.expect("bob online?"));
    assert!(!store
        .presence_opened(&alice, "node-a", now, exp)
        .await
        .expect("open 2 same node"));
    assert!(!store
        .presence_opened(&alice, "node-b", now, exp)
        .await
        .expect("open 3 other node"));
    assert!(!store
        .presence_closed(&alice, "node-a", now)
        .await
        .expect("close 1"));
    assert!(!store
        .presence_closed(&alice, "node-b", now)
        .await
        .expect("close 3"));
    assert!(store.is_online(&alice, now).await.expect("online?"));
    assert!(!store
        .presence_closed(&alice, "node-c", now)
        .await
        .expect("close on a node without a row"));
    assert!(store
        .presence_closed(&alice, "node-a", now)
        .await
        .expect("close last"));
    assert!(!store.is_online(&alice, now).await.expect("online?"));
    assert!(!store
        .presence_closed(&alice, "node-a", now)
        .await
        .expect("close again"));
    // Another service's alice is another user.
    let elsewhere = key(&store, "alice").await;
    assert!(store
        .presence_opened(&elsewhere, "node-a", now, exp)
        .await
        .expect("open elsewhere"));
    assert!(!store.is_online(&alice, now).await.expect("online?"));
}

/// A node that stops heartbeating stops counting once its rows expire; the sweep deletes them
/// and reports the users left offline (not those still live on another node), once.
pub async fn stale_presence_of_a_dead_node_expires(store: DynStore) {
    // Arrange: alice on a node that will die, bob on it and on a live node.
    let alice = key(&store, "alice").await;
    let bob = PresenceKey {
        identity: "bob".to_owned(),
        ..alice.clone()
    };
    store
        .presence_opened(&alice, "dead", at(0), at(30))
        .await
        .expect("alice");
    store
        .presence_opened(&bob, "dead", at(0), at(30))
        .await
        .expect("bob dead");
    store
        .presence_opened(&bob, "live", at(0), at(30))
        .await
        .expect("bob live");

    // Act: the live node heartbeats; time passes the dead node's expiry.
    let beats = store
        .presence_heartbeat("live", at(90))
        .await
        .expect("heartbeat");
    let online_at_10 = store.is_online(&alice, at(10)).await.expect("online?");
    let online_at_60 = store.is_online(&alice, at(60)).await.expect("online?");
    let gone = store.expire_presence(at(60), 100).await.expect("expire");
    let again = store.expire_presence(at(60), 100).await.expect("expire 2");

    // Assert
    assert_eq!(beats, 1);
    assert!(online_at_10, "a row counts until its expiry");
    assert!(!online_at_60, "an expired row does not count");
    assert_eq!(gone, vec![alice.clone()]);
    assert!(again.is_empty());
    assert!(store.is_online(&bob, at(60)).await.expect("bob"));
    // Alice reconnecting after the sweep is an online edge again.
    assert!(store
        .presence_opened(&alice, "live", at(61), at(90))
        .await
        .expect("reopen"));
}

/// An open after the user's only row expired (not yet swept) is an online edge, and the row
/// starts counting afresh from one.
pub async fn opening_over_an_expired_row_is_an_online_edge(store: DynStore) {
    let alice = key(&store, "alice").await;
    store
        .presence_opened(&alice, "n", at(0), at(10))
        .await
        .expect("open");
    store
        .presence_opened(&alice, "n", at(0), at(10))
        .await
        .expect("open 2");
    assert!(store
        .presence_opened(&alice, "n", at(20), at(40))
        .await
        .expect("open after expiry"));
    assert!(store
        .presence_closed(&alice, "n", at(21))
        .await
        .expect("one close is the last"));
    let gone: HashSet<PresenceKey> = store
        .expire_presence(at(100), 10)
        .await
        .expect("sweep")
        .into_iter()
        .collect();
    assert!(gone.is_empty());
}
