//! Errors that name the template, the line (and column) and what is wrong.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A parse (compile-time) or execution error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The template (file or `define` name) the error is in.
    pub template: String,
    pub pos: Pos,
    pub message: String,
    /// Parse errors are found at config-check time; exec errors at render time.
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Parse,
    Exec,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "template {:?} line {}", self.template, self.pos.line)?;
        if self.pos.col > 0 {
            write!(f, ", column {}", self.pos.col)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for Error {}
