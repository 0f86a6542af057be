//! String helpers with Go's exact semantics (strings, html, js, net/url,
//! regexp), shared by the function maps.

use std::fmt::Write;

/// Go maps rune by rune with simple case mappings; Rust's full mappings can
/// expand a character (ß to SS), which Go never does.
fn simple(c: char, mapped: impl Iterator<Item = char>) -> char {
    let v: Vec<char> = mapped.collect();
    if v.len() == 1 {
        v[0]
    } else {
        c
    }
}

pub fn to_upper(s: &str) -> String {
    s.chars().map(|c| simple(c, c.to_uppercase())).collect()
}

pub fn to_lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '\u{130}' {
                'i'
            } else {
                simple(c, c.to_lowercase())
            }
        })
        .collect()
}

/// unicode.ToTitle: the upper case, except for the four Latin digraphs
/// whose title case differs (ǅ, ǈ, ǋ, ǲ).
fn to_title(c: char) -> char {
    match c {
        '\u{1c4}'..='\u{1c6}' => '\u{1c5}',
        '\u{1c7}'..='\u{1c9}' => '\u{1c8}',
        '\u{1ca}'..='\u{1cc}' => '\u{1cb}',
        '\u{1f1}'..='\u{1f3}' => '\u{1f2}',
        c => simple(c, c.to_uppercase()),
    }
}

/// strings.Title: title-cases letters that follow a separator.
pub fn title(s: &str) -> String {
    let is_sep = |r: char| {
        if r.is_ascii() {
            return !(r.is_ascii_alphanumeric() || r == '_');
        }
        if r.is_alphabetic() || r.is_numeric() {
            return false;
        }
        r.is_whitespace()
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if is_sep(prev) { to_title(c) } else { c };
            prev = c;
            out
        })
        .collect()
}

/// Go's unicode.IsSpace, which is the Unicode White_Space property.
pub fn trim_space(s: &str) -> &str {
    s.trim_matches(char::is_whitespace)
}

pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Close to Go's unicode.IsPrint for what alert text contains.
pub fn is_print(c: char) -> bool {
    !(c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(c as u32, 0xad | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2064 | 0xfeff))
}

pub fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => write!(out, "\\u00{:02X}", c as u32).unwrap(),
            c if c.is_ascii() || is_print(c) => out.push(c),
            c => write!(out, "\\u{:04X}", c as u32).unwrap(),
        }
    }
    out
}

/// net/url.QueryEscape.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => write!(out, "%{b:02X}").unwrap(),
        }
    }
    out
}

/// net/url.QueryUnescape.
pub fn query_unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                let Some(hex) = hex else {
                    let bad: String = s[i..].chars().take(3).collect();
                    return Err(format!("invalid URL escape {bad:?}"));
                };
                out.push(u8::from_str_radix(hex, 16).expect("checked hex"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Rewrites RE2 (Go) syntax where Rust's regex differs: `\d \w \s \b` are
/// ASCII-only in Go but Unicode-aware in Rust.
fn go_pattern(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut chars = p.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let rep = match (in_class, n) {
                    (false, 'd') => "[0-9]",
                    (false, 'D') => "[^0-9]",
                    (false, 'w') => "[0-9A-Za-z_]",
                    (false, 'W') => "[^0-9A-Za-z_]",
                    (false, 's') => "[\\t\\n\\f\\r ]",
                    (false, 'S') => "[^\\t\\n\\f\\r ]",
                    (false, 'b') => "(?-u:\\b)",
                    (false, 'B') => "(?-u:\\B)",
                    (true, 'd') => "0-9",
                    (true, 'w') => "0-9A-Za-z_",
                    (true, 's') => "\\t\\n\\f\\r ",
                    _ => {
                        out.push('\\');
                        out.push(n);
                        continue;
                    }
                };
                out.push_str(rep);
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A leading `]` (after an optional `^`) is literal.
                let mut look = chars.clone();
                if look.next() == Some('^') {
                    out.push('^');
                    chars.next();
                }
                if chars.clone().next() == Some(']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            '[' if in_class && chars.clone().next() == Some(':') => {
                // [:alpha:] inside a class: copy through to the closing `:]`.
                out.push('[');
                for d in chars.by_ref() {
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

pub fn regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&go_pattern(pattern)).map_err(|e| format!("error parsing regexp: {e}"))
}
