//! The HTTP/1.1 accept loop: Parley's own instead of `axum::serve`, so that a connection cannot
//! be held hostage (docs: README "Connections").
//!
//! * **Header-read timeout**: a connection must deliver a whole request head within
//!   `header_read_timeout` of its first byte (or of being accepted), else it is closed.
//! * **Idle keep-alive timeout**: a connection with no request in flight and no bytes moving for
//!   `keep_alive_timeout` is closed.
//! * **Body-read timeout**: a request body must arrive whole within `body_read_timeout` of its
//!   head, else the connection is closed (a trickled body cannot hold it either).
//! * **Head size cap**: hyper's read buffer is `max_header_bytes`; a larger head is refused.
//!   hyper's own answers to unparseable, too large heads or too long URIs (bare 400/414/431 with
//!   empty bodies) are rewritten on their way out into Twilio error JSON.
//! * **Connection cap**: at `max_connections` open connections, a new connection is answered at
//!   once with a canned 503 Twilio error and closed, instead of waiting in the backlog.
//!
//! Every request carries `ConnectInfo<SocketAddr>` (the peer address) for the failed-login limiter.
//! On stop, the listener closes and every connection is shut down gracefully (in-flight requests
//! finish; idle connections close at once).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use parley_http::error::ApiError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// Default `--header-read-timeout-secs`.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u32 = 10;
/// Default `--keep-alive-timeout-secs`.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT_SECS: u32 = 75;
/// Default `--body-read-timeout-secs`.
pub const DEFAULT_BODY_READ_TIMEOUT_SECS: u32 = 60;
/// Default `--max-header-bytes`.
pub const DEFAULT_MAX_HEADER_BYTES: u32 = 32 * 1024;
/// Smallest `--max-header-bytes` (hyper's minimum buffer).
pub const MIN_MAX_HEADER_BYTES: u32 = 8 * 1024;
/// Default `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;
/// File descriptors kept back from the connection cap for the database pool, push provider
/// connections, the listener, logs and the accept of a refused connection.
pub const FD_RESERVE: u64 = 128;

/// Connection limits of the accept loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Time allowed to deliver a whole request head.
    pub header_read_timeout: Duration,
    /// Idle time after which a keep-alive connection is closed.
    pub keep_alive_timeout: Duration,
    /// Time allowed for a request body to arrive whole, from its head.
    pub body_read_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Open connections at most; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS.into()),
            keep_alive_timeout: Duration::from_secs(DEFAULT_KEEP_ALIVE_TIMEOUT_SECS.into()),
            body_read_timeout: Duration::from_secs(DEFAULT_BODY_READ_TIMEOUT_SECS.into()),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES as usize,
            max_connections: DEFAULT_MAX_CONNECTIONS as usize,
        }
    }
}

/// Raise the soft open-file limit to the hard one; returns the soft limit now in force
/// (`None` when it cannot be read, e.g. on platforms without rlimits).
pub fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// The connection cap in force: `wanted`, but never more than the open-file limit minus
/// [`FD_RESERVE`] (at least 1).
pub fn effective_max_connections(wanted: usize, open_file_limit: Option<u64>) -> usize {
    match open_file_limit {
        Some(limit) => {
            let room =
                usize::try_from(limit.saturating_sub(FD_RESERVE).max(1)).unwrap_or(usize::MAX);
            wanted.min(room)
        }
        None => wanted,
    }
}

/// Milliseconds since the first call (a monotonic clock that fits an atomic).
fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX)
}

const NONE: u64 = u64::MAX;

/// What the IO wrapper, the service and the watchdog of one connection share. Everything runs
/// on the connection's task; atomics only make it `Sync`.
struct Track {
    /// When a byte was last read or written (ms, [`now_ms`]).
    last_activity: AtomicU64,
    /// When the request head now being read started ([`NONE`]: none is being read).
    head_since: AtomicU64,
    /// Requests handed to the router and not answered yet.
    in_flight: AtomicUsize,
    /// When the head of a request whose body is still arriving was read ([`NONE`]: no body is
    /// awaited).
    body_since: AtomicU64,
    /// Whether the request line of the head now being read is complete (414 vs 431).
    first_line_done: AtomicBool,
}

