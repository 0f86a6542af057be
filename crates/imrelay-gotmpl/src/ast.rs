//! Parse tree of a template, close to Go's text/template/parse nodes.

use crate::error::Pos;
use crate::value::Value;

#[derive(Debug, Clone)]
pub enum Node {
    Text(String),
    /// `{{ pipeline }}`: prints the value unless the pipeline declares variables.
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Template {
        pos: Pos,
        name: String,
        pipe: Option<Pipe>,
    },
    Break(Pos),
    Continue(Pos),
}

#[derive(Debug, Clone)]
pub struct Branch {
    pub pos: Pos,
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
pub struct Pipe {
    pub pos: Pos,
    /// Variables declared (`:=`) or assigned (`=`) by this pipeline.
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
pub struct Command {
    pub pos: Pos,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub enum Arg {
    /// `.A.B` evaluated on dot.
    Field(Vec<String>),
    /// `$x.A.B` (fields may be empty).
    Variable(String, Vec<String>),
    /// `(pipeline).A.B`.
    Chain(Box<Arg>, Vec<String>),
    Dot,
    /// A function name.
    Func(String),
    Pipe(Pipe),
    /// A constant: string, number, bool.
    Const(Value),
    Nil,
}
