//! The trust score and the evidence behind it as plain lines, shared by the text and
//! Markdown reports (Markdown escapes each line; nothing here is markup).

use lockgate_core::evidence::EvidenceFacts;
use lockgate_core::trust::TrustScore;

/// `71/100, fast band (matrix trust high)`.
pub(crate) fn headline(t: &TrustScore) -> String {
    format!(
        "{}/100, {} band (matrix trust {})",
        t.score,
        t.band.as_str(),
        t.matrix_trust.as_str()
    )
}

/// The plain-text trust section: headline, factor table, evidence lines.
pub(crate) fn text_section(t: &TrustScore, e: &EvidenceFacts, empty_hint: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "trust:    {}", headline(t));
    for (name, score, weight, detail) in factor_rows(t) {
        let _ = writeln!(out, "  {name:<13} {score:>3}  ×{weight:<3} {detail}");
    }
    let lines = evidence_lines(e);
    if !lines.is_empty() || empty_hint {
        let _ = writeln!(out, "\nevidence:");
    }
    if lines.is_empty() && empty_hint {
        let _ = writeln!(
            out,
            "  none given (--junit, --coverage, --sarif, --terraform-plan)"
        );
    }
    for line in lines {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// One row per factor: name, sub-score, weight, detail (with "not measured" marked).
pub(crate) fn factor_rows(t: &TrustScore) -> Vec<(String, u8, u32, String)> {
    t.factors
        .iter()
        .map(|f| {
            let detail = if f.measured {
                f.detail.clone()
            } else {
                format!("{} (not measured)", f.detail)
            };
            (f.name.clone(), f.score, f.weight, detail)
        })
        .collect()
}

/// One line per kind of evidence given, then lines for the details worth a look
/// (failures, new findings, uncovered lines, destructive or access changes).
pub(crate) fn evidence_lines(e: &EvidenceFacts) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(t) = &e.tests {
        let mut line = format!(
            "tests: {} run, {} passed, {} failed, {} errored, {} skipped",
            t.total, t.passed, t.failed, t.errored, t.skipped
        );
        if t.source_changed {
            line.push_str(if t.tests_changed {
                "; the change updates tests"
            } else {
                "; source changed without test changes"
            });
        }
        lines.push(line);
        for f in t.failures.iter().take(5) {
            lines.push(format!("  failed: {f}"));
        }
    }
    if let Some(c) = &e.coverage {
        let mut line = format!("coverage ({})", c.format);
        if let Some(h) = c.head {
            line.push_str(&format!(": head {:.1}%", 100.0 * h));
        }
        if let (Some(b), Some(d)) = (c.base, c.delta) {
            line.push_str(&format!(
                ", base {:.1}% ({:+.1} points)",
                100.0 * b,
                100.0 * d
            ));
        }
        match c.diff_coverage {
            Some(d) => line.push_str(&format!(
                "; diff coverage {:.0}% ({}/{} added executable lines)",
                100.0 * d,
                c.added_covered,
                c.added_executable
            )),
            None => line.push_str("; no executable line added"),
        }
        lines.push(line);
        for (path, uncovered) in c.uncovered.iter().take(10) {
            let numbers: Vec<String> = uncovered.iter().take(12).map(u32::to_string).collect();
            let more = if uncovered.len() > 12 { ", …" } else { "" };
            lines.push(format!("  not covered: {path}:{}{more}", numbers.join(",")));
        }
        if !c.unreported_files.is_empty() {
            lines.push(format!(
                "  not in the report (counted uncovered): {}",
                c.unreported_files.join(", ")
            ));
        }
    }
    if let Some(s) = &e.sarif {
        let new: u64 = s.new_by_severity.values().sum();
        let by: Vec<String> = ["critical", "high", "medium", "low"]
            .iter()
            .filter(|sev| s.new_count(sev) > 0)
            .map(|sev| format!("{} {sev}", s.new_count(sev)))
            .collect();
        lines.push(format!(
            "static analysis ({}): {} finding(s), {new} new on added lines{}",
            if s.tools.is_empty() {
                "no tool named".to_string()
            } else {
                s.tools.join(", ")
            },
            s.total,
            if by.is_empty() {
                String::new()
            } else {
                format!(" ({})", by.join(", "))
            }
        ));
        for f in s.new.iter().take(10) {
            let line = f.line.map(|l| format!(":{l}")).unwrap_or_default();
            lines.push(format!(
                "  new: {}{line} {} [{}] {}: {}",
                f.path, f.severity, f.tool, f.rule_id, f.message
            ));
        }
    }
    if let Some(tf) = &e.terraform {
        let actions: Vec<String> = ["create", "update", "replace", "delete", "forget"]
            .iter()
            .filter_map(|a| tf.actions.get(*a).map(|n| format!("{n} {a}")))
            .collect();
        lines.push(format!(
            "terraform plan: {}",
            if actions.is_empty() {
                "no changes".to_string()
            } else {
                actions.join(", ")
            }
        ));
        for d in tf.destructive.iter().take(10) {
            lines.push(format!("  destroys stateful: {d}"));
        }
        for a in tf.access.iter().take(10) {
            lines.push(format!("  changes access: {a}"));
        }
    }
    if !e.missing_required.is_empty() {
        let kinds: Vec<&str> = e.missing_required.iter().map(|k| k.as_str()).collect();
        lines.push(format!("missing (required): {}", kinds.join(", ")));
    }
    lines
}
