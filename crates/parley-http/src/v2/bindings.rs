//! Service Bindings: ListBinding, FetchBinding, DeleteBinding (contract §2). Same rows as the
//! user bindings, seen across the service; `links.user` is built with the identity (fixture).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use parley_core::binding::{Binding, BindingFilter};
use parley_core::{BindingSid, ServiceSid};
use serde::Serialize;

use super::{account, service_of, user_bindings::type_filter, Segments, WireDate};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::paging::{ListPath, PageQuery, BINDINGS};
use crate::params::Query;
use crate::urls::{segment_cow, UrlBuilder};
use crate::AppState;

/// Wire form of a service binding (`chat.v2.service.binding`): no `user_sid`, has `links`.
/// Borrows from the binding: rendering a page copies no field.
#[derive(Serialize)]
pub(crate) struct BindingResource<'a> {
    sid: &'a str,
    account_sid: &'a str,
    service_sid: &'a str,
    date_created: WireDate,
    date_updated: WireDate,
    endpoint: &'a str,
    identity: &'a str,
    credential_sid: Option<&'a str>,
    binding_type: &'static str,
    message_types: &'a [String],
    url: String,
    links: BindingLinks,
}

/// `links` of a service binding.
#[derive(Serialize)]
pub(crate) struct BindingLinks {
    user: String,
}

impl<'a> BindingResource<'a> {
    pub(crate) fn new(b: &'a Binding, urls: &UrlBuilder) -> Self {
        let service = b.service_sid.as_str();
        Self {
            sid: b.sid.as_str(),
            account_sid: b.account_sid.as_str(),
            service_sid: service,
            date_created: WireDate(b.date_created),
            date_updated: WireDate(b.date_updated),
            endpoint: &b.endpoint,
            identity: &b.identity,
            credential_sid: b.credential_sid.as_ref().map(|c| c.as_str()),
            binding_type: b.binding_type.as_str(),
            message_types: &b.message_types,
            url: urls.in_service_parts(service, &["Bindings/", b.sid.as_str()]),
            links: BindingLinks {
                user: urls.in_service_parts(service, &["Users/", &segment_cow(&b.identity)]),
            },
        }
    }
}

/// Twilio ListBinding — `GET /v2/Services/{ServiceSid}/Bindings` (filters `BindingType`,
/// `Identity`, both repeatable)
pub(crate) async fn list(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Query(q): Query,
    path: ListPath,
) -> Result<crate::paging::ListBody, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let filter = BindingFilter {
        user_sid: None,
        identities: super::identity_filter(&q)?,
        types: type_filter(&q)?,
    };
    let pq = PageQuery::parse(
        &q,
        BINDINGS,
        path.as_str(),
        &["BindingType", "Identity"],
        &app.secrets,
    )?;
    let page = app
        .store
        .list_bindings(account(&auth), &service, &filter, &pq.request)
        .await?;
    if page.items.is_empty() && pq.request.cursor.is_none() {
        service_of(&app, &auth, &service).await?;
    }
    let body = pq.envelope_with(page, &app.urls, &app.secrets, |b, out| {
        serde_json::to_writer(out, &BindingResource::new(b, &app.urls))
    })?;
    Ok(body)
}

/// Twilio FetchBinding — `GET /v2/Services/{ServiceSid}/Bindings/{Sid}`
pub(crate) async fn fetch(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<Response, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let sid: BindingSid = seg.sid(1)?;
    let b = app
        .store
        .fetch_binding(account(&auth), &service, &sid)
        .await?;
    Ok(Json(BindingResource::new(&b, &app.urls)).into_response())
}

/// Twilio DeleteBinding — `DELETE /v2/Services/{ServiceSid}/Bindings/{Sid}`
pub(crate) async fn delete(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<StatusCode, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let sid: BindingSid = seg.sid(1)?;
    app.store
        .delete_binding(account(&auth), &service, &sid)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
