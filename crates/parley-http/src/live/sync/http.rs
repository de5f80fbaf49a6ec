//! The Sync endpoints the chat SDK calls inside its socket (sdk-transport.md §3): object
//! descriptors, items (paged with opaque tokens that carry the whole query), and batched
//! subscriptions whose outcomes arrive later as `twilio.sync.event` notifications.
//!
//! Read consistency: every read takes the service's last change-log seq S *before* the data
//! and reports it as `last_event_id` and `revision` of the object and of each item. A change
//! not in the data has a seq > S and reaches a subscriber by replay or live (at least once;
//! twilio-sync drops what its cache already has at that id or later).

use std::collections::{HashMap, HashSet};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parley_core::channel::Channel;
use parley_core::store::StoreError;
use parley_core::user::UserRef;
use parley_core::ServiceSid;
use serde::Deserialize;
use serde_json::{json, Value};

use super::chat::{self, ChatObject, Reader, Refusal};
use super::engine::{
    decode_page_token, encode_page_token, item_json, name_of, parse_object_sid, Descriptor,
    ItemKey, ItemPage, ObjectKind, Order, PageQuery, SyncUrls, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE,
    SYNC_EVENT,
};
use super::subscriptions::{outcome, Routed};
use crate::error::ApiError;
use crate::live::{Client, ClientContext};
use crate::params::Query;
use crate::AppState;

/// Routes of the Sync API (`/v3/Maps`, `/v3/Lists`, `/v3/Documents`, `/v4/Subscriptions`).
pub fn routes() -> axum::Router<AppState> {
    Router::new()
        .route("/v3/Maps/{name}", get(get_map))
        .route("/v3/Maps/{name}/Items", get(map_items))
        .route("/v3/Maps/{name}/Items/{key}", get(map_item))
        .route("/v3/Lists/{name}", get(get_list))
        .route("/v3/Lists/{name}/Items", get(list_items))
        .route("/v3/Lists/{name}/Items/{index}", get(list_item))
        .route("/v3/Documents/{name}", get(get_document))
        .route("/v4/Subscriptions", post(subscriptions))
}

/// The Sync URLs of this server.
pub fn sync_urls(state: &AppState) -> SyncUrls {
    SyncUrls::new(&state.urls.abs(""))
}

fn reader(ctx: &ClientContext) -> Reader<'_> {
    Reader {
        account: &ctx.identity.account_sid,
        service: &ctx.identity.service_sid,
        identity: &ctx.identity.identity,
    }
}

fn refusal(r: Refusal) -> ApiError {
    match r {
        Refusal::NotFound => ApiError::not_found(),
        Refusal::Forbidden => ApiError::new(
            StatusCode::FORBIDDEN,
            20403,
            "Forbidden: a user's channels map is readable by that user only",
        ),
        Refusal::Store(e) => ApiError::internal(e),
    }
}

/// An opened object: what it is, its channel (channel objects), and S.
struct Opened {
    obj: ChatObject,
    name: String,
    channel: Option<Channel>,
    seq: i64,
}

async fn open(
    state: &AppState,
    ctx: &ClientContext,
    kind: ObjectKind,
    raw: &str,
) -> Result<Opened, ApiError> {
    let name = name_of(kind, raw);
    let obj = ChatObject::parse(&name)
        .filter(|o| o.kind() == kind)
        .ok_or_else(ApiError::not_found)?;
    // S first, then the data.
    let seq = state
        .store
        .last_seq(&ctx.identity.service_sid)
        .await
        .map_err(ApiError::internal)?;
    let channel = chat::check_access(state.store.as_ref(), &reader(ctx), &obj)
        .await
        .map_err(refusal)?;
    Ok(Opened {
        obj,
        name,
        channel,
        seq,
    })
}

