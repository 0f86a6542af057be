//! Coalescing: folding a backlog of messages to one rate-limited destination
//! into digests. A digest keeps every original's content and id, so nothing is
//! lost by merging; delivering it settles every merged message.

use imrelay_sdk::message::{Body, Mentions, Message};

use crate::store::{DeliveryId, MessageId};

/// One message that may be merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub delivery_id: DeliveryId,
    pub message_id: MessageId,
    pub message: Message,
}

/// A planned digest: its members and the message that carries them.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    pub members: Vec<DeliveryId>,
    pub message: Message,
}

/// The text of one original inside a digest, or `None` when the message cannot
/// be expressed as text faithfully (raw platform JSON, images).
pub fn section(id: &str, msg: &Message) -> Option<String> {
    let mut out = String::new();
    match &msg.title {
        Some(t) if !t.trim().is_empty() => out.push_str(&format!("**{}** (id {id})\n", t.trim())),
        _ => out.push_str(&format!("(id {id})\n")),
    }
    match &msg.body {
        Body::Text { text } | Body::Markdown { text } => out.push_str(text),
        Body::Link { text, url, .. } => out.push_str(&format!("{text}\n{url}")),
        Body::Card { text, buttons, .. } => {
            out.push_str(text);
            for b in buttons {
                out.push_str(&format!("\n[{}]({})", b.text, b.url));
            }
        }
        Body::News { articles } => {
            for (i, a) in articles.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(&format!("[{}]({})", a.title, a.url));
                if let Some(d) = &a.description {
                    out.push_str(&format!(" {d}"));
                }
            }
        }
        Body::Template { data, url, .. } => {
            let lines: Vec<String> = data.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            out.push_str(&lines.join("\n"));
            if let Some(u) = url {
                out.push_str(&format!("\n{u}"));
            }
        }
        Body::Image { .. } | Body::Raw { .. } => return None,
    }
    Some(out)
}

const SEPARATOR: &str = "\n\n---\n\n";

fn header(n: usize) -> String {
    format!(
        "**{n} messages merged into one digest because the destination's rate limit was reached**"
    )
}

fn merge_mentions(into: &mut Mentions, from: &Mentions) {
    into.all |= from.all;
    for m in &from.mobiles {
        if !into.mobiles.contains(m) {
            into.mobiles.push(m.clone());
        }
    }
    for u in &from.user_ids {
        if !into.user_ids.contains(u) {
            into.user_ids.push(u.clone());
        }
    }
}

