//! The built-in pack's routes and the team-policy contract, end to end through the
//! real Rego interpreter with inputs built by `lockgate-core`.

use lockgate_core::agents::AuthorKind;
use lockgate_core::assess::{Assessor, OwnersFile};
use lockgate_core::change::{ChangeSet, Commit, FileChange, FileStatus, Person};
use lockgate_core::codeowners::CodeOwners;
use lockgate_core::config::{Config, Route};
use lockgate_core::decision::{Decision, Verdict, decide};
use lockgate_core::input::PolicyInput;
use lockgate_core::provenance::{CommitProvenance, ProvenanceStatus};
use lockgate_policy::{PolicyError, PolicySet};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

fn person(kind: &str) -> Person {
    match kind {
        "claude" => Person::new(
            "anthropic-code-agent[bot]",
            "242468646+Claude@users.noreply.github.com",
        ),
        "devin" => Person::new(
            "devin-ai-integration[bot]",
            "158243242+devin-ai-integration[bot]@users.noreply.github.com",
        ),
        "dependabot" => Person::new(
            "dependabot[bot]",
            "49699333+dependabot[bot]@users.noreply.github.com",
        ),
        _ => Person::new("Ada Lovelace", "ada@example.com"),
    }
}

fn input_with(config: &Config, author: &str, files: Vec<FileChange>) -> PolicyInput {
    let mut change = ChangeSet {
        base: "a".repeat(40),
        head: "b".repeat(40),
        merge_base: "a".repeat(40),
        commits: vec![Commit {
            sha: "c".repeat(40),
            author: person(author),
            committer: person(author),
            summary: "change".into(),
            ..Commit::default()
        }],
        files,
        ..ChangeSet::default()
    };
    let assessor = Assessor::new(config).unwrap();
    let findings = assessor.scan_secrets(&mut change);
    let owners = OwnersFile {
        path: ".github/CODEOWNERS".into(),
        owners: CodeOwners::parse(
            "* @org/maintainers\n/src/auth/ @org/security\n/docs/ @org/docs\n",
        ),
    };
    let mut input = assessor.assess(&change, &findings, Some(&owners));
    // Agent commits carry a valid attestation by a frontier model, as `check` would
    // have verified; the score is recomputed with it, as `check` does.
    if input.author.kind == AuthorKind::Agent {
        input.provenance.commits = vec![CommitProvenance {
            commit: "c".repeat(40),
            status: ProvenanceStatus::Valid,
            binding: None,
            attested_by: None,
            signer: None,
            agent: input.author.agent.clone(),
            agent_matches_commit: Some(true),
            model: Some("claude-sonnet-4-5".into()),
            prompt_digest: None,
            transcript: None,
            logged: None,
            reasons: Vec::new(),
        }];
        input.provenance.summarize();
        input.trust = assessor.trust_score(&input, None);
    }
    input
}

fn check_with(set: &PolicySet, config: &Config, author: &str, files: Vec<FileChange>) -> Decision {
    let input = input_with(config, author, files);
    let canonical = input.canonical();
    let outcome = set.evaluate(&canonical.json, TIMEOUT).unwrap();
    decide(
        &input,
        &canonical.digest,
        &outcome,
        &config.policy.disabled_rules,
    )
}

fn check(author: &str, files: Vec<FileChange>) -> Decision {
    check_with(
        &PolicySet::builtin().unwrap(),
        &Config::default(),
        author,
        files,
    )
}

fn modified(path: &str) -> FileChange {
    FileChange::new(path, FileStatus::Modified).with_added_text("x = 1")
}

#[test]
fn agent_docs_change_merges_on_its_own() {
    let d = check("claude", vec![modified("docs/guide.md")]);
    assert_eq!(d.verdict, Verdict::AutoMerge, "{:#?}", d.reasons);
    assert_eq!(d.route, Some(Route::Automate));
    assert!(d.required_approvals.is_empty());
}

#[test]
fn agent_source_change_needs_owner_approval() {
    let d = check("claude", vec![modified("src/lib.rs")]);
    assert_eq!(d.verdict, Verdict::NeedsApproval);
    assert_eq!(d.route, Some(Route::Approve));
    assert_eq!(d.required_approvals[0].owners, ["@org/maintainers"]);
    assert_eq!(d.required_approvals[0].count, 1);
}

