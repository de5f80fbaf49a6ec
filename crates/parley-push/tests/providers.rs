//! The real APNs and FCM senders against the in-process fakes (real HTTP/2, real OAuth2 flow).
//!
//! Keys come from `tests/fixtures/TEST-ONLY-*` (see the README there).

#![allow(clippy::unwrap_used)] // tests may unwrap (helpers outside #[test] fns too)

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parley_core::credential::{CredentialSecrets, PushType};
use parley_fakes::{spawn_apns_tls, spawn_fakes, FakeMode, FakeTls, Fakes};
use parley_push::apns::{ApnsConfig, ApnsSender};
use parley_push::fcm::{FcmConfig, FcmSender, LEGACY_KEY_REASON};
use parley_push::notification::stable_uuid;
use parley_push::payload::{apns_payload, fcm_message};
use parley_push::retry::{send_with_retry, RetryPolicy};
use parley_push::{
    Notification, NotificationKind, Providers, PushCredential, PushSender, RecordingSender,
    SendOutcome, Target,
};
use serde_json::{json, Value};

const CERT: &str = include_str!("fixtures/TEST-ONLY-apns-cert.pem");
const CERT_KEY: &str = include_str!("fixtures/TEST-ONLY-apns-cert-key.pem");
const CA: &str = include_str!("fixtures/TEST-ONLY-ca.pem");
const SERVER_CERT: &str = include_str!("fixtures/TEST-ONLY-server.pem");
const SERVER_KEY: &str = include_str!("fixtures/TEST-ONLY-server-key.pem");
const P8: &str = include_str!("fixtures/TEST-ONLY-apns-authkey.p8");
const P8_PUB: &str = include_str!("fixtures/TEST-ONLY-apns-authkey-pub.pem");
const SA_KEY: &str = include_str!("fixtures/TEST-ONLY-fcm-sa-key.pem");
const SA_PUB: &str = include_str!("fixtures/TEST-ONLY-fcm-sa-pub.pem");

fn notification() -> Notification {
    Notification {
        id: "EVtest0001".into(),
        kind: NotificationKind::NewMessage,
        service_sid: "IS00000000000000000000000000000001".into(),
        channel_sid: "CH296f4a24749d4347a2bf7b4a4754ecb4".into(),
        channel_unique_name: Some("room_42".into()),
        channel_friendly_name: None,
        message_sid: Some("IM31b349972c644c3184b11ee4dba44169".into()),
        message_index: Some(49),
        author: Some("author@example.com".into()),
        body: Some("Quiubo ".into()),
        recipient: "bob".into(),
        badge: Some(1),
        sound: Some("ding".into()),
        text: "room_42;author@example.com: Quiubo ".into(),
    }
}

fn credential(kind: PushType, sandbox: bool, secrets: CredentialSecrets) -> Arc<PushCredential> {
    Arc::new(PushCredential {
        sid: format!("CR{}", kind.as_str()),
        credential_type: kind,
        sandbox,
        updated: 1,
        secrets,
        missing_secret: None,
    })
}

fn apns_cert_credential() -> Arc<PushCredential> {
    credential(
        PushType::Apn,
        false,
        CredentialSecrets {
            certificate: Some(CERT.into()),
            private_key: Some(CERT_KEY.into()),
            ..Default::default()
        },
    )
}

fn apns_token_credential() -> Arc<PushCredential> {
    let mut c = (*token_credential_inner()).clone();
    c.sid = "CRapntoken".into();
    Arc::new(c)
}

fn token_credential_inner() -> Arc<PushCredential> {
    credential(
        PushType::Apn,
        false,
        CredentialSecrets {
            private_key: Some(P8.into()),
            secret: Some(
                json!({"key_id": "KEY1234567", "team_id": "TEAM123456", "topic": "com.example.token"})
                    .to_string(),
            ),
            ..Default::default()
        },
    )
}

fn service_account_json(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": "kid-test-only",
        "private_key": SA_KEY,
        "client_email": "push@demo-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    })
    .to_string()
}

