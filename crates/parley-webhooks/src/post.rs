//! Post-events (webhooks.md §2, §3): one change-log [`Event`] → the Twilio event name and its
//! form parameters.

use parley_core::channel::{Channel, Member, Message};
use parley_core::event::{Event, EventKind, Resource, Source};
use parley_core::user::User;
use parley_core::ChannelSid;

use crate::params::{attributes, ParamList};

/// Who made a change over REST when the change names nobody (`ModifiedBy`, `RemovedBy`): the
/// same default Chat uses for REST-created messages' `From` and channels' `CreatedBy`.
pub const REST_ACTOR: &str = "system";

/// A post-event ready to send: its name, where it happened and its parameters (without
/// `RetryCount`, which the sender adds per attempt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostEvent {
    /// Twilio event name, e.g. `onMessageSent`.
    pub event_type: &'static str,
    /// The channel, for channel, member and message events (selects channel webhooks).
    pub channel_sid: Option<ChannelSid>,
    /// Whether webhooks may fire at all: always for SDK changes, over REST only with
    /// `X-Twilio-Webhook-Enabled: true` (webhooks.md §7). [`crate::service_post_target`] and
    /// [`crate::channel_hook_wants`] check it.
    pub webhooks: bool,
    /// Form parameters in a stable order (§3(a) and §3(b)).
    pub params: Vec<(String, String)>,
    /// `onMessageSent` only: the message body, which `trigger` channel webhooks match.
    pub body_for_triggers: Option<String>,
}

