//! What the phone destinations (SMS and voice of Alibaba Cloud and Tencent
//! Cloud) share: their recipients are phone numbers, and their text goes
//! into a template variable of limited length.

use std::collections::HashSet;

use crate::message::Message;
use crate::Error;

/// The recipients of `msg` (else `defaults`), each normalised by
/// `normalize` (whose `None` is a bad number, described by `expected`), without
/// duplicates; an error names the first bad number and the field it came from.
pub(crate) fn phone_numbers(
    kind: &str,
    msg: &Message,
    defaults: &[String],
    normalize: fn(&str) -> Option<String>,
    expected: &str,
) -> Result<Vec<String>, Error> {
    let (list, field) = if msg.recipients.is_empty() {
        (defaults, "phone_numbers")
    } else {
        (msg.recipients.as_slice(), "recipients")
    };
    if list.is_empty() {
        return Err(Error::InvalidMessage(format!(
            "no recipients: set `recipients` in the message or `phone_numbers` in the {kind} destination"
        )));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for raw in list {
        let n = normalize(raw).ok_or_else(|| {
            Error::InvalidMessage(format!(
                "`{field}`: `{raw}` is not a phone number ({expected})"
            ))
        })?;
        if seen.insert(n.clone()) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Cut `text` to `max` characters, whole grapheme clusters, ending with `…`
/// when cut.
pub(crate) fn cut_chars(text: &str, max: usize) -> String {
    use unicode_segmentation::UnicodeSegmentation;
    if text.chars().count() <= max {
        return text.to_string();
    }
    let budget = max.saturating_sub(1);
    let mut out = String::new();
    let mut used = 0;
    for g in text.graphemes(true) {
        let n = g.chars().count();
        if used + n > budget {
            break;
        }
        out.push_str(g);
        used += n;
    }
    if max > 0 {
        out.push('…');
    }
    out
}