/// `{online, notifiable}` of a user when the service has reachability on: online = a live
/// connection on any node (the shared presence); notifiable = the user has a push binding.
async fn reachability(
    state: &AppState,
    ctx: &ClientContext,
    obj: &ChatObject,
) -> Result<Option<(bool, bool)>, ApiError> {
    let ChatObject::UserInfo(identity) = obj else {
        return Ok(None);
    };
    let who = reader(ctx);
    let service = state
        .store
        .fetch_service(who.account, who.service)
        .await
        .map_err(ApiError::from)?;
    if !service.settings.reachability_enabled {
        return Ok(None);
    }
    let key = parley_core::store::PresenceKey {
        account: who.account.clone(),
        service: who.service.clone(),
        identity: identity.clone(),
    };
    let online = state
        .store
        .is_online(&key, parley_core::Timestamp::now())
        .await
        .map_err(ApiError::internal)?;
    let notifiable = match state
        .store
        .fetch_user(
            who.account,
            who.service,
            &UserRef::Identity(identity.clone()),
        )
        .await
    {
        Ok(u) => {
            state
                .store
                .count_user_bindings(who.account, who.service, &u.sid)
                .await
                .map_err(ApiError::internal)?
                > 0
        }
        Err(StoreError::NotFound) => false,
        Err(e) => return Err(ApiError::internal(e)),
    };
    Ok(Some((online, notifiable)))
}

async fn all_map_items(
    state: &AppState,
    ctx: &ClientContext,
    o: &Opened,
) -> Result<Vec<super::engine::Item>, ApiError> {
    let reach = reachability(state, ctx, &o.obj).await?;
    chat::map_items(state.store.as_ref(), &reader(ctx), &o.obj, reach)
        .await
        .map_err(ApiError::internal)
}

async fn get_map(
    State(state): State<AppState>,
    Client(ctx): Client,
    Path(name): Path<String>,
    Query(q): Query,
) -> Result<Response, ApiError> {
    let o = open(&state, &ctx, ObjectKind::Map, &name).await?;
    let urls = sync_urls(&state);
    let include = q
        .get("Include")
        .is_some_and(|v| v.eq_ignore_ascii_case("items"));
    let items = all_map_items(&state, &ctx, &o).await?;
    let date_updated = items
        .iter()
        .map(|i| i.date_updated)
        .max()
        .unwrap_or(parley_core::Timestamp::from_unix_secs(0));
    let mut body = Descriptor {
        kind: ObjectKind::Map,
        name: &o.name,
        seq: o.seq,
        date_updated,
        data: None,
    }
    .to_json(&urls);
    if include {
        let page: Vec<Value> = items
            .iter()
            .take(MAX_PAGE_SIZE as usize)
            .map(|i| item_json(&urls, ObjectKind::Map, &o.name, o.seq, i))
            .collect();
        if let Some(b) = body.as_object_mut() {
            b.insert("items".into(), Value::Array(page));
        }
    }
    Ok(Json(body).into_response())
}

async fn get_list(
    State(state): State<AppState>,
    Client(ctx): Client,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let o = open(&state, &ctx, ObjectKind::List, &name).await?;
    let date_updated = o
        .channel
        .as_ref()
        .map_or(parley_core::Timestamp::from_unix_secs(0), |c| {
            c.date_updated
        });
    let body = Descriptor {
        kind: ObjectKind::List,
        name: &o.name,
        seq: o.seq,
        date_updated,
        data: None,
    }
    .to_json(&sync_urls(&state));
    Ok(Json(body).into_response())
}

async fn get_document(
    State(state): State<AppState>,
    Client(ctx): Client,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let o = open(&state, &ctx, ObjectKind::Document, &name).await?;
    let channel = o.channel.as_ref().ok_or_else(ApiError::not_found)?;
    let (data, date_updated) = chat::document(state.store.as_ref(), channel)
        .await
        .map_err(ApiError::internal)?;
    let body = Descriptor {
        kind: ObjectKind::Document,
        name: &o.name,
        seq: o.seq,
        date_updated,
        data: Some(data),
    }
    .to_json(&sync_urls(&state));
    Ok(Json(body).into_response())
}

