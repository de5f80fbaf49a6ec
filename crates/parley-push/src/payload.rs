//! Provider payloads built from a [`Notification`] (push-payloads.md §4–§6).
//!
//! # FCM (HTTP v1), data-only
//!
//! ```json
//! {"message": {"token": "<device token>",
//!   "data": {"twi_message_type": "twilio.channel.new_message", "twi_body": "…",
//!            "twi_message_id": "RU…", "channel_sid": "CH…", "channel_id": "CH…",
//!            "message_sid": "IM…", "message_id": "IM…", "message_index": "49",
//!            "author": "…", "channel_title": "…", "twi_sound": "…"},
//!   "android": {"ttl": "86400s", "priority": "HIGH"}}}
//! ```
//!
//! * The key set of new_message is the CONFIRMED real sample (§5) plus `twi_sound` when a sound is
//!   configured. All values are strings (FCM data values must be).
//! * added/invited/removed carry only `twi_message_type`, `twi_body`, `twi_message_id`,
//!   `channel_sid`, `channel_id` (+ `twi_sound`) — GUESS of §5 (no message fields, `channel_sid`
//!   on every type).
//! * No `notification` block, no badge (FCM never carries one, §4). TTL 24 h as observed.
//!   `android.priority: HIGH` is our choice (chat pushes should arrive promptly; not observed).
//!
//! # APNs
//!
//! ```json
//! {"aps": {"alert": {"body": "…"}, "sound": "…", "badge": 3},
//!  "twi_message_type": "…", "twi_message_id": "RU…", "channel_sid": "CH…", "channel_id": "CH…",
//!  "message_sid": "IM…", "message_id": "IM…", "message_index": 49, "author": "…",
//!  "channel_title": "…"}
//! ```
//!
//! * `aps.alert` is the dictionary form `{"body": …}` (GUESS of §6; the SDK accepts both).
//! * `sound` only when configured, `badge` only when the notification carries one.
//! * Top-level keys mirror the FCM data keys, minus the `twi_body`/`twi_sound` duplicates of
//!   `aps` (GUESS of §6). `message_index` is a JSON number here (GUESS: APNs payloads are typed
//!   JSON; the SDKs convert with `Number()` / `integerValue` either way).
//!
//! # Size
//!
//! Both providers accept 4096 bytes: APNs the whole JSON body, FCM the data payload. If a payload
//! would exceed [`MAX_PAYLOAD_BYTES`], the longest prefix of the body text that fits is kept (on a
//! char boundary, no ellipsis); if even an empty text is too large, the same is done to
//! `channel_title`, then `author`; if it still does not fit, [`PayloadError::TooLarge`].
//! The output is always serialized by `serde_json`, so it is always valid JSON.

use serde_json::{json, Map, Value};

use crate::notification::{Notification, NotificationKind};

/// Provider payload limit in bytes (APNs: whole body; FCM: data payload).
pub const MAX_PAYLOAD_BYTES: usize = 4096;

/// FCM `android.ttl` (24 h, as observed on real Chat pushes).
pub const FCM_TTL: &str = "86400s";

