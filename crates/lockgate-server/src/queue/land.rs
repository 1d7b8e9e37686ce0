//! The forge side of landing: building a batch's results on the target's tip, and moving
//! the target to a tested result — by a compare-and-swap push, or through GitHub's API.

use super::{QueueRepo, change_remote_ref, short};
use crate::AppState;
use lockgate_merge::{Advance, MergeError, Workspace};
use lockgate_store::QueueEntry;

/// A batch built on the target: per entry `(prev, result)` — `prev` is the target's
/// tip for the first — or why it cannot be built (it is ejected; the next is built
/// where it would have been).
pub struct Stack {
    pub results: Vec<Result<(String, String), String>>,
}

/// Fetches the target, the notes and each change, and builds each entry on the result
/// before it. An error here (git, the remote) is for the whole batch: try again later.
pub fn build_stack(
    ws: &Workspace,
    repo: &QueueRepo,
    entries: &[QueueEntry],
) -> Result<Stack, MergeError> {
    let tip = ws.fetch_branch(&repo.target)?;
    ws.fetch_notes()?;
    let mut prev = tip;
    let mut results = Vec::with_capacity(entries.len());
    for entry in entries {
        match build_one(ws, repo, entry, &prev)? {
            Ok(result) => {
                let on = std::mem::replace(&mut prev, result.clone());
                results.push(Ok((on, result)));
            }
            Err(why) => results.push(Err(why)),
        }
    }
    Ok(Stack { results })
}

/// `text` with the queue's remote taken out: a remote URL may carry a credential, and
/// git repeats it in its errors, which become reasons people and webhooks see.
pub fn scrub(text: &str, repo: &QueueRepo) -> String {
    if repo.remote.is_empty() {
        return text.to_string();
    }
    text.replace(&repo.remote, "<remote>")
}

/// Builds one entry on `on`: `Ok(Ok(result))`, `Ok(Err(why it is ejected))`, or a git
/// failure.
fn build_one(
    ws: &Workspace,
    repo: &QueueRepo,
    entry: &QueueEntry,
    on: &str,
) -> Result<Result<String, String>, MergeError> {
    let reference = change_remote_ref(&entry.change_ref);
    let head = match ws.fetch_ref(&reference) {
        Ok(h) => h,
        Err(MergeError::Invalid(..)) => {
            return Ok(Err(format!(
                "{reference:?} is not a ref the queue can fetch"
            )));
        }
        Err(e) => {
            let why = format!("fetching {reference}: {e}");
            return Ok(Err(scrub(&why, repo)));
        }
    };
    if head != entry.head_sha {
        return Ok(Err(format!(
            "{reference} now points at {}, not the queued head {}",
            short(&head),
            short(&entry.head_sha)
        )));
    }
    let message = format!(
        "Merge {} ({})\n\nLockgate-Queue-Entry: {}\nLockgate-Change-Head: {}",
        entry.change_ref,
        short(&entry.head_sha),
        entry.id,
        entry.head_sha
    );
    match ws.build(on, &head, repo.method(), &message) {
        Ok(b) => Ok(Ok(b.commit)),
        Err(e @ MergeError::Conflict { .. }) => Ok(Err(e.to_string())),
        Err(e) => Err(e),
    }
}

/// `[github]`'s API URL and token, when a token is configured.
pub fn github_api(state: &AppState) -> Option<(String, String)> {
    let g = &state.config.github;
    g.token
        .clone()
        .map(|t| (g.api_url.trim_end_matches('/').to_string(), t))
}

/// Moves the target from `tip` to `built`: a compare-and-swap push, or — for a queue
/// that lands through GitHub — the result pushed to a private ref and the branch
/// fast-forwarded to it through the API (`force: false`: GitHub refuses anything but a
/// fast-forward, so a branch that moved is never overwritten).
pub fn advance(
    ws: &Workspace,
    repo: &QueueRepo,
    github: Option<&(String, String)>,
    entry_id: &str,
    tip: &str,
    built: &str,
) -> Result<Advance, String> {
    let Some(gh) = &repo.github else {
        return ws
            .advance(&repo.target, tip, built)
            .map_err(|e| e.to_string());
    };
    let (api, token) = github.ok_or("no [github] token to land with")?;
    let private = format!("refs/lockgate/queue/{entry_id}");
    ws.push_ref(built, &private)
        .map_err(|e| scrub(&e.to_string(), repo))?;
    let url = format!("{api}/repos/{gh}/git/refs/heads/{}", repo.target);
    let body = serde_json::json!({"sha": built, "force": false});
    let (status, answer) = crate::outbound::api("PATCH", &url, token, Some(&body))?;
    let outcome = match status {
        200 | 201 => Ok(Advance::Done),
        422 => {
            let now = ws
                .fetch_branch(&repo.target)
                .map_err(|e| scrub(&e.to_string(), repo))?;
            if now != tip {
                Ok(Advance::Moved)
            } else {
                Err(format!(
                    "GitHub refused to move {}: {}",
                    repo.target, answer["message"]
                ))
            }
        }
        s => Err(format!(
            "GitHub answered HTTP {s} moving {}: {}",
            repo.target, answer["message"]
        )),
    };
    if outcome.is_ok() {
        let _ = ws.delete_remote_ref(&private);
    }
    outcome
}

