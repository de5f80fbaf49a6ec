//! Channel Webhooks: ListChannelWebhook, CreateChannelWebhook, FetchChannelWebhook,
//! UpdateChannelWebhook, DeleteChannelWebhook (contract §12, webhooks.md §6). At most 5 per
//! channel (403/50321); `Type` is fixed at creation; `configuration` shows only the keys that
//! were set. The rules and accepted filter names are in `parley_core::channel_webhook` and
//! `docs/webhooks.md` ("Channel webhooks"). Nothing here calls the URLs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parley_core::channel::ChannelRef;
use parley_core::channel_webhook::{
    validate_new, validate_update, ChannelWebhook, ConfigError, WebhookConfiguration,
    WebhookMethod, WebhookType, CHANNEL_WEBHOOK_FILTERS, MAX_RETRY_COUNT, MAX_TRIGGERS,
    MAX_TRIGGER_CHARS, MAX_URL_CHARS,
};
use parley_core::{ChannelWebhookSid, FlowSid, ServiceSid, Timestamp};
use serde::Serialize;

use super::{account, service_of, Segments, WireDate};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::paging::{ListPath, PageQuery, WEBHOOKS};
use crate::params::{clip, Form, Params, Query};
use crate::urls::UrlBuilder;
use crate::AppState;

const URL: &str = "Configuration.Url";
const METHOD: &str = "Configuration.Method";
const FILTERS: &str = "Configuration.Filters";
const TRIGGERS: &str = "Configuration.Triggers";
const FLOW_SID: &str = "Configuration.FlowSid";
const RETRY_COUNT: &str = "Configuration.RetryCount";

/// Wire form of a channel webhook (`chat.v2.service.channel.channel_webhook`). No `links`.
#[derive(Serialize)]
pub(crate) struct ChannelWebhookResource {
    account_sid: String,
    service_sid: String,
    channel_sid: String,
    sid: String,
    #[serde(rename = "type")]
    kind: &'static str,
    configuration: ConfigurationWire,
    date_created: WireDate,
    date_updated: WireDate,
    url: String,
}

impl ChannelWebhookResource {
    fn new(w: &ChannelWebhook, urls: &UrlBuilder) -> Self {
        Self {
            account_sid: w.account_sid.to_string(),
            service_sid: w.service_sid.to_string(),
            channel_sid: w.channel_sid.to_string(),
            sid: w.sid.to_string(),
            kind: w.kind.as_str(),
            configuration: ConfigurationWire::new(&w.configuration),
            date_created: WireDate(w.date_created),
            date_updated: WireDate(w.date_updated),
            url: urls.in_service(
                w.service_sid.as_str(),
                &format!("Channels/{}/Webhooks/{}", w.channel_sid, w.sid),
            ),
        }
    }
}

/// The `configuration` object: only the keys that are set (webhooks.md §6 — the one wire object
/// that omits instead of showing `null`), in the spec fixture's order
/// (`{"url","method","filters","retry_count"}`, `{"flow_sid"}`).
#[derive(Serialize)]
struct ConfigurationWire {
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filters: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    triggers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_count: Option<i64>,
}

impl ConfigurationWire {
    fn new(c: &WebhookConfiguration) -> Self {
        Self {
            url: c.url.clone(),
            method: c.method.map(WebhookMethod::as_str),
            filters: c.filters.clone(),
            triggers: c.triggers.clone(),
            flow_sid: c.flow_sid.as_ref().map(ToString::to_string),
            retry_count: c.retry_count,
        }
    }
}

/// A broken configuration rule as its Chat error (400 naming the parameter).
fn config_error(e: ConfigError) -> ApiError {
    let (code, param, message): (u32, &str, String) = match e {
        ConfigError::UrlMissing => (50329, URL, "Webhook url not provided".to_owned()),
        ConfigError::UrlTooLong => (
            50332,
            URL,
            format!("Webhook url is too long ({MAX_URL_CHARS} characters at most)"),
        ),
        ConfigError::UrlInvalid => (
            20001,
            URL,
            "Webhook url must be an absolute http or https URL".to_owned(),
        ),
        ConfigError::FiltersMissing => (50330, FILTERS, "Webhook filters not provided".to_owned()),
        ConfigError::InvalidFilter => (
            50325,
            FILTERS,
            format!(
                "Invalid webhook filter: the accepted events are {}",
                CHANNEL_WEBHOOK_FILTERS.join(", ")
            ),
        ),
        ConfigError::TriggersMissing => {
            (50331, TRIGGERS, "Webhook triggers not provided".to_owned())
        }
        ConfigError::TooManyTriggers => (
            50322,
            TRIGGERS,
            format!("Too many webhook triggers ({MAX_TRIGGERS} at most)"),
        ),
        ConfigError::InvalidTrigger => (
            50326,
            TRIGGERS,
            format!("Invalid webhook trigger (1 to {MAX_TRIGGER_CHARS} characters)"),
        ),
        ConfigError::FlowSidMissing => (
            50327,
            FLOW_SID,
            "Invalid webhook flow sid: a studio webhook needs Configuration.FlowSid".to_owned(),
        ),
        ConfigError::InvalidRetryCount => (
            50065,
            RETRY_COUNT,
            format!("Invalid webhook retry count (0 to {MAX_RETRY_COUNT})"),
        ),
    };
    ApiError::chat_param(code, param, message)
}

