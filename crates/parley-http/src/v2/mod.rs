//! THE route table of the Chat v2 REST API, in spec order. Path parameter names are normalised
//! per position (`{ServiceSid}`, `{UserSid}`, then `{Sid}` last) because axum's router rejects
//! different names at one position (ARCHITECTURE.md, note under the route table).

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::routing::get;
use axum::Router;
use parley_core::user::UserRef;
use parley_core::{AccountSid, ServiceSid, Timestamp};

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::AppState;

mod bindings;
mod channel_webhooks;
pub(crate) mod channels;
mod credentials;
pub(crate) mod invites;
pub(crate) mod members;
pub(crate) mod messages;
mod push;
mod roles;
mod services;
mod user_bindings;
pub(crate) mod user_channels;
pub(crate) mod users;

pub(crate) use users::{check_identity, identity_filter, new_user};

/// Every Chat v2 route Parley serves.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v2/Credentials",
            get(credentials::list).post(credentials::create),
        )
        .route(
            "/v2/Credentials/{Sid}",
            get(credentials::fetch)
                .post(credentials::update)
                .delete(credentials::delete),
        )
        .route("/v2/Services", get(services::list).post(services::create))
        .route(
            "/v2/Services/{ServiceSid}",
            get(services::fetch)
                .post(services::update)
                .delete(services::delete),
        )
        .route("/v2/Services/{ServiceSid}/Bindings", get(bindings::list))
        .route(
            "/v2/Services/{ServiceSid}/Channels",
            get(channels::list).post(channels::create),
        )
        .route(
            "/v2/Services/{ServiceSid}/Channels/{ChannelSid}",
            get(channels::fetch)
                .post(channels::update)
                .delete(channels::delete),
        )
        .route(
            "/v2/Services/{ServiceSid}/Channels/{ChannelSid}/Invites",
            get(invites::list).post(invites::create),
        )
        .route(
            "/v2/Services/{ServiceSid}/Channels/{ChannelSid}/Invites/{Sid}",
            get(invites::fetch).delete(invites::delete),
        )
        .route(
            "/v2/Services/{ServiceSid}/Channels/{ChannelSid}/Members",
            get(members::list).post(members::create),
        )
        .route(
            "/v2/Services/{ServiceSid}/Channels/{ChannelSid}/Members/{Sid}",
            get(members::fetch)
                .post(members::update)
                .delete(members::delete),
        )
        .route(
            "/v2/Services/{ServiceSid}/Channels/{ChannelSid}/Messages",
            get(messages::list).post(messages::create),
        )
        .route(
            "/v2/Services/{ServiceSid}/Channels/{ChannelSid}/Messages/{Sid}",
            get(messages::fetch)
                .post(messages::update)
                .delete(messages::delete),
        )
        .route(
            "/v2/Services/{ServiceSid}/Channels/{ChannelSid}/Webhooks",
            get(channel_webhooks::list).post(channel_webhooks::create),
        )
        .route(
            "/v2/Services/{ServiceSid}/Channels/{ChannelSid}/Webhooks/{Sid}",
            get(channel_webhooks::fetch)
                .post(channel_webhooks::update)
                .delete(channel_webhooks::delete),
        )
        .route(
            "/v2/Services/{ServiceSid}/Bindings/{Sid}",
            get(bindings::fetch).delete(bindings::delete),
        )
        // Parley extensions (docs/PUSH.md).
        .route(
            "/v2/Services/{ServiceSid}/Bindings/{Sid}/Test",
            axum::routing::post(push::test),
        )
        .route("/v2/Services/{ServiceSid}/PushLog", get(push::log))
        .route(
            "/v2/Services/{ServiceSid}/Roles",
            get(roles::list).post(roles::create),
        )
        .route(
            "/v2/Services/{ServiceSid}/Roles/{Sid}",
            get(roles::fetch).post(roles::update).delete(roles::delete),
        )
        .route(
            "/v2/Services/{ServiceSid}/Users",
            get(users::list).post(users::create),
        )
        .route(
            "/v2/Services/{ServiceSid}/Users/{UserSid}",
            get(users::fetch).post(users::update).delete(users::delete),
        )
        .route(
            "/v2/Services/{ServiceSid}/Users/{UserSid}/Bindings",
            get(user_bindings::list).post(user_bindings::register),
        )
        .route(
            "/v2/Services/{ServiceSid}/Users/{UserSid}/Bindings/{Sid}",
            get(user_bindings::fetch).delete(user_bindings::delete),
        )
        .route(
            "/v2/Services/{ServiceSid}/Users/{UserSid}/Channels",
            get(user_channels::list),
        )
        .route(
            "/v2/Services/{ServiceSid}/Users/{UserSid}/Channels/{ChannelSid}",
            get(user_channels::fetch)
                .post(user_channels::update)
                .delete(user_channels::delete),
        )
}

