//! Naming people indirectly: `oncall:dba` (whoever is on call on schedule
//! `dba`), `label:owner` (the person a message's `owner` label names), or a
//! person's directory name (`zhangsan`, or `person:zhangsan`).

use crate::domain::config::ConfigIssue;
use crate::store::{Labels, Override};

use super::people::Directory;
use super::schedule::Schedule;

/// One way of naming people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Person(String),
    OnCall(String),
    Label(String),
    Annotation(String),
}

/// A reference that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReference {
    #[error("`{0}` names nobody; write e.g. \"oncall:dba\", \"label:owner\" or \"zhangsan\"")]
    Nobody(String),
    #[error("`{text}`: `{kind}:` is not a kind of reference; use oncall:SCHEDULE, label:NAME, annotation:NAME or a person's name")]
    Kind { text: String, kind: String },
}

impl Who {
    /// Parse a reference; the error says what to write.
    pub fn parse(text: &str) -> Result<Who, BadReference> {
        let text = text.trim();
        let (kind, name) = text.split_once(':').unwrap_or(("person", text));
        if name.trim().is_empty() {
            return Err(BadReference::Nobody(text.into()));
        }
        match kind {
            "person" => Ok(Who::Person(name.into())),
            "oncall" => Ok(Who::OnCall(name.into())),
            "label" => Ok(Who::Label(name.into())),
            "annotation" => Ok(Who::Annotation(name.into())),
            _ => Err(BadReference::Kind {
                text: text.into(),
                kind: kind.into(),
            }),
        }
    }

    /// Check what the config alone can: the person or schedule exists.
    pub fn check(
        &self,
        at: &str,
        people: &Directory,
        schedules: &[Schedule],
        issues: &mut Vec<ConfigIssue>,
    ) {
        match self {
            Who::Person(p) if !people.contains(p) => issues.push(ConfigIssue::new(
                at,
                format!("`{p}` is not in [[people]]; add them there first"),
            )),
            Who::OnCall(s) if !schedules.iter().any(|x| &x.name == s) => {
                issues.push(ConfigIssue::new(
                    at,
                    format!("there is no schedule `{s}`; define it in [[schedules]]"),
                ))
            }
            _ => {}
        }
    }
}

/// Parse a list of references under `at`, pushing problems to `issues`.
pub fn parse_all(texts: &[String], at: &str, issues: &mut Vec<ConfigIssue>) -> Vec<Who> {
    texts
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            Who::parse(t)
                .map_err(|e| issues.push(ConfigIssue::new(format!("{at}[{i}]"), e.to_string())))
                .ok()
        })
        .collect()
}

/// What resolving references found: people by directory name, and notes on
/// what could not be resolved (shown on the message, never dropped silently).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub people: Vec<String>,
    pub notes: Vec<String>,
}

/// Everything references resolve against at one instant.
pub struct Context<'a> {
    pub people: &'a Directory,
    pub schedules: &'a [Schedule],
    pub overrides: &'a [Override],
    pub labels: &'a Labels,
    /// Annotations `annotation:` references read (none outside Alertmanager).
    pub annotations: &'a Labels,
    pub now_ms: i64,
}

