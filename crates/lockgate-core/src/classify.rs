//! Classification: each changed file gets categories from path rules and content
//! detectors, and the reasons for each.
//!
//! The rules are data: `defaults/classify.toml` holds the built-in ones (documented
//! there), and teams add their own in `.lockgate.toml`. The classifier never does IO.

use crate::category::Category;
use crate::change::FileChange;
use crate::pattern::{PatternError, PatternSet};
use crate::secrets::Finding;
use regex::{Regex, RegexBuilder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The built-in rules, as TOML.
pub const DEFAULT_RULES_TOML: &str = include_str!("../defaults/classify.toml");

/// Gives categories and flags to files whose path matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathRule {
    pub id: String,
    pub categories: Vec<Category>,
    /// Extra markers; the built-in vocabulary has `production`.
    #[serde(default)]
    pub flags: Vec<String>,
    /// CODEOWNERS-style patterns.
    pub paths: Vec<String>,
    /// Replace the categories earlier rules gave instead of adding to them.
    #[serde(default)]
    pub exclusive: bool,
    /// Apply after all other rules, only to files with none of these categories.
    #[serde(default)]
    pub unless: Vec<Category>,
}

/// Which lines a content rule reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineSide {
    #[default]
    Added,
    Removed,
    Both,
}

/// Gives categories to files whose added (or removed) lines match a regex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentRule {
    pub id: String,
    pub categories: Vec<Category>,
    pub regex: String,
    /// Only files matching one of these patterns (all files when empty).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Skip files that already have one of these categories from path rules.
    #[serde(default)]
    pub skip_categories: Vec<Category>,
    #[serde(default)]
    pub lines: LineSide,
}

/// The `[classify]` section of `.lockgate.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifySettings {
    /// Keep the built-in rules (true by default).
    pub defaults: bool,
    /// Built-in rule ids to turn off.
    pub disable: Vec<String>,
    /// Extra path rules, applied after the built-in ones.
    pub path: Vec<PathRule>,
    /// Extra content rules.
    pub content: Vec<ContentRule>,
}

impl Default for ClassifySettings {
    fn default() -> Self {
        ClassifySettings {
            defaults: true,
            disable: Vec::new(),
            path: Vec::new(),
            content: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    path: Vec<PathRule>,
    content: Vec<ContentRule>,
}

/// A rule could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error("classification rule {id:?}: {source}")]
    Pattern {
        id: String,
        #[source]
        source: PatternError,
    },
    #[error("content rule {id:?}: invalid regex: {source}")]
    Regex {
        id: String,
        #[source]
        source: Box<regex::Error>,
    },
    #[error("built-in classification rules: {0}")]
    Defaults(String),
}

/// Why a file has a category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CategoryReason {
    pub category: Category,
    /// Rule id (`docs`, `sql-ddl`, `secret:<rule>`, `fallback`).
    pub rule: String,
    /// What matched: a path pattern, or `line N`.
    pub detail: String,
}

/// The classification of one file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileClass {
    pub categories: Vec<Category>,
    pub flags: Vec<String>,
    pub reasons: Vec<CategoryReason>,
}

struct CompiledContentRule {
    rule: ContentRule,
    regex: Regex,
    paths: Option<PatternSet>,
}

/// Compiled classification rules.
///
/// All path patterns of all rules are compiled into one [`PatternSet`], so a path is
/// matched against every rule in a single pass; `pattern_rule` maps each pattern back
/// to its rule. Rules without `unless` come first (in order), then the deferred ones.
pub struct Classifier {
    path_rules: Vec<PathRule>,
    /// Index of the first deferred (`unless`) rule in `path_rules`.
    first_deferred: usize,
    patterns: PatternSet,
    pattern_rule: Vec<usize>,
    content: Vec<CompiledContentRule>,
}

/// Parses the built-in rules.
pub fn default_rules() -> Result<(Vec<PathRule>, Vec<ContentRule>), ClassifyError> {
    let file: RuleFile =
        toml::from_str(DEFAULT_RULES_TOML).map_err(|e| ClassifyError::Defaults(e.to_string()))?;
    Ok((file.path, file.content))
}

