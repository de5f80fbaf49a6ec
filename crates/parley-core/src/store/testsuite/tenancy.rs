//! Tenancy: rows of another account, or of another service, are invisible.

use crate::binding::BindingFilter;
use crate::credential::PushType;
use crate::event::Origin;
use crate::paging::PageRequest;
use crate::role::Role;
use crate::service::ServicePatch;
use crate::user::{UserRef, UserUpdate};
use crate::{RoleSid, Timestamp};

use super::{
    account, assert_not_found, credential, registration, service, user, user_at, DynStore,
};

/// Holding another account's SIDs gets `NotFound` (or an empty list) for services, roles,
/// users, credentials and bindings, and changes nothing.
pub async fn another_accounts_rows_are_not_found(store: DynStore) {
    // Arrange
    let owner = account(&store).await;
    let intruder = account(&store).await;
    let svc = service(&store, &owner).await;
    let alice = user(&store, &svc, "alice").await;
    let cred = credential(&store, &owner, PushType::Apn).await;
    let mut reg = registration(&alice, PushType::Apn, "e1", "tok", Timestamp::now());
    reg.credential_sid = Some(cred.sid.clone());
    let binding = store
        .register_binding(&reg)
        .await
        .expect("register")
        .binding;
    let role_sid = svc.default_service_role_sid.clone().expect("default role");
    let alice_ref = UserRef::Sid(alice.sid.clone());
    let page = PageRequest::first(50);

    // Act + Assert: services
    assert_not_found(
        store.fetch_service(&intruder, &svc.sid).await,
        "fetch service",
    );
    let hijack = ServicePatch {
        friendly_name: Some("hijacked".to_owned()),
        ..ServicePatch::default()
    };
    assert_not_found(
        store
            .patch_service(&intruder, &svc.sid, &hijack, Timestamp::now())
            .await,
        "update service",
    );
    assert_not_found(
        store.delete_service(&intruder, &svc.sid).await,
        "delete service",
    );
    assert!(store
        .list_services(&intruder, &page)
        .await
        .expect("list services")
        .items
        .is_empty());

    // roles
    assert_not_found(
        store.fetch_role(&intruder, &svc.sid, &role_sid).await,
        "fetch role",
    );
    assert_not_found(
        store
            .update_role_permissions(&intruder, &svc.sid, &role_sid, &[], Timestamp::now())
            .await,
        "update role",
    );
    assert_not_found(
        store.delete_role(&intruder, &svc.sid, &role_sid).await,
        "delete role",
    );
    assert!(store
        .list_roles(&intruder, &svc.sid, &page)
        .await
        .expect("list roles")
        .items
        .is_empty());
    let foreign_role = Role {
        sid: RoleSid::generate(),
        account_sid: intruder.clone(),
        service_sid: svc.sid.clone(),
        friendly_name: "sneaky".to_owned(),
        role_type: crate::role::RoleType::Channel,
        permissions: vec!["sendMessage".to_owned()],
        date_created: Timestamp::now(),
        date_updated: Timestamp::now(),
    };
    assert_not_found(store.create_role(&foreign_role).await, "create role");

    // users
    for r in [alice_ref.clone(), UserRef::Identity("alice".to_owned())] {
        assert_not_found(
            store.fetch_user(&intruder, &svc.sid, &r).await,
            "fetch user",
        );
        assert_not_found(
            store
                .update_user(
                    &intruder,
                    &svc.sid,
                    &r,
                    &UserUpdate {
                        friendly_name: Some("x".to_owned()),
                        ..UserUpdate::default()
                    },
                    Timestamp::now(),
                    &Origin::rest(),
                )
                .await,
            "update user",
        );
        assert_not_found(
            store
                .delete_user(&intruder, &svc.sid, &r, &Origin::rest())
                .await,
            "delete user",
        );
    }
    assert!(store
        .list_users(&intruder, &svc.sid, &page)
        .await
        .expect("list users")
        .items
        .is_empty());
    let mut foreign_user = user_at(&svc, "mallory", Timestamp::now());
    foreign_user.account_sid = intruder.clone();
    foreign_user.role_sid = None;
    assert_not_found(
        store.create_user(&foreign_user, &Origin::rest()).await,
        "create user",
    );
    assert_not_found(
        store
            .get_or_create_user(&foreign_user, &Origin::rest())
            .await,
        "get_or_create user",
    );

    // credentials
    assert_not_found(
        store.fetch_credential(&intruder, &cred.sid).await,
        "fetch credential",
    );
    assert_not_found(
        store
            .update_credential(&intruder, &cred.sid, &|c| {
                c.secrets_sealed = vec![6, 6, 6];
                Ok(())
            })
            .await,
        "update credential",
    );
    assert_not_found(
        store.delete_credential(&intruder, &cred.sid).await,
        "delete credential",
    );
    assert!(store
        .list_credentials(&intruder, &page)
        .await
        .expect("list credentials")
        .items
        .is_empty());

    // bindings
    assert_not_found(
        store.fetch_binding(&intruder, &svc.sid, &binding.sid).await,
        "fetch binding",
    );
    assert_not_found(
        store
            .delete_binding(&intruder, &svc.sid, &binding.sid)
            .await,
        "delete binding",
    );
    assert!(store
        .list_bindings(&intruder, &svc.sid, &BindingFilter::default(), &page)
        .await
        .expect("list bindings")
        .items
        .is_empty());
    assert_eq!(
        store
            .count_user_bindings(&intruder, &svc.sid, &alice.sid)
            .await
            .expect("count"),
        0
    );
    let mut foreign_reg = registration(&alice, PushType::Apn, "e9", "tok9", Timestamp::now());
    foreign_reg.account_sid = intruder.clone();
    assert_not_found(
        store.register_binding(&foreign_reg).await,
        "register under another account",
    );

    // Nothing changed for the owner.
    assert_eq!(
        store
            .fetch_service(&owner, &svc.sid)
            .await
            .expect("service"),
        svc
    );
    assert_eq!(
        store
            .fetch_user(&owner, &svc.sid, &alice_ref)
            .await
            .expect("user"),
        alice
    );
    assert_eq!(
        store
            .fetch_credential(&owner, &cred.sid)
            .await
            .expect("credential"),
        cred
    );
    assert_eq!(
        store
            .fetch_binding(&owner, &svc.sid, &binding.sid)
            .await
            .expect("binding"),
        binding
    );
    assert!(store
        .fetch_role(&owner, &svc.sid, &role_sid)
        .await
        .expect("role")
        .permissions
        .contains(&"createChannel".to_owned()));
    assert_eq!(
        store
            .list_bindings(&owner, &svc.sid, &BindingFilter::default(), &page)
            .await
            .expect("list")
            .items,
        vec![binding]
    );
}

