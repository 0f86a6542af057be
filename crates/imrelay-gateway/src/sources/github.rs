//! GitHub `workflow_run` and `deployment_status` events (repository or
//! organization webhooks, content type `application/json`), as deploy
//! notices: a run or deployment is one thread, so "in progress" is updated
//! to its conclusion. The event name comes in `X-GitHub-Event`; the body is
//! signed with the webhook's secret in `X-Hub-Signature-256`.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{key_of, required, text_at, Event, Parsed, PayloadError, Status};

/// The events a GitHub source keeps (`X-GitHub-Event`).
pub const EVENTS: [&str; 2] = ["workflow_run", "deployment_status"];

/// A `type = "github"` source's settings.
#[derive(Clone)]
pub struct Settings {
    /// The webhook's secret.
    pub secret: String,
    pub events: Vec<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("secret", &"***")
            .field("events", &self.events)
            .finish()
    }
}

impl Settings {
    /// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under
    /// the secret; the MAC is compared in constant time.
    pub fn signature_matches(&self, header: &str, body: &[u8]) -> bool {
        let Some(sig) = header
            .strip_prefix("sha256=")
            .and_then(|h| hex::decode(h).ok())
        else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes()) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    }
}

pub fn parse(s: &Settings, event_name: &str, body: &Value) -> Result<Parsed, PayloadError> {
    if event_name == "ping" {
        return Ok(Parsed::Ignored(
            "GitHub's ping: the webhook reaches imrelay".into(),
        ));
    }
    if !s.events.iter().any(|e| e == event_name) {
        return Ok(Parsed::Ignored(format!(
            "GitHub `{event_name}` events are not in this source's `events`"
        )));
    }
    let event = match event_name {
        "workflow_run" => workflow_run(body)?,
        "deployment_status" => deployment_status(body)?,
        other => {
            return Err(PayloadError::new(
                "X-GitHub-Event",
                format!("`{other}` events are not understood; keep `events` to workflow_run and deployment_status"),
            ))
        }
    };
    Ok(Parsed::Events(vec![event]))
}

fn workflow_run(body: &Value) -> Result<Event, PayloadError> {
    let id = required(body, "/workflow_run/id")?;
    let repo = required(body, "/repository/full_name")?;
    let run_status = required(body, "/workflow_run/status")?;
    let conclusion = text_at(body, "/workflow_run/conclusion");
    let status = match (run_status.as_str(), conclusion.as_deref()) {
        ("completed", Some("success")) => Status::Succeeded,
        ("completed", Some("failure" | "timed_out" | "startup_failure")) => Status::Failed,
        ("completed", _) => Status::Canceled,
        _ => Status::Running,
    };
    let name = text_at(body, "/workflow_run/name").unwrap_or_else(|| "workflow".into());
    let branch = text_at(body, "/workflow_run/head_branch").unwrap_or_default();
    let number = text_at(body, "/workflow_run/run_number").unwrap_or_default();
    let outcome = conclusion.clone().unwrap_or(run_status);
    let mut text =
        format!("**Repository:** {repo}\n\n**Branch:** {branch}\n\n**Status:** {outcome}");
    if let Some(t) = text_at(body, "/workflow_run/display_title") {
        let sha = text_at(body, "/workflow_run/head_sha").unwrap_or_default();
        text.push_str(&format!(
            "\n\n**Commit:** {} {t}",
            sha.get(..7).unwrap_or(&sha)
        ));
    }
    if let Some(a) =
        text_at(body, "/workflow_run/actor/login").or_else(|| text_at(body, "/sender/login"))
    {
        text.push_str(&format!("\n\n**By:** {a}"));
    }
    let mut e = Event::new(status, format!("{name} #{number} · {repo}"), text);
    e.label("repository", repo.clone());
    e.label("branch", branch);
    e.label("workflow", name);
    e.label("event", "workflow_run");
    e.label("conclusion", conclusion.unwrap_or_default());
    e.thread = Some(key_of(&[("repository", &repo), ("run", &id)]));
    if let Some(u) = text_at(body, "/workflow_run/html_url") {
        e.link("Run", &u);
    }
    Ok(e)
}