/// A payload that cannot be made to fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Even with the body, title and author emptied the payload is above the limit.
    #[error("payload too large: {size} bytes > {limit} even with the text removed")]
    TooLarge {
        /// Bytes after shrinking.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// The shrinkable parts of a payload.
#[derive(Clone)]
struct Parts {
    text: String,
    channel_title: Option<String>,
    author: Option<String>,
}

impl Parts {
    fn of(n: &Notification) -> Self {
        let new_message = n.kind == NotificationKind::NewMessage;
        Self {
            text: n.text.clone(),
            channel_title: new_message.then(|| n.channel_title().to_owned()),
            author: if new_message { n.author.clone() } else { None },
        }
    }
}

/// The FCM `data` map of a notification (all values strings), before size limiting.
pub fn fcm_data(n: &Notification) -> Map<String, Value> {
    fcm_data_with(n, &Parts::of(n))
}

fn fcm_data_with(n: &Notification, p: &Parts) -> Map<String, Value> {
    let mut d = Map::new();
    let mut put = |k: &str, v: &str| {
        d.insert(k.to_owned(), Value::String(v.to_owned()));
    };
    put("twi_message_type", n.kind.message_type());
    put("twi_body", &p.text);
    put("twi_message_id", &n.twi_message_id());
    put("channel_sid", &n.channel_sid);
    put("channel_id", &n.channel_sid);
    if n.kind == NotificationKind::NewMessage {
        if let Some(sid) = &n.message_sid {
            put("message_sid", sid);
            put("message_id", sid);
        }
        if let Some(i) = n.message_index {
            put("message_index", &i.to_string());
        }
        if let Some(a) = &p.author {
            put("author", a);
        }
        if let Some(t) = &p.channel_title {
            put("channel_title", t);
        }
    }
    if let Some(s) = n.sound.as_deref().filter(|s| !s.is_empty()) {
        put("twi_sound", s);
    }
    d
}

/// The complete FCM HTTP v1 request body (`{"message": …}`) for device `token`, within limits.
pub fn fcm_message(n: &Notification, token: &str) -> Result<Value, PayloadError> {
    let data = fit(n, |p| {
        let d = fcm_data_with(n, p);
        let size = serde_json::to_vec(&d)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        (d, size)
    })?;
    Ok(json!({
        "message": {
            "token": token,
            "data": data,
            "android": {"ttl": FCM_TTL, "priority": "HIGH"},
        }
    }))
}

fn apns_value(n: &Notification, p: &Parts) -> Value {
    let mut aps = Map::new();
    aps.insert("alert".into(), json!({ "body": p.text }));
    if let Some(s) = n.sound.as_deref().filter(|s| !s.is_empty()) {
        aps.insert("sound".into(), json!(s));
    }
    if let Some(b) = n.badge {
        aps.insert("badge".into(), json!(b));
    }
    let mut top = Map::new();
    top.insert("aps".into(), Value::Object(aps));
    for (k, v) in fcm_data_with(n, p) {
        match k.as_str() {
            "twi_body" | "twi_sound" => {}
            "message_index" => {
                top.insert(k, n.message_index.map(Value::from).unwrap_or(v));
            }
            _ => {
                top.insert(k, v);
            }
        }
    }
    Value::Object(top)
}

/// The APNs JSON body of a notification, serialized, within [`MAX_PAYLOAD_BYTES`].
pub fn apns_payload(n: &Notification) -> Result<Vec<u8>, PayloadError> {
    fit(n, |p| {
        let bytes = serde_json::to_vec(&apns_value(n, p)).unwrap_or_default();
        let size = if bytes.is_empty() {
            usize::MAX
        } else {
            bytes.len()
        };
        (bytes, size)
    })
}

/// Build with `build`; if too large, keep the longest prefix of the text that fits, then of
/// the channel title, then of the author (binary search on the char count, so JSON escaping
/// is accounted for exactly).
fn fit<T>(n: &Notification, build: impl Fn(&Parts) -> (T, usize)) -> Result<T, PayloadError> {
    let mut p = Parts::of(n);
    let (out, size) = build(&p);
    if size <= MAX_PAYLOAD_BYTES {
        return Ok(out);
    }
    type Field = fn(&mut Parts) -> Option<&mut String>;
    let fields: [Field; 3] = [
        |p| Some(&mut p.text),
        |p| p.channel_title.as_mut(),
        |p| p.author.as_mut(),
    ];
    for field in fields {
        let Some(full) = field(&mut p).cloned() else {
            continue;
        };
        let with = |p: &Parts, keep: usize| {
            let mut q = p.clone();
            if let Some(f) = field(&mut q) {
                *f = prefix_chars(&full, keep).to_owned();
            }
            build(&q)
        };
        if with(&p, 0).1 > MAX_PAYLOAD_BYTES {
            if let Some(f) = field(&mut p) {
                f.clear();
            }
            continue;
        }
        // Largest `keep` whose payload fits: invariant fits(lo), !fits(hi).
        let (mut lo, mut hi) = (0, full.chars().count());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if with(&p, mid).1 <= MAX_PAYLOAD_BYTES {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        return Ok(with(&p, lo).0);
    }
    let size = build(&p).1;
    Err(PayloadError::TooLarge {
        size,
        limit: MAX_PAYLOAD_BYTES,
    })
}

fn prefix_chars(s: &str, chars: usize) -> &str {
    crate::template::truncate_chars(s, chars)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::notification::tests::sample;

    /// The keys of the real captured Chat FCM payload (push-payloads.md §5).
    const REAL_FCM_KEYS: [&str; 10] = [
        "twi_message_type",
        "twi_body",
        "twi_message_id",
        "channel_sid",
        "channel_id",
        "message_sid",
        "message_id",
        "message_index",
        "author",
        "channel_title",
    ];

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn fcm_new_message_matches_the_real_payload() {
        let n = sample();
        let m = fcm_message(&n, "tok").unwrap();
        let data = &m["message"]["data"];
        let expected: BTreeSet<String> = REAL_FCM_KEYS.iter().map(|s| s.to_string()).collect();
        assert_eq!(keys(data), expected);
        let real = json!({"twi_message_type":"twilio.channel.new_message",
         "twi_body":"room_42;author@example.com: Quiubo ",
         "channel_sid":"CH296f4a24749d4347a2bf7b4a4754ecb4", "channel_id":"CH296f4a24749d4347a2bf7b4a4754ecb4",
         "message_sid":"IM31b349972c644c3184b11ee4dba44169", "message_id":"IM31b349972c644c3184b11ee4dba44169",
         "message_index":"49", "author":"author@example.com", "channel_title":"room_42"});
        for (k, v) in real.as_object().unwrap() {
            assert_eq!(&data[k], v, "key {k}");
        }
        assert_eq!(data["twi_message_id"], json!(n.twi_message_id()));
        assert!(data.as_object().unwrap().values().all(Value::is_string));
        assert_eq!(m["message"]["token"], "tok");
        assert_eq!(m["message"]["android"]["ttl"], "86400s");
        assert!(m["message"].get("notification").is_none());
        assert_eq!(
            keys(&m["message"]),
            ["android", "data", "token"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
    }

    #[test]
    fn fcm_sound_only_when_set_and_never_badge() {
        let mut n = sample();
        n.badge = Some(3);
        let d = fcm_data(&n);
        assert!(!d.contains_key("twi_sound"));
        assert!(!d.keys().any(|k| k.contains("badge")));
        n.sound = Some("ding".into());
        assert_eq!(fcm_data(&n)["twi_sound"], "ding");
        n.sound = Some(String::new());
        assert!(!fcm_data(&n).contains_key("twi_sound"));
    }

    #[test]
    fn fcm_other_kinds_carry_no_message_fields() {
        for kind in [
            NotificationKind::AddedToChannel,
            NotificationKind::InvitedToChannel,
            NotificationKind::RemovedFromChannel,
        ] {
            let mut n = sample();
            n.kind = kind;
            n.message_sid = None;
            n.message_index = None;
            n.text = "You have been added".into();
            let d = Value::Object(fcm_data(&n));
            let expected: BTreeSet<String> = [
                "twi_message_type",
                "twi_body",
                "twi_message_id",
                "channel_sid",
                "channel_id",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            assert_eq!(keys(&d), expected, "{kind:?}");
            assert_eq!(d["twi_message_type"], kind.message_type());
        }
    }

    #[test]
    fn apns_new_message_shape() {
        let mut n = sample();
        n.sound = Some("ding.caf".into());
        n.badge = Some(2);
        let v: Value = serde_json::from_slice(&apns_payload(&n).unwrap()).unwrap();
        assert_eq!(
            v["aps"],
            json!({"alert": {"body": "room_42;author@example.com: Quiubo "}, "sound": "ding.caf", "badge": 2})
        );
        let mut expected: BTreeSet<String> = REAL_FCM_KEYS
            .iter()
            .filter(|k| **k != "twi_body")
            .map(|s| s.to_string())
            .collect();
        expected.insert("aps".into());
        assert_eq!(keys(&v), expected);
        assert_eq!(v["message_index"], json!(49));
        assert_eq!(v["twi_message_type"], "twilio.channel.new_message");
        assert_eq!(v["channel_sid"], "CH296f4a24749d4347a2bf7b4a4754ecb4");
        assert_eq!(v["author"], "author@example.com");
    }

    #[test]
    fn apns_without_sound_or_badge() {
        let v: Value = serde_json::from_slice(&apns_payload(&sample()).unwrap()).unwrap();
        assert_eq!(keys(&v["aps"]), BTreeSet::from(["alert".to_string()]));
    }

    #[test]
    fn apns_removed_from_channel() {
        let mut n = sample();
        n.kind = NotificationKind::RemovedFromChannel;
        n.message_sid = None;
        n.message_index = None;
        let v: Value = serde_json::from_slice(&apns_payload(&n).unwrap()).unwrap();
        let expected: BTreeSet<String> = [
            "aps",
            "twi_message_type",
            "twi_message_id",
            "channel_sid",
            "channel_id",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(keys(&v), expected);
    }

    #[test]
    fn oversized_text_is_cut_to_fit_and_stays_valid_json() {
        let mut n = sample();
        n.text = "ü\"\\\n".repeat(3000); // multi-byte and escaped chars
        let apns = apns_payload(&n).unwrap();
        assert!(apns.len() <= MAX_PAYLOAD_BYTES);
        // Cut as little as needed: one more char would not fit (a char is at most 8 JSON bytes).
        assert!(apns.len() > MAX_PAYLOAD_BYTES - 8, "{}", apns.len());
        let v: Value = serde_json::from_slice(&apns).unwrap();
        let body = v["aps"]["alert"]["body"].as_str().unwrap();
        assert!(n.text.starts_with(body));

        let m = fcm_message(&n, "tok").unwrap();
        let data_len = serde_json::to_vec(&m["message"]["data"]).unwrap().len();
        assert!(data_len <= MAX_PAYLOAD_BYTES);
        assert!(n
            .text
            .starts_with(m["message"]["data"]["twi_body"].as_str().unwrap()));
    }

    #[test]
    fn oversized_title_and_author_are_cut_after_text() {
        let mut n = sample();
        n.channel_unique_name = Some("u".repeat(3000));
        n.author = Some("a".repeat(3000));
        let bytes = apns_payload(&n).unwrap();
        assert!(bytes.len() <= MAX_PAYLOAD_BYTES);
        assert!(bytes.len() > MAX_PAYLOAD_BYTES - 4);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["aps"]["alert"]["body"], "");
        let title = v["channel_title"].as_str().unwrap();
        assert!(!title.is_empty() && title.len() < 3000);
        assert_eq!(v["author"].as_str().unwrap().len(), 3000);

        n.author = Some("a".repeat(5000));
        let v: Value = serde_json::from_slice(&apns_payload(&n).unwrap()).unwrap();
        assert_eq!(v["channel_title"], "");
        let author = v["author"].as_str().unwrap();
        assert!(!author.is_empty() && author.len() < 5000);
    }

    #[test]
    fn impossible_payload_is_an_error() {
        let mut n = sample();
        n.channel_sid = "C".repeat(5000);
        assert!(matches!(
            apns_payload(&n),
            Err(PayloadError::TooLarge { .. })
        ));
        assert!(matches!(
            fcm_message(&n, "t"),
            Err(PayloadError::TooLarge { .. })
        ));
    }
}
