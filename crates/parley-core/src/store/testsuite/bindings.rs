//! Bindings: SDK registration (upsert, address ownership, per-user cap, races), filters,
//! scoping, the stale sweep and counts.

use std::collections::HashSet;
use std::sync::Arc;

use crate::binding::{Binding, BindingFilter};
use crate::credential::PushType;
use crate::paging::PageRequest;
use crate::user::User;
use crate::{BindingSid, Timestamp, UserSid};

use super::{
    account, all_pages, assert_not_found, at, credential, registration, service, user, user_at,
    DynStore,
};

fn binding_key(b: &Binding) -> (Timestamp, String) {
    (b.date_created, b.sid.as_str().to_owned())
}

async fn list(store: &DynStore, user: &User, filter: BindingFilter) -> Vec<Binding> {
    store
        .list_bindings(
            &user.account_sid,
            &user.service_sid,
            &filter,
            &PageRequest::first(50),
        )
        .await
        .expect("list bindings")
        .items
}

/// The first registration creates a binding as given; registering the same (identity,
/// endpoint, type) again updates it in place — same SID and `date_created`, new address,
/// credential, message types and `date_updated` — and reports `created = false`.
pub async fn register_creates_then_re_register_refreshes_the_same_binding(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let alice = user(&store, &svc, "alice").await;
    let cred = credential(&store, &account, PushType::Fcm).await;
    let first = registration(&alice, PushType::Fcm, "install-1", "token-A", at(0));

    // Act
    let created = store.register_binding(&first).await.expect("first");
    let mut again = registration(&alice, PushType::Fcm, "install-1", "token-B", at(60));
    again.message_types = vec!["new_message".to_owned()];
    again.credential_sid = Some(cred.sid.clone());
    let refreshed = store.register_binding(&again).await.expect("second");

    // Assert
    assert!(created.created);
    let b = &created.binding;
    assert_eq!(b.sid, first.sid);
    assert_eq!(
        (
            b.account_sid.clone(),
            b.service_sid.clone(),
            b.user_sid.clone()
        ),
        (account.clone(), svc.sid.clone(), alice.sid.clone())
    );
    assert_eq!(b.identity, "alice");
    assert_eq!(b.binding_type, PushType::Fcm);
    assert_eq!(b.endpoint, "install-1");
    assert_eq!(b.address, "token-A");
    assert_eq!(b.credential_sid, None);
    assert_eq!(b.message_types, first.message_types);
    assert_eq!((b.date_created, b.date_updated), (at(0), at(0)));

    assert!(!refreshed.created);
    let r = &refreshed.binding;
    assert_eq!(r.sid, first.sid, "SID kept");
    assert_eq!(r.date_created, at(0), "date_created kept");
    assert_eq!(r.date_updated, at(60));
    assert_eq!(r.address, "token-B");
    assert_eq!(r.message_types, vec!["new_message".to_owned()]);
    assert_eq!(r.credential_sid, Some(cred.sid.clone()));
    assert_eq!(
        store
            .fetch_binding(&account, &svc.sid, &first.sid)
            .await
            .expect("fetch"),
        *r
    );
    assert_not_found(
        store.fetch_binding(&account, &svc.sid, &again.sid).await,
        "the unused SID of the refresh",
    );
    assert_eq!(
        list(&store, &alice, BindingFilter::default()).await,
        vec![r.clone()]
    );

    // The same endpoint with another binding type is another binding.
    let other_type = store
        .register_binding(&registration(
            &alice,
            PushType::Apn,
            "install-1",
            "token-C",
            at(70),
        ))
        .await
        .expect("other type");
    assert!(other_type.created);
    assert_eq!(
        store
            .count_user_bindings(&account, &svc.sid, &alice.sid)
            .await
            .expect("count"),
        2
    );
}

