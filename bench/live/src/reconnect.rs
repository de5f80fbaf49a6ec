//! `reconnect`: N sockets subscribed to one channel's messages list ride out a restart of the
//! first node, reconnecting and re-establishing their subscriptions as twilio-sync does.
//!
//! Protocol with the caller (bench/live.sh), by files next to `--ready-file`:
//! 1. this client creates the ready file once every socket is subscribed and the `before`
//!    messages are posted (to the first node, not awaited: they are queued as the node stops);
//! 2. the caller writes the wall clock of its SIGTERM (µs since the epoch) to `<ready>.sigterm`,
//!    SIGTERMs the first node, waits for it to exit, starts it again on the same port and
//!    creates `<ready>.up` once it answers `/readyz`;
//! 3. the remaining messages are posted through a live node: the second node as soon as a
//!    socket saw the 308 (several nodes), or the restarted first node once `<ready>.up` exists
//!    (one node; the sockets are then still in their reconnect backoff).
//!
//! Each socket tracks its `last_event_id` (the descriptor's, `subscription_established`'s and
//! every event's id). On twilsock `close` (308: `backoff_policy.reconnect_min_ms`) or a dropped
//! socket it waits the backoff times a random factor in [1.0, 1.4) (the spread of twilsock's
//! retrier, randomness 0.2, but never earlier than `reconnect_min_ms`), doubling up to
//! `reconnect_max_ms` after a failed attempt, reconnects to the same URL, sends `init` and
//! `POST /v4/Subscriptions` `establish` with that `last_event_id`, and counts the events replayed
//! (`twilio.sync.event`) and live. It is caught up when it is back (if it was on the restarted
//! node) and holds every message; every delivery of a message beyond the first is a duplicate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use super::{code, now_us, open_many, pct, Common, Conn, Frame, Rest};

/// What `reconnect` does (see `Cmd::Reconnect`).
pub struct Plan {
    pub n: usize,
    pub messages: usize,
    pub before: usize,
    pub ready_file: PathBuf,
    pub timeout: Duration,
    pub grace: Duration,
}

/// What one socket saw.
#[derive(Default)]
struct Stats {
    /// Deliveries per message index.
    got: Vec<u32>,
    got_308: bool,
    /// Other endings (socket dropped without a twilsock `close`, other close codes).
    other_endings: u32,
    /// Successful reconnects (init accepted).
    reconnects: u32,
    failed_attempts: u32,
    replayed: u64,
    live: u64,
    interrupted: u32,
    last_event_id: i64,
    /// Wall clock (µs) when the first reconnect's `init` was accepted.
    reopened_at_us: Option<u64>,
    /// Wall clock (µs) when the subscription was established again after the first reconnect.
    back_at_us: Option<u64>,
    caught_up_at_us: Option<u64>,
    error: Option<String>,
}

/// A frame or the end of the connection.
enum Event {
    Frame(Frame),
    /// twilsock `close`: status code and payload.
    Close(u64, Value),
    /// The websocket ended without a twilsock `close`.
    Ended,
}

