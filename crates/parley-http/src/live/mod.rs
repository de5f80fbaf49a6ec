//! Live clients (ARCHITECTURE §7): the twilsock socket, the Sync engine, the chat client API.
//!
//! Three pieces, each ignorant of the ones above it:
//! * [`socket`] / [`twilsock`]: `GET /v3/wsconnect`, framing, init/update/ping/close, limits. An
//!   upstream request inside a `message` frame becomes an `http::Request` handed to
//!   [`upstream_router`], with a [`ClientContext`] extension naming the connection's identity.
//! * [`sync`]: named Sync objects (Map, List, Document), items, revisions, event ids, paging
//!   tokens, subscriptions, replay; fed by projectors of the change log (the chat one first).
//! * [`client_v1`]: the chat client REST vocabulary (`/Client/v1/...`) and the push registrar
//!   (`/v1/registrations`) as the SDK calls them over the socket.
//!
//! The [`Hub`] is the registry of this node's connections; everything that sends to a socket
//! goes through it.

pub mod client_v1;
pub mod hub;
pub mod names;
pub mod presence;
pub mod socket;
pub mod sync;
pub mod twilsock;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Router;

use crate::access_token::ChatIdentity;
use crate::error::ApiError;
use crate::AppState;

pub use hub::{ConnId, Hub, Outbound, RegisterError};
pub use socket::{ConnHold, LiveConfig};

/// Who is calling, for a request that arrived inside a socket: set by the socket as a request
/// extension on every upstream request. Handlers take it with the [`Client`] extractor.
#[derive(Clone, Debug)]
pub struct ClientContext {
    /// The connection the request came through (for subscriptions and replies).
    pub conn: ConnId,
    /// The verified token's identity (account, service, identity, endpoint).
    pub identity: ChatIdentity,
}

/// Extractor: the [`ClientContext`] of an upstream request. A request without one (it did not
/// come through a socket) is a 401 (20003).
pub struct Client(pub ClientContext);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ClientContext>()
            .cloned()
            .map(Client)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    20003,
                    "Authenticate: this endpoint is served to client connections only",
                )
            })
    }
}

/// The router for upstream requests made inside sockets, routed by path (the host label the SDK
/// puts in `http_request.host` — `aim.*`, `cds.*`, `ers.*` or the host of a link Parley handed
/// out — is not needed to pick a handler: the paths do not overlap).
pub fn upstream_router() -> Router<AppState> {
    Router::new()
        .merge(client_v1::routes())
        .merge(sync::routes())
        .fallback(crate::error::no_route)
}
