//! `RoleStore`: roles of a service; permissions live in one JSON column.

use parley_core::paging::{Page, PageRequest};
use parley_core::role::{NewRole, Role};
use parley_core::store::{Conflict, RoleStore, StoreResult};
use parley_core::{AccountSid, RoleSid, ServiceSid, Timestamp};
use sqlx::{QueryBuilder, Sqlite};

use crate::rows::{convert_all, RoleRow};
use crate::{
    begin_write, db_err, one_row, push_keyset, require_service, to_json, write_err, SqliteStore,
};

/// Insert one role on `conn` (shared with `create_service`, which adds the default roles in its
/// own transaction).
pub(crate) async fn insert_role(
    conn: &mut sqlx::SqliteConnection,
    role: &NewRole,
) -> StoreResult<Role> {
    let row: RoleRow = sqlx::query_as(
        "insert into roles (sid, account_sid, service_sid, friendly_name, role_type, permissions,
                            date_created, date_updated)
         values (?, ?, ?, ?, ?, ?, ?, ?)
         returning *",
    )
    .bind(role.sid.as_str())
    .bind(role.account_sid.as_str())
    .bind(role.service_sid.as_str())
    .bind(&role.friendly_name)
    .bind(role.role_type.as_str())
    .bind(to_json(&role.permissions)?)
    .bind(role.date_created.unix_micros())
    .bind(role.date_updated.unix_micros())
    .fetch_one(conn)
    .await
    .map_err(|e| write_err(e, Conflict::SidTaken, "service"))?;
    row.try_into()
}

/// `<head> from roles where … order by … limit …`.
pub(crate) fn list_query<'a>(
    head: &str,
    account: &'a AccountSid,
    service: &'a ServiceSid,
    page: &PageRequest,
) -> QueryBuilder<'a, Sqlite> {
    let mut qb = QueryBuilder::new(format!("{head} from roles where service_sid = "));
    qb.push_bind(service.as_str());
    qb.push(" and account_sid = ");
    qb.push_bind(account.as_str());
    push_keyset(&mut qb, page);
    qb
}

#[async_trait::async_trait]
impl RoleStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(service.sid = %role.service_sid, role.sid = %role.sid))]
    async fn create_role(&self, role: &NewRole) -> StoreResult<Role> {
        let mut w = self.w().await?;
        let mut tx = begin_write(&mut w).await?;
        require_service(&mut tx, &role.account_sid, &role.service_sid).await?;
        let created = insert_role(&mut tx, role).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    async fn fetch_role(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &RoleSid,
    ) -> StoreResult<Role> {
        let row: RoleRow = sqlx::query_as(
            "select * from roles where account_sid = ? and service_sid = ? and sid = ?",
        )
        .bind(account.as_str())
        .bind(service.as_str())
        .bind(sid.as_str())
        .fetch_one(&self.reader)
        .await
        .map_err(db_err)?;
        row.try_into()
    }

    async fn list_roles(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        page: &PageRequest,
    ) -> StoreResult<Page<Role>> {
        let rows: Vec<RoleRow> = list_query("select *", account, service, page)
            .build_query_as()
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, role.sid = %sid))]
    async fn update_role_permissions(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &RoleSid,
        permissions: &[String],
        now: Timestamp,
    ) -> StoreResult<Role> {
        let row: RoleRow = sqlx::query_as(
            "update roles set permissions = ?, date_updated = ?
             where account_sid = ? and service_sid = ? and sid = ?
             returning *",
        )
        .bind(to_json(&permissions)?)
        .bind(now.unix_micros())
        .bind(account.as_str())
        .bind(service.as_str())
        .bind(sid.as_str())
        .fetch_one(&mut *self.w().await?)
        .await
        .map_err(db_err)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, role.sid = %sid))]
    async fn delete_role(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &RoleSid,
    ) -> StoreResult<()> {
        // Users holding the role get `role_sid = null` (`on delete set null`).
        let done =
            sqlx::query("delete from roles where account_sid = ? and service_sid = ? and sid = ?")
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(sid.as_str())
                .execute(&mut *self.w().await?)
                .await
                .map_err(db_err)?;
        one_row(done.rows_affected())
    }
}