/// Within one account, a user or binding of one service is `NotFound` through another service,
/// and the same identity may exist in both.
pub async fn children_are_scoped_by_service(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let one = service(&store, &account).await;
    let two = service(&store, &account).await;
    let alice_one = user(&store, &one, "alice").await;
    let binding = store
        .register_binding(&registration(
            &alice_one,
            PushType::Gcm,
            "e",
            "t",
            Timestamp::now(),
        ))
        .await
        .expect("register")
        .binding;

    // Act
    let alice_two = store
        .create_user(&user_at(&two, "alice", Timestamp::now()), &Origin::rest())
        .await;

    // Assert
    let alice_two = alice_two.expect("same identity in another service is fine");
    assert_ne!(alice_two.sid, alice_one.sid);
    assert_not_found(
        store
            .fetch_user(&account, &two.sid, &UserRef::Sid(alice_one.sid.clone()))
            .await,
        "user of service one through service two",
    );
    assert_eq!(
        store
            .fetch_user(&account, &two.sid, &UserRef::Identity("alice".to_owned()))
            .await
            .expect("alice of two")
            .sid,
        alice_two.sid
    );
    assert_not_found(
        store.fetch_binding(&account, &two.sid, &binding.sid).await,
        "binding through the other service",
    );
    assert_not_found(
        store.delete_binding(&account, &two.sid, &binding.sid).await,
        "delete through the other service",
    );
    let role_of_one = one.default_service_role_sid.clone().expect("role");
    assert_not_found(
        store.fetch_role(&account, &two.sid, &role_of_one).await,
        "role through the other service",
    );
    assert_eq!(
        store
            .fetch_binding(&account, &one.sid, &binding.sid)
            .await
            .expect("still there"),
        binding
    );
}
