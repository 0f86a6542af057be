//! DingTalk error codes and the classification of DingTalk answers.
//!
//! Three answer shapes exist:
//! - robot webhook and legacy oapi (`/robot/send`, `/gettoken`, `/topapi/...`):
//!   HTTP 200 with `{"errcode":N,"errmsg":"..."}`, `errcode == 0` meaning success;
//! - the v1.0 API (`api.dingtalk.com`): HTTP 2xx with the result object on
//!   success, HTTP 4xx/5xx with `{"code":"Name","message":"...","requestid":"..."}`
//!   on failure.
//!
//! Every code platforms.md §1 and §5(ii) lists is in [`CODES`] (integers) or
//! [`NAMED_CODES`] (v1.0 names) with its class.

use std::time::Duration;

use serde_json::Value;

use crate::http::HttpResponse;
use crate::outcome::{lookup, Code, CodeClass, CodeInfo, Outcome, RecipientFailure, Report};
use crate::platform::errcode::{id_field, int_field, str_field};

/// DingTalk asks robots to stay under 20 messages a minute and then blocks for
/// 10; waiting a full minute is the least that can help.
const ROBOT_RATE_WAIT: Duration = Duration::from_secs(60);
/// v1.0 QPS limits are per second.
const QPS_WAIT: Duration = Duration::from_secs(1);
/// batchSend's per-user flow control gives no window; a minute is a polite guess.
const USER_FLOW_WAIT: Duration = Duration::from_secs(60);

/// Every integer code platforms.md lists for DingTalk (robot webhook and oapi).
pub static CODES: &[CodeInfo] = &[
    CodeInfo {
        code: -1,
        class: CodeClass::Transient,
        meaning: "DingTalk system busy",
        action: "retry with backoff (DingTalk advises at most 3 tries)",
    },
    CodeInfo {
        code: 130101,
        class: CodeClass::RateLimited(ROBOT_RATE_WAIT),
        meaning: "the robot sent more than 20 messages in a minute; DingTalk may block it for 10 minutes",
        action: "wait at least a minute and keep each robot under 20 messages per minute",
    },
    CodeInfo {
        code: 410100,
        class: CodeClass::RateLimited(ROBOT_RATE_WAIT),
        meaning: "sending too fast, throttled",
        action: "wait at least a minute and send more slowly",
    },
    CodeInfo {
        code: 310000,
        class: CodeClass::Permanent,
        meaning: "the robot's security check failed (keywords, signature, timestamp or IP whitelist)",
        action: "read errmsg: fix `secret`, the robot's keywords, its IP whitelist, or this host's clock",
    },
    CodeInfo {
        code: 300001,
        class: CodeClass::Permanent,
        meaning: "the robot token does not exist",
        action: "check `access_token` (the value after `access_token=`, or paste the whole URL as `webhook`)",
    },
    CodeInfo {
        code: 300005,
        class: CodeClass::Permanent,
        meaning: "token is not exist (seen for robots in external groups)",
        action: "check the robot still exists and is not in an external group",
    },
    CodeInfo {
        code: 400013,
        class: CodeClass::Permanent,
        meaning: "the group was dissolved",
        action: "add a robot to another group and update the destination",
    },
    CodeInfo {
        code: 400101,
        class: CodeClass::Permanent,
        meaning: "the access_token does not exist",
        action: "check the spelling of `access_token`",
    },
    CodeInfo {
        code: 400102,
        class: CodeClass::Permanent,
        meaning: "the robot is disabled",
        action: "ask a group admin to enable the robot",
    },
    CodeInfo {
        code: 400105,
        class: CodeClass::Permanent,
        meaning: "unsupported message type",
        action: "use text, markdown, link, actionCard or feedCard (check a raw payload's `msgtype`)",
    },
    CodeInfo {
        code: 400106,
        class: CodeClass::Permanent,
        meaning: "the robot does not exist or is not in the group",
        action: "check the robot is still in the group",
    },
    CodeInfo {
        code: 430101,
        class: CodeClass::Permanent,
        meaning: "the message contains an unsafe external link",
        action: "remove or replace the link",
    },
    CodeInfo {
        code: 430102,
        class: CodeClass::Permanent,
        meaning: "the message contains inappropriate text",
        action: "change the text",
    },
    CodeInfo {
        code: 430103,
        class: CodeClass::Permanent,
        meaning: "the message contains an inappropriate image",
        action: "change the image",
    },
    CodeInfo {
        code: 430104,
        class: CodeClass::Permanent,
        meaning: "the message contains inappropriate content",
        action: "change the content",
    },
    CodeInfo {
        code: 460101,
        class: CodeClass::Permanent,
        meaning: "message too large (the request body is over 20,000 bytes)",
        action: "shorten it; imrelay splits rendered text, so this comes from a raw payload",
    },
    CodeInfo {
        code: 40014,
        class: CodeClass::TokenInvalid,
        meaning: "invalid access_token",
        action: "the token is refreshed and the request retried once; if it persists, check `app_key`/`app_secret`",
    },
    CodeInfo {
        code: 42001,
        class: CodeClass::TokenInvalid,
        meaning: "access_token expired",
        action: "the token is refreshed and the request retried once",
    },
    // Not in platforms.md's tables; the legacy `/gettoken` answers it (with
    // errmsg 不合法的corpid或corpsecret) for an unknown appkey or a wrong or
    // rotated appsecret, as the mock does.
    CodeInfo {
        code: 40089,
        class: CodeClass::Permanent,
        meaning: "the legacy token API refused the credentials: no app has this AppKey, or the AppSecret does not match it",
        action: "copy `app_key` and `app_secret` from the developer console (app -> credentials); resetting the AppSecret there invalidates the old one",
    },
    CodeInfo {
        code: 88,
        class: CodeClass::Permanent,
        meaning: "authorization failed (see sub_code, e.g. 60011: no permission)",
        action: "grant the app this API's permission in the developer console; token sub_codes refresh the token",
    },
    CodeInfo {
        code: 60011,
        class: CodeClass::Permanent,
        meaning: "the app has no permission for this API",
        action: "grant the permission to the app in the DingTalk developer console",
    },
];

