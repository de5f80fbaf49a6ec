//! The change log, writing side (ARCHITECTURE §6, docs/change-log.md): every mutation of
//! channels, members, messages, invites and users appends exactly one event in its own
//! transaction — kind, state, changed fields, source, webhooks flag, actor — and a service's
//! events get `seq` 1, 2, 3… in commit order, gapless, also under concurrent writers.

use std::sync::Arc;

use crate::channel::{
    ChannelRef, ChannelType, ChannelUpdate, MemberLimits, MemberRef, MemberUpdate, MessageUpdate,
    NotificationLevel,
};
use crate::event::{Event, EventKind, Origin, Resource, Source};
use crate::service::Service;
use crate::store::{Conflict, Limit, StoreError};
use crate::user::{UserRef, UserUpdate};
use crate::Timestamp;

use super::chat::{
    channel, channel_value, invite_value, join, member_value, message_value, post, NO_LIMITS,
};
use super::{account, assert_not_found, at, service, user, user_at, DynStore};

// ---- helpers ------------------------------------------------------------------------------------

/// Follows one service's log: what each step appended.
struct Log<'a> {
    store: &'a DynStore,
    service: &'a Service,
    seq: i64,
}

impl<'a> Log<'a> {
    /// Starts after everything already in the log.
    async fn new(store: &'a DynStore, service: &'a Service) -> Log<'a> {
        let seq = store
            .list_events(&service.sid, 0, 100_000)
            .await
            .expect("list events")
            .last()
            .map_or(0, |e| e.seq);
        Log {
            store,
            service,
            seq,
        }
    }

    /// The events appended since the last call: their seqs follow on without a gap.
    async fn appended(&mut self) -> Vec<Event> {
        let events = self
            .store
            .list_events(&self.service.sid, self.seq, 1000)
            .await
            .expect("list events");
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        let expected: Vec<i64> = (self.seq + 1..).take(events.len()).collect();
        assert_eq!(seqs, expected, "seqs follow on from {}", self.seq);
        if let Some(last) = events.last() {
            self.seq = last.seq;
        }
        for e in &events {
            assert_eq!(e.service_sid, self.service.sid, "{e:?}");
            assert_eq!(e.account_sid, self.service.account_sid, "{e:?}");
        }
        events
    }

    /// The one event the last step appended.
    async fn one(&mut self, what: &str) -> Event {
        let mut events = self.appended().await;
        assert_eq!(events.len(), 1, "{what} appends one event: {events:#?}");
        events.remove(0)
    }

    /// Nothing was appended since the last call.
    async fn nothing(&mut self, what: &str) {
        let events = self.appended().await;
        assert!(events.is_empty(), "{what} appends nothing: {events:#?}");
    }
}

/// The recorded fields every event has.
#[track_caller]
fn check(
    e: &Event,
    kind: EventKind,
    state: Resource,
    changed: &[&str],
    origin: &Origin,
    actor: Option<&str>,
) {
    assert_eq!(e.kind, kind, "kind of {e:#?}");
    assert_eq!(e.state.as_ref(), Some(&state), "{kind:?}: state");
    let changed: Vec<String> = changed.iter().map(|c| (*c).to_owned()).collect();
    assert_eq!(e.changed, changed, "{kind:?}: changed fields");
    assert_eq!(e.source, origin.source, "{kind:?}: source");
    assert_eq!(e.webhooks, origin.webhooks, "{kind:?}: webhooks");
    assert_eq!(e.actor.as_deref(), actor, "{kind:?}: actor");
}

fn sid_ref(ch: &crate::channel::Channel) -> ChannelRef {
    ChannelRef::Sid(ch.sid.clone())
}

// ---- one event per mutation ----------------------------------------------------------------------

