//! Credentials: CRUD with sealed secrets; deleting one removes its bindings.

use crate::binding::BindingFilter;
use crate::credential::PushType;
use crate::paging::PageRequest;
use crate::{CredentialSid, Timestamp};

use super::{
    account, assert_not_found, at, credential, credential_value, registration, service, user,
    DynStore,
};

/// A credential round-trips byte for byte (sealed secrets, `sandbox` as true/false/unset);
/// update stores the mutable fields; delete removes it once.
pub async fn credentials_round_trip_with_sealed_secrets(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let mut apn = credential_value(&account, PushType::Apn);
    apn.sandbox = Some(true);
    apn.secrets_sealed = (0..=255u8).collect();
    apn.date_created = at(1);
    apn.date_updated = at(1);
    let mut fcm = credential_value(&account, PushType::Fcm);
    fcm.friendly_name = None;
    fcm.date_created = at(2);
    fcm.date_updated = at(2);

    // Act
    let created = store.create_credential(&apn).await.expect("create apn");
    store.create_credential(&fcm).await.expect("create fcm");
    let fetched = store
        .fetch_credential(&account, &apn.sid)
        .await
        .expect("fetch");
    let mut changed = apn.clone();
    changed.friendly_name = Some("production".to_owned());
    changed.sandbox = Some(false);
    changed.secrets_sealed = vec![7; 300];
    changed.date_updated = at(50);
    let to = changed.clone();
    let updated = store
        .update_credential(&account, &apn.sid, &move |c| {
            c.friendly_name.clone_from(&to.friendly_name);
            c.sandbox = to.sandbox;
            c.secrets_sealed.clone_from(&to.secrets_sealed);
            c.date_updated = to.date_updated;
            Ok(())
        })
        .await
        .expect("update credential");

    // Assert
    assert_eq!(created, apn);
    assert_eq!(fetched, apn);
    assert_eq!(
        store
            .fetch_credential(&account, &fcm.sid)
            .await
            .expect("fetch fcm"),
        fcm,
        "sandbox None and no name round-trip"
    );
    assert_eq!(updated, changed);
    assert_eq!(
        store
            .fetch_credential(&account, &apn.sid)
            .await
            .expect("refetch"),
        changed
    );
    let listed = store
        .list_credentials(&account, &PageRequest::first(50))
        .await
        .expect("list");
    assert_eq!(listed.items, vec![changed.clone(), fcm.clone()]);

    store
        .delete_credential(&account, &apn.sid)
        .await
        .expect("delete");
    assert_not_found(
        store.fetch_credential(&account, &apn.sid).await,
        "deleted credential",
    );
    assert_not_found(
        store.delete_credential(&account, &apn.sid).await,
        "second delete",
    );
    assert_not_found(
        store
            .update_credential(&account, &apn.sid, &|_| Ok(()))
            .await,
        "update of deleted",
    );
    assert_not_found(
        store
            .fetch_credential(&account, &CredentialSid::generate())
            .await,
        "unknown credential",
    );
}

