//! PrometheusAlert's `conf/app.conf` (beego INI: `key = value`, `#` comments)
//! and its templates:
//!
//! ```ini
//! title=PrometheusAlert
//! httpport=8080
//! open-dingding=1
//! ddurl=https://oapi.dingtalk.com/robot/send?access_token=...[&secret=SEC...]
//! dd_isatall=1
//! open-weixin=1
//! wxurl=https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...
//! open-feishu=1
//! fsurl=https://open.feishu.cn/open-apis/bot/v2/hook/...
//! ```
//!
//! Each open robot channel becomes an imrelay channel (`pa-dingtalk`,
//! `pa-wecom`, `pa-feishu`), the default of `[compat.prometheusalert_defaults]`;
//! each template becomes `[templates.NAME]` with `engine = "go-prometheusalert"`,
//! so `POST /prometheusalert?type=dd&tpl=NAME` answers as before.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::toml_out::{array, path};
use super::{env_name, output_dir, relative_to, PaArgs, Report, TomlOut};

/// One `key=value` of app.conf, with its line.
struct Setting {
    line: usize,
    key: String,
    value: String,
}

/// An open robot channel of app.conf.
struct Robot {
    /// `dd`, `wx`, `fs`.
    ty: &'static str,
    channel: String,
    kind: &'static str,
    /// (destination key, env var) per URL; several when the URL list has commas.
    fields: Vec<Fields>,
}

/// A destination's TOML fields: key and value (secrets as `${ENV}`).
type Fields = Vec<(&'static str, String)>;

/// One robot URL, read.
struct ParsedRobot {
    /// To spot repeats; never written out.
    token: String,
    fields: Fields,
}

/// Where a robot URL was read, for the hints on the variables to set.
struct UrlSource<'a> {
    what: &'a str,
    line: usize,
}

/// The PA types: URL parameter, channel, destination type, env var prefix.
const TYPES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "dd",
        "ddurl",
        "pa-dingtalk",
        "dingtalk_robot",
        "PA_DINGTALK",
    ),
    ("wx", "wxurl", "pa-wecom", "wecom_robot", "PA_WECOM"),
    ("fs", "fsurl", "pa-feishu", "feishu_webhook", "PA_FEISHU"),
];

/// A PA template.
struct PaTemplate {
    name: String,
    source: TemplateText,
}

enum TemplateText {
    File(PathBuf),
    Inline(String),
}

/// Settings imrelay maps, or has no use for (the web UI's, the database's, logging).
const MAPPED: &[&str] = &[
    "prometheus_cst_time",
    "title",
    "httpport",
    "httpaddr",
    "open-dingding",
    "ddurl",
    "dd_isatall",
    "open-dingding-secret",
    "open-weixin",
    "wxurl",
    "open-feishu",
    "fsurl",
];
const NOT_NEEDED: &[&str] = &[
    "appname",
    "runmode",
    "copyrequestbody",
    "logtype",
    "logpath",
    "logsavetime",
    "login_user",
    "login_password",
    "db_driver",
    "db_host",
    "db_port",
    "db_user",
    "db_password",
    "db_name",
    "alert_to_mysql",
    "logourl",
    "rlogourl",
];

