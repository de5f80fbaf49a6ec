//! Chat services and their settings (contract §3; defaults from service-defaults.md §3).

use serde::{Deserialize, Serialize};

use crate::role::NewRole;
use crate::{AccountSid, RoleSid, ServiceSid, Timestamp};

/// Largest allowed `Limits.ChannelMembers` / `Limits.UserChannels` (Chat Limits page).
pub const MAX_LIMIT: i64 = 1000;

/// A Chat service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `IS…`
    pub sid: ServiceSid,
    /// Owner.
    pub account_sid: AccountSid,
    /// Name given at creation or update.
    pub friendly_name: String,
    /// Created.
    pub date_created: Timestamp,
    /// Last updated.
    pub date_updated: Timestamp,
    /// Role given to new users (`service user` by default).
    pub default_service_role_sid: Option<RoleSid>,
    /// Role given to new channel members (`channel user` by default).
    pub default_channel_role_sid: Option<RoleSid>,
    /// Role given to a channel's creator (`channel admin` by default).
    pub default_channel_creator_role_sid: Option<RoleSid>,
    /// Every other setting, kept together.
    pub settings: ServiceSettings,
}

/// Service settings other than name and default roles. Stored as one JSON document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceSettings {
    /// Read status (consumption horizon) on; default true.
    pub read_status_enabled: bool,
    /// Reachability (online state) on; default false.
    pub reachability_enabled: bool,
    /// Seconds; default 5.
    pub typing_indicator_timeout: i64,
    /// Seconds; deprecated; default 10.
    pub consumption_report_interval: i64,
    /// Counter limits.
    pub limits: Limits,
    /// Pre-event webhook URL.
    pub pre_webhook_url: Option<String>,
    /// Post-event webhook URL.
    pub post_webhook_url: Option<String>,
    /// `GET` or `POST`; `None` shows as null (effective default POST).
    pub webhook_method: Option<String>,
    /// Events sent to webhooks; `None` shows as null.
    pub webhook_filters: Option<Vec<String>>,
    /// Retries of the pre-event webhook.
    pub pre_webhook_retry_count: i64,
    /// Retries of the post-event webhook.
    pub post_webhook_retry_count: i64,
    /// Push notification settings.
    pub notifications: NotificationSettings,
    /// Media settings.
    pub media: MediaSettings,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            read_status_enabled: true,
            reachability_enabled: false,
            typing_indicator_timeout: 5,
            consumption_report_interval: 10,
            limits: Limits::default(),
            pre_webhook_url: None,
            post_webhook_url: None,
            webhook_method: None,
            webhook_filters: None,
            pre_webhook_retry_count: 0,
            post_webhook_retry_count: 0,
            notifications: NotificationSettings::default(),
            media: MediaSettings::default(),
        }
    }
}

/// Counter limits (Chat Limits page: 100 members per channel, 250 channels per user).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Members per channel.
    pub channel_members: i64,
    /// Channels per user.
    pub user_channels: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            channel_members: 100,
            user_channels: 250,
        }
    }
}

/// Push notification settings of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationSettings {
    /// Keep a delivery log.
    pub log_enabled: bool,
    /// A message was posted.
    pub new_message: NotificationSetting,
    /// The user was added to a channel.
    pub added_to_channel: NotificationSetting,
    /// The user was removed from a channel.
    pub removed_from_channel: NotificationSetting,
    /// The user was invited to a channel.
    pub invited_to_channel: NotificationSetting,
}

/// One notification type's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationSetting {
    /// Send this notification at all.
    pub enabled: bool,
    /// Text template with `${…}` variables.
    pub template: Option<String>,
    /// Sound name.
    pub sound: Option<String>,
    /// Only for `new_message`: send badge counts.
    pub badge_count_enabled: Option<bool>,
}

/// Media settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaSettings {
    /// Largest media file in MB.
    pub size_limit_mb: i64,
    /// Text shown by clients that cannot show media.
    pub compatibility_message: Option<String>,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            size_limit_mb: 150,
            compatibility_message: Some(
                "Media messages are not supported by your client".to_owned(),
            ),
        }
    }
}

