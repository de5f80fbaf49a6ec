//! `InviteStore`: pending invitations to a channel. An invite records the invitee's user SID
//! too (for the user-channel view and the cascade from users); joining deletes it
//! (`member.rs`).

use parley_core::channel::{ChannelRef, Invite};
use parley_core::event::EventKind;
use parley_core::paging::{Page, PageRequest};
use parley_core::store::{Conflict, InviteStore, StoreError, StoreResult};
use parley_core::{AccountSid, InviteSid, ServiceSid, Timestamp};
use sqlx::{QueryBuilder, Sqlite};

use crate::channel::{channel_key, in_channel, resolve_channel};
use crate::event::{self, NewEvent};
use crate::rows::{convert_all, InviteRow};
use crate::{begin_write, db_err, one_row, push_keyset, write_err, SqliteStore};

/// `<head> from invites where channel_sid = ? [and identity in (…)] order by … limit …`.
pub(crate) fn list_query<'a>(
    head: &str,
    channel_sid: &'a str,
    identities: &'a [String],
    page: &PageRequest,
) -> QueryBuilder<'a, Sqlite> {
    let mut qb = QueryBuilder::new(format!("{head} from invites where channel_sid = "));
    qb.push_bind(channel_sid);
    if !identities.is_empty() {
        qb.push(" and identity in (");
        let mut list = qb.separated(", ");
        for identity in identities {
            list.push_bind(identity.as_str());
        }
        qb.push(")");
    }
    push_keyset(&mut qb, page);
    qb
}

#[async_trait::async_trait]
impl InviteStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(service.sid = %invite.service_sid, invite.sid = %invite.sid))]
    async fn create_invite(&self, channel: &ChannelRef, invite: &Invite) -> StoreResult<Invite> {
        let mut w = self.w().await?;
        let mut tx = begin_write(&mut w).await?;
        let chan =
            resolve_channel(&mut *tx, &invite.account_sid, &invite.service_sid, channel).await?;
        let user_sid: String = sqlx::query_scalar(
            "select sid from users where account_sid = ? and service_sid = ? and identity = ?",
        )
        .bind(invite.account_sid.as_str())
        .bind(invite.service_sid.as_str())
        .bind(&invite.identity)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let member: Option<i64> =
            sqlx::query_scalar("select 1 from members where channel_sid = ? and identity = ?")
                .bind(&chan.sid)
                .bind(&invite.identity)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if member.is_some() {
            return Err(StoreError::Conflict(Conflict::MemberExists));
        }
        let row: InviteRow = sqlx::query_as(
            "insert into invites (sid, account_sid, service_sid, channel_sid, user_sid, identity,
                                  role_sid, created_by, date_created, date_updated)
             values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             returning *",
        )
        .bind(invite.sid.as_str())
        .bind(&chan.account_sid)
        .bind(&chan.service_sid)
        .bind(&chan.sid)
        .bind(&user_sid)
        .bind(&invite.identity)
        .bind(invite.role_sid.as_ref().map(|r| r.as_str()))
        .bind(invite.created_by.as_deref())
        .bind(invite.date_created.unix_micros())
        .bind(invite.date_updated.unix_micros())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| write_err(e, Conflict::InviteExists, "role"))?;
        event::append(
            &mut tx,
            &NewEvent {
                invite_sid: Some(invite.sid.as_str()),
                identity: Some(invite.identity.as_str()),
                actor: invite.created_by.as_deref(),
                ..NewEvent::new(EventKind::InvitedToChannel, &chan, Timestamp::now())
            },
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        row.try_into()
    }

    async fn fetch_invite(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &InviteSid,
    ) -> StoreResult<Invite> {
        let (_, value) = channel_key(channel);
        let sql = format!(
            "select * from invites where sid = ? and {}",
            in_channel(channel)
        );
        let row: InviteRow = sqlx::query_as(&sql)
            .bind(sid.as_str())
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(value)
            .fetch_one(&self.reader)
            .await
            .map_err(db_err)?;
        row.try_into()
    }

    async fn list_invites(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        identities: &[String],
        page: &PageRequest,
    ) -> StoreResult<Page<Invite>> {
        let chan = resolve_channel(&self.reader, account, service, channel).await?;
        let rows: Vec<InviteRow> = list_query("select *", &chan.sid, identities, page)
            .build_query_as()
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service, invite.sid = %sid))]
    async fn delete_invite(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        channel: &ChannelRef,
        sid: &InviteSid,
    ) -> StoreResult<()> {
        let (_, value) = channel_key(channel);
        let sql = format!(
            "delete from invites where sid = ? and {}",
            in_channel(channel)
        );
        let done = sqlx::query(&sql)
            .bind(sid.as_str())
            .bind(account.as_str())
            .bind(service.as_str())
            .bind(value)
            .execute(&mut *self.w().await?)
            .await
            .map_err(db_err)?;
        one_row(done.rows_affected())
    }
}
