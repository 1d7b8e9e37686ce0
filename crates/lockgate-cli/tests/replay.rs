//! `lockgate replay` on a real history: a merged agent PR, a direct agent commit, a
//! human commit and a human policy change, re-checked with then-rules and candidates.

mod common;

use common::{agent_key, attest, lockgate};
use lockgate_testkit::{CLAUDE, COPILOT, TestRepo};
use serde_json::Value;

const DOCS_POLICY: &str = r#"package lockgate.team.docs
import rego.v1

require_approval contains {"rule": "team.docs_review", "owners": ["@org/docs"], "count": 1, "reason": "agents' docs changes get a docs review"} if {
    input.author.kind == "agent"
    "docs" in input.categories
}
"#;

const SRC_POLICY: &str = r#"package lockgate.team.src
import rego.v1

deny contains {"rule": "team.no_agent_src", "message": "agents do not change src/ directly"} if {
    input.author.kind == "agent"
    some f in input.files
    startswith(f.path, "src/")
}
"#;

struct History {
    repo: TestRepo,
    merge: String,
    direct: String,
    human: String,
    policy_change: String,
    /// Commit time of the merge (the first replayed change).
    merge_time: u64,
}

/// main: init (with a docs policy) → merged Claude docs PR → Copilot commit to src/
/// (unsigned) → human README edit → human swaps the docs policy for a src policy.
fn history() -> History {
    let r = TestRepo::new();
    let trust = agent_key(&r);
    r.write(".lockgate/trust.toml", &trust);
    r.write(
        ".github/CODEOWNERS",
        "* @org/maintainers\n/docs/ @org/docs\n",
    );
    r.write(".lockgate/policies/docs.rego", DOCS_POLICY);
    r.write("README.md", "# project\n");
    r.write("docs/guide.md", "# Guide\n");
    r.write("src/lib.rs", "pub fn f() {}\n");
    r.commit("init");

    r.branch("docs-pr");
    r.write("docs/guide.md", "# Guide\n\nMore words.\n");
    r.commit_as(CLAUDE, "docs: expand the guide");
    attest(&r, "claude-code", "claude-sonnet-4-5");
    r.checkout("main");
    let merge = r.merge_no_ff("docs-pr", "Merge pull request #1 from docs-pr");
    let merge_time = r.clock();

    r.write("src/lib.rs", "pub fn f() {}\npub fn g() {}\n");
    let direct = r.commit_as(COPILOT, "feat: g");

    r.write("README.md", "# project\n\nUsage.\n");
    let human = r.commit("readme: usage");

    std::fs::remove_file(r.file(".lockgate/policies/docs.rego")).unwrap();
    r.write(".lockgate/policies/src.rego", SRC_POLICY);
    let policy_change = r.commit("policy: agents stay out of src/");
    History {
        repo: r,
        merge,
        direct,
        human,
        policy_change,
        merge_time,
    }
}

fn replay(r: &TestRepo, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["replay", "--json"];
    all.extend_from_slice(args);
    let run = lockgate(r, &all);
    let json = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} {}", run.stdout, run.stderr));
    (run.code, json)
}

fn entry<'a>(report: &'a Value, commit: &str) -> &'a Value {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["commit"] == commit)
        .unwrap_or_else(|| panic!("{commit} not replayed: {report:#}"))
}

#[test]
fn replays_first_parent_history_with_the_rules_at_the_tip() {
    let h = history();
    let (code, report) = replay(&h.repo, &["--since", "2000-01-01"]);
    assert_eq!(code, 0);
    // Four changes landed after the root commit; the PR's own commit is not one.
    assert_eq!(report["total"], 4, "{report:#}");
    let order: Vec<&str> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["commit"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [&h.policy_change, &h.human, &h.direct, &h.merge],
        "newest first"
    );

    // The merged docs PR needed the docs review then; today's rules dropped it.
    let m = entry(&report, &h.merge);
    assert_eq!(m["merge"], true);
    assert_eq!(m["then"]["verdict"], "needs_approval");
    assert!(
        m["then"]["rules"]
            .as_array()
            .unwrap()
            .contains(&Value::from("team.docs_review"))
    );
    assert_eq!(m["now"]["verdict"], "auto_merge", "{m:#}");
    assert_eq!(m["looser"], true);

    // The unsigned Copilot commit needed approval then; today it is blocked.
    let d = entry(&report, &h.direct);
    assert_eq!(d["then"]["verdict"], "needs_approval");
    assert_eq!(d["now"]["verdict"], "blocked");
    assert!(
        d["now"]["rules"]
            .as_array()
            .unwrap()
            .contains(&Value::from("team.no_agent_src"))
    );
    assert_eq!(
        (d["changed"].clone(), d["looser"].clone()),
        (Value::from(true), Value::from(false))
    );

    // Human changes are not gated either way.
    let u = entry(&report, &h.human);
    assert_eq!(
        (u["then"]["verdict"].clone(), u["changed"].clone()),
        (Value::from("auto_merge"), Value::from(false))
    );

    assert_eq!(report["changed"], 2);
    assert_eq!(report["looser"], 1);
    assert_eq!(report["transitions"]["needs_approval -> auto_merge"], 1);
    assert_eq!(report["transitions"]["needs_approval -> blocked"], 1);

    // --fail-if-looser turns the loosened merge into exit 4.
    let (code, _) = replay(&h.repo, &["--since", "2000-01-01", "--fail-if-looser"]);
    assert_eq!(code, 4);
}

#[test]
fn since_limits_the_window_and_candidates_come_from_local_files() {
    let h = history();
    // Only what landed after the merge.
    let after = (h.merge_time + 1) as i64;
    let since = chrono_free_rfc3339(after);
    let (_, report) = replay(&h.repo, &["--since", &since]);
    assert_eq!(report["total"], 3, "{report:#}");

    // A candidate that keeps the docs policy and gates humans too.
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("docs.rego"), DOCS_POLICY).unwrap();
    let config = dir.path().join("strict.toml");
    std::fs::write(&config, "[policy]\ngate_humans = true\n").unwrap();
    let (code, report) = replay(
        &h.repo,
        &[
            "--since",
            "2000-01-01",
            "--policy-dir",
            policies.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--fail-if-looser",
        ],
    );
    assert_eq!(code, 0, "nothing gets looser: {report:#}");
    assert_eq!(entry(&report, &h.merge)["changed"], false);
    // The human's policy change is governance: gated once humans are.
    let p = entry(&report, &h.policy_change);
    assert_eq!(p["then"]["verdict"], "auto_merge");
    assert_eq!(p["now"]["verdict"], "needs_approval", "{p:#}");

    // The text report lists only changed rows with --changed-only.
    let run = lockgate(
        &h.repo,
        &["replay", "--since", "2000-01-01", "--changed-only"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("2 of 4 verdict(s) would change (1 looser)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(&h.merge[..12]));
    assert!(!run.stdout.contains(&h.human[..12]), "{}", run.stdout);
    assert!(run.stdout.contains("no longer: team.docs_review"));

    let run = lockgate(&h.repo, &["replay", "--since", "yesterday-ish"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--since"), "{}", run.stderr);
}

/// Seconds → `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days), to pass a precise --since.
fn chrono_free_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