/// Changes to one notification type's settings; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotificationPatch {
    /// New `enabled`.
    pub enabled: Option<bool>,
    /// New template (`Some(None)` clears it).
    pub template: Option<Option<String>>,
    /// New sound (`Some(None)` clears it).
    pub sound: Option<Option<String>>,
    /// New `badge_count_enabled` (only meaningful for `new_message`).
    pub badge_count_enabled: Option<bool>,
}

impl NotificationPatch {
    fn apply(&self, n: &mut NotificationSetting) {
        if let Some(v) = self.enabled {
            n.enabled = v;
        }
        if let Some(t) = &self.template {
            n.template.clone_from(t);
        }
        if let Some(s) = &self.sound {
            n.sound.clone_from(s);
        }
        if let Some(b) = self.badge_count_enabled {
            n.badge_count_enabled = Some(b);
        }
    }
}

/// The fields an UpdateService request changes; `None` leaves a field as it is. The store
/// applies it to the row as stored at that moment, under the row's lock
/// ([`crate::store::ServiceStore::patch_service`]), so concurrent updates of different fields
/// all survive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServicePatch {
    /// New name.
    pub friendly_name: Option<String>,
    /// New default service (deployment) role.
    pub default_service_role_sid: Option<RoleSid>,
    /// New default channel role.
    pub default_channel_role_sid: Option<RoleSid>,
    /// New default channel creator role.
    pub default_channel_creator_role_sid: Option<RoleSid>,
    /// `ReadStatusEnabled`.
    pub read_status_enabled: Option<bool>,
    /// `ReachabilityEnabled`.
    pub reachability_enabled: Option<bool>,
    /// `TypingIndicatorTimeout`.
    pub typing_indicator_timeout: Option<i64>,
    /// `ConsumptionReportInterval`.
    pub consumption_report_interval: Option<i64>,
    /// `Limits.ChannelMembers`.
    pub limits_channel_members: Option<i64>,
    /// `Limits.UserChannels`.
    pub limits_user_channels: Option<i64>,
    /// `PreWebhookUrl` (`Some(None)` clears it).
    pub pre_webhook_url: Option<Option<String>>,
    /// `PostWebhookUrl` (`Some(None)` clears it).
    pub post_webhook_url: Option<Option<String>>,
    /// `WebhookMethod`.
    pub webhook_method: Option<String>,
    /// `WebhookFilters` (`Some(None)` clears them).
    pub webhook_filters: Option<Option<Vec<String>>>,
    /// `PreWebhookRetryCount`.
    pub pre_webhook_retry_count: Option<i64>,
    /// `PostWebhookRetryCount`.
    pub post_webhook_retry_count: Option<i64>,
    /// `Notifications.LogEnabled`.
    pub notifications_log_enabled: Option<bool>,
    /// `Notifications.NewMessage.*`.
    pub new_message: NotificationPatch,
    /// `Notifications.AddedToChannel.*`.
    pub added_to_channel: NotificationPatch,
    /// `Notifications.RemovedFromChannel.*`.
    pub removed_from_channel: NotificationPatch,
    /// `Notifications.InvitedToChannel.*`.
    pub invited_to_channel: NotificationPatch,
    /// `Media.CompatibilityMessage`.
    pub media_compatibility_message: Option<String>,
}

