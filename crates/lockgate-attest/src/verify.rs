//! Verifying an attestation against a commit: signature, trust, subject binding and
//! ancestry, with one status and the reasons behind it. Fails closed: anything that
//! does not positively check out is not `valid`.
//!
//! Git facts come through [`GitFacts`], so this module stays free of IO and can be
//! tested with any repository implementation.

use crate::bundle::{Bundle, key_hint};
use crate::dsse::IN_TOTO_PAYLOAD_TYPE;
use crate::intoto::Statement;
use crate::predicate::{AGENT_SESSION_V1, AgentSession, SUBJECT_COMMIT, SUBJECT_TREE};
use crate::trust::{TrustRoot, TrustedKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use lockgate_core::provenance::{Binding, LogInclusion, ProvenanceStatus};

/// The result of verifying one attestation against one commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verification {
    pub status: ProvenanceStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<Binding>,
    /// Why: each check that failed or mattered.
    pub reasons: Vec<String>,
    /// Trust-root name of the key that verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// The attested session (present once the payload parsed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<AgentSession>,
    /// Verified inclusion in a trusted transparency log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logged: Option<LogInclusion>,
}

/// A statement whose predicate is kept as raw JSON until its type is known.
#[derive(Deserialize)]
struct RawStatement<'a> {
    #[serde(rename = "_type")]
    type_: String,
    #[serde(default)]
    subject: Vec<crate::intoto::ResourceDescriptor>,
    #[serde(rename = "predicateType", default)]
    predicate_type: String,
    #[serde(borrow, default)]
    predicate: Option<&'a serde_json::value::RawValue>,
}

/// Git facts verification needs.
pub trait GitFacts {
    /// Tree id of `commit`.
    fn tree_of(&self, commit: &str) -> Result<String, String>;
    /// Patch id of `commit` against its first parent (`None` for an empty change).
    fn patch_id_of(&self, commit: &str) -> Result<Option<String>, String>;
    /// Whether `ancestor` is an ancestor of (or equal to) `descendant`. An unknown
    /// object is an error.
    fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, String>;
}

fn fail(status: ProvenanceStatus, reason: impl Into<String>) -> Verification {
    Verification {
        status,
        binding: None,
        reasons: vec![reason.into()],
        signer: None,
        session: None,
        logged: None,
    }
}

