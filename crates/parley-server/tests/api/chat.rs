//! Channels, members, messages, invites, user channels and their events, through the API.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_twilio_error, Backend, TestApp};

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
        .to_owned()
}

async fn channel(app: &TestApp, service: &str, form: &[(&str, &str)]) -> Value {
    let (st, v) = app
        .post(&format!("/v2/Services/{service}/Channels"), form)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v
}

async fn join(app: &TestApp, service: &str, channel: &str, identity: &str) -> Value {
    let (st, v) = app
        .post(
            &format!("/v2/Services/{service}/Channels/{channel}/Members"),
            &[("Identity", identity)],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v
}

async fn post_message(
    app: &TestApp,
    service: &str,
    channel: &str,
    from: &str,
    body: &str,
) -> Value {
    let (st, v) = app
        .post(
            &format!("/v2/Services/{service}/Channels/{channel}/Messages"),
            &[("From", from), ("Body", body)],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v
}

async fn channel_crud_defaults_unique_names_and_links(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let c = channel(&app, &service, &[]).await;
    let sid = s(&c, "sid");
    assert!(sid.starts_with("CH"));
    assert_eq!(c["type"], "public");
    assert_eq!(c["created_by"], "system");
    assert_eq!(c["attributes"], "{}");
    assert_eq!(c["unique_name"], Value::Null);
    assert_eq!(c["members_count"], 0);
    assert_eq!(c["messages_count"], 0);
    let base = format!("{}/v2/Services/{service}/Channels/{sid}", app.base);
    assert_eq!(c["url"], base);
    assert_eq!(
        c["links"],
        json!({"members": format!("{base}/Members"), "messages": format!("{base}/Messages"),
               "invites": format!("{base}/Invites"), "webhooks": format!("{base}/Webhooks"), "last_message": null})
    );
    let named = channel(
        &app,
        &service,
        &[
            ("UniqueName", "general"),
            ("FriendlyName", "General"),
            ("Type", "private"),
        ],
    )
    .await;
    let (st, v) = app
        .post(
            &format!("/v2/Services/{service}/Channels"),
            &[("UniqueName", "general")],
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_twilio_error(&v, 409, 50307);
    let (st, v) = app
        .post(
            &format!("/v2/Services/{service}/Channels"),
            &[("UniqueName", "CH00000000000000000000000000000000")],
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_twilio_error(&v, 400, 50306);
    let (st, by_name) = app
        .get(&format!("/v2/Services/{service}/Channels/general"))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(by_name, named);
    let (st, up) = app
        .post(
            &format!("/v2/Services/{service}/Channels/general"),
            &[("FriendlyName", "Renamed"), ("Attributes", "{\"x\":1}")],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{up}");
    assert_eq!(up["friendly_name"], "Renamed");
    assert_eq!(up["attributes"], "{\"x\":1}");
    // Type filter: default lists public channels; Type=private lists the private one.
    let (_, l) = app.get(&format!("/v2/Services/{service}/Channels")).await;
    assert_eq!(l["channels"].as_array().unwrap().len(), 1);
    let (_, l) = app
        .get(&format!("/v2/Services/{service}/Channels?Type=private"))
        .await;
    assert_eq!(l["channels"][0]["sid"], named["sid"]);
    let (_, l) = app
        .get(&format!(
            "/v2/Services/{service}/Channels?Type=public&Type=private"
        ))
        .await;
    assert_eq!(l["channels"].as_array().unwrap().len(), 2);
    let (st, _) = app
        .delete(&format!("/v2/Services/{service}/Channels/general"))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app
        .get(&format!("/v2/Services/{service}/Channels/general"))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

async fn members_join_count_limits_and_leave(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    app.post(
        &format!("/v2/Services/{service}"),
        &[("Limits.ChannelMembers", "2"), ("Limits.UserChannels", "2")],
    )
    .await;
    let (_, svc) = app.get(&format!("/v2/Services/{service}")).await;
    let ch = s(
        &channel(&app, &service, &[("UniqueName", "room")]).await,
        "sid",
    );
    let m = join(&app, &service, &ch, "new-user").await;
    assert_eq!(m["role_sid"], svc["default_channel_role_sid"]);
    assert_eq!(m["last_consumed_message_index"], Value::Null);
    assert_eq!(m["attributes"], "{}");
    let (st, _) = app
        .get(&format!("/v2/Services/{service}/Users/new-user"))
        .await;
    assert_eq!(st, StatusCode::OK, "joining created the user");
    let (st, v) = app
        .post(
            &format!("/v2/Services/{service}/Channels/room/Members"),
            &[("Identity", "new-user")],
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_twilio_error(&v, 409, 50404);
    join(&app, &service, "room", "second").await;
    let (st, v) = app
        .post(
            &format!("/v2/Services/{service}/Channels/room/Members"),
            &[("Identity", "third")],
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_twilio_error(&v, 403, 50403);
    let (_, c) = app
        .get(&format!("/v2/Services/{service}/Channels/room"))
        .await;
    assert_eq!(c["members_count"], 2);
    // User channel limit: new-user may be in 2 channels.
    let c2 = s(&channel(&app, &service, &[]).await, "sid");
    let c3 = s(&channel(&app, &service, &[]).await, "sid");
    join(&app, &service, &c2, "new-user").await;
    let (st, v) = app
        .post(
            &format!("/v2/Services/{service}/Channels/{c3}/Members"),
            &[("Identity", "new-user")],
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_twilio_error(&v, 403, 50208);
    let (_, u) = app
        .get(&format!("/v2/Services/{service}/Users/new-user"))
        .await;
    assert_eq!(u["joined_channels_count"], 2);
    // Fetch by identity, filter, update horizon, delete.
    let (st, by_id) = app
        .get(&format!(
            "/v2/Services/{service}/Channels/room/Members/second"
        ))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, filtered) = app
        .get(&format!(
            "/v2/Services/{service}/Channels/room/Members?Identity=second"
        ))
        .await;
    assert_eq!(filtered["members"], json!([by_id.clone()]));
    let (st, up) = app
        .post(
            &format!("/v2/Services/{service}/Channels/room/Members/second"),
            &[("LastConsumedMessageIndex", "3")],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{up}");
    assert_eq!(up["last_consumed_message_index"], 3);
    assert!(up["last_consumption_timestamp"].is_string());
    let (st, _) = app
        .delete(&format!(
            "/v2/Services/{service}/Channels/room/Members/{}",
            s(&by_id, "sid")
        ))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, c) = app
        .get(&format!("/v2/Services/{service}/Channels/room"))
        .await;
    assert_eq!(c["members_count"], 1);
}

async fn messages_get_increasing_indexes_and_page_both_ways(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let ch = s(&channel(&app, &service, &[]).await, "sid");
    let first = post_message(&app, &service, &ch, "alice", "hello").await;
    assert_eq!(first["index"], 0);
    assert_eq!(first["from"], "alice");
    assert_eq!(first["type"], "text");
    assert_eq!(first["to"], ch.as_str());
    assert_eq!(first["was_edited"], false);
    assert_eq!(first["media"], Value::Null);
    let (st, v) = app
        .post(
            &format!("/v2/Services/{service}/Channels/{ch}/Messages"),
            &[("Body", "x")],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(v["from"], "system");
    for i in 2..7 {
        post_message(&app, &service, &ch, "bob", &format!("m{i}")).await;
    }
    let (_, c) = app
        .get(&format!("/v2/Services/{service}/Channels/{ch}"))
        .await;
    assert_eq!(c["messages_count"], 7);
    let last = c["links"]["last_message"].as_str().unwrap();
    let (_, lm) = app.get(&app.local(last)).await;
    assert_eq!(lm["index"], 6);
    let (asc, _) = app
        .collect_all(&format!(
            "/v2/Services/{service}/Channels/{ch}/Messages?PageSize=3"
        ))
        .await;
    let idx: Vec<i64> = asc.iter().map(|m| m["index"].as_i64().unwrap()).collect();
    assert_eq!(idx, vec![0, 1, 2, 3, 4, 5, 6]);
    let (desc, _) = app
        .collect_all(&format!(
            "/v2/Services/{service}/Channels/{ch}/Messages?Order=desc&PageSize=3"
        ))
        .await;
    let idx: Vec<i64> = desc.iter().map(|m| m["index"].as_i64().unwrap()).collect();
    assert_eq!(idx, vec![6, 5, 4, 3, 2, 1, 0]);
    // Edit, validation, delete.
    let path = format!(
        "/v2/Services/{service}/Channels/{ch}/Messages/{}",
        s(&first, "sid")
    );
    let (st, e) = app
        .post(
            &path,
            &[("Body", "hello, edited"), ("LastUpdatedBy", "alice")],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(e["was_edited"], true);
    assert_eq!(e["last_updated_by"], "alice");
    let (st, v) = app
        .post(
            &format!("/v2/Services/{service}/Channels/{ch}/Messages"),
            &[
                ("Body", "x"),
                ("MediaSid", "ME00000000000000000000000000000000"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["details"]["param"], "MediaSid");
    let big = "x".repeat(40 * 1024);
    let (st, v) = app
        .post(
            &format!("/v2/Services/{service}/Channels/{ch}/Messages"),
            &[("Body", big.as_str())],
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_twilio_error(&v, 400, 50504);
    let (st, _) = app.delete(&path).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, c) = app
        .get(&format!("/v2/Services/{service}/Channels/{ch}"))
        .await;
    assert_eq!(c["messages_count"], 6);
    let next = post_message(&app, &service, &ch, "bob", "after delete").await;
    assert_eq!(next["index"], 7, "indexes are never reused");
}

async fn concurrent_posts_get_distinct_consecutive_indexes(b: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(b).await);
    let service = app.create_service("s").await;
    let ch = s(&channel(&app, &service, &[]).await, "sid");
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (app, service, ch) = (app.clone(), service.clone(), ch.clone());
        tasks.push(tokio::spawn(async move {
            post_message(&app, &service, &ch, "w", &format!("{i}")).await
        }));
    }
    let mut idx: Vec<i64> = Vec::new();
    for t in tasks {
        idx.push(t.await.unwrap()["index"].as_i64().unwrap());
    }
    idx.sort_unstable();
    assert_eq!(idx, (0..64).collect::<Vec<i64>>());
    let (_, c) = app
        .get(&format!("/v2/Services/{service}/Channels/{ch}"))
        .await;
    assert_eq!(c["messages_count"], 64);
}

async fn invites_conflicts_unknown_users_and_joining(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let ch = s(
        &channel(&app, &service, &[("UniqueName", "room")]).await,
        "sid",
    );
    let path = format!("/v2/Services/{service}/Channels/room/Invites");
    let (st, v) = app.post(&path, &[("Identity", "ghost")]).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "unknown identity: {v}");
    assert_twilio_error(&v, 404, 20404);
    app.create_user(&service, "carol").await;
    let (st, inv) = app.post(&path, &[("Identity", "carol")]).await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    assert_eq!(inv["identity"], "carol");
    assert_eq!(inv["channel_sid"], ch.as_str());
    assert_eq!(
        inv["url"],
        format!(
            "{}/v2/Services/{service}/Channels/{ch}/Invites/{}",
            app.base,
            s(&inv, "sid")
        )
    );
    let (st, v) = app.post(&path, &[("Identity", "carol")]).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_twilio_error(&v, 409, 50212);
    let (_, l) = app.get(&format!("{path}?Identity=carol")).await;
    assert_eq!(l["invites"].as_array().unwrap().len(), 1);
    // The user channel shows the invite, then the membership after joining.
    let (st, uc) = app
        .get(&format!("/v2/Services/{service}/Users/carol/Channels/room"))
        .await;
    assert_eq!(st, StatusCode::OK, "{uc}");
    assert_eq!(uc["status"], "invited");
    assert_eq!(uc["member_sid"], Value::Null);
    join(&app, &service, "room", "carol").await;
    let (_, l) = app.get(&path).await;
    assert_eq!(l["invites"], json!([]), "joining removed the invite");
    let (_, uc) = app
        .get(&format!("/v2/Services/{service}/Users/carol/Channels/{ch}"))
        .await;
    assert_eq!(uc["status"], "joined");
    let (st, v) = app.post(&path, &[("Identity", "carol")]).await;
    assert_eq!(st, StatusCode::CONFLICT, "already a member: {v}");
}

async fn user_channels_unread_counts_mute_and_leave(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let ch = s(&channel(&app, &service, &[]).await, "sid");
    let m = join(&app, &service, &ch, "dave").await;
    for i in 0..5 {
        post_message(&app, &service, &ch, "eve", &format!("m{i}")).await;
    }
    let base = format!("/v2/Services/{service}/Users/dave/Channels");
    let (_, list) = app.get(&base).await;
    let uc = &list["channels"][0];
    assert_eq!(uc["status"], "joined");
    assert_eq!(uc["member_sid"], m["sid"]);
    assert_eq!(uc["unread_messages_count"], Value::Null, "no horizon yet");
    assert!(uc.get("sid").is_none(), "user channels have no sid");
    assert_eq!(
        uc["links"]["member"],
        format!(
            "{}/v2/Services/{service}/Channels/{ch}/Members/{}",
            app.base,
            s(&m, "sid")
        )
    );
    let (st, up) = app
        .post(
            &format!("{base}/{ch}"),
            &[
                ("LastConsumedMessageIndex", "1"),
                ("NotificationLevel", "muted"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{up}");
    assert_eq!(up["unread_messages_count"], 3);
    assert_eq!(up["notification_level"], "muted");
    assert_eq!(up["last_consumed_message_index"], 1);
    let (st, v) = app
        .post(&format!("{base}/{ch}"), &[("NotificationLevel", "loud")])
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_twilio_error(&v, 400, 50210);
    let (st, _) = app.delete(&format!("{base}/{ch}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, list) = app.get(&base).await;
    assert_eq!(list["channels"], json!([]));
    let (_, c) = app
        .get(&format!("/v2/Services/{service}/Channels/{ch}"))
        .await;
    assert_eq!(c["members_count"], 0);
}

async fn chat_changes_append_addressable_events(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let ch = s(
        &channel(
            &app,
            &service,
            &[("UniqueName", "ev"), ("FriendlyName", "Events")],
        )
        .await,
        "sid",
    );
    let m = join(&app, &service, &ch, "alice").await;
    app.create_user(&service, "bob").await;
    let (_, inv) = app
        .post(
            &format!("/v2/Services/{service}/Channels/{ch}/Invites"),
            &[("Identity", "bob")],
        )
        .await;
    let msg = post_message(&app, &service, &ch, "alice", "hi bob").await;
    app.delete(&format!(
        "/v2/Services/{service}/Channels/{ch}/Members/alice"
    ))
    .await;
    // A refused change leaves no event.
    let (st, _) = app
        .post(
            &format!("/v2/Services/{service}/Channels/{ch}/Members"),
            &[
                ("Identity", "bob"),
                ("RoleSid", "RL00000000000000000000000000000000"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let events = app
        .store
        .list_events(&service.parse().unwrap(), 0, 100)
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "channel_added",
            "user_added",
            "added_to_channel",
            "user_added",
            "invited_to_channel",
            "new_message",
            "removed_from_channel"
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    assert_eq!(events[1].identity.as_deref(), Some("alice"));
    assert_eq!(events[1].channel_sid, None);
    let events: Vec<_> = events.into_iter().filter(|e| e.kind.is_push()).collect();
    for e in &events {
        assert_eq!(
            e.channel_sid.as_ref().map(|c| c.as_str()),
            Some(ch.as_str())
        );
        assert_eq!(e.service_sid.as_str(), service);
        assert_eq!(e.channel_unique_name.as_deref(), Some("ev"));
        assert_eq!(e.channel_friendly_name.as_deref(), Some("Events"));
    }
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(events[0].identity.as_deref(), Some("alice"));
    assert_eq!(
        events[0].member_sid.as_ref().map(|s| s.to_string()),
        Some(s(&m, "sid"))
    );
    assert_eq!(events[1].identity.as_deref(), Some("bob"));
    assert_eq!(
        events[1].invite_sid.as_ref().map(|s| s.to_string()),
        Some(s(&inv, "sid"))
    );
    assert_eq!(
        events[2].message_sid.as_ref().map(|s| s.to_string()),
        Some(s(&msg, "sid"))
    );
    assert_eq!(events[2].message_index, Some(0));
    assert_eq!(events[2].body.as_deref(), Some("hi bob"));
    assert_eq!(events[2].actor.as_deref(), Some("alice"));
    assert_eq!(events[3].identity.as_deref(), Some("alice"));
}

async fn chat_resources_of_another_account_are_404(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let ch = s(&channel(&app, &service, &[]).await, "sid");
    join(&app, &service, &ch, "alice").await;
    let msg = post_message(&app, &service, &ch, "alice", "secret").await;
    for path in [
        format!("/v2/Services/{service}/Channels/{ch}"),
        format!("/v2/Services/{service}/Channels/{ch}/Members/alice"),
        format!(
            "/v2/Services/{service}/Channels/{ch}/Messages/{}",
            s(&msg, "sid")
        ),
        format!("/v2/Services/{service}/Channels/{ch}/Messages"),
        format!("/v2/Services/{service}/Users/alice/Channels"),
    ] {
        let (st, _, v) = app
            .call(axum::http::Method::GET, &path, Some(&app.other), &[], &[])
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {v}");
    }
}

async fn nul_characters_and_over_long_names_are_rejected_alike_on_both_backends(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let ch = s(&channel(&app, &service, &[]).await, "sid");
    for (path, form) in [
        (
            format!("/v2/Services/{service}/Channels"),
            vec![("FriendlyName", "a\0b")],
        ),
        (
            format!("/v2/Services/{service}/Channels/{ch}/Members"),
            vec![("Identity", "a\0b")],
        ),
        (
            format!("/v2/Services/{service}/Channels/{ch}/Messages"),
            vec![("Body", "a\0b")],
        ),
        (
            format!("/v2/Services/{service}/Users"),
            vec![("Identity", "x\0")],
        ),
    ] {
        let (st, v) = app.post(&path, &form).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert_twilio_error(&v, 400, 20001);
    }
    let (st, _) = app
        .get(&format!("/v2/Services/{service}/Channels/a%00b"))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let long = "n".repeat(65);
    let (st, v) = app
        .post(
            &format!("/v2/Services/{service}/Channels"),
            &[("UniqueName", long.as_str())],
        )
        .await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "64 characters at most on create: {v}"
    );
    assert_twilio_error(&v, 400, 50004);
    let (st, _) = app
        .post(
            &format!("/v2/Services/{service}/Channels/{ch}"),
            &[("UniqueName", long.as_str())],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "256 on update");
}

async fn deleting_an_invited_user_channel_declines_the_invite(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let ch = s(&channel(&app, &service, &[]).await, "sid");
    app.create_user(&service, "ivy").await;
    let (st, _) = app
        .post(
            &format!("/v2/Services/{service}/Channels/{ch}/Invites"),
            &[("Identity", "ivy")],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = app
        .delete(&format!("/v2/Services/{service}/Users/ivy/Channels/{ch}"))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, inv) = app
        .get(&format!("/v2/Services/{service}/Channels/{ch}/Invites"))
        .await;
    assert_eq!(inv["invites"], json!([]));
    let (st, _) = app
        .delete(&format!("/v2/Services/{service}/Users/ivy/Channels/{ch}"))
        .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "nothing left to leave or decline"
    );
}

both_backends!(
    nul_characters_and_over_long_names_are_rejected_alike_on_both_backends,
    deleting_an_invited_user_channel_declines_the_invite,
    channel_crud_defaults_unique_names_and_links,
    members_join_count_limits_and_leave,
    messages_get_increasing_indexes_and_page_both_ways,
    concurrent_posts_get_distinct_consecutive_indexes,
    invites_conflicts_unknown_users_and_joining,
    user_channels_unread_counts_mute_and_leave,
    chat_changes_append_addressable_events,
    chat_resources_of_another_account_are_404,
);
