//! Form and query decoding the Twilio way: `application/x-www-form-urlencoded` pairs, repeated
//! keys for lists (`Permission=a&Permission=b`), dotted names for nesting
//! (`Notifications.NewMessage.Enabled=true`), unknown keys ignored. Accessors name the offending
//! parameter in their 400/20001 errors.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use parley_core::Timestamp;

use crate::error::ApiError;

/// Largest accepted request body.
const MAX_BODY: usize = 1 << 20;

/// Decoded parameters, in order of appearance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parameters from name/value pairs (e.g. a JSON body mapped to parameter names).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// Parse `a=1&b=2` (percent-decoded, `+` is a space).
    pub fn parse(text: &str) -> Self {
        Self(
            url::form_urlencoded::parse(text.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// Reject NUL characters anywhere: no database stores them the same way (PostgreSQL text
    /// refuses them), so they are a 400 on every backend.
    pub fn reject_nul(self) -> Result<Self, ApiError> {
        // Only names that can be parameters matter: other pairs are ignored anyway.
        let is_name = |k: &str| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        };
        if let Some((k, _)) = self.0.iter().find(|(k, v)| is_name(k) && v.contains('\0')) {
            let name = clip(k);
            return Err(ApiError::invalid_param(
                &name,
                format!("Parameter {name} must not contain NUL characters"),
            ));
        }
        Ok(self)
    }

    /// The pairs.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Whether `name` was sent at all (even empty).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// Whether any parameter was sent.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Optional string.
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// Optional string of at most `max` characters (Unicode scalar values); a longer one is a
    /// 400 with `code` (20001 or the Chat code Twilio documents) naming `name`.
    pub fn text(&self, name: &str, max: usize, code: u32) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if too_long(v, max) => Err(ApiError::chat_param(
                code,
                name,
                format!("{name} is too long ({max} characters at most)"),
            )),
            Some(v) => Ok(Some(v.to_owned())),
        }
    }

    /// Required non-empty string.
    pub fn required(&self, name: &str) -> Result<String, ApiError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => Err(ApiError::missing_param(name)),
        }
    }

    /// Optional boolean: `true`/`false` (any case); anything else is a 400 naming `name`.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid_param(
                name,
                format!(
                    "Invalid value for parameter {name}: '{}' is not a boolean",
                    clip(v)
                ),
            )),
        }
    }

    /// Optional integer; a non-integer is a 400 naming `name`.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                ApiError::invalid_param(
                    name,
                    format!(
                        "Invalid value for parameter {name}: '{}' is not an integer",
                        clip(v)
                    ),
                )
            }),
        }
    }

    /// Optional integer within `min..=max`.
    pub fn int_in(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        match self.int(name)? {
            Some(v) if v < min || v > max => Err(ApiError::invalid_param(
                name,
                format!("Invalid value for parameter {name}: {v} is outside {min}..{max}"),
            )),
            other => Ok(other),
        }
    }

    /// Optional date-time (ISO 8601).
    pub fn date(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => Timestamp::parse_rfc3339(v).map(Some).ok_or_else(|| {
                ApiError::invalid_param(
                    name,
                    format!(
                        "Invalid value for parameter {name}: '{}' is not a date-time",
                        clip(v)
                    ),
                )
            }),
        }
    }

    /// Optional typed value parsed with `parse`, whose failure is a 400 naming `name`.
    pub fn parsed<T, E>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => parse(v).map(Some).map_err(|_| {
                ApiError::invalid_param(
                    name,
                    format!("Invalid value for parameter {name}: '{}'", clip(v)),
                )
            }),
        }
    }
}

/// Whether `v` has more than `max` characters (without counting past `max`).
pub fn too_long(v: &str, max: usize) -> bool {
    v.len() > max && v.chars().nth(max).is_some()
}

/// At most 64 characters of user input, for error messages.
pub fn clip(v: &str) -> String {
    v.chars().take(64).collect()
}

/// Query-string parameters.
#[derive(Clone, Debug, Default)]
pub struct Query(pub Params);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Self(
            Params::parse(parts.uri.query().unwrap_or("")).reject_nul()?,
        ))
    }
}

