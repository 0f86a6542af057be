//! A TOML writer for the imported config: sections in a readable order,
//! with comments, and every string quoted by the toml crate's rules.

use std::fmt::Write;

/// The output being built.
#[derive(Debug, Default)]
pub struct TomlOut {
    text: String,
}

impl TomlOut {
    pub fn comment(&mut self, line: &str) -> &mut Self {
        let _ = writeln!(self.text, "# {line}");
        self
    }

    /// `[name]` or `[[name]]` (when `array`).
    pub fn table(&mut self, name: &str, array: bool) -> &mut Self {
        if !self.text.is_empty() && !self.text.ends_with("\n\n") {
            self.text.push('\n');
        }
        if array {
            let _ = writeln!(self.text, "[[{name}]]");
        } else {
            let _ = writeln!(self.text, "[{name}]");
        }
        self
    }

    /// `key = "value"`, multi-line strings as literal blocks when they can be.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let _ = writeln!(self.text, "{} = {}", key_of(key), string(value));
        self
    }

    /// `key = <raw TOML>` (numbers, booleans, arrays, inline tables).
    pub fn raw(&mut self, key: &str, value: &str) -> &mut Self {
        let _ = writeln!(self.text, "{} = {value}", key_of(key));
        self
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// A key, quoted when it is not a bare key.
pub fn key_of(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        basic(key)
    }
}

/// A dotted table name from parts, each quoted as needed: `templates."pwd.x"`.
pub fn path(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| key_of(p))
        .collect::<Vec<_>>()
        .join(".")
}

/// An array of strings.
pub fn array(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| basic(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn string(s: &str) -> String {
    // A literal block keeps a template readable; it cannot hold `'''` or
    // control characters other than tab and newline.
    let literal_ok = !s.contains("'''")
        && !s.ends_with('\'')
        && s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control());
    if s.contains('\n') && literal_ok {
        format!("'''\n{s}'''")
    } else {
        basic(s)
    }
}

fn basic(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_parses_back_to_the_same_strings() {
        let mut t = TomlOut::default();
        let tricky = "{{ define \"x\" }}\n\"quoted\" \\ back\n{{ end }}\n";
        t.table(&path(&["templates", "pwd.a b"]), false)
            .str("source", tricky)
            .str("title", "it's")
            .raw("channels", &array(&["a".into(), "b\"".into()]));
        let text = t.finish();
        let v: toml::Table = toml::from_str(&text).unwrap();
        let tpl = &v["templates"]["pwd.a b"];
        assert_eq!(tpl["source"].as_str(), Some(tricky));
        assert_eq!(tpl["title"].as_str(), Some("it's"));
        assert_eq!(tpl["channels"][1].as_str(), Some("b\""));
    }
}
