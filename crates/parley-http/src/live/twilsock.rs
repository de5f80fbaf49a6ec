//! twilsock v3 framing (sdk-transport.md §1):
//!
//! ```text
//! "TWILSOCK V3.0 " <header byte length, decimal> "\r\n" <header JSON> "\r\n" <payload> ["\r\n"]
//! ```
//!
//! The header is a JSON object with at least `method` and `id`, `payload_size` (payload bytes)
//! and optionally `payload_type` (a MIME type). Parsing is strict: the declared header length and
//! `payload_size` must match the bytes present exactly; the only thing tolerated after the payload
//! is one `"\r\n"` (Twilio's own frames carry one). Nothing here panics on any input.

use serde_json::{Map, Value};

/// The magic that starts every frame.
pub const MAGIC: &[u8] = b"TWILSOCK V3.0 ";

/// Longest header-length field accepted (digits). Ten digits already exceed any frame we accept.
const MAX_LEN_DIGITS: usize = 10;

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame does not start with `TWILSOCK V3.0 `.
    #[error("not a twilsock v3.0 frame")]
    BadMagic,
    /// The header length is not a decimal number followed by `\r\n`.
    #[error("invalid header length field")]
    BadHeaderLength,
    /// The frame ends before the declared header or payload.
    #[error("frame truncated: {0}")]
    Truncated(&'static str),
    /// The header is not followed by `\r\n`.
    #[error("header not followed by CRLF")]
    MissingSeparator,
    /// The header is not a JSON object.
    #[error("header is not a JSON object: {0}")]
    BadHeader(String),
    /// The header has no string `method`.
    #[error("header has no method")]
    NoMethod,
    /// `payload_size` is present but not a non-negative integer.
    #[error("invalid payload_size")]
    BadPayloadSize,
    /// Bytes follow the declared payload (other than one `\r\n`).
    #[error("{0} unexpected bytes after the payload")]
    TrailingBytes(usize),
}

/// One twilsock frame: its header (a JSON object) and its payload bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The header object (`method`, `id`, `payload_type`, …; `payload_size` is set on encode).
    pub header: Map<String, Value>,
    /// The payload bytes (JSON text when `payload_type` is `application/json`).
    pub payload: Vec<u8>,
}

impl Frame {
    /// A frame with this method and id and no payload.
    pub fn new(method: &str, id: &str) -> Self {
        let mut header = Map::new();
        header.insert("method".to_owned(), Value::from(method));
        header.insert("id".to_owned(), Value::from(id));
        Self {
            header,
            payload: Vec::new(),
        }
    }

