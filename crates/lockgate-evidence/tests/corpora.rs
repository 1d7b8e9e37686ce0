//! The parsers on real reports: SARIF from the SARIF multitool and gitleaks, Cobertura
//! from JaCoCo-style and Istanbul producers with pycobertura's expectations, lcov,
//! Cobertura and JUnit from coverage.py and pytest, JUnit from Rust's libtest, and
//! Terraform plans from Terraform
//! itself (see tests/data/SOURCES.md).

use lockgate_evidence::coverage::{parse_cobertura, parse_file, parse_lcov};
use lockgate_evidence::junit;
use lockgate_evidence::sarif;
use lockgate_evidence::terraform::{self, Action, TerraformRuleLists, TerraformRules};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(data(path)).unwrap()
}

/// Counts results the way SARIF defines findings, over the generic JSON tree: an
/// independent reading of the same files.
fn count_findings(log: &Value) -> (usize, BTreeMap<String, usize>) {
    let mut levels = BTreeMap::new();
    let mut n = 0;
    for run in log["runs"].as_array().unwrap() {
        let rules = run["tool"]["driver"]["rules"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for r in run["results"].as_array().cloned().unwrap_or_default() {
            let suppressed = r["suppressions"].as_array().is_some_and(|s| !s.is_empty());
            let kind = r["kind"].as_str().unwrap_or("fail");
            if suppressed || kind != "fail" {
                continue;
            }
            n += 1;
            let rule = r["ruleIndex"]
                .as_u64()
                .and_then(|i| rules.get(i as usize))
                .or_else(|| rules.iter().find(|x| x["id"] == r["ruleId"]));
            let level = r["level"]
                .as_str()
                .or_else(|| rule.and_then(|x| x["defaultConfiguration"]["level"].as_str()))
                .unwrap_or("warning");
            *levels.entry(level.to_string()).or_default() += 1;
        }
    }
    (n, levels)
}

#[test]
fn sarif_multitool_outputs_and_gitleaks_agree_with_a_generic_reading() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data("sarif-sdk"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sarif"))
        .collect();
    files.push(data("gitleaks/sarif_simple.sarif"));
    assert!(files.len() > 90);
    let mut total = 0;
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let generic: Value = serde_json::from_slice(&bytes).unwrap();
        let (expected, expected_levels) = count_findings(&generic);
        let report = sarif::parse(bytes.as_slice(), None)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(report.findings.len(), expected, "{}", path.display());
        let mut levels = BTreeMap::new();
        for f in &report.findings {
            *levels.entry(f.level.clone()).or_default() += 1;
        }
        assert_eq!(levels, expected_levels, "{}", path.display());
        total += expected;
    }
    assert!(total > 100, "only {total} findings across the corpus");

    let gitleaks = sarif::parse(read("gitleaks/sarif_simple.sarif").as_slice(), None).unwrap();
    assert_eq!(gitleaks.tools, ["gitleaks"]);
    let f = &gitleaks.findings[0];
    assert!(f.path.is_some() && f.start_line.is_some(), "{f:?}");
}

#[test]
fn cobertura_matches_pycobertura() {
    let expected: Value = serde_json::from_slice(&read("pycobertura/expected.json")).unwrap();
    let e = &expected["tests/cobertura.xml"];
    let r = parse_cobertura(read("pycobertura/cobertura.xml").as_slice(), None, &|_| {
        true
    })
    .unwrap();
    assert_eq!(r.lines_total, e["total_statements"].as_u64().unwrap());
    for (file, statuses) in e["line_statuses_by_file"].as_object().unwrap() {
        let ours = r.lines_of(file).cloned().unwrap_or_default();
        let lines: Vec<u64> = statuses
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s[0].as_u64().unwrap())
            .collect();
        assert_eq!(
            ours.keys().map(|l| u64::from(*l)).collect::<Vec<_>>(),
            lines,
            "{file}"
        );
        for s in statuses.as_array().unwrap() {
            let (line, status) = (s[0].as_u64().unwrap() as u32, s[1].as_str().unwrap());
            // A miss has no hits; hits and partial branches have some.
            assert_eq!(ours[&line] == 0, status == "miss", "{file}:{line} {status}");
        }
    }
    let misses = e["line_statuses_by_file"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| v.as_array().unwrap().clone())
        .filter(|s| s[1] == "miss")
        .count() as u64;
    assert_eq!(r.lines_total - r.lines_covered, misses);

    let istanbul = parse_cobertura(
        read("pycobertura/cobertura-generated-by-istanbul-from-coffeescript.xml").as_slice(),
        None,
        &|_| true,
    )
    .unwrap();
    let ie = &expected["tests/cobertura-generated-by-istanbul-from-coffeescript.xml"];
    if let Some(n) = ie["total_statements"].as_u64() {
        assert_eq!(istanbul.lines_total, n);
    }
    assert!(istanbul.lines_total > 0);
}

