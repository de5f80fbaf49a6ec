//! Who is subscribed to what, on this node: object → connections, with each subscription's
//! progress (the last event id sent to it). A subscription first *replays* (events after the
//! client's `last_event_id`, sent as strictly ordered `twilio.sync.event`); live events that
//! arrive meanwhile are buffered and flushed at the end of the replay, so an object's live
//! events never overtake its replay. After `completed`, events go out live (`com.twilio.rtd.cds.*`)
//! when their id is past the last one sent: duplicates from the replay/live overlap are dropped.
//!
//! Vocabulary-free: objects are (service, SID); a projector decides what an event concerns.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use parley_core::{ServiceSid, Timestamp};
use serde_json::{json, Value};

use super::engine::{object_sid, Change, ItemKey, ObjectKind, SyncEvent, SyncUrls, SYNC_EVENT};
use crate::live::{ConnId, Hub};

/// Where a projected event goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Routed {
    /// To the subscribers of the event's object.
    To(SyncEvent),
    /// `map_item_removed` of `key` in every key-tracking map (see [`Registry::begin`]) that holds
    /// it: for removals whose holders the log does not name (a destroyed channel's members).
    RemoveKeyFromHolders {
        /// Event id.
        id: i64,
        /// When.
        date_created: Timestamp,
        /// The key.
        key: String,
    },
    /// End the subscriptions of `identity`'s connections to these objects (after the events
    /// before it): it may no longer read them (it left a private channel).
    Revoke {
        /// Whose connections.
        identity: String,
        /// The objects (kind, name).
        objects: Vec<(ObjectKind, String)>,
    },
}

struct Sub {
    kind: ObjectKind,
    name: String,
    replaying: bool,
    buffer: Vec<SyncEvent>,
    last_sent: i64,
    /// For key-tracking maps: the keys the object holds.
    tracked: Option<HashSet<String>>,
}

impl Sub {
    fn track(&mut self, change: &Change) {
        if let Some(keys) = &mut self.tracked {
            match change {
                Change::ItemAdded(ItemKey::Key(k), _) | Change::ItemUpdated(ItemKey::Key(k), _) => {
                    keys.insert(k.clone());
                }
                Change::ItemRemoved(ItemKey::Key(k), _) => {
                    keys.remove(k);
                }
                _ => {}
            }
        }
    }
}

type ObjKey = (ServiceSid, String);

#[derive(Default)]
struct Inner {
    objects: HashMap<ObjKey, HashMap<ConnId, Sub>>,
    by_conn: HashMap<ConnId, HashSet<ObjKey>>,
    /// (conn, object sid, last_event_id) already answered `interrupted`.
    interrupted: HashSet<(ConnId, String, i64)>,
    /// Per service, the lowest seq a finished replay read up to, not yet taken by the tail.
    tail_from: HashMap<ServiceSid, i64>,
}

impl Inner {
    fn forget(&mut self, conn: ConnId) {
        if let Some(objs) = self.by_conn.remove(&conn) {
            for o in objs {
                if let Some(subs) = self.objects.get_mut(&o) {
                    subs.remove(&conn);
                    if subs.is_empty() {
                        self.objects.remove(&o);
                    }
                }
            }
        }
        self.interrupted.retain(|(c, _, _)| *c != conn);
    }
}

/// The subscription outcome payloads (`twilio.sync.event`).
pub fn outcome(
    event_type: &str,
    correlation_id: &Value,
    kind: ObjectKind,
    sid: &str,
    extra: Value,
) -> Value {
    let mut event = json!({ "object_sid": sid, "object_type": kind.as_str() });
    if let (Some(e), Some(x)) = (event.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            e.insert(k.clone(), v.clone());
        }
    }
    json!({ "event_type": event_type, "correlation_id": correlation_id, "event": event })
}

