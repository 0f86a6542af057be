//! Feishu/Lark error codes (platforms.md §2 and §5 (ii)) and the classification
//! of Feishu answers.
//!
//! Feishu signals business errors in the body (`{"code":N,"msg":"..."}`), with
//! HTTP 200 for the webhook bot and HTTP 200 or 400 for the open APIs; the API
//! gateway's own rate limit answers HTTP 429. So: transport status first (429,
//! 408, 5xx), then the body decides.

use std::time::Duration;

use serde_json::Value;

use crate::http::HttpResponse;
use crate::outcome::{CodeClass, CodeInfo, Outcome, Report};
use crate::secret::Secret;
use crate::token::Token;

/// Wait after a Feishu frequency-limit code. The limits are per second (5/s per
/// bot, 5/s per recipient, 50/s per app), so one second reopens the window; the
/// per-minute windows are the caller's rate limiter's business.
const RATE_WAIT: Duration = Duration::from_secs(1);

/// Every Feishu/Lark code platforms.md lists, with its class.
pub static CODES: &[CodeInfo] = &[
    // Custom bot webhook (§2a).
    CodeInfo {
        code: 19001,
        class: CodeClass::Permanent,
        meaning: "incoming webhook access token invalid (the bot was removed or the hook reset)",
        action: "copy the bot's current webhook URL from the group settings into `webhook`/`hook`",
    },
    CodeInfo {
        code: 19021,
        class: CodeClass::Permanent,
        meaning: "sign match fail or timestamp is not within one hour from current time",
        action: "check `secret` against the bot's signing secret and that this host's clock is NTP-synced",
    },
    CodeInfo {
        code: 19022,
        class: CodeClass::Permanent,
        meaning: "IP not allowed by the bot's IP whitelist",
        action: "add this host's egress IP to the bot's whitelist",
    },
    CodeInfo {
        code: 19024,
        class: CodeClass::Permanent,
        meaning: "key words not found: the message has none of the bot's custom keywords",
        action: "put one of the bot's keywords in the message (e.g. in the title) or remove the keyword rule",
    },
    CodeInfo {
        code: 9499,
        class: CodeClass::Permanent,
        meaning: "bad request: malformed JSON or parameters",
        action: "check the message (a raw payload's fields and types); this is a bug if imrelay rendered it",
    },
    CodeInfo {
        code: 11232,
        class: CodeClass::RateLimited(RATE_WAIT),
        meaning: "frequency limited: over 5 requests/s or 100 requests/min for this bot",
        action: "slow down; the limit is per bot",
    },
    // Open API tokens (§2b).
    CodeInfo {
        code: 99991663,
        class: CodeClass::TokenInvalid,
        meaning: "tenant_access_token invalid",
        action: "fetch a new tenant_access_token and retry",
    },
    CodeInfo {
        code: 99991664,
        class: CodeClass::TokenInvalid,
        meaning: "app_access_token invalid",
        action: "fetch a new token and retry",
    },
    CodeInfo {
        code: 99991671,
        class: CodeClass::TokenInvalid,
        meaning: "access token invalid (bad format)",
        action: "fetch a new token and retry",
    },
    CodeInfo {
        code: 99991661,
        class: CodeClass::TokenInvalid,
        meaning: "missing access token (Authorization header)",
        action: "fetch a new token and retry; if it persists, a proxy is dropping the Authorization header",
    },
    CodeInfo {
        code: 99991668,
        class: CodeClass::TokenInvalid,
        meaning: "user_access_token invalid",
        action: "fetch a new token and retry",
    },
    CodeInfo {
        code: 10012,
        class: CodeClass::TokenInvalid,
        meaning: "app_ticket invalid (marketplace apps)",
        action: "resend the app_ticket and fetch a new token; self-built apps should not see this",
    },
    CodeInfo {
        code: 10003,
        class: CodeClass::Permanent,
        meaning: "token API: invalid parameter",
        action: "check `app_id` and `app_secret`",
    },
    CodeInfo {
        code: 10014,
        class: CodeClass::Permanent,
        meaning: "token API: app secret invalid",
        action: "check `app_secret` against the app's credentials page",
    },
    CodeInfo {
        code: 99991400,
        class: CodeClass::RateLimited(RATE_WAIT),
        meaning: "request trigger frequency limit (API gateway, per app)",
        action: "slow down; the app-wide limit is about 50 requests/s",
    },
    // IM send (§2c).
    CodeInfo {
        code: 230020,
        class: CodeClass::RateLimited(RATE_WAIT),
        meaning: "message frequency limit for this user or group (about 5/s)",
        action: "slow down sends to this recipient",
    },
    CodeInfo {
        code: 230001,
        class: CodeClass::Permanent,
        meaning: "invalid parameter",
        action: "check the recipient id and its `receive_id_type`, and the message content",
    },
    CodeInfo {
        code: 230002,
        class: CodeClass::Permanent,
        meaning: "the bot is not in the chat",
        action: "add the app's bot to the group",
    },
    CodeInfo {
        code: 230006,
        class: CodeClass::Permanent,
        meaning: "bot ability not enabled for the app",
        action: "enable the bot feature in the app's settings and publish a version",
    },
    CodeInfo {
        code: 230013,
        class: CodeClass::Permanent,
        meaning: "the recipient is outside the app's availability",
        action: "add the user to the app's availability range and publish a version",
    },
    CodeInfo {
        code: 230099,
        class: CodeClass::Permanent,
        meaning: "card content error",
        action: "check the card JSON (a raw payload's fields)",
    },
    CodeInfo {
        code: 230025,
        class: CodeClass::Permanent,
        meaning: "message content too long",
        action: "shorten the message; imrelay fits its own text to the limits, so a raw payload is the likely cause",
    },
    // Update, edit, recall and read receipts of a sent message (docs/lifecycle.md).
    CodeInfo {
        code: 230009,
        class: CodeClass::Permanent,
        meaning: "the message is past the recall limit (24 hours unless the tenant's administrator changed it)",
        action: "it can no longer be recalled; send a correction instead",
    },
    CodeInfo {
        code: 230011,
        class: CodeClass::Permanent,
        meaning: "the message was recalled",
        action: "nothing to update; send a new message if it still matters",
    },
    CodeInfo {
        code: 230012,
        class: CodeClass::Permanent,
        meaning: "the bot is not the sender of the message",
        action: "update, recall and read receipts work on the app's own messages only; check the message id and the app",
    },
    CodeInfo {
        code: 230026,
        class: CodeClass::Permanent,
        meaning: "no permission to recall this message: the bot recalls only what it sent",
        action: "check that the message id belongs to this app",
    },
    CodeInfo {
        code: 230027,
        class: CodeClass::Permanent,
        meaning: "the app lacks a permission this operation needs",
        action: "grant the app im:message (or im:message:update / im:message:recall) and publish a version",
    },
    CodeInfo {
        code: 230028,
        class: CodeClass::Permanent,
        meaning: "the message did not pass the tenant's DLP audit",
        action: "remove plain phone numbers, personal e-mail addresses and the like from the message",
    },
    CodeInfo {
        code: 230031,
        class: CodeClass::Permanent,
        meaning: "the message can only be modified within 14 days of sending",
        action: "it can no longer be updated; send a new message",
    },
    CodeInfo {
        code: 230033,
        class: CodeClass::Permanent,
        meaning: "read receipts can only be read within 7 days of sending",
        action: "the read status of older messages is gone",
    },
    CodeInfo {
        code: 230054,
        class: CodeClass::Permanent,
        meaning: "this operation is not supported for this message type",
        action: "cards are updated with PATCH, texts and posts edited with PUT; an update cannot change a message's type",
    },
];