#[test]
fn agent_auth_change_is_gated_to_the_security_owners() {
    let d = check(
        "claude",
        vec![modified("src/auth/session.rs"), modified("README.md")],
    );
    assert_eq!(d.verdict, Verdict::NeedsApproval);
    assert_eq!(d.route, Some(Route::Gate));
    let security = d
        .required_approvals
        .iter()
        .find(|a| a.owners == ["@org/security"])
        .expect("security owners are required");
    assert_eq!(
        security.count, 2,
        "critical impact on the gate route needs two"
    );
    assert!(d.reasons.iter().any(|r| r.rule == "route.never_automate"));
}

#[test]
fn low_trust_agent_may_not_touch_critical_files() {
    let d = check("devin", vec![modified("src/auth/session.rs")]);
    assert_eq!(d.verdict, Verdict::Blocked);
    assert_eq!(d.reasons[0].rule, "route.forbid");
}

#[test]
fn human_changes_pass_unless_a_rule_applies_to_everyone() {
    let d = check(
        "human",
        vec![
            modified("src/auth/session.rs"),
            modified(".github/workflows/ci.yml"),
        ],
    );
    assert_eq!(d.verdict, Verdict::AutoMerge);
    assert!(d.reasons.iter().any(|r| r.rule == "route.human"));

    let leaked = FileChange::new("src/config.rs", FileStatus::Modified)
        .with_added_text("const KEY: &str = \"AKIALALEMEL33243OLIA\";"); // lockgate:allow (synthetic key)
    let d = check("human", vec![leaked]);
    assert_eq!(d.verdict, Verdict::Blocked);
    assert_eq!(d.reasons[0].rule, "secrets.leaked");
    let json = serde_json::to_string(&d).unwrap();
    assert!(!json.contains("AKIALALEMEL33243OLIA")); // lockgate:allow (synthetic key)
}

#[test]
fn gates_extend_to_humans_when_configured() {
    let config = Config::from_toml("[policy]\ngate_humans = true\n").unwrap();
    let d = check_with(
        &PolicySet::builtin().unwrap(),
        &config,
        "human",
        vec![modified("src/auth/x.rs")],
    );
    assert_eq!(d.verdict, Verdict::NeedsApproval);
    assert_eq!(d.route, Some(Route::Gate));
}

#[test]
fn dependency_bot_bumps_need_approval() {
    let d = check("dependabot", vec![modified("Cargo.lock")]);
    assert_eq!(d.verdict, Verdict::NeedsApproval);
    assert_eq!(d.route, Some(Route::Gate));
}

#[test]
fn agent_deleting_tests_needs_approval() {
    let mut deleted = FileChange::new("tests/login_test.py", FileStatus::Deleted);
    deleted.lines_removed = 40;
    let d = check("claude", vec![deleted]);
    assert_eq!(d.verdict, Verdict::NeedsApproval);
    assert!(
        d.required_approvals
            .iter()
            .any(|a| a.rule == "tests.deleted")
    );
}

#[test]
fn the_matrix_is_configurable() {
    // A well-attested agent's source change scores in the fast band (matrix trust high);
    // by default medium impact still needs approval, and the team can loosen that.
    let d = check("claude", vec![modified("src/lib.rs")]);
    assert_eq!(d.verdict, Verdict::NeedsApproval);
    let config = Config::from_toml("[routing.matrix.medium]\nhigh = \"automate\"\n").unwrap();
    let d = check_with(
        &PolicySet::builtin().unwrap(),
        &config,
        "claude",
        vec![modified("src/lib.rs")],
    );
    assert_eq!(d.verdict, Verdict::AutoMerge);
}

#[test]
fn disabling_rules_drops_them_except_fail_closed_ones() {
    let config = Config::from_toml("[policy]\ndisabled_rules = [\"tests.deleted\"]\n").unwrap();
    let deleted = FileChange::new("docs/old_test_notes.md", FileStatus::Deleted);
    let tests_deleted = FileChange::new("tests/a_test.py", FileStatus::Deleted);
    let d = check_with(
        &PolicySet::builtin().unwrap(),
        &config,
        "claude",
        vec![deleted, tests_deleted],
    );
    assert_eq!(d.verdict, Verdict::AutoMerge, "{:#?}", d.reasons);
}

