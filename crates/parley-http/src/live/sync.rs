//! The Sync engine (sdk-transport.md §3): Maps, Lists, Documents, items, subscriptions, replay.
//! (Skeleton: filled in by the Sync work.)

use axum::Router;

use crate::AppState;

/// Routes of the Sync API (`/v3/Maps`, `/v3/Lists`, `/v3/Documents`, `/v4/Subscriptions`).
pub fn routes() -> Router<AppState> {
    Router::new()
}
