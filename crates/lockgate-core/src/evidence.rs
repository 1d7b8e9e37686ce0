//! Evidence facts: what tests, coverage, static analysis and Terraform plans say about
//! this change, as the trust score and policy see them. Parsing the reports is
//! `lockgate-evidence`'s job; these are the plain facts it produces.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A kind of evidence.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// JUnit XML test results.
    Tests,
    /// Coverage of the head (lcov or Cobertura), optionally of the base too.
    Coverage,
    /// SARIF from static analysis.
    Sarif,
    /// A Terraform plan.
    Terraform,
}

impl EvidenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Tests => "tests",
            EvidenceKind::Coverage => "coverage",
            EvidenceKind::Sarif => "sarif",
            EvidenceKind::Terraform => "terraform",
        }
    }
}

/// All evidence given for a change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EvidenceFacts {
    /// Kinds provided.
    pub provided: Vec<EvidenceKind>,
    /// Kinds the configuration requires (`trust.require`) that were not provided.
    pub missing_required: Vec<EvidenceKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tests: Option<TestFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<CoverageFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sarif: Option<SarifFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terraform: Option<TerraformFacts>,
}

/// Test results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TestFacts {
    pub total: u64,
    pub passed: u64,
    pub failed: u64,
    pub errored: u64,
    pub skipped: u64,
    /// The first failing tests, `name: message`.
    pub failures: Vec<String>,
    /// The change added or modified test files.
    pub tests_changed: bool,
    /// The change touched source code.
    pub source_changed: bool,
}

/// Coverage, overall and of the lines this change added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CoverageFacts {
    /// `lcov` or `cobertura`.
    pub format: String,
    /// Overall line coverage of the head, in [0, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<f64>,
    /// Overall line coverage of the base, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<f64>,
    /// head − base, when both are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    /// Added lines the coverage report counts as executable.
    pub added_executable: u64,
    /// Of those, lines with hits.
    pub added_covered: u64,
    /// added_covered / added_executable; absent when nothing executable was added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_coverage: Option<f64>,
    /// Added executable lines without hits, per file (first 50 lines each, 50 files).
    pub uncovered: BTreeMap<String, Vec<u32>>,
    /// Changed source files the report does not mention at all.
    pub unreported_files: Vec<String>,
}

/// Static analysis findings, and the ones on lines this change added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SarifFacts {
    pub tools: Vec<String>,
    /// All findings in the reports.
    pub total: u64,
    /// Findings on added lines (or in added files), by severity
    /// (`critical`, `high`, `medium`, `low`).
    pub new_by_severity: BTreeMap<String, u64>,
    /// The first 50 new findings.
    pub new: Vec<NewFinding>,
}

impl SarifFacts {
    /// New findings of a severity.
    pub fn new_count(&self, severity: &str) -> u64 {
        self.new_by_severity.get(severity).copied().unwrap_or(0)
    }
}

/// A finding on a line the change added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NewFinding {
    pub tool: String,
    pub rule_id: String,
    pub severity: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub message: String,
}

/// What a Terraform plan does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TerraformFacts {
    /// Managed resources per action: create, update, replace, delete, forget, no_op.
    pub actions: BTreeMap<String, u64>,
    /// Per resource type, per action (no-ops left out).
    pub by_type: BTreeMap<String, BTreeMap<String, u64>>,
    /// Stateful resources destroyed or replaced.
    pub destructive: Vec<String>,
    pub destructive_count: u64,
    /// Access-granting resources changed (IAM, security groups…): the `auth` category.
    pub access: Vec<String>,
    pub access_count: u64,
}
