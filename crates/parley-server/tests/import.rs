//! `parley import twilio` against a local fake of Twilio's Conversations API v1 that pages two
//! items at a time, answers 429 now and then, and can fail mid-run; the result is read back
//! through Parley's REST API. Both backends: SQLite in a temp dir, PostgreSQL in a fresh
//! schema of `TEST_DATABASE_URL` (skipped only with `PARLEY_SKIP_POSTGRES=1` outside CI).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::*;
use serde_json::{json, Value};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "twilio-auth-token-secret";

fn sid(prefix: &str, n: u32) -> String {
    format!("{prefix}{n:032x}")
}

/// A list resource: JSON key and items.
type Lists = BTreeMap<String, (&'static str, Vec<Value>)>;

struct FakeState {
    lists: Lists,
    single: BTreeMap<String, Value>,
    addr: String,
    requests: AtomicU64,
    /// Requests answered 429 (every fourth).
    throttled: AtomicU64,
    /// Requests past this count are answered 500 (u64::MAX: never).
    fail_after: AtomicU64,
}

/// The fake Conversations API, on its own runtime.
struct FakeTwilio {
    state: Arc<FakeState>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeTwilio {
    fn start() -> FakeTwilio {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let (lists, single) = fixture();
        let state = Arc::new(FakeState {
            lists,
            single,
            addr,
            requests: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            fail_after: AtomicU64::new(u64::MAX),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        runtime.spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeTwilio {
            state,
            _runtime: runtime,
        }
    }

    fn url(&self) -> String {
        self.state.addr.clone()
    }
}

async fn handle(State(st): State<Arc<FakeState>>, uri: Uri, headers: HeaderMap) -> Response {
    use base64::Engine as _;
    let n = st.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TWILIO_TOKEN}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, "{\"code\":20003}").into_response();
    }
    if n > st.fail_after.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "{\"message\":\"boom\"}").into_response();
    }
    if n % 4 == 0 {
        st.throttled.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            "{\"code\":20429}",
        )
            .into_response();
    }
    let path = uri.path().to_owned();
    if let Some(v) = st.single.get(&path) {
        return axum::Json(v.clone()).into_response();
    }
    let Some((key, items)) = st.lists.get(&path) else {
        return (StatusCode::NOT_FOUND, "{\"code\":20404}").into_response();
    };
    let page: usize = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("Page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let chunk: Vec<Value> = items.iter().skip(page * 2).take(2).cloned().collect();
    let next = if (page + 1) * 2 < items.len() {
        // Absolute, on Twilio's host, as Twilio answers: the importer re-roots it.
        json!(format!(
            "https://conversations.twilio.com{path}?PageSize=2&Page={}&PageToken=PT{}",
            page + 1,
            page + 1
        ))
    } else {
        Value::Null
    };
    axum::Json(json!({
        *key: chunk,
        "meta": {"page": page, "page_size": 2, "key": key, "next_page_url": next}
    }))
    .into_response()
}

fn date(day: u32, sec: u32) -> String {
    format!("2019-01-{day:02}T03:04:{sec:02}Z")
}

