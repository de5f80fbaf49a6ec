//! Presence shared by nodes (`presence`, migrations/0009_presence.sql). Each call is one write
//! transaction, so the "was online / is online" answers are exact against concurrent callers
//! (writes are serialised). An online edge appends `user_updated` in the same transaction.

use parley_core::store::rows::sid;
use parley_core::store::{PresenceKey, PresenceStore, StoreResult};
use parley_core::{AccountSid, ServiceSid, Timestamp};
use rusqlite::Connection;

use parley_core::event::{EventKind, Origin, Resource};
use parley_core::user::User;

use crate::event::{self, NewEvent};
use crate::lite::{lite_err, q};
use crate::rows::UserRow;
use crate::SqliteStore;

/// The user's online state changed: when the service has reachability on and the user exists,
/// append `user_updated` (the user, `changed = ["is_online"]`, no webhooks: Twilio fires none
/// for reachability) in the caller's transaction.
fn online_changed(c: &Connection, key: &PresenceKey) -> StoreResult<()> {
    let row: Option<UserRow> = q("select u.* from users u
          join services s on s.sid = u.service_sid and s.account_sid = u.account_sid
         where u.account_sid = ? and u.service_sid = ? and u.identity = ?
           and s.reachability_enabled")
    .bind(key.account.as_str())
    .bind(key.service.as_str())
    .bind(key.identity.as_str())
    .optional(c)
    .map_err(lite_err)?;
    if let Some(row) = row {
        let user: User = row.try_into()?;
        let state = Resource::User(user);
        event::append(
            c,
            &NewEvent::new(
                EventKind::UserUpdated,
                &state,
                &Origin::rest(),
                Timestamp::now(),
            )
            .changed(vec!["is_online".to_owned()]),
        )?;
    }
    Ok(())
}

/// Live rows of `key` at `now` (any node).
fn live(c: &Connection, key: &PresenceKey, now: Timestamp) -> rusqlite::Result<i64> {
    q("select count(*) from presence
        where account_sid = ? and service_sid = ? and identity = ?
          and connections > 0 and expires_at > ?")
    .bind(key.account.as_str())
    .bind(key.service.as_str())
    .bind(key.identity.as_str())
    .bind(now.unix_micros())
    .one(c)
}

#[async_trait::async_trait]
impl PresenceStore for SqliteStore {
    async fn presence_opened(
        &self,
        key: &PresenceKey,
        node: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        self.write(|c| {
            let before = live(c, key, now).map_err(lite_err)?;
            // An expired row starts afresh: its connections belonged to a node that went
            // silent (or to this node before it lost its heartbeat).
            q(
                "insert into presence (account_sid, service_sid, identity, node_id, connections,
                                     expires_at)
               values (?, ?, ?, ?, 1, ?)
               on conflict (account_sid, service_sid, identity, node_id) do update set
                   connections = case when presence.expires_at > ?
                                      then presence.connections + 1 else 1 end,
                   expires_at = max(presence.expires_at, excluded.expires_at)",
            )
            .bind(key.account.as_str())
            .bind(key.service.as_str())
            .bind(key.identity.as_str())
            .bind(node)
            .bind(expires_at.unix_micros())
            .bind(now.unix_micros())
            .execute(c)
            .map_err(lite_err)?;
            if before == 0 {
                online_changed(c, key)?;
            }
            Ok(before == 0)
        })
        .await
    }

    async fn presence_closed(
        &self,
        key: &PresenceKey,
        node: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.write(|c| {
            let before = live(c, key, now).map_err(lite_err)?;
            let changed = q("update presence set connections = connections - 1
                              where account_sid = ? and service_sid = ? and identity = ?
                                and node_id = ?")
            .bind(key.account.as_str())
            .bind(key.service.as_str())
            .bind(key.identity.as_str())
            .bind(node)
            .execute(c)
            .map_err(lite_err)?;
            if changed == 0 {
                return Ok(false);
            }
            q("delete from presence
                where account_sid = ? and service_sid = ? and identity = ? and node_id = ?
                  and connections <= 0")
            .bind(key.account.as_str())
            .bind(key.service.as_str())
            .bind(key.identity.as_str())
            .bind(node)
            .execute(c)
            .map_err(lite_err)?;
            let after = live(c, key, now).map_err(lite_err)?;
            let edge = before > 0 && after == 0;
            if edge {
                online_changed(c, key)?;
            }
            Ok(edge)
        })
        .await
    }

    async fn presence_heartbeat(&self, node: &str, expires_at: Timestamp) -> StoreResult<u64> {
        self.write_count(
            q("update presence set expires_at = ? where node_id = ?")
                .bind(expires_at.unix_micros())
                .bind(node),
        )
        .await
    }

    async fn expire_presence(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<PresenceKey>> {
        self.write(|c| {
            let gone: Vec<(String, String, String)> = q("delete from presence
                where rowid in (select rowid from presence where expires_at <= ?
                                 order by expires_at limit ?)
                returning account_sid, service_sid, identity")
            .bind(now.unix_micros())
            .bind(i64::from(limit))
            .all(c)
            .map_err(lite_err)?;
            let mut offline: Vec<PresenceKey> = Vec::new();
            for (a, s, identity) in gone {
                let key = PresenceKey {
                    account: sid(AccountSid::from_string, a)?,
                    service: sid(ServiceSid::from_string, s)?,
                    identity,
                };
                if offline.contains(&key) {
                    continue;
                }
                if live(c, &key, now).map_err(lite_err)? == 0 {
                    online_changed(c, &key)?;
                    offline.push(key);
                }
            }
            Ok(offline)
        })
        .await
    }

    async fn is_online(&self, key: &PresenceKey, now: Timestamp) -> StoreResult<bool> {
        let n = self.read(|c| live(c, key, now).map_err(lite_err))?;
        Ok(n > 0)
    }
}
