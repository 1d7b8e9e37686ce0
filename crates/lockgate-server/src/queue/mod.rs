//! The merge queue: Lockgate as the merge authority for the repositories in `[merge]`.
//!
//! A change's head **enters** when its decision allows merging (an `auto_merge` verdict,
//! or `needs_approval` with every required approval given at that head). For the head
//! of each queue the worker:
//!
//! 1. checks the change still stands (its latest decision is for the queued head,
//!    approvals still satisfied, the remote branch still at that head);
//! 2. **builds** the result on the target's current tip (`lockgate-merge`);
//! 3. **re-checks** the exact result with the gate (`lockgate check` on tip..result:
//!    rules read at the tip, provenance re-verified against the new tree) and applies
//!    the **guard** ([`guard`]);
//! 4. runs the **test command** in a checkout of the result;
//! 5. records `pushing` (tip and result) and **advances** the branch by compare-and-swap;
//!    if the target moved, the entry is rebuilt and re-checked;
//! 6. records the **merge** (ledger, track record, transparency log) with the final SHA.
//!
//! Any failure **ejects** the entry with a reason, and the author is told (the notice
//! webhook). Holds stop it: a global or repository hold stops the queue, an agent or
//! change hold stops that entry. A crash anywhere is safe: on restart an entry found
//! `checking` or `testing` is rebuilt, and one found `pushing` is reconciled against the
//! remote (landed → recorded; not pushed and target unchanged → pushed; moved →
//! rebuilt), so a change is never lost and never merged twice. One replica works each
//! queue at a time (a lease in the ledger).

pub mod config;
pub mod testrun;

use crate::{ApiError, ApiResult, AppState, caller};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use config::QueueRepo;
use lockgate_core::decision::{Decision, Verdict};
use lockgate_core::provenance::ProvenanceStatus;
use lockgate_merge::{Advance, MergeError, Workspace};
use lockgate_store::{
    EntryState, HoldRecord, HoldScope, NewEntry, NewMerge, QueueEntry, Transition,
};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `lockgate check` for the queue: the CLI provides it (the pipeline lives there).
pub trait Gate: Send + Sync {
    /// The decision for `base..head` in the repository at `repo` (a bare workspace).
    fn check(&self, repo: &Path, base: &str, head: &str) -> Result<Decision, String>;
}

/// Puts a change's head in its repository's queue when its decision allows merging.
pub(crate) async fn enter_if_allowed(
    state: &Arc<AppState>,
    change: &crate::ChangeState,
    decision: &Decision,
) {
    if state.config.merge.repo(&change.repo).is_none() {
        return;
    }
    let allowed = match decision.verdict {
        Verdict::AutoMerge => true,
        Verdict::NeedsApproval => change.approved,
        Verdict::Blocked => false,
    };
    if !allowed {
        return;
    }
    let entry = NewEntry {
        repo: change.repo.clone(),
        change_ref: change.change_ref.clone(),
        head_sha: change.head_sha.clone(),
        decision_id: change.decision_id.clone(),
        agent: decision.author.agent.clone(),
    };
    match state.store.enqueue(&entry).await {
        Ok((e, true)) => {
            tracing::info!(repo = %e.repo, change = %e.change_ref, entry = %e.id, "entered the merge queue");
            state.queue_wakeup.notify_waiters();
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "entering the merge queue"),
    }
}

/// The remote ref of a change: `pr/42` → `refs/pull/42/head`, `refs/…` as is, anything
/// else a branch.
pub fn change_remote_ref(change_ref: &str) -> String {
    if let Some(n) = change_ref.strip_prefix("pr/")
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        return format!("refs/pull/{n}/head");
    }
    if change_ref.starts_with("refs/") {
        return change_ref.to_string();
    }
    format!("refs/heads/{change_ref}")
}

