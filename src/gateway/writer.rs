//! Writes usage records in batches on a thread of its own: every waiting record goes into one
//! transaction, and each caller learns when its record is durable. Credits and budgets are
//! settled only after the commit, so the balance in memory always equals the ledger's sum.
//!
//! Kept bodies are sealed and stored after that, gathered over a short while into one
//! transaction of their own, so keeping them costs no caller any time.
//!
//! A call with no other in flight writes its own record on its worker instead: batching
//! would gain nothing, and the hand-off to the writer thread and back would cost two thread
//! wake-ups, which on an idle machine are the larger part of what the Hub adds to a call.
//!
//! The writer owns only what it writes with (the hub's usage book and the gateway's budgets);
//! it stops when the last sender, held by the gateway, is dropped.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::limits::{BudgetHold, Budgets};
use crate::hub::{CapturedBodies, UsageBook};
use crate::ledger::{Hold, UsageRecord};
use crate::money::MicroUsd;

const MAX_BATCH: usize = 512;
/// Kept bodies wait at most this long to be stored, or until this many bytes gather.
const BODIES_WAIT: Duration = Duration::from_millis(50);
const BODIES_BYTES: usize = 8 * 1024 * 1024;
/// Bodies stored per transaction, between which waiting records are committed.
const BODIES_PER_SLICE: usize = 16;
/// With no record waiting, bodies go a few at a time this far apart: a lone call writes its
/// record on its worker, not through this queue, and waits for the usage connection while a
/// slice holds it. Back to back, slices held it for milliseconds every time bodies were due.
const IDLE_SLICE: usize = 4;
const IDLE_GAP: Duration = Duration::from_micros(500);

/// One record to write, with the holds it settles.
pub struct Job {
    pub usage: UsageRecord,
    /// The call's bodies, when they are kept; sealed as they are written.
    pub bodies: Option<CapturedBodies>,
    pub hold: Option<Hold>,
    pub budget: Option<BudgetHold>,
    pub done: Option<oneshot::Sender<()>>,
}

/// What the writer thread is handed: a record to write, or the kept bodies of records
/// already written on a worker. Records go by value: they are nearly every message, and
/// boxing them would cost an allocation per call.
#[allow(clippy::large_enum_variant)]
enum Work {
    Record(Job),
    Bodies(Vec<(i64, CapturedBodies)>),
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Work>,
    book: Arc<UsageBook>,
    budgets: Budgets,
}