/// The query of an items request: from `PageToken` alone, or from `From`/`Order`/`PageSize`.
fn items_query(
    state: &AppState,
    q: &crate::params::Params,
    sid: &str,
    kind: ObjectKind,
) -> Result<PageQuery, ApiError> {
    if let Some(token) = q.get("PageToken").filter(|t| !t.is_empty()) {
        return decode_page_token(token, &state.secrets)
            .filter(|pq| pq.object == sid)
            .ok_or_else(|| ApiError::invalid_param("PageToken", "Invalid PageToken"));
    }
    let order = match q.get("Order").map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("asc") => Order::Asc,
        Some("desc") => Order::Desc,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "Order",
                "Order must be asc or desc",
            ))
        }
    };
    let size = match q.int("PageSize")? {
        None => DEFAULT_PAGE_SIZE,
        Some(n) if n >= 1 => {
            u32::try_from(n.min(i64::from(MAX_PAGE_SIZE))).unwrap_or(MAX_PAGE_SIZE)
        }
        Some(_) => {
            return Err(ApiError::invalid_param(
                "PageSize",
                "PageSize must be at least 1",
            ))
        }
    };
    let from = match q.get("From").filter(|f| !f.is_empty()) {
        None => None,
        Some(f) if kind == ObjectKind::List => {
            Some(ItemKey::Index(f.parse::<i64>().map_err(|_| {
                ApiError::invalid_param("From", "From must be an item index")
            })?))
        }
        Some(f) => Some(ItemKey::Key(f.to_owned())),
    };
    Ok(PageQuery {
        object: sid.to_owned(),
        from,
        inclusive: true,
        order,
        size,
        backwards: false,
    })
}

fn page_body(
    state: &AppState,
    urls: &SyncUrls,
    kind: ObjectKind,
    name: &str,
    seq: i64,
    page: &ItemPage,
) -> Value {
    let sid = super::engine::object_sid(kind, name);
    let base = urls.items(kind, &sid);
    let token = |q: &Option<PageQuery>| q.as_ref().map(|q| encode_page_token(q, &state.secrets));
    let (prev, next) = (token(&page.prev), token(&page.next));
    let url = |t: &Option<String>| t.as_ref().map(|t| format!("{base}?PageToken={t}"));
    json!({
        "items": page.items.iter().map(|i| item_json(urls, kind, name, seq, i)).collect::<Vec<_>>(),
        "meta": {
            "previous_token": prev,
            "next_token": next,
            "previous_url": url(&prev),
            "next_url": url(&next),
        },
    })
}

async fn map_items(
    State(state): State<AppState>,
    Client(ctx): Client,
    Path(name): Path<String>,
    Query(q): Query,
) -> Result<Response, ApiError> {
    let o = open(&state, &ctx, ObjectKind::Map, &name).await?;
    let urls = sync_urls(&state);
    let items = all_map_items(&state, &ctx, &o).await?;
    let page = if let Some(key) = q.get("Key").filter(|k| !k.is_empty()) {
        ItemPage {
            items: items
                .into_iter()
                .filter(|i| i.key == ItemKey::Key(key.to_owned()))
                .collect(),
            next: None,
            prev: None,
        }
    } else {
        let sid = super::engine::object_sid(ObjectKind::Map, &o.name);
        let pq = items_query(&state, &q, &sid, ObjectKind::Map)?;
        super::engine::page_sorted(&items, &pq)
    };
    Ok(Json(page_body(
        &state,
        &urls,
        ObjectKind::Map,
        &o.name,
        o.seq,
        &page,
    ))
    .into_response())
}

