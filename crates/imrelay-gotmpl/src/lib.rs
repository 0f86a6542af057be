//! Go `text/template`, rendered byte for byte as Go renders it, so templates
//! written for prometheus-webhook-dingtalk (PWD) and PrometheusAlert (PA)
//! work unchanged.
//!
//! Why not the `gtmpl` crate: its last release is from 2021, it lacks `html`
//! and `js`, has no `missingkey` option (PWD runs with `missingkey=zero`),
//! and its value model has no place for Go methods such as
//! `.Alerts.Firing`, `.Labels.SortedPairs` or `.StartsAt.Format`, nor for
//! Go's fmt output of typed values (`map[a:b]`, `[x y]`, `time.Time`).
//! The corpus test in `tests/go_corpus.rs` checks this crate against Go
//! itself (Debian's Go 1.19 in CI).
//!
//! Supported: all of text/template's actions (`if`/`else if`/`else`,
//! `range` with `break`/`continue`, `with`, `define`, `template`, `block`,
//! variables and assignment, pipelines, parenthesized chains, comments and
//! trim markers), its builtins except `call`, Go's fmt for printing and
//! `print*` (verbs `v s d q t x X o b c U e E f F g G T`, flags, width,
//! precision), Go's time layouts, and the methods templates call on
//! Alertmanager's types (`SortedPairs`, `Names`, `Values`, `Remove`,
//! `Firing`, `Resolved`) and on `time.Time` (`Format`, `String`, `Local`,
//! `UTC`, `Unix`, `IsZero`, `Year`, `Day`, `Hour`, `Minute`, `Second`).
//! Not supported: `call`, `%#v`, hexadecimal floats, other methods, and
//! slicing a string inside a UTF-8 character (Go would emit invalid UTF-8;
//! this is an error here).
//!
//! ```
//! use imrelay_gotmpl::{Templates, Value};
//! let mut t = Templates::pwd();
//! t.parse("t", r#"{{ define "x" }}[{{ . | toUpper }}]{{ end }}{{ template "x" "hi" }}"#).unwrap();
//! assert_eq!(t.render("t", &Value::Nil).unwrap(), "[HI]");
//! ```

mod ast;
mod data;
mod error;
mod exec;
pub mod funcs;
mod gofmt;
mod gotime;
mod lex;
mod methods;
mod parse;
mod value;

use std::collections::HashMap;

pub use data::alertmanager;
pub use error::{Error, ErrorKind, Pos};
pub use funcs::{FnCtx, Func, FuncMap};
pub use gotime::GoTime;
pub use jiff::tz::TimeZone;
pub use value::{ListKind, MapKind, Struct, Value};

/// Execution options (Go's `Option(...)` plus `time.Local`).
#[derive(Clone, Debug)]
pub struct Options {
    /// `missingkey=zero`: a missing key of a string map gives "" instead of `<no value>`.
    pub missingkey_zero: bool,
    /// Go's `time.Local`.
    pub local: TimeZone,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            missingkey_zero: false,
            local: TimeZone::UTC,
        }
    }
}

/// A set of named templates sharing a function map, like Go's `*template.Template`.
#[derive(Clone)]
pub struct Templates {
    trees: HashMap<String, exec::Tree>,
    funcs: FuncMap,
    options: Options,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.trees.keys().collect();
        names.sort();
        f.debug_struct("Templates")
            .field("templates", &names)
            .field("options", &self.options)
            .finish()
    }
}

impl Templates {
    pub fn new(funcs: FuncMap, options: Options) -> Self {
        Templates {
            trees: HashMap::new(),
            funcs,
            options,
        }
    }

    /// As prometheus-webhook-dingtalk sets up its templates: its function
    /// map and `missingkey=zero`. Render over [`alertmanager`] data.
    pub fn pwd() -> Self {
        Self::new(
            funcs::pwd(),
            Options {
                missingkey_zero: true,
                ..Options::default()
            },
        )
    }

    /// As PrometheusAlert sets up its templates: its function map, default
    /// options. Render over [`Value::from_json`] of the request body.
    pub fn prometheus_alert() -> Self {
        Self::new(funcs::prometheus_alert(), Options::default())
    }

    pub fn with_local(mut self, local: TimeZone) -> Self {
        self.options.local = local;
        self
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Parses `src` as template `name`; its `define`s and `block`s join the
    /// set. As in Go, a later definition replaces an earlier one unless it
    /// is empty.
    pub fn parse(&mut self, name: &str, src: &str) -> Result<(), Error> {
        let funcs = &self.funcs;
        let trees = parse::parse(name, src, &|f| funcs.contains_key(f))?;
        for (n, body) in trees {
            if parse::is_empty(&body) && self.trees.contains_key(&n) {
                continue;
            }
            self.trees.insert(n, std::sync::Arc::new(body));
        }
        Ok(())
    }

    pub fn has(&self, name: &str) -> bool {
        self.trees.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.trees.keys().map(String::as_str)
    }

    /// Executes template `name` with `data` as dot.
    pub fn render(&self, name: &str, data: &Value) -> Result<String, Error> {
        let Some(tree) = self.trees.get(name) else {
            return Err(Error {
                template: name.to_string(),
                pos: Pos::default(),
                message: format!("no template {name:?} is defined"),
                kind: ErrorKind::Exec,
            });
        };
        let mut st = exec::State::new(self, name, data);
        st.run(tree, data)?;
        Ok(st.out)
    }

    /// Every `{{ template "x" }}` names a template of the set, checked
    /// before any alert arrives (Go only finds out when executing).
    pub fn check_references(&self) -> Result<(), Error> {
        let mut names: Vec<&String> = self.trees.keys().collect();
        names.sort();
        for name in names {
            if let Some((pos, missing)) = missing_template(&self.trees[name], &self.trees) {
                return Err(Error {
                    template: name.clone(),
                    pos,
                    message: format!("no such template {missing:?}"),
                    kind: ErrorKind::Parse,
                });
            }
        }
        Ok(())
    }
}

fn missing_template(
    list: &[ast::Node],
    trees: &HashMap<String, exec::Tree>,
) -> Option<(Pos, String)> {
    use ast::Node;
    for node in list {
        let found = match node {
            Node::Template { pos, name, .. } if !trees.contains_key(name) => {
                Some((*pos, name.clone()))
            }
            Node::If(b) | Node::With(b) | Node::Range(b) => missing_template(&b.list, trees)
                .or_else(|| {
                    b.else_list
                        .as_deref()
                        .and_then(|e| missing_template(e, trees))
                }),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}
