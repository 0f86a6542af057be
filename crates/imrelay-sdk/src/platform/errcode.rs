//! The `{"errcode":N,"errmsg":"..."}` answer that DingTalk's oapi, WeCom and
//! WeChat share (platforms.md §5 (ii)): field readers, the send-call verdict,
//! the token-answer reader and the rule that a token endpoint refusing a
//! credential is permanent. Each platform keeps its own code table and its own
//! rules for answers that are not of this shape, because those differ.

use std::time::Duration;

use serde_json::Value;

use crate::http::HttpResponse;
use crate::outcome::{CodeClass, CodeInfo, Outcome, Report};
use crate::token::Token;
use crate::Secret;

/// A token lifetime for answers that do not say (all three platforms issue
/// two-hour tokens).
const DEFAULT_TOKEN_SECS: u64 = 7200;

/// The `errmsg` text, or "" when absent.
pub(crate) fn errmsg(v: &Value) -> &str {
    str_field(v, "errmsg")
}

/// A string field, or "" when absent or not a string.
pub(crate) fn str_field<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name).and_then(Value::as_str).unwrap_or("")
}

/// An integer field sent as a number or as a numeric string.
pub(crate) fn int_field(v: &Value, name: &str) -> Option<i64> {
    match v.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An id the platform sends as a number or a string (`msgid`, `task_id`);
/// an empty string is no id.
pub(crate) fn id_field(v: &Value, name: &str) -> Option<String> {
    match v.get(name)? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The body of an answer as JSON, after the transport-level classification.
/// A non-2xx answer whose body is not JSON did not come from `platform` (a
/// wrong `base_url` answering 404), and retrying will not change that.
// Report is this crate's error currency (as in `HttpResponse::json`); boxing it buys nothing here.
#[allow(clippy::result_large_err)]
pub(crate) fn json_body(resp: &HttpResponse, platform: &str) -> Result<Value, Report> {
    if let Some(r) = resp.classify_transport_status() {
        return Err(r);
    }
    match resp.json() {
        Ok(v) => Ok(v),
        Err(_) if !is_2xx(resp) => Err(not_an_answer(resp, platform)),
        Err(r) => Err(r),
    }
}

/// Whether the HTTP status is 2xx.
pub(crate) fn is_2xx(resp: &HttpResponse) -> bool {
    (200..300).contains(&resp.status)
}

/// A non-2xx answer that is not `platform`'s: permanent, pointing at `base_url`.
pub(crate) fn not_an_answer(resp: &HttpResponse, platform: &str) -> Report {
    Report::new(
        Outcome::Permanent,
        format!("HTTP {}: {}", resp.status, resp.body_snippet()),
    )
    .with_status(resp.status)
    .with_hint(format!("not a {platform} answer; check `base_url`"))
}

/// The verdict on a send call's `{errcode, errmsg}` answer: `Ok` (delivered,
/// with the `id` field as the platform message id) for `errcode` 0, otherwise
/// `Err` with the code's class from `codes` (unknown codes are permanent).
// Both sides are reports; Err lets a caller add detail to a delivery only.
#[allow(clippy::result_large_err)]
pub(crate) fn send_verdict(
    codes: &'static [CodeInfo],
    code: i64,
    v: &Value,
    status: u16,
    id: &str,
) -> Result<Report, Report> {
    if code != 0 {
        return Err(Report::from_code(
            codes,
            code,
            errmsg(v),
            status,
            CodeClass::Permanent,
        ));
    }
    let mut r = Report::delivered().with_status(status);
    r.platform_message_id = id_field(v, id);
    Ok(r)
}

/// A token endpoint that refuses a credential: a token-class code there cannot
/// be cured by refreshing (there is no token yet), so it becomes permanent.
/// Says whether it did.
pub(crate) fn token_refusal_is_permanent(r: &mut Report) -> bool {
    if r.outcome == Outcome::RefreshToken {
        r.outcome = Outcome::Permanent;
        true
    } else {
        false
    }
}

/// The `access_token` and `expires_in` (7200 s when absent) of a successful
/// token answer; `missing` is the message when the answer has no token.
// Report is this crate's error currency (as in `HttpResponse::json`); boxing it buys nothing here.
#[allow(clippy::result_large_err)]
pub(crate) fn access_token(v: &Value, status: u16, missing: &str) -> Result<Token, Report> {
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Report::new(Outcome::Retry { after: None }, missing).with_status(status))?;
    let expires_in = v
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_TOKEN_SECS);
    Ok(Token {
        value: Secret::new(token),
        expires_in: Duration::from_secs(expires_in),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::testing::resp;

    #[test]
    fn ids_come_as_numbers_or_non_empty_strings() {
        let v = serde_json::json!({"a": 12, "b": "x", "c": "", "d": true});
        assert_eq!(id_field(&v, "a").as_deref(), Some("12"));
        assert_eq!(id_field(&v, "b").as_deref(), Some("x"));
        assert_eq!(id_field(&v, "c"), None);
        assert_eq!(id_field(&v, "d"), None);
        assert_eq!(id_field(&v, "e"), None);
    }

    #[test]
    fn non_json_is_permanent_only_off_2xx() {
        let r = json_body(&resp(404, "<html>"), "WeCom").unwrap_err();
        assert_eq!(r.outcome, Outcome::Permanent);
        assert_eq!(
            r.hint.as_deref(),
            Some("not a WeCom answer; check `base_url`")
        );
        let r = json_body(&resp(200, "<html>"), "WeCom").unwrap_err();
        assert_eq!(r.outcome, Outcome::Retry { after: None });
    }

    #[test]
    fn token_answers_default_to_two_hours() {
        let t = access_token(&serde_json::json!({"access_token": "t"}), 200, "none").unwrap();
        assert_eq!(t.expires_in, Duration::from_secs(7200));
        let r = access_token(&serde_json::json!({"access_token": ""}), 200, "none").unwrap_err();
        assert_eq!(
            (r.outcome, r.message.as_str()),
            (Outcome::Retry { after: None }, "none")
        );
    }
}
