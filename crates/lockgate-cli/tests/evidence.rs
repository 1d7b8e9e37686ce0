//! Evidence and the trust score end to end: real pytest/coverage.py/Terraform outputs
//! fed to the real binary against a real git repository whose files they describe.

mod common;

use common::{agent_key, approval_rules, attest, check_json, factor, lockgate};
use lockgate_testkit::{CLAUDE, COPILOT, TestRepo};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Real tool outputs (see crates/lockgate-evidence/tests/data/generated/README.md).
fn generated(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../lockgate-evidence/tests/data/generated")
        .join(name)
}

fn generated_text(name: &str) -> String {
    std::fs::read_to_string(generated(name)).unwrap()
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The first `n` lines of a file, newline-terminated.
fn head_lines(text: &str, n: usize) -> String {
    text.lines().take(n).map(|l| format!("{l}\n")).collect()
}

/// `main` holds the first version of the Python project the reports were made from
/// (`price()` and the first two tests); the `change` branch, by Claude Code, adds
/// `shipping()` and three tests, i.e. becomes exactly the files pytest and coverage.py
/// ran on.
fn pyproj() -> TestRepo {
    let r = TestRepo::new();
    let trust = agent_key(&r);
    r.write(".lockgate/trust.toml", &trust);
    r.write(
        ".github/CODEOWNERS",
        "* @org/maintainers\n/app/ @org/backend\n/infra/ @org/platform\n",
    );
    r.write("app/__init__.py", "");
    let pricing = generated_text("pyproj/app/pricing.py");
    let tests = generated_text("pyproj/tests/test_pricing.py");
    r.write("app/pricing.py", &head_lines(&pricing, 7));
    r.write("tests/test_pricing.py", &head_lines(&tests, 12));
    r.commit("init");
    r.branch("change");
    r.write("app/pricing.py", &pricing);
    r.write("tests/test_pricing.py", &tests);
    r.commit_as(CLAUDE, "feat: shipping cost");
    attest(&r, "claude-code", "claude-sonnet-4-5");
    r
}

#[test]
fn pytest_junit_and_coverage_feed_the_score_and_failures_need_review() {
    let r = pyproj();
    let (_, bare) = check_json(&r, &[]);
    assert_eq!(bare["evidence"]["provided"], serde_json::json!([]));
    assert_eq!(factor(&bare, "tests")["measured"], false);

    let junit = generated("pytest-junit.xml");
    let lcov = generated("coverage.lcov");
    let (code, d) = check_json(&r, &["--junit", arg(&junit), "--coverage", arg(&lcov)]);
    assert_eq!(code, 3, "{d:#}");
    let tests = &d["evidence"]["tests"];
    assert_eq!(
        (
            &tests["total"],
            &tests["passed"],
            &tests["failed"],
            &tests["errored"],
            &tests["skipped"]
        ),
        (
            &Value::from(5),
            &Value::from(2),
            &Value::from(2),
            &Value::from(0),
            &Value::from(1)
        )
    );
    assert_eq!(tests["tests_changed"], true);
    assert_eq!(tests["source_changed"], true);
    assert!(
        tests["failures"][0]
            .as_str()
            .unwrap()
            .contains("test_wrong_on_purpose"),
        "{tests}"
    );

    // Added executable lines per coverage.py: app/pricing.py 10–13 (only the `def`
    // ran), tests/test_pricing.py 14, 15, 18, 19, 20, 23, 24 (hit) and 25 (not hit).
    let cov = &d["evidence"]["coverage"];
    assert_eq!(cov["format"], "lcov");
    assert_eq!(cov["added_executable"], 12, "{cov:#}");
    assert_eq!(cov["added_covered"], 8);
    assert_eq!(
        cov["uncovered"]["app/pricing.py"],
        serde_json::json!([11, 12, 13])
    );
    assert_eq!(
        cov["uncovered"]["tests/test_pricing.py"],
        serde_json::json!([25])
    );
    assert_eq!(factor(&d, "coverage")["score"], 67);

    assert!(factor(&d, "tests")["score"].as_u64().unwrap() <= 10);
    assert!(approval_rules(&d).contains(&"evidence.tests_failed".to_string()));
    assert!(
        d["trust"]["score"].as_u64() < bare["trust"]["score"].as_u64(),
        "failing tests must lower the score: {} vs {}",
        d["trust"]["score"],
        bare["trust"]["score"]
    );

    // coverage.py's Cobertura XML of the same run (absolute <source>) says the same.
    let cobertura = generated("coverage-cobertura.xml");
    let (_, c) = check_json(&r, &["--coverage", arg(&cobertura)]);
    assert_eq!(c["evidence"]["coverage"]["format"], "cobertura");
    assert_eq!(c["evidence"]["coverage"]["added_executable"], 12);
    assert_eq!(c["evidence"]["coverage"]["added_covered"], 8);
}

#[test]
fn base_coverage_gives_the_overall_delta_and_a_drop_costs_points() {
    let r = pyproj();
    let lcov = generated("coverage.lcov");
    let dir = tempfile::tempdir().unwrap();
    // The base run: price() fully covered, 9 of 9 lines (coverage.py lcov shape).
    let base = dir.path().join("base.lcov");
    std::fs::write(
        &base,
        "SF:app/pricing.py\nDA:1,1\nDA:2,1\nDA:3,1\nDA:4,1\nDA:5,1\nDA:6,1\nDA:7,1\nLF:7\nLH:7\nend_of_record\n\
         SF:tests/test_pricing.py\nDA:1,1\nDA:3,1\nLF:2\nLH:2\nend_of_record\n",
    )
    .unwrap();
    let (_, with_base) = check_json(
        &r,
        &["--coverage", arg(&lcov), "--base-coverage", arg(&base)],
    );
    let cov = &with_base["evidence"]["coverage"];
    assert_eq!(cov["base"], 1.0);
    let delta = cov["delta"].as_f64().unwrap();
    assert!((delta - (21.0 / 25.0 - 1.0)).abs() < 1e-9, "{cov:#}");
    let (_, head_only) = check_json(&r, &["--coverage", arg(&lcov)]);
    assert!(
        factor(&with_base, "coverage")["score"].as_u64()
            < factor(&head_only, "coverage")["score"].as_u64()
    );
    assert!(
        factor(&with_base, "coverage")["detail"]
            .as_str()
            .unwrap()
            .contains("overall -16.0 points")
    );

    // --base-coverage needs --coverage.
    let run = lockgate(
        &r,
        &["check", "--base", "main", "--base-coverage", arg(&base)],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
}

/// A SARIF run from a made-up analyzer: one high-severity result on a line the change
/// added, one on an old line, one in a file the change does not touch.
fn sarif(dir: &Path) -> PathBuf {
    let path = dir.join("analyzer.sarif");
    let result = |rule: &str, file: &str, line: u32| {
        serde_json::json!({
            "ruleId": rule,
            "message": {"text": format!("{rule} here")},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": file, "uriBaseId": "%SRCROOT%"},
                "region": {"startLine": line}
            }}]
        })
    };
    let doc = serde_json::json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {"name": "pyscan", "rules": [
                {"id": "PY001", "defaultConfiguration": {"level": "warning"},
                 "properties": {"security-severity": "8.1"}},
                {"id": "PY002", "defaultConfiguration": {"level": "note"}}
            ]}},
            "results": [
                result("PY001", "app/pricing.py", 11),
                result("PY002", "app/pricing.py", 2),
                result("PY002", "app/__init__.py", 1)
            ]
        }]
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    path
}