/// One entry of the v1.0 API's named error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedCode {
    /// The code, or a prefix of codes when it ends with `.`.
    pub code: &'static str,
    pub class: CodeClass,
    pub meaning: &'static str,
    pub action: &'static str,
}

/// The v1.0 API's named codes platforms.md lists (HTTP 4xx with
/// `{code,message,requestid}`). Entries ending in `.` match every code with
/// that prefix.
pub static NAMED_CODES: &[NamedCode] = &[
    NamedCode {
        code: "InvalidAuthentication",
        class: CodeClass::TokenInvalid,
        meaning: "invalid or expired access token",
        action: "the token is refreshed and the request retried once; if it persists, check `app_key`/`app_secret`",
    },
    NamedCode {
        code: "Forbidden.AccessDenied.QpsLimitForApi",
        class: CodeClass::RateLimited(QPS_WAIT),
        meaning: "the API's QPS limit was exceeded",
        action: "send more slowly",
    },
    NamedCode {
        code: "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
        class: CodeClass::RateLimited(QPS_WAIT),
        meaning: "this app's QPS limit for the API was exceeded",
        action: "send more slowly",
    },
    NamedCode {
        code: "invalidParameter.robotCode.empty",
        class: CodeClass::Permanent,
        meaning: "robotCode is empty",
        action: "set `robot_code` (for an internal app's robot it is the app key)",
    },
    NamedCode {
        code: "invalidParameter.userIds.overMax",
        class: CodeClass::Permanent,
        meaning: "more than 20 userIds in one call",
        action: "send at most 20 recipients per request (imrelay batches them; check a raw payload)",
    },
    NamedCode {
        code: "invalidParameter.msgKey.invalid",
        class: CodeClass::Permanent,
        meaning: "unknown msgKey",
        action: "use a documented msgKey (sampleText, sampleMarkdown, ...)",
    },
    NamedCode {
        code: "invalidParameter.msgParam.invalid",
        class: CodeClass::Permanent,
        meaning: "msgParam does not match the msgKey",
        action: "check msgParam is a JSON string with the msgKey's fields",
    },
    // The card-instance APIs' own family (`param.outTrackIdEmpty`, ...).
    NamedCode {
        code: "param.",
        class: CodeClass::Permanent,
        meaning: "a card parameter is invalid (template id, outTrackId, card data or space)",
        action: "fix the parameter named in the code; check `card_template_id` and the recipients",
    },
    NamedCode {
        code: "invalidParameter.",
        class: CodeClass::Permanent,
        meaning: "a request parameter is invalid",
        action: "fix the parameter named in the code",
    },
];

