//! Channel webhooks (contract §12, webhooks.md §6): up to [`MAX_CHANNEL_WEBHOOKS`] per channel,
//! each a `webhook` (URL + post-event filters), a `trigger` (URL + message-body keywords) or a
//! `studio` hook (a Studio flow SID, stored but never called by Parley).
//!
//! The rules every configuration must satisfy live here ([`validate_new`], [`validate_update`]),
//! so the REST layer and the delivery engine read the same ones. Delivery itself is elsewhere.

use serde::{Deserialize, Serialize};

use crate::{AccountSid, ChannelSid, ChannelWebhookSid, FlowSid, ServiceSid, Timestamp};

/// Most webhooks one channel may have (webhooks.md §6: "up to 5"; Chat 50321).
pub const MAX_CHANNEL_WEBHOOKS: i64 = 5;
/// Most trigger keywords of one `trigger` webhook (spec: "up to a total of 5"; Chat 50322).
pub const MAX_TRIGGERS: usize = 5;
/// Longest trigger keyword, in characters (Conversations' keyword rule, error 50366: GUESS).
pub const MAX_TRIGGER_CHARS: usize = 248;
/// Longest webhook URL, in characters (as the service webhook URLs; Chat 50332).
pub const MAX_URL_CHARS: usize = 2048;
/// Largest `RetryCount` (spec: 0–3).
pub const MAX_RETRY_COUNT: i64 = 3;

/// Event names a channel webhook may filter on: the post-event names of webhooks.md §2 that
/// concern an existing channel. Pre-events (`onMessageSend`, …), `onChannelAdded` (the channel
/// exists already) and the user events (not channel-scoped) are refused (Chat 50325).
pub const CHANNEL_WEBHOOK_FILTERS: &[&str] = &[
    "onMessageSent",
    "onMessageUpdated",
    "onMessageRemoved",
    "onMediaMessageSent",
    "onChannelUpdated",
    "onChannelDestroyed",
    "onMemberAdded",
    "onMemberUpdated",
    "onMemberRemoved",
];

/// `webhook`, `trigger` or `studio` (not updatable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookType {
    /// Called with the events named in `filters`.
    Webhook,
    /// Called when a new message's body contains one of `triggers`.
    Trigger,
    /// Starts a Studio flow (inside Twilio; Parley stores it and never calls anything).
    Studio,
}

impl WebhookType {
    /// Wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Trigger => "trigger",
            Self::Studio => "studio",
        }
    }
    /// Parse the wire name (exact, lowercase).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "webhook" => Some(Self::Webhook),
            "trigger" => Some(Self::Trigger),
            "studio" => Some(Self::Studio),
            _ => None,
        }
    }
}

/// `GET` or `POST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WebhookMethod {
    /// Parameters in the query string.
    Get,
    /// Parameters as a form body (what the delivery engine uses when none is set).
    Post,
}

impl WebhookMethod {
    /// Wire name (`GET`/`POST`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
    /// Parse, any letter case.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("GET") {
            Some(Self::Get)
        } else if s.eq_ignore_ascii_case("POST") {
            Some(Self::Post)
        } else {
            None
        }
    }
}

/// A webhook's configuration: only the keys that were set are `Some` (and only those appear on
/// the wire, webhooks.md §6). Stored as JSON text with the wire key names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookConfiguration {
    /// URL to call (`webhook`, `trigger`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// HTTP method; unset means `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<WebhookMethod>,
    /// Event names ([`CHANNEL_WEBHOOK_FILTERS`]), without repeats, in the order given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<String>>,
    /// Trigger keywords (`trigger`), without repeats, in the order given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<String>>,
    /// Studio flow (`studio`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_sid: Option<FlowSid>,
    /// Retries after a failed call, 0–3; unset means 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<i64>,
}

impl WebhookConfiguration {
    /// This configuration with every field `patch` sets replaced (fields are never cleared).
    pub fn apply(&self, patch: &WebhookConfiguration) -> WebhookConfiguration {
        WebhookConfiguration {
            url: patch.url.clone().or_else(|| self.url.clone()),
            method: patch.method.or(self.method),
            filters: patch.filters.clone().or_else(|| self.filters.clone()),
            triggers: patch.triggers.clone().or_else(|| self.triggers.clone()),
            flow_sid: patch.flow_sid.clone().or_else(|| self.flow_sid.clone()),
            retry_count: patch.retry_count.or(self.retry_count),
        }
    }

    /// Whether this hook wants `event` (a post-event name such as `onMessageSent`).
    pub fn wants(&self, event: &str) -> bool {
        self.filters
            .as_ref()
            .is_some_and(|f| f.iter().any(|name| name == event))
    }
}

