//! Keyset paging by `(date_created, sid)`.

use crate::event::Origin;
use std::collections::HashSet;
use std::fmt::Debug;

use crate::binding::{Binding, BindingFilter};
use crate::channel::{ChannelRef, ChannelType, MessageOrder};
use crate::credential::{Credential, PushType};
use crate::paging::{Cursor, Page, PageRequest};
use crate::push::PushLogEntry;
use crate::role::{Role, RoleType};
use crate::service::{NewService, Service};
use crate::user::{User, UserRef};
use crate::{ChannelSid, RoleSid, Timestamp};

use super::chat::{channel_value, invite_value, member_value, message_value, NO_LIMITS};
use super::{
    account, all_pages, assert_not_found, at, credential_value, cursor, cursor_sized, registration,
    service, service_key, user_at, user_key, BoxFut, DynStore,
};
use crate::store::StoreResult;

/// 25 users of a fresh service, created in a scrambled order, three per `date_created` so the
/// SID tie-breaker matters. Returns the service and the users in list order.
async fn twenty_five_users(store: &DynStore) -> (Service, Vec<User>) {
    let account = account(store).await;
    let svc = service(store, &account).await;
    let mut users = Vec::new();
    for i in [
        7, 3, 24, 0, 11, 18, 5, 1, 22, 9, 14, 2, 20, 16, 8, 12, 4, 23, 10, 19, 6, 15, 21, 13, 17,
    ] {
        let u = user_at(&svc, &format!("user-{i:02}"), at(i / 3));
        users.push(
            store
                .create_user(&u, &Origin::rest())
                .await
                .expect("create user"),
        );
    }
    users.sort_by_key(user_key);
    (svc, users)
}

fn list_users_fn(
    store: &DynStore,
    svc: &Service,
) -> impl Fn(PageRequest) -> BoxFut<'static, StoreResult<Page<User>>> {
    let store = store.clone();
    let account = svc.account_sid.clone();
    let service = svc.sid.clone();
    move |req| {
        let store = store.clone();
        let account = account.clone();
        let service = service.clone();
        Box::pin(async move { store.list_users(&account, &service, &req).await })
    }
}

/// Paging 25 rows by 10 gives 10, 10 and 5 rows: every row exactly once, in
/// `(date_created, sid)` order, with `more` set on all pages but the last.
pub async fn keyset_pages_return_every_row_once_in_order(store: DynStore) {
    // Arrange
    let (svc, expected) = twenty_five_users(&store).await;

    // Act
    let pages = all_pages(10, user_key, list_users_fn(&store, &svc)).await;

    // Assert
    let sizes: Vec<usize> = pages.iter().map(|p| p.items.len()).collect();
    let more: Vec<bool> = pages.iter().map(|p| p.more).collect();
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(more, [true, true, false]);
    let seen: Vec<User> = pages.into_iter().flat_map(|p| p.items).collect();
    assert_eq!(seen, expected);
}

/// A backwards cursor at the first row of a page returns the page before it, ascending, with
/// `more` telling whether still earlier rows exist.
pub async fn backwards_cursor_returns_the_previous_page(store: DynStore) {
    // Arrange
    let (svc, expected) = twenty_five_users(&store).await;
    let list = list_users_fn(&store, &svc);
    let first_of_page_3 = &expected[20];
    let first_of_page_2 = &expected[10];

    // Act
    let back_from_3 = list(cursor(
        first_of_page_3.date_created,
        first_of_page_3.sid.as_str(),
        true,
    ))
    .await
    .expect("page before page 3");
    let back_from_2 = list(cursor(
        first_of_page_2.date_created,
        first_of_page_2.sid.as_str(),
        true,
    ))
    .await
    .expect("page before page 2");
    let back_from_4th = list(cursor(
        expected[3].date_created,
        expected[3].sid.as_str(),
        true,
    ))
    .await
    .expect("page before row 4");

    // Assert
    assert_eq!(back_from_3.items, expected[10..20].to_vec());
    assert!(back_from_3.more, "rows exist before page 2");
    assert_eq!(back_from_2.items, expected[0..10].to_vec());
    assert!(!back_from_2.more, "nothing before page 1");
    assert_eq!(back_from_4th.items, expected[0..3].to_vec());
    assert!(!back_from_4th.more);
}