impl Classifier {
    /// Compiles built-in (unless disabled) and team rules.
    pub fn new(settings: &ClassifySettings) -> Result<Classifier, ClassifyError> {
        let (mut path_rules, mut content_rules) = if settings.defaults {
            default_rules()?
        } else {
            (Vec::new(), Vec::new())
        };
        path_rules.retain(|r| !settings.disable.contains(&r.id));
        content_rules.retain(|r| !settings.disable.contains(&r.id));
        path_rules.extend(settings.path.iter().cloned());
        content_rules.extend(settings.content.iter().cloned());

        // Stable partition: ordinary rules keep their order, deferred ones go last.
        path_rules.sort_by_key(|r| !r.unless.is_empty());
        let first_deferred = path_rules
            .iter()
            .position(|r| !r.unless.is_empty())
            .unwrap_or(path_rules.len());
        let mut pattern_rule = Vec::new();
        let mut all_patterns = Vec::new();
        for (index, rule) in path_rules.iter().enumerate() {
            for p in &rule.paths {
                // Checked one by one, so an error names the rule it is in.
                crate::pattern::validate(p).map_err(|source| ClassifyError::Pattern {
                    id: rule.id.clone(),
                    source,
                })?;
                all_patterns.push(p.as_str());
                pattern_rule.push(index);
            }
        }
        let patterns = PatternSet::new(&all_patterns).map_err(|source| ClassifyError::Pattern {
            id: "(all path rules)".into(),
            source,
        })?;
        let content = content_rules
            .into_iter()
            .map(|rule| {
                let regex = RegexBuilder::new(&rule.regex)
                    .multi_line(true)
                    .size_limit(4 << 20)
                    .build()
                    .map_err(|e| ClassifyError::Regex {
                        id: rule.id.clone(),
                        source: Box::new(e),
                    })?;
                let paths = if rule.paths.is_empty() {
                    None
                } else {
                    Some(
                        PatternSet::new(&rule.paths).map_err(|source| ClassifyError::Pattern {
                            id: rule.id.clone(),
                            source,
                        })?,
                    )
                };
                Ok(CompiledContentRule { rule, regex, paths })
            })
            .collect::<Result<Vec<_>, ClassifyError>>()?;
        Ok(Classifier {
            path_rules,
            first_deferred,
            patterns,
            pattern_rule,
            content,
        })
    }

