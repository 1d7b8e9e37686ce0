//! One queue's worker: takes the head of the queue (up to `batch` entries), builds each
//! on the one before it, re-checks each exact result, tests the batch's last result,
//! bisects a failing batch, and lands the tested prefix with one compare-and-swap.

use super::land::{self, Stack};
use super::{QueueRepo, guard, held_reason, hold_on, short, testrun};
use crate::AppState;
use lockgate_merge::{Advance, Workspace};
use lockgate_store::{EntryState, NewMerge, QueueEntry, Transition};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One queue's worker.
pub(super) struct Worker {
    pub state: Arc<AppState>,
    pub repo: QueueRepo,
    pub gate: Arc<dyn super::Gate>,
    pub holder: String,
    /// Whether this replica holds the queue's lease (kept fresh by [`renew`]).
    pub held: Arc<AtomicBool>,
}

/// Why an entry did not go on.
pub(super) enum Stop {
    Eject(String),
    /// Someone else moved the entry, or git or the ledger failed: try again later.
    Later(String),
}

impl From<lockgate_store::StoreError> for Stop {
    fn from(e: lockgate_store::StoreError) -> Stop {
        Stop::Later(format!("ledger: {e}"))
    }
}

impl From<Stop> for String {
    fn from(s: Stop) -> String {
        match s {
            Stop::Eject(why) | Stop::Later(why) => why,
        }
    }
}

/// An entry with its built, re-checked result.
struct Built {
    entry: QueueEntry,
    /// What it was built on: the target's tip, or the result before it in its batch.
    prev: String,
    result: String,
}

