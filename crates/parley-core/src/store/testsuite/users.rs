//! Users: identity uniqueness, lookup by SID or identity, partial update, delete, races.

use crate::event::Origin;
use std::collections::HashSet;
use std::sync::Arc;

use crate::binding::BindingFilter;
use crate::credential::PushType;
use crate::paging::PageRequest;
use crate::service::ServicePatch;
use crate::store::{Conflict, StoreError};
use crate::user::{UserRef, UserUpdate};
use crate::{Timestamp, UserSid};

use super::{account, assert_not_found, at, registration, service, user, user_at, DynStore};

/// A second user with an existing identity in the same service is
/// `Conflict(UserIdentityTaken)`, and the first user is untouched.
pub async fn user_identity_is_unique_within_a_service(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let alice = user(&store, &svc, "alice").await;
    let mut twin = user_at(&svc, "alice", Timestamp::now());
    twin.friendly_name = Some("Second Alice".to_owned());

    // Act
    let result = store.create_user(&twin, &Origin::rest()).await;

    // Assert
    assert!(
        matches!(
            result,
            Err(StoreError::Conflict(Conflict::UserIdentityTaken))
        ),
        "got {result:?}"
    );
    assert_eq!(
        store
            .fetch_user(&account, &svc.sid, &UserRef::Identity("alice".to_owned()))
            .await
            .expect("fetch"),
        alice
    );
    assert_not_found(
        store
            .fetch_user(&account, &svc.sid, &UserRef::Sid(twin.sid.clone()))
            .await,
        "the twin was not stored",
    );
    // Identities are compared exactly: case and spacing make different users.
    for other in ["Alice", "alice ", "alicé"] {
        user(&store, &svc, other).await;
    }
}

