//! Pre-events (webhooks.md §2–§4): called synchronously before a client's change is applied;
//! the answer lets it proceed (possibly modified) or rejects it.
//!
//! Parameters describe the *proposed* change: a resource being created has no SID yet.

use parley_core::channel::{Channel, ChannelType, Member, Message, MAX_BODY_BYTES};
use parley_core::event::{Origin, Source};
use parley_core::sid::is_sid;
use parley_core::user::User;
use parley_core::{AccountSid, ChannelSid, RoleSid, ServiceSid};
use serde_json::{Map, Value};

use crate::client::{Call, Outcome, WebhookClient};
use crate::params::{attributes, ParamList};
use crate::post::{channel_params, message_params, user_params, REST_ACTOR};
use crate::route::Target;

/// Chat error: the pre-event webhook did not answer 200, so the change is not made.
pub const CODE_REJECTED: u32 = 50056;
/// Longest attributes JSON text (the REST API's limit).
const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;
/// Longest author / friendly name, in characters (the REST API's limits).
const MAX_NAME_CHARS: usize = 256;

/// Where a pre-event happens and who acts.
#[derive(Clone, Copy, Debug)]
pub struct PreContext<'a> {
    /// Owner account.
    pub account_sid: &'a AccountSid,
    /// The service (sent as `InstanceSid`).
    pub service_sid: &'a ServiceSid,
    /// Who acts (a client: `Source=SDK`, `ClientIdentity`).
    pub origin: &'a Origin,
}

