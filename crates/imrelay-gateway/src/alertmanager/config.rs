//! `[alerting]` (Alertmanager routes) and `[templates]` (message templates).
//!
//! ```toml
//! [alerting]
//! time_zone = "Asia/Shanghai"      # times in messages; default UTC
//! # external_url = "https://am.example.com"  # silence links; default: the payload's externalURL
//!
//! # Alertmanager: url = http://imrelay:8080/v1/alertmanager/prod
//! [alerting.routes.prod]
//! channels = ["team"]              # default: alerts no rule matches
//! send_resolved = true             # default for the rules below
//!
//! [[alerting.routes.prod.rules]]
//! matchers = ['severity="critical"']
//! channels = ["oncall"]
//! mentions = { all = true }        # or mobiles = [...], user_ids = [...]
//!
//! [[alerting.routes.prod.rules]]
//! matchers = ['severity=~"warning|info"', 'team!="sandbox"']
//! channels = ["team"]
//! send_resolved = false
//!
//! [templates.short]                # or name it alert.dingtalk to replace a built-in
//! format = "markdown"              # text | markdown | card
//! file = "templates/short.md.j2"   # or source = "..."; relative to this file
//! title = "{{ names }}"
//!
//! [templates.pwd]                  # Go text/template, as prometheus-webhook-dingtalk renders it
//! engine = "go"                    # implied by a `.tmpl` file
//! file = "templates/default.tmpl"  # its `define`s; its top level is the body unless `source` is given
//! source = '{{ template "ding.link.content" . }}'
//! title = '{{ template "ding.link.title" . }}'
//! ```
//!
//! Templates are compiled when the config loads (and reloads), and every
//! template a route can use is rendered once against a sample notification, so
//! a broken template is reported with its key then, not when an alert fires.

use crate::domain::mentions::MentionsSpec;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use imrelay_sdk::message::Mentions;
use serde::Deserialize;

use super::{Alerting, Matcher, Route, RouteCard, Rule};
use crate::channels::config::ChannelConfig;
use crate::domain::config::{ConfigIssue, KeyPath};
use crate::templates::{builtins, Engine, Format, GoTemplateSource, TemplateSource, Templates};

/// `[alerting]` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingConfig {
    /// IANA time zone for times in messages (default `UTC`).
    pub time_zone: Option<String>,
    /// Base URL of Alertmanager's UI for silence links (default: each
    /// notification's `externalURL`).
    pub external_url: Option<String>,
    /// `POST /v1/alertmanager/{name}` endpoints.
    pub routes: BTreeMap<String, RouteConfig>,
}

/// `[alerting.routes.NAME]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The default route: where alerts no rule matches go. Empty: they are
    /// dropped (and counted in the answer).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Mentions of the default route: platform ids (`{ all = true }`), or
    /// references resolved at accept (`["oncall:dba", "label:owner"]`).
    #[serde(default)]
    pub mentions: MentionsSpec,
    /// The escalation policy a firing group starts (see [`crate::oncall`]).
    #[serde(default)]
    pub escalation: Option<String>,
    /// Send resolved notifications (default for every rule; default true).
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Template for every platform (default: the built-in per platform).
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Buttons on this route's cards, where the destination takes card
    /// callbacks: `ack`, `resolve`, `silence:DURATION` (e.g. `silence:1h`).
    #[serde(default)]
    pub actions: Vec<String>,
    /// Platform user ids who may press them (default: `[lifecycle]
    /// allowed_users`, else anyone who sees the card).
    #[serde(default)]
    pub allowed_users: Vec<String>,
    /// Alertmanager's base URL for silences from a card (default: `[alerting]
    /// external_url`, else the notification's `externalURL`).
    #[serde(default)]
    pub silence_url: Option<String>,
}

fn yes() -> bool {
    true
}

/// `[[alerting.routes.NAME.rules]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Alertmanager-style matchers, all of which must hold (none: every alert).
    #[serde(default)]
    pub matchers: Vec<String>,
    pub channels: Vec<String>,
    #[serde(default)]
    pub mentions: MentionsSpec,
    /// Default: the route's.
    #[serde(default)]
    pub escalation: Option<String>,
    /// Default: the route's.
    #[serde(default)]
    pub send_resolved: Option<bool>,
    /// Default: the route's.
    #[serde(default)]
    pub template: Option<String>,
    /// Keep trying the next rules after this one matched.
    #[serde(default, rename = "continue")]
    pub cont: bool,
}

