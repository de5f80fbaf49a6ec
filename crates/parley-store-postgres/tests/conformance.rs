//! The shared store conformance suite (`parley_core::store::testsuite`) on PostgreSQL.
//! Each case gets a fresh schema; see `support` for `TEST_DATABASE_URL` and skipping.

mod support;

pub use support::fresh_store;

#[tokio::test]
async fn fresh_store_connects_and_pings() {
    let Some(store) = fresh_store().await else {
        return;
    };
    store.ping().await.expect("ping");
    assert_eq!(store.backend(), "postgres");
}

parley_core::store_conformance_tests!(fresh_store);
