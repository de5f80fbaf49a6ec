//! FCM HTTP v1 sender: `POST /v1/projects/<project_id>/messages:send` with an OAuth2 bearer.
//!
//! # Credentials
//!
//! An `fcm` credential's `Secret` holds a Google **service-account JSON** (`project_id`,
//! `client_email`, `private_key`, `token_uri`, optional `private_key_id`). The access token is
//! obtained with the JWT-bearer grant (RFC 7523): an RS256 assertion `{iss: client_email,
//! scope: firebase.messaging, aud: token_uri, iat, exp: iat+3600}` posted to `token_uri` (taken
//! from the JSON, so a fake token endpoint works). It is cached per (credential sid,
//! `date_updated`) until [`FcmConfig::refresh_margin`] before it expires; concurrent sends wait
//! for one fetch.
//!
//! A legacy server key (a `Secret` that is not JSON, or a `gcm` credential's `ApiKey`) answers
//! `CredentialFailed` at once, without any network call: Google shut those APIs down in 2024.
//! gcm *bindings* are FCM tokens and are sent through an fcm credential as usual.
//!
//! # Answers
//!
//! 200 → Delivered; 404 (`UNREGISTERED`/`NOT_FOUND`) or 400 `INVALID_ARGUMENT` about the token →
//! InvalidToken; 429, 5xx, network, timeouts → Retry (with `Retry-After`); 401/403 →
//! CredentialFailed (a 401 also drops the cached access token); other 4xx → Failed. Token
//! endpoint: 400/401/403 → CredentialFailed, 429/5xx/network → Retry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parley_core::credential::{
    parse_token_uri_allow, token_uri_allowed, PushType, FCM_TOKEN_URI_ALLOW_ENV,
};
use serde::Deserialize;
use serde_json::Value;

use crate::apns::{clean_url, error_chain};
use crate::notification::Notification;
use crate::payload::fcm_message;
use crate::retry::parse_retry_after;
use crate::sender::{lock, PushCredential, PushSender, SendOutcome, Target};

/// Default FCM endpoint.
pub const DEFAULT_FCM_URL: &str = "https://fcm.googleapis.com";
/// Default OAuth2 token endpoint when the service-account JSON has no `token_uri`.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// OAuth2 scope for sending.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// RFC 7523 grant type.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The OAuth2 error codes (RFC 6749 §5.2) repeated in reasons; anything else is `unknown`.
const OAUTH2_ERRORS: [&str; 7] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "access_denied",
];

/// FCM v1 error codes (`FcmError.errorCode`) and the canonical status names FCM answers with,
/// repeated in reasons; anything else is `UNKNOWN`.
const FCM_ERRORS: [&str; 14] = [
    "UNSPECIFIED_ERROR",
    "INVALID_ARGUMENT",
    "UNREGISTERED",
    "SENDER_ID_MISMATCH",
    "QUOTA_EXCEEDED",
    "UNAVAILABLE",
    "INTERNAL",
    "THIRD_PARTY_AUTH_ERROR",
    "NOT_FOUND",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "RESOURCE_EXHAUSTED",
    "DEADLINE_EXCEEDED",
    "FAILED_PRECONDITION",
];

/// The reason given for legacy keys.
pub const LEGACY_KEY_REASON: &str = "legacy FCM/GCM server keys stopped working in 2024; upload a service-account JSON as the fcm credential's Secret";

/// FCM sender settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FcmConfig {
    /// Base URL (`PARLEY_FCM_URL`).
    pub base_url: String,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Refresh the access token this long before it expires.
    pub refresh_margin: Duration,
    /// `token_uri` prefixes allowed besides Google's endpoints (`PARLEY_FCM_TOKEN_URI_ALLOW`).
    /// A service account naming another `token_uri` is never contacted.
    pub token_uri_allow: Vec<String>,
}

impl Default for FcmConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_FCM_URL.into(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            refresh_margin: Duration::from_secs(300),
            token_uri_allow: Vec::new(),
        }
    }
}