/// Guarded merge: whether the re-check of the exact result lets it land. `approved`:
/// the approvals given at the change's head satisfy the re-check's requirements.
pub fn guard(recheck: &Decision, approved: bool, repo: &QueueRepo) -> Result<(), String> {
    let reasons = || {
        recheck
            .reasons
            .iter()
            .map(|r| format!("{}: {}", r.rule, r.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    match recheck.verdict {
        Verdict::Blocked => Err(format!(
            "the re-check of the result blocks it ({})",
            reasons()
        )),
        Verdict::NeedsApproval if !approved => Err(format!(
            "the re-check of the result needs approvals not given at the change's head ({})",
            reasons()
        )),
        Verdict::NeedsApproval => Ok(()),
        Verdict::AutoMerge => {
            if recheck.trust.score < repo.min_trust {
                return Err(format!(
                    "trust {} is below the queue's minimum {} for merging without a person",
                    recheck.trust.score, repo.min_trust
                ));
            }
            let agent_wrote = !recheck.author.commits.is_empty()
                && recheck
                    .author
                    .commits
                    .iter()
                    .any(|c| c.kind == lockgate_core::agents::AuthorKind::Agent);
            if agent_wrote && recheck.provenance.commits.is_empty() {
                return Err("agent commits without provenance facts".into());
            }
            for c in &recheck.provenance.commits {
                if c.status != ProvenanceStatus::Valid {
                    return Err(format!(
                        "provenance of {} is {:?}, not valid",
                        short(&c.commit),
                        c.status
                    ));
                }
                if repo.require_logged && c.logged.is_none() {
                    return Err(format!(
                        "the attestation of {} is not in a trusted transparency log",
                        short(&c.commit)
                    ));
                }
            }
            Ok(())
        }
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The hold that stops `entry`, if any; `true` when it stops the whole queue.
fn hold_on<'a>(
    holds: &'a [HoldRecord],
    repo: &str,
    entry: &QueueEntry,
) -> Option<(&'a HoldRecord, bool)> {
    let change = format!("{repo}#{}", entry.change_ref);
    holds.iter().find_map(|h| match h.scope {
        HoldScope::Global => Some((h, true)),
        HoldScope::Repo if h.target == repo => Some((h, true)),
        HoldScope::Agent if entry.agent.as_deref() == Some(h.target.as_str()) => Some((h, false)),
        HoldScope::Change if h.target == change => Some((h, false)),
        _ => None,
    })
}

fn held_reason(h: &HoldRecord) -> String {
    let what = match h.scope {
        HoldScope::Global => "a global hold".to_string(),
        HoldScope::Repo => format!("a hold on {}", h.target),
        HoldScope::Agent => format!("an incident freeze of agent {}", h.target),
        HoldScope::Change => "a hold on this change".to_string(),
    };
    format!("held by {what} ({}): {}", h.id, h.reason)
}

/// Starts a worker per configured queue; returns when they are started.
pub async fn start(state: Arc<AppState>) -> Vec<tokio::task::JoinHandle<()>> {
    let Some(gate) = state.gate.clone() else {
        return Vec::new();
    };
    let holder = state.queue_holder.clone();
    state
        .config
        .merge
        .repos
        .iter()
        .map(|repo| {
            let worker = Worker {
                state: state.clone(),
                repo: repo.clone(),
                gate: gate.clone(),
                holder: holder.clone(),
                held: Arc::new(AtomicBool::new(false)),
            };
            tokio::spawn(worker.run())
        })
        .collect()
}

/// Gives up this replica's queue leases (at shutdown), so a restart or another replica
/// need not wait for them to lapse.
pub async fn release(state: &AppState) {
    for repo in &state.config.merge.repos {
        if let Err(e) = state
            .store
            .release_queue_lease(&repo.name, &state.queue_holder)
            .await
        {
            tracing::warn!(repo = %repo.name, error = %e, "releasing the queue lease");
        }
    }
}

/// One queue's worker.
struct Worker {
    state: Arc<AppState>,
    repo: QueueRepo,
    gate: Arc<dyn Gate>,
    holder: String,
    /// Whether this replica holds the queue's lease (kept fresh by [`Worker::renew`]).
    held: Arc<AtomicBool>,
}

/// Why a step did not go on: the entry was ejected, or must wait.
enum Stop {
    Eject(String),
    /// Back to the queue (a hold, a moved target): the reason.
    Requeue(String),
    /// Someone else moved the entry, or the ledger failed: try again later.
    Later(String),
}

impl From<lockgate_store::StoreError> for Stop {
    fn from(e: lockgate_store::StoreError) -> Stop {
        Stop::Later(format!("ledger: {e}"))
    }
}

impl Worker {
    async fn run(self) {
        let config = &self.state.config.merge;
        let dir = config.workdir.join(workspace_name(&self.repo.name));
        let remote = self.repo.remote.clone();
        let ws = loop {
            let (dir, remote) = (dir.clone(), remote.clone());
            match tokio::task::spawn_blocking(move || Workspace::open(dir, &remote)).await {
                Ok(Ok(ws)) => break Arc::new(ws),
                Ok(Err(e)) => {
                    tracing::error!(repo = %self.repo.name, error = %e, "opening the merge workspace")
                }
                Err(e) => tracing::error!(error = %e, "opening the merge workspace"),
            }
            tokio::time::sleep(config.interval()).await;
        };
        tokio::spawn(renew(
            self.state.clone(),
            self.repo.name.clone(),
            self.holder.clone(),
            self.held.clone(),
        ));
        loop {
            if self.held.load(Ordering::Acquire) {
                loop {
                    match self.work_once(&ws).await {
                        Ok(true) if self.held.load(Ordering::Acquire) => continue,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(repo = %self.repo.name, error = %e, "merge queue");
                            break;
                        }
                    }
                }
            }
            tokio::select! {
                _ = self.state.queue_wakeup.notified() => {}
                _ = tokio::time::sleep(config.interval()) => {}
            }
        }
    }

    /// Works the first entry that may move; whether anything happened.
    async fn work_once(&self, ws: &Arc<Workspace>) -> Result<bool, String> {
        let store = &self.state.store;
        let entries = store
            .open_entries(&self.repo.name)
            .await
            .map_err(|e| e.to_string())?;
        if entries.is_empty() {
            return Ok(false);
        }
        let holds = store.active_holds().await.map_err(|e| e.to_string())?;
        for entry in entries {
            if let Some((hold, whole_queue)) = hold_on(&holds, &self.repo.name, &entry) {
                let reason = held_reason(hold);
                if entry.state == EntryState::Queued && entry.reason != reason {
                    let _ = store
                        .transition(&entry.id, &note(EntryState::Queued, &reason))
                        .await;
                }
                if whole_queue {
                    return Ok(false);
                }
                continue;
            }
            let outcome = match entry.state {
                EntryState::Pushing => self.reconcile(ws, &entry).await,
                EntryState::Checking | EntryState::Testing => {
                    // Found mid-way (a restart): build it again from the start.
                    let from = entry.state;
                    match store
                        .transition(
                            &entry.id,
                            &moved(from, EntryState::Queued, "restarted: rebuilding"),
                        )
                        .await
                    {
                        Ok(true) => self.land(ws, &entry).await,
                        Ok(false) => Err(Stop::Later("moved by another replica".into())),
                        Err(e) => Err(e.into()),
                    }
                }
                _ => self.land(ws, &entry).await,
            };
            return match outcome {
                Ok(()) => Ok(true),
                Err(Stop::Eject(reason)) => {
                    self.eject(&entry, &reason).await;
                    Ok(true)
                }
                Err(Stop::Requeue(reason)) => {
                    let now = store
                        .queue_entry(&entry.id)
                        .await
                        .map_err(|e| e.to_string())?;
                    if !now.state.is_final() {
                        let _ = store
                            .transition(&entry.id, &moved(now.state, EntryState::Queued, &reason))
                            .await;
                    }
                    Ok(true)
                }
                Err(Stop::Later(why)) => Err(why),
            };
        }
        Ok(false)
    }

    /// Builds, re-checks, tests and lands one entry (found `queued`).
    async fn land(&self, ws: &Arc<Workspace>, entry: &QueueEntry) -> Result<(), Stop> {
        let store = &self.state.store;
        self.still_stands(entry).await?;
        if entry.attempts >= i64::from(self.repo.max_builds) {
            return Err(Stop::Eject(format!(
                "built {} times and the target kept moving",
                entry.attempts
            )));
        }
        let (tip, built) = {
            let (ws, repo, entry) = (ws.clone(), self.repo.clone(), entry.clone());
            blocking(move || build(&ws, &repo, &entry)).await??
        };
        let checking = Transition {
            from: EntryState::Queued,
            to: EntryState::Checking,
            reason: "re-checking the result",
            target_sha: Some(&tip),
            result_sha: Some(&built),
            check_digest: None,
            built: true,
        };
        if !store.transition(&entry.id, &checking).await? {
            return Err(Stop::Later("moved by another replica".into()));
        }
        let recheck = {
            let (gate, dir, tip, built) = (
                self.gate.clone(),
                ws.dir().to_path_buf(),
                tip.clone(),
                built.clone(),
            );
            blocking(move || gate.check(&dir, &tip, &built))
                .await?
                .map_err(|e| Stop::Eject(format!("the re-check of the result failed: {e}")))?
        };
        let given = store
            .approvals_for_head(&entry.repo, &entry.change_ref, &entry.head_sha)
            .await?;
        let approved = crate::approval_status(&self.state, &recheck, &given).satisfied;
        guard(&recheck, approved, &self.repo).map_err(Stop::Eject)?;

        let testing = Transition {
            check_digest: Some(&recheck.input_digest),
            ..moved(
                EntryState::Checking,
                EntryState::Testing,
                "testing the result",
            )
        };
        if !store.transition(&entry.id, &testing).await? {
            return Err(Stop::Later("moved by another replica".into()));
        }
        self.test(ws, entry, &tip, &built).await?;

        // A hold placed while it was tested stops it before the push.
        let holds = store.active_holds().await?;
        if let Some((hold, _)) = hold_on(&holds, &self.repo.name, entry) {
            return Err(Stop::Requeue(held_reason(hold)));
        }
        let pushing = moved(
            EntryState::Testing,
            EntryState::Pushing,
            "advancing the target",
        );
        if !store.transition(&entry.id, &pushing).await? {
            return Err(Stop::Later("moved by another replica".into()));
        }
        let entry = store.queue_entry(&entry.id).await?;
        self.push(ws, &entry, &tip, &built).await
    }

    /// The change as the ledger knows it now still lets this head in.
    async fn still_stands(&self, entry: &QueueEntry) -> Result<(), Stop> {
        let (record, decision) = crate::latest(&self.state, &entry.repo, &entry.change_ref)
            .await
            .map_err(|e| Stop::Later(format!("{e:?}")))?;
        if record.head_sha != entry.head_sha {
            return Err(Stop::Eject(format!(
                "the change has a newer head {} with its own decision",
                short(&record.head_sha)
            )));
        }
        match decision.verdict {
            Verdict::AutoMerge => Ok(()),
            Verdict::Blocked => Err(Stop::Eject("the change's latest decision blocks it".into())),
            Verdict::NeedsApproval => {
                let given = self
                    .state
                    .store
                    .approvals_for_head(&entry.repo, &entry.change_ref, &entry.head_sha)
                    .await?;
                if crate::approval_status(&self.state, &decision, &given).satisfied {
                    Ok(())
                } else {
                    Err(Stop::Eject(
                        "the approvals at the change's head no longer satisfy it".into(),
                    ))
                }
            }
        }
    }

    /// Runs the test command on the result, if the queue has one.
    async fn test(
        &self,
        ws: &Arc<Workspace>,
        entry: &QueueEntry,
        tip: &str,
        built: &str,
    ) -> Result<(), Stop> {
        if self.repo.test.is_empty() {
            return Ok(());
        }
        let dir = self
            .state
            .config
            .merge
            .workdir
            .join("checkouts")
            .join(&entry.id);
        {
            let (ws, dir, built) = (ws.clone(), dir.clone(), built.to_string());
            blocking(move || {
                let _ = ws.remove_checkout(&dir);
                ws.checkout(&built, &dir)
            })
            .await?
            .map_err(|e| Stop::Later(format!("checking the result out: {e}")))?;
        }
        let ctx = testrun::Context {
            repo: &entry.repo,
            change_ref: &entry.change_ref,
            target_sha: tip,
            result_sha: built,
        };
        let run = testrun::run(
            &self.repo.test,
            &self.repo.test_env,
            &dir,
            self.repo.test_timeout(),
            &ctx,
        )
        .await;
        {
            let (ws, dir) = (ws.clone(), dir.clone());
            let _ = blocking(move || ws.remove_checkout(&dir)).await;
        }
        match run {
            testrun::TestRun::Passed => Ok(()),
            testrun::TestRun::Failed(output) => Err(Stop::Eject(format!(
                "the test command failed on the result: {output}"
            ))),
            testrun::TestRun::TimedOut => Err(Stop::Eject(format!(
                "the test command ran past its {} timeout",
                self.repo.test_timeout
            ))),
        }
    }

    /// Advances the target from `tip` to `built` (the entry is `pushing`).
    async fn push(
        &self,
        ws: &Arc<Workspace>,
        entry: &QueueEntry,
        tip: &str,
        built: &str,
    ) -> Result<(), Stop> {
        crash_point("before-push");
        let advanced = {
            let (ws, repo, id, tip, built) = (
                ws.clone(),
                self.repo.clone(),
                entry.id.clone(),
                tip.to_string(),
                built.to_string(),
            );
            let github = github_api(&self.state);
            blocking(move || advance_target(&ws, &repo, github.as_ref(), &id, &tip, &built)).await?
        };
        match advanced {
            Ok(Advance::Done) => {
                crash_point("after-push");
                self.merged(entry, tip, built).await
            }
            Ok(Advance::Moved) => Err(Stop::Requeue(format!(
                "{} moved while {} was checked: rebuilding",
                self.repo.target,
                short(&entry.head_sha)
            ))),
            // Unknown whether it landed: stay `pushing`; the next round reconciles.
            Err(e) => Err(Stop::Later(format!("advancing {}: {e}", self.repo.target))),
        }
    }

    /// An entry found `pushing`: did its push happen?
    async fn reconcile(&self, ws: &Arc<Workspace>, entry: &QueueEntry) -> Result<(), Stop> {
        let (Some(tip), Some(built)) = (entry.target_sha.clone(), entry.result_sha.clone()) else {
            return Err(Stop::Requeue("no result on record: rebuilding".into()));
        };
        let now = {
            let (ws, target) = (ws.clone(), self.repo.target.clone());
            blocking(move || ws.fetch_branch(&target)).await?
        }
        .map_err(|e| Stop::Later(format!("fetching {}: {e}", self.repo.target)))?;
        let landed = {
            let (ws, built, now) = (ws.clone(), built.clone(), now.clone());
            blocking(move || ws.is_ancestor(&built, &now)).await?
        }
        .map_err(|e| Stop::Later(e.to_string()))?;
        if landed {
            tracing::info!(entry = %entry.id, "reconciled: the push had happened");
            return self.merged(entry, &tip, &built).await;
        }
        if now == tip {
            // Checked and tested on exactly this tip, and not pushed: push now.
            tracing::info!(entry = %entry.id, "reconciled: pushing again");
            return self.push(ws, entry, &tip, &built).await;
        }
        Err(Stop::Requeue(format!(
            "{} moved while {} was being landed: rebuilding",
            self.repo.target,
            short(&entry.head_sha)
        )))
    }

    /// Records the merge (ledger, track record, log) and tells the author.
    async fn merged(&self, entry: &QueueEntry, tip: &str, built: &str) -> Result<(), Stop> {
        let merge = NewMerge {
            repo: entry.repo.clone(),
            change_ref: entry.change_ref.clone(),
            head_sha: entry.head_sha.clone(),
            merged_sha: built.to_string(),
            target: self.repo.target.clone(),
            target_sha: tip.to_string(),
            method: self.repo.method.clone(),
            agent: entry.agent.clone(),
            decision_id: entry.decision_id.clone(),
            check_digest: entry
                .check_digest
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        };
        let record = self.state.store.record_merge(&entry.id, &merge).await?;
        tracing::info!(repo = %entry.repo, change = %entry.change_ref, merged = %record.merged_sha, "merged");
        self.state.metrics.merges.fetch_add(1, Ordering::Relaxed);
        self.state.log_wakeup.notify_one();
        self.notify(
            entry,
            "lockgate.queue_merged",
            &format!("merged as {built}"),
            Some(built),
        )
        .await;
        if let (Some(gh), Some(api), Some(number)) = (
            self.repo.github.clone(),
            github_api(&self.state),
            crate::github::pr_number(&entry.change_ref),
        ) {
            let (repo, built) = (self.repo.clone(), built.to_string());
            let _ = blocking(move || close_pull_request(&api, &gh, number, &repo, &built)).await;
        }
        Ok(())
    }

    async fn eject(&self, entry: &QueueEntry, reason: &str) {
        let store = &self.state.store;
        let Ok(now) = store.queue_entry(&entry.id).await else {
            return;
        };
        if now.state.is_final() {
            return;
        }
        let reason = bounded(reason);
        match store
            .transition(&entry.id, &moved(now.state, EntryState::Ejected, &reason))
            .await
        {
            Ok(true) => {
                tracing::info!(repo = %entry.repo, change = %entry.change_ref, reason = %reason, "ejected from the merge queue");
                self.state.metrics.ejections.fetch_add(1, Ordering::Relaxed);
                self.notify(entry, "lockgate.queue_ejected", &reason, None)
                    .await;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "ejecting"),
        }
    }

    /// Tells the author (the notice webhook) what became of the entry.
    async fn notify(&self, entry: &QueueEntry, event: &str, reason: &str, merged: Option<&str>) {
        let Some(url) = self.state.config.merge.notify_webhook.clone() else {
            return;
        };
        let notice = serde_json::json!({
            "event": event,
            "repo": entry.repo,
            "change_ref": entry.change_ref,
            "head_sha": entry.head_sha,
            "agent": entry.agent,
            "entry": entry.id,
            "reason": reason,
            "merged_sha": merged,
            "link": self.state.config.public_url.as_ref().map(|u| format!(
                "{}/ui/merges?repo={}", u.trim_end_matches('/'), entry.repo
            )),
        });
        if let Err(e) = crate::escalate::post_signed(&self.state, url, &notice).await {
            tracing::warn!(error = %e, entry = %entry.id, "merge queue notice");
        }
    }
}

/// Keeps this replica's lease on a queue fresh (every third of the lease).
async fn renew(state: Arc<AppState>, repo: String, holder: String, held: Arc<AtomicBool>) {
    let lease = state.config.merge.lease();
    loop {
        let has = state
            .store
            .take_queue_lease(&repo, &holder, lease.as_millis() as i64)
            .await
            .unwrap_or(false);
        if has && !held.swap(true, Ordering::AcqRel) {
            tracing::info!(repo = %repo, "working the merge queue");
            state.queue_wakeup.notify_waiters();
        }
        if !has {
            held.store(false, Ordering::Release);
        }
        tokio::time::sleep(lease / 3).await;
    }
}

/// `[github]`'s API URL and token, when a token is configured.
fn github_api(state: &AppState) -> Option<(String, String)> {
    let g = &state.config.github;
    g.token
        .clone()
        .map(|t| (g.api_url.trim_end_matches('/').to_string(), t))
}

/// Moves the target from `tip` to `built`: a compare-and-swap push, or — for a queue
/// that lands through GitHub — the result pushed to a private ref and the branch
/// fast-forwarded to it through the API (`force: false`: GitHub refuses anything but a
/// fast-forward, so a branch that moved is never overwritten).
fn advance_target(
    ws: &Workspace,
    repo: &QueueRepo,
    github: Option<&(String, String)>,
    entry_id: &str,
    tip: &str,
    built: &str,
) -> Result<Advance, String> {
    let Some(gh) = &repo.github else {
        return ws
            .advance(&repo.target, tip, built)
            .map_err(|e| e.to_string());
    };
    let (api, token) = github.ok_or("no [github] token to land with")?;
    let private = format!("refs/lockgate/queue/{entry_id}");
    ws.push_ref(built, &private).map_err(|e| e.to_string())?;
    let url = format!("{api}/repos/{gh}/git/refs/heads/{}", repo.target);
    let body = serde_json::json!({"sha": built, "force": false});
    let (status, answer) = crate::outbound::api("PATCH", &url, token, Some(&body))?;
    let outcome = match status {
        200 | 201 => Ok(Advance::Done),
        422 => {
            let now = ws.fetch_branch(&repo.target).map_err(|e| e.to_string())?;
            if now != tip {
                Ok(Advance::Moved)
            } else {
                Err(format!(
                    "GitHub refused to move {}: {}",
                    repo.target, answer["message"]
                ))
            }
        }
        s => Err(format!(
            "GitHub answered HTTP {s} moving {}: {}",
            repo.target, answer["message"]
        )),
    };
    if outcome.is_ok() {
        let _ = ws.delete_remote_ref(&private);
    }
    outcome
}

/// Tells the pull request it landed, and closes it when GitHub cannot see that itself
/// (a squash or rebase makes new commits). Best effort: the merge is recorded already.
fn close_pull_request(
    api: &(String, String),
    gh: &str,
    number: u64,
    repo: &QueueRepo,
    built: &str,
) {
    let (base, token) = api;
    let comment = serde_json::json!({"body": format!(
        "Landed on `{}` as {built} by Lockgate's merge queue ({}), after the gate and the tests ran on that exact commit.",
        repo.target, repo.method
    )});
    let url = format!("{base}/repos/{gh}/issues/{number}/comments");
    if let Err(e) = crate::outbound::api("POST", &url, token, Some(&comment)) {
        tracing::warn!(error = %e, "commenting on the landed pull request");
    }
    if repo.method() != lockgate_merge::Method::Merge {
        let url = format!("{base}/repos/{gh}/pulls/{number}");
        let close = serde_json::json!({"state": "closed"});
        if let Err(e) = crate::outbound::api("PATCH", &url, token, Some(&close)) {
            tracing::warn!(error = %e, "closing the landed pull request");
        }
    }
}

/// Fetches the target, the notes and the change; builds the result. `(tip, result)`.
fn build(ws: &Workspace, repo: &QueueRepo, entry: &QueueEntry) -> Result<(String, String), Stop> {
    let git = |e: MergeError| Stop::Later(e.to_string());
    let tip = ws.fetch_branch(&repo.target).map_err(git)?;
    ws.fetch_notes().map_err(git)?;
    let reference = change_remote_ref(&entry.change_ref);
    let head = match ws.fetch_ref(&reference) {
        Ok(h) => h,
        Err(MergeError::Invalid(..)) => {
            return Err(Stop::Eject(format!(
                "{reference:?} is not a ref the queue can fetch"
            )));
        }
        Err(e) => {
            return Err(Stop::Eject(format!("fetching {reference}: {e}")));
        }
    };
    if head != entry.head_sha {
        return Err(Stop::Eject(format!(
            "{reference} now points at {}, not the queued head {}",
            short(&head),
            short(&entry.head_sha)
        )));
    }
    let message = format!(
        "Merge {} ({})\n\nLockgate-Queue-Entry: {}\nLockgate-Change-Head: {}",
        entry.change_ref,
        short(&entry.head_sha),
        entry.id,
        entry.head_sha
    );
    match ws.build(&tip, &head, repo.method(), &message) {
        Ok(b) => Ok((tip, b.commit)),
        Err(e @ MergeError::Conflict { .. }) => Err(Stop::Eject(e.to_string())),
        Err(e) => Err(Stop::Later(e.to_string())),
    }
}

/// Runs blocking work (git, the gate) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Stop> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Stop::Later(format!("worker task: {e}")))
}

fn moved(from: EntryState, to: EntryState, reason: &str) -> Transition<'_> {
    Transition {
        from,
        to,
        reason,
        target_sha: None,
        result_sha: None,
        check_digest: None,
        built: false,
    }
}

fn note(state: EntryState, reason: &str) -> Transition<'_> {
    moved(state, state, reason)
}

