//! `GET /api/v1/gateway/spend`: what model calls cost, per agent, project or model, over
//! a recent period, from the ledger (all replicas' calls; an open call counts at its
//! reservation). The web UI's spend page shows the same.

use crate::{ApiError, ApiResult, AppState, caller};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use lockgate_gateway::price::format_usd;
use lockgate_store::{SpendBy, SpendRow};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The longest period a spend query covers.
const MAX_SINCE: Duration = Duration::from_secs(366 * 86_400);

/// The query: `by=agent|project|model` (default agent), `since=24h` (default).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendQuery {
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub since: Option<String>,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct SpendView {
    pub by: &'static str,
    /// The period's start, ms since the epoch.
    pub since_ms: i64,
    pub rows: Vec<SpendLine>,
}

/// One group's spend, with the amount in dollars.
#[derive(Debug, Serialize)]
pub struct SpendLine {
    #[serde(flatten)]
    pub row: SpendRow,
    /// `spent_micros` as dollars (`$0.0123`).
    pub spent_usd: String,
}

/// Reads the query's grouping and period; 422 with what to write when they are wrong.
pub fn parse(q: &SpendQuery) -> Result<(SpendBy, Duration), ApiError> {
    let bad = |m: String| ApiError(StatusCode::UNPROCESSABLE_ENTITY, m);
    let by = match q.by.as_deref().unwrap_or("agent") {
        "agent" => SpendBy::Agent,
        "project" => SpendBy::Project,
        "model" => SpendBy::Model,
        other => {
            return Err(bad(format!(
                "by={other:?}: group by agent, project or model"
            )));
        }
    };
    let since = q.since.as_deref().unwrap_or("24h");
    let period = humantime::parse_duration(since)
        .ok()
        .filter(|d| *d <= MAX_SINCE)
        .ok_or_else(|| {
            bad(format!(
                "since={since:?}: write e.g. 24h or 7d (at most 366d)"
            ))
        })?;
    Ok((by, period))
}

/// Spend per group over the last `period`.
pub async fn load(state: &AppState, by: SpendBy, period: Duration) -> Result<SpendView, ApiError> {
    let since_ms = crate::now_ms() - period.as_millis() as i64;
    let rows = state.store.spend_by(by, since_ms).await?;
    Ok(SpendView {
        by: by.as_str(),
        since_ms,
        rows: rows
            .into_iter()
            .map(|row| SpendLine {
                spent_usd: format_usd(row.spent_micros),
                row,
            })
            .collect(),
    })
}

/// `GET /api/v1/gateway/spend` (any token).
pub async fn api(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<SpendQuery>,
) -> ApiResult<SpendView> {
    caller(&state, &headers).await?;
    let (by, period) = parse(&q)?;
    Ok(Json(load(&state, by, period).await?))
}