/// A proposed change, as a pre-event describes it. Updates pass the resource as it would be
/// after the change; removals the resource as it is.
#[derive(Clone, Copy, Debug)]
pub enum PreEvent<'a> {
    /// `onMessageSend`: a message about to be posted (no SID, no index yet).
    MessageSend {
        /// The channel.
        channel_sid: &'a ChannelSid,
        /// The body.
        body: Option<&'a str>,
        /// JSON text.
        attributes: Option<&'a str>,
        /// The author.
        from: &'a str,
    },
    /// `onMessageUpdate`: the message as it would be.
    MessageUpdate(&'a Message),
    /// `onMessageRemove`: the message about to be removed.
    MessageRemove(&'a Message),
    /// `onChannelAdd`: a channel about to be created (no SID yet).
    ChannelAdd {
        /// Display name.
        friendly_name: Option<&'a str>,
        /// Unique name.
        unique_name: Option<&'a str>,
        /// JSON text.
        attributes: Option<&'a str>,
        /// public / private.
        channel_type: ChannelType,
        /// Creator identity.
        created_by: Option<&'a str>,
    },
    /// `onChannelUpdate`: the channel as it would be.
    ChannelUpdate(&'a Channel),
    /// `onChannelDestroy`: the channel about to be destroyed.
    ChannelDestroy(&'a Channel),
    /// `onMemberAdd`: a user about to join or be added (no member SID yet).
    MemberAdd {
        /// The channel.
        channel_sid: &'a ChannelSid,
        /// The user's identity.
        identity: &'a str,
        /// The role it would get.
        role_sid: Option<&'a RoleSid>,
    },
    /// `onMemberUpdate`: the member as it would be.
    MemberUpdate(&'a Member),
    /// `onMemberRemove`: the member about to leave or be removed.
    MemberRemove(&'a Member),
    /// `onUserUpdate`: the user as it would be.
    UserUpdate(&'a User),
}

/// A pre-event's name and parameters (without `RetryCount`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreParams {
    /// e.g. `onMessageSend`.
    pub event_type: &'static str,
    /// Form parameters.
    pub params: Vec<(String, String)>,
}

impl PreParams {
    /// The value of a parameter (first occurrence).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn acting(origin: &Origin) -> String {
    origin.identity.as_deref().unwrap_or(REST_ACTOR).to_owned()
}

fn reason(
    origin: &Origin,
    identity: &str,
    by_other: &'static str,
    by_self: &'static str,
) -> &'static str {
    match (origin.source, origin.identity.as_deref()) {
        (Source::Sdk, Some(actor)) if actor == identity => by_self,
        _ => by_other,
    }
}

/// The pre-event for a proposed change (webhooks.md §3(b)).
pub fn pre_event_params(ctx: &PreContext<'_>, event: &PreEvent<'_>) -> PreParams {
    let mut p = ParamList::default();
    let event_type = match *event {
        PreEvent::MessageSend {
            channel_sid,
            body,
            attributes: attrs,
            from,
        } => {
            p.put("EventType", "onMessageSend")
                .put("ChannelSid", channel_sid.as_str())
                .opt("Body", body)
                .put("Attributes", attributes(attrs))
                .put("From", from);
            "onMessageSend"
        }
        PreEvent::MessageUpdate(m) => {
            p.put("EventType", "onMessageUpdate");
            message_params(&mut p, m, false);
            p.date("DateCreated", m.date_created)
                .put("ModifiedBy", acting(ctx.origin));
            "onMessageUpdate"
        }
        PreEvent::MessageRemove(m) => {
            p.put("EventType", "onMessageRemove");
            message_params(&mut p, m, false);
            p.date("DateCreated", m.date_created)
                .put("RemovedBy", acting(ctx.origin));
            "onMessageRemove"
        }
        PreEvent::ChannelAdd {
            friendly_name,
            unique_name,
            attributes: attrs,
            channel_type,
            created_by,
        } => {
            p.put("EventType", "onChannelAdd")
                .put("Attributes", attributes(attrs))
                .opt("CreatedBy", created_by)
                .opt("FriendlyName", friendly_name)
                .opt("UniqueName", unique_name)
                .put("ChannelType", channel_type.as_str());
            "onChannelAdd"
        }
        PreEvent::ChannelUpdate(c) => {
            p.put("EventType", "onChannelUpdate");
            channel_params(&mut p, c);
            "onChannelUpdate"
        }
        PreEvent::ChannelDestroy(c) => {
            p.put("EventType", "onChannelDestroy");
            channel_params(&mut p, c);
            "onChannelDestroy"
        }
        PreEvent::MemberAdd {
            channel_sid,
            identity,
            role_sid,
        } => {
            p.put("EventType", "onMemberAdd")
                .put("ChannelSid", channel_sid.as_str())
                .put("Identity", identity)
                .opt("RoleSid", role_sid.map(|r| r.as_str()))
                .put("Reason", reason(ctx.origin, identity, "ADDED", "JOINED"));
            "onMemberAdd"
        }
        PreEvent::MemberUpdate(m) => {
            p.put("EventType", "onMemberUpdate")
                .put("ChannelSid", m.channel_sid.as_str())
                .put("MemberSid", m.sid.as_str())
                .put("Identity", m.identity.as_str())
                .opt("RoleSid", m.role_sid.as_ref().map(|r| r.as_str()))
                .put("Attributes", attributes(m.attributes.as_deref()))
                .opt(
                    "LastConsumedMessageIndex",
                    m.last_consumed_message_index.map(|i| i.to_string()),
                )
                .date("DateCreated", m.date_created);
            "onMemberUpdate"
        }
        PreEvent::MemberRemove(m) => {
            p.put("EventType", "onMemberRemove")
                .put("ChannelSid", m.channel_sid.as_str())
                .put("Identity", m.identity.as_str())
                .put("MemberSid", m.sid.as_str())
                .opt("RoleSid", m.role_sid.as_ref().map(|r| r.as_str()))
                .put("Reason", reason(ctx.origin, &m.identity, "REMOVED", "LEFT"));
            "onMemberRemove"
        }
        PreEvent::UserUpdate(u) => {
            p.put("EventType", "onUserUpdate");
            user_params(&mut p, u);
            p.date("DateUpdated", u.date_updated);
            "onUserUpdate"
        }
    };
    p.common(
        ctx.account_sid,
        ctx.service_sid,
        ctx.origin.source,
        ctx.origin.identity.as_deref(),
    );
    PreParams {
        event_type,
        params: p.0,
    }
}

/// Changes a pre-event answer asks for. Only the fields the event allows are ever set (see
/// [`modifiable_fields`]); `None` = leave as proposed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreChanges {
    /// Messages: new body.
    pub body: Option<String>,
    /// Every resource: new attributes (valid JSON text, at most 16 KiB).
    pub attributes: Option<String>,
    /// Messages: new author (`author` or `from` in the answer).
    pub from: Option<String>,
    /// Channels, users: new friendly name; `Some(None)` clears it (the answer had `""`).
    pub friendly_name: Option<Option<String>>,
    /// Channels: new unique name; `Some(None)` clears it (the answer had `""`). Uniqueness is
    /// checked when the change is stored.
    pub unique_name: Option<Option<String>>,
}

impl PreChanges {
    /// Whether the answer changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Why a change is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreRejection {
    /// Chat error code: 50056 for a non-200 answer; the REST API's validation code of the field
    /// for an invalid modification (e.g. 50504 body too long, 50304 attributes not JSON).
    pub code: u32,
    /// Human-readable reason.
    pub message: String,
}

/// What the pre-event webhook decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreOutcome {
    /// Apply the change, with these modifications (empty = unmodified).
    Proceed(PreChanges),
    /// Do not apply the change; the client gets this error.
    Reject(PreRejection),
}

/// The answer keys a pre-event may modify (webhooks.md §4; Chat's list was not found, these
/// follow Twilio Conversations): messages `body`, `attributes`, `author`/`from`; channels
/// `friendly_name`, `unique_name`, `attributes`; members `attributes`; users `friendly_name`,
/// `attributes`. Removals and destroys cannot be modified.
pub fn modifiable_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "onMessageSend" | "onMessageUpdate" => &["body", "attributes", "author", "from"],
        "onChannelAdd" | "onChannelUpdate" => &["friendly_name", "unique_name", "attributes"],
        "onMemberAdd" | "onMemberUpdate" => &["attributes"],
        "onUserUpdate" => &["friendly_name", "attributes"],
        _ => &[],
    }
}

