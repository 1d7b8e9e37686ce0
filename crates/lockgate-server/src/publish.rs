//! Every approval, and every merge the queue makes, goes into the transparency log.
//!
//! Approvals are committed to the ledger first (that is what makes them count), then a
//! publisher task appends those not yet logged to the log directory (`[log] dir`) in
//! batches and records each one's index back on the approval. A change of state (an
//! approval turned into a change request) clears the index, so the new state is a new
//! entry. With several replicas, whichever holds the log's writer lock publishes for
//! all of them (the ledger is shared); the others find the lock busy and leave it.
//! Publishing is at-least-once: a crash between the append and the index update logs
//! that approval again on restart (the entry carries the approval's id and time, so
//! a monitor sees the repeat for what it is); nothing is ever left out.

use crate::AppState;
use lockgate_log::dir::{LogDir, WriterLock};
use lockgate_log::log::{Log, LogError};
use lockgate_log::storage::DirStorage;
use lockgate_store::{ApprovalRecord, MergeRecord};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `_type` of an approval entry.
pub const APPROVAL_ENTRY_TYPE: &str = "https://lockgate.dev/approval/v1";

/// Most approvals in one log batch.
const BATCH: u32 = 500;

/// An approval as logged: who said what about which exact head, when, through which
/// channel. The comment is represented by its digest (it may hold anything).
#[derive(Debug, Serialize)]
pub struct ApprovalEntry<'a> {
    #[serde(rename = "_type")]
    pub kind: &'static str,
    pub approval_id: &'a str,
    pub approver: &'a str,
    pub change_ref: &'a str,
    pub comment_sha256: String,
    pub created_ms: i64,
    pub head_sha: &'a str,
    pub repo: &'a str,
    pub source: &'a str,
    pub state: &'static str,
}

impl<'a> ApprovalEntry<'a> {
    pub fn new(a: &'a ApprovalRecord) -> ApprovalEntry<'a> {
        ApprovalEntry {
            kind: APPROVAL_ENTRY_TYPE,
            approval_id: &a.id,
            approver: &a.approver,
            change_ref: &a.change_ref,
            comment_sha256: hex::encode(Sha256::digest(a.comment.as_bytes())),
            created_ms: a.created_ms,
            head_sha: &a.head_sha,
            repo: &a.repo,
            source: &a.source,
            state: a.state.as_str(),
        }
    }

    /// The entry's bytes (JSON, fields in a fixed order).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain data serializes")
    }
}

/// The `_type` of a merge entry.
pub const MERGE_ENTRY_TYPE: &str = "https://lockgate.dev/merge/v1";

/// A merge as logged: which change head landed on which branch as which commit, built on
/// which tip, by which method, after which re-check (its input digest).
#[derive(Debug, Serialize)]
pub struct MergeEntry<'a> {
    #[serde(rename = "_type")]
    pub kind: &'static str,
    pub change_ref: &'a str,
    pub check_digest: &'a str,
    pub created_ms: i64,
    pub decision_id: &'a str,
    pub head_sha: &'a str,
    pub merge_id: &'a str,
    pub merged_sha: &'a str,
    pub method: &'a str,
    pub repo: &'a str,
    pub target: &'a str,
    pub target_sha: &'a str,
}

impl<'a> MergeEntry<'a> {
    pub fn new(m: &'a MergeRecord) -> MergeEntry<'a> {
        MergeEntry {
            kind: MERGE_ENTRY_TYPE,
            change_ref: &m.change_ref,
            check_digest: &m.check_digest,
            created_ms: m.created_ms,
            decision_id: &m.decision_id,
            head_sha: &m.head_sha,
            merge_id: &m.id,
            merged_sha: &m.merged_sha,
            method: &m.method,
            repo: &m.repo,
            target: &m.target,
            target_sha: &m.target_sha,
        }
    }

    /// The entry's bytes (JSON, fields in a fixed order).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain data serializes")
    }
}

/// Creates the log directory when it does not exist yet.
pub fn ensure_log(dir: &std::path::Path, origin: &str) -> Result<(), LogError> {
    if dir.join("log.key").exists() {
        return Ok(());
    }
    LogDir::init(dir, origin).map(|_| ())
}

/// The log writer this replica holds, once it has the lock.
type Writer = Arc<Mutex<Option<(Log<DirStorage>, WriterLock)>>>;

