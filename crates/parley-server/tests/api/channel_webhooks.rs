//! Channel webhooks through the API (contract §12): wire shape, validation errors
//! (50321–50332), the limit of 5, paging and tenancy.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_twilio_error, Backend, TestApp};

/// A service with a channel `hooks`; returns (service SID, channel SID, webhooks list path).
async fn setup(app: &TestApp) -> (String, String, String) {
    let service = app.create_service("hooks").await;
    let (st, c) = app
        .post(
            &format!("/v2/Services/{service}/Channels"),
            &[("UniqueName", "hooks")],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    let ch = c["sid"].as_str().unwrap().to_owned();
    let list = format!("/v2/Services/{service}/Channels/{ch}/Webhooks");
    (service, ch, list)
}

/// A form body.
type Form<'a> = Vec<(&'a str, &'a str)>;

const WEBHOOK: &[(&str, &str)] = &[
    ("Type", "webhook"),
    ("Configuration.Url", "https://example.com/hook"),
    ("Configuration.Method", "GET"),
    ("Configuration.Filters", "onMessageSent"),
    ("Configuration.Filters", "onChannelDestroyed"),
    ("Configuration.RetryCount", "2"),
];

async fn webhook_crud_and_wire_shape(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (service, ch, list) = setup(&app).await;

    // create: 201 with exactly the spec's keys; configuration holds only what was set
    let (st, w) = app.post(&list, WEBHOOK).await;
    assert_eq!(st, StatusCode::CREATED, "{w}");
    let sid = w["sid"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("WH") && sid.len() == 34, "{sid}");
    let mut keys: Vec<&str> = w.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "account_sid",
            "channel_sid",
            "configuration",
            "date_created",
            "date_updated",
            "service_sid",
            "sid",
            "type",
            "url"
        ]
    );
    assert_eq!(w["account_sid"], app.account.sid);
    assert_eq!(w["service_sid"], service);
    assert_eq!(w["channel_sid"], ch);
    assert_eq!(w["type"], "webhook");
    assert_eq!(
        w["configuration"],
        json!({"url": "https://example.com/hook", "method": "GET",
               "filters": ["onMessageSent", "onChannelDestroyed"], "retry_count": 2})
    );
    assert_eq!(w["url"], format!("{}{list}/{sid}", app.base));
    let date = w["date_created"].as_str().unwrap();
    assert!(date.len() == 20 && date.ends_with('Z'), "{date}");

    // fetch, also with the channel's unique name in the path
    let by_name = format!("/v2/Services/{service}/Channels/hooks/Webhooks/{sid}");
    for path in [format!("{list}/{sid}"), by_name.clone()] {
        let (st, f) = app.get(&path).await;
        assert_eq!(st, StatusCode::OK, "{f}");
        assert_eq!(f, w);
    }

    // studio and trigger types
    let flow = "FW0123456789abcdef0123456789abcdef";
    let (st, studio) = app
        .post(
            &list,
            &[("Type", "studio"), ("Configuration.FlowSid", flow)],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{studio}");
    assert_eq!(studio["configuration"], json!({"flow_sid": flow}));
    let (st, trigger) = app
        .post(
            &list,
            &[
                ("Type", "trigger"),
                ("Configuration.Url", "http://example.com/t"),
                ("Configuration.Triggers", "help"),
                ("Configuration.Triggers", "agent"),
                ("Configuration.Triggers", "help"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{trigger}");
    assert_eq!(
        trigger["configuration"],
        json!({"url": "http://example.com/t", "triggers": ["help", "agent"]}),
        "repeats kept once"
    );

    // update: only the given fields change; Type is ignored
    let (st, u) = app
        .post(
            &by_name,
            &[
                ("Type", "studio"),
                ("Configuration.Url", "https://example.com/other"),
                ("Configuration.Method", "post"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{u}");
    assert_eq!(u["type"], "webhook");
    assert_eq!(
        u["configuration"],
        json!({"url": "https://example.com/other", "method": "POST",
               "filters": ["onMessageSent", "onChannelDestroyed"], "retry_count": 2})
    );
    let (_, again) = app.get(&format!("{list}/{sid}")).await;
    assert_eq!(again, u, "the update is stored");

    // list: key `webhooks`, default and largest page 5, oldest first
    let (st, l) = app.get(&list).await;
    assert_eq!(st, StatusCode::OK, "{l}");
    assert_eq!(l["meta"]["key"], "webhooks");
    assert_eq!(l["meta"]["page_size"], 5);
    let sids: Vec<&str> = l["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids.len(), 3);
    assert_eq!(sids[0], sid);
    assert_eq!(l["webhooks"][0], u);
    let (_, big) = app.get(&format!("{list}?PageSize=50")).await;
    assert_eq!(big["meta"]["page_size"], 5, "clamped to 5");

    // delete
    let (st, body) = app.delete(&format!("{list}/{sid}")).await;
    assert_eq!((st, body), (StatusCode::NO_CONTENT, Value::Null));
    let (st, e) = app.get(&format!("{list}/{sid}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_twilio_error(&e, 404, 20404);
    let (st, _) = app.delete(&format!("{list}/{sid}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

async fn invalid_webhooks_get_their_chat_error_codes(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, _, list) = setup(&app).await;
    let url = ("Configuration.Url", "https://example.com/h");
    let filter = ("Configuration.Filters", "onMessageSent");
    let cases: Vec<(Form, u64, &str)> = vec![
        (vec![url, filter], 50328, "Type"),
        (vec![("Type", "email"), url, filter], 50324, "Type"),
        (
            vec![("Type", "webhook"), filter],
            50329,
            "Configuration.Url",
        ),
        (
            vec![("Type", "trigger"), ("Configuration.Triggers", "x")],
            50329,
            "Configuration.Url",
        ),
        (
            vec![("Type", "webhook"), url],
            50330,
            "Configuration.Filters",
        ),
        (
            vec![
                ("Type", "webhook"),
                url,
                ("Configuration.Filters", "onMessageSend"),
            ],
            50325,
            "Configuration.Filters",
        ),
        (
            vec![
                ("Type", "webhook"),
                url,
                ("Configuration.Filters", "onUserAdded"),
            ],
            50325,
            "Configuration.Filters",
        ),
        (
            vec![("Type", "trigger"), url],
            50331,
            "Configuration.Triggers",
        ),
        (
            vec![
                ("Type", "trigger"),
                url,
                ("Configuration.Triggers", "a"),
                ("Configuration.Triggers", "b"),
                ("Configuration.Triggers", "c"),
                ("Configuration.Triggers", "d"),
                ("Configuration.Triggers", "e"),
                ("Configuration.Triggers", "f"),
            ],
            50322,
            "Configuration.Triggers",
        ),
        (vec![("Type", "studio")], 50327, "Configuration.FlowSid"),
        (
            vec![("Type", "studio"), ("Configuration.FlowSid", "FW123")],
            50327,
            "Configuration.FlowSid",
        ),
        (
            vec![("Type", "webhook"), ("Configuration.Url", "dummy"), filter],
            20001,
            "Configuration.Url",
        ),
        (
            vec![
                ("Type", "webhook"),
                url,
                filter,
                ("Configuration.Method", "PUT"),
            ],
            50055,
            "Configuration.Method",
        ),
        (
            vec![
                ("Type", "webhook"),
                url,
                filter,
                ("Configuration.RetryCount", "4"),
            ],
            50065,
            "Configuration.RetryCount",
        ),
    ];
    for (form, code, param) in &cases {
        let (st, e) = app.post(&list, form).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{form:?}: {e}");
        assert_twilio_error(&e, 400, *code);
        assert_eq!(e["details"]["param"], *param, "{form:?}: {e}");
    }
    let long = format!("https://example.com/{}", "a".repeat(2048));
    let (st, e) = app
        .post(
            &list,
            &[("Type", "webhook"), ("Configuration.Url", &long), filter],
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_twilio_error(&e, 400, 50332);
    let (_, l) = app.get(&list).await;
    assert_eq!(l["webhooks"], json!([]), "nothing was stored");

    // the same value rules on update
    let (st, w) = app.post(&list, &[("Type", "webhook"), url, filter]).await;
    assert_eq!(st, StatusCode::CREATED, "{w}");
    let one = format!("{list}/{}", w["sid"].as_str().unwrap());
    for (form, code) in [
        (vec![("Configuration.Filters", "onChannelAdded")], 50325),
        (vec![("Configuration.RetryCount", "-1")], 50065),
        (vec![("Configuration.Url", "ftp://example.com")], 20001),
        (vec![("Configuration.Filters", "")], 50325),
        (vec![("Configuration.Triggers", "")], 50326),
    ] {
        let (st, e) = app.post(&one, &form).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{form:?}: {e}");
        assert_twilio_error(&e, 400, code);
    }
    let (_, after) = app.get(&one).await;
    assert_eq!(after, w, "failed updates changed nothing");
}

async fn a_sixth_webhook_is_refused_and_pages_hold_at_most_five(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, _, list) = setup(&app).await;
    let mut sids = Vec::new();
    for i in 0..5 {
        let url = format!("https://example.com/{i}");
        let (st, w) = app
            .post(
                &list,
                &[
                    ("Type", "webhook"),
                    ("Configuration.Url", &url),
                    ("Configuration.Filters", "onMessageSent"),
                ],
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{w}");
        sids.push(w["sid"].as_str().unwrap().to_owned());
    }
    let (st, e) = app.post(&list, WEBHOOK).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
    assert_twilio_error(&e, 403, 50321);

    // paging with PageSize=2 follows next_page_url through all five, in creation order
    let (items, pages) = app.collect_all(&format!("{list}?PageSize=2")).await;
    assert_eq!(pages, 3);
    let walked: Vec<&str> = items.iter().map(|w| w["sid"].as_str().unwrap()).collect();
    assert_eq!(walked, sids, "every webhook once, oldest first");
}

async fn webhooks_of_another_account_or_a_missing_channel_are_404(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (service, _, list) = setup(&app).await;
    let (st, w) = app.post(&list, WEBHOOK).await;
    assert_eq!(st, StatusCode::CREATED, "{w}");
    let one = format!("{list}/{}", w["sid"].as_str().unwrap());

    for (method, path, form) in [
        (Method::GET, list.as_str(), &[][..]),
        (Method::POST, list.as_str(), WEBHOOK),
        (Method::GET, one.as_str(), &[][..]),
        (
            Method::POST,
            one.as_str(),
            &[("Configuration.Url", "https://evil.example")][..],
        ),
        (Method::DELETE, one.as_str(), &[][..]),
    ] {
        let (st, _, e) = app
            .call(method.clone(), path, Some(&app.other), form, &[])
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{method} {path}: {e}");
        assert_twilio_error(&e, 404, 20404);
    }
    let (_, still) = app.get(&one).await;
    assert_eq!(still, w, "another account changed nothing");

    // a missing channel, a malformed webhook SID
    let missing = format!("/v2/Services/{service}/Channels/nope/Webhooks");
    let (st, e) = app.get(&missing).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_twilio_error(&e, 404, 20404);
    let (st, _) = app.post(&missing, WEBHOOK).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.get(&format!("{list}/WH123")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // deleting the channel removes its webhooks
    let (st, _) = app
        .delete(&format!("/v2/Services/{service}/Channels/hooks"))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app.get(&one).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

both_backends!(
    webhook_crud_and_wire_shape,
    invalid_webhooks_get_their_chat_error_codes,
    a_sixth_webhook_is_refused_and_pages_hold_at_most_five,
    webhooks_of_another_account_or_a_missing_channel_are_404,
);
