//! Who may approve a change, and whether the approvals given satisfy what a decision
//! requires. Pure: the server supplies the people directory, the decision and the
//! approvals it holds for the change's head.
//!
//! Rules, in order: only a person can approve (an identity the agent registry knows as
//! an agent or bot never can); no one approves a change they wrote; an approval binds to
//! the head commit the decision was made for (a new push needs new approvals); and the
//! approver must be one of the owners some required approval names (a user `@login`, a
//! team `@org/team` the directory puts them in, or an email), or any person when an
//! approval names no owners.

use crate::agents::{AuthorKind, Registry};
use crate::change::{Commit, Person as CommitPerson};
use crate::decision::{Decision, RequiredApproval, Verdict};
use serde::{Deserialize, Serialize};

/// A person in the server's directory (CODEOWNERS teams mapped to people).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Stable id (token subject).
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// Emails, as CODEOWNERS and git commits show them.
    #[serde(default)]
    pub emails: Vec<String>,
    /// Forge login (without `@`).
    #[serde(default)]
    pub github: Option<String>,
    /// Slack user id.
    #[serde(default)]
    pub slack: Option<String>,
    /// CODEOWNERS teams (`@org/team`).
    #[serde(default)]
    pub teams: Vec<String>,
}

impl Person {
    /// Whether this person is named by a CODEOWNERS owner.
    pub fn is_owner(&self, owner: &str) -> bool {
        let owner = owner.trim();
        if let Some(handle) = owner.strip_prefix('@') {
            if handle.contains('/') {
                return self.teams.iter().any(|t| t.eq_ignore_ascii_case(owner));
            }
            return self
                .github
                .as_deref()
                .is_some_and(|g| g.eq_ignore_ascii_case(handle));
        }
        self.emails.iter().any(|e| e.eq_ignore_ascii_case(owner))
    }

    /// Whether the agent registry recognizes one of this person's identities as an
    /// agent or bot (such an identity can never approve).
    pub fn is_agent(&self, registry: &Registry) -> bool {
        let mut identities: Vec<CommitPerson> = self
            .emails
            .iter()
            .map(|e| CommitPerson::new(&self.name, e))
            .collect();
        if let Some(g) = &self.github {
            if g.ends_with("[bot]") {
                return true;
            }
            identities.push(CommitPerson::new(g, ""));
        }
        identities.iter().any(|who| {
            let commit = Commit {
                sha: "0".repeat(40),
                author: who.clone(),
                committer: who.clone(),
                ..Commit::default()
            };
            registry.classify(&[commit]).kind != AuthorKind::Human
        })
    }
}

/// Why an approval is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} is an agent or bot identity; agents can never approve")]
    Agent(String),
    #[error("{0} wrote commits in this change; no one approves their own change")]
    OwnChange(String),
    #[error("the change's head is {latest}; approvals bind to the exact head (got {given})")]
    StaleHead { latest: String, given: String },
    #[error("the change is {0}: there is nothing to approve")]
    NothingToApprove(&'static str),
    #[error("{person} is not among the owners this change needs ({owners})")]
    NotAnOwner { person: String, owners: String },
}

/// Decides whether `person` may approve the change `decision` describes at `head`.
pub fn may_approve(
    person: &Person,
    registry: &Registry,
    decision: &Decision,
    head: &str,
) -> Result<(), Refusal> {
    if person.is_agent(registry) {
        return Err(Refusal::Agent(person.id.clone()));
    }
    if decision.head != head {
        return Err(Refusal::StaleHead {
            latest: decision.head.clone(),
            given: head.to_string(),
        });
    }
    if decision.verdict != Verdict::NeedsApproval {
        return Err(Refusal::NothingToApprove(decision.verdict.as_str()));
    }
    if wrote_commits(person, decision) {
        return Err(Refusal::OwnChange(person.id.clone()));
    }
    let eligible = decision
        .required_approvals
        .iter()
        .any(|r| r.owners.is_empty() || r.owners.iter().any(|o| person.is_owner(o)));
    if !eligible {
        let owners: Vec<&str> = decision
            .required_approvals
            .iter()
            .flat_map(|r| r.owners.iter().map(String::as_str))
            .collect();
        return Err(Refusal::NotAnOwner {
            person: person.id.clone(),
            owners: owners.join(", "),
        });
    }
    Ok(())
}

