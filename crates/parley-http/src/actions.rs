//! Chat changes shared by both doors — the REST API (`v2`) and the chat client API
//! (`live::client_v1`): each runs the change's pre-event webhook when one is due (see
//! [`crate::pre_hooks::pre_hook`]), applies the webhook's modifications, then makes the change
//! in the store with the caller's [`Origin`]. Parsing, permissions and the wire form stay with
//! each door.

use parley_core::channel::{
    Channel, ChannelRef, ChannelType, ChannelUpdate, Invite, Member, MemberLimits, MemberRef,
    MemberUpdate, Message, MessageUpdate, NotificationLevel,
};
use parley_core::event::Origin;
use parley_core::service::Service;
use parley_core::user::{User, UserRef, UserUpdate};
use parley_core::{
    AccountSid, ChannelSid, InviteSid, MemberSid, MessageSid, RoleSid, ServiceSid, Timestamp,
};
use parley_webhooks::PreEvent;

use crate::error::ApiError;
use crate::pre_hooks::{
    modify_channel_update, modify_message_update, modify_user_update, pre_hook, proposed_channel,
    proposed_member, proposed_message, proposed_user,
};
use crate::AppState;

/// A channel to create.
pub(crate) struct NewChannel {
    pub friendly_name: Option<String>,
    pub unique_name: Option<String>,
    pub attributes: Option<String>,
    pub channel_type: ChannelType,
    /// `system` when `None`.
    pub created_by: Option<String>,
    pub date_created: Option<Timestamp>,
    pub date_updated: Option<Timestamp>,
}

/// Create a channel (pre-event `onChannelAdd`).
pub(crate) async fn create_channel(
    app: &AppState,
    service: &Service,
    new: NewChannel,
    origin: &Origin,
) -> Result<Channel, ApiError> {
    let NewChannel {
        mut friendly_name,
        mut unique_name,
        attributes: mut attrs,
        channel_type,
        created_by,
        date_created,
        date_updated,
    } = new;
    let created_by = Some(created_by.unwrap_or_else(|| "system".to_owned()));
    if let Some(pre) = pre_hook(
        app,
        &service.account_sid,
        &service.sid,
        origin,
        "onChannelAdd",
    )
    .await?
    {
        let c = pre
            .run(PreEvent::ChannelAdd {
                friendly_name: friendly_name.as_deref(),
                unique_name: unique_name.as_deref(),
                attributes: attrs.as_deref(),
                channel_type,
                created_by: created_by.as_deref(),
            })
            .await?;
        friendly_name = c.friendly_name.unwrap_or(friendly_name);
        unique_name = c.unique_name.unwrap_or(unique_name);
        attrs = c.attributes.or(attrs);
    }
    let created = date_created.unwrap_or_else(Timestamp::now);
    let channel = Channel {
        sid: ChannelSid::generate(),
        account_sid: service.account_sid.clone(),
        service_sid: service.sid.clone(),
        friendly_name,
        unique_name,
        attributes: attrs,
        channel_type,
        created_by,
        members_count: 0,
        messages_count: 0,
        last_message_sid: None,
        last_message_index: None,
        date_created: created,
        date_updated: date_updated.unwrap_or(created),
    };
    Ok(app.store.create_channel(&channel, origin).await?)
}

/// Update a channel (pre-event `onChannelUpdate`).
pub(crate) async fn update_channel(
    app: &AppState,
    account: &AccountSid,
    service: &ServiceSid,
    channel: &ChannelRef,
    mut update: ChannelUpdate,
    origin: &Origin,
) -> Result<Channel, ApiError> {
    if let Some(pre) = pre_hook(app, account, service, origin, "onChannelUpdate").await? {
        let current = app.store.fetch_channel(account, service, channel).await?;
        let proposed = proposed_channel(current, &update);
        let c = pre.run(PreEvent::ChannelUpdate(&proposed)).await?;
        modify_channel_update(&mut update, c);
    }
    Ok(app
        .store
        .update_channel(account, service, channel, &update, Timestamp::now(), origin)
        .await?)
}

/// Destroy a channel with its members, messages and invites (pre-event `onChannelDestroy`).
pub(crate) async fn delete_channel(
    app: &AppState,
    account: &AccountSid,
    service: &ServiceSid,
    channel: &ChannelRef,
    origin: &Origin,
) -> Result<(), ApiError> {
    if let Some(pre) = pre_hook(app, account, service, origin, "onChannelDestroy").await? {
        let current = app.store.fetch_channel(account, service, channel).await?;
        pre.run(PreEvent::ChannelDestroy(&current)).await?;
    }
    Ok(app
        .store
        .delete_channel(account, service, channel, origin)
        .await?)
}

