//! Chat-ops approvals through Slack.
//!
//! Out: when a change newly needs approval, a compact summary with Approve and Request
//! changes buttons goes to the configured incoming webhook (Block Kit; each button's
//! value names the repository, change and the exact head).
//!
//! In: `POST /api/v1/slack/interactions` takes Slack's interaction callback
//! (`application/x-www-form-urlencoded`, `payload=<json>`). It is verified as Slack
//! documents — `X-Slack-Signature: v0=HMAC-SHA256(signing secret, "v0:" + timestamp +
//! ":" + raw body)`, and `X-Slack-Request-Timestamp` within five minutes (replays are
//! refused) — before anything in it is read. The Slack user is mapped to a person
//! (`slack = "U…"` in the people directory) and the approval goes through the same
//! rules as every other channel; the answer is posted to the callback's `response_url`.

use crate::config::SlackConfig;
use crate::{ApiError, AppState, Approve};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use lockgate_core::decision::Decision;
use lockgate_store::ApprovalState;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;

/// How far a callback's timestamp may be from now.
pub const MAX_SKEW_SECS: i64 = 300;
const APPROVE: &str = "lockgate_approve";
const REQUEST_CHANGES: &str = "lockgate_request_changes";

/// What a button carries.
#[derive(Debug, Serialize, Deserialize)]
struct ButtonValue {
    repo: String,
    change_ref: String,
    head_sha: String,
}

/// The Block Kit message for a change waiting for approval.
pub fn summary_message(state: &AppState, repo: &str, change_ref: &str, d: &Decision) -> Value {
    let who = d.author.agent.as_deref().unwrap_or(d.author.kind.as_str());
    let owners: Vec<String> = d
        .required_approvals
        .iter()
        .map(|r| {
            if r.owners.is_empty() {
                format!("{} × a maintainer", r.count)
            } else {
                format!("{} × {}", r.count, r.owners.join(" or "))
            }
        })
        .collect();
    let reasons: Vec<String> = d
        .reasons
        .iter()
        .take(3)
        .map(|r| format!("• `{}` {}", r.rule, escape(&r.message)))
        .collect();
    let link = crate::web::change_link(state, repo, change_ref);
    let title = match &link {
        Some(l) => format!("<{l}|{} {}>", escape(repo), escape(change_ref)),
        None => format!("{} {}", escape(repo), escape(change_ref)),
    };
    let text = format!(
        "*{title}* needs approval — by {}, trust {} ({} files, head `{}`)\nNeeds: {}\n{}",
        escape(who),
        d.trust.score,
        d.files.len(),
        d.head.get(..12).unwrap_or(&d.head),
        escape(&owners.join("; ")),
        reasons.join("\n")
    );
    let value = serde_json::to_string(&ButtonValue {
        repo: repo.into(),
        change_ref: change_ref.into(),
        head_sha: d.head.clone(),
    })
    .expect("plain data serializes");
    json!({
        "text": format!("{repo} {change_ref} needs approval"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "actions", "block_id": "lockgate", "elements": [
                {"type": "button", "action_id": APPROVE, "style": "primary",
                 "text": {"type": "plain_text", "text": "Approve"}, "value": value},
                {"type": "button", "action_id": REQUEST_CHANGES, "style": "danger",
                 "text": {"type": "plain_text", "text": "Request changes"}, "value": value},
            ]}
        ]
    })
}

