//! Credentials: ListCredential, CreateCredential, FetchCredential, UpdateCredential,
//! DeleteCredential (contract §5). Account level. Secret fields are write-only: sealed at rest
//! with the server key, never returned, never logged.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::credential::{Credential, CredentialSecrets, PushType};
use parley_core::store::StoreError;
use parley_core::{CredentialSid, Timestamp};
use serde::Serialize;
use std::sync::{Mutex, PoisonError};

use super::{account, date, Segments};
use crate::auth::Authenticated;
use crate::credential_check;
use crate::error::ApiError;
use crate::paging::{ListPath, PageQuery, CREDENTIALS};
use crate::params::{clip, Form, Params, Query};
use crate::urls::UrlBuilder;
use crate::AppState;

/// Largest accepted secret field in bytes (a certificate, key or service-account JSON is a few
/// KB; docs/PUSH.md).
pub(crate) const MAX_SECRET: usize = 16 * 1024;
/// Longest accepted `FriendlyName`, in characters (Twilio documents none; docs/PUSH.md).
pub(crate) const MAX_FRIENDLY_NAME: usize = 256;

/// Wire form of a credential (`chat.v2.credential`). No secret field exists here at all.
#[derive(Serialize)]
pub(crate) struct CredentialResource {
    sid: String,
    account_sid: String,
    friendly_name: Option<String>,
    #[serde(rename = "type")]
    credential_type: &'static str,
    /// A string on the wire, not a boolean (fixtures; twilio-notes §6.6).
    sandbox: Option<String>,
    date_created: String,
    date_updated: String,
    url: String,
}

impl CredentialResource {
    fn new(c: &Credential, urls: &UrlBuilder) -> Self {
        Self {
            sid: c.sid.to_string(),
            account_sid: c.account_sid.to_string(),
            friendly_name: c.friendly_name.clone(),
            credential_type: c.credential_type.as_str(),
            sandbox: Some(c.sandbox.unwrap_or(false).to_string()),
            date_created: date(c.date_created),
            date_updated: date(c.date_updated),
            url: urls.abs(&format!("/v2/Credentials/{}", c.sid)),
        }
    }
}

