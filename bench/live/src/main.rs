//! `parley-bench-live`: the load client of `bench/live.sh`. It speaks twilsock v3 itself (the
//! codec of `parley_http::live::twilsock`, websockets from tokio-tungstenite), signs its own
//! Access Tokens (HS256 with an API key of the account, as twilio-notes.md §3d describes) and
//! prints one JSON object per measurement on stdout:
//!
//! * `idle`: N sockets past `init`, held open; the server's VmRSS before and after.
//! * `fanout`: N member identities of one channel, each subscribed to the channel's messages list
//!   over its socket; M messages posted over REST; per socket the delay from the send to the
//!   `list_item_added` notification (p50/p99/max).
//! * `e2e`: one socket sends `POST /Client/v1/Conversations/{CH}/Messages` pipelined up to the
//!   in-flight limit, another subscribed socket receives; messages/s received over a window.
//! * `reconnect`: N subscribed sockets each track their `last_event_id`; the script restarts the
//!   first node (SIGTERM: the sockets get twilsock `close` 308) while messages are posted; each
//!   socket reconnects like twilsock does (the 308's `reconnect_min_ms`, jittered, doubling on
//!   failure), re-establishes with its `last_event_id` and counts replayed and live events; the
//!   time from the SIGTERM until every socket is back and holds every message exactly once.
//!
//! Several nodes (`--base A,B` or `--base A --base B`): sockets are spread round-robin over
//! them (socket i on node i mod nodes), REST calls go to the first; fan-out reports deliveries
//! to sockets on the first node (same node as the POST) and on the others (cross node)
//! separately; e2e sends on the first node and receives on the second.
//!
//! Times are measured on one machine: every message body carries the sender's wall clock
//! (microseconds since the epoch) and the receiver subtracts it from its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use clap::{Args, Parser, Subcommand};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hmac::Mac;
use parley_http::live::twilsock::Frame;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

mod reconnect;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Parser)]
#[command(about = "twilsock load client for bench/live.sh")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Common {
    /// Server base URLs (http://127.0.0.1:PORT), comma-separated or repeated: one per node.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    base: Vec<String>,
    #[arg(long, global = true, default_value = "")]
    account: String,
    /// The account's auth token (REST setup calls).
    #[arg(long, global = true, default_value = "")]
    auth_token: String,
    /// API key that signs the Access Tokens.
    #[arg(long, global = true, default_value = "")]
    key_sid: String,
    #[arg(long, global = true, default_value = "")]
    key_secret: String,
    #[arg(long, global = true, default_value = "")]
    service: String,
    /// Sockets opened at once while connecting.
    #[arg(long, global = true, default_value_t = 100)]
    connect_concurrency: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// N idle sockets past init; the server's VmRSS before and after.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        n: usize,
        /// The server's pid (its /proc/<pid>/status is read).
        #[arg(long)]
        server_pid: u32,
        /// Seconds to hold the sockets before reading the RSS.
        #[arg(long, default_value_t = 3)]
        hold_secs: u64,
    },
    /// N subscribed member sockets of one channel; M messages posted over REST.
    Fanout {
        #[arg(long, default_value_t = 1_000)]
        n: usize,
        #[arg(long, default_value_t = 20)]
        messages: usize,
        /// Pause between two posted messages, ms.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
    },
    /// One socket sends (pipelined), another receives; messages/s received.
    E2e {
        /// Requests in flight on the sending socket (the server's limit is 32 by default).
        #[arg(long, default_value_t = 32)]
        inflight: usize,
        #[arg(long, default_value_t = 2)]
        warmup_secs: u64,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
    },
    /// N subscribed sockets ride out a restart of the first node (done by the caller).
    Reconnect {
        #[arg(long, default_value_t = 1_000)]
        n: usize,
        /// Messages in all (`--before` of them posted to the first node just before the restart,
        /// the rest through a live node during it).
        #[arg(long, default_value_t = 20)]
        messages: usize,
        /// Messages posted just before the restart, not awaited (default: half).
        #[arg(long)]
        before: Option<usize>,
        /// Created when the sockets are subscribed: the caller then writes the wall clock of
        /// the SIGTERM (µs since the epoch) to `<file>.sigterm`, SIGTERMs the first node,
        /// starts it again on the same port and creates `<file>.up` once it answers.
        #[arg(long)]
        ready_file: std::path::PathBuf,
        /// Give up waiting for the sockets to catch up after this long (from the ready file).
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
        /// After every socket caught up, keep listening this long to catch duplicates.
        #[arg(long, default_value_t = 2_000)]
        grace_ms: u64,
    },
}

