//! `imrelay send`: one message, one destination, a clear answer.
//!
//! Exit codes: 0 delivered; 1 the platform refused it for good (bad secret,
//! robot gone, content rejected); 3 a temporary failure (network, 5xx, rate
//! limit: retrying later may work); 2 bad flags or config.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use imrelay_sdk::http::Timeouts;
use imrelay_sdk::message::{Body, Button, Mentions, Message};
use imrelay_sdk::{Client, ClientOptions, Outcome, Report};
use serde_json::{json, Map, Value};

const EXAMPLES: &str = "\
Examples:
  # DingTalk robot, signed, markdown with an @mention:
  imrelay send --webhook 'https://oapi.dingtalk.com/robot/send?access_token=XXX' \\
      --secret SECxxx --markdown --title 'Deploy' --at 13800000000 '**v1.2** is live @13800000000'

  # Feishu card with a button, text from a file:
  imrelay send --webhook https://open.feishu.cn/open-apis/bot/v2/hook/XXX --secret S \\
      --title 'Release' --button 'Changelog=https://example.com/cl' --file notes.md

  # WeCom robot, text from stdin:
  echo 'backup done' | imrelay send --webhook 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=XXX'

  # Everything from the environment (CI): IMRELAY_WEBHOOK, IMRELAY_SECRET, IMRELAY_BASE_URL
  imrelay send --markdown \"deploy of $CI_COMMIT_SHORT_SHA finished\"

  # App destinations: any config key with --set, recipients with --to:
  imrelay send --type feishu_app --set app_id=cli_x --set app_secret=S --to ou_123 'hello'

  # Through a running gateway (durable, retried): API key from IMRELAY_API_KEY
  imrelay send --server http://127.0.0.1:8080 --channel ops 'disk almost full'

