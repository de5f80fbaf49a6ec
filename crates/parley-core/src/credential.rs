//! Push credentials (contract §5): account-level, secrets sealed at rest and never returned.

use serde::{Deserialize, Serialize};

use crate::{AccountSid, CredentialSid, Timestamp};

/// `apn`, `gcm` or `fcm`. Used by credentials and bindings alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PushType {
    /// Apple Push Notification service.
    Apn,
    /// Legacy Google Cloud Messaging.
    Gcm,
    /// Firebase Cloud Messaging.
    Fcm,
}

impl PushType {
    /// Wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apn => "apn",
            Self::Gcm => "gcm",
            Self::Fcm => "fcm",
        }
    }
    /// Parse the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "apn" => Some(Self::Apn),
            "gcm" => Some(Self::Gcm),
            "fcm" => Some(Self::Fcm),
            _ => None,
        }
    }
    /// Whether a credential of type `self` can deliver to a binding of type `binding`:
    /// apn only to apn; fcm and gcm credentials to fcm and gcm bindings.
    pub fn credential_serves(self, binding: PushType) -> bool {
        match self {
            Self::Apn => binding == Self::Apn,
            Self::Gcm | Self::Fcm => matches!(binding, Self::Gcm | Self::Fcm),
        }
    }
}

/// A push credential. The secret material is sealed; see [`CredentialSecrets`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// `CR…`
    pub sid: CredentialSid,
    /// Owner.
    pub account_sid: AccountSid,
    /// Name.
    pub friendly_name: Option<String>,
    /// Provider kind.
    pub credential_type: PushType,
    /// APNs sandbox flag; `None` when never set.
    pub sandbox: Option<bool>,
    /// Sealed JSON of [`CredentialSecrets`].
    pub secrets_sealed: Vec<u8>,
    /// Created.
    pub date_created: Timestamp,
    /// Last updated.
    pub date_updated: Timestamp,
}

/// The write-only secret fields of a credential. Never serialized to the wire; serialized only
/// to be sealed. `Debug` redacts every value.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CredentialSecrets {
    /// APNs certificate (PEM).
    pub certificate: Option<String>,
    /// APNs private key (PEM).
    pub private_key: Option<String>,
    /// GCM API key.
    pub api_key: Option<String>,
    /// FCM secret: a service-account JSON (or a legacy server key).
    pub secret: Option<String>,
}

impl std::fmt::Debug for CredentialSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = |o: &Option<String>| if o.is_some() { "***" } else { "none" };
        f.debug_struct("CredentialSecrets")
            .field("certificate", &mark(&self.certificate))
            .field("private_key", &mark(&self.private_key))
            .field("api_key", &mark(&self.api_key))
            .field("secret", &mark(&self.secret))
            .finish()
    }
}
