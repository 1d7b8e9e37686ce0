//! Evidence reports come from CI jobs that may run the agent's own code: JUnit XML,
//! lcov, Cobertura XML, SARIF and Terraform plan JSON. Parsing must never panic and
//! the counts must stay consistent.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lockgate_evidence::{coverage, junit, sarif, terraform};
use std::sync::OnceLock;

static RULES: OnceLock<terraform::TerraformRules> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = junit::parse(data) {
        // Every test case is counted once, under exactly one outcome.
        assert_eq!(t.passed + t.failed + t.errored + t.skipped, t.total);
        assert!(t.failures.len() as u64 <= t.failed + t.errored);
    }
    if let Ok(c) = coverage::parse_any(data, Some("/ci/work"), &|_| true) {
        for lines in c.files.values() {
            assert!(lines.keys().all(|n| *n > 0));
        }
        if let Some(r) = c.ratio() {
            assert!(r.is_finite());
        }
    }
    let mut streamed = 0usize;
    let streamed_report = sarif::parse_with(data, Some("/ci/work"), |f| {
        streamed += 1;
        assert!(f.start_line.is_none_or(|n| n > 0));
        assert!(f.end_line >= f.start_line);
    });
    match sarif::parse(data, Some("/ci/work")) {
        Ok(all) => assert_eq!(Some(all.findings.len()), streamed_report.ok().map(|_| streamed)),
        Err(_) => assert!(streamed_report.is_err()),
    }
    let rules = RULES.get_or_init(terraform::TerraformRules::default);
    if let Ok(plan) = terraform::parse(data, rules) {
        let managed: u64 = plan.actions.values().sum();
        assert!(plan.destructive_count <= managed);
        assert!(plan.destructive.len() as u64 <= plan.destructive_count);
        assert!(plan.access.len() as u64 <= plan.access_count);
    }
});
