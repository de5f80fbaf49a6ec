//! Service Bindings: ListBinding, FetchBinding, DeleteBinding (contract §2). Same rows as the
//! user bindings, seen across the service; `links.user` is built with the identity (fixture).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::binding::{Binding, BindingFilter};
use parley_core::{BindingSid, ServiceSid};
use serde::Serialize;
use serde_json::{json, Value};

use super::{account, date, service_of, user_bindings::type_filter, Segments};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::paging::{PageQuery, BINDINGS};
use crate::params::Query;
use crate::urls::{segment, UrlBuilder};
use crate::AppState;

/// Wire form of a service binding (`chat.v2.service.binding`): no `user_sid`, has `links`.
#[derive(Serialize)]
pub(crate) struct BindingResource {
    sid: String,
    account_sid: String,
    service_sid: String,
    date_created: String,
    date_updated: String,
    endpoint: String,
    identity: String,
    credential_sid: Option<String>,
    binding_type: &'static str,
    message_types: Vec<String>,
    url: String,
    links: Value,
}

impl BindingResource {
    pub(crate) fn new(b: &Binding, urls: &UrlBuilder) -> Self {
        let service = b.service_sid.as_str();
        Self {
            sid: b.sid.to_string(),
            account_sid: b.account_sid.to_string(),
            service_sid: service.to_owned(),
            date_created: date(b.date_created),
            date_updated: date(b.date_updated),
            endpoint: b.endpoint.clone(),
            identity: b.identity.clone(),
            credential_sid: b.credential_sid.as_ref().map(ToString::to_string),
            binding_type: b.binding_type.as_str(),
            message_types: b.message_types.clone(),
            url: urls.in_service(service, &format!("Bindings/{}", b.sid)),
            links: json!({ "user": urls.in_service(service, &format!("Users/{}", segment(&b.identity))) }),
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
) -> Result<crate::paging::ListBody, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let filter = BindingFilter {
        user_sid: None,
        identities: q.all("Identity"),
        types: type_filter(&q)?,
    };
    let path = format!("/v2/Services/{service}/Bindings");
    let pq = PageQuery::parse(
        &q,
        BINDINGS,
        &path,
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
    let body = pq.envelope(
        page,
        &app.urls,
        &app.secrets,
        |b| (b.date_created.unix_micros(), b.sid.to_string()),
        |b| BindingResource::new(b, &app.urls),
    )?;
    Ok(body)
}

/// Twilio FetchBinding — `GET /v2/Services/{ServiceSid}/Bindings/{Sid}`
pub(crate) async fn fetch(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<Json<BindingResource>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let sid: BindingSid = seg.sid(1)?;
    let b = app
        .store
        .fetch_binding(account(&auth), &service, &sid)
        .await?;
    Ok(Json(BindingResource::new(&b, &app.urls)))
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
