//! The decision: what policy concluded, folded into one verdict with its reasons.
//!
//! Policy engines produce a [`PolicyOutcome`] (plain data: the union of every
//! package's `deny`, `require_approval`, `warn` and `note` results, plus whether the
//! built-in pack explicitly allowed an automatic merge). [`decide`] turns it into a
//! [`Decision`], failing closed: a change merges on its own only when some rule said
//! so and nothing objected.

use crate::agents::{AgentSummary, AuthorKind, CommitAuthorship, Evidence};
use crate::category::{Category, Impact, TrustBand};
use crate::change::{EntryKind, FileStatus};
use crate::config::Route;
use crate::input::{FindingFacts, PolicyInput};
use crate::provenance::ProvenanceFacts;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version tag of the decision document.
pub const DECISION_SCHEMA_VERSION: &str = "lockgate.decision/v1";

/// The outcome of a check.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// May merge without a human.
    AutoMerge,
    /// Needs the approvals in `required_approvals`.
    NeedsApproval,
    /// May not merge.
    Blocked,
}

impl Verdict {
    /// The lower-case name used everywhere.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::AutoMerge => "auto_merge",
            Verdict::NeedsApproval => "needs_approval",
            Verdict::Blocked => "blocked",
        }
    }
}

/// How serious a reason is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Approval,
    Block,
}

/// A rule result that explains the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reason {
    /// Rule id, e.g. `secrets.leaked`, `route.gate`.
    pub rule: String,
    pub message: String,
    pub severity: Severity,
}

/// Approvals a change needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequiredApproval {
    pub rule: String,
    /// Any of these may approve (users, teams or emails as in CODEOWNERS). Empty
    /// means any reviewer with write access.
    pub owners: Vec<String>,
    /// How many distinct approvals.
    pub count: u32,
    pub reason: String,
    /// How long to wait for these approvals before `lockgate serve` escalates (notifies
    /// on-call and holds the change): `4h`, `30m`, `1h 30m`, `2days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after: Option<String>,
}

/// Longest wait before escalation.
pub const MAX_ESCALATION_WAIT: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

/// Parses an escalation wait (`4h`, `30m`, `1h 30m`, `2days`): 1 s to a year.
pub fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("escalate_after {text:?}: {e} (write e.g. \"4h\" or \"1h 30m\")"))?;
    if d < std::time::Duration::from_secs(1) || d > MAX_ESCALATION_WAIT {
        return Err(format!(
            "escalate_after {text:?}: must be between 1s and 366 days"
        ));
    }
    Ok(d)
}

/// Serde helper: an optional wait, checked with [`parse_wait`] when read.
pub(crate) fn deserialize_wait<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    if let Some(t) = &text {
        parse_wait(t).map_err(serde::de::Error::custom)?;
    }
    Ok(text)
}

/// A `deny`, `warn` or `note` result from a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuleMessage {
    pub rule: String,
    pub message: String,
}

/// Everything policy evaluation produced, engine-independent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyOutcome {
    pub deny: Vec<RuleMessage>,
    pub require_approval: Vec<RequiredApproval>,
    pub warn: Vec<RuleMessage>,
    pub notes: Vec<RuleMessage>,
    /// The built-in pack explicitly allowed an automatic merge.
    pub allow_auto_merge: bool,
    /// The route the built-in pack chose, if it chose one.
    pub route: Option<Route>,
    /// Policy files that took part (built-in first).
    pub sources: Vec<String>,
}

/// A changed file as shown in the decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DecisionFile {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    pub status: FileStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<EntryKind>,
    pub binary: bool,
    pub lines_added: u32,
    pub lines_removed: u32,
    pub categories: Vec<Category>,
    pub flags: Vec<String>,
    pub impact: Impact,
    pub owners: Vec<String>,
}

/// Who wrote the change, as shown in the decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DecisionAuthor {
    pub kind: AuthorKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub agents: Vec<AgentSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust: Option<TrustBand>,
    pub humans: Vec<String>,
    pub evidence: Vec<Evidence>,
    /// Who wrote each commit in the range (newest first).
    pub commits: Vec<CommitAuthorship>,
}

