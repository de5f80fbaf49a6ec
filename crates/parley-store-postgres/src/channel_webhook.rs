//! Channel webhooks (contract §12). Creating one takes the channel's row lock (as members and
//! invites do), counts the channel's webhooks and inserts, so concurrent creates on any number of
//! nodes never leave more than 5. Updates lock the webhook row, merge and write.

use parley_core::channel::ChannelRef;
use parley_core::channel_webhook::{ChannelWebhook, WebhookConfiguration, MAX_CHANNEL_WEBHOOKS};
use parley_core::event::Event;
use parley_core::paging::{Page, PageRequest};
use parley_core::store::{ChannelWebhookStore, Limit, StoreError, StoreResult};
use parley_core::{AccountSid, ChannelSid, ChannelWebhookSid, ServiceSid, Timestamp};
use sqlx::{Postgres, QueryBuilder};

use crate::channel::{channel_sid_sql, lock_channel, not_found_unless_channel, push_channel_sid};
use crate::error::{db, one_row};
use crate::paging::push_keyset;
use crate::rows::{channel_key, convert_all, to_json, ChannelWebhookRow, EventRow, Pg};
use crate::PgStore;

/// Append the `list_channel_webhooks` query to `qb` (shared with the query-plan test).
pub(crate) fn push_list_channel_webhooks<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    account: &'a AccountSid,
    service: &'a ServiceSid,
    channel: &'a ChannelRef,
    page: &PageRequest,
) {
    qb.push("select * from channel_webhooks where channel_sid = ");
    push_channel_sid(qb, account, service, channel);
    push_keyset(qb, page);
}

#[async_trait::async_trait]
impl ChannelWebhookStore for PgStore {
    #[tracing::instrument(skip_all, fields(service.sid = %webhook.service_sid, webhook.sid = %webhook.sid))]
    async fn create_channel_webhook(
        &self,
        channel: &ChannelRef,
        webhook: &ChannelWebhook,
    ) -> StoreResult<ChannelWebhook> {
        let configuration = to_json(&webhook.configuration)?;
        let mut tx = self.pool.begin().await.map_err(db)?;
        let ch = lock_channel(
            &mut tx,
            webhook.account_sid.as_str(),
            webhook.service_sid.as_str(),
            channel,
        )
        .await?;
        let count: i64 =
            sqlx::query_scalar("select count(*) from channel_webhooks where channel_sid = $1")
                .bind(ch.sid.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        if count >= MAX_CHANNEL_WEBHOOKS {
            return Err(StoreError::LimitExceeded(Limit::ChannelWebhooks));
        }
        let Pg(row): Pg<ChannelWebhookRow> = sqlx::query_as(
            "insert into channel_webhooks (sid, account_sid, service_sid, channel_sid,
                                           webhook_type, configuration, date_created,
                                           date_updated)
             values ($1, $2, $3, $4, $5, $6, $7, $8)
             returning *",
        )
        .bind(webhook.sid.as_str())
        .bind(ch.account_sid.as_str())
        .bind(ch.service_sid.as_str())
        .bind(ch.sid.as_str())
        .bind(webhook.kind.as_str())
        .bind(&configuration)
        .bind(webhook.date_created.unix_micros())
        .bind(webhook.date_updated.unix_micros())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, webhook.sid = %sid))]
    async fn fetch_channel_webhook(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &ChannelWebhookSid,
    ) -> StoreResult<ChannelWebhook> {
        let sql = format!(
            "select * from channel_webhooks where sid = $4 and channel_sid = {}",
            channel_sid_sql(channel)
        );
        let Pg(row): Pg<ChannelWebhookRow> = sqlx::query_as(&sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(channel_key(channel).1)
            .bind(sid.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn list_channel_webhooks(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        page: &PageRequest,
    ) -> StoreResult<Page<ChannelWebhook>> {
        let mut qb = QueryBuilder::new("");
        push_list_channel_webhooks(&mut qb, account, service, channel, page);
        let rows: Vec<Pg<ChannelWebhookRow>> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let page = Page::from_fetched(convert_all(rows)?, page);
        not_found_unless_channel(self, account, service, channel, page).await
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
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Lock the row so concurrent updates of different fields merge instead of overwriting.
        let sql = format!(
            "select * from channel_webhooks where sid = $4 and channel_sid = {} for update",
            channel_sid_sql(channel)
        );
        let Pg(row): Pg<ChannelWebhookRow> = sqlx::query_as(&sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(channel_key(channel).1)
            .bind(sid.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let current: ChannelWebhook = row.try_into()?;
        let merged = to_json(&current.configuration.apply(patch))?;
        let Pg(row): Pg<ChannelWebhookRow> = sqlx::query_as(
            "update channel_webhooks set configuration = $1, date_updated = $2
             where sid = $3 returning *",
        )
        .bind(&merged)
        .bind(now.unix_micros())
        .bind(sid.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
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
        let sql = format!(
            "delete from channel_webhooks where sid = $4 and channel_sid = {}",
            channel_sid_sql(channel)
        );
        let done = sqlx::query(&sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(channel_key(channel).1)
            .bind(sid.as_str())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        one_row(done.rows_affected())
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service_sid, channels = channels.len()))]
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
        let sids: Vec<&str> = channels.iter().map(ChannelSid::as_str).collect();
        let rows: Vec<Pg<ChannelWebhookRow>> = sqlx::query_as(
            "select * from channel_webhooks
             where channel_sid = any($1) and service_sid = $2 and account_sid = $3
             order by date_created, sid",
        )
        .bind(&sids)
        .bind(service_sid.as_str())
        .bind(account.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut found: Vec<ChannelWebhook> = convert_all(rows)?;
        // Channels deleted meanwhile: their hooks as the channel_removed event kept them.
        let removed: Vec<Pg<EventRow>> = sqlx::query_as(
            "select e.* from unnest($1::text[]) c(sid)
             cross join lateral (
                 select * from events x
                 where x.service_sid = $2 and x.seq > $4 and x.channel_sid = c.sid
                   and x.kind = 'channel_removed'
                 order by x.seq limit 1) e
             where e.account_sid = $3
               and not exists (select 1 from channels ch where ch.sid = c.sid)",
        )
        .bind(&sids)
        .bind(service_sid.as_str())
        .bind(account.as_str())
        .bind(after_seq)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let removed: Vec<Event> = convert_all(removed)?;
        found.extend(removed.into_iter().flat_map(|e| e.channel_webhooks));
        Ok(parley_core::channel_webhook::grouped_by_channel(
            found, channels,
        ))
    }
}
