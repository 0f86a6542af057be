//! The escalation runner: finds escalations whose next step is due, works
//! out whom the step notifies right now (schedules and overrides at this
//! instant), and fires the step through [`Store::fire_escalation`], which
//! records it and queues its messages in one transaction only if nobody fired
//! it before. So a crash between steps delays a step at most one pass, and two
//! instances racing for one step fire it once.

use std::sync::Arc;
use std::time::Duration;

use imrelay_sdk::message::{Body, Message};

use super::policy::{Policy, Via};
use super::who::Context;
use super::OnCall;
use crate::channels::ChannelSet;
use crate::store::{
    Escalation, EscalationState, FireStep, MessageView, NewMessage, Notified, Override, StepRecord,
    Store,
};

/// How many due escalations one pass takes.
const BATCH: u32 = 100;

/// The config in force, as the runner needs it.
pub struct Snapshot {
    pub oncall: Arc<OnCall>,
    pub channels: Arc<ChannelSet>,
}

/// Run passes every `every` until the store closes.
pub fn spawn(
    store: Arc<dyn Store>,
    current: impl Fn() -> Snapshot + Send + Sync + 'static,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let current = Arc::new(current);
    crate::store::every(every, "escalation", move || {
        let (store, current) = (store.clone(), current.clone());
        async move { pass(&*store, &current()).await }
    })
}

/// One pass: fire every due step. How many this pass fired.
pub async fn pass(store: &dyn Store, now: &Snapshot) -> crate::store::Result<usize> {
    let due = store.due_escalations(BATCH).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let overrides = store.overrides(None).await?;
    let mut fired = 0;
    for e in due {
        let Some(view) = store.get_message(&e.id).await? else {
            // Retention pruned the message: the escalation has nothing to say.
            let f = complete(&e, "the message is gone (retention)");
            fired += usize::from(store.fire_escalation(f).await?);
            continue;
        };
        if let Some(reader) = read_by(store, &e, now).await? {
            store
                .stop_escalation(&e.root, EscalationState::Acknowledged, &reader)
                .await?;
            tracing::info!(message_id = %e.id, %reader, "escalation ended: the alert was read");
            continue;
        }
        let f = plan(store, &e, &view, now, &overrides).await?;
        let step = f.step;
        if store.fire_escalation(f).await? {
            fired += 1;
            crate::telemetry::events::escalation_step(&e.policy);
            tracing::info!(message_id = %e.id, policy = %e.policy, step, "escalation step fired");
        }
    }
    Ok(fired)
}

/// Who has read the alert of `e` (`read:NAME`, the directory's name where
/// known), when its policy stops on a read and a platform reports one.
async fn read_by(
    store: &dyn Store,
    e: &Escalation,
    now: &Snapshot,
) -> crate::store::Result<Option<String>> {
    let stops = now
        .oncall
        .policies
        .get(&e.policy)
        .is_some_and(|p| p.stop_when_read);
    if !stops {
        return Ok(None);
    }
    for (target, part) in store.sent_parts(&e.root).await? {
        let Some(resolved) = now.channels.resolve(&target) else {
            continue;
        };
        let Some(m) = resolved.members.iter().find(|m| m.key == part.destination) else {
            continue;
        };
        match m.dest.read_status(&part.sent).await {
            Ok(Some(status)) => {
                if let Some(user) = status.read.first() {
                    let who = now.oncall.people.by_platform_id(user).unwrap_or(user);
                    return Ok(Some(format!("read:{who}")));
                }
            }
            Ok(None) => {}
            // Not knowing who read it is no reason to stop escalating.
            Err(report) => tracing::debug!(message_id = %e.id, outcome = report.outcome.label(),
                "escalation: cannot ask who read the alert"),
        }
    }
    Ok(None)
}

fn complete(e: &Escalation, why: &str) -> FireStep {
    FireStep {
        id: e.id.clone(),
        step: e.next_step,
        record: StepRecord {
            notes: vec![why.to_string()],
            ..StepRecord::default()
        },
        messages: Vec::new(),
        next_due: None,
    }
}

