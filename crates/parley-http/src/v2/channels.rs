//! Channels: ListChannel, CreateChannel, FetchChannel, UpdateChannel, DeleteChannel
//! (contract §7). `Channels/{Sid}` accepts the SID or the unique name.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::channel::{Channel, ChannelRef, ChannelType, ChannelUpdate, MAX_CHANNEL_NAME};
use parley_core::sid::is_sid;
use parley_core::{ChannelSid, ServiceSid, Timestamp};
use serde::Serialize;
use serde_json::{json, Value};

use super::{account, attributes, date, service_of, Segments};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::origin::ApiOrigin;
use crate::paging::{ListPath, PageQuery, CHANNELS};
use crate::params::{clip, Form, Params, Query};
use crate::urls::UrlBuilder;
use crate::AppState;

/// Wire form of a channel (`chat.v2.service.channel`).
#[derive(Serialize)]
pub(crate) struct ChannelResource {
    sid: String,
    account_sid: String,
    service_sid: String,
    friendly_name: Option<String>,
    unique_name: Option<String>,
    attributes: String,
    #[serde(rename = "type")]
    channel_type: &'static str,
    date_created: String,
    date_updated: String,
    created_by: Option<String>,
    members_count: i64,
    messages_count: i64,
    url: String,
    links: Value,
}

impl ChannelResource {
    pub(crate) fn new(c: &Channel, urls: &UrlBuilder) -> Self {
        let service = c.service_sid.as_str();
        let base = format!("Channels/{}", c.sid);
        Self {
            sid: c.sid.to_string(),
            account_sid: c.account_sid.to_string(),
            service_sid: service.to_owned(),
            friendly_name: c.friendly_name.clone(),
            unique_name: c.unique_name.clone(),
            attributes: c.attributes.clone().unwrap_or_else(|| "{}".to_owned()),
            channel_type: c.channel_type.as_str(),
            date_created: date(c.date_created),
            date_updated: date(c.date_updated),
            created_by: c.created_by.clone(),
            members_count: c.members_count,
            messages_count: c.messages_count,
            url: urls.in_service(service, &base),
            links: json!({
                "members": urls.in_service(service, &format!("{base}/Members")),
                "messages": urls.in_service(service, &format!("{base}/Messages")),
                "invites": urls.in_service(service, &format!("{base}/Invites")),
                "webhooks": urls.in_service(service, &format!("{base}/Webhooks")),
                "last_message": c.last_message_sid.as_ref()
                    .map(|m| urls.in_service(service, &format!("{base}/Messages/{m}"))),
            }),
        }
    }
}

/// Longest names on create (contract §7: 64 on create, 256 on update).
pub(crate) const MAX_NAME_ON_CREATE: usize = 64;

/// Longest `CreatedBy` (an identity, usually): 256 characters, as identities and message
/// authors; too long is Chat 50310 "Author parameter too long" (GUESS: the code Twilio lists
/// for an author in the channel range).
pub(crate) const MAX_CREATED_BY: usize = 256;

/// A channel name parameter: at most `max` characters (Chat 50003/50004); empty clears it.
pub(crate) fn name_param(
    p: &Params,
    name: &str,
    code: u32,
    max: usize,
) -> Result<Option<Option<String>>, ApiError> {
    match p.get(name) {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(v) if v.chars().count() > max => Err(ApiError::chat_param(
            code,
            name,
            format!("{name} is too long ({max} characters at most)"),
        )),
        Some(v) => Ok(Some(Some(v.to_owned()))),
    }
}

pub(crate) fn unique_name_param(
    p: &Params,
    max: usize,
) -> Result<Option<Option<String>>, ApiError> {
    let v = name_param(p, "UniqueName", 50004, max)?;
    if let Some(Some(name)) = &v {
        if is_sid(ChannelSid::PREFIX, name) {
            return Err(ApiError::chat_param(
                50306,
                "UniqueName",
                "UniqueName must not look like a channel SID (CH…)",
            ));
        }
    }
    Ok(v)
}

fn dates(p: &Params) -> Result<(Option<Timestamp>, Option<Timestamp>), ApiError> {
    let created = p.date("DateCreated").map_err(|_| {
        ApiError::chat_param(
            50308,
            "DateCreated",
            "DateCreated must be an ISO 8601 date-time",
        )
    })?;
    let updated = p.date("DateUpdated").map_err(|_| {
        ApiError::chat_param(
            50309,
            "DateUpdated",
            "DateUpdated must be an ISO 8601 date-time",
        )
    })?;
    Ok((created, updated))
}