fn deployment_status(body: &Value) -> Result<Event, PayloadError> {
    let id = required(body, "/deployment/id")?;
    let repo = required(body, "/repository/full_name")?;
    let state = required(body, "/deployment_status/state")?;
    let status = match state.as_str() {
        "success" => Status::Succeeded,
        "failure" | "error" => Status::Failed,
        "inactive" => Status::Canceled,
        _ => Status::Running,
    };
    let env = text_at(body, "/deployment_status/environment")
        .or_else(|| text_at(body, "/deployment/environment"))
        .unwrap_or_default();
    let git_ref = text_at(body, "/deployment/ref").unwrap_or_default();
    let sha = text_at(body, "/deployment/sha").unwrap_or_default();
    let mut text = format!(
        "**Repository:** {repo}\n\n**Environment:** {env}\n\n**Ref:** {git_ref} {}\n\n**Status:** {state}",
        sha.get(..7).unwrap_or(&sha)
    );
    if let Some(d) = text_at(body, "/deployment_status/description") {
        text.push_str(&format!("\n\n{d}"));
    }
    if let Some(a) =
        text_at(body, "/deployment_status/creator/login").or_else(|| text_at(body, "/sender/login"))
    {
        text.push_str(&format!("\n\n**By:** {a}"));
    }
    let mut e = Event::new(status, format!("Deploy to {env} · {repo}"), text);
    e.label("repository", repo.clone());
    e.label("environment", env);
    e.label("ref", git_ref);
    e.label("deployment_status", state);
    e.label("event", "deployment_status");
    e.thread = Some(key_of(&[("repository", &repo), ("deployment", &id)]));
    for (text, ptr) in [
        ("Logs", "/deployment_status/log_url"),
        ("Details", "/deployment_status/target_url"),
        ("Open", "/deployment_status/environment_url"),
    ] {
        if let Some(u) = text_at(body, ptr) {
            e.link(text, &u);
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(secret: &str) -> Settings {
        Settings {
            secret: secret.into(),
            events: EVENTS.map(String::from).to_vec(),
        }
    }

    /// The example in GitHub's "Validating webhook deliveries".
    #[test]
    fn the_signature_matches_githubs_published_example() {
        let s = settings("It's a Secret to Everybody");
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(s.signature_matches(good, b"Hello, World!"));
        assert!(!s.signature_matches(good, b"Hello, World?"));
        assert!(!settings("another").signature_matches(good, b"Hello, World!"));
        assert!(!s.signature_matches(&good.replace("sha256=", "sha1="), b"Hello, World!"));
        assert!(!s.signature_matches("sha256=zz", b"Hello, World!"));
    }

    #[test]
    fn a_workflow_run_is_threaded_by_run_id_and_concludes() {
        let mut body = json!({"action": "in_progress",
            "workflow_run": {"id": 30433642, "name": "Build", "head_branch": "main", "head_sha": "acb5820ced9479c074f688cc328bf03f341a511d",
                "display_title": "Update README.md", "run_number": 562, "status": "in_progress", "conclusion": null,
                "html_url": "https://github.com/octo-org/octo-repo/actions/runs/30433642", "actor": {"login": "octocat"}},
            "repository": {"full_name": "octo-org/octo-repo"}, "sender": {"login": "octocat"}});
        let Parsed::Events(ev) = parse(&settings("s"), "workflow_run", &body).unwrap() else {
            panic!()
        };
        assert_eq!(ev[0].status, Status::Running);
        assert_eq!(ev[0].title, "Build #562 · octo-org/octo-repo");
        assert_eq!(
            ev[0].thread.as_deref(),
            Some("repository=octo-org/octo-repo,run=30433642")
        );
        body["workflow_run"]["status"] = json!("completed");
        body["workflow_run"]["conclusion"] = json!("failure");
        let Parsed::Events(ev) = parse(&settings("s"), "workflow_run", &body).unwrap() else {
            panic!()
        };
        assert_eq!(ev[0].status, Status::Failed);
        assert!(matches!(
            parse(&settings("s"), "ping", &json!({})).unwrap(),
            Parsed::Ignored(_)
        ));
        assert!(matches!(
            parse(&settings("s"), "push", &json!({})).unwrap(),
            Parsed::Ignored(_)
        ));
    }

    #[test]
    fn a_deployment_status_is_threaded_by_deployment_id() {
        let mut body = json!({"action": "created",
            "deployment_status": {"id": 2, "state": "in_progress", "environment": "production",
                "description": "Deployment started", "target_url": "https://example.com/deploy/2",
                "creator": {"login": "octocat"}},
            "deployment": {"id": 145988746, "sha": "a8a1ec5b9bc8fa4b5a5e2b2b4b77e4f4d4cbd8f1", "ref": "main",
                "task": "deploy", "environment": "production"},
            "repository": {"full_name": "octo-org/octo-repo"}, "sender": {"login": "octocat"}});
        let Parsed::Events(ev) = parse(&settings("s"), "deployment_status", &body).unwrap() else {
            panic!()
        };
        assert_eq!(ev[0].status, Status::Running);
        assert_eq!(ev[0].title, "Deploy to production · octo-org/octo-repo");
        assert_eq!(
            ev[0].thread.as_deref(),
            Some("repository=octo-org/octo-repo,deployment=145988746")
        );
        assert_eq!(ev[0].links[0].text, "Details");
        body["deployment_status"]["state"] = json!("error");
        let Parsed::Events(ev) = parse(&settings("s"), "deployment_status", &body).unwrap() else {
            panic!()
        };
        assert_eq!(ev[0].status, Status::Failed);
        body["deployment_status"]["state"] = json!("success");
        let Parsed::Events(ev) = parse(&settings("s"), "deployment_status", &body).unwrap() else {
            panic!()
        };
        assert_eq!(ev[0].status, Status::Succeeded);
        let no_repo = json!({"deployment": {"id": 1}, "deployment_status": {"state": "success"}});
        assert_eq!(
            parse(&settings("s"), "deployment_status", &no_repo)
                .unwrap_err()
                .field,
            "repository.full_name"
        );
    }
}
