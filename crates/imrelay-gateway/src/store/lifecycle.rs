//! The SQL of a message's life after it is sent, shared by both backends:
//! the parts a thread's root delivered (to update or recall them), whether
//! an update is stale, acknowledgements.

use imrelay_sdk::SentPart;

use super::rows::{self, Cols};
use super::sql::{args, Arg, Conn};
use super::*;

/// Every part `message` delivered, with the target it went to, oldest first.
/// A part delivered twice (a retry after a lost answer on a platform without
/// dedup) counts once: the last answer names the message people see.
pub(super) async fn sent_parts<C: Conn>(
    c: &mut C,
    message: &str,
) -> Result<Vec<(String, SentPartRecord)>> {
    let rows = c
        .fetch(
            "SELECT d.target, a.recipients, a.destination, a.part, a.platform_message_id, a.update_token,
               a.finished_at
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.message_id = $1 AND a.platform_message_id IS NOT NULL ORDER BY a.id",
            args![message],
        )
        .await?;
    let mut out: Vec<(String, SentPartRecord)> = Vec::new();
    for r in &rows {
        let target = r.text("target")?;
        let record = SentPartRecord {
            destination: r.text("destination")?,
            part: r.int("part")? as u32,
            sent: SentPart {
                platform_message_id: r.text("platform_message_id")?,
                update_token: newest_token(r.opt_text("update_token")?),
                sent_at_ms: r.int("finished_at")?,
                recipients: rows::parse_recipients(r.opt_text("recipients")?),
            },
        };
        let same = |(t, p): &(String, SentPartRecord)| {
            *t == target
                && p.destination == record.destination
                && p.part == record.part
                && p.sent.recipients == record.sent.recipients
        };
        match out.iter_mut().find(|e| same(e)) {
            Some(e) => e.1 = record,
            None => out.push((target, record)),
        }
    }
    Ok(out)
}

/// Whether a later message of the thread rooted at `root` goes to `target`
/// and is not dead: an update at `seq` gives way to it, so a stale update
/// never overwrites a newer one.
pub(super) async fn superseded<C: Conn>(
    c: &mut C,
    root: &str,
    seq: i64,
    target: &str,
) -> Result<bool> {
    let rows = c
        .fetch(
            "SELECT 1 AS found FROM messages m JOIN deliveries d ON d.message_id = m.id
             WHERE m.thread_root = $1 AND m.thread_seq > $2 AND d.target = $3 AND d.state <> 'dead'
             LIMIT 1",
            args![root, seq, target],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// The newest message of the thread rooted at `root` (the root itself when
/// nothing followed it).
pub(super) async fn thread_latest<C: Conn>(c: &mut C, root: &str) -> Result<Option<MessageId>> {
    let rows = c
        .fetch(
            "SELECT id FROM messages WHERE thread_root = $1 AND kind <> 'recall'
             ORDER BY thread_seq DESC LIMIT 1",
            args![root],
        )
        .await?;
    rows.first().map(|r| r.message_id("id")).transpose()
}

/// Put message `id` in a thread of its own (key = its id) unless it has one;
/// its thread key, `None` when there is no such message.
pub(super) async fn adopt_thread<C: Conn>(c: &mut C, id: &str, now: i64) -> Result<Option<String>> {
    let rows = c
        .fetch(
            "SELECT channel, thread FROM messages WHERE id = $1",
            args![id],
        )
        .await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    if let Some(key) = r.opt_text("thread")? {
        return Ok(Some(key));
    }
    let channel = r.text("channel")?;
    c.exec(
        "INSERT INTO threads (channel, thread, root, seq, created_at) VALUES ($1, $2, $2, 1, $3)
         ON CONFLICT (channel, thread) DO NOTHING",
        args![&channel, id, now],
    )
    .await?;
    c.exec(
        "UPDATE messages SET thread = $1, thread_root = $1, thread_seq = 1 WHERE id = $1 AND thread IS NULL",
        args![id],
    )
    .await?;
    Ok(Some(id.to_string()))
}

/// Record an acknowledgement on the thread rooted at `root`.
pub(super) async fn insert_ack<C: Conn>(c: &mut C, root: &str, ack: &Ack) -> Result<()> {
    let detail = ack.detail.as_ref().map(serde_json::Value::to_string);
    c.exec(
        "INSERT INTO acks (root, action, user_id, user_name, source, detail, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![
            root,
            ack.action.as_str(),
            &ack.user_id,
            ack.user_name.clone(),
            &ack.source,
            detail,
            ack.at
        ],
    )
    .await?;
    Ok(())
}

/// The acknowledgements of the thread rooted at `root`, oldest first.
pub(super) async fn acks<C: Conn>(c: &mut C, root: &str) -> Result<Vec<Ack>> {
    let rows = c
        .fetch(
            "SELECT action, user_id, user_name, source, detail, at FROM acks WHERE root = $1 ORDER BY id",
            args![root],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Ack {
                action: AckAction::parse(&r.text("action")?)?,
                user_id: r.text("user_id")?,
                user_name: r.opt_text("user_name")?,
                source: r.text("source")?,
                detail: r
                    .opt_text("detail")?
                    .map(|d| {
                        serde_json::from_str(&d).map_err(|_| StoreError::corrupt("acks.detail", d))
                    })
                    .transpose()?,
                at: r.int("at")?,
            })
        })
        .collect()
}

