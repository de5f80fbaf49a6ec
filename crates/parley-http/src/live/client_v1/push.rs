//! The push registrar as the SDK calls it over the socket (`@twilio/notifications`
//! `RegistrarConnector`): the same registration as the HTTPS door
//! ([`crate::registrations`]), acting as the connection's identity instead of an
//! `X-Twilio-Token`.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use crate::error::ApiError;
use crate::live::Client;
use crate::params::Query;
use crate::registrations::{check_product, register_as, unregister_address_as, unregister_as};
use crate::v2::Segments;
use crate::AppState;
use axum::extract::State;

/// `POST /v1/registrations?productId=ip_messaging` {channel_type, message_types, data:
/// {registration_id}} ⇒ `{id, …}` (201 new binding, 200 refreshed).
pub(super) async fn register(
    State(app): State<AppState>,
    Client(ctx): Client,
    Query(q): Query,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_product(&q)?;
    register_as(&app, &ctx.identity, &body).await
}

/// `DELETE /v1/registrations/{id}?productId=ip_messaging`.
pub(super) async fn unregister(
    State(app): State<AppState>,
    Client(ctx): Client,
    seg: Segments,
    Query(q): Query,
) -> Result<StatusCode, ApiError> {
    check_product(&q)?;
    unregister_as(&app, &ctx.identity, seg.get(0)?).await
}

/// `DELETE /v1/registrations?productId=ip_messaging` {binding_type, address}.
pub(super) async fn unregister_address(
    State(app): State<AppState>,
    Client(ctx): Client,
    Query(q): Query,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    check_product(&q)?;
    unregister_address_as(&app, &ctx.identity, &body).await
}
