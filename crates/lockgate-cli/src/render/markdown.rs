//! Markdown for a PR comment or `$GITHUB_STEP_SUMMARY`. Every piece of text that came
//! from the repository (paths, names, messages) is escaped so a crafted file name
//! cannot inject markup, links or HTML into the comment.

use super::{approval_line, author_line, category_list, short, status_letter};
use lockgate_core::decision::{Decision, Severity, Verdict};
use std::fmt::Write;

/// Marks Lockgate's comment so a bot can find and update it.
pub const COMMENT_MARKER: &str = "<!-- lockgate:decision -->";

pub(super) fn render(d: &Decision) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{COMMENT_MARKER}");
    let (icon, verdict) = match d.verdict {
        Verdict::AutoMerge => ("✅", "may merge on its own"),
        Verdict::NeedsApproval => ("🟡", "needs approval"),
        Verdict::Blocked => ("⛔", "blocked"),
    };
    let route = d
        .route
        .map(|r| format!(" · route `{}`", r.as_str()))
        .unwrap_or_default();
    let _ = writeln!(out, "### {icon} Lockgate: {verdict}\n");
    let _ = writeln!(
        out,
        "**Author:** {} · **Impact:** `{}`{route} · `{}..{}`\n",
        esc(&author_line(d)),
        d.impact,
        short(&d.base),
        short(&d.head)
    );

    if !d.required_approvals.is_empty() {
        let _ = writeln!(out, "**Required approvals**\n");
        for a in &d.required_approvals {
            let _ = writeln!(out, "- {} — {}", esc(&approval_line(a)), esc(&a.reason));
        }
        out.push('\n');
    }

    let important: Vec<_> = d
        .reasons
        .iter()
        .filter(|r| r.severity >= Severity::Warning)
        .collect();
    if !important.is_empty() {
        let _ = writeln!(out, "**Reasons**\n");
        for r in important {
            let icon = match r.severity {
                Severity::Block => "⛔",
                Severity::Approval => "🟡",
                _ => "⚠️",
            };
            let _ = writeln!(out, "- {icon} `{}` {}", code(&r.rule), esc(&r.message));
        }
        out.push('\n');
    }

    if !d.trust.factors.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>Trust score {}</summary>\n",
            esc(&super::trust::headline(&d.trust))
        );
        let _ = writeln!(out, "| factor | score | weight | why |");
        let _ = writeln!(out, "|---|---|---|---|");
        for (name, score, weight, detail) in super::trust::factor_rows(&d.trust) {
            let _ = writeln!(
                out,
                "| {} | {score} | {weight} | {} |",
                esc(&name),
                esc(&detail)
            );
        }
        let evidence = super::trust::evidence_lines(&d.evidence);
        if !evidence.is_empty() {
            let _ = writeln!(out, "\n**Evidence**\n");
            for line in evidence {
                let indent = if line.starts_with("  ") { "  " } else { "" };
                let _ = writeln!(out, "{indent}- {}", esc(line.trim_start()));
            }
        }
        let _ = writeln!(out, "\n</details>\n");
    }

    if !d.findings.is_empty() {
        let _ = writeln!(out, "**Findings** (values redacted)\n");
        for f in &d.findings {
            let _ = writeln!(
                out,
                "- `{}:{}` {} — {}",
                code(&f.path),
                f.line,
                code_span(&f.rule),
                esc(&f.message)
            );
        }
        out.push('\n');
    }

    if !d.provenance.commits.is_empty() {
        let _ = writeln!(out, "**Provenance**\n");
        let _ = writeln!(
            out,
            "| commit | status | agent | model | prompt | transcript |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for c in &d.provenance.commits {
            let status = match c.binding {
                Some(b) => format!("{} (by {})", c.status.as_str(), super::binding_name(b)),
                None => c.status.as_str().to_string(),
            };
            let transcript = c
                .transcript
                .as_ref()
                .map(|t| {
                    format!(
                        "{} steps, {} tool calls, {} files",
                        t.steps, t.tool_calls, t.files_touched
                    )
                })
                .unwrap_or_else(|| "—".into());
            let prompt = c
                .prompt_digest
                .as_deref()
                .map(|p| format!("`{}…`", code(&p[..p.len().min(19)])))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                short(&c.commit),
                status,
                esc(c.agent.as_deref().unwrap_or("—")),
                esc(c.model.as_deref().unwrap_or("—")),
                prompt,
                esc(&transcript)
            );
        }
        out.push('\n');
    }

    let _ = writeln!(
        out,
        "<details><summary>{} changed file{} · {}</summary>\n",
        d.files.len(),
        if d.files.len() == 1 { "" } else { "s" },
        esc(&category_list(&d.categories))
    );
    let _ = writeln!(out, "| | file | categories | impact | owners |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for f in &d.files {
        let owners = if f.owners.is_empty() {
            "—".to_string()
        } else {
            esc(&f.owners.join(" "))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            status_letter(f.status),
            esc(&f.path),
            esc(&category_list(&f.categories)),
            f.impact,
            owners
        );
    }
    let _ = writeln!(out, "\n</details>\n");

    let notes: Vec<_> = d
        .reasons
        .iter()
        .filter(|r| r.severity == Severity::Info)
        .collect();
    for n in notes {
        let _ = writeln!(out, "<sub>{}</sub><br>", esc(&n.message));
    }
    let _ = writeln!(out, "<sub>input digest `{}`</sub>", d.input_digest);
    out
}

/// Escapes Markdown and HTML metacharacters in free text.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// Text inside a table-cell code span: backticks and pipes cannot be escaped inside
/// code, so they are replaced with look-alikes.
fn code(s: &str) -> String {
    s.replace('`', "ˋ")
        .replace('|', "¦")
        .replace(['\n', '\r'], " ")
}

fn code_span(s: &str) -> String {
    format!("`{}`", code(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_in_repository_text() {
        assert_eq!(
            esc("<img src=x onerror=alert(1)>"),
            "&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(esc("[click](http://evil)"), "\\[click\\](http://evil)");
        assert_eq!(code("a`b|c"), "aˋb¦c");
    }
}
