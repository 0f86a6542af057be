//! The notification a group sends: its newest message, saying how many it
//! stands for and since when.

use imrelay_sdk::message::{Body, Message};
use jiff::tz::TimeZone;

/// The line that says how many messages a notification stands for:
/// `×12 since 10:02 (重复 12 次)`; the date is added when `since` is not on
/// the day of `now` (both in `tz`).
pub fn count_line(count: i64, since_ms: i64, now_ms: i64, tz: &TimeZone) -> String {
    let at = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned_datetime(tz.clone())
    };
    let (since, now) = (at(since_ms), at(now_ms));
    let when = if since.date() == now.date() {
        since.strftime("%H:%M").to_string()
    } else {
        since.strftime("%m-%d %H:%M").to_string()
    };
    format!("×{count} since {when} (重复 {count} 次)")
}

/// `latest` as the notification of a group that folded `count` messages
/// since `since_ms`: unchanged for one, else with [`count_line`] after its
/// text (or its title, when its body has no text of its own).
pub fn notification(
    mut latest: Message,
    count: i64,
    since_ms: i64,
    now_ms: i64,
    tz: &TimeZone,
) -> Message {
    if count <= 1 {
        return latest;
    }
    let line = count_line(count, since_ms, now_ms, tz);
    match &mut latest.body {
        Body::Text { text } | Body::Markdown { text } | Body::Card { text, .. } => {
            text.push_str("\n\n");
            text.push_str(&line);
        }
        _ => {
            latest.title = Some(match latest.title.take() {
                Some(t) => format!("{t} {line}"),
                None => line,
            });
        }
    }
    latest
}

/// One digest of the messages quiet hours held (oldest first): each one's
/// title and text under a header that says how many; mentions of all.
/// A single message goes as it came.
pub fn quiet_digest(mut held: Vec<Message>) -> Option<Message> {
    if held.len() <= 1 {
        return held.pop();
    }
    let mut text = format!(
        "**{} messages held during quiet hours (静默时段内的 {} 条消息)**",
        held.len(),
        held.len()
    );
    let mut mentions = imrelay_sdk::message::Mentions::default();
    for m in &held {
        text.push_str("\n\n---\n\n");
        if let Some(t) = m.title.as_deref().filter(|t| !t.trim().is_empty()) {
            text.push_str(&format!("**{}**\n", t.trim()));
        }
        text.push_str(m.body.main_text().unwrap_or("(no text)"));
        mentions.all |= m.mentions.all;
        for x in &m.mentions.mobiles {
            if !mentions.mobiles.contains(x) {
                mentions.mobiles.push(x.clone());
            }
        }
        for x in &m.mentions.user_ids {
            if !mentions.user_ids.contains(x) {
                mentions.user_ids.push(x.clone());
            }
        }
    }
    Some(
        Message::markdown(format!("Quiet hours digest: {} messages", held.len()), text)
            .with_mentions(mentions),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2025-12-01 02:02 UTC is 10:02 in Asia/Shanghai.
    const T: i64 = 1_764_554_520_000;

    #[test]
    fn the_count_and_the_time_of_the_first() {
        let sh = TimeZone::get("Asia/Shanghai").unwrap();
        assert_eq!(
            count_line(12, T, T + 600_000, &sh),
            "×12 since 10:02 (重复 12 次)"
        );
        assert_eq!(
            count_line(3, T, T + 86_400_000, &sh),
            "×3 since 12-01 10:02 (重复 3 次)"
        );
    }

    #[test]
    fn a_quiet_digest_keeps_every_message() {
        let d = quiet_digest(vec![
            Message::text("backup done").with_title("Backup"),
            Message::text("disk 80%"),
        ])
        .unwrap();
        let Body::Markdown { text } = &d.body else {
            panic!("{d:?}")
        };
        assert!(
            text.starts_with("**2 messages held during quiet hours"),
            "{text}"
        );
        assert!(
            text.contains("**Backup**\nbackup done") && text.ends_with("disk 80%"),
            "{text}"
        );
        let one = Message::text("only");
        assert_eq!(quiet_digest(vec![one.clone()]), Some(one));
        assert_eq!(quiet_digest(vec![]), None);
    }

    #[test]
    fn one_message_goes_as_it_came() {
        let m = Message::text("disk full").with_title("Disk");
        assert_eq!(notification(m.clone(), 1, T, T, &TimeZone::UTC), m);
        let n = notification(m, 2, T, T, &TimeZone::UTC);
        assert_eq!(
            n.body,
            Body::Text {
                text: "disk full\n\n×2 since 02:02 (重复 2 次)".into()
            }
        );
        assert_eq!(n.title.as_deref(), Some("Disk"));
    }
}
