//! The `parley` binary on PostgreSQL: each test gets a fresh schema in `TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`), selected with the URL's
//! `options[search_path]`. Unreachable PostgreSQL fails the tests unless
//! `PARLEY_SKIP_POSTGRES=1` is set outside CI (the project-wide convention).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use parley_core::store::AccountStore as _;
use parley_core::AccountSid;
use parley_store_postgres::PgStore;

/// A fresh, migrated schema. Named like the store tests' schemas (`parley_test_<secs>_…`), so
/// their stale-schema clean-up removes it later.
struct PgSchema {
    url: String,
    store: PgStore,
    runtime: tokio::runtime::Runtime,
}

impl PgSchema {
    /// `None` when PostgreSQL is unreachable and skipping is allowed.
    fn create() -> Option<PgSchema> {
        let base = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let schema = format!("parley_test_{secs}_cli_{}", unique());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        match runtime.block_on(PgStore::connect_in_schema(&base, &schema)) {
            Ok(store) => {
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options[search_path]={schema}");
                Some(PgSchema {
                    url,
                    store,
                    runtime,
                })
            }
            Err(e) => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true");
                if !ci && std::env::var("PARLEY_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
                    use std::io::Write as _;
                    let test = std::thread::current()
                        .name()
                        .unwrap_or("a PostgreSQL test")
                        .to_owned();
                    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: PostgreSQL unreachable at {base} (PARLEY_SKIP_POSTGRES=1): {e:#}");
                    return None;
                }
                panic!("PostgreSQL unreachable at {base}: {e:#} (set PARLEY_SKIP_POSTGRES=1 outside CI to skip)");
            }
        }
    }

    fn sealed_token(&self, sid: &str) -> Vec<u8> {
        let sid = AccountSid::parse(sid).unwrap();
        self.runtime
            .block_on(self.store.fetch_account(&sid))
            .unwrap()
            .auth_token_sealed
    }
}

impl Db for PgSchema {
    fn url(&self) -> String {
        self.url.clone()
    }
}

#[test]
fn postgres_admin_commands_and_serve_use_the_shared_key_and_refuse_another() {
    // Arrange
    let Some(db) = PgSchema::create() else { return };
    let key = "ab".repeat(32);
    let env = [("PARLEY_SECRET_KEY", key.as_str())];
    // Act
    let created = json_env(&db, &["account", "create", "--json"], &env);
    let key_made = json_env(
        &db,
        &[
            "api-key",
            "create",
            "--account",
            created["sid"].as_str().unwrap(),
            "--json",
        ],
        &env,
    );
    let server = Server::start(&db, &env);
    let health = server.get("/healthz");
    let (clean_exit, stdout) = server.terminate();
    let wrong_key = "cd".repeat(32);
    let wrong = parley_env(
        &db,
        &["account", "list"],
        &[("PARLEY_SECRET_KEY", &wrong_key)],
    );
    let no_key = parley(&db, &["account", "list"]);
    // Assert
    let sid = created["sid"].as_str().unwrap();
    let token = created["auth_token"].as_str().unwrap();
    assert!(is_hex32(token));
    assert!(
        !windows_contain(&db.sealed_token(sid), token.as_bytes()),
        "stored sealed"
    );
    assert_eq!(key_made["account_sid"], sid);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(clean_exit, "exit 0 on SIGTERM");
    assert!(
        !stdout.contains("Auth Token"),
        "accounts exist: no bootstrap: {stdout}"
    );
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("cannot open the secrets"),
        "{}",
        stderr(&wrong)
    );
    assert!(!no_key.status.success());
    assert!(
        stderr(&no_key).contains("PARLEY_SECRET_KEY is required"),
        "{}",
        stderr(&no_key)
    );
}

