//! The provenance vocabulary: what signed attestations established about each agent
//! commit in a change. Verification itself lives in `lockgate-attest`; these are the
//! plain facts that reach the policy input and the decision.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What verification concluded for an attestation, or for a commit.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ProvenanceStatus {
    /// Signed by a trusted, current key for this agent, bound to this change.
    Valid,
    /// A well-formed attestation for a different tree or patch.
    Stale,
    /// No attestation was found.
    Missing,
    /// Signed by a key the trust root does not trust for this agent (or at this time).
    UntrustedKey,
    /// Signed by a revoked key.
    Revoked,
    /// Malformed, or the signature of a trusted key does not verify.
    Invalid,
}

impl ProvenanceStatus {
    /// The lower-case name used everywhere.
    pub fn as_str(self) -> &'static str {
        match self {
            ProvenanceStatus::Valid => "valid",
            ProvenanceStatus::Stale => "stale",
            ProvenanceStatus::Missing => "missing",
            ProvenanceStatus::UntrustedKey => "untrusted_key",
            ProvenanceStatus::Revoked => "revoked",
            ProvenanceStatus::Invalid => "invalid",
        }
    }

    /// Preference among several results for one commit: valid wins; otherwise the most
    /// serious problem is the one reported.
    pub fn rank(self) -> u8 {
        match self {
            ProvenanceStatus::Valid => 0,
            ProvenanceStatus::Invalid => 1,
            ProvenanceStatus::Revoked => 2,
            ProvenanceStatus::UntrustedKey => 3,
            ProvenanceStatus::Stale => 4,
            ProvenanceStatus::Missing => 5,
        }
    }
}

/// How an attestation's subject matched the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    /// The attested commit is this commit.
    Commit,
    /// This commit's tree is the attested tree (a squash or rebase kept the tree).
    Tree,
    /// This commit's patch equals the attested patch (a rebase kept the patch).
    PatchId,
}

/// Where a transparency log holds the attestation (its inclusion proof verified).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogInclusion {
    /// Trust-root name of the log.
    pub log: String,
    /// The entry's index in the log.
    pub index: u64,
    /// Size of the tree the proof was checked against.
    pub tree_size: u64,
}

/// Provenance of one agent commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommitProvenance {
    /// Full commit id.
    pub commit: String,
    pub status: ProvenanceStatus,
    /// How the covering attestation matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<Binding>,
    /// The commit whose attestation covers this one (itself, or a descendant in the
    /// range that the session proposed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attested_by: Option<String>,
    /// Trust-root name of the signing key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// Attested agent name and model id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Whether the attested agent is one of the identities found on the commit
    /// (author, committer, trailers); `None` when there is no attestation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_matches_commit: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `sha256:<hex>` of the prompt (or of the salted prompt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript: Option<TranscriptFacts>,
    /// The attestation's verified inclusion in a trusted transparency log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logged: Option<LogInclusion>,
    /// Why the status is what it is.
    pub reasons: Vec<String>,
}

/// A transcript summary, as policy sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TranscriptFacts {
    pub format: String,
    /// `sha256:<hex>` of the redacted transcript.
    pub digest: String,
    pub steps: u32,
    pub tool_calls: u32,
    pub files_touched: u32,
    pub redactions: u32,
}

/// Provenance for the whole change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProvenanceFacts {
    /// Where the trust root was read from; `None` when there is none (every signature
    /// is then untrusted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_root: Option<String>,
    /// One entry per agent commit in the range, newest first.
    pub commits: Vec<CommitProvenance>,
    /// Number of agent commits per status.
    pub summary: BTreeMap<ProvenanceStatus, u32>,
}

impl ProvenanceFacts {
    /// Recomputes `summary` from `commits`.
    pub fn summarize(&mut self) {
        self.summary.clear();
        for c in &self.commits {
            *self.summary.entry(c.status).or_default() += 1;
        }
    }
}
