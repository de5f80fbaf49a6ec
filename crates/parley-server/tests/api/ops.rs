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

async fn cors_headers_on_success_and_preflight(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (s, h, _) = app
        .call(Method::GET, "/v2/Services", Some(&app.account), &[], &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    assert!(h.contains_key(header::ACCESS_CONTROL_ALLOW_METHODS));
    assert!(h.contains_key(header::ACCESS_CONTROL_ALLOW_HEADERS));
    assert!(h.contains_key(header::ACCESS_CONTROL_EXPOSE_HEADERS));
    let (s, h, _) = app
        .call(Method::OPTIONS, "/v2/Services", None, &[], &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
}

both_backends!(
    health_ready_and_metrics_answer_without_auth,
    cors_headers_on_success_and_preflight
);
