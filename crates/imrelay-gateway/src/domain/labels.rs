//! Labels, as Prometheus names them.

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_label_names() {
        assert!(valid_label_name("alertname"));
        assert!(valid_label_name("_x9"));
        assert!(!valid_label_name("9x"));
        assert!(!valid_label_name("a-b"));
        assert!(!valid_label_name(""));
    }
}
