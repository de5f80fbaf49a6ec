//! `BindingStore`: push bindings, registered by SDK clients and read/deleted over REST.

use crate::lite::{lite_err, lite_write_err, q, Q};
use crate::rows::{convert_all, BindingRow};
use crate::{push_keyset, to_json, SqliteStore};
use parley_core::binding::{Binding, BindingFilter, NewBinding, Registered};
use parley_core::paging::{Page, PageRequest};
use parley_core::store::{BindingStore, Conflict, StoreError, StoreResult};
use parley_core::{AccountSid, BindingSid, ServiceSid, Timestamp, UserSid};

/// `<head> from bindings where … order by … limit …`: only the filters given become SQL.
pub(crate) fn list_query(
    head: &str,
    account: &AccountSid,
    service: &ServiceSid,
    filter: &BindingFilter,
    page: &PageRequest,
) -> Q {
    let mut qb = q(format!("{head} from bindings where service_sid = "));
    qb.push_bind(service.as_str());
    qb.push(" and account_sid = ");
    qb.push_bind(account.as_str());
    if let Some(user) = &filter.user_sid {
        qb.push(" and user_sid = ");
        qb.push_bind(user.as_str());
    }
    if !filter.identities.is_empty() {
        qb.push(" and identity in (");
        qb.push_list(filter.identities.iter().map(String::as_str));
        qb.push(")");
    }
    if !filter.types.is_empty() {
        qb.push(" and binding_type in (");
        qb.push_list(filter.types.iter().map(|t| t.as_str()));
        qb.push(")");
    }
    push_keyset(&mut qb, page);
    qb
}

/// Keep at most `new.max_per_user` bindings of the user: `kept` (the one just registered),
/// then the most recently updated.
fn cap_user_bindings(c: &rusqlite::Connection, new: &NewBinding, kept: &str) -> StoreResult<()> {
    q("delete from bindings where sid in (
           select sid from bindings
           where service_sid = ? and user_sid = ?
           order by sid = ? desc, date_updated desc, sid desc
           limit -1 offset ?)")
    .bind(new.service_sid.as_str())
    .bind(new.user_sid.as_str())
    .bind(kept)
    .bind(i64::from(new.max_per_user.max(1)))
    .execute(c)
    .map_err(lite_err)?;
    Ok(())
}

