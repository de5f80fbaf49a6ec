//! Keyset paging. Every list is ordered by `(date_created, sid)`; a cursor names the last row
//! seen (or the first, when paging backwards). The opaque wire token lives in `parley-http`.

use serde::{Deserialize, Serialize};

/// Position in a list: the ordering key of a row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Sort key 1: `date_created` in epoch microseconds (or another per-list integer key).
    pub key: i64,
    /// Sort key 2: the row's SID, a tie-breaker that makes the order total.
    pub sid: String,
    /// `false`: rows strictly after the cursor (next page). `true`: rows strictly before it,
    /// returned in ascending order (previous page).
    pub backwards: bool,
}

/// What a store list method is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows wanted (already clamped to the list's maximum by the caller; at least 1).
    pub size: u32,
    /// Where to start; `None` = from the beginning.
    pub cursor: Option<Cursor>,
}

impl PageRequest {
    /// The first page of `size` rows.
    pub fn first(size: u32) -> Self {
        Self {
            size: size.max(1),
            cursor: None,
        }
    }
    /// Rows the store should fetch: one more than asked, to learn whether more exist.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.size) + 1
    }
}

/// One page of rows, always in ascending list order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows, ascending.
    pub items: Vec<T>,
    /// Whether more rows exist beyond this page in the direction of travel.
    pub more: bool,
}

impl<T> Page<T> {
    /// Build a page from up to `size + 1` rows fetched in travel order (ascending when forward,
    /// descending when backwards): trims the extra row and restores ascending order.
    pub fn from_fetched(mut rows: Vec<T>, req: &PageRequest) -> Self {
        let size = req.size as usize;
        let more = rows.len() > size;
        rows.truncate(size);
        if req.cursor.as_ref().is_some_and(|c| c.backwards) {
            rows.reverse();
        }
        Self { items: rows, more }
    }

    /// Map the items.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            more: self.more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_fetched_trims_and_orders() {
        let req = PageRequest::first(2);
        let p = Page::from_fetched(vec![1, 2, 3], &req);
        assert_eq!(
            p,
            Page {
                items: vec![1, 2],
                more: true
            }
        );
        let back = PageRequest {
            size: 2,
            cursor: Some(Cursor {
                key: 9,
                sid: "x".into(),
                backwards: true,
            }),
        };
        let p = Page::from_fetched(vec![8, 7], &back);
        assert_eq!(
            p,
            Page {
                items: vec![7, 8],
                more: false
            }
        );
    }
}
