//! Claim leases: short, so a dead dispatcher's work is taken over soon, and
//! kept alive by a heartbeat while a send runs, so a slow platform never lets
//! a second dispatcher send the same delivery.

use std::sync::Arc;
use std::time::Duration;

use crate::dispatch_common::{wait_for, Harness};
use async_trait::async_trait;
use imrelay_gateway::channels::{Channel, ChannelSet, DestinationEntry};
use imrelay_gateway::dispatch::DispatchConfig;
use imrelay_gateway::store::sqlite::SqliteStore;
use imrelay_gateway::store::{MessageState, NewMessage, Store, StoreOptions};
use imrelay_sdk::clock::{Clock, FixedClock, SystemClock};
use imrelay_sdk::message::Platform;
use imrelay_sdk::{Destination, Message, Payload, Quota, Report};
use parking_lot::Mutex;

/// A destination that answers after `delay` (never, with `None`) and notes
/// when each request started.
#[derive(Debug)]
struct Slow {
    delay: Option<Duration>,
    started: Mutex<Vec<tokio::time::Instant>>,
}

impl Slow {
    fn new(delay: Option<Duration>) -> Arc<Self> {
        Arc::new(Slow {
            delay,
            started: Mutex::default(),
        })
    }
    fn sent(&self) -> usize {
        self.started.lock().len()
    }
}

#[async_trait]
impl Destination for Slow {
    fn kind(&self) -> &'static str {
        "slow"
    }
    fn platform(&self) -> Platform {
        Platform::Webhook
    }
    fn id(&self) -> &str {
        "slow:1"
    }
    fn rate_limits(&self) -> Vec<Quota> {
        vec![]
    }
    fn render(&self, _: &Message) -> Result<Vec<Payload>, imrelay_sdk::Error> {
        Ok(vec![Payload::new(serde_json::json!({}))])
    }
    async fn send(&self, _: &Payload) -> Report {
        self.started.lock().push(tokio::time::Instant::now());
        match self.delay {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
        Report::delivered()
    }
}

fn set(dest: Arc<Slow>) -> ChannelSet {
    ChannelSet::new([Channel::new("app", vec![DestinationEntry::new(dest)])])
}

async fn store_with(dir: &tempfile::TempDir, clock: Arc<dyn Clock>) -> Arc<dyn Store> {
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    Arc::new(
        SqliteStore::open(StoreOptions::new(url).with_clock(clock))
            .await
            .unwrap(),
    )
}

async fn enqueue(store: &Arc<dyn Store>) -> String {
    let m = NewMessage::new(
        "app",
        Message::text("x"),
        vec!["app/slow:1".parse().unwrap()],
    );
    store.enqueue(vec![m]).await.unwrap()[0]
        .accepted_id()
        .unwrap()
        .to_string()
}

async fn state(store: &Arc<dyn Store>, id: &str) -> MessageState {
    store.get_message(id).await.unwrap().unwrap().state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_longer_than_the_lease_is_not_taken_over_while_its_dispatcher_lives() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(&dir, Arc::new(SystemClock)).await;
    let cfg = |owner: &str| DispatchConfig {
        owner: owner.into(),
        lease: Duration::from_secs(1),
        send_timeout: Duration::from_secs(20),
        idle_poll: Duration::from_millis(50),
        ..DispatchConfig::default()
    };
    let slow = Slow::new(Some(Duration::from_millis(3_500)));
    let mut a = Harness::start_on(
        tempfile::tempdir().unwrap(),
        store.clone(),
        set(slow.clone()),
        cfg("a"),
    );
    let id = enqueue(&store).await;
    wait_for(Duration::from_secs(5), "a to send", || async {
        slow.sent() == 1
    })
    .await;
    let quick = Slow::new(Some(Duration::ZERO));
    let mut b = Harness::start_on(
        tempfile::tempdir().unwrap(),
        store.clone(),
        set(quick.clone()),
        cfg("b"),
    );
    // Three and a half leases pass while a's send runs.
    wait_for(Duration::from_secs(10), "a's send to finish", || async {
        state(&store, &id).await == MessageState::Delivered
    })
    .await;
    assert_eq!(quick.sent(), 0, "b never took a's live claim");
    assert_eq!(slow.sent(), 1);
    let v = store.get_message(&id).await.unwrap().unwrap();
    assert_eq!(v.deliveries[0].history.len(), 1);
    a.stop().await;
    b.stop().await;
}

/// The clock is injected (store and dispatchers read it), so the lease runs
/// out when the test says, not after 15 real seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_dispatchers_claim_is_taken_over_after_the_default_lease() {
    let clock = Arc::new(FixedClock::new(1_700_000_000_000));
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(&dir, clock.clone()).await;
    // The defaults, but for the clock and a quick poll.
    let cfg = |owner: &str| DispatchConfig {
        owner: owner.into(),
        idle_poll: Duration::from_millis(20),
        ..DispatchConfig::new(clock.clone())
    };
    let lease = cfg("x").lease;
    assert_eq!(lease, Duration::from_secs(15), "short by default");

    let hung = Slow::new(None);
    let mut a = Harness::start_on(
        tempfile::tempdir().unwrap(),
        store.clone(),
        set(hung.clone()),
        cfg("a"),
    );
    let id = enqueue(&store).await;
    wait_for(Duration::from_secs(5), "a to send", || async {
        hung.sent() == 1
    })
    .await;
    let claimed_at = clock.now_ms();
    // Killed mid-send, as by SIGKILL: nothing released.
    a.kill().await;

    let quick = Slow::new(Some(Duration::ZERO));
    let mut b = Harness::start_on(
        tempfile::tempdir().unwrap(),
        store.clone(),
        set(quick.clone()),
        cfg("b"),
    );
    let lease_ms = lease.as_millis() as i64;
    clock.set_ms(claimed_at + lease_ms - 100);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(quick.sent(), 0, "not while the dead one's lease holds");
    clock.set_ms(claimed_at + lease_ms);
    wait_for(
        Duration::from_secs(5),
        "b to take the claim over when the lease ran out",
        || async { quick.sent() == 1 },
    )
    .await;
    wait_for(Duration::from_secs(5), "delivered", || async {
        state(&store, &id).await == MessageState::Delivered
    })
    .await;
    b.stop().await;
}
