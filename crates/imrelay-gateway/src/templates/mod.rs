//! Message templates (minijinja), shared by the Alertmanager bridge and by
//! `POST /v1/messages` with `template` + `data`.
//!
//! A template has a body (the message text), an optional title and, for cards,
//! an optional theme (header colour); each is a minijinja template. Its
//! `format` says what the body becomes: `text`, `markdown`, or `card` (markdown
//! with a coloured header and link buttons; a Feishu interactive card, an
//! actionCard on DingTalk, markdown on WeCom).
//!
//! Built-in templates, used unless the config defines one of the same name:
//! - `alert.dingtalk`: DingTalk markdown;
//! - `alert.feishu`: a Feishu interactive card, header coloured by status and
//!   severity, with "Source" and "Silence" buttons;
//! - `alert.wecom`: WeCom markdown (`<font color>` by status);
//! - `alert.text`: plain text for every other platform.
//!
//! A template can also be Go text/template (`engine = "go"`, module `go`),
//! rendered as prometheus-webhook-dingtalk renders it.
//!
//! Filters available to every template: `datetime` (an RFC 3339 time shown in
//! the configured time zone, optionally with a strftime format) and `since`
//! (how long ago an RFC 3339 time was, e.g. `5m`).

use std::collections::BTreeMap;
use std::sync::Arc;

mod go;
pub use go::{Engine, GoFlavour, GoTemplateSource};

use imrelay_sdk::message::{Body, Button};
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

/// What a template's body becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Text,
    #[default]
    Markdown,
    Card,
}

/// One template's sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSource {
    pub format: Format,
    pub body: String,
    pub title: Option<String>,
    pub theme: Option<String>,
}

/// A rendered template.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub title: Option<String>,
    pub body: Body,
}

/// The time format used when a template does not give one.
pub const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S %Z";

/// Compiled templates plus the time zone times are shown in.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
    /// `engine = "go"` templates (a name here shadows a minijinja one).
    go: BTreeMap<String, Arc<go::Compiled>>,
    formats: BTreeMap<String, Format>,
    tz_name: String,
    tz: jiff::tz::TimeZone,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("templates", &self.formats.keys().collect::<Vec<_>>())
            .field("time_zone", &self.tz_name)
            .finish()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new("UTC", BTreeMap::new()).expect("the built-in templates compile")
    }
}

/// A template that failed to compile: which one, which part, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Template name.
    pub name: String,
    /// `body`, `title`, `theme` or `time_zone`.
    pub part: &'static str,
    pub message: String,
}

/// Why rendering a template failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("no template `{0}` is defined")]
    Unknown(String),
    #[error("template `{name}` ({part}): {message}")]
    Failed {
        name: String,
        part: &'static str,
        message: String,
    },
    #[error("template `{0}` rendered an empty body")]
    EmptyBody(String),
}

/// The built-in templates.
pub fn builtins() -> BTreeMap<String, TemplateSource> {
    let alert_theme = include_str!("builtin/alert_theme.j2");
    let title = include_str!("builtin/alert_title.j2");
    let mut m = BTreeMap::new();
    let mut add = |name: &str, format, body: &str, theme: Option<&str>| {
        m.insert(
            name.to_string(),
            TemplateSource {
                format,
                body: body.to_string(),
                title: Some(title.trim_end().to_string()),
                theme: theme.map(str::to_string),
            },
        );
    };
    add(
        "alert.dingtalk",
        Format::Markdown,
        include_str!("builtin/alert_dingtalk.md.j2"),
        None,
    );
    add(
        "alert.feishu",
        Format::Card,
        include_str!("builtin/alert_feishu.md.j2"),
        Some(alert_theme.trim_end()),
    );
    add(
        "alert.wecom",
        Format::Markdown,
        include_str!("builtin/alert_wecom.md.j2"),
        None,
    );
    add(
        "alert.text",
        Format::Text,
        include_str!("builtin/alert_text.j2"),
        None,
    );
    m
}

/// The built-in alert template for a platform.
pub fn builtin_alert_template(platform: imrelay_sdk::message::Platform) -> &'static str {
    use imrelay_sdk::message::Platform as P;
    match platform {
        P::Dingtalk => "alert.dingtalk",
        P::Feishu => "alert.feishu",
        P::Wecom => "alert.wecom",
        P::Wechat | P::Webhook | P::Email | P::Aliyun | P::Tencent => "alert.text",
    }
}

/// The names of the built-in templates.
pub fn builtin_names() -> Vec<String> {
    builtins().into_keys().collect()
}

