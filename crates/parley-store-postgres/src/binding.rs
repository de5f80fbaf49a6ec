//! Push bindings (contract §1–§2). Created only by SDK registration ([`register_binding`]),
//! which must be race-safe when several nodes register the same device at once.
//!
//! [`register_binding`]: BindingStore::register_binding

use std::time::Duration;

use parley_core::binding::{Binding, BindingFilter, NewBinding, Registered};
use parley_core::paging::{Page, PageRequest};
use parley_core::store::{BindingStore, StoreError, StoreResult};
use parley_core::{AccountSid, BindingSid, ServiceSid, Timestamp, UserSid};
use sqlx::{Postgres, QueryBuilder};

use crate::error::{db, is_retryable, one_row};
use crate::paging::push_keyset;
use crate::rows::{convert_all, to_json, BindingRow, Pg, RegisteredRow};
use crate::PgStore;

/// Whole-transaction attempts of one registration before giving up.
const REGISTER_ATTEMPTS: u32 = 8;

/// First key of the two-key advisory locks that serialize registrations of one device token
/// ("PRLY"; two-key locks never collide with sqlx's one-key migration lock).
const ADDRESS_LOCK_SPACE: i32 = 0x5052_4c59;

impl PgStore {
    /// One attempt at the registration transaction (see the trait doc for the three steps).
    async fn try_register(
        &self,
        new: &NewBinding,
        message_types: &str,
    ) -> Result<Option<RegisteredRow>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;

        // Registrations of one user take turns (until commit), so the per-user cap in step 3
        // sees every concurrent registration of that user. Always user first, then the address
        // lock below: one order, no deadlock. `no key update` does not block FK checks.
        sqlx::query("select 1 from users where sid = $1 for no key update")
            .bind(new.user_sid.as_str())
            .execute(&mut *tx)
            .await?;

        // Registrations of one device token take turns (until commit): otherwise two of them
        // under different endpoints both miss each other's uncommitted row in step 1 and one
        // fails on the (service, type, address) unique index. Hash collisions only serialize.
        sqlx::query("select pg_advisory_xact_lock($1, hashtext($2))")
            .bind(ADDRESS_LOCK_SPACE)
            .bind(format!(
                "{}:{}:{}",
                new.service_sid,
                new.binding_type.as_str(),
                new.address
            ))
            .execute(&mut *tx)
            .await?;

        // 1. A device token belongs to one (identity, endpoint) per service.
        sqlx::query(
            "delete from bindings
             where account_sid = $1 and service_sid = $2 and binding_type = $3 and address = $4
               and (identity <> $5 or endpoint <> $6)",
        )
        .bind(new.account_sid.as_str())
        .bind(new.service_sid.as_str())
        .bind(new.binding_type.as_str())
        .bind(&new.address)
        .bind(&new.identity)
        .bind(&new.endpoint)
        .execute(&mut *tx)
        .await?;

        // 2. Insert, or refresh the row with the same (service, identity, endpoint, type),
        //    keeping its SID. `xmax = 0` only for a freshly inserted tuple. The `where` keeps
        //    a caller of another account from touching the row (no row → NotFound).
        let row: Option<RegisteredRow> = sqlx::query_as(
            "insert into bindings (sid, account_sid, service_sid, user_sid, identity,
                                   credential_sid, binding_type, endpoint, address,
                                   message_types, date_created, date_updated)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
             on conflict (service_sid, identity, endpoint, binding_type) do update
             set user_sid = excluded.user_sid,
                 address = excluded.address,
                 credential_sid = excluded.credential_sid,
                 message_types = excluded.message_types,
                 date_updated = excluded.date_updated
             where bindings.account_sid = excluded.account_sid
             returning *, (xmax = 0) as created",
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
        .bind(message_types)
        .bind(new.now.unix_micros())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };

        // 3. Cap the user's bindings: keep this one and the most recently updated others.
        let keep = i64::from(new.max_per_user.max(1));
        sqlx::query(
            "delete from bindings where sid in (
                 select sid from bindings
                 where account_sid = $1 and service_sid = $2 and user_sid = $3
                 order by (sid = $4) desc, date_updated desc, date_created desc, sid desc
                 offset $5)",
        )
        .bind(new.account_sid.as_str())
        .bind(new.service_sid.as_str())
        .bind(new.user_sid.as_str())
        .bind(&row.binding.0.sid)
        .bind(keep)
        .execute(&mut *tx)
        .await?;

        tx.commit().await?;
        Ok(Some(row))
    }
}