/// The distinct values of a repeated parameter, in order of first appearance; `None` when it
/// was not sent. Empty values are kept (and refused by the rules: 50325 / 50326).
fn distinct(p: &Params, name: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for v in p.all(name) {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Some(out).filter(|v| !v.is_empty())
}

/// Every `Configuration.*` parameter, decoded (values not yet checked against the rules). An
/// empty single value (`Configuration.Url=`) counts as not sent.
fn parse_configuration(p: &Params) -> Result<WebhookConfiguration, ApiError> {
    let given = |name: &str| p.get(name).filter(|v| !v.is_empty());
    let method = match given(METHOD) {
        None => None,
        Some(m) => Some(WebhookMethod::parse(m).ok_or_else(|| {
            ApiError::chat_param(50055, METHOD, "Configuration.Method must be GET or POST")
        })?),
    };
    let flow_sid = match given(FLOW_SID) {
        None => None,
        Some(s) => Some(FlowSid::parse(s).map_err(|_| {
            ApiError::chat_param(
                50327,
                FLOW_SID,
                format!(
                    "Invalid webhook flow sid '{}' (FW + 32 hex digits)",
                    clip(s)
                ),
            )
        })?),
    };
    let retry_count = if given(RETRY_COUNT).is_some() {
        p.int(RETRY_COUNT)?
    } else {
        None
    };
    Ok(WebhookConfiguration {
        url: given(URL).map(str::to_owned),
        method,
        filters: distinct(p, FILTERS),
        triggers: distinct(p, TRIGGERS),
        flow_sid,
        retry_count,
    })
}

/// Twilio ListChannelWebhook — `GET …/Channels/{ChannelSid}/Webhooks` (PageSize 1–5, default 5)
pub(crate) async fn list(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Query(q): Query,
    path: ListPath,
) -> Result<crate::paging::ListBody, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let channel = ChannelRef::parse(seg.get(1)?);
    let pq = PageQuery::parse(&q, WEBHOOKS, path.as_str(), &[], &app.secrets)?;
    let page = app
        .store
        .list_channel_webhooks(account(&auth), &service, &channel, &pq.request)
        .await?;
    pq.envelope(page, &app.urls, &app.secrets, |w| {
        ChannelWebhookResource::new(w, &app.urls)
    })
}

/// Twilio CreateChannelWebhook — `POST …/Channels/{ChannelSid}/Webhooks`
pub(crate) async fn create(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Form(p): Form,
) -> Result<(StatusCode, Json<ChannelWebhookResource>), ApiError> {
    let service_sid: ServiceSid = seg.sid(0)?;
    let channel_ref = ChannelRef::parse(seg.get(1)?);
    let service = service_of(&app, &auth, &service_sid).await?;
    let kind = match p.get("Type") {
        None | Some("") => {
            return Err(ApiError::chat_param(
                50328,
                "Type",
                "Webhook type not provided",
            ))
        }
        Some(t) => WebhookType::parse(t).ok_or_else(|| {
            ApiError::chat_param(
                50324,
                "Type",
                format!(
                    "Invalid webhook type '{}': webhook, trigger or studio",
                    clip(t)
                ),
            )
        })?,
    };
    let config = parse_configuration(&p)?;
    validate_new(kind, &config).map_err(config_error)?;
    let channel = app
        .store
        .fetch_channel(account(&auth), &service_sid, &channel_ref)
        .await?;
    let now = Timestamp::now();
    let webhook = ChannelWebhook {
        sid: ChannelWebhookSid::generate(),
        account_sid: service.account_sid.clone(),
        service_sid: service.sid.clone(),
        channel_sid: channel.sid.clone(),
        kind,
        configuration: config,
        date_created: now,
        date_updated: now,
    };
    let webhook = app
        .store
        .create_channel_webhook(&channel_ref, &webhook)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ChannelWebhookResource::new(&webhook, &app.urls)),
    ))
}

