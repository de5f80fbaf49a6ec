//! Chat core: channels, members, messages, invites, the user-channel view and the change log
//! (contract §6–§10, ARCHITECTURE §6).

use std::collections::HashSet;

use crate::channel::{
    Channel, ChannelRef, ChannelType, ChannelUpdate, Invite, Member, MemberLimits, MemberRef,
    MemberUpdate, Message, MessageOrder, MessageUpdate, NotificationLevel, UserChannel,
    UserChannelStatus,
};
use crate::event::{Event, EventKind, Origin};
use crate::paging::{Cursor, Page, PageRequest};
use crate::service::Service;
use crate::store::{Conflict, Limit, StoreError, StoreResult};
use crate::user::{User, UserRef};
use crate::{ChannelSid, InviteSid, MemberSid, MessageSid, Timestamp};

use super::{account, all_pages, assert_not_found, at, service, user, DynStore};

// ---- fixtures -----------------------------------------------------------------------------------

/// Limits high enough never to matter.
pub const NO_LIMITS: MemberLimits = MemberLimits {
    channel_members: 1_000,
    user_channels: 1_000,
};

/// A channel value (not stored) of `service`, created at `created`.
pub fn channel_value(
    service: &Service,
    unique_name: Option<&str>,
    channel_type: ChannelType,
    created: Timestamp,
) -> Channel {
    Channel {
        sid: ChannelSid::generate(),
        account_sid: service.account_sid.clone(),
        service_sid: service.sid.clone(),
        friendly_name: Some(format!("{} channel", unique_name.unwrap_or("anonymous"))),
        unique_name: unique_name.map(str::to_owned),
        attributes: Some(r#"{"topic":"tests"}"#.to_owned()),
        channel_type,
        created_by: Some("system".to_owned()),
        members_count: 0,
        messages_count: 0,
        last_message_sid: None,
        last_message_index: None,
        date_created: created,
        date_updated: created,
    }
}

/// A stored public channel named `unique_name`.
pub async fn channel(store: &DynStore, service: &Service, unique_name: &str) -> Channel {
    store
        .create_channel(
            &channel_value(
                service,
                Some(unique_name),
                ChannelType::Public,
                Timestamp::now(),
            ),
            &Origin::rest(),
        )
        .await
        .expect("create channel")
}

/// A membership value (not stored) of `user` in `channel`, joined at `created`.
pub fn member_value(channel: &Channel, user: &User, created: Timestamp) -> Member {
    Member {
        sid: MemberSid::generate(),
        account_sid: channel.account_sid.clone(),
        service_sid: channel.service_sid.clone(),
        channel_sid: channel.sid.clone(),
        user_sid: user.sid.clone(),
        identity: user.identity.clone(),
        role_sid: None,
        last_consumed_message_index: None,
        last_consumption_timestamp: None,
        attributes: Some("{}".to_owned()),
        notification_level: NotificationLevel::Default,
        date_created: created,
        date_updated: created,
    }
}

/// `user` joins `channel` (no limits in the way).
pub async fn join(store: &DynStore, channel: &Channel, user: &User) -> Member {
    store
        .create_member(
            &member_value(channel, user, Timestamp::now()),
            &NO_LIMITS,
            None,
            &Origin::rest(),
        )
        .await
        .expect("join")
}

/// A message value (not stored) for `channel` from `from`.
pub fn message_value(channel: &Channel, from: &str, body: &str) -> Message {
    let now = Timestamp::now();
    Message {
        sid: MessageSid::generate(),
        account_sid: channel.account_sid.clone(),
        service_sid: channel.service_sid.clone(),
        channel_sid: channel.sid.clone(),
        index: -1,
        from: from.to_owned(),
        body: Some(body.to_owned()),
        attributes: None,
        last_updated_by: None,
        was_edited: false,
        date_created: now,
        date_updated: now,
    }
}

/// Post `body` into `channel` (addressed by SID) as `system`.
pub async fn post(store: &DynStore, channel: &Channel, body: &str) -> Message {
    store
        .create_message(
            &ChannelRef::Sid(channel.sid.clone()),
            &message_value(channel, "system", body),
            &Origin::rest(),
        )
        .await
        .expect("post")
}

/// An invite value (not stored) of `identity` to `channel`, created at `created`.
pub fn invite_value(channel: &Channel, identity: &str, created: Timestamp) -> Invite {
    Invite {
        sid: InviteSid::generate(),
        account_sid: channel.account_sid.clone(),
        service_sid: channel.service_sid.clone(),
        channel_sid: channel.sid.clone(),
        identity: identity.to_owned(),
        role_sid: None,
        created_by: Some("inviter".to_owned()),
        date_created: created,
        date_updated: created,
    }
}

/// Invite `identity` (an existing user) to `channel`.
pub async fn invite(store: &DynStore, channel: &Channel, identity: &str) -> Invite {
    store
        .create_invite(
            &ChannelRef::Sid(channel.sid.clone()),
            &invite_value(channel, identity, Timestamp::now()),
            &Origin::rest(),
        )
        .await
        .expect("invite")
}

/// Every event of `service`, oldest first.
pub async fn events_of(store: &DynStore, service: &Service) -> Vec<Event> {
    store
        .list_events(&service.sid, 0, 10_000)
        .await
        .expect("list events")
}

/// The channel as stored now.
pub async fn refetch(store: &DynStore, channel: &Channel) -> Channel {
    store
        .fetch_channel(
            &channel.account_sid,
            &channel.service_sid,
            &ChannelRef::Sid(channel.sid.clone()),
        )
        .await
        .expect("fetch channel")
}

fn sid_ref(channel: &Channel) -> ChannelRef {
    ChannelRef::Sid(channel.sid.clone())
}

fn message_cursor(size: u32, m: &Message, backwards: bool) -> PageRequest {
    PageRequest {
        size,
        cursor: Some(Cursor {
            key: m.index,
            sid: m.sid.as_str().to_owned(),
            backwards,
        }),
    }
}

fn indexes(page: &Page<Message>) -> Vec<i64> {
    page.items.iter().map(|m| m.index).collect()
}

#[track_caller]
pub(super) fn assert_conflict<T: std::fmt::Debug>(
    result: StoreResult<T>,
    conflict: Conflict,
    what: &str,
) {
    match result {
        Err(StoreError::Conflict(c)) if c == conflict => {}
        other => panic!("{what}: expected Conflict({conflict:?}), got {other:?}"),
    }
}

#[track_caller]
fn assert_limit<T: std::fmt::Debug>(result: StoreResult<T>, limit: Limit, what: &str) {
    match result {
        Err(StoreError::LimitExceeded(l)) if l == limit => {}
        other => panic!("{what}: expected LimitExceeded({limit:?}), got {other:?}"),
    }
}

async fn joined_count(store: &DynStore, user: &User) -> i64 {
    store
        .joined_channel_counts(
            &user.account_sid,
            &user.service_sid,
            std::slice::from_ref(&user.sid),
        )
        .await
        .expect("joined counts")
        .into_iter()
        .find(|(sid, _)| *sid == user.sid)
        .map_or(0, |(_, n)| n)
}

// ---- channels -----------------------------------------------------------------------------------

/// A channel round-trips, is found by SID and by unique name, updates only the given fields
/// (clearing with `Some(None)`), and is gone after delete.
pub async fn channel_round_trips_and_is_fetched_by_sid_or_unique_name(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let value = channel_value(&svc, Some("general"), ChannelType::Private, at(5));

    // Act
    let created = store
        .create_channel(&value, &Origin::rest())
        .await
        .expect("create");

    // Assert
    assert_eq!(created, value, "create returns the stored row");
    let by_sid = store
        .fetch_channel(&account, &svc.sid, &sid_ref(&value))
        .await
        .expect("by sid");
    let by_name = store
        .fetch_channel(
            &account,
            &svc.sid,
            &ChannelRef::UniqueName("general".to_owned()),
        )
        .await
        .expect("by unique name");
    assert_eq!(by_sid, value);
    assert_eq!(by_name, value);

    // update: rename, clear the friendly name, keep the rest
    let updated = store
        .update_channel(
            &account,
            &svc.sid,
            &ChannelRef::UniqueName("general".to_owned()),
            &ChannelUpdate {
                friendly_name: Some(None),
                unique_name: Some(Some("lobby".to_owned())),
                ..ChannelUpdate::default()
            },
            at(60),
            &Origin::rest(),
        )
        .await
        .expect("update");
    let expected = Channel {
        friendly_name: None,
        unique_name: Some("lobby".to_owned()),
        date_updated: at(60),
        ..value.clone()
    };
    assert_eq!(updated, expected);
    assert_not_found(
        store
            .fetch_channel(
                &account,
                &svc.sid,
                &ChannelRef::UniqueName("general".to_owned()),
            )
            .await,
        "old unique name",
    );
    let again = store
        .update_channel(
            &account,
            &svc.sid,
            &sid_ref(&value),
            &ChannelUpdate {
                unique_name: Some(None),
                friendly_name: Some(Some("Lobby".to_owned())),
                attributes: Some("{}".to_owned()),
                created_by: Some("alice".to_owned()),
                date_created: Some(at(1)),
                date_updated: Some(at(2)),
            },
            at(70),
            &Origin::rest(),
        )
        .await
        .expect("update all");
    assert_eq!(
        again,
        Channel {
            friendly_name: Some("Lobby".to_owned()),
            unique_name: None,
            attributes: Some("{}".to_owned()),
            created_by: Some("alice".to_owned()),
            date_created: at(1),
            date_updated: at(2),
            ..value.clone()
        }
    );

    // delete
    store
        .delete_channel(&account, &svc.sid, &sid_ref(&value), &Origin::rest())
        .await
        .expect("delete");
    assert_not_found(
        store
            .fetch_channel(&account, &svc.sid, &sid_ref(&value))
            .await,
        "deleted channel",
    );
    assert_not_found(
        store
            .delete_channel(&account, &svc.sid, &sid_ref(&value), &Origin::rest())
            .await,
        "delete twice",
    );
    assert_not_found(
        store
            .update_channel(
                &account,
                &svc.sid,
                &sid_ref(&value),
                &ChannelUpdate::default(),
                at(80),
                &Origin::rest(),
            )
            .await,
        "update deleted",
    );
}

/// A unique name is unique within its service (create and update conflict, nothing changes);
/// the same name in another service is fine, and channels without one never collide.
pub async fn channel_unique_name_is_unique_within_a_service(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let other_svc = service(&store, &account).await;
    let general = channel(&store, &svc, "general").await;
    let random = channel(&store, &svc, "random").await;

    // Act + Assert
    assert_conflict(
        store
            .create_channel(
                &channel_value(&svc, Some("general"), ChannelType::Public, at(0)),
                &Origin::rest(),
            )
            .await,
        Conflict::ChannelUniqueNameTaken,
        "create with a taken name",
    );
    assert_conflict(
        store
            .update_channel(
                &account,
                &svc.sid,
                &sid_ref(&random),
                &ChannelUpdate {
                    unique_name: Some(Some("general".to_owned())),
                    friendly_name: Some(Some("changed".to_owned())),
                    ..ChannelUpdate::default()
                },
                at(9),
                &Origin::rest(),
            )
            .await,
        Conflict::ChannelUniqueNameTaken,
        "rename onto a taken name",
    );
    assert_eq!(refetch(&store, &random).await, random, "random unchanged");
    assert_eq!(refetch(&store, &general).await, general);
    channel(&store, &other_svc, "general").await;
    for _ in 0..2 {
        store
            .create_channel(
                &channel_value(&svc, None, ChannelType::Public, at(1)),
                &Origin::rest(),
            )
            .await
            .expect("channels without unique name");
    }
    let page = store
        .list_channels(&account, &svc.sid, &[], &PageRequest::first(100))
        .await
        .expect("list");
    assert_eq!(page.items.len(), 4);
}

/// The `Type` filter selects public or private channels (both or none = all), pages keep
/// `(date_created, sid)` order in both directions.
pub async fn channel_list_filters_by_type_and_pages(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let mut all = Vec::new();
    for i in 0..9_i64 {
        let t = if i % 3 == 0 {
            ChannelType::Private
        } else {
            ChannelType::Public
        };
        let c = channel_value(&svc, Some(&format!("c{i}")), t, at(10 - i / 2));
        all.push(
            store
                .create_channel(&c, &Origin::rest())
                .await
                .expect("create"),
        );
    }
    all.sort_by_key(|c| (c.date_created, c.sid.as_str().to_owned()));
    let of = |t: ChannelType| -> Vec<Channel> {
        all.iter()
            .filter(|c| c.channel_type == t)
            .cloned()
            .collect()
    };
    let list = |types: Vec<ChannelType>| {
        let store = store.clone();
        let account = account.clone();
        let service = svc.sid.clone();
        move |req: PageRequest| -> super::BoxFut<'static, StoreResult<Page<Channel>>> {
            let store = store.clone();
            let account = account.clone();
            let service = service.clone();
            let types = types.clone();
            Box::pin(async move { store.list_channels(&account, &service, &types, &req).await })
        }
    };
    let key = |c: &Channel| (c.date_created, c.sid.as_str().to_owned());

    // Act
    let mut walked = Vec::new();
    for types in [
        vec![],
        vec![ChannelType::Private, ChannelType::Public],
        vec![ChannelType::Public],
        vec![ChannelType::Private],
    ] {
        let items: Vec<Channel> = all_pages(2, key, list(types))
            .await
            .into_iter()
            .flat_map(|p| p.items)
            .collect();
        walked.push(items);
    }
    let [everything, both, public, private] =
        <[Vec<Channel>; 4]>::try_from(walked).unwrap_or_else(|_| panic!("four walks"));
    let back = list(vec![ChannelType::Public])(super::cursor_sized(
        2,
        of(ChannelType::Public)[3].date_created,
        of(ChannelType::Public)[3].sid.as_str(),
        true,
    ))
    .await
    .expect("backwards");

    // Assert
    assert_eq!(everything, all);
    assert_eq!(both, all);
    assert_eq!(public, of(ChannelType::Public));
    assert_eq!(private, of(ChannelType::Private));
    assert_eq!(private.len(), 3);
    assert_eq!(back.items, of(ChannelType::Public)[1..3].to_vec());
    assert!(back.more);
}