impl Track {
    fn new() -> Self {
        let now = now_ms();
        Self {
            last_activity: AtomicU64::new(now),
            // A connection that sends nothing is reading its first head from the start.
            head_since: AtomicU64::new(now),
            in_flight: AtomicUsize::new(0),
            body_since: AtomicU64::new(NONE),
            first_line_done: AtomicBool::new(false),
        }
    }

    fn on_read(&self, bytes: &[u8]) {
        let now = now_ms();
        self.last_activity.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == NONE
        {
            self.head_since.store(now, Ordering::Relaxed);
        }
        if !self.first_line_done.load(Ordering::Relaxed) && bytes.contains(&b'\n') {
            self.first_line_done.store(true, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last_activity.store(now_ms(), Ordering::Relaxed);
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
    }

    fn request_done(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.first_line_done.store(false, Ordering::Relaxed);
        self.last_activity.store(now_ms(), Ordering::Relaxed);
    }

    fn body_started(&self) {
        self.body_since.store(now_ms(), Ordering::Relaxed);
    }

    fn body_done(&self) {
        self.body_since.store(NONE, Ordering::Relaxed);
    }

    /// When the connection is to be closed (ms), or `None` while a request is handled (with its
    /// body, if any, arrived).
    fn deadline(&self, limits: &ConnLimits) -> Option<u64> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            let body = self.body_since.load(Ordering::Relaxed);
            return (body != NONE).then(|| body.saturating_add(millis(limits.body_read_timeout)));
        }
        let head = self.head_since.load(Ordering::Relaxed);
        Some(if head != NONE {
            head.saturating_add(millis(limits.header_read_timeout))
        } else {
            self.last_activity
                .load(Ordering::Relaxed)
                .saturating_add(millis(limits.keep_alive_timeout))
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Decrements the in-flight count when the request's future ends (answered or dropped).
struct InFlight(Arc<Track>);

impl InFlight {
    fn new(track: &Arc<Track>) -> Self {
        track.request_started();
        Self(track.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// A request body that tells the watchdog when it has arrived whole (or was dropped unread).
struct TimedBody {
    inner: hyper::body::Incoming,
    track: Option<Arc<Track>>,
}

impl TimedBody {
    fn new(inner: hyper::body::Incoming, track: &Arc<Track>) -> Self {
        use hyper::body::Body as _;
        let track = if inner.is_end_stream() {
            None
        } else {
            track.body_started();
            Some(track.clone())
        };
        Self { inner, track }
    }

    fn finished(&mut self) {
        if let Some(track) = self.track.take() {
            track.body_done();
        }
    }
}

impl Drop for TimedBody {
    fn drop(&mut self) {
        self.finished();
    }
}

impl hyper::body::Body for TimedBody {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_))))
            || this.inner.is_end_stream()
        {
            this.finished();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The Twilio error answer (a whole HTTP/1.1 response that closes the connection).
fn canned_answer(status: StatusCode, code: u32, message: &'static str) -> Vec<u8> {
    let body = ApiError::new(status, code, message)
        .body_json("")
        .to_string();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        out.push_str("retry-after: 1\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}

/// The answers that replace hyper's bare ones, built once.
struct Canned {
    bad_request: Vec<u8>,
    uri_too_long: Vec<u8>,
    head_too_large: Vec<u8>,
    busy: Vec<u8>,
}

fn canned() -> &'static Canned {
    static CANNED: OnceLock<Canned> = OnceLock::new();
    CANNED.get_or_init(|| Canned {
        bad_request: canned_answer(
            StatusCode::BAD_REQUEST,
            parley_http::error::CODE_MALFORMED_REQUEST,
            "Malformed HTTP request",
        ),
        uri_too_long: canned_answer(
            StatusCode::URI_TOO_LONG,
            parley_http::error::CODE_URI_TOO_LONG,
            "Request URI too long",
        ),
        head_too_large: canned_answer(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            parley_http::error::CODE_HEADERS_TOO_LARGE,
            "Request header fields too large",
        ),
        busy: canned_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            20503,
            "Too many open connections; retry later",
        ),
    })
}

/// If `head` is one of hyper's own error answers (a 400, 414 or 431 head with an empty body and
/// no content type; Parley's handlers always answer errors with a JSON body), the Twilio answer
/// that replaces it.
fn replacement(head: &[u8], first_line_done: bool) -> Option<&'static [u8]> {
    let status = head.get(..13)?;
    let which = match status {
        b"HTTP/1.1 400 " => 400,
        b"HTTP/1.1 414 " => 414,
        b"HTTP/1.1 431 " => 431,
        _ => return None,
    };
    if !head.ends_with(b"\r\n\r\n")
        || !contains(head, b"\r\ncontent-length: 0\r\n")
        || contains(head, b"\r\ncontent-type:")
    {
        return None;
    }
    let canned = canned();
    Some(match which {
        400 => &canned.bad_request,
        // hyper reports a request line longer than its buffer as a too large head.
        431 if !first_line_done => &canned.uri_too_long,
        414 => &canned.uri_too_long,
        _ => &canned.head_too_large,
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The TCP stream as hyper sees it: records activity for the watchdog and rewrites hyper's bare
/// error answers.
struct GuardedIo {
    inner: TcpStream,
    track: Arc<Track>,
    /// A replacement answer and how much of it is written.
    pending: Option<(&'static [u8], usize)>,
}

impl GuardedIo {
    /// Write what is left of a replacement answer.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = self.pending.as_mut() {
            if *done >= bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        Poll::Ready(Ok(()))
    }

    fn take_over(&mut self, buf: &[u8]) -> bool {
        match replacement(buf, self.track.first_line_done.load(Ordering::Relaxed)) {
            Some(answer) => {
                self.pending = Some((answer, 0));
                true
            }
            None => false,
        }
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &res {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                this.track.on_read(new);
            }
        }
        res
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if this.take_over(buf) {
            ready!(this.poll_drain(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &res {
            if *n > 0 {
                this.track.on_write();
            }
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next()) {
            if this.take_over(only) {
                ready!(this.poll_drain(cx))?;
                return Poll::Ready(Ok(only.len()));
            }
        }
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &res {
            if *n > 0 {
                this.track.on_write();
            }
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Refused connections lingering at once (beyond it they are closed at once).
const MAX_LINGERING: usize = 64;
/// How long a refused connection lingers, reading what the client still sends.
const LINGER: Duration = Duration::from_millis(500);
static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// Answer a connection beyond the cap with the canned 503 and close it, without waiting for
/// it to be served. The close is graceful: the answer, then our FIN, then a short linger that
/// reads (and discards) what the client sends. Closing with its request still unread — or
/// arriving after — would make the kernel reset the connection, and a reset can discard the
/// 503 on the client's side before it reads it. Bounded: at most [`MAX_LINGERING`] at once,
/// each for at most [`LINGER`].
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(&canned().busy);
    if LINGERING.fetch_add(1, Ordering::AcqRel) >= MAX_LINGERING {
        LINGERING.fetch_sub(1, Ordering::AcqRel);
        drop(stream);
        return;
    }
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let mut scratch = [0u8; 1024];
        let _ = tokio::time::timeout(LINGER, async {
            while let Ok(n) = stream.read(&mut scratch).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        drop(stream);
        LINGERING.fetch_sub(1, Ordering::AcqRel);
    });
}

/// Serve `router` on `listener` until `stop` turns true; then stop accepting, shut every
/// connection down gracefully and return when the last one has closed.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnLimits,
    stop: watch::Receiver<bool>,
) {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max));
    let mut stop_accepting = stop.clone();
    let mut last_warning: Option<Instant> = None;
    let mut refused: u64 = 0;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop_accepting.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // E.g. out of file descriptors: the connection waits in the backlog; retry soon.
                if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(5)) {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    last_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(stream);
            refused += 1;
            if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(5)) {
                tracing::warn!(
                    max_connections = max,
                    refused,
                    "connection cap reached; refusing new connections with 503"
                );
                last_warning = Some(Instant::now());
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let stop = stop.clone();
        // An upgraded connection (a live client websocket) outlives this task: the socket holds
        // the permit too (through `ConnHold`), so it counts against the cap until it closes.
        let permit = Arc::new(permit);
        tokio::spawn(async move {
            serve_connection(stream, peer, router, limits, stop, permit).await;
        });
    }
    drop(listener);
    // Every connection holds a permit until it has closed.
    let _ = permits
        .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
        .await;
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
    permit: Arc<tokio::sync::OwnedSemaphorePermit>,
) {
    let track = Arc::new(Track::new());
    let io = TokioIo::new(GuardedIo {
        inner: stream,
        track: track.clone(),
        pending: None,
    });
    let service_track = track.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let in_flight = InFlight::new(&service_track);
        let mut req = req.map(|body| TimedBody::new(body, &service_track));
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut()
            .insert(parley_http::ConnHold(permit.clone()));
        let call = tower::ServiceExt::oneshot(router.clone(), req);
        async move {
            let res = call.await;
            drop(in_flight);
            res
        }
    });
    let conn = http1::Builder::new()
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(MIN_MAX_HEADER_BYTES as usize))
        .serve_connection(io, service)
        // Websocket upgrades (`/v3/wsconnect`): once upgraded, this future resolves and the
        // socket lives on in its own task, out of reach of the timeouts below (the live
        // connection has its own: init timeout, pings, write timeout).
        .with_upgrades();
    tokio::pin!(conn);
    let mut stopping = false;
    if *stop.borrow() {
        conn.as_mut().graceful_shutdown();
        stopping = true;
    }
    // The deadline moves as requests come and go; the watchdog never sleeps longer than the
    // shorter timeout, so a deadline set while it sleeps (always at least that far away) is
    // seen in time.
    let longest_sleep = limits
        .header_read_timeout
        .min(limits.keep_alive_timeout)
        .min(limits.body_read_timeout);
    loop {
        let wait = match track.deadline(&limits) {
            Some(at) => Duration::from_millis(at.saturating_sub(now_ms())).min(longest_sleep),
            None => longest_sleep,
        };
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                conn.as_mut().graceful_shutdown();
                stopping = true;
            }
            () = tokio::time::sleep(wait) => {
                if track.deadline(&limits).is_some_and(|at| at <= now_ms()) {
                    // A head or a body that took too long, or an idle connection.
                    tracing::debug!(%peer, "closing a timed-out connection");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_bare_error_heads_are_replaced() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 10:00:00 GMT\r\n\r\n";
        let answer = replacement(bare, true).expect("replaced");
        let text = String::from_utf8_lossy(answer);
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert!(text.contains("\"code\":20001"), "{text}");
        assert!(text.contains("\"status\":431"), "{text}");
        let uri = replacement(bare, false).expect("replaced");
        assert!(String::from_utf8_lossy(uri).starts_with("HTTP/1.1 414 "));

        let json = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(replacement(json, true).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(replacement(ok, true).is_none());
    }

    #[test]
    fn connection_cap_leaves_room_for_other_files() {
        assert_eq!(effective_max_connections(10_000, Some(1024)), 896);
        assert_eq!(effective_max_connections(100, Some(1024)), 100);
        assert_eq!(effective_max_connections(100, None), 100);
        assert_eq!(effective_max_connections(100, Some(10)), 1);
    }

    #[test]
    fn deadlines_follow_the_connection_state() {
        let limits = ConnLimits {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            ..ConnLimits::default()
        };
        let t = Arc::new(Track::new());
        let start = t.head_since.load(Ordering::Relaxed);
        assert_eq!(t.deadline(&limits), Some(start + 10_000));
        let guard = InFlight::new(&t);
        assert_eq!(t.deadline(&limits), None);
        drop(guard);
        let idle = t.last_activity.load(Ordering::Relaxed);
        assert_eq!(t.deadline(&limits), Some(idle + 75_000));
        t.on_read(b"GET / HT");
        assert!(t.deadline(&limits).is_some_and(|d| d < idle + 75_000));
        assert!(!t.first_line_done.load(Ordering::Relaxed));
        t.on_read(b"TP/1.1\r\n");
        assert!(t.first_line_done.load(Ordering::Relaxed));
        let guard = InFlight::new(&t);
        t.body_started();
        let body = t.body_since.load(Ordering::Relaxed);
        assert_eq!(t.deadline(&limits), Some(body + 60_000));
        t.body_done();
        assert_eq!(t.deadline(&limits), None);
        drop(guard);
    }
}
