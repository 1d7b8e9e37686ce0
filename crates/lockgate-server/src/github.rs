//! GitHub: the webhook receiver and the client that keeps a pull request's status,
//! labels and one Lockgate comment up to date.
//!
//! In: `POST /api/v1/github/webhook`. The `X-Hub-Signature-256` HMAC is checked over
//! the raw body before anything is parsed; each `X-GitHub-Delivery` id is accepted once
//! (a replayed delivery is acknowledged and ignored). Events:
//! - `pull_request_review` (submitted, approved or changes requested): the reviewer's
//!   login is mapped to a person (`github = "login"`), and the review — bound to the
//!   commit it was made on — counts exactly like an approval given in Lockgate, under
//!   the same rules (owners only, never an agent, never an author, exact head);
//! - `pull_request` closed: merged or rejected, into the agent's track record;
//! - `push`: the pushed head gets a pending `lockgate` status until a check runs.
//!
//! Out: after a decision or an approval for `pr/N`, the commit status `lockgate` on the
//! head (success when it may merge, pending while approvals are missing, failure when
//! blocked), labels `lockgate:<verdict>` and `agent:<id>`, and one comment (found again
//! by a marker) updated in place.

use crate::{ApiError, AppState, Approve, ChangeState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use lockgate_core::decision::{Decision, Verdict};
use lockgate_store::{ApprovalState, NewOutcome, Outcome};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The hidden marker that identifies Lockgate's comment on a pull request.
pub const COMMENT_MARKER: &str = "<!-- lockgate:summary -->";

/// Checks `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn verify_signature(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(given) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|v| hex::decode(v).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn answer(status: StatusCode, v: Value) -> Response {
    (status, Json(v)).into_response()
}

/// `POST /api/v1/github/webhook`.
pub(crate) async fn webhook(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = state.config.github.webhook_secret.as_deref() else {
        return ApiError(StatusCode::NOT_FOUND, "GitHub is not configured".into()).into_response();
    };
    if let Some(r) = crate::blocked_peer(&state, &headers) {
        return r;
    }
    if !verify_signature(secret.as_bytes(), &headers, &body) {
        crate::record_auth_failure(&state, &headers);
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "bad or missing X-Hub-Signature-256".into(),
        )
        .into_response();
    }
    let (Some(event), Some(delivery)) = (
        header(&headers, "x-github-event"),
        header(&headers, "x-github-delivery"),
    ) else {
        return ApiError(
            StatusCode::BAD_REQUEST,
            "missing X-GitHub-Event or X-GitHub-Delivery".into(),
        )
        .into_response();
    };
    match state.store.first_delivery(delivery, event).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(delivery, event, "replayed GitHub delivery ignored");
            return answer(StatusCode::OK, json!({"duplicate": true}));
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "payload is not JSON".into(),
        )
        .into_response();
    };
    let result = match event {
        "ping" => Ok(json!({"pong": true})),
        "pull_request_review" => review(&state, &payload).await,
        "pull_request" => pull_request(&state, &payload).await,
        "push" => push(&state, &payload),
        other => Ok(json!({"ignored": format!("event {other} is not used")})),
    };
    match result {
        Ok(v) => answer(StatusCode::OK, v),
        Err(e) => e.into_response(),
    }
}

fn repo_of(payload: &Value) -> Option<&str> {
    payload
        .pointer("/repository/full_name")
        .and_then(Value::as_str)
}

/// A submitted review counts as an approval or a change request of the person it maps to.
async fn review(state: &Arc<AppState>, p: &Value) -> Result<Value, ApiError> {
    if p["action"] != "submitted" {
        return Ok(json!({"ignored": "only submitted reviews count"}));
    }
    let review_state = match p.pointer("/review/state").and_then(Value::as_str) {
        Some(s) if s.eq_ignore_ascii_case("approved") => ApprovalState::Approved,
        Some(s) if s.eq_ignore_ascii_case("changes_requested") => ApprovalState::ChangesRequested,
        _ => {
            return Ok(
                json!({"ignored": "a comment review is neither approval nor change request"}),
            );
        }
    };
    let bad = |m: &str| ApiError(StatusCode::UNPROCESSABLE_ENTITY, m.into());
    let repo = repo_of(p).ok_or_else(|| bad("no repository.full_name"))?;
    let number = p
        .pointer("/pull_request/number")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("no pull_request.number"))?;
    let commit = p
        .pointer("/review/commit_id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no review.commit_id"))?;
    let login = p
        .pointer("/review/user/login")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no review.user.login"))?;
    let Some(person) = state.config.people.iter().find(|person| {
        person
            .github
            .as_deref()
            .is_some_and(|g| g.eq_ignore_ascii_case(login))
    }) else {
        tracing::info!(
            login,
            "review by a GitHub user who is not in the people directory"
        );
        return Ok(json!({"ignored": format!("{login} is not mapped to a person in Lockgate")}));
    };
    let comment: String = p
        .pointer("/review/body")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .take(lockgate_store::MAX_TEXT)
        .collect();
    let change_ref = format!("pr/{number}");
    let result = crate::apply_approval(
        state,
        person,
        &Approve {
            repo: repo.into(),
            change_ref: change_ref.clone(),
            head_sha: commit.into(),
            state: review_state,
            comment,
        },
        "github",
    )
    .await;
    match result {
        // apply_approval brings the pull request up to date.
        Ok(change) => Ok(json!({"recorded": true, "approved": change.approved})),
        // A review that does not count is not an error for GitHub; say why.
        Err(ApiError(status, why))
            if status.is_client_error() && status != StatusCode::NOT_FOUND =>
        {
            Ok(json!({"ignored": why}))
        }
        Err(e) => Err(e),
    }
}

