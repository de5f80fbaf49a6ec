//! The signal bus between nodes (`crate::signal`): every commit that appended change-log events
//! wakes subscribers with the service; a rolled-back write wakes nobody; published notices reach
//! every subscriber as they were sent.

use std::time::Duration;

use crate::channel::ChannelType;
use crate::event::Origin;
use crate::signal::{Signal, Wake, Wakes};
use crate::store::Conflict;
use crate::{ChannelSid, ServiceSid};

use super::chat::{assert_conflict, channel, channel_value};
use super::{account, at, service, DynStore};

/// How long a signal may take to arrive (a PostgreSQL listener connects in the background).
const WAIT: Duration = Duration::from_secs(10);

fn notice(service: &crate::service::Service, tag: &str) -> Signal {
    Signal::ChannelNotice {
        account: service.account_sid.clone(),
        service: service.sid.clone(),
        channel: ChannelSid::generate(),
        except_identity: "probe".to_owned(),
        message_type: "parley.test".to_owned(),
        payload: serde_json::json!({ "tag": tag }),
    }
}

/// Wait until the bus delivers `probe` to `wakes` (publishing it again every 100 ms: a listener
/// that is not connected yet misses the earlier ones), so later signals are not lost.
async fn until_listening(store: &DynStore, wakes: &mut Wakes, probe: &Signal) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        store.signals().publish(probe).await.expect("publish probe");
        let round = tokio::time::Instant::now() + Duration::from_millis(100);
        while let Ok(Some(w)) = tokio::time::timeout_at(round, wakes.recv()).await {
            if w == Wake::Signal(probe.clone()) {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the signal bus never delivered a published signal"
        );
    }
}

/// Whether `Changed { service }` arrives within `within` (other signals are skipped).
async fn changed_within(wakes: &mut Wakes, service: &ServiceSid, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(w)) = tokio::time::timeout_at(deadline, wakes.recv()).await {
        if w == (Wake::Signal(Signal::Changed {
            service: service.clone(),
        })) {
            return true;
        }
    }
    false
}

/// A committed change wakes subscribers with its service; a refused (rolled-back) one does not;
/// a published notice arrives unchanged.
pub async fn committed_changes_signal_their_service_and_rolled_back_ones_do_not(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let mut wakes = store.signals().subscribe();
    until_listening(&store, &mut wakes, &notice(&svc, "ready")).await;

    // Act + Assert: a committed change
    let general = channel(&store, &svc, "general").await;
    assert!(
        changed_within(&mut wakes, &svc.sid, WAIT).await,
        "creating a channel signals its service"
    );

    // Act + Assert: a refused change (the unique name is taken: rolled back)
    assert_conflict(
        store
            .create_channel(
                &channel_value(&svc, Some("general"), ChannelType::Public, at(0)),
                &Origin::rest(),
            )
            .await,
        Conflict::ChannelUniqueNameTaken,
        "duplicate unique name",
    );
    let marker = notice(&svc, "after the refused write");
    store.signals().publish(&marker).await.expect("publish");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let w = tokio::time::timeout_at(deadline, wakes.recv())
            .await
            .expect("the marker arrives")
            .expect("bus open");
        assert_ne!(
            w,
            Wake::Signal(Signal::Changed {
                service: svc.sid.clone()
            }),
            "a rolled-back write signalled a change"
        );
        if w == Wake::Signal(marker.clone()) {
            break;
        }
    }

    // Act + Assert: another subscriber hears the next change too
    let mut other = store.signals().subscribe();
    until_listening(&store, &mut other, &notice(&svc, "second")).await;
    store
        .delete_channel(
            &account,
            &svc.sid,
            &crate::channel::ChannelRef::Sid(general.sid.clone()),
            &Origin::rest(),
        )
        .await
        .expect("delete");
    assert!(changed_within(&mut other, &svc.sid, WAIT).await);
    assert!(changed_within(&mut wakes, &svc.sid, WAIT).await);
}