/// Form-body parameters. A body that is not form-encoded (and not empty) is a 400.
#[derive(Clone, Debug, Default)]
pub struct Form(pub Params);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    20001,
                    "Request body too large",
                )
            })?;
        if bytes.is_empty() {
            return Ok(Self(Params::default()));
        }
        if is_form == Some(false) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                20001,
                "Request body must be application/x-www-form-urlencoded",
            ));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                20001,
                "Request body is not valid UTF-8",
            )
        })?;
        Ok(Self(Params::parse(text).reject_nul()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_and_dotted_names() {
        let p = Params::parse(
            "Permission=a&Permission=b&Notifications.NewMessage.Enabled=true&X=%20y+z",
        );
        assert_eq!(p.all("Permission"), vec!["a", "b"]);
        assert_eq!(
            p.bool("Notifications.NewMessage.Enabled").expect("bool"),
            Some(true)
        );
        assert_eq!(p.get("X"), Some(" y z"));
        assert!(p.has("X") && !p.has("Y"));
    }

    #[test]
    fn nul_characters_are_rejected() {
        let e = Params::parse("Body=a%00b").reject_nul().expect_err("nul");
        assert_eq!(e.details.as_ref().expect("details")["param"], "Body");
        assert!(Params::parse("Body=ab").reject_nul().is_ok());
        assert!(
            Params::parse("%F0%9F%92%A9=a%00b&Body=ok")
                .reject_nul()
                .is_ok(),
            "not a parameter name: ignored"
        );
    }

    #[test]
    fn text_limits_count_characters_not_bytes() {
        let p = Params::parse("A=%C3%A9%C3%A9%C3%A9&B=abcd");
        assert_eq!(
            p.text("A", 3, 50003).expect("3 chars").as_deref(),
            Some("ééé")
        );
        let e = p.text("B", 3, 50003).expect_err("4 chars");
        assert_eq!(e.code, 50003);
        assert_eq!(e.details.as_ref().expect("details")["param"], "B");
        assert_eq!(p.text("C", 3, 20001).expect("absent"), None);
        assert!(!too_long("", 0) && too_long("a", 0) && !too_long("ab", 2));
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let p = Params::parse("A=maybe&B=1x&C=True&D=");
        let e = p.bool("A").expect_err("not a bool");
        assert_eq!(e.code, 20001);
        assert_eq!(e.details.as_ref().expect("details")["param"], "A");
        assert!(p.int("B").is_err());
        assert_eq!(p.bool("C").expect("bool"), Some(true));
        assert!(p.required("D").is_err());
        assert!(p.required("E").is_err());
        assert_eq!(
            Params::parse("N=5")
                .int_in("N", 0, 3)
                .expect_err("range")
                .code,
            20001
        );
    }
}

/// Arbitrary bytes through the real form extractor and every accessor: no panic, and every
/// rejection is a Twilio error (400 with code 20001, or 413 for an oversized body).
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn runtime() -> tokio::runtime::Runtime {
        #[allow(clippy::expect_used)]
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    }

    fn form_request(body: Vec<u8>, content_type: Option<String>) -> Option<Request> {
        let mut b = axum::http::Request::builder()
            .method("POST")
            .uri("/v2/Services");
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        b.body(axum::body::Body::from(body)).ok()
    }

    fn assert_twilio(e: &ApiError) {
        assert!(
            e.status == StatusCode::BAD_REQUEST || e.status == StatusCode::PAYLOAD_TOO_LARGE,
            "{e:?}"
        );
        assert_eq!(e.code, 20001, "{e:?}");
    }

    /// Every typed accessor on every name present, plus a few the body may not carry.
    fn exercise(params: &Params) {
        let mut names: Vec<String> = params.pairs().iter().map(|(k, _)| k.clone()).collect();
        names.extend(["PageSize", "Page", "DateCreated", "Enabled"].map(String::from));
        for name in &names {
            let _ = params.get(name);
            let _ = params.all(name);
            for r in [
                params.bool(name).map(|_| ()),
                params.int(name).map(|_| ()),
                params.int_in(name, -5, 5).map(|_| ()),
                params.date(name).map(|_| ()),
                params.required(name).map(|_| ()),
            ] {
                if let Err(e) = r {
                    assert_twilio(&e);
                }
            }
        }
    }

    fn form_text() -> impl Strategy<Value = String> {
        // Pairs built from the characters that matter to the decoder, plus anything.
        let atom = prop_oneof![
            Just("&".to_owned()),
            Just("=".to_owned()),
            Just("%".to_owned()),
            Just("%00".to_owned()),
            Just("%FF".to_owned()),
            Just("+".to_owned()),
            Just("PageSize".to_owned()),
            Just("Enabled".to_owned()),
            Just("DateCreated".to_owned()),
            "[0-9]{1,25}",
            "-?[0-9]{1,3}",
            ".{0,6}",
        ];
        proptest::collection::vec(atom, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bodies_decode_or_are_twilio_errors(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            ct in proptest::option::of(prop_oneof![
                Just("application/x-www-form-urlencoded".to_owned()),
                Just("application/json".to_owned()),
                ".{0,20}",
            ]),
        ) {
            let Some(req) = form_request(body, ct) else { return Ok(()) };
            match runtime().block_on(Form::from_request(req, &())) {
                Ok(Form(params)) => exercise(&params),
                Err(e) => assert_twilio(&e),
            }
        }

        #[test]
        fn form_shaped_text_decodes_and_every_accessor_answers(text in form_text()) {
            let req = form_request(
                text.clone().into_bytes(),
                Some("application/x-www-form-urlencoded".to_owned()),
            );
            let Some(req) = req else { return Ok(()) };
            match runtime().block_on(Form::from_request(req, &())) {
                Ok(Form(params)) => exercise(&params),
                Err(e) => assert_twilio(&e),
            }
            // The query-string path decodes the same text without panicking.
            match Params::parse(&text).reject_nul() {
                Ok(params) => exercise(&params),
                Err(e) => assert_twilio(&e),
            }
        }
    }
}
