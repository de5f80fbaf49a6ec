//! The library half: `Application` on port 0 and the stale-binding sweep, on temp SQLite files.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use parley_core::binding::NewBinding;
use parley_core::credential::PushType;
use parley_core::service::NewService;
use parley_core::store::Store;
use parley_core::user::User;
use parley_core::{AccountSid, BindingSid, Timestamp, UserSid};
use parley_server::admin::Bootstrap;
use parley_server::config::{Config, DatabaseUrl};
use parley_server::{sweep_stale_bindings, Application, SWEEP_BATCH};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use common::{Db as _, TempDir};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn application_binds_port_zero_serves_and_stops_when_the_shutdown_future_resolves() {
    // Arrange
    let dir = TempDir::new();
    let mut config = Config::for_database(&dir.url()).unwrap();
    config.listen = "127.0.0.1:0".to_owned();
    let app = Application::build(config).await.unwrap();
    let addr = app.local_addr();
    assert_ne!(app.port(), 0);
    assert!(matches!(app.bootstrap(), Bootstrap::Generated(_)));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    // Act
    let response = http_get(addr, "/healthz").await;
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server).await;
    // Assert
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    result.expect("stops promptly").unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the port is released"
    );

    // A second build on the same database finds the account.
    let mut config = Config::for_database(&dir.url()).unwrap();
    config.listen = "127.0.0.1:0".to_owned();
    let again = Application::build(config).await.unwrap();
    assert_eq!(again.bootstrap(), &Bootstrap::Existing);
}

/// `count` bindings (20 per user, the default cap) last refreshed at `when`.
async fn register_bindings(
    store: &dyn Store,
    account: &AccountSid,
    service: &NewService,
    count: usize,
    when: Timestamp,
) {
    let service_sid = &service.service.sid;
    for u in 0..count.div_ceil(20) {
        let identity = format!("user-{}-{u}", when.unix_micros());
        let user = User {
            sid: UserSid::generate(),
            account_sid: account.clone(),
            service_sid: service_sid.clone(),
            identity: identity.clone(),
            friendly_name: None,
            attributes: None,
            role_sid: service.service.default_service_role_sid.clone(),
            date_created: when,
            date_updated: when,
        };
        let user = store
            .create_user(&user, &parley_core::event::Origin::rest())
            .await
            .unwrap();
        for b in 0..(count - u * 20).min(20) {
            let new = NewBinding {
                sid: BindingSid::generate(),
                account_sid: account.clone(),
                service_sid: service_sid.clone(),
                user_sid: user.sid.clone(),
                identity: identity.clone(),
                credential_sid: None,
                binding_type: PushType::Fcm,
                endpoint: format!("endpoint-{b}"),
                address: format!("token-{}-{u}-{b}", when.unix_micros()),
                message_types: vec!["new_message".to_owned()],
                now: when,
                max_per_user: 20,
            };
            store.register_binding(&new).await.unwrap();
        }
    }
}

#[tokio::test]
async fn sweep_deletes_every_stale_binding_in_batches_and_keeps_fresh_ones() {
    // Arrange
    let dir = TempDir::new();
    let url = DatabaseUrl::parse(&dir.url()).unwrap();
    let store: Arc<dyn Store> = parley_server::db::open_store(&url).await.unwrap();
    let secrets = parley_core::crypto::SecretBox::from_hex(&"42".repeat(32)).unwrap();
    let account = parley_server::admin::create_account(store.as_ref(), &secrets, None, None, None)
        .await
        .unwrap()
        .sid;
    let now = Timestamp::now();
    let service = NewService::with_defaults(&account, "sweep", now);
    store.create_service(&service).await.unwrap();
    let stale = SWEEP_BATCH as usize + 5; // more than one batch
    register_bindings(
        store.as_ref(),
        &account,
        &service,
        stale,
        now.plus_secs(-400 * 86_400),
    )
    .await;
    register_bindings(
        store.as_ref(),
        &account,
        &service,
        3,
        now.plus_secs(-10 * 86_400),
    )
    .await;
    // Act
    let deleted = sweep_stale_bindings(store.as_ref(), 365).await.unwrap();
    let again = sweep_stale_bindings(store.as_ref(), 365).await.unwrap();
    // Assert
    assert_eq!(deleted, stale as u64);
    assert_eq!(again, 0);
    let remaining = sweep_stale_bindings(store.as_ref(), 1).await.unwrap();
    assert_eq!(
        remaining, 3,
        "the fresh bindings survived the 365-day sweep"
    );
}

/// A request with HTTP Basic auth; returns the status line and the JSON body.
async fn http_call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    auth: (&str, &str),
    form: &str,
) -> (String, serde_json::Value) {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", auth.0, auth.1));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// The change-log trimming task (every node, at start and then each minute): events the
/// `webhooks` consumer has passed go once the retention is over, and `/metrics` counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trimming_task_deletes_events_the_webhooks_consumer_passed_after_retention() {
    // Arrange: a first run writes a service, a channel and a user over REST.
    let dir = TempDir::new();
    let mut config = Config::for_database(&dir.url()).unwrap();
    config.listen = "127.0.0.1:0".to_owned();
    config.push = false;
    let app = Application::build(config).await.unwrap();
    let Bootstrap::Generated(creds) = app.bootstrap() else {
        panic!("a fresh database gets a generated account");
    };
    let auth = (creds.sid.as_str().to_owned(), creds.auth_token.clone());
    let auth = (auth.0.as_str(), auth.1.as_str());
    let store = app.store();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let (status, service) =
        http_call(addr, "POST", "/v2/Services", auth, "FriendlyName=trim").await;
    assert!(status.contains(" 201"), "{status} {service}");
    let service_sid = service["sid"].as_str().unwrap().to_owned();
    let (status, _) = http_call(
        addr,
        "POST",
        &format!("/v2/Services/{service_sid}/Channels"),
        auth,
        "FriendlyName=general",
    )
    .await;
    assert!(status.contains(" 201"), "{status}");
    let (status, _) = http_call(
        addr,
        "POST",
        &format!("/v2/Services/{service_sid}/Users"),
        auth,
        "Identity=alice",
    )
    .await;
    assert!(status.contains(" 201"), "{status}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let service_sid: parley_core::ServiceSid = service_sid.parse().unwrap();
    let written = store.list_events(&service_sid, 0, 100).await.unwrap();
    assert!(
        written.len() >= 2,
        "channel_added and user_added: {written:?}"
    );
    // The webhooks consumer reads all of it.
    let now = Timestamp::now();
    let claim = store
        .claim_log("webhooks", "test", now, now.plus_secs(60), 100)
        .await
        .unwrap()
        .expect("events to read");
    assert_eq!(claim.events, written);
    store
        .advance_log(&claim, "test", claim.last_seq())
        .await
        .unwrap();

    // Act: a second run with a retention of 0 seconds trims at start.
    let mut config = Config::for_database(&dir.url()).unwrap();
    config.listen = "127.0.0.1:0".to_owned();
    config.push = false;
    config.change_log_retention = Duration::ZERO;
    let app = Application::build(config).await.unwrap();
    let store = app.store();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !store
        .list_events(&service_sid, 0, 100)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "trimmed in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Assert: counted (right after the trim call returns).
    let expected = format!("parley_change_log_trimmed_total {}", written.len());
    loop {
        let metrics = http_get(addr, "/metrics").await;
        if metrics.contains(&expected) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
