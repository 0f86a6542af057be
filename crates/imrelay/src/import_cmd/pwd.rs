//! prometheus-webhook-dingtalk's `config.yml`:
//!
//! ```yaml
//! timeout: 5s
//! templates: [templates/ding.tmpl]          # Go template files
//! default_message: {title: '...', text: '...'}
//! targets:
//!   ops:
//!     url: https://oapi.dingtalk.com/robot/send?access_token=...
//!     secret: SEC...
//!     mention: {all: true, mobiles: ['138...']}
//!     message: {title: '...', text: '...'}
//! ```
//!
//! becomes one channel and one route per target (`/dingtalk/ops/send` is
//! `[alerting.routes.ops]` under `[compat] pwd = true`), the route's
//! mentions, and `engine = "go"` templates over the same files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use yaml_rust2::{Yaml, YamlLoader};

use super::toml_out::{array, path};
use super::{
    called_templates, channel_name, defined_templates, env_name, output_dir, relative_to,
    ImportArgs, Report, TomlOut,
};

/// PWD's own listen port (`--web.listen-address=:8060`), kept so Alertmanager's URLs stay.
const PWD_LISTEN: &str = "0.0.0.0:8060";
const DINGTALK_HOST: &str = "oapi.dingtalk.com";
/// What PWD renders when neither the target nor `default_message` says.
const PWD_DEFAULT_TITLE: &str = r#"{{ template "ding.link.title" . }}"#;
const PWD_DEFAULT_TEXT: &str = r#"{{ template "ding.link.content" . }}"#;

/// The keys of a target imrelay maps.
const TARGET_KEYS: &[&str] = &["url", "secret", "mention", "message"];

struct Target {
    name: String,
    channel: String,
    token_env: String,
    secret_env: Option<String>,
    base_url: Option<String>,
    mention_all: bool,
    mobiles: Vec<String>,
    template: Option<String>,
}

/// A template file PWD loaded, with what it defines.
struct TemplateFile {
    path: PathBuf,
    defines: Vec<String>,
}

/// One imrelay template: a file's definitions plus PWD's message text and title.
#[derive(Clone, PartialEq, Eq)]
struct MessageTemplate {
    file: Option<PathBuf>,
    title: String,
    text: String,
}

pub fn import(args: &ImportArgs) -> anyhow::Result<(String, Report)> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    eprintln!(
        "reading prometheus-webhook-dingtalk config {}",
        args.file.display()
    );
    let docs = YamlLoader::load_from_str(&text)
        .with_context(|| format!("{} is not valid YAML", args.file.display()))?;
    let Some(doc) = docs.first() else {
        bail!("{} is empty", args.file.display());
    };
    let Some(root) = doc.as_hash() else {
        bail!("{}: the top level is not a mapping", args.file.display());
    };
    let mut report = Report::default();
    let line = |p: &[&str]| yaml_line(&text, p);
    let base = args.file.parent().unwrap_or(Path::new("."));

    for (k, _) in root {
        let key = k.as_str().unwrap_or("?");
        match key {
            "targets" | "templates" | "default_message" | "timeout" => {}
            "no_builtin_template" => report.notes.push(
                "`no_builtin_template`: imrelay has no PWD built-in templates to turn off".into(),
            ),
            _ => report.unmapped(
                line(&[key]),
                format!("`{key}`: not a setting imrelay knows"),
            ),
        }
    }
    let files = read_template_files(&doc["templates"], base, &text, &mut report)?;
    let default_message = message_of(&doc["default_message"]);

    let Some(targets) = doc["targets"].as_hash() else {
        bail!(
            "{}: no `targets:` mapping; nothing to import",
            args.file.display()
        );
    };
    eprintln!("{} targets", targets.len());
    let mut templates: BTreeMap<String, MessageTemplate> = BTreeMap::new();
    let mut out = Vec::new();
    for (name, t) in targets {
        let Some(name) = name.as_str() else { continue };
        let at = |k: &str| line(&["targets", name, k]);
        for (k, _) in t.as_hash().into_iter().flatten() {
            let k = k.as_str().unwrap_or("?");
            if !TARGET_KEYS.contains(&k) {
                report.unmapped(at(k), format!("targets.{name}.{k}: no imrelay equivalent"));
            }
        }
        let Some(url) = t["url"].as_str() else {
            report.unmapped(
                line(&["targets", name]),
                format!("targets.{name}: no `url`"),
            );
            continue;
        };
        let (_, base_url) = match split_robot_url(url) {
            Ok(v) => v,
            Err(why) => {
                report.unmapped(at("url"), format!("targets.{name}.url: {why}"));
                continue;
            }
        };
        let token_env = env_name(&["PWD", name, "ACCESS_TOKEN"]);
        report.env(
            &token_env,
            format!(
                "the access_token in targets.{name}.url (line {})",
                at("url").unwrap_or(0)
            ),
        );
        let secret_env = t["secret"].as_str().map(|_| {
            let n = env_name(&["PWD", name, "SECRET"]);
            report.env(
                &n,
                format!("targets.{name}.secret (line {})", at("secret").unwrap_or(0)),
            );
            n
        });
        if let Some(b) = &base_url {
            report.notes.push(format!(
                "targets.{name}.url is not on {DINGTALK_HOST}: sending to {b}"
            ));
        }
        let mention = &t["mention"];
        let mobiles: Vec<String> = mention["mobiles"]
            .as_vec()
            .into_iter()
            .flatten()
            .filter_map(yaml_scalar)
            .collect();
        let own = message_of(&t["message"]);
        let message = (
            own.0.or(default_message.0.clone()),
            own.1.or(default_message.1.clone()),
        );
        let template = match map_message(name, message, &files, &mut report) {
            Some(mt) => {
                let existing = templates
                    .iter()
                    .find(|(_, v)| **v == mt)
                    .map(|(k, _)| k.clone());
                Some(existing.unwrap_or_else(|| {
                    let tn = if t["message"].is_badvalue() {
                        "pwd".to_string()
                    } else {
                        format!("pwd.{name}")
                    };
                    templates.insert(tn.clone(), mt);
                    tn
                }))
            }
            None => None,
        };
        out.push(Target {
            name: name.to_string(),
            channel: channel_name(name),
            token_env,
            secret_env,
            base_url,
            mention_all: mention["all"].as_bool().unwrap_or(false),
            mobiles,
            template,
        });
    }
    let timeout = yaml_scalar(&doc["timeout"]);
    let toml = write_toml(args, &out, &templates, timeout.as_deref(), &mut report);
    eprintln!(
        "{} channels, {} routes, {} templates",
        out.len(),
        out.len(),
        templates.len()
    );
    Ok((toml, report))
}