/// Channel, member, message and invite writes each append one event of their kind, carrying
/// the resource's state (after; before, for removals), the changed fields of updates (none for a
/// no-op update), the origin's source and webhooks flag, the actor, and the push columns.
pub async fn chat_mutations_append_one_event_each_with_state_and_origin(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let alice = user(&store, &svc, "alice").await;
    let bob = user(&store, &svc, "bob").await;
    let rest = Origin::rest();
    let hooked = Origin::api(true);
    let carol = Origin::client("carol");
    let mut log = Log::new(&store, &svc).await;

    // Act + Assert: channel_added (REST with webhooks; actor = created_by)
    let mut value = channel_value(&svc, Some("general"), ChannelType::Public, at(0));
    value.friendly_name = Some("General".to_owned());
    let ch = store
        .create_channel(&value, &hooked)
        .await
        .expect("channel");
    let e = log.one("create channel").await;
    check(
        &e,
        EventKind::ChannelAdded,
        Resource::Channel(ch.clone()),
        &[],
        &hooked,
        Some("system"),
    );
    assert_eq!(e.channel_sid.as_ref(), Some(&ch.sid));
    assert_eq!(e.channel_unique_name.as_deref(), Some("general"));
    assert_eq!(e.channel_friendly_name.as_deref(), Some("General"));

    // added_to_channel (the explicit actor)
    let m = store
        .create_member(
            &member_value(&ch, &alice, at(1)),
            &NO_LIMITS,
            Some("moderator"),
            &rest,
        )
        .await
        .expect("join");
    let e = log.one("join").await;
    check(
        &e,
        EventKind::AddedToChannel,
        Resource::Member(m.clone()),
        &[],
        &rest,
        Some("moderator"),
    );
    assert_eq!(e.member_sid.as_ref(), Some(&m.sid));
    assert_eq!(e.identity.as_deref(), Some("alice"));
    assert_eq!(e.channel_sid.as_ref(), Some(&ch.sid));
    assert_eq!(e.channel_friendly_name.as_deref(), Some("General"));

    // new_message (actor = author)
    let msg = store
        .create_message(
            &ChannelRef::UniqueName("general".to_owned()),
            &message_value(&ch, "alice", "hi there"),
            &hooked,
        )
        .await
        .expect("post");
    let e = log.one("post").await;
    check(
        &e,
        EventKind::NewMessage,
        Resource::Message(msg.clone()),
        &[],
        &hooked,
        Some("alice"),
    );
    assert_eq!(e.message_sid.as_ref(), Some(&msg.sid));
    assert_eq!(e.message_index, Some(0));
    assert_eq!(e.body.as_deref(), Some("hi there"));
    assert_eq!(e.identity, None);

    // message_updated over REST: changed fields, actor = the request's last_updated_by
    let edited = store
        .update_message(
            &account,
            &svc.sid,
            &sid_ref(&ch),
            &msg.sid,
            &MessageUpdate {
                body: Some("edited".to_owned()),
                last_updated_by: Some("editor".to_owned()),
                ..MessageUpdate::default()
            },
            Timestamp::now(),
            &rest,
        )
        .await
        .expect("edit");
    let e = log.one("edit").await;
    check(
        &e,
        EventKind::MessageUpdated,
        Resource::Message(edited.clone()),
        &["body", "last_updated_by", "was_edited"],
        &rest,
        Some("editor"),
    );
    assert_eq!(e.body.as_deref(), Some("edited"));

    // message_updated by a client: the client is the actor
    let retagged = store
        .update_message(
            &account,
            &svc.sid,
            &sid_ref(&ch),
            &msg.sid,
            &MessageUpdate {
                attributes: Some(r#"{"tag":1}"#.to_owned()),
                last_updated_by: Some("someone".to_owned()),
                ..MessageUpdate::default()
            },
            Timestamp::now(),
            &carol,
        )
        .await
        .expect("retag");
    let e = log.one("retag").await;
    check(
        &e,
        EventKind::MessageUpdated,
        Resource::Message(retagged.clone()),
        &["attributes", "last_updated_by"],
        &carol,
        Some("carol"),
    );
    assert_eq!(e.source, Source::Sdk);

    // a no-op update still appends, with nothing changed (date_updated does not count)
    let same = store
        .update_message(
            &account,
            &svc.sid,
            &sid_ref(&ch),
            &msg.sid,
            &MessageUpdate::default(),
            Timestamp::now(),
            &rest,
        )
        .await
        .expect("no-op");
    let e = log.one("no-op message update").await;
    check(
        &e,
        EventKind::MessageUpdated,
        Resource::Message(same.clone()),
        &[],
        &rest,
        None,
    );

    // member_updated: the horizon (index and its timestamp), then the notification level
    let horizon = store
        .update_member(
            &account,
            &svc.sid,
            &sid_ref(&ch),
            &MemberRef::Sid(m.sid.clone()),
            &MemberUpdate {
                last_consumed_message_index: Some(Some(0)),
                ..MemberUpdate::default()
            },
            Timestamp::now(),
            &rest,
        )
        .await
        .expect("horizon");
    let e = log.one("horizon").await;
    check(
        &e,
        EventKind::MemberUpdated,
        Resource::Member(horizon.clone()),
        &["last_consumed_message_index", "last_consumption_timestamp"],
        &rest,
        None,
    );
    assert_eq!(e.member_sid.as_ref(), Some(&m.sid));
    let muted = store
        .update_member(
            &account,
            &svc.sid,
            &sid_ref(&ch),
            &MemberRef::Identity("alice".to_owned()),
            &MemberUpdate {
                notification_level: Some(NotificationLevel::Muted),
                ..MemberUpdate::default()
            },
            Timestamp::now(),
            &carol,
        )
        .await
        .expect("mute");
    let e = log.one("mute").await;
    check(
        &e,
        EventKind::MemberUpdated,
        Resource::Member(muted.clone()),
        &["notification_level"],
        &carol,
        Some("carol"),
    );

    // channel_updated
    let renamed = store
        .update_channel(
            &account,
            &svc.sid,
            &sid_ref(&ch),
            &ChannelUpdate {
                friendly_name: Some(Some("Renamed".to_owned())),
                ..ChannelUpdate::default()
            },
            Timestamp::now(),
            &rest,
        )
        .await
        .expect("rename");
    let e = log.one("rename").await;
    check(
        &e,
        EventKind::ChannelUpdated,
        Resource::Channel(renamed.clone()),
        &["friendly_name"],
        &rest,
        None,
    );
    assert_eq!(e.channel_friendly_name.as_deref(), Some("Renamed"));

    // invited_to_channel (actor = inviter), then invite_removed (the invite as it was)
    let inv = store
        .create_invite(
            &sid_ref(&ch),
            &invite_value(&ch, "bob", Timestamp::now()),
            &rest,
        )
        .await
        .expect("invite");
    let e = log.one("invite").await;
    check(
        &e,
        EventKind::InvitedToChannel,
        Resource::Invite(inv.clone()),
        &[],
        &rest,
        Some("inviter"),
    );
    assert_eq!(e.invite_sid.as_ref(), Some(&inv.sid));
    assert_eq!(e.identity.as_deref(), Some("bob"));
    store
        .delete_invite(&account, &svc.sid, &sid_ref(&ch), &inv.sid, &hooked)
        .await
        .expect("delete invite");
    let e = log.one("delete invite").await;
    check(
        &e,
        EventKind::InviteRemoved,
        Resource::Invite(inv.clone()),
        &[],
        &hooked,
        None,
    );
    assert_eq!(e.invite_sid.as_ref(), Some(&inv.sid));
    assert_eq!(e.channel_friendly_name.as_deref(), Some("Renamed"));

    // joining on an invite: invited, then added — the invite goes without an event of its own
    let again = store
        .create_invite(
            &sid_ref(&ch),
            &invite_value(&ch, "bob", Timestamp::now()),
            &rest,
        )
        .await
        .expect("invite again");
    let bob_member = store
        .create_member(
            &member_value(&ch, &bob, Timestamp::now()),
            &NO_LIMITS,
            None,
            &Origin::client("bob"),
        )
        .await
        .expect("bob joins");
    let kinds: Vec<EventKind> = log.appended().await.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::InvitedToChannel, EventKind::AddedToChannel],
        "no invite_removed when joining"
    );
    assert_not_found(
        store
            .fetch_invite(&account, &svc.sid, &sid_ref(&ch), &again.sid)
            .await,
        "the accepted invite",
    );

    // message_removed (the message as it was)
    let before_delete = store
        .fetch_message(&account, &svc.sid, &sid_ref(&ch), &msg.sid)
        .await
        .expect("message");
    store
        .delete_message(&account, &svc.sid, &sid_ref(&ch), &msg.sid, &rest)
        .await
        .expect("delete message");
    let e = log.one("delete message").await;
    check(
        &e,
        EventKind::MessageRemoved,
        Resource::Message(before_delete),
        &[],
        &rest,
        None,
    );
    assert_eq!(e.message_sid.as_ref(), Some(&msg.sid));

    // removed_from_channel (the member as it was; the explicit actor)
    store
        .delete_member(
            &account,
            &svc.sid,
            &sid_ref(&ch),
            &MemberRef::Identity("bob".to_owned()),
            Some("bob"),
            Timestamp::now(),
            &rest,
        )
        .await
        .expect("bob leaves");
    let e = log.one("leave").await;
    check(
        &e,
        EventKind::RemovedFromChannel,
        Resource::Member(bob_member.clone()),
        &[],
        &rest,
        Some("bob"),
    );
    assert_eq!(e.identity.as_deref(), Some("bob"));
    assert_eq!(e.member_sid.as_ref(), Some(&bob_member.sid));
}

