//! The anomaly watch: every `interval`, each agent that spent in the last window is
//! judged by [`SpikeRule`] against its own baseline; a spike places an agent hold (an
//! incident freeze), which stops the agent's model calls at once and its merges, and
//! tells the on-call webhook. A person releases the hold (UI or API); spend from before
//! the release does not count again, so a released agent is judged afresh.
//!
//! Replicas watch independently: the hold's id is derived from the agent and its last
//! release, so two replicas seeing the same spike place one hold, and only the one that
//! placed it sends the notice.

use crate::AppState;
use crate::now_ms;
use lockgate_gateway::anomaly::SpikeRule;
use lockgate_gateway::price::format_usd;
use lockgate_store::{HoldRecord, HoldScope, NewHold, SpendBy, StoreError};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// `placed_by` of the holds the watch places.
pub const ANOMALY_ACTOR: &str = "anomaly";
/// Tries per on-call notice.
const NOTICE_ATTEMPTS: u32 = 3;

/// Runs the watch until the server stops (returns at once when it is off).
pub async fn watch(state: Arc<AppState>) {
    let Some(anomaly) = state.gateway.as_ref().and_then(|g| g.loaded.anomaly) else {
        return;
    };
    loop {
        tokio::time::sleep(anomaly.interval).await;
        match scan(&state, &anomaly.rule).await {
            Ok(frozen) => {
                if !frozen.is_empty() {
                    super::blocks_changed(&state).await;
                }
                for hold in frozen {
                    tokio::spawn(notify(state.clone(), hold));
                }
            }
            Err(e) => tracing::warn!(error = %e, "anomaly watch"),
        }
    }
}

/// One pass: freezes each agent whose last window is a spike. Returns the holds this
/// call placed.
pub async fn scan(state: &AppState, rule: &SpikeRule) -> Result<Vec<HoldRecord>, StoreError> {
    let now = now_ms();
    let window = rule.window.as_millis() as i64;
    let window_start = now - window;
    let mut placed = Vec::new();
    for row in state.store.spend_by(SpendBy::Agent, window_start).await? {
        // Below the floor nothing is a spike; skip the baseline read.
        if row.spent_micros <= rule.floor {
            continue;
        }
        let agent = &row.key;
        if state.store.active_agent_hold(agent).await?.is_some() {
            continue;
        }
        let released = state.store.agent_last_released_ms(agent).await?;
        let spent = match released {
            Some(r) if r > window_start => state.store.agent_spend(agent, r, now + 1).await?,
            _ => row.spent_micros,
        };
        let baseline_start = window_start - rule.baseline.as_millis() as i64;
        let baseline = state
            .store
            .agent_spend(agent, baseline_start, window_start)
            .await?;
        if !rule.is_spike(spent, baseline) {
            continue;
        }
        let reason = format!(
            "spend spike: {} in the last {}, above the threshold of {} (its usual rate: {} over the {} before, times {})",
            format_usd(spent),
            humantime::format_duration(rule.window),
            format_usd(rule.threshold(baseline)),
            format_usd(baseline),
            humantime::format_duration(rule.baseline),
            rule.factor,
        );
        let hold = NewHold {
            scope: HoldScope::Agent,
            target: agent.clone(),
            reason,
            placed_by: ANOMALY_ACTOR.into(),
        };
        if let Some(hold) = state
            .store
            .place_hold_once(&hold_id(agent, released), &hold)
            .await?
        {
            tracing::warn!(agent = %agent, hold = %hold.id, reason = %hold.reason, "agent frozen");
            state
                .metrics
                .gateway_freezes
                .fetch_add(1, Ordering::Relaxed);
            placed.push(hold);
        }
    }
    Ok(placed)
}

/// The same for every replica that sees the same spike: the agent, and when its last
/// hold was released.
fn hold_id(agent: &str, last_released: Option<i64>) -> String {
    let digest = hex::encode(Sha256::digest(agent.as_bytes()));
    format!("freeze-{}-{}", &digest[..16], last_released.unwrap_or(0))
}

/// Tells the on-call webhook (if one is configured), trying a few times.
async fn notify(state: Arc<AppState>, hold: HoldRecord) {
    if state.config.escalation.webhook.is_none() {
        return;
    }
    let link = state
        .config
        .public_url
        .as_deref()
        .map(|u| format!("{}/ui", u.trim_end_matches('/')));
    let mut text = format!(
        "Lockgate froze agent {}: {}. A person releases the hold (id {}).",
        hold.target, hold.reason, hold.id
    );
    if let Some(l) = &link {
        text.push_str(&format!(" Review: {l}"));
    }
    let body = serde_json::json!({
        "type": "lockgate.agent_frozen",
        "text": text,
        "agent": hold.target,
        "hold_id": hold.id,
        "reason": hold.reason,
        "frozen_ms": hold.created_ms,
        "url": link,
    });
    for attempt in 0..NOTICE_ATTEMPTS {
        match crate::escalate::post_oncall(&state, &body).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(hold = %hold.id, error = %e, "freeze notice failed");
                state
                    .metrics
                    .escalation_notice_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_secs(2u64.pow(attempt))).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hold_ids_follow_the_agent_and_its_last_release() {
        let a = super::hold_id("claude-code", None);
        assert_eq!(a, super::hold_id("claude-code", None));
        assert_ne!(a, super::hold_id("codex", None));
        assert_ne!(a, super::hold_id("claude-code", Some(5)));
        assert!(a.len() <= 64);
    }
}
