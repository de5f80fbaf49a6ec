//! The chat client API as the SDK calls it over the socket: requests go straight into
//! `parley_http::live::upstream_router()` with a `ClientContext` naming the caller (as the socket
//! sets it), on both backends. REST calls (through the real router) set things up and check
//! what a server-side user would see.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, Method, Request, StatusCode, Uri};
use axum::Router;
use helpers::{Backend, TestApp};
use http_body_util::BodyExt;
use parley_core::{AccountSid, ApiKeySid, ServiceSid};
use parley_http::access_token::ChatIdentity;
use parley_http::live::{names, ClientContext, Outbound};
use parley_http::{AppState, HttpConfig};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tower::ServiceExt;

struct World {
    app: TestApp,
    state: AppState,
    router: Router,
    svc: String,
}

struct Conn {
    ctx: ClientContext,
    rx: mpsc::Receiver<Outbound>,
}

async fn world(backend: Backend) -> World {
    world_with(backend, |s| s).await
}

async fn world_with(backend: Backend, f: impl FnOnce(AppState) -> AppState) -> World {
    let app = TestApp::spawn(backend).await;
    let svc = app.create_service("live").await;
    let config = HttpConfig {
        public_url: app.base.clone(),
        ..HttpConfig::default()
    };
    let state = f(AppState::new(
        app.store.clone(),
        app.secrets.clone(),
        config,
    ));
    let router = parley_http::live::upstream_router().with_state(state.clone());
    World {
        app,
        state,
        router,
        svc,
    }
}

impl World {
    /// A socket connection of `identity`, registered in the hub with its own queue.
    fn connect(&self, identity: &str) -> Conn {
        let (tx, rx) = mpsc::channel(64);
        let service = ServiceSid::parse(&self.svc).unwrap();
        let conn = self.state.live.register(
            service.clone(),
            identity.to_owned(),
            tx,
            Arc::new(Notify::new()),
        );
        Conn {
            ctx: ClientContext {
                conn,
                identity: ChatIdentity {
                    account_sid: AccountSid::parse(&self.app.account.sid).unwrap(),
                    api_key_sid: ApiKeySid::parse(&self.app.api_key.sid).unwrap(),
                    identity: identity.to_owned(),
                    service_sid: service,
                    endpoint_id: None,
                    push_credential_sid: None,
                    expires_at: None,
                },
            },
            rx,
        }
    }

