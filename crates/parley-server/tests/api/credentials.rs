use axum::http::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{
    assert_twilio_error, service_account_json, sorted_keys, Backend, TestApp, APNS_CERT as CERT,
    APNS_CERT_KEY as KEY, CREDENTIAL_FIELDS, SA_KEY,
};

const P8: &str = include_str!("../../../parley-push/tests/fixtures/TEST-ONLY-apns-authkey.p8");
const EC_CERT: &str =
    include_str!("../../../parley-push/tests/fixtures/TEST-ONLY-apns-ec-cert.pem");
const EXPIRED: &str =
    include_str!("../../../parley-push/tests/fixtures/TEST-ONLY-apns-cert-expired.pem");

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
    assert_eq!(sorted_keys(&v), CREDENTIAL_FIELDS);
    assert_eq!(v["sandbox"], "true", "sandbox is a string on the wire");
    assert_eq!(v["type"], "apn");
    let sid = v["sid"].as_str().unwrap();
    assert_eq!(v["url"], format!("{}/v2/Credentials/{sid}", app.base));
    let text = v.to_string();
    assert!(!text.contains("BEGIN") && !text.contains("PRIVATE"));
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
    assert!(!list.to_string().contains("BEGIN"));
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
    assert_eq!(
        secrets["secret"],
        service_account_json("https://oauth2.googleapis.com/token")
    );
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

/// The stored secrets of a credential, opened.
async fn stored_secrets(app: &TestApp, sid: &str) -> (Value, String) {
    let cred = app
        .store
        .fetch_credential(&app.account.sid.parse().unwrap(), &sid.parse().unwrap())
        .await
        .unwrap();
    let opened = app.secrets.open_str(&cred.secrets_sealed).unwrap();
    (
        serde_json::from_str(&opened).unwrap(),
        cred.date_updated.to_rfc3339_seconds(),
    )
}

fn apns_token_secret() -> String {
    serde_json::json!({"key_id": "KEY1234567", "team_id": "TEAM123456", "topic": "com.example.chat"})
        .to_string()
}

