//! Length and count limits of text parameters (docs/API-CONVENTIONS.md, "Limits"): a value at
//! the limit is accepted and stored as sent; one character more is a 400 with the Twilio code
//! and `details.param` naming the parameter, and changes nothing.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_twilio_error, encode, Backend, TestApp};

/// `n` characters of two bytes each (limits count characters, not bytes).
fn chars(n: usize) -> String {
    "é".repeat(n)
}

fn assert_rejected(s: StatusCode, v: &Value, param: &str, code: u64) {
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "{param}: code {} {}",
        v["code"],
        v["message"]
    );
    assert_twilio_error(v, 400, code);
    assert_eq!(v["details"]["param"], param, "{v}");
}

/// POST `form + (param, at)` answers `ok` showing the value at `pointer`; POST
/// `form + (param, over)` is 400/`code` naming `param`.
#[allow(clippy::too_many_arguments)]
async fn at_and_over(
    app: &TestApp,
    uri: &str,
    form: &[(&str, &str)],
    param: &str,
    at: &str,
    over: &str,
    ok: StatusCode,
    pointer: &str,
    code: u64,
) -> Value {
    let mut with = form.to_vec();
    with.push((param, over));
    let (s, v) = app.post(uri, &with).await;
    assert_rejected(s, &v, param, code);
    let mut with = form.to_vec();
    with.push((param, at));
    let (s, v) = app.post(uri, &with).await;
    assert_eq!(s, ok, "{param} at the limit: {v}");
    assert_eq!(
        v.pointer(pointer),
        Some(&json!(at)),
        "{param} stored as sent"
    );
    v
}

async fn user_friendly_name_is_limited_to_256_characters(b: Backend) {
    let app = TestApp::spawn(b).await;
    let sid = app.create_service("s").await;
    let users = format!("/v2/Services/{sid}/Users");
    let (at, over) = (chars(256), chars(257));
    at_and_over(
        &app,
        &users,
        &[("Identity", "alice")],
        "FriendlyName",
        &at,
        &over,
        StatusCode::CREATED,
        "/friendly_name",
        50003,
    )
    .await;
    app.create_user(&sid, "bob").await;
    at_and_over(
        &app,
        &format!("{users}/bob"),
        &[],
        "FriendlyName",
        &at,
        &over,
        StatusCode::OK,
        "/friendly_name",
        50003,
    )
    .await;
    let (_, list) = app.get(&users).await;
    assert_eq!(list["users"].as_array().map(Vec::len), Some(2));
}

async fn channel_created_by_is_limited_to_256_characters(b: Backend) {
    let app = TestApp::spawn(b).await;
    let sid = app.create_service("s").await;
    let channels = format!("/v2/Services/{sid}/Channels");
    let (at, over) = (chars(256), chars(257));
    let created = at_and_over(
        &app,
        &channels,
        &[("FriendlyName", "general")],
        "CreatedBy",
        &at,
        &over,
        StatusCode::CREATED,
        "/created_by",
        50310,
    )
    .await;
    let ch = created["sid"].as_str().unwrap();
    at_and_over(
        &app,
        &format!("{channels}/{ch}"),
        &[],
        "CreatedBy",
        &chars(255),
        &over,
        StatusCode::OK,
        "/created_by",
        50310,
    )
    .await;
    let (_, list) = app.get(&channels).await;
    assert_eq!(list["channels"].as_array().map(Vec::len), Some(1));
}

async fn media_compatibility_message_is_limited_to_1024_characters(b: Backend) {
    let app = TestApp::spawn(b).await;
    let sid = app.create_service("s").await;
    at_and_over(
        &app,
        &format!("/v2/Services/{sid}"),
        &[],
        "Media.CompatibilityMessage",
        &chars(1024),
        &chars(1025),
        StatusCode::OK,
        "/media/compatibility_message",
        20001,
    )
    .await;
}

