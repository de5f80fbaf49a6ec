//! Participants (members) and invites of a channel (calls 10–14).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::channel::{ChannelType, Member, MemberRef, MemberUpdate};
use parley_core::store::StoreError;
use parley_core::RoleSid;
use serde_json::Value;

use super::perms::{invitation, permissions, Seen};
use super::{wire, Body, Caller};
use crate::error::ApiError;
use crate::live::Client;
use crate::v2::{attributes, check_identity, Segments};
use crate::AppState;

/// The channel role `identity` gets on joining `seen`'s channel: the role of its invite, else
/// the creator role for the channel's creator, else the default channel role (`None`).
fn joining_role(
    caller: &Caller,
    seen: &Seen,
    identity: &str,
    invite_role: Option<RoleSid>,
) -> Option<RoleSid> {
    invite_role.or_else(|| {
        (seen.channel.created_by.as_deref() == Some(identity))
            .then(|| caller.service.default_channel_creator_role_sid.clone())
            .flatten()
    })
}

/// `POST …/Participants` {identity} — join (the caller's own identity: `joinChannel`, or an
/// invite; a private channel needs an invite unless the caller created it) or add someone else
/// (`addMember`).
pub(super) async fn add(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
    Body(p): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (caller, seen) = Caller::in_channel(&app, ctx, seg.get(0)?).await?;
    let identity = p
        .string("Identity")
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| caller.identity().to_owned());
    check_identity(&identity, "Identity")?;
    let perms = permissions(&app, &caller, seen.member.as_ref()).await?;
    let invite_role = if identity == caller.identity() {
        let invited = seen.invite.is_some();
        let creator = seen.channel.created_by.as_deref() == Some(caller.identity());
        if seen.channel.channel_type == ChannelType::Private && !invited && !creator {
            perms.require(&["addMember"])?;
        } else if !invited {
            perms.require(&["joinChannel"])?;
        }
        caller.ensure_user(&app).await?;
        seen.invite.as_ref().and_then(|i| i.role_sid.clone())
    } else {
        perms.require(&["addMember"])?;
        invitation(&app, &caller, &seen.channel_ref(), &identity)
            .await?
            .and_then(|i| i.role_sid)
    };
    let role = joining_role(&caller, &seen, &identity, invite_role);
    let new = crate::actions::NewMember {
        identity,
        role_sid: role,
        attributes: attributes(&p)?,
        last_consumed_message_index: None,
        last_consumption_timestamp: None,
        date_created: None,
        date_updated: None,
    };
    let member = crate::actions::add_member(
        &app,
        &caller.service,
        &seen.channel,
        new,
        None,
        &caller.origin(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(wire::member(&app, &member))))
}

/// The member named by a path segment (SID or identity) in `seen`'s channel.
async fn target(
    app: &AppState,
    caller: &Caller,
    seen: &Seen,
    segment: &str,
) -> Result<Member, ApiError> {
    Ok(app
        .store
        .fetch_member(
            &caller.service.account_sid,
            &caller.service.sid,
            &seen.channel_ref(),
            &MemberRef::parse(segment),
        )
        .await?)
}

/// `POST …/Participants/{MB or identity}` {attributes} — `editOwnMemberAttributes` for the
/// caller's own membership, `editAnyMemberAttributes` for another's.
pub(super) async fn update(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
    Body(p): Body,
) -> Result<Json<Value>, ApiError> {
    let (caller, seen) = Caller::in_channel(&app, ctx, seg.get(0)?).await?;
    let member = target(&app, &caller, &seen, seg.get(1)?).await?;
    let update = MemberUpdate {
        attributes: attributes(&p)?,
        ..MemberUpdate::default()
    };
    let perms = permissions(&app, &caller, seen.member.as_ref()).await?;
    if member.identity == caller.identity() {
        perms.require(&["editOwnMemberAttributes", "editAnyMemberAttributes"])?;
    } else {
        perms.require(&["editAnyMemberAttributes"])?;
    }
    let m = crate::actions::update_member(
        &app,
        &caller.service.account_sid,
        &caller.service.sid,
        &seen.channel_ref(),
        &MemberRef::Sid(member.sid.clone()),
        update,
        &caller.origin(),
    )
    .await?;
    Ok(Json(wire::member(&app, &m)))
}

/// `DELETE …/Participants/{MB or identity}` — leave (`leaveChannel`) or remove another
/// (`removeMember`).
pub(super) async fn remove(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
) -> Result<StatusCode, ApiError> {
    let (caller, seen) = Caller::in_channel(&app, ctx, seg.get(0)?).await?;
    let member = target(&app, &caller, &seen, seg.get(1)?).await?;
    let perms = permissions(&app, &caller, seen.member.as_ref()).await?;
    if member.identity == caller.identity() {
        perms.require(&["leaveChannel"])?;
    } else {
        perms.require(&["removeMember"])?;
    }
    crate::actions::remove_member(
        &app,
        &caller.service.account_sid,
        &caller.service.sid,
        &seen.channel_ref(),
        &MemberRef::Sid(member.sid.clone()),
        None,
        &caller.origin(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/Invites` {identity} — needs `inviteMember`; the invitee must be a user (404).
pub(super) async fn invite(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
    Body(p): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (caller, seen) = Caller::in_channel(&app, ctx, seg.get(0)?).await?;
    let identity = p.required("Identity")?;
    check_identity(&identity, "Identity")?;
    permissions(&app, &caller, seen.member.as_ref())
        .await?
        .require(&["inviteMember"])?;
    let invite = crate::actions::create_invite(
        &app,
        &caller.service,
        &seen.channel,
        identity,
        None,
        Some(caller.identity().to_owned()),
        &caller.origin(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "sid": invite.sid.as_str(),
            "channel_sid": invite.channel_sid.as_str(),
            "conversation_sid": invite.channel_sid.as_str(),
            "identity": invite.identity,
            "role_sid": invite.role_sid.as_ref().map(|r| r.as_str()),
            "created_by": invite.created_by,
            "date_created": crate::v2::date(invite.date_created),
        })),
    ))
}

/// `DELETE …/Invites/{identity}` — decline one's own invite, or (with `inviteMember` or
/// `removeMember`) withdraw another's.
pub(super) async fn uninvite(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
) -> Result<StatusCode, ApiError> {
    let (caller, seen) = Caller::in_channel(&app, ctx, seg.get(0)?).await?;
    let identity = seg.get(1)?.to_owned();
    if identity != caller.identity() {
        permissions(&app, &caller, seen.member.as_ref())
            .await?
            .require(&["inviteMember", "removeMember"])?;
    }
    let Some(invite) = invitation(&app, &caller, &seen.channel_ref(), &identity).await? else {
        return Err(ApiError::not_found());
    };
    match app
        .store
        .delete_invite(
            &caller.service.account_sid,
            &caller.service.sid,
            &seen.channel_ref(),
            &invite.sid,
            &caller.origin(),
        )
        .await
    {
        Ok(()) | Err(StoreError::NotFound) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(e.into()),
    }
}
