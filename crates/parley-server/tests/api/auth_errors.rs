use axum::http::{header, Method, StatusCode};

use crate::both_backends;
use crate::helpers::{assert_twilio_error, Backend, Creds, TestApp};

async fn missing_or_wrong_credentials_are_401_20003_with_www_authenticate(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wrong = Creds {
        sid: app.account.sid.clone(),
        token: "0".repeat(32),
    };
    let unknown = Creds {
        sid: "AC00000000000000000000000000000000".into(),
        token: "x".into(),
    };
    let garbage = Creds {
        sid: "nobody".into(),
        token: "x".into(),
    };
    for creds in [None, Some(&wrong), Some(&unknown), Some(&garbage)] {
        let (s, h, v) = app.call(Method::GET, "/v2/Services", creds, &[], &[]).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{creds:?}");
        assert_twilio_error(&v, 401, 20003);
        assert_eq!(h[header::WWW_AUTHENTICATE], "Basic realm=\"Twilio API\"");
    }
}

async fn api_key_credentials_act_for_their_account(b: Backend) {
    let app = TestApp::spawn(b).await;
    let service = app.create_service("s").await;
    let (s, _, v) = app
        .call(
            Method::GET,
            &format!("/v2/Services/{service}"),
            Some(&app.api_key),
            &[],
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, _) = app
        .call(
            Method::GET,
            &format!("/v2/Services/{service}"),
            Some(&app.other_api_key),
            &[],
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn unknown_routes_and_wrong_methods_get_twilio_bodies(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (s, _, v) = app
        .call(Method::GET, "/v2/Nope", Some(&app.account), &[], &[])
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_twilio_error(&v, 404, 20404);
    let (s, h, v) = app
        .call(Method::PUT, "/v2/Services", Some(&app.account), &[], &[])
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_twilio_error(&v, 405, 20004);
    let allow = h[header::ALLOW].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let (s, _, v) = app
        .call(
            Method::GET,
            "/v2/Services/ISnot-a-sid",
            Some(&app.account),
            &[],
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        v["message"],
        "The requested resource /Services/ISnot-a-sid was not found"
    );
}

async fn non_form_bodies_are_rejected_and_list_gets_tolerate_a_form_content_type(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (s, _, v) = app
        .call(
            Method::GET,
            "/v2/Services",
            Some(&app.account),
            &[],
            &[("Content-Type", "application/x-www-form-urlencoded")],
        )
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "twilio-python sends this on list GETs: {v}"
    );
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/v2/Services")
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::AUTHORIZATION,
            format!(
                "Basic {}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    format!("{}:{}", app.account.sid, app.account.token)
                )
            ),
        )
        .body(axum::body::Body::from("{\"FriendlyName\":\"x\"}"))
        .unwrap();
    let (s, _, v) = app.send(req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_twilio_error(&v, 400, 20001);
}

async fn rate_limit_answers_429_with_retry_after(b: Backend) {
    let config = parley_http::HttpConfig {
        rate_limit_per_sec: Some(3),
        ..Default::default()
    };
    let app = TestApp::spawn_with(b, config).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let (s, h, v) = app
            .call(Method::GET, "/v2/Services", Some(&app.account), &[], &[])
            .await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_twilio_error(&v, 429, 20429);
            retry_after = h
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().to_owned());
        }
        statuses.push(s.as_u16());
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let (s, _, _) = app
        .call(Method::GET, "/v2/Services", Some(&app.other), &[], &[])
        .await;
    assert_eq!(s, StatusCode::OK, "other accounts have their own budget");
}