/// User writes append `user_added` (also when `get_or_create_user` creates one, not when it
/// finds one), `user_updated` with the changed fields, and deleting a user appends one
/// `removed_from_channel` per membership (the member as it was), then `user_removed` (the user
/// as it was), consecutive in the log.
pub async fn user_mutations_append_user_events_memberships_first(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let general = channel(&store, &svc, "general").await;
    let random = channel(&store, &svc, "random").await;
    let rest = Origin::rest();
    let hooked = Origin::api(true);
    let mut log = Log::new(&store, &svc).await;

    // Act + Assert: user_added
    let alice = store
        .create_user(&user_at(&svc, "alice", at(0)), &hooked)
        .await
        .expect("alice");
    let e = log.one("create user").await;
    check(
        &e,
        EventKind::UserAdded,
        Resource::User(alice.clone()),
        &[],
        &hooked,
        None,
    );
    assert_eq!(e.channel_sid, None);
    assert_eq!(e.identity.as_deref(), Some("alice"));

    // get_or_create_user: found = nothing; created = user_added by the client
    let (found, created) = store
        .get_or_create_user(&user_at(&svc, "alice", at(1)), &rest)
        .await
        .expect("existing alice");
    assert!(!created);
    assert_eq!(found, alice);
    log.nothing("finding a user").await;
    let dave_origin = Origin::client("dave");
    let (dave, created) = store
        .get_or_create_user(&user_at(&svc, "dave", at(2)), &dave_origin)
        .await
        .expect("new dave");
    assert!(created);
    let e = log.one("implicit user").await;
    check(
        &e,
        EventKind::UserAdded,
        Resource::User(dave.clone()),
        &[],
        &dave_origin,
        Some("dave"),
    );

    // user_updated
    let renamed = store
        .update_user(
            &account,
            &svc.sid,
            &UserRef::Identity("alice".to_owned()),
            &UserUpdate {
                friendly_name: Some("Alice A.".to_owned()),
                ..UserUpdate::default()
            },
            Timestamp::now(),
            &rest,
        )
        .await
        .expect("rename");
    let e = log.one("update user").await;
    check(
        &e,
        EventKind::UserUpdated,
        Resource::User(renamed.clone()),
        &["friendly_name"],
        &rest,
        None,
    );

    // delete: memberships first, then the user
    let in_general = join(&store, &general, &renamed).await;
    let in_random = join(&store, &random, &renamed).await;
    log.appended().await;
    store
        .delete_user(
            &account,
            &svc.sid,
            &UserRef::Sid(alice.sid.clone()),
            &hooked,
        )
        .await
        .expect("delete alice");
    let events = log.appended().await;
    assert_eq!(events.len(), 3, "{events:#?}");
    let mut removed: Vec<&Event> = events[..2].iter().collect();
    removed.sort_by(|a, b| a.member_sid.cmp(&b.member_sid));
    let mut members = vec![(&in_general, &general), (&in_random, &random)];
    members.sort_by(|a, b| a.0.sid.cmp(&b.0.sid));
    for (e, (member, ch)) in removed.iter().zip(members) {
        check(
            e,
            EventKind::RemovedFromChannel,
            Resource::Member(member.clone()),
            &[],
            &hooked,
            None,
        );
        assert_eq!(e.channel_sid.as_ref(), Some(&ch.sid));
        assert_eq!(e.channel_unique_name, ch.unique_name);
        assert_eq!(e.identity.as_deref(), Some("alice"));
    }
    check(
        &events[2],
        EventKind::UserRemoved,
        Resource::User(renamed.clone()),
        &[],
        &hooked,
        None,
    );
    assert_eq!(events[2].channel_sid, None);

    // a user without memberships: just user_removed
    store
        .delete_user(&account, &svc.sid, &UserRef::Sid(dave.sid.clone()), &rest)
        .await
        .expect("delete dave");
    let e = log.one("delete a user without channels").await;
    check(
        &e,
        EventKind::UserRemoved,
        Resource::User(dave),
        &[],
        &rest,
        None,
    );
}

