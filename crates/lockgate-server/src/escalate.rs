//! Time-boxed escalation: when a change's current head has waited longer than its
//! rules' `escalate_after` for approvals it still lacks, the scheduler opens an
//! escalation (one per head, whichever replica gets there first), places a merge hold
//! on the change, and notifies the on-call webhook. All state is in the ledger, so a
//! restart picks up where it stopped: a due change is escalated, an unplaced hold is
//! placed, an unacknowledged notice is sent again. A person releases the hold.
//!
//! The wait starts when the decision for the current head was recorded; a new push
//! starts it again (the new head needs its own approvals).

use crate::AppState;
use crate::config::EscalationConfig;
use crate::now_ms;
use hmac::{Hmac, Mac};
use lockgate_core::decision::{Decision, parse_wait};
use lockgate_store::{EscalationRecord, HoldScope, NewHold};
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// `placed_by` of the holds the scheduler places.
pub const ESCALATION_ACTOR: &str = "escalation";
/// How long one replica has to send a notice before another may try (longer than an
/// outbound call may take).
const NOTICE_LEASE: Duration = Duration::from_secs(60);

/// Runs the scheduler until the server stops.
pub async fn run(state: Arc<AppState>) {
    let interval = state.config.escalation.interval();
    loop {
        if let Err(e) = tick(&state).await {
            tracing::warn!(error = %e, "escalation scan");
        }
        tokio::time::sleep(interval).await;
    }
}

/// One pass: open what is due, then place holds and send notices for what is open.
pub async fn tick(state: &AppState) -> Result<(), lockgate_store::StoreError> {
    let now = now_ms();
    for record in state.store.pending(None, 1000).await? {
        let Ok(decision) = serde_json::from_str::<Decision>(&record.document) else {
            continue;
        };
        let given = state
            .store
            .approvals_for_head(&record.repo, &record.change_ref, &record.head_sha)
            .await?;
        let status = crate::approval_status(state, &decision, &given);
        if status.satisfied {
            continue;
        }
        // The shortest wait among the requirements still open.
        let open: Vec<_> = decision
            .required_approvals
            .iter()
            .zip(&status.requirements)
            .filter(|(_, s)| !s.satisfied)
            .filter_map(|(r, _)| {
                let wait = parse_wait(r.escalate_after.as_deref()?).ok()?;
                Some((wait, r))
            })
            .collect();
        let Some((wait, requirement)) = open.iter().min_by_key(|(w, _)| *w) else {
            continue;
        };
        if now < record.created_ms + wait.as_millis() as i64 {
            continue;
        }
        let owners = if requirement.owners.is_empty() {
            "a maintainer".to_string()
        } else {
            requirement.owners.join(", ")
        };
        let reason = format!(
            "no approval from {owners} within {} ({}); escalated to on-call",
            requirement.escalate_after.as_deref().unwrap_or_default(),
            requirement.rule
        );
        if let Some(e) = state
            .store
            .open_escalation(&record.repo, &record.change_ref, &record.head_sha, &reason)
            .await?
        {
            tracing::info!(repo = %e.repo, change = %e.change_ref, head = %e.head_sha, "escalated");
            state.metrics.escalations.fetch_add(1, Ordering::Relaxed);
        }
    }
    let config = &state.config.escalation;
    for e in state.store.open_escalations(config.max_attempts).await? {
        if !e.hold_placed {
            state
                .store
                .place_hold_with_id(
                    &e.id,
                    &NewHold {
                        scope: HoldScope::Change,
                        target: format!("{}#{}", e.repo, e.change_ref),
                        reason: e.reason.clone(),
                        placed_by: ESCALATION_ACTOR.into(),
                    },
                )
                .await?;
            state.store.escalation_hold_placed(&e.id).await?;
        }
        if e.notified_ms.is_none()
            && config.webhook.is_some()
            && state
                .store
                .lease_escalation_notice(&e.id, NOTICE_LEASE)
                .await?
        {
            let result = notify(state, &e).await;
            if let Err(message) = &result {
                tracing::warn!(escalation = %e.id, error = %message, "on-call notice failed; will retry");
                state
                    .metrics
                    .escalation_notice_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
            // Back off: the scan interval doubled per attempt, at most ten minutes.
            let retry_after = (state.config.escalation.interval()
                * 2u32.saturating_pow(e.attempts.clamp(0, 12) as u32))
            .min(Duration::from_secs(600));
            state
                .store
                .escalation_notice_result(&e.id, result, retry_after)
                .await?;
        }
    }
    Ok(())
}

/// The notice's JSON: `text` for chat webhooks (Slack's incoming webhooks show it), and
/// the fields for anything that routes pages.
pub fn notice_body(state: &AppState, e: &EscalationRecord) -> serde_json::Value {
    let link = crate::web::change_link(state, &e.repo, &e.change_ref);
    let mut text = format!(
        "Lockgate: {} {} (head {}) is held: {}.",
        e.repo,
        e.change_ref,
        e.head_sha.get(..12).unwrap_or(&e.head_sha),
        e.reason
    );
    if let Some(l) = &link {
        text.push_str(&format!(" Review: {l}"));
    }
    serde_json::json!({
        "type": "lockgate.escalation",
        "text": text,
        "escalation_id": e.id,
        "repo": e.repo,
        "change_ref": e.change_ref,
        "head_sha": e.head_sha,
        "reason": e.reason,
        "hold_id": e.id,
        "escalated_ms": e.created_ms,
        "url": link,
    })
}

/// `X-Lockgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

async fn notify(state: &AppState, e: &EscalationRecord) -> Result<(), String> {
    post_oncall(state, &notice_body(state, e)).await
}

/// POSTs a notice to the on-call webhook, signed when a secret is configured.
pub(crate) async fn post_oncall(
    state: &AppState,
    notice: &serde_json::Value,
) -> Result<(), String> {
    let url = state
        .config
        .escalation
        .webhook
        .clone()
        .ok_or("no webhook")?;
    post_signed(state, url, notice).await
}

/// POSTs a notice to `url`, signed (`X-Lockgate-Signature`) when `[escalation]
/// secret_file` is configured.
pub(crate) async fn post_signed(
    state: &AppState,
    url: String,
    notice: &serde_json::Value,
) -> Result<(), String> {
    let config: &EscalationConfig = &state.config.escalation;
    let body = serde_json::to_vec(notice).map_err(|e| e.to_string())?;
    let signature = config
        .secret()
        .map_err(|e| e.to_string())?
        .map(|s| signature(&s, now_ms() / 1000, &body));
    tokio::task::spawn_blocking(move || {
        crate::outbound::post_json(&url, &body, signature.as_deref())
    })
    .await
    .map_err(|e| e.to_string())?
}
