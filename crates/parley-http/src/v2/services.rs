//! Services: ListService, CreateService, FetchService, UpdateService, DeleteService
//! (contract §3; defaults in service-defaults.md §3).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::role::RoleType;
use parley_core::service::{
    NewService, NotificationPatch, NotificationSetting, Service, ServicePatch, MAX_LIMIT,
};
use parley_core::{RoleSid, ServiceSid, Timestamp};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{account, date, Segments};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::paging::{ListPath, PageQuery, SERVICES};
use crate::params::{Form, Params, Query};
use crate::urls::UrlBuilder;
use crate::AppState;

/// Longest friendly name (Chat 50003 "Friendly name too long"; GUESS: 256, as channel names).
const MAX_FRIENDLY_NAME: usize = 256;
/// Longest notification template (Chat 50058; GUESS, documented: 1,024 characters).
const MAX_TEMPLATE: usize = 1024;
/// Longest notification sound name (Chat 50059; GUESS: 256 characters).
const MAX_SOUND: usize = 256;
/// Longest `Media.CompatibilityMessage` (no Twilio limit found; a documented choice: 1,024
/// characters, as templates; 400/20001).
const MAX_COMPATIBILITY_MESSAGE: usize = 1024;
/// Longest pre-/post-webhook URL (no Twilio limit found; a documented choice: 2,048
/// characters; too long is the URL's own code, 50077/50078).
const MAX_WEBHOOK_URL: usize = 2048;
/// Most `WebhookFilters` values in one request (repeats counted). Twilio knows 23 filter
/// names; a documented choice: 64 (400/20001).
const MAX_WEBHOOK_FILTERS: usize = 64;
/// Longest `WebhookFilters` value (the longest Twilio name has 18; a documented choice: 64
/// characters; 400/20001).
const MAX_WEBHOOK_FILTER: usize = 64;

/// Wire form of a service (`chat.v2.service`).
#[derive(Serialize)]
pub(crate) struct ServiceResource {
    sid: String,
    account_sid: String,
    friendly_name: String,
    date_created: String,
    date_updated: String,
    default_service_role_sid: Option<String>,
    default_channel_role_sid: Option<String>,
    default_channel_creator_role_sid: Option<String>,
    read_status_enabled: bool,
    reachability_enabled: bool,
    typing_indicator_timeout: i64,
    consumption_report_interval: i64,
    limits: Value,
    pre_webhook_url: Option<String>,
    post_webhook_url: Option<String>,
    webhook_method: Option<String>,
    webhook_filters: Option<Vec<String>>,
    pre_webhook_retry_count: i64,
    post_webhook_retry_count: i64,
    notifications: Value,
    media: Value,
    url: String,
    links: Value,
}

fn notification(n: &NotificationSetting) -> Value {
    let mut m = Map::new();
    m.insert("enabled".into(), json!(n.enabled));
    if let Some(t) = &n.template {
        m.insert("template".into(), json!(t));
    }
    if let Some(s) = &n.sound {
        m.insert("sound".into(), json!(s));
    }
    if let Some(b) = n.badge_count_enabled {
        m.insert("badge_count_enabled".into(), json!(b));
    }
    Value::Object(m)
}

