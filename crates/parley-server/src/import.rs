//! `parley import twilio`: copy a Twilio account's chat data, read through the Conversations
//! API v1, into the Parley account of the same SID, keeping every SID, date and message index.
//!
//! What is read, per service: the service (friendly name, dates, default roles and
//! reachability from its Configuration, push notification settings, webhook URLs, method and
//! filters with event names translated to Chat's), roles (permission names translated from
//! Conversations' to Chat's: `…Conversation…` → `…Channel…`, `…Participant…` → `…Member…`),
//! users, conversations (as **private** channels: Conversations has no channel type; their
//! creator is not returned, so `created_by` is `system`), participants with an identity (as
//! members; `last_read_message_index` becomes the consumption horizon; SMS/WhatsApp
//! participants have no identity and are skipped), messages (index, author, body,
//! attributes, dates), conversation-scoped webhooks (as channel webhooks) and push credentials
//! (SID, name, type, sandbox flag, dates; Twilio never returns their secrets, so they are created
//! marked as needing their secret: no push goes through one until an update supplies it,
//! docs/CREDENTIALS.md). Bindings are counted only: Twilio does not return device tokens, so
//! devices register again on their next start.
//!
//! Idempotent and resumable: every record is looked up by its SID first and skipped when it
//! exists, so a second run, or one after an interruption, adds only what is missing. Writes
//! use an origin with webhooks off: an import fires no webhook.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use parley_core::channel::{
    Channel, ChannelRef, ChannelType, Member, MemberLimits, MemberRef, Message, NotificationLevel,
};
use parley_core::channel_webhook::{
    ChannelWebhook, WebhookConfiguration, WebhookMethod, WebhookType,
};
use parley_core::credential::{Credential, PushType};
use parley_core::crypto::SecretBox;
use parley_core::event::Origin;
use parley_core::role::{Role, RoleType};
use parley_core::service::{NewService, Service, ServiceSettings};
use parley_core::store::{Conflict, Store, StoreError, StoreResult};
use parley_core::user::{User, UserRef};
use parley_core::{
    AccountSid, ChannelSid, ChannelWebhookSid, CredentialSid, MemberSid, MessageSid, RoleSid,
    ServiceSid, Timestamp, UserSid,
};
use serde_json::Value;

use crate::admin::{self, AccountCredentials};

/// Twilio's Conversations API.
pub const DEFAULT_BASE_URL: &str = "https://conversations.twilio.com";

/// Items asked for per list page.
const PAGE_SIZE: u32 = 100;

/// Tries of one request answered 429 before giving up.
const MAX_TRIES: u32 = 12;

/// Longest wait between two tries after a 429.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What to import and from where.
#[derive(Clone)]
pub struct ImportOptions {
    /// The Twilio account (`AC…`): also the Parley account written to.
    pub account_sid: AccountSid,
    /// Its auth token (Basic auth to Twilio).
    pub auth_token: String,
    /// Only this service (default: every service of the account).
    pub service: Option<ServiceSid>,
    /// Base URL of the Conversations API (default [`DEFAULT_BASE_URL`]).
    pub base_url: String,
}

impl std::fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOptions")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"***")
            .field("service", &self.service)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// Per kind of record: how many were written, found already there, or skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Written by this run.
    pub imported: u64,
    /// Already in Parley (an earlier run): left alone.
    pub existing: u64,
    /// Not importable (see the kind's note in the summary).
    pub skipped: u64,
}

/// What an import did.
#[derive(Clone, Debug, Default)]
pub struct ImportSummary {
    /// Counts by kind: `services`, `roles`, `users`, `channels`, `members`, `messages`,
    /// `webhooks` (channel webhooks), `credentials`.
    pub counts: BTreeMap<&'static str, Count>,
    /// Push bindings seen at Twilio (not importable).
    pub bindings: u64,
    /// Push credentials that need their secret after this run (imported by it or an earlier
    /// one, and not supplied since), as (SID, friendly name, type): Twilio never returns
    /// secrets, so they are created marked and no push goes through them until an update
    /// supplies it.
    pub credentials: Vec<(String, String, String)>,
}

impl ImportSummary {
    fn add(&mut self, kind: &'static str, f: impl FnOnce(&mut Count)) {
        f(self.counts.entry(kind).or_default());
    }

