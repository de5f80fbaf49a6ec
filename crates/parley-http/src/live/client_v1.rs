//! The chat client API (`/Client/v1/...`, sdk-transport.md §2) and the push registrar as the SDK
//! calls them over the socket. (Skeleton: filled in by the chat-client-API work.)

use axum::Router;

use crate::AppState;

/// Routes of the chat client API.
pub fn routes() -> Router<AppState> {
    Router::new()
}