impl Writer {
    /// Starts the writer on a thread of its own: it blocks on SQLite, so it stays off the
    /// async workers without a hop through the blocking pool for every batch.
    pub fn start(book: UsageBook, budgets: Budgets) -> Writer {
        let (tx, rx) = mpsc::channel();
        let book = Arc::new(book);
        let (thread_book, thread_budgets) = (book.clone(), budgets.clone());
        let spawned = std::thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || run(&thread_book, &thread_budgets, rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "the usage writer could not start");
        }
        Writer { tx, book, budgets }
    }

    /// Queues a record and waits until it is committed (or the writer gave up on it).
    async fn record(&self, job: Job) {
        let (done, wait) = oneshot::channel();
        let job = Job {
            done: Some(done),
            ..job
        };
        if self.tx.send(Work::Record(job)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes a record durably: on the calling thread when its call is `alone` (no other in
    /// flight), else through the writer thread's batches.
    pub async fn write(&self, job: Job, alone: bool) {
        if alone {
            self.record_now(job);
        } else {
            self.record(job).await;
        }
    }

    /// Writes a record on the calling thread, for a call with no other in flight: one small
    /// transaction, during which this worker has nothing else to do. Its kept bodies go to
    /// the writer thread, to be sealed and stored off the call's path as usual.
    fn record_now(&self, job: Job) {
        let kept = write_batch(&self.book, &self.budgets, vec![job]);
        if !kept.is_empty() {
            let _ = self.tx.send(Work::Bodies(kept));
        }
    }

    /// Queues a record without waiting (for paths that cannot wait, like a dropped stream).
    pub fn record_later(&self, job: Job) {
        let _ = self.tx.send(Work::Record(job));
    }
}

/// Takes whatever is waiting (up to a batch) and writes it in one transaction, until every
/// sender is gone. Kept bodies are stored once they have waited long enough or grown large,
/// a slice at a time with the records that arrived meanwhile committed in between, so a
/// record never waits behind more than one small slice of bodies.
fn run(book: &UsageBook, budgets: &Budgets, rx: mpsc::Receiver<Work>) {
    let mut bodies = Bodies::default();
    loop {
        let first = if bodies.is_due() {
            match rx.try_recv() {
                Ok(job) => Some(job),
                Err(mpsc::TryRecvError::Empty) => {
                    bodies.store_slice(book, IDLE_SLICE);
                    match rx.recv_timeout(IDLE_GAP) {
                        Ok(job) => Some(job),
                        Err(mpsc::RecvTimeoutError::Timeout) => continue,
                        Err(mpsc::RecvTimeoutError::Disconnected) => None,
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => None,
            }
        } else if bodies.is_empty() {
            rx.recv().ok()
        } else {
            match rx.recv_timeout(bodies.wait_left()) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            }
        };
        let Some(first) = first else { break };
        let mut batch = Vec::new();
        take(first, &mut batch, &mut bodies);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(work) => take(work, &mut batch, &mut bodies),
                Err(_) => break,
            }
        }
        let records = batch.len();
        if !batch.is_empty() {
            for (id, b) in write_batch(book, budgets, batch) {
                bodies.add(id, b);
            }
        }
        // At least as many bodies go as records came, so under a steady stream of records
        // the bodies still drain.
        if bodies.is_due() {
            bodies.store_slice(book, records.max(BODIES_PER_SLICE));
        }
    }
    while !bodies.is_empty() {
        bodies.store_slice(book, BODIES_PER_SLICE);
    }
    tracing::debug!("usage writer stopped");
}

/// Adds a record to the batch, or bodies written on a worker to those waiting.
fn take(work: Work, batch: &mut Vec<Job>, bodies: &mut Bodies) {
    match work {
        Work::Record(job) => batch.push(job),
        Work::Bodies(kept) => kept.into_iter().for_each(|(id, b)| bodies.add(id, b)),
    }
}

/// Bodies of committed records, waiting to be sealed and stored together.
#[derive(Default)]
struct Bodies {
    waiting: Vec<(i64, CapturedBodies)>,
    bytes: usize,
    since: Option<Instant>,
}

impl Bodies {
    fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    fn add(&mut self, id: i64, bodies: CapturedBodies) {
        self.bytes += bodies.request.len() + bodies.response.len();
        self.since.get_or_insert_with(Instant::now);
        self.waiting.push((id, bodies));
    }

    fn wait_left(&self) -> Duration {
        self.since
            .map_or(Duration::ZERO, |t| BODIES_WAIT.saturating_sub(t.elapsed()))
    }

    fn is_due(&self) -> bool {
        self.bytes >= BODIES_BYTES || (!self.is_empty() && self.wait_left().is_zero())
    }

    /// Seals and stores the oldest `count` waiting bodies in one transaction.
    fn store_slice(&mut self, book: &UsageBook, count: usize) {
        let take = self.waiting.len().min(count);
        let slice: Vec<(i64, CapturedBodies)> = self.waiting.drain(..take).collect();
        let bytes: usize = slice
            .iter()
            .map(|(_, b)| b.request.len() + b.response.len())
            .sum();
        self.bytes = self.bytes.saturating_sub(bytes);
        if self.waiting.is_empty() {
            self.bytes = 0;
            self.since = None;
        }
        if let Err(e) = book.keep_bodies(slice) {
            tracing::error!(error = %e, "request bodies could not be kept");
        }
    }
}

/// Commits the batch's records, settles their holds and budgets, tells each waiting caller,
/// and returns the bodies to keep, by record id.
fn write_batch(
    book: &UsageBook,
    budgets: &Budgets,
    mut batch: Vec<Job>,
) -> Vec<(i64, CapturedBodies)> {
    let bodies: Vec<(usize, CapturedBodies)> = batch
        .iter_mut()
        .enumerate()
        .filter_map(|(i, j)| j.bodies.take().map(|b| (i, b)))
        .collect();
    let ids = match book.commit(batch.iter().map(|j| &j.usage)) {
        Ok(ids) => Some(ids),
        Err(e) => {
            tracing::error!(error = %e, records = batch.len(), "usage records could not be written");
            None
        }
    };
    for job in batch {
        let (charge, cost) = if ids.is_some() {
            (job.usage.charge(), job.usage.cost.unwrap_or_default())
        } else {
            (MicroUsd::ZERO, MicroUsd::ZERO)
        };
        book.settle(job.hold, charge);
        if let Some(app) = &job.usage.app_id {
            budgets.settle(app, job.budget, cost);
        }
        if let Some(done) = job.done {
            let _ = done.send(());
        }
    }
    let Some(ids) = ids else {
        return Vec::new();
    };
    bodies
        .into_iter()
        .filter_map(|(i, b)| Some((*ids.get(i)?, b)))
        .collect()
}
