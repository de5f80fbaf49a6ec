//! `InviteStore`: pending invitations to a channel. An invite records the invitee's user SID
//! too (for the user-channel view and the cascade from users); joining deletes it
//! (`member.rs`).

use parley_core::channel::{ChannelRef, Invite};
use parley_core::event::{EventKind, Origin, Resource};
use parley_core::paging::{Page, PageRequest};
use parley_core::store::{Conflict, InviteStore, StoreError, StoreResult};
use parley_core::{AccountSid, InviteSid, ServiceSid, Timestamp};

use crate::channel::{in_channel, resolve_channel};
use crate::event::{self, NewEvent};
use crate::lite::{lite_err, lite_write_err, q, Q};
use crate::rows::{channel_key, convert_all, InviteRow};
use crate::{push_keyset, SqliteStore};

/// `<head> from invites where channel_sid = ? [and identity in (…)] order by … limit …`.
pub(crate) fn list_query(
    head: &str,
    channel_sid: &str,
    identities: &[String],
    page: &PageRequest,
) -> Q {
    let mut qb = q(format!("{head} from invites where channel_sid = "));
    qb.push_bind(channel_sid);
    if !identities.is_empty() {
        qb.push(" and identity in (");
        qb.push_list(identities.iter().map(String::as_str));
        qb.push(")");
    }
    push_keyset(&mut qb, page);
    qb
}

#[async_trait::async_trait]
impl InviteStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(service.sid = %invite.service_sid, invite.sid = %invite.sid))]
    async fn create_invite(
        &self,
        channel: &ChannelRef,
        invite: &Invite,
        origin: &Origin,
    ) -> StoreResult<Invite> {
        self.write(|c| {
            let chan = resolve_channel(c, &invite.account_sid, &invite.service_sid, channel)?;
            let user_sid: String = q(
                "select sid from users where account_sid = ? and service_sid = ? and identity = ?",
            )
            .bind(invite.account_sid.as_str())
            .bind(invite.service_sid.as_str())
            .bind(&invite.identity)
            .one(c)
            .map_err(lite_err)?;
            let member: Option<i64> =
                q("select 1 from members where channel_sid = ? and identity = ?")
                    .bind(&chan.sid)
                    .bind(&invite.identity)
                    .optional(c)
                    .map_err(lite_err)?;
            if member.is_some() {
                return Err(StoreError::Conflict(Conflict::MemberExists));
            }
            let row: InviteRow = q(
                "insert into invites (sid, account_sid, service_sid, channel_sid, user_sid,
                                          identity, role_sid, created_by, date_created,
                                          date_updated)
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
            .one(c)
            .map_err(|e| lite_write_err(e, Conflict::InviteExists, "role"))?;
            let invited: Invite = row.try_into()?;
            let state = Resource::Invite(invited.clone());
            event::append(
                c,
                &NewEvent::new(
                    EventKind::InvitedToChannel,
                    &state,
                    origin,
                    Timestamp::now(),
                )
                .in_channel(&chan),
            )?;
            Ok(invited)
        })
        .await
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
        let row: InviteRow = self.read_one(
            &q(sql)
                .bind(sid.as_str())
                .bind(account.as_str())
                .bind(service.as_str())
                .bind(value),
        )?;
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
        let rows: Vec<InviteRow> = self.read(|c| {
            let chan = resolve_channel(c, account, service, channel)?;
            list_query("select *", &chan.sid, identities, page)
                .all(c)
                .map_err(lite_err)
        })?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
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
        self.write(|c| {
            let chan = resolve_channel(c, account, service, channel)?;
            let row: InviteRow =
                q("delete from invites where sid = ? and channel_sid = ? returning *")
                    .bind(sid.as_str())
                    .bind(&chan.sid)
                    .one(c)
                    .map_err(lite_err)?;
            let state = Resource::Invite(row.try_into()?);
            event::append(
                c,
                &NewEvent::new(EventKind::InviteRemoved, &state, origin, Timestamp::now())
                    .in_channel(&chan),
            )
        })
        .await
    }
}
