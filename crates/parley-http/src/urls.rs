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

/// [`segment`], borrowing `s` when nothing in it needs encoding.
pub fn segment_cow(s: &str) -> std::borrow::Cow<'_, str> {
    utf8_percent_encode(s, SEGMENT).into()
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
        self.in_service_parts(service, &[rest])
    }

    /// `/v2/Services/{service}/` followed by `parts` (each already encoded), built in one
    /// allocation: list pages build two URLs per item.
    pub fn in_service_parts(&self, service: &str, parts: &[&str]) -> String {
        const MID: &str = "/v2/Services/";
        let len = self.base.len()
            + MID.len()
            + service.len()
            + 1
            + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut url = String::with_capacity(len);
        url.push_str(&self.base);
        url.push_str(MID);
        url.push_str(service);
        url.push('/');
        for p in parts {
            url.push_str(p);
        }
        url
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
        assert_eq!(
            u.in_service_parts("IS1", &["Users/", "US2", "/Bindings/", "BS3"]),
            "http://h:1/v2/Services/IS1/Users/US2/Bindings/BS3"
        );
        assert_eq!(u.in_service("IS1", ""), "http://h:1/v2/Services/IS1/");
        assert!(matches!(
            segment_cow("alice"),
            std::borrow::Cow::Borrowed("alice")
        ));
        assert_eq!(segment_cow("bob smith"), "bob%20smith");
    }
}