impl Worker {
    pub async fn run(self) {
        let config = &self.state.config.merge;
        let dir = config.workdir.join(super::workspace_name(&self.repo.name));
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
                            let e = land::scrub(&e, &self.repo);
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

    /// Works the head of the queue; whether anything happened.
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
        let mut batch = Vec::new();
        for entry in entries {
            if let Some((hold, whole_queue)) = hold_on(&holds, &self.repo.name, &entry) {
                let reason = held_reason(hold);
                if entry.state == EntryState::Queued && entry.reason != reason {
                    let _ = store.transition(&entry.id, &note(&reason)).await;
                }
                if whole_queue {
                    break;
                }
                continue;
            }
            match entry.state {
                // Landing when the process stopped: settle that first.
                EntryState::Pushing if batch.is_empty() => {
                    return self.reconcile(ws, &entry).await.map(|()| true);
                }
                EntryState::Pushing => break,
                // Found mid-way (a restart): build it again from the start.
                EntryState::Checking | EntryState::Testing => {
                    let back = moved(entry.state, EntryState::Queued, "restarted: rebuilding");
                    if !store
                        .transition(&entry.id, &back)
                        .await
                        .map_err(|e| e.to_string())?
                    {
                        return Err("moved by another replica".into());
                    }
                    batch.push(
                        store
                            .queue_entry(&entry.id)
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                }
                _ => batch.push(entry),
            }
            if batch.len() >= self.repo.batch {
                break;
            }
        }
        if batch.is_empty() {
            return Ok(false);
        }
        self.land_batch(ws, batch).await.map(|()| true)
    }

    /// Builds, re-checks, tests and lands entries found `queued`, in order.
    async fn land_batch(
        &self,
        ws: &Arc<Workspace>,
        entries: Vec<QueueEntry>,
    ) -> Result<(), String> {
        let store = &self.state.store;
        let mut standing = Vec::new();
        for e in entries {
            match self.still_stands(&e).await {
                Ok(()) if e.attempts >= i64::from(self.repo.max_builds) => {
                    let why = format!("built {} times and the target kept moving", e.attempts);
                    self.eject(&e, &why).await;
                }
                Ok(()) => standing.push(e),
                Err(Stop::Eject(why)) => self.eject(&e, &why).await,
                Err(Stop::Later(why)) => return Err(why),
            }
        }
        if standing.is_empty() {
            return Ok(());
        }

        // Each built on the result before it; an entry that cannot be built is ejected
        // and the next is built where it would have been.
        let stack = {
            let (ws, repo, entries) = (ws.clone(), self.repo.clone(), standing.clone());
            blocking(move || land::build_stack(&ws, &repo, &entries)).await?
        }
        .map_err(|e| land::scrub(&format!("building: {e}"), &self.repo))?;
        let Stack { results } = stack;
        let mut batch: Vec<Built> = Vec::new();
        let mut after_ejection: Option<String> = None;
        for (entry, built) in standing.into_iter().zip(results) {
            if let Some(why) = &after_ejection {
                self.requeue(&entry, why).await;
                continue;
            }
            let (prev, result) = match built {
                Ok(pair) => pair,
                Err(why) => {
                    self.eject(&entry, &why).await;
                    continue;
                }
            };
            let checking = Transition {
                from: EntryState::Queued,
                to: EntryState::Checking,
                reason: "re-checking the result",
                target_sha: Some(&prev),
                result_sha: Some(&result),
                check_digest: None,
                landing_sha: None,
                built: true,
            };
            if !store
                .transition(&entry.id, &checking)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err("moved by another replica".into());
            }
            match self.recheck(ws, &entry, &prev, &result).await {
                Ok(()) => batch.push(Built {
                    entry,
                    prev,
                    result,
                }),
                Err(Stop::Eject(why)) => {
                    self.eject(&entry, &why).await;
                    // The ones after it were built on top of it.
                    after_ejection = Some(format!(
                        "rebuilding: {} before it in its batch was ejected",
                        entry.change_ref
                    ));
                }
                Err(Stop::Later(why)) => {
                    self.requeue(&entry, "retrying").await;
                    for b in &batch {
                        self.requeue(&b.entry, "retrying").await;
                    }
                    return Err(why);
                }
            }
        }
        if batch.is_empty() {
            return Ok(());
        }

        // Test the whole batch's result; on failure, bisect for the first prefix that
        // fails. Only a prefix whose last result passed the tests lands.
        let landed = match self.test_batch(ws, &batch).await {
            Ok(n) => n,
            Err(why) => {
                for b in &batch {
                    self.requeue(&b.entry, "retrying").await;
                }
                return Err(why);
            }
        };
        if landed == 0 {
            return Ok(());
        }
        batch.truncate(landed);

        // A change that moved on meanwhile (a newer head, a withdrawn approval) stops
        // the batch before the push: it is ejected, the others rebuilt without it.
        for (i, b) in batch.iter().enumerate() {
            match self.still_stands(&b.entry).await {
                Ok(()) => continue,
                Err(Stop::Eject(why)) => {
                    self.eject(&b.entry, &why).await;
                    let again = format!(
                        "rebuilding: {} in its batch no longer stands",
                        b.entry.change_ref
                    );
                    for (j, other) in batch.iter().enumerate() {
                        if j != i {
                            self.requeue(&other.entry, &again).await;
                        }
                    }
                    return Ok(());
                }
                Err(Stop::Later(why)) => {
                    for other in &batch {
                        self.requeue(&other.entry, "retrying").await;
                    }
                    return Err(why);
                }
            }
        }

        // A hold placed meanwhile stops the batch before the push.
        let holds = store.active_holds().await.map_err(|e| e.to_string())?;
        if let Some((hold, _)) = batch
            .iter()
            .find_map(|b| hold_on(&holds, &self.repo.name, &b.entry))
        {
            let why = held_reason(hold);
            for b in &batch {
                self.requeue(&b.entry, &why).await;
            }
            return Ok(());
        }
        let landing = batch.last().expect("not empty").result.clone();
        for b in &batch {
            let pushing = Transition {
                landing_sha: Some(&landing),
                ..moved(
                    EntryState::Testing,
                    EntryState::Pushing,
                    "advancing the target",
                )
            };
            if !store
                .transition(&b.entry.id, &pushing)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err("moved by another replica".into());
            }
        }
        let group: Vec<QueueEntry> = futures_util::future::try_join_all(
            batch.iter().map(|b| store.queue_entry(&b.entry.id)),
        )
        .await
        .map_err(|e| e.to_string())?;
        self.push(ws, &group, &batch[0].prev, &landing).await
    }

    /// The change as the ledger knows it now still lets this head in.
    async fn still_stands(&self, entry: &QueueEntry) -> Result<(), Stop> {
        use lockgate_core::decision::Verdict;
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

    /// The gate on exactly `prev..result`, then the guard; records the re-check's
    /// digest and moves the entry to `testing`.
    async fn recheck(
        &self,
        ws: &Arc<Workspace>,
        entry: &QueueEntry,
        prev: &str,
        result: &str,
    ) -> Result<(), Stop> {
        let store = &self.state.store;
        let recheck = {
            let (gate, dir, prev, result) = (
                self.gate.clone(),
                ws.dir().to_path_buf(),
                prev.to_string(),
                result.to_string(),
            );
            blocking(move || gate.check(&dir, &prev, &result))
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
        Ok(())
    }

    /// Tests the batch's last result; on failure bisects the prefixes for the first
    /// that fails, ejects its last entry and sends the ones after it back to the queue.
    /// How many entries (a prefix whose last result passed the tests) may land.
    async fn test_batch(&self, ws: &Arc<Workspace>, batch: &[Built]) -> Result<usize, String> {
        let k = batch.len();
        // `hi` is a prefix known to fail (with its output), `passed` the longest known
        // to pass: the search closes the gap to the first failing prefix.
        let mut failing = match self.test(ws, batch).await {
            Ok(()) => return Ok(k),
            Err(Stop::Eject(output)) => output,
            Err(Stop::Later(why)) => return Err(why),
        };
        let (mut passed, mut hi) = (0, k);
        while passed + 1 < hi {
            let mid = (passed + 1 + hi) / 2;
            match self.test(ws, &batch[..mid]).await {
                Ok(()) => passed = mid,
                Err(Stop::Eject(output)) => (failing, hi) = (output, mid),
                Err(Stop::Later(why)) => return Err(why),
            }
        }
        let culprit = &batch[hi - 1].entry;
        let why = if k > 1 {
            format!("(found by bisecting a batch of {k}) {failing}")
        } else {
            failing
        };
        self.eject(culprit, &why).await;
        for b in &batch[hi..] {
            let again = format!(
                "rebuilding: {} before it in its batch failed the tests",
                culprit.change_ref
            );
            self.requeue(&b.entry, &again).await;
        }
        Ok(passed)
    }

    /// The test command, then the forge's required checks, on the last result of
    /// `prefix`; `Eject(why)` when either fails.
    async fn test(&self, ws: &Arc<Workspace>, prefix: &[Built]) -> Result<(), Stop> {
        self.test_command(ws, prefix).await?;
        self.required_checks(ws, prefix.last().expect("a prefix is never empty"))
            .await
    }

    /// Runs the test command on the last result of `prefix`, if the queue has one.
    async fn test_command(&self, ws: &Arc<Workspace>, prefix: &[Built]) -> Result<(), Stop> {
        if self.repo.test.is_empty() {
            return Ok(());
        }
        let last = prefix.last().expect("a prefix is never empty");
        let dir = self
            .state
            .config
            .merge
            .workdir
            .join("checkouts")
            .join(&last.entry.id);
        {
            let (ws, dir, built) = (ws.clone(), dir.clone(), last.result.clone());
            blocking(move || {
                let _ = ws.remove_checkout(&dir);
                ws.checkout(&built, &dir)
            })
            .await?
            .map_err(|e| Stop::Later(format!("checking the result out: {e}")))?;
        }
        let changes: Vec<&str> = prefix.iter().map(|b| b.entry.change_ref.as_str()).collect();
        let ctx = testrun::Context {
            repo: &last.entry.repo,
            change_ref: &changes.join(" "),
            target_sha: &prefix[0].prev,
            result_sha: &last.result,
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

    /// Waits for the GitHub checks the queue requires on `built`'s result: pushed to
    /// the branch `lockgate-queue/<entry>` so push workflows run on it, then polled
    /// until every required check passed, one failed, or `checks_timeout` passed.
    async fn required_checks(&self, ws: &Arc<Workspace>, built: &Built) -> Result<(), Stop> {
        let (Some(gh), false) = (&self.repo.github, self.repo.required_checks.is_empty()) else {
            return Ok(());
        };
        let api = land::github_api(&self.state)
            .ok_or_else(|| Stop::Later("no [github] token to read checks with".into()))?;
        let branch = format!("refs/heads/lockgate-queue/{}", built.entry.id);
        {
            let (ws, result, branch) = (ws.clone(), built.result.clone(), branch.clone());
            blocking(move || ws.push_ref(&result, &branch))
                .await?
                .map_err(|e| Stop::Later(format!("pushing the result for its checks: {e}")))?;
        }
        let deadline = std::time::Instant::now() + self.repo.checks_timeout();
        let outcome = loop {
            let (api, gh, sha, names) = (
                api.clone(),
                gh.clone(),
                built.result.clone(),
                self.repo.required_checks.clone(),
            );
            let last = match blocking(move || land::checks(&api, &gh, &sha, &names)).await? {
                Ok(land::Checks::Passed) => break Ok(()),
                Ok(land::Checks::Failed(why)) => {
                    break Err(Stop::Eject(format!(
                        "a required check failed on the result: {why}"
                    )));
                }
                Ok(land::Checks::Pending(waiting)) => {
                    format!("waiting for {}", waiting.join(", "))
                }
                Err(e) => e,
            };
            if std::time::Instant::now() >= deadline {
                break Err(Stop::Eject(format!(
                    "the required checks did not finish within {} ({last})",
                    self.repo.checks_timeout
                )));
            }
            tokio::time::sleep(self.repo.checks_poll()).await;
        };
        {
            let (ws, branch) = (ws.clone(), branch.clone());
            let _ = blocking(move || ws.delete_remote_ref(&branch)).await;
        }
        outcome
    }

    /// Advances the target from `tip` to `landing` for `group` (all `pushing`).
    async fn push(
        &self,
        ws: &Arc<Workspace>,
        group: &[QueueEntry],
        tip: &str,
        landing: &str,
    ) -> Result<(), String> {
        crash_point("before-push");
        let advanced = {
            let (ws, repo, id, tip, landing) = (
                ws.clone(),
                self.repo.clone(),
                group[0].id.clone(),
                tip.to_string(),
                landing.to_string(),
            );
            let github = land::github_api(&self.state);
            blocking(move || land::advance(&ws, &repo, github.as_ref(), &id, &tip, &landing))
                .await?
        };
        match advanced {
            Ok(Advance::Done) => {
                crash_point("after-push");
                for e in group {
                    self.merged(e).await?;
                }
                Ok(())
            }
            Ok(Advance::Moved) => {
                let why = format!(
                    "{} moved while {} was checked: rebuilding",
                    self.repo.target,
                    group
                        .iter()
                        .map(|e| e.change_ref.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                for e in group {
                    self.requeue(e, &why).await;
                }
                Ok(())
            }
            // Unknown whether it landed: stay `pushing`; the next round reconciles.
            Err(e) => Err(format!("advancing {}: {e}", self.repo.target)),
        }
    }

    /// An entry found `pushing` (and the rest of its batch): did the push happen?
    async fn reconcile(&self, ws: &Arc<Workspace>, entry: &QueueEntry) -> Result<(), String> {
        let landing = entry.landing_sha.clone().or(entry.result_sha.clone());
        let (Some(tip), Some(landing)) = (entry.target_sha.clone(), landing) else {
            self.requeue(entry, "no result on record: rebuilding").await;
            return Ok(());
        };
        let group: Vec<QueueEntry> = self
            .state
            .store
            .open_entries(&self.repo.name)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|e| {
                e.state == EntryState::Pushing
                    && e.landing_sha.as_ref().or(e.result_sha.as_ref()) == Some(&landing)
            })
            .collect();
        let now = {
            let (ws, target) = (ws.clone(), self.repo.target.clone());
            blocking(move || ws.fetch_branch(&target)).await?
        }
        .map_err(|e| format!("fetching {}: {e}", self.repo.target))?;
        let landed = {
            let (ws, landing, now) = (ws.clone(), landing.clone(), now.clone());
            blocking(move || ws.is_ancestor(&landing, &now)).await?
        }
        .map_err(|e| e.to_string())?;
        if landed {
            tracing::info!(entry = %entry.id, "reconciled: the push had happened");
            for e in &group {
                self.merged(e).await?;
            }
            return Ok(());
        }
        if now == tip {
            // Checked and tested on exactly this tip, and not pushed: push now.
            tracing::info!(entry = %entry.id, "reconciled: pushing again");
            return self.push(ws, &group, &tip, &landing).await;
        }
        let why = format!(
            "{} moved while {} was being landed: rebuilding",
            self.repo.target,
            short(&entry.head_sha)
        );
        for e in &group {
            self.requeue(e, &why).await;
        }
        Ok(())
    }

    /// Records an entry's merge (ledger, track record, log) and tells the author.
    async fn merged(&self, entry: &QueueEntry) -> Result<(), String> {
        let (Some(built), Some(prev)) = (&entry.result_sha, &entry.target_sha) else {
            return Err(format!("entry {} has no result on record", entry.id));
        };
        let merge = NewMerge {
            repo: entry.repo.clone(),
            change_ref: entry.change_ref.clone(),
            head_sha: entry.head_sha.clone(),
            merged_sha: built.clone(),
            target: self.repo.target.clone(),
            target_sha: prev.clone(),
            method: self.repo.method.clone(),
            agent: entry.agent.clone(),
            decision_id: entry.decision_id.clone(),
            check_digest: entry
                .check_digest
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        };
        let record = self
            .state
            .store
            .record_merge(&entry.id, &merge)
            .await
            .map_err(|e| e.to_string())?;
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
            land::github_api(&self.state),
            crate::github::pr_number(&entry.change_ref),
        ) {
            let (repo, built) = (self.repo.clone(), built.clone());
            let _ =
                blocking(move || land::close_pull_request(&api, &gh, number, &repo, &built)).await;
        }
        Ok(())
    }

    /// Takes an entry out with a reason, and tells the author.
    async fn eject(&self, entry: &QueueEntry, reason: &str) {
        let reason = bounded(reason);
        if !self.move_to(entry, EntryState::Ejected, &reason).await {
            return;
        }
        tracing::info!(repo = %entry.repo, change = %entry.change_ref, reason = %reason, "ejected from the merge queue");
        self.state.metrics.ejections.fetch_add(1, Ordering::Relaxed);
        self.notify(entry, "lockgate.queue_ejected", &reason, None)
            .await;
        if let (Some(gh), Some(api), Some(number)) = (
            self.repo.github.clone(),
            land::github_api(&self.state),
            crate::github::pr_number(&entry.change_ref),
        ) {
            let body = format!(
                "Lockgate's merge queue took this pull request out: {reason}\n\nFix it and push: the new head is checked and can enter again."
            );
            let _ = blocking(move || land::comment_on_pull_request(&api, &gh, number, &body)).await;
        }
    }

    /// Sends an entry back to the queue (it will be rebuilt), saying why.
    async fn requeue(&self, entry: &QueueEntry, reason: &str) {
        self.move_to(entry, EntryState::Queued, &bounded(reason))
            .await;
    }

    /// Moves an entry, from whatever state it is in now, to `to` unless it is merged or
    /// ejected already; whether this call moved it.
    async fn move_to(&self, entry: &QueueEntry, to: EntryState, reason: &str) -> bool {
        let store = &self.state.store;
        let Ok(now) = store.queue_entry(&entry.id).await else {
            return false;
        };
        if now.state.is_final() {
            return false;
        }
        match store
            .transition(&entry.id, &moved(now.state, to, reason))
            .await
        {
            Ok(moved) => moved,
            Err(e) => {
                tracing::warn!(error = %e, entry = %entry.id, to = to.as_str(), "moving a queue entry");
                false
            }
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
                "{}/ui/merges?repo={}", u.trim_end_matches('/'), crate::web::urlencode(&entry.repo)
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
        landing_sha: None,
        built: false,
    }
}

/// A new reason on a queued entry.
fn note(reason: &str) -> Transition<'_> {
    moved(EntryState::Queued, EntryState::Queued, reason)
}

/// A reason short enough for the ledger.
pub(super) fn bounded(reason: &str) -> String {
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