fn fcm_credential(fakes: &Fakes) -> Arc<PushCredential> {
    credential(
        PushType::Fcm,
        false,
        CredentialSecrets {
            secret: Some(service_account_json(&fakes.token_uri)),
            ..Default::default()
        },
    )
}

fn target(address: &str, binding_type: PushType, cred: &Arc<PushCredential>) -> Target {
    Target {
        binding_sid: format!("BS{address}"),
        binding_type,
        address: address.into(),
        credential: cred.clone(),
    }
}

async fn setup() -> (Fakes, ApnsSender, FcmSender) {
    let fakes = spawn_fakes().await.unwrap();
    let apns = ApnsSender::new(ApnsConfig::with_base_url(&fakes.apns_url));
    let fcm = FcmSender::new(FcmConfig::with_base_url(&fakes.fcm_url));
    (fakes, apns, fcm)
}

// ---------------------------------------------------------------------------------------------
// APNs

/// `ExpiredProviderToken`: a fresh provider JWT is signed and the push sent again at once; it
/// is delivered, not a credential failure.
#[tokio::test]
async fn apns_expired_provider_token_is_resigned_and_resent_at_once() {
    let (fakes, apns, _) = setup().await;
    let cred = apns_token_credential();
    let n = notification();
    let first = apns
        .send(&target("aaaa1111", PushType::Apn, &cred), &n)
        .await;
    assert_eq!(first, SendOutcome::Delivered);
    let outcome = apns
        .send(&target("expiredjwt-1", PushType::Apn, &cred), &n)
        .await;
    assert_eq!(outcome, SendOutcome::Delivered);
    let statuses: Vec<u16> = fakes
        .apns
        .requests()
        .iter()
        .filter(|r| r.device_token.as_deref() == Some("expiredjwt-1"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [403, 200]);
    let client = apns.client(&cred).unwrap();
    assert_eq!(client.signer().unwrap().signed_count(), 2);
}

#[tokio::test]
async fn apns_delivers_with_the_exact_headers_and_payload() {
    let (fakes, apns, _) = setup().await;
    let n = notification();
    let t = target("a1b2c3d4", PushType::Apn, &apns_cert_credential());
    assert_eq!(apns.send(&t, &n).await, SendOutcome::Delivered);

    let reqs = fakes.apns.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.status, 200);
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/3/device/a1b2c3d4");
    assert_eq!(r.version, "HTTP/2.0");
    assert_eq!(r.headers["apns-topic"], "com.example.parley");
    assert_eq!(r.headers["apns-push-type"], "alert");
    assert_eq!(r.headers["apns-priority"], "10");
    assert_eq!(r.headers["apns-id"], stable_uuid(&n.id, "BSa1b2c3d4"));
    assert!(!r.headers.contains_key("authorization"));
    let exp: u64 = r.headers["apns-expiration"].parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 86_000..=now + 86_500).contains(&exp),
        "{exp} vs {now}"
    );
    let expected: Value = serde_json::from_slice(&apns_payload(&n).unwrap()).unwrap();
    assert_eq!(r.body, expected);
    assert_eq!(
        r.body["aps"],
        json!({"alert": {"body": "room_42;author@example.com: Quiubo "}, "sound": "ding", "badge": 1})
    );

    // Repeating the same send repeats the same apns-id.
    apns.send(&t, &n).await;
    let reqs = fakes.apns.requests();
    assert_eq!(reqs[1].headers["apns-id"], reqs[0].headers["apns-id"]);
    assert_eq!(apns.cached_clients(), 1);
}

