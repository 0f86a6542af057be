//! Lexer: splits a template into text and action tokens, the way Go's
//! text/template/parse lexer does (delimiters `{{` `}}`, trim markers,
//! comments, quoted and raw strings, numbers, fields, variables).

use crate::error::Pos;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Text(String),
    Left,
    Right,
    Space,
    Ident(String),
    /// `.Name` (the dot is not part of the name).
    Field(String),
    /// `$` or `$name` (with the `$`).
    Variable(String),
    Dot,
    /// Already unquoted.
    Str(String),
    Char(char),
    Number(String),
    Bool(bool),
    Nil,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Keyword(&'static str),
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

const KEYWORDS: &[&str] = &[
    "block", "break", "continue", "define", "else", "end", "if", "range", "nil", "template", "with",
];

/// Go's trim markers only count whitespace as these four bytes.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    col: usize,
    out: Vec<Token>,
    /// Set by `-}}`: the next text starts without its leading whitespace.
    trim_next: bool,
}

pub fn lex(src: &str) -> Result<Vec<Token>, (Pos, String)> {
    let mut l = Lexer {
        src,
        pos: 0,
        line: 1,
        col: 1,
        out: Vec::new(),
        trim_next: false,
    };
    l.run()?;
    Ok(l.out)
}

impl<'a> Lexer<'a> {
    fn here(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn advance(&mut self, n_bytes: usize) {
        let end = self.pos + n_bytes;
        while self.pos < end {
            self.bump();
        }
    }

    fn emit(&mut self, tok: Tok, pos: Pos) {
        self.out.push(Token { tok, pos });
    }

    fn run(&mut self) -> Result<(), (Pos, String)> {
        loop {
            let start = self.here();
            let rest = self.rest();
            let Some(idx) = rest.find("{{") else {
                self.push_text(rest.to_string(), start);
                self.advance(rest.len());
                return Ok(());
            };
            let mut text = rest[..idx].to_string();
            let after = &rest[idx + 2..];
            let trim_left = after.starts_with('-') && after[1..].starts_with(is_space);
            if trim_left {
                text.truncate(text.trim_end_matches(is_space).len());
            }
            self.push_text(text, start);
            self.advance(idx);
            let left_pos = self.here();
            self.advance(2);
            if trim_left {
                self.advance(1);
            }
            self.action(left_pos, trim_left)?;
        }
    }

    fn push_text(&mut self, mut text: String, pos: Pos) {
        if std::mem::take(&mut self.trim_next) {
            text = text.trim_start_matches(is_space).to_string();
        }
        if !text.is_empty() {
            self.emit(Tok::Text(text), pos);
        }
    }

    /// Checks for `}}` or ` -}}` at the current position; consumes it.
    fn right_delim(&mut self) -> bool {
        let rest = self.rest();
        let spaces = rest.len() - rest.trim_start_matches(is_space).len();
        if spaces > 0 && rest[spaces..].starts_with("-}}") {
            self.advance(spaces + 3);
            self.trim_next = true;
            return true;
        }
        if rest.starts_with("}}") {
            self.advance(2);
            return true;
        }
        false
    }

    fn action(&mut self, left_pos: Pos, trim_left: bool) -> Result<(), (Pos, String)> {
        // A comment must follow `{{` or `{{- ` directly, and `}}` or ` -}}`
        // must follow it directly (Go rejects `{{ /* c */ }}`).
        let ws = if trim_left { 1 } else { 0 };
        if self.rest()[ws..].starts_with("/*") {
            let Some(end) = self.rest().find("*/") else {
                return Err((left_pos, "unclosed comment".into()));
            };
            self.advance(end + 2);
            let rest = self.rest();
            if rest.starts_with("}}") {
                self.advance(2);
            } else if rest.starts_with(is_space) && rest[1..].starts_with("-}}") {
                self.advance(4);
                self.trim_next = true;
            } else {
                return Err((self.here(), "comment ends before closing delimiter".into()));
            }
            return Ok(());
        }
        self.emit(Tok::Left, left_pos);
        let mut paren = 0i32;
        loop {
            if self.right_delim() {
                if paren > 0 {
                    return Err((self.here(), "unclosed left paren".into()));
                }
                self.emit(Tok::Right, self.here());
                return Ok(());
            }
            let pos = self.here();
            let Some(c) = self.peek() else {
                return Err((left_pos, "unclosed action".into()));
            };
            match c {
                c if is_space(c) => {
                    // right_delim above already took a ` -}}`, so these
                    // spaces separate words. Go 1.16+ allows newlines here.
                    while self.peek().is_some_and(is_space) {
                        self.bump();
                    }
                    self.emit(Tok::Space, pos);
                }
                '=' => {
                    self.bump();
                    self.emit(Tok::Assign, pos);
                }
                ':' => {
                    self.bump();
                    if self.peek() != Some('=') {
                        return Err((pos, "expected :=".into()));
                    }
                    self.bump();
                    self.emit(Tok::Declare, pos);
                }
                '|' => {
                    self.bump();
                    self.emit(Tok::Pipe, pos);
                }
                ',' => {
                    self.bump();
                    self.emit(Tok::Comma, pos);
                }
                '(' => {
                    self.bump();
                    paren += 1;
                    self.emit(Tok::LParen, pos);
                }
                ')' => {
                    self.bump();
                    paren -= 1;
                    if paren < 0 {
                        return Err((pos, "unexpected right paren".into()));
                    }
                    self.emit(Tok::RParen, pos);
                }
                '"' => {
                    let s = self.quoted()?;
                    self.emit(Tok::Str(s), pos);
                }
                '`' => {
                    self.bump();
                    let Some(end) = self.rest().find('`') else {
                        return Err((pos, "unterminated raw quoted string".into()));
                    };
                    let s = self.rest()[..end].to_string();
                    self.advance(end + 1);
                    self.emit(Tok::Str(s), pos);
                }
                '\'' => {
                    let ch = self.char_const()?;
                    self.emit(Tok::Char(ch), pos);
                }
                '$' => {
                    self.bump();
                    let name = self.word();
                    self.emit(Tok::Variable(format!("${name}")), pos);
                }
                '.' => {
                    let next = self.rest()[1..].chars().next();
                    if next.is_some_and(|d| d.is_ascii_digit()) {
                        let n = self.number()?;
                        self.emit(Tok::Number(n), pos);
                    } else if next.is_some_and(is_alnum) {
                        self.bump();
                        let name = self.word();
                        self.emit(Tok::Field(name), pos);
                    } else {
                        self.bump();
                        self.emit(Tok::Dot, pos);
                    }
                }
                '+' | '-' | '0'..='9' => {
                    let n = self.number()?;
                    self.emit(Tok::Number(n), pos);
                }
                c if is_alnum(c) => {
                    let w = self.word();
                    let tok = match w.as_str() {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        kw => match KEYWORDS.iter().find(|k| **k == kw) {
                            Some(k) => Tok::Keyword(k),
                            None => Tok::Ident(w),
                        },
                    };
                    self.emit(tok, pos);
                }
                other => {
                    return Err((pos, format!("unrecognized character in action: {other:?}")));
                }
            }
        }
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_alnum) {
            self.bump();
        }
        self.src[start..self.pos].to_string()
    }