impl PostEvent {
    /// The value of a parameter (first occurrence).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The post-event of a change-log event, or `None` when the event has no post-event (invites,
/// `user_removed`), carries no state (written before the v5 log), or its state is not the
/// resource its kind implies.
pub fn post_event(event: &Event) -> Option<PostEvent> {
    let state = event.state.as_ref()?;
    let mut p = ParamList::default();
    let event_type = match (event.kind, state) {
        (EventKind::NewMessage, Resource::Message(m)) => {
            p.put("EventType", "onMessageSent");
            message_params(&mut p, m, true);
            p.date("DateCreated", m.date_created);
            "onMessageSent"
        }
        (EventKind::MessageUpdated, Resource::Message(m)) => {
            p.put("EventType", "onMessageUpdated");
            message_params(&mut p, m, true);
            p.put(
                "ModifiedBy",
                actor_or_default(event, m.last_updated_by.as_deref()),
            )
            .date("DateCreated", m.date_created)
            .date("DateUpdated", m.date_updated);
            "onMessageUpdated"
        }
        (EventKind::MessageRemoved, Resource::Message(m)) => {
            p.put("EventType", "onMessageRemoved");
            message_params(&mut p, m, true);
            p.put("RemovedBy", actor_or_default(event, None))
                .date("DateCreated", m.date_created)
                .date("DateRemoved", event.date_created);
            "onMessageRemoved"
        }
        (EventKind::ChannelAdded, Resource::Channel(c)) => {
            p.put("EventType", "onChannelAdded");
            channel_params(&mut p, c);
            "onChannelAdded"
        }
        (EventKind::ChannelUpdated, Resource::Channel(c)) => {
            p.put("EventType", "onChannelUpdated");
            channel_params(&mut p, c);
            p.date("DateUpdated", c.date_updated);
            "onChannelUpdated"
        }
        (EventKind::ChannelRemoved, Resource::Channel(c)) => {
            p.put("EventType", "onChannelDestroyed");
            channel_params(&mut p, c);
            p.date("DateDestroyed", event.date_created);
            "onChannelDestroyed"
        }
        (EventKind::AddedToChannel, Resource::Member(m)) => {
            p.put("EventType", "onMemberAdded");
            member_params(&mut p, m);
            p.put("Reason", member_reason(event, m, "ADDED", "JOINED"))
                .date("DateCreated", m.date_created);
            "onMemberAdded"
        }
        (EventKind::MemberUpdated, Resource::Member(m)) => {
            p.put("EventType", "onMemberUpdated");
            member_params(&mut p, m);
            p.put("Attributes", attributes(m.attributes.as_deref()))
                .opt(
                    "LastConsumedMessageIndex",
                    m.last_consumed_message_index.map(|i| i.to_string()),
                )
                .date("DateCreated", m.date_created)
                .date("DateUpdated", m.date_updated);
            "onMemberUpdated"
        }
        (EventKind::RemovedFromChannel, Resource::Member(m)) => {
            p.put("EventType", "onMemberRemoved");
            member_params(&mut p, m);
            p.put("Reason", member_reason(event, m, "REMOVED", "LEFT"))
                .put("Attributes", attributes(m.attributes.as_deref()))
                .date("DateCreated", m.date_created)
                .date("DateRemoved", event.date_created);
            "onMemberRemoved"
        }
        (EventKind::UserAdded, Resource::User(u)) => {
            p.put("EventType", "onUserAdded");
            user_params(&mut p, u);
            "onUserAdded"
        }
        (EventKind::UserUpdated, Resource::User(u)) => {
            p.put("EventType", "onUserUpdated");
            user_params(&mut p, u);
            p.date("DateUpdated", u.date_updated);
            "onUserUpdated"
        }
        _ => return None,
    };
    let client_identity = match event.source {
        Source::Sdk => event.actor.as_deref(),
        Source::Api => None,
    };
    p.common(
        &event.account_sid,
        &event.service_sid,
        event.source,
        client_identity,
    );
    let body_for_triggers = match state {
        Resource::Message(m) if event.kind == EventKind::NewMessage => m.body.clone(),
        _ => None,
    };
    let channel_sid = match state {
        Resource::Channel(c) => Some(c.sid.clone()),
        Resource::Member(m) => Some(m.channel_sid.clone()),
        Resource::Message(m) => Some(m.channel_sid.clone()),
        _ => event.channel_sid.clone(),
    };
    Some(PostEvent {
        event_type,
        channel_sid,
        webhooks: event.webhooks,
        params: p.0,
        body_for_triggers,
    })
}

/// Who did it: the event's actor (the acting client, or who the request named), else `named`
/// (e.g. the message's `last_updated_by`), else [`REST_ACTOR`].
fn actor_or_default(event: &Event, named: Option<&str>) -> String {
    event
        .actor
        .as_deref()
        .or(named)
        .unwrap_or(REST_ACTOR)
        .to_owned()
}

/// `JOINED`/`LEFT` when a client acted on its own membership, `ADDED`/`REMOVED` otherwise (REST,
/// or a client adding or removing someone else).
fn member_reason(
    event: &Event,
    m: &Member,
    by_other: &'static str,
    by_self: &'static str,
) -> &'static str {
    match (event.source, event.actor.as_deref()) {
        (Source::Sdk, Some(actor)) if actor == m.identity => by_self,
        _ => by_other,
    }
}

pub(crate) fn message_params(p: &mut ParamList, m: &Message, with_index: bool) {
    p.put("MessageSid", m.sid.as_str());
    if with_index {
        p.put("Index", m.index.to_string());
    }
    p.put("ChannelSid", m.channel_sid.as_str())
        .opt("Body", m.body.as_deref())
        .put("Attributes", attributes(m.attributes.as_deref()))
        .put("From", m.from.as_str());
}

/// ChannelSid, Attributes, DateCreated, CreatedBy, FriendlyName, UniqueName, ChannelType.
pub(crate) fn channel_params(p: &mut ParamList, c: &Channel) {
    p.put("ChannelSid", c.sid.as_str());
    channel_fields(p, c);
    p.date("DateCreated", c.date_created);
}

/// Attributes, CreatedBy, FriendlyName, UniqueName, ChannelType.
fn channel_fields(p: &mut ParamList, c: &Channel) {
    p.put("Attributes", attributes(c.attributes.as_deref()))
        .opt("CreatedBy", c.created_by.as_deref())
        .opt("FriendlyName", c.friendly_name.as_deref())
        .opt("UniqueName", c.unique_name.as_deref())
        .put("ChannelType", c.channel_type.as_str());
}

