//! `ChannelStore`: channels of a service, addressed by SID or unique name. Counters and the
//! last message are maintained by `member.rs` (triggers) and `message.rs`.

use parley_core::channel::{Channel, ChannelRef, ChannelType, ChannelUpdate};
use parley_core::channel_webhook::ChannelWebhook;
use parley_core::event::{EventKind, Origin, Resource};
use parley_core::paging::{Page, PageRequest};
use parley_core::store::rows::changed_fields;
use parley_core::store::{ChannelStore, Conflict, StoreResult};
use parley_core::{AccountSid, ServiceSid, Timestamp};

use crate::event::{self, NewEvent};
use crate::lite::{lite_err, lite_write_err, q, Q};
use crate::rows::{channel_key, convert_all, ChannelRow, ChannelWebhookRow};
use crate::{push_keyset, require_service, SqliteStore};

/// `channel_sid = (the channel named by ?, ?, ?)`: scopes a statement on a channel's children
/// by account, service and channel SID or unique name (bind those three, in that order).
pub(crate) fn in_channel(channel: &ChannelRef) -> String {
    let (column, _) = channel_key(channel);
    format!(
        "channel_sid = (select sid from channels
                        where account_sid = ? and service_sid = ? and {column} = ?)"
    )
}

/// The channel row named by `channel` in `account`/`service`, or `NotFound`.
pub(crate) fn resolve_channel(
    c: &rusqlite::Connection,
    account: &AccountSid,
    service: &ServiceSid,
    channel: &ChannelRef,
) -> StoreResult<ChannelRow> {
    let (column, value) = channel_key(channel);
    q(format!(
        "select * from channels where account_sid = ? and service_sid = ? and {column} = ?"
    ))
    .bind(account.as_str())
    .bind(service.as_str())
    .bind(value)
    .one(c)
    .map_err(lite_err)
}

/// `<head> from channels where … order by … limit …`. A type filter naming every type is no
/// filter; one type walks `channels_by_type`.
pub(crate) fn list_query(
    head: &str,
    account: &AccountSid,
    service: &ServiceSid,
    types: &[ChannelType],
    page: &PageRequest,
) -> Q {
    let mut qb = q(format!("{head} from channels where service_sid = "));
    qb.push_bind(service.as_str());
    let only = |t: ChannelType| types.iter().all(|x| *x == t);
    let filter = if types.is_empty() {
        None
    } else if only(ChannelType::Public) {
        Some(ChannelType::Public)
    } else if only(ChannelType::Private) {
        Some(ChannelType::Private)
    } else {
        None
    };
    if let Some(t) = filter {
        qb.push(" and channel_type = ");
        qb.push_bind(t.as_str());
    }
    qb.push(" and account_sid = ");
    qb.push_bind(account.as_str());
    push_keyset(&mut qb, page);
    qb
}