    /// Classifies one file. `secrets` are the findings in this file's added lines.
    pub fn classify(&self, file: &FileChange, secrets: &[Finding]) -> FileClass {
        let mut categories = BTreeSet::new();
        let mut flags = BTreeSet::new();
        let mut reasons = Vec::new();
        let paths: Vec<&str> = std::iter::once(file.path.as_str())
            .chain(file.old_path.as_deref())
            .collect();

        // For each rule, the first (path, pattern) that matched it.
        let mut hits: Vec<Option<(&str, usize)>> = vec![None; self.path_rules.len()];
        for path in &paths {
            for pattern in self.patterns.matches(path) {
                let rule = self.pattern_rule[pattern];
                if hits[rule].is_none() {
                    hits[rule] = Some((path, pattern));
                }
            }
        }
        let mut apply = |index: usize,
                         categories: &mut BTreeSet<Category>,
                         reasons: &mut Vec<CategoryReason>| {
            let Some((path, pattern)) = hits[index] else {
                return;
            };
            let rule = &self.path_rules[index];
            if rule.exclusive {
                categories.clear();
                reasons.clear();
            }
            flags.extend(rule.flags.iter().cloned());
            for &category in &rule.categories {
                categories.insert(category);
                reasons.push(CategoryReason {
                    category,
                    rule: rule.id.clone(),
                    detail: format!("path {path} matches {:?}", self.patterns.source(pattern)),
                });
            }
        };
        for index in 0..self.first_deferred {
            apply(index, &mut categories, &mut reasons);
        }
        let from_paths = categories.clone();
        for index in self.first_deferred..self.path_rules.len() {
            if !self.path_rules[index]
                .unless
                .iter()
                .any(|c| from_paths.contains(c))
            {
                apply(index, &mut categories, &mut reasons);
            }
        }

        for rule in &self.content {
            if rule
                .rule
                .skip_categories
                .iter()
                .any(|c| from_paths.contains(c))
            {
                continue;
            }
            if let Some(set) = &rule.paths
                && !paths.iter().any(|p| set.is_match(p))
            {
                continue;
            }
            let read_added = rule.rule.lines != LineSide::Removed;
            let read_removed = rule.rule.lines != LineSide::Added;
            let hit = read_added
                .then(|| file.added.iter().find(|l| rule.regex.is_match(&l.text)))
                .flatten()
                .map(|l| ("added", l.number))
                .or_else(|| {
                    read_removed
                        .then(|| file.removed.iter().find(|l| rule.regex.is_match(&l.text)))
                        .flatten()
                        .map(|l| ("removed", l.number))
                });
            if let Some((side, number)) = hit {
                for &category in &rule.rule.categories {
                    categories.insert(category);
                    reasons.push(CategoryReason {
                        category,
                        rule: rule.rule.id.clone(),
                        detail: format!("{side} line {number}"),
                    });
                }
            }
        }

        for finding in secrets {
            categories.insert(Category::Secrets);
            reasons.push(CategoryReason {
                category: Category::Secrets,
                rule: format!("secret:{}", finding.rule),
                detail: format!("{} on added line {}", finding.description, finding.line),
            });
        }

        if categories.is_empty() {
            categories.insert(Category::Source);
            reasons.push(CategoryReason {
                category: Category::Source,
                rule: "fallback".into(),
                detail: "no rule matched; unrecognized files count as source".into(),
            });
        }
        FileClass {
            categories: categories.into_iter().collect(),
            flags: flags.into_iter().collect(),
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::FileStatus;

    fn cats(path: &str) -> Vec<&'static str> {
        cats_with(path, "")
    }

    fn cats_with(path: &str, added: &str) -> Vec<&'static str> {
        let c = Classifier::new(&ClassifySettings::default()).unwrap();
        let file = FileChange::new(path, FileStatus::Modified).with_added_text(added);
        c.classify(&file, &[])
            .categories
            .into_iter()
            .map(|c| c.as_str())
            .collect()
    }

    #[test]
    fn common_layouts() {
        let cases: &[(&str, &[&str])] = &[
            ("README.md", &["docs"]),
            ("docs/guide/intro.rst", &["docs"]),
            ("src/lib.rs", &["source"]),
            ("tests/check.rs", &["tests"]),
            ("pkg/server/handler_test.go", &["tests"]),
            ("web/src/App.test.tsx", &["tests"]),
            ("Cargo.lock", &["dependencies"]),
            ("frontend/package-lock.json", &["dependencies"]),
            ("go.sum", &["dependencies"]),
            ("requirements-dev.txt", &["dependencies"]),
            (".github/workflows/test.yml", &["ci"]),
            (".gitlab-ci.yml", &["ci"]),
            ("Jenkinsfile", &["ci"]),
            ("infra/main.tf", &["infra"]),
            ("services/api/Dockerfile", &["infra"]),
            ("charts/app/values.yaml", &["infra"]),
            ("db/migrate/20240101_add_users.rb", &["source", "migration"]),
            ("src/auth/session.rs", &["source", "auth"]),
            ("app/models/user_permissions.py", &["source", "auth"]),
            (".env", &["secrets"]),
            (".env.example", &["docs"]),
            ("deploy/certs/server.pem", &["infra", "secrets"]),
            ("src/billing/invoice.ts", &["source", "billing"]),
            ("CHANGELOG.md", &["docs", "release"]),
            (".github/CODEOWNERS", &["governance"]),
            (".lockgate/policies/team.rego", &["auth", "governance"]),
            ("data/blob.bin", &["source"]),
            ("src/author.py", &["source"]),
            ("src/oracle.py", &["source"]),
        ];
        for (path, expected) in cases {
            assert_eq!(cats(path), *expected, "{path}");
        }
    }

