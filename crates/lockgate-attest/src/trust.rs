//! Trust roots: which keys may speak for which agents, when, and which are revoked.
//!
//! ```toml
//! # .lockgate/trust.toml
//! [[key]]
//! name = "claude-ci"                 # a label for people and output
//! agents = ["claude-code"]           # agent names this key may sign for ("*": any)
//! public_key = """
//! -----BEGIN PUBLIC KEY-----
//! MCowBQYDK2VwAyEA…
//! -----END PUBLIC KEY-----
//! """                                # or: path = "keys/claude-ci.pub" (relative to this file)
//! not_before = "2026-01-01T00:00:00Z" # optional validity window (RFC 3339)
//! not_after = "2027-01-01T00:00:00Z"
//! revoked = false                     # a revoked key's signatures report `revoked`
//!
//! [[log]]                             # a transparency log whose inclusion proofs count
//! name = "agents-log"
//! key = "lockgate.example.com/agents+1a2b3c4d+AZ…"   # its checkpoint verifier key
//! required = true                     # attestations must be logged here to be valid
//! ```

use crate::keys::PublicKey;
use lockgate_log::checkpoint::LogVerifyingKey;
use serde::Deserialize;

/// One trusted key as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub name: String,
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub public_key: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub not_before: Option<String>,
    #[serde(default)]
    pub not_after: Option<String>,
    #[serde(default)]
    pub revoked: bool,
}

/// One trusted transparency log as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    pub name: String,
    /// The checkpoint verifier key, Go note format (`<origin>+<hash>+<key>`).
    pub key: String,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    #[serde(default)]
    key: Vec<KeyEntry>,
    #[serde(default)]
    log: Vec<LogEntry>,
}

/// A loaded trusted transparency log.
#[derive(Clone)]
pub struct TrustedLog {
    pub name: String,
    pub key: LogVerifyingKey,
    /// Attestations not included in this log are not valid.
    pub required: bool,
}

impl std::fmt::Debug for TrustedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedLog")
            .field("name", &self.name)
            .field("key", &self.key.to_note_key())
            .field("required", &self.required)
            .finish()
    }
}

/// A loaded trusted key.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub name: String,
    pub key: PublicKey,
    pub agents: Vec<String>,
    /// Seconds since the epoch, inclusive bounds.
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub revoked: bool,
}

impl TrustedKey {
    /// Whether this key may sign for `agent`.
    pub fn allows_agent(&self, agent: &str) -> bool {
        self.agents.iter().any(|a| a == "*" || a == agent)
    }

    /// Whether `now` is inside the validity window.
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before.is_none_or(|t| now >= t) && self.not_after.is_none_or(|t| now <= t)
    }
}

/// All trusted keys.
#[derive(Debug, Clone, Default)]
pub struct TrustRoot {
    pub keys: Vec<TrustedKey>,
    pub logs: Vec<TrustedLog>,
    /// The same keys' public halves, in order, for signature checks.
    public: Vec<PublicKey>,
}

/// The trust root file is invalid.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrustError(pub String);

