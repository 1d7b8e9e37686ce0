//! Session transcripts: redacted, hashed and summarized.
//!
//! Formats (see docs/provenance.md):
//! - `lockgate-steps-v1`: Lockgate's generic JSONL, one step per line;
//! - `claude-code-jsonl`: Claude Code's session files (`~/.claude/projects/*/<id>.jsonl`);
//! - `codex-rollout-jsonl`: OpenAI Codex CLI rollout files (`~/.codex/sessions/…`).
//!
//! Every line is run through the secret scanner first; found secrets are replaced in
//! the text before it is hashed or stored, and the count is recorded. The digest is
//! over the redacted bytes, so the transcript that is kept is the one that is attested.

use crate::predicate::{DigestSet, TranscriptSummary, sha256_set};
use lockgate_core::secrets::SecretScanner;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Largest transcript accepted.
pub const MAX_TRANSCRIPT_BYTES: usize = 512 * 1024 * 1024;
/// Largest single line accepted.
pub const MAX_LINE_BYTES: usize = 32 * 1024 * 1024;
/// Most touched files listed in a summary.
pub const MAX_FILES_TOUCHED: usize = 1000;

/// Transcript formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptFormat {
    LockgateSteps,
    ClaudeCode,
    CodexRollout,
}

impl TranscriptFormat {
    /// The name recorded in the predicate and accepted on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            TranscriptFormat::LockgateSteps => "lockgate-steps-v1",
            TranscriptFormat::ClaudeCode => "claude-code-jsonl",
            TranscriptFormat::CodexRollout => "codex-rollout-jsonl",
        }
    }

    /// Parses a format name (`auto` is handled by the caller).
    pub fn parse(name: &str) -> Option<TranscriptFormat> {
        [
            TranscriptFormat::LockgateSteps,
            TranscriptFormat::ClaudeCode,
            TranscriptFormat::CodexRollout,
        ]
        .into_iter()
        .find(|f| f.as_str() == name)
    }
}

/// A transcript could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranscriptError {
    #[error("transcript is {0} bytes, more than the {MAX_TRANSCRIPT_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("transcript line {0} is longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong(usize),
    #[error("transcript line {line} is not valid JSON: {message}")]
    Json { line: usize, message: String },
    #[error("transcript is empty")]
    Empty,
    #[error("cannot tell the transcript format; pass --transcript-format")]
    UnknownFormat,
}

/// A redacted transcript and its summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub summary: TranscriptSummary,
    /// The redacted bytes that `summary.digest` covers.
    pub redacted: Vec<u8>,
}

/// Detects the format from the first JSON line.
pub fn detect(bytes: &[u8]) -> Result<TranscriptFormat, TranscriptError> {
    let first = bytes
        .split(|b| *b == b'\n')
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))
        .ok_or(TranscriptError::Empty)?;
    let v: Value = serde_json::from_slice(first).map_err(|e| TranscriptError::Json {
        line: 1,
        message: e.to_string(),
    })?;
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
    if v.get("sessionId").is_some() || v.get("parentUuid").is_some() || v.get("message").is_some() {
        return Ok(TranscriptFormat::ClaudeCode);
    }
    if v.get("payload").is_some() || kind == "session_meta" {
        return Ok(TranscriptFormat::CodexRollout);
    }
    if v.get("kind").is_some() && v.get("step").is_some() {
        return Ok(TranscriptFormat::LockgateSteps);
    }
    Err(TranscriptError::UnknownFormat)
}

