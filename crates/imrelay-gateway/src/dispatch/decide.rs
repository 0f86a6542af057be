//! What to do after a request: a pure function of the platform's answer, the
//! delivery's history and the channel's retry policy.
//!
//! No I/O and no clock: the time comes in as an argument, and so does the
//! random draw for the retry jitter, so every rule is tested with a table.
//! The executor (`super::executor`) carries a [`Decision`] out.

use std::time::Duration;

use imrelay_sdk::outcome::RecipientFailure;
use imrelay_sdk::{Outcome, Report};

use super::retry;
use crate::channels::RetryPolicy;
use crate::domain::attempt::AttemptOutcome;
use crate::store::{AttemptRecord, ChildDelivery, ChildState, DeadReason};

/// The outcome of the delivery's last recorded attempt, as far as the decision
/// cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Previous {
    /// No attempt recorded yet.
    None,
    /// The access token was rejected (after the SDK's own refresh).
    TokenRejected,
    /// Anything else.
    Other,
}

/// The stored outcome of a delivery's last attempt ([`crate::store::Claimed`]'s
/// `last_outcome`) read for the decision.
pub fn previous_of(last_outcome: Option<AttemptOutcome>) -> Previous {
    match last_outcome {
        None => Previous::None,
        Some(AttemptOutcome::RefreshToken) => Previous::TokenRejected,
        Some(_) => Previous::Other,
    }
}

/// Whether a recorded attempt was a permanent refusal.
pub fn attempt_is_permanent(a: &AttemptRecord) -> bool {
    a.outcome == AttemptOutcome::Permanent
}

/// Why a delivery waits without an attempt being counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The platform answered "rate limited, wait this long".
    Platform { wait: Duration },
    /// The destination's own quota (imrelay's limiter) is used up.
    Limiter,
    /// A recipient's quota at the destination (its per-user or per-chat
    /// limit) is used up.
    Recipient,
    /// The destination's circuit breaker is open.
    Breaker,
    /// The cluster-wide limiter (several instances) said not now.
    Cluster,
    /// An update waits for its thread's first message to be delivered.
    Thread,
}

/// Why a delivery is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadCause {
    /// The platform refused the message for good.
    Permanent,
    /// The token was rejected again on the retry after a rejection.
    TokenRejectedTwice,
    /// The channel's `max_attempts` failed attempts were made.
    AttemptsExhausted,
    /// The message is older than the channel's `max_age`.
    TooOld,
    /// The destination cannot express the message.
    Unrenderable,
}

/// What to do with a claimed delivery after one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// This part went through: record progress and send part `next`.
    NextPart { next: usize },
    /// All `parts` parts went through for every recipient.
    Delivered { parts: usize },
    /// All `parts` parts went through except for some recipients: this
    /// delivery is done and each of them gets a delivery of its own.
    Split {
        parts: usize,
        children: Vec<ChildDelivery>,
    },
    /// Transient failure: send again at `at` (a counted attempt).
    Retry { at: i64, delay: Duration },
    /// The token was rejected although the SDK had just refreshed it: one more
    /// try at once (counted); a second rejection in a row is permanent.
    RetryAfterTokenRejected { at: i64 },
    /// Not the message's fault: pending again from `at`, not an attempt.
    Requeue { at: i64, why: Wait },
    /// Will not be delivered.
    Dead {
        reason: DeadReason,
        cause: DeadCause,
    },
}

/// Everything [`decide`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The answer to the request just made.
    pub report: &'a Report,
    /// The delivery's last recorded outcome before this claim.
    pub previous: Previous,
    pub policy: &'a RetryPolicy,
    /// Failed (counted) attempts before this one.
    pub failed_before: u32,
    /// When the message was accepted (ms).
    pub created_at: i64,
    /// When the answer came (ms).
    pub now: i64,
    /// The part just sent (0-based) and how many the message has.
    pub part: usize,
    pub parts: usize,
    /// Recipients that failed in this claim so far, this report's included,
    /// each with the first part they missed (see [`note_failed`]).
    pub failed: &'a [(RecipientFailure, usize)],
    /// The destination's recent share of failed requests (widens backoff).
    pub error_rate: f64,
}