impl ServiceResource {
    pub(crate) fn new(s: &Service, urls: &UrlBuilder) -> Self {
        let st = &s.settings;
        let sid = s.sid.as_str();
        Self {
            sid: sid.to_owned(),
            account_sid: s.account_sid.to_string(),
            friendly_name: s.friendly_name.clone(),
            date_created: date(s.date_created),
            date_updated: date(s.date_updated),
            default_service_role_sid: s.default_service_role_sid.as_ref().map(ToString::to_string),
            default_channel_role_sid: s.default_channel_role_sid.as_ref().map(ToString::to_string),
            default_channel_creator_role_sid: s
                .default_channel_creator_role_sid
                .as_ref()
                .map(ToString::to_string),
            read_status_enabled: st.read_status_enabled,
            reachability_enabled: st.reachability_enabled,
            typing_indicator_timeout: st.typing_indicator_timeout,
            consumption_report_interval: st.consumption_report_interval,
            limits: json!({
                "channel_members": st.limits.channel_members,
                "user_channels": st.limits.user_channels,
            }),
            pre_webhook_url: st.pre_webhook_url.clone(),
            post_webhook_url: st.post_webhook_url.clone(),
            webhook_method: st.webhook_method.clone(),
            webhook_filters: st.webhook_filters.clone(),
            pre_webhook_retry_count: st.pre_webhook_retry_count,
            post_webhook_retry_count: st.post_webhook_retry_count,
            notifications: json!({
                "log_enabled": st.notifications.log_enabled,
                "new_message": notification(&st.notifications.new_message),
                "added_to_channel": notification(&st.notifications.added_to_channel),
                "removed_from_channel": notification(&st.notifications.removed_from_channel),
                "invited_to_channel": notification(&st.notifications.invited_to_channel),
            }),
            media: json!({
                "size_limit_mb": st.media.size_limit_mb,
                "compatibility_message": st.media.compatibility_message,
            }),
            url: urls.service(sid),
            links: json!({
                "channels": urls.in_service(sid, "Channels"),
                "users": urls.in_service(sid, "Users"),
                "roles": urls.in_service(sid, "Roles"),
                "bindings": urls.in_service(sid, "Bindings"),
            }),
        }
    }
}

fn friendly_name(p: &Params, name: &str) -> Result<Option<String>, ApiError> {
    match p.string(name) {
        Some(n) if n.chars().count() > MAX_FRIENDLY_NAME => Err(ApiError::chat_param(
            50003,
            name,
            format!("{name} is too long ({MAX_FRIENDLY_NAME} characters at most)"),
        )),
        other => Ok(other),
    }
}

/// Twilio ListService — `GET /v2/Services`
pub(crate) async fn list(
    auth: Authenticated,
    State(app): State<AppState>,
    Query(q): Query,
    path: ListPath,
) -> Result<crate::paging::ListBody, ApiError> {
    let pq = PageQuery::parse(&q, SERVICES, path.as_str(), &[], &app.secrets)?;
    let page = app.store.list_services(account(&auth), &pq.request).await?;
    let body = pq.envelope(page, &app.urls, &app.secrets, |s| {
        ServiceResource::new(s, &app.urls)
    })?;
    Ok(body)
}

/// Twilio CreateService — `POST /v2/Services`
pub(crate) async fn create(
    auth: Authenticated,
    State(app): State<AppState>,
    Form(p): Form,
) -> Result<(StatusCode, Json<ServiceResource>), ApiError> {
    p.required("FriendlyName")?;
    let name = friendly_name(&p, "FriendlyName")?.unwrap_or_default();
    let new = NewService::with_defaults(account(&auth), &name, Timestamp::now());
    let service = app.store.create_service(&new).await?;
    Ok((
        StatusCode::CREATED,
        Json(ServiceResource::new(&service, &app.urls)),
    ))
}