#[tokio::test]
async fn apns_dead_tokens_are_invalid() {
    let (fakes, apns, _) = setup().await;
    let cred = apns_cert_credential();
    for (token, reason) in [
        ("dead-1", "Unregistered"),
        ("badtoken-1", "BadDeviceToken"),
        ("wrongtopic-1", "DeviceTokenNotForTopic"),
    ] {
        match apns
            .send(&target(token, PushType::Apn, &cred), &notification())
            .await
        {
            SendOutcome::InvalidToken { reason: r } => assert!(r.contains(reason), "{r}"),
            other => panic!("{token}: {other:?}"),
        }
    }
    let statuses: Vec<u16> = fakes.apns.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [410, 400, 400]);
    // A token that cannot be a path segment is refused without a request.
    assert!(matches!(
        apns.send(&target("a/b", PushType::Apn, &cred), &notification())
            .await,
        SendOutcome::InvalidToken { .. }
    ));
    assert_eq!(fakes.apns.requests().len(), 3);
}

#[tokio::test]
async fn apns_429_retry_after_and_5xx_retry() {
    let (fakes, apns, _) = setup().await;
    let cred = apns_cert_credential();
    let n = notification();
    match apns
        .send(&target("ratelimit-1", PushType::Apn, &cred), &n)
        .await
    {
        SendOutcome::Retry { after, reason } => {
            assert_eq!(after, Some(Duration::from_secs(7)));
            assert!(reason.contains("TooManyRequests"));
        }
        other => panic!("{other:?}"),
    }
    fakes.apns.set_retry_after(3);
    assert!(matches!(
        apns.send(&target("ratelimit-2", PushType::Apn, &cred), &n).await,
        SendOutcome::Retry { after: Some(d), .. } if d == Duration::from_secs(3)
    ));
    for token in ["error-1", "unavailable-1"] {
        assert!(
            matches!(
                apns.send(&target(token, PushType::Apn, &cred), &n).await,
                SendOutcome::Retry { after: None, .. }
            ),
            "{token}"
        );
    }
}

#[tokio::test]
async fn apns_forbidden_is_a_credential_failure() {
    let (_fakes, apns, _) = setup().await;
    assert!(matches!(
        apns.send(
            &target("forbidden-1", PushType::Apn, &apns_cert_credential()),
            &notification()
        )
        .await,
        SendOutcome::CredentialFailed { .. }
    ));
    // A credential without usable secrets fails without a request.
    let mut empty = (*credential(PushType::Apn, false, CredentialSecrets::default())).clone();
    empty.sid = "CRempty".into();
    let empty = Arc::new(empty);
    assert!(matches!(
        apns.send(&target("a1", PushType::Apn, &empty), &notification())
            .await,
        SendOutcome::CredentialFailed { .. }
    ));
}

#[tokio::test]
async fn apns_token_auth_sends_a_cached_es256_jwt() {
    let (fakes, apns, _) = setup().await;
    let cred = apns_token_credential();
    for tok in ["aa01", "aa02", "aa03"] {
        assert_eq!(
            apns.send(&target(tok, PushType::Apn, &cred), &notification())
                .await,
            SendOutcome::Delivered
        );
    }
    let reqs = fakes.apns.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].headers["apns-topic"], "com.example.token");
    let auth = &reqs[0].headers["authorization"];
    assert!(reqs.iter().all(|r| &r.headers["authorization"] == auth));
    let jwt = auth.strip_prefix("bearer ").unwrap();
    let mut v = Validation::new(Algorithm::ES256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(
        jwt,
        &DecodingKey::from_ec_pem(P8_PUB.as_bytes()).unwrap(),
        &v,
    )
    .unwrap();
    assert_eq!(data.header.kid.as_deref(), Some("KEY1234567"));
    assert_eq!(data.claims["iss"], "TEAM123456");
    assert!(data.claims["iat"].is_u64());
    let client = apns.client(&cred).unwrap();
    assert_eq!(client.signer().unwrap().signed_count(), 1);
}

