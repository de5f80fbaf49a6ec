//! Messages (contract §9). A post takes the channel's next index with one
//! `update channels … returning`: the row lock it holds until commit serialises concurrent
//! posters of a channel (on any node), so indexes are strictly increasing and never reused.
//! Lists walk the unique `(channel_sid, msg_index)` index in either direction, so a page from
//! the newest end costs the same on a channel of any size.

use parley_core::channel::{ChannelRef, Message, MessageOrder, MessageUpdate};
use parley_core::event::{EventKind, Origin, Resource};
use parley_core::paging::{Page, PageRequest};
use parley_core::store::rows::changed_fields;
use parley_core::store::{MessageStore, StoreError, StoreResult};
use parley_core::{AccountSid, ChannelSid, MessageSid, ServiceSid, Timestamp};
use sqlx::{Postgres, QueryBuilder};

use crate::channel::{channel_sid_sql, lock_channel, not_found_unless_channel, push_channel_sid};
use crate::error::db;
use crate::event::{append, NewEvent};
use crate::rows::{channel_key, convert_all, ChannelRow, MessageRow, Pg};
use crate::PgStore;

/// Append the `list_messages` query to `qb` (shared with the query-plan test). Cursor key =
/// index. Forward in `asc` (or backwards in `desc`) walks up the index, otherwise down;
/// `Page::from_fetched` turns backwards pages into list order.
pub(crate) fn push_list_messages<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    account: &'a AccountSid,
    service: &'a ServiceSid,
    channel: &'a ChannelRef,
    order: MessageOrder,
    page: &PageRequest,
) {
    let backwards = page.cursor.as_ref().is_some_and(|c| c.backwards);
    let ascending = (order == MessageOrder::Asc) != backwards;
    qb.push("select * from messages where channel_sid = ");
    push_channel_sid(qb, account, service, channel);
    if let Some(c) = &page.cursor {
        qb.push(if ascending {
            " and msg_index > "
        } else {
            " and msg_index < "
        })
        .push_bind(c.key);
    }
    qb.push(if ascending {
        " order by msg_index limit "
    } else {
        " order by msg_index desc limit "
    })
    .push_bind(page.fetch_limit());
}

/// Insert `message` at `index` into `ch` (its row as updated by the caller) and append its
/// `new_message` event, in the caller's transaction.
async fn insert_message(
    conn: &mut sqlx::PgConnection,
    ch: &ChannelRow,
    message: &Message,
    index: i64,
    was_edited: bool,
    origin: &Origin,
) -> StoreResult<Message> {
    let Pg(row): Pg<MessageRow> = sqlx::query_as(
        "insert into messages (sid, account_sid, service_sid, channel_sid, msg_index, msg_from,
                               body, attributes, last_updated_by, was_edited, date_created,
                               date_updated)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         returning *",
    )
    .bind(message.sid.as_str())
    .bind(message.account_sid.as_str())
    .bind(message.service_sid.as_str())
    .bind(ch.sid.as_str())
    .bind(index)
    .bind(&message.from)
    .bind(message.body.as_deref())
    .bind(message.attributes.as_deref())
    .bind(message.last_updated_by.as_deref())
    .bind(was_edited)
    .bind(message.date_created.unix_micros())
    .bind(message.date_updated.unix_micros())
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    let posted: Message = row.try_into()?;
    let state = Resource::Message(posted.clone());
    append(
        conn,
        &NewEvent::new(EventKind::NewMessage, &state, origin, Timestamp::now()).in_channel(ch),
    )
    .await?;
    Ok(posted)
}

