//! The migration guides' worked examples, run as written: every block after
//! a `<!-- ci: ... -->` marker in docs/migrate-*.md is used.
//! - `file PATH`: the block is the repository file PATH, exactly;
//! - `run`: the import command, run in a folder holding the guide's fixtures;
//! - `output FILE`: the block is what the command wrote, exactly;
//! - `config FILE`: the block is written to FILE (hand-written configs);
//! - `env`: the `export` lines `imrelay config check` and `serve` get;
//! - `alertmanager`: each webhook URL is posted a notification, with the key.
//!
//! Then `imrelay config check` must pass, and the messages must reach the
//! mock platform (each destination pointed at it: the only edit).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::migrate_pwd::{
    assert_config_check, notification, pointed_at_mock, repo_root, serve_with_env, text,
};
use crate::serve_support::{free_port, Scratch};

/// What the test puts for `$(...)` in an `export` (a generated key).
const GENERATED_KEY: &str = "guide-generated-key-0123456789abcdef";

struct Block {
    marker: String,
    body: String,
}

/// The fenced block after each `<!-- ci: ... -->` marker.
fn ci_blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = md.lines();
    while let Some(line) = lines.next() {
        let Some(marker) = line
            .trim()
            .strip_prefix("<!-- ci:")
            .and_then(|m| m.strip_suffix("-->"))
        else {
            continue;
        };
        let fence = lines
            .next()
            .filter(|l| l.starts_with("```"))
            .unwrap_or_else(|| panic!("`<!-- ci:{marker}-->` is not followed by a fenced block"));
        assert!(fence.len() > 3, "{marker}: the block has no language");
        let mut body = String::new();
        for l in lines.by_ref() {
            if l == "```" {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        out.push(Block {
            marker: marker.trim().to_string(),
            body,
        });
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// `export A=b C=d` lines as pairs.
fn exports(block: &str) -> Vec<(String, String)> {
    block
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .flat_map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let v = if v.starts_with("$(") {
                GENERATED_KEY
            } else {
                v
            };
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// The webhook URLs of an alertmanager.yml block, and whether it sends a bearer key.
fn webhook_urls(yaml: &str) -> (Vec<String>, bool) {
    let urls = yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- url:"))
        .map(|u| u.trim().trim_matches('"').to_string())
        .collect();
    (urls, yaml.contains("credentials:"))
}

/// Runs one guide; `targets` are the mock targets that must get a message.
async fn run_guide(guide: &str, fixtures: Option<&str>, targets: &[&str]) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let md = std::fs::read_to_string(repo_root().join("docs").join(guide)).unwrap();
    let blocks = ci_blocks(&md);
    let dir = Scratch::new("guide");
    if let Some(f) = fixtures {
        copy_dir(&repo_root().join("tests/fixtures").join(f), &dir.0);
    }
    let mut env: Vec<(String, String)> = Vec::new();
    let mut config = None;
    let mut alertmanager = None;
    for b in &blocks {
        let (kind, arg) = b.marker.split_once(' ').unwrap_or((&b.marker, ""));
        match kind {
            "file" => assert_eq!(
                b.body,
                std::fs::read_to_string(repo_root().join(arg)).unwrap(),
                "{guide}: the block marked `{}` differs from the file",
                b.marker
            ),
            "run" => {
                let args: Vec<&str> = b.body.split_whitespace().collect();
                assert_eq!(args[0], "imrelay", "{guide}: {}", b.body);
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_imrelay"))
                    .args(&args[1..])
                    .current_dir(&dir.0)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{guide}: `{}` failed: {}",
                    b.body.trim(),
                    text(&out.stderr)
                );
            }
            "output" => {
                config = Some(dir.path(arg));
                let got = std::fs::read_to_string(dir.path(arg)).unwrap();
                assert_eq!(
                    b.body, got,
                    "{guide}: the command's output is not what the guide shows"
                );
            }
            "config" => {
                std::fs::write(dir.path(arg), &b.body).unwrap();
                config = Some(dir.path(arg));
            }
            "env" => env.extend(exports(&b.body)),
            "alertmanager" => alertmanager = Some(b.body.clone()),
            other => panic!("{guide}: unknown ci marker `{other}`"),
        }
    }
    let config = config.unwrap_or_else(|| panic!("{guide}: no `output` or `config` block"));
    let alertmanager = alertmanager.unwrap_or_else(|| panic!("{guide}: no `alertmanager` block"));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_config_check(&config, &env);

    let (port, mock_port) = (free_port(), free_port());
    let runnable = dir.path("run.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &runnable,
        pointed_at_mock(&toml, port, mock_port, &dir.path("q.db"), &[]),
    )
    .unwrap();
    let serve = serve_with_env(&runnable, port, dir.path("imrelay.log"), &env).await;
    let key = env
        .iter()
        .find(|(k, _)| *k == "IMRELAY_ALERTMANAGER_KEY")
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("{guide}: no IMRELAY_ALERTMANAGER_KEY in the env block"));
    let (urls, bearer) = webhook_urls(&alertmanager);
    assert!(
        !urls.is_empty(),
        "{guide}: no webhook URL in the alertmanager block"
    );
    let http = reqwest::Client::new();
    for u in urls {
        let u = u.replace("<IMRELAY_ALERTMANAGER_KEY>", key);
        let path = &u[u.find("://").map(|i| i + 3).unwrap()..];
        let path = &path[path.find('/').unwrap()..];
        let mut req = http
            .post(format!("{}{path}", serve.server()))
            .json(&notification());
        if bearer {
            req = req.bearer_auth(key);
        }
        let r = req.send().await.unwrap();
        assert_eq!(
            r.status(),
            200,
            "{guide}: {path}: {}",
            r.text().await.unwrap()
        );
    }
    let mock = format!("http://127.0.0.1:{mock_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = http
            .get(format!("{mock}/_mock/requests?accepted=true&limit=1000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sent = |t: &&str| {
            v["requests"].as_array().unwrap().iter().any(|e| {
                e["target"] == *t
                    && e["endpoint"] != "token"
                    && e["body"].to_string().contains("DiskFull")
            })
        };
        if targets.iter().all(sent) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{guide}: not every one of {targets:?} got the alert: {v:#}\n--- imrelay log:\n{}",
            serve.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_from_pwd() {
    run_guide(
        "migrate-from-pwd.md",
        Some("pwd"),
        &["dingtalk:robot:webhook1-token"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_from_prometheusalert() {
    run_guide(
        "migrate-from-prometheusalert.md",
        Some("prometheusalert"),
        &["dingtalk:robot:pa-dd-token"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_from_alertmanager() {
    run_guide(
        "migrate-from-alertmanager.md",
        None,
        &["wecom:app:ww0123456789abcdef", "dingtalk:robot:ops-token"],
    )
    .await;
}

#[test]
fn every_guide_is_linked_from_the_readme_and_migration_md() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let migration = std::fs::read_to_string(repo_root().join("docs/migration.md")).unwrap();
    for guide in [
        "migrate-from-pwd.md",
        "migrate-from-prometheusalert.md",
        "migrate-from-alertmanager.md",
    ] {
        assert!(
            readme.contains(&format!("docs/{guide}")),
            "README.md does not link {guide}"
        );
        assert!(
            migration.contains(&format!("({guide})")),
            "docs/migration.md does not link {guide}"
        );
    }
}
