//! `imrelay oncall`: who is on call on a running gateway's schedules, and
//! temporary overrides (`GET /v1/oncall`, `POST`/`DELETE
//! /v1/oncall/{schedule}/overrides`).
//!
//! Exit codes, as `imrelay message`: 0 done, 1 the gateway refused (its
//! problem's detail on stderr), 2 bad arguments, 3 the gateway could not be
//! reached or failed.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use imrelay_gateway::client::{self, SubmitOptions};
use serde_json::Value;

/// Arguments of `imrelay oncall`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  IMRELAY_API_KEY=... imrelay oncall                 # every schedule: who now, who next
  imrelay oncall dba
  imrelay oncall dba --override lisi --for 8h        # lisi takes the next 8 hours
  imrelay oncall dba --override lisi --from 2026-12-24T18:00:00+08:00 --for 3d
  imrelay oncall dba --delete-override 01936f1e-...")]
pub struct OncallArgs {
    /// One schedule (default: every schedule).
    schedule: Option<String>,
    /// Put this person (a `[[people]]` name) on call instead.
    #[arg(long, requires_all = ["schedule", "for_"], conflicts_with = "delete_override")]
    r#override: Option<String>,
    /// When the override starts (RFC 3339; default now).
    #[arg(long, requires = "override")]
    from: Option<String>,
    /// How long the override lasts, e.g. `8h`, `3d`.
    #[arg(long = "for", id = "for_", requires = "override")]
    for_: Option<String>,
    /// Delete this override.
    #[arg(long, requires = "schedule")]
    delete_override: Option<String>,
    /// The gateway's base URL.
    #[arg(long, env = "IMRELAY_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// An API key (overrides need a key for every channel).
    #[arg(
        long,
        visible_alias = "key",
        env = "IMRELAY_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// Print the gateway's answer as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: OncallArgs) -> ExitCode {
    let Some(key) = args.api_key.as_deref().filter(|k| !k.is_empty()) else {
        eprintln!(
            "error: `imrelay oncall` needs an API key: set IMRELAY_API_KEY or pass --api-key"
        );
        return ExitCode::from(2);
    };
    let opts = SubmitOptions {
        idempotency_key: None,
        timeout: Some(Duration::from_secs(15)),
    };
    let server = args.server.as_str();
    let schedule = args.schedule.as_deref();
    let answer = if let (Some(person), Some(s)) = (&args.r#override, schedule) {
        let span = match override_span(args.from.as_deref(), args.for_.as_deref().unwrap_or("")) {
            Ok(span) => span,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        client::add_override(server, key, s, person, (&span.0, &span.1), &opts)
            .await
            .map(|v| {
                let line = format!(
                    "{} is on call on {s} from {} until {} (override {})\n",
                    v["person"].as_str().unwrap_or(person),
                    v["startsAt"].as_str().unwrap_or("?"),
                    v["endsAt"].as_str().unwrap_or("?"),
                    v["id"].as_str().unwrap_or("?")
                );
                (line, v)
            })
    } else if let (Some(id), Some(s)) = (&args.delete_override, schedule) {
        client::delete_override(server, key, s, id, &opts)
            .await
            .map(|()| (format!("override {id} of {s} deleted\n"), Value::Null))
    } else {
        client::oncall(server, key, schedule, &opts)
            .await
            .map(|v| (summary(&v), v))
    };
    match answer {
        Ok((text, v)) => {
            if args.json {
                println!("{v}");
            } else {
                print!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => crate::message_cmd::failed(e, args.json),
    }
}

/// The override's start and end as RFC 3339, from `--from` (default now)
/// and `--for`.
fn override_span(from: Option<&str>, duration: &str) -> Result<(String, String), String> {
    let start = match from {
        Some(f) => f
            .parse::<jiff::Timestamp>()
            .map_err(|e| format!("--from `{f}` is not an RFC 3339 time ({e})"))?,
        None => jiff::Timestamp::now(),
    };
    let d = humantime::parse_duration(duration)
        .map_err(|e| format!("--for `{duration}` is not a duration ({e}); write e.g. 8h or 3d"))?;
    let end = start
        .checked_add(jiff::SignedDuration::try_from(d).map_err(|e| e.to_string())?)
        .map_err(|e| format!("--for `{duration}` is too long ({e})"))?;
    Ok((start.to_string(), end.to_string()))
}

/// One schedule (or a list) as lines: who now and until when, who next.
fn summary(v: &Value) -> String {
    let list = match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    let mut out = String::new();
    if list.is_empty() {
        out.push_str("no schedules are configured ([[schedules]])\n");
    }
    for s in &list {
        let who = |shift: &Value| {
            let display = shift["display"].as_str().unwrap_or("?");
            let person = shift["person"].as_str().unwrap_or("?");
            if display == person {
                person.to_string()
            } else {
                format!("{display} ({person})")
            }
        };
        let _ = write!(out, "{}: ", s["schedule"].as_str().unwrap_or("?"));
        match s.get("now") {
            Some(now) => {
                let _ = write!(out, "{}", who(now));
                if let Some(u) = now["until"].as_str() {
                    let _ = write!(out, " until {u}");
                }
                if now.get("overrideId").is_some() {
                    out.push_str(" (override)");
                }
            }
            None => out.push_str("nobody on call"),
        }
        if let Some(next) = s.get("next") {
            let _ = write!(
                out,
                "; next {} from {}",
                who(next),
                next["from"].as_str().unwrap_or("?")
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_schedule_is_one_line_with_now_and_next() {
        let v = json!([{"schedule": "dba",
            "now": {"person": "zhangsan", "display": "张三", "from": "2026-12-01T03:00:00Z", "until": "2026-12-07T02:00:00Z"},
            "next": {"person": "lisi", "display": "lisi", "from": "2026-12-07T02:00:00Z"},
            "overrides": []},
            {"schedule": "web", "overrides": []}]);
        assert_eq!(
            summary(&v),
            "dba: 张三 (zhangsan) until 2026-12-07T02:00:00Z; next lisi from 2026-12-07T02:00:00Z\nweb: nobody on call\n"
        );
    }

    #[test]
    fn an_override_span_starts_at_from_and_lasts_for() {
        let (s, e) = override_span(Some("2026-12-24T10:00:00Z"), "8h").unwrap();
        assert_eq!(
            (s.as_str(), e.as_str()),
            ("2026-12-24T10:00:00Z", "2026-12-24T18:00:00Z")
        );
        assert!(override_span(None, "soon").unwrap_err().contains("--for"));
        assert!(override_span(Some("tomorrow"), "1h")
            .unwrap_err()
            .contains("--from"));
    }
}