/// Add the recipients `report` says failed (on `part`) to `failed`, keeping
/// the first part each one missed.
pub fn note_failed(failed: &mut Vec<(RecipientFailure, usize)>, report: &Report, part: usize) {
    for f in &report.failed_recipients {
        if !failed.iter().any(|(x, _)| x.recipient == f.recipient) {
            failed.push((f.clone(), part));
        }
    }
}

/// Decide what follows a request. `draw` gives uniform numbers in `[0, 1)` for
/// the retry jitter.
pub fn decide(i: &Input<'_>, draw: &mut dyn FnMut() -> f64) -> Decision {
    match i.report.outcome {
        Outcome::Delivered if i.part + 1 < i.parts => Decision::NextPart { next: i.part + 1 },
        Outcome::Delivered if i.failed.is_empty() => Decision::Delivered { parts: i.parts },
        Outcome::Delivered => Decision::Split {
            parts: i.parts,
            children: children(i, draw),
        },
        Outcome::Retry { after } => retry_or_dead(i, after, draw),
        Outcome::RefreshToken if i.previous == Previous::TokenRejected => Decision::Dead {
            reason: reason_of(i.report),
            cause: DeadCause::TokenRejectedTwice,
        },
        Outcome::RefreshToken => Decision::RetryAfterTokenRejected { at: i.now },
        Outcome::RateLimited { wait } => Decision::Requeue {
            at: i.now + wait.as_millis() as i64,
            why: Wait::Platform { wait },
        },
        Outcome::Permanent => Decision::Dead {
            reason: reason_of(i.report),
            cause: DeadCause::Permanent,
        },
    }
}

/// A transient failure: retry with backoff, or dead when attempts or age are
/// used up.
fn retry_or_dead(i: &Input<'_>, hint: Option<Duration>, draw: &mut dyn FnMut() -> f64) -> Decision {
    let failed = i.failed_before.saturating_add(1);
    let age = Duration::from_millis((i.now - i.created_at).max(0) as u64);
    let (why, cause) = if failed >= i.policy.max_attempts.max(1) {
        (
            format!("gave up after {failed} attempts"),
            DeadCause::AttemptsExhausted,
        )
    } else if age >= i.policy.max_age {
        (
            format!(
                "gave up: the message is older than max_age ({} s)",
                i.policy.max_age.as_secs()
            ),
            DeadCause::TooOld,
        )
    } else {
        let delay = retry::delay(failed, i.policy, hint, i.error_rate, draw());
        return Decision::Retry {
            at: i.now + delay.as_millis() as i64,
            delay,
        };
    };
    Decision::Dead {
        reason: DeadReason {
            code: i.report.code.as_ref().map(|c| c.to_string()),
            reason: format!("{why}; last answer: {}", i.report.message),
        },
        cause,
    }
}

/// One delivery per failed recipient, starting at the first part it missed.
fn children(i: &Input<'_>, draw: &mut dyn FnMut() -> f64) -> Vec<ChildDelivery> {
    i.failed
        .iter()
        .map(|(f, first_missed)| ChildDelivery {
            recipients: vec![f.recipient.clone()],
            parts_done: *first_missed as u32,
            state: match f.outcome {
                Outcome::RateLimited { wait } => ChildState::Pending {
                    due_at: i.now + wait.as_millis() as i64,
                },
                Outcome::Retry { after } => ChildState::Retry {
                    due_at: i.now
                        + retry::delay(1, i.policy, after, i.error_rate, draw()).as_millis() as i64,
                },
                Outcome::RefreshToken | Outcome::Delivered => ChildState::Retry { due_at: i.now },
                Outcome::Permanent => ChildState::Dead(DeadReason {
                    code: None,
                    reason: f.reason.clone(),
                }),
            },
        })
        .collect()
}

