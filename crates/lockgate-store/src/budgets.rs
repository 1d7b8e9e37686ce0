//! Budgets that cannot be overspent: a model call first reserves its worst-case cost on
//! every budget line that applies (agent per day and month, project per day and month,
//! each spending cap of its credential), all or nothing, in one transaction; after the
//! call it settles with the real cost, releasing the rest.
//!
//! Each line is raised by one conditional `UPDATE … WHERE spent + reserved + amount <=
//! limit`, which PostgreSQL re-evaluates on the latest row version after waiting for a
//! concurrent writer, and which SQLite runs with one writer at a time; so no number of
//! concurrent callers, on one replica or several sharing the database, can take a line
//! past its limit. Lines are locked in a fixed order, so two reservations never deadlock.

use crate::records::{MAX_NAME, check_len};
use crate::{Store, StoreError, new_id, now_ms};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// The most budget lines one reservation may hold.
pub const MAX_LINES: usize = 16;

/// One budget line: a scope in a period, with its limit (from the server's config or
/// the credential; never from the agent's request).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BudgetLine {
    /// `agent:ID`, `project:NAME` or `credential:ID:KEY`.
    pub scope: String,
    /// `day:YYYY-MM-DD`, `month:YYYY-MM` (UTC) or `ever`.
    pub period: String,
    pub limit_micros: i64,
}

/// A model call about to be made.
#[derive(Debug, Clone)]
pub struct NewReservation {
    pub agent: String,
    pub project: String,
    pub credential: String,
    pub model: String,
    /// The call's worst-case cost (or, for a lease, the slice reserved).
    pub amount_micros: i64,
    pub lines: Vec<BudgetLine>,
    /// A replica's lease that calls draw from in memory, not a call of its own.
    pub lease: bool,
}

/// A model call made under a lease, recorded after it settled.
#[derive(Debug, Clone)]
pub struct FinishedCall {
    pub id: String,
    pub agent: String,
    pub project: String,
    pub credential: String,
    pub model: String,
    pub requested_model: Option<String>,
    pub upstream: Option<String>,
    /// Its worst case, drawn from the lease.
    pub reserved_micros: i64,
    pub cost_micros: i64,
    pub created_ms: i64,
    pub settled_ms: i64,
    /// The lease it drew from.
    pub lease: String,
}

/// The most calls [`Store::record_calls`] writes in one statement.
pub const MAX_CALL_BATCH: usize = 500;

/// The line that refused a reservation, as it stood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exhausted {
    pub scope: String,
    pub period: String,
    pub limit_micros: i64,
    pub spent_micros: i64,
    pub reserved_micros: i64,
    /// What the refused call would have needed.
    pub needed_micros: i64,
}

/// One model call as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    pub id: String,
    pub agent: String,
    pub project: String,
    pub model: String,
    /// The upstream that answered (after any fallback), once known.
    pub upstream: Option<String>,
    /// The model the agent asked for, when a task-class route chose `model` instead.
    pub requested_model: Option<String>,
    pub reserved_micros: i64,
    /// `None` while the call is open.
    pub cost_micros: Option<i64>,
    pub created_ms: i64,
}

/// A budget line's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetState {
    pub scope: String,
    pub period: String,
    pub limit_micros: i64,
    pub spent_micros: i64,
    pub reserved_micros: i64,
}

impl NewReservation {
    fn validate(&self) -> Result<(), StoreError> {
        check_len("agent", &self.agent, 1, MAX_NAME)?;
        check_len("project", &self.project, 1, MAX_NAME)?;
        check_len("credential", &self.credential, 1, MAX_NAME)?;
        check_len("model", &self.model, 1, MAX_NAME)?;
        if self.amount_micros < 0 {
            return Err(StoreError::Invalid {
                field: "amount_micros",
                reason: "negative".into(),
            });
        }
        if self.lines.len() > MAX_LINES {
            return Err(StoreError::Invalid {
                field: "lines",
                reason: format!("at most {MAX_LINES}"),
            });
        }
        for line in &self.lines {
            check_len("scope", &line.scope, 1, MAX_NAME)?;
            check_len("period", &line.period, 1, 32)?;
            if line.limit_micros < 0 {
                return Err(StoreError::Invalid {
                    field: "limit_micros",
                    reason: "negative".into(),
                });
            }
        }
        Ok(())
    }
}

