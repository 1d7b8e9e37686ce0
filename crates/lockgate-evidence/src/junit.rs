//! JUnit XML test results (the de-facto format of JUnit/Surefire, pytest, Jest,
//! go-junit-report, cargo2junit, nextest…): counts of passed, failed, errored and
//! skipped test cases, from the `<testcase>` elements themselves (suite attributes are
//! summaries tools get wrong), with the first failures named.

use crate::xml::{XmlEvent, XmlReader};
use crate::{EvidenceError, MAX_ITEMS, cut};
use serde::{Deserialize, Serialize};
use std::io::Read;

const FORMAT: &str = "JUnit";
/// Failures named in the report (the counts cover all of them).
const MAX_NAMED: usize = 20;

/// One failing or erroring test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedTest {
    /// `classname.name` (or `name`).
    pub name: String,
    /// `failure` or `error`.
    pub kind: String,
    pub message: String,
    /// The test's file, when the report says (`file` attribute).
    pub file: Option<String>,
}

/// What a test run says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    pub total: u64,
    pub passed: u64,
    pub failed: u64,
    pub errored: u64,
    pub skipped: u64,
    /// The first failures and errors.
    pub failures: Vec<FailedTest>,
    /// Test files named by `file` attributes (deduplicated, first 1,000).
    pub files: Vec<String>,
}

/// Parses one JUnit XML report (`<testsuites>`, a bare `<testsuite>`, nested suites).
pub fn parse(reader: impl Read) -> Result<TestReport, EvidenceError> {
    let mut xml = XmlReader::new(std::io::BufReader::new(reader), FORMAT);
    let mut report = TestReport::default();
    let mut saw_suite = false;
    // The open test case: name, file, outcome so far.
    let mut case: Option<(String, Option<String>, Outcome)> = None;
    // Open <testsuite> elements: what each declares, and the counts when it opened.
    let mut suites: Vec<SuiteMark> = Vec::new();
    loop {
        match xml.next()? {
            XmlEvent::Start { name, attrs, empty } => match name.as_str() {
                "testsuites" => saw_suite = true,
                "testsuite" => {
                    saw_suite = true;
                    if !empty && suites.len() < 64 {
                        let number =
                            |k: &str| attrs.get(k).and_then(|v| v.trim().parse::<u64>().ok());
                        suites.push(SuiteMark {
                            tests: number("tests"),
                            skipped: number("skipped").or(number("disabled")),
                            total_before: report.total,
                            skipped_before: report.skipped,
                        });
                    }
                }
                "testcase" => {
                    let test = match (attrs.get("classname"), attrs.get("name")) {
                        (Some(c), Some(n)) if !c.is_empty() => format!("{c}.{n}"),
                        (_, Some(n)) => n.clone(),
                        (Some(c), None) => c.clone(),
                        (None, None) => String::from("(unnamed)"),
                    };
                    let file = attrs.get("file").cloned();
                    if empty {
                        count(&mut report, test, file, Outcome::Passed)?;
                    } else {
                        case = Some((test, file, Outcome::Passed));
                    }
                }
                "failure" | "error" | "skipped" => {
                    if let Some((_, _, outcome)) = case.as_mut() {
                        let message = attrs
                            .get("message")
                            .or(attrs.get("type"))
                            .cloned()
                            .unwrap_or_default();
                        let next = match name.as_str() {
                            "failure" => Outcome::Failed(message),
                            "error" => Outcome::Errored(message),
                            _ => Outcome::Skipped,
                        };
                        // A failure outranks an error outranks a skip.
                        if next.rank() > outcome.rank() {
                            *outcome = next;
                        }
                    }
                }
                _ => {}
            },
            XmlEvent::End { name } if name == "testcase" => {
                if let Some((test, file, outcome)) = case.take() {
                    count(&mut report, test, file, outcome)?;
                }
            }
            XmlEvent::End { name } if name == "testsuite" => {
                if let Some(mark) = suites.pop() {
                    add_unlisted_skips(&mut report, &mark);
                }
            }
            XmlEvent::End { .. } | XmlEvent::Text(_) => {}
            XmlEvent::Eof => break,
        }
    }
    if !saw_suite {
        return Err(EvidenceError::malformed(
            FORMAT,
            "no <testsuites> or <testsuite> element: this is not a JUnit report",
        ));
    }
    Ok(report)
}