#[test]
fn new_sarif_findings_on_added_lines_lower_the_score_and_need_review() {
    let r = pyproj();
    let dir = tempfile::tempdir().unwrap();
    let report = sarif(dir.path());
    let (code, d) = check_json(&r, &["--sarif", arg(&report)]);
    assert_eq!(code, 3);
    let s = &d["evidence"]["sarif"];
    assert_eq!(s["tools"], serde_json::json!(["pyscan"]));
    assert_eq!(s["total"], 3);
    assert_eq!(
        s["new_by_severity"],
        serde_json::json!({"high": 1}),
        "{s:#}"
    );
    assert_eq!(s["new"][0]["path"], "app/pricing.py");
    assert_eq!(s["new"][0]["line"], 11);
    assert!(factor(&d, "analysis")["score"].as_u64().unwrap() <= 25);
    assert!(approval_rules(&d).contains(&"evidence.new_findings".to_string()));

    // The text report shows the breakdown and the new finding.
    let run = lockgate(&r, &["check", "--base", "main", "--sarif", arg(&report)]);
    assert!(run.stdout.contains("trust:"), "{}", run.stdout);
    assert!(run.stdout.contains("analysis"));
    assert!(
        run.stdout
            .contains("new: app/pricing.py:11 high [pyscan] PY001")
    );
    let md = lockgate(
        &r,
        &[
            "check",
            "--base",
            "main",
            "--format",
            "markdown",
            "--sarif",
            arg(&report),
        ],
    );
    assert!(md.stdout.contains("Trust score"), "{}", md.stdout);
    assert!(md.stdout.contains("| analysis |"));
}

