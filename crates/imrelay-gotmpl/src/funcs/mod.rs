//! Function maps: Go's builtins (always present) plus a flavour's own
//! (prometheus-webhook-dingtalk's, PrometheusAlert's).

use std::collections::HashMap;

use jiff::tz::TimeZone;

use crate::value::Value;

mod builtin;
mod pa;
mod pwd;
mod text;

pub(crate) use text::is_print;

/// What a function can see besides its arguments.
pub struct FnCtx<'a> {
    /// Go's `time.Local`.
    pub local: &'a TimeZone,
}

/// A template function: typed like Go's (wrong types are errors, as in Go).
pub type Func = fn(&FnCtx, &[Value]) -> Result<Value, String>;

pub type FuncMap = HashMap<&'static str, Func>;

/// Go's predefined functions. `and`/`or` are evaluated lazily by the
/// executor; the entries here make them known to the parser.
pub fn builtins() -> FuncMap {
    builtin::all()
}

/// prometheus-webhook-dingtalk's function map: Alertmanager's default
/// template functions, PWD's own (`markdown`, ...) and the sprig functions
/// PWD templates commonly use (sprig is added last in PWD, so its `date` wins).
pub fn pwd() -> FuncMap {
    pwd::all()
}

/// PrometheusAlert's function map (`GetCSTtime`, `TimeFormat`, ...).
pub fn prometheus_alert() -> FuncMap {
    pa::all()
}

pub fn want_args(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

pub fn arg_str(v: &Value) -> Result<&str, String> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Nil => Err("invalid value; expected string".into()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

pub fn arg_int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Nil => Err("invalid value; expected int".into()),
        other => Err(format!(
            "wrong type for value; expected int; got {}",
            other.type_name()
        )),
    }
}

/// `[]string` parameters accept only string slices, as in Go.
pub fn arg_strings(v: &Value) -> Result<Vec<&str>, String> {
    match v {
        Value::List(items, crate::value::ListKind::Str) => {
            Ok(items.iter().filter_map(Value::as_str).collect())
        }
        Value::Nil => Ok(Vec::new()),
        other => Err(format!(
            "wrong type for value; expected []string; got {}",
            other.type_name()
        )),
    }
}
