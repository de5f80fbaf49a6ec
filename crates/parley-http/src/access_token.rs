//! Twilio Access Tokens (twilio-notes §3d): HS256 JWTs signed with an API key secret.
//! Header `{"alg":"HS256","cty":"twilio-fpa;v=1","typ":"JWT"}`; claims `iss` (SK…), `sub`
//! (AC…), `exp`, `nbf`, `jti`, `grants` = `{"identity": …, "chat": {"service_sid", "endpoint_id",
//! "deployment_role_sid", "push_credential_sid"}}`. Verified by hand (HMAC-SHA256 is all it takes).

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use parley_core::store::StoreError;
use parley_core::{AccountSid, ApiKeySid, CredentialSid, ServiceSid, Timestamp};
use serde::Deserialize;

use crate::error::ApiError;
use crate::AppState;

/// Clock skew tolerated on `exp` / `nbf`, in seconds.
const LEEWAY_SECS: i64 = 60;

/// Latest `exp` kept as is (year ~9999); later ones are read as this.
const MAX_EXP_SECS: i64 = 253_402_300_799;

/// A verified token's chat identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatIdentity {
    /// `sub`.
    pub account_sid: AccountSid,
    /// `iss`.
    pub api_key_sid: ApiKeySid,
    /// `grants.identity`.
    pub identity: String,
    /// `grants.chat.service_sid`.
    pub service_sid: ServiceSid,
    /// `grants.chat.endpoint_id`.
    pub endpoint_id: Option<String>,
    /// `grants.chat.push_credential_sid`.
    pub push_credential_sid: Option<CredentialSid>,
    /// `exp`: when the token expires (a live connection is closed then unless refreshed).
    pub expires_at: Option<Timestamp>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    exp: Option<i64>,
    nbf: Option<i64>,
    #[serde(default)]
    grants: Grants,
}

#[derive(Deserialize, Default)]
struct Grants {
    identity: Option<String>,
    chat: Option<ChatGrant>,
}

#[derive(Deserialize)]
struct ChatGrant {
    service_sid: Option<String>,
    endpoint_id: Option<String>,
    push_credential_sid: Option<String>,
}

fn reject(code: u32, message: &'static str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

fn decode_part<T: for<'de> Deserialize<'de>>(
    part: &str,
    code: u32,
    what: &'static str,
) -> Result<T, ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| reject(code, what))?;
    serde_json::from_slice(&bytes).map_err(|_| reject(code, what))
}

/// Check the token's HS256 signature against `secret`.
fn signature_ok(signing_input: &str, signature: &str, secret: &[u8]) -> bool {
    let Ok(sig) = URL_SAFE_NO_PAD.decode(signature.trim_end_matches('=')) else {
        return false;
    };
    let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret) else {
        return false;
    };
    mac.update(signing_input.as_bytes());
    mac.verify_slice(&sig).is_ok()
}

/// A token whose format, header and issuer/subject are readable (nothing verified yet).
struct Unverified<'t> {
    signing_input: &'t str,
    signature: &'t str,
    claims: Claims,
    api_key_sid: ApiKeySid,
    account_sid: AccountSid,
}

/// Read a token's structure: three dot-separated parts, an HS256 header, claims with SID-shaped
/// `iss` and `sub`. Never panics; every failure is a 401 Twilio error.
fn parse(token: &str) -> Result<Unverified<'_>, ApiError> {
    let token = token.trim();
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(reject(20101, "Invalid Access Token"));
    };
    let header: Header = decode_part(h, 20102, "Invalid Access Token header")?;
    if header.alg != "HS256" {
        return Err(reject(
            20102,
            "Invalid Access Token header: alg must be HS256",
        ));
    }
    let claims: Claims = decode_part(p, 20101, "Invalid Access Token payload")?;
    let api_key_sid = ApiKeySid::parse(&claims.iss).map_err(|_| invalid_issuer())?;
    let account_sid = AccountSid::parse(&claims.sub).map_err(|_| invalid_issuer())?;
    Ok(Unverified {
        signing_input: &token[..h.len() + 1 + p.len()],
        signature: s,
        claims,
        api_key_sid,
        account_sid,
    })
}

fn invalid_issuer() -> ApiError {
    reject(20107, "Invalid Access Token issuer/subject")
}

