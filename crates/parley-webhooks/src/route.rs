//! Who receives an event (webhooks.md §1, §6, §7): the service's post- or pre-event URL, and a
//! channel's webhooks by type.

use parley_core::service::ServiceSettings;

use crate::post::PostEvent;

/// Most retries of one call (`PreWebhookRetryCount`, `PostWebhookRetryCount`,
/// `Configuration.RetryCount` are all 0–3).
pub const MAX_RETRY_COUNT: u32 = 3;

/// HTTP method of a webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// Parameters in the query string.
    Get,
    /// Parameters form-encoded in the body (the default).
    Post,
}

impl Method {
    /// `GET` (any case) is GET; anything else, or nothing, is POST (the Chat default).
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some(m) if m.eq_ignore_ascii_case("GET") => Self::Get,
            _ => Self::Post,
        }
    }
    /// `GET` / `POST`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// Where to send one event and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The configured URL.
    pub url: String,
    /// GET or POST.
    pub method: Method,
    /// Retries after the first attempt (0–3).
    pub retries: u32,
}

/// Whether `filters` (a service's `WebhookFilters`, a channel webhook's `Configuration.Filters`)
/// lists `event_type`. Names compare exactly (case-sensitive). No filters, or an empty list,
/// selects nothing: Chat's console says events not listed do not fire (webhooks.md §1, GUESS).
pub fn filters_include(filters: Option<&[String]>, event_type: &str) -> bool {
    filters.is_some_and(|f| f.iter().any(|n| n == event_type))
}

fn retries(n: i64) -> u32 {
    u32::try_from(n.clamp(0, i64::from(MAX_RETRY_COUNT))).unwrap_or(0)
}

fn non_empty(url: Option<&String>) -> Option<&String> {
    url.filter(|u| !u.trim().is_empty())
}

/// The service's post-event target for `post`: when the change allows webhooks, the service has
/// a `PostWebhookUrl`, and its `WebhookFilters` list the event.
pub fn service_post_target(settings: &ServiceSettings, post: &PostEvent) -> Option<Target> {
    if !post.webhooks || !filters_include(settings.webhook_filters.as_deref(), post.event_type) {
        return None;
    }
    let url = non_empty(settings.post_webhook_url.as_ref())?;
    Some(Target {
        url: url.clone(),
        method: Method::parse(settings.webhook_method.as_deref()),
        retries: retries(settings.post_webhook_retry_count),
    })
}

/// The service's pre-event target for `event_type` (e.g. `onMessageSend`): when the service has
/// a `PreWebhookUrl` and its `WebhookFilters` list the event. Pre-events fire for client (SDK)
/// actions — REST never fires them in Twilio (webhooks.md §2), only through Parley's opt-in
/// `rest_pre_webhooks` extension; that check is the caller's.
pub fn service_pre_target(settings: &ServiceSettings, event_type: &str) -> Option<Target> {
    if !filters_include(settings.webhook_filters.as_deref(), event_type) {
        return None;
    }
    let url = non_empty(settings.pre_webhook_url.as_ref())?;
    Some(Target {
        url: url.clone(),
        method: Method::parse(settings.webhook_method.as_deref()),
        retries: retries(settings.pre_webhook_retry_count),
    })
}