/// Verifies one bundle (JSON bytes) for `commit`. `now` is seconds since the epoch.
pub fn verify_bundle(
    bytes: &[u8],
    trust: &TrustRoot,
    commit: &str,
    git: &dyn GitFacts,
    now: i64,
) -> Verification {
    let bundle = match Bundle::from_json(bytes) {
        Ok(b) => b,
        Err(e) => return fail(ProvenanceStatus::Invalid, format!("bundle: {e}")),
    };
    let Some(envelope) = &bundle.dsse_envelope else {
        return fail(ProvenanceStatus::Invalid, "bundle holds no DSSE envelope");
    };
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return fail(
            ProvenanceStatus::Invalid,
            format!("payload type {:?} is not in-toto", envelope.payload_type),
        );
    }

    // Signature: against every key in the trust root (no short cut on the hint).
    let verified = match envelope.verify(trust.public_keys()) {
        Ok(v) => v,
        Err(_) => {
            // Nobody we know signed it. Was the hint one of ours? Then it is forged or
            // corrupted; otherwise it is simply someone we do not trust.
            let hinted = bundle.hint().and_then(|h| {
                trust
                    .keys
                    .iter()
                    .find(|k| key_hint(&k.key) == h || k.key.key_id() == h)
            });
            return match hinted {
                Some(k) => fail(
                    ProvenanceStatus::Invalid,
                    format!(
                        "signature does not verify with trusted key {:?} named by the bundle",
                        k.name
                    ),
                ),
                None => fail(
                    ProvenanceStatus::UntrustedKey,
                    "signed by a key that is not in the trust root",
                ),
            };
        }
    };
    let signers: Vec<&TrustedKey> = verified
        .signers
        .iter()
        .filter_map(|id| trust.by_key_id(id))
        .collect();

    // Statement and predicate, parsed in one pass (the predicate straight into its
    // type, without an intermediate JSON tree: this is the hot path of verification).
    let raw: RawStatement<'_> = match serde_json::from_slice(&verified.payload) {
        Ok(s) => s,
        Err(e) => return fail(ProvenanceStatus::Invalid, format!("statement: {e}")),
    };
    let statement = Statement {
        type_: raw.type_,
        subject: raw.subject,
        predicate_type: raw.predicate_type,
        predicate: raw.predicate.map(|_| serde_json::Value::Null),
    };
    if let Err(e) = statement.validate() {
        return fail(ProvenanceStatus::Invalid, format!("statement: {e}"));
    }
    if statement.predicate_type != AGENT_SESSION_V1 {
        return fail(
            ProvenanceStatus::Invalid,
            format!(
                "predicate type {:?} is not {AGENT_SESSION_V1}",
                statement.predicate_type
            ),
        );
    }
    let session: AgentSession = match raw.predicate.map(|p| serde_json::from_str(p.get())) {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            return fail(
                ProvenanceStatus::Invalid,
                format!("invalid agent-session predicate: {e}"),
            );
        }
        None => return fail(ProvenanceStatus::Invalid, "no predicate"),
    };
    let mut result = Verification {
        status: ProvenanceStatus::Valid,
        binding: None,
        reasons: Vec::new(),
        signer: None,
        session: Some(session.clone()),
        logged: None,
    };

    // Trust: a signer must be current, unrevoked and allowed to speak for this agent.
    let agent = session.agent.name.as_str();
    let good = signers
        .iter()
        .find(|k| !k.revoked && k.valid_at(now) && k.allows_agent(agent));
    match good {
        Some(k) => result.signer = Some(k.name.clone()),
        None => {
            let (status, why) = if signers.iter().any(|k| k.revoked) {
                (
                    ProvenanceStatus::Revoked,
                    "signed by a revoked key".to_string(),
                )
            } else if signers.iter().any(|k| !k.valid_at(now)) {
                (
                    ProvenanceStatus::UntrustedKey,
                    "signing key is outside its validity window".to_string(),
                )
            } else {
                (
                    ProvenanceStatus::UntrustedKey,
                    format!("no signing key may speak for agent {agent:?}"),
                )
            };
            result.status = status;
            result.signer = signers.first().map(|k| k.name.clone());
            result.reasons.push(why);
            return result;
        }
    }

    // Transparency: a trusted log's entry must verify (a bad one means tampering), and
    // a log the trust root marks required must hold the envelope.
    let logs = crate::tlog::check_entries(
        &bundle.verification_material.tlog_entries,
        envelope,
        &trust.logs,
    );
    if !logs.invalid.is_empty() {
        result.status = ProvenanceStatus::Invalid;
        result.reasons.extend(logs.invalid);
        return result;
    }
    for required in trust.logs.iter().filter(|l| l.required) {
        if !logs.logged.iter().any(|l| l.log == required.name) {
            result.status = ProvenanceStatus::Invalid;
            result.reasons.push(format!(
                "not logged in transparency log {:?}, which the trust root requires",
                required.name
            ));
            return result;
        }
    }
    result.logged = logs.logged.into_iter().next().map(|l| LogInclusion {
        log: l.log,
        index: l.index,
        tree_size: l.tree_size,
    });

    // Subject binding: commit, then tree, then patch id.
    let subject = |name: &str, alg: &str| {
        statement
            .subject
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.digest.get(alg))
            .cloned()
    };
    let attested_commit = subject(SUBJECT_COMMIT, "gitCommit");
    let attested_tree = subject(SUBJECT_TREE, "gitTree");
    if attested_commit.as_deref() != Some(session.proposed.commit.as_str())
        || attested_tree.as_deref() != Some(session.proposed.tree.as_str())
    {
        result.status = ProvenanceStatus::Invalid;
        result
            .reasons
            .push("subjects disagree with the predicate's proposed commit and tree".into());
        return result;
    }
    let eq = |a: &str, b: &str| crate::ct_eq(a.as_bytes(), b.as_bytes());
    if eq(&session.proposed.commit, commit) {
        result.binding = Some(Binding::Commit);
    } else {
        match git.tree_of(commit) {
            Ok(tree) if eq(&session.proposed.tree, &tree) => result.binding = Some(Binding::Tree),
            Ok(_) => {}
            Err(e) => result.reasons.push(format!("could not read the tree: {e}")),
        }
        if result.binding.is_none()
            && let Some(attested) = &session.proposed.patch_id
        {
            match git.patch_id_of(commit) {
                Ok(Some(p)) if eq(attested, &p) => result.binding = Some(Binding::PatchId),
                Ok(_) => {}
                Err(e) => result
                    .reasons
                    .push(format!("could not compute the patch id: {e}")),
            }
        }
    }
    if result.binding.is_none() {
        result.status = ProvenanceStatus::Stale;
        result.reasons.push(format!(
            "attests commit {} / tree {}, which is not this change (commit, tree and patch id all differ)",
            short(&session.proposed.commit),
            short(&session.proposed.tree)
        ));
        return result;
    }

    // The session's base must be an ancestor of what it proposes here.
    match git.is_ancestor(&session.base.commit, commit) {
        Ok(true) => {}
        Ok(false) => {
            result.status = ProvenanceStatus::Invalid;
            result.reasons.push(format!(
                "attested base {} is not an ancestor of {}",
                short(&session.base.commit),
                short(commit)
            ));
        }
        Err(e) => {
            result.status = ProvenanceStatus::Invalid;
            result.reasons.push(format!(
                "attested base {} cannot be checked: {e}",
                short(&session.base.commit)
            ));
        }
    }
    result
}

/// The best of several verifications of one commit (see [`ProvenanceStatus`]).
pub fn best(verifications: Vec<Verification>) -> Option<Verification> {
    verifications.into_iter().min_by_key(|v| v.status.rank())
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}