/// Deleting a channel appends one `channel_removed` with the channel as it was — none for its
/// members, messages or invites, which go with it.
pub async fn deleting_a_channel_appends_one_channel_removed_with_its_last_state(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "doomed").await;
    let alice = user(&store, &svc, "alice").await;
    user(&store, &svc, "bob").await;
    join(&store, &ch, &alice).await;
    post(&store, &ch, "one").await;
    post(&store, &ch, "two").await;
    super::chat::invite(&store, &ch, "bob").await;
    let last_state = super::chat::refetch(&store, &ch).await;
    let mut log = Log::new(&store, &svc).await;
    let origin = Origin::client("alice");

    // Act
    store
        .delete_channel(
            &account,
            &svc.sid,
            &ChannelRef::UniqueName("doomed".to_owned()),
            &origin,
        )
        .await
        .expect("delete");

    // Assert
    let e = log.one("delete channel").await;
    check(
        &e,
        EventKind::ChannelRemoved,
        Resource::Channel(last_state),
        &[],
        &origin,
        Some("alice"),
    );
    assert_eq!(e.channel_sid.as_ref(), Some(&ch.sid));
    assert_eq!(e.channel_unique_name.as_deref(), Some("doomed"));
    // It names who had the channel: the member and the invitee, sorted (schema v8).
    assert_eq!(
        e.channel_identities,
        Some(vec!["alice".to_owned(), "bob".to_owned()])
    );
    // Other events name nobody.
    let earlier = super::chat::events_of(&store, &svc).await;
    assert!(earlier
        .iter()
        .filter(|x| x.kind != EventKind::ChannelRemoved)
        .all(|x| x.channel_identities.is_none()));
}

