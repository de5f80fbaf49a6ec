//! Keyset paging by `(date_created, sid)`: the cost of a page does not depend on table size.

use parley_core::paging::PageRequest;
use sqlx::{Postgres, QueryBuilder};

/// Append the cursor condition (`and (date_created, sid) > / < (…)`), the order and the limit
/// (`size + 1`) to a query whose `where` clause is already open. Backwards pages are fetched
/// descending; `Page::from_fetched` restores ascending order.
pub(crate) fn push_keyset(qb: &mut QueryBuilder<'_, Postgres>, page: &PageRequest) {
    let descending = match &page.cursor {
        None => false,
        Some(c) => {
            qb.push(if c.backwards {
                " and (date_created, sid) < ("
            } else {
                " and (date_created, sid) > ("
            });
            qb.push_bind(c.key)
                .push(", ")
                .push_bind(c.sid.clone())
                .push(")");
            c.backwards
        }
    };
    qb.push(if descending {
        " order by date_created desc, sid desc limit "
    } else {
        " order by date_created, sid limit "
    });
    qb.push_bind(page.fetch_limit());
}
