//! `engine = "go"`: Go text/template as prometheus-webhook-dingtalk (PWD)
//! renders it (its functions, `missingkey=zero`), over Alertmanager's data in
//! PWD's shape (`.Alerts.Firing`, `.CommonLabels`, `.StartsAt.Format ...`).
//! Go's `time.Local` is the configured `alerting.time_zone`.
//!
//! `engine = "go-prometheusalert"`: Go text/template as PrometheusAlert (PA)
//! renders it (its functions, default options), over the webhook's raw JSON
//! (`.alerts`, `.commonLabels`, `.externalURL`, times as strings).

use serde::Deserialize;

use super::{Format, RenderError, TemplateError};

/// Which engine renders a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// minijinja (the default).
    #[default]
    #[serde(alias = "minijinja")]
    Jinja,
    /// Go text/template, as PWD renders it.
    Go,
    /// Go text/template, as PrometheusAlert renders it.
    #[serde(rename = "go-prometheusalert")]
    GoPrometheusAlert,
}

impl Engine {
    /// The Go flavour, for the Go engines.
    pub fn go_flavour(self) -> Option<GoFlavour> {
        match self {
            Engine::Jinja => None,
            Engine::Go => Some(GoFlavour::Pwd),
            Engine::GoPrometheusAlert => Some(GoFlavour::PrometheusAlert),
        }
    }
}

/// Whose functions, options and data shape a Go template gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GoFlavour {
    /// prometheus-webhook-dingtalk: Alertmanager's typed `Data`.
    #[default]
    Pwd,
    /// PrometheusAlert: the request body as JSON.
    PrometheusAlert,
}

/// One Go template's sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTemplateSource {
    pub format: Format,
    pub flavour: GoFlavour,
    /// A template file (PWD's `templates:` files): its `define`s serve every
    /// part; its top level is the body unless `body` is given.
    pub file: Option<String>,
    /// The body (PWD's `message.text`), e.g. `{{ template "ding.link.content" . }}`.
    pub body: Option<String>,
    pub title: Option<String>,
    pub theme: Option<String>,
}

/// A compiled Go template: one template set holding every part.
#[derive(Debug)]
pub(super) struct Compiled {
    set: imrelay_gotmpl::Templates,
    flavour: GoFlavour,
    name: String,
    has_title: bool,
    has_theme: bool,
}

fn part_name(name: &str, part: &str) -> String {
    format!("{name}#{part}")
}

