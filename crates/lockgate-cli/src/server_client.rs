//! `lockgate check --server URL`: posts the decision to `lockgate serve` and reads back
//! the approvals already given for that exact head.

use anyhow::{Context, Result, bail};
use lockgate_core::decision::Decision;
use lockgate_server::{ChangeState, RecordDecision};
use std::path::PathBuf;

/// Where and as what to record a decision.
#[derive(clap::Args, Clone)]
#[command(next_help_heading = "Server (record the decision; see docs/server.md)")]
pub struct ServerArgs {
    /// A `lockgate serve` URL: the decision is recorded there, and approvals already
    /// given for this exact head come back (all required approvals given → exit 0).
    #[arg(long, value_name = "URL", env = "LOCKGATE_SERVER")]
    pub server: Option<String>,
    /// File holding the CI token (else $LOCKGATE_SERVER_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub server_token_file: Option<PathBuf>,
    /// Repository name on the server (default $GITHUB_REPOSITORY).
    #[arg(long, value_name = "NAME")]
    pub server_repo: Option<String>,
    /// The change: a PR (`pr/42`) or branch (default pr/$PR_NUMBER from GitHub's ref).
    #[arg(long, value_name = "REF")]
    pub change: Option<String>,
}

fn token(args: &ServerArgs) -> Result<String> {
    if let Some(path) = &args.server_token_file {
        let text = crate::sources::read_local(path, 4096)?;
        return Ok(text.trim().to_string());
    }
    match std::env::var("LOCKGATE_SERVER_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        _ => bail!("--server needs a token: --server-token-file FILE or $LOCKGATE_SERVER_TOKEN"),
    }
}

fn change_ref(args: &ServerArgs) -> Result<String> {
    if let Some(c) = &args.change {
        return Ok(c.clone());
    }
    // refs/pull/42/merge on GitHub Actions pull_request events.
    if let Ok(r) = std::env::var("GITHUB_REF")
        && let Some(n) = r
            .strip_prefix("refs/pull/")
            .and_then(|r| r.split('/').next())
    {
        return Ok(format!("pr/{n}"));
    }
    bail!("--server needs --change (e.g. pr/42 or a branch name)")
}

fn repo_name(args: &ServerArgs) -> Result<String> {
    if let Some(r) = &args.server_repo {
        return Ok(r.clone());
    }
    match std::env::var("GITHUB_REPOSITORY") {
        Ok(r) if !r.is_empty() => Ok(r),
        _ => bail!("--server needs --server-repo NAME (or $GITHUB_REPOSITORY)"),
    }
}

/// Records the decision; returns the change's state on the server.
pub fn record(args: &ServerArgs, base: &str, decision: &Decision) -> Result<ChangeState> {
    let token = token(args)?;
    let body = RecordDecision {
        repo: repo_name(args)?,
        change_ref: change_ref(args)?,
        decision: decision.clone(),
    };
    let url = format!("{}/api/v1/decisions", base.trim_end_matches('/'));
    let mut response = crate::log_cmd::remote::agent()
        .post(&url)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(&body)?.as_slice())
        .with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(8 << 20)
        .read_to_vec()
        .with_context(|| format!("reading the answer of {url}"))?;
    if status != 200 {
        bail!(
            "{url} refused the decision: HTTP {status}: {}",
            String::from_utf8_lossy(&bytes).trim()
        );
    }
    serde_json::from_slice(&bytes).with_context(|| format!("{url} answered malformed JSON"))
}

/// A few lines on the server's view, for the report.
pub fn summary(state: &ChangeState) -> String {
    let mut out = format!(
        "server: recorded {} {} at {} (decision {})\n",
        state.repo,
        state.change_ref,
        &state.head_sha[..state.head_sha.len().min(12)],
        state.decision_id
    );
    for a in &state.approvals {
        out.push_str(&format!("  {} {} via {}\n", a.approver, a.state, a.source));
    }
    if state.verdict == "needs_approval" {
        out.push_str(if state.approved {
            "  every required approval is given for this head: may merge\n"
        } else {
            "  required approvals are not all given for this head yet\n"
        });
    }
    out
}
