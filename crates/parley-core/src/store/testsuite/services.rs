//! Services: defaults, settings round trip, cascade on delete.

use crate::event::Origin;
use crate::paging::PageRequest;
use crate::role::RoleType;
use crate::service::{NewService, NotificationPatch, ServicePatch};
use crate::user::{User, UserRef};
use crate::{ServiceSid, Timestamp};

use super::{account, assert_not_found, at, registration, service, user, user_at, DynStore};
use crate::credential::PushType;

/// A new service comes with the four default roles, its default role SIDs point at them, and
/// fetch returns exactly what was created, settings included.
pub async fn created_service_has_four_default_roles_and_round_trips_settings(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let new = NewService::with_defaults(&account, "Support chat", at(0));

    // Act
    let created = store.create_service(&new).await.expect("create service");
    let fetched = store
        .fetch_service(&account, &new.service.sid)
        .await
        .expect("fetch service");
    let roles = store
        .list_roles(&account, &new.service.sid, &PageRequest::first(50))
        .await
        .expect("list roles");

    // Assert
    assert_eq!(created, new.service);
    assert_eq!(fetched, new.service);
    let names: Vec<&str> = roles
        .items
        .iter()
        .map(|r| r.friendly_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "service admin",
            "service user",
            "channel admin",
            "channel user"
        ]
    );
    assert!(!roles.more);
    assert_eq!(
        roles.items, new.roles,
        "roles are stored as given, in creation order"
    );
    let role_named = |name: &str| {
        roles
            .items
            .iter()
            .find(|r| r.friendly_name == name)
            .map(|r| r.sid.clone())
    };
    assert_eq!(fetched.default_service_role_sid, role_named("service user"));
    assert_eq!(fetched.default_channel_role_sid, role_named("channel user"));
    assert_eq!(
        fetched.default_channel_creator_role_sid,
        role_named("channel admin")
    );
    assert_eq!(roles.items[0].role_type, RoleType::Deployment);
    assert_eq!(roles.items[3].role_type, RoleType::Channel);
}

/// Every field a patch can change, nested settings included, is stored and read back; the
/// fields it leaves out keep their values; `date_updated` is the patch's time.
pub async fn service_update_persists_nested_settings(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let original = service(&store, &account).await;
    let later = original.date_updated.plus_secs(30);
    let other_role = original.default_channel_creator_role_sid.clone();
    assert_ne!(other_role, original.default_channel_role_sid);
    let template = "${USER}: ${MESSAGE} — ünïcødé \"q\"";
    let patch = ServicePatch {
        friendly_name: Some("Renamed".to_owned()),
        default_channel_role_sid: other_role.clone(),
        reachability_enabled: Some(true),
        read_status_enabled: Some(false),
        typing_indicator_timeout: Some(9),
        limits_channel_members: Some(500),
        limits_user_channels: Some(1000),
        pre_webhook_url: Some(Some("https://hooks.example.com/pre?a=1&b=2".to_owned())),
        webhook_method: Some("GET".to_owned()),
        webhook_filters: Some(Some(vec![
            "onMessageSend".to_owned(),
            "onChannelAdded".to_owned(),
        ])),
        post_webhook_retry_count: Some(3),
        notifications_log_enabled: Some(true),
        new_message: NotificationPatch {
            enabled: Some(true),
            template: Some(Some(template.to_owned())),
            sound: Some(Some("ding.caf".to_owned())),
            badge_count_enabled: Some(true),
        },
        invited_to_channel: NotificationPatch {
            enabled: Some(true),
            ..NotificationPatch::default()
        },
        media_compatibility_message: Some("Update your app to see media".to_owned()),
        ..ServicePatch::default()
    };
    // What the stored service must look like, written out field by field.
    let mut changed = original.clone();
    changed.friendly_name = "Renamed".to_owned();
    changed.date_updated = later;
    changed.default_channel_role_sid = other_role;
    let s = &mut changed.settings;
    s.reachability_enabled = true;
    s.read_status_enabled = false;
    s.typing_indicator_timeout = 9;
    s.limits.channel_members = 500;
    s.limits.user_channels = 1000;
    s.pre_webhook_url = Some("https://hooks.example.com/pre?a=1&b=2".to_owned());
    s.webhook_method = Some("GET".to_owned());
    s.webhook_filters = Some(vec![
        "onMessageSend".to_owned(),
        "onChannelAdded".to_owned(),
    ]);
    s.post_webhook_retry_count = 3;
    s.notifications.log_enabled = true;
    s.notifications.new_message.enabled = true;
    s.notifications.new_message.template = Some(template.to_owned());
    s.notifications.new_message.sound = Some("ding.caf".to_owned());
    s.notifications.new_message.badge_count_enabled = Some(true);
    s.notifications.invited_to_channel.enabled = true;
    s.media.compatibility_message = Some("Update your app to see media".to_owned());

    // Act
    let returned = store
        .patch_service(&account, &original.sid, &patch, later)
        .await
        .expect("patch service");
    let fetched = store
        .fetch_service(&account, &original.sid)
        .await
        .expect("fetch service");

    // Assert
    assert_eq!(returned, changed);
    assert_eq!(fetched, changed);
    assert_eq!(fetched.date_created, original.date_created);
    assert_ne!(fetched.settings, original.settings);
}