/// `[templates.NAME]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    #[serde(default)]
    pub format: Format,
    /// The body template file (relative to the config file's folder).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The body template inline.
    #[serde(default)]
    pub source: Option<String>,
    /// Title template (DingTalk notification text, Feishu card header...).
    #[serde(default)]
    pub title: Option<String>,
    /// Card header colour template (`format = "card"` only).
    #[serde(default)]
    pub theme: Option<String>,
    /// `jinja` (minijinja), `go` (Go text/template as prometheus-webhook-dingtalk
    /// renders it) or `go-prometheusalert` (as PrometheusAlert renders it).
    /// Default: `go` for a `.tmpl` file, else `jinja`.
    #[serde(default)]
    pub engine: Option<Engine>,
}

impl TemplateConfig {
    pub fn engine(&self) -> Engine {
        self.engine.unwrap_or_else(|| {
            let tmpl = self
                .file
                .as_ref()
                .and_then(|f| f.extension())
                .is_some_and(|e| e == "tmpl");
            if tmpl {
                Engine::Go
            } else {
                Engine::Jinja
            }
        })
    }
}

/// A template's sources for one of the engines.
enum Source {
    Jinja(TemplateSource),
    Go(GoTemplateSource),
}

/// The card settings of a route; bad ones are pushed to `issues`.
fn route_card(r: &RouteConfig, at: &KeyPath, issues: &mut Vec<ConfigIssue>) -> RouteCard {
    let mut actions = Vec::new();
    for (i, a) in r.actions.iter().enumerate() {
        match crate::lifecycle::ActionKind::of(a) {
            Some(k) if !actions.contains(&k) => actions.push(k),
            Some(_) => issues.push(ConfigIssue::new(
                at.key("actions").index(i).to_string(),
                format!("`{a}` is listed twice"),
            )),
            None => issues.push(ConfigIssue::new(
                at.key("actions").index(i).to_string(),
                format!("`{a}` is not an action; use `ack`, `resolve` or `silence:DURATION` (e.g. `silence:1h`)"),
            )),
        }
    }
    if let Some(u) = &r.silence_url {
        if url::Url::parse(u)
            .map(|u| !matches!(u.scheme(), "http" | "https"))
            .unwrap_or(true)
        {
            issues.push(ConfigIssue::new(
                at.key("silence_url").to_string(),
                "must be Alertmanager's http(s) base URL, e.g. \"http://alertmanager:9093\"",
            ));
        }
    }
    RouteCard {
        actions,
        allowed_users: r.allowed_users.clone(),
        silence_url: r.silence_url.clone(),
    }
}

/// Compile both sections; problems are pushed to `issues`, each naming its key.
pub fn compile(
    cfg: &AlertingConfig,
    templates: &BTreeMap<String, TemplateConfig>,
    base_dir: &Path,
    channels: &BTreeMap<String, ChannelConfig>,
    issues: &mut Vec<ConfigIssue>,
) -> Arc<Alerting> {
    let at_t = KeyPath::root().key("templates");
    let mut sources = BTreeMap::new();
    let mut go_sources = BTreeMap::new();
    // Which key holds a template's body, for error messages.
    let mut body_key: BTreeMap<String, String> = BTreeMap::new();
    for (name, t) in templates {
        if let Some((source, key)) = read_template(name, t, base_dir, &at_t.key(name), issues) {
            match source {
                Source::Jinja(s) => sources.insert(name.clone(), s).map(|_| ()),
                Source::Go(s) => go_sources.insert(name.clone(), s).map(|_| ()),
            };
            body_key.insert(name.clone(), key);
        }
    }
    let compiled = compile_templates(cfg, sources, go_sources, &body_key, &at_t, issues);
    let mut routes = RouteCompiler {
        channels,
        templates: &compiled,
        used: Vec::new(),
    };
    let at_r = KeyPath::root().key("alerting").key("routes");
    let compiled_routes = cfg
        .routes
        .iter()
        .map(|(name, r)| (name.clone(), routes.route(name, r, &at_r.key(name), issues)))
        .collect();
    let mut used = routes.used;
    check_external_url(cfg, issues);
    let alerting = Alerting {
        templates: compiled,
        routes: compiled_routes,
        external_url: cfg.external_url.clone(),
    };
    // User templates replacing built-ins are used by every route.
    for name in alerting.templates.names() {
        if name.starts_with("alert.") && templates.contains_key(name) {
            used.push((name.to_string(), key_of_body(&body_key, &at_t, name)));
        }
    }
    sample_render_used(&alerting, used, templates, &body_key, &at_t, issues);
    Arc::new(alerting)
}