/// The time zone named `name`; UTC and an error naming `time_zone` when unknown.
fn zone(name: &str, errors: &mut Vec<TemplateError>) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(name).unwrap_or_else(|e| {
        errors.push(TemplateError {
            name: String::new(),
            part: "time_zone",
            message: format!(
                "`{name}` is not a known time zone ({e}); use an IANA name such as \"Asia/Shanghai\" or \"UTC\""
            ),
        });
        jiff::tz::TimeZone::UTC
    })
}

/// The minijinja environment every template renders in: its syntax, its
/// handling of missing fields, no escaping, and the time filters in `tz`.
fn environment(tz: &jiff::tz::TimeZone) -> Environment<'static> {
    let mut env = Environment::new();
    // Block tags on their own lines leave no blank lines behind, so templates
    // can be laid out readably.
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    // Missing fields print as empty (alerts often lack an annotation), but a
    // typo in an attribute chain still fails at render (and at config load).
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    // Output goes to chat markup, not HTML.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let tz_f = tz.clone();
    env.add_filter(
        "datetime",
        move |v: String, fmt: Option<String>| -> Result<String, minijinja::Error> {
            format_time(&v, &tz_f, fmt.as_deref().unwrap_or(DEFAULT_TIME_FORMAT)).ok_or_else(|| {
                minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("`{v}` is not an RFC 3339 time"),
                )
            })
        },
    );
    env.add_filter("since", |v: String| -> String {
        since(&v, jiff::Timestamp::now())
    });
    env
}

/// Add the parts (body, title, theme) of template `name` to `env`.
fn add_jinja(
    env: &mut Environment<'static>,
    name: &str,
    src: &TemplateSource,
    errors: &mut Vec<TemplateError>,
) {
    let parts = [
        ("body", Some(&src.body)),
        ("title", src.title.as_ref()),
        ("theme", src.theme.as_ref()),
    ];
    for (part, text) in parts {
        let Some(text) = text else { continue };
        if let Err(e) = env.add_template_owned(part_name(name, part), text.clone()) {
            errors.push(TemplateError {
                name: name.to_string(),
                part,
                message: describe(&e),
            });
        }
    }
}

impl Templates {
    /// Compile the built-ins plus `user` templates (a user template replaces a
    /// built-in of the same name), showing times in `time_zone` (an IANA name
    /// such as `Asia/Shanghai`, or `UTC`). Returns every error found.
    pub fn new(
        time_zone: &str,
        user: BTreeMap<String, TemplateSource>,
    ) -> Result<Templates, Vec<TemplateError>> {
        Templates::with_go(time_zone, user, BTreeMap::new())
    }

    /// [`Templates::new`] plus `engine = "go"` templates (Go's `time.Local`
    /// is `time_zone`).
    pub fn with_go(
        time_zone: &str,
        user: BTreeMap<String, TemplateSource>,
        go_user: BTreeMap<String, GoTemplateSource>,
    ) -> Result<Templates, Vec<TemplateError>> {
        let mut errors = Vec::new();
        let tz = zone(time_zone, &mut errors);
        let mut env = environment(&tz);
        let mut all = builtins();
        all.extend(user);
        let mut formats = BTreeMap::new();
        for (name, src) in all {
            add_jinja(&mut env, &name, &src, &mut errors);
            formats.insert(name, src.format);
        }
        let mut go = BTreeMap::new();
        for (name, src) in go_user {
            formats.insert(name.clone(), src.format);
            match go::compile(&name, src, &tz) {
                Ok(c) => {
                    go.insert(name, Arc::new(c));
                }
                Err(e) => errors.extend(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Templates {
            env: Arc::new(env),
            go,
            formats,
            tz_name: time_zone.to_string(),
            tz,
        })
    }

    /// Whether a template of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.formats.contains_key(name)
    }

    /// Template names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.formats.keys().map(String::as_str)
    }

    /// The configured time zone's name.
    pub fn time_zone(&self) -> &str {
        &self.tz_name
    }

    /// An RFC 3339 time in the configured zone (`None` when it does not parse).
    pub fn format_time(&self, rfc3339: &str) -> Option<String> {
        format_time(rfc3339, &self.tz, DEFAULT_TIME_FORMAT)
    }

