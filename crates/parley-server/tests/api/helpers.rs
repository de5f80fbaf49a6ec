//! `TestApp`: the real router over a fresh store, with two accounts and an API key. Helpers only
//! speak HTTP; accounts and API keys come from the admin functions (there is no HTTP API for them).

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::Mac;
use http_body_util::BodyExt;
use parley_core::crypto::SecretBox;
use parley_core::store::Store;
use parley_fakes::{spawn_fakes, Fakes};
use parley_http::{AppState, HttpConfig};
use parley_push::{ApnsConfig, FcmConfig, Providers, PushSender, Worker, WorkerConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

/// Which store.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generate one `#[tokio::test]` per backend for an `async fn(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::helpers::postgres_skipped().await {
                        return;
                    }
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}

/// Credentials of one account.
#[derive(Clone, Debug)]
pub struct Creds {
    pub sid: String,
    pub token: String,
}

pub struct TestApp {
    pub router: Router,
    pub store: Arc<dyn Store>,
    pub secrets: SecretBox,
    pub base: String,
    pub account: Creds,
    pub other: Creds,
    pub api_key: Creds,
    pub other_api_key: Creds,
    _watcher: AbortOnDrop,
    _dir: Option<TempDir>,
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique() -> String {
    format!("{}_{:016x}", std::process::id(), rand::random::<u64>())
}

async fn store_for(backend: Backend) -> (Arc<dyn Store>, Option<TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("parley-api-{}", unique()));
            std::fs::create_dir_all(&dir).unwrap();
            let url = format!("sqlite://{}", dir.join("api.db").display());
            let store = parley_store_sqlite::SqliteStore::connect(&url)
                .await
                .unwrap();
            (Arc::new(store), Some(TempDir(dir)))
        }
        Backend::Postgres => {
            let url = postgres_url();
            let schema = format!("parley_test_{}_{}", now_secs(), unique());
            match parley_store_postgres::PgStore::connect_in_schema(&url, &schema).await {
                Ok(s) => (Arc::new(s), None),
                Err(e) => {
                    panic!("PostgreSQL unreachable at {url}: {e:#} (set PARLEY_SKIP_POSTGRES=1 outside CI to skip)");
                }
            }
        }
    }
}

fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Should this PostgreSQL test skip itself? Only when `PARLEY_SKIP_POSTGRES=1`, `CI` is not
/// `true` and PostgreSQL really is unreachable. A skip is written straight to the process's
/// stderr (libtest would swallow `eprintln!` of a passing test), naming the test; only the
/// calling test returns early.
pub async fn postgres_skipped() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if ci || !std::env::var("PARLEY_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        return false;
    }
    static PROBE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let url = postgres_url();
    let Some(err) = PROBE.get_or_init(|| tcp_probe(&url).err()) else {
        return false;
    };
    use std::io::Write as _;
    let test = std::thread::current()
        .name()
        .unwrap_or("a PostgreSQL test")
        .to_owned();
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: PostgreSQL unusable at {url} (PARLEY_SKIP_POSTGRES=1): {err}"
    );
    true
}

