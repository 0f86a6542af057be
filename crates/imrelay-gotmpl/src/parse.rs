//! Parser: tokens to a parse tree, with Go's checks (unknown functions,
//! undefined variables, misplaced `else`/`end`/`break`, unclosed actions).

use std::collections::HashMap;

use crate::ast::{Arg, Branch, Command, Node, Pipe};
use crate::error::{Error, ErrorKind, Pos};
use crate::lex::{lex, Tok, Token};
use crate::value::Value;

/// The templates one source defines: its top level under `name`, plus every
/// `define` and `block`.
pub type Trees = Vec<(String, Vec<Node>)>;

pub fn parse(name: &str, src: &str, has_func: &dyn Fn(&str) -> bool) -> Result<Trees, Error> {
    let tokens = lex(src).map_err(|(pos, message)| Error {
        template: name.to_string(),
        pos,
        message,
        kind: ErrorKind::Parse,
    })?;
    let mut p = Parser {
        tokens,
        i: 0,
        name: name.to_string(),
        vars: vec!["$".to_string()],
        range_depth: 0,
        has_func,
        trees: Vec::new(),
    };
    let root = p.top_level()?;
    let mut trees = std::mem::take(&mut p.trees);
    trees.insert(0, (name.to_string(), root));
    // Go rejects two non-empty definitions of one name in one parse.
    let mut seen: HashMap<&str, bool> = HashMap::new();
    for (n, body) in &trees {
        let empty = is_empty(body);
        if let Some(prev_empty) = seen.get(n.as_str()) {
            if !prev_empty && !empty {
                return Err(Error {
                    template: name.to_string(),
                    pos: Pos::default(),
                    message: format!("multiple definition of template {n:?}"),
                    kind: ErrorKind::Parse,
                });
            }
        }
        let e = seen.entry(n.as_str()).or_insert(empty);
        *e = *e && empty;
    }
    Ok(trees)
}

/// Go's IsEmptyTree: only whitespace text.
pub fn is_empty(list: &[Node]) -> bool {
    list.iter()
        .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()))
}

enum End {
    End(Pos),
    Else(Pos),
}

struct Parser<'f> {
    tokens: Vec<Token>,
    i: usize,
    /// The template being parsed (a `define` switches it), for error messages.
    name: String,
    vars: Vec<String>,
    range_depth: usize,
    has_func: &'f dyn Fn(&str) -> bool,
    trees: Trees,
}

type R<T> = Result<T, Error>;

fn describe(t: &Tok) -> String {
    match t {
        Tok::Text(_) => "text".into(),
        Tok::Left => "\"{{\"".into(),
        Tok::Right => "\"}}\"".into(),
        Tok::Space => "space".into(),
        Tok::Ident(s) => format!("identifier {s:?}"),
        Tok::Field(s) => format!("field \".{s}\""),
        Tok::Variable(s) => format!("variable {s:?}"),
        Tok::Dot => "\".\"".into(),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Char(c) => format!("character {c:?}"),
        Tok::Number(n) => format!("number {n:?}"),
        Tok::Bool(b) => format!("{b}"),
        Tok::Nil => "nil".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Keyword(k) => format!("<{k}>"),
    }
}

