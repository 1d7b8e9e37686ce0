//! `lockgate check` end to end: the real binary on real git repositories.

mod common;

use common::{agent_key, lockgate, lockgate_env};
use lockgate_testkit::{CLAUDE, COPILOT, DEPENDABOT, HUMAN, TestRepo};
use serde_json::Value;
use std::process::Command;

/// `lockgate check --base main --format json`.
fn check_json(repo: &TestRepo) -> (i32, Value) {
    common::check_json(repo, &[])
}

/// Signs the session `main..HEAD` as `agent`, like the agent's sandbox would.
fn attest(r: &TestRepo, agent: &str) {
    common::attest(r, agent, "claude-sonnet-4-5");
}

/// A synthetic key in AWS's documented format. Not a live credential.
const FAKE_AWS_KEY: &str = "AKIAQYLPMN5HHHFPZAM2"; // lockgate:allow (synthetic key)

/// A repository with owners and a few files on `main` (including a trust root for the
/// agents' key), and a `change` branch checked out.
fn project() -> TestRepo {
    let r = TestRepo::new();
    let trust = agent_key(&r);
    r.write(".lockgate/trust.toml", &trust);
    r.write("README.md", "# project\n");
    r.write("docs/guide.md", "# Guide\n");
    r.write("src/lib.rs", "pub fn f() {}\n");
    r.write("src/auth/login.rs", "pub fn login() {}\n");
    r.write("tests/lib_test.rs", "#[test]\nfn t() {}\n");
    r.write(
        ".github/CODEOWNERS",
        "* @org/maintainers\n/src/auth/ @org/security\n/docs/ @org/docs\n",
    );
    r.commit("init");
    r.branch("change");
    r
}

fn verdict(json: &Value) -> &str {
    json["verdict"].as_str().unwrap()
}

