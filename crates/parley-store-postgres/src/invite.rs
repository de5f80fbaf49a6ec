//! Invites (contract §10). Creating one takes the channel's row lock, like joining does, so an
//! identity is never both invited to and a member of a channel.

use parley_core::channel::{ChannelRef, Invite};
use parley_core::event::{EventKind, Origin, Resource};
use parley_core::paging::{Page, PageRequest};
use parley_core::store::{Conflict, InviteStore, StoreError, StoreResult};
use parley_core::{AccountSid, InviteSid, ServiceSid, Timestamp};
use sqlx::{Postgres, QueryBuilder};

use crate::channel::{channel_sid_sql, lock_channel, not_found_unless_channel, push_channel_sid};
use crate::error::db;
use crate::event::{append, NewEvent};
use crate::paging::push_keyset;
use crate::rows::{channel_key, convert_all, InviteRow, Pg};
use crate::PgStore;

/// Append the `list_invites` query to `qb` (shared with the query-plan test).
pub(crate) fn push_list_invites<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    account: &'a AccountSid,
    service: &'a ServiceSid,
    channel: &'a ChannelRef,
    identities: &'a [String],
    page: &PageRequest,
) {
    qb.push("select * from invites where channel_sid = ");
    push_channel_sid(qb, account, service, channel);
    match identities {
        [] => {}
        [one] => {
            qb.push(" and identity = ").push_bind(one.as_str());
        }
        many => {
            qb.push(" and identity = any(").push_bind(many).push(")");
        }
    }
    push_keyset(qb, page);
}

#[async_trait::async_trait]
impl InviteStore for PgStore {
    #[tracing::instrument(skip_all, fields(service.sid = %invite.service_sid, invite.sid = %invite.sid))]
    async fn create_invite(
        &self,
        channel: &ChannelRef,
        invite: &Invite,
        origin: &Origin,
    ) -> StoreResult<Invite> {
        let account = invite.account_sid.as_str();
        let service = invite.service_sid.as_str();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let ch = lock_channel(&mut tx, account, service, channel).await?;
        let member: bool = sqlx::query_scalar(
            "select exists (select 1 from members where channel_sid = $1 and identity = $2)",
        )
        .bind(ch.sid.as_str())
        .bind(&invite.identity)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        if member {
            return Err(StoreError::Conflict(Conflict::MemberExists));
        }
        // The invitee is a user of the service (the caller creates it first).
        let user_sid: String = sqlx::query_scalar(
            "select sid from users where account_sid = $1 and service_sid = $2 and identity = $3",
        )
        .bind(account)
        .bind(service)
        .bind(&invite.identity)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let Pg(row): Pg<InviteRow> = sqlx::query_as(
            "insert into invites (sid, account_sid, service_sid, channel_sid, user_sid, identity,
                                  role_sid, created_by, date_created, date_updated)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             returning *",
        )
        .bind(invite.sid.as_str())
        .bind(account)
        .bind(service)
        .bind(ch.sid.as_str())
        .bind(&user_sid)
        .bind(&invite.identity)
        .bind(invite.role_sid.as_ref().map(|r| r.as_str()))
        .bind(invite.created_by.as_deref())
        .bind(invite.date_created.unix_micros())
        .bind(invite.date_updated.unix_micros())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let invited: Invite = row.try_into()?;
        let state = Resource::Invite(invited.clone());
        append(
            &mut tx,
            &NewEvent::new(
                EventKind::InvitedToChannel,
                &state,
                origin,
                Timestamp::now(),
            )
            .in_channel(&ch),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(invited)
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, invite.sid = %sid))]
    async fn fetch_invite(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &InviteSid,
    ) -> StoreResult<Invite> {
        let sql = format!(
            "select * from invites where sid = $4 and channel_sid = {}",
            channel_sid_sql(channel)
        );
        let Pg(row): Pg<InviteRow> = sqlx::query_as(&sql)
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(channel_key(channel).1)
            .bind(sid.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        row.try_into()
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn list_invites(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        identities: &[String],
        page: &PageRequest,
    ) -> StoreResult<Page<Invite>> {
        let mut qb = QueryBuilder::new("");
        push_list_invites(&mut qb, account, service, channel, identities, page);
        let rows: Vec<Pg<InviteRow>> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let page = Page::from_fetched(convert_all(rows)?, page);
        not_found_unless_channel(self, account, service, channel, page).await
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, invite.sid = %sid))]
    async fn delete_invite(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &InviteSid,
        origin: &Origin,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let ch = lock_channel(&mut tx, account.as_str(), service.as_str(), channel).await?;
        let Pg(row): Pg<InviteRow> =
            sqlx::query_as("delete from invites where sid = $1 and channel_sid = $2 returning *")
                .bind(sid.as_str())
                .bind(ch.sid.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        let state = Resource::Invite(row.try_into()?);
        append(
            &mut tx,
            &NewEvent::new(EventKind::InviteRemoved, &state, origin, Timestamp::now())
                .in_channel(&ch),
        )
        .await?;
        tx.commit().await.map_err(db)
    }
}