/// Parses every part; errors name the part and carry Go's template, line and column.
pub(super) fn compile(
    name: &str,
    src: GoTemplateSource,
    local: &jiff::tz::TimeZone,
) -> Result<Compiled, Vec<TemplateError>> {
    let set = match src.flavour {
        GoFlavour::Pwd => imrelay_gotmpl::Templates::pwd(),
        GoFlavour::PrometheusAlert => imrelay_gotmpl::Templates::prometheus_alert(),
    };
    let mut set = set.with_local(local.clone());
    let mut errors = Vec::new();
    let err = |part, e: imrelay_gotmpl::Error| TemplateError {
        name: name.to_string(),
        part,
        message: e.to_string(),
    };
    // The file's top level is the body only when no separate body is given.
    let file_as = if src.body.is_some() {
        part_name(name, "file")
    } else {
        name.to_string()
    };
    let parts = [
        ("file", file_as, src.file.as_ref()),
        ("body", name.to_string(), src.body.as_ref()),
        ("title", part_name(name, "title"), src.title.as_ref()),
        ("theme", part_name(name, "theme"), src.theme.as_ref()),
    ];
    for (part, go_name, text) in &parts {
        if let Some(text) = text {
            if let Err(e) = set.parse(go_name, text) {
                errors.push(err(part, e));
            }
        }
    }
    if errors.is_empty() {
        if let Err(e) = set.check_references() {
            let part = match e.template.rsplit_once('#') {
                Some((_, "title")) => "title",
                Some((_, "theme")) => "theme",
                _ if src.file.is_some() && e.template != name => "file",
                _ => "body",
            };
            errors.push(err(part, e));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Compiled {
        set,
        flavour: src.flavour,
        name: name.to_string(),
        has_title: src.title.is_some(),
        has_theme: src.theme.is_some(),
    })
}

/// The rendered parts: body, title, theme (each trimmed, like minijinja's).
pub(super) struct Parts {
    pub body: String,
    pub title: Option<String>,
    pub theme: Option<String>,
}

impl Compiled {
    pub(super) fn render(&self, ctx: &minijinja::Value) -> Result<Parts, RenderError> {
        let failed = |part, message: String| RenderError::Failed {
            name: self.name.clone(),
            part,
            message,
        };
        let json = serde_json::to_value(ctx).map_err(|e| failed("body", e.to_string()))?;
        let payload = alertmanager_payload(json);
        let data = match self.flavour {
            GoFlavour::Pwd => imrelay_gotmpl::alertmanager(&payload, &self.set.options().local)
                .map_err(|e| {
                    failed(
                        "body",
                        format!("the data is not an Alertmanager notification: {e}"),
                    )
                })?,
            GoFlavour::PrometheusAlert => imrelay_gotmpl::Value::from_json(&payload),
        };
        let part = |part: &'static str, go_name: &str| {
            self.set
                .render(go_name, &data)
                .map(|s| s.trim().to_string())
                .map_err(|e| failed(part, e.to_string()))
        };
        Ok(Parts {
            body: part("body", &self.name)?,
            title: self
                .has_title
                .then(|| part("title", &part_name(&self.name, "title")))
                .transpose()?,
            theme: self
                .has_theme
                .then(|| part("theme", &part_name(&self.name, "theme")))
                .transpose()?,
        })
    }
}