/// Find a v1.0 code: exact match first, then the longest matching prefix entry.
pub fn lookup_named(code: &str) -> Option<&'static NamedCode> {
    NAMED_CODES.iter().find(|c| c.code == code).or_else(|| {
        NAMED_CODES
            .iter()
            .filter(|c| c.code.ends_with('.') && code.starts_with(c.code))
            .max_by_key(|c| c.code.len())
    })
}

/// A more precise hint for the 310000 family, whose errmsg says which check
/// failed.
fn security_hint(errmsg: &str) -> Option<&'static str> {
    let m = errmsg.to_ascii_lowercase();
    if m.contains("sign not match") || errmsg.contains("签名不匹配") {
        Some("the signature did not match: check `secret` is the robot's SEC... value (Security settings -> Additional signature)")
    } else if m.contains("timestamp") || errmsg.contains("时间戳") {
        Some("the request timestamp is more than 1 hour from DingTalk's clock: sync this host's clock (NTP); re-signing cannot help until then")
    } else if m.contains("keyword") || errmsg.contains("关键词") {
        Some("the message contains none of the robot's keywords: list them in the destination's `keywords` (one is then added to every message), or add one to the text")
    } else if m.contains("whitelist") || errmsg.contains("白名单") {
        Some("this host's IP is not in the robot's IP whitelist: add it in the robot's security settings")
    } else {
        None
    }
}

/// Whether an errcode 88 answer is about the token (then refresh) rather than a
/// permission. DingTalk reports the underlying problem in `sub_code`/`sub_msg`,
/// e.g. `{"errcode":88,"sub_code":"40014","sub_msg":"不合法的access_token"}`.
fn sub_code_is_token(v: &Value) -> bool {
    let sub = int_field(v, "sub_code");
    matches!(sub, Some(40014 | 42001 | 41001))
        || str_field(v, "sub_msg")
            .to_ascii_lowercase()
            .contains("access_token")
}

/// Classify an `{errcode, errmsg}` body. `Ok(body)` when `errcode == 0`.
fn classify_errcode(resp: &HttpResponse, v: Value) -> Result<Value, Report> {
    let Some(code) = int_field(&v, "errcode") else {
        // Not DingTalk's answer (a proxy's JSON?). A 4xx will not get better.
        let outcome = if (400..500).contains(&resp.status) {
            Outcome::Permanent
        } else {
            Outcome::Retry { after: None }
        };
        return Err(Report::new(
            outcome,
            format!(
                "HTTP {} without an errcode: {}",
                resp.status,
                resp.body_snippet()
            ),
        )
        .with_status(resp.status));
    };
    if code == 0 {
        return Ok(v);
    }
    let errmsg = str_field(&v, "errmsg");
    let mut report = Report::from_code(CODES, code, errmsg, resp.status, CodeClass::Permanent);
    match code {
        310000 => {
            if let Some(h) = security_hint(errmsg) {
                report.hint = Some(h.to_string());
            }
        }
        88 if sub_code_is_token(&v) => {
            report.outcome = Outcome::RefreshToken;
            report.hint = Some("the access token was rejected (errcode 88 with a token sub_code); it is refreshed and the request retried once".into());
        }
        _ => {}
    }
    if lookup(CODES, code).is_none() {
        report.hint = Some(format!(
            "unknown DingTalk errcode {code}; treated as permanent (look it up in DingTalk's error code table)"
        ));
    }
    if let Some(sub) = v
        .get("sub_msg")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        report.message = format!("{errmsg} ({sub})");
    }
    Err(report)
}

/// Transport status, then JSON, then `errcode`.
fn errcode_answer(resp: &HttpResponse) -> Result<Value, Report> {
    if let Some(r) = resp.classify_transport_status() {
        return Err(r);
    }
    let v = resp.json()?;
    classify_errcode(resp, v)
}

/// Classify a custom robot's answer to `/robot/send`.
pub fn classify_robot(resp: &HttpResponse) -> Report {
    match errcode_answer(resp) {
        Ok(_) => Report::delivered().with_status(resp.status),
        Err(r) => r,
    }
}

