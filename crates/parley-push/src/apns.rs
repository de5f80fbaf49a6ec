//! APNs sender: HTTP/2 `POST /3/device/<token>` (Apple "Sending notification requests to APNs").
//!
//! # Credentials
//!
//! * **Certificate auth** (Twilio's model): `Certificate` and `PrivateKey` PEM of the APNs
//!   certificate become the TLS client identity. The topic (bundle id) is the certificate
//!   subject's `UID` (OID 0.9.2342.19200300.100.1.1), as in every Apple push certificate.
//!   An expired certificate fails fast as `CredentialFailed` without a request.
//! * **Token auth** (Parley extension, Twilio has none): `PrivateKey` holds the `.p8` key and
//!   `Secret` a JSON object `{"key_id": "…", "team_id": "…", "topic": "com.example.app"}` (the
//!   `.p8` may instead be in that JSON as `"private_key"`). Each request carries
//!   `authorization: bearer <ES256 JWT {iss: team_id, iat}>` with header `kid`; the JWT is cached
//!   and re-signed every [`ApnsConfig::token_refresh`] (40 min: Apple wants 20–60 min).
//! * A `"topic"` in the `Secret` JSON also overrides the certificate's UID.
//! * `Sandbox = true` selects [`ApnsConfig::sandbox_url`].
//!
//! # Connections
//!
//! One long-lived HTTP/2 client per (credential sid, `date_updated`, environment), created on
//! first use; updating a credential therefore starts a new client and drops the old one. An
//! `http://` base URL means HTTP/2 cleartext with prior knowledge (local fakes).
//!
//! # Answers
//!
//! 200 → Delivered; 410 or 400 `BadDeviceToken`/`DeviceTokenNotForTopic` → InvalidToken;
//! 429, 5xx, network errors, timeouts → Retry (with `Retry-After` when sent); 403 (provider
//! token, certificate) and 400 `TopicDisallowed`/`BadCertificate*` → CredentialFailed;
//! 403 `ExpiredProviderToken` → a fresh JWT is signed and the push sent again at once (then
//! Retry if that fails too); other 4xx → Failed. Only documented `reason` codes are repeated.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parley_core::credential::{CredentialSecrets, PushType};
use serde::Deserialize;

use crate::notification::{stable_uuid, Notification};
use crate::payload::apns_payload;
use crate::retry::parse_retry_after;
use crate::sender::{lock, PushCredential, PushSender, SendOutcome, Target};

/// Default production endpoint.
pub const DEFAULT_APNS_URL: &str = "https://api.push.apple.com";
/// Default sandbox endpoint.
pub const DEFAULT_APNS_SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";

const UID_OID: &str = "0.9.2342.19200300.100.1.1";

/// APNs sender settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApnsConfig {
    /// Production base URL (`PARLEY_APNS_URL`).
    pub production_url: String,
    /// Sandbox base URL (`PARLEY_APNS_SANDBOX_URL`).
    pub sandbox_url: String,
    /// Whole-request timeout (an elapsed timeout is a `Retry`).
    pub request_timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// `apns-expiration` = now + this (24 h, as the FCM TTL).
    pub expiration: Duration,
    /// `apns-priority` (10 = immediately).
    pub priority: u8,
    /// Re-sign the provider JWT after this long (Apple: 20–60 min).
    pub token_refresh: Duration,
    /// Extra trust anchors (PEM), besides the public web roots: a TLS-inspecting proxy's CA,
    /// or a test CA.
    pub root_certificates: Vec<String>,
}

impl Default for ApnsConfig {
    fn default() -> Self {
        Self {
            production_url: DEFAULT_APNS_URL.into(),
            sandbox_url: DEFAULT_APNS_SANDBOX_URL.into(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            expiration: Duration::from_secs(24 * 3600),
            priority: 10,
            token_refresh: Duration::from_secs(40 * 60),
            root_certificates: Vec::new(),
        }
    }
}

impl ApnsConfig {
    /// Defaults, with `PARLEY_APNS_URL` and `PARLEY_APNS_SANDBOX_URL` when set.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`ApnsConfig::from_env`], reading variables through `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut c = Self::default();
        if let Some(u) = clean_url(var("PARLEY_APNS_URL")) {
            c.production_url = u;
        }
        if let Some(u) = clean_url(var("PARLEY_APNS_SANDBOX_URL")) {
            c.sandbox_url = u;
        }
        c
    }