/// MemberSid, ChannelSid, Identity, RoleSid.
fn member_params(p: &mut ParamList, m: &Member) {
    p.put("MemberSid", m.sid.as_str())
        .put("ChannelSid", m.channel_sid.as_str())
        .put("Identity", m.identity.as_str())
        .opt("RoleSid", m.role_sid.as_ref().map(|r| r.as_str()));
}

/// UserSid, Identity, FriendlyName, RoleSid, Attributes, DateCreated.
pub(crate) fn user_params(p: &mut ParamList, u: &User) {
    p.put("UserSid", u.sid.as_str())
        .put("Identity", u.identity.as_str())
        .opt("FriendlyName", u.friendly_name.as_deref())
        .opt("RoleSid", u.role_sid.as_ref().map(|r| r.as_str()))
        .put("Attributes", attributes(u.attributes.as_deref()))
        .date("DateCreated", u.date_created);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use parley_core::channel::{ChannelType, Invite, NotificationLevel};
    use parley_core::{
        AccountSid, InviteSid, MemberSid, MessageSid, RoleSid, ServiceSid, Timestamp, UserSid,
    };

    pub(crate) const AC: &str = "AC00000000000000000000000000000001";
    pub(crate) const IS: &str = "IS00000000000000000000000000000002";
    pub(crate) const CH: &str = "CH00000000000000000000000000000003";
    const IM: &str = "IM00000000000000000000000000000004";
    const MB: &str = "MB00000000000000000000000000000005";
    const US: &str = "US00000000000000000000000000000006";
    const RL: &str = "RL00000000000000000000000000000007";

    /// 2021-04-17T12:52:31.295Z
    pub(crate) fn t0() -> Timestamp {
        Timestamp::from_unix_micros(1_618_663_951_295_000)
    }
    /// 2021-04-17T12:53:00.001Z
    fn t1() -> Timestamp {
        Timestamp::from_unix_micros(1_618_663_980_001_000)
    }
    /// 2021-04-17T13:00:00.000Z
    fn t2() -> Timestamp {
        Timestamp::from_unix_secs(1_618_664_400)
    }

    pub(crate) fn message() -> Message {
        Message {
            sid: MessageSid::parse(IM).unwrap(),
            account_sid: AccountSid::parse(AC).unwrap(),
            service_sid: ServiceSid::parse(IS).unwrap(),
            channel_sid: ChannelSid::parse(CH).unwrap(),
            index: 7,
            from: "alice".into(),
            body: Some("Hello, world".into()),
            attributes: None,
            last_updated_by: None,
            was_edited: false,
            date_created: t0(),
            date_updated: t1(),
        }
    }

    pub(crate) fn channel() -> Channel {
        Channel {
            sid: ChannelSid::parse(CH).unwrap(),
            account_sid: AccountSid::parse(AC).unwrap(),
            service_sid: ServiceSid::parse(IS).unwrap(),
            friendly_name: Some("General".into()),
            unique_name: None,
            attributes: Some(r#"{"topic":"x"}"#.into()),
            channel_type: ChannelType::Private,
            created_by: Some("system".into()),
            members_count: 2,
            messages_count: 9,
            last_message_sid: None,
            last_message_index: None,
            date_created: t0(),
            date_updated: t1(),
        }
    }

    pub(crate) fn member(identity: &str) -> Member {
        Member {
            sid: MemberSid::parse(MB).unwrap(),
            account_sid: AccountSid::parse(AC).unwrap(),
            service_sid: ServiceSid::parse(IS).unwrap(),
            channel_sid: ChannelSid::parse(CH).unwrap(),
            user_sid: UserSid::parse(US).unwrap(),
            identity: identity.into(),
            role_sid: Some(RoleSid::parse(RL).unwrap()),
            last_consumed_message_index: None,
            last_consumption_timestamp: None,
            attributes: Some(r#"{"member_type":"agent"}"#.into()),
            notification_level: NotificationLevel::Default,
            date_created: t0(),
            date_updated: t1(),
        }
    }

    pub(crate) fn user() -> User {
        User {
            sid: UserSid::parse(US).unwrap(),
            account_sid: AccountSid::parse(AC).unwrap(),
            service_sid: ServiceSid::parse(IS).unwrap(),
            identity: "alice".into(),
            friendly_name: None,
            attributes: None,
            role_sid: Some(RoleSid::parse(RL).unwrap()),
            date_created: t0(),
            date_updated: t1(),
        }
    }

    pub(crate) fn event(
        kind: EventKind,
        state: Resource,
        source: Source,
        actor: Option<&str>,
    ) -> Event {
        let channel_sid = match &state {
            Resource::User(_) => None,
            _ => Some(ChannelSid::parse(CH).unwrap()),
        };
        Event {
            id: 1,
            seq: 1,
            kind,
            account_sid: AccountSid::parse(AC).unwrap(),
            service_sid: ServiceSid::parse(IS).unwrap(),
            channel_sid,
            channel_unique_name: None,
            channel_friendly_name: None,
            message_sid: None,
            message_index: None,
            body: None,
            member_sid: None,
            invite_sid: None,
            identity: None,
            actor: actor.map(str::to_owned),
            source,
            webhooks: true,
            state: Some(state),
            changed: vec![],
            channel_webhooks: vec![],
            channel_identities: None,
            date_created: t2(),
        }
    }

    fn pairs(p: &PostEvent) -> Vec<(&str, &str)> {
        p.params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn new_message_from_a_client_is_on_message_sent_with_the_captured_parameters() {
        let e = event(
            EventKind::NewMessage,
            Resource::Message(message()),
            Source::Sdk,
            Some("alice"),
        );
        let p = post_event(&e).unwrap();
        assert_eq!(p.event_type, "onMessageSent");
        assert_eq!(p.channel_sid.as_ref().map(|c| c.as_str()), Some(CH));
        assert_eq!(p.body_for_triggers.as_deref(), Some("Hello, world"));
        assert_eq!(
            pairs(&p),
            vec![
                ("EventType", "onMessageSent"),
                ("MessageSid", IM),
                ("Index", "7"),
                ("ChannelSid", CH),
                ("Body", "Hello, world"),
                ("Attributes", "{}"),
                ("From", "alice"),
                ("DateCreated", "2021-04-17T12:52:31.295Z"),
                ("AccountSid", AC),
                ("InstanceSid", IS),
                ("Source", "SDK"),
                ("ClientIdentity", "alice"),
            ]
        );
    }

    #[test]
    fn rest_events_say_api_and_carry_no_client_identity_nor_service_sid() {
        let e = event(
            EventKind::NewMessage,
            Resource::Message(message()),
            Source::Api,
            Some("alice"),
        );
        let p = post_event(&e).unwrap();
        assert_eq!(p.param("Source"), Some("API"));
        assert_eq!(p.param("ClientIdentity"), None);
        assert_eq!(p.param("ServiceSid"), None);
        assert_eq!(p.param("InstanceSid"), Some(IS));
        assert_eq!(
            p.param("RetryCount"),
            None,
            "the sender adds it per attempt"
        );
    }

    #[test]
    fn a_message_without_body_omits_body() {
        let mut m = message();
        m.body = None;
        let e = event(
            EventKind::NewMessage,
            Resource::Message(m),
            Source::Api,
            None,
        );
        let p = post_event(&e).unwrap();
        assert_eq!(p.param("Body"), None);
        assert_eq!(p.body_for_triggers, None);
    }

    #[test]
    fn message_updated_names_the_modifier_and_both_dates() {
        let mut m = message();
        m.body = Some("edited".into());
        m.attributes = Some(r#"{"k":1}"#.into());
        m.last_updated_by = Some("bob".into());
        // A client acting: the client.
        let e = event(
            EventKind::MessageUpdated,
            Resource::Message(m.clone()),
            Source::Sdk,
            Some("carol"),
        );
        let p = post_event(&e).unwrap();
        assert_eq!(p.event_type, "onMessageUpdated");
        assert_eq!(p.param("ModifiedBy"), Some("carol"));
        assert_eq!(p.param("Body"), Some("edited"));
        assert_eq!(p.param("Attributes"), Some(r#"{"k":1}"#));
        assert_eq!(p.param("Index"), Some("7"));
        assert_eq!(p.param("DateCreated"), Some("2021-04-17T12:52:31.295Z"));
        assert_eq!(p.param("DateUpdated"), Some("2021-04-17T12:53:00.001Z"));
        assert_eq!(p.body_for_triggers, None, "only new messages hit triggers");
        // REST without an actor: the message's last editor, else "system".
        let e = event(
            EventKind::MessageUpdated,
            Resource::Message(m.clone()),
            Source::Api,
            None,
        );
        assert_eq!(post_event(&e).unwrap().param("ModifiedBy"), Some("bob"));
        m.last_updated_by = None;
        let e = event(
            EventKind::MessageUpdated,
            Resource::Message(m),
            Source::Api,
            None,
        );
        assert_eq!(
            post_event(&e).unwrap().param("ModifiedBy"),
            Some(REST_ACTOR)
        );
    }

    #[test]
    fn message_removed_is_dated_by_the_event() {
        let e = event(
            EventKind::MessageRemoved,
            Resource::Message(message()),
            Source::Api,
            None,
        );
        let p = post_event(&e).unwrap();
        assert_eq!(p.event_type, "onMessageRemoved");
        assert_eq!(p.param("RemovedBy"), Some("system"));
        assert_eq!(p.param("DateRemoved"), Some("2021-04-17T13:00:00.000Z"));
        assert_eq!(p.param("MessageSid"), Some(IM));
        assert_eq!(p.param("Body"), Some("Hello, world"));
        let e = event(
            EventKind::MessageRemoved,
            Resource::Message(message()),
            Source::Sdk,
            Some("alice"),
        );
        assert_eq!(post_event(&e).unwrap().param("RemovedBy"), Some("alice"));
    }

    #[test]
    fn channel_events_carry_the_channel_and_their_own_date() {
        let e = event(
            EventKind::ChannelAdded,
            Resource::Channel(channel()),
            Source::Api,
            None,
        );
        let p = post_event(&e).unwrap();
        assert_eq!(
            pairs(&p),
            vec![
                ("EventType", "onChannelAdded"),
                ("ChannelSid", CH),
                ("Attributes", r#"{"topic":"x"}"#),
                ("CreatedBy", "system"),
                ("FriendlyName", "General"),
                ("ChannelType", "private"),
                ("DateCreated", "2021-04-17T12:52:31.295Z"),
                ("AccountSid", AC),
                ("InstanceSid", IS),
                ("Source", "API"),
            ],
            "UniqueName is unset, so absent"
        );
        let e = event(
            EventKind::ChannelUpdated,
            Resource::Channel(channel()),
            Source::Api,
            None,
        );
        let p = post_event(&e).unwrap();
        assert_eq!(p.event_type, "onChannelUpdated");
        assert_eq!(p.param("DateUpdated"), Some("2021-04-17T12:53:00.001Z"));
        let e = event(
            EventKind::ChannelRemoved,
            Resource::Channel(channel()),
            Source::Api,
            None,
        );
        let p = post_event(&e).unwrap();
        assert_eq!(p.event_type, "onChannelDestroyed");
        assert_eq!(p.param("DateDestroyed"), Some("2021-04-17T13:00:00.000Z"));
        assert_eq!(p.channel_sid.as_ref().map(|c| c.as_str()), Some(CH));
    }

    #[test]
    fn member_added_reason_is_joined_only_when_a_client_adds_itself() {
        let reason = |source, actor| {
            let e = event(
                EventKind::AddedToChannel,
                Resource::Member(member("alice")),
                source,
                actor,
            );
            post_event(&e).unwrap().param("Reason").map(str::to_owned)
        };
        assert_eq!(
            reason(Source::Sdk, Some("alice")).as_deref(),
            Some("JOINED")
        );
        assert_eq!(reason(Source::Sdk, Some("bob")).as_deref(), Some("ADDED"));
        assert_eq!(reason(Source::Api, Some("alice")).as_deref(), Some("ADDED"));
        assert_eq!(reason(Source::Api, None).as_deref(), Some("ADDED"));
        let e = event(
            EventKind::AddedToChannel,
            Resource::Member(member("alice")),
            Source::Api,
            None,
        );
        let p = post_event(&e).unwrap();
        assert_eq!(
            pairs(&p),
            vec![
                ("EventType", "onMemberAdded"),
                ("MemberSid", MB),
                ("ChannelSid", CH),
                ("Identity", "alice"),
                ("RoleSid", RL),
                ("Reason", "ADDED"),
                ("DateCreated", "2021-04-17T12:52:31.295Z"),
                ("AccountSid", AC),
                ("InstanceSid", IS),
                ("Source", "API"),
            ]
        );
    }

    #[test]
    fn member_removed_matches_the_captured_parameters() {
        // S4 capture: EventType, InstanceSid, MemberSid, Attributes, DateCreated, DateRemoved,
        // AccountSid, Source=SDK, Reason=LEFT, ChannelSid, RoleSid, ClientIdentity, Identity.
        let e = event(
            EventKind::RemovedFromChannel,
            Resource::Member(member("si")),
            Source::Sdk,
            Some("si"),
        );
        let p = post_event(&e).unwrap();
        assert_eq!(p.event_type, "onMemberRemoved");
        let mut got: Vec<&str> = p.params.iter().map(|(k, _)| k.as_str()).collect();
        got.sort_unstable();
        let mut want = vec![
            "EventType",
            "InstanceSid",
            "MemberSid",
            "Attributes",
            "DateCreated",
            "DateRemoved",
            "AccountSid",
            "Source",
            "Reason",
            "ChannelSid",
            "RoleSid",
            "ClientIdentity",
            "Identity",
        ];
        want.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(p.param("Reason"), Some("LEFT"));
        assert_eq!(p.param("Attributes"), Some(r#"{"member_type":"agent"}"#));
        assert_eq!(p.param("DateRemoved"), Some("2021-04-17T13:00:00.000Z"));
        let e = event(
            EventKind::RemovedFromChannel,
            Resource::Member(member("si")),
            Source::Sdk,
            Some("boss"),
        );
        assert_eq!(post_event(&e).unwrap().param("Reason"), Some("REMOVED"));
    }

    #[test]
    fn member_updated_includes_the_horizon_when_set() {
        let mut m = member("alice");
        let e = event(
            EventKind::MemberUpdated,
            Resource::Member(m.clone()),
            Source::Api,
            None,
        );
        let p = post_event(&e).unwrap();
        assert_eq!(p.event_type, "onMemberUpdated");
        assert_eq!(p.param("LastConsumedMessageIndex"), None);
        assert_eq!(p.param("DateUpdated"), Some("2021-04-17T12:53:00.001Z"));
        m.last_consumed_message_index = Some(12);
        let e = event(
            EventKind::MemberUpdated,
            Resource::Member(m),
            Source::Api,
            None,
        );
        assert_eq!(
            post_event(&e).unwrap().param("LastConsumedMessageIndex"),
            Some("12")
        );
    }

    #[test]
    fn user_events() {
        let e = event(
            EventKind::UserAdded,
            Resource::User(user()),
            Source::Api,
            None,
        );
        let p = post_event(&e).unwrap();
        assert_eq!(p.channel_sid, None);
        assert_eq!(
            pairs(&p),
            vec![
                ("EventType", "onUserAdded"),
                ("UserSid", US),
                ("Identity", "alice"),
                ("RoleSid", RL),
                ("Attributes", "{}"),
                ("DateCreated", "2021-04-17T12:52:31.295Z"),
                ("AccountSid", AC),
                ("InstanceSid", IS),
                ("Source", "API"),
            ],
            "FriendlyName is unset, so absent"
        );
        let mut u = user();
        u.friendly_name = Some("Alice".into());
        let e = event(EventKind::UserUpdated, Resource::User(u), Source::Api, None);
        let p = post_event(&e).unwrap();
        assert_eq!(p.event_type, "onUserUpdated");
        assert_eq!(p.param("FriendlyName"), Some("Alice"));
        assert_eq!(p.param("DateUpdated"), Some("2021-04-17T12:53:00.001Z"));
    }

    #[test]
    fn invites_user_removal_and_stateless_events_have_no_post_event() {
        let invite = Invite {
            sid: InviteSid::parse("IN00000000000000000000000000000008").unwrap(),
            account_sid: AccountSid::parse(AC).unwrap(),
            service_sid: ServiceSid::parse(IS).unwrap(),
            channel_sid: ChannelSid::parse(CH).unwrap(),
            identity: "bob".into(),
            role_sid: None,
            created_by: None,
            date_created: t0(),
            date_updated: t0(),
        };
        for kind in [EventKind::InvitedToChannel, EventKind::InviteRemoved] {
            let e = event(kind, Resource::Invite(invite.clone()), Source::Api, None);
            assert_eq!(post_event(&e), None);
        }
        let e = event(
            EventKind::UserRemoved,
            Resource::User(user()),
            Source::Api,
            None,
        );
        assert_eq!(post_event(&e), None);
        let mut e = event(
            EventKind::NewMessage,
            Resource::Message(message()),
            Source::Api,
            None,
        );
        e.state = None;
        assert_eq!(post_event(&e), None);
        // A state that does not fit the kind.
        let e = event(
            EventKind::NewMessage,
            Resource::User(user()),
            Source::Api,
            None,
        );
        assert_eq!(post_event(&e), None);
    }

    #[test]
    fn every_kind_maps_to_its_documented_name() {
        let cases = [
            (
                EventKind::NewMessage,
                Resource::Message(message()),
                Some("onMessageSent"),
            ),
            (
                EventKind::MessageUpdated,
                Resource::Message(message()),
                Some("onMessageUpdated"),
            ),
            (
                EventKind::MessageRemoved,
                Resource::Message(message()),
                Some("onMessageRemoved"),
            ),
            (
                EventKind::ChannelAdded,
                Resource::Channel(channel()),
                Some("onChannelAdded"),
            ),
            (
                EventKind::ChannelUpdated,
                Resource::Channel(channel()),
                Some("onChannelUpdated"),
            ),
            (
                EventKind::ChannelRemoved,
                Resource::Channel(channel()),
                Some("onChannelDestroyed"),
            ),
            (
                EventKind::AddedToChannel,
                Resource::Member(member("a")),
                Some("onMemberAdded"),
            ),
            (
                EventKind::MemberUpdated,
                Resource::Member(member("a")),
                Some("onMemberUpdated"),
            ),
            (
                EventKind::RemovedFromChannel,
                Resource::Member(member("a")),
                Some("onMemberRemoved"),
            ),
            (
                EventKind::UserAdded,
                Resource::User(user()),
                Some("onUserAdded"),
            ),
            (
                EventKind::UserUpdated,
                Resource::User(user()),
                Some("onUserUpdated"),
            ),
            (EventKind::UserRemoved, Resource::User(user()), None),
        ];
        for (kind, state, want) in cases {
            let e = event(kind, state, Source::Api, None);
            let got = post_event(&e);
            assert_eq!(got.as_ref().map(|p| p.event_type), want, "{kind:?}");
            if let Some(p) = got {
                assert_eq!(p.param("EventType"), want);
                assert!(crate::params::POST_EVENTS.contains(&p.event_type));
                assert!(p.webhooks);
            }
        }
    }
}