/// What firing the next step of `e` means now.
pub async fn plan(
    store: &dyn Store,
    e: &Escalation,
    view: &MessageView,
    now: &Snapshot,
    overrides: &[Override],
) -> crate::store::Result<FireStep> {
    let now_ms = store.now_ms();
    let Some(policy) = now.oncall.policies.get(&e.policy) else {
        return Ok(complete(
            e,
            &format!("escalation policy `{}` is no longer configured", e.policy),
        ));
    };
    let Some((idx, round, step)) = policy.step(e.next_step) else {
        return Ok(complete(e, "no step left"));
    };
    let cx = Context {
        people: &now.oncall.people,
        schedules: &now.oncall.schedules,
        overrides,
        labels: &view.labels,
        annotations: &crate::store::Labels::new(),
        now_ms,
    };
    let mut record = StepRecord {
        policy_step: idx,
        round,
        ..StepRecord::default()
    };
    let mut messages = Vec::new();
    let text = step_text(view, policy, e, now_ms);
    for n in &step.notify {
        let r = cx.resolve(&n.to);
        record.notes.extend(r.notes);
        let via = match &n.via {
            Via::Channel(c) => format!("channel:{c}"),
            Via::Urgent(u) => format!("urgent:{}", u.as_str()),
        };
        if r.people.is_empty() {
            record.notes.push(format!("{via}: nobody to notify"));
            continue;
        }
        let made = match &n.via {
            Via::Channel(name) => channel_message(now, name, view, policy, e, &text, &r.people),
            Via::Urgent(kind) => urgent_message(store, now, view, *kind, &r.people).await?,
        };
        let nm = match made {
            Ok(nm) => nm,
            Err(why) => {
                record.notes.push(format!("{via}: {why}"));
                continue;
            }
        };
        record.notified.push(Notified {
            via,
            people: r.people,
            message_id: nm.id.clone(),
        });
        messages.push(nm);
    }
    let next = e.next_step + 1;
    Ok(FireStep {
        id: e.id.clone(),
        step: e.next_step,
        record,
        messages,
        next_due: policy
            .step(next)
            .map(|(_, _, s)| now_ms + s.after.as_millis() as i64),
    })
}

/// A step's message to a channel, addressed to `people`; `Err` says why
/// there is none.
fn channel_message(
    now: &Snapshot,
    name: &str,
    view: &MessageView,
    policy: &Policy,
    e: &Escalation,
    text: &str,
    people: &[String],
) -> Result<NewMessage, String> {
    let Some(ch) = now.channels.get(name) else {
        return Err("the channel is no longer configured".into());
    };
    let mut msg = Message::new(Body::Markdown {
        text: text.to_string(),
    });
    msg.title = Some(step_title(view, policy, e));
    now.oncall.mention(&mut msg, ch, people, true);
    let mut nm = NewMessage::new(ch.name.clone(), msg, ch.targets());
    nm.message.id = Some(nm.id.to_string());
    nm.origin = Some(e.root.clone());
    nm.source = Some(format!("escalation/{}", e.policy));
    Ok(nm)
}

/// A step's urgent push on the alert itself; the inner `Err` says why there
/// is none.
async fn urgent_message(
    store: &dyn Store,
    now: &Snapshot,
    view: &MessageView,
    kind: imrelay_sdk::UrgentKind,
    people: &[String],
) -> crate::store::Result<Result<NewMessage, String>> {
    let users = urgent_users(&now.oncall, now.channels.get(&view.channel), kind, people);
    if users.is_empty() {
        return Ok(Err(format!(
            "none of {} has an id on the platforms of channel `{}`",
            people.join(", "),
            view.channel
        )));
    }
    let text = Some(crate::lifecycle::urgent::default_text(&view.message));
    let (nm, plans) =
        crate::lifecycle::urgent::prepare(store, &now.channels, view, kind, users, text).await?;
    Ok(nm.ok_or_else(|| {
        plans
            .iter()
            .filter_map(|p| Some(format!("{}: {}", p.kind, p.reason.as_ref()?)))
            .collect::<Vec<_>>()
            .join("; ")
    }))
}

/// The platform ids of `people` on the platforms of the alert channel's
/// destinations that can push `kind`.
fn urgent_users(
    oncall: &OnCall,
    channel: Option<&crate::channels::Channel>,
    kind: imrelay_sdk::UrgentKind,
    people: &[String],
) -> Vec<String> {
    let Some(ch) = channel else {
        return Vec::new();
    };
    let mut pushers = ch.clone();
    pushers
        .destinations
        .retain(|d| d.dest.lifecycle().can_urgent(kind).is_ok());
    let mut msg = Message::text("");
    oncall.mention(&mut msg, &pushers, people, true);
    msg.recipients
}

fn step_title(view: &MessageView, policy: &Policy, e: &Escalation) -> String {
    format!(
        "[升级 Escalation {}/{}] {}",
        e.next_step + 1,
        policy.total_steps(),
        view.message.title_or_default()
    )
}

fn step_text(view: &MessageView, policy: &Policy, e: &Escalation, now_ms: i64) -> String {
    let minutes = (now_ms - e.started_at).max(0) / 60_000;
    let body = view.message.body.main_text().unwrap_or_default();
    format!(
        "{body}\n\n未确认已 {minutes} 分钟 · Not acknowledged for {minutes} min (policy {}, step {}/{}). \
         Acknowledge: `imrelay message ack {}`",
        policy.name,
        e.next_step + 1,
        policy.total_steps(),
        e.root
    )
}
