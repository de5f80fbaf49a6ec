//! Push delivery end to end: REST writes → events → worker → fake APNs/FCM (real protocols).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use parley_core::credential::{Credential, PushType};
use parley_core::CredentialSid;
use parley_fakes::{FakeMode, Fakes};
use parley_push::WorkerConfig;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{
    assert_twilio_error, service_account_json, sorted_keys, Backend, TestApp, CREDENTIAL_FIELDS,
};

const P8: &str = include_str!("../../../parley-push/tests/fixtures/TEST-ONLY-apns-authkey.p8");
const SA_KEY: &str = include_str!("../../../parley-push/tests/fixtures/TEST-ONLY-fcm-sa-key.pem");

/// An APNs token-auth credential and an FCM service-account credential, through REST.
async fn credentials(app: &TestApp, fakes: &Fakes) -> (String, String) {
    let apns_secret =
        json!({"key_id": "KEY1234567", "team_id": "TEAM123456", "topic": "com.example.chat"})
            .to_string();
    let (s, apn) = app
        .post(
            "/v2/Credentials",
            &[
                ("Type", "apn"),
                ("PrivateKey", P8),
                ("Secret", &apns_secret),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{apn}");
    let sa = json!({
        "type": "service_account", "project_id": "demo-project", "private_key_id": "kid",
        "private_key": SA_KEY, "client_email": "push@demo-project.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": fakes.token_uri,
    })
    .to_string();
    let (s, fcm) = app
        .post("/v2/Credentials", &[("Type", "fcm"), ("Secret", &sa)])
        .await;
    assert_eq!(s, StatusCode::CREATED, "{fcm}");
    (
        apn["sid"].as_str().unwrap().to_owned(),
        fcm["sid"].as_str().unwrap().to_owned(),
    )
}

async fn enable(app: &TestApp, service: &str, extra: &[(&str, &str)]) {
    let mut form = vec![
        ("Notifications.NewMessage.Enabled", "true"),
        ("Notifications.LogEnabled", "true"),
    ];
    form.extend_from_slice(extra);
    let (s, v) = app.post(&format!("/v2/Services/{service}"), &form).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn bind(app: &TestApp, service: &str, identity: &str, kind: &str, token: &str) -> String {
    let (s, v) = app
        .register(
            service,
            identity,
            &[("BindingType", kind), ("Address", token)],
        )
        .await;
    assert!(s == StatusCode::CREATED || s == StatusCode::OK, "{v}");
    v["sid"].as_str().unwrap().to_owned()
}

async fn join(app: &TestApp, service: &str, channel: &str, identity: &str) {
    let (s, v) = app
        .post(
            &format!("/v2/Services/{service}/Channels/{channel}/Members"),
            &[("Identity", identity)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn post(app: &TestApp, service: &str, channel: &str, from: &str, body: &str) -> Value {
    let (s, v) = app
        .post(
            &format!("/v2/Services/{service}/Channels/{channel}/Messages"),
            &[("From", from), ("Body", body)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

fn tokens(fakes: &Fakes) -> Vec<String> {
    let mut t: Vec<String> = fakes
        .apns
        .requests()
        .into_iter()
        .chain(fakes.fcm.requests())
        .filter_map(|r| r.device_token)
        .collect();
    t.sort();
    t
}

async fn a_message_reaches_every_other_members_devices_with_twilios_payloads(b: Backend) {
    let (app, worker, fakes) = TestApp::spawn_push(b, WorkerConfig::default()).await;
    let service = app.create_service("s").await;
    credentials(&app, &fakes).await;
    enable(
        &app,
        &service,
        &[
            ("Notifications.NewMessage.Sound", "ding.caf"),
            ("Notifications.NewMessage.BadgeCountEnabled", "true"),
        ],
    )
    .await;
    let (s, ch) = app
        .post(
            &format!("/v2/Services/{service}/Channels"),
            &[("UniqueName", "general"), ("FriendlyName", "General")],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    for who in ["alice", "bob", "carol", "dave"] {
        join(&app, &service, "general", who).await;
    }
    bind(&app, &service, "alice", "apn", "aaaa1111").await;
    bind(&app, &service, "alice", "fcm", "fcm-alice").await;
    bind(&app, &service, "bob", "apn", "bbbb2222").await;
    bind(&app, &service, "carol", "fcm", "fcm-carol").await;
    bind(&app, &service, "dave", "apn", "dddd4444").await;
    // carol mutes the channel; dave is the author.
    let (s, _) = app
        .post(
            &format!("/v2/Services/{service}/Users/carol/Channels/general"),
            &[("NotificationLevel", "muted")],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let msg = post(&app, &service, "general", "dave", "hello").await;
    worker.drain().await.unwrap();

    assert_eq!(
        tokens(&fakes),
        vec!["aaaa1111", "bbbb2222", "fcm-alice"],
        "author and muted member get nothing"
    );
    let apns = fakes.apns.requests();
    let a = apns
        .iter()
        .find(|r| r.device_token.as_deref() == Some("aaaa1111"))
        .unwrap();
    assert_eq!(a.path, "/3/device/aaaa1111");
    assert_eq!(a.headers["apns-topic"], "com.example.chat");
    assert_eq!(a.headers["apns-push-type"], "alert");
    assert!(a.headers["authorization"].starts_with("bearer "));
    let body = &a.body;
    assert_eq!(body["aps"]["alert"]["body"], "general;dave: hello");
    assert_eq!(body["aps"]["sound"], "ding.caf");
    assert_eq!(body["aps"]["badge"], 0, "no unread two-member channels");
    assert_eq!(body["twi_message_type"], "twilio.channel.new_message");
    assert_eq!(body["channel_sid"], ch["sid"]);
    assert_eq!(body["message_sid"], msg["sid"]);
    assert_eq!(body["author"], "dave");
    let fcm = fakes.fcm.requests();
    let f = fcm
        .iter()
        .find(|r| r.device_token.as_deref() == Some("fcm-alice"))
        .unwrap();
    assert_eq!(f.path, "/v1/projects/demo-project/messages:send");
    assert!(f.headers["authorization"].starts_with("Bearer "));
    let data = &f.body["message"]["data"];
    assert_eq!(data["twi_body"], "general;dave: hello");
    assert_eq!(data["twi_message_type"], "twilio.channel.new_message");
    assert_eq!(data["message_index"], "0", "FCM data values are strings");
    assert_eq!(data["channel_sid"], ch["sid"]);
    assert_eq!(data["twi_sound"], "ding.caf");
    assert_eq!(f.body["message"]["android"]["ttl"], "86400s");
    // Sends carry stable ids: a repeat would be recognisable.
    assert!(!a.headers["apns-id"].is_empty());
    // The delivery log (LogEnabled) shows the three deliveries.
    let (s, log) = app.get(&format!("/v2/Services/{service}/PushLog")).await;
    assert_eq!(s, StatusCode::OK, "{log}");
    let rows = log["push_log"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{log}");
    assert!(rows
        .iter()
        .all(|r| r["outcome"] == "delivered" && r["type"] == "new_message" && r["attempt"] == 1));
}

async fn disabled_types_and_unsubscribed_bindings_get_nothing(b: Backend) {
    let (app, worker, fakes) = TestApp::spawn_push(b, WorkerConfig::default()).await;
    let service = app.create_service("s").await;
    credentials(&app, &fakes).await;
    let (_, ch) = app
        .post(&format!("/v2/Services/{service}/Channels"), &[])
        .await;
    let ch = ch["sid"].as_str().unwrap().to_owned();
    bind(&app, &service, "erin", "apn", "eeee5555").await;
    join(&app, &service, &ch, "erin").await; // added_to_channel: disabled by default
    post(&app, &service, &ch, "system", "nobody is told").await; // new_message: disabled
    worker.drain().await.unwrap();
    assert!(tokens(&fakes).is_empty());
    // Enable added_to_channel; frank's binding only wants new_message.
    app.post(
        &format!("/v2/Services/{service}"),
        &[("Notifications.AddedToChannel.Enabled", "true")],
    )
    .await;
    app.register(
        &service,
        "frank",
        &[
            ("BindingType", "apn"),
            ("Address", "ffff6666"),
            ("MessageTypes", "new_message"),
        ],
    )
    .await;
    bind(&app, &service, "gina", "fcm", "fcm-gina").await;
    join(&app, &service, &ch, "frank").await;
    join(&app, &service, &ch, "gina").await;
    worker.drain().await.unwrap();
    assert_eq!(
        tokens(&fakes),
        vec!["fcm-gina"],
        "{:?}",
        fakes.apns.requests()
    );
    let r = fakes
        .fcm
        .requests()
        .into_iter()
        .find(|r| r.device_token.is_some())
        .unwrap();
    assert_eq!(
        r.body["message"]["data"]["twi_message_type"],
        "twilio.channel.added_to_channel"
    );
}

async fn dead_token_answers_prune_their_bindings(b: Backend) {
    let (app, worker, fakes) = TestApp::spawn_push(b, WorkerConfig::default()).await;
    let service = app.create_service("s").await;
    credentials(&app, &fakes).await;
    enable(&app, &service, &[]).await;
    let (_, ch) = app
        .post(&format!("/v2/Services/{service}/Channels"), &[])
        .await;
    let ch = ch["sid"].as_str().unwrap().to_owned();
    let cases = [
        ("u1", "apn", "dead-1"),
        ("u2", "apn", "badtoken-2"),
        ("u3", "apn", "wrongtopic-3"),
        ("u4", "fcm", "dead-4"),
        ("u5", "fcm", "badtoken-5"),
        ("u6", "apn", "healthy-6"),
    ];
    let mut sids = HashMap::new();
    for (who, kind, token) in cases {
        join(&app, &service, &ch, who).await;
        sids.insert(token, bind(&app, &service, who, kind, token).await);
    }
    post(&app, &service, &ch, "system", "ping").await;
    worker.drain().await.unwrap();
    assert_eq!(tokens(&fakes).len(), 6, "each device was tried once");
    for (_, _, token) in cases {
        let (s, _) = app
            .get(&format!("/v2/Services/{service}/Bindings/{}", sids[token]))
            .await;
        let expected = if token.starts_with("healthy") {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(s, expected, "{token}");
    }
    let (_, log) = app
        .get(&format!("/v2/Services/{service}/PushLog?PageSize=2"))
        .await;
    assert_eq!(log["push_log"].as_array().unwrap().len(), 2);
    let (all, _) = app
        .collect_all(&format!("/v2/Services/{service}/PushLog?PageSize=2"))
        .await;
    assert_eq!(
        all.iter().filter(|r| r["outcome"] == "dead_token").count(),
        5
    );
}

async fn rate_limited_sends_wait_for_retry_after(b: Backend) {
    let (app, worker, fakes) = TestApp::spawn_push(b, WorkerConfig::default()).await;
    let service = app.create_service("s").await;
    credentials(&app, &fakes).await;
    enable(&app, &service, &[]).await;
    let (_, ch) = app
        .post(&format!("/v2/Services/{service}/Channels"), &[])
        .await;
    let ch = ch["sid"].as_str().unwrap().to_owned();
    join(&app, &service, &ch, "rita").await;
    bind(&app, &service, "rita", "apn", "ratelimit-7").await;
    fakes.apns.set_retry_after(2);
    post(&app, &service, &ch, "system", "later").await;
    worker.drain().await.unwrap();
    assert_eq!(fakes.apns.requests().len(), 1);
    assert_eq!(fakes.apns.requests()[0].status, 429);
    worker.drain().await.unwrap();
    assert_eq!(
        fakes.apns.requests().len(),
        1,
        "not retried before Retry-After"
    );
    fakes.apns.set_token_mode("ratelimit-7", FakeMode::Normal);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    worker.drain().await.unwrap();
    let reqs = fakes.apns.requests();
    assert_eq!(reqs.len(), 2, "retried once Retry-After passed");
    assert_eq!(reqs[1].status, 200);
    assert_eq!(
        reqs[0].headers["apns-id"], reqs[1].headers["apns-id"],
        "a repeat keeps its apns-id"
    );
}

async fn a_crashed_worker_loses_nothing_and_two_workers_send_once(b: Backend) {
    let config = WorkerConfig {
        lease: Duration::from_secs(1),
        ..WorkerConfig::default()
    };
    let (app, worker, fakes) = TestApp::spawn_push(b, config.clone()).await;
    let service = app.create_service("s").await;
    credentials(&app, &fakes).await;
    enable(&app, &service, &[]).await;
    let (_, ch) = app
        .post(&format!("/v2/Services/{service}/Channels"), &[])
        .await;
    let ch = ch["sid"].as_str().unwrap().to_owned();
    let n = 60;
    for i in 0..n {
        let who = format!("m{i:03}");
        join(&app, &service, &ch, &who).await;
        bind(
            &app,
            &service,
            &who,
            if i % 2 == 0 { "apn" } else { "fcm" },
            &format!("tok-{i:03}"),
        )
        .await;
    }
    // Node A fans out, claims every delivery and dies before sending.
    post(&app, &service, &ch, "system", "first").await;
    while worker.fanout_once().await.unwrap() > 0 {}
    let now = parley_core::Timestamp::now();
    let claimed = app
        .store
        .claim_deliveries(now, now.plus_secs(1), 1000)
        .await
        .unwrap();
    assert_eq!(claimed.len(), n);
    // Node B sees nothing while the lease holds, everything after.
    let node_b = app.second_worker(&fakes, config.clone());
    node_b.drain().await.unwrap();
    assert!(tokens(&fakes).is_empty());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    node_b.drain().await.unwrap();
    let expected: Vec<String> = (0..n).map(|i| format!("tok-{i:03}")).collect();
    assert_eq!(tokens(&fakes), expected, "every device exactly once");
    // Two nodes draining the same queue at once send each notification once.
    fakes.apns.clear();
    fakes.fcm.clear();
    post(&app, &service, &ch, "system", "second").await;
    let node_c = app.second_worker(&fakes, config);
    let (r1, r2) = tokio::join!(node_b.drain(), node_c.drain());
    r1.unwrap();
    r2.unwrap();
    worker.drain().await.unwrap();
    assert_eq!(tokens(&fakes), expected, "no duplicates across nodes");
}

async fn test_notification_answers_the_providers_verdict(b: Backend) {
    let (app, _worker, fakes) = TestApp::spawn_push(b, WorkerConfig::default()).await;
    let service = app.create_service("s").await;
    credentials(&app, &fakes).await;
    let good = bind(&app, &service, "tess", "fcm", "fcm-tess").await;
    let dead = bind(&app, &service, "tess", "apn", "dead-99").await;
    let (s, v) = app
        .post(
            &format!("/v2/Services/{service}/Bindings/{good}/Test"),
            &[("Body", "hi")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["outcome"], "delivered");
    let sent = fakes
        .fcm
        .requests()
        .into_iter()
        .find(|r| r.device_token.is_some())
        .unwrap();
    assert_eq!(sent.body["message"]["data"]["twi_body"], "hi");
    let (_, v) = app
        .post(&format!("/v2/Services/{service}/Bindings/{dead}/Test"), &[])
        .await;
    assert_eq!(
        v["outcome"],
        "invalid_token",
        "{v} {:?}",
        fakes.apns.requests()
    );
    let (s, _) = app
        .post(
            &format!("/v2/Services/{service}/Bindings/BS00000000000000000000000000000000/Test"),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn a_large_fan_out_never_blocks_the_request(b: Backend) {
    let (app, worker, fakes) = TestApp::spawn_push(b, WorkerConfig::default()).await;
    // Every device answers only after 3 s, so sending to all 40 takes seconds.
    fakes.fcm.set_delay(Duration::from_secs(3));
    let app = Arc::new(app);
    let service = app.create_service("s").await;
    credentials(&app, &fakes).await;
    enable(&app, &service, &[]).await;
    let (_, ch) = app
        .post(&format!("/v2/Services/{service}/Channels"), &[])
        .await;
    let ch = ch["sid"].as_str().unwrap().to_owned();
    for i in 0..40 {
        let who = format!("w{i}");
        join(&app, &service, &ch, &who).await;
        bind(&app, &service, &who, "fcm", &format!("slow-w{i}")).await;
    }
    // The worker runs while the message is posted.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.clone().run(async move {
        let _ = stopped.await;
    }));
    // The message is stored and answered while its pushes are still queued or in flight: had
    // the request waited for the fan-out and the sends, nothing would be left in the queue.
    post(&app, &service, &ch, "system", "big").await;
    let answered = app.store.push_queue_depth().await.unwrap();
    assert_ne!(answered, (0, 0), "the request waited for its pushes");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while tokens(&fakes).len() < 40 || app.store.push_queue_depth().await.unwrap() != (0, 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "sent: {}",
            tokens(&fakes).len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    running.await.unwrap();
    assert_eq!(tokens(&fakes).len(), 40);
}

/// The running worker (both stages side by side) writes a large fan-out in chunks and sends it
/// while it is being written: every device gets the message exactly once, nothing is left.
async fn a_chunked_fan_out_reaches_each_device_once_with_the_worker_running(b: Backend) {
    let config = WorkerConfig {
        fanout_chunk: 7,
        ..WorkerConfig::default()
    };
    let (app, worker, fakes) = TestApp::spawn_push(b, config).await;
    let service = app.create_service("s").await;
    credentials(&app, &fakes).await;
    enable(&app, &service, &[]).await;
    let (_, ch) = app
        .post(&format!("/v2/Services/{service}/Channels"), &[])
        .await;
    let ch = ch["sid"].as_str().unwrap().to_owned();
    let n = 30;
    for i in 0..n {
        let who = format!("c{i:03}");
        join(&app, &service, &ch, &who).await;
        let kind = if i % 2 == 0 { "apn" } else { "fcm" };
        bind(&app, &service, &who, kind, &format!("tok-{i:03}")).await;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.clone().run(async move {
        let _ = stopped.await;
    }));

    post(&app, &service, &ch, "system", "chunked").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokens(&fakes).len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "sent: {}",
            tokens(&fakes).len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    running.await.unwrap();

    let expected: Vec<String> = (0..n).map(|i| format!("tok-{i:03}")).collect();
    assert_eq!(tokens(&fakes), expected, "every device exactly once");
    assert_eq!(app.store.push_queue_depth().await.unwrap(), (0, 0));
}

/// Deleting a user writes a `removed_from_channel` event per membership, like leaving does; the
/// user's bindings are deleted with it, so its devices get no push for those events (and no
/// one else is addressed), while leaving a channel while the user exists does push.
async fn deleting_a_user_writes_removed_events_but_its_devices_are_gone(b: Backend) {
    let (app, worker, fakes) = TestApp::spawn_push(b, WorkerConfig::default()).await;
    let service = app.create_service("s").await;
    credentials(&app, &fakes).await;
    let form = [("Notifications.RemovedFromChannel.Enabled", "true")];
    let (s, v) = app.post(&format!("/v2/Services/{service}"), &form).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let channels = format!("/v2/Services/{service}/Channels");
    for name in ["left", "kept1", "kept2"] {
        let (s, v) = app.post(&channels, &[("UniqueName", name)]).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    bind(&app, &service, "alice", "apn", "aaaa1111").await;
    bind(&app, &service, "bob", "fcm", "fcm-bob").await;
    for ch in ["left", "kept1", "kept2"] {
        join(&app, &service, ch, "alice").await;
    }
    join(&app, &service, "kept1", "bob").await;
    worker.drain().await.unwrap();
    fakes.apns.clear();
    fakes.fcm.clear();

    let (s, v) = app.delete(&format!("{channels}/left/Members/alice")).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    worker.drain().await.unwrap();
    assert_eq!(
        tokens(&fakes),
        vec!["aaaa1111"],
        "leaving pushes to the user"
    );
    fakes.apns.clear();
    let (s, v) = app
        .delete(&format!("/v2/Services/{service}/Users/alice"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    worker.drain().await.unwrap();

    let sid = parley_core::ServiceSid::parse(&service).unwrap();
    let events = app.store.list_events(&sid, 0, 100).await.unwrap();
    let mut removed: Vec<(String, Option<String>)> = events
        .iter()
        .filter(|e| e.kind == parley_core::event::EventKind::RemovedFromChannel)
        .map(|e| {
            (
                e.channel_unique_name.clone().unwrap_or_default(),
                e.identity.clone(),
            )
        })
        .collect();
    let alice = Some("alice".to_owned());
    removed.sort();
    assert_eq!(
        removed,
        vec![
            ("kept1".to_owned(), alice.clone()),
            ("kept2".to_owned(), alice.clone()),
            ("left".to_owned(), alice.clone()),
        ],
        "one event per membership, as leaving"
    );
    assert!(
        tokens(&fakes).is_empty(),
        "the deleted user's devices are gone"
    );
    assert_eq!(app.store.push_queue_depth().await.unwrap(), (0, 0));
    let (_, kept1) = app.get(&format!("{channels}/kept1")).await;
    assert_eq!(kept1["members_count"], 1);
}

/// Sends to each token (by device token) so far.
fn sent_to(fakes: &Fakes, token: &str) -> usize {
    tokens(fakes).iter().filter(|t| t.as_str() == token).count()
}

async fn push_log(app: &TestApp, service: &str) -> Vec<Value> {
    app.collect_all(&format!("/v2/Services/{service}/PushLog?PageSize=50"))
        .await
        .0
}

async fn binding_exists(app: &TestApp, service: &str, sid: &str) -> bool {
    let (s, _) = app
        .get(&format!("/v2/Services/{service}/Bindings/{sid}"))
        .await;
    s == StatusCode::OK
}

/// Drain the worker (again and again, for deliveries waiting for their time) until `done`.
async fn drain_until(
    worker: &Arc<parley_push::Worker>,
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        worker.drain().await.unwrap();
        if done() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A channel with one member per (identity, type, token); returns the channel and the bindings.
async fn world(
    app: &TestApp,
    service: &str,
    members: &[(&str, &str, &str)],
) -> (String, HashMap<String, String>) {
    let (_, ch) = app
        .post(&format!("/v2/Services/{service}/Channels"), &[])
        .await;
    let ch = ch["sid"].as_str().unwrap().to_owned();
    let mut sids = HashMap::new();
    for (who, kind, token) in members {
        join(app, service, &ch, who).await;
        sids.insert(
            (*token).to_owned(),
            bind(app, service, who, kind, token).await,
        );
    }
    (ch, sids)
}

/// FCM `SENDER_ID_MISMATCH` is about one token: the push fails, the binding stays, and the
/// credential's other deliveries go on at once (it is not paused).
async fn a_sender_id_mismatch_does_not_pause_the_credential(b: Backend) {
    let (app, worker, fakes) = TestApp::spawn_push(b, WorkerConfig::default()).await;
    let service = app.create_service("s").await;
    credentials(&app, &fakes).await;
    enable(&app, &service, &[]).await;
    let (ch, sids) = world(
        &app,
        &service,
        &[("u1", "fcm", "wrongtopic-1"), ("u2", "fcm", "fcm-ok-2")],
    )
    .await;
    post(&app, &service, &ch, "system", "one").await;
    worker.drain().await.unwrap();
    post(&app, &service, &ch, "system", "two").await;
    worker.drain().await.unwrap();

    assert_eq!(
        sent_to(&fakes, "fcm-ok-2"),
        2,
        "the credential kept sending"
    );
    assert_eq!(
        sent_to(&fakes, "wrongtopic-1"),
        2,
        "tried once per message, not retried"
    );
    assert!(binding_exists(&app, &service, &sids["wrongtopic-1"]).await);
    let log = push_log(&app, &service).await;
    let mismatch: Vec<&Value> = log
        .iter()
        .filter(|r| r["binding_sid"] == sids["wrongtopic-1"].as_str())
        .collect();
    assert_eq!(mismatch.len(), 2, "{log:?}");
    assert!(mismatch.iter().all(|r| r["outcome"] == "failed"
        && r["reason"].as_str().unwrap().contains("SENDER_ID_MISMATCH")));
    assert!(!log
        .iter()
        .any(|r| r["outcome"] == "paused" || r["outcome"] == "credential_failed"));
}

/// A credential the provider refuses (403) is paused: its other deliveries wait (logged as
/// `paused`, not sent, bindings kept) while other credentials' deliveries go on; after the pause
/// they are sent.
async fn a_failing_credential_pauses_only_its_own_deliveries(b: Backend) {
    let config = WorkerConfig {
        unhealthy_for: Duration::from_secs(1),
        ..WorkerConfig::default()
    };
    let (app, worker, fakes) = TestApp::spawn_push(b, config).await;
    let service = app.create_service("s").await;
    credentials(&app, &fakes).await;
    enable(&app, &service, &[]).await;
    let (ch, mut sids) = world(&app, &service, &[("u1", "fcm", "forbidden-1")]).await;
    // Only the refused token gets the first message (the others are not members yet).
    post(&app, &service, &ch, "system", "one").await;
    drain_until(&worker, "the refusal", || {
        sent_to(&fakes, "forbidden-1") == 1
    })
    .await;
    for (who, kind, token) in [("u2", "fcm", "fcm-ok-2"), ("u3", "apn", "apn-ok-3")] {
        join(&app, &service, &ch, who).await;
        sids.insert(
            token.to_owned(),
            bind(&app, &service, who, kind, token).await,
        );
    }
    fakes.fcm.clear();
    fakes.apns.clear();
    post(&app, &service, &ch, "system", "two").await;
    worker.drain().await.unwrap();

    assert_eq!(
        sent_to(&fakes, "apn-ok-3"),
        1,
        "another credential is not paused"
    );
    assert_eq!(
        sent_to(&fakes, "fcm-ok-2"),
        0,
        "the failing credential's sends wait"
    );
    assert!(
        binding_exists(&app, &service, &sids["forbidden-1"]).await,
        "bindings are kept"
    );
    let log = push_log(&app, &service).await;
    assert!(
        log.iter().any(|r| r["outcome"] == "credential_failed"
            && r["binding_sid"] == sids["forbidden-1"].as_str()),
        "{log:?}"
    );
    assert!(
        log.iter().any(|r| r["outcome"] == "paused"
            && r["binding_sid"] == sids["fcm-ok-2"].as_str()
            && r["reason"].as_str().unwrap().contains("PERMISSION_DENIED")),
        "{log:?}"
    );
    // The provider accepts the credential again: after the pause the waiting push is sent.
    fakes.fcm.set_token_mode("forbidden-1", FakeMode::Normal);
    drain_until(&worker, "the paused delivery", || {
        sent_to(&fakes, "fcm-ok-2") == 1
    })
    .await;
}

/// A credential answering "bad device token" for `bad_token_threshold` distinct tokens with
/// no success in between is misconfigured: the rest of its bindings are kept, it is reported
/// unhealthy with a reason that says so, and pruning resumes once a send succeeds.
async fn a_misconfigured_credential_does_not_delete_its_bindings(b: Backend) {
    let config = WorkerConfig {
        unhealthy_for: Duration::from_millis(500),
        bad_token_threshold: 3,
        ..WorkerConfig::default()
    };
    let (app, worker, fakes) = TestApp::spawn_push(b, config).await;
    let service = app.create_service("s").await;
    credentials(&app, &fakes).await;
    enable(&app, &service, &[]).await;
    let members: Vec<(String, String)> = (1..=6)
        .map(|i| (format!("u{i}"), format!("badtoken-{i}")))
        .collect();
    let refs: Vec<(&str, &str, &str)> = members
        .iter()
        .map(|(w, t)| (w.as_str(), "apn", t.as_str()))
        .collect();
    let (ch, sids) = world(&app, &service, &refs).await;
    post(&app, &service, &ch, "system", "hello").await;
    worker.drain().await.unwrap();

    let mut kept = Vec::new();
    for (_, token) in &members {
        if binding_exists(&app, &service, &sids[token]).await {
            kept.push(token.clone());
        }
    }
    assert_eq!(
        kept.len(),
        4,
        "only the first threshold-1 were pruned: {kept:?}"
    );
    let log = push_log(&app, &service).await;
    // Sends already under way answer too; those started after it was marked unhealthy wait.
    assert_eq!(
        log.iter().filter(|r| r["outcome"] == "dead_token").count(),
        2
    );
    let misconfigured: Vec<&Value> = log
        .iter()
        .filter(|r| r["outcome"] == "credential_failed")
        .collect();
    assert!(!misconfigured.is_empty(), "{log:?}");
    assert!(misconfigured[0]["reason"]
        .as_str()
        .unwrap()
        .contains("misconfigured"));

    // Fixed for all but one device: a success resumes pruning, and the last bad one is pruned.
    for token in &kept[..3] {
        fakes.apns.set_token_mode(token, FakeMode::Normal);
    }
    let last = kept[3].clone();
    let delivered = |token: &str| {
        fakes
            .apns
            .requests()
            .iter()
            .any(|r| r.device_token.as_deref() == Some(token) && r.status == 200)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        worker.drain().await.unwrap();
        let gone = !binding_exists(&app, &service, &sids[&last]).await;
        if gone && kept[..3].iter().all(|t| delivered(t)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pruning did not resume: {:?}",
            push_log(&app, &service).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for token in &kept[..3] {
        assert!(
            binding_exists(&app, &service, &sids[token]).await,
            "{token} kept"
        );
    }
}

/// A delivery that runs out of attempts is logged as given up and its push-log entry ends as
/// `failed`, not `retry`.
async fn a_delivery_given_up_ends_failed_in_the_push_log(b: Backend) {
    let config = WorkerConfig {
        retry: parley_push::RetryPolicy {
            base: Duration::from_millis(50),
            max_delay: Duration::from_millis(100),
            max_attempts: 2,
            max_age: Duration::from_secs(600),
        },
        ..WorkerConfig::default()
    };
    let (app, worker, fakes) = TestApp::spawn_push(b, config).await;
    let service = app.create_service("s").await;
    credentials(&app, &fakes).await;
    enable(&app, &service, &[]).await;
    let (ch, _) = world(&app, &service, &[("u1", "fcm", "unavailable-1")]).await;
    post(&app, &service, &ch, "system", "lost").await;
    drain_until(&worker, "two attempts", || {
        sent_to(&fakes, "unavailable-1") == 2
    })
    .await;
    worker.drain().await.unwrap();
    assert_eq!(
        app.store.push_queue_depth().await.unwrap(),
        (0, 0),
        "dropped"
    );
    let log = push_log(&app, &service).await;
    assert_eq!(log.len(), 2, "{log:?}");
    let last = log.iter().max_by_key(|r| r["attempt"].as_u64()).unwrap();
    assert_eq!(last["outcome"], "failed", "{log:?}");
    assert!(
        last["reason"].as_str().unwrap().contains("gave up"),
        "{last}"
    );
    assert!(log.iter().any(|r| r["outcome"] == "retry"));
    let (s, _, v) = app
        .call(axum::http::Method::GET, "/metrics", None, &[], &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    let text = v.as_str().unwrap();
    assert!(
        text.contains(r#"parley_push_given_up_total{provider="fcm"} 1"#),
        "{text}"
    );
}

/// A credential as `parley import twilio` writes it: Twilio's SID, name and type, no secret,
/// marked as needing it.
async fn imported_credential(app: &TestApp, kind: PushType) -> String {
    let now = parley_core::Timestamp::now();
    let credential = Credential {
        sid: CredentialSid::generate(),
        account_sid: app.account.sid.parse().unwrap(),
        friendly_name: Some("from twilio".to_owned()),
        credential_type: kind,
        sandbox: None,
        secrets_sealed: Vec::new(),
        needs_secret: true,
        date_created: now,
        date_updated: now,
    };
    app.store.create_credential(&credential).await.unwrap();
    credential.sid.to_string()
}

/// A credential imported without its secret reads like any other, but nothing goes through it
/// — the test endpoint answers 409 saying how to supply the secret, a message's push is a
/// credential failure with that reason and reaches no provider — until an update supplies the
/// secret (a rename is not enough); then both deliver, the waiting push included.
async fn a_credential_imported_without_its_secret_sends_nothing_until_it_is_supplied(b: Backend) {
    // Arrange
    let config = WorkerConfig {
        unhealthy_for: Duration::from_millis(300),
        ..WorkerConfig::default()
    };
    let (app, worker, fakes) = TestApp::spawn_push(b, config).await;
    let service = app.create_service("s").await;
    let cr = imported_credential(&app, PushType::Fcm).await;
    enable(&app, &service, &[]).await;
    let (ch, sids) = world(&app, &service, &[("ida", "fcm", "fcm-ida")]).await;
    let test = format!("/v2/Services/{service}/Bindings/{}/Test", sids["fcm-ida"]);
    let (_, binding) = app
        .get(&format!(
            "/v2/Services/{service}/Bindings/{}",
            sids["fcm-ida"]
        ))
        .await;
    assert_eq!(binding["credential_sid"], cr.as_str(), "{binding}");

    // Act + Assert: the credential reads as any credential
    let (s, fetched) = app.get(&format!("/v2/Credentials/{cr}")).await;
    assert_eq!(s, StatusCode::OK, "{fetched}");
    assert_eq!(
        sorted_keys(&fetched),
        CREDENTIAL_FIELDS,
        "chat.v2.credential's fields only: {fetched}"
    );
    assert_eq!(fetched["type"], "fcm");

    // Act + Assert: a test push is refused before any provider is contacted
    let (s, v) = app.post(&test, &[]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_twilio_error(&v, 409, 20409);
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("has no secret yet")
            && message.contains(&format!("POST /v2/Credentials/{cr} and Secret")),
        "{message}"
    );

    // Act + Assert: a message's push is a credential failure, sent nowhere
    post(&app, &service, &ch, "system", "before the secret").await;
    worker.drain().await.unwrap();
    assert_eq!(sent_to(&fakes, "fcm-ida"), 0);
    assert!(fakes.fcm.requests().is_empty(), "no request to FCM at all");
    let log = push_log(&app, &service).await;
    assert!(
        log.iter().any(|r| r["outcome"] == "credential_failed"
            && r["reason"].as_str().unwrap().contains("has no secret yet")),
        "{log:?}"
    );

    // Act + Assert: a rename keeps the mark
    let (s, v) = app
        .post(
            &format!("/v2/Credentials/{cr}"),
            &[("FriendlyName", "android")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["friendly_name"], "android");
    let (s, v) = app.post(&test, &[]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // Act + Assert: supplying the secret clears it; the waiting push goes out too
    let sa = service_account_json(&fakes.token_uri);
    let (s, v) = app
        .post(&format!("/v2/Credentials/{cr}"), &[("Secret", &sa)])
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app.post(&test, &[("Body", "hi")]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["outcome"], "delivered", "{v}");
    drain_until(&worker, "the waiting push", || {
        sent_to(&fakes, "fcm-ida") == 2
    })
    .await;
}

both_backends!(
    a_credential_imported_without_its_secret_sends_nothing_until_it_is_supplied,
    deleting_a_user_writes_removed_events_but_its_devices_are_gone,
    a_sender_id_mismatch_does_not_pause_the_credential,
    a_failing_credential_pauses_only_its_own_deliveries,
    a_misconfigured_credential_does_not_delete_its_bindings,
    a_delivery_given_up_ends_failed_in_the_push_log,
    a_chunked_fan_out_reaches_each_device_once_with_the_worker_running,
    a_message_reaches_every_other_members_devices_with_twilios_payloads,
    disabled_types_and_unsubscribed_bindings_get_nothing,
    dead_token_answers_prune_their_bindings,
    rate_limited_sends_wait_for_retry_after,
    a_crashed_worker_loses_nothing_and_two_workers_send_once,
    test_notification_answers_the_providers_verdict,
    a_large_fan_out_never_blocks_the_request,
);