    /// The summary as printed at the end of a run.
    pub fn render(&self) -> String {
        let mut out = String::from("Import summary:\n");
        for kind in [
            "services",
            "roles",
            "users",
            "channels",
            "members",
            "messages",
            "webhooks",
            "credentials",
        ] {
            let c = self.counts.get(kind).copied().unwrap_or_default();
            out.push_str(&format!(
                "  {kind:<9} {} imported, {} already present, {} skipped\n",
                c.imported, c.existing, c.skipped
            ));
        }
        if self.counts.get("members").is_some_and(|c| c.skipped > 0) {
            out.push_str(
                "  (members skipped: participants without an identity, e.g. SMS or WhatsApp)\n",
            );
        }
        out.push_str(&format!(
            "  bindings  {} at Twilio, not importable: Twilio does not return device tokens; \
             devices register again on their next start\n",
            self.bindings
        ));
        if !self.credentials.is_empty() {
            out.push_str(&format!(
                "  {} credential(s) imported, needing their secret (Twilio does not return \
                 secrets): no push goes through one until you supply it, e.g.\n",
                self.credentials.len()
            ));
            for (sid, name, kind) in &self.credentials {
                let fields = match PushType::parse(kind) {
                    Some(PushType::Apn) => {
                        "--data-urlencode Certificate@cert.pem --data-urlencode PrivateKey@key.pem"
                    }
                    _ => "--data-urlencode Secret@service-account.json",
                };
                out.push_str(&format!(
                    "    {sid}  {kind:<4} {name}\n      curl -u \"$ACCOUNT_SID:$AUTH_TOKEN\" \
                     \"$PARLEY/v2/Credentials/{sid}\" {fields}\n"
                ));
            }
        }
        out
    }
}

/// Create the Parley account `sid` if it does not exist; `Some` with its new auth token (show
/// it once) when it was created.
pub async fn ensure_account(
    store: &dyn Store,
    secrets: &SecretBox,
    sid: &AccountSid,
) -> anyhow::Result<Option<AccountCredentials>> {
    match store.fetch_account(sid).await {
        Ok(_) => Ok(None),
        Err(StoreError::NotFound) => Ok(Some(
            admin::create_account(store, secrets, Some(sid.clone()), None, None).await?,
        )),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read account {sid}"))),
    }
}

