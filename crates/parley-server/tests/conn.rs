//! Connections and logins as a client sees them, against the real `parley` binary: slow or idle
//! connections are closed, oversized heads answer Twilio JSON, the connection cap answers 503,
//! and repeated failed logins from one address are answered 429.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "the-right-auth-token";

/// The resident set size of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Send `request` on a new connection and read until the server closes it (or 30 s pass);
/// returns whatever arrived (empty if the connection failed).
fn exchange(addr: &str, request: &[u8]) -> String {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return String::new();
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// (status, headers text, JSON body) of a raw response.
fn parse(response: &str) -> (u16, String, Value) {
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, head.to_ascii_lowercase(), body)
}

fn assert_twilio_error(body: &Value, status: u16, code: u64) {
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(
        body["more_info"],
        format!("https://www.twilio.com/docs/errors/{code}"),
        "{body}"
    );
}

fn healthz_status(addr: &str) -> u16 {
    parse(&exchange(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ))
    .0
}

/// Poll `cond` every 100 ms until it holds or `limit` passes.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Has the server closed `stream` (EOF or reset) before `deadline`? Data it sends first (an
/// error answer) is read and skipped.
fn closed_by_server(mut stream: &TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Read one response to a keep-alive `GET /healthz` (its body is `{"status":"ok"}`).
fn read_healthz(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(br#"{"status":"ok"}"#) {
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed mid-answer: {}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn half_sent_headers_cannot_hold_the_server_hostage() {
    // Arrange: the server under an open-file limit of 1,024 and the default header-read timeout
    // (10 s); this test process needs more than 1,100 descriptors itself.
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    assert!(
        soft >= 1_500,
        "the test needs an open-file limit of 1,500: {soft}"
    );
    let dir = TempDir::new();
    let server = Server::start_with(&dir, &[], &[], &["prlimit", "--nofile=1024:1024"]);
    let pid = server.pid();
    for _ in 0..5 {
        assert_eq!(healthz_status(&server.addr), 200);
    }
    let idle = rss_kib(pid);

    // Act: 1,100 connections send half a request head and stay open; 300 of them send ~20 KB
    // of header first.
    let started = Instant::now();
    let mut held: Vec<TcpStream> = Vec::new();
    for i in 0..1_100 {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        let head = if i < 300 {
            format!(
                "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Filler: {}",
                "a".repeat(20 * 1024)
            )
        } else {
            "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Half: ".to_owned()
        };
        // Connections over the cap are answered and closed at once: writing may fail.
        let _ = stream.write_all(head.as_bytes());
        held.push(stream);
    }
    let flooded = Instant::now();
    let peak = rss_kib(pid);

    // Assert: the server closes every one of them within the header timeout (+ a generous
    // margin for a loaded machine), answers /healthz again, and gives the memory back.
    let deadline = flooded + Duration::from_secs(10 + 50);
    let still_open = held
        .iter()
        .filter(|s| !closed_by_server(s, deadline))
        .count();
    assert_eq!(
        still_open,
        0,
        "connections left open {:?} after they started",
        started.elapsed()
    );
    drop(held);
    assert!(
        eventually(Duration::from_secs(30), || healthz_status(&server.addr)
            == 200),
        "/healthz answers again; log:\n{}",
        server.log()
    );
    // Each held connection costs a bounded few tens of KiB (a head buffer of at most
    // `max_header_bytes`), not what the client sends; the allocator keeps part of it for reuse.
    // Keep a trickle of ordinary requests going meanwhile, as a live server would see.
    let mut now = 0;
    let settled = eventually(Duration::from_secs(60), || {
        for _ in 0..20 {
            healthz_status(&server.addr);
        }
        now = rss_kib(pid);
        now <= idle + 48 * 1024
    });
    assert!(
        settled,
        "RSS idle {idle} KiB, peak {peak} KiB, after {now} KiB"
    );
}

#[test]
fn oversized_heads_and_uris_and_garbage_answer_twilio_json() {
    // Arrange
    let dir = TempDir::new();
    let server = Server::start(&dir, &[]);
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let big_uri = format!(
        "GET /v2/Services?x={} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    // Act
    let header_answer = parse(&exchange(&server.addr, big_header.as_bytes()));
    let uri_answer = parse(&exchange(&server.addr, big_uri.as_bytes()));
    let garbage_answer = parse(&exchange(&server.addr, b"NOT HTTP AT ALL\r\n\r\n"));
    // Assert
    let (status, head, body) = header_answer;
    assert_eq!(status, 431, "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_twilio_error(&body, 431, 20001);
    let (status, head, body) = uri_answer;
    assert_eq!(status, 414, "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_twilio_error(&body, 414, 20001);
    let (status, _, body) = garbage_answer;
    assert_eq!(status, 400);
    assert_twilio_error(&body, 400, 20001);
    // The server is fine afterwards.
    assert_eq!(healthz_status(&server.addr), 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() {
    // Arrange: a short keep-alive timeout, a long header timeout (so only the idle timer can
    // close the connection early).
    let dir = TempDir::new();
    let server = Server::start_with(
        &dir,
        &[
            "--keep-alive-timeout-secs",
            "2",
            "--header-read-timeout-secs",
            "300",
        ],
        &[],
        &[],
    );
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    // Act: one request, then silence.
    let sent = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let answer = read_healthz(&mut stream);
    let answered = Instant::now();
    // Assert
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        closed_by_server(&stream, answered + Duration::from_secs(120)),
        "the idle connection is closed"
    );
    // The server's last byte went out after `sent`, and the timer runs from there.
    assert!(
        sent.elapsed() >= Duration::from_millis(1_900),
        "not before the keep-alive timeout: {:?}",
        sent.elapsed()
    );
}

#[test]
fn a_keep_alive_client_is_served_many_requests_on_one_connection() {
    // Arrange
    let dir = TempDir::new();
    let server = Server::start(&dir, &[]);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    // Act + Assert
    for i in 0..300 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let answer = read_healthz(&mut stream);
        assert!(answer.starts_with("HTTP/1.1 200"), "request {i}: {answer}");
    }
}

#[test]
fn connections_over_the_cap_get_a_503_twilio_error_until_others_close() {
    // Arrange: a cap of 3, all taken by connections that send nothing yet.
    let dir = TempDir::new();
    let server = Server::start_with(
        &dir,
        &[
            "--max-connections",
            "3",
            "--header-read-timeout-secs",
            "300",
        ],
        &[],
        &[],
    );
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    // Act
    let refused = parse(&exchange(
        &server.addr,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    ));
    drop(held);
    // Assert
    let (status, head, body) = refused;
    assert_eq!(status, 503, "{head}");
    assert!(head.contains("retry-after:"), "{head}");
    assert_twilio_error(&body, 503, 20503);
    assert!(
        eventually(Duration::from_secs(30), || healthz_status(&server.addr)
            == 200),
        "served again once connections closed"
    );
}

fn basic_request(method: &str, path: &str, sid: &str, token: &str) -> Vec<u8> {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{token}"));
    format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Basic {basic}\r\n\r\n"
    )
    .into_bytes()
}

fn metric(server: &Server, line_start: &str) -> Option<u64> {
    let text = exchange(
        &server.addr,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn repeated_failed_basic_logins_from_one_address_are_answered_429() {
    // Arrange
    let dir = TempDir::new();
    let env = [
        ("PARLEY_BOOTSTRAP_ACCOUNT_SID", SID),
        ("PARLEY_BOOTSTRAP_AUTH_TOKEN", TOKEN),
    ];
    let server = Server::start_with(&dir, &["--auth-failure-limit", "3"], &env, &[]);
    let ok = parse(&exchange(
        &server.addr,
        &basic_request("GET", "/v2/Services", SID, TOKEN),
    ));
    // Act
    let failures: Vec<_> = (0..3)
        .map(|_| {
            parse(&exchange(
                &server.addr,
                &basic_request("GET", "/v2/Services", SID, "a-wrong-token"),
            ))
        })
        .collect();
    let throttled = parse(&exchange(
        &server.addr,
        &basic_request("GET", "/v2/Services", SID, "a-wrong-token"),
    ));
    let right_but_throttled = parse(&exchange(
        &server.addr,
        &basic_request("GET", "/v2/Services", SID, TOKEN),
    ));
    // Assert
    assert_eq!(ok.0, 200, "a successful login costs nothing: {:?}", ok.2);
    for (status, _, body) in &failures {
        assert_eq!(*status, 401);
        assert_twilio_error(body, 401, 20003);
    }
    let (status, head, body) = throttled;
    assert_eq!(status, 429, "{head}");
    assert_twilio_error(&body, 429, 20429);
    let retry_after: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("retry-after:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("Retry-After: {head}"));
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        right_but_throttled.0, 429,
        "credentials are not even checked while the address is limited"
    );
    assert_eq!(
        metric(&server, r#"parley_auth_failures_total{kind="basic"}"#),
        Some(3)
    );
    assert_eq!(
        metric(&server, r#"parley_auth_throttled_total{kind="basic"}"#),
        Some(2)
    );
}

#[test]
fn repeated_failed_access_tokens_from_one_address_are_answered_429() {
    // Arrange
    let dir = TempDir::new();
    let server = Server::start_with(&dir, &["--auth-failure-limit", "2"], &[], &[]);
    let attempt = || {
        parse(&exchange(
            &server.addr,
            b"POST /v1/registrations?productId=ip_messaging HTTP/1.1\r\nHost: t\r\n\
              Connection: close\r\nX-Twilio-Token: not.a.token\r\n\
              Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        ))
    };
    // Act
    let first = attempt();
    let second = attempt();
    let third = attempt();
    // Assert
    assert_eq!(first.0, 401, "{:?}", first.2);
    assert_eq!(second.0, 401, "{:?}", second.2);
    assert_eq!(third.0, 429, "{}", third.1);
    assert_twilio_error(&third.2, 429, 20429);
    assert!(third.1.contains("retry-after:"), "{}", third.1);
    assert_eq!(
        metric(
            &server,
            r#"parley_auth_failures_total{kind="access_token"}"#
        ),
        Some(2)
    );
    assert_eq!(
        metric(
            &server,
            r#"parley_auth_throttled_total{kind="access_token"}"#
        ),
        Some(1)
    );
}

#[test]
fn sigterm_stops_the_server_with_idle_and_half_sent_connections_open() {
    // Arrange: an idle keep-alive connection (only the shutdown closes it before 75 s) and one
    // that sent half a head (closed by its 5 s header timeout, within the shutdown grace).
    let dir = TempDir::new();
    let server = Server::start_with(&dir, &["--header-read-timeout-secs", "5"], &[], &[]);
    let mut idle = TcpStream::connect(&server.addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert!(read_healthz(&mut idle).starts_with("HTTP/1.1 200"));
    let mut half = TcpStream::connect(&server.addr).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Half: ")
        .unwrap();
    // Act
    let (clean_exit, _) = server.terminate();
    // Assert: exit 0 (within `terminate`'s 30 s), both connections closed.
    assert!(clean_exit, "exit 0 on SIGTERM");
    let soon = Instant::now() + Duration::from_secs(5);
    assert!(closed_by_server(&idle, soon));
    assert!(closed_by_server(&half, soon));
}

#[test]
fn a_trickled_request_body_cannot_hold_a_connection() {
    // Arrange: a short body-read timeout; the other timers long, so only it can close.
    let dir = TempDir::new();
    let server = Server::start_with(
        &dir,
        &[
            "--body-read-timeout-secs",
            "2",
            "--header-read-timeout-secs",
            "300",
            "--keep-alive-timeout-secs",
            "300",
        ],
        &[],
        &[],
    );
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    // Act: a whole head announcing 100,000 bytes of body, then one byte every 200 ms.
    let sent = Instant::now();
    stream
        .write_all(
            b"POST /v1/registrations?productId=ip_messaging HTTP/1.1\r\nHost: t\r\n\
              Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
        )
        .unwrap();
    let deadline = sent + Duration::from_secs(60);
    let mut closed = false;
    while Instant::now() < deadline {
        if stream.write_all(b" ").is_err()
            || closed_by_server(&stream, Instant::now() + Duration::from_millis(200))
        {
            closed = true;
            break;
        }
    }
    // Assert
    assert!(closed, "the connection is closed");
    assert!(
        sent.elapsed() >= Duration::from_millis(1_900),
        "not before the body timeout: {:?}",
        sent.elapsed()
    );
    assert_eq!(healthz_status(&server.addr), 200);
}
