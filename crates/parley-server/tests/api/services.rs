use axum::http::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_twilio_error, Backend, TestApp};

async fn create_service_returns_twilio_defaults_and_default_roles(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (s, v) = app
        .post("/v2/Services", &[("FriendlyName", "push test")])
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let sid = v["sid"].as_str().unwrap();
    assert!(sid.starts_with("IS") && sid.len() == 34);
    assert_eq!(v["account_sid"], app.account.sid.as_str());
    assert_eq!(v["friendly_name"], "push test");
    assert_eq!(v["read_status_enabled"], true);
    assert_eq!(v["reachability_enabled"], false);
    assert_eq!(v["typing_indicator_timeout"], 5);
    assert_eq!(v["consumption_report_interval"], 10);
    assert_eq!(
        v["limits"],
        json!({"channel_members": 100, "user_channels": 250})
    );
    assert_eq!(v["webhook_filters"], serde_json::Value::Null);
    assert_eq!(v["webhook_method"], serde_json::Value::Null);
    assert_eq!(v["pre_webhook_retry_count"], 0);
    assert_eq!(v["notifications"]["new_message"], json!({"enabled": false}));
    assert_eq!(v["notifications"]["log_enabled"], false);
    assert_eq!(v["media"]["size_limit_mb"], 150);
    let date = v["date_created"].as_str().unwrap();
    assert!(
        date.len() == 20 && date.ends_with('Z') && date.as_bytes()[10] == b'T',
        "{date}"
    );
    assert_eq!(v["url"], format!("{}/v2/Services/{sid}", app.base));
    assert_eq!(
        v["links"]["users"],
        format!("{}/v2/Services/{sid}/Users", app.base)
    );
    assert_eq!(
        v["links"]["bindings"],
        format!("{}/v2/Services/{sid}/Bindings", app.base)
    );
    // Default roles exist and the service points at them.
    let (s, roles) = app.get(&format!("/v2/Services/{sid}/Roles")).await;
    assert_eq!(s, StatusCode::OK);
    let roles = roles["roles"].as_array().unwrap().clone();
    let names: Vec<&str> = roles
        .iter()
        .map(|r| r["friendly_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "service admin",
            "service user",
            "channel admin",
            "channel user"
        ]
    );
    let sid_of =
        |name: &str| roles.iter().find(|r| r["friendly_name"] == name).unwrap()["sid"].clone();
    assert_eq!(v["default_service_role_sid"], sid_of("service user"));
    assert_eq!(v["default_channel_role_sid"], sid_of("channel user"));
    assert_eq!(
        v["default_channel_creator_role_sid"],
        sid_of("channel admin")
    );
}

async fn update_service_persists_every_nested_setting(b: Backend) {
    let app = TestApp::spawn(b).await;
    let sid = app.create_service("s").await;
    let (_, roles) = app.get(&format!("/v2/Services/{sid}/Roles")).await;
    let admin = roles["roles"][0]["sid"].as_str().unwrap().to_owned();
    let form = [
        ("FriendlyName", "renamed"),
        ("DefaultServiceRoleSid", admin.as_str()),
        ("ReadStatusEnabled", "false"),
        ("ReachabilityEnabled", "true"),
        ("TypingIndicatorTimeout", "9"),
        ("Notifications.NewMessage.Enabled", "true"),
        (
            "Notifications.NewMessage.Template",
            "${CHANNEL};${USER}: ${MESSAGE}",
        ),
        ("Notifications.NewMessage.Sound", "ding.caf"),
        ("Notifications.NewMessage.BadgeCountEnabled", "true"),
        ("Notifications.AddedToChannel.Enabled", "true"),
        (
            "Notifications.InvitedToChannel.Template",
            "invited to ${CHANNEL}",
        ),
        ("Notifications.LogEnabled", "true"),
        ("PreWebhookUrl", "https://example.com/pre"),
        ("WebhookMethod", "GET"),
        ("WebhookFilters", "onMessageSent"),
        ("WebhookFilters", "onChannelAdded"),
        ("PostWebhookRetryCount", "2"),
        ("Limits.ChannelMembers", "500"),
        ("Limits.UserChannels", "700"),
        ("Media.CompatibilityMessage", "no media"),
    ];
    let (s, v) = app.post(&format!("/v2/Services/{sid}"), &form).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, f) = app.get(&format!("/v2/Services/{sid}")).await;
    assert_eq!(v, f, "update answer equals a later fetch");
    assert_eq!(f["friendly_name"], "renamed");
    assert_eq!(f["default_service_role_sid"], admin.as_str());
    assert_eq!(f["read_status_enabled"], false);
    assert_eq!(f["reachability_enabled"], true);
    assert_eq!(f["typing_indicator_timeout"], 9);
    assert_eq!(
        f["notifications"]["new_message"],
        json!({"enabled": true, "template": "${CHANNEL};${USER}: ${MESSAGE}", "sound": "ding.caf", "badge_count_enabled": true})
    );
    assert_eq!(
        f["notifications"]["added_to_channel"],
        json!({"enabled": true})
    );
    assert_eq!(
        f["notifications"]["invited_to_channel"],
        json!({"enabled": false, "template": "invited to ${CHANNEL}"})
    );
    assert_eq!(f["notifications"]["log_enabled"], true);
    assert_eq!(f["pre_webhook_url"], "https://example.com/pre");
    assert_eq!(f["webhook_method"], "GET");
    assert_eq!(
        f["webhook_filters"],
        json!(["onMessageSent", "onChannelAdded"])
    );
    assert_eq!(f["post_webhook_retry_count"], 2);
    assert_eq!(
        f["limits"],
        json!({"channel_members": 500, "user_channels": 700})
    );
    assert_eq!(f["media"]["compatibility_message"], "no media");
}