/// A device token (type + address) belongs to one (identity, endpoint) per service: whoever
/// registers it last keeps it, the previous holder's binding is deleted. The same token under
/// another type, or in another service, is unaffected.
pub async fn an_address_moves_to_the_identity_that_registers_it_last(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let other_svc = service(&store, &account).await;
    let alice = user(&store, &svc, "alice").await;
    let bob = user(&store, &svc, "bob").await;
    let carol = user(&store, &svc, "carol").await;
    let alice_elsewhere = user(&store, &other_svc, "alice").await;
    let shared = "device-token-1";
    let alices = store
        .register_binding(&registration(
            &alice,
            PushType::Apn,
            "alice-phone",
            shared,
            at(1),
        ))
        .await
        .expect("alice")
        .binding;
    let carols = store
        .register_binding(&registration(
            &carol,
            PushType::Fcm,
            "carol-phone",
            shared,
            at(2),
        ))
        .await
        .expect("carol, other type")
        .binding;
    let elsewhere = store
        .register_binding(&registration(
            &alice_elsewhere,
            PushType::Apn,
            "p",
            shared,
            at(3),
        ))
        .await
        .expect("other service")
        .binding;

    // Act: bob logs in on alice's phone.
    let bobs = store
        .register_binding(&registration(
            &bob,
            PushType::Apn,
            "bob-phone",
            shared,
            at(4),
        ))
        .await
        .expect("bob");

    // Assert
    assert!(bobs.created);
    assert_not_found(
        store.fetch_binding(&account, &svc.sid, &alices.sid).await,
        "alice's binding of the moved token",
    );
    let count = |u: &User| {
        let (store, u) = (store.clone(), u.clone());
        async move {
            store
                .count_user_bindings(&u.account_sid, &u.service_sid, &u.sid)
                .await
                .expect("count")
        }
    };
    assert_eq!(count(&alice).await, 0);
    assert_eq!(count(&bob).await, 1);
    assert_eq!(
        store
            .fetch_binding(&account, &svc.sid, &carols.sid)
            .await
            .expect("carol's fcm binding stays"),
        carols
    );
    assert_eq!(
        store
            .fetch_binding(&account, &other_svc.sid, &elsewhere.sid)
            .await
            .expect("other service's binding stays"),
        elsewhere
    );

    // Moving to another endpoint of the same identity also replaces the old binding.
    let bob_again = store
        .register_binding(&registration(
            &bob,
            PushType::Apn,
            "bob-phone-reinstalled",
            shared,
            at(5),
        ))
        .await
        .expect("bob reinstall");
    assert!(bob_again.created);
    assert_not_found(
        store
            .fetch_binding(&account, &svc.sid, &bobs.binding.sid)
            .await,
        "bob's old endpoint",
    );
    let apn_holders = list(
        &store,
        &bob,
        BindingFilter {
            types: vec![PushType::Apn],
            ..BindingFilter::default()
        },
    )
    .await;
    assert_eq!(apn_holders, vec![bob_again.binding]);
}

/// Beyond `max_per_user`, registration deletes the user's least recently updated bindings
/// (a refresh counts as an update); the binding just registered is always kept, and other
/// users are unaffected.
pub async fn per_user_cap_evicts_the_least_recently_updated_binding(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let alice = user(&store, &svc, "alice").await;
    let bob = user(&store, &svc, "bob").await;
    let reg = |endpoint: &str, secs: i64| {
        let mut r = registration(
            &alice,
            PushType::Fcm,
            endpoint,
            &format!("tok-{endpoint}"),
            at(secs),
        );
        r.max_per_user = 3;
        r
    };
    let mut sids = std::collections::HashMap::new();
    for (endpoint, secs) in [("e1", 1), ("e2", 2), ("e3", 3)] {
        let b = store
            .register_binding(&reg(endpoint, secs))
            .await
            .expect("register");
        sids.insert(endpoint, b.binding.sid);
    }
    for i in 0..4 {
        store
            .register_binding(&registration(
                &bob,
                PushType::Fcm,
                &format!("b{i}"),
                &format!("bob-{i}"),
                at(i),
            ))
            .await
            .expect("bob");
    }
    store
        .register_binding(&reg("e1", 4))
        .await
        .expect("refresh e1");

    // Act
    let e4 = store
        .register_binding(&reg("e4", 5))
        .await
        .expect("register e4");

    // Assert
    let endpoints = |bs: Vec<Binding>| {
        let mut e: Vec<String> = bs.into_iter().map(|b| b.endpoint).collect();
        e.sort();
        e
    };
    let alice_filter = BindingFilter {
        user_sid: Some(alice.sid.clone()),
        ..BindingFilter::default()
    };
    assert!(e4.created);
    assert_eq!(
        endpoints(list(&store, &alice, alice_filter.clone()).await),
        ["e1", "e3", "e4"],
        "e2 was the least recently updated"
    );
    assert_not_found(
        store.fetch_binding(&account, &svc.sid, &sids["e2"]).await,
        "evicted binding",
    );
    assert_eq!(
        store
            .count_user_bindings(&account, &svc.sid, &bob.sid)
            .await
            .expect("bob count"),
        4,
        "the cap is per user"
    );

    // A registration stamped earlier than every other binding (clock skew) is still kept.
    let skewed = store
        .register_binding(&reg("e5", 0))
        .await
        .expect("register e5");
    assert_eq!(
        endpoints(list(&store, &alice, alice_filter).await),
        ["e1", "e4", "e5"]
    );
    assert_eq!(
        store
            .fetch_binding(&account, &svc.sid, &skewed.binding.sid)
            .await
            .expect("e5 kept"),
        skewed.binding
    );
}

