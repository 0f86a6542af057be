//! What a card shows after people act on it: a line per acknowledgement,
//! silence or resolution, and only the buttons still worth pressing; and how
//! an update that cannot edit the card in place refers to the first message.

use imrelay_sdk::lifecycle::Action;
use imrelay_sdk::message::Body;
use imrelay_sdk::Message;
use jiff::tz::TimeZone;

use crate::store::{Ack, AckAction};

/// The line a card shows for `ack`, with times in `tz`.
pub fn ack_line(ack: &Ack, tz: &TimeZone) -> String {
    let at = clock(ack.at, tz);
    let who = ack.who();
    match ack.action {
        AckAction::Ack => format!("✅ 已认领 Acknowledged by {who} {at}"),
        AckAction::Resolve => format!("☑️ 已解决 Resolved by {who} {at}"),
        AckAction::Silence => {
            let until = ack
                .detail
                .as_ref()
                .and_then(|d| d.get("ends_at_ms"))
                .and_then(serde_json::Value::as_i64)
                .map(|ms| clock(ms, tz))
                .unwrap_or_else(|| "?".into());
            let id = ack
                .detail
                .as_ref()
                .and_then(|d| d.get("silence_id"))
                .and_then(serde_json::Value::as_str)
                .map(|id| format!(" (silence {id})"))
                .unwrap_or_default();
            format!("🔕 已静默至 Silenced until {until} by {who} {at}{id}")
        }
    }
}