/// Path segments as strings (already percent-decoded); bad paths answer 404, not axum's text.
pub(crate) struct Segments(pub Vec<String>);

impl<S: Send + Sync> FromRequestParts<S> for Segments {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(map) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        // NUL cannot be stored (PostgreSQL text refuses it), so no resource is named with it.
        if map.iter().any(|(_, v)| v.contains('\0')) {
            return Err(ApiError::not_found());
        }
        Ok(Self(map.into_iter().map(|(_, v)| v).collect()))
    }
}

impl Segments {
    /// Segment `i`, or 404.
    pub(crate) fn get(&self, i: usize) -> Result<&str, ApiError> {
        self.0
            .get(i)
            .map(String::as_str)
            .ok_or_else(ApiError::not_found)
    }

    /// Segment `i` as a SID of type `T`; a malformed SID is a 404 like a missing one.
    pub(crate) fn sid<T: std::str::FromStr>(&self, i: usize) -> Result<T, ApiError> {
        self.get(i)?.parse().map_err(|_| ApiError::not_found())
    }

    /// Segment `i` as a user SID or identity.
    pub(crate) fn user(&self, i: usize) -> Result<UserRef, ApiError> {
        Ok(UserRef::parse(self.get(i)?))
    }
}

/// Fetch the service named in the path for this caller (404 when it is another account's).
pub(crate) async fn service_of(
    app: &AppState,
    auth: &Authenticated,
    sid: &ServiceSid,
) -> Result<parley_core::service::Service, ApiError> {
    Ok(app.store.fetch_service(&auth.account_sid, sid).await?)
}

/// The account of the caller.
pub(crate) fn account(auth: &Authenticated) -> &AccountSid {
    &auth.account_sid
}

/// Wire date: `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn date(t: Timestamp) -> String {
    t.to_rfc3339_seconds()
}

/// A date in the wire format (`YYYY-MM-DDTHH:MM:SSZ`), serialized without an allocation.
#[derive(Clone, Copy)]
pub(crate) struct WireDate(pub Timestamp);

impl serde::Serialize for WireDate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.rfc3339_seconds_bytes() {
            Some(b) => s.serialize_str(std::str::from_utf8(&b).map_err(serde::ser::Error::custom)?),
            None => s.serialize_str(&self.0.to_rfc3339_seconds()),
        }
    }
}

/// Validate a JSON `Attributes` parameter (must parse as JSON); returns it unchanged.
pub(crate) fn attributes(params: &crate::params::Params) -> Result<Option<String>, ApiError> {
    match params.get("Attributes") {
        None => Ok(None),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(_) if text.len() <= 16 * 1024 => Ok(Some(text.to_owned())),
            Ok(_) => Err(ApiError::chat_param(
                50303,
                "Attributes",
                "Attributes too long (16 KiB at most)",
            )),
            Err(_) => Err(ApiError::chat_param(
                50304,
                "Attributes",
                "Attributes must be valid JSON",
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn route_table_builds_without_conflicts() {
        // matchit panics at build time on conflicting parameter names; building is the test.
        let _ = super::routes();
    }
}
