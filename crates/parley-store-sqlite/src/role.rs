//! `RoleStore`: roles of a service; permissions live in one JSON column.

use parley_core::paging::{Page, PageRequest};
use parley_core::role::{NewRole, Role};
use parley_core::store::{Conflict, RoleStore, StoreResult};
use parley_core::{AccountSid, RoleSid, ServiceSid, Timestamp};

use crate::lite::{lite_err, lite_write_err, q, Q};
use crate::rows::{convert_all, RoleRow};
use crate::{push_keyset, require_service, to_json, SqliteStore};

/// Insert one role in the caller's write transaction (shared with `create_service`, which adds
/// the default roles in its own transaction).
pub(crate) fn insert_role(c: &rusqlite::Connection, role: &NewRole) -> StoreResult<RoleRow> {
    q(
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
    .one(c)
    .map_err(|e| lite_write_err(e, Conflict::SidTaken, "service"))
}

/// `<head> from roles where … order by … limit …`.
pub(crate) fn list_query(
    head: &str,
    account: &AccountSid,
    service: &ServiceSid,
    page: &PageRequest,
) -> Q {
    let mut qb = q(format!("{head} from roles where service_sid = "));
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
        self.write(|c| {
            require_service(c, &role.account_sid, &role.service_sid)?;
            insert_role(c, role)
        })
        .await?
        .try_into()
    }

    async fn fetch_role(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        sid: &RoleSid,
    ) -> StoreResult<Role> {
        let row: RoleRow = self.read_one(
            &q("select * from roles where account_sid = ? and service_sid = ? and sid = ?")
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(sid.as_str()),
        )?;
        row.try_into()
    }

    async fn list_roles(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        page: &PageRequest,
    ) -> StoreResult<Page<Role>> {
        let rows: Vec<RoleRow> = self.read_all(&list_query("select *", account, service, page))?;
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
        let permissions = to_json(&permissions)?;
        let row: RoleRow = self
            .write_row(
                q("update roles set permissions = ?, date_updated = ?
                   where account_sid = ? and service_sid = ? and sid = ?
                   returning *")
                .bind(permissions)
                .bind(now.unix_micros())
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(sid.as_str()),
                lite_err,
            )
            .await?;
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
        self.write_some(
            q("delete from roles where account_sid = ? and service_sid = ? and sid = ?")
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(sid.as_str()),
        )
        .await
    }
}
