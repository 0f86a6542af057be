//! The proof: every template in tests/gotemplate/templates over every data
//! file in tests/gotemplate/data, rendered by Go's own text/template (the
//! stdlib-only program tests/gotemplate/render.go) and by this crate, must
//! be byte-identical, under two values of Go's `time.Local`. Go must render
//! every case (a corpus template that fails in Go is a corpus bug).
//!
//! Without `go` the test is skipped locally but fails when `CI` is set.

use std::path::{Path, PathBuf};
use std::process::Command;

use imrelay_gotmpl::{alertmanager, Templates, TimeZone, Value};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/gotemplate")
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// Builds render.go into the target dir; None if Go is not installed.
fn build_go_renderer() -> Option<PathBuf> {
    let go = std::env::var("GO").unwrap_or_else(|_| "go".into());
    if Command::new(&go).arg("version").output().is_err() {
        return None;
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gotemplate");
    std::fs::create_dir_all(&tmp).expect("create temp dir");
    let bin = tmp.join("render");
    let out = Command::new(&go)
        .args(["build", "-o"])
        .arg(&bin)
        .arg("render.go")
        .current_dir(corpus_dir())
        .env("GOCACHE", tmp.join("gocache"))
        .env("GOPATH", tmp.join("gopath"))
        // Standard library only: never fetch a toolchain or module.
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GO111MODULE", "off")
        .output()
        .expect("run go build");
    assert!(
        out.status.success(),
        "go build render.go failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(bin)
}

fn render_rust(mode: &str, src: &str, data: &str, tz: &str) -> Result<String, String> {
    let local = TimeZone::get(tz).expect("known zone");
    let json: serde_json::Value = serde_json::from_str(data).expect("data file is JSON");
    let (mut t, value) = match mode {
        "pwd" => (
            Templates::pwd().with_local(local.clone()),
            alertmanager(&json, &local)?,
        ),
        "pa" => (
            Templates::prometheus_alert().with_local(local),
            Value::from_json(&json),
        ),
        other => panic!("unknown mode {other}"),
    };
    t.parse("root", src).map_err(|e| e.to_string())?;
    t.render("root", &value).map_err(|e| e.to_string())
}

/// Where two outputs first differ, with a little context.
fn first_difference(go: &str, rust: &str) -> String {
    let at = go
        .bytes()
        .zip(rust.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let line = go[..at].matches('\n').count() + 1;
    let ctx = |s: &str| {
        let start = s[..at.min(s.len())].rfind('\n').map_or(0, |i| i + 1);
        s[start..].lines().next().unwrap_or("").to_string()
    };
    format!(
        "first difference at byte {at}, line {line}:\n  go:   {:?}\n  rust: {:?}",
        ctx(go),
        ctx(rust)
    )
}

#[test]
fn rust_renders_the_corpus_byte_for_byte_as_go() {
    let Some(render) = build_go_renderer() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "Go is required in CI for the Go-template corpus test (apt-get install golang-go)"
        );
        eprintln!(
            "skipping: `go` not found (install golang-go to run the Go-template corpus test)"
        );
        return;
    };
    let dir = corpus_dir();
    let templates = files(&dir.join("templates"), "tmpl");
    let data_files = files(&dir.join("data"), "json");
    assert!(
        templates.len() >= 3 && data_files.len() >= 7,
        "corpus is missing files"
    );
    let mut failures = Vec::new();
    let mut compared = 0;
    for tmpl in &templates {
        let name = tmpl.file_name().unwrap().to_string_lossy().to_string();
        let mode = name.split('-').next().unwrap();
        let src = std::fs::read_to_string(tmpl).unwrap();
        for data_file in &data_files {
            let data = std::fs::read_to_string(data_file).unwrap();
            for tz in ["UTC", "Asia/Shanghai"] {
                let out = Command::new(&render)
                    .arg(mode)
                    .arg(tmpl)
                    .arg(data_file)
                    .env("TZ", tz)
                    .output()
                    .unwrap();
                let case = format!(
                    "{name} over {} (TZ={tz})",
                    data_file.file_name().unwrap().to_string_lossy()
                );
                let rust = render_rust(mode, &src, &data, tz);
                // Every corpus template must render in Go: an error on both
                // sides would prove nothing. (Error parity is in engine.rs.)
                if !out.status.success() {
                    failures.push(format!(
                        "{case}: Go failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                    continue;
                }
                let go = String::from_utf8(out.stdout).expect("Go output is UTF-8");
                match rust {
                    Ok(r) if r == go => {}
                    Ok(r) => failures.push(format!("{case}: {}", first_difference(&go, &r))),
                    Err(e) => failures.push(format!("{case}: Go rendered, Rust failed: {e}")),
                }
                compared += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} renderings differ from Go:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
