//! Spend as the ledger saw it, for the anomaly watch and the spend views: sums over
//! the model calls in `reservations` (an open call counts at its reservation, so a
//! spike shows while its calls are still running).
//!
//! Also the agent holds (incident freezes, placed by a person or by the anomaly watch)
//! that stop an agent's calls.

use crate::records::{HOLD_COLUMNS, hold_from_row};
use crate::{HoldRecord, HoldScope, Store, StoreError};
use serde::Serialize;
use sqlx::Row;

/// The most active agent holds read at once.
pub const MAX_AGENT_HOLDS: usize = 100_000;

/// The most groups a spend query returns.
pub const MAX_GROUPS: usize = 1000;

/// What a call's cost counts as: its settled cost, or its reservation while open.
const CALL_SPEND: &str = "COALESCE(cost_micros, amount_micros)";

/// How spend is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendBy {
    Agent,
    Project,
    Model,
}

impl SpendBy {
    /// `agent`, `project` or `model` (also the column grouped by).
    pub fn as_str(self) -> &'static str {
        match self {
            SpendBy::Agent => "agent",
            SpendBy::Project => "project",
            SpendBy::Model => "model",
        }
    }
}

/// Spend of one group (an agent, a project or a model) over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpendRow {
    pub key: String,
    pub calls: i64,
    /// Settled cost plus the reservations of calls still open.
    pub spent_micros: i64,
    /// Calls still open.
    pub open_calls: i64,
}

impl Store {
    /// Spend per group over calls made at or after `since_ms`, largest first.
    pub async fn spend_by(&self, by: SpendBy, since_ms: i64) -> Result<Vec<SpendRow>, StoreError> {
        let column = by.as_str();
        let rows = sqlx::query(&format!(
            "SELECT {column} AS key, CAST(COUNT(*) AS BIGINT) AS calls, \
             CAST(SUM({CALL_SPEND}) AS BIGINT) AS spent, \
             CAST(SUM(CASE WHEN settled_ms IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS open_calls \
             FROM reservations WHERE created_ms >= $1 AND is_lease = 0 GROUP BY {column} \
             ORDER BY spent DESC, key LIMIT {MAX_GROUPS}"
        ))
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SpendRow {
                    key: row.try_get("key")?,
                    calls: row.try_get("calls")?,
                    spent_micros: row.try_get("spent")?,
                    open_calls: row.try_get("open_calls")?,
                })
            })
            .collect()
    }

    /// What one agent's calls made in `[from_ms, to_ms)` cost.
    pub async fn agent_spend(
        &self,
        agent: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT CAST(COALESCE(SUM({CALL_SPEND}), 0) AS BIGINT) AS spent FROM reservations \
             WHERE agent = $1 AND created_ms >= $2 AND created_ms < $3 AND is_lease = 0"
        ))
        .bind(agent)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("spent")?)
    }

    /// When the latest hold on an agent was released, if one ever was.
    pub async fn agent_last_released_ms(&self, agent: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT MAX(released_ms) AS released FROM holds WHERE scope = $1 AND target = $2",
        )
        .bind(HoldScope::Agent.as_str())
        .bind(agent)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("released")?)
    }

    /// The oldest active hold on an agent (an incident freeze), if any.
    pub async fn active_agent_hold(&self, agent: &str) -> Result<Option<HoldRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {HOLD_COLUMNS} FROM holds WHERE released_ms IS NULL AND scope = $1 AND target = $2 \
             ORDER BY created_ms, id LIMIT 1"
        ))
        .bind(HoldScope::Agent.as_str())
        .bind(agent)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| hold_from_row(&r)).transpose()
    }

    /// Every active agent hold, oldest first (at most `MAX_AGENT_HOLDS`).
    pub async fn active_agent_holds(&self) -> Result<Vec<HoldRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {HOLD_COLUMNS} FROM holds WHERE released_ms IS NULL AND scope = $1 \
             ORDER BY created_ms, id LIMIT {MAX_AGENT_HOLDS}"
        ))
        .bind(HoldScope::Agent.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(hold_from_row).collect()
    }
}