    /// Set a header field.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.header.insert(key.to_owned(), value);
        self
    }

    /// With a JSON payload (`payload_type` `application/json`).
    pub fn with_json(self, payload: &Value) -> Self {
        let mut f = self.with("payload_type", Value::from("application/json"));
        f.payload = payload.to_string().into_bytes();
        f
    }

    /// `method` (always present in a parsed frame).
    pub fn method(&self) -> &str {
        self.str("method").unwrap_or("")
    }

    /// `id`, when a string.
    pub fn id(&self) -> Option<&str> {
        self.str("id")
    }

    /// `payload_type`, when a string.
    pub fn payload_type(&self) -> Option<&str> {
        self.str("payload_type")
    }

    /// A string header field.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.header.get(key).and_then(Value::as_str)
    }

    /// The frame's bytes; `payload_size` is set to the payload's length.
    pub fn encode(&self) -> Vec<u8> {
        let mut header = self.header.clone();
        header.insert(
            "payload_size".to_owned(),
            Value::from(self.payload.len() as u64),
        );
        let header = Value::Object(header).to_string();
        let len = header.len().to_string();
        let mut out =
            Vec::with_capacity(MAGIC.len() + len.len() + header.len() + self.payload.len() + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(len.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.payload);
        out
    }

    /// Read one frame from `bytes` (a whole websocket message).
    pub fn parse(bytes: &[u8]) -> Result<Frame, FrameError> {
        let rest = bytes.strip_prefix(MAGIC).ok_or(FrameError::BadMagic)?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > MAX_LEN_DIGITS {
            return Err(FrameError::BadHeaderLength);
        }
        let (len, rest) = rest.split_at(digits);
        let rest = rest
            .strip_prefix(b"\r\n")
            .ok_or(FrameError::BadHeaderLength)?;
        // At most ten ASCII digits: always valid UTF-8 and fits a u64.
        let header_len: usize = std::str::from_utf8(len)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(FrameError::BadHeaderLength)?;
        if rest.len() < header_len {
            return Err(FrameError::Truncated("header"));
        }
        let (header_bytes, rest) = rest.split_at(header_len);
        let rest = rest
            .strip_prefix(b"\r\n")
            .ok_or(FrameError::MissingSeparator)?;
        let header: Map<String, Value> = match serde_json::from_slice::<Value>(header_bytes) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(FrameError::BadHeader("not an object".to_owned())),
            Err(e) => return Err(FrameError::BadHeader(e.to_string())),
        };
        if !header.get("method").is_some_and(Value::is_string) {
            return Err(FrameError::NoMethod);
        }
        let size = match header.get("payload_size") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(FrameError::BadPayloadSize)?,
        };
        if rest.len() < size {
            return Err(FrameError::Truncated("payload"));
        }
        let (payload, trailer) = rest.split_at(size);
        if !trailer.is_empty() && trailer != b"\r\n" {
            return Err(FrameError::TrailingBytes(trailer.len()));
        }
        Ok(Frame {
            header,
            payload: payload.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_as_the_js_client_does() {
        let f = Frame::new("ping", "TM1");
        let bytes = f.encode();
        let text = String::from_utf8(bytes).expect("utf8");
        let header = r#"{"id":"TM1","method":"ping","payload_size":0}"#;
        assert_eq!(
            text,
            format!("TWILSOCK V3.0 {}\r\n{header}\r\n", header.len())
        );
    }

    #[test]
    fn parses_a_client_message_with_a_json_payload() {
        let header = json!({"method":"message","id":"TMa","payload_type":"application/json",
            "http_request":{"host":"aim.us1.twilio.com","path":"/Client/v1/Configuration","method":"GET"},
            "payload_size": 7});
        let h = header.to_string();
        let raw = format!("TWILSOCK V3.0 {}\r\n{h}\r\n{{\"a\":1}}", h.len());
        let f = Frame::parse(raw.as_bytes()).expect("parses");
        assert_eq!(f.method(), "message");
        assert_eq!(f.id(), Some("TMa"));
        assert_eq!(f.payload_type(), Some("application/json"));
        assert_eq!(f.payload, b"{\"a\":1}");
        // Twilio's own frames end with CRLF: tolerated.
        let with_crlf = format!("{raw}\r\n");
        assert_eq!(Frame::parse(with_crlf.as_bytes()), Ok(f));
    }

    #[test]
    fn header_length_counts_utf8_bytes() {
        let f = Frame::new("reply", "TMé").with_json(&json!({"name": "Zoë ✓"}));
        let bytes = f.encode();
        let back = Frame::parse(&bytes).expect("parses");
        assert_eq!(back.id(), Some("TMé"));
        assert_eq!(back.payload, f.payload);
    }

    fn framed(header: &str) -> String {
        format!("TWILSOCK V3.0 {}\r\n{header}\r\n", header.len())
    }

    #[test]
    fn refuses_what_does_not_add_up() {
        let h = r#"{"method":"ping","id":"x","payload_size":2}"#;
        let ok = format!("TWILSOCK V3.0 {}\r\n{h}\r\nab", h.len());
        assert!(Frame::parse(ok.as_bytes()).is_ok());
        let cases: Vec<(String, FrameError)> = vec![
            ("TWILSOCK V2.0 1\r\n{}\r\n".into(), FrameError::BadMagic),
            (String::new(), FrameError::BadMagic),
            (
                format!("TWILSOCK V3.0 x{}\r\n{h}\r\nab", h.len()),
                FrameError::BadHeaderLength,
            ),
            (
                format!("TWILSOCK V3.0 {}\n{h}\r\nab", h.len()),
                FrameError::BadHeaderLength,
            ),
            (
                "TWILSOCK V3.0 99999999999\r\n{}".into(),
                FrameError::BadHeaderLength,
            ),
            (
                format!("TWILSOCK V3.0 {}\r\n{h}\r\nab", h.len() + 5),
                FrameError::Truncated("header"),
            ),
            (
                format!("TWILSOCK V3.0 {}\r\n{h}\r\nab", h.len() - 1),
                FrameError::MissingSeparator,
            ),
            (
                format!("TWILSOCK V3.0 {}\r\n{h}\r\na", h.len()),
                FrameError::Truncated("payload"),
            ),
            (
                format!("TWILSOCK V3.0 {}\r\n{h}\r\nabc", h.len()),
                FrameError::TrailingBytes(1),
            ),
            (
                format!("TWILSOCK V3.0 {}\r\n{h}\r\nab\r\n\r\n", h.len()),
                FrameError::TrailingBytes(4),
            ),
            (
                "TWILSOCK V3.0 2\r\n[]\r\n".into(),
                FrameError::BadHeader("not an object".into()),
            ),
            (framed(r#"{"id":"x"}"#), FrameError::NoMethod),
            (framed(r#"{"method":7}"#), FrameError::NoMethod),
            (
                framed(r#"{"method":"a","payload_size":-1}"#),
                FrameError::BadPayloadSize,
            ),
            (
                framed(r#"{"method":"a","payload_size":"2"}"#),
                FrameError::BadPayloadSize,
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(Frame::parse(raw.as_bytes()), Err(want), "{raw:?}");
        }
        assert!(matches!(
            Frame::parse(b"TWILSOCK V3.0 3\r\n{x}\r\n"),
            Err(FrameError::BadHeader(_))
        ));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn header_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            ".{0,12}".prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn encode_then_parse_gives_the_frame_back(
            method in "[a-z_.0-9]{1,16}",
            id in ".{0,40}",
            extra in proptest::collection::btree_map("[a-z_]{1,8}", header_value(), 0..5),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            crlf in any::<bool>(),
        ) {
            let mut f = Frame::new(&method, &id);
            for (k, v) in extra {
                if k != "method" && k != "id" && k != "payload_size" {
                    f.header.insert(k, v);
                }
            }
            f.payload = payload;
            let mut bytes = f.encode();
            if crlf {
                bytes.extend_from_slice(b"\r\n");
            }
            let back = Frame::parse(&bytes).expect("own frames parse");
            prop_assert_eq!(back.method(), method.as_str());
            prop_assert_eq!(back.id(), Some(id.as_str()));
            prop_assert_eq!(&back.payload, &f.payload);
            let mut expected = f.header.clone();
            expected.insert("payload_size".into(), Value::from(f.payload.len() as u64));
            prop_assert_eq!(back.header, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Frame::parse(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            let _ = Frame::parse(&framed);
        }

        #[test]
        fn corrupted_frames_never_panic(
            at in any::<prop::sample::Index>(),
            with in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let f = Frame::new("message", "TM1").with_json(&serde_json::json!({"k": "v"}));
            let mut bytes = f.encode();
            let i = at.index(bytes.len());
            bytes[i] = with;
            let _ = Frame::parse(&bytes);
            let c = cut.index(bytes.len());
            let _ = Frame::parse(&bytes[..c]);
        }
    }
}
