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
