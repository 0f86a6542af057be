//! The web console's sessions and audit trail (migration `0008_console`),
//! one SQL text for both backends.
//!
//! Sessions live in the store so every instance on one PostgreSQL database
//! knows every login and a logout on one ends it on all. A session row is
//! keyed by the SHA-256 of its cookie's value (never the value) and its
//! expiry is checked on every read; retention deletes expired rows and audit
//! rows older than `[console] audit_keep`.
//!
//! Both backends answer one operation, [`ConsoleOp`], through
//! [`Store::console`]; the typed methods on `dyn Store` below wrap it.

use super::rows::Cols;
use super::sql::{args, Arg, Conn};
use super::*;

/// What a session stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A `[[console.users]]` user: the subject is the name.
    User,
    /// An API key: the subject is the SHA-256 (hex) of the key.
    Key,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            SessionKind::User => "user",
            SessionKind::Key => "key",
        }
    }

    fn parse(s: &str) -> Result<SessionKind> {
        match s {
            "user" => Ok(SessionKind::User),
            "key" => Ok(SessionKind::Key),
            other => Err(StoreError::corrupt("console_sessions.kind", other)),
        }
    }
}

/// A stored console session.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub kind: SessionKind,
    /// The user's name, or the SHA-256 (hex) of the API key.
    pub subject: String,
    /// Who, as shown (the user's or the key's name).
    pub name: String,
    /// The token every form of the session carries.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen: i64,
}

impl std::fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// One row of the audit trail. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: i64,
    pub user: String,
    /// `login`, `logout`, `dlq.replay`, `silence.create`, ...
    pub action: String,
    pub object: String,
    /// `ok`, `refused`, or why it failed.
    pub outcome: String,
    /// The client's address, when known.
    pub source: Option<String>,
}

/// Which audit rows to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Exactly this user.
    pub user: Option<String>,
    /// This action, or every action under it (`dlq`: `dlq.replay`, `dlq.purge`).
    pub action: Option<String>,
    pub limit: u32,
}

/// A console operation on the store; see [`Store::console`].
#[derive(Debug, Clone)]
pub enum ConsoleOp {
    /// Keep a new session under `digest` (SHA-256 of the cookie's value).
    OpenSession {
        digest: [u8; 32],
        session: ConsoleSession,
    },
    /// The session under `digest`, unless it expired by `now`.
    Session { digest: [u8; 32], now: i64 },
    /// Note that the session was used at `now`.
    Touch { digest: [u8; 32], now: i64 },
    /// End the session under `digest` (logout).
    CloseSession { digest: [u8; 32] },
    /// Add a row to the audit trail.
    Audit(AuditEntry),
    /// The newest audit rows that `filter` selects.
    AuditLog(AuditFilter),
    /// Delete sessions expired by `now` and audit rows older than
    /// `audit_before`.
    Prune { now: i64, audit_before: i64 },
}

impl ConsoleOp {
    /// Whether it only reads (a backend may run it outside its writer).
    pub fn reads_only(&self) -> bool {
        matches!(self, ConsoleOp::Session { .. } | ConsoleOp::AuditLog(_))
    }
}

/// What a [`ConsoleOp`] answers.
#[derive(Debug, Clone)]
pub enum ConsoleAnswer {
    /// Rows changed.
    Done(u64),
    Session(Option<ConsoleSession>),
    Audit(Vec<AuditEntry>),
}

/// Run `op` (both backends).
pub(super) async fn run<C: Conn>(c: &mut C, op: ConsoleOp) -> Result<ConsoleAnswer> {
    Ok(match op {
        ConsoleOp::OpenSession { digest, session: s } => ConsoleAnswer::Done(
            c.exec(
                "INSERT INTO console_sessions (digest, kind, subject, name, csrf, created_at, expires_at, last_seen)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $6)",
                args![
                    hex::encode(digest),
                    s.kind.as_str(),
                    &s.subject,
                    &s.name,
                    &s.csrf,
                    s.created_at,
                    s.expires_at
                ],
            )
            .await?,
        ),
        ConsoleOp::Session { digest, now } => ConsoleAnswer::Session(session(c, digest, now).await?),
        ConsoleOp::Touch { digest, now } => ConsoleAnswer::Done(
            c.exec(
                "UPDATE console_sessions SET last_seen = $2 WHERE digest = $1 AND last_seen < $2",
                args![hex::encode(digest), now],
            )
            .await?,
        ),
        ConsoleOp::CloseSession { digest } => ConsoleAnswer::Done(
            c.exec(
                "DELETE FROM console_sessions WHERE digest = $1",
                args![hex::encode(digest)],
            )
            .await?,
        ),
        ConsoleOp::Audit(e) => ConsoleAnswer::Done(
            c.exec(
                "INSERT INTO console_audit (at, user_name, action, object, outcome, source)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                args![e.at, e.user, e.action, e.object, e.outcome, e.source],
            )
            .await?,
        ),
        ConsoleOp::AuditLog(f) => ConsoleAnswer::Audit(audit_log(c, f).await?),
        ConsoleOp::Prune { now, audit_before } => {
            let sessions = c
                .exec(
                    "DELETE FROM console_sessions WHERE expires_at <= $1",
                    args![now],
                )
                .await?;
            let audit = c
                .exec(
                    "DELETE FROM console_audit WHERE at < $1",
                    args![audit_before],
                )
                .await?;
            ConsoleAnswer::Done(sessions + audit)
        }
    })
}