/// Import every service (or `opts.service`) of the account; the account must exist (see
/// [`ensure_account`]). `progress` gets one line per step.
pub async fn import_twilio(
    store: &dyn Store,
    opts: &ImportOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<ImportSummary> {
    let api = Twilio::new(opts)?;
    let mut summary = ImportSummary::default();
    let services = match &opts.service {
        Some(sid) => vec![api.get(&format!("/v1/Services/{sid}")).await?],
        None => api.list_all("/v1/Services", "services").await?,
    };
    progress(&format!("{} service(s) to import", services.len()));
    for service in &services {
        import_service(
            store,
            &api,
            &opts.account_sid,
            service,
            &mut summary,
            progress,
        )
        .await?;
    }
    let credentials = api.list_all("/v1/Credentials", "credentials").await?;
    for c in &credentials {
        import_credential(store, &opts.account_sid, c, &mut summary).await?;
    }
    progress(&format!("{} credential(s)", credentials.len()));
    Ok(summary)
}

/// An import fires nothing: no webhooks, no push notifications (`Origin::import`).
fn origin() -> Origin {
    Origin::import()
}

fn no_limits() -> MemberLimits {
    MemberLimits {
        channel_members: i64::MAX,
        user_channels: i64::MAX,
    }
}

async fn import_service(
    store: &dyn Store,
    api: &Twilio,
    account: &AccountSid,
    raw: &Value,
    summary: &mut ImportSummary,
    progress: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<()> {
    let sid: ServiceSid = sid_field(raw, "sid")?;
    let (created, updated) = dates(raw)?;
    let config = api
        .get(&format!("/v1/Services/{sid}/Configuration"))
        .await?;
    let roles: Vec<Role> = api
        .list_all(&format!("/v1/Services/{sid}/Roles"), "roles")
        .await?
        .iter()
        .map(|r| role(account, &sid, r))
        .collect::<anyhow::Result<_>>()?;
    match store.fetch_service(account, &sid).await {
        Ok(_) => {
            summary.add("services", |c| c.existing += 1);
            for r in &roles {
                match store.fetch_role(account, &sid, &r.sid).await {
                    Ok(_) => summary.add("roles", |c| c.existing += 1),
                    Err(StoreError::NotFound) => {
                        store
                            .create_role(r)
                            .await
                            .with_context(|| format!("cannot create role {}", r.sid))?;
                        summary.add("roles", |c| c.imported += 1);
                    }
                    Err(e) => return Err(e).context(format!("cannot read role {}", r.sid)),
                }
            }
        }
        Err(StoreError::NotFound) => {
            let known = |field: &str| -> Option<RoleSid> {
                let wanted = config.get(field).and_then(Value::as_str)?;
                roles
                    .iter()
                    .find(|r| r.sid.as_str() == wanted)
                    .map(|r| r.sid.clone())
            };
            let mut settings = ServiceSettings {
                reachability_enabled: config
                    .get("reachability_enabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                ..ServiceSettings::default()
            };
            let notifications = api
                .get_optional(&format!("/v1/Services/{sid}/Configuration/Notifications"))
                .await?;
            if let Some(n) = &notifications {
                apply_notifications(&mut settings, n);
            }
            let webhooks = api
                .get_optional(&format!("/v1/Services/{sid}/Configuration/Webhooks"))
                .await?;
            if let Some(w) = &webhooks {
                apply_webhooks(&mut settings, w);
            }
            let service = Service {
                sid: sid.clone(),
                account_sid: account.clone(),
                friendly_name: str_field(raw, "friendly_name").unwrap_or_default(),
                date_created: created,
                date_updated: updated,
                default_service_role_sid: known("default_chat_service_role_sid"),
                default_channel_role_sid: known("default_conversation_role_sid"),
                default_channel_creator_role_sid: known("default_conversation_creator_role_sid"),
                settings,
            };
            store
                .create_service(&NewService {
                    service,
                    roles: roles.clone(),
                })
                .await
                .with_context(|| format!("cannot create service {sid}"))?;
            summary.add("services", |c| c.imported += 1);
            summary.add("roles", |c| c.imported += roles.len() as u64);
        }
        Err(e) => return Err(e).context(format!("cannot read service {sid}")),
    }
    progress(&format!("service {sid}: {} role(s)", roles.len()));

    // Users.
    let mut pages = api.pages(&format!("/v1/Services/{sid}/Users"), "users");
    let mut users = 0u64;
    while let Some(items) = pages.next().await? {
        for u in &items {
            import_user(store, account, &sid, u, summary).await?;
        }
        users += items.len() as u64;
        progress(&format!("service {sid}: {users} user(s)"));
    }

    // Conversations, each with its participants and messages.
    let mut pages = api.pages(
        &format!("/v1/Services/{sid}/Conversations"),
        "conversations",
    );
    let mut done = 0u64;
    while let Some(items) = pages.next().await? {
        for conv in &items {
            import_conversation(store, api, account, &sid, conv, summary).await?;
            done += 1;
            progress(&format!(
                "service {sid}: conversation {} done ({done} so far)",
                str_field(conv, "sid").unwrap_or_default()
            ));
        }
    }

    // Bindings: counted, not importable.
    let mut pages = api.pages(&format!("/v1/Services/{sid}/Bindings"), "bindings");
    while let Some(items) = pages.next().await? {
        summary.bindings += items.len() as u64;
    }
    Ok(())
}

/// Whether a record the import reads back (`found`) is already there — then it counts as
/// existing and is skipped; a read error names `what`.
fn already_there<T>(
    found: StoreResult<T>,
    summary: &mut ImportSummary,
    kind: &'static str,
    what: impl FnOnce() -> String,
) -> anyhow::Result<bool> {
    match found {
        Ok(_) => {
            summary.add(kind, |c| c.existing += 1);
            Ok(true)
        }
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e).context(format!("cannot read {}", what())),
    }
}

/// How a create that failed with a known conflict counts.
enum Counted {
    /// Already there (an earlier run made it).
    Existing,
    /// Left out (its SID or identity is held by something else).
    Skipped,
}

/// Count one create under `kind`: done → imported (`true`); an error that `known` counts (it
/// may also log why) → that count; any other error → an error naming `what`.
fn tally<T>(
    result: StoreResult<T>,
    summary: &mut ImportSummary,
    kind: &'static str,
    known: impl FnOnce(&StoreError) -> Option<Counted>,
    what: impl FnOnce() -> String,
) -> anyhow::Result<bool> {
    match result {
        Ok(_) => {
            summary.add(kind, |c| c.imported += 1);
            Ok(true)
        }
        Err(e) => match known(&e) {
            Some(Counted::Existing) => {
                summary.add(kind, |c| c.existing += 1);
                Ok(false)
            }
            Some(Counted::Skipped) => {
                summary.add(kind, |c| c.skipped += 1);
                Ok(false)
            }
            None => Err(e).context(format!("cannot create {}", what())),
        },
    }
}

/// A push credential, marked as needing its secret (Twilio never returns it): SID, name, type,
/// sandbox flag and dates as at Twilio. One already present is left alone, marked or not.
async fn import_credential(
    store: &dyn Store,
    account: &AccountSid,
    raw: &Value,
    summary: &mut ImportSummary,
) -> anyhow::Result<()> {
    let sid: CredentialSid = sid_field(raw, "sid")?;
    let kind = str_field(raw, "type").unwrap_or_default();
    let credential_type = PushType::parse(&kind)
        .ok_or_else(|| anyhow!("credential {sid} has an unknown type {kind:?}"))?;
    let friendly_name = str_field(raw, "friendly_name");
    let line = (
        sid.to_string(),
        friendly_name.clone().unwrap_or_default(),
        kind.clone(),
    );
    match store.fetch_credential(account, &sid).await {
        Ok(existing) => {
            summary.add("credentials", |c| c.existing += 1);
            if existing.needs_secret {
                summary.credentials.push(line);
            }
            return Ok(());
        }
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e).context(format!("cannot read credential {sid}")),
    }
    let now = Timestamp::now();
    let (created, updated) = dates(raw).unwrap_or((now, now));
    // Twilio answers the flag as a string ("true"/"false"); a boolean is taken too.
    let sandbox = match raw.get("sandbox") {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) => s.parse::<bool>().ok().or(match s.as_str() {
            "True" | "TRUE" => Some(true),
            "False" | "FALSE" => Some(false),
            _ => None,
        }),
        _ => None,
    };
    let credential = Credential {
        sid: sid.clone(),
        account_sid: account.clone(),
        friendly_name,
        credential_type,
        sandbox,
        secrets_sealed: Vec::new(),
        needs_secret: true,
        date_created: created,
        date_updated: updated,
    };
    let created = tally(
        store.create_credential(&credential).await,
        summary,
        "credentials",
        |e| {
            matches!(e, StoreError::Conflict(Conflict::SidTaken)).then(|| {
                // Held by another account of this Parley server: not ours to touch.
                tracing::warn!(%sid, "a credential with this SID exists in another account; skipped");
                Counted::Skipped
            })
        },
        || format!("credential {sid}"),
    )?;
    if created {
        summary.credentials.push(line);
    }
    Ok(())
}

