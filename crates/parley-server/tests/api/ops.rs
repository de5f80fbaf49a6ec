use axum::http::{header, Method, StatusCode};

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

async fn health_ready_and_metrics_answer_without_auth(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (s, _, v) = app.call(Method::GET, "/healthz", None, &[], &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "ok");
    let (s, _, v) = app.call(Method::GET, "/readyz", None, &[], &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "ready");
    app.create_service("s").await;
    let (s, _, v) = app.call(Method::GET, "/metrics", None, &[], &[]).await;
    assert_eq!(s, StatusCode::OK);
    let text = v.as_str().unwrap();
    assert!(
        text.contains(
            r#"parley_http_requests_total{method="POST",route="/v2/Services",status="201"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("parley_http_request_duration_seconds_bucket"));
    assert!(text.contains("parley_db_pool_connections{state=\"open\"}"));
}

/// What a browser accepts: `Allow-Origin: *` only without `Allow-Credentials: true` (and a
/// specific origin with it).
fn assert_browser_accepts(h: &axum::http::HeaderMap, origin: &str) {
    let allow_origin = h[header::ACCESS_CONTROL_ALLOW_ORIGIN].to_str().unwrap();
    let credentials = h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS]
        .to_str()
        .unwrap();
    assert!(
        credentials == "true" || credentials == "false",
        "a boolean, as the spec declares: {credentials}"
    );
    if credentials == "true" {
        assert_eq!(allow_origin, origin, "credentials need the exact origin");
    } else {
        assert!(
            allow_origin == "*" || allow_origin == origin,
            "{allow_origin}"
        );
    }
}

async fn cors_headers_on_success_and_preflight(b: Backend) {
    let app = TestApp::spawn(b).await;
    let origin = "https://app.example.com";
    let (s, h, _) = app
        .call(
            Method::GET,
            "/v2/Services",
            Some(&app.account),
            &[],
            &[("Origin", origin)],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_browser_accepts(&h, origin);
    assert!(h.contains_key(header::ACCESS_CONTROL_ALLOW_METHODS));
    assert!(h.contains_key(header::ACCESS_CONTROL_ALLOW_HEADERS));
    assert!(h.contains_key(header::ACCESS_CONTROL_EXPOSE_HEADERS));
    // Preflight: no auth needed; Authorization and X-Twilio-Token are allowed by name (a `*`
    // in Allow-Headers does not cover Authorization).
    let (s, h, _) = app
        .call(
            Method::OPTIONS,
            "/v2/Services",
            None,
            &[],
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization,content-type,x-twilio-token",
                ),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_browser_accepts(&h, origin);
    let allowed: Vec<String> = h[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .split(',')
        .map(|v| v.trim().to_ascii_lowercase())
        .collect();
    for wanted in ["authorization", "content-type", "x-twilio-token"] {
        assert!(allowed.iter().any(|a| a == wanted), "{wanted}: {allowed:?}");
    }
    let methods = h[header::ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
}

both_backends!(
    health_ready_and_metrics_answer_without_auth,
    cors_headers_on_success_and_preflight
);
