//! Who wrote a change: coding agents, bots and people, from git identities.
//!
//! Identities are data ([`IdentityRule`]); the defaults live in `defaults/agents.toml`
//! and teams extend them in `.lockgate.toml`. Evidence is ranked: an author, committer
//! or co-author identity and a trailer are strong; a free-text marker in the message
//! (e.g. "Generated with Claude Code") is weak, reported as such, and counts only when
//! [`AgentSettings::markers_are_evidence`] is on (the default, because gating is the
//! safe side).

use crate::category::TrustBand;
use crate::change::{Commit, Person};
use regex::{Regex, RegexBuilder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The built-in identities, as TOML.
pub const DEFAULT_IDENTITIES_TOML: &str = include_str!("../defaults/agents.toml");

/// What kind of non-human author an identity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// A coding agent (Claude Code, Codex, Copilot agent, Devin, …).
    Agent,
    /// A dependency bot (Dependabot, Renovate).
    Bot,
    /// Release or CI automation (github-actions, semantic-release).
    Automation,
}

/// How one agent or bot appears in git history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityRule {
    /// Stable id used in output and policy (`claude-code`).
    pub id: String,
    /// Name for people (`Claude Code`).
    #[serde(default)]
    pub display: String,
    pub kind: IdentityKind,
    #[serde(default = "default_trust")]
    pub trust: TrustBand,
    /// Regexes over author/committer/co-author emails.
    #[serde(default)]
    pub emails: Vec<String>,
    /// Regexes over author/committer/co-author names.
    #[serde(default)]
    pub names: Vec<String>,
    /// Trailers that identify the agent (`value` is a regex; empty matches any value).
    #[serde(default)]
    pub trailers: Vec<TrailerRule>,
    /// Regexes over the commit message (weak evidence).
    #[serde(default)]
    pub markers: Vec<String>,
}

fn default_trust() -> TrustBand {
    TrustBand::Low
}

/// A trailer key (case-insensitive) and value regex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrailerRule {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// The `[agents]` section of `.lockgate.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// Keep the built-in identities (true by default).
    pub defaults: bool,
    /// Extra identities, checked before the defaults.
    pub identity: Vec<IdentityRule>,
    /// Trust band overrides by identity id.
    pub trust: BTreeMap<String, TrustBand>,
    /// Count message markers as agent evidence (true by default).
    pub markers_are_evidence: bool,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            defaults: true,
            identity: Vec::new(),
            trust: BTreeMap::new(),
            markers_are_evidence: true,
        }
    }
}

#[derive(Deserialize)]
struct IdentityFile {
    identity: Vec<IdentityRule>,
}

/// An identity rule or the built-in list is invalid.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("agent identity {id:?}: invalid regex {pattern:?}: {source}")]
    Regex {
        id: String,
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },
    #[error("built-in agent identities: {0}")]
    Defaults(String),
}

/// Parses the built-in identity list.
pub fn default_identities() -> Result<Vec<IdentityRule>, IdentityError> {
    toml::from_str::<IdentityFile>(DEFAULT_IDENTITIES_TOML)
        .map(|f| f.identity)
        .map_err(|e| IdentityError::Defaults(e.to_string()))
}

struct CompiledIdentity {
    rule: IdentityRule,
    emails: Vec<Regex>,
    names: Vec<Regex>,
    trailers: Vec<(String, Regex)>,
    markers: Vec<Regex>,
}

/// Compiled identities, ready to classify commits.
pub struct Registry {
    identities: Vec<CompiledIdentity>,
    markers_are_evidence: bool,
}

/// Where a piece of authorship evidence was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceSource {
    Author,
    Committer,
    CoAuthor,
    Trailer,
    /// A free-text marker in the message: weaker than an identity.
    Marker,
}

impl EvidenceSource {
    /// True for identities and trailers; false for message markers.
    pub fn is_strong(self) -> bool {
        self != EvidenceSource::Marker
    }
}

/// One reason to think an agent or bot took part in a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// Short commit id.
    pub commit: String,
    /// Identity id that matched.
    pub identity: String,
    pub source: EvidenceSource,
    /// What matched, e.g. `author email noreply@anthropic.com`.
    pub detail: String,
}

/// Who wrote one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthorKind {
    Human,
    Agent,
    /// Dependency bots and release/CI automation.
    Bot,
    /// Human and non-human commits in the same range.
    Mixed,
}

