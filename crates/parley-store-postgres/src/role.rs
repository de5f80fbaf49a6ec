//! Roles (contract §11). Permissions are a JSON array in text, order kept.

use parley_core::paging::{Page, PageRequest};
use parley_core::role::{NewRole, Role};
use parley_core::store::{RoleStore, StoreResult};
use parley_core::{AccountSid, RoleSid, ServiceSid, Timestamp};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::error::{db, one_row};
use crate::paging::push_keyset;
use crate::rows::{convert_all, to_json, Pg, RoleRow};
use crate::PgStore;

/// Insert one role; shared with `create_service`, which adds the default roles in its
/// transaction. A missing service (in this account) is `NotFound`.
pub(crate) async fn insert_role(conn: &mut PgConnection, role: &NewRole) -> StoreResult<Role> {
    let Pg(row): Pg<RoleRow> = sqlx::query_as(
        "insert into roles (sid, account_sid, service_sid, friendly_name, role_type, permissions,
                            date_created, date_updated)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
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
    .map_err(db)?;
    row.try_into()
}

/// Append the `list_roles` query to `qb` (shared with the query-plan test).
pub(crate) fn push_list_roles<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    account: &'a AccountSid,
    service: &'a ServiceSid,
    page: &PageRequest,
) {
    qb.push("select * from roles where account_sid = ")
        .push_bind(account.as_str())
        .push(" and service_sid = ")
        .push_bind(service.as_str());
    push_keyset(qb, page);
}

#[async_trait::async_trait]
impl RoleStore for PgStore {
    #[tracing::instrument(skip_all, fields(service.sid = %role.service_sid, role.sid = %role.sid))]
    async fn create_role(&self, role: &NewRole) -> StoreResult<Role> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        insert_role(&mut conn, role).await
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, role.sid = %sid))]
    async fn fetch_role(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &RoleSid,
    ) -> StoreResult<Role> {
        let Pg(row): Pg<RoleRow> = sqlx::query_as(
            "select * from roles where account_sid = $1 and service_sid = $2 and sid = $3",
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
    async fn list_roles(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        page: &PageRequest,
    ) -> StoreResult<Page<Role>> {
        let mut qb = QueryBuilder::new("");
        push_list_roles(&mut qb, account, service, page);
        let rows: Vec<Pg<RoleRow>> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
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
        let Pg(row): Pg<RoleRow> = sqlx::query_as(
            "update roles set permissions = $4, date_updated = $5
             where account_sid = $1 and service_sid = $2 and sid = $3
             returning *",
        )
        .bind(account.as_str())
        .bind(service.as_str())
        .bind(sid.as_str())
        .bind(to_json(permissions)?)
        .bind(now.unix_micros())
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, role.sid = %sid))]
    async fn delete_role(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &RoleSid,
    ) -> StoreResult<()> {
        // users.role_sid of its holders becomes null (on delete set null).
        let done = sqlx::query(
            "delete from roles where account_sid = $1 and service_sid = $2 and sid = $3",
        )
        .bind(account.as_str())
        .bind(service.as_str())
        .bind(sid.as_str())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        one_row(done.rows_affected())
    }
}
