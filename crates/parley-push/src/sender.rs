//! The sending contract between the worker and the providers.
//!
//! The worker resolves a binding and its credential into a [`Target`], builds a
//! [`Notification`], and calls [`PushSender::send`]. The answer is a [`SendOutcome`] that tells it
//! how to settle the outbox row: delete on `Delivered`, delete the binding on `InvalidToken`,
//! re-schedule on `Retry` (see [`crate::retry`]), alarm on `CredentialFailed`, drop on `Failed`.
//!
//! [`Providers`] is the production sender: it routes apn bindings to [`ApnsSender`] and
//! fcm/gcm bindings to [`FcmSender`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use parley_core::credential::{Credential, CredentialSecrets, PushType};
use parley_core::crypto::SecretBox;

use crate::apns::{ApnsConfig, ApnsSender};
use crate::fcm::{FcmConfig, FcmSender};
use crate::notification::Notification;

/// A credential ready to use: the stored [`Credential`] with its secrets opened.
#[derive(Clone, PartialEq, Eq)]
pub struct PushCredential {
    /// `CR…`
    pub sid: String,
    /// `apn`, `gcm` or `fcm`.
    pub credential_type: PushType,
    /// APNs sandbox flag.
    pub sandbox: bool,
    /// `date_updated` in epoch microseconds: part of the provider-client cache key, so an
    /// updated credential gets a fresh client.
    pub updated: i64,
    /// The opened secrets.
    pub secrets: CredentialSecrets,
    /// Set when the credential was imported without its secret: why no send goes through it
    /// (the worker answers `CredentialFailed` with it and contacts no provider).
    pub missing_secret: Option<String>,
}

impl std::fmt::Debug for PushCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushCredential")
            .field("sid", &self.sid)
            .field("credential_type", &self.credential_type)
            .field("sandbox", &self.sandbox)
            .field("updated", &self.updated)
            .field("secrets", &self.secrets)
            .field("missing_secret", &self.missing_secret)
            .finish()
    }
}

/// The sealed secrets could not be opened or decoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the secrets of credential {sid}: {reason}")]
pub struct OpenCredentialError {
    /// `CR…`
    pub sid: String,
    /// Why.
    pub reason: String,
}

impl PushCredential {
    /// From a stored credential and its already-opened secrets.
    pub fn new(credential: &Credential, secrets: CredentialSecrets) -> Self {
        Self {
            sid: credential.sid.as_str().to_owned(),
            credential_type: credential.credential_type,
            sandbox: credential.sandbox.unwrap_or(false),
            updated: credential.date_updated.unix_micros(),
            secrets,
            missing_secret: credential.missing_secret(),
        }
    }

    /// Open the sealed secrets of a stored credential with the server's [`SecretBox`].
    pub fn open(credential: &Credential, secrets: &SecretBox) -> Result<Self, OpenCredentialError> {
        let err = |reason: String| OpenCredentialError {
            sid: credential.sid.as_str().to_owned(),
            reason,
        };
        let opened = if credential.secrets_sealed.is_empty() {
            CredentialSecrets::default()
        } else {
            let plain = secrets
                .open(&credential.secrets_sealed)
                .map_err(|e| err(e.to_string()))?;
            serde_json::from_slice(&plain).map_err(|e| err(e.to_string()))?
        };
        Ok(Self::new(credential, opened))
    }
}

/// Where one push goes: one binding.
#[derive(Clone, Debug)]
pub struct Target {
    /// `BS…` of the binding (part of the stable `apns-id`; the one to delete on `InvalidToken`).
    pub binding_sid: String,
    /// apn, gcm or fcm.
    pub binding_type: PushType,
    /// The device token.
    pub address: String,
    /// The credential to deliver with.
    pub credential: Arc<PushCredential>,
}

/// What happened to one send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// The provider accepted the push.
    Delivered,
    /// The device token is dead for good (APNs 410/BadDeviceToken/DeviceTokenNotForTopic, FCM
    /// UNREGISTERED/invalid token): delete the binding.
    InvalidToken {
        /// Provider reason.
        reason: String,
    },
    /// Transient (429, 5xx, network, timeout): try again later, not before `after` if given.
    Retry {
        /// The provider's `Retry-After`.
        after: Option<Duration>,
        /// Provider reason.
        reason: String,
    },
    /// The credential is unusable (expired/invalid certificate or key, legacy FCM key, 401/403):
    /// every send with it will fail until it is fixed. Do not delete bindings.
    CredentialFailed {
        /// Why, readable by an operator.
        reason: String,
    },
    /// This push failed for another reason and will not succeed if repeated (4xx).
    Failed {
        /// Provider reason.
        reason: String,
    },
}