    /// Both environments at one base URL (tests against a fake).
    pub fn with_base_url(url: &str) -> Self {
        Self {
            production_url: url.trim_end_matches('/').into(),
            sandbox_url: url.trim_end_matches('/').into(),
            ..Self::default()
        }
    }
}

/// A configured base URL without surrounding blanks or trailing slashes; blank means unset.
pub(crate) fn clean_url(value: Option<String>) -> Option<String> {
    value
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
}

/// How a credential authenticates to APNs.
#[derive(Clone, PartialEq, Eq)]
pub enum ApnsAuth {
    /// TLS client certificate.
    Certificate {
        /// Certificate PEM followed by the key PEM.
        identity_pem: String,
        /// Bundle id.
        topic: String,
    },
    /// `.p8` provider token.
    Token {
        /// PKCS#8 PEM of the P-256 key.
        key_pem: String,
        /// Key id (JWT `kid`).
        key_id: String,
        /// Team id (JWT `iss`).
        team_id: String,
        /// Bundle id.
        topic: String,
    },
}

impl std::fmt::Debug for ApnsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Certificate { topic, .. } => f
                .debug_struct("Certificate")
                .field("topic", topic)
                .finish_non_exhaustive(),
            Self::Token {
                key_id,
                team_id,
                topic,
                ..
            } => f
                .debug_struct("Token")
                .field("key_id", key_id)
                .field("team_id", team_id)
                .field("topic", topic)
                .finish_non_exhaustive(),
        }
    }
}

impl ApnsAuth {
    /// The topic (`apns-topic`).
    pub fn topic(&self) -> &str {
        match self {
            Self::Certificate { topic, .. } | Self::Token { topic, .. } => topic,
        }
    }
}

#[derive(Deserialize, Default)]
struct TokenAuthSecret {
    key_id: Option<String>,
    team_id: Option<String>,
    topic: Option<String>,
    private_key: Option<String>,
}

fn non_blank(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Work out the APNs authentication of a credential's secrets (see the module doc).
pub fn apns_auth(secrets: &CredentialSecrets) -> Result<ApnsAuth, String> {
    let extra: TokenAuthSecret = match non_blank(&secrets.secret) {
        Some(s) => serde_json::from_str(s).map_err(|e| {
            format!(
                "APNs credential Secret must be token-auth JSON {{key_id, team_id, topic}}: {e}"
            )
        })?,
        None => TokenAuthSecret::default(),
    };
    if let Some(cert) = non_blank(&secrets.certificate) {
        let key = non_blank(&secrets.private_key)
            .ok_or("APNs credential has a Certificate but no PrivateKey")?;
        let info = certificate_info(cert)?;
        if let Some(not_after) = info.expired {
            return Err(format!("APNs certificate expired on {not_after}"));
        }
        let topic = match non_blank(&extra.topic) {
            Some(t) => t.to_owned(),
            None => info
                .topic
                .ok_or("APNs certificate subject has no UID (topic); set \"topic\" in Secret")?,
        };
        return Ok(ApnsAuth::Certificate {
            identity_pem: format!("{}\n{}\n", cert.trim(), key.trim()),
            topic,
        });
    }
    let key = non_blank(&extra.private_key)
        .or(non_blank(&secrets.private_key))
        .ok_or("APNs credential has neither a Certificate nor a .p8 PrivateKey")?;
    let missing = |what: &str| format!("APNs token auth needs \"{what}\" in the Secret JSON");
    Ok(ApnsAuth::Token {
        key_pem: key.to_owned(),
        key_id: non_blank(&extra.key_id)
            .ok_or_else(|| missing("key_id"))?
            .to_owned(),
        team_id: non_blank(&extra.team_id)
            .ok_or_else(|| missing("team_id"))?
            .to_owned(),
        topic: non_blank(&extra.topic)
            .ok_or_else(|| missing("topic"))?
            .to_owned(),
    })
}

/// What we read from an APNs certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Subject UID (the bundle id / topic).
    pub topic: Option<String>,
    /// `Some(not_after)` when the certificate has expired.
    pub expired: Option<String>,
}

/// Parse the first certificate of a PEM text.
pub fn certificate_info(pem: &str) -> Result<CertificateInfo, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.trim().as_bytes())
        .map_err(|e| format!("APNs Certificate is not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("APNs Certificate cannot be parsed: {e}"))?;
    let topic = cert
        .subject()
        .iter_attributes()
        .find(|a| a.attr_type().to_id_string() == UID_OID)
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned);
    let expired = (!cert.validity().is_valid()).then(|| cert.validity().not_after.to_string());
    Ok(CertificateInfo { topic, expired })
}

