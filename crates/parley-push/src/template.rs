//! Twilio Chat notification templates (push-payloads.md §2, §3, §8).
//!
//! A template is text with `${NAME}` variables. [`render`] substitutes them, falls back to the
//! per-type default text when the service configured no template, and cuts the result to
//! [`MAX_TEXT_CHARS`].
//!
//! # Variables
//!
//! | variable | value | status |
//! |---|---|---|
//! | `${USER}` | friendly name of the triggering user, else identity, else empty | DOC |
//! | `${USER_FRIENDLY_NAME}` | same as `${USER}` | GUESS (Conversations documents its twin as a synonym) |
//! | `${USER_IDENTITY}` | identity, else empty | GUESS |
//! | `${CHANNEL}` | unique name → friendly name → SID | GUESS (Conversations `${CONVERSATION}`; consistent with the real sample) |
//! | `${CHANNEL_FRIENDLY_NAME}` | friendly name → unique name → SID | GUESS |
//! | `${CHANNEL_UNIQUE_NAME}` | unique name → friendly name → SID | GUESS |
//! | `${CHANNEL_SID}` | SID | GUESS |
//! | `${MESSAGE}` | message body (empty for the other types) | GUESS (DOC for Conversations) |
//!
//! # Choices where the spec says GUESS
//!
//! * An empty string counts as "not set" for every fallback (a channel whose friendly name is
//!   `""` falls back to its SID, a user whose friendly name is `""` to the identity).
//! * No triggering user (a REST-initiated add): `${USER}` and friends become the empty string.
//! * Unknown variables (`${FOO}`), `${}` and an unclosed `${` stay literal.
//! * Names are case-sensitive: `${user}` is unknown and stays literal.
//! * Substitution is single-pass: a value that itself contains `${USER}` (a message body, say) is
//!   not expanded again.
//! * A template that is empty or only whitespace is treated as "no template": the default is used.
//! * Default texts for added/invited/removed are the GUESSed wordings of push-payloads.md §3; the
//!   new_message default `${CHANNEL};${USER}: ${MESSAGE}` is CONFIRMED from real output.
//!
//! # Length
//!
//! The finished text (after substitution) is cut to the first [`MAX_TEXT_CHARS`] Unicode scalar
//! values (`char`s), never inside a UTF-8 sequence, and **without an ellipsis** — the documented
//! Conversations behaviour ("the first 178 characters are then used"); Chat's own number was not
//! found (§8), so we use Conversations' 178.

use crate::notification::{non_empty, NotificationKind};

/// Maximum length of a notification text, in `char`s (push-payloads.md §8, Conversations' 178).
pub const MAX_TEXT_CHARS: usize = 178;

/// Default text of each kind when the service configured no template (push-payloads.md §3).
pub fn default_template(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::NewMessage => "${CHANNEL};${USER}: ${MESSAGE}",
        NotificationKind::AddedToChannel => "You have been added to channel ${CHANNEL} by ${USER}",
        NotificationKind::InvitedToChannel => {
            "${USER} has invited you to join the channel ${CHANNEL}"
        }
        NotificationKind::RemovedFromChannel => {
            "${USER} has removed you from the channel ${CHANNEL}"
        }
    }
}

/// The values the variables are taken from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateVars<'a> {
    /// `CH…`
    pub channel_sid: &'a str,
    /// Channel unique name.
    pub channel_unique_name: Option<&'a str>,
    /// Channel friendly name.
    pub channel_friendly_name: Option<&'a str>,
    /// Identity of the user who triggered the push (message author, or who added/invited/removed).
    pub user_identity: Option<&'a str>,
    /// That user's friendly name.
    pub user_friendly_name: Option<&'a str>,
    /// Message body (new_message only).
    pub message: Option<&'a str>,
}