impl FcmConfig {
    /// Defaults, with `PARLEY_FCM_URL` and `PARLEY_FCM_TOKEN_URI_ALLOW` when set.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`FcmConfig::from_env`], reading variables through `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut c = Self::default();
        if let Some(u) = clean_url(var("PARLEY_FCM_URL")) {
            c.base_url = u;
        }
        c.token_uri_allow = parse_token_uri_allow(var(FCM_TOKEN_URI_ALLOW_ENV).as_deref());
        c
    }

    /// At `url` (tests against a fake), whose token endpoint (`<url>/token`) is allowed too.
    pub fn with_base_url(url: &str) -> Self {
        let base = url.trim_end_matches('/').to_owned();
        Self {
            token_uri_allow: vec![base.clone()],
            base_url: base,
            ..Self::default()
        }
    }
}

/// The parts of a Google service-account JSON we use.
#[derive(Clone, Deserialize, PartialEq, Eq)]
pub struct ServiceAccount {
    /// `"service_account"` when present.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Firebase project.
    pub project_id: String,
    /// Key id (JWT `kid`).
    pub private_key_id: Option<String>,
    /// PKCS#8 RSA key PEM.
    pub private_key: String,
    /// Service account email (JWT `iss`).
    pub client_email: String,
    /// OAuth2 token endpoint.
    pub token_uri: Option<String>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// Read the service account of an fcm credential; `Err` is the `CredentialFailed` reason.
pub fn service_account(credential: &PushCredential) -> Result<ServiceAccount, String> {
    if credential.credential_type == PushType::Gcm {
        return Err(LEGACY_KEY_REASON.into());
    }
    let secret = credential
        .secrets
        .secret
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let Some(secret) = secret else {
        return Err(if credential.secrets.api_key.is_some() {
            LEGACY_KEY_REASON.into()
        } else {
            "fcm credential has no Secret (a service-account JSON)".into()
        });
    };
    if !secret.starts_with('{') {
        return Err(LEGACY_KEY_REASON.into());
    }
    let sa: ServiceAccount = serde_json::from_str(secret)
        .map_err(|e| format!("fcm credential Secret is not a service-account JSON: {e}"))?;
    if let Some(kind) = sa.kind.as_deref() {
        if kind != "service_account" {
            return Err(format!(
                "fcm credential Secret is a {kind:?} JSON, not a service account"
            ));
        }
    }
    Ok(sa)
}

#[derive(serde::Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// Access tokens of one service account, cached.
pub struct TokenSource {
    account: ServiceAccount,
    key: EncodingKey,
    cached: tokio::sync::Mutex<Option<(String, tokio::time::Instant)>>,
    fetched: AtomicU64,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

impl TokenSource {
    /// From a service account (the key is parsed now).
    pub fn new(account: ServiceAccount) -> Result<Self, String> {
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|e| format!("service-account private_key is not an RSA PEM key: {e}"))?;
        Ok(Self {
            account,
            key,
            cached: tokio::sync::Mutex::new(None),
            fetched: AtomicU64::new(0),
        })
    }

    /// The service account.
    pub fn account(&self) -> &ServiceAccount {
        &self.account
    }

    /// The signed RS256 assertion for the token request.
    pub fn assertion(&self) -> Result<String, String> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.account.private_key_id.clone();
        let claims = AssertionClaims {
            iss: &self.account.client_email,
            scope: FCM_SCOPE,
            aud: self.token_uri(),
            iat,
            exp: iat + 3600,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("cannot sign the service-account assertion: {e}"))
    }

    fn token_uri(&self) -> &str {
        self.account
            .token_uri
            .as_deref()
            .unwrap_or(DEFAULT_TOKEN_URI)
    }

