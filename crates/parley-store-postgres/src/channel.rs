//! Channels (contract §7). A path names a channel by SID or unique name ([`ChannelRef`]).
//! `members_count` is kept by a trigger on `members`; `messages_count`, `next_message_index` and
//! the last message by the message writes (message.rs), all under the channel's row lock.

use parley_core::channel::{Channel, ChannelRef, ChannelType, ChannelUpdate};
use parley_core::channel_webhook::ChannelWebhook;
use parley_core::event::{EventKind, Origin, Resource};
use parley_core::paging::{Page, PageRequest};
use parley_core::store::rows::changed_fields;
use parley_core::store::{ChannelStore, StoreError, StoreResult};
use parley_core::{AccountSid, ServiceSid, Timestamp};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::error::db;
use crate::event::{append, NewEvent};
use crate::paging::push_keyset;
use crate::rows::{channel_key, convert_all, ChannelRow, ChannelWebhookRow, Pg};
use crate::PgStore;

/// `(select sid from channels where account_sid = $1 and service_sid = $2 and <key> = $3)`: the
/// SID of the referenced channel (null when there is none), for statements whose first three
/// parameters are account, service and `channel_key(channel).1`.
pub(crate) fn channel_sid_sql(channel: &ChannelRef) -> String {
    let (column, _) = channel_key(channel);
    format!(
        "(select sid from channels where account_sid = $1 and service_sid = $2 and {column} = $3)"
    )
}

/// Append `(select sid from channels where …)`: the SID of the referenced channel of the
/// account and service (null when there is none).
pub(crate) fn push_channel_sid<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    account: &'a AccountSid,
    service: &'a ServiceSid,
    channel: &'a ChannelRef,
) {
    let (column, value) = channel_key(channel);
    qb.push("(select sid from channels where account_sid = ")
        .push_bind(account.as_str())
        .push(" and service_sid = ")
        .push_bind(service.as_str())
        .push(format_args!(" and {column} = "))
        .push_bind(value)
        .push(")");
}

/// Lock the referenced channel's row until the end of the transaction and return it
/// (`NotFound` when there is none). Every change of a channel's members, invites or messages
/// takes this lock first, so such changes are serialised per channel across all nodes.
/// `for no key update` still lets other transactions insert rows that reference the channel.
pub(crate) async fn lock_channel(
    conn: &mut PgConnection,
    account: &str,
    service: &str,
    channel: &ChannelRef,
) -> StoreResult<ChannelRow> {
    let (column, value) = channel_key(channel);
    let sql = format!(
        "select * from channels
         where account_sid = $1 and service_sid = $2 and {column} = $3
         for no key update"
    );
    sqlx::query_as(&sql)
        .bind(account)
        .bind(service)
        .bind(value)
        .fetch_one(conn)
        .await
        .map(|Pg(row)| row)
        .map_err(db)
}

/// Whether the referenced channel exists (for lists that came back empty).
pub(crate) async fn channel_exists(
    store: &PgStore,
    account: &AccountSid,
    service: &ServiceSid,
    channel: &ChannelRef,
) -> StoreResult<bool> {
    let (column, value) = channel_key(channel);
    let sql = format!(
        "select exists (select 1 from channels
                        where account_sid = $1 and service_sid = $2 and {column} = $3)"
    );
    sqlx::query_scalar(&sql)
        .bind(account.as_str())
        .bind(service.as_str())
        .bind(value)
        .fetch_one(&store.pool)
        .await
        .map_err(db)
}

/// An empty first page of a child list means either "no rows" or "no such channel".
pub(crate) async fn not_found_unless_channel<T>(
    store: &PgStore,
    account: &AccountSid,
    service: &ServiceSid,
    channel: &ChannelRef,
    page: Page<T>,
) -> StoreResult<Page<T>> {
    if page.items.is_empty() && !channel_exists(store, account, service, channel).await? {
        return Err(StoreError::NotFound);
    }
    Ok(page)
}

/// The one type a filter keeps, or `None` when it keeps every channel.
fn single_type(types: &[ChannelType]) -> Option<ChannelType> {
    let public = types.contains(&ChannelType::Public);
    let private = types.contains(&ChannelType::Private);
    match (public, private) {
        (true, false) => Some(ChannelType::Public),
        (false, true) => Some(ChannelType::Private),
        _ => None,
    }
}

/// Append the `list_channels` query to `qb` (shared with the query-plan test).
pub(crate) fn push_list_channels<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    account: &'a AccountSid,
    service: &'a ServiceSid,
    types: &[ChannelType],
    page: &PageRequest,
) {
    qb.push("select * from channels where service_sid = ")
        .push_bind(service.as_str())
        .push(" and account_sid = ")
        .push_bind(account.as_str());
    if let Some(t) = single_type(types) {
        qb.push(" and channel_type = ").push_bind(t.as_str());
    }
    push_keyset(qb, page);
}

