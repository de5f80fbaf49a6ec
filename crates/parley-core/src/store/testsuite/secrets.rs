//! Sealed secrets, walked and replaced for key rotation.

use crate::account::ApiKey;
use crate::credential::PushType;
use crate::store::{SealedSecret, SecretKind};
use crate::ApiKeySid;

use super::{account, at, credential, DynStore};

/// Every stored secret of `kind`, walked in pages of 2.
async fn walk(store: &DynStore, kind: SecretKind) -> Vec<SealedSecret> {
    let mut all: Vec<SealedSecret> = Vec::new();
    loop {
        let after = all.last().map(|s| s.sid.clone());
        let page = store
            .list_sealed_secrets(kind, after.as_deref(), 2)
            .await
            .expect("list sealed secrets");
        assert!(page.len() <= 2, "a page holds at most `limit` secrets");
        let done = page.len() < 2;
        all.extend(page);
        if done {
            return all;
        }
    }
}

/// Every sealed secret (auth tokens, API key secrets, credential secrets) is listed once, in
/// SID order, across pages; a replacement applies only while the stored value is unchanged and
/// touches nothing else on the row.
pub async fn sealed_secrets_are_walked_in_order_and_replaced_only_if_unchanged(store: DynStore) {
    // Arrange
    let account_sid = account(&store).await;
    let mut key_sids = Vec::new();
    for i in 0..3u8 {
        let key = ApiKey {
            sid: ApiKeySid::generate(),
            account_sid: account_sid.clone(),
            friendly_name: None,
            secret_sealed: vec![7, i],
            date_created: at(i64::from(i)),
        };
        key_sids.push(store.create_api_key(&key).await.expect("api key").sid);
    }
    let credential = credential(&store, &account_sid, PushType::Fcm).await;

    // Act
    let tokens = walk(&store, SecretKind::AuthToken).await;
    let keys = walk(&store, SecretKind::ApiKeySecret).await;
    let credentials = walk(&store, SecretKind::CredentialSecrets).await;
    let replaced = store
        .replace_sealed_secret(
            SecretKind::AuthToken,
            account_sid.as_str(),
            &[1, 2, 3],
            &[4],
        )
        .await
        .expect("replace");
    let stale = store
        .replace_sealed_secret(
            SecretKind::AuthToken,
            account_sid.as_str(),
            &[1, 2, 3],
            &[5],
        )
        .await
        .expect("replace stale");
    let key_replaced = store
        .replace_sealed_secret(
            SecretKind::ApiKeySecret,
            key_sids[1].as_str(),
            &[7, 1],
            &[8],
        )
        .await
        .expect("replace key");
    let credential_replaced = store
        .replace_sealed_secret(
            SecretKind::CredentialSecrets,
            credential.sid.as_str(),
            &credential.secrets_sealed,
            &[9, 9],
        )
        .await
        .expect("replace credential");
    let missing = store
        .replace_sealed_secret(SecretKind::ApiKeySecret, "SKnope", &[7, 1], &[8])
        .await
        .expect("replace missing");

    // Assert
    for list in [&tokens, &keys, &credentials] {
        let sids: Vec<&str> = list.iter().map(|s| s.sid.as_str()).collect();
        let mut sorted = sids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sids, sorted, "SID order, each once");
    }
    let token = tokens.iter().find(|s| s.sid == account_sid.as_str());
    assert_eq!(token.map(|s| s.sealed.clone()), Some(vec![1, 2, 3]));
    for (i, sid) in key_sids.iter().enumerate() {
        let found = keys.iter().find(|s| s.sid == sid.as_str());
        assert_eq!(
            found.map(|s| s.sealed.clone()),
            Some(vec![7, u8::try_from(i).expect("small")])
        );
    }
    assert!(credentials
        .iter()
        .any(|s| s.sid == credential.sid.as_str() && s.sealed == credential.secrets_sealed));
    assert!(replaced, "the unchanged token is replaced");
    assert!(!stale, "a value that changed meanwhile is not overwritten");
    assert!(key_replaced && credential_replaced);
    assert!(!missing, "a missing row is not replaced");
    let account = store.fetch_account(&account_sid).await.expect("account");
    assert_eq!(account.auth_token_sealed, vec![4]);
    assert_eq!(account.friendly_name.as_deref(), Some("conformance"));
    let key = store.fetch_api_key(&key_sids[1]).await.expect("key");
    assert_eq!(key.secret_sealed, vec![8]);
    assert_eq!(key.date_created, at(1));
    let other = store.fetch_api_key(&key_sids[0]).await.expect("key");
    assert_eq!(other.secret_sealed, vec![7, 0], "other rows untouched");
    let fetched = store
        .fetch_credential(&account_sid, &credential.sid)
        .await
        .expect("credential");
    assert_eq!(fetched.secrets_sealed, vec![9, 9]);
    assert_eq!(fetched.date_updated, credential.date_updated);
    assert_eq!(fetched.friendly_name, credential.friendly_name);
}