/// The `Type` values of a list filter or a create.
pub(crate) fn channel_type(text: &str) -> Result<ChannelType, ApiError> {
    ChannelType::parse(text).ok_or_else(|| {
        ApiError::invalid_param(
            "Type",
            format!(
                "Invalid channel type '{}': use public or private",
                clip(text)
            ),
        )
    })
}

/// Twilio ListChannel — `GET /v2/Services/{ServiceSid}/Channels`. With no `Type`, only public
/// channels are listed (Twilio's documented default).
pub(crate) async fn list(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Query(q): Query,
    path: ListPath,
) -> Result<crate::paging::ListBody, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let mut types = q
        .all("Type")
        .iter()
        .map(|t| channel_type(t))
        .collect::<Result<Vec<_>, _>>()?;
    if types.is_empty() {
        types.push(ChannelType::Public);
    }
    let pq = PageQuery::parse(&q, CHANNELS, path.as_str(), &["Type"], &app.secrets)?;
    let page = app
        .store
        .list_channels(account(&auth), &service, &types, &pq.request)
        .await?;
    if page.items.is_empty() && pq.request.cursor.is_none() {
        service_of(&app, &auth, &service).await?;
    }
    let body = pq.envelope(page, &app.urls, &app.secrets, |c| {
        ChannelResource::new(c, &app.urls)
    })?;
    Ok(body)
}

/// Twilio CreateChannel — `POST /v2/Services/{ServiceSid}/Channels`
pub(crate) async fn create(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
    Form(p): Form,
) -> Result<(StatusCode, Json<ChannelResource>), ApiError> {
    let service_sid: ServiceSid = seg.sid(0)?;
    let friendly_name = name_param(&p, "FriendlyName", 50003, MAX_NAME_ON_CREATE)?.flatten();
    let unique_name = unique_name_param(&p, MAX_NAME_ON_CREATE)?.flatten();
    let attrs = attributes(&p)?;
    let created_by = p.text("CreatedBy", MAX_CREATED_BY, 50310)?;
    let channel_type = match p.get("Type") {
        None => ChannelType::Public,
        Some(t) => channel_type(t)?,
    };
    let (created, updated) = dates(&p)?;
    let service = service_of(&app, &auth, &service_sid).await?;
    let new = crate::actions::NewChannel {
        friendly_name,
        unique_name,
        attributes: attrs,
        channel_type,
        created_by,
        date_created: created,
        date_updated: updated,
    };
    let channel = crate::actions::create_channel(&app, &service, new, &origin).await?;
    Ok((
        StatusCode::CREATED,
        Json(ChannelResource::new(&channel, &app.urls)),
    ))
}

/// Twilio FetchChannel — `GET /v2/Services/{ServiceSid}/Channels/{Sid}`
pub(crate) async fn fetch(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<Json<ChannelResource>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let channel = app
        .store
        .fetch_channel(account(&auth), &service, &ChannelRef::parse(seg.get(1)?))
        .await?;
    Ok(Json(ChannelResource::new(&channel, &app.urls)))
}

/// Twilio UpdateChannel — `POST /v2/Services/{ServiceSid}/Channels/{Sid}`
pub(crate) async fn update(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
    Form(p): Form,
) -> Result<Json<ChannelResource>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let (date_created, date_updated) = dates(&p)?;
    let update = ChannelUpdate {
        friendly_name: name_param(&p, "FriendlyName", 50003, MAX_CHANNEL_NAME)?,
        unique_name: unique_name_param(&p, MAX_CHANNEL_NAME)?,
        attributes: attributes(&p)?,
        created_by: p.text("CreatedBy", MAX_CREATED_BY, 50310)?,
        date_created,
        date_updated,
    };
    let channel_ref = ChannelRef::parse(seg.get(1)?);
    let channel = crate::actions::update_channel(
        &app,
        account(&auth),
        &service,
        &channel_ref,
        update,
        &origin,
    )
    .await?;
    Ok(Json(ChannelResource::new(&channel, &app.urls)))
}

/// Twilio DeleteChannel — `DELETE /v2/Services/{ServiceSid}/Channels/{Sid}` (members, messages
/// and invites go with it)
pub(crate) async fn delete(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
) -> Result<StatusCode, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let channel_ref = ChannelRef::parse(seg.get(1)?);
    crate::actions::delete_channel(&app, account(&auth), &service, &channel_ref, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}