impl Common {
    /// The node of socket `i` (round-robin).
    fn node(&self, i: usize) -> &str {
        &self.base[i % self.base.len().max(1)]
    }

    fn nodes(&self) -> usize {
        self.base.len().max(1)
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// An HS256 Access Token with a chat grant for `identity` (twilio-notes.md §3d).
fn access_token(c: &Common, identity: &str, ttl: u64) -> Result<String> {
    let now = now_us() / 1_000_000;
    let header = json!({"alg": "HS256", "cty": "twilio-fpa;v=1", "typ": "JWT"});
    let payload = json!({
        "jti": format!("{}-{now}-{identity}", c.key_sid),
        "grants": {"chat": {"service_sid": c.service}, "identity": identity},
        "iss": c.key_sid,
        "exp": now + ttl,
        "nbf": now - 1,
        "sub": c.account,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(c.key_secret.as_bytes())
        .map_err(|e| anyhow!("hmac key: {e}"))?;
    mac.update(input.as_bytes());
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    ))
}

/// `header[key].code` (`status` or `http_status`), when present.
fn code(f: &Frame, key: &str) -> Option<u64> {
    f.header.get(key).and_then(|v| v["code"].as_u64())
}

fn ws_url(base: &str) -> String {
    let rest = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("ws://"))
        .unwrap_or(base);
    format!("ws://{}/v3/wsconnect", rest.trim_end_matches('/'))
}

/// A twilsock connection past `init`.
struct Conn {
    tx: SplitSink<Ws, Message>,
    rx: SplitStream<Ws>,
    n: u64,
}

impl Conn {
    async fn open(c: &Common, base: &str, identity: &str) -> Result<Conn> {
        let (ws, _) = tokio_tungstenite::connect_async(ws_url(base))
            .await
            .context("websocket upgrade")?;
        let (tx, rx) = ws.split();
        let mut conn = Conn { tx, rx, n: 0 };
        let token = access_token(c, identity, 3600)?;
        let id = conn.next_id();
        let init = Frame::new("init", &id)
            .with("token", json!(token))
            .with("continuation_token", Value::Null)
            .with("capabilities", json!(["client_update", "offline_storage"]))
            .with(
                "registrations",
                json!([{"product": "ip_messaging", "type": "ers", "notification_protocol_version": 0,
                    "message_types": ["twilio.sync.event", "twilio.ipmsg.typing_indicator"]}]),
            )
            .with("metadata", json!({"type": "chat", "sdk": "parley-bench-live"}));
        conn.send(&init).await?;
        let reply = conn.reply_to(&id).await?;
        let code = code(&reply, "status").unwrap_or(0);
        if code != 200 {
            bail!("init refused: {:?}", reply.header);
        }
        Ok(conn)
    }

    fn next_id(&mut self) -> String {
        self.n += 1;
        format!("TMbench{}", self.n)
    }

    async fn send(&mut self, f: &Frame) -> Result<()> {
        self.tx
            .send(Message::Binary(f.encode().into()))
            .await
            .context("send")
    }

