//! `MemberStore`: channel members (by SID or identity) and the user-channel view.
//!
//! `channels.members_count` is kept by the `members_count_up`/`members_count_down` triggers
//! (migrations/0002_chat.sql), so it is exact on every path, including the cascade from a
//! deleted user or channel. A user's joined-channel count is `count(*)` over `members_by_user`.

use parley_core::channel::{
    ChannelRef, Member, MemberLimits, MemberRef, MemberUpdate, UserChannel,
};
use parley_core::event::{EventKind, Origin, Resource};
use parley_core::paging::{Page, PageRequest};
use parley_core::store::rows::changed_fields;
use parley_core::store::{Conflict, MemberStore, StoreError, StoreResult};
use parley_core::user::UserRef;
use parley_core::{AccountSid, ServiceSid, Timestamp, UserSid};

use crate::channel::{in_channel, resolve_channel};
use crate::event::{self, NewEvent};
use crate::lite::{lite_err, lite_write_err, q, Q};
use crate::rows::{
    channel_key, convert_all, member_key, sid, user_key, ChannelRow, MemberRow, UserChannelRow,
};
use crate::{push_keyset, push_keyset_condition, push_keyset_order, SqliteStore};

/// `<head> from members where channel_sid = ? [and identity in (…)] order by … limit …`.
pub(crate) fn list_query(
    head: &str,
    channel_sid: &str,
    identities: &[String],
    page: &PageRequest,
) -> Q {
    let mut qb = q(format!("{head} from members where channel_sid = "));
    qb.push_bind(channel_sid);
    if !identities.is_empty() {
        qb.push(" and identity in (");
        qb.push_list(identities.iter().map(String::as_str));
        qb.push(")");
    }
    push_keyset(&mut qb, page);
    qb
}

/// A user's memberships ∪ pending invites (`explain` is `""` or `"explain query plan "`), one
/// channel's when `channel` is given, as a keyset page by `(date_created, channel_sid)`: each
/// arm walks its `…_by_user` index from the cursor and SQLite merges the two ordered arms, so
/// nothing is sorted. The unread count is exact: the messages after the horizon, counted along
/// `messages_by_index`; `null` without a horizon.
pub(crate) fn user_channels_query(
    explain: &str,
    user_sid: &str,
    channel: Option<&str>,
    page: &PageRequest,
) -> Q {
    let mut qb = q(format!(
        "{explain}select m.account_sid, m.service_sid, m.channel_sid, m.user_sid,
                m.sid as member_sid, 'joined' as status, m.last_consumed_message_index,
                case when m.last_consumed_message_index is null then null
                     else (select count(*) from messages x
                           where x.channel_sid = m.channel_sid
                             and x.msg_index > m.last_consumed_message_index)
                end as unread_messages_count,
                m.notification_level, m.date_created
         from members m where m.user_sid = "
    ));
    qb.push_bind(user_sid);
    if let Some(channel) = channel {
        qb.push(" and m.channel_sid = ");
        qb.push_bind(channel);
    }
    push_keyset_condition(&mut qb, page, "m.date_created", "m.channel_sid");
    qb.push(
        " union all
         select i.account_sid, i.service_sid, i.channel_sid, i.user_sid,
                null, 'invited', null, null, 'default', i.date_created
         from invites i where i.user_sid = ",
    );
    qb.push_bind(user_sid);
    if let Some(channel) = channel {
        qb.push(" and i.channel_sid = ");
        qb.push_bind(channel);
    }
    push_keyset_condition(&mut qb, page, "i.date_created", "i.channel_sid");
    push_keyset_order(&mut qb, page, "date_created", "channel_sid");
    qb
}

/// The SID of the user named by `user` in `account`/`service`, or `NotFound`.
fn resolve_user(
    c: &rusqlite::Connection,
    account: &AccountSid,
    service: &ServiceSid,
    user: &UserRef,
) -> StoreResult<String> {
    let (column, value) = user_key(user);
    q(format!(
        "select sid from users where account_sid = ? and service_sid = ? and {column} = ?"
    ))
    .bind(account.as_str())
    .bind(service.as_str())
    .bind(value)
    .one(c)
    .map_err(lite_err)
}