/// Add an update token a callback handed out to a sent part's unused ones
/// (newline-separated, oldest first: each is good for one update).
pub(super) async fn set_update_token<C: Conn>(
    c: &mut C,
    platform_message_id: &str,
    token: &str,
) -> Result<()> {
    rewrite_tokens(c, platform_message_id, |tokens| {
        if !tokens.iter().any(|t| t == token) {
            tokens.push(token.to_string());
        }
    })
    .await
}

/// Remove a used update token from a sent part's unused ones.
pub(super) async fn spend_update_token<C: Conn>(
    c: &mut C,
    platform_message_id: &str,
    token: &str,
) -> Result<()> {
    rewrite_tokens(c, platform_message_id, |tokens| {
        tokens.retain(|t| t != token)
    })
    .await
}

/// Change the unused update tokens of every attempt that delivered
/// `platform_message_id` (stored newline-separated, oldest first).
async fn rewrite_tokens<C: Conn>(
    c: &mut C,
    platform_message_id: &str,
    change: impl Fn(&mut Vec<String>),
) -> Result<()> {
    let rows = c
        .fetch(
            "SELECT id, update_token FROM attempts WHERE platform_message_id = $1",
            args![platform_message_id],
        )
        .await?;
    for r in &rows {
        let stored = r.opt_text("update_token")?.unwrap_or_default();
        let mut tokens: Vec<String> = stored
            .lines()
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        change(&mut tokens);
        c.exec(
            "UPDATE attempts SET update_token = $2 WHERE id = $1",
            args![
                r.int("id")?,
                (!tokens.is_empty()).then(|| tokens.join("\n"))
            ],
        )
        .await?;
    }
    Ok(())
}

/// The newest unused update token of a part, from the stored list.
pub(super) fn newest_token(stored: Option<String>) -> Option<String> {
    stored?
        .lines()
        .rev()
        .find(|t| !t.is_empty())
        .map(str::to_string)
}

/// Take the lease on updating the card of `root` at `target` until `until`
/// (ms), unless another owner holds an unexpired one; whether it was taken.
pub(super) async fn lock_thread<C: Conn>(
    c: &mut C,
    root: &str,
    target: &str,
    owner: &str,
    until: i64,
    now: i64,
) -> Result<bool> {
    let rows = c
        .fetch(
            "INSERT INTO thread_locks (root, target, owner, until) VALUES ($1, $2, $3, $4)
             ON CONFLICT (root, target) DO UPDATE SET owner = excluded.owner, until = excluded.until
             WHERE thread_locks.until < $5 OR thread_locks.owner = excluded.owner
             RETURNING owner",
            args![root, target, owner, until, now],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Give the lease back (only `owner`'s).
pub(super) async fn unlock_thread<C: Conn>(
    c: &mut C,
    root: &str,
    target: &str,
    owner: &str,
) -> Result<()> {
    c.exec(
        "DELETE FROM thread_locks WHERE root = $1 AND target = $2 AND owner = $3",
        args![root, target, owner],
    )
    .await?;
    Ok(())
}
