//! Stage 1, fan-out: outbox entries → one delivery per recipient binding.

use std::collections::HashMap;
use std::sync::Arc;

use parley_core::event::{Event, EventKind};
use parley_core::push::NewDelivery;
use parley_core::service::Service;
use parley_core::store::StoreError;
use parley_core::Timestamp;
use serde::{Deserialize, Serialize};

use super::{ts_after, Worker};
use crate::notification::{Notification, NotificationKind};
use crate::template::{render, TemplateVars};

/// The stored form of a [`Notification`] inside a delivery row.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredNotification {
    id: String,
    pub(super) kind: String,
    service_sid: String,
    channel_sid: String,
    channel_unique_name: Option<String>,
    channel_friendly_name: Option<String>,
    message_sid: Option<String>,
    message_index: Option<u64>,
    author: Option<String>,
    body: Option<String>,
    recipient: String,
    badge: Option<u32>,
    sound: Option<String>,
    text: String,
}

impl StoredNotification {
    fn from_notification(n: &Notification) -> Self {
        Self {
            id: n.id.clone(),
            kind: n.kind.short_name().to_owned(),
            service_sid: n.service_sid.clone(),
            channel_sid: n.channel_sid.clone(),
            channel_unique_name: n.channel_unique_name.clone(),
            channel_friendly_name: n.channel_friendly_name.clone(),
            message_sid: n.message_sid.clone(),
            message_index: n.message_index,
            author: n.author.clone(),
            body: n.body.clone(),
            recipient: n.recipient.clone(),
            badge: n.badge,
            sound: n.sound.clone(),
            text: n.text.clone(),
        }
    }

    pub(super) fn into_notification(self) -> Option<Notification> {
        Some(Notification {
            id: self.id,
            kind: NotificationKind::parse(&self.kind)?,
            service_sid: self.service_sid,
            channel_sid: self.channel_sid,
            channel_unique_name: self.channel_unique_name,
            channel_friendly_name: self.channel_friendly_name,
            message_sid: self.message_sid,
            message_index: self.message_index,
            author: self.author,
            body: self.body,
            recipient: self.recipient,
            badge: self.badge,
            sound: self.sound,
            text: self.text,
        })
    }
}

fn kind_of(kind: EventKind) -> Option<NotificationKind> {
    match kind {
        EventKind::NewMessage => Some(NotificationKind::NewMessage),
        EventKind::AddedToChannel => Some(NotificationKind::AddedToChannel),
        EventKind::InvitedToChannel => Some(NotificationKind::InvitedToChannel),
        EventKind::RemovedFromChannel => Some(NotificationKind::RemovedFromChannel),
        _ => None,
    }
}

/// The recipients a fan-out still has to write: in binding-SID byte order (the order its
/// chunks are written in, whatever the database's collation), after `after` (the progress an
/// interrupted fan-out recorded).
fn still_to_write(
    mut recipients: Vec<parley_core::push::Recipient>,
    after: Option<&str>,
) -> Vec<parley_core::push::Recipient> {
    recipients.sort_by(|a, b| a.binding.sid.as_str().cmp(b.binding.sid.as_str()));
    if let Some(after) = after {
        recipients.retain(|r| r.binding.sid.as_str() > after);
    }
    recipients
}

impl Worker {
    /// One fan-out round: claim outbox entries and turn them into deliveries.
    pub async fn fanout_once(&self) -> Result<usize, StoreError> {
        let now = Timestamp::now();
        let items = self
            .push
            .claim_outbox(
                now,
                ts_after(now, self.config.lease),
                self.config.fanout_batch,
            )
            .await?;
        let n = items.len();
        for item in items {
            let event_id = item.event.id;
            if let Err(e) = self
                .fanout_event(&item.event, item.fanout_after.as_deref())
                .await
            {
                tracing::warn!(event.id = event_id, error = %e, "fan-out failed; will retry");
                let delay = self
                    .config
                    .retry
                    .ceiling(u32::try_from(item.attempts.max(1)).unwrap_or(1));
                self.push
                    .retry_outbox(event_id, ts_after(Timestamp::now(), delay))
                    .await?;
            }
        }
        Ok(n)
    }

