//! The per-node change-log tail: follows the log of every service with a connection on this
//! node and sends each event's Sync projection to the subscribed connections, live; and hands
//! channel notices (typing, from any node) to this node's connections.
//!
//! Each service's position starts at its last seq when first seen (older events reach a
//! subscriber through its replay) and moves as events are delivered; a replay that read the log
//! only up to an earlier seq moves it back there ([`super::Registry::request_tail_from`]), so no
//! event falls between a subscription's replay and the tail.
//!
//! **Wake-ups** (docs/live-clients.md, "Several nodes"): the store's signal bus says which
//! service's log grew, on any node (SQLite: in process after each commit; PostgreSQL:
//! `LISTEN`/`NOTIFY`), and the tail reads just those services at once. Every `poll` it also
//! reads every followed service, so a lost signal costs at most that delay; a bus that may have
//! lost signals ([`Wake::Missed`]) triggers the same full pass at once. Nothing is stored: a
//! restarted node starts at the end of each log, and clients replay what they missed when they
//! re-subscribe.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use parley_core::paging::PageRequest;
use parley_core::signal::{Signal, Wake, Wakes};
use parley_core::ServiceSid;

use super::chat;
use super::http::sync_urls;
use crate::AppState;

/// Events read per service per round.
const BATCH: u32 = 500;
/// How often subscriptions of closed connections are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// Members read per page when a channel notice is handed out.
const NOTICE_PAGE: u32 = 1000;

/// Follow the logs until `shutdown` resolves: on every wake-up for a followed service, and
/// every `poll` for all of them. Subscribes to the signal bus when called (signals sent after
/// the call, once the bus listens, are not missed), not when first polled.
pub fn run(
    state: AppState,
    poll: Duration,
    shutdown: impl Future<Output = ()>,
) -> impl Future<Output = ()> {
    let wakes = state.store.signals().subscribe();
    follow(state, wakes, poll, shutdown)
}

async fn follow(state: AppState, wakes: Wakes, poll: Duration, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut wakes: Option<Wakes> = Some(wakes);
    let mut positions: HashMap<ServiceSid, i64> = HashMap::new();
    let mut last_sweep = tokio::time::Instant::now();
    let mut next_full = tokio::time::Instant::now() + poll;
    loop {
        let mut dirty: HashSet<ServiceSid> = HashSet::new();
        let mut all = false;
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep_until(next_full) => all = true,
            () = state.sync.tail_requested() => all = true,
            w = next_wake(&mut wakes) => match w {
                Some(w) => take(&state, w, &mut dirty, &mut all),
                None => {
                    tracing::warn!("live tail: the signal bus closed; polling only");
                    wakes = None;
                }
            },
        }
        // Fold a burst of wake-ups into one pass.
        while let Some(w) = wakes.as_mut().and_then(Wakes::try_recv) {
            take(&state, w, &mut dirty, &mut all);
        }
        if all {
            round_of(&state, &mut positions, None).await;
            next_full = tokio::time::Instant::now() + poll;
        } else if !dirty.is_empty() {
            round_of(&state, &mut positions, Some(&dirty)).await;
        }
        if last_sweep.elapsed() >= SWEEP_EVERY {
            let alive: HashSet<_> = state.live.all().into_iter().collect();
            state.sync.sweep(&alive);
            last_sweep = tokio::time::Instant::now();
        }
    }
}

async fn next_wake(wakes: &mut Option<Wakes>) -> Option<Wake> {
    match wakes {
        Some(w) => w.recv().await,
        None => std::future::pending().await,
    }
}

/// Note one wake-up: a service to read, a full pass, or a notice to hand out (in its own task:
/// it reads the channel's members, and the tail does not wait for that).
fn take(state: &AppState, wake: Wake, dirty: &mut HashSet<ServiceSid>, all: &mut bool) {
    match wake {
        Wake::Missed => *all = true,
        Wake::Signal(Signal::Changed { service }) => {
            dirty.insert(service);
        }
        Wake::Signal(notice @ Signal::ChannelNotice { .. }) => {
            let state = state.clone();
            tokio::spawn(async move { deliver_notice(&state, notice).await });
        }
    }
}

/// Hand a [`Signal::ChannelNotice`] to this node's connections of the channel's members
/// (except the identity that caused it). Nothing happens on a node without a connection of the
/// service.
pub async fn deliver_notice(state: &AppState, notice: Signal) {
    let Signal::ChannelNotice {
        account,
        service,
        channel,
        except_identity,
        message_type,
        payload,
    } = notice
    else {
        return;
    };
    if !state.live.services().contains(&service) {
        return;
    }
    let channel_ref = parley_core::channel::ChannelRef::Sid(channel.clone());
    let mut request = PageRequest::first(NOTICE_PAGE);
    loop {
        let page = match state
            .store
            .list_members(&account, &service, &channel_ref, &[], &request)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, channel = %channel, "live notice: members");
                return;
            }
        };
        for m in page.items.iter().filter(|m| m.identity != except_identity) {
            for conn in state.live.connections_of(&service, &m.identity) {
                state.live.notify(conn, &message_type, payload.clone());
            }
        }
        match page.next {
            Some(next) if page.more => request.cursor = Some(next),
            _ => return,
        }
    }
}

/// One pass over every followed service: deliver what is new. Public for tests and for a
/// caller that wants to push without waiting for the next poll.
pub async fn round(state: &AppState, positions: &mut HashMap<ServiceSid, i64>) {
    round_of(state, positions, None).await;
}

/// One pass over the followed services (`only`: just those of them): deliver what is new.
async fn round_of(
    state: &AppState,
    positions: &mut HashMap<ServiceSid, i64>,
    only: Option<&HashSet<ServiceSid>>,
) {
    let mut services = state.live.services();
    positions.retain(|s, _| services.contains(s));
    if let Some(only) = only {
        services.retain(|s| only.contains(s));
    }
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
                // Events without a state project to nothing (and need no reads).
                let projectable: Vec<_> = events.iter().filter(|e| e.state.is_some()).collect();
                match chat::enrich_all(state.store.as_ref(), &projectable).await {
                    Ok(ens) => {
                        for (&e, en) in projectable.iter().zip(&ens) {
                            for r in &chat::project_with(e, en) {
                                state.sync.deliver(&service, r, &state.live, &urls);
                            }
                        }
                    }
                    Err(err) => {
                        // Skipped for live delivery; clients still get them by replay.
                        tracing::warn!(error = %err, from = pos, "live tail: projection");
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
