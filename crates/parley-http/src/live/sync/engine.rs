//! The vocabulary-free half of Sync (sdk-transport.md §3): object kinds and reversible SIDs,
//! descriptors and items on the wire, opaque page tokens that carry the whole query, in-memory
//! paging of sorted items, and the wire form of data events. It knows nothing of channels or
//! messages: projectors (the chat one in [`super::chat`]) say what an object holds.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use parley_core::crypto::SecretBox;
use parley_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The three Sync object kinds the chat SDK reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// Key → item.
    Map,
    /// Index → item.
    List,
    /// One JSON value.
    Document,
}

impl ObjectKind {
    /// SID prefix (Twilio's: `MP` maps, `ES` lists, `ET` documents).
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Map => "MP",
            Self::List => "ES",
            Self::Document => "ET",
        }
    }
    /// `object_type` in subscription requests; the event-type prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Map => "map",
            Self::List => "list",
            Self::Document => "document",
        }
    }
    /// Parse an `object_type`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "map" => Some(Self::Map),
            "list" => Some(Self::List),
            "document" => Some(Self::Document),
            _ => None,
        }
    }
    /// The collection path segment (`/v3/Maps`, …).
    pub fn path(self) -> &'static str {
        match self {
            Self::Map => "/v3/Maps",
            Self::List => "/v3/Lists",
            Self::Document => "/v3/Documents",
        }
    }
    /// The twilsock `message_type` of live (not replayed) events of this kind.
    pub fn live_message_type(self) -> &'static str {
        match self {
            Self::Map => "com.twilio.rtd.cds.map",
            Self::List => "com.twilio.rtd.cds.list",
            Self::Document => "com.twilio.rtd.cds.document",
        }
    }
}

/// The `message_type` of replayed events and subscription outcomes (strictly ordered).
pub const SYNC_EVENT: &str = "twilio.sync.event";

/// An object's SID: kind prefix + base64url(name), so any node can turn a SID from a
/// subscription request back into the object's name without a lookup table.
pub fn object_sid(kind: ObjectKind, name: &str) -> String {
    format!(
        "{}{}",
        kind.prefix(),
        URL_SAFE_NO_PAD.encode(name.as_bytes())
    )
}

/// The kind and name of an object SID made by [`object_sid`]; `None` for anything else.
pub fn parse_object_sid(sid: &str) -> Option<(ObjectKind, String)> {
    let kind = [ObjectKind::Map, ObjectKind::List, ObjectKind::Document]
        .into_iter()
        .find(|k| sid.starts_with(k.prefix()))?;
    let raw = URL_SAFE_NO_PAD.decode(sid.get(2..)?).ok()?;
    let name = String::from_utf8(raw).ok()?;
    (!name.is_empty()).then_some((kind, name))
}

/// A path segment that is either an object's name or its SID: the name.
pub fn name_of(kind: ObjectKind, name_or_sid: &str) -> String {
    match parse_object_sid(name_or_sid) {
        Some((k, name)) if k == kind => name,
        _ => name_or_sid.to_owned(),
    }
}

/// An item's address within its object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ItemKey {
    /// A list index.
    Index(i64),
    /// A map key.
    Key(String),
}

impl ItemKey {
    /// As a URL path segment.
    pub fn segment(&self) -> String {
        match self {
            Self::Index(i) => i.to_string(),
            Self::Key(k) => crate::urls::segment(k),
        }
    }
}

/// One item as a projector produces it.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// Key or index.
    pub key: ItemKey,
    /// The item's data (what the SDK reads).
    pub data: Value,
    /// When it last changed.
    pub date_updated: Timestamp,
}

/// The page order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Keys ascending.
    Asc,
    /// Keys descending.
    Desc,
}

/// A whole items query: what a page token carries, so a next/previous page request needs only
/// `PageToken`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageQuery {
    /// The object's SID (a token is only good for its object).
    pub object: String,
    /// Where the page starts (`None`: at the first item in `order`).
    pub from: Option<ItemKey>,
    /// Whether `from` itself belongs to the page (`From=` is inclusive; tokens are not).
    pub inclusive: bool,
    /// Items in this order.
    pub order: Order,
    /// Page size.
    pub size: u32,
    /// A previous-page token: the `size` items just before `from` (in `order`).
    pub backwards: bool,
}

/// Page sizes: the SDK asks for at most 100.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Page size without `PageSize`.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

const TOKEN_PREFIX: &str = "ST";
const MAC_LEN: usize = 16;

