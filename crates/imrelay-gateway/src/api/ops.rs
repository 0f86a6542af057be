//! Operations endpoints: `GET /v1/status` (queue depth, dead letters, per-target
//! counts, and the dispatcher's view of each destination: breaker state, limiter)
//! and the unauthenticated probes `GET /healthz` and `GET /readyz`.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::{Auth, Caller, Scope};
use super::problem::Problem;
use super::AppState;
use crate::channels::ChannelSet;
use crate::http::responses::{KeyProblem, StoreProblem};
use crate::store::QueueStats;

/// The gateway's state as one key may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// The store backend: `sqlite` or `postgres`.
    pub store: &'static str,
    /// False while draining for shutdown (new messages get 503).
    pub accepting: bool,
    /// Queue counts (per target limited to the key's channels).
    pub queue: QueueStats,
    /// The channels the key may use.
    pub channels: Vec<ChannelStatus>,
    /// The dispatcher's view (breakers, limiters, counters; destinations
    /// limited to those of the key's channels); null when no dispatcher runs
    /// in this process.
    #[schema(value_type = Option<crate::dispatch::DispatchStatus>)]
    pub dispatch: Option<Value>,
}

/// One configured channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelStatus {
    pub name: String,
    /// Whether its destinations are a robot pool (one of them per message).
    pub pool: bool,
    pub destinations: Vec<DestinationInfo>,
    /// The channel that takes over when this one stays undeliverable.
    pub fallback: Option<String>,
}

/// One destination of a channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationInfo {
    /// The destination's key (never its secret-bearing URL).
    pub key: String,
    /// Its type (`dingtalk_robot`, `webhook`, ...).
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// `GET /v1/status` (any valid key; a key limited to some channels sees only
/// their channels).
#[utoipa::path(get, path = "/v1/status", tag = "operations",
    responses(
        (status = 200, description = "Channels, destinations, breaker states, queue depths, dead letters", body = Status),
        KeyProblem,
        StoreProblem,
    ),
    security(("bearer" = [])))]
pub async fn status(
    State(st): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<Status>, Problem> {
    let mut queue = st.store.stats().await?;
    if let Scope::Channels(_) = &caller.scope {
        queue.by_target.retain(|t| {
            t.target
                .split_once('/')
                .is_some_and(|(c, _)| caller.may_use(c))
        });
    }
    let set = st.channels();
    let channels = set
        .channels
        .values()
        .filter(|c| caller.may_use(&c.name))
        .map(|c| ChannelStatus {
            name: c.name.to_string(),
            pool: c.pool,
            destinations: c
                .destinations
                .iter()
                .map(|d| DestinationInfo {
                    key: d.key.clone(),
                    kind: d.dest.kind(),
                })
                .collect(),
            fallback: c.fallback.as_ref().map(|f| f.channel.clone()),
        })
        .collect();
    Ok(Json(Status {
        store: st.store.backend(),
        accepting: st.accepting.load(std::sync::atomic::Ordering::Acquire),
        queue,
        channels,
        dispatch: st.status.as_ref().map(|f| {
            let mut d = f();
            if let Scope::Channels(_) = &caller.scope {
                scope_dispatch(&mut d, &caller, &set);
            }
            d
        }),
    }))
}

/// Keep only what concerns the caller's channels in the dispatcher's view:
/// the destinations they send to (a destination shared with another channel
/// stays, it is the caller's too) and the per-target queue counts.
fn scope_dispatch(d: &mut Value, caller: &Caller, set: &ChannelSet) {
    let keys: HashSet<&str> = set
        .channels
        .values()
        .filter(|c| caller.may_use(&c.name))
        .flat_map(|c| c.destinations.iter().map(|d| d.key.as_str()))
        .collect();
    if let Some(dests) = d.get_mut("destinations").and_then(Value::as_array_mut) {
        dests.retain(|e| e["key"].as_str().is_some_and(|k| keys.contains(k)));
    }
    if let Some(targets) = d
        .get_mut("queue")
        .and_then(|q| q.get_mut("by_target"))
        .and_then(Value::as_array_mut)
    {
        targets.retain(|t| {
            t["target"]
                .as_str()
                .and_then(|t| t.split_once('/'))
                .is_some_and(|(c, _)| caller.may_use(c))
        });
    }
}

/// The liveness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(pattern = "^ok$")]
    pub status: &'static str,
}

/// `GET /healthz`: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness with each check's result.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: ReadyState,
    pub checks: ReadinessChecks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyState {
    Ready,
    NotReady,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessChecks {
    pub store: StoreCheck,
    pub config: ConfigCheck,
    pub draining: DrainingCheck,
}

/// Whether the store can commit an accept now.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreCheck {
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A config is loaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigCheck {
    pub ok: bool,
    /// How many channels it defines.
    pub channels: usize,
}

/// Whether the gateway is draining for shutdown.
#[derive(Debug, Serialize, ToSchema)]
pub struct DrainingCheck {
    /// True while not draining.
    pub ok: bool,
    pub draining: bool,
}

/// `GET /readyz`: ready to take traffic: the store commits, a config is
/// loaded, and the gateway is not draining. 503 with the failing check
/// otherwise, so a load balancer stops sending before shutdown completes.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: the store cannot commit, or the gateway is draining", body = Readiness),
    ))]
pub async fn readyz(State(st): State<AppState>) -> (StatusCode, Json<Readiness>) {
    // Whether an accept can commit now; the failure's detail is only logged
    // (its text may name the database user).
    let store = st.store.ready().await;
    let store = if store.ok {
        Ok(())
    } else {
        Err("the store cannot commit".to_string())
    };
    let channels = st.channels().channels.len();
    let accepting = st.accepting.load(std::sync::atomic::Ordering::Acquire);
    let ready = store.is_ok() && accepting;
    let body = Readiness {
        status: if ready {
            ReadyState::Ready
        } else {
            ReadyState::NotReady
        },
        checks: ReadinessChecks {
            store: StoreCheck {
                ok: store.is_ok(),
                error: store.err(),
            },
            config: ConfigCheck { ok: true, channels },
            draining: DrainingCheck {
                ok: accepting,
                draining: !accepting,
            },
        },
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