#[test]
fn bad_reports_are_errors_that_name_the_file() {
    let r = pyproj();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("junit.xml");
    std::fs::write(
        &broken,
        "<testsuites><testsuite name=\"x\" tests=\"1\"><testcase",
    )
    .unwrap();
    let run = lockgate(&r, &["check", "--base", "main", "--junit", arg(&broken)]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains(arg(&broken)), "{}", run.stderr);

    let missing = dir.path().join("nope.lcov");
    let run = lockgate(
        &r,
        &["check", "--base", "main", "--coverage", arg(&missing)],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("nope.lcov"), "{}", run.stderr);

    let wrong = dir.path().join("old.sarif");
    std::fs::write(&wrong, r#"{"version":"1.0.0","runs":[]}"#).unwrap();
    let run = lockgate(&r, &["check", "--base", "main", "--sarif", arg(&wrong)]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("old.sarif"), "{}", run.stderr);

    let plan = dir.path().join("plan.json");
    std::fs::write(&plan, "Terraform used the selected providers…\n").unwrap();
    let run = lockgate(
        &r,
        &["check", "--base", "main", "--terraform-plan", arg(&plan)],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("plan.json"), "{}", run.stderr);

    let ledger = dir.path().join("ledger.jsonl");
    std::fs::write(
        &ledger,
        "{\"agent\":\"claude-code\",\"outcome\":\"merged\"}\n{\"agent\":\"claude-code\",\"outcome\":\"great\"}\n",
    )
    .unwrap();
    let run = lockgate(&r, &["check", "--base", "main", "--ledger", arg(&ledger)]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("ledger.jsonl"), "{}", run.stderr);
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);
}

fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("lockgate.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn the_ledger_track_record_moves_the_score() {
    let r = pyproj();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.jsonl");
    let bad = dir.path().join("bad.jsonl");
    let line = |outcome: &str| format!("{{\"agent\":\"claude-code\",\"outcome\":\"{outcome}\"}}\n");
    std::fs::write(&good, line("merged").repeat(20)).unwrap();
    std::fs::write(&bad, line("merged").repeat(5) + &line("reverted").repeat(4)).unwrap();
    let (_, g) = check_json(&r, &["--ledger", arg(&good)]);
    let (_, b) = check_json(&r, &["--ledger", arg(&bad)]);
    assert_eq!(factor(&g, "track_record")["measured"], true);
    assert_eq!(factor(&g, "track_record")["score"], 95);
    assert_eq!(factor(&b, "track_record")["score"], 32);
    assert!(g["trust"]["score"].as_u64() > b["trust"]["score"].as_u64());
    // Another agent's history does not count for this one.
    let other = dir.path().join("other.jsonl");
    std::fs::write(&other, "{\"agent\":\"codex\",\"outcome\":\"reverted\"}\n").unwrap();
    let (_, o) = check_json(&r, &["--ledger", arg(&other)]);
    assert_eq!(factor(&o, "track_record")["measured"], false);
}

