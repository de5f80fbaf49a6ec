//! Members (contract §8) and the user-channel view (contract §6).
//!
//! Joining runs in one transaction that locks the user row, then the channel row (always in
//! this order, also when a user is deleted), so concurrent joins on any number of nodes are serialised per channel and per
//! user: `Limits.ChannelMembers` and `Limits.UserChannels` are checked against exact numbers and
//! can never be exceeded, and a second join of the same identity finds the first. The channel's
//! `members_count` is kept by a trigger on `members` (so a deleted user's memberships are
//! counted out too).

use parley_core::channel::{
    ChannelRef, Member, MemberLimits, MemberRef, MemberUpdate, UserChannel,
};
use parley_core::event::{EventKind, Origin, Resource};
use parley_core::paging::{Page, PageRequest};
use parley_core::store::rows::changed_fields;
use parley_core::store::{Conflict, MemberStore, StoreError, StoreResult};
use parley_core::user::UserRef;
use parley_core::{AccountSid, ServiceSid, Timestamp, UserSid};
use sqlx::{Postgres, QueryBuilder};

use crate::channel::{channel_sid_sql, lock_channel, not_found_unless_channel, push_channel_sid};
use crate::error::{db, is_transient, TRANSIENT_ATTEMPTS};
use crate::event::{append, NewEvent};
use crate::paging::push_keyset;
use crate::rows::{
    channel_key, convert_all, member_key, sid, user_key, ChannelRow, MemberRow, Pg, UserChannelRow,
};
use crate::PgStore;

/// Append the `list_members` query to `qb` (shared with the query-plan test).
pub(crate) fn push_list_members<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    account: &'a AccountSid,
    service: &'a ServiceSid,
    channel: &'a ChannelRef,
    identities: &'a [String],
    page: &PageRequest,
) {
    qb.push("select * from members where channel_sid = ");
    push_channel_sid(qb, account, service, channel);
    match identities {
        [] => {}
        [one] => {
            qb.push(" and identity = ").push_bind(one.as_str());
        }
        many => {
            qb.push(" and identity = any(").push_bind(many).push(")");
        }
    }
    push_keyset(qb, page);
}