async fn webhook_urls_are_absolute_http_urls_of_at_most_2048_characters(b: Backend) {
    let app = TestApp::spawn(b).await;
    let sid = app.create_service("s").await;
    let uri = format!("/v2/Services/{sid}");
    let base = "https://hooks.example.com/";
    let at = format!("{base}{}", "a".repeat(2048 - base.len()));
    let over = format!("{at}a");
    for (param, code, pointer) in [
        ("PreWebhookUrl", 50077, "/pre_webhook_url"),
        ("PostWebhookUrl", 50078, "/post_webhook_url"),
    ] {
        at_and_over(
            &app,
            &uri,
            &[],
            param,
            &at,
            &over,
            StatusCode::OK,
            pointer,
            code,
        )
        .await;
        for bad in [
            "/relative/path",
            "ftp://hooks.example.com/x",
            "https://",
            "hooks.example.com",
        ] {
            let (s, v) = app.post(&uri, &[(param, bad)]).await;
            assert_rejected(s, &v, param, code);
        }
    }
    let (_, f) = app.get(&uri).await;
    assert_eq!(
        f["pre_webhook_url"],
        at.as_str(),
        "rejections changed nothing"
    );
}

async fn webhook_filters_are_limited_in_count_and_length(b: Backend) {
    let app = TestApp::spawn(b).await;
    let sid = app.create_service("s").await;
    let uri = format!("/v2/Services/{sid}");
    let long = "f".repeat(64);
    let mut values: Vec<String> = (0..63).map(|i| format!("onFilter{i}")).collect();
    values.push(long.clone());
    let form: Vec<(&str, &str)> = values
        .iter()
        .map(|v| ("WebhookFilters", v.as_str()))
        .collect();
    let (s, v) = app.post(&uri, &form).await;
    assert_eq!(s, StatusCode::OK, "64 values, one of 64 characters: {v}");
    assert_eq!(
        v["webhook_filters"],
        json!(values),
        "kept as sent, unknown names too"
    );

    let mut too_many = form.clone();
    too_many.push(("WebhookFilters", "onMessageSent"));
    let (s, v) = app.post(&uri, &too_many).await;
    assert_rejected(s, &v, "WebhookFilters", 20001);
    let repeats = vec![("WebhookFilters", "onMessageSent"); 20_000];
    let (s, v) = app.post(&uri, &repeats).await;
    assert_rejected(s, &v, "WebhookFilters", 20001);
    let too_long = format!("{long}f");
    let (s, v) = app
        .post(
            &uri,
            &[
                ("WebhookFilters", "onMessageSent"),
                ("WebhookFilters", &too_long),
            ],
        )
        .await;
    assert_rejected(s, &v, "WebhookFilters", 20001);
    let (_, f) = app.get(&uri).await;
    assert_eq!(
        f["webhook_filters"],
        json!(values),
        "rejections changed nothing"
    );

    let (s, v) = app
        .post(
            &uri,
            &[
                ("WebhookFilters", "onMessageSent"),
                ("WebhookFilters", "onChannelAdded"),
                ("WebhookFilters", "onMessageSent"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["webhook_filters"],
        json!(["onMessageSent", "onChannelAdded"]),
        "a repeat is kept once"
    );
}

async fn identities_in_invites_and_list_filters_are_limited_to_256_characters(b: Backend) {
    let app = TestApp::spawn(b).await;
    let sid = app.create_service("s").await;
    let (at, over) = (chars(256), chars(257));
    app.create_user(&sid, &at).await;
    let (s, ch) = app
        .post(
            &format!("/v2/Services/{sid}/Channels"),
            &[("UniqueName", "general")],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    let invites = format!("/v2/Services/{sid}/Channels/general/Invites");
    at_and_over(
        &app,
        &invites,
        &[],
        "Identity",
        &at,
        &over,
        StatusCode::CREATED,
        "/identity",
        50207,
    )
    .await;
    for (list, key, n) in [
        (invites.clone(), "invites", 1),
        (
            format!("/v2/Services/{sid}/Channels/general/Members"),
            "members",
            0,
        ),
        (format!("/v2/Services/{sid}/Bindings"), "bindings", 0),
    ] {
        let (s, v) = app.get(&format!("{list}?Identity={}", encode(&over))).await;
        assert_rejected(s, &v, "Identity", 50207);
        let (s, v) = app.get(&format!("{list}?Identity={}", encode(&at))).await;
        assert_eq!(s, StatusCode::OK, "{list}: {v}");
        assert_eq!(v[key].as_array().map(Vec::len), Some(n), "{list}: {v}");
    }
}

/// The limits that were already enforced, kept: each at its limit is accepted, one more is
/// rejected with its code.
async fn existing_text_limits_hold(b: Backend) {
    let app = TestApp::spawn(b).await;
    let sid = app.create_service("s").await;
    let svc = format!("/v2/Services/{sid}");
    let template = "Notifications.NewMessage.Template";
    let sound = "Notifications.AddedToChannel.Sound";
    at_and_over(
        &app,
        &svc,
        &[],
        "FriendlyName",
        &chars(256),
        &chars(257),
        StatusCode::OK,
        "/friendly_name",
        50003,
    )
    .await;
    at_and_over(
        &app,
        &svc,
        &[],
        template,
        &chars(1024),
        &chars(1025),
        StatusCode::OK,
        "/notifications/new_message/template",
        50058,
    )
    .await;
    at_and_over(
        &app,
        &svc,
        &[],
        sound,
        &chars(256),
        &chars(257),
        StatusCode::OK,
        "/notifications/added_to_channel/sound",
        50059,
    )
    .await;
    at_and_over(
        &app,
        &format!("{svc}/Roles"),
        &[("Type", "channel"), ("Permission", "sendMessage")],
        "FriendlyName",
        &chars(64),
        &chars(65),
        StatusCode::CREATED,
        "/friendly_name",
        50003,
    )
    .await;
    let (s, v) = app
        .post(
            &format!("{svc}/Roles"),
            &[
                ("FriendlyName", "r"),
                ("Type", "channel"),
                ("Permission", "flyToTheMoon"),
            ],
        )
        .await;
    assert_rejected(s, &v, "Permission", 50104);
    at_and_over(
        &app,
        &format!("{svc}/Users"),
        &[],
        "Identity",
        &chars(256),
        &chars(257),
        StatusCode::CREATED,
        "/identity",
        50207,
    )
    .await;
    let attrs = format!("\"{}\"", "a".repeat(16 * 1024 - 2));
    let attrs_over = format!("\"{}\"", "a".repeat(16 * 1024 - 1));
    at_and_over(
        &app,
        &format!("{svc}/Users"),
        &[("Identity", "attrs")],
        "Attributes",
        &attrs,
        &attrs_over,
        StatusCode::CREATED,
        "/attributes",
        50303,
    )
    .await;
    let channels = format!("{svc}/Channels");
    at_and_over(
        &app,
        &channels,
        &[],
        "FriendlyName",
        &chars(64),
        &chars(65),
        StatusCode::CREATED,
        "/friendly_name",
        50003,
    )
    .await;
    at_and_over(
        &app,
        &channels,
        &[],
        "UniqueName",
        &chars(64),
        &chars(65),
        StatusCode::CREATED,
        "/unique_name",
        50004,
    )
    .await;
    let (_, ch) = app.post(&channels, &[("UniqueName", "room")]).await;
    at_and_over(
        &app,
        &format!("{channels}/room"),
        &[],
        "FriendlyName",
        &chars(256),
        &chars(257),
        StatusCode::OK,
        "/friendly_name",
        50003,
    )
    .await;
    let messages = format!("{channels}/{}/Messages", ch["sid"].as_str().unwrap());
    at_and_over(
        &app,
        &messages,
        &[],
        "Body",
        &"b".repeat(32 * 1024),
        &"b".repeat(32 * 1024 + 1),
        StatusCode::CREATED,
        "/body",
        50504,
    )
    .await;
    at_and_over(
        &app,
        &messages,
        &[("Body", "hi")],
        "From",
        &chars(256),
        &chars(257),
        StatusCode::CREATED,
        "/from",
        50310,
    )
    .await;
}

both_backends!(
    user_friendly_name_is_limited_to_256_characters,
    channel_created_by_is_limited_to_256_characters,
    media_compatibility_message_is_limited_to_1024_characters,
    webhook_urls_are_absolute_http_urls_of_at_most_2048_characters,
    webhook_filters_are_limited_in_count_and_length,
    identities_in_invites_and_list_filters_are_limited_to_256_characters,
    existing_text_limits_hold,
);
