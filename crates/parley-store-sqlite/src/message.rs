//! `MessageStore`: messages of a channel, ordered by their per-channel index.
//!
//! Posting is one short write transaction: a single `update channels … returning` assigns the
//! index (`next_message_index` only grows, so indexes are strictly increasing and never
//! reused), counts the message and moves the last message; then the message row and its
//! `new_message` event are inserted. The single writer connection serialises concurrent posts.
//! Lists walk the unique `(channel_sid, msg_index)` index in either direction, so a page from
//! the newest end costs the same in a channel of a thousand or a million messages.

use parley_core::channel::{ChannelRef, Message, MessageOrder, MessageUpdate};
use parley_core::event::{EventKind, Origin, Resource};
use parley_core::paging::{Page, PageRequest};
use parley_core::store::rows::changed_fields;
use parley_core::store::{Conflict, MessageStore, StoreError, StoreResult};
use parley_core::{AccountSid, ChannelSid, MessageSid, ServiceSid, Timestamp};

use crate::channel::{in_channel, resolve_channel};
use crate::event::{self, NewEvent};
use crate::lite::{lite_err, lite_write_err, q, Q};
use crate::rows::{channel_key, convert_all, ChannelRow, MessageRow};
use crate::SqliteStore;

/// `<head> from messages where channel_sid = ? … order by msg_index … limit …`. The cursor key
/// is the index; a forward page of a `desc` list goes to smaller indexes. Rows come back in
/// travel order (finish with `Page::from_fetched`).
pub(crate) fn list_query(
    head: &str,
    channel_sid: &str,
    order: MessageOrder,
    page: &PageRequest,
) -> Q {
    let mut qb = q(format!("{head} from messages where channel_sid = "));
    qb.push_bind(channel_sid);
    let backwards = page.cursor.as_ref().is_some_and(|c| c.backwards);
    let ascending = (order == MessageOrder::Asc) != backwards;
    if let Some(cursor) = &page.cursor {
        qb.push(if ascending {
            " and msg_index > "
        } else {
            " and msg_index < "
        });
        qb.push_bind(cursor.key);
    }
    qb.push(if ascending {
        " order by msg_index limit "
    } else {
        " order by msg_index desc limit "
    });
    qb.push_bind(page.fetch_limit());
    qb
}

/// Insert `message` at `index` into `chan` (its row as updated by the caller) and append its
/// `new_message` event, in the caller's write transaction.
fn insert_message(
    c: &rusqlite::Connection,
    chan: &ChannelRow,
    message: &Message,
    index: i64,
    was_edited: bool,
    origin: &Origin,
) -> StoreResult<Message> {
    let row: MessageRow = q(
        "insert into messages (sid, account_sid, service_sid, channel_sid, msg_index, msg_from,
                               body, attributes, last_updated_by, was_edited, date_created,
                               date_updated)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         returning *",
    )
    .bind(message.sid.as_str())
    .bind(&chan.account_sid)
    .bind(&chan.service_sid)
    .bind(&chan.sid)
    .bind(index)
    .bind(&message.from)
    .bind(message.body.as_deref())
    .bind(message.attributes.as_deref())
    .bind(message.last_updated_by.as_deref())
    .bind(was_edited)
    .bind(message.date_created.unix_micros())
    .bind(message.date_updated.unix_micros())
    .one(c)
    .map_err(|e| lite_write_err(e, Conflict::SidTaken, "channel"))?;
    let posted: Message = row.try_into()?;
    let state = Resource::Message(posted.clone());
    event::append(
        c,
        &NewEvent::new(EventKind::NewMessage, &state, origin, Timestamp::now()).in_channel(chan),
    )?;
    Ok(posted)
}