pub fn import(args: &PaArgs) -> anyhow::Result<(String, Report)> {
    let file = &args.common.file;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    eprintln!("reading PrometheusAlert config {}", file.display());
    let settings = parse_ini(&text);
    let get = |k: &str| settings.iter().rev().find(|s| s.key == k);
    let on = |k: &str| get(k).is_some_and(|s| s.value == "1" || s.value == "true");
    let mut report = Report::default();

    let mut robots = Vec::new();
    // (type, token) of every robot imported, kept in memory only to spot repeats.
    let mut known: Vec<(&str, String)> = Vec::new();
    for (open, (ty, url_key, channel, kind, prefix)) in
        ["open-dingding", "open-weixin", "open-feishu"]
            .into_iter()
            .zip(TYPES.iter().copied())
    {
        if !on(open) {
            continue;
        }
        let Some(url) = get(url_key).filter(|s| !s.value.is_empty()) else {
            report.unmapped(
                get(open).map(|s| s.line),
                format!("`{open}=1` without `{url_key}`"),
            );
            continue;
        };
        let src = UrlSource {
            what: &format!("`{url_key}`"),
            line: url.line,
        };
        let mut fields = Vec::new();
        for (i, one) in url
            .value
            .split(',')
            .filter(|u| !u.trim().is_empty())
            .enumerate()
        {
            let prefix = if i == 0 {
                prefix.to_string()
            } else {
                format!("{prefix}{}", i + 1)
            };
            match robot_fields(ty, one.trim(), &prefix, &src, &mut report) {
                Ok(r) => {
                    known.push((ty, r.token));
                    fields.push(r.fields);
                }
                Err(why) => report.unmapped(Some(url.line), format!("`{url_key}`: {why}")),
            }
        }
        if fields.is_empty() {
            continue;
        }
        robots.push(Robot {
            ty,
            channel: channel.to_string(),
            kind,
            fields,
        });
    }
    let defaults: Vec<(&'static str, String)> =
        robots.iter().map(|r| (r.ty, r.channel.clone())).collect();
    if let Some(am) = &args.alertmanager {
        alertmanager_robots(am, &mut known, &mut robots, &mut report)?;
    }
    for s in &settings {
        let open_other = s.key.starts_with("open-")
            && !MAPPED.contains(&s.key.as_str())
            && (s.value == "1" || s.value == "true");
        if open_other {
            report.unmapped(
                Some(s.line),
                format!("`{}={}`: imrelay has no such channel type", s.key, s.value),
            );
        } else if !MAPPED.contains(&s.key.as_str())
            && !NOT_NEEDED.contains(&s.key.as_str())
            && !s.key.starts_with("open-")
            && !s.value.is_empty()
        {
            report.unmapped(Some(s.line), format!("`{}`: not carried over", s.key));
        }
    }
    if let Some(s) = get("dd_isatall").filter(|_| on("dd_isatall")) {
        report.unmapped(
            Some(s.line),
            "`dd_isatall=1`: imrelay mentions whom the URL's `at=` names, not everyone on every message",
        );
    }
    if on("prometheus_cst_time") {
        report
            .notes
            .push("prometheus_cst_time=1: templates' GetCSTtime already shows CST; `[alerting] time_zone` is set to Asia/Shanghai".into());
    }
    if robots.is_empty() {
        bail!(
            "{}: no DingTalk, WeCom or Feishu robot is open (open-dingding, open-weixin, open-feishu); nothing to import",
            file.display()
        );
    }
    let templates = match &args.templates {
        Some(p) => read_templates(p)?,
        None => {
            report.notes.push(
                "no --templates: PA keeps its templates in its database; export them (or save \
                 each as NAME.tmpl) and import again, or requests naming them get a 422"
                    .into(),
            );
            Vec::new()
        }
    };
    if args.alertmanager.is_none() {
        report.notes.push(
            "robots named in Alertmanager's URLs (ddurl=/wxurl=/fsurl=) that are not app.conf's \
             defaults must be destinations of a channel (imrelay refuses robots it does not have): \
             import again with --alertmanager alertmanager.yml to add them"
                .into(),
        );
    }
    eprintln!(
        "{} robot channels, {} templates",
        robots.len(),
        templates.len()
    );
    let title = get("title")
        .map(|s| s.value.clone())
        .unwrap_or_else(|| "PrometheusAlert".into());
    let port = get("httpport")
        .map(|s| s.value.clone())
        .unwrap_or_else(|| "8080".into());
    let toml = write_toml(
        args,
        &robots,
        &defaults,
        &templates,
        &title,
        &port,
        &mut report,
    );
    Ok((toml, report))
}

/// The robot a URL names: its destination's fields, the secrets as env
/// references (`{prefix}_ACCESS_TOKEN`, ...).
fn robot_fields(
    ty: &str,
    url: &str,
    prefix: &str,
    src: &UrlSource,
    report: &mut Report,
) -> Result<ParsedRobot, String> {
    let u = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    let param = |k: &str| {
        u.query_pairs()
            .find(|(q, _)| q == k)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
    };
    let from = |what: &str| format!("{what} in {} (line {})", src.what, src.line);
    let mut out = Vec::new();
    let token = match ty {
        "dd" => {
            let token = param("access_token").ok_or("no `access_token=` in the URL")?;
            let v = env_name(&[prefix, "ACCESS_TOKEN"]);
            out.push(("access_token", report.env(&v, from("the access_token"))));
            if param("secret").is_some() {
                let v = env_name(&[prefix, "SECRET"]);
                out.push(("secret", report.env(&v, from("the secret="))));
            }
            token
        }
        "wx" => {
            let token = param("key").ok_or("no `key=` in the URL")?;
            let v = env_name(&[prefix, "KEY"]);
            out.push(("key", report.env(&v, from("the key="))));
            token
        }
        _ => {
            let hook = u
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or("")
                .to_string();
            if hook.is_empty() {
                return Err("no hook token at the end of the URL".into());
            }
            let v = env_name(&[prefix, "HOOK"]);
            out.push(("hook", report.env(&v, from("the last path part"))));
            if u.host_str() == Some("open.larksuite.com") {
                out.push(("region", "lark".into()));
            }
            hook
        }
    };
    Ok(ParsedRobot { token, fields: out })
}

/// Robots that Alertmanager's `/prometheusalert?...` URLs name and app.conf
/// does not: each becomes a channel (`pa-dingtalk-2`, ...), so those URLs
/// keep working unchanged.
fn alertmanager_robots(
    path: &Path,
    known: &mut Vec<(&'static str, String)>,
    robots: &mut Vec<Robot>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = path.display().to_string();
    for (i, line) in text.lines().enumerate() {
        let Some(at) = line.find("/prometheusalert?") else {
            continue;
        };
        let query = line[at + "/prometheusalert?".len()..]
            .trim_end()
            .trim_end_matches(['"', '\'']);
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let top = |k: &str| pairs.iter().find(|(q, _)| q == k).map(|(_, v)| v.clone());
        for &(ty, url_key, channel, kind, prefix) in TYPES {
            let Some(urls) = top(url_key) else { continue };
            for one in urls.split(',').filter(|u| !u.trim().is_empty()) {
                // PA's own URLs carry a DingTalk signing secret as `&secret=` of the outer URL.
                let one = match top("secret") {
                    Some(sec) if ty == "dd" && !one.contains("secret=") => {
                        format!("{}&secret={sec}", one.trim())
                    }
                    _ => one.trim().to_string(),
                };
                let n = robots.iter().filter(|r| r.ty == ty).count() + 1;
                let src = UrlSource {
                    what: &file,
                    line: i + 1,
                };
                // Parsed into a scratch report first: a repeat adds no variables.
                let mut scratch = Report::default();
                let prefix = format!("{prefix}_{n}");
                match robot_fields(ty, &one, &prefix, &src, &mut scratch) {
                    Ok(r) if known.iter().any(|(t, k)| *t == ty && *k == r.token) => {}
                    Ok(ParsedRobot { token, fields }) => {
                        known.push((ty, token));
                        report.env.extend(scratch.env);
                        robots.push(Robot {
                            ty,
                            channel: format!("{channel}-{n}"),
                            kind,
                            fields: vec![fields],
                        });
                    }
                    Err(why) => {
                        report.unmapped(None, format!("{file}:{}: `{url_key}`: {why}", i + 1))
                    }
                }
            }
        }
    }
    Ok(())
}

fn parse_ini(text: &str) -> Vec<Setting> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') || l.starts_with('[') {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        out.push(Setting {
            line: i + 1,
            key: k.trim().to_string(),
            value: v.trim().trim_matches('"').to_string(),
        });
    }
    out
}

