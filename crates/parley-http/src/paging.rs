//! List paging on the wire (contract §0.3): `PageSize` (clamped to the list's maximum), `Page`
//! (informational), `PageToken` (opaque keyset cursor), and the `meta` envelope whose URLs repeat
//! the caller's filters. The next / previous tokens wrap the cursors the store's page carries; the
//! list's path is the request's own ([`ListPath`]).
//!
//! Token: `PT` + base64url(cursor JSON ‖ first 16 bytes of HMAC(list path ‖ cursor JSON)). The MAC
//! (keyed from the server key, so every node agrees) makes forged or cross-list tokens a 400.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use parley_core::crypto::SecretBox;
use parley_core::paging::{Cursor, Page, PageRequest};
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::params::Params;
use crate::urls::UrlBuilder;

/// The `meta` object of a list answer.
#[derive(Serialize)]
struct Meta {
    page: u64,
    page_size: u32,
    first_page_url: String,
    previous_page_url: Option<String>,
    url: String,
    next_page_url: Option<String>,
    key: &'static str,
}

/// A finished list answer (JSON bytes).
#[derive(Debug)]
pub struct ListBody(Vec<u8>);

impl ListBody {
    /// Parse back (tests).
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.0).unwrap_or(Value::Null)
    }
}

impl axum::response::IntoResponse for ListBody {
    fn into_response(self) -> axum::response::Response {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

/// One list endpoint's paging rules.
#[derive(Clone, Copy, Debug)]
pub struct ListSpec {
    /// Array key in the envelope and `meta.key`.
    pub key: &'static str,
    /// Largest page; bigger `PageSize` values are clamped.
    pub max_page_size: u32,
    /// Default page size.
    pub default_page_size: u32,
}

/// `GET /v2/Services`.
pub const SERVICES: ListSpec = ListSpec {
    key: "services",
    max_page_size: 100,
    default_page_size: 50,
};
/// `GET /v2/Credentials`.
pub const CREDENTIALS: ListSpec = ListSpec {
    key: "credentials",
    max_page_size: 1000,
    default_page_size: 50,
};
/// `GET …/Users`.
pub const USERS: ListSpec = ListSpec {
    key: "users",
    max_page_size: 100,
    default_page_size: 50,
};
/// `GET …/Roles`.
pub const ROLES: ListSpec = ListSpec {
    key: "roles",
    max_page_size: 100,
    default_page_size: 50,
};
/// `GET …/Bindings` (service and user level).
pub const BINDINGS: ListSpec = ListSpec {
    key: "bindings",
    max_page_size: 50,
    default_page_size: 50,
};

/// `GET …/Channels`.
pub const CHANNELS: ListSpec = ListSpec {
    key: "channels",
    max_page_size: 100,
    default_page_size: 50,
};
/// `GET …/Members`.
pub const MEMBERS: ListSpec = ListSpec {
    key: "members",
    max_page_size: 100,
    default_page_size: 50,
};
/// `GET …/Messages`.
pub const MESSAGES: ListSpec = ListSpec {
    key: "messages",
    max_page_size: 100,
    default_page_size: 50,
};
/// `GET …/Invites`.
pub const INVITES: ListSpec = ListSpec {
    key: "invites",
    max_page_size: 100,
    default_page_size: 50,
};
/// `GET …/Channels/{ChannelSid}/Webhooks` (contract §0.3: at most 5, default 5).
pub const WEBHOOKS: ListSpec = ListSpec {
    key: "webhooks",
    max_page_size: 5,
    default_page_size: 5,
};
/// `GET …/Users/{UserSid}/Channels`.
pub const USER_CHANNELS: ListSpec = ListSpec {
    key: "channels",
    max_page_size: 50,
    default_page_size: 50,
};

/// `GET …/PushLog` (Parley extension).
pub const PUSH_LOG: ListSpec = ListSpec {
    key: "push_log",
    max_page_size: 1000,
    default_page_size: 50,
};

/// The path of the list a request names, as its meta URLs spell it and as its PageTokens are
/// bound to: the request's own path (`/v2/Services/IS…/Users/alice/Channels`), each segment
/// decoded and re-encoded the one way [`crate::urls::segment`] encodes (so `a%40b` and `a@b` name
/// the same list). A user named by SID or by identity keeps that name in the URLs it is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPath(pub String);

impl ListPath {
    /// Normalize a raw request path; `None` when a segment does not decode to UTF-8 (the router
    /// refuses such paths before a list handler runs).
    pub fn from_request_path(raw: &str) -> Option<Self> {
        let mut out = String::with_capacity(raw.len());
        for (i, seg) in raw.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            let decoded = percent_encoding::percent_decode_str(seg)
                .decode_utf8()
                .ok()?;
            out.push_str(&crate::urls::segment_cow(&decoded));
        }
        Some(Self(out))
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ListPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        let raw = match parts.extensions.get::<axum::extract::OriginalUri>() {
            Some(original) => original.0.path(),
            None => parts.uri.path(),
        };
        Self::from_request_path(raw).ok_or_else(ApiError::not_found)
    }
}

const TOKEN_PREFIX: &str = "PT";
const MAC_LEN: usize = 16;

/// The paging part of a list request, validated.
#[derive(Clone, Debug)]
pub struct PageQuery {
    /// `Page` as sent (default 0).
    pub page: u64,
    /// What to ask the store for.
    pub request: PageRequest,
    /// The token as sent, to repeat in `meta.url`.
    token: Option<String>,
    spec: ListSpec,
    path: String,
    filters: Vec<(String, String)>,
}

impl PageQuery {
    /// Read `PageSize`, `Page`, `PageToken` from `params` for the list at `path`, keeping the
    /// values of `filter_names` for the meta URLs.
    pub fn parse(
        params: &Params,
        spec: ListSpec,
        path: &str,
        filter_names: &[&str],
        secrets: &SecretBox,
    ) -> Result<Self, ApiError> {
        let size = match params.int("PageSize")? {
            None => spec.default_page_size,
            Some(n) if n < 1 => {
                return Err(ApiError::invalid_param(
                    "PageSize",
                    "PageSize must be at least 1",
                ));
            }
            Some(n) => u32::try_from(n).unwrap_or(u32::MAX).min(spec.max_page_size),
        };
        let page = match big_int(params, "Page")? {
            None => 0,
            Some(n) => u64::try_from(n)
                .map_err(|_| ApiError::invalid_param("Page", "Page must not be negative"))?,
        };
        let token = params.string("PageToken").filter(|t| !t.is_empty());
        let cursor = match &token {
            None => None,
            Some(t) => Some(decode_token(t, path, secrets).ok_or_else(|| {
                ApiError::invalid_param(
                    "PageToken",
                    "Invalid PageToken: it was not issued for this list",
                )
            })?),
        };
        let filters = params
            .pairs()
            .iter()
            .filter(|(k, _)| filter_names.contains(&k.as_str()))
            .cloned()
            .collect();
        Ok(Self {
            page,
            request: PageRequest { size, cursor },
            token,
            spec,
            path: path.to_owned(),
            filters,
        })
    }

