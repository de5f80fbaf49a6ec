//! The webhook sender: one signed HTTP call per attempt, with a per-attempt timeout, no
//! redirects, a capped answer, and the destination policy applied to resolved addresses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use url::Url;

use crate::metrics::WebhookMetrics;
use crate::policy::{DestinationPolicy, FilteringResolver, PolicyError, Refused};
use crate::route::Method;
use crate::sign::{signature, SIGNATURE_HEADER};

/// Chat error: the endpoint answered with an error status (or a redirect) — a failed call.
pub const CODE_ERROR_ANSWER: u32 = 50057;
/// Chat error: no answer within the timeout.
pub const CODE_TIMEOUT: u32 = 50076;

/// `User-Agent` of webhook calls.
pub const USER_AGENT: &str = concat!("Parley-Webhooks/", env!("CARGO_PKG_VERSION"));

/// Sender settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Per attempt, from connecting to the end of the answer (Twilio: 5 s).
    pub timeout: Duration,
    /// Most answer bytes read; the rest is not read (the connection is dropped).
    pub max_response_bytes: usize,
    /// Which addresses may be called.
    pub policy: DestinationPolicy,
}

impl Default for WebhookConfig {
    /// 5 s, 64 KiB, every destination allowed.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_response_bytes: 64 * 1024,
            policy: DestinationPolicy::default(),
        }
    }
}

impl WebhookConfig {
    /// Defaults with the policy from `PARLEY_WEBHOOK_ALLOW` / `PARLEY_WEBHOOK_DENY`.
    pub fn from_env() -> Result<Self, PolicyError> {
        Ok(Self {
            policy: DestinationPolicy::from_env()?,
            ..Self::default()
        })
    }
}

/// One call attempt to make.
#[derive(Clone, PartialEq, Eq)]
pub struct Call {
    /// The configured URL (signed verbatim; a `#fragment` is dropped, it is never sent).
    pub url: String,
    /// GET (parameters in the query string) or POST (form body).
    pub method: Method,
    /// The event's parameters, without `RetryCount`.
    pub params: Vec<(String, String)>,
    /// The account's Auth Token, the signing key. Never logged.
    pub auth_token: String,
    /// The Twilio event name (metrics and logs).
    pub event_type: String,
    /// 0 on the first attempt, then 1, 2, …; sent as `RetryCount`.
    pub retry_count: u32,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("url", &self.url)
            .field("method", &self.method)
            .field("params", &self.params)
            .field("auth_token", &"***")
            .field("event_type", &self.event_type)
            .field("retry_count", &self.retry_count)
            .finish()
    }
}

/// What came of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer; its body up to the configured cap.
    Delivered {
        /// The status (200–299).
        status: u16,
        /// The answer body, at most `max_response_bytes`.
        body: Vec<u8>,
        /// Whether the body was longer than the cap (and cut).
        truncated: bool,
    },
    /// Any other status, redirects included (they are not followed): Chat error 50057.
    ErrorAnswer {
        /// The status.
        status: u16,
    },
    /// No whole answer within the timeout: Chat error 50076.
    Timeout,
    /// Could not connect or the connection broke (DNS failure, refused, reset, TLS).
    Connection(String),
    /// The destination policy refuses every address of the host; nothing was sent.
    Refused(String),
    /// The URL is not an absolute `http`/`https` URL; nothing was sent.
    BadUrl(String),
}

impl Outcome {
    /// Whether the call should be tried again (if retries are left): a timeout, or a 429, 503
    /// or 504 answer (webhooks.md §4). Nothing else is retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout => true,
            Self::ErrorAnswer { status } => matches!(status, 429 | 503 | 504),
            _ => false,
        }
    }

    /// Whether a queued **post-event** call should be tried again (if retries are left): what
    /// [`Self::is_retryable`] retries, and also a connection failure (refused, reset, DNS, TLS —
    /// e.g. a receiver restarting), since the call waits in the queue with a back-off anyway.
    /// Pre-events keep [`Self::is_retryable`]: a client is waiting, and no answer proceeds.
    pub fn is_retryable_post(&self) -> bool {
        self.is_retryable() || matches!(self, Self::Connection(_))
    }

    /// Whether the receiver answered 2xx.
    pub fn is_delivered(&self) -> bool {
        matches!(self, Self::Delivered { .. })
    }

    /// The Chat error code logged for a failed call: 50057 error answer, 50076 timeout.
    pub fn chat_code(&self) -> Option<u32> {
        match self {
            Self::ErrorAnswer { .. } => Some(CODE_ERROR_ANSWER),
            Self::Timeout => Some(CODE_TIMEOUT),
            _ => None,
        }
    }

    /// Metric label: `delivered`, `error_answer`, `timeout`, `connection_error`, `refused`,
    /// `bad_url`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered { .. } => "delivered",
            Self::ErrorAnswer { .. } => "error_answer",
            Self::Timeout => "timeout",
            Self::Connection(_) => "connection_error",
            Self::Refused(_) => "refused",
            Self::BadUrl(_) => "bad_url",
        }
    }
}

