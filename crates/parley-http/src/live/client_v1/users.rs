//! Configuration (call 1), users (calls 18–20) and typing (call 21).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::signal::Signal;
use parley_core::store::StoreError;
use parley_core::user::{User, UserRef, UserUpdate};
use serde_json::{json, Value};

use super::channels::MY_PAGE_SIZE;
use super::perms::{permissions, see_channel};
use super::{list_page, page_request, wire, Body, Caller, PREFIX};
use crate::error::ApiError;
use crate::live::{names, Client};
use crate::params::Query;
use crate::urls::segment;
use crate::v2::users::MAX_USER_FRIENDLY_NAME;
use crate::v2::{attributes, Segments};
use crate::AppState;

/// The typing notification's `message_type`.
pub const TYPING_MESSAGE_TYPE: &str = "twilio.ipmsg.typing_indicator";
/// Users per page.
const USERS_PAGE_SIZE: u32 = 50;
/// How many user infos the SDK keeps subscribed.
const USER_INFOS_TO_SUBSCRIBE: u32 = 100;

/// `GET /Client/v1/Configuration` — options, Sync object names, absolute links, identity. The
/// caller's user is created on first use (as the registration door does).
pub(super) async fn configuration(
    State(app): State<AppState>,
    Client(ctx): Client,
) -> Result<Json<Value>, ApiError> {
    let caller = Caller::of(&app, ctx).await?;
    caller.ensure_user(&app).await?;
    let identity = caller.identity();
    let settings = &caller.service.settings;
    let url = |rest: &str| wire::url(&app, rest);
    Ok(Json(json!({
        "options": {
            "consumption_report_interval": format!("PT{}S", settings.consumption_report_interval.max(0)),
            "user_infos_to_subscribe": USER_INFOS_TO_SUBSCRIBE,
            "reachability_enabled": settings.reachability_enabled,
            "http_cache_interval": "PT5S",
            "my_conversations_page_size": MY_PAGE_SIZE,
        },
        "sync_objects": {
            "my_conversations": names::user_channels_map(identity),
            "my_user_info": names::user_info_map(identity),
        },
        "links": {
            "my_conversations": url("/MyConversations"),
            "conversations": url("/Conversations"),
            "users": url("/Users"),
            "current_user": url(&format!("/Users/{}", segment(identity))),
            "typing": url("/Typing"),
            "media_service": url("/Media"),
            "messages_receipts": url("/MessagesReceipts"),
        },
        "identity": identity,
        "url": url("/Configuration"),
    })))
}

/// `(is_online, is_notifiable)` when the service has reachability on: online = connected to
/// any node now (the shared presence); notifiable = has a push binding.
async fn reachability(
    app: &AppState,
    caller: &Caller,
    user: &User,
) -> Result<Option<(bool, bool)>, ApiError> {
    if !caller.service.settings.reachability_enabled {
        return Ok(None);
    }
    let key = parley_core::store::PresenceKey {
        account: user.account_sid.clone(),
        service: user.service_sid.clone(),
        identity: user.identity.clone(),
    };
    let online = app
        .store
        .is_online(&key, parley_core::Timestamp::now())
        .await?;
    let bindings = app
        .store
        .count_user_bindings(&user.account_sid, &user.service_sid, &user.sid)
        .await?;
    Ok(Some((online, bindings > 0)))
}

/// `GET {users}/{identity}` — a user descriptor.
pub(super) async fn fetch(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
) -> Result<Json<Value>, ApiError> {
    let caller = Caller::of(&app, ctx).await?;
    let user = app
        .store
        .fetch_user(
            &caller.service.account_sid,
            &caller.service.sid,
            &seg.user(0)?,
        )
        .await?;
    let reach = reachability(&app, &caller, &user).await?;
    Ok(Json(wire::user(&app, &user, reach)))
}

