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

/// One group's spend.
#[derive(Debug, Serialize)]
pub struct SpendLine {
    pub key: String,
    pub calls: i64,
    pub open_calls: i64,
    pub spent_micros: i64,
    /// `spent_micros` as dollars (`$0.0123`).
    pub spent_usd: String,
}

impl From<SpendRow> for SpendLine {
    fn from(r: SpendRow) -> SpendLine {
        SpendLine {
            spent_usd: format_usd(r.spent_micros),
            key: r.key,
            calls: r.calls,
            open_calls: r.open_calls,
            spent_micros: r.spent_micros,
        }
    }
}

/// Reads the query's grouping and period; 422 with what to write when they are wrong.
pub fn parse(q: &SpendQuery) -> Result<(SpendBy, &'static str, Duration), ApiError> {
    let bad = |m: String| ApiError(StatusCode::UNPROCESSABLE_ENTITY, m);
    let (by, name) = match q.by.as_deref().unwrap_or("agent") {
        "agent" => (SpendBy::Agent, "agent"),
        "project" => (SpendBy::Project, "project"),
        "model" => (SpendBy::Model, "model"),
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
    Ok((by, name, period))
}

/// Spend per group over the last `period`.
pub async fn load(
    state: &AppState,
    by: SpendBy,
    name: &'static str,
    period: Duration,
) -> Result<SpendView, ApiError> {
    let since_ms = crate::now_ms() - period.as_millis() as i64;
    let rows = state.store.spend_by(by, since_ms).await?;
    Ok(SpendView {
        by: name,
        since_ms,
        rows: rows.into_iter().map(SpendLine::from).collect(),
    })
}

/// `GET /api/v1/gateway/spend` (any token).
pub async fn api(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<SpendQuery>,
) -> ApiResult<SpendView> {
    caller(&state, &headers).await?;
    let (by, name, period) = parse(&q)?;
    Ok(Json(load(&state, by, name, period).await?))
}