/// Twilio FetchService — `GET /v2/Services/{Sid}`
pub(crate) async fn fetch(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<Json<ServiceResource>, ApiError> {
    let sid: ServiceSid = seg.sid(0)?;
    let service = app.store.fetch_service(account(&auth), &sid).await?;
    Ok(Json(ServiceResource::new(&service, &app.urls)))
}

/// Twilio DeleteService — `DELETE /v2/Services/{Sid}` (cascades to everything it owns)
pub(crate) async fn delete(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<StatusCode, ApiError> {
    let sid: ServiceSid = seg.sid(0)?;
    app.store.delete_service(account(&auth), &sid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Twilio UpdateService — `POST /v2/Services/{Sid}`
pub(crate) async fn update(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Form(p): Form,
) -> Result<Json<ServiceResource>, ApiError> {
    let sid: ServiceSid = seg.sid(0)?;
    // A missing service is a 404 whatever the parameters.
    app.store.fetch_service(account(&auth), &sid).await?;
    let patch = parse_update(&p)?;
    let patch = with_roles(&app, &auth, &sid, &p, patch).await?;
    let service = app
        .store
        .patch_service(account(&auth), &sid, &patch, Timestamp::now())
        .await?;
    Ok(Json(ServiceResource::new(&service, &app.urls)))
}

async fn role_param(
    app: &AppState,
    auth: &Authenticated,
    service: &ServiceSid,
    p: &Params,
    name: &str,
    want: RoleType,
    code: u32,
) -> Result<Option<RoleSid>, ApiError> {
    let Some(text) = p.get(name) else {
        return Ok(None);
    };
    let not_found = || {
        ApiError::chat_param(
            code,
            name,
            format!("{name}: role {} not found", crate::params::clip(text)),
        )
    };
    let sid = RoleSid::parse(text).map_err(|_| not_found())?;
    let role = match app.store.fetch_role(account(auth), service, &sid).await {
        Ok(r) => r,
        Err(parley_core::store::StoreError::NotFound) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if role.role_type != want {
        return Err(ApiError::chat_param(
            code,
            name,
            format!(
                "{name} must be a {} role, {sid} is a {} role",
                want.as_str(),
                role.role_type.as_str()
            ),
        ));
    }
    Ok(Some(sid))
}

fn non_negative(p: &Params, name: &str, code: u32, max: i64) -> Result<Option<i64>, ApiError> {
    match p.int(name)? {
        Some(v) if !(0..=max).contains(&v) => Err(ApiError::chat_param(
            code,
            name,
            format!("{name} must be between 0 and {max}"),
        )),
        other => Ok(other),
    }
}

fn webhook_url(p: &Params, name: &str, code: u32) -> Result<Option<Option<String>>, ApiError> {
    match p.get(name) {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(u) if crate::params::too_long(u, MAX_WEBHOOK_URL) => Err(ApiError::chat_param(
            code,
            name,
            format!("{name} is too long ({MAX_WEBHOOK_URL} characters at most)"),
        )),
        Some(u) => match url::Url::parse(u) {
            Ok(parsed)
                if matches!(parsed.scheme(), "http" | "https")
                    && parsed.host_str().is_some_and(|h| !h.is_empty()) =>
            {
                Ok(Some(Some(u.to_owned())))
            }
            _ => Err(ApiError::chat_param(
                code,
                name,
                format!("{name} must be an http or https URL"),
            )),
        },
    }
}

fn text_limit(p: &Params, name: &str, max: usize, code: u32) -> Result<Option<String>, ApiError> {
    match p.string(name) {
        Some(t) if t.chars().count() > max => Err(ApiError::chat_param(
            code,
            name,
            format!("{name} is too long ({max} characters at most)"),
        )),
        other => Ok(other),
    }
}

fn notification_patch(
    p: &Params,
    prefix: &str,
    with_badge: bool,
) -> Result<NotificationPatch, ApiError> {
    Ok(NotificationPatch {
        enabled: p.bool(&format!("{prefix}.Enabled"))?,
        template: text_limit(p, &format!("{prefix}.Template"), MAX_TEMPLATE, 50058)?
            .map(|t| Some(t).filter(|t| !t.is_empty())),
        sound: text_limit(p, &format!("{prefix}.Sound"), MAX_SOUND, 50059)?
            .map(|s| Some(s).filter(|s| !s.is_empty())),
        badge_count_enabled: if with_badge {
            p.bool(&format!("{prefix}.BadgeCountEnabled"))?
        } else {
            None
        },
    })
}

/// The default-role parameters, each checked against the service's roles.
async fn with_roles(
    app: &AppState,
    auth: &Authenticated,
    sid: &ServiceSid,
    p: &Params,
    mut patch: ServicePatch,
) -> Result<ServicePatch, ApiError> {
    patch.default_service_role_sid = role_param(
        app,
        auth,
        sid,
        p,
        "DefaultServiceRoleSid",
        RoleType::Deployment,
        50102,
    )
    .await?;
    patch.default_channel_role_sid = role_param(
        app,
        auth,
        sid,
        p,
        "DefaultChannelRoleSid",
        RoleType::Channel,
        50101,
    )
    .await?;
    patch.default_channel_creator_role_sid = role_param(
        app,
        auth,
        sid,
        p,
        "DefaultChannelCreatorRoleSid",
        RoleType::Channel,
        50106,
    )
    .await?;
    Ok(patch)
}

/// `WebhookFilters`: at most [`MAX_WEBHOOK_FILTERS`] values of at most [`MAX_WEBHOOK_FILTER`]
/// characters; empty values are ignored and repeats kept once, in order of first appearance.
/// Names Twilio does not list are kept as they are (webhooks.md has no rule about them). No
/// value at all clears the filters.
fn webhook_filters(p: &Params) -> Result<Option<Vec<String>>, ApiError> {
    const NAME: &str = "WebhookFilters";
    let all = p.all(NAME);
    if all.len() > MAX_WEBHOOK_FILTERS {
        return Err(ApiError::invalid_param(
            NAME,
            format!("{NAME} has too many values ({MAX_WEBHOOK_FILTERS} at most)"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(all.len());
    for f in all {
        if crate::params::too_long(&f, MAX_WEBHOOK_FILTER) {
            return Err(ApiError::invalid_param(
                NAME,
                format!("{NAME} value is too long ({MAX_WEBHOOK_FILTER} characters at most)"),
            ));
        }
        if !f.is_empty() && !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(Some(out).filter(|f| !f.is_empty()))
}

/// Every UpdateService parameter but the default roles, checked.
fn parse_update(p: &Params) -> Result<ServicePatch, ApiError> {
    let webhook_method = match p.get("WebhookMethod") {
        None => None,
        Some(m) => {
            let m = m.to_ascii_uppercase();
            if m != "GET" && m != "POST" {
                return Err(ApiError::chat_param(
                    50055,
                    "WebhookMethod",
                    "WebhookMethod must be GET or POST",
                ));
            }
            Some(m)
        }
    };
    let webhook_filters = if p.has("WebhookFilters") {
        Some(webhook_filters(p)?)
    } else {
        None
    };
    let limit = |name: &str, code: u32| -> Result<Option<i64>, ApiError> {
        match p.int(name)? {
            Some(v) if !(1..=MAX_LIMIT).contains(&v) => Err(ApiError::chat_param(
                code,
                name,
                format!("{name} must be between 1 and {MAX_LIMIT}"),
            )),
            other => Ok(other),
        }
    };
    Ok(ServicePatch {
        friendly_name: friendly_name(p, "FriendlyName")?,
        read_status_enabled: p.bool("ReadStatusEnabled")?,
        reachability_enabled: p.bool("ReachabilityEnabled")?,
        typing_indicator_timeout: non_negative(p, "TypingIndicatorTimeout", 50053, 86_400)?,
        consumption_report_interval: non_negative(p, "ConsumptionReportInterval", 50052, 86_400)?,
        new_message: notification_patch(p, "Notifications.NewMessage", true)?,
        added_to_channel: notification_patch(p, "Notifications.AddedToChannel", false)?,
        removed_from_channel: notification_patch(p, "Notifications.RemovedFromChannel", false)?,
        invited_to_channel: notification_patch(p, "Notifications.InvitedToChannel", false)?,
        notifications_log_enabled: p.bool("Notifications.LogEnabled")?,
        pre_webhook_url: webhook_url(p, "PreWebhookUrl", 50077)?,
        post_webhook_url: webhook_url(p, "PostWebhookUrl", 50078)?,
        webhook_method,
        webhook_filters,
        pre_webhook_retry_count: non_negative(p, "PreWebhookRetryCount", 50065, 3)?,
        post_webhook_retry_count: non_negative(p, "PostWebhookRetryCount", 50065, 3)?,
        limits_channel_members: limit("Limits.ChannelMembers", 50061)?,
        limits_user_channels: limit("Limits.UserChannels", 50060)?,
        media_compatibility_message: p.text(
            "Media.CompatibilityMessage",
            MAX_COMPATIBILITY_MESSAGE,
            20001,
        )?,
        ..ServicePatch::default()
    })
}
