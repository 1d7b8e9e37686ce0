//! Batching: many writers submit entries; one thread integrates them in batches (every
//! `interval`, or sooner when `max_batch` entries wait) and answers each writer with its
//! index and the checkpoint that includes it. One fsync round per batch instead of per
//! entry is what makes high append rates possible.

use crate::log::{Appended, Log, LogError};
use crate::storage::Storage;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The result a writer gets: its entry's index and the publishing checkpoint.
pub type Receipt = (u64, Appended);

struct Request {
    entry: Vec<u8>,
    reply: mpsc::SyncSender<Result<Receipt, String>>,
}

/// Called after each published batch with the batch's entries (e.g. to index them).
pub type OnPublish = Box<dyn FnMut(&Appended, &[Vec<u8>]) + Send>;

/// A handle to the integrating thread. Dropping every handle stops it after the
/// current batch.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Request>,
}

impl Batcher {
    /// Starts the integrating thread.
    pub fn spawn<S: Storage + 'static>(
        mut log: Log<S>,
        interval: Duration,
        max_batch: usize,
        mut on_publish: OnPublish,
    ) -> Batcher {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("lockgate-log-batcher".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let deadline = Instant::now() + interval;
                    let mut batch = vec![first];
                    while batch.len() < max_batch {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        match rx.recv_timeout(left) {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    let (entries, replies): (Vec<Vec<u8>>, Vec<_>) =
                        batch.into_iter().map(|r| (r.entry, r.reply)).unzip();
                    match log.append(&entries) {
                        Ok(appended) => {
                            on_publish(&appended, &entries);
                            for (i, reply) in replies.into_iter().enumerate() {
                                let _ = reply
                                    .send(Ok((appended.first_index + i as u64, appended.clone())));
                            }
                        }
                        Err(e) => {
                            let message = e.to_string();
                            for reply in replies {
                                let _ = reply.send(Err(message.clone()));
                            }
                        }
                    }
                }
            })
            .expect("spawn the batcher thread");
        Batcher { tx }
    }

    /// Submits one entry and waits until a checkpoint includes it.
    pub fn submit(&self, entry: Vec<u8>) -> Result<Receipt, LogError> {
        self.enqueue(entry)?.wait()
    }

    /// Submits one entry without waiting; [`Pending::wait`] returns its receipt.
    pub fn enqueue(&self, entry: Vec<u8>) -> Result<Pending, LogError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.tx
            .send(Request { entry, reply })
            .map_err(|_| LogError::Corrupt("the batcher has stopped".into()))?;
        Ok(Pending(rx))
    }
}

/// An entry submitted to a [`Batcher`], not yet known to be published.
pub struct Pending(mpsc::Receiver<Result<Receipt, String>>);

impl Pending {
    /// Waits until a checkpoint includes the entry.
    pub fn wait(self) -> Result<Receipt, LogError> {
        self.0
            .recv()
            .map_err(|_| LogError::Corrupt("the batcher stopped before answering".into()))?
            .map_err(LogError::Corrupt)
    }
}
