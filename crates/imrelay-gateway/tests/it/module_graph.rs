//! The gateway's top-level modules form no dependency cycle of more than two
//! modules. A cycle is how a feature ends up spread over three places and
//! every change touches all of them; this test keeps the layering honest.
//!
//! Run: `cargo test -p imrelay-gateway --test it module_graph -- --nocapture`
//! prints the graph (module -> the modules it uses).
//!
//! Edges are `crate::<module>` paths (including `use crate::{a, b::c}`) in
//! non-comment, non-test code of each module's files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its inline unit-test
/// module (`#[cfg(test)] mod tests { ... }`, by convention at the end).
fn production_code(text: &str) -> String {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t == "#[cfg(test)]" {
            let next = lines.peek().map(|l| l.trim()).unwrap_or("");
            if next.starts_with("mod ") && next.ends_with('{') {
                break;
            }
            continue;
        }
        if !t.starts_with("//") {
            out.push(line);
        }
    }
    out.join("\n")
}

/// Names of top-level modules referenced as `crate::name` or in `crate::{...}`.
fn referenced(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for part in group[..end].split(',') {
                let name = leading_ident(part.trim());
                if modules.contains(name) {
                    found.insert(name.to_string());
                }
            }
        } else {
            let name = leading_ident(rest);
            if modules.contains(name) {
                found.insert(name.to_string());
            }
        }
    }
    found
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

fn leading_ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

fn module_graph(src: &Path) -> Graph {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            let mut files = Vec::new();
            rust_files(&path, &mut files);
            modules.entry(name).or_default().extend(files);
        } else if name != "lib" && path.extension().is_some_and(|e| e == "rs") {
            modules.entry(name).or_default().push(path);
        }
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let mut graph = Graph::new();
    for (name, files) in &modules {
        let mut uses = BTreeSet::new();
        for f in files {
            // A file named `tests.rs` is a unit-test module.
            if f.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let code = production_code(&std::fs::read_to_string(f).unwrap());
            uses.extend(referenced(&code, &names));
        }
        uses.remove(name);
        graph.insert(name.clone(), uses);
    }
    graph
}

/// Strongly connected components (Tarjan), each sorted.
fn components(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in &s.graph[v] {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            comp.sort();
            s.out.push(comp);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_dependency_cycle_between_top_level_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    for (m, uses) in &graph {
        println!(
            "{m} -> {}",
            uses.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    // The bar is "no cycle larger than two"; the gateway has none at all.
    let large: Vec<_> = components(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect();
    assert!(
        large.is_empty(),
        "dependency cycles among the gateway's top-level modules: {large:?}\ngraph: {graph:#?}"
    );
}

#[test]
fn the_checker_finds_cycles_and_grouped_imports() {
    let names: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    let code = production_code(
        "#[cfg(test)]\nmod tests;\nuse crate::{a::X, b};\n// crate::c in a comment\nfn f() { crate::a::g() }\n#[cfg(test)]\nmod tests {\n use crate::c;\n}",
    );
    assert_eq!(
        referenced(&code, &names),
        ["a", "b"].map(String::from).into()
    );
    let graph: Graph = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(m, u)| (m.to_string(), [u.to_string()].into()))
        .collect();
    assert_eq!(components(&graph), vec![vec!["a", "b", "c"]]);
}
