//! `ServiceStore`: Chat services; settings live in one JSON column.

use parley_core::paging::{Page, PageRequest};
use parley_core::service::{NewService, Service, ServicePatch};
use parley_core::store::{Conflict, ServiceStore, StoreResult};
use parley_core::{AccountSid, ServiceSid, Timestamp};
use sqlx::{QueryBuilder, Sqlite};

use crate::lite::{lite_err, q};
use crate::role::insert_role;
use crate::rows::{convert_all, ServiceRow};
use crate::{begin_write, db_err, one_row, push_keyset, to_json, write_err, SqliteStore};

/// `<head> from services where … order by … limit …` (`head` is `select *`, or
/// `explain query plan select *` in the plan tests).
pub(crate) fn list_query<'a>(
    head: &str,
    account: &'a AccountSid,
    page: &PageRequest,
) -> QueryBuilder<'a, Sqlite> {
    let mut qb = QueryBuilder::new(format!("{head} from services where account_sid = "));
    qb.push_bind(account.as_str());
    push_keyset(&mut qb, page);
    qb
}

#[async_trait::async_trait]
impl ServiceStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(service.sid = %new.service.sid))]
    async fn create_service(&self, new: &NewService) -> StoreResult<Service> {
        let s = &new.service;
        let settings = to_json(&s.settings)?;
        let mut w = self.w().await?;
        let mut tx = begin_write(&mut w).await?;
        let row: ServiceRow = sqlx::query_as(
            "insert into services (sid, account_sid, friendly_name, default_service_role_sid,
                                   default_channel_role_sid, default_channel_creator_role_sid,
                                   settings, date_created, date_updated)
             values (?, ?, ?, ?, ?, ?, ?, ?, ?)
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
        .bind(settings)
        .bind(s.date_created.unix_micros())
        .bind(s.date_updated.unix_micros())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| write_err(e, Conflict::SidTaken, "account"))?;
        for role in &new.roles {
            insert_role(&mut tx, role).await?;
        }
        tx.commit().await.map_err(db_err)?;
        row.try_into()
    }

    async fn fetch_service(&self, account: &AccountSid, sid: &ServiceSid) -> StoreResult<Service> {
        let row: ServiceRow = self.read(|c| {
            q("select * from services where account_sid = ? and sid = ?")
                .bind(account.as_str())
                .bind(sid.as_str())
                .one(c)
                .map_err(lite_err)
        })?;
        row.try_into()
    }

    async fn list_services(
        &self,
        account: &AccountSid,
        page: &PageRequest,
    ) -> StoreResult<Page<Service>> {
        let rows: Vec<ServiceRow> = list_query("select *", account, page)
            .build_query_as()
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service.sid))]
    async fn update_service(&self, service: &Service) -> StoreResult<Service> {
        let mut w = self.w().await?;
        write_service(&mut w, service).await?.try_into()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %sid))]
    async fn patch_service(
        &self,
        account: &AccountSid,
        sid: &ServiceSid,
        patch: &ServicePatch,
        now: Timestamp,
    ) -> StoreResult<Service> {
        // Read, change and write inside one write transaction: SQLite has one writer, so no
        // other change to the row can come between the read and the write.
        let mut w = self.w().await?;
        let mut tx = begin_write(&mut w).await?;
        let row: ServiceRow =
            sqlx::query_as("select * from services where account_sid = ? and sid = ?")
                .bind(account.as_str())
                .bind(sid.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        let mut service: Service = row.try_into()?;
        patch.apply(&mut service);
        service.date_updated = now;
        let row = write_service(&mut tx, &service).await?;
        tx.commit().await.map_err(db_err)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %sid))]
    async fn delete_service(&self, account: &AccountSid, sid: &ServiceSid) -> StoreResult<()> {
        // Roles, users and bindings go with it (`on delete cascade`).
        let done = sqlx::query("delete from services where account_sid = ? and sid = ?")
            .bind(account.as_str())
            .bind(sid.as_str())
            .execute(&mut *self.w().await?)
            .await
            .map_err(db_err)?;
        one_row(done.rows_affected())
    }
}

/// Overwrite the stored row of `service` with every field of it.
async fn write_service(
    conn: &mut sqlx::SqliteConnection,
    service: &Service,
) -> StoreResult<ServiceRow> {
    sqlx::query_as(
        "update services set friendly_name = ?, default_service_role_sid = ?,
                default_channel_role_sid = ?, default_channel_creator_role_sid = ?,
                settings = ?, date_updated = ?
         where account_sid = ? and sid = ?
         returning *",
    )
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
    .bind(service.account_sid.as_str())
    .bind(service.sid.as_str())
    .fetch_one(conn)
    .await
    .map_err(db_err)
}
