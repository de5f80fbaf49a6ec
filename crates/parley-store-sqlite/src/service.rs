//! `ServiceStore`: Chat services; settings live in one JSON column.

use parley_core::paging::{Page, PageRequest};
use parley_core::service::{NewService, Service, ServicePatch};
use parley_core::store::{Conflict, ServiceStore, StoreResult};
use parley_core::{AccountSid, ServiceSid, Timestamp};

use crate::lite::{lite_err, lite_write_err, q, Q};
use crate::role::insert_role;
use crate::rows::{convert_all, ServiceRow};
use crate::{push_keyset, to_json, SqliteStore};

/// `<head> from services where … order by … limit …` (`head` is `select *`, or
/// `explain query plan select *` in the plan tests).
pub(crate) fn list_query(head: &str, account: &AccountSid, page: &PageRequest) -> Q {
    let mut qb = q(format!("{head} from services where account_sid = "));
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
        let row: ServiceRow = self
            .write(|c| {
                let row: ServiceRow = q(
                    "insert into services (sid, account_sid, friendly_name, default_service_role_sid,
                                           default_channel_role_sid, default_channel_creator_role_sid,
                                           settings, reachability_enabled, date_created,
                                           date_updated)
                     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
                .bind(s.settings.reachability_enabled)
                .bind(s.date_created.unix_micros())
                .bind(s.date_updated.unix_micros())
                .one(c)
                .map_err(|e| lite_write_err(e, Conflict::SidTaken, "account"))?;
                for role in &new.roles {
                    insert_role(c, role)?;
                }
                Ok(row)
            })
            .await?;
        row.try_into()
    }

    async fn fetch_service(&self, account: &AccountSid, sid: &ServiceSid) -> StoreResult<Service> {
        let row: ServiceRow = self.read_one(
            &q("select * from services where account_sid = ? and sid = ?")
                .bind(account.as_str())
                .bind(sid.as_str()),
        )?;
        row.try_into()
    }

    async fn list_services(
        &self,
        account: &AccountSid,
        page: &PageRequest,
    ) -> StoreResult<Page<Service>> {
        let rows: Vec<ServiceRow> = self.read_all(&list_query("select *", account, page))?;
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
        // Read, change and write inside one write transaction: SQLite has one writer, so no
        // other change to the row can come between the read and the write.
        let row: ServiceRow = self
            .write(|c| {
                let row: ServiceRow = q("select * from services where account_sid = ? and sid = ?")
                    .bind(account.as_str())
                    .bind(sid.as_str())
                    .one(c)
                    .map_err(lite_err)?;
                let mut service: Service = row.try_into()?;
                patch.apply(&mut service);
                service.date_updated = now;
                write_service(c, &service, &to_json(&service.settings)?)
            })
            .await?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %sid))]
    async fn delete_service(&self, account: &AccountSid, sid: &ServiceSid) -> StoreResult<()> {
        // Roles, users and bindings go with it (`on delete cascade`).
        self.write_some(
            q("delete from services where account_sid = ? and sid = ?")
                .bind(account.as_str())
                .bind(sid.as_str()),
        )
        .await
    }
}

/// Overwrite the stored row of `service` with every field of it (`settings` as JSON, and its
/// `reachability_enabled` in the column of its own as well).
fn write_service(
    c: &rusqlite::Connection,
    service: &Service,
    settings: &str,
) -> StoreResult<ServiceRow> {
    q(
        "update services set friendly_name = ?, default_service_role_sid = ?,
              default_channel_role_sid = ?, default_channel_creator_role_sid = ?,
              settings = ?, reachability_enabled = ?, date_updated = ?
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
    .bind(settings)
    .bind(service.settings.reachability_enabled)
    .bind(service.date_updated.unix_micros())
    .bind(service.account_sid.as_str())
    .bind(service.sid.as_str())
    .one(c)
    .map_err(lite_err)
}
