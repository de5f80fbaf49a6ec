//! Presence shared by nodes (`presence`, migrations/0009_presence.sql). Open and close run in
//! one transaction holding a transaction-scoped advisory lock on the user, so two nodes that
//! open (or close) alice's connections at once cannot both see the same "before" and report the
//! online (offline) edge twice. The sweep takes the same lock per user.

use parley_core::store::rows::sid;
use parley_core::store::{PresenceKey, PresenceStore, StoreResult};
use parley_core::{AccountSid, ServiceSid, Timestamp};
use sqlx::PgConnection;

use parley_core::event::{EventKind, Origin, Resource};
use parley_core::user::User;

use crate::error::db;
use crate::event::{append, NewEvent};
use crate::rows::{Pg, UserRow};
use crate::PgStore;

/// The user's online state changed: when the service has reachability on and the user exists,
/// append `user_updated` (the user, `changed = ["is_online"]`, no webhooks: Twilio fires none
/// for reachability) in the caller's transaction.
async fn online_changed(c: &mut PgConnection, key: &PresenceKey) -> StoreResult<()> {
    let row: Option<Pg<UserRow>> = sqlx::query_as(
        "select u.* from users u
           join services s on s.sid = u.service_sid and s.account_sid = u.account_sid
          where u.account_sid = $1 and u.service_sid = $2 and u.identity = $3
            and (s.settings::jsonb ->> 'reachability_enabled')::boolean",
    )
    .bind(key.account.as_str())
    .bind(key.service.as_str())
    .bind(key.identity.as_str())
    .fetch_optional(&mut *c)
    .await
    .map_err(db)?;
    if let Some(Pg(row)) = row {
        let user: User = row.try_into()?;
        let state = Resource::User(user);
        append(
            c,
            &NewEvent::new(
                EventKind::UserUpdated,
                &state,
                &Origin::rest(),
                Timestamp::now(),
            )
            .changed(vec!["is_online".to_owned()]),
        )
        .await?;
    }
    Ok(())
}

/// Serialise presence changes of one user until the transaction ends.
async fn lock_user(c: &mut PgConnection, key: &PresenceKey) -> StoreResult<()> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1 || '/' || $2 || '/' || $3, 11))")
        .bind(key.account.as_str())
        .bind(key.service.as_str())
        .bind(key.identity.as_str())
        .execute(&mut *c)
        .await
        .map_err(db)?;
    Ok(())
}

/// Live rows of `key` at `now` (any node).
async fn live(c: &mut PgConnection, key: &PresenceKey, now: Timestamp) -> StoreResult<i64> {
    sqlx::query_scalar(
        "select count(*) from presence
          where account_sid = $1 and service_sid = $2 and identity = $3
            and connections > 0 and expires_at > $4",
    )
    .bind(key.account.as_str())
    .bind(key.service.as_str())
    .bind(key.identity.as_str())
    .bind(now.unix_micros())
    .fetch_one(&mut *c)
    .await
    .map_err(db)
}

#[async_trait::async_trait]
impl PresenceStore for PgStore {
    async fn presence_opened(
        &self,
        key: &PresenceKey,
        node: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        lock_user(&mut tx, key).await?;
        let before = live(&mut tx, key, now).await?;
        // An expired row starts afresh (its connections belonged to a silent node).
        sqlx::query(
            "insert into presence (account_sid, service_sid, identity, node_id, connections,
                                   expires_at)
             values ($1, $2, $3, $4, 1, $5)
             on conflict (account_sid, service_sid, identity, node_id) do update set
                 connections = case when presence.expires_at > $6
                                    then presence.connections + 1 else 1 end,
                 expires_at = greatest(presence.expires_at, excluded.expires_at)",
        )
        .bind(key.account.as_str())
        .bind(key.service.as_str())
        .bind(key.identity.as_str())
        .bind(node)
        .bind(expires_at.unix_micros())
        .bind(now.unix_micros())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if before == 0 {
            online_changed(&mut tx, key).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(before == 0)
    }

    async fn presence_closed(
        &self,
        key: &PresenceKey,
        node: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        lock_user(&mut tx, key).await?;
        let before = live(&mut tx, key, now).await?;
        let changed = sqlx::query(
            "update presence set connections = connections - 1
              where account_sid = $1 and service_sid = $2 and identity = $3 and node_id = $4",
        )
        .bind(key.account.as_str())
        .bind(key.service.as_str())
        .bind(key.identity.as_str())
        .bind(node)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        sqlx::query(
            "delete from presence
              where account_sid = $1 and service_sid = $2 and identity = $3 and node_id = $4
                and connections <= 0",
        )
        .bind(key.account.as_str())
        .bind(key.service.as_str())
        .bind(key.identity.as_str())
        .bind(node)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let after = live(&mut tx, key, now).await?;
        let edge = before > 0 && after == 0;
        if edge {
            online_changed(&mut tx, key).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(edge)
    }

    async fn presence_heartbeat(&self, node: &str, expires_at: Timestamp) -> StoreResult<u64> {
        let done = sqlx::query("update presence set expires_at = $1 where node_id = $2")
            .bind(expires_at.unix_micros())
            .bind(node)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn expire_presence(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<PresenceKey>> {
        // Candidates first, without locks; then each user in its own transaction under the
        // user's lock (the order open and close take: lock, then rows), so a sweep never
        // deadlocks with them. Several sweepers may pick the same user: only the one whose
        // delete removed rows reports it.
        let candidates: Vec<(String, String, String)> = sqlx::query_as(
            "select distinct account_sid, service_sid, identity from presence
              where expires_at <= $1 limit $2",
        )
        .bind(now.unix_micros())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut offline = Vec::new();
        for (a, s, identity) in candidates {
            let key = PresenceKey {
                account: sid(AccountSid::from_string, a)?,
                service: sid(ServiceSid::from_string, s)?,
                identity,
            };
            let mut tx = self.pool.begin().await.map_err(db)?;
            lock_user(&mut tx, &key).await?;
            let deleted = sqlx::query(
                "delete from presence
                  where account_sid = $1 and service_sid = $2 and identity = $3
                    and expires_at <= $4",
            )
            .bind(key.account.as_str())
            .bind(key.service.as_str())
            .bind(key.identity.as_str())
            .bind(now.unix_micros())
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            let gone = deleted > 0 && live(&mut tx, &key, now).await? == 0;
            if gone {
                online_changed(&mut tx, &key).await?;
            }
            tx.commit().await.map_err(db)?;
            if gone {
                offline.push(key);
            }
        }
        Ok(offline)
    }

    async fn is_online(&self, key: &PresenceKey, now: Timestamp) -> StoreResult<bool> {
        let mut c = self.pool.acquire().await.map_err(db)?;
        Ok(live(&mut c, key, now).await? > 0)
    }
}
