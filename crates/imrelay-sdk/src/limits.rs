//! Size limits and the overflow rule.
//!
//! Platforms count bytes, not characters: a Chinese character is 3 UTF-8 bytes.
//! Text that does not fit is never sent to fail. By default ([`OverflowMode::Split`])
//! it is cut into up to `max_parts` messages at line boundaries where possible,
//! each ending with a ` (i/n)` counter; what still does not fit in the last part is
//! truncated with the visible `marker`. With [`OverflowMode::Truncate`] the text is
//! cut once and ends with the marker.
//!
//! Cuts fall on extended grapheme cluster boundaries, so an emoji ZWJ sequence
//! or a letter with its combining accents is never split across parts (a part
//! never starts with a lone ZWJ or accent). Only a single cluster longer than
//! the whole limit is cut inside, at a char boundary.

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// How over-long text is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowMode {
    #[default]
    Split,
    Truncate,
}

/// The overflow rule, configurable per destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Overflow {
    pub mode: OverflowMode,
    /// Upper bound on the number of messages one message may be split into.
    pub max_parts: usize,
    /// Appended to truncated text.
    pub marker: String,
}

impl Default for Overflow {
    fn default() -> Self {
        Overflow {
            mode: OverflowMode::Split,
            max_parts: 5,
            marker: "\n…(truncated)".to_string(),
        }
    }
}

/// How bytes are counted against a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Raw UTF-8 bytes of the text (WeCom's content limits).
    Utf8,
    /// Bytes the text takes inside a JSON string (quotes, newlines and control
    /// characters escaped), for limits on the whole request body (DingTalk's 20,000).
    Json,
}

/// Bytes `c` takes when counted with `counting`.
pub fn char_cost(c: char, counting: Counting) -> usize {
    match counting {
        Counting::Utf8 => c.len_utf8(),
        Counting::Json => match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        },
    }
}

/// Bytes `s` takes when counted with `counting`.
pub fn cost(s: &str, counting: Counting) -> usize {
    s.chars().map(|c| char_cost(c, counting)).sum()
}

/// Fit `text` into pieces of at most `max_bytes` each, by the overflow rule.
/// Always returns at least one piece; every piece fits.
///
/// ```
/// use imrelay_sdk::limits::{fit, Counting, Overflow, OverflowMode};
/// let rule = Overflow { mode: OverflowMode::Truncate, max_parts: 1, marker: "…".into() };
/// let out = fit("告警告警告警", 10, Counting::Utf8, &rule);
/// assert_eq!(out, vec!["告警…".to_string()]); // 6 bytes of text + 3 of marker
/// ```
pub fn fit(text: &str, max_bytes: usize, counting: Counting, rule: &Overflow) -> Vec<String> {
    if cost(text, counting) <= max_bytes {
        return vec![text.to_string()];
    }
    match rule.mode {
        OverflowMode::Truncate => vec![truncate(text, max_bytes, counting, &rule.marker)],
        OverflowMode::Split => split(text, max_bytes, counting, rule),
    }
}

/// Cut `text` so that `text + marker` fits in `max_bytes`.
pub fn truncate(text: &str, max_bytes: usize, counting: Counting, marker: &str) -> String {
    if cost(text, counting) <= max_bytes {
        return text.to_string();
    }
    let marker_cost = cost(marker, counting);
    if marker_cost > max_bytes {
        // A limit smaller than the marker: cut the text bare rather than overflow.
        return take_prefix(text, max_bytes, counting).to_string();
    }
    let mut out = take_prefix(text, max_bytes - marker_cost, counting).to_string();
    out.push_str(marker);
    out
}

/// The longest prefix of `text` that fits in `budget` and ends on a grapheme
/// cluster boundary; when not even the first cluster fits, as much of it as
/// fits on a char boundary.
fn take_prefix(text: &str, budget: usize, counting: Counting) -> &str {
    let mut used = 0;
    for (i, g) in text.grapheme_indices(true) {
        let n = cost(g, counting);
        if used + n > budget {
            if i == 0 {
                return take_chars(text, budget, counting);
            }
            return &text[..i];
        }
        used += n;
    }
    text
}