/// Delay before retry `retry` (1 = the first retry) of a post-event: a ceiling of 1 s, 2 s,
/// 4 s, … capped at 60 s, and a delay drawn uniformly between half the ceiling and the ceiling.
pub fn backoff(retry: u32) -> Duration {
    backoff_with(retry, &mut rand::thread_rng())
}

/// [`backoff`] with a given randomness source.
pub fn backoff_with(retry: u32, rng: &mut impl Rng) -> Duration {
    const BASE_MS: u64 = 1000;
    const CAP_MS: u64 = 60_000;
    let exp = retry.saturating_sub(1).min(16);
    let ceiling = BASE_MS.saturating_mul(1 << exp).min(CAP_MS);
    Duration::from_millis(rng.gen_range(ceiling / 2..=ceiling))
}

/// Errors building a [`WebhookClient`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The metrics could not be registered.
    #[error("webhook metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The HTTP client could not be built (TLS backend).
    #[error("webhook HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Sends webhook calls. Cheap to clone (shared connection pool).
#[derive(Clone, Debug)]
pub struct WebhookClient {
    http: reqwest::Client,
    config: Arc<WebhookConfig>,
    metrics: WebhookMetrics,
}

impl WebhookClient {
    /// A client whose metrics are registered in `registry`.
    pub fn new(
        config: WebhookConfig,
        registry: &prometheus::Registry,
    ) -> Result<Self, ClientError> {
        Self::with_metrics(config, WebhookMetrics::register(registry)?)
    }

    /// A client counting into already registered `metrics`.
    pub fn with_metrics(
        config: WebhookConfig,
        metrics: WebhookMetrics,
    ) -> Result<Self, ClientError> {
        let policy = Arc::new(config.policy.clone());
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect on our behalf and dodge the address policy.
            .no_proxy()
            .dns_resolver(Arc::new(FilteringResolver { policy }))
            .user_agent(USER_AGENT)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()?;
        Ok(Self {
            http,
            config: Arc::new(config),
            metrics,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// Make one attempt of `call`, counting it in the metrics and logging a failure (with the
    /// Chat code, never the token or the signature). Retrying is the caller's.
    pub async fn send(&self, call: &Call) -> Outcome {
        let started = Instant::now();
        let outcome = self.attempt(call).await;
        self.metrics
            .observe(&call.event_type, outcome.label(), started.elapsed());
        if !outcome.is_delivered() {
            let host = Url::parse(&call.url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            let status = match &outcome {
                Outcome::ErrorAnswer { status } => Some(*status),
                _ => None,
            };
            let detail = match &outcome {
                Outcome::Connection(d) | Outcome::Refused(d) | Outcome::BadUrl(d) => d.as_str(),
                _ => "",
            };
            tracing::warn!(
                event = %call.event_type,
                host = %host,
                outcome = outcome.label(),
                code = outcome.chat_code(),
                status,
                retry_count = call.retry_count,
                detail,
                "webhook call failed"
            );
        }
        outcome
    }

    async fn attempt(&self, call: &Call) -> Outcome {
        let base = call.url.split('#').next().unwrap_or_default();
        let mut params = call.params.clone();
        params.push(("RetryCount".to_owned(), call.retry_count.to_string()));
        let (target, sig, body) = match call.method {
            Method::Post => {
                let sig = signature(base, &params, &call.auth_token);
                (base.to_owned(), sig, Some(encode(&params)))
            }
            Method::Get => {
                let sep = if !base.contains('?') {
                    "?"
                } else if base.ends_with('?') || base.ends_with('&') {
                    ""
                } else {
                    "&"
                };
                let full = format!("{base}{sep}{}", encode(&params));
                let none: [(&str, &str); 0] = [];
                let sig = signature(&full, &none, &call.auth_token);
                (full, sig, None)
            }
        };
        let url = match Url::parse(&target) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
            Ok(u) => return Outcome::BadUrl(format!("scheme {} is not http or https", u.scheme())),
            Err(e) => return Outcome::BadUrl(e.to_string()),
        };
        // IP-literal hosts skip the resolver: check them here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(a)) => Some(std::net::IpAddr::V4(a)),
            Some(url::Host::Ipv6(a)) => Some(std::net::IpAddr::V6(a)),
            _ => None,
        };
        if let Some(ip) = literal {
            if !self.config.policy.permits(ip) {
                return Outcome::Refused(
                    Refused {
                        host: ip.to_string(),
                    }
                    .to_string(),
                );
            }
        }
        // Base64 is always a valid header value; never panic on a request path regardless.
        let Ok(sig) = HeaderValue::from_str(&sig) else {
            return Outcome::BadUrl("the signature is not a header value".to_owned());
        };
        let mut req = match call.method {
            Method::Post => self.http.post(url),
            Method::Get => self.http.get(url),
        };
        req = req.header(SIGNATURE_HEADER, sig);
        if let Some(body) = body {
            req = req
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                )
                .body(body);
        }
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return failure(e),
        };
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            return Outcome::ErrorAnswer { status };
        }
        let cap = self.config.max_response_bytes;
        let mut body = Vec::new();
        let mut truncated = false;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = cap - body.len();
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        truncated = true;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return failure(e),
            }
        }
        Outcome::Delivered {
            status,
            body,
            truncated,
        }
    }
}

