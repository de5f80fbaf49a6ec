//! `parley token`'s Access Tokens (parley_server::token::issue): accepted by the SDK door and
//! by `parley_http::access_token::verify`; signed with one reusable key per account.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use parley_core::{ServiceSid, Timestamp};
use parley_http::{AppState, HttpConfig};
use parley_server::token::{issue, TOKEN_KEY_NAME};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

async fn issued_tokens_pass_the_registration_door_and_verify(b: Backend) {
    // Arrange
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    app.create_credential("fcm").await;
    let service_sid = ServiceSid::parse(&service).unwrap();
    // Act
    let issued = issue(
        app.store.as_ref(),
        &app.secrets,
        &service_sid,
        "alice@example.com",
        3600,
        Timestamp::now(),
    )
    .await
    .unwrap();
    // Assert: the verifier the socket and the door use accepts it.
    let state = AppState::new(
        app.store.clone(),
        app.secrets.clone(),
        HttpConfig::default(),
    );
    let who = parley_http::access_token::verify(&state, &issued.token, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(who.identity, "alice@example.com");
    assert_eq!(who.service_sid.as_str(), service);
    assert_eq!(who.account_sid.as_str(), app.account.sid);
    assert_eq!(who.api_key_sid, issued.api_key_sid);
    // The SDK's push registration door accepts it and files the binding under the identity.
    let body = json!({
        "endpoint_platform": "node", "channel_type": "fcm", "version": "3",
        "message_types": ["twilio.channel.new_message"],
        "data": {"registration_id": "fcm-token-1"},
    });
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/registrations?productId=ip_messaging")
        .header("X-Twilio-Token", &issued.token)
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (s, _, v) = app.send(req).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, listed) = app
        .get(&format!(
            "/v2/Services/{service}/Users/alice%40example.com/Bindings"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{listed}");
    let bindings = listed["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 1, "{listed}");
    assert_eq!(bindings[0]["sid"], v["id"], "{listed}");
    assert_eq!(bindings[0]["binding_type"], "fcm");
}

async fn one_signing_key_per_account_is_created_then_reused(b: Backend) {
    // Arrange
    let app = TestApp::spawn(b).await;
    let service = ServiceSid::parse(&app.create_service("s").await).unwrap();
    let account = parley_core::AccountSid::parse(&app.account.sid).unwrap();
    let keys_before = app.store.list_api_keys(&account).await.unwrap().len();
    // Act
    let first = issue(
        app.store.as_ref(),
        &app.secrets,
        &service,
        "a",
        60,
        Timestamp::now(),
    )
    .await
    .unwrap();
    let second = issue(
        app.store.as_ref(),
        &app.secrets,
        &service,
        "b",
        60,
        Timestamp::now(),
    )
    .await
    .unwrap();
    // Assert
    let keys = app.store.list_api_keys(&account).await.unwrap();
    assert_eq!(keys.len(), keys_before + 1, "exactly one key was added");
    assert_eq!(first.api_key_sid, second.api_key_sid);
    let key = keys.iter().find(|k| k.sid == first.api_key_sid).unwrap();
    assert_eq!(key.friendly_name.as_deref(), Some(TOKEN_KEY_NAME));
}

async fn expired_tokens_and_bad_requests_are_refused(b: Backend) {
    // Arrange
    let app = TestApp::spawn(b).await;
    let service = ServiceSid::parse(&app.create_service("s").await).unwrap();
    let state = AppState::new(
        app.store.clone(),
        app.secrets.clone(),
        HttpConfig::default(),
    );
    let long_ago = Timestamp::from_unix_secs(Timestamp::now().unix_secs() - 7200);
    // Act
    let old = issue(
        app.store.as_ref(),
        &app.secrets,
        &service,
        "a",
        60,
        long_ago,
    )
    .await
    .unwrap();
    let unknown = issue(
        app.store.as_ref(),
        &app.secrets,
        &ServiceSid::generate(),
        "a",
        60,
        Timestamp::now(),
    )
    .await;
    let empty = issue(
        app.store.as_ref(),
        &app.secrets,
        &service,
        " ",
        60,
        Timestamp::now(),
    )
    .await;
    let too_long = issue(
        app.store.as_ref(),
        &app.secrets,
        &service,
        "a",
        86_401,
        Timestamp::now(),
    )
    .await;
    // Assert
    let err = parley_http::access_token::verify(&state, &old.token, Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!(err.code, 20104, "{err:?}");
    let unknown = unknown.unwrap_err().to_string();
    assert!(unknown.contains("unknown service"), "{unknown}");
    assert!(empty.unwrap_err().to_string().contains("identity"));
    assert!(too_long.unwrap_err().to_string().contains("--ttl"));
}

both_backends!(
    issued_tokens_pass_the_registration_door_and_verify,
    one_signing_key_per_account_is_created_then_reused,
    expired_tokens_and_bad_requests_are_refused,
);