impl ServicePatch {
    /// Apply the given fields to `s` (not `date_updated`: the store sets it).
    pub fn apply(&self, s: &mut Service) {
        if let Some(n) = &self.friendly_name {
            s.friendly_name.clone_from(n);
        }
        if let Some(r) = &self.default_service_role_sid {
            s.default_service_role_sid = Some(r.clone());
        }
        if let Some(r) = &self.default_channel_role_sid {
            s.default_channel_role_sid = Some(r.clone());
        }
        if let Some(r) = &self.default_channel_creator_role_sid {
            s.default_channel_creator_role_sid = Some(r.clone());
        }
        let st = &mut s.settings;
        let set = |field: &mut i64, v: Option<i64>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(
            &mut st.typing_indicator_timeout,
            self.typing_indicator_timeout,
        );
        set(
            &mut st.consumption_report_interval,
            self.consumption_report_interval,
        );
        set(&mut st.limits.channel_members, self.limits_channel_members);
        set(&mut st.limits.user_channels, self.limits_user_channels);
        set(
            &mut st.pre_webhook_retry_count,
            self.pre_webhook_retry_count,
        );
        set(
            &mut st.post_webhook_retry_count,
            self.post_webhook_retry_count,
        );
        if let Some(v) = self.read_status_enabled {
            st.read_status_enabled = v;
        }
        if let Some(v) = self.reachability_enabled {
            st.reachability_enabled = v;
        }
        if let Some(u) = &self.pre_webhook_url {
            st.pre_webhook_url.clone_from(u);
        }
        if let Some(u) = &self.post_webhook_url {
            st.post_webhook_url.clone_from(u);
        }
        if let Some(m) = &self.webhook_method {
            st.webhook_method = Some(m.clone());
        }
        if let Some(f) = &self.webhook_filters {
            st.webhook_filters.clone_from(f);
        }
        if let Some(v) = self.notifications_log_enabled {
            st.notifications.log_enabled = v;
        }
        self.new_message.apply(&mut st.notifications.new_message);
        self.added_to_channel
            .apply(&mut st.notifications.added_to_channel);
        self.removed_from_channel
            .apply(&mut st.notifications.removed_from_channel);
        self.invited_to_channel
            .apply(&mut st.notifications.invited_to_channel);
        if let Some(m) = &self.media_compatibility_message {
            st.media.compatibility_message = Some(m.clone());
        }
    }
}

/// What `create_service` stores: the service row plus its four default roles, in one transaction.
#[derive(Clone, Debug)]
pub struct NewService {
    /// The service, with `default_*_role_sid` already pointing at `roles`.
    pub service: Service,
    /// The default roles.
    pub roles: Vec<NewRole>,
}

impl NewService {
    /// A new service named `friendly_name` with Twilio's default settings and default roles
    /// (service-defaults.md §1).
    pub fn with_defaults(account_sid: &AccountSid, friendly_name: &str, now: Timestamp) -> Self {
        let sid = ServiceSid::generate();
        let roles = crate::role::default_roles(account_sid, &sid, now);
        let find = |name: &str| {
            roles
                .iter()
                .find(|r| r.friendly_name == name)
                .map(|r| r.sid.clone())
        };
        let service = Service {
            sid,
            account_sid: account_sid.clone(),
            friendly_name: friendly_name.to_owned(),
            date_created: now,
            date_updated: now,
            default_service_role_sid: find("service user"),
            default_channel_role_sid: find("channel user"),
            default_channel_creator_role_sid: find("channel admin"),
            settings: ServiceSettings::default(),
        };
        Self { service, roles }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_changes_only_the_given_fields() {
        let account = AccountSid::generate();
        let mut s =
            NewService::with_defaults(&account, "Chat", Timestamp::from_unix_micros(0)).service;
        s.settings.pre_webhook_url = Some("https://a.example/pre".to_owned());
        s.settings.notifications.new_message.template = Some("old".to_owned());
        let before = s.clone();
        let patch = ServicePatch {
            reachability_enabled: Some(true),
            pre_webhook_url: Some(None),
            new_message: NotificationPatch {
                enabled: Some(true),
                ..NotificationPatch::default()
            },
            limits_user_channels: Some(7),
            ..ServicePatch::default()
        };

        patch.apply(&mut s);

        let mut expected = before.clone();
        expected.settings.reachability_enabled = true;
        expected.settings.pre_webhook_url = None;
        expected.settings.notifications.new_message.enabled = true;
        expected.settings.limits.user_channels = 7;
        assert_eq!(s, expected);
        let mut unchanged = before.clone();
        ServicePatch::default().apply(&mut unchanged);
        assert_eq!(unchanged, before, "an empty patch changes nothing");
    }
}