/// Rows inserted or deleted between page requests (including the cursor row itself) do not make
/// the walk repeat or skip any row that survives; new rows appear exactly when they sort after
/// the cursor.
pub async fn rows_inserted_or_deleted_between_pages_are_neither_duplicated_nor_skipped(
    store: DynStore,
) {
    // Arrange
    let (svc, expected) = twenty_five_users(&store).await;
    let list = list_users_fn(&store, &svc);
    let page1 = list(PageRequest::first(10)).await.expect("page 1");
    assert_eq!(page1.items, expected[0..10].to_vec());
    let cursor_row = page1.items[9].clone();

    // Act: between the requests, delete the cursor row and a row of page 2, and insert rows
    // before the cursor, tied with it, and after everything.
    let account = svc.account_sid.clone();
    for gone in [&cursor_row, &expected[12]] {
        store
            .delete_user(
                &account,
                &svc.sid,
                &UserRef::Sid(gone.sid.clone()),
                &Origin::rest(),
            )
            .await
            .expect("delete user");
    }
    let before = store
        .create_user(&user_at(&svc, "new-before", at(-5)), &Origin::rest())
        .await
        .expect("insert before");
    let tied = store
        .create_user(
            &user_at(&svc, "new-tied", cursor_row.date_created),
            &Origin::rest(),
        )
        .await
        .expect("insert tied");
    let after = store
        .create_user(&user_at(&svc, "new-after", at(1000)), &Origin::rest())
        .await
        .expect("insert after");
    let mut rest = Vec::new();
    let mut req = cursor(cursor_row.date_created, cursor_row.sid.as_str(), false);
    loop {
        let page = list(req.clone()).await.expect("next page");
        let last = page.items.last().cloned();
        rest.extend(page.items);
        match last {
            Some(last) if page.more => {
                req = cursor(last.date_created, last.sid.as_str(), false);
            }
            _ => break,
        }
    }

    // Assert
    let sids: Vec<&str> = rest.iter().map(|u| u.sid.as_str()).collect();
    let unique: HashSet<&str> = sids.iter().copied().collect();
    assert_eq!(unique.len(), sids.len(), "no row twice");
    let mut in_order = rest.clone();
    in_order.sort_by_key(user_key);
    assert_eq!(in_order, rest, "ascending order");
    let survivors: Vec<User> = expected[10..]
        .iter()
        .filter(|u| u.sid != expected[12].sid)
        .cloned()
        .collect();
    let old_rows: Vec<User> = rest
        .iter()
        .filter(|u| !u.identity.starts_with("new-"))
        .cloned()
        .collect();
    assert_eq!(
        old_rows, survivors,
        "every surviving row after the cursor, once"
    );
    assert!(
        !unique.contains(before.sid.as_str()),
        "a row before the cursor is not seen"
    );
    assert!(
        unique.contains(after.sid.as_str()),
        "a row after everything is seen"
    );
    let tied_after_cursor = user_key(&tied) > user_key(&cursor_row);
    assert_eq!(
        unique.contains(tied.sid.as_str()),
        tied_after_cursor,
        "a row tied on date_created is seen iff its SID sorts after the cursor's"
    );
    assert_not_found(
        store
            .fetch_user(&account, &svc.sid, &UserRef::Sid(cursor_row.sid.clone()))
            .await,
        "the cursor row is gone",
    );
}

/// Check that walking `list` by 2 gives `expected` (already in list order), and that a
/// backwards cursor at the last page's first row gives the page before it.
async fn check_list<T, F>(what: &str, expected: Vec<T>, key: fn(&T) -> (Timestamp, String), list: F)
where
    T: Clone + PartialEq + Debug,
    F: Fn(PageRequest) -> BoxFut<'static, StoreResult<Page<T>>>,
{
    let pages = all_pages(2, key, &list).await;
    let n = expected.len();
    assert_eq!(pages.len(), n.div_ceil(2), "{what}: page count");
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(p.more, i + 1 < pages.len(), "{what}: more flag of page {i}");
    }
    let seen: Vec<T> = pages.iter().flat_map(|p| p.items.clone()).collect();
    assert_eq!(seen, expected, "{what}: rows in (date_created, sid) order");
    if let [.., before_last, last] = pages.as_slice() {
        let (date, sid) = key(&last.items[0]);
        let back = list(cursor_sized(2, date, &sid, true))
            .await
            .expect("backwards page");
        assert_eq!(back.items, before_last.items, "{what}: backwards page");
    }
}

