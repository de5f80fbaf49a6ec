//! User Bindings: ListUserBinding, FetchUserBinding, DeleteUserBinding (contract §1), plus
//! Parley's registration extension `POST …/Users/{UserSid}/Bindings` (docs/BINDINGS.md).
//! `{UserSid}` accepts the user's SID or identity. The user binding has no `links`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use parley_core::binding::{Binding, BindingFilter};
use parley_core::user::UserRef;
use parley_core::{BindingSid, CredentialSid, ServiceSid};
use serde::Serialize;

use super::{account, service_of, users::check_identity, Segments, WireDate};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::origin::ApiOrigin;
use crate::paging::{ListPath, PageQuery, BINDINGS};
use crate::params::{Form, Params, Query};
use crate::registrations::{self, Registration};
use crate::urls::UrlBuilder;
use crate::AppState;

/// Wire form of a user binding (`chat.v2.service.user.user_binding`).
/// Borrows from the binding: rendering a page copies no field.
#[derive(Serialize)]
pub(crate) struct UserBindingResource<'a> {
    sid: &'a str,
    account_sid: &'a str,
    service_sid: &'a str,
    date_created: WireDate,
    date_updated: WireDate,
    endpoint: &'a str,
    identity: &'a str,
    user_sid: &'a str,
    credential_sid: Option<&'a str>,
    binding_type: &'static str,
    message_types: &'a [String],
    url: String,
}

impl<'a> UserBindingResource<'a> {
    pub(crate) fn new(b: &'a Binding, urls: &UrlBuilder) -> Self {
        Self {
            sid: b.sid.as_str(),
            account_sid: b.account_sid.as_str(),
            service_sid: b.service_sid.as_str(),
            date_created: WireDate(b.date_created),
            date_updated: WireDate(b.date_updated),
            endpoint: &b.endpoint,
            identity: &b.identity,
            user_sid: b.user_sid.as_str(),
            credential_sid: b.credential_sid.as_ref().map(|c| c.as_str()),
            binding_type: b.binding_type.as_str(),
            message_types: &b.message_types,
            url: urls.in_service_parts(
                b.service_sid.as_str(),
                &["Users/", b.user_sid.as_str(), "/Bindings/", b.sid.as_str()],
            ),
        }
    }
}

/// `BindingType` filter values (repeatable); unknown values are a 400.
pub(crate) fn type_filter(q: &Params) -> Result<Vec<parley_core::credential::PushType>, ApiError> {
    q.all("BindingType")
        .iter()
        .map(|t| registrations::binding_type(t, "BindingType"))
        .collect()
}

/// Twilio ListUserBinding — `GET /v2/Services/{ServiceSid}/Users/{UserSid}/Bindings`
pub(crate) async fn list(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Query(q): Query,
    path: ListPath,
) -> Result<crate::paging::ListBody, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let user_ref: UserRef = seg.user(1)?;
    let types = type_filter(&q)?;
    let pq = PageQuery::parse(&q, BINDINGS, path.as_str(), &["BindingType"], &app.secrets)?;
    let user = app
        .store
        .fetch_user(account(&auth), &service, &user_ref)
        .await?;
    let filter = BindingFilter {
        user_sid: Some(user.sid),
        identities: Vec::new(),
        types,
    };
    let page = app
        .store
        .list_bindings(account(&auth), &service, &filter, &pq.request)
        .await?;
    let body = pq.envelope_with(page, &app.urls, &app.secrets, |b, out| {
        serde_json::to_writer(out, &UserBindingResource::new(b, &app.urls))
    })?;
    Ok(body)
}

/// The binding `sid` if it belongs to the user named in the path (else 404).
async fn user_binding(
    app: &AppState,
    auth: &Authenticated,
    seg: &Segments,
) -> Result<Binding, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let user_ref: UserRef = seg.user(1)?;
    let sid: BindingSid = seg.sid(2)?;
    let binding = app
        .store
        .fetch_binding(account(auth), &service, &sid)
        .await?;
    let owned = match &user_ref {
        UserRef::Sid(u) => &binding.user_sid == u,
        UserRef::Identity(i) => &binding.identity == i,
    };
    if !owned {
        return Err(ApiError::not_found());
    }
    Ok(binding)
}

/// Twilio FetchUserBinding — `GET /v2/Services/{ServiceSid}/Users/{UserSid}/Bindings/{Sid}`
pub(crate) async fn fetch(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<Response, ApiError> {
    let binding = user_binding(&app, &auth, &seg).await?;
    Ok(Json(UserBindingResource::new(&binding, &app.urls)).into_response())
}

/// Twilio DeleteUserBinding — `DELETE /v2/Services/{ServiceSid}/Users/{UserSid}/Bindings/{Sid}`
pub(crate) async fn delete(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<StatusCode, ApiError> {
    let binding = user_binding(&app, &auth, &seg).await?;
    app.store
        .delete_binding(account(&auth), &binding.service_sid, &binding.sid)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Parley extension (not in Twilio's REST API) — register a device for a user from a server:
/// `POST /v2/Services/{ServiceSid}/Users/{UserSid}/Bindings` with `BindingType`, `Address`,
/// optional `CredentialSid`, `Endpoint`, `MessageTypes` (repeatable). Creates the user when the
/// identity is new. 201 when a binding was created, 200 when an existing one was refreshed.
pub(crate) async fn register(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
    Form(p): Form,
) -> Result<Response, ApiError> {
    let service_sid: ServiceSid = seg.sid(0)?;
    let binding_type = registrations::binding_type(&p.required("BindingType")?, "BindingType")?;
    let address = p.get("Address").unwrap_or_default().to_owned();
    registrations::check_address(&address, "Address")?;
    let endpoint = p.string("Endpoint");
    if let Some(e) = &endpoint {
        registrations::check_endpoint(e, "Endpoint")?;
    }
    let credential_sid = p.parsed("CredentialSid", CredentialSid::parse)?;
    let message_types = if p.has("MessageTypes") {
        let mut out: Vec<String> = Vec::new();
        for t in p.all("MessageTypes") {
            if !parley_core::binding::MESSAGE_TYPES.contains(&t.as_str()) {
                return Err(ApiError::invalid_param(
                    "MessageTypes",
                    format!(
                        "Unknown message type '{}': use {}",
                        crate::params::clip(&t),
                        parley_core::binding::MESSAGE_TYPES.join(", ")
                    ),
                ));
            }
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    } else {
        registrations::default_message_types()
    };
    let service = service_of(&app, &auth, &service_sid).await?;
    // The path names the user by identity (or SID of an existing user).
    let identity = match seg.user(1)? {
        UserRef::Identity(i) => {
            check_identity(&i, "UserSid")?;
            i
        }
        sid @ UserRef::Sid(_) => {
            app.store
                .fetch_user(account(&auth), &service_sid, &sid)
                .await?
                .identity
        }
    };
    let reg = Registration {
        binding_type,
        address,
        endpoint,
        credential_sid,
        message_types,
    };
    let registered = registrations::register(&app, &service, &identity, reg, None, &origin).await?;
    let status = if registered.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(UserBindingResource::new(&registered.binding, &app.urls)),
    )
        .into_response())
}