/// Publishes unlogged approvals until the server stops: at once when an approval is
/// recorded ([`AppState::log_wakeup`]), and every `interval` (for other replicas' and
/// for retries).
pub async fn run(state: Arc<AppState>, dir: PathBuf, interval: Duration) {
    let writer: Writer = Arc::default();
    loop {
        tokio::select! {
            _ = state.log_wakeup.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
        // A short pause gathers the approvals of a burst into one batch.
        tokio::time::sleep(Duration::from_millis(20)).await;
        while let Ok(published) = publish_once(&state, &dir, &writer).await {
            if published < BATCH as usize {
                break;
            }
        }
    }
}

/// Publishes whatever is still unlogged (at shutdown).
pub async fn flush(state: &AppState, dir: &std::path::Path) {
    let writer: Writer = Arc::default();
    while let Ok(published) = publish_once(state, dir, &writer).await {
        if published < BATCH as usize {
            break;
        }
    }
}

/// Appends one batch of unlogged approvals, then one of unlogged merges; how many
/// were published (the larger batch, so callers loop while either is full).
async fn publish_once(
    state: &AppState,
    dir: &std::path::Path,
    writer: &Writer,
) -> Result<usize, ()> {
    let approvals = publish_approvals(state, dir, writer).await?;
    let merges = publish_merges(state, dir, writer).await?;
    Ok(approvals.max(merges))
}

async fn publish_approvals(
    state: &AppState,
    dir: &std::path::Path,
    writer: &Writer,
) -> Result<usize, ()> {
    let pending = match state.store.unlogged_approvals(BATCH).await {
        Ok(p) if p.is_empty() => return Ok(0),
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "reading unlogged approvals");
            return Err(());
        }
    };
    let entries: Vec<Vec<u8>> = pending
        .iter()
        .map(|a| ApprovalEntry::new(a).to_bytes())
        .collect();
    let first = append(state, dir, writer, entries).await?;
    for (i, a) in pending.iter().enumerate() {
        let index = first + i as u64;
        if let Err(e) = state.store.mark_approval_logged(a, index).await {
            tracing::warn!(error = %e, approval = %a.id, index, "recording the log index");
        }
    }
    state
        .metrics
        .approvals_logged
        .fetch_add(pending.len() as u64, Ordering::Relaxed);
    tracing::info!(count = pending.len(), "approvals logged");
    Ok(pending.len())
}

async fn publish_merges(
    state: &AppState,
    dir: &std::path::Path,
    writer: &Writer,
) -> Result<usize, ()> {
    let pending = match state.store.unlogged_merges(BATCH).await {
        Ok(p) if p.is_empty() => return Ok(0),
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "reading unlogged merges");
            return Err(());
        }
    };
    let entries: Vec<Vec<u8>> = pending
        .iter()
        .map(|m| MergeEntry::new(m).to_bytes())
        .collect();
    let first = append(state, dir, writer, entries).await?;
    for (i, m) in pending.iter().enumerate() {
        let index = first + i as u64;
        if let Err(e) = state.store.mark_merge_logged(&m.id, index).await {
            tracing::warn!(error = %e, merge = %m.id, index, "recording the log index");
        }
    }
    tracing::info!(count = pending.len(), "merges logged");
    Ok(pending.len())
}

/// Appends entries to the log (taking the writer lock on first use); the first index.
async fn append(
    state: &AppState,
    dir: &std::path::Path,
    writer: &Writer,
    entries: Vec<Vec<u8>>,
) -> Result<u64, ()> {
    let (dir, writer) = (dir.to_path_buf(), writer.clone());
    let appended = tokio::task::spawn_blocking(move || {
        let mut held = writer.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none() {
            *held = Some(LogDir::open(&dir)?.writer()?);
        }
        let (log, _) = held.as_mut().expect("just opened");
        let result = log.append(&entries);
        if result.is_err() {
            // Reopen (and re-verify) next time rather than trust a writer that failed.
            *held = None;
        }
        result
    })
    .await;
    match appended {
        Ok(Ok(a)) => Ok(a.first_index),
        Ok(Err(LogError::Busy(_))) => {
            tracing::debug!("the transparency log is held by another replica");
            Err(())
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "appending to the transparency log");
            state.metrics.log_failures.fetch_add(1, Ordering::Relaxed);
            Err(())
        }
        Err(e) => {
            tracing::error!(error = %e, "the log task failed");
            Err(())
        }
    }
}
