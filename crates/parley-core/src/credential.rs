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
    /// The form fields of UpdateCredential that supply this kind's secret.
    pub fn secret_fields(self) -> &'static str {
        match self {
            Self::Apn => "Certificate and PrivateKey",
            Self::Gcm | Self::Fcm => "Secret",
        }
    }
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
    /// Sealed JSON of [`CredentialSecrets`] (empty: none).
    pub secrets_sealed: Vec<u8>,
    /// Created without its secret (imported from Twilio, which never returns secrets): no push
    /// goes through it until an update supplies the secret (docs/CREDENTIALS.md). Not on the
    /// wire.
    pub needs_secret: bool,
    /// Created.
    pub date_created: Timestamp,
    /// Last updated.
    pub date_updated: Timestamp,
}

impl Credential {
    /// Why nothing can be sent through this credential yet, when it [`needs_secret`]: says how
    /// to supply the secret.
    ///
    /// [`needs_secret`]: Credential::needs_secret
    pub fn missing_secret(&self) -> Option<String> {
        self.needs_secret
            .then(|| missing_secret_message(self.sid.as_str(), self.credential_type))
    }
}

/// The message of a credential that has no secret yet (see [`Credential::missing_secret`]).
pub fn missing_secret_message(sid: &str, kind: PushType) -> String {
    format!(
        "Credential {sid} has no secret yet (imported from Twilio, which never returns \
         secrets): supply it with POST /v2/Credentials/{sid} and {}",
        kind.secret_fields()
    )
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

/// Google's OAuth2 token endpoints: the only `token_uri`s of an FCM service-account JSON that
/// Parley contacts unless the operator allows more (`PARLEY_FCM_TOKEN_URI_ALLOW`).
pub const GOOGLE_TOKEN_URIS: [&str; 2] = [
    "https://oauth2.googleapis.com/token",
    "https://accounts.google.com/o/oauth2/token",
];

/// Environment variable: extra allowed FCM `token_uri` prefixes, comma-separated.
pub const FCM_TOKEN_URI_ALLOW_ENV: &str = "PARLEY_FCM_TOKEN_URI_ALLOW";

/// The allowed `token_uri` prefixes beyond [`GOOGLE_TOKEN_URIS`], parsed from the value of
/// `PARLEY_FCM_TOKEN_URI_ALLOW` (comma-separated; blanks ignored).
pub fn parse_token_uri_allow(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether an FCM service account's `token_uri` may be contacted: one of Google's endpoints
/// exactly, or starting with one of the `extra` prefixes at a URL boundary (the prefix ends with
/// `/`, or the URI continues with `/`, `?` or ends there), so `http://127.0.0.1:80` does not
/// allow `http://127.0.0.1:8000` or `http://127.0.0.1:80@evil.example`.
pub fn token_uri_allowed(uri: &str, extra: &[String]) -> bool {
    if GOOGLE_TOKEN_URIS.contains(&uri) {
        return true;
    }
    extra.iter().any(|prefix| {
        uri.strip_prefix(prefix.as_str()).is_some_and(|rest| {
            prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?'])
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_uri_allow_list() {
        let extra = parse_token_uri_allow(Some(" http://127.0.0.1:9000 , ,https://fake/x/ "));
        assert_eq!(extra, vec!["http://127.0.0.1:9000", "https://fake/x/"]);
        assert!(token_uri_allowed(
            "https://oauth2.googleapis.com/token",
            &[]
        ));
        assert!(token_uri_allowed(
            "https://accounts.google.com/o/oauth2/token",
            &[]
        ));
        assert!(!token_uri_allowed(
            "https://oauth2.googleapis.com/token/../x",
            &[]
        ));
        assert!(!token_uri_allowed("http://169.254.169.254/latest", &[]));
        assert!(token_uri_allowed("http://127.0.0.1:9000/token", &extra));
        assert!(token_uri_allowed("http://127.0.0.1:9000", &extra));
        assert!(!token_uri_allowed("http://127.0.0.1:90001/token", &extra));
        assert!(!token_uri_allowed(
            "http://127.0.0.1:9000@evil/token",
            &extra
        ));
        assert!(token_uri_allowed("https://fake/x/token", &extra));
        assert!(!token_uri_allowed("https://fake/xy", &extra));
    }
}