/// Redacts, hashes and summarizes a transcript.
pub fn import(
    bytes: &[u8],
    format: TranscriptFormat,
    scanner: &SecretScanner,
) -> Result<Transcript, TranscriptError> {
    if bytes.len() > MAX_TRANSCRIPT_BYTES {
        return Err(TranscriptError::TooLarge(bytes.len()));
    }
    let mut redacted = Vec::with_capacity(bytes.len());
    let mut summary = Summarizer::default();
    let mut redactions = 0u32;
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let number = index + 1;
        if raw.len() > MAX_LINE_BYTES {
            return Err(TranscriptError::LineTooLong(number));
        }
        let text = String::from_utf8_lossy(raw);
        let hits = scanner.scan_line("transcript", number as u32, &text).len() as u32;
        let line = if hits > 0 {
            redactions += hits;
            scanner.redact_line(&text)
        } else {
            text.into_owned()
        };
        if index > 0 {
            redacted.push(b'\n');
        }
        redacted.extend_from_slice(line.as_bytes());
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line).map_err(|e| TranscriptError::Json {
            line: number,
            message: e.to_string(),
        })?;
        match format {
            TranscriptFormat::LockgateSteps => summary.lockgate_step(&value),
            TranscriptFormat::ClaudeCode => summary.claude_entry(&value),
            TranscriptFormat::CodexRollout => summary.codex_entry(&value),
        }
    }
    if summary.steps == 0 {
        return Err(TranscriptError::Empty);
    }
    Ok(Transcript {
        summary: TranscriptSummary {
            format: format.as_str().into(),
            digest: sha256_set(&redacted),
            steps: summary.steps,
            tool_calls: summary.tool_calls,
            tools: summary.tools,
            files_touched: summary.files.into_iter().take(MAX_FILES_TOUCHED).collect(),
            models: summary.models.into_iter().take(32).collect(),
            redactions,
            agent_trace: Vec::new(),
        },
        redacted,
    })
}

#[derive(Default)]
struct Summarizer {
    steps: u32,
    tool_calls: u32,
    tools: BTreeMap<String, u32>,
    files: BTreeSet<String>,
    models: BTreeSet<String>,
    cwd: Option<String>,
}

impl Summarizer {
    fn tool(&mut self, name: &str) {
        self.tool_calls += 1;
        *self.tools.entry(name.to_string()).or_default() += 1;
    }

    fn file(&mut self, path: &str) {
        let relative = match &self.cwd {
            Some(cwd) => path
                .strip_prefix(cwd.as_str())
                .map(|p| p.trim_start_matches('/'))
                .unwrap_or(path),
            None => path,
        };
        if !relative.is_empty() && self.files.len() < MAX_FILES_TOUCHED * 2 {
            self.files.insert(relative.to_string());
        }
    }

    /// `{"step": n, "kind": "...", "tool": "...", "files_written": [...]}`.
    fn lockgate_step(&mut self, v: &Value) {
        self.steps += 1;
        if v.get("kind").and_then(Value::as_str) == Some("tool_call") {
            let tool = v.get("tool").and_then(Value::as_str).unwrap_or("unknown");
            self.tool(tool);
        }
        for f in v
            .get("files_written")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            self.file(f);
        }
    }

    /// Claude Code: `user`/`assistant` entries; tool calls are `tool_use` content blocks
    /// of assistant messages; Edit/Write/MultiEdit/NotebookEdit name the files written.
    fn claude_entry(&mut self, v: &Value) {
        if self.cwd.is_none() {
            self.cwd = v.get("cwd").and_then(Value::as_str).map(str::to_string);
        }
        let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind != "user" && kind != "assistant" {
            return;
        }
        self.steps += 1;
        if let Some(model) = v.pointer("/message/model").and_then(Value::as_str)
            && !model.starts_with('<')
        {
            self.models.insert(model.to_string());
        }
        let Some(blocks) = v.pointer("/message/content").and_then(Value::as_array) else {
            return;
        };
        for block in blocks {
            if block.get("type").and_then(Value::as_str) != Some("tool_use") {
                continue;
            }
            let name = block
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            self.tool(name);
            if matches!(name, "Edit" | "Write" | "MultiEdit" | "NotebookEdit") {
                for key in ["file_path", "notebook_path"] {
                    if let Some(p) = block
                        .pointer(&format!("/input/{key}"))
                        .and_then(Value::as_str)
                    {
                        self.file(p);
                    }
                }
            }
        }
    }

    /// Codex rollout: `response_item` entries; `function_call`/`custom_tool_call`
    /// payloads are tool calls; `apply_patch` inputs name the files written.
    fn codex_entry(&mut self, v: &Value) {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind == "session_meta" && self.cwd.is_none() {
            self.cwd = v
                .pointer("/payload/cwd")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if kind == "turn_context"
            && let Some(model) = v.pointer("/payload/model").and_then(Value::as_str)
        {
            self.models.insert(model.to_string());
        }
        if kind != "response_item" {
            return;
        }
        self.steps += 1;
        let payload = v.get("payload").unwrap_or(&Value::Null);
        let ptype = payload
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if ptype != "function_call" && ptype != "custom_tool_call" && ptype != "local_shell_call" {
            return;
        }
        let name =
            payload
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(if ptype == "local_shell_call" {
                    "shell"
                } else {
                    "unknown"
                });
        self.tool(name);
        let patch_text = payload
            .get("input")
            .and_then(Value::as_str)
            .or_else(|| payload.get("arguments").and_then(Value::as_str))
            .unwrap_or_default();
        if patch_text.contains("*** Begin Patch") {
            let text = patch_text.replace("\\n", "\n");
            for line in text.lines() {
                for prefix in [
                    "*** Add File: ",
                    "*** Update File: ",
                    "*** Delete File: ",
                    "*** Move to: ",
                ] {
                    if let Some(p) = line.trim().strip_prefix(prefix) {
                        self.file(p.trim().trim_end_matches(['"', '\\']));
                    }
                }
            }
        }
    }
}