/// This node's subscriptions.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
    /// Wakes the change-log tail when a replay asked it to go back ([`Self::request_tail_from`]).
    tail_wake: tokio::sync::Notify,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent: a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start (or restart) `conn`'s subscription to an object in replay mode, from `from` (the
    /// client's last event id). `tracked`: the keys the map holds now, for maps that must get
    /// [`Routed::RemoveKeyFromHolders`] removals.
    pub fn begin(
        &self,
        service: &ServiceSid,
        kind: ObjectKind,
        name: &str,
        conn: ConnId,
        from: i64,
        tracked: Option<HashSet<String>>,
    ) {
        let key = (service.clone(), object_sid(kind, name));
        let mut inner = self.lock();
        inner.by_conn.entry(conn).or_default().insert(key.clone());
        inner.objects.entry(key).or_default().insert(
            conn,
            Sub {
                kind,
                name: name.to_owned(),
                replaying: true,
                buffer: Vec::new(),
                last_sent: from,
                tracked,
            },
        );
    }

    /// Send one replayed event to `conn` (if it is past what it has).
    pub fn replay(
        &self,
        service: &ServiceSid,
        conn: ConnId,
        routed: &Routed,
        hub: &Hub,
        urls: &SyncUrls,
    ) {
        if let Routed::Revoke { identity, objects } = routed {
            if hub.connections_of(service, identity).contains(&conn) {
                for (kind, name) in objects {
                    self.cancel(service, &object_sid(*kind, name), conn);
                }
            }
            return;
        }
        let mut inner = self.lock();
        let mut gone = false;
        for (ev, key) in resolve(&inner, service, routed, Some(conn)) {
            let Some(sub) = inner
                .objects
                .get_mut(&key)
                .and_then(|subs| subs.get_mut(&conn))
            else {
                continue;
            };
            sub.track(&ev.change);
            if ev.id > sub.last_sent {
                sub.last_sent = ev.id;
                if !hub.notify(conn, SYNC_EVENT, ev.payload(urls)) {
                    gone = true;
                }
            }
        }
        if gone {
            inner.forget(conn);
        }
    }

    /// End `conn`'s replay of an object: flush what arrived live meanwhile (in order, past the
    /// last id sent) and answer `subscription_established` (`completed`) with the last id.
    /// Returns that id (`None`: the subscription is gone).
    #[allow(clippy::too_many_arguments)] // the object's address, the connection, the outcome's id and the senders
    pub fn complete(
        &self,
        service: &ServiceSid,
        kind: ObjectKind,
        name: &str,
        conn: ConnId,
        correlation_id: &Value,
        hub: &Hub,
        urls: &SyncUrls,
    ) -> Option<i64> {
        let sid = object_sid(kind, name);
        let key = (service.clone(), sid.clone());
        let mut inner = self.lock();
        let sub = inner.objects.get_mut(&key)?.get_mut(&conn)?;
        let mut ok = true;
        for ev in std::mem::take(&mut sub.buffer) {
            if ev.id > sub.last_sent {
                sub.last_sent = ev.id;
                ok &= hub.notify(conn, SYNC_EVENT, ev.payload(urls));
            }
        }
        sub.replaying = false;
        let last = sub.last_sent;
        ok &= hub.notify(
            conn,
            SYNC_EVENT,
            outcome(
                "subscription_established",
                correlation_id,
                kind,
                &sid,
                json!({ "replay_status": "completed", "last_event_id": last }),
            ),
        );
        if !ok {
            inner.forget(conn);
            return None;
        }
        Some(last)
    }

    /// Whether `conn` was already told `interrupted` for this object and `last_event_id`; records
    /// it otherwise. (twilio-sync re-establishes with the same id after `interrupted`: the second
    /// time it is served `completed` from the current position instead of looping.)
    pub fn interrupted_before(&self, conn: ConnId, sid: &str, last_event_id: i64) -> bool {
        !self
            .lock()
            .interrupted
            .insert((conn, sid.to_owned(), last_event_id))
    }

    /// Remove `conn`'s subscription to an object (`action: cancel`).
    pub fn cancel(&self, service: &ServiceSid, sid: &str, conn: ConnId) {
        let key = (service.clone(), sid.to_owned());
        let mut inner = self.lock();
        if let Some(subs) = inner.objects.get_mut(&key) {
            subs.remove(&conn);
            if subs.is_empty() {
                inner.objects.remove(&key);
            }
        }
        if let Some(objs) = inner.by_conn.get_mut(&conn) {
            objs.remove(&key);
        }
    }

    /// Ask the change-log tail to deliver the service's events after `seq` (again): a replay
    /// read the log up to `seq`, and the tail may have started following the service later (it
    /// starts at the end of the log). Redelivered events are dropped per subscription by id.
    pub fn request_tail_from(&self, service: &ServiceSid, seq: i64) {
        let mut inner = self.lock();
        let at = inner.tail_from.entry(service.clone()).or_insert(seq);
        *at = (*at).min(seq);
        drop(inner);
        self.tail_wake.notify_one();
    }

    /// Resolves after [`Self::request_tail_from`] was called (at once if it was called since the
    /// last wait).
    pub async fn tail_requested(&self) {
        self.tail_wake.notified().await;
    }

    /// The tail takes the lowest position requested for `service` since it last asked.
    pub fn take_tail_request(&self, service: &ServiceSid) -> Option<i64> {
        self.lock().tail_from.remove(service)
    }

    /// Forget every subscription of `conn` (it closed).
    pub fn forget(&self, conn: ConnId) {
        self.lock().forget(conn);
    }

    /// Forget the subscriptions of connections that are not in `alive`.
    pub fn sweep(&self, alive: &HashSet<ConnId>) {
        let mut inner = self.lock();
        let dead: Vec<ConnId> = inner
            .by_conn
            .keys()
            .filter(|c| !alive.contains(c))
            .copied()
            .collect();
        for c in dead {
            inner.forget(c);
        }
    }

    /// Whether anything in `service` is subscribed on this node.
    pub fn has_service(&self, service: &ServiceSid) -> bool {
        self.lock().objects.keys().any(|(s, _)| s == service)
    }

    /// Whether `conn` is subscribed to the object (replaying or live).
    pub fn is_subscribed(&self, service: &ServiceSid, sid: &str, conn: ConnId) -> bool {
        self.lock()
            .objects
            .get(&(service.clone(), sid.to_owned()))
            .is_some_and(|subs| subs.contains_key(&conn))
    }

    /// How many subscriptions exist (all connections).
    pub fn len(&self) -> usize {
        self.lock().objects.values().map(HashMap::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deliver a live event to every subscriber: sent at once when its replay is done and the
    /// id is new to it, buffered while it replays.
    pub fn deliver(&self, service: &ServiceSid, routed: &Routed, hub: &Hub, urls: &SyncUrls) {
        if let Routed::Revoke { identity, objects } = routed {
            for conn in hub.connections_of(service, identity) {
                for (kind, name) in objects {
                    self.cancel(service, &object_sid(*kind, name), conn);
                }
            }
            return;
        }
        let mut inner = self.lock();
        let mut gone = Vec::new();
        for (ev, key) in resolve(&inner, service, routed, None) {
            let Some(subs) = inner.objects.get_mut(&key) else {
                continue;
            };
            // The same payload for every subscriber of the object: built once.
            let mut payload: Option<Value> = None;
            for (conn, sub) in subs.iter_mut() {
                sub.track(&ev.change);
                if sub.replaying {
                    sub.buffer.push(ev.clone());
                } else if ev.id > sub.last_sent {
                    sub.last_sent = ev.id;
                    let p = payload.get_or_insert_with(|| ev.payload(urls)).clone();
                    if !hub.notify(*conn, ev.kind.live_message_type(), p) {
                        gone.push(*conn);
                    }
                }
            }
        }
        for c in gone {
            inner.forget(c);
        }
    }
}

/// The concrete events (with their object keys) a routed event becomes, optionally only for
/// the subscriptions of `conn`.
fn resolve(
    inner: &Inner,
    service: &ServiceSid,
    routed: &Routed,
    conn: Option<ConnId>,
) -> Vec<(SyncEvent, ObjKey)> {
    match routed {
        Routed::To(ev) => vec![(ev.clone(), (service.clone(), ev.sid()))],
        Routed::RemoveKeyFromHolders {
            id,
            date_created,
            key,
        } => {
            let mut out = Vec::new();
            for ((svc, sid), subs) in &inner.objects {
                if svc != service {
                    continue;
                }
                let holder = subs.iter().find(|(c, s)| {
                    conn.is_none_or(|want| want == **c)
                        && s.kind == ObjectKind::Map
                        && s.tracked.as_ref().is_some_and(|t| t.contains(key))
                });
                if let Some((_, s)) = holder {
                    out.push((
                        SyncEvent {
                            kind: ObjectKind::Map,
                            name: s.name.clone(),
                            id: *id,
                            date_created: *date_created,
                            change: Change::ItemRemoved(ItemKey::Key(key.clone()), None),
                        },
                        (svc.clone(), sid.clone()),
                    ));
                }
            }
            out
        }
        Routed::Revoke { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::{mpsc, Notify};

    use crate::live::Outbound;

    fn conn(hub: &Hub, service: &ServiceSid) -> (ConnId, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(100);
        let id = hub.register(service.clone(), "alice".into(), tx, Arc::new(Notify::new()));
        (id, rx)
    }

    fn added(name: &str, id: i64, key: &str) -> SyncEvent {
        SyncEvent {
            kind: ObjectKind::Map,
            name: name.into(),
            id,
            date_created: Timestamp::from_unix_secs(0),
            change: Change::ItemAdded(ItemKey::Key(key.into()), json!({})),
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Outbound>) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        while let Ok(Outbound::Notification {
            message_type,
            payload,
        }) = rx.try_recv()
        {
            out.push((message_type, payload));
        }
        out
    }

    #[test]
    fn live_events_wait_for_the_replay_and_duplicates_are_dropped() {
        let hub = Hub::default();
        let reg = Registry::default();
        let urls = SyncUrls::new("http://x");
        let svc = ServiceSid::generate();
        let (c, mut rx) = conn(&hub, &svc);
        reg.begin(&svc, ObjectKind::Map, "m", c, 10, None);
        // A live event arrives during the replay: buffered.
        reg.deliver(&svc, &Routed::To(added("m", 12, "b")), &hub, &urls);
        assert!(drain(&mut rx).is_empty());
        // The replay sends 11 and 12 (12 also came live).
        reg.replay(&svc, c, &Routed::To(added("m", 11, "a")), &hub, &urls);
        reg.replay(&svc, c, &Routed::To(added("m", 12, "b")), &hub, &urls);
        let last = reg.complete(&svc, ObjectKind::Map, "m", c, &json!(7), &hub, &urls);
        assert_eq!(last, Some(12));
        reg.deliver(&svc, &Routed::To(added("m", 12, "b")), &hub, &urls);
        reg.deliver(&svc, &Routed::To(added("m", 13, "c")), &hub, &urls);
        let got = drain(&mut rx);
        let summary: Vec<(String, Value)> = got
            .iter()
            .map(|(t, p)| (t.clone(), p["event"]["id"].clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (SYNC_EVENT.to_owned(), json!(11)),
                (SYNC_EVENT.to_owned(), json!(12)),
                (SYNC_EVENT.to_owned(), Value::Null),
                ("com.twilio.rtd.cds.map".to_owned(), json!(13)),
            ]
        );
        assert_eq!(got[2].1["event_type"], "subscription_established");
        assert_eq!(got[2].1["correlation_id"], 7);
        assert_eq!(got[2].1["event"]["replay_status"], "completed");
        assert_eq!(got[2].1["event"]["last_event_id"], 12);
    }

    #[test]
    fn key_removals_reach_only_the_maps_holding_the_key_and_cancel_stops_events() {
        let hub = Hub::default();
        let reg = Registry::default();
        let urls = SyncUrls::new("http://x");
        let svc = ServiceSid::generate();
        let (a, mut rx_a) = conn(&hub, &svc);
        let (b, mut rx_b) = conn(&hub, &svc);
        reg.begin(
            &svc,
            ObjectKind::Map,
            "ma",
            a,
            0,
            Some(HashSet::from(["CH1".into()])),
        );
        reg.begin(&svc, ObjectKind::Map, "mb", b, 0, Some(HashSet::new()));
        reg.complete(&svc, ObjectKind::Map, "ma", a, &json!(1), &hub, &urls);
        reg.complete(&svc, ObjectKind::Map, "mb", b, &json!(1), &hub, &urls);
        drain(&mut rx_a);
        drain(&mut rx_b);
        // b's map gains CH2 live; then both channels are destroyed.
        reg.deliver(&svc, &Routed::To(added("mb", 5, "CH2")), &hub, &urls);
        for (id, key) in [(6, "CH1"), (7, "CH2"), (8, "CH3")] {
            let r = Routed::RemoveKeyFromHolders {
                id,
                date_created: Timestamp::from_unix_secs(0),
                key: key.into(),
            };
            reg.deliver(&svc, &r, &hub, &urls);
        }
        let a_got = drain(&mut rx_a);
        let b_got = drain(&mut rx_b);
        assert_eq!(a_got.len(), 1);
        assert_eq!(a_got[0].1["event_type"], "map_item_removed");
        assert_eq!(a_got[0].1["event"]["item_key"], "CH1");
        assert_eq!(a_got[0].1["event"]["map_unique_name"], "ma");
        let b_keys: Vec<&Value> = b_got.iter().map(|(_, p)| &p["event"]["item_key"]).collect();
        assert_eq!(b_keys, [&json!("CH2"), &json!("CH2")]);
        // Cancel: nothing more.
        reg.cancel(&svc, &object_sid(ObjectKind::Map, "mb"), b);
        reg.deliver(&svc, &Routed::To(added("mb", 9, "CH4")), &hub, &urls);
        assert!(drain(&mut rx_b).is_empty());
        assert!(!reg.is_subscribed(&svc, &object_sid(ObjectKind::Map, "mb"), b));
        // A closed connection is forgotten on the next delivery.
        hub.unregister(a);
        reg.deliver(&svc, &Routed::To(added("ma", 10, "CH5")), &hub, &urls);
        assert!(reg.is_empty());
    }
}