    /// A valid access token: the cached one, or a fresh one from `token_uri` — only when that is
    /// Google's endpoint or starts with one of the `allow` prefixes.
    pub async fn token(
        &self,
        http: &reqwest::Client,
        margin: Duration,
        allow: &[String],
    ) -> Result<String, SendOutcome> {
        if !token_uri_allowed(self.token_uri(), allow) {
            return Err(SendOutcome::CredentialFailed {
                reason: format!(
                    "the service-account token_uri is not Google's OAuth2 endpoint nor allowed \
                     by {FCM_TOKEN_URI_ALLOW_ENV}; it is never contacted (upload a genuine \
                     service-account JSON)"
                ),
            });
        }
        let mut cached = self.cached.lock().await;
        if let Some((tok, expires)) = cached.as_ref() {
            if tokio::time::Instant::now() + margin < *expires {
                return Ok(tok.clone());
            }
        }
        let assertion = self
            .assertion()
            .map_err(|reason| SendOutcome::CredentialFailed { reason })?;
        let body = format!(
            "grant_type={}&assertion={}",
            JWT_BEARER_GRANT.replace(':', "%3A"),
            assertion
        );
        let resp = http
            .post(self.token_uri())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| SendOutcome::Retry {
                after: None,
                reason: format!("OAuth2 token request failed: {}", error_chain(&e)),
            })?;
        let status = resp.status().as_u16();
        let retry_after = retry_after(&resp);
        let bytes = resp.bytes().await.unwrap_or_default();
        if status != 200 {
            // Only the documented error code, never the body (it is stored and shown).
            let code = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .filter(|c| OAUTH2_ERRORS.contains(&c.as_str()))
                .unwrap_or_else(|| "unknown".to_owned());
            let text = format!(
                "OAuth2 token endpoint answered {status} {code}: the access token request failed"
            );
            return Err(if status == 429 || status >= 500 {
                SendOutcome::Retry {
                    after: retry_after,
                    reason: text,
                }
            } else {
                SendOutcome::CredentialFailed { reason: text }
            });
        }
        let t: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| SendOutcome::Retry {
            after: None,
            reason: format!("OAuth2 token response is not JSON: {e}"),
        })?;
        let expires =
            tokio::time::Instant::now() + Duration::from_secs(t.expires_in.unwrap_or(3600));
        *cached = Some((t.access_token.clone(), expires));
        self.fetched.fetch_add(1, Ordering::Relaxed);
        Ok(t.access_token)
    }

    /// Drop the cached access token.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    /// How many access tokens were fetched so far.
    pub fn fetched_count(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// The fixed message of an FCM answer that the device token is bad.
pub const BAD_TOKEN_MESSAGE: &str = "the device token is not registered or invalid";

/// Map an FCM v1 answer to an outcome.
pub fn map_response(status: u16, retry_after: Option<Duration>, body: &[u8]) -> SendOutcome {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let err = &v["error"];
    let status_name = err["status"].as_str().unwrap_or("");
    let message = err["message"].as_str().unwrap_or("");
    let details = err["details"].as_array().cloned().unwrap_or_default();
    let error_code = details
        .iter()
        .find_map(|d| d["errorCode"].as_str())
        .unwrap_or(status_name);
    let about_token = details.iter().any(|d| {
        d["fieldViolations"].as_array().is_some_and(|fv| {
            fv.iter()
                .any(|f| f["field"].as_str() == Some("message.token"))
        })
    }) || message.to_ascii_lowercase().contains("registration token");
    // Only the documented code and a fixed message: the body is provider (or impostor) text.
    let code = if FCM_ERRORS.contains(&error_code) {
        error_code
    } else {
        "UNKNOWN"
    };
    let text = |what: &str| format!("FCM {status} {code}: {what}");
    match status {
        200 => SendOutcome::Delivered,
        404 => SendOutcome::InvalidToken {
            reason: text(BAD_TOKEN_MESSAGE),
        },
        400 if error_code == "UNREGISTERED"
            || (error_code == "INVALID_ARGUMENT" && about_token) =>
        {
            SendOutcome::InvalidToken {
                reason: text(BAD_TOKEN_MESSAGE),
            }
        }
        429 | 500..=599 => SendOutcome::Retry {
            after: retry_after,
            reason: text("FCM is unavailable or throttling; will retry"),
        },
        // About this one token (it belongs to another Firebase project), not the credential.
        403 if error_code == "SENDER_ID_MISMATCH" => SendOutcome::Failed {
            reason: text("the device token belongs to another sender (Firebase project)"),
        },
        401 | 403 => SendOutcome::CredentialFailed {
            reason: text("FCM refused the credential"),
        },
        _ => SendOutcome::Failed {
            reason: text("FCM rejected the message"),
        },
    }
}

/// The FCM [`PushSender`]. Cheap to clone (shared HTTP client and token cache).
#[derive(Clone, Debug)]
pub struct FcmSender {
    config: Arc<FcmConfig>,
    http: reqwest::Client,
    tokens: Arc<Mutex<TokenCache>>,
}

/// Token sources by (credential sid, `date_updated`).
type TokenCache = HashMap<(String, i64), Arc<TokenSource>>;

impl FcmSender {
    /// A sender with an empty token cache.
    pub fn new(config: FcmConfig) -> Self {
        let b = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(300));
        // Building only fails when the TLS backend cannot initialise; fall back to defaults.
        let http = b.build().unwrap_or_default();
        Self {
            config: Arc::new(config),
            http,
            tokens: Arc::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FcmConfig {
        &self.config
    }

    /// The (cached) token source of a credential.
    pub fn token_source(&self, credential: &PushCredential) -> Result<Arc<TokenSource>, String> {
        let key = (credential.sid.clone(), credential.updated);
        if let Some(t) = lock(&self.tokens).get(&key) {
            return Ok(t.clone());
        }
        let source = Arc::new(TokenSource::new(service_account(credential)?)?);
        let mut tokens = lock(&self.tokens);
        tokens.retain(|(sid, updated), _| sid != &key.0 || *updated == key.1);
        Ok(tokens.entry(key).or_insert(source).clone())
    }
}

#[async_trait]
impl PushSender for FcmSender {
    async fn send(&self, target: &Target, notification: &Notification) -> SendOutcome {
        let source = match self.token_source(&target.credential) {
            Ok(s) => s,
            Err(reason) => return SendOutcome::CredentialFailed { reason },
        };
        let body = match fcm_message(notification, &target.address) {
            Ok(b) => b,
            Err(e) => {
                return SendOutcome::Failed {
                    reason: e.to_string(),
                }
            }
        };
        let token = match source
            .token(
                &self.http,
                self.config.refresh_margin,
                &self.config.token_uri_allow,
            )
            .await
        {
            Ok(t) => t,
            Err(outcome) => return outcome,
        };
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.config.base_url,
            source.account().project_id
        );
        let outcome = match self
            .http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
        {
            Err(e) => SendOutcome::Retry {
                after: None,
                reason: format!("FCM request failed: {}", error_chain(&e)),
            },
            Ok(resp) => {
                let status = resp.status().as_u16();
                let ra = retry_after(&resp);
                let bytes = resp.bytes().await.unwrap_or_default();
                if status == 401 {
                    source.invalidate().await;
                }
                map_response(status, ra, &bytes)
            }
        };
        tracing::debug!(
            binding.sid = %target.binding_sid,
            credential.sid = %target.credential.sid,
            outcome = outcome.label(),
            "fcm send"
        );
        outcome
    }
}

#[cfg(test)]
mod tests {
    use parley_core::credential::CredentialSecrets;
    use serde_json::json;

    use super::*;

    fn cred(kind: PushType, secrets: CredentialSecrets) -> PushCredential {
        PushCredential {
            sid: "CR1".into(),
            credential_type: kind,
            sandbox: false,
            updated: 1,
            secrets,
            missing_secret: None,
        }
    }

    #[test]
    fn config_from_variables() {
        assert_eq!(
            FcmConfig::from_lookup(|_| None).base_url,
            "https://fcm.googleapis.com"
        );
        let c = FcmConfig::from_lookup(|n| (n == "PARLEY_FCM_URL").then(|| "http://x:1/".into()));
        assert_eq!(c.base_url, "http://x:1");
    }

    #[test]
    fn legacy_keys_are_refused() {
        let legacy = |kind, secrets| service_account(&cred(kind, secrets)).unwrap_err();
        assert_eq!(
            legacy(
                PushType::Fcm,
                CredentialSecrets {
                    secret: Some("AAAAxyz:APA91bLegacyKey".into()),
                    ..Default::default()
                }
            ),
            LEGACY_KEY_REASON
        );
        assert_eq!(
            legacy(
                PushType::Gcm,
                CredentialSecrets {
                    api_key: Some("AIzaLegacy".into()),
                    ..Default::default()
                }
            ),
            LEGACY_KEY_REASON
        );
        assert_eq!(
            legacy(
                PushType::Fcm,
                CredentialSecrets {
                    api_key: Some("AIzaLegacy".into()),
                    ..Default::default()
                }
            ),
            LEGACY_KEY_REASON
        );
        assert!(legacy(PushType::Fcm, CredentialSecrets::default()).contains("no Secret"));
        assert!(legacy(
            PushType::Fcm,
            CredentialSecrets {
                secret: Some("{\"project_id\": 1}".into()),
                ..Default::default()
            }
        )
        .contains("not a service-account JSON"));
        assert!(legacy(
            PushType::Fcm,
            CredentialSecrets {
                secret: Some(
                    json!({"type":"authorized_user","project_id":"p","private_key":"k","client_email":"e"})
                        .to_string()
                ),
                ..Default::default()
            }
        )
        .contains("not a service account"));
    }

    #[test]
    fn assertion_shape() {
        let key = include_str!("../tests/fixtures/TEST-ONLY-fcm-sa-key.pem");
        let sa = ServiceAccount {
            kind: Some("service_account".into()),
            project_id: "demo".into(),
            private_key_id: Some("kid1".into()),
            private_key: key.into(),
            client_email: "push@demo.iam.gserviceaccount.com".into(),
            token_uri: Some("http://127.0.0.1:1/token".into()),
        };
        let src = TokenSource::new(sa).unwrap();
        let jwt = src.assertion().unwrap();
        let pub_pem = include_str!("../tests/fixtures/TEST-ONLY-fcm-sa-pub.pem");
        let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
        v.set_audience(&["http://127.0.0.1:1/token"]);
        let data = jsonwebtoken::decode::<Value>(
            &jwt,
            &jsonwebtoken::DecodingKey::from_rsa_pem(pub_pem.as_bytes()).unwrap(),
            &v,
        )
        .unwrap();
        assert_eq!(data.header.kid.as_deref(), Some("kid1"));
        assert_eq!(data.claims["iss"], "push@demo.iam.gserviceaccount.com");
        assert_eq!(data.claims["scope"], FCM_SCOPE);
        assert_eq!(
            data.claims["exp"].as_u64().unwrap() - data.claims["iat"].as_u64().unwrap(),
            3600
        );
        assert!(!format!("{src:?}").contains("PRIVATE"));
    }

    #[test]
    fn maps_answers() {
        let err = |status: u16, code: &str, msg: &str, extra: Value| {
            let mut details = vec![
                json!({"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":code}),
            ];
            if !extra.is_null() {
                details.push(extra);
            }
            json!({"error":{"code":status,"message":msg,"status":code,"details":details}})
                .to_string()
                .into_bytes()
        };
        assert_eq!(
            map_response(200, None, br#"{"name":"projects/p/messages/1"}"#),
            SendOutcome::Delivered
        );
        assert!(matches!(
            map_response(
                404,
                None,
                &err(
                    404,
                    "UNREGISTERED",
                    "Requested entity was not found.",
                    Value::Null
                )
            ),
            SendOutcome::InvalidToken { .. }
        ));
        let bad_token = json!({"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]});
        assert!(matches!(
            map_response(
                400,
                None,
                &err(400, "INVALID_ARGUMENT", "Invalid value", bad_token)
            ),
            SendOutcome::InvalidToken { .. }
        ));
        assert!(matches!(
            map_response(
                400,
                None,
                &err(
                    400,
                    "INVALID_ARGUMENT",
                    "The registration token is not a valid FCM registration token",
                    Value::Null
                )
            ),
            SendOutcome::InvalidToken { .. }
        ));
        assert!(matches!(
            map_response(
                400,
                None,
                &err(
                    400,
                    "INVALID_ARGUMENT",
                    "Invalid JSON payload received. Unknown name \"badge\"",
                    Value::Null
                )
            ),
            SendOutcome::Failed { .. }
        ));
        assert_eq!(
            map_response(
                429,
                Some(Duration::from_secs(5)),
                &err(429, "QUOTA_EXCEEDED", "quota", Value::Null)
            ),
            SendOutcome::Retry {
                after: Some(Duration::from_secs(5)),
                reason: "FCM 429 QUOTA_EXCEEDED: FCM is unavailable or throttling; will retry"
                    .into()
            }
        );
        assert!(matches!(
            map_response(500, None, b"oops"),
            SendOutcome::Retry { after: None, .. }
        ));
        assert!(matches!(
            map_response(503, None, &err(503, "UNAVAILABLE", "x", Value::Null)),
            SendOutcome::Retry { .. }
        ));
        assert!(matches!(
            map_response(401, None, &err(401, "UNAUTHENTICATED", "x", Value::Null)),
            SendOutcome::CredentialFailed { .. }
        ));
        assert!(matches!(
            map_response(403, None, &err(403, "SENDER_ID_MISMATCH", "x", Value::Null)),
            SendOutcome::Failed { .. }
        ));
        // Provider text never reaches the reason: only the documented code.
        assert_eq!(
            map_response(
                403,
                None,
                &err(403, "<script>", "secret internal detail", Value::Null)
            ),
            SendOutcome::CredentialFailed {
                reason: "FCM 403 UNKNOWN: FCM refused the credential".into()
            }
        );
    }
}
