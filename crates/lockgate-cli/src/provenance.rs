//! Finding and verifying attestations in a repository: notes on commits and trees,
//! bundle files, and (when nothing else matches) a bounded search by patch id.

use anyhow::{Context, Result};
use lockgate_attest::bundle::Bundle;
use lockgate_attest::intoto::Statement;
use lockgate_attest::predicate::AgentSession;
use lockgate_attest::trust::TrustRoot;
use lockgate_attest::verify::{GitFacts, Verification, best, verify_bundle};
use lockgate_core::agents::AuthorKind;
use lockgate_core::change::Commit;
use lockgate_core::provenance::{
    CommitProvenance, ProvenanceFacts, ProvenanceStatus, TranscriptFacts,
};
use lockgate_git::Repo;

/// Trust root location in a repository (read from the base revision by `check`).
pub const TRUST_FILE: &str = ".lockgate/trust.toml";
const MAX_TRUST_BYTES: u64 = 1024 * 1024;

/// Git facts from a real repository.
pub struct RepoFacts<'a>(pub &'a Repo);

impl GitFacts for RepoFacts<'_> {
    fn tree_of(&self, commit: &str) -> Result<String, String> {
        self.0.tree_of(commit).map_err(|e| e.to_string())
    }

    fn patch_id_of(&self, commit: &str) -> Result<Option<String>, String> {
        match self.0.first_parent(commit).map_err(|e| e.to_string())? {
            Some(parent) => self.0.patch_id(&parent, commit).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, String> {
        self.0
            .is_ancestor(ancestor, descendant)
            .map_err(|e| e.to_string())
    }
}

/// Reads the trust root at `rev` (key `path`s are relative to `.lockgate/`). `None`
/// when the file does not exist there.
pub fn trust_root_at(repo: &Repo, rev: &str) -> Result<Option<TrustRoot>> {
    let Some(bytes) = repo.read_file_at(rev, TRUST_FILE, MAX_TRUST_BYTES)? else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).context("trust root is not UTF-8")?;
    let read = |path: &str| -> Result<String, String> {
        let full = format!(".lockgate/{}", path.trim_start_matches("./"));
        repo.read_file_at(rev, &full, MAX_TRUST_BYTES)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{full} does not exist at the base revision"))
            .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()))
    };
    TrustRoot::from_toml(&text, &read)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("invalid trust root {TRUST_FILE}: {e}"))
}

/// Reads a trust root file from disk (key `path`s relative to the file).
pub fn trust_root_file(path: &std::path::Path) -> Result<TrustRoot> {
    let text = crate::sources::read_local(path, MAX_TRUST_BYTES)?;
    let dir = path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let read = |p: &str| -> Result<String, String> {
        crate::sources::read_local(&dir.join(p), MAX_TRUST_BYTES).map_err(|e| format!("{e:#}"))
    };
    TrustRoot::from_toml(&text, &read)
        .map_err(|e| anyhow::anyhow!("invalid trust root {}: {e}", path.display()))
}

/// Bundles (one JSON per line) in the notes on `commit` and on its tree.
pub fn noted_bundles(repo: &Repo, commit: &str) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let tree = repo.tree_of(commit)?;
    for object in [commit, tree.as_str()] {
        if let Some(note) = repo.read_note(object)? {
            for line in note.split(|b| *b == b'\n') {
                let line = line.trim_ascii();
                if !line.is_empty() && !out.iter().any(|b: &Vec<u8>| b == line) {
                    out.push(line.to_vec());
                }
            }
        }
    }
    Ok(out)
}

/// Bundles anywhere in the notes whose (unverified) statement proposes `patch_id`.
/// Only a hint for where to look: every candidate is then fully verified.
pub fn bundles_by_patch_id(repo: &Repo, patch_id: &str) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for (_, note) in repo.all_notes()? {
        for line in note.split(|b| *b == b'\n') {
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let proposed = Bundle::from_json(line)
                .ok()
                .and_then(|b| b.dsse_envelope)
                .and_then(|e| e.payload_unverified().ok())
                .and_then(|p| serde_json::from_slice::<Statement>(&p).ok())
                .and_then(|s| AgentSession::from_statement(&s).ok())
                .and_then(|s| s.proposed.patch_id);
            if proposed.as_deref() == Some(patch_id) && !out.iter().any(|b: &Vec<u8>| b == line) {
                out.push(line.to_vec());
            }
        }
    }
    Ok(out)
}

/// Verifies every attestation found for `commit`: notes, extra bundles, and (only if
/// `search_by_patch` and none of those is valid) a search of all notes by patch id.
pub fn verify_commit(
    repo: &Repo,
    commit: &str,
    extra: &[Vec<u8>],
    trust: &TrustRoot,
    now: i64,
    search_by_patch: bool,
) -> Result<Vec<Verification>> {
    let facts = RepoFacts(repo);
    let mut bundles = noted_bundles(repo, commit)?;
    bundles.extend(extra.iter().cloned());
    let mut results: Vec<Verification> = bundles
        .iter()
        .map(|b| verify_bundle(b, trust, commit, &facts, now))
        .collect();
    if search_by_patch
        && repo.has_notes()?
        && !results.iter().any(|r| r.status == ProvenanceStatus::Valid)
        && let Ok(Some(patch)) = facts.patch_id_of(commit)
    {
        for b in bundles_by_patch_id(repo, &patch)? {
            if !bundles.contains(&b) {
                results.push(verify_bundle(&b, trust, commit, &facts, now));
            }
        }
    }
    Ok(results)
}

