//! Accept-to-delivered latency for the console's overview: for each
//! delivery delivered in a window, the time from its message's acceptance
//! (`messages.created_at`) to the end of its last successful request
//! (`attempts.finished_at`), and the percentiles of those times. Shared SQL
//! for SQLite and PostgreSQL; the percentiles are taken in Rust (SQLite has
//! no percentile function).

use serde::Serialize;

use super::rows::Cols;
use super::sql::{args, Arg, Conn};
use super::Result;

/// Percentiles of accept-to-delivered times (ms), by the nearest-rank rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Latency {
    /// Deliveries counted.
    pub count: u64,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    pub p99_ms: Option<i64>,
}

impl Latency {
    /// The percentiles of `ms` (sorted ascending).
    pub fn of_sorted(ms: &[i64]) -> Latency {
        // Nearest rank: the smallest value with at least p% of values at or
        // below it.
        let rank = |p: u64| -> Option<i64> {
            let n = ms.len() as u64;
            if n == 0 {
                return None;
            }
            let k = (p * n).div_ceil(100).clamp(1, n);
            ms.get(k as usize - 1).copied()
        };
        Latency {
            count: ms.len() as u64,
            p50_ms: rank(50),
            p90_ms: rank(90),
            p99_ms: rank(99),
        }
    }
}

const DELIVERED_AFTER: &str = "SELECT MAX(a.finished_at) - m.created_at AS ms
     FROM attempts a JOIN deliveries d ON d.id = a.delivery_id JOIN messages m ON m.id = d.message_id
     WHERE a.outcome = 'delivered' AND d.state = 'done' AND a.finished_at >= $1
       AND ($2 OR m.channel IN_LIST($3))
     GROUP BY d.id, m.created_at";

/// The latency of deliveries whose last successful request finished at or
/// after `since`, of `channels` (`None`: every channel).
pub(super) async fn latency<C: Conn>(
    c: &mut C,
    since: i64,
    channels: Option<&[String]>,
) -> Result<Latency> {
    let list = channels.map(<[String]>::to_vec).unwrap_or_default();
    let rows = c
        .fetch(DELIVERED_AFTER, args![since, channels.is_none(), list])
        .await?;
    let mut ms = rows
        .iter()
        .map(|r| r.int("ms").map(|v| v.max(0)))
        .collect::<Result<Vec<i64>>>()?;
    ms.sort_unstable();
    Ok(Latency::of_sorted(&ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(Latency::of_sorted(&[]), Latency::default());
        let one = Latency::of_sorted(&[7]);
        assert_eq!(
            (one.p50_ms, one.p90_ms, one.p99_ms),
            (Some(7), Some(7), Some(7))
        );
        let hundred: Vec<i64> = (1..=100).collect();
        let l = Latency::of_sorted(&hundred);
        assert_eq!(
            (l.count, l.p50_ms, l.p90_ms, l.p99_ms),
            (100, Some(50), Some(90), Some(99))
        );
        let ten: Vec<i64> = (1..=10).map(|i| i * 10).collect();
        let l = Latency::of_sorted(&ten);
        assert_eq!(
            (l.p50_ms, l.p90_ms, l.p99_ms),
            (Some(50), Some(90), Some(100))
        );
    }
}
