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

/// Verify `token` fully: format, alg HS256, issuer = an API key of the `sub` account, signature
/// with that key's secret, `exp`/`nbf`, identity and chat grant with a service of that account.
pub async fn verify(app: &AppState, token: &str, now: Timestamp) -> Result<ChatIdentity, ApiError> {
    let mut parts = token.trim().split('.');
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
    let invalid_issuer = || reject(20107, "Invalid Access Token issuer/subject");
    let api_key_sid = ApiKeySid::parse(&claims.iss).map_err(|_| invalid_issuer())?;
    let account_sid = AccountSid::parse(&claims.sub).map_err(|_| invalid_issuer())?;
    let key = match app.store.fetch_api_key(&api_key_sid).await {
        Ok(k) => k,
        Err(StoreError::NotFound) => return Err(invalid_issuer()),
        Err(e) => return Err(e.into()),
    };
    if key.account_sid != account_sid {
        return Err(invalid_issuer());
    }
    let secret = app
        .secrets
        .open(&key.secret_sealed)
        .map_err(ApiError::internal)?;
    if !signature_ok(&format!("{h}.{p}"), s, &secret) {
        return Err(reject(20101, "Invalid Access Token signature"));
    }
    let now_secs = now.unix_secs();
    match claims.exp {
        Some(exp) if exp + LEEWAY_SECS >= now_secs => {}
        _ => {
            return Err(reject(
                20104,
                "Access Token expired or expiration date invalid",
            ))
        }
    }
    if claims.nbf.is_some_and(|nbf| nbf - LEEWAY_SECS > now_secs) {
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
    })
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