/// An Agent Trace record (agent-trace.dev, v0.1): checked for its required fields and
/// hashed. Returns the digest of the record's bytes.
pub fn agent_trace_digest(bytes: &[u8]) -> Result<DigestSet, String> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON Agent Trace record: {e}"))?;
    for field in ["version", "id", "timestamp", "files"] {
        if v.get(field).is_none() {
            return Err(format!("Agent Trace record lacks required field {field:?}"));
        }
    }
    if !v["files"].is_array() {
        return Err("Agent Trace record: files must be an array".into());
    }
    Ok(sha256_set(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockgate_core::secrets::SecretSettings;

    fn scanner() -> SecretScanner {
        SecretScanner::new(&SecretSettings::default()).unwrap()
    }

    #[test]
    fn generic_steps_are_summarized_and_secrets_redacted() {
        let text = concat!(
            r#"{"step":1,"kind":"prompt","role":"user","text":"fix the bug"}"#,
            "\n",
            r#"{"step":2,"kind":"tool_call","tool":"bash","text":"export TOKEN=ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"}"#,
            "\n",
            r#"{"step":3,"kind":"tool_call","tool":"edit","files_written":["src/lib.rs"]}"#,
            "\n",
        );
        let t = import(text.as_bytes(), TranscriptFormat::LockgateSteps, &scanner()).unwrap();
        assert_eq!(t.summary.steps, 3);
        assert_eq!(t.summary.tool_calls, 2);
        assert_eq!(t.summary.tools["bash"], 1);
        assert_eq!(t.summary.files_touched, ["src/lib.rs"]);
        assert_eq!(t.summary.redactions, 1);
        let kept = String::from_utf8(t.redacted.clone()).unwrap();
        assert!(!kept.contains("ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"));
        assert_eq!(t.summary.digest, sha256_set(&t.redacted));
        assert_eq!(detect(text.as_bytes()), Ok(TranscriptFormat::LockgateSteps));
    }

    #[test]
    fn bad_input_is_rejected_with_the_line() {
        let err = import(
            b"{\"step\":1,\"kind\":\"x\"}\nnot json\n",
            TranscriptFormat::LockgateSteps,
            &scanner(),
        );
        assert!(matches!(err, Err(TranscriptError::Json { line: 2, .. })));
        assert_eq!(
            import(b"\n\n", TranscriptFormat::ClaudeCode, &scanner()),
            Err(TranscriptError::Empty)
        );
        assert_eq!(
            detect(b"{\"hello\":1}"),
            Err(TranscriptError::UnknownFormat)
        );
    }

    #[test]
    fn agent_trace_records_are_checked() {
        assert!(
            agent_trace_digest(br#"{"version":"0.1.0","id":"x","timestamp":"t","files":[]}"#)
                .is_ok()
        );
        assert!(agent_trace_digest(br#"{"version":"0.1.0"}"#).is_err());
    }
}
