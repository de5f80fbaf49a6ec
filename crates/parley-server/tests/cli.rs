//! The `parley` binary, run as an operator would, on a temporary SQLite database.

// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

#[test]
fn account_create_json_prints_credentials_and_stores_the_token_sealed() {
    // Arrange
    let dir = TempDir::new();
    // Act
    let created = json(
        &dir,
        &["account", "create", "--friendly-name", "Ops", "--json"],
    );
    // Assert
    assert_eq!(keys(&created), ["auth_token", "friendly_name", "sid"]);
    let sid = created["sid"].as_str().unwrap();
    let token = created["auth_token"].as_str().unwrap();
    assert!(sid.starts_with("AC") && is_hex32(&sid[2..]), "{sid}");
    assert!(is_hex32(token), "{token}");
    assert_eq!(created["friendly_name"], "Ops");

    let bytes = dir.database_bytes();
    assert!(
        windows_contain(&bytes, sid.as_bytes()),
        "the account is stored"
    );
    assert!(
        !windows_contain(&bytes, token.as_bytes()),
        "the token is not stored in clear"
    );

    let key_file = dir.0.join("parley.db.key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key.trim().len(), 64, "the key file holds 64 hex digits");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    }
}

#[test]
fn account_create_honours_sid_and_auth_token_and_list_hides_secrets() {
    // Arrange
    let dir = TempDir::new();
    let sid = format!("AC{}", "0123456789abcdef".repeat(2));
    // Act
    let created = json(
        &dir,
        &[
            "account",
            "create",
            "--sid",
            &sid,
            "--auth-token",
            "my-chosen-token-1",
            "--json",
        ],
    );
    let listed = json(&dir, &["account", "list", "--json"]);
    // Assert
    assert_eq!(created["sid"], sid.as_str());
    assert_eq!(created["auth_token"], "my-chosen-token-1");
    assert_eq!(created["friendly_name"], Value::Null);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["sid"], sid.as_str());
    assert!(!listed[0].to_string().contains("my-chosen-token-1"));
    assert!(listed[0].get("auth_token").is_none());

    let again = parley(&dir, &["account", "create", "--sid", &sid]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    let bad = parley(&dir, &["account", "create", "--sid", "AC123"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("AC123"), "{}", stderr(&bad));
}

#[test]
fn rotate_token_replaces_the_token_and_rejects_unknown_accounts() {
    // Arrange
    let dir = TempDir::new();
    let created = json(&dir, &["account", "create", "--json"]);
    let sid = created["sid"].as_str().unwrap();
    // Act
    let rotated = json(&dir, &["account", "rotate-token", sid, "--json"]);
    // Assert
    assert_eq!(keys(&rotated), ["auth_token", "friendly_name", "sid"]);
    assert_eq!(rotated["sid"], sid);
    assert_ne!(rotated["auth_token"], created["auth_token"]);
    assert!(is_hex32(rotated["auth_token"].as_str().unwrap()));
    let bytes = dir.database_bytes();
    assert!(!windows_contain(
        &bytes,
        rotated["auth_token"].as_str().unwrap().as_bytes()
    ));

    let unknown = format!("AC{}", "f".repeat(32));
    let out = parley(&dir, &["account", "rotate-token", &unknown]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("unknown account {unknown}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn api_keys_can_be_created_listed_and_deleted() {
    // Arrange
    let dir = TempDir::new();
    let account = json(&dir, &["account", "create", "--json"]);
    let account = account["sid"].as_str().unwrap();
    // Act
    let key = json(
        &dir,
        &[
            "api-key",
            "create",
            "--account",
            account,
            "--friendly-name",
            "ci",
            "--json",
        ],
    );
    let listed = json(&dir, &["api-key", "list", "--account", account, "--json"]);
    // Assert
    assert_eq!(keys(&key), ["account_sid", "secret", "sid"]);
    let key_sid = key["sid"].as_str().unwrap();
    let secret = key["secret"].as_str().unwrap();
    assert!(key_sid.starts_with("SK") && is_hex32(&key_sid[2..]));
    assert!(is_hex32(secret));
    assert_eq!(key["account_sid"], account);
    assert!(!windows_contain(&dir.database_bytes(), secret.as_bytes()));

    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["sid"], key_sid);
    assert_eq!(listed[0]["friendly_name"], "ci");
    assert!(listed[0].get("secret").is_none() && !listed[0].to_string().contains(secret));

    let deleted = parley(&dir, &["api-key", "delete", key_sid]);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let listed = json(&dir, &["api-key", "list", "--account", account, "--json"]);
    assert_eq!(listed, Value::Array(vec![]));

    let again = parley(&dir, &["api-key", "delete", key_sid]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("unknown API key"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn api_key_create_for_an_unknown_account_fails_clearly() {
    let dir = TempDir::new();
    let unknown = format!("AC{}", "e".repeat(32));
    let out = parley(&dir, &["api-key", "create", "--account", &unknown]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("unknown account {unknown}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unknown_database_scheme_fails_with_a_clear_message() {
    let out = parley_command()
        .args([
            "account",
            "list",
            "--database-url",
            "mysql://root:hunter2@localhost/parley",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("unsupported database URL scheme `mysql:`"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the password is not echoed: {err}"
    );
}

#[test]
fn postgres_without_a_secret_key_fails_before_connecting() {
    let out = parley_command()
        .args([
            "account",
            "list",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("PARLEY_SECRET_KEY is required"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_wrong_or_missing_key_is_refused_once_accounts_exist() {
    // Arrange
    let dir = TempDir::new();
    json(&dir, &["account", "create", "--json"]);
    // Act: another key
    let other_key = "11".repeat(32);
    let wrong = parley_env(
        &dir,
        &["account", "list"],
        &[("PARLEY_SECRET_KEY", &other_key)],
    );
    // Assert
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("cannot open the secrets"),
        "{}",
        stderr(&wrong)
    );

    // Act: the key file is lost
    std::fs::remove_file(dir.0.join("parley.db.key")).unwrap();
    let lost = parley(&dir, &["account", "list"]);
    // Assert: no new key is silently generated
    assert!(!lost.status.success());
    assert!(stderr(&lost).contains("key file"), "{}", stderr(&lost));
    assert!(!dir.0.join("parley.db.key").exists());
}

#[test]
fn config_file_supplies_settings_and_rejects_unknown_keys() {
    // Arrange
    let dir = TempDir::new();
    let good = dir.0.join("good.toml");
    std::fs::write(
        &good,
        format!("database_url = \"{}\"\nrate_limit = 10\n", dir.url()),
    )
    .unwrap();
    let bad = dir.0.join("bad.toml");
    std::fs::write(&bad, "databse_url = \"sqlite://x.db\"\n").unwrap();
    // Act
    let created = parley_command()
        .args(["account", "create", "--json", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    let rejected = parley_command()
        .args(["account", "list", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    // Assert
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(dir.db_path().exists(), "the file's database_url was used");
    assert!(!rejected.status.success());
    assert!(
        stderr(&rejected).contains("databse_url"),
        "{}",
        stderr(&rejected)
    );
}

#[test]
fn serve_prints_the_first_account_once_answers_healthz_and_stops_on_sigterm() {
    // Arrange
    let dir = TempDir::new();
    // Act: first start
    let server = Server::start(&dir, &[]);
    let health = server.get("/healthz");
    let (clean_exit, first_stdout) = server.terminate();
    // Assert
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(clean_exit, "exit 0 on SIGTERM");
    assert!(first_stdout.contains("Account SID: AC"), "{first_stdout}");
    assert!(first_stdout.contains("Auth Token:"), "{first_stdout}");
    let token = first_stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Auth Token:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(is_hex32(&token), "{token}");
    assert!(!windows_contain(&dir.database_bytes(), token.as_bytes()));

    // Act: second start on the same database
    let server = Server::start(&dir, &[]);
    let (clean_exit, second_stdout) = server.terminate();
    // Assert
    assert!(clean_exit);
    assert!(!second_stdout.contains("Account SID"), "{second_stdout}");
    assert!(!second_stdout.contains("Auth Token"), "{second_stdout}");
    assert_eq!(
        json(&dir, &["account", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_closed_stderr_takes_down_neither_requests_nor_the_shutdown() {
    // Arrange: debug logs, so every request writes log lines; then the log reader goes away.
    let dir = TempDir::new();
    let sid = "AC00000000000000000000000000000042";
    let token = "00000000000000000000000000000042";
    let server = Server::start_then_close_stderr(
        &dir,
        &[
            ("RUST_LOG", "debug"),
            ("PARLEY_BOOTSTRAP_ACCOUNT_SID", sid),
            ("PARLEY_BOOTSTRAP_AUTH_TOKEN", token),
        ],
    );
    // Give the reader thread time to drop the pipe.
    std::thread::sleep(Duration::from_millis(300));
    // Act: requests that write log lines into the broken pipe.
    let mut answers = Vec::new();
    for i in 0..3 {
        answers.push(server.call(
            "POST",
            "/v2/Services",
            (sid, token),
            &[("FriendlyName", &format!("s{i}"))],
        ));
    }
    let listed = server.call("GET", "/v2/Services", (sid, token), &[]);
    let (clean_exit, _) = server.terminate();
    // Assert: every request was answered, and SIGTERM still stops the server cleanly.
    for (status, body) in &answers {
        assert_eq!(*status, 201, "{body}");
    }
    assert_eq!(listed.0, 200, "{}", listed.1);
    assert!(clean_exit, "exit 0 on SIGTERM with stderr closed");
}

#[test]
fn serve_creates_the_bootstrap_account_from_the_environment() {
    // Arrange
    let dir = TempDir::new();
    let sid = format!("AC{}", "ab".repeat(16));
    let env = [
        ("PARLEY_BOOTSTRAP_ACCOUNT_SID", sid.as_str()),
        ("PARLEY_BOOTSTRAP_AUTH_TOKEN", "bootstrap-token-123"),
    ];
    // Act
    let server = Server::start(&dir, &env);
    let (clean_exit, stdout) = server.terminate();
    // Assert
    assert!(clean_exit);
    assert!(stdout.contains(&sid), "{stdout}");
    assert!(
        !stdout.contains("bootstrap-token-123"),
        "the token is not echoed: {stdout}"
    );
    let listed = json(&dir, &["account", "list", "--json"]);
    assert_eq!(listed[0]["sid"], sid.as_str());
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[test]
fn serve_rejects_an_invalid_bootstrap_sid() {
    let dir = TempDir::new();
    let out = parley_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(dir.url())
        .env("PARLEY_BOOTSTRAP_ACCOUNT_SID", "US0123")
        .env("PARLEY_BOOTSTRAP_AUTH_TOKEN", "bootstrap-token-123")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("PARLEY_BOOTSTRAP_ACCOUNT_SID"),
        "{}",
        stderr(&out)
    );
    assert!(
        !Path::new(&dir.db_path()).exists(),
        "fails before touching the database"
    );
}

#[test]
fn serve_that_cannot_bind_fails_clearly_and_creates_no_account() {
    // Arrange
    let dir = TempDir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // Act
    let out = parley_command()
        .args(["serve", "--listen", &addr, "--database-url"])
        .arg(dir.url())
        .output()
        .unwrap();
    // Assert
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("cannot listen on {addr}")),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("Auth Token"), "{}", stdout(&out));
    let listed = json(&dir, &["account", "list", "--json"]);
    assert_eq!(
        listed,
        Value::Array(vec![]),
        "the next start will create and print it"
    );
}

#[test]
fn the_secret_key_can_come_from_a_file_named_by_the_environment() {
    // Arrange
    let dir = TempDir::new();
    let key = "5a".repeat(32);
    let key_path = dir.0.join("secret-key.txt");
    std::fs::write(&key_path, format!("{key}\n")).unwrap();
    let key_path = key_path.display().to_string();
    // Act
    json_env(
        &dir,
        &["account", "create", "--json"],
        &[("PARLEY_SECRET_KEY_FILE", key_path.as_str())],
    );
    let same_key = parley_env(&dir, &["account", "list"], &[("PARLEY_SECRET_KEY", &key)]);
    // Assert
    assert!(
        !dir.0.join("parley.db.key").exists(),
        "no key file is generated"
    );
    assert!(same_key.status.success(), "{}", stderr(&same_key));
}

/// A raw HTTP/1.1 exchange: status and body.
fn raw_request(addr: &str, head: &str, body: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{head}Host: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn token_prints_an_access_token_the_sdk_door_accepts() {
    // Arrange: a running server with a service and an FCM credential.
    let dir = TempDir::new();
    let sid = format!("AC{}", "cd".repeat(16));
    let auth = (sid.as_str(), "token-cli-test-1");
    let server = Server::start(
        &dir,
        &[
            ("PARLEY_BOOTSTRAP_ACCOUNT_SID", auth.0),
            ("PARLEY_BOOTSTRAP_AUTH_TOKEN", auth.1),
        ],
    );
    let service = server.ok("POST", "/v2/Services", auth, &[("FriendlyName", "demo")]);
    let service = service["sid"].as_str().unwrap().to_owned();
    let sa = serde_json::json!({
        "type": "service_account", "project_id": "demo", "private_key_id": "kid",
        "private_key": include_str!("../../parley-push/tests/fixtures/TEST-ONLY-fcm-sa-key.pem"),
        "client_email": "push@demo.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string();
    server.ok(
        "POST",
        "/v2/Credentials",
        auth,
        &[("Type", "fcm"), ("Secret", &sa)],
    );
    // Act
    let out = parley(
        &dir,
        &[
            "token",
            "--service",
            &service,
            "--identity",
            "alice",
            "--ttl",
            "600",
        ],
    );
    let again = json(
        &dir,
        &[
            "token",
            "--service",
            &service,
            "--identity",
            "bob",
            "--json",
        ],
    );
    // Assert
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let body = r#"{"endpoint_platform":"cli-test","channel_type":"fcm","version":"3","message_types":["twilio.channel.new_message"],"data":{"registration_id":"fcm-device-1"}}"#;
    let (status, answer) = raw_request(
        &server.addr,
        &format!(
            "POST /v1/registrations?productId=ip_messaging HTTP/1.1\r\nX-Twilio-Token: {token}\r\n\
             Content-Type: application/json\r\n"
        ),
        body,
    );
    assert_eq!(status, 201, "{answer}");
    let bindings = server.ok(
        "GET",
        &format!("/v2/Services/{service}/Users/alice/Bindings"),
        auth,
        &[],
    );
    let registered: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        bindings["bindings"][0]["sid"], registered["id"],
        "{bindings}"
    );
    assert_eq!(bindings["bindings"][0]["identity"], "alice");
    assert_eq!(
        keys(&again),
        [
            "account_sid",
            "api_key_sid",
            "expires",
            "identity",
            "service_sid",
            "token"
        ]
    );
    assert_eq!(again["identity"], "bob");
    assert_eq!(again["account_sid"], sid.as_str());
    let listed = json(&dir, &["api-key", "list", "--account", &sid, "--json"]);
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "both tokens were signed with one key: {listed}"
    );
    assert_eq!(listed[0]["sid"], again["api_key_sid"]);
    let (clean_exit, _) = server.terminate();
    assert!(clean_exit);
}

#[test]
fn token_for_an_unknown_service_fails_clearly() {
    // Arrange
    let dir = TempDir::new();
    json(&dir, &["account", "create", "--json"]);
    // Act
    let out = parley(
        &dir,
        &[
            "token",
            "--service",
            "IS0123456789abcdef0123456789abcdef",
            "--identity",
            "alice",
        ],
    );
    let bad_ttl = parley(
        &dir,
        &[
            "token",
            "--service",
            "IS0123456789abcdef0123456789abcdef",
            "--identity",
            "a",
            "--ttl",
            "0",
        ],
    );
    let not_a_sid = parley(&dir, &["token", "--service", "nope", "--identity", "a"]);
    // Assert
    assert!(!out.status.success());
    assert!(
        stdout(&out).is_empty(),
        "no token printed: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("unknown service IS0123456789abcdef0123456789abcdef"),
        "{}",
        stderr(&out)
    );
    assert!(!bad_ttl.status.success());
    assert!(stderr(&bad_ttl).contains("--ttl"), "{}", stderr(&bad_ttl));
    assert!(!not_a_sid.status.success());
}
