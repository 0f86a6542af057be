//! Extractors whose every rejection is a [`Problem`], so a client meets one
//! error shape whatever part of the request is wrong:
//! - [`ApiJson`]: the body, declared `application/json` (415 otherwise),
//!   within `server.max_body_bytes` (413), parsed with errors naming the JSON
//!   path of the bad field (400 for broken JSON, 422 for a wrong shape);
//! - [`ApiPath`]: a path parameter; one that cannot be parsed names no
//!   resource, so it is a 404;
//! - [`ApiQuery`]: query parameters, each given at most once, with errors
//!   naming the parameter (422).

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::problem::{from_json_error, Problem};
use super::{body_bytes, parse_json, ApiContext};

/// A JSON request body: the parsed value and the bytes it came from (the
/// idempotency check hashes those).
pub struct ApiJson<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<S: ApiContext, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        require_json(req.headers())?;
        let raw = body_bytes(
            Bytes::from_request(req, state).await,
            state.max_body_bytes(),
        )?;
        let value = parse_json(&raw, "")?;
        Ok(ApiJson { value, raw })
    }
}

/// 415 unless the request declares a JSON body: `application/json` or a
/// `+json` type, parameters such as `charset` allowed.
pub fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let Some(v) = values.next() else {
        return Err(Problem::unsupported_media_type(
            "missing `Content-Type`; send the body as JSON with `Content-Type: application/json`",
        ));
    };
    if values.next().is_some() {
        return Err(Problem::unsupported_media_type(
            "send one `Content-Type` header, not several",
        ));
    }
    let essence = v
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(Problem::unsupported_media_type(format!(
            "`Content-Type: {}` is not JSON; send `Content-Type: application/json`",
            crate::http::truncate(&String::from_utf8_lossy(v.as_bytes()), 64)
        )))
    }
}

/// A path parameter. One that does not parse as `T` (not a number where a
/// number is expected, bytes that are not UTF-8) names nothing: 404.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) if e.status() == StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(error = %e.body_text(), "a route's path parameters do not match its handler (a bug)");
                Err(Problem::internal(
                    "the gateway hit a bug routing this request",
                ))
            }
            Err(e) => Err(Problem::not_found(format!(
                "nothing at `{}`: {}",
                crate::http::truncate(parts.uri.path(), 128),
                e.body_text()
            ))),
        }
    }
}

/// Query parameters as `T`. Each parameter may appear once; errors (422)
/// name the parameter.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parse_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Parse a query string as `T` (see [`ApiQuery`]).
pub fn parse_query<T: DeserializeOwned>(q: &str) -> Result<T, Problem> {
    // Through a JSON map, so the parameters deserialize like a JSON body
    // (options, defaults, unknown fields) with the same error paths.
    let mut map = Map::new();
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
        let k = k.into_owned();
        if map.contains_key(&k) {
            return Err(Problem::invalid(
                k.clone(),
                format!("give the query parameter `{k}` once"),
            ));
        }
        map.insert(k, Value::String(v.into_owned()));
    }
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| from_json_error(e, ""))
}

/// For query parameters (text) that are numbers: parse the text.
pub fn from_text<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    use serde::Deserialize;
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    s.parse().map(Some).map_err(|e| {
        serde::de::Error::custom(format!(
            "`{}` is not a valid number: {e}",
            crate::http::truncate(&s, 64)
        ))
    })
}

/// For a nested object field: serde reads a struct from a JSON array too
/// (positionally), which would let `[null]` pass as an empty filter. This
/// reads only a JSON object, keeping the paths of errors inside it.
pub fn object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(V(std::marker::PhantomData))
}

/// [`object`] for an optional field (`null` is `None`).
pub fn object_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object or null")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Option<T>, D2::Error> {
            object(d).map(Some)
        }
    }
    d.deserialize_option(V(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ct(v: Option<&str>) -> Result<(), Problem> {
        let mut h = HeaderMap::new();
        if let Some(v) = v {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
        }
        require_json(&h)
    }

    #[derive(Debug, serde::Deserialize)]
    struct Outer {
        #[serde(default, deserialize_with = "object_opt")]
        inner: Option<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        n: Option<u32>,
    }

    #[test]
    fn nested_objects_must_be_objects_and_keep_error_paths() {
        let p = parse_json::<Outer>(br#"{"inner": [null]}"#, "").unwrap_err();
        assert_eq!(
            (p.status.as_u16(), p.field.as_deref()),
            (422, Some("inner"))
        );
        let p = parse_json::<Outer>(br#"{"inner": {"n": "x"}}"#, "").unwrap_err();
        assert_eq!(p.field.as_deref(), Some("inner.n"));
        let ok = parse_json::<Outer>(br#"{"inner": {"n": 3}}"#, "").unwrap();
        assert_eq!(ok.inner.and_then(|i| i.n), Some(3));
        assert!(parse_json::<Outer>(br#"{"inner": null}"#, "")
            .unwrap()
            .inner
            .is_none());
        assert!(parse_json::<Outer>(br#"{}"#, "").unwrap().inner.is_none());
    }

    #[test]
    fn only_json_content_types_pass() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(ct(Some(ok)).is_ok(), "{ok}");
        }
        for bad in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/jsonx"),
            Some(""),
        ] {
            let p = ct(bad).unwrap_err();
            assert_eq!(
                (p.status.as_u16(), p.field.as_deref()),
                (415, Some("Content-Type")),
                "{bad:?}"
            );
        }
    }
}
