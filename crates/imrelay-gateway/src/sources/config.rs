//! `[sources.NAME]`: one `POST /v1/sources/NAME` endpoint per source.
//!
//! ```toml
//! [sources.grafana]
//! type = "grafana"          # grafana | zabbix | aliyun_cloudmonitor | tencent_cloud | gitlab | github | json
//! channels = ["team"]
//! # template = "short"      # a [templates.X] rendered with the event; default: the built-in card
//! # actions = ["ack", "resolve"]   # card buttons while an event is open
//!
//! [sources.ci]
//! type = "gitlab"
//! channels = ["team"]
//! token = "${GITLAB_WEBHOOK_TOKEN}"     # the webhook's secret token (X-Gitlab-Token)
//! events = ["pipeline", "deployment"]   # the default
//!
//! [sources.gh]
//! type = "github"
//! channels = ["team"]
//! secret = "${GITHUB_WEBHOOK_SECRET}"   # X-Hub-Signature-256
//! events = ["workflow_run", "deployment_status"]
//!
//! [sources.billing]
//! type = "json"
//! channels = ["team"]
//! title = "/alert/name"                 # JSON pointers into the payload
//! text = "/alert/description"
//! labels = { severity = "/level", host = "/host" }
//! status = "/state"
//! resolved_values = ["OK", "resolved"]
//! thread = "/id"
//! ```

use crate::domain::matcher::Matcher;
use crate::domain::mentions::MentionsSpec;
use std::collections::BTreeMap;

use serde::Deserialize;

use super::{github, gitlab, json, Kind, Source, SourceRoute, Sources};
use crate::alertmanager::RouteCard;
use crate::channels::config::{valid_channel_name, ChannelConfig};
use crate::domain::config::{ConfigIssue, KeyPath};
use crate::templates::Templates;

/// `[[sources.NAME.rules]]`: where events whose labels match go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRuleConfig {
    /// Alertmanager-style matchers on the event's labels, all of which must hold.
    pub matchers: Vec<String>,
    pub channels: Vec<String>,
    #[serde(default)]
    pub mentions: MentionsSpec,
    #[serde(default)]
    pub escalation: Option<String>,
    /// Keep trying the next rules after this one matched.
    #[serde(default, rename = "continue")]
    pub cont: bool,
}

/// The `type` of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    Grafana,
    Zabbix,
    AliyunCloudmonitor,
    TencentCloud,
    Gitlab,
    Github,
    Json,
}

impl SourceType {
    /// As written in `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Grafana => "grafana",
            SourceType::Zabbix => "zabbix",
            SourceType::AliyunCloudmonitor => "aliyun_cloudmonitor",
            SourceType::TencentCloud => "tencent_cloud",
            SourceType::Gitlab => "gitlab",
            SourceType::Github => "github",
            SourceType::Json => "json",
        }
    }
}

/// `[sources.NAME]` as written: the common keys, then each type's own.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    #[serde(rename = "type")]
    pub kind: SourceType,
    pub channels: Vec<String>,
    #[serde(default)]
    pub template: Option<String>,
    /// Card buttons while an event is open: `ack`, `resolve` (who may press
    /// them: `[lifecycle] allowed_users`).
    #[serde(default)]
    pub actions: Vec<String>,
    /// Who to @ on `channels`: platform ids, or references resolved at accept
    /// (`["oncall:dba", "label:owner"]`).
    #[serde(default)]
    pub mentions: MentionsSpec,
    /// The escalation policy an open event starts (see [`crate::oncall`]).
    #[serde(default)]
    pub escalation: Option<String>,
    /// Rules by the event's labels, tried in order before `channels`.
    #[serde(default)]
    pub rules: Vec<SourceRuleConfig>,
    /// GitLab: the webhook's secret token.
    #[serde(default)]
    pub token: Option<String>,
    /// GitHub: the webhook's secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// GitLab and GitHub: the events to notify about.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// JSON: pointers to the title, text, status and thread.
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub resolved_values: Vec<String>,
    #[serde(default)]
    pub thread: Option<String>,
}

// By hand: `token` and `secret` are secrets.
impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceConfig")
            .field("kind", &self.kind)
            .field("channels", &self.channels)
            .field("template", &self.template)
            .field("actions", &self.actions)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("events", &self.events)
            .field("title", &self.title)
            .finish_non_exhaustive()
    }
}