/// A `<testsuite>` as it opened.
struct SuiteMark {
    tests: Option<u64>,
    skipped: Option<u64>,
    total_before: u64,
    skipped_before: u64,
}

/// Some writers (Rust's libtest `--format junit`) count ignored tests in the suite's
/// `tests` and `skipped` attributes without listing them as test cases. When a suite
/// declares more skipped tests than it listed, and more tests than it listed, the
/// difference is counted as skipped — never as passed or failed.
fn add_unlisted_skips(report: &mut TestReport, mark: &SuiteMark) {
    let (Some(tests), Some(skipped)) = (mark.tests, mark.skipped) else {
        return;
    };
    let listed = report.total - mark.total_before;
    let listed_skipped = report.skipped - mark.skipped_before;
    let missing = skipped
        .saturating_sub(listed_skipped)
        .min(tests.saturating_sub(listed))
        .min(MAX_ITEMS as u64);
    report.total += missing;
    report.skipped += missing;
}

enum Outcome {
    Passed,
    Skipped,
    Errored(String),
    Failed(String),
}

impl Outcome {
    fn rank(&self) -> u8 {
        match self {
            Outcome::Passed => 0,
            Outcome::Skipped => 1,
            Outcome::Errored(_) => 2,
            Outcome::Failed(_) => 3,
        }
    }
}

fn count(
    report: &mut TestReport,
    name: String,
    file: Option<String>,
    outcome: Outcome,
) -> Result<(), EvidenceError> {
    report.total += 1;
    if report.total > MAX_ITEMS as u64 {
        return Err(EvidenceError::TooLarge {
            format: FORMAT,
            what: "the number of test cases",
            limit: MAX_ITEMS as u64,
        });
    }
    if let Some(f) = &file
        && report.files.len() < 1000
        && !report.files.contains(f)
    {
        report.files.push(f.clone());
    }
    let (kind, message) = match outcome {
        Outcome::Passed => {
            report.passed += 1;
            return Ok(());
        }
        Outcome::Skipped => {
            report.skipped += 1;
            return Ok(());
        }
        Outcome::Failed(m) => {
            report.failed += 1;
            ("failure", m)
        }
        Outcome::Errored(m) => {
            report.errored += 1;
            ("error", m)
        }
    };
    if report.failures.len() < MAX_NAMED {
        report.failures.push(FailedTest {
            name: cut(name),
            kind: kind.into(),
            message: cut(message),
            file,
        });
    }
    Ok(())
}

impl TestReport {
    /// Adds another report's counts (several test jobs).
    pub fn merge(&mut self, other: TestReport) {
        self.total += other.total;
        self.passed += other.passed;
        self.failed += other.failed;
        self.errored += other.errored;
        self.skipped += other.skipped;
        for f in other.failures {
            if self.failures.len() < MAX_NAMED {
                self.failures.push(f);
            }
        }
        for f in other.files {
            if self.files.len() < 1000 && !self.files.contains(&f) {
                self.files.push(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_per_test_case() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="99" failures="0">
  <testcase classname="tests.test_a" name="test_ok" file="tests/test_a.py" time="0.01"/>
  <testcase classname="tests.test_a" name="test_bad"><failure message="assert 1 == 2">trace &amp; more</failure></testcase>
  <testcase classname="tests.test_a" name="test_boom"><error message="KeyError"/></testcase>
  <testcase classname="tests.test_a" name="test_later"><skipped message="todo"/></testcase>
  <testsuite name="nested"><testcase name="inner"><system-out>x</system-out></testcase></testsuite>
</testsuite></testsuites>"#;
        let r = parse(xml.as_bytes()).unwrap();
        assert_eq!(
            (r.total, r.passed, r.failed, r.errored, r.skipped),
            (5, 2, 1, 1, 1)
        );
        assert_eq!(r.failures[0].name, "tests.test_a.test_bad");
        assert_eq!(r.failures[0].message, "assert 1 == 2");
        assert_eq!(r.failures[1].kind, "error");
        assert_eq!(r.files, ["tests/test_a.py"]);
        assert!(parse("<coverage/>".as_bytes()).is_err());
        assert!(parse("<testsuite><testcase".as_bytes()).is_err());
    }
}