/// Whether the person's emails appear among the change's human authors.
fn wrote_commits(person: &Person, decision: &Decision) -> bool {
    decision.author.humans.iter().any(|h| {
        let email = h
            .rsplit_once('<')
            .map(|(_, e)| e.trim_end_matches('>').trim())
            .unwrap_or(h.as_str());
        person.emails.iter().any(|e| e.eq_ignore_ascii_case(email))
    })
}

/// One required approval and who satisfied it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequirementStatus {
    pub rule: String,
    pub owners: Vec<String>,
    pub needed: u32,
    /// Person ids whose approval counts for this requirement.
    pub approved_by: Vec<String>,
    pub satisfied: bool,
}

/// Whether the approvals for the decision's head satisfy it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalStatus {
    pub requirements: Vec<RequirementStatus>,
    /// People who asked for changes at this head (any of them holds the change).
    pub changes_requested_by: Vec<String>,
    /// Every requirement met and no outstanding change request.
    pub satisfied: bool,
}

/// Evaluates approvals (`(person, approved)` — false for "changes requested") given
/// for the decision's head. Approvals from people who may not approve are ignored.
pub fn status(
    decision: &Decision,
    approvals: &[(Person, bool)],
    registry: &Registry,
) -> ApprovalStatus {
    let valid: Vec<&Person> = approvals
        .iter()
        .filter(|(_, approved)| *approved)
        .map(|(p, _)| p)
        .filter(|p| !p.is_agent(registry) && !wrote_commits(p, decision))
        .collect();
    let requirements: Vec<RequirementStatus> = decision
        .required_approvals
        .iter()
        .map(|r: &RequiredApproval| {
            let mut approved_by: Vec<String> = valid
                .iter()
                .filter(|p| r.owners.is_empty() || r.owners.iter().any(|o| p.is_owner(o)))
                .map(|p| p.id.clone())
                .collect();
            approved_by.sort();
            approved_by.dedup();
            RequirementStatus {
                rule: r.rule.clone(),
                owners: r.owners.clone(),
                needed: r.count,
                satisfied: approved_by.len() as u32 >= r.count,
                approved_by,
            }
        })
        .collect();
    let mut changes_requested_by: Vec<String> = approvals
        .iter()
        .filter(|(p, approved)| !*approved && !p.is_agent(registry))
        .map(|(p, _)| p.id.clone())
        .collect();
    changes_requested_by.sort();
    changes_requested_by.dedup();
    ApprovalStatus {
        satisfied: decision.verdict == Verdict::NeedsApproval
            && requirements.iter().all(|r| r.satisfied)
            && changes_requested_by.is_empty(),
        requirements,
        changes_requested_by,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assess::Assessor;
    use crate::change::{ChangeSet, FileChange, FileStatus};
    use crate::config::Config;
    use crate::decision::{PolicyOutcome, decide};

    const HEAD: &str = "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh";

    /// A change by `author` (and Claude Code) needing one approval from @org/backend
    /// and one from anyone.
    fn decision(author: CommitPerson) -> Decision {
        let claude = CommitPerson::new("Claude", "noreply@anthropic.com");
        let mut change = ChangeSet {
            head: HEAD.into(),
            commits: vec![
                Commit {
                    sha: "a".repeat(40),
                    author: claude.clone(),
                    committer: claude,
                    ..Commit::default()
                },
                Commit {
                    sha: "b".repeat(40),
                    author: author.clone(),
                    committer: author,
                    ..Commit::default()
                },
            ],
            files: vec![FileChange::new("src/a.rs", FileStatus::Modified)],
            ..ChangeSet::default()
        };
        let assessor = Assessor::new(&Config::default()).unwrap();
        let findings = assessor.scan_secrets(&mut change);
        let input = assessor.assess(&change, &findings, None);
        let outcome = PolicyOutcome {
            require_approval: vec![
                RequiredApproval {
                    rule: "route.approve".into(),
                    owners: vec!["@org/backend".into()],
                    count: 1,
                    reason: "owners".into(),
                    escalate_after: None,
                },
                RequiredApproval {
                    rule: "evidence.tests_failed".into(),
                    owners: vec![],
                    count: 1,
                    reason: "tests".into(),
                    escalate_after: None,
                },
            ],
            ..PolicyOutcome::default()
        };
        decide(&input, "sha256:x", &outcome, &[])
    }

    fn person(id: &str, email: &str, teams: &[&str]) -> Person {
        Person {
            id: id.into(),
            name: id.into(),
            emails: vec![email.into()],
            github: Some(id.into()),
            slack: None,
            teams: teams.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn owners_approve_authors_and_agents_cannot() {
        let registry = Registry::new(&Config::default().agents).unwrap();
        let d = decision(CommitPerson::new("Grace", "grace@example.com"));
        assert_eq!(d.verdict, Verdict::NeedsApproval);
        let ada = person("ada", "ada@example.com", &["@org/backend"]);
        let bob = person("bob", "bob@example.com", &[]);
        let grace = person("grace", "grace@example.com", &["@org/backend"]);
        let bot = Person {
            github: Some("copilot-swe-agent[bot]".into()),
            ..person("copilot", "x@example.com", &["@org/backend"])
        };
        let claude = person("claude", "noreply@anthropic.com", &["@org/backend"]);

        assert_eq!(may_approve(&ada, &registry, &d, HEAD), Ok(()));
        // Anyone may fill the owner-less requirement.
        assert_eq!(may_approve(&bob, &registry, &d, HEAD), Ok(()));
        assert!(matches!(
            may_approve(&grace, &registry, &d, HEAD),
            Err(Refusal::OwnChange(_))
        ));
        assert!(matches!(
            may_approve(&bot, &registry, &d, HEAD),
            Err(Refusal::Agent(_))
        ));
        assert!(matches!(
            may_approve(&claude, &registry, &d, HEAD),
            Err(Refusal::Agent(_))
        ));
        assert!(matches!(
            may_approve(&ada, &registry, &d, &"0".repeat(40)),
            Err(Refusal::StaleHead { .. })
        ));

        // Ada alone satisfies the owner requirement but not both (count 1 each; she counts for both).
        let s = status(&d, &[(ada.clone(), true)], &registry);
        assert!(s.satisfied, "{s:?}");
        // Bob alone cannot satisfy the owners.
        let s = status(&d, &[(bob.clone(), true)], &registry);
        assert!(!s.satisfied);
        assert!(s.requirements[1].satisfied && !s.requirements[0].satisfied);
        // The author's and the agent's approvals are ignored; a change request holds it.
        let s = status(
            &d,
            &[(grace.clone(), true), (claude.clone(), true)],
            &registry,
        );
        assert!(!s.satisfied);
        let s = status(&d, &[(ada.clone(), true), (bob.clone(), false)], &registry);
        assert!(!s.satisfied);
        assert_eq!(s.changes_requested_by, ["bob"]);
    }

    #[test]
    fn owners_match_users_teams_and_emails_case_insensitively() {
        let p = person("ada", "Ada@Example.com", &["@Org/Backend"]);
        assert!(p.is_owner("@ADA"));
        assert!(p.is_owner("@org/backend"));
        assert!(p.is_owner("ada@example.com"));
        assert!(!p.is_owner("@org/frontend"));
        assert!(!p.is_owner("@grace"));
    }
}
