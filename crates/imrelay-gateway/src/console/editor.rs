//! The template editor: an Alertmanager route's template, edited, rendered
//! against a sample notification by the bridge's own `plan` and each
//! destination's own `render`, exactly as an alert would be sent. The edited
//! template is compiled the way a config load compiles `[templates]`, so its
//! errors carry the same keys and lines.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::alertmanager::config::{AlertingConfig, TemplateConfig};
use crate::alertmanager::samples::{self, Sample};
use crate::alertmanager::Alerting;
use crate::channels::config::ChannelConfig;
use crate::channels::ChannelSet;
use crate::http::auth::Caller;
use crate::templates::{builtin_alert_template, builtins};

/// `[alerting]`, `[templates]` and `[channels]` as written, and where the
/// file is: what compiling an edited template needs.
#[derive(Debug, Clone, Default)]
pub struct TemplateSettings {
    pub alerting: AlertingConfig,
    pub templates: BTreeMap<String, TemplateConfig>,
    pub channels: BTreeMap<String, ChannelConfig>,
    pub base_dir: PathBuf,
    /// The config file, when the config came from one.
    pub file: Option<PathBuf>,
}

/// What the editor form asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct EditorForm {
    pub route: String,
    pub template: String,
    pub sample: String,
    /// The edited source; `None`: the one in force.
    pub source: Option<String>,
}

/// A problem with the edited template: the config key and why (with the
/// template's line where the engine knows it).
#[derive(Debug, Clone)]
pub struct Issue {
    pub key: String,
    pub message: String,
}

/// What one destination would receive.
#[derive(Debug, Clone)]
pub(crate) struct DestPreview {
    pub channel: String,
    pub key: String,
    pub kind: &'static str,
    /// The template the bridge used (a built-in when the edited one failed).
    pub template: String,
    pub alerts: usize,
    pub shown: usize,
    pub parts: Vec<PartPreview>,
}

/// One request body.
#[derive(Debug, Clone)]
pub(crate) struct PartPreview {
    pub body: Value,
    /// The body as sent (compact JSON, UTF-8 bytes).
    pub bytes: usize,
    /// What the platform's limit counts (the body, or the content field).
    pub counted: usize,
    pub limit: Option<Limit>,
}

/// A platform's size limit for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    pub bytes: usize,
    /// Whether the limit counts the content field (else the whole body).
    pub content: bool,
}

/// The platform limit a request of destination type `kind` is rendered
/// within (the SDK's constants: its split and truncation are against these).
pub(crate) fn limit_of(kind: &str, body: &Value) -> Option<Limit> {
    use imrelay_sdk::platform::{dingtalk, feishu, wecom};
    let markdown = matches!(body["msgtype"].as_str(), Some("markdown" | "markdown_v2"));
    let (bytes, content) = match kind {
        "dingtalk_robot" => (dingtalk::robot::BODY_LIMIT, false),
        "feishu_webhook" => (feishu::webhook::BODY_LIMIT, false),
        "feishu_app" => (feishu::app::TEXT_LIMIT, false),
        "wecom_robot" if markdown => (wecom::robot::MARKDOWN_LIMIT, true),
        "wecom_robot" => (wecom::robot::TEXT_LIMIT, true),
        "wecom_app" => (wecom::app::TEXT_LIMIT, true),
        _ => return None,
    };
    Some(Limit { bytes, content })
}

/// The content a content limit counts (`{"msgtype":"markdown","markdown":{"content":...}}`).
fn content_bytes(body: &Value) -> Option<usize> {
    let t = body["msgtype"].as_str()?;
    body[t]["content"].as_str().map(str::len)
}

