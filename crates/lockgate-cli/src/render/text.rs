use super::{approval_line, author_line, category_list, short, status_letter};
use lockgate_core::decision::{Decision, Severity, Verdict};
use std::fmt::Write;

pub(super) fn render(d: &Decision, provenance: &[String]) -> String {
    let mut out = String::new();
    let verdict = match d.verdict {
        Verdict::AutoMerge => "AUTO-MERGE: may merge on its own",
        Verdict::NeedsApproval => "NEEDS APPROVAL",
        Verdict::Blocked => "BLOCKED: may not merge",
    };
    let route = d
        .route
        .map(|r| format!("route {}, ", r.as_str()))
        .unwrap_or_default();
    let _ = writeln!(out, "lockgate: {verdict}  ({route}impact {})", d.impact);
    let _ = writeln!(out, "author:   {}", author_line(d));
    let added: u64 = d.files.iter().map(|f| u64::from(f.lines_added)).sum();
    let removed: u64 = d.files.iter().map(|f| u64::from(f.lines_removed)).sum();
    let _ = writeln!(
        out,
        "range:    {}..{} (merge base {}), {} file{}, +{added} -{removed}",
        short(&d.base),
        short(&d.head),
        short(&d.merge_base),
        d.files.len(),
        if d.files.len() == 1 { "" } else { "s" }
    );

    if !d.trust.factors.is_empty() {
        out.push_str(&super::trust::text_section(&d.trust, &d.evidence, false));
    }

    if !d.reasons.is_empty() {
        let _ = writeln!(out, "\nreasons:");
        for r in &d.reasons {
            let tag = match r.severity {
                Severity::Block => "block   ",
                Severity::Approval => "approval",
                Severity::Warning => "warning ",
                Severity::Info => "info    ",
            };
            let _ = writeln!(out, "  [{tag}] {}: {}", r.rule, r.message);
        }
    }

    if !d.required_approvals.is_empty() {
        let _ = writeln!(out, "\nrequired approvals:");
        for a in &d.required_approvals {
            let _ = writeln!(out, "  {} ({})", approval_line(a), a.rule);
        }
    }

    if !d.findings.is_empty() {
        let _ = writeln!(out, "\nfindings (values redacted):");
        for f in &d.findings {
            let col = f.start_column.map(|c| format!(":{c}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}:{}{col}  {}  {}",
                f.path, f.line, f.rule, f.message
            );
        }
    }

    if !d.provenance.commits.is_empty() {
        let _ = writeln!(
            out,
            "\nprovenance ({}):",
            d.provenance
                .trust_root
                .as_deref()
                .unwrap_or("no trust root")
        );
        for c in &d.provenance.commits {
            let binding = c
                .binding
                .map(|b| format!(" by {}", super::binding_name(b)))
                .unwrap_or_default();
            let _ = writeln!(out, "  {} {}{binding}", short(&c.commit), c.status.as_str());
            if let (Some(agent), Some(model)) = (&c.agent, &c.model) {
                let _ = writeln!(
                    out,
                    "    {agent} ({model}), signed by {}",
                    c.signer.as_deref().unwrap_or("?")
                );
            }
            if let Some(p) = &c.prompt_digest {
                let _ = writeln!(out, "    prompt {p}");
            }
            if let Some(l) = &c.logged {
                let _ = writeln!(
                    out,
                    "    logged as entry {} of {} (inclusion verified)",
                    l.index, l.log
                );
            }
            if let Some(t) = &c.transcript {
                let _ = writeln!(
                    out,
                    "    transcript {} {}: {} steps, {} tool calls, {} files touched",
                    t.format, t.digest, t.steps, t.tool_calls, t.files_touched
                );
            }
            for r in &c.reasons {
                let _ = writeln!(out, "    {r}");
            }
        }
    }

    if !d.files.is_empty() {
        let _ = writeln!(out, "\nfiles:");
        let width = d
            .files
            .iter()
            .map(|f| display_path(f).chars().count())
            .max()
            .unwrap_or(0)
            .min(60);
        for f in &d.files {
            let owners = if f.owners.is_empty() {
                "(no owner)".to_string()
            } else {
                f.owners.join(" ")
            };
            let flags = if f.flags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", f.flags.join(", "))
            };
            let _ = writeln!(
                out,
                "  {} {:width$}  {:8}  {}{flags}  {owners}",
                status_letter(f.status),
                display_path(f),
                f.impact.as_str(),
                category_list(&f.categories),
            );
        }
    }

    if !d.author.evidence.is_empty() {
        let _ = writeln!(out, "\nauthorship evidence:");
        for e in d.author.evidence.iter().take(20) {
            let _ = writeln!(out, "  {} {}: {}", e.commit, e.identity, e.detail);
        }
        if d.author.evidence.len() > 20 {
            let _ = writeln!(out, "  … {} more", d.author.evidence.len() - 20);
        }
    }

    let _ = writeln!(out, "\ninput digest: {}", d.input_digest);
    for p in provenance {
        let _ = writeln!(out, "{p}");
    }
    out
}

fn display_path(f: &lockgate_core::decision::DecisionFile) -> String {
    match (&f.old_path, f.similarity) {
        (Some(old), Some(s)) => format!("{old} → {} ({s}%)", f.path),
        (Some(old), None) => format!("{old} → {}", f.path),
        _ => f.path.clone(),
    }
}