/// The longest prefix of `text` that fits in `budget`, on a char boundary.
fn take_chars(text: &str, budget: usize, counting: Counting) -> &str {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        let n = char_cost(c, counting);
        if used + n > budget {
            return &text[..i];
        }
        used += n;
    }
    text
}

fn split(text: &str, max_bytes: usize, counting: Counting, rule: &Overflow) -> Vec<String> {
    let max_parts = rule.max_parts.max(1);
    // Reserve room for the " (i/n)" counter; n has at most as many digits as max_parts.
    let digits = max_parts.to_string().len();
    let counter_room = 4 + 2 * digits;
    if max_parts == 1 || max_bytes <= counter_room + 16 {
        return vec![truncate(text, max_bytes, counting, &rule.marker)];
    }
    let budget = max_bytes - counter_room;
    let mut parts: Vec<String> = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if parts.len() + 1 == max_parts {
            parts.push(truncate(rest, budget, counting, &rule.marker));
            break;
        }
        let head = take_prefix(rest, budget, counting);
        if head.len() == rest.len() {
            parts.push(rest.to_string());
            break;
        }
        // Prefer to cut after the last newline in the second half of the piece.
        let cut = match head.rfind('\n') {
            Some(i) if i + 1 >= head.len() / 2 => i + 1,
            _ => head.len(),
        };
        let cut = if cut == 0 {
            rest.chars().next().map_or(1, char::len_utf8)
        } else {
            cut
        };
        parts.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
    let n = parts.len();
    if n > 1 {
        for (i, p) in parts.iter_mut().enumerate() {
            p.push_str(&format!(" ({}/{})", i + 1, n));
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn chinese_counts_three_bytes() {
        assert_eq!(cost("告警", Counting::Utf8), 6);
        assert_eq!(cost("a\"b\n", Counting::Json), 6);
    }

    #[test]
    fn split_prefers_line_boundaries_and_numbers_parts() {
        let text = "line one\nline two\nline three\nline four\n".repeat(3);
        let rule = Overflow::default();
        let parts = fit(&text, 60, Counting::Utf8, &rule);
        assert!(parts.len() > 1);
        assert!(parts[0].ends_with(&format!(" (1/{})", parts.len())));
        assert!(parts[0]
            .trim_end_matches(|c: char| c != '\n')
            .ends_with('\n'));
        let joined: String = parts
            .iter()
            .map(|p| p.rsplit_once(" (").unwrap().0)
            .collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn split_truncates_beyond_max_parts_with_marker() {
        let text = "x".repeat(10_000);
        let rule = Overflow {
            max_parts: 3,
            ..Overflow::default()
        };
        let parts = fit(&text, 100, Counting::Utf8, &rule);
        assert_eq!(parts.len(), 3);
        assert!(parts[2].contains("…(truncated)"));
    }

    /// Strip the ` (i/n)` counters and join the parts back.
    fn rejoin(parts: &[String]) -> String {
        let n = parts.len();
        if n == 1 {
            return parts[0].clone();
        }
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.strip_suffix(&format!(" ({}/{n})", i + 1))
                    .unwrap_or_else(|| panic!("part {i} has no counter: {p:?}"))
            })
            .collect()
    }

    fn starts_inside_a_cluster(part: &str) -> bool {
        part.chars().next().is_some_and(|c| {
            c == '\u{200d}'
                || ('\u{300}'..='\u{36f}').contains(&c)
                || ('\u{fe00}'..='\u{fe0f}').contains(&c)
                || ('\u{1f3fb}'..='\u{1f3ff}').contains(&c)
        })
    }

    const FAMILY: &str = "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}\u{200d}\u{1f466}";

    #[test]
    fn an_emoji_zwj_sequence_at_the_boundary_stays_whole() {
        // 28 bytes of budget after the counter: "x" * 20 then a 25-byte family
        // emoji; a char-boundary cut would put 👨‍👩 in one part and a lone ZWJ
        // at the start of the next.
        let text = format!("{}{FAMILY}{}", "x".repeat(20), "y".repeat(30));
        let rule = Overflow::default();
        let parts = fit(&text, 36, Counting::Utf8, &rule);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(!starts_inside_a_cluster(p), "{parts:?}");
            assert!(cost(p, Counting::Utf8) <= 36);
        }
        assert!(parts.iter().any(|p| p.contains(FAMILY)), "{parts:?}");
        assert_eq!(rejoin(&parts), text);
    }

    #[test]
    fn combining_marks_stay_with_their_letter() {
        // "e" + 3 combining marks = 7 bytes per cluster.
        let cluster = "e\u{301}\u{302}\u{303}";
        let text = cluster.repeat(20);
        let parts = fit(&text, 40, Counting::Utf8, &Overflow::default());
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(p.starts_with('e'), "{parts:?}");
        }
        assert_eq!(rejoin(&parts), text);
        let cut = truncate(&text, 20, Counting::Utf8, "…");
        assert_eq!(cut, format!("{}…", cluster.repeat(2)));
    }

    #[test]
    fn a_cluster_longer_than_the_limit_is_cut_at_a_char() {
        // One letter with 40 accents (81 bytes) cannot fit anywhere whole.
        let text = format!("a{}", "\u{301}".repeat(40));
        let rule = Overflow {
            mode: OverflowMode::Truncate,
            ..Overflow::default()
        };
        let parts = fit(&text, 30, Counting::Utf8, &rule);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].starts_with('a') && cost(&parts[0], Counting::Utf8) <= 30);
        assert!(!parts[0].starts_with(rule.marker.as_str()));
    }

    /// Text made of whole clusters: words, CJK, newlines, emoji ZWJ sequences,
    /// flags, skin tones, keycaps and accented letters.
    fn clustered_text() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            "[a-z]{1,8}",
            Just(" ".to_string()),
            Just("\n".to_string()),
            Just("\r\n".to_string()),
            Just("告警".to_string()),
            Just(FAMILY.to_string()),
            Just("\u{1f3f3}\u{fe0f}\u{200d}\u{1f308}".to_string()),
            Just("\u{1f1e8}\u{1f1f3}".to_string()),
            Just("\u{1f44d}\u{1f3fd}".to_string()),
            Just("1\u{fe0f}\u{20e3}".to_string()),
            Just("e\u{301}".to_string()),
            Just("a\u{308}\u{304}".to_string()),
            Just("\u{915}\u{94d}\u{937}".to_string()),
            Just("\"tab\there\"".to_string()),
        ];
        proptest::collection::vec(atom, 0..120).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn split_parts_start_on_cluster_boundaries_and_rejoin(text in clustered_text(), max in 60usize..200, json in any::<bool>()) {
            let counting = if json { Counting::Json } else { Counting::Utf8 };
            // Enough parts that nothing is truncated.
            let rule = Overflow { max_parts: 1000, ..Overflow::default() };
            let parts = fit(&text, max, counting, &rule);
            for p in &parts {
                prop_assert!(!starts_inside_a_cluster(p), "{:?}", parts);
                prop_assert!(cost(p, counting) <= max);
            }
            prop_assert_eq!(rejoin(&parts), text);
        }

        #[test]
        fn truncation_ends_on_a_cluster_boundary(text in clustered_text(), max in 30usize..200) {
            let out = truncate(&text, max, Counting::Utf8, "…");
            prop_assert!(cost(&out, Counting::Utf8) <= max);
            let kept = out.strip_suffix('…').unwrap_or(&out);
            prop_assert!(text.starts_with(kept));
            let boundaries: Vec<usize> = text.grapheme_indices(true).map(|(i, _)| i).chain([text.len()]).collect();
            prop_assert!(boundaries.contains(&kept.len()), "{:?} cut at {}", text, kept.len());
        }

        #[test]
        fn every_piece_fits(text in "\\PC{0,600}", max in 40usize..300, truncate in any::<bool>(), json in any::<bool>()) {
            let counting = if json { Counting::Json } else { Counting::Utf8 };
            let rule = Overflow { mode: if truncate { OverflowMode::Truncate } else { OverflowMode::Split }, ..Overflow::default() };
            let parts = fit(&text, max, counting, &rule);
            prop_assert!(!parts.is_empty());
            prop_assert!(parts.len() <= rule.max_parts);
            for p in &parts {
                prop_assert!(cost(p, counting) <= max, "piece of {} bytes > {}", cost(p, counting), max);
            }
        }
    }
}