    /// The next twilsock frame; pings are answered.
    async fn frame(&mut self) -> Result<Frame> {
        loop {
            match self.rx.next().await {
                Some(Ok(Message::Binary(b))) => {
                    let f = Frame::parse(&b).map_err(|e| anyhow!("bad frame: {e}"))?;
                    if f.method() == "ping" {
                        let id = f.id().unwrap_or("").to_owned();
                        self.send(
                            &Frame::new("reply", &id)
                                .with("status", json!({"code": 200, "status": "OK"})),
                        )
                        .await?;
                        continue;
                    }
                    if f.method() == "close" {
                        bail!("server closed: {:?}", f.header);
                    }
                    return Ok(f);
                }
                Some(Ok(Message::Close(c))) => bail!("websocket closed: {c:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("websocket: {e}"),
                None => bail!("websocket ended"),
            }
        }
    }

    /// Frames until the reply to `id` (other frames are dropped).
    async fn reply_to(&mut self, id: &str) -> Result<Frame> {
        loop {
            let f = tokio::time::timeout(Duration::from_secs(30), self.frame())
                .await
                .context("no reply within 30 s")??;
            if f.method() == "reply" && f.id() == Some(id) {
                return Ok(f);
            }
        }
    }

    /// An upstream request frame (not sent).
    fn request(&mut self, host: &str, method: &str, path: &str, body: Option<&Value>) -> Frame {
        let id = self.next_id();
        let mut f = Frame::new("message", &id)
            .with("active_grant", json!("ip_messaging"))
            .with(
                "http_request",
                json!({"host": host, "path": path, "method": method, "params": {},
                    "headers": {"Content-Type": "application/json"}}),
            )
            .with("payload_type", json!("application/json"));
        if let Some(b) = body {
            f.payload = b.to_string().into_bytes();
        }
        f
    }

    /// An upstream request and its reply: (http status, JSON body).
    async fn call(
        &mut self,
        host: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u64, Value)> {
        let f = self.request(host, method, path, body);
        let id = f.id().unwrap_or("").to_owned();
        self.send(&f).await?;
        let r = self.reply_to(&id).await?;
        let status = code(&r, "http_status").unwrap_or(0);
        let v = serde_json::from_slice(&r.payload).unwrap_or(Value::Null);
        Ok((status, v))
    }

    /// Open the channel's messages list and subscribe to it; waits for
    /// `subscription_established`. Returns the list's SID and the last event id seen.
    async fn subscribe_messages(&mut self, channel: &str) -> Result<(String, i64)> {
        let (s, list) = self
            .call(
                "cds.us1.twilio.com",
                "GET",
                &format!("/v3/Lists/{channel}.messages"),
                None,
            )
            .await?;
        if s != 200 {
            bail!("GET /v3/Lists/{channel}.messages: {s} {list}");
        }
        let sid = list["sid"].as_str().context("list sid")?.to_owned();
        let last = list["last_event_id"].as_i64().unwrap_or(0);
        let body = json!({
            "event_protocol_version": 4, "action": "establish", "correlation_id": 1,
            "retried_requests": 0, "ttl_in_s": -1,
            "requests": [{"object_sid": sid, "object_type": "list", "last_event_id": last}],
        });
        let (s, v) = self
            .call(
                "cds.us1.twilio.com",
                "POST",
                "/v4/Subscriptions",
                Some(&body),
            )
            .await?;
        if s != 202 {
            bail!("POST /v4/Subscriptions: {s} {v}");
        }
        loop {
            let f = tokio::time::timeout(Duration::from_secs(30), self.frame())
                .await
                .context("no subscription_established within 30 s")??;
            if f.method() != "notification" {
                continue;
            }
            let p: Value = serde_json::from_slice(&f.payload).unwrap_or(Value::Null);
            match p["event_type"].as_str() {
                Some("subscription_established") => {
                    let at = p["event"]["last_event_id"].as_i64().unwrap_or(last);
                    return Ok((sid, last.max(at)));
                }
                Some("subscription_failed") => bail!("subscription failed: {p}"),
                _ => continue,
            }
        }
    }
}

/// `list_item_added` → the send time carried in the message body (`t=<µs>…`).
fn sent_at(f: &Frame) -> Option<u64> {
    if f.method() != "notification" {
        return None;
    }
    let p: Value = serde_json::from_slice(&f.payload).ok()?;
    if p["event_type"] != "list_item_added" {
        return None;
    }
    let text = p["event"]["item_data"]["text"].as_str()?;
    text.strip_prefix("t=")?.split(' ').next()?.parse().ok()
}

fn vm_kb(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{key} in /proc/{pid}/status"))
}

/// Open `n` connections for `identity(i)` (connection i on node i mod nodes), `concurrency` at a
/// time.
async fn open_many<F>(c: &Common, n: usize, identity: F) -> Result<(Vec<Conn>, Duration)>
where
    F: Fn(usize) -> String,
{
    let t0 = Instant::now();
    let sem = Arc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        let c = c.clone();
        let id = identity(i);
        tasks.push(tokio::spawn(async move {
            let r = Conn::open(&c, c.node(i), &id).await;
            drop(permit);
            r.with_context(|| format!("connection {i} ({id})"))
        }));
    }
    let mut conns = Vec::with_capacity(n);
    for t in tasks {
        conns.push(t.await??);
    }
    Ok((conns, t0.elapsed()))
}

/// Keep a socket open: answer pings, drop everything else.
fn hold(mut conn: Conn) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while conn.frame().await.is_ok() {} })
}