/// Credentials that can never work are refused when stored, naming the parameter.
async fn garbage_credentials_are_400_naming_the_parameter(b: Backend) {
    let app = TestApp::spawn(b).await;
    let google = service_account_json("https://oauth2.googleapis.com/token");
    let token_secret = apns_token_secret();
    let sa_without = |field: &str| {
        let mut v: Value = serde_json::from_str(&google).unwrap();
        v.as_object_mut().unwrap().remove(field);
        v.to_string()
    };
    let no_project = sa_without("project_id");
    let no_email = sa_without("client_email");
    let bad_key = {
        let mut v: Value = serde_json::from_str(&google).unwrap();
        v["private_key"] =
            "-----BEGIN PRIVATE KEY-----\nMIIEgarbage\n-----END PRIVATE KEY-----".into();
        v.to_string()
    };
    let foreign_uri = service_account_json("http://169.254.169.254/latest/meta-data");
    let garbage_pem = "-----BEGIN CERTIFICATE-----\nMIIBgarbage\n-----END CERTIFICATE-----";
    let garbage_key = "-----BEGIN PRIVATE KEY-----\nMIIEgarbage\n-----END PRIVATE KEY-----";
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("Type", "apn")], "Certificate"),
        (
            vec![("Type", "apn"), ("Certificate", "C"), ("PrivateKey", KEY)],
            "Certificate",
        ),
        (
            vec![
                ("Type", "apn"),
                ("Certificate", garbage_pem),
                ("PrivateKey", KEY),
            ],
            "Certificate",
        ),
        (vec![("Type", "apn"), ("Certificate", CERT)], "PrivateKey"),
        (
            vec![("Type", "apn"), ("Certificate", CERT), ("PrivateKey", "K")],
            "PrivateKey",
        ),
        (
            vec![
                ("Type", "apn"),
                ("Certificate", CERT),
                ("PrivateKey", garbage_key),
            ],
            "PrivateKey",
        ),
        (
            vec![
                ("Type", "apn"),
                ("Certificate", EC_CERT),
                ("PrivateKey", KEY),
            ],
            "PrivateKey",
        ),
        (
            vec![
                ("Type", "apn"),
                ("Certificate", EXPIRED),
                ("PrivateKey", KEY),
            ],
            "Certificate",
        ),
        (
            vec![
                ("Type", "apn"),
                ("PrivateKey", KEY),
                ("Secret", &token_secret),
            ],
            "PrivateKey",
        ),
        (vec![("Type", "apn"), ("PrivateKey", P8)], "Secret"),
        (
            vec![("Type", "apn"), ("PrivateKey", P8), ("Secret", "{}")],
            "Secret",
        ),
        (vec![("Type", "fcm")], "Secret"),
        (
            vec![
                ("Type", "fcm"),
                ("Secret", "{\"type\":\"service_account\"}"),
            ],
            "Secret",
        ),
        (vec![("Type", "fcm"), ("Secret", "{garbage")], "Secret"),
        (vec![("Type", "fcm"), ("Secret", &no_project)], "Secret"),
        (vec![("Type", "fcm"), ("Secret", &no_email)], "Secret"),
        (vec![("Type", "fcm"), ("Secret", &bad_key)], "Secret"),
        (vec![("Type", "fcm"), ("Secret", &foreign_uri)], "Secret"),
        (vec![("Type", "gcm")], "ApiKey"),
    ];
    for (form, param) in &cases {
        let (s, v) = app.post("/v2/Credentials", form).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{form:?}: {v}");
        assert_twilio_error(&v, 400, 20001);
        assert_eq!(v["details"]["param"], *param, "{form:?}: {v}");
        assert!(!v.to_string().contains("MIIE"), "no secret echoed: {v}");
    }
    let (_, list) = app.get("/v2/Credentials").await;
    assert_eq!(list["credentials"], serde_json::json!([]), "nothing stored");
    // Valid ones of every kind are accepted; a legacy key is accepted (and flagged in the log).
    let good: Vec<Vec<(&str, &str)>> = vec![
        vec![("Type", "apn"), ("Certificate", CERT), ("PrivateKey", KEY)],
        vec![
            ("Type", "apn"),
            ("PrivateKey", P8),
            ("Secret", &token_secret),
        ],
        vec![("Type", "fcm"), ("Secret", &google)],
        vec![("Type", "fcm"), ("Secret", "AAAAlegacy-server-key")],
        vec![("Type", "gcm"), ("ApiKey", "AIzalegacy")],
    ];
    for form in &good {
        let (s, v) = app.post("/v2/Credentials", form).await;
        assert_eq!(s, StatusCode::CREATED, "{form:?}: {v}");
    }
}

