//! The SQL of silences, shared by both backends.

use super::rows::Cols;
use super::sql::{args, Arg, Conn};
use super::*;

/// Create or replace a silence.
pub(super) async fn put<C: Conn>(c: &mut C, s: &Silence) -> Result<()> {
    let matchers = serde_json::to_string(&s.matchers)
        .map_err(|e| StoreError::Invalid(format!("matchers: {e}")))?;
    c.exec(
        "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers, starts_at = excluded.starts_at,
           ends_at = excluded.ends_at, created_by = excluded.created_by, comment = excluded.comment,
           updated_at = excluded.updated_at",
        args![
            &s.id,
            matchers,
            s.starts_at,
            s.ends_at,
            &s.created_by,
            &s.comment,
            s.updated_at
        ],
    )
    .await?;
    Ok(())
}

/// Every silence, newest first.
pub(super) async fn list<C: Conn>(c: &mut C) -> Result<Vec<Silence>> {
    let rows = c
        .fetch(
            "SELECT id, matchers, starts_at, ends_at, created_by, comment, updated_at FROM silences
             ORDER BY starts_at DESC, id",
            vec![],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let m = r.text("matchers")?;
            Ok(Silence {
                id: r.text("id")?,
                matchers: serde_json::from_str(&m)
                    .map_err(|_| StoreError::corrupt("silences.matchers", m))?,
                starts_at: r.int("starts_at")?,
                ends_at: r.int("ends_at")?,
                created_by: r.text("created_by")?,
                comment: r.text("comment")?,
                updated_at: r.int("updated_at")?,
            })
        })
        .collect()
}

/// End silence `id` now (unless it ended already); its held deliveries that
/// `release` selects become pending, due now. `None` when there is no such
/// silence; else how many it released.
pub(super) async fn expire<C: Conn>(
    c: &mut C,
    id: &str,
    now: i64,
    release: &Release,
) -> Result<Option<u64>> {
    let n = c
        .exec(
            "UPDATE silences SET ends_at = CASE WHEN ends_at > $2 THEN $2 ELSE ends_at END, updated_at = $2
             WHERE id = $1",
            args![id, now],
        )
        .await?;
    if n == 0 {
        return Ok(None);
    }
    let released = match release {
        Release::None => 0,
        Release::All => {
            c.exec(
                "UPDATE deliveries SET state = 'pending', due_at = $2, updated_at = $2, silence_id = NULL
                 WHERE silence_id = $1 AND state = 'silenced'",
                args![id, now],
            )
            .await?
        }
        Release::Channels(list) if list.is_empty() => 0,
        Release::Channels(list) => {
            c.exec(
                "UPDATE deliveries SET state = 'pending', due_at = $2, updated_at = $2, silence_id = NULL
                 WHERE silence_id = $1 AND state = 'silenced'
                   AND message_id IN (SELECT id FROM messages WHERE channel IN_LIST($3))",
                args![id, now, list.clone()],
            )
            .await?
        }
    };
    Ok(Some(released))
}
