use axum::http::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_twilio_error, encode, Backend, TestApp};

async fn create_user_has_defaults_links_and_default_role(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let (_, svc) = app.get(&format!("/v2/Services/{service}")).await;
    let v = app.create_user(&service, "alice").await;
    let sid = v["sid"].as_str().unwrap();
    assert!(sid.starts_with("US"));
    assert_eq!(v["identity"], "alice");
    assert_eq!(v["role_sid"], svc["default_service_role_sid"]);
    assert_eq!(v["attributes"], "{}");
    assert_eq!(v["friendly_name"], serde_json::Value::Null);
    assert_eq!(v["is_online"], serde_json::Value::Null);
    assert_eq!(v["is_notifiable"], serde_json::Value::Null);
    assert_eq!(v["joined_channels_count"], 0);
    let base = format!("{}/v2/Services/{service}/Users/{sid}", app.base);
    assert_eq!(v["url"], base);
    assert_eq!(
        v["links"],
        json!({"user_channels": format!("{base}/Channels"), "user_bindings": format!("{base}/Bindings")})
    );
}

async fn duplicate_identity_is_409_50201_and_missing_identity_is_400(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    app.create_user(&service, "alice").await;
    let (s, v) = app
        .post(
            &format!("/v2/Services/{service}/Users"),
            &[("Identity", "alice")],
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_twilio_error(&v, 409, 50201);
    let (s, v) = app
        .post(
            &format!("/v2/Services/{service}/Users"),
            &[("FriendlyName", "x")],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_twilio_error(&v, 400, 20001);
    assert_eq!(
        v["message"],
        "Missing required parameter Identity in the post body"
    );
    let (s, v) = app
        .post(
            &format!("/v2/Services/{service}/Users"),
            &[("Identity", "US00000000000000000000000000000000")],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_twilio_error(&v, 400, 50206);
}

async fn users_are_reachable_by_sid_and_by_url_encoded_identity(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    for identity in ["alice@example.com", "bob smith", "c/d+e?f"] {
        let u = app.create_user(&service, identity).await;
        let by_sid = app
            .get(&format!(
                "/v2/Services/{service}/Users/{}",
                u["sid"].as_str().unwrap()
            ))
            .await;
        let by_identity = app
            .get(&format!(
                "/v2/Services/{service}/Users/{}",
                encode(identity)
            ))
            .await;
        assert_eq!(by_sid.0, StatusCode::OK, "{identity}");
        assert_eq!(by_sid, by_identity, "{identity}");
        assert_eq!(by_identity.1["identity"], identity);
    }
    let (s, v) = app
        .get(&format!("/v2/Services/{service}/Users/nobody"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        v["message"],
        format!("The requested resource /Services/{service}/Users/nobody was not found")
    );
}

async fn update_user_changes_only_sent_fields_and_validates_attributes(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let u = app.create_user(&service, "alice").await;
    let path = format!("/v2/Services/{service}/Users/alice");
    let (s, v) = app
        .post(
            &path,
            &[("FriendlyName", "Alice"), ("Attributes", "{\"a\":1}")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["friendly_name"], "Alice");
    assert_eq!(v["attributes"], "{\"a\":1}");
    assert_eq!(v["role_sid"], u["role_sid"]);
    let (s, v) = app.post(&path, &[("Attributes", "{not json")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["details"]["param"], "Attributes");
    let (s, v) = app
        .post(&path, &[("RoleSid", "RL00000000000000000000000000000000")])
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (_, after) = app.get(&path).await;
    assert_eq!(after["friendly_name"], "Alice");
    assert_eq!(after["attributes"], "{\"a\":1}");
}

async fn delete_user_removes_it_and_its_bindings(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    app.create_credential("apn").await;
    app.create_user(&service, "bob smith").await;
    let (_, binding) = app
        .register(
            &service,
            "bob smith",
            &[("BindingType", "apn"), ("Address", "aa11")],
        )
        .await;
    let (s, _) = app
        .delete(&format!("/v2/Services/{service}/Users/bob%20smith"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .get(&format!("/v2/Services/{service}/Users/bob%20smith"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .get(&format!(
            "/v2/Services/{service}/Bindings/{}",
            binding["sid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Re-creating the identity starts clean.
    app.create_user(&service, "bob smith").await;
    let (_, list) = app.get(&format!("/v2/Services/{service}/Bindings")).await;
    assert_eq!(list["bindings"], json!([]));
}

async fn is_notifiable_reflects_bindings_when_reachability_is_on(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    app.create_credential("fcm").await;
    app.post(
        &format!("/v2/Services/{service}"),
        &[("ReachabilityEnabled", "true")],
    )
    .await;
    app.create_user(&service, "alice").await;
    let (_, v) = app
        .get(&format!("/v2/Services/{service}/Users/alice"))
        .await;
    assert_eq!(v["is_notifiable"], false);
    assert_eq!(v["is_online"], false);
    app.register(
        &service,
        "alice",
        &[("BindingType", "fcm"), ("Address", "t")],
    )
    .await;
    let (_, v) = app
        .get(&format!("/v2/Services/{service}/Users/alice"))
        .await;
    assert_eq!(v["is_notifiable"], true);
    let (_, list) = app.get(&format!("/v2/Services/{service}/Users")).await;
    assert_eq!(
        list["users"][0]["is_notifiable"],
        serde_json::Value::Null,
        "null in lists"
    );
}

async fn users_of_another_accounts_service_are_404(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    app.create_user(&service, "alice").await;
    for (method, path) in [
        (
            axum::http::Method::GET,
            format!("/v2/Services/{service}/Users"),
        ),
        (
            axum::http::Method::GET,
            format!("/v2/Services/{service}/Users/alice"),
        ),
        (
            axum::http::Method::DELETE,
            format!("/v2/Services/{service}/Users/alice"),
        ),
        (
            axum::http::Method::POST,
            format!("/v2/Services/{service}/Users"),
        ),
    ] {
        let (s, _, v) = app
            .call(
                method.clone(),
                &path,
                Some(&app.other),
                &[("Identity", "mallory")],
                &[],
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {v}");
    }
    let (s, _) = app
        .get(&format!("/v2/Services/{service}/Users/alice"))
        .await;
    assert_eq!(s, StatusCode::OK, "still there for its owner");
}

async fn webhook_enabled_header_must_be_a_boolean(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let path = format!("/v2/Services/{service}/Users");
    let (s, _, v) = app
        .call(
            axum::http::Method::POST,
            &path,
            Some(&app.account),
            &[("Identity", "w")],
            &[("X-Twilio-Webhook-Enabled", "maybe")],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["details"]["param"], "X-Twilio-Webhook-Enabled");
    let (s, _, _) = app
        .call(
            axum::http::Method::POST,
            &path,
            Some(&app.account),
            &[("Identity", "w")],
            &[("X-Twilio-Webhook-Enabled", "false")],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
}

both_backends!(
    webhook_enabled_header_must_be_a_boolean,
    create_user_has_defaults_links_and_default_role,
    duplicate_identity_is_409_50201_and_missing_identity_is_400,
    users_are_reachable_by_sid_and_by_url_encoded_identity,
    update_user_changes_only_sent_fields_and_validates_attributes,
    delete_user_removes_it_and_its_bindings,
    is_notifiable_reflects_bindings_when_reachability_is_on,
    users_of_another_accounts_service_are_404,
);