fn clock(ms: i64, tz: &TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .and_then(|t| {
            jiff::fmt::strtime::format("%m-%d %H:%M", &t.to_zoned_datetime(tz.clone())).ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// Show `acks` on `msg`: their lines under its text, and its actions minus
/// those already done (no "acknowledge" once acknowledged, none at all once
/// resolved).
pub fn annotate(msg: &mut Message, acks: &[Ack], tz: &TimeZone) {
    if acks.is_empty() {
        return;
    }
    let lines: Vec<String> = acks.iter().map(|a| ack_line(a, tz)).collect();
    append_text(&mut msg.body, &lines.join("\n"));
    let done = |a: AckAction| acks.iter().any(|x| x.action == a);
    msg.actions
        .retain(|a: &Action| match ActionKind::of(&a.id) {
            _ if done(AckAction::Resolve) => false,
            Some(ActionKind::Ack) => !done(AckAction::Ack),
            Some(ActionKind::Silence(_)) => !done(AckAction::Silence),
            _ => true,
        });
}

/// Make `msg` a new message that says which earlier one it updates (where the
/// destination cannot edit the first in place).
pub fn quote(msg: &mut Message, first_title: Option<&str>, first_sent_ms: i64, tz: &TimeZone) {
    let what = first_title.unwrap_or("the earlier message");
    let line = format!("↪ 更新 Update of “{what}” ({})", clock(first_sent_ms, tz));
    prepend_text(&mut msg.body, &line);
}

fn append_text(body: &mut Body, extra: &str) {
    match body {
        Body::Text { text } => {
            text.push_str("\n\n");
            text.push_str(extra);
        }
        Body::Markdown { text } | Body::Card { text, .. } => {
            text.push_str("\n\n---\n");
            // One markdown paragraph per line.
            text.push_str(&extra.replace('\n', "\n\n"));
        }
        Body::Link { text, .. } => {
            text.push('\n');
            text.push_str(extra);
        }
        // No text to add to: the platform's own content stays as sent.
        _ => {}
    }
}

fn prepend_text(body: &mut Body, line: &str) {
    match body {
        Body::Text { text } | Body::Link { text, .. } => *text = format!("{line}\n{text}"),
        Body::Markdown { text } | Body::Card { text, .. } => *text = format!("> {line}\n\n{text}"),
        _ => {}
    }
}

/// What a card button does, parsed from its [`Action::id`]: `ack`,
/// `silence:1h` (any humantime duration), `resolve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    Ack,
    Silence(std::time::Duration),
    Resolve,
}

impl ActionKind {
    pub fn of(id: &str) -> Option<ActionKind> {
        match id {
            "ack" => Some(ActionKind::Ack),
            "resolve" => Some(ActionKind::Resolve),
            _ => {
                let d = id.strip_prefix("silence:")?;
                humantime::parse_duration(d)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .map(ActionKind::Silence)
            }
        }
    }

    /// The [`Action::id`] of this kind.
    pub fn id(self) -> String {
        match self {
            ActionKind::Ack => "ack".into(),
            ActionKind::Resolve => "resolve".into(),
            ActionKind::Silence(d) => format!("silence:{}", humantime::format_duration(d)),
        }
    }

    pub fn ack_action(self) -> AckAction {
        match self {
            ActionKind::Ack => AckAction::Ack,
            ActionKind::Silence(_) => AckAction::Silence,
            ActionKind::Resolve => AckAction::Resolve,
        }
    }

    /// The button's label, Chinese first.
    pub fn label(self) -> String {
        match self {
            ActionKind::Ack => "认领 Acknowledge".into(),
            ActionKind::Resolve => "已解决 Resolve".into(),
            ActionKind::Silence(d) => format!("静默 Silence {}", humantime::format_duration(d)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imrelay_sdk::lifecycle::ActionStyle;
    use serde_json::json;

    fn action(id: &str) -> Action {
        Action {
            id: id.into(),
            text: id.into(),
            style: ActionStyle::Default,
        }
    }

    fn ack(action: AckAction, at: i64) -> Ack {
        Ack {
            action,
            user_id: "ou_1".into(),
            user_name: Some("张三".into()),
            source: "feishu".into(),
            detail: (action == AckAction::Silence)
                .then(|| json!({"silence_id": "s-1", "ends_at_ms": at + 3_600_000})),
            at,
        }
    }

    fn card() -> Message {
        Message::new(Body::Card {
            text: "**CPU high** on db-1".into(),
            buttons: vec![],
            theme: Some("red".into()),
        })
        .with_actions(vec![action("ack"), action("silence:1h"), action("resolve")])
    }

    #[test]
    fn an_acknowledged_card_says_who_and_when_and_drops_the_ack_button() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        let mut m = card();
        // 2026-12-01T03:12:00+08:00
        annotate(&mut m, &[ack(AckAction::Ack, 1_764_529_920_000)], &tz);
        let Body::Card { text, .. } = &m.body else {
            panic!()
        };
        assert!(text.starts_with("**CPU high** on db-1"), "{text}");
        assert!(
            text.contains("已认领 Acknowledged by 张三 12-01 03:12"),
            "{text}"
        );
        let ids: Vec<&str> = m.actions.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["silence:1h", "resolve"]);
    }

    #[test]
    fn a_silence_shows_its_end_and_id_and_a_resolution_removes_every_button() {
        let tz = TimeZone::UTC;
        let mut m = card();
        annotate(
            &mut m,
            &[ack(AckAction::Silence, 0), ack(AckAction::Resolve, 60_000)],
            &tz,
        );
        let Body::Card { text, .. } = &m.body else {
            panic!()
        };
        assert!(
            text.contains("Silenced until 01-01 01:00 by 张三 01-01 00:00 (silence s-1)"),
            "{text}"
        );
        assert!(text.contains("Resolved by 张三 01-01 00:01"), "{text}");
        assert!(m.actions.is_empty());
    }

    #[test]
    fn no_acks_change_nothing() {
        let mut m = card();
        annotate(&mut m, &[], &TimeZone::UTC);
        assert_eq!(m, card());
    }

    #[test]
    fn action_ids_parse_and_bad_ones_are_not_actions() {
        assert_eq!(ActionKind::of("ack"), Some(ActionKind::Ack));
        assert_eq!(
            ActionKind::of("silence:4h"),
            Some(ActionKind::Silence(std::time::Duration::from_secs(
                4 * 3600
            )))
        );
        assert_eq!(ActionKind::of("silence:0s"), None);
        assert_eq!(ActionKind::of("silence:soon"), None);
        assert_eq!(ActionKind::of("reboot"), None);
    }

    #[test]
    fn a_quoted_update_names_the_first_message() {
        let mut m = Message::markdown("t", "resolved");
        quote(&mut m, Some("CPU high"), 0, &TimeZone::UTC);
        let Body::Markdown { text } = &m.body else {
            panic!()
        };
        assert_eq!(
            text,
            "> ↪ 更新 Update of “CPU high” (01-01 00:00)\n\nresolved"
        );
    }
}