fn encode(params: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// Classify a transport error; the message never holds the URL (it may carry secrets).
fn failure(e: reqwest::Error) -> Outcome {
    if e.is_timeout() {
        return Outcome::Timeout;
    }
    let mut chain = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(err) = source {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Outcome::Refused(r.to_string());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return Outcome::Timeout;
            }
        }
        chain.push(err.to_string());
        source = err.source();
    }
    let head = e.without_url().to_string();
    Outcome::Connection(if chain.is_empty() {
        head
    } else {
        format!("{head}: {}", chain.join(": "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn only_timeouts_and_429_503_504_are_retryable() {
        assert!(Outcome::Timeout.is_retryable());
        for s in [429, 503, 504] {
            assert!(Outcome::ErrorAnswer { status: s }.is_retryable(), "{s}");
        }
        for s in [301, 302, 400, 404, 500, 502] {
            assert!(!Outcome::ErrorAnswer { status: s }.is_retryable(), "{s}");
        }
        assert!(!Outcome::Connection("refused".into()).is_retryable());
        assert!(Outcome::Connection("refused".into()).is_retryable_post());
        assert!(Outcome::Timeout.is_retryable_post());
        assert!(Outcome::ErrorAnswer { status: 503 }.is_retryable_post());
        assert!(!Outcome::ErrorAnswer { status: 500 }.is_retryable_post());
        assert!(!Outcome::Refused("x".into()).is_retryable_post());
        assert!(!Outcome::BadUrl("x".into()).is_retryable_post());
        assert!(!Outcome::Refused("x".into()).is_retryable());
        assert!(!Outcome::BadUrl("x".into()).is_retryable());
        let ok = Outcome::Delivered {
            status: 200,
            body: vec![],
            truncated: false,
        };
        assert!(!ok.is_retryable());
        assert!(ok.is_delivered());
    }

    #[test]
    fn failures_carry_their_chat_code() {
        assert_eq!(
            Outcome::ErrorAnswer { status: 500 }.chat_code(),
            Some(50057)
        );
        assert_eq!(Outcome::Timeout.chat_code(), Some(50076));
        assert_eq!(Outcome::Connection("x".into()).chat_code(), None);
    }

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute_with_jitter() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (retry, ceiling_ms) in [(1, 1000), (2, 2000), (3, 4000), (7, 60_000), (40, 60_000)] {
            for _ in 0..50 {
                let d = backoff_with(retry, &mut rng).as_millis() as u64;
                assert!(
                    d >= ceiling_ms / 2 && d <= ceiling_ms,
                    "retry {retry}: {d} ms"
                );
            }
        }
        // Jitter: not always the same value.
        let a: Vec<_> = (0..10).map(|_| backoff_with(3, &mut rng)).collect();
        assert!(a.iter().any(|d| *d != a[0]));
    }

    #[test]
    fn a_call_never_shows_its_token() {
        let call = Call {
            url: "https://example.com/hook".into(),
            method: Method::Post,
            params: vec![],
            auth_token: "s3cr3t-token".into(),
            event_type: "onMessageSent".into(),
            retry_count: 0,
        };
        let shown = format!("{call:?}");
        assert!(!shown.contains("s3cr3t-token"));
        assert!(shown.contains("***"));
    }
}