/// Slack's mrkdwn escaping (`&`, `<`, `>`).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Posts the summary of a change that newly needs approval (in the background; a
/// failure is logged and counted, the decision stands).
pub fn announce(state: &Arc<AppState>, repo: &str, change_ref: &str, d: &Decision) {
    let Some(url) = state.config.slack.webhook.clone() else {
        return;
    };
    let body = serde_json::to_vec(&summary_message(state, repo, change_ref, d))
        .expect("plain data serializes");
    let state = state.clone();
    tokio::spawn(async move {
        let result =
            tokio::task::spawn_blocking(move || crate::outbound::post_json(&url, &body, None))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
        if let Err(e) = result {
            tracing::warn!(error = %e, "posting to Slack");
            state
                .metrics
                .chat_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
}

/// Checks Slack's request signature and timestamp window.
pub fn verify(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<(), &'static str> {
    let timestamp = headers
        .get("x-slack-request-timestamp")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or("missing X-Slack-Request-Timestamp")?;
    if (now_secs - timestamp).abs() > MAX_SKEW_SECS {
        return Err("the request timestamp is outside the five-minute window");
    }
    let given = headers
        .get("x-slack-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("v0="))
        .and_then(|v| hex::decode(v).ok())
        .ok_or("missing or malformed X-Slack-Signature")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| "bad signature")
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The parts of a `block_actions` payload we use.
#[derive(Debug, Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: SlackUser,
    #[serde(default)]
    actions: Vec<Action>,
    response_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SlackUser {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Action {
    action_id: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct Form {
    payload: String,
}

fn unauthorized(state: &AppState, headers: &HeaderMap, why: &str) -> Response {
    crate::record_auth_failure(state, headers);
    tracing::warn!(why, "Slack callback refused");
    ApiError(StatusCode::UNAUTHORIZED, why.into()).into_response()
}

/// `POST /api/v1/slack/interactions`.
pub(crate) async fn interactions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let config: &SlackConfig = &state.config.slack;
    let Some(secret) = config.signing_secret.as_deref() else {
        return ApiError(StatusCode::NOT_FOUND, "Slack is not configured".into()).into_response();
    };
    if let Some(r) = crate::blocked_peer(&state, &headers) {
        return r;
    }
    if let Err(why) = verify(secret.as_bytes(), &headers, &body, now_secs()) {
        return unauthorized(&state, &headers, why);
    }
    let interaction = serde_urlencoded::from_bytes::<Form>(&body)
        .ok()
        .and_then(|f| serde_json::from_str::<Interaction>(&f.payload).ok());
    let Some(interaction) = interaction else {
        return ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a Slack interaction payload".into(),
        )
        .into_response();
    };
    if interaction.kind != "block_actions" {
        return StatusCode::OK.into_response();
    }
    let Some(action) = interaction
        .actions
        .iter()
        .find(|a| a.action_id == APPROVE || a.action_id == REQUEST_CHANGES)
    else {
        return StatusCode::OK.into_response();
    };
    let message = match act(&state, &interaction.user.id, action).await {
        Ok(m) => m,
        Err(e) => format!(":no_entry: {}", e.1),
    };
    if let Some(url) = interaction.response_url {
        reply(&state, url, message);
    }
    StatusCode::OK.into_response()
}

/// Records the approval a button press asks for; the line to answer with.
async fn act(state: &Arc<AppState>, slack_user: &str, action: &Action) -> Result<String, ApiError> {
    let person = state
        .config
        .people
        .iter()
        .find(|p| p.slack.as_deref() == Some(slack_user))
        .ok_or_else(|| {
            ApiError(
                StatusCode::FORBIDDEN,
                format!("Slack user {slack_user} is not mapped to a person in Lockgate"),
            )
        })?;
    let value: ButtonValue = serde_json::from_str(&action.value).map_err(|_| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the button's value is not Lockgate's".into(),
        )
    })?;
    let approval_state = if action.action_id == APPROVE {
        ApprovalState::Approved
    } else {
        ApprovalState::ChangesRequested
    };
    let result = crate::apply_approval(
        state,
        person,
        &Approve {
            repo: value.repo.clone(),
            change_ref: value.change_ref.clone(),
            head_sha: value.head_sha.clone(),
            state: approval_state,
            comment: String::new(),
        },
        "slack",
    )
    .await?;
    let verb = match approval_state {
        ApprovalState::Approved => "approved",
        ApprovalState::ChangesRequested => "requested changes on",
    };
    let status = if result.approved {
        "all required approvals are in"
    } else {
        "more approvals are needed"
    };
    Ok(format!(
        ":white_check_mark: {} {verb} {} {} at `{}`; {status}.",
        person.id,
        value.repo,
        value.change_ref,
        value.head_sha.get(..12).unwrap_or(&value.head_sha)
    ))
}

/// Answers through the callback's `response_url` (only to Slack's own host, or to the
/// configured one, so a forged payload cannot make us post elsewhere).
fn reply(state: &Arc<AppState>, url: String, text: String) {
    let allowed = state
        .config
        .slack
        .response_url_prefixes
        .iter()
        .any(|p| url.starts_with(p.as_str()));
    if !allowed {
        tracing::warn!("Slack response_url is not on an allowed host; not answering there");
        return;
    }
    let body = serde_json::to_vec(
        &json!({"response_type": "ephemeral", "replace_original": false, "text": text}),
    )
    .expect("plain data serializes");
    tokio::spawn(async move {
        let _ = tokio::task::spawn_blocking(move || crate::outbound::post_json(&url, &body, None))
            .await;
    });
}