/// One service: 3 roles, 3 users, 3 conversations, 4 participants (one SMS), 6 messages
/// (indexes 0 1 2 4 5 in the first conversation: index 3 was deleted at Twilio), 3 bindings.
fn fixture() -> (Lists, BTreeMap<String, Value>) {
    let is = sid("IS", 1);
    let base = format!("/v1/Services/{is}");
    let mut lists = Lists::new();
    let mut single = BTreeMap::new();
    let service = json!({"sid": is, "account_sid": ACCOUNT, "friendly_name": "Support",
        "date_created": date(2, 5), "date_updated": date(3, 6)});
    single.insert(base.clone(), service.clone());
    lists.insert("/v1/Services".into(), ("services", vec![service]));
    lists.insert(
        "/v1/Credentials".into(),
        (
            "credentials",
            vec![
                json!({"sid": sid("CR", 1), "account_sid": ACCOUNT, "friendly_name": "ios prod",
                    "type": "apn", "sandbox": "true",
                    "date_created": date(1, 1), "date_updated": date(1, 2)}),
                json!({"sid": sid("CR", 2), "account_sid": ACCOUNT, "friendly_name": "android",
                    "type": "fcm", "sandbox": null,
                    "date_created": date(1, 3), "date_updated": date(1, 3)}),
            ],
        ),
    );
    single.insert(
        format!("{base}/Configuration"),
        json!({"chat_service_sid": is,
            "default_chat_service_role_sid": sid("RL", 1),
            "default_conversation_role_sid": sid("RL", 2),
            "default_conversation_creator_role_sid": sid("RL", 3),
            "reachability_enabled": true}),
    );
    single.insert(
        format!("{base}/Configuration/Notifications"),
        json!({"chat_service_sid": is, "log_enabled": true,
            "new_message": {"enabled": true, "template": "${USER}: ${MESSAGE}", "sound": "ding",
                "badge_count_enabled": true},
            "added_to_conversation": {"enabled": true, "template": "added", "sound": null},
            "removed_from_conversation": {"enabled": false}}),
    );
    single.insert(
        format!("{base}/Configuration/Webhooks"),
        json!({"chat_service_sid": is, "pre_webhook_url": null,
            "post_webhook_url": "https://hooks.example.com/post", "method": "POST",
            "filters": ["onMessageAdded", "onConversationRemoved", "onDeliveryUpdated"]}),
    );
    let role = |n, kind, name, perms: &[&str]| {
        json!({"sid": sid("RL", n), "friendly_name": name, "type": kind, "permissions": perms,
            "date_created": date(2, n), "date_updated": date(2, n)})
    };
    lists.insert(
        format!("{base}/Roles"),
        (
            "roles",
            vec![
                role(
                    1,
                    "service",
                    "service user",
                    &["createConversation", "joinConversation"],
                ),
                role(
                    2,
                    "conversation",
                    "channel user",
                    &["sendMessage", "leaveConversation"],
                ),
                role(
                    3,
                    "conversation",
                    "channel admin",
                    &["addParticipant", "sendMessage"],
                ),
            ],
        ),
    );
    let user = |n, identity: &str| {
        json!({"sid": sid("US", n), "identity": identity, "friendly_name": format!("{identity} F"),
            "attributes": format!("{{\"n\":{n}}}"), "role_sid": sid("RL", 1),
            "date_created": date(4, n), "date_updated": date(5, n)})
    };
    lists.insert(
        format!("{base}/Users"),
        (
            "users",
            vec![user(1, "alice"), user(2, "bob"), user(3, "carol")],
        ),
    );
    let conv = |n, unique: Option<&str>| {
        json!({"sid": sid("CH", n), "unique_name": unique, "friendly_name": format!("Conv {n}"),
            "attributes": "{\"topic\":\"t\"}", "date_created": date(6, n), "date_updated": date(7, n)})
    };
    lists.insert(
        format!("{base}/Conversations"),
        (
            "conversations",
            vec![
                conv(1, Some("general")),
                conv(2, Some("random")),
                conv(3, None),
            ],
        ),
    );
    let part = |n, identity: Option<&str>, last_read: Option<i64>| {
        json!({"sid": sid("MB", n), "identity": identity, "role_sid": sid("RL", 2),
            "attributes": "{}", "last_read_message_index": last_read,
            "last_read_timestamp": last_read.map(|_| date(9, n)),
            "date_created": date(8, n), "date_updated": date(8, n)})
    };
    let msg = |n, index: i64, author: &str| {
        json!({"sid": sid("IM", n), "index": index, "author": author, "body": format!("body {n}"),
            "attributes": format!("{{\"m\":{n}}}"), "date_created": date(10, n),
            "date_updated": date(11, n)})
    };
    let ch = |n| format!("{base}/Conversations/{}", sid("CH", n));
    lists.insert(
        format!("{}/Participants", ch(1)),
        (
            "participants",
            vec![
                part(1, Some("alice"), Some(4)),
                part(2, Some("bob"), None),
                part(3, None, None),
            ],
        ),
    );
    lists.insert(
        format!("{}/Participants", ch(2)),
        ("participants", vec![part(4, Some("carol"), Some(0))]),
    );
    lists.insert(format!("{}/Participants", ch(3)), ("participants", vec![]));
    lists.insert(
        format!("{}/Messages", ch(1)),
        (
            "messages",
            vec![
                msg(1, 0, "alice"),
                msg(2, 1, "bob"),
                msg(3, 2, "alice"),
                msg(4, 4, "bob"),
                msg(5, 5, "alice"),
            ],
        ),
    );
    lists.insert(
        format!("{}/Messages", ch(2)),
        ("messages", vec![msg(6, 0, "carol")]),
    );
    lists.insert(format!("{}/Messages", ch(3)), ("messages", vec![]));
    lists.insert(
        format!("{}/Webhooks", ch(1)),
        (
            "webhooks",
            vec![json!({"sid": sid("WH", 1), "target": "webhook",
                "configuration": {"url": "https://hooks.example.com/ch", "method": "post",
                    "filters": ["onMessageAdded", "onDeliveryUpdated"]},
                "date_created": date(12, 1), "date_updated": date(12, 2)})],
        ),
    );
    lists.insert(format!("{}/Webhooks", ch(2)), ("webhooks", vec![]));
    lists.insert(format!("{}/Webhooks", ch(3)), ("webhooks", vec![]));
    let binding = |n| json!({"sid": sid("BS", n), "identity": "alice", "binding_type": "apn"});
    lists.insert(
        format!("{base}/Bindings"),
        ("bindings", vec![binding(1), binding(2), binding(3)]),
    );
    (lists, single)
}

