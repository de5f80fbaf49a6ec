//! Chat services (contract §3). Settings are one JSON text column.

use parley_core::paging::{Page, PageRequest};
use parley_core::service::{NewService, Service, ServicePatch};
use parley_core::store::{ServiceStore, StoreResult};
use parley_core::{AccountSid, ServiceSid, Timestamp};
use sqlx::{Postgres, QueryBuilder};

use crate::error::{db, one_row};
use crate::paging::push_keyset;
use crate::rows::{convert_all, to_json, Pg, ServiceRow};
use crate::PgStore;

/// Append the `list_services` query to `qb` (shared with the query-plan test).
pub(crate) fn push_list_services<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    account: &'a AccountSid,
    page: &PageRequest,
) {
    qb.push("select * from services where account_sid = ")
        .push_bind(account.as_str());
    push_keyset(qb, page);
}

#[async_trait::async_trait]
impl ServiceStore for PgStore {
    #[tracing::instrument(skip_all, fields(service.sid = %new.service.sid))]
    async fn create_service(&self, new: &NewService) -> StoreResult<Service> {
        let s = &new.service;
        let mut tx = self.pool.begin().await.map_err(db)?;
        let Pg(row): Pg<ServiceRow> = sqlx::query_as(
            "insert into services (sid, account_sid, friendly_name, default_service_role_sid,
                                   default_channel_role_sid, default_channel_creator_role_sid,
                                   settings, date_created, date_updated)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             returning *",
        )
        .bind(s.sid.as_str())
        .bind(s.account_sid.as_str())
        .bind(&s.friendly_name)
        .bind(s.default_service_role_sid.as_ref().map(|r| r.as_str()))
        .bind(s.default_channel_role_sid.as_ref().map(|r| r.as_str()))
        .bind(
            s.default_channel_creator_role_sid
                .as_ref()
                .map(|r| r.as_str()),
        )
        .bind(to_json(&s.settings)?)
        .bind(s.date_created.unix_micros())
        .bind(s.date_updated.unix_micros())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        for role in &new.roles {
            crate::role::insert_role(&mut tx, role).await?;
        }
        tx.commit().await.map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %sid))]
    async fn fetch_service(&self, account: &AccountSid, sid: &ServiceSid) -> StoreResult<Service> {
        let Pg(row): Pg<ServiceRow> =
            sqlx::query_as("select * from services where account_sid = $1 and sid = $2")
                .bind(account.as_str())
                .bind(sid.as_str())
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(account.sid = %account))]
    async fn list_services(
        &self,
        account: &AccountSid,
        page: &PageRequest,
    ) -> StoreResult<Page<Service>> {
        let mut qb = QueryBuilder::new("");
        push_list_services(&mut qb, account, page);
        let rows: Vec<Pg<ServiceRow>> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    #[tracing::instrument(skip_all, fields(service.sid = %sid))]
    async fn patch_service(
        &self,
        account: &AccountSid,
        sid: &ServiceSid,
        patch: &ServicePatch,
        now: Timestamp,
    ) -> StoreResult<Service> {
        // The row lock is held from the read to the commit: a concurrent patch waits, then
        // reads the row with this change in it.
        let mut tx = self.pool.begin().await.map_err(db)?;
        let Pg(row): Pg<ServiceRow> = sqlx::query_as(
            "select * from services where account_sid = $1 and sid = $2 for no key update",
        )
        .bind(account.as_str())
        .bind(sid.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let mut service: Service = row.try_into()?;
        patch.apply(&mut service);
        service.date_updated = now;
        let row = write_service(&mut tx, &service).await?;
        tx.commit().await.map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %sid))]
    async fn delete_service(&self, account: &AccountSid, sid: &ServiceSid) -> StoreResult<()> {
        // Roles, users and bindings go with it (on delete cascade).
        let done = sqlx::query("delete from services where account_sid = $1 and sid = $2")
            .bind(account.as_str())
            .bind(sid.as_str())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        one_row(done.rows_affected())
    }
}

/// Overwrite the stored row of `service` with every field of it.
async fn write_service(
    conn: &mut sqlx::PgConnection,
    service: &Service,
) -> StoreResult<ServiceRow> {
    sqlx::query_as(
        "update services
         set friendly_name = $3, default_service_role_sid = $4,
             default_channel_role_sid = $5, default_channel_creator_role_sid = $6,
             settings = $7, date_updated = $8
         where account_sid = $1 and sid = $2
         returning *",
    )
    .bind(service.account_sid.as_str())
    .bind(service.sid.as_str())
    .bind(&service.friendly_name)
    .bind(
        service
            .default_service_role_sid
            .as_ref()
            .map(|r| r.as_str()),
    )
    .bind(
        service
            .default_channel_role_sid
            .as_ref()
            .map(|r| r.as_str()),
    )
    .bind(
        service
            .default_channel_creator_role_sid
            .as_ref()
            .map(|r| r.as_str()),
    )
    .bind(to_json(&service.settings)?)
    .bind(service.date_updated.unix_micros())
    .fetch_one(conn)
    .await
    .map(|Pg(row)| row)
    .map_err(db)
}
