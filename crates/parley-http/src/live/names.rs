//! Names of the Sync objects the chat projection serves (shared by the chat client API, which
//! hands them out, and the Sync engine, which serves them). Identities can hold any character, so
//! they appear base64url-encoded (no padding).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

fn ident(identity: &str) -> String {
    URL_SAFE_NO_PAD.encode(identity.as_bytes())
}

/// The user's channels map (`sync_objects.my_conversations` / `my_channels`).
pub fn user_channels_map(identity: &str) -> String {
    format!("user.{}.channels", ident(identity))
}

/// The user's info map (`sync_objects.my_user_info`, `user_info_map`).
pub fn user_info_map(identity: &str) -> String {
    format!("user.{}.info", ident(identity))
}

/// The channel document. The SDK hard-codes this name for channels it finds through REST.
pub fn channel_document(channel_sid: &str) -> String {
    format!("{channel_sid}.channel")
}

/// The channel's messages list.
pub fn messages_list(channel_sid: &str) -> String {
    format!("{channel_sid}.messages")
}

/// The channel's roster (members) map.
pub fn roster_map(channel_sid: &str) -> String {
    format!("{channel_sid}.roster")
}
