//! Twilio-style errors: `{"code","message","more_info","status"}` (+ optional `details`),
//! never `type`/`title` (that switches the helper libraries to RFC 9457 parsing; twilio-notes §3c).
//!
//! Handlers return [`ApiError`]. Its `IntoResponse` stores the error in the response extensions;
//! the [`render_errors`] middleware, which sees the request URI, writes the body (20404's message
//! names the path) and logs 5xx causes.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parley_core::store::{Conflict, Limit, StoreError};
use serde_json::{json, Value};

/// Twilio code of a malformed request (an unparseable request line or header): 400.
pub const CODE_MALFORMED_REQUEST: u32 = 20001;
/// Code of a request body over the limit (413). Twilio publishes no code for it; Parley answers
/// 20001 (a bad request), as it always has for the `/v2` body limit.
pub const CODE_BODY_TOO_LARGE: u32 = 20001;
/// Code of a request URI over the limit (414): 20001, like [`CODE_BODY_TOO_LARGE`].
pub const CODE_URI_TOO_LONG: u32 = 20001;
/// Code of request headers over the limit (431): 20001, like [`CODE_BODY_TOO_LARGE`].
pub const CODE_HEADERS_TOO_LARGE: u32 = 20001;

/// An error answer in Twilio's shape.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Twilio error code.
    pub code: u32,
    /// Message; `None` for 20404, whose message is built from the request path.
    pub message: Option<Cow<'static, str>>,
    /// Optional `details` object.
    pub details: Option<Value>,
}

impl ApiError {
    /// Any status/code/message.
    pub fn new(status: StatusCode, code: u32, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            code,
            message: Some(message.into()),
            details: None,
        }
    }

    /// 404 / 20404 "The requested resource <path> was not found".
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: 20404,
            message: None,
            details: None,
        }
    }

    /// 400 / 20001 about one parameter: `details.param` names it.
    pub fn invalid_param(param: &str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: 20001,
            message: Some(message.into()),
            details: Some(json!({ "param": param })),
        }
    }

    /// 400 / 20001 "Missing required parameter X in the post body" (wording seen from Twilio).
    pub fn missing_param(param: &str) -> Self {
        Self::invalid_param(
            param,
            format!("Missing required parameter {param} in the post body"),
        )
    }

    /// 400 with a Chat code about one parameter.
    pub fn chat_param(code: u32, param: &str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: Some(message.into()),
            details: Some(json!({ "param": param })),
        }
    }

    /// 401 / 20003.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
    }

    /// 500 / 20500 with a generic message; the cause is logged here, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            "An internal server error has occurred",
        )
    }

    /// The JSON body (`path` is only used by 20404's message).
    pub fn body_json(&self, path: &str) -> Value {
        self.body(path)
    }

    fn body(&self, path: &str) -> Value {
        let message = match &self.message {
            Some(m) => m.to_string(),
            None => {
                // Twilio's paths in this message have no `/v2` prefix (twilio-notes §3c).
                let shown = path.strip_prefix("/v2").unwrap_or(path);
                format!("The requested resource {shown} was not found")
            }
        };
        let mut body = json!({
            "code": self.code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status.as_u16(),
        });
        if let (Some(details), Some(obj)) = (&self.details, body.as_object_mut()) {
            obj.insert("details".to_owned(), details.clone());
        }
        body
    }

    /// Render with a known request path.
    pub fn to_response(&self, path: &str) -> Response {
        let mut res = (self.status, axum::Json(self.body(path))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        res
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = self.status;
        res.extensions_mut().insert(self);
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(),
            StoreError::Conflict(Conflict::UserIdentityTaken) => {
                Self::new(StatusCode::CONFLICT, 50201, "User already exists")
            }
            StoreError::Conflict(Conflict::ChannelUniqueNameTaken) => Self::new(
                StatusCode::CONFLICT,
                50307,
                "Channel with provided unique name already exists",
            ),
            StoreError::Conflict(Conflict::MemberExists) => {
                Self::new(StatusCode::CONFLICT, 50404, "Member already exists")
            }
            StoreError::Conflict(Conflict::InviteExists) => Self::new(
                StatusCode::CONFLICT,
                50212,
                "User with specified Identity already invited to this Channel",
            ),
            // Counter limits: 403 with the Chat code (Chat Limits page: "rejected with 403").
            StoreError::LimitExceeded(Limit::ChannelMembers) => Self::new(
                StatusCode::FORBIDDEN,
                50403,
                "Channel member limit exceeded",
            ),
            StoreError::LimitExceeded(Limit::UserChannels) => {
                Self::new(StatusCode::FORBIDDEN, 50208, "User channel limit exceeded")
            }
            StoreError::LimitExceeded(Limit::ChannelWebhooks) => Self::new(
                StatusCode::FORBIDDEN,
                50321,
                "Too many webhooks (a channel has at most 5)",
            ),
            StoreError::Conflict(Conflict::SidTaken) => {
                Self::new(StatusCode::CONFLICT, 20409, "Resource already exists")
            }
            // Only change-log consumers hold leases; no request path does.
            StoreError::Conflict(Conflict::LeaseLost) => Self::internal("change-log lease lost"),
            StoreError::InvalidReference(what) => Self::new(
                StatusCode::BAD_REQUEST,
                20001,
                format!("Invalid reference: {what}"),
            ),
            StoreError::Other(err) => Self::internal(format!("{err:#}")),
        }
    }
}

