//! User Channels: ListUserChannel, FetchUserChannel, UpdateUserChannel, DeleteUserChannel
//! (contract §6). A user's memberships (`joined`) and pending invites (`invited`). The
//! representation has no `sid`. Deleting one leaves the channel.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::channel::{ChannelRef, MemberRef, MemberUpdate, NotificationLevel, UserChannel};
use parley_core::user::UserRef;
use parley_core::{ServiceSid, Timestamp};
use serde::Serialize;
use serde_json::{json, Value};

use super::members::{horizon_index, horizon_time};
use super::{account, Segments};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::origin::ApiOrigin;
use crate::paging::{ListPath, PageQuery, USER_CHANNELS};
use crate::params::{clip, Form, Query};
use crate::urls::UrlBuilder;
use crate::AppState;

/// Wire form of a user channel (`chat.v2.service.user.user_channel`).
#[derive(Serialize)]
pub(crate) struct UserChannelResource {
    account_sid: String,
    service_sid: String,
    channel_sid: String,
    user_sid: String,
    member_sid: Option<String>,
    status: &'static str,
    last_consumed_message_index: Option<i64>,
    unread_messages_count: Option<i64>,
    notification_level: &'static str,
    url: String,
    links: Value,
}

impl UserChannelResource {
    fn new(uc: &UserChannel, urls: &UrlBuilder) -> Self {
        let service = uc.service_sid.as_str();
        let channel = format!("Channels/{}", uc.channel_sid);
        Self {
            account_sid: uc.account_sid.to_string(),
            service_sid: service.to_owned(),
            channel_sid: uc.channel_sid.to_string(),
            user_sid: uc.user_sid.to_string(),
            member_sid: uc.member_sid.as_ref().map(ToString::to_string),
            status: uc.status.as_str(),
            last_consumed_message_index: uc.last_consumed_message_index,
            unread_messages_count: uc.unread_messages_count,
            notification_level: uc.notification_level.as_str(),
            url: urls.in_service(service, &format!("Users/{}/{channel}", uc.user_sid)),
            links: json!({
                "channel": urls.in_service(service, &channel),
                "member": uc.member_sid.as_ref().map(|m| urls.in_service(service, &format!("{channel}/Members/{m}"))),
            }),
        }
    }
}

/// Twilio ListUserChannel — `GET /v2/Services/{ServiceSid}/Users/{UserSid}/Channels`
pub(crate) async fn list(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Query(q): Query,
    path: ListPath,
) -> Result<crate::paging::ListBody, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let user = UserRef::parse(seg.get(1)?);
    let pq = PageQuery::parse(&q, USER_CHANNELS, path.as_str(), &[], &app.secrets)?;
    let page = app
        .store
        .list_user_channels(account(&auth), &service, &user, &pq.request)
        .await?;
    if page.items.is_empty() && pq.request.cursor.is_none() {
        app.store
            .fetch_user(account(&auth), &service, &user)
            .await?;
    }
    let body = pq.envelope(page, &app.urls, &app.secrets, |uc| {
        UserChannelResource::new(uc, &app.urls)
    })?;
    Ok(body)
}

/// Twilio FetchUserChannel — `GET …/Users/{UserSid}/Channels/{ChannelSid}`
pub(crate) async fn fetch(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<Json<UserChannelResource>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let uc = app
        .store
        .fetch_user_channel(
            account(&auth),
            &service,
            &UserRef::parse(seg.get(1)?),
            &ChannelRef::parse(seg.get(2)?),
        )
        .await?;
    Ok(Json(UserChannelResource::new(&uc, &app.urls)))
}

/// Twilio UpdateUserChannel — `POST …/Users/{UserSid}/Channels/{ChannelSid}`
/// (`NotificationLevel`, `LastConsumedMessageIndex`, `LastConsumptionTimestamp`)
pub(crate) async fn update(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
    Form(p): Form,
) -> Result<Json<UserChannelResource>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let level = match p.get("NotificationLevel") {
        None => None,
        Some(l) => Some(NotificationLevel::parse(l).ok_or_else(|| {
            ApiError::chat_param(
                50210,
                "NotificationLevel",
                format!(
                    "Invalid notification level '{}': use default or muted",
                    clip(l)
                ),
            )
        })?),
    };
    let update = MemberUpdate {
        notification_level: level,
        last_consumed_message_index: horizon_index(&p)?,
        last_consumption_timestamp: horizon_time(&p)?,
        ..MemberUpdate::default()
    };
    let user_ref = UserRef::parse(seg.get(1)?);
    let channel = ChannelRef::parse(seg.get(2)?);
    let user = app
        .store
        .fetch_user(account(&auth), &service, &user_ref)
        .await?;
    app.store
        .update_member(
            account(&auth),
            &service,
            &channel,
            &MemberRef::Identity(user.identity),
            &update,
            Timestamp::now(),
            &origin,
        )
        .await?;
    let uc = app
        .store
        .fetch_user_channel(account(&auth), &service, &user_ref, &channel)
        .await?;
    Ok(Json(UserChannelResource::new(&uc, &app.urls)))
}

/// Twilio DeleteUserChannel — `DELETE …/Users/{UserSid}/Channels/{ChannelSid}`: the user leaves
/// the channel (a `removed_from_channel` event); for a pending invite, the invite is declined.
pub(crate) async fn delete(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    ApiOrigin(origin): ApiOrigin,
) -> Result<StatusCode, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let user = app
        .store
        .fetch_user(account(&auth), &service, &UserRef::parse(seg.get(1)?))
        .await?;
    let channel = ChannelRef::parse(seg.get(2)?);
    let identity = user.identity.clone();
    let left = app
        .store
        .delete_member(
            account(&auth),
            &service,
            &channel,
            &MemberRef::Identity(identity.clone()),
            Some(&identity),
            Timestamp::now(),
            &origin,
        )
        .await;
    match left {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(parley_core::store::StoreError::NotFound) => {
            let invites = app
                .store
                .list_invites(
                    account(&auth),
                    &service,
                    &channel,
                    &[identity],
                    &parley_core::paging::PageRequest::first(1),
                )
                .await?;
            let Some(invite) = invites.items.first() else {
                return Err(ApiError::not_found());
            };
            app.store
                .delete_invite(account(&auth), &service, &channel, &invite.sid, &origin)
                .await?;
            Ok(StatusCode::NO_CONTENT)
        }
        Err(e) => Err(e.into()),
    }
}
