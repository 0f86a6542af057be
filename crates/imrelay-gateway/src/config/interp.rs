//! `${ENV}` interpolation and `*_file` secrets, applied to the parsed config tree
//! (after TOML parsing, so a value can never inject TOML syntax, and so every
//! error can name the key it came from).

use std::path::Path;

use serde_json::{Map, Value};

use super::{ConfigIssue, KeyPath};

/// What `${...}` may refer to besides environment variables.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// The base URL of the in-process mock, for `${mock.url}`.
    pub mock_url: Option<String>,
}

/// Interpolate every string of `value` in place; resolve `X_file` keys into `X`.
/// Problems are pushed to `issues`, each naming its key.
pub fn resolve(
    value: &mut Value,
    path: &KeyPath,
    base_dir: &Path,
    vars: &Vars,
    issues: &mut Vec<ConfigIssue>,
) {
    match value {
        Value::String(s) => match interpolate(s, vars) {
            Ok(out) => *s = out,
            Err(e) => issues.push(ConfigIssue::new(path.to_string(), e.to_string())),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                resolve(item, &path.index(i), base_dir, vars, issues);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                resolve(v, &path.key(k), base_dir, vars, issues);
            }
            resolve_files(map, path, base_dir, issues);
        }
        _ => {}
    }
}

/// Replace `secret_file = "/run/secrets/x"` with `secret = "<contents>"`.
fn resolve_files(
    map: &mut Map<String, Value>,
    path: &KeyPath,
    base_dir: &Path,
    issues: &mut Vec<ConfigIssue>,
) {
    let file_keys: Vec<String> = map
        .keys()
        .filter(|k| k.len() > "_file".len() && k.ends_with("_file"))
        .cloned()
        .collect();
    for file_key in file_keys {
        let target = file_key.trim_end_matches("_file").to_string();
        let key_path = path.key(&file_key);
        let Some(Value::String(file)) = map.get(&file_key).cloned() else {
            issues.push(ConfigIssue::new(
                key_path.to_string(),
                "must be a string: the path of a file holding the value",
            ));
            continue;
        };
        if map.contains_key(&target) {
            issues.push(ConfigIssue::new(
                key_path.to_string(),
                format!("set either `{target}` or `{file_key}`, not both"),
            ));
            continue;
        }
        let full = base_dir.join(&file);
        match std::fs::read_to_string(&full) {
            Ok(text) => {
                // Files written by editors and secret stores end with a newline that
                // is not part of the secret.
                let value = text.trim_end_matches(['\n', '\r']).to_string();
                map.remove(&file_key);
                map.insert(target, Value::String(value));
            }
            Err(e) => issues.push(ConfigIssue::new(
                key_path.to_string(),
                format!("cannot read `{}`: {e}", full.display()),
            )),
        }
    }
}

/// Why a `${...}` reference could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpError {
    #[error("unterminated `${{`: write `${{NAME}}`, or `$${{` for a literal `${{`")]
    Unterminated,
    #[error("`${{mock.url}}` is used but the config has no `[mock]` section enabling the mock")]
    NoMock,
    #[error("`${{{0}}}` is not a valid environment variable name (letters, digits and `_`)")]
    InvalidName(String),
    #[error("environment variable `{0}` is not valid UTF-8")]
    NotUnicode(String),
    #[error("environment variable `{0}` is not set; export it or write `${{{0}:-default}}`")]
    Unset(String),
}

/// Expand `${NAME}`, `${NAME:-default}` and `${mock.url}`; `$${` is a literal `${`.
pub fn interpolate(s: &str, vars: &Vars) -> Result<String, InterpError> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or(InterpError::Unterminated)?;
            let expr = &tail[..end];
            out.push_str(&lookup(expr, vars)?);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup(expr: &str, vars: &Vars) -> Result<String, InterpError> {
    let (name, default) = match expr.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (expr, None),
    };
    if name == "mock.url" {
        return vars.mock_url.clone().ok_or(InterpError::NoMock);
    }
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(InterpError::InvalidName(name.to_string()));
    }
    match std::env::var(name) {
        Ok(v) => Ok(v),
        Err(std::env::VarError::NotUnicode(_)) => Err(InterpError::NotUnicode(name.to_string())),
        Err(std::env::VarError::NotPresent) => default
            .map(str::to_string)
            .ok_or_else(|| InterpError::Unset(name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_env_defaults_escapes_and_mock_url() {
        std::env::set_var("IMRELAY_INTERP_TEST_A", "alpha");
        let vars = Vars {
            mock_url: Some("http://127.0.0.1:9100".into()),
        };
        assert_eq!(
            interpolate("x${IMRELAY_INTERP_TEST_A}y", &vars).unwrap(),
            "xalphay"
        );
        assert_eq!(
            interpolate("${IMRELAY_INTERP_TEST_UNSET:-dflt}", &vars).unwrap(),
            "dflt"
        );
        assert_eq!(
            interpolate("$${HOME} costs $5", &vars).unwrap(),
            "${HOME} costs $5"
        );
        assert_eq!(
            interpolate("${mock.url}/x", &vars).unwrap(),
            "http://127.0.0.1:9100/x"
        );
        let err = interpolate("${IMRELAY_INTERP_TEST_UNSET}", &vars)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`IMRELAY_INTERP_TEST_UNSET` is not set"),
            "{err}"
        );
        assert!(interpolate("${oops", &vars)
            .unwrap_err()
            .to_string()
            .contains("unterminated"));
        assert!(interpolate("${mock.url}", &Vars::default())
            .unwrap_err()
            .to_string()
            .contains("[mock]"));
        assert!(interpolate("${a b}", &vars)
            .unwrap_err()
            .to_string()
            .contains("not a valid"));
    }

    #[test]
    fn file_keys_become_values_and_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.txt"), "s3cret\n").unwrap();
        let mut v = serde_json::json!({"d": [{"secret_file": "s.txt"}, {"secret_file": "missing.txt"}, {"secret": "a", "secret_file": "s.txt"}]});
        let mut issues = Vec::new();
        resolve(
            &mut v,
            &KeyPath::root(),
            dir.path(),
            &Vars::default(),
            &mut issues,
        );
        assert_eq!(v["d"][0], serde_json::json!({"secret": "s3cret"}));
        let keys: Vec<_> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["d[1].secret_file", "d[2].secret_file"]);
        assert!(issues[0].message.contains("cannot read"));
        assert!(issues[1].message.contains("not both"));
    }
}