/// Append the `list_bindings` query to `qb` (shared with the query-plan test). Only the filters
/// given become SQL, so each shape gets its own plan and index.
pub(crate) fn push_list_bindings<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    account: &'a AccountSid,
    service: &'a ServiceSid,
    filter: &'a BindingFilter,
    page: &PageRequest,
) {
    qb.push("select * from bindings where account_sid = ")
        .push_bind(account.as_str())
        .push(" and service_sid = ")
        .push_bind(service.as_str());
    if let Some(user) = &filter.user_sid {
        qb.push(" and user_sid = ").push_bind(user.as_str());
    }
    match filter.identities.as_slice() {
        [] => {}
        // One identity walks the (service_sid, identity, date_created, sid) index in order.
        [identity] => {
            qb.push(" and identity = ").push_bind(identity.as_str());
        }
        // Several: at most `max_per_user` rows per identity are fetched and sorted.
        identities => {
            qb.push(" and identity = any(")
                .push_bind(identities.to_vec())
                .push(")");
        }
    }
    if !filter.types.is_empty() {
        let types: Vec<&'static str> = filter.types.iter().map(|t| t.as_str()).collect();
        qb.push(" and binding_type = any(")
            .push_bind(types)
            .push(")");
    }
    push_keyset(qb, page);
}

#[async_trait::async_trait]
impl BindingStore for PgStore {
    #[tracing::instrument(skip_all, fields(service.sid = %new.service_sid, user.sid = %new.user_sid))]
    async fn register_binding(&self, new: &NewBinding) -> StoreResult<Registered> {
        let message_types = to_json(&new.message_types)?;
        let mut attempt = 1;
        loop {
            match self.try_register(new, &message_types).await {
                Ok(Some(row)) => {
                    return Ok(Registered {
                        created: row.created,
                        binding: row.binding.0.try_into()?,
                    })
                }
                Ok(None) => return Err(StoreError::NotFound),
                // A concurrent registration won a unique index (e.g. the same device token
                // under another endpoint), or a deadlock: the next attempt sees its row.
                Err(e) if attempt < REGISTER_ATTEMPTS && is_retryable(&e) => {
                    tracing::debug!(attempt, error = %e, "retrying binding registration");
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 2)).await;
                    attempt += 1;
                }
                Err(e) if is_retryable(&e) => {
                    return Err(StoreError::Other(anyhow::anyhow!(
                        "binding registration still racing after {attempt} attempts: {e}"
                    )))
                }
                Err(e) => return Err(db(e)),
            }
        }
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, binding.sid = %sid))]
    async fn fetch_binding(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &BindingSid,
    ) -> StoreResult<Binding> {
        let Pg(row): Pg<BindingRow> = sqlx::query_as(
            "select * from bindings where account_sid = $1 and service_sid = $2 and sid = $3",
        )
        .bind(account.as_str())
        .bind(service.as_str())
        .bind(sid.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn list_bindings(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        filter: &BindingFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Binding>> {
        let mut qb = QueryBuilder::new("");
        push_list_bindings(&mut qb, account, service, filter, page);
        let rows: Vec<Pg<BindingRow>> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, binding.sid = %sid))]
    async fn delete_binding(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &BindingSid,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "delete from bindings where account_sid = $1 and service_sid = $2 and sid = $3",
        )
        .bind(account.as_str())
        .bind(service.as_str())
        .bind(sid.as_str())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        one_row(done.rows_affected())
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, user.sid = %user))]
    async fn count_user_bindings(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        user: &UserSid,
    ) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from bindings
             where account_sid = $1 and service_sid = $2 and user_sid = $3",
        )
        .bind(account.as_str())
        .bind(service.as_str())
        .bind(user.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_stale_bindings(&self, cutoff: Timestamp, limit: u32) -> StoreResult<u64> {
        // `skip locked`: sweepers on several nodes take disjoint rows instead of queueing.
        let done = sqlx::query(
            "delete from bindings where sid in (
                 select sid from bindings
                 where date_updated < $1
                 order by date_updated
                 limit $2
                 for update skip locked)",
        )
        .bind(cutoff.unix_micros())
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected())
    }
}