/// One channel webhook (serde: the internal JSON of a `channel_removed` event's snapshot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelWebhook {
    /// `WH…`
    pub sid: ChannelWebhookSid,
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// The channel.
    pub channel_sid: ChannelSid,
    /// What it is; fixed at creation.
    pub kind: WebhookType,
    /// How it is configured.
    pub configuration: WebhookConfiguration,
    /// Created.
    pub date_created: Timestamp,
    /// Last updated.
    pub date_updated: Timestamp,
}

/// A configuration rule a create or update broke. The REST layer maps each to its Chat code
/// (50322–50332, or 50055/50065 as the service webhook settings use).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `webhook`/`trigger` without a URL (50329).
    #[error("Webhook url not provided")]
    UrlMissing,
    /// URL longer than [`MAX_URL_CHARS`] (50332).
    #[error("Webhook url too long")]
    UrlTooLong,
    /// URL that is not an absolute `http`/`https` URL with a host (20001).
    #[error("Webhook url must be an http or https URL")]
    UrlInvalid,
    /// `webhook` without filters (50330).
    #[error("Webhook filters not provided")]
    FiltersMissing,
    /// A filter that is not in [`CHANNEL_WEBHOOK_FILTERS`] (50325).
    #[error("Invalid webhook filter")]
    InvalidFilter,
    /// `trigger` without triggers (50331).
    #[error("Webhook triggers not provided")]
    TriggersMissing,
    /// More than [`MAX_TRIGGERS`] distinct triggers (50322).
    #[error("Too many webhook triggers")]
    TooManyTriggers,
    /// An empty trigger or one longer than [`MAX_TRIGGER_CHARS`] (50326).
    #[error("Invalid webhook trigger")]
    InvalidTrigger,
    /// `studio` without a flow SID (50327).
    #[error("Invalid webhook flow sid")]
    FlowSidMissing,
    /// A retry count outside 0–[`MAX_RETRY_COUNT`] (50065).
    #[error("Invalid webhook retry count")]
    InvalidRetryCount,
}

/// Check every value `config` sets (any type).
pub fn validate_update(config: &WebhookConfiguration) -> Result<(), ConfigError> {
    if let Some(url) = &config.url {
        check_url(url)?;
    }
    if let Some(filters) = &config.filters {
        if filters
            .iter()
            .any(|f| !CHANNEL_WEBHOOK_FILTERS.contains(&f.as_str()))
        {
            return Err(ConfigError::InvalidFilter);
        }
    }
    if let Some(triggers) = &config.triggers {
        if triggers
            .iter()
            .any(|t| t.is_empty() || t.chars().nth(MAX_TRIGGER_CHARS).is_some())
        {
            return Err(ConfigError::InvalidTrigger);
        }
        if triggers.len() > MAX_TRIGGERS {
            return Err(ConfigError::TooManyTriggers);
        }
    }
    if let Some(n) = config.retry_count {
        if !(0..=MAX_RETRY_COUNT).contains(&n) {
            return Err(ConfigError::InvalidRetryCount);
        }
    }
    Ok(())
}

/// Check a new webhook: every value set ([`validate_update`]), then what its type needs —
/// `webhook`: URL and filters; `trigger`: URL and triggers; `studio`: a flow SID. Other keys
/// are kept when given (a `studio` hook may name filters, webhooks.md §6).
pub fn validate_new(kind: WebhookType, config: &WebhookConfiguration) -> Result<(), ConfigError> {
    let has = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    match kind {
        WebhookType::Webhook | WebhookType::Trigger if config.url.is_none() => {
            return Err(ConfigError::UrlMissing)
        }
        WebhookType::Webhook if !has(&config.filters) => return Err(ConfigError::FiltersMissing),
        WebhookType::Trigger if !has(&config.triggers) => return Err(ConfigError::TriggersMissing),
        WebhookType::Studio if config.flow_sid.is_none() => {
            return Err(ConfigError::FlowSidMissing)
        }
        _ => {}
    }
    validate_update(config)
}

fn check_url(url: &str) -> Result<(), ConfigError> {
    if url.chars().nth(MAX_URL_CHARS).is_some() {
        return Err(ConfigError::UrlTooLong);
    }
    // Absolute http(s) URL with a host: `scheme://host[...]`, no whitespace or control chars.
    let after = |scheme: &str| {
        let n = scheme.len();
        url.get(..n)
            .filter(|p| p.eq_ignore_ascii_case(scheme))
            .and_then(|_| url.get(n..))
    };
    let rest = after("http://")
        .or_else(|| after("https://"))
        .ok_or(ConfigError::UrlInvalid)?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    if host.is_empty()
        || host.starts_with(':')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ConfigError::UrlInvalid);
    }
    Ok(())
}

