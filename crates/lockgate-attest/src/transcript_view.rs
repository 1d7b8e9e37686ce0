//! A transcript as a reader sees it: one entry per step (who, what kind, which tool,
//! the text), for the web viewer. Reads the redacted bytes that were attested; never
//! fails on an unfamiliar entry (it is shown as compact JSON), and bounds what it keeps.

use crate::transcript::TranscriptFormat;
use serde::Serialize;
use serde_json::Value;

/// Most characters of text kept per step.
pub const MAX_STEP_TEXT: usize = 4000;
/// Most steps kept.
pub const MAX_STEPS: usize = 5000;

/// One step of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ViewStep {
    /// 1-based line of the transcript the step came from.
    pub line: usize,
    /// `user`, `assistant`, `tool`, `system`, … as the format names it.
    pub role: String,
    /// `message`, `tool_call`, `tool_result`, `reasoning`, `prompt`, …
    pub kind: String,
    pub tool: Option<String>,
    /// The text, cut to [`MAX_STEP_TEXT`] characters.
    pub text: String,
    /// Whether `text` was cut.
    pub truncated: bool,
}

/// The steps of a transcript (lines that are not JSON, and entries that are not steps
/// of the session — metadata, summaries — are skipped).
pub fn view(bytes: &[u8], format: TranscriptFormat) -> Vec<ViewStep> {
    let mut steps = Vec::new();
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        if steps.len() >= MAX_STEPS {
            break;
        }
        let Ok(v) = serde_json::from_slice::<Value>(raw) else {
            continue;
        };
        let line = index + 1;
        match format {
            TranscriptFormat::LockgateSteps => steps.push(lockgate_step(line, &v)),
            TranscriptFormat::ClaudeCode => claude_entry(line, &v, &mut steps),
            TranscriptFormat::CodexRollout => codex_entry(line, &v, &mut steps),
        }
    }
    steps.truncate(MAX_STEPS);
    steps
}

fn step(line: usize, role: &str, kind: &str, tool: Option<&str>, text: &str) -> ViewStep {
    let mut cut: String = text.chars().take(MAX_STEP_TEXT).collect();
    let truncated = cut.len() < text.len();
    if truncated {
        cut.push('…');
    }
    ViewStep {
        line,
        role: role.into(),
        kind: kind.into(),
        tool: tool.map(str::to_string),
        text: cut,
        truncated,
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// Text of a value: a string as is, anything else as compact JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn lockgate_step(line: usize, v: &Value) -> ViewStep {
    let mut text = str_at(v, "/text").map(str::to_string).unwrap_or_default();
    if let Some(files) = v.get("files_written").and_then(Value::as_array) {
        let names: Vec<&str> = files.iter().filter_map(Value::as_str).collect();
        if !names.is_empty() {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!("wrote {}", names.join(", ")));
        }
    }
    step(
        line,
        str_at(v, "/role").unwrap_or("agent"),
        str_at(v, "/kind").unwrap_or("step"),
        str_at(v, "/tool"),
        &text,
    )
}

/// Claude Code: a `user` or `assistant` entry holds a message whose content is a string
/// or a list of blocks (`text`, `thinking`, `tool_use`, `tool_result`); each block is a step.
fn claude_entry(line: usize, v: &Value, steps: &mut Vec<ViewStep>) {
    let role = str_at(v, "/type").unwrap_or_default();
    if role != "user" && role != "assistant" {
        return;
    }
    match v.pointer("/message/content") {
        Some(Value::String(s)) => steps.push(step(line, role, "message", None, s)),
        Some(Value::Array(blocks)) => {
            for b in blocks {
                let s = match str_at(b, "/type").unwrap_or_default() {
                    "text" => step(
                        line,
                        role,
                        "message",
                        None,
                        str_at(b, "/text").unwrap_or(""),
                    ),
                    "thinking" => step(
                        line,
                        role,
                        "reasoning",
                        None,
                        str_at(b, "/thinking").unwrap_or(""),
                    ),
                    "tool_use" => step(
                        line,
                        role,
                        "tool_call",
                        str_at(b, "/name"),
                        &text_of(b.get("input").unwrap_or(&Value::Null)),
                    ),
                    "tool_result" => step(
                        line,
                        "tool",
                        "tool_result",
                        None,
                        &tool_result_text(b.get("content").unwrap_or(&Value::Null)),
                    ),
                    other => step(line, role, other, None, &b.to_string()),
                };
                steps.push(s);
            }
        }
        _ => {}
    }
}

/// A tool result's content: a string, or text blocks.
fn tool_result_text(content: &Value) -> String {
    match content {
        Value::Array(parts) => parts
            .iter()
            .map(|p| {
                str_at(p, "/text")
                    .map(str::to_string)
                    .unwrap_or_else(|| p.to_string())
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => text_of(other),
    }
}

/// The `text` of each part of a list, one per line.
fn texts(parts: Option<&Value>) -> String {
    parts
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|c| str_at(c, "/text"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// Codex rollout: `response_item` payloads are messages (content parts with text),
/// reasoning, function/custom/shell calls and their outputs.
fn codex_entry(line: usize, v: &Value, steps: &mut Vec<ViewStep>) {
    if str_at(v, "/type") != Some("response_item") {
        return;
    }
    let p = v.get("payload").unwrap_or(&Value::Null);
    let s = match str_at(p, "/type").unwrap_or_default() {
        "message" => {
            let text = texts(p.get("content"));
            step(
                line,
                str_at(p, "/role").unwrap_or("assistant"),
                "message",
                None,
                &text,
            )
        }
        "reasoning" => {
            let text = texts(p.get("summary"));
            step(line, "assistant", "reasoning", None, &text)
        }
        "function_call" | "custom_tool_call" => step(
            line,
            "assistant",
            "tool_call",
            str_at(p, "/name"),
            &text_of(
                p.get("arguments")
                    .or_else(|| p.get("input"))
                    .unwrap_or(&Value::Null),
            ),
        ),
        "local_shell_call" => step(
            line,
            "assistant",
            "tool_call",
            Some("shell"),
            &text_of(p.pointer("/action/command").unwrap_or(&Value::Null)),
        ),
        "function_call_output" | "custom_tool_call_output" => step(
            line,
            "tool",
            "tool_result",
            None,
            &text_of(p.get("output").unwrap_or(&Value::Null)),
        ),
        other => step(line, "assistant", other, None, &p.to_string()),
    };
    steps.push(s);
}
