//! Reports + the change → evidence facts: which findings are new (on lines this change
//! added), diff coverage (the share of added executable lines that tests run), whether
//! tests changed with the code, and what a Terraform plan does.

use crate::coverage::{self, CoverageReport};
use crate::terraform::{Action, TerraformRuleLists, TerraformRules};
use crate::{EvidenceError, junit, same_file, sarif};
use lockgate_core::category::Category;
use lockgate_core::change::{ChangeSet, FileChange, FileStatus};
use lockgate_core::config::TerraformSettings;
use lockgate_core::evidence::*;
use lockgate_core::input::FileFacts;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

/// The report files given for a change.
#[derive(Debug, Clone, Default)]
pub struct EvidencePaths {
    /// JUnit XML files (several test jobs are summed).
    pub junit: Vec<PathBuf>,
    /// Coverage of the head (lcov or Cobertura).
    pub coverage: Option<PathBuf>,
    /// Coverage of the base, for the overall delta.
    pub base_coverage: Option<PathBuf>,
    /// SARIF files (several analyzers).
    pub sarif: Vec<PathBuf>,
    /// Terraform plan JSON files.
    pub terraform: Vec<PathBuf>,
    /// The checkout's absolute path, stripped from absolute paths in reports.
    pub root: Option<String>,
}

impl EvidencePaths {
    pub fn is_empty(&self) -> bool {
        self.junit.is_empty()
            && self.coverage.is_none()
            && self.sarif.is_empty()
            && self.terraform.is_empty()
    }
}

/// A report could not be used: which file, and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {error}")]
pub struct ReportError {
    pub path: String,
    pub error: EvidenceError,
}

/// Changed files indexed by file name, to match report paths quickly.
struct ChangedFiles<'a> {
    by_name: HashMap<&'a str, Vec<&'a FileChange>>,
}

impl<'a> ChangedFiles<'a> {
    fn new(change: &'a ChangeSet) -> ChangedFiles<'a> {
        let mut by_name: HashMap<&str, Vec<&FileChange>> = HashMap::new();
        for f in &change.files {
            if f.status != FileStatus::Deleted {
                by_name.entry(file_name(&f.path)).or_default().push(f);
            }
        }
        ChangedFiles { by_name }
    }

    /// The changed file a report path names.
    fn find(&self, report_path: &str) -> Option<&'a FileChange> {
        let candidates = self.by_name.get(file_name(report_path))?;
        candidates
            .iter()
            .find(|f| f.path == report_path)
            .or_else(|| candidates.iter().find(|f| same_file(report_path, &f.path)))
            .copied()
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn open(path: &PathBuf) -> Result<std::fs::File, ReportError> {
    std::fs::File::open(path).map_err(|e| ReportError {
        path: path.display().to_string(),
        error: EvidenceError::Io(e),
    })
}

fn at(path: &std::path::Path) -> impl Fn(EvidenceError) -> ReportError + '_ {
    move |error| ReportError {
        path: path.display().to_string(),
        error,
    }
}

/// Reads every report and relates it to the change. `files` are the assessed files
/// (for their categories); `require` lists the kinds that must be present.
pub fn gather(
    paths: &EvidencePaths,
    change: &ChangeSet,
    files: &[FileFacts],
    terraform: &TerraformSettings,
    require: &[EvidenceKind],
) -> Result<EvidenceFacts, ReportError> {
    let changed = ChangedFiles::new(change);
    let root = paths.root.as_deref();
    let mut facts = EvidenceFacts::default();
    let has = |c: Category| files.iter().any(|f| f.categories.contains(&c));
    let source_paths: BTreeSet<&str> = files
        .iter()
        .filter(|f| f.categories.contains(&Category::Source))
        .map(|f| f.path.as_str())
        .collect();

    if !paths.junit.is_empty() {
        let mut report = junit::TestReport::default();
        for p in &paths.junit {
            report.merge(junit::parse(open(p)?).map_err(at(p))?);
        }
        facts.tests = Some(TestFacts {
            total: report.total,
            passed: report.passed,
            failed: report.failed,
            errored: report.errored,
            skipped: report.skipped,
            failures: report
                .failures
                .iter()
                .map(|f| format!("{}: {}", f.name, f.message))
                .collect(),
            tests_changed: has(Category::Tests),
            source_changed: has(Category::Source),
        });
    }

    if let Some(head) = &paths.coverage {
        let keep = |p: &str| changed.find(p).is_some();
        let report = coverage::parse_file(head, root, &keep).map_err(at(head))?;
        let base = match &paths.base_coverage {
            Some(b) => Some(coverage::parse_file(b, root, &|_| false).map_err(at(b))?),
            None => None,
        };
        facts.coverage = Some(coverage_facts(
            &report,
            base.as_ref(),
            change,
            &source_paths,
        ));
    }

    if !paths.sarif.is_empty() {
        let mut sarif_facts = SarifFacts::default();
        for p in &paths.sarif {
            let mut added_lines = HashMap::new();
            let report = sarif::parse_with(open(p)?, root, |f| {
                add_finding(&mut sarif_facts, f, &changed, &mut added_lines)
            })
            .map_err(at(p))?;
            for t in report.tools {
                if !sarif_facts.tools.contains(&t) {
                    sarif_facts.tools.push(t);
                }
            }
        }
        facts.sarif = Some(sarif_facts);
    }

    if !paths.terraform.is_empty() {
        let mut lists = if terraform.defaults {
            TerraformRules::default_lists()
        } else {
            TerraformRuleLists::default()
        };
        lists.stateful.extend(terraform.stateful.iter().cloned());
        lists.access.extend(terraform.access.iter().cloned());
        let rules = TerraformRules::new(&lists).map_err(|e| ReportError {
            path: ".lockgate.toml [evidence.terraform]".into(),
            error: EvidenceError::malformed("Terraform rules", e),
        })?;
        let mut tf = TerraformFacts::default();
        for p in &paths.terraform {
            let plan = crate::terraform::parse(open(p)?, &rules).map_err(at(p))?;
            for (action, n) in &plan.actions {
                *tf.actions.entry(action_name(*action).into()).or_default() += n;
            }
            for (ty, actions) in &plan.by_type {
                let entry = tf.by_type.entry(ty.clone()).or_default();
                for (action, n) in actions {
                    *entry.entry(action_name(*action).into()).or_default() += n;
                }
            }
            tf.destructive.extend(plan.destructive);
            tf.destructive_count += plan.destructive_count;
            tf.access.extend(plan.access);
            tf.access_count += plan.access_count;
        }
        facts.terraform = Some(tf);
    }

    for (kind, present) in [
        (EvidenceKind::Tests, facts.tests.is_some()),
        (EvidenceKind::Coverage, facts.coverage.is_some()),
        (EvidenceKind::Sarif, facts.sarif.is_some()),
        (EvidenceKind::Terraform, facts.terraform.is_some()),
    ] {
        if present {
            facts.provided.push(kind);
        } else if require.contains(&kind) {
            facts.missing_required.push(kind);
        }
    }
    Ok(facts)
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "delete",
        Action::Forget => "forget",
        Action::Read => "read",
        Action::NoOp => "no_op",
    }
}

