//! Users (contract §4). A path names a user by SID or identity ([`UserRef`]).

use parley_core::event::{EventKind, Origin, Resource};
use parley_core::paging::{Page, PageRequest};
use parley_core::store::rows::changed_fields;
use parley_core::store::{StoreError, StoreResult, UserStore};
use parley_core::user::{User, UserRef, UserUpdate, UserView};
use parley_core::{AccountSid, ServiceSid, Timestamp};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::error::{db, one_row};
use crate::event::{append, NewEvent};
use crate::paging::push_keyset;
use crate::rows::{convert_all, user_key, ChannelRow, MemberRow, Pg, UserRow};
use crate::PgStore;

const INSERT_USER: &str =
    "insert into users (sid, account_sid, service_sid, identity, friendly_name,
                                     attributes, role_sid, date_created, date_updated)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

fn bind_user<'q>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, Pg<UserRow>, sqlx::postgres::PgArguments>,
    user: &'q User,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, Pg<UserRow>, sqlx::postgres::PgArguments> {
    q.bind(user.sid.as_str())
        .bind(user.account_sid.as_str())
        .bind(user.service_sid.as_str())
        .bind(&user.identity)
        .bind(user.friendly_name.as_deref())
        .bind(user.attributes.as_deref())
        .bind(user.role_sid.as_ref().map(|r| r.as_str()))
        .bind(user.date_created.unix_micros())
        .bind(user.date_updated.unix_micros())
}

/// Append the `list_users` query to `qb` (shared with the query-plan test).
pub(crate) fn push_list_users<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    account: &'a AccountSid,
    service: &'a ServiceSid,
    page: &PageRequest,
) {
    qb.push("select * from users where account_sid = ")
        .push_bind(account.as_str())
        .push(" and service_sid = ")
        .push_bind(service.as_str());
    push_keyset(qb, page);
}

#[async_trait::async_trait]
impl UserStore for PgStore {
    #[tracing::instrument(skip_all, fields(service.sid = %user.service_sid, user.sid = %user.sid))]
    async fn create_user(&self, user: &User, origin: &Origin) -> StoreResult<User> {
        let sql = format!("{INSERT_USER} returning *");
        let mut tx = self.pool.begin().await.map_err(db)?;
        let Pg(row) = bind_user(sqlx::query_as(&sql), user)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let created = user_added(&mut tx, row, origin).await?;
        tx.commit().await.map_err(db)?;
        Ok(created)
    }

