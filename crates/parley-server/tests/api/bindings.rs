use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_twilio_error, Backend, TestApp};

fn sid(v: &Value) -> String {
    v["sid"].as_str().unwrap().to_owned()
}

async fn registration_creates_then_updates_the_same_binding(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let cred = app.create_credential("fcm").await;
    let (s, first) = app
        .register(
            &service,
            "alice",
            &[
                ("BindingType", "fcm"),
                ("Address", "tok-1"),
                ("Endpoint", "install-1"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["identity"], "alice");
    assert_eq!(first["endpoint"], "install-1");
    assert_eq!(first["binding_type"], "fcm");
    assert_eq!(first["credential_sid"], cred.as_str());
    assert_eq!(
        first["message_types"],
        json!([
            "removed_from_channel",
            "new_message",
            "added_to_channel",
            "invited_to_channel"
        ])
    );
    assert!(first.get("links").is_none(), "user bindings have no links");
    let user_sid = first["user_sid"].as_str().unwrap();
    assert_eq!(
        first["url"],
        format!(
            "{}/v2/Services/{service}/Users/{user_sid}/Bindings/{}",
            app.base,
            sid(&first)
        )
    );
    // The user was created by the registration.
    let (s, user) = app
        .get(&format!("/v2/Services/{service}/Users/alice"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(user["sid"], user_sid);
    // Same (identity, endpoint, type): refreshed in place.
    let (s, second) = app
        .register(
            &service,
            "alice",
            &[
                ("BindingType", "fcm"),
                ("Address", "tok-2"),
                ("Endpoint", "install-1"),
                ("MessageTypes", "new_message"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{second}");
    assert_eq!(sid(&second), sid(&first));
    assert_eq!(second["message_types"], json!(["new_message"]));
    let (_, list) = app
        .get(&format!("/v2/Services/{service}/Users/alice/Bindings"))
        .await;
    assert_eq!(list["bindings"].as_array().unwrap().len(), 1);
}

async fn registration_validates_its_parameters(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let (s, v) = app
        .register(
            &service,
            "alice",
            &[("BindingType", "fcm"), ("Address", "t")],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "no credential yet: {v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("No push credential"),
        "{v}"
    );
    let apn = app.create_credential("apn").await;
    let (s, v) = app
        .register(
            &service,
            "alice",
            &[
                ("BindingType", "fcm"),
                ("Address", "t"),
                ("CredentialSid", &apn),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "wrong kind: {v}");
    assert_eq!(v["details"]["param"], "CredentialSid");
    let (s, v) = app
        .register(&service, "alice", &[("BindingType", "apn")])
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["details"]["param"], "Address");
    let (s, v) = app
        .register(
            &service,
            "alice",
            &[("BindingType", "sms"), ("Address", "t")],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_twilio_error(&v, 400, 50209);
    let (s, v) = app
        .register(
            &service,
            "alice",
            &[
                ("BindingType", "apn"),
                ("Address", "t"),
                ("MessageTypes", "everything"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["details"]["param"], "MessageTypes");
    // Another account's credential is not usable.
    let (_, _, other_cred) = app
        .call(
            axum::http::Method::POST,
            "/v2/Credentials",
            Some(&app.other),
            &[
                ("Type", "apn"),
                ("Certificate", crate::helpers::APNS_CERT),
                ("PrivateKey", crate::helpers::APNS_CERT_KEY),
            ],
            &[],
        )
        .await;
    let other_sid = other_cred["sid"].as_str().unwrap();
    let (s, _) = app
        .register(
            &service,
            "alice",
            &[
                ("BindingType", "apn"),
                ("Address", "t"),
                ("CredentialSid", other_sid),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, list) = app.get(&format!("/v2/Services/{service}/Bindings")).await;
    assert_eq!(
        list["bindings"],
        json!([]),
        "nothing stored by rejected registrations"
    );
}

async fn a_device_token_moves_to_the_identity_that_registers_it_last(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    app.create_credential("apn").await;
    let (_, old) = app
        .register(
            &service,
            "alice",
            &[("BindingType", "apn"), ("Address", "shared-device")],
        )
        .await;
    let (s, new) = app
        .register(
            &service,
            "bob",
            &[("BindingType", "apn"), ("Address", "shared-device")],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(new["identity"], "bob");
    let (s, _) = app
        .get(&format!("/v2/Services/{service}/Bindings/{}", sid(&old)))
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "alice no longer gets this device's pushes"
    );
    let (_, list) = app.get(&format!("/v2/Services/{service}/Bindings")).await;
    let all = list["bindings"].as_array().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["identity"], "bob");
}

async fn the_per_user_cap_evicts_the_least_recently_updated(b: Backend) {
    let config = parley_http::HttpConfig {
        max_bindings_per_user: 3,
        ..Default::default()
    };
    let app = TestApp::spawn_with(b, config).await;
    let service = app.create_service("s").await;
    app.create_credential("fcm").await;
    let mut sids = Vec::new();
    for i in 0..3 {
        let (_, v) = app
            .register(
                &service,
                "alice",
                &[("BindingType", "fcm"), ("Address", &format!("t{i}"))],
            )
            .await;
        sids.push(sid(&v));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Refresh the oldest, so the second becomes the least recently updated.
    app.register(
        &service,
        "alice",
        &[("BindingType", "fcm"), ("Address", "t0")],
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    app.register(
        &service,
        "alice",
        &[("BindingType", "fcm"), ("Address", "t3")],
    )
    .await;
    let (_, list) = app
        .get(&format!("/v2/Services/{service}/Users/alice/Bindings"))
        .await;
    let left: Vec<String> = list["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(sid)
        .collect();
    assert_eq!(left.len(), 3);
    assert!(!left.contains(&sids[1]), "t1 was evicted: {left:?}");
    assert!(left.contains(&sids[0]) && left.contains(&sids[2]));
}

async fn concurrent_identical_registrations_leave_one_binding(b: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(b).await);
    let service = app.create_service("s").await;
    app.create_credential("apn").await;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let app = app.clone();
        let service = service.clone();
        tasks.push(tokio::spawn(async move {
            app.register(
                &service,
                "racer",
                &[("BindingType", "apn"), ("Address", "same-token")],
            )
            .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert!(s == StatusCode::CREATED || s == StatusCode::OK, "{s}: {v}");
        created += usize::from(s == StatusCode::CREATED);
    }
    assert_eq!(created, 1, "exactly one registration created the binding");
    let (_, list) = app.get(&format!("/v2/Services/{service}/Bindings")).await;
    assert_eq!(list["bindings"].as_array().unwrap().len(), 1);
    let (_, users) = app.get(&format!("/v2/Services/{service}/Users")).await;
    assert_eq!(
        users["users"].as_array().unwrap().len(),
        1,
        "one user created"
    );
}

async fn user_bindings_filter_by_type_and_are_scoped_to_their_user(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    app.create_credential("apn").await;
    app.create_credential("fcm").await;
    let (_, a_apn) = app
        .register(
            &service,
            "alice",
            &[("BindingType", "apn"), ("Address", "a1")],
        )
        .await;
    let (_, a_fcm) = app
        .register(
            &service,
            "alice",
            &[("BindingType", "fcm"), ("Address", "f1")],
        )
        .await;
    let (_, b_apn) = app
        .register(
            &service,
            "bob",
            &[("BindingType", "apn"), ("Address", "a2")],
        )
        .await;
    let base = format!("/v2/Services/{service}/Users/alice/Bindings");
    let (_, only_apn) = app.get(&format!("{base}?BindingType=apn")).await;
    let sids: Vec<String> = only_apn["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(sid)
        .collect();
    assert_eq!(sids, vec![sid(&a_apn)]);
    assert_eq!(only_apn["meta"]["key"], "bindings");
    assert_eq!(
        only_apn["meta"]["url"],
        format!("{}{base}?BindingType=apn&PageSize=50&Page=0", app.base)
    );
    let (_, both) = app
        .get(&format!("{base}?BindingType=apn&BindingType=fcm"))
        .await;
    assert_eq!(both["bindings"].as_array().unwrap().len(), 2);
    let (s, v) = app.get(&format!("{base}?BindingType=sms")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["details"]["param"], "BindingType");
    // Fetch through the identity path and the SID path; another user's binding is 404 here.
    let user_sid = a_fcm["user_sid"].as_str().unwrap();
    let (s, f1) = app.get(&format!("{base}/{}", sid(&a_fcm))).await;
    assert_eq!(s, StatusCode::OK);
    let (_, f2) = app
        .get(&format!(
            "/v2/Services/{service}/Users/{user_sid}/Bindings/{}",
            sid(&a_fcm)
        ))
        .await;
    assert_eq!(f1, f2);
    let (s, v) = app.get(&format!("{base}/{}", sid(&b_apn))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_twilio_error(&v, 404, 20404);
    let (s, _) = app.delete(&format!("{base}/{}", sid(&b_apn))).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "cannot delete bob's binding through alice"
    );
    let (s, _) = app.delete(&format!("{base}/{}", sid(&a_fcm))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get(&format!("{base}/{}", sid(&a_fcm))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn service_bindings_filter_by_identity_and_link_users_by_identity(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    app.create_credential("apn").await;
    app.create_credential("fcm").await;
    app.register(
        &service,
        "alice@example.com",
        &[("BindingType", "apn"), ("Address", "a1")],
    )
    .await;
    app.register(
        &service,
        "bob smith",
        &[("BindingType", "fcm"), ("Address", "f1")],
    )
    .await;
    app.register(
        &service,
        "carol",
        &[("BindingType", "apn"), ("Address", "a3")],
    )
    .await;
    let path = format!("/v2/Services/{service}/Bindings");
    let (_, v) = app
        .get(&format!(
            "{path}?Identity=alice%40example.com&Identity=bob+smith"
        ))
        .await;
    let items = v["bindings"].as_array().unwrap();
    let mut ids: Vec<&str> = items
        .iter()
        .map(|b| b["identity"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["alice@example.com", "bob smith"]);
    let bob = items.iter().find(|b| b["identity"] == "bob smith").unwrap();
    assert_eq!(
        bob["links"],
        json!({"user": format!("{}/v2/Services/{service}/Users/bob%20smith", app.base)})
    );
    assert!(
        bob.get("user_sid").is_none(),
        "service bindings have no user_sid"
    );
    assert_eq!(bob["url"], format!("{}{path}/{}", app.base, sid(bob)));
    let (_, v) = app
        .get(&format!("{path}?Identity=carol&BindingType=fcm"))
        .await;
    assert_eq!(v["bindings"], json!([]));
    assert_eq!(
        v["meta"]["first_page_url"],
        format!(
            "{}{path}?Identity=carol&BindingType=fcm&PageSize=50&Page=0",
            app.base
        )
    );
    // Fetch and delete through the service path.
    let (s, f) = app.get(&format!("{path}/{}", sid(bob))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(&f, bob);
    let (s, _) = app.delete(&format!("{path}/{}", sid(bob))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get(&format!("{path}/{}", sid(bob))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn bindings_of_another_service_or_account_are_404(b: Backend) {
    let app = TestApp::spawn(b).await;
    let s1 = app.create_service("one").await;
    let s2 = app.create_service("two").await;
    app.create_credential("apn").await;
    let (_, binding) = app
        .register(&s1, "alice", &[("BindingType", "apn"), ("Address", "a1")])
        .await;
    let bsid = sid(&binding);
    let (s, _) = app.get(&format!("/v2/Services/{s2}/Bindings/{bsid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .delete(&format!("/v2/Services/{s2}/Bindings/{bsid}"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = app
        .call(
            axum::http::Method::GET,
            &format!("/v2/Services/{s1}/Bindings/{bsid}"),
            Some(&app.other),
            &[],
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = app
        .call(
            axum::http::Method::GET,
            &format!("/v2/Services/{s1}/Bindings"),
            Some(&app.other),
            &[],
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .get(&format!("/v2/Services/{s1}/Bindings/BSnot-a-sid"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.get(&format!("/v2/Services/{s1}/Bindings/{bsid}")).await;
    assert_eq!(s, StatusCode::OK);
}

both_backends!(
    registration_creates_then_updates_the_same_binding,
    registration_validates_its_parameters,
    a_device_token_moves_to_the_identity_that_registers_it_last,
    the_per_user_cap_evicts_the_least_recently_updated,
    concurrent_identical_registrations_leave_one_binding,
    user_bindings_filter_by_type_and_are_scoped_to_their_user,
    service_bindings_filter_by_identity_and_link_users_by_identity,
    bindings_of_another_service_or_account_are_404,
);
