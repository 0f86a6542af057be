//! `POST /prometheusalert?type=dd|wx|fs&tpl=NAME&ddurl=...`: PrometheusAlert's
//! path for Alertmanager's webhook. `tpl` names a template (`imrelay import
//! prometheusalert` carries PA's over with `engine = "go-prometheusalert"`);
//! `ddurl`/`wxurl`/`fsurl` (comma-separated, as in PA) name robots, each of
//! which must be a destination of a configured channel: imrelay never sends
//! to a URL a request brings. `at` mentions (DingTalk mobiles, WeCom and
//! Feishu user ids). Without a URL, `[compat.prometheusalert_defaults]`
//! names the channel, as app.conf's default robots did.

use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use imrelay_sdk::message::Mentions;
use imrelay_sdk::Secret;

use super::auth::{authenticate, query_key};
use super::{query_pairs, switched_off, CompatContext};
use crate::alertmanager::handler::{accept, parse_notification, request_trace_id};
use crate::alertmanager::{Route, RouteCard, Rule};
use crate::channels::ChannelSet;
use crate::http::body_bytes;
use crate::http::problem::Problem;

/// PA's `type`: which platform's robot the URL parameter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaType {
    /// DingTalk robot (`ddurl`).
    Dd,
    /// WeCom group robot (`wxurl`).
    Wx,
    /// Feishu bot (`fsurl`).
    Fs,
}

impl PaType {
    fn parse(s: &str) -> Option<PaType> {
        match s {
            "dd" => Some(PaType::Dd),
            "wx" => Some(PaType::Wx),
            "fs" => Some(PaType::Fs),
            _ => None,
        }
    }

    /// The query parameter with the robot URLs.
    pub fn url_param(self) -> &'static str {
        match self {
            PaType::Dd => "ddurl",
            PaType::Wx => "wxurl",
            PaType::Fs => "fsurl",
        }
    }

    /// The destination id (`kind:fingerprint`) of the robot `url` names, as
    /// the SDK computes it, so the URL is compared without keeping its secret.
    fn destination_id(self, url: &str) -> Option<String> {
        let parsed = url::Url::parse(url.trim()).ok()?;
        let param = |name: &str| {
            parsed
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let (kind, token) = match self {
            PaType::Dd => ("dingtalk_robot", param("access_token")?),
            PaType::Wx => ("wecom_robot", param("key")?),
            PaType::Fs => (
                "feishu_webhook",
                parsed.path_segments()?.next_back()?.to_string(),
            ),
        };
        (!token.is_empty()).then(|| format!("{kind}:{}", Secret::new(token).fingerprint()))
    }
}

/// The query, checked.
struct PaRequest {
    tpl: String,
    channels: Vec<String>,
    mentions: Mentions,
}

/// `POST /prometheusalert`.
pub async fn receive<S: CompatContext>(
    State(st): State<S>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let compat = st.compat();
    if !compat.prometheusalert {
        return Err(switched_off("/prometheusalert", "prometheusalert"));
    }
    let query = query_pairs(raw.as_deref());
    let caller = authenticate(
        &st.api_keys(),
        &headers,
        query_key(&query),
        compat.allow_unauthenticated,
    )?;
    let bytes = body_bytes(body, st.max_body_bytes())?;
    let alerting = st.alerting();
    let req = read_query(&query, &compat.prometheusalert_defaults, &st.channels())?;
    if !alerting.templates.contains(&req.tpl) {
        return Err(Problem::invalid(
            "tpl",
            format!(
                "no template `{}`; PrometheusAlert's templates become [templates.NAME] with \
                 engine = \"go-prometheusalert\" (`imrelay import prometheusalert --templates`)",
                req.tpl
            ),
        ));
    }
    caller.require(req.channels.iter().map(String::as_str))?;
    let n = parse_notification(&bytes)?;
    let route = Route {
        name: "prometheusalert".into(),
        rules: Vec::new(),
        default: Some(Rule {
            label: "default".into(),
            matchers: Vec::new(),
            channels: req.channels,
            mentions: req.mentions,
            mention_refs: Vec::new(),
            escalation: None,
            send_resolved: true,
            template: Some(req.tpl),
            cont: false,
        }),
        card: RouteCard::default(),
    };
    accept(&st, &alerting, &route, &n, request_trace_id(&headers)).await
}

fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.trim().is_empty())
}

fn read_query(
    query: &[(String, String)],
    defaults: &super::config::PaDefaults,
    set: &ChannelSet,
) -> Result<PaRequest, Problem> {
    let ty = param(query, "type").ok_or_else(|| {
        Problem::invalid(
            "type",
            "missing `type`: dd (DingTalk), wx (WeCom) or fs (Feishu)",
        )
    })?;
    let ty = PaType::parse(ty).ok_or_else(|| {
        Problem::invalid(
            "type",
            format!("type `{ty}` is not one imrelay answers for; use dd, wx or fs"),
        )
    })?;
    let tpl = param(query, "tpl")
        .ok_or_else(|| Problem::invalid("tpl", "missing `tpl`: the template to render"))?
        .to_string();
    let field = ty.url_param();
    let channels = match param(query, field) {
        Some(urls) => urls
            .split(',')
            .filter(|u| !u.trim().is_empty())
            .map(|u| channel_of(set, ty, u).ok_or_else(|| not_configured(field)))
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![defaults.for_type(ty).map(str::to_string).ok_or_else(|| {
            Problem::invalid(
                field,
                format!(
                    "missing `{field}`, and [compat.prometheusalert_defaults] names no channel for `{}`",
                    field.trim_end_matches("url")
                ),
            )
        })?],
    };
    let mut mentions = Mentions::default();
    if let Some(at) = param(query, "at") {
        let who = at
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        match ty {
            PaType::Dd => mentions.mobiles = who.collect(),
            PaType::Wx | PaType::Fs => mentions.user_ids = who.collect(),
        }
    }
    Ok(PaRequest {
        tpl,
        channels,
        mentions,
    })
}

/// The channel one of whose destinations is the robot `url` names.
fn channel_of(set: &ChannelSet, ty: PaType, url: &str) -> Option<String> {
    let id = ty.destination_id(url)?;
    set.channels
        .values()
        .find(|c| c.destinations.iter().any(|d| d.dest.id() == id))
        .map(|c| c.name.to_string())
}

fn not_configured(field: &str) -> Problem {
    Problem::forbidden(format!(
        "the robot in `{field}` is not a destination of any configured channel; imrelay sends \
         only to robots its config has (add it to a channel, e.g. with `imrelay import prometheusalert`)"
    ))
    .field(field)
}