    #[tracing::instrument(skip_all, fields(service.sid = %user.service_sid))]
    async fn get_or_create_user(&self, user: &User, origin: &Origin) -> StoreResult<(User, bool)> {
        let insert =
            format!("{INSERT_USER} on conflict (service_sid, identity) do nothing returning *");
        // A concurrent delete between the insert and the select could hide the row; try again.
        for _ in 0..3 {
            let mut tx = self.pool.begin().await.map_err(db)?;
            let inserted = bind_user(sqlx::query_as(&insert), user)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if let Some(Pg(row)) = inserted {
                let created = user_added(&mut tx, row, origin).await?;
                tx.commit().await.map_err(db)?;
                return Ok((created, true));
            }
            tx.rollback().await.map_err(db)?;
            let existing: Option<Pg<UserRow>> = sqlx::query_as(
                "select * from users
                 where account_sid = $1 and service_sid = $2 and identity = $3",
            )
            .bind(user.account_sid.as_str())
            .bind(user.service_sid.as_str())
            .bind(&user.identity)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            match existing {
                Some(Pg(row)) => return Ok((row.try_into()?, false)),
                // The identity exists in the service but under another account: the service
                // is not this account's.
                None if self.identity_taken(user).await? => return Err(StoreError::NotFound),
                None => continue,
            }
        }
        Err(StoreError::Other(anyhow::anyhow!(
            "get_or_create_user: user kept disappearing"
        )))
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn fetch_user(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
    ) -> StoreResult<User> {
        let (column, value) = user_key(user);
        let sql = format!(
            "select * from users where account_sid = $1 and service_sid = $2 and {column} = $3"
        );
        let Pg(row): Pg<UserRow> = sqlx::query_as(&sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(value)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        row.try_into()
    }

    async fn fetch_user_view(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
    ) -> StoreResult<UserView> {
        use sqlx::{FromRow as _, Row as _};
        // One statement: the user, its joined channels, and its bindings when the service's
        // `reachability_enabled` setting is on.
        let (column, value) = user_key(user);
        let sql = format!(
            "select u.*,
                    (select count(*) from members m
                      where m.user_sid = u.sid and m.account_sid = u.account_sid
                        and m.service_sid = u.service_sid) as joined_channels_count,
                    case when (s.settings::jsonb ->> 'reachability_enabled')::boolean then
                        (select count(*) from bindings b
                          where b.account_sid = u.account_sid and b.service_sid = u.service_sid
                            and b.user_sid = u.sid)
                    end as bindings_count,
                    case when (s.settings::jsonb ->> 'reachability_enabled')::boolean then
                        exists(select 1 from presence p
                                where p.account_sid = u.account_sid
                                  and p.service_sid = u.service_sid
                                  and p.identity = u.identity and p.connections > 0
                                  and p.expires_at > (extract(epoch from clock_timestamp())
                                                      * 1000000)::bigint)
                    end as online
               from users u
               join services s on s.sid = u.service_sid and s.account_sid = u.account_sid
              where u.account_sid = $1 and u.service_sid = $2 and u.{column} = $3"
        );
        let row = sqlx::query(&sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(value)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let Pg(user_row) = Pg::<UserRow>::from_row(&row).map_err(db)?;
        let joined: i64 = row.try_get("joined_channels_count").map_err(db)?;
        let bindings: Option<i64> = row.try_get("bindings_count").map_err(db)?;
        let online: Option<bool> = row.try_get("online").map_err(db)?;
        Ok(UserView {
            user: user_row.try_into()?,
            joined_channels_count: joined,
            bindings_count: bindings.map(|n| u64::try_from(n).unwrap_or(0)),
            online,
        })
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn list_users(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        page: &PageRequest,
    ) -> StoreResult<Page<User>> {
        let mut qb = QueryBuilder::new("");
        push_list_users(&mut qb, account, service, page);
        let rows: Vec<Pg<UserRow>> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn update_user(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
        update: &UserUpdate,
        now: Timestamp,
        origin: &Origin,
    ) -> StoreResult<User> {
        let (column, value) = user_key(user);
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The state before, locked until commit.
        let sql = format!(
            "select * from users where account_sid = $1 and service_sid = $2 and {column} = $3
             for no key update"
        );
        let Pg(before): Pg<UserRow> = sqlx::query_as(&sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(value)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let Pg(row): Pg<UserRow> = sqlx::query_as(
            "update users
             set friendly_name = coalesce($2, friendly_name),
                 attributes = coalesce($3, attributes),
                 role_sid = coalesce($4, role_sid),
                 date_updated = $5
             where sid = $1
             returning *",
        )
        .bind(before.sid.as_str())
        .bind(update.friendly_name.as_deref())
        .bind(update.attributes.as_deref())
        .bind(update.role_sid.as_ref().map(|r| r.as_str()))
        .bind(now.unix_micros())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let before: User = before.try_into()?;
        let after: User = row.try_into()?;
        let changed = changed_fields(&before, &after);
        let state = Resource::User(after.clone());
        append(
            &mut tx,
            &NewEvent::new(EventKind::UserUpdated, &state, origin, Timestamp::now())
                .changed(changed),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(after)
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn delete_user(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
        origin: &Origin,
    ) -> StoreResult<()> {
        // Its bindings, memberships and invites go with it (on delete cascade); the members
        // trigger counts the memberships out of their channels. Locks follow the order of a
        // join (member.rs): the user row first — no join of this user can commit after it —
        // then the channels it is a member of, in SID order, so deletions and joins racing
        // on several nodes do not deadlock. The events are appended last (event_seqs' lock).
        let (column, value) = user_key(user);
        let mut tx = self.pool.begin().await.map_err(db)?;
        let lock_user = format!(
            "select * from users where account_sid = $1 and service_sid = $2 and {column} = $3
             for update"
        );
        let Some(Pg(row)): Option<Pg<UserRow>> = sqlx::query_as(&lock_user)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(value)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            return Err(StoreError::NotFound);
        };
        let channels: Vec<Pg<ChannelRow>> = sqlx::query_as(
            "select * from channels
             where sid in (select channel_sid from members where user_sid = $1)
             order by sid
             for no key update",
        )
        .bind(row.sid.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        // Each membership gets its `removed_from_channel` event, as leaving a channel does.
        let members: Vec<Pg<MemberRow>> =
            sqlx::query_as("select * from members where user_sid = $1 order by channel_sid")
                .bind(row.sid.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        let done = sqlx::query("delete from users where sid = $1")
            .bind(row.sid.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        one_row(done.rows_affected())?;
        let now = Timestamp::now();
        for Pg(member) in members {
            let Some(Pg(ch)) = channels.iter().find(|Pg(c)| c.sid == member.channel_sid) else {
                continue;
            };
            let state = Resource::Member(member.try_into()?);
            append(
                &mut tx,
                &NewEvent::new(EventKind::RemovedFromChannel, &state, origin, now).in_channel(ch),
            )
            .await?;
        }
        let state = Resource::User(row.try_into()?);
        append(
            &mut tx,
            &NewEvent::new(EventKind::UserRemoved, &state, origin, now),
        )
        .await?;
        tx.commit().await.map_err(db)
    }
}

/// Append `user_added` for the inserted `row` (inside the insert's transaction); the user.
async fn user_added(conn: &mut PgConnection, row: UserRow, origin: &Origin) -> StoreResult<User> {
    let user: User = row.try_into()?;
    let state = Resource::User(user.clone());
    append(
        conn,
        &NewEvent::new(EventKind::UserAdded, &state, origin, Timestamp::now()),
    )
    .await?;
    Ok(user)
}

impl PgStore {
    /// Whether `user.identity` exists in `user.service_sid` regardless of account.
    async fn identity_taken(&self, user: &User) -> StoreResult<bool> {
        sqlx::query_scalar(
            "select exists (select 1 from users where service_sid = $1 and identity = $2)",
        )
        .bind(user.service_sid.as_str())
        .bind(&user.identity)
        .fetch_one(&self.pool)
        .await
        .map_err(db)
    }
}