/// Deleting a channel removes its members, messages and invites: they are `NotFound`, users'
/// joined-channel counts and user-channel lists drop it, and no event is appended.
pub async fn deleting_a_channel_removes_its_members_messages_and_invites(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let doomed = channel(&store, &svc, "doomed").await;
    let kept = channel(&store, &svc, "kept").await;
    let alice = user(&store, &svc, "alice").await;
    let bob = user(&store, &svc, "bob").await;
    let carol = user(&store, &svc, "carol").await;
    let alice_in_doomed = join(&store, &doomed, &alice).await;
    join(&store, &doomed, &bob).await;
    join(&store, &kept, &alice).await;
    let msgs = [
        post(&store, &doomed, "one").await,
        post(&store, &doomed, "two").await,
    ];
    let kept_msg = post(&store, &kept, "stays").await;
    let inv = invite(&store, &doomed, "carol").await;
    assert_eq!(joined_count(&store, &alice).await, 2);
    let events_before = events_of(&store, &svc).await.len();

    // Act
    store
        .delete_channel(
            &account,
            &svc.sid,
            &ChannelRef::UniqueName("doomed".to_owned()),
            &Origin::rest(),
        )
        .await
        .expect("delete");

    // Assert
    let r = sid_ref(&doomed);
    assert_not_found(store.fetch_channel(&account, &svc.sid, &r).await, "channel");
    assert_not_found(
        store
            .fetch_member(
                &account,
                &svc.sid,
                &r,
                &MemberRef::Sid(alice_in_doomed.sid.clone()),
            )
            .await,
        "member",
    );
    assert_not_found(
        store
            .list_members(&account, &svc.sid, &r, &[], &PageRequest::first(10))
            .await,
        "member list",
    );
    for m in &msgs {
        assert_not_found(
            store.fetch_message(&account, &svc.sid, &r, &m.sid).await,
            "message",
        );
    }
    assert_not_found(
        store
            .list_messages(
                &account,
                &svc.sid,
                &r,
                MessageOrder::Asc,
                &PageRequest::first(10),
            )
            .await,
        "message list",
    );
    assert_eq!(
        store
            .count_messages_after(&doomed.sid, -1)
            .await
            .expect("count"),
        0
    );
    assert_not_found(
        store.fetch_invite(&account, &svc.sid, &r, &inv.sid).await,
        "invite",
    );
    assert_eq!(joined_count(&store, &alice).await, 1);
    assert_eq!(joined_count(&store, &bob).await, 0);
    let alice_channels = store
        .list_user_channels(
            &account,
            &svc.sid,
            &UserRef::Sid(alice.sid.clone()),
            &PageRequest::first(10),
        )
        .await
        .expect("alice's channels");
    let sids: Vec<&ChannelSid> = alice_channels
        .items
        .iter()
        .map(|u| &u.channel_sid)
        .collect();
    assert_eq!(sids, [&kept.sid]);
    assert!(store
        .list_user_channels(
            &account,
            &svc.sid,
            &UserRef::Sid(carol.sid.clone()),
            &PageRequest::first(10),
        )
        .await
        .expect("carol's channels")
        .items
        .is_empty());
    let kept_now = refetch(&store, &kept).await;
    assert_eq!((kept_now.members_count, kept_now.messages_count), (1, 1));
    assert_eq!(
        store
            .fetch_message(&account, &svc.sid, &sid_ref(&kept), &kept_msg.sid)
            .await
            .expect("other channel's message"),
        kept_msg
    );
    let after: Vec<EventKind> = events_of(&store, &svc).await[events_before..]
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        after,
        vec![EventKind::ChannelRemoved],
        "one event, none per member, message or invite"
    );
}

