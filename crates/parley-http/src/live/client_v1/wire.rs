//! The SDK's wire shapes (sdk-transport.md §2; read by twilio-chat 6.0.0's `channeldescriptor.ts`,
//! `data/channels.ts`, `userdescriptor.ts`…): snake_case, attributes as JSON text, dates in the
//! REST format, absolute links under [`super::PREFIX`], and the names of the Sync objects the
//! SDK opens ([`crate::live::names`]).

use parley_core::channel::{Channel, Member, Message, UserChannel};
use parley_core::user::User;
use serde_json::{json, Value};

use super::PREFIX;
use crate::live::names;
use crate::urls::segment;
use crate::v2::date;
use crate::AppState;

fn attrs(a: &Option<String>) -> String {
    a.clone().unwrap_or_else(|| "{}".to_owned())
}

/// Absolute URL of a client API path (`rest` starts with `/`).
pub(crate) fn url(app: &AppState, rest: &str) -> String {
    app.urls.abs(&format!("{PREFIX}{rest}"))
}

/// A channel's URL and links.
fn channel_links(app: &AppState, sid: &str) -> (String, Value) {
    let base = url(app, &format!("/Conversations/{sid}"));
    let links = json!({
        "self": base,
        "messages": format!("{base}/Messages"),
        "participants": format!("{base}/Participants"),
        "invites": format!("{base}/Invites"),
    });
    (base, links)
}

/// The Sync objects of a channel.
fn channel_objects(sid: &str) -> Value {
    json!({
        "conversation": names::channel_document(sid),
        "messages": names::messages_list(sid),
        "roster": names::roster_map(sid),
    })
}

/// A channel descriptor (calls 5–8): also the answer of create and update.
pub(crate) fn conversation(app: &AppState, c: &Channel) -> Value {
    let sid = c.sid.as_str();
    let (self_url, links) = channel_links(app, sid);
    json!({
        "sid": sid,
        "conversation_sid": sid,
        "account_sid": c.account_sid.as_str(),
        "service_sid": c.service_sid.as_str(),
        "unique_name": c.unique_name,
        "friendly_name": c.friendly_name,
        "attributes": attrs(&c.attributes),
        "type": c.channel_type.as_str(),
        "created_by": c.created_by,
        "date_created": date(c.date_created),
        "date_updated": date(c.date_updated),
        "messages_count": c.messages_count,
        "participants_count": c.members_count,
        "members_count": c.members_count,
        "last_message_index": c.last_message_index,
        "url": self_url,
        "links": links,
        "sync_objects": channel_objects(sid),
    })
}

/// One of the caller's channels (calls 2–4): the user-channel fields, the channel descriptor's
/// fields and the Sync objects.
pub(crate) fn my_conversation(app: &AppState, uc: &UserChannel, c: &Channel) -> Value {
    let mut v = conversation(app, c);
    if let Value::Object(o) = &mut v {
        o.insert("status".into(), json!(uc.status.as_str()));
        o.insert(
            "last_consumed_message_index".into(),
            json!(uc.last_consumed_message_index),
        );
        o.insert(
            "unread_messages_count".into(),
            json!(uc.unread_messages_count),
        );
        o.insert(
            "notification_level".into(),
            json!(uc.notification_level.as_str()),
        );
        o.insert(
            "member_sid".into(),
            json!(uc.member_sid.as_ref().map(|m| m.as_str())),
        );
        o.insert(
            "url".into(),
            json!(url(app, &format!("/MyConversations/{}", c.sid))),
        );
    }
    v
}

/// A member (participant).
pub(crate) fn member(app: &AppState, m: &Member) -> Value {
    json!({
        "sid": m.sid.as_str(),
        "account_sid": m.account_sid.as_str(),
        "service_sid": m.service_sid.as_str(),
        "channel_sid": m.channel_sid.as_str(),
        "conversation_sid": m.channel_sid.as_str(),
        "identity": m.identity,
        "role_sid": m.role_sid.as_ref().map(|r| r.as_str()),
        "attributes": attrs(&m.attributes),
        "last_consumed_message_index": m.last_consumed_message_index,
        "last_consumption_timestamp": m.last_consumption_timestamp.map(date),
        "notification_level": m.notification_level.as_str(),
        "date_created": date(m.date_created),
        "date_updated": date(m.date_updated),
        "url": url(app, &format!("/Conversations/{}/Participants/{}", m.channel_sid, m.sid)),
    })
}

/// A message.
pub(crate) fn message(app: &AppState, m: &Message) -> Value {
    json!({
        "sid": m.sid.as_str(),
        "account_sid": m.account_sid.as_str(),
        "service_sid": m.service_sid.as_str(),
        "channel_sid": m.channel_sid.as_str(),
        "conversation_sid": m.channel_sid.as_str(),
        "index": m.index,
        "author": m.from,
        "from": m.from,
        "body": m.body,
        "attributes": attrs(&m.attributes),
        "type": "text",
        "media": Value::Null,
        "was_edited": m.was_edited,
        "last_updated_by": m.last_updated_by,
        "date_created": date(m.date_created),
        "date_updated": date(m.date_updated),
        "url": url(app, &format!("/Conversations/{}/Messages/{}", m.channel_sid, m.sid)),
    })
}

/// A user descriptor (calls 18–20). `reachability` is `(is_online, is_notifiable)` when the
/// service has reachability on; both are null otherwise.
pub(crate) fn user(app: &AppState, u: &User, reachability: Option<(bool, bool)>) -> Value {
    let info = names::user_info_map(&u.identity);
    json!({
        "sid": u.sid.as_str(),
        "account_sid": u.account_sid.as_str(),
        "service_sid": u.service_sid.as_str(),
        "identity": u.identity,
        "friendly_name": u.friendly_name,
        "attributes": attrs(&u.attributes),
        "role_sid": u.role_sid.as_ref().map(|r| r.as_str()),
        "is_online": reachability.map(|r| r.0),
        "is_notifiable": reachability.map(|r| r.1),
        "date_created": date(u.date_created),
        "date_updated": date(u.date_updated),
        "sync_objects": {"user_info_map": info},
        "sync_unique_name": info,
        "url": url(app, &format!("/Users/{}", segment(&u.identity))),
    })
}