/// A member to add.
pub(crate) struct NewMember {
    pub identity: String,
    /// The service's default channel role when `None`.
    pub role_sid: Option<RoleSid>,
    pub attributes: Option<String>,
    pub last_consumed_message_index: Option<i64>,
    pub last_consumption_timestamp: Option<Timestamp>,
    pub date_created: Option<Timestamp>,
    pub date_updated: Option<Timestamp>,
}

/// Add a member to `channel`, creating the user when the identity is new (pre-event
/// `onMemberAdd`; the service's counter limits apply).
pub(crate) async fn add_member(
    app: &AppState,
    service: &Service,
    channel: &Channel,
    new: NewMember,
    actor: Option<&str>,
    origin: &Origin,
) -> Result<Member, ApiError> {
    let role = new
        .role_sid
        .or_else(|| service.default_channel_role_sid.clone());
    let mut attrs = new.attributes;
    if let Some(pre) = pre_hook(
        app,
        &service.account_sid,
        &service.sid,
        origin,
        "onMemberAdd",
    )
    .await?
    {
        let c = pre
            .run(PreEvent::MemberAdd {
                channel_sid: &channel.sid,
                identity: &new.identity,
                role_sid: role.as_ref(),
            })
            .await?;
        attrs = c.attributes.or(attrs);
    }
    let now = Timestamp::now();
    let (user, _) = app
        .store
        .get_or_create_user(&crate::v2::new_user(service, &new.identity, now), origin)
        .await?;
    let created = new.date_created.unwrap_or(now);
    let horizon = new.last_consumed_message_index;
    let member = Member {
        sid: MemberSid::generate(),
        account_sid: service.account_sid.clone(),
        service_sid: service.sid.clone(),
        channel_sid: channel.sid.clone(),
        user_sid: user.sid,
        identity: user.identity,
        role_sid: role,
        last_consumed_message_index: horizon,
        last_consumption_timestamp: new.last_consumption_timestamp.or(horizon.map(|_| now)),
        attributes: attrs,
        notification_level: NotificationLevel::Default,
        date_created: created,
        date_updated: new.date_updated.unwrap_or(created),
    };
    let limits = MemberLimits {
        channel_members: service.settings.limits.channel_members,
        user_channels: service.settings.limits.user_channels,
    };
    Ok(app
        .store
        .create_member(&member, &limits, actor, origin)
        .await?)
}

/// Update a member (pre-event `onMemberUpdate`, which may change the attributes).
#[allow(clippy::too_many_arguments)] // the row's address, the change and the origin
pub(crate) async fn update_member(
    app: &AppState,
    account: &AccountSid,
    service: &ServiceSid,
    channel: &ChannelRef,
    member: &MemberRef,
    mut update: MemberUpdate,
    origin: &Origin,
) -> Result<Member, ApiError> {
    if let Some(pre) = pre_hook(app, account, service, origin, "onMemberUpdate").await? {
        let current = app
            .store
            .fetch_member(account, service, channel, member)
            .await?;
        let proposed = proposed_member(current, &update);
        let c = pre.run(PreEvent::MemberUpdate(&proposed)).await?;
        update.attributes = c.attributes.or(update.attributes);
    }
    Ok(app
        .store
        .update_member(
            account,
            service,
            channel,
            member,
            &update,
            Timestamp::now(),
            origin,
        )
        .await?)
}

/// Remove a member (pre-event `onMemberRemove`).
pub(crate) async fn remove_member(
    app: &AppState,
    account: &AccountSid,
    service: &ServiceSid,
    channel: &ChannelRef,
    member: &MemberRef,
    actor: Option<&str>,
    origin: &Origin,
) -> Result<(), ApiError> {
    if let Some(pre) = pre_hook(app, account, service, origin, "onMemberRemove").await? {
        let current = app
            .store
            .fetch_member(account, service, channel, member)
            .await?;
        pre.run(PreEvent::MemberRemove(&current)).await?;
    }
    Ok(app
        .store
        .delete_member(
            account,
            service,
            channel,
            member,
            actor,
            Timestamp::now(),
            origin,
        )
        .await?)
}

/// A message to post.
pub(crate) struct NewMessage {
    pub body: String,
    pub attributes: Option<String>,
    pub from: String,
    pub last_updated_by: Option<String>,
    pub date_created: Option<Timestamp>,
    pub date_updated: Option<Timestamp>,
}