#[async_trait::async_trait]
impl BindingStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(service.sid = %new.service_sid, user.sid = %new.user_sid))]
    async fn register_binding(&self, new: &NewBinding) -> StoreResult<Registered> {
        let message_types = to_json(&new.message_types)?;
        // One inline write transaction (`BEGIN IMMEDIATE` under the write lock): the checks
        // below and the writes see one state.
        let row: BindingRow = self
            .write(|c| {
                let identity: String = q(
                    "select identity from users where account_sid = ? and service_sid = ? and sid = ?",
                )
                .bind(new.account_sid.as_str())
                .bind(new.service_sid.as_str())
                .bind(new.user_sid.as_str())
                .one(c)
                .map_err(lite_err)?;
                if identity != new.identity {
                    return Err(StoreError::InvalidReference(
                        "identity does not match user_sid",
                    ));
                }

                // 0. The common case, a device refreshing its registration with nothing new
                //    but its message types: update just those and `date_updated`, so only the
                //    row and one index change (the upsert below rewrites every index that
                //    covers a column it sets — five of them — whatever the values).
                let same: Option<BindingRow> = q(
                    "select * from bindings
                     where service_sid = ? and identity = ? and endpoint = ? and binding_type = ?",
                )
                .bind(new.service_sid.as_str())
                .bind(&new.identity)
                .bind(&new.endpoint)
                .bind(new.binding_type.as_str())
                .optional(c)
                .map_err(lite_err)?
                .filter(|b: &BindingRow| {
                    b.account_sid == new.account_sid.as_str()
                        && b.user_sid == new.user_sid.as_str()
                        && b.address == new.address
                        && b.credential_sid.as_deref()
                            == new.credential_sid.as_ref().map(|c| c.as_str())
                });
                if let Some(found) = same {
                    let row: BindingRow = q(
                        "update bindings set message_types = ?, date_updated = ? where sid = ?
                         returning *",
                    )
                    .bind(message_types.as_str())
                    .bind(new.now.unix_micros())
                    .bind(found.sid.as_str())
                    .one(c)
                    .map_err(lite_err)?;
                    // A refresh adds no binding, so it has nothing to evict (a lowered cap
                    // applies at the user's next new registration).
                    return Ok(row);
                }

                // 1. A device token belongs to one (identity, endpoint) per service.
                q("delete from bindings
                   where service_sid = ? and binding_type = ? and address = ?
                     and not (identity = ? and endpoint = ?)")
                .bind(new.service_sid.as_str())
                .bind(new.binding_type.as_str())
                .bind(&new.address)
                .bind(&new.identity)
                .bind(&new.endpoint)
                .execute(c)
                .map_err(lite_err)?;

                // 2. Insert, or refresh the binding of this (identity, endpoint, type), keeping
                //    its SID and date_created.
                let row: BindingRow = q(
                    "insert into bindings (sid, account_sid, service_sid, user_sid, identity,
                                           credential_sid, binding_type, endpoint, address,
                                           message_types, date_created, date_updated)
                     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                     on conflict (service_sid, identity, endpoint, binding_type) do update set
                         user_sid = excluded.user_sid,
                         credential_sid = excluded.credential_sid,
                         address = excluded.address,
                         message_types = excluded.message_types,
                         date_updated = excluded.date_updated
                     returning *",
                )
                .bind(new.sid.as_str())
                .bind(new.account_sid.as_str())
                .bind(new.service_sid.as_str())
                .bind(new.user_sid.as_str())
                .bind(&new.identity)
                .bind(new.credential_sid.as_ref().map(|c| c.as_str()))
                .bind(new.binding_type.as_str())
                .bind(&new.endpoint)
                .bind(&new.address)
                .bind(message_types.as_str())
                .bind(new.now.unix_micros())
                .bind(new.now.unix_micros())
                .one(c)
                .map_err(|e| lite_write_err(e, Conflict::SidTaken, "credential"))?;

                // 3. Keep at most `max_per_user` bindings.
                cap_user_bindings(c, new, &row.sid)?;
                Ok(row)
            })
            .await?;
        let created = row.sid == new.sid.as_str();
        Ok(Registered {
            binding: row.try_into()?,
            created,
        })
    }

    async fn fetch_binding(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &BindingSid,
    ) -> StoreResult<Binding> {
        let row: BindingRow = self.read_one(
            &q("select * from bindings where account_sid = ? and service_sid = ? and sid = ?")
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(sid.as_str()),
        )?;
        row.try_into()
    }

    async fn list_bindings(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        filter: &BindingFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Binding>> {
        let rows: Vec<BindingRow> =
            self.read_all(&list_query("select *", account, service, filter, page))?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, binding.sid = %sid))]
    async fn delete_binding(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &BindingSid,
    ) -> StoreResult<()> {
        self.write_some(
            q("delete from bindings where account_sid = ? and service_sid = ? and sid = ?")
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(sid.as_str()),
        )
        .await
    }

    async fn count_user_bindings(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserSid,
    ) -> StoreResult<u64> {
        let n: i64 = self.read(|c| {
            q("select count(*) from bindings
               where account_sid = ? and service_sid = ? and user_sid = ?")
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(user.as_str())
            .one(c)
            .map_err(lite_err)
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    #[tracing::instrument(skip_all, fields(cutoff = cutoff.unix_micros(), limit))]
    async fn delete_stale_bindings(&self, cutoff: Timestamp, limit: u32) -> StoreResult<u64> {
        self.write_count(
            q("delete from bindings where sid in (
                       select sid from bindings where date_updated < ? order by date_updated
                       limit ?)")
            .bind(cutoff.unix_micros())
            .bind(i64::from(limit)),
        )
        .await
    }
}