async fn import_user(
    store: &dyn Store,
    account: &AccountSid,
    service: &ServiceSid,
    raw: &Value,
    summary: &mut ImportSummary,
) -> anyhow::Result<()> {
    let sid: UserSid = sid_field(raw, "sid")?;
    if already_there(
        store
            .fetch_user(account, service, &UserRef::Sid(sid.clone()))
            .await,
        summary,
        "users",
        || format!("user {sid}"),
    )? {
        return Ok(());
    }
    let (created, updated) = dates(raw)?;
    let identity =
        str_field(raw, "identity").ok_or_else(|| anyhow!("user {sid} has no identity"))?;
    let user = User {
        sid: sid.clone(),
        account_sid: account.clone(),
        service_sid: service.clone(),
        identity: identity.clone(),
        friendly_name: str_field(raw, "friendly_name"),
        attributes: str_field(raw, "attributes"),
        role_sid: opt_sid_field(raw, "role_sid")?,
        date_created: created,
        date_updated: updated,
    };
    tally(
        store.create_user(&user, &origin()).await,
        summary,
        "users",
        |e| {
            matches!(e, StoreError::Conflict(Conflict::UserIdentityTaken)).then(|| {
                // Another user (e.g. made by a participant of an interrupted run) holds the
                // identity: keep that one.
                tracing::warn!(%sid, identity, "a user with this identity exists already; kept");
                Counted::Skipped
            })
        },
        || format!("user {sid}"),
    )?;
    Ok(())
}

async fn import_conversation(
    store: &dyn Store,
    api: &Twilio,
    account: &AccountSid,
    service: &ServiceSid,
    raw: &Value,
    summary: &mut ImportSummary,
) -> anyhow::Result<()> {
    let sid: ChannelSid = sid_field(raw, "sid")?;
    let r = ChannelRef::Sid(sid.clone());
    match store.fetch_channel(account, service, &r).await {
        Ok(_) => summary.add("channels", |c| c.existing += 1),
        Err(StoreError::NotFound) => {
            let (created, updated) = dates(raw)?;
            let channel = Channel {
                sid: sid.clone(),
                account_sid: account.clone(),
                service_sid: service.clone(),
                friendly_name: str_field(raw, "friendly_name"),
                unique_name: str_field(raw, "unique_name"),
                attributes: str_field(raw, "attributes"),
                channel_type: ChannelType::Private,
                created_by: Some("system".to_owned()),
                members_count: 0,
                messages_count: 0,
                last_message_sid: None,
                last_message_index: None,
                date_created: created,
                date_updated: updated,
            };
            store
                .create_channel(&channel, &origin())
                .await
                .with_context(|| format!("cannot create channel {sid}"))?;
            summary.add("channels", |c| c.imported += 1);
        }
        Err(e) => return Err(e).context(format!("cannot read channel {sid}")),
    }

    let base = format!("/v1/Services/{service}/Conversations/{sid}");
    let mut pages = api.pages(&format!("{base}/Participants"), "participants");
    while let Some(items) = pages.next().await? {
        for p in &items {
            import_participant(store, account, service, &sid, p, summary).await?;
        }
    }

    let mut pages = api.pages(&format!("{base}/Messages"), "messages");
    while let Some(items) = pages.next().await? {
        for m in &items {
            import_message(store, account, service, &sid, m, summary).await?;
        }
    }

    let mut pages = api.pages(&format!("{base}/Webhooks"), "webhooks");
    while let Some(items) = pages.next().await? {
        for w in &items {
            import_channel_webhook(store, account, service, &sid, w, summary).await?;
        }
    }
    Ok(())
}