/// `templates:`: the files, resolved against the config's folder.
fn read_template_files(
    list: &Yaml,
    base: &Path,
    text: &str,
    report: &mut Report,
) -> anyhow::Result<Vec<TemplateFile>> {
    let mut files = Vec::new();
    for f in list.as_vec().into_iter().flatten() {
        let Some(f) = f.as_str() else { continue };
        let p = base.join(f);
        match std::fs::read_to_string(&p) {
            Ok(src) => files.push(TemplateFile {
                defines: defined_templates(&src),
                path: p,
            }),
            Err(e) => report.unmapped(
                yaml_line(text, &["templates"]),
                format!(
                    "templates: cannot read {} ({e}); copy it next to the config",
                    p.display()
                ),
            ),
        }
    }
    Ok(files)
}

/// `message:` / `default_message:` as (title, text).
fn message_of(m: &Yaml) -> (Option<String>, Option<String>) {
    (
        m["title"].as_str().map(str::to_string),
        m["text"].as_str().map(str::to_string),
    )
}

/// The template a target renders with, or `None` for imrelay's built-in
/// DingTalk template (PWD's built-in ones are not ours to copy).
fn map_message(
    target: &str,
    (title, text): (Option<String>, Option<String>),
    files: &[TemplateFile],
    report: &mut Report,
) -> Option<MessageTemplate> {
    let title = title.unwrap_or_else(|| PWD_DEFAULT_TITLE.to_string());
    let text = text.unwrap_or_else(|| PWD_DEFAULT_TEXT.to_string());
    let mut called = called_templates(&title);
    called.extend(called_templates(&text));
    if called.is_empty() {
        return Some(MessageTemplate {
            file: None,
            title,
            text,
        });
    }
    // One file must define every template the message calls (imrelay takes one file per template).
    let file = files
        .iter()
        .find(|f| called.iter().all(|c| f.defines.contains(c)));
    match file {
        Some(f) => Some(MessageTemplate {
            file: Some(f.path.clone()),
            title,
            text,
        }),
        None => {
            let missing: Vec<&String> = called
                .iter()
                .filter(|c| !files.iter().any(|f| f.defines.contains(c)))
                .collect();
            if missing.is_empty() {
                report.notes.push(format!(
                    "targets.{target}: its message calls templates from several files; \
                     merge them into one file (imrelay reads one file per template). \
                     Using imrelay's built-in DingTalk template meanwhile"
                ));
            } else {
                report.notes.push(format!(
                    "targets.{target}: {} come from PWD's built-in templates, which imrelay \
                     does not ship; it uses its own built-in DingTalk template (alert.dingtalk) \
                     instead. List your template file under `templates:` to keep yours byte for byte",
                    missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
                ));
            }
            None
        }
    }
}

/// The robot URL's access token, and the base URL when the host is not DingTalk's.
fn split_robot_url(url: &str) -> Result<(String, Option<String>), String> {
    let u = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    let token = u
        .query_pairs()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
        .filter(|t| !t.is_empty())
        .ok_or("no `access_token=` in the URL")?;
    let host = u.host_str().unwrap_or_default();
    let base = (host != DINGTALK_HOST).then(|| {
        let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
        format!("{}://{host}{port}", u.scheme())
    });
    Ok((token, base))
}