    /// Render `name` with `ctx`; `buttons` are added to card bodies.
    pub fn render(
        &self,
        name: &str,
        ctx: &Value,
        buttons: Vec<Button>,
    ) -> Result<Rendered, RenderError> {
        let format = *self
            .formats
            .get(name)
            .ok_or_else(|| RenderError::Unknown(name.to_string()))?;
        let (text, title, theme) = match self.go.get(name) {
            Some(g) => {
                let p = g.render(ctx)?;
                (p.body, p.title, p.theme)
            }
            None => {
                let part = |p: &'static str| -> Result<Option<String>, RenderError> {
                    match self.env.get_template(&part_name(name, p)) {
                        Ok(t) => t
                            .render(ctx)
                            .map(|s| Some(s.trim().to_string()))
                            .map_err(|e| RenderError::Failed {
                                name: name.to_string(),
                                part: p,
                                message: describe(&e),
                            }),
                        Err(_) => Ok(None),
                    }
                };
                // Body first: an empty body is reported before a failing title.
                let text = part("body")?.unwrap_or_default();
                if text.is_empty() {
                    return Err(RenderError::EmptyBody(name.to_string()));
                }
                let title = part("title")?;
                let theme = if format == Format::Card {
                    part("theme")?
                } else {
                    None
                };
                (text, title, theme)
            }
        };
        if text.is_empty() {
            return Err(RenderError::EmptyBody(name.to_string()));
        }
        let title = title.filter(|t| !t.is_empty());
        let body = match format {
            Format::Text => Body::Text { text },
            Format::Markdown => Body::Markdown { text },
            Format::Card => Body::Card {
                text,
                buttons,
                theme: theme.filter(|t| !t.is_empty()),
            },
        };
        Ok(Rendered { title, body })
    }
}

fn part_name(name: &str, part: &str) -> String {
    format!("{name}#{part}")
}

/// A minijinja error in one line, with the line number when known.
fn describe(e: &minijinja::Error) -> String {
    let mut s = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

/// Format an RFC 3339 time in `tz`. The zero time Alertmanager sends for "not
/// ended" (`0001-01-01T00:00:00Z`) formats as an empty string.
pub fn format_time(rfc3339: &str, tz: &jiff::tz::TimeZone, fmt: &str) -> Option<String> {
    let ts: jiff::Timestamp = rfc3339.trim().parse().ok()?;
    if ts.as_second() <= ZERO_TIME_SECS {
        return Some(String::new());
    }
    let z = ts.to_zoned_datetime(tz.clone());
    jiff::fmt::strtime::format(fmt, &z).ok()
}

/// Seconds of `0001-01-01T00:00:00Z`, Go's zero time.
const ZERO_TIME_SECS: i64 = -62_135_596_800;

/// Whether an RFC 3339 time is Go's zero time (or unparsable).
pub fn is_zero_time(rfc3339: &str) -> bool {
    rfc3339
        .trim()
        .parse::<jiff::Timestamp>()
        .map_or(true, |t| t.as_second() <= ZERO_TIME_SECS)
}

/// `5m`, `2h 3m`, `1d 4h`: how long from `from` to `to` (empty if unparsable).
pub fn span_between(from: &str, to: jiff::Timestamp) -> String {
    let Ok(from) = from.trim().parse::<jiff::Timestamp>() else {
        return String::new();
    };
    let secs = to.as_second().saturating_sub(from.as_second()).max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d}d"));
    }
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 && d == 0 {
        parts.push(format!("{m}m"));
    }
    if parts.is_empty() {
        parts.push(format!("{s}s"));
    }
    parts.join(" ")
}

fn since(v: &str, now: jiff::Timestamp) -> String {
    span_between(v, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_compile_and_times_use_the_zone() {
        let t = Templates::new("Asia/Shanghai", BTreeMap::new()).unwrap();
        assert!(t.contains("alert.feishu"));
        assert_eq!(
            t.format_time("2026-11-24T16:00:00Z").unwrap(),
            "2026-11-25 00:00:00 CST"
        );
        assert_eq!(t.format_time("0001-01-01T00:00:00Z").unwrap(), "");
    }

    #[test]
    fn errors_name_the_template_and_part() {
        let mut user = BTreeMap::new();
        user.insert(
            "broken".to_string(),
            TemplateSource {
                format: Format::Markdown,
                body: "{% for a in alerts %}{{ a.name }".into(),
                title: Some("{{ ok }}".into()),
                theme: None,
            },
        );
        let errs = Templates::new("Mars/Olympus", user).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].part, "time_zone");
        assert_eq!((errs[1].name.as_str(), errs[1].part), ("broken", "body"));
        assert!(errs[1].message.contains("line 1"), "{}", errs[1].message);
    }

    #[test]
    fn spans_read_well() {
        let now: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(span_between("2026-01-02T03:04:00Z", now), "5s");
        assert_eq!(span_between("2026-01-02T02:00:00Z", now), "1h 4m");
        assert_eq!(span_between("2025-12-31T00:00:00Z", now), "2d 3h");
        assert_eq!(span_between("nonsense", now), "");
    }
}