/// Alertmanager's webhook JSON from the bridge's template context, which
/// carries every field of PWD's `Data` (the alerts are those the message
/// shows). Any other data (`POST /v1/messages`) is taken as a webhook
/// payload as it is.
fn alertmanager_payload(ctx: serde_json::Value) -> serde_json::Value {
    use serde_json::{json, Value};
    let is_bridge = ctx["alerts"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x.get("starts_at_rfc3339").is_some()))
        || (ctx.get("route").is_some() && ctx.get("group_labels").is_some());
    if !is_bridge {
        return ctx;
    }
    let alerts: Vec<Value> = ctx["alerts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let ends = a["ends_at_rfc3339"].as_str().filter(|s| !s.is_empty());
            json!({
                "status": a["status"],
                "labels": a["labels"],
                "annotations": a["annotations"],
                "startsAt": a["starts_at_rfc3339"],
                "endsAt": ends.unwrap_or("0001-01-01T00:00:00Z"),
                "generatorURL": a["generator_url"],
                "fingerprint": a["fingerprint"],
            })
        })
        .collect();
    json!({
        "receiver": ctx["receiver"],
        "status": ctx["status"],
        "alerts": alerts,
        "groupLabels": ctx["group_labels"],
        "commonLabels": ctx["common_labels"],
        "commonAnnotations": ctx["common_annotations"],
        "externalURL": ctx["external_url"],
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use imrelay_sdk::message::Body;
    use serde_json::json;

    use crate::alertmanager::{plan, Notification};
    use crate::channels::{Channel, ChannelSet, DestinationEntry};
    use crate::config::Config;

    /// Definitions in the style of PWD's default.tmpl.
    const PWD_TMPL: &str = r#"{{ define "ding.link.title" }}[{{ .Status | toUpper }}:{{ .Alerts.Firing | len }}] {{ .GroupLabels.SortedPairs.Values | join " " }}{{ end }}
{{ define "ding.link.content" }}{{ range .Alerts }}- {{ .Labels.alertname }} {{ .Labels.severity | upper }} at {{ .StartsAt.Local.Format "15:04 MST" }} {{ .Annotations.summary | markdown }}{{ if not .EndsAt.IsZero }} ended {{ .EndsAt }}{{ end }}
{{ end }}{{ .ExternalURL }} {{ .Receiver }} [{{ .CommonLabels.nope }}]{{ end }}
"#;

    const CONFIG: &str = r#"
[[api_keys]]
name = "ci"
key = "test-key-0123456789abcdef"
channels = ["*"]

[channels.team]
[[channels.team.destinations]]
type = "dingtalk_robot"
access_token = "t"

[alerting]
time_zone = "Asia/Shanghai"
[alerting.routes.prod]
channels = ["team"]
template = "pwd"
"#;

    fn config(dir: &Path, template_section: &str) -> Result<Config, String> {
        Config::parse(&format!("{CONFIG}\n{template_section}"), dir).map_err(|e| {
            e.issues
                .iter()
                // A template that does not compile is also "not defined" for the route.
                .filter(|i| i.key != "alerting.routes.prod.template")
                .map(|i| format!("{}: {}", i.key, i.message))
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    fn notification() -> Notification {
        serde_json::from_value(json!({
            "version": "4", "status": "firing", "receiver": "dingtalk-ops",
            "groupKey": "{}:{alertname=\"HighCPU\"}",
            "groupLabels": {"alertname": "HighCPU"},
            "commonLabels": {"job": "node"}, "commonAnnotations": {},
            "externalURL": "http://am:9093",
            "alerts": [
                {"status": "firing", "labels": {"alertname": "HighCPU", "severity": "critical", "job": "node"},
                 "annotations": {"summary": "CPU_high"}, "startsAt": "2026-11-24T08:00:00Z",
                 "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/g", "fingerprint": "a1"},
                {"status": "resolved", "labels": {"alertname": "HighCPU", "severity": "warning", "job": "node"},
                 "annotations": {"summary": "was high"}, "startsAt": "2026-11-24T07:00:00Z",
                 "endsAt": "2026-11-24T08:20:00.5Z", "generatorURL": "http://prom/g", "fingerprint": "b2"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn a_route_with_engine_go_renders_a_pwd_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pwd.tmpl"), PWD_TMPL).unwrap();
        // `.tmpl` implies the Go engine; `source` and `title` are PWD's message text and title.
        let cfg = config(
            dir.path(),
            r#"[templates.pwd]
file = "pwd.tmpl"
source = '{{ template "ding.link.content" . }}'
title = '{{ template "ding.link.title" . }}'
"#,
        )
        .unwrap();
        let alerting = cfg.compile_alerting().unwrap();
        let client = imrelay_sdk::Client::new().unwrap();
        let dest = client
            .build(&json!({"type": "dingtalk_robot", "access_token": "t"}))
            .unwrap();
        let set = ChannelSet::new([Channel::new("team", vec![DestinationEntry::new(dest)])]);
        let now = "2026-11-24T09:00:00Z".parse().unwrap();
        let p = plan(
            &alerting,
            &alerting.routes["prod"],
            &notification(),
            &set,
            now,
        )
        .unwrap();
        assert_eq!(p.messages.len(), 1);
        assert_eq!(p.messages[0].template, "pwd");
        let m = &p.messages[0].message.message;
        assert_eq!(m.title.as_deref(), Some("[FIRING:1] HighCPU"));
        let Body::Markdown { text } = &m.body else {
            panic!("markdown expected: {:?}", m.body)
        };
        assert_eq!(
            text,
            "- HighCPU CRITICAL at 16:00 CST CPU\\_high\n\
             - HighCPU WARNING at 15:00 CST was high ended 2026-11-24 08:20:00.5 +0000 UTC\n\
             http://am:9093 dingtalk-ops []"
        );
    }

    #[test]
    fn engine_go_prometheusalert_renders_pa_templates_over_the_raw_json() {
        let dir = tempfile::tempdir().unwrap();
        // PA's shape (`.alerts`, `$v.startsAt` a string) and functions (`GetCSTtime`).
        let cfg = config(
            dir.path(),
            r#"[templates.pwd]
engine = "go-prometheusalert"
format = "markdown"
title = "PrometheusAlert"
source = '{{ range $k, $v := .alerts }}{{ $v.labels.severity }} {{ GetCSTtime $v.startsAt }}|{{ end }}{{ .commonLabels.job }} {{ .externalURL }}'
"#,
        )
        .unwrap();
        let alerting = cfg.compile_alerting().unwrap();
        let client = imrelay_sdk::Client::new().unwrap();
        let dest = client
            .build(&json!({"type": "dingtalk_robot", "access_token": "t"}))
            .unwrap();
        let set = ChannelSet::new([Channel::new("team", vec![DestinationEntry::new(dest)])]);
        let now = "2026-11-24T09:00:00Z".parse().unwrap();
        let p = plan(
            &alerting,
            &alerting.routes["prod"],
            &notification(),
            &set,
            now,
        )
        .unwrap();
        let m = &p.messages[0].message.message;
        assert_eq!(m.title.as_deref(), Some("PrometheusAlert"));
        let Body::Markdown { text } = &m.body else {
            panic!("markdown expected: {:?}", m.body)
        };
        assert_eq!(
            text,
            "critical 2026-11-24 16:00:00|warning 2026-11-24 15:00:00|node http://am:9093"
        );
        // PA's helpers exist only in its flavour: plain `go` is PWD's.
        let err = config(
            dir.path(),
            "[templates.pwd]\nengine = \"go\"\nsource = '{{ GetCSTtime .x }}'\n",
        )
        .unwrap_err();
        assert!(err.contains("function \"GetCSTtime\" not defined"), "{err}");
    }

    #[test]
    fn config_check_reports_go_errors_with_template_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.tmpl"),
            "{{ define \"x\" }}\nok\n{{ foo . }}{{ end }}",
        )
        .unwrap();
        let err = config(
            dir.path(),
            "[templates.pwd]\nfile = \"bad.tmpl\"\nsource = '{{ template \"x\" . }}'\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            r#"templates.pwd.file: template "x" line 3, column 4: function "foo" not defined"#
        );
        // An inline Go body: the key is `source`; a missing template is found too.
        let err = config(
            dir.path(),
            "[templates.pwd]\nengine = \"go\"\nsource = '{{ template \"nope\" . }}'\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            r#"templates.pwd.source: template "pwd" line 1, column 4: no such template "nope""#
        );
        let err = config(
            dir.path(),
            "[templates.pwd]\nengine = \"go\"\nsource = 'x'\ntitle = '{{ .Status | nope }}'\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with("templates.pwd.title: template \"pwd#title\" line 1"),
            "{err}"
        );
        // Without `engine = "go"` (and no `.tmpl`), `{{ template }}` is minijinja's problem.
        assert!(config(
            dir.path(),
            "[templates.pwd]\nsource = '{{ template \"x\" }}'\n"
        )
        .is_err());
    }

    #[test]
    fn api_data_renders_as_a_webhook_payload() {
        let mut go = std::collections::BTreeMap::new();
        go.insert(
            "g".to_string(),
            super::GoTemplateSource {
                format: super::Format::Text,
                flavour: super::GoFlavour::Pwd,
                file: None,
                body: Some(
                    "{{ .Status }} {{ len .Alerts.Firing }} {{ .CommonLabels.team }}".into(),
                ),
                title: None,
                theme: None,
            },
        );
        let t = super::super::Templates::with_go("UTC", Default::default(), go).unwrap();
        let data = json!({"status": "firing", "commonLabels": {"team": "db"},
                          "alerts": [{"status": "firing", "startsAt": "2026-01-01T00:00:00Z"}]});
        let r = t
            .render(
                "g",
                &minijinja::Value::from(minijinja::value::Serde(&data)),
                Vec::new(),
            )
            .unwrap();
        assert_eq!(
            r.body,
            Body::Text {
                text: "firing 1 db".into()
            }
        );
        let bad = minijinja::Value::from(minijinja::value::Serde(json!({"alerts": "no"})));
        assert!(t.render("g", &bad, Vec::new()).is_err());
    }
}
