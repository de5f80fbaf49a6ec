//! The row structs and their conversions live once, in [`parley_core::store::rows`]; this
//! module only teaches rusqlite to fill them (columns named like the fields).

pub(crate) use parley_core::store::rows::*;

use crate::lite::lite_row;

parley_core::for_each_row!(lite_row);