    /// An upstream request as the SDK makes it (absolute URLs are accepted as handed out).
    async fn call(
        &self,
        conn: &Conn,
        method: Method,
        url: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let path = url.strip_prefix(&self.app.base).unwrap_or(url);
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json; charset=utf-8");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).unwrap();
        req.extensions_mut().insert(conn.ctx.clone());
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    async fn get(&self, c: &Conn, url: &str) -> (StatusCode, Value) {
        self.call(c, Method::GET, url, None, &[]).await
    }

    async fn post(&self, c: &Conn, url: &str, body: Value) -> (StatusCode, Value) {
        self.call(c, Method::POST, url, Some(body), &[]).await
    }

    async fn delete(&self, c: &Conn, url: &str) -> (StatusCode, Value) {
        self.call(c, Method::DELETE, url, None, &[]).await
    }

    async fn config(&self, c: &Conn) -> Value {
        let (s, v) = self.get(c, "/Client/v1/Configuration").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Create a channel as `c` and return its descriptor.
    async fn create_channel(&self, c: &Conn, body: Value) -> Value {
        let links = self.config(c).await["links"].clone();
        let (s, v) = self
            .post(c, links["conversations"].as_str().unwrap(), body)
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    async fn join(&self, c: &Conn, channel: &Value) -> (StatusCode, Value) {
        let id = c.ctx.identity.identity.clone();
        self.post(
            c,
            channel["links"]["participants"].as_str().unwrap(),
            json!({ "identity": id }),
        )
        .await
    }

    async fn send(&self, c: &Conn, channel: &Value, body: &str) -> (StatusCode, Value) {
        self.post(
            c,
            channel["links"]["messages"].as_str().unwrap(),
            json!({ "body": body, "attributes": "{}" }),
        )
        .await
    }

    /// Message bodies as REST lists them.
    async fn rest_bodies(&self, ch: &str) -> Vec<String> {
        let (s, v) = self
            .app
            .get(&format!("/v2/Services/{}/Channels/{ch}/Messages", self.svc))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn assert_refused(s: StatusCode, v: &Value) {
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], 50107, "{v}");
}

async fn configuration_links_are_absolute(backend: Backend) {
    let w = world(backend).await;
    let alice = w.connect("alice smith");
    let v = w.config(&alice).await;
    assert_eq!(v["identity"], "alice smith");
    let prefix = format!("{}/Client/v1/", w.app.base);
    for key in [
        "my_conversations",
        "conversations",
        "users",
        "current_user",
        "typing",
        "media_service",
        "messages_receipts",
    ] {
        let link = v["links"][key].as_str().unwrap();
        assert!(link.starts_with(&prefix), "{key}: {link}");
    }
    assert!(v["url"].as_str().unwrap().starts_with(&prefix));
    assert_eq!(
        v["sync_objects"]["my_conversations"],
        names::user_channels_map("alice smith")
    );
    assert_eq!(
        v["sync_objects"]["my_user_info"],
        names::user_info_map("alice smith")
    );
    assert_eq!(v["options"]["reachability_enabled"], false);
    assert_eq!(v["options"]["consumption_report_interval"], "PT10S");
    assert!(v["options"]["my_conversations_page_size"].as_u64().unwrap() > 0);
    // The user exists from the first call on, visible over REST.
    let (s, u) = w
        .app
        .get(&format!("/v2/Services/{}/Users/alice%20smith", w.svc))
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    // The current user link answers the user descriptor.
    let (s, me) = w
        .get(&alice, v["links"]["current_user"].as_str().unwrap())
        .await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["identity"], "alice smith");
    assert_eq!(
        me["sync_objects"]["user_info_map"],
        names::user_info_map("alice smith")
    );
    assert_eq!(me["is_online"], Value::Null, "reachability is off");
}

async fn create_join_and_leave_channels(backend: Backend) {
    let w = world(backend).await;
    let alice = w.connect("alice");
    let bob = w.connect("bob");
    let links = w.config(&alice).await["links"].clone();
    w.config(&bob).await;
    let ch = w
        .create_channel(
            &alice,
            json!({"type": "public", "unique_name": "general", "friendly_name": "General",
                   "attributes": "{\"topic\":\"all\"}"}),
        )
        .await;
    let sid = ch["sid"].as_str().unwrap().to_owned();
    assert_eq!(
        ch["sync_objects"]["conversation"],
        names::channel_document(&sid)
    );
    assert_eq!(ch["created_by"], "alice");
    assert_eq!(ch["attributes"], "{\"topic\":\"all\"}");
    assert!(ch["url"].as_str().unwrap().starts_with(&w.app.base));

    // Both join; the creator gets the creator role, the other the default channel role.
    let (s, a) = w.join(&alice, &ch).await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let (s, b) = w.join(&bob, &ch).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, service) = w.app.get(&format!("/v2/Services/{}", w.svc)).await;
    assert_eq!(a["role_sid"], service["default_channel_creator_role_sid"]);
    assert_eq!(b["role_sid"], service["default_channel_role_sid"]);
    let (s, again) = w.join(&bob, &ch).await;
    assert_eq!(s, StatusCode::CONFLICT, "{again}");

    // Bob's channels list it, with the Sync object names; the directory and unique name too.
    let (s, mine) = w
        .get(&bob, links["my_conversations"].as_str().unwrap())
        .await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    let items = mine["conversations"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{mine}");
    assert_eq!(items[0]["conversation_sid"], sid.as_str());
    assert_eq!(items[0]["status"], "joined");
    assert_eq!(
        items[0]["sync_objects"]["messages"],
        names::messages_list(&sid)
    );
    assert_eq!(items[0]["sync_objects"]["roster"], names::roster_map(&sid));
    assert_eq!(mine["meta"]["next_token"], Value::Null);
    let (s, dir) = w.get(&bob, links["conversations"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{dir}");
    assert_eq!(dir["conversations"][0]["sid"], sid.as_str());
    let (s, by_name) = w
        .get(
            &bob,
            &format!("{}/general", links["conversations"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{by_name}");
    assert_eq!(by_name["sid"], sid.as_str());
    assert_eq!(by_name["participants_count"], 2);
    assert_eq!(by_name["status"], "joined");

    // Bob leaves; REST sees only Alice. Bob may not destroy the channel (channel user); Alice
    // (channel admin) may.
    let (s, v) = w
        .delete(
            &bob,
            &format!("{}/bob", ch["links"]["participants"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, members) = w
        .app
        .get(&format!("/v2/Services/{}/Channels/{sid}/Members", w.svc))
        .await;
    let ids: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["identity"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alice"]);
    let (s, v) = w.delete(&bob, ch["url"].as_str().unwrap()).await;
    assert_refused(s, &v);
    let (s, v) = w
        .post(
            &bob,
            ch["url"].as_str().unwrap(),
            json!({"friendly_name": "Mine"}),
        )
        .await;
    assert_refused(s, &v);
    let (s, v) = w
        .post(
            &alice,
            ch["url"].as_str().unwrap(),
            json!({"friendly_name": "Renamed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["friendly_name"], "Renamed");
    let (s, v) = w.delete(&alice, ch["url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _) = w
        .app
        .get(&format!("/v2/Services/{}/Channels/{sid}", w.svc))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn messages_obey_own_and_any_permissions(backend: Backend) {
    let w = world(backend).await;
    let alice = w.connect("alice");
    let bob = w.connect("bob");
    let ch = w
        .create_channel(&alice, json!({"friendly_name": "Room"}))
        .await;
    let sid = ch["sid"].as_str().unwrap().to_owned();

    // Not a member yet: no sending.
    let (s, v) = w.send(&bob, &ch, "too early").await;
    assert_refused(s, &v);
    w.join(&alice, &ch).await;
    w.join(&bob, &ch).await;

    let (s, m1) = w.send(&alice, &ch, "hello from alice").await;
    assert_eq!(s, StatusCode::CREATED, "{m1}");
    assert_eq!(m1["author"], "alice");
    assert_eq!(m1["index"], 0);
    let (s, m2) = w.send(&bob, &ch, "hello from bob").await;
    assert_eq!(s, StatusCode::CREATED, "{m2}");
    let m1_url = m1["url"].as_str().unwrap().to_owned();
    let m2_url = m2["url"].as_str().unwrap().to_owned();

    // Bob (channel user) may not touch Alice's message.
    let (s, v) = w.post(&bob, &m1_url, json!({"body": "defaced"})).await;
    assert_refused(s, &v);
    let (s, v) = w.delete(&bob, &m1_url).await;
    assert_refused(s, &v);
    // He may edit and delete his own.
    let (s, v) = w
        .post(&bob, &m2_url, json!({"body": "edited by bob"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"], "edited by bob");
    assert_eq!(v["was_edited"], true);
    assert_eq!(v["last_updated_by"], "bob");
    assert_eq!(
        w.rest_bodies(&sid).await,
        ["hello from alice", "edited by bob"]
    );
    let (s, v) = w.delete(&bob, &m2_url).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    // Alice (channel admin: editAnyMessage) may edit any; her edit is stored.
    let (s, v) = w
        .post(&alice, &m1_url, json!({"attributes": {"pinned": true}}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["attributes"], "{\"pinned\":true}");
    assert_eq!(w.rest_bodies(&sid).await, ["hello from alice"]);

    // A removed editOwnMessage permission is honoured: the channel user role loses it.
    let (_, service) = w.app.get(&format!("/v2/Services/{}", w.svc)).await;
    let role = service["default_channel_role_sid"].as_str().unwrap();
    let (s, v) = w
        .app
        .post(
            &format!("/v2/Services/{}/Roles/{role}", w.svc),
            &[
                ("Permission", "sendMessage"),
                ("Permission", "leaveChannel"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, m3) = w.send(&bob, &ch, "third").await;
    assert_eq!(s, StatusCode::CREATED, "{m3}");
    let (s, v) = w
        .post(&bob, m3["url"].as_str().unwrap(), json!({"body": "nope"}))
        .await;
    assert_refused(s, &v);
}

async fn private_channels_are_invisible_to_non_members(backend: Backend) {
    let w = world(backend).await;
    let alice = w.connect("alice");
    let bob = w.connect("bob");
    w.config(&bob).await;
    let links = w.config(&alice).await["links"].clone();
    let ch = w
        .create_channel(
            &alice,
            json!({"type": "private", "unique_name": "secret", "friendly_name": "Secret"}),
        )
        .await;
    let (s, v) = w.join(&alice, &ch).await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "the creator joins its private channel: {v}"
    );
    let url = ch["url"].as_str().unwrap();
    let by_name = format!("{}/secret", links["conversations"].as_str().unwrap());

    for u in [url, by_name.as_str()] {
        let (s, v) = w.get(&bob, u).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    }
    let (s, v) = w.join(&bob, &ch).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = w.send(&bob, &ch, "hi").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (_, dir) = w.get(&bob, links["conversations"].as_str().unwrap()).await;
    assert_eq!(dir["conversations"], json!([]), "{dir}");

    // Invited, Bob sees it and may join.
    let (s, v) = w
        .post(
            &alice,
            ch["links"]["invites"].as_str().unwrap(),
            json!({"identity": "bob"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = w.get(&bob, url).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "invited");
    let (_, mine) = w
        .get(&bob, links["my_conversations"].as_str().unwrap())
        .await;
    assert_eq!(mine["conversations"][0]["status"], "invited", "{mine}");
    let (s, v) = w.join(&bob, &ch).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = w.send(&bob, &ch, "thanks").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn unread_count_follows_the_consumption_horizon(backend: Backend) {
    let w = world(backend).await;
    let alice = w.connect("alice");
    let bob = w.connect("bob");
    let links = w.config(&bob).await["links"].clone();
    let ch = w.create_channel(&alice, json!({})).await;
    w.join(&alice, &ch).await;
    w.join(&bob, &ch).await;
    for body in ["one", "two", "three"] {
        let (s, v) = w.send(&alice, &ch, body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let mine = format!(
        "{}/{}",
        links["my_conversations"].as_str().unwrap(),
        ch["sid"].as_str().unwrap()
    );
    let (s, v) = w
        .post(&bob, &mine, json!({"last_consumed_message_index": 0}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["unread_messages_count"], 2, "{v}");
    let (s, v) = w.get(&bob, &mine).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["conversation_sid"], ch["sid"]);
    assert_eq!(v["unread_messages_count"], 2);
    assert_eq!(v["last_consumed_message_index"], 0);
    let (s, v) = w
        .post(&bob, &mine, json!({"last_consumed_message_index": 2}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["unread_messages_count"], 0);
    // REST sees the horizon on the member.
    let (_, m) = w
        .app
        .get(&format!(
            "/v2/Services/{}/Channels/{}/Members/bob",
            w.svc,
            ch["sid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(m["last_consumed_message_index"], 2);
    // Null: no messages consumed (unread unknown again), and the notification level.
    let (s, v) = w
        .post(&bob, &mine, json!({"last_consumed_message_index": null}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["last_consumed_message_index"], Value::Null);
    let (s, v) = w
        .post(&bob, &mine, json!({"notification_level": "muted"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["notification_level"], "muted");
}

async fn typing_reaches_the_other_members_only(backend: Backend) {
    let w = world(backend).await;
    let mut alice = w.connect("alice");
    let mut bob = w.connect("bob");
    let mut bob2 = w.connect("bob");
    let mut carol = w.connect("carol");
    let links = w.config(&alice).await["links"].clone();
    let ch = w.create_channel(&alice, json!({})).await;
    w.join(&alice, &ch).await;
    w.join(&bob, &ch).await;
    w.config(&carol).await;
    let sid = ch["sid"].as_str().unwrap();

    // The notice travels through the store's signal bus to this node's tail (as on every
    // node); a PostgreSQL listener may still be connecting, so type until bob hears it (the SDK
    // repeats typing too).
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(parley_http::live::sync::tail::run(
        w.state.clone(),
        std::time::Duration::from_secs(60),
        async move {
            let _ = stopped.await;
        },
    ));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let first = loop {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(w.app.local(links["typing"].as_str().unwrap()))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("ChannelSid={sid}")))
            .unwrap();
        req.extensions_mut().insert(alice.ctx.clone());
        let res = w.router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body, json!({"typing_timeout": 5}));
        match tokio::time::timeout(std::time::Duration::from_millis(200), bob.rx.recv()).await {
            Ok(got) => break got,
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "bob never heard alice typing"
            ),
        }
    };

    let second = tokio::time::timeout(std::time::Duration::from_secs(5), bob2.rx.recv())
        .await
        .ok()
        .flatten();
    for got in [first, second] {
        match got {
            Some(Outbound::Notification {
                message_type,
                payload,
            }) => {
                assert_eq!(message_type, "twilio.ipmsg.typing_indicator");
                assert_eq!(
                    payload,
                    json!({"channel_sid": sid, "identity": "alice", "typing_timeout": 5})
                );
            }
            other => panic!("bob's connection got {other:?}"),
        }
    }
    // Every delivery of one notice happens in one pass: had alice or carol been told, it would
    // be queued by now. (Drain bob's repeats of the retried notice.)
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    while bob.rx.try_recv().is_ok() {}
    while bob2.rx.try_recv().is_ok() {}
    assert!(alice.rx.try_recv().is_err(), "the typist is not told");
    assert!(carol.rx.try_recv().is_err(), "a non-member is not told");

    // A non-member may not type; nothing is sent.
    let (s, v) = w
        .post(
            &carol,
            links["typing"].as_str().unwrap(),
            json!({"channel_sid": sid}),
        )
        .await;
    assert_refused(s, &v);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(bob.rx.try_recv().is_err());
}

async fn push_registration_over_the_socket_creates_a_binding(backend: Backend) {
    let w = world(backend).await;
    w.app.create_credential("fcm").await;
    let alice = w.connect("alice");
    let (s, v) = w
        .post(
            &alice,
            "/v1/registrations?productId=ip_messaging",
            json!({
                "endpoint_platform": "web",
                "channel_type": "fcm",
                "version": "3",
                "message_types": ["twilio.channel.new_message", "twilio.channel.added_to_channel"],
                "data": {"registration_id": "fcm-token-123"},
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["address"], "fcm-token-123");
    let id = v["id"].as_str().unwrap().to_owned();
    let (s, list) = w
        .app
        .get(&format!("/v2/Services/{}/Users/alice/Bindings", w.svc))
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let bindings = list["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 1, "{list}");
    assert_eq!(bindings[0]["sid"], id.as_str());
    assert_eq!(bindings[0]["binding_type"], "fcm");
    assert_eq!(
        bindings[0]["message_types"],
        json!(["new_message", "added_to_channel"])
    );
    // Again: the same binding, refreshed.
    let (s, v) = w
        .post(
            &alice,
            "/v1/registrations?productId=ip_messaging",
            json!({"channel_type": "fcm", "data": {"registration_id": "fcm-token-123"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["id"], id.as_str());
    // Bob cannot remove Alice's binding; Alice can.
    let bob = w.connect("bob");
    let (s, _) = w
        .delete(
            &bob,
            &format!("/v1/registrations/{id}?productId=ip_messaging"),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = w
        .delete(
            &alice,
            &format!("/v1/registrations/{id}?productId=ip_messaging"),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, list) = w
        .app
        .get(&format!("/v2/Services/{}/Users/alice/Bindings", w.svc))
        .await;
    assert_eq!(list["bindings"], json!([]));
}

async fn a_repeated_mutation_id_is_answered_once(backend: Backend) {
    let w = world(backend).await;
    let alice = w.connect("alice");
    let bob = w.connect("bob");
    let ch = w.create_channel(&alice, json!({})).await;
    w.join(&alice, &ch).await;
    w.join(&bob, &ch).await;
    let url = ch["links"]["messages"].as_str().unwrap();
    let send = |c: &'static str| json!({ "body": c });
    let hdr = [("X-Twilio-Mutation-Id", "0f0e7a5c-mutation-1")];
    let (s1, first) = w
        .call(&alice, Method::POST, url, Some(send("once")), &hdr)
        .await;
    assert_eq!(s1, StatusCode::CREATED, "{first}");
    let (s2, second) = w
        .call(&alice, Method::POST, url, Some(send("once")), &hdr)
        .await;
    assert_eq!(s2, StatusCode::CREATED, "{second}");
    assert_eq!(first, second, "the first answer, replayed");
    assert_eq!(w.rest_bodies(ch["sid"].as_str().unwrap()).await, ["once"]);
    // The same id from another identity, or a new id, is another change.
    let (s, v) = w
        .call(&bob, Method::POST, url, Some(send("bob's")), &hdr)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_ne!(v["sid"], first["sid"]);
    let (s, _) = w
        .call(
            &alice,
            Method::POST,
            url,
            Some(send("twice")),
            &[("X-Twilio-Mutation-Id", "0f0e7a5c-mutation-2")],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        w.rest_bodies(ch["sid"].as_str().unwrap()).await,
        ["once", "bob's", "twice"]
    );
}

/// One received webhook call: path and form parameters.
type Hit = (String, Vec<(String, String)>);

/// A local webhook receiver: records each [`Hit`]; `/pre` answers `pre_status`.
#[derive(Clone, Default)]
struct Hooks {
    hits: Arc<Mutex<Vec<Hit>>>,
    pre_status: Arc<AtomicU16>,
}

impl Hooks {
    async fn start() -> (String, Self) {
        let hooks = Hooks::default();
        hooks.pre_status.store(200, Ordering::SeqCst);
        let h = hooks.clone();
        let app = Router::new().fallback(move |uri: Uri, body: Bytes| {
            let h = h.clone();
            async move {
                let params: Vec<(String, String)> =
                    url::form_urlencoded::parse(&body).into_owned().collect();
                h.hits.lock().unwrap().push((uri.path().to_owned(), params));
                if uri.path() == "/pre" {
                    StatusCode::from_u16(h.pre_status.load(Ordering::SeqCst)).unwrap()
                } else {
                    StatusCode::OK
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), hooks)
    }

    fn at(&self, path: &str) -> Vec<Vec<(String, String)>> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, params)| params.clone())
            .collect()
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn client_actions_fire_pre_and_post_events(backend: Backend) {
    let w = world_with(backend, |state| {
        let client = parley_webhooks::WebhookClient::new(
            parley_webhooks::WebhookConfig::default(),
            state.metrics.registry(),
        )
        .unwrap();
        // Not opted in for REST: client changes fire pre-events anyway.
        let tokens = Arc::new(parley_webhooks::AuthTokens::new(
            state.store.clone(),
            state.secrets.clone(),
        ));
        state.with_pre_hooks(Arc::new(parley_http::PreHooks::new(
            parley_http::PreHookScope::Off,
            client,
            tokens,
        )))
    })
    .await;
    let (base, hooks) = Hooks::start().await;
    let (pre, post) = (format!("{base}/pre"), format!("{base}/post"));
    let (s, v) = w
        .app
        .post(
            &format!("/v2/Services/{}", w.svc),
            &[
                ("PreWebhookUrl", pre.as_str()),
                ("PostWebhookUrl", post.as_str()),
                ("WebhookFilters", "onMessageSend"),
                ("WebhookFilters", "onMessageSent"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let alice = w.connect("alice");
    let ch = w.create_channel(&alice, json!({})).await;
    w.join(&alice, &ch).await;
    let sid = ch["sid"].as_str().unwrap();

    // The pre-event answers 403: the send fails with 50056 and nothing is stored.
    hooks.pre_status.store(403, Ordering::SeqCst);
    let (s, v) = w.send(&alice, &ch, "blocked words").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], 50056, "{v}");
    assert!(w.rest_bodies(sid).await.is_empty());
    let pres = hooks.at("/pre");
    assert_eq!(pres.len(), 1);
    assert_eq!(param(&pres[0], "EventType"), Some("onMessageSend"));
    assert_eq!(param(&pres[0], "Body"), Some("blocked words"));
    assert_eq!(param(&pres[0], "Source"), Some("SDK"));
    assert_eq!(param(&pres[0], "ClientIdentity"), Some("alice"));

    // 200: the message is stored, and the post-event fires with Source=SDK.
    hooks.pre_status.store(200, Ordering::SeqCst);
    let (s, v) = w.send(&alice, &ch, "fine words").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(w.rest_bodies(sid).await, ["fine words"]);
    let worker = parley_webhooks::Worker::new(
        w.app.store.clone(),
        Arc::new(parley_webhooks::AuthTokens::new(
            w.app.store.clone(),
            w.app.secrets.clone(),
        )),
        parley_webhooks::WebhookClient::new(
            parley_webhooks::WebhookConfig::default(),
            &prometheus::Registry::new(),
        )
        .unwrap(),
        parley_webhooks::WorkerConfig {
            first_try_delay: Duration::ZERO,
            ..parley_webhooks::WorkerConfig::default()
        },
        None,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while hooks.at("/post").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no post-event");
        worker.consume_once().await.unwrap();
        worker.send_once().await.unwrap();
        worker.wait_idle().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let posts = hooks.at("/post");
    let sent = posts
        .iter()
        .find(|p| param(p, "EventType") == Some("onMessageSent"))
        .expect("onMessageSent");
    assert_eq!(param(sent, "Source"), Some("SDK"));
    assert_eq!(param(sent, "ClientIdentity"), Some("alice"));
    assert_eq!(param(sent, "Body"), Some("fine words"));
}

async fn users_are_listed_per_channel_and_edited_with_permission(backend: Backend) {
    let w = world(backend).await;
    let alice = w.connect("alice");
    let bob = w.connect("bob");
    let links = w.config(&alice).await["links"].clone();
    w.config(&bob).await;
    let ch = w.create_channel(&alice, json!({})).await;
    w.join(&alice, &ch).await;
    w.join(&bob, &ch).await;
    let users = links["users"].as_str().unwrap();
    let (s, v) = w
        .get(
            &alice,
            &format!("{users}?ConversationSid={}", ch["sid"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ids: Vec<&str> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["identity"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alice", "bob"]);
    assert_eq!(v["meta"]["prev_token"], Value::Null);
    // Own info: allowed (editOwnUserInfo); someone else's: refused.
    let (s, v) = w
        .post(
            &alice,
            &format!("{users}/alice"),
            json!({"friendly_name": "Alice A."}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["friendly_name"], "Alice A.");
    let (s, v) = w
        .post(
            &alice,
            &format!("{users}/bob"),
            json!({"friendly_name": "Bobby"}),
        )
        .await;
    assert_refused(s, &v);
    let (_, u) = w
        .app
        .get(&format!("/v2/Services/{}/Users/alice", w.svc))
        .await;
    assert_eq!(u["friendly_name"], "Alice A.");
}

async fn paging_tokens_are_opaque_and_scoped(backend: Backend) {
    let w = world(backend).await;
    let alice = w.connect("alice");
    let bob = w.connect("bob");
    let links = w.config(&alice).await["links"].clone();
    for i in 0..3 {
        let ch = w
            .create_channel(&alice, json!({"friendly_name": format!("c{i}")}))
            .await;
        w.join(&alice, &ch).await;
    }
    let mine = links["my_conversations"].as_str().unwrap();
    let (s, p1) = w.get(&alice, &format!("{mine}?PageSize=2")).await;
    assert_eq!(s, StatusCode::OK, "{p1}");
    assert_eq!(p1["conversations"].as_array().unwrap().len(), 2);
    let token = p1["meta"]["next_token"].as_str().unwrap().to_owned();
    let (s, p2) = w.get(&alice, &format!("{mine}?PageToken={token}")).await;
    assert_eq!(s, StatusCode::OK, "{p2}");
    assert_eq!(p2["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(p2["meta"]["next_token"], Value::Null);
    assert!(p2["meta"]["previous_token"].is_string());
    // Alice's token is not Bob's.
    let (s, v) = w.get(&bob, &format!("{mine}?PageToken={token}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

async fn requests_without_a_client_context_are_refused(backend: Backend) {
    let w = world(backend).await;
    let req = Request::builder()
        .uri("/Client/v1/Configuration")
        .body(Body::empty())
        .unwrap();
    let res = w.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let alice = w.connect("alice");
    let (s, v) = w
        .call(&alice, Method::POST, "/Client/v1/Conversations", None, &[])
        .await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "an empty body is no parameters: {v}"
    );
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/Client/v1/Conversations")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    req.extensions_mut().insert(alice.ctx.clone());
    let res = w.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

/// `createChannel({isPrivate: true})` in the SDK opens the channel document (`{CH}.channel`)
/// right after the POST, before the creator joins: the creator may read it, others may not.
async fn the_creator_reads_its_private_channel_document_before_joining(backend: Backend) {
    let w = world(backend).await;
    let alice = w.connect("alice");
    let bob = w.connect("bob");
    w.config(&alice).await;
    w.config(&bob).await;
    let ch = w
        .create_channel(&alice, json!({"type": "private", "unique_name": "mine"}))
        .await;
    let sid = ch["sid"].as_str().unwrap();
    let doc = format!("/v3/Documents/{sid}.channel");
    let (s, v) = w.get(&alice, &doc).await;
    assert_eq!(s, StatusCode::OK, "the creator reads {doc}: {v}");
    assert_eq!(v["data"]["type"], "private", "{v}");
    let (s, v) = w.get(&bob, &doc).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a non-member does not: {v}");
    let (s, v) = w.get(&bob, &format!("/v3/Lists/{sid}.messages")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nor its messages: {v}");
}

/// With reachability on, REST `is_online` (fetch and update answers) follows the user's live
/// connections, as the client API and the user info map do.
async fn rest_is_online_follows_live_connections(backend: Backend) {
    use base64::Engine as _;
    let w = world(backend).await;
    let rest = parley_http::router(w.state.clone());
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", w.app.account.sid, w.app.account.token));
    let call = |method: Method, path: String, form: &'static str| {
        let rest = rest.clone();
        let basic = basic.clone();
        async move {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .header(header::AUTHORIZATION, format!("Basic {basic}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .unwrap();
            let res = rest.oneshot(req).await.unwrap();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }
    };
    let svc = w.svc.clone();
    call(
        Method::POST,
        format!("/v2/Services/{svc}"),
        "ReachabilityEnabled=true",
    )
    .await;
    let user = format!("/v2/Services/{svc}/Users/alice");
    call(
        Method::POST,
        format!("/v2/Services/{svc}/Users"),
        "Identity=alice",
    )
    .await;
    assert_eq!(
        call(Method::GET, user.clone(), "").await["is_online"],
        false
    );
    // What the socket does after init and when it closes: count the connection in the
    // presence every node shares.
    let alice = w.connect("alice");
    let key = parley_core::store::PresenceKey {
        account: alice.ctx.identity.account_sid.clone(),
        service: alice.ctx.identity.service_sid.clone(),
        identity: "alice".to_owned(),
    };
    assert!(w.state.live.presence.opened(&w.state.store, &key).await);
    assert_eq!(call(Method::GET, user.clone(), "").await["is_online"], true);
    let updated = call(Method::POST, user.clone(), "FriendlyName=Alice").await;
    assert_eq!(updated["is_online"], true, "{updated}");
    w.state.live.unregister(alice.ctx.conn);
    assert!(w.state.live.presence.closed(&w.state.store, &key).await);
    assert_eq!(call(Method::GET, user, "").await["is_online"], false);
}

both_backends!(
    rest_is_online_follows_live_connections,
    the_creator_reads_its_private_channel_document_before_joining,
    configuration_links_are_absolute,
    create_join_and_leave_channels,
    messages_obey_own_and_any_permissions,
    private_channels_are_invisible_to_non_members,
    unread_count_follows_the_consumption_horizon,
    typing_reaches_the_other_members_only,
    push_registration_over_the_socket_creates_a_binding,
    a_repeated_mutation_id_is_answered_once,
    client_actions_fire_pre_and_post_events,
    users_are_listed_per_channel_and_edited_with_permission,
    paging_tokens_are_opaque_and_scoped,
    requests_without_a_client_context_are_refused,
);

/// A figure, not a check: client message sends per second through the upstream router, one
/// sender, SQLite (`cargo test -p parley-server --test live_client_api --
/// --ignored --nocapture client_send_rate`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn client_send_rate() {
    let w = world(Backend::Sqlite).await;
    let alice = w.connect("alice");
    let ch = w.create_channel(&alice, json!({})).await;
    w.join(&alice, &ch).await;
    let n = 500;
    let start = std::time::Instant::now();
    for i in 0..n {
        let (s, v) = w.send(&alice, &ch, &format!("m{i}")).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} client sends in {secs:.2} s: {:.0}/s, {:.2} ms each",
        f64::from(n) / secs,
        secs * 1000.0 / f64::from(n)
    );
}