// ---- members ------------------------------------------------------------------------------------

/// `channel_members` and `user_channels` limits are enforced with exact counts: the join
/// beyond a limit fails with the matching `LimitExceeded`, changes nothing, appends no event,
/// and succeeds once a member has left.
pub async fn member_limits_are_enforced_with_exact_counts(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let small = channel(&store, &svc, "small").await;
    let limits = MemberLimits {
        channel_members: 2,
        user_channels: 2,
    };
    let users = [
        user(&store, &svc, "u0").await,
        user(&store, &svc, "u1").await,
        user(&store, &svc, "u2").await,
    ];
    for u in &users[..2] {
        store
            .create_member(
                &member_value(&small, u, Timestamp::now()),
                &limits,
                None,
                &Origin::rest(),
            )
            .await
            .expect("join within limit");
    }
    let events_before = events_of(&store, &svc).await;

    // Act + Assert: channel full
    assert_limit(
        store
            .create_member(
                &member_value(&small, &users[2], Timestamp::now()),
                &limits,
                None,
                &Origin::rest(),
            )
            .await,
        Limit::ChannelMembers,
        "third member",
    );
    assert_eq!(refetch(&store, &small).await.members_count, 2);
    assert_eq!(joined_count(&store, &users[2]).await, 0);
    assert_eq!(events_of(&store, &svc).await, events_before);

    // user at their limit
    let (a, b) = (
        channel(&store, &svc, "a").await,
        channel(&store, &svc, "b").await,
    );
    store
        .create_member(
            &member_value(&a, &users[0], Timestamp::now()),
            &limits,
            None,
            &Origin::rest(),
        )
        .await
        .expect("second channel of u0");
    let events_before = events_of(&store, &svc).await;
    assert_limit(
        store
            .create_member(
                &member_value(&b, &users[0], Timestamp::now()),
                &limits,
                None,
                &Origin::rest(),
            )
            .await,
        Limit::UserChannels,
        "third channel of u0",
    );
    assert_eq!(refetch(&store, &b).await.members_count, 0);
    assert_eq!(joined_count(&store, &users[0]).await, 2);
    assert_eq!(events_of(&store, &svc).await, events_before);

    // room again after leaving
    store
        .delete_member(
            &account,
            &svc.sid,
            &sid_ref(&small),
            &MemberRef::Identity("u1".to_owned()),
            None,
            Timestamp::now(),
            &Origin::rest(),
        )
        .await
        .expect("u1 leaves");
    assert_eq!(refetch(&store, &small).await.members_count, 1);
    store
        .create_member(
            &member_value(&small, &users[2], Timestamp::now()),
            &limits,
            None,
            &Origin::rest(),
        )
        .await
        .expect("u2 joins after u1 left");
    assert_eq!(refetch(&store, &small).await.members_count, 2);
    let counts: HashSet<(String, i64)> = store
        .joined_channel_counts(
            &account,
            &svc.sid,
            &users.iter().map(|u| u.sid.clone()).collect::<Vec<_>>(),
        )
        .await
        .expect("counts")
        .into_iter()
        .map(|(s, n)| (s.as_str().to_owned(), n))
        .collect();
    let expected: HashSet<(String, i64)> = [
        (users[0].sid.as_str().to_owned(), 2),
        (users[2].sid.as_str().to_owned(), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected, "u1 (no channels) is absent");
}

/// Joining twice is `Conflict(MemberExists)` — even when the channel is also full — and
/// changes nothing.
pub async fn second_join_is_member_exists_and_changes_nothing(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "general").await;
    let alice = user(&store, &svc, "alice").await;
    let first = join(&store, &ch, &alice).await;
    let events_before = events_of(&store, &svc).await;
    let full = MemberLimits {
        channel_members: 1,
        user_channels: 1,
    };

    // Act
    let again = store
        .create_member(
            &member_value(&ch, &alice, Timestamp::now()),
            &NO_LIMITS,
            None,
            &Origin::rest(),
        )
        .await;
    let again_full = store
        .create_member(
            &member_value(&ch, &alice, Timestamp::now()),
            &full,
            None,
            &Origin::rest(),
        )
        .await;

    // Assert
    assert_conflict(again, Conflict::MemberExists, "second join");
    assert_conflict(
        again_full,
        Conflict::MemberExists,
        "second join into a full channel",
    );
    assert_eq!(refetch(&store, &ch).await.members_count, 1);
    assert_eq!(joined_count(&store, &alice).await, 1);
    assert_eq!(events_of(&store, &svc).await, events_before);
    let listed = store
        .list_members(
            &account,
            &svc.sid,
            &sid_ref(&ch),
            &[],
            &PageRequest::first(10),
        )
        .await
        .expect("list");
    assert_eq!(listed.items, vec![first]);
}