async fn map_item(
    State(state): State<AppState>,
    Client(ctx): Client,
    Path((name, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let o = open(&state, &ctx, ObjectKind::Map, &name).await?;
    let items = all_map_items(&state, &ctx, &o).await?;
    let item = items
        .iter()
        .find(|i| i.key == ItemKey::Key(key.clone()))
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(item_json(
        &sync_urls(&state),
        ObjectKind::Map,
        &o.name,
        o.seq,
        item,
    ))
    .into_response())
}

fn messages_of(o: &Opened) -> Result<&parley_core::ChannelSid, ApiError> {
    match &o.obj {
        ChatObject::Messages(c) => Ok(c),
        _ => Err(ApiError::not_found()),
    }
}

async fn list_items(
    State(state): State<AppState>,
    Client(ctx): Client,
    Path(name): Path<String>,
    Query(q): Query,
) -> Result<Response, ApiError> {
    let o = open(&state, &ctx, ObjectKind::List, &name).await?;
    let ch = messages_of(&o)?;
    let urls = sync_urls(&state);
    let sid = super::engine::object_sid(ObjectKind::List, &o.name);
    let page = if let Some(index) = q.get("Index").filter(|k| !k.is_empty()) {
        let index: i64 = index
            .parse()
            .map_err(|_| ApiError::invalid_param("Index", "Index must be an integer"))?;
        let pq = PageQuery {
            object: sid,
            from: Some(ItemKey::Index(index)),
            inclusive: true,
            order: Order::Asc,
            size: 1,
            backwards: false,
        };
        let mut p = chat::messages_page(state.store.as_ref(), &reader(&ctx), ch, &pq)
            .await
            .map_err(ApiError::internal)?;
        p.items.retain(|i| i.key == ItemKey::Index(index));
        ItemPage {
            items: p.items,
            next: None,
            prev: None,
        }
    } else {
        let pq = items_query(&state, &q, &sid, ObjectKind::List)?;
        chat::messages_page(state.store.as_ref(), &reader(&ctx), ch, &pq)
            .await
            .map_err(ApiError::internal)?
    };
    Ok(Json(page_body(
        &state,
        &urls,
        ObjectKind::List,
        &o.name,
        o.seq,
        &page,
    ))
    .into_response())
}

async fn list_item(
    State(state): State<AppState>,
    Client(ctx): Client,
    Path((name, index)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let o = open(&state, &ctx, ObjectKind::List, &name).await?;
    let ch = messages_of(&o)?;
    let index: i64 = index.parse().map_err(|_| ApiError::not_found())?;
    let pq = PageQuery {
        object: super::engine::object_sid(ObjectKind::List, &o.name),
        from: Some(ItemKey::Index(index)),
        inclusive: true,
        order: Order::Asc,
        size: 1,
        backwards: false,
    };
    let p = chat::messages_page(state.store.as_ref(), &reader(&ctx), ch, &pq)
        .await
        .map_err(ApiError::internal)?;
    let item = p
        .items
        .iter()
        .find(|i| i.key == ItemKey::Index(index))
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(item_json(
        &sync_urls(&state),
        ObjectKind::List,
        &o.name,
        o.seq,
        item,
    ))
    .into_response())
}

// ---------------------------------------------------------------------------------------------
// Subscriptions.

#[derive(Deserialize)]
struct SubscriptionBatch {
    action: String,
    #[serde(default)]
    correlation_id: Value,
    #[serde(default)]
    requests: Vec<SubscriptionRequest>,
}

#[derive(Deserialize, Clone)]
struct SubscriptionRequest {
    object_sid: String,
    #[serde(default)]
    object_type: Option<String>,
    #[serde(default)]
    last_event_id: Option<i64>,
}

/// Largest batch accepted (and announced as `max_batch_size`).
const MAX_BATCH: usize = 100;
/// Events read per log page during a replay.
const REPLAY_PAGE: u32 = 500;
/// A replay longer than this (in change-log events of the service) is not attempted: it is
/// answered as if the log were trimmed (a client that far behind is better served by reading
/// the objects again).
pub const MAX_REPLAY_EVENTS: i64 = 10_000;
/// Free queue slots a replay waits for before sending each event's projection (a few Sync
/// events; see `Hub::room`), and before completing (the live events buffered meanwhile).
const REPLAY_ROOM: usize = 8;
/// How long a replay waits for its client to read before sending anyway (then, if the queue is
/// still full, the client is cut off as a slow consumer).
const REPLAY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

async fn subscriptions(
    State(state): State<AppState>,
    Client(ctx): Client,
    body: Bytes,
) -> Result<Response, ApiError> {
    let batch: SubscriptionBatch = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            20001,
            format!("Invalid subscription request: {e}"),
        )
    })?;
    if batch.requests.len() > MAX_BATCH {
        return Err(ApiError::invalid_param(
            "requests",
            format!("At most {MAX_BATCH} requests per batch"),
        ));
    }
    match batch.action.as_str() {
        "establish" => {
            let st = state.clone();
            tokio::spawn(async move {
                establish(&st, &ctx, &batch.correlation_id, batch.requests).await;
            });
        }
        "cancel" => {
            let service = &ctx.identity.service_sid;
            for r in &batch.requests {
                state.sync.cancel(service, &r.object_sid, ctx.conn);
                let kind = parse_object_sid(&r.object_sid).map_or(ObjectKind::Map, |(k, _)| k);
                state.live.notify(
                    ctx.conn,
                    SYNC_EVENT,
                    outcome(
                        "subscription_canceled",
                        &batch.correlation_id,
                        kind,
                        &r.object_sid,
                        json!({}),
                    ),
                );
            }
        }
        _ => {
            return Err(ApiError::invalid_param(
                "action",
                "action must be establish or cancel",
            ))
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "estimated_delivery_in_ms": 5000,
            "max_batch_size": MAX_BATCH,
            "ttl_in_s": -1,
        })),
    )
        .into_response())
}

