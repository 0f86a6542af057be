//! Go text/template's predefined functions.

use std::cmp::Ordering;
use std::sync::Arc;

use super::text::{html_escape, js_escape, query_escape};
use super::{arg_str, want_args, FnCtx, FuncMap};
use crate::gofmt;
use crate::value::{MapKind, Value};

pub fn all() -> FuncMap {
    let mut m = FuncMap::new();
    // Evaluated lazily in exec; listed so the parser knows them.
    m.insert("and", |_, _| Err("and is evaluated by the executor".into()));
    m.insert("or", |_, _| Err("or is evaluated by the executor".into()));
    m.insert("not", |_, a| {
        want_args("not", a, 1)?;
        Ok(Value::Bool(!a[0].truth()))
    });
    m.insert("len", len);
    m.insert("index", index);
    m.insert("slice", slice);
    m.insert("print", |_, a| Ok(Value::str(gofmt::sprint(a))));
    m.insert("println", |_, a| Ok(Value::str(gofmt::sprintln(a))));
    m.insert("printf", |_, a| {
        let Some((f, rest)) = a.split_first() else {
            return Err("wrong number of args for printf: want at least 1 got 0".into());
        };
        Ok(Value::str(gofmt::sprintf(arg_str(f)?, rest)))
    });
    m.insert("html", |_, a| Ok(Value::str(html_escape(&escaper_args(a)))));
    m.insert("js", |_, a| Ok(Value::str(js_escape(&escaper_args(a)))));
    m.insert("urlquery", |_, a| {
        Ok(Value::str(query_escape(&escaper_args(a))))
    });
    m.insert("eq", eq);
    m.insert("ne", |c, a| {
        want_args("ne", a, 2)?;
        Ok(Value::Bool(!eq(c, a)?.truth()))
    });
    m.insert("lt", |_, a| cmp2("lt", a, |o| o == Ordering::Less));
    m.insert("le", |_, a| cmp2("le", a, |o| o != Ordering::Greater));
    m.insert("gt", |_, a| cmp2("gt", a, |o| o == Ordering::Greater));
    m.insert("ge", |_, a| cmp2("ge", a, |o| o != Ordering::Less));
    m
}

/// The argument string of html/js/urlquery (Go's evalArgs): a lone string
/// as is, else fmt.Sprint with nil shown as `<no value>`.
fn escaper_args(args: &[Value]) -> String {
    if let [Value::Str(s)] = args {
        return s.to_string();
    }
    let shown: Vec<Value> = args
        .iter()
        .map(|a| {
            if a.is_nil() {
                Value::str("<no value>")
            } else {
                a.clone()
            }
        })
        .collect();
    gofmt::sprint(&shown)
}

fn len(_: &FnCtx, a: &[Value]) -> Result<Value, String> {
    want_args("len", a, 1)?;
    let n = match &a[0] {
        Value::Str(s) => s.len(),
        Value::List(l, _) => l.len(),
        Value::Map(m, _) => m.len(),
        Value::Nil => return Err("len of nil pointer".into()),
        other => return Err(format!("len of type {}", other.type_name())),
    };
    Ok(Value::Int(n as i64))
}

fn index_arg(v: &Value, what: &str) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Nil => Err(format!("cannot index {what} with nil")),
        other => Err(format!(
            "cannot index {what} with type {}",
            other.type_name()
        )),
    }
}

