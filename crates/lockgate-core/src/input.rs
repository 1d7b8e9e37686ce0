//! The policy input document: the one versioned contract with users' Rego policies.
//!
//! Within a major version (`lockgate.input/v1`) changes are additive only. The JSON
//! Schema in `schema/input.v1.json` is generated from these types (`lockgate schema`),
//! and a test keeps the file in sync.
//!
//! The document carries facts, never line content: secrets found in added lines are
//! reported by location and kind only, so the document (and its digest) is safe to log.

use crate::agents::Authorship;
use crate::category::{Category, Impact, TrustBand};
use crate::change::{EntryKind, FileStatus, Person, Trailer};
use crate::classify::CategoryReason;
use crate::codeowners::LineError;
use crate::config::{ReviewSettings, Route};
use crate::provenance::ProvenanceFacts;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Version tag of the input document.
pub const INPUT_SCHEMA_VERSION: &str = "lockgate.input/v1";

/// The document every policy evaluates, as `input`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyInput {
    /// Always `lockgate.input/v1` for this version.
    pub schema_version: String,
    pub change: ChangeSummary,
    pub author: Authorship,
    pub commits: Vec<CommitFacts>,
    pub files: Vec<FileFacts>,
    /// Categories present in the change, in vocabulary order.
    pub categories: Vec<Category>,
    /// The highest impact of any file.
    pub impact: Impact,
    /// Secrets and other detector hits (redacted: location and kind only).
    pub findings: Vec<FindingFacts>,
    pub owners: OwnersFacts,
    /// Signed provenance of the agent commits (empty when there are none).
    #[serde(default)]
    pub provenance: ProvenanceFacts,
    /// Test results, coverage, static analysis and Terraform plans given for the change.
    #[serde(default)]
    pub evidence: crate::evidence::EvidenceFacts,
    /// The 0–100 trust score, its band and factors (the risk matrix's trust axis).
    pub trust: crate::trust::TrustScore,
    /// The settings policies need: routing matrix, review counts, who is gated.
    pub config: PolicyConfig,
}

/// Range and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeSummary {
    pub base_ref: String,
    pub head_ref: String,
    pub base: String,
    pub head: String,
    pub merge_base: String,
    pub commit_count: u32,
    pub file_count: u32,
    pub lines_added: u64,
    pub lines_removed: u64,
    /// Some content was not read (limits); scanning is incomplete.
    pub truncated: bool,
    pub notes: Vec<String>,
}

/// One commit, without its message body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommitFacts {
    pub sha: String,
    pub author: Person,
    pub committer: Person,
    pub summary: String,
    pub trailers: Vec<Trailer>,
    pub parents: u32,
    pub time: i64,
}

/// One changed file with its assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileFacts {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    pub status: FileStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_kind: Option<EntryKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_kind: Option<EntryKind>,
    pub binary: bool,
    pub summarized: bool,
    pub size: u64,
    pub lines_added: u32,
    pub lines_removed: u32,
    pub content_truncated: bool,
    pub path_not_utf8: bool,
    pub categories: Vec<Category>,
    pub flags: Vec<String>,
    /// Highest impact among the file's categories.
    pub impact: Impact,
    /// CODEOWNERS owners (empty when unowned).
    pub owners: Vec<String>,
    /// CODEOWNERS line that decided ownership.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owners_line: Option<usize>,
    pub reasons: Vec<CategoryReason>,
}

/// A detector hit, redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FindingFacts {
    /// `secret`, or `input` for problems with the change itself.
    pub kind: String,
    pub rule: String,
    pub message: String,
    pub path: String,
    /// 1-based line in the new file (0 when the finding is about the whole file).
    pub line: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_column: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_column: Option<u32>,
}

/// CODEOWNERS facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OwnersFacts {
    /// The CODEOWNERS file used (read from the base revision), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Lines GitHub would skip.
    pub errors: Vec<LineError>,
    /// Files grouped by identical owner sets, in first-seen order. Unowned files form
    /// one group with no owners.
    pub groups: Vec<OwnerGroup>,
    /// Changed files no CODEOWNERS line owns.
    pub unowned: Vec<String>,
}

/// Files that share one owner set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OwnerGroup {
    pub owners: Vec<String>,
    pub files: Vec<String>,
    /// Highest impact among these files.
    pub impact: Impact,
    /// Union of the files' categories.
    pub categories: Vec<Category>,
    /// Union of the files' flags.
    pub flags: Vec<String>,
}

/// The configuration policies see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyConfig {
    /// Apply the agent gates to humans too.
    pub gate_humans: bool,
    /// `matrix[impact][trust]` → route, every cell filled.
    pub matrix: BTreeMap<Impact, BTreeMap<TrustBand, Route>>,
    pub never_automate: Vec<Category>,
    pub never_automate_flags: Vec<String>,
    pub review: ReviewSettings,
    /// Impact per category in effect.
    pub impact: BTreeMap<Category, Impact>,
    /// Trust score bands.
    pub trust: TrustBands,
}

/// Where the trust score's bands start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrustBands {
    /// Lowest score of the fast path.
    pub fast: u8,
    /// Lowest score of normal review; below is senior review.
    pub normal: u8,
}

/// The input document serialized once as compact JSON, and the digest of that text.
///
/// The serialization is deterministic: struct fields in declaration order, maps and
/// sets sorted. `lockgate check --input-out` writes exactly these bytes, so
/// `sha256sum` of that file reproduces the decision's `input_digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalInput {
    pub json: String,
    /// `sha256:<hex>` of `json`: identifies exactly what policy saw.
    pub digest: String,
}

impl PolicyInput {
    /// Serializes the document canonically.
    pub fn canonical(&self) -> CanonicalInput {
        let json = serde_json::to_string(self).expect("the input document always serializes");
        CanonicalInput {
            digest: digest_text(&json),
            json,
        }
    }
}

/// `sha256:<hex>` of a canonical JSON text.
pub fn digest_text(json: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(json.as_bytes())))
}

/// The JSON Schema of [`PolicyInput`], pretty-printed.
pub fn input_schema_json() -> String {
    schema_json(
        schemars::schema_for!(PolicyInput),
        "https://lockgate.dev/schema/input.v1.json",
        "Lockgate policy input (lockgate.input/v1)",
    )
}

/// The JSON Schema of the `lockgate.decision/v1` output, pretty-printed.
pub fn decision_schema_json() -> String {
    schema_json(
        schemars::schema_for!(crate::decision::Decision),
        "https://lockgate.dev/schema/decision.v1.json",
        "Lockgate decision (lockgate.decision/v1)",
    )
}

fn schema_json(schema: schemars::Schema, id: &str, title: &str) -> String {
    let mut schema = serde_json::to_value(schema).expect("schemas serialize");
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("$id".into(), id.into());
        obj.insert("title".into(), title.into());
    }
    let mut out = serde_json::to_string_pretty(&schema).expect("schemas serialize");
    out.push('\n');
    out
}