/// Members are found by SID or identity, listed with an `Identity` filter and paged, updated
/// field by field, and removed (with `members_count` following).
pub async fn members_are_fetched_by_sid_or_identity_filtered_and_updated(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "general").await;
    let role = svc.default_channel_role_sid.clone().expect("channel role");
    let mut members = Vec::new();
    for (i, name) in ["dave", "alice", "carol", "bob", "erin"].iter().enumerate() {
        let u = user(&store, &svc, name).await;
        let created = at(100 - i64::try_from(i).expect("small") / 2);
        let mut m = member_value(&ch, &u, created);
        m.role_sid = Some(role.clone());
        m.last_consumed_message_index = Some(3);
        m.last_consumption_timestamp = Some(at(7));
        m.notification_level = NotificationLevel::Muted;
        let stored = store
            .create_member(&m, &NO_LIMITS, None, &Origin::rest())
            .await
            .expect("join");
        assert_eq!(stored, m, "create returns the stored row");
        members.push(stored);
    }
    members.sort_by_key(|m| (m.date_created, m.sid.as_str().to_owned()));
    let r = sid_ref(&ch);
    let by_name = ChannelRef::UniqueName("general".to_owned());

    // Act + Assert: fetch
    for m in &members {
        let by_sid = store
            .fetch_member(&account, &svc.sid, &r, &MemberRef::Sid(m.sid.clone()))
            .await
            .expect("by sid");
        let by_identity = store
            .fetch_member(
                &account,
                &svc.sid,
                &by_name,
                &MemberRef::Identity(m.identity.clone()),
            )
            .await
            .expect("by identity");
        assert_eq!(&by_sid, m);
        assert_eq!(&by_identity, m);
    }
    assert_not_found(
        store
            .fetch_member(
                &account,
                &svc.sid,
                &r,
                &MemberRef::Identity("nobody".to_owned()),
            )
            .await,
        "unknown identity",
    );

    // list, paged, and filtered
    let mut seen = Vec::new();
    let mut req = PageRequest::first(2);
    loop {
        let page = store
            .list_members(&account, &svc.sid, &r, &[], &req)
            .await
            .expect("page");
        let last = page.items.last().cloned();
        seen.extend(page.items);
        match last {
            Some(m) if page.more => {
                req = super::cursor_sized(2, m.date_created, m.sid.as_str(), false)
            }
            _ => break,
        }
    }
    assert_eq!(seen, members);
    let filtered = store
        .list_members(
            &account,
            &svc.sid,
            &by_name,
            &["erin".to_owned(), "alice".to_owned(), "zed".to_owned()],
            &PageRequest::first(10),
        )
        .await
        .expect("filter");
    let expected: Vec<Member> = members
        .iter()
        .filter(|m| m.identity == "erin" || m.identity == "alice")
        .cloned()
        .collect();
    assert_eq!(filtered.items, expected);

    // update: only the given fields change
    let alice = members
        .iter()
        .find(|m| m.identity == "alice")
        .expect("alice")
        .clone();
    let updated = store
        .update_member(
            &account,
            &svc.sid,
            &r,
            &MemberRef::Identity("alice".to_owned()),
            &MemberUpdate {
                attributes: Some(r#"{"x":1}"#.to_owned()),
                notification_level: Some(NotificationLevel::Default),
                ..MemberUpdate::default()
            },
            at(500),
            &Origin::rest(),
        )
        .await
        .expect("update");
    assert_eq!(
        updated,
        Member {
            attributes: Some(r#"{"x":1}"#.to_owned()),
            notification_level: NotificationLevel::Default,
            date_updated: at(500),
            ..alice.clone()
        }
    );
    let updated = store
        .update_member(
            &account,
            &svc.sid,
            &r,
            &MemberRef::Sid(alice.sid.clone()),
            &MemberUpdate {
                role_sid: svc.default_channel_creator_role_sid.clone(),
                date_created: Some(at(3)),
                date_updated: Some(at(4)),
                ..MemberUpdate::default()
            },
            at(600),
            &Origin::rest(),
        )
        .await
        .expect("update role and dates");
    assert_eq!(updated.role_sid, svc.default_channel_creator_role_sid);
    assert_eq!((updated.date_created, updated.date_updated), (at(3), at(4)));
    assert_eq!(updated.attributes.as_deref(), Some(r#"{"x":1}"#));

    // delete
    store
        .delete_member(
            &account,
            &svc.sid,
            &by_name,
            &MemberRef::Sid(alice.sid.clone()),
            Some("admin"),
            Timestamp::now(),
            &Origin::rest(),
        )
        .await
        .expect("delete");
    assert_not_found(
        store
            .fetch_member(&account, &svc.sid, &r, &MemberRef::Sid(alice.sid.clone()))
            .await,
        "deleted member",
    );
    assert_not_found(
        store
            .delete_member(
                &account,
                &svc.sid,
                &r,
                &MemberRef::Sid(alice.sid.clone()),
                None,
                Timestamp::now(),
                &Origin::rest(),
            )
            .await,
        "delete twice",
    );
    assert_not_found(
        store
            .update_member(
                &account,
                &svc.sid,
                &r,
                &MemberRef::Sid(alice.sid.clone()),
                &MemberUpdate::default(),
                Timestamp::now(),
                &Origin::rest(),
            )
            .await,
        "update deleted",
    );
    assert_eq!(refetch(&store, &ch).await.members_count, 4);
}

/// Joining a channel deletes the identity's pending invite to it; the user channel turns
/// from `invited` into `joined`.
pub async fn joining_removes_the_pending_invite(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "general").await;
    let other = channel(&store, &svc, "other").await;
    let alice = user(&store, &svc, "alice").await;
    let inv = invite(&store, &ch, "alice").await;
    let other_inv = invite(&store, &other, "alice").await;
    let alice_ref = UserRef::Identity("alice".to_owned());
    let before = store
        .fetch_user_channel(&account, &svc.sid, &alice_ref, &sid_ref(&ch))
        .await
        .expect("invited");
    assert_eq!(before.status, UserChannelStatus::Invited);
    assert_eq!(before.member_sid, None);

    // Act
    let m = join(&store, &ch, &alice).await;

    // Assert
    assert_not_found(
        store
            .fetch_invite(&account, &svc.sid, &sid_ref(&ch), &inv.sid)
            .await,
        "the used invite",
    );
    assert_eq!(
        store
            .fetch_invite(&account, &svc.sid, &sid_ref(&other), &other_inv.sid)
            .await
            .expect("invite to another channel stays"),
        other_inv
    );
    let after = store
        .fetch_user_channel(&account, &svc.sid, &alice_ref, &sid_ref(&ch))
        .await
        .expect("joined");
    assert_eq!(after.status, UserChannelStatus::Joined);
    assert_eq!(after.member_sid, Some(m.sid));
    assert!(store
        .list_invites(
            &account,
            &svc.sid,
            &sid_ref(&ch),
            &[],
            &PageRequest::first(10)
        )
        .await
        .expect("invites")
        .items
        .is_empty());
}

/// Moving the horizon without a timestamp stamps `now`; a given timestamp is kept; an unchanged
/// horizon keeps the old timestamp. Unread counts are `None` without a horizon, else the
/// messages with a greater index.
pub async fn horizon_sets_its_timestamp_and_drives_unread_counts(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "general").await;
    let alice = user(&store, &svc, "alice").await;
    join(&store, &ch, &alice).await;
    for i in 0..5 {
        post(&store, &ch, &format!("m{i}")).await;
    }
    let r = sid_ref(&ch);
    let me = MemberRef::Identity("alice".to_owned());
    let alice_ref = UserRef::Sid(alice.sid.clone());
    let unread = || {
        let (store, account, service) = (store.clone(), account.clone(), svc.sid.clone());
        let (alice_ref, r) = (alice_ref.clone(), r.clone());
        async move {
            store
                .fetch_user_channel(&account, &service, &alice_ref, &r)
                .await
                .expect("user channel")
        }
    };
    let horizon = |index: Option<Option<i64>>, stamp: Option<Timestamp>| MemberUpdate {
        last_consumed_message_index: index,
        last_consumption_timestamp: stamp,
        ..MemberUpdate::default()
    };
    assert_eq!(unread().await.unread_messages_count, None);
    assert_eq!(unread().await.last_consumed_message_index, None);

    // Act + Assert: move to 2 without a timestamp
    let m = store
        .update_member(
            &account,
            &svc.sid,
            &r,
            &me,
            &horizon(Some(Some(2)), None),
            at(100),
            &Origin::rest(),
        )
        .await
        .expect("horizon 2");
    assert_eq!(m.last_consumed_message_index, Some(2));
    assert_eq!(m.last_consumption_timestamp, Some(at(100)));
    let uc = unread().await;
    assert_eq!(uc.last_consumed_message_index, Some(2));
    assert_eq!(uc.unread_messages_count, Some(2));
    assert_eq!(
        store.count_messages_after(&ch.sid, 2).await.expect("count"),
        2
    );

    // same horizon again: timestamp stays
    let m = store
        .update_member(
            &account,
            &svc.sid,
            &r,
            &me,
            &horizon(Some(Some(2)), None),
            at(200),
            &Origin::rest(),
        )
        .await
        .expect("same horizon");
    assert_eq!(m.last_consumption_timestamp, Some(at(100)));

    // an explicit timestamp wins
    let m = store
        .update_member(
            &account,
            &svc.sid,
            &r,
            &me,
            &horizon(Some(Some(4)), Some(at(42))),
            at(300),
            &Origin::rest(),
        )
        .await
        .expect("horizon 4 at 42");
    assert_eq!(m.last_consumed_message_index, Some(4));
    assert_eq!(m.last_consumption_timestamp, Some(at(42)));
    assert_eq!(unread().await.unread_messages_count, Some(0));

    // other updates leave the horizon alone
    let m = store
        .update_member(
            &account,
            &svc.sid,
            &r,
            &me,
            &horizon(None, None),
            at(400),
            &Origin::rest(),
        )
        .await
        .expect("no horizon change");
    assert_eq!(m.last_consumed_message_index, Some(4));
    assert_eq!(m.last_consumption_timestamp, Some(at(42)));

    // new messages are unread; a horizon before the first message counts them all
    post(&store, &ch, "m5").await;
    assert_eq!(unread().await.unread_messages_count, Some(1));
    store
        .update_member(
            &account,
            &svc.sid,
            &r,
            &me,
            &horizon(Some(Some(-1)), None),
            at(500),
            &Origin::rest(),
        )
        .await
        .expect("horizon -1");
    assert_eq!(unread().await.unread_messages_count, Some(6));

    // clearing: no horizon, no unread count
    let m = store
        .update_member(
            &account,
            &svc.sid,
            &r,
            &me,
            &horizon(Some(None), None),
            at(600),
            &Origin::rest(),
        )
        .await
        .expect("clear");
    assert_eq!(m.last_consumed_message_index, None);
    assert_eq!(unread().await.unread_messages_count, None);
}

/// A user whose user row is deleted leaves every channel: memberships and invites go, and the
/// channels' `members_count` stays exact.
pub async fn deleting_a_user_removes_its_memberships_and_keeps_counts_exact(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let one = channel(&store, &svc, "one").await;
    let two = channel(&store, &svc, "two").await;
    let alice = user(&store, &svc, "alice").await;
    let bob = user(&store, &svc, "bob").await;
    join(&store, &one, &alice).await;
    join(&store, &two, &alice).await;
    join(&store, &one, &bob).await;
    let inv = invite(&store, &two, "bob").await;

    // Act
    store
        .delete_user(
            &account,
            &svc.sid,
            &UserRef::Sid(alice.sid.clone()),
            &Origin::rest(),
        )
        .await
        .expect("delete alice");
    store
        .delete_user(
            &account,
            &svc.sid,
            &UserRef::Sid(bob.sid.clone()),
            &Origin::rest(),
        )
        .await
        .expect("delete bob");

    // Assert
    assert_eq!(refetch(&store, &one).await.members_count, 0);
    assert_eq!(refetch(&store, &two).await.members_count, 0);
    assert!(store
        .list_members(
            &account,
            &svc.sid,
            &sid_ref(&one),
            &[],
            &PageRequest::first(10)
        )
        .await
        .expect("members")
        .items
        .is_empty());
    assert_not_found(
        store
            .fetch_invite(&account, &svc.sid, &sid_ref(&two), &inv.sid)
            .await,
        "invite of a deleted user",
    );
    // The identity can come back and join again.
    let alice2 = user(&store, &svc, "alice").await;
    join(&store, &one, &alice2).await;
    assert_eq!(refetch(&store, &one).await.members_count, 1);
}

// ---- messages -----------------------------------------------------------------------------------

/// 64 concurrent posts into one channel get the indexes 0..=63, each once; the channel counts
/// 64 messages, its last message is index 63, and each post has its event.
pub async fn concurrent_messages_get_distinct_gapless_indexes(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "busy").await;

    // Act
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        let value = message_value(&ch, &format!("writer-{i}"), &format!("body {i}"));
        let r = if i % 2 == 0 {
            sid_ref(&ch)
        } else {
            ChannelRef::UniqueName("busy".to_owned())
        };
        tasks.push(tokio::spawn(async move {
            store.create_message(&r, &value, &Origin::rest()).await
        }));
    }
    let mut posted = Vec::new();
    for t in tasks {
        posted.push(t.await.expect("task").expect("post"));
    }

    // Assert
    let mut seen: Vec<i64> = posted.iter().map(|m| m.index).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..64).collect::<Vec<i64>>());
    let now = refetch(&store, &ch).await;
    assert_eq!(now.messages_count, 64);
    assert_eq!(now.last_message_index, Some(63));
    let last = posted.iter().find(|m| m.index == 63).expect("index 63");
    assert_eq!(now.last_message_sid.as_ref(), Some(&last.sid));
    let listed = store
        .list_messages(
            &account,
            &svc.sid,
            &sid_ref(&ch),
            MessageOrder::Asc,
            &PageRequest::first(100),
        )
        .await
        .expect("list");
    assert_eq!(indexes(&listed), (0..64).collect::<Vec<i64>>());
    let events: Vec<Event> = events_of(&store, &svc)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::NewMessage)
        .collect();
    assert_eq!(events.len(), 64);
    let event_pairs: HashSet<(String, i64)> = events
        .iter()
        .map(|e| {
            (
                e.message_sid
                    .as_ref()
                    .expect("message sid")
                    .as_str()
                    .to_owned(),
                e.message_index.expect("index"),
            )
        })
        .collect();
    let posted_pairs: HashSet<(String, i64)> = posted
        .iter()
        .map(|m| (m.sid.as_str().to_owned(), m.index))
        .collect();
    assert_eq!(event_pairs, posted_pairs);
}