#[async_trait::async_trait]
impl MemberStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(service.sid = %member.service_sid, channel.sid = %member.channel_sid, member.sid = %member.sid))]
    async fn create_member(
        &self,
        member: &Member,
        limits: &MemberLimits,
        actor: Option<&str>,
        origin: &Origin,
    ) -> StoreResult<Member> {
        self.write(|c| {
            let chan: ChannelRow =
                q("select * from channels where account_sid = ? and service_sid = ? and sid = ?")
                    .bind(member.account_sid.as_str())
                    .bind(member.service_sid.as_str())
                    .bind(member.channel_sid.as_str())
                    .one(c)
                    .map_err(lite_err)?;
            let identity: String = q(
                "select identity from users where account_sid = ? and service_sid = ? and sid = ?",
            )
            .bind(member.account_sid.as_str())
            .bind(member.service_sid.as_str())
            .bind(member.user_sid.as_str())
            .one(c)
            .map_err(lite_err)?;
            if identity != member.identity {
                return Err(StoreError::InvalidReference(
                    "identity does not match user_sid",
                ));
            }
            // Checks in this order: already a member, then the channel's limit, then the
            // user's.
            let exists: Option<i64> =
                q("select 1 from members where channel_sid = ? and identity = ?")
                    .bind(&chan.sid)
                    .bind(&member.identity)
                    .optional(c)
                    .map_err(lite_err)?;
            if exists.is_some() {
                return Err(StoreError::Conflict(Conflict::MemberExists));
            }
            limits.admit_to_channel(chan.members_count)?;
            let joined: i64 = q("select count(*) from members where user_sid = ?")
                .bind(member.user_sid.as_str())
                .one(c)
                .map_err(lite_err)?;
            limits.admit_user(joined)?;
            let row: MemberRow = q(
                "insert into members (sid, account_sid, service_sid, channel_sid, user_sid,
                                          identity, role_sid, last_consumed_message_index,
                                          last_consumption_timestamp, attributes,
                                          notification_level, date_created, date_updated)
                     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                     returning *",
            )
            .bind(member.sid.as_str())
            .bind(&chan.account_sid)
            .bind(&chan.service_sid)
            .bind(&chan.sid)
            .bind(member.user_sid.as_str())
            .bind(&member.identity)
            .bind(member.role_sid.as_ref().map(|r| r.as_str()))
            .bind(member.last_consumed_message_index)
            .bind(
                member
                    .last_consumption_timestamp
                    .map(Timestamp::unix_micros),
            )
            .bind(member.attributes.as_deref())
            .bind(member.notification_level.as_str())
            .bind(member.date_created.unix_micros())
            .bind(member.date_updated.unix_micros())
            .one(c)
            .map_err(|e| lite_write_err(e, Conflict::MemberExists, "role"))?;
            // Joining uses up the pending invite.
            q("delete from invites where channel_sid = ? and identity = ?")
                .bind(&chan.sid)
                .bind(&member.identity)
                .execute(c)
                .map_err(lite_err)?;
            let joined: Member = row.try_into()?;
            let state = Resource::Member(joined.clone());
            event::append(
                c,
                &NewEvent::new(EventKind::AddedToChannel, &state, origin, Timestamp::now())
                    .in_channel(&chan)
                    .actor(actor.or(origin.identity.as_deref())),
            )?;
            Ok(joined)
        })
        .await
    }

    async fn fetch_member(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        member: &MemberRef,
    ) -> StoreResult<Member> {
        let (_, channel_value) = channel_key(channel);
        let (column, value) = member_key(member);
        let sql = format!(
            "select * from members where {column} = ? and {}",
            in_channel(channel)
        );
        let row: MemberRow = self.read_one(
            &q(sql)
                .bind(value)
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(channel_value),
        )?;
        row.try_into()
    }

    async fn list_members(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        identities: &[String],
        page: &PageRequest,
    ) -> StoreResult<Page<Member>> {
        let rows: Vec<MemberRow> = self.read(|c| {
            let chan = resolve_channel(c, account, service, channel)?;
            list_query("select *", &chan.sid, identities, page)
                .all(c)
                .map_err(lite_err)
        })?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn update_member(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        member: &MemberRef,
        update: &MemberUpdate,
        now: Timestamp,
        origin: &Origin,
    ) -> StoreResult<Member> {
        let (column, value) = member_key(member);
        let select = format!("select * from members where channel_sid = ? and {column} = ?");
        // Right-hand sides read the old row, so the timestamp rule compares against the old
        // horizon: a given timestamp wins; else a changed horizon stamps `now`.
        let sql = "update members set
                 role_sid = coalesce(?, role_sid),
                 last_consumption_timestamp = case
                     when ? is not null then ?
                     when ? and ? is not last_consumed_message_index then ?
                     else last_consumption_timestamp end,
                 last_consumed_message_index = case when ? then ?
                                                    else last_consumed_message_index end,
                 attributes = coalesce(?, attributes),
                 notification_level = coalesce(?, notification_level),
                 date_created = coalesce(?, date_created),
                 date_updated = ?
             where sid = ?
             returning *";
        let set_index = update.last_consumed_message_index.is_some();
        let index = update.last_consumed_message_index.flatten();
        let stamp = update
            .last_consumption_timestamp
            .map(Timestamp::unix_micros);
        self.write(|c| {
            let chan = resolve_channel(c, account, service, channel)?;
            let before: MemberRow = q(select.clone())
                .bind(&chan.sid)
                .bind(value)
                .one(c)
                .map_err(lite_err)?;
            let row: MemberRow = q(sql)
                .bind(update.role_sid.as_ref().map(|r| r.as_str()))
                .bind(stamp)
                .bind(stamp)
                .bind(set_index)
                .bind(index)
                .bind(now.unix_micros())
                .bind(set_index)
                .bind(index)
                .bind(update.attributes.as_deref())
                .bind(update.notification_level.map(|n| n.as_str()))
                .bind(update.date_created.map(Timestamp::unix_micros))
                .bind(update.date_updated.unwrap_or(now).unix_micros())
                .bind(&before.sid)
                .one(c)
                .map_err(|e| lite_write_err(e, Conflict::MemberExists, "role"))?;
            let before: Member = before.try_into()?;
            let after: Member = row.try_into()?;
            let changed = changed_fields(&before, &after);
            let state = Resource::Member(after.clone());
            event::append(
                c,
                &NewEvent::new(EventKind::MemberUpdated, &state, origin, Timestamp::now())
                    .in_channel(&chan)
                    .changed(changed),
            )?;
            Ok(after)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn delete_member(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        member: &MemberRef,
        actor: Option<&str>,
        now: Timestamp,
        origin: &Origin,
    ) -> StoreResult<()> {
        let (column, value) = member_key(member);
        let sql = format!("delete from members where channel_sid = ? and {column} = ? returning *");
        self.write(|c| {
            let chan = resolve_channel(c, account, service, channel)?;
            let row: MemberRow = q(sql)
                .bind(&chan.sid)
                .bind(value)
                .one(c)
                .map_err(lite_err)?;
            let state = Resource::Member(row.try_into()?);
            event::append(
                c,
                &NewEvent::new(EventKind::RemovedFromChannel, &state, origin, now)
                    .in_channel(&chan)
                    .actor(actor.or(origin.identity.as_deref())),
            )
        })
        .await
    }

    async fn joined_channel_counts(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        users: &[UserSid],
    ) -> StoreResult<Vec<(UserSid, i64)>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = q("select user_sid, count(*) from members where user_sid in (");
        qb.push_list(users.iter().map(UserSid::as_str));
        qb.push(") and account_sid = ");
        qb.push_bind(account.as_str());
        qb.push(" and service_sid = ");
        qb.push_bind(service.as_str());
        qb.push(" group by user_sid");
        let rows: Vec<(String, i64)> = self.read_all(&qb)?;
        rows.into_iter()
            .map(|(user, n)| Ok((sid(UserSid::from_string, user)?, n)))
            .collect()
    }

    async fn list_user_channels(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
        page: &PageRequest,
    ) -> StoreResult<Page<UserChannel>> {
        let rows: Vec<UserChannelRow> = self.read(|c| {
            let user_sid = resolve_user(c, account, service, user)?;
            user_channels_query("", &user_sid, None, page)
                .all(c)
                .map_err(lite_err)
        })?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    async fn fetch_user_channel(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
        channel: &ChannelRef,
    ) -> StoreResult<UserChannel> {
        let row: UserChannelRow = self.read(|c| {
            let user_sid = resolve_user(c, account, service, user)?;
            let chan = resolve_channel(c, account, service, channel)?;
            user_channels_query("", &user_sid, Some(&chan.sid), &PageRequest::first(1))
                .one(c)
                .map_err(lite_err)
        })?;
        row.try_into()
    }
}
