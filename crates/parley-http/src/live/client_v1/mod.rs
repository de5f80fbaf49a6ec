//! The chat client API (`/Client/v1/...`, sdk-transport.md §2) and the push registrar
//! (`/v1/registrations`) as the SDK calls them over the socket, acting as the connection's
//! identity (docs/live-clients.md, "Client API").
//!
//! A thin layer: request bodies (JSON, snake_case) are mapped to the REST parameter names and
//! checked by the REST validators; changes go through the shared [`crate::actions`] (pre-event
//! webhooks, then the store, with `Origin::client(identity)`); what is new here is the caller's
//! permissions ([`perms`]), private-channel visibility, the SDK's wire shapes ([`wire`]) and its
//! paging envelopes, typing, and `X-Twilio-Mutation-Id` ([`mutation`]).
//!
//! Paths (all handed to the SDK as absolute URLs by `Configuration`):
//! `Client/v1/Configuration`, `Client/v1/MyConversations[/{CH}]`,
//! `Client/v1/Conversations[/{CH or unique name}]`, `…/{CH}/Participants[/{MB or identity}]`,
//! `…/{CH}/Invites[/{identity}]`, `…/{CH}/Messages[/{IM}]`, `Client/v1/Users[/{identity}]`,
//! `Client/v1/Typing`.

mod channels;
mod members;
mod messages;
pub mod mutation;
mod perms;
mod push;
mod users;
mod wire;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use parley_core::event::Origin;
use parley_core::paging::{Page, PageRequest};
use parley_core::service::Service;
use parley_core::store::StoreError;
use parley_core::user::{User, UserRef};
use parley_core::Timestamp;
use serde_json::{Map, Value};

pub use mutation::MutationCache;

use crate::error::ApiError;
use crate::live::ClientContext;
use crate::params::Params;
use crate::AppState;

/// Prefix of every chat client API path.
pub const PREFIX: &str = "/Client/v1";

/// Routes of the chat client API and the socket's push registrar.
pub fn routes() -> Router<AppState> {
    let p = |rest: &str| format!("{PREFIX}{rest}");
    Router::new()
        .route(&p("/Configuration"), get(users::configuration))
        .route(&p("/MyConversations"), get(channels::my_list))
        .route(
            &p("/MyConversations/{ChannelSid}"),
            get(channels::my_fetch).post(channels::my_update),
        )
        .route(
            &p("/Conversations"),
            get(channels::directory).post(channels::create),
        )
        .route(
            &p("/Conversations/{ChannelSid}"),
            get(channels::fetch)
                .post(channels::update)
                .delete(channels::destroy),
        )
        .route(
            &p("/Conversations/{ChannelSid}/Participants"),
            post(members::add),
        )
        .route(
            &p("/Conversations/{ChannelSid}/Participants/{Sid}"),
            post(members::update).delete(members::remove),
        )
        .route(
            &p("/Conversations/{ChannelSid}/Invites"),
            post(members::invite),
        )
        .route(
            &p("/Conversations/{ChannelSid}/Invites/{Sid}"),
            axum::routing::delete(members::uninvite),
        )
        .route(
            &p("/Conversations/{ChannelSid}/Messages"),
            post(messages::send),
        )
        .route(
            &p("/Conversations/{ChannelSid}/Messages/{Sid}"),
            post(messages::update).delete(messages::remove),
        )
        .route(&p("/Users"), get(users::list))
        .route(&p("/Users/{Sid}"), get(users::fetch).post(users::update))
        .route(&p("/Typing"), post(users::typing))
        .route(
            "/v1/registrations",
            post(push::register).delete(push::unregister_address),
        )
        .route(
            "/v1/registrations/{Sid}",
            axum::routing::delete(push::unregister),
        )
        .layer(axum::middleware::from_fn(crate::error::render_errors))
        .layer(axum::middleware::from_fn(mutation::dedupe))
}

/// The caller of a client request: its connection, identity and service.
pub(crate) struct Caller {
    pub ctx: ClientContext,
    pub service: Service,
}