    fn url(&self, urls: &UrlBuilder, page: u64, token: Option<&str>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.filters {
            q.append_pair(k, v);
        }
        q.append_pair("PageSize", &self.request.size.to_string());
        q.append_pair("Page", &page.to_string());
        if let Some(t) = token {
            q.append_pair("PageToken", t);
        }
        urls.abs(&format!("{}?{}", self.path, q.finish()))
    }

    /// The list envelope: `{ <key>: [...], "meta": {...} }`; `render` gives an item's wire form.
    /// The page's own cursors (set by the store) become the next / previous page tokens.
    pub fn envelope<D, R: Serialize>(
        &self,
        page: Page<D>,
        urls: &UrlBuilder,
        secrets: &SecretBox,
        render: impl Fn(&D) -> R,
    ) -> Result<ListBody, ApiError> {
        self.envelope_with(page, urls, secrets, |d, out| {
            serde_json::to_writer(out, &render(d))
        })
    }

    /// [`PageQuery::envelope`] where `write` serializes an item itself (so its wire form may
    /// borrow from the item instead of copying every field).
    pub fn envelope_with<D>(
        &self,
        page: Page<D>,
        urls: &UrlBuilder,
        secrets: &SecretBox,
        write: impl Fn(&D, &mut Vec<u8>) -> serde_json::Result<()>,
    ) -> Result<ListBody, ApiError> {
        let next = page.next.as_ref().map(|c| {
            let token = encode_token(c, &self.path, secrets);
            self.url(urls, self.page + 1, Some(&token))
        });
        let previous = page.prev.as_ref().map(|c| {
            let token = encode_token(c, &self.path, secrets);
            self.url(urls, self.page.saturating_sub(1), Some(&token))
        });
        // Serialized straight to bytes: no intermediate `Value` tree per item (the list envelope
        // was allocation-bound; see bench/RESULTS.md).
        let meta = Meta {
            page: self.page,
            page_size: self.request.size,
            first_page_url: self.url(urls, 0, None),
            previous_page_url: previous,
            url: self.url(urls, self.page, self.token.as_deref()),
            next_page_url: next,
            key: self.spec.key,
        };
        let mut out = Vec::with_capacity(512 + page.items.len() * 512);
        out.extend_from_slice(b"{");
        serde_json::to_writer(&mut out, self.spec.key).map_err(ApiError::internal)?;
        out.extend_from_slice(b":[");
        for (i, d) in page.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write(d, &mut out).map_err(ApiError::internal)?;
        }
        out.extend_from_slice(b"],\"meta\":");
        serde_json::to_writer(&mut out, &meta).map_err(ApiError::internal)?;
        out.push(b'}');
        Ok(ListBody(out))
    }
}