/// Turn a non-zero `code` into a report: known codes by the table, unknown
/// non-zero codes permanent (never retried blindly).
pub fn from_code(code: i64, msg: &str, status: u16) -> Report {
    let r = Report::from_code(CODES, code, msg, status, CodeClass::Permanent);
    if r.hint.is_none() {
        return r.with_hint(
            "unknown Feishu code; look it up in the Feishu open platform's error code list",
        );
    }
    r
}

/// `x-ogw-ratelimit-reset` (seconds until the window reopens), which Feishu's
/// gateway may send with a frequency-limit answer.
fn ratelimit_reset(resp: &HttpResponse) -> Option<Duration> {
    let secs = resp
        .headers
        .get("x-ogw-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    // Never trust a header to park a destination for long.
    Some(Duration::from_secs(secs.clamp(1, 60)))
}

/// Prefer the gateway's reset hint over the table's fixed wait.
fn with_reset_hint(mut r: Report, resp: &HttpResponse) -> Report {
    if let (Outcome::RateLimited { wait }, Some(reset)) = (&mut r.outcome, ratelimit_reset(resp)) {
        *wait = reset;
    }
    r
}

fn code_of(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

fn msg_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Classify a custom bot webhook's answer. Success iff `code == 0`, or `code` is
/// absent and `StatusCode == 0` (older answers). Error answers come as
/// `{"code":N,"msg":..}` or, older, `{"StatusCode":N,"StatusMessage":..}`.
pub fn classify_webhook(resp: &HttpResponse) -> Report {
    if let Some(r) = resp.classify_transport_status() {
        return with_reset_hint(r, resp);
    }
    let v = match resp.json() {
        Ok(v) => v,
        Err(r) => return r,
    };
    let code = code_of(&v, "code").or_else(|| code_of(&v, "StatusCode"));
    let msg = msg_of(&v, "msg")
        .or_else(|| msg_of(&v, "StatusMessage"))
        .unwrap_or("");
    match code {
        Some(0) => Report::delivered().with_status(resp.status),
        Some(code) => with_reset_hint(from_code(code, msg, resp.status), resp),
        None => no_code(resp),
    }
}

/// Classify an open API answer (`im/v1/messages`): `code == 0` is success and
/// `data.message_id` is the platform's id for the message.
pub fn classify_api(resp: &HttpResponse) -> Report {
    if let Some(r) = resp.classify_transport_status() {
        return with_reset_hint(r, resp);
    }
    let v = match resp.json() {
        Ok(v) => v,
        Err(r) => return r,
    };
    match code_of(&v, "code") {
        Some(0) => {
            let mut r = Report::delivered().with_status(resp.status);
            r.platform_message_id = v
                .pointer("/data/message_id")
                .and_then(Value::as_str)
                .map(str::to_string);
            r
        }
        Some(code) => with_reset_hint(
            from_code(code, msg_of(&v, "msg").unwrap_or(""), resp.status),
            resp,
        ),
        None => no_code(resp),
    }
}

/// An answer in JSON but without a code: not a Feishu answer (a proxy's?). On
/// 2xx the message may or may not have gone out, and a duplicate beats a loss,
/// so retry; any other status is a refusal.
fn no_code(resp: &HttpResponse) -> Report {
    let outcome = if (200..300).contains(&resp.status) {
        Outcome::Retry { after: None }
    } else {
        Outcome::Permanent
    };
    Report::new(
        outcome,
        format!(
            "HTTP {} with an answer that has no `code`: {}",
            resp.status,
            resp.body_snippet()
        ),
    )
    .with_status(resp.status)
}

/// Read the token endpoint's answer:
/// `{"code":0,"msg":"ok","tenant_access_token":"t-xxx","expire":7200}`.
/// The token never appears in a report.
// The error type is `TokenSource::fetch`'s, a `Report`; boxing it here alone
// would only add a conversion.
#[allow(clippy::result_large_err)]
pub fn token_answer(resp: &HttpResponse) -> Result<Token, Report> {
    if let Some(r) = resp.classify_transport_status() {
        return Err(with_reset_hint(r, resp));
    }
    let v = resp.json()?;
    match code_of(&v, "code") {
        Some(0) => {}
        Some(code) => {
            let msg = msg_of(&v, "msg").unwrap_or("");
            let mut r = from_code(code, msg, resp.status);
            r.message = format!("fetching the tenant_access_token failed: {}", r.message);
            return Err(r);
        }
        None => return Err(no_code(resp)),
    }
    let token = msg_of(&v, "tenant_access_token").filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(Report::new(
            Outcome::Retry { after: None },
            "the token endpoint answered code 0 without a `tenant_access_token`",
        )
        .with_status(resp.status));
    };
    // Feishu caps tokens at 7200 s; a missing or silly value falls back to that.
    let expire = v
        .get("expire")
        .and_then(Value::as_u64)
        .filter(|&e| e > 0)
        .unwrap_or(7200);
    Ok(Token {
        value: Secret::new(token),
        expires_in: Duration::from_secs(expire),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::testing::resp;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn every_code_in_the_table_classifies_by_its_class_on_both_apis() {
        for info in CODES {
            let body = format!(r#"{{"code":{},"data":{{}},"msg":"m"}}"#, info.code);
            for r in [
                classify_webhook(&resp(200, &body)),
                classify_api(&resp(200, &body)),
                classify_api(&resp(400, &body)),
            ] {
                assert_eq!(r.outcome, info.class.outcome(), "code {}", info.code);
                assert_eq!(r.code, Some(crate::Code::Int(info.code)));
                assert_eq!(r.message, "m");
                let hint = r.hint.as_deref().unwrap();
                assert!(hint.contains(info.meaning) && hint.contains(info.action));
            }
        }
    }

    #[test]
    fn table_has_every_code_platforms_md_lists() {
        let listed = [
            19001, 19021, 19022, 19024, 9499, 11232, 99991663, 99991664, 99991671, 99991661,
            99991668, 99991400, 10012, 10003, 10014, 230020, 230001, 230002, 230006, 230013,
            230099, 230025, // lifecycle codes (docs/lifecycle.md):
            230009, 230011, 230012, 230026, 230027, 230028, 230031, 230033, 230054,
        ];
        for code in listed {
            assert!(
                crate::outcome::lookup(CODES, code).is_some(),
                "{code} missing"
            );
        }
        assert_eq!(CODES.len(), listed.len());
    }

    #[test]
    fn classes_match_platforms_md() {
        let class = |c| crate::outcome::lookup(CODES, c).unwrap().class;
        for c in [99991663, 99991664, 99991671, 99991661] {
            assert_eq!(class(c), CodeClass::TokenInvalid);
        }
        for c in [99991400, 230020, 11232] {
            assert_eq!(class(c), CodeClass::RateLimited(Duration::from_secs(1)));
        }
        for c in [
            19001, 19021, 19022, 19024, 9499, 230001, 230002, 230006, 230013, 230099, 230025,
            230009, 230011, 230031, 230026,
        ] {
            assert_eq!(class(c), CodeClass::Permanent);
        }
    }

    #[test]
    fn webhook_success_shapes() {
        for body in [
            r#"{"StatusCode":0,"StatusMessage":"success","code":0,"data":{},"msg":"success"}"#,
            r#"{"StatusCode":0,"StatusMessage":"success"}"#,
            r#"{"code":0,"data":{},"msg":"success"}"#,
        ] {
            let r = classify_webhook(&resp(200, body));
            assert_eq!(r.outcome, Outcome::Delivered, "{body}");
        }
    }

    #[test]
    fn webhook_code_wins_over_status_code() {
        // A non-zero `code` is an error even if StatusCode says 0.
        let r = classify_webhook(&resp(
            200,
            r#"{"StatusCode":0,"code":19024,"msg":"Key Words Not Found"}"#,
        ));
        assert_eq!(r.outcome, Outcome::Permanent);
        assert_eq!(r.code, Some(crate::Code::Int(19024)));
    }

    #[test]
    fn webhook_old_error_shape_uses_status_code() {
        let r = classify_webhook(&resp(
            200,
            r#"{"StatusCode":9499,"StatusMessage":"Bad Request"}"#,
        ));
        assert_eq!(r.outcome, Outcome::Permanent);
        assert_eq!(r.code, Some(crate::Code::Int(9499)));
        assert_eq!(r.message, "Bad Request");
    }

    #[test]
    fn http_200_with_error_is_an_error() {
        let r = classify_webhook(&resp(
            200,
            r#"{"code":11232,"data":{},"msg":"frequency limited psm[lark.oapi.app_platform_runtime]appID[1500]"}"#,
        ));
        assert_eq!(
            r.outcome,
            Outcome::RateLimited {
                wait: Duration::from_secs(1)
            }
        );
        assert_eq!(r.status, Some(200));
    }

    #[test]
    fn unknown_code_is_permanent_with_a_hint() {
        let r = classify_api(&resp(200, r#"{"code":1234567,"msg":"new"}"#));
        assert_eq!(r.outcome, Outcome::Permanent);
        assert!(r.hint.unwrap().contains("unknown Feishu code"));
    }

    #[test]
    fn transport_statuses() {
        let r = classify_api(&resp(429, "{}"));
        assert_eq!(
            r.outcome,
            Outcome::RateLimited {
                wait: Duration::from_secs(1)
            }
        );
        let r = classify_webhook(&resp(502, "<html>bad gateway</html>"));
        assert_eq!(r.outcome, Outcome::Retry { after: None });
        assert_eq!(r.status, Some(502));
        let r = classify_api(&resp(503, r#"{"code":0}"#));
        assert!(matches!(r.outcome, Outcome::Retry { .. }));
    }

    #[test]
    fn rate_limit_reset_header_sets_the_wait() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ogw-ratelimit-reset", HeaderValue::from_static("7"));
        let r = classify_api(&HttpResponse {
            status: 400,
            headers,
            body: br#"{"code":99991400,"msg":"request trigger frequency limit"}"#.to_vec(),
            oversize: None,
        });
        assert_eq!(
            r.outcome,
            Outcome::RateLimited {
                wait: Duration::from_secs(7)
            }
        );
    }

    #[test]
    fn garbled_body_retries() {
        for r in [
            classify_webhook(&resp(200, "<html>oops")),
            classify_api(&resp(200, r#"{"code":0,"da"#)),
        ] {
            assert_eq!(r.outcome, Outcome::Retry { after: None });
        }
    }

    #[test]
    fn json_without_code() {
        assert_eq!(
            classify_webhook(&resp(200, "{}")).outcome,
            Outcome::Retry { after: None }
        );
        assert_eq!(
            classify_api(&resp(404, r#"{"error":"not found"}"#)).outcome,
            Outcome::Permanent
        );
    }

    #[test]
    fn api_success_carries_message_id() {
        let r = classify_api(&resp(
            200,
            r#"{"code":0,"msg":"success","data":{"message_id":"om_dc13264520392913993dd051dba21dcf","msg_type":"text"}}"#,
        ));
        assert_eq!(r.outcome, Outcome::Delivered);
        assert_eq!(
            r.platform_message_id.as_deref(),
            Some("om_dc13264520392913993dd051dba21dcf")
        );
    }

    #[test]
    fn token_answers() {
        let t = token_answer(&resp(
            200,
            r#"{"code":0,"msg":"ok","tenant_access_token":"t-abc","expire":7140}"#,
        ))
        .unwrap();
        assert_eq!(t.value.expose(), "t-abc");
        assert_eq!(t.expires_in, Duration::from_secs(7140));

        let e =
            token_answer(&resp(400, r#"{"code":10014,"msg":"app secret invalid"}"#)).unwrap_err();
        assert_eq!(e.outcome, Outcome::Permanent);
        assert!(e
            .message
            .contains("tenant_access_token failed: app secret invalid"));

        let e = token_answer(&resp(200, r#"{"code":0,"msg":"ok"}"#)).unwrap_err();
        assert_eq!(e.outcome, Outcome::Retry { after: None });
        let e = token_answer(&resp(500, "busy")).unwrap_err();
        assert!(matches!(e.outcome, Outcome::Retry { .. }));
    }
}
