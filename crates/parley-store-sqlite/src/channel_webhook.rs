//! `ChannelWebhookStore`: a channel's webhooks (contract §12). The 5-per-channel limit is
//! counted and the row inserted in one write transaction; the single writer serialises
//! concurrent creates, so the count cannot be overtaken.

use parley_core::channel::ChannelRef;
use parley_core::channel_webhook::{ChannelWebhook, WebhookConfiguration, MAX_CHANNEL_WEBHOOKS};
use parley_core::event::Event;
use parley_core::paging::{Page, PageRequest};
use parley_core::store::{ChannelWebhookStore, Conflict, Limit, StoreError, StoreResult};
use parley_core::{AccountSid, ChannelSid, ChannelWebhookSid, ServiceSid, Timestamp};

use crate::channel::{in_channel, resolve_channel};
use crate::lite::{lite_err, lite_write_err, q, Q};
use crate::rows::{channel_key, convert_all, ChannelWebhookRow, EventRow};
use crate::{push_keyset, to_json, SqliteStore};

/// `<head> from channel_webhooks where channel_sid = ? order by … limit …`.
pub(crate) fn list_query(head: &str, channel_sid: &str, page: &PageRequest) -> Q {
    let mut qb = q(format!("{head} from channel_webhooks where channel_sid = "));
    qb.push_bind(channel_sid);
    push_keyset(&mut qb, page);
    qb
}

/// The webhook `sid` of the referenced channel, on connection `c`.
fn fetch_on(
    c: &rusqlite::Connection,
    account: &AccountSid,
    service: &ServiceSid,
    channel: &ChannelRef,
    sid: &ChannelWebhookSid,
) -> StoreResult<ChannelWebhookRow> {
    let (_, value) = channel_key(channel);
    q(format!(
        "select * from channel_webhooks where sid = ? and {}",
        in_channel(channel)
    ))
    .bind(sid.as_str())
    .bind(account.as_str())
    .bind(service.as_str())
    .bind(value)
    .one(c)
    .map_err(lite_err)
}

#[async_trait::async_trait]
impl ChannelWebhookStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(service.sid = %webhook.service_sid, webhook.sid = %webhook.sid))]
    async fn create_channel_webhook(
        &self,
        channel: &ChannelRef,
        webhook: &ChannelWebhook,
    ) -> StoreResult<ChannelWebhook> {
        let configuration = to_json(&webhook.configuration)?;
        let row: ChannelWebhookRow = self
            .write(|c| {
                let chan = resolve_channel(c, &webhook.account_sid, &webhook.service_sid, channel)?;
                let count: i64 = q("select count(*) from channel_webhooks where channel_sid = ?")
                    .bind(&chan.sid)
                    .one(c)
                    .map_err(lite_err)?;
                if count >= MAX_CHANNEL_WEBHOOKS {
                    return Err(StoreError::LimitExceeded(Limit::ChannelWebhooks));
                }
                q(
                    "insert into channel_webhooks (sid, account_sid, service_sid, channel_sid,
                                                 webhook_type, configuration, date_created,
                                                 date_updated)
                   values (?, ?, ?, ?, ?, ?, ?, ?)
                   returning *",
                )
                .bind(webhook.sid.as_str())
                .bind(&chan.account_sid)
                .bind(&chan.service_sid)
                .bind(&chan.sid)
                .bind(webhook.kind.as_str())
                .bind(&configuration)
                .bind(webhook.date_created.unix_micros())
                .bind(webhook.date_updated.unix_micros())
                .one(c)
                .map_err(|e| lite_write_err(e, Conflict::SidTaken, "channel"))
            })
            .await?;
        row.try_into()
    }

    async fn fetch_channel_webhook(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &ChannelWebhookSid,
    ) -> StoreResult<ChannelWebhook> {
        self.read(|c| fetch_on(c, account, service, channel, sid))?
            .try_into()
    }

    async fn list_channel_webhooks(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        page: &PageRequest,
    ) -> StoreResult<Page<ChannelWebhook>> {
        let rows: Vec<ChannelWebhookRow> = self.read(|c| {
            let chan = resolve_channel(c, account, service, channel)?;
            list_query("select *", &chan.sid, page)
                .all(c)
                .map_err(lite_err)
        })?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, webhook.sid = %sid))]
    async fn update_channel_webhook(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &ChannelWebhookSid,
        patch: &WebhookConfiguration,
        now: Timestamp,
    ) -> StoreResult<ChannelWebhook> {
        // Read, merge and write in one write transaction: concurrent updates of different
        // fields all survive.
        let row: ChannelWebhookRow = self
            .write(|c| {
                let current: ChannelWebhook =
                    fetch_on(c, account, service, channel, sid)?.try_into()?;
                let merged = to_json(&current.configuration.apply(patch))?;
                q(
                    "update channel_webhooks set configuration = ?, date_updated = ?
                   where sid = ? returning *",
                )
                .bind(&merged)
                .bind(now.unix_micros())
                .bind(sid.as_str())
                .one(c)
                .map_err(lite_err)
            })
            .await?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, webhook.sid = %sid))]
    async fn delete_channel_webhook(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &ChannelWebhookSid,
    ) -> StoreResult<()> {
        let (_, value) = channel_key(channel);
        let sql = format!(
            "delete from channel_webhooks where sid = ? and {}",
            in_channel(channel)
        );
        self.write_some(
            q(sql)
                .bind(sid.as_str())
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(value),
        )
        .await
    }

    async fn channel_webhooks_for_delivery(
        &self,
        account: &AccountSid,
        service_sid: &ServiceSid,
        channels: &[ChannelSid],
        after_seq: i64,
    ) -> StoreResult<Vec<ChannelWebhook>> {
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let sids = to_json(&channels.iter().map(ChannelSid::as_str).collect::<Vec<_>>())?;
        let rows: Vec<ChannelWebhookRow> = self.read_all(
            &q("select * from channel_webhooks
                where channel_sid in (select value from json_each(?1))
                  and service_sid = ?2 and account_sid = ?3
                order by date_created, sid")
            .bind(sids.as_str())
            .bind(service_sid.as_str())
            .bind(account.as_str()),
        )?;
        let mut found: Vec<ChannelWebhook> = convert_all(rows)?;
        // Channels deleted meanwhile: their hooks as the channel_removed event kept them.
        let removed: Vec<EventRow> = self.read_all(
            &q("select e.* from json_each(?1) c
                join events e on e.id = (
                    select x.id from events x
                    where x.service_sid = ?2 and x.seq > ?4 and x.channel_sid = c.value
                      and x.kind = 'channel_removed'
                    order by x.seq limit 1)
                where e.account_sid = ?3
                  and not exists (select 1 from channels ch where ch.sid = c.value)")
            .bind(sids.as_str())
            .bind(service_sid.as_str())
            .bind(account.as_str())
            .bind(after_seq),
        )?;
        let removed: Vec<Event> = convert_all(removed)?;
        found.extend(removed.into_iter().flat_map(|e| e.channel_webhooks));
        Ok(parley_core::channel_webhook::grouped_by_channel(
            found, channels,
        ))
    }
}