/// 32 simultaneous identical registrations (each with its own candidate SID) leave exactly one
/// binding; exactly one reports `created`, and all return that binding's SID.
pub async fn concurrent_identical_registrations_leave_one_binding(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let alice = user(&store, &svc, "alice").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(32));

    // Act
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let store = store.clone();
        let barrier = barrier.clone();
        let reg = registration(
            &alice,
            PushType::Apn,
            "the-phone",
            "the-token",
            Timestamp::now(),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.register_binding(&reg).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task").expect("register"));
    }

    // Assert
    assert_eq!(
        results.iter().filter(|r| r.created).count(),
        1,
        "one creation"
    );
    let sids: HashSet<&str> = results.iter().map(|r| r.binding.sid.as_str()).collect();
    assert_eq!(sids.len(), 1, "one SID");
    let stored = list(&store, &alice, BindingFilter::default()).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(Some(stored[0].sid.as_str()), sids.into_iter().next());
}

/// `list_bindings` filters by user, by any of several identities and by any of several types,
/// in combination, and pages within the filter.
pub async fn binding_list_filters_by_user_identity_and_type(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let alice = user(&store, &svc, "alice").await;
    let bob = user(&store, &svc, "bob").await;
    let carol = user(&store, &svc, "carol").await;
    user(&store, &svc, "alice2").await;
    let reg = |u: &User, t: PushType, secs: i64| {
        registration(
            u,
            t,
            &format!("{}-{}", u.identity, t.as_str()),
            &format!("tok-{secs}"),
            at(secs),
        )
    };
    let regs = [
        reg(&alice, PushType::Apn, 1),
        reg(&alice, PushType::Fcm, 2),
        reg(&bob, PushType::Gcm, 3),
        reg(&carol, PushType::Apn, 4),
    ];
    let mut b = Vec::new();
    for r in &regs {
        b.push(store.register_binding(r).await.expect("register").binding);
    }
    let (a1, a2, b1, c1) = (b[0].clone(), b[1].clone(), b[2].clone(), b[3].clone());
    let f = |user_sid: Option<&UserSid>, identities: &[&str], types: &[PushType]| BindingFilter {
        user_sid: user_sid.cloned(),
        identities: identities.iter().map(|i| (*i).to_owned()).collect(),
        types: types.to_vec(),
    };

    // Act + Assert
    assert_eq!(list(&store, &alice, f(None, &[], &[])).await, b);
    assert_eq!(
        list(&store, &alice, f(Some(&alice.sid), &[], &[])).await,
        vec![a1.clone(), a2.clone()]
    );
    assert_eq!(
        list(&store, &alice, f(None, &["alice", "bob"], &[])).await,
        vec![a1.clone(), a2.clone(), b1.clone()]
    );
    assert_eq!(
        list(&store, &alice, f(None, &["carol", "nobody"], &[])).await,
        vec![c1.clone()]
    );
    assert_eq!(
        list(&store, &alice, f(None, &[], &[PushType::Apn])).await,
        vec![a1.clone(), c1.clone()]
    );
    assert_eq!(
        list(
            &store,
            &alice,
            f(None, &["bob", "carol"], &[PushType::Apn, PushType::Gcm])
        )
        .await,
        vec![b1.clone(), c1.clone()]
    );
    assert!(
        list(&store, &alice, f(Some(&alice.sid), &[], &[PushType::Gcm]))
            .await
            .is_empty()
    );
    assert!(list(&store, &alice, f(Some(&bob.sid), &["alice"], &[]))
        .await
        .is_empty());
    assert!(list(&store, &alice, f(None, &["ALICE", "alic"], &[]))
        .await
        .is_empty());

    let (s, a, v) = (store.clone(), account.clone(), svc.sid.clone());
    let filter = f(None, &[], &[PushType::Apn, PushType::Fcm]);
    let pages = all_pages(1, binding_key, move |req| {
        let (s, a, v, filter) = (s.clone(), a.clone(), v.clone(), filter.clone());
        Box::pin(async move { s.list_bindings(&a, &v, &filter, &req).await })
    })
    .await;
    let walked: Vec<Binding> = pages.into_iter().flat_map(|p| p.items).collect();
    assert_eq!(walked, vec![a1, a2, c1]);
}

