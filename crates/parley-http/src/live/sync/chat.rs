//! The chat projector: which Sync objects the chat SDK reads (sdk-transport.md §2, names in
//! [`crate::live::names`]), who may read them, their contents computed from the chat tables on
//! read, and the Sync events a change-log event becomes. No Sync state is stored: contents are
//! read, events are projected; event ids are the change log's per-service `seq`.

use std::collections::{HashMap, HashSet};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use parley_core::channel::{
    Channel, ChannelRef, ChannelType, Invite, Member, MemberRef, Message, MessageOrder,
    NotificationLevel, UserChannelStatus,
};
use parley_core::event::{Event, EventKind, Resource};
use parley_core::paging::{Cursor, PageRequest};
use parley_core::store::{Store, StoreError, StoreResult};
use parley_core::user::{User, UserRef};
use parley_core::{AccountSid, ChannelSid, ServiceSid, Timestamp};
use serde_json::{json, Value};

use super::engine::{
    iso, Change, Item, ItemKey, ItemPage, ObjectKind, Order, PageQuery, SyncEvent,
};
use super::subscriptions::Routed;
use crate::live::names;

/// A chat Sync object, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatObject {
    /// The user's channels map (key: channel SID).
    UserChannels(String),
    /// The user's info map (`friendlyName`, `attributes`, `reachability`).
    UserInfo(String),
    /// The channel document.
    Channel(ChannelSid),
    /// The channel's messages list (index: message index).
    Messages(ChannelSid),
    /// The channel's roster map (key: member SID).
    Roster(ChannelSid),
}

impl ChatObject {
    /// Parse an object name (see [`names`]).
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(rest) = name.strip_prefix("user.") {
            let (ident, what) = rest.rsplit_once('.')?;
            let identity = String::from_utf8(URL_SAFE_NO_PAD.decode(ident).ok()?).ok()?;
            return match what {
                "channels" => Some(Self::UserChannels(identity)),
                "info" => Some(Self::UserInfo(identity)),
                _ => None,
            };
        }
        let (ch, what) = name.split_once('.')?;
        let ch = ChannelSid::parse(ch).ok()?;
        match what {
            "channel" => Some(Self::Channel(ch)),
            "messages" => Some(Self::Messages(ch)),
            "roster" => Some(Self::Roster(ch)),
            _ => None,
        }
    }

    /// Its Sync kind.
    pub fn kind(&self) -> ObjectKind {
        match self {
            Self::UserChannels(_) | Self::UserInfo(_) | Self::Roster(_) => ObjectKind::Map,
            Self::Messages(_) => ObjectKind::List,
            Self::Channel(_) => ObjectKind::Document,
        }
    }

    /// Its name.
    pub fn name(&self) -> String {
        match self {
            Self::UserChannels(i) => names::user_channels_map(i),
            Self::UserInfo(i) => names::user_info_map(i),
            Self::Channel(c) => names::channel_document(c.as_str()),
            Self::Messages(c) => names::messages_list(c.as_str()),
            Self::Roster(c) => names::roster_map(c.as_str()),
        }
    }

    /// The channel it belongs to, if any.
    pub fn channel(&self) -> Option<&ChannelSid> {
        match self {
            Self::Channel(c) | Self::Messages(c) | Self::Roster(c) => Some(c),
            _ => None,
        }
    }
}

/// Why an object may not be read.
#[derive(Debug)]
pub enum Refusal {
    /// It does not exist, or is a private channel's the caller is not in (hidden like Twilio's
    /// missing objects).
    NotFound,
    /// Another user's channels map.
    Forbidden,
    /// Storage failed.
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            e => Self::Store(e),
        }
    }
}

/// The caller of a Sync read (from the connection's token).
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    /// Account.
    pub account: &'a AccountSid,
    /// Service.
    pub service: &'a ServiceSid,
    /// Identity.
    pub identity: &'a str,
}

fn ch_ref(c: &ChannelSid) -> ChannelRef {
    ChannelRef::Sid(c.clone())
}

/// Everything of a paged store list (bounded sets: a channel's members, a user's channels).
const ALL: u32 = 1000;

/// May `who` read `obj`? Own channels map only; any user's info map of the service (the SDK
/// opens other users' info maps for `getUser`, and REST users are readable by every client);
/// a channel's objects if the channel is public or `who` is a member or invitee. Returns the
/// channel for channel objects.
pub async fn check_access(
    store: &dyn Store,
    who: &Reader<'_>,
    obj: &ChatObject,
) -> Result<Option<Channel>, Refusal> {
    match obj {
        ChatObject::UserChannels(i) if i != who.identity => Err(Refusal::Forbidden),
        ChatObject::UserChannels(_) | ChatObject::UserInfo(_) => Ok(None),
        ChatObject::Channel(c) | ChatObject::Messages(c) | ChatObject::Roster(c) => {
            let channel = store
                .fetch_channel(who.account, who.service, &ch_ref(c))
                .await?;
            // A private channel is visible to its members, invitees and its creator (who
            // opens it right after createChannel, before joining, as the client API allows).
            if channel.channel_type == ChannelType::Private
                && channel.created_by.as_deref() != Some(who.identity)
                && !is_in(store, who, c).await?
            {
                return Err(Refusal::NotFound);
            }
            Ok(Some(channel))
        }
    }
}