#[test]
fn agent_docs_change_auto_merges_with_exit_0() {
    let r = project();
    r.write("docs/guide.md", "# Guide\n\nMore words.\n");
    r.commit_as(CLAUDE, "docs: expand guide");
    attest(&r, "claude-code");
    let (code, json) = check_json(&r);
    assert_eq!(code, 0);
    assert_eq!(verdict(&json), "auto_merge");
    assert_eq!(json["author"]["kind"], "agent");
    assert_eq!(json["author"]["agent"], "claude-code");
    assert_eq!(json["files"][0]["categories"], serde_json::json!(["docs"]));
    assert_eq!(json["files"][0]["owners"], serde_json::json!(["@org/docs"]));
    assert!(
        json["input_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
}

#[test]
fn agent_source_change_needs_owner_approval_with_exit_3() {
    let r = project();
    r.write("src/lib.rs", "pub fn f() {}\npub fn g() {}\n");
    r.commit_as(COPILOT, "feat: g");
    attest(&r, "copilot-coding-agent");
    let (code, json) = check_json(&r);
    assert_eq!(code, 3);
    assert_eq!(verdict(&json), "needs_approval");
    let approvals = json["required_approvals"].as_array().unwrap();
    assert_eq!(
        approvals[0]["owners"],
        serde_json::json!(["@org/maintainers"])
    );
    assert_eq!(approvals[0]["count"], 1);
}

#[test]
fn agent_auth_change_is_gated() {
    let r = project();
    r.write(
        "src/auth/login.rs",
        "pub fn login() { /* skip password check */ }\n",
    );
    r.commit_as(CLAUDE, "auth: simplify");
    let (code, json) = check_json(&r);
    assert_eq!(code, 3);
    assert_eq!(json["route"], "gate");
    assert_eq!(json["impact"], "critical");
    let security = json["required_approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["owners"] == serde_json::json!(["@org/security"]))
        .expect("security must approve");
    assert_eq!(security["count"], 2);
}

#[test]
fn human_change_passes_but_a_leaked_secret_blocks_anyone() {
    let r = project();
    r.write("src/auth/login.rs", "pub fn login() { check() }\n");
    r.commit_as(HUMAN, "auth: check");
    let (code, json) = check_json(&r);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["author"]["kind"], "human");

    r.write(
        "src/config.rs",
        &format!("pub const KEY: &str = \"{FAKE_AWS_KEY}\";\n"),
    );
    r.commit_as(HUMAN, "config");
    let (code, json) = check_json(&r);
    assert_eq!(code, 4);
    assert_eq!(verdict(&json), "blocked");
    assert_eq!(json["reasons"][0]["rule"], "secrets.leaked");
    let finding = &json["findings"][0];
    assert_eq!(finding["path"], "src/config.rs");
    assert_eq!(finding["line"], 1);
    assert_eq!(finding["rule"], "aws-access-key-id");
}

#[test]
fn the_secret_appears_in_no_output_at_all() {
    let r = project();
    r.write("deploy.env", &format!("AWS_ACCESS_KEY_ID={FAKE_AWS_KEY}\n"));
    r.commit_as(CLAUDE, "add deploy env");
    let input_file = r.path().join("input.json");
    let input_arg = input_file.to_str().unwrap().to_string();
    for format in ["text", "json", "markdown", "sarif"] {
        let run = lockgate_env(
            &r,
            &[
                "check",
                "--base",
                "main",
                "--format",
                format,
                "--input-out",
                &input_arg,
            ],
            &[("LOCKGATE_LOG_LEVEL", "trace")],
        );
        assert_eq!(run.code, 4, "{format}: {}", run.stderr);
        assert!(
            !run.stdout.contains(FAKE_AWS_KEY),
            "{format} stdout leaks the secret"
        );
        assert!(
            !run.stderr.contains(FAKE_AWS_KEY),
            "{format} logs leak the secret"
        );
        assert!(run.stdout.contains("deploy.env"), "{format} names the file");
        let input = std::fs::read_to_string(&input_file).unwrap();
        assert!(
            !input.contains(FAKE_AWS_KEY),
            "the policy input leaks the secret"
        );
    }
}

#[test]
fn renames_and_mixed_authorship_are_reported() {
    let r = project();
    r.git(&["mv", "src/lib.rs", "src/core.rs"]);
    r.commit_as(HUMAN, "rename");
    r.write("docs/guide.md", "# Guide\nchanged\n");
    r.commit_as(CLAUDE, "docs");
    let (_, json) = check_json(&r);
    let renamed = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "src/core.rs")
        .unwrap();
    assert_eq!(renamed["status"], "renamed");
    assert_eq!(renamed["old_path"], "src/lib.rs");
    assert_eq!(renamed["similarity"], 100);
    assert_eq!(json["author"]["kind"], "mixed");
    assert!(
        json["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule"] == "author.mixed")
    );
}

#[test]
fn dependency_bot_is_reported_as_a_bot() {
    let r = project();
    r.write("Cargo.lock", "# lock\n");
    r.commit_as(DEPENDABOT, "Bump x");
    let (code, json) = check_json(&r);
    assert_eq!(json["author"]["kind"], "bot");
    assert_eq!(json["author"]["agents"][0]["kind"], "bot");
    assert_eq!(code, 3);
}

#[test]
fn rules_come_from_the_base_revision_not_the_change() {
    let r = TestRepo::new();
    r.write("src/lib.rs", "fn a() {}\n");
    r.write(
        ".lockgate/policies/team.rego",
        "package lockgate.team.acme\nimport rego.v1\n\ndeny contains {\"rule\": \"acme.freeze\", \"message\": \"code freeze\"} if {\n  some f in input.files\n  startswith(f.path, \"src/\")\n}\n",
    );
    r.commit("init");
    r.branch("change");
    // The agent tries to delete the team policy and loosen the matrix in one go.
    std::fs::remove_file(r.file(".lockgate/policies/team.rego")).unwrap();
    r.write(
        ".lockgate.toml",
        "[routing.matrix.critical]\nmedium = \"automate\"\n",
    );
    r.write("src/lib.rs", "fn a() {}\nfn b() {}\n");
    r.commit_as(CLAUDE, "unfreeze");
    let (code, json) = check_json(&r);
    assert_eq!(code, 4);
    let rules: Vec<&str> = json["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"acme.freeze"), "{rules:?}");
    let gov = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == ".lockgate.toml")
        .unwrap();
    assert!(
        gov["categories"]
            .as_array()
            .unwrap()
            .contains(&Value::from("governance"))
    );
}