/// A reason short enough for the ledger.
fn bounded(reason: &str) -> String {
    const MAX: usize = 4000;
    if reason.len() <= MAX {
        return reason.to_string();
    }
    let mut cut = MAX;
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &reason[..cut])
}

/// A directory name for a repository's workspace (`acme/api` → `q-acme%2Fapi`): one
/// path segment, never `.` or `..`.
fn workspace_name(repo: &str) -> String {
    let escaped: String = repo
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("q-{escaped}")
}

/// Fault injection for the crash tests: `LOCKGATE_QUEUE_CRASH_AT=after-push` (or
/// `before-push`) kills the process there, as `kill -9` would. Read once.
fn crash_point(at: &str) {
    static CRASH_AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if CRASH_AT
        .get_or_init(|| std::env::var("LOCKGATE_QUEUE_CRASH_AT").ok())
        .as_deref()
        == Some(at)
    {
        eprintln!("LOCKGATE_QUEUE_CRASH_AT={at}: aborting");
        std::process::abort();
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct QueueQuery {
    repo: Option<String>,
    limit: Option<u32>,
}

/// One queue as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueueView {
    pub repo: String,
    pub target: String,
    pub method: String,
    /// Holds that stop the whole queue now.
    pub held_by: Vec<HoldRecord>,
    /// Agent and change holds that stop some of its entries (an incident freeze).
    pub entry_holds: Vec<HoldRecord>,
    /// Open entries, the head of the queue first.
    pub entries: Vec<QueueEntry>,
}

/// `GET /api/v1/queue[?repo=&limit=]`: the queues, and recent entries (merged and
/// ejected too, newest first).
#[derive(Debug, Serialize, Deserialize)]
pub struct QueueAnswer {
    pub queues: Vec<QueueView>,
    pub recent: Vec<QueueEntry>,
}

pub(crate) async fn api(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<QueueQuery>,
) -> ApiResult<QueueAnswer> {
    caller(&state, &headers).await?;
    Ok(Json(
        view(&state, q.repo.as_deref(), q.limit.unwrap_or(50)).await?,
    ))
}

/// The queues (one, or all) and their recent entries.
pub(crate) async fn view(
    state: &AppState,
    repo: Option<&str>,
    limit: u32,
) -> Result<QueueAnswer, ApiError> {
    let holds = state.store.active_holds().await?;
    let mut queues = Vec::new();
    for r in &state.config.merge.repos {
        if repo.is_some_and(|n| n != r.name) {
            continue;
        }
        let entries = state.store.open_entries(&r.name).await?;
        let mut held_by = Vec::new();
        let mut entry_holds = Vec::new();
        for h in &holds {
            match h.scope {
                HoldScope::Global => held_by.push(h.clone()),
                HoldScope::Repo if h.target == r.name => held_by.push(h.clone()),
                HoldScope::Agent | HoldScope::Change
                    if entries
                        .iter()
                        .any(|e| hold_on(std::slice::from_ref(h), &r.name, e).is_some()) =>
                {
                    entry_holds.push(h.clone())
                }
                _ => {}
            }
        }
        queues.push(QueueView {
            repo: r.name.clone(),
            target: r.target.clone(),
            method: r.method.clone(),
            held_by,
            entry_holds,
            entries,
        });
    }
    let recent = state.store.recent_entries(repo, limit).await?;
    Ok(QueueAnswer { queues, recent })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockgate_core::assess::Assessor;
    use lockgate_core::change::{
        ChangeSet, Commit, FileChange, FileStatus, Person as CommitPerson,
    };
    use lockgate_core::config::Config;
    use lockgate_core::decision::{PolicyOutcome, decide};
    use lockgate_core::provenance::CommitProvenance;

    /// A Claude Code change to docs, with an `auto_merge` verdict.
    fn agent_decision() -> Decision {
        let claude = CommitPerson::new("Claude", "noreply@anthropic.com");
        let mut change = ChangeSet {
            head: "h".repeat(40),
            commits: vec![Commit {
                sha: "a".repeat(40),
                author: claude.clone(),
                committer: claude,
                ..Commit::default()
            }],
            files: vec![FileChange::new("docs/a.md", FileStatus::Modified)],
            ..ChangeSet::default()
        };
        let assessor = Assessor::new(&Config::default()).unwrap();
        let findings = assessor.scan_secrets(&mut change);
        let input = assessor.assess(&change, &findings, None);
        let mut d = decide(&input, "sha256:x", &PolicyOutcome::default(), &[]);
        assert_eq!(d.author.agent.as_deref(), Some("claude-code"));
        // The guard judges whatever verdict the re-check reached.
        d.verdict = Verdict::AutoMerge;
        d
    }

    fn provenance(status: &str, logged: bool) -> CommitProvenance {
        let mut p = serde_json::json!({"commit": "a".repeat(40), "status": status, "reasons": []});
        if logged {
            p["logged"] = serde_json::json!({"log": "agents", "index": 3, "tree_size": 9});
        }
        serde_json::from_value(p).unwrap()
    }

    fn queue(min_trust: u8, require_logged: bool) -> QueueRepo {
        let text = format!(
            "name = \"acme/app\"\nremote = \"/srv/app.git\"\nmin_trust = {min_trust}\nrequire_logged = {require_logged}\n"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn guarded_auto_merge_needs_trust_and_valid_logged_provenance() {
        let mut d = agent_decision();
        d.trust.score = 80;
        let strict = queue(70, true);
        let err = guard(&d, false, &strict).unwrap_err();
        assert!(err.contains("without provenance"), "{err}");

        d.provenance.commits = vec![provenance("missing", false)];
        let err = guard(&d, false, &strict).unwrap_err();
        assert!(err.contains("not valid"), "{err}");

        d.provenance.commits = vec![provenance("valid", false)];
        let err = guard(&d, false, &strict).unwrap_err();
        assert!(err.contains("transparency log"), "{err}");
        assert_eq!(guard(&d, false, &queue(70, false)), Ok(()));

        d.provenance.commits = vec![provenance("valid", true)];
        assert_eq!(guard(&d, false, &strict), Ok(()));

        d.trust.score = 69;
        let err = guard(&d, true, &strict).unwrap_err();
        assert!(err.contains("below the queue's minimum 70"), "{err}");
    }

    #[test]
    fn approvals_and_blocks_decide_the_other_verdicts() {
        let mut d = agent_decision();
        d.verdict = Verdict::NeedsApproval;
        let q = queue(100, true);
        assert!(
            guard(&d, false, &q)
                .unwrap_err()
                .contains("needs approvals")
        );
        assert_eq!(
            guard(&d, true, &q),
            Ok(()),
            "people vouched: the threshold is theirs"
        );
        d.verdict = Verdict::Blocked;
        assert!(guard(&d, true, &q).unwrap_err().contains("blocks it"));
    }

    #[test]
    fn holds_stop_the_queue_or_just_their_entries() {
        let hold = |scope: HoldScope, target: &str| HoldRecord {
            id: format!("h-{target}"),
            scope,
            target: target.into(),
            reason: "incident".into(),
            placed_by: "ada".into(),
            created_ms: 0,
            released_by: None,
            released_ms: None,
        };
        let entry = QueueEntry {
            id: "e".into(),
            repo: "acme/app".into(),
            change_ref: "pr/7".into(),
            head_sha: "h".repeat(40),
            decision_id: "d".into(),
            agent: Some("devin".into()),
            state: EntryState::Queued,
            reason: String::new(),
            target_sha: None,
            result_sha: None,
            check_digest: None,
            attempts: 0,
            created_ms: 0,
            updated_ms: 0,
        };
        let on = |holds: &[HoldRecord]| {
            hold_on(holds, "acme/app", &entry).map(|(h, all)| (h.id.clone(), all))
        };
        assert_eq!(on(&[]), None);
        assert_eq!(on(&[hold(HoldScope::Repo, "acme/other")]), None);
        assert_eq!(on(&[hold(HoldScope::Agent, "claude-code")]), None);
        assert_eq!(on(&[hold(HoldScope::Change, "acme/app#pr/8")]), None);
        assert_eq!(
            on(&[hold(HoldScope::Global, "")]),
            Some(("h-".into(), true))
        );
        assert_eq!(
            on(&[hold(HoldScope::Repo, "acme/app")]),
            Some(("h-acme/app".into(), true))
        );
        assert_eq!(
            on(&[hold(HoldScope::Agent, "devin")]),
            Some(("h-devin".into(), false))
        );
        assert_eq!(
            on(&[hold(HoldScope::Change, "acme/app#pr/7")]),
            Some(("h-acme/app#pr/7".into(), false))
        );
        assert!(
            held_reason(&hold(HoldScope::Agent, "devin"))
                .contains("incident freeze of agent devin")
        );
    }

    #[test]
    fn change_refs_map_to_remote_refs() {
        assert_eq!(change_remote_ref("pr/42"), "refs/pull/42/head");
        assert_eq!(change_remote_ref("pr/x"), "refs/heads/pr/x");
        assert_eq!(change_remote_ref("agent/fix-1"), "refs/heads/agent/fix-1");
        assert_eq!(
            change_remote_ref("refs/merge-requests/3/head"),
            "refs/merge-requests/3/head"
        );
    }

    #[test]
    fn workspace_names_are_one_safe_path_segment() {
        assert_eq!(workspace_name("acme/api"), "q-acme%2Fapi");
        assert_eq!(workspace_name(".."), "q-..");
        assert!(!workspace_name("a/../../b").contains('/'));
    }

    #[test]
    fn bounded_reasons_cut_on_a_character() {
        let long = "é".repeat(3000);
        let cut = bounded(&long);
        assert!(cut.len() <= 4004);
        assert!(cut.ends_with('…'));
    }
}