/// The editor's state after a request.
#[derive(Debug, Clone, Default)]
pub(crate) struct EditorView {
    /// Routes the caller may preview (all their channels are the caller's).
    pub routes: Vec<String>,
    pub route: String,
    /// Templates the route uses (its rules', else the built-ins of its platforms).
    pub templates: Vec<String>,
    pub template: String,
    /// `jinja` or `go`.
    pub engine: &'static str,
    /// Whether the template is a built-in (saving defines one of that name).
    pub builtin: bool,
    pub sample: &'static str,
    pub source: String,
    /// Set when nothing can be shown (no route).
    pub empty: bool,
    pub issues: Vec<Issue>,
    pub destinations: Vec<DestPreview>,
    /// Whether the caller may save (a user of every channel).
    pub can_save: bool,
    /// Set after a save the gateway reloaded.
    pub saved: bool,
    /// What to paste, where the gateway cannot write: (what it is, the text).
    pub paste: Option<(String, String)>,
}

/// The templates `route` uses.
fn route_templates(alerting: &Alerting, route: &str, set: &ChannelSet) -> Vec<String> {
    let Some(r) = alerting.routes.get(route) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    let mut push = |n: &str| {
        if !out.iter().any(|o| o == n) {
            out.push(n.to_string());
        }
    };
    for rule in r.rules.iter().chain(r.default.as_ref()) {
        match &rule.template {
            Some(t) => push(t),
            None => {
                for c in &rule.channels {
                    for d in set.get(c).map(|c| c.destinations.as_slice()).unwrap_or(&[]) {
                        push(builtin_alert_template(d.dest.platform()));
                    }
                }
            }
        }
    }
    out
}

/// The body source of `name` in force, its engine, and whether it is a built-in.
fn current_source(s: &TemplateSettings, name: &str) -> (String, &'static str, bool) {
    if let Some(t) = s.templates.get(name) {
        let engine = if t.engine().go_flavour().is_some() {
            "go"
        } else {
            "jinja"
        };
        let text = match (&t.source, &t.file) {
            (Some(src), _) => src.clone(),
            (None, Some(f)) => {
                let path = if f.is_relative() {
                    s.base_dir.join(f)
                } else {
                    f.clone()
                };
                std::fs::read_to_string(path).unwrap_or_default()
            }
            (None, None) => String::new(),
        };
        return (text, engine, false);
    }
    let body = builtins()
        .get(name)
        .map(|b| b.body.clone())
        .unwrap_or_default();
    (body, "jinja", true)
}

/// `name` with `text` as its body: an inline `source` (a Go template's
/// `file` of definitions stays), or a built-in's copy.
pub(crate) fn edited(s: &TemplateSettings, name: &str, text: &str) -> TemplateConfig {
    match s.templates.get(name) {
        Some(t) => {
            let mut t = t.clone();
            let go_defs =
                t.engine().go_flavour().is_some() && t.file.is_some() && t.source.is_some();
            if !go_defs {
                // Keep the engine a `.tmpl` file implied.
                t.engine = Some(t.engine());
                t.file = None;
            }
            t.source = Some(text.to_string());
            t
        }
        None => {
            let b = builtins().remove(name);
            TemplateConfig {
                format: b.as_ref().map(|b| b.format).unwrap_or_default(),
                file: None,
                source: Some(text.to_string()),
                title: b.as_ref().and_then(|b| b.title.clone()),
                theme: b.and_then(|b| b.theme),
                engine: None,
            }
        }
    }
}

/// Compile the config's templates with `name` replaced; the issues a config
/// load would report.
pub(crate) fn compile_edited(
    s: &TemplateSettings,
    name: &str,
    text: &str,
) -> Result<Arc<Alerting>, Vec<Issue>> {
    let mut templates = s.templates.clone();
    templates.insert(name.to_string(), edited(s, name, text));
    let mut issues = Vec::new();
    let alerting = crate::alertmanager::config::compile(
        &s.alerting,
        &templates,
        &s.base_dir,
        &s.channels,
        &mut issues,
    );
    if issues.is_empty() {
        Ok(alerting)
    } else {
        Err(issues
            .into_iter()
            .map(|i| Issue {
                key: i.key.clone(),
                message: i.message.clone(),
            })
            .collect())
    }
}

