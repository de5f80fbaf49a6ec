//! Parley domain: typed SIDs, resources, paging cursors, secret sealing and the storage contract.
//!
//! This crate knows nothing about HTTP or SQL. Wire names, URLs and date formatting live in
//! `parley-http`; SQL lives in the store crates.

pub mod account;
pub mod binding;
pub mod channel;
pub mod channel_webhook;
pub mod credential;
pub mod crypto;
pub mod event;
pub mod log;
pub mod paging;
pub mod push;
pub mod role;
pub mod service;
pub mod sid;
pub mod signal;
pub mod store;
pub mod time;
pub mod user;
pub mod webhook_call;

pub use sid::*;
pub use time::Timestamp;