fn index(_: &FnCtx, a: &[Value]) -> Result<Value, String> {
    let Some((item, idxs)) = a.split_first() else {
        return Err("wrong number of args for index: want at least 1 got 0".into());
    };
    let mut item = item.clone();
    for idx in idxs {
        item = match &item {
            Value::List(l, _) => {
                let i = index_arg(idx, "slice/array")?;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| l.get(i))
                    .cloned()
                    .ok_or(format!("index out of range: {i}"))?
            }
            Value::Str(s) => {
                let i = index_arg(idx, "slice/array")?;
                let b = usize::try_from(i).ok().and_then(|i| s.as_bytes().get(i));
                Value::Int(i64::from(*b.ok_or(format!("index out of range: {i}"))?))
            }
            Value::Map(m, kind) => {
                let key = match idx {
                    Value::Str(k) => k,
                    other => {
                        return Err(format!(
                            "value has type {}; should be string",
                            other.type_name()
                        ))
                    }
                };
                match m.get(&**key) {
                    Some(v) => v.clone(),
                    // Zero value of the element type.
                    None if *kind == MapKind::Kv => Value::str(""),
                    None => Value::Nil,
                }
            }
            Value::Nil => return Err("index of untyped nil".into()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn slice(_: &FnCtx, a: &[Value]) -> Result<Value, String> {
    let Some((item, idxs)) = a.split_first() else {
        return Err("wrong number of args for slice: want at least 1 got 0".into());
    };
    let len = match item {
        Value::Str(s) => s.len(),
        Value::List(l, _) => l.len(),
        Value::Nil => return Err("slice of untyped nil".into()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    if idxs.len() > 3 {
        return Err(format!("too many slice indexes: {}", idxs.len()));
    }
    if idxs.len() == 3 && matches!(item, Value::Str(_)) {
        return Err("cannot 3-index slice a string".into());
    }
    let mut bounds = [0usize, len, len];
    for (n, idx) in idxs.iter().enumerate() {
        let i = index_arg(idx, "slice/array")?;
        bounds[n] = usize::try_from(i)
            .ok()
            .filter(|i| *i <= len)
            .ok_or(format!("index out of range: {i}"))?;
    }
    if idxs.len() < 2 {
        bounds[1] = len;
    }
    if bounds[0] > bounds[1] {
        return Err(format!(
            "invalid slice index: {} > {}",
            bounds[0], bounds[1]
        ));
    }
    Ok(match item {
        Value::Str(s) => Value::str(
            s.get(bounds[0]..bounds[1])
                .ok_or("slice splits a UTF-8 character (unsupported)")?,
        ),
        Value::List(l, kind) => Value::List(Arc::new(l[bounds[0]..bounds[1]].to_vec()), *kind),
        _ => unreachable!("checked above"),
    })
}

/// Go's basic kinds for comparisons; other kinds cannot be compared.
#[derive(PartialEq)]
enum Kind {
    Nil,
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Nil => Kind::Nil,
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

fn eq(_: &FnCtx, a: &[Value]) -> Result<Value, String> {
    let Some((first, rest)) = a.split_first() else {
        return Err("wrong number of args for eq: want at least 1 got 0".into());
    };
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = kind(first);
    if k1 == Kind::Other {
        return Err("invalid type for comparison".into());
    }
    for other in rest {
        let k2 = kind(other);
        let truth = if k1 != k2 {
            if k1 != Kind::Nil && k2 != Kind::Nil {
                return Err("incompatible types for comparison".into());
            }
            false
        } else {
            match (first, other) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Int(x), Value::Int(y)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::Str(x), Value::Str(y)) => x == y,
                (Value::Nil, Value::Nil) => true,
                _ => return Err("invalid type for comparison".into()),
            }
        };
        if truth {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn cmp2(name: &str, a: &[Value], pick: fn(Ordering) -> bool) -> Result<Value, String> {
    want_args(name, a, 2)?;
    let (k1, k2) = (kind(&a[0]), kind(&a[1]));
    if matches!(k1, Kind::Nil | Kind::Other) || matches!(k2, Kind::Nil | Kind::Other) {
        return Err("invalid type for comparison".into());
    }
    if k1 != k2 {
        return Err("incompatible types for comparison".into());
    }
    let ord = match (&a[0], &a[1]) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Str(x), Value::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Float(x), Value::Float(y)) => match x.partial_cmp(y) {
            Some(o) => o,
            // NaN: every ordered comparison is false, but le/ge also test eq.
            None => return Ok(Value::Bool(false)),
        },
        _ => return Err("invalid type for comparison".into()),
    };
    Ok(Value::Bool(pick(ord)))
}