#[test]
fn coverage_py_lcov_and_cobertura_say_the_same() {
    let keep = |p: &str| p.starts_with("app/");
    let lcov = parse_lcov(read("generated/coverage.lcov").as_slice(), None, &keep).unwrap();
    let xml = parse_file(&data("generated/coverage-cobertura.xml"), None, &keep).unwrap();
    assert_eq!(lcov.format, "lcov");
    assert_eq!(xml.format, "cobertura");
    let pricing = lcov.lines_of("app/pricing.py").unwrap();
    assert_eq!(pricing, xml.lines_of("app/pricing.py").unwrap());
    // shipping() (lines 10–13 of the source) was never called.
    assert_eq!(pricing[&11], 0);
    assert!(pricing[&2] > 0);
    assert_eq!(pricing.len(), 11);
    assert_eq!(pricing.values().filter(|h| **h > 0).count(), 8);
    // The totals include the test files coverage.py measured too.
    assert_eq!(
        (lcov.lines_total, lcov.lines_covered),
        (xml.lines_total, xml.lines_covered)
    );
    assert!(lcov.lines_total > 11);
    // Files not asked for only count in the totals.
    let none = parse_lcov(read("generated/coverage.lcov").as_slice(), None, &|_| false).unwrap();
    assert!(none.files.is_empty());
    assert_eq!(none.lines_total, lcov.lines_total);
}

#[test]
fn pytest_junit() {
    let r = junit::parse(read("generated/pytest-junit.xml").as_slice()).unwrap();
    assert_eq!(
        (r.total, r.passed, r.failed, r.errored, r.skipped),
        (5, 2, 2, 0, 1),
        "{r:?}"
    );
    let names: Vec<&str> = r.failures.iter().map(|f| f.name.as_str()).collect();
    assert!(
        names.contains(&"tests.test_pricing.test_wrong_on_purpose"),
        "{names:?}"
    );
}

/// Rust's own test harness (`cargo test -- -Z unstable-options --format junit`) counts
/// the ignored test in `tests`/`skipped` but does not list it, and puts no message on
/// the failure (`type="assert"`, the panic in `<system-out>`).
#[test]
fn libtest_junit() {
    let r = junit::parse(read("generated/libtest-junit.xml").as_slice()).unwrap();
    assert_eq!(
        (r.total, r.passed, r.failed, r.errored, r.skipped),
        (4, 2, 1, 0, 1),
        "{r:?}"
    );
    assert_eq!(r.failures[0].name, "tests.wrong_on_purpose");
    assert_eq!(r.failures[0].message, "assert");
}

#[test]
fn terraform_plans_from_terraform() {
    let plan = terraform::parse(
        read("generated/terraform-plan.json").as_slice(),
        &TerraformRules::default(),
    )
    .unwrap();
    assert_eq!(plan.terraform_version.as_deref(), Some("1.11.4"));
    for (action, n) in [
        (Action::Create, 1),
        (Action::Update, 1),
        (Action::Replace, 1),
        (Action::Delete, 1),
        (Action::NoOp, 1),
    ] {
        assert_eq!(plan.count(action), n, "{action:?}");
    }
    assert!(
        plan.destructive.is_empty(),
        "terraform_data is not stateful by default"
    );
    let strict = TerraformRules::new(&TerraformRuleLists {
        stateful: vec!["terraform_*".into()],
        access: vec![],
    })
    .unwrap();
    let plan = terraform::parse(read("generated/terraform-plan.json").as_slice(), &strict).unwrap();
    assert_eq!(
        plan.destructive,
        ["terraform_data.destroyed", "terraform_data.replaced"]
    );

    let v014 = terraform::parse(
        read("infracost/terraform_v0.14_plan.json").as_slice(),
        &TerraformRules::default(),
    )
    .unwrap();
    assert_eq!(
        (
            v014.count(Action::Create),
            v014.count(Action::Update),
            v014.count(Action::NoOp)
        ),
        (12, 1, 13)
    );
    assert!(
        v014.access.iter().any(|a| a.contains("aws_iam_role")),
        "{:?}",
        v014.access
    );
    let wrapped = terraform::parse(
        read("infracost/plan_with_terraform_wrapper.json").as_slice(),
        &TerraformRules::default(),
    )
    .unwrap();
    assert!(wrapped.count(Action::Create) > 0);
}
