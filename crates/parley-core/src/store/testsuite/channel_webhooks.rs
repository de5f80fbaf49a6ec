//! Channel webhooks (contract §12): CRUD, the limit of 5 per channel (also under concurrent
//! creates), the cascade from channel and service, tenancy, paging and the delivery view.

use std::sync::Arc;

use crate::channel::{Channel, ChannelRef};
use crate::channel_webhook::{
    ChannelWebhook, WebhookConfiguration, WebhookMethod, WebhookType, MAX_CHANNEL_WEBHOOKS,
};
use crate::paging::PageRequest;
use crate::store::{Limit, StoreError};
use crate::{ChannelWebhookSid, FlowSid, Timestamp};

use super::{account, all_pages, assert_not_found, at, channel, service, DynStore};

// ---- fixtures -----------------------------------------------------------------------------------

/// A `webhook`-type value (not stored) of `channel`, created at `created`, calling `url` on
/// `onMessageSent`.
pub fn channel_webhook_value(channel: &Channel, url: &str, created: Timestamp) -> ChannelWebhook {
    ChannelWebhook {
        sid: ChannelWebhookSid::generate(),
        account_sid: channel.account_sid.clone(),
        service_sid: channel.service_sid.clone(),
        channel_sid: channel.sid.clone(),
        kind: WebhookType::Webhook,
        configuration: WebhookConfiguration {
            url: Some(url.to_owned()),
            filters: Some(vec!["onMessageSent".to_owned()]),
            ..WebhookConfiguration::default()
        },
        date_created: created,
        date_updated: created,
    }
}

fn by_sid(channel: &Channel) -> ChannelRef {
    ChannelRef::Sid(channel.sid.clone())
}

#[track_caller]
fn assert_too_many<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::LimitExceeded(Limit::ChannelWebhooks)) => {}
        other => panic!("{what}: expected LimitExceeded(ChannelWebhooks), got {other:?}"),
    }
}

async fn delivery_sids(store: &DynStore, channel: &Channel) -> Vec<ChannelWebhookSid> {
    store
        .channel_webhooks_for_delivery(
            &channel.account_sid,
            &channel.service_sid,
            std::slice::from_ref(&channel.sid),
            0,
        )
        .await
        .expect("delivery view")
        .into_iter()
        .map(|w| w.sid)
        .collect()
}

// ---- cases --------------------------------------------------------------------------------------

