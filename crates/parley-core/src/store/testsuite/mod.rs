//! Store conformance suite: the behaviour every backend must show, written against
//! `Arc<dyn Store>` only (feature `testsuite`).
//!
//! A backend crate runs it from `tests/conformance.rs`:
//!
//! ```ignore
//! async fn fresh_store() -> std::sync::Arc<dyn parley_core::store::Store> {
//!     // a new, empty, isolated database for every call
//! }
//! parley_core::store_conformance_tests!(fresh_store);
//! ```
//!
//! The macro expands to one `#[tokio::test]` per case (the calling crate needs `tokio` with the
//! `macros` and `rt-multi-thread` features as a dev-dependency). Every case makes its own
//! account and services, so the factory should give an empty store, but cases do not break if
//! other cases' rows are present — except that the stale-binding sweep is global: no other
//! bindings updated before 2023-12-31T23:51:40Z may exist (the suite makes none elsewhere).
//! The push cases (`push.rs`) also count and claim the whole outbox and delivery queue and
//! prune the whole log, so they need a database of their own: the factory's fresh store.

use crate::event::Origin;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::account::Account;
use crate::binding::{NewBinding, MESSAGE_TYPES};
use crate::credential::{Credential, PushType};
use crate::paging::{Cursor, Page, PageRequest};
use crate::service::{NewService, Service};
use crate::store::{Store, StoreError, StoreResult};
use crate::user::User;
use crate::{AccountSid, CredentialSid, Timestamp, UserSid};

mod accounts;
mod bindings;
mod channel_webhooks;
mod chat;
mod credentials;
mod events;
mod log;
mod paging;
mod presence;
mod push;
mod roles;
mod secrets;
mod services;
mod signals;
mod tenancy;
mod users;
mod webhooks;

pub use accounts::*;
pub use bindings::*;
pub use channel_webhooks::*;
pub use chat::*;
pub use credentials::*;
pub use events::*;
pub use log::*;
pub use paging::*;
pub use presence::*;
pub use push::*;
pub use roles::*;
pub use secrets::*;
pub use services::*;
pub use signals::*;
pub use tenancy::*;
pub use users::*;
pub use webhooks::*;