/// Compile `[sources]`; problems are pushed to `issues`, each naming its key.
/// `templates` are the compiled `[templates]`, for the sample render.
pub fn compile(
    cfg: &BTreeMap<String, SourceConfig>,
    templates: &Templates,
    channels: &BTreeMap<String, ChannelConfig>,
    issues: &mut Vec<ConfigIssue>,
) -> Sources {
    let at = KeyPath::root().key("sources");
    let sources = cfg
        .iter()
        .filter_map(|(name, s)| {
            let source = compile_one(name, s, templates, channels, &at.key(name), issues)?;
            Some((name.clone(), source))
        })
        .collect();
    Sources { sources }
}

fn compile_one(
    name: &str,
    s: &SourceConfig,
    templates: &Templates,
    channels: &BTreeMap<String, ChannelConfig>,
    at: &KeyPath,
    issues: &mut Vec<ConfigIssue>,
) -> Option<Source> {
    let before = issues.len();
    if !valid_channel_name(name) {
        issues.push(ConfigIssue::new(
            at.to_string(),
            "source names are 1-64 characters of letters, digits, `_` and `-` (they appear in the URL)",
        ));
    }
    if s.channels.is_empty() {
        issues.push(ConfigIssue::new(
            at.key("channels").to_string(),
            "names no channel; list where this source's messages go",
        ));
    }
    check_channels(&s.channels, channels, &at.key("channels"), issues);
    let rules = s
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| compile_rule(s, r, channels, &at.key("rules").index(i), issues))
        .collect();
    if let Some(t) = &s.template {
        if !templates.contains(t) {
            issues.push(ConfigIssue::new(
                at.key("template").to_string(),
                format!("no template `{t}` is defined; define [templates.\"{t}\"]"),
            ));
        } else if let Err(e) = super::sample_render(templates, t) {
            issues.push(ConfigIssue::new(
                at.key("template").to_string(),
                format!("fails on a sample event: {e}"),
            ));
        }
    }
    let card = card(s, at, issues);
    let kind = kind(s, at, issues)?;
    (issues.len() == before).then(|| Source {
        name: name.to_string(),
        kind,
        channels: s.channels.clone(),
        template: s.template.clone(),
        card,
        default: SourceRoute {
            matchers: Vec::new(),
            channels: s.channels.clone(),
            mentions: s.mentions.clone(),
            escalation: s.escalation.clone(),
            cont: false,
        },
        rules,
    })
}

/// One `[[sources.NAME.rules]]` entry; bad matchers are reported and left out.
fn compile_rule(
    s: &SourceConfig,
    r: &SourceRuleConfig,
    channels: &BTreeMap<String, ChannelConfig>,
    at: &KeyPath,
    issues: &mut Vec<ConfigIssue>,
) -> SourceRoute {
    if r.channels.is_empty() {
        issues.push(ConfigIssue::new(
            at.key("channels").to_string(),
            "names no channel; list where matching events go",
        ));
    }
    check_channels(&r.channels, channels, &at.key("channels"), issues);
    let mut matchers = Vec::new();
    for (j, m) in r.matchers.iter().enumerate() {
        match Matcher::parse(m) {
            Ok(m) => matchers.push(m),
            Err(why) => issues.push(ConfigIssue::new(
                at.key("matchers").index(j).to_string(),
                why.to_string(),
            )),
        }
    }
    SourceRoute {
        matchers,
        channels: r.channels.clone(),
        mentions: r.mentions.clone(),
        escalation: r.escalation.clone().or_else(|| s.escalation.clone()),
        cont: r.cont,
    }
}

fn check_channels(
    list: &[String],
    channels: &BTreeMap<String, ChannelConfig>,
    at: &KeyPath,
    issues: &mut Vec<ConfigIssue>,
) {
    for (i, c) in list.iter().enumerate() {
        if !channels.contains_key(c) {
            issues.push(ConfigIssue::new(
                at.index(i).to_string(),
                format!("no channel `{c}` is defined"),
            ));
        }
    }
}

fn card(s: &SourceConfig, at: &KeyPath, issues: &mut Vec<ConfigIssue>) -> RouteCard {
    let mut actions = Vec::new();
    for (i, a) in s.actions.iter().enumerate() {
        match crate::lifecycle::ActionKind::of(a) {
            // A card's silence is created in Alertmanager, which never saw
            // this source's events.
            Some(crate::lifecycle::ActionKind::Silence(_)) => issues.push(ConfigIssue::new(
                at.key("actions").index(i).to_string(),
                format!("`{a}`: a card's silence is made in Alertmanager, which does not know this source's events; use `ack` or `resolve`"),
            )),
            Some(k) if !actions.contains(&k) => actions.push(k),
            Some(_) => issues.push(ConfigIssue::new(
                at.key("actions").index(i).to_string(),
                format!("`{a}` is listed twice"),
            )),
            None => issues.push(ConfigIssue::new(
                at.key("actions").index(i).to_string(),
                format!("`{a}` is not an action; use `ack` or `resolve`"),
            )),
        }
    }
    RouteCard {
        actions,
        allowed_users: Vec::new(),
        silence_url: None,
    }
}