impl AuthorKind {
    /// The lower-case name used everywhere.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorKind::Human => "human",
            AuthorKind::Agent => "agent",
            AuthorKind::Bot => "bot",
            AuthorKind::Mixed => "mixed",
        }
    }
}

/// Authorship of one commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommitAuthorship {
    pub commit: String,
    /// `human`, `agent` or `bot` (never `mixed`).
    pub kind: AuthorKind,
    /// Identity ids that took part.
    pub identities: Vec<String>,
}

/// An agent or bot that took part in the range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentSummary {
    pub id: String,
    pub display: String,
    pub kind: IdentityKind,
    pub trust: TrustBand,
    /// Commits it took part in.
    pub commits: u32,
    /// True when only message markers point at it.
    pub weak: bool,
}

/// Who wrote the whole range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Authorship {
    pub kind: AuthorKind,
    /// The agent that took part in the most commits, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub agents: Vec<AgentSummary>,
    /// The lowest trust band among the non-human authors; `None` for human-only ranges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust: Option<TrustBand>,
    pub commits: Vec<CommitAuthorship>,
    pub evidence: Vec<Evidence>,
    /// Human authors (name <email>) of commits without agent evidence.
    pub humans: Vec<String>,
}

impl Registry {
    /// Compiles team identities (first) and, if enabled, the defaults.
    pub fn new(settings: &AgentSettings) -> Result<Registry, IdentityError> {
        let mut rules = settings.identity.clone();
        if settings.defaults {
            rules.extend(default_identities()?);
        }
        for rule in &mut rules {
            if let Some(t) = settings.trust.get(&rule.id) {
                rule.trust = *t;
            }
        }
        let identities = rules
            .into_iter()
            .map(compile_identity)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Registry {
            identities,
            markers_are_evidence: settings.markers_are_evidence,
        })
    }

    /// Classifies every commit and summarizes the range.
    pub fn classify(&self, commits: &[Commit]) -> Authorship {
        let mut evidence = Vec::new();
        let mut per_commit = Vec::new();
        let mut counts: BTreeMap<usize, (u32, bool)> = BTreeMap::new();
        let mut humans: Vec<String> = Vec::new();

        for commit in commits {
            let short = short_sha(&commit.sha);
            let hits = self.commit_evidence(commit, &short);
            let counted: Vec<&(usize, Evidence)> = hits
                .iter()
                .filter(|(_, e)| e.source.is_strong() || self.markers_are_evidence)
                .collect();
            let mut ids: Vec<usize> = counted.iter().map(|(i, _)| *i).collect();
            ids.sort_unstable();
            ids.dedup();
            let kind = if ids.is_empty() {
                let who = commit.author.to_string();
                if !humans.contains(&who) {
                    humans.push(who);
                }
                AuthorKind::Human
            } else if ids
                .iter()
                .any(|&i| self.identities[i].rule.kind == IdentityKind::Agent)
            {
                AuthorKind::Agent
            } else {
                AuthorKind::Bot
            };
            for &i in &ids {
                let strong = counted.iter().any(|(j, e)| *j == i && e.source.is_strong());
                let entry = counts.entry(i).or_insert((0, true));
                entry.0 += 1;
                entry.1 &= !strong;
            }
            per_commit.push(CommitAuthorship {
                commit: short,
                kind,
                identities: ids
                    .iter()
                    .map(|&i| self.identities[i].rule.id.clone())
                    .collect(),
            });
            evidence.extend(hits.into_iter().map(|(_, e)| e));
        }

        let agents: Vec<AgentSummary> = counts
            .iter()
            .map(|(&i, &(n, weak))| {
                let rule = &self.identities[i].rule;
                AgentSummary {
                    id: rule.id.clone(),
                    display: if rule.display.is_empty() {
                        rule.id.clone()
                    } else {
                        rule.display.clone()
                    },
                    kind: rule.kind,
                    trust: rule.trust,
                    commits: n,
                    weak,
                }
            })
            .collect();
        let has = |k: AuthorKind| per_commit.iter().any(|c| c.kind == k);
        let kind = match (
            has(AuthorKind::Human),
            has(AuthorKind::Agent),
            has(AuthorKind::Bot),
        ) {
            (true, false, false) | (false, false, false) => AuthorKind::Human,
            (true, _, _) => AuthorKind::Mixed,
            (false, true, _) => AuthorKind::Agent,
            (false, false, true) => AuthorKind::Bot,
        };
        let agent = agents
            .iter()
            .filter(|a| a.kind == IdentityKind::Agent)
            .max_by_key(|a| a.commits)
            .or_else(|| agents.iter().max_by_key(|a| a.commits))
            .map(|a| a.id.clone());
        let trust = agents.iter().map(|a| a.trust).min();
        Authorship {
            kind,
            agent,
            agents,
            trust,
            commits: per_commit,
            evidence,
            humans,
        }
    }

    /// All identity matches in one commit, strong and weak.
    fn commit_evidence(&self, commit: &Commit, short: &str) -> Vec<(usize, Evidence)> {
        let co_authors: Vec<Person> = commit
            .trailers
            .iter()
            .filter(|t| t.key.eq_ignore_ascii_case("co-authored-by"))
            .filter_map(|t| Person::parse_ident(&t.value))
            .collect();
        let message = format!("{}\n\n{}", commit.summary, commit.body);
        let mut hits = Vec::new();
        for (i, id) in self.identities.iter().enumerate() {
            let mut push = |source, detail: String| {
                hits.push((
                    i,
                    Evidence {
                        commit: short.to_string(),
                        identity: id.rule.id.clone(),
                        source,
                        detail,
                    },
                ))
            };
            let people = [
                (EvidenceSource::Author, "author", &commit.author),
                (EvidenceSource::Committer, "committer", &commit.committer),
            ]
            .into_iter()
            .chain(
                co_authors
                    .iter()
                    .map(|p| (EvidenceSource::CoAuthor, "co-author", p)),
            );
            for (source, role, person) in people {
                if id.emails.iter().any(|r| r.is_match(&person.email)) {
                    push(source, format!("{role} email {}", person.email));
                } else if id.names.iter().any(|r| r.is_match(&person.name)) {
                    push(source, format!("{role} name {}", person.name));
                }
            }
            for t in &commit.trailers {
                if id
                    .trailers
                    .iter()
                    .any(|(k, v)| t.key.eq_ignore_ascii_case(k) && v.is_match(&t.value))
                {
                    push(
                        EvidenceSource::Trailer,
                        format!("trailer {}: {}", t.key, t.value),
                    );
                }
            }
            if let Some(m) = id.markers.iter().find_map(|r| r.find(&message)) {
                push(
                    EvidenceSource::Marker,
                    format!("message marker {:?}", m.as_str()),
                );
            }
        }
        hits
    }
}

