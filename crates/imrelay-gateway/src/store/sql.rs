//! How the shared statements of [`super::queue`] reach either backend: bound
//! values ([`Arg`]), the two dialects' spellings ([`Dialect::render`]) and a
//! connection to run them on ([`Conn`], implemented by [`impl_conn!`]).

use std::borrow::Cow;

use async_trait::async_trait;

use super::rows::Cols;
use super::*;

/// A bound value.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
    /// A list for `IN_LIST($n)`.
    Ints(Vec<i64>),
    /// A list for `IN_LIST($n)`.
    Texts(Vec<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<u32> for Arg {
    fn from(v: u32) -> Self {
        Arg::Int(Some(v as i64))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_string))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl From<Vec<i64>> for Arg {
    fn from(v: Vec<i64>) -> Self {
        Arg::Ints(v)
    }
}
impl From<Vec<String>> for Arg {
    fn from(v: Vec<String>) -> Self {
        Arg::Texts(v)
    }
}

impl From<DeliveryId> for Arg {
    fn from(v: DeliveryId) -> Self {
        Arg::Int(Some(v.get()))
    }
}
impl From<Option<DeliveryId>> for Arg {
    fn from(v: Option<DeliveryId>) -> Self {
        Arg::Int(v.map(DeliveryId::get))
    }
}
impl From<Vec<DeliveryId>> for Arg {
    fn from(v: Vec<DeliveryId>) -> Self {
        Arg::Ints(v.into_iter().map(DeliveryId::get).collect())
    }
}
impl From<&MessageId> for Arg {
    fn from(v: &MessageId) -> Self {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<MessageId> for Arg {
    fn from(v: MessageId) -> Self {
        Arg::Text(Some(v.into()))
    }
}
impl From<Option<MessageId>> for Arg {
    fn from(v: Option<MessageId>) -> Self {
        Arg::Text(v.map(String::from))
    }
}
impl From<Option<&MessageId>> for Arg {
    fn from(v: Option<&MessageId>) -> Self {
        Arg::Text(v.map(MessageId::to_string))
    }
}
impl From<Vec<MessageId>> for Arg {
    fn from(v: Vec<MessageId>) -> Self {
        Arg::Texts(v.into_iter().map(String::from).collect())
    }
}

impl From<&Target> for Arg {
    fn from(v: &Target) -> Self {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<Option<&Target>> for Arg {
    fn from(v: Option<&Target>) -> Self {
        Arg::Text(v.map(Target::to_string))
    }
}
impl From<Vec<Target>> for Arg {
    fn from(v: Vec<Target>) -> Self {
        Arg::Texts(v.iter().map(Target::to_string).collect())
    }
}

/// Bound values, in placeholder order.
macro_rules! args {
    ($($v:expr),* $(,)?) => { vec![$(Arg::from($v)),*] };
}

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A shared statement in this dialect (see the module docs).
    pub fn render(self, sql: &'static str) -> Cow<'static, str> {
        if !sql.contains("IN_LIST(")
            && !sql.contains("FOR_UPDATE")
            && !sql.contains("COLLATE_BYTES")
        {
            return Cow::Borrowed(sql);
        }
        let mut out = String::with_capacity(sql.len() + 32);
        let mut rest = sql;
        while let Some(i) = rest.find("IN_LIST(") {
            out.push_str(&rest[..i]);
            let after = &rest[i + "IN_LIST(".len()..];
            let end = after.find(')').expect("IN_LIST( is closed");
            let param = &after[..end];
            match self {
                Dialect::Sqlite => {
                    out.push_str("IN (SELECT value FROM json_each(");
                    out.push_str(param);
                    out.push_str("))");
                }
                Dialect::Postgres => {
                    out.push_str("= ANY(");
                    out.push_str(param);
                    out.push(')');
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        let (lock, bytes) = match self {
            Dialect::Sqlite => ("", "COLLATE BINARY"),
            Dialect::Postgres => ("FOR UPDATE", "COLLATE \"C\""),
        };
        Cow::Owned(
            out.replace("FOR_UPDATE", lock)
                .replace("COLLATE_BYTES", bytes),
        )
    }
}

/// A connection (or transaction) the shared queue code runs statements on.
#[async_trait]
pub(super) trait Conn: Send {
    type Row: Cols + Send + Sync;
    /// Run a statement; the number of rows it changed.
    async fn exec(&mut self, sql: &'static str, args: Vec<Arg>) -> Result<u64>;
    /// Run a query; its rows.
    async fn fetch(&mut self, sql: &'static str, args: Vec<Arg>) -> Result<Vec<Self::Row>>;
}

/// [`Conn`] for a backend's connection: `impl_conn!(sqlite, SqliteConnection,
/// Sqlite, SqliteRow)`. Lists bind as JSON text on SQLite, as arrays on
/// PostgreSQL.
macro_rules! impl_conn {
    ($kind:ident, $conn:ty, $db:ty, $row:ty, $dialect:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::sql::Conn for $conn {
            type Row = $row;
            async fn exec(
                &mut self,
                sql: &'static str,
                args: Vec<$crate::store::sql::Arg>,
            ) -> $crate::store::Result<u64> {
                let q = sqlx::query::<$db>(sqlx::AssertSqlSafe($dialect.render(sql)));
                let q = impl_conn!(@bind $kind, q, args);
                Ok(q.execute(&mut *self).await?.rows_affected())
            }
            async fn fetch(
                &mut self,
                sql: &'static str,
                args: Vec<$crate::store::sql::Arg>,
            ) -> $crate::store::Result<Vec<$row>> {
                let q = sqlx::query::<$db>(sqlx::AssertSqlSafe($dialect.render(sql)));
                let q = impl_conn!(@bind $kind, q, args);
                Ok(q.fetch_all(&mut *self).await?)
            }
        }
    };
    (@bind $kind:ident, $q:expr, $args:expr) => {{
        use $crate::store::sql::Arg;
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Int(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Ints(v) => impl_conn!(@list $kind, q, v),
                Arg::Texts(v) => impl_conn!(@list $kind, q, v),
            };
        }
        q
    }};
    (@list sqlite, $q:expr, $v:expr) => {
        $q.bind(serde_json::to_string(&$v).unwrap_or_else(|_| "[]".into()))
    };
    (@list postgres, $q:expr, $v:expr) => {
        $q.bind($v)
    };
}
pub(super) use args;
pub(super) use impl_conn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_render_lists_locks_and_byte_order() {
        let s = "SELECT id FROM deliveries WHERE id IN_LIST($1) AND m IN_LIST($2) FOR_UPDATE";
        assert_eq!(
            Dialect::Sqlite.render(s).trim_end(),
            "SELECT id FROM deliveries WHERE id IN (SELECT value FROM json_each($1)) AND m IN (SELECT value FROM json_each($2))"
        );
        assert_eq!(
            Dialect::Postgres.render(s),
            "SELECT id FROM deliveries WHERE id = ANY($1) AND m = ANY($2) FOR UPDATE"
        );
        assert!(matches!(
            Dialect::Postgres.render("UPDATE deliveries SET state = $2 WHERE id = $1"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            Dialect::Postgres.render("ORDER BY target COLLATE_BYTES"),
            "ORDER BY target COLLATE \"C\""
        );
    }
}
