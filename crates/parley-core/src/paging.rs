//! Keyset paging. Every list is ordered by `(date_created, sid)` (messages by index); a cursor
//! names the last row seen (or the first, when paging backwards). A store's page carries the
//! cursors that continue it ([`Page::next`], [`Page::prev`]), built from each row's [`ListKey`],
//! so callers never rebuild a sort key. The opaque wire token lives in `parley-http`.

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

/// A row's position in the list it is paged in: the `(key, sid)` pair the stores order that
/// list by (`ORDER BY key, sid`). Defined once per listed type, next to the keyset rule it
/// mirrors; stores build a page's cursors from it ([`Page::from_fetched`]), so no caller
/// restates the order. The conformance suite checks that following these cursors walks every
/// list in order, both ways.
pub trait ListKey {
    /// `(key, sid)` of this row, as its list orders it.
    fn list_key(&self) -> (i64, String);

    /// The cursor naming this row: rows after it (`backwards == false`) or before it.
    fn cursor(&self, backwards: bool) -> Cursor {
        let (key, sid) = self.list_key();
        Cursor {
            key,
            sid,
            backwards,
        }
    }
}

/// `(date_created, sid)`: services, credentials, users, roles, bindings, channels, members,
/// invites, channel webhooks.
macro_rules! by_date_created_then_sid {
    ($($ty:ty),* $(,)?) => {
        $(
            impl ListKey for $ty {
                fn list_key(&self) -> (i64, String) {
                    (self.date_created.unix_micros(), self.sid.as_str().to_owned())
                }
            }
        )*
    };
}

by_date_created_then_sid!(
    crate::service::Service,
    crate::credential::Credential,
    crate::user::User,
    crate::role::Role,
    crate::binding::Binding,
    crate::channel::Channel,
    crate::channel::Member,
    crate::channel::Invite,
    crate::channel_webhook::ChannelWebhook,
);

/// A user's channels page by `(date_created, channel_sid)` (of the membership or invite).
impl ListKey for crate::channel::UserChannel {
    fn list_key(&self) -> (i64, String) {
        (
            self.date_created.unix_micros(),
            self.channel_sid.as_str().to_owned(),
        )
    }
}

/// Messages page by their index (unique in a channel); the SID rides along unused.
impl ListKey for crate::channel::Message {
    fn list_key(&self) -> (i64, String) {
        (self.index, self.sid.as_str().to_owned())
    }
}

/// The push log pages by `(date_created, seq)`; the cursor's `sid` is `seq` as 20-digit
/// zero-padded text (so text order is number order).
impl ListKey for crate::push::PushLogEntry {
    fn list_key(&self) -> (i64, String) {
        (self.date_created.unix_micros(), format!("{:020}", self.seq))
    }
}

/// One page of rows, always in ascending list order, with the cursors that continue the list
/// from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows, ascending.
    pub items: Vec<T>,
    /// Whether more rows exist beyond this page in the direction of travel.
    pub more: bool,
    /// The cursor of the page after this one (from its last row), if there may be one.
    pub next: Option<Cursor>,
    /// The cursor of the page before this one (from its first row), if there may be one.
    pub prev: Option<Cursor>,
}

impl<T: ListKey> Page<T> {
    /// Build a page from up to `size + 1` rows fetched in travel order (ascending when forward,
    /// descending when backwards): trims the extra row, restores ascending order and sets the
    /// cursors. Forward: `next` when more rows follow, `prev` when the page was reached by a
    /// cursor. Backwards: `next` always (the page was reached from a later row), `prev` when
    /// more rows precede. An empty page has no cursors.
    pub fn from_fetched(mut rows: Vec<T>, req: &PageRequest) -> Self {
        let size = req.size as usize;
        let more = rows.len() > size;
        rows.truncate(size);
        let backwards = req.cursor.as_ref().is_some_and(|c| c.backwards);
        if backwards {
            rows.reverse();
        }
        let (has_next, has_prev) = if backwards {
            (true, more)
        } else {
            (more, req.cursor.is_some())
        };
        let next = rows
            .last()
            .filter(|_| has_next)
            .map(|last| last.cursor(false));
        let prev = rows
            .first()
            .filter(|_| has_prev)
            .map(|first| first.cursor(true));
        Self {
            items: rows,
            more,
            next,
            prev,
        }
    }
}

impl<T> Page<T> {
    /// Map the items (the cursors stay).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            more: self.more,
            next: self.next,
            prev: self.prev,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ListKey for i64 {
        fn list_key(&self) -> (i64, String) {
            (*self, format!("s{self}"))
        }
    }

    fn at(key: i64, backwards: bool) -> Cursor {
        Cursor {
            key,
            sid: format!("s{key}"),
            backwards,
        }
    }

    #[test]
    fn from_fetched_trims_orders_and_sets_cursors() {
        let req = PageRequest::first(2);
        let p = Page::from_fetched(vec![1_i64, 2, 3], &req);
        assert_eq!(
            p,
            Page {
                items: vec![1, 2],
                more: true,
                next: Some(at(2, false)),
                prev: None,
            }
        );
        let last = PageRequest {
            size: 2,
            cursor: Some(at(2, false)),
        };
        let p = Page::from_fetched(vec![3_i64], &last);
        assert_eq!(
            p,
            Page {
                items: vec![3],
                more: false,
                next: None,
                prev: Some(at(3, true)),
            }
        );
        let back = PageRequest {
            size: 2,
            cursor: Some(at(9, true)),
        };
        let p = Page::from_fetched(vec![8_i64, 7], &back);
        assert_eq!(
            p,
            Page {
                items: vec![7, 8],
                more: false,
                next: Some(at(8, false)),
                prev: None,
            }
        );
        let p = Page::from_fetched(vec![8_i64, 7, 6], &back);
        assert_eq!(p.items, vec![7, 8]);
        assert_eq!(p.prev, Some(at(7, true)));
        let empty = Page::<i64>::from_fetched(Vec::new(), &last);
        assert_eq!((empty.next, empty.prev), (None, None));
    }
}