    /// Fan `event` out: its recipients in binding-SID order (byte order, whatever the
    /// database's collation), skipping those up to `after` (written by an interrupted earlier
    /// fan-out), in chunks of `fanout_chunk`, each chunk one transaction that also records the
    /// progress; the last chunk removes the outbox entry.
    async fn fanout_event(&self, event: &Event, after: Option<&str>) -> Result<(), StoreError> {
        // Only the push kinds, always about a channel, are queued; anything else has nobody
        // to notify.
        let (Some(kind), Some(channel_sid)) = (kind_of(event.kind), event.channel_sid.as_ref())
        else {
            return self.push.complete_fanout(event.id, &[]).await;
        };
        let Some(service) = self.service(event).await? else {
            return self.push.complete_fanout(event.id, &[]).await;
        };
        let setting = kind.setting(&service.settings.notifications);
        if !setting.enabled {
            return self.push.complete_fanout(event.id, &[]).await;
        }
        let recipients = still_to_write(self.push.recipients(event).await?, after);
        let vars = TemplateVars {
            channel_sid: channel_sid.as_str(),
            channel_unique_name: event.channel_unique_name.as_deref(),
            channel_friendly_name: event.channel_friendly_name.as_deref(),
            user_identity: event.actor.as_deref(),
            user_friendly_name: None,
            message: event.body.as_deref(),
        };
        let text = render(kind, setting.template.as_deref(), &vars);
        let badge_on =
            kind == NotificationKind::NewMessage && setting.badge_count_enabled == Some(true);
        let mut per_identity: HashMap<String, String> = HashMap::new();
        let chunk_size = self.config.fanout_chunk.max(1);
        let total = recipients.len();
        let mut chunks = recipients.chunks(chunk_size).peekable();
        if chunks.peek().is_none() {
            return self.push.complete_fanout(event.id, &[]).await;
        }
        while let Some(chunk) = chunks.next() {
            let now = Timestamp::now();
            let mut deliveries = Vec::with_capacity(chunk.len());
            for r in chunk {
                let b = &r.binding;
                let payload = match per_identity.get(&b.identity) {
                    Some(p) => p.clone(),
                    None => {
                        let badge = if badge_on {
                            let n = self
                                .push
                                .badge_count(&event.service_sid, &b.identity)
                                .await?;
                            Some(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
                        } else {
                            None
                        };
                        let n = Notification {
                            id: format!("{}:{}", event.service_sid, event.id),
                            kind,
                            service_sid: event.service_sid.to_string(),
                            channel_sid: channel_sid.to_string(),
                            channel_unique_name: event.channel_unique_name.clone(),
                            channel_friendly_name: event.channel_friendly_name.clone(),
                            message_sid: event.message_sid.as_ref().map(ToString::to_string),
                            message_index: event.message_index.and_then(|i| u64::try_from(i).ok()),
                            author: event.actor.clone(),
                            body: event.body.clone(),
                            recipient: b.identity.clone(),
                            badge,
                            sound: setting.sound.clone(),
                            text: text.clone(),
                        };
                        let p = serde_json::to_string(&StoredNotification::from_notification(&n))
                            .map_err(|e| StoreError::Other(e.into()))?;
                        per_identity.insert(b.identity.clone(), p.clone());
                        p
                    }
                };
                deliveries.push(NewDelivery {
                    id: format!("{}:{}", event.id, b.sid),
                    event_id: event.id,
                    account_sid: b.account_sid.clone(),
                    service_sid: b.service_sid.clone(),
                    binding_sid: b.sid.clone(),
                    credential_sid: b.credential_sid.clone(),
                    binding_type: b.binding_type,
                    address: b.address.clone(),
                    identity: b.identity.clone(),
                    payload,
                    event_at: event.date_created,
                    available_at: now,
                });
            }
            match (chunks.peek(), chunk.last()) {
                (Some(_), Some(last)) => {
                    self.push
                        .fanout_progress(event.id, &deliveries, last.binding.sid.as_str())
                        .await?;
                }
                _ => self.push.complete_fanout(event.id, &deliveries).await?,
            }
        }
        tracing::debug!(event.id = event.id, deliveries = total, "fan-out");
        Ok(())
    }

    /// The service's current settings, read per event so a settings change applies to the next
    /// event on every node.
    async fn service(&self, event: &Event) -> Result<Option<Arc<Service>>, StoreError> {
        match self
            .store
            .fetch_service(&event.account_sid, &event.service_sid)
            .await
        {
            Ok(s) => Ok(Some(Arc::new(s))),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_core::binding::Binding;
    use parley_core::credential::PushType;
    use parley_core::push::Recipient;
    use parley_core::{AccountSid, BindingSid, ServiceSid, UserSid};

    fn recipient(sid: &str) -> Recipient {
        Recipient {
            binding: Binding {
                sid: BindingSid::parse(sid).expect("sid"),
                account_sid: AccountSid::generate(),
                service_sid: ServiceSid::generate(),
                user_sid: UserSid::generate(),
                identity: "x".into(),
                credential_sid: None,
                binding_type: PushType::Fcm,
                endpoint: "e".into(),
                address: "a".into(),
                message_types: vec![],
                date_created: Timestamp::now(),
                date_updated: Timestamp::now(),
            },
        }
    }

    fn sids(r: &[Recipient]) -> Vec<&str> {
        r.iter().map(|r| r.binding.sid.as_str()).collect()
    }

    #[test]
    fn a_resumed_fan_out_writes_only_what_comes_after_its_progress_in_byte_order() {
        let a = "BS0000000000000000000000000000000a";
        let b = "BS0000000000000000000000000000000b";
        let c = "BS000000000000000000000000000000c0";
        let d = "BSf0000000000000000000000000000000";
        let all = || vec![recipient(d), recipient(b), recipient(c), recipient(a)];
        assert_eq!(sids(&still_to_write(all(), None)), vec![a, b, c, d]);
        assert_eq!(sids(&still_to_write(all(), Some(b))), vec![c, d]);
        assert_eq!(sids(&still_to_write(all(), Some(d))), Vec::<&str>::new());
        // A progress that is not one of the recipients (that binding was deleted since).
        let between = "BS0000000000000000000000000000000c";
        assert_eq!(sids(&still_to_write(all(), Some(between))), vec![c, d]);
    }
}
