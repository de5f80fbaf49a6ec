//! What a client may do (service-defaults.md §1–§2): the permissions of its deployment role (the
//! user's role, else the service's `default_service_role_sid`) together with those of its channel
//! role (its membership's role) in the channel concerned. A refusal is **403 with Chat code
//! 50107** "User not authorized for command" (the code Twilio's error catalogue gives for a
//! runtime permission refusal; docs/live-clients.md "Client API").
//!
//! Private channels are visible to their members, their invitees and their creator only: to
//! anyone else they do not exist (404, as an unknown channel).

use axum::http::StatusCode;
use parley_core::channel::{Channel, ChannelRef, ChannelType, Invite, Member, MemberRef};
use parley_core::paging::PageRequest;
use parley_core::role::Role;
use parley_core::store::StoreError;
use parley_core::RoleSid;

use super::Caller;
use crate::error::ApiError;
use crate::AppState;

/// Chat's code for a permission refusal.
pub(crate) const CODE_NOT_AUTHORIZED: u32 = 50107;

/// The refusal answer.
pub(crate) fn refused(permission: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        CODE_NOT_AUTHORIZED,
        format!("User not authorized for command: missing permission {permission}"),
    )
}

/// A role's permissions (a role that no longer exists grants nothing).
async fn role_permissions(
    app: &AppState,
    caller: &Caller,
    role: Option<&RoleSid>,
) -> Result<Vec<String>, ApiError> {
    let Some(role) = role else {
        return Ok(Vec::new());
    };
    match app
        .store
        .fetch_role(&caller.service.account_sid, &caller.service.sid, role)
        .await
    {
        Ok(Role { permissions, .. }) => Ok(permissions),
        Err(StoreError::NotFound) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The caller's permissions, service-wide and (with `member`) in one channel.
pub(crate) struct Perms(Vec<String>);

impl Perms {
    /// Whether any of `names` is granted.
    pub(crate) fn has_any(&self, names: &[&str]) -> bool {
        self.0.iter().any(|p| names.contains(&p.as_str()))
    }

    /// `Ok` when any of `names` is granted, else the refusal naming the first.
    pub(crate) fn require(&self, names: &[&str]) -> Result<(), ApiError> {
        if self.has_any(names) {
            Ok(())
        } else {
            Err(refused(names.first().copied().unwrap_or("unknown")))
        }
    }
}

/// The caller's permissions: its deployment role's, plus `member`'s channel role's.
pub(crate) async fn permissions(
    app: &AppState,
    caller: &Caller,
    member: Option<&Member>,
) -> Result<Perms, ApiError> {
    let user = caller.user(app).await?;
    let deployment = user
        .and_then(|u| u.role_sid)
        .or_else(|| caller.service.default_service_role_sid.clone());
    let mut all = role_permissions(app, caller, deployment.as_ref()).await?;
    if let Some(m) = member {
        all.extend(role_permissions(app, caller, m.role_sid.as_ref()).await?);
    }
    Ok(Perms(all))
}

/// A channel as the caller sees it: the channel, the caller's membership and pending invite.
pub(crate) struct Seen {
    pub channel: Channel,
    pub member: Option<Member>,
    pub invite: Option<Invite>,
}

impl Seen {
    /// The channel by SID, for store calls.
    pub(crate) fn channel_ref(&self) -> ChannelRef {
        ChannelRef::Sid(self.channel.sid.clone())
    }
}

/// `identity`'s membership of `channel`, if any.
pub(crate) async fn membership(
    app: &AppState,
    caller: &Caller,
    channel: &ChannelRef,
    identity: &str,
) -> Result<Option<Member>, ApiError> {
    match app
        .store
        .fetch_member(
            &caller.service.account_sid,
            &caller.service.sid,
            channel,
            &MemberRef::Identity(identity.to_owned()),
        )
        .await
    {
        Ok(m) => Ok(Some(m)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `identity`'s pending invite to `channel`, if any.
pub(crate) async fn invitation(
    app: &AppState,
    caller: &Caller,
    channel: &ChannelRef,
    identity: &str,
) -> Result<Option<Invite>, ApiError> {
    let page = app
        .store
        .list_invites(
            &caller.service.account_sid,
            &caller.service.sid,
            channel,
            &[identity.to_owned()],
            &PageRequest::first(1),
        )
        .await?;
    Ok(page.items.into_iter().next())
}

/// The channel named by `segment` (SID or unique name) as the caller sees it; a private channel
/// the caller neither belongs to, nor is invited to, nor created is a 404.
pub(crate) async fn see_channel(
    app: &AppState,
    caller: &Caller,
    segment: &str,
) -> Result<Seen, ApiError> {
    let channel = app
        .store
        .fetch_channel(
            &caller.service.account_sid,
            &caller.service.sid,
            &ChannelRef::parse(segment),
        )
        .await?;
    let by_sid = ChannelRef::Sid(channel.sid.clone());
    let member = membership(app, caller, &by_sid, caller.identity()).await?;
    let invite = if member.is_none() {
        invitation(app, caller, &by_sid, caller.identity()).await?
    } else {
        None
    };
    let creator = channel.created_by.as_deref() == Some(caller.identity());
    if channel.channel_type == ChannelType::Private
        && member.is_none()
        && invite.is_none()
        && !creator
    {
        return Err(ApiError::not_found());
    }
    Ok(Seen {
        channel,
        member,
        invite,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_granted_permission_suffices_and_refusals_are_403_50107() {
        let p = Perms(vec!["sendMessage".into(), "editOwnMessage".into()]);
        assert!(p.require(&["editAnyMessage", "editOwnMessage"]).is_ok());
        let e = p.require(&["deleteAnyMessage"]).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, 50107));
        assert!(Perms(Vec::new()).require(&[]).is_err());
    }
}