/// Messages list by index ascending or descending; forward and backward cursors give the
/// neighbouring pages in list order with the right `more` flags.
pub async fn message_list_pages_in_both_orders_and_directions(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "history").await;
    let mut all = Vec::new();
    for i in 0..25 {
        all.push(post(&store, &ch, &format!("m{i}")).await);
    }
    let r = ChannelRef::UniqueName("history".to_owned());
    let list = |order: MessageOrder, req: PageRequest| {
        let store = store.clone();
        let account = account.clone();
        let svc = svc.sid.clone();
        let r = r.clone();
        async move {
            store
                .list_messages(&account, &svc, &r, order, &req)
                .await
                .expect("list")
        }
    };
    let range = |from: i64, to: i64| (from..to).collect::<Vec<i64>>();
    let rev = |from: i64, to: i64| (from..to).rev().collect::<Vec<i64>>();

    // Act + Assert: ascending, forward
    let p1 = list(MessageOrder::Asc, PageRequest::first(10)).await;
    assert_eq!(indexes(&p1), range(0, 10));
    assert!(p1.more);
    assert_eq!(p1.items, all[..10].to_vec(), "rows round-trip");
    let p2 = list(MessageOrder::Asc, message_cursor(10, &all[9], false)).await;
    assert_eq!(indexes(&p2), range(10, 20));
    assert!(p2.more);
    let p3 = list(MessageOrder::Asc, message_cursor(10, &all[19], false)).await;
    assert_eq!(indexes(&p3), range(20, 25));
    assert!(!p3.more);
    // ascending, backwards (come back ascending)
    let b2 = list(MessageOrder::Asc, message_cursor(10, &all[20], true)).await;
    assert_eq!(indexes(&b2), range(10, 20));
    assert!(b2.more);
    let b1 = list(MessageOrder::Asc, message_cursor(10, &all[10], true)).await;
    assert_eq!(indexes(&b1), range(0, 10));
    assert!(!b1.more);

    // descending, forward: newest first, towards smaller indexes
    let d1 = list(MessageOrder::Desc, PageRequest::first(10)).await;
    assert_eq!(indexes(&d1), rev(15, 25));
    assert!(d1.more);
    let d2 = list(MessageOrder::Desc, message_cursor(10, &all[15], false)).await;
    assert_eq!(indexes(&d2), rev(5, 15));
    assert!(d2.more);
    let d3 = list(MessageOrder::Desc, message_cursor(10, &all[5], false)).await;
    assert_eq!(indexes(&d3), rev(0, 5));
    assert!(!d3.more);
    // descending, backwards (come back newest first)
    let db2 = list(MessageOrder::Desc, message_cursor(10, &all[4], true)).await;
    assert_eq!(indexes(&db2), rev(5, 15));
    assert!(db2.more);
    let db1 = list(MessageOrder::Desc, message_cursor(10, &all[14], true)).await;
    assert_eq!(indexes(&db1), rev(15, 25));
    assert!(!db1.more);
    let short = list(MessageOrder::Desc, message_cursor(10, &all[21], true)).await;
    assert_eq!(indexes(&short), rev(22, 25));
    assert!(!short.more);
}

