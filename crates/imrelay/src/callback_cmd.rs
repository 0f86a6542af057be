//! `imrelay callback fire`: play a platform and send one encrypted, signed
//! callback to a URL (an imrelay gateway's `/v1/callbacks/{name}`, or any
//! receiver), then judge the answer as the platform would.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use imrelay_mock::callback::{fire, CallbackSpec};

#[derive(Debug, Subcommand)]
pub enum CallbackCommand {
    /// Fire one callback (encrypted and signed as the platform does) and print the outcome.
    Fire(FireArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "\
The spec is JSON: kind (wecom_verify, wecom_message, wecom_card_action, wechat_message,
dingtalk_event, dingtalk_card_action, feishu_event, feishu_url_verification,
feishu_card_action), url, and the
app's secrets: token, encoding_aes_key, receive_id (WeCom corp id / WeChat appid /
DingTalk app key), encrypt_key (Feishu); optional payload (the plaintext event),
timestamp, nonce, agent_id, openid, to_user_name, timeout_ms. Without a payload a sample
event is sent.

Card clicks (feishu_card_action, wecom_card_action, dingtalk_card_action) name the button
clicked: message (the imrelay message id, required), action (default ack), user (Feishu
open_id / WeCom UserID / DingTalk userId), and optionally open_message_id (Feishu),
task_id (WeCom) or out_track_id (DingTalk; its token is the card callback URL's). The event carries the button
value imrelay draws: {\"imrelay_message\": message, \"imrelay_action\": action}.

Examples:
  # A WeCom message to a gateway's [[callbacks]] app named wecom-ops:
  imrelay callback fire http://127.0.0.1:8080/v1/callbacks/wecom-ops --spec '{
    \"kind\": \"wecom_message\", \"token\": \"QDG6eK\",
    \"encoding_aes_key\": \"jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C\",
    \"receive_id\": \"ww5823bf96d3bd56c7\"}'

  # A Feishu event from a file, its own payload inside; JSON output:
  imrelay callback fire http://127.0.0.1:8080/v1/callbacks/feishu-main --spec @feishu.json --json

  # Zhang San acknowledges alert msg-42 from a Feishu card (the answer's toast and card
  # are printed; Feishu waits 3 s):
  imrelay callback fire http://127.0.0.1:8080/v1/callbacks/feishu-main --spec '{
    \"kind\": \"feishu_card_action\", \"encrypt_key\": \"k\", \"token\": \"t\",
    \"message\": \"msg-42\", \"action\": \"ack\", \"user\": \"ou_zhangsan\",
    \"open_message_id\": \"om_x\", \"timeout_ms\": 3000}'

  # The same click on a WeCom button card (a fresh ResponseCode rides along):
  imrelay callback fire http://127.0.0.1:8080/v1/callbacks/wecom-ops --spec '{
    \"kind\": \"wecom_card_action\", \"token\": \"QDG6eK\",
    \"encoding_aes_key\": \"jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C\",
    \"receive_id\": \"ww5823bf96d3bd56c7\", \"message\": \"msg-42\", \"action\": \"silence:1h\",
    \"user\": \"zhangsan\"}'

  # A replay-window check: an hour-old timestamp must be refused (exit 1):
  imrelay callback fire URL --spec '{\"kind\":\"feishu_event\",\"encrypt_key\":\"k\",\"token\":\"t\",\"timestamp\":1700000000}'

Exit status: 0 when the platform would count the callback delivered (HTTP 200 and a
valid answer), 1 when it would not, 2 when the spec is unusable or the request failed.")]
pub struct FireArgs {
    /// Where to send it (overrides the spec's `url`).
    url: Option<String>,
    /// The CallbackSpec: inline JSON, `@file.json`, or a path to a JSON file.
    #[arg(long, short)]
    spec: String,
    /// Print the whole result (request sent, answer, judgement) as JSON.
    #[arg(long)]
    json: bool,
}

fn read_spec(arg: &str) -> Result<String, String> {
    let trimmed = arg.trim_start();
    if trimmed.starts_with('{') {
        return Ok(arg.to_string());
    }
    let path = arg.strip_prefix('@').unwrap_or(arg);
    std::fs::read_to_string(path)
        .map_err(|e| format!("`--spec`: not inline JSON, and cannot read file `{path}`: {e}"))
}

pub async fn run(cmd: CallbackCommand) -> ExitCode {
    let CallbackCommand::Fire(args) = cmd;
    let text = match read_spec(&args.spec) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // The URL may come from the command line only; fill it before parsing.
    let mut value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: `--spec` is not valid JSON: {e}");
            return ExitCode::from(2);
        }
    };
    if let (Some(url), Some(obj)) = (&args.url, value.as_object_mut()) {
        obj.insert("url".into(), serde_json::Value::String(url.clone()));
    }
    if value.get("url").is_none() {
        eprintln!("error: give the URL as an argument or as `url` in the spec");
        return ExitCode::from(2);
    }
    let spec: CallbackSpec = match serde_json::from_value(value) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: `--spec`: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match fire(spec).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&result) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        println!("{} {}", result.request.method, result.request.url);
        println!("HTTP {}", result.status);
        if let Some(r) = &result.reply {
            println!("reply: {r}");
        }
        if !result.response_body.is_empty() && result.reply.is_none() {
            println!("body: {}", result.response_body);
        }
        match &result.reply_error {
            None if result.ok => println!("ok: the platform would count this callback delivered"),
            None => println!("not ok"),
            Some(e) => println!("not ok: {e}"),
        }
    }
    if result.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