/// A user is found by SID and by identity — including identities with `@`, spaces, slashes and
/// non-ASCII — and every field round-trips.
pub async fn users_are_fetched_by_sid_or_identity(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let mut created = Vec::new();
    for identity in [
        "alice@example.com",
        "bob smith",
        "carol/ops+1",
        "dörte 🚀",
        "US1",
    ] {
        let mut u = user_at(&svc, identity, at(1));
        u.friendly_name = Some(format!("{identity} (name)"));
        u.attributes = Some(r#"{"team":"blue","n":[1,2]}"#.to_owned());
        created.push(
            store
                .create_user(&u, &Origin::rest())
                .await
                .expect("create user"),
        );
        assert_eq!(created.last(), Some(&u), "create returns the stored row");
    }

    // Act + Assert
    for u in &created {
        let by_sid = store
            .fetch_user(&account, &svc.sid, &UserRef::Sid(u.sid.clone()))
            .await
            .expect("fetch by sid");
        let by_identity = store
            .fetch_user(&account, &svc.sid, &UserRef::Identity(u.identity.clone()))
            .await
            .expect("fetch by identity");
        assert_eq!(&by_sid, u);
        assert_eq!(&by_identity, u);
    }
    assert_not_found(
        store
            .fetch_user(&account, &svc.sid, &UserRef::Identity("nobody".to_owned()))
            .await,
        "unknown identity",
    );
    assert_not_found(
        store
            .fetch_user(&account, &svc.sid, &UserRef::Sid(UserSid::generate()))
            .await,
        "unknown sid",
    );
    assert_not_found(
        store
            .fetch_user(&account, &svc.sid, &UserRef::Identity("bob".to_owned()))
            .await,
        "a prefix of an identity",
    );
}

/// An update changes only the fields it names (by SID or identity), sets `date_updated`, and
/// keeps `date_created`.
pub async fn user_update_changes_only_the_given_fields(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let mut original = user_at(&svc, "alice@example.com", at(0));
    original.friendly_name = Some("Alice".to_owned());
    original.attributes = Some(r#"{"a":1}"#.to_owned());
    let original = store
        .create_user(&original, &Origin::rest())
        .await
        .expect("create");
    let admin_role = svc.default_channel_creator_role_sid.clone().expect("role");

    // Act
    let renamed = store
        .update_user(
            &account,
            &svc.sid,
            &UserRef::Sid(original.sid.clone()),
            &UserUpdate {
                friendly_name: Some("Alice A.".to_owned()),
                ..UserUpdate::default()
            },
            at(10),
            &Origin::rest(),
        )
        .await
        .expect("rename");
    let rest = store
        .update_user(
            &account,
            &svc.sid,
            &UserRef::Identity("alice@example.com".to_owned()),
            &UserUpdate {
                friendly_name: None,
                attributes: Some(r#"{"b":2}"#.to_owned()),
                role_sid: Some(admin_role.clone()),
            },
            at(20),
            &Origin::rest(),
        )
        .await
        .expect("update attributes and role");
    let untouched = store
        .update_user(
            &account,
            &svc.sid,
            &UserRef::Sid(original.sid.clone()),
            &UserUpdate::default(),
            at(30),
            &Origin::rest(),
        )
        .await
        .expect("empty update");

    // Assert
    assert_eq!(renamed.friendly_name.as_deref(), Some("Alice A."));
    assert_eq!(renamed.attributes, original.attributes);
    assert_eq!(renamed.role_sid, original.role_sid);
    assert_eq!(renamed.date_updated, at(10));
    assert_eq!(rest.friendly_name.as_deref(), Some("Alice A."));
    assert_eq!(rest.attributes.as_deref(), Some(r#"{"b":2}"#));
    assert_eq!(rest.role_sid, Some(admin_role));
    assert_eq!(rest.date_updated, at(20));
    assert_eq!(untouched.date_created, original.date_created);
    assert_eq!(untouched.identity, original.identity);
    assert_eq!(untouched.sid, original.sid);
    assert_eq!(
        store
            .fetch_user(&account, &svc.sid, &UserRef::Sid(original.sid.clone()))
            .await
            .expect("fetch"),
        untouched,
        "update returns what is stored"
    );
    assert_not_found(
        store
            .update_user(
                &account,
                &svc.sid,
                &UserRef::Identity("nobody".to_owned()),
                &UserUpdate::default(),
                at(40),
                &Origin::rest(),
            )
            .await,
        "update of an unknown user",
    );
}

/// Deleting a user (by SID or identity) removes it and its bindings, and no other user's.
pub async fn user_delete_removes_the_user_and_its_bindings(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let alice = user(&store, &svc, "alice smith").await;
    let bob = user(&store, &svc, "bob").await;
    let now = Timestamp::now();
    let a1 = store
        .register_binding(&registration(&alice, PushType::Apn, "phone", "a-apn", now))
        .await
        .expect("register")
        .binding;
    store
        .register_binding(&registration(&alice, PushType::Fcm, "tablet", "a-fcm", now))
        .await
        .expect("register");
    let b1 = store
        .register_binding(&registration(&bob, PushType::Fcm, "phone", "b-fcm", now))
        .await
        .expect("register")
        .binding;

    // Act
    store
        .delete_user(
            &account,
            &svc.sid,
            &UserRef::Identity("alice smith".to_owned()),
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
    for (u, r) in [
        (&alice, UserRef::Sid(alice.sid.clone())),
        (&bob, UserRef::Identity("bob".to_owned())),
    ] {
        assert_not_found(
            store.fetch_user(&account, &svc.sid, &r).await,
            "deleted user",
        );
        assert_eq!(
            store
                .count_user_bindings(&account, &svc.sid, &u.sid)
                .await
                .expect("count"),
            0
        );
    }
    assert_not_found(
        store.fetch_binding(&account, &svc.sid, &a1.sid).await,
        "alice's binding",
    );
    assert_not_found(
        store.fetch_binding(&account, &svc.sid, &b1.sid).await,
        "bob's binding",
    );
    assert!(store
        .list_bindings(
            &account,
            &svc.sid,
            &BindingFilter::default(),
            &PageRequest::first(50)
        )
        .await
        .expect("list")
        .items
        .is_empty());
    assert_not_found(
        store
            .delete_user(
                &account,
                &svc.sid,
                &UserRef::Sid(bob.sid.clone()),
                &Origin::rest(),
            )
            .await,
        "second delete",
    );
}

/// 32 simultaneous `get_or_create_user` calls for one identity leave exactly one user; exactly
/// one call reports `created`, and every call returns that user.
pub async fn concurrent_get_or_create_user_yields_one_user(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(32));

    // Act
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let store = store.clone();
        let barrier = barrier.clone();
        let candidate = user_at(&svc, "racer", Timestamp::now());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.get_or_create_user(&candidate, &Origin::rest()).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task").expect("get_or_create_user"));
    }

    // Assert
    let created = results.iter().filter(|(_, c)| *c).count();
    let sids: HashSet<&str> = results.iter().map(|(u, _)| u.sid.as_str()).collect();
    assert_eq!(created, 1, "exactly one call created the user");
    assert_eq!(sids.len(), 1, "every call returns the same user");
    let listed = store
        .list_users(&account, &svc.sid, &PageRequest::first(50))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0], results[0].0);
    // And once it exists, the call returns it without creating.
    let (again, created) = store
        .get_or_create_user(&user_at(&svc, "racer", Timestamp::now()), &Origin::rest())
        .await
        .expect("again");
    assert!(!created);
    assert_eq!(again, listed.items[0]);
}

/// `fetch_user_view` reads the user (by SID or identity) with its joined channels and, only
/// while the service has reachability on, its bindings; a missing user, or one of another
/// service or account, is `NotFound`.
pub async fn user_view_counts_joined_channels_and_bindings_when_reachability_is_on(
    store: DynStore,
) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let other_svc = service(&store, &account).await;
    let alice = user(&store, &svc, "alice").await;
    let bob = user(&store, &svc, "bob").await;
    for name in ["one", "two"] {
        let ch = super::chat::channel(&store, &svc, name).await;
        super::chat::join(&store, &ch, &alice).await;
    }
    let bobs_channel = super::chat::channel(&store, &svc, "three").await;
    super::chat::join(&store, &bobs_channel, &bob).await;
    for endpoint in ["e1", "e2", "e3"] {
        store
            .register_binding(&registration(
                &alice,
                PushType::Fcm,
                endpoint,
                &format!("tok-{endpoint}"),
                at(10),
            ))
            .await
            .expect("register");
    }
    let by_sid = UserRef::Sid(alice.sid.clone());
    let by_identity = UserRef::Identity("alice".to_owned());
    let view = |user: &UserRef| {
        let store = store.clone();
        let account = account.clone();
        let sid = svc.sid.clone();
        let user = user.clone();
        async move { store.fetch_user_view(&account, &sid, &user).await }
    };

    // Act + Assert: reachability off (the default) shows no binding count.
    assert!(!svc.settings.reachability_enabled);
    for r in [&by_sid, &by_identity] {
        let v = view(r).await.expect("view");
        assert_eq!(v.user, alice);
        assert_eq!(v.joined_channels_count, 2);
        assert_eq!(v.bindings_count, None);
        assert_eq!(v.online, None);
    }
    let bobs = view(&UserRef::Sid(bob.sid.clone())).await.expect("bob");
    assert_eq!((bobs.joined_channels_count, bobs.bindings_count), (1, None));

    // Reachability on: the bindings are counted (none is 0, not `None`).
    let on = ServicePatch {
        reachability_enabled: Some(true),
        ..ServicePatch::default()
    };
    store
        .patch_service(&account, &svc.sid, &on, at(20))
        .await
        .expect("reachability on");
    let v = view(&by_identity).await.expect("view");
    assert_eq!(v.user, alice);
    assert_eq!(v.joined_channels_count, 2);
    assert_eq!(v.bindings_count, Some(3));
    let bobs = view(&UserRef::Sid(bob.sid.clone())).await.expect("bob");
    assert_eq!(
        (bobs.joined_channels_count, bobs.bindings_count),
        (1, Some(0))
    );
    assert_eq!(v.online, Some(false));

    // Online: a live presence row of alice (on any node) at the wall clock.
    let key = crate::store::PresenceKey {
        account: account.clone(),
        service: svc.sid.clone(),
        identity: "alice".to_owned(),
    };
    let now = Timestamp::now();
    store
        .presence_opened(&key, "node-x", now, now.plus_secs(300))
        .await
        .expect("presence");
    let v = view(&by_sid).await.expect("view");
    assert_eq!(v.online, Some(true));
    let bobs = view(&UserRef::Sid(bob.sid.clone())).await.expect("bob");
    assert_eq!(bobs.online, Some(false));
    store
        .presence_closed(&key, "node-x", Timestamp::now())
        .await
        .expect("closed");
    assert_eq!(view(&by_sid).await.expect("view").online, Some(false));

    // Not found: unknown user, another service, another account.
    assert_not_found(
        view(&UserRef::Identity("nobody".to_owned())).await,
        "unknown identity",
    );
    assert_not_found(
        store
            .fetch_user_view(&account, &other_svc.sid, &by_sid)
            .await,
        "another service",
    );
    let intruder = super::account(&store).await;
    assert_not_found(
        store.fetch_user_view(&intruder, &svc.sid, &by_sid).await,
        "another account",
    );
}
