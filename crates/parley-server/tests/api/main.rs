//! HTTP API tests through the real router, on both backends (SQLite temp file; PostgreSQL fresh
//! schema in `TEST_DATABASE_URL`). One binary; one module per resource.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod auth_errors;
mod bindings;
mod channel_webhooks;
mod chat;
mod credentials;
mod limits;
mod ops;
mod paging;
mod push;
mod registrations;
mod roles;
mod services;
mod token;
mod users;
