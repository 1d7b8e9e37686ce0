//! The record of calls made under budget leases: queued in memory as they settle and
//! written by one task in batches (one statement per batch), so recording a call costs
//! the call no database write. Their money is already safe in the ledger (the lease
//! that covered them); this is the per-call history that spend views, `recent_calls`
//! and the anomaly watch read.
//!
//! Bounded: when the queue is full, settling waits for the writer. A crash loses at
//! most what was queued (the calls' cost is still charged through their lease).

use lockgate_store::budgets::MAX_CALL_BATCH;
use lockgate_store::{FinishedCall, Store};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Calls queued at most.
const QUEUE: usize = 65_536;

// Nearly every message is a call: boxing it would allocate once per call.
#[allow(clippy::large_enum_variant)]
enum Message {
    Call(FinishedCall),
    /// Write everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// The queue's sending side.
#[derive(Clone)]
pub struct CallLog {
    tx: mpsc::Sender<Message>,
}

impl CallLog {
    /// Starts the writer on the current runtime.
    pub fn start(store: Store) -> CallLog {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, rx));
        CallLog { tx }
    }

    pub async fn push(&self, call: FinishedCall) {
        if self.tx.send(Message::Call(call)).await.is_err() {
            tracing::warn!("the call log's writer has stopped; a call record is lost");
        }
    }

    /// Waits until everything queued so far is written (or the writer gave up).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write(store: Store, mut rx: mpsc::Receiver<Message>) {
    let mut batch = Vec::with_capacity(MAX_CALL_BATCH);
    let mut waiting = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Call(c) => batch.push(c),
                Message::Flush(done) => waiting.push(done),
            }
            next = if batch.len() < MAX_CALL_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let mut delay = Duration::from_millis(100);
        for attempt in 0..8 {
            match store.record_calls(&batch).await {
                Ok(()) => break,
                Err(e) if attempt < 7 => {
                    tracing::warn!(error = %e, calls = batch.len(), "recording model calls; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(error = %e, calls = batch.len(), "model call records lost (their cost is in their leases)");
                }
            }
        }
        batch.clear();
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}