/// One `[templates.NAME]`: its source and the key that holds its body.
fn read_template(
    name: &str,
    t: &TemplateConfig,
    base_dir: &Path,
    at: &KeyPath,
    issues: &mut Vec<ConfigIssue>,
) -> Option<(Source, String)> {
    if !valid_template_name(name) {
        issues.push(ConfigIssue::new(
            at.to_string(),
            "template names are 1-64 characters of letters, digits, `_`, `-` and `.`",
        ));
        return None;
    }
    let engine = t.engine();
    let (body, key) = match (&t.file, &t.source) {
        (Some(_), Some(_)) if engine.go_flavour().is_some() => {
            // Go: the file brings the definitions, `source` is the body.
            let file = read_file(t.file.as_ref()?, base_dir, &at.key("file"), issues)?;
            let source = GoTemplateSource {
                format: t.format,
                flavour: engine.go_flavour().unwrap_or_default(),
                file: Some(file),
                body: t.source.clone(),
                title: t.title.clone(),
                theme: t.theme.clone(),
            };
            check_theme(t, at, issues);
            return Some((Source::Go(source), at.key("source").to_string()));
        }
        (Some(_), Some(_)) => {
            issues.push(ConfigIssue::new(
                at.key("source").to_string(),
                "give either `file` or `source`, not both",
            ));
            return None;
        }
        (None, None) => {
            issues.push(ConfigIssue::new(
                at.key("file").to_string(),
                "missing: give `file` (a template file) or `source` (the template inline)",
            ));
            return None;
        }
        (None, Some(s)) => (s.clone(), at.key("source").to_string()),
        (Some(f), None) => (
            read_file(f, base_dir, &at.key("file"), issues)?,
            at.key("file").to_string(),
        ),
    };
    check_theme(t, at, issues);
    let source = match engine {
        Engine::Jinja => Source::Jinja(TemplateSource {
            format: t.format,
            body,
            title: t.title.clone(),
            theme: t.theme.clone(),
        }),
        Engine::Go | Engine::GoPrometheusAlert => Source::Go(GoTemplateSource {
            format: t.format,
            flavour: engine.go_flavour().unwrap_or_default(),
            file: None,
            body: Some(body),
            title: t.title.clone(),
            theme: t.theme.clone(),
        }),
    };
    Some((source, key))
}

fn check_theme(t: &TemplateConfig, at: &KeyPath, issues: &mut Vec<ConfigIssue>) {
    if t.theme.is_some() && t.format != Format::Card {
        issues.push(ConfigIssue::new(
            at.key("theme").to_string(),
            "only card templates (`format = \"card\"`) have a theme",
        ));
    }
}

/// A template file, relative to the config file's folder.
fn read_file(
    f: &Path,
    base_dir: &Path,
    at: &KeyPath,
    issues: &mut Vec<ConfigIssue>,
) -> Option<String> {
    let path = if f.is_relative() {
        base_dir.join(f)
    } else {
        f.to_path_buf()
    };
    match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(e) => {
            issues.push(ConfigIssue::new(
                at.to_string(),
                format!("cannot read {}: {e}", path.display()),
            ));
            None
        }
    }
}

/// Compile the templates in the configured time zone; errors name the key of
/// the part at fault.
fn compile_templates(
    cfg: &AlertingConfig,
    sources: BTreeMap<String, TemplateSource>,
    go_sources: BTreeMap<String, GoTemplateSource>,
    body_key: &BTreeMap<String, String>,
    at_t: &KeyPath,
    issues: &mut Vec<ConfigIssue>,
) -> Templates {
    let tz = cfg.time_zone.clone().unwrap_or_else(|| "UTC".to_string());
    match Templates::with_go(&tz, sources, go_sources) {
        Ok(t) => t,
        Err(errs) => {
            for e in &errs {
                let key = match e.part {
                    "time_zone" => "alerting.time_zone".to_string(),
                    "body" => key_of_body(body_key, at_t, &e.name),
                    part => at_t.key(&e.name).key(part).to_string(),
                };
                issues.push(ConfigIssue::new(key, e.message.clone()));
            }
            Templates::default()
        }
    }
}

/// Routes and their rules, checked against the channels and templates; it
/// collects the templates routes use, for the sample render.
struct RouteCompiler<'a> {
    channels: &'a BTreeMap<String, ChannelConfig>,
    templates: &'a Templates,
    used: Vec<(String, String)>,
}