fn import(db: &impl Db, fake: &FakeTwilio, env: &[(&str, &str)]) -> std::process::Output {
    parley_env(
        db,
        &[
            "import",
            "twilio",
            "--account-sid",
            ACCOUNT,
            "--auth-token",
            TWILIO_TOKEN,
            "--twilio-base-url",
            &fake.url(),
        ],
        env,
    )
}

/// The Parley auth token printed by the run that created the account.
fn printed_token(out: &std::process::Output) -> String {
    let text = stdout(out);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Auth Token:"))
        .map(|t| t.trim().to_owned())
        .unwrap_or_else(|| panic!("no auth token printed: {text}"))
}

/// Everything a client would see of the imported data, through the REST API.
fn read_back(server: &Server, token: &str) -> Value {
    let auth = (ACCOUNT, token);
    let is = sid("IS", 1);
    let s = format!("/v2/Services/{is}");
    let get = |p: &str| server.ok("GET", p, auth, &[]);
    let ch1 = format!("{s}/Channels/{}", sid("CH", 1));
    let seen = json!({
        "service": get(&s),
        "roles": get(&format!("{s}/Roles"))["roles"],
        "users": get(&format!("{s}/Users"))["users"],
        "channels": get(&format!("{s}/Channels?Type=private&Type=public"))["channels"],
        "members1": get(&format!("{ch1}/Members"))["members"],
        "messages1": get(&format!("{ch1}/Messages?PageSize=50"))["messages"],
        "webhooks1": get(&format!("{ch1}/Webhooks"))["webhooks"],
        "messages2": get(&format!("{s}/Channels/{}/Messages", sid("CH", 2)))["messages"],
        "credentials": get("/v2/Credentials")["credentials"],
    });
    // Resource URLs name the server's (random) port: compare without it.
    let text = seen.to_string().replace(&server.addr, "parley");
    serde_json::from_str(&text).unwrap()
}

fn pluck<'a>(list: &'a Value, field: &str) -> Vec<&'a Value> {
    list.as_array().unwrap().iter().map(|v| &v[field]).collect()
}