/// Create returns the stored row (channel named by unique name); fetch finds it by channel SID
/// or unique name; update replaces only the configuration fields it sets (never the type) and
/// moves `date_updated`; delete removes it once.
pub async fn channel_webhooks_round_trip_update_and_delete(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "hooks").await;
    let by_name = ChannelRef::UniqueName("hooks".to_owned());
    let mut value = channel_webhook_value(&ch, "https://example.com/a", at(10));
    value.configuration.method = Some(WebhookMethod::Get);
    value.configuration.retry_count = Some(2);
    let studio = ChannelWebhook {
        sid: ChannelWebhookSid::generate(),
        kind: WebhookType::Studio,
        configuration: WebhookConfiguration {
            flow_sid: Some(FlowSid::generate()),
            ..WebhookConfiguration::default()
        },
        ..channel_webhook_value(&ch, "unused", at(11))
    };

    // Act
    let stored = store
        .create_channel_webhook(&by_name, &value)
        .await
        .expect("create");
    let stored_studio = store
        .create_channel_webhook(&by_sid(&ch), &studio)
        .await
        .expect("create studio");

    // Assert
    assert_eq!(stored, value, "create returns the row as given");
    assert_eq!(stored_studio, studio);
    for r in [by_sid(&ch), by_name.clone()] {
        assert_eq!(
            store
                .fetch_channel_webhook(&account, &svc.sid, &r, &value.sid)
                .await
                .expect("fetch"),
            value
        );
    }

    // update: only what the patch sets
    let patch = WebhookConfiguration {
        url: Some("https://example.com/b".to_owned()),
        filters: Some(vec!["onMemberAdded".to_owned(), "onMessageSent".to_owned()]),
        ..WebhookConfiguration::default()
    };
    let updated = store
        .update_channel_webhook(&account, &svc.sid, &by_name, &value.sid, &patch, at(20))
        .await
        .expect("update");
    let expected = ChannelWebhook {
        configuration: WebhookConfiguration {
            url: patch.url.clone(),
            filters: patch.filters.clone(),
            method: Some(WebhookMethod::Get),
            retry_count: Some(2),
            ..WebhookConfiguration::default()
        },
        date_updated: at(20),
        ..value.clone()
    };
    assert_eq!(updated, expected);
    assert_eq!(
        store
            .fetch_channel_webhook(&account, &svc.sid, &by_sid(&ch), &value.sid)
            .await
            .expect("refetch"),
        expected,
        "the update is stored"
    );
    let studio_after = store
        .update_channel_webhook(
            &account,
            &svc.sid,
            &by_sid(&ch),
            &studio.sid,
            &WebhookConfiguration {
                retry_count: Some(1),
                ..WebhookConfiguration::default()
            },
            at(21),
        )
        .await
        .expect("update studio");
    assert_eq!(studio_after.kind, WebhookType::Studio, "type never changes");
    assert_eq!(
        studio_after.configuration.flow_sid,
        studio.configuration.flow_sid
    );
    assert_eq!(studio_after.configuration.retry_count, Some(1));

    // delete
    store
        .delete_channel_webhook(&account, &svc.sid, &by_name, &value.sid)
        .await
        .expect("delete");
    assert_not_found(
        store
            .fetch_channel_webhook(&account, &svc.sid, &by_name, &value.sid)
            .await,
        "deleted webhook",
    );
    assert_not_found(
        store
            .delete_channel_webhook(&account, &svc.sid, &by_name, &value.sid)
            .await,
        "delete twice",
    );
    assert_not_found(
        store
            .update_channel_webhook(&account, &svc.sid, &by_name, &value.sid, &patch, at(30))
            .await,
        "update a deleted webhook",
    );
    assert_eq!(delivery_sids(&store, &ch).await, vec![studio.sid.clone()]);
    // a missing channel
    let missing = ChannelRef::UniqueName("missing".to_owned());
    assert_not_found(
        store
            .create_channel_webhook(&missing, &channel_webhook_value(&ch, "http://h", at(1)))
            .await,
        "create in a missing channel",
    );
    assert_not_found(
        store
            .list_channel_webhooks(&account, &svc.sid, &missing, &PageRequest::first(5))
            .await,
        "list of a missing channel",
    );
}