async fn import_channel_webhook(
    store: &dyn Store,
    account: &AccountSid,
    service: &ServiceSid,
    channel: &ChannelSid,
    raw: &Value,
    summary: &mut ImportSummary,
) -> anyhow::Result<()> {
    let sid: ChannelWebhookSid = sid_field(raw, "sid")?;
    let r = ChannelRef::Sid(channel.clone());
    match store
        .fetch_channel_webhook(account, service, &r, &sid)
        .await
    {
        Ok(_) => {
            summary.add("webhooks", |c| c.existing += 1);
            return Ok(());
        }
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e).context(format!("cannot read channel webhook {sid}")),
    }
    let Some(kind) = raw
        .get("target")
        .and_then(Value::as_str)
        .and_then(WebhookType::parse)
    else {
        summary.add("webhooks", |c| c.skipped += 1);
        return Ok(());
    };
    let (created, updated) = dates(raw)?;
    let empty = Value::Null;
    let config = raw.get("configuration").unwrap_or(&empty);
    let list = |field: &str| -> Option<Vec<String>> {
        config.get(field).and_then(Value::as_array).map(|vs| {
            vs.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
    };
    let configuration = WebhookConfiguration {
        url: str_field(config, "url"),
        method: str_field(config, "method").and_then(|m| WebhookMethod::parse(&m.to_uppercase())),
        filters: list("filters").map(|fs| {
            fs.iter()
                .filter_map(|f| chat_webhook_filter(f))
                .map(str::to_owned)
                .collect()
        }),
        triggers: list("triggers"),
        flow_sid: opt_sid_field(config, "flow_sid")?,
        retry_count: None,
    };
    let hook = ChannelWebhook {
        sid: sid.clone(),
        account_sid: account.clone(),
        service_sid: service.clone(),
        channel_sid: channel.clone(),
        kind,
        configuration,
        date_created: created,
        date_updated: updated,
    };
    tally(
        store.create_channel_webhook(&r, &hook).await,
        summary,
        "webhooks",
        |e| match e {
            StoreError::Conflict(Conflict::SidTaken) => Some(Counted::Existing),
            StoreError::LimitExceeded(_) => Some(Counted::Skipped),
            _ => None,
        },
        || format!("channel webhook {sid}"),
    )?;
    Ok(())
}

async fn import_participant(
    store: &dyn Store,
    account: &AccountSid,
    service: &ServiceSid,
    channel: &ChannelSid,
    raw: &Value,
    summary: &mut ImportSummary,
) -> anyhow::Result<()> {
    let sid: MemberSid = sid_field(raw, "sid")?;
    let Some(identity) = str_field(raw, "identity") else {
        summary.add("members", |c| c.skipped += 1);
        return Ok(());
    };
    let r = ChannelRef::Sid(channel.clone());
    if already_there(
        store
            .fetch_member(account, service, &r, &MemberRef::Sid(sid.clone()))
            .await,
        summary,
        "members",
        || format!("member {sid}"),
    )? {
        return Ok(());
    }
    let (created, updated) = dates(raw)?;
    // Twilio makes a user for every chat participant; should one be missing, make it here.
    let user = User {
        sid: UserSid::generate(),
        account_sid: account.clone(),
        service_sid: service.clone(),
        identity: identity.clone(),
        friendly_name: None,
        attributes: None,
        role_sid: None,
        date_created: created,
        date_updated: created,
    };
    let (user, _) = store
        .get_or_create_user(&user, &origin())
        .await
        .with_context(|| format!("cannot find or create the user {identity}"))?;
    let last_read = raw.get("last_read_message_index").and_then(Value::as_i64);
    let member = Member {
        sid: sid.clone(),
        account_sid: account.clone(),
        service_sid: service.clone(),
        channel_sid: channel.clone(),
        user_sid: user.sid,
        identity,
        role_sid: opt_sid_field(raw, "role_sid")?,
        last_consumed_message_index: last_read,
        last_consumption_timestamp: str_field(raw, "last_read_timestamp")
            .as_deref()
            .and_then(Timestamp::parse_rfc3339),
        attributes: str_field(raw, "attributes"),
        notification_level: NotificationLevel::Default,
        date_created: created,
        date_updated: updated,
    };
    tally(
        store
            .create_member(&member, &no_limits(), None, &origin())
            .await,
        summary,
        "members",
        |e| matches!(e, StoreError::Conflict(Conflict::MemberExists)).then_some(Counted::Existing),
        || format!("member {sid}"),
    )?;
    Ok(())
}

async fn import_message(
    store: &dyn Store,
    account: &AccountSid,
    service: &ServiceSid,
    channel: &ChannelSid,
    raw: &Value,
    summary: &mut ImportSummary,
) -> anyhow::Result<()> {
    let sid: MessageSid = sid_field(raw, "sid")?;
    let r = ChannelRef::Sid(channel.clone());
    if already_there(
        store.fetch_message(account, service, &r, &sid).await,
        summary,
        "messages",
        || format!("message {sid}"),
    )? {
        return Ok(());
    }
    let (created, updated) = dates(raw)?;
    let index = raw
        .get("index")
        .and_then(Value::as_i64)
        .ok_or_else(|| anyhow!("message {sid} has no index"))?;
    let message = Message {
        sid: sid.clone(),
        account_sid: account.clone(),
        service_sid: service.clone(),
        channel_sid: channel.clone(),
        index,
        from: str_field(raw, "author").unwrap_or_else(|| "system".to_owned()),
        body: str_field(raw, "body"),
        attributes: str_field(raw, "attributes"),
        last_updated_by: None,
        was_edited: false,
        date_created: created,
        date_updated: updated,
    };
    tally(
        store.import_message(&r, &message, &origin()).await,
        summary,
        "messages",
        |e| matches!(e, StoreError::Conflict(Conflict::SidTaken)).then_some(Counted::Existing),
        || format!("message {sid}"),
    )?;
    Ok(())
}

fn role(account: &AccountSid, service: &ServiceSid, raw: &Value) -> anyhow::Result<Role> {
    let sid: RoleSid = sid_field(raw, "sid")?;
    let (created, updated) = dates(raw)?;
    let role_type = match raw.get("type").and_then(Value::as_str) {
        Some("conversation") => RoleType::Channel,
        Some("service") => RoleType::Deployment,
        other => bail!("role {sid} has an unknown type {other:?}"),
    };
    let permissions = raw
        .get("permissions")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(Value::as_str)
                .map(chat_permission)
                .collect()
        })
        .unwrap_or_default();
    Ok(Role {
        sid,
        account_sid: account.clone(),
        service_sid: service.clone(),
        friendly_name: str_field(raw, "friendly_name").unwrap_or_default(),
        role_type,
        permissions,
        date_created: created,
        date_updated: updated,
    })
}

