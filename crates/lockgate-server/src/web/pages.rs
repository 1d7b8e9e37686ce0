//! The web UI's pages, rendered on the server with maud (every interpolated value is
//! HTML-escaped; nothing is marked pre-escaped but the fixed stylesheet link). No
//! JavaScript: forms post back, and each form carries the session's CSRF token.

use lockgate_attest::transcript_view::ViewStep;
use lockgate_core::approvals::ApprovalStatus;
use lockgate_core::decision::{Decision, Severity};
use lockgate_core::provenance::CommitProvenance;
use lockgate_store::{ApprovalRecord, DecisionRecord, HoldRecord};
use maud::{DOCTYPE, Markup, html};
use std::collections::BTreeMap;

/// Who is looking, for the header and the forms.
pub struct Viewer<'a> {
    pub subject: &'a str,
    pub csrf: &'a str,
    /// A person or admin (may approve and release holds); CI tokens only read.
    pub is_person: bool,
}

/// Time in ms since the epoch, as RFC 3339 UTC.
pub fn when(ms: i64) -> String {
    lockgate_attest::trust::format_rfc3339(ms / 1000)
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The UI path of a change's page.
pub fn change_href(repo: &str, change: &str) -> String {
    format!(
        "/ui/change?repo={}&change={}",
        urlencode(repo),
        urlencode(change)
    )
}

/// Percent-encodes a query value (unreserved characters pass).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The frame every page shares.
pub fn layout(title: &str, viewer: Option<&Viewer>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Lockgate" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header {
                    a.brand href="/ui" { "Lockgate" }
                    @if let Some(v) = viewer {
                        nav {
                            a href="/ui" { "Pending" }
                            a href="/ui/spend" { "Spend" }
                            a href="/ui/merges" { "Merge queue" }
                            span.who { "signed in as " strong { (v.subject) } }
                            form.inline method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The sign-in page.
pub fn login(error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            p { "Paste your Lockgate API token (from " code { "lockgate serve token create --role person" } ")." }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/ui/login" {
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="off" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// An error page.
pub fn error(viewer: Option<&Viewer>, status: u16, message: &str) -> Markup {
    layout(
        "Error",
        viewer,
        html! {
            h1 { "Error " (status) }
            p.error role="alert" { (message) }
            p { a href="/ui" { "Back to the pending queue" } }
        },
    )
}

fn hold_target(h: &HoldRecord) -> String {
    if h.target.is_empty() {
        h.scope.as_str().to_string()
    } else {
        format!("{} {}", h.scope.as_str(), h.target)
    }
}

fn holds_table(viewer: &Viewer, holds: &[HoldRecord], back: &str) -> Markup {
    html! {
        @if holds.is_empty() {
            p.muted { "No active holds." }
        } @else {
            table #holds {
                thead { tr { th { "Hold" } th { "Reason" } th { "Placed by" } th { "Since" } th {} } }
                tbody {
                    @for h in holds {
                        tr {
                            td { (hold_target(h)) }
                            td { (h.reason) }
                            td { (h.placed_by) }
                            td { (when(h.created_ms)) }
                            td {
                                @if viewer.is_person {
                                    form.inline method="post" action="/ui/holds/release" {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        input type="hidden" name="id" value=(h.id);
                                        input type="hidden" name="back" value=(back);
                                        button type="submit" { "Release" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The pending queue and the active holds.
pub fn queue(viewer: &Viewer, pending: &[DecisionRecord], holds: &[HoldRecord]) -> Markup {
    layout(
        "Pending approvals",
        Some(viewer),
        html! {
            h1 { "Waiting for approval" }
            @if pending.is_empty() {
                p.muted #empty { "Nothing is waiting for approval." }
            } @else {
                table #pending {
                    thead { tr { th { "Change" } th { "Author" } th { "Trust" } th { "Head" } th { "Waiting since" } } }
                    tbody {
                        @for d in pending {
                            tr {
                                td { a href=(change_href(&d.repo, &d.change_ref)) { (d.repo) " " (d.change_ref) } }
                                td { (d.agent.as_deref().unwrap_or(&d.author_kind)) }
                                td { (d.trust_score) }
                                td { code { (short(&d.head_sha)) } }
                                td { (when(d.created_ms)) }
                            }
                        }
                    }
                }
            }
            h2 { "Merge holds" }
            (holds_table(viewer, holds, "/ui"))
        },
    )
}

/// Model spend per agent, project and model; the agents frozen now (agent holds).
pub fn spend(
    viewer: &Viewer,
    period: std::time::Duration,
    views: &[crate::gateway::spend::SpendView],
    frozen: &[HoldRecord],
) -> Markup {
    let period = humantime::format_duration(period).to_string();
    layout(
        "Model spend",
        Some(viewer),
        html! {
            h1 { "Model spend, last " (period) }
            p.muted { "Settled calls at their cost, calls in flight at their reservation, from every replica." }
            h2 { "Frozen agents" }
            (holds_table(viewer, frozen, "/ui/spend"))
            @for v in views {
                h2 { "By " (v.by) }
                @if v.rows.is_empty() {
                    p.muted { "No model calls in this period." }
                } @else {
                    table id=(format!("spend-{}", v.by)) {
                        thead { tr { th { (v.by) } th { "Calls" } th { "In flight" } th { "Spent" } } }
                        tbody {
                            @for r in &v.rows {
                                tr {
                                    td { (r.row.key) }
                                    td.num { (r.row.calls) }
                                    td.num { (r.row.open_calls) }
                                    td.num { (r.spent_usd) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Everything the change page shows.
pub struct ChangePage<'a> {
    pub record: &'a DecisionRecord,
    pub decision: &'a Decision,
    pub history: &'a [DecisionRecord],
    pub approvals: &'a [ApprovalRecord],
    pub status: &'a ApprovalStatus,
    pub holds: &'a [HoldRecord],
    /// Why the viewer may not approve, if they may not.
    pub refusal: Option<String>,
    /// Transcript digests the server holds.
    pub stored_transcripts: &'a [String],
    /// A message to show on top (after an action).
    pub notice: Option<&'a str>,
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Approval => "approval",
        Severity::Block => "block",
    }
}

/// The change page.
pub fn change(viewer: &Viewer, p: &ChangePage) -> Markup {
    let d = p.decision;
    let r = p.record;
    let back = change_href(&r.repo, &r.change_ref);
    let title = format!("{} {}", r.repo, r.change_ref);
    layout(
        &title,
        Some(viewer),
        html! {
            h1 { (r.repo) " " (r.change_ref) }
            @if let Some(n) = p.notice { p.notice role="status" { (n) } }
            p.summary {
                span class={ "verdict " (d.verdict.as_str()) } #verdict { (d.verdict.as_str()) }
                " · impact " strong { (d.impact.as_str()) }
                " · trust " strong #trust-score { (d.trust.score) } " (" (format!("{:?}", d.trust.band).to_lowercase()) ")"
                " · head " code #head { (short(&d.head)) }
                " · base " code { (short(&d.base)) }
            }
            (approval_section(viewer, p))
            @if !p.holds.is_empty() {
                h2 { "Holds on this change" }
                (holds_table(viewer, p.holds, &back))
            }
            h2 { "Reasons" }
            ul #reasons {
                @for reason in &d.reasons {
                    li class=(severity(reason.severity)) {
                        code { (reason.rule) } " " (reason.message)
                    }
                }
            }
            h2 { "Trust" }
            table #trust {
                thead { tr { th { "Factor" } th { "Score" } th { "Weight" } th { "Detail" } } }
                tbody {
                    @for f in &d.trust.factors {
                        tr {
                            td { (f.name) }
                            td { (f.score) @if !f.measured { " (not measured)" } }
                            td { (f.weight) }
                            td { (f.detail) }
                        }
                    }
                }
            }
            h2 { "Author" }
            p #author {
                (d.author.kind.as_str())
                @for a in &d.author.agents { " · " (a.display) " (" (a.id) ", " (a.commits) " commits)" }
                @for h in &d.author.humans { " · " (h) }
            }
            (provenance_section(d, p.stored_transcripts))
            (files_section(d))
            (evidence_section(d))
            h2 { "History" }
            table #history {
                thead { tr { th { "Recorded" } th { "Head" } th { "Verdict" } th { "Trust" } th { "Input digest" } } }
                tbody {
                    @for h in p.history {
                        tr {
                            td { (when(h.created_ms)) }
                            td { code { (short(&h.head_sha)) } }
                            td { (h.verdict) }
                            td { (h.trust_score) }
                            td { code { (h.input_digest) } }
                        }
                    }
                }
            }
        },
    )
}

fn approval_section(viewer: &Viewer, p: &ChangePage) -> Markup {
    let d = p.decision;
    html! {
        h2 { "Approvals" }
        @if p.status.satisfied {
            p.ok #approval-state { "Approved at this head." }
        } @else if !d.required_approvals.is_empty() {
            p #approval-state { "Waiting for approval." }
        }
        @if !p.status.changes_requested_by.is_empty() {
            p.error { "Changes requested by " (p.status.changes_requested_by.join(", ")) "." }
        }
        @if !p.status.requirements.is_empty() {
            table #requirements {
                thead { tr { th { "Rule" } th { "Owners" } th { "Needed" } th { "Approved by" } } }
                tbody {
                    @for req in &p.status.requirements {
                        tr class=(if req.satisfied { "ok" } else { "open" }) {
                            td { code { (req.rule) } }
                            td { (if req.owners.is_empty() { "any maintainer".to_string() } else { req.owners.join(", ") }) }
                            td { (req.needed) }
                            td { (req.approved_by.join(", ")) }
                        }
                    }
                }
            }
        }
        @if !p.approvals.is_empty() {
            ul #approvals {
                @for a in p.approvals {
                    li {
                        strong { (a.approver) } " " (a.state.as_str().replace('_', " "))
                        " via " (a.source) " at " (when(a.created_ms))
                        @if !a.comment.is_empty() { ": " q { (a.comment) } }
                        @if let Some(i) = a.log_index { " · " span.logged { "logged #" (i) } }
                    }
                }
            }
        }
        @if viewer.is_person {
            @match &p.refusal {
                None => {
                    form #approve method="post" action="/ui/approve" {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        input type="hidden" name="repo" value=(p.record.repo);
                        input type="hidden" name="change_ref" value=(p.record.change_ref);
                        input type="hidden" name="head_sha" value=(d.head);
                        label for="comment" { "Comment" }
                        textarea #comment name="comment" rows="2" maxlength="4096" {}
                        button #approve-button type="submit" name="state" value="approved" { "Approve" }
                        button #request-changes-button type="submit" name="state" value="changes_requested" { "Request changes" }
                    }
                }
                Some(why) => { p.muted #cannot-approve { "You cannot approve this change: " (why) } }
            }
        }
    }
}

fn provenance_section(d: &Decision, stored: &[String]) -> Markup {
    let commits: &[CommitProvenance] = &d.provenance.commits;
    html! {
        h2 { "Provenance" }
        @if commits.is_empty() {
            p.muted { "No agent commits." }
        } @else {
            table #provenance {
                thead { tr { th { "Commit" } th { "Status" } th { "Agent" } th { "Model" } th { "Prompt digest" } th { "Transcript" } th { "Log" } } }
                tbody {
                    @for c in commits {
                        tr {
                            td { code { (short(&c.commit)) } }
                            td class=(c.status.as_str()) { (c.status.as_str()) }
                            td { (c.agent.as_deref().unwrap_or("—")) }
                            td { (c.model.as_deref().unwrap_or("—")) }
                            td { code { (c.prompt_digest.as_deref().unwrap_or("—")) } }
                            td {
                                @if let Some(t) = &c.transcript {
                                    (t.steps) " steps, " (t.tool_calls) " tool calls, " (t.redactions) " redacted"
                                    @if stored.contains(&t.digest) {
                                        " · " a.transcript href={ "/ui/transcript?digest=" (urlencode(&t.digest)) } { "read" }
                                    } @else {
                                        " · not uploaded"
                                    }
                                } @else { "—" }
                            }
                            td {
                                @if let Some(l) = &c.logged { (l.log) " #" (l.index) } @else { "—" }
                            }
                        }
                        @if !c.reasons.is_empty() {
                            tr.reasons { td colspan="7" { (c.reasons.join("; ")) } }
                        }
                    }
                }
            }
        }
    }
}

fn files_section(d: &Decision) -> Markup {
    let mut by_category: BTreeMap<String, Vec<&lockgate_core::decision::DecisionFile>> =
        BTreeMap::new();
    for f in &d.files {
        let key = f
            .categories
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        by_category.entry(key).or_default().push(f);
    }
    html! {
        h2 { "Files (" (d.files.len()) ")" }
        @for (category, files) in &by_category {
            h3 { (if category.is_empty() { "uncategorized" } else { category }) }
            table.files {
                thead { tr { th { "Path" } th { "+" } th { "−" } th { "Impact" } th { "Owners" } } }
                tbody {
                    @for f in files {
                        tr {
                            td { code { (f.path) } @if !f.flags.is_empty() { " " span.flags { (f.flags.join(", ")) } } }
                            td { (f.lines_added) }
                            td { (f.lines_removed) }
                            td { (f.impact.as_str()) }
                            td { (f.owners.join(", ")) }
                        }
                    }
                }
            }
        }
    }
}

fn evidence_section(d: &Decision) -> Markup {
    let e = &d.evidence;
    html! {
        h2 { "Evidence" }
        ul #evidence {
            @if let Some(t) = &e.tests {
                li { "Tests: " (t.passed) " passed, " (t.failed) " failed, " (t.errored) " errored, " (t.skipped) " skipped"
                    @if !t.failures.is_empty() { " — failing: " (t.failures.join(", ")) } }
            }
            @if let Some(c) = &e.coverage {
                li { "Coverage (" (c.format) "): "
                    @if let Some(h) = c.head { (format!("{h:.1}")) "% " }
                    @if let Some(dc) = c.diff_coverage { "· diff " (format!("{dc:.1}")) "% " }
                    @if let Some(delta) = c.delta { "· delta " (format!("{delta:+.1}")) }
                }
            }
            @if let Some(s) = &e.sarif {
                li { "Analysis (" (s.tools.join(", ")) "): " (s.total) " results, " (s.new.len()) " new on changed lines" }
                @for f in &s.new {
                    li.finding { (f.severity) " " code { (f.rule_id) } " " (f.path) @if let Some(l) = f.line { ":" (l) } " — " (f.message) }
                }
            }
            @if let Some(t) = &e.terraform {
                li { "Terraform plan: " (t.destructive_count) " destructive, " (t.access_count) " access changes" }
            }
            @if e.provided.is_empty() { li.muted { "No test or analysis reports were provided." } }
        }
    }
}

/// The transcript viewer.
pub fn transcript(
    viewer: &Viewer,
    digest: &str,
    format: &str,
    steps: &[ViewStep],
    total_steps: u64,
) -> Markup {
    layout(
        "Transcript",
        Some(viewer),
        html! {
            h1 { "Session transcript" }
            p { code { (digest) } " · " (format) " · " (total_steps) " steps (redacted before it was attested)" }
            ol #transcript {
                @for s in steps {
                    li class={ "step " (s.role) " " (s.kind) } {
                        div.meta { "line " (s.line) " · " (s.role) " · " (s.kind) @if let Some(t) = &s.tool { " · " code { (t) } } }
                        pre { (s.text) }
                    }
                }
            }
        },
    )
}

/// The stylesheet (served from `/ui/style.css`, so the CSP can forbid inline styles).
pub const STYLE: &str = r#"
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d232a; background: #fafbfc; }
header { display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1.5rem; background: #1d232a; color: #fff; }
header a { color: #fff; text-decoration: none; }
header .brand { font-weight: 700; letter-spacing: .02em; }
header nav { display: flex; gap: 1rem; align-items: center; flex: 1; }
header .who { margin-left: auto; opacity: .85; }
main { max-width: 72rem; margin: 1.5rem auto; padding: 0 1.5rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; background: #fff; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e3e7ec; vertical-align: top; }
code, pre { font-family: ui-monospace, monospace; font-size: 13px; }
pre { white-space: pre-wrap; word-break: break-word; margin: .2rem 0; }
.verdict { padding: .15rem .5rem; border-radius: .3rem; font-weight: 600; }
.verdict.auto_merge, .ok { color: #116329; }
.verdict.auto_merge { background: #dafbe1; }
.verdict.needs_approval { background: #fff4ce; color: #7a4f01; }
.verdict.blocked, .error, li.block { color: #a40e26; }
.verdict.blocked { background: #ffebe9; }
li.approval { color: #7a4f01; }
.muted { color: #6a737d; }
.notice { background: #ddf4ff; padding: .5rem .75rem; border-radius: .3rem; }
form.inline { display: inline; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
textarea { display: block; width: 100%; max-width: 40rem; margin: .25rem 0 .5rem; }
button { font: inherit; padding: .3rem .8rem; margin-right: .4rem; cursor: pointer; }
.step { margin-bottom: .6rem; }
.step .meta { color: #6a737d; font-size: 13px; }
.step.tool_call pre { background: #f3f4f6; }
"#;

/// The merge queues: holds stopping them (releasable), open entries head first, and the
/// recent merges and ejections with their reasons.
pub fn merges(viewer: &Viewer, answer: &crate::queue::QueueAnswer) -> Markup {
    layout(
        "Merge queue",
        Some(viewer),
        html! {
            h1 { "Merge queue" }
            @if answer.queues.is_empty() {
                p.muted #no-queues { "No repository has a merge queue ([merge] in the server config)." }
            }
            @for q in &answer.queues {
                section.queue data-repo=(q.repo) {
                    h2 { (q.repo) " → " (q.target) " (" (q.method) ")" }
                    @if !q.held_by.is_empty() {
                        p.warning.stopped { "Stopped by a hold: nothing lands until it is released." }
                        (holds_table(viewer, &q.held_by, "/ui/merges"))
                    }
                    @if !q.entry_holds.is_empty() {
                        p.warning { "Some entries are held (an agent's incident freeze, or a hold on the change)." }
                        (holds_table(viewer, &q.entry_holds, "/ui/merges"))
                    }
                    @if q.entries.is_empty() {
                        p.muted { "The queue is empty." }
                    } @else {
                        table.entries {
                            thead { tr { th { "#" } th { "Change" } th { "Agent" } th { "State" } th { "Builds" } th { "Now" } } }
                            tbody {
                                @for (i, e) in q.entries.iter().enumerate() {
                                    tr data-change=(e.change_ref) {
                                        td.num { (i + 1) }
                                        td { a href=(change_href(&e.repo, &e.change_ref)) { (e.change_ref) } " @ " code { (short(&e.head_sha)) } }
                                        td { (e.agent.as_deref().unwrap_or("—")) }
                                        td.state { (e.state.as_str()) }
                                        td.num { (e.attempts) }
                                        td { (e.reason) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Recent" }
            @if answer.recent.is_empty() {
                p.muted { "Nothing has entered a queue yet." }
            } @else {
                table #recent {
                    thead { tr { th { "Change" } th { "State" } th { "Landed as" } th { "Why" } th { "When" } } }
                    tbody {
                        @for e in &answer.recent {
                            tr data-change=(e.change_ref) {
                                td { (e.repo) " " (e.change_ref) " @ " code { (short(&e.head_sha)) } }
                                td.state { (e.state.as_str()) }
                                td { @if e.state == lockgate_store::EntryState::Merged { @if let Some(r) = &e.result_sha { code { (short(r)) } } } }
                                td { (e.reason) }
                                td { (when(e.updated_ms)) }
                            }
                        }
                    }
                }
            }
        },
    )
}
