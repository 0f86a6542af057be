//! Taking a `dingtalk_app` message back.
//!
//! | sent as | request | window |
//! |---|---|---|
//! | work notice (`task_id`) | `POST {oapi}/topapi/message/corpconversation/recall?access_token=` `{agent_id, msg_task_id}` | not documented; 24 h assumed |
//! | robot 1:1 (`processQueryKey`) | `POST {api}/v1.0/robot/otoMessages/batchRecall` `{robotCode, processQueryKeys}` | 24 h (documented) |
//! | robot in a group (`processQueryKey`) | `POST {api}/v1.0/robot/groupMessages/recall` `{openConversationId, robotCode, processQueryKeys}` | not documented; 24 h assumed |
//! | card | the same two, with the delivery's `carrierId` as the `processQueryKey` | as above (UNSURE for cards) |
//!
//! Sources: help.dingtalk.io `batch-message-recall-chat` and
//! `enterprise-chatbot-withdraws-internal-group-messages`; `robot_1_0`
//! `BatchRecallOTORequest`/`OrgGroupRecallRequest` (aliyun/dingtalk-sdk);
//! `dingtalk.oapi.message.corpconversation.recall` (open.dingtalk.com API
//! explorer, copied at jaq-doc.alibaba.com apiId 43694).

use std::time::Duration;

use serde_json::{json, Value};

use super::codes;
use crate::http::HttpResponse;
use crate::outcome::{Outcome, Report};

/// How long after sending DingTalk takes a message back: documented for robot
/// 1:1 messages, assumed (the conservative reading) for the others.
pub const RECALL_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The work notice recall body (`msg_task_id` is the send's `task_id`).
pub fn work_notice_body(agent_id: i64, task_id: i64) -> Value {
    json!({"agent_id": agent_id, "msg_task_id": task_id})
}

/// The robot 1:1 recall body.
pub fn oto_body(robot_code: &str, key: &str) -> Value {
    json!({"robotCode": robot_code, "processQueryKeys": [key]})
}

/// The robot group recall body.
pub fn group_body(robot_code: &str, open_conversation_id: &str, key: &str) -> Value {
    json!({"openConversationId": open_conversation_id, "robotCode": robot_code, "processQueryKeys": [key]})
}

/// Classify a work notice recall answer (`{errcode, errmsg}`).
pub fn classify_work_notice(resp: &HttpResponse) -> Report {
    match codes::classify_oapi(resp) {
        Ok(_) => Report::delivered().with_status(resp.status),
        Err(r) => r,
    }
}

/// Classify a robot recall answer `{"successResult": [...], "failedResult":
/// {key: reason}}` for `key`: recalled only when DingTalk lists it as a
/// success; a failed key is permanent, with DingTalk's reason.
pub fn classify_robot(resp: &HttpResponse, key: &str) -> Report {
    let v = match codes::classify_v1(resp) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(reason) = v.get("failedResult").and_then(|f| f.get(key)) {
        let reason = reason.as_str().unwrap_or("no reason given");
        return Report::new(
            Outcome::Permanent,
            format!("DingTalk did not recall {key}: {reason}"),
        )
        .with_status(resp.status)
        .with_hint("robot messages can be recalled within 24 hours of sending, by the robot that sent them");
    }
    let recalled = v
        .get("successResult")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|k| k.as_str() == Some(key)));
    if recalled {
        Report::delivered().with_status(resp.status)
    } else {
        Report::new(
            Outcome::Permanent,
            format!("DingTalk answered without listing {key} as recalled"),
        )
        .with_status(resp.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::testing::resp;

    #[test]
    fn bodies() {
        assert_eq!(
            work_notice_body(123, 256_000_000_001),
            json!({"agent_id": 123, "msg_task_id": 256_000_000_001i64})
        );
        assert_eq!(
            oto_body("dingkey", "pqk-1"),
            json!({"robotCode": "dingkey", "processQueryKeys": ["pqk-1"]})
        );
        assert_eq!(
            group_body("dingkey", "cid1", "pqk-1"),
            json!({"openConversationId": "cid1", "robotCode": "dingkey", "processQueryKeys": ["pqk-1"]})
        );
    }

    #[test]
    fn a_failed_key_is_permanent_with_the_reason() {
        let r = classify_robot(
            &resp(
                200,
                r#"{"successResult":[],"failedResult":{"pqk-1":"消息已超过可撤回时间"}}"#,
            ),
            "pqk-1",
        );
        assert_eq!(r.outcome, Outcome::Permanent);
        assert!(r.message.contains("消息已超过可撤回时间"), "{}", r.message);
        let ok = classify_robot(
            &resp(200, r#"{"successResult":["pqk-1"],"failedResult":{}}"#),
            "pqk-1",
        );
        assert_eq!(ok.outcome, Outcome::Delivered);
        let silent = classify_robot(&resp(200, r#"{"successResult":[]}"#), "pqk-1");
        assert_eq!(silent.outcome, Outcome::Permanent);
        let token = classify_robot(
            &resp(401, r#"{"code":"InvalidAuthentication","message":"x"}"#),
            "pqk-1",
        );
        assert_eq!(token.outcome, Outcome::RefreshToken);
        let wn = classify_work_notice(&resp(200, r#"{"errcode":0,"errmsg":"ok"}"#));
        assert_eq!(wn.outcome, Outcome::Delivered);
    }
}
