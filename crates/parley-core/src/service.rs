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
