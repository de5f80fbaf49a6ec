use axum::http::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{assert_twilio_error, Backend, TestApp};

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBsecretcert\n-----END CERTIFICATE-----";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIEsecretkey\n-----END PRIVATE KEY-----";

async fn credential_crud_never_returns_secrets(b: Backend) {
    let app = TestApp::spawn(b).await;
    let form = [
        ("Type", "apn"),
        ("FriendlyName", "ios"),
        ("Certificate", CERT),
        ("PrivateKey", KEY),
        ("Sandbox", "true"),
    ];
    let (s, v) = app.post("/v2/Credentials", &form).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            "account_sid",
            "date_created",
            "date_updated",
            "friendly_name",
            "sandbox",
            "sid",
            "type",
            "url"
        ]
    );
    assert_eq!(v["sandbox"], "true", "sandbox is a string on the wire");
    assert_eq!(v["type"], "apn");
    let sid = v["sid"].as_str().unwrap();
    assert_eq!(v["url"], format!("{}/v2/Credentials/{sid}", app.base));
    let text = v.to_string();
    assert!(!text.contains("secretcert") && !text.contains("secretkey"));
    let (s, v) = app
        .post(
            &format!("/v2/Credentials/{sid}"),
            &[("Sandbox", "false"), ("FriendlyName", "prod")],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["sandbox"], "false");
    assert_eq!(v["friendly_name"], "prod");
    let (_, list) = app.get("/v2/Credentials").await;
    assert_eq!(list["credentials"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("secret"));
    let (s, _) = app.delete(&format!("/v2/Credentials/{sid}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = app.get(&format!("/v2/Credentials/{sid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_twilio_error(&v, 404, 20404);
}

async fn credential_secrets_are_sealed_at_rest(b: Backend) {
    let app = TestApp::spawn(b).await;
    let sid = app.create_credential("fcm").await;
    let cred = app
        .store
        .fetch_credential(&app.account.sid.parse().unwrap(), &sid.parse().unwrap())
        .await
        .unwrap();
    let raw = String::from_utf8_lossy(&cred.secrets_sealed);
    assert!(
        !raw.contains("service_account"),
        "stored bytes are not the plain secret"
    );
    let opened = app.secrets.open_str(&cred.secrets_sealed).unwrap();
    let secrets: Value = serde_json::from_str(&opened).unwrap();
    assert_eq!(secrets["secret"], "{\"type\":\"service_account\"}");
}

async fn credential_type_is_required_and_validated(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (s, v) = app.post("/v2/Credentials", &[("FriendlyName", "x")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["details"]["param"], "Type");
    let (s, v) = app.post("/v2/Credentials", &[("Type", "sms")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_twilio_error(&v, 400, 20001);
}

async fn credentials_of_another_account_are_404(b: Backend) {
    let app = TestApp::spawn(b).await;
    let sid = app.create_credential("apn").await;
    let (s, _, _) = app
        .call(
            axum::http::Method::GET,
            &format!("/v2/Credentials/{sid}"),
            Some(&app.other),
            &[],
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, v) = app
        .call(
            axum::http::Method::GET,
            "/v2/Credentials",
            Some(&app.other),
            &[],
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["credentials"], serde_json::json!([]));
}

async fn deleting_a_credential_deletes_the_bindings_that_use_it(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let apn = app.create_credential("apn").await;
    app.create_credential("fcm").await;
    let (_, b1) = app
        .register(
            &service,
            "alice",
            &[("BindingType", "apn"), ("Address", "a1")],
        )
        .await;
    let (_, b2) = app
        .register(
            &service,
            "alice",
            &[("BindingType", "fcm"), ("Address", "f1")],
        )
        .await;
    app.delete(&format!("/v2/Credentials/{apn}")).await;
    let (s, _) = app
        .get(&format!(
            "/v2/Services/{service}/Bindings/{}",
            b1["sid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .get(&format!(
            "/v2/Services/{service}/Bindings/{}",
            b2["sid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
}

both_backends!(
    credential_crud_never_returns_secrets,
    credential_secrets_are_sealed_at_rest,
    credential_type_is_required_and_validated,
    credentials_of_another_account_are_404,
    deleting_a_credential_deletes_the_bindings_that_use_it,
);