/// The type's settings; keys of other types are refused, naming them.
fn kind(s: &SourceConfig, at: &KeyPath, issues: &mut Vec<ConfigIssue>) -> Option<Kind> {
    let type_name = s.kind.as_str();
    let json_keys = s.title.is_some()
        || s.text.is_some()
        || !s.labels.is_empty()
        || s.status.is_some()
        || !s.resolved_values.is_empty()
        || s.thread.is_some();
    let is = |t: SourceType| s.kind == t;
    // (key, set on a type that does not read it, the types that do)
    let misplaced = [
        (
            "token",
            s.token.is_some() && !is(SourceType::Gitlab),
            "\"gitlab\"",
        ),
        (
            "secret",
            s.secret.is_some() && !is(SourceType::Github),
            "\"github\"",
        ),
        (
            "events",
            s.events.is_some() && !is(SourceType::Gitlab) && !is(SourceType::Github),
            "\"gitlab\" and \"github\"",
        ),
        ("title", json_keys && !is(SourceType::Json), "\"json\""),
    ];
    for (key, wrong, owners) in misplaced {
        if wrong {
            issues.push(ConfigIssue::new(
                at.key(key).to_string(),
                format!("is a setting of `type = {owners}` sources, not of `{type_name}`"),
            ));
        }
    }
    match s.kind {
        SourceType::Grafana => Some(Kind::Grafana),
        SourceType::Zabbix => Some(Kind::Zabbix),
        SourceType::AliyunCloudmonitor => Some(Kind::AliyunCloudMonitor),
        SourceType::TencentCloud => Some(Kind::TencentCloud),
        // Both keys are checked before either can end the compile.
        SourceType::Gitlab => {
            let token = secret(
                &s.token,
                "token",
                "the webhook's Secret token in GitLab",
                at,
                issues,
            );
            let events = events(&s.events, &gitlab::EVENTS, at, issues);
            Some(Kind::Gitlab(gitlab::Settings {
                token: token?,
                events: events?,
            }))
        }
        SourceType::Github => {
            let secret = secret(
                &s.secret,
                "secret",
                "the webhook's Secret in GitHub",
                at,
                issues,
            );
            let events = events(&s.events, &github::EVENTS, at, issues);
            Some(Kind::Github(github::Settings {
                secret: secret?,
                events: events?,
            }))
        }
        SourceType::Json => mapping(s, at, issues).map(Kind::Json),
    }
}

fn secret(
    v: &Option<String>,
    key: &str,
    what: &str,
    at: &KeyPath,
    issues: &mut Vec<ConfigIssue>,
) -> Option<String> {
    match v {
        Some(s) if s.len() >= 8 => Some(s.clone()),
        Some(_) => {
            issues.push(ConfigIssue::new(
                at.key(key).to_string(),
                "must be at least 8 characters",
            ));
            None
        }
        None => {
            issues.push(ConfigIssue::new(
                at.key(key).to_string(),
                format!(
                    "missing: set it to {what} (e.g. `{key} = \"${{ENV_VAR}}\"` or `{key}_file`)"
                ),
            ));
            None
        }
    }
}

fn events(
    v: &Option<Vec<String>>,
    known: &[&str],
    at: &KeyPath,
    issues: &mut Vec<ConfigIssue>,
) -> Option<Vec<String>> {
    let Some(list) = v else {
        return Some(known.iter().map(|e| e.to_string()).collect());
    };
    let before = issues.len();
    if list.is_empty() {
        issues.push(ConfigIssue::new(
            at.key("events").to_string(),
            format!("is empty; list some of {}", known.join(", ")),
        ));
    }
    for (i, e) in list.iter().enumerate() {
        if !known.contains(&e.as_str()) {
            issues.push(ConfigIssue::new(
                at.key("events").index(i).to_string(),
                format!("`{e}` is not one of {}", known.join(", ")),
            ));
        }
    }
    (issues.len() == before).then(|| list.clone())
}