/// Classify a work notice answer (`asyncsend_v2`); the platform message id is
/// the `task_id` (sending is asynchronous: accepted is not yet delivered).
pub fn classify_work_notice(resp: &HttpResponse) -> Report {
    match errcode_answer(resp) {
        Ok(v) => {
            let mut r = Report::delivered().with_status(resp.status);
            r.platform_message_id = id_field(&v, "task_id");
            r
        }
        Err(r) => r,
    }
}

/// Classify a legacy oapi answer and return its body on success (used for
/// `/gettoken`).
pub fn classify_oapi(resp: &HttpResponse) -> Result<Value, Report> {
    errcode_answer(resp)
}

/// Classify a v1.0 API answer: `Ok(body)` on 2xx, otherwise the report for its
/// `{code,message,requestid}` body.
pub fn classify_v1(resp: &HttpResponse) -> Result<Value, Report> {
    if (200..300).contains(&resp.status) {
        return resp.json();
    }
    // A 429 or 5xx is transient whatever the body says.
    if let Some(r) = resp.classify_transport_status() {
        return Err(r);
    }
    let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    let code = str_field(&v, "code");
    let message = str_field(&v, "message");
    let message = if message.is_empty() {
        resp.body_snippet()
    } else {
        message.to_string()
    };
    let requestid = str_field(&v, "requestid");
    let message = if requestid.is_empty() {
        message
    } else {
        format!("{message} (requestid {requestid})")
    };
    let (outcome, hint) = match lookup_named(code) {
        Some(info) => (
            info.class.outcome(),
            format!("{}; {}", info.meaning, info.action),
        ),
        // Unlisted QPS/throttling codes still mean "slow down".
        None if code.contains("QpsLimit") || code.contains("Throttling") => (
            Outcome::RateLimited { wait: QPS_WAIT },
            "DingTalk throttled the request; send more slowly".to_string(),
        ),
        None if code.is_empty() => (
            Outcome::Permanent,
            format!("HTTP {} from DingTalk without an error code", resp.status),
        ),
        None => (
            Outcome::Permanent,
            format!("unknown DingTalk error code `{code}`; treated as permanent"),
        ),
    };
    let mut r = Report::new(outcome, message)
        .with_status(resp.status)
        .with_hint(hint);
    if !code.is_empty() {
        r = r.with_code(Code::Name(code.to_string()));
    }
    Err(r)
}