impl SendOutcome {
    /// Short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::InvalidToken { .. } => "invalid_token",
            Self::Retry { .. } => "retry",
            Self::CredentialFailed { .. } => "credential_failed",
            Self::Failed { .. } => "failed",
        }
    }
}

/// Whether an `InvalidToken` reason is a "bad device token" answer — APNs `BadDeviceToken` or
/// `DeviceTokenNotForTopic`, FCM 404 or 400 about the token — which is also what a misconfigured
/// credential (wrong `Sandbox` flag, topic or project) gets for every token. (APNs 410
/// `Unregistered` is a device that is really gone and is not counted.)
pub fn is_bad_token_answer(reason: &str) -> bool {
    reason.starts_with("APNs 400 BadDeviceToken")
        || reason.starts_with("APNs 400 DeviceTokenNotForTopic")
        || reason.starts_with("FCM 404 ")
        || reason.starts_with("FCM 400 ")
}

/// Sends one notification to one binding. Implementations must be safe to call again with the
/// same arguments (the worker may repeat a send after a crash or a lease expiry).
#[async_trait]
pub trait PushSender: Send + Sync {
    /// Send `notification` to `target`.
    async fn send(&self, target: &Target, notification: &Notification) -> SendOutcome;
}

/// The production sender: APNs for apn bindings, FCM for fcm and gcm bindings.
#[derive(Debug, Clone)]
pub struct Providers {
    /// APNs.
    pub apns: ApnsSender,
    /// FCM.
    pub fcm: FcmSender,
}

impl Providers {
    /// With explicit configurations.
    pub fn new(apns: ApnsConfig, fcm: FcmConfig) -> Self {
        Self {
            apns: ApnsSender::new(apns),
            fcm: FcmSender::new(fcm),
        }
    }

    /// Configured from `PARLEY_APNS_URL`, `PARLEY_APNS_SANDBOX_URL` and `PARLEY_FCM_URL`.
    pub fn from_env() -> Self {
        Self::new(ApnsConfig::from_env(), FcmConfig::from_env())
    }
}

#[async_trait]
impl PushSender for Providers {
    async fn send(&self, target: &Target, notification: &Notification) -> SendOutcome {
        if !target
            .credential
            .credential_type
            .credential_serves(target.binding_type)
        {
            return SendOutcome::CredentialFailed {
                reason: format!(
                    "credential {} of type {} cannot deliver to a {} binding",
                    target.credential.sid,
                    target.credential.credential_type.as_str(),
                    target.binding_type.as_str()
                ),
            };
        }
        match target.binding_type {
            PushType::Apn => self.apns.send(target, notification).await,
            PushType::Fcm | PushType::Gcm => self.fcm.send(target, notification).await,
        }
    }
}

/// A sender for tests: records every call and answers from a script (default `Delivered`).
#[derive(Debug, Default)]
pub struct RecordingSender {
    sent: Mutex<Vec<(Target, Notification)>>,
    script: Mutex<Vec<(String, SendOutcome)>>,
}

impl RecordingSender {
    /// A sender that delivers everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answer `outcome` for every send to a device token starting with `prefix` (first match wins).
    pub fn script(&self, prefix: &str, outcome: SendOutcome) {
        lock(&self.script).push((prefix.to_owned(), outcome));
    }

    /// Everything sent so far.
    pub fn sent(&self) -> Vec<(Target, Notification)> {
        lock(&self.sent).clone()
    }

    /// Forget what was sent.
    pub fn clear(&self) {
        lock(&self.sent).clear();
    }
}

#[async_trait]
impl PushSender for RecordingSender {
    async fn send(&self, target: &Target, notification: &Notification) -> SendOutcome {
        lock(&self.sent).push((target.clone(), notification.clone()));
        lock(&self.script)
            .iter()
            .find(|(p, _)| target.address.starts_with(p.as_str()))
            .map(|(_, o)| o.clone())
            .unwrap_or(SendOutcome::Delivered)
    }
}

/// Lock a std mutex, ignoring poisoning (the data are plain values).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