/// The dead-letter reason of a refusal: the platform's code and message, and
/// what the code means when it is known.
pub fn reason_of(report: &Report) -> DeadReason {
    let mut reason = report.message.clone();
    if let Some(h) = &report.hint {
        reason.push_str(" -- ");
        reason.push_str(h);
    }
    DeadReason {
        code: report.code.as_ref().map(|c| c.to_string()),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imrelay_sdk::Code;

    const T0: i64 = 1_000_000;
    const NOW: i64 = T0 + 10_000;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            max_attempts: 5,
            max_age: Duration::from_secs(3600),
        }
    }

    fn rep(outcome: Outcome) -> Report {
        Report::new(outcome, "answer").with_code(Code::Int(7))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn dead(reason: &str, code: Option<&str>, cause: DeadCause) -> Decision {
        Decision::Dead {
            reason: DeadReason {
                code: code.map(str::to_string),
                reason: reason.to_string(),
            },
            cause,
        }
    }

    /// One row: the answer, the previous outcome, failed attempts before, age
    /// of the message (ms), part and parts, and what must follow.
    struct Row {
        name: &'static str,
        report: Report,
        previous: Previous,
        failed_before: u32,
        age_ms: i64,
        part: usize,
        parts: usize,
        want: Decision,
    }

    fn row(name: &'static str, report: Report, want: Decision) -> Row {
        Row {
            name,
            report,
            previous: Previous::None,
            failed_before: 0,
            age_ms: 10_000,
            part: 0,
            parts: 1,
            want,
        }
    }

    #[test]
    fn every_outcome_class_by_table() {
        let p = policy();
        let hour = 3_600_000;
        let rows =
            vec![
            row("delivered", Report::delivered(), Decision::Delivered { parts: 1 }),
            Row {
                part: 0,
                parts: 3,
                ..row(
                    "delivered, more parts",
                    Report::delivered(),
                    Decision::NextPart { next: 1 },
                )
            },
            Row {
                part: 2,
                parts: 3,
                ..row(
                    "delivered, last part",
                    Report::delivered(),
                    Decision::Delivered { parts: 3 },
                )
            },
            // Attempt 1 of backoff: ceiling 1 s, draw 0.5 -> 500 ms.
            row(
                "retry without retry-after",
                rep(Outcome::Retry { after: None }),
                Decision::Retry {
                    at: NOW + 500,
                    delay: Duration::from_millis(500),
                },
            ),
            // Attempt 3: ceiling 4 s -> 2 s.
            Row {
                failed_before: 2,
                ..row(
                    "retry, backoff grows with attempts",
                    rep(Outcome::Retry { after: None }),
                    Decision::Retry {
                        at: NOW + 2_000,
                        delay: secs(2),
                    },
                )
            },
            row(
                "retry-after is a floor",
                rep(Outcome::Retry {
                    after: Some(secs(30)),
                }),
                Decision::Retry {
                    at: NOW + 30_000,
                    delay: secs(30),
                },
            ),
            row(
                "retry-after of a day is capped at an hour",
                rep(Outcome::Retry {
                    after: Some(secs(86_400)),
                }),
                Decision::Retry {
                    at: NOW + 3_600_000,
                    delay: retry::MAX_HINT,
                },
            ),
            row(
                "token rejected first",
                rep(Outcome::RefreshToken),
                Decision::RetryAfterTokenRejected { at: NOW },
            ),
            Row {
                previous: Previous::Other,
                ..row(
                    "token rejected after another failure",
                    rep(Outcome::RefreshToken),
                    Decision::RetryAfterTokenRejected { at: NOW },
                )
            },
            Row {
                previous: Previous::TokenRejected,
                ..row(
                    "token rejected twice in a row",
                    rep(Outcome::RefreshToken).with_hint("invalid token; check the secret"),
                    dead(
                        "answer -- invalid token; check the secret",
                        Some("7"),
                        DeadCause::TokenRejectedTwice,
                    ),
                )
            },
            row(
                "rate limited waits the platform's time",
                rep(Outcome::RateLimited { wait: secs(600) }),
                Decision::Requeue {
                    at: NOW + 600_000,
                    why: Wait::Platform { wait: secs(600) },
                },
            ),
            Row {
                failed_before: 4,
                age_ms: 2 * hour,
                ..row(
                    "rate limited never counts, even past the limits",
                    rep(Outcome::RateLimited { wait: secs(1) }),
                    Decision::Requeue {
                        at: NOW + 1_000,
                        why: Wait::Platform { wait: secs(1) },
                    },
                )
            },
            Row {
                failed_before: 4,
                age_ms: 2 * hour,
                ..row(
                    "a first token rejection gets its one retry even past the limits",
                    rep(Outcome::RefreshToken),
                    Decision::RetryAfterTokenRejected { at: NOW },
                )
            },
            row(
                "rate limited without a wait is due at once",
                rep(Outcome::RateLimited {
                    wait: Duration::ZERO,
                }),
                Decision::Requeue {
                    at: NOW,
                    why: Wait::Platform {
                        wait: Duration::ZERO,
                    },
                },
            ),
            row(
                "permanent",
                rep(Outcome::Permanent),
                dead("answer", Some("7"), DeadCause::Permanent),
            ),
            Row {
                part: 1,
                parts: 3,
                ..row(
                    "permanent on a middle part",
                    rep(Outcome::Permanent),
                    dead("answer", Some("7"), DeadCause::Permanent),
                )
            },
            Row {
                failed_before: 4,
                ..row(
                    "attempts exhausted",
                    rep(Outcome::Retry { after: None }),
                    dead(
                        "gave up after 5 attempts; last answer: answer",
                        Some("7"),
                        DeadCause::AttemptsExhausted,
                    ),
                )
            },
            Row {
                failed_before: 3,
                ..row(
                    "one attempt left",
                    rep(Outcome::Retry { after: None }),
                    Decision::Retry {
                        at: NOW + 4_000,
                        delay: secs(4),
                    },
                )
            },
            Row {
                age_ms: hour,
                ..row(
                    "max age reached",
                    rep(Outcome::Retry { after: None }),
                    dead(
                        "gave up: the message is older than max_age (3600 s); last answer: answer",
                        Some("7"),
                        DeadCause::TooOld,
                    ),
                )
            },
            Row {
                age_ms: hour - 1,
                ..row(
                    "just under max age",
                    rep(Outcome::Retry { after: None }),
                    Decision::Retry {
                        at: NOW + 500,
                        delay: Duration::from_millis(500),
                    },
                )
            },
            Row {
                failed_before: 4,
                age_ms: 2 * hour,
                ..row(
                    "exhausted and too old: attempts named",
                    rep(Outcome::Retry { after: None }),
                    dead(
                        "gave up after 5 attempts; last answer: answer",
                        Some("7"),
                        DeadCause::AttemptsExhausted,
                    ),
                )
            },
            Row {
                age_ms: -5_000,
                ..row(
                    "a creation time ahead of the clock is age zero",
                    rep(Outcome::Retry { after: None }),
                    Decision::Retry {
                        at: NOW + 500,
                        delay: Duration::from_millis(500),
                    },
                )
            },
        ];
        for r in rows {
            let input = Input {
                report: &r.report,
                previous: r.previous,
                policy: &p,
                failed_before: r.failed_before,
                created_at: NOW - r.age_ms,
                now: NOW,
                part: r.part,
                parts: r.parts,
                failed: &[],
                error_rate: 0.0,
            };
            assert_eq!(decide(&input, &mut || 0.5), r.want, "{}", r.name);
        }
    }

    #[test]
    fn max_attempts_zero_or_one_gives_up_on_the_first_failure() {
        for max_attempts in [0, 1] {
            let p = RetryPolicy {
                max_attempts,
                ..policy()
            };
            let r = rep(Outcome::Retry { after: None });
            let input = Input {
                report: &r,
                previous: Previous::None,
                policy: &p,
                failed_before: 0,
                created_at: NOW,
                now: NOW,
                part: 0,
                parts: 1,
                failed: &[],
                error_rate: 0.0,
            };
            assert!(
                matches!(
                    decide(&input, &mut || 0.5),
                    Decision::Dead {
                        cause: DeadCause::AttemptsExhausted,
                        ..
                    }
                ),
                "max_attempts {max_attempts}"
            );
        }
    }

    #[test]
    fn a_failing_destination_widens_the_backoff() {
        let p = policy();
        let r = rep(Outcome::Retry { after: None });
        let at = |error_rate| {
            let input = Input {
                report: &r,
                previous: Previous::None,
                policy: &p,
                failed_before: 1,
                created_at: NOW,
                now: NOW,
                part: 0,
                parts: 1,
                failed: &[],
                error_rate,
            };
            decide(&input, &mut || 0.5)
        };
        assert_eq!(
            at(0.0),
            Decision::Retry {
                at: NOW + 1_000,
                delay: secs(1)
            }
        );
        assert_eq!(
            at(1.0),
            Decision::Retry {
                at: NOW + 4_000,
                delay: secs(4)
            }
        );
    }

    fn failure(recipient: &str, outcome: Outcome) -> RecipientFailure {
        RecipientFailure {
            recipient: recipient.into(),
            outcome,
            reason: format!("{recipient} failed"),
        }
    }

    #[test]
    fn partial_failures_split_per_recipient_at_the_first_missed_part() {
        let p = policy();
        let mut failed = Vec::new();
        // Part 0: u1 rate limited, u2 permanent; part 1: u1 again (kept at 0),
        // u3 transient, u4 token; part 2 clean.
        let mut r0 = Report::delivered();
        r0.failed_recipients = vec![
            failure("u1", Outcome::RateLimited { wait: secs(5) }),
            failure("u2", Outcome::Permanent),
        ];
        let mut r1 = Report::delivered();
        r1.failed_recipients = vec![
            failure("u1", Outcome::Retry { after: None }),
            failure(
                "u3",
                Outcome::Retry {
                    after: Some(secs(9)),
                },
            ),
            failure("u4", Outcome::RefreshToken),
        ];
        note_failed(&mut failed, &r0, 0);
        note_failed(&mut failed, &r1, 1);
        let last = Report::delivered();
        note_failed(&mut failed, &last, 2);
        let base = Input {
            report: &r1,
            previous: Previous::None,
            policy: &p,
            failed_before: 0,
            created_at: T0,
            now: NOW,
            part: 1,
            parts: 3,
            failed: &failed,
            error_rate: 0.0,
        };
        assert_eq!(
            decide(&base, &mut || 0.5),
            Decision::NextPart { next: 2 },
            "failures wait for the last part"
        );
        let end = Input {
            report: &last,
            part: 2,
            ..base
        };
        let Decision::Split { parts: 3, children } = decide(&end, &mut || 0.5) else {
            panic!("a split")
        };
        let got: Vec<(&str, u32, ChildState)> = children
            .iter()
            .map(|c| (c.recipients[0].as_str(), c.parts_done, c.state.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "u1",
                    0,
                    ChildState::Pending {
                        due_at: NOW + 5_000
                    }
                ),
                (
                    "u2",
                    0,
                    ChildState::Dead(DeadReason {
                        code: None,
                        reason: "u2 failed".into()
                    })
                ),
                (
                    "u3",
                    1,
                    ChildState::Retry {
                        due_at: NOW + 9_000
                    }
                ),
                ("u4", 1, ChildState::Retry { due_at: NOW }),
            ]
        );
    }

    #[test]
    fn stored_outcomes_are_read_in_one_place() {
        assert_eq!(previous_of(None), Previous::None);
        assert_eq!(
            previous_of(Some(AttemptOutcome::RefreshToken)),
            Previous::TokenRejected
        );
        assert_eq!(previous_of(Some(AttemptOutcome::Retry)), Previous::Other);
        let mut a = AttemptRecord::from_report(&rep(Outcome::Permanent), "k", 0, 0, 1);
        assert!(attempt_is_permanent(&a));
        a.outcome = AttemptOutcome::Retry;
        assert!(!attempt_is_permanent(&a));
    }
}
