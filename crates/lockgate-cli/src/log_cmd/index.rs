//! The search index: one JSON line per log entry (`DIR/index.jsonl`), with the commits,
//! agent and signing key ids the entry names. It is derived from the entries and never
//! part of what the log proves: it finds entries; proofs and signatures decide.
//!
//! The index is written after each published batch. It can lag the checkpoint (a crash
//! between the two), so readers describe the missing tail straight from the log, and
//! the writer appends it the next time it holds the lock.

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lockgate_attest::dsse::Envelope;
use lockgate_attest::predicate::{AGENT_SESSION_V1, SUBJECT_COMMIT};
use lockgate_log::storage::Storage;
use lockgate_log::tiles::{TILE_WIDTH, bundle_path, decode_bundle, tile_width};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// What one entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexLine {
    pub index: u64,
    /// Hex SHA-256 of the entry bytes.
    pub sha256: String,
    /// `dsse` for a DSSE envelope, `raw` for anything else.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commits: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Key ids as the envelope's signatures name them (unauthenticated hints).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
}

/// Describes one entry.
pub fn describe(index: u64, entry: &[u8]) -> IndexLine {
    let mut line = IndexLine {
        index,
        sha256: hex::encode(Sha256::digest(entry)),
        kind: "raw".into(),
        commits: Vec::new(),
        agent: None,
        keys: Vec::new(),
    };
    let Ok(envelope) = Envelope::from_json(entry) else {
        return line;
    };
    line.kind = "dsse".into();
    line.keys = envelope
        .signatures
        .iter()
        .filter(|s| !s.keyid.is_empty())
        .map(|s| s.keyid.clone())
        .collect();
    let Ok(payload) = STANDARD.decode(&envelope.payload) else {
        return line;
    };
    #[derive(Deserialize)]
    struct Statement {
        #[serde(default)]
        subject: Vec<lockgate_attest::intoto::ResourceDescriptor>,
        #[serde(rename = "predicateType", default)]
        predicate_type: String,
        #[serde(default)]
        predicate: serde_json::Value,
    }
    if let Ok(statement) = serde_json::from_slice::<Statement>(&payload) {
        line.commits = statement
            .subject
            .iter()
            .filter(|s| s.name == SUBJECT_COMMIT)
            .filter_map(|s| s.digest.get("gitCommit").cloned())
            .collect();
        if statement.predicate_type == AGENT_SESSION_V1 {
            line.agent = statement.predicate["agent"]["name"]
                .as_str()
                .map(String::from);
        }
    }
    line
}

/// Reads the index file. A trailing partial line (a crash mid-write) is ignored; a
/// line out of sequence means the file is damaged: rebuild it by deleting it.
pub fn load(path: &Path) -> Result<Vec<IndexLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut lines = Vec::new();
    for (n, raw) in complete.lines().enumerate() {
        let line: IndexLine = serde_json::from_str(raw)
            .with_context(|| format!("{} line {}", path.display(), n + 1))?;
        if line.index != n as u64 {
            bail!(
                "{} line {} is for entry {}: the index is damaged (delete it to rebuild)",
                path.display(),
                n + 1,
                line.index
            );
        }
        lines.push(line);
    }
    Ok(lines)
}

/// Describes entries `from..size` straight from the log.
pub fn describe_range(storage: &dyn Storage, from: u64, size: u64) -> Result<Vec<IndexLine>> {
    let mut out = Vec::new();
    let mut next = from;
    while next < size {
        let bundle = next / TILE_WIDTH;
        let width = tile_width(0, bundle, size);
        let path = bundle_path(bundle, width);
        let bytes = storage
            .read(&path)?
            .with_context(|| format!("{path} is missing"))?;
        let entries = decode_bundle(&bytes).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        for (i, entry) in entries.iter().enumerate() {
            let index = bundle * TILE_WIDTH + i as u64;
            if index >= next && index < size {
                out.push(describe(index, entry));
            }
        }
        next = (bundle + 1) * TILE_WIDTH;
    }
    Ok(out)
}

