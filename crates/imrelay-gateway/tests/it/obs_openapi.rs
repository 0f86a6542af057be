//! `/openapi.json` describes the API as implemented: every route registered in
//! the crate's source (`.route("...", method(...))`) is in the document with
//! its methods, and every documented operation reaches a handler on a running
//! gateway (not the 404/405 fallbacks).

use std::collections::BTreeSet;
use std::path::Path;

use crate::api_support::{Sink, TestGateway, ADMIN_KEY};

/// (path, method) of every `.route(...)` call in `src/`.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut files = Vec::new();
    collect(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    for f in files {
        let text: String = std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut rest = text.as_str();
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + ".route(".len()..];
            // The call's arguments: up to the matching `)`.
            let mut depth = 1;
            let mut end = 0;
            for (j, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = j;
                    break;
                }
            }
            let args = &rest[..end];
            let Some(q) = args.find('"') else { continue };
            let path = &args[q + 1..];
            let path = &path[..path.find('"').unwrap()];
            let mut any = false;
            for m in ["get", "post", "put", "patch", "delete"] {
                let found = args.match_indices(&format!("{m}(")).any(|(k, _)| {
                    k == 0
                        || !args.as_bytes()[k - 1].is_ascii_alphanumeric()
                            && args.as_bytes()[k - 1] != b'_'
                });
                if found {
                    out.insert((path.to_string(), m.to_string()));
                    any = true;
                }
            }
            assert!(
                any,
                "cannot tell the methods of route `{path}` in {}",
                f.display()
            );
        }
    }
    out
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for m in ops.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&m.as_str()) {
                out.insert((path.clone(), m.clone()));
            }
        }
    }
    out
}

#[test]
fn every_route_in_the_source_is_documented() {
    let routes = routes_in_source();
    // The scan finds the routes we know exist (guards the scanner itself).
    for r in [
        ("/v1/messages", "post"),
        ("/v1/dlq/{id}", "delete"),
        ("/metrics", "get"),
        ("/readyz", "get"),
    ] {
        assert!(
            routes.contains(&(r.0.to_string(), r.1.to_string())),
            "scanner missed {r:?}: {routes:?}"
        );
    }
    let doc = imrelay_gateway::api::openapi::document();
    let docs = documented(&doc);
    // The web console's pages (`/ui`) are HTML for people, not API.
    let routes: BTreeSet<_> = routes
        .into_iter()
        .filter(|(p, _)| p != "/ui" && !p.starts_with("/ui/"))
        .collect();
    let missing: Vec<_> = routes.difference(&docs).collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_reaches_a_handler() {
    let sink = Sink::start().await;
    let t = TestGateway::start(&crate::api_support::config_text(&sink, "")).await;
    let r = t.get("/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, imrelay_gateway::api::openapi::document());
    for (path, method) in documented(&r.body) {
        let concrete = path.replace("{id}", "1").replace("{route}", "none");
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let resp = t
            .http
            .request(m, t.url(&concrete))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}: {text}");
        assert!(
            !text.contains("no such endpoint"),
            "{method} {path} is documented but not routed: {text}"
        );
    }
    t.gw.shutdown().await.unwrap();
}

#[test]
fn the_document_is_derived_from_the_real_types() {
    let doc = imrelay_gateway::api::openapi::document();
    let schemas = &doc["components"]["schemas"];
    // The request types as the handlers parse them (the stubs lacked these).
    let submit = &schemas["SubmitRequest"];
    for field in [
        "channel",
        "text",
        "body",
        "template",
        "data",
        "idempotency_key",
    ] {
        assert!(
            submit["properties"][field].is_object(),
            "SubmitRequest.{field} is missing: {submit:#}"
        );
    }
    assert_eq!(
        submit["additionalProperties"], false,
        "unknown fields are refused"
    );
    assert_eq!(
        schemas["BatchRequest"]["properties"]["messages"]["items"]["$ref"],
        "#/components/schemas/SubmitRequest"
    );
    assert!(schemas["MessageView"]["properties"]["deliveries"].is_object());
    assert!(schemas["DeadEntry"]["properties"]["delivery_id"].is_object());
    // Every JSON body is declared as such, with its 415, and every error of the
    // typed handlers is a problem.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let json_body = op["requestBody"]["content"]
                .as_object()
                .is_some_and(|c| c.len() == 1 && c.contains_key("application/json"));
            if json_body && !path.starts_with("/v1/alertmanager") {
                assert!(
                    op["responses"]["415"].is_object(),
                    "{method} {path} lacks its 415"
                );
            }
            for (status, resp) in op["responses"].as_object().unwrap() {
                let error = status.starts_with('4') || status.starts_with('5');
                if error && path != "/readyz" {
                    assert!(
                        resp["content"]["application/problem+json"].is_object(),
                        "{method} {path} {status} is not a problem: {resp:#}"
                    );
                }
            }
        }
    }
}