fn write_toml(
    args: &ImportArgs,
    targets: &[Target],
    templates: &BTreeMap<String, MessageTemplate>,
    timeout: Option<&str>,
    report: &mut Report,
) -> String {
    let mut t = TomlOut::default();
    t.comment(&format!(
        "Imported from prometheus-webhook-dingtalk's {} by `imrelay import pwd`.",
        args.file.display()
    ));
    t.comment("Alertmanager keeps posting to http://HOST:8060/dingtalk/<target>/send.");
    t.table("server", false).str("listen", PWD_LISTEN);
    if let Some(timeout) = timeout {
        t.table("outbound.timeouts", false).str("total", timeout);
    }
    t.table("compat", false).raw("pwd", "true");
    if args.allow_unauthenticated {
        t.comment("As PWD: no authentication. Prefer the API key below.")
            .raw("allow_unauthenticated", "true");
    }
    let channels: Vec<String> = targets.iter().map(|x| x.channel.clone()).collect();
    let key = report.env(
        "IMRELAY_ALERTMANAGER_KEY",
        "a long random key; give it to Alertmanager (http_config.authorization.credentials, or ?key= in the URL)",
    );
    t.table("api_keys", true)
        .str("name", "alertmanager")
        .str("key", &key)
        .raw("channels", &array(&channels));
    for x in targets {
        t.table(&path(&["channels", &x.channel]), false);
        t.table(&path(&["channels", &x.channel, "destinations"]), true)
            .str("type", "dingtalk_robot")
            .str("access_token", &format!("${{{}}}", x.token_env));
        if let Some(s) = &x.secret_env {
            t.str("secret", &format!("${{{s}}}"));
        }
        if let Some(b) = &x.base_url {
            t.str("base_url", b);
        }
    }
    t.table("alerting", false)
        .comment("Go's time.Local in templates (`.StartsAt.Local`): PWD used its host's zone.")
        .str("time_zone", "UTC");
    for x in targets {
        t.table(&path(&["alerting", "routes", &x.name]), false)
            .comment(&format!("was POST /dingtalk/{}/send", x.name))
            .raw("channels", &array(std::slice::from_ref(&x.channel)));
        if let Some(tpl) = &x.template {
            t.str("template", tpl);
        }
        if x.mention_all || !x.mobiles.is_empty() {
            let mut parts = Vec::new();
            if x.mention_all {
                parts.push("all = true".to_string());
            }
            if !x.mobiles.is_empty() {
                parts.push(format!("mobiles = {}", array(&x.mobiles)));
            }
            t.raw("mentions", &format!("{{ {} }}", parts.join(", ")));
        }
    }
    let out_dir = output_dir(args.output.as_deref());
    for (name, m) in templates {
        t.table(&path(&["templates", name]), false)
            .str("engine", "go")
            .str("format", "markdown");
        if let Some(f) = &m.file {
            t.str("file", &relative_to(&out_dir, f));
        }
        t.str("source", &m.text).str("title", &m.title);
    }
    t.finish()
}

fn yaml_scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The 1-based line of a nested mapping key in YAML text, found by
/// indentation (yaml-rust2's documents carry no positions).
pub fn yaml_line(text: &str, keys: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0;
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    for key in keys {
        let mut hit = None;
        for (i, l) in lines.iter().enumerate().skip(start) {
            let body = l.trim_start();
            if body.is_empty() || body.starts_with('#') {
                continue;
            }
            let indent = l.len() - body.len();
            if parent_indent.is_some_and(|p| indent <= p) {
                break;
            }
            let body = body.trim_start_matches("- ");
            let k = body
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(['"', '\'']);
            if k == *key && body.contains(':') {
                hit = Some((i, indent));
                break;
            }
        }
        let (i, indent) = hit?;
        found = Some(i + 1);
        start = i + 1;
        parent_indent = Some(indent);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_by_indentation() {
        let y = "targets:\n  a:\n    url: x\n  b:\n    # c\n    url: y\n    secret: s\n";
        assert_eq!(yaml_line(y, &["targets", "b", "url"]), Some(6));
        assert_eq!(yaml_line(y, &["targets", "a", "secret"]), None);
        assert_eq!(yaml_line(y, &["targets", "b", "secret"]), Some(7));
    }

    #[test]
    fn robot_urls() {
        assert_eq!(
            split_robot_url("https://oapi.dingtalk.com/robot/send?access_token=abc"),
            Ok(("abc".to_string(), None))
        );
        assert_eq!(
            split_robot_url("http://proxy:81/robot/send?access_token=abc"),
            Ok(("abc".to_string(), Some("http://proxy:81".to_string())))
        );
        assert!(split_robot_url("https://oapi.dingtalk.com/robot/send").is_err());
    }
}