impl Parser<'_> {
    fn err<T>(&self, pos: Pos, message: impl Into<String>) -> R<T> {
        Err(Error {
            template: self.name.clone(),
            pos,
            message: message.into(),
            kind: ErrorKind::Parse,
        })
    }

    fn last_pos(&self) -> Pos {
        self.tokens.last().map(|t| t.pos).unwrap_or_default()
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.i)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.i).cloned();
        self.i += 1;
        t
    }

    fn skip_space(&mut self) {
        while matches!(
            self.peek(),
            Some(Token {
                tok: Tok::Space,
                ..
            })
        ) {
            self.i += 1;
        }
    }

    fn peek_non_space(&mut self) -> Option<&Token> {
        self.skip_space();
        self.peek()
    }

    fn next_non_space(&mut self) -> R<Token> {
        self.skip_space();
        match self.next() {
            Some(t) => Ok(t),
            None => self.err(self.last_pos(), "unexpected EOF"),
        }
    }

    fn expect_right(&mut self, context: &str) -> R<()> {
        let t = self.next_non_space()?;
        if t.tok != Tok::Right {
            return self.err(
                t.pos,
                format!("unexpected {} in {context}", describe(&t.tok)),
            );
        }
        Ok(())
    }

    fn top_level(&mut self) -> R<Vec<Node>> {
        let mut list = Vec::new();
        while self.i < self.tokens.len() {
            // `{{ define ... }}` is only valid here.
            if matches!(self.peek(), Some(Token { tok: Tok::Left, .. })) {
                let save = self.i;
                self.i += 1;
                let t = self.next_non_space()?;
                if t.tok == Tok::Keyword("define") {
                    self.definition(t.pos)?;
                    continue;
                }
                self.i = save;
            }
            match self.text_or_action()? {
                Ok(node) => list.push(node),
                Err(End::End(pos)) => return self.err(pos, "unexpected {{end}}"),
                Err(End::Else(pos)) => return self.err(pos, "unexpected {{else}}"),
            }
        }
        Ok(list)
    }

    fn definition(&mut self, pos: Pos) -> R<()> {
        let t = self.next_non_space()?;
        let Tok::Str(name) = t.tok else {
            return self.err(
                t.pos,
                format!("unexpected {} in define clause", describe(&t.tok)),
            );
        };
        self.expect_right("define clause")?;
        let outer_name = std::mem::replace(&mut self.name, name.clone());
        let outer_vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let (body, end) = self.item_list()?;
        if let End::Else(p) = end {
            return self.err(p, "unexpected {{else}} in define clause");
        }
        let _ = pos;
        self.trees.push((name, body));
        self.name = outer_name;
        self.vars = outer_vars;
        Ok(())
    }

    /// Nodes up to the `{{end}}` or `{{else}}` that closes them.
    fn item_list(&mut self) -> R<(Vec<Node>, End)> {
        let mut list = Vec::new();
        while self.i < self.tokens.len() {
            match self.text_or_action()? {
                Ok(node) => list.push(node),
                Err(end) => return Ok((list, end)),
            }
        }
        self.err(self.last_pos(), "unexpected EOF")
    }

    fn text_or_action(&mut self) -> R<Result<Node, End>> {
        let t = self.next().expect("caller checked for tokens");
        match t.tok {
            Tok::Text(s) => Ok(Ok(Node::Text(s))),
            Tok::Left => self.action(),
            other => self.err(t.pos, format!("unexpected {}", describe(&other))),
        }
    }

    fn action(&mut self) -> R<Result<Node, End>> {
        let t = self.next_non_space()?;
        let node = match t.tok {
            Tok::Keyword("block") => self.block(t.pos)?,
            Tok::Keyword("break") | Tok::Keyword("continue") => {
                let is_break = t.tok == Tok::Keyword("break");
                let word = if is_break { "break" } else { "continue" };
                if self.range_depth == 0 {
                    return self.err(t.pos, format!("{{{{{word}}}}} outside {{{{range}}}}"));
                }
                self.expect_right(&format!("{{{{{word}}}}}"))?;
                if is_break {
                    Node::Break(t.pos)
                } else {
                    Node::Continue(t.pos)
                }
            }
            Tok::Keyword("else") => {
                // `{{else if ...}}` leaves the `if` for the enclosing control.
                if !matches!(
                    self.peek_non_space(),
                    Some(Token {
                        tok: Tok::Keyword("if"),
                        ..
                    })
                ) {
                    self.expect_right("else")?;
                }
                return Ok(Err(End::Else(t.pos)));
            }
            Tok::Keyword("end") => {
                self.expect_right("end")?;
                return Ok(Err(End::End(t.pos)));
            }
            Tok::Keyword("if") => Node::If(self.control(t.pos, "if")?),
            Tok::Keyword("range") => Node::Range(self.control(t.pos, "range")?),
            Tok::Keyword("with") => Node::With(self.control(t.pos, "with")?),
            Tok::Keyword("template") => {
                let (name, pipe) = self.template_head(t.pos, "template clause")?;
                Node::Template {
                    pos: t.pos,
                    name,
                    pipe,
                }
            }
            Tok::Keyword("define") => {
                return self.err(t.pos, "{{define}} is only allowed at the top level");
            }
            _ => {
                self.i -= 1;
                Node::Action(self.pipeline("command", &Tok::Right)?)
            }
        };
        Ok(Ok(node))
    }

    fn template_head(&mut self, pos: Pos, context: &str) -> R<(String, Option<Pipe>)> {
        let t = self.next_non_space()?;
        let Tok::Str(name) = t.tok else {
            return self.err(
                t.pos,
                format!("unexpected {} in {context}", describe(&t.tok)),
            );
        };
        let _ = pos;
        if matches!(
            self.peek_non_space(),
            Some(Token {
                tok: Tok::Right,
                ..
            })
        ) {
            self.i += 1;
            return Ok((name, None));
        }
        let pipe = self.pipeline(context, &Tok::Right)?;
        Ok((name, Some(pipe)))
    }

    fn block(&mut self, pos: Pos) -> R<Node> {
        let t = self.next_non_space()?;
        let Tok::Str(name) = t.tok else {
            return self.err(
                t.pos,
                format!("unexpected {} in block clause", describe(&t.tok)),
            );
        };
        let pipe = self.pipeline("block clause", &Tok::Right)?;
        let outer_name = std::mem::replace(&mut self.name, name.clone());
        let outer_vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let outer_depth = std::mem::take(&mut self.range_depth);
        let (body, end) = self.item_list()?;
        if let End::Else(p) = end {
            return self.err(p, "unexpected {{else}} in block clause");
        }
        self.trees.push((name.clone(), body));
        self.name = outer_name;
        self.vars = outer_vars;
        self.range_depth = outer_depth;
        Ok(Node::Template {
            pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn control(&mut self, pos: Pos, context: &str) -> R<Branch> {
        let vars_len = self.vars.len();
        let pipe = self.pipeline(context, &Tok::Right)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.item_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let else_list = match end {
            End::End(_) => None,
            End::Else(else_pos) => {
                if context == "if"
                    && matches!(
                        self.peek_non_space(),
                        Some(Token {
                            tok: Tok::Keyword("if"),
                            ..
                        })
                    )
                {
                    // {{if a}}{{else if b}}{{end}} is {{if a}}{{else}}{{if b}}{{end}}{{end}}.
                    let if_pos = self.next().expect("peeked").pos;
                    Some(vec![Node::If(self.control(if_pos, "if")?)])
                } else {
                    let (else_list, end) = self.item_list()?;
                    if let End::Else(p) = end {
                        let _ = else_pos;
                        return self.err(p, "expected end; found {{else}}");
                    }
                    Some(else_list)
                }
            }
        };
        self.vars.truncate(vars_len);
        Ok(Branch {
            pos,
            pipe,
            list,
            else_list,
        })
    }

    fn pipeline(&mut self, context: &str, end: &Tok) -> R<Pipe> {
        let pos = self
            .peek_non_space()
            .map(|t| t.pos)
            .unwrap_or_else(|| self.last_pos());
        let mut pipe = Pipe {
            pos,
            decl: Vec::new(),
            is_assign: false,
            cmds: Vec::new(),
        };
        self.declarations(&mut pipe, context)?;
        loop {
            let t = self.next_non_space()?;
            if &t.tok == end {
                if pipe.cmds.is_empty() {
                    return self.err(t.pos, format!("missing value for {context}"));
                }
                for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
                    if matches!(c.args[0], Arg::Const(_) | Arg::Dot | Arg::Nil) {
                        return self.err(
                            c.pos,
                            format!("non executable command in pipeline stage {}", i + 1),
                        );
                    }
                }
                return Ok(pipe);
            }
            match t.tok {
                Tok::Bool(_)
                | Tok::Char(_)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Number(_)
                | Tok::Nil
                | Tok::Str(_)
                | Tok::Variable(_)
                | Tok::LParen => {
                    self.i -= 1;
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                other => {
                    return self.err(
                        t.pos,
                        format!("unexpected {} in {context}", describe(&other)),
                    )
                }
            }
        }
    }

    /// `$x :=`, `$x =`, `$i, $e :=` at the start of a pipeline.
    fn declarations(&mut self, pipe: &mut Pipe, context: &str) -> R<()> {
        let start = self.i;
        let Some(Token {
            tok: Tok::Variable(v),
            pos,
        }) = self.peek_non_space().cloned()
        else {
            return Ok(());
        };
        self.i += 1;
        match self.peek_non_space().map(|t| t.tok.clone()) {
            Some(Tok::Declare) | Some(Tok::Assign) => {
                let assign = self.next().expect("peeked").tok == Tok::Assign;
                if assign && !self.vars.contains(&v) {
                    return self.err(pos, format!("undefined variable {v:?}"));
                }
                pipe.is_assign = assign;
                pipe.decl.push(v.clone());
                if !assign {
                    self.vars.push(v);
                }
                Ok(())
            }
            Some(Tok::Comma) if context == "range" && pipe.decl.is_empty() => {
                self.i += 1;
                pipe.decl.push(v.clone());
                self.vars.push(v);
                let Some(Token {
                    tok: Tok::Variable(_),
                    ..
                }) = self.peek_non_space()
                else {
                    return self.err(pos, "range can only initialize variables");
                };
                self.declarations(pipe, context)?;
                if pipe.decl.len() != 2 {
                    return self.err(pos, "range can only initialize variables");
                }
                Ok(())
            }
            Some(Tok::Comma) => self.err(pos, format!("too many declarations in {context}")),
            _ => {
                self.i = start;
                Ok(())
            }
        }
    }

    fn command(&mut self) -> R<Command> {
        let pos = self.peek_non_space().map(|t| t.pos).unwrap_or_default();
        let mut args = Vec::new();
        loop {
            self.skip_space();
            if let Some(arg) = self.operand()? {
                args.push(arg);
            }
            let Some(t) = self.next() else {
                return self.err(self.last_pos(), "unexpected EOF");
            };
            match t.tok {
                Tok::Space => continue,
                Tok::Right | Tok::RParen => {
                    self.i -= 1;
                }
                Tok::Pipe => {}
                other => {
                    return self.err(t.pos, format!("unexpected {} in operand", describe(&other)))
                }
            }
            break;
        }
        if args.is_empty() {
            return self.err(pos, "empty command");
        }
        Ok(Command { pos, args })
    }

    fn operand(&mut self) -> R<Option<Arg>> {
        let Some((term, term_pos)) = self.term()? else {
            return Ok(None);
        };
        let mut fields = Vec::new();
        while let Some(Token {
            tok: Tok::Field(f), ..
        }) = self.peek()
        {
            fields.push(f.clone());
            self.i += 1;
        }
        if fields.is_empty() {
            return Ok(Some(term));
        }
        Ok(Some(match term {
            Arg::Field(mut f) => {
                f.extend(fields);
                Arg::Field(f)
            }
            Arg::Variable(v, mut f) => {
                f.extend(fields);
                Arg::Variable(v, f)
            }
            Arg::Const(_) | Arg::Nil | Arg::Dot => {
                return self.err(term_pos, "unexpected . after term");
            }
            other => Arg::Chain(Box::new(other), fields),
        }))
    }

    fn term(&mut self) -> R<Option<(Arg, Pos)>> {
        let Some(t) = self.peek_non_space().cloned() else {
            return Ok(None);
        };
        self.i += 1;
        let arg = match t.tok {
            Tok::Ident(name) => {
                if !(self.has_func)(&name) {
                    return self.err(t.pos, format!("function {name:?} not defined"));
                }
                Arg::Func(name)
            }
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Variable(v) => {
                if !self.vars.contains(&v) {
                    return self.err(t.pos, format!("undefined variable {v:?}"));
                }
                Arg::Variable(v, Vec::new())
            }
            Tok::Field(f) => Arg::Field(vec![f]),
            Tok::Bool(b) => Arg::Const(Value::Bool(b)),
            Tok::Char(c) => Arg::Const(Value::Int(c as i64)),
            Tok::Number(n) => match parse_number(&n) {
                Some(v) => Arg::Const(v),
                None => return self.err(t.pos, format!("bad number syntax: {n:?}")),
            },
            Tok::Str(s) => Arg::Const(Value::str(s)),
            Tok::LParen => Arg::Pipe(self.pipeline("parenthesized pipeline", &Tok::RParen)?),
            _ => {
                self.i -= 1;
                return Ok(None);
            }
        };
        Ok(Some((arg, t.pos)))
    }
}

/// A Go number literal as text/template evaluates it: an int when it is an
/// integer literal, else a float64.
pub fn parse_number(text: &str) -> Option<Value> {
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') {
        return None;
    }
    let clean: String = body.chars().filter(|c| *c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit())
    {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if let Ok(u) = u64::from_str_radix(digits, radix) {
        let v = if neg { -(u as i128) } else { u as i128 };
        return i64::try_from(v).ok().map(Value::Int);
    }
    if radix != 10 || !lower.bytes().any(|b| matches!(b, b'.' | b'e')) {
        return None;
    }
    let f: f64 = lower.parse().ok()?;
    Some(Value::Float(if neg { -f } else { f }))
}