impl TrustRoot {
    /// Parses trust-root TOML. `read_key_file` loads `path = …` entries (relative to the
    /// trust file; the caller decides where from — a local directory or a git revision).
    pub fn from_toml(
        text: &str,
        read_key_file: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<TrustRoot, TrustError> {
        let file: TrustFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            TrustError(match line {
                Some(l) => format!("line {l}: {}", e.message()),
                None => e.message().to_string(),
            })
        })?;
        let mut keys = Vec::new();
        for entry in file.key {
            let pem = match (&entry.public_key, &entry.path) {
                (Some(pem), None) => pem.clone(),
                (None, Some(path)) => read_key_file(path)
                    .map_err(|e| TrustError(format!("key {:?}: {e}", entry.name)))?,
                _ => {
                    return Err(TrustError(format!(
                        "key {:?}: give exactly one of public_key or path",
                        entry.name
                    )));
                }
            };
            let key = PublicKey::from_pem(&pem)
                .map_err(|e| TrustError(format!("key {:?}: {e}", entry.name)))?;
            if entry.agents.is_empty() {
                return Err(TrustError(format!(
                    "key {:?}: list the agents it may sign for (agents = [\"claude-code\"], or \"*\")",
                    entry.name
                )));
            }
            let time = |t: &Option<String>, field: &str| -> Result<Option<i64>, TrustError> {
                t.as_deref()
                    .map(|s| {
                        parse_rfc3339(s).ok_or_else(|| {
                            TrustError(format!(
                                "key {:?}: {field} {s:?} is not an RFC 3339 time",
                                entry.name
                            ))
                        })
                    })
                    .transpose()
            };
            keys.push(TrustedKey {
                not_before: time(&entry.not_before, "not_before")?,
                not_after: time(&entry.not_after, "not_after")?,
                name: entry.name,
                key,
                agents: entry.agents,
                revoked: entry.revoked,
            });
        }
        let mut logs = Vec::new();
        for entry in file.log {
            let key = LogVerifyingKey::parse(&entry.key)
                .map_err(|e| TrustError(format!("log {:?}: {e}", entry.name)))?;
            logs.push(TrustedLog {
                name: entry.name,
                key,
                required: entry.required,
            });
        }
        let public = keys.iter().map(|k| k.key.clone()).collect();
        Ok(TrustRoot { keys, logs, public })
    }

    /// Keys, for signature checks.
    pub fn public_keys(&self) -> &[PublicKey] {
        &self.public
    }

    /// The entry for a key id.
    pub fn by_key_id(&self, key_id: &str) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.key.key_id_str() == key_id)
    }
}

/// Parses an RFC 3339 time to seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp())
}

/// Formats seconds since the epoch as RFC 3339 UTC (`2026-11-28T06:00:00Z`).
pub fn format_rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyAlgorithm, PrivateKey};

    #[test]
    fn parses_inline_and_path_keys_with_windows() {
        let a = PrivateKey::generate(KeyAlgorithm::Ed25519).public_key();
        let b = PrivateKey::generate(KeyAlgorithm::EcdsaP256).public_key();
        let text = format!(
            "[[key]]\nname = \"a\"\nagents = [\"claude-code\"]\npublic_key = '''\n{}'''\nnot_after = \"2027-01-01T00:00:00Z\"\n\n[[key]]\nname = \"b\"\nagents = [\"*\"]\npath = \"keys/b.pub\"\nrevoked = true\n",
            a.to_pem()
        );
        let b_pem = b.to_pem();
        let root = TrustRoot::from_toml(&text, &|p| {
            assert_eq!(p, "keys/b.pub");
            Ok(b_pem.clone())
        })
        .unwrap();
        assert_eq!(root.keys.len(), 2);
        let ka = root.by_key_id(&a.key_id()).unwrap();
        assert!(ka.allows_agent("claude-code") && !ka.allows_agent("codex"));
        assert!(ka.valid_at(parse_rfc3339("2026-06-01T00:00:00Z").unwrap()));
        assert!(!ka.valid_at(parse_rfc3339("2027-06-01T00:00:00Z").unwrap()));
        let kb = root.by_key_id(&b.key_id()).unwrap();
        assert!(kb.revoked && kb.allows_agent("anything"));
    }

    #[test]
    fn errors_are_specific() {
        let none = |_: &str| -> Result<String, String> { Err("no files".into()) };
        assert!(
            TrustRoot::from_toml("[[key]]\nname = \"x\"\nagents = [\"a\"]\n", &none)
                .unwrap_err()
                .0
                .contains("exactly one of")
        );
        assert!(
            TrustRoot::from_toml("[[key]]\nname = \"x\"\nbogus = 1\n", &none)
                .unwrap_err()
                .0
                .starts_with("line 3")
        );
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