/// The service's push notification settings (Conversations' `added_to_conversation` and
/// `removed_from_conversation` are Chat's `added_to_channel` and `removed_from_channel`).
fn apply_notifications(settings: &mut ServiceSettings, raw: &Value) {
    let n = &mut settings.notifications;
    if let Some(v) = raw.get("log_enabled").and_then(Value::as_bool) {
        n.log_enabled = v;
    }
    for (field, target) in [
        ("new_message", &mut n.new_message),
        ("added_to_conversation", &mut n.added_to_channel),
        ("removed_from_conversation", &mut n.removed_from_channel),
    ] {
        let Some(one) = raw.get(field).filter(|v| v.is_object()) else {
            continue;
        };
        if let Some(v) = one.get("enabled").and_then(Value::as_bool) {
            target.enabled = v;
        }
        target.template = str_field(one, "template");
        target.sound = str_field(one, "sound");
        if let Some(v) = one.get("badge_count_enabled").and_then(Value::as_bool) {
            target.badge_count_enabled = Some(v);
        }
    }
}

/// The service's webhook URLs, method and filters (event names translated to Chat's; names
/// with no Chat counterpart, such as `onDeliveryUpdated`, are dropped).
fn apply_webhooks(settings: &mut ServiceSettings, raw: &Value) {
    settings.pre_webhook_url = str_field(raw, "pre_webhook_url").filter(|u| !u.is_empty());
    settings.post_webhook_url = str_field(raw, "post_webhook_url").filter(|u| !u.is_empty());
    if let Some(m) = str_field(raw, "method") {
        settings.webhook_method = Some(m.to_uppercase());
    }
    if let Some(filters) = raw.get("filters").and_then(Value::as_array) {
        let mapped: Vec<String> = filters
            .iter()
            .filter_map(Value::as_str)
            .filter_map(chat_webhook_filter)
            .map(str::to_owned)
            .collect();
        settings.webhook_filters = Some(mapped);
    }
}

