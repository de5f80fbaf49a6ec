//! Device registration — two doors, one result (docs/BINDINGS.md):
//! * the Twilio client SDKs' call `POST /v1/registrations?productId=ip_messaging` with a JSON
//!   body and an Access Token in `X-Twilio-Token` (twilio-notes §4), and
//!   `DELETE /v1/registrations/{id}?productId=ip_messaging`;
//! * Parley's server-side extension `POST /v2/Services/{ServiceSid}/Users/{UserSid}/Bindings`
//!   (see `v2::user_bindings::register`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, post};
use axum::{Json, Router};
use parley_core::binding::{
    derived_endpoint, BindingFilter, NewBinding, Registered, MESSAGE_TYPES,
};
use parley_core::credential::PushType;
use parley_core::event::Origin;
use parley_core::paging::PageRequest;
use parley_core::service::Service;
use parley_core::store::StoreError;
use parley_core::user::UserRef;
use parley_core::{AccountSid, BindingSid, CredentialSid, Timestamp};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::access_token::{self, ChatIdentity};
use crate::error::ApiError;
use crate::params::{clip, Query};
use crate::AppState;

/// Longest device token accepted (APNs tokens are 64 hex; FCM tokens ~160–250 characters).
pub const MAX_ADDRESS: usize = 4096;
/// Longest endpoint id accepted.
pub const MAX_ENDPOINT: usize = 256;
/// Prefix of message types in SDK registrations (`twilio.channel.new_message`).
const SDK_TYPE_PREFIX: &str = "twilio.channel.";

/// The registration routes of the SDK door.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/registrations", post(create).delete(remove_by_address))
        .route("/v1/registrations/{Sid}", delete(remove))
}

/// What a registration asks for, from either door.
pub(crate) struct Registration {
    pub binding_type: PushType,
    pub address: String,
    pub endpoint: Option<String>,
    pub credential_sid: Option<CredentialSid>,
    pub message_types: Vec<String>,
}

/// Parse a binding type; unknown values are a 400 (Chat 50209) naming `param`.
pub(crate) fn binding_type(text: &str, param: &str) -> Result<PushType, ApiError> {
    PushType::parse(text).ok_or_else(|| {
        ApiError::chat_param(
            50209,
            param,
            format!("Invalid binding type '{}': use apn, gcm or fcm", clip(text)),
        )
    })
}