/// A channel holds at most 5 webhooks: the sixth create is `LimitExceeded(ChannelWebhooks)` and
/// stores nothing; another channel is not affected; after a delete one more fits. Twelve
/// concurrent creates into an empty channel leave exactly 5.
pub async fn a_channel_has_at_most_five_webhooks_even_under_concurrent_creates(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let full = channel(&store, &svc, "full").await;
    let other = channel(&store, &svc, "other").await;
    let mut made = Vec::new();
    for i in 0..MAX_CHANNEL_WEBHOOKS {
        let v = channel_webhook_value(&full, &format!("http://h/{i}"), at(i));
        made.push(
            store
                .create_channel_webhook(&by_sid(&full), &v)
                .await
                .expect("one of five"),
        );
    }

    // Act + Assert: sequential
    let sixth = channel_webhook_value(&full, "http://h/6", at(100));
    assert_too_many(
        store.create_channel_webhook(&by_sid(&full), &sixth).await,
        "sixth webhook",
    );
    assert_not_found(
        store
            .fetch_channel_webhook(&account, &svc.sid, &by_sid(&full), &sixth.sid)
            .await,
        "the refused webhook",
    );
    assert_eq!(delivery_sids(&store, &full).await.len(), 5);
    store
        .create_channel_webhook(
            &by_sid(&other),
            &channel_webhook_value(&other, "http://o", at(1)),
        )
        .await
        .expect("another channel has its own limit");
    store
        .delete_channel_webhook(&account, &svc.sid, &by_sid(&full), &made[0].sid)
        .await
        .expect("delete one");
    store
        .create_channel_webhook(&by_sid(&full), &sixth)
        .await
        .expect("fits after a delete");
    assert_too_many(
        store
            .create_channel_webhook(
                &by_sid(&full),
                &channel_webhook_value(&full, "http://h/7", at(101)),
            )
            .await,
        "full again",
    );

    // Act + Assert: concurrent
    let race = Arc::new(channel(&store, &svc, "race").await);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = store.clone();
        let race = Arc::clone(&race);
        tasks.push(tokio::spawn(async move {
            let v = channel_webhook_value(&race, &format!("http://r/{i}"), Timestamp::now());
            store.create_channel_webhook(&by_sid(&race), &v).await
        }));
    }
    let (mut ok, mut too_many) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(StoreError::LimitExceeded(Limit::ChannelWebhooks)) => too_many += 1,
            Err(other) => panic!("concurrent create: {other:?}"),
        }
    }
    assert_eq!((ok, too_many), (5, 7));
    assert_eq!(delivery_sids(&store, &race).await.len(), 5);
}

/// The `channel_removed` event of a deletion with webhooks on keeps the channel's webhooks as
/// they were (oldest first), so delivery can still call them after the rows went with the
/// channel; with webhooks off, and on every other event, it keeps none.
pub async fn a_channel_removed_event_keeps_the_channels_webhooks_when_webhooks_fire(
    store: DynStore,
) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let hooked = channel(&store, &svc, "hooked").await;
    let quiet = channel(&store, &svc, "quiet").await;
    let other = channel(&store, &svc, "other").await;
    let mut made = Vec::new();
    for (i, url) in ["http://b", "http://a"].iter().enumerate() {
        let mut v = channel_webhook_value(&hooked, url, at(10 + i as i64));
        v.configuration.filters = Some(vec!["onChannelDestroyed".to_owned()]);
        made.push(
            store
                .create_channel_webhook(&by_sid(&hooked), &v)
                .await
                .expect("create"),
        );
    }
    store
        .create_channel_webhook(
            &by_sid(&quiet),
            &channel_webhook_value(&quiet, "http://q", at(1)),
        )
        .await
        .expect("create");
    store
        .create_channel_webhook(
            &by_sid(&other),
            &channel_webhook_value(&other, "http://o", at(1)),
        )
        .await
        .expect("create");

    // Act: by unique name with webhooks on; by SID with them off
    store
        .delete_channel(
            &account,
            &svc.sid,
            &ChannelRef::UniqueName("hooked".to_owned()),
            &crate::event::Origin::api(true),
        )
        .await
        .expect("delete hooked");
    store
        .delete_channel(
            &account,
            &svc.sid,
            &by_sid(&quiet),
            &crate::event::Origin::rest(),
        )
        .await
        .expect("delete quiet");

    // Assert
    let events = store.list_events(&svc.sid, 0, 1000).await.expect("events");
    let removed: Vec<_> = events
        .iter()
        .filter(|e| e.kind == crate::event::EventKind::ChannelRemoved)
        .collect();
    assert_eq!(removed.len(), 2);
    assert_eq!(removed[0].channel_sid.as_ref(), Some(&hooked.sid));
    assert_eq!(
        removed[0].channel_webhooks, made,
        "as they were, oldest first"
    );
    assert_eq!(removed[1].channel_sid.as_ref(), Some(&quiet.sid));
    assert!(
        removed[1].channel_webhooks.is_empty(),
        "webhooks off: none kept"
    );
    for e in events
        .iter()
        .filter(|e| e.kind != crate::event::EventKind::ChannelRemoved)
    {
        assert!(e.channel_webhooks.is_empty(), "{e:?}");
    }
    // The delivery view, for events before the deletion: the deleted channel's hooks as its
    // event kept them, with the other channels' in one read, grouped in the order asked.
    let asked = [other.sid.clone(), hooked.sid.clone(), quiet.sid.clone()];
    let before = store
        .channel_webhooks_for_delivery(&account, &svc.sid, &asked, 0)
        .await
        .expect("delivery view");
    let channels: Vec<_> = before.iter().map(|w| w.channel_sid.clone()).collect();
    assert_eq!(
        channels,
        [other.sid.clone(), hooked.sid.clone(), hooked.sid.clone()],
        "others untouched; the deleted channel's kept hooks; none kept with webhooks off"
    );
    assert_eq!(before[1..], made[..]);
    // Past the deletion, nothing of the deleted channel is left.
    let after = store
        .channel_webhooks_for_delivery(&account, &svc.sid, &asked, removed[1].seq)
        .await
        .expect("delivery view");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].channel_sid, other.sid);
    assert!(store
        .channel_webhooks_for_delivery(&account, &svc.sid, &[], 0)
        .await
        .expect("nothing asked")
        .is_empty());
}

