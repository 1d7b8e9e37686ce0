//! The Lockgate agent-session predicate (`https://lockgate.dev/attestation/agent-session/v1`):
//! who (agent, model) did what (base → proposed commit and tree, patch id), on whose
//! request (prompt digest, task), how (transcript digest and summary), with which
//! dependency changes, where (environment) and when.
//!
//! Its JSON Schema is `schema/predicate-agent-session.v1.json`. Field names are
//! camelCase like other in-toto predicates. Additive changes only within v1.

use crate::intoto::{ResourceDescriptor, STATEMENT_V1, Statement};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The predicate type URI.
pub const AGENT_SESSION_V1: &str = "https://lockgate.dev/attestation/agent-session/v1";
/// Subject name for the proposed commit (`gitCommit` digest).
pub const SUBJECT_COMMIT: &str = "git+commit";
/// Subject name for the proposed commit's tree (`gitTree` digest).
pub const SUBJECT_TREE: &str = "git+tree";

/// A digest set: algorithm → lowercase hex.
pub type DigestSet = BTreeMap<String, String>;

/// The agent-session predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSession {
    pub agent: Agent,
    pub model: Model,
    pub prompt: Prompt,
    /// Issue, ticket or task URL/id the session worked on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Repository URL or name, as the agent saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Where the session started.
    pub base: GitRevision,
    /// What the session proposes.
    pub proposed: ProposedRevision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<TranscriptSummary>,
    #[serde(default)]
    pub dependencies: DependencyDelta,
    #[serde(default)]
    pub environment: Environment,
    pub timestamps: Timestamps,
}

/// The coding agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    /// Agent identity as in Lockgate's identity list (`claude-code`, `codex`, …).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// This run's id (session id, job id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

/// The model behind the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// `anthropic`, `openai`, `google`, `local`, …
    pub provider: String,
    /// Model id (`claude-sonnet-4-5`, `gpt-5-codex`, …).
    pub id: String,
    /// Weights digest, for local models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestSet>,
}

/// What the agent was asked to do, by digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Prompt {
    /// `sha256` of the prompt bytes. Absent for private prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestSet>,
    /// `sha256` of salt ‖ prompt, for private prompts: whoever holds the salt can
    /// confirm a prompt; nobody else can guess it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salted_digest: Option<DigestSet>,
}

/// A commit and its tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRevision {
    pub commit: String,
    pub tree: String,
}

/// The proposed revision, with the patch identity that survives rebases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProposedRevision {
    pub commit: String,
    pub tree: String,
    /// Stable patch id of base..proposed (see docs/provenance.md), or absent for an
    /// empty change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_id: Option<String>,
}

/// The session transcript, by digest and summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptSummary {
    /// Source format: `lockgate-steps-v1`, `claude-code-jsonl`, `codex-rollout-jsonl`.
    pub format: String,
    /// `sha256` of the transcript bytes after redaction.
    pub digest: DigestSet,
    pub steps: u32,
    pub tool_calls: u32,
    /// Tool calls by tool name.
    pub tools: BTreeMap<String, u32>,
    /// Files the agent wrote or edited (sorted, bounded).
    pub files_touched: Vec<String>,
    /// Model ids that appear in the transcript.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Secrets found in the transcript and redacted before hashing.
    pub redactions: u32,
    /// Agent Trace records supplied with the session: `sha256` of each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_trace: Vec<DigestSet>,
}

/// A package in a dependency delta.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    /// `cargo`, `npm`, `go`, `pypi`.
    pub ecosystem: String,
    pub name: String,
    pub version: String,
}

/// A package whose version changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageChange {
    pub ecosystem: String,
    pub name: String,
    pub from: String,
    pub to: String,
}

/// Packages added, removed and changed between base and proposed lockfiles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyDelta {
    pub added: Vec<Package>,
    pub removed: Vec<Package>,
    pub changed: Vec<PackageChange>,
    /// Lockfiles that were read.
    pub lockfiles: Vec<String>,
}

/// Where the agent ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// CI runner or sandbox name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    /// Container image digest (`sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
}

/// RFC 3339 UTC times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timestamps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    pub attested: String,
}

impl AgentSession {
    /// The in-toto statement: subjects are the proposed commit and its tree.
    pub fn into_statement(self) -> Statement {
        let subject = vec![
            ResourceDescriptor::with_digest(SUBJECT_COMMIT, "gitCommit", &self.proposed.commit),
            ResourceDescriptor::with_digest(SUBJECT_TREE, "gitTree", &self.proposed.tree),
        ];
        Statement {
            type_: STATEMENT_V1.into(),
            subject,
            predicate_type: AGENT_SESSION_V1.into(),
            predicate: Some(serde_json::to_value(self).expect("predicates serialize")),
        }
    }

    /// Reads the predicate of a statement, checking its type.
    pub fn from_statement(statement: &Statement) -> Result<AgentSession, String> {
        if statement.predicate_type != AGENT_SESSION_V1 {
            return Err(format!(
                "predicate type {:?} is not {AGENT_SESSION_V1}",
                statement.predicate_type
            ));
        }
        let value = statement.predicate.clone().ok_or("no predicate")?;
        serde_json::from_value(value).map_err(|e| format!("invalid agent-session predicate: {e}"))
    }
}

/// `{"sha256": hex}`.
pub fn sha256_set(bytes: &[u8]) -> DigestSet {
    use sha2::{Digest, Sha256};
    BTreeMap::from([("sha256".to_string(), hex::encode(Sha256::digest(bytes)))])
}

/// The JSON Schema of the predicate, pretty-printed.
pub fn predicate_schema_json() -> String {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(AgentSession)).expect("schemas serialize");
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            "https://lockgate.dev/schema/predicate-agent-session.v1.json".into(),
        );
        obj.insert(
            "title".into(),
            format!("Lockgate agent-session predicate ({AGENT_SESSION_V1})").into(),
        );
    }
    let mut out = serde_json::to_string_pretty(&schema).expect("schemas serialize");
    out.push('\n');
    out
}