#[async_trait::async_trait]
impl ChannelStore for PgStore {
    #[tracing::instrument(skip_all, fields(service.sid = %channel.service_sid, channel.sid = %channel.sid))]
    async fn create_channel(&self, channel: &Channel, origin: &Origin) -> StoreResult<Channel> {
        // Counters and the last message start empty whatever the value says: the store owns them.
        let mut tx = self.pool.begin().await.map_err(db)?;
        let Pg(row): Pg<ChannelRow> = sqlx::query_as(
            "insert into channels (sid, account_sid, service_sid, friendly_name, unique_name,
                                   attributes, channel_type, created_by, date_created,
                                   date_updated)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             returning *",
        )
        .bind(channel.sid.as_str())
        .bind(channel.account_sid.as_str())
        .bind(channel.service_sid.as_str())
        .bind(channel.friendly_name.as_deref())
        .bind(channel.unique_name.as_deref())
        .bind(channel.attributes.as_deref())
        .bind(channel.channel_type.as_str())
        .bind(channel.created_by.as_deref())
        .bind(channel.date_created.unix_micros())
        .bind(channel.date_updated.unix_micros())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let created: Channel = row.try_into()?;
        let state = Resource::Channel(created.clone());
        append(
            &mut tx,
            &NewEvent::new(EventKind::ChannelAdded, &state, origin, Timestamp::now()),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(created)
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn fetch_channel(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
    ) -> StoreResult<Channel> {
        let (column, value) = channel_key(channel);
        let sql = format!(
            "select * from channels where account_sid = $1 and service_sid = $2 and {column} = $3"
        );
        let Pg(row): Pg<ChannelRow> = sqlx::query_as(&sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(value)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn list_channels(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        types: &[ChannelType],
        page: &PageRequest,
    ) -> StoreResult<Page<Channel>> {
        let mut qb = QueryBuilder::new("");
        push_list_channels(&mut qb, account, service, types, page);
        let rows: Vec<Pg<ChannelRow>> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn update_channel(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        update: &ChannelUpdate,
        now: Timestamp,
        origin: &Origin,
    ) -> StoreResult<Channel> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let before = lock_channel(&mut tx, account.as_str(), service.as_str(), channel).await?;
        let Pg(row): Pg<ChannelRow> = sqlx::query_as(
            "update channels
             set friendly_name = case when $2 then $3 else friendly_name end,
                 unique_name = case when $4 then $5 else unique_name end,
                 attributes = coalesce($6, attributes),
                 created_by = coalesce($7, created_by),
                 date_created = coalesce($8, date_created),
                 date_updated = $9
             where sid = $1
             returning *",
        )
        .bind(before.sid.as_str())
        .bind(update.friendly_name.is_some())
        .bind(update.friendly_name.clone().flatten())
        .bind(update.unique_name.is_some())
        .bind(update.unique_name.clone().flatten())
        .bind(update.attributes.as_deref())
        .bind(update.created_by.as_deref())
        .bind(update.date_created.map(Timestamp::unix_micros))
        .bind(update.date_updated.unwrap_or(now).unix_micros())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let before: Channel = before.try_into()?;
        let after: Channel = row.try_into()?;
        let changed = changed_fields(&before, &after);
        let state = Resource::Channel(after.clone());
        append(
            &mut tx,
            &NewEvent::new(EventKind::ChannelUpdated, &state, origin, Timestamp::now())
                .changed(changed),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(after)
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn delete_channel(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        origin: &Origin,
    ) -> StoreResult<()> {
        // Members, messages and invites go with it (on delete cascade); events stay.
        let (column, value) = channel_key(channel);
        let sql = format!(
            "delete from channels where account_sid = $1 and service_sid = $2 and {column} = $3
             returning *"
        );
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The channel's webhooks go with it; when webhooks fire for this change, its event keeps
        // them (as they were) so they still get onChannelDestroyed. Locking the channel row
        // keeps a concurrent webhook create (which takes that lock) out of the gap.
        let hooks: Vec<ChannelWebhook> = if origin.webhooks {
            let hooks_sql = format!(
                "select w.* from channels c join channel_webhooks w
                     on w.channel_sid = c.sid and w.service_sid = c.service_sid
                 where c.account_sid = $1 and c.service_sid = $2 and c.{column} = $3
                 order by w.date_created, w.sid
                 for update of c"
            );
            let rows: Vec<Pg<ChannelWebhookRow>> = sqlx::query_as(&hooks_sql)
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(value)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            rows.into_iter()
                .map(|Pg(r)| ChannelWebhook::try_from(r))
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        // Who had the channel in their channels (its event names them for live clients). The
        // channel row is locked first: a concurrent join or invite (which updates or references
        // that row) waits, and then finds no channel, so nobody is missed.
        let lock_sql = format!(
            "select sid from channels
             where account_sid = $1 and service_sid = $2 and {column} = $3 for update"
        );
        let _locked: Vec<String> = sqlx::query_scalar(&lock_sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(value)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let who_sql = format!(
            "select m.identity from members m join channels c on c.sid = m.channel_sid
             where c.account_sid = $1 and c.service_sid = $2 and c.{column} = $3
             union
             select i.identity from invites i join channels c on c.sid = i.channel_sid
             where c.account_sid = $1 and c.service_sid = $2 and c.{column} = $3
             order by 1"
        );
        let identities: Vec<String> = sqlx::query_scalar(&who_sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(value)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let Pg(row): Pg<ChannelRow> = sqlx::query_as(&sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(value)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let state = Resource::Channel(row.try_into()?);
        let mut event = NewEvent::new(EventKind::ChannelRemoved, &state, origin, Timestamp::now());
        event.channel_webhooks = Some(&hooks);
        event.channel_identities = Some(&identities);
        append(&mut tx, &event).await?;
        tx.commit().await.map_err(db)
    }
}