/// Tells the pull request it landed, and closes it when GitHub cannot see that itself
/// (a squash or rebase makes new commits). Best effort: the merge is recorded already.
pub fn close_pull_request(
    api: &(String, String),
    gh: &str,
    number: u64,
    repo: &QueueRepo,
    built: &str,
) {
    let (base, token) = api;
    comment_on_pull_request(
        api,
        gh,
        number,
        &format!(
            "Landed on `{}` as {built} by Lockgate's merge queue ({}), after the gate and the tests ran on that exact commit.",
            repo.target, repo.method
        ),
    );
    if repo.method() != lockgate_merge::Method::Merge {
        let url = format!("{base}/repos/{gh}/pulls/{number}");
        let close = serde_json::json!({"state": "closed"});
        if let Err(e) = crate::outbound::api("PATCH", &url, token, Some(&close)) {
            tracing::warn!(error = %e, "closing the landed pull request");
        }
    }
}

/// Comments on a pull request (best effort: logged when it fails).
pub fn comment_on_pull_request(api: &(String, String), gh: &str, number: u64, body: &str) {
    let (base, token) = api;
    let url = format!("{base}/repos/{gh}/issues/{number}/comments");
    let comment = serde_json::json!({ "body": body });
    if let Err(e) = crate::outbound::api("POST", &url, token, Some(&comment)) {
        tracing::warn!(error = %e, "commenting on the pull request");
    }
}

/// Where a result's required checks stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checks {
    Passed,
    /// One failed: which, and how.
    Failed(String),
    /// These have not finished (or not started).
    Pending(Vec<String>),
}

/// Asks GitHub about `sha`'s check runs and commit statuses and judges `required`.
pub fn checks(
    api: &(String, String),
    gh: &str,
    sha: &str,
    required: &[String],
) -> Result<Checks, String> {
    let (base, token) = api;
    let get = |path: &str| -> Result<serde_json::Value, String> {
        let (status, answer) = crate::outbound::api(
            "GET",
            &format!("{base}/repos/{gh}/commits/{sha}/{path}"),
            token,
            None,
        )?;
        if status != 200 {
            return Err(format!(
                "GitHub answered HTTP {status} for the {path} of {}",
                short(sha)
            ));
        }
        Ok(answer)
    };
    let runs = get("check-runs?per_page=100")?;
    let statuses = get("status")?;
    Ok(judge(required, &runs, &statuses))
}

/// The required checks' state from GitHub's check-runs and combined-status answers: a
/// check run by `name` or a status by `context`; the newest of each name counts.
pub fn judge(
    required: &[String],
    runs: &serde_json::Value,
    statuses: &serde_json::Value,
) -> Checks {
    let empty = Vec::new();
    let runs = runs["check_runs"].as_array().unwrap_or(&empty);
    let statuses = statuses["statuses"].as_array().unwrap_or(&empty);
    let mut pending = Vec::new();
    for name in required {
        // GitHub lists the newest first.
        let run = runs.iter().find(|r| r["name"] == name.as_str());
        let status = statuses.iter().find(|s| s["context"] == name.as_str());
        let verdict = match (run, status) {
            (Some(r), _) if r["status"] != "completed" => None,
            (Some(r), _) => match r["conclusion"].as_str() {
                Some("success" | "neutral" | "skipped") => Some(Ok(())),
                other => Some(Err(format!("{name}: {}", other.unwrap_or("no conclusion")))),
            },
            (None, Some(s)) => match s["state"].as_str() {
                Some("success") => Some(Ok(())),
                Some("pending") | None => None,
                Some(other) => Some(Err(format!("{name}: {other}"))),
            },
            (None, None) => None,
        };
        match verdict {
            Some(Ok(())) => {}
            Some(Err(why)) => return Checks::Failed(why),
            None => pending.push(name.clone()),
        }
    }
    if pending.is_empty() {
        Checks::Passed
    } else {
        Checks::Pending(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_remote_and_its_credential_never_reach_a_reason() {
        let repo: QueueRepo = toml::from_str(
            "name = \"acme/app\"\nremote = \"https://x-access-token:ghs_secret@github.com/acme/app.git\"\n",
        )
        .unwrap();
        let said =
            "fatal: could not read from https://x-access-token:ghs_secret@github.com/acme/app.git";
        let scrubbed = scrub(said, &repo);
        assert!(!scrubbed.contains("ghs_secret"), "{scrubbed}");
        assert_eq!(scrubbed, "fatal: could not read from <remote>");
    }

    #[test]
    fn required_checks_pass_fail_or_wait_by_name() {
        let need = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let runs = json!({"check_runs": [
            {"name": "test", "status": "completed", "conclusion": "success"},
            {"name": "lint", "status": "completed", "conclusion": "failure"},
            {"name": "slow", "status": "in_progress", "conclusion": null},
            {"name": "test", "status": "completed", "conclusion": "failure"}
        ]});
        let statuses = json!({"statuses": [
            {"context": "ci/legacy", "state": "success"},
            {"context": "ci/pending", "state": "pending"},
            {"context": "ci/broken", "state": "error"}
        ]});
        assert_eq!(
            judge(&need(&["test", "ci/legacy"]), &runs, &statuses),
            Checks::Passed
        );
        assert_eq!(
            judge(&need(&["test", "lint"]), &runs, &statuses),
            Checks::Failed("lint: failure".into())
        );
        assert_eq!(
            judge(&need(&["ci/broken"]), &runs, &statuses),
            Checks::Failed("ci/broken: error".into())
        );
        assert_eq!(
            judge(
                &need(&["slow", "ci/pending", "missing", "test"]),
                &runs,
                &statuses
            ),
            Checks::Pending(need(&["slow", "ci/pending", "missing"]))
        );
        assert_eq!(
            judge(&need(&["test"]), &json!({}), &json!(null)),
            Checks::Pending(need(&["test"])),
            "an unreadable answer is no verdict"
        );
    }
}