    fn number(&mut self) -> Result<String, (Pos, String)> {
        let pos = self.here();
        let start = self.pos;
        if matches!(self.peek(), Some('+' | '-')) {
            self.bump();
        }
        // Go's scanNumber accepts a generous run; the parser validates it.
        while let Some(c) = self.peek() {
            let exp_sign = matches!(c, '+' | '-')
                && matches!(
                    self.src[start..self.pos].chars().last(),
                    Some('e' | 'E' | 'p' | 'P')
                )
                && !self.src[start..self.pos].starts_with("0x");
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || exp_sign {
                self.bump();
            } else {
                break;
            }
        }
        let text = &self.src[start..self.pos];
        if text == "+" || text == "-" {
            return Err((pos, format!("bad number syntax: {text:?}")));
        }
        Ok(text.to_string())
    }

    fn escape(&mut self, quote: char) -> Result<char, (Pos, String)> {
        let pos = self.here();
        let bad = |s: &str| (pos, format!("invalid syntax in escape {s}"));
        let c = self.bump().ok_or_else(|| bad("at end"))?;
        let hex = |l: &mut Self, n: usize| -> Result<char, (Pos, String)> {
            let s: String = (0..n).filter_map(|_| l.bump()).collect();
            u32::from_str_radix(&s, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| bad(&s))
        };
        Ok(match c {
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0b',
            '\\' => '\\',
            'x' => hex(self, 2)?,
            'u' => hex(self, 4)?,
            'U' => hex(self, 8)?,
            '0'..='7' => {
                let mut s = String::from(c);
                s.extend((0..2).filter_map(|_| self.bump()));
                u32::from_str_radix(&s, 8)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| bad(&s))?
            }
            c if c == quote => c,
            other => return Err(bad(&other.to_string())),
        })
    }

    fn quoted(&mut self) -> Result<String, (Pos, String)> {
        let pos = self.here();
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => return Err((pos, "unterminated quoted string".into())),
                Some('"') => return Ok(s),
                Some('\\') => s.push(self.escape('"')?),
                Some(c) => s.push(c),
            }
        }
    }

    fn char_const(&mut self) -> Result<char, (Pos, String)> {
        let pos = self.here();
        self.bump();
        let c = match self.bump() {
            Some('\\') => self.escape('\'')?,
            Some(c) if c != '\'' && c != '\n' => c,
            _ => return Err((pos, "malformed character constant".into())),
        };
        if self.bump() != Some('\'') {
            return Err((pos, "unterminated character constant".into()));
        }
        Ok(c)
    }
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}