/// Editing the body sets `was_edited` (other edits do not); deleting keeps `messages_count`
/// exact and moves the last message to the newest one left; indexes are never reused.
pub async fn message_update_marks_edits_and_delete_keeps_counts_exact(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "general").await;
    let r = sid_ref(&ch);
    let m0 = post(&store, &ch, "zero").await;
    let m1 = post(&store, &ch, "one").await;
    let m2 = post(&store, &ch, "two").await;
    assert_eq!((m0.index, m1.index, m2.index), (0, 1, 2));
    assert_eq!(
        store
            .fetch_message(
                &account,
                &svc.sid,
                &ChannelRef::UniqueName("general".to_owned()),
                &m1.sid
            )
            .await
            .expect("fetch"),
        m1
    );

    // Act + Assert: attribute-only update
    let u = store
        .update_message(
            &account,
            &svc.sid,
            &r,
            &m0.sid,
            &MessageUpdate {
                attributes: Some(r#"{"pinned":true}"#.to_owned()),
                ..MessageUpdate::default()
            },
            at(10),
            &Origin::rest(),
        )
        .await
        .expect("update attributes");
    assert_eq!(
        u,
        Message {
            attributes: Some(r#"{"pinned":true}"#.to_owned()),
            date_updated: at(10),
            ..m0.clone()
        }
    );
    // body edit
    let u = store
        .update_message(
            &account,
            &svc.sid,
            &r,
            &m0.sid,
            &MessageUpdate {
                body: Some("zero!".to_owned()),
                last_updated_by: Some("alice".to_owned()),
                from: Some("alice".to_owned()),
                date_created: Some(at(1)),
                date_updated: Some(at(2)),
                ..MessageUpdate::default()
            },
            at(20),
            &Origin::rest(),
        )
        .await
        .expect("edit body");
    assert_eq!(
        u,
        Message {
            body: Some("zero!".to_owned()),
            last_updated_by: Some("alice".to_owned()),
            from: "alice".to_owned(),
            was_edited: true,
            attributes: Some(r#"{"pinned":true}"#.to_owned()),
            date_created: at(1),
            date_updated: at(2),
            ..m0.clone()
        }
    );
    let m1_fetched = store
        .fetch_message(&account, &svc.sid, &r, &m1.sid)
        .await
        .expect("m1");
    assert!(!m1_fetched.was_edited);
    let events_before = events_of(&store, &svc).await;

    // delete the newest: the last message moves back
    store
        .delete_message(&account, &svc.sid, &r, &m2.sid, &Origin::rest())
        .await
        .expect("delete m2");
    let now = refetch(&store, &ch).await;
    assert_eq!(now.messages_count, 2);
    assert_eq!(now.last_message_sid.as_ref(), Some(&m1.sid));
    assert_eq!(now.last_message_index, Some(1));
    // delete from the middle: the last message stays
    store
        .delete_message(&account, &svc.sid, &r, &m0.sid, &Origin::rest())
        .await
        .expect("delete m0");
    let now = refetch(&store, &ch).await;
    assert_eq!(now.messages_count, 1);
    assert_eq!(now.last_message_sid.as_ref(), Some(&m1.sid));
    assert_not_found(
        store
            .delete_message(&account, &svc.sid, &r, &m0.sid, &Origin::rest())
            .await,
        "delete twice",
    );
    assert_not_found(
        store.fetch_message(&account, &svc.sid, &r, &m0.sid).await,
        "deleted message",
    );
    assert_not_found(
        store
            .update_message(
                &account,
                &svc.sid,
                &r,
                &m0.sid,
                &MessageUpdate::default(),
                at(30),
                &Origin::rest(),
            )
            .await,
        "update deleted",
    );
    // delete the last one left: no last message
    store
        .delete_message(&account, &svc.sid, &r, &m1.sid, &Origin::rest())
        .await
        .expect("delete m1");
    let now = refetch(&store, &ch).await;
    assert_eq!(now.messages_count, 0);
    assert_eq!(now.last_message_sid, None);
    assert_eq!(now.last_message_index, None);
    let kinds: Vec<EventKind> = events_of(&store, &svc).await[events_before.len()..]
        .iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds
            .iter()
            .all(|k| matches!(k, EventKind::MessageUpdated | EventKind::MessageRemoved)),
        "edits and deletes append their own kinds only: {kinds:?}"
    );
    // the next index is never one used before
    let m3 = post(&store, &ch, "three").await;
    assert_eq!(m3.index, 3);
    let now = refetch(&store, &ch).await;
    assert_eq!((now.messages_count, now.last_message_index), (1, Some(3)));
    assert_eq!(now.last_message_sid, Some(m3.sid));
}

// ---- invites ------------------------------------------------------------------------------------

/// A second invite is `InviteExists`, inviting a member is `MemberExists`, an unknown identity
/// is `NotFound`; invites are fetched, listed with an `Identity` filter, paged and deleted.
pub async fn invites_conflict_list_and_delete(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "general").await;
    let r = sid_ref(&ch);
    let mut invites = Vec::new();
    for (i, name) in ["bob", "alice", "carol"].iter().enumerate() {
        user(&store, &svc, name).await;
        let mut value = invite_value(&ch, name, at(50 - i64::try_from(i).expect("small")));
        value.role_sid = svc.default_channel_role_sid.clone();
        let stored = store
            .create_invite(
                &ChannelRef::UniqueName("general".to_owned()),
                &value,
                &Origin::rest(),
            )
            .await
            .expect("invite");
        assert_eq!(stored, value, "create returns the stored row");
        invites.push(stored);
    }
    invites.sort_by_key(|i| (i.date_created, i.sid.as_str().to_owned()));
    let dave = user(&store, &svc, "dave").await;
    join(&store, &ch, &dave).await;
    let events_before = events_of(&store, &svc).await;

    // Act + Assert: conflicts and unknowns
    assert_conflict(
        store
            .create_invite(
                &r,
                &invite_value(&ch, "alice", Timestamp::now()),
                &Origin::rest(),
            )
            .await,
        Conflict::InviteExists,
        "second invite",
    );
    assert_conflict(
        store
            .create_invite(
                &r,
                &invite_value(&ch, "dave", Timestamp::now()),
                &Origin::rest(),
            )
            .await,
        Conflict::MemberExists,
        "invite a member",
    );
    assert_not_found(
        store
            .create_invite(
                &r,
                &invite_value(&ch, "nobody", Timestamp::now()),
                &Origin::rest(),
            )
            .await,
        "invite an unknown identity",
    );
    assert_not_found(
        store
            .create_invite(
                &ChannelRef::UniqueName("missing".to_owned()),
                &invite_value(&ch, "alice", Timestamp::now()),
                &Origin::rest(),
            )
            .await,
        "invite into a missing channel",
    );
    assert_eq!(events_of(&store, &svc).await, events_before);

    // fetch, list, filter, page
    for i in &invites {
        assert_eq!(
            &store
                .fetch_invite(&account, &svc.sid, &r, &i.sid)
                .await
                .expect("fetch"),
            i
        );
    }
    let all = store
        .list_invites(&account, &svc.sid, &r, &[], &PageRequest::first(10))
        .await
        .expect("list");
    assert_eq!(all.items, invites);
    let p1 = store
        .list_invites(&account, &svc.sid, &r, &[], &PageRequest::first(2))
        .await
        .expect("page 1");
    assert_eq!(p1.items, invites[..2].to_vec());
    assert!(p1.more);
    let p2 = store
        .list_invites(
            &account,
            &svc.sid,
            &r,
            &[],
            &super::cursor_sized(2, invites[1].date_created, invites[1].sid.as_str(), false),
        )
        .await
        .expect("page 2");
    assert_eq!(p2.items, invites[2..].to_vec());
    assert!(!p2.more);
    let carol_only = store
        .list_invites(
            &account,
            &svc.sid,
            &r,
            &["carol".to_owned()],
            &PageRequest::first(10),
        )
        .await
        .expect("filter");
    let carol: Vec<Invite> = invites
        .iter()
        .filter(|i| i.identity == "carol")
        .cloned()
        .collect();
    assert_eq!(carol_only.items, carol);

    // delete (an invite_removed event; a failed delete appends nothing)
    store
        .delete_invite(&account, &svc.sid, &r, &carol[0].sid, &Origin::rest())
        .await
        .expect("delete");
    let mut events_before = events_before;
    let removed = events_of(&store, &svc).await.pop().expect("invite_removed");
    assert_eq!(removed.kind, EventKind::InviteRemoved);
    assert_eq!(removed.invite_sid.as_ref(), Some(&carol[0].sid));
    events_before.push(removed);
    assert_not_found(
        store
            .fetch_invite(&account, &svc.sid, &r, &carol[0].sid)
            .await,
        "deleted invite",
    );
    assert_not_found(
        store
            .delete_invite(&account, &svc.sid, &r, &carol[0].sid, &Origin::rest())
            .await,
        "delete twice",
    );
    assert_eq!(events_of(&store, &svc).await, events_before);
    // after deletion the identity may be invited again
    invite(&store, &ch, "carol").await;
}

