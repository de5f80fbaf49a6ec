//! The per-node change-log tail: follows the log of every service with a connection on this
//! node and sends each event's Sync projection to the subscribed connections, live.
//!
//! Each service's position starts at its last seq when first seen (older events reach a
//! subscriber through its replay) and moves as events are delivered; a replay that read the log
//! only up to an earlier seq moves it back there ([`super::Registry::request_tail_from`]), so no
//! event falls between a subscription's replay and the tail. Polls every `poll`
//! (PostgreSQL LISTEN/NOTIFY is issue 14's). Nothing is stored: a restarted node starts at the
//! end of each log, and clients replay what they missed when they re-subscribe.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use parley_core::ServiceSid;

use super::chat;
use super::http::sync_urls;
use crate::AppState;

/// Events read per service per round.
const BATCH: u32 = 500;
/// How often subscriptions of closed connections are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Follow the logs until `shutdown` resolves.
pub async fn run(state: AppState, poll: Duration, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut positions: HashMap<ServiceSid, i64> = HashMap::new();
    let mut last_sweep = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(poll) => {}
        }
        round(&state, &mut positions).await;
        if last_sweep.elapsed() >= SWEEP_EVERY {
            let alive: HashSet<_> = state.live.all().into_iter().collect();
            state.sync.sweep(&alive);
            last_sweep = tokio::time::Instant::now();
        }
    }
}

/// One pass over every followed service: deliver what is new. Public for tests and for a
/// caller that wants to push without waiting for the next poll.
pub async fn round(state: &AppState, positions: &mut HashMap<ServiceSid, i64>) {
    let services = state.live.services();
    positions.retain(|s, _| services.contains(s));
    let urls = sync_urls(state);
    for service in services {
        let pos = match positions.get(&service) {
            Some(p) => *p,
            None => match state.store.last_seq(&service).await {
                Ok(s) => {
                    positions.insert(service.clone(), s);
                    s
                }
                Err(e) => {
                    tracing::warn!(error = %e, service = %service, "live tail: last seq");
                    continue;
                }
            },
        };
        // A replay that finished before this tail first saw the service (or while it was ahead)
        // asks it to go back to where that replay stopped reading.
        let mut pos = match state.sync.take_tail_request(&service) {
            Some(req) => pos.min(req),
            None => pos,
        };
        loop {
            let events = match state.store.list_events(&service, pos, BATCH).await {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(error = %e, service = %service, "live tail: read");
                    break;
                }
            };
            let Some(last) = events.last() else { break };
            let last_seq = last.seq;
            if state.sync.has_service(&service) {
                for e in &events {
                    match chat::project(state.store.as_ref(), e).await {
                        Ok(routed) => {
                            for r in &routed {
                                state.sync.deliver(&service, r, &state.live, &urls);
                            }
                        }
                        Err(err) => {
                            // Skipped for live delivery; clients still get it by replay.
                            tracing::warn!(error = %err, seq = e.seq, "live tail: projection");
                        }
                    }
                }
            }
            pos = last_seq;
            positions.insert(service.clone(), pos);
            if events.len() < BATCH as usize {
                break;
            }
        }
    }
}