fn token_mac_input(payload: &[u8]) -> Vec<u8> {
    let mut v = b"sync-page\n".to_vec();
    v.extend_from_slice(payload);
    v
}

/// Encode a query as an opaque token (`ST` + base64url(JSON ‖ 16-byte MAC)); signed with the
/// server key like the REST paging tokens, so every node accepts it and a forged one is refused.
pub fn encode_page_token(query: &PageQuery, secrets: &SecretBox) -> String {
    let mut payload = serde_json::to_vec(query).unwrap_or_default();
    let mac = secrets.mac(&token_mac_input(&payload));
    payload.extend_from_slice(&mac[..MAC_LEN]);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(payload))
}

/// Decode a token made by [`encode_page_token`]; `None` if malformed or forged.
pub fn decode_page_token(token: &str, secrets: &SecretBox) -> Option<PageQuery> {
    let raw = URL_SAFE_NO_PAD
        .decode(token.strip_prefix(TOKEN_PREFIX)?)
        .ok()?;
    if raw.len() <= MAC_LEN {
        return None;
    }
    let (payload, mac) = raw.split_at(raw.len() - MAC_LEN);
    let expected = secrets.mac(&token_mac_input(payload));
    if !parley_core::crypto::secrets_equal(mac, &expected[..MAC_LEN]) {
        return None;
    }
    serde_json::from_slice(payload).ok()
}

/// One page of items, in the query's order, and the queries of its neighbours.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemPage {
    /// The items.
    pub items: Vec<Item>,
    /// The next page (further in `order`), if items follow.
    pub next: Option<PageQuery>,
    /// The previous page, if items precede.
    pub prev: Option<PageQuery>,
}

/// Page a complete item set in memory (`all` sorted by key, ascending). Used for maps, whose
/// item sets are bounded (a user's channels, a channel's members, a user's info).
pub fn page_sorted(all: &[Item], q: &PageQuery) -> ItemPage {
    // Items in travel order.
    let ordered: Vec<&Item> = match q.order {
        Order::Asc => all.iter().collect(),
        Order::Desc => all.iter().rev().collect(),
    };
    let before = |k: &ItemKey| -> bool {
        // Whether `k` comes before `q.from` in `q.order`.
        match (&q.from, q.order) {
            (None, _) => false,
            (Some(f), Order::Asc) => k < f,
            (Some(f), Order::Desc) => k > f,
        }
    };
    let size = q.size.clamp(1, MAX_PAGE_SIZE) as usize;
    let query = |from: &ItemKey, backwards: bool| PageQuery {
        object: q.object.clone(),
        from: Some(from.clone()),
        inclusive: false,
        order: q.order,
        size: q.size,
        backwards,
    };
    if q.backwards {
        // The `size` items strictly before `from`.
        let preceding: Vec<&Item> = ordered.iter().copied().filter(|i| before(&i.key)).collect();
        let start = preceding.len().saturating_sub(size);
        let items: Vec<Item> = preceding[start..].iter().map(|i| (*i).clone()).collect();
        let prev = (start > 0)
            .then(|| items.first().map(|i| query(&i.key, true)))
            .flatten();
        let next = items.last().map(|i| query(&i.key, false));
        return ItemPage { items, next, prev };
    }
    let starts_here = |k: &ItemKey| match &q.from {
        None => true,
        Some(_) if q.inclusive => !before(k),
        Some(f) => !before(k) && k != f,
    };
    let first = ordered.iter().position(|i| starts_here(&i.key));
    let Some(first) = first else {
        return ItemPage {
            items: vec![],
            next: None,
            prev: None,
        };
    };
    let end = (first + size).min(ordered.len());
    let items: Vec<Item> = ordered[first..end].iter().map(|i| (*i).clone()).collect();
    let next = (end < ordered.len())
        .then(|| items.last().map(|i| query(&i.key, false)))
        .flatten();
    let prev = (first > 0)
        .then(|| items.first().map(|i| query(&i.key, true)))
        .flatten();
    ItemPage { items, next, prev }
}

/// Absolute URLs of Sync objects and items.
#[derive(Clone, Debug)]
pub struct SyncUrls {
    base: String,
}

