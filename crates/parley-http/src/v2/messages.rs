//! Messages: ListMessage, CreateMessage, FetchMessage, UpdateMessage, DeleteMessage
//! (contract §9). Text messages only: `MediaSid` is a clear 400 until media is supported.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::channel::{ChannelRef, Message, MessageOrder, MessageUpdate, MAX_BODY_BYTES};
use parley_core::{MessageSid, ServiceSid};
use serde::Serialize;
use serde_json::Value;

use super::{account, attributes, date, service_of, Segments};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::origin::ApiOrigin;
use crate::paging::{ListPath, PageQuery, MESSAGES};
use crate::params::{Form, Params, Query};
use crate::urls::UrlBuilder;
use crate::AppState;

/// Longest `From` / `LastUpdatedBy` (Chat 50310 / 50505; GUESS: 256 like identities).
const MAX_AUTHOR: usize = 256;

/// Wire form of a message (`chat.v2.service.channel.message`). No `links`.
#[derive(Serialize)]
pub(crate) struct MessageResource {
    sid: String,
    account_sid: String,
    attributes: String,
    service_sid: String,
    to: String,
    channel_sid: String,
    date_created: String,
    date_updated: String,
    last_updated_by: Option<String>,
    was_edited: bool,
    from: String,
    body: Option<String>,
    index: i64,
    #[serde(rename = "type")]
    message_type: &'static str,
    media: Option<Value>,
    url: String,
}

impl MessageResource {
    pub(crate) fn new(m: &Message, urls: &UrlBuilder) -> Self {
        Self {
            sid: m.sid.to_string(),
            account_sid: m.account_sid.to_string(),
            attributes: m.attributes.clone().unwrap_or_else(|| "{}".to_owned()),
            service_sid: m.service_sid.to_string(),
            to: m.channel_sid.to_string(),
            channel_sid: m.channel_sid.to_string(),
            date_created: date(m.date_created),
            date_updated: date(m.date_updated),
            last_updated_by: m.last_updated_by.clone(),
            was_edited: m.was_edited,
            from: m.from.clone(),
            body: m.body.clone(),
            index: m.index,
            message_type: "text",
            media: None,
            url: urls.in_service(
                m.service_sid.as_str(),
                &format!("Channels/{}/Messages/{}", m.channel_sid, m.sid),
            ),
        }
    }
}

pub(crate) fn body_param(p: &Params) -> Result<Option<String>, ApiError> {
    match p.string("Body") {
        Some(b) if b.len() > MAX_BODY_BYTES => Err(ApiError::chat_param(
            50504,
            "Body",
            format!("Message body is too long ({MAX_BODY_BYTES} bytes at most)"),
        )),
        other => Ok(other),
    }
}

pub(crate) fn author(p: &Params, name: &str, code: u32) -> Result<Option<String>, ApiError> {
    match p.string(name) {
        Some(a) if a.chars().count() > MAX_AUTHOR => Err(ApiError::chat_param(
            code,
            name,
            format!("{name} is too long ({MAX_AUTHOR} characters at most)"),
        )),
        other => Ok(other),
    }
}

pub(crate) fn reject_media(p: &Params) -> Result<(), ApiError> {
    if p.has("MediaSid") {
        return Err(ApiError::invalid_param(
            "MediaSid",
            "Media messages are not supported by this server yet",
        ));
    }
    Ok(())
}

/// Twilio ListMessage — `GET …/Channels/{ChannelSid}/Messages` (`Order` asc|desc)
pub(crate) async fn list(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Query(q): Query,
    path: ListPath,
) -> Result<crate::paging::ListBody, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let channel = ChannelRef::parse(seg.get(1)?);
    let order = match q.get("Order") {
        None | Some("asc") => MessageOrder::Asc,
        Some("desc") => MessageOrder::Desc,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "Order",
                "Order must be asc or desc",
            ))
        }
    };
    let pq = PageQuery::parse(&q, MESSAGES, path.as_str(), &["Order"], &app.secrets)?;
    let page = app
        .store
        .list_messages(account(&auth), &service, &channel, order, &pq.request)
        .await?;
    if page.items.is_empty() && pq.request.cursor.is_none() {
        app.store
            .fetch_channel(account(&auth), &service, &channel)
            .await?;
    }
    let body = pq.envelope(page, &app.urls, &app.secrets, |m| {
        MessageResource::new(m, &app.urls)
    })?;
    Ok(body)
}

/// Twilio CreateMessage — `POST …/Channels/{ChannelSid}/Messages` (`From` defaults to `system`)
pub(crate) async fn create(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
    Form(p): Form,
) -> Result<(StatusCode, Json<MessageResource>), ApiError> {
    let service_sid: ServiceSid = seg.sid(0)?;
    let channel = ChannelRef::parse(seg.get(1)?);
    reject_media(&p)?;
    let body = body_param(&p)?.filter(|b| !b.is_empty());
    let Some(body) = body else {
        return Err(ApiError::chat_param(
            50503,
            "Body",
            "Missing required parameter Body in the post body",
        ));
    };
    let attrs = attributes(&p)?;
    let from = author(&p, "From", 50310)?
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "system".to_owned());
    let last_updated_by = author(&p, "LastUpdatedBy", 50505)?;
    let created = p.date("DateCreated")?;
    let updated = p.date("DateUpdated")?;
    let service = service_of(&app, &auth, &service_sid).await?;
    let new = crate::actions::NewMessage {
        body,
        attributes: attrs,
        from,
        last_updated_by,
        date_created: created,
        date_updated: updated,
    };
    let message = crate::actions::post_message(&app, &service, &channel, new, &origin).await?;
    Ok((
        StatusCode::CREATED,
        Json(MessageResource::new(&message, &app.urls)),
    ))
}

/// Twilio FetchMessage — `GET …/Channels/{ChannelSid}/Messages/{Sid}`
pub(crate) async fn fetch(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<Json<MessageResource>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let sid: MessageSid = seg.sid(2)?;
    let m = app
        .store
        .fetch_message(
            account(&auth),
            &service,
            &ChannelRef::parse(seg.get(1)?),
            &sid,
        )
        .await?;
    Ok(Json(MessageResource::new(&m, &app.urls)))
}

/// Twilio UpdateMessage — `POST …/Channels/{ChannelSid}/Messages/{Sid}`
pub(crate) async fn update(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
    Form(p): Form,
) -> Result<Json<MessageResource>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let sid: MessageSid = seg.sid(2)?;
    reject_media(&p)?;
    let update = MessageUpdate {
        body: body_param(&p)?,
        attributes: attributes(&p)?,
        from: author(&p, "From", 50310)?,
        last_updated_by: author(&p, "LastUpdatedBy", 50505)?,
        date_created: p.date("DateCreated")?,
        date_updated: p.date("DateUpdated")?,
    };
    let channel = ChannelRef::parse(seg.get(1)?);
    let m = crate::actions::update_message(
        &app,
        account(&auth),
        &service,
        &channel,
        &sid,
        update,
        &origin,
    )
    .await?;
    Ok(Json(MessageResource::new(&m, &app.urls)))
}

/// Twilio DeleteMessage — `DELETE …/Channels/{ChannelSid}/Messages/{Sid}`
pub(crate) async fn delete(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
) -> Result<StatusCode, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let sid: MessageSid = seg.sid(2)?;
    let channel = ChannelRef::parse(seg.get(1)?);
    crate::actions::delete_message(&app, account(&auth), &service, &channel, &sid, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}