struct Rest {
    http: reqwest::Client,
    base: String,
    auth: String,
    service: String,
}

impl Rest {
    /// REST calls to the first node.
    fn new(c: &Common) -> Result<Rest> {
        Rest::on(c, c.node(0))
    }

    fn on(c: &Common, base: &str) -> Result<Rest> {
        Ok(Rest {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
            auth: format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", c.account, c.auth_token))
            ),
            service: c.service.clone(),
        })
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Value> {
        let url = format!("{}/v2/Services/{}{path}", self.base, self.service);
        let res = self
            .http
            .post(&url)
            .header("Authorization", &self.auth)
            .form(form)
            .send()
            .await?;
        let status = res.status();
        let bytes = res.bytes().await.unwrap_or_default();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status} {v}");
        }
        Ok(v)
    }

    async fn channel(&self, name: &str) -> Result<String> {
        let v = self
            .post("/Channels", &[("FriendlyName", name), ("Type", "public")])
            .await?;
        Ok(v["sid"].as_str().context("channel sid")?.to_owned())
    }

    /// Add `identities` as members, 16 requests at a time.
    async fn members(self: &Arc<Self>, ch: &str, identities: Vec<String>) -> Result<()> {
        let sem = Arc::new(Semaphore::new(16));
        let mut tasks = Vec::new();
        for id in identities {
            let permit = sem.clone().acquire_owned().await?;
            let rest = self.clone();
            let path = format!("/Channels/{ch}/Members");
            tasks.push(tokio::spawn(async move {
                let r = rest.post(&path, &[("Identity", id.as_str())]).await;
                drop(permit);
                r
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(())
    }
}

/// `{deliveries, expected_deliveries, p50_ms, p90_ms, p99_ms, max_ms}` of delays in µs.
fn latencies(delays: &mut [u64], expected: usize) -> Value {
    delays.sort_unstable();
    json!({
        "deliveries": delays.len(), "expected_deliveries": expected,
        "p50_ms": pct(delays, 0.50), "p90_ms": pct(delays, 0.90),
        "p99_ms": pct(delays, 0.99), "max_ms": pct(delays, 1.0),
    })
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

async fn idle(c: &Common, n: usize, pid: u32, hold_secs: u64) -> Result<Value> {
    let before = vm_kb(pid, "VmRSS:")?;
    let (conns, took) = open_many(c, n, |i| format!("idle-{i}")).await?;
    let holders: Vec<_> = conns.into_iter().map(hold).collect();
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    let after = vm_kb(pid, "VmRSS:")?;
    let hwm = vm_kb(pid, "VmHWM:")?;
    let alive = holders.iter().filter(|h| !h.is_finished()).count();
    for h in &holders {
        h.abort();
    }
    Ok(json!({
        "measure": "idle", "connections": n, "still_open": alive,
        "connect_secs": took.as_secs_f64(),
        "rss_before_kb": before, "rss_after_kb": after, "hwm_kb": hwm,
        "rss_before_mb": before as f64 / 1024.0, "rss_after_mb": after as f64 / 1024.0,
        "kb_per_connection": (after.saturating_sub(before)) as f64 / n.max(1) as f64,
    }))
}

async fn fanout(c: &Common, n: usize, messages: usize, interval_ms: u64) -> Result<Value> {
    let rest = Arc::new(Rest::new(c)?);
    // The service's default member limit is below 1,000.
    let limit = n.max(2).to_string();
    rest.post("", &[("Limits.ChannelMembers", limit.as_str())])
        .await?;
    let ch = rest.channel("fanout").await?;
    let ids: Vec<String> = (0..n).map(|i| format!("fan-{i}")).collect();
    let t0 = Instant::now();
    rest.members(&ch, ids.clone()).await?;
    let members_secs = t0.elapsed().as_secs_f64();
    let (conns, connect) = open_many(c, n, |i| format!("fan-{i}")).await?;
    // Subscribe every socket (concurrently, bounded), then listen.
    let t1 = Instant::now();
    let sem = Arc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let mut subs = Vec::new();
    for mut conn in conns {
        let permit = sem.clone().acquire_owned().await?;
        let ch = ch.clone();
        subs.push(tokio::spawn(async move {
            let r = conn.subscribe_messages(&ch).await;
            drop(permit);
            r.map(|_| conn)
        }));
    }
    let mut conns = Vec::with_capacity(n);
    for s in subs {
        conns.push(s.await??);
    }
    let subscribe_secs = t1.elapsed().as_secs_f64();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, u64)>();
    let mut listeners = Vec::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        let tx = tx.clone();
        listeners.push(tokio::spawn(async move {
            while let Ok(f) = conn.frame().await {
                if let Some(t) = sent_at(&f) {
                    let _ = tx.send((i, now_us().saturating_sub(t)));
                }
            }
        }));
    }
    drop(tx);
    let mut per_message_max = Vec::new();
    let mut delays = Vec::with_capacity(n * messages);
    // Deliveries to sockets on the first node (where the messages are posted) and on the others.
    let nodes = c.nodes();
    let mut same = Vec::with_capacity(n * messages);
    let mut cross = Vec::with_capacity(n * messages);
    let path = format!("/Channels/{ch}/Messages");
    for m in 0..messages {
        let body = format!("t={} fan-out {m}", now_us());
        rest.post(&path, &[("Body", body.as_str()), ("From", "fan-0")])
            .await?;
        // Collect this message's deliveries (every socket), 10 s at most.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut got = 0usize;
        let mut max = 0u64;
        while got < n {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((i, d))) => {
                    got += 1;
                    max = max.max(d);
                    delays.push(d);
                    if i % nodes == 0 {
                        same.push(d);
                    } else {
                        cross.push(d);
                    }
                }
                _ => break,
            }
        }
        per_message_max.push(json!({"message": m, "received": got, "max_ms": max as f64 / 1000.0}));
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
    }
    for l in &listeners {
        l.abort();
    }
    delays.sort_unstable();
    let expected = n * messages;
    let same_sockets = (0..n).filter(|i| i % nodes == 0).count();
    Ok(json!({
        "measure": "fanout", "sockets": n, "messages": messages, "nodes": nodes,
        "same_node": latencies(&mut same, same_sockets * messages),
        "cross_node": latencies(&mut cross, (n - same_sockets) * messages),
        "expected_deliveries": expected, "deliveries": delays.len(),
        "members_secs": members_secs, "connect_secs": connect.as_secs_f64(),
        "subscribe_secs": subscribe_secs,
        "p50_ms": pct(&delays, 0.50), "p90_ms": pct(&delays, 0.90),
        "p99_ms": pct(&delays, 0.99), "max_ms": pct(&delays, 1.0),
        "per_message": per_message_max,
    }))
}