/// Choose the credential: the one named (by parameter or token), else the account's only
/// credential able to serve this binding type. Wrong kind, another account's, none or several
/// candidates: a 400 that says so.
async fn resolve_credential(
    app: &AppState,
    account: &AccountSid,
    binding_type: PushType,
    named: Option<&CredentialSid>,
) -> Result<CredentialSid, ApiError> {
    let param = "CredentialSid";
    if let Some(sid) = named {
        let c = match app.store.fetch_credential(account, sid).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => {
                return Err(ApiError::invalid_param(
                    param,
                    format!("Credential {sid} not found in this account"),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if !c.credential_type.credential_serves(binding_type) {
            return Err(ApiError::invalid_param(
                param,
                format!(
                    "Credential {sid} is of type {} and cannot deliver to {} bindings",
                    c.credential_type.as_str(),
                    binding_type.as_str()
                ),
            ));
        }
        return Ok(c.sid);
    }
    let page = app
        .store
        .list_credentials(account, &PageRequest::first(1000))
        .await?;
    let candidates: Vec<_> = page
        .items
        .into_iter()
        .filter(|c| c.credential_type.credential_serves(binding_type))
        .collect();
    match candidates.as_slice() {
        [only] => Ok(only.sid.clone()),
        [] => Err(ApiError::invalid_param(
            param,
            format!(
                "No push credential for {} bindings in this account: create one first",
                binding_type.as_str()
            ),
        )),
        _ => Err(ApiError::invalid_param(
            param,
            format!(
                "Several push credentials can deliver to {} bindings: name one with CredentialSid",
                binding_type.as_str()
            ),
        )),
    }
}

/// Register (create or refresh) a binding for `identity` in `service`, creating the user if the
/// identity is new (a `user_added` event from `origin`). Shared by both doors.
pub(crate) async fn register(
    app: &AppState,
    service: &Service,
    identity: &str,
    reg: Registration,
    token_endpoint: Option<&str>,
    origin: &Origin,
) -> Result<Registered, ApiError> {
    crate::v2::check_identity(identity, "identity")?;
    let now = Timestamp::now();
    let credential_sid = resolve_credential(
        app,
        &service.account_sid,
        reg.binding_type,
        reg.credential_sid.as_ref(),
    )
    .await?;
    let endpoint = reg
        .endpoint
        .or_else(|| token_endpoint.map(str::to_owned))
        .unwrap_or_else(|| derived_endpoint(identity, reg.binding_type, &reg.address));
    // Most registrations refresh a known user: read first (reader pool), create only if new.
    let user = match app
        .store
        .fetch_user(
            &service.account_sid,
            &service.sid,
            &UserRef::Identity(identity.to_owned()),
        )
        .await
    {
        Ok(u) => u,
        Err(StoreError::NotFound) => {
            app.store
                .get_or_create_user(&crate::v2::new_user(service, identity, now), origin)
                .await?
                .0
        }
        Err(e) => return Err(e.into()),
    };
    let new = NewBinding {
        sid: BindingSid::generate(),
        account_sid: service.account_sid.clone(),
        service_sid: service.sid.clone(),
        user_sid: user.sid,
        identity: user.identity,
        credential_sid: Some(credential_sid),
        binding_type: reg.binding_type,
        endpoint,
        address: reg.address,
        message_types: reg.message_types,
        now,
        max_per_user: app.config.max_bindings_per_user,
    };
    let registered = app.store.register_binding(&new).await?;
    tracing::debug!(
        binding.sid = %registered.binding.sid,
        service.sid = %service.sid,
        created = registered.created,
        "binding registered"
    );
    Ok(registered)
}

/// Check address and endpoint sizes.
pub(crate) fn check_address(address: &str, param: &str) -> Result<(), ApiError> {
    if address.trim().is_empty() {
        return Err(ApiError::missing_param(param));
    }
    if address.contains('\0') {
        return Err(ApiError::invalid_param(
            param,
            format!("{param} must not contain NUL characters"),
        ));
    }
    if address.len() > MAX_ADDRESS {
        return Err(ApiError::invalid_param(
            param,
            format!("{param} is too long ({MAX_ADDRESS} bytes at most)"),
        ));
    }
    Ok(())
}

/// Check an endpoint id's size.
pub(crate) fn check_endpoint(endpoint: &str, param: &str) -> Result<(), ApiError> {
    if endpoint.is_empty() || endpoint.len() > MAX_ENDPOINT || endpoint.contains('\0') {
        return Err(ApiError::invalid_param(
            param,
            format!("{param} must be 1 to {MAX_ENDPOINT} bytes"),
        ));
    }
    Ok(())
}

/// Default message types: all four.
pub(crate) fn default_message_types() -> Vec<String> {
    MESSAGE_TYPES.iter().map(|s| (*s).to_owned()).collect()
}

#[derive(Deserialize)]
struct RegistrationBody {
    channel_type: Option<String>,
    #[serde(default)]
    message_types: Option<Vec<String>>,
    data: Option<RegistrationData>,
}

#[derive(Deserialize)]
struct RegistrationData {
    registration_id: Option<String>,
}

#[derive(Deserialize)]
struct RemoveBody {
    binding_type: Option<String>,
    address: Option<String>,
}

/// `productId` must be `ip_messaging` (both doors).
pub(crate) fn check_product(q: &crate::params::Params) -> Result<(), ApiError> {
    match q.get("productId") {
        Some("ip_messaging") => Ok(()),
        _ => Err(ApiError::invalid_param(
            "productId",
            "productId must be ip_messaging",
        )),
    }
}

async fn token_identity(
    app: &AppState,
    headers: &HeaderMap,
    q: &crate::params::Params,
) -> Result<ChatIdentity, ApiError> {
    check_product(q)?;
    let token = headers
        .get("x-twilio-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                20101,
                "Missing X-Twilio-Token header",
            )
        })?;
    access_token::verify(app, token, Timestamp::now()).await
}

async fn token_service(app: &AppState, who: &ChatIdentity) -> Result<Service, ApiError> {
    match app
        .store
        .fetch_service(&who.account_sid, &who.service_sid)
        .await
    {
        Ok(s) => Ok(s),
        Err(StoreError::NotFound) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            20106,
            "Invalid Access Token grants: the chat service does not exist in this account",
        )),
        Err(e) => Err(e.into()),
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            20001,
            format!("Request body is not valid JSON: {e}"),
        )
    })
}

/// The SDK door's answer: `id` is the binding SID (the SDK stores it to unregister later).
fn registration_json(r: &Registered) -> Value {
    let b = &r.binding;
    json!({
        "id": b.sid.as_str(),
        "sid": b.sid.as_str(),
        "account_sid": b.account_sid.as_str(),
        "service_sid": b.service_sid.as_str(),
        "identity": b.identity,
        "endpoint": b.endpoint,
        "binding_type": b.binding_type.as_str(),
        "channel_type": b.binding_type.as_str(),
        "address": b.address,
        "credential_sid": b.credential_sid.as_ref().map(|c| c.as_str()),
        "message_types": b.message_types,
        "date_created": b.date_created.to_rfc3339_seconds(),
        "date_updated": b.date_updated.to_rfc3339_seconds(),
    })
}