async fn update_service_rejects_bad_values_naming_the_parameter(b: Backend) {
    let app = TestApp::spawn(b).await;
    let sid = app.create_service("s").await;
    let (_, roles) = app.get(&format!("/v2/Services/{sid}/Roles")).await;
    let channel_role = roles["roles"][3]["sid"].as_str().unwrap().to_owned();
    type Case<'a> = (Vec<(&'a str, &'a str)>, u64, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("ReadStatusEnabled", "maybe")],
            20001,
            "ReadStatusEnabled",
        ),
        (
            vec![("TypingIndicatorTimeout", "soon")],
            20001,
            "TypingIndicatorTimeout",
        ),
        (
            vec![("Limits.ChannelMembers", "5000")],
            50061,
            "Limits.ChannelMembers",
        ),
        (
            vec![("Limits.UserChannels", "0")],
            50060,
            "Limits.UserChannels",
        ),
        (vec![("WebhookMethod", "PUT")], 50055, "WebhookMethod"),
        (vec![("PreWebhookUrl", "not a url")], 50077, "PreWebhookUrl"),
        (
            vec![("DefaultServiceRoleSid", channel_role.as_str())],
            50102,
            "DefaultServiceRoleSid",
        ),
        (
            vec![(
                "DefaultChannelRoleSid",
                "RL00000000000000000000000000000000",
            )],
            50101,
            "DefaultChannelRoleSid",
        ),
    ];
    let (_, before) = app.get(&format!("/v2/Services/{sid}")).await;
    for (form, code, param) in cases {
        let (s, v) = app.post(&format!("/v2/Services/{sid}"), &form).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{form:?}: {v}");
        assert_twilio_error(&v, 400, code);
        assert_eq!(v["details"]["param"], param, "{v}");
    }
    let (_, after) = app.get(&format!("/v2/Services/{sid}")).await;
    assert_eq!(before, after, "rejected updates change nothing");
}

