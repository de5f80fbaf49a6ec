//! Typed SIDs: two-letter prefix + 32 hex digits (contract §0.2), parsed at the edge.

use std::fmt;

/// A string that is not a valid SID of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {prefix} SID")]
pub struct SidError {
    /// The expected two-letter prefix.
    pub prefix: &'static str,
    /// The rejected input (truncated to 64 characters).
    pub value: String,
}

/// True when `s` is `prefix` followed by exactly 32 hex digits.
pub fn is_sid(prefix: &str, s: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit)
}

/// 32 lowercase hex digits of fresh randomness.
pub fn random_hex32() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

macro_rules! sid_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(String);

        impl $name {
            /// The two-letter prefix of this SID kind.
            pub const PREFIX: &'static str = $prefix;
            /// A new random SID.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_hex32()))
            }
            /// The SID as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Parse, checking the prefix and the 32 hex digits.
            pub fn parse(s: &str) -> Result<Self, SidError> {
                if is_sid($prefix, s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(SidError { prefix: $prefix, value: s.chars().take(64).collect() })
                }
            }
            /// [`Self::parse`] of an owned string, kept without a copy.
            pub fn from_string(s: String) -> Result<Self, SidError> {
                if is_sid($prefix, &s) {
                    Ok(Self(s))
                } else {
                    Err(SidError { prefix: $prefix, value: s.chars().take(64).collect() })
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = SidError;
            fn from_str(s: &str) -> Result<Self, SidError> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

sid_type!(/// Account (`AC…`).
    AccountSid, "AC");
sid_type!(/// API key (`SK…`).
    ApiKeySid, "SK");
sid_type!(/// Chat service (`IS…`).
    ServiceSid, "IS");
sid_type!(/// User (`US…`).
    UserSid, "US");
sid_type!(/// Push binding (`BS…`).
    BindingSid, "BS");
sid_type!(/// Push credential (`CR…`).
    CredentialSid, "CR");
sid_type!(/// Role (`RL…`).
    RoleSid, "RL");
sid_type!(/// Channel (`CH…`).
    ChannelSid, "CH");
sid_type!(/// Member (`MB…`).
    MemberSid, "MB");
sid_type!(/// Message (`IM…`).
    MessageSid, "IM");
sid_type!(/// Invite (`IN…`).
    InviteSid, "IN");
sid_type!(/// Channel webhook (`WH…`).
    ChannelWebhookSid, "WH");
sid_type!(/// Studio flow (`FW…`), named by a `studio` channel webhook.
    FlowSid, "FW");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_and_rejects_invalid_sids() {
        let sid = ServiceSid::generate();
        assert_eq!(sid.as_str().len(), 34);
        assert_eq!(ServiceSid::parse(sid.as_str()), Ok(sid.clone()));
        assert!(ServiceSid::parse("ISAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").is_ok());
        assert!(ServiceSid::parse("US00000000000000000000000000000000").is_err());
        assert!(ServiceSid::parse("IS0000000000000000000000000000000").is_err());
        assert!(ServiceSid::parse("IS0000000000000000000000000000000g").is_err());
        assert!(ServiceSid::parse("IS000000000000000000000000000000é").is_err());
    }
}