fn assert_imported(seen: &Value) {
    let svc = &seen["service"];
    assert_eq!(svc["sid"], sid("IS", 1));
    assert_eq!(svc["friendly_name"], "Support");
    assert_eq!(svc["date_created"], "2019-01-02T03:04:05Z");
    assert_eq!(svc["date_updated"], "2019-01-03T03:04:06Z");
    assert_eq!(svc["default_service_role_sid"], sid("RL", 1));
    assert_eq!(svc["default_channel_creator_role_sid"], sid("RL", 3));
    assert_eq!(svc["reachability_enabled"], true);
    let n = &svc["notifications"];
    assert_eq!(n["log_enabled"], true);
    assert_eq!(n["new_message"]["enabled"], true);
    assert_eq!(n["new_message"]["template"], "${USER}: ${MESSAGE}");
    assert_eq!(n["new_message"]["sound"], "ding");
    assert_eq!(n["new_message"]["badge_count_enabled"], true);
    assert_eq!(n["added_to_channel"]["enabled"], true);
    assert_eq!(n["added_to_channel"]["template"], "added");
    assert_eq!(svc["post_webhook_url"], "https://hooks.example.com/post");
    assert_eq!(svc["pre_webhook_url"], Value::Null);
    assert_eq!(svc["webhook_method"], "POST");
    assert_eq!(
        svc["webhook_filters"],
        json!(["onMessageSent", "onChannelDestroyed"])
    );

    let roles = &seen["roles"];
    assert_eq!(roles.as_array().unwrap().len(), 3, "{roles}");
    let admin = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["sid"] == sid("RL", 3))
        .unwrap();
    assert_eq!(admin["type"], "channel");
    assert_eq!(admin["permissions"], json!(["addMember", "sendMessage"]));

    let users = &seen["users"];
    assert_eq!(
        pluck(users, "sid"),
        vec![
            &json!(sid("US", 1)),
            &json!(sid("US", 2)),
            &json!(sid("US", 3))
        ]
    );
    assert_eq!(users[0]["identity"], "alice");
    assert_eq!(users[0]["attributes"], "{\"n\":1}");
    assert_eq!(users[0]["date_created"], "2019-01-04T03:04:01Z");

    let channels = &seen["channels"];
    assert_eq!(channels.as_array().unwrap().len(), 3, "{channels}");
    let c1 = &channels[0];
    assert_eq!(c1["sid"], sid("CH", 1));
    assert_eq!(c1["unique_name"], "general");
    assert_eq!(c1["type"], "private");
    assert_eq!(c1["date_created"], "2019-01-06T03:04:01Z");
    assert_eq!(c1["members_count"], 2, "the SMS participant is skipped");
    assert_eq!(c1["messages_count"], 5);

    let members = &seen["members1"];
    assert_eq!(
        pluck(members, "sid"),
        vec![&json!(sid("MB", 1)), &json!(sid("MB", 2))]
    );
    assert_eq!(members[0]["identity"], "alice");
    assert_eq!(members[0]["last_consumed_message_index"], 4);
    assert_eq!(
        members[0]["last_consumption_timestamp"],
        "2019-01-09T03:04:01Z"
    );
    assert_eq!(members[0]["role_sid"], sid("RL", 2));

    let m1 = &seen["messages1"];
    assert_eq!(
        pluck(m1, "index"),
        vec![&json!(0), &json!(1), &json!(2), &json!(4), &json!(5)]
    );
    assert_eq!(m1[3]["sid"], sid("IM", 4));
    assert_eq!(m1[3]["from"], "bob");
    assert_eq!(m1[3]["body"], "body 4");
    assert_eq!(m1[3]["date_created"], "2019-01-10T03:04:04Z");
    assert_eq!(seen["messages2"].as_array().unwrap().len(), 1);

    let hooks = &seen["webhooks1"];
    assert_eq!(hooks.as_array().unwrap().len(), 1, "{hooks}");
    assert_eq!(hooks[0]["sid"], sid("WH", 1));
    assert_eq!(hooks[0]["type"], "webhook");
    assert_eq!(
        hooks[0]["configuration"]["url"],
        "https://hooks.example.com/ch"
    );
    assert_eq!(hooks[0]["configuration"]["method"], "POST");
    assert_eq!(
        hooks[0]["configuration"]["filters"],
        json!(["onMessageSent"])
    );
    assert_eq!(hooks[0]["date_created"], "2019-01-12T03:04:01Z");

    // Credentials: same SIDs, names, types, sandbox flag and dates; read back exactly as any
    // credential (the spec's fields, no mark on the wire).
    let creds = seen["credentials"].as_array().unwrap();
    let mut fields: Vec<&str> = creds[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "account_sid",
            "date_created",
            "date_updated",
            "friendly_name",
            "sandbox",
            "sid",
            "type",
            "url"
        ],
        "the fields of chat.v2.credential, nothing more"
    );
    let without_url: Vec<Value> = creds
        .iter()
        .map(|c| {
            let mut c = c.clone();
            let url = c.as_object_mut().unwrap().remove("url").unwrap();
            assert!(
                url.as_str()
                    .unwrap()
                    .ends_with(&format!("/v2/Credentials/{}", c["sid"].as_str().unwrap())),
                "{url}"
            );
            c
        })
        .collect();
    assert_eq!(
        without_url,
        [
            json!({"sid": sid("CR", 1), "account_sid": ACCOUNT, "friendly_name": "ios prod",
                "type": "apn", "sandbox": "true", "date_created": "2019-01-01T03:04:01Z",
                "date_updated": "2019-01-01T03:04:02Z"}),
            json!({"sid": sid("CR", 2), "account_sid": ACCOUNT, "friendly_name": "android",
                "type": "fcm", "sandbox": "false", "date_created": "2019-01-01T03:04:03Z",
                "date_updated": "2019-01-01T03:04:03Z"}),
        ]
    );
}