#[test]
fn required_evidence_that_is_missing_scores_zero_and_warns() {
    let r = pyproj();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[trust]\nrequire = [\"tests\", \"coverage\"]\n");
    let (_, d) = check_json(&r, &["--config", arg(&config)]);
    assert_eq!(
        d["evidence"]["missing_required"],
        serde_json::json!(["tests", "coverage"])
    );
    assert_eq!(factor(&d, "tests")["score"], 0);
    assert_eq!(factor(&d, "coverage")["score"], 0);
    let (_, lenient) = check_json(&r, &[]);
    assert!(d["trust"]["score"].as_u64() < lenient["trust"]["score"].as_u64());
    assert!(
        d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["rule"] == "evidence.missing")
    );
}

#[test]
fn a_low_score_routes_to_senior_reviewers() {
    // An unsigned Copilot change with failing tests, a new high finding and a bad
    // history lands in the senior band; the senior pool is asked on top of the owners.
    let r = TestRepo::new();
    r.write(
        ".github/CODEOWNERS",
        "* @org/maintainers\n/app/ @org/backend\n",
    );
    r.write("app/__init__.py", "");
    let pricing = generated_text("pyproj/app/pricing.py");
    r.write("app/pricing.py", &head_lines(&pricing, 7));
    r.commit("init");
    r.branch("change");
    r.write("app/pricing.py", &pricing);
    r.commit_as(COPILOT, "feat: shipping cost");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[review]\nsenior_reviewers = [\"@org/seniors\"]\nsenior_approvals = 2\n",
    );
    let ledger = dir.path().join("ledger.jsonl");
    std::fs::write(
        &ledger,
        "{\"agent\":\"copilot-coding-agent\",\"outcome\":\"reverted\"}\n".repeat(3),
    )
    .unwrap();
    let junit = generated("pytest-junit.xml");
    let report = sarif(dir.path());
    let (code, d) = check_json(
        &r,
        &[
            "--config",
            arg(&config),
            "--junit",
            arg(&junit),
            "--sarif",
            arg(&report),
            "--ledger",
            arg(&ledger),
        ],
    );
    assert_eq!(code, 3, "{d:#}");
    assert_eq!(d["trust"]["band"], "senior", "{:#}", d["trust"]);
    assert_eq!(d["trust"]["matrix_trust"], "low");
    let senior = d["required_approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "trust.senior_review")
        .unwrap_or_else(|| panic!("{:#}", d["required_approvals"]));
    assert_eq!(senior["owners"], serde_json::json!(["@org/seniors"]));
    assert_eq!(senior["count"], 2);
    assert!(
        senior["reason"]
            .as_str()
            .unwrap()
            .contains("weakest factors")
    );

    // `lockgate evidence` shows the same score without running policy.
    let run = lockgate(
        &r,
        &[
            "evidence",
            "--base",
            "main",
            "--config",
            arg(&config),
            "--junit",
            arg(&junit),
            "--sarif",
            arg(&report),
            "--ledger",
            arg(&ledger),
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let e: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(e["trust"], d["trust"]);
    assert_eq!(e["evidence"], d["evidence"]);
}

/// `main` holds Terraform code; Claude Code changes it, and the plan is the real
/// Terraform 1.11 plan that creates, updates, replaces and destroys `terraform_data`.
fn infra_repo() -> TestRepo {
    let r = TestRepo::new();
    let trust = agent_key(&r);
    r.write(".lockgate/trust.toml", &trust);
    r.write(
        ".github/CODEOWNERS",
        "* @org/maintainers\n/infra/ @org/platform\n",
    );
    r.write(
        "infra/main.tf",
        "resource \"terraform_data\" \"kept\" {\n  input = \"v1\"\n}\n",
    );
    r.commit("init");
    r.branch("change");
    r.write("infra/main.tf", &generated_text("terraform-main.after.tf"));
    r.commit_as(CLAUDE, "infra: rework data resources");
    attest(&r, "claude-code", "claude-sonnet-4-5");
    r
}

#[test]
fn terraform_plans_flag_destroyed_state_and_access_changes() {
    let r = infra_repo();
    let plan = generated("terraform-plan.json");
    let dir = tempfile::tempdir().unwrap();

    // By default terraform_data is neither stateful nor access-granting.
    let (_, d) = check_json(&r, &["--terraform-plan", arg(&plan)]);
    let tf = &d["evidence"]["terraform"];
    assert_eq!(
        tf["actions"],
        serde_json::json!({"create": 1, "delete": 1, "replace": 1, "update": 1, "no_op": 1}),
        "{tf:#}"
    );
    assert_eq!(tf["by_type"]["terraform_data"]["replace"], 1);
    assert_eq!(tf["destructive_count"], 0);
    assert!(!approval_rules(&d).contains(&"evidence.terraform_destructive".to_string()));

    // A team that keeps state in terraform_data says so; destroying it needs the gate.
    let stateful = write_config(
        dir.path(),
        "[evidence.terraform]\nstateful = [\"terraform_data\"]\n",
    );
    let (code, d) = check_json(
        &r,
        &["--config", arg(&stateful), "--terraform-plan", arg(&plan)],
    );
    assert_eq!(code, 3);
    let tf = &d["evidence"]["terraform"];
    assert_eq!(tf["destructive_count"], 2, "{tf:#}");
    let destructive: Vec<&str> = tf["destructive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        destructive
            .iter()
            .any(|s| s.contains("terraform_data.destroyed")),
        "{destructive:?}"
    );
    assert!(
        destructive
            .iter()
            .any(|s| s.contains("terraform_data.replaced")),
        "{destructive:?}"
    );
    let approval = d["required_approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "evidence.terraform_destructive")
        .unwrap();
    assert_eq!(approval["owners"], serde_json::json!(["@org/platform"]));
    assert_eq!(approval["count"], 2);

    // Access-granting resources make the change `auth`: never automated, gated.
    let dir2 = tempfile::tempdir().unwrap();
    let access = write_config(
        dir2.path(),
        "[evidence.terraform]\naccess = [\"terraform_*\"]\n",
    );
    let (_, d) = check_json(
        &r,
        &["--config", arg(&access), "--terraform-plan", arg(&plan)],
    );
    assert!(
        d["categories"]
            .as_array()
            .unwrap()
            .contains(&Value::from("auth")),
        "{}",
        d["categories"]
    );
    assert_eq!(d["impact"], "critical");
    assert_eq!(d["route"], "gate");
    assert!(approval_rules(&d).contains(&"evidence.terraform_access".to_string()));
}

#[test]
fn invalid_trust_settings_are_tool_errors() {
    let r = pyproj();
    let dir = tempfile::tempdir().unwrap();
    for (toml, expect) in [
        (
            "[trust]\nfast = 30\nnormal = 60\n",
            "normal (60) ≤ fast (30)",
        ),
        (
            "[[trust.models]]\npattern = \"x-*\"\ntier = \"mythic\"\n",
            "mythic",
        ),
        ("[trust]\nrequire = [\"vibes\"]\n", "vibes"),
    ] {
        let config = write_config(dir.path(), toml);
        let run = lockgate(&r, &["check", "--base", "main", "--config", arg(&config)]);
        assert_eq!(run.code, 1, "{toml}: {}", run.stdout);
        assert!(run.stderr.contains(expect), "{toml}: {}", run.stderr);
    }
}
