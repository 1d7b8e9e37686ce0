//! The merge queue's ledger (migration 0011): entries and their states, the merges the
//! queue made (the change's head → the commit that landed), and the lease that lets one
//! replica work a repository's queue at a time.
//!
//! Every state change is a conditional UPDATE from the state the caller last saw, so a
//! replica that lost its lease cannot overwrite the one that took over.

use crate::records::{check_len, check_sha};
use crate::{MAX_LIST, MAX_NAME, MAX_TEXT, Store, StoreError, new_id, now_ms};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Where an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Waiting for its turn.
    Queued,
    /// Its result is built and being re-checked.
    Checking,
    /// The test command runs on its result.
    Testing,
    /// The branch is being advanced to its result (written before the push).
    Pushing,
    /// Landed.
    Merged,
    /// Taken out, with a reason.
    Ejected,
}

impl EntryState {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryState::Queued => "queued",
            EntryState::Checking => "checking",
            EntryState::Testing => "testing",
            EntryState::Pushing => "pushing",
            EntryState::Merged => "merged",
            EntryState::Ejected => "ejected",
        }
    }

    fn parse(s: &str) -> Result<EntryState, StoreError> {
        Ok(match s {
            "queued" => EntryState::Queued,
            "checking" => EntryState::Checking,
            "testing" => EntryState::Testing,
            "pushing" => EntryState::Pushing,
            "merged" => EntryState::Merged,
            "ejected" => EntryState::Ejected,
            other => {
                return Err(StoreError::Invalid {
                    field: "state",
                    reason: format!("{other:?} in the database"),
                });
            }
        })
    }

    /// Merged or ejected: nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(self, EntryState::Merged | EntryState::Ejected)
    }
}

/// A change head entering the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEntry {
    pub repo: String,
    pub change_ref: String,
    pub head_sha: String,
    /// The decision that let it in.
    pub decision_id: String,
    pub agent: Option<String>,
}