/// Check a parsed token against its key's secret and the clock; read its grants.
fn check(token: Unverified<'_>, secret: &[u8], now: Timestamp) -> Result<ChatIdentity, ApiError> {
    if !signature_ok(token.signing_input, token.signature, secret) {
        return Err(reject(20101, "Invalid Access Token signature"));
    }
    let Unverified {
        claims,
        api_key_sid,
        account_sid,
        ..
    } = token;
    let now_secs = now.unix_secs();
    let expires_at = match claims.exp {
        // Clamped to a range `Timestamp` (microseconds in an i64) can hold.
        Some(exp) if exp.saturating_add(LEEWAY_SECS) >= now_secs => {
            Timestamp::from_unix_secs(exp.min(MAX_EXP_SECS))
        }
        _ => {
            return Err(reject(
                20104,
                "Access Token expired or expiration date invalid",
            ))
        }
    };
    if claims
        .nbf
        .is_some_and(|nbf| nbf.saturating_sub(LEEWAY_SECS) > now_secs)
    {
        return Err(reject(20105, "Access Token not yet valid"));
    }
    let identity = claims
        .grants
        .identity
        .filter(|i| !i.is_empty())
        .ok_or_else(|| reject(20106, "Invalid Access Token grants: no identity"))?;
    let chat = claims
        .grants
        .chat
        .ok_or_else(|| reject(20106, "Invalid Access Token grants: no chat grant"))?;
    let service_sid = chat
        .service_sid
        .as_deref()
        .and_then(|s| ServiceSid::parse(s).ok())
        .ok_or_else(|| {
            reject(
                20106,
                "Invalid Access Token grants: chat grant has no valid service_sid",
            )
        })?;
    let push_credential_sid = match chat.push_credential_sid.as_deref() {
        None | Some("") => None,
        Some(c) => Some(CredentialSid::parse(c).map_err(|_| {
            reject(
                20106,
                "Invalid Access Token grants: push_credential_sid is not a CR SID",
            )
        })?),
    };
    Ok(ChatIdentity {
        account_sid,
        api_key_sid,
        identity,
        service_sid,
        endpoint_id: chat.endpoint_id.filter(|e| !e.is_empty()),
        push_credential_sid,
        expires_at: Some(expires_at),
    })
}

