//! The lifecycle fields of `POST /v1/messages`: `thread`, `labels` and
//! `actions`, checked and attached to the message to enqueue.

use imrelay_sdk::lifecycle::Action;

use super::card::ActionKind;
use crate::domain::labels::valid_label_name;
use crate::http::problem::{join_path, Problem};
use crate::store::{Labels, NewMessage};

const MAX_THREAD: usize = 256;
const MAX_LABELS: usize = 64;
const MAX_LABEL_VALUE: usize = 1024;
const MAX_ACTIONS: usize = 6;

/// Check `thread`, `labels` and `actions` (field names under `at`) and put
/// them on `nm`. A message with actions and no thread is a thread of its
/// own, so the clicks on its card can update it.
pub fn attach(
    nm: &mut NewMessage,
    thread: Option<String>,
    labels: Labels,
    actions: Vec<Action>,
    at: &str,
) -> Result<(), Problem> {
    let f = |name: &str| join_path(at, name);
    if let Some(t) = &thread {
        if t.is_empty() || t.len() > MAX_THREAD || t.chars().any(char::is_control) {
            return Err(Problem::invalid(
                f("thread"),
                format!("a thread key is 1-{MAX_THREAD} bytes without control characters"),
            ));
        }
    }
    if labels.len() > MAX_LABELS {
        return Err(Problem::invalid(
            f("labels"),
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    for (name, value) in &labels {
        if !valid_label_name(name) {
            return Err(Problem::invalid(
                f(&format!("labels.{name}")),
                "label names are letters, digits and `_`, not starting with a digit (as in Prometheus)",
            ));
        }
        if value.len() > MAX_LABEL_VALUE {
            return Err(Problem::invalid(
                f(&format!("labels.{name}")),
                format!("a label value is at most {MAX_LABEL_VALUE} bytes"),
            ));
        }
    }
    if actions.len() > MAX_ACTIONS {
        return Err(Problem::invalid(
            f("actions"),
            format!("at most {MAX_ACTIONS} actions"),
        ));
    }
    for (i, a) in actions.iter().enumerate() {
        if ActionKind::of(&a.id).is_none() {
            return Err(Problem::invalid(
                f(&format!("actions[{i}].id")),
                format!("`{}` is not an action; use `ack`, `resolve` or `silence:DURATION` (e.g. `silence:1h`)", a.id),
            ));
        }
        if a.text.trim().is_empty() || a.text.chars().count() > 40 {
            return Err(Problem::invalid(
                f(&format!("actions[{i}].text")),
                "a button label is 1-40 characters",
            ));
        }
    }
    nm.thread = match thread {
        Some(t) => Some(t),
        None if !actions.is_empty() => Some(nm.id.to_string()),
        None => None,
    };
    nm.labels = labels;
    nm.message.actions = actions;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use imrelay_sdk::lifecycle::ActionStyle;
    use imrelay_sdk::Message;

    fn nm() -> NewMessage {
        NewMessage::new("ops", Message::text("x"), vec!["ops/a".parse().unwrap()])
    }

    fn action(id: &str) -> Action {
        Action {
            id: id.into(),
            text: "OK".into(),
            style: ActionStyle::Default,
        }
    }

    #[test]
    fn actions_without_a_thread_make_the_message_its_own_thread() {
        let mut m = nm();
        attach(&mut m, None, Labels::new(), vec![action("ack")], "").unwrap();
        assert_eq!(m.thread.as_deref(), Some(m.id.as_str()));
        let mut plain = nm();
        attach(&mut plain, None, Labels::new(), vec![], "").unwrap();
        assert_eq!(plain.thread, None);
    }

    #[test]
    fn bad_fields_are_named() {
        let bad_action =
            attach(&mut nm(), None, Labels::new(), vec![action("reboot")], "").unwrap_err();
        assert_eq!(bad_action.field.as_deref(), Some("actions[0].id"));
        let labels: Labels = [("1x".to_string(), "v".to_string())].into();
        let bad_label = attach(&mut nm(), None, labels, vec![], "messages[2]").unwrap_err();
        assert_eq!(bad_label.field.as_deref(), Some("messages[2].labels.1x"));
        let bad_thread =
            attach(&mut nm(), Some(String::new()), Labels::new(), vec![], "").unwrap_err();
        assert_eq!(bad_thread.field.as_deref(), Some("thread"));
    }
}