/// SDK registration — `POST /v1/registrations?productId=ip_messaging` (JSON body, token auth).
async fn create(
    State(app): State<AppState>,
    Query(q): Query,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = token_identity(&app, &headers, &q).await?;
    register_as(&app, &who, &body).await
}

/// The SDK's registration (`POST /v1/registrations`, JSON body) for `who`, whichever door it
/// came through: the HTTPS one (token in `X-Twilio-Token`) or the socket (the connection's
/// identity). Answers 201 with a new binding, 200 with a refreshed one.
pub(crate) async fn register_as(
    app: &AppState,
    who: &ChatIdentity,
    body: &Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: RegistrationBody = parse_json(body)?;
    let type_text = body
        .channel_type
        .ok_or_else(|| ApiError::missing_param("channel_type"))?;
    let binding_type = binding_type(&type_text, "channel_type")?;
    let address = body
        .data
        .and_then(|d| d.registration_id)
        .unwrap_or_default();
    check_address(&address, "data.registration_id")?;
    // `twilio.channel.new_message` → `new_message`; unknown types are ignored, not fatal.
    let message_types = match body.message_types {
        None => default_message_types(),
        Some(list) => {
            let mut out: Vec<String> = Vec::new();
            for t in list {
                let short = t.strip_prefix(SDK_TYPE_PREFIX).unwrap_or(&t);
                if MESSAGE_TYPES.contains(&short) && !out.iter().any(|o| o == short) {
                    out.push(short.to_owned());
                }
            }
            out
        }
    };
    if let Some(e) = &who.endpoint_id {
        check_endpoint(e, "endpoint_id")?;
    }
    let service = token_service(app, who).await?;
    let reg = Registration {
        binding_type,
        address,
        endpoint: None,
        credential_sid: who.push_credential_sid.clone(),
        message_types,
    };
    let registered = register(
        app,
        &service,
        &who.identity,
        reg,
        who.endpoint_id.as_deref(),
        // The SDK's own registration: a client change by the token's identity.
        &Origin::client(who.identity.clone()),
    )
    .await?;
    let status = if registered.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(registration_json(&registered))))
}

/// SDK unregistration — `DELETE /v1/registrations/{id}?productId=ip_messaging`: removes one of
/// the token identity's bindings.
async fn remove(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let who = token_identity(&app, &headers, &q).await?;
    unregister_as(&app, &who, &id).await
}

/// Remove `who`'s binding `id` (another identity's binding is a 404), either door.
pub(crate) async fn unregister_as(
    app: &AppState,
    who: &ChatIdentity,
    id: &str,
) -> Result<StatusCode, ApiError> {
    let sid = BindingSid::parse(id).map_err(|_| ApiError::not_found())?;
    let binding = app
        .store
        .fetch_binding(&who.account_sid, &who.service_sid, &sid)
        .await?;
    if binding.identity != who.identity {
        return Err(ApiError::not_found());
    }
    app.store
        .delete_binding(&who.account_sid, &who.service_sid, &sid)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// SDK bulk unregistration — `DELETE /v1/registrations?productId=ip_messaging` with JSON
/// `{"binding_type","address"}`: removes the identity's bindings for that device token.
async fn remove_by_address(
    State(app): State<AppState>,
    Query(q): Query,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let who = token_identity(&app, &headers, &q).await?;
    unregister_address_as(&app, &who, &body).await
}

/// Remove `who`'s bindings for the device token in the JSON body, either door.
pub(crate) async fn unregister_address_as(
    app: &AppState,
    who: &ChatIdentity,
    body: &Bytes,
) -> Result<StatusCode, ApiError> {
    let body: RemoveBody = parse_json(body)?;
    let type_text = body
        .binding_type
        .ok_or_else(|| ApiError::missing_param("binding_type"))?;
    let binding_type = binding_type(&type_text, "binding_type")?;
    let address = body
        .address
        .ok_or_else(|| ApiError::missing_param("address"))?;
    let filter = BindingFilter {
        user_sid: None,
        identities: vec![who.identity.clone()],
        types: vec![binding_type],
    };
    let mut request = PageRequest::first(50);
    loop {
        let page = app
            .store
            .list_bindings(&who.account_sid, &who.service_sid, &filter, &request)
            .await?;
        for b in page.items.iter().filter(|b| b.address == address) {
            app.store
                .delete_binding(&who.account_sid, &who.service_sid, &b.sid)
                .await?;
        }
        match page.next {
            Some(next) => request.cursor = Some(next),
            None => break,
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
