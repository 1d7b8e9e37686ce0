//! What goes into the ledger and what comes out, with the bounds every input is held
//! to (the server accepts these from the network).

use crate::StoreError;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Longest name (repository, change, person, agent).
pub const MAX_NAME: usize = 256;
/// Longest free text (comment, reason).
pub const MAX_TEXT: usize = 4096;
/// Largest stored document (a decision or an attestation bundle).
pub const MAX_DOCUMENT: usize = 4 << 20;
/// Most rows any list returns.
pub const MAX_LIST: u32 = 1000;

pub(crate) fn check_len(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), StoreError> {
    if value.len() < min || value.len() > max {
        return Err(StoreError::Invalid {
            field,
            reason: format!("length {} is outside {min}..={max}", value.len()),
        });
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(StoreError::Invalid {
            field,
            reason: "control characters are not allowed".into(),
        });
    }
    Ok(())
}

pub(crate) fn check_sha(field: &'static str, value: &str) -> Result<(), StoreError> {
    if !(value.len() == 40 || value.len() == 64) || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::Invalid {
            field,
            reason: "expected a full commit id (40 or 64 hex digits)".into(),
        });
    }
    Ok(())
}

/// The result of a recording call: the stored row, and whether this call changed it
/// (false when the same thing was recorded before — calls are idempotent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorded<T> {
    pub record: T,
    pub changed: bool,
}

/// A decision to record (from `lockgate check --server`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDecision {
    /// Repository name (`owner/name` on a forge, or any stable name).
    pub repo: String,
    /// The change: `pr/42`, a branch, or a merge-queue entry.
    pub change_ref: String,
    pub base_sha: String,
    pub head_sha: String,
    /// `auto_merge`, `needs_approval` or `blocked`.
    pub verdict: String,
    /// `sha256:…` of the policy input the decision was made from.
    pub input_digest: String,
    pub author_kind: String,
    pub agent: Option<String>,
    pub trust_score: u8,
    /// The `lockgate.decision/v1` JSON document.
    pub document: String,
}

impl NewDecision {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_len("repo", &self.repo, 1, MAX_NAME)?;
        check_len("change_ref", &self.change_ref, 1, MAX_NAME)?;
        check_sha("base_sha", &self.base_sha)?;
        check_sha("head_sha", &self.head_sha)?;
        if !["auto_merge", "needs_approval", "blocked"].contains(&self.verdict.as_str()) {
            return Err(StoreError::Invalid {
                field: "verdict",
                reason: format!(
                    "{:?} is not auto_merge, needs_approval or blocked",
                    self.verdict
                ),
            });
        }
        if !self.input_digest.starts_with("sha256:") || self.input_digest.len() != 71 {
            return Err(StoreError::Invalid {
                field: "input_digest",
                reason: "expected sha256:<64 hex digits>".into(),
            });
        }
        check_len("author_kind", &self.author_kind, 1, 32)?;
        if let Some(a) = &self.agent {
            check_len("agent", a, 1, MAX_NAME)?;
        }
        if self.trust_score > 100 {
            return Err(StoreError::Invalid {
                field: "trust_score",
                reason: "0–100".into(),
            });
        }
        check_len("document", &self.document, 2, MAX_DOCUMENT)
    }
}

/// A stored decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRecord {
    pub id: String,
    pub repo: String,
    pub change_ref: String,
    pub base_sha: String,
    pub head_sha: String,
    pub verdict: String,
    pub input_digest: String,
    pub author_kind: String,
    pub agent: Option<String>,
    pub trust_score: u8,
    pub document: String,
    pub created_ms: i64,
}

pub(crate) const DECISION_COLUMNS: &str = "id, repo, change_ref, base_sha, head_sha, verdict, input_digest, \
     author_kind, agent, trust_score, document, created_ms";

pub(crate) fn decision_from_row(row: &AnyRow) -> Result<DecisionRecord, StoreError> {
    Ok(DecisionRecord {
        id: row.try_get("id")?,
        repo: row.try_get("repo")?,
        change_ref: row.try_get("change_ref")?,
        base_sha: row.try_get("base_sha")?,
        head_sha: row.try_get("head_sha")?,
        verdict: row.try_get("verdict")?,
        input_digest: row.try_get("input_digest")?,
        author_kind: row.try_get("author_kind")?,
        agent: row.try_get("agent")?,
        trust_score: row.try_get::<i64, _>("trust_score")?.clamp(0, 100) as u8,
        document: row.try_get("document")?,
        created_ms: row.try_get("created_ms")?,
    })
}

/// Approve, or ask for changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Approved,
    ChangesRequested,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Approved => "approved",
            ApprovalState::ChangesRequested => "changes_requested",
        }
    }

    fn parse(s: &str) -> Result<ApprovalState, StoreError> {
        match s {
            "approved" => Ok(ApprovalState::Approved),
            "changes_requested" => Ok(ApprovalState::ChangesRequested),
            other => Err(StoreError::Invalid {
                field: "state",
                reason: format!("{other:?} in the database"),
            }),
        }
    }
}