/// Import, import again, then check through the REST API; and a run cut short by failures,
/// finished by a second run, gives the same data.
fn import_scenario(db: &impl Db, interrupted_db: &impl Db, env: &[(&str, &str)]) {
    // Arrange
    let fake = FakeTwilio::start();

    // Act: a full run, then a second one
    let first = import(db, &fake, env);
    let second = import(db, &fake, env);

    // Assert
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        fake.state.throttled.load(Ordering::SeqCst) > 0,
        "the fake answered 429 at least once"
    );
    let token = printed_token(&first);
    assert!(
        !stdout(&second).contains("Auth Token"),
        "the account exists on the second run: {}",
        stdout(&second)
    );
    let summary1 = stdout(&first);
    assert!(
        summary1.contains("messages  6 imported, 0 already present"),
        "{summary1}"
    );
    assert!(summary1.contains("bindings  3 at Twilio, not importable"));
    assert_eq!(counts(&summary1, "webhooks"), (1, 0), "{summary1}");
    assert_eq!(counts(&summary1, "credentials"), (2, 0), "{summary1}");
    assert!(
        summary1.contains("2 credential(s) imported, needing their secret")
            && summary1.contains(&format!("{}  fcm  android", sid("CR", 2)))
            && summary1.contains(&format!(
                "\"$PARLEY/v2/Credentials/{}\" --data-urlencode Certificate@cert.pem \
                 --data-urlencode PrivateKey@key.pem",
                sid("CR", 1)
            ))
            && summary1.contains(&format!(
                "\"$PARLEY/v2/Credentials/{}\" --data-urlencode Secret@service-account.json",
                sid("CR", 2)
            )),
        "{summary1}"
    );
    let summary2 = stdout(&second);
    assert_eq!(counts(&summary2, "webhooks"), (0, 1), "{summary2}");
    assert_eq!(counts(&summary2, "credentials"), (0, 2), "{summary2}");
    assert!(
        summary2.contains("2 credential(s) imported, needing their secret"),
        "still needing it after the second run: {summary2}"
    );
    assert!(
        summary2.contains("messages  0 imported, 6 already present"),
        "{summary2}"
    );
    assert!(summary2.contains("members   0 imported, 3 already present, 1 skipped"));
    assert!(stderr(&first).contains("import: "), "progress on stderr");
    let server = Server::start(db, env);
    let seen = read_back(&server, &token);
    let _ = server.terminate();
    assert_imported(&seen);

    // Act: interrupted mid-run (every request after the 17th fails: inside the first
    // conversation's messages), then run again
    fake.state.requests.store(0, Ordering::SeqCst);
    fake.state.fail_after.store(17, Ordering::SeqCst);
    let cut = import(interrupted_db, &fake, env);
    fake.state.fail_after.store(u64::MAX, Ordering::SeqCst);
    let resumed = import(interrupted_db, &fake, env);

    // Assert
    assert!(!cut.status.success(), "the cut run fails");
    let err = stderr(&cut);
    assert!(err.contains("answered HTTP 500"), "{err}");
    assert!(
        err.contains("GET http://127.0.0.1:"),
        "names the URL: {err}"
    );
    assert!(err.contains("running the same command again"), "{err}");
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let summary = stdout(&resumed);
    let (imported, present) = counts(&summary, "messages");
    assert!(
        imported > 0 && present > 0 && imported + present == 6,
        "the cut run stopped amid the messages; the second one did the rest: {summary}"
    );
    assert_eq!(counts(&summary, "services"), (0, 1), "{summary}");
    let token = printed_token(&cut);
    let server = Server::start(interrupted_db, env);
    let resumed_seen = read_back(&server, &token);
    let _ = server.terminate();
    assert_imported(&resumed_seen);
    assert_eq!(
        resumed_seen, seen,
        "an interrupted then resumed import equals a full one"
    );
}