/// Deleting a channel removes its webhooks (a new channel with the same unique name has none);
/// deleting the service removes the rest.
pub async fn deleting_a_channel_or_its_service_removes_its_webhooks(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let doomed = channel(&store, &svc, "doomed").await;
    let kept = channel(&store, &svc, "kept").await;
    let w = store
        .create_channel_webhook(
            &by_sid(&doomed),
            &channel_webhook_value(&doomed, "http://d", at(1)),
        )
        .await
        .expect("create");
    let k = store
        .create_channel_webhook(
            &by_sid(&kept),
            &channel_webhook_value(&kept, "http://k", at(1)),
        )
        .await
        .expect("create");

    // Act
    store
        .delete_channel(
            &account,
            &svc.sid,
            &by_sid(&doomed),
            &crate::event::Origin::rest(),
        )
        .await
        .expect("delete channel");

    // Assert
    assert!(delivery_sids(&store, &doomed).await.is_empty());
    assert_not_found(
        store
            .fetch_channel_webhook(&account, &svc.sid, &by_sid(&doomed), &w.sid)
            .await,
        "webhook of a deleted channel",
    );
    let again = channel(&store, &svc, "doomed").await;
    assert!(store
        .list_channel_webhooks(&account, &svc.sid, &by_sid(&again), &PageRequest::first(5))
        .await
        .expect("list")
        .items
        .is_empty());
    assert_eq!(delivery_sids(&store, &kept).await, vec![k.sid.clone()]);

    // Act + Assert: the service
    store
        .delete_service(&account, &svc.sid)
        .await
        .expect("delete service");
    assert!(delivery_sids(&store, &kept).await.is_empty());
}

