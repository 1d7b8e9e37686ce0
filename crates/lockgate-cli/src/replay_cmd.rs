//! `lockgate replay`: policy back-testing. Every change that landed on a branch (its
//! first-parent chain: merge commits, squashes, direct pushes) is checked twice — with
//! the rules it was checked against then (config, CODEOWNERS and policies at its base)
//! and with a candidate (the rules at the branch tip, or local files) — and the report
//! says where the verdict would change. A merge is checked as its pull request was
//! (first parent .. merged head); anything else as first parent .. commit.

use crate::check::{self, CheckRequest};
use anyhow::{Context, Result, bail};
use lockgate_core::decision::{Decision, Severity, Verdict};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// How far back: a date (2026-10-01), an RFC 3339 time, or days ago (30d).
    #[arg(long)]
    since: String,
    /// The branch whose history is replayed.
    #[arg(long, default_value = "HEAD")]
    branch: String,
    /// Repository directory.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Candidate team policies: the *.rego files in this directory (instead of
    /// .lockgate/policies at the branch tip).
    #[arg(long)]
    policy_dir: Option<PathBuf>,
    /// Candidate configuration file (instead of .lockgate.toml at the branch tip).
    #[arg(long)]
    config: Option<PathBuf>,
    /// At most this many changes, newest first.
    #[arg(long, default_value_t = 500)]
    limit: usize,
    /// List only the changes whose verdict would change.
    #[arg(long)]
    changed_only: bool,
    /// Exit 4 if the candidate would let any change through more easily
    /// (blocked → needs approval or auto-merge, needs approval → auto-merge).
    #[arg(long)]
    fail_if_looser: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// One side of the comparison.
#[derive(Debug, Serialize)]
struct Outcome {
    /// `auto_merge`, `needs_approval`, `blocked`, or `error` (the check could not run).
    verdict: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trust_score: Option<u8>,
    /// Rules that asked for approval or blocked.
    rules: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Replayed {
    commit: String,
    first_parent: String,
    /// What was checked: `first_parent..checked_head` (a merge's second parent, as its
    /// pull request was checked; else the commit).
    checked_head: String,
    landed: String,
    merge: bool,
    summary: String,
    author: String,
    then: Outcome,
    now: Outcome,
    changed: bool,
    /// The candidate is less strict for this change.
    looser: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    branch: String,
    tip: String,
    since: String,
    baseline: String,
    candidate: String,
    changes: Vec<Replayed>,
    total: usize,
    changed: usize,
    looser: usize,
    /// `then -> now`: count, for the changes that changed.
    transitions: BTreeMap<String, usize>,
}

/// Parses `--since`: `YYYY-MM-DD`, RFC 3339, or `<N>d` before `now`.
pub fn parse_since(text: &str, now: i64) -> Result<i64> {
    let t = text.trim();
    if let Some(days) = t.strip_suffix('d')
        && let Ok(n) = days.parse::<i64>()
    {
        if n < 0 {
            bail!("--since {t}: days ago cannot be negative");
        }
        return Ok(now - n * 86_400);
    }
    let full = if t.len() == 10 {
        format!("{t}T00:00:00Z")
    } else {
        t.to_string()
    };
    lockgate_attest::trust::parse_rfc3339(&full).with_context(|| {
        format!("--since {t:?}: expected a date (2026-10-01), an RFC 3339 time or days ago (30d)")
    })
}

fn outcome(result: Result<check::CheckResult>) -> Outcome {
    match result {
        Ok(r) => from_decision(&r.decision),
        Err(e) => Outcome {
            verdict: "error".into(),
            route: None,
            trust_score: None,
            rules: Vec::new(),
            error: Some(format!("{e:#}")),
        },
    }
}

fn from_decision(d: &Decision) -> Outcome {
    let rules: BTreeSet<String> = d
        .reasons
        .iter()
        .filter(|r| r.severity >= Severity::Approval)
        .map(|r| r.rule.clone())
        .chain(d.required_approvals.iter().map(|a| a.rule.clone()))
        .collect();
    Outcome {
        verdict: d.verdict.as_str().into(),
        route: d.route.map(|r| r.as_str().into()),
        trust_score: Some(d.trust.score),
        rules: rules.into_iter().collect(),
        error: None,
    }
}

/// Strictness order: an error counts as blocked (fail closed).
fn strictness(verdict: &str) -> u8 {
    match verdict {
        v if v == Verdict::AutoMerge.as_str() => 0,
        v if v == Verdict::NeedsApproval.as_str() => 1,
        _ => 2,
    }
}

pub fn run(args: ReplayArgs) -> Result<u8> {
    let since = parse_since(&args.since, crate::now())?;
    let repo = lockgate_git::Repo::discover(&args.repo)?;
    let tip = repo.resolve_commit(&args.branch)?.to_string();
    let history = repo.first_parent_history(&tip, since, args.limit)?;
    let candidate = match (&args.config, &args.policy_dir) {
        (None, None) => format!("rules at {} ({})", args.branch, &tip[..12]),
        (config, policies) => {
            let mut parts = Vec::new();
            if let Some(c) = config {
                parts.push(format!("config {}", c.display()));
            }
            if let Some(p) = policies {
                parts.push(format!("policies {}", p.display()));
            }
            format!("{} (else rules at {})", parts.join(", "), &tip[..12])
        }
    };
    let request = |landed: &lockgate_git::Landed| CheckRequest {
        repo: args.repo.clone(),
        base: landed.first_parent.clone(),
        head: landed.checked_head.clone(),
        config_file: None,
        policy_dir: None,
        rules_at: None,
        evidence: Default::default(),
        ledger: None,
    };
    let mut changes = Vec::new();
    for landed in &history {
        let then = check::run(&request(landed));
        let author = match &then {
            Ok(r) => crate::render::author_line(&r.decision),
            Err(_) => "?".into(),
        };
        let then = outcome(then);
        let now = outcome(check::run(&CheckRequest {
            config_file: args.config.clone(),
            policy_dir: args.policy_dir.clone(),
            rules_at: Some(tip.clone()),
            ..request(landed)
        }));
        let changed = then.verdict != now.verdict;
        let looser = strictness(&now.verdict) < strictness(&then.verdict);
        changes.push(Replayed {
            commit: landed.sha.clone(),
            first_parent: landed.first_parent.clone(),
            checked_head: landed.checked_head.clone(),
            landed: lockgate_attest::trust::format_rfc3339(landed.time),
            merge: landed.parents > 1,
            summary: landed.summary.clone(),
            author,
            then,
            now,
            changed,
            looser,
        });
    }
    let mut transitions = BTreeMap::new();
    for c in changes.iter().filter(|c| c.changed) {
        *transitions
            .entry(format!("{} -> {}", c.then.verdict, c.now.verdict))
            .or_default() += 1;
    }
    let report = Report {
        branch: args.branch.clone(),
        tip: tip.clone(),
        since: lockgate_attest::trust::format_rfc3339(since),
        baseline: "rules at each change's base (as checked then)".into(),
        candidate,
        total: changes.len(),
        changed: changes.iter().filter(|c| c.changed).count(),
        looser: changes.iter().filter(|c| c.looser).count(),
        transitions,
        changes,
    };

    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write_text(&mut out, &report, args.changed_only)?;
    }
    out.flush()?;
    Ok(if args.fail_if_looser && report.looser > 0 {
        crate::render::exit::BLOCKED
    } else {
        0
    })
}