/// Call the pre-event webhook at `target` (with up to `target.retries` immediate retries on a
/// timeout or a 429/503/504 answer) and decide:
///
/// * 200 with an empty body, `{}`, or a body that is not JSON (e.g. `OK`) → proceed unmodified;
/// * 200 with a JSON object → proceed with its modifiable fields ([`modifiable_fields`];
///   unknown keys and `null` values are ignored); an invalid value rejects with the field's
///   REST validation code; a body starting with `{` that is not valid JSON, or longer than the
///   client's answer cap, rejects with 50056;
/// * any other status (other 2xx, 3xx, 4xx, 5xx) → reject with 50056;
/// * no answer (timeout after the retries, connection failure, a destination refused by the
///   policy, an unusable URL) → proceed unmodified, as Twilio Conversations does after 5 s.
pub async fn call_pre_event(
    client: &WebhookClient,
    target: &Target,
    pre: &PreParams,
    auth_token: &str,
) -> PreOutcome {
    let mut call = Call {
        url: target.url.clone(),
        method: target.method,
        params: pre.params.clone(),
        auth_token: auth_token.to_owned(),
        event_type: pre.event_type.to_owned(),
        retry_count: 0,
    };
    loop {
        let outcome = client.send(&call).await;
        if outcome.is_retryable() && call.retry_count < target.retries {
            call.retry_count += 1;
            continue;
        }
        return decide(pre.event_type, outcome, client.config().max_response_bytes);
    }
}

fn rejected(code: u32, message: impl Into<String>) -> PreOutcome {
    PreOutcome::Reject(PreRejection {
        code,
        message: message.into(),
    })
}

fn decide(event_type: &str, outcome: Outcome, cap: usize) -> PreOutcome {
    match outcome {
        Outcome::Delivered {
            status: 200,
            body,
            truncated,
        } => {
            if truncated {
                return rejected(
                    CODE_REJECTED,
                    format!("Pre-event webhook answer is larger than {cap} bytes"),
                );
            }
            parse_answer(event_type, &body)
        }
        Outcome::Delivered { status, .. } | Outcome::ErrorAnswer { status } => rejected(
            CODE_REJECTED,
            format!("Webhook disabled processing of command: it answered {status}, not 200"),
        ),
        Outcome::Timeout | Outcome::Connection(_) | Outcome::Refused(_) | Outcome::BadUrl(_) => {
            tracing::info!(
                event = event_type,
                outcome = outcome.label(),
                "pre-event webhook did not answer; the change proceeds unmodified"
            );
            PreOutcome::Proceed(PreChanges::default())
        }
    }
}

