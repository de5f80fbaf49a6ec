//! The sender against a local receiver on 127.0.0.1: what arrives (method, URL, body, headers,
//! signature), redirects, timeouts, capped answers, the destination policy, pre-event answers,
//! metrics and logs.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use parley_webhooks::{
    call_pre_event, signature, Call, DestinationPolicy, Method, Outcome, PreChanges, PreOutcome,
    PreParams, Target, WebhookClient, WebhookConfig, SIGNATURE_HEADER, USER_AGENT,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    /// Path and query.
    uri: String,
    headers: HeaderMap,
    body: String,
}

#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    flaky: Arc<AtomicUsize>,
}

impl Receiver {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn record(
    State(r): State<Receiver>,
    Path(what): Path<String>,
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    r.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        uri: uri.to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    match what.as_str() {
        "ok" => "OK".into_response(),
        "redirect" => (StatusCode::FOUND, [("location", "/ok")]).into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "late".into_response()
        }
        "modify" => {
            r#"{"body":"modified message","attributes":"{\"checked\":true}"}"#.into_response()
        }
        "empty-object" => "{}".into_response(),
        "flaky" => {
            // 503 twice, then a modification.
            if r.flaky.fetch_add(1, Ordering::SeqCst) < 2 {
                StatusCode::SERVICE_UNAVAILABLE.into_response()
            } else {
                r#"{"body":"third time"}"#.into_response()
            }
        }
        other => match other
            .parse::<u16>()
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
        {
            Some(s) => (s, "status").into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        },
    }
}

