//! `UserStore`: users of a service, addressed by SID or identity.

use std::sync::LazyLock;

use parley_core::event::{EventKind, Origin, Resource};
use parley_core::paging::{Page, PageRequest};
use parley_core::store::rows::changed_fields;
use parley_core::store::{Conflict, StoreError, StoreResult, UserStore};
use parley_core::user::{User, UserRef, UserUpdate, UserView};
use parley_core::{AccountSid, ServiceSid, Timestamp};

use crate::event::{self, NewEvent};
use crate::lite::{lite_err, lite_write_err, one_line, q, FromLite, Q};
use crate::rows::{convert_all, user_key, ChannelRow, MemberRow, UserRow};
use crate::{one_row, push_keyset, require_service, SqliteStore};

const INSERT_USER: &str =
    "insert into users (sid, account_sid, service_sid, identity, friendly_name,
                                              attributes, role_sid, date_created, date_updated)
                           values (?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// `insert into users … <tail>` with every column of `user` bound.
fn insert_user_lite(sql: &str, user: &User) -> Q {
    q(sql.to_owned())
        .bind(user.sid.as_str())
        .bind(user.account_sid.as_str())
        .bind(user.service_sid.as_str())
        .bind(&user.identity)
        .bind(user.friendly_name.as_deref())
        .bind(user.attributes.as_deref())
        .bind(user.role_sid.as_ref().map(|r| r.as_str()))
        .bind(user.date_created.unix_micros())
        .bind(user.date_updated.unix_micros())
}

/// `<head> from users where … order by … limit …`.
pub(crate) fn list_query(
    head: &str,
    account: &AccountSid,
    service: &ServiceSid,
    page: &PageRequest,
) -> Q {
    let mut qb = q(format!("{head} from users where service_sid = "));
    qb.push_bind(service.as_str());
    qb.push(" and account_sid = ");
    qb.push_bind(account.as_str());
    push_keyset(&mut qb, page);
    qb
}

/// The statement of `fetch_user_view`, the user matched by `$column` (`sid` or `identity`).
macro_rules! view_sql {
    ($column:literal) => {
        concat!(
            "select u.sid, u.account_sid, u.service_sid, u.identity, u.friendly_name,
                    u.attributes, u.role_sid, u.date_created, u.date_updated,
                    (select count(*) from members m
                      where m.user_sid = u.sid and m.account_sid = u.account_sid
                        and m.service_sid = u.service_sid) as joined_channels_count,
                    case when s.reachability_enabled then
                        (select count(*) from bindings b
                          where b.account_sid = u.account_sid and b.service_sid = u.service_sid
                            and b.user_sid = u.sid)
                    end as bindings_count,
                    case when s.reachability_enabled then
                        exists(select 1 from presence p
                                where p.account_sid = u.account_sid
                                  and p.service_sid = u.service_sid
                                  and p.identity = u.identity and p.connections > 0
                                  and p.expires_at > cast((julianday('now') - 2440587.5)
                                                          * 86400000000.0 as integer))
                    end as online
               from users u
               join services s on s.sid = u.service_sid and s.account_sid = u.account_sid
              where u.account_sid = ? and u.service_sid = ? and u.",
            $column,
            " = ?"
        )
    };
}

/// `view_sql!` on one line (it runs on every fetch user; see [`one_line`]).
static VIEW_BY_SID: LazyLock<String> = LazyLock::new(|| one_line(view_sql!("sid")));
static VIEW_BY_IDENTITY: LazyLock<String> = LazyLock::new(|| one_line(view_sql!("identity")));

/// A row of `fetch_user_view`: the user's columns, then the two counts.
struct UserViewRow {
    user: UserRow,
    joined_channels_count: i64,
    bindings_count: Option<i64>,
    online: Option<bool>,
}

/// The columns `view_sql!` selects, in order: `UserRow::COLUMNS` (checked by a test), then
/// the counts. The row decodes by position (no lookup of column names per execution); the test
/// checks the statement against this list.
#[cfg(test)]
const USER_VIEW_COLUMNS: &[&str] = &[
    "sid",
    "account_sid",
    "service_sid",
    "identity",
    "friendly_name",
    "attributes",
    "role_sid",
    "date_created",
    "date_updated",
    "joined_channels_count",
    "bindings_count",
    "online",
];

/// Positions `0..` of the user's columns in `view_sql!`.
const USER_POSITIONS: [usize; 9] = [0, 1, 2, 3, 4, 5, 6, 7, 8];

impl FromLite for UserViewRow {
    fn from_lite(row: &rusqlite::Row<'_>, _: &[usize]) -> rusqlite::Result<Self> {
        Ok(Self {
            user: UserRow::from_lite(row, &USER_POSITIONS)?,
            joined_channels_count: row.get(9)?,
            bindings_count: row.get(10)?,
            online: row.get(11)?,
        })
    }
}

#[async_trait::async_trait]
impl UserStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(service.sid = %user.service_sid, user.sid = %user.sid))]
    async fn create_user(&self, user: &User, origin: &Origin) -> StoreResult<User> {
        self.write(|c| {
            require_service(c, &user.account_sid, &user.service_sid)?;
            let row: UserRow = insert_user_lite(&format!("{INSERT_USER} returning *"), user)
                .one(c)
                .map_err(|e| lite_write_err(e, Conflict::UserIdentityTaken, "role"))?;
            user_added(c, row, origin)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(service.sid = %user.service_sid))]
    async fn get_or_create_user(&self, user: &User, origin: &Origin) -> StoreResult<(User, bool)> {
        self.write(|c| {
            require_service(c, &user.account_sid, &user.service_sid)?;
            // Under the write lock the conflict arm only sees committed rows; `do nothing`
            // keeps the existing user, and the select below returns whichever row is there.
            let sql =
                format!("{INSERT_USER} on conflict (service_sid, identity) do nothing returning *");
            let inserted = insert_user_lite(&sql, user)
                .optional::<UserRow>(c)
                .map_err(|e| lite_write_err(e, Conflict::SidTaken, "role"))?;
            match inserted {
                Some(row) => Ok((user_added(c, row, origin)?, true)),
                None => {
                    let row: UserRow = q("select * from users
                             where account_sid = ? and service_sid = ? and identity = ?")
                    .bind(user.account_sid.as_str())
                    .bind(user.service_sid.as_str())
                    .bind(&user.identity)
                    .one(c)
                    .map_err(lite_err)?;
                    Ok((row.try_into()?, false))
                }
            }
        })
        .await
    }

    async fn fetch_user(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
    ) -> StoreResult<User> {
        let (column, value) = user_key(user);
        let sql = format!(
            "select * from users where account_sid = ? and service_sid = ? and {column} = ?"
        );
        let row: UserRow = self.read_one(
            &q(sql)
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(value),
        )?;
        row.try_into()
    }

    async fn fetch_user_view(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
    ) -> StoreResult<UserView> {
        // One statement, so one read transaction: the user, its joined channels, and its
        // bindings when the service's `reachability_enabled` setting is on.
        let (sql, value) = match user {
            UserRef::Sid(sid) => (VIEW_BY_SID.as_str(), sid.as_str()),
            UserRef::Identity(identity) => (VIEW_BY_IDENTITY.as_str(), identity.as_str()),
        };
        let row: UserViewRow = self.read_one(
            &q(sql)
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(value),
        )?;
        Ok(UserView {
            user: row.user.try_into()?,
            joined_channels_count: row.joined_channels_count,
            bindings_count: row.bindings_count.map(|n| u64::try_from(n).unwrap_or(0)),
            online: row.online,
        })
    }

    async fn list_users(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        page: &PageRequest,
    ) -> StoreResult<Page<User>> {
        let rows: Vec<UserRow> = self.read_all(&list_query("select *", account, service, page))?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    // No `user` field: it may be an identity (PII).
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
        let select = format!(
            "select * from users where account_sid = ? and service_sid = ? and {column} = ?"
        );
        self.write(|c| {
            let before: UserRow = q(select)
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(value)
                .one(c)
                .map_err(lite_err)?;
            let row: UserRow = q(
                "update users set friendly_name = coalesce(?, friendly_name),
                                      attributes = coalesce(?, attributes),
                                      role_sid = coalesce(?, role_sid),
                                      date_updated = ?
                     where sid = ?
                     returning *",
            )
            .bind(update.friendly_name.as_deref())
            .bind(update.attributes.as_deref())
            .bind(update.role_sid.as_ref().map(|r| r.as_str()))
            .bind(now.unix_micros())
            .bind(&before.sid)
            .one(c)
            .map_err(|e| lite_write_err(e, Conflict::UserIdentityTaken, "role"))?;
            let before: User = before.try_into()?;
            let after: User = row.try_into()?;
            let changed = changed_fields(&before, &after);
            let state = Resource::User(after.clone());
            event::append(
                c,
                &NewEvent::new(EventKind::UserUpdated, &state, origin, Timestamp::now())
                    .changed(changed),
            )?;
            Ok(after)
        })
        .await
    }

    // No `user` field: it may be an identity (PII).
    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn delete_user(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserRef,
        origin: &Origin,
    ) -> StoreResult<()> {
        // The user's bindings, memberships and invites go with it (`on delete cascade`). Each
        // membership gets its `removed_from_channel` event, as leaving a channel does, then
        // the user its `user_removed`, in the same write transaction.
        let (column, value) = user_key(user);
        let sql = format!(
            "select * from users where account_sid = ? and service_sid = ? and {column} = ?"
        );
        self.write(|c| {
            let Some(row): Option<UserRow> = q(sql)
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(value)
                .optional(c)
                .map_err(lite_err)?
            else {
                return Err(StoreError::NotFound);
            };
            let channels: Vec<ChannelRow> = q("select * from channels
                 where sid in (select channel_sid from members where user_sid = ?)
                 order by sid")
            .bind(&row.sid)
            .all(c)
            .map_err(lite_err)?;
            let members: Vec<MemberRow> =
                q("select * from members where user_sid = ? order by channel_sid")
                    .bind(&row.sid)
                    .all(c)
                    .map_err(lite_err)?;
            let n = q("delete from users where sid = ?")
                .bind(&row.sid)
                .execute(c)
                .map_err(lite_err)?;
            one_row(n)?;
            let now = Timestamp::now();
            for member in members {
                let Some(chan) = channels.iter().find(|ch| ch.sid == member.channel_sid) else {
                    continue;
                };
                let state = Resource::Member(member.try_into()?);
                event::append(
                    c,
                    &NewEvent::new(EventKind::RemovedFromChannel, &state, origin, now)
                        .in_channel(chan),
                )?;
            }
            let state = Resource::User(row.try_into()?);
            event::append(
                c,
                &NewEvent::new(EventKind::UserRemoved, &state, origin, now),
            )
        })
        .await
    }
}

/// Append `user_added` for the inserted `row`; the user.
fn user_added(c: &rusqlite::Connection, row: UserRow, origin: &Origin) -> StoreResult<User> {
    let user: User = row.try_into()?;
    let state = Resource::User(user.clone());
    event::append(
        c,
        &NewEvent::new(EventKind::UserAdded, &state, origin, Timestamp::now()),
    )?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_view_columns_are_the_user_row_columns_then_the_counts_in_sql_order() {
        let n = <UserRow as FromLite>::COLUMNS.len();
        assert_eq!(n, USER_POSITIONS.len());
        assert_eq!(&USER_VIEW_COLUMNS[..n], <UserRow as FromLite>::COLUMNS);
        assert_eq!(
            &USER_VIEW_COLUMNS[n..],
            ["joined_channels_count", "bindings_count", "online"]
        );
        // The statement selects exactly these columns, in this order.
        let mut c = rusqlite::Connection::open_in_memory().expect("open");
        crate::migrate::run(&mut c).expect("migrate");
        for sql in [VIEW_BY_SID.as_str(), VIEW_BY_IDENTITY.as_str()] {
            let st = c.prepare(sql).expect("prepare");
            assert_eq!(st.column_names(), USER_VIEW_COLUMNS);
        }
    }
}