#[tokio::test]
async fn apns_sandbox_flag_selects_the_sandbox_url() {
    let fakes = spawn_fakes().await.unwrap();
    let config = ApnsConfig {
        production_url: "http://127.0.0.1:9".into(),
        sandbox_url: fakes.apns_url.clone(),
        ..ApnsConfig::default()
    };
    let apns = ApnsSender::new(config);
    let mut cred = (*apns_cert_credential()).clone();
    cred.sandbox = true;
    let cred = Arc::new(cred);
    assert_eq!(
        apns.send(&target("a1", PushType::Apn, &cred), &notification())
            .await,
        SendOutcome::Delivered
    );
    // Production goes to the (closed) production URL: a network error is a Retry.
    assert!(matches!(
        apns.send(
            &target("a1", PushType::Apn, &apns_cert_credential()),
            &notification()
        )
        .await,
        SendOutcome::Retry { .. }
    ));
    assert_eq!(fakes.apns.requests().len(), 1);
}

#[tokio::test]
async fn apns_slow_answers_time_out_as_retry() {
    let fakes = spawn_fakes().await.unwrap();
    fakes.apns.set_delay(Duration::from_secs(5));
    let apns = ApnsSender::new(ApnsConfig {
        request_timeout: Duration::from_millis(300),
        ..ApnsConfig::with_base_url(&fakes.apns_url)
    });
    let started = std::time::Instant::now();
    assert!(matches!(
        apns.send(
            &target("slow-1", PushType::Apn, &apns_cert_credential()),
            &notification()
        )
        .await,
        SendOutcome::Retry { .. }
    ));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn apns_certificate_auth_presents_the_client_certificate_over_tls() {
    let tls = FakeTls {
        server_cert_pem: SERVER_CERT,
        server_key_pem: SERVER_KEY,
        client_ca_pem: CA,
    };
    let (addr, fake) = spawn_apns_tls(([127, 0, 0, 1], 0).into(), tls, false)
        .await
        .unwrap();
    let config = ApnsConfig {
        root_certificates: vec![CA.to_owned()],
        ..ApnsConfig::with_base_url(&format!("https://127.0.0.1:{}", addr.port()))
    };
    let apns = ApnsSender::new(config);
    let n = notification();
    assert_eq!(
        apns.send(&target("a1b2", PushType::Apn, &apns_cert_credential()), &n)
            .await,
        SendOutcome::Delivered
    );
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].version, "HTTP/2.0");
    assert_eq!(reqs[0].headers["apns-topic"], "com.example.parley");
    assert_eq!(fake.tls_handshakes_refused(), 0);

    // Without a client certificate (token auth) this server refuses the handshake: a network
    // error, so Retry, and no request arrives.
    assert!(matches!(
        apns.send(&target("a1b2", PushType::Apn, &apns_token_credential()), &n)
            .await,
        SendOutcome::Retry { .. }
    ));
    assert_eq!(fake.requests().len(), 1);
    assert!(fake.tls_handshakes_refused() >= 1);

    // The server certificate is checked too: without the test CA as a root, Retry.
    let untrusting = ApnsSender::new(ApnsConfig::with_base_url(&format!(
        "https://127.0.0.1:{}",
        addr.port()
    )));
    assert!(matches!(
        untrusting
            .send(&target("a1b2", PushType::Apn, &apns_cert_credential()), &n)
            .await,
        SendOutcome::Retry { .. }
    ));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn apns_client_cache_follows_credential_updates() {
    let (_fakes, apns, _) = setup().await;
    let cred = apns_cert_credential();
    let a = apns.client(&cred).unwrap();
    let b = apns.client(&cred).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let mut updated = (*cred).clone();
    updated.updated = 2;
    let c = apns.client(&updated).unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
    assert_eq!(apns.cached_clients(), 1);
}

// ---------------------------------------------------------------------------------------------
// FCM

