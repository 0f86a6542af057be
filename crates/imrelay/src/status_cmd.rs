//! `imrelay status`: a running gateway's state at a glance, from
//! `GET /v1/status`: channels and destinations with their breaker states,
//! queue depths, recent success rate and the dead-letter queue.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

/// Arguments of `imrelay status`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  IMRELAY_API_KEY=... imrelay status
  imrelay status --server http://imrelay.internal:8080 --json")]
pub struct StatusArgs {
    /// The gateway's base URL.
    #[arg(long, env = "IMRELAY_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// An API key (any key works; a key limited to some channels sees only those).
    #[arg(long, env = "IMRELAY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Print the raw JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

/// Run `imrelay status`: 0 when the gateway answered, 1 when it could not be
/// reached or refused the key.
pub async fn run(args: StatusArgs) -> ExitCode {
    let Some(key) = args.api_key.filter(|k| !k.is_empty()) else {
        eprintln!(
            "error: `imrelay status` needs an API key: set IMRELAY_API_KEY or pass --api-key"
        );
        return ExitCode::from(2);
    };
    match fetch(&args.server, &key).await {
        Ok(v) if args.json => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(v) => {
            print!("{}", render(&args.server, &v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn fetch(server: &str, key: &str) -> Result<Value, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!("{}/v1/status", server.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let resp = client
        .get(&url)
        .bearer_auth(key)
        .send()
        .await
        .map_err(|e| {
            format!("cannot reach the gateway at {server}: {e}; is `imrelay serve` running there?")
        })?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| {
        format!("the gateway at {server} answered {status} with a body that is not JSON: {e}")
    })?;
    if !status.is_success() {
        let detail = body["detail"].as_str().unwrap_or("no detail");
        return Err(format!(
            "the gateway refused the status request (HTTP {}): {detail}",
            status.as_u16()
        ));
    }
    Ok(body)
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn age(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

/// The summary text for a `/v1/status` body.
pub fn render(server: &str, v: &Value) -> String {
    let mut out = String::new();
    let q = &v["queue"];
    let accepting = if v["accepting"].as_bool() == Some(false) {
        "DRAINING (not accepting messages)"
    } else {
        "accepting messages"
    };
    let _ = writeln!(
        out,
        "imrelay at {server}: {accepting}, store {}",
        v["store"].as_str().unwrap_or("?")
    );
    let oldest = q["oldest_pending_age_ms"]
        .as_i64()
        .map(|ms| format!(", oldest waiting {}", age(ms)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Queue: {} pending, {} in flight, {} delivered, {} merged{oldest}",
        n(&q["pending"]),
        n(&q["in_flight"]),
        n(&q["done"]),
        n(&q["merged"])
    );
    let dead = n(&q["dead"]);
    let _ = writeln!(
        out,
        "Dead-letter queue: {dead}{}",
        if dead > 0 {
            " (see GET /v1/dlq; replay with POST /v1/dlq/replay)"
        } else {
            ""
        }
    );
    let c = &v["dispatch"]["counters"];
    let (delivered, retried, dead_c) = (n(&c["delivered"]), n(&c["retried"]), n(&c["dead"]));
    // Settled deliveries only: a retry is a failed attempt, not an outcome.
    let settled = delivered + dead_c;
    if settled > 0 {
        let _ = writeln!(
            out,
            "Success rate since start: {:.1}% ({delivered} delivered, {dead_c} dead; {retried} retries, {} rate limited)",
            100.0 * delivered as f64 / settled as f64,
            n(&c["rate_limited"])
        );
    } else {
        let _ = writeln!(out, "Success rate since start: no deliveries yet");
    }

    // Destinations: config from `channels`, live state from `dispatch`, counts
    // from `queue.by_target` (targets are "channel/destination").
    let dests = v["dispatch"]["destinations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let targets = q["by_target"].as_array().cloned().unwrap_or_default();
    let mut rows = vec![[
        "CHANNEL".to_string(),
        "DESTINATION".into(),
        "BREAKER".into(),
        "RECENT OK".into(),
        "PENDING".into(),
        "IN FLIGHT".into(),
        "DEAD".into(),
    ]];
    for ch in v["channels"].as_array().cloned().unwrap_or_default() {
        let name = ch["name"].as_str().unwrap_or("?");
        let pool = ch["pool"].as_bool() == Some(true);
        for d in ch["destinations"].as_array().cloned().unwrap_or_default() {
            let key = d["key"].as_str().unwrap_or("?");
            let live = dests.iter().find(|x| x["key"] == key);
            let breaker = match live {
                Some(l) => {
                    let state = l["breaker"]["state"]
                        .as_str()
                        .unwrap_or("?")
                        .replace('_', "-");
                    if state == "closed" {
                        state
                    } else {
                        state.to_uppercase()
                    }
                }
                None => "idle".into(),
            };
            let ok = live
                .and_then(|l| l["error_rate"].as_f64())
                .map(|e| format!("{:.0}%", 100.0 * (1.0 - e)))
                .unwrap_or_else(|| "-".into());
            let target = if pool {
                format!("{name}/pool")
            } else {
                format!("{name}/{key}")
            };
            let t = targets.iter().find(|t| t["target"] == target.as_str());
            let count = |f: &str| t.map(|t| n(&t[f])).unwrap_or(0).to_string();
            rows.push([
                name.to_string(),
                if pool {
                    format!("{key} (pool)")
                } else {
                    key.to_string()
                },
                breaker,
                ok,
                count("pending"),
                count("in_flight"),
                count("dead"),
            ]);
        }
        if let Some(fb) = ch["fallback"].as_str() {
            rows.push([
                name.to_string(),
                format!("-> fallback: {fb}"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    let _ = writeln!(out);
    if rows.len() == 1 {
        let _ = writeln!(out, "No channels visible to this key.");
        return out;
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn summary_shows_queue_breakers_and_dlq() {
        let v = serde_json::json!({
            "store": "sqlite",
            "accepting": true,
            "queue": {
                "messages": 10, "pending": 3, "in_flight": 1, "done": 40, "dead": 2, "merged": 0,
                "oldest_pending_age_ms": 95000,
                "by_target": [
                    {"target": "alerts/dingtalk_robot:1a2b", "pending": 3, "in_flight": 1, "dead": 2}
                ]
            },
            "channels": [
                {"name": "alerts", "pool": false, "fallback": "oncall",
                 "destinations": [{"key": "dingtalk_robot:1a2b", "type": "dingtalk_robot"}]},
                {"name": "oncall", "pool": false, "fallback": null,
                 "destinations": [{"key": "feishu_webhook:9f8e", "type": "feishu_webhook"}]}
            ],
            "dispatch": {
                "counters": {"sent": 45, "delivered": 40, "retried": 4, "rate_limited": 0, "dead": 2},
                "destinations": [
                    {"key": "dingtalk_robot:1a2b", "breaker": {"state": "open", "until": 1}, "error_rate": 0.75}
                ]
            }
        });
        let text = render("http://127.0.0.1:8080", &v);
        assert_eq!(
            text,
            "imrelay at http://127.0.0.1:8080: accepting messages, store sqlite
Queue: 3 pending, 1 in flight, 40 delivered, 0 merged, oldest waiting 95s
Dead-letter queue: 2 (see GET /v1/dlq; replay with POST /v1/dlq/replay)
Success rate since start: 95.2% (40 delivered, 2 dead; 4 retries, 0 rate limited)

CHANNEL  DESTINATION          BREAKER  RECENT OK  PENDING  IN FLIGHT  DEAD
alerts   dingtalk_robot:1a2b  OPEN     25%        3        1          2
alerts   -> fallback: oncall
oncall   feishu_webhook:9f8e  idle     -          0        0          0
"
        );
    }
}