/// The live session with this digest, if any.
async fn session<C: Conn>(c: &mut C, digest: [u8; 32], now: i64) -> Result<Option<ConsoleSession>> {
    let rows = c
        .fetch(
            "SELECT kind, subject, name, csrf, created_at, expires_at, last_seen
             FROM console_sessions WHERE digest = $1 AND expires_at > $2",
            args![hex::encode(digest), now],
        )
        .await?;
    let s = rows
        .first()
        .map(|r| {
            Ok::<_, StoreError>(ConsoleSession {
                kind: SessionKind::parse(&r.text("kind")?)?,
                subject: r.text("subject")?,
                name: r.text("name")?,
                csrf: r.text("csrf")?,
                created_at: r.int("created_at")?,
                expires_at: r.int("expires_at")?,
                last_seen: r.int("last_seen")?,
            })
        })
        .transpose()?;
    Ok(s)
}

/// The newest audit rows that pass the filter.
async fn audit_log<C: Conn>(c: &mut C, f: AuditFilter) -> Result<Vec<AuditEntry>> {
    // '' selects everything: one text for both dialects, no untyped NULL.
    let action = f.action.unwrap_or_default();
    let rows = c
        .fetch(
            "SELECT at, user_name, action, object, outcome, source FROM console_audit
             WHERE ($1 = '' OR user_name = $1)
               AND ($2 = '' OR action = $2 OR action LIKE $3)
             ORDER BY at DESC, id DESC LIMIT $4",
            args![
                f.user.unwrap_or_default(),
                action.clone(),
                format!("{}.%", without_wildcards(&action)),
                f.limit.max(1)
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                at: r.int("at")?,
                user: r.text("user_name")?,
                action: r.text("action")?,
                object: r.text("object")?,
                outcome: r.text("outcome")?,
                source: r.opt_text("source")?,
            })
        })
        .collect()
}

/// `s` without LIKE's wildcards (no action has any; the dialects escape
/// them differently).
fn without_wildcards(s: &str) -> String {
    s.replace(['%', '_'], "")
}

fn unexpected(op: &str) -> StoreError {
    StoreError::Internal(format!("the store answered {op} with something else"))
}

/// The console's typed view of [`Store::console`].
impl dyn Store {
    /// Keep a new session under `digest`.
    pub async fn open_console_session(
        &self,
        digest: [u8; 32],
        session: ConsoleSession,
    ) -> Result<()> {
        self.console(ConsoleOp::OpenSession { digest, session })
            .await
            .map(|_| ())
    }

    /// The live session under `digest`.
    pub async fn console_session(&self, digest: [u8; 32]) -> Result<Option<ConsoleSession>> {
        let now = self.now_ms();
        match self.console(ConsoleOp::Session { digest, now }).await? {
            ConsoleAnswer::Session(s) => Ok(s),
            _ => Err(unexpected("a session read")),
        }
    }

    /// Note that the session under `digest` was used now.
    pub async fn touch_console_session(&self, digest: [u8; 32]) -> Result<()> {
        let now = self.now_ms();
        self.console(ConsoleOp::Touch { digest, now })
            .await
            .map(|_| ())
    }

    /// End the session under `digest`; whether it existed.
    pub async fn close_console_session(&self, digest: [u8; 32]) -> Result<bool> {
        match self.console(ConsoleOp::CloseSession { digest }).await? {
            ConsoleAnswer::Done(n) => Ok(n > 0),
            _ => Err(unexpected("a logout")),
        }
    }

    /// Add a row to the audit trail.
    pub async fn audit(&self, entry: AuditEntry) -> Result<()> {
        self.console(ConsoleOp::Audit(entry)).await.map(|_| ())
    }

    /// The newest audit rows `filter` selects, newest first.
    pub async fn audit_log(&self, filter: AuditFilter) -> Result<Vec<AuditEntry>> {
        match self.console(ConsoleOp::AuditLog(filter)).await? {
            ConsoleAnswer::Audit(rows) => Ok(rows),
            _ => Err(unexpected("an audit read")),
        }
    }

    /// Delete sessions expired by `now` and audit rows older than
    /// `audit_before`; how many rows went.
    pub async fn prune_console(&self, now: i64, audit_before: i64) -> Result<u64> {
        match self.console(ConsoleOp::Prune { now, audit_before }).await? {
            ConsoleAnswer::Done(n) => Ok(n),
            _ => Err(unexpected("a prune")),
        }
    }
}