fn mapping(s: &SourceConfig, at: &KeyPath, issues: &mut Vec<ConfigIssue>) -> Option<json::Mapping> {
    let before = issues.len();
    let mut check = |key: KeyPath, p: &str| {
        if !json::valid_pointer(p) {
            issues.push(ConfigIssue::new(
                key.to_string(),
                format!("`{p}` is not a JSON pointer; write it like \"/alert/name\""),
            ));
        }
    };
    let Some(title) = &s.title else {
        issues.push(ConfigIssue::new(
            at.key("title").to_string(),
            "missing: the JSON pointer to the message title, e.g. \"/alert/name\"",
        ));
        return None;
    };
    check(at.key("title"), title);
    for (key, p) in [
        ("text", &s.text),
        ("status", &s.status),
        ("thread", &s.thread),
    ] {
        if let Some(p) = p {
            check(at.key(key), p);
        }
    }
    for (name, p) in &s.labels {
        check(at.key("labels").key(name), p);
    }
    for name in s.labels.keys() {
        if !crate::domain::labels::valid_label_name(name) {
            issues.push(ConfigIssue::new(
                at.key("labels").key(name).to_string(),
                "label names are letters, digits and `_`, not starting with a digit",
            ));
        }
    }
    if s.status.is_some() && s.resolved_values.is_empty() {
        issues.push(ConfigIssue::new(
            at.key("resolved_values").to_string(),
            "missing: the values of `status` that mean resolved, e.g. [\"OK\", \"resolved\"]",
        ));
    }
    if s.status.is_none() && !s.resolved_values.is_empty() {
        issues.push(ConfigIssue::new(
            at.key("status").to_string(),
            "missing: `resolved_values` needs the pointer to the status, e.g. \"/state\"",
        ));
    }
    (issues.len() == before).then(|| json::Mapping {
        title: title.clone(),
        text: s.text.clone(),
        labels: s.labels.clone(),
        status: s.status.clone(),
        resolved_values: s.resolved_values.clone(),
        thread: s.thread.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues_of(toml_text: &str) -> Vec<String> {
        let cfg: BTreeMap<String, SourceConfig> = toml::from_str(toml_text).unwrap();
        let channels: BTreeMap<String, ChannelConfig> =
            toml::from_str("[team]\ndestinations = []").unwrap();
        let mut issues = Vec::new();
        compile(&cfg, &Templates::default(), &channels, &mut issues);
        issues.iter().map(|i| i.to_string()).collect()
    }

    #[test]
    fn a_good_config_compiles() {
        let cfg: BTreeMap<String, SourceConfig> = toml::from_str(
            r#"
[gl]
type = "gitlab"
channels = ["team"]
token = "0123456789"
events = ["pipeline"]
[j]
type = "json"
channels = ["team"]
title = "/t"
labels = { severity = "/level" }
status = "/s"
resolved_values = ["OK"]
"#,
        )
        .unwrap();
        let channels: BTreeMap<String, ChannelConfig> =
            toml::from_str("[team]\ndestinations = []").unwrap();
        let mut issues = Vec::new();
        let s = compile(&cfg, &Templates::default(), &channels, &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        assert!(matches!(&s.sources["gl"].kind, Kind::Gitlab(g) if g.events == ["pipeline"]));
        assert!(matches!(&s.sources["j"].kind, Kind::Json(m) if m.title == "/t"));
    }

    #[test]
    fn errors_name_the_key() {
        let got = issues_of(
            r#"
[gl]
type = "gitlab"
channels = ["nope"]
events = ["push"]
title = "/x"
[j]
type = "json"
channels = ["team"]
title = "alert.name"
resolved_values = ["OK"]
template = "missing"
actions = ["reboot", "silence:1h"]
"#,
        );
        let joined = got.join("\n");
        for key in [
            "sources.gl.channels[0]",
            "sources.gl.token",
            "sources.gl.events[0]",
            "sources.gl.title",
            "sources.j.title",
            "sources.j.status",
            "sources.j.template",
            "sources.j.actions[0]",
            "sources.j.actions[1]",
        ] {
            assert!(joined.contains(key), "no issue names {key}:\n{joined}");
        }
    }

    /// The section is checked when the config loads, with the other sections.
    #[test]
    fn config_load_reports_source_errors() {
        let text = r#"
[[api_keys]]
name = "k"
key = "0123456789abcdef0123"
channels = ["*"]
[channels.team]
[[channels.team.destinations]]
type = "dingtalk_robot"
access_token = "t"
[sources.gh]
type = "github"
channels = ["team"]
[sources.ok]
type = "grafana"
channels = ["team"]
"#;
        let err = crate::config::Config::parse(text, std::path::Path::new(".")).unwrap_err();
        let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["sources.gh.secret"], "{err}");
        let good = text.replace(
            "channels = [\"team\"]\n[sources.ok]",
            "channels = [\"team\"]\nsecret = \"0123456789\"\n[sources.ok]",
        );
        let cfg = crate::config::Config::parse(&good, std::path::Path::new(".")).unwrap();
        assert_eq!(cfg.sources.len(), 2);
    }
}