async fn e2e(c: &Common, inflight: usize, warmup: u64, duration: u64) -> Result<Value> {
    let rest = Arc::new(Rest::new(c)?);
    let ch = rest.channel("e2e").await?;
    rest.members(&ch, vec!["e2e-sender".into(), "e2e-receiver".into()])
        .await?;
    let sender = Conn::open(c, c.node(0), "e2e-sender").await?;
    let mut receiver = Conn::open(c, c.node(1), "e2e-receiver").await?;
    receiver.subscribe_messages(&ch).await?;

    let received = Arc::new(AtomicU64::new(0));
    let latency_sum = Arc::new(AtomicU64::new(0));
    let recv_task = {
        let received = received.clone();
        let latency_sum = latency_sum.clone();
        tokio::spawn(async move {
            while let Ok(f) = receiver.frame().await {
                if let Some(t) = sent_at(&f) {
                    received.fetch_add(1, Ordering::Relaxed);
                    latency_sum.fetch_add(now_us().saturating_sub(t), Ordering::Relaxed);
                }
            }
        })
    };

    // The sender: its own reader counts replies and frees in-flight slots.
    let Conn { mut tx, mut rx, .. } = sender;
    let slots = Arc::new(Semaphore::new(inflight.max(1)));
    let replied_ok = Arc::new(AtomicU64::new(0));
    let replied_err = Arc::new(AtomicU64::new(0));
    let replied_refused = Arc::new(AtomicU64::new(0));
    let reader = {
        let slots = slots.clone();
        let ok = replied_ok.clone();
        let err = replied_err.clone();
        let refused = replied_refused.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = rx.next().await {
                let Message::Binary(b) = msg else { continue };
                let Ok(f) = Frame::parse(&b) else { continue };
                if f.method() == "reply" {
                    match code(&f, "http_status") {
                        Some(201) => ok.fetch_add(1, Ordering::Relaxed),
                        Some(_) => err.fetch_add(1, Ordering::Relaxed),
                        // Refused by the transport (e.g. 429: over the in-flight limit).
                        None => refused.fetch_add(1, Ordering::Relaxed),
                    };
                    slots.add_permits(1);
                }
            }
        })
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let slots = slots.clone();
        let stop = stop.clone();
        let path = format!("/Client/v1/Conversations/{ch}/Messages");
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Ok(permit) = slots.acquire().await else {
                    break;
                };
                permit.forget();
                n += 1;
                let body = json!({"body": format!("t={} e2e {n}", now_us())});
                let mut f = Frame::new("message", &format!("TMe2e{n}"))
                    .with("active_grant", json!("ip_messaging"))
                    .with(
                        "http_request",
                        json!({"host": "aim.us1.twilio.com", "path": path, "method": "POST",
                            "params": {}, "headers": {"Content-Type": "application/json"}}),
                    )
                    .with("payload_type", json!("application/json"));
                f.payload = body.to_string().into_bytes();
                if tx.send(Message::Binary(f.encode().into())).await.is_err() {
                    break;
                }
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    let (r0, l0, ok0) = (
        received.load(Ordering::Relaxed),
        latency_sum.load(Ordering::Relaxed),
        replied_ok.load(Ordering::Relaxed),
    );
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(duration)).await;
    let secs = t0.elapsed().as_secs_f64();
    let (r1, l1, ok1) = (
        received.load(Ordering::Relaxed),
        latency_sum.load(Ordering::Relaxed),
        replied_ok.load(Ordering::Relaxed),
    );
    stop.store(true, Ordering::Relaxed);
    slots.add_permits(inflight);
    let sent = writer.await.unwrap_or(0);
    // Let the last deliveries arrive before counting losses.
    let total_ok = {
        tokio::time::sleep(Duration::from_secs(2)).await;
        replied_ok.load(Ordering::Relaxed)
    };
    let total_received = received.load(Ordering::Relaxed);
    reader.abort();
    recv_task.abort();
    let window = r1 - r0;
    Ok(json!({
        "measure": "e2e", "inflight": inflight, "window_secs": secs,
        "sender_node": 1, "receiver_node": 1 + 1 % c.nodes(),
        "received_in_window": window,
        "received_per_sec": window as f64 / secs,
        "sent_ok_per_sec": (ok1 - ok0) as f64 / secs,
        "mean_delivery_ms": if window > 0 { (l1 - l0) as f64 / window as f64 / 1000.0 } else { 0.0 },
        "requests_sent": sent, "replies_201": total_ok,
        "replies_not_201": replied_err.load(Ordering::Relaxed),
        "replies_refused": replied_refused.load(Ordering::Relaxed),
        "received_total": total_received,
    }))
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let out = match cli.cmd {
        Cmd::Idle {
            n,
            server_pid,
            hold_secs,
        } => idle(&cli.common, n, server_pid, hold_secs).await?,
        Cmd::Fanout {
            n,
            messages,
            interval_ms,
        } => fanout(&cli.common, n, messages, interval_ms).await?,
        Cmd::E2e {
            inflight,
            warmup_secs,
            duration_secs,
        } => e2e(&cli.common, inflight, warmup_secs, duration_secs).await?,
        Cmd::Reconnect {
            n,
            messages,
            before,
            ready_file,
            timeout_secs,
            grace_ms,
        } => {
            let plan = reconnect::Plan {
                n,
                messages,
                before: before.unwrap_or(messages / 2).min(messages),
                ready_file,
                timeout: Duration::from_secs(timeout_secs),
                grace: Duration::from_millis(grace_ms),
            };
            reconnect::run(&cli.common, plan).await?
        }
    };
    println!("{out}");
    Ok(())
}
