//! Evaluator: walks a parse tree over a [`Value`], as Go's text/template
//! exec does (variables, pipelines, field chains, methods, range/with/if,
//! template calls, `and`/`or` short-circuit).

use std::sync::Arc;

use crate::ast::{Arg, Branch, Command, Node, Pipe};
use crate::error::{Error, ErrorKind, Pos};
use crate::funcs::FnCtx;
use crate::gofmt;
use crate::methods;
use crate::value::{MapKind, Value};
use crate::Templates;

/// Deeper template recursion than this is an error (it is also what keeps
/// the stack bounded).
const MAX_DEPTH: usize = 100;

enum Flow {
    Normal,
    Break,
    Continue,
}

pub struct State<'a> {
    set: &'a Templates,
    pub out: String,
    vars: Vec<(String, Value)>,
    depth: usize,
    name: String,
    pos: Pos,
}

type R<T> = Result<T, Error>;

impl<'a> State<'a> {
    pub fn new(set: &'a Templates, name: &str, dot: &Value) -> Self {
        State {
            set,
            out: String::new(),
            vars: vec![("$".into(), dot.clone())],
            depth: 0,
            name: name.into(),
            pos: Pos::default(),
        }
    }

    fn err<T>(&self, message: impl Into<String>) -> R<T> {
        Err(Error {
            template: self.name.clone(),
            pos: self.pos,
            message: message.into(),
            kind: ErrorKind::Exec,
        })
    }