/// Plan digests from `candidates` (oldest first). Messages are grouped with
/// others of the same recipients, in order, up to `max_bytes` of text per
/// digest. Returns the digests (each with at least two members) and the
/// candidates left as they are (not expressible as text, too large alone, or
/// without a partner).
pub fn plan(candidates: Vec<Candidate>, max_bytes: usize) -> (Vec<Digest>, Vec<Candidate>) {
    let mut digests = Vec::new();
    let mut left = Vec::new();
    // Open groups by recipients: (recipients, members, sections, mentions, bytes).
    struct Group {
        recipients: Vec<String>,
        members: Vec<Candidate>,
        sections: Vec<String>,
        mentions: Mentions,
        bytes: usize,
    }
    let header_room = header(9999).len() + SEPARATOR.len();
    let mut groups: Vec<Group> = Vec::new();
    let close = |g: Group, digests: &mut Vec<Digest>, left: &mut Vec<Candidate>| {
        if g.members.len() < 2 {
            left.extend(g.members);
            return;
        }
        let mut text = header(g.members.len());
        for s in &g.sections {
            text.push_str(SEPARATOR);
            text.push_str(s);
        }
        let mut message =
            Message::markdown(format!("Digest of {} messages", g.members.len()), text)
                .with_mentions(g.mentions);
        message.recipients = g.recipients;
        digests.push(Digest {
            members: g.members.iter().map(|c| c.delivery_id).collect(),
            message,
        });
    };
    for c in candidates {
        let Some(sec) = section(&c.message_id, &c.message) else {
            left.push(c);
            continue;
        };
        let cost = sec.len() + SEPARATOR.len();
        if cost + header_room > max_bytes {
            left.push(c);
            continue;
        }
        let idx = match groups
            .iter()
            .position(|g| g.recipients == c.message.recipients)
        {
            Some(i) if groups[i].bytes + cost <= max_bytes => i,
            Some(i) => {
                let g = groups.remove(i);
                close(g, &mut digests, &mut left);
                groups.push(Group {
                    recipients: c.message.recipients.clone(),
                    members: Vec::new(),
                    sections: Vec::new(),
                    mentions: Mentions::default(),
                    bytes: header_room,
                });
                groups.len() - 1
            }
            None => {
                groups.push(Group {
                    recipients: c.message.recipients.clone(),
                    members: Vec::new(),
                    sections: Vec::new(),
                    mentions: Mentions::default(),
                    bytes: header_room,
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[idx];
        g.bytes += cost;
        merge_mentions(&mut g.mentions, &c.message.mentions);
        g.sections.push(sec);
        g.members.push(c);
    }
    for g in groups {
        close(g, &mut digests, &mut left);
    }
    (digests, left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(i: i64, msg: Message) -> Candidate {
        Candidate {
            delivery_id: i,
            message_id: format!("m{i}"),
            message: msg,
        }
    }

    #[test]
    fn digest_keeps_every_original_and_id() {
        let cands = vec![
            cand(1, Message::text("disk full on db1").with_title("Disk")),
            cand(2, Message::markdown("CPU", "**cpu** 99%")),
            cand(3, Message::text("third")),
        ];
        let (d, left) = plan(cands, 4000);
        assert!(left.is_empty());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].members, [1, 2, 3]);
        let Body::Markdown { text } = &d[0].message.body else {
            panic!()
        };
        insta::assert_snapshot!(text, @r"
        **3 messages merged into one digest because the destination's rate limit was reached**

        ---

        **Disk** (id m1)
        disk full on db1

        ---

        **CPU** (id m2)
        **cpu** 99%

        ---

        (id m3)
        third
        ");
        assert_eq!(d[0].message.title.as_deref(), Some("Digest of 3 messages"));
    }

    #[test]
    fn budget_splits_digests_and_raw_stays_alone() {
        let mut cands: Vec<Candidate> = (0..10)
            .map(|i| cand(i, Message::text("x".repeat(300))))
            .collect();
        cands.push(cand(
            99,
            Message::new(Body::Raw {
                platform: None,
                payload: serde_json::json!({}),
            }),
        ));
        cands.push(cand(100, Message::text("y".repeat(5000))));
        let (d, left) = plan(cands, 1200);
        let sizes: Vec<usize> = d.iter().map(|d| d.members.len()).collect();
        assert_eq!(
            sizes,
            [3, 3, 3],
            "three 300-byte texts fit in 1200 bytes with the header"
        );
        for dg in &d {
            let Body::Markdown { text } = &dg.message.body else {
                panic!()
            };
            assert!(text.len() <= 1200, "{}", text.len());
        }
        let mut left: Vec<i64> = left.iter().map(|c| c.delivery_id).collect();
        left.sort();
        assert_eq!(
            left,
            [9, 99, 100],
            "no partner for the last; raw and oversized stay alone"
        );
    }

    #[test]
    fn recipients_and_mentions() {
        let a = Message::text("a").with_recipients(vec!["u1".into()]);
        let b = Message::text("b").with_mentions(Mentions {
            mobiles: vec!["138".into()],
            ..Default::default()
        });
        let c = Message::text("c").with_mentions(Mentions {
            all: true,
            mobiles: vec!["138".into()],
            ..Default::default()
        });
        let (d, left) = plan(vec![cand(1, a), cand(2, b), cand(3, c)], 4000);
        assert_eq!(
            left.len(),
            1,
            "the one with other recipients has no partner"
        );
        assert_eq!(d[0].members, [2, 3]);
        assert!(d[0].message.mentions.all);
        assert_eq!(d[0].message.mentions.mobiles, ["138"]);
    }
}
