//! Parley extensions for push operations (not part of Twilio's API; docs/PUSH.md):
//! * `GET /v2/Services/{ServiceSid}/PushLog` — the delivery log, kept while the service's
//!   `Notifications.LogEnabled` is on (retention: `--push-log-retention-days`);
//! * `POST /v2/Services/{ServiceSid}/Bindings/{Sid}/Test` — send a test notification to one
//!   binding now and answer the provider's verdict (409/20409 without any send when the
//!   binding's credential was imported without its secret: docs/CREDENTIALS.md).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::push::PushLogEntry;
use parley_core::store::StoreError;
use parley_core::{BindingSid, ServiceSid};
use serde::Serialize;
use serde_json::{json, Value};

use super::{account, date, service_of, Segments};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::paging::{ListPath, PageQuery, PUSH_LOG};
use crate::params::{Form, Query};
use crate::AppState;

/// Wire form of a delivery-log row.
#[derive(Serialize)]
struct PushLogResource {
    delivery_id: String,
    account_sid: String,
    service_sid: String,
    event_id: i64,
    #[serde(rename = "type")]
    kind: String,
    binding_sid: String,
    identity: String,
    binding_type: &'static str,
    outcome: String,
    reason: Option<String>,
    attempt: i32,
    date_created: String,
}

impl PushLogResource {
    fn new(e: &PushLogEntry) -> Self {
        Self {
            delivery_id: e.id.clone(),
            account_sid: e.account_sid.to_string(),
            service_sid: e.service_sid.to_string(),
            event_id: e.event_id,
            kind: e.kind.clone(),
            binding_sid: e.binding_sid.to_string(),
            identity: e.identity.clone(),
            binding_type: e.binding_type.as_str(),
            outcome: e.outcome.clone(),
            reason: e.reason.clone(),
            attempt: e.attempt,
            date_created: date(e.date_created),
        }
    }
}

/// Parley extension — `GET /v2/Services/{ServiceSid}/PushLog`
pub(crate) async fn log(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Query(q): Query,
    path: ListPath,
) -> Result<crate::paging::ListBody, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    service_of(&app, &auth, &service).await?;
    let pq = PageQuery::parse(&q, PUSH_LOG, path.as_str(), &[], &app.secrets)?;
    let page = app
        .store
        .list_push_log(account(&auth), &service, &pq.request)
        .await?;
    let body = pq.envelope(page, &app.urls, &app.secrets, PushLogResource::new)?;
    Ok(body)
}

/// Parley extension — `POST /v2/Services/{ServiceSid}/Bindings/{Sid}/Test` (optional `Body`)
pub(crate) async fn test(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Form(p): Form,
) -> Result<Json<Value>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let sid: BindingSid = seg.sid(1)?;
    let binding = app
        .store
        .fetch_binding(account(&auth), &service, &sid)
        .await?;
    if let Some(cred) = &binding.credential_sid {
        // A credential imported without its secret reaches no provider: say how to fix it.
        match app.store.fetch_credential(account(&auth), cred).await {
            Ok(c) => {
                if let Some(why) = c.missing_secret() {
                    return Err(ApiError::new(StatusCode::CONFLICT, 20409, why));
                }
            }
            // The tester reports a missing credential as it does for the worker.
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let Some(tester) = app.push_tester.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            20503,
            "Push delivery is not enabled on this server",
        ));
    };
    let text = p
        .string("Body")
        .unwrap_or_else(|| "Parley test notification".to_owned());
    let verdict = tester
        .send_test(&binding, &text)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({
        "binding_sid": binding.sid.as_str(),
        "binding_type": binding.binding_type.as_str(),
        "outcome": verdict.outcome,
        "reason": verdict.reason,
    })))
}