/// Services, roles, credentials and bindings page like users: by `(date_created, sid)`,
/// `more` on all but the last page, and backwards cursors.
pub async fn every_list_pages_by_date_created_then_sid(store: DynStore) {
    // Arrange: five rows of each kind, two of them tied on date_created.
    let account = account(&store).await;
    let mut services = Vec::new();
    for secs in [4, 1, 3, 1, 0] {
        let new = NewService::with_defaults(&account, &format!("svc {secs}"), at(secs));
        services.push(store.create_service(&new).await.expect("create service"));
    }
    services.sort_by_key(service_key);
    let svc = services[0].clone();

    let mut roles = store
        .list_roles(&account, &svc.sid, &PageRequest::first(50))
        .await
        .expect("default roles")
        .items;
    for secs in [100, 50, 100] {
        let role = Role {
            sid: RoleSid::generate(),
            account_sid: account.clone(),
            service_sid: svc.sid.clone(),
            friendly_name: format!("role {secs}"),
            role_type: RoleType::Channel,
            permissions: vec!["sendMessage".to_owned()],
            date_created: at(secs),
            date_updated: at(secs),
        };
        roles.push(store.create_role(&role).await.expect("create role"));
    }
    fn role_key(r: &Role) -> (Timestamp, String) {
        (r.date_created, r.sid.as_str().to_owned())
    }
    roles.sort_by_key(role_key);

    let mut credentials = Vec::new();
    for secs in [9, 2, 9, 5, 0] {
        let mut c = credential_value(&account, PushType::Fcm);
        c.date_created = at(secs);
        c.date_updated = at(secs);
        credentials.push(
            store
                .create_credential(&c)
                .await
                .expect("create credential"),
        );
    }
    fn credential_key(c: &Credential) -> (Timestamp, String) {
        (c.date_created, c.sid.as_str().to_owned())
    }
    credentials.sort_by_key(credential_key);

    let alice = store
        .create_user(&user_at(&svc, "alice", at(0)), &Origin::rest())
        .await
        .expect("create user");
    let mut bindings = Vec::new();
    for (i, secs) in [3, 3, 1, 7, 0].into_iter().enumerate() {
        let reg = registration(
            &alice,
            PushType::Apn,
            &format!("e{i}"),
            &format!("t{i}"),
            at(secs),
        );
        bindings.push(
            store
                .register_binding(&reg)
                .await
                .expect("register")
                .binding,
        );
    }
    fn binding_key(b: &Binding) -> (Timestamp, String) {
        (b.date_created, b.sid.as_str().to_owned())
    }
    bindings.sort_by_key(binding_key);

    // Act + Assert
    let (s, a) = (store.clone(), account.clone());
    check_list("services", services, service_key, move |req| {
        let (s, a) = (s.clone(), a.clone());
        Box::pin(async move { s.list_services(&a, &req).await })
    })
    .await;
    let (s, a, v) = (store.clone(), account.clone(), svc.sid.clone());
    check_list("roles", roles, role_key, move |req| {
        let (s, a, v) = (s.clone(), a.clone(), v.clone());
        Box::pin(async move { s.list_roles(&a, &v, &req).await })
    })
    .await;
    let (s, a) = (store.clone(), account.clone());
    check_list("credentials", credentials, credential_key, move |req| {
        let (s, a) = (s.clone(), a.clone());
        Box::pin(async move { s.list_credentials(&a, &req).await })
    })
    .await;
    let (s, a, v) = (store.clone(), account.clone(), svc.sid.clone());
    check_list("bindings", bindings, binding_key, move |req| {
        let (s, a, v) = (s.clone(), a.clone(), v.clone());
        Box::pin(async move {
            s.list_bindings(&a, &v, &BindingFilter::default(), &req)
                .await
        })
    })
    .await;
}