/// An approval to record. Who may give it is decided before this, by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewApproval {
    pub repo: String,
    pub change_ref: String,
    /// The exact head commit approved.
    pub head_sha: String,
    /// The person (as mapped from the token, Slack user or forge login).
    pub approver: String,
    pub state: ApprovalState,
    /// `web`, `api`, `slack`, `github`.
    pub source: String,
    pub comment: String,
}

impl NewApproval {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_len("repo", &self.repo, 1, MAX_NAME)?;
        check_len("change_ref", &self.change_ref, 1, MAX_NAME)?;
        check_sha("head_sha", &self.head_sha)?;
        check_len("approver", &self.approver, 1, MAX_NAME)?;
        check_len("source", &self.source, 1, 32)?;
        check_len("comment", &self.comment, 0, MAX_TEXT)
    }
}

/// A stored approval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalRecord {
    pub id: String,
    pub repo: String,
    pub change_ref: String,
    pub head_sha: String,
    pub approver: String,
    pub state: ApprovalState,
    pub source: String,
    pub comment: String,
    pub created_ms: i64,
    /// Its index in the transparency log, once published.
    pub log_index: Option<i64>,
}

pub(crate) const APPROVAL_COLUMNS: &str =
    "id, repo, change_ref, head_sha, approver, state, source, comment, created_ms, log_index";

pub(crate) fn approval_from_row(row: &AnyRow) -> Result<ApprovalRecord, StoreError> {
    Ok(ApprovalRecord {
        id: row.try_get("id")?,
        repo: row.try_get("repo")?,
        change_ref: row.try_get("change_ref")?,
        head_sha: row.try_get("head_sha")?,
        approver: row.try_get("approver")?,
        state: ApprovalState::parse(&row.try_get::<String, _>("state")?)?,
        source: row.try_get("source")?,
        comment: row.try_get("comment")?,
        created_ms: row.try_get("created_ms")?,
        log_index: row.try_get("log_index")?,
    })
}

/// What became of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Merged,
    Reverted,
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Merged => "merged",
            Outcome::Reverted => "reverted",
            Outcome::Rejected => "rejected",
        }
    }
}

/// An outcome to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOutcome {
    pub repo: String,
    pub change_ref: String,
    pub commit_sha: String,
    pub agent: Option<String>,
    pub outcome: Outcome,
}

impl NewOutcome {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_len("repo", &self.repo, 1, MAX_NAME)?;
        check_len("change_ref", &self.change_ref, 1, MAX_NAME)?;
        check_sha("commit_sha", &self.commit_sha)?;
        if let Some(a) = &self.agent {
            check_len("agent", a, 1, MAX_NAME)?;
        }
        Ok(())
    }
}

/// What a hold stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldScope {
    /// Every merge.
    Global,
    /// One repository (`target` = its name).
    Repo,
    /// One agent's changes (`target` = its id): an incident freeze.
    Agent,
    /// One change (`target` = `repo#change_ref`).
    Change,
}

impl HoldScope {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldScope::Global => "global",
            HoldScope::Repo => "repo",
            HoldScope::Agent => "agent",
            HoldScope::Change => "change",
        }
    }

    fn parse(s: &str) -> Result<HoldScope, StoreError> {
        Ok(match s {
            "global" => HoldScope::Global,
            "repo" => HoldScope::Repo,
            "agent" => HoldScope::Agent,
            "change" => HoldScope::Change,
            other => {
                return Err(StoreError::Invalid {
                    field: "scope",
                    reason: format!("{other:?} in the database"),
                });
            }
        })
    }
}

/// A hold to place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewHold {
    pub scope: HoldScope,
    /// Empty for a global hold.
    pub target: String,
    pub reason: String,
    /// A person, or `escalation` for the scheduler.
    pub placed_by: String,
}

impl NewHold {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        let min = usize::from(self.scope != HoldScope::Global);
        check_len("target", &self.target, min, MAX_NAME)?;
        check_len("reason", &self.reason, 1, MAX_TEXT)?;
        check_len("placed_by", &self.placed_by, 1, MAX_NAME)
    }
}

/// A stored hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldRecord {
    pub id: String,
    pub scope: HoldScope,
    pub target: String,
    pub reason: String,
    pub placed_by: String,
    pub created_ms: i64,
    pub released_by: Option<String>,
    pub released_ms: Option<i64>,
}

impl HoldRecord {
    /// Whether this hold stops a change of `repo` (`change_ref`, written by `agent`):
    /// a global hold, one on its repository, its agent, or the change itself.
    pub fn stops(&self, repo: &str, change_ref: &str, agent: Option<&str>) -> bool {
        match self.scope {
            HoldScope::Global => true,
            HoldScope::Repo => self.target == repo,
            HoldScope::Agent => Some(self.target.as_str()) == agent,
            HoldScope::Change => {
                self.target
                    .strip_prefix(repo)
                    .and_then(|t| t.strip_prefix('#'))
                    == Some(change_ref)
            }
        }
    }