/// Concurrent updates of a credential each apply to the result of the previous one: none is
/// lost (each adds its own byte to the sealed secrets, or sets another field), and a change
/// that fails leaves the row as it was.
pub async fn concurrent_credential_updates_lose_nothing(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let mut cred = credential_value(&account, PushType::Apn);
    cred.secrets_sealed = Vec::new();
    cred.sandbox = None;
    let created = store.create_credential(&cred).await.expect("create");

    // Act
    let mut tasks = Vec::new();
    for i in 0..24u8 {
        let store = store.clone();
        let account = account.clone();
        let sid = created.sid.clone();
        tasks.push(tokio::spawn(async move {
            store
                .update_credential(&account, &sid, &move |c| {
                    match i {
                        0 => c.friendly_name = Some("renamed".to_owned()),
                        1 => c.sandbox = Some(true),
                        _ => c.secrets_sealed.push(i),
                    }
                    Ok(())
                })
                .await
                .expect("update")
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let failed = store
        .update_credential(&account, &created.sid, &|c| {
            c.friendly_name = Some("never stored".to_owned());
            Err(crate::store::StoreError::InvalidReference("rejected"))
        })
        .await;

    // Assert
    assert!(
        matches!(
            failed,
            Err(crate::store::StoreError::InvalidReference("rejected"))
        ),
        "{failed:?}"
    );
    let after = store
        .fetch_credential(&account, &created.sid)
        .await
        .expect("fetch");
    let mut bytes = after.secrets_sealed.clone();
    bytes.sort_unstable();
    assert_eq!(
        bytes,
        (2..24u8).collect::<Vec<_>>(),
        "every byte update survives"
    );
    assert_eq!(after.friendly_name.as_deref(), Some("renamed"));
    assert_eq!(after.sandbox, Some(true));
}

/// Deleting a credential deletes the bindings that use it, and only those.
pub async fn deleting_a_credential_removes_its_bindings(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let alice = user(&store, &svc, "alice").await;
    let doomed = credential(&store, &account, PushType::Fcm).await;
    let kept = credential(&store, &account, PushType::Apn).await;
    let now = Timestamp::now();
    let mut with_doomed = registration(&alice, PushType::Fcm, "android", "fcm-token", now);
    with_doomed.credential_sid = Some(doomed.sid.clone());
    let mut with_kept = registration(&alice, PushType::Apn, "iphone", "apn-token", now);
    with_kept.credential_sid = Some(kept.sid.clone());
    let without = registration(&alice, PushType::Gcm, "old-android", "gcm-token", now);
    let gone = store
        .register_binding(&with_doomed)
        .await
        .expect("reg")
        .binding;
    let stays = store
        .register_binding(&with_kept)
        .await
        .expect("reg")
        .binding;
    let bare = store.register_binding(&without).await.expect("reg").binding;
    assert_eq!(gone.credential_sid, Some(doomed.sid.clone()));

    // Act
    store
        .delete_credential(&account, &doomed.sid)
        .await
        .expect("delete credential");

    // Assert
    assert_not_found(
        store.fetch_binding(&account, &svc.sid, &gone.sid).await,
        "binding of the deleted credential",
    );
    let listed = store
        .list_bindings(
            &account,
            &svc.sid,
            &BindingFilter::default(),
            &PageRequest::first(50),
        )
        .await
        .expect("list");
    let mut expected = vec![stays, bare];
    expected.sort_by(|a, b| (a.date_created, &a.sid).cmp(&(b.date_created, &b.sid)));
    assert_eq!(listed.items, expected);
}

/// A credential created without its secret (an import from Twilio) keeps its SID, dates and
/// mark; creating it again is `Conflict(SidTaken)` and leaves it as it was (in its account or
/// another's); an update that stores a secret clears the mark, one that only renames keeps it.
pub async fn imported_credentials_keep_their_sid_and_need_their_secret(store: DynStore) {
    // Arrange
    let other = account(&store).await;
    let account = account(&store).await;
    let mut imported = credential_value(&account, PushType::Apn);
    imported.sandbox = Some(true);
    imported.secrets_sealed = Vec::new();
    imported.needs_secret = true;
    imported.date_created = at(3);
    imported.date_updated = at(4);
    let mut again = imported.clone();
    again.friendly_name = Some("overwritten?".to_owned());
    again.needs_secret = false;
    again.secrets_sealed = vec![9; 4];
    let mut elsewhere = again.clone();
    elsewhere.account_sid = other.clone();

    // Act
    let created = store
        .create_credential(&imported)
        .await
        .expect("create imported");
    let twice = store.create_credential(&again).await;
    let foreign = store.create_credential(&elsewhere).await;
    let renamed = store
        .update_credential(&account, &imported.sid, &|c| {
            c.friendly_name = Some("renamed".to_owned());
            Ok(())
        })
        .await
        .expect("rename");
    let listed = store
        .list_credentials(&account, &PageRequest::first(50))
        .await
        .expect("list");
    let supplied = store
        .update_credential(&account, &imported.sid, &|c| {
            c.secrets_sealed = vec![1, 2, 3];
            c.needs_secret = false;
            Ok(())
        })
        .await
        .expect("supply the secret");

    // Assert
    assert_eq!(created, imported);
    for (what, result) in [("same account", twice), ("another account", foreign)] {
        assert!(
            matches!(
                result,
                Err(crate::store::StoreError::Conflict(
                    crate::store::Conflict::SidTaken
                ))
            ),
            "{what}: {result:?}"
        );
    }
    assert!(renamed.needs_secret, "a rename keeps the mark");
    assert_eq!(renamed.friendly_name.as_deref(), Some("renamed"));
    assert_eq!(listed.items, vec![renamed.clone()]);
    assert!(!supplied.needs_secret);
    let fetched = store
        .fetch_credential(&account, &imported.sid)
        .await
        .expect("fetch");
    assert_eq!(fetched, supplied);
    assert_eq!(fetched.secrets_sealed, vec![1, 2, 3]);
    assert_eq!(fetched.date_created, at(3));
    assert!(store
        .list_credentials(&other, &PageRequest::first(50))
        .await
        .expect("list other")
        .items
        .is_empty());
}
