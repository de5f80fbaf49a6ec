//! The caller's channels (`MyConversations`, calls 2–4) and channels (`Conversations`,
//! calls 5–9).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::channel::{
    ChannelRef, ChannelType, ChannelUpdate, MemberRef, MemberUpdate, NotificationLevel,
    MAX_CHANNEL_NAME,
};
use parley_core::paging::Page;
use parley_core::store::StoreError;
use parley_core::user::UserRef;
use parley_core::Timestamp;
use serde_json::{json, Value};

use super::perms::permissions;
use super::{list_page, page_request, wire, Body, Caller, PREFIX};
use crate::error::ApiError;
use crate::live::Client;
use crate::params::{clip, Query};
use crate::v2::channels::{channel_type, name_param, unique_name_param, MAX_NAME_ON_CREATE};
use crate::v2::members::horizon_index;
use crate::v2::{attributes, Segments};
use crate::AppState;

/// Items per page of the caller's channels (`options.my_conversations_page_size`).
pub(crate) const MY_PAGE_SIZE: u32 = 50;
/// Items per page of the public directory.
const DIRECTORY_PAGE_SIZE: u32 = 50;

fn empty<T>() -> Page<T> {
    Page {
        items: Vec::new(),
        more: false,
        next: None,
        prev: None,
    }
}