/// Interpret a 200 answer's body for `event_type`.
pub fn parse_answer(event_type: &str, body: &[u8]) -> PreOutcome {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return PreOutcome::Proceed(PreChanges::default());
    }
    let map = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return PreOutcome::Proceed(PreChanges::default()),
        Err(_) if text.starts_with('{') => {
            return rejected(
                CODE_REJECTED,
                "Pre-event webhook answered a JSON object that does not parse",
            )
        }
        Err(_) => return PreOutcome::Proceed(PreChanges::default()),
    };
    match changes(event_type, &map) {
        Ok(c) => PreOutcome::Proceed(c),
        Err(r) => PreOutcome::Reject(r),
    }
}

fn invalid(code: u32, message: String) -> PreRejection {
    PreRejection { code, message }
}

fn string_field(map: &Map<String, Value>, key: &str) -> Result<Option<String>, PreRejection> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(
            CODE_REJECTED,
            format!("Pre-event webhook answer: '{key}' must be a string"),
        )),
    }
}

fn name_field(
    map: &Map<String, Value>,
    key: &str,
    code: u32,
) -> Result<Option<Option<String>>, PreRejection> {
    Ok(match string_field(map, key)? {
        None => None,
        Some(s) if s.is_empty() => Some(None),
        Some(s) if s.chars().count() > MAX_NAME_CHARS => {
            return Err(invalid(
                code,
                format!("Pre-event webhook answer: '{key}' is too long ({MAX_NAME_CHARS} characters at most)"),
            ))
        }
        Some(s) => Some(Some(s)),
    })
}

