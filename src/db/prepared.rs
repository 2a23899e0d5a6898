//! Raw SQL that each connection prepares once and then reuses.
//!
//! diesel marks every `sql_query` as unsafe to cache, so PostgreSQL parses and
//! plans it again on every call: for the order batch's large `unnest`
//! statements that is a noticeable share of each batch's time. A statement
//! whose text never changes can be prepared once per connection, like the
//! query builder's own statements: `prepared` takes its text with `$1`, `$2`, …
//! in order, binds values as `sql_query` does, and lets the connection's
//! statement cache key it by that text.

use std::borrow::Cow;
use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::{Error, QueryResult};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

/// A raw statement with its bound values, prepared once per connection.
#[must_use = "a statement runs only when executed or loaded"]
pub struct PreparedSql<'f> {
    sql: Cow<'static, str>,
    binds: Vec<Box<dyn QueryFragment<Pg> + Send + 'f>>,
}

/// `sql` with its parameters written `$1`, `$2`, … each once and in order
/// (checked when the statement is built: a test that runs it finds a mistake).
pub fn prepared(sql: impl Into<Cow<'static, str>>) -> PreparedSql<'static> {
    PreparedSql { sql: sql.into(), binds: Vec::new() }
}

impl<'f> PreparedSql<'f> {
    /// Binds the next parameter, as `SqlQuery::bind` does.
    pub fn bind<ST, V>(mut self, value: V) -> PreparedSql<'f>
    where
        Pg: HasSqlType<ST>,
        V: ToSql<ST, Pg> + Send + 'f,
        ST: Send + 'f,
    {
        self.binds.push(Box::new(Bind { value, sql_type: PhantomData::<ST> }));
        self
    }
}

struct Bind<ST, V> {
    value: V,
    sql_type: PhantomData<ST>,
}

impl<ST, V> QueryFragment<Pg> for Bind<ST, V>
where
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg>,
{
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        pass.push_bind_param::<ST, V>(&self.value)
    }
}

/// Where each `$n` stands in `sql`: (start, end) byte ranges, checked to
/// number 1, 2, … in order.
fn placeholders(sql: &str) -> Result<Vec<(usize, usize)>, String> {
    let bytes = sql.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let digits = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return Err("a `$` that is not a parameter (dollar quoting is not supported here)".into());
            }
            let number: usize = sql[i + 1..i + 1 + digits].parse().map_err(|_| "a parameter number out of range")?;
            if number != found.len() + 1 {
                return Err(format!("parameter ${number} where ${} was expected", found.len() + 1));
            }
            found.push((i, i + 1 + digits));
            i += 1 + digits;
        } else {
            i += 1;
        }
    }
    Ok(found)
}

impl QueryFragment<Pg> for PreparedSql<'_> {
    // Unlike `SqlQuery`, this does not call `unsafe_to_cache_prepared`: the
    // text is fixed by the caller and the values travel as parameters, so the
    // statement cache may key the prepared statement by the text.
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let spots = placeholders(&self.sql).map_err(|e| Error::QueryBuilderError(e.into()))?;
        if spots.len() != self.binds.len() {
            return Err(Error::QueryBuilderError(
                format!("{} parameters written, {} bound", spots.len(), self.binds.len()).into(),
            ));
        }
        let mut from = 0;
        for ((start, end), bind) in spots.into_iter().zip(&self.binds) {
            out.push_sql(&self.sql[from..start]);
            bind.walk_ast(out.reborrow())?;
            from = end;
        }
        out.push_sql(&self.sql[from..]);
        Ok(())
    }
}

impl QueryId for PreparedSql<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for PreparedSql<'_> {
    type SqlType = Untyped;
}

impl<Conn> diesel::query_dsl::RunQueryDsl<Conn> for PreparedSql<'_> {}

#[cfg(test)]
mod tests {
    use diesel::sql_types::{Int4, Text};

    use super::*;

    #[test]
    fn parameters_must_be_numbered_in_order() {
        assert_eq!(placeholders("SELECT $1, $2::int4[] WHERE x = $3"), Ok(vec![(7, 9), (11, 13), (32, 34)]));
        assert!(placeholders("SELECT $2, $1").is_err());
        assert!(placeholders("SELECT $1, $1").is_err());
        assert!(placeholders("SELECT $$text$$").is_err());
        assert_eq!(placeholders("SELECT 1"), Ok(vec![]));
    }

    #[test]
    fn the_statement_is_written_with_its_placeholders_and_may_be_cached() {
        let query = prepared("SELECT $1::text || x FROM t WHERE y = $2").bind::<Text, _>("a").bind::<Int4, _>(7);
        let sql = diesel::debug_query::<Pg, _>(&query).to_string();
        assert!(sql.starts_with("SELECT $1::text || x FROM t WHERE y = $2"), "{sql}");
        assert!(query.is_safe_to_cache_prepared(&Pg).unwrap_or(false));
        let short = prepared("SELECT $1, $2").bind::<Int4, _>(1);
        let mut builder = diesel::pg::PgQueryBuilder::default();
        assert!(short.to_sql(&mut builder, &Pg).is_err(), "two written, one bound");
    }
}