fn id_list(v: &Value, name: &str) -> Vec<String> {
    v.get(name)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Classify a robot group send answer (`groupMessages/send`,
/// `{"processQueryKey": ...}`).
pub fn classify_group_send(resp: &HttpResponse) -> Report {
    match classify_v1(resp) {
        Ok(v) => {
            let mut r = Report::delivered().with_status(resp.status);
            r.platform_message_id = id_field(&v, "processQueryKey");
            r
        }
        Err(r) => r,
    }
}

/// Classify a robot 1:1 `batchSend` answer for a request to `recipients`.
///
/// HTTP 200 with non-empty `flowControlledStaffIdList` (throttled users: wait,
/// then retry those) or `invalidStaffIdList` / `filteredStaffIdList` (permanent
/// for those users) is a partial failure: the report is `Delivered` with
/// [`Report::failed_recipients`] listing them. When no recipient was accepted,
/// the outcome is `RateLimited` if any was throttled, else `Permanent`.
pub fn classify_batch_send(resp: &HttpResponse, recipients: &[String]) -> Report {
    let v = match classify_v1(resp) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut failed = Vec::new();
    for user in id_list(&v, "flowControlledStaffIdList") {
        failed.push(RecipientFailure {
            recipient: user,
            outcome: Outcome::RateLimited {
                wait: USER_FLOW_WAIT,
            },
            reason: "flow controlled: DingTalk throttled messages to this user; retry later".into(),
        });
    }
    for user in id_list(&v, "invalidStaffIdList") {
        failed.push(RecipientFailure {
            recipient: user,
            outcome: Outcome::Permanent,
            reason: "invalid userId: not a member of the organization or not visible to the app"
                .into(),
        });
    }
    for user in id_list(&v, "filteredStaffIdList") {
        failed.push(RecipientFailure {
            recipient: user,
            outcome: Outcome::Permanent,
            reason: "filtered by DingTalk (the user cannot receive this robot's messages)".into(),
        });
    }
    let mut r = Report::delivered().with_status(resp.status);
    r.platform_message_id = id_field(&v, "processQueryKey");
    if !failed.is_empty() {
        let accepted = recipients
            .iter()
            .filter(|u| !failed.iter().any(|f| &f.recipient == *u))
            .count();
        if accepted == 0 {
            r.outcome = if failed
                .iter()
                .any(|f| matches!(f.outcome, Outcome::RateLimited { .. }))
            {
                Outcome::RateLimited {
                    wait: USER_FLOW_WAIT,
                }
            } else {
                Outcome::Permanent
            };
            r.message = "no recipient accepted".into();
        } else {
            r.message = format!("accepted {accepted} of {} recipients", recipients.len());
        }
        r.failed_recipients = failed;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::testing::resp;

    #[test]
    fn every_integer_code_classifies_as_its_table_class() {
        for info in CODES {
            let body = format!(r#"{{"errcode":{},"errmsg":"x"}}"#, info.code);
            let r = classify_robot(&resp(200, &body));
            assert_eq!(r.outcome, info.class.outcome(), "robot, code {}", info.code);
            assert_eq!(r.code, Some(Code::Int(info.code)));
            assert_eq!(r.status, Some(200));
            assert!(r.hint.is_some(), "code {} has a hint", info.code);
            let r = classify_work_notice(&resp(200, &body));
            assert_eq!(
                r.outcome,
                info.class.outcome(),
                "work notice, code {}",
                info.code
            );
        }
    }

    #[test]
    fn every_named_code_classifies_as_its_table_class() {
        for info in NAMED_CODES {
            let code = if info.code.ends_with('.') {
                format!("{}somethingElse", info.code)
            } else {
                info.code.to_string()
            };
            let status = match info.class {
                CodeClass::TokenInvalid => 401,
                CodeClass::RateLimited(_) => 403,
                _ => 400,
            };
            let body = format!(r#"{{"code":"{code}","message":"m","requestid":"r1"}}"#);
            let r = classify_v1(&resp(status, &body)).unwrap_err();
            assert_eq!(r.outcome, info.class.outcome(), "code {code}");
            assert_eq!(r.code, Some(Code::Name(code.clone())));
            assert_eq!(r.message, "m (requestid r1)");
        }
    }

    #[test]
    fn robot_success_and_200_with_error() {
        let r = classify_robot(&resp(200, r#"{"errcode":0,"errmsg":"ok"}"#));
        assert_eq!(r.outcome, Outcome::Delivered);
        let r = classify_robot(&resp(
            200,
            r#"{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}"#,
        ));
        assert_eq!(
            r.outcome,
            Outcome::RateLimited {
                wait: Duration::from_secs(60)
            }
        );
        assert_eq!(r.message, "send too fast, exceed 20 times per minute");
    }

    #[test]
    fn unknown_code_is_permanent_with_hint() {
        let r = classify_robot(&resp(200, r#"{"errcode":123456,"errmsg":"new"}"#));
        assert_eq!(r.outcome, Outcome::Permanent);
        assert!(r.hint.unwrap().contains("unknown DingTalk errcode 123456"));
        let r = classify_v1(&resp(400, r#"{"code":"brandNew","message":"?"}"#)).unwrap_err();
        assert_eq!(r.outcome, Outcome::Permanent);
        let r = classify_v1(&resp(
            403,
            r#"{"code":"Forbidden.AccessDenied.QpsLimitForSomethingNew","message":"qps"}"#,
        ))
        .unwrap_err();
        assert_eq!(
            r.outcome,
            Outcome::RateLimited {
                wait: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn transport_statuses_and_garbled_bodies() {
        let r = classify_robot(&resp(429, "slow down"));
        assert!(matches!(r.outcome, Outcome::RateLimited { .. }));
        let r = classify_robot(&resp(502, "<html>bad gateway</html>"));
        assert_eq!(r.outcome, Outcome::Retry { after: None });
        assert_eq!(r.status, Some(502));
        let r = classify_robot(&resp(200, "<html>not json"));
        assert_eq!(r.outcome, Outcome::Retry { after: None });
        let r = classify_v1(&resp(503, r#"{"code":"ServiceUnavailable"}"#)).unwrap_err();
        assert_eq!(r.outcome, Outcome::Retry { after: None });
        let r = classify_v1(&resp(200, "{truncated")).unwrap_err();
        assert_eq!(r.outcome, Outcome::Retry { after: None });
        let r = classify_robot(&resp(200, r#"{"ok":true}"#));
        assert_eq!(r.outcome, Outcome::Retry { after: None });
        let r = classify_robot(&resp(404, r#"{"error":"not found"}"#));
        assert_eq!(r.outcome, Outcome::Permanent);
    }

    #[test]
    fn security_failures_get_precise_hints() {
        for (msg, needle) in [
            ("sign not match", "`secret`"),
            ("invalid timestamp 1577000000000", "clock"),
            ("keywords not in content", "keywords"),
            ("ip 1.2.3.4 not in whitelist", "whitelist"),
            (
                "description:机器人发送签名不匹配;solution:请确认签名和生成签名的时间戳是否正确",
                "`secret`",
            ),
        ] {
            let r = classify_robot(&resp(
                200,
                &format!(r#"{{"errcode":310000,"errmsg":"{msg}"}}"#),
            ));
            assert_eq!(r.outcome, Outcome::Permanent);
            assert!(
                r.hint.as_deref().unwrap().contains(needle),
                "{msg}: {:?}",
                r.hint
            );
        }
    }

    #[test]
    fn errcode_88_refreshes_only_for_token_sub_codes() {
        let r = classify_work_notice(&resp(
            200,
            r#"{"errcode":88,"errmsg":"ding talk error[subcode=40014,submsg=不合法的access_token]","sub_code":"40014","sub_msg":"不合法的access_token"}"#,
        ));
        assert_eq!(r.outcome, Outcome::RefreshToken);
        let r = classify_work_notice(&resp(
            200,
            r#"{"errcode":88,"errmsg":"ding talk error[subcode=60011]","sub_code":"60011","sub_msg":"没有调用该接口的权限"}"#,
        ));
        assert_eq!(r.outcome, Outcome::Permanent);
        assert!(r.message.contains("没有调用该接口的权限"));
    }

    #[test]
    fn work_notice_task_id_is_the_message_id() {
        let r = classify_work_notice(&resp(
            200,
            r#"{"errcode":0,"errmsg":"ok","task_id":256271667526,"request_id":"x"}"#,
        ));
        assert_eq!(r.outcome, Outcome::Delivered);
        assert_eq!(r.platform_message_id.as_deref(), Some("256271667526"));
    }

    #[test]
    fn batch_send_partial_failures_per_recipient() {
        let users: Vec<String> = ["u1", "invalid1", "throttled1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = classify_batch_send(
            &resp(
                200,
                r#"{"processQueryKey":"pqk-1","invalidStaffIdList":["invalid1"],"flowControlledStaffIdList":["throttled1"]}"#,
            ),
            &users,
        );
        insta::assert_json_snapshot!(r, @r#"
        {
          "outcome": {
            "class": "delivered"
          },
          "status": 200,
          "message": "accepted 1 of 3 recipients",
          "platform_message_id": "pqk-1",
          "failed_recipients": [
            {
              "recipient": "throttled1",
              "outcome": {
                "class": "rate_limited",
                "wait": 60.0
              },
              "reason": "flow controlled: DingTalk throttled messages to this user; retry later"
            },
            {
              "recipient": "invalid1",
              "outcome": {
                "class": "permanent"
              },
              "reason": "invalid userId: not a member of the organization or not visible to the app"
            }
          ]
        }
        "#);
        let all_bad = classify_batch_send(
            &resp(
                200,
                r#"{"processQueryKey":"k","invalidStaffIdList":["invalid1"],"flowControlledStaffIdList":[]}"#,
            ),
            &["invalid1".to_string()],
        );
        assert_eq!(all_bad.outcome, Outcome::Permanent);
        let all_throttled = classify_batch_send(
            &resp(
                200,
                r#"{"processQueryKey":"k","flowControlledStaffIdList":["throttled1"]}"#,
            ),
            &["throttled1".to_string()],
        );
        assert_eq!(
            all_throttled.outcome,
            Outcome::RateLimited {
                wait: Duration::from_secs(60)
            }
        );
        let ok = classify_batch_send(
            &resp(200, r#"{"processQueryKey":"k","invalidStaffIdList":[]}"#),
            &users,
        );
        assert!(ok.is_complete_success());
    }
}
