//! `parley token`: development Access Tokens, so the JavaScript SDK can be tried without
//! writing a token server.
//!
//! The token is what twilio's own `AccessToken` + `ChatGrant` produce (twilio-notes §3d): an
//! HS256 JWT with header `{"alg":"HS256","cty":"twilio-fpa;v=1","typ":"JWT"}` and claims `jti`
//! (`SK…-<iat>`), `iss` (the API key), `sub` (the service's account), `iat`, `nbf`, `exp` and
//! `grants` `{identity, chat: {service_sid}}`. It is signed with an API key of the service's
//! account named [`TOKEN_KEY_NAME`]: the first such key is reused, and created when the account
//! has none (delete it with `parley api-key delete` to invalidate every token it signed).

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::Mac as _;
use parley_core::crypto::SecretBox;
use parley_core::store::{Store, StoreError};
use parley_core::{AccountSid, ApiKeySid, ServiceSid, Timestamp};
use serde::Serialize;
use serde_json::json;

/// Friendly name of the API key `parley token` signs with (created on first use per account).
pub const TOKEN_KEY_NAME: &str = "parley token (development Access Tokens)";

/// Longest lifetime Twilio allows for an Access Token (24 hours), in seconds.
pub const MAX_TTL_SECS: u32 = 86_400;

/// Longest identity accepted (Twilio's user identity limit is 256 characters).
const MAX_IDENTITY_CHARS: usize = 256;

/// A freshly signed Access Token and what it says.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct IssuedToken {
    /// The JWT.
    pub token: String,
    /// `grants.identity`.
    pub identity: String,
    /// `grants.chat.service_sid`.
    pub service_sid: ServiceSid,
    /// `sub`.
    pub account_sid: AccountSid,
    /// `iss`: the signing key.
    pub api_key_sid: ApiKeySid,
    /// `exp`, as `YYYY-MM-DDTHH:MM:SSZ`.
    pub expires: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"***")
            .field("identity", &self.identity)
            .field("service_sid", &self.service_sid)
            .field("account_sid", &self.account_sid)
            .field("api_key_sid", &self.api_key_sid)
            .field("expires", &self.expires)
            .finish()
    }
}

/// Sign an Access Token for `identity` on `service`, valid from `now` for `ttl_secs`.
pub async fn issue(
    store: &dyn Store,
    secrets: &SecretBox,
    service: &ServiceSid,
    identity: &str,
    ttl_secs: u32,
    now: Timestamp,
) -> anyhow::Result<IssuedToken> {
    if identity.trim().is_empty() {
        bail!("the identity must not be empty");
    }
    if identity.chars().count() > MAX_IDENTITY_CHARS {
        bail!("the identity is longer than {MAX_IDENTITY_CHARS} characters");
    }
    if ttl_secs == 0 || ttl_secs > MAX_TTL_SECS {
        bail!("--ttl must be between 1 and {MAX_TTL_SECS} seconds (24 hours), got {ttl_secs}");
    }
    let account = account_of(store, service).await?;
    let (key_sid, secret) = signing_key(store, secrets, &account).await?;
    let iat = now.unix_secs();
    let exp = iat.saturating_add(i64::from(ttl_secs));
    let claims = json!({
        "jti": format!("{key_sid}-{iat}"),
        "iss": key_sid.as_str(),
        "sub": account.as_str(),
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "grants": {
            "identity": identity,
            "chat": {"service_sid": service.as_str()},
        },
    });
    Ok(IssuedToken {
        token: sign_jwt(&claims, secret.as_bytes())?,
        identity: identity.to_owned(),
        service_sid: service.clone(),
        account_sid: account,
        api_key_sid: key_sid,
        expires: Timestamp::from_unix_secs(exp).to_rfc3339_seconds(),
    })
}

/// The account owning `service` (services are looked up per account; an admin command can
/// afford to ask each account).
async fn account_of(store: &dyn Store, service: &ServiceSid) -> anyhow::Result<AccountSid> {
    let accounts = store
        .list_accounts()
        .await
        .context("cannot list accounts")?;
    for account in accounts {
        match store.fetch_service(&account.sid, service).await {
            Ok(_) => return Ok(account.sid),
            Err(StoreError::NotFound) => {}
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("cannot look up {service}")))
            }
        }
    }
    Err(anyhow!("unknown service {service}: no account has it"))
}

/// The account's [`TOKEN_KEY_NAME`] key and its secret; created when missing.
async fn signing_key(
    store: &dyn Store,
    secrets: &SecretBox,
    account: &AccountSid,
) -> anyhow::Result<(ApiKeySid, String)> {
    let keys = store
        .list_api_keys(account)
        .await
        .context("cannot list API keys")?;
    let existing = keys
        .into_iter()
        .find(|k| k.friendly_name.as_deref() == Some(TOKEN_KEY_NAME));
    if let Some(key) = existing {
        let secret = secrets.open_str(&key.secret_sealed).with_context(|| {
            format!(
                "cannot open the secret of API key {} (is PARLEY_SECRET_KEY the server's?)",
                key.sid
            )
        })?;
        return Ok((key.sid, secret));
    }
    let created =
        crate::admin::create_api_key(store, secrets, account, Some(TOKEN_KEY_NAME.to_owned()))
            .await?;
    tracing::info!(api_key = %created.sid, %account, "created the API key parley token signs with");
    Ok((created.sid, created.secret))
}

/// `base64url(header).base64url(claims).base64url(HMAC-SHA256)`, header as twilio's libraries
/// write it.
fn sign_jwt(claims: &serde_json::Value, secret: &[u8]) -> anyhow::Result<String> {
    let header = json!({"alg": "HS256", "cty": "twilio-fpa;v=1", "typ": "JWT"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(secret)
        .map_err(|e| anyhow!("cannot key HMAC-SHA256: {e}"))?;
    mac.update(input.as_bytes());
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(token: &str, i: usize) -> serde_json::Value {
        let p = token.split('.').nth(i).expect("part");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("b64")).expect("json")
    }

    #[test]
    fn the_jwt_has_twilios_header_and_a_signature_over_header_and_claims() {
        let claims = json!({"iss": "SK1", "grants": {"identity": "alice"}});
        let token = sign_jwt(&claims, b"secret").expect("signed");
        assert_eq!(
            part(&token, 0),
            json!({"alg": "HS256", "cty": "twilio-fpa;v=1", "typ": "JWT"})
        );
        assert_eq!(part(&token, 1), claims);
        let (input, sig) = token.rsplit_once('.').expect("three parts");
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(b"secret").expect("key");
        mac.update(input.as_bytes());
        let want = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(sig, want);
        assert_ne!(
            sign_jwt(&claims, b"other").expect("signed"),
            token,
            "the secret matters"
        );
    }
}
