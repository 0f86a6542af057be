//! WeCom error codes (platforms.md §3 and §5 (ii)) and the classification of
//! WeCom answers. WeCom answers HTTP 200 with `{"errcode":N,"errmsg":"..."}` even
//! on errors, so the body always decides.

use std::time::Duration;

use crate::http::HttpResponse;
use crate::outcome::{lookup, CodeClass, CodeInfo, Outcome, RecipientFailure, Report};
use crate::platform::errcode;

/// Every WeCom code platforms.md lists, with its class.
pub static CODES: &[CodeInfo] = &[
    CodeInfo {
        code: -1,
        class: CodeClass::Transient,
        meaning: "system busy",
        action: "retry with backoff",
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
        code: 42007,
        class: CodeClass::TokenInvalid,
        meaning: "suite/provider access token expired",
        action: "fetch a new access token and retry",
    },
    CodeInfo {
        code: 42009,
        class: CodeClass::TokenInvalid,
        meaning: "suite/provider access token expired",
        action: "fetch a new access token and retry",
    },
    CodeInfo {
        code: 45009,
        class: CodeClass::RateLimited(Duration::from_secs(60)),
        meaning: "api freq out of limit (robots: 20 messages/minute; apps: 30/minute and 1000/hour per member)",
        action: "wait a minute before sending again; send fewer, merged messages",
    },
    CodeInfo {
        code: 45033,
        class: CodeClass::RateLimited(Duration::from_secs(1)),
        meaning: "too many concurrent calls",
        action: "wait a moment and send with less concurrency",
    },
    CodeInfo {
        code: 93000,
        class: CodeClass::Permanent,
        meaning: "invalid webhook url (robot key wrong or robot removed)",
        action: "copy the robot's webhook URL or key again from the group's robot settings",
    },
    CodeInfo {
        code: 60020,
        class: CodeClass::Permanent,
        meaning: "not allow to access from your ip",
        action: "add this server's public IP to the app's trusted IP list in the WeCom admin console",
    },
    CodeInfo {
        code: 40013,
        class: CodeClass::Permanent,
        meaning: "invalid corpid",
        action: "check `corp_id` (My Company > Company Info > Company ID)",
    },
    CodeInfo {
        code: 40001,
        class: CodeClass::Permanent,
        meaning: "invalid secret",
        action: "check `corp_secret`: it is the app's Secret, not the company's",
    },
    CodeInfo {
        code: 40056,
        class: CodeClass::Permanent,
        meaning: "invalid agentid",
        action: "check `agent_id` (the app's AgentId) matches `corp_secret`'s app",
    },
    CodeInfo {
        code: 60011,
        class: CodeClass::Permanent,
        meaning: "no privilege to access/modify the contact",
        action: "widen the app's visible range to include the recipients",
    },
    CodeInfo {
        code: 81013,
        class: CodeClass::Permanent,
        meaning: "all recipients (user, party, tag) are invalid or out of the app's range",
        action: "check the recipient ids and the app's visible range",
    },
    CodeInfo {
        code: 40008,
        class: CodeClass::Permanent,
        meaning: "invalid message type",
        action: "use a msgtype this endpoint supports",
    },
    CodeInfo {
        code: 44004,
        class: CodeClass::Permanent,
        meaning: "empty content",
        action: "send a message with text in it",
    },
    CodeInfo {
        code: 40058,
        class: CodeClass::Permanent,
        meaning: "invalid request parameter (e.g. content exceeds the byte limit)",
        action: "shorten the content or fix the field named in errmsg",
    },
    CodeInfo {
        code: 60140,
        class: CodeClass::Permanent,
        meaning: "the response_code is expired (72 h) or already used (one update per code)",
        action: "update the card with the ResponseCode of its newest click, or send a new message",
    },
    CodeInfo {
        code: 301019,
        class: CodeClass::Permanent,
        meaning: "image md5 does not match the image content",
        action: "send the md5 of the raw image bytes, before base64",
    },
];

/// What the answer's `errcode` says, or a report when there is no usable
/// business answer (429/5xx, a body that is not JSON, a non-2xx answer).
// Report is this crate's error currency (as in `HttpResponse::json`); boxing it buys nothing here.
#[allow(clippy::result_large_err)]
pub(crate) fn parse(resp: &HttpResponse) -> Result<(i64, serde_json::Value), Report> {
    let v = errcode::json_body(resp, "WeCom")?;
    match v.get("errcode").and_then(|c| c.as_i64()) {
        Some(code) => Ok((code, v)),
        None if errcode::is_2xx(resp) => Err(Report::new(
            Outcome::Retry { after: None },
            format!("answer without `errcode`: {}", resp.body_snippet()),
        )
        .with_status(resp.status)),
        None => Err(Report::new(
            Outcome::Permanent,
            format!("HTTP {}: {}", resp.status, resp.body_snippet()),
        )
        .with_status(resp.status)),
    }
}

/// Classify an answer to a send call (robot webhook or app message).
///
/// `errcode` 0 is delivered, with `msgid` as the platform message id and any
/// `invaliduser`/`invalidparty`/`invalidtag`/`unlicenseduser` listed as
/// permanent per-recipient failures. Other codes come from [`CODES`]; unknown
/// ones are permanent.
pub fn classify(resp: &HttpResponse) -> Report {
    let (code, v) = match parse(resp) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut r = match errcode::send_verdict(CODES, code, &v, resp.status, "msgid") {
        Ok(r) => r,
        Err(r) => return r,
    };
    // Button cards: the code that allows one update of the card.
    r.update_token = errcode::id_field(&v, "response_code");
    for (field, prefix, reason) in [
        (
            "invaliduser",
            "",
            "invalid user id, or not in the app's visible range",
        ),
        (
            "invalidparty",
            "party:",
            "invalid party id, or not in the app's visible range",
        ),
        (
            "invalidtag",
            "tag:",
            "invalid tag id, or not in the app's visible range",
        ),
        ("unlicenseduser", "", "user has no license for this app"),
    ] {
        let ids = v.get(field).and_then(|s| s.as_str()).unwrap_or("");
        for id in ids.split('|').filter(|s| !s.is_empty()) {
            r.failed_recipients.push(RecipientFailure {
                recipient: format!("{prefix}{id}"),
                outcome: Outcome::Permanent,
                reason: format!("{field}: {reason}"),
            });
        }
    }
    r
}

/// Classify a failed token fetch: a token-class code here cannot be cured by
/// refreshing (there is no token yet), so it is permanent.
pub(crate) fn token_error(code: i64, v: &serde_json::Value, status: u16) -> Report {
    let mut r = Report::from_code(
        CODES,
        code,
        errcode::errmsg(v),
        status,
        CodeClass::Permanent,
    );
    errcode::token_refusal_is_permanent(&mut r);
    if lookup(CODES, code).is_none() {
        r.hint = Some(
            "the token endpoint refused the credentials; check `corp_id` and `corp_secret`".into(),
        );
    }
    r
}
