//! Group commit on PostgreSQL: callers hand their work to one task, which
//! writes what has gathered as one batch (one transaction, one commit) while
//! earlier batches are still in flight, and answers each caller after the
//! commit. The accept and acknowledgement paths each have one.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

/// Batches in flight at once: while they run, the next batch gathers. Well
/// below the pool's 20 connections, which claims and other writes need too.
const IN_FLIGHT: usize = 4;

/// A running group committer of `T`s.
pub(super) struct Group<T> {
    jobs: mpsc::UnboundedSender<T>,
    task: tokio::task::JoinHandle<()>,
}

impl<T: Send + 'static> Group<T> {
    /// Start the task. `weight` is what one job counts towards `max` per
    /// batch; `write` writes one batch and answers its callers.
    pub(super) fn start<W, F>(max: usize, weight: fn(&T) -> usize, write: W) -> Group<T>
    where
        W: Fn(Vec<T>) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let (jobs, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(rx, max, weight, Arc::new(write)));
        Group { jobs, task }
    }

    /// Hand a job over; `Err` gives it back when the task has stopped.
    pub(super) fn send(&self, job: T) -> Result<(), T> {
        self.jobs.send(job).map_err(|e| e.0)
    }

    pub(super) fn stop(&self) {
        self.task.abort();
    }
}

async fn run<T, W, F>(
    mut rx: mpsc::UnboundedReceiver<T>,
    max: usize,
    weight: fn(&T) -> usize,
    write: Arc<W>,
) where
    T: Send + 'static,
    W: Fn(Vec<T>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // A free slot first: while all are busy, callers queue up and the
        // next batch grows.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut size = weight(&first);
        let mut batch = vec![first];
        while size < max {
            match rx.try_recv() {
                Ok(job) => {
                    size += weight(&job);
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let done = write(batch);
        tokio::spawn(async move {
            done.await;
            drop(slot);
        });
    }
}
