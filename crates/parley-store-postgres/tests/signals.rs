//! PostgreSQL-only: the signal bus's `LISTEN` connection is lost (its backend terminated, as by
//! a failover or an idle-connection reaper) — subscribers are told `Missed` once the listener
//! is back, and later commits are signalled again.

mod support;

use std::sync::Arc;
use std::time::Duration;

use parley_core::signal::{Signal, Wake, Wakes};
use parley_core::store::testsuite::{account, channel, service, DynStore};
use parley_core::ChannelSid;
use support::fresh_pg;

/// Publish `probe` until it comes back (the listener connects in the background).
async fn until_listening(store: &DynStore, wakes: &mut Wakes, probe: &Signal) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        store.signals().publish(probe).await.expect("publish");
        let round = tokio::time::Instant::now() + Duration::from_millis(100);
        while let Ok(Some(w)) = tokio::time::timeout_at(round, wakes.recv()).await {
            if w == Wake::Signal(probe.clone()) {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "never listening");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listen_connection_is_replaced_and_reported_as_missed() {
    let Some(pg) = fresh_pg().await else { return };
    let pool = pg.pool().clone();
    let store: DynStore = Arc::new(pg);
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let mut wakes = store.signals().subscribe();
    let probe = Signal::ChannelNotice {
        account: account.clone(),
        service: svc.sid.clone(),
        channel: ChannelSid::generate(),
        except_identity: "probe".into(),
        message_type: "parley.test".into(),
        payload: serde_json::json!({}),
    };
    until_listening(&store, &mut wakes, &probe).await;

    // Act: terminate every listening backend of this database (ours among them).
    let killed: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid()
            and query ilike 'listen%'",
    )
    .fetch_all(&pool)
    .await
    .expect("terminate");
    assert!(!killed.is_empty(), "no listening backend found");

    // Assert: `Missed` once it listens again, then a commit is signalled as before.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let w = tokio::time::timeout_at(deadline, wakes.recv())
            .await
            .expect("Missed after the listener came back")
            .expect("bus open");
        if w == Wake::Missed {
            break;
        }
    }
    channel(&store, &svc, "after-the-cut").await;
    let changed = Wake::Signal(Signal::Changed {
        service: svc.sid.clone(),
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let w = tokio::time::timeout_at(deadline, wakes.recv())
            .await
            .expect("the commit after the cut is signalled")
            .expect("bus open");
        if w == changed {
            break;
        }
    }
}