fn fail(
    state: &AppState,
    ctx: &ClientContext,
    corr: &Value,
    kind: ObjectKind,
    sid: &str,
    (status, code, message): (u16, u32, &str),
) {
    state.live.notify(
        ctx.conn,
        SYNC_EVENT,
        outcome(
            "subscription_failed",
            corr,
            kind,
            sid,
            json!({ "error": { "message": message, "status": status, "code": code } }),
        ),
    );
}

struct Accepted {
    obj: ChatObject,
    kind: ObjectKind,
    name: String,
    from: i64,
}

/// Establish a batch: check each object, start its subscription in replay mode, replay the
/// log after the lowest `last_event_id` once for the whole batch, then complete each
/// (`subscription_established`, `completed`).
async fn establish(
    state: &AppState,
    ctx: &ClientContext,
    corr: &Value,
    requests: Vec<SubscriptionRequest>,
) {
    if let Err(e) = establish_inner(state, ctx, corr, &requests).await {
        tracing::warn!(error = %e, "subscription replay failed");
        for r in &requests {
            let kind = parse_object_sid(&r.object_sid).map_or(ObjectKind::Map, |(k, _)| k);
            if !state
                .sync
                .is_subscribed(&ctx.identity.service_sid, &r.object_sid, ctx.conn)
            {
                continue;
            }
            state
                .sync
                .cancel(&ctx.identity.service_sid, &r.object_sid, ctx.conn);
            fail(
                state,
                ctx,
                corr,
                kind,
                &r.object_sid,
                (500, 20500, "An internal server error has occurred"),
            );
        }
    }
}

