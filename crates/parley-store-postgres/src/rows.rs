//! The row structs and their conversions live once, in [`parley_core::store::rows`]; this
//! module only teaches sqlx to fill them from PostgreSQL rows (columns named like the fields).
//! sqlx's `FromRow` is implemented on the local wrapper [`Pg`], since neither the trait nor the
//! row structs belong to this crate.

pub(crate) use parley_core::store::rows::*;
use parley_core::store::StoreError;
use sqlx::FromRow;

/// A shared row struct as decoded by sqlx: `query_as::<_, Pg<AccountRow>>`.
#[derive(Debug)]
pub(crate) struct Pg<R>(pub R);

/// `impl FromRow for Pg<Row>`, each field read from the column of its name.
macro_rules! pg_row {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl<'r> FromRow<'r, sqlx::postgres::PgRow> for Pg<$ty> {
            fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok(Pg($ty { $($field: row.try_get(stringify!($field))?),* }))
            }
        }
    };
}

parley_core::for_each_row!(pg_row);

/// Convert a list of fetched rows.
pub(crate) fn convert_all<R, T>(rows: Vec<Pg<R>>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(|Pg(r)| T::try_from(r)).collect()
}

/// A binding returned by the registration upsert, with whether the row was inserted.
#[derive(Debug, FromRow)]
pub struct RegisteredRow {
    #[sqlx(flatten)]
    pub(crate) binding: Pg<BindingRow>,
    pub(crate) created: bool,
}