#[async_trait::async_trait]
impl MessageStore for PgStore {
    #[tracing::instrument(skip_all, fields(service.sid = %message.service_sid, message.sid = %message.sid))]
    async fn create_message(
        &self,
        channel: &ChannelRef,
        message: &Message,
        origin: &Origin,
    ) -> StoreResult<Message> {
        let (column, value) = channel_key(channel);
        let mut tx = self.pool.begin().await.map_err(db)?;
        // In `set`, columns are their old values: last_message_index = the index taken.
        let sql = format!(
            "update channels
             set next_message_index = next_message_index + 1,
                 messages_count = messages_count + 1,
                 last_message_sid = $4,
                 last_message_index = next_message_index
             where account_sid = $1 and service_sid = $2 and {column} = $3
             returning *"
        );
        let Pg(ch): Pg<ChannelRow> = sqlx::query_as(&sql)
            .bind(message.account_sid.as_str())
            .bind(message.service_sid.as_str())
            .bind(value)
            .bind(message.sid.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let index = ch
            .last_message_index
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("channel without message index")))?;
        let posted = insert_message(&mut tx, &ch, message, index, false, origin).await?;
        tx.commit().await.map_err(db)?;
        Ok(posted)
    }

    #[tracing::instrument(skip_all, fields(service.sid = %message.service_sid, message.sid = %message.sid))]
    async fn import_message(
        &self,
        channel: &ChannelRef,
        message: &Message,
        origin: &Origin,
    ) -> StoreResult<Message> {
        let (column, value) = channel_key(channel);
        let mut tx = self.pool.begin().await.map_err(db)?;
        // In `set`, columns are their old values; the insert below fails (and rolls this back)
        // when the SID or the index is taken.
        let sql = format!(
            "update channels
             set next_message_index = greatest(next_message_index, $5 + 1),
                 messages_count = messages_count + 1,
                 last_message_sid = case when last_message_index is null
                     or last_message_index < $5 then $4 else last_message_sid end,
                 last_message_index = case when last_message_index is null
                     or last_message_index < $5 then $5 else last_message_index end
             where account_sid = $1 and service_sid = $2 and {column} = $3
             returning *"
        );
        let Pg(ch): Pg<ChannelRow> = sqlx::query_as(&sql)
            .bind(message.account_sid.as_str())
            .bind(message.service_sid.as_str())
            .bind(value)
            .bind(message.sid.as_str())
            .bind(message.index)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let posted = insert_message(
            &mut tx,
            &ch,
            message,
            message.index,
            message.was_edited,
            origin,
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(posted)
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, message.sid = %sid))]
    async fn fetch_message(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &MessageSid,
    ) -> StoreResult<Message> {
        let sql = format!(
            "select * from messages where sid = $4 and channel_sid = {}",
            channel_sid_sql(channel)
        );
        let Pg(row): Pg<MessageRow> = sqlx::query_as(&sql)
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
    async fn list_messages(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        order: MessageOrder,
        page: &PageRequest,
    ) -> StoreResult<Page<Message>> {
        let mut qb = QueryBuilder::new("");
        push_list_messages(&mut qb, account, service, channel, order, page);
        let rows: Vec<Pg<MessageRow>> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let page = Page::from_fetched(convert_all(rows)?, page);
        not_found_unless_channel(self, account, service, channel, page).await
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, message.sid = %sid))]
    async fn update_message(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &MessageSid,
        update: &MessageUpdate,
        now: Timestamp,
        origin: &Origin,
    ) -> StoreResult<Message> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let (column, value) = channel_key(channel);
        let sql = format!(
            "select * from channels where account_sid = $1 and service_sid = $2 and {column} = $3"
        );
        let Pg(ch): Pg<ChannelRow> = sqlx::query_as(&sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(value)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        // The state before, locked until commit.
        let Pg(before): Pg<MessageRow> = sqlx::query_as(
            "select * from messages where sid = $1 and channel_sid = $2 for no key update",
        )
        .bind(sid.as_str())
        .bind(ch.sid.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        // In `set`, `body` is the old body.
        let Pg(row): Pg<MessageRow> = sqlx::query_as(
            "update messages
             set body = coalesce($2, body),
                 was_edited = was_edited or ($2::text is not null and $2::text is distinct from body),
                 attributes = coalesce($3, attributes),
                 msg_from = coalesce($4, msg_from),
                 last_updated_by = coalesce($5, last_updated_by),
                 date_created = coalesce($6, date_created),
                 date_updated = $7
             where sid = $1
             returning *",
        )
        .bind(before.sid.as_str())
        .bind(update.body.as_deref())
        .bind(update.attributes.as_deref())
        .bind(update.from.as_deref())
        .bind(update.last_updated_by.as_deref())
        .bind(update.date_created.map(Timestamp::unix_micros))
        .bind(update.date_updated.unwrap_or(now).unix_micros())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let before: Message = before.try_into()?;
        let after: Message = row.try_into()?;
        let changed = changed_fields(&before, &after);
        let state = Resource::Message(after.clone());
        let actor = origin
            .identity
            .as_deref()
            .or(update.last_updated_by.as_deref());
        append(
            &mut tx,
            &NewEvent::new(EventKind::MessageUpdated, &state, origin, Timestamp::now())
                .in_channel(&ch)
                .actor(actor)
                .changed(changed),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(after)
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, message.sid = %sid))]
    async fn delete_message(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &MessageSid,
        origin: &Origin,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let ch = lock_channel(&mut tx, account.as_str(), service.as_str(), channel).await?;
        let Pg(row): Pg<MessageRow> =
            sqlx::query_as("delete from messages where sid = $1 and channel_sid = $2 returning *")
                .bind(sid.as_str())
                .bind(ch.sid.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        // The last message becomes the newest one left (a backward index walk of one row).
        sqlx::query(
            "update channels
             set messages_count = messages_count - 1,
                 (last_message_sid, last_message_index) = (
                     select m.sid, m.msg_index from messages m
                     where m.channel_sid = $1 order by m.msg_index desc limit 1)
             where sid = $1",
        )
        .bind(ch.sid.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let state = Resource::Message(row.try_into()?);
        append(
            &mut tx,
            &NewEvent::new(EventKind::MessageRemoved, &state, origin, Timestamp::now())
                .in_channel(&ch),
        )
        .await?;
        tx.commit().await.map_err(db)
    }

    #[tracing::instrument(skip_all, fields(channel.sid = %channel))]
    async fn count_messages_after(
        &self,
        channel: &ChannelSid,
        after_index: i64,
    ) -> StoreResult<i64> {
        sqlx::query_scalar(
            "select count(*) from messages where channel_sid = $1 and msg_index > $2",
        )
        .bind(channel.as_str())
        .bind(after_index)
        .fetch_one(&self.pool)
        .await
        .map_err(db)
    }
}
