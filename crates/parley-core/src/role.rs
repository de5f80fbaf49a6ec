//! Roles and permissions (contract §11; names and defaults from service-defaults.md §1–§2).

use crate::{AccountSid, RoleSid, ServiceSid, Timestamp};

/// `channel` or `deployment` (service-wide).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoleType {
    /// A role held in a channel.
    Channel,
    /// A service-wide role.
    Deployment,
}

impl RoleType {
    /// Wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Channel => "channel",
            Self::Deployment => "deployment",
        }
    }
    /// Parse the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "channel" => Some(Self::Channel),
            "deployment" => Some(Self::Deployment),
            _ => None,
        }
    }
}

/// A role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    /// `RL…`
    pub sid: RoleSid,
    /// Owner account.
    pub account_sid: AccountSid,
    /// Owner service.
    pub service_sid: ServiceSid,
    /// Name.
    pub friendly_name: String,
    /// Kind.
    pub role_type: RoleType,
    /// Permission names, in the order given.
    pub permissions: Vec<String>,
    /// Created.
    pub date_created: Timestamp,
    /// Last updated.
    pub date_updated: Timestamp,
}

/// A role to create (same fields as [`Role`]).
pub type NewRole = Role;

/// Permissions valid on deployment (service) roles. DOC + GUESS, see service-defaults.md §2:
/// we accept every name any source shows on a deployment role.
pub const DEPLOYMENT_PERMISSIONS: &[&str] = &[
    "createChannel",
    "joinChannel",
    "editOwnUserInfo",
    "editAnyUserInfo",
    "destroyChannel",
    "inviteMember",
    "removeMember",
    "editChannelName",
    "editChannelAttributes",
    "addMember",
    "editOwnMessage",
    "editAnyMessage",
    "deleteAnyMessage",
    "editAnyMessageAttributes",
    "editOwnMessageAttributes",
    "deleteOwnMessage",
    "editAnyMemberAttributes",
    "editOwnMemberAttributes",
];

/// Permissions valid on channel roles (service-defaults.md §2).
pub const CHANNEL_PERMISSIONS: &[&str] = &[
    "sendMessage",
    "sendMediaMessage",
    "leaveChannel",
    "editNotificationLevel",
    "destroyChannel",
    "inviteMember",
    "removeMember",
    "editChannelName",
    "editChannelAttributes",
    "addMember",
    "editOwnMessage",
    "editAnyMessage",
    "deleteAnyMessage",
    "editAnyMessageAttributes",
    "editOwnMessageAttributes",
    "deleteOwnMessage",
    "editAnyMemberAttributes",
    "editOwnMemberAttributes",
];

/// Whether `permission` may be granted by a role of `role_type`.
pub fn permission_allowed(role_type: RoleType, permission: &str) -> bool {
    match role_type {
        RoleType::Channel => CHANNEL_PERMISSIONS.contains(&permission),
        RoleType::Deployment => DEPLOYMENT_PERMISSIONS.contains(&permission),
    }
}

/// The four roles every new service gets, in creation order (service-defaults.md §1).
pub fn default_roles(
    account_sid: &AccountSid,
    service_sid: &ServiceSid,
    now: Timestamp,
) -> Vec<NewRole> {
    let spec: [(&str, RoleType, &[&str]); 4] = [
        (
            "service admin",
            RoleType::Deployment,
            &[
                "createChannel",
                "joinChannel",
                "destroyChannel",
                "editChannelAttributes",
                "editChannelName",
                "addMember",
                "inviteMember",
                "removeMember",
                "editAnyMemberAttributes",
                "editAnyMessage",
                "deleteAnyMessage",
                "editAnyMessageAttributes",
                "editAnyUserInfo",
            ],
        ),
        (
            "service user",
            RoleType::Deployment,
            &["createChannel", "joinChannel", "editOwnUserInfo"],
        ),
        (
            "channel admin",
            RoleType::Channel,
            &[
                "sendMessage",
                "sendMediaMessage",
                "leaveChannel",
                "editNotificationLevel",
                "destroyChannel",
                "inviteMember",
                "removeMember",
                "editChannelName",
                "editChannelAttributes",
                "addMember",
                "editAnyMemberAttributes",
                "editAnyMessage",
                "editAnyMessageAttributes",
                "deleteAnyMessage",
            ],
        ),
        (
            "channel user",
            RoleType::Channel,
            &[
                "sendMessage",
                "sendMediaMessage",
                "leaveChannel",
                "editNotificationLevel",
                "editOwnMemberAttributes",
                "editOwnMessage",
                "editOwnMessageAttributes",
                "deleteOwnMessage",
            ],
        ),
    ];
    spec.iter()
        .enumerate()
        .map(|(i, (name, role_type, perms))| Role {
            sid: RoleSid::generate(),
            account_sid: account_sid.clone(),
            service_sid: service_sid.clone(),
            friendly_name: (*name).to_owned(),
            role_type: *role_type,
            permissions: perms.iter().map(|p| (*p).to_owned()).collect(),
            // One microsecond apart so the list order is the creation order.
            date_created: Timestamp::from_unix_micros(now.unix_micros() + i as i64),
            date_updated: Timestamp::from_unix_micros(now.unix_micros() + i as i64),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_roles_only_use_permissions_valid_for_their_type() {
        let roles = default_roles(
            &AccountSid::generate(),
            &ServiceSid::generate(),
            Timestamp::now(),
        );
        assert_eq!(roles.len(), 4);
        for r in &roles {
            for p in &r.permissions {
                assert!(
                    permission_allowed(r.role_type, p),
                    "{} has {p}",
                    r.friendly_name
                );
            }
        }
        assert!(!permission_allowed(RoleType::Deployment, "sendMessage"));
        assert!(!permission_allowed(RoleType::Channel, "createChannel"));
    }
}