/// `hooks` grouped by channel in the order of `channels` (a stable sort: the order within one
/// channel is kept); hooks of other channels are dropped.
pub fn grouped_by_channel(
    mut hooks: Vec<ChannelWebhook>,
    channels: &[crate::ChannelSid],
) -> Vec<ChannelWebhook> {
    hooks.retain(|h| channels.contains(&h.channel_sid));
    hooks.sort_by_key(|h| channels.iter().position(|c| *c == h.channel_sid));
    hooks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: Option<&str>, filters: &[&str]) -> WebhookConfiguration {
        WebhookConfiguration {
            url: url.map(str::to_owned),
            filters: Some(filters.iter().map(|f| (*f).to_owned()).collect())
                .filter(|f: &Vec<String>| !f.is_empty()),
            ..WebhookConfiguration::default()
        }
    }

    #[test]
    fn each_type_needs_its_own_keys() {
        let ok = hook(Some("https://example.com/hook"), &["onMessageSent"]);
        assert_eq!(validate_new(WebhookType::Webhook, &ok), Ok(()));
        assert_eq!(
            validate_new(WebhookType::Webhook, &hook(None, &["onMessageSent"])),
            Err(ConfigError::UrlMissing)
        );
        assert_eq!(
            validate_new(WebhookType::Webhook, &hook(Some("http://h"), &[])),
            Err(ConfigError::FiltersMissing)
        );
        assert_eq!(
            validate_new(WebhookType::Trigger, &hook(Some("http://h"), &[])),
            Err(ConfigError::TriggersMissing)
        );
        assert_eq!(
            validate_new(WebhookType::Studio, &WebhookConfiguration::default()),
            Err(ConfigError::FlowSidMissing)
        );
        let studio = WebhookConfiguration {
            flow_sid: Some(FlowSid::generate()),
            ..WebhookConfiguration::default()
        };
        assert_eq!(validate_new(WebhookType::Studio, &studio), Ok(()));
    }

    #[test]
    fn values_are_checked_whatever_the_type() {
        assert_eq!(
            validate_update(&hook(None, &["onMessageSend"])),
            Err(ConfigError::InvalidFilter),
            "pre-event names are refused"
        );
        assert_eq!(
            validate_update(&hook(Some(&format!("https://h/{}", "a".repeat(2048))), &[])),
            Err(ConfigError::UrlTooLong)
        );
        for bad in ["dummy", "ftp://h/x", "http://", "https:///x", "http://h x"] {
            assert_eq!(
                validate_update(&hook(Some(bad), &[])),
                Err(ConfigError::UrlInvalid),
                "{bad}"
            );
        }
        for good in [
            "http://h",
            "HTTPS://example.com:8443/a?b=c",
            "http://u:p@h/",
        ] {
            assert_eq!(validate_update(&hook(Some(good), &[])), Ok(()), "{good}");
        }
        let triggers = |t: Vec<String>| WebhookConfiguration {
            triggers: Some(t),
            ..WebhookConfiguration::default()
        };
        assert_eq!(
            validate_update(&triggers((0..6).map(|i| format!("k{i}")).collect())),
            Err(ConfigError::TooManyTriggers)
        );
        assert_eq!(
            validate_update(&triggers(vec![String::new()])),
            Err(ConfigError::InvalidTrigger)
        );
        let retry = |n| WebhookConfiguration {
            retry_count: Some(n),
            ..WebhookConfiguration::default()
        };
        assert_eq!(validate_update(&retry(3)), Ok(()));
        assert_eq!(
            validate_update(&retry(4)),
            Err(ConfigError::InvalidRetryCount)
        );
        assert_eq!(
            validate_update(&retry(-1)),
            Err(ConfigError::InvalidRetryCount)
        );
    }

    #[test]
    fn apply_replaces_only_what_the_patch_sets_and_json_keeps_only_set_keys() {
        let base = WebhookConfiguration {
            url: Some("http://a".to_owned()),
            method: Some(WebhookMethod::Get),
            filters: Some(vec!["onMessageSent".to_owned()]),
            retry_count: Some(2),
            ..WebhookConfiguration::default()
        };
        let patch = WebhookConfiguration {
            url: Some("http://b".to_owned()),
            ..WebhookConfiguration::default()
        };
        let merged = base.apply(&patch);
        assert_eq!(merged.url.as_deref(), Some("http://b"));
        assert_eq!(merged.method, Some(WebhookMethod::Get));
        assert_eq!(merged.retry_count, Some(2));
        let json = serde_json::to_value(&merged).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"url": "http://b", "method": "GET",
                               "filters": ["onMessageSent"], "retry_count": 2})
        );
        let back: WebhookConfiguration = serde_json::from_value(json).expect("back");
        assert_eq!(back, merged);
        assert!(merged.wants("onMessageSent") && !merged.wants("onMemberAdded"));
    }
}
