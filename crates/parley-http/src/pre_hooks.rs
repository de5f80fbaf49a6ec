//! Pre-event webhooks. Client (SDK) changes always call the service's `PreWebhookUrl` when its
//! `WebhookFilters` list the event (docs/live-clients.md "Client API"). For REST changes they are
//! a Parley extension, off by default (docs/webhooks.md "Pre-events for REST changes"): a server
//! started with `rest_pre_webhooks` (`PARLEY_REST_PRE_WEBHOOKS`) listing a service also calls
//! that service's `PreWebhookUrl` before a REST change sent with `X-Twilio-Webhook-Enabled:
//! true`, and applies its answer: proceed, proceed modified, or reject. The server always
//! installs [`PreHooks`] (with the REST scope, possibly off) so client changes can use them.
//!
//! Handlers use two steps so the common case (not opted in, no header) costs nothing:
//! [`pre_hook`] says whether a pre-event is due (and reads the service), then
//! [`PreCall::run`] describes the proposed change, calls, and returns the modifications or the
//! error to answer.

use std::collections::HashSet;
use std::sync::Arc;

use axum::http::StatusCode;
use parley_core::channel::{Channel, ChannelUpdate, Member, MemberUpdate, Message, MessageUpdate};
use parley_core::event::Origin;
use parley_core::user::{User, UserUpdate};
use parley_core::{AccountSid, ServiceSid};
use parley_webhooks::{
    call_pre_event, pre_event_params, service_pre_target, AuthTokens, PreChanges, PreContext,
    PreEvent, PreOutcome, Target, WebhookClient, CODE_REJECTED,
};

use crate::error::ApiError;
use crate::AppState;

/// Which services' REST changes fire pre-events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PreHookScope {
    /// None (the default; Twilio's behaviour).
    #[default]
    Off,
    /// Every service (`*`).
    All,
    /// These service SIDs.
    Services(HashSet<ServiceSid>),
}

impl PreHookScope {
    /// Parse `rest_pre_webhooks`: empty → off, `*` → all, else comma-separated `IS…` SIDs.
    pub fn parse(s: &str) -> Result<Self, String> {
        let items: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .collect();
        if items.is_empty() {
            return Ok(Self::Off);
        }
        if items.contains(&"*") {
            if items.len() > 1 {
                return Err("`*` cannot be combined with service SIDs".to_owned());
            }
            return Ok(Self::All);
        }
        let mut set = HashSet::new();
        for i in items {
            let sid = ServiceSid::parse(i).map_err(|_| {
                format!("`{i}` is not a service SID (IS followed by 32 hex digits)")
            })?;
            set.insert(sid);
        }
        Ok(Self::Services(set))
    }

    /// Whether REST changes in `service` fire pre-events.
    pub fn includes(&self, service: &ServiceSid) -> bool {
        match self {
            Self::Off => false,
            Self::All => true,
            Self::Services(set) => set.contains(service),
        }
    }
}

/// The pre-event machinery of the HTTP layer: which services opted in, the webhook client, and
/// the node's cache of opened account auth tokens (shared with the post-event sender).
pub struct PreHooks {
    scope: PreHookScope,
    client: WebhookClient,
    tokens: Arc<AuthTokens>,
}

impl std::fmt::Debug for PreHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreHooks")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl PreHooks {
    /// Pre-events for the services in `scope`, sent with `client`, signed with `tokens`.
    pub fn new(scope: PreHookScope, client: WebhookClient, tokens: Arc<AuthTokens>) -> Self {
        Self {
            scope,
            client,
            tokens,
        }
    }
}

/// A pre-event that is due: where to send it and for whom.
pub(crate) struct PreCall<'a> {
    hooks: &'a PreHooks,
    account: &'a AccountSid,
    service: &'a ServiceSid,
    origin: &'a Origin,
    target: Target,
}

/// Whether the change `event_type` (e.g. `onMessageSend`) in `service` fires a pre-event: the
/// service has a `PreWebhookUrl` and lists the event in its `WebhookFilters`, and either the
/// change comes from a client (SDK: always) or, over REST, the server lists the service in
/// `rest_pre_webhooks` and the request carried `X-Twilio-Webhook-Enabled: true`. Reads the
/// service only when the origin qualifies.
pub(crate) async fn pre_hook<'a>(
    app: &'a AppState,
    account: &'a AccountSid,
    service: &'a ServiceSid,
    origin: &'a Origin,
    event_type: &str,
) -> Result<Option<PreCall<'a>>, ApiError> {
    let Some(hooks) = app.pre_hooks.as_deref() else {
        return Ok(None);
    };
    // Client (SDK) changes always fire pre-events (Twilio's behaviour); REST changes only when
    // opted in.
    let client = origin.source == parley_core::event::Source::Sdk;
    if !client && (!origin.webhooks || !hooks.scope.includes(service)) {
        return Ok(None);
    }
    let settings = app.store.fetch_service(account, service).await?.settings;
    Ok(
        service_pre_target(&settings, event_type).map(|target| PreCall {
            hooks,
            account,
            service,
            origin,
            target,
        }),
    )
}

/// The error a rejected change answers: **403** with Chat code 50056 when the webhook did not
/// answer 200; **400** with the field's validation code when its modification was invalid.
fn rejection(code: u32, message: String) -> ApiError {
    let status = if code == CODE_REJECTED {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::BAD_REQUEST
    };
    ApiError::new(status, code, message)
}