/// An update with garbage (or with a key of another certificate) is a 400 and the stored
/// credential stays as it was; a valid update of one secret field keeps the others.
async fn a_failed_credential_update_leaves_it_as_it_was(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (s, v) = app
        .post(
            "/v2/Credentials",
            &[
                ("Type", "apn"),
                ("FriendlyName", "ios"),
                ("Certificate", CERT),
                ("PrivateKey", KEY),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let sid = v["sid"].as_str().unwrap().to_owned();
    let before = stored_secrets(&app, &sid).await;
    let path = format!("/v2/Credentials/{sid}");
    for form in [
        vec![("Certificate", "garbage"), ("FriendlyName", "renamed")],
        vec![("Certificate", EC_CERT)],
        vec![("PrivateKey", P8)],
    ] {
        let (s, v) = app.post(&path, &form).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{form:?}: {v}");
        assert_twilio_error(&v, 400, 20001);
    }
    assert_eq!(
        stored_secrets(&app, &sid).await,
        before,
        "secrets unchanged"
    );
    let (_, v) = app.get(&path).await;
    assert_eq!(
        v["friendly_name"], "ios",
        "nothing of a refused update is stored"
    );
    // FCM: a token_uri that is not allowed is refused at update too.
    let fcm = app.create_credential("fcm").await;
    let foreign = service_account_json("https://evil.example/token");
    let (s, v) = app
        .post(&format!("/v2/Credentials/{fcm}"), &[("Secret", &foreign)])
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["details"]["param"], "Secret");
    let (secrets, _) = stored_secrets(&app, &fcm).await;
    assert!(secrets["secret"]
        .as_str()
        .unwrap()
        .contains("oauth2.googleapis.com"));
    // A valid update replaces only what it sends.
    let (s, v) = app
        .post(&path, &[("PrivateKey", KEY), ("Sandbox", "true")])
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (after, _) = stored_secrets(&app, &sid).await;
    assert_eq!(after["certificate"], CERT);
}

/// FriendlyName is at most 256 characters and each secret field at most 16 KiB.
async fn credential_text_fields_have_limits(b: Backend) {
    let app = TestApp::spawn(b).await;
    let google = service_account_json("https://oauth2.googleapis.com/token");
    let name_ok = "é".repeat(256);
    let name_long = "n".repeat(257);
    let (s, v) = app
        .post(
            "/v2/Credentials",
            &[
                ("Type", "fcm"),
                ("Secret", &google),
                ("FriendlyName", &name_long),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["details"]["param"], "FriendlyName");
    let (s, v) = app
        .post(
            "/v2/Credentials",
            &[
                ("Type", "fcm"),
                ("Secret", &google),
                ("FriendlyName", &name_ok),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let sid = v["sid"].as_str().unwrap().to_owned();
    let (s, v) = app
        .post(
            &format!("/v2/Credentials/{sid}"),
            &[("FriendlyName", &name_long)],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["details"]["param"], "FriendlyName");
    let huge = format!("{CERT}{}", " ".repeat(16 * 1024));
    let (s, v) = app
        .post(
            "/v2/Credentials",
            &[("Type", "apn"), ("Certificate", &huge), ("PrivateKey", KEY)],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["details"]["param"], "Certificate");
    let (s, v) = app
        .post(
            &format!("/v2/Credentials/{sid}"),
            &[("Secret", &format!("{google}{}", " ".repeat(16 * 1024)))],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["details"]["param"], "Secret");
    let _ = SA_KEY;
}

/// Concurrent updates of different fields all survive (no read-modify-write race).
async fn concurrent_credential_updates_of_different_fields_all_survive(b: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(b).await);
    let sid = app.create_credential("apn").await;
    let path = format!("/v2/Credentials/{sid}");
    for round in 0..15 {
        let name = format!("name-{round}");
        let sandbox = if round % 2 == 0 { "false" } else { "true" };
        let key = if round % 2 == 0 {
            KEY.to_owned()
        } else {
            format!("{KEY}\n")
        };
        let forms = [
            ("FriendlyName", name.clone()),
            ("Sandbox", sandbox.to_owned()),
            ("PrivateKey", key.clone()),
        ];
        let tasks: Vec<_> = forms
            .into_iter()
            .map(|(field, value)| {
                let app = app.clone();
                let path = path.clone();
                tokio::spawn(async move { app.post(&path, &[(field, value.as_str())]).await })
            })
            .collect();
        for t in tasks {
            let (s, v) = t.await.unwrap();
            assert_eq!(s, StatusCode::OK, "{v}");
        }
        let (_, v) = app.get(&path).await;
        assert_eq!(v["friendly_name"], name.as_str(), "round {round}");
        assert_eq!(v["sandbox"], sandbox, "round {round}");
        let (secrets, _) = stored_secrets(&app, &sid).await;
        assert_eq!(secrets["private_key"], key.as_str(), "round {round}");
        assert_eq!(secrets["certificate"], CERT, "round {round}");
    }
}

both_backends!(
    garbage_credentials_are_400_naming_the_parameter,
    a_failed_credential_update_leaves_it_as_it_was,
    credential_text_fields_have_limits,
    concurrent_credential_updates_of_different_fields_all_survive,
    credential_crud_never_returns_secrets,
    credential_secrets_are_sealed_at_rest,
    credential_type_is_required_and_validated,
    credentials_of_another_account_are_404,
    deleting_a_credential_deletes_the_bindings_that_use_it,
);
