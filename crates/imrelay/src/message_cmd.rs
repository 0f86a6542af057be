//! `imrelay message recall|ack|update|urgent`: act on a message a running
//! gateway sent (`DELETE`, `POST .../ack`, `PATCH /v1/messages/{id}` and
//! `POST .../urgent`).
//!
//! Exit codes, as `imrelay send --server`: 0 done (or queued), 1 the gateway
//! refused (its problem's detail on stderr), 2 bad arguments, 3 the gateway
//! could not be reached or failed.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use imrelay_gateway::client::{self, SubmitError, SubmitOptions};
use serde_json::{json, Value};

#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// Recall what a message delivered, where the platform allows it (Feishu
    /// app, DingTalk work notices and app robots, WeCom app; within their windows).
    #[command(after_help = "\
Examples:
  IMRELAY_API_KEY=... imrelay message recall 01936f1e-8a4c-7d2e-9b1a-3c5d7e9f1a2b
  imrelay message recall --server http://imrelay.internal:8080 ID --json")]
    Recall {
        /// The message id (any message of its thread).
        id: String,
        #[command(flatten)]
        gateway: Gateway,
    },
    /// Acknowledge, resolve or silence a message, as a card button would.
    #[command(after_help = "\
Examples:
  imrelay message ack ID --by 张三
  imrelay message ack ID --by oncall --action silence:1h   # a silence in the Alertmanager that sent it
  imrelay message ack ID --by oncall --action resolve")]
    Ack {
        /// The message id (any message of its thread).
        id: String,
        /// Who acknowledges (a name or a user id), shown on the card.
        #[arg(long)]
        by: String,
        /// `ack`, `resolve` or `silence:DURATION` (e.g. `silence:1h`).
        #[arg(long, default_value = "ack")]
        action: String,
        #[command(flatten)]
        gateway: Gateway,
    },
    /// Have the platform push a sent message urgently (Feishu 加急 in the
    /// app, by SMS or by phone; DingTalk DING). SMS and phone draw on the
    /// tenant's paid quota.
    #[command(after_help = "\
Examples:
  imrelay message urgent ID --kind phone --user ou_7d8a6e6df7621556ce0d21922b676706ccs
  imrelay message urgent ID --kind app --user manager1234 --user manager5678 --text 'db-1 disk full, please look'")]
    Urgent {
        /// The message id (any message of its thread).
        id: String,
        /// `app`, `sms` or `phone`.
        #[arg(long, value_parser = ["app", "sms", "phone"])]
        kind: String,
        /// A user to push (Feishu open_id, DingTalk userId); repeat for more.
        #[arg(long = "user", required = true)]
        users: Vec<String>,
        /// What a DING says (default: the message's title or text).
        #[arg(long)]
        text: Option<String>,
        #[command(flatten)]
        gateway: Gateway,
    },
    /// Update a message (its thread's card) in place where the platform can,
    /// else send the new content as a message naming the first.
    #[command(after_help = "\
Examples:
  imrelay message update ID --text 'v1.2 is live'
  imrelay message update ID --title 'CPU high' --body '{\"type\":\"card\",\"text\":\"**resolved**\",\"theme\":\"green\"}'")]
    Update {
        /// The message id (any message of its thread).
        id: String,
        /// The new text.
        #[arg(long, required_unless_present = "body", conflicts_with = "body")]
        text: Option<String>,
        /// The new body as JSON, as `body` of `POST /v1/messages`
        /// (`{"type": "markdown", "text": "..."}`).
        #[arg(long)]
        body: Option<String>,
        /// The new title.
        #[arg(long)]
        title: Option<String>,
        #[command(flatten)]
        gateway: Gateway,
    },
}