#[test]
fn team_rules_deny_and_require_approval() {
    let mut set = PolicySet::builtin().unwrap();
    set.add_file(
        ".lockgate/policies/team.rego",
        r#"package lockgate.team.acme
import rego.v1

deny contains {"rule": "acme.no_vendor", "message": sprintf("%s: vendored code is updated by the vendoring job only", [f.path])} if {
    some f in input.files
    startswith(f.path, "vendor/")
}

require_approval contains {"rule": "acme.docs_review", "owners": ["@org/docs"], "count": 1, "reason": "agents' docs changes get a docs review"} if {
    input.author.kind == "agent"
    "docs" in input.categories
}
"#,
    )
    .unwrap();
    let d = check_with(
        &set,
        &Config::default(),
        "claude",
        vec![modified("docs/guide.md")],
    );
    assert_eq!(d.verdict, Verdict::NeedsApproval);
    assert_eq!(d.required_approvals[0].rule, "acme.docs_review");
    let d = check_with(
        &set,
        &Config::default(),
        "human",
        vec![modified("vendor/lib/a.c")],
    );
    assert_eq!(d.verdict, Verdict::Blocked);
    assert!(d.reasons[0].message.contains("vendor/lib/a.c"));
    assert!(
        d.policy_sources
            .contains(&".lockgate/policies/team.rego".to_string())
    );
}

#[test]
fn broken_policies_fail_loudly_with_locations() {
    let mut set = PolicySet::builtin().unwrap();
    let err = set
        .add_file(
            "p/syntax.rego",
            "package lockgate.team.x\n\ndeny contains x if {\n  x := \n}\n",
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("p/syntax.rego:4:5:"), "{msg}");

    let err = set
        .add_file(
            "p/nothing.rego",
            "package lockgate.team.y\nimport rego.v1\nhelper := 1\n",
        )
        .unwrap_err();
    assert!(matches!(err, PolicyError::NoRules { .. }), "{err}");

    let err = set
        .add_file(
            "p/sneaky.rego",
            "package lockgate.builtin\nimport rego.v1\nallow_auto_merge := true\n",
        )
        .unwrap_err();
    assert!(
        matches!(err, PolicyError::Reserved { .. }) || matches!(err, PolicyError::Load { .. }),
        "{err}"
    );
}

#[test]
fn wrong_result_shapes_are_errors_not_silence() {
    let mut set = PolicySet::builtin().unwrap();
    set.add_file(
        "p/shape.rego",
        "package lockgate.team.shape\nimport rego.v1\nrequire_approval contains {\"owners\": \"@org/x\"} if true\n",
    )
    .unwrap();
    let input = input_with(&Config::default(), "claude", vec![modified("docs/a.md")]);
    let err = set.evaluate(&input.canonical().json, TIMEOUT).unwrap_err();
    assert!(matches!(err, PolicyError::Shape { .. }), "{err}");
}

#[test]
fn runaway_policies_time_out() {
    let mut set = PolicySet::builtin().unwrap();
    set.add_file(
        "p/slow.rego",
        "package lockgate.team.slow\nimport rego.v1\nwarn contains {\"rule\": \"slow\", \"message\": sprintf(\"%d\", [n])} if {\n  n := count([x | some x in numbers.range(1, 50000000); x % 7 == 0])\n}\n",
    )
    .unwrap();
    let input = input_with(&Config::default(), "claude", vec![modified("docs/a.md")]);
    let err = set
        .evaluate(&input.canonical().json, Duration::from_millis(100))
        .unwrap_err();
    assert!(matches!(err, PolicyError::Eval { .. }), "{err}");
}

#[test]
fn policy_tests_run_like_opa_test() {
    let mut set = PolicySet::builtin().unwrap();
    set.add_file(
        "p/team_test.rego",
        r#"package lockgate.team.tests
import rego.v1

test_docs_by_agent_automate if {
    data.lockgate.builtin.route == "automate" with input as {
        "author": {"kind": "agent", "trust": "medium"},
        "trust": {"score": 60, "band": "normal", "matrix_trust": "medium", "factors": []},
        "impact": "low", "categories": ["docs"], "files": [],
        "config": {"gate_humans": false, "never_automate": [], "never_automate_flags": [],
                   "matrix": {"low": {"medium": "automate"}}}
    }
}

test_this_one_fails if {
    1 == 2
}
"#,
    )
    .unwrap();
    let report = set.run_tests(TIMEOUT);
    assert_eq!(report.results.len(), 2);
    assert_eq!(report.passed(), 1);
    assert!(!report.ok());
    let failed = report.results.iter().find(|r| !r.passed).unwrap();
    assert_eq!(failed.name, "test_this_one_fails");

    assert!(
        !PolicySet::builtin().unwrap().run_tests(TIMEOUT).ok(),
        "no tests ran: not ok"
    );
}