/// Which rows of the user-channel view to read.
pub(crate) enum UserChannelScope<'a> {
    /// One page by `(date_created, channel_sid)`.
    Page(&'a PageRequest),
    /// The row of one channel.
    Channel(&'a ChannelRef),
}

/// Append the user-channel query: the user's memberships (`joined`) and pending invites
/// (`invited`), each an ordered index walk, merged. Unread counts are computed for the page's
/// rows only, from the horizon (`null` without one).
pub(crate) fn push_user_channels<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    account: &'a AccountSid,
    service: &'a ServiceSid,
    user_sid: &'a str,
    scope: UserChannelScope<'a>,
) {
    let (cursor, descending, limit) = match &scope {
        UserChannelScope::Page(page) => {
            let cursor = page.cursor.as_ref();
            (
                cursor,
                cursor.is_some_and(|c| c.backwards),
                Some(page.fetch_limit()),
            )
        }
        UserChannelScope::Channel(_) => (None, false, None),
    };
    let tail = |qb: &mut QueryBuilder<'a, Postgres>| {
        match &scope {
            UserChannelScope::Channel(channel) => {
                qb.push(" and channel_sid = ");
                push_channel_sid(qb, account, service, channel);
            }
            UserChannelScope::Page(_) => {
                if let Some(c) = cursor {
                    qb.push(if c.backwards {
                        " and (date_created, channel_sid) < ("
                    } else {
                        " and (date_created, channel_sid) > ("
                    })
                    .push_bind(c.key)
                    .push(", ")
                    .push_bind(c.sid.clone())
                    .push(")");
                }
            }
        }
        qb.push(if descending {
            " order by date_created desc, channel_sid desc"
        } else {
            " order by date_created, channel_sid"
        });
        if let Some(limit) = limit {
            qb.push(" limit ").push_bind(limit);
        }
    };
    qb.push(
        "select u.account_sid, u.service_sid, u.channel_sid, u.user_sid, u.member_sid, u.status,
                u.last_consumed_message_index, u.notification_level, u.date_created,
                case when u.last_consumed_message_index is null then null::bigint
                     else (select count(*) from messages m
                           where m.channel_sid = u.channel_sid
                             and m.msg_index > u.last_consumed_message_index)
                end as unread_messages_count
         from ((select account_sid, service_sid, channel_sid, user_sid, sid as member_sid,
                       'joined'::text as status, last_consumed_message_index,
                       notification_level, date_created
                from members where user_sid = ",
    )
    .push_bind(user_sid)
    .push(" and service_sid = ")
    .push_bind(service.as_str())
    .push(" and account_sid = ")
    .push_bind(account.as_str());
    tail(qb);
    qb.push(
        ") union all
               (select account_sid, service_sid, channel_sid, ",
    )
    .push_bind(user_sid)
    .push(
        "::text, null::text, 'invited'::text, null::bigint, 'default'::text, date_created
                from invites where user_sid = ",
    )
    .push_bind(user_sid)
    .push(" and service_sid = ")
    .push_bind(service.as_str())
    .push(" and account_sid = ")
    .push_bind(account.as_str());
    tail(qb);
    qb.push(")) u");
    qb.push(if descending {
        " order by u.date_created desc, u.channel_sid desc"
    } else {
        " order by u.date_created, u.channel_sid"
    });
    if let Some(limit) = limit {
        qb.push(" limit ").push_bind(limit);
    }
}

impl PgStore {
    /// The SID of the referenced user of the account and service.
    async fn resolve_user(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
    ) -> StoreResult<String> {
        let (column, value) = user_key(user);
        let sql = format!(
            "select sid from users
             where account_sid = $1 and service_sid = $2 and {column} = $3"
        );
        sqlx::query_scalar(&sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(value)
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }

    /// One attempt of [`MemberStore::create_member`].
    async fn try_create_member(
        &self,
        member: &Member,
        limits: &MemberLimits,
        actor: Option<&str>,
        origin: &Origin,
    ) -> StoreResult<Member> {
        let account = member.account_sid.as_str();
        let service = member.service_sid.as_str();
        let mut tx = self.pool.begin().await.map_err(db)?;
        // 1. The user row: serialises this user's joins, so its channel count is exact.
        let locked: Option<String> = sqlx::query_scalar(
            "select sid from users where sid = $1 and service_sid = $2 and account_sid = $3
             for no key update",
        )
        .bind(member.user_sid.as_str())
        .bind(service)
        .bind(account)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if locked.is_none() {
            return Err(StoreError::NotFound);
        }
        // 2. The channel row: serialises joins of this channel; read under the lock, its
        // members_count is the latest committed one.
        let channel = ChannelRef::Sid(member.channel_sid.clone());
        let ch = lock_channel(&mut tx, account, service, &channel).await?;
        let exists: bool = sqlx::query_scalar(
            "select exists (select 1 from members where channel_sid = $1 and identity = $2)",
        )
        .bind(ch.sid.as_str())
        .bind(&member.identity)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        if exists {
            return Err(StoreError::Conflict(Conflict::MemberExists));
        }
        limits.admit_to_channel(ch.members_count)?;
        let joined: i64 = sqlx::query_scalar("select count(*) from members where user_sid = $1")
            .bind(member.user_sid.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        limits.admit_user(joined)?;
        let Pg(row): Pg<MemberRow> = sqlx::query_as(
            "insert into members (sid, account_sid, service_sid, channel_sid, user_sid, identity,
                                  role_sid, last_consumed_message_index,
                                  last_consumption_timestamp, attributes, notification_level,
                                  date_created, date_updated)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             returning *",
        )
        .bind(member.sid.as_str())
        .bind(account)
        .bind(service)
        .bind(ch.sid.as_str())
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
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        // Joining accepts the pending invite.
        sqlx::query("delete from invites where channel_sid = $1 and identity = $2")
            .bind(ch.sid.as_str())
            .bind(&member.identity)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let joined: Member = row.try_into()?;
        let state = Resource::Member(joined.clone());
        append(
            &mut tx,
            &NewEvent::new(EventKind::AddedToChannel, &state, origin, Timestamp::now())
                .in_channel(&ch)
                .actor(actor.or(origin.identity.as_deref())),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(joined)
    }
}

#[async_trait::async_trait]
impl MemberStore for PgStore {
    #[tracing::instrument(skip_all, fields(service.sid = %member.service_sid, channel.sid = %member.channel_sid))]
    async fn create_member(
        &self,
        member: &Member,
        limits: &MemberLimits,
        actor: Option<&str>,
        origin: &Origin,
    ) -> StoreResult<Member> {
        // Locks are taken user → channel, as a user deletion takes them (user.rs), so these
        // two do not deadlock; should PostgreSQL still abort one side of a deadlock (or a
        // serialization failure), the whole transaction runs again.
        let mut attempt = 1;
        loop {
            match self.try_create_member(member, limits, actor, origin).await {
                Err(e) if attempt < TRANSIENT_ATTEMPTS && is_transient(&e) => attempt += 1,
                other => return other,
            }
        }
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn fetch_member(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        member: &MemberRef,
    ) -> StoreResult<Member> {
        let (column, value) = member_key(member);
        let sql = format!(
            "select * from members where {column} = $4 and channel_sid = {}",
            channel_sid_sql(channel)
        );
        let Pg(row): Pg<MemberRow> = sqlx::query_as(&sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(channel_key(channel).1)
            .bind(value)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn list_members(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        identities: &[String],
        page: &PageRequest,
    ) -> StoreResult<Page<Member>> {
        let mut qb = QueryBuilder::new("");
        push_list_members(&mut qb, account, service, channel, identities, page);
        let rows: Vec<Pg<MemberRow>> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let page = Page::from_fetched(convert_all(rows)?, page);
        not_found_unless_channel(self, account, service, channel, page).await
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
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The state before: the member row, locked (with its channel's names) until commit.
        let sql = format!(
            "select * from members where {column} = $4 and channel_sid = {}
             for no key update",
            channel_sid_sql(channel)
        );
        let Pg(before): Pg<MemberRow> = sqlx::query_as(&sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(channel_key(channel).1)
            .bind(value)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let Pg(ch): Pg<ChannelRow> = sqlx::query_as("select * from channels where sid = $1")
            .bind(before.channel_sid.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        // In `set`, columns are their old values.
        let Pg(row): Pg<MemberRow> = sqlx::query_as(
            "update members
             set role_sid = coalesce($2, role_sid),
                 last_consumed_message_index =
                     case when $3 then $4::bigint else last_consumed_message_index end,
                 last_consumption_timestamp = coalesce($5::bigint,
                     case when $3 and $4::bigint is distinct from last_consumed_message_index
                          then $6::bigint else last_consumption_timestamp end),
                 attributes = coalesce($7, attributes),
                 notification_level = coalesce($8, notification_level),
                 date_created = coalesce($9, date_created),
                 date_updated = $10
             where sid = $1
             returning *",
        )
        .bind(before.sid.as_str())
        .bind(update.role_sid.as_ref().map(|r| r.as_str()))
        .bind(update.last_consumed_message_index.is_some())
        .bind(update.last_consumed_message_index.flatten())
        .bind(
            update
                .last_consumption_timestamp
                .map(Timestamp::unix_micros),
        )
        .bind(now.unix_micros())
        .bind(update.attributes.as_deref())
        .bind(update.notification_level.map(|l| l.as_str()))
        .bind(update.date_created.map(Timestamp::unix_micros))
        .bind(update.date_updated.unwrap_or(now).unix_micros())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let before: Member = before.try_into()?;
        let after: Member = row.try_into()?;
        let changed = changed_fields(&before, &after);
        let state = Resource::Member(after.clone());
        append(
            &mut tx,
            &NewEvent::new(EventKind::MemberUpdated, &state, origin, Timestamp::now())
                .in_channel(&ch)
                .changed(changed),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(after)
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
        let mut tx = self.pool.begin().await.map_err(db)?;
        let ch = lock_channel(&mut tx, account.as_str(), service.as_str(), channel).await?;
        let sql = format!(
            "delete from members where channel_sid = $1 and {column} = $2
             returning *"
        );
        let Pg(row): Pg<MemberRow> = sqlx::query_as(&sql)
            .bind(ch.sid.as_str())
            .bind(value)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let state = Resource::Member(row.try_into()?);
        append(
            &mut tx,
            &NewEvent::new(EventKind::RemovedFromChannel, &state, origin, now)
                .in_channel(&ch)
                .actor(actor.or(origin.identity.as_deref())),
        )
        .await?;
        tx.commit().await.map_err(db)
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn joined_channel_counts(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        users: &[UserSid],
    ) -> StoreResult<Vec<(UserSid, i64)>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let sids: Vec<&str> = users.iter().map(UserSid::as_str).collect();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "select user_sid, count(*) from members
             where user_sid = any($3) and service_sid = $2 and account_sid = $1
             group by user_sid",
        )
        .bind(account.as_str())
        .bind(service.as_str())
        .bind(&sids)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|(user, n)| Ok((sid(UserSid::from_string, user)?, n)))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn list_user_channels(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
        page: &PageRequest,
    ) -> StoreResult<Page<UserChannel>> {
        let user_sid = self.resolve_user(account, service, user).await?;
        let mut qb = QueryBuilder::new("");
        push_user_channels(
            &mut qb,
            account,
            service,
            &user_sid,
            UserChannelScope::Page(page),
        );
        let rows: Vec<Pg<UserChannelRow>> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn fetch_user_channel(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
        channel: &ChannelRef,
    ) -> StoreResult<UserChannel> {
        let user_sid = self.resolve_user(account, service, user).await?;
        let mut qb = QueryBuilder::new("");
        push_user_channels(
            &mut qb,
            account,
            service,
            &user_sid,
            UserChannelScope::Channel(channel),
        );
        let Pg(row): Pg<UserChannelRow> = qb
            .build_query_as()
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound)?;
        row.try_into()
    }
}