/// Diff coverage: each added line the report knows is executable; covered if hit.
/// Added lines of changed *source* files the report does not mention at all count as
/// executable and uncovered (non-blank lines): a file no test loaded is not covered.
fn coverage_facts(
    head: &CoverageReport,
    base: Option<&CoverageReport>,
    change: &ChangeSet,
    source_paths: &BTreeSet<&str>,
) -> CoverageFacts {
    let mut facts = CoverageFacts {
        format: head.format.clone(),
        head: head.ratio(),
        base: base.and_then(CoverageReport::ratio),
        ..CoverageFacts::default()
    };
    facts.delta = match (facts.head, facts.base) {
        (Some(h), Some(b)) => Some(h - b),
        _ => None,
    };
    for file in &change.files {
        if file.binary || file.added.is_empty() {
            continue;
        }
        let mut uncovered = Vec::new();
        match head.lines_of(&file.path) {
            Some(lines) => {
                for line in &file.added {
                    if let Some(hits) = lines.get(&line.number) {
                        facts.added_executable += 1;
                        if *hits > 0 {
                            facts.added_covered += 1;
                        } else {
                            uncovered.push(line.number);
                        }
                    }
                }
            }
            None if source_paths.contains(file.path.as_str()) => {
                facts.unreported_files.push(file.path.clone());
                for line in file.added.iter().filter(|l| !l.text.trim().is_empty()) {
                    facts.added_executable += 1;
                    uncovered.push(line.number);
                }
            }
            None => {}
        }
        if !uncovered.is_empty() && facts.uncovered.len() < 50 {
            uncovered.truncate(50);
            facts.uncovered.insert(file.path.clone(), uncovered);
        }
    }
    facts.diff_coverage = (facts.added_executable > 0)
        .then(|| facts.added_covered as f64 / facts.added_executable as f64);
    facts
}

/// Counts one SARIF finding: it is new when it lies on a line the change added, or
/// anywhere in a file the change added. `added_lines` caches each file's added lines.
fn add_finding<'c>(
    facts: &mut SarifFacts,
    f: sarif::Finding,
    changed: &ChangedFiles<'c>,
    added_lines: &mut HashMap<&'c str, BTreeSet<u32>>,
) {
    facts.total += 1;
    let Some(path) = f.path.as_deref() else {
        return;
    };
    let Some(file) = changed.find(path) else {
        return;
    };
    let lines = added_lines
        .entry(file.path.as_str())
        .or_insert_with(|| file.added.iter().map(|l| l.number).collect());
    let new = match (f.start_line, f.end_line) {
        _ if file.status == FileStatus::Added => true,
        (Some(s), Some(e)) => lines.range(s..=e.max(s)).next().is_some(),
        (Some(s), None) => lines.contains(&s),
        (None, _) => false,
    };
    if !new {
        return;
    }
    let severity = match f.severity {
        sarif::Severity::Critical => "critical",
        sarif::Severity::High => "high",
        sarif::Severity::Medium => "medium",
        sarif::Severity::Low => "low",
    };
    *facts.new_by_severity.entry(severity.into()).or_default() += 1;
    if facts.new.len() < 50 {
        facts.new.push(NewFinding {
            tool: f.tool,
            rule_id: f.rule_id,
            severity: severity.into(),
            path: file.path.clone(),
            line: f.start_line,
            message: f.message,
        });
    }
}
