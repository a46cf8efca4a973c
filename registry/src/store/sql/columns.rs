//! Reading a result row's named columns the same way from sqlx (`AnyRow`) and from `rusqlite`
//! (the direct SQLite connections, see the `direct` module), so that one function turns a row
//! into an entity for both.

use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use super::direct::db_error;
use crate::error::Result;

/// A value a column can be read as, through either driver.
pub(super) trait ColumnValue:
    for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + rusqlite::types::FromSql
{
}

impl<T> ColumnValue for T where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + rusqlite::types::FromSql
{
}

/// A result row whose columns are read by name.
pub(super) trait ColumnRead {
    /// The value of `column`.
    fn read<T: ColumnValue>(&self, column: &str) -> Result<T>;
}

impl ColumnRead for AnyRow {
    fn read<T: ColumnValue>(&self, column: &str) -> Result<T> {
        Ok(self.try_get(column)?)
    }
}

impl ColumnRead for rusqlite::Row<'_> {
    fn read<T: ColumnValue>(&self, column: &str) -> Result<T> {
        self.get(column).map_err(db_error)
    }
}