#[test]
fn invalid_config_at_base_is_a_tool_error_with_location() {
    let r = TestRepo::new();
    r.write(".lockgate.toml", "[review]\napprovals = 1\nbogus = 3\n");
    r.commit("init");
    r.branch("change");
    r.write("a.md", "x\n");
    r.commit_as(CLAUDE, "x");
    let run = lockgate(&r, &["check", "--base", "main"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains(".lockgate.toml"), "{}", run.stderr);
    assert!(run.stderr.contains(":3:"), "{}", run.stderr);
    assert!(run.stderr.contains("bogus"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn a_broken_policy_at_base_blocks_fail_closed() {
    let r = TestRepo::new();
    r.write(
        ".lockgate/policies/bad.rego",
        "package lockgate.team.bad\n\ndeny contains x if {\n",
    );
    r.commit("init");
    r.branch("change");
    r.write("docs/a.md", "x\n");
    r.commit_as(CLAUDE, "docs");
    let (code, json) = check_json(&r);
    assert_eq!(code, 4);
    assert_eq!(json["reasons"][0]["rule"], "policy.error");
    assert!(
        json["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("bad.rego")
    );
}

#[test]
fn local_config_and_policy_dir_overrides() {
    let r = project();
    r.write("src/lib.rs", "pub fn f() {}\npub fn g() {}\n");
    r.commit_as(CLAUDE, "g");
    attest(&r, "claude-code");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lockgate.toml");
    std::fs::write(&config, "[routing.matrix.medium]\nhigh = \"automate\"\n").unwrap();
    let run = lockgate(
        &r,
        &[
            "check",
            "--base",
            "main",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("local file, not the base revision"));

    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("warn.rego"),
        "package lockgate.team.w\nimport rego.v1\nwarn contains {\"rule\": \"team.hello\", \"message\": \"hello from policy\"} if true\n",
    )
    .unwrap();
    let run = lockgate(
        &r,
        &[
            "check",
            "--base",
            "main",
            "--format",
            "json",
            "--policy-dir",
            policies.to_str().unwrap(),
        ],
    );
    assert!(run.stdout.contains("hello from policy"));
}

#[test]
fn bad_input_exits_1_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lockgate"))
        .args([
            "check",
            "--repo",
            dir.path().to_str().unwrap(),
            "--base",
            "main",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not inside a git repository"));

    let r = project();
    let run = lockgate(&r, &["check", "--base", "nope"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("unknown revision \"nope\""),
        "{}",
        run.stderr
    );

    let run = lockgate(&r, &["check", "--format", "yaml"]);
    assert_eq!(run.code, 2, "usage errors are exit 2");
}

#[test]
fn default_base_is_found_or_explained() {
    let r = project();
    r.write("docs/guide.md", "x\n");
    r.commit_as(CLAUDE, "docs");
    attest(&r, "claude-code");
    // `main` exists, so it is the default.
    let run = lockgate(&r, &["check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let bare = TestRepo::new();
    bare.git(&["checkout", "-q", "-b", "trunk"]);
    bare.write("a", "1\n");
    bare.commit("x");
    let run = lockgate(&bare, &["check"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("pass --base"), "{}", run.stderr);
}

#[test]
fn markdown_escapes_hostile_file_names() {
    let r = project();
    r.write("docs/<img src=x onerror=alert(1)>.md", "x\n");
    r.commit_as(CLAUDE, "docs");
    let run = lockgate(&r, &["check", "--base", "main", "--format", "markdown"]);
    assert!(run.stdout.starts_with("<!-- lockgate:decision -->"));
    assert!(!run.stdout.contains("<img"), "{}", run.stdout);
}

#[test]
fn sarif_output_is_valid_sarif_2_1_0() {
    let r = project();
    r.write(
        "src/keys.rs",
        &format!("const K: &str = \"{FAKE_AWS_KEY}\";\n"),
    );
    r.commit_as(CLAUDE, "keys");
    let out = r.path().join("out.sarif");
    let run = lockgate(
        &r,
        &[
            "check",
            "--base",
            "main",
            "--format",
            "sarif",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 4);
    assert!(
        run.stdout.is_empty(),
        "--output writes the file, not stdout"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let sarif: serde_sarif::sarif::Sarif =
        serde_json::from_str(&text).expect("parses as SARIF 2.1.0");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["version"], "2.1.0");
    assert_eq!(sarif.runs.len(), 1);
    let result = &json["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "aws-access-key-id");
    let location = &result["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"]["uri"], "src/keys.rs");
    assert_eq!(location["region"]["startLine"], 1);
    assert_eq!(location["region"]["startColumn"], 18);
    assert_eq!(location["region"]["endColumn"], 38);
    // The trust score and its factors ride along in the run's property bag.
    let properties = &json["runs"][0]["properties"];
    assert!(properties["trustScore"].as_u64().unwrap() <= 100);
    assert_eq!(properties["trustFactors"].as_array().unwrap().len(), 7);
}

#[test]
fn schemas_match_the_published_files() {
    let r = project();
    for (which, file) in [
        ("input", "input.v1.json"),
        ("decision", "decision.v1.json"),
        ("predicate", "predicate-agent-session.v1.json"),
    ] {
        let run = lockgate(&r, &["schema", which]);
        let path = format!("{}/../../schema/{file}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("LOCKGATE_BLESS").is_some() {
            std::fs::write(&path, &run.stdout).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            run.stdout, committed,
            "run with LOCKGATE_BLESS=1 to regenerate schema/{file}"
        );
    }
}

#[test]
fn policy_test_command() {
    let r = TestRepo::new();
    let dir = r.path().join("policies");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("p.rego"), "package lockgate.team.p\nimport rego.v1\nwarn contains {\"rule\": \"p\", \"message\": \"m\"} if input.x\n").unwrap();
    let dir_arg = dir.to_str().unwrap().to_string();
    let run = lockgate(&r, &["policy", "test", &dir_arg]);
    assert_eq!(run.code, 1, "no tests is a failure");
    assert!(run.stderr.contains("nothing was tested"));

    std::fs::write(
        dir.join("p_test.rego"),
        "package lockgate.team.p_test\nimport rego.v1\ntest_warns if {\n  count(data.lockgate.team.p.warn) == 1 with input as {\"x\": true}\n}\n",
    )
    .unwrap();
    let run = lockgate(&r, &["policy", "test", &dir_arg]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("1 passed, 0 failed"));

    std::fs::write(
        dir.join("q_test.rego"),
        "package lockgate.team.q_test\nimport rego.v1\ntest_wrong if {\n  count(data.lockgate.team.p.warn) == 1 with input as {\"x\": false}\n}\n",
    )
    .unwrap();
    let run = lockgate(&r, &["policy", "test", &dir_arg]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("FAIL"));
}

#[test]
fn policy_eval_replays_an_input() {
    let r = project();
    r.write("src/lib.rs", "pub fn f() {}\n// more\n");
    r.commit_as(CLAUDE, "x");
    let input = r.path().join("in.json");
    lockgate(
        &r,
        &[
            "check",
            "--base",
            "main",
            "--input-out",
            input.to_str().unwrap(),
        ],
    );
    let run = lockgate(&r, &["policy", "eval", "--input", input.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(out["route"], "approve");
    let run = lockgate(
        &r,
        &[
            "policy",
            "eval",
            "--input",
            input.to_str().unwrap(),
            "--query",
            "data.lockgate.builtin.trust_band",
        ],
    );
    assert_eq!(run.stdout.trim(), "[\n  \"medium\"\n]");
}

#[test]
fn demo_runs_end_to_end() {
    let out = Command::new(env!("CARGO_BIN_EXE_lockgate"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "agent/docs",
        "auto_merge",
        "needs_approval",
        "blocked",
        "secrets.leaked",
        "route.forbid",
        // The red CI run's JUnit report needs a human, whatever the score.
        "evidence.tests_failed",
        // Signed sessions are logged, and the trust root requires the log: a valid
        // provenance status means check verified each inclusion proof.
        "transparency log the trust root requires (6 entries, audited)",
    ] {
        assert!(stdout.contains(needle), "{needle} missing from demo output");
    }
    assert!(!stdout.contains("AKIAQYLPMN5HHHFPZAM2")); // lockgate:allow (synthetic key)
}

#[test]
fn non_utf8_paths_block_with_an_explanation() {
    use std::os::unix::ffi::OsStrExt;
    let r = project();
    let name = std::ffi::OsStr::from_bytes(b"src/odd-\xff.rs");
    std::fs::write(r.path().join(name), "fn x() {}\n").unwrap();
    r.commit_as(CLAUDE, "odd");
    let (code, json) = check_json(&r);
    assert_eq!(code, 4);
    assert_eq!(json["reasons"][0]["rule"], "input.non_utf8_path");
    assert_eq!(json["files"][0]["path"], "src/odd-\\xff.rs");
}

#[test]
fn input_out_bytes_hash_to_the_input_digest() {
    let r = project();
    r.write("docs/guide.md", "x\n");
    r.commit_as(CLAUDE, "docs");
    let input = r.path().join("input.json");
    let run = lockgate(
        &r,
        &[
            "check",
            "--base",
            "main",
            "--format",
            "json",
            "--input-out",
            input.to_str().unwrap(),
        ],
    );
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let bytes = std::fs::read(&input).unwrap();
    let digest = lockgate_core::input::digest_text(std::str::from_utf8(&bytes).unwrap());
    assert_eq!(json["input_digest"], Value::from(digest));
    // And it is independent of sha2 usage here: compare with the system tool when present.
    if let Ok(out) = Command::new("sha256sum").arg(&input).output() {
        let hex = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        assert_eq!(json["input_digest"], Value::from(format!("sha256:{hex}")));
    }
}

#[test]
fn outputs_validate_against_the_published_schemas() {
    let load = |file: &str| -> Value {
        let path = format!("{}/../../schema/{file}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let decision_schema = jsonschema::validator_for(&load("decision.v1.json")).unwrap();
    let input_schema = jsonschema::validator_for(&load("input.v1.json")).unwrap();

    let r = project();
    r.write("src/auth/login.rs", "pub fn login() { check() }\n");
    r.write(
        "src/config.rs",
        &format!("pub const KEY: &str = \"{FAKE_AWS_KEY}\";\n"),
    );
    r.git(&["mv", "docs/guide.md", "docs/manual.md"]);
    r.commit_as(CLAUDE, "several things");
    let input = r.path().join("input.json");
    let run = lockgate(
        &r,
        &[
            "check",
            "--base",
            "main",
            "--format",
            "json",
            "--input-out",
            input.to_str().unwrap(),
        ],
    );
    let decision: Value = serde_json::from_str(&run.stdout).unwrap();
    let errors: Vec<String> = decision_schema
        .iter_errors(&decision)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "decision: {errors:?}");
    let input: Value = serde_json::from_str(&std::fs::read_to_string(&input).unwrap()).unwrap();
    let errors: Vec<String> = input_schema
        .iter_errors(&input)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "input: {errors:?}");
    // The validator is not vacuous: a wrong verdict is rejected.
    let mut bad = decision.clone();
    bad["verdict"] = Value::from("merge_whenever");
    assert!(!decision_schema.is_valid(&bad));
}