    fn ctx(&self) -> FnCtx<'_> {
        FnCtx {
            local: &self.set.options.local,
        }
    }

    pub fn run(&mut self, list: &[Node], dot: &Value) -> R<()> {
        self.walk(list, dot).map(|_| ())
    }

    fn walk(&mut self, list: &[Node], dot: &Value) -> R<Flow> {
        for node in list {
            match self.node(node, dot)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    fn node(&mut self, node: &Node, dot: &Value) -> R<Flow> {
        match node {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(pipe) => {
                let v = self.pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.print(&v);
                }
            }
            Node::If(b) | Node::With(b) => {
                self.pos = b.pos;
                let with = matches!(node, Node::With(_));
                let mark = self.vars.len();
                let v = self.pipeline(dot, &b.pipe)?;
                let flow = if v.truth() {
                    self.walk(&b.list, if with { &v } else { dot })?
                } else if let Some(else_list) = &b.else_list {
                    self.walk(else_list, dot)?
                } else {
                    Flow::Normal
                };
                self.vars.truncate(mark);
                return Ok(flow);
            }
            Node::Range(b) => return self.range(b, dot),
            Node::Template { pos, name, pipe } => {
                self.pos = *pos;
                let new_dot = match pipe {
                    Some(p) => self.pipeline(dot, p)?,
                    None => Value::Nil,
                };
                let Some(tree) = self.set.trees.get(name).cloned() else {
                    return self.err(format!("no such template {name:?}"));
                };
                if self.depth >= MAX_DEPTH {
                    return self.err(format!("exceeded maximum template depth ({MAX_DEPTH})"));
                }
                let saved_vars =
                    std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
                let saved_name = std::mem::replace(&mut self.name, name.clone());
                self.depth += 1;
                let r = self.walk(&tree, &new_dot);
                self.depth -= 1;
                self.vars = saved_vars;
                self.name = saved_name;
                r?;
            }
            Node::Break(pos) | Node::Continue(pos) => {
                self.pos = *pos;
                let brk = matches!(node, Node::Break(_));
                return Ok(if brk { Flow::Break } else { Flow::Continue });
            }
        }
        Ok(Flow::Normal)
    }

    /// An action's output: `<no value>` for nil, else fmt's `%v`.
    fn print(&mut self, v: &Value) {
        match v {
            Value::Nil => self.out.push_str("<no value>"),
            v => gofmt::v(&mut self.out, v),
        }
    }

    fn range(&mut self, b: &Branch, dot: &Value) -> R<Flow> {
        self.pos = b.pos;
        let outer = self.vars.len();
        let v = self.pipeline(dot, &b.pipe)?;
        let mark = self.vars.len();
        let items: Vec<(Value, Value)> = match &v {
            Value::List(items, _) => items
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::Int(i as i64), e.clone()))
                .collect(),
            Value::Map(m, _) => m
                .iter()
                .map(|(k, e)| (Value::str(k.as_str()), e.clone()))
                .collect(),
            Value::Nil => Vec::new(),
            other => return self.err(format!("range can't iterate over {}", gofmt::to_v(other))),
        };
        let decl = &b.pipe.decl;
        let mut flow_out = Flow::Normal;
        if items.is_empty() {
            if let Some(else_list) = &b.else_list {
                flow_out = self.walk(else_list, dot)?;
            }
        }
        for (index, elem) in items {
            if b.pipe.is_assign {
                match decl.len() {
                    1 => self.set_var(&decl[0], elem.clone())?,
                    2 => {
                        self.set_var(&decl[0], index)?;
                        self.set_var(&decl[1], elem.clone())?;
                    }
                    _ => {}
                }
            } else {
                // The element goes in the last declared variable, the index in the one before.
                if !decl.is_empty() {
                    let top = self.vars.len() - 1;
                    self.vars[top].1 = elem.clone();
                }
                if decl.len() > 1 {
                    let second = self.vars.len() - 2;
                    self.vars[second].1 = index;
                }
            }
            let flow = self.walk(&b.list, &elem)?;
            self.vars.truncate(mark);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        self.vars.truncate(outer);
        Ok(flow_out)
    }

    fn set_var(&mut self, name: &str, v: Value) -> R<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => self.err(format!("undefined variable: {name}")),
        }
    }

    fn var(&self, name: &str) -> R<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.err(format!("undefined variable: {name}")),
        }
    }

    fn pipeline(&mut self, dot: &Value, pipe: &Pipe) -> R<Value> {
        self.pos = pipe.pos;
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Value::Nil);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, value.clone())?;
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn command(&mut self, dot: &Value, cmd: &Command, fin: Option<Value>) -> R<Value> {
        self.pos = cmd.pos;
        let rest = &cmd.args[1..];
        let not_a_function = |s: &Self| -> R<()> {
            if !rest.is_empty() || fin.is_some() {
                return s.err("can't give argument to non-function");
            }
            Ok(())
        };
        match &cmd.args[0] {
            Arg::Field(names) => self.field_chain(dot, dot.clone(), names, rest, fin),
            Arg::Chain(term, names) => {
                let recv = self.arg(dot, term)?;
                self.field_chain(dot, recv, names, rest, fin)
            }
            Arg::Variable(name, names) => {
                let v = self.var(name)?;
                if names.is_empty() {
                    not_a_function(self)?;
                    return Ok(v);
                }
                self.field_chain(dot, v, names, rest, fin)
            }
            Arg::Func(name) => self.call(dot, name, rest, fin),
            Arg::Pipe(p) => {
                not_a_function(self)?;
                self.pipeline(dot, p)
            }
            Arg::Const(v) => {
                not_a_function(self)?;
                Ok(v.clone())
            }
            Arg::Dot => {
                not_a_function(self)?;
                Ok(dot.clone())
            }
            Arg::Nil => self.err("nil is not a command"),
        }
    }

    /// An argument to a function or method.
    fn arg(&mut self, dot: &Value, arg: &Arg) -> R<Value> {
        match arg {
            Arg::Dot => Ok(dot.clone()),
            Arg::Nil => Ok(Value::Nil),
            Arg::Const(v) => Ok(v.clone()),
            Arg::Field(names) => self.field_chain(dot, dot.clone(), names, &[], None),
            Arg::Variable(name, names) => {
                let v = self.var(name)?;
                self.field_chain(dot, v, names, &[], None)
            }
            Arg::Chain(term, names) => {
                let recv = self.arg(dot, term)?;
                self.field_chain(dot, recv, names, &[], None)
            }
            Arg::Pipe(p) => self.pipeline(dot, p),
            Arg::Func(name) => self.call(dot, name, &[], None),
        }
    }

    fn field_chain(
        &mut self,
        dot: &Value,
        mut recv: Value,
        names: &[String],
        args: &[Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let Some((last, init)) = names.split_last() else {
            return Ok(recv);
        };
        for name in init {
            recv = self.field(dot, name, &[], None, recv)?;
        }
        self.field(dot, last, args, fin, recv)
    }

    fn field(
        &mut self,
        dot: &Value,
        name: &str,
        args: &[Arg],
        fin: Option<Value>,
        recv: Value,
    ) -> R<Value> {
        if recv.is_nil() {
            return Ok(Value::Nil);
        }
        let has_args = !args.is_empty() || fin.is_some();
        if let Some(method) = methods::lookup(&recv, name) {
            let mut vals = Vec::with_capacity(args.len() + 1);
            for a in args {
                vals.push(self.arg(dot, a)?);
            }
            vals.extend(fin);
            return method(&recv, &vals, &self.ctx())
                .or_else(|e| self.err(format!("error calling {name}: {e}")));
        }
        match &recv {
            Value::Struct(s) => match s.fields.iter().find(|(n, _)| *n == name) {
                Some((_, v)) if !has_args => Ok(v.clone()),
                Some(_) => self.err(format!(
                    "{name} has arguments but cannot be invoked as function"
                )),
                None => self.err(format!(
                    "can't evaluate field {name} in type {}",
                    s.type_name
                )),
            },
            Value::Map(m, kind) => {
                if has_args {
                    return self.err(format!("{name} is not a method but has arguments"));
                }
                Ok(match m.get(name) {
                    Some(v) => v.clone(),
                    // missingkey=zero gives a string map's zero value.
                    None if *kind == MapKind::Kv && self.set.options.missingkey_zero => {
                        Value::str("")
                    }
                    None => Value::Nil,
                })
            }
            other => self.err(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }

    fn call(&mut self, dot: &Value, name: &str, args: &[Arg], fin: Option<Value>) -> R<Value> {
        if name == "and" || name == "or" {
            if args.is_empty() && fin.is_none() {
                return self.err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            // Go 1.18+: stop at the first operand that decides, and return it.
            let mut v = Value::Nil;
            for a in args {
                v = self.arg(dot, a)?;
                if v.truth() == (name == "or") {
                    return Ok(v);
                }
            }
            return Ok(fin.unwrap_or(v));
        }
        let Some(f) = self.set.funcs.get(name).copied() else {
            return self.err(format!("function {name:?} not defined"));
        };
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.arg(dot, a)?);
        }
        vals.extend(fin);
        f(&self.ctx(), &vals).or_else(|e| self.err(format!("error calling {name}: {e}")))
    }
}

/// Shared trees of a template set.
pub type Tree = Arc<Vec<Node>>;