async fn create_service_without_friendly_name_is_400(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (s, v) = app.post("/v2/Services", &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_twilio_error(&v, 400, 20001);
    assert_eq!(v["details"]["param"], "FriendlyName");
}

async fn delete_service_cascades_to_users_roles_and_bindings(b: Backend) {
    let app = TestApp::spawn(b).await;
    let sid = app.create_service("s").await;
    app.create_credential("fcm").await;
    let user = app.create_user(&sid, "alice").await;
    let (s, binding) = app
        .register(
            &sid,
            "alice",
            &[("BindingType", "fcm"), ("Address", "tok-1")],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{binding}");
    let (s, _) = app.delete(&format!("/v2/Services/{sid}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for path in [
        format!("/v2/Services/{sid}"),
        format!("/v2/Services/{sid}/Users/{}", user["sid"].as_str().unwrap()),
        format!(
            "/v2/Services/{sid}/Bindings/{}",
            binding["sid"].as_str().unwrap()
        ),
        format!("/v2/Services/{sid}/Roles"),
    ] {
        let (s, v) = app.get(&path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_twilio_error(&v, 404, 20404);
    }
    // The binding row is really gone, not just hidden behind the service.
    let (s, _) = app.delete(&format!("/v2/Services/{sid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn list_services_shows_only_the_callers_account(b: Backend) {
    let app = TestApp::spawn(b).await;
    let mine = app.create_service("mine").await;
    let (s, _, v) = app
        .call(
            axum::http::Method::POST,
            "/v2/Services",
            Some(&app.other),
            &[("FriendlyName", "theirs")],
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let theirs = v["sid"].as_str().unwrap().to_owned();
    let (_, list) = app.get("/v2/Services").await;
    let sids: Vec<&str> = list["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, vec![mine.as_str()]);
    let (s, v) = app.get(&format!("/v2/Services/{theirs}")).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another account's service is absent, not forbidden"
    );
    assert_twilio_error(&v, 404, 20404);
    let (s, _) = app
        .post(&format!("/v2/Services/{theirs}"), &[("FriendlyName", "x")])
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.delete(&format!("/v2/Services/{theirs}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// Concurrent UpdateService requests that each change a different field all survive: none
/// overwrites another's change with the value it read before (item 8, no lost updates).
async fn concurrent_updates_of_different_fields_all_survive(b: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(b).await);
    let sid = app.create_service("s").await;
    let uri = format!("/v2/Services/{sid}");
    for round in 0..12_i64 {
        let even = round % 2 == 0;
        let flag = |v: bool| if v { "true" } else { "false" }.to_owned();
        let updates: Vec<(&str, String)> = vec![
            ("FriendlyName", format!("name {round}")),
            ("Notifications.NewMessage.Enabled", flag(even)),
            ("ReadStatusEnabled", flag(!even)),
            ("ReachabilityEnabled", flag(even)),
            ("TypingIndicatorTimeout", (round + 1).to_string()),
            ("ConsumptionReportInterval", (round + 2).to_string()),
            ("Limits.ChannelMembers", (round + 10).to_string()),
            ("Limits.UserChannels", (round + 20).to_string()),
            ("Notifications.AddedToChannel.Enabled", flag(!even)),
            ("Notifications.LogEnabled", flag(even)),
            ("Media.CompatibilityMessage", format!("no media {round}")),
            (
                "PreWebhookUrl",
                format!("https://hooks.example.com/{round}"),
            ),
        ];
        let tasks: Vec<_> = updates
            .into_iter()
            .map(|(name, value)| {
                let app = app.clone();
                let uri = uri.clone();
                tokio::spawn(async move {
                    let (s, v) = app.post(&uri, &[(name, value.as_str())]).await;
                    assert_eq!(s, StatusCode::OK, "{name}: {v}");
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let (_, f) = app.get(&uri).await;
        let want = json!({
            "friendly_name": format!("name {round}"),
            "new_message": even,
            "read_status_enabled": !even,
            "reachability_enabled": even,
            "typing_indicator_timeout": round + 1,
            "consumption_report_interval": round + 2,
            "limits": {"channel_members": round + 10, "user_channels": round + 20},
            "added_to_channel": !even,
            "log_enabled": even,
            "compatibility_message": format!("no media {round}"),
            "pre_webhook_url": format!("https://hooks.example.com/{round}"),
        });
        let got = json!({
            "friendly_name": f["friendly_name"],
            "new_message": f["notifications"]["new_message"]["enabled"],
            "read_status_enabled": f["read_status_enabled"],
            "reachability_enabled": f["reachability_enabled"],
            "typing_indicator_timeout": f["typing_indicator_timeout"],
            "consumption_report_interval": f["consumption_report_interval"],
            "limits": f["limits"],
            "added_to_channel": f["notifications"]["added_to_channel"]["enabled"],
            "log_enabled": f["notifications"]["log_enabled"],
            "compatibility_message": f["media"]["compatibility_message"],
            "pre_webhook_url": f["pre_webhook_url"],
        });
        assert_eq!(got, want, "round {round}: every change survives");
    }
}

both_backends!(
    concurrent_updates_of_different_fields_all_survive,
    create_service_returns_twilio_defaults_and_default_roles,
    update_service_persists_every_nested_setting,
    update_service_rejects_bad_values_naming_the_parameter,
    create_service_without_friendly_name_is_400,
    delete_service_cascades_to_users_roles_and_bindings,
    list_services_shows_only_the_callers_account,
);