/// Middleware: renders [`ApiError`]s left in response extensions, and gives axum's own 404/405
/// answers (no route, wrong method) Twilio bodies, keeping the `Allow` header.
pub async fn render_errors(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let res = next.run(req).await;
    if let Some(err) = res.extensions().get::<ApiError>().cloned() {
        let mut out = err.to_response(&path);
        for (k, v) in res.headers() {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                out.headers_mut().insert(k.clone(), v.clone());
            }
        }
        return out;
    }
    if res.status() == StatusCode::METHOD_NOT_ALLOWED
        && res.headers().get(header::CONTENT_TYPE).is_none()
    {
        let allow = res.headers().get(header::ALLOW).cloned();
        let mut out = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, 20004, "Method not allowed")
            .to_response(&path);
        if let Some(allow) = allow {
            out.headers_mut().insert(header::ALLOW, allow);
        }
        return out;
    }
    if (res.status().is_client_error() || res.status().is_server_error()) && !is_json(res.headers())
    {
        // A rejection made below the handlers (an extractor, a body limit, a layer): same shape.
        let status = res.status();
        let (code, message): (u32, &'static str) = match status {
            StatusCode::PAYLOAD_TOO_LARGE => (CODE_BODY_TOO_LARGE, "Request body too large"),
            StatusCode::URI_TOO_LONG => (CODE_URI_TOO_LONG, "Request URI too long"),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                (CODE_HEADERS_TOO_LARGE, "Request header fields too large")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (20415, "Unsupported media type"),
            StatusCode::NOT_FOUND => return ApiError::not_found().to_response(&path),
            s if s.is_server_error() => (20500, "An internal server error has occurred"),
            _ => (CODE_MALFORMED_REQUEST, "Bad request"),
        };
        let mut out = ApiError::new(status, code, message).to_response(&path);
        for (k, v) in res.headers() {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                out.headers_mut().insert(k.clone(), v.clone());
            }
        }
        return out;
    }
    res
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Fallback for unknown routes: 404 / 20404.
pub async fn no_route() -> ApiError {
    ApiError::not_found()
}

/// What a panic in a handler becomes: a logged 500 with a generic body.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::internal(format!("handler panicked: {detail}")).to_response("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_message_names_path_without_v2() {
        let b = ApiError::not_found().body("/v2/Services/IS1/Users/alice");
        assert_eq!(
            b["message"],
            "The requested resource /Services/IS1/Users/alice was not found"
        );
        assert_eq!(b["code"], 20404);
        assert_eq!(b["status"], 404);
        assert_eq!(b["more_info"], "https://www.twilio.com/docs/errors/20404");
        assert!(b.get("type").is_none() && b.get("title").is_none());
    }

    #[test]
    fn missing_param_has_details() {
        let b = ApiError::missing_param("Identity").body("/");
        assert_eq!(
            b["message"],
            "Missing required parameter Identity in the post body"
        );
        assert_eq!(b["details"]["param"], "Identity");
        assert_eq!(b["code"], 20001);
    }
}