#[async_trait::async_trait]
impl ChannelStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(service.sid = %channel.service_sid, channel.sid = %channel.sid))]
    async fn create_channel(&self, channel: &Channel, origin: &Origin) -> StoreResult<Channel> {
        // Counters and the last message start empty whatever the value says.
        self.write(|c| {
            require_service(c, &channel.account_sid, &channel.service_sid)?;
            let row: ChannelRow = q(
                "insert into channels (sid, account_sid, service_sid, friendly_name, unique_name,
                                         attributes, channel_type, created_by, date_created,
                                         date_updated)
                   values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
            .one(c)
            .map_err(|e| lite_write_err(e, Conflict::ChannelUniqueNameTaken, "service"))?;
            let channel: Channel = row.try_into()?;
            let state = Resource::Channel(channel.clone());
            event::append(
                c,
                &NewEvent::new(EventKind::ChannelAdded, &state, origin, Timestamp::now()),
            )?;
            Ok(channel)
        })
        .await
    }

    async fn fetch_channel(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
    ) -> StoreResult<Channel> {
        self.read(|c| resolve_channel(c, account, service, channel))?
            .try_into()
    }

    async fn list_channels(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        types: &[ChannelType],
        page: &PageRequest,
    ) -> StoreResult<Page<Channel>> {
        let rows: Vec<ChannelRow> =
            self.read_all(&list_query("select *", account, service, types, page))?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    // No `channel` field: a unique name may be user data.
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
        // `case when ?set then ?value else column end` for the clearable fields.
        let sql = "update channels set
                 friendly_name = case when ? then ? else friendly_name end,
                 unique_name = case when ? then ? else unique_name end,
                 attributes = coalesce(?, attributes),
                 created_by = coalesce(?, created_by),
                 date_created = coalesce(?, date_created),
                 date_updated = ?
             where sid = ?
             returning *";
        self.write(|c| {
            let before = resolve_channel(c, account, service, channel)?;
            let row: ChannelRow = q(sql)
                .bind(update.friendly_name.is_some())
                .bind(update.friendly_name.clone().flatten())
                .bind(update.unique_name.is_some())
                .bind(update.unique_name.clone().flatten())
                .bind(update.attributes.as_deref())
                .bind(update.created_by.as_deref())
                .bind(update.date_created.map(Timestamp::unix_micros))
                .bind(update.date_updated.unwrap_or(now).unix_micros())
                .bind(&before.sid)
                .one(c)
                .map_err(|e| lite_write_err(e, Conflict::ChannelUniqueNameTaken, "service"))?;
            let before: Channel = before.try_into()?;
            let after: Channel = row.try_into()?;
            let changed = changed_fields(&before, &after);
            let state = Resource::Channel(after.clone());
            event::append(
                c,
                &NewEvent::new(EventKind::ChannelUpdated, &state, origin, Timestamp::now())
                    .changed(changed),
            )?;
            Ok(after)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn delete_channel(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        origin: &Origin,
    ) -> StoreResult<()> {
        // Members, messages and invites go with it (`on delete cascade`); joined-channel counts
        // are counted from `members`, so they drop with the rows.
        let (column, value) = channel_key(channel);
        let sql = format!(
            "delete from channels where account_sid = ? and service_sid = ? and {column} = ?
             returning *"
        );
        // The channel's webhooks go with it; when webhooks fire for this change, its event keeps
        // them (as they were) so they still get onChannelDestroyed.
        let hooks_sql = format!(
            "select w.* from channel_webhooks w join channels c on c.sid = w.channel_sid
             where c.account_sid = ? and c.service_sid = ? and c.{column} = ?
             order by w.date_created, w.sid"
        );
        // Who had the channel in their channels (its event names them for live clients).
        let who_sql = format!(
            "select m.identity from members m join channels c on c.sid = m.channel_sid
             where c.account_sid = ? and c.service_sid = ? and c.{column} = ?
             union
             select i.identity from invites i join channels c on c.sid = i.channel_sid
             where c.account_sid = ? and c.service_sid = ? and c.{column} = ?
             order by 1"
        );
        self.write(|c| {
            let identities: Vec<String> = q(who_sql)
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(value)
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(value)
                .all(c)
                .map_err(lite_err)?;
            let hooks: Vec<ChannelWebhook> = if origin.webhooks {
                let rows: Vec<ChannelWebhookRow> = q(hooks_sql)
                    .bind(account.as_str())
                    .bind(service.as_str())
                    .bind(value)
                    .all(c)
                    .map_err(lite_err)?;
                convert_all(rows)?
            } else {
                Vec::new()
            };
            let row: ChannelRow = q(sql)
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(value)
                .one(c)
                .map_err(lite_err)?;
            let state = Resource::Channel(row.try_into()?);
            let mut event =
                NewEvent::new(EventKind::ChannelRemoved, &state, origin, Timestamp::now());
            event.channel_webhooks = Some(&hooks);
            event.channel_identities = Some(&identities);
            event::append(c, &event)
        })
        .await
    }
}