async fn receiver() -> (Receiver, SocketAddr) {
    let r = Receiver::default();
    let app = Router::new()
        .route("/{what}", any(record))
        .with_state(r.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (r, addr)
}

fn client(config: WebhookConfig) -> (WebhookClient, prometheus::Registry) {
    let registry = prometheus::Registry::new();
    (WebhookClient::new(config, &registry).unwrap(), registry)
}

fn params() -> Vec<(String, String)> {
    [
        ("EventType", "onMessageSent"),
        ("Body", "Алло! a+b=c & d"),
        ("Attributes", "{}"),
        ("From", "someuser@email.domain"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn call(url: String, method: Method) -> Call {
    Call {
        url,
        method,
        params: params(),
        auth_token: TOKEN.into(),
        event_type: "onMessageSent".into(),
        retry_count: 0,
    }
}

fn form(s: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(s.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn a_post_arrives_form_encoded_and_signed_over_url_and_params() {
    let (rx, addr) = receiver().await;
    let (client, _) = client(WebhookConfig::default());
    let url = format!("http://{addr}/ok?tenant=7");
    let mut c = call(url.clone(), Method::Post);
    c.retry_count = 2;

    let outcome = client.send(&c).await;

    assert_eq!(
        outcome,
        Outcome::Delivered {
            status: 200,
            body: b"OK".to_vec(),
            truncated: false
        }
    );
    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, "POST");
    assert_eq!(s.uri, "/ok?tenant=7");
    assert_eq!(
        s.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(s.headers["user-agent"], USER_AGENT);
    assert!(USER_AGENT.starts_with("Parley"));
    let got = form(&s.body);
    let mut want = params();
    want.push(("RetryCount".into(), "2".into()));
    assert_eq!(got, want);
    // The receiver's check: the URL it was called at plus the parameters it got.
    let sig = s.headers[SIGNATURE_HEADER].to_str().unwrap();
    assert_eq!(sig, signature(&url, &got, TOKEN));
    assert_ne!(sig, signature(&url, &got, "another token"));
}

#[tokio::test]
async fn a_get_puts_params_in_the_query_and_signs_the_full_url() {
    let (rx, addr) = receiver().await;
    let (client, _) = client(WebhookConfig::default());
    let url = format!("http://{addr}/ok?tenant=7#frag");

    let outcome = client.send(&call(url, Method::Get)).await;

    assert!(outcome.is_delivered(), "{outcome:?}");
    let s = &rx.seen()[0];
    assert_eq!(s.method, "GET");
    assert_eq!(s.body, "");
    assert!(s.headers.get("content-type").is_none());
    let (path, query) = s.uri.split_once('?').unwrap();
    assert_eq!(path, "/ok");
    let mut want = vec![("tenant".to_string(), "7".to_string())];
    want.extend(params());
    want.push(("RetryCount".into(), "0".into()));
    assert_eq!(form(query), want);
    let full = format!("http://{addr}{}", s.uri);
    let none: [(&str, &str); 0] = [];
    assert_eq!(
        s.headers[SIGNATURE_HEADER].to_str().unwrap(),
        signature(&full, &none, TOKEN)
    );
}

#[tokio::test]
async fn redirects_are_failures_and_not_followed() {
    let (rx, addr) = receiver().await;
    let (client, _) = client(WebhookConfig::default());

    let outcome = client
        .send(&call(format!("http://{addr}/redirect"), Method::Post))
        .await;

    assert_eq!(outcome, Outcome::ErrorAnswer { status: 302 });
    assert_eq!(outcome.chat_code(), Some(50057));
    assert!(!outcome.is_retryable());
    let uris: Vec<_> = rx.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(uris, vec!["/redirect"], "/ok was never called");
}

#[tokio::test]
async fn error_statuses_are_error_answers_and_only_429_503_504_retry() {
    let (_rx, addr) = receiver().await;
    let (client, _) = client(WebhookConfig::default());
    for (status, retry) in [
        (400, false),
        (404, false),
        (500, false),
        (429, true),
        (503, true),
        (504, true),
    ] {
        let outcome = client
            .send(&call(format!("http://{addr}/{status}"), Method::Post))
            .await;
        assert_eq!(outcome, Outcome::ErrorAnswer { status }, "{status}");
        assert_eq!(outcome.is_retryable(), retry, "{status}");
    }
    // Any 2xx is delivered.
    let outcome = client
        .send(&call(format!("http://{addr}/204"), Method::Post))
        .await;
    assert!(
        matches!(outcome, Outcome::Delivered { status: 204, .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_slow_receiver_times_out_with_50076_and_is_retryable() {
    let (rx, addr) = receiver().await;
    let (client, _) = client(WebhookConfig {
        timeout: Duration::from_millis(300),
        ..WebhookConfig::default()
    });
    let started = std::time::Instant::now();

    let outcome = client
        .send(&call(format!("http://{addr}/slow"), Method::Post))
        .await;

    assert_eq!(outcome, Outcome::Timeout);
    assert_eq!(outcome.chat_code(), Some(50076));
    assert!(outcome.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up at the timeout"
    );
    assert_eq!(rx.seen().len(), 1, "the call did arrive");
}

#[tokio::test]
async fn the_default_timeout_is_five_seconds_and_the_cap_64_kib() {
    let c = WebhookConfig::default();
    assert_eq!(c.timeout, Duration::from_secs(5));
    assert_eq!(c.max_response_bytes, 64 * 1024);
    assert_eq!(c.policy, DestinationPolicy::default());
}

/// A raw HTTP server whose answer never ends; counts the bytes it managed to write.
async fn endless_answer() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let w = w.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|x| x == b"\r\n\r\n") {
                    let n = sock.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
                    )
                    .await;
                let chunk = vec![b'x'; 16 * 1024];
                while sock.write_all(&chunk).await.is_ok() {
                    w.fetch_add(chunk.len(), Ordering::SeqCst);
                }
            });
        }
    });
    (addr, written)
}

#[tokio::test]
async fn a_huge_answer_is_read_only_up_to_the_cap() {
    let (addr, written) = endless_answer().await;
    let (client, _) = client(WebhookConfig {
        max_response_bytes: 1000,
        timeout: Duration::from_secs(5),
        ..WebhookConfig::default()
    });

    let outcome = client
        .send(&call(format!("http://{addr}/"), Method::Post))
        .await;

    // Had the client read on, the endless answer would have run into the timeout.
    match outcome {
        Outcome::Delivered {
            status,
            body,
            truncated,
        } => {
            assert_eq!(status, 200);
            assert_eq!(body.len(), 1000);
            assert!(body.iter().all(|b| *b == b'x'));
            assert!(truncated);
        }
        other => panic!("expected a truncated delivery, got {other:?}"),
    }
    // The server stops being able to write once the client has gone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = written.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(written.load(Ordering::SeqCst), a, "nobody reads any more");
}

#[tokio::test]
async fn a_deny_list_refuses_loopback_by_address_and_by_name() {
    let (rx, addr) = receiver().await;
    let policy = DestinationPolicy::parse("", "127.0.0.0/8, ::1").unwrap();
    let (client, registry) = client(WebhookConfig {
        policy,
        ..WebhookConfig::default()
    });
    let port = addr.port();

    for url in [
        format!("http://127.0.0.1:{port}/ok"),
        format!("http://127.1:{port}/ok"),
        format!("http://[::ffff:127.0.0.1]:{port}/ok"),
        format!("http://localhost:{port}/ok"),
    ] {
        let outcome = client.send(&call(url.clone(), Method::Post)).await;
        assert!(matches!(outcome, Outcome::Refused(_)), "{url}: {outcome:?}");
        assert!(!outcome.is_retryable());
    }

    assert!(rx.seen().is_empty(), "nothing reached the receiver");
    let text = metrics_text(&registry);
    assert!(
        text.contains(r#"parley_webhook_calls_total{event="onMessageSent",outcome="refused"} 4"#),
        "{text}"
    );
}

#[tokio::test]
async fn an_allow_list_admits_only_its_blocks() {
    let (rx, addr) = receiver().await;
    let port = addr.port();
    let (elsewhere, _) = client(WebhookConfig {
        policy: DestinationPolicy::parse("10.0.0.0/8", "").unwrap(),
        ..WebhookConfig::default()
    });
    let outcome = elsewhere
        .send(&call(format!("http://localhost:{port}/ok"), Method::Post))
        .await;
    assert!(matches!(outcome, Outcome::Refused(_)), "{outcome:?}");
    let (loopback, _) = client(WebhookConfig {
        policy: DestinationPolicy::parse("127.0.0.0/8", "").unwrap(),
        ..WebhookConfig::default()
    });
    let outcome = loopback
        .send(&call(format!("http://127.0.0.1:{port}/ok"), Method::Post))
        .await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    assert_eq!(rx.seen().len(), 1);
}

#[tokio::test]
async fn unusable_urls_and_dead_ports_are_reported_not_retried() {
    let (client, _) = client(WebhookConfig::default());
    for url in ["ftp://example.com/x", "not a url", "/relative"] {
        let outcome = client.send(&call(url.into(), Method::Post)).await;
        assert!(matches!(outcome, Outcome::BadUrl(_)), "{url}: {outcome:?}");
    }
    // A port nobody listens on.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let outcome = client
        .send(&call(
            format!("http://127.0.0.1:{port}/x?secret=s3"),
            Method::Post,
        ))
        .await;
    match &outcome {
        Outcome::Connection(msg) => assert!(!msg.contains("s3"), "no URL in {msg}"),
        other => panic!("expected a connection error, got {other:?}"),
    }
    assert!(!outcome.is_retryable());
}

fn metrics_text(registry: &prometheus::Registry) -> String {
    let mut out = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&registry.gather(), &mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn attempts_are_counted_by_event_and_outcome() {
    let (_rx, addr) = receiver().await;
    let (client, registry) = client(WebhookConfig::default());
    client
        .send(&call(format!("http://{addr}/ok"), Method::Post))
        .await;
    client
        .send(&call(format!("http://{addr}/ok"), Method::Get))
        .await;
    client
        .send(&call(format!("http://{addr}/500"), Method::Post))
        .await;

    let text = metrics_text(&registry);
    assert!(
        text.contains(r#"parley_webhook_calls_total{event="onMessageSent",outcome="delivered"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"parley_webhook_calls_total{event="onMessageSent",outcome="error_answer"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"parley_webhook_call_duration_seconds_count{event="onMessageSent"} 3"#),
        "{text}"
    );
}

/// Collects formatted log output.
#[derive(Clone, Default)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn failures_are_logged_with_their_code_but_never_the_token_or_signature() {
    let sink = LogSink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (rx, addr) = receiver().await;
    let (client, _) = client(WebhookConfig {
        timeout: Duration::from_millis(300),
        ..WebhookConfig::default()
    });

    client
        .send(&call(
            format!("http://{addr}/500?key=qs-secret"),
            Method::Post,
        ))
        .await;
    client
        .send(&call(format!("http://{addr}/slow"), Method::Post))
        .await;

    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("webhook call failed"), "{logs}");
    assert!(logs.contains("code=50057"), "{logs}");
    assert!(logs.contains("status=500"), "{logs}");
    assert!(logs.contains("code=50076"), "{logs}");
    assert!(!logs.contains(TOKEN), "{logs}");
    assert!(!logs.contains("qs-secret"), "{logs}");
    for s in rx.seen() {
        let sig = s.headers[SIGNATURE_HEADER].to_str().unwrap();
        assert!(!logs.contains(sig), "{logs}");
    }
}

fn pre(event_type: &'static str) -> PreParams {
    PreParams {
        event_type,
        params: vec![
            ("EventType".into(), event_type.into()),
            ("Body".into(), "original".into()),
        ],
    }
}

fn target(url: String, retries: u32) -> Target {
    Target {
        url,
        method: Method::Post,
        retries,
    }
}

#[tokio::test]
async fn a_pre_event_answer_modifies_rejects_or_lets_through() {
    let (rx, addr) = receiver().await;
    let (client, _) = client(WebhookConfig {
        timeout: Duration::from_millis(300),
        ..WebhookConfig::default()
    });
    let send = pre("onMessageSend");

    let modified = call_pre_event(
        &client,
        &target(format!("http://{addr}/modify"), 0),
        &send,
        TOKEN,
    )
    .await;
    assert_eq!(
        modified,
        PreOutcome::Proceed(PreChanges {
            body: Some("modified message".into()),
            attributes: Some(r#"{"checked":true}"#.into()),
            ..PreChanges::default()
        })
    );
    let same = call_pre_event(
        &client,
        &target(format!("http://{addr}/empty-object"), 0),
        &send,
        TOKEN,
    )
    .await;
    assert_eq!(same, PreOutcome::Proceed(PreChanges::default()));
    let plain = call_pre_event(
        &client,
        &target(format!("http://{addr}/ok"), 0),
        &send,
        TOKEN,
    )
    .await;
    assert_eq!(plain, PreOutcome::Proceed(PreChanges::default()));
    for status in [403, 500, 201] {
        match call_pre_event(
            &client,
            &target(format!("http://{addr}/{status}"), 0),
            &send,
            TOKEN,
        )
        .await
        {
            PreOutcome::Reject(r) => assert_eq!(r.code, 50056, "{status}"),
            other => panic!("{status}: expected a rejection, got {other:?}"),
        }
    }
    let late = call_pre_event(
        &client,
        &target(format!("http://{addr}/slow"), 1),
        &send,
        TOKEN,
    )
    .await;
    assert_eq!(
        late,
        PreOutcome::Proceed(PreChanges::default()),
        "a timeout lets it through"
    );
    let slow_attempts: Vec<_> = rx
        .seen()
        .into_iter()
        .filter(|s| s.uri == "/slow")
        .map(|s| {
            form(&s.body)
                .into_iter()
                .find(|(k, _)| k == "RetryCount")
                .unwrap()
                .1
        })
        .collect();
    assert_eq!(slow_attempts, vec!["0", "1"], "one retry after the timeout");
}

#[tokio::test]
async fn a_pre_event_retries_503_up_to_the_configured_count() {
    let (rx, addr) = receiver().await;
    let (client, _) = client(WebhookConfig::default());
    let send = pre("onMessageSend");

    // Two 503s, then an answer: one retry is not enough…
    let once = call_pre_event(
        &client,
        &target(format!("http://{addr}/flaky"), 1),
        &send,
        TOKEN,
    )
    .await;
    assert!(
        matches!(once, PreOutcome::Reject(ref r) if r.code == 50056),
        "{once:?}"
    );
    // …the third attempt (the counter is at 2) succeeds.
    let again = call_pre_event(
        &client,
        &target(format!("http://{addr}/flaky"), 3),
        &send,
        TOKEN,
    )
    .await;
    assert_eq!(
        again,
        PreOutcome::Proceed(PreChanges {
            body: Some("third time".into()),
            ..PreChanges::default()
        })
    );
    let retry_counts: Vec<String> = rx
        .seen()
        .into_iter()
        .map(|s| {
            form(&s.body)
                .into_iter()
                .find(|(k, _)| k == "RetryCount")
                .unwrap()
                .1
        })
        .collect();
    assert_eq!(retry_counts, vec!["0", "1", "0"]);
}

/// The official twilio-python `RequestValidator` accepts what was received. Needs a Python with
/// `twilio` installed: `PARLEY_TWILIO_PYTHON` (scripts/test sets it to `compat/.venv`, which it
/// creates before `cargo test`; then a Python without `twilio` is a failure), else
/// `.venv/bin/python` or `compat/.venv/bin/python` at the workspace root. Skipped, loudly, only
/// when neither is set up (plain `cargo test` without Python).
#[tokio::test]
async fn the_official_twilio_validator_accepts_our_signatures() {
    let Some(python) = twilio_python() else {
        eprintln!(
            "\n*** SKIPPED the_official_twilio_validator_accepts_our_signatures: no Python with \
             the twilio package (run scripts/test, or `compat/run --venv-only` and set \
             PARLEY_TWILIO_PYTHON=compat/.venv/bin/python) ***\n"
        );
        return;
    };
    let (rx, addr) = receiver().await;
    let (client, _) = client(WebhookConfig::default());
    client
        .send(&call(format!("http://{addr}/ok?tenant=7"), Method::Post))
        .await;
    client
        .send(&call(format!("http://{addr}/ok"), Method::Get))
        .await;
    let mut cases = Vec::new();
    for s in rx.seen() {
        let url = format!("http://{addr}{}", s.uri);
        let params: HashMap<String, String> = form(&s.body).into_iter().collect();
        let sig = s.headers[SIGNATURE_HEADER].to_str().unwrap().to_owned();
        cases.push(serde_json::json!({"url": url, "params": params, "signature": sig}));
        // A tampered body must fail.
        let mut bad = params.clone();
        bad.insert("Body".into(), "tampered".into());
        if s.method == "POST" {
            cases.push(
                serde_json::json!({"url": url, "params": bad, "signature": sig, "expect": false}),
            );
        }
    }
    let script = r#"
import json, sys
from twilio.request_validator import RequestValidator
cases = json.load(sys.stdin)
v = RequestValidator(sys.argv[1])
print(json.dumps([v.validate(c["url"], c["params"], c["signature"]) == c.get("expect", True) for c in cases]))
"#;
    let mut child = std::process::Command::new(python)
        .args(["-c", script, TOKEN])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let results: Vec<bool> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results, vec![true; 3], "{cases:?}");
}

/// The Python to validate with: `PARLEY_TWILIO_PYTHON` when set (it must have `twilio`: a
/// broken setup fails instead of skipping), else the first workspace venv that has it.
fn twilio_python() -> Option<std::path::PathBuf> {
    let has_twilio = |p: &std::path::Path| {
        std::process::Command::new(p)
            .args(["-c", "import twilio.request_validator"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if let Some(p) = std::env::var_os("PARLEY_TWILIO_PYTHON").filter(|p| !p.is_empty()) {
        let p = std::path::PathBuf::from(p);
        assert!(
            has_twilio(&p),
            "PARLEY_TWILIO_PYTHON={} cannot import twilio.request_validator",
            p.display()
        );
        return Some(p);
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        root.join(".venv/bin/python"),
        root.join("compat/.venv/bin/python"),
    ]
    .into_iter()
    .find(|p| has_twilio(p))
}
