//! `lockgate check`: the pipeline, stage by stage.
//!
//! inputs (git, config, CODEOWNERS, policies — all read from the **base** revision, so
//! a change cannot loosen its own gate) → facts (ChangeSet) → assessment (secrets,
//! categories, owners, authorship → policy input) → decision (Rego) → sinks (the caller
//! renders it).

use crate::provenance;
use crate::sources::{self, Sources};
use anyhow::{Context, Result};
use lockgate_core::assess::Assessor;
use lockgate_core::decision::{self, Decision};
use lockgate_core::ledger::Ledger;
use lockgate_evidence::facts::{self as evidence, EvidencePaths};
use lockgate_git::Repo;
use std::path::PathBuf;
use std::time::Duration;

/// What to check and where the rules come from.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    pub repo: PathBuf,
    pub base: String,
    pub head: String,
    /// Read configuration from this file instead of the base revision.
    pub config_file: Option<PathBuf>,
    /// Read team policies from this directory instead of the base revision.
    pub policy_dir: Option<PathBuf>,
    /// Read configuration, CODEOWNERS and policies at this revision instead of the
    /// base (`lockgate replay` judging history by today's rules).
    pub rules_at: Option<String>,
    /// Test, coverage, SARIF and Terraform reports for the head.
    pub evidence: EvidencePaths,
    /// The operator's ledger of agents' earlier outcomes (JSON lines), for the
    /// track-record factor.
    pub ledger: Option<PathBuf>,
}

/// Largest ledger file read.
const MAX_LEDGER_BYTES: u64 = 256 << 20;

/// Reads the ledger named by the operator; errors name the file and line.
pub fn read_ledger(path: &std::path::Path) -> Result<Ledger> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading ledger {}", path.display()))?
        .len();
    if size > MAX_LEDGER_BYTES {
        anyhow::bail!(
            "ledger {}: {size} bytes is over the {MAX_LEDGER_BYTES}-byte limit",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading ledger {}", path.display()))?;
    Ledger::parse(&text).with_context(|| format!("ledger {}", path.display()))
}

/// The decision and the input it was made from.
pub struct CheckResult {
    pub decision: Decision,
    /// The canonical policy input text (its SHA-256 is `decision.input_digest`).
    pub input_json: String,
    /// Where config, CODEOWNERS and policies were read from.
    pub provenance: Vec<String>,
}

/// Runs the whole pipeline. Errors here are tool errors (exit 1); a policy that fails
/// to load or evaluate becomes a *blocked* decision instead (fail closed, explained).
pub fn run(request: &CheckRequest) -> Result<CheckResult> {
    let started = std::time::Instant::now();
    let stage = |name: &str| {
        tracing::debug!(
            stage = name,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "stage done"
        )
    };
    let repo = Repo::discover(&request.repo)?;
    let base = repo.resolve_commit(&request.base)?.to_string();

    let Sources {
        config,
        codeowners,
        policies,
        provenance,
    } = sources::load(&repo, &base, request)?;
    stage("sources");

    let mut change = repo
        .read_change(&request.base, &request.head, &config.limits)
        .with_context(|| format!("reading {}..{}", request.base, request.head))?;
    stage("read_change");

    let assessor = Assessor::new(&config).context("compiling .lockgate.toml rules")?;
    stage("compile_rules");
    let findings = assessor.scan_secrets(&mut change);
    let mut input = assessor.assess(&change, &findings, codeowners.as_ref());
    stage("assess");

    let agent_commits = provenance::agent_commit_ids(&change.commits, &input.author.commits);
    if !agent_commits.is_empty() {
        let trust = provenance::trust_root_at(&repo, &base)?;
        let source = trust.as_ref().map(|_| {
            format!(
                "{} at base {}",
                provenance::TRUST_FILE,
                lockgate_core::agents::short_sha(&base)
            )
        });
        input.provenance = provenance::collect(
            &repo,
            &change.commits,
            &agent_commits,
            trust.as_ref(),
            source,
            crate::now(),
        )?;
    }
    stage("provenance");

    // Evidence and the score come last: they need provenance (model, integrity).
    let mut paths = request.evidence.clone();
    if paths.root.is_none() {
        paths.root = repo
            .gix()
            .workdir()
            .and_then(|p| std::fs::canonicalize(p).ok())
            .map(|p| p.display().to_string());
    }
    let facts = evidence::gather(
        &paths,
        &change,
        &input.files,
        &config.evidence.terraform,
        &config.trust.require,
    )?;
    assessor.apply_evidence(&mut input, facts);
    let track_record = match &request.ledger {
        Some(path) => {
            read_ledger(path)?.record_of(input.author.agents.iter().map(|a| a.id.as_str()))
        }
        None => None,
    };
    input.trust = assessor.trust_score(&input, track_record);
    stage("evidence");

    let timeout = Duration::from_millis(config.policy.timeout_ms.max(1));
    let canonical = input.canonical();
    stage("canonical_input");
    let digest = &canonical.digest;
    let outcome = policies.and_then(|p| p.evaluate(&canonical.json, timeout));
    stage("evaluate");
    let decision = match outcome {
        Ok(outcome) => decision::decide(&input, digest, &outcome, &config.policy.disabled_rules),
        Err(e) => decision::blocked_by_error(&input, digest, "policy.error", &e.to_string()),
    };
    stage("policy");
    tracing::debug!(verdict = decision.verdict.as_str(), digest = %decision.input_digest, "decided");
    Ok(CheckResult {
        decision,
        input_json: canonical.json,
        provenance,
    })
}