impl PreCall<'_> {
    /// Call the pre-event for the proposed change `event`: the modifications to apply
    /// (empty = unmodified), or the error to answer (nothing must change).
    pub(crate) async fn run(&self, event: PreEvent<'_>) -> Result<PreChanges, ApiError> {
        let ctx = PreContext {
            account_sid: self.account,
            service_sid: self.service,
            origin: self.origin,
        };
        let params = pre_event_params(&ctx, &event);
        let Some(token) = self.hooks.tokens.get(self.account).await? else {
            tracing::warn!(account.sid = %self.account, event = params.event_type,
                "pre-event webhook not called: no auth token to sign it; the change proceeds");
            return Ok(PreChanges::default());
        };
        match call_pre_event(&self.hooks.client, &self.target, &params, &token).await {
            PreOutcome::Proceed(changes) => Ok(changes),
            PreOutcome::Reject(r) => Err(rejection(r.code, r.message)),
        }
    }
}

/// `m` with `u` applied (what an update would store).
pub(crate) fn proposed_message(mut m: Message, u: &MessageUpdate) -> Message {
    if let Some(b) = &u.body {
        m.body = Some(b.clone());
    }
    if let Some(a) = &u.attributes {
        m.attributes = Some(a.clone());
    }
    if let Some(f) = &u.from {
        m.from = f.clone();
    }
    if let Some(by) = &u.last_updated_by {
        m.last_updated_by = Some(by.clone());
    }
    m.date_created = u.date_created.unwrap_or(m.date_created);
    m
}

/// A message update with a pre-event's modifications.
pub(crate) fn modify_message_update(u: &mut MessageUpdate, c: PreChanges) {
    if c.body.is_some() {
        u.body = c.body;
    }
    if c.attributes.is_some() {
        u.attributes = c.attributes;
    }
    if c.from.is_some() {
        u.from = c.from;
    }
}

/// `ch` with `u` applied.
pub(crate) fn proposed_channel(mut ch: Channel, u: &ChannelUpdate) -> Channel {
    if let Some(n) = &u.friendly_name {
        ch.friendly_name = n.clone();
    }
    if let Some(n) = &u.unique_name {
        ch.unique_name = n.clone();
    }
    if let Some(a) = &u.attributes {
        ch.attributes = Some(a.clone());
    }
    if let Some(by) = &u.created_by {
        ch.created_by = Some(by.clone());
    }
    ch.date_created = u.date_created.unwrap_or(ch.date_created);
    ch
}

/// A channel update with a pre-event's modifications.
pub(crate) fn modify_channel_update(u: &mut ChannelUpdate, c: PreChanges) {
    if c.friendly_name.is_some() {
        u.friendly_name = c.friendly_name;
    }
    if c.unique_name.is_some() {
        u.unique_name = c.unique_name;
    }
    if c.attributes.is_some() {
        u.attributes = c.attributes;
    }
}

/// `m` with `u` applied.
pub(crate) fn proposed_member(mut m: Member, u: &MemberUpdate) -> Member {
    if let Some(r) = &u.role_sid {
        m.role_sid = Some(r.clone());
    }
    if let Some(i) = u.last_consumed_message_index {
        m.last_consumed_message_index = i;
    }
    if let Some(a) = &u.attributes {
        m.attributes = Some(a.clone());
    }
    m.date_created = u.date_created.unwrap_or(m.date_created);
    m
}

/// `user` with `u` applied (as of `now`).
pub(crate) fn proposed_user(mut user: User, u: &UserUpdate, now: parley_core::Timestamp) -> User {
    if let Some(n) = &u.friendly_name {
        user.friendly_name = Some(n.clone()).filter(|n| !n.is_empty());
    }
    if let Some(a) = &u.attributes {
        user.attributes = Some(a.clone());
    }
    if let Some(r) = &u.role_sid {
        user.role_sid = Some(r.clone());
    }
    user.date_updated = now;
    user
}

/// A user update with a pre-event's modifications (`""` clears the friendly name).
pub(crate) fn modify_user_update(u: &mut UserUpdate, c: PreChanges) {
    if let Some(n) = c.friendly_name {
        u.friendly_name = Some(n.unwrap_or_default());
    }
    if c.attributes.is_some() {
        u.attributes = c.attributes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_parses_off_all_and_lists() {
        assert_eq!(PreHookScope::parse("").unwrap(), PreHookScope::Off);
        assert_eq!(PreHookScope::parse(" , ").unwrap(), PreHookScope::Off);
        assert_eq!(PreHookScope::parse("*").unwrap(), PreHookScope::All);
        let a = ServiceSid::generate();
        let b = ServiceSid::generate();
        let c = ServiceSid::generate();
        let scope = PreHookScope::parse(&format!("{a}, {b}")).unwrap();
        assert!(scope.includes(&a));
        assert!(scope.includes(&b));
        assert!(!scope.includes(&c));
        assert!(PreHookScope::All.includes(&c));
        assert!(!PreHookScope::Off.includes(&c));
        assert!(PreHookScope::parse("IS123").is_err());
        assert!(PreHookScope::parse(&format!("*,{a}")).is_err());
    }

    #[test]
    fn rejections_are_403_for_50056_and_400_for_bad_values() {
        let r = rejection(CODE_REJECTED, "no".into());
        assert_eq!((r.status, r.code), (StatusCode::FORBIDDEN, 50056));
        let r = rejection(50504, "too long".into());
        assert_eq!((r.status, r.code), (StatusCode::BAD_REQUEST, 50504));
    }
}
