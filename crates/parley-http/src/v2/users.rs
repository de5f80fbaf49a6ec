//! Users: ListUser, CreateUser, FetchUser, UpdateUser, DeleteUser (contract §4).
//! `Users/{Sid}` accepts the user's SID or its identity (URL-encoded).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::role::RoleType;
use parley_core::service::Service;
use parley_core::user::{User, UserRef, UserUpdate, MAX_IDENTITY_LEN};
use parley_core::{sid::is_sid, RoleSid, ServiceSid, Timestamp, UserSid};
use serde::Serialize;

use super::{account, attributes, date, service_of, Segments};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::origin::ApiOrigin;
use crate::paging::{ListPath, PageQuery, USERS};
use crate::params::{Form, Params, Query};
use crate::urls::UrlBuilder;
use crate::AppState;

/// Wire form of a user (`chat.v2.service.user`).
#[derive(Serialize)]
pub(crate) struct UserResource {
    sid: String,
    account_sid: String,
    service_sid: String,
    attributes: String,
    friendly_name: Option<String>,
    role_sid: Option<String>,
    identity: String,
    is_online: Option<bool>,
    is_notifiable: Option<bool>,
    date_created: String,
    date_updated: String,
    joined_channels_count: i64,
    links: UserLinks,
    url: String,
}

/// `links` of a user.
#[derive(Serialize)]
pub(crate) struct UserLinks {
    user_bindings: String,
    user_channels: String,
}

impl UserResource {
    /// `reachability`: `None` in lists and when the service's reachability is off (then both
    /// flags are null); else `(is_online, is_notifiable)`.
    pub(crate) fn new(
        u: &User,
        urls: &UrlBuilder,
        reachability: Option<(bool, bool)>,
        joined: i64,
    ) -> Self {
        let base = format!("Users/{}", u.sid);
        let service = u.service_sid.as_str();
        Self {
            sid: u.sid.to_string(),
            account_sid: u.account_sid.to_string(),
            service_sid: service.to_owned(),
            // Unset attributes show as "{}" (DOC; members and messages do the same).
            attributes: u.attributes.clone().unwrap_or_else(|| "{}".to_owned()),
            friendly_name: u.friendly_name.clone(),
            role_sid: u.role_sid.as_ref().map(ToString::to_string),
            identity: u.identity.clone(),
            is_online: reachability.map(|r| r.0),
            is_notifiable: reachability.map(|r| r.1),
            date_created: date(u.date_created),
            date_updated: date(u.date_updated),
            joined_channels_count: joined,
            links: UserLinks {
                user_bindings: urls.in_service(service, &format!("{base}/Bindings")),
                user_channels: urls.in_service(service, &format!("{base}/Channels")),
            },
            url: urls.in_service(service, &base),
        }
    }
}

/// Check an identity: not empty, not too long, not shaped like a user SID.
/// Longest user friendly name (Chat 50003 "Friendly name too long"; GUESS: 256 characters, as
/// service and channel names).
pub(crate) const MAX_USER_FRIENDLY_NAME: usize = 256;

/// The `Identity` filter values of a list query, each at most [`MAX_IDENTITY_LEN`] characters
/// (50207 naming `Identity`); a value that is no user's identity just matches nothing.
pub(crate) fn identity_filter(q: &Params) -> Result<Vec<String>, ApiError> {
    let values = q.all("Identity");
    if values
        .iter()
        .any(|v| crate::params::too_long(v, MAX_IDENTITY_LEN))
    {
        return Err(ApiError::chat_param(
            50207,
            "Identity",
            format!("Identity is too long ({MAX_IDENTITY_LEN} characters at most)"),
        ));
    }
    Ok(values)
}

pub(crate) fn check_identity(identity: &str, param: &str) -> Result<(), ApiError> {
    if identity.contains('\0') {
        return Err(ApiError::invalid_param(
            param,
            "Identity must not contain NUL characters",
        ));
    }
    if identity.chars().count() > MAX_IDENTITY_LEN {
        return Err(ApiError::chat_param(
            50207,
            param,
            format!("Identity is too long ({MAX_IDENTITY_LEN} characters at most)"),
        ));
    }
    if is_sid(UserSid::PREFIX, identity) {
        return Err(ApiError::chat_param(
            50206,
            param,
            "Identity must not look like a user SID (US…)",
        ));
    }
    Ok(())
}

/// A `RoleSid` parameter naming a deployment role of the service.
async fn deployment_role(
    app: &AppState,
    auth: &Authenticated,
    service: &ServiceSid,
    p: &Params,
) -> Result<Option<RoleSid>, ApiError> {
    let Some(text) = p.get("RoleSid") else {
        return Ok(None);
    };
    let bad = |msg: String| ApiError::chat_param(50102, "RoleSid", msg);
    let sid = RoleSid::parse(text)
        .map_err(|_| bad(format!("Role {} not found", crate::params::clip(text))))?;
    match app.store.fetch_role(account(auth), service, &sid).await {
        Ok(r) if r.role_type == RoleType::Deployment => Ok(Some(sid)),
        Ok(_) => Err(bad(format!(
            "Role {sid} is a channel role; users need a deployment role"
        ))),
        Err(parley_core::store::StoreError::NotFound) => Err(bad(format!("Role {sid} not found"))),
        Err(e) => Err(e.into()),
    }
}

/// A new user of `service` with defaults (role = the service's default service role).
pub(crate) fn new_user(service: &Service, identity: &str, now: Timestamp) -> User {
    User {
        sid: UserSid::generate(),
        account_sid: service.account_sid.clone(),
        service_sid: service.sid.clone(),
        identity: identity.to_owned(),
        friendly_name: None,
        attributes: None,
        role_sid: service.default_service_role_sid.clone(),
        date_created: now,
        date_updated: now,
    }
}

