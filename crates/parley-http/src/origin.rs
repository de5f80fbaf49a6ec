//! [`ApiOrigin`]: the [`Origin`] of a change made through the REST API, recorded on its
//! change-log event. Webhooks fire for a REST change only when the request says
//! `X-Twilio-Webhook-Enabled: true` (webhooks.md §7); any other value or none means no.
//! (A value other than `true`/`false` never gets here: [`crate::ops::webhook_header`] refuses
//! it with 400.)

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use parley_core::event::Origin;

/// The request header that turns webhooks on for a REST change.
pub const WEBHOOK_ENABLED_HEADER: &str = "x-twilio-webhook-enabled";

/// Extractor: the [`Origin`] of a REST change (`Origin::api(header == "true")`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiOrigin(pub Origin);

impl ApiOrigin {
    /// The origin a request with these headers gets.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let webhooks = headers
            .get(WEBHOOK_ENABLED_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Self(Origin::api(webhooks))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiOrigin {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(Self::from_headers(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn origin_of(value: Option<&'static str>) -> Origin {
        let mut headers = HeaderMap::new();
        if let Some(v) = value {
            headers.insert(WEBHOOK_ENABLED_HEADER, HeaderValue::from_static(v));
        }
        ApiOrigin::from_headers(&headers).0
    }

    #[test]
    fn only_true_in_any_case_turns_webhooks_on() {
        assert_eq!(origin_of(Some("true")), Origin::api(true));
        assert_eq!(origin_of(Some("TRUE")), Origin::api(true));
        assert_eq!(origin_of(Some("True")), Origin::api(true));
        assert_eq!(origin_of(Some("false")), Origin::api(false));
        assert_eq!(origin_of(Some("yes")), Origin::api(false));
        assert_eq!(origin_of(None), Origin::rest());
    }
}
