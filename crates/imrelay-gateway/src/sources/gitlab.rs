//! GitLab pipeline and deployment events (project webhooks), as deploy
//! notices: a pipeline or deployment is one thread, so "running" is updated
//! to "success" or "failed". GitLab sends the webhook's secret token in
//! `X-Gitlab-Token`.

use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{key_of, required, text_at, Event, Parsed, PayloadError, Status};

/// The events a GitLab source keeps (`object_kind`).
pub const EVENTS: [&str; 2] = ["pipeline", "deployment"];

/// A `type = "gitlab"` source's settings.
#[derive(Clone)]
pub struct Settings {
    /// The webhook's secret token.
    pub token: String,
    /// `object_kind`s to notify about; others are answered 200 and dropped.
    pub events: Vec<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("token", &"***")
            .field("events", &self.events)
            .finish()
    }
}

impl Settings {
    /// Whether `sent` (the `X-Gitlab-Token` header) is the token, compared
    /// in constant time.
    pub fn token_matches(&self, sent: &str) -> bool {
        let (a, b): ([u8; 32], [u8; 32]) = (
            Sha256::digest(sent.as_bytes()).into(),
            Sha256::digest(self.token.as_bytes()).into(),
        );
        bool::from(a.ct_eq(&b))
    }
}

pub fn parse(s: &Settings, body: &Value) -> Result<Parsed, PayloadError> {
    let kind = required(body, "/object_kind")?;
    if !s.events.contains(&kind) {
        return Ok(Parsed::Ignored(format!(
            "GitLab `{kind}` events are not in this source's `events`"
        )));
    }
    let event = match kind.as_str() {
        "pipeline" => pipeline(body)?,
        "deployment" => deployment(body)?,
        other => {
            return Err(PayloadError::new(
                "object_kind",
                format!(
                    "`{other}` events are not understood; keep `events` to pipeline and deployment"
                ),
            ))
        }
    };
    Ok(Parsed::Events(vec![event]))
}

/// GitLab's statuses: pending ones run, then success, failed or canceled.
fn status_of(s: &str) -> Status {
    match s {
        "success" => Status::Succeeded,
        "failed" => Status::Failed,
        "canceled" | "skipped" | "blocked" => Status::Canceled,
        _ => Status::Running,
    }
}

fn pipeline(body: &Value) -> Result<Event, PayloadError> {
    let id = required(body, "/object_attributes/id")?;
    let status = required(body, "/object_attributes/status")?;
    let project = required(body, "/project/path_with_namespace")?;
    let git_ref = text_at(body, "/object_attributes/ref").unwrap_or_default();
    let user = text_at(body, "/user/name").or_else(|| text_at(body, "/user/username"));
    let mut text = format!("**Project:** {project}\n\n**Ref:** {git_ref}\n\n**Status:** {status}");
    if let Some(d) = text_at(body, "/object_attributes/duration") {
        text.push_str(&format!(" ({d}s)"));
    }
    if let Some(c) = text_at(body, "/commit/title").or_else(|| text_at(body, "/commit/message")) {
        let sha = text_at(body, "/object_attributes/sha").unwrap_or_default();
        text.push_str(&format!(
            "\n\n**Commit:** {} {}",
            short(&sha),
            c.lines().next().unwrap_or_default()
        ));
    }
    if let Some(u) = &user {
        text.push_str(&format!("\n\n**By:** {u}"));
    }
    let mut e = Event::new(
        status_of(&status),
        format!("Pipeline #{id} · {project}"),
        text,
    );
    e.label("project", project.clone());
    e.label("ref", git_ref);
    e.label("pipeline_status", status);
    e.label("event", "pipeline");
    e.thread = Some(key_of(&[("project", &project), ("pipeline", &id)]));
    if let Some(u) = text_at(body, "/object_attributes/url")
        .or_else(|| text_at(body, "/project/web_url").map(|w| format!("{w}/-/pipelines/{id}")))
    {
        e.link("Pipeline", &u);
    }
    if let Some(u) = text_at(body, "/commit/url") {
        e.link("Commit", &u);
    }
    Ok(e)
}