/// Twilio FetchChannelWebhook — `GET …/Channels/{ChannelSid}/Webhooks/{Sid}`
pub(crate) async fn fetch(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<Json<ChannelWebhookResource>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let sid: ChannelWebhookSid = seg.sid(2)?;
    let w = app
        .store
        .fetch_channel_webhook(
            account(&auth),
            &service,
            &ChannelRef::parse(seg.get(1)?),
            &sid,
        )
        .await?;
    Ok(Json(ChannelWebhookResource::new(&w, &app.urls)))
}

/// Twilio UpdateChannelWebhook — `POST …/Channels/{ChannelSid}/Webhooks/{Sid}`. Every
/// `Configuration.*` field is optional and replaces only itself; `Type` is not a parameter here
/// (ignored when sent). No field can be cleared, so a valid webhook stays valid.
pub(crate) async fn update(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
    Form(p): Form,
) -> Result<Json<ChannelWebhookResource>, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let channel = ChannelRef::parse(seg.get(1)?);
    let sid: ChannelWebhookSid = seg.sid(2)?;
    // 404 for another account's service before any parameter is judged.
    service_of(&app, &auth, &service).await?;
    let patch = parse_configuration(&p)?;
    validate_update(&patch).map_err(config_error)?;
    let w = app
        .store
        .update_channel_webhook(
            account(&auth),
            &service,
            &channel,
            &sid,
            &patch,
            Timestamp::now(),
        )
        .await?;
    Ok(Json(ChannelWebhookResource::new(&w, &app.urls)))
}

/// Twilio DeleteChannelWebhook — `DELETE …/Channels/{ChannelSid}/Webhooks/{Sid}`
pub(crate) async fn delete(
    auth: Authenticated,
    State(app): State<AppState>,
    seg: Segments,
) -> Result<StatusCode, ApiError> {
    let service: ServiceSid = seg.sid(0)?;
    let sid: ChannelWebhookSid = seg.sid(2)?;
    app.store
        .delete_channel_webhook(
            account(&auth),
            &service,
            &ChannelRef::parse(seg.get(1)?),
            &sid,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_shows_only_the_keys_that_are_set() {
        let studio = WebhookConfiguration {
            flow_sid: Some(FlowSid::generate()),
            ..WebhookConfiguration::default()
        };
        let text = |c: &WebhookConfiguration| {
            serde_json::to_string(&ConfigurationWire::new(c)).expect("json")
        };
        let flow = studio.flow_sid.as_ref().expect("flow").to_string();
        assert_eq!(text(&studio), format!(r#"{{"flow_sid":"{flow}"}}"#));
        assert_eq!(text(&WebhookConfiguration::default()), "{}");
        let hook = WebhookConfiguration {
            retry_count: Some(2),
            filters: Some(vec!["onMessageSent".to_owned()]),
            method: Some(WebhookMethod::Get),
            url: Some("http://h".to_owned()),
            ..WebhookConfiguration::default()
        };
        assert_eq!(
            text(&hook),
            r#"{"url":"http://h","method":"GET","filters":["onMessageSent"],"retry_count":2}"#,
            "the spec fixture's key order"
        );
    }

    #[test]
    fn form_values_are_decoded_and_repeats_kept_once() {
        let p = Params::parse(
            "Configuration.Url=http%3A%2F%2Fh%2Fx&Configuration.Method=get\
             &Configuration.Filters=onMessageSent&Configuration.Filters=onMessageSent\
             &Configuration.Filters=onMemberAdded&Configuration.FlowSid=\
             &Configuration.RetryCount=2",
        );
        let c = parse_configuration(&p).expect("parse");
        assert_eq!(c.url.as_deref(), Some("http://h/x"));
        assert_eq!(c.method, Some(WebhookMethod::Get));
        assert_eq!(
            c.filters,
            Some(vec!["onMessageSent".to_owned(), "onMemberAdded".to_owned()])
        );
        assert_eq!((c.triggers, c.flow_sid), (None, None));
        assert_eq!(c.retry_count, Some(2));
        let empty = parse_configuration(&Params::parse("Configuration.Filters=")).expect("parse");
        assert_eq!(
            validate_update(&empty),
            Err(ConfigError::InvalidFilter),
            "an empty filter is refused"
        );
        let bad = |q: &str| parse_configuration(&Params::parse(q)).expect_err(q).code;
        assert_eq!(bad("Configuration.Method=PUT"), 50055);
        assert_eq!(bad("Configuration.FlowSid=FW123"), 50327);
        assert_eq!(bad("Configuration.RetryCount=two"), 20001);
    }
}