/// A closed pull request goes into the agent's track record.
async fn pull_request(state: &Arc<AppState>, p: &Value) -> Result<Value, ApiError> {
    if p["action"] != "closed" {
        return Ok(json!({"ignored": "only closed pull requests are recorded"}));
    }
    let (Some(repo), Some(number)) = (
        repo_of(p),
        p.pointer("/pull_request/number").and_then(Value::as_u64),
    ) else {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no repository or number".into(),
        ));
    };
    let merged = p.pointer("/pull_request/merged").and_then(Value::as_bool) == Some(true);
    let change_ref = format!("pr/{number}");
    let history = state.store.decision_history(repo, &change_ref).await?;
    let Some(last) = history.last() else {
        return Ok(json!({"ignored": "Lockgate has no decision for this pull request"}));
    };
    let commit = p
        .pointer(if merged {
            "/pull_request/merge_commit_sha"
        } else {
            "/pull_request/head/sha"
        })
        .and_then(Value::as_str)
        .unwrap_or(&last.head_sha);
    let outcome = if merged {
        Outcome::Merged
    } else {
        Outcome::Rejected
    };
    let new = state
        .store
        .record_outcome(&NewOutcome {
            repo: repo.into(),
            change_ref,
            commit_sha: commit.into(),
            agent: last.agent.clone(),
            outcome,
        })
        .await?;
    Ok(json!({"recorded": new, "outcome": outcome.as_str()}))
}

/// A push: the new head waits for Lockgate's check.
fn push(state: &Arc<AppState>, p: &Value) -> Result<Value, ApiError> {
    if p["deleted"] == true {
        return Ok(json!({"ignored": "branch deleted"}));
    }
    let (Some(repo), Some(after)) = (repo_of(p), p["after"].as_str()) else {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no repository or after".into(),
        ));
    };
    let (repo, after) = (repo.to_string(), after.to_string());
    spawn_api(state, move |client| {
        client.status(&repo, &after, "pending", "waiting for lockgate check", None)
    });
    Ok(json!({"status": "pending"}))
}

/// A GitHub REST client (base URL and token from `[github]`).
pub struct Client {
    api_url: String,
    token: String,
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_url.trim_end_matches('/'))
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let (status, v) = crate::outbound::api(method, &self.url(path), &self.token, body)?;
        if (200..300).contains(&status) {
            Ok(v)
        } else {
            Err(format!("{method} {path}: HTTP {status}"))
        }
    }

    /// Sets the `lockgate` commit status.
    pub fn status(
        &self,
        repo: &str,
        sha: &str,
        state: &str,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<(), String> {
        let mut body = json!({"state": state, "context": "lockgate", "description": description.chars().take(140).collect::<String>()});
        if let Some(u) = target_url {
            body["target_url"] = json!(u);
        }
        self.call(
            "POST",
            &format!("/repos/{repo}/statuses/{sha}"),
            Some(&body),
        )
        .map(|_| ())
    }

    /// Adds labels to an issue or pull request.
    pub fn labels(&self, repo: &str, number: u64, labels: &[String]) -> Result<(), String> {
        self.call(
            "POST",
            &format!("/repos/{repo}/issues/{number}/labels"),
            Some(&json!({"labels": labels})),
        )
        .map(|_| ())
    }

    /// Updates Lockgate's comment (known id, or found by its marker), or makes it.
    /// Returns the comment's id.
    pub fn upsert_comment(
        &self,
        repo: &str,
        number: u64,
        known: Option<u64>,
        body: &str,
    ) -> Result<u64, String> {
        let existing = match known {
            Some(id) => Some(id),
            None => self
                .call(
                    "GET",
                    &format!("/repos/{repo}/issues/{number}/comments?per_page=100"),
                    None,
                )?
                .as_array()
                .and_then(|comments| {
                    comments.iter().find(|c| {
                        c["body"]
                            .as_str()
                            .is_some_and(|b| b.contains(COMMENT_MARKER))
                    })
                })
                .and_then(|c| c["id"].as_u64()),
        };
        let v = match existing {
            Some(id) => self.call(
                "PATCH",
                &format!("/repos/{repo}/issues/comments/{id}"),
                Some(&json!({"body": body})),
            )?,
            None => self.call(
                "POST",
                &format!("/repos/{repo}/issues/{number}/comments"),
                Some(&json!({"body": body})),
            )?,
        };
        v["id"]
            .as_u64()
            .or(existing)
            .ok_or_else(|| "the comment answer has no id".to_string())
    }
}