/// Conversations' webhook event name → Chat's, if Chat has one.
pub fn chat_webhook_filter(name: &str) -> Option<&'static str> {
    Some(match name {
        "onMessageAdd" => "onMessageSend",
        "onMessageAdded" => "onMessageSent",
        "onMessageUpdate" => "onMessageUpdate",
        "onMessageUpdated" => "onMessageUpdated",
        "onMessageRemove" => "onMessageRemove",
        "onMessageRemoved" => "onMessageRemoved",
        "onConversationAdd" => "onChannelAdd",
        "onConversationAdded" => "onChannelAdded",
        "onConversationUpdate" => "onChannelUpdate",
        "onConversationUpdated" => "onChannelUpdated",
        "onConversationRemove" => "onChannelDestroy",
        "onConversationRemoved" => "onChannelDestroyed",
        "onParticipantAdd" => "onMemberAdd",
        "onParticipantAdded" => "onMemberAdded",
        "onParticipantUpdate" => "onMemberUpdate",
        "onParticipantUpdated" => "onMemberUpdated",
        "onParticipantRemove" => "onMemberRemove",
        "onParticipantRemoved" => "onMemberRemoved",
        "onUserAdded" => "onUserAdded",
        "onUserUpdate" => "onUserUpdate",
        "onUserUpdated" => "onUserUpdated",
        _ => return None,
    })
}

/// Conversations' permission name → Chat's (`addParticipant` → `addMember`,
/// `editConversationName` → `editChannelName`, …); names without either word stay.
pub fn chat_permission(name: &str) -> String {
    name.replace("Conversation", "Channel")
        .replace("Participant", "Member")
}

fn str_field(v: &Value, field: &str) -> Option<String> {
    v.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn sid_field<T>(v: &Value, field: &str) -> anyhow::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let s = v
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("a record without `{field}`: {v}"))?;
    s.parse::<T>()
        .map_err(|e| anyhow!("`{field}` {s:?} is not a valid SID: {e}"))
}

fn opt_sid_field<T>(v: &Value, field: &str) -> anyhow::Result<Option<T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match v.get(field).and_then(Value::as_str) {
        None | Some("") => Ok(None),
        Some(_) => sid_field(v, field).map(Some),
    }
}

fn dates(v: &Value) -> anyhow::Result<(Timestamp, Timestamp)> {
    let one = |field: &str| -> anyhow::Result<Timestamp> {
        let s = v
            .get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("a record without `{field}`: {v}"))?;
        Timestamp::parse_rfc3339(s).ok_or_else(|| anyhow!("`{field}` {s:?} is not a date"))
    };
    let created = one("date_created")?;
    let updated = one("date_updated").unwrap_or(created);
    Ok((created, updated))
}

/// A small client of the Conversations API: Basic auth, paging, 429 with back-off.
struct Twilio {
    http: reqwest::Client,
    base: String,
    account: String,
    token: String,
}