fn changes(event_type: &str, map: &Map<String, Value>) -> Result<PreChanges, PreRejection> {
    let allowed = modifiable_fields(event_type);
    let mut c = PreChanges::default();
    if allowed.contains(&"body") {
        if let Some(b) = string_field(map, "body")? {
            if b.len() > MAX_BODY_BYTES {
                return Err(invalid(
                    50504,
                    format!("Pre-event webhook answer: 'body' is too long ({MAX_BODY_BYTES} bytes at most)"),
                ));
            }
            c.body = Some(b);
        }
    }
    if allowed.contains(&"attributes") {
        c.attributes = match map.get("attributes") {
            None | Some(Value::Null) => None,
            // As Conversations documents: a string holding JSON.
            Some(Value::String(s)) => {
                if serde_json::from_str::<Value>(s).is_err() {
                    return Err(invalid(
                        50304,
                        "Pre-event webhook answer: 'attributes' must be valid JSON".into(),
                    ));
                }
                Some(s.clone())
            }
            // Also accepted: the JSON itself.
            Some(v @ (Value::Object(_) | Value::Array(_))) => Some(v.to_string()),
            Some(_) => {
                return Err(invalid(
                    50304,
                    "Pre-event webhook answer: 'attributes' must be a JSON string or object".into(),
                ))
            }
        };
        if c.attributes
            .as_ref()
            .is_some_and(|a| a.len() > MAX_ATTRIBUTES_BYTES)
        {
            return Err(invalid(
                50303,
                "Pre-event webhook answer: 'attributes' is too long (16 KiB at most)".into(),
            ));
        }
    }
    if allowed.contains(&"from") {
        let author = string_field(map, "author")?;
        let from = string_field(map, "from")?;
        if let (Some(a), Some(f)) = (&author, &from) {
            if a != f {
                return Err(invalid(
                    50310,
                    "Pre-event webhook answer: 'author' and 'from' differ".into(),
                ));
            }
        }
        if let Some(a) = from.or(author) {
            if a.is_empty() || a.chars().count() > MAX_NAME_CHARS {
                return Err(invalid(
                    50310,
                    format!("Pre-event webhook answer: the author must be 1 to {MAX_NAME_CHARS} characters"),
                ));
            }
            c.from = Some(a);
        }
    }
    if allowed.contains(&"friendly_name") {
        c.friendly_name = name_field(map, "friendly_name", 50003)?;
    }
    if allowed.contains(&"unique_name") {
        c.unique_name = name_field(map, "unique_name", 50004)?;
        if let Some(Some(u)) = &c.unique_name {
            if is_sid(ChannelSid::PREFIX, u) {
                return Err(invalid(
                    50306,
                    "Pre-event webhook answer: 'unique_name' must not look like a channel SID"
                        .into(),
                ));
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::tests::{channel, member, message, user, AC, CH, IS};

    fn ctx_parts() -> (AccountSid, ServiceSid) {
        (
            AccountSid::parse(AC).unwrap(),
            ServiceSid::parse(IS).unwrap(),
        )
    }

    fn keys(p: &PreParams) -> Vec<&str> {
        p.params.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn message_send_has_no_message_sid_and_names_the_client() {
        let (ac, is) = ctx_parts();
        let origin = Origin::client("alice");
        let ctx = PreContext {
            account_sid: &ac,
            service_sid: &is,
            origin: &origin,
        };
        let ch = ChannelSid::parse(CH).unwrap();
        let p = pre_event_params(
            &ctx,
            &PreEvent::MessageSend {
                channel_sid: &ch,
                body: Some("hi"),
                attributes: None,
                from: "alice",
            },
        );
        assert_eq!(p.event_type, "onMessageSend");
        assert_eq!(
            p.params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
            vec![
                ("EventType", "onMessageSend"),
                ("ChannelSid", CH),
                ("Body", "hi"),
                ("Attributes", "{}"),
                ("From", "alice"),
                ("AccountSid", AC),
                ("InstanceSid", IS),
                ("Source", "SDK"),
                ("ClientIdentity", "alice"),
            ]
        );
    }

    #[test]
    fn creations_carry_no_sid_of_the_new_resource() {
        let (ac, is) = ctx_parts();
        let origin = Origin::client("alice");
        let ctx = PreContext {
            account_sid: &ac,
            service_sid: &is,
            origin: &origin,
        };
        let p = pre_event_params(
            &ctx,
            &PreEvent::ChannelAdd {
                friendly_name: Some("General"),
                unique_name: None,
                attributes: Some(r#"{"a":1}"#),
                channel_type: ChannelType::Public,
                created_by: Some("alice"),
            },
        );
        assert_eq!(p.event_type, "onChannelAdd");
        assert_eq!(
            keys(&p),
            vec![
                "EventType",
                "Attributes",
                "CreatedBy",
                "FriendlyName",
                "ChannelType",
                "AccountSid",
                "InstanceSid",
                "Source",
                "ClientIdentity"
            ]
        );
        let ch = ChannelSid::parse(CH).unwrap();
        let p = pre_event_params(
            &ctx,
            &PreEvent::MemberAdd {
                channel_sid: &ch,
                identity: "alice",
                role_sid: None,
            },
        );
        assert_eq!(p.event_type, "onMemberAdd");
        assert_eq!(p.param("MemberSid"), None);
        assert_eq!(p.param("Reason"), Some("JOINED"));
        let p = pre_event_params(
            &ctx,
            &PreEvent::MemberAdd {
                channel_sid: &ch,
                identity: "bob",
                role_sid: None,
            },
        );
        assert_eq!(p.param("Reason"), Some("ADDED"));
    }

    #[test]
    fn updates_and_removals_describe_the_resource() {
        let (ac, is) = ctx_parts();
        let origin = Origin::client("alice");
        let ctx = PreContext {
            account_sid: &ac,
            service_sid: &is,
            origin: &origin,
        };
        let m = message();
        let p = pre_event_params(&ctx, &PreEvent::MessageUpdate(&m));
        assert_eq!(p.event_type, "onMessageUpdate");
        assert_eq!(p.param("MessageSid"), Some(m.sid.as_str()));
        assert_eq!(p.param("ModifiedBy"), Some("alice"));
        assert_eq!(p.param("Index"), None);
        assert_eq!(p.param("DateCreated"), Some("2021-04-17T12:52:31.295Z"));
        let p = pre_event_params(&ctx, &PreEvent::MessageRemove(&m));
        assert_eq!(p.event_type, "onMessageRemove");
        assert_eq!(p.param("RemovedBy"), Some("alice"));
        let c = channel();
        for (ev, name) in [
            (PreEvent::ChannelUpdate(&c), "onChannelUpdate"),
            (PreEvent::ChannelDestroy(&c), "onChannelDestroy"),
        ] {
            let p = pre_event_params(&ctx, &ev);
            assert_eq!(p.event_type, name);
            assert_eq!(p.param("ChannelSid"), Some(CH));
            assert_eq!(p.param("ChannelType"), Some("private"));
        }
        let mb = member("alice");
        let p = pre_event_params(&ctx, &PreEvent::MemberRemove(&mb));
        assert_eq!(p.event_type, "onMemberRemove");
        assert_eq!(p.param("Reason"), Some("LEFT"));
        assert_eq!(p.param("MemberSid"), Some(mb.sid.as_str()));
        let p = pre_event_params(&ctx, &PreEvent::MemberUpdate(&mb));
        assert_eq!(p.event_type, "onMemberUpdate");
        assert_eq!(p.param("Attributes"), Some(r#"{"member_type":"agent"}"#));
        let u = user();
        let p = pre_event_params(&ctx, &PreEvent::UserUpdate(&u));
        assert_eq!(p.event_type, "onUserUpdate");
        assert_eq!(p.param("UserSid"), Some(u.sid.as_str()));
        assert_eq!(p.param("DateUpdated"), Some("2021-04-17T12:53:00.001Z"));
        for name in [
            "onMessageUpdate",
            "onMessageRemove",
            "onChannelUpdate",
            "onChannelDestroy",
            "onMemberRemove",
            "onMemberUpdate",
            "onUserUpdate",
            "onMessageSend",
            "onChannelAdd",
            "onMemberAdd",
        ] {
            assert!(crate::params::PRE_EVENTS.contains(&name));
        }
    }

    #[test]
    fn a_rest_actor_is_system() {
        let (ac, is) = ctx_parts();
        let origin = Origin::rest();
        let ctx = PreContext {
            account_sid: &ac,
            service_sid: &is,
            origin: &origin,
        };
        let m = message();
        let p = pre_event_params(&ctx, &PreEvent::MessageRemove(&m));
        assert_eq!(p.param("RemovedBy"), Some("system"));
        assert_eq!(p.param("Source"), Some("API"));
        assert_eq!(p.param("ClientIdentity"), None);
    }

    fn proceed(c: PreChanges) -> PreOutcome {
        PreOutcome::Proceed(c)
    }

    #[test]
    fn empty_braces_and_non_json_answers_proceed_unmodified() {
        for body in ["", "  \n", "{}", "OK", "<Response/>", "[]", "null", "\"x\""] {
            assert_eq!(
                parse_answer("onMessageSend", body.as_bytes()),
                proceed(PreChanges::default()),
                "{body:?}"
            );
        }
    }

    #[test]
    fn message_answers_modify_body_attributes_and_author() {
        let got = parse_answer(
            "onMessageSend",
            br#"{"body":"modified message","attributes":"{\"x\":1}","author":"bot","friendly_name":"ignored","zzz":1}"#,
        );
        assert_eq!(
            got,
            proceed(PreChanges {
                body: Some("modified message".into()),
                attributes: Some(r#"{"x":1}"#.into()),
                from: Some("bot".into()),
                ..PreChanges::default()
            })
        );
        let got = parse_answer(
            "onMessageUpdate",
            br#"{"from":"bot","attributes":{"y":[1]}}"#,
        );
        assert_eq!(
            got,
            proceed(PreChanges {
                attributes: Some(r#"{"y":[1]}"#.into()),
                from: Some("bot".into()),
                ..PreChanges::default()
            })
        );
        let got = parse_answer("onMessageSend", br#"{"body":null}"#);
        assert_eq!(got, proceed(PreChanges::default()), "null = unchanged");
    }

    #[test]
    fn channel_member_and_user_answers_modify_their_fields_only() {
        let got = parse_answer(
            "onChannelAdd",
            br#"{"friendly_name":"New","unique_name":"","body":"ignored","attributes":"{}"}"#,
        );
        assert_eq!(
            got,
            proceed(PreChanges {
                friendly_name: Some(Some("New".into())),
                unique_name: Some(None),
                attributes: Some("{}".into()),
                ..PreChanges::default()
            })
        );
        let got = parse_answer(
            "onMemberUpdate",
            br#"{"attributes":"[1]","friendly_name":"x"}"#,
        );
        assert_eq!(
            got,
            proceed(PreChanges {
                attributes: Some("[1]".into()),
                ..PreChanges::default()
            })
        );
        let got = parse_answer(
            "onUserUpdate",
            br#"{"friendly_name":"Al","unique_name":"x"}"#,
        );
        assert_eq!(
            got,
            proceed(PreChanges {
                friendly_name: Some(Some("Al".into())),
                ..PreChanges::default()
            })
        );
        let got = parse_answer("onMessageRemove", br#"{"body":"x"}"#);
        assert_eq!(
            got,
            proceed(PreChanges::default()),
            "removals are not modifiable"
        );
    }

    fn code(o: PreOutcome) -> u32 {
        match o {
            PreOutcome::Reject(r) => r.code,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn invalid_values_reject_with_the_field_code() {
        assert_eq!(code(parse_answer("onMessageSend", br#"{"body":5}"#)), 50056);
        let long = format!(r#"{{"body":"{}"}}"#, "a".repeat(MAX_BODY_BYTES + 1));
        assert_eq!(code(parse_answer("onMessageSend", long.as_bytes())), 50504);
        assert_eq!(
            code(parse_answer("onMessageSend", br#"{"attributes":"{nope"}"#)),
            50304
        );
        assert_eq!(
            code(parse_answer("onMessageSend", br#"{"attributes":3}"#)),
            50304
        );
        let big = format!(
            r#"{{"attributes":{{"k":"{}"}}}}"#,
            "a".repeat(MAX_ATTRIBUTES_BYTES)
        );
        assert_eq!(code(parse_answer("onUserUpdate", big.as_bytes())), 50303);
        assert_eq!(
            code(parse_answer("onMessageSend", br#"{"author":""}"#)),
            50310
        );
        assert_eq!(
            code(parse_answer(
                "onMessageSend",
                br#"{"author":"a","from":"b"}"#
            )),
            50310
        );
        let long_name = format!(r#"{{"friendly_name":"{}"}}"#, "é".repeat(257));
        assert_eq!(
            code(parse_answer("onChannelUpdate", long_name.as_bytes())),
            50003
        );
        let ok_name = format!(r#"{{"friendly_name":"{}"}}"#, "é".repeat(256));
        assert!(matches!(
            parse_answer("onChannelUpdate", ok_name.as_bytes()),
            PreOutcome::Proceed(_)
        ));
        assert_eq!(
            code(parse_answer(
                "onChannelAdd",
                format!(r#"{{"unique_name":"{CH}"}}"#).as_bytes()
            )),
            50306
        );
        assert_eq!(
            code(parse_answer("onChannelAdd", br#"{"friendly_name":"x""#)),
            50056
        );
    }

    #[test]
    fn statuses_other_than_200_reject_and_silence_proceeds() {
        let cap = 1024;
        for status in [201, 204] {
            let o = Outcome::Delivered {
                status,
                body: vec![],
                truncated: false,
            };
            assert_eq!(code(decide("onMessageSend", o, cap)), 50056, "{status}");
        }
        for status in [302, 400, 403, 500, 503] {
            assert_eq!(
                code(decide(
                    "onMessageSend",
                    Outcome::ErrorAnswer { status },
                    cap
                )),
                50056
            );
        }
        let o = Outcome::Delivered {
            status: 200,
            body: b"{\"body\":\"x".to_vec(),
            truncated: true,
        };
        assert_eq!(code(decide("onMessageSend", o, cap)), 50056);
        for o in [
            Outcome::Timeout,
            Outcome::Connection("refused".into()),
            Outcome::Refused("x".into()),
            Outcome::BadUrl("x".into()),
        ] {
            assert_eq!(
                decide("onMessageSend", o, cap),
                PreOutcome::Proceed(PreChanges::default())
            );
        }
    }
}
