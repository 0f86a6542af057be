//! Label matchers, written as in Alertmanager: `name="value"`, `name!="value"`,
//! `name=~"regex"`, `name!~"regex"`. Quotes are optional around simple values.
//! Regexes are anchored (`severity=~"warn.*"` matches the whole value), and a
//! missing label matches as the empty string, both as Alertmanager does.

use std::collections::BTreeMap;

use regex::Regex;

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    NotEq,
    Re,
    NotRe,
}

/// One compiled matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    re: Option<Regex>,
}

/// Why a matcher does not parse; each names the matcher as written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MatcherError {
    #[error("`{0}` does not start with a label name; write e.g. severity=\"critical\" or team=~\"db|infra\"")]
    NoLabelName(String),
    #[error("`{text}` has no operator after `{name}`; use =, !=, =~ or !~")]
    NoOperator { text: String, name: String },
    #[error("`{text}`: {why}")]
    BadValue { text: String, why: &'static str },
    #[error("`{text}`: the regex does not compile: {source}")]
    BadRegex {
        text: String,
        #[source]
        source: regex::Error,
    },
}

impl Matcher {
    /// Parse `name<op>value`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Matcher, MatcherError> {
        let t = text.trim();
        let end = t
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(t.len());
        let name = &t[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(MatcherError::NoLabelName(text.to_string()));
        }
        let rest = t[end..].trim_start();
        let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
            (Op::Re, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (Op::NotRe, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (Op::NotEq, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (Op::Eq, r)
        } else {
            return Err(MatcherError::NoOperator {
                text: text.to_string(),
                name: name.to_string(),
            });
        };
        let value = unquote(rest.trim()).map_err(|why| MatcherError::BadValue {
            text: text.to_string(),
            why,
        })?;
        let re = match op {
            Op::Re | Op::NotRe => {
                Some(Regex::new(&format!("^(?:{value})$")).map_err(|source| {
                    MatcherError::BadRegex {
                        text: text.to_string(),
                        source,
                    }
                })?)
            }
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value,
            re,
        })
    }

    /// Whether `labels` satisfy this matcher.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match (self.op, &self.re) {
            (Op::Eq, _) => v == self.value,
            (Op::NotEq, _) => v != self.value,
            (Op::Re, Some(re)) => re.is_match(v),
            (Op::NotRe, Some(re)) => !re.is_match(v),
            _ => false,
        }
    }
}

/// `"a\"b"` -> `a"b`; an unquoted value is taken as is.
fn unquote(s: &str) -> Result<String, &'static str> {
    let Some(inner) = s.strip_prefix('"') else {
        if s.contains('"') {
            return Err("a value with a quote must be quoted as a whole");
        }
        return Ok(s.to_string());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err("the quoted value has no closing quote");
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some(c @ ('\\' | '"')) => out.push(c),
                // Keep other escapes for the regex engine (`\d`, `\.`).
                Some(c) => {
                    out.push('\\');
                    out.push(c);
                }
                None => return Err("the value ends with a lone backslash"),
            },
            '"' => return Err("an inner quote must be escaped as \\\""),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// All matchers must hold (an empty list matches everything).
pub fn all_match(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn operators_match_like_alertmanager() {
        let l = labels(&[("severity", "warning"), ("team", "db")]);
        let m = |s: &str| Matcher::parse(s).unwrap().matches(&l);
        assert!(m(r#"severity="warning""#));
        assert!(m("severity=warning"));
        assert!(!m(r#"severity!="warning""#));
        assert!(m(r#"severity=~"warn.*""#));
        // Anchored: a partial match is not a match.
        assert!(!m(r#"severity=~"warn""#));
        assert!(m(r#"severity!~"crit.*""#));
        assert!(m(r#"team=~"db|infra""#));
        // A missing label is the empty string.
        assert!(m(r#"region="""#));
        assert!(m(r#"region!~".+""#));
        assert!(!m(r#"region=~".+""#));
        let quoted = Matcher::parse(r#"msg="say \"hi\"""#).unwrap();
        assert_eq!(quoted.value, "say \"hi\"");
        assert!(Matcher::parse(r#"x=~"\d+""#)
            .unwrap()
            .matches(&labels(&[("x", "42")])));
    }

    #[test]
    fn bad_matchers_say_why() {
        for (text, want) in [
            ("=x", "label name"),
            ("severity", "no operator"),
            (r#"severity=~"(""#, "does not compile"),
            (r#"severity="x"#, "closing quote"),
            (r#"severity="a"b""#, "escaped"),
        ] {
            let e = Matcher::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