impl Store {
    /// Reserves `r.amount_micros` on every line of `r`, or on none: `Ok(Err(line))`
    /// names the first line that had no room. `Ok(Ok(id))` is the reservation to settle.
    pub async fn reserve(
        &self,
        r: &NewReservation,
    ) -> Result<Result<String, Exhausted>, StoreError> {
        r.validate()?;
        let mut lines = r.lines.clone();
        lines.sort();
        lines.dedup_by(|a, b| a.scope == b.scope && a.period == b.period);
        let mut tx = self.pool.begin().await?;
        for line in &lines {
            if !raise(&mut tx, line, r.amount_micros).await? {
                // The row may not exist yet: make it, then try once more.
                sqlx::query(
                    "INSERT INTO budgets (scope, period, limit_micros) VALUES ($1, $2, $3) \
                     ON CONFLICT (scope, period) DO NOTHING",
                )
                .bind(&line.scope)
                .bind(&line.period)
                .bind(line.limit_micros)
                .execute(&mut *tx)
                .await?;
                if !raise(&mut tx, line, r.amount_micros).await? {
                    let state = budget_row(&mut tx, &line.scope, &line.period).await?;
                    tx.rollback().await?;
                    let state = state.unwrap_or(BudgetState {
                        scope: line.scope.clone(),
                        period: line.period.clone(),
                        limit_micros: line.limit_micros,
                        spent_micros: 0,
                        reserved_micros: 0,
                    });
                    return Ok(Err(Exhausted {
                        scope: state.scope,
                        period: state.period,
                        limit_micros: line.limit_micros,
                        spent_micros: state.spent_micros,
                        reserved_micros: state.reserved_micros,
                        needed_micros: r.amount_micros,
                    }));
                }
            }
        }
        let id = new_id();
        let held: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l.scope.as_str(), l.period.as_str()))
            .collect();
        sqlx::query(
            "INSERT INTO reservations (id, agent, project, credential, model, amount_micros, lines, created_ms, is_lease) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(&r.agent)
        .bind(&r.project)
        .bind(&r.credential)
        .bind(&r.model)
        .bind(r.amount_micros)
        .bind(serde_json::to_string(&held).expect("plain data serializes"))
        .bind(now_ms())
        .bind(i64::from(r.lease))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    /// Settles a reservation with the call's real cost: its lines release the amount
    /// reserved and count the cost. Settling twice changes nothing (the first wins).
    pub async fn settle(&self, id: &str, cost_micros: i64) -> Result<bool, StoreError> {
        self.settle_routed(id, cost_micros, None).await
    }

    /// [`Store::settle`], recording where the call went: the upstream that answered and,
    /// when a route chose another model, the model the agent asked for.
    pub async fn settle_routed(
        &self,
        id: &str,
        cost_micros: i64,
        route: Option<(&str, Option<&str>)>,
    ) -> Result<bool, StoreError> {
        let (upstream, requested_model) = route.unzip();
        let requested_model = requested_model.flatten();
        for (field, value) in [("upstream", upstream), ("requested_model", requested_model)] {
            if let Some(v) = value {
                check_len(field, v, 1, MAX_NAME)?;
            }
        }
        let cost = cost_micros.max(0);
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(
            "UPDATE reservations SET settled_ms = $1, cost_micros = $2, \
             upstream = COALESCE($3, upstream), requested_model = COALESCE($4, requested_model) \
             WHERE id = $5 AND settled_ms IS NULL",
        )
        .bind(now_ms())
        .bind(cost)
        .bind(upstream)
        .bind(requested_model)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let row = sqlx::query("SELECT amount_micros, lines FROM reservations WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let amount: i64 = row.try_get("amount_micros")?;
        let lines: Vec<(String, String)> =
            serde_json::from_str(&row.try_get::<String, _>("lines")?).map_err(|e| {
                StoreError::Invalid {
                    field: "lines",
                    reason: e.to_string(),
                }
            })?;
        for (scope, period) in lines {
            sqlx::query(
                "UPDATE budgets SET reserved_micros = reserved_micros - $1, \
                 spent_micros = spent_micros + $2 WHERE scope = $3 AND period = $4",
            )
            .bind(amount)
            .bind(cost)
            .bind(&scope)
            .bind(&period)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Settles, at their full reserved amount, reservations still open after
    /// `older_than_ms` (a call whose outcome was lost to a crash is assumed to have
    /// spent its worst case). Returns how many.
    pub async fn settle_abandoned(&self, older_than_ms: i64) -> Result<u64, StoreError> {
        let cutoff = now_ms() - older_than_ms;
        let rows = sqlx::query(
            "SELECT id, amount_micros FROM reservations \
             WHERE settled_ms IS NULL AND created_ms < $1 ORDER BY created_ms LIMIT 1000",
        )
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await?;
        let mut settled = 0;
        for row in rows {
            let id: String = row.try_get("id")?;
            if self.settle(&id, row.try_get("amount_micros")?).await? {
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// Records calls made under leases (already settled; their cost was counted when
    /// their lease settled), in one statement per `MAX_CALL_BATCH`. Recording a call
    /// twice keeps the first.
    pub async fn record_calls(&self, calls: &[FinishedCall]) -> Result<(), StoreError> {
        for c in calls {
            for (field, value) in [
                ("id", c.id.as_str()),
                ("agent", &c.agent),
                ("project", &c.project),
                ("credential", &c.credential),
                ("model", &c.model),
                ("lease", &c.lease),
            ] {
                check_len(field, value, 1, MAX_NAME)?;
            }
            for (field, value) in [
                ("upstream", &c.upstream),
                ("requested_model", &c.requested_model),
            ] {
                if let Some(v) = value {
                    check_len(field, v, 1, MAX_NAME)?;
                }
            }
        }
        const COLUMNS: usize = 12;
        for batch in calls.chunks(MAX_CALL_BATCH) {
            let mut sql = String::from(
                "INSERT INTO reservations (id, agent, project, credential, model, requested_model, upstream, \
                 amount_micros, cost_micros, created_ms, settled_ms, lease, lines, is_lease) VALUES ",
            );
            for i in 0..batch.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                for c in 1..=COLUMNS {
                    sql.push_str(&format!("${}, ", i * COLUMNS + c));
                }
                sql.push_str("'[]', 0)");
            }
            sql.push_str(" ON CONFLICT (id) DO NOTHING");
            let mut query = sqlx::query(&sql);
            for c in batch {
                query = query
                    .bind(&c.id)
                    .bind(&c.agent)
                    .bind(&c.project)
                    .bind(&c.credential)
                    .bind(&c.model)
                    .bind(&c.requested_model)
                    .bind(&c.upstream)
                    .bind(c.reserved_micros)
                    .bind(c.cost_micros.max(0))
                    .bind(c.created_ms)
                    .bind(c.settled_ms)
                    .bind(&c.lease);
            }
            query.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// An agent's most recent model calls, newest first (at most `limit`, capped at 1,000).
    pub async fn recent_calls(
        &self,
        agent: &str,
        limit: u32,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let limit = limit.min(1000);
        let rows = sqlx::query(&format!(
            "SELECT id, agent, project, model, upstream, requested_model, amount_micros, cost_micros, created_ms \
             FROM reservations WHERE agent = $1 AND is_lease = 0 ORDER BY created_ms DESC, id LIMIT {limit}"
        ))
        .bind(agent)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(CallRecord {
                    id: row.try_get("id")?,
                    agent: row.try_get("agent")?,
                    project: row.try_get("project")?,
                    model: row.try_get("model")?,
                    upstream: row.try_get("upstream")?,
                    requested_model: row.try_get("requested_model")?,
                    reserved_micros: row.try_get("amount_micros")?,
                    cost_micros: row.try_get("cost_micros")?,
                    created_ms: row.try_get("created_ms")?,
                })
            })
            .collect()
    }

    /// One budget line's state, if anything was ever reserved on it.
    pub async fn budget(
        &self,
        scope: &str,
        period: &str,
    ) -> Result<Option<BudgetState>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        budget_row(&mut conn, scope, period).await
    }

    /// Revokes an agent credential (and every narrowing of it) at once.
    pub async fn revoke_credential(&self, id: &str, by: &str) -> Result<(), StoreError> {
        check_len("credential", id, 1, MAX_NAME)?;
        check_len("revoked_by", by, 1, MAX_NAME)?;
        sqlx::query(
            "INSERT INTO credential_revocations (id, revoked_by, revoked_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(by)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many credentials were ever revoked (revocations are never undone).
    pub async fn revocation_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM credential_revocations")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Every revoked credential's id.
    pub async fn revoked_credentials(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM credential_revocations")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// Whether a credential was revoked.
    pub async fn credential_revoked(&self, id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS one FROM credential_revocations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }
}

/// Raises a line's reservation by `amount` if it stays within the limit (which follows
/// the line's current limit). True when it did.
async fn raise(
    conn: &mut sqlx::AnyConnection,
    line: &BudgetLine,
    amount: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE budgets SET reserved_micros = reserved_micros + $1, limit_micros = $2 \
         WHERE scope = $3 AND period = $4 AND spent_micros + reserved_micros + $5 <= $6",
    )
    .bind(amount)
    .bind(line.limit_micros)
    .bind(&line.scope)
    .bind(&line.period)
    .bind(amount)
    .bind(line.limit_micros)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

async fn budget_row(
    conn: &mut sqlx::AnyConnection,
    scope: &str,
    period: &str,
) -> Result<Option<BudgetState>, StoreError> {
    let row = sqlx::query(
        "SELECT scope, period, limit_micros, spent_micros, reserved_micros FROM budgets \
         WHERE scope = $1 AND period = $2",
    )
    .bind(scope)
    .bind(period)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        Ok(BudgetState {
            scope: row.try_get("scope")?,
            period: row.try_get("period")?,
            limit_micros: row.try_get("limit_micros")?,
            spent_micros: row.try_get("spent_micros")?,
            reserved_micros: row.try_get("reserved_micros")?,
        })
    })
    .transpose()
}
