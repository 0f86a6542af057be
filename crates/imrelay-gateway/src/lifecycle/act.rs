//! What a person does about a message (acknowledge, silence, resolve), from
//! a card button or the API: recorded on its thread with who and when, and
//! the card updated for everyone by a queued update.

use std::sync::Arc;

use imrelay_sdk::http::HttpClient;

use super::card::ActionKind;
use super::silence;
use super::LifecycleSettings;
use crate::store::{Ack, MessageView, NewMessage, Store, StoreError};

/// Who acted, and through what.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The platform's user id, or the API caller's name.
    pub user_id: String,
    /// A name given with the action (the API's `by`); else `[lifecycle.names]`.
    pub user_name: Option<String>,
    /// `api`, `feishu`, `dingtalk`, `wecom`.
    pub source: String,
    /// The platform's id of the callback that carried it: a retried
    /// callback acts once.
    pub event_id: Option<String>,
}

/// Why an action was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error("{0}")]
    Silence(String),
    #[error("this message cannot be acted on: {0}")]
    NotActionable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`act`] did.
#[derive(Debug, Clone)]
pub struct Acted {
    pub ack: Ack,
    /// The same action was already taken: nothing new was recorded.
    pub already: bool,
}

/// What [`act`] works with.
pub struct ActContext<'a> {
    pub store: &'a Arc<dyn Store>,
    pub settings: &'a LifecycleSettings,
    pub http: Option<&'a HttpClient>,
    pub now_ms: i64,
}

/// Take `kind` on the thread of `view` (any message of it) as `actor`.
pub async fn act(
    cx: &ActContext<'_>,
    view: &MessageView,
    kind: ActionKind,
    actor: Actor,
) -> Result<Acted, ActError> {
    let root = thread_root(cx, view).await?;
    if let Some(first) = already_taken(&root, kind, &actor) {
        return Ok(Acted {
            ack: first.clone(),
            already: true,
        });
    }
    let user_name = actor
        .user_name
        .clone()
        .or_else(|| cx.settings.name_of(&actor.user_id));
    let who = user_name.clone().unwrap_or_else(|| actor.user_id.clone());
    let mut detail = match kind {
        ActionKind::Silence(d) => Some(silence(cx, &root, d, &who).await?),
        _ => None,
    };
    if let Some(e) = &actor.event_id {
        detail.get_or_insert_with(|| serde_json::json!({}))["event_id"] = e.as_str().into();
    }
    let ack = Ack {
        action: kind.ack_action(),
        user_id: actor.user_id,
        user_name,
        source: actor.source,
        detail,
        at: cx.now_ms,
    };
    let update = card_update(cx, &root).await?;
    cx.store
        .acknowledge(&root.id, ack.clone(), Some(update))
        .await?;
    crate::telemetry::events::acked(ack.action.as_str(), &ack.source);
    tracing::info!(message_id = %root.id, action = ack.action.as_str(), user = %ack.user_id,
        source = %ack.source, "message acknowledged; its card update is queued");
    Ok(Acted {
        ack,
        already: false,
    })
}

/// The first message of `view`'s thread (`view` itself without one).
async fn thread_root(cx: &ActContext<'_>, view: &MessageView) -> Result<MessageView, ActError> {
    match &view.thread {
        Some(t) if t.root != view.id => cx
            .store
            .get_message(&t.root)
            .await?
            .ok_or_else(|| ActError::NotActionable("its thread's first message is gone".into())),
        _ => Ok(view.clone()),
    }
}

/// The acknowledgement that makes this one a repeat: the same callback
/// retried, or a second ack or resolve (a double click, a retried API call;
/// the first one stands). Silences may be repeated.
fn already_taken<'a>(root: &'a MessageView, kind: ActionKind, actor: &Actor) -> Option<&'a Ack> {
    let same_event = |a: &&Ack| {
        actor.event_id.as_deref().is_some_and(|e| {
            a.detail
                .as_ref()
                .and_then(|d| d.get("event_id"))
                .and_then(serde_json::Value::as_str)
                == Some(e)
        })
    };
    let repeat =
        |a: &&Ack| !matches!(kind, ActionKind::Silence(_)) && a.action == kind.ack_action();
    root.acks
        .iter()
        .find(same_event)
        .or_else(|| root.acks.iter().find(repeat))
}

/// Create the silence in the Alertmanager `root` came from; what the card
/// shows of it.
async fn silence(
    cx: &ActContext<'_>,
    root: &MessageView,
    duration: std::time::Duration,
    who: &str,
) -> Result<serde_json::Value, ActError> {
    let comment = format!("silenced from imrelay message {}", root.id);
    let Some(url) = &root.silence_url else {
        // Not from an Alertmanager: an imrelay silence of messages like it.
        let s = crate::silences::like_message(
            &root.labels,
            &root.channel,
            cx.now_ms,
            duration,
            who,
            &comment,
        )
        .ok_or_else(|| ActError::Silence("the message has no labels to silence by".into()))?;
        let (id, ends_at_ms) = (s.id.clone(), s.ends_at);
        cx.store.put_silence(s).await?;
        return Ok(serde_json::json!({"silence_id": id, "ends_at_ms": ends_at_ms}));
    };
    let http = cx
        .http
        .ok_or_else(|| ActError::Silence("the gateway has no HTTP client".into()))?;
    let s = silence::create(http, url, &root.labels, cx.now_ms, duration, who, &comment)
        .await
        .map_err(|e| ActError::Silence(e.to_string()))?;
    Ok(serde_json::json!({"silence_id": s.id, "ends_at_ms": s.ends_at_ms}))
}

/// An update of the thread's card: its newest content again, which the
/// dispatcher shows with the thread's acknowledgements.
async fn card_update(cx: &ActContext<'_>, root: &MessageView) -> Result<NewMessage, ActError> {
    let key = match &root.thread {
        Some(t) => t.key.clone(),
        None => cx
            .store
            .adopt_thread(&root.id)
            .await?
            .ok_or_else(|| ActError::NotActionable("it is gone".into()))?,
    };
    let latest = match cx.store.thread_latest(&root.id).await? {
        Some(id) if id != root.id => cx.store.get_message(&id).await?,
        _ => None,
    };
    let content = latest.as_ref().unwrap_or(root);
    let mut targets: Vec<crate::store::Target> = Vec::new();
    for d in &root.deliveries {
        if !targets.contains(&d.target) {
            targets.push(d.target.clone());
        }
    }
    let mut m = content.message.clone();
    let mut nm = NewMessage::new(root.channel.clone(), m.clone(), targets).with_thread(key);
    m.id = Some(nm.id.to_string());
    nm.message = m;
    nm.labels = root.labels.clone();
    nm.silence_url = root.silence_url.clone();
    nm.source = root.source.clone();
    Ok(nm)
}
