//! sqlx errors → [`StoreError`]. Unique violations are detected with the portable
//! `is_unique_violation()`; the constraint name (Postgres reports it) only picks the variant.

use parley_core::store::{Conflict, StoreError};

/// Map a database error to the store contract.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(d) if d.is_unique_violation() => match d.constraint() {
            Some("users_identity") => StoreError::Conflict(Conflict::UserIdentityTaken),
            Some("channels_unique_name") => StoreError::Conflict(Conflict::ChannelUniqueNameTaken),
            Some("members_identity") => StoreError::Conflict(Conflict::MemberExists),
            Some("invites_identity") => StoreError::Conflict(Conflict::InviteExists),
            _ => StoreError::Conflict(Conflict::SidTaken),
        },
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => match d.constraint() {
            Some("api_keys_account_fk") => StoreError::InvalidReference("account"),
            Some("users_role_fk" | "members_role_fk" | "invites_role_fk") => {
                StoreError::InvalidReference("role")
            }
            Some("bindings_credential_fk") => StoreError::InvalidReference("credential"),
            // A child of a missing service (or a binding of a missing user): the parent named in
            // the path does not exist in this account.
            _ => StoreError::NotFound,
        },
        other => StoreError::Other(other.into()),
    }
}

/// Whether retrying the whole transaction may succeed: a unique violation caused by a
/// concurrent insert, a serialization failure or a deadlock.
pub(crate) fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation() || matches!(d.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
}

/// Whether a store call failed only because of a deadlock or a serialization failure, so the
/// whole transaction may simply run again (a unique violation is NOT transient here: in the chat
/// core it is an answer, e.g. `MemberExists`).
pub(crate) fn is_transient(e: &StoreError) -> bool {
    match e {
        StoreError::Other(err) => match err.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(d)) => {
                matches!(d.code().as_deref(), Some("40001" | "40P01"))
            }
            _ => false,
        },
        _ => false,
    }
}

/// Attempts of a transaction that fails transiently (deadlocks between nodes are rare).
pub(crate) const TRANSIENT_ATTEMPTS: usize = 5;

pub(crate) use parley_core::store::rows::one_row;