impl Context<'_> {
    /// Resolve `refs` to people, in order, without repeats.
    pub fn resolve(&self, refs: &[Who]) -> Resolved {
        let mut out = Resolved::default();
        let add = |p: String, out: &mut Resolved| {
            if !out.people.contains(&p) {
                out.people.push(p);
            }
        };
        for r in refs {
            match r {
                Who::Person(p) if self.people.contains(p) => add(p.clone(), &mut out),
                Who::Person(p) => out.notes.push(format!("`{p}` is not in [[people]]")),
                Who::OnCall(s) => match self.schedules.iter().find(|x| &x.name == s) {
                    Some(sched) => match sched.on_call(self.now_ms, self.overrides) {
                        Some(shift) => add(shift.person, &mut out),
                        None => out
                            .notes
                            .push(format!("nobody is on call on schedule `{s}`")),
                    },
                    None => out.notes.push(format!("there is no schedule `{s}`")),
                },
                Who::Label(l) => self.named_by("label", l, self.labels.get(l), &mut out),
                Who::Annotation(a) => {
                    self.named_by("annotation", a, self.annotations.get(a), &mut out)
                }
            }
        }
        out
    }

    /// The people a label's (or annotation's) value names: `zhangsan`, or
    /// several, `zhangsan,lisi`.
    fn named_by(&self, kind: &str, name: &str, value: Option<&String>, out: &mut Resolved) {
        let Some(v) = value else {
            out.notes
                .push(format!("the message has no {kind} `{name}`"));
            return;
        };
        for person in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !self.people.contains(person) {
                out.notes.push(format!(
                    "{kind} {name}=\"{person}\" names nobody in [[people]]"
                ));
            } else if !out.people.iter().any(|p| p == person) {
                out.people.push(person.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oncall::people::PersonConfig;
    use crate::oncall::schedule::ScheduleConfig;

    #[test]
    fn references_parse_and_say_what_is_wrong() {
        assert_eq!(Who::parse("oncall:dba"), Ok(Who::OnCall("dba".into())));
        assert_eq!(Who::parse("label:owner"), Ok(Who::Label("owner".into())));
        assert_eq!(Who::parse("zhangsan"), Ok(Who::Person("zhangsan".into())));
        assert_eq!(Who::parse("person:lisi"), Ok(Who::Person("lisi".into())));
        assert!(Who::parse("team:db")
            .unwrap_err()
            .to_string()
            .contains("oncall:SCHEDULE"));
        assert!(Who::parse("oncall:").is_err());
    }

    #[test]
    fn an_annotation_names_people_too() {
        let people: Vec<PersonConfig> = vec![toml::from_str("name = \"zhangsan\"").unwrap()];
        let dir = Directory::compile(&people, &mut Vec::new());
        let annotations: Labels = [("owner".to_string(), "zhangsan".to_string())].into();
        let cx = Context {
            people: &dir,
            schedules: &[],
            overrides: &[],
            labels: &Labels::new(),
            annotations: &annotations,
            now_ms: 0,
        };
        let r = cx.resolve(&[
            Who::parse("annotation:owner").unwrap(),
            Who::Label("owner".into()),
        ]);
        assert_eq!(r.people, ["zhangsan"]);
        assert_eq!(r.notes, ["the message has no label `owner`"]);
    }

    #[test]
    fn labels_and_schedules_resolve_and_unknowns_become_notes() {
        let people: Vec<PersonConfig> = ["zhangsan", "lisi"]
            .iter()
            .map(|n| toml::from_str(&format!("name = \"{n}\"")).unwrap())
            .collect();
        let dir = Directory::compile(&people, &mut Vec::new());
        let sc: ScheduleConfig = toml::from_str(
            r#"
            name = "dba"
            [[layers]]
            rotation = "daily"
            start = "2026-01-01"
            people = ["lisi"]
        "#,
        )
        .unwrap();
        let schedules = vec![Schedule::compile(&sc, 0, &dir, &mut Vec::new()).unwrap()];
        let labels: Labels = [("owner".to_string(), "zhangsan,ghost".to_string())].into();
        let cx = Context {
            people: &dir,
            schedules: &schedules,
            overrides: &[],
            labels: &labels,
            annotations: &Labels::new(),
            now_ms: "2026-12-01T12:00:00Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_millisecond(),
        };
        let r = cx.resolve(&[
            Who::Label("owner".into()),
            Who::OnCall("dba".into()),
            Who::Person("lisi".into()),
            Who::Label("team".into()),
        ]);
        assert_eq!(r.people, ["zhangsan", "lisi"]);
        assert_eq!(
            r.notes,
            [
                "label owner=\"ghost\" names nobody in [[people]]",
                "the message has no label `team`"
            ]
        );
    }
}
