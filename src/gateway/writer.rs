//! Writes usage records in batches on a thread of its own: every waiting record goes into one
//! transaction, and each caller learns when its record is durable. Credits and budgets are
//! settled only after the commit, so the balance in memory always equals the ledger's sum.
//!
//! The writer owns only what it writes with (the hub's usage book and the gateway's budgets);
//! it stops when the last sender, held by the gateway, is dropped.

use tokio::sync::{mpsc, oneshot};

use super::limits::{BudgetHold, Budgets};
use crate::hub::{CapturedBodies, UsageBook};
use crate::ledger::{Hold, UsageRecord};
use crate::money::MicroUsd;

const MAX_BATCH: usize = 512;

/// One record to write, with the holds it settles.
pub struct Job {
    pub usage: UsageRecord,
    /// The call's bodies, when they are kept; sealed as they are written.
    pub bodies: Option<CapturedBodies>,
    pub hold: Option<Hold>,
    pub budget: Option<BudgetHold>,
    pub done: Option<oneshot::Sender<()>>,
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer on a thread of its own: it blocks on SQLite, so it stays off the
    /// async workers without a hop through the blocking pool for every batch.
    pub fn start(book: UsageBook, budgets: Budgets) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        let spawned = std::thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || run(&book, &budgets, rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "the usage writer could not start");
        }
        Writer { tx }
    }

    /// Queues a record and waits until it is committed (or the writer gave up on it).
    pub async fn record(&self, job: Job) {
        let (done, wait) = oneshot::channel();
        let job = Job {
            done: Some(done),
            ..job
        };
        if self.tx.send(job).is_ok() {
            let _ = wait.await;
        }
    }

    /// Queues a record without waiting (for paths that cannot wait, like a dropped stream).
    pub fn record_later(&self, job: Job) {
        let _ = self.tx.send(job);
    }
}

/// Takes whatever is waiting (up to a batch) and writes it in one transaction, until every
/// sender is gone.
fn run(book: &UsageBook, budgets: &Budgets, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        write_batch(book, budgets, batch);
    }
    tracing::debug!("usage writer stopped");
}

fn write_batch(book: &UsageBook, budgets: &Budgets, mut batch: Vec<Job>) {
    let (records, bodies): (Vec<UsageRecord>, Vec<Option<CapturedBodies>>) = batch
        .iter_mut()
        .map(|j| (j.usage.clone(), j.bodies.take()))
        .unzip();
    let ok = match book.commit(&records, &bodies) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, records = batch.len(), "usage records could not be written");
            false
        }
    };
    for job in batch {
        let (charge, cost) = if ok {
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
}