// ---- user channels ------------------------------------------------------------------------------

/// A user's channels mix memberships (`joined`, with member SID, horizon and unread count) and
/// pending invites (`invited`), ordered by `(date_created, channel_sid)` and paged both ways;
/// a channel the user has no relation to is `NotFound`.
pub async fn user_channels_mix_joined_and_invited_with_paging(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let alice = user(&store, &svc, "alice").await;
    let mut expected: Vec<UserChannel> = Vec::new();
    for i in 0..6_i64 {
        let ch = channel(&store, &svc, &format!("c{i}")).await;
        post(&store, &ch, "hello").await;
        post(&store, &ch, "again").await;
        let created = at(100 - i);
        if i % 2 == 0 {
            let mut m = member_value(&ch, &alice, created);
            m.last_consumed_message_index = (i == 0).then_some(0);
            m.notification_level = if i == 2 {
                NotificationLevel::Muted
            } else {
                NotificationLevel::Default
            };
            let m = store
                .create_member(&m, &NO_LIMITS, None, &Origin::rest())
                .await
                .expect("join");
            expected.push(UserChannel {
                account_sid: account.clone(),
                service_sid: svc.sid.clone(),
                channel_sid: ch.sid.clone(),
                user_sid: alice.sid.clone(),
                member_sid: Some(m.sid.clone()),
                status: UserChannelStatus::Joined,
                last_consumed_message_index: m.last_consumed_message_index,
                unread_messages_count: (i == 0).then_some(1),
                notification_level: m.notification_level,
                date_created: created,
            });
        } else {
            let inv = store
                .create_invite(
                    &sid_ref(&ch),
                    &invite_value(&ch, "alice", created),
                    &Origin::rest(),
                )
                .await
                .expect("invite");
            expected.push(UserChannel {
                account_sid: account.clone(),
                service_sid: svc.sid.clone(),
                channel_sid: inv.channel_sid.clone(),
                user_sid: alice.sid.clone(),
                member_sid: None,
                status: UserChannelStatus::Invited,
                last_consumed_message_index: None,
                unread_messages_count: None,
                notification_level: NotificationLevel::Default,
                date_created: created,
            });
        }
    }
    expected.sort_by_key(|u| (u.date_created, u.channel_sid.as_str().to_owned()));
    let stranger = channel(&store, &svc, "stranger").await;
    let bob = user(&store, &svc, "bob").await;
    join(&store, &stranger, &bob).await;
    let by_identity = UserRef::Identity("alice".to_owned());

    // Act
    let pages = all_pages(
        4,
        |u: &UserChannel| (u.date_created, u.channel_sid.as_str().to_owned()),
        {
            let store = store.clone();
            let account = account.clone();
            let service = svc.sid.clone();
            let by_identity = by_identity.clone();
            move |req: PageRequest| -> super::BoxFut<'static, StoreResult<Page<UserChannel>>> {
                let store = store.clone();
                let account = account.clone();
                let service = service.clone();
                let user = by_identity.clone();
                Box::pin(async move {
                    store
                        .list_user_channels(&account, &service, &user, &req)
                        .await
                })
            }
        },
    )
    .await;
    let back = store
        .list_user_channels(
            &account,
            &svc.sid,
            &UserRef::Sid(alice.sid.clone()),
            &super::cursor_sized(
                4,
                expected[4].date_created,
                expected[4].channel_sid.as_str(),
                true,
            ),
        )
        .await
        .expect("backwards");

    // Assert
    let sizes: Vec<usize> = pages.iter().map(|p| p.items.len()).collect();
    assert_eq!(sizes, [4, 2]);
    let seen: Vec<UserChannel> = pages.into_iter().flat_map(|p| p.items).collect();
    assert_eq!(seen, expected);
    assert_eq!(back.items, expected[..4].to_vec());
    assert!(!back.more);
    for uc in &expected {
        let fetched = store
            .fetch_user_channel(
                &account,
                &svc.sid,
                &by_identity,
                &ChannelRef::Sid(uc.channel_sid.clone()),
            )
            .await
            .expect("fetch user channel");
        assert_eq!(&fetched, uc);
    }
    assert_not_found(
        store
            .fetch_user_channel(&account, &svc.sid, &by_identity, &sid_ref(&stranger))
            .await,
        "a channel alice has nothing to do with",
    );
    assert_not_found(
        store
            .list_user_channels(
                &account,
                &svc.sid,
                &UserRef::Identity("nobody".to_owned()),
                &PageRequest::first(10),
            )
            .await,
        "unknown user",
    );
    assert_eq!(
        joined_count(&store, &alice).await,
        3,
        "invites do not count"
    );
}

// ---- events -------------------------------------------------------------------------------------

/// Deleting a service removes its channels and its change log.
pub async fn deleting_a_service_removes_its_channels_and_events(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "general").await;
    let alice = user(&store, &svc, "alice").await;
    join(&store, &ch, &alice).await;
    post(&store, &ch, "hello").await;
    assert_eq!(
        events_of(&store, &svc).await.len(),
        4,
        "channel_added, user_added, added_to_channel, new_message"
    );

    // Act
    store
        .delete_service(&account, &svc.sid)
        .await
        .expect("delete service");

    // Assert
    assert!(events_of(&store, &svc).await.is_empty());
    assert_not_found(
        store.fetch_channel(&account, &svc.sid, &sid_ref(&ch)).await,
        "channel of a deleted service",
    );
    assert_eq!(
        store
            .count_messages_after(&ch.sid, -1)
            .await
            .expect("count"),
        0
    );
}

// ---- tenancy ------------------------------------------------------------------------------------