Exit codes: 0 delivered; 1 refused by the platform (see the code and hint on stderr);
3 temporary failure (retry later); 2 bad flags or config.";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct SendArgs {
    /// The message text (or use --file, or pipe it on stdin).
    text: Option<String>,

    /// Destination type (dingtalk_robot, dingtalk_app, feishu_webhook, feishu_app,
    /// wecom_robot, wecom_app, wechat_template, webhook). Inferred from --webhook.
    #[arg(long = "type", env = "IMRELAY_TYPE", help_heading = "Destination")]
    kind: Option<String>,
    /// Robot webhook URL (DingTalk, Feishu/Lark, WeCom) or a generic webhook URL.
    #[arg(long, env = "IMRELAY_WEBHOOK", help_heading = "Destination")]
    webhook: Option<String>,
    /// Signing secret (DingTalk `SEC...`, Feishu signature secret, Standard Webhooks `whsec_...`).
    #[arg(
        long,
        env = "IMRELAY_SECRET",
        hide_env_values = true,
        help_heading = "Destination"
    )]
    secret: Option<String>,
    /// Platform base URL when it is not the real platform (a mock or a proxy).
    #[arg(long, env = "IMRELAY_BASE_URL", help_heading = "Destination")]
    base_url: Option<String>,
    /// Any other destination config key, as KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", help_heading = "Destination")]
    set: Vec<String>,
    /// A TOML file holding the destination table (`type = "..."` and its keys); flags override it.
    #[arg(long, env = "IMRELAY_DEST_CONFIG", help_heading = "Destination")]
    dest_config: Option<PathBuf>,

    /// Read the text from a file (`-` for stdin).
    #[arg(long, help_heading = "Message")]
    file: Option<PathBuf>,
    /// The text is markdown.
    #[arg(long, help_heading = "Message")]
    markdown: bool,
    /// Title (notification text, card header).
    #[arg(long, help_heading = "Message")]
    title: Option<String>,
    /// Mention a mobile number or user id (repeatable); `all` mentions everyone.
    #[arg(long, value_name = "MOBILE|USER_ID|all", help_heading = "Message")]
    at: Vec<String>,
    /// Add a button, as TEXT=URL (repeatable); makes the message a card.
    #[arg(long, value_name = "TEXT=URL", help_heading = "Message")]
    button: Vec<String>,
    /// Send a link message pointing at this URL.
    #[arg(long, help_heading = "Message")]
    link: Option<String>,
    /// Recipient for app destinations (repeatable).
    #[arg(long, help_heading = "Message")]
    to: Vec<String>,
    /// Message id: platforms with dedup keys will not deliver the same id twice.
    #[arg(long, help_heading = "Message")]
    id: Option<String>,
    /// Send this native platform JSON as is.
    #[arg(long, help_heading = "Message")]
    raw: Option<String>,

    /// Send through a running imrelay gateway instead of directly.
    #[arg(long, env = "IMRELAY_SERVER", help_heading = "Gateway")]
    server: Option<String>,
    /// Gateway channel (with --server).
    #[arg(long, env = "IMRELAY_CHANNEL", help_heading = "Gateway")]
    channel: Option<String>,
    /// Gateway API key (with --server).
    #[arg(
        long,
        env = "IMRELAY_API_KEY",
        hide_env_values = true,
        help_heading = "Gateway"
    )]
    api_key: Option<String>,

    /// Total request timeout in seconds.
    #[arg(long, default_value_t = 15)]
    timeout: u64,
    /// Print the platform's reports as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: SendArgs) -> ExitCode {
    match run_inner(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run_inner(args: SendArgs) -> anyhow::Result<ExitCode> {
    let msg = build_message(&args)?;
    if let Some(server) = &args.server {
        return send_via_gateway(server, &args, &msg).await;
    }
    let config = destination_config(&args)?;
    let client = Client::with_options(ClientOptions {
        timeouts: Timeouts {
            connect: Duration::from_secs(args.timeout.clamp(1, 10)),
            read: Duration::from_secs(args.timeout.max(1)),
            total: Duration::from_secs(args.timeout.max(1)),
        },
        ..Default::default()
    })?;
    let dest = client.build(&config).map_err(|e| {
        let text = e.to_string();
        if text.contains("base_url") {
            anyhow!("{text}\n  (with imrelay send: --base-url URL or IMRELAY_BASE_URL)")
        } else {
            anyhow!(text)
        }
    })?;
    // `deliver` stops at the first part that is not delivered, so a delivered
    // last report means every part went out.
    let reports = imrelay_sdk::deliver(&*dest, &msg).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    let last = reports.last().ok_or_else(|| anyhow!("nothing to send"))?;
    let total = reports.len();
    if last.outcome.is_delivered() {
        let partial: Vec<_> = reports.iter().flat_map(|r| &r.failed_recipients).collect();
        if partial.is_empty() {
            eprintln!(
                "delivered to {}{}",
                dest.kind(),
                if total > 1 {
                    format!(" in {total} parts")
                } else {
                    String::new()
                }
            );
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "delivered to {}, except {} recipient(s):",
            dest.kind(),
            partial.len()
        );
        for f in &partial {
            eprintln!("  {}: {} ({})", f.recipient, f.reason, f.outcome.label());
        }
        return Ok(ExitCode::from(1));
    }
    if total > 1 {
        eprintln!("{} part(s) delivered before this failure:", total - 1);
    }
    eprint!("{}", explain(dest.kind(), last));
    Ok(match last.outcome {
        Outcome::Permanent => ExitCode::from(1),
        _ => ExitCode::from(3),
    })
}

/// The failure, for a person reading a CI log.
fn explain(kind: &str, r: &Report) -> String {
    let what = match r.outcome {
        Outcome::Permanent => "refused the message",
        Outcome::RateLimited { .. } => "rate limited the message",
        Outcome::RefreshToken => "rejected the access token (even after a refresh)",
        _ => "did not take the message (temporary failure)",
    };
    let mut s = format!("error: {kind} {what}\n");
    if let Some(code) = &r.code {
        s.push_str(&format!("  code:    {code}\n"));
    }
    if let Some(st) = r.status {
        s.push_str(&format!("  http:    {st}\n"));
    }
    s.push_str(&format!("  message: {}\n", r.message));
    if let Some(h) = &r.hint {
        s.push_str(&format!("  meaning: {h}\n"));
    }
    match r.outcome {
        Outcome::RateLimited { wait } => s.push_str(&format!(
            "  retry:   wait at least {} s\n",
            wait.as_secs().max(1)
        )),
        Outcome::Retry { .. } => {
            s.push_str("  retry:   temporary; running the command again later may succeed\n")
        }
        _ => {}
    }
    s
}

fn build_message(args: &SendArgs) -> anyhow::Result<Message> {
    let text = read_text(args)?;
    let body = if let Some(raw) = &args.raw {
        let payload: Value = serde_json::from_str(raw).context("--raw is not valid JSON")?;
        Body::Raw {
            platform: None,
            payload,
        }
    } else if let Some(url) = &args.link {
        Body::Link {
            text: text.clone().unwrap_or_default(),
            url: url.clone(),
            pic_url: None,
        }
    } else if !args.button.is_empty() {
        let buttons = args
            .button
            .iter()
            .map(|b| {
                let (t, u) = b
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--button `{b}` must be TEXT=URL"))?;
                Ok(Button {
                    text: t.to_string(),
                    url: u.to_string(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Body::Card {
            text: text.clone().unwrap_or_default(),
            buttons,
            theme: None,
        }
    } else {
        let text = text.ok_or_else(|| {
            anyhow!("no message text: give it as an argument, with --file, or on stdin")
        })?;
        if args.markdown {
            Body::Markdown { text }
        } else {
            Body::Text { text }
        }
    };
    let mut mentions = Mentions::default();
    for a in &args.at {
        let a = a.trim().trim_start_matches('@');
        if a.eq_ignore_ascii_case("all") {
            mentions.all = true;
        } else if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_digit() || c == '+' || c == '-')
        {
            mentions.mobiles.push(a.to_string());
        } else if !a.is_empty() {
            mentions.user_ids.push(a.to_string());
        }
    }
    Ok(Message {
        id: args.id.clone(),
        title: args.title.clone(),
        body,
        mentions,
        recipients: args.to.clone(),
        actions: Vec::new(),
    })
}

fn read_text(args: &SendArgs) -> anyhow::Result<Option<String>> {
    if let Some(t) = &args.text {
        return Ok(Some(t.clone()));
    }
    match &args.file {
        Some(p) if p.as_os_str() == "-" => read_stdin().map(Some),
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read --file {}", p.display()))
            .map(Some),
        None if !std::io::stdin().is_terminal() && args.raw.is_none() => {
            let s = read_stdin()?;
            Ok((!s.is_empty()).then_some(s))
        }
        None => Ok(None),
    }
}

fn read_stdin() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("cannot read stdin")?;
    Ok(s.trim_end_matches('\n').to_string())
}

/// Merge the destination config from the file, then the flags.
fn destination_config(args: &SendArgs) -> anyhow::Result<Value> {
    let mut cfg: Map<String, Value> = match &args.dest_config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read --dest-config {}", p.display()))?;
            let table: toml::Table = toml::from_str(&text)
                .with_context(|| format!("{} is not valid TOML", p.display()))?;
            match serde_json::to_value(table)? {
                Value::Object(m) => m,
                _ => Map::new(),
            }
        }
        None => Map::new(),
    };
    let kind = match (&args.kind, &args.webhook) {
        (Some(k), _) => k.clone(),
        (None, Some(url)) if !cfg.contains_key("type") => infer_type(url).to_string(),
        _ => cfg
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                anyhow!("no destination: give --webhook URL, --type, or --dest-config FILE")
            })?,
    };
    cfg.insert("type".into(), json!(kind));
    if let Some(url) = &args.webhook {
        let key = if kind == "webhook" { "url" } else { "webhook" };
        cfg.insert(key.into(), json!(url));
    }
    if let Some(s) = &args.secret {
        cfg.insert("secret".into(), json!(s));
    }
    if let Some(b) = &args.base_url {
        cfg.insert("base_url".into(), json!(b));
    }
    let mut sets: BTreeMap<String, Value> = BTreeMap::new();
    for kv in &args.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--set `{kv}` must be KEY=VALUE"))?;
        // Numbers and booleans keep their type (agent_id = 123).
        let v = serde_json::from_str::<Value>(v)
            .ok()
            .filter(|v| v.is_number() || v.is_boolean())
            .unwrap_or_else(|| json!(v));
        sets.insert(k.trim().to_string(), v);
    }
    cfg.extend(sets);
    if kind == "webhook" && !cfg.contains_key("url") {
        bail!("the generic webhook needs --webhook URL");
    }
    Ok(Value::Object(cfg))
}

