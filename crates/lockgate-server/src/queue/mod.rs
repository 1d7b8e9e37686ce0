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
mod land;
pub mod testrun;
mod worker;

use crate::{ApiError, ApiResult, AppState, caller};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use config::QueueRepo;
use lockgate_core::decision::{Decision, Verdict};
use lockgate_core::provenance::ProvenanceStatus;
use lockgate_store::{HoldRecord, HoldScope, NewEntry, QueueEntry};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

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
    if let Some(n) = crate::github::pr_number(change_ref) {
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
    holds
        .iter()
        .find(|h| h.stops(repo, &entry.change_ref, entry.agent.as_deref()))
        .map(|h| (h, h.stops_repo(repo)))
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
            let worker = worker::Worker {
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
            if h.stops_repo(&r.name) {
                held_by.push(h.clone());
            } else if entries
                .iter()
                .any(|e| h.stops(&r.name, &e.change_ref, e.agent.as_deref()))
            {
                entry_holds.push(h.clone());
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
            state: lockgate_store::EntryState::Queued,
            reason: String::new(),
            target_sha: None,
            result_sha: None,
            check_digest: None,
            landing_sha: None,
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
        let cut = worker::bounded(&long);
        assert!(cut.len() <= 4004);
        assert!(cut.ends_with('…'));
    }
}