impl SyncUrls {
    /// Under `base` (the public URL, no trailing slash).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
        }
    }
    /// The object's URL (by SID).
    pub fn object(&self, kind: ObjectKind, sid: &str) -> String {
        format!("{}{}/{sid}", self.base, kind.path())
    }
    /// Its items collection.
    pub fn items(&self, kind: ObjectKind, sid: &str) -> String {
        format!("{}/Items", self.object(kind, sid))
    }
    /// One item.
    pub fn item(&self, kind: ObjectKind, sid: &str, key: &ItemKey) -> String {
        format!("{}/{}", self.items(kind, sid), key.segment())
    }
}

/// An object's version as of a read: the change log's last seq read before the data.
pub fn revision(seq: i64) -> String {
    seq.to_string()
}

/// ISO-8601 with milliseconds (`2026-12-07T16:15:52.123Z`), what the SDK's `new Date()` parses.
pub fn iso(t: Timestamp) -> String {
    let secs = t.to_rfc3339_seconds();
    let millis = t.unix_micros().rem_euclid(1_000_000) / 1000;
    match secs.strip_suffix('Z') {
        Some(head) => format!("{head}.{millis:03}Z"),
        None => secs,
    }
}

/// The descriptor of an object (`GET /v3/Maps/{name}` and friends).
pub struct Descriptor<'a> {
    /// Kind.
    pub kind: ObjectKind,
    /// Unique name.
    pub name: &'a str,
    /// Last seq as of the read.
    pub seq: i64,
    /// When the object last changed (as far as its projector knows).
    pub date_updated: Timestamp,
    /// A document's data.
    pub data: Option<Value>,
}

impl Descriptor<'_> {
    /// The wire JSON.
    pub fn to_json(&self, urls: &SyncUrls) -> Value {
        let sid = object_sid(self.kind, self.name);
        let mut out = json!({
            "sid": sid,
            "unique_name": self.name,
            "url": urls.object(self.kind, &sid),
            "revision": revision(self.seq),
            "last_event_id": self.seq,
            "date_updated": iso(self.date_updated),
            "date_expires": null,
        });
        if let Some(o) = out.as_object_mut() {
            if self.kind != ObjectKind::Document {
                o.insert(
                    "links".into(),
                    json!({ "items": urls.items(self.kind, &sid) }),
                );
            } else {
                o.insert("links".into(), json!({}));
            }
            if let Some(data) = &self.data {
                o.insert("data".into(), data.clone());
            }
        }
        out
    }
}

/// The wire JSON of an item read at seq `seq`.
pub fn item_json(urls: &SyncUrls, kind: ObjectKind, name: &str, seq: i64, item: &Item) -> Value {
    let sid = object_sid(kind, name);
    let mut o = Map::new();
    match &item.key {
        ItemKey::Index(i) => o.insert("index".into(), json!(i)),
        ItemKey::Key(k) => o.insert("key".into(), json!(k)),
    };
    o.insert("url".into(), json!(urls.item(kind, &sid, &item.key)));
    o.insert("revision".into(), json!(revision(seq)));
    o.insert("last_event_id".into(), json!(seq));
    o.insert("data".into(), item.data.clone());
    o.insert("date_updated".into(), json!(iso(item.date_updated)));
    o.insert("date_expires".into(), Value::Null);
    if kind == ObjectKind::List {
        o.insert("list_sid".into(), json!(sid));
    } else {
        o.insert("map_sid".into(), json!(sid));
    }
    Value::Object(o)
}

/// What changed in an object (one data event).
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// An item appeared.
    ItemAdded(ItemKey, Value),
    /// An item changed (its new data).
    ItemUpdated(ItemKey, Value),
    /// An item went (its last data, if known).
    ItemRemoved(ItemKey, Option<Value>),
    /// A document's new data.
    DocumentUpdated(Value),
    /// The object went.
    Removed,
}

/// One data event of one object: `id` is the change log seq that caused it.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncEvent {
    /// Object kind.
    pub kind: ObjectKind,
    /// Object name.
    pub name: String,
    /// Event id (the change-log seq; increasing per object, not contiguous).
    pub id: i64,
    /// When the change was made.
    pub date_created: Timestamp,
    /// What changed.
    pub change: Change,
}

impl SyncEvent {
    /// The object's SID.
    pub fn sid(&self) -> String {
        object_sid(self.kind, &self.name)
    }

