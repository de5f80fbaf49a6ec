//! Accounts and API keys.

use crate::account::{Account, ApiKey};
use crate::store::{Conflict, StoreError};
use crate::{AccountSid, ApiKeySid};

use super::{assert_not_found, at, DynStore};

fn account_value() -> Account {
    Account {
        sid: AccountSid::generate(),
        friendly_name: Some("Acme".to_owned()),
        auth_token_sealed: vec![9, 8, 7, 0, 255],
        date_created: at(0),
        date_updated: at(0),
    }
}

fn api_key_value(account: &AccountSid, secs: i64) -> ApiKey {
    ApiKey {
        sid: ApiKeySid::generate(),
        account_sid: account.clone(),
        friendly_name: None,
        secret_sealed: vec![42; 61],
        date_created: at(secs),
    }
}

/// Accounts and API keys are stored, fetched, listed, updated and deleted as given.
pub async fn accounts_and_api_keys_round_trip(store: DynStore) {
    // Arrange
    let account = account_value();

    // Act
    let created = store
        .create_account(&account)
        .await
        .expect("create account");
    let fetched = store
        .fetch_account(&account.sid)
        .await
        .expect("fetch account");
    let listed = store.list_accounts().await.expect("list accounts");
    let rotated = store
        .set_auth_token(&account.sid, &[5, 5, 5], at(60))
        .await
        .expect("set auth token");

    // Assert
    assert_eq!(created, account);
    assert_eq!(fetched, account);
    assert!(
        listed.contains(&account),
        "list_accounts shows the new account"
    );
    assert_eq!(rotated.auth_token_sealed, vec![5, 5, 5]);
    assert_eq!(rotated.date_updated, at(60));
    assert_eq!(rotated.date_created, at(0));
    assert_eq!(
        store.fetch_account(&account.sid).await.expect("refetch"),
        rotated
    );
    assert_not_found(
        store
            .set_auth_token(&AccountSid::generate(), &[1], at(1))
            .await,
        "set_auth_token of a missing account",
    );
    assert_not_found(
        store.fetch_account(&AccountSid::generate()).await,
        "fetch of a missing account",
    );

    // API keys: oldest first, scoped to their account, deletable once.
    let second = api_key_value(&account.sid, 20);
    let first = api_key_value(&account.sid, 10);
    assert_eq!(
        store.create_api_key(&second).await.expect("create key"),
        second
    );
    assert_eq!(
        store.create_api_key(&first).await.expect("create key"),
        first
    );
    assert_eq!(
        store.fetch_api_key(&first.sid).await.expect("fetch key"),
        first
    );
    assert_eq!(
        store.list_api_keys(&account.sid).await.expect("list keys"),
        vec![first.clone(), second.clone()]
    );
    assert!(store
        .list_api_keys(&AccountSid::generate())
        .await
        .expect("list keys of another account")
        .is_empty());

    store.delete_api_key(&first.sid).await.expect("delete key");
    assert_not_found(
        store.fetch_api_key(&first.sid).await,
        "fetch of a deleted key",
    );
    assert_not_found(store.delete_api_key(&first.sid).await, "second delete");
    assert_eq!(
        store.list_api_keys(&account.sid).await.expect("list keys"),
        vec![second]
    );
}

/// A second account or API key with an existing SID is `Conflict(SidTaken)`.
pub async fn taken_account_and_api_key_sids_conflict(store: DynStore) {
    // Arrange
    let account = account_value();
    store
        .create_account(&account)
        .await
        .expect("create account");
    let key = api_key_value(&account.sid, 0);
    store.create_api_key(&key).await.expect("create key");

    // Act
    let again = Account {
        friendly_name: Some("Impostor".to_owned()),
        ..account.clone()
    };
    let account_result = store.create_account(&again).await;
    let key_result = store.create_api_key(&key).await;

    // Assert
    assert!(
        matches!(
            account_result,
            Err(StoreError::Conflict(Conflict::SidTaken))
        ),
        "duplicate account: {account_result:?}"
    );
    assert!(
        matches!(key_result, Err(StoreError::Conflict(Conflict::SidTaken))),
        "duplicate key: {key_result:?}"
    );
    assert_eq!(
        store.fetch_account(&account.sid).await.expect("fetch"),
        account,
        "the original row is untouched"
    );
}

/// An API key needs its account: `InvalidReference` otherwise.
pub async fn api_key_of_a_missing_account_is_an_invalid_reference(store: DynStore) {
    // Arrange
    let key = api_key_value(&AccountSid::generate(), 0);

    // Act
    let result = store.create_api_key(&key).await;

    // Assert
    assert!(
        matches!(result, Err(StoreError::InvalidReference(_))),
        "got {result:?}"
    );
    assert_not_found(
        store.fetch_api_key(&key.sid).await,
        "the key was not stored",
    );
}

/// The credential version moves whenever an account or an API key is updated (a rotated token,
/// a re-sealed secret) or an API key is deleted, and stays put when something is only created
/// or read — so a node that polls it knows when its remembered credential checks may be stale.
pub async fn credential_version_moves_on_every_credential_change(store: DynStore) {
    use crate::store::SecretKind;

    // Arrange
    let account = account_value();
    let start = store.credential_version().await.expect("version");
    store.create_account(&account).await.expect("create");
    let key = api_key_value(&account.sid, 5);
    store.create_api_key(&key).await.expect("create key");
    store.fetch_account(&account.sid).await.expect("fetch");
    store.fetch_api_key(&key.sid).await.expect("fetch key");
    let after_creates = store.credential_version().await.expect("version");

    // Act + Assert: each change moves it.
    store
        .set_auth_token(&account.sid, &[7, 7], at(10))
        .await
        .expect("rotate");
    let after_rotate = store.credential_version().await.expect("version");
    assert!(
        store
            .replace_sealed_secret(
                SecretKind::ApiKeySecret,
                key.sid.as_str(),
                &key.secret_sealed,
                &[1]
            )
            .await
            .expect("reseal"),
        "the key's secret is re-sealed"
    );
    let after_reseal = store.credential_version().await.expect("version");
    store.delete_api_key(&key.sid).await.expect("delete key");
    let after_delete = store.credential_version().await.expect("version");

    assert_eq!(after_creates, start, "creating and reading leave it");
    assert!(after_rotate > after_creates, "a rotated token moves it");
    assert!(
        after_reseal > after_rotate,
        "a re-sealed key secret moves it"
    );
    assert!(after_delete > after_reseal, "a deleted key moves it");
    assert_eq!(
        store.credential_version().await.expect("version"),
        after_delete,
        "it stays put while nothing changes"
    );
}