impl RouteCompiler<'_> {
    fn route(
        &mut self,
        name: &str,
        r: &RouteConfig,
        at: &KeyPath,
        issues: &mut Vec<ConfigIssue>,
    ) -> Route {
        if !crate::channels::config::valid_channel_name(name) {
            issues.push(ConfigIssue::new(
                at.to_string(),
                "route names are 1-64 characters of letters, digits, `_` and `-` (they appear in the URL)",
            ));
        }
        if r.channels.is_empty() && r.rules.is_empty() {
            issues.push(ConfigIssue::new(
                at.key("rules").to_string(),
                "the route sends nowhere: add [[rules]] with matchers and channels, or default `channels`",
            ));
        }
        self.check_channels(&r.channels, &at.key("channels"), issues);
        check_mentions(&r.mentions.direct(), &at.key("mentions"), issues);
        self.check_template(&r.template, &at.key("template"), issues);
        let rules = r
            .rules
            .iter()
            .enumerate()
            .map(|(i, rc)| self.rule(i, rc, r, &at.key("rules").index(i), issues))
            .collect();
        let default = (!r.channels.is_empty()).then(|| Rule {
            label: "default".into(),
            matchers: Vec::new(),
            channels: r.channels.clone(),
            mentions: r.mentions.direct(),
            mention_refs: r.mentions.refs(),
            escalation: r.escalation.clone(),
            send_resolved: r.send_resolved,
            template: r.template.clone(),
            cont: false,
        });
        Route {
            name: name.to_string(),
            rules,
            default,
            card: route_card(r, at, issues),
        }
    }

    fn rule(
        &mut self,
        i: usize,
        rc: &RuleConfig,
        r: &RouteConfig,
        at: &KeyPath,
        issues: &mut Vec<ConfigIssue>,
    ) -> Rule {
        if rc.channels.is_empty() {
            issues.push(ConfigIssue::new(
                at.key("channels").to_string(),
                "names no channel; list where matching alerts go",
            ));
        }
        self.check_channels(&rc.channels, &at.key("channels"), issues);
        check_mentions(&rc.mentions.direct(), &at.key("mentions"), issues);
        self.check_template(&rc.template, &at.key("template"), issues);
        let mut matchers = Vec::new();
        for (j, m) in rc.matchers.iter().enumerate() {
            match Matcher::parse(m) {
                Ok(m) => matchers.push(m),
                Err(why) => issues.push(ConfigIssue::new(
                    at.key("matchers").index(j).to_string(),
                    why.to_string(),
                )),
            }
        }
        Rule {
            label: format!("rules[{i}]"),
            matchers,
            channels: rc.channels.clone(),
            mentions: rc.mentions.direct(),
            mention_refs: rc.mentions.refs(),
            escalation: rc.escalation.clone().or_else(|| r.escalation.clone()),
            send_resolved: rc.send_resolved.unwrap_or(r.send_resolved),
            template: rc.template.clone().or_else(|| r.template.clone()),
            cont: rc.cont,
        }
    }

    fn check_channels(&self, list: &[String], at: &KeyPath, issues: &mut Vec<ConfigIssue>) {
        for (i, c) in list.iter().enumerate() {
            if !self.channels.contains_key(c) {
                issues.push(ConfigIssue::new(
                    at.index(i).to_string(),
                    format!("no channel `{c}` is defined"),
                ));
            }
        }
    }

    fn check_template(&mut self, t: &Option<String>, key: &KeyPath, issues: &mut Vec<ConfigIssue>) {
        let Some(t) = t else { return };
        if self.templates.contains(t) {
            self.used.push((t.clone(), key.to_string()));
        } else {
            issues.push(ConfigIssue::new(
                key.to_string(),
                format!(
                    "no template `{t}` is defined; define [templates.\"{t}\"] or use a built-in ({})",
                    builtins().into_keys().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
}

fn check_external_url(cfg: &AlertingConfig, issues: &mut Vec<ConfigIssue>) {
    if let Some(u) = &cfg.external_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            issues.push(ConfigIssue::new(
                "alerting.external_url",
                format!("`{u}` is not an http(s) URL"),
            ));
        }
    }
}

/// Render every used template against sample alerts, so a template that fails
/// on real data is reported at load, not on the first alert.
fn sample_render_used(
    alerting: &Alerting,
    mut used: Vec<(String, String)>,
    templates: &BTreeMap<String, TemplateConfig>,
    body_key: &BTreeMap<String, String>,
    at_t: &KeyPath,
    issues: &mut Vec<ConfigIssue>,
) {
    used.sort();
    used.dedup_by(|a, b| a.0 == b.0);
    for (t, key) in used {
        if let Err(e) = crate::alertmanager::sample_render(alerting, &t) {
            let key = if templates.contains_key(&t) {
                key_of_body(body_key, at_t, &t)
            } else {
                key
            };
            issues.push(ConfigIssue::new(
                key,
                format!("fails on a sample alert: {e}"),
            ));
        }
    }
}

fn key_of_body(body_key: &BTreeMap<String, String>, at_t: &KeyPath, name: &str) -> String {
    body_key
        .get(name)
        .cloned()
        .unwrap_or_else(|| at_t.key(name).to_string())
}

fn check_mentions(m: &Mentions, at: &KeyPath, issues: &mut Vec<ConfigIssue>) {
    for (field, list) in [("mobiles", &m.mobiles), ("user_ids", &m.user_ids)] {
        for (i, v) in list.iter().enumerate() {
            if v.trim().is_empty() || v.chars().any(char::is_whitespace) {
                issues.push(ConfigIssue::new(
                    at.key(field).index(i).to_string(),
                    "must be a non-empty id without spaces",
                ));
            }
        }
    }
}

fn valid_template_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}
