//! Scrub secrets from free text before it is logged or stored: query
//! parameters that carry credentials (`access_token`, `key`, `sign`, ...) and
//! `Bearer` tokens. The SDK already keeps secrets in `Secret` and redacts its
//! own URLs; this is the last guard for text that comes from elsewhere (a
//! transport error quoting a URL, a platform echoing a token).

/// Query parameter names whose values are credentials.
const SECRET_PARAMS: &[&str] = &[
    "access_token",
    "token",
    "key",
    "sign",
    "secret",
    "corpsecret",
    "app_secret",
    "appsecret",
    "signature",
    "password",
];

/// `text` with credential values replaced by `***`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        // `Bearer <token>`
        if let Some(r) = strip_prefix_ci(rest, "bearer ") {
            out.push_str(&rest[..7]);
            out.push_str("***");
            rest = skip_value(r);
            continue;
        }
        // `name=value` after `?`, `&`, a space or the start.
        let at_boundary = out
            .chars()
            .last()
            .is_none_or(|c| c == '?' || c == '&' || c == ' ' || c == ',' || c == '"');
        if at_boundary {
            for p in SECRET_PARAMS {
                if let Some(r) = strip_prefix_ci(rest, p) {
                    if let Some(r) = r.strip_prefix('=') {
                        out.push_str(&rest[..p.len() + 1]);
                        out.push_str("***");
                        rest = skip_value(r);
                        continue 'outer;
                    }
                }
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn skip_value(s: &str) -> &str {
    let end = s.find(['&', ' ', '"', ',', ')', '\n']).unwrap_or(s.len());
    &s[end..]
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn query_credentials_are_redacted() {
        assert_eq!(
            redact("POST https://oapi.dingtalk.com/robot/send?access_token=abc123&timestamp=1&sign=xyz failed"),
            "POST https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=1&sign=*** failed"
        );
        assert_eq!(
            redact("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K-1"),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
        );
    }

    #[test]
    fn bearer_tokens_are_redacted_and_plain_text_is_kept() {
        assert_eq!(
            redact("Authorization: Bearer t-123 x"),
            "Authorization: Bearer *** x"
        );
        assert_eq!(redact("monkey=1 keyboard"), "monkey=1 keyboard");
        assert_eq!(redact("disk full on db-1 ☃"), "disk full on db-1 ☃");
    }
}