/// The editor for `form`, as `caller`.
pub(crate) fn view(
    caller: &Caller,
    s: &TemplateSettings,
    alerting: &Alerting,
    set: &ChannelSet,
    form: &EditorForm,
) -> EditorView {
    let routes: Vec<String> = alerting
        .routes
        .values()
        .filter(|r| r.channels().iter().all(|c| caller.may_use(c)))
        .map(|r| r.name.clone())
        .collect();
    let route = routes
        .iter()
        .find(|r| **r == form.route)
        .or(routes.first())
        .cloned();
    let Some(route) = route else {
        return EditorView {
            empty: true,
            ..Default::default()
        };
    };
    let templates = route_templates(alerting, &route, set);
    let template = templates
        .iter()
        .find(|t| **t == form.template)
        .or(templates.first())
        .cloned()
        .unwrap_or_else(|| "alert.text".into());
    let sample = Sample::parse(&form.sample).unwrap_or(Sample::Firing);
    let (current, engine, builtin) = current_source(s, &template);
    // A source typed for another route or template is not this one's.
    let same = form.route == route && form.template == template;
    let source = match &form.source {
        Some(src) if same => src.replace("\r\n", "\n"),
        _ => current,
    };
    let mut v = EditorView {
        routes,
        route: route.clone(),
        templates,
        template: template.clone(),
        engine,
        builtin,
        sample: sample.key(),
        source,
        can_save: matches!(caller.scope, crate::http::auth::Scope::All),
        ..Default::default()
    };
    let alerting = match compile_edited(s, &template, &v.source) {
        Ok(a) => a,
        Err(issues) => {
            v.issues = issues;
            return v;
        }
    };
    let Some(r) = alerting.routes.get(&route) else {
        return v;
    };
    let n = sample.notification();
    if let Err(e) = samples::try_render(&alerting, r, &n, &template) {
        v.issues.push(Issue {
            key: format!("templates.{template}"),
            message: e.to_string(),
        });
        return v;
    }
    match crate::alertmanager::plan(&alerting, r, &n, set, samples::sample_now()) {
        Ok(plan) => {
            for p in &plan.messages {
                for target in &p.message.targets {
                    preview_target(set, p, target, &mut v);
                }
            }
        }
        Err(e) => v.issues.push(Issue {
            key: format!("alerting.routes.{route}"),
            message: e.0,
        }),
    }
    v
}

/// What the destination behind `target` would be sent for one planned
/// message: its parts with their sizes against the platform's limit.
fn preview_target(
    set: &ChannelSet,
    p: &crate::alertmanager::Planned,
    target: &crate::store::Target,
    v: &mut EditorView,
) {
    let Some(res) = set.resolve(target) else {
        return;
    };
    let Some(d) = res.members.first() else {
        return;
    };
    let mut msg = p.message.message.clone();
    msg.mentions = msg.mentions.for_platform(d.dest.platform());
    let parts = match d.dest.render(&msg) {
        Ok(parts) => parts
            .into_iter()
            .map(|part| part_preview(d.dest.kind(), part.body))
            .collect(),
        Err(e) => {
            v.issues.push(Issue {
                key: format!("channels.{}", res.channel.name),
                message: format!("`{}` cannot send this: {e}", d.key),
            });
            return;
        }
    };
    v.destinations.push(DestPreview {
        channel: res.channel.name.to_string(),
        key: d.key.clone(),
        kind: d.dest.kind(),
        template: p.template.clone(),
        alerts: p.alerts,
        shown: p.shown,
        parts,
    });
}

/// One rendered part with its byte count, and the count the platform's limit
/// applies to (the content alone, for limits on the content).
fn part_preview(kind: &'static str, body: serde_json::Value) -> PartPreview {
    let bytes = serde_json::to_vec(&body).map_or(0, |b| b.len());
    let limit = limit_of(kind, &body);
    let counted = match limit {
        Some(l) if l.content => content_bytes(&body).unwrap_or(bytes),
        _ => bytes,
    };
    PartPreview {
        body,
        bytes,
        counted,
        limit,
    }
}