fn compile_identity(rule: IdentityRule) -> Result<CompiledIdentity, IdentityError> {
    let compile = |p: &String| {
        RegexBuilder::new(p)
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| IdentityError::Regex {
                id: rule.id.clone(),
                pattern: p.clone(),
                source: Box::new(e),
            })
    };
    let emails = rule.emails.iter().map(compile).collect::<Result<_, _>>()?;
    let names = rule.names.iter().map(compile).collect::<Result<_, _>>()?;
    let markers = rule.markers.iter().map(compile).collect::<Result<_, _>>()?;
    let trailers = rule
        .trailers
        .iter()
        .map(|t| Ok((t.key.clone(), compile(&t.value)?)))
        .collect::<Result<_, IdentityError>>()?;
    Ok(CompiledIdentity {
        rule,
        emails,
        names,
        trailers,
        markers,
    })
}

/// The first 12 characters of an object id.
pub fn short_sha(sha: &str) -> String {
    sha.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Trailer;

    fn commit(author: (&str, &str), trailers: &[(&str, &str)], body: &str) -> Commit {
        Commit {
            sha: "0123456789abcdef0123".into(),
            author: Person::new(author.0, author.1),
            committer: Person::new(author.0, author.1),
            summary: "change".into(),
            body: body.into(),
            trailers: trailers
                .iter()
                .map(|(k, v)| Trailer {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            parents: 1,
            time: 0,
        }
    }

    fn registry() -> Registry {
        Registry::new(&AgentSettings::default()).unwrap()
    }

    #[test]
    fn recognizes_agents_by_identity_and_trailer() {
        let r = registry();
        let cases = [
            (
                commit(
                    (
                        "copilot-swe-agent[bot]",
                        "198982749+Copilot@users.noreply.github.com",
                    ),
                    &[],
                    "",
                ),
                "copilot-coding-agent",
            ),
            (
                commit(
                    ("Ada", "ada@example.com"),
                    &[("Co-authored-by", "Claude <noreply@anthropic.com>")],
                    "",
                ),
                "claude-code",
            ),
            (
                commit(("Cursor", "cursoragent@cursor.com"), &[], ""),
                "cursor",
            ),
            (commit(("ada (aider)", "ada@example.com"), &[], ""), "aider"),
            (
                commit(("Bob", "bob@example.com"), &[("Agent-Session", "s-42")], ""),
                "agent-session",
            ),
            (commit(("Codex", "codex@openai.com"), &[], ""), "codex"),
        ];
        for (c, expected) in cases {
            let a = r.classify(std::slice::from_ref(&c));
            assert_eq!(a.kind, AuthorKind::Agent, "{expected}");
            assert_eq!(a.agent.as_deref(), Some(expected));
        }
    }

    #[test]
    fn look_alikes_are_people() {
        let r = registry();
        for (name, email) in [
            ("Devin Smith", "devin@example.com"),
            ("Claude Martin", "claude.martin@example.com"),
            ("Ann Robotham", "agent.smith@example.com"),
            ("Employee", "someone@anthropic.com"),
        ] {
            let a = r.classify(&[commit((name, email), &[], "")]);
            assert_eq!(a.kind, AuthorKind::Human, "{name} <{email}>");
            assert!(a.agents.is_empty());
        }
    }

    #[test]
    fn bots_and_mixed_ranges() {
        let r = registry();
        let dep = commit(
            (
                "dependabot[bot]",
                "49699333+dependabot[bot]@users.noreply.github.com",
            ),
            &[],
            "",
        );
        let a = r.classify(std::slice::from_ref(&dep));
        assert_eq!(a.kind, AuthorKind::Bot);
        assert_eq!(a.agents[0].kind, IdentityKind::Bot);

        let human = commit(("Ada", "ada@example.com"), &[], "");
        let agent = commit(("Codex", "codex@openai.com"), &[], "");
        let a = r.classify(&[human, agent]);
        assert_eq!(a.kind, AuthorKind::Mixed);
        assert_eq!(a.humans, ["Ada <ada@example.com>"]);
        assert_eq!(a.agent.as_deref(), Some("codex"));
    }

    #[test]
    fn markers_are_weak_evidence_and_can_be_turned_off() {
        let c = commit(
            ("Ada", "ada@example.com"),
            &[],
            "🤖 Generated with [Claude Code](https://claude.com/claude-code)",
        );
        let a = registry().classify(std::slice::from_ref(&c));
        assert_eq!(a.kind, AuthorKind::Agent);
        assert!(a.agents[0].weak);
        assert_eq!(a.evidence[0].source, EvidenceSource::Marker);

        let settings = AgentSettings {
            markers_are_evidence: false,
            ..AgentSettings::default()
        };
        let a = Registry::new(&settings).unwrap().classify(&[c]);
        assert_eq!(a.kind, AuthorKind::Human);
        assert_eq!(a.evidence.len(), 1, "the marker is still reported");
    }

    #[test]
    fn team_identities_and_trust_overrides() {
        let mut settings = AgentSettings::default();
        settings.identity.push(IdentityRule {
            id: "acme-bot".into(),
            display: "Acme in-house agent".into(),
            kind: IdentityKind::Agent,
            trust: TrustBand::High,
            emails: vec![r"^acme-bot@acme\.dev$".into()],
            names: vec![],
            trailers: vec![],
            markers: vec![],
        });
        settings.trust.insert("codex".into(), TrustBand::Low);
        let r = Registry::new(&settings).unwrap();
        let a = r.classify(&[commit(("Acme", "acme-bot@acme.dev"), &[], "")]);
        assert_eq!(a.agent.as_deref(), Some("acme-bot"));
        assert_eq!(a.trust, Some(TrustBand::High));
        let a = r.classify(&[commit(("Codex", "codex@openai.com"), &[], "")]);
        assert_eq!(a.trust, Some(TrustBand::Low));
    }

    #[test]
    fn invalid_identity_regex_is_an_error() {
        let mut settings = AgentSettings::default();
        settings.identity.push(IdentityRule {
            id: "broken".into(),
            display: String::new(),
            kind: IdentityKind::Agent,
            trust: TrustBand::Low,
            emails: vec!["(".into()],
            names: vec![],
            trailers: vec![],
            markers: vec![],
        });
        assert!(matches!(
            Registry::new(&settings),
            Err(IdentityError::Regex { .. })
        ));
    }
}