/// Whether a channel webhook of type `kind` (`webhook`, `trigger` or `studio`) with these
/// `filters` and `triggers` receives `post`. Every type requires the change to allow webhooks
/// (webhooks.md §7), and `post` must concern that webhook's channel (the caller's lookup).
///
/// * `webhook`: its filters list the event name.
/// * `trigger`: a new message (`onMessageSent`) whose body contains one of the triggers
///   ([`trigger_matches`]); filters are not consulted.
/// * `studio`: never — it would start a Twilio Studio Flow; stored, not delivered.
pub fn channel_hook_wants(
    kind: &str,
    filters: &[String],
    triggers: &[String],
    post: &PostEvent,
) -> bool {
    if !post.webhooks {
        return false;
    }
    match kind {
        "webhook" => filters_include(Some(filters), post.event_type),
        "trigger" => {
            post.event_type == "onMessageSent"
                && post
                    .body_for_triggers
                    .as_deref()
                    .is_some_and(|body| triggers.iter().any(|t| trigger_matches(body, t)))
        }
        _ => false,
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `body` contains `trigger` as a whole word (or words), ignoring case: the text
/// matches case-insensitively (Unicode lower case), and where the trigger begins (ends) with a
/// letter, digit or `_`, the character before (after) the match must not be one — the `\b` of
/// regular expressions. So `help` fires on "Help!" and "need help now" but not on "helpful";
/// `#urgent` fires on "so #urgent". An empty (or blank) trigger never matches.
pub fn trigger_matches(body: &str, trigger: &str) -> bool {
    let trigger = trigger.trim().to_lowercase();
    if trigger.is_empty() {
        return false;
    }
    let body = body.to_lowercase();
    let first_word = trigger.chars().next().is_some_and(is_word);
    let last_word = trigger.chars().next_back().is_some_and(is_word);
    let mut from = 0;
    while let Some(pos) = body[from..].find(&trigger) {
        let start = from + pos;
        let end = start + trigger.len();
        let before_ok = !first_word || !body[..start].chars().next_back().is_some_and(is_word);
        let after_ok = !last_word || !body[end..].chars().next().is_some_and(is_word);
        if before_ok && after_ok {
            return true;
        }
        // Next char boundary after `start`.
        from = start + body[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(event_type: &'static str, body: Option<&str>, webhooks: bool) -> PostEvent {
        PostEvent {
            event_type,
            channel_sid: None,
            webhooks,
            params: vec![("EventType".into(), event_type.into())],
            body_for_triggers: body.map(str::to_owned),
        }
    }

    fn settings(filters: Option<&[&str]>) -> ServiceSettings {
        ServiceSettings {
            post_webhook_url: Some("https://example.com/post".into()),
            pre_webhook_url: Some("https://example.com/pre".into()),
            webhook_filters: filters.map(|f| f.iter().map(|s| s.to_string()).collect()),
            post_webhook_retry_count: 2,
            pre_webhook_retry_count: 1,
            ..ServiceSettings::default()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn service_post_url_needs_the_flag_the_url_and_the_filter() {
        let s = settings(Some(&["onMessageSent", "onChannelAdded"]));
        let t = service_post_target(&s, &post("onMessageSent", None, true)).unwrap();
        assert_eq!(
            t,
            Target {
                url: "https://example.com/post".into(),
                method: Method::Post,
                retries: 2
            }
        );
        assert_eq!(
            service_post_target(&s, &post("onMessageSent", None, false)),
            None
        );
        assert_eq!(
            service_post_target(&s, &post("onMessageUpdated", None, true)),
            None
        );
        let mut no_url = s.clone();
        no_url.post_webhook_url = None;
        assert_eq!(
            service_post_target(&no_url, &post("onMessageSent", None, true)),
            None
        );
        no_url.post_webhook_url = Some("  ".into());
        assert_eq!(
            service_post_target(&no_url, &post("onMessageSent", None, true)),
            None
        );
    }

    #[test]
    fn empty_or_missing_filters_send_nothing() {
        for s in [settings(None), settings(Some(&[]))] {
            assert_eq!(
                service_post_target(&s, &post("onMessageSent", None, true)),
                None
            );
            assert_eq!(service_pre_target(&s, "onMessageSend"), None);
        }
    }

    #[test]
    fn filters_are_case_sensitive() {
        let s = settings(Some(&["onmessagesent"]));
        assert_eq!(
            service_post_target(&s, &post("onMessageSent", None, true)),
            None
        );
    }

    #[test]
    fn method_and_retries_come_from_the_service() {
        let mut s = settings(Some(&["onMessageSend"]));
        s.webhook_method = Some("GET".into());
        s.pre_webhook_retry_count = 9;
        let t = service_pre_target(&s, "onMessageSend").unwrap();
        assert_eq!(t.url, "https://example.com/pre");
        assert_eq!(t.method, Method::Get);
        assert_eq!(t.retries, MAX_RETRY_COUNT, "clamped");
        s.pre_webhook_retry_count = -1;
        assert_eq!(service_pre_target(&s, "onMessageSend").unwrap().retries, 0);
        assert_eq!(Method::parse(None), Method::Post);
        assert_eq!(Method::parse(Some("get")), Method::Get);
        assert_eq!(Method::parse(Some("POST")), Method::Post);
    }

    #[test]
    fn channel_webhook_type_webhook_follows_its_filters() {
        let f = strings(&["onMessageSent", "onChannelDestroyed"]);
        assert!(channel_hook_wants(
            "webhook",
            &f,
            &[],
            &post("onMessageSent", Some("x"), true)
        ));
        assert!(channel_hook_wants(
            "webhook",
            &f,
            &[],
            &post("onChannelDestroyed", None, true)
        ));
        assert!(!channel_hook_wants(
            "webhook",
            &f,
            &[],
            &post("onMessageUpdated", None, true)
        ));
        assert!(!channel_hook_wants(
            "webhook",
            &f,
            &[],
            &post("onMessageSent", Some("x"), false)
        ));
        assert!(!channel_hook_wants(
            "webhook",
            &[],
            &[],
            &post("onMessageSent", Some("x"), true)
        ));
    }

    #[test]
    fn channel_webhook_type_trigger_fires_on_new_messages_with_a_trigger_word() {
        let t = strings(&["help", "urgent"]);
        let f = strings(&["onMessageUpdated"]);
        assert!(channel_hook_wants(
            "trigger",
            &f,
            &t,
            &post("onMessageSent", Some("I need HELP!"), true)
        ));
        assert!(!channel_hook_wants(
            "trigger",
            &f,
            &t,
            &post("onMessageSent", Some("helpful"), true)
        ));
        assert!(!channel_hook_wants(
            "trigger",
            &f,
            &t,
            &post("onMessageSent", None, true)
        ));
        assert!(
            !channel_hook_wants(
                "trigger",
                &f,
                &t,
                &post("onMessageUpdated", Some("help"), true)
            ),
            "only new messages, whatever the filters say"
        );
        assert!(!channel_hook_wants(
            "trigger",
            &f,
            &t,
            &post("onMessageSent", Some("help"), false)
        ));
        assert!(!channel_hook_wants(
            "trigger",
            &f,
            &[],
            &post("onMessageSent", Some("help"), true)
        ));
    }

    #[test]
    fn studio_and_unknown_types_never_receive() {
        let f = strings(&["onMessageSent"]);
        let t = strings(&["help"]);
        let p = post("onMessageSent", Some("help"), true);
        assert!(!channel_hook_wants("studio", &f, &t, &p));
        assert!(!channel_hook_wants("other", &f, &t, &p));
    }

    #[test]
    fn trigger_matching_is_whole_word_and_case_insensitive() {
        assert!(trigger_matches("help", "help"));
        assert!(trigger_matches("Help me", "help"));
        assert!(trigger_matches("please HELP.", "Help"));
        assert!(trigger_matches("x, help, y", "help"));
        assert!(!trigger_matches("helpful", "help"));
        assert!(!trigger_matches("unhelp", "help"));
        assert!(!trigger_matches("help_desk", "help"));
        assert!(
            trigger_matches("helpful then help", "help"),
            "a later whole-word match counts"
        );
        assert!(trigger_matches("call the help desk", "help desk"));
        assert!(!trigger_matches("call the helpdesk", "help desk"));
        assert!(trigger_matches("so #urgent", "#urgent"));
        assert!(
            trigger_matches("so#urgent", "#urgent"),
            "no word edge before '#'"
        );
        assert!(!trigger_matches("#urgently", "#urgent"));
        assert!(trigger_matches("ÉTÉ chaud", "été"));
        assert!(!trigger_matches("étéx", "été"));
        assert!(!trigger_matches("anything", ""));
        assert!(!trigger_matches("anything", "  "));
        assert!(trigger_matches("a 1 b", " 1 "), "triggers are trimmed");
    }
}
