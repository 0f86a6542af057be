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

/// A phone number as both clouds read it: spaces and dashes ignored, `+` or
/// `00` before an international number.
pub(crate) enum Phone {
    /// A mainland China number: its 11 digits (with or without `86` before).
    Mainland(String),
    /// Another number: country code and number, digits only (E.164 without
    /// its `+`).
    International(String),
}

/// `raw` as a [`Phone`]; `None` when it is not a phone number.
pub(crate) fn parse_phone(raw: &str) -> Option<Phone> {
    let t: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect();
    let (international, digits) = if let Some(rest) = t.strip_prefix('+') {
        (true, rest)
    } else if let Some(rest) = t.strip_prefix("00") {
        (true, rest)
    } else {
        (false, t.as_str())
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mainland = |d: &str| d.len() == 11 && d.starts_with('1');
    if !international && mainland(digits) {
        return Some(Phone::Mainland(digits.to_string()));
    }
    if let Some(rest) = digits.strip_prefix("86") {
        return mainland(rest).then(|| Phone::Mainland(rest.to_string()));
    }
    // E.164: at most 15 digits with the country code; the shortest real
    // numbers with their country code have 8.
    (international && (8..=15).contains(&digits.len()) && !digits.starts_with('0'))
        .then(|| Phone::International(digits.to_string()))
}

/// The destination's configured `phone_numbers` are all numbers `normalize`
/// takes.
pub(crate) fn check_defaults(
    kind: &str,
    numbers: &[String],
    normalize: fn(&str) -> Option<String>,
) -> Result<(), Error> {
    match numbers.iter().find(|n| normalize(n).is_none()) {
        Some(bad) => Err(Error::Config(format!(
            "{kind}: `phone_numbers`: `{bad}` is not a phone number"
        ))),
        None => Ok(()),
    }
}

/// A required config text, trimmed; an error says what to put there.
pub(crate) fn non_empty(kind: &str, field: &str, value: &str, what: &str) -> Result<String, Error> {
    let v = value.trim();
    if v.is_empty() {
        Err(Error::Config(format!("{kind}: `{field}` is empty; {what}")))
    } else {
        Ok(v.to_string())
    }
}

/// The title and main text of a non-template message, as one line each.
pub(crate) fn message_text(kind: &'static str, msg: &Message) -> Result<String, Error> {
    let text = msg.body.main_text().ok_or_else(|| {
        Error::unsupported(
            kind,
            msg.body.kind(),
            "a phone gets text only: send text, markdown, link, card, news or a template",
        )
    })?;
    let text = text.trim();
    let joined = match msg
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(t) if !text.is_empty() => format!("{t}\n{text}"),
        Some(t) => t.to_string(),
        None => text.to_string(),
    };
    if joined.is_empty() {
        return Err(Error::InvalidMessage(format!(
            "{kind}: the message has no text to send"
        )));
    }
    Ok(joined)
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