// ---- saving ------------------------------------------------------------------

fn engine_name(e: crate::templates::Engine) -> &'static str {
    use crate::templates::Engine;
    match e {
        Engine::Jinja => "jinja",
        Engine::Go => "go",
        Engine::GoPrometheusAlert => "go-prometheusalert",
    }
}

fn format_name(f: crate::templates::Format) -> &'static str {
    use crate::templates::Format;
    match f {
        Format::Text => "text",
        Format::Markdown => "markdown",
        Format::Card => "card",
    }
}

/// Write the fields of `t` into the TOML table `table` (keys it does not
/// set are removed only where `t` drops them: `file`).
fn write_template(table: &mut toml_edit::Item, t: &TemplateConfig, fresh: bool) {
    use toml_edit::value;
    if fresh {
        table["format"] = value(format_name(t.format));
        if let Some(title) = &t.title {
            table["title"] = value(title.as_str());
        }
        if let Some(theme) = &t.theme {
            table["theme"] = value(theme.as_str());
        }
    }
    if t.file.is_none() {
        if let Some(tbl) = table.as_table_like_mut() {
            tbl.remove("file");
        }
    }
    if let Some(e) = t.engine {
        if fresh || table.get("engine").is_none() {
            table["engine"] = value(engine_name(e));
        }
    }
    table["source"] = value(t.source.clone().unwrap_or_default());
}

/// The config file's text with `[templates.NAME]` holding the edited
/// template; the rest of the file (comments, layout) stays as it was.
pub(crate) fn edit_config_text(
    file_text: &str,
    s: &TemplateSettings,
    name: &str,
    text: &str,
) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = file_text
        .parse()
        .map_err(|e| format!("the config file is not valid TOML: {e}"))?;
    let t = edited(s, name, text);
    let fresh = !s.templates.contains_key(name);
    if doc.get("templates").is_none() {
        let mut tbl = toml_edit::Table::new();
        tbl.set_implicit(true);
        doc["templates"] = toml_edit::Item::Table(tbl);
    }
    let templates = &mut doc["templates"];
    if templates.get(name).is_none() {
        templates[name] = toml_edit::Item::Table(toml_edit::Table::new());
    }
    write_template(&mut templates[name], &t, fresh);
    Ok(doc.to_string())
}

/// `[templates.NAME]` alone, as TOML to paste into the config file (nothing
/// else of the config, so no secret).
pub(crate) fn template_toml(s: &TemplateSettings, name: &str, text: &str) -> String {
    let t = edited(s, name, text);
    let mut doc = toml_edit::DocumentMut::new();
    let mut outer = toml_edit::Table::new();
    outer.set_implicit(true);
    doc["templates"] = toml_edit::Item::Table(outer);
    doc["templates"][name] = toml_edit::Item::Table(toml_edit::Table::new());
    write_template(&mut doc["templates"][name], &t, true);
    if let Some(f) = &t.file {
        doc["templates"][name]["file"] = toml_edit::value(f.display().to_string());
    }
    doc.to_string()
}

/// Where saving `name` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SaveTarget {
    /// The config file, its `[templates.NAME]` changed.
    Config(PathBuf),
    /// The template's own file (`file = "..."`), written whole.
    TemplateFile(PathBuf),
    /// The config did not come from a file.
    Nowhere,
}

pub(crate) fn save_target(s: &TemplateSettings, name: &str) -> SaveTarget {
    if let Some(t) = s.templates.get(name) {
        let go_defs = t.engine().go_flavour().is_some() && t.file.is_some() && t.source.is_some();
        if let (Some(f), None, false) = (&t.file, &t.source, go_defs) {
            let path = if f.is_relative() {
                s.base_dir.join(f)
            } else {
                f.clone()
            };
            return SaveTarget::TemplateFile(path);
        }
    }
    match &s.file {
        Some(f) => SaveTarget::Config(f.clone()),
        None => SaveTarget::Nowhere,
    }
}

