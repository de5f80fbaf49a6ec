//! Push bindings (contract §1–§2): a user's registered devices.

use crate::credential::PushType;
use crate::{AccountSid, BindingSid, CredentialSid, ServiceSid, Timestamp, UserSid};

/// The notification kinds a binding can subscribe to, in Twilio's fixture order.
pub const MESSAGE_TYPES: [&str; 4] = [
    "removed_from_channel",
    "new_message",
    "added_to_channel",
    "invited_to_channel",
];

/// Default cap of bindings per user (oldest-updated is evicted beyond it).
pub const DEFAULT_MAX_BINDINGS_PER_USER: u32 = 20;

/// A push binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// `BS…`
    pub sid: BindingSid,
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// Owner user.
    pub user_sid: UserSid,
    /// The user's identity (denormalised: the wire shows it and filters on it).
    pub identity: String,
    /// Credential used to deliver.
    pub credential_sid: Option<CredentialSid>,
    /// apn, gcm or fcm.
    pub binding_type: PushType,
    /// Installation / endpoint id, unique per (service, identity, binding type).
    pub endpoint: String,
    /// The device token.
    pub address: String,
    /// Subscribed notification kinds (short names).
    pub message_types: Vec<String>,
    /// Created.
    pub date_created: Timestamp,
    /// Last registered or refreshed.
    pub date_updated: Timestamp,
}

/// Filter for binding lists. Empty vectors mean "any".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindingFilter {
    /// Only this user's bindings.
    pub user_sid: Option<UserSid>,
    /// Only these identities.
    pub identities: Vec<String>,
    /// Only these types.
    pub types: Vec<PushType>,
}

/// A registration: creates the binding or refreshes the one with the same
/// (service, identity, endpoint, binding type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBinding {
    /// SID to use if a new row is created.
    pub sid: BindingSid,
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// Owner user (must exist).
    pub user_sid: UserSid,
    /// The user's identity.
    pub identity: String,
    /// Credential (already checked to belong to the account and match the type).
    pub credential_sid: Option<CredentialSid>,
    /// Type.
    pub binding_type: PushType,
    /// Endpoint id.
    pub endpoint: String,
    /// Device token.
    pub address: String,
    /// Subscribed kinds.
    pub message_types: Vec<String>,
    /// When.
    pub now: Timestamp,
    /// Per-user cap; beyond it the least recently updated bindings of the user are deleted.
    pub max_per_user: u32,
}

/// Outcome of [`NewBinding`] registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    /// The stored binding.
    pub binding: Binding,
    /// True when a new row was created, false when an existing one was refreshed.
    pub created: bool,
}

/// A stable endpoint when the client gives none: derived from identity, type and address,
/// so re-registering the same device token is idempotent.
pub fn derived_endpoint(identity: &str, binding_type: PushType, address: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(identity.as_bytes());
    h.update([0]);
    h.update(binding_type.as_str().as_bytes());
    h.update([0]);
    h.update(address.as_bytes());
    format!(
        "{}:{}",
        binding_type.as_str(),
        hex::encode(&h.finalize()[..16])
    )
}
