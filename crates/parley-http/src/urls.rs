//! Absolute URLs for `url`, `links` and paging, built from the configured public base URL
//! (clients follow them verbatim; twilio-notes §6.1).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encode one path segment (identities may hold spaces, `@`, `/`…).
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Builds absolute URLs.
#[derive(Clone, Debug)]
pub struct UrlBuilder {
    base: String,
}

impl UrlBuilder {
    /// `base` like `http://127.0.0.1:8080` (a trailing slash is dropped).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// `base + path` (`path` starts with `/` and is already encoded).
    pub fn abs(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `/v2/Services/{service}`.
    pub fn service(&self, service: &str) -> String {
        self.abs(&format!("/v2/Services/{service}"))
    }

    /// `/v2/Services/{service}/{rest}`.
    pub fn in_service(&self, service: &str, rest: &str) -> String {
        self.abs(&format!("/v2/Services/{service}/{rest}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_identities_and_trims_base() {
        let u = UrlBuilder::new("http://h:1/");
        assert_eq!(
            u.in_service("IS1", &format!("Users/{}", segment("bob smith@x/y"))),
            "http://h:1/v2/Services/IS1/Users/bob%20smith%40x%2Fy"
        );
    }
}
