//! `deliver` paces the parts of one message within the destination's quotas,
//! in tokio's paused time: no real waiting, exact instants.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use imrelay_sdk::message::Platform;
use imrelay_sdk::{deliver, Destination, Error, Message, Payload, Quota, Report};
use parking_lot::Mutex;
use tokio::time::Instant;

/// Renders `parts` payloads (to `recipients` each) and records when each send
/// started and ended; each send takes `latency`.
#[derive(Debug)]
struct Counting {
    parts: usize,
    recipients: Vec<String>,
    quotas: Vec<Quota>,
    per_recipient: Vec<Quota>,
    latency: Duration,
    /// (start, end) of each send.
    sends: Mutex<Vec<(Instant, Instant)>>,
}

impl Counting {
    fn new(parts: usize, quotas: Vec<Quota>) -> Self {
        Counting {
            parts,
            recipients: Vec::new(),
            quotas,
            per_recipient: Vec::new(),
            latency: Duration::from_millis(20),
            sends: Mutex::new(Vec::new()),
        }
    }

    /// The most sends a platform counting arrivals could see within `per`,
    /// in the worst case: each earlier send arriving as late as it can (its
    /// end), the current one as early as it can (its start).
    fn worst_window(&self, per: Duration) -> usize {
        let sends = self.sends.lock();
        sends
            .iter()
            .map(|(start, _)| {
                sends
                    .iter()
                    .filter(|(s, e)| *s <= *start && *e + per > *start)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

#[async_trait]
impl Destination for Counting {
    fn kind(&self) -> &'static str {
        "counting"
    }
    fn platform(&self) -> Platform {
        Platform::Webhook
    }
    fn id(&self) -> &str {
        "counting"
    }
    fn rate_limits(&self) -> Vec<Quota> {
        self.quotas.clone()
    }
    fn recipient_rate_limits(&self) -> Vec<Quota> {
        self.per_recipient.clone()
    }
    fn render(&self, _: &Message) -> Result<Vec<Payload>, Error> {
        Ok((0..self.parts)
            .map(|i| {
                let mut p = Payload::new(serde_json::json!({ "part": i }));
                p.recipients = self.recipients.clone();
                p
            })
            .collect())
    }
    async fn send(&self, _: &Payload) -> Report {
        let start = Instant::now();
        tokio::time::sleep(self.latency).await;
        self.sends.lock().push((start, Instant::now()));
        Report::delivered()
    }
}

#[tokio::test(start_paused = true)]
async fn eight_parts_to_a_five_per_second_destination_take_a_second() {
    let dest = Arc::new(Counting::new(8, vec![Quota::per_second(5)]));
    let t0 = Instant::now();
    let reports = deliver(&*dest, &Message::text("x")).await.unwrap();
    assert_eq!(reports.len(), 8);
    assert!(reports.iter().all(|r| r.outcome.is_delivered()));
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(1), "{took:?}");
    // Parts 1-5 back to back, 6-8 once the first ones are a second old: not
    // much slower than the quota allows.
    assert!(took < Duration::from_millis(1300), "{took:?}");
    assert!(dest.worst_window(Duration::from_secs(1)) <= 5);
}

#[tokio::test(start_paused = true)]
async fn parts_within_the_quota_are_not_delayed() {
    let dest = Arc::new(Counting::new(5, vec![Quota::per_second(5)]));
    let t0 = Instant::now();
    deliver(&*dest, &Message::text("x")).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(5 * 20));
}

#[tokio::test(start_paused = true)]
async fn every_quota_and_the_recipients_quota_are_kept() {
    // 20 a minute (a DingTalk robot): the 21st part waits out the minute.
    let dest = Arc::new(Counting::new(22, vec![Quota::per_minute(20)]));
    let t0 = Instant::now();
    deliver(&*dest, &Message::text("x")).await.unwrap();
    assert!(t0.elapsed() >= Duration::from_secs(60));
    assert!(dest.worst_window(Duration::from_secs(60)) <= 20);

    // 50/s for the app but 5/s per user (Feishu): the user's quota rules.
    let mut app = Counting::new(8, vec![Quota::per_second(50)]);
    app.recipients = vec!["ou_1".into()];
    app.per_recipient = vec![Quota::per_second(5)];
    let app = Arc::new(app);
    let t0 = Instant::now();
    deliver(&*app, &Message::text("x")).await.unwrap();
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert!(app.worst_window(Duration::from_secs(1)) <= 5);
}

#[tokio::test(start_paused = true)]
async fn a_failed_part_stops_the_rest_without_waiting() {
    #[derive(Debug)]
    struct Refusing;
    #[async_trait]
    impl Destination for Refusing {
        fn kind(&self) -> &'static str {
            "refusing"
        }
        fn platform(&self) -> Platform {
            Platform::Webhook
        }
        fn id(&self) -> &str {
            "refusing"
        }
        fn rate_limits(&self) -> Vec<Quota> {
            vec![Quota::per_second(1)]
        }
        fn render(&self, _: &Message) -> Result<Vec<Payload>, Error> {
            Ok(vec![Payload::new(serde_json::json!({})); 3])
        }
        async fn send(&self, _: &Payload) -> Report {
            Report::new(imrelay_sdk::Outcome::Permanent, "no")
        }
    }
    let t0 = Instant::now();
    let reports = deliver(&Refusing, &Message::text("x")).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(t0.elapsed(), Duration::ZERO);
}
