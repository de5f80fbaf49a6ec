//! Validation of push credential secrets when they are stored (CreateCredential and an
//! UpdateCredential that sends a secret field), so a credential that can never work is a 400
//! naming the parameter instead of a silent delivery failure later (docs/PUSH.md).
//!
//! * `apn` with a `Certificate`: the certificate parses (PEM X.509), has not expired and names a
//!   topic (subject UID, or `"topic"` in `Secret`); `PrivateKey` parses (RSA PKCS#1/PKCS#8, EC
//!   SEC1/PKCS#8) and is the key of that certificate (same public key).
//! * `apn` without a certificate (token auth): `PrivateKey` (or `"private_key"` in `Secret`) is
//!   an EC P-256 PKCS#8 key (`.p8`), `Secret` is JSON with `key_id`, `team_id` and `topic`.
//! * `fcm`: `Secret` is a service-account JSON with `project_id`, `client_email`, a parseable RSA
//!   `private_key`, and a `token_uri` that is Google's (or allowed by
//!   `PARLEY_FCM_TOKEN_URI_ALLOW`). A secret that is not JSON (a legacy server key), a `gcm`
//!   credential, or an `ApiKey` is accepted but flagged: Google shut those APIs down in 2024.

use parley_core::credential::{token_uri_allowed, CredentialSecrets, PushType};
use ring::signature::{self, KeyPair};
use serde_json::Value;
use x509_parser::pem::Pem;

/// What the check found worth telling the operator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// The APNs certificate's expiry (RFC 3339), when there is a certificate.
    pub certificate_expires: Option<String>,
    /// A legacy FCM/GCM server key: stored, but it cannot deliver.
    pub legacy_key: bool,
}

/// Why a credential was refused: the parameter to name and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// Form parameter (`Certificate`, `PrivateKey`, `Secret`, `ApiKey`).
    pub param: &'static str,
    /// Readable reason (never contains secret material).
    pub message: String,
}

fn invalid(param: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        param,
        message: message.into(),
    }
}

fn non_blank(o: &Option<String>) -> Option<&str> {
    o.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Check the complete secrets of a credential of type `kind`. `token_uri_allow` are the extra
/// allowed FCM token endpoint prefixes.
pub fn check(
    kind: PushType,
    secrets: &CredentialSecrets,
    token_uri_allow: &[String],
) -> Result<Checked, Invalid> {
    match kind {
        PushType::Apn => check_apn(secrets),
        PushType::Fcm => check_fcm(secrets, token_uri_allow),
        PushType::Gcm => {
            if non_blank(&secrets.api_key).is_none() && non_blank(&secrets.secret).is_none() {
                return Err(invalid(
                    "ApiKey",
                    "a gcm credential needs an ApiKey (legacy server key)",
                ));
            }
            Ok(Checked {
                legacy_key: true,
                ..Checked::default()
            })
        }
    }
}

fn secret_json(
    secrets: &CredentialSecrets,
) -> Result<Option<serde_json::Map<String, Value>>, Invalid> {
    match non_blank(&secrets.secret) {
        None => Ok(None),
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Ok(Some(m)),
            _ => Err(invalid(
                "Secret",
                "Secret of an apn credential must be a JSON object",
            )),
        },
    }
}