/// Post a message (pre-event `onMessageSend`, which may change body, attributes and author).
pub(crate) async fn post_message(
    app: &AppState,
    service: &Service,
    channel: &ChannelRef,
    new: NewMessage,
    origin: &Origin,
) -> Result<Message, ApiError> {
    let NewMessage {
        mut body,
        attributes: mut attrs,
        mut from,
        last_updated_by,
        date_created,
        date_updated,
    } = new;
    if let Some(pre) = pre_hook(
        app,
        &service.account_sid,
        &service.sid,
        origin,
        "onMessageSend",
    )
    .await?
    {
        let ch = app
            .store
            .fetch_channel(&service.account_sid, &service.sid, channel)
            .await?;
        let c = pre
            .run(PreEvent::MessageSend {
                channel_sid: &ch.sid,
                body: Some(&body),
                attributes: attrs.as_deref(),
                from: &from,
            })
            .await?;
        body = c.body.unwrap_or(body);
        attrs = c.attributes.or(attrs);
        from = c.from.unwrap_or(from);
    }
    let created = date_created.unwrap_or_else(Timestamp::now);
    let message = Message {
        sid: MessageSid::generate(),
        account_sid: service.account_sid.clone(),
        service_sid: service.sid.clone(),
        // Resolved by the store from `channel`.
        channel_sid: ChannelSid::generate(),
        index: 0,
        from,
        body: Some(body),
        attributes: attrs,
        last_updated_by,
        was_edited: false,
        date_created: created,
        date_updated: date_updated.unwrap_or(created),
    };
    Ok(app.store.create_message(channel, &message, origin).await?)
}

/// Update a message (pre-event `onMessageUpdate`).
pub(crate) async fn update_message(
    app: &AppState,
    account: &AccountSid,
    service: &ServiceSid,
    channel: &ChannelRef,
    sid: &MessageSid,
    mut update: MessageUpdate,
    origin: &Origin,
) -> Result<Message, ApiError> {
    if let Some(pre) = pre_hook(app, account, service, origin, "onMessageUpdate").await? {
        let current = app
            .store
            .fetch_message(account, service, channel, sid)
            .await?;
        let proposed = proposed_message(current, &update);
        let c = pre.run(PreEvent::MessageUpdate(&proposed)).await?;
        modify_message_update(&mut update, c);
    }
    Ok(app
        .store
        .update_message(
            account,
            service,
            channel,
            sid,
            &update,
            Timestamp::now(),
            origin,
        )
        .await?)
}

/// Delete a message (pre-event `onMessageRemove`).
pub(crate) async fn delete_message(
    app: &AppState,
    account: &AccountSid,
    service: &ServiceSid,
    channel: &ChannelRef,
    sid: &MessageSid,
    origin: &Origin,
) -> Result<(), ApiError> {
    if let Some(pre) = pre_hook(app, account, service, origin, "onMessageRemove").await? {
        let current = app
            .store
            .fetch_message(account, service, channel, sid)
            .await?;
        pre.run(PreEvent::MessageRemove(&current)).await?;
    }
    Ok(app
        .store
        .delete_message(account, service, channel, sid, origin)
        .await?)
}

/// Update a user (pre-event `onUserUpdate`).
pub(crate) async fn update_user(
    app: &AppState,
    account: &AccountSid,
    service: &ServiceSid,
    user: &UserRef,
    mut update: UserUpdate,
    origin: &Origin,
) -> Result<User, ApiError> {
    if let Some(pre) = pre_hook(app, account, service, origin, "onUserUpdate").await? {
        let current = app.store.fetch_user(account, service, user).await?;
        let proposed = proposed_user(current, &update, Timestamp::now());
        let c = pre.run(PreEvent::UserUpdate(&proposed)).await?;
        modify_user_update(&mut update, c);
    }
    Ok(app
        .store
        .update_user(account, service, user, &update, Timestamp::now(), origin)
        .await?)
}

/// Invite an existing user (404 when the identity has no user, as Twilio answers).
pub(crate) async fn create_invite(
    app: &AppState,
    service: &Service,
    channel: &Channel,
    identity: String,
    role_sid: Option<RoleSid>,
    created_by: Option<String>,
    origin: &Origin,
) -> Result<Invite, ApiError> {
    let role = role_sid.or_else(|| service.default_channel_role_sid.clone());
    let user = app
        .store
        .fetch_user(
            &service.account_sid,
            &service.sid,
            &UserRef::Identity(identity),
        )
        .await?;
    let now = Timestamp::now();
    let invite = Invite {
        sid: InviteSid::generate(),
        account_sid: service.account_sid.clone(),
        service_sid: service.sid.clone(),
        channel_sid: channel.sid.clone(),
        identity: user.identity,
        role_sid: role,
        created_by,
        date_created: now,
        date_updated: now,
    };
    Ok(app
        .store
        .create_invite(&ChannelRef::Sid(channel.sid.clone()), &invite, origin)
        .await?)
}