/// The result of `lockgate check` (`lockgate.decision/v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decision {
    pub schema_version: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    pub author: DecisionAuthor,
    pub base: String,
    pub head: String,
    pub merge_base: String,
    pub impact: Impact,
    pub categories: Vec<Category>,
    pub files: Vec<DecisionFile>,
    pub reasons: Vec<Reason>,
    pub required_approvals: Vec<RequiredApproval>,
    pub findings: Vec<FindingFacts>,
    /// Provenance of the agent commits.
    pub provenance: ProvenanceFacts,
    /// The trust score with its factors.
    pub trust: crate::trust::TrustScore,
    /// The evidence it was computed from.
    pub evidence: crate::evidence::EvidenceFacts,
    /// `sha256:` digest of the canonical policy input: replays this exact decision.
    pub input_digest: String,
    pub policy_sources: Vec<String>,
}

/// Rule-id prefixes that always apply, whatever `disabled_rules` says.
const UNDISABLEABLE: [&str; 5] = [
    "input.",
    "policy.",
    "secrets.",
    "provenance.invalid",
    "provenance.revoked",
];

/// Whether `rule` may be turned off by configuration.
pub fn can_disable(rule: &str) -> bool {
    !UNDISABLEABLE.iter().any(|p| rule.starts_with(p))
}

/// Folds a policy outcome into the decision. `input_digest` is the digest of the
/// canonical input policy saw; `disabled` lists rule ids to drop (rules that guard
/// fail-closed behaviour are never dropped).
pub fn decide(
    input: &PolicyInput,
    input_digest: &str,
    outcome: &PolicyOutcome,
    disabled: &[String],
) -> Decision {
    let active = |rule: &str| !(disabled.iter().any(|d| d == rule) && can_disable(rule));

    let mut reasons = Vec::new();
    for d in outcome.deny.iter().filter(|d| active(&d.rule)) {
        reasons.push(Reason {
            rule: d.rule.clone(),
            message: d.message.clone(),
            severity: Severity::Block,
        });
    }
    let mut required: Vec<RequiredApproval> = Vec::new();
    for r in outcome.require_approval.iter().filter(|r| active(&r.rule)) {
        let mut r = r.clone();
        r.count = r.count.max(1);
        let mut owners = r.owners.clone();
        owners.sort();
        owners.dedup();
        r.owners = owners;
        if !required.contains(&r) {
            reasons.push(Reason {
                rule: r.rule.clone(),
                message: r.reason.clone(),
                severity: Severity::Approval,
            });
            required.push(r);
        }
    }
    for w in outcome.warn.iter().filter(|w| active(&w.rule)) {
        reasons.push(Reason {
            rule: w.rule.clone(),
            message: w.message.clone(),
            severity: Severity::Warning,
        });
    }
    for n in &outcome.notes {
        reasons.push(Reason {
            rule: n.rule.clone(),
            message: n.message.clone(),
            severity: Severity::Info,
        });
    }

    let blocked = reasons.iter().any(|r| r.severity == Severity::Block);
    let verdict = if blocked {
        Verdict::Blocked
    } else if !required.is_empty() {
        Verdict::NeedsApproval
    } else if outcome.allow_auto_merge {
        Verdict::AutoMerge
    } else {
        let reason =
            "no policy rule allowed an automatic merge, so a human must approve (fail closed)";
        reasons.push(Reason {
            rule: "policy.no_allow".into(),
            message: reason.into(),
            severity: Severity::Approval,
        });
        required.push(RequiredApproval {
            rule: "policy.no_allow".into(),
            owners: input.config.review.fallback_reviewers.clone(),
            count: 1,
            reason: reason.into(),
            escalate_after: None,
        });
        Verdict::NeedsApproval
    };
    reasons.sort_by_key(|r| std::cmp::Reverse(r.severity));
    // Rules that set no wait of their own escalate after the configured default.
    for r in &mut required {
        if r.escalate_after.is_none() {
            r.escalate_after = input.config.review.escalate_after.clone();
        }
    }

    Decision {
        schema_version: DECISION_SCHEMA_VERSION.into(),
        verdict,
        route: outcome.route,
        author: DecisionAuthor {
            kind: input.author.kind,
            agent: input.author.agent.clone(),
            agents: input.author.agents.clone(),
            trust: input.author.trust,
            humans: input.author.humans.clone(),
            evidence: input.author.evidence.clone(),
            commits: input.author.commits.clone(),
        },
        base: input.change.base.clone(),
        head: input.change.head.clone(),
        merge_base: input.change.merge_base.clone(),
        impact: input.impact,
        categories: input.categories.clone(),
        files: input
            .files
            .iter()
            .map(|f| DecisionFile {
                path: f.path.clone(),
                old_path: f.old_path.clone(),
                status: f.status,
                similarity: f.similarity,
                kind: f.new_kind.or(f.old_kind),
                binary: f.binary,
                lines_added: f.lines_added,
                lines_removed: f.lines_removed,
                categories: f.categories.clone(),
                flags: f.flags.clone(),
                impact: f.impact,
                owners: f.owners.clone(),
            })
            .collect(),
        reasons,
        required_approvals: required,
        findings: input.findings.clone(),
        provenance: input.provenance.clone(),
        trust: input.trust.clone(),
        evidence: input.evidence.clone(),
        input_digest: input_digest.to_string(),
        policy_sources: outcome.sources.clone(),
    }
}

