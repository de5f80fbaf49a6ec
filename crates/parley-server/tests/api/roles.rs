use axum::http::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_twilio_error, Backend, TestApp};

async fn role_crud_with_repeated_permissions(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let form = [
        ("FriendlyName", "moderator"),
        ("Type", "channel"),
        ("Permission", "sendMessage"),
        ("Permission", "leaveChannel"),
    ];
    let (s, v) = app
        .post(&format!("/v2/Services/{service}/Roles"), &form)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["type"], "channel");
    assert_eq!(v["permissions"], json!(["sendMessage", "leaveChannel"]));
    let sid = v["sid"].as_str().unwrap();
    assert_eq!(
        v["url"],
        format!("{}/v2/Services/{service}/Roles/{sid}", app.base)
    );
    let path = format!("/v2/Services/{service}/Roles/{sid}");
    let (s, v) = app.post(&path, &[("Permission", "deleteOwnMessage")]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["permissions"],
        json!(["deleteOwnMessage"]),
        "update replaces the set"
    );
    let (_, f) = app.get(&path).await;
    assert_eq!(f["permissions"], json!(["deleteOwnMessage"]));
    let (s, _) = app.delete(&path).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get(&path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn role_validation_uses_chat_codes(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let path = format!("/v2/Services/{service}/Roles");
    let (s, v) = app
        .post(
            &path,
            &[
                ("FriendlyName", "r"),
                ("Type", "galaxy"),
                ("Permission", "sendMessage"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_twilio_error(&v, 400, 50105);
    let (s, v) = app
        .post(
            &path,
            &[
                ("FriendlyName", "r"),
                ("Type", "deployment"),
                ("Permission", "sendMessage"),
            ],
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "sendMessage is a channel permission"
    );
    assert_twilio_error(&v, 400, 50104);
    let (s, v) = app
        .post(&path, &[("FriendlyName", "r"), ("Type", "channel")])
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["details"]["param"], "Permission");
    let (_, list) = app.get(&path).await;
    assert_eq!(
        list["roles"].as_array().unwrap().len(),
        4,
        "nothing was created"
    );
}

async fn default_roles_cannot_be_deleted_and_users_lose_deleted_roles(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let (_, svc) = app.get(&format!("/v2/Services/{service}")).await;
    let default = svc["default_service_role_sid"].as_str().unwrap();
    let (s, v) = app
        .delete(&format!("/v2/Services/{service}/Roles/{default}"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let form = [
        ("FriendlyName", "vip"),
        ("Type", "deployment"),
        ("Permission", "createChannel"),
    ];
    let (_, role) = app
        .post(&format!("/v2/Services/{service}/Roles"), &form)
        .await;
    let role_sid = role["sid"].as_str().unwrap();
    let (s, u) = app
        .post(
            &format!("/v2/Services/{service}/Users"),
            &[("Identity", "v"), ("RoleSid", role_sid)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert_eq!(u["role_sid"], role_sid);
    app.delete(&format!("/v2/Services/{service}/Roles/{role_sid}"))
        .await;
    let (_, u) = app.get(&format!("/v2/Services/{service}/Users/v")).await;
    assert_eq!(u["role_sid"], serde_json::Value::Null);
}

both_backends!(
    role_crud_with_repeated_permissions,
    role_validation_uses_chat_codes,
    default_roles_cannot_be_deleted_and_users_lose_deleted_roles,
);
