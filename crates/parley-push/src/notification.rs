//! The provider-neutral description of one push, as the worker hands it to a [`crate::PushSender`].
//!
//! Everything here is plain data: the worker resolves the channel, the author, the service's
//! notification settings and the template *before* building a [`Notification`], so the payload
//! builders ([`crate::payload`]) and the senders never touch a store.

use sha2::{Digest, Sha256};

/// The four Chat push types (push-payloads.md §1, CONFIRMED type strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    /// A message was posted in a channel the recipient is a member of.
    NewMessage,
    /// The recipient was added to a channel.
    AddedToChannel,
    /// The recipient was invited to a channel.
    InvitedToChannel,
    /// The recipient was removed from a channel.
    RemovedFromChannel,
}

impl NotificationKind {
    /// Every kind, in the order of push-payloads.md §1.
    pub const ALL: [NotificationKind; 4] = [
        Self::NewMessage,
        Self::AddedToChannel,
        Self::InvitedToChannel,
        Self::RemovedFromChannel,
    ];

    /// The wire value of `twi_message_type`, e.g. `twilio.channel.new_message`.
    pub fn message_type(self) -> &'static str {
        match self {
            Self::NewMessage => "twilio.channel.new_message",
            Self::AddedToChannel => "twilio.channel.added_to_channel",
            Self::InvitedToChannel => "twilio.channel.invited_to_channel",
            Self::RemovedFromChannel => "twilio.channel.removed_from_channel",
        }
    }

    /// The short name used by REST binding `message_types` and service settings
    /// (`new_message`, …).
    pub fn short_name(self) -> &'static str {
        match self {
            Self::NewMessage => "new_message",
            Self::AddedToChannel => "added_to_channel",
            Self::InvitedToChannel => "invited_to_channel",
            Self::RemovedFromChannel => "removed_from_channel",
        }
    }

    /// Parse either the short name or the full `twilio.channel.*` type string.
    pub fn parse(s: &str) -> Option<Self> {
        let short = s.strip_prefix("twilio.channel.").unwrap_or(s);
        Self::ALL.into_iter().find(|k| k.short_name() == short)
    }

    /// The service settings block for this kind.
    pub fn setting(
        self,
        settings: &parley_core::service::NotificationSettings,
    ) -> &parley_core::service::NotificationSetting {
        match self {
            Self::NewMessage => &settings.new_message,
            Self::AddedToChannel => &settings.added_to_channel,
            Self::InvitedToChannel => &settings.invited_to_channel,
            Self::RemovedFromChannel => &settings.removed_from_channel,
        }
    }
}

/// One push to one recipient, provider-neutral. Build it once per (event, recipient) and send
/// it to each of the recipient's bindings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Stable id of the event this push comes from (for example the outbox row id). Sending the
    /// same notification twice yields the same `twi_message_id` and, per binding, the same
    /// `apns-id`, so repeats are recognisable.
    pub id: String,
    /// Which push this is.
    pub kind: NotificationKind,
    /// `IS…` of the service.
    pub service_sid: String,
    /// `CH…` of the channel.
    pub channel_sid: String,
    /// Channel unique name, if any.
    pub channel_unique_name: Option<String>,
    /// Channel friendly name, if any.
    pub channel_friendly_name: Option<String>,
    /// `IM…` of the message (new_message only).
    pub message_sid: Option<String>,
    /// Index of the message in the channel (new_message only).
    pub message_index: Option<u64>,
    /// Identity of the message author (new_message only; the `author` key).
    pub author: Option<String>,
    /// Message body (new_message only). Only used through [`Notification::text`].
    pub body: Option<String>,
    /// Identity of the user this push goes to.
    pub recipient: String,
    /// APNs badge (`NewMessage.BadgeCountEnabled`); never sent to FCM.
    pub badge: Option<u32>,
    /// The configured `[Type].Sound`, if any (`twi_sound` / `aps.sound`).
    pub sound: Option<String>,
    /// The finished, templated and length-limited text (see [`crate::template`]).
    pub text: String,
}

impl Notification {
    /// `twi_message_id`: `RU` + 32 lowercase hex digits (the shape seen in real payloads,
    /// push-payloads.md §5), derived from [`Notification::id`] so it is stable across repeats.
    pub fn twi_message_id(&self) -> String {
        let digest = Sha256::digest(format!("twi_message_id\0{}", self.id).as_bytes());
        format!("RU{}", hex::encode(&digest[..16]))
    }

    /// `channel_title`: friendly name, else unique name, else SID (GUESS: the only sample has
    /// one name; "title" suggests the friendly name).
    pub fn channel_title(&self) -> &str {
        non_empty(self.channel_friendly_name.as_deref())
            .or(non_empty(self.channel_unique_name.as_deref()))
            .unwrap_or(&self.channel_sid)
    }
}

/// A stable UUID for one (notification, binding) pair, used as `apns-id`.
///
/// SHA-256 of both ids, cut to 128 bits, with the RFC 9562 version 8 ("custom") and variant
/// bits set; lowercase canonical form.
pub fn stable_uuid(notification_id: &str, binding_sid: &str) -> String {
    let digest = Sha256::digest(format!("apns-id\0{notification_id}\0{binding_sid}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub(crate) fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The real new_message sample of push-payloads.md §5, as a [`Notification`].
    pub(crate) fn sample() -> Notification {
        Notification {
            id: "EV0001".into(),
            kind: NotificationKind::NewMessage,
            service_sid: "IS00000000000000000000000000000000".into(),
            channel_sid: "CH296f4a24749d4347a2bf7b4a4754ecb4".into(),
            channel_unique_name: Some("room_42".into()),
            channel_friendly_name: None,
            message_sid: Some("IM31b349972c644c3184b11ee4dba44169".into()),
            message_index: Some(49),
            author: Some("author@example.com".into()),
            body: Some("Quiubo ".into()),
            recipient: "bob".into(),
            badge: None,
            sound: None,
            text: "room_42;author@example.com: Quiubo ".into(),
        }
    }

    #[test]
    fn kinds_round_trip() {
        for k in NotificationKind::ALL {
            assert_eq!(NotificationKind::parse(k.short_name()), Some(k));
            assert_eq!(NotificationKind::parse(k.message_type()), Some(k));
            assert!(k.message_type().ends_with(k.short_name()));
        }
        assert_eq!(NotificationKind::parse("consumption_update"), None);
    }

    #[test]
    fn twi_message_id_shape_and_stability() {
        let n = sample();
        let id = n.twi_message_id();
        assert_eq!(id.len(), 34);
        assert!(id.starts_with("RU"));
        assert!(id[2..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(id, n.clone().twi_message_id());
        let mut other = n;
        other.id = "EV0002".into();
        assert_ne!(other.twi_message_id(), id);
    }

    #[test]
    fn stable_uuid_is_stable_and_versioned() {
        let a = stable_uuid("EV1", "BS1");
        assert_eq!(a, stable_uuid("EV1", "BS1"));
        assert_ne!(a, stable_uuid("EV1", "BS2"));
        assert_ne!(a, stable_uuid("EV2", "BS1"));
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('8'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn channel_title_fallbacks() {
        let mut n = sample();
        assert_eq!(n.channel_title(), "room_42");
        n.channel_friendly_name = Some("Room 42".into());
        assert_eq!(n.channel_title(), "Room 42");
        n.channel_friendly_name = Some(String::new());
        n.channel_unique_name = None;
        assert_eq!(n.channel_title(), n.channel_sid);
    }
}