/// A decision that blocks because the pipeline itself failed (fail closed): used when
/// policy cannot be evaluated but the facts are known.
pub fn blocked_by_error(
    input: &PolicyInput,
    input_digest: &str,
    rule: &str,
    message: &str,
) -> Decision {
    let outcome = PolicyOutcome {
        deny: vec![RuleMessage {
            rule: rule.into(),
            message: message.into(),
        }],
        ..PolicyOutcome::default()
    };
    decide(input, input_digest, &outcome, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assess::Assessor;
    use crate::change::ChangeSet;
    use crate::config::Config;

    fn input() -> PolicyInput {
        Assessor::new(&Config::default())
            .unwrap()
            .assess(&ChangeSet::default(), &[], None)
    }

    fn msg(rule: &str) -> RuleMessage {
        RuleMessage {
            rule: rule.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn nothing_allowed_means_needs_approval() {
        let d = decide(&input(), "sha256:x", &PolicyOutcome::default(), &[]);
        assert_eq!(d.verdict, Verdict::NeedsApproval);
        assert_eq!(d.reasons[0].rule, "policy.no_allow");
    }

    #[test]
    fn deny_beats_approval_beats_allow() {
        let mut o = PolicyOutcome {
            allow_auto_merge: true,
            ..PolicyOutcome::default()
        };
        assert_eq!(
            decide(&input(), "sha256:x", &o, &[]).verdict,
            Verdict::AutoMerge
        );
        o.require_approval.push(RequiredApproval {
            rule: "route.approve".into(),
            owners: vec!["@b".into(), "@a".into(), "@a".into()],
            count: 0,
            reason: "r".into(),
            escalate_after: None,
        });
        let d = decide(&input(), "sha256:x", &o, &[]);
        assert_eq!(d.verdict, Verdict::NeedsApproval);
        assert_eq!(d.required_approvals[0].owners, ["@a", "@b"]);
        assert_eq!(d.required_approvals[0].count, 1);
        o.deny.push(msg("team.no_fridays"));
        assert_eq!(
            decide(&input(), "sha256:x", &o, &[]).verdict,
            Verdict::Blocked
        );
    }

    #[test]
    fn disabling_rules_cannot_defeat_fail_closed_rules() {
        let o = PolicyOutcome {
            deny: vec![msg("secrets.leaked"), msg("team.rule")],
            allow_auto_merge: true,
            ..PolicyOutcome::default()
        };
        let disabled = vec!["secrets.leaked".to_string(), "team.rule".to_string()];
        let d = decide(&input(), "sha256:x", &o, &disabled);
        assert_eq!(d.verdict, Verdict::Blocked);
        assert_eq!(d.reasons.len(), 1);
        assert_eq!(d.reasons[0].rule, "secrets.leaked");
    }
}
