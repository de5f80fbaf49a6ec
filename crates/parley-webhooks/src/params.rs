//! Parameter building blocks shared by pre- and post-events (webhooks.md §3): value formats and
//! the parameters every request carries.

use parley_core::event::Source;
use parley_core::{AccountSid, ServiceSid, Timestamp};

/// The 12 post-event names (webhooks.md §2), the only names a service filter or channel webhook
/// can usefully list for post-events.
pub const POST_EVENTS: [&str; 12] = [
    "onMessageSent",
    "onMessageUpdated",
    "onMessageRemoved",
    "onMediaMessageSent",
    "onChannelAdded",
    "onChannelUpdated",
    "onChannelDestroyed",
    "onMemberAdded",
    "onMemberUpdated",
    "onMemberRemoved",
    "onUserAdded",
    "onUserUpdated",
];

/// The 11 pre-event names (webhooks.md §2).
pub const PRE_EVENTS: [&str; 11] = [
    "onMessageSend",
    "onMessageUpdate",
    "onMessageRemove",
    "onMediaMessageSend",
    "onChannelAdd",
    "onChannelUpdate",
    "onChannelDestroy",
    "onMemberAdd",
    "onMemberUpdate",
    "onMemberRemove",
    "onUserUpdate",
];

/// The static name of a known event (pre or post), `None` for anything else. Used to keep metric
/// labels to a fixed set.
pub fn known_event(name: &str) -> Option<&'static str> {
    POST_EVENTS
        .iter()
        .chain(PRE_EVENTS.iter())
        .copied()
        .find(|n| *n == name)
}

/// A webhook date: ISO 8601, UTC, with milliseconds (`2021-04-17T12:52:31.295Z`), as captured
/// from Twilio (webhooks.md §3; the REST API has no milliseconds).
pub fn webhook_date(t: Timestamp) -> String {
    let millis = t.unix_micros().rem_euclid(1_000_000) / 1000;
    let secs = match t.rfc3339_seconds_bytes() {
        Some(b) => b.iter().map(|&c| char::from(c)).collect::<String>(),
        None => t.to_rfc3339_seconds(),
    };
    let stem = secs.strip_suffix('Z').unwrap_or(&secs);
    format!("{stem}.{millis:03}Z")
}

/// Attributes as sent: the stored JSON text, `{}` when there is none.
pub fn attributes(a: Option<&str>) -> String {
    match a {
        Some(a) if !a.is_empty() => a.to_owned(),
        _ => "{}".to_owned(),
    }
}

/// An ordered parameter list under construction.
#[derive(Debug, Default)]
pub(crate) struct ParamList(pub(crate) Vec<(String, String)>);

impl ParamList {
    /// Add `name=value`.
    pub(crate) fn put(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.0.push((name.to_owned(), value.into()));
        self
    }
    /// Add `name=value` when set; optional parameters are omitted, never sent empty.
    pub(crate) fn opt<S: Into<String>>(&mut self, name: &str, value: Option<S>) -> &mut Self {
        if let Some(v) = value {
            self.put(name, v);
        }
        self
    }
    /// Add a date in the webhook format.
    pub(crate) fn date(&mut self, name: &str, t: Timestamp) -> &mut Self {
        self.put(name, webhook_date(t))
    }
    /// The parameters every request carries (webhooks.md §3(a)), after the per-event ones:
    /// `AccountSid`, `InstanceSid` (the service — never `ServiceSid`), `Source`, and
    /// `ClientIdentity` for SDK changes only. `RetryCount` is added per attempt by the sender.
    pub(crate) fn common(
        &mut self,
        account: &AccountSid,
        service: &ServiceSid,
        source: Source,
        client_identity: Option<&str>,
    ) -> &mut Self {
        self.put("AccountSid", account.as_str())
            .put("InstanceSid", service.as_str())
            .put("Source", source.as_str());
        if source == Source::Sdk {
            self.opt("ClientIdentity", client_identity);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_have_milliseconds_and_a_z() {
        // 2021-04-17T12:52:31.295Z = 1618663951 s + 295 ms (+ 417 µs that are cut, not rounded).
        let t = Timestamp::from_unix_micros(1_618_663_951_295_417);
        assert_eq!(webhook_date(t), "2021-04-17T12:52:31.295Z");
        assert_eq!(
            webhook_date(Timestamp::from_unix_secs(0)),
            "1970-01-01T00:00:00.000Z"
        );
        // Before the epoch the fraction still counts forward within the second.
        assert_eq!(
            webhook_date(Timestamp::from_unix_micros(-1_000)),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn missing_or_empty_attributes_are_an_empty_object() {
        assert_eq!(attributes(None), "{}");
        assert_eq!(attributes(Some("")), "{}");
        assert_eq!(attributes(Some(r#"{"a":1}"#)), r#"{"a":1}"#);
    }

    #[test]
    fn known_events_are_the_23_names() {
        assert_eq!(known_event("onMessageSent"), Some("onMessageSent"));
        assert_eq!(known_event("onUserUpdate"), Some("onUserUpdate"));
        assert_eq!(known_event("onUserAdd"), None);
        assert_eq!(known_event("onmessagesent"), None);
        let mut all: Vec<_> = POST_EVENTS.iter().chain(PRE_EVENTS.iter()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 23);
    }
}
