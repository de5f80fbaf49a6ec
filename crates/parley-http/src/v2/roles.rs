//! Roles: ListRole, CreateRole, FetchRole, UpdateRole, DeleteRole (contract §11; permission
//! names per role type in service-defaults.md §2).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::role::{permission_allowed, Role, RoleType};
use parley_core::{RoleSid, ServiceSid, Timestamp};
use serde::Serialize;

use super::{account, date, service_of, Segments};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::paging::{ListPath, PageQuery, ROLES};
use crate::params::{clip, Form, Params, Query};
use crate::urls::UrlBuilder;
use crate::AppState;

/// Longest role name (contract §11: 64).
const MAX_ROLE_NAME: usize = 64;

/// Wire form of a role (`chat.v2.service.role`).
#[derive(Serialize)]
pub(crate) struct RoleResource {
    sid: String,
    account_sid: String,
    service_sid: String,
    friendly_name: String,
    #[serde(rename = "type")]
    role_type: &'static str,
    permissions: Vec<String>,
    date_created: String,
    date_updated: String,
    url: String,
}

impl RoleResource {
    fn new(r: &Role, urls: &UrlBuilder) -> Self {
        Self {
            sid: r.sid.to_string(),
            account_sid: r.account_sid.to_string(),
            service_sid: r.service_sid.to_string(),
            friendly_name: r.friendly_name.clone(),
            role_type: r.role_type.as_str(),
            permissions: r.permissions.clone(),
            date_created: date(r.date_created),
            date_updated: date(r.date_updated),
            url: urls.in_service(r.service_sid.as_str(), &format!("Roles/{}", r.sid)),
        }
    }
}

/// The `Permission` list: required, each valid for `role_type`, duplicates dropped.
fn permissions(p: &Params, role_type: RoleType) -> Result<Vec<String>, ApiError> {
    let all: Vec<String> = p
        .all("Permission")
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    if all.is_empty() {
        return Err(ApiError::missing_param("Permission"));
    }
    let mut out: Vec<String> = Vec::with_capacity(all.len());
    for perm in all {
        if !permission_allowed(role_type, &perm) {
            return Err(ApiError::chat_param(
                50104,
                "Permission",
                format!(
                    "Permission '{}' not found for {} roles",
                    clip(&perm),
                    role_type.as_str()
                ),
            ));
        }
        if !out.contains(&perm) {
            out.push(perm);
        }
    }
    Ok(out)
}

/// Twilio ListRole — `GET /v2/Services/{ServiceSid}/Roles`
pub(crate) async fn list(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Query(q): Query,
    path: ListPath,
) -> Result<crate::paging::ListBody, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let pq = PageQuery::parse(&q, ROLES, path.as_str(), &[], &app.secrets)?;
    let page = app
        .store
        .list_roles(account(&auth), &service, &pq.request)
        .await?;
    if page.items.is_empty() && pq.request.cursor.is_none() {
        service_of(&app, &auth, &service).await?;
    }
    let body = pq.envelope(page, &app.urls, &app.secrets, |r| {
        RoleResource::new(r, &app.urls)
    })?;
    Ok(body)
}

/// Twilio CreateRole — `POST /v2/Services/{ServiceSid}/Roles`
pub(crate) async fn create(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Form(p): Form,
) -> Result<(StatusCode, Json<RoleResource>), ApiError> {
    let service_sid: ServiceSid = seg.sid(0)?;
    let name = p.required("FriendlyName")?;
    if name.chars().count() > MAX_ROLE_NAME {
        return Err(ApiError::chat_param(
            50003,
            "FriendlyName",
            "FriendlyName is too long (64 characters at most)",
        ));
    }
    let type_text = p.required("Type")?;
    let role_type = RoleType::parse(&type_text).ok_or_else(|| {
        ApiError::chat_param(
            50105,
            "Type",
            format!(
                "Invalid role type '{}': use channel or deployment",
                clip(&type_text)
            ),
        )
    })?;
    let perms = permissions(&p, role_type)?;
    let service = service_of(&app, &auth, &service_sid).await?;
    let now = Timestamp::now();
    let role = Role {
        sid: RoleSid::generate(),
        account_sid: service.account_sid.clone(),
        service_sid: service.sid.clone(),
        friendly_name: name,
        role_type,
        permissions: perms,
        date_created: now,
        date_updated: now,
    };
    let role = app.store.create_role(&role).await?;
    Ok((
        StatusCode::CREATED,
        Json(RoleResource::new(&role, &app.urls)),
    ))
}

/// Twilio FetchRole — `GET /v2/Services/{ServiceSid}/Roles/{Sid}`
pub(crate) async fn fetch(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<Json<RoleResource>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let sid: RoleSid = seg.sid(1)?;
    let role = app.store.fetch_role(account(&auth), &service, &sid).await?;
    Ok(Json(RoleResource::new(&role, &app.urls)))
}

/// Twilio UpdateRole — `POST /v2/Services/{ServiceSid}/Roles/{Sid}` (replaces the permission set)
pub(crate) async fn update(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Form(p): Form,
) -> Result<Json<RoleResource>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let sid: RoleSid = seg.sid(1)?;
    let role = app.store.fetch_role(account(&auth), &service, &sid).await?;
    let perms = permissions(&p, role.role_type)?;
    let role = app
        .store
        .update_role_permissions(account(&auth), &service, &sid, &perms, Timestamp::now())
        .await?;
    Ok(Json(RoleResource::new(&role, &app.urls)))
}

/// Twilio DeleteRole — `DELETE /v2/Services/{ServiceSid}/Roles/{Sid}`. A role the service
/// names as a default cannot be deleted (Twilio's docs say default roles must stay).
pub(crate) async fn delete(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<StatusCode, ApiError> {
    let service_sid: ServiceSid = seg.sid(0)?;
    let sid: RoleSid = seg.sid(1)?;
    let service = service_of(&app, &auth, &service_sid).await?;
    let defaults = [
        &service.default_service_role_sid,
        &service.default_channel_role_sid,
        &service.default_channel_creator_role_sid,
    ];
    if defaults.iter().any(|d| d.as_ref() == Some(&sid)) {
        // Only reveal this for a role that exists in the caller's service.
        app.store
            .fetch_role(account(&auth), &service_sid, &sid)
            .await?;
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            50107,
            format!("Role {sid} is a default role of the service and cannot be deleted"),
        ));
    }
    app.store
        .delete_role(account(&auth), &service_sid, &sid)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