/// (imported, already present) of `kind` in a printed summary.
fn counts(summary: &str, kind: &str) -> (u64, u64) {
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{kind} ")))
        .unwrap_or_else(|| panic!("no {kind} line: {summary}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn sqlite_import_keeps_sids_dates_and_indexes_and_resumes() {
    let db = TempDir::new();
    let other = TempDir::new();
    import_scenario(&db, &other, &[]);
}

/// A fresh, migrated PostgreSQL schema.
struct PgSchema {
    url: String,
}

impl PgSchema {
    fn create() -> Option<PgSchema> {
        let base = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let schema = format!("parley_test_{secs}_import_{}", unique());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        match runtime.block_on(parley_store_postgres::PgStore::connect_in_schema(
            &base, &schema,
        )) {
            Ok(_) => {
                let sep = if base.contains('?') { '&' } else { '?' };
                Some(PgSchema {
                    url: format!("{base}{sep}options[search_path]={schema}"),
                })
            }
            Err(e) => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true");
                if !ci && std::env::var("PARLEY_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIPPED postgres_import: PostgreSQL unreachable at {base} \
                         (PARLEY_SKIP_POSTGRES=1): {e:#}"
                    );
                    return None;
                }
                panic!("PostgreSQL unreachable at {base}: {e:#} (set PARLEY_SKIP_POSTGRES=1 outside CI to skip)");
            }
        }
    }
}

impl Db for PgSchema {
    fn url(&self) -> String {
        self.url.clone()
    }
}

#[test]
fn postgres_import_keeps_sids_dates_and_indexes_and_resumes() {
    let (Some(db), Some(other)) = (PgSchema::create(), PgSchema::create()) else {
        return;
    };
    let key = "ab".repeat(32);
    import_scenario(&db, &other, &[("PARLEY_SECRET_KEY", key.as_str())]);
}

#[test]
fn import_errors_name_the_url_and_status_and_one_service_can_be_chosen() {
    // Arrange
    let fake = FakeTwilio::start();
    let db = TempDir::new();
    let run = |extra: &[&str], token: &str| {
        let mut args = vec![
            "import",
            "twilio",
            "--account-sid",
            ACCOUNT,
            "--auth-token",
            token,
            "--twilio-base-url",
        ];
        let url = fake.url();
        args.push(&url);
        args.extend_from_slice(extra);
        parley(&db, &args)
    };
    let unknown = sid("IS", 9);
    let known = sid("IS", 1);

    // Act
    let bad_token = run(&[], "wrong-token");
    let missing = run(&["--service", &unknown], TWILIO_TOKEN);
    let one = run(&["--service", &known], TWILIO_TOKEN);

    // Assert
    assert!(!bad_token.status.success());
    let err = stderr(&bad_token);
    assert!(
        err.contains("answered HTTP 401") && err.contains("/v1/Services"),
        "{err}"
    );
    assert!(!missing.status.success());
    let err = stderr(&missing);
    assert!(
        err.contains(&format!("/v1/Services/{unknown} answered HTTP 404")),
        "{err}"
    );
    assert!(one.status.success(), "{}", stderr(&one));
    assert_eq!(
        counts(&stdout(&one), "messages"),
        (6, 0),
        "{}",
        stdout(&one)
    );
}