    /// The notification payload `{event_type, event:{…}}` (event protocol 3 and 4).
    pub fn payload(&self, urls: &SyncUrls) -> Value {
        let sid = self.sid();
        let k = self.kind.as_str();
        let mut e = Map::new();
        e.insert("id".into(), json!(self.id));
        e.insert("date_created".into(), json!(iso(self.date_created)));
        e.insert(format!("{k}_sid"), json!(sid));
        e.insert(format!("{k}_unique_name"), json!(self.name));
        e.insert(format!("{k}_revision"), json!(revision(self.id)));
        let event_type = match &self.change {
            Change::ItemAdded(key, data) | Change::ItemUpdated(key, data) => {
                self.item_fields(&mut e, urls, &sid, key, Some(data));
                if matches!(self.change, Change::ItemAdded(..)) {
                    format!("{k}_item_added")
                } else {
                    format!("{k}_item_updated")
                }
            }
            Change::ItemRemoved(key, data) => {
                self.item_fields(&mut e, urls, &sid, key, data.as_ref());
                format!("{k}_item_removed")
            }
            Change::DocumentUpdated(data) => {
                e.insert("document_data".into(), data.clone());
                format!("{k}_updated")
            }
            Change::Removed => format!("{k}_removed"),
        };
        json!({ "event_type": event_type, "event": Value::Object(e) })
    }

