//! Base URLs and the outbound-host rule: a platform destination may only reach
//! its platform's host, or the base URL configured for it (a mock, a proxy).

use url::Url;

use crate::Error;

/// Parse the configured base URL, or the platform default. `field` names the
/// config key in errors.
pub fn base_url(configured: Option<&str>, default: &str, field: &str) -> Result<Url, Error> {
    let raw = configured.unwrap_or(default);
    let url = Url::parse(raw)
        .map_err(|e| Error::Config(format!("`{field}`: `{raw}` is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Error::Config(format!(
            "`{field}`: `{raw}` must be an http(s) URL with a host"
        )));
    }
    Ok(url)
}

/// Join `path` (with its query) onto `base`, keeping any path prefix of `base`.
pub fn join(base: &Url, path_and_query: &str) -> Url {
    let mut s = base.as_str().trim_end_matches('/').to_string();
    s.push_str(path_and_query);
    // Both parts are valid URL text, so this cannot fail; fall back to base anyway.
    Url::parse(&s).unwrap_or_else(|_| base.clone())
}

/// Refuse a full URL (e.g. a pasted robot webhook) that points anywhere but the
/// platform's base: no SSRF through a configured webhook.
pub fn check_same_origin(url: &Url, base: &Url, field: &str) -> Result<(), Error> {
    if url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
    {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "`{field}` points at {}://{}, but this destination may only reach {}://{} (set `base_url` to allow another host)",
            url.scheme(),
            url.host_str().unwrap_or(""),
            base.scheme(),
            base.host_str().unwrap_or("")
        )))
    }
}

/// A query parameter of `url`.
pub fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_hosts_are_refused() {
        let base = base_url(None, "https://oapi.dingtalk.com", "base_url").unwrap();
        let ok = Url::parse("https://oapi.dingtalk.com/robot/send?access_token=x").unwrap();
        let evil = Url::parse("http://169.254.169.254/robot/send?access_token=x").unwrap();
        assert!(check_same_origin(&ok, &base, "webhook").is_ok());
        let err = check_same_origin(&evil, &base, "webhook")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`webhook`") && err.contains("169.254.169.254"));
    }

    #[test]
    fn join_keeps_prefix() {
        let base = Url::parse("http://127.0.0.1:9000/dingtalk/").unwrap();
        assert_eq!(
            join(&base, "/robot/send?a=1").as_str(),
            "http://127.0.0.1:9000/dingtalk/robot/send?a=1"
        );
    }
}