/// Walk `list` by pages of `size` following only the cursors the pages return: forward from the
/// first page until a page has no `next`, then backwards from the last page by `prev` until a
/// page has none. Both walks must give `expected` (in list order) in the same pages; the first
/// page has no `prev`, every later one has; the `next` of a page reached backwards leads to the
/// page after it.
async fn walk_both_ways<T, F>(what: &str, size: u32, expected: &[T], list: F)
where
    T: Clone + PartialEq + Debug,
    F: Fn(PageRequest) -> BoxFut<'static, StoreResult<Page<T>>>,
{
    assert!(
        expected.len() > 2 * size as usize,
        "{what}: at least three pages"
    );
    let at = |cursor: Option<Cursor>| PageRequest { size, cursor };

    let mut forward: Vec<Page<T>> = Vec::new();
    let mut req = PageRequest::first(size);
    loop {
        let page = list(req).await.expect("forward page");
        assert_eq!(
            page.prev.is_some(),
            !forward.is_empty(),
            "{what}: only pages after the first have a previous page"
        );
        assert!(
            page.next.as_ref().is_none_or(|c| !c.backwards),
            "{what}: next cursors go forward"
        );
        let next = page.next.clone();
        forward.push(page);
        match next {
            Some(c) => req = at(Some(c)),
            None => break,
        }
        assert!(forward.len() <= expected.len(), "{what}: forward walk ends");
    }
    let seen: Vec<T> = forward.iter().flat_map(|p| p.items.clone()).collect();
    assert_eq!(
        seen, expected,
        "{what}: forward walk gives every row once, in order"
    );

    let mut backward: Vec<Page<T>> = Vec::new();
    let mut prev = forward.last().and_then(|p| p.prev.clone());
    while let Some(c) = prev {
        assert!(c.backwards, "{what}: previous cursors go backwards");
        let page = list(at(Some(c))).await.expect("backward page");
        prev = page.prev.clone();
        backward.push(page);
        assert!(
            backward.len() <= expected.len(),
            "{what}: backward walk ends"
        );
    }
    backward.reverse();
    let back_items: Vec<Vec<T>> = backward.iter().map(|p| p.items.clone()).collect();
    let forward_items: Vec<Vec<T>> = forward[..forward.len() - 1]
        .iter()
        .map(|p| p.items.clone())
        .collect();
    assert_eq!(
        back_items, forward_items,
        "{what}: backward walk gives the pages before the last, in order"
    );
    for (i, page) in backward.iter().enumerate() {
        let after = list(at(page.next.clone())).await.expect("page after");
        assert!(
            page.next.is_some(),
            "{what}: page {i} reached backwards has a next page"
        );
        assert_eq!(
            after.items,
            forward[i + 1].items,
            "{what}: next of page {i} reached backwards"
        );
    }
}

/// Boxed list call over a store, for [`walk_both_ways`].
fn lister<T, Fut>(
    store: &DynStore,
    call: impl Fn(DynStore, PageRequest) -> Fut + Send + Sync + 'static,
) -> impl Fn(PageRequest) -> BoxFut<'static, StoreResult<Page<T>>>
where
    Fut: std::future::Future<Output = StoreResult<Page<T>>> + Send + 'static,
{
    let store = store.clone();
    move |req| Box::pin(call(store.clone(), req))
}