#[test]
fn postgres_first_start_prints_the_account_once() {
    // Arrange
    let Some(db) = PgSchema::create() else { return };
    let key = "ef".repeat(32);
    let env = [("PARLEY_SECRET_KEY", key.as_str())];
    // Act
    let (first_exit, first) = Server::start(&db, &env).terminate();
    let (second_exit, second) = Server::start(&db, &env).terminate();
    // Assert
    assert!(first_exit && second_exit);
    assert!(first.contains("Account SID: AC"), "{first}");
    assert!(!second.contains("Account SID"), "{second}");
    let listed = json_env(&db, &["account", "list", "--json"], &env);
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

// ---- push across processes ------------------------------------------------------------------

const P8: &str = include_str!("../../parley-push/tests/fixtures/TEST-ONLY-apns-authkey.p8");
const SA_KEY: &str = include_str!("../../parley-push/tests/fixtures/TEST-ONLY-fcm-sa-key.pem");
const BOOT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const BOOT_TOKEN: &str = "0123456789abcdef0123456789abcdef";
const AUTH: (&str, &str) = (BOOT_SID, BOOT_TOKEN);

/// The environment of a push node: shared key, bootstrap account, providers at the fakes.
fn push_env(key: &str, fakes: &parley_fakes::Fakes, lease: &str) -> Vec<(String, String)> {
    [
        ("PARLEY_SECRET_KEY", key),
        ("PARLEY_BOOTSTRAP_ACCOUNT_SID", BOOT_SID),
        ("PARLEY_BOOTSTRAP_AUTH_TOKEN", BOOT_TOKEN),
        ("PARLEY_APNS_URL", fakes.apns_url.as_str()),
        ("PARLEY_APNS_SANDBOX_URL", fakes.apns_url.as_str()),
        ("PARLEY_FCM_URL", fakes.fcm_url.as_str()),
        ("PARLEY_FCM_TOKEN_URI_ALLOW", fakes.fcm_url.as_str()),
        ("PARLEY_PUSH_LEASE_SECS", lease),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn start(db: &PgSchema, env: &[(String, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start(db, &env)
}

/// Over REST on `node`: both credentials, a service with new-message pushes on, a channel, and
/// `members` members with one binding each (odd ones APNs, even ones FCM; token `tok-<i>`).
/// Returns (service, channel).
fn push_world(node: &Server, fakes: &parley_fakes::Fakes, members: usize) -> (String, String) {
    let apns_secret = serde_json::json!({
        "key_id": "KEY1234567", "team_id": "TEAM123456", "topic": "com.example.chat"
    })
    .to_string();
    node.ok(
        "POST",
        "/v2/Credentials",
        AUTH,
        &[
            ("Type", "apn"),
            ("PrivateKey", P8),
            ("Secret", &apns_secret),
        ],
    );
    let sa = serde_json::json!({
        "type": "service_account", "project_id": "demo-project", "private_key_id": "kid",
        "private_key": SA_KEY, "client_email": "push@demo-project.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": fakes.token_uri,
    })
    .to_string();
    node.ok(
        "POST",
        "/v2/Credentials",
        AUTH,
        &[("Type", "fcm"), ("Secret", &sa)],
    );
    let svc = node.ok("POST", "/v2/Services", AUTH, &[("FriendlyName", "push")]);
    let svc = svc["sid"].as_str().unwrap().to_owned();
    node.ok(
        "POST",
        &format!("/v2/Services/{svc}"),
        AUTH,
        &[
            ("Notifications.NewMessage.Enabled", "true"),
            ("Limits.ChannelMembers", "1000"),
        ],
    );
    let ch = node.ok(
        "POST",
        &format!("/v2/Services/{svc}/Channels"),
        AUTH,
        &[("UniqueName", "general")],
    );
    let ch = ch["sid"].as_str().unwrap().to_owned();
    for i in 0..members {
        let identity = format!("user-{i}");
        let kind = if i % 2 == 1 { "apn" } else { "fcm" };
        node.ok(
            "POST",
            &format!("/v2/Services/{svc}/Users/{identity}/Bindings"),
            AUTH,
            &[("BindingType", kind), ("Address", &format!("tok-{i}"))],
        );
        node.ok(
            "POST",
            &format!("/v2/Services/{svc}/Channels/{ch}/Members"),
            AUTH,
            &[("Identity", &identity)],
        );
    }
    (svc, ch)
}

/// Successful sends the fakes saw: (device token, message SID, the send's stable id —
/// `apns-id` or FCM `twi_message_id`).
fn sends(fakes: &parley_fakes::Fakes) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for r in fakes.apns.requests() {
        if r.status == 200 {
            out.push((
                r.device_token.clone().unwrap_or_default(),
                r.body["message_sid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r.headers.get("apns-id").cloned().unwrap_or_default(),
            ));
        }
    }
    for r in fakes.fcm.requests() {
        if r.status == 200 && r.provider == "fcm" {
            let data = &r.body["message"]["data"];
            out.push((
                r.device_token.clone().unwrap_or_default(),
                data["message_sid"].as_str().unwrap_or_default().to_owned(),
                data["twi_message_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
    }
    out
}

/// Wait until `done` holds for the fakes' successful sends (or panic after `secs`).
fn wait_for_sends(
    fakes: &parley_fakes::Fakes,
    secs: u64,
    done: impl Fn(&[(String, String, String)]) -> bool,
) -> Vec<(String, String, String)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let seen = sends(fakes);
        if done(&seen) {
            return seen;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out with {} sends",
            seen.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `parley_push_sends_total{…,outcome="delivered"}` summed over providers, from `/metrics`.
fn delivered_on(node: &Server) -> u64 {
    node.get("/metrics")
        .lines()
        .filter(|l| l.starts_with("parley_push_sends_total") && l.contains("outcome=\"delivered\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Two `parley serve` processes on one PostgreSQL database, messages posted through both:
/// every other member's device gets each message exactly once, whichever node fanned it out
/// and sent it.
#[test]
fn two_serve_nodes_on_one_postgres_deliver_each_notification_once() {
    // Arrange
    let Some(db) = PgSchema::create() else { return };
    let fakes = db.runtime.block_on(parley_fakes::spawn_fakes()).unwrap();
    let env = push_env(&"cd".repeat(32), &fakes, "60");
    let a = start(&db, &env);
    let b = start(&db, &env);
    const MEMBERS: usize = 40;
    const MESSAGES: usize = 12;
    let (svc, ch) = push_world(&a, &fakes, MEMBERS);

    // Act: messages from a non-member, alternately through each node
    let mut message_sids = Vec::new();
    for m in 0..MESSAGES {
        let node = if m % 2 == 0 { &a } else { &b };
        let msg = node.ok(
            "POST",
            &format!("/v2/Services/{svc}/Channels/{ch}/Messages"),
            AUTH,
            &[("From", "sender"), ("Body", &format!("hello {m}"))],
        );
        message_sids.push(msg["sid"].as_str().unwrap().to_owned());
    }
    let expected = MEMBERS * MESSAGES;
    wait_for_sends(&fakes, 60, |s| s.len() >= expected);
    // Anything sent twice would arrive within a moment more.
    std::thread::sleep(std::time::Duration::from_secs(2));

    // Assert: each (device, message) exactly once
    let seen = sends(&fakes);
    let mut pairs: Vec<(String, String)> = seen
        .iter()
        .map(|(t, m, _)| (t.clone(), m.clone()))
        .collect();
    pairs.sort();
    let unique: std::collections::BTreeSet<(String, String)> = pairs.iter().cloned().collect();
    assert_eq!(pairs.len(), expected, "sends, duplicates included");
    assert_eq!(unique.len(), expected, "distinct (device, message) pairs");
    for m in &message_sids {
        assert_eq!(
            unique.iter().filter(|(_, x)| x == m).count(),
            MEMBERS,
            "every member's device got {m}"
        );
    }
    let (on_a, on_b) = (delivered_on(&a), delivered_on(&b));
    eprintln!("delivered by node a: {on_a}, by node b: {on_b}");
    assert_eq!(on_a + on_b, expected as u64, "the nodes' own counts add up");
    assert!(a.terminate().0, "node a exits cleanly");
    assert!(b.terminate().0, "node b exits cleanly");
}

/// A node that crashes (SIGKILL) in the middle of a fan-out's sends loses nothing: a node
/// started afterwards takes the work over once the leases run out, and every device gets the
/// message. A device reached twice (sent just before the crash) sees the same stable id both
/// times.
#[test]
fn a_node_killed_mid_fan_out_loses_nothing_after_restart() {
    // Arrange: slow providers, so the sends are in flight when the node dies
    let Some(db) = PgSchema::create() else { return };
    let fakes = db.runtime.block_on(parley_fakes::spawn_fakes()).unwrap();
    let env = push_env(&"ef".repeat(32), &fakes, "25");
    let first = start(&db, &env);
    const MEMBERS: usize = 200;
    let (svc, ch) = push_world(&first, &fakes, MEMBERS);
    fakes.apns.set_delay(std::time::Duration::from_millis(1500));
    fakes.fcm.set_delay(std::time::Duration::from_millis(1500));
    fakes.apns.set_mode(parley_fakes::FakeMode::Slow);
    fakes.fcm.set_mode(parley_fakes::FakeMode::Slow);

    // Act: post, wait until the fan-out wrote its deliveries and sends are under way, crash
    first.ok(
        "POST",
        &format!("/v2/Services/{svc}/Channels/{ch}/Messages"),
        AUTH,
        &[("From", "sender"), ("Body", "before the crash")],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (outbox, deliveries) = db
            .runtime
            .block_on(parley_core::store::PushStore::push_queue_depth(&db.store))
            .unwrap();
        if outbox == 0 && deliveries > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no fan-out happened");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    first.crash();
    let pending = db
        .runtime
        .block_on(parley_core::store::PushStore::push_queue_depth(&db.store))
        .unwrap()
        .1;
    assert!(pending > 0, "the crash left sends unfinished");
    fakes.apns.set_mode(parley_fakes::FakeMode::Normal);
    fakes.fcm.set_mode(parley_fakes::FakeMode::Normal);
    let second = start(&db, &env);

    // Assert: every device got the message (after the 25 s lease at the latest)
    let seen = wait_for_sends(&fakes, 90, |s| {
        s.iter()
            .map(|(t, _, _)| t.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= MEMBERS
    });
    let tokens: std::collections::BTreeSet<&str> =
        seen.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(tokens.len(), MEMBERS);
    for i in 0..MEMBERS {
        assert!(
            tokens.contains(format!("tok-{i}").as_str()),
            "tok-{i} reached"
        );
    }
    let mut ids: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for (token, _, id) in &seen {
        let first_id = ids.entry(token.as_str()).or_insert(id.as_str());
        assert_eq!(*first_id, id.as_str(), "a repeat to {token} keeps its id");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while db
        .runtime
        .block_on(parley_core::store::PushStore::push_queue_depth(&db.store))
        .unwrap()
        != (0, 0)
    {
        assert!(std::time::Instant::now() < deadline, "queue not drained");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(second.terminate().0);
}