/// Provenance for every agent commit of a change. `authorship` pairs each commit with
/// who wrote it; commits are newest first.
pub fn collect(
    repo: &Repo,
    commits: &[Commit],
    agent_commits: &[(String, Vec<String>)],
    trust: Option<&TrustRoot>,
    trust_source: Option<String>,
    now: i64,
) -> Result<ProvenanceFacts> {
    let mut facts = ProvenanceFacts {
        trust_root: trust_source,
        ..ProvenanceFacts::default()
    };
    if agent_commits.is_empty() {
        return Ok(facts);
    }
    let empty = TrustRoot::default();
    let trust = trust.unwrap_or(&empty);
    let git = RepoFacts(repo);

    // Verify what is attached to every commit of the range (newest first); a valid
    // attestation on M covers the agent commits that are ancestors of M.
    let mut per_commit: Vec<(String, Vec<Verification>)> = Vec::new();
    for (i, c) in commits.iter().enumerate() {
        // Only the newest commit is searched by patch id: a rebased or squashed head.
        let results = verify_commit(repo, &c.sha, &[], trust, now, i == 0)?;
        per_commit.push((c.sha.clone(), results));
    }
    for (sha, identities) in agent_commits {
        let covering = per_commit.iter().find_map(|(m, results)| {
            let valid = results
                .iter()
                .find(|r| r.status == ProvenanceStatus::Valid)?;
            git.is_ancestor(sha, m)
                .ok()
                .filter(|a| *a)
                .map(|_| (m, valid))
        });
        let (attested_by, verification) = match covering {
            Some((m, v)) => (Some(m.clone()), Some(v.clone())),
            None => {
                let own = per_commit
                    .iter()
                    .find(|(m, _)| m == sha)
                    .map(|(_, r)| r.clone())
                    .unwrap_or_default();
                (None, best(own))
            }
        };
        let mut entry = commit_provenance(sha, attested_by, verification);
        if let Some(agent) = &entry.agent {
            let matches = identities.iter().any(|i| i == agent);
            entry.agent_matches_commit = Some(matches);
            if !matches {
                entry.reasons.push(format!(
                    "attested agent {agent:?} is not the commit's identity ({})",
                    identities.join(", ")
                ));
            }
        }
        facts.commits.push(entry);
    }
    facts.summarize();
    Ok(facts)
}

/// The commits of `commits` whose authorship is an agent, with the identities found.
pub fn agent_commit_ids(
    commits: &[Commit],
    authorship: &[lockgate_core::agents::CommitAuthorship],
) -> Vec<(String, Vec<String>)> {
    commits
        .iter()
        .zip(authorship)
        .filter(|(_, a)| a.kind == AuthorKind::Agent)
        .map(|(c, a)| (c.sha.clone(), a.identities.clone()))
        .collect()
}

fn commit_provenance(
    sha: &str,
    attested_by: Option<String>,
    v: Option<Verification>,
) -> CommitProvenance {
    let Some(v) = v else {
        return CommitProvenance {
            commit: sha.to_string(),
            status: ProvenanceStatus::Missing,
            binding: None,
            attested_by: None,
            signer: None,
            agent: None,
            agent_matches_commit: None,
            model: None,
            prompt_digest: None,
            transcript: None,
            logged: None,
            reasons: vec![
                "no attestation found (notes on the commit or its tree, or by patch id)".into(),
            ],
        };
    };
    let session = v.session.as_ref();
    let prompt_digest = session.and_then(|s| {
        s.prompt
            .digest
            .as_ref()
            .or(s.prompt.salted_digest.as_ref())
            .and_then(|d| d.get("sha256"))
            .map(|h| format!("sha256:{h}"))
    });
    CommitProvenance {
        commit: sha.to_string(),
        status: v.status,
        binding: v.binding,
        attested_by,
        signer: v.signer.clone(),
        agent: session.map(|s| s.agent.name.clone()),
        agent_matches_commit: None,
        model: session.map(|s| format!("{}/{}", s.model.provider, s.model.id)),
        prompt_digest,
        transcript: session
            .and_then(|s| s.transcript.as_ref())
            .map(|t| TranscriptFacts {
                format: t.format.clone(),
                digest: t
                    .digest
                    .get("sha256")
                    .map(|h| format!("sha256:{h}"))
                    .unwrap_or_default(),
                steps: t.steps,
                tool_calls: t.tool_calls,
                files_touched: t.files_touched.len() as u32,
                redactions: t.redactions,
            }),
        logged: v.logged.clone(),
        reasons: v.reasons.clone(),
    }
}