impl Conn {
    /// The next frame (pings answered), or how the connection ended.
    async fn event(&mut self) -> Event {
        loop {
            match self.rx.next().await {
                Some(Ok(Message::Binary(b))) => {
                    let Ok(f) = Frame::parse(&b) else {
                        return Event::Ended;
                    };
                    match f.method() {
                        "ping" => {
                            let id = f.id().unwrap_or("").to_owned();
                            let pong = Frame::new("reply", &id)
                                .with("status", json!({"code": 200, "status": "OK"}));
                            if self.send(&pong).await.is_err() {
                                return Event::Ended;
                            }
                        }
                        "close" => {
                            let code = code(&f, "status").unwrap_or(0);
                            let body = serde_json::from_slice(&f.payload).unwrap_or(Value::Null);
                            return Event::Close(code, body);
                        }
                        _ => return Event::Frame(f),
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Event::Ended,
                Some(Ok(_)) => continue,
            }
        }
    }
}

/// A small xorshift generator for the backoff jitter.
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    /// `ms` scaled by a factor in [1.0, 1.4): the spread of twilsock's ±20 %, never earlier than
    /// `ms`.
    fn apply(&mut self, ms: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let unit = (self.0 % 10_000) as f64 / 10_000.0;
        Duration::from_micros((ms as f64 * 1000.0 * (1.0 + 0.4 * unit)) as u64)
    }
}

/// The message index carried in a `list_item_added` for `sid` (body `t=<µs> rc-<k>`), and the
/// event id.
fn message_of(p: &Value, sid: &str) -> Option<(usize, i64)> {
    if p["event_type"] != "list_item_added" || p["event"]["list_sid"] != sid {
        return None;
    }
    let id = p["event"]["id"].as_i64()?;
    let text = p["event"]["item_data"]["text"].as_str()?;
    let k = text.rsplit_once("rc-")?.1.parse().ok()?;
    Some((k, id))
}

/// One socket's life; reports its caught-up time on `done` once.
struct Client {
    c: Common,
    base: String,
    identity: String,
    sid: String,
    /// On the node that restarts: caught up only once back.
    restarts: bool,
    stats: Arc<Mutex<Stats>>,
    first_308: Arc<Notify>,
    done: mpsc::UnboundedSender<()>,
    seed: u64,
}

impl Client {
    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        match self.stats.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    async fn run(self, mut conn: Conn) {
        let mut jitter = Jitter::new(self.seed);
        let mut back = false;
        loop {
            let (min_ms, max_ms) = loop {
                match conn.event().await {
                    Event::Frame(f) => {
                        if let Err(e) = self.handle(&f, back) {
                            self.stats().error = Some(format!("{e:#}"));
                            return;
                        }
                    }
                    Event::Close(code, body) => {
                        if code == 308 {
                            self.stats().got_308 = true;
                            self.first_308.notify_one();
                        } else {
                            self.stats().other_endings += 1;
                        }
                        let policy = &body["backoff_policy"];
                        break (
                            policy["reconnect_min_ms"].as_u64().unwrap_or(1_000),
                            policy["reconnect_max_ms"].as_u64().unwrap_or(10_000),
                        );
                    }
                    Event::Ended => {
                        self.stats().other_endings += 1;
                        break (1_000, 10_000);
                    }
                }
            };
            // Like the SDK: close the socket, then wait the backoff and reconnect.
            let _ = conn.tx.send(Message::Close(None)).await;
            drop(conn);
            let mut delay = min_ms.max(1);
            conn = loop {
                tokio::time::sleep(jitter.apply(delay)).await;
                match Conn::open(&self.c, &self.base, &self.identity).await {
                    Ok(conn) => break conn,
                    Err(_) => {
                        self.stats().failed_attempts += 1;
                        delay = (delay * 2).min(max_ms.max(min_ms));
                    }
                }
            };
            let last = {
                let mut s = self.stats();
                s.reconnects += 1;
                s.reopened_at_us.get_or_insert_with(now_us);
                s.last_event_id
            };
            back = false;
            let body = json!({
                "event_protocol_version": 4, "action": "establish", "correlation_id": 2,
                "retried_requests": 0, "ttl_in_s": -1,
                "requests": [{"object_sid": self.sid, "object_type": "list", "last_event_id": last}],
            });
            let f = conn.request(
                "cds.us1.twilio.com",
                "POST",
                "/v4/Subscriptions",
                Some(&body),
            );
            if conn.send(&f).await.is_err() {
                // Dropped at once: the next `event` reports it and the loop reconnects.
                continue;
            }
            // Wait for `subscription_established` (events before it are the replay).
            while !back {
                match conn.event().await {
                    Event::Frame(f) => match self.handle(&f, false) {
                        Ok(true) => back = true,
                        Ok(false) => {}
                        Err(e) => {
                            self.stats().error = Some(format!("{e:#}"));
                            return;
                        }
                    },
                    // Lost again before it was established: handled by the outer loop.
                    Event::Close(..) | Event::Ended => break,
                }
            }
            if back {
                let mut s = self.stats();
                s.back_at_us.get_or_insert_with(now_us);
                drop(s);
                self.check_caught_up(true);
            }
        }
    }