fn write_text(out: &mut impl Write, r: &Report, changed_only: bool) -> std::io::Result<()> {
    writeln!(
        out,
        "replay: {} change(s) on {} since {} (first parent)",
        r.total, r.branch, r.since
    )?;
    writeln!(out, "  then: {}", r.baseline)?;
    writeln!(out, "  now:  {}\n", r.candidate)?;
    for c in &r.changes {
        if changed_only && !c.changed {
            continue;
        }
        let mark = if c.looser {
            "↓"
        } else if c.changed {
            "↑"
        } else {
            " "
        };
        writeln!(
            out,
            "{mark} {} {}  {:<14} → {:<14}  {}",
            &c.commit[..12],
            &c.landed[..10],
            c.then.verdict,
            c.now.verdict,
            c.summary
        )?;
        if c.changed {
            let before: BTreeSet<&String> = c.then.rules.iter().collect();
            let after: BTreeSet<&String> = c.now.rules.iter().collect();
            let added: Vec<&str> = after.difference(&before).map(|s| s.as_str()).collect();
            let gone: Vec<&str> = before.difference(&after).map(|s| s.as_str()).collect();
            writeln!(out, "    author {}", c.author)?;
            if !added.is_empty() {
                writeln!(out, "    now also: {}", added.join(", "))?;
            }
            if !gone.is_empty() {
                writeln!(out, "    no longer: {}", gone.join(", "))?;
            }
            for e in [&c.then.error, &c.now.error].into_iter().flatten() {
                writeln!(out, "    error: {e}")?;
            }
        }
    }
    writeln!(
        out,
        "\n{} of {} verdict(s) would change ({} looser)",
        r.changed, r.total, r.looser
    )?;
    for (t, n) in &r.transitions {
        writeln!(out, "  {t}: {n}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_dates_times_and_days_ago() {
        assert_eq!(parse_since("2026-11-01", 0).unwrap(), 1_793_491_200);
        assert_eq!(
            parse_since("2026-11-01T12:00:00Z", 0).unwrap(),
            1_793_534_400
        );
        assert_eq!(parse_since("30d", 100 * 86_400).unwrap(), 70 * 86_400);
        assert!(parse_since("last week", 0).is_err());
        assert!(parse_since("-3d", 0).is_err());
    }
}