/// Signs and caches the APNs provider JWT of one `.p8` key.
pub struct TokenSigner {
    key: EncodingKey,
    key_id: String,
    team_id: String,
    refresh: Duration,
    cached: Mutex<Option<(String, Instant)>>,
    signed: AtomicU64,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct ProviderClaims<'a> {
    iss: &'a str,
    iat: u64,
}

impl TokenSigner {
    /// From a PKCS#8 P-256 PEM.
    pub fn new(
        key_pem: &str,
        key_id: &str,
        team_id: &str,
        refresh: Duration,
    ) -> Result<Self, String> {
        let key = EncodingKey::from_ec_pem(key_pem.as_bytes())
            .map_err(|e| format!("APNs .p8 key is not a PKCS#8 EC key: {e}"))?;
        Ok(Self {
            key,
            key_id: key_id.to_owned(),
            team_id: team_id.to_owned(),
            refresh,
            cached: Mutex::new(None),
            signed: AtomicU64::new(0),
        })
    }

    /// The current JWT, re-signed when older than the refresh period.
    pub fn token(&self) -> Result<String, String> {
        let mut cached = lock(&self.cached);
        if let Some((jwt, at)) = cached.as_ref() {
            if at.elapsed() < self.refresh {
                return Ok(jwt.clone());
            }
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        header.typ = None;
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = ProviderClaims {
            iss: &self.team_id,
            iat,
        };
        let jwt = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("cannot sign the APNs provider token: {e}"))?;
        *cached = Some((jwt.clone(), Instant::now()));
        self.signed.fetch_add(1, Ordering::Relaxed);
        Ok(jwt)
    }

    /// Forget the cached JWT (after `ExpiredProviderToken`).
    pub fn invalidate(&self) {
        *lock(&self.cached) = None;
    }

    /// How many JWTs were signed so far.
    pub fn signed_count(&self) -> u64 {
        self.signed.load(Ordering::Relaxed)
    }
}

/// One HTTP/2 client for one (credential, environment).
#[derive(Debug)]
pub struct ApnsClient {
    http: reqwest::Client,
    base_url: String,
    topic: String,
    signer: Option<TokenSigner>,
}