fn client(state: &AppState) -> Option<Client> {
    let g = &state.config.github;
    Some(Client {
        api_url: g.api_url.clone(),
        token: g.token.clone()?,
    })
}

/// Runs forge calls in the background; failures are logged and counted.
fn spawn_api(
    state: &Arc<AppState>,
    f: impl FnOnce(&Client) -> Result<(), String> + Send + 'static,
) {
    let Some(client) = client(state) else {
        return;
    };
    let state = state.clone();
    tokio::spawn(async move {
        let result = tokio::task::spawn_blocking(move || f(&client))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        if let Err(e) = result {
            tracing::warn!(error = %e, "GitHub call failed");
            state.metrics.forge_failures.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// The pull request number of a change ref `pr/N`.
pub(crate) fn pr_number(change_ref: &str) -> Option<u64> {
    change_ref.strip_prefix("pr/")?.parse().ok()
}

/// Brings the pull request on GitHub up to date with the change's state: status,
/// labels, comment. Does nothing for changes that are not `pr/N` or without a token.
pub fn sync_change(state: &Arc<AppState>, change: &ChangeState) {
    let Some(number) = pr_number(&change.change_ref) else {
        return;
    };
    if state.config.github.token.is_none() {
        return;
    }
    let (state, change) = (state.clone(), change.clone());
    tokio::spawn(async move {
        // One update at a time, so two updates never both make a comment and the
        // last state written is the last state known.
        let _turn = state.forge_sync.lock().await;
        let Ok((_, decision)) = crate::latest(&state, &change.repo, &change.change_ref).await
        else {
            return;
        };
        let known = state
            .store
            .forge_comment(&change.repo, number)
            .await
            .ok()
            .flatten();
        let link = crate::web::change_link(&state, &change.repo, &change.change_ref);
        let (status, description) = commit_status(&decision, &change);
        let mut labels = vec![format!("lockgate:{}", decision.verdict.as_str())];
        if let Some(agent) = &decision.author.agent {
            labels.push(format!("agent:{agent}"));
        }
        let body = comment_body(&decision, &change, link.as_deref());
        let Some(client) = client(&state) else { return };
        let (repo, head) = (change.repo.clone(), change.head_sha.clone());
        let made = tokio::task::spawn_blocking(move || {
            client.status(&repo, &head, status, &description, link.as_deref())?;
            client.labels(&repo, number, &labels)?;
            client.upsert_comment(&repo, number, known, &body)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        match made {
            Ok(id) if Some(id) != known => {
                let _ = state
                    .store
                    .set_forge_comment(&change.repo, number, id)
                    .await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "updating the pull request on GitHub");
                state.metrics.forge_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}

/// The `lockgate` status for a change.
fn commit_status(d: &Decision, change: &ChangeState) -> (&'static str, String) {
    match d.verdict {
        Verdict::Blocked => ("failure", "blocked by policy".into()),
        Verdict::AutoMerge => ("success", format!("may merge (trust {})", d.trust.score)),
        Verdict::NeedsApproval if change.approved => ("success", "approved at this head".into()),
        Verdict::NeedsApproval => {
            let needs: Vec<String> = d
                .required_approvals
                .iter()
                .map(|r| {
                    if r.owners.is_empty() {
                        "a maintainer".into()
                    } else {
                        r.owners.join(" or ")
                    }
                })
                .collect();
            (
                "pending",
                format!("needs approval from {}", needs.join("; ")),
            )
        }
    }
}

/// Lockgate's pull request comment (Markdown).
pub fn comment_body(d: &Decision, change: &ChangeState, link: Option<&str>) -> String {
    let mut out = format!("{COMMENT_MARKER}\n### Lockgate: `{}`", d.verdict.as_str());
    if d.verdict == Verdict::NeedsApproval {
        out.push_str(if change.approved {
            " — approved"
        } else {
            " — waiting for approval"
        });
    }
    out.push_str(&format!(
        "\n\nHead `{}` · impact **{}** · trust **{}**",
        d.head.get(..12).unwrap_or(&d.head),
        d.impact.as_str(),
        d.trust.score
    ));
    if let Some(agent) = &d.author.agent {
        out.push_str(&format!(" · agent `{agent}`"));
    }
    out.push_str("\n\n");
    for r in &d.reasons {
        out.push_str(&format!(
            "- `{}` {}\n",
            r.rule,
            r.message.replace('\n', " ")
        ));
    }
    if !change.approvals.is_empty() {
        out.push_str("\n**Reviews at this head**\n");
        for a in &change.approvals {
            out.push_str(&format!(
                "- {} {} (via {})\n",
                a.approver,
                a.state.replace('_', " "),
                a.source
            ));
        }
    }
    if let Some(l) = link {
        out.push_str(&format!("\n[Review in Lockgate]({l})\n"));
    }
    out
}
