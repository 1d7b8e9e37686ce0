//! Lockgate's ledger: the shared state of `lockgate serve`.
//!
//! One interface, [`Store`], over two real backends through sqlx's `Any` driver: an
//! embedded SQLite file (the default: nothing to set up) and PostgreSQL (for teams and
//! for several server replicas). Both run the same migrations (`migrations/`, written in
//! the SQL both speak: portable types, application-made ids, `ON CONFLICT` upserts) and
//! the same statements, so they behave the same; the test suite runs every case on both.
//!
//! What it holds: repositories, agents, attestations, decisions (with the input digest
//! they were made from), approvals bound to a head commit, merge outcomes (an agent's
//! track record) and merge holds. Authorization (who may approve what) is the server's
//! job; the store enforces shape, bounds and idempotence.
//!
//! ```no_run
//! # async fn demo() -> Result<(), lockgate_store::StoreError> {
//! let store = lockgate_store::Store::open("sqlite:///var/lib/lockgate/ledger.db").await?;
//! let approvals = store.approvals_for_head("acme/api", "pr/42", "3f1c…").await?;
//! # Ok(()) }
//! ```

pub mod budgets;
mod group_commit;
pub mod queue;
mod records;
pub mod scratch;
pub mod spend;
mod tokens;

pub use budgets::{BudgetLine, BudgetState, CallRecord, Exhausted, FinishedCall, NewReservation};
pub use queue::{EntryState, MergeRecord, NewEntry, NewMerge, QueueEntry, Transition};
pub use spend::{SpendBy, SpendRow};
pub use tokens::{Role, TokenRecord};

pub use records::*;
use records::{
    APPROVAL_COLUMNS, ATTESTATION_COLUMNS, DECISION_COLUMNS, ESCALATION_COLUMNS, HOLD_COLUMNS,
    approval_from_row, attestation_from_row, check_len, decision_from_row, escalation_from_row,
    hold_from_row,
};

use lockgate_core::trust::TrackRecord;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use std::time::Duration;

/// `decisions d` rows that are their change's latest decision and need approval.
const PENDING: &str = "d.verdict = 'needs_approval' \
     AND NOT EXISTS (SELECT 1 FROM decisions n WHERE n.repo = d.repo AND n.change_ref = d.change_ref \
         AND (n.created_ms > d.created_ms OR (n.created_ms = d.created_ms AND n.id > d.id)))";

