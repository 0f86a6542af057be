//! The data model: the Go values templates see. Besides JSON-like values it
//! keeps the Go types that matter for output and methods: `[]string` vs
//! `[]interface{}`, Alertmanager's `KV`/`Pairs`/`Alerts`, structs (printed as
//! `{...}`) and `time.Time`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::gotime::GoTime;

#[derive(Clone, Debug)]
pub enum Value {
    /// Go's invalid value / nil interface: prints `<no value>` from an action.
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    List(Arc<Vec<Value>>, ListKind),
    /// Keys are kept sorted, as Go's fmt and range visit them.
    Map(Arc<BTreeMap<String, Value>>, MapKind),
    Struct(Arc<Struct>),
    Time(GoTime),
}

/// The Go slice type behind a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// `[]interface{}` (JSON arrays).
    Any,
    /// `[]string`.
    Str,
    /// Alertmanager's `Alerts` (has `Firing`/`Resolved`).
    Alerts,
    /// `[]Alert` (what `Firing`/`Resolved` return).
    AlertSlice,
    /// Alertmanager's `Pairs` (has `Names`/`Values`).
    Pairs,
}

/// The Go map type behind a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// `map[string]interface{}` (JSON objects).
    Any,
    /// Alertmanager's `KV` (`map[string]string` with methods).
    Kv,
}

#[derive(Debug)]
pub struct Struct {
    /// Go's type name, for error messages.
    pub type_name: &'static str,
    /// In declaration order (that is how fmt prints them).
    pub fields: Vec<(&'static str, Value)>,
}

impl Value {
    pub fn str(s: impl Into<Arc<str>>) -> Value {
        Value::Str(s.into())
    }

    pub fn strings(items: impl IntoIterator<Item = String>) -> Value {
        Value::List(
            Arc::new(items.into_iter().map(Value::str).collect()),
            ListKind::Str,
        )
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// Go's truth: non-zero numbers, non-empty strings/lists/maps, structs.
    pub fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l, _) => !l.is_empty(),
            Value::Map(m, _) => !m.is_empty(),
            Value::Struct(_) | Value::Time(_) => true,
        }
    }

    /// Go's name for the value's type, as errors and `%!verb(type=...)` show it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_, ListKind::Any) => "[]interface {}",
            Value::List(_, ListKind::Str) => "[]string",
            Value::List(_, ListKind::Alerts) => "template.Alerts",
            Value::List(_, ListKind::AlertSlice) => "[]template.Alert",
            Value::List(_, ListKind::Pairs) => "template.Pairs",
            Value::Map(_, MapKind::Any) => "map[string]interface {}",
            Value::Map(_, MapKind::Kv) => "template.KV",
            Value::Struct(s) => s.type_name,
            Value::Time(_) => "time.Time",
        }
    }

    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(s) => s.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Builds a value from JSON the way `encoding/json` decodes into
    /// `interface{}`: numbers are float64, objects `map[string]interface{}`.
    pub fn from_json(j: &serde_json::Value) -> Value {
        match j {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Value::str(s.as_str()),
            serde_json::Value::Array(a) => Value::List(
                Arc::new(a.iter().map(Value::from_json).collect()),
                ListKind::Any,
            ),
            serde_json::Value::Object(o) => Value::Map(
                Arc::new(
                    o.iter()
                        .map(|(k, v)| (k.clone(), Value::from_json(v)))
                        .collect(),
                ),
                MapKind::Any,
            ),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::str(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::str(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