impl Twilio {
    fn new(opts: &ImportOptions) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("parley-import/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            base: opts.base_url.trim_end_matches('/').to_owned(),
            account: opts.account_sid.as_str().to_owned(),
            token: opts.auth_token.clone(),
        })
    }

    fn first_page(&self, path: &str) -> String {
        format!("{}{path}?PageSize={PAGE_SIZE}", self.base)
    }

    /// A URL Twilio returned (`next_page_url`), re-rooted on our base URL: a proxy or a fake
    /// given as `--twilio-base-url` keeps being used.
    fn reroot(&self, url: &str) -> String {
        match url::Url::parse(url) {
            Ok(u) => {
                let mut s = format!("{}{}", self.base, u.path());
                if let Some(q) = u.query() {
                    s.push('?');
                    s.push_str(q);
                }
                s
            }
            Err(_) => format!("{}{url}", self.base),
        }
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.fetch(&format!("{}{path}", self.base)).await
    }

    /// [`Twilio::get`], with 404 as `None` (a resource an older account may not have).
    async fn get_optional(&self, path: &str) -> anyhow::Result<Option<Value>> {
        self.fetch_inner(&format!("{}{path}", self.base), true)
            .await
    }

    /// One page: its items under `key` and the next page's URL.
    async fn page(&self, url: &str, key: &str) -> anyhow::Result<(Vec<Value>, Option<String>)> {
        let body = self.fetch(url).await?;
        let items = body
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| anyhow!("GET {url}: the answer has no `{key}` list"))?;
        let next = body
            .get("meta")
            .and_then(|m| m.get("next_page_url"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| self.reroot(s));
        Ok((items, next))
    }

    /// The pages of the list at `path` (items under `key`), one request per
    /// [`Pages::next`]: what is read is written before the next page is asked for.
    fn pages<'a>(&'a self, path: &str, key: &'a str) -> Pages<'a> {
        Pages {
            api: self,
            key,
            next: Some(self.first_page(path)),
        }
    }

    async fn list_all(&self, path: &str, key: &str) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut pages = self.pages(path, key);
        while let Some(items) = pages.next().await? {
            all.extend(items);
        }
        Ok(all)
    }

    /// GET with Basic auth; a 429 waits (`Retry-After` seconds, else 1, 2, 4 … up to 30 s) and
    /// tries again, up to [`MAX_TRIES`] times; any other failure names the URL and status.
    async fn fetch(&self, url: &str) -> anyhow::Result<Value> {
        self.fetch_inner(url, false)
            .await?
            .ok_or_else(|| anyhow!("GET {url} answered HTTP 404"))
    }

    async fn fetch_inner(&self, url: &str, absent_ok: bool) -> anyhow::Result<Option<Value>> {
        let mut backoff = Duration::from_secs(1);
        for attempt in 1..=MAX_TRIES {
            let resp = self
                .http
                .get(url)
                .basic_auth(&self.account, Some(&self.token))
                .send()
                .await
                .with_context(|| format!("GET {url} failed"))?;
            let status = resp.status();
            if status.as_u16() == 429 && attempt < MAX_TRIES {
                let wait = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(backoff)
                    .min(MAX_BACKOFF);
                tracing::debug!(url, ?wait, "429 from Twilio; waiting");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            if absent_ok && status.as_u16() == 404 {
                return Ok(None);
            }
            let body = resp
                .bytes()
                .await
                .with_context(|| format!("GET {url}: cannot read the answer"))?;
            if !status.is_success() {
                let text = String::from_utf8_lossy(&body);
                let text: String = text.chars().take(300).collect();
                bail!("GET {url} answered HTTP {status}: {text}");
            }
            return serde_json::from_slice(&body)
                .map(Some)
                .with_context(|| format!("GET {url}: the answer is not JSON"));
        }
        bail!("GET {url} answered HTTP 429 {MAX_TRIES} times; try again later")
    }
}

/// A list read page by page ([`Twilio::pages`]).
struct Pages<'a> {
    api: &'a Twilio,
    key: &'a str,
    next: Option<String>,
}

impl Pages<'_> {
    /// The next page's items; `None` after the last page.
    async fn next(&mut self) -> anyhow::Result<Option<Vec<Value>>> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let (items, more) = self.api.page(&url, self.key).await?;
        self.next = more;
        Ok(Some(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_how_to_supply_each_missing_secret() {
        let mut summary = ImportSummary::default();
        summary.add("credentials", |c| c.imported += 1);
        summary.add("credentials", |c| c.existing += 1);
        summary.credentials = vec![
            ("CR1".into(), "ios prod".into(), "apn".into()),
            ("CR2".into(), "android".into(), "fcm".into()),
        ];

        let text = summary.render();

        assert!(
            text.contains("  credentials 1 imported, 1 already present, 0 skipped\n"),
            "{text}"
        );
        let tail = &text[text.find("  2 credential(s)").expect("the list")..];
        assert_eq!(
            tail,
            "  2 credential(s) imported, needing their secret (Twilio does not return secrets): \
             no push goes through one until you supply it, e.g.\n    \
             CR1  apn  ios prod\n      curl -u \"$ACCOUNT_SID:$AUTH_TOKEN\" \
             \"$PARLEY/v2/Credentials/CR1\" --data-urlencode Certificate@cert.pem \
             --data-urlencode PrivateKey@key.pem\n    \
             CR2  fcm  android\n      curl -u \"$ACCOUNT_SID:$AUTH_TOKEN\" \
             \"$PARLEY/v2/Credentials/CR2\" --data-urlencode Secret@service-account.json\n"
        );
    }

    #[test]
    fn conversations_permissions_become_chat_permissions() {
        assert_eq!(chat_permission("addParticipant"), "addMember");
        assert_eq!(chat_permission("editConversationName"), "editChannelName");
        assert_eq!(chat_permission("sendMessage"), "sendMessage");
    }

    #[test]
    fn conversations_webhook_events_become_chat_events() {
        assert_eq!(chat_webhook_filter("onMessageAdded"), Some("onMessageSent"));
        assert_eq!(
            chat_webhook_filter("onConversationRemove"),
            Some("onChannelDestroy")
        );
        assert_eq!(chat_webhook_filter("onDeliveryUpdated"), None);
    }
}