fn check_apn(secrets: &CredentialSecrets) -> Result<Checked, Invalid> {
    let extra = secret_json(secrets)?.unwrap_or_default();
    let text = |k: &str| {
        extra
            .get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    if let Some(cert_pem) = non_blank(&secrets.certificate) {
        let cert_der = first_block(cert_pem, &["CERTIFICATE"]).ok_or_else(|| {
            invalid(
                "Certificate",
                "Certificate must be a PEM certificate (-----BEGIN CERTIFICATE-----)",
            )
        })?;
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der.contents)
            .map_err(|_| invalid("Certificate", "Certificate cannot be parsed as X.509"))?;
        let key_pem = non_blank(&secrets.private_key).ok_or_else(|| {
            invalid(
                "PrivateKey",
                "an apn credential with a Certificate needs its PrivateKey",
            )
        })?;
        let public = private_key_public(key_pem)?;
        if public != cert.public_key().subject_public_key.data.as_ref() {
            return Err(invalid(
                "PrivateKey",
                "PrivateKey does not belong to the Certificate (their public keys differ)",
            ));
        }
        let expires = parley_core::Timestamp::from_unix_secs(cert.validity().not_after.timestamp())
            .to_rfc3339_seconds();
        if !cert.validity().is_valid() {
            return Err(invalid(
                "Certificate",
                format!("Certificate is not valid now (it expires {expires})"),
            ));
        }
        let uid = cert
            .subject()
            .iter_attributes()
            .any(|a| a.attr_type().to_id_string() == "0.9.2342.19200300.100.1.1");
        if !uid && text("topic").is_none() {
            return Err(invalid(
                "Certificate",
                "Certificate subject has no UID (the app's bundle id); set \"topic\" in Secret",
            ));
        }
        return Ok(Checked {
            certificate_expires: Some(expires),
            legacy_key: false,
        });
    }
    let key_pem = text("private_key")
        .or(non_blank(&secrets.private_key))
        .ok_or_else(|| {
            invalid(
                "Certificate",
                "an apn credential needs a Certificate and PrivateKey, or a .p8 PrivateKey with a Secret",
            )
        })?;
    let der = first_block(key_pem, &["PRIVATE KEY"]).ok_or_else(|| {
        invalid(
            "PrivateKey",
            "PrivateKey must be a .p8 key (PEM -----BEGIN PRIVATE KEY-----) or go with a Certificate",
        )
    })?;
    signature::EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der.contents,
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|_| invalid("PrivateKey", "PrivateKey is not an EC P-256 .p8 key"))?;
    for field in ["key_id", "team_id", "topic"] {
        if text(field).is_none() {
            return Err(invalid(
                "Secret",
                format!("APNs token auth needs \"{field}\" in the Secret JSON"),
            ));
        }
    }
    Ok(Checked::default())
}

fn check_fcm(secrets: &CredentialSecrets, token_uri_allow: &[String]) -> Result<Checked, Invalid> {
    let Some(secret) = non_blank(&secrets.secret) else {
        if non_blank(&secrets.api_key).is_some() {
            return Ok(Checked {
                legacy_key: true,
                ..Checked::default()
            });
        }
        return Err(invalid(
            "Secret",
            "an fcm credential needs a Secret (a Google service-account JSON)",
        ));
    };
    if !secret.starts_with('{') {
        return Ok(Checked {
            legacy_key: true,
            ..Checked::default()
        });
    }
    let Ok(Value::Object(sa)) = serde_json::from_str::<Value>(secret) else {
        return Err(invalid("Secret", "Secret is not valid JSON"));
    };
    let field = |k: &str| {
        sa.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    if let Some(kind) = sa.get("type") {
        if kind.as_str() != Some("service_account") {
            return Err(invalid(
                "Secret",
                "Secret is not a service-account JSON (its \"type\" is not \"service_account\")",
            ));
        }
    }
    for k in ["project_id", "client_email", "private_key"] {
        if field(k).is_none() {
            return Err(invalid(
                "Secret",
                format!("the service-account JSON in Secret has no \"{k}\""),
            ));
        }
    }
    let key = field("private_key").unwrap_or_default();
    let der = first_block(key, &["PRIVATE KEY", "RSA PRIVATE KEY"]).ok_or_else(|| {
        invalid(
            "Secret",
            "the service-account \"private_key\" is not a PEM private key",
        )
    })?;
    let rsa = if der.label == "RSA PRIVATE KEY" {
        signature::RsaKeyPair::from_der(&der.contents)
    } else {
        signature::RsaKeyPair::from_pkcs8(&der.contents)
    };
    rsa.map_err(|_| {
        invalid(
            "Secret",
            "the service-account \"private_key\" is not a usable RSA key",
        )
    })?;
    match sa.get("token_uri") {
        None => {}
        Some(Value::String(uri)) if token_uri_allowed(uri.trim(), token_uri_allow) => {}
        Some(_) => {
            return Err(invalid(
                "Secret",
                "the service-account \"token_uri\" is not Google's OAuth2 token endpoint \
                 (https://oauth2.googleapis.com/token); other endpoints must be allowed with \
                 PARLEY_FCM_TOKEN_URI_ALLOW",
            ))
        }
    }
    Ok(Checked::default())
}

/// The first PEM block with one of `labels`.
fn first_block(text: &str, labels: &[&str]) -> Option<Pem> {
    Pem::iter_from_buffer(text.trim().as_bytes())
        .map_while(Result::ok)
        .find(|p| labels.contains(&p.label.as_str()))
}

/// The public key (as in a certificate's SubjectPublicKeyInfo bit string) of a PEM private key.
fn private_key_public(pem: &str) -> Result<Vec<u8>, Invalid> {
    let block = first_block(pem, &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"])
        .ok_or_else(|| {
            invalid(
                "PrivateKey",
                "PrivateKey must be a PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)",
            )
        })?;
    let bad = || {
        invalid(
            "PrivateKey",
            "PrivateKey cannot be parsed as an RSA or EC key",
        )
    };
    let rng = ring::rand::SystemRandom::new();
    let ec = |pkcs8: &[u8]| {
        [
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        ]
        .into_iter()
        .find_map(|alg| signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8, &rng).ok())
        .map(|k| k.public_key().as_ref().to_vec())
    };
    match block.label.as_str() {
        "RSA PRIVATE KEY" => signature::RsaKeyPair::from_der(&block.contents)
            .map(|k| k.public_key().as_ref().to_vec())
            .map_err(|_| bad()),
        "EC PRIVATE KEY" => sec1_to_pkcs8(&block.contents)
            .and_then(|p| ec(&p))
            .ok_or_else(bad),
        _ => signature::RsaKeyPair::from_pkcs8(&block.contents)
            .map(|k| k.public_key().as_ref().to_vec())
            .ok()
            .or_else(|| ec(&block.contents))
            .ok_or_else(bad),
    }
}

/// DER length octets.
fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        return vec![u8::try_from(n).unwrap_or(0)];
    }
    let bytes: Vec<u8> = n
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | u8::try_from(bytes.len()).unwrap_or(0)];
    out.extend(bytes);
    out
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(body.len()));
    out.extend_from_slice(body);
    out
}