impl NewEntry {
    fn validate(&self) -> Result<(), StoreError> {
        check_len("repo", &self.repo, 1, MAX_NAME)?;
        check_len("change_ref", &self.change_ref, 1, MAX_NAME)?;
        check_sha("head_sha", &self.head_sha)?;
        check_len("decision_id", &self.decision_id, 1, MAX_NAME)?;
        if let Some(a) = &self.agent {
            check_len("agent", a, 1, MAX_NAME)?;
        }
        Ok(())
    }
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub id: String,
    pub repo: String,
    pub change_ref: String,
    pub head_sha: String,
    pub decision_id: String,
    pub agent: Option<String>,
    pub state: EntryState,
    /// What happened last (why it was ejected, what it waits for).
    pub reason: String,
    /// The target tip its result was built on (while checking, testing, pushing).
    pub target_sha: Option<String>,
    /// The built result (the commit that lands).
    pub result_sha: Option<String>,
    /// The input digest of the gate's re-check of the result (it replays that decision).
    pub check_digest: Option<String>,
    /// The tested commit the branch is moved to when it lands (its own result, or the
    /// last result of its batch): set with `pushing`.
    pub landing_sha: Option<String>,
    /// How many times its result was built (a moved target means another build).
    pub attempts: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

const ENTRY_COLUMNS: &str = "id, repo, change_ref, head_sha, decision_id, agent, state, reason, \
     target_sha, result_sha, check_digest, landing_sha, attempts, created_ms, updated_ms";

fn entry_from_row(row: &AnyRow) -> Result<QueueEntry, StoreError> {
    Ok(QueueEntry {
        id: row.try_get("id")?,
        repo: row.try_get("repo")?,
        change_ref: row.try_get("change_ref")?,
        head_sha: row.try_get("head_sha")?,
        decision_id: row.try_get("decision_id")?,
        agent: row.try_get("agent")?,
        state: EntryState::parse(&row.try_get::<String, _>("state")?)?,
        reason: row.try_get("reason")?,
        target_sha: row.try_get("target_sha")?,
        result_sha: row.try_get("result_sha")?,
        check_digest: row.try_get("check_digest")?,
        landing_sha: row.try_get("landing_sha")?,
        attempts: row.try_get("attempts")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

/// A state change of an entry, applied only from the state the caller saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition<'a> {
    pub from: EntryState,
    pub to: EntryState,
    pub reason: &'a str,
    pub target_sha: Option<&'a str>,
    pub result_sha: Option<&'a str>,
    pub check_digest: Option<&'a str>,
    pub landing_sha: Option<&'a str>,
    /// Counts one more build.
    pub built: bool,
}

/// A merge the queue made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMerge {
    pub repo: String,
    pub change_ref: String,
    /// The change's head that was queued (and approved, and attested).
    pub head_sha: String,
    /// The commit now on the target branch.
    pub merged_sha: String,
    /// The target branch.
    pub target: String,
    /// The tip it was built on.
    pub target_sha: String,
    /// `merge`, `squash` or `rebase`.
    pub method: String,
    pub agent: Option<String>,
    /// The decision that let the change in.
    pub decision_id: String,
    /// The input digest of the gate's re-check of the merged result.
    pub check_digest: String,
}

impl NewMerge {
    fn validate(&self) -> Result<(), StoreError> {
        check_len("repo", &self.repo, 1, MAX_NAME)?;
        check_len("change_ref", &self.change_ref, 1, MAX_NAME)?;
        check_sha("head_sha", &self.head_sha)?;
        check_sha("merged_sha", &self.merged_sha)?;
        check_sha("target_sha", &self.target_sha)?;
        check_len("target", &self.target, 1, MAX_NAME)?;
        check_len("method", &self.method, 1, 16)?;
        check_len("decision_id", &self.decision_id, 1, MAX_NAME)?;
        check_len("check_digest", &self.check_digest, 1, MAX_NAME)?;
        if let Some(a) = &self.agent {
            check_len("agent", a, 1, MAX_NAME)?;
        }
        Ok(())
    }
}

/// A stored merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeRecord {
    pub id: String,
    pub repo: String,
    pub change_ref: String,
    pub head_sha: String,
    pub merged_sha: String,
    pub target: String,
    pub target_sha: String,
    pub method: String,
    pub agent: Option<String>,
    pub decision_id: String,
    pub check_digest: String,
    pub created_ms: i64,
    /// Its index in the transparency log, once published.
    pub log_index: Option<i64>,
}

const MERGE_COLUMNS: &str = "id, repo, change_ref, head_sha, merged_sha, target, target_sha, \
     method, agent, decision_id, check_digest, created_ms, log_index";

fn merge_from_row(row: &AnyRow) -> Result<MergeRecord, StoreError> {
    Ok(MergeRecord {
        id: row.try_get("id")?,
        repo: row.try_get("repo")?,
        change_ref: row.try_get("change_ref")?,
        head_sha: row.try_get("head_sha")?,
        merged_sha: row.try_get("merged_sha")?,
        target: row.try_get("target")?,
        target_sha: row.try_get("target_sha")?,
        method: row.try_get("method")?,
        agent: row.try_get("agent")?,
        decision_id: row.try_get("decision_id")?,
        check_digest: row.try_get("check_digest")?,
        created_ms: row.try_get("created_ms")?,
        log_index: row.try_get("log_index")?,
    })
}

impl Store {
    /// Puts a change's head in the queue; `(entry, true)` when this call added it.
    /// Older open entries of the same change are ejected: only the newest head lands.
    pub async fn enqueue(&self, e: &NewEntry) -> Result<(QueueEntry, bool), StoreError> {
        e.validate()?;
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO queue_entries (id, repo, change_ref, head_sha, decision_id, agent, state, reason, \
             attempts, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, 'queued', 'waiting for its turn', 0, $7, $7) \
             ON CONFLICT (repo, change_ref, head_sha) DO NOTHING",
        )
        .bind(new_id())
        .bind(&e.repo)
        .bind(&e.change_ref)
        .bind(&e.head_sha)
        .bind(&e.decision_id)
        .bind(e.agent.as_deref())
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            sqlx::query(
                "UPDATE queue_entries SET state = 'ejected', reason = 'superseded by a newer head', updated_ms = $1 \
                 WHERE repo = $2 AND change_ref = $3 AND head_sha <> $4 AND state = 'queued'",
            )
            .bind(now)
            .bind(&e.repo)
            .bind(&e.change_ref)
            .bind(&e.head_sha)
            .execute(&self.pool)
            .await?;
        }
        let row = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM queue_entries WHERE repo = $1 AND change_ref = $2 AND head_sha = $3"
        ))
        .bind(&e.repo)
        .bind(&e.change_ref)
        .bind(&e.head_sha)
        .fetch_one(&self.pool)
        .await?;
        Ok((entry_from_row(&row)?, inserted))
    }

    /// One entry by id.
    pub async fn queue_entry(&self, id: &str) -> Result<QueueEntry, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM queue_entries WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("queue entry {id}")))?;
        entry_from_row(&row)
    }

    /// A repository's entries still open (in the queue or being worked), oldest first:
    /// the first is the head of the queue.
    pub async fn open_entries(&self, repo: &str) -> Result<Vec<QueueEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM queue_entries WHERE repo = $1 \
             AND state NOT IN ('merged', 'ejected') ORDER BY created_ms, id LIMIT {MAX_LIST}"
        ))
        .bind(repo)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// The newest entries of every repository (or one), open and finished, newest first.
    pub async fn recent_entries(
        &self,
        repo: Option<&str>,
        limit: u32,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let limit = limit.min(MAX_LIST);
        let rows = match repo {
            Some(r) => {
                sqlx::query(&format!(
                    "SELECT {ENTRY_COLUMNS} FROM queue_entries WHERE repo = $1 \
                     ORDER BY updated_ms DESC, id LIMIT {limit}"
                ))
                .bind(r)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {ENTRY_COLUMNS} FROM queue_entries ORDER BY updated_ms DESC, id LIMIT {limit}"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(entry_from_row).collect()
    }

    /// Moves an entry from `t.from` to `t.to`; false (and nothing changed) when it is
    /// no longer in `t.from` — someone else moved it.
    pub async fn transition(&self, id: &str, t: &Transition<'_>) -> Result<bool, StoreError> {
        check_len("reason", t.reason, 1, MAX_TEXT)?;
        if let Some(d) = t.check_digest {
            check_len("check_digest", d, 1, MAX_NAME)?;
        }
        for (field, sha) in [
            ("target_sha", t.target_sha),
            ("result_sha", t.result_sha),
            ("landing_sha", t.landing_sha),
        ] {
            if let Some(s) = sha {
                check_sha(field, s)?;
            }
        }
        let changed = sqlx::query(
            "UPDATE queue_entries SET state = $1, reason = $2, \
             target_sha = COALESCE($3, target_sha), result_sha = COALESCE($4, result_sha), \
             check_digest = COALESCE($9, check_digest), landing_sha = COALESCE($10, landing_sha), \
             attempts = attempts + $5, updated_ms = $6 WHERE id = $7 AND state = $8",
        )
        .bind(t.to.as_str())
        .bind(t.reason)
        .bind(t.target_sha)
        .bind(t.result_sha)
        .bind(i64::from(t.built))
        .bind(now_ms())
        .bind(id)
        .bind(t.from.as_str())
        .bind(t.check_digest)
        .bind(t.landing_sha)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Records a merge and marks its entry merged, in one transaction; recording the
    /// same merged commit again changes nothing. The merge's outcome (the agent's track
    /// record) is recorded with it.
    pub async fn record_merge(
        &self,
        entry_id: &str,
        m: &NewMerge,
    ) -> Result<MergeRecord, StoreError> {
        m.validate()?;
        self.ensure_repository(&m.repo).await?;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO merges (id, repo, change_ref, head_sha, merged_sha, target, target_sha, method, agent, \
             decision_id, check_digest, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (repo, merged_sha) DO NOTHING",
        )
        .bind(new_id())
        .bind(&m.repo)
        .bind(&m.change_ref)
        .bind(&m.head_sha)
        .bind(&m.merged_sha)
        .bind(&m.target)
        .bind(&m.target_sha)
        .bind(&m.method)
        .bind(m.agent.as_deref())
        .bind(&m.decision_id)
        .bind(&m.check_digest)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE queue_entries SET state = 'merged', reason = $1, result_sha = $2, updated_ms = $3 \
             WHERE id = $4 AND state <> 'merged'",
        )
        .bind(format!("merged into {} as {}", m.target, m.merged_sha))
        .bind(&m.merged_sha)
        .bind(now)
        .bind(entry_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO outcomes (id, repo, change_ref, commit_sha, agent, outcome, created_ms) \
             VALUES ($1, $2, $3, $4, $5, 'merged', $6) ON CONFLICT (repo, commit_sha, outcome) DO NOTHING",
        )
        .bind(new_id())
        .bind(&m.repo)
        .bind(&m.change_ref)
        .bind(&m.merged_sha)
        .bind(m.agent.as_deref())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let row = sqlx::query(&format!(
            "SELECT {MERGE_COLUMNS} FROM merges WHERE repo = $1 AND merged_sha = $2"
        ))
        .bind(&m.repo)
        .bind(&m.merged_sha)
        .fetch_one(&self.pool)
        .await?;
        merge_from_row(&row)
    }

    /// Merges that landed `sha` or were made from it (a change head), oldest first.
    pub async fn merges_for_commit(
        &self,
        repo: &str,
        sha: &str,
    ) -> Result<Vec<MergeRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MERGE_COLUMNS} FROM merges WHERE repo = $1 AND (merged_sha = $2 OR head_sha = $2) \
             ORDER BY created_ms, id LIMIT {MAX_LIST}"
        ))
        .bind(repo)
        .bind(sha)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(merge_from_row).collect()
    }

    /// Merges not yet in the transparency log, oldest first.
    pub async fn unlogged_merges(&self, limit: u32) -> Result<Vec<MergeRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MERGE_COLUMNS} FROM merges WHERE log_index IS NULL ORDER BY created_ms, id LIMIT {}",
            limit.min(MAX_LIST)
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(merge_from_row).collect()
    }

    /// Records where a merge was logged.
    pub async fn mark_merge_logged(&self, id: &str, index: u64) -> Result<bool, StoreError> {
        let changed =
            sqlx::query("UPDATE merges SET log_index = $1 WHERE id = $2 AND log_index IS NULL")
                .bind(index as i64)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(changed == 1)
    }

    /// Takes or renews the lease on `repo`'s queue for `holder` until `ttl_ms` from now;
    /// true when `holder` has it (it was free, lapsed, or already `holder`'s).
    pub async fn take_queue_lease(
        &self,
        repo: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        check_len("repo", repo, 1, MAX_NAME)?;
        check_len("holder", holder, 1, MAX_NAME)?;
        let now = now_ms();
        let changed = sqlx::query(
            "INSERT INTO queue_leases (repo, holder, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (repo) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE queue_leases.until_ms < $4 OR queue_leases.holder = excluded.holder",
        )
        .bind(repo)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Gives a lease back (at shutdown), so another replica need not wait for it.
    pub async fn release_queue_lease(&self, repo: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM queue_leases WHERE repo = $1 AND holder = $2")
            .bind(repo)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
