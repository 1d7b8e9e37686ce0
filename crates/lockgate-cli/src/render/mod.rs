//! Output formats for a decision. Only the CLI knows about formats and exit codes.
//!
//! Every renderer works from the [`Decision`] alone, which never contains secret
//! values, so no format can leak one.

mod markdown;
mod sarif;
mod text;
pub(crate) mod trust;

use clap::ValueEnum;
use lockgate_core::decision::{Decision, Verdict};

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable report (default).
    Text,
    /// The `lockgate.decision/v1` JSON document.
    Json,
    /// A PR comment / `$GITHUB_STEP_SUMMARY`.
    Markdown,
    /// SARIF 2.1.0 for code scanning (findings with locations).
    Sarif,
}

/// Renders `decision`. `provenance` says where rules were read from.
pub fn render(format: Format, decision: &Decision, provenance: &[String]) -> String {
    match format {
        Format::Text => text::render(decision, provenance),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(decision).expect("decisions serialize");
            s.push('\n');
            s
        }
        Format::Markdown => markdown::render(decision),
        Format::Sarif => sarif::render(decision),
    }
}

/// Process exit codes: documented in README and `--help`.
pub mod exit {
    /// The change may merge on its own.
    pub const AUTO_MERGE: u8 = 0;
    /// Lockgate itself failed (bad input, unreadable repo, invalid config).
    pub const ERROR: u8 = 1;
    /// Invalid command line (clap).
    pub const USAGE: u8 = 2;
    /// The change needs the listed approvals.
    pub const NEEDS_APPROVAL: u8 = 3;
    /// The change may not merge.
    pub const BLOCKED: u8 = 4;
}

/// The exit code for a verdict.
pub fn exit_code(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::AutoMerge => exit::AUTO_MERGE,
        Verdict::NeedsApproval => exit::NEEDS_APPROVAL,
        Verdict::Blocked => exit::BLOCKED,
    }
}

/// One-letter git-style status.
pub(crate) fn status_letter(status: lockgate_core::change::FileStatus) -> char {
    use lockgate_core::change::FileStatus::*;
    match status {
        Added => 'A',
        Modified => 'M',
        Deleted => 'D',
        Renamed => 'R',
        Copied => 'C',
        ModeChanged => 'X',
        TypeChanged => 'T',
    }
}

/// `a, b, c` of categories.
pub(crate) fn category_list(categories: &[lockgate_core::category::Category]) -> String {
    categories
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// "agent claude-code (Claude Code, trust up to high)" and the like.
pub(crate) fn author_line(d: &Decision) -> String {
    let kind = d.author.kind.as_str();
    let agents: Vec<String> = d
        .author
        .agents
        .iter()
        .map(|a| {
            format!(
                "{} ({}, trust up to {}, {} commit{}{})",
                a.id,
                a.display,
                a.trust.as_str(),
                a.commits,
                if a.commits == 1 { "" } else { "s" },
                if a.weak { ", marker only" } else { "" }
            )
        })
        .collect();
    let mut line = kind.to_string();
    if !agents.is_empty() {
        line.push_str(": ");
        line.push_str(&agents.join("; "));
    }
    if !d.author.humans.is_empty() && d.author.kind != lockgate_core::agents::AuthorKind::Human {
        line.push_str(&format!(" + humans {}", d.author.humans.join(", ")));
    } else if d.author.kind == lockgate_core::agents::AuthorKind::Human
        && !d.author.humans.is_empty()
    {
        line.push_str(&format!(": {}", d.author.humans.join(", ")));
    }
    line
}

/// "2 approvals from any of @a @b" / "1 approval from any maintainer".
pub(crate) fn approval_line(a: &lockgate_core::decision::RequiredApproval) -> String {
    let who = if a.owners.is_empty() {
        "any maintainer".to_string()
    } else {
        format!("any of {}", a.owners.join(" "))
    };
    format!(
        "{} approval{} from {who}",
        a.count,
        if a.count == 1 { "" } else { "s" }
    )
}

pub(crate) use lockgate_core::agents::short_sha as short;

/// How an attestation matched, in words.
pub(crate) fn binding_name(b: lockgate_core::provenance::Binding) -> &'static str {
    match b {
        lockgate_core::provenance::Binding::Commit => "commit",
        lockgate_core::provenance::Binding::Tree => "tree",
        lockgate_core::provenance::Binding::PatchId => "patch id",
    }
}