    #[test]
    fn content_detectors() {
        assert_eq!(
            cats_with("db/schema/001.sql", "CREATE TABLE users (id int);"),
            ["source", "migration"]
        );
        assert_eq!(
            cats_with("app/store.py", "    op.add_column('users', sa.Column('x'))"),
            ["source", "migration"]
        );
        assert_eq!(
            cats_with("docs/sql.md", "CREATE TABLE users (id int);"),
            ["docs"],
            "DDL in docs is an example, not a migration"
        );
        assert_eq!(
            cats_with("app/views.py", "@login_required\ndef index(): pass"),
            ["source", "auth"]
        );
        assert_eq!(
            cats_with(
                "k/rbac.yaml",
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole"
            ),
            ["infra", "auth"]
        );
        assert_eq!(
            cats_with(
                "modules/net.tf",
                "resource \"aws_security_group\" \"web\" {"
            ),
            ["infra", "auth"]
        );
        assert_eq!(
            cats_with("Cargo.toml", "version = \"1.2.0\""),
            ["dependencies", "release"]
        );
        assert_eq!(
            cats_with("src/util.rs", "fn add(a: u8) -> u8 { a }"),
            ["source"]
        );
    }

    #[test]
    fn gate_edits_in_ci_are_governance_even_when_removed() {
        let c = Classifier::new(&ClassifySettings::default()).unwrap();
        let mut file = FileChange::new(".github/workflows/ci.yml", FileStatus::Modified);
        file.removed.push(crate::change::Line {
            number: 12,
            text: "      - run: lockgate check --base origin/main".into(),
        });
        let class = c.classify(&file, &[]);
        assert!(class.categories.contains(&Category::Governance));
        assert!(class.reasons.iter().any(|r| r.detail == "removed line 12"));
    }

    #[test]
    fn renames_classify_both_paths_and_production_is_flagged() {
        let c = Classifier::new(&ClassifySettings::default()).unwrap();
        let mut file = FileChange::new("src/misc/helpers.rs", FileStatus::Renamed);
        file.old_path = Some("src/auth/helpers.rs".into());
        assert!(c.classify(&file, &[]).categories.contains(&Category::Auth));
        let prod = FileChange::new("environments/production/main.tf", FileStatus::Modified);
        assert_eq!(c.classify(&prod, &[]).flags, ["production"]);
    }

    #[test]
    fn team_rules_extend_and_override() {
        let settings = ClassifySettings {
            path: vec![PathRule {
                id: "generated-docs".into(),
                categories: vec![Category::Docs],
                flags: vec![],
                paths: vec!["/src/generated/".into()],
                exclusive: true,
                unless: vec![],
            }],
            disable: vec!["auth-code".into()],
            ..ClassifySettings::default()
        };
        let c = Classifier::new(&settings).unwrap();
        let f = FileChange::new("src/generated/api.rs", FileStatus::Modified);
        assert_eq!(c.classify(&f, &[]).categories, [Category::Docs]);
        let f = FileChange::new("app/views.py", FileStatus::Modified)
            .with_added_text("@login_required");
        assert_eq!(c.classify(&f, &[]).categories, [Category::Source]);
    }

    #[test]
    fn secret_findings_add_the_secrets_category() {
        let c = Classifier::new(&ClassifySettings::default()).unwrap();
        let f = FileChange::new("src/config.rs", FileStatus::Modified);
        let finding = Finding {
            rule: "aws-access-key-id".into(),
            description: "AWS access key id".into(),
            path: "src/config.rs".into(),
            line: 4,
            start_column: 1,
            end_column: 20,
        };
        let class = c.classify(&f, &[finding]);
        assert_eq!(class.categories, [Category::Source, Category::Secrets]);
    }
}