    /// Whether it stops everything in `repo` (global, or on the repository).
    pub fn stops_repo(&self, repo: &str) -> bool {
        matches!(self.scope, HoldScope::Global)
            || (self.scope == HoldScope::Repo && self.target == repo)
    }
}

pub(crate) const HOLD_COLUMNS: &str =
    "id, scope, target, reason, placed_by, created_ms, released_by, released_ms";

pub(crate) fn hold_from_row(row: &AnyRow) -> Result<HoldRecord, StoreError> {
    Ok(HoldRecord {
        id: row.try_get("id")?,
        scope: HoldScope::parse(&row.try_get::<String, _>("scope")?)?,
        target: row.try_get("target")?,
        reason: row.try_get("reason")?,
        placed_by: row.try_get("placed_by")?,
        created_ms: row.try_get("created_ms")?,
        released_by: row.try_get("released_by")?,
        released_ms: row.try_get("released_ms")?,
    })
}

/// An attestation bundle to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAttestation {
    pub repo: String,
    pub commit_sha: String,
    pub agent: String,
    pub model: Option<String>,
    /// `sha256:…` of the bundle bytes.
    pub digest: String,
    /// The Sigstore bundle JSON.
    pub bundle: String,
}

impl NewAttestation {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_len("repo", &self.repo, 1, MAX_NAME)?;
        check_sha("commit_sha", &self.commit_sha)?;
        check_len("agent", &self.agent, 1, MAX_NAME)?;
        if let Some(m) = &self.model {
            check_len("model", m, 1, MAX_NAME)?;
        }
        check_len("digest", &self.digest, 8, 128)?;
        check_len("bundle", &self.bundle, 2, MAX_DOCUMENT)
    }
}

/// A stored attestation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttestationRecord {
    pub id: String,
    pub repo: String,
    pub commit_sha: String,
    pub agent: String,
    pub model: Option<String>,
    pub digest: String,
    pub bundle: String,
    pub created_ms: i64,
}

pub(crate) const ATTESTATION_COLUMNS: &str =
    "id, repo, commit_sha, agent, model, digest, bundle, created_ms";

pub(crate) fn attestation_from_row(row: &AnyRow) -> Result<AttestationRecord, StoreError> {
    Ok(AttestationRecord {
        id: row.try_get("id")?,
        repo: row.try_get("repo")?,
        commit_sha: row.try_get("commit_sha")?,
        agent: row.try_get("agent")?,
        model: row.try_get("model")?,
        digest: row.try_get("digest")?,
        bundle: row.try_get("bundle")?,
        created_ms: row.try_get("created_ms")?,
    })
}

/// Rows per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub decisions: u64,
    pub approvals: u64,
    pub outcomes: u64,
    pub holds: u64,
    pub attestations: u64,
}

/// Largest stored transcript (redacted JSONL), bytes.
pub const MAX_TRANSCRIPT: usize = 32 << 20;

/// A redacted session transcript, stored under the digest attestations carry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptRecord {
    /// `sha256:<64 hex>` of `body`.
    pub digest: String,
    /// `lockgate-steps-v1`, `claude-code-jsonl`, `codex-rollout-jsonl`.
    pub format: String,
    pub body: String,
    pub steps: u64,
    pub created_ms: i64,
}

impl TranscriptRecord {
    /// Checks the bounds and that `digest` is the SHA-256 of `body`.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_len("format", &self.format, 1, 64)?;
        if self.body.len() > MAX_TRANSCRIPT {
            return Err(StoreError::Invalid {
                field: "transcript",
                reason: format!("{} bytes, more than {MAX_TRANSCRIPT}", self.body.len()),
            });
        }
        let expected = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(self.body.as_bytes()))
        );
        if self.digest != expected {
            return Err(StoreError::Invalid {
                field: "digest",
                reason: "is not the SHA-256 of the transcript".into(),
            });
        }
        Ok(())
    }
}

/// A change that waited too long for approval at one head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EscalationRecord {
    pub id: String,
    pub repo: String,
    pub change_ref: String,
    pub head_sha: String,
    pub reason: String,
    pub created_ms: i64,
    /// Whether its hold (id = this escalation's id) was placed.
    pub hold_placed: bool,
    /// When on-call acknowledged the notice.
    pub notified_ms: Option<i64>,
    pub attempts: i64,
    pub last_error: Option<String>,
}

pub(crate) const ESCALATION_COLUMNS: &str = "id, repo, change_ref, head_sha, reason, created_ms, hold_placed, notified_ms, attempts, last_error";

pub(crate) fn escalation_from_row(row: &AnyRow) -> Result<EscalationRecord, StoreError> {
    Ok(EscalationRecord {
        id: row.try_get("id")?,
        repo: row.try_get("repo")?,
        change_ref: row.try_get("change_ref")?,
        head_sha: row.try_get("head_sha")?,
        reason: row.try_get("reason")?,
        created_ms: row.try_get("created_ms")?,
        hold_placed: row.try_get::<i64, _>("hold_placed")? != 0,
        notified_ms: row.try_get("notified_ms")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
    })
}
