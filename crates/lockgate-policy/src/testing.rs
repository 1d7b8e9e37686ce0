//! `lockgate policy test`: runs `test_*` rules, the way `opa test` does.
//!
//! A test passes when its rule evaluates to `true`. Tests usually mock the input with
//! `with input as {...}`, and may use the built-in pack's helpers via
//! `data.lockgate.builtin`.

use crate::PolicySet;
use serde::Serialize;
use std::time::{Duration, Instant};

/// One test's result.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub file: String,
    pub package: String,
    pub name: String,
    pub passed: bool,
    /// Why it failed (undefined, false, or an evaluation error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_us: u128,
}

/// All results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TestReport {
    pub results: Vec<TestResult>,
}

impl TestReport {
    /// Tests that passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }

    /// Tests that failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// True when at least one test ran and none failed.
    pub fn ok(&self) -> bool {
        !self.results.is_empty() && self.failed() == 0
    }
}

/// Names of rules that start with `test_` at the beginning of a line.
pub(crate) fn test_rule_names(source: &str) -> Vec<String> {
    let mut names: Vec<String> = source
        .lines()
        .filter_map(|line| {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (name.starts_with("test_") && name.len() > 5).then_some(name)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

pub(crate) fn run(set: &PolicySet, timeout: Duration) -> TestReport {
    let mut report = TestReport::default();
    for file in &set.team {
        for name in test_rule_names(&file.source) {
            let path = format!("{}.{}", file.package, name);
            let start = Instant::now();
            let result = set
                .prepared_engine(None, timeout)
                .and_then(|mut engine| crate::eval_rule(&mut engine, &path));
            let (passed, error) = match result {
                Ok(serde_json::Value::Bool(true)) => (true, None),
                Ok(serde_json::Value::Null) => (false, Some("undefined".to_string())),
                Ok(other) => (false, Some(format!("evaluated to {other}, not true"))),
                Err(e) => (false, Some(e.to_string())),
            };
            report.results.push(TestResult {
                file: file.name.clone(),
                package: file.package.clone(),
                name,
                passed,
                error,
                duration_us: start.elapsed().as_micros(),
            });
        }
    }
    report
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_test_rules_at_line_start() {
        let src = "package x\ntest_a if true\n  test_indented if true\ntest_b := true\ntest_a if false\nnot_test_c if true\ntest_ if true\n";
        assert_eq!(super::test_rule_names(src), ["test_a", "test_b"]);
    }
}