#[tokio::test]
async fn fcm_delivers_the_exact_payload_with_an_oauth_token() {
    let (fakes, _, fcm) = setup().await;
    let n = notification();
    let t = target("fcm-token-1", PushType::Fcm, &fcm_credential(&fakes));
    assert_eq!(fcm.send(&t, &n).await, SendOutcome::Delivered);

    let oauth = fakes.fcm.requests_of("oauth");
    assert_eq!(oauth.len(), 1);
    assert_eq!(oauth[0].status, 200);
    assert_eq!(
        oauth[0].body["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    // The assertion is a valid RS256 JWT signed by the service-account key.
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[fakes.token_uri.as_str()]);
    let data = jsonwebtoken::decode::<Value>(
        oauth[0].body["assertion"].as_str().unwrap(),
        &DecodingKey::from_rsa_pem(SA_PUB.as_bytes()).unwrap(),
        &v,
    )
    .unwrap();
    assert_eq!(data.header.kid.as_deref(), Some("kid-test-only"));
    assert_eq!(
        data.claims["scope"],
        "https://www.googleapis.com/auth/firebase.messaging"
    );

    let sends = fakes.fcm.requests_of("fcm");
    assert_eq!(sends.len(), 1);
    let r = &sends[0];
    assert_eq!(r.status, 200);
    assert_eq!(r.path, "/v1/projects/demo-project/messages:send");
    assert_eq!(r.headers["authorization"], "Bearer fake-access-1");
    assert_eq!(r.body, fcm_message(&n, "fcm-token-1").unwrap());
    let data = r.body["message"]["data"].as_object().unwrap();
    assert_eq!(data["twi_sound"], "ding");
    assert_eq!(data["message_index"], "49");
    assert!(!data.contains_key("badge"));
    assert_eq!(r.body["message"]["android"]["ttl"], "86400s");
}

#[tokio::test]
async fn fcm_access_token_is_fetched_once_and_cached() {
    let (fakes, _, fcm) = setup().await;
    let cred = fcm_credential(&fakes);
    let n = notification();
    for i in 0..4 {
        let t = target(&format!("tok-{i}"), PushType::Fcm, &cred);
        assert_eq!(fcm.send(&t, &n).await, SendOutcome::Delivered);
    }
    // Concurrent sends on a fresh sender still fetch once.
    let fcm2 = FcmSender::new(FcmConfig::with_base_url(&fakes.fcm_url));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..5 {
        let (fcm2, n, t) = (
            fcm2.clone(),
            n.clone(),
            target(&format!("c-{i}"), PushType::Gcm, &cred),
        );
        set.spawn(async move { fcm2.send(&t, &n).await });
    }
    while let Some(o) = set.join_next().await {
        assert_eq!(o.unwrap(), SendOutcome::Delivered);
    }
    assert_eq!(fakes.fcm.access_tokens_issued(), 2);
    assert_eq!(fakes.fcm.requests_of("oauth").len(), 2);
    assert_eq!(fakes.fcm.requests_of("fcm").len(), 9);
}

#[tokio::test]
async fn fcm_access_token_is_refreshed_before_it_expires() {
    let fakes = spawn_fakes().await.unwrap();
    // The fake's tokens live 3600 s: a margin above that makes every cached token "about to
    // expire", so each send fetches a new one.
    let fcm = FcmSender::new(FcmConfig {
        refresh_margin: Duration::from_secs(3601),
        ..FcmConfig::with_base_url(&fakes.fcm_url)
    });
    let cred = fcm_credential(&fakes);
    for _ in 0..2 {
        assert_eq!(
            fcm.send(&target("tok", PushType::Fcm, &cred), &notification())
                .await,
            SendOutcome::Delivered
        );
    }
    assert_eq!(fakes.fcm.access_tokens_issued(), 2);
    let auths: Vec<String> = fakes
        .fcm
        .requests_of("fcm")
        .iter()
        .map(|r| r.headers["authorization"].clone())
        .collect();
    assert_eq!(auths, ["Bearer fake-access-1", "Bearer fake-access-2"]);
}

#[tokio::test]
async fn fcm_token_uri_outside_the_allow_list_is_never_contacted() {
    let (fakes, _, fcm) = setup().await;
    let elsewhere = spawn_fakes().await.unwrap();
    let cred = credential(
        PushType::Fcm,
        false,
        CredentialSecrets {
            secret: Some(service_account_json(&elsewhere.token_uri)),
            ..Default::default()
        },
    );
    let outcome = fcm
        .send(&target("fcm-1", PushType::Fcm, &cred), &notification())
        .await;
    assert!(
        matches!(&outcome, SendOutcome::CredentialFailed { reason } if reason.contains("PARLEY_FCM_TOKEN_URI_ALLOW")),
        "{outcome:?}"
    );
    assert!(elsewhere.fcm.requests().is_empty(), "never contacted");
    assert!(fakes.fcm.requests().is_empty());
}

#[tokio::test]
async fn fcm_token_endpoint_errors_are_reduced_to_their_code() {
    let (fakes, _, fcm) = setup().await;
    // The fake refuses an assertion whose audience is not its token endpoint, explaining why
    // in `error_description`: that text must not reach the reason.
    let cred = credential(
        PushType::Fcm,
        false,
        CredentialSecrets {
            secret: Some(service_account_json(&format!("{}?x", fakes.token_uri))),
            ..Default::default()
        },
    );
    let outcome = fcm
        .send(&target("fcm-1", PushType::Fcm, &cred), &notification())
        .await;
    assert_eq!(
        outcome,
        SendOutcome::CredentialFailed {
            reason:
                "OAuth2 token endpoint answered 400 invalid_grant: the access token request failed"
                    .into()
        }
    );
    assert_eq!(fakes.fcm.requests_of("oauth").len(), 1);
}

#[tokio::test]
async fn fcm_error_answers() {
    let (fakes, _, fcm) = setup().await;
    let cred = fcm_credential(&fakes);
    let n = notification();
    let send = |tok: &str| {
        let t = target(tok, PushType::Fcm, &cred);
        let fcm = fcm.clone();
        let n = n.clone();
        async move { fcm.send(&t, &n).await }
    };
    assert!(
        matches!(send("dead-1").await, SendOutcome::InvalidToken { reason } if reason.contains("UNREGISTERED"))
    );
    assert!(matches!(
        send("badtoken-1").await,
        SendOutcome::InvalidToken { .. }
    ));
    assert_eq!(
        send("ratelimit-1").await,
        SendOutcome::Retry {
            after: Some(Duration::from_secs(7)),
            reason: "FCM 429 QUOTA_EXCEEDED: FCM is unavailable or throttling; will retry".into()
        }
    );
    assert!(matches!(
        send("error-1").await,
        SendOutcome::Retry { after: None, .. }
    ));
    assert!(matches!(
        send("unavailable-1").await,
        SendOutcome::Retry { .. }
    ));
    // SENDER_ID_MISMATCH is about this one token, not the credential.
    assert!(matches!(
        send("wrongtopic-1").await,
        SendOutcome::Failed { reason } if reason.contains("SENDER_ID_MISMATCH")
    ));
    assert!(matches!(
        send("forbidden-1").await,
        SendOutcome::CredentialFailed { .. }
    ));
    let statuses: Vec<u16> = fakes
        .fcm
        .requests_of("fcm")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [404, 400, 429, 500, 503, 403, 403]);
}

