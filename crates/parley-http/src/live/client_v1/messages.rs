//! Messages (calls 15–17): send (members with `sendMessage`), edit and delete (own or any).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::channel::MessageUpdate;
use parley_core::MessageSid;
use serde_json::Value;

use super::perms::permissions;
use super::{wire, Body, Caller};
use crate::error::ApiError;
use crate::live::Client;
use crate::v2::messages::{body_param, reject_media};
use crate::v2::{attributes, Segments};
use crate::AppState;

/// `POST …/Messages` {body, attributes} — the caller must be a member with `sendMessage`; the
/// caller is the author. (`media_sid`: a 400 until media is supported, as over REST.)
pub(super) async fn send(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
    Body(p): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (caller, seen) = Caller::in_channel(&app, ctx, seg.get(0)?).await?;
    reject_media(&p)?;
    let Some(member) = seen.member.as_ref() else {
        return Err(super::perms::refused("sendMessage"));
    };
    permissions(&app, &caller, Some(member))
        .await?
        .require(&["sendMessage"])?;
    let Some(body) = body_param(&p)?.filter(|b| !b.is_empty()) else {
        return Err(ApiError::chat_param(
            50503,
            "Body",
            "Missing required parameter Body in the post body",
        ));
    };
    let new = crate::actions::NewMessage {
        body,
        attributes: attributes(&p)?,
        from: caller.identity().to_owned(),
        last_updated_by: None,
        date_created: None,
        date_updated: None,
    };
    let message = crate::actions::post_message(
        &app,
        &caller.service,
        &seen.channel_ref(),
        new,
        &caller.origin(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(wire::message(&app, &message))))
}

fn message_sid(seg: &Segments) -> Result<MessageSid, ApiError> {
    seg.sid(1)
}

/// `POST …/Messages/{IM}` {body | attributes} — the author needs `editOwnMessage` (attributes:
/// also `editOwnMessageAttributes`), anyone else `editAnyMessage` (attributes: also
/// `editAnyMessageAttributes`).
pub(super) async fn update(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
    Body(p): Body,
) -> Result<Json<Value>, ApiError> {
    let (caller, seen) = Caller::in_channel(&app, ctx, seg.get(0)?).await?;
    let sid = message_sid(&seg)?;
    reject_media(&p)?;
    let current = app
        .store
        .fetch_message(
            &caller.service.account_sid,
            &caller.service.sid,
            &seen.channel_ref(),
            &sid,
        )
        .await?;
    let update = MessageUpdate {
        body: body_param(&p)?,
        attributes: attributes(&p)?,
        last_updated_by: Some(caller.identity().to_owned()),
        ..MessageUpdate::default()
    };
    let perms = permissions(&app, &caller, seen.member.as_ref()).await?;
    let own = current.from == caller.identity();
    if update.body.is_some() {
        perms.require(if own {
            &["editOwnMessage", "editAnyMessage"]
        } else {
            &["editAnyMessage"]
        })?;
    }
    if update.attributes.is_some() {
        perms.require(if own {
            &[
                "editOwnMessageAttributes",
                "editOwnMessage",
                "editAnyMessageAttributes",
                "editAnyMessage",
            ]
        } else {
            &["editAnyMessageAttributes", "editAnyMessage"]
        })?;
    }
    let m = crate::actions::update_message(
        &app,
        &caller.service.account_sid,
        &caller.service.sid,
        &seen.channel_ref(),
        &sid,
        update,
        &caller.origin(),
    )
    .await?;
    Ok(Json(wire::message(&app, &m)))
}

/// `DELETE …/Messages/{IM}` — the author needs `deleteOwnMessage`, anyone else
/// `deleteAnyMessage`.
pub(super) async fn remove(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
) -> Result<StatusCode, ApiError> {
    let (caller, seen) = Caller::in_channel(&app, ctx, seg.get(0)?).await?;
    let sid = message_sid(&seg)?;
    let current = app
        .store
        .fetch_message(
            &caller.service.account_sid,
            &caller.service.sid,
            &seen.channel_ref(),
            &sid,
        )
        .await?;
    let perms = permissions(&app, &caller, seen.member.as_ref()).await?;
    if current.from == caller.identity() {
        perms.require(&["deleteOwnMessage", "deleteAnyMessage"])?;
    } else {
        perms.require(&["deleteAnyMessage"])?;
    }
    crate::actions::delete_message(
        &app,
        &caller.service.account_sid,
        &caller.service.sid,
        &seen.channel_ref(),
        &sid,
        &caller.origin(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
