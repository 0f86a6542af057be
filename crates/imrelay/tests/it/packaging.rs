//! What people download and deploy: `imrelay --version`, the `health` probe
//! the container uses, the Dockerfile (checked statically: no image registry
//! is reachable from CI, so it is never built here), and the Helm chart
//! (rendered for both store modes with the project's Go-template engine plus
//! the few Helm functions the chart uses, then parsed as YAML and checked for
//! the Kubernetes essentials; not validated against the full OpenAPI schemas,
//! for which `helm` and `kubeconform` are not installable here).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use imrelay_gotmpl::{FnCtx, Options, Templates, Value};
use serde_json::{json, Value as Json};

const BIN: &str = env!("CARGO_BIN_EXE_imrelay");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn version_names_the_commit_the_build_date_and_rustc() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], concat!("imrelay ", env!("CARGO_PKG_VERSION")));
    let commit = lines[1].strip_prefix("commit: ").expect(&text);
    let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(
        hash == "unknown" || (hash.len() >= 7 && hash.chars().all(|c| c.is_ascii_hexdigit())),
        "{text}"
    );
    let date = lines[2].strip_prefix("built:  ").expect(&text);
    let d: Vec<&str> = date.split('-').collect();
    assert!(
        d.len() == 3 && d.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())),
        "{text}"
    );
    assert!(lines[3].starts_with("rustc:  rustc 1."), "{text}");
    // `-V` stays one line, for scripts.
    let short = Command::new(BIN).arg("-V").output().unwrap();
    assert_eq!(String::from_utf8(short.stdout).unwrap().trim(), lines[0]);
}

#[tokio::test]
async fn health_exits_0_when_the_gateway_answers_and_1_otherwise() {
    use axum::http::StatusCode;
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/readyz",
            axum::routing::get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "draining") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let run = |args: Vec<String>| async move {
        tokio::process::Command::new(BIN)
            .args(&args)
            .env_remove("IMRELAY_SERVER")
            .output()
            .await
            .unwrap()
    };
    let url = format!("http://{addr}");
    let ok = run(vec!["health".into(), "--server".into(), url.clone()]).await;
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let not_ready = run(vec![
        "health".into(),
        "--ready".into(),
        "--server".into(),
        url,
    ])
    .await;
    assert_eq!(not_ready.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&not_ready.stderr).contains("HTTP 503"));
    server.abort();
    // Nothing listening.
    let down = run(vec![
        "health".into(),
        "--server".into(),
        format!("http://{addr}"),
    ])
    .await;
    assert_eq!(down.status.code(), Some(1));
}

/// A Dockerfile instruction: keyword and arguments, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

fn dockerfile(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        pending.push_str(trimmed);
        let (keyword, args) = pending.split_once(char::is_whitespace).unwrap();
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.split_whitespace().collect::<Vec<_>>().join(" "),
        });
        pending.clear();
    }
    assert!(pending.is_empty(), "a continuation line ends the file");
    out
}