impl Caller {
    /// Resolve the connection's service (gone: 401 / 20106, as a token naming it would get).
    pub(crate) async fn of(app: &AppState, ctx: ClientContext) -> Result<Self, ApiError> {
        let service =
            match app
                .store
                .fetch_service(&ctx.identity.account_sid, &ctx.identity.service_sid)
                .await
            {
                Ok(s) => s,
                Err(StoreError::NotFound) => return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    20106,
                    "Invalid Access Token grants: the chat service does not exist in this account",
                )),
                Err(e) => return Err(e.into()),
            };
        Ok(Self { ctx, service })
    }

    /// The caller and the channel named by the path `segment` as the caller may see it
    /// ([`perms::see_channel`]): the start of every channel-scoped handler.
    pub(crate) async fn in_channel(
        app: &AppState,
        ctx: ClientContext,
        segment: &str,
    ) -> Result<(Self, perms::Seen), ApiError> {
        let caller = Self::of(app, ctx).await?;
        let seen = perms::see_channel(app, &caller, segment).await?;
        Ok((caller, seen))
    }

    /// The caller's identity.
    pub(crate) fn identity(&self) -> &str {
        &self.ctx.identity.identity
    }

    /// The origin of the caller's changes.
    pub(crate) fn origin(&self) -> Origin {
        Origin::client(self.identity().to_owned())
    }

    /// The caller's user row, if it has one.
    pub(crate) async fn user(&self, app: &AppState) -> Result<Option<User>, ApiError> {
        match app
            .store
            .fetch_user(
                &self.service.account_sid,
                &self.service.sid,
                &UserRef::Identity(self.identity().to_owned()),
            )
            .await
        {
            Ok(u) => Ok(Some(u)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The caller's user row, created on first use (a `user_added` event by the caller).
    pub(crate) async fn ensure_user(&self, app: &AppState) -> Result<User, ApiError> {
        if let Some(u) = self.user(app).await? {
            return Ok(u);
        }
        crate::v2::check_identity(self.identity(), "identity")?;
        let new = crate::v2::new_user(&self.service, self.identity(), Timestamp::now());
        Ok(app.store.get_or_create_user(&new, &self.origin()).await?.0)
    }
}

/// A client request body mapped to REST parameters: JSON object keys in snake_case become the
/// REST names (`friendly_name` → `FriendlyName`); strings are taken as they are, `null` becomes
/// the empty value (which clears a field, as over REST), numbers and booleans their text, and
/// objects or arrays their JSON text (attributes sent as JSON rather than as a JSON string). A
/// form body (`ChannelSid=CH…`, as typing sends) is read as it is. Empty body: no parameters.
pub(crate) struct Body(pub Params);

/// Most bytes of a client request body (attributes are at most 16 KiB; message bodies 32 KiB).
const MAX_BODY: usize = 256 * 1024;

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let is_form = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let bytes: Bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    20001,
                    "Request body too large",
                )
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Params::default()));
        }
        if is_form {
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, 20001, "Body is not UTF-8"))?;
            return Ok(Self(Params::parse(text).reject_nul()?));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                20001,
                format!("Request body is not valid JSON: {e}"),
            )
        })?;
        let Value::Object(map) = value else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                20001,
                "Request body must be a JSON object",
            ));
        };
        Ok(Self(json_params(&map).reject_nul()?))
    }
}

/// `friendly_name` → `FriendlyName`.
fn rest_name(key: &str) -> String {
    key.split('_')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

fn json_params(map: &Map<String, Value>) -> Params {
    let pairs = map
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => other.to_string(),
            };
            (rest_name(k), text)
        })
        .collect();
    Params::from_pairs(pairs)
}

/// A client list page: `{<key>: [...], meta: {next_token, previous_token, prev_token}}` with
/// opaque tokens bound to `scope` (the list and everything that selects it, e.g. the caller's
/// identity or a channel), so a token carries the whole query.
pub(crate) fn list_page<T>(
    app: &AppState,
    key: &str,
    scope: &str,
    page: &Page<T>,
    items: Vec<Value>,
) -> Value {
    let next = page
        .next
        .as_ref()
        .map(|c| crate::paging::encode_token(c, scope, &app.secrets));
    let prev = page
        .prev
        .as_ref()
        .map(|c| crate::paging::encode_token(c, scope, &app.secrets));
    let mut out = Map::new();
    out.insert(key.to_owned(), Value::Array(items));
    out.insert(
        "meta".to_owned(),
        serde_json::json!({
            "next_token": next,
            "previous_token": prev,
            // The users list is read with this spelling (data/userdescriptors.ts).
            "prev_token": prev,
        }),
    );
    Value::Object(out)
}

/// The page a client list request asks for: `PageToken` (made by [`list_page`] for `scope`;
/// anything else is a 400) and `PageSize` (default `default_size`, at most 100).
pub(crate) fn page_request(
    app: &AppState,
    q: &Params,
    scope: &str,
    default_size: u32,
) -> Result<PageRequest, ApiError> {
    let size = match q.int("PageSize")? {
        None => default_size,
        Some(n) if n < 1 => {
            return Err(ApiError::invalid_param(
                "PageSize",
                "PageSize must be at least 1",
            ))
        }
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX).min(100),
    };
    let cursor = match q.get("PageToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(
            crate::paging::decode_token(t, scope, &app.secrets).ok_or_else(|| {
                ApiError::invalid_param(
                    "PageToken",
                    "Invalid PageToken: it was not issued for this list",
                )
            })?,
        ),
    };
    Ok(PageRequest { size, cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_become_rest_names_and_values_text() {
        let v: Value = serde_json::json!({
            "friendly_name": "Hi",
            "last_consumed_message_index": 3,
            "unique_name": null,
            "attributes": {"a": 1},
            "type": "private",
        });
        let Value::Object(map) = v else {
            unreachable!()
        };
        let p = json_params(&map);
        assert_eq!(p.get("FriendlyName"), Some("Hi"));
        assert_eq!(p.get("LastConsumedMessageIndex"), Some("3"));
        assert_eq!(p.get("UniqueName"), Some(""));
        assert_eq!(p.get("Attributes"), Some("{\"a\":1}"));
        assert_eq!(p.get("Type"), Some("private"));
    }

    #[test]
    fn route_table_builds() {
        let _ = routes();
    }
}