/// The migrations, embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Group-commit writers for decisions. SQLite has one writer at a time anyway;
    /// on PostgreSQL a few overlap their commits (measured: 3–4 writers gave p50 15–17 ms
    /// and p99 85 ms at 1,000 decisions/s where one statement per request queued to
    /// 65–1,160 ms p50 and 8 writers to 460 ms; docs/performance.md).
    fn writers(self) -> usize {
        match self {
            Backend::Sqlite => 1,
            Backend::Postgres => 4,
        }
    }
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL {0:?}: expected sqlite://PATH or postgres://…")]
    BadUrl(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The ledger.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// Repositories known to exist (rows are never deleted), so recording skips a write.
    known_repos: std::sync::Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
    /// Group commit of decisions (SQLite, where commits are serialized anyway).
    decision_writer: group_commit::DecisionWriter,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh random id (128 bits, hex).
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to
    /// date. `sqlite://PATH` (a file; `sqlite::memory:` for a throwaway) or
    /// `postgres://user@host/db`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let url = if rest == ":memory:" || rest.contains("mode=") {
                url.to_string()
            } else {
                format!("sqlite:{rest}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        let options = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(10))
            .max_connections(match backend {
                // One writer at a time anyway; a few readers alongside (WAL).
                Backend::Sqlite if url.contains(":memory:") => 1,
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Durable on commit (a crash or kill -9 loses nothing committed),
                        // readers never block the writer, writers wait instead of failing.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            });
        let pool = options.connect(&url).await?;
        MIGRATOR.run(&pool).await?;
        let decision_writer = group_commit::DecisionWriter::spawn(pool.clone(), backend.writers());
        Ok(Store {
            pool,
            backend,
            known_repos: Default::default(),
            decision_writer,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection (graceful shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Records a repository by name (idempotent).
    pub async fn ensure_repository(&self, name: &str) -> Result<(), StoreError> {
        check_len("repo", name, 1, MAX_NAME)?;
        if self
            .known_repos
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
        {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO repositories (name, created_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        let mut known = self.known_repos.write().unwrap_or_else(|e| e.into_inner());
        if known.len() < 100_000 {
            known.insert(name.to_string());
        }
        Ok(())
    }

    /// Records an agent identity (idempotent; display and kind are updated).
    pub async fn upsert_agent(
        &self,
        id: &str,
        display: &str,
        kind: &str,
    ) -> Result<(), StoreError> {
        check_len("agent", id, 1, MAX_NAME)?;
        check_len("display", display, 0, MAX_NAME)?;
        check_len("kind", kind, 1, 32)?;
        sqlx::query(
            "INSERT INTO agents (id, display, kind, created_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET display = excluded.display, kind = excluded.kind",
        )
        .bind(id)
        .bind(display)
        .bind(kind)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a decision. The same input for the same change and head is the same decision:
    /// recording it again returns the stored one (`inserted` false).
    pub async fn record_decision(
        &self,
        d: &NewDecision,
    ) -> Result<Recorded<DecisionRecord>, StoreError> {
        d.validate()?;
        self.ensure_repository(&d.repo).await?;
        self.decision_writer.record(d.clone()).await
    }

    /// Every decision for a change, oldest first.
    pub async fn decision_history(
        &self,
        repo: &str,
        change_ref: &str,
    ) -> Result<Vec<DecisionRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DECISION_COLUMNS} FROM decisions WHERE repo = $1 AND change_ref = $2 \
             ORDER BY created_ms, id LIMIT {MAX_LIST}"
        ))
        .bind(repo)
        .bind(change_ref)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decision_from_row).collect()
    }

    /// Decisions made for a head commit (any change that had it), oldest first.
    pub async fn decisions_for_commit(
        &self,
        repo: &str,
        head_sha: &str,
    ) -> Result<Vec<DecisionRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DECISION_COLUMNS} FROM decisions WHERE repo = $1 AND head_sha = $2 \
             ORDER BY created_ms, id LIMIT {MAX_LIST}"
        ))
        .bind(repo)
        .bind(head_sha)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decision_from_row).collect()
    }

    /// Changes whose latest decision needs approval, oldest first (the pending queue).
    pub async fn pending(
        &self,
        repo: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DecisionRecord>, StoreError> {
        let limit = limit.min(MAX_LIST);
        let sql = format!(
            "SELECT {DECISION_COLUMNS} FROM decisions d WHERE {PENDING} \
             AND ($1 = '' OR d.repo = $2) ORDER BY d.created_ms, d.id LIMIT {limit}"
        );
        let repo = repo.unwrap_or("");
        let rows = sqlx::query(&sql)
            .bind(repo)
            .bind(repo)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decision_from_row).collect()
    }

    /// How many changes are pending (as [`Store::pending`] lists them), without
    /// reading their documents.
    pub async fn pending_count(&self) -> Result<u64, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM decisions d WHERE {PENDING}"
        ))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")?.max(0) as u64)
    }

    /// Records an approval or a change request for an exact head commit. One row per
    /// person per head: recording the same state again changes nothing (idempotent);
    /// a different state replaces the earlier one.
    pub async fn record_approval(
        &self,
        a: &NewApproval,
    ) -> Result<Recorded<ApprovalRecord>, StoreError> {
        a.validate()?;
        self.ensure_repository(&a.repo).await?;
        let id = new_id();
        let now = now_ms();
        let result = sqlx::query(
            "INSERT INTO approvals (id, repo, change_ref, head_sha, approver, state, source, comment, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (repo, change_ref, head_sha, approver) DO UPDATE \
             SET state = excluded.state, source = excluded.source, comment = excluded.comment, \
                 created_ms = excluded.created_ms, log_index = NULL \
             WHERE approvals.state <> excluded.state",
        )
        .bind(&id)
        .bind(&a.repo)
        .bind(&a.change_ref)
        .bind(&a.head_sha)
        .bind(&a.approver)
        .bind(a.state.as_str())
        .bind(&a.source)
        .bind(&a.comment)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals \
             WHERE repo = $1 AND change_ref = $2 AND head_sha = $3 AND approver = $4"
        ))
        .bind(&a.repo)
        .bind(&a.change_ref)
        .bind(&a.head_sha)
        .bind(&a.approver)
        .fetch_one(&self.pool)
        .await?;
        Ok(Recorded {
            record: approval_from_row(&row)?,
            changed: result.rows_affected() == 1,
        })
    }

    /// The approvals and change requests given for exactly this head of a change.
    /// Those given for earlier heads do not count: a new push needs new approvals.
    pub async fn approvals_for_head(
        &self,
        repo: &str,
        change_ref: &str,
        head_sha: &str,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE repo = $1 AND change_ref = $2 AND head_sha = $3 \
             ORDER BY created_ms, id LIMIT {MAX_LIST}"
        ))
        .bind(repo)
        .bind(change_ref)
        .bind(head_sha)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(approval_from_row).collect()
    }

    /// Approvals not yet in the transparency log, oldest first.
    pub async fn unlogged_approvals(&self, limit: u32) -> Result<Vec<ApprovalRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE log_index IS NULL \
             ORDER BY created_ms, id LIMIT {}",
            limit.min(MAX_LIST)
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(approval_from_row).collect()
    }

    /// Records where an approval was logged — if it is still in the state that was
    /// logged (a change of state since then is logged on its own).
    pub async fn mark_approval_logged(
        &self,
        a: &ApprovalRecord,
        index: u64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE approvals SET log_index = $1 \
             WHERE id = $2 AND state = $3 AND created_ms = $4 AND log_index IS NULL",
        )
        .bind(index as i64)
        .bind(&a.id)
        .bind(a.state.as_str())
        .bind(a.created_ms)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Opens the escalation of a change at a head, unless one exists. Returns it when
    /// this call opened it (of several replicas racing, exactly one gets it).
    pub async fn open_escalation(
        &self,
        repo: &str,
        change_ref: &str,
        head_sha: &str,
        reason: &str,
    ) -> Result<Option<EscalationRecord>, StoreError> {
        check_len("repo", repo, 1, MAX_NAME)?;
        check_len("change_ref", change_ref, 1, MAX_NAME)?;
        check_len("head_sha", head_sha, 1, MAX_NAME)?;
        check_len("reason", reason, 1, MAX_TEXT)?;
        let row = sqlx::query(&format!(
            "INSERT INTO escalations (id, repo, change_ref, head_sha, reason, created_ms, hold_placed, attempts, lease_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, 0, 0) \
             ON CONFLICT (repo, change_ref, head_sha) DO NOTHING RETURNING {ESCALATION_COLUMNS}"
        ))
        .bind(new_id())
        .bind(repo)
        .bind(change_ref)
        .bind(head_sha)
        .bind(reason)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(escalation_from_row).transpose()
    }

    /// Whether a change was escalated at this head.
    pub async fn escalation_for(
        &self,
        repo: &str,
        change_ref: &str,
        head_sha: &str,
    ) -> Result<Option<EscalationRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ESCALATION_COLUMNS} FROM escalations WHERE repo = $1 AND change_ref = $2 AND head_sha = $3"
        ))
        .bind(repo)
        .bind(change_ref)
        .bind(head_sha)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(escalation_from_row).transpose()
    }

    /// Escalations whose hold is not placed or whose notice is not acknowledged (and
    /// has been tried fewer than `max_attempts` times), oldest first.
    pub async fn open_escalations(
        &self,
        max_attempts: u32,
    ) -> Result<Vec<EscalationRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ESCALATION_COLUMNS} FROM escalations \
             WHERE hold_placed = 0 OR (notified_ms IS NULL AND attempts < $1) \
             ORDER BY created_ms, id LIMIT {MAX_LIST}"
        ))
        .bind(i64::from(max_attempts))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(escalation_from_row).collect()
    }

    /// Notes that the escalation's hold is placed.
    pub async fn escalation_hold_placed(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE escalations SET hold_placed = 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Takes the right to send the escalation's notice for `lease` (so two replicas do
    /// not both send it); false when another holds it or it was acknowledged.
    pub async fn lease_escalation_notice(
        &self,
        id: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let result = sqlx::query(
            "UPDATE escalations SET lease_ms = $1, attempts = attempts + 1 \
             WHERE id = $2 AND notified_ms IS NULL AND lease_ms < $3",
        )
        .bind(now + lease.as_millis() as i64)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records the outcome of sending the notice: acknowledged, or the error (tried
    /// again after `retry_after`).
    pub async fn escalation_notice_result(
        &self,
        id: &str,
        result: Result<(), String>,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        match result {
            Ok(()) => {
                sqlx::query(
                    "UPDATE escalations SET notified_ms = $1, last_error = NULL WHERE id = $2",
                )
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
            }
            Err(e) => {
                let e: String = e.chars().take(MAX_TEXT).collect();
                sqlx::query("UPDATE escalations SET last_error = $1, lease_ms = $2 WHERE id = $3")
                    .bind(e)
                    .bind(now_ms() + retry_after.as_millis() as i64)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Notes a webhook delivery id; false when it was seen before (a replay).
    pub async fn first_delivery(&self, id: &str, event: &str) -> Result<bool, StoreError> {
        check_len("delivery", id, 1, 128)?;
        check_len("event", event, 1, 64)?;
        let result = sqlx::query(
            "INSERT INTO deliveries (id, event, received_ms) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(event)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The forge comment Lockgate keeps on a pull request, if it made one.
    pub async fn forge_comment(&self, repo: &str, number: u64) -> Result<Option<u64>, StoreError> {
        let row =
            sqlx::query("SELECT comment_id FROM forge_comments WHERE repo = $1 AND number = $2")
                .bind(repo)
                .bind(number as i64)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>("comment_id"))
            .transpose()?
            .map(|id| id.max(0) as u64))
    }

    /// Remembers the forge comment of a pull request.
    pub async fn set_forge_comment(
        &self,
        repo: &str,
        number: u64,
        comment_id: u64,
    ) -> Result<(), StoreError> {
        check_len("repo", repo, 1, MAX_NAME)?;
        sqlx::query(
            "INSERT INTO forge_comments (repo, number, comment_id) VALUES ($1, $2, $3) \
             ON CONFLICT (repo, number) DO UPDATE SET comment_id = excluded.comment_id",
        )
        .bind(repo)
        .bind(number as i64)
        .bind(comment_id as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records what became of a change (idempotent per commit and outcome).
    pub async fn record_outcome(&self, o: &NewOutcome) -> Result<bool, StoreError> {
        o.validate()?;
        self.ensure_repository(&o.repo).await?;
        let result = sqlx::query(
            "INSERT INTO outcomes (id, repo, change_ref, commit_sha, agent, outcome, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (repo, commit_sha, outcome) DO NOTHING",
        )
        .bind(new_id())
        .bind(&o.repo)
        .bind(&o.change_ref)
        .bind(&o.commit_sha)
        .bind(o.agent.as_deref())
        .bind(o.outcome.as_str())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// An agent's merged / reverted / rejected counts across repositories.
    pub async fn track_record(&self, agent: &str) -> Result<TrackRecord, StoreError> {
        let rows = sqlx::query(
            "SELECT outcome, COUNT(*) AS n FROM outcomes WHERE agent = $1 GROUP BY outcome",
        )
        .bind(agent)
        .fetch_all(&self.pool)
        .await?;
        let mut record = TrackRecord::default();
        for row in rows {
            let outcome: String = row.try_get("outcome")?;
            let n: i64 = row.try_get("n")?;
            let n = n.max(0) as u64;
            match outcome.as_str() {
                "merged" => record.merged = n,
                "reverted" => record.reverted = n,
                "rejected" => record.rejected = n,
                _ => {}
            }
        }
        Ok(record)
    }

    /// Places a merge hold; returns it.
    pub async fn place_hold(&self, h: &NewHold) -> Result<HoldRecord, StoreError> {
        self.place_hold_with_id(&new_id(), h).await
    }

    /// Places a hold under a chosen id; placing the same id again returns the first
    /// (whoever placed it, and whether it was released since).
    pub async fn place_hold_with_id(
        &self,
        id: &str,
        h: &NewHold,
    ) -> Result<HoldRecord, StoreError> {
        self.insert_hold(id, h).await?;
        self.hold(id).await
    }

    /// Places a hold under `id` unless one with that id exists: `Some` only for the
    /// caller that placed it (so of several replicas racing, one sends the notice).
    pub async fn place_hold_once(
        &self,
        id: &str,
        h: &NewHold,
    ) -> Result<Option<HoldRecord>, StoreError> {
        if !self.insert_hold(id, h).await? {
            return Ok(None);
        }
        self.hold(id).await.map(Some)
    }

    /// Inserts a hold unless its id exists; true when this call inserted it.
    async fn insert_hold(&self, id: &str, h: &NewHold) -> Result<bool, StoreError> {
        h.validate()?;
        check_len("id", id, 1, MAX_NAME)?;
        let inserted = sqlx::query(
            "INSERT INTO holds (id, scope, target, reason, placed_by, created_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(h.scope.as_str())
        .bind(&h.target)
        .bind(&h.reason)
        .bind(&h.placed_by)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Releases a hold (a person does this). Releasing a released hold changes nothing.
    pub async fn release_hold(
        &self,
        id: &str,
        released_by: &str,
    ) -> Result<HoldRecord, StoreError> {
        check_len("released_by", released_by, 1, MAX_NAME)?;
        sqlx::query(
            "UPDATE holds SET released_by = $1, released_ms = $2 WHERE id = $3 AND released_ms IS NULL",
        )
        .bind(released_by)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.hold(id).await
    }

    /// One hold by id.
    pub async fn hold(&self, id: &str) -> Result<HoldRecord, StoreError> {
        let row = sqlx::query(&format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("hold {id}")))?;
        hold_from_row(&row)
    }

    /// Holds not yet released, oldest first.
    pub async fn active_holds(&self) -> Result<Vec<HoldRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {HOLD_COLUMNS} FROM holds WHERE released_ms IS NULL ORDER BY created_ms, id LIMIT {MAX_LIST}"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(hold_from_row).collect()
    }

    /// Records an attestation bundle for a commit (idempotent per bundle digest).
    pub async fn record_attestation(&self, a: &NewAttestation) -> Result<bool, StoreError> {
        a.validate()?;
        self.ensure_repository(&a.repo).await?;
        let result = sqlx::query(
            "INSERT INTO attestations (id, repo, commit_sha, agent, model, digest, bundle, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (repo, commit_sha, digest) DO NOTHING",
        )
        .bind(new_id())
        .bind(&a.repo)
        .bind(&a.commit_sha)
        .bind(&a.agent)
        .bind(a.model.as_deref())
        .bind(&a.digest)
        .bind(&a.bundle)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Attestations recorded for a commit, oldest first.
    pub async fn attestations_for_commit(
        &self,
        repo: &str,
        commit_sha: &str,
    ) -> Result<Vec<AttestationRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTESTATION_COLUMNS} FROM attestations WHERE repo = $1 AND commit_sha = $2 \
             ORDER BY created_ms, id LIMIT {MAX_LIST}"
        ))
        .bind(repo)
        .bind(commit_sha)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attestation_from_row).collect()
    }

    /// Stores a redacted transcript under its digest (idempotent: the same bytes have
    /// the same digest). Returns whether it was new.
    pub async fn put_transcript(&self, t: &TranscriptRecord) -> Result<bool, StoreError> {
        t.validate()?;
        let result = sqlx::query(
            "INSERT INTO transcripts (digest, format, body, steps, created_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(&t.digest)
        .bind(&t.format)
        .bind(&t.body)
        .bind(t.steps.min(i64::MAX as u64) as i64)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// A stored transcript by digest.
    pub async fn transcript(&self, digest: &str) -> Result<Option<TranscriptRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT digest, format, body, steps, created_ms FROM transcripts WHERE digest = $1",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(TranscriptRecord {
                digest: r.try_get("digest")?,
                format: r.try_get("format")?,
                body: r.try_get("body")?,
                steps: r.try_get::<i64, _>("steps")?.max(0) as u64,
                created_ms: r.try_get("created_ms")?,
            })
        })
        .transpose()
    }

    /// Whether a transcript with this digest is stored.
    pub async fn has_transcript(&self, digest: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM transcripts WHERE digest = $1")
            .bind(digest)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Row counts per table (for `/metrics` and tests).
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        let count = |table: &'static str| {
            let pool = self.pool.clone();
            async move {
                let row: AnyRow = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
                    .fetch_one(&pool)
                    .await?;
                Ok::<u64, StoreError>(row.try_get::<i64, _>("n")?.max(0) as u64)
            }
        };
        Ok(Counts {
            decisions: count("decisions").await?,
            approvals: count("approvals").await?,
            outcomes: count("outcomes").await?,
            holds: count("holds").await?,
            attestations: count("attestations").await?,
        })
    }
}