/// Whether the gateway may replace `path`: the file is not read-only and a
/// file can be created beside it (the atomic write's temporary).
pub(crate) fn writable(path: &std::path::Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if meta.permissions().readonly() {
        return false;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly())
}

/// A temporary file beside `path` holding `text` (same folder: same base
/// for relative paths, and the rename stays on one file system).
pub(crate) fn write_temp(path: &std::path::Path, text: &str) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "imrelay.toml".into());
    let tmp = path.with_file_name(format!(
        ".{name}.console-{}.tmp",
        super::auth::random_token(8)
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let written = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Keep the file's permissions (a config holding secrets is often 0600).
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> TemplateSettings {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(default)]
            templates: BTreeMap<String, TemplateConfig>,
        }
        let t: T = toml::from_str(text).unwrap();
        TemplateSettings {
            templates: t.templates,
            base_dir: PathBuf::from("/etc/imrelay"),
            file: Some(PathBuf::from("/etc/imrelay/imrelay.toml")),
            ..Default::default()
        }
    }

    #[test]
    fn an_edit_changes_only_the_templates_table() {
        let text = "# keep me\n[server]\nlisten = \"127.0.0.1:0\" # and me\n\n[templates.short]\nformat = \"text\"\nfile = \"short.j2\"\n";
        let s = settings(text);
        let out = edit_config_text(text, &s, "short", "{{ names }}\nline 2").unwrap();
        assert!(
            out.starts_with("# keep me\n[server]\nlisten = \"127.0.0.1:0\" # and me\n"),
            "{out}"
        );
        let v: toml::Table = toml::from_str(&out).unwrap();
        let t = &v["templates"]["short"];
        assert_eq!(t["source"].as_str(), Some("{{ names }}\nline 2"));
        assert_eq!(t["format"].as_str(), Some("text"));
        assert!(
            t.get("file").is_none(),
            "the inline source replaces the file"
        );
        assert_eq!(
            save_target(&s, "short"),
            SaveTarget::TemplateFile("/etc/imrelay/short.j2".into())
        );
    }

    #[test]
    fn a_built_in_becomes_a_template_of_its_name_and_the_paste_has_nothing_else() {
        let text = "[[api_keys]]\nname = \"a\"\nkey = \"secret-key-0123456789\"\n";
        let s = settings(text);
        let out = edit_config_text(text, &s, "alert.wecom", "{{ names }}").unwrap();
        let v: toml::Table = toml::from_str(&out).unwrap();
        let t = &v["templates"]["alert.wecom"];
        assert_eq!(t["format"].as_str(), Some("markdown"));
        assert_eq!(t["source"].as_str(), Some("{{ names }}"));
        assert!(t.get("title").is_some());
        assert_eq!(
            save_target(&s, "alert.wecom"),
            SaveTarget::Config("/etc/imrelay/imrelay.toml".into())
        );
        let paste = template_toml(&s, "alert.wecom", "{{ names }}");
        assert!(paste.contains("[templates.\"alert.wecom\"]"), "{paste}");
        assert!(!paste.contains("secret-key"), "{paste}");
        let _: toml::Table = toml::from_str(&paste).unwrap();
    }

    #[test]
    fn wecom_robot_markdown_and_text_have_their_own_limits() {
        let md = serde_json::json!({"msgtype": "markdown", "markdown": {"content": "héllo"}});
        let text = serde_json::json!({"msgtype": "text", "text": {"content": "hi"}});
        assert_eq!(
            limit_of("wecom_robot", &md),
            Some(Limit {
                bytes: 4096,
                content: true
            })
        );
        assert_eq!(
            limit_of("wecom_robot", &text),
            Some(Limit {
                bytes: 2048,
                content: true
            })
        );
        assert_eq!(content_bytes(&md), Some(6), "UTF-8 bytes, not characters");
        assert_eq!(
            limit_of("dingtalk_robot", &md).map(|l| l.bytes),
            Some(20_000)
        );
        assert_eq!(limit_of("webhook", &md), None);
    }
}
