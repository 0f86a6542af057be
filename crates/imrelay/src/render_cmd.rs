//! `imrelay render`: what a running gateway would send for a message, per
//! destination, without sending or storing it (`POST /v1/render`). For
//! trying a template on sample data before wiring it to a route.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

/// Arguments of `imrelay render`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  imrelay render --channel alerts 'disk 91% full on db-1'
  imrelay render --channel alerts --template firing --data @alert.json")]
pub struct RenderArgs {
    /// The gateway's base URL.
    #[arg(long, env = "IMRELAY_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// An API key that may use the channel.
    #[arg(long, env = "IMRELAY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The channel whose destinations render it.
    #[arg(long)]
    channel: String,
    #[arg(long)]
    title: Option<String>,
    /// A template (`[templates.NAME]` or a built-in) instead of TEXT.
    #[arg(long, conflicts_with = "text")]
    template: Option<String>,
    /// The template's context: JSON, or @FILE holding JSON.
    #[arg(long, requires = "template")]
    data: Option<String>,
    /// Plain text to render.
    text: Option<String>,
}

/// 0 when the gateway rendered it; 1 when it refused (the reason is
/// printed) or could not be reached; 2 for bad arguments.
pub async fn run(args: RenderArgs) -> ExitCode {
    let Some(key) = args.api_key.clone().filter(|k| !k.is_empty()) else {
        eprintln!(
            "error: `imrelay render` needs an API key: set IMRELAY_API_KEY or pass --api-key"
        );
        return ExitCode::from(2);
    };
    let body = match request(&args) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match call(&args.server, &key, &body).await {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn request(args: &RenderArgs) -> Result<Value, String> {
    let mut body = json!({ "channel": args.channel });
    if let Some(t) = &args.title {
        body["title"] = json!(t);
    }
    match (&args.template, &args.text) {
        (Some(t), _) => {
            body["template"] = json!(t);
            if let Some(d) = &args.data {
                let text = match d.strip_prefix('@') {
                    Some(path) => std::fs::read_to_string(path)
                        .map_err(|e| format!("--data: cannot read {path}: {e}"))?,
                    None => d.clone(),
                };
                let v: Value =
                    serde_json::from_str(&text).map_err(|e| format!("--data is not JSON: {e}"))?;
                body["data"] = v;
            }
        }
        (None, Some(text)) => body["text"] = json!(text),
        (None, None) => return Err("give TEXT or --template NAME".into()),
    }
    Ok(body)
}

async fn call(server: &str, key: &str, body: &Value) -> Result<Value, String> {
    let mut url =
        url::Url::parse(server).map_err(|e| format!("--server `{server}` is not a URL ({e})"))?;
    url.path_segments_mut()
        .map_err(|()| format!("--server `{server}` cannot be a base URL"))?
        .pop_if_empty()
        .extend(["v1", "render"]);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .post(url)
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach {server}: {}", e.without_url()))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let v: Option<Value> = serde_json::from_str(&text).ok();
    match v {
        Some(v) if status == 200 => Ok(v),
        Some(p) => Err(format!(
            "the gateway refused it ({status}): {}{}",
            p["detail"].as_str().unwrap_or(&text),
            p["field"]
                .as_str()
                .map(|f| format!(" [field {f}]"))
                .unwrap_or_default()
        )),
        None => Err(format!(
            "the gateway answered {status}: {}",
            text.chars().take(300).collect::<String>()
        )),
    }
}