    /// Handle one frame; `Ok(true)` when it establishes the subscription.
    fn handle(&self, f: &Frame, back: bool) -> Result<bool> {
        match f.method() {
            "reply" => {
                let http = code(f, "http_status").unwrap_or(0);
                if !(200..300).contains(&http) {
                    bail!(
                        "reply {:?} / {http}: {}",
                        code(f, "status"),
                        String::from_utf8_lossy(&f.payload)
                    );
                }
                Ok(false)
            }
            "notification" => {
                let p: Value = serde_json::from_slice(&f.payload).unwrap_or(Value::Null);
                let mut established = false;
                if let Some((k, id)) = message_of(&p, &self.sid) {
                    let replay = f.str("message_type") == Some("twilio.sync.event");
                    let mut s = self.stats();
                    if let Some(n) = s.got.get_mut(k) {
                        *n += 1;
                    }
                    if replay {
                        s.replayed += 1;
                    } else {
                        s.live += 1;
                    }
                    s.last_event_id = s.last_event_id.max(id);
                } else if p["event"]["object_sid"] == self.sid.as_str() {
                    match p["event_type"].as_str() {
                        Some("subscription_established") => {
                            let mut s = self.stats();
                            if p["event"]["replay_status"] == "interrupted" {
                                s.interrupted += 1;
                            }
                            if let Some(id) = p["event"]["last_event_id"].as_i64() {
                                s.last_event_id = s.last_event_id.max(id);
                            }
                            established = true;
                        }
                        Some("subscription_failed") => bail!("subscription failed: {p}"),
                        _ => {}
                    }
                }
                self.check_caught_up(back || established);
                Ok(established)
            }
            _ => Ok(false),
        }
    }

