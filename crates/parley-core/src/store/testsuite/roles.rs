//! Roles: CRUD, permission replacement, users losing a deleted role.

use crate::event::Origin;
use crate::paging::PageRequest;
use crate::role::{Role, RoleType};
use crate::store::StoreError;
use crate::user::UserRef;
use crate::{RoleSid, Timestamp};

use super::{account, assert_not_found, at, service, user, user_at, DynStore};

fn role_value(svc: &crate::service::Service, name: &str, perms: &[&str]) -> Role {
    Role {
        sid: RoleSid::generate(),
        account_sid: svc.account_sid.clone(),
        service_sid: svc.sid.clone(),
        friendly_name: name.to_owned(),
        role_type: RoleType::Channel,
        permissions: perms.iter().map(|p| (*p).to_owned()).collect(),
        date_created: at(100),
        date_updated: at(100),
    }
}

/// A role is stored as given; updating its permissions replaces the whole list (order kept)
/// and `date_updated`; delete removes it once.
pub async fn roles_round_trip_and_permission_updates_replace_the_set(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let role = role_value(&svc, "moderator", &["sendMessage", "leaveChannel"]);

    // Act
    let created = store.create_role(&role).await.expect("create role");
    let fetched = store
        .fetch_role(&account, &svc.sid, &role.sid)
        .await
        .expect("fetch role");
    let new_perms = vec![
        "removeMember".to_owned(),
        "sendMessage".to_owned(),
        "editAnyMessage".to_owned(),
    ];
    let updated = store
        .update_role_permissions(&account, &svc.sid, &role.sid, &new_perms, at(200))
        .await
        .expect("update permissions");
    let listed = store
        .list_roles(&account, &svc.sid, &PageRequest::first(50))
        .await
        .expect("list roles");

    // Assert
    assert_eq!(created, role);
    assert_eq!(fetched, role);
    assert_eq!(updated.permissions, new_perms);
    assert_eq!(updated.date_updated, at(200));
    assert_eq!(updated.date_created, role.date_created);
    assert_eq!(updated.friendly_name, "moderator");
    assert_eq!(listed.items.len(), 5, "four default roles and ours");
    assert!(listed.items.contains(&updated));
    let emptied = store
        .update_role_permissions(&account, &svc.sid, &role.sid, &[], at(300))
        .await
        .expect("empty permissions");
    assert!(emptied.permissions.is_empty());

    store
        .delete_role(&account, &svc.sid, &role.sid)
        .await
        .expect("delete role");
    assert_not_found(
        store.fetch_role(&account, &svc.sid, &role.sid).await,
        "deleted role",
    );
    assert_not_found(
        store.delete_role(&account, &svc.sid, &role.sid).await,
        "second delete",
    );
    assert_not_found(
        store
            .update_role_permissions(&account, &svc.sid, &role.sid, &new_perms, at(400))
            .await,
        "update of a deleted role",
    );
}

/// Users holding a deleted role keep existing, with `role_sid` null; other users keep theirs.
pub async fn deleting_a_role_clears_it_from_users(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let role = store
        .create_role(&role_value(&svc, "vip", &["sendMessage"]))
        .await
        .expect("create role");
    let mut vip = user_at(&svc, "vip", Timestamp::now());
    vip.role_sid = Some(role.sid.clone());
    let vip = store
        .create_user(&vip, &Origin::rest())
        .await
        .expect("create vip");
    let plain = user(&store, &svc, "plain").await;

    // Act
    store
        .delete_role(&account, &svc.sid, &role.sid)
        .await
        .expect("delete role");

    // Assert
    let vip_after = store
        .fetch_user(&account, &svc.sid, &UserRef::Sid(vip.sid.clone()))
        .await
        .expect("vip still exists");
    assert_eq!(vip_after.role_sid, None);
    assert_eq!(vip_after.identity, vip.identity);
    let plain_after = store
        .fetch_user(&account, &svc.sid, &UserRef::Sid(plain.sid.clone()))
        .await
        .expect("plain");
    assert_eq!(plain_after.role_sid, svc.default_service_role_sid);
}

/// Creating a user with a role SID that does not exist is `InvalidReference`.
pub async fn user_with_a_missing_role_is_an_invalid_reference(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let mut u = user_at(&svc, "alice", Timestamp::now());
    u.role_sid = Some(RoleSid::generate());

    // Act
    let result = store.create_user(&u, &Origin::rest()).await;

    // Assert
    assert!(
        matches!(result, Err(StoreError::InvalidReference(_))),
        "got {result:?}"
    );
    assert_not_found(
        store
            .fetch_user(&account, &svc.sid, &UserRef::Identity("alice".to_owned()))
            .await,
        "nothing stored",
    );
}