fn secret_field(p: &Params, name: &str) -> Result<Option<String>, ApiError> {
    match p.string(name) {
        Some(v) if v.len() > MAX_SECRET => Err(ApiError::invalid_param(
            name,
            format!("{name} is too large ({MAX_SECRET} bytes at most)"),
        )),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// Apply the secret form fields onto `secrets` (fields not sent stay as they are).
fn apply_secrets(p: &Params, secrets: &mut CredentialSecrets) -> Result<bool, ApiError> {
    let mut changed = false;
    for (name, slot) in [
        ("Certificate", &mut secrets.certificate),
        ("PrivateKey", &mut secrets.private_key),
        ("ApiKey", &mut secrets.api_key),
        ("Secret", &mut secrets.secret),
    ] {
        if let Some(v) = secret_field(p, name)? {
            *slot = Some(v);
            changed = true;
        }
    }
    Ok(changed)
}

fn friendly_name(p: &Params) -> Result<Option<String>, ApiError> {
    match p.string("FriendlyName") {
        Some(v) if v.chars().count() > MAX_FRIENDLY_NAME => Err(ApiError::invalid_param(
            "FriendlyName",
            format!("FriendlyName is too long ({MAX_FRIENDLY_NAME} characters at most)"),
        )),
        other => Ok(other),
    }
}

/// Validate the complete secrets of a credential before they are stored (a 400 naming the
/// parameter when they can never work); logs what the operator should know.
fn check_secrets(
    app: &AppState,
    sid: &CredentialSid,
    credential_type: PushType,
    secrets: &CredentialSecrets,
) -> Result<(), ApiError> {
    let checked =
        credential_check::check(credential_type, secrets, &app.config.fcm_token_uri_allow)
            .map_err(|e| ApiError::invalid_param(e.param, e.message))?;
    if let Some(expires) = &checked.certificate_expires {
        tracing::info!(credential.sid = %sid, certificate.expires = %expires, "APNs certificate stored");
    }
    if checked.legacy_key {
        tracing::warn!(
            credential.sid = %sid,
            credential.type = credential_type.as_str(),
            "credential holds a legacy FCM/GCM server key: stored, but Google shut that API down \
             in 2024, so its pushes will fail; upload a service-account JSON as Secret"
        );
    }
    Ok(())
}

/// Twilio ListCredential — `GET /v2/Credentials`
pub(crate) async fn list(
    auth: Authenticated,
    State(app): State<AppState>,
    Query(q): Query,
    path: ListPath,
) -> Result<crate::paging::ListBody, ApiError> {
    let pq = PageQuery::parse(&q, CREDENTIALS, path.as_str(), &[], &app.secrets)?;
    let page = app
        .store
        .list_credentials(account(&auth), &pq.request)
        .await?;
    let body = pq.envelope(page, &app.urls, &app.secrets, |c| {
        CredentialResource::new(c, &app.urls)
    })?;
    Ok(body)
}

/// Twilio CreateCredential — `POST /v2/Credentials`
pub(crate) async fn create(
    auth: Authenticated,
    State(app): State<AppState>,
    Form(p): Form,
) -> Result<(StatusCode, Json<CredentialResource>), ApiError> {
    let type_text = p.required("Type")?;
    let credential_type = PushType::parse(&type_text).ok_or_else(|| {
        ApiError::invalid_param(
            "Type",
            format!(
                "Invalid credential type '{}': use apn, gcm or fcm",
                clip(&type_text)
            ),
        )
    })?;
    let friendly_name = friendly_name(&p)?;
    let sandbox = p.bool("Sandbox")?;
    let mut secrets = CredentialSecrets::default();
    apply_secrets(&p, &mut secrets)?;
    let sid = CredentialSid::generate();
    check_secrets(&app, &sid, credential_type, &secrets)?;
    let sealed = seal(&app, &secrets)?;
    let now = Timestamp::now();
    let credential = Credential {
        sid,
        account_sid: account(&auth).clone(),
        friendly_name,
        credential_type,
        sandbox,
        secrets_sealed: sealed,
        needs_secret: false,
        date_created: now,
        date_updated: now,
    };
    let credential = app.store.create_credential(&credential).await?;
    tracing::info!(credential.sid = %credential.sid, credential.type = credential_type.as_str(), "credential created");
    Ok((
        StatusCode::CREATED,
        Json(CredentialResource::new(&credential, &app.urls)),
    ))
}

fn seal(app: &AppState, secrets: &CredentialSecrets) -> Result<Vec<u8>, ApiError> {
    let json = serde_json::to_vec(secrets).map_err(ApiError::internal)?;
    Ok(app.secrets.seal(&json))
}

/// Twilio FetchCredential — `GET /v2/Credentials/{Sid}`
pub(crate) async fn fetch(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<Json<CredentialResource>, ApiError> {
    let sid: CredentialSid = seg.sid(0)?;
    let c = app.store.fetch_credential(account(&auth), &sid).await?;
    Ok(Json(CredentialResource::new(&c, &app.urls)))
}

/// Twilio UpdateCredential — `POST /v2/Credentials/{Sid}`. Secret fields merge into the stored
/// ones and the result must pass the check; then a credential imported without its secret
/// (`needs_secret`) is marked as complete. A rename or `Sandbox` alone keeps the mark.
pub(crate) async fn update(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Form(p): Form,
) -> Result<Json<CredentialResource>, ApiError> {
    let sid: CredentialSid = seg.sid(0)?;
    let friendly_name = friendly_name(&p)?;
    let sandbox = p.bool("Sandbox")?;
    let mut patch = CredentialSecrets::default();
    let secrets_given = apply_secrets(&p, &mut patch)?;
    // Applied inside the store's update transaction, on the current row: concurrent updates of
    // different fields (or different secret fields) all survive. A rejected change leaves the
    // stored credential as it was.
    let rejected: Mutex<Option<ApiError>> = Mutex::new(None);
    let change = |c: &mut Credential| -> Result<(), StoreError> {
        let reject = |e: ApiError| {
            *rejected.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
            StoreError::InvalidReference("credential update rejected")
        };
        if secrets_given {
            let mut secrets = open(&app, c).map_err(reject)?;
            for (from, to) in [
                (&patch.certificate, &mut secrets.certificate),
                (&patch.private_key, &mut secrets.private_key),
                (&patch.api_key, &mut secrets.api_key),
                (&patch.secret, &mut secrets.secret),
            ] {
                if from.is_some() {
                    to.clone_from(from);
                }
            }
            check_secrets(&app, &c.sid, c.credential_type, &secrets).map_err(reject)?;
            c.secrets_sealed = seal(&app, &secrets).map_err(reject)?;
            // The complete secret passed the check: an imported credential can deliver now.
            c.needs_secret = false;
        }
        if let Some(name) = &friendly_name {
            c.friendly_name = Some(name.clone());
        }
        if let Some(sandbox) = sandbox {
            c.sandbox = Some(sandbox);
        }
        c.date_updated = Timestamp::now();
        Ok(())
    };
    let result = app
        .store
        .update_credential(account(&auth), &sid, &change)
        .await;
    if let Some(e) = rejected
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    {
        return Err(e);
    }
    let c = result?;
    Ok(Json(CredentialResource::new(&c, &app.urls)))
}

fn open(app: &AppState, c: &Credential) -> Result<CredentialSecrets, ApiError> {
    if c.secrets_sealed.is_empty() {
        return Ok(CredentialSecrets::default());
    }
    let plain = app
        .secrets
        .open(&c.secrets_sealed)
        .map_err(ApiError::internal)?;
    serde_json::from_slice(&plain).map_err(ApiError::internal)
}

/// Twilio DeleteCredential — `DELETE /v2/Credentials/{Sid}`. Bindings registered with this
/// credential are deleted with it (docs/BINDINGS.md): they could not be delivered any more.
pub(crate) async fn delete(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<StatusCode, ApiError> {
    let sid: CredentialSid = seg.sid(0)?;
    app.store.delete_credential(account(&auth), &sid).await?;
    Ok(StatusCode::NO_CONTENT)
}
