//! From facts to assessment: authorship, secrets, categories, impact and owners,
//! assembled into the [`PolicyInput`] document.
//!
//! Pure: the caller supplies the change, the configuration and the CODEOWNERS text.

use crate::agents::{IdentityError, Registry};
use crate::category::{Category, Impact, ImpactTable};
use crate::change::{ChangeSet, FileChange};
use crate::classify::{Classifier, ClassifyError};
use crate::codeowners::CodeOwners;
use crate::config::Config;
use crate::input::{
    ChangeSummary, CommitFacts, FileFacts, FindingFacts, INPUT_SCHEMA_VERSION, OwnerGroup,
    OwnersFacts, PolicyConfig, PolicyInput,
};
use crate::parallel;
use crate::secrets::{Finding, SecretConfigError, SecretScanner};
use std::collections::BTreeSet;
use std::collections::HashMap;

/// The configuration could not be compiled into detectors.
#[derive(Debug, thiserror::Error)]
pub enum AssessError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Classify(#[from] ClassifyError),
    #[error(transparent)]
    Secrets(#[from] SecretConfigError),
    #[error("{0}")]
    Trust(String),
}

/// A CODEOWNERS file and where it was found.
pub struct OwnersFile {
    pub path: String,
    pub owners: CodeOwners,
}

/// Compiled detectors for one configuration.
pub struct Assessor {
    registry: Registry,
    classifier: Classifier,
    scanner: SecretScanner,
    impact: ImpactTable,
    config: Config,
}

impl Assessor {
    /// Compiles every rule in `config`; fails on the first invalid one.
    pub fn new(config: &Config) -> Result<Assessor, AssessError> {
        config.trust.validate().map_err(AssessError::Trust)?;
        Ok(Assessor {
            registry: Registry::new(&config.agents)?,
            classifier: Classifier::new(&config.classify)?,
            scanner: SecretScanner::new(&config.secrets)?,
            impact: ImpactTable::new(&config.impact),
            config: config.clone(),
        })
    }

    /// Scans added lines for secrets and redacts every hit in `change` in place, so no
    /// later stage (or log line) can see a secret value.
    pub fn scan_secrets(&self, change: &mut ChangeSet) -> Vec<Finding> {
        parallel::map_chunks_mut(&mut change.files, |files| {
            let mut findings = Vec::new();
            for file in files {
                if file.binary || self.scanner.path_allowed(&file.path) {
                    continue;
                }
                for line in &mut file.added {
                    let hits = self.scanner.scan_line(&file.path, line.number, &line.text);
                    if !hits.is_empty() {
                        line.text = self.scanner.redact_line(&line.text);
                        findings.extend(hits);
                    }
                }
            }
            findings
        })
        .into_iter()
        .flatten()
        .collect()
    }

    /// Builds the policy input. `findings` come from [`Assessor::scan_secrets`].
    pub fn assess(
        &self,
        change: &ChangeSet,
        findings: &[Finding],
        codeowners: Option<&OwnersFile>,
    ) -> PolicyInput {
        let author = self.registry.classify(&change.commits);
        let mut by_path: HashMap<&str, Vec<Finding>> = HashMap::new();
        for f in findings {
            by_path.entry(f.path.as_str()).or_default().push(f.clone());
        }
        let files: Vec<FileFacts> = parallel::map_chunks(&change.files, |chunk| {
            chunk
                .iter()
                .map(|file| self.file_facts(file, by_path.get(file.path.as_str()), codeowners))
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();

        let categories: BTreeSet<Category> = files
            .iter()
            .flat_map(|f| f.categories.iter().copied())
            .collect();
        let impact = files.iter().map(|f| f.impact).max().unwrap_or(Impact::Low);

        let mut finding_facts: Vec<FindingFacts> = findings
            .iter()
            .map(|f| FindingFacts {
                kind: "secret".into(),
                rule: f.rule.clone(),
                message: format!("{} in added line", f.description),
                path: f.path.clone(),
                line: f.line,
                start_column: Some(f.start_column),
                end_column: Some(f.end_column),
            })
            .collect();
        finding_facts.extend(change.files.iter().filter(|f| f.path_not_utf8).map(|f| {
            FindingFacts {
                kind: "input".into(),
                rule: "input.non_utf8_path".into(),
                message: "path is not valid UTF-8; path rules cannot be applied reliably".into(),
                path: f.path.clone(),
                line: 0,
                start_column: None,
                end_column: None,
            }
        }));

        let mut input = PolicyInput {
            schema_version: INPUT_SCHEMA_VERSION.into(),
            change: ChangeSummary {
                base_ref: change.base_ref.clone(),
                head_ref: change.head_ref.clone(),
                base: change.base.clone(),
                head: change.head.clone(),
                merge_base: change.merge_base.clone(),
                commit_count: change.commits.len() as u32,
                file_count: change.files.len() as u32,
                lines_added: change.lines_added(),
                lines_removed: change.lines_removed(),
                truncated: change.truncated,
                notes: change.notes.clone(),
            },
            author,
            commits: change
                .commits
                .iter()
                .map(|c| CommitFacts {
                    sha: c.sha.clone(),
                    author: c.author.clone(),
                    committer: c.committer.clone(),
                    summary: c.summary.clone(),
                    trailers: c.trailers.clone(),
                    parents: c.parents,
                    time: c.time,
                })
                .collect(),
            owners: owner_facts(&files, codeowners),
            provenance: Default::default(),
            evidence: Default::default(),
            trust: crate::trust::TrustScore {
                score: 0,
                band: crate::trust::ScoreBand::Senior,
                matrix_trust: crate::category::TrustBand::Low,
                factors: Vec::new(),
            },
            files,
            categories: categories.into_iter().collect(),
            impact,
            findings: finding_facts,
            config: PolicyConfig {
                gate_humans: self.config.policy.gate_humans,
                matrix: self.config.routing.full_matrix(),
                never_automate: self.config.routing.never_automate.clone(),
                never_automate_flags: self.config.routing.never_automate_flags.clone(),
                review: self.config.review.clone(),
                impact: self.impact.as_map().clone(),
                trust: crate::input::TrustBands {
                    fast: self.config.trust.fast,
                    normal: self.config.trust.normal,
                },
            },
        };
        input.trust = self.trust_score(&input, None);
        input
    }

    /// Adds evidence facts to the input: a Terraform plan that changes access-granting
    /// resources makes the change `auth` (with its impact), as a file would.
    pub fn apply_evidence(
        &self,
        input: &mut PolicyInput,
        evidence: crate::evidence::EvidenceFacts,
    ) {
        if evidence
            .terraform
            .as_ref()
            .is_some_and(|t| t.access_count > 0)
        {
            if !input.categories.contains(&Category::Auth) {
                input.categories.push(Category::Auth);
                input.categories.sort();
            }
            input.impact = input.impact.max(self.impact.of(Category::Auth));
        }
        input.evidence = evidence;
    }

    /// The trust score of the change as the input now describes it (call again after
    /// provenance and evidence are added). `track_record` comes from the ledger.
    pub fn trust_score(
        &self,
        input: &PolicyInput,
        track_record: Option<crate::trust::TrackRecord>,
    ) -> crate::trust::TrustScore {
        let directories: BTreeSet<&str> = input
            .files
            .iter()
            .map(|f| f.path.rsplit_once('/').map_or("", |(d, _)| d))
            .collect();
        let human = input.author.kind == crate::agents::AuthorKind::Human;
        crate::trust::score(
            &crate::trust::ScoreInputs {
                human,
                configured: if human { None } else { input.author.trust },
                provenance: &input.provenance,
                evidence: &input.evidence,
                lines_changed: input.change.lines_added + input.change.lines_removed,
                files_changed: u64::from(input.change.file_count),
                directories_changed: directories.len() as u64,
                track_record,
            },
            &self.config.trust,
        )
    }

    /// One file's facts: categories, impact and owners.
    fn file_facts(
        &self,
        file: &FileChange,
        findings: Option<&Vec<Finding>>,
        codeowners: Option<&OwnersFile>,
    ) -> FileFacts {
        let class = self
            .classifier
            .classify(file, findings.map_or(&[][..], |f| f.as_slice()));
        let (owners, owners_line) = match codeowners.and_then(|c| c.owners.rule_for(&file.path)) {
            Some(rule) => (rule.owners.clone(), Some(rule.line)),
            None => (Vec::new(), None),
        };
        FileFacts {
            path: file.path.clone(),
            old_path: file.old_path.clone(),
            status: file.status,
            similarity: file.similarity,
            old_kind: file.old_kind,
            new_kind: file.new_kind,
            binary: file.binary,
            summarized: file.summarized,
            size: file.size,
            lines_added: file.lines_added,
            lines_removed: file.lines_removed,
            content_truncated: file.content_truncated,
            path_not_utf8: file.path_not_utf8,
            impact: self.impact.max_of(&class.categories),
            categories: class.categories,
            flags: class.flags,
            owners,
            owners_line,
            reasons: class.reasons,
        }
    }
}

/// Groups files by owner set (first-seen order) and lists the unowned ones.
fn owner_facts(files: &[FileFacts], codeowners: Option<&OwnersFile>) -> OwnersFacts {
    let mut groups: Vec<OwnerGroup> = Vec::new();
    for file in files {
        let group = match groups.iter_mut().position(|g| g.owners == file.owners) {
            Some(i) => &mut groups[i],
            None => {
                groups.push(OwnerGroup {
                    owners: file.owners.clone(),
                    files: Vec::new(),
                    impact: file.impact,
                    categories: Vec::new(),
                    flags: Vec::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        group.files.push(file.path.clone());
        group.impact = group.impact.max(file.impact);
        group.categories.extend(file.categories.iter().copied());
        group.categories.sort();
        group.categories.dedup();
        group.flags.extend(file.flags.iter().cloned());
        group.flags.sort();
        group.flags.dedup();
    }
    OwnersFacts {
        file: codeowners.map(|c| c.path.clone()),
        errors: codeowners
            .map(|c| c.owners.errors().to_vec())
            .unwrap_or_default(),
        unowned: files
            .iter()
            .filter(|f| f.owners.is_empty())
            .map(|f| f.path.clone())
            .collect(),
        groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{Commit, FileChange, FileStatus, Person};

    fn change() -> ChangeSet {
        ChangeSet {
            base_ref: "main".into(),
            head_ref: "HEAD".into(),
            base: "b".repeat(40),
            head: "h".repeat(40),
            merge_base: "b".repeat(40),
            commits: vec![Commit {
                sha: "c".repeat(40),
                author: Person::new("Codex", "codex@openai.com"),
                committer: Person::new("Codex", "codex@openai.com"),
                summary: "work".into(),
                ..Commit::default()
            }],
            files: vec![
                FileChange::new("README.md", FileStatus::Modified).with_added_text("hello"),
                FileChange::new("src/config.rs", FileStatus::Modified)
                    .with_added_text("let k = \"AKIALALEMEL33243OLIA\";"), // lockgate:allow (synthetic key)
            ],
            ..ChangeSet::default()
        }
    }

    #[test]
    fn assembles_facts_and_redacts_secrets_in_memory() {
        let a = Assessor::new(&Config::default()).unwrap();
        let mut c = change();
        let findings = a.scan_secrets(&mut c);
        assert_eq!(findings.len(), 1);
        assert!(!c.files[1].added[0].text.contains("AKIALALEMEL33243OLIA")); // lockgate:allow (synthetic key)

        let owners = OwnersFile {
            path: ".github/CODEOWNERS".into(),
            owners: CodeOwners::parse("*.md @org/docs\n/src/ @org/core\n"),
        };
        let input = a.assess(&c, &findings, Some(&owners));
        assert_eq!(input.author.agent.as_deref(), Some("codex"));
        assert_eq!(input.impact, Impact::Critical);
        assert_eq!(input.files[0].owners, ["@org/docs"]);
        assert_eq!(input.owners.groups.len(), 2);
        assert_eq!(input.findings[0].rule, "aws-access-key-id");
        let json = serde_json::to_string(&input).unwrap();
        assert!(!json.contains("AKIALALEMEL33243OLIA")); // lockgate:allow (synthetic key)
        let canonical = input.canonical();
        assert!(canonical.digest.starts_with("sha256:"));
        assert_eq!(canonical, input.clone().canonical());
        assert!(!canonical.json.contains('\n'), "compact");
    }
}