/// Patches applied at the same time, each to a different field, all survive (the store reads,
/// changes and writes the row under its lock); `date_updated` is the patch's time; a missing
/// or another account's service is not found.
pub async fn concurrent_service_patches_of_different_fields_all_survive(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let original = service(&store, &account).await;
    let later = original.date_updated.plus_secs(60);
    let patches: Vec<ServicePatch> = vec![
        ServicePatch {
            friendly_name: Some("Renamed".to_owned()),
            ..ServicePatch::default()
        },
        ServicePatch {
            read_status_enabled: Some(false),
            ..ServicePatch::default()
        },
        ServicePatch {
            reachability_enabled: Some(true),
            ..ServicePatch::default()
        },
        ServicePatch {
            typing_indicator_timeout: Some(42),
            ..ServicePatch::default()
        },
        ServicePatch {
            limits_user_channels: Some(900),
            ..ServicePatch::default()
        },
        ServicePatch {
            post_webhook_url: Some(Some("https://hooks.example.com/post".to_owned())),
            ..ServicePatch::default()
        },
        ServicePatch {
            webhook_filters: Some(Some(vec!["onMessageSent".to_owned()])),
            ..ServicePatch::default()
        },
        ServicePatch {
            new_message: NotificationPatch {
                enabled: Some(true),
                ..NotificationPatch::default()
            },
            ..ServicePatch::default()
        },
        ServicePatch {
            new_message: NotificationPatch {
                sound: Some(Some("ding.caf".to_owned())),
                ..NotificationPatch::default()
            },
            ..ServicePatch::default()
        },
        ServicePatch {
            removed_from_channel: NotificationPatch {
                template: Some(Some("bye ${CHANNEL}".to_owned())),
                ..NotificationPatch::default()
            },
            ..ServicePatch::default()
        },
        ServicePatch {
            media_compatibility_message: Some("no media".to_owned()),
            ..ServicePatch::default()
        },
        ServicePatch {
            notifications_log_enabled: Some(true),
            ..ServicePatch::default()
        },
    ];
    let mut expected = original.clone();
    for p in &patches {
        p.apply(&mut expected);
    }
    expected.date_updated = later;

    // Act
    let tasks: Vec<_> = patches
        .into_iter()
        .map(|patch| {
            let store = store.clone();
            let account = account.clone();
            let sid = original.sid.clone();
            tokio::spawn(async move {
                store
                    .patch_service(&account, &sid, &patch, later)
                    .await
                    .expect("patch service")
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("patch task");
    }
    let fetched = store
        .fetch_service(&account, &original.sid)
        .await
        .expect("fetch service");

    // Assert
    assert_eq!(fetched, expected);
    assert_ne!(fetched.settings, original.settings);
    let other = super::account(&store).await;
    assert_not_found(
        store
            .patch_service(&other, &original.sid, &ServicePatch::default(), later)
            .await,
        "another account's service",
    );
    assert_not_found(
        store
            .patch_service(
                &account,
                &ServiceSid::generate(),
                &ServicePatch::default(),
                later,
            )
            .await,
        "missing service",
    );
}

/// Deleting a service deletes its roles, users and bindings, and nothing of another service.
pub async fn service_delete_removes_its_roles_users_and_bindings(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let doomed = service(&store, &account).await;
    let kept = service(&store, &account).await;
    let alice = user(&store, &doomed, "alice").await;
    let alice_kept = user(&store, &kept, "alice").await;
    let binding = store
        .register_binding(&registration(
            &alice,
            PushType::Fcm,
            "e1",
            "tok",
            Timestamp::now(),
        ))
        .await
        .expect("register")
        .binding;
    let kept_binding = store
        .register_binding(&registration(
            &alice_kept,
            PushType::Fcm,
            "e1",
            "tok",
            Timestamp::now(),
        ))
        .await
        .expect("register")
        .binding;
    let role = doomed
        .default_service_role_sid
        .clone()
        .expect("default role");

    // Act
    store
        .delete_service(&account, &doomed.sid)
        .await
        .expect("delete service");

    // Assert
    assert_not_found(store.fetch_service(&account, &doomed.sid).await, "service");
    assert_not_found(
        store.fetch_role(&account, &doomed.sid, &role).await,
        "default role",
    );
    assert_not_found(
        store
            .fetch_user(&account, &doomed.sid, &UserRef::Sid(alice.sid.clone()))
            .await,
        "user",
    );
    assert_not_found(
        store
            .fetch_binding(&account, &doomed.sid, &binding.sid)
            .await,
        "binding",
    );
    assert_eq!(
        store
            .count_user_bindings(&account, &doomed.sid, &alice.sid)
            .await
            .expect("count"),
        0
    );
    assert_not_found(
        store.delete_service(&account, &doomed.sid).await,
        "second delete",
    );
    // The other service is whole.
    assert_eq!(
        store
            .fetch_service(&account, &kept.sid)
            .await
            .expect("kept"),
        kept
    );
    assert_eq!(
        store
            .fetch_binding(&account, &kept.sid, &kept_binding.sid)
            .await
            .expect("kept binding"),
        kept_binding
    );
    let kept_roles = store
        .list_roles(&account, &kept.sid, &PageRequest::first(50))
        .await
        .expect("kept roles");
    assert_eq!(kept_roles.items.len(), 4);
    let listed = store
        .list_services(&account, &PageRequest::first(50))
        .await
        .expect("list services");
    assert_eq!(listed.items, vec![kept]);
}

/// A service SID that does not exist is `NotFound` for fetch, update, delete, and for creating
/// a role or a user under it.
pub async fn missing_service_is_not_found_for_fetch_update_delete_and_children(store: DynStore) {
    // Arrange
    let account = account(&store).await;
    let ghost = NewService::with_defaults(&account, "never stored", at(0));
    let ghost_sid: ServiceSid = ghost.service.sid.clone();
    let renamed = ServicePatch {
        friendly_name: Some("renamed".to_owned()),
        ..ServicePatch::default()
    };

    // Act + Assert
    assert_not_found(store.fetch_service(&account, &ghost_sid).await, "fetch");
    assert_not_found(
        store
            .patch_service(&account, &ghost_sid, &renamed, at(1))
            .await,
        "update",
    );
    assert_not_found(store.delete_service(&account, &ghost_sid).await, "delete");
    assert_not_found(store.create_role(&ghost.roles[0]).await, "create role");
    let ghost_user = User {
        role_sid: None,
        ..user_at(&ghost.service, "alice", at(0))
    };
    assert_not_found(
        store.create_user(&ghost_user, &Origin::rest()).await,
        "create user",
    );
    assert_not_found(
        store.get_or_create_user(&ghost_user, &Origin::rest()).await,
        "get_or_create user",
    );
    assert!(store
        .list_users(&account, &ghost_sid, &PageRequest::first(10))
        .await
        .expect("list users of a missing service is empty")
        .items
        .is_empty());
}