/// Fetch and delete of a binding go through its own service only; a deleted binding is gone.
pub async fn binding_fetch_and_delete_are_scoped_by_service(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let mine = service(&store, &account).await;
    let other = service(&store, &account).await;
    let alice = user(&store, &mine, "alice").await;
    let b = store
        .register_binding(&registration(
            &alice,
            PushType::Fcm,
            "e",
            "t",
            Timestamp::now(),
        ))
        .await
        .expect("register")
        .binding;

    // Act + Assert
    assert_not_found(
        store.fetch_binding(&account, &other.sid, &b.sid).await,
        "fetch via other service",
    );
    assert_not_found(
        store.delete_binding(&account, &other.sid, &b.sid).await,
        "delete via other service",
    );
    assert_eq!(
        store
            .fetch_binding(&account, &mine.sid, &b.sid)
            .await
            .expect("fetch"),
        b
    );
    store
        .delete_binding(&account, &mine.sid, &b.sid)
        .await
        .expect("delete");
    assert_not_found(
        store.fetch_binding(&account, &mine.sid, &b.sid).await,
        "deleted",
    );
    assert_not_found(
        store.delete_binding(&account, &mine.sid, &b.sid).await,
        "second delete",
    );
    assert_not_found(
        store
            .fetch_binding(&account, &mine.sid, &BindingSid::generate())
            .await,
        "unknown binding",
    );
}

/// Registering for a user that does not exist (or exists only in another service) is
/// `NotFound`, and stores nothing.
pub async fn registering_for_a_missing_user_is_not_found(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let other = service(&store, &account).await;
    let ghost = user_at(&svc, "ghost", Timestamp::now());
    let alice_other = user(&store, &other, "alice").await;
    let mut misplaced = registration(&alice_other, PushType::Apn, "e", "t2", Timestamp::now());
    misplaced.service_sid = svc.sid.clone();

    // Act
    let ghost_result = store
        .register_binding(&registration(
            &ghost,
            PushType::Apn,
            "e",
            "t",
            Timestamp::now(),
        ))
        .await;
    let misplaced_result = store.register_binding(&misplaced).await;

    // Assert
    assert_not_found(ghost_result, "unknown user");
    assert_not_found(misplaced_result, "user of another service");
    assert!(list(&store, &ghost, BindingFilter::default())
        .await
        .is_empty());
}

/// The sweep deletes bindings not updated since the cutoff, at most `limit` per call, and
/// never a fresh one.
pub async fn stale_sweep_deletes_only_old_bindings_and_respects_the_limit(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let alice = user(&store, &svc, "alice").await;
    for i in 0..5 {
        let r = registration(
            &alice,
            PushType::Fcm,
            &format!("old{i}"),
            &format!("o{i}"),
            at(-1000 + i),
        );
        store.register_binding(&r).await.expect("old");
    }
    // Created long ago but refreshed recently: not stale.
    let r = registration(&alice, PushType::Apn, "refreshed", "r", at(-2000));
    store.register_binding(&r).await.expect("refreshed, first");
    let r = registration(&alice, PushType::Apn, "refreshed", "r", at(0));
    store.register_binding(&r).await.expect("refreshed, again");
    let r = registration(&alice, PushType::Gcm, "fresh", "f", at(10));
    store.register_binding(&r).await.expect("fresh");
    let cutoff = at(-500);

    // Act
    let first = store
        .delete_stale_bindings(cutoff, 3)
        .await
        .expect("sweep 1");
    let second = store
        .delete_stale_bindings(cutoff, 3)
        .await
        .expect("sweep 2");
    let third = store
        .delete_stale_bindings(cutoff, 3)
        .await
        .expect("sweep 3");

    // Assert
    assert_eq!((first, second, third), (3, 2, 0));
    let mut left: Vec<String> = list(&store, &alice, BindingFilter::default())
        .await
        .into_iter()
        .map(|b| b.endpoint)
        .collect();
    left.sort();
    assert_eq!(left, ["fresh", "refreshed"]);
}

/// `count_user_bindings` counts one user's bindings in one service.
pub async fn count_user_bindings_counts_only_that_users_bindings(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let alice = user(&store, &svc, "alice").await;
    let bob = user(&store, &svc, "bob").await;
    let carol = user(&store, &svc, "carol").await;
    let now = Timestamp::now();
    let a1 = store
        .register_binding(&registration(&alice, PushType::Apn, "p", "a1", now))
        .await
        .expect("a1")
        .binding;
    store
        .register_binding(&registration(&alice, PushType::Fcm, "t", "a2", now))
        .await
        .expect("a2");
    store
        .register_binding(&registration(&bob, PushType::Fcm, "p", "b1", now))
        .await
        .expect("b1");
    let count = |u: &UserSid| {
        let (store, account, svc) = (store.clone(), account.clone(), svc.sid.clone());
        let u = u.clone();
        async move {
            store
                .count_user_bindings(&account, &svc, &u)
                .await
                .expect("count")
        }
    };

    // Act + Assert
    assert_eq!(count(&alice.sid).await, 2);
    assert_eq!(count(&bob.sid).await, 1);
    assert_eq!(count(&carol.sid).await, 0);
    assert_eq!(count(&UserSid::generate()).await, 0);
    store
        .delete_binding(&account, &svc.sid, &a1.sid)
        .await
        .expect("delete");
    assert_eq!(count(&alice.sid).await, 1);
}