    /// Report the caught-up time once: every message held, and back if on the restarted node.
    fn check_caught_up(&self, back: bool) {
        let mut s = self.stats();
        if s.caught_up_at_us.is_some() || (self.restarts && !(back && s.reconnects > 0)) {
            return;
        }
        if s.got.iter().all(|&n| n > 0) {
            s.caught_up_at_us = Some(now_us());
            let _ = self.done.send(());
        }
    }
}

async fn wait_for_file(path: &Path, timeout: Duration) -> Result<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return Ok(text);
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{} did not appear within {timeout:?}", path.display());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

async fn post_messages(rest: &Rest, ch: &str, range: std::ops::Range<usize>) -> Result<()> {
    let path = format!("/Channels/{ch}/Messages");
    for k in range {
        let body = format!("t={} rc-{k}", now_us());
        rest.post(&path, &[("Body", body.as_str()), ("From", "rc-0")])
            .await
            .with_context(|| format!("posting message {k}"))?;
    }
    Ok(())
}

pub async fn run(c: &Common, plan: Plan) -> Result<Value> {
    let n = plan.n.max(1);
    let nodes = c.nodes();
    let rest = Arc::new(Rest::new(c)?);
    let limit = n.max(2).to_string();
    rest.post("", &[("Limits.ChannelMembers", limit.as_str())])
        .await?;
    let ch = rest.channel("reconnect").await?;
    let ids: Vec<String> = (0..n).map(|i| format!("rc-{i}")).collect();
    rest.members(&ch, ids.clone()).await?;
    let (conns, connect) = open_many(c, n, |i| format!("rc-{i}")).await?;
    let sem = Arc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let mut subs = Vec::new();
    for mut conn in conns {
        let permit = sem.clone().acquire_owned().await?;
        let ch = ch.clone();
        subs.push(tokio::spawn(async move {
            let r = conn.subscribe_messages(&ch).await;
            drop(permit);
            r.map(|(sid, last)| (conn, sid, last))
        }));
    }
    let first_308 = Arc::new(Notify::new());
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut stats = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for (i, s) in subs.into_iter().enumerate() {
        let (conn, sid, last) = s.await??;
        let st = Arc::new(Mutex::new(Stats {
            got: vec![0; plan.messages],
            last_event_id: last,
            ..Stats::default()
        }));
        stats.push(st.clone());
        let client = Client {
            c: c.clone(),
            base: c.node(i).to_owned(),
            identity: format!("rc-{i}"),
            sid,
            restarts: i % nodes == 0,
            stats: st,
            first_308: first_308.clone(),
            done: done_tx.clone(),
            seed: now_us() ^ ((i as u64 + 1) * 0x9E37_79B9_7F4A_7C15),
        };
        tasks.push(tokio::spawn(client.run(conn)));
    }
    drop(done_tx);

    // Queued just before the restart; then tell the caller to restart the first node.
    post_messages(&rest, &ch, 0..plan.before).await?;
    std::fs::write(&plan.ready_file, format!("{}\n", now_us()))
        .with_context(|| format!("write {}", plan.ready_file.display()))?;
    let ready_at = tokio::time::Instant::now();
    tokio::time::timeout(plan.timeout, first_308.notified())
        .await
        .context("no socket saw the node stop")?;
    let first_308_us = now_us();
    // The rest through a live node.
    let (post_node, posted_at_us) = if nodes > 1 {
        let live = Rest::on(c, c.node(1))?;
        post_messages(&live, &ch, plan.before..plan.messages).await?;
        (2, now_us())
    } else {
        wait_for_file(&sibling(&plan.ready_file, ".up"), plan.timeout).await?;
        post_messages(&rest, &ch, plan.before..plan.messages).await?;
        (1, now_us())
    };

    let mut caught_up = 0usize;
    let deadline = ready_at + plan.timeout;
    while caught_up < n {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some(())) => caught_up += 1,
            _ => break,
        }
    }
    tokio::time::sleep(plan.grace).await;
    for t in &tasks {
        t.abort();
    }
    let sigterm_us: u64 = wait_for_file(&sibling(&plan.ready_file, ".sigterm"), plan.timeout)
        .await?
        .trim()
        .parse()
        .context("bad .sigterm file")?;
    let up_us: Option<u64> = std::fs::read_to_string(sibling(&plan.ready_file, ".up"))
        .ok()
        .and_then(|t| t.trim().parse().ok());

    let since = |t: u64| t.saturating_sub(sigterm_us);
    let (mut got_308, mut other_endings, mut reconnects, mut failed) = (0, 0, 0, 0);
    let (mut replayed, mut live, mut interrupted) = (0u64, 0u64, 0);
    let (mut duplicates, mut dup_clients, mut missing, mut missing_clients) = (0u64, 0, 0u64, 0);
    let mut back = Vec::new();
    let mut reopened = Vec::new();
    let mut caught = Vec::new();
    let mut errors = Vec::new();
    for st in &stats {
        let s = match st.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        got_308 += usize::from(s.got_308);
        other_endings += s.other_endings;
        reconnects += s.reconnects;
        failed += s.failed_attempts;
        replayed += s.replayed;
        live += s.live;
        interrupted += s.interrupted;
        let dup: u64 = s.got.iter().map(|&k| u64::from(k.saturating_sub(1))).sum();
        let miss = s.got.iter().filter(|&&k| k == 0).count() as u64;
        duplicates += dup;
        dup_clients += usize::from(dup > 0);
        missing += miss;
        missing_clients += usize::from(miss > 0);
        if let Some(t) = s.reopened_at_us {
            reopened.push(since(t));
        }
        if let Some(t) = s.back_at_us {
            back.push(since(t));
        }
        if let Some(t) = s.caught_up_at_us {
            caught.push(since(t));
        }
        if let Some(e) = &s.error {
            if errors.len() < 5 {
                errors.push(e.clone());
            }
        }
    }
    back.sort_unstable();
    reopened.sort_unstable();
    caught.sort_unstable();
    let on_restarted = (0..n).filter(|i| i % nodes == 0).count();
    let all_caught_up = caught.len() == n;
    Ok(json!({
        "measure": "reconnect", "clients": n, "nodes": nodes,
        "clients_on_restarted_node": on_restarted,
        "messages": plan.messages, "posted_before": plan.before,
        "posted_during": plan.messages - plan.before, "posted_during_via_node": post_node,
        "connect_secs": connect.as_secs_f64(),
        "got_308": got_308, "other_endings": other_endings,
        "reconnects": reconnects, "failed_attempts": failed,
        "first_308_ms": since(first_308_us) as f64 / 1000.0,
        "node_up_ms": up_us.map(|t| since(t) as f64 / 1000.0),
        "during_posted_ms": since(posted_at_us) as f64 / 1000.0,
        "init_p50_ms": pct(&reopened, 0.5), "init_p99_ms": pct(&reopened, 0.99),
        "init_max_ms": pct(&reopened, 1.0),
        "back_p50_ms": pct(&back, 0.5), "back_p99_ms": pct(&back, 0.99),
        "back_max_ms": pct(&back, 1.0),
        "caught_up": caught.len(), "all_caught_up": all_caught_up,
        "caught_up_p50_ms": pct(&caught, 0.5), "caught_up_p99_ms": pct(&caught, 0.99),
        "all_caught_up_ms": if all_caught_up { Some(pct(&caught, 1.0)) } else { None },
        "replayed_events": replayed, "live_events": live, "interrupted": interrupted,
        "duplicates": duplicates, "clients_with_duplicates": dup_clients,
        "missing": missing, "clients_missing": missing_clients,
        "errors": errors,
    }))
}