/// `GET {my_conversations}[?PageToken]` — the caller's memberships and invites.
pub(super) async fn my_list(
    State(app): State<AppState>,
    Client(ctx): Client,
    Query(q): Query,
) -> Result<Json<Value>, ApiError> {
    let caller = Caller::of(&app, ctx).await?;
    let scope = format!("{PREFIX}/MyConversations\n{}", caller.identity());
    let request = page_request(&app, &q, &scope, MY_PAGE_SIZE)?;
    let page = match app
        .store
        .list_user_channels(
            &caller.service.account_sid,
            &caller.service.sid,
            &UserRef::Identity(caller.identity().to_owned()),
            &request,
        )
        .await
    {
        Ok(p) => p,
        // No user row yet: no channels.
        Err(StoreError::NotFound) => empty(),
        Err(e) => return Err(e.into()),
    };
    let mut items = Vec::with_capacity(page.items.len());
    for uc in &page.items {
        match app
            .store
            .fetch_channel(
                &caller.service.account_sid,
                &caller.service.sid,
                &ChannelRef::Sid(uc.channel_sid.clone()),
            )
            .await
        {
            Ok(ch) => items.push(wire::my_conversation(&app, uc, &ch)),
            // Destroyed between the two reads.
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(list_page(&app, "conversations", &scope, &page, items)))
}

async fn my_conversation(
    app: &AppState,
    caller: &Caller,
    channel: &str,
) -> Result<Value, ApiError> {
    let uc = app
        .store
        .fetch_user_channel(
            &caller.service.account_sid,
            &caller.service.sid,
            &UserRef::Identity(caller.identity().to_owned()),
            &ChannelRef::parse(channel),
        )
        .await?;
    let ch = app
        .store
        .fetch_channel(
            &caller.service.account_sid,
            &caller.service.sid,
            &ChannelRef::Sid(uc.channel_sid.clone()),
        )
        .await?;
    Ok(wire::my_conversation(app, &uc, &ch))
}

/// `GET {my_conversations}/{CH}` — `unread_messages_count` among the rest.
pub(super) async fn my_fetch(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
) -> Result<Json<Value>, ApiError> {
    let caller = Caller::of(&app, ctx).await?;
    Ok(Json(my_conversation(&app, &caller, seg.get(0)?).await?))
}

/// `POST {my_conversations}/{CH}` with `last_consumed_message_index` (a number or null) or
/// `notification_level` (`default` | `muted`, needs `editNotificationLevel`): the caller's
/// membership changes (a `member_updated` event); answers with `unread_messages_count`.
pub(super) async fn my_update(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
    Body(p): Body,
) -> Result<Json<Value>, ApiError> {
    let (caller, seen) = Caller::in_channel(&app, ctx, seg.get(0)?).await?;
    let Some(member) = seen.member.as_ref() else {
        return Err(ApiError::not_found());
    };
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
    if level.is_some() {
        permissions(&app, &caller, Some(member))
            .await?
            .require(&["editNotificationLevel"])?;
    }
    let update = MemberUpdate {
        notification_level: level,
        last_consumed_message_index: horizon_index(&p)?,
        ..MemberUpdate::default()
    };
    app.store
        .update_member(
            &caller.service.account_sid,
            &caller.service.sid,
            &seen.channel_ref(),
            &MemberRef::Sid(member.sid.clone()),
            &update,
            Timestamp::now(),
            &caller.origin(),
        )
        .await?;
    Ok(Json(
        my_conversation(&app, &caller, seen.channel.sid.as_str()).await?,
    ))
}

/// `GET {conversations}[?PageToken]` — the public channel directory.
pub(super) async fn directory(
    State(app): State<AppState>,
    Client(ctx): Client,
    Query(q): Query,
) -> Result<Json<Value>, ApiError> {
    let caller = Caller::of(&app, ctx).await?;
    let scope = format!("{PREFIX}/Conversations");
    let request = page_request(&app, &q, &scope, DIRECTORY_PAGE_SIZE)?;
    let page = app
        .store
        .list_channels(
            &caller.service.account_sid,
            &caller.service.sid,
            &[ChannelType::Public],
            &request,
        )
        .await?;
    let items = page
        .items
        .iter()
        .map(|c| wire::conversation(&app, c))
        .collect();
    Ok(Json(list_page(&app, "conversations", &scope, &page, items)))
}

/// `POST {conversations}` {type, unique_name, friendly_name, attributes} — needs
/// `createChannel`; the caller is `created_by` (and gets the creator role when it joins).
pub(super) async fn create(
    State(app): State<AppState>,
    Client(ctx): Client,
    Body(p): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let caller = Caller::of(&app, ctx).await?;
    let friendly_name = name_param(&p, "FriendlyName", 50003, MAX_NAME_ON_CREATE)?.flatten();
    let unique_name = unique_name_param(&p, MAX_NAME_ON_CREATE)?.flatten();
    let attrs = attributes(&p)?;
    let kind = match p.get("Type") {
        None | Some("") => ChannelType::Public,
        Some(t) => channel_type(t)?,
    };
    permissions(&app, &caller, None)
        .await?
        .require(&["createChannel"])?;
    let new = crate::actions::NewChannel {
        friendly_name,
        unique_name,
        attributes: attrs,
        channel_type: kind,
        created_by: Some(caller.identity().to_owned()),
        date_created: None,
        date_updated: None,
    };
    let channel =
        crate::actions::create_channel(&app, &caller.service, new, &caller.origin()).await?;
    Ok((
        StatusCode::CREATED,
        Json(wire::conversation(&app, &channel)),
    ))
}

/// `GET {conversations}/{CH or unique name}` — a channel descriptor with the caller's `status`
/// (`joined`, `invited` or `notParticipating`). A private channel of others: 404.
pub(super) async fn fetch(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
) -> Result<Json<Value>, ApiError> {
    let (_, seen) = Caller::in_channel(&app, ctx, seg.get(0)?).await?;
    let mut v = wire::conversation(&app, &seen.channel);
    let status = match (&seen.member, &seen.invite) {
        (Some(_), _) => "joined",
        (None, Some(_)) => "invited",
        (None, None) => "notParticipating",
    };
    if let Value::Object(o) = &mut v {
        o.insert("status".into(), json!(status));
    }
    Ok(Json(v))
}

/// `POST {conversations}/{CH}` {friendly_name | unique_name | attributes} — names need
/// `editChannelName`, attributes `editChannelAttributes`.
pub(super) async fn update(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
    Body(p): Body,
) -> Result<Json<Value>, ApiError> {
    let (caller, seen) = Caller::in_channel(&app, ctx, seg.get(0)?).await?;
    let update = ChannelUpdate {
        friendly_name: name_param(&p, "FriendlyName", 50003, MAX_CHANNEL_NAME)?,
        unique_name: unique_name_param(&p, MAX_CHANNEL_NAME)?,
        attributes: attributes(&p)?,
        ..ChannelUpdate::default()
    };
    let perms = permissions(&app, &caller, seen.member.as_ref()).await?;
    if update.friendly_name.is_some() || update.unique_name.is_some() {
        perms.require(&["editChannelName"])?;
    }
    if update.attributes.is_some() {
        perms.require(&["editChannelAttributes"])?;
    }
    let channel = crate::actions::update_channel(
        &app,
        &caller.service.account_sid,
        &caller.service.sid,
        &seen.channel_ref(),
        update,
        &caller.origin(),
    )
    .await?;
    Ok(Json(wire::conversation(&app, &channel)))
}

/// `DELETE {conversations}/{CH}` — needs `destroyChannel`.
pub(super) async fn destroy(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
) -> Result<StatusCode, ApiError> {
    let (caller, seen) = Caller::in_channel(&app, ctx, seg.get(0)?).await?;
    permissions(&app, &caller, seen.member.as_ref())
        .await?
        .require(&["destroyChannel"])?;
    crate::actions::delete_channel(
        &app,
        &caller.service.account_sid,
        &caller.service.sid,
        &seen.channel_ref(),
        &caller.origin(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
