//! `imrelay import pwd|prometheusalert`: turn another tool's config into an
//! imrelay TOML, so moving over is one command.
//!
//! - [`pwd`]: prometheus-webhook-dingtalk's `config.yml`;
//! - [`pa`]: PrometheusAlert's `conf/app.conf` and its templates.
//!
//! Secrets never reach the output: they become `${ENV}` references, and
//! the command says which variables to set and where their values are in the
//! old config. Whatever has no imrelay equivalent is listed on stderr with
//! the line it came from. The result passes `imrelay config check`.

mod pa;
mod pwd;
mod toml_out;

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

pub use toml_out::TomlOut;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// prometheus-webhook-dingtalk: one channel and one route per target, its templates unchanged.
    #[command(after_help = "\
Example:
  imrelay import pwd /etc/prometheus-webhook-dingtalk/config.yml -o imrelay.toml
  # Alertmanager keeps posting to http://HOST:8060/dingtalk/<target>/send")]
    Pwd(ImportArgs),
    /// PrometheusAlert: app.conf's robots as channels, its templates unchanged.
    #[command(after_help = "\
Example:
  imrelay import prometheusalert conf/app.conf --templates templates/ -o imrelay.toml
  # Alertmanager keeps posting to http://HOST:8080/prometheusalert?type=dd&tpl=...&ddurl=...")]
    Prometheusalert(PaArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tool's config file.
    pub file: PathBuf,
    /// Write the TOML here instead of stdout (template paths are made relative to it).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Answer the old endpoints without an API key, as the old tool did
    /// (Alertmanager's config then needs no change at all).
    #[arg(long)]
    pub allow_unauthenticated: bool,
}

#[derive(Debug, Args)]
pub struct PaArgs {
    #[command(flatten)]
    pub common: ImportArgs,
    /// PrometheusAlert's templates: a folder of `NAME.tmpl` files, or the
    /// template table exported as JSON (`[{"tplname", "tpltype", "tpl"}, ...]`).
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Alertmanager's config: robots its `/prometheusalert?...` URLs name
    /// (ddurl=, wxurl=, fsurl=) become channels too, so those URLs keep working.
    #[arg(long)]
    pub alertmanager: Option<PathBuf>,
}

/// What an import produced besides the TOML.
#[derive(Debug, Default)]
pub struct Report {
    /// Environment variables the TOML refers to, and where their values are.
    pub env: Vec<EnvVar>,
    /// What was not carried over, each with its line.
    pub unmapped: Vec<Unmapped>,
    /// Carried over, but not exactly the same.
    pub notes: Vec<String>,
}

#[derive(Debug)]
pub struct EnvVar {
    pub name: String,
    pub from: String,
}

#[derive(Debug)]
pub struct Unmapped {
    /// 1-based, when known.
    pub line: Option<usize>,
    pub what: String,
}

impl Report {
    pub fn env(&mut self, name: &str, from: impl Into<String>) -> String {
        self.env.push(EnvVar {
            name: name.to_string(),
            from: from.into(),
        });
        format!("${{{name}}}")
    }

    pub fn unmapped(&mut self, line: Option<usize>, what: impl Into<String>) {
        self.unmapped.push(Unmapped {
            line,
            what: what.into(),
        });
    }
}

pub fn run(cmd: ImportCommand) -> ExitCode {
    let (common, result) = match cmd {
        ImportCommand::Pwd(args) => {
            let r = pwd::import(&args);
            (args, r)
        }
        ImportCommand::Prometheusalert(args) => {
            let r = pa::import(&args);
            (args.common, r)
        }
    };
    let (toml, report) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    print_report(&common.file, &report);
    match &common.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &toml) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(1);
            }
            eprintln!(
                "wrote {}; check it with `imrelay config check {}`",
                path.display(),
                path.display()
            );
        }
        None => print!("{toml}"),
    }
    ExitCode::SUCCESS
}

fn print_report(file: &Path, report: &Report) {
    let name = file.display();
    let mut unmapped: Vec<&Unmapped> = report.unmapped.iter().collect();
    unmapped.sort_by_key(|u| u.line);
    for u in unmapped {
        match u.line {
            Some(l) => eprintln!("not imported: {name}:{l}: {}", u.what),
            None => eprintln!("not imported: {name}: {}", u.what),
        }
    }
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    if !report.env.is_empty() {
        eprintln!(
            "set these environment variables for `imrelay serve` and `imrelay config check`:"
        );
        for v in &report.env {
            eprintln!("  {:<36} {}", v.name, v.from);
        }
    }
}

/// An environment variable name from parts: `PWD_WEBHOOK1_SECRET`.
pub fn env_name(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// A channel name imrelay accepts (letters, digits, `_`, `-`), from a target name.
pub fn channel_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() {
        "target".into()
    } else {
        s
    }
}

/// Where the output's relative paths start: the output file's folder, else
/// the current one.
pub fn output_dir(output: Option<&Path>) -> PathBuf {
    let dir = output
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    absolute(&dir)
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    })
}

/// `target` as a path relative to the folder `base` (both made absolute),
/// as the config resolves `file = ...` against its own folder.
pub fn relative_to(base: &Path, target: &Path) -> String {
    let target = absolute(target);
    let b: Vec<Component> = base.components().collect();
    let t: Vec<Component> = target.components().collect();
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return target.to_string_lossy().into_owned();
    }
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out.to_string_lossy().into_owned()
}

/// The template names a Go template source calls with `{{ template "NAME" }}`.
pub fn called_templates(src: &str) -> Vec<String> {
    names_after(src, "template")
}

/// The names a Go template file `define`s.
pub fn defined_templates(src: &str) -> Vec<String> {
    names_after(src, "define")
}

fn names_after(src: &str, keyword: &str) -> Vec<String> {
    let mut out = Vec::new();
    for action in src.split("{{").skip(1) {
        let action = action.trim_start_matches('-').trim_start();
        let Some(rest) = action.strip_prefix(keyword) else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '`') else {
            continue;
        };
        if let Some(end) = rest[1..].find(q) {
            let name = rest[1..1 + end].to_string();
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_env_vars_and_channels() {
        assert_eq!(
            env_name(&["pwd", "web-hook.1", "secret"]),
            "PWD_WEB_HOOK_1_SECRET"
        );
        assert_eq!(channel_name("ops team"), "ops-team");
    }

    #[test]
    fn finds_defines_and_calls() {
        let src = r#"{{ define "a.title" }}x{{ end }}{{- define `b` -}}{{ template "a.title" . }}{{ end }}"#;
        assert_eq!(defined_templates(src), ["a.title", "b"]);
        assert_eq!(called_templates(src), ["a.title"]);
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_to(Path::new("/a/b"), Path::new("/a/c/t.tmpl")),
            "../c/t.tmpl"
        );
        assert_eq!(
            relative_to(Path::new("/a"), Path::new("/a/t.tmpl")),
            "t.tmpl"
        );
    }
}