/// Expand to one `#[tokio::test]` per conformance case, each on a fresh store from
/// `$factory` (an `async fn() -> Arc<dyn parley_core::store::Store>`).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:path) => {
        $crate::__store_conformance_cases!(
            $factory;
            accounts_and_api_keys_round_trip,
            credential_version_moves_on_every_credential_change,
            taken_account_and_api_key_sids_conflict,
            api_key_of_a_missing_account_is_an_invalid_reference,
            created_service_has_four_default_roles_and_round_trips_settings,
            service_update_persists_nested_settings,
            concurrent_service_patches_of_different_fields_all_survive,
            service_delete_removes_its_roles_users_and_bindings,
            missing_service_is_not_found_for_fetch_update_delete_and_children,
            another_accounts_rows_are_not_found,
            children_are_scoped_by_service,
            keyset_pages_return_every_row_once_in_order,
            backwards_cursor_returns_the_previous_page,
            rows_inserted_or_deleted_between_pages_are_neither_duplicated_nor_skipped,
            every_list_pages_by_date_created_then_sid,
            returned_cursors_page_through_every_list_in_order_both_ways,
            user_identity_is_unique_within_a_service,
            users_are_fetched_by_sid_or_identity,
            user_view_counts_joined_channels_and_bindings_when_reachability_is_on,
            user_update_changes_only_the_given_fields,
            user_delete_removes_the_user_and_its_bindings,
            concurrent_get_or_create_user_yields_one_user,
            roles_round_trip_and_permission_updates_replace_the_set,
            deleting_a_role_clears_it_from_users,
            user_with_a_missing_role_is_an_invalid_reference,
            credentials_round_trip_with_sealed_secrets,
            concurrent_credential_updates_lose_nothing,
            deleting_a_credential_removes_its_bindings,
            imported_credentials_keep_their_sid_and_need_their_secret,
            sealed_secrets_are_walked_in_order_and_replaced_only_if_unchanged,
            register_creates_then_re_register_refreshes_the_same_binding,
            an_address_moves_to_the_identity_that_registers_it_last,
            per_user_cap_evicts_the_least_recently_updated_binding,
            concurrent_identical_registrations_leave_one_binding,
            binding_list_filters_by_user_identity_and_type,
            binding_fetch_and_delete_are_scoped_by_service,
            registering_for_a_missing_user_is_not_found,
            stale_sweep_deletes_only_old_bindings_and_respects_the_limit,
            count_user_bindings_counts_only_that_users_bindings,
            log_claims_return_the_events_after_the_position_in_seq_order,
            log_positions_are_independent_per_consumer_and_service,
            a_leased_service_is_claimed_by_nobody_else_until_the_lease_expires,
            advancing_never_moves_back_and_a_lost_lease_is_refused,
            trimming_deletes_only_old_events_every_consumer_passed_without_an_outbox_row,
            trimming_everything_never_makes_seq_go_back,
            channel_round_trips_and_is_fetched_by_sid_or_unique_name,
            channel_unique_name_is_unique_within_a_service,
            channel_list_filters_by_type_and_pages,
            deleting_a_channel_removes_its_members_messages_and_invites,
            member_limits_are_enforced_with_exact_counts,
            second_join_is_member_exists_and_changes_nothing,
            members_are_fetched_by_sid_or_identity_filtered_and_updated,
            joining_removes_the_pending_invite,
            horizon_sets_its_timestamp_and_drives_unread_counts,
            deleting_a_user_removes_its_memberships_and_keeps_counts_exact,
            concurrent_messages_get_distinct_gapless_indexes,
            message_list_pages_in_both_orders_and_directions,
            message_update_marks_edits_and_delete_keeps_counts_exact,
            imported_messages_keep_their_index_and_later_posts_continue,
            invites_conflict_list_and_delete,
            user_channels_mix_joined_and_invited_with_paging,
            deleting_a_service_removes_its_channels_and_events,
            chat_mutations_append_one_event_each_with_state_and_origin,
            user_mutations_append_user_events_memberships_first,
            deleting_a_channel_appends_one_channel_removed_with_its_last_state,
            deleting_an_empty_channel_names_nobody,
            rolled_back_mutations_append_nothing_and_take_no_seq,
            seq_counts_from_one_per_service_independently,
            last_seq_is_the_services_last_assigned_seq_and_survives_trimming,
            concurrent_writers_append_a_gapless_seq_in_commit_order,
            another_accounts_chat_rows_are_not_found,
            channel_webhooks_round_trip_update_and_delete,
            a_channel_has_at_most_five_webhooks_even_under_concurrent_creates,
            deleting_a_channel_or_its_service_removes_its_webhooks,
            a_channel_removed_event_keeps_the_channels_webhooks_when_webhooks_fire,
            another_accounts_channel_webhooks_are_not_found,
            channel_webhooks_page_by_date_created_then_sid,
            outbox_claims_full_events_by_available_at_then_id_up_to_the_limit,
            an_outbox_lease_hides_the_entry_until_it_expires,
            retry_outbox_releases_the_lease_and_postpones_the_entry,
            new_message_recipients_exclude_the_author_muted_and_unsubscribed,
            membership_recipients_are_the_identitys_subscribed_bindings_unless_muted,
            complete_fanout_inserts_each_delivery_once_and_removes_the_entry,
            complete_fanout_writes_ten_thousand_deliveries,
            fan_out_progress_survives_a_lost_lease_and_never_moves_back,
            delivery_claims_take_due_ones_oldest_first_up_to_the_limit,
            a_delivery_lease_hides_it_until_it_expires,
            settling_removes_finished_deliveries_and_postpones_retries,
            a_dead_token_deletes_the_binding_and_its_other_pending_deliveries,
            a_dead_token_keeps_a_binding_that_reregistered_with_a_new_address,
            a_settle_batch_does_what_settling_one_by_one_does,
            queue_depth_counts_waiting_entries_and_deliveries,
            imported_changes_queue_no_push,
            badge_counts_unread_two_member_channels,
            the_push_log_pages_by_date_then_append_order_within_its_service,
            a_push_log_cursor_that_is_not_a_seq_is_refused,
            the_push_log_prunes_old_rows_in_batches,
            appending_to_the_log_of_a_missing_service_is_not_found,
            deleting_a_service_removes_its_log_and_push_queues,
            calls_of_one_key_are_claimed_one_at_a_time_in_queue_order,
            another_keys_calls_are_claimable_while_one_key_waits,
            a_webhook_call_lease_hides_it_until_it_expires,
            enqueue_and_log_advance_are_one_transaction_under_the_lease,
            concurrent_webhook_claims_never_share_a_call,
            a_run_claims_a_keys_next_calls_in_order_up_to_the_first_that_waits,
            concurrent_run_claims_keep_each_keys_order,
            queued_calls_keep_their_tries_and_a_leased_one_waits_for_its_owner,
            waiting_keys_are_the_keys_with_calls_queued,
            deleting_a_service_removes_its_webhook_calls,
            a_settlement_batch_settles_each_call_and_skips_calls_not_leased_by_the_owner,
            presence_online_edges_count_connections_across_nodes,
            stale_presence_of_a_dead_node_expires,
            opening_over_an_expired_row_is_an_online_edge,
            committed_changes_signal_their_service_and_rolled_back_ones_do_not,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_cases {
    ($factory:path; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                // A factory may return `Option<_>`: `None` means the backend is unavailable and
                // skipped (the factory says so on stderr); only this case returns early.
                let store: ::std::option::Option<::std::sync::Arc<dyn $crate::store::Store>> =
                    ::std::convert::Into::into($factory().await);
                let ::std::option::Option::Some(store) = store else {
                    return;
                };
                $crate::store::testsuite::$case(store).await;
            }
        )*
    };
}

