//! The SDK door: `POST /v1/registrations?productId=ip_messaging` with an Access Token.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{access_token, Backend, Creds, TestApp};

fn sdk_body(channel_type: &str, token: &str) -> Value {
    json!({
        "endpoint_platform": "Mozilla/5.0",
        "channel_type": channel_type,
        "version": "3",
        "message_types": ["twilio.channel.new_message", "twilio.channel.added_to_channel",
                          "twilio.channel.invited_to_channel", "twilio.channel.removed_from_channel",
                          "twilio.channel.consumption_update"],
        "data": {"registration_id": token},
        "ttl": "PT24H"
    })
}

async fn sdk(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("X-Twilio-Token", token)
        .header("Content-Type", "application/json");
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let (s, _, v) = app.send(req).await;
    (s, v)
}

const PATH: &str = "/v1/registrations?productId=ip_messaging";

async fn sdk_registration_creates_a_binding_visible_over_rest(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let cred = app.create_credential("fcm").await;
    let chat = json!({"service_sid": service, "endpoint_id": "MyApp:alice:device-1"});
    let token = access_token(
        &app.api_key,
        &app.account.sid,
        "alice@example.com",
        chat,
        3600,
    );
    let (s, v) = sdk(
        &app,
        Method::POST,
        PATH,
        &token,
        Some(sdk_body("fcm", "fcm-token-1")),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("BS"));
    let (s, rest) = app
        .get(&format!(
            "/v2/Services/{service}/Users/alice%40example.com/Bindings/{id}"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{rest}");
    assert_eq!(
        rest["endpoint"], "MyApp:alice:device-1",
        "endpoint from the token's endpoint_id"
    );
    assert_eq!(rest["credential_sid"], cred.as_str());
    assert_eq!(
        rest["message_types"],
        json!([
            "new_message",
            "added_to_channel",
            "invited_to_channel",
            "removed_from_channel"
        ]),
        "prefix stripped, unknown consumption_update ignored"
    );
    // Same registration again: same binding, 200.
    let (s, again) = sdk(
        &app,
        Method::POST,
        PATH,
        &token,
        Some(sdk_body("fcm", "fcm-token-2")),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["id"], id.as_str());
    // Unregister.
    let (s, _) = sdk(
        &app,
        Method::DELETE,
        &format!("/v1/registrations/{id}?productId=ip_messaging"),
        &token,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .get(&format!("/v2/Services/{service}/Bindings/{id}"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn sdk_registration_uses_the_tokens_push_credential(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    app.create_credential("apn").await;
    let chosen = app.create_credential("apn").await;
    let plain = access_token(
        &app.api_key,
        &app.account.sid,
        "alice",
        json!({"service_sid": service}),
        3600,
    );
    let (s, v) = sdk(
        &app,
        Method::POST,
        PATH,
        &plain,
        Some(sdk_body("apn", "aa")),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "two apn credentials and none named: {v}"
    );
    let named = access_token(
        &app.api_key,
        &app.account.sid,
        "alice",
        json!({"service_sid": service, "push_credential_sid": chosen}),
        3600,
    );
    let (s, v) = sdk(
        &app,
        Method::POST,
        PATH,
        &named,
        Some(sdk_body("apn", "aa")),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["credential_sid"], chosen.as_str());
}

async fn sdk_registration_rejects_bad_tokens_and_bodies(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    app.create_credential("fcm").await;
    let (_, _, other_service) = app
        .call(
            Method::POST,
            "/v2/Services",
            Some(&app.other),
            &[("FriendlyName", "x")],
            &[],
        )
        .await;
    let chat = json!({"service_sid": service});
    let good = access_token(&app.api_key, &app.account.sid, "alice", chat.clone(), 3600);
    let wrong_key = Creds {
        sid: app.api_key.sid.clone(),
        token: "not-the-secret".into(),
    };
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "expired",
            access_token(&app.api_key, &app.account.sid, "alice", chat.clone(), -3600),
            401,
        ),
        (
            "wrong signature",
            access_token(&wrong_key, &app.account.sid, "alice", chat.clone(), 3600),
            401,
        ),
        (
            "another account's key",
            access_token(
                &app.other_api_key,
                &app.account.sid,
                "alice",
                chat.clone(),
                3600,
            ),
            401,
        ),
        (
            "service of another account",
            access_token(
                &app.api_key,
                &app.account.sid,
                "alice",
                json!({"service_sid": other_service["sid"]}),
                3600,
            ),
            401,
        ),
        (
            "no chat grant",
            access_token(&app.api_key, &app.account.sid, "alice", Value::Null, 3600),
            401,
        ),
        ("garbage", "not.a.jwt".to_owned(), 401),
    ];
    for (what, token, status) in cases {
        let (s, v) = sdk(&app, Method::POST, PATH, &token, Some(sdk_body("fcm", "t"))).await;
        assert_eq!(s.as_u16(), status, "{what}: {v}");
        assert!(v["code"].as_u64().unwrap() >= 20000, "{what}: {v}");
    }
    let (s, v) = sdk(
        &app,
        Method::POST,
        PATH,
        &good,
        Some(json!({"channel_type": "fcm", "data": {}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "missing address: {v}");
    let (s, v) = sdk(
        &app,
        Method::POST,
        PATH,
        &good,
        Some(sdk_body("carrier-pigeon", "t")),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown binding type: {v}");
    assert_eq!(v["code"], 50209);
    let (s, _) = sdk(
        &app,
        Method::POST,
        "/v1/registrations?productId=other",
        &good,
        Some(sdk_body("fcm", "t")),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, list) = app.get(&format!("/v2/Services/{service}/Bindings")).await;
    assert_eq!(
        list["bindings"],
        json!([]),
        "no rejected registration stored anything"
    );
}

async fn sdk_unregistration_only_touches_the_tokens_identity(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    app.create_credential("fcm").await;
    let chat = json!({"service_sid": service});
    let alice = access_token(&app.api_key, &app.account.sid, "alice", chat.clone(), 3600);
    let bob = access_token(&app.api_key, &app.account.sid, "bob", chat, 3600);
    let (_, v) = sdk(
        &app,
        Method::POST,
        PATH,
        &alice,
        Some(sdk_body("fcm", "alice-device")),
    )
    .await;
    let id = v["id"].as_str().unwrap();
    let (s, _) = sdk(
        &app,
        Method::DELETE,
        &format!("/v1/registrations/{id}?productId=ip_messaging"),
        &bob,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .get(&format!("/v2/Services/{service}/Bindings/{id}"))
        .await;
    assert_eq!(s, StatusCode::OK);
    // Bulk removal by address.
    let (s, _) = sdk(
        &app,
        Method::DELETE,
        PATH,
        &alice,
        Some(json!({"binding_type": "fcm", "address": "alice-device"})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .get(&format!("/v2/Services/{service}/Bindings/{id}"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn an_sdk_registration_over_the_body_limit_answers_a_twilio_413(b: Backend) {
    // Arrange: a body over the registration door's 2 MiB limit.
    let app = TestApp::spawn(b).await;
    let big = format!(
        "{{\"channel_type\":\"fcm\",\"x\":\"{}\"}}",
        "a".repeat(3 << 20)
    );
    let req = Request::builder()
        .method(Method::POST)
        .uri(PATH)
        .header("X-Twilio-Token", "not-checked-before-the-body")
        .header("Content-Type", "application/json")
        .body(Body::from(big))
        .unwrap();
    // Act
    let (s, h, v) = app.send(req).await;
    // Assert
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(h["content-type"], "application/json");
    crate::helpers::assert_twilio_error(&v, 413, 20001);
}

both_backends!(
    an_sdk_registration_over_the_body_limit_answers_a_twilio_413,
    sdk_registration_creates_a_binding_visible_over_rest,
    sdk_registration_uses_the_tokens_push_credential,
    sdk_registration_rejects_bad_tokens_and_bodies,
    sdk_unregistration_only_touches_the_tokens_identity,
);