fn deployment(body: &Value) -> Result<Event, PayloadError> {
    let id = required(body, "/deployment_id")?;
    let status = required(body, "/status")?;
    let project = required(body, "/project/path_with_namespace")?;
    let env = text_at(body, "/environment").unwrap_or_default();
    let git_ref = text_at(body, "/ref").unwrap_or_default();
    let mut text = format!(
        "**Project:** {project}\n\n**Environment:** {env}\n\n**Ref:** {git_ref} {}\n\n**Status:** {status}",
        text_at(body, "/short_sha").unwrap_or_default()
    );
    if let Some(c) = text_at(body, "/commit_title") {
        text.push_str(&format!("\n\n**Commit:** {c}"));
    }
    if let Some(u) = text_at(body, "/user/name").or_else(|| text_at(body, "/user/username")) {
        text.push_str(&format!("\n\n**By:** {u}"));
    }
    let mut e = Event::new(
        status_of(&status),
        format!("Deploy to {env} · {project}"),
        text,
    );
    e.label("project", project.clone());
    e.label("environment", env);
    e.label("ref", git_ref);
    e.label("deployment_status", status);
    e.label("event", "deployment");
    e.thread = Some(key_of(&[("project", &project), ("deployment", &id)]));
    if let Some(u) = text_at(body, "/deployable_url") {
        e.link("Job", &u);
    }
    if let Some(u) = text_at(body, "/commit_url") {
        e.link("Commit", &u);
    }
    Ok(e)
}

fn short(sha: &str) -> &str {
    sha.get(..8).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Settings {
        Settings {
            token: "tok".into(),
            events: EVENTS.map(String::from).to_vec(),
        }
    }

    #[test]
    fn a_pipeline_is_threaded_by_project_and_id() {
        let body = json!({"object_kind": "pipeline",
            "object_attributes": {"id": 31, "ref": "main", "sha": "bcbb5ec396a2c0f828686f14fac9b80b780504f2", "status": "running", "duration": null, "url": "https://gitlab.example.com/g/p/-/pipelines/31"},
            "user": {"name": "Administrator", "username": "root"},
            "project": {"id": 1, "path_with_namespace": "gitlab-org/gitlab-test", "web_url": "https://gitlab.example.com/gitlab-org/gitlab-test"},
            "commit": {"title": "test", "url": "https://gitlab.example.com/c"}});
        let Parsed::Events(ev) = parse(&settings(), &body).unwrap() else {
            panic!()
        };
        let e = &ev[0];
        assert_eq!(e.status, Status::Running);
        assert_eq!(e.title, "Pipeline #31 · gitlab-org/gitlab-test");
        assert_eq!(
            e.thread.as_deref(),
            Some("project=gitlab-org/gitlab-test,pipeline=31")
        );
        assert!(e.text.contains("**Commit:** bcbb5ec3 test"), "{}", e.text);
        assert_eq!(
            e.links[0].url,
            "https://gitlab.example.com/g/p/-/pipelines/31"
        );
        let mut done = body.clone();
        done["object_attributes"]["status"] = json!("failed");
        let Parsed::Events(ev) = parse(&settings(), &done).unwrap() else {
            panic!()
        };
        assert_eq!((ev[0].status, &ev[0].thread), (Status::Failed, &e.thread));
    }

    #[test]
    fn other_kinds_are_ignored_and_tokens_compared() {
        let s = Settings {
            token: "tok".into(),
            events: vec!["deployment".into()],
        };
        assert!(matches!(
            parse(&s, &json!({"object_kind": "pipeline"})).unwrap(),
            Parsed::Ignored(_)
        ));
        assert_eq!(parse(&s, &json!({})).unwrap_err().field, "object_kind");
        assert_eq!(
            parse(
                &s,
                &json!({"object_kind": "deployment", "status": "success"})
            )
            .unwrap_err()
            .field,
            "deployment_id"
        );
        assert!(s.token_matches("tok"));
        assert!(!s.token_matches("tok2") && !s.token_matches(""));
    }
}