    fn item_fields(
        &self,
        e: &mut Map<String, Value>,
        urls: &SyncUrls,
        sid: &str,
        key: &ItemKey,
        data: Option<&Value>,
    ) {
        match key {
            ItemKey::Index(i) => e.insert("item_index".into(), json!(i)),
            ItemKey::Key(s) => e.insert("item_key".into(), json!(s)),
        };
        e.insert("item_url".into(), json!(urls.item(self.kind, sid, key)));
        e.insert("item_revision".into(), json!(revision(self.id)));
        e.insert("item_data".into(), data.cloned().unwrap_or(Value::Null));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb() -> SecretBox {
        SecretBox::from_hex(&SecretBox::generate_hex()).expect("key")
    }

    #[test]
    fn object_sids_round_trip_any_name_and_reject_others() {
        for (kind, name) in [
            (ObjectKind::Map, "user.YWxpY2U.channels"),
            (
                ObjectKind::List,
                "CH0123456789abcdef0123456789abcdef.messages",
            ),
            (ObjectKind::Document, "CHx.channel"),
            (ObjectKind::Map, "ünïcødé / ?&#"),
        ] {
            let sid = object_sid(kind, name);
            assert!(sid.starts_with(kind.prefix()));
            assert!(sid[2..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(parse_object_sid(&sid), Some((kind, name.to_owned())));
            assert_eq!(name_of(kind, &sid), name);
        }
        assert_eq!(parse_object_sid("XX"), None);
        assert_eq!(parse_object_sid("MP"), None, "empty name");
        assert_eq!(parse_object_sid("MP!!!"), None);
        assert_eq!(parse_object_sid("CH123.channel"), None);
        // A name that is not a SID of this kind is a name.
        let list_sid = object_sid(ObjectKind::List, "a");
        assert_eq!(name_of(ObjectKind::Map, &list_sid), list_sid);
        assert_eq!(name_of(ObjectKind::Map, "user.x.info"), "user.x.info");
    }

    #[test]
    fn page_tokens_round_trip_and_refuse_forgery_and_other_keys() {
        let key = sb();
        let q = PageQuery {
            object: object_sid(ObjectKind::List, "CHx.messages"),
            from: Some(ItemKey::Index(41)),
            inclusive: false,
            order: Order::Desc,
            size: 30,
            backwards: true,
        };
        let token = encode_page_token(&q, &key);
        assert_eq!(decode_page_token(&token, &key), Some(q.clone()));
        let mq = PageQuery {
            from: Some(ItemKey::Key("CH9".into())),
            ..q.clone()
        };
        assert_eq!(
            decode_page_token(&encode_page_token(&mq, &key), &key),
            Some(mq)
        );
        assert_eq!(decode_page_token(&token, &sb()), None, "another server key");
        let mut raw = URL_SAFE_NO_PAD.decode(&token[2..]).expect("b64");
        raw[5] ^= 1;
        let forged = format!("ST{}", URL_SAFE_NO_PAD.encode(raw));
        assert_eq!(decode_page_token(&forged, &key), None);
        assert_eq!(decode_page_token("garbage", &key), None);
        assert_eq!(decode_page_token("ST", &key), None);
    }

    fn items(keys: &[&str]) -> Vec<Item> {
        keys.iter()
            .map(|k| Item {
                key: ItemKey::Key((*k).to_owned()),
                data: json!({ "k": k }),
                date_updated: Timestamp::from_unix_secs(0),
            })
            .collect()
    }

    fn keys(p: &ItemPage) -> Vec<String> {
        p.items
            .iter()
            .map(|i| match &i.key {
                ItemKey::Key(k) => k.clone(),
                ItemKey::Index(i) => i.to_string(),
            })
            .collect()
    }

    #[test]
    fn in_memory_paging_walks_both_orders_both_ways_and_honours_inclusive_from() {
        let all = items(&["a", "b", "c", "d", "e"]);
        let q = |from: Option<&str>, order, inclusive| PageQuery {
            object: "MPx".into(),
            from: from.map(|f| ItemKey::Key(f.into())),
            inclusive,
            order,
            size: 2,
            backwards: false,
        };
        // Forward asc from the start.
        let p1 = page_sorted(&all, &q(None, Order::Asc, true));
        assert_eq!(keys(&p1), ["a", "b"]);
        assert!(p1.prev.is_none());
        let p2 = page_sorted(&all, p1.next.as_ref().expect("next"));
        assert_eq!(keys(&p2), ["c", "d"]);
        let p3 = page_sorted(&all, p2.next.as_ref().expect("next"));
        assert_eq!(keys(&p3), ["e"]);
        assert!(p3.next.is_none());
        // And back.
        let back = page_sorted(&all, p3.prev.as_ref().expect("prev"));
        assert_eq!(keys(&back), ["c", "d"]);
        let back2 = page_sorted(&all, back.prev.as_ref().expect("prev"));
        assert_eq!(keys(&back2), ["a", "b"]);
        assert!(back2.prev.is_none());
        // Desc with an inclusive From (what the SDK sends for its next page).
        let d = page_sorted(&all, &q(Some("d"), Order::Desc, true));
        assert_eq!(keys(&d), ["d", "c"]);
        assert!(d.prev.is_some(), "e precedes d in desc order");
        let d2 = page_sorted(&all, d.next.as_ref().expect("next"));
        assert_eq!(keys(&d2), ["b", "a"]);
        assert!(d2.next.is_none());
        // From past the end: nothing, no neighbours.
        let none = page_sorted(&all, &q(Some("z"), Order::Asc, true));
        assert!(none.items.is_empty() && none.next.is_none() && none.prev.is_none());
    }

    #[test]
    fn event_payloads_name_the_object_and_item_as_twilio_sync_reads_them() {
        let urls = SyncUrls::new("https://parley.test/");
        let ev = SyncEvent {
            kind: ObjectKind::List,
            name: "CHx.messages".into(),
            id: 17,
            date_created: Timestamp::from_unix_micros(1_700_000_000_123_456),
            change: Change::ItemAdded(ItemKey::Index(3), json!({ "text": "hi" })),
        };
        let p = ev.payload(&urls);
        let sid = object_sid(ObjectKind::List, "CHx.messages");
        assert_eq!(p["event_type"], "list_item_added");
        assert_eq!(p["event"]["id"], 17);
        assert_eq!(p["event"]["list_sid"], sid.as_str());
        assert_eq!(p["event"]["item_index"], 3);
        assert_eq!(p["event"]["item_data"]["text"], "hi");
        assert_eq!(p["event"]["list_revision"], "17");
        assert_eq!(p["event"]["date_created"], "2023-11-14T22:13:20.123Z");
        assert_eq!(
            p["event"]["item_url"],
            format!("https://parley.test/v3/Lists/{sid}/Items/3")
        );
        let doc = SyncEvent {
            kind: ObjectKind::Document,
            name: "CHx.channel".into(),
            id: 18,
            date_created: Timestamp::from_unix_secs(0),
            change: Change::DocumentUpdated(json!({ "friendlyName": "x" })),
        };
        let p = doc.payload(&urls);
        assert_eq!(p["event_type"], "document_updated");
        assert_eq!(p["event"]["document_data"]["friendlyName"], "x");
        assert_eq!(p["event"]["document_revision"], "18");
        let gone = SyncEvent {
            kind: ObjectKind::Map,
            name: "CHx.roster".into(),
            id: 19,
            date_created: Timestamp::from_unix_secs(0),
            change: Change::ItemRemoved(ItemKey::Key("MB1".into()), None),
        };
        let p = gone.payload(&urls);
        assert_eq!(p["event_type"], "map_item_removed");
        assert_eq!(p["event"]["item_key"], "MB1");
        assert_eq!(p["event"]["map_sid"], gone.sid().as_str());
    }
}