/// A channel nobody is in is removed with an empty list of identities.
pub async fn deleting_an_empty_channel_names_nobody(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "empty").await;
    let mut log = Log::new(&store, &svc).await;

    // Act
    store
        .delete_channel(
            &account,
            &svc.sid,
            &ChannelRef::Sid(ch.sid.clone()),
            &Origin::rest(),
        )
        .await
        .expect("delete");

    // Assert
    let e = log.one("delete channel").await;
    assert_eq!(e.kind, EventKind::ChannelRemoved);
    assert_eq!(e.channel_identities, Some(vec![]));
}

// ---- rolled back mutations ------------------------------------------------------------------------

/// A mutation that fails — a limit, a unique-name or identity conflict, a duplicate, a missing
/// row — appends nothing and takes no seq: the next successful one gets the next number.
pub async fn rolled_back_mutations_append_nothing_and_take_no_seq(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "general").await;
    let other = channel(&store, &svc, "other").await;
    let alice = user(&store, &svc, "alice").await;
    let bob = user(&store, &svc, "bob").await;
    join(&store, &ch, &alice).await;
    super::chat::invite(&store, &ch, "bob").await;
    let msg = post(&store, &ch, "kept").await;
    let gone = channel_value(&svc, Some("gone"), ChannelType::Public, at(0));
    let one = MemberLimits {
        channel_members: 1,
        user_channels: 10,
    };
    let mut log = Log::new(&store, &svc).await;
    let rest = Origin::rest();
    let missing_message = crate::MessageSid::generate();
    let missing_invite = crate::InviteSid::generate();

    // Act + Assert
    match store
        .create_member(
            &member_value(&ch, &bob, Timestamp::now()),
            &one,
            None,
            &rest,
        )
        .await
    {
        Err(StoreError::LimitExceeded(Limit::ChannelMembers)) => {}
        other => panic!("member limit: {other:?}"),
    }
    log.nothing("a join over the member limit").await;
    match store
        .create_channel(
            &channel_value(&svc, Some("general"), ChannelType::Public, at(1)),
            &rest,
        )
        .await
    {
        Err(StoreError::Conflict(Conflict::ChannelUniqueNameTaken)) => {}
        other => panic!("unique name on create: {other:?}"),
    }
    log.nothing("a channel with a taken unique name").await;
    match store
        .update_channel(
            &account,
            &svc.sid,
            &sid_ref(&other),
            &ChannelUpdate {
                unique_name: Some(Some("general".to_owned())),
                ..ChannelUpdate::default()
            },
            Timestamp::now(),
            &rest,
        )
        .await
    {
        Err(StoreError::Conflict(Conflict::ChannelUniqueNameTaken)) => {}
        other => panic!("unique name on update: {other:?}"),
    }
    log.nothing("renaming to a taken unique name").await;
    match store
        .create_user(&user_at(&svc, "alice", Timestamp::now()), &rest)
        .await
    {
        Err(StoreError::Conflict(Conflict::UserIdentityTaken)) => {}
        other => panic!("identity taken: {other:?}"),
    }
    log.nothing("a user with a taken identity").await;
    let failures = [
        (
            "duplicate join",
            store
                .create_member(
                    &member_value(&ch, &alice, Timestamp::now()),
                    &NO_LIMITS,
                    None,
                    &rest,
                )
                .await
                .err(),
        ),
        (
            "post to a missing channel",
            store
                .create_message(&sid_ref(&gone), &message_value(&gone, "x", "lost"), &rest)
                .await
                .err(),
        ),
        (
            "duplicate invite",
            store
                .create_invite(
                    &sid_ref(&ch),
                    &invite_value(&ch, "bob", Timestamp::now()),
                    &rest,
                )
                .await
                .err(),
        ),
        (
            "update a missing message",
            store
                .update_message(
                    &account,
                    &svc.sid,
                    &sid_ref(&ch),
                    &missing_message,
                    &MessageUpdate {
                        body: Some("x".to_owned()),
                        ..MessageUpdate::default()
                    },
                    Timestamp::now(),
                    &rest,
                )
                .await
                .err(),
        ),
        (
            "delete a missing message",
            store
                .delete_message(&account, &svc.sid, &sid_ref(&ch), &missing_message, &rest)
                .await
                .err(),
        ),
        (
            "delete a missing invite",
            store
                .delete_invite(&account, &svc.sid, &sid_ref(&ch), &missing_invite, &rest)
                .await
                .err(),
        ),
        (
            "update a non-member",
            store
                .update_member(
                    &account,
                    &svc.sid,
                    &sid_ref(&ch),
                    &MemberRef::Identity("bob".to_owned()),
                    &MemberUpdate {
                        attributes: Some("{}".to_owned()),
                        ..MemberUpdate::default()
                    },
                    Timestamp::now(),
                    &rest,
                )
                .await
                .err(),
        ),
        (
            "remove a non-member",
            store
                .delete_member(
                    &account,
                    &svc.sid,
                    &sid_ref(&ch),
                    &MemberRef::Identity("bob".to_owned()),
                    None,
                    Timestamp::now(),
                    &rest,
                )
                .await
                .err(),
        ),
        (
            "update a missing user",
            store
                .update_user(
                    &account,
                    &svc.sid,
                    &UserRef::Identity("nobody".to_owned()),
                    &UserUpdate::default(),
                    Timestamp::now(),
                    &rest,
                )
                .await
                .err(),
        ),
        (
            "delete a missing user",
            store
                .delete_user(
                    &account,
                    &svc.sid,
                    &UserRef::Identity("nobody".to_owned()),
                    &rest,
                )
                .await
                .err(),
        ),
        (
            "delete a missing channel",
            store
                .delete_channel(&account, &svc.sid, &sid_ref(&gone), &rest)
                .await
                .err(),
        ),
    ];
    for (what, error) in &failures {
        assert!(error.is_some(), "{what} should fail");
    }
    log.nothing("failed writes").await;
    let now = super::chat::refetch(&store, &ch).await;
    assert_eq!((now.members_count, now.messages_count), (1, 1));
    assert_eq!(now.last_message_sid.as_ref(), Some(&msg.sid));

    // the next write takes the next seq: no gap was left
    let before = log.seq;
    post(&store, &ch, "next").await;
    let e = log.one("post after failures").await;
    assert_eq!(e.seq, before + 1);
}