#[tokio::test]
async fn fcm_legacy_keys_fail_without_any_request() {
    let (fakes, _, fcm) = setup().await;
    let legacy = [
        credential(
            PushType::Fcm,
            false,
            CredentialSecrets {
                secret: Some("AAAA1234:APA91bHlegacy".into()),
                ..Default::default()
            },
        ),
        credential(
            PushType::Gcm,
            false,
            CredentialSecrets {
                api_key: Some("AIzaSyLegacy".into()),
                ..Default::default()
            },
        ),
    ];
    for cred in &legacy {
        match fcm
            .send(&target("tok", PushType::Fcm, cred), &notification())
            .await
        {
            SendOutcome::CredentialFailed { reason } => assert_eq!(reason, LEGACY_KEY_REASON),
            other => panic!("{other:?}"),
        }
    }
    assert!(fakes.fcm.requests().is_empty());
}

#[tokio::test]
async fn fcm_revoked_access_token_is_a_credential_failure_then_refetched() {
    let (fakes, _, fcm) = setup().await;
    let cred = fcm_credential(&fakes);
    let n = notification();
    let t = target("tok", PushType::Fcm, &cred);
    assert_eq!(fcm.send(&t, &n).await, SendOutcome::Delivered);
    fakes.fcm.revoke_access_tokens();
    assert!(matches!(
        fcm.send(&t, &n).await,
        SendOutcome::CredentialFailed { .. }
    ));
    assert_eq!(fcm.send(&t, &n).await, SendOutcome::Delivered);
    assert_eq!(fakes.fcm.access_tokens_issued(), 2);
}

