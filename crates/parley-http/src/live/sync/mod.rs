//! Sync (sdk-transport.md §3): Maps, Lists and Documents the chat SDK reads, their items and
//! pages, subscriptions with replay, and live events.
//!
//! * [`engine`]: vocabulary-free objects, SIDs, items, page tokens, event wire forms.
//! * [`subscriptions`]: this node's subscriptions, replay-then-live ordering.
//! * [`chat`]: the chat projector (objects computed from the chat tables; change-log events
//!   turned into Sync events).
//! * [`http`]: the endpoints, served inside the socket.
//! * [`tail`]: the per-node change-log tail that feeds live events.

pub mod chat;
pub mod engine;
mod http;
pub mod subscriptions;
pub mod tail;

pub use http::routes;
pub use subscriptions::Registry;