#[test]
fn dockerfile_builds_on_bookworm_and_runs_non_root_with_a_health_check() {
    let all = dockerfile(&read("Dockerfile"));
    let stages: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, i)| i.keyword == "FROM")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(stages.len(), 2, "multi-stage: build, then runtime");
    assert_eq!(all[stages[0]].args, "rust:1-slim-bookworm AS build");
    assert_eq!(all[stages[1]].args, "debian:bookworm-slim");
    let (build, runtime) = all.split_at(stages[1]);
    let find = |stage: &[Instruction], kw: &str| -> Vec<String> {
        stage
            .iter()
            .filter(|i| i.keyword == kw)
            .map(|i| i.args.clone())
            .collect()
    };

    // The build installs the release binary at /out/imrelay; the runtime
    // copies exactly that onto its PATH.
    let build_run = find(build, "RUN").join(" && ");
    assert!(
        build_run.contains("cargo build --release --locked -p imrelay"),
        "{build_run}"
    );
    assert!(
        build_run.contains("target/release/imrelay /out/imrelay"),
        "{build_run}"
    );
    assert_eq!(
        find(runtime, "COPY"),
        ["--from=build /out/imrelay /usr/local/bin/imrelay"]
    );

    // Non-root, and the user owns the data volume.
    let user = find(runtime, "USER");
    assert_eq!(user.len(), 1);
    let uid = user[0].split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "{uid}");
    let runtime_run = find(runtime, "RUN").join(" ");
    assert!(
        runtime_run.contains(&format!("--uid {uid}")),
        "{runtime_run}"
    );
    assert!(runtime_run.contains("install -d -o imrelay -g imrelay -m 0750 /var/lib/imrelay"));
    assert_eq!(find(runtime, "VOLUME"), [r#"["/var/lib/imrelay"]"#]);
    assert_eq!(find(runtime, "EXPOSE"), ["8080"]);

    // The health check runs the binary itself (no curl in the image), at
    // the address the ENV gives it, and `imrelay health` is a real command.
    let hc = find(runtime, "HEALTHCHECK");
    assert_eq!(hc.len(), 1);
    assert!(hc[0].ends_with(r#"CMD ["imrelay", "health"]"#), "{}", hc[0]);
    let env = find(runtime, "ENV").join(" ");
    assert!(
        env.contains("IMRELAY_SERVER=http://127.0.0.1:8080"),
        "{env}"
    );
    assert!(
        env.contains("IMRELAY_CONFIG=/etc/imrelay/imrelay.toml"),
        "{env}"
    );
    let help = Command::new(BIN)
        .args(["health", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("IMRELAY_SERVER"));
    assert_eq!(find(runtime, "ENTRYPOINT"), [r#"["imrelay", "serve"]"#]);

    // The context leaves the build output and .git out.
    let ignore = read(".dockerignore");
    for entry in ["target/", ".git/"] {
        assert!(ignore.lines().any(|l| l == entry), "{entry}");
    }
}

// ---- Helm --------------------------------------------------------------

/// The Helm functions the chart uses, on top of Go's builtins.
fn helm_templates() -> Templates {
    let mut funcs = imrelay_gotmpl::funcs::builtins();
    funcs.insert("quote", helm_quote);
    funcs.insert("default", helm_default);
    funcs.insert("nindent", helm_nindent);
    funcs.insert("required", helm_required);
    funcs.insert("fail", helm_fail);
    Templates::new(
        funcs,
        Options {
            missingkey_zero: true,
            ..Options::default()
        },
    )
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Nil => String::new(),
        other => format!("{other:?}"),
    }
}

/// Truthiness as Helm's `empty` judges it.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Nil => true,
        Value::Str(s) => s.is_empty(),
        Value::Int(i) => *i == 0,
        Value::Bool(b) => !b,
        Value::List(l, _) => l.is_empty(),
        Value::Map(m, _) => m.is_empty(),
        _ => false,
    }
}

fn helm_quote(_: &FnCtx, args: &[Value]) -> Result<Value, String> {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| serde_json::to_string(&scalar_text(a)).unwrap())
        .collect();
    Ok(Value::str(quoted.join(" ")))
}

fn helm_default(_: &FnCtx, args: &[Value]) -> Result<Value, String> {
    match args {
        [fallback] => Ok(fallback.clone()),
        [fallback, given] => Ok(if is_empty(given) { fallback } else { given }.clone()),
        _ => Err("default takes 1 or 2 arguments".into()),
    }
}

fn helm_nindent(_: &FnCtx, args: &[Value]) -> Result<Value, String> {
    let [Value::Int(n), text] = args else {
        return Err("nindent takes a width and a string".into());
    };
    let pad = " ".repeat(*n as usize);
    Ok(Value::str(format!(
        "\n{pad}{}",
        scalar_text(text).replace('\n', &format!("\n{pad}"))
    )))
}

fn helm_required(_: &FnCtx, args: &[Value]) -> Result<Value, String> {
    let [message, value] = args else {
        return Err("required takes a message and a value".into());
    };
    if is_empty(value) {
        return Err(scalar_text(message));
    }
    Ok(value.clone())
}

fn helm_fail(_: &FnCtx, args: &[Value]) -> Result<Value, String> {
    Err(args.first().map(scalar_text).unwrap_or_default())
}

/// YAML to JSON with Python's PyYAML (Debian's python3-yaml): what
/// Kubernetes would read, without a YAML crate in the lock file.
fn yaml_docs(text: &str) -> Vec<Json> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml\n\
             print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d is not None]))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed to parse YAML (apt-get install -y python3 python3-yaml)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not YAML (or python3-yaml is missing: apt-get install -y python3-yaml): {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Deep merge of `over` into `base` (maps merge, the rest replaces), as
/// `helm --set`/`-f` do.
fn merge(base: &mut Json, over: &Json) {
    match (base, over) {
        (Json::Object(b), Json::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Json::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Every template of the chart rendered with `overrides` on top of
/// values.yaml, as `helm template` would print them: documents by kind.
fn render_chart(overrides: Json) -> Result<BTreeMap<String, Json>, String> {
    let chart = root().join("deploy/helm/imrelay");
    let mut values = yaml_docs(&std::fs::read_to_string(chart.join("values.yaml")).unwrap())
        .pop()
        .unwrap();
    merge(&mut values, &overrides);
    let meta = yaml_docs(&std::fs::read_to_string(chart.join("Chart.yaml")).unwrap())
        .pop()
        .unwrap();
    let top = Value::from_json(&json!({
        "Values": values,
        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"]},
        "Release": {"Name": "relay", "Namespace": "ops", "Service": "Helm"},
    }));
    let mut names: Vec<PathBuf> = std::fs::read_dir(chart.join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut docs = BTreeMap::new();
    for path in names {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut t = helm_templates();
        t.parse(&name, &std::fs::read_to_string(&path).unwrap())
            .map_err(|e| format!("{name}: {e}"))?;
        let text = t.render(&name, &top).map_err(|e| format!("{name}: {e}"))?;
        for doc in yaml_docs(&text) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            assert!(docs.insert(kind.clone(), doc).is_none(), "two {kind}s");
        }
    }
    Ok(docs)
}

/// The essentials the API server insists on for every object.
fn check_object(doc: &Json, api_version: &str) {
    let kind = doc["kind"].as_str().unwrap();
    assert_eq!(doc["apiVersion"], api_version, "{kind}");
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    // RFC 1123 subdomain.
    assert!(
        !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'),
        "{kind} name {name:?}"
    );
    assert_eq!(doc["metadata"]["namespace"], "ops", "{kind}");
    assert_eq!(
        doc["metadata"]["labels"]["app.kubernetes.io/instance"],
        "relay"
    );
}

/// The pod of a workload: non-root, read-only root, probes on the served
/// endpoints, the config mounted; its selector matches its labels.
fn check_workload(w: &Json) {
    let spec = &w["spec"];
    assert_eq!(
        spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"],
        "the selector must match the pod labels"
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert!(c["image"].as_str().unwrap().starts_with("imrelay:"));
    // The image's entrypoint is `imrelay serve`: only its flags follow.
    assert_eq!(c["args"], json!(["--config", "/etc/imrelay/imrelay.toml"]));
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["name"], "http");
    let doc = imrelay_gateway::api::openapi::document();
    for probe in ["/healthz", "/readyz"] {
        assert!(doc["paths"][probe]["get"].is_object(), "{probe} is served");
    }
    let volumes: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for m in c["volumeMounts"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let claimed = spec["volumeClaimTemplates"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["metadata"]["name"] == name));
        assert!(
            volumes.contains(&name) || claimed,
            "mount {name} has no volume"
        );
    }
}

/// The config the ConfigMap carries parses as an imrelay config.
fn check_config(cm: &Json) -> imrelay_gateway::config::Config {
    let toml = cm["data"]["imrelay.toml"].as_str().unwrap();
    for (k, v) in [
        ("IMRELAY_API_KEY", "helm-test-key-0123456789"),
        ("DINGTALK_TOKEN", "t"),
        ("DINGTALK_SECRET", "SECs"),
        ("IMRELAY_STORE_URL", "postgres://imrelay@db:5432/imrelay"),
    ] {
        std::env::set_var(k, v);
    }
    imrelay_gateway::config::Config::parse(toml, Path::new("/tmp"))
        .unwrap_or_else(|e| panic!("the chart's config does not parse: {e}\n{toml}"))
}

#[test]
fn helm_chart_renders_a_statefulset_on_sqlite() {
    let docs = render_chart(json!({})).unwrap();
    assert_eq!(
        docs.keys().collect::<Vec<_>>(),
        ["ConfigMap", "Service", "StatefulSet"]
    );
    let sts = &docs["StatefulSet"];
    check_object(sts, "apps/v1");
    check_object(&docs["ConfigMap"], "v1");
    check_object(&docs["Service"], "v1");
    assert_eq!(sts["spec"]["replicas"], 1, "SQLite has one writer");
    assert_eq!(
        sts["spec"]["serviceName"],
        docs["Service"]["metadata"]["name"]
    );
    let claim = &sts["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["metadata"]["name"], "data");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "5Gi");
    check_workload(sts);
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    assert!(c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "data" && m["mountPath"] == "/var/lib/imrelay"));
    let cfg = check_config(&docs["ConfigMap"]);
    assert_eq!(cfg.store.url, None);
    assert_eq!(cfg.store.path, Path::new("/var/lib/imrelay/imrelay.db"));
    assert_eq!(
        docs["Service"]["spec"]["selector"],
        sts["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn helm_chart_renders_a_deployment_on_postgres_with_the_url_from_a_secret() {
    let docs = render_chart(json!({
        "store": {"mode": "postgres", "url": "postgres://imrelay:pw@db:5432/imrelay"},
        "replicas": 3,
        "envFromSecret": "imrelay-env",
    }))
    .unwrap();
    assert_eq!(
        docs.keys().collect::<Vec<_>>(),
        ["ConfigMap", "Deployment", "Secret", "Service"]
    );
    let deploy = &docs["Deployment"];
    check_object(deploy, "apps/v1");
    check_object(&docs["Secret"], "v1");
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert!(deploy["spec"].get("volumeClaimTemplates").is_none());
    check_workload(deploy);
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    let url_env = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "IMRELAY_STORE_URL")
        .unwrap();
    let secret = &docs["Secret"];
    let key = &url_env["valueFrom"]["secretKeyRef"];
    assert_eq!(key["name"], secret["metadata"]["name"]);
    assert_eq!(
        secret["stringData"][key["key"].as_str().unwrap()],
        "postgres://imrelay:pw@db:5432/imrelay"
    );
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "imrelay-env");
    let cfg = check_config(&docs["ConfigMap"]);
    assert_eq!(
        cfg.store.url.as_deref(),
        Some("postgres://imrelay@db:5432/imrelay")
    );

    // An existing Secret instead: the chart makes none and points at it.
    let docs = render_chart(json!({
        "store": {"mode": "postgres", "existingSecret": "db-credentials", "secretKey": "dsn"},
    }))
    .unwrap();
    assert!(!docs.contains_key("Secret"));
    let c = &docs["Deployment"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["env"][1]["valueFrom"]["secretKeyRef"],
        json!({"name": "db-credentials", "key": "dsn"})
    );
}

#[test]
fn helm_chart_refuses_a_postgres_store_without_a_url_and_unknown_modes() {
    let err = render_chart(json!({"store": {"mode": "postgres"}})).unwrap_err();
    assert!(err.contains("store.url (or store.existingSecret)"), "{err}");
    let err = render_chart(json!({"store": {"mode": "mysql"}})).unwrap_err();
    assert!(
        err.contains("store.mode must be sqlite or postgres"),
        "{err}"
    );
}