/// Where the gateway is, and how to talk to it.
#[derive(Debug, Args)]
pub struct Gateway {
    /// The gateway's base URL.
    #[arg(long, env = "IMRELAY_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// An API key allowed to use the message's channel.
    #[arg(
        long,
        visible_alias = "key",
        env = "IMRELAY_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// Request timeout in seconds.
    #[arg(long, default_value_t = 15)]
    timeout: u64,
    /// Print the gateway's answer as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: MessageCommand) -> ExitCode {
    let gateway = match &cmd {
        MessageCommand::Recall { gateway, .. }
        | MessageCommand::Ack { gateway, .. }
        | MessageCommand::Update { gateway, .. }
        | MessageCommand::Urgent { gateway, .. } => gateway,
    };
    let Some(key) = gateway.api_key.as_deref().filter(|k| !k.is_empty()) else {
        eprintln!(
            "error: `imrelay message` needs an API key: set IMRELAY_API_KEY or pass --api-key"
        );
        return ExitCode::from(2);
    };
    let opts = SubmitOptions {
        idempotency_key: None,
        timeout: Some(Duration::from_secs(gateway.timeout.max(1))),
    };
    let server = gateway.server.as_str();
    let answer = match &cmd {
        MessageCommand::Recall { id, .. } => client::recall(server, key, id, &opts)
            .await
            .map(|v| (recall_summary(&v), v)),
        MessageCommand::Ack { id, by, action, .. } => {
            client::acknowledge(server, key, id, by, Some(action), &opts)
                .await
                .map(|v| (ack_summary(&v), v))
        }
        MessageCommand::Urgent {
            id,
            kind,
            users,
            text,
            ..
        } => client::urgent(server, key, id, kind, users, text.as_deref(), &opts)
            .await
            .map(|v| (urgent_summary(&v), v)),
        MessageCommand::Update {
            id,
            text,
            body,
            title,
            ..
        } => {
            let fields = match update_fields(text.as_deref(), body.as_deref(), title.as_deref()) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            client::update(server, key, id, &fields, &opts)
                .await
                .map(|v| (update_summary(&v), v))
        }
    };
    match answer {
        Ok((summary, v)) => {
            if gateway.json {
                println!("{v}");
            }
            eprint!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => failed(e, gateway.json),
    }
}

/// Report a failed call to the gateway on stderr (and the problem on stdout
/// with `json`); the exit code: 2 a bad `--server`, 3 unreachable or a server
/// error, 1 a refusal.
pub fn failed(e: SubmitError, json: bool) -> ExitCode {
    match e {
        e @ SubmitError::BadServer(_) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        e @ SubmitError::Transport { .. } => {
            eprintln!("error: {e}; is `imrelay serve` running there?");
            ExitCode::from(3)
        }
        SubmitError::Refused {
            status,
            detail,
            field,
            problem,
        } => {
            if json {
                if let Some(p) = &problem {
                    println!("{p}");
                }
            }
            let field = field.map(|f| format!(" [field: {f}]")).unwrap_or_default();
            let mut out = format!("error: the gateway refused (HTTP {status}): {detail}{field}\n");
            if let Some(ds) = problem.as_ref().and_then(|p| p.get("destinations")) {
                out.push_str(&destinations(ds));
            }
            eprint!("{out}");
            ExitCode::from(if status >= 500 { 3 } else { 1 })
        }
    }
}

/// The `PATCH` body: `text` or `body` (a JSON object), and `title`.
fn update_fields(
    text: Option<&str>,
    body: Option<&str>,
    title: Option<&str>,
) -> Result<Value, String> {
    let mut fields = match (text, body) {
        (Some(t), _) => json!({ "text": t }),
        (None, Some(b)) => {
            let v: Value =
                serde_json::from_str(b).map_err(|e| format!("`--body` is not JSON ({e}): {b}"))?;
            if !v.is_object() {
                return Err(format!(
                    "`--body` is a JSON object such as {{\"type\": \"markdown\", \"text\": \"...\"}}, got {v}"
                ));
            }
            json!({ "body": v })
        }
        (None, None) => return Err("give the new content with --text or --body".into()),
    };
    if let Some(t) = title {
        fields["title"] = json!(t);
    }
    Ok(fields)
}

/// One line per destination of a recall or urgent answer (or refusal).
fn destinations(ds: &Value) -> String {
    let mut out = String::new();
    for d in ds.as_array().into_iter().flatten() {
        let target = d["target"].as_str().unwrap_or("?");
        let kind = d["kind"].as_str().unwrap_or("?");
        let parts = d["parts"].as_u64().unwrap_or(0);
        if let Some(urgent) = d["urgent"].as_bool() {
            let what = match (urgent, d["reason"].as_str()) {
                (true, _) => "will push".to_string(),
                (false, Some(reason)) => format!("cannot push: {reason}"),
                (false, None) => "cannot push".to_string(),
            };
            let _ = writeln!(out, "  {target} ({kind}): {what}");
            continue;
        }
        let what = match (d["recall"].as_bool(), d["reason"].as_str()) {
            (Some(true), _) => format!(
                "will be recalled ({parts} part{})",
                if parts == 1 { "" } else { "s" }
            ),
            (_, Some(reason)) => format!("cannot be recalled: {reason}"),
            _ => "cannot be recalled".to_string(),
        };
        let _ = writeln!(out, "  {target} ({kind}): {what}");
    }
    out
}

fn recall_summary(v: &Value) -> String {
    let mut out = format!(
        "recall {} of message {} queued; follow it with GET /v1/messages/{}\n",
        v["id"].as_str().unwrap_or("?"),
        v["of"].as_str().unwrap_or("?"),
        v["id"].as_str().unwrap_or("?"),
    );
    out.push_str(&destinations(&v["destinations"]));
    out
}

fn urgent_summary(v: &Value) -> String {
    let mut out = format!(
        "urgent push {} of message {} queued; follow it with GET /v1/messages/{}\n",
        v["id"].as_str().unwrap_or("?"),
        v["of"].as_str().unwrap_or("?"),
        v["id"].as_str().unwrap_or("?"),
    );
    out.push_str(&destinations(&v["destinations"]));
    out
}

fn ack_summary(v: &Value) -> String {
    let ack = &v["ack"];
    let action = ack["action"].as_str().unwrap_or("ack");
    let who = ack["user_name"]
        .as_str()
        .or(ack["user_id"].as_str())
        .unwrap_or("?");
    let silence = ack["detail"]["silence_id"]
        .as_str()
        .map(|id| format!(" (silence {id})"))
        .unwrap_or_default();
    if v["already"].as_bool() == Some(true) {
        format!("already done: {action} by {who}{silence} stands; nothing changed\n")
    } else {
        format!("{action} recorded, by {who}{silence}; the card update is queued\n")
    }
}

fn update_summary(v: &Value) -> String {
    format!(
        "update {} of message {} queued\n",
        v["id"].as_str().unwrap_or("?"),
        v["of"].as_str().unwrap_or("?"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_fields_take_text_or_a_body_object() {
        assert_eq!(
            update_fields(Some("hi"), None, Some("T")).unwrap(),
            json!({"text": "hi", "title": "T"})
        );
        assert_eq!(
            update_fields(None, Some(r#"{"type":"markdown","text":"**x**"}"#), None).unwrap(),
            json!({"body": {"type": "markdown", "text": "**x**"}})
        );
        assert!(update_fields(None, Some("[1]"), None)
            .unwrap_err()
            .contains("JSON object"));
        assert!(update_fields(None, Some("{"), None)
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn each_destination_of_an_urgent_push_is_one_line() {
        let ds = json!([
            {"target": "ops/feishu_app:cli", "kind": "feishu_app", "urgent": true},
            {"target": "ops/wecom_app:ww", "kind": "wecom_app", "urgent": false,
             "reason": "WeCom has no urgent push about a sent message"},
        ]);
        assert_eq!(
            destinations(&ds),
            "  ops/feishu_app:cli (feishu_app): will push\n  ops/wecom_app:ww (wecom_app): cannot push: WeCom has no urgent push about a sent message\n"
        );
    }

    #[test]
    fn each_destination_of_a_recall_is_one_line() {
        let ds = json!([
            {"target": "ops/feishu_app:cli", "kind": "feishu_app", "parts": 1, "recall": true},
            {"target": "ops/dingtalk_robot:1", "kind": "dingtalk_robot", "parts": 0, "recall": false,
             "reason": "custom robots have no recall API"},
        ]);
        assert_eq!(
            destinations(&ds),
            "  ops/feishu_app:cli (feishu_app): will be recalled (1 part)\n  ops/dingtalk_robot:1 (dingtalk_robot): cannot be recalled: custom robots have no recall API\n"
        );
    }
}