/// Wrap a SEC1 `ECPrivateKey` into PKCS#8 (the curve is taken from its `[0]` parameters).
fn sec1_to_pkcs8(sec1: &[u8]) -> Option<Vec<u8>> {
    // id-ecPublicKey
    const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    // prime256v1 / secp384r1
    const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    let curve = [P256, P384]
        .into_iter()
        .find(|oid| sec1.windows(oid.len()).any(|w| w == *oid))?;
    let mut alg = EC_PUBLIC_KEY.to_vec();
    alg.extend_from_slice(curve);
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend(der(0x30, &alg));
    body.extend(der(0x04, sec1));
    Some(der(0x30, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = include_str!("../../parley-push/tests/fixtures/TEST-ONLY-apns-cert.pem");
    const CERT_KEY: &str =
        include_str!("../../parley-push/tests/fixtures/TEST-ONLY-apns-cert-key.pem");
    const OTHER_KEY: &str =
        include_str!("../../parley-push/tests/fixtures/TEST-ONLY-server-key.pem");
    const P8: &str = include_str!("../../parley-push/tests/fixtures/TEST-ONLY-apns-authkey.p8");
    const SA_KEY: &str = include_str!("../../parley-push/tests/fixtures/TEST-ONLY-fcm-sa-key.pem");

    fn apn(
        cert: Option<&str>,
        key: Option<&str>,
        secret: Option<&str>,
    ) -> Result<Checked, Invalid> {
        let s = CredentialSecrets {
            certificate: cert.map(Into::into),
            private_key: key.map(Into::into),
            secret: secret.map(Into::into),
            ..CredentialSecrets::default()
        };
        check(PushType::Apn, &s, &[])
    }

    fn param(r: Result<Checked, Invalid>) -> &'static str {
        r.err().map_or("ok", |e| e.param)
    }

    #[test]
    fn apn_certificate_and_key_must_parse_and_belong_together() {
        let ok = apn(Some(CERT), Some(CERT_KEY), None).unwrap();
        assert!(ok.certificate_expires.is_some_and(|e| e.starts_with('2')));
        assert_eq!(
            param(apn(Some("garbage"), Some(CERT_KEY), None)),
            "Certificate"
        );
        assert_eq!(param(apn(Some(CERT), None, None)), "PrivateKey");
        assert_eq!(param(apn(Some(CERT), Some("junk"), None)), "PrivateKey");
        assert_eq!(param(apn(Some(CERT), Some(OTHER_KEY), None)), "PrivateKey");
        assert_eq!(param(apn(Some(CERT), Some(P8), None)), "PrivateKey");
        assert_eq!(param(apn(None, None, None)), "Certificate");
        assert_eq!(
            param(apn(Some(CERT), Some(CERT_KEY), Some("nope"))),
            "Secret"
        );
    }

    #[test]
    fn apn_token_auth_needs_a_p256_key_and_ids() {
        let ids = r#"{"key_id":"K","team_id":"T","topic":"com.x"}"#;
        assert_eq!(param(apn(None, Some(P8), Some(ids))), "ok");
        assert_eq!(param(apn(None, Some(CERT_KEY), Some(ids))), "PrivateKey");
        assert_eq!(param(apn(None, Some("junk"), Some(ids))), "PrivateKey");
        assert_eq!(
            param(apn(None, Some(P8), Some(r#"{"key_id":"K"}"#))),
            "Secret"
        );
    }

    #[test]
    fn other_key_encodings_are_read() {
        const EC_CERT: &str =
            include_str!("../../parley-push/tests/fixtures/TEST-ONLY-apns-ec-cert.pem");
        const EC_SEC1: &str =
            include_str!("../../parley-push/tests/fixtures/TEST-ONLY-apns-ec-cert-key.pem");
        const PKCS1: &str =
            include_str!("../../parley-push/tests/fixtures/TEST-ONLY-apns-cert-key-pkcs1.pem");
        const EXPIRED: &str =
            include_str!("../../parley-push/tests/fixtures/TEST-ONLY-apns-cert-expired.pem");
        assert_eq!(param(apn(Some(EC_CERT), Some(EC_SEC1), None)), "ok");
        assert_eq!(
            param(apn(Some(EC_CERT), Some(CERT_KEY), None)),
            "PrivateKey"
        );
        assert_eq!(param(apn(Some(CERT), Some(EC_SEC1), None)), "PrivateKey");
        assert_eq!(param(apn(Some(CERT), Some(PKCS1), None)), "ok");
        let expired = apn(Some(EXPIRED), Some(CERT_KEY), None).unwrap_err();
        assert_eq!(expired.param, "Certificate");
        assert!(
            expired.message.contains("2021-01-01T00:00:00Z"),
            "{}",
            expired.message
        );
    }

    fn fcm(secret: &str, allow: &[String]) -> Result<Checked, Invalid> {
        let s = CredentialSecrets {
            secret: Some(secret.into()),
            ..CredentialSecrets::default()
        };
        check(PushType::Fcm, &s, allow)
    }

    #[test]
    fn fcm_service_account_is_checked() {
        let sa = |uri: &str, key: &str| {
            serde_json::json!({"type":"service_account","project_id":"p","client_email":"e@p",
                "private_key": key, "token_uri": uri})
            .to_string()
        };
        let google = "https://oauth2.googleapis.com/token";
        assert_eq!(fcm(&sa(google, SA_KEY), &[]).unwrap(), Checked::default());
        assert_eq!(param(fcm(&sa(google, "junk"), &[])), "Secret");
        assert_eq!(param(fcm(&sa(google, P8), &[])), "Secret");
        assert_eq!(
            param(fcm(&sa("http://10.0.0.1/token", SA_KEY), &[])),
            "Secret"
        );
        let allow = vec!["http://10.0.0.1".to_owned()];
        assert_eq!(
            param(fcm(&sa("http://10.0.0.1/token", SA_KEY), &allow)),
            "ok"
        );
        assert_eq!(param(fcm(r#"{"type":"service_account"}"#, &[])), "Secret");
        assert_eq!(param(fcm("{not json", &[])), "Secret");
        assert!(fcm("AAAA-legacy-server-key", &[]).unwrap().legacy_key);
    }
}