#[tokio::test]
async fn fcm_bad_token_endpoint_answer_is_a_credential_failure() {
    let (fakes, _, fcm) = setup().await;
    // The fake checks `aud` ends with /token: point the JSON at another path of the fake.
    let cred = credential(
        PushType::Fcm,
        false,
        CredentialSecrets {
            secret: Some(service_account_json(&format!(
                "{}/v1/nowhere",
                fakes.fcm_url
            ))),
            ..Default::default()
        },
    );
    assert!(matches!(
        fcm.send(&target("tok", PushType::Fcm, &cred), &notification())
            .await,
        SendOutcome::CredentialFailed { .. }
    ));
    assert!(fakes.fcm.requests_of("fcm").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Routing, retries, admin endpoints

#[tokio::test]
async fn providers_route_by_binding_type() {
    let fakes = spawn_fakes().await.unwrap();
    let p = Providers::new(
        ApnsConfig::with_base_url(&fakes.apns_url),
        FcmConfig::with_base_url(&fakes.fcm_url),
    );
    let n = notification();
    let apn = apns_cert_credential();
    let fcm = fcm_credential(&fakes);
    assert_eq!(
        p.send(&target("a1", PushType::Apn, &apn), &n).await,
        SendOutcome::Delivered
    );
    assert_eq!(
        p.send(&target("f1", PushType::Fcm, &fcm), &n).await,
        SendOutcome::Delivered
    );
    assert_eq!(
        p.send(&target("g1", PushType::Gcm, &fcm), &n).await,
        SendOutcome::Delivered
    );
    assert!(matches!(
        p.send(&target("x1", PushType::Fcm, &apn), &n).await,
        SendOutcome::CredentialFailed { .. }
    ));
    assert_eq!(fakes.apns.requests().len(), 1);
    assert_eq!(fakes.fcm.requests_of("fcm").len(), 2);
}

#[tokio::test]
async fn send_with_retry_honours_retry_after_and_gives_up() {
    let (fakes, apns, _) = setup().await;
    fakes.apns.set_retry_after(0);
    let cred = apns_cert_credential();
    let policy = RetryPolicy {
        base: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_attempts: 3,
        max_age: Duration::from_secs(10),
    };
    let (outcome, attempts) = send_with_retry(
        &apns,
        &target("ratelimit-x", PushType::Apn, &cred),
        &notification(),
        &policy,
    )
    .await;
    assert!(matches!(outcome, SendOutcome::Retry { .. }));
    assert_eq!(attempts, 3);
    // A Retry-After beyond max_age gives up after the first attempt.
    fakes.apns.set_retry_after(60);
    let (_, attempts) = send_with_retry(
        &apns,
        &target("ratelimit-y", PushType::Apn, &cred),
        &notification(),
        &policy,
    )
    .await;
    assert_eq!(attempts, 1);
    // Permanent answers are not retried; a token that recovers is delivered.
    let (o, attempts) = send_with_retry(
        &apns,
        &target("dead-z", PushType::Apn, &cred),
        &notification(),
        &policy,
    )
    .await;
    assert!(matches!(o, SendOutcome::InvalidToken { .. }));
    assert_eq!(attempts, 1);
    assert_eq!(fakes.apns.requests().len(), 5);
}

#[tokio::test]
async fn admin_endpoints_script_and_expose_requests() {
    let (fakes, apns, _) = setup().await;
    let http = reqwest::Client::new();
    let cred = apns_cert_credential();
    let n = notification();

    let mode: Value = serde_json::from_slice(
        &http
            .post(format!("{}/_fake/mode", fakes.apns_url))
            .header("content-type", "application/json")
            .body(r#"{"mode":"error"}"#)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(mode["mode"], "error");
    assert!(matches!(
        apns.send(&target("plain", PushType::Apn, &cred), &n).await,
        SendOutcome::Retry { .. }
    ));
    // A per-token mode wins over the global one.
    http.post(format!("{}/_fake/mode", fakes.apns_url))
        .header("content-type", "application/json")
        .body(r#"{"mode":"dead","token":"special"}"#)
        .send()
        .await
        .unwrap();
    assert!(matches!(
        apns.send(&target("special", PushType::Apn, &cred), &n)
            .await,
        SendOutcome::InvalidToken { .. }
    ));
    fakes.apns.set_mode(FakeMode::Normal);
    assert_eq!(
        apns.send(&target("plain", PushType::Apn, &cred), &n).await,
        SendOutcome::Delivered
    );

    let list: Vec<Value> = serde_json::from_slice(
        &http
            .get(format!("{}/_fake/requests", fakes.apns_url))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[2]["path"], "/3/device/plain");
    assert_eq!(list[2]["body"]["channel_sid"], n.channel_sid);
    let del = http
        .delete(format!("{}/_fake/requests", fakes.apns_url))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert!(fakes.apns.requests().is_empty());
}

#[tokio::test]
async fn fake_apns_rejects_http1_and_bad_headers() {
    let fakes = spawn_fakes().await.unwrap();
    let http1 = reqwest::Client::new();
    let resp = http1
        .post(format!("{}/3/device/abc", fakes.apns_url))
        .header("apns-topic", "t")
        .header("apns-push-type", "alert")
        .body(r#"{"aps":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let send = |headers: Vec<(&'static str, &'static str)>, body: &'static str| {
        let mut req = h2
            .post(format!("{}/3/device/abc", fakes.apns_url))
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null);
            (status, v["reason"].as_str().unwrap_or("").to_owned())
        }
    };
    let ok = vec![("apns-topic", "t"), ("apns-push-type", "alert")];
    assert_eq!(
        send(ok.clone(), r#"{"aps":{}}"#).await,
        (200, String::new())
    );
    assert_eq!(
        send(vec![("apns-push-type", "alert")], r#"{"aps":{}}"#).await,
        (400, "MissingTopic".into())
    );
    let mut bad_id = ok.clone();
    bad_id.push(("apns-id", "nope"));
    assert_eq!(
        send(bad_id, r#"{"aps":{}}"#).await,
        (400, "BadMessageId".into())
    );
    let mut bad_auth = ok.clone();
    bad_auth.push(("authorization", "bearer x.y.z"));
    assert_eq!(
        send(bad_auth, r#"{"aps":{}}"#).await,
        (403, "InvalidProviderToken".into())
    );
    assert_eq!(
        send(ok.clone(), r#"{"x":1}"#).await,
        (400, "BadPayload".into())
    );
    let big: &'static str =
        Box::leak(format!(r#"{{"aps":{{}},"x":"{}"}}"#, "a".repeat(5000)).into_boxed_str());
    assert_eq!(send(ok, big).await, (413, "PayloadTooLarge".into()));
}

#[tokio::test]
async fn recording_sender_records_and_scripts() {
    let r = RecordingSender::new();
    r.script(
        "dead-",
        SendOutcome::InvalidToken {
            reason: "scripted".into(),
        },
    );
    let cred = apns_cert_credential();
    let n = notification();
    assert_eq!(
        r.send(&target("ok", PushType::Apn, &cred), &n).await,
        SendOutcome::Delivered
    );
    assert!(matches!(
        r.send(&target("dead-1", PushType::Apn, &cred), &n).await,
        SendOutcome::InvalidToken { .. }
    ));
    let sent = r.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].0.address, "dead-1");
    assert_eq!(sent[1].1, n);
}