#[async_trait::async_trait]
impl MessageStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(service.sid = %message.service_sid, message.sid = %message.sid))]
    async fn create_message(
        &self,
        channel: &ChannelRef,
        message: &Message,
        origin: &Origin,
    ) -> StoreResult<Message> {
        let (column, value) = channel_key(channel);
        // Resolve the channel and take the next index in one statement. In SQLite's `update`,
        // right-hand sides read the old row: `last_message_index` gets the index being assigned.
        let sql = format!(
            "update channels set next_message_index = next_message_index + 1,
                                 messages_count = messages_count + 1,
                                 last_message_sid = ?,
                                 last_message_index = next_message_index
             where account_sid = ? and service_sid = ? and {column} = ?
             returning *"
        );
        self.write(|c| {
            let chan: ChannelRow = q(sql)
                .bind(message.sid.as_str())
                .bind(message.account_sid.as_str())
                .bind(message.service_sid.as_str())
                .bind(value)
                .one(c)
                .map_err(lite_err)?;
            let index = chan
                .last_message_index
                .ok_or_else(|| StoreError::Other(anyhow::anyhow!("no index was assigned")))?;
            insert_message(c, &chan, message, index, false, origin)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(service.sid = %message.service_sid, message.sid = %message.sid))]
    async fn import_message(
        &self,
        channel: &ChannelRef,
        message: &Message,
        origin: &Origin,
    ) -> StoreResult<Message> {
        let (column, value) = channel_key(channel);
        // Right-hand sides read the old row; the message insert below fails (and rolls this
        // back) when the SID or the index is taken.
        let sql = format!(
            "update channels set next_message_index = max(next_message_index, ?1 + 1),
                                 messages_count = messages_count + 1,
                                 last_message_sid = case when last_message_index is null
                                     or last_message_index < ?1 then ?2 else last_message_sid end,
                                 last_message_index = case when last_message_index is null
                                     or last_message_index < ?1 then ?1 else last_message_index end
             where account_sid = ?3 and service_sid = ?4 and {column} = ?5
             returning *"
        );
        self.write(|c| {
            let chan: ChannelRow = q(sql)
                .bind(message.index)
                .bind(message.sid.as_str())
                .bind(message.account_sid.as_str())
                .bind(message.service_sid.as_str())
                .bind(value)
                .one(c)
                .map_err(lite_err)?;
            insert_message(c, &chan, message, message.index, message.was_edited, origin)
        })
        .await
    }

    async fn fetch_message(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &MessageSid,
    ) -> StoreResult<Message> {
        let (_, value) = channel_key(channel);
        let sql = format!(
            "select * from messages where sid = ? and {}",
            in_channel(channel)
        );
        let row: MessageRow = self.read_one(
            &q(sql)
                .bind(sid.as_str())
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(value),
        )?;
        row.try_into()
    }

    async fn list_messages(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        order: MessageOrder,
        page: &PageRequest,
    ) -> StoreResult<Page<Message>> {
        let rows: Vec<MessageRow> = self.read(|c| {
            let chan = resolve_channel(c, account, service, channel)?;
            list_query("select *", &chan.sid, order, page)
                .all(c)
                .map_err(lite_err)
        })?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
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
        let sql = "update messages set
                 was_edited = case when ? is not null and ? is not body then 1
                                   else was_edited end,
                 body = coalesce(?, body),
                 attributes = coalesce(?, attributes),
                 msg_from = coalesce(?, msg_from),
                 last_updated_by = coalesce(?, last_updated_by),
                 date_created = coalesce(?, date_created),
                 date_updated = ?
             where sid = ?
             returning *";
        let body = update.body.as_deref();
        self.write(|c| {
            let chan = resolve_channel(c, account, service, channel)?;
            let before: MessageRow = q("select * from messages where sid = ? and channel_sid = ?")
                .bind(sid.as_str())
                .bind(&chan.sid)
                .one(c)
                .map_err(lite_err)?;
            let row: MessageRow = q(sql)
                .bind(body)
                .bind(body)
                .bind(body)
                .bind(update.attributes.as_deref())
                .bind(update.from.as_deref())
                .bind(update.last_updated_by.as_deref())
                .bind(update.date_created.map(Timestamp::unix_micros))
                .bind(update.date_updated.unwrap_or(now).unix_micros())
                .bind(sid.as_str())
                .one(c)
                .map_err(lite_err)?;
            let before: Message = before.try_into()?;
            let after: Message = row.try_into()?;
            let changed = changed_fields(&before, &after);
            let state = Resource::Message(after.clone());
            event::append(
                c,
                &NewEvent::new(EventKind::MessageUpdated, &state, origin, Timestamp::now())
                    .in_channel(&chan)
                    .actor(
                        origin
                            .identity
                            .as_deref()
                            .or(update.last_updated_by.as_deref()),
                    )
                    .changed(changed),
            )?;
            Ok(after)
        })
        .await
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
        self.write(|c| {
            let chan = resolve_channel(c, account, service, channel)?;
            let row: MessageRow =
                q("delete from messages where sid = ? and channel_sid = ? returning *")
                    .bind(sid.as_str())
                    .bind(&chan.sid)
                    .one(c)
                    .map_err(lite_err)?;
            // The last message becomes the newest one left (both null when none is left).
            q("update channels set
                   messages_count = messages_count - 1,
                   (last_message_sid, last_message_index) =
                       (select sid, msg_index from messages where channel_sid = ?1
                        order by msg_index desc limit 1)
               where sid = ?1")
            .bind(&chan.sid)
            .execute(c)
            .map_err(lite_err)?;
            let state = Resource::Message(row.try_into()?);
            event::append(
                c,
                &NewEvent::new(EventKind::MessageRemoved, &state, origin, Timestamp::now())
                    .in_channel(&chan),
            )
        })
        .await
    }

    async fn count_messages_after(
        &self,
        channel: &ChannelSid,
        after_index: i64,
    ) -> StoreResult<i64> {
        self.read_one(
            &q("select count(*) from messages where channel_sid = ? and msg_index > ?")
                .bind(channel.as_str())
                .bind(after_index),
        )
    }
}