/// The store under test.
pub type DynStore = Arc<dyn Store>;

// ---- fixtures -----------------------------------------------------------------------------------

/// A fixed instant (2024-01-01T00:00:00Z) plus `secs` seconds; cases that care about order use it
/// instead of the wall clock.
pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_secs(1_704_067_200 + secs)
}

/// A fresh account row.
pub async fn account(store: &DynStore) -> AccountSid {
    let now = Timestamp::now();
    let account = Account {
        sid: AccountSid::generate(),
        friendly_name: Some("conformance".to_owned()),
        auth_token_sealed: vec![1, 2, 3],
        date_created: now,
        date_updated: now,
    };
    store
        .create_account(&account)
        .await
        .expect("create account")
        .sid
}

/// A fresh service (with its default roles) of `account`.
pub async fn service(store: &DynStore, account: &AccountSid) -> Service {
    store
        .create_service(&NewService::with_defaults(
            account,
            "conformance service",
            Timestamp::now(),
        ))
        .await
        .expect("create service")
}

/// A user value (not stored) named `identity`, created at `now`.
pub fn user_at(service: &Service, identity: &str, now: Timestamp) -> User {
    User {
        sid: UserSid::generate(),
        account_sid: service.account_sid.clone(),
        service_sid: service.sid.clone(),
        identity: identity.to_owned(),
        friendly_name: None,
        attributes: None,
        role_sid: service.default_service_role_sid.clone(),
        date_created: now,
        date_updated: now,
    }
}

/// A stored user named `identity`.
pub async fn user(store: &DynStore, service: &Service, identity: &str) -> User {
    store
        .create_user(
            &user_at(service, identity, Timestamp::now()),
            &Origin::rest(),
        )
        .await
        .expect("create user")
}

