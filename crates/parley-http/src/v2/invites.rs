//! Invites: ListInvite, CreateInvite, FetchInvite, DeleteInvite (contract §10). Inviting an
//! identity with no user is a 404 (Twilio's observed answer); a second invite is 409/50212.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::channel::{ChannelRef, Invite};
use parley_core::{InviteSid, ServiceSid};
use serde::Serialize;

use super::{account, date, members::channel_role, service_of, Segments};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::origin::ApiOrigin;
use crate::paging::{ListPath, PageQuery, INVITES};
use crate::params::{Form, Query};
use crate::urls::UrlBuilder;
use crate::AppState;

/// Wire form of an invite (`chat.v2.service.channel.invite`). No `links`.
#[derive(Serialize)]
pub(crate) struct InviteResource {
    sid: String,
    account_sid: String,
    channel_sid: String,
    service_sid: String,
    identity: String,
    date_created: String,
    date_updated: String,
    role_sid: Option<String>,
    created_by: Option<String>,
    url: String,
}

impl InviteResource {
    fn new(i: &Invite, urls: &UrlBuilder) -> Self {
        Self {
            sid: i.sid.to_string(),
            account_sid: i.account_sid.to_string(),
            channel_sid: i.channel_sid.to_string(),
            service_sid: i.service_sid.to_string(),
            identity: i.identity.clone(),
            date_created: date(i.date_created),
            date_updated: date(i.date_updated),
            role_sid: i.role_sid.as_ref().map(ToString::to_string),
            created_by: i.created_by.clone(),
            url: urls.in_service(
                i.service_sid.as_str(),
                &format!("Channels/{}/Invites/{}", i.channel_sid, i.sid),
            ),
        }
    }
}

/// Twilio ListInvite — `GET …/Channels/{ChannelSid}/Invites` (filter `Identity`, repeatable)
pub(crate) async fn list(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Query(q): Query,
    path: ListPath,
) -> Result<crate::paging::ListBody, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let channel = ChannelRef::parse(seg.get(1)?);
    let pq = PageQuery::parse(&q, INVITES, path.as_str(), &["Identity"], &app.secrets)?;
    let page = app
        .store
        .list_invites(
            account(&auth),
            &service,
            &channel,
            &super::identity_filter(&q)?,
            &pq.request,
        )
        .await?;
    if page.items.is_empty() && pq.request.cursor.is_none() {
        app.store
            .fetch_channel(account(&auth), &service, &channel)
            .await?;
    }
    let body = pq.envelope(page, &app.urls, &app.secrets, |i| {
        InviteResource::new(i, &app.urls)
    })?;
    Ok(body)
}

/// Twilio CreateInvite — `POST …/Channels/{ChannelSid}/Invites`
pub(crate) async fn create(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
    Form(p): Form,
) -> Result<(StatusCode, Json<InviteResource>), ApiError> {
    let service_sid: ServiceSid = seg.sid(0)?;
    let channel_ref = ChannelRef::parse(seg.get(1)?);
    let identity = p.required("Identity")?;
    super::check_identity(&identity, "Identity")?;
    let service = service_of(&app, &auth, &service_sid).await?;
    let channel = app
        .store
        .fetch_channel(account(&auth), &service_sid, &channel_ref)
        .await?;
    let role = channel_role(&app, &auth, &service_sid, &p).await?;
    let invite =
        crate::actions::create_invite(&app, &service, &channel, identity, role, None, &origin)
            .await?;
    Ok((
        StatusCode::CREATED,
        Json(InviteResource::new(&invite, &app.urls)),
    ))
}

/// Twilio FetchInvite — `GET …/Channels/{ChannelSid}/Invites/{Sid}`
pub(crate) async fn fetch(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<Json<InviteResource>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let sid: InviteSid = seg.sid(2)?;
    let i = app
        .store
        .fetch_invite(
            account(&auth),
            &service,
            &ChannelRef::parse(seg.get(1)?),
            &sid,
        )
        .await?;
    Ok(Json(InviteResource::new(&i, &app.urls)))
}

/// Twilio DeleteInvite — `DELETE …/Channels/{ChannelSid}/Invites/{Sid}`
pub(crate) async fn delete(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
) -> Result<StatusCode, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let sid: InviteSid = seg.sid(2)?;
    app.store
        .delete_invite(
            account(&auth),
            &service,
            &ChannelRef::parse(seg.get(1)?),
            &sid,
            &origin,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