/// Every list — services, credentials, users, roles, bindings, channels, members, messages in
/// both orders, invites, a user's channels and the push log — returns pages whose own `next` /
/// `prev` cursors walk it in order, forward and back, with no cursor rebuilt by the caller.
pub async fn returned_cursors_page_through_every_list_in_order_both_ways(store: DynStore) {
    // Arrange: seven rows of each kind, some tied on date_created.
    const SECS: [i64; 7] = [5, 1, 3, 1, 0, 6, 3];
    let account = account(&store).await;
    let mut services = Vec::new();
    for secs in SECS {
        let new = NewService::with_defaults(&account, &format!("svc {secs}"), at(secs));
        services.push(store.create_service(&new).await.expect("create service"));
    }
    services.sort_by_key(service_key);
    let svc = services[0].clone();

    let mut credentials = Vec::new();
    for secs in SECS {
        let mut c = credential_value(&account, PushType::Apn);
        c.date_created = at(secs);
        credentials.push(store.create_credential(&c).await.expect("credential"));
    }
    credentials.sort_by_key(|c| (c.date_created, c.sid.as_str().to_owned()));

    let mut users = Vec::new();
    for (i, secs) in SECS.into_iter().enumerate() {
        let u = user_at(&svc, &format!("user {i}"), at(secs));
        users.push(
            store
                .create_user(&u, &Origin::rest())
                .await
                .expect("create user"),
        );
    }
    users.sort_by_key(user_key);
    let alice = users[0].clone();

    let mut roles = store
        .list_roles(&account, &svc.sid, &PageRequest::first(100))
        .await
        .expect("default roles")
        .items;
    for secs in SECS {
        let role = Role {
            sid: RoleSid::generate(),
            account_sid: account.clone(),
            service_sid: svc.sid.clone(),
            friendly_name: format!("role {secs}"),
            role_type: RoleType::Deployment,
            permissions: vec!["createChannel".to_owned()],
            date_created: at(secs),
            date_updated: at(secs),
        };
        roles.push(store.create_role(&role).await.expect("create role"));
    }
    roles.sort_by_key(|r| (r.date_created, r.sid.as_str().to_owned()));

    let mut bindings = Vec::new();
    for (i, secs) in SECS.into_iter().enumerate() {
        let reg = registration(
            &alice,
            PushType::Fcm,
            &format!("e{i}"),
            &format!("t{i}"),
            at(secs),
        );
        let b = store
            .register_binding(&reg)
            .await
            .expect("register")
            .binding;
        bindings.push(b);
    }
    bindings.sort_by_key(|b| (b.date_created, b.sid.as_str().to_owned()));

    let mut channels = Vec::new();
    for (i, secs) in SECS.into_iter().enumerate() {
        let c = channel_value(&svc, Some(&format!("ch{i}")), ChannelType::Public, at(secs));
        channels.push(
            store
                .create_channel(&c, &Origin::rest())
                .await
                .expect("create channel"),
        );
    }
    channels.sort_by_key(|c| (c.date_created, c.sid.as_str().to_owned()));
    let room = channels[0].clone();
    let room_ref = ChannelRef::Sid(room.sid.clone());

    let mut members = Vec::new();
    for (u, secs) in users.iter().zip(SECS) {
        let m = member_value(&room, u, at(secs));
        members.push(
            store
                .create_member(&m, &NO_LIMITS, None, &Origin::rest())
                .await
                .expect("join"),
        );
    }
    members.sort_by_key(|m| (m.date_created, m.sid.as_str().to_owned()));

    let mut messages = Vec::new();
    for i in 0..SECS.len() {
        let m = message_value(&room, "system", &format!("message {i}"));
        messages.push(
            store
                .create_message(&room_ref, &m, &Origin::rest())
                .await
                .expect("post"),
        );
    }
    messages.sort_by_key(|m| m.index);
    let mut messages_desc = messages.clone();
    messages_desc.reverse();

    let lobby = channels[1].clone();
    let mut invites = Vec::new();
    for (u, secs) in users.iter().zip(SECS) {
        let inv = invite_value(&lobby, &u.identity, at(secs));
        invites.push(
            store
                .create_invite(&ChannelRef::Sid(lobby.sid.clone()), &inv, &Origin::rest())
                .await
                .expect("invite"),
        );
    }
    invites.sort_by_key(|i| (i.date_created, i.sid.as_str().to_owned()));

    // Alice: a member of `room`, invited to `lobby`, and joins four more channels.
    for (c, secs) in channels[2..6].iter().zip(SECS) {
        store
            .create_member(
                &member_value(c, &alice, at(secs)),
                &NO_LIMITS,
                None,
                &Origin::rest(),
            )
            .await
            .expect("alice joins");
    }
    let user_channels = store
        .list_user_channels(
            &account,
            &svc.sid,
            &UserRef::Sid(alice.sid.clone()),
            &PageRequest::first(100),
        )
        .await
        .expect("alice's channels")
        .items;
    assert_eq!(user_channels.len(), 6, "five memberships and one invite");
    let mut sorted = user_channels.clone();
    sorted.sort_by_key(|u| (u.date_created, u.channel_sid.as_str().to_owned()));
    assert_eq!(
        sorted, user_channels,
        "a user's channels list in (date_created, channel_sid) order"
    );

    for (i, secs) in SECS.into_iter().enumerate() {
        let entry = PushLogEntry {
            seq: 0,
            id: format!("delivery-{i}"),
            account_sid: account.clone(),
            service_sid: svc.sid.clone(),
            event_id: i64::try_from(i).expect("small"),
            kind: "new_message".to_owned(),
            binding_sid: bindings[0].sid.clone(),
            identity: alice.identity.clone(),
            binding_type: PushType::Fcm,
            outcome: "delivered".to_owned(),
            reason: None,
            attempt: 1,
            date_created: at(secs),
        };
        store.append_push_log(&entry).await.expect("append log");
    }
    let push_log = store
        .list_push_log(&account, &svc.sid, &PageRequest::first(100))
        .await
        .expect("push log")
        .items;
    assert_eq!(push_log.len(), SECS.len(), "every log row");
    let mut sorted = push_log.clone();
    sorted.sort_by_key(|e| (e.date_created, e.seq));
    assert_eq!(
        sorted, push_log,
        "the push log lists in (date_created, seq) order"
    );

    // Channels as they are now (memberships and messages changed their counts), still in the
    // order they were created in.
    let order: Vec<ChannelSid> = channels.iter().map(|c| c.sid.clone()).collect();
    let channels = store
        .list_channels(&account, &svc.sid, &[], &PageRequest::first(100))
        .await
        .expect("channels")
        .items;
    let listed: Vec<ChannelSid> = channels.iter().map(|c| c.sid.clone()).collect();
    assert_eq!(listed, order, "channels list in (date_created, sid) order");

    // Act + Assert
    let a = account.clone();
    walk_both_ways(
        "services",
        2,
        &services,
        lister(&store, move |s, req| {
            let a = a.clone();
            async move { s.list_services(&a, &req).await }
        }),
    )
    .await;
    let a = account.clone();
    walk_both_ways(
        "credentials",
        2,
        &credentials,
        lister(&store, move |s, req| {
            let a = a.clone();
            async move { s.list_credentials(&a, &req).await }
        }),
    )
    .await;
    let (a, v) = (account.clone(), svc.sid.clone());
    walk_both_ways(
        "users",
        2,
        &users,
        lister(&store, move |s, req| {
            let (a, v) = (a.clone(), v.clone());
            async move { s.list_users(&a, &v, &req).await }
        }),
    )
    .await;
    let (a, v) = (account.clone(), svc.sid.clone());
    walk_both_ways(
        "roles",
        3,
        &roles,
        lister(&store, move |s, req| {
            let (a, v) = (a.clone(), v.clone());
            async move { s.list_roles(&a, &v, &req).await }
        }),
    )
    .await;
    let (a, v) = (account.clone(), svc.sid.clone());
    walk_both_ways(
        "bindings",
        2,
        &bindings,
        lister(&store, move |s, req| {
            let (a, v) = (a.clone(), v.clone());
            async move {
                s.list_bindings(&a, &v, &BindingFilter::default(), &req)
                    .await
            }
        }),
    )
    .await;
    let (a, v) = (account.clone(), svc.sid.clone());
    walk_both_ways(
        "channels",
        2,
        &channels,
        lister(&store, move |s, req| {
            let (a, v) = (a.clone(), v.clone());
            async move { s.list_channels(&a, &v, &[], &req).await }
        }),
    )
    .await;
    let (a, v, c) = (account.clone(), svc.sid.clone(), room_ref.clone());
    walk_both_ways(
        "members",
        2,
        &members,
        lister(&store, move |s, req| {
            let (a, v, c) = (a.clone(), v.clone(), c.clone());
            async move { s.list_members(&a, &v, &c, &[], &req).await }
        }),
    )
    .await;
    for (order, expected) in [
        (MessageOrder::Asc, &messages),
        (MessageOrder::Desc, &messages_desc),
    ] {
        let (a, v, c) = (account.clone(), svc.sid.clone(), room_ref.clone());
        walk_both_ways(
            &format!("messages {order:?}"),
            2,
            expected,
            lister(&store, move |s, req| {
                let (a, v, c) = (a.clone(), v.clone(), c.clone());
                async move { s.list_messages(&a, &v, &c, order, &req).await }
            }),
        )
        .await;
    }
    let (a, v, c) = (
        account.clone(),
        svc.sid.clone(),
        ChannelRef::Sid(lobby.sid.clone()),
    );
    walk_both_ways(
        "invites",
        2,
        &invites,
        lister(&store, move |s, req| {
            let (a, v, c) = (a.clone(), v.clone(), c.clone());
            async move { s.list_invites(&a, &v, &c, &[], &req).await }
        }),
    )
    .await;
    let (a, v) = (account.clone(), svc.sid.clone());
    let by_identity = UserRef::Identity(alice.identity.clone());
    walk_both_ways(
        "user channels",
        2,
        &user_channels,
        lister(&store, move |s, req| {
            let (a, v, u) = (a.clone(), v.clone(), by_identity.clone());
            async move { s.list_user_channels(&a, &v, &u, &req).await }
        }),
    )
    .await;
    let (a, v) = (account.clone(), svc.sid.clone());
    walk_both_ways(
        "push log",
        2,
        &push_log,
        lister(&store, move |s, req| {
            let (a, v) = (a.clone(), v.clone());
            async move { s.list_push_log(&a, &v, &req).await }
        }),
    )
    .await;
}