/// A credential value (not stored) of `account`.
pub fn credential_value(account: &AccountSid, credential_type: PushType) -> Credential {
    let now = Timestamp::now();
    Credential {
        sid: CredentialSid::generate(),
        account_sid: account.clone(),
        friendly_name: Some(format!("{} credential", credential_type.as_str())),
        credential_type,
        sandbox: None,
        secrets_sealed: vec![0, 1, 2, 254, 255],
        needs_secret: false,
        date_created: now,
        date_updated: now,
    }
}

/// A stored credential.
pub async fn credential(
    store: &DynStore,
    account: &AccountSid,
    credential_type: PushType,
) -> Credential {
    store
        .create_credential(&credential_value(account, credential_type))
        .await
        .expect("create credential")
}

/// A registration of `user`'s device (`endpoint`, `address`) at `now`, cap 20.
pub fn registration(
    user: &User,
    binding_type: PushType,
    endpoint: &str,
    address: &str,
    now: Timestamp,
) -> NewBinding {
    NewBinding {
        sid: crate::BindingSid::generate(),
        account_sid: user.account_sid.clone(),
        service_sid: user.service_sid.clone(),
        user_sid: user.sid.clone(),
        identity: user.identity.clone(),
        credential_sid: None,
        binding_type,
        endpoint: endpoint.to_owned(),
        address: address.to_owned(),
        message_types: MESSAGE_TYPES.iter().map(|m| (*m).to_owned()).collect(),
        now,
        max_per_user: crate::binding::DEFAULT_MAX_BINDINGS_PER_USER,
    }
}

// ---- assertions ---------------------------------------------------------------------------------

/// Assert that a call failed with `NotFound`.
#[track_caller]
pub fn assert_not_found<T: Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

/// Boxed future, for the list helpers below.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The cursor after `item` (forward) or before it (backwards), as the HTTP layer builds it.
pub fn cursor(date_created: Timestamp, sid: &str, backwards: bool) -> PageRequest {
    cursor_sized(10, date_created, sid, backwards)
}

/// Like [`cursor`] with a page size.
pub fn cursor_sized(size: u32, date_created: Timestamp, sid: &str, backwards: bool) -> PageRequest {
    PageRequest {
        size,
        cursor: Some(Cursor {
            key: date_created.unix_micros(),
            sid: sid.to_owned(),
            backwards,
        }),
    }
}

/// Walk a list forward page by page (size `size`), returning every page.
pub async fn all_pages<T, F>(
    size: u32,
    key: impl Fn(&T) -> (Timestamp, String),
    list: F,
) -> Vec<Page<T>>
where
    F: Fn(PageRequest) -> BoxFut<'static, StoreResult<Page<T>>>,
{
    let mut pages = Vec::new();
    let mut req = PageRequest::first(size);
    loop {
        let page = list(req.clone()).await.expect("list page");
        // The page's own cursor is the one a client gets: it names the last row, forward, and
        // exists exactly when more rows follow.
        let expected_next = match page.items.last() {
            Some(last) if page.more => cursor_sized(size, key(last).0, &key(last).1, false).cursor,
            _ => None,
        };
        assert_eq!(
            page.next,
            expected_next,
            "next cursor of page {}",
            pages.len()
        );
        let next = page.next.clone();
        pages.push(page);
        match next {
            Some(cursor) => {
                req = PageRequest {
                    size,
                    cursor: Some(cursor),
                }
            }
            None => break,
        }
        assert!(pages.len() < 10_000, "paging does not terminate");
    }
    pages
}

/// `(date_created, sid)` of a service, for sorting expectations.
pub fn service_key(s: &Service) -> (Timestamp, String) {
    (s.date_created, s.sid.as_str().to_owned())
}

/// `(date_created, sid)` of a user.
pub fn user_key(u: &User) -> (Timestamp, String) {
    (u.date_created, u.sid.as_str().to_owned())
}
