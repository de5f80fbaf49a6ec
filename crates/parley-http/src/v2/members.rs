//! Members: ListMember, CreateMember, FetchMember, UpdateMember, DeleteMember (contract §8).
//! `Members/{Sid}` accepts the member SID or the identity. Joining creates the user when the
//! identity is new; the service's counter limits are enforced by the store in the same
//! transaction (403 with 50403 / 50208).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::channel::{ChannelRef, Member, MemberRef, MemberUpdate};
use parley_core::role::RoleType;
use parley_core::store::StoreError;
use parley_core::{RoleSid, ServiceSid, Timestamp};
use serde::Serialize;

use super::{account, attributes, date, service_of, users::check_identity, Segments};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::origin::ApiOrigin;
use crate::paging::{ListPath, PageQuery, MEMBERS};
use crate::params::{clip, Form, Params, Query};
use crate::urls::UrlBuilder;
use crate::AppState;

/// Wire form of a member (`chat.v2.service.channel.member`). No `links`.
#[derive(Serialize)]
pub(crate) struct MemberResource {
    sid: String,
    account_sid: String,
    channel_sid: String,
    service_sid: String,
    identity: String,
    date_created: String,
    date_updated: String,
    role_sid: Option<String>,
    last_consumed_message_index: Option<i64>,
    last_consumption_timestamp: Option<String>,
    url: String,
    attributes: String,
}

impl MemberResource {
    pub(crate) fn new(m: &Member, urls: &UrlBuilder) -> Self {
        Self {
            sid: m.sid.to_string(),
            account_sid: m.account_sid.to_string(),
            channel_sid: m.channel_sid.to_string(),
            service_sid: m.service_sid.to_string(),
            identity: m.identity.clone(),
            date_created: date(m.date_created),
            date_updated: date(m.date_updated),
            role_sid: m.role_sid.as_ref().map(ToString::to_string),
            last_consumed_message_index: m.last_consumed_message_index,
            last_consumption_timestamp: m.last_consumption_timestamp.map(date),
            url: urls.in_service(
                m.service_sid.as_str(),
                &format!("Channels/{}/Members/{}", m.channel_sid, m.sid),
            ),
            attributes: m.attributes.clone().unwrap_or_else(|| "{}".to_owned()),
        }
    }
}

/// A `RoleSid` naming a channel role of the service (Chat 50101 otherwise).
pub(crate) async fn channel_role(
    app: &AppState,
    auth: &Authenticated,
    service: &ServiceSid,
    p: &Params,
) -> Result<Option<RoleSid>, ApiError> {
    let Some(text) = p.get("RoleSid") else {
        return Ok(None);
    };
    let bad = |msg: String| ApiError::chat_param(50101, "RoleSid", msg);
    let sid =
        RoleSid::parse(text).map_err(|_| bad(format!("Channel role {} not found", clip(text))))?;
    match app.store.fetch_role(account(auth), service, &sid).await {
        Ok(r) if r.role_type == RoleType::Channel => Ok(Some(sid)),
        Ok(_) => Err(bad(format!(
            "Role {sid} is a deployment role; members need a channel role"
        ))),
        Err(StoreError::NotFound) => Err(bad(format!("Channel role {sid} not found"))),
        Err(e) => Err(e.into()),
    }
}

/// `LastConsumedMessageIndex` (nullable: an empty value clears it; Chat 50406 when bad).
pub(crate) fn horizon_index(p: &Params) -> Result<Option<Option<i64>>, ApiError> {
    match p.get("LastConsumedMessageIndex") {
        None => Ok(None),
        Some("") | Some("null") => Ok(Some(None)),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(i) if i >= 0 => Ok(Some(Some(i))),
            _ => Err(ApiError::chat_param(
                50406,
                "LastConsumedMessageIndex",
                "LastConsumedMessageIndex must be a non-negative integer",
            )),
        },
    }
}

/// `LastConsumptionTimestamp` (Chat 50405 when bad).
pub(crate) fn horizon_time(p: &Params) -> Result<Option<Timestamp>, ApiError> {
    p.date("LastConsumptionTimestamp").map_err(|_| {
        ApiError::chat_param(
            50405,
            "LastConsumptionTimestamp",
            "LastConsumptionTimestamp must be an ISO 8601 date-time",
        )
    })
}