/// Whether `who` is a member of (or invited to) the channel.
async fn is_in(store: &dyn Store, who: &Reader<'_>, c: &ChannelSid) -> StoreResult<bool> {
    match store
        .fetch_member(
            who.account,
            who.service,
            &ch_ref(c),
            &MemberRef::Identity(who.identity.to_owned()),
        )
        .await
    {
        Ok(_) => return Ok(true),
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e),
    }
    let invites = store
        .list_invites(
            who.account,
            who.service,
            &ch_ref(c),
            &[who.identity.to_owned()],
            &PageRequest::first(1),
        )
        .await?;
    Ok(!invites.items.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Item data, as the SDK reads it (camelCase; dates ISO; see sdk-transport.md §2).

/// A channel document: `attributes` as a JSON object (channel.ts parses a string too).
pub fn channel_doc(c: &Channel, last_message_at: Option<Timestamp>) -> Value {
    let mut doc = json!({
        "sid": c.sid.as_str(),
        "friendlyName": c.friendly_name,
        "uniqueName": c.unique_name,
        "type": c.channel_type.as_str(),
        "attributes": parse_attributes(c.attributes.as_deref()),
        "createdBy": c.created_by,
        "dateCreated": iso(c.date_created),
        "dateUpdated": iso(c.date_updated),
        "messages": names::messages_list(c.sid.as_str()),
        "roster": names::roster_map(c.sid.as_str()),
    });
    if let (Some(index), Some(o)) = (c.last_message_index, doc.as_object_mut()) {
        let mut last = json!({ "index": index });
        if let (Some(t), Some(l)) = (last_message_at, last.as_object_mut()) {
            l.insert("timestamp".into(), json!(iso(t)));
        }
        o.insert("lastMessage".into(), last);
    }
    doc
}

fn parse_attributes(a: Option<&str>) -> Value {
    a.and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(|| json!({}))
}

/// A message item: `attributes` as a JSON string (message.ts parses it).
pub fn message_item(m: &Message, member_sid: Option<&str>) -> Value {
    json!({
        "sid": m.sid.as_str(),
        "index": m.index,
        "author": m.from,
        "text": m.body,
        "timestamp": iso(m.date_created),
        "dateUpdated": iso(m.date_updated),
        "lastUpdatedBy": m.last_updated_by,
        "attributes": m.attributes.clone().unwrap_or_else(|| "{}".to_owned()),
        "type": "text",
        "memberSid": member_sid,
    })
}

/// A roster item: `attributes` as a JSON string (member.ts parses it).
pub fn roster_item(m: &Member) -> Value {
    json!({
        "sid": m.sid.as_str(),
        "identity": m.identity,
        "type": "chat",
        "roleSid": m.role_sid.as_ref().map(|r| r.as_str()),
        "attributes": m.attributes.clone().unwrap_or_else(|| "{}".to_owned()),
        "dateCreated": iso(m.date_created),
        "dateUpdated": iso(m.date_updated),
        "lastConsumedMessageIndex": m.last_consumed_message_index,
        "lastConsumptionTimestamp": m.last_consumption_timestamp.map(iso),
        "userInfo": names::user_info_map(&m.identity),
    })
}

/// A user's-channels item (data/channels.ts `upsertChannel`): the channel document's name, the
/// user's status and horizon, the channel type. Mutable channel fields are not repeated here
/// (the SDK reads them from the channel document), so channel updates need no map event.
pub fn user_channel_item(
    channel: &ChannelSid,
    status: UserChannelStatus,
    channel_type: ChannelType,
    last_consumed: Option<i64>,
    level: NotificationLevel,
) -> Value {
    json!({
        "channel": names::channel_document(channel.as_str()),
        "channel_sid": channel.as_str(),
        "status": status.as_str(),
        "type": channel_type.as_str(),
        "lastConsumedMessageIndex": last_consumed,
        "notificationLevel": level.as_str(),
        "messages": names::messages_list(channel.as_str()),
        "roster": names::roster_map(channel.as_str()),
    })
}

/// A user's info items (user.ts): `friendlyName` {value}, `attributes` {value: JSON string}.
pub fn user_info_items(identity: &str, user: Option<&User>) -> Vec<(String, Value)> {
    let _ = identity;
    vec![
        (
            "attributes".into(),
            json!({ "value": user.and_then(|u| u.attributes.clone()).unwrap_or_else(|| "{}".into()) }),
        ),
        (
            "friendlyName".into(),
            json!({ "value": user.and_then(|u| u.friendly_name.clone()) }),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Reads.

/// When the channel's last message was posted (for `lastMessage.timestamp`).
async fn last_message_at(store: &dyn Store, c: &Channel) -> StoreResult<Option<Timestamp>> {
    if c.last_message_index.is_none() {
        return Ok(None);
    }
    let page = store
        .list_messages(
            &c.account_sid,
            &c.service_sid,
            &ch_ref(&c.sid),
            MessageOrder::Desc,
            &PageRequest::first(1),
        )
        .await?;
    Ok(page.items.first().map(|m| m.date_created))
}

/// The channel document's data and last change.
pub async fn document(store: &dyn Store, c: &Channel) -> StoreResult<(Value, Timestamp)> {
    let at = last_message_at(store, c).await?;
    Ok((channel_doc(c, at), c.date_updated))
}

/// Every item of a map object, sorted by key.
pub async fn map_items(
    store: &dyn Store,
    who: &Reader<'_>,
    obj: &ChatObject,
    reachability: Option<(bool, bool)>,
) -> StoreResult<Vec<Item>> {
    let mut items = Vec::new();
    match obj {
        ChatObject::UserChannels(identity) => {
            let user = UserRef::Identity(identity.clone());
            let mut page = PageRequest::first(ALL);
            loop {
                let got = match store
                    .list_user_channels(who.account, who.service, &user, &page)
                    .await
                {
                    Ok(p) => p,
                    Err(StoreError::NotFound) => break, // no user yet: no channels
                    Err(e) => return Err(e),
                };
                for uc in &got.items {
                    let ty = match store
                        .fetch_channel(who.account, who.service, &ch_ref(&uc.channel_sid))
                        .await
                    {
                        Ok(c) => c.channel_type,
                        Err(StoreError::NotFound) => continue, // deleted meanwhile
                        Err(e) => return Err(e),
                    };
                    items.push(Item {
                        key: ItemKey::Key(uc.channel_sid.as_str().to_owned()),
                        data: user_channel_item(
                            &uc.channel_sid,
                            uc.status,
                            ty,
                            uc.last_consumed_message_index,
                            uc.notification_level,
                        ),
                        date_updated: uc.date_created,
                    });
                }
                match got.next {
                    Some(next) if got.more => {
                        page = PageRequest {
                            size: ALL,
                            cursor: Some(next),
                        }
                    }
                    _ => break,
                }
            }
        }
        ChatObject::UserInfo(identity) => {
            let user = match store
                .fetch_user(
                    who.account,
                    who.service,
                    &UserRef::Identity(identity.clone()),
                )
                .await
            {
                Ok(u) => Some(u),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e),
            };
            let at = user
                .as_ref()
                .map_or(Timestamp::from_unix_secs(0), |u| u.date_updated);
            for (key, data) in user_info_items(identity, user.as_ref()) {
                items.push(Item {
                    key: ItemKey::Key(key),
                    data,
                    date_updated: at,
                });
            }
            if let Some((online, notifiable)) = reachability {
                items.push(Item {
                    key: ItemKey::Key("reachability".into()),
                    data: json!({ "online": online, "notifiable": notifiable }),
                    date_updated: Timestamp::now(),
                });
            }
        }
        ChatObject::Roster(c) => {
            let mut page = PageRequest::first(ALL);
            loop {
                let got = store
                    .list_members(who.account, who.service, &ch_ref(c), &[], &page)
                    .await?;
                for m in &got.items {
                    items.push(Item {
                        key: ItemKey::Key(m.sid.as_str().to_owned()),
                        data: roster_item(m),
                        date_updated: m.date_updated,
                    });
                }
                match got.next {
                    Some(next) if got.more => {
                        page = PageRequest {
                            size: ALL,
                            cursor: Some(next),
                        }
                    }
                    _ => break,
                }
            }
        }
        ChatObject::Channel(_) | ChatObject::Messages(_) => {}
    }
    items.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(items)
}

/// Member SIDs of these identities in the channel.
async fn member_sids(
    store: &dyn Store,
    account: &AccountSid,
    service: &ServiceSid,
    c: &ChannelSid,
    identities: &[String],
) -> StoreResult<HashMap<String, String>> {
    if identities.is_empty() {
        return Ok(HashMap::new());
    }
    let page = store
        .list_members(
            account,
            service,
            &ch_ref(c),
            identities,
            &PageRequest::first(ALL),
        )
        .await?;
    Ok(page
        .items
        .into_iter()
        .map(|m| (m.identity, m.sid.as_str().to_owned()))
        .collect())
}

fn message_items(msgs: &[Message], sids: &HashMap<String, String>) -> Vec<Item> {
    msgs.iter()
        .map(|m| Item {
            key: ItemKey::Index(m.index),
            data: message_item(m, sids.get(&m.from).map(String::as_str)),
            date_updated: m.date_updated,
        })
        .collect()
}

/// One page of a messages list (keyset paging in the store, by index).
pub async fn messages_page(
    store: &dyn Store,
    who: &Reader<'_>,
    c: &ChannelSid,
    q: &PageQuery,
) -> StoreResult<ItemPage> {
    let from = match &q.from {
        Some(ItemKey::Index(i)) => Some(*i),
        Some(ItemKey::Key(k)) => k.parse::<i64>().ok(),
        None => None,
    };
    let store_order = match q.order {
        Order::Asc => MessageOrder::Asc,
        Order::Desc => MessageOrder::Desc,
    };
    // The store's cursors are exclusive; `From` is inclusive: step one index back.
    let cursor_key = from.map(|f| match (q.inclusive && !q.backwards, q.order) {
        (true, Order::Asc) => f.saturating_sub(1),
        (true, Order::Desc) => f.saturating_add(1),
        (false, _) => f,
    });
    let req = PageRequest {
        size: q.size.clamp(1, super::engine::MAX_PAGE_SIZE),
        cursor: cursor_key.map(|key| Cursor {
            key,
            sid: String::new(),
            backwards: q.backwards,
        }),
    };
    let page = store
        .list_messages(who.account, who.service, &ch_ref(c), store_order, &req)
        .await?;
    let mut authors: Vec<String> = page.items.iter().map(|m| m.from.clone()).collect();
    authors.sort();
    authors.dedup();
    let sids = member_sids(store, who.account, who.service, c, &authors).await?;
    let items = message_items(&page.items, &sids);
    let neighbour = |item: Option<&Item>, backwards: bool| {
        item.map(|i| PageQuery {
            object: q.object.clone(),
            from: Some(i.key.clone()),
            inclusive: false,
            order: q.order,
            size: q.size,
            backwards,
        })
    };
    // `prev` exactly: is there any message before the first one (in this order)?
    let has_prev = match (q.backwards, items.first()) {
        (true, _) => page.more,
        (false, None) => false,
        (false, Some(first)) => {
            let ItemKey::Index(i) = first.key else {
                return Err(StoreError::Other(anyhow::anyhow!("list key")));
            };
            let probe = PageRequest {
                size: 1,
                cursor: Some(Cursor {
                    key: i,
                    sid: String::new(),
                    backwards: true,
                }),
            };
            !store
                .list_messages(who.account, who.service, &ch_ref(c), store_order, &probe)
                .await?
                .items
                .is_empty()
        }
    };
    let has_next = if q.backwards {
        !items.is_empty()
    } else {
        page.more
    };
    Ok(ItemPage {
        next: neighbour(items.last(), false).filter(|_| has_next),
        prev: neighbour(items.first(), true).filter(|_| has_prev),
        items,
    })
}

// ---------------------------------------------------------------------------------------------
// Projection of change-log events.

fn ev(e: &Event, obj: ChatObject, change: Change) -> Routed {
    Routed::To(SyncEvent {
        kind: obj.kind(),
        name: obj.name(),
        id: e.seq,
        date_created: e.date_created,
        change,
    })
}

/// What a projection needs beyond the event itself, read from the store by [`enrich`].
#[derive(Clone, Debug, Default)]
pub struct Enrichment {
    /// The event's channel as it is now (`None`: gone, or not needed).
    pub channel: Option<Channel>,
    /// When that channel's last message was posted.
    pub last_message_at: Option<Timestamp>,
    /// The member SID of a message event's author, if the author is a member.
    pub author_member: Option<String>,
    /// `(online, notifiable)` of the user of a `user_updated` event whose `changed` has
    /// `is_online` (an online edge), read when projecting: the latest state, so subscribers
    /// converge on it even when edges follow each other quickly. `None`: reachability off.
    pub reachability: Option<(bool, bool)>,
}

/// Read what [`project_with`] needs for `e`: the current channel for message and member
/// events (a channel's type is not in member events; the document after a message needs the
/// channel), the last message's time, the author's member SID.
pub async fn enrich(store: &dyn Store, e: &Event) -> StoreResult<Enrichment> {
    let mut all = enrich_all(store, &[e]).await?;
    Ok(all.pop().unwrap_or_default())
}

/// Reads shared by the events of one batch: each is of the store as it is now, so one read per
/// channel serves every event of the batch.
#[derive(Default)]
struct BatchReads {
    channels: HashMap<ChannelSid, Option<Channel>>,
    last_message_at: HashMap<ChannelSid, Option<Timestamp>>,
    /// Member SIDs by identity, per channel, of every message author in the batch.
    authors: HashMap<ChannelSid, HashMap<String, String>>,
}

fn needs_channel(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::NewMessage
            | EventKind::MessageRemoved
            | EventKind::AddedToChannel
            | EventKind::MemberUpdated
            | EventKind::InvitedToChannel
            | EventKind::RemovedFromChannel
    )
}

/// [`enrich`] for a batch of events (in order): the same result as one call per event, with one
/// channel read, one last-message read and one author lookup per channel of the batch instead
/// of per event (the live tail reads up to 500 events at a time).
pub async fn enrich_all(store: &dyn Store, events: &[&Event]) -> StoreResult<Vec<Enrichment>> {
    let mut reads = BatchReads::default();
    // Every author of the batch, per channel, looked up at once.
    let mut authors: HashMap<&ChannelSid, (&Event, Vec<String>)> = HashMap::new();
    for &e in events {
        if let (Some(Resource::Message(m)), EventKind::NewMessage | EventKind::MessageUpdated) =
            (&e.state, e.kind)
        {
            let (_, who) = authors.entry(&m.channel_sid).or_insert((e, Vec::new()));
            if !who.contains(&m.from) {
                who.push(m.from.clone());
            }
        }
    }
    for (channel, (e, who)) in authors {
        let sids = member_sids(store, &e.account_sid, &e.service_sid, channel, &who).await?;
        reads.authors.insert(channel.clone(), sids);
    }
    let mut out = Vec::with_capacity(events.len());
    for &e in events {
        out.push(enrich_one(store, e, &mut reads).await?);
    }
    Ok(out)
}

async fn enrich_one(
    store: &dyn Store,
    e: &Event,
    reads: &mut BatchReads,
) -> StoreResult<Enrichment> {
    let mut en = Enrichment::default();
    if let (true, Some(c)) = (needs_channel(e.kind), &e.channel_sid) {
        en.channel = match reads.channels.get(c) {
            Some(known) => known.clone(),
            None => {
                let read = match store
                    .fetch_channel(&e.account_sid, &e.service_sid, &ch_ref(c))
                    .await
                {
                    Ok(c) => Some(c),
                    Err(StoreError::NotFound) => None,
                    Err(err) => return Err(err),
                };
                reads.channels.insert(c.clone(), read.clone());
                read
            }
        };
    }
    let last_of = |c: &Channel, reads: &BatchReads| reads.last_message_at.get(&c.sid).copied();
    match (&e.state, &en.channel) {
        (Some(Resource::Message(m)), Some(c))
            if e.kind == EventKind::NewMessage && c.last_message_index == Some(m.index) =>
        {
            en.last_message_at = Some(m.date_created);
        }
        (Some(Resource::Message(_)), Some(c)) => {
            en.last_message_at = match last_of(c, reads) {
                Some(at) => at,
                None => {
                    let at = last_message_at(store, c).await?;
                    reads.last_message_at.insert(c.sid.clone(), at);
                    at
                }
            };
        }
        (Some(Resource::Channel(c)), _) if e.kind == EventKind::ChannelUpdated => {
            en.last_message_at = last_message_at(store, c).await?;
        }
        _ => {}
    }
    if let (Some(Resource::Message(m)), EventKind::NewMessage | EventKind::MessageUpdated) =
        (&e.state, e.kind)
    {
        en.author_member = reads
            .authors
            .get(&m.channel_sid)
            .and_then(|sids| sids.get(&m.from))
            .cloned();
    }
    if let (EventKind::UserUpdated, Some(Resource::User(u))) = (e.kind, &e.state) {
        if e.changed.iter().any(|f| f == "is_online") {
            en.reachability = match store
                .fetch_user_view(&e.account_sid, &e.service_sid, &UserRef::Sid(u.sid.clone()))
                .await
            {
                Ok(v) => v.bindings_count.map(|n| (v.online.unwrap_or(false), n > 0)),
                Err(StoreError::NotFound) => None,
                Err(err) => return Err(err),
            };
        }
    }
    Ok(en)
}

/// The Sync events of one change-log event ([`enrich`] then [`project_with`]).
pub async fn project(store: &dyn Store, e: &Event) -> StoreResult<Vec<Routed>> {
    if e.state.is_none() {
        return Ok(Vec::new());
    }
    let en = enrich(store, e).await?;
    Ok(project_with(e, &en))
}

fn doc_update(e: &Event, en: &Enrichment) -> Option<Routed> {
    en.channel.as_ref().map(|c| {
        ev(
            e,
            ChatObject::Channel(c.sid.clone()),
            Change::DocumentUpdated(channel_doc(c, en.last_message_at)),
        )
    })
}

fn member_channel_item(m: &Member, ty: ChannelType) -> Value {
    user_channel_item(
        &m.channel_sid,
        UserChannelStatus::Joined,
        ty,
        m.last_consumed_message_index,
        m.notification_level,
    )
}

fn invite_channel_item(i: &Invite, ty: ChannelType) -> Value {
    user_channel_item(
        &i.channel_sid,
        UserChannelStatus::Invited,
        ty,
        None,
        NotificationLevel::Default,
    )
}

/// The Sync events of one change-log event, in order, given its [`Enrichment`]. Which
/// objects an event concerns:
/// * messages list: `new_message` (added), `message_updated` (updated), `message_removed`
///   (removed), `channel_removed` (list removed);
/// * channel document: `new_message` and `message_removed` (its `lastMessage`),
///   `channel_updated` (the whole document), `channel_removed`;
/// * roster: `added_to_channel`, `member_updated`, `removed_from_channel`, `channel_removed`;
/// * the member's (invitee's) channels map: `added_to_channel`, `invited_to_channel`,
///   `member_updated`, `removed_from_channel`, `invite_removed`; `channel_removed` removes the
///   channel from every key-tracking map holding it (the log does not name the members);
/// * the user's info map: `user_added`, `user_updated` (the changed items).
///
/// A channel gone by the time of projection yields no document or channels-map event (its
/// `channel_removed` follows).
pub fn project_with(e: &Event, en: &Enrichment) -> Vec<Routed> {
    let Some(state) = &e.state else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match (e.kind, state) {
        (EventKind::NewMessage | EventKind::MessageUpdated, Resource::Message(m)) => {
            let data = message_item(m, en.author_member.as_deref());
            let key = ItemKey::Index(m.index);
            let change = if e.kind == EventKind::NewMessage {
                Change::ItemAdded(key, data)
            } else {
                Change::ItemUpdated(key, data)
            };
            out.push(ev(e, ChatObject::Messages(m.channel_sid.clone()), change));
            if e.kind == EventKind::NewMessage {
                out.extend(doc_update(e, en));
            }
        }
        (EventKind::MessageRemoved, Resource::Message(m)) => {
            out.push(ev(
                e,
                ChatObject::Messages(m.channel_sid.clone()),
                Change::ItemRemoved(ItemKey::Index(m.index), Some(message_item(m, None))),
            ));
            out.extend(doc_update(e, en));
        }
        (EventKind::ChannelUpdated, Resource::Channel(c)) => {
            out.push(ev(
                e,
                ChatObject::Channel(c.sid.clone()),
                Change::DocumentUpdated(channel_doc(c, en.last_message_at)),
            ));
        }
        (EventKind::ChannelRemoved, Resource::Channel(c)) => {
            out.push(ev(e, ChatObject::Channel(c.sid.clone()), Change::Removed));
            out.push(ev(e, ChatObject::Messages(c.sid.clone()), Change::Removed));
            out.push(ev(e, ChatObject::Roster(c.sid.clone()), Change::Removed));
            let key = ItemKey::Key(c.sid.as_str().to_owned());
            match &e.channel_identities {
                // Schema v8: the event names the members and invitees.
                Some(identities) => {
                    for identity in identities {
                        out.push(ev(
                            e,
                            ChatObject::UserChannels(identity.clone()),
                            Change::ItemRemoved(key.clone(), None),
                        ));
                    }
                }
                // Older events: every key-tracking channels map holding the channel.
                None => out.push(Routed::RemoveKeyFromHolders {
                    id: e.seq,
                    date_created: e.date_created,
                    key: c.sid.as_str().to_owned(),
                }),
            }
        }
        (EventKind::AddedToChannel | EventKind::MemberUpdated, Resource::Member(m)) => {
            let key = ItemKey::Key(m.sid.as_str().to_owned());
            let added = e.kind == EventKind::AddedToChannel;
            let roster = if added {
                Change::ItemAdded(key, roster_item(m))
            } else {
                Change::ItemUpdated(key, roster_item(m))
            };
            out.push(ev(e, ChatObject::Roster(m.channel_sid.clone()), roster));
            if let Some(c) = &en.channel {
                let key = ItemKey::Key(m.channel_sid.as_str().to_owned());
                let data = member_channel_item(m, c.channel_type);
                let change = if added {
                    Change::ItemAdded(key, data)
                } else {
                    Change::ItemUpdated(key, data)
                };
                out.push(ev(e, ChatObject::UserChannels(m.identity.clone()), change));
            }
        }
        (EventKind::RemovedFromChannel, Resource::Member(m)) => {
            out.push(ev(
                e,
                ChatObject::Roster(m.channel_sid.clone()),
                Change::ItemRemoved(
                    ItemKey::Key(m.sid.as_str().to_owned()),
                    Some(roster_item(m)),
                ),
            ));
            out.push(ev(
                e,
                ChatObject::UserChannels(m.identity.clone()),
                Change::ItemRemoved(ItemKey::Key(m.channel_sid.as_str().to_owned()), None),
            ));
            // A private channel's objects are no longer the former member's to read.
            if en
                .channel
                .as_ref()
                .is_some_and(|c| c.channel_type == ChannelType::Private)
            {
                let c = &m.channel_sid;
                out.push(Routed::Revoke {
                    identity: m.identity.clone(),
                    objects: [
                        ChatObject::Channel(c.clone()),
                        ChatObject::Messages(c.clone()),
                        ChatObject::Roster(c.clone()),
                    ]
                    .iter()
                    .map(|o| (o.kind(), o.name()))
                    .collect(),
                });
            }
        }
        (EventKind::InvitedToChannel, Resource::Invite(i)) => {
            if let Some(c) = &en.channel {
                out.push(ev(
                    e,
                    ChatObject::UserChannels(i.identity.clone()),
                    Change::ItemAdded(
                        ItemKey::Key(i.channel_sid.as_str().to_owned()),
                        invite_channel_item(i, c.channel_type),
                    ),
                ));
            }
        }
        (EventKind::InviteRemoved, Resource::Invite(i)) => {
            out.push(ev(
                e,
                ChatObject::UserChannels(i.identity.clone()),
                Change::ItemRemoved(ItemKey::Key(i.channel_sid.as_str().to_owned()), None),
            ));
        }
        (EventKind::UserAdded | EventKind::UserUpdated, Resource::User(u)) => {
            for (key, data) in user_info_items(&u.identity, Some(u)) {
                let wanted = e.kind == EventKind::UserAdded
                    || e.changed.is_empty()
                    || e.changed.iter().any(|f| {
                        (key == "friendlyName" && f == "friendly_name")
                            || (key == "attributes" && f == "attributes")
                    });
                if wanted {
                    out.push(ev(
                        e,
                        ChatObject::UserInfo(u.identity.clone()),
                        Change::ItemUpdated(ItemKey::Key(key), data),
                    ));
                }
            }
            if let Some((online, notifiable)) = en.reachability {
                out.push(ev(
                    e,
                    ChatObject::UserInfo(u.identity.clone()),
                    Change::ItemUpdated(
                        ItemKey::Key("reachability".into()),
                        json!({ "online": online, "notifiable": notifiable }),
                    ),
                ));
            }
        }
        _ => {}
    }
    out
}

/// The channel SIDs in a user's channels map now (the keys a key-tracking subscription starts
/// with).
pub fn keys_of(items: &[Item]) -> HashSet<String> {
    items
        .iter()
        .filter_map(|i| match &i.key {
            ItemKey::Key(k) => Some(k.clone()),
            ItemKey::Index(_) => None,
        })
        .collect()
}

/// Whether a change-log event can concern any of `objs` (a cheap filter before [`project`],
/// which may read the store).
pub fn may_concern(e: &Event, objs: &[&ChatObject]) -> bool {
    objs.iter().any(|o| match o {
        ChatObject::Channel(c) | ChatObject::Messages(c) | ChatObject::Roster(c) => {
            e.channel_sid.as_ref() == Some(c)
        }
        ChatObject::UserChannels(i) => match (e.kind, &e.channel_identities) {
            (EventKind::ChannelRemoved, Some(ids)) => ids.iter().any(|x| x == i),
            (EventKind::ChannelRemoved, None) => true,
            _ => e.identity.as_deref() == Some(i.as_str()),
        },
        ChatObject::UserInfo(i) => {
            matches!(e.kind, EventKind::UserAdded | EventKind::UserUpdated)
                && e.identity.as_deref() == Some(i.as_str())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_core::event::Source;
    use parley_core::{MemberSid, MessageSid, UserSid};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_secs(1_700_000_000 + s)
    }

    fn event(
        kind: EventKind,
        seq: i64,
        ch: Option<&ChannelSid>,
        identity: Option<&str>,
        state: Resource,
    ) -> Event {
        Event {
            id: seq,
            seq,
            kind,
            account_sid: AccountSid::generate(),
            service_sid: ServiceSid::generate(),
            channel_sid: ch.cloned(),
            channel_unique_name: None,
            channel_friendly_name: None,
            message_sid: None,
            message_index: None,
            body: None,
            member_sid: None,
            invite_sid: None,
            identity: identity.map(str::to_owned),
            actor: None,
            source: Source::Api,
            webhooks: false,
            state: Some(state),
            changed: vec![],
            channel_webhooks: vec![],
            channel_identities: None,
            date_created: t(seq),
        }
    }

    fn channel(sid: &ChannelSid, ty: ChannelType) -> Channel {
        Channel {
            sid: sid.clone(),
            account_sid: AccountSid::generate(),
            service_sid: ServiceSid::generate(),
            friendly_name: Some("general".into()),
            unique_name: None,
            attributes: Some(r#"{"topic":"x"}"#.into()),
            channel_type: ty,
            created_by: Some("system".into()),
            members_count: 1,
            messages_count: 1,
            last_message_sid: None,
            last_message_index: Some(7),
            date_created: t(0),
            date_updated: t(1),
        }
    }

    fn member(ch: &ChannelSid, identity: &str) -> Member {
        Member {
            sid: MemberSid::generate(),
            account_sid: AccountSid::generate(),
            service_sid: ServiceSid::generate(),
            channel_sid: ch.clone(),
            user_sid: UserSid::generate(),
            identity: identity.into(),
            role_sid: None,
            last_consumed_message_index: Some(3),
            last_consumption_timestamp: Some(t(2)),
            attributes: None,
            notification_level: NotificationLevel::Muted,
            date_created: t(0),
            date_updated: t(2),
        }
    }

    fn targets(out: &[Routed]) -> Vec<(String, String)> {
        out.iter()
            .map(|r| match r {
                Routed::To(e) => (
                    e.name.clone(),
                    e.payload(&super::super::engine::SyncUrls::new("http://x"))["event_type"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                ),
                Routed::RemoveKeyFromHolders { key, .. } => ("*".into(), format!("remove {key}")),
                Routed::Revoke { identity, objects } => {
                    (identity.clone(), format!("revoke {}", objects.len()))
                }
            })
            .collect()
    }

    #[test]
    fn a_new_message_adds_a_list_item_and_updates_the_channel_document() {
        let ch = ChannelSid::generate();
        let m = Message {
            sid: MessageSid::generate(),
            account_sid: AccountSid::generate(),
            service_sid: ServiceSid::generate(),
            channel_sid: ch.clone(),
            index: 7,
            from: "alice".into(),
            body: Some("hi".into()),
            attributes: None,
            last_updated_by: None,
            was_edited: false,
            date_created: t(5),
            date_updated: t(5),
        };
        let e = event(
            EventKind::NewMessage,
            42,
            Some(&ch),
            None,
            Resource::Message(m.clone()),
        );
        let en = Enrichment {
            channel: Some(channel(&ch, ChannelType::Public)),
            last_message_at: Some(m.date_created),
            author_member: Some("MB1".into()),
            reachability: None,
        };
        let out = project_with(&e, &en);
        assert_eq!(
            targets(&out),
            [
                (format!("{ch}.messages"), "list_item_added".into()),
                (format!("{ch}.channel"), "document_updated".into()),
            ]
        );
        let Routed::To(list) = &out[0] else {
            panic!("list event")
        };
        assert_eq!(list.id, 42);
        let Change::ItemAdded(ItemKey::Index(7), data) = &list.change else {
            panic!("{list:?}")
        };
        assert_eq!(data["text"], "hi");
        assert_eq!(data["author"], "alice");
        assert_eq!(data["memberSid"], "MB1");
        assert_eq!(data["attributes"], "{}");
        assert_eq!(data["timestamp"], iso(t(5)));
        let Routed::To(doc) = &out[1] else {
            panic!("doc event")
        };
        let Change::DocumentUpdated(d) = &doc.change else {
            panic!("{doc:?}")
        };
        assert_eq!(d["lastMessage"]["index"], 7);
        assert_eq!(d["lastMessage"]["timestamp"], iso(t(5)));
        assert_eq!(d["attributes"]["topic"], "x", "an object, not a string");
        // The channel gone meanwhile: the list event only.
        let out = project_with(&e, &Enrichment::default());
        assert_eq!(targets(&out).len(), 1);
    }

    #[test]
    fn member_events_reach_the_roster_and_the_members_channels_map() {
        let ch = ChannelSid::generate();
        let m = member(&ch, "bob");
        let en = Enrichment {
            channel: Some(channel(&ch, ChannelType::Private)),
            ..Enrichment::default()
        };
        let joined = project_with(
            &event(
                EventKind::AddedToChannel,
                5,
                Some(&ch),
                Some("bob"),
                Resource::Member(m.clone()),
            ),
            &en,
        );
        assert_eq!(
            targets(&joined),
            [
                (format!("{ch}.roster"), "map_item_added".into()),
                (names::user_channels_map("bob"), "map_item_added".into()),
            ]
        );
        let Routed::To(map) = &joined[1] else {
            panic!()
        };
        let Change::ItemAdded(ItemKey::Key(k), data) = &map.change else {
            panic!()
        };
        assert_eq!(k, ch.as_str());
        assert_eq!(data["status"], "joined");
        assert_eq!(data["type"], "private");
        assert_eq!(data["lastConsumedMessageIndex"], 3);
        assert_eq!(data["notificationLevel"], "muted");
        assert_eq!(data["channel"], format!("{ch}.channel"));
        let left = project_with(
            &event(
                EventKind::RemovedFromChannel,
                6,
                Some(&ch),
                Some("bob"),
                Resource::Member(m),
            ),
            &Enrichment::default(),
        );
        assert_eq!(
            targets(&left),
            [
                (format!("{ch}.roster"), "map_item_removed".into()),
                (names::user_channels_map("bob"), "map_item_removed".into()),
            ]
        );
    }

    #[test]
    fn a_destroyed_channel_removes_its_objects_and_its_key_from_holders() {
        let ch = ChannelSid::generate();
        let e = event(
            EventKind::ChannelRemoved,
            9,
            Some(&ch),
            None,
            Resource::Channel(channel(&ch, ChannelType::Public)),
        );
        assert_eq!(
            targets(&project_with(&e, &Enrichment::default())),
            [
                (format!("{ch}.channel"), "document_removed".into()),
                (format!("{ch}.messages"), "list_removed".into()),
                (format!("{ch}.roster"), "map_removed".into()),
                ("*".into(), format!("remove {ch}")),
            ],
            "an event from before schema v8: every map holding the channel"
        );
        let objs = [ChatObject::UserChannels("zed".into())];
        let refs: Vec<&ChatObject> = objs.iter().collect();
        assert!(may_concern(&e, &refs));
        // Schema v8: the members and invitees are named.
        let mut named = e.clone();
        named.channel_identities = Some(vec!["amy".into(), "bob".into()]);
        assert_eq!(
            targets(&project_with(&named, &Enrichment::default()))[3..],
            [
                (names::user_channels_map("amy"), "map_item_removed".into()),
                (names::user_channels_map("bob"), "map_item_removed".into()),
            ]
        );
        assert!(!may_concern(&named, &refs), "zed was not in it");
        let other = [ChatObject::Roster(ChannelSid::generate())];
        let refs: Vec<&ChatObject> = other.iter().collect();
        assert!(!may_concern(&e, &refs));
    }

    #[test]
    fn a_user_update_updates_only_the_changed_info_items() {
        let u = User {
            sid: UserSid::generate(),
            account_sid: AccountSid::generate(),
            service_sid: ServiceSid::generate(),
            identity: "alice".into(),
            friendly_name: Some("Alice".into()),
            attributes: Some(r#"{"a":1}"#.into()),
            role_sid: None,
            date_created: t(0),
            date_updated: t(1),
        };
        let mut e = event(
            EventKind::UserUpdated,
            3,
            None,
            Some("alice"),
            Resource::User(u),
        );
        e.changed = vec!["friendly_name".into()];
        let out = project_with(&e, &Enrichment::default());
        assert_eq!(
            targets(&out),
            [(names::user_info_map("alice"), "map_item_updated".into())]
        );
        let Routed::To(ev) = &out[0] else { panic!() };
        assert_eq!(
            ev.change,
            Change::ItemUpdated(
                ItemKey::Key("friendlyName".into()),
                json!({ "value": "Alice" })
            )
        );
    }

    #[test]
    fn object_names_parse_back_to_their_objects() {
        let ch = ChannelSid::generate();
        for obj in [
            ChatObject::UserChannels("alice@example.com / ü".into()),
            ChatObject::UserInfo("bob".into()),
            ChatObject::Channel(ch.clone()),
            ChatObject::Messages(ch.clone()),
            ChatObject::Roster(ch.clone()),
        ] {
            assert_eq!(ChatObject::parse(&obj.name()), Some(obj.clone()), "{obj:?}");
        }
        assert_eq!(ChatObject::Messages(ch.clone()).kind(), ObjectKind::List);
        assert_eq!(ChatObject::Channel(ch.clone()).kind(), ObjectKind::Document);
        assert_eq!(ChatObject::Roster(ch).kind(), ObjectKind::Map);
        for bad in [
            "",
            "user.",
            "user.!!.channels",
            "user.YQ.other",
            "CH1.channel",
            "x.messages",
        ] {
            assert_eq!(ChatObject::parse(bad), None, "{bad}");
        }
    }
}
