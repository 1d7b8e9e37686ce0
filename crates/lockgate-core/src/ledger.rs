//! The local ledger: what happened to each agent's earlier changes, one JSON object per
//! line. It feeds the `track_record` factor of the trust score until the server keeps
//! this history in its database.
//!
//! ```text
//! {"agent":"claude-code","outcome":"merged","commit":"3f1c…","time":"2026-11-02T10:00:00Z"}
//! {"agent":"claude-code","outcome":"reverted","commit":"3f1c…"}
//! {"agent":"codex","outcome":"rejected","note":"closed without merge"}
//! ```
//!
//! `agent` is the registry id (`lockgate defaults agents`); `outcome` is `merged`,
//! `reverted` or `rejected`; `commit`, `time` and `note` are optional. Blank lines and
//! lines starting with `#` are skipped. The ledger is read from a path the operator
//! names — never from the repository under check, where an agent could write it.

use crate::trust::TrackRecord;
use serde::Deserialize;
use std::collections::BTreeMap;

/// At most this many entries are read (a larger ledger is an error, not a truncation).
pub const MAX_ENTRIES: usize = 1_000_000;

/// What became of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Merged,
    Reverted,
    Rejected,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // commit, time and note are for people reading the ledger
struct Entry {
    agent: String,
    outcome: Outcome,
    #[serde(default)]
    commit: Option<String>,
    #[serde(default)]
    time: Option<serde_json::Value>,
    #[serde(default)]
    note: Option<String>,
}

/// A line of the ledger could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("more than {MAX_ENTRIES} entries")]
    TooLarge,
}

/// Track records per agent id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    records: BTreeMap<String, TrackRecord>,
}

impl Ledger {
    /// Parses the JSON-lines text of a ledger; any bad line is an error naming it.
    pub fn parse(text: &str) -> Result<Ledger, LedgerError> {
        let mut ledger = Ledger::default();
        let mut entries = 0usize;
        for (i, line) in text.lines().enumerate() {
            let line_text = line.trim();
            if line_text.is_empty() || line_text.starts_with('#') {
                continue;
            }
            entries += 1;
            if entries > MAX_ENTRIES {
                return Err(LedgerError::TooLarge);
            }
            let entry: Entry = serde_json::from_str(line_text).map_err(|e| LedgerError::Line {
                line: i + 1,
                message: e.to_string(),
            })?;
            if entry.agent.trim().is_empty() {
                return Err(LedgerError::Line {
                    line: i + 1,
                    message: "`agent` is empty".into(),
                });
            }
            let record = ledger.records.entry(entry.agent).or_default();
            match entry.outcome {
                Outcome::Merged => record.merged += 1,
                Outcome::Reverted => record.reverted += 1,
                Outcome::Rejected => record.rejected += 1,
            }
        }
        Ok(ledger)
    }

    /// The combined record of these agents (a change several agents wrote answers for
    /// all of their histories). `None` when the ledger knows none of them.
    pub fn record_of<'a>(&self, agents: impl IntoIterator<Item = &'a str>) -> Option<TrackRecord> {
        let mut total: Option<TrackRecord> = None;
        for agent in agents {
            if let Some(r) = self.records.get(agent) {
                let t = total.get_or_insert_with(TrackRecord::default);
                t.merged += r.merged;
                t.reverted += r.reverted;
                t.rejected += r.rejected;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_outcomes_per_agent() {
        let ledger = Ledger::parse(
            "# history\n\
             {\"agent\":\"codex\",\"outcome\":\"merged\",\"commit\":\"abc\",\"time\":\"2026-11-01T00:00:00Z\"}\n\
             \n\
             {\"agent\":\"codex\",\"outcome\":\"reverted\"}\n\
             {\"agent\":\"devin\",\"outcome\":\"rejected\",\"note\":\"closed\"}\n",
        )
        .unwrap();
        assert_eq!(
            ledger.record_of(["codex"]),
            Some(TrackRecord {
                merged: 1,
                reverted: 1,
                rejected: 0
            })
        );
        assert_eq!(ledger.record_of(["codex", "devin"]).unwrap().rejected, 1);
        assert_eq!(ledger.record_of(["claude-code"]), None);
    }

    #[test]
    fn bad_lines_are_errors_with_their_number() {
        let e = Ledger::parse(
            "{\"agent\":\"a\",\"outcome\":\"merged\"}\n{\"agent\":\"a\",\"outcome\":\"liked\"}\n",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("line 2:"), "{e}");
        let e =
            Ledger::parse("{\"agent\":\"a\",\"outcome\":\"merged\",\"score\":100}\n").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        assert!(Ledger::parse("not json\n").is_err());
        assert!(Ledger::parse("{\"agent\":\" \",\"outcome\":\"merged\"}").is_err());
    }
}