fn member_dates(p: &Params) -> Result<(Option<Timestamp>, Option<Timestamp>), ApiError> {
    let c = p.date("DateCreated")?;
    let u = p.date("DateUpdated")?;
    Ok((c, u))
}

/// Twilio ListMember — `GET …/Channels/{ChannelSid}/Members` (filter `Identity`, repeatable)
pub(crate) async fn list(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Query(q): Query,
    path: ListPath,
) -> Result<crate::paging::ListBody, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let channel = ChannelRef::parse(seg.get(1)?);
    let pq = PageQuery::parse(&q, MEMBERS, path.as_str(), &["Identity"], &app.secrets)?;
    let page = app
        .store
        .list_members(
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
    let body = pq.envelope(page, &app.urls, &app.secrets, |m| {
        MemberResource::new(m, &app.urls)
    })?;
    Ok(body)
}

/// Twilio CreateMember — `POST …/Channels/{ChannelSid}/Members`
pub(crate) async fn create(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
    Form(p): Form,
) -> Result<(StatusCode, Json<MemberResource>), ApiError> {
    let service_sid: ServiceSid = seg.sid(0)?;
    let channel_ref = ChannelRef::parse(seg.get(1)?);
    let identity = p.required("Identity")?;
    check_identity(&identity, "Identity")?;
    let attrs = attributes(&p)?;
    let horizon = horizon_index(&p)?.flatten();
    let horizon_at = horizon_time(&p)?;
    let (created, updated) = member_dates(&p)?;
    let service = service_of(&app, &auth, &service_sid).await?;
    let channel = app
        .store
        .fetch_channel(account(&auth), &service_sid, &channel_ref)
        .await?;
    let new = crate::actions::NewMember {
        identity,
        role_sid: channel_role(&app, &auth, &service_sid, &p).await?,
        attributes: attrs,
        last_consumed_message_index: horizon,
        last_consumption_timestamp: horizon_at,
        date_created: created,
        date_updated: updated,
    };
    let member = crate::actions::add_member(&app, &service, &channel, new, None, &origin).await?;
    Ok((
        StatusCode::CREATED,
        Json(MemberResource::new(&member, &app.urls)),
    ))
}

/// Twilio FetchMember — `GET …/Channels/{ChannelSid}/Members/{Sid}`
pub(crate) async fn fetch(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<Json<MemberResource>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let m = app
        .store
        .fetch_member(
            account(&auth),
            &service,
            &ChannelRef::parse(seg.get(1)?),
            &MemberRef::parse(seg.get(2)?),
        )
        .await?;
    Ok(Json(MemberResource::new(&m, &app.urls)))
}

/// Twilio UpdateMember — `POST …/Channels/{ChannelSid}/Members/{Sid}`
pub(crate) async fn update(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
    Form(p): Form,
) -> Result<Json<MemberResource>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let (date_created, date_updated) = member_dates(&p)?;
    let update = MemberUpdate {
        role_sid: channel_role(&app, &auth, &service, &p).await?,
        last_consumed_message_index: horizon_index(&p)?,
        last_consumption_timestamp: horizon_time(&p)?,
        attributes: attributes(&p)?,
        notification_level: None,
        date_created,
        date_updated,
    };
    let (channel, member) = (
        ChannelRef::parse(seg.get(1)?),
        MemberRef::parse(seg.get(2)?),
    );
    let m = crate::actions::update_member(
        &app,
        account(&auth),
        &service,
        &channel,
        &member,
        update,
        &origin,
    )
    .await?;
    Ok(Json(MemberResource::new(&m, &app.urls)))
}

/// Twilio DeleteMember — `DELETE …/Channels/{ChannelSid}/Members/{Sid}` (a `removed_from_channel`
/// event for the removed user)
pub(crate) async fn delete(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
) -> Result<StatusCode, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let (channel, member) = (
        ChannelRef::parse(seg.get(1)?),
        MemberRef::parse(seg.get(2)?),
    );
    crate::actions::remove_member(
        &app,
        account(&auth),
        &service,
        &channel,
        &member,
        None,
        &origin,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