/// A rotated auth token or a deleted API key stops working once `parley account rotate-token`
/// (`api-key delete`) has returned, even on a node that has just used it and remembers the
/// check.
async fn a_rotated_token_or_deleted_key_is_refused_at_once(b: Backend) {
    let app = TestApp::spawn(b).await;
    for creds in [&app.account, &app.api_key] {
        let (s, _, _) = app
            .call(Method::GET, "/v2/Services", Some(creds), &[], &[])
            .await;
        assert_eq!(s, StatusCode::OK, "{creds:?} works (and is now cached)");
    }
    let account = parley_core::AccountSid::parse(&app.account.sid).unwrap();
    let rotated =
        parley_server::admin::rotate_auth_token(app.store.as_ref(), &app.secrets, &account)
            .await
            .unwrap();
    parley_server::admin::delete_api_key(
        app.store.as_ref(),
        &parley_core::ApiKeySid::parse(&app.api_key.sid).unwrap(),
    )
    .await
    .unwrap();
    for creds in [&app.account, &app.api_key] {
        let (s, _, v) = app
            .call(Method::GET, "/v2/Services", Some(creds), &[], &[])
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{creds:?}: {v}");
        assert_twilio_error(&v, 401, 20003);
    }
    let new = Creds {
        sid: app.account.sid.clone(),
        token: rotated.auth_token,
    };
    let (s, _, _) = app
        .call(Method::GET, "/v2/Services", Some(&new), &[], &[])
        .await;
    assert_eq!(s, StatusCode::OK, "the new token works at once");
}

/// A credential changed straight in the store — as another process or node commits it, without
/// the admin command's wait — is refused within `CREDENTIAL_CHECK_VALID` of the commit by a node
/// that remembers the check, and never accepted again; the new token works.
async fn a_credential_changed_behind_the_nodes_back_is_refused_within_the_check_window(b: Backend) {
    let app = TestApp::spawn(b).await;
    let account = parley_core::AccountSid::parse(&app.account.sid).unwrap();
    // Let the watcher run its first check, then use the credential so the node remembers it.
    tokio::time::sleep(parley_http::auth::CREDENTIAL_POLL * 3).await;
    for _ in 0..3 {
        let (s, _, _) = app
            .call(Method::GET, "/v2/Services", Some(&app.account), &[], &[])
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let new_token = "f".repeat(32);
    app.store
        .set_auth_token(
            &account,
            &app.secrets.seal_str(&new_token),
            parley_core::Timestamp::now(),
        )
        .await
        .unwrap();
    let committed = std::time::Instant::now();
    let refused_after = loop {
        let (s, _, _) = app
            .call(Method::GET, "/v2/Services", Some(&app.account), &[], &[])
            .await;
        if s == StatusCode::UNAUTHORIZED {
            break committed.elapsed();
        }
        assert_eq!(s, StatusCode::OK);
        assert!(
            committed.elapsed() < std::time::Duration::from_secs(5),
            "the old token is still accepted 5 s after the change"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    // The bound is the check window (plus the time one request takes on a loaded machine).
    assert!(
        refused_after
            <= parley_http::auth::CREDENTIAL_CHECK_VALID + std::time::Duration::from_millis(750),
        "refused only after {refused_after:?}"
    );
    for _ in 0..20 {
        let (s, _, _) = app
            .call(Method::GET, "/v2/Services", Some(&app.account), &[], &[])
            .await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "the old token never comes back"
        );
    }
    let new = Creds {
        sid: app.account.sid.clone(),
        token: new_token,
    };
    let (s, _, _) = app
        .call(Method::GET, "/v2/Services", Some(&new), &[], &[])
        .await;
    assert_eq!(s, StatusCode::OK, "the new token works");
}

both_backends!(
    a_rotated_token_or_deleted_key_is_refused_at_once,
    a_credential_changed_behind_the_nodes_back_is_refused_within_the_check_window,
    missing_or_wrong_credentials_are_401_20003_with_www_authenticate,
    api_key_credentials_act_for_their_account,
    unknown_routes_and_wrong_methods_get_twilio_bodies,
    non_form_bodies_are_rejected_and_list_gets_tolerate_a_form_content_type,
    rate_limit_answers_429_with_retry_after,
);