/// Guess the destination type from a robot webhook URL's path, so a pasted
/// URL just works (the host is still checked against the platform's).
fn infer_type(url: &str) -> &'static str {
    if url.contains("/robot/send") {
        "dingtalk_robot"
    } else if url.contains("/open-apis/bot/v2/hook/") {
        "feishu_webhook"
    } else if url.contains("/cgi-bin/webhook/send") {
        "wecom_robot"
    } else {
        "webhook"
    }
}

async fn send_via_gateway(
    server: &str,
    args: &SendArgs,
    msg: &Message,
) -> anyhow::Result<ExitCode> {
    use imrelay_gateway::client::{submit_with, SubmitError, SubmitOptions};
    let channel = args
        .channel
        .as_deref()
        .ok_or_else(|| anyhow!("--server needs --channel NAME"))?;
    let key = args
        .api_key
        .as_deref()
        .ok_or_else(|| anyhow!("--server needs an API key: set IMRELAY_API_KEY or --api-key"))?;
    let opts = SubmitOptions {
        idempotency_key: args.id.clone(),
        timeout: Some(Duration::from_secs(args.timeout.max(1))),
    };
    match submit_with(server, key, channel, msg, &opts).await {
        Ok(id) => {
            if args.json {
                println!("{}", json!({ "id": id }));
            }
            eprintln!("accepted by the gateway as message {id}; it will be delivered durably");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ SubmitError::BadServer(_)) => Err(e.into()),
        Err(e @ SubmitError::Transport { .. }) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(3))
        }
        Err(e @ SubmitError::Refused { status, .. }) => {
            eprintln!("error: {e}");
            Ok(if status >= 500 {
                ExitCode::from(3)
            } else {
                ExitCode::from(1)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_type_from_pasted_urls() {
        assert_eq!(
            infer_type("https://oapi.dingtalk.com/robot/send?access_token=x"),
            "dingtalk_robot"
        );
        assert_eq!(
            infer_type("https://open.larksuite.com/open-apis/bot/v2/hook/x"),
            "feishu_webhook"
        );
        assert_eq!(
            infer_type("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x"),
            "wecom_robot"
        );
        assert_eq!(infer_type("https://example.com/hook"), "webhook");
    }
}