// ---- seq ----------------------------------------------------------------------------------------

/// Each service's events are numbered 1, 2, 3… on their own, whatever the other services do;
/// `list_events` pages by seq (after a seq, up to a limit).
pub async fn seq_counts_from_one_per_service_independently(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let a = service(&store, &account).await;
    let b = service(&store, &account).await;

    // Act: interleaved writes to both services
    let ch_a = channel(&store, &a, "a").await;
    let ch_b = channel(&store, &b, "b").await;
    let u_a = user(&store, &a, "alice").await;
    post(&store, &ch_a, "a1").await;
    post(&store, &ch_b, "b1").await;
    let u_b = user(&store, &b, "bob").await;
    join(&store, &ch_b, &u_b).await;
    post(&store, &ch_a, "a2").await;
    join(&store, &ch_a, &u_a).await;
    post(&store, &ch_b, "b2").await;

    // Assert
    let events_a = super::chat::events_of(&store, &a).await;
    let events_b = super::chat::events_of(&store, &b).await;
    let seqs = |events: &[Event]| events.iter().map(|e| e.seq).collect::<Vec<i64>>();
    let kinds = |events: &[Event]| events.iter().map(|e| e.kind).collect::<Vec<EventKind>>();
    assert_eq!(seqs(&events_a), vec![1, 2, 3, 4, 5]);
    assert_eq!(seqs(&events_b), vec![1, 2, 3, 4, 5]);
    assert_eq!(
        kinds(&events_a),
        vec![
            EventKind::ChannelAdded,
            EventKind::UserAdded,
            EventKind::NewMessage,
            EventKind::NewMessage,
            EventKind::AddedToChannel
        ]
    );
    assert_eq!(
        kinds(&events_b),
        vec![
            EventKind::ChannelAdded,
            EventKind::NewMessage,
            EventKind::UserAdded,
            EventKind::AddedToChannel,
            EventKind::NewMessage
        ]
    );
    assert!(events_a.iter().all(|e| e.service_sid == a.sid));
    let page = store.list_events(&a.sid, 2, 2).await.expect("page");
    assert_eq!(page, events_a[2..4].to_vec());
    assert!(store
        .list_events(&a.sid, 5, 10)
        .await
        .expect("after the last")
        .is_empty());
}