impl TemplateVars<'_> {
    /// The value of variable `name`, or `None` when the name is unknown.
    pub fn value(&self, name: &str) -> Option<String> {
        let unique = non_empty(self.channel_unique_name);
        let friendly = non_empty(self.channel_friendly_name);
        let user = non_empty(self.user_friendly_name)
            .or(non_empty(self.user_identity))
            .unwrap_or("");
        let v = match name {
            "USER" | "USER_FRIENDLY_NAME" => user,
            "USER_IDENTITY" => self.user_identity.unwrap_or(""),
            "CHANNEL" | "CHANNEL_UNIQUE_NAME" => unique.or(friendly).unwrap_or(self.channel_sid),
            "CHANNEL_FRIENDLY_NAME" => friendly.or(unique).unwrap_or(self.channel_sid),
            "CHANNEL_SID" => self.channel_sid,
            "MESSAGE" => self.message.unwrap_or(""),
            _ => return None,
        };
        Some(v.to_owned())
    }
}

/// Substitute the variables of `template` (single pass; unknown ones stay literal). No length
/// limit is applied.
pub fn substitute(template: &str, vars: &TemplateVars<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match vars.value(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        // Unknown: keep `${` literally and rescan from just after it, so a
                        // known variable right inside (`${X${USER}}`) still expands.
                        out.push_str("${");
                        rest = after;
                        continue;
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Cut `text` to at most `max_chars` `char`s (no ellipsis).
pub fn truncate_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// The finished text of a push: `template` (or the kind's default when `None`/blank) with the
/// variables substituted, cut to [`MAX_TEXT_CHARS`].
pub fn render(kind: NotificationKind, template: Option<&str>, vars: &TemplateVars<'_>) -> String {
    let template = template
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| default_template(kind));
    let text = substitute(template, vars);
    truncate_chars(&text, MAX_TEXT_CHARS).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TemplateVars<'static> {
        TemplateVars {
            channel_sid: "CH296f4a24749d4347a2bf7b4a4754ecb4",
            channel_unique_name: Some("room_42"),
            channel_friendly_name: Some("Room Forty-Two"),
            user_identity: Some("author@example.com"),
            user_friendly_name: None,
            message: Some("Quiubo "),
        }
    }

    #[test]
    fn new_message_default_matches_the_real_payload() {
        let t = render(NotificationKind::NewMessage, None, &vars());
        assert_eq!(t, "room_42;author@example.com: Quiubo ");
    }

    #[test]
    fn defaults_for_every_kind() {
        let v = TemplateVars {
            user_friendly_name: Some("Alice"),
            ..vars()
        };
        assert_eq!(
            render(NotificationKind::AddedToChannel, None, &v),
            "You have been added to channel room_42 by Alice"
        );
        assert_eq!(
            render(NotificationKind::InvitedToChannel, None, &v),
            "Alice has invited you to join the channel room_42"
        );
        assert_eq!(
            render(NotificationKind::RemovedFromChannel, None, &v),
            "Alice has removed you from the channel room_42"
        );
    }

    #[test]
    fn blank_template_uses_default() {
        for t in ["", "   ", "\n"] {
            assert_eq!(
                render(NotificationKind::NewMessage, Some(t), &vars()),
                "room_42;author@example.com: Quiubo "
            );
        }
    }

    #[test]
    fn every_variable() {
        let v = TemplateVars {
            user_friendly_name: Some("Alice"),
            ..vars()
        };
        let t = "${USER}|${USER_FRIENDLY_NAME}|${USER_IDENTITY}|${CHANNEL}|${CHANNEL_FRIENDLY_NAME}|${CHANNEL_UNIQUE_NAME}|${CHANNEL_SID}|${MESSAGE}";
        assert_eq!(
            substitute(t, &v),
            "Alice|Alice|author@example.com|room_42|Room Forty-Two|room_42|CH296f4a24749d4347a2bf7b4a4754ecb4|Quiubo "
        );
    }

    #[test]
    fn user_falls_back_to_identity_then_empty() {
        let mut v = vars();
        v.user_friendly_name = Some("");
        assert_eq!(substitute("${USER}", &v), "author@example.com");
        assert_eq!(
            substitute("${USER_FRIENDLY_NAME}", &v),
            "author@example.com"
        );
        v.user_identity = None;
        v.user_friendly_name = None;
        assert_eq!(substitute("[${USER}][${USER_IDENTITY}]", &v), "[][]");
        assert_eq!(
            render(NotificationKind::AddedToChannel, None, &v),
            "You have been added to channel room_42 by "
        );
    }

    #[test]
    fn channel_fallbacks() {
        let mut v = vars();
        v.channel_unique_name = None;
        assert_eq!(substitute("${CHANNEL}", &v), "Room Forty-Two");
        assert_eq!(substitute("${CHANNEL_UNIQUE_NAME}", &v), "Room Forty-Two");
        v.channel_friendly_name = Some("");
        assert_eq!(
            substitute("${CHANNEL}/${CHANNEL_FRIENDLY_NAME}", &v),
            "CH296f4a24749d4347a2bf7b4a4754ecb4/CH296f4a24749d4347a2bf7b4a4754ecb4"
        );
        let mut v = vars();
        v.channel_friendly_name = None;
        assert_eq!(substitute("${CHANNEL_FRIENDLY_NAME}", &v), "room_42");
    }

    #[test]
    fn message_is_empty_when_absent() {
        let mut v = vars();
        v.message = None;
        assert_eq!(substitute("<${MESSAGE}>", &v), "<>");
    }

    #[test]
    fn repeated_variables_and_plain_text() {
        assert_eq!(
            substitute("${USER} ${USER}! no vars $ {USER} $USER", &vars()),
            "author@example.com author@example.com! no vars $ {USER} $USER"
        );
    }

    #[test]
    fn unknown_and_malformed_stay_literal() {
        let v = vars();
        assert_eq!(substitute("${FOO}", &v), "${FOO}");
        assert_eq!(substitute("${user}", &v), "${user}");
        assert_eq!(substitute("${}", &v), "${}");
        assert_eq!(substitute("hi ${USER", &v), "hi ${USER");
        assert_eq!(substitute("${", &v), "${");
        assert_eq!(substitute("$", &v), "$");
        assert_eq!(substitute("${X${USER}}", &v), "${Xauthor@example.com}");
        assert_eq!(substitute("${CONVERSATION}", &v), "${CONVERSATION}");
    }

    #[test]
    fn values_are_not_expanded_again() {
        let mut v = vars();
        v.message = Some("${USER} ${MESSAGE}");
        assert_eq!(substitute("${MESSAGE}", &v), "${USER} ${MESSAGE}");
    }

    #[test]
    fn unicode_in_templates_and_values() {
        let mut v = vars();
        v.message = Some("¡hola! 👋🏽");
        assert_eq!(substitute("✉ ${MESSAGE} ✉", &v), "✉ ¡hola! 👋🏽 ✉");
    }

    #[test]
    fn truncates_to_the_limit_in_chars_without_ellipsis() {
        let mut v = vars();
        let long = "é".repeat(500);
        v.message = Some(&long);
        let t = render(NotificationKind::NewMessage, Some("${MESSAGE}"), &v);
        assert_eq!(t.chars().count(), MAX_TEXT_CHARS);
        assert_eq!(t, "é".repeat(MAX_TEXT_CHARS));
        assert!(!t.ends_with('…'));

        let exact = "x".repeat(MAX_TEXT_CHARS);
        v.message = Some(&exact);
        assert_eq!(
            render(NotificationKind::NewMessage, Some("${MESSAGE}"), &v),
            exact
        );
    }

    #[test]
    fn limit_applies_after_substitution() {
        let body = "b".repeat(200);
        let mut v = vars();
        v.message = Some(&body);
        let t = render(NotificationKind::NewMessage, None, &v);
        let prefix = "room_42;author@example.com: ";
        assert!(t.starts_with(prefix));
        assert_eq!(t.chars().count(), MAX_TEXT_CHARS);
        assert_eq!(t.len(), MAX_TEXT_CHARS);
    }

    #[test]
    fn truncate_never_splits_a_char() {
        let s = "a👋🏽b";
        assert_eq!(truncate_chars(s, 0), "");
        assert_eq!(truncate_chars(s, 1), "a");
        assert_eq!(truncate_chars(s, 2), "a👋");
        assert_eq!(truncate_chars(s, 3), "a👋🏽");
        assert_eq!(truncate_chars(s, 10), s);
    }

    #[test]
    fn template_longer_than_limit_is_cut() {
        let tpl = format!("{}${{USER}}", "t".repeat(MAX_TEXT_CHARS));
        let t = render(NotificationKind::RemovedFromChannel, Some(&tpl), &vars());
        assert_eq!(t, "t".repeat(MAX_TEXT_CHARS));
    }
}