async fn establish_inner(
    state: &AppState,
    ctx: &ClientContext,
    corr: &Value,
    requests: &[SubscriptionRequest],
) -> Result<(), StoreError> {
    let service: &ServiceSid = &ctx.identity.service_sid;
    let store = state.store.as_ref();
    let who = reader(ctx);
    let urls = sync_urls(state);
    let now = store.last_seq(service).await?;
    let oldest = store
        .list_events(service, 0, 1)
        .await?
        .first()
        .map_or(now + 1, |e| e.seq);
    let mut accepted: Vec<Accepted> = Vec::new();
    for r in requests {
        let parsed = parse_object_sid(&r.object_sid).filter(|(k, _)| {
            r.object_type
                .as_deref()
                .is_none_or(|t| ObjectKind::parse(t) == Some(*k))
        });
        let Some((kind, name)) = parsed else {
            let kind = r
                .object_type
                .as_deref()
                .and_then(ObjectKind::parse)
                .unwrap_or(ObjectKind::Map);
            fail(
                state,
                ctx,
                corr,
                kind,
                &r.object_sid,
                (404, 54100, "The requested resource was not found"),
            );
            continue;
        };
        let Some(obj) = ChatObject::parse(&name).filter(|o| o.kind() == kind) else {
            fail(
                state,
                ctx,
                corr,
                kind,
                &r.object_sid,
                (404, 54100, "The requested resource was not found"),
            );
            continue;
        };
        let channel = match chat::check_access(store, &who, &obj).await {
            Ok(c) => c,
            Err(Refusal::NotFound) => {
                fail(
                    state,
                    ctx,
                    corr,
                    kind,
                    &r.object_sid,
                    (404, 54100, "The requested resource was not found"),
                );
                continue;
            }
            Err(Refusal::Forbidden) => {
                fail(
                    state,
                    ctx,
                    corr,
                    kind,
                    &r.object_sid,
                    (403, 54007, "Forbidden"),
                );
                continue;
            }
            Err(Refusal::Store(e)) => return Err(e),
        };
        // Null `last_event_id` (a session-cached map or list): from now.
        let mut from = r.last_event_id.unwrap_or(now).min(now).max(0);
        if from < now && (from + 1 < oldest || now - from > MAX_REPLAY_EVENTS) {
            // Events after `from` were trimmed: the replay would have a hole. A document is
            // whole in one event: send it as it is now (id = now) instead.
            if let (ObjectKind::Document, Some(c)) = (kind, &channel) {
                let (data, _) = chat::document(store, c).await?;
                state.sync.begin(service, kind, &name, ctx.conn, from, None);
                let current = Routed::To(super::engine::SyncEvent {
                    kind,
                    name: name.clone(),
                    id: now,
                    date_created: parley_core::Timestamp::now(),
                    change: super::engine::Change::DocumentUpdated(data),
                });
                state
                    .sync
                    .replay(service, ctx.conn, &current, &state.live, &urls);
                accepted.push(Accepted {
                    obj,
                    kind,
                    name,
                    from: now,
                });
                continue;
            }
            if !state.sync.interrupted_before(ctx.conn, &r.object_sid, from) {
                state.sync.cancel(service, &r.object_sid, ctx.conn);
                state.live.notify(
                    ctx.conn,
                    SYNC_EVENT,
                    outcome(
                        "subscription_established",
                        corr,
                        kind,
                        &r.object_sid,
                        json!({ "replay_status": "interrupted", "last_event_id": from }),
                    ),
                );
                state
                    .metrics
                    .sync_replays
                    .with_label_values(&["interrupted"])
                    .inc();
                continue;
            }
            // Asked again with the same id (twilio-sync cannot move it): serve from now.
            from = now;
        }
        let tracked = match &obj {
            ChatObject::UserChannels(_) => Some(chat::keys_of(
                &chat::map_items(store, &who, &obj, None).await?,
            )),
            _ => None,
        };
        state
            .sync
            .begin(service, kind, &name, ctx.conn, from, tracked);
        accepted.push(Accepted {
            obj,
            kind,
            name,
            from,
        });
    }
    let mut read_to = None;
    if let Some(start) = accepted.iter().map(|a| a.from).min() {
        let wanted: HashSet<String> = accepted
            .iter()
            .map(|a| super::engine::object_sid(a.kind, &a.name))
            .collect();
        let objs: Vec<&ChatObject> = accepted.iter().map(|a| &a.obj).collect();
        let mut pos = start;
        loop {
            let events = store.list_events(service, pos, REPLAY_PAGE).await?;
            let Some(last) = events.last() else { break };
            pos = last.seq;
            let concerned: Vec<_> = events
                .iter()
                .filter(|e| e.state.is_some() && chat::may_concern(e, &objs))
                .collect();
            let ens = chat::enrich_all(store, &concerned).await?;
            for (&e, en) in concerned.iter().zip(&ens) {
                // Pace the replay to the client's reading (see `Hub::room`).
                state.live.room(ctx.conn, REPLAY_ROOM, REPLAY_WAIT).await;
                for routed in chat::project_with(e, en) {
                    let mine = match &routed {
                        Routed::To(ev) => wanted.contains(&ev.sid()),
                        Routed::RemoveKeyFromHolders { .. } | Routed::Revoke { .. } => true,
                    };
                    if mine {
                        state
                            .sync
                            .replay(service, ctx.conn, &routed, &state.live, &urls);
                    }
                }
            }
            if events.len() < REPLAY_PAGE as usize {
                break;
            }
        }
        read_to = Some(pos);
    }
    let mut done: HashMap<String, i64> = HashMap::new();
    for a in &accepted {
        // Completing flushes what arrived live during the replay: leave it room.
        state.live.room(ctx.conn, usize::MAX, REPLAY_WAIT).await;
        if let Some(last) =
            state
                .sync
                .complete(service, a.kind, &a.name, ctx.conn, corr, &state.live, &urls)
        {
            done.insert(a.name.clone(), last);
            state
                .metrics
                .sync_replays
                .with_label_values(&["completed"])
                .inc();
        }
    }
    if let Some(pos) = read_to {
        // Everything after `pos` reaches these subscriptions live, through the tail.
        state.sync.request_tail_from(service, pos);
    }
    tracing::debug!(objects = done.len(), "subscriptions established");
    Ok(())
}
