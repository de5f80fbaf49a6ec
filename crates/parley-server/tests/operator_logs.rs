//! What an operator reads (issue 15 item 6): one request log line per request, the start-up
//! settings as `key=value` pairs with secrets masked, and `/metrics` on its own address.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

const SID: &str = "AC00000000000000000000000000000aa1";
const TOKEN: &str = "operator-logs-secret-token-0001";

fn metrics_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `GET path` on `addr`; the raw response.
fn get(addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Wait until `log` holds a line containing every one of `parts`; returns that line.
fn line_with(server: &Server, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        if let Some(line) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?} in:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn requests_are_logged_the_settings_are_readable_and_metrics_move_to_their_own_address() {
    // Arrange
    let db = TempDir::new();
    let port = metrics_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let key = "ab".repeat(32);
    let server = Server::start_with(
        &db,
        &["--metrics-listen", &metrics_addr],
        &[
            ("PARLEY_BOOTSTRAP_ACCOUNT_SID", SID),
            ("PARLEY_BOOTSTRAP_AUTH_TOKEN", TOKEN),
            ("PARLEY_SECRET_KEY", &key),
        ],
        &[],
    );

    // Act
    let created = server.ok(
        "POST",
        "/v2/Services",
        (SID, TOKEN),
        &[("FriendlyName", "logs")],
    );
    let (status, _) = server.call(
        "GET",
        &format!("/v2/Services/{}", created["sid"].as_str().unwrap()),
        (SID, "wrong-password"),
        &[],
    );
    let main_metrics = server.get("/metrics");
    let health = server.get("/healthz");
    let metrics = get(&metrics_addr, "/metrics");

    // Assert: one line per request, with the route template and the account, never a secret.
    assert_eq!(status, 401);
    let line = line_with(
        &server,
        &[
            "parley::request",
            "method=POST",
            "route=/v2/Services",
            "status=201",
        ],
    );
    assert!(line.contains(&format!("account={SID}")), "{line}");
    assert!(line.contains("latency_ms="), "{line}");
    let refused = line_with(
        &server,
        &[
            "parley::request",
            "route=/v2/Services/{ServiceSid}",
            "status=401",
        ],
    );
    assert!(refused.contains("method=GET"), "{refused}");
    // The start-up settings as key=value, secrets masked.
    let start = line_with(&server, &["starting parley", "listen=127.0.0.1:0"]);
    assert!(
        start.contains(&format!("metrics_listen={metrics_addr}")),
        "{start}"
    );
    assert!(start.contains("secret_key=set"), "{start}");
    assert!(start.contains("request_log=true"), "{start}");
    assert!(!start.contains("Config {"), "no debug dump: {start}");
    let log = server.log();
    assert!(!log.contains(TOKEN), "the auth token was logged");
    assert!(!log.contains("wrong-password"), "a password was logged");
    assert!(!log.contains(&key), "the server key was logged");
    // Probes are not logged at info.
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        !log.lines().any(|l| l.contains("route=/healthz")),
        "a probe was logged at info"
    );
    // /metrics: on its own address, not on the main one.
    assert!(main_metrics.starts_with("HTTP/1.1 404"), "{main_metrics}");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("parley_http_requests_total"), "{metrics}");
    let (ok, _) = server.terminate();
    assert!(ok, "clean exit");
}

#[test]
fn the_request_log_can_be_turned_off() {
    // Arrange
    let db = TempDir::new();
    let server = Server::start_with(
        &db,
        &["--request-log", "false"],
        &[
            ("PARLEY_BOOTSTRAP_ACCOUNT_SID", SID),
            ("PARLEY_BOOTSTRAP_AUTH_TOKEN", TOKEN),
        ],
        &[],
    );

    // Act
    server.ok(
        "POST",
        "/v2/Services",
        (SID, TOKEN),
        &[("FriendlyName", "quiet")],
    );
    let health = server.get("/healthz");

    // Assert
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log();
    assert!(!log.contains("parley::request"), "{log}");
    assert!(log.contains("request_log=false"), "{log}");
    let (ok, _) = server.terminate();
    assert!(ok);
}
