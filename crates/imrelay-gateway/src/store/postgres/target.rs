//! A PostgreSQL store URL: parsing, checks, redaction, and the schema.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use super::super::{Result, StoreError};

/// Whether a store URL names PostgreSQL.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// `url` with any password replaced by `***` (for Debug and logs).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "<unparsable URL>".to_string(),
    }
}

/// What is wrong with a `store.url`, if anything (for config checks: no
/// connection is made).
pub fn check_url(url: &str) -> Option<String> {
    if !is_postgres_url(url) {
        return Some("must be a postgres:// URL; for SQLite, set `store.path` instead".to_string());
    }
    PgTarget::parse(url).err().map(|e| {
        let text = e.to_string();
        match text.split_once("`store.url`: ") {
            Some((_, rest)) => rest.to_string(),
            None => text,
        }
    })
}

/// A parsed PostgreSQL store URL.
#[derive(Clone)]
pub struct PgTarget {
    /// Connection options, with `search_path` set to the schema when one was
    /// named.
    pub options: PgConnectOptions,
    /// The `schema=` parameter, if any.
    pub schema: Option<String>,
    /// `host:port/database`, for messages (never the password).
    pub display: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("display", &self.display)
            .field("schema", &self.schema)
            .finish()
    }
}

impl PgTarget {
    /// Parse `postgres://...[?schema=name]`. Errors name `store.url` and never
    /// repeat the password.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |why: String| StoreError::Invalid(format!("`store.url`: {why}"));
        let mut u =
            url::Url::parse(url).map_err(|e| bad(format!("not a valid postgres:// URL ({e})")))?;
        let mut schema = None;
        let rest: Vec<(String, String)> = u
            .query_pairs()
            .filter_map(|(k, v)| {
                if k == "schema" {
                    schema = Some(v.into_owned());
                    None
                } else {
                    Some((k.into_owned(), v.into_owned()))
                }
            })
            .collect();
        if rest.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(rest);
        }
        if let Some(s) = &schema {
            let ok = !s.is_empty()
                && s.len() <= 48
                && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(bad(format!(
                    "schema `{s}` must be 1-48 characters of a-z, 0-9 and _, starting with a letter or _"
                )));
            }
        }
        let display = format!(
            "{}:{}{}",
            u.host_str().unwrap_or("localhost"),
            u.port().unwrap_or(5432),
            u.path()
        );
        let mut options = PgConnectOptions::from_str(u.as_str())
            .map_err(|e| bad(format!("cannot use the URL for {display}: {e}")))?
            .application_name("imrelay");
        if let Some(s) = &schema {
            options = options.options([("search_path", s.as_str())]);
        }
        Ok(PgTarget {
            options,
            schema,
            display,
        })
    }

    /// The `LISTEN`/`NOTIFY` channel of this schema's queue.
    pub fn wake_channel(&self) -> String {
        format!(
            "imrelay_wake_{}",
            self.schema.as_deref().unwrap_or("default")
        )
    }

    /// Check the server answers; create the schema if named and missing
    /// (several instances may race).
    pub(super) async fn ensure_schema(&self) -> Result<()> {
        let mut base = self.options.clone();
        // Connect without our search_path: the schema may not exist yet. This
        // first connection also fails fast (the pool would retry for seconds)
        // when the server is down.
        base = base.options([("search_path", "public")]);
        let mut c = base.connect().await.map_err(|e| self.connect_error(e))?;
        let Some(s) = &self.schema else {
            let _ = c.close().await;
            return Ok(());
        };
        let exists: Option<(i32,)> =
            sqlx::query_as("SELECT 1 FROM pg_namespace WHERE nspname = $1")
                .bind(s)
                .fetch_optional(&mut c)
                .await?;
        if exists.is_some() {
            let _ = c.close().await;
            return Ok(());
        }
        // `s` is validated to [a-z0-9_], so quoting is enough.
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{s}\""
        )))
        .execute(&mut c)
        .await;
        if let Err(e) = r {
            // A sibling created it at the same moment: fine.
            let dup = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "23505" || c == "42P06");
            if !dup {
                return Err(e.into());
            }
        }
        let _ = c.close().await;
        Ok(())
    }

    pub(super) fn connect_error(&self, e: sqlx::Error) -> StoreError {
        StoreError::Connect {
            what: format!(
                "cannot connect to PostgreSQL at {} (`store.url`; is the server running and the URL right?)",
                self.display
            ),
            source: Arc::new(e),
        }
    }

    /// A pool on this target (lazy: connects on first use).
    pub fn lazy_pool(&self, max: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            // No maintenance tasks, so this works outside a runtime too.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(self.options.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_schema_is_split_off_and_checked() {
        let t = PgTarget::parse(
            "postgres://postgres:pw@127.0.0.1:5433/test?schema=imr_1&sslmode=disable",
        )
        .unwrap();
        assert_eq!(t.schema.as_deref(), Some("imr_1"));
        assert_eq!(t.display, "127.0.0.1:5433/test");
        assert_eq!(t.wake_channel(), "imrelay_wake_imr_1");
        assert!(!format!("{t:?}").contains("pw"));
        let err = PgTarget::parse("postgres://u:secretpw@h/db?schema=Bad;drop")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`store.url`") && err.contains("schema"),
            "{err}"
        );
        assert!(!err.contains("secretpw"), "{err}");
        assert_eq!(
            PgTarget::parse("postgres://h/db").unwrap().wake_channel(),
            "imrelay_wake_default"
        );
        assert_eq!(
            redact_url("postgres://u:hunter2@h:5432/db?schema=a"),
            "postgres://u:***@h:5432/db?schema=a"
        );
        assert_eq!(check_url("postgresql://h/db?schema=a_1"), None);
        assert!(check_url("sqlite://x.db").unwrap().contains("store.path"));
        assert!(check_url("postgres://h/db?schema=A")
            .unwrap()
            .contains("schema"));
    }
}