/// Another account, or another service of the same account, sees none of a channel's webhooks:
/// every call is `NotFound` (or empty, for the delivery view) and changes nothing.
pub async fn another_accounts_channel_webhooks_are_not_found(store: DynStore) {
    // Arrange
    let owner = account(&store).await;
    let intruder = account(&store).await;
    let svc = service(&store, &owner).await;
    let other_svc = service(&store, &owner).await;
    let ch = channel(&store, &svc, "private-hooks").await;
    let w = store
        .create_channel_webhook(&by_sid(&ch), &channel_webhook_value(&ch, "http://h", at(1)))
        .await
        .expect("create");
    let patch = WebhookConfiguration {
        url: Some("http://evil".to_owned()),
        ..WebhookConfiguration::default()
    };

    // Act + Assert
    for (acct, service_sid) in [(&intruder, &svc.sid), (&owner, &other_svc.sid)] {
        for r in [
            by_sid(&ch),
            ChannelRef::UniqueName("private-hooks".to_owned()),
        ] {
            assert_not_found(
                store
                    .fetch_channel_webhook(acct, service_sid, &r, &w.sid)
                    .await,
                "fetch",
            );
            assert_not_found(
                store
                    .list_channel_webhooks(acct, service_sid, &r, &PageRequest::first(5))
                    .await,
                "list",
            );
            assert_not_found(
                store
                    .update_channel_webhook(acct, service_sid, &r, &w.sid, &patch, at(2))
                    .await,
                "update",
            );
            assert_not_found(
                store
                    .delete_channel_webhook(acct, service_sid, &r, &w.sid)
                    .await,
                "delete",
            );
        }
        let foreign = ChannelWebhook {
            account_sid: acct.clone(),
            service_sid: service_sid.clone(),
            ..channel_webhook_value(&ch, "http://evil", at(3))
        };
        assert_not_found(
            store.create_channel_webhook(&by_sid(&ch), &foreign).await,
            "create",
        );
        assert!(store
            .channel_webhooks_for_delivery(acct, service_sid, std::slice::from_ref(&ch.sid), 0)
            .await
            .expect("delivery view")
            .is_empty());
    }
    assert_eq!(
        store
            .fetch_channel_webhook(&owner, &svc.sid, &by_sid(&ch), &w.sid)
            .await
            .expect("unchanged"),
        w
    );
    assert_eq!(delivery_sids(&store, &ch).await, vec![w.sid.clone()]);
}

/// Lists page by `(date_created, sid)` forward and backwards; the delivery view returns every
/// webhook in the same order, oldest first.
pub async fn channel_webhooks_page_by_date_created_then_sid(store: DynStore) {
    // Arrange: two share a date_created, so the SID breaks the tie.
    let account = account(&store).await;
    let svc = service(&store, &account).await;
    let ch = channel(&store, &svc, "paged").await;
    let mut hooks = Vec::new();
    for (i, secs) in [30, 10, 20, 10, 40].iter().enumerate() {
        let v = channel_webhook_value(&ch, &format!("http://h/{i}"), at(*secs));
        hooks.push(
            store
                .create_channel_webhook(&by_sid(&ch), &v)
                .await
                .expect("create"),
        );
    }
    hooks.sort_by_key(|w| (w.date_created, w.sid.as_str().to_owned()));

    // Act
    let pages = {
        let store = store.clone();
        let (account, service_sid) = (account.clone(), svc.sid.clone());
        let r = by_sid(&ch);
        all_pages(
            2,
            |w: &ChannelWebhook| (w.date_created, w.sid.as_str().to_owned()),
            move |req| {
                let (store, account, service_sid, r) = (
                    store.clone(),
                    account.clone(),
                    service_sid.clone(),
                    r.clone(),
                );
                Box::pin(async move {
                    store
                        .list_channel_webhooks(&account, &service_sid, &r, &req)
                        .await
                })
            },
        )
        .await
    };

    // Assert
    let sizes: Vec<usize> = pages.iter().map(|p| p.items.len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
    let walked: Vec<ChannelWebhook> = pages.into_iter().flat_map(|p| p.items).collect();
    assert_eq!(walked, hooks);
    let back = store
        .list_channel_webhooks(
            &account,
            &svc.sid,
            &by_sid(&ch),
            &super::cursor_sized(2, hooks[4].date_created, hooks[4].sid.as_str(), true),
        )
        .await
        .expect("previous page");
    assert_eq!(back.items, hooks[2..4].to_vec());
    assert!(back.more, "more rows precede");
    let expected: Vec<ChannelWebhookSid> = hooks.iter().map(|w| w.sid.clone()).collect();
    assert_eq!(delivery_sids(&store, &ch).await, expected);
}