/// `last_seq` is the service's last assigned seq, per service; 0 before any event; trimming
/// every event leaves it where it was.
pub async fn last_seq_is_the_services_last_assigned_seq_and_survives_trimming(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let a = service(&store, &account).await;
    let b = service(&store, &account).await;
    let before_a = store.last_seq(&a.sid).await.expect("last seq");
    let before_b = store.last_seq(&b.sid).await.expect("last seq");

    // Act
    // (no push kinds: their outbox rows would keep them from being trimmed)
    channel(&store, &a, "a").await;
    user(&store, &a, "alice").await;
    user(&store, &a, "bob").await;
    let after_a = store.last_seq(&a.sid).await.expect("last seq");
    let after_b = store.last_seq(&b.sid).await.expect("last seq");
    let deleted = store
        .trim_events(&[], Timestamp::now().plus_secs(3600), 1000)
        .await
        .expect("trim");
    let after_trim = store.last_seq(&a.sid).await.expect("last seq");

    // Assert
    assert_eq!((before_a, before_b), (0, 0));
    let events = super::chat::events_of(&store, &a).await;
    assert_eq!(after_a, 3);
    assert_eq!(after_b, 0, "another service's log is its own");
    assert!(deleted >= 1 && events.is_empty(), "everything trimmed");
    assert_eq!(after_trim, 3, "trimming never lowers the last seq");
}