/// Can a TCP connection to the URL's host and port be made? (The error text otherwise.)
fn tcp_probe(url: &str) -> Result<(), String> {
    use std::net::ToSocketAddrs as _;
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let hostport = rest.split(['/', '?']).next().unwrap_or("");
    let hostport = if hostport.is_empty() {
        "127.0.0.1"
    } else {
        hostport
    };
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    let addrs = with_port.to_socket_addrs().map_err(|e| e.to_string())?;
    let mut last = format!("no address for {with_port}");
    for addr in addrs {
        match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5)) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, HttpConfig::default()).await
    }

    pub async fn spawn_with(backend: Backend, config: HttpConfig) -> Self {
        Self::build(backend, config, None).await.0
    }

    /// With a push worker whose providers are in-process fake APNs/FCM servers.
    pub async fn spawn_push(backend: Backend, worker: WorkerConfig) -> (Self, Arc<Worker>, Fakes) {
        let (app, w) = Self::build(backend, HttpConfig::default(), Some(worker)).await;
        let (w, fakes) = w.unwrap();
        (app, w, fakes)
    }

    /// Another worker ("node") over the same store and fakes.
    pub fn second_worker(&self, fakes: &Fakes, config: WorkerConfig) -> Arc<Worker> {
        make_worker(
            self.store.clone(),
            self.secrets.clone(),
            fakes,
            config,
            None,
        )
    }

    async fn build(
        backend: Backend,
        mut config: HttpConfig,
        push: Option<WorkerConfig>,
    ) -> (Self, Option<(Arc<Worker>, Fakes)>) {
        let (store, dir) = store_for(backend).await;
        let secrets = SecretBox::from_hex(&SecretBox::generate_hex()).unwrap();
        let base = "http://parley.test:8080".to_owned();
        config.public_url = base.clone();
        let a = parley_server::admin::create_account(store.as_ref(), &secrets, None, None, None)
            .await
            .unwrap();
        let b = parley_server::admin::create_account(store.as_ref(), &secrets, None, None, None)
            .await
            .unwrap();
        let ka = parley_server::admin::create_api_key(store.as_ref(), &secrets, &a.sid, None)
            .await
            .unwrap();
        let kb = parley_server::admin::create_api_key(store.as_ref(), &secrets, &b.sid, None)
            .await
            .unwrap();
        let fakes = match push {
            Some(_) => Some(spawn_fakes().await.unwrap()),
            None => None,
        };
        if let Some(f) = &fakes {
            // The fake FCM's token endpoint, as operators allow it with PARLEY_FCM_TOKEN_URI_ALLOW.
            config.fcm_token_uri_allow.push(f.fcm_url.clone());
        }
        let mut state = AppState::new(store.clone(), secrets.clone(), config);
        let mut pushing = None;
        if let (Some(wc), Some(fakes)) = (push, fakes) {
            // As the server does: the worker's metrics are served at /metrics.
            let metrics = parley_push::PushMetrics::register(state.metrics.registry()).ok();
            let worker = make_worker(store.clone(), secrets.clone(), &fakes, wc, metrics);
            state =
                state.with_push_tester(Arc::new(parley_server::push::WorkerTester(worker.clone())));
            pushing = Some((worker, fakes));
        }
        // As the server does: remembered credential checks, kept honest by the watcher.
        let watcher = tokio::spawn(state.credential_watcher().run());
        let router = parley_http::router(state);
        let app = Self {
            router,
            store,
            secrets,
            base,
            account: Creds {
                sid: a.sid.to_string(),
                token: a.auth_token,
            },
            other: Creds {
                sid: b.sid.to_string(),
                token: b.auth_token,
            },
            api_key: Creds {
                sid: ka.sid.to_string(),
                token: ka.secret,
            },
            other_api_key: Creds {
                sid: kb.sid.to_string(),
                token: kb.secret,
            },
            _watcher: AbortOnDrop(watcher),
            _dir: dir,
        };
        (app, pushing)
    }

    /// Any request; `auth` = Basic credentials; `form` = form body. Returns status, headers, JSON
    /// (`Value::Null` for an empty body).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        auth: Option<&Creds>,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(c) = auth {
            let basic = STANDARD.encode(format!("{}:{}", c.sid, c.token));
            req = req.header(header::AUTHORIZATION, format!("Basic {basic}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = if form.is_empty() {
            Body::empty()
        } else {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in form {
                s.append_pair(k, v);
            }
            Body::from(s.finish())
        };
        self.send(req.body(body).unwrap()).await
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, headers, value)
    }

    /// Strip the public base from an absolute URL the server gave us.
    pub fn local(&self, url: &str) -> String {
        url.strip_prefix(&self.base)
            .unwrap_or_else(|| panic!("{url} does not start with {}", self.base))
            .to_owned()
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let (s, _, v) = self
            .call(Method::GET, uri, Some(&self.account), &[], &[])
            .await;
        (s, v)
    }

    pub async fn post(&self, uri: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let (s, _, v) = self
            .call(Method::POST, uri, Some(&self.account), form, &[])
            .await;
        (s, v)
    }

    pub async fn delete(&self, uri: &str) -> (StatusCode, Value) {
        let (s, _, v) = self
            .call(Method::DELETE, uri, Some(&self.account), &[], &[])
            .await;
        (s, v)
    }

    /// POST /v2/Services; returns the service SID.
    pub async fn create_service(&self, name: &str) -> String {
        let (s, v) = self.post("/v2/Services", &[("FriendlyName", name)]).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["sid"].as_str().unwrap().to_owned()
    }

    /// POST …/Users; returns the user JSON.
    pub async fn create_user(&self, service: &str, identity: &str) -> Value {
        let (s, v) = self
            .post(
                &format!("/v2/Services/{service}/Users"),
                &[("Identity", identity)],
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    /// POST /v2/Credentials of `kind`; returns its SID.
    pub async fn create_credential(&self, kind: &str) -> String {
        let sa = service_account_json("https://oauth2.googleapis.com/token");
        let form: Vec<(&str, &str)> = match kind {
            "apn" => vec![
                ("Type", "apn"),
                ("Certificate", APNS_CERT),
                ("PrivateKey", APNS_CERT_KEY),
                ("Sandbox", "true"),
            ],
            "fcm" => vec![("Type", "fcm"), ("Secret", &sa)],
            other => vec![("Type", other), ("ApiKey", "legacy-key")],
        };
        let (s, v) = self.post("/v2/Credentials", &form).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["sid"].as_str().unwrap().to_owned()
    }

    /// Parley's server-side registration door.
    pub async fn register(
        &self,
        service: &str,
        identity: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let path = format!("/v2/Services/{service}/Users/{}/Bindings", encode(identity));
        self.post(&path, form).await
    }

    /// Every item of a list, following `next_page_url` from `first`.
    pub async fn collect_all(&self, first: &str) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut pages = 0;
        let mut next = Some(first.to_owned());
        while let Some(uri) = next {
            let (s, v) = self.get(&uri).await;
            assert_eq!(s, StatusCode::OK, "{uri}: {v}");
            pages += 1;
            let key = v["meta"]["key"].as_str().unwrap().to_owned();
            items.extend(v[&key].as_array().unwrap().iter().cloned());
            next = v["meta"]["next_page_url"].as_str().map(|u| self.local(u));
            assert!(pages < 1000, "runaway paging");
        }
        (items, pages)
    }
}

