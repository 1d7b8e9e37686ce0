//! The one vocabulary of change categories, impact levels and trust bands.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What kind of thing a changed file is. A file can have several categories.
///
/// See `docs/categories.md` for what each covers by default.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Documentation: Markdown, reStructuredText, `docs/`.
    Docs,
    /// Test code and fixtures.
    Tests,
    /// Application or library code (also the fallback for unrecognized files).
    Source,
    /// Build scripts and build-tool configuration.
    Build,
    /// Dependency manifests and lockfiles.
    Dependencies,
    /// CI pipeline and workflow definitions.
    Ci,
    /// Infrastructure as code: Terraform/OpenTofu, Kubernetes, Helm, CloudFormation,
    /// Pulumi, Dockerfile/compose, Ansible.
    Infra,
    /// Database schema migrations (paths, and SQL DDL in added lines).
    Migration,
    /// Authentication, authorization, ACLs, permissions.
    Auth,
    /// Secret material and secret configuration, and any detected secret.
    Secrets,
    /// Budgets, quotas, payment and pricing configuration.
    Billing,
    /// Version bumps, changelogs, release workflows.
    Release,
    /// The gates themselves: CODEOWNERS, Lockgate config and policies, branch protection.
    Governance,
}

impl Category {
    /// Every category, in vocabulary order.
    pub const ALL: [Category; 13] = [
        Category::Docs,
        Category::Tests,
        Category::Source,
        Category::Build,
        Category::Dependencies,
        Category::Ci,
        Category::Infra,
        Category::Migration,
        Category::Auth,
        Category::Secrets,
        Category::Billing,
        Category::Release,
        Category::Governance,
    ];

    /// The lower-case name used in config, policy input and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Docs => "docs",
            Category::Tests => "tests",
            Category::Source => "source",
            Category::Build => "build",
            Category::Dependencies => "dependencies",
            Category::Ci => "ci",
            Category::Infra => "infra",
            Category::Migration => "migration",
            Category::Auth => "auth",
            Category::Secrets => "secrets",
            Category::Billing => "billing",
            Category::Release => "release",
            Category::Governance => "governance",
        }
    }

    /// Parses a category name as used in config.
    pub fn parse(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The default impact of a change in this category.
    pub fn default_impact(self) -> Impact {
        match self {
            Category::Docs | Category::Tests => Impact::Low,
            Category::Source | Category::Build => Impact::Medium,
            Category::Dependencies
            | Category::Ci
            | Category::Infra
            | Category::Migration
            | Category::Billing
            | Category::Release => Impact::High,
            Category::Auth | Category::Secrets | Category::Governance => Impact::Critical,
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What breaks if a change is wrong. Ordered: `Low < Medium < High < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    Low,
    Medium,
    High,
    Critical,
}

impl Impact {
    /// The lower-case name used everywhere.
    pub fn as_str(self) -> &'static str {
        match self {
            Impact::Low => "low",
            Impact::Medium => "medium",
            Impact::High => "high",
            Impact::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Impact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far an author is trusted. Ordered: `Low < Medium < High`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TrustBand {
    Low,
    Medium,
    High,
}

impl TrustBand {
    /// The lower-case name used everywhere.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustBand::Low => "low",
            TrustBand::Medium => "medium",
            TrustBand::High => "high",
        }
    }
}

impl std::fmt::Display for TrustBand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Impact per category: defaults overlaid with the team's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImpactTable(BTreeMap<Category, Impact>);

impl ImpactTable {
    /// The documented defaults with `overrides` applied.
    pub fn new(overrides: &BTreeMap<Category, Impact>) -> ImpactTable {
        let mut table: BTreeMap<Category, Impact> = Category::ALL
            .into_iter()
            .map(|c| (c, c.default_impact()))
            .collect();
        table.extend(overrides.iter().map(|(c, i)| (*c, *i)));
        ImpactTable(table)
    }

    /// Impact of one category.
    pub fn of(&self, category: Category) -> Impact {
        self.0[&category]
    }

    /// Highest impact among `categories` (`Low` for none).
    pub fn max_of(&self, categories: &[Category]) -> Impact {
        categories
            .iter()
            .map(|c| self.of(*c))
            .max()
            .unwrap_or(Impact::Low)
    }

    /// The whole table, for the policy input.
    pub fn as_map(&self) -> &BTreeMap<Category, Impact> {
        &self.0
    }
}

impl Default for ImpactTable {
    fn default() -> Self {
        ImpactTable::new(&BTreeMap::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        assert_eq!(Category::parse("nope"), None);
    }

    #[test]
    fn impact_overrides_apply() {
        let mut o = BTreeMap::new();
        o.insert(Category::Docs, Impact::High);
        let t = ImpactTable::new(&o);
        assert_eq!(t.of(Category::Docs), Impact::High);
        assert_eq!(t.of(Category::Auth), Impact::Critical);
        assert_eq!(
            t.max_of(&[Category::Tests, Category::Source]),
            Impact::Medium
        );
        assert_eq!(t.max_of(&[]), Impact::Low);
    }
}
