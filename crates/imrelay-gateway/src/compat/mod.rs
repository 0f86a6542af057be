//! Compatibility endpoints: the URL paths prometheus-webhook-dingtalk (PWD)
//! and PrometheusAlert (PA) answered on, behind `[compat]` switches, so a
//! migration can start by pointing Alertmanager at imrelay unchanged.
//!
//! - [`pwd`]: `POST /dingtalk/{target}/send` is the Alertmanager route
//!   `[alerting.routes.{target}]` (`imrelay import pwd` writes one per target).
//! - [`pa`]: `POST /prometheusalert?type=dd|wx|fs&tpl=NAME&ddurl=...` renders
//!   template `NAME` (`engine = "go-prometheusalert"`) to the channel whose
//!   robot the URL names; a robot no channel has is refused, so imrelay is no
//!   open relay.
//!
//! Both go through the Alertmanager bridge ([`crate::alertmanager::handler::accept`]):
//! the same planning, templates, durable enqueue and answers (2xx once
//! committed, 5xx to make Alertmanager retry). Authentication: see [`auth`].

pub mod auth;
pub mod config;
pub mod pa;
pub mod pwd;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::routing::post;
use axum::Router;

use crate::alertmanager::handler::AlertmanagerContext;
use crate::http::problem::Problem;
pub use config::CompatConfig;

/// What the compatibility endpoints need beyond the Alertmanager bridge's.
pub trait CompatContext: AlertmanagerContext {
    /// `[compat]` in force now.
    fn compat(&self) -> Arc<CompatConfig>;
}

/// The compatibility routes, for the API router to merge. They always
/// exist and answer 404 while their switch is off, so a reload can turn
/// them on or off.
pub fn router<S: CompatContext>() -> Router<S> {
    Router::new()
        .route("/dingtalk/{target}/send", post(pwd::send::<S>))
        .route("/prometheusalert", post(pa::receive::<S>))
}

/// The answer of an endpoint whose switch is off: a 404 naming the key to set.
fn switched_off(path: &str, key: &str) -> Problem {
    Problem::not_found(format!(
        "`{path}` is answered only with `[compat] {key} = true` in the config"
    ))
}

/// A query string as pairs, percent-decoded.
fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}
