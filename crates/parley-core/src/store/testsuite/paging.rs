//! Keyset paging by `(date_created, sid)`.

use std::collections::HashSet;
use std::fmt::Debug;

use crate::binding::{Binding, BindingFilter};
use crate::credential::{Credential, PushType};
use crate::paging::{Page, PageRequest};
use crate::role::{Role, RoleType};
use crate::service::{NewService, Service};
use crate::user::{User, UserRef};
use crate::{RoleSid, Timestamp};

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
        users.push(store.create_user(&u).await.expect("create user"));
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
            .delete_user(&account, &svc.sid, &UserRef::Sid(gone.sid.clone()))
            .await
            .expect("delete user");
    }
    let before = store
        .create_user(&user_at(&svc, "new-before", at(-5)))
        .await
        .expect("insert before");
    let tied = store
        .create_user(&user_at(&svc, "new-tied", cursor_row.date_created))
        .await
        .expect("insert tied");
    let after = store
        .create_user(&user_at(&svc, "new-after", at(1000)))
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
        .create_user(&user_at(&svc, "alice", at(0)))
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
