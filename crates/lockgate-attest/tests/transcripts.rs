//! Transcript importers on sessions in each supported format.

use lockgate_attest::predicate::sha256_set;
use lockgate_attest::transcript::{TranscriptFormat, agent_trace_digest, detect, import};
use lockgate_core::secrets::{SecretScanner, SecretSettings};

fn data(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn scanner() -> SecretScanner {
    SecretScanner::new(&SecretSettings::default()).unwrap()
}

#[test]
fn claude_code_session() {
    let bytes = data("transcripts/claude-code-session.jsonl");
    assert_eq!(detect(&bytes), Ok(TranscriptFormat::ClaudeCode));
    let t = import(&bytes, TranscriptFormat::ClaudeCode, &scanner()).unwrap();
    let s = &t.summary;
    assert_eq!(s.format, "claude-code-jsonl");
    assert_eq!(
        s.steps, 7,
        "user and assistant entries; the summary line is not a step"
    );
    assert_eq!(s.tool_calls, 4);
    assert_eq!(
        (
            s.tools["Read"],
            s.tools["Edit"],
            s.tools["Write"],
            s.tools["Bash"]
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(
        s.files_touched,
        ["src/auth/login.py", "tests/test_login.py"],
        "relative to cwd; reads are not writes"
    );
    assert_eq!(s.models, ["claude-sonnet-4-5-20250929"]);
    assert_eq!(s.redactions, 1, "the database password in the Bash command");
    let kept = String::from_utf8(t.redacted.clone()).unwrap();
    assert!(!kept.contains("Zr8q2LxT9wVb7Nk3"));
    assert_eq!(s.digest, sha256_set(&t.redacted));
    assert_ne!(
        s.digest,
        sha256_set(&bytes),
        "the digest is over the redacted text"
    );
}

#[test]
fn codex_rollout() {
    let bytes = data("transcripts/codex-rollout.jsonl");
    assert_eq!(detect(&bytes), Ok(TranscriptFormat::CodexRollout));
    let t = import(&bytes, TranscriptFormat::CodexRollout, &scanner()).unwrap();
    let s = &t.summary;
    assert_eq!(s.tool_calls, 2);
    assert_eq!((s.tools["shell"], s.tools["apply_patch"]), (1, 1));
    assert_eq!(s.files_touched, ["config/retry.yaml", "docs/retry.md"]);
    assert_eq!(s.models, ["gpt-5-codex"]);
    assert_eq!(s.redactions, 0);
}

#[test]
fn lockgate_steps() {
    let bytes = data("transcripts/steps.jsonl");
    let t = import(&bytes, detect(&bytes).unwrap(), &scanner()).unwrap();
    assert_eq!(t.summary.steps, 6);
    assert_eq!(t.summary.tool_calls, 4);
    assert_eq!(
        t.summary.files_touched,
        ["src/api/orders.rs", "tests/orders_test.rs"]
    );
    // Unchanged input hashes to the digest of its own bytes.
    assert_eq!(t.summary.digest, sha256_set(&bytes));
}

#[test]
fn agent_trace_spec_example() {
    let bytes = data("agent-trace/example-record.json");
    assert_eq!(agent_trace_digest(&bytes).unwrap(), sha256_set(&bytes));
}

#[test]
fn viewer_shows_each_format_step_by_step() {
    use lockgate_attest::transcript_view::view;
    let steps = view(
        &data("transcripts/steps.jsonl"),
        TranscriptFormat::LockgateSteps,
    );
    assert_eq!(steps.len(), 6);
    assert_eq!(
        (
            steps[0].role.as_str(),
            steps[0].kind.as_str(),
            steps[0].text.as_str()
        ),
        ("user", "prompt", "Add pagination to GET /orders")
    );
    assert_eq!(steps[2].tool.as_deref(), Some("edit"));
    assert_eq!(steps[2].text, "wrote src/api/orders.rs");

    let claude = view(
        &data("transcripts/claude-code-session.jsonl"),
        TranscriptFormat::ClaudeCode,
    );
    let calls: Vec<&str> = claude.iter().filter_map(|s| s.tool.as_deref()).collect();
    assert_eq!(
        calls,
        ["Read", "Edit", "Write", "Bash"],
        "tool calls in order"
    );
    assert!(claude.iter().any(|s| s.kind == "tool_result"));
    assert!(
        claude
            .iter()
            .any(|s| s.role == "user" && s.kind == "message")
    );

    let codex = view(
        &data("transcripts/codex-rollout.jsonl"),
        TranscriptFormat::CodexRollout,
    );
    assert!(codex.iter().any(|s| s.kind == "tool_call"));
    assert!(
        codex
            .iter()
            .any(|s| s.kind == "message" && !s.text.is_empty())
    );
}

#[test]
fn viewer_bounds_text_and_skips_garbage() {
    use lockgate_attest::transcript_view::{MAX_STEP_TEXT, view};
    let long = "x".repeat(MAX_STEP_TEXT * 3);
    let bytes = format!(
        "not json\n{{\"step\":1,\"kind\":\"message\",\"role\":\"assistant\",\"text\":\"{long}\"}}\n"
    );
    let steps = view(bytes.as_bytes(), TranscriptFormat::LockgateSteps);
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].line, 2);
    assert!(steps[0].truncated);
    assert_eq!(steps[0].text.chars().count(), MAX_STEP_TEXT + 1);
}