/// Many writers on one service (8 tasks × 25 posts over 4 channels): the seqs are exactly
/// 1..=n, and a reader polling `list_events` all along never sees a seq before all lower ones
/// (it would see a gap): seq order is commit order. Within a channel, seq order is also the
/// order of the message indexes (both are taken in the same transaction).
pub async fn concurrent_writers_append_a_gapless_seq_in_commit_order(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let mut channels = Vec::new();
    for i in 0..4 {
        channels.push(channel(&store, &svc, &format!("ch{i}")).await);
    }
    let setup = Log::new(&store, &svc).await.seq;
    assert_eq!(setup, 4);
    const TASKS: usize = 8;
    const POSTS: usize = 25;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Act
    let reader = {
        let store = store.clone();
        let sid = svc.sid.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen = 0i64;
            let mut polls = 0u32;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let batch = store.list_events(&sid, seen, 1000).await.expect("poll");
                for e in &batch {
                    assert_eq!(
                        e.seq,
                        seen + 1,
                        "poll {polls}: seq {} visible before {}",
                        e.seq,
                        seen + 1
                    );
                    seen = e.seq;
                }
                polls += 1;
                if finished && batch.is_empty() {
                    return (seen, polls);
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut writers = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        let ch = channels[t % channels.len()].clone();
        writers.push(tokio::spawn(async move {
            for i in 0..POSTS {
                store
                    .create_message(
                        &ChannelRef::Sid(ch.sid.clone()),
                        &message_value(&ch, &format!("w{t}"), &format!("{t}-{i}")),
                        &Origin::rest(),
                    )
                    .await
                    .expect("post");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (seen, polls) = reader.await.expect("reader");

    // Assert
    let total = setup + i64::try_from(TASKS * POSTS).expect("small");
    assert_eq!(seen, total, "the reader saw every event ({polls} polls)");
    let events = super::chat::events_of(&store, &svc).await;
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<i64>>());
    for ch in &channels {
        let indexes: Vec<i64> = events
            .iter()
            .filter(|e| e.kind == EventKind::NewMessage && e.channel_sid.as_ref() == Some(&ch.sid))
            .map(|e| e.message_index.expect("index"))
            .collect();
        assert_eq!(
            indexes,
            (0..i64::try_from(indexes.len()).expect("small")).collect::<Vec<i64>>(),
            "in seq order, a channel's messages are in index order"
        );
        assert_eq!(indexes.len(), TASKS / channels.len() * POSTS);
    }
}