/// `Page`: an unbounded integer in the spec and only informational here, so digits beyond the
/// 64-bit range saturate; anything else is a 400. (`PageSize` is an int64 in the spec: beyond
/// that range it is a 400, within it an oversized value is clamped.)
fn big_int(params: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    match params.get(name).map(str::trim) {
        Some(v) if !v.is_empty() && v.len() > 18 && v.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Some(i64::MAX))
        }
        _ => params.int(name),
    }
}

fn mac_input(path: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(path.len() + 1 + payload.len());
    v.extend_from_slice(path.as_bytes());
    v.push(b'\n');
    v.extend_from_slice(payload);
    v
}

/// Encode a cursor as a token valid only for the list at `path`.
pub fn encode_token(cursor: &Cursor, path: &str, secrets: &SecretBox) -> String {
    let mut payload = serde_json::to_vec(cursor).unwrap_or_default();
    let mac = secrets.mac(&mac_input(path, &payload));
    payload.extend_from_slice(&mac[..MAC_LEN]);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(payload))
}

/// Decode a token; `None` if malformed, forged, or made for another list.
pub fn decode_token(token: &str, path: &str, secrets: &SecretBox) -> Option<Cursor> {
    let raw = URL_SAFE_NO_PAD
        .decode(token.strip_prefix(TOKEN_PREFIX)?)
        .ok()?;
    if raw.len() <= MAC_LEN {
        return None;
    }
    let (payload, mac) = raw.split_at(raw.len() - MAC_LEN);
    let expected = secrets.mac(&mac_input(path, payload));
    if !parley_core::crypto::secrets_equal(mac, &expected[..MAC_LEN]) {
        return None;
    }
    serde_json::from_slice(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb() -> SecretBox {
        SecretBox::from_hex(&SecretBox::generate_hex()).expect("key")
    }

    #[test]
    fn token_round_trips_only_for_its_list_and_key() {
        let s = sb();
        let c = Cursor {
            key: 42,
            sid: "US00000000000000000000000000000001".into(),
            backwards: false,
        };
        let t = encode_token(&c, "/v2/Services/IS1/Users", &s);
        assert!(t.starts_with("PT"));
        assert_eq!(decode_token(&t, "/v2/Services/IS1/Users", &s), Some(c));
        assert_eq!(decode_token(&t, "/v2/Services/IS2/Users", &s), None);
        assert_eq!(decode_token(&t, "/v2/Services/IS1/Users", &sb()), None);
        let mut forged = t.clone();
        forged.push('A');
        assert_eq!(decode_token(&forged, "/v2/Services/IS1/Users", &s), None);
        assert_eq!(decode_token("PTnotbase64!!", "/x", &s), None);
        assert_eq!(decode_token("garbage", "/x", &s), None);
    }

    #[test]
    fn list_path_is_the_request_path_with_segments_encoded_one_way() {
        let p = |raw: &str| ListPath::from_request_path(raw).map(|p| p.0);
        assert_eq!(p("/v2/Services").as_deref(), Some("/v2/Services"));
        let sid = "/v2/Services/IS00000000000000000000000000000001/Users/US00000000000000000000000000000002/Channels";
        assert_eq!(p(sid).as_deref(), Some(sid));
        let encoded = Some(
            "/v2/Services/IS00000000000000000000000000000001/Users/a%20b%40c%2Fd/Channels"
                .to_owned(),
        );
        assert_eq!(
            p("/v2/Services/IS00000000000000000000000000000001/Users/a%20b%40c%2Fd/Channels"),
            encoded
        );
        assert_eq!(
            p("/v2/Services/IS00000000000000000000000000000001/Users/a%20b@c%2fd/Channels"),
            encoded,
            "another spelling of the same identity names the same list"
        );
        assert_eq!(
            p("/v2/Services/IS1/Users/caf%C3%A9/Channels").as_deref(),
            Some("/v2/Services/IS1/Users/caf%C3%A9/Channels")
        );
        assert_eq!(p("/v2/Services/IS1/Users/%FF/Channels"), None);
    }

    #[test]
    fn page_size_is_clamped_and_filters_repeat_in_meta() {
        let s = sb();
        let p = Params::parse("BindingType=apn&BindingType=fcm&PageSize=500&Other=x");
        let q = PageQuery::parse(
            &p,
            BINDINGS,
            "/v2/Services/IS1/Bindings",
            &["BindingType", "Identity"],
            &s,
        )
        .expect("parse");
        assert_eq!(q.request.size, 50);
        let urls = UrlBuilder::new("http://h");
        let page: Page<(i64, String)> = Page {
            items: vec![(1, "a".into())],
            more: true,
            next: Some(Cursor {
                key: 1,
                sid: "a".into(),
                backwards: false,
            }),
            prev: None,
        };
        let env = q
            .envelope(page, &urls, &s, |d| d.1.clone())
            .expect("env")
            .to_value();
        assert_eq!(
            env["meta"]["first_page_url"],
            "http://h/v2/Services/IS1/Bindings?BindingType=apn&BindingType=fcm&PageSize=50&Page=0"
        );
        let next = env["meta"]["next_page_url"].as_str().expect("next");
        assert!(next.contains("&Page=1&PageToken=PT"), "{next}");
        assert_eq!(env["meta"]["previous_page_url"], Value::Null);
        assert_eq!(env["bindings"], serde_json::json!(["a"]));
        assert!(PageQuery::parse(&Params::parse("PageSize=0"), USERS, "/x", &[], &s).is_err());
        let huge = PageQuery::parse(
            &Params::parse("PageSize=9223372036854775806&Page=99999999999999999999999"),
            USERS,
            "/x",
            &[],
            &s,
        )
        .expect("huge numbers saturate");
        assert_eq!(huge.request.size, 100);
        assert!(
            PageQuery::parse(
                &Params::parse("PageSize=9223372036854775808"),
                USERS,
                "/x",
                &[],
                &s
            )
            .is_err(),
            "beyond int64 is not an int64"
        );
        assert!(PageQuery::parse(&Params::parse("PageToken=PTxyz"), USERS, "/x", &[], &s).is_err());
    }
}

/// PageTokens are client input: arbitrary text, tampered real tokens and arbitrary `PageSize` /
/// `Page` values decode to `None` or to a 400 naming the parameter — never a panic.
#[cfg(test)]
mod proptests {
    use super::*;
    use axum::http::StatusCode;
    use proptest::prelude::*;

    #[allow(clippy::expect_used)]
    fn sb() -> SecretBox {
        SecretBox::from_hex(&"ab".repeat(32)).expect("key")
    }

    const LIST: ListSpec = ListSpec {
        key: "users",
        default_page_size: 50,
        max_page_size: 1000,
    };

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_tokens_are_refused(token in ".{0,200}", b64 in "PT[A-Za-z0-9_-]{0,120}") {
            let s = sb();
            prop_assert_eq!(decode_token(&token, "/v2/Services/IS1/Users", &s), None);
            prop_assert_eq!(decode_token(&b64, "/v2/Services/IS1/Users", &s), None);
        }

        #[test]
        fn tampered_tokens_are_refused(
            key in any::<i64>(),
            sid in "[A-Z]{2}[0-9a-f]{32}",
            backwards in any::<bool>(),
            at in any::<prop::sample::Index>(),
            with in any::<u8>(),
        ) {
            let s = sb();
            let cursor = Cursor { key, sid, backwards };
            let token = encode_token(&cursor, "/v2/Services/IS1/Users", &s);
            prop_assert_eq!(
                decode_token(&token, "/v2/Services/IS1/Users", &s),
                Some(cursor)
            );
            let mut bytes = token.into_bytes();
            let i = at.index(bytes.len());
            if bytes[i] != with {
                bytes[i] = with;
                let tampered = String::from_utf8_lossy(&bytes).into_owned();
                prop_assert_eq!(decode_token(&tampered, "/v2/Services/IS1/Users", &s), None);
            }
        }

        #[test]
        fn arbitrary_paging_parameters_parse_or_are_400(
            size in prop_oneof![".{0,30}", "-?[0-9]{1,30}"],
            page in prop_oneof![".{0,30}", "-?[0-9]{1,30}"],
            token in ".{0,60}",
        ) {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("PageSize", &size);
            q.append_pair("Page", &page);
            q.append_pair("PageToken", &token);
            let params = Params::parse(&q.finish());
            match PageQuery::parse(&params, LIST, "/v2/Services/IS1/Users", &[], &sb()) {
                Ok(parsed) => {
                    prop_assert!(parsed.request.size >= 1 && parsed.request.size <= 1000);
                }
                Err(e) => {
                    prop_assert_eq!(e.status, StatusCode::BAD_REQUEST);
                    prop_assert_eq!(e.code, 20001);
                }
            }
        }
    }
}
