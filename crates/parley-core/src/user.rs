//! Chat users (contract §4).

use crate::{sid::is_sid, AccountSid, RoleSid, ServiceSid, Timestamp, UserSid};

/// Longest accepted identity (error 50207 "Identity too long"; GUESS: 256 characters).
pub const MAX_IDENTITY_LEN: usize = 256;

/// A user as a single-user answer (FetchUser) shows it, read in one go
/// ([`crate::store::UserStore::fetch_user_view`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserView {
    /// The user.
    pub user: User,
    /// How many channels the user has joined.
    pub joined_channels_count: i64,
    /// How many push bindings the user has, when its service has reachability on; `None` when
    /// it is off (then the answer shows no reachability).
    pub bindings_count: Option<u64>,
    /// Whether the user has a live connection on any node (the presence table), when its
    /// service has reachability on; `None` when it is off.
    pub online: Option<bool>,
}

/// A user of a service.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    /// `US…`
    pub sid: UserSid,
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// Unique within the service.
    pub identity: String,
    /// Display name.
    pub friendly_name: Option<String>,
    /// JSON text (`None` shows as `"{}"` on the wire).
    pub attributes: Option<String>,
    /// Service role.
    pub role_sid: Option<RoleSid>,
    /// Created.
    pub date_created: Timestamp,
    /// Last updated.
    pub date_updated: Timestamp,
}

/// A user named in a path: `Users/{Sid}` accepts the SID or the identity (contract §0.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UserRef {
    /// A `US…` SID.
    Sid(UserSid),
    /// An identity.
    Identity(String),
}

impl UserRef {
    /// A path segment (already percent-decoded): a SID when it looks like one, else an identity.
    pub fn parse(segment: &str) -> Self {
        if is_sid(UserSid::PREFIX, segment) {
            if let Ok(sid) = UserSid::parse(segment) {
                return Self::Sid(sid);
            }
        }
        Self::Identity(segment.to_owned())
    }
}

impl std::fmt::Display for UserRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sid(s) => write!(f, "{s}"),
            Self::Identity(i) => f.write_str(i),
        }
    }
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// New display name.
    pub friendly_name: Option<String>,
    /// New attributes (JSON text, already validated).
    pub attributes: Option<String>,
    /// New role.
    pub role_sid: Option<RoleSid>,
}