/// `GET {users}?ConversationSid=CH…[&PageToken]` — the users of a channel's members (without
/// `ConversationSid`: the service's users); `{users, meta: {prev_token, next_token}}`.
pub(super) async fn list(
    State(app): State<AppState>,
    Client(ctx): Client,
    Query(q): Query,
) -> Result<Json<Value>, ApiError> {
    let caller = Caller::of(&app, ctx).await?;
    let account = &caller.service.account_sid;
    let service = &caller.service.sid;
    let channel = q.get("ConversationSid").filter(|c| !c.is_empty());
    let Some(channel) = channel else {
        let scope = format!("{PREFIX}/Users");
        let request = page_request(&app, &q, &scope, USERS_PAGE_SIZE)?;
        let page = app.store.list_users(account, service, &request).await?;
        let mut items = Vec::with_capacity(page.items.len());
        for u in &page.items {
            let reach = reachability(&app, &caller, u).await?;
            items.push(wire::user(&app, u, reach));
        }
        return Ok(Json(list_page(&app, "users", &scope, &page, items)));
    };
    let seen = see_channel(&app, &caller, channel).await?;
    let scope = format!("{PREFIX}/Users\n{}", seen.channel.sid);
    let request = page_request(&app, &q, &scope, USERS_PAGE_SIZE)?;
    let page = app
        .store
        .list_members(account, service, &seen.channel_ref(), &[], &request)
        .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for m in &page.items {
        match app
            .store
            .fetch_user(account, service, &UserRef::Sid(m.user_sid.clone()))
            .await
        {
            Ok(u) => {
                let reach = reachability(&app, &caller, &u).await?;
                items.push(wire::user(&app, &u, reach));
            }
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(list_page(&app, "users", &scope, &page, items)))
}

/// `POST {users}/{identity}` {friendly_name | attributes} — one's own user needs
/// `editOwnUserInfo`, another's `editAnyUserInfo`.
pub(super) async fn update(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
    Body(p): Body,
) -> Result<Json<Value>, ApiError> {
    let caller = Caller::of(&app, ctx).await?;
    let target = seg.user(0)?;
    let update = UserUpdate {
        friendly_name: p.text("FriendlyName", MAX_USER_FRIENDLY_NAME, 50003)?,
        attributes: attributes(&p)?,
        role_sid: None,
    };
    let own = match &target {
        UserRef::Identity(i) => i == caller.identity(),
        UserRef::Sid(sid) => caller.user(&app).await?.is_some_and(|u| &u.sid == sid),
    };
    let perms = permissions(&app, &caller, None).await?;
    if own {
        perms.require(&["editOwnUserInfo", "editAnyUserInfo"])?;
        caller.ensure_user(&app).await?;
    } else {
        perms.require(&["editAnyUserInfo"])?;
    }
    let user = crate::actions::update_user(
        &app,
        &caller.service.account_sid,
        &caller.service.sid,
        &target,
        update,
        &caller.origin(),
    )
    .await?;
    let reach = reachability(&app, &caller, &user).await?;
    Ok(Json(wire::user(&app, &user, reach)))
}

/// `POST {typing}` with the form body `ChannelSid=CH…` — tells every connection, on every
/// node (a channel notice on the store's signal bus), of the channel's other members (`twilio.ipmsg.typing_indicator` {channel_sid, identity,
/// typing_timeout}); nothing is stored. The caller must be a member. Answers
/// `{typing_timeout}` (the service's `TypingIndicatorTimeout`, seconds).
pub(super) async fn typing(
    State(app): State<AppState>,
    Client(ctx): Client,
    Body(p): Body,
) -> Result<Json<Value>, ApiError> {
    let caller = Caller::of(&app, ctx).await?;
    let channel = p.required("ChannelSid")?;
    let seen = see_channel(&app, &caller, &channel).await?;
    if seen.member.is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            super::perms::CODE_NOT_AUTHORIZED,
            "User not authorized for command: not a member of the channel",
        ));
    }
    let timeout = caller.service.settings.typing_indicator_timeout;
    let payload = json!({
        "channel_sid": seen.channel.sid.as_str(),
        "identity": caller.identity(),
        "typing_timeout": timeout,
    });
    // Every node (this one too) hands it to its connections of the other members.
    app.store
        .signals()
        .publish(&Signal::ChannelNotice {
            account: caller.service.account_sid.clone(),
            service: caller.service.sid.clone(),
            channel: seen.channel.sid.clone(),
            except_identity: caller.identity().to_owned(),
            message_type: TYPING_MESSAGE_TYPE.to_owned(),
            payload,
        })
        .await?;
    Ok(Json(json!({ "typing_timeout": timeout })))
}
