use axum::http::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{assert_twilio_error, Backend, TestApp};

fn sids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["sid"].as_str().unwrap().to_owned())
        .collect()
}

async fn users_page_through_every_row_once_in_creation_order(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let mut created = Vec::new();
    for i in 0..23 {
        created.push(
            app.create_user(&service, &format!("user-{i:02}")).await["sid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (items, pages) = app
        .collect_all(&format!("/v2/Services/{service}/Users?PageSize=5"))
        .await;
    assert_eq!(pages, 5);
    assert_eq!(sids(&items), created);
}

async fn oversized_page_size_is_clamped_and_meta_is_complete(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let (s, v) = app
        .get(&format!("/v2/Services/{service}/Users?PageSize=5000"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let meta = &v["meta"];
    assert_eq!(meta["page_size"], 100);
    assert_eq!(meta["page"], 0);
    assert_eq!(meta["key"], "users");
    assert_eq!(
        meta["first_page_url"],
        format!(
            "{}/v2/Services/{service}/Users?PageSize=100&Page=0",
            app.base
        )
    );
    assert_eq!(meta["url"], meta["first_page_url"]);
    assert_eq!(meta["previous_page_url"], Value::Null);
    assert_eq!(meta["next_page_url"], Value::Null);
    let (s, v) = app.get("/v2/Credentials?PageSize=5000").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["meta"]["page_size"], 1000);
}

async fn pages_stay_stable_when_rows_change_between_requests(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let mut all = Vec::new();
    for i in 0..10 {
        all.push(
            app.create_user(&service, &format!("u{i}")).await["sid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (_, p1) = app
        .get(&format!("/v2/Services/{service}/Users?PageSize=4"))
        .await;
    assert_eq!(sids(p1["users"].as_array().unwrap()), all[0..4]);
    // Delete a row already seen and one not yet seen; add a new row.
    app.delete(&format!("/v2/Services/{service}/Users/{}", all[1]))
        .await;
    app.delete(&format!("/v2/Services/{service}/Users/{}", all[6]))
        .await;
    let added = app.create_user(&service, "late").await["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let next = app.local(p1["meta"]["next_page_url"].as_str().unwrap());
    let (rest, _) = app.collect_all(&next).await;
    let mut expected: Vec<String> = all[4..].iter().filter(|s| **s != all[6]).cloned().collect();
    expected.push(added);
    assert_eq!(sids(&rest), expected, "no duplicates, no skipped survivors");
}

async fn previous_page_url_leads_back(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    for i in 0..6 {
        app.create_user(&service, &format!("u{i}")).await;
    }
    let (_, p1) = app
        .get(&format!("/v2/Services/{service}/Users?PageSize=2"))
        .await;
    let (_, p2) = app
        .get(&app.local(p1["meta"]["next_page_url"].as_str().unwrap()))
        .await;
    assert_eq!(p2["meta"]["page"], 1);
    let (_, p3) = app
        .get(&app.local(p2["meta"]["next_page_url"].as_str().unwrap()))
        .await;
    assert_eq!(p3["meta"]["next_page_url"], Value::Null, "last page");
    let (_, back) = app
        .get(&app.local(p3["meta"]["previous_page_url"].as_str().unwrap()))
        .await;
    assert_eq!(back["users"], p2["users"]);
    assert_eq!(back["meta"]["page"], 1);
}

async fn forged_or_foreign_page_tokens_are_400(b: Backend) {
    let app = TestApp::spawn(b).await;
    let s1 = app.create_service("a").await;
    let s2 = app.create_service("b").await;
    for i in 0..3 {
        app.create_user(&s1, &format!("u{i}")).await;
    }
    let (_, p1) = app
        .get(&format!("/v2/Services/{s1}/Users?PageSize=1"))
        .await;
    let next = app.local(p1["meta"]["next_page_url"].as_str().unwrap());
    let token = next.split("PageToken=").nth(1).unwrap().to_owned();
    // Forge: change one character inside the MAC (never the same character).
    let mut forged: Vec<char> = token.chars().collect();
    let at = forged.len() - 6;
    forged[at] = if forged[at] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    assert_ne!(forged, token);
    for bad in [
        format!("/v2/Services/{s2}/Users?PageToken={token}"),
        format!("/v2/Services/{s1}/Users?PageToken={forged}"),
        format!("/v2/Services/{s1}/Users?PageToken=PTgarbage"),
        format!("/v2/Services/{s1}/Users?PageSize=0"),
        format!("/v2/Services/{s1}/Users?PageSize=lots"),
    ] {
        let (s, v) = app.get(&bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_twilio_error(&v, 400, 20001);
    }
}

async fn bindings_page_through_many_users(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    app.create_credential("apn").await;
    for i in 0..12 {
        app.register(
            &service,
            &format!("u{i}"),
            &[("BindingType", "apn"), ("Address", &format!("d{i}"))],
        )
        .await;
    }
    let (items, pages) = app
        .collect_all(&format!(
            "/v2/Services/{service}/Bindings?PageSize=5&BindingType=apn"
        ))
        .await;
    assert_eq!(items.len(), 12);
    assert_eq!(pages, 3);
    let mut uniq = sids(&items);
    uniq.dedup();
    assert_eq!(uniq.len(), 12);
}

/// Walk the list at `first` by `next_page_url` to its end and back by `previous_page_url`,
/// checking every meta URL names the list as `canonical` (the path as the server spells it).
/// Returns the SIDs seen forward (`key_field` of each item).
async fn walk_and_check_urls(
    app: &TestApp,
    first: &str,
    canonical: &str,
    key_field: &str,
) -> Vec<String> {
    let prefix = format!("{}{canonical}?", app.base);
    let check = |v: &Value| {
        let meta = &v["meta"];
        for name in [
            "first_page_url",
            "url",
            "next_page_url",
            "previous_page_url",
        ] {
            if let Some(url) = meta[name].as_str() {
                assert!(url.starts_with(&prefix), "{name} {url} names {canonical}");
            }
        }
    };
    let (s, v) = app.get(first).await;
    assert_eq!(s, StatusCode::OK, "{first}: {v}");
    check(&v);
    let key = v["meta"]["key"].as_str().unwrap().to_owned();
    let mut pages = vec![v];
    while let Some(next) = pages.last().unwrap()["meta"]["next_page_url"].as_str() {
        let (s, v) = app.get(&app.local(next)).await;
        assert_eq!(s, StatusCode::OK, "{next}: {v}");
        check(&v);
        pages.push(v);
        assert!(pages.len() < 100, "runaway paging");
    }
    let mut back = vec![pages.last().unwrap().clone()];
    while let Some(prev) = back.last().unwrap()["meta"]["previous_page_url"].as_str() {
        let (s, v) = app.get(&app.local(prev)).await;
        assert_eq!(s, StatusCode::OK, "{prev}: {v}");
        check(&v);
        back.push(v);
        assert!(back.len() < 100, "runaway paging");
    }
    back.reverse();
    let items = |p: &[Value]| -> Vec<Value> { p.iter().map(|v| v[&key].clone()).collect() };
    assert_eq!(
        items(&back),
        items(&pages),
        "back by previous_page_url: the same pages"
    );
    pages
        .iter()
        .flat_map(|v| v[&key].as_array().unwrap().clone())
        .map(|i| i[key_field].as_str().unwrap().to_owned())
        .collect()
}

/// A list under a user named by identity (or a channel named by unique name) keeps that name in
/// its page URLs, percent-encoded one way however the request spelled it, and its tokens stay
/// valid along `next_page_url` and `previous_page_url`; named by SID, the SID stays.
async fn page_urls_keep_the_name_the_list_was_requested_by(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let identity = "ann lee@x/y";
    let user = app.create_user(&service, identity).await["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut channels = Vec::new();
    for i in 0..5 {
        let (s, c) = app
            .post(
                &format!("/v2/Services/{service}/Channels"),
                &[("UniqueName", &format!("room {i}/x"))],
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        let channel = c["sid"].as_str().unwrap().to_owned();
        let (s, m) = app
            .post(
                &format!("/v2/Services/{service}/Channels/{channel}/Members"),
                &[("Identity", identity)],
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{m}");
        channels.push(channel);
    }
    for body in ["one", "two", "three", "four", "five"] {
        let (s, m) = app
            .post(
                &format!("/v2/Services/{service}/Channels/{}/Messages", channels[0]),
                &[("Body", body)],
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{m}");
    }

    let by_identity = format!("/v2/Services/{service}/Users/ann%20lee%40x%2Fy/Channels");
    let by_sid = format!("/v2/Services/{service}/Users/{user}/Channels");
    for (requested, canonical) in [
        (by_identity.clone(), by_identity.clone()),
        (
            format!("/v2/Services/{service}/Users/ann%20lee@x%2fy/Channels"),
            by_identity.clone(),
        ),
        (by_sid.clone(), by_sid.clone()),
    ] {
        let seen = walk_and_check_urls(
            &app,
            &format!("{requested}?PageSize=2"),
            &canonical,
            "channel_sid",
        )
        .await;
        let mut expected = channels.clone();
        expected.sort();
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(
            sorted, expected,
            "{requested}: every channel of the user once"
        );
    }

    let messages = format!("/v2/Services/{service}/Channels/room%200%2Fx/Messages");
    for order in ["asc", "desc"] {
        let seen = walk_and_check_urls(
            &app,
            &format!("{messages}?Order={order}&PageSize=2"),
            &messages,
            "sid",
        )
        .await;
        assert_eq!(seen.len(), 5, "{order}: every message once");
    }
}

both_backends!(
    users_page_through_every_row_once_in_creation_order,
    oversized_page_size_is_clamped_and_meta_is_complete,
    pages_stay_stable_when_rows_change_between_requests,
    previous_page_url_leads_back,
    forged_or_foreign_page_tokens_are_400,
    bindings_page_through_many_users,
    page_urls_keep_the_name_the_list_was_requested_by,
);