fn make_worker(
    store: Arc<dyn Store>,
    secrets: SecretBox,
    fakes: &Fakes,
    config: WorkerConfig,
    metrics: Option<parley_push::PushMetrics>,
) -> Arc<Worker> {
    let sender: Arc<dyn PushSender> = Arc::new(Providers::new(
        ApnsConfig::with_base_url(&fakes.apns_url),
        FcmConfig::with_base_url(&fakes.fcm_url),
    ));
    Worker::new(store.clone(), store, secrets, sender, config, metrics)
}

/// TEST-ONLY APNs certificate (subject UID `com.example.parley`) and its RSA key.
pub const APNS_CERT: &str =
    include_str!("../../../parley-push/tests/fixtures/TEST-ONLY-apns-cert.pem");
/// The key of [`APNS_CERT`].
pub const APNS_CERT_KEY: &str =
    include_str!("../../../parley-push/tests/fixtures/TEST-ONLY-apns-cert-key.pem");
/// TEST-ONLY RSA key of the fake service account.
pub const SA_KEY: &str =
    include_str!("../../../parley-push/tests/fixtures/TEST-ONLY-fcm-sa-key.pem");

/// A valid (TEST-ONLY) Google service-account JSON naming `token_uri`.
pub fn service_account_json(token_uri: &str) -> String {
    serde_json::json!({
        "type": "service_account", "project_id": "demo-project", "private_key_id": "kid",
        "private_key": SA_KEY, "client_email": "push@demo-project.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": token_uri,
    })
    .to_string()
}

/// Percent-encode a path segment.
pub fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// An Access Token as twilio-python's `AccessToken` + `ChatGrant` make it (twilio-notes §3d).
pub fn access_token(
    key: &Creds,
    account: &str,
    identity: &str,
    chat: Value,
    exp_offset: i64,
) -> String {
    let now = now_secs() as i64;
    let header = json!({"alg": "HS256", "cty": "twilio-fpa;v=1", "typ": "JWT"});
    let payload = json!({
        "jti": format!("{}-{now}", key.sid),
        "grants": {"chat": chat, "identity": identity},
        "iss": key.sid,
        "exp": now + exp_offset,
        "nbf": now,
        "sub": account,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key.token.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// The eight-field shape every error body must have.
pub fn assert_twilio_error(v: &Value, status: u16, code: u64) {
    assert_eq!(v["status"], status, "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(
        v["more_info"],
        format!("https://www.twilio.com/docs/errors/{code}"),
        "{v}"
    );
    assert!(v.get("type").is_none() && v.get("title").is_none(), "{v}");
}

/// The fields of `chat.v2.credential`, sorted: a credential answer has exactly these.
pub const CREDENTIAL_FIELDS: [&str; 8] = [
    "account_sid",
    "date_created",
    "date_updated",
    "friendly_name",
    "sandbox",
    "sid",
    "type",
    "url",
];

/// The keys of a JSON object, sorted.
pub fn sorted_keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    keys
}