/// A folder of `NAME.tmpl` files, or the template table as JSON.
fn read_templates(p: &Path) -> anyhow::Result<Vec<PaTemplate>> {
    if p.is_dir() {
        let mut out = Vec::new();
        for e in std::fs::read_dir(p).with_context(|| format!("cannot list {}", p.display()))? {
            let path = e?.path();
            if path.extension().is_some_and(|x| x == "tmpl") {
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.push(PaTemplate {
                    name,
                    source: TemplateText::File(path),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        return Ok(out);
    }
    let text =
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a JSON array of template rows ({{\"tplname\", \"tpltype\", \"tpl\"}})",
            p.display()
        )
    })?;
    let field = |row: &serde_json::Value, k: &str| {
        row.as_object().and_then(|o| {
            o.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .and_then(|(_, v)| v.as_str().map(str::to_string))
        })
    };
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let name = field(row, "tplname")
                .with_context(|| format!("{}: row {i} has no `tplname`", p.display()))?;
            let tpl = field(row, "tpl")
                .with_context(|| format!("{}: row {i} has no `tpl`", p.display()))?;
            Ok(PaTemplate {
                name,
                source: TemplateText::Inline(tpl),
            })
        })
        .collect()
}

fn write_toml(
    args: &PaArgs,
    robots: &[Robot],
    defaults: &[(&str, String)],
    templates: &[PaTemplate],
    title: &str,
    port: &str,
    report: &mut Report,
) -> String {
    let common = &args.common;
    let mut t = TomlOut::default();
    t.comment(&format!(
        "Imported from PrometheusAlert's {} by `imrelay import prometheusalert`.",
        common.file.display()
    ));
    t.comment("Alertmanager keeps posting to http://HOST:PORT/prometheusalert?type=..&tpl=..");
    t.table("server", false)
        .str("listen", &format!("0.0.0.0:{port}"));
    t.table("compat", false).raw("prometheusalert", "true");
    if common.allow_unauthenticated {
        t.comment("As PrometheusAlert: no authentication. Prefer the API key below.")
            .raw("allow_unauthenticated", "true");
    }
    t.table("compat.prometheusalert_defaults", false);
    for (ty, channel) in defaults {
        t.str(ty, channel);
    }
    let key = report.env(
        "IMRELAY_ALERTMANAGER_KEY",
        "a long random key; add &key=KEY to Alertmanager's webhook URLs (or http_config.authorization)",
    );
    let channels: Vec<String> = robots.iter().map(|r| r.channel.clone()).collect();
    t.table("api_keys", true)
        .str("name", "alertmanager")
        .str("key", &key)
        .raw("channels", &array(&channels));
    for r in robots {
        t.table(&path(&["channels", &r.channel]), false);
        for fields in &r.fields {
            t.table(&path(&["channels", &r.channel, "destinations"]), true)
                .str("type", r.kind);
            for (k, v) in fields {
                t.str(k, v);
            }
        }
    }
    t.table("alerting", false).str("time_zone", "Asia/Shanghai");
    let out_dir = output_dir(common.output.as_deref());
    for tpl in templates {
        t.table(&path(&["templates", &tpl.name]), false)
            .str("engine", "go-prometheusalert")
            .str("format", "markdown")
            .str("title", title);
        match &tpl.source {
            TemplateText::File(f) => t.str("file", &relative_to(&out_dir, f)),
            TemplateText::Inline(s) => t.str("source", s),
        };
    }
    t.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_lines_keep_their_numbers() {
        let s = parse_ini("# c\n[x]\nddurl = \"https://a?b=c\"\n\nopen-dingding=1\n");
        assert_eq!(
            s.iter()
                .map(|s| (s.line, s.key.as_str(), s.value.as_str()))
                .collect::<Vec<_>>(),
            [(3, "ddurl", "https://a?b=c"), (5, "open-dingding", "1")]
        );
    }
}