/// Another account (or another service of the same account) holding valid SIDs sees
/// `NotFound` for every chat read and write, and nothing changes.
pub async fn another_accounts_chat_rows_are_not_found(store: DynStore) {
    // Arrange
    let owner = account(&store).await;
    let intruder = account(&store).await;
    let svc = service(&store, &owner).await;
    let other_svc = service(&store, &owner).await;
    let ch = channel(&store, &svc, "general").await;
    let alice = user(&store, &svc, "alice").await;
    user(&store, &svc, "bob").await;
    let m = join(&store, &ch, &alice).await;
    let msg = post(&store, &ch, "secret").await;
    let inv = invite(&store, &ch, "bob").await;
    let events_before = events_of(&store, &svc).await;
    let page = PageRequest::first(10);
    let refs = [sid_ref(&ch), ChannelRef::UniqueName("general".to_owned())];

    for (acct, service_sid, who) in [
        (&intruder, &svc.sid, "another account"),
        (&owner, &other_svc.sid, "another service"),
    ] {
        // channels
        let mut foreign = channel_value(&svc, Some("sneaky"), ChannelType::Public, at(0));
        foreign.account_sid = acct.clone();
        foreign.service_sid = service_sid.clone();
        if acct == &intruder {
            assert_not_found(
                store.create_channel(&foreign, &Origin::rest()).await,
                "create channel",
            );
        }
        assert!(store
            .list_channels(acct, service_sid, &[], &page)
            .await
            .expect("list channels")
            .items
            .iter()
            .all(|c| c.sid != ch.sid));
        for r in &refs {
            let ctx = |what: &str| format!("{who}: {what} via {r:?}");
            assert_not_found(
                store.fetch_channel(acct, service_sid, r).await,
                &ctx("fetch channel"),
            );
            assert_not_found(
                store
                    .update_channel(
                        acct,
                        service_sid,
                        r,
                        &ChannelUpdate {
                            friendly_name: Some(Some("pwned".to_owned())),
                            ..ChannelUpdate::default()
                        },
                        Timestamp::now(),
                        &Origin::rest(),
                    )
                    .await,
                &ctx("update channel"),
            );
            assert_not_found(
                store
                    .delete_channel(acct, service_sid, r, &Origin::rest())
                    .await,
                &ctx("delete channel"),
            );
            // members
            for mr in [
                MemberRef::Sid(m.sid.clone()),
                MemberRef::Identity("alice".to_owned()),
            ] {
                assert_not_found(
                    store.fetch_member(acct, service_sid, r, &mr).await,
                    &ctx("fetch member"),
                );
                assert_not_found(
                    store
                        .update_member(
                            acct,
                            service_sid,
                            r,
                            &mr,
                            &MemberUpdate {
                                attributes: Some("{}".to_owned()),
                                ..MemberUpdate::default()
                            },
                            Timestamp::now(),
                            &Origin::rest(),
                        )
                        .await,
                    &ctx("update member"),
                );
                assert_not_found(
                    store
                        .delete_member(
                            acct,
                            service_sid,
                            r,
                            &mr,
                            None,
                            Timestamp::now(),
                            &Origin::rest(),
                        )
                        .await,
                    &ctx("delete member"),
                );
            }
            assert_not_found(
                store.list_members(acct, service_sid, r, &[], &page).await,
                &ctx("list members"),
            );
            // messages
            let mut foreign_msg = message_value(&ch, "mallory", "spam");
            foreign_msg.account_sid = acct.clone();
            foreign_msg.service_sid = service_sid.clone();
            assert_not_found(
                store.create_message(r, &foreign_msg, &Origin::rest()).await,
                &ctx("post message"),
            );
            assert_not_found(
                store.fetch_message(acct, service_sid, r, &msg.sid).await,
                &ctx("fetch message"),
            );
            assert_not_found(
                store
                    .list_messages(acct, service_sid, r, MessageOrder::Desc, &page)
                    .await,
                &ctx("list messages"),
            );
            assert_not_found(
                store
                    .update_message(
                        acct,
                        service_sid,
                        r,
                        &msg.sid,
                        &MessageUpdate {
                            body: Some("edited".to_owned()),
                            ..MessageUpdate::default()
                        },
                        Timestamp::now(),
                        &Origin::rest(),
                    )
                    .await,
                &ctx("update message"),
            );
            assert_not_found(
                store
                    .delete_message(acct, service_sid, r, &msg.sid, &Origin::rest())
                    .await,
                &ctx("delete message"),
            );
            // invites
            let mut foreign_inv = invite_value(&ch, "bob", Timestamp::now());
            foreign_inv.account_sid = acct.clone();
            foreign_inv.service_sid = service_sid.clone();
            assert_not_found(
                store.create_invite(r, &foreign_inv, &Origin::rest()).await,
                &ctx("create invite"),
            );
            assert_not_found(
                store.fetch_invite(acct, service_sid, r, &inv.sid).await,
                &ctx("fetch invite"),
            );
            assert_not_found(
                store.list_invites(acct, service_sid, r, &[], &page).await,
                &ctx("list invites"),
            );
            assert_not_found(
                store
                    .delete_invite(acct, service_sid, r, &inv.sid, &Origin::rest())
                    .await,
                &ctx("delete invite"),
            );
            // user channels
            assert_not_found(
                store
                    .fetch_user_channel(acct, service_sid, &UserRef::Sid(alice.sid.clone()), r)
                    .await,
                &ctx("fetch user channel"),
            );
        }
        let mut foreign_member = member_value(&ch, &alice, Timestamp::now());
        foreign_member.sid = MemberSid::generate();
        foreign_member.account_sid = acct.clone();
        foreign_member.service_sid = service_sid.clone();
        assert_not_found(
            store
                .create_member(&foreign_member, &NO_LIMITS, None, &Origin::rest())
                .await,
            &format!("{who}: create member"),
        );
        assert_not_found(
            store
                .list_user_channels(acct, service_sid, &UserRef::Sid(alice.sid.clone()), &page)
                .await,
            &format!("{who}: list user channels"),
        );
        assert!(store
            .joined_channel_counts(acct, service_sid, std::slice::from_ref(&alice.sid))
            .await
            .expect("counts")
            .is_empty());
    }

    // Nothing changed for the owner.
    let r = sid_ref(&ch);
    let now = refetch(&store, &ch).await;
    assert_eq!(now.friendly_name, ch.friendly_name);
    assert_eq!((now.members_count, now.messages_count), (1, 1));
    assert_eq!(
        store
            .fetch_member(&owner, &svc.sid, &r, &MemberRef::Sid(m.sid.clone()))
            .await
            .expect("member"),
        m
    );
    assert_eq!(
        store
            .fetch_message(&owner, &svc.sid, &r, &msg.sid)
            .await
            .expect("message"),
        msg
    );
    assert_eq!(
        store
            .fetch_invite(&owner, &svc.sid, &r, &inv.sid)
            .await
            .expect("invite"),
        inv
    );
    assert_eq!(events_of(&store, &svc).await, events_before);
}

/// `import_message` keeps the given index, SID and dates, moves the channel's counters past it
/// (later posts continue after the highest index), and refuses a taken SID or index without
/// changing anything.
pub async fn imported_messages_keep_their_index_and_later_posts_continue(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "imported").await;
    let r = sid_ref(&ch);
    let mut m5 = message_value(&ch, "alice", "five");
    m5.index = 5;
    m5.was_edited = true;
    m5.date_created = at(100);
    m5.date_updated = at(200);
    let mut m2 = message_value(&ch, "bob", "two");
    m2.index = 2;
    m2.date_created = at(50);
    m2.date_updated = at(50);

    // Act
    let stored5 = store
        .import_message(&r, &m5, &Origin::rest())
        .await
        .expect("import 5");
    let stored2 = store
        .import_message(&r, &m2, &Origin::rest())
        .await
        .expect("import 2");

    // Assert: stored as given
    assert_eq!((stored5.index, stored2.index), (5, 2));
    assert_eq!(stored5.sid, m5.sid);
    assert!(stored5.was_edited);
    assert_eq!(
        (stored5.date_created, stored5.date_updated),
        (at(100), at(200))
    );
    let fetched = store
        .fetch_message(&account, &svc.sid, &r, &m2.sid)
        .await
        .expect("fetch 2");
    assert_eq!(fetched, stored2);
    let after = refetch(&store, &ch).await;
    assert_eq!(after.messages_count, 2);
    assert_eq!(
        after.last_message_index,
        Some(5),
        "the older import must not move it back"
    );
    assert_eq!(after.last_message_sid.as_ref(), Some(&m5.sid));

    // Act + Assert: a taken SID and a taken index conflict and change nothing
    let mut same_sid = m2.clone();
    same_sid.index = 9;
    assert_conflict(
        store.import_message(&r, &same_sid, &Origin::rest()).await,
        Conflict::SidTaken,
        "import of a taken SID",
    );
    let mut same_index = message_value(&ch, "carol", "again");
    same_index.index = 5;
    assert_conflict(
        store.import_message(&r, &same_index, &Origin::rest()).await,
        Conflict::SidTaken,
        "import of a taken index",
    );
    let unchanged = refetch(&store, &ch).await;
    assert_eq!(unchanged.messages_count, 2);
    assert_eq!(unchanged.last_message_index, Some(5));

    // Act + Assert: a normal post continues after the highest imported index
    let next = post(&store, &ch, "six").await;
    assert_eq!(next.index, 6);
    let all = store
        .list_messages(
            &account,
            &svc.sid,
            &r,
            MessageOrder::Asc,
            &PageRequest::first(50),
        )
        .await
        .expect("list");
    assert_eq!(indexes(&all), vec![2, 5, 6]);
    let kinds: Vec<EventKind> = events_of(&store, &svc)
        .await
        .iter()
        .map(|e| e.kind)
        .filter(|k| *k == EventKind::NewMessage)
        .collect();
    assert_eq!(kinds.len(), 3, "one new_message event per stored message");
}