/// Twilio ListUser — `GET /v2/Services/{ServiceSid}/Users`
pub(crate) async fn list(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Query(q): Query,
    path: ListPath,
) -> Result<crate::paging::ListBody, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let pq = PageQuery::parse(&q, USERS, path.as_str(), &[], &app.secrets)?;
    let page = app
        .store
        .list_users(account(&auth), &service, &pq.request)
        .await?;
    if page.items.is_empty() && pq.request.cursor.is_none() {
        // An empty first page of a service that does not exist is a 404, not an empty list.
        service_of(&app, &auth, &service).await?;
    }
    let sids: Vec<UserSid> = page.items.iter().map(|u| u.sid.clone()).collect();
    let counts: std::collections::HashMap<UserSid, i64> = if sids.is_empty() {
        std::collections::HashMap::new()
    } else {
        app.store
            .joined_channel_counts(account(&auth), &service, &sids)
            .await?
            .into_iter()
            .collect()
    };
    let body = pq.envelope(page, &app.urls, &app.secrets, |u| {
        UserResource::new(u, &app.urls, None, counts.get(&u.sid).copied().unwrap_or(0))
    })?;
    Ok(body)
}

/// Twilio CreateUser — `POST /v2/Services/{ServiceSid}/Users`
pub(crate) async fn create(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
    Form(p): Form,
) -> Result<(StatusCode, Json<UserResource>), ApiError> {
    let service_sid: ServiceSid = seg.sid(0)?;
    let identity = p.required("Identity")?;
    check_identity(&identity, "Identity")?;
    let attrs = attributes(&p)?;
    let service = service_of(&app, &auth, &service_sid).await?;
    let role = deployment_role(&app, &auth, &service_sid, &p).await?;
    let mut user = new_user(&service, &identity, Timestamp::now());
    user.friendly_name = p.text("FriendlyName", MAX_USER_FRIENDLY_NAME, 50003)?;
    user.attributes = attrs;
    if role.is_some() {
        user.role_sid = role;
    }
    let user = app.store.create_user(&user, &origin).await?;
    let reach = reachability(&app, &service, &user).await?;
    Ok((
        StatusCode::CREATED,
        Json(UserResource::new(&user, &app.urls, reach, 0)),
    ))
}

/// `is_online` / `is_notifiable` for a single-user answer: null when reachability is off;
/// otherwise online when the user has a live connection on any node (the shared presence) and
/// notifiable when the user has at least one push binding.
async fn reachability(
    app: &AppState,
    service: &Service,
    user: &User,
) -> Result<Option<(bool, bool)>, ApiError> {
    if !service.settings.reachability_enabled {
        return Ok(None);
    }
    let n = app
        .store
        .count_user_bindings(&user.account_sid, &user.service_sid, &user.sid)
        .await?;
    let key = parley_core::store::PresenceKey {
        account: user.account_sid.clone(),
        service: user.service_sid.clone(),
        identity: user.identity.clone(),
    };
    let online = app.store.is_online(&key, Timestamp::now()).await?;
    Ok(Some((online, n > 0)))
}

/// How many channels the user has joined.
async fn joined_count(app: &AppState, user: &User) -> Result<i64, ApiError> {
    let counts = app
        .store
        .joined_channel_counts(
            &user.account_sid,
            &user.service_sid,
            std::slice::from_ref(&user.sid),
        )
        .await?;
    Ok(counts.first().map_or(0, |(_, n)| *n))
}

/// Twilio FetchUser — `GET /v2/Services/{ServiceSid}/Users/{Sid}`
pub(crate) async fn fetch(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<Json<UserResource>, ApiError> {
    let service_sid: ServiceSid = seg.sid(0)?;
    let user_ref: UserRef = seg.user(1)?;
    // One store read: the user, its joined channels and (reachability on) its bindings.
    let view = app
        .store
        .fetch_user_view(account(&auth), &service_sid, &user_ref)
        .await?;
    // Reachability: online = a live connection on any node; notifiable = a push binding.
    let reach = view
        .bindings_count
        .map(|n| (view.online.unwrap_or(false), n > 0));
    Ok(Json(UserResource::new(
        &view.user,
        &app.urls,
        reach,
        view.joined_channels_count,
    )))
}

/// Twilio UpdateUser — `POST /v2/Services/{ServiceSid}/Users/{Sid}`
pub(crate) async fn update(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
    Form(p): Form,
) -> Result<Json<UserResource>, ApiError> {
    let service_sid: ServiceSid = seg.sid(0)?;
    let user_ref: UserRef = seg.user(1)?;
    let update = UserUpdate {
        friendly_name: p.text("FriendlyName", MAX_USER_FRIENDLY_NAME, 50003)?,
        attributes: attributes(&p)?,
        role_sid: deployment_role(&app, &auth, &service_sid, &p).await?,
    };
    let user = crate::actions::update_user(
        &app,
        account(&auth),
        &service_sid,
        &user_ref,
        update,
        &origin,
    )
    .await?;
    let service = service_of(&app, &auth, &service_sid).await?;
    let reach = reachability(&app, &service, &user).await?;
    let joined = joined_count(&app, &user).await?;
    Ok(Json(UserResource::new(&user, &app.urls, reach, joined)))
}

/// Twilio DeleteUser — `DELETE /v2/Services/{ServiceSid}/Users/{Sid}` (its bindings go too)
pub(crate) async fn delete(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
) -> Result<StatusCode, ApiError> {
    let service_sid: ServiceSid = seg.sid(0)?;
    let user_ref: UserRef = seg.user(1)?;
    app.store
        .delete_user(account(&auth), &service_sid, &user_ref, &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