/// Appends lines to the index file (the caller holds the writer lock). Rewrites away
/// a trailing partial line first.
pub fn append(path: &Path, lines: &[IndexLine]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    if let Ok(text) = std::fs::read(path)
        && !text.is_empty()
        && !text.ends_with(b"\n")
    {
        let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        std::fs::write(path, &text[..keep])
            .with_context(|| format!("repairing {}", path.display()))?;
    }
    let mut text = String::new();
    for line in lines {
        text.push_str(&serde_json::to_string(line)?);
        text.push('\n');
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Brings the index up to `size` entries; returns every line.
pub fn catch_up(
    path: &Path,
    storage: &dyn Storage,
    size: u64,
    persist: bool,
) -> Result<Vec<IndexLine>> {
    let mut lines = load(path)?;
    if lines.len() as u64 > size {
        bail!(
            "{} has {} entries but the log only {size}: the index is not this log's (delete it to rebuild)",
            path.display(),
            lines.len()
        );
    }
    let tail = describe_range(storage, lines.len() as u64, size)?;
    if persist {
        append(path, &tail)?;
    }
    lines.extend(tail);
    Ok(lines)
}

/// What to look for; every given field must match.
#[derive(Debug, Default)]
pub struct Query {
    /// A commit id or a prefix of at least 7 hex digits.
    pub commit: Option<String>,
    pub agent: Option<String>,
    pub key: Option<String>,
}

impl Query {
    pub fn matches(&self, line: &IndexLine) -> bool {
        self.commit.as_ref().is_none_or(|c| {
            let c = c.to_ascii_lowercase();
            line.commits.iter().any(|x| x.starts_with(&c))
        }) && self
            .agent
            .as_ref()
            .is_none_or(|a| line.agent.as_deref() == Some(a.as_str()))
            && self
                .key
                .as_ref()
                .is_none_or(|k| line.keys.iter().any(|x| x == k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockgate_log::storage::MemStorage;
    use lockgate_log::tiles::encode_bundle;

    #[test]
    fn describes_envelopes_and_raw_entries() {
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [
                {"name": "git+commit", "digest": {"gitCommit": "abcdef0123456789abcdef0123456789abcdef01"}},
                {"name": "git+tree", "digest": {"gitTree": "1111111111111111111111111111111111111111"}}
            ],
            "predicateType": AGENT_SESSION_V1,
            "predicate": {"agent": {"name": "claude-code"}}
        });
        let envelope = serde_json::json!({
            "payload": STANDARD.encode(statement.to_string()),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"keyid": "k1", "sig": "AAAA"}]
        });
        let line = describe(3, envelope.to_string().as_bytes());
        assert_eq!(line.kind, "dsse");
        assert_eq!(line.commits, ["abcdef0123456789abcdef0123456789abcdef01"]);
        assert_eq!(line.agent.as_deref(), Some("claude-code"));
        assert_eq!(line.keys, ["k1"]);
        let q = Query {
            commit: Some("ABCDEF0".into()),
            ..Query::default()
        };
        assert!(q.matches(&line));
        let q = Query {
            commit: Some("abcdef0".into()),
            agent: Some("codex".into()),
            key: None,
        };
        assert!(!q.matches(&line));
        let raw = describe(0, b"hello");
        assert_eq!(raw.kind, "raw");
        assert!(raw.commits.is_empty() && raw.agent.is_none());
    }

    #[test]
    fn load_skips_partial_tail_and_catch_up_fills_the_gap() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("index.jsonl");
        let storage = MemStorage::default();
        let entries: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'a' + i]).collect();
        for width in 1..=5 {
            let bundle = encode_bundle(&entries[..width]);
            storage
                .write(&bundle_path(0, width as u64), &bundle)
                .unwrap();
        }
        let first = describe_range(&storage, 0, 2).unwrap();
        append(&path, &first).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"index\":2,\"sha")
            .unwrap();
        assert_eq!(load(&path).unwrap().len(), 2);
        let all = catch_up(&path, &storage, 5, true).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(load(&path).unwrap(), all);
        assert!(catch_up(&path, &storage, 4, false).is_err());
    }
}