impl ApnsClient {
    /// Build a client for `auth` against `base_url`.
    pub fn new(config: &ApnsConfig, base_url: &str, auth: &ApnsAuth) -> Result<Self, String> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .http2_prior_knowledge()
            .http2_keep_alive_interval(Duration::from_secs(60))
            .http2_keep_alive_while_idle(true)
            .pool_idle_timeout(Duration::from_secs(3600))
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout);
        for pem in &config.root_certificates {
            let ca = reqwest::Certificate::from_pem(pem.as_bytes())
                .map_err(|e| format!("APNs root certificate cannot be used: {e}"))?;
            b = b.add_root_certificate(ca);
        }
        let mut signer = None;
        match auth {
            ApnsAuth::Certificate { identity_pem, .. } => {
                let id = reqwest::Identity::from_pem(identity_pem.as_bytes())
                    .map_err(|e| format!("APNs certificate/key cannot be used: {e}"))?;
                b = b.identity(id);
            }
            ApnsAuth::Token {
                key_pem,
                key_id,
                team_id,
                ..
            } => {
                signer = Some(TokenSigner::new(
                    key_pem,
                    key_id,
                    team_id,
                    config.token_refresh,
                )?);
            }
        }
        let http = b
            .build()
            .map_err(|e| format!("cannot build the APNs HTTP client: {e}"))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            topic: auth.topic().to_owned(),
            signer,
        })
    }

    /// The token signer, for token-auth credentials.
    pub fn signer(&self) -> Option<&TokenSigner> {
        self.signer.as_ref()
    }

    /// The topic sent as `apns-topic`.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Send one payload to `device_token`.
    pub async fn send(
        &self,
        config: &ApnsConfig,
        device_token: &str,
        apns_id: &str,
        payload: Vec<u8>,
    ) -> SendOutcome {
        if device_token.is_empty()
            || !device_token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return SendOutcome::InvalidToken {
                reason: "malformed device token".into(),
            };
        }
        let expiration = SystemTime::now()
            .checked_add(config.expiration)
            .unwrap_or_else(SystemTime::now)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        // An expired provider token is re-signed and the push sent again at once (once).
        let mut outcome = self
            .send_once(config, device_token, apns_id, &payload, expiration)
            .await;
        if let Some(signer) = &self.signer {
            if matches!(&outcome, SendOutcome::Retry { reason, .. } if reason.contains(EXPIRED_PROVIDER_TOKEN))
            {
                signer.invalidate();
                outcome = self
                    .send_once(config, device_token, apns_id, &payload, expiration)
                    .await;
            }
        }
        outcome
    }

    async fn send_once(
        &self,
        config: &ApnsConfig,
        device_token: &str,
        apns_id: &str,
        payload: &[u8],
        expiration: u64,
    ) -> SendOutcome {
        let mut req = self
            .http
            .post(format!("{}/3/device/{device_token}", self.base_url))
            .header("apns-topic", &self.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", config.priority.to_string())
            .header("apns-expiration", expiration.to_string())
            .header("apns-id", apns_id)
            .header("content-type", "application/json")
            .body(payload.to_vec());
        if let Some(signer) = &self.signer {
            match signer.token() {
                Ok(jwt) => req = req.header("authorization", format!("bearer {jwt}")),
                Err(reason) => return SendOutcome::CredentialFailed { reason },
            }
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return SendOutcome::Retry {
                    after: None,
                    reason: format!("APNs request failed: {}", error_chain(&e)),
                }
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = resp.bytes().await.unwrap_or_default();
        map_response(status, retry_after, &body)
    }
}

const EXPIRED_PROVIDER_TOKEN: &str = "ExpiredProviderToken";

/// The documented APNs `reason` codes (Apple, "Handling notification responses from APNs");
/// anything else is reported as `Unknown`, so provider text never reaches logs or the push log.
const APNS_REASONS: [&str; 32] = [
    "BadCollapseId",
    "BadDeviceToken",
    "BadExpirationDate",
    "BadMessageId",
    "BadPriority",
    "BadTopic",
    "DeviceTokenNotForTopic",
    "DuplicateHeaders",
    "IdleTimeout",
    "InvalidPushType",
    "MissingDeviceToken",
    "MissingTopic",
    "PayloadEmpty",
    "TopicDisallowed",
    "BadCertificate",
    "BadCertificateEnvironment",
    "ExpiredProviderToken",
    "Forbidden",
    "InvalidProviderToken",
    "MissingProviderToken",
    "UnrelatedKeyIdInToken",
    "BadEnvironmentKeyIdInToken",
    "BadPath",
    "MethodNotAllowed",
    "ExpiredToken",
    "Unregistered",
    "PayloadTooLarge",
    "TooManyProviderTokenUpdates",
    "TooManyRequests",
    "InternalServerError",
    "ServiceUnavailable",
    "Shutdown",
];

/// Error text with its sources (reqwest's top-level message alone hides the cause).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[derive(Deserialize)]
struct ApnsError {
    reason: Option<String>,
}

/// Map an APNs answer to an outcome.
pub fn map_response(status: u16, retry_after: Option<Duration>, body: &[u8]) -> SendOutcome {
    let reason = serde_json::from_slice::<ApnsError>(body)
        .ok()
        .and_then(|e| e.reason)
        .map(|r| {
            if APNS_REASONS.contains(&r.as_str()) {
                r
            } else {
                "Unknown".to_owned()
            }
        })
        .unwrap_or_default();
    let text = format!("APNs {status} {reason}").trim_end().to_owned();
    match (status, reason.as_str()) {
        (200, _) => SendOutcome::Delivered,
        // The client re-signs the JWT and sends again at once; not a credential failure.
        (403, EXPIRED_PROVIDER_TOKEN) => SendOutcome::Retry {
            after: None,
            reason: text,
        },
        (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => {
            SendOutcome::InvalidToken { reason: text }
        }
        (429, _) | (500..=599, _) => SendOutcome::Retry {
            after: retry_after,
            reason: text,
        },
        (403, _)
        | (400, "TopicDisallowed" | "BadCertificate" | "BadCertificateEnvironment")
        | (400, "MissingProviderToken" | "InvalidProviderToken") => {
            SendOutcome::CredentialFailed { reason: text }
        }
        _ => SendOutcome::Failed { reason: text },
    }
}

/// The APNs [`PushSender`], with its per-credential client cache. Cheap to clone (shared cache).
#[derive(Clone, Debug)]
pub struct ApnsSender {
    config: Arc<ApnsConfig>,
    clients: Arc<Mutex<HashMap<ClientKey, Arc<ApnsClient>>>>,
}

type ClientKey = (String, i64, bool);

impl ApnsSender {
    /// A sender with an empty client cache.
    pub fn new(config: ApnsConfig) -> Self {
        Self {
            config: Arc::new(config),
            clients: Arc::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ApnsConfig {
        &self.config
    }

    /// The (cached) client of a credential; created on first use.
    pub fn client(&self, credential: &PushCredential) -> Result<Arc<ApnsClient>, String> {
        if credential.credential_type != PushType::Apn {
            return Err(format!(
                "credential {} is {}, not apn",
                credential.sid,
                credential.credential_type.as_str()
            ));
        }
        let key = (
            credential.sid.clone(),
            credential.updated,
            credential.sandbox,
        );
        if let Some(c) = lock(&self.clients).get(&key) {
            return Ok(c.clone());
        }
        let auth = apns_auth(&credential.secrets)?;
        let base = if credential.sandbox {
            &self.config.sandbox_url
        } else {
            &self.config.production_url
        };
        let client = Arc::new(ApnsClient::new(&self.config, base, &auth)?);
        let mut clients = lock(&self.clients);
        // A newer date_updated replaces the clients of older versions of the credential.
        clients.retain(|(sid, updated, _), _| sid != &key.0 || *updated == key.1);
        Ok(clients.entry(key).or_insert(client).clone())
    }

    /// How many clients are cached.
    pub fn cached_clients(&self) -> usize {
        lock(&self.clients).len()
    }
}

#[async_trait]
impl PushSender for ApnsSender {
    async fn send(&self, target: &Target, notification: &Notification) -> SendOutcome {
        let client = match self.client(&target.credential) {
            Ok(c) => c,
            Err(reason) => return SendOutcome::CredentialFailed { reason },
        };
        let payload = match apns_payload(notification) {
            Ok(p) => p,
            Err(e) => {
                return SendOutcome::Failed {
                    reason: e.to_string(),
                }
            }
        };
        let apns_id = stable_uuid(&notification.id, &target.binding_sid);
        let outcome = client
            .send(&self.config, &target.address, &apns_id, payload)
            .await;
        tracing::debug!(
            binding.sid = %target.binding_sid,
            credential.sid = %target.credential.sid,
            outcome = outcome.label(),
            "apns send"
        );
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = include_str!("../tests/fixtures/TEST-ONLY-apns-cert.pem");
    const CERT_KEY: &str = include_str!("../tests/fixtures/TEST-ONLY-apns-cert-key.pem");
    const P8: &str = include_str!("../tests/fixtures/TEST-ONLY-apns-authkey.p8");

    #[test]
    fn config_from_variables() {
        let c = ApnsConfig::from_lookup(|_| None);
        assert_eq!(c.production_url, "https://api.push.apple.com");
        assert_eq!(c.sandbox_url, "https://api.sandbox.push.apple.com");
        let c = ApnsConfig::from_lookup(|name| match name {
            "PARLEY_APNS_URL" => Some(" http://127.0.0.1:8443/ ".into()),
            "PARLEY_APNS_SANDBOX_URL" => Some("  ".into()),
            _ => None,
        });
        assert_eq!(c.production_url, "http://127.0.0.1:8443");
        assert_eq!(c.sandbox_url, DEFAULT_APNS_SANDBOX_URL);
        assert_eq!(c.token_refresh, Duration::from_secs(2400));
    }

    #[test]
    fn reads_the_topic_from_the_certificate_uid() {
        let info = certificate_info(CERT).unwrap();
        assert_eq!(info.topic.as_deref(), Some("com.example.parley"));
        assert_eq!(info.expired, None);
    }

    #[test]
    fn certificate_auth() {
        let s = CredentialSecrets {
            certificate: Some(CERT.into()),
            private_key: Some(CERT_KEY.into()),
            ..Default::default()
        };
        let auth = apns_auth(&s).unwrap();
        assert_eq!(auth.topic(), "com.example.parley");
        assert!(matches!(auth, ApnsAuth::Certificate { .. }));
        assert!(!format!("{auth:?}").contains("PRIVATE"));
        let with_topic = CredentialSecrets {
            secret: Some(r#"{"topic":"com.other"}"#.into()),
            ..s
        };
        assert_eq!(apns_auth(&with_topic).unwrap().topic(), "com.other");
    }

    #[test]
    fn certificate_without_key_or_garbage() {
        let s = CredentialSecrets {
            certificate: Some(CERT.into()),
            ..Default::default()
        };
        assert!(apns_auth(&s).unwrap_err().contains("no PrivateKey"));
        let s = CredentialSecrets {
            certificate: Some("not a cert".into()),
            private_key: Some(CERT_KEY.into()),
            ..Default::default()
        };
        assert!(apns_auth(&s).unwrap_err().contains("not a PEM"));
        assert!(apns_auth(&CredentialSecrets::default())
            .unwrap_err()
            .contains("neither"));
    }

    #[test]
    fn token_auth() {
        let s = CredentialSecrets {
            private_key: Some(P8.into()),
            secret: Some(
                r#"{"key_id":"KEY1234567","team_id":"TEAM123456","topic":"com.example.parley"}"#
                    .into(),
            ),
            ..Default::default()
        };
        match apns_auth(&s).unwrap() {
            ApnsAuth::Token {
                key_id,
                team_id,
                topic,
                ..
            } => {
                assert_eq!(
                    (key_id.as_str(), team_id.as_str(), topic.as_str()),
                    ("KEY1234567", "TEAM123456", "com.example.parley")
                );
            }
            other => panic!("{other:?}"),
        }
        let missing = CredentialSecrets {
            secret: Some(r#"{"key_id":"K","topic":"t"}"#.into()),
            ..s.clone()
        };
        assert!(apns_auth(&missing).unwrap_err().contains("team_id"));
        let bad_json = CredentialSecrets {
            secret: Some("nope".into()),
            ..s
        };
        assert!(apns_auth(&bad_json).is_err());
    }

    #[test]
    fn provider_jwt_is_cached_then_refreshed() {
        let signer =
            TokenSigner::new(P8, "KEY1234567", "TEAM123456", Duration::from_secs(2400)).unwrap();
        let a = signer.token().unwrap();
        let b = signer.token().unwrap();
        assert_eq!(a, b);
        assert_eq!(signer.signed_count(), 1);
        let header = jsonwebtoken::decode_header(&a).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KEY1234567"));
        signer.invalidate();
        signer.token().unwrap();
        assert_eq!(signer.signed_count(), 2);

        let eager = TokenSigner::new(P8, "KEY1234567", "TEAM123456", Duration::ZERO).unwrap();
        eager.token().unwrap();
        eager.token().unwrap();
        assert_eq!(eager.signed_count(), 2);
    }

    #[test]
    fn bad_p8_is_an_error() {
        assert!(TokenSigner::new("junk", "K", "T", Duration::from_secs(1)).is_err());
        assert!(TokenSigner::new(CERT, "K", "T", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn maps_answers() {
        let r = |s: u16, reason: &str| {
            map_response(s, None, format!(r#"{{"reason":"{reason}"}}"#).as_bytes())
        };
        assert_eq!(map_response(200, None, b""), SendOutcome::Delivered);
        assert!(matches!(
            r(410, "Unregistered"),
            SendOutcome::InvalidToken { .. }
        ));
        assert!(matches!(
            r(400, "BadDeviceToken"),
            SendOutcome::InvalidToken { .. }
        ));
        assert!(matches!(
            r(400, "DeviceTokenNotForTopic"),
            SendOutcome::InvalidToken { .. }
        ));
        assert!(matches!(r(400, "BadTopic"), SendOutcome::Failed { .. }));
        assert!(matches!(
            r(413, "PayloadTooLarge"),
            SendOutcome::Failed { .. }
        ));
        assert!(matches!(
            r(403, "ExpiredProviderToken"),
            SendOutcome::Retry { after: None, .. }
        ));
        assert_eq!(
            r(400, "<b>internal detail</b>"),
            SendOutcome::Failed {
                reason: "APNs 400 Unknown".into()
            }
        );
        assert!(matches!(
            r(403, "BadCertificate"),
            SendOutcome::CredentialFailed { .. }
        ));
        assert!(matches!(
            r(400, "TopicDisallowed"),
            SendOutcome::CredentialFailed { .. }
        ));
        assert!(matches!(
            r(500, "InternalServerError"),
            SendOutcome::Retry { .. }
        ));
        assert!(matches!(
            r(503, "ServiceUnavailable"),
            SendOutcome::Retry { .. }
        ));
        assert_eq!(
            map_response(
                429,
                Some(Duration::from_secs(9)),
                br#"{"reason":"TooManyRequests"}"#
            ),
            SendOutcome::Retry {
                after: Some(Duration::from_secs(9)),
                reason: "APNs 429 TooManyRequests".into()
            }
        );
        // Not JSON: still mapped by status.
        assert!(matches!(
            map_response(410, None, b"<html>"),
            SendOutcome::InvalidToken { .. }
        ));
    }
}
