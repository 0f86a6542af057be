//! WeChat Official Account error codes (platforms.md §4c, §5 (ii)) and the
//! classification of answers. Errors come as HTTP 200 with
//! `{"errcode":N,"errmsg":"..."}`; token answers carry no `errcode` on success.

use std::time::Duration;

use crate::http::HttpResponse;
use crate::outcome::{CodeClass, CodeInfo, Outcome, Report};
use crate::platform::errcode;

/// Every WeChat Official Account code platforms.md lists, with its class.
pub static CODES: &[CodeInfo] = &[
    CodeInfo {
        code: -1,
        class: CodeClass::Transient,
        meaning: "system busy",
        action: "retry with backoff",
    },
    CodeInfo {
        code: 40001,
        class: CodeClass::TokenInvalid,
        meaning: "invalid credential: access_token invalid or not the latest (at token fetch: wrong app_secret)",
        action: "fetch a new access token; if the token fetch itself fails, check `app_secret`",
    },
    CodeInfo {
        code: 40014,
        class: CodeClass::TokenInvalid,
        meaning: "invalid access_token",
        action: "fetch a new access token and retry",
    },
    CodeInfo {
        code: 42001,
        class: CodeClass::TokenInvalid,
        meaning: "access_token expired",
        action: "fetch a new access token and retry",
    },
    CodeInfo {
        code: 41001,
        class: CodeClass::TokenInvalid,
        meaning: "access_token missing",
        action: "fetch a new access token and retry",
    },
    CodeInfo {
        code: 45009,
        class: CodeClass::RateLimited(Duration::from_secs(3600)),
        meaning: "daily API quota reached",
        action: "wait for the quota to reset (next day) or reset it with clear_quota in the MP admin",
    },
    CodeInfo {
        code: 45047,
        class: CodeClass::RateLimited(Duration::from_secs(3600)),
        meaning: "out of the customer-service message limit",
        action: "wait until the user interacts again or the window resets",
    },
    CodeInfo {
        code: 43004,
        class: CodeClass::Permanent,
        meaning: "require subscribe: the user does not follow the account",
        action: "only followers can receive messages; drop this recipient",
    },
    CodeInfo {
        code: 40003,
        class: CodeClass::Permanent,
        meaning: "invalid openid",
        action: "check the recipient: an openid is per Official Account",
    },
    CodeInfo {
        code: 40037,
        class: CodeClass::Permanent,
        meaning: "invalid template_id",
        action: "check the template id in the MP admin (template message / subscribe message library)",
    },
    CodeInfo {
        code: 47003,
        class: CodeClass::Permanent,
        meaning: "argument invalid: a data field is missing or its value breaks the template's format/length",
        action: "match the template's field names and value rules (e.g. thing ≤ 20 chars)",
    },
    CodeInfo {
        code: 43101,
        class: CodeClass::Permanent,
        meaning: "user refused the subscription message (not subscribed to it)",
        action: "the user must accept the subscription again; drop this recipient",
    },
    CodeInfo {
        code: 40164,
        class: CodeClass::Permanent,
        meaning: "invalid ip, not in the whitelist",
        action: "add this server's public IP to the API IP whitelist in the MP admin",
    },
    CodeInfo {
        code: 48001,
        class: CodeClass::Permanent,
        meaning: "api unauthorized",
        action: "the account lacks this API (e.g. not a verified service account)",
    },
    CodeInfo {
        code: 40013,
        class: CodeClass::Permanent,
        meaning: "invalid appid",
        action: "check `app_id`",
    },
    CodeInfo {
        code: 40125,
        class: CodeClass::Permanent,
        meaning: "invalid appsecret",
        action: "check `app_secret` (reset it in the MP admin if lost)",
    },
];

/// The answer as JSON with its `errcode` (0 when absent), or a report when
/// there is no usable business answer.
// Report is this crate's error currency (as in `HttpResponse::json`); boxing it buys nothing here.
#[allow(clippy::result_large_err)]
pub(crate) fn parse(resp: &HttpResponse) -> Result<(i64, serde_json::Value), Report> {
    let v = errcode::json_body(resp, "WeChat")?;
    if v.is_object() {
        match v.get("errcode").and_then(|c| c.as_i64()) {
            Some(code) => return Ok((code, v)),
            // Successful token answers carry no errcode; a non-2xx object without
            // one is somebody else's answer (a proxy's), never a delivery.
            None if errcode::is_2xx(resp) => return Ok((0, v)),
            None => return Err(errcode::not_an_answer(resp, "WeChat")),
        }
    }
    if !errcode::is_2xx(resp) {
        return Err(errcode::not_an_answer(resp, "WeChat"));
    }
    Err(Report::new(
        Outcome::Retry { after: None },
        format!("answer is not a JSON object: {}", resp.body_snippet()),
    )
    .with_status(resp.status))
}

/// Classify an answer to a send call: `errcode` 0 is delivered (`msgid` is the
/// platform message id); other codes come from [`CODES`], unknown ones are
/// permanent.
pub fn classify(resp: &HttpResponse) -> Report {
    match parse(resp) {
        Ok((code, v)) => {
            errcode::send_verdict(CODES, code, &v, resp.status, "msgid").unwrap_or_else(|r| r)
        }
        Err(r) => r,
    }
}

/// Classify a failed token fetch: a token-class code cannot be cured by
/// refreshing here (40001 at the token endpoint means a wrong secret), so it is
/// permanent.
pub(crate) fn token_error(code: i64, v: &serde_json::Value, status: u16) -> Report {
    let mut r = Report::from_code(
        CODES,
        code,
        errcode::errmsg(v),
        status,
        CodeClass::Permanent,
    );
    if errcode::token_refusal_is_permanent(&mut r) {
        r.hint = Some(
            "the token endpoint refused the credentials; check `app_id` and `app_secret`".into(),
        );
    }
    r
}