/// Verify `token` fully: format, alg HS256, issuer = an API key of the `sub` account, signature
/// with that key's secret, `exp`/`nbf`, identity and chat grant with a service of that account.
pub async fn verify(app: &AppState, token: &str, now: Timestamp) -> Result<ChatIdentity, ApiError> {
    let token = parse(token)?;
    let key = match app.store.fetch_api_key(&token.api_key_sid).await {
        Ok(k) => k,
        Err(StoreError::NotFound) => return Err(invalid_issuer()),
        Err(e) => return Err(e.into()),
    };
    if key.account_sid != token.account_sid {
        return Err(invalid_issuer());
    }
    let secret = app
        .secrets
        .open(&key.secret_sealed)
        .map_err(ApiError::internal)?;
    check(token, &secret, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_the_sample_signature_from_twilio_notes() {
        // Generated by twilio-python's AccessToken with secret `my_api_key_secret` (twilio-notes §3d).
        let token = "eyJhbGciOiJIUzI1NiIsImN0eSI6InR3aWxpby1mcGE7dj0xIiwidHlwIjoiSldUIn0.eyJqdGkiOiJTSzIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyLTE3OTU1MjEwNzciLCJncmFudHMiOnsiY2hhdCI6eyJzZXJ2aWNlX3NpZCI6IklTMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMiLCJlbmRwb2ludF9pZCI6Ik15QXBwOmFsaWNlQGV4YW1wbGUuY29tOmRldmljZS11dWlkLTEyMzQiLCJkZXBsb3ltZW50X3JvbGVfc2lkIjoiUkw0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NCIsInB1c2hfY3JlZGVudGlhbF9zaWQiOiJDUjU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1In0sImlkZW50aXR5IjoiYWxpY2VAZXhhbXBsZS5jb20ifSwiaXNzIjoiU0syMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMiIsImV4cCI6MTc5NTUyNDY3NywibmJmIjoxNzk1NTIxMDc3LCJzdWIiOiJBQzExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExIn0.qFzkLnFrsNRlafXtpe833XTHb6ZIbIGErPEcTX8mBZY";
        let mut it = token.rsplitn(2, '.');
        let sig = it.next().expect("sig");
        let input = it.next().expect("input");
        assert!(signature_ok(input, sig, b"my_api_key_secret"));
        assert!(!signature_ok(input, sig, b"another_secret"));
        let claims: Claims =
            decode_part(input.split('.').nth(1).expect("payload"), 1, "x").expect("claims");
        assert_eq!(claims.grants.identity.as_deref(), Some("alice@example.com"));
        assert_eq!(claims.iss, "SK22222222222222222222222222222222");
    }
}

/// Access Tokens are client input: arbitrary text, tampered tokens and arbitrary claims (huge
/// or negative `exp`/`nbf`, wrong types) give a 401 Twilio error, never a panic.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const SECRET: &[u8] = b"prop-test-secret";

    fn b64(v: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    fn sign(header: &str, claims: &str, secret: &[u8]) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret) else {
            return input;
        };
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    }

    fn now() -> Timestamp {
        Timestamp::from_unix_secs(1_795_521_077)
    }

    fn verify_offline(token: &str) -> Result<ChatIdentity, ApiError> {
        check(parse(token)?, SECRET, now())
    }

    fn assert_401(r: &Result<ChatIdentity, ApiError>) {
        if let Err(e) = r {
            assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{e:?}");
            assert!((20101..=20107).contains(&e.code), "{e:?}");
        }
    }

    /// Seconds near the extremes as often as anywhere else.
    fn edge_secs() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(i64::MAX),
            Just(i64::MIN),
            (i64::MAX - 120..=i64::MAX),
            (i64::MIN..=i64::MIN + 120),
            (1_795_521_000i64..1_795_522_000),
            any::<i64>(),
        ]
    }

    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(".{0,8}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_text_is_a_401(token in ".{0,300}", dotted in "[A-Za-z0-9_=-]{0,40}\\.[A-Za-z0-9_=-]{0,60}\\.[A-Za-z0-9_=-]{0,40}") {
            let r = verify_offline(&token);
            prop_assert!(r.is_err());
            assert_401(&r);
            let r = verify_offline(&dotted);
            prop_assert!(r.is_err());
            assert_401(&r);
        }

        #[test]
        fn signed_tokens_with_arbitrary_claims_verify_or_are_401(
            exp in prop_oneof![4 => edge_secs().prop_map(|v| json!(v)), 1 => any_json()],
            nbf in prop_oneof![4 => edge_secs().prop_map(|v| json!(v)), 1 => any_json()],
            identity in prop_oneof![4 => ".{0,10}".prop_map(|v| json!(v)), 1 => any_json()],
            service in prop_oneof![4 => Just(json!("IS00000000000000000000000000000001")), 1 => any_json()],
            push in prop_oneof![4 => Just(json!("CR00000000000000000000000000000001")), 1 => Just(json!(null)), 1 => any_json()],
            extra in any_json(),
        ) {
            let claims = json!({
                "iss": "SK00000000000000000000000000000001",
                "sub": "AC00000000000000000000000000000001",
                "exp": exp, "nbf": nbf, "jti": extra,
                "grants": {"identity": identity, "chat": {"service_sid": service, "push_credential_sid": push}},
            });
            let token = sign(r#"{"alg":"HS256","typ":"JWT"}"#, &claims.to_string(), SECRET);
            let r = verify_offline(&token);
            assert_401(&r);
            // The same token under another secret is refused.
            let forged = sign(r#"{"alg":"HS256","typ":"JWT"}"#, &claims.to_string(), b"other");
            let r = verify_offline(&forged);
            prop_assert!(r.is_err());
            assert_401(&r);
        }

        #[test]
        fn tampered_tokens_are_refused(at in any::<prop::sample::Index>(), with in any::<u8>()) {
            let claims = json!({
                "iss": "SK00000000000000000000000000000001",
                "sub": "AC00000000000000000000000000000001",
                "exp": 1_795_524_677, "nbf": 1_795_521_077,
                "grants": {"identity": "alice", "chat": {"service_sid": "IS00000000000000000000000000000001"}},
            });
            let token = sign(r#"{"alg":"HS256","typ":"JWT"}"#, &claims.to_string(), SECRET);
            prop_assert!(verify_offline(&token).is_ok());
            let mut bytes = token.into_bytes();
            let i = at.index(bytes.len());
            if bytes[i] != with && !with.is_ascii_whitespace() {
                bytes[i] = with;
                let tampered = String::from_utf8_lossy(&bytes).into_owned();
                let r = verify_offline(&tampered);
                assert_401(&r);
                prop_assert!(r.is_err(), "{tampered}");
            }
        }
    }
}
