//! The CI templates, as far as this machine allows: `ci/lockgate-ci.sh` (the steps the
//! GitHub Action, the GitLab template and the Jenkinsfile all run) on a real local
//! repository with the real binary — against a stand-in `gh` for GitHub, and against a
//! fake GitLab API over real HTTP with real curl and jq — and every template linted
//! with the ecosystems' own schemas and shellcheck (`ci/lint-templates.py`). Without
//! the linters the lint test prints a NOTICE; CI sets `LOCKGATE_REQUIRE_LINTERS=1`.

mod common;

use common::fake_http::FakeHttp;
use common::server::signed_agent_change;
use lockgate_testkit::TestRepo;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const MARKER: &str = "<!-- lockgate:decision -->";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A stand-in for the GitHub CLI: logs each call (one line), keeps each `body=@file`,
/// and lists an existing decision comment when `FAKE_GH_COMMENT_ID` is set.
fn fake_gh(dir: &Path) {
    let gh = dir.join("gh");
    std::fs::write(
        &gh,
        r#"#!/bin/sh
printf '%s\n' "$*" >> "$FAKE_GH_DIR/log"
n=$(wc -l < "$FAKE_GH_DIR/log" | tr -d ' ')
for a in "$@"; do
  case "$a" in body=@*) cp "${a#body=@}" "$FAKE_GH_DIR/body-$n" ;; esac
done
case "$*" in *"/comments --paginate"*) [ -n "${FAKE_GH_COMMENT_ID:-}" ] && echo "$FAKE_GH_COMMENT_ID" ;; esac
exit 0
"#,
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&gh).status().unwrap();
}

struct Ci {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the CI script in `repo` with `env`.
fn ci_script(repo: &TestRepo, env: &[(&str, String)]) -> Ci {
    let mut cmd = Command::new("sh");
    cmd.arg(root().join("ci/lockgate-ci.sh"))
        .current_dir(repo.path())
        .env("LOCKGATE_BIN", env!("CARGO_BIN_EXE_lockgate"))
        .env_remove("LOCKGATE_SERVER")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .env_remove("GITHUB_BASE_REF");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Ci {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_ci_script_reports_to_github_and_fails_closed() {
    let (r, code, decision) = signed_agent_change();
    assert_eq!(code, 3, "the change needs approval: {decision}");
    let tmp = tempfile::tempdir().unwrap();
    let (bin, gh) = (tmp.path().join("bin"), tmp.path().join("gh"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&gh).unwrap();
    fake_gh(&bin);
    let (out, summary, outputs) = (
        tmp.path().join("out"),
        tmp.path().join("summary.md"),
        tmp.path().join("outputs"),
    );
    let env = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("LOCKGATE_BASE", "main".to_string()),
            ("LOCKGATE_OUT_DIR", out.display().to_string()),
            ("GITHUB_ACTIONS", "true".into()),
            ("GITHUB_STEP_SUMMARY", summary.display().to_string()),
            ("GITHUB_OUTPUT", outputs.display().to_string()),
            ("GITHUB_REPOSITORY", "acme/app".into()),
            ("LOCKGATE_PR_NUMBER", "7".into()),
            ("FAKE_GH_DIR", gh.display().to_string()),
            (
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            ),
        ];
        for (k, v) in extra {
            env.push((k, v.to_string()));
        }
        env
    };

    // First run: the decision, the reports, the summary, a new comment, the label.
    let run = ci_script(&r, &env(&[]));
    assert_eq!(
        run.code, 3,
        "needs approval fails the job: {}{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("lockgate: needs_approval"),
        "{}",
        run.stdout
    );
    let recorded: Value = serde_json::from_str(&read(&out.join("decision.json"))).unwrap();
    assert_eq!(recorded["verdict"], "needs_approval");
    assert_eq!(
        recorded["input_digest"], decision["input_digest"],
        "the same decision"
    );
    let sarif: Value = serde_json::from_str(&read(&out.join("lockgate.sarif"))).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let markdown = read(&out.join("lockgate.md"));
    assert_eq!(read(&summary), markdown, "the step summary is the report");
    assert!(read(&outputs).contains("verdict=needs_approval"));
    assert_eq!(read(&out.join("verdict")).trim(), "needs_approval");
    let log = read(&gh.join("log"));
    let calls: Vec<&str> = log.lines().collect();
    assert!(
        calls[0].starts_with("api repos/acme/app/issues/7/comments --paginate"),
        "{log}"
    );
    let (i, post) = calls
        .iter()
        .enumerate()
        .find(|(_, c)| c.starts_with("api -X POST repos/acme/app/issues/7/comments"))
        .unwrap_or_else(|| panic!("no new comment: {log}"));
    let body = read(&gh.join(format!("body-{}", i + 1)));
    assert!(body.starts_with(MARKER), "{post}: {body}");
    assert_eq!(body, markdown, "the comment is the report, marked once");
    assert_eq!(body.matches(MARKER).count(), 1);
    assert!(log.contains("api -X DELETE repos/acme/app/issues/7/labels/lockgate:auto_merge"));
    assert!(log.contains("api -X DELETE repos/acme/app/issues/7/labels/lockgate:blocked"));
    assert!(log.contains(
        "api -X POST repos/acme/app/issues/7/labels -f labels[]=lockgate:needs_approval"
    ));

    // Second run: the comment exists, so it is updated, not repeated.
    std::fs::remove_file(gh.join("log")).unwrap();
    let run = ci_script(&r, &env(&[("FAKE_GH_COMMENT_ID", "55")]));
    assert_eq!(run.code, 3);
    let log = read(&gh.join("log"));
    assert!(
        log.contains("api -X PATCH repos/acme/app/issues/comments/55 -F body=@"),
        "{log}"
    );
    assert!(
        !log.contains("-X POST repos/acme/app/issues/7/comments"),
        "{log}"
    );

    // Failing only on blocked lets it pass; comments and labels can be turned off.
    std::fs::remove_file(gh.join("log")).unwrap();
    let run = ci_script(
        &r,
        &env(&[
            ("LOCKGATE_FAIL_ON", "blocked"),
            ("LOCKGATE_COMMENT", "false"),
            ("LOCKGATE_LABELS", "false"),
        ]),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!gh.join("log").exists(), "no forge calls");

    // A tool error is never green, and says nothing on the PR.
    let run = ci_script(&r, &env(&[("LOCKGATE_BASE", "no-such-revision")]));
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("lockgate check failed"),
        "{}",
        run.stderr
    );
    assert!(
        !gh.join("log").exists(),
        "nothing posted after a tool error"
    );
    let run = ci_script(&r, &env(&[("LOCKGATE_FAIL_ON", "sometimes")]));
    assert_eq!(run.code, 1);
}

#[test]
fn the_ci_script_keeps_one_gitlab_note_with_real_curl_and_jq() {
    for tool in ["curl", "jq"] {
        if Command::new(tool).arg("--version").output().is_err() {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "NOTICE: GitLab template steps skipped — {tool} is not installed"
            );
            return;
        }
    }
    let (r, code, _) = signed_agent_change();
    assert_eq!(code, 3);
    // The GitLab API, as documented: notes listed, one created, then updated; labels
    // added on the merge request.
    let existing = std::sync::Arc::new(std::sync::Mutex::new(None::<u64>));
    let seen = existing.clone();
    let gitlab = FakeHttp::new(move |req| {
        let base = "/api/v4/projects/42/merge_requests/5";
        if req.header("private-token") != Some("glpat-secret") {
            return (
                401,
                "application/json",
                "{\"message\":\"401 Unauthorized\"}".into(),
            );
        }
        match (req.method.as_str(), req.path.split('?').next().unwrap()) {
            ("GET", p) if p == format!("{base}/notes") => {
                let notes = match *seen.lock().unwrap() {
                    Some(id) => {
                        json!([{"id": 1, "body": "a person's note"}, {"id": id, "body": format!("{MARKER}\nold")}])
                    }
                    None => json!([{"id": 1, "body": "a person's note"}]),
                };
                (200, "application/json", notes.to_string())
            }
            ("POST", p) if p == format!("{base}/notes") => {
                *seen.lock().unwrap() = Some(77);
                (201, "application/json", json!({"id": 77}).to_string())
            }
            ("PUT", p) if p == format!("{base}/notes/77") => (200, "application/json", "{}".into()),
            ("PUT", p) if p == base => (200, "application/json", "{}".into()),
            _ => (404, "application/json", "{}".into()),
        }
    });
    let out = tempfile::tempdir().unwrap();
    let env = [
        ("LOCKGATE_BASE", "main".to_string()),
        ("LOCKGATE_OUT_DIR", out.path().display().to_string()),
        ("GITLAB_CI", "true".into()),
        ("CI_API_V4_URL", format!("{}/api/v4", gitlab.url)),
        ("CI_PROJECT_ID", "42".into()),
        ("CI_MERGE_REQUEST_IID", "5".into()),
        ("LOCKGATE_GITLAB_TOKEN", "glpat-secret".into()),
    ];
    for _ in 0..2 {
        let run = ci_script(&r, &env);
        assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
        assert!(!run.stdout.contains("glpat-secret") && !run.stderr.contains("glpat-secret"));
    }
    let calls: Vec<(String, String, Value, String)> = gitlab
        .received()
        .iter()
        .map(|r| {
            (
                r.method.clone(),
                r.path.clone(),
                r.json(),
                String::from_utf8_lossy(&r.body).into_owned(),
            )
        })
        .collect();
    let notes: Vec<_> = calls
        .iter()
        .filter(|c| c.0 != "GET" && c.1.contains("/notes"))
        .collect();
    assert_eq!(notes.len(), 2, "{calls:#?}");
    assert_eq!(notes[0].0, "POST", "first run creates the note");
    assert_eq!(notes[1].0, "PUT", "second run updates it");
    assert!(notes[1].1.ends_with("/notes/77"));
    for n in &notes {
        let body = n.2["body"].as_str().unwrap();
        assert!(body.starts_with(MARKER), "{body}");
        assert!(body.contains("needs"), "{body}");
    }
    let labels: Vec<_> = calls
        .iter()
        .filter(|c| c.0 == "PUT" && c.1.ends_with("/merge_requests/5"))
        .collect();
    assert_eq!(labels.len(), 2);
    assert!(
        labels[0]
            .3
            .contains("add_labels=lockgate%3A%3Aneeds_approval"),
        "{}",
        labels[0].3
    );
}

/// `python3` with check-jsonschema (the CI venv, or `LOCKGATE_LINT_PYTHON`) and
/// shellcheck, or `None` after a NOTICE.
fn linters() -> Option<PathBuf> {
    let python = std::env::var("LOCKGATE_LINT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target/ci-venv/bin/python"));
    let has_schema = Command::new(&python)
        .args(["-c", "import check_jsonschema, ruamel.yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    let has_shellcheck = Command::new("shellcheck").arg("--version").output().is_ok();
    if has_schema && has_shellcheck {
        return Some(python);
    }
    if std::env::var("LOCKGATE_REQUIRE_LINTERS").is_ok_and(|v| v == "1") {
        panic!(
            "LOCKGATE_REQUIRE_LINTERS=1 but check-jsonschema ({}) or shellcheck is missing",
            python.display()
        );
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: CI template lint skipped — needs check-jsonschema in {} (or LOCKGATE_LINT_PYTHON) and shellcheck, as .ci/run installs",
        python.display()
    );
    None
}

#[test]
fn the_templates_pass_their_ecosystems_linters() {
    let Some(python) = linters() else {
        return;
    };
    let run = Command::new(&python)
        .arg(root().join("ci/lint-templates.py"))
        .arg(root())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    // And the lint catches what it is for: a broken copy fails.
    let broken = tempfile::tempdir().unwrap();
    for f in [
        "action.yml",
        "ci/lockgate-ci.sh",
        "ci/templates/github/lockgate.yml",
        "ci/templates/github/agent-pr.yml",
        "ci/templates/gitlab/lockgate.gitlab-ci.yml",
    ] {
        let to = broken.path().join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root().join(f), &to).unwrap();
    }
    let workflow = broken.path().join("ci/templates/github/lockgate.yml");
    let text = read(&workflow).replace(
        "runs-on: ubuntu-latest",
        "runs-on: ubuntu-latest\n    run-on: typo",
    );
    std::fs::write(&workflow, text).unwrap();
    let run = Command::new(&python)
        .arg(root().join("ci/lint-templates.py"))
        .arg(broken.path())
        .output()
        .unwrap();
    assert!(!run.status.success(), "an unknown key fails the schema");
}

/// Every `LOCKGATE_*` setting the action and the CI templates pass is one the script
/// reads (a renamed variable would silently do nothing).
#[test]
fn the_templates_pass_only_settings_the_script_reads() {
    let script = read(&root().join("ci/lockgate-ci.sh"));
    let names = |text: &str| -> Vec<String> {
        let mut out: Vec<String> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("LOCKGATE_") && w.len() > "LOCKGATE_".len())
            .map(String::from)
            .collect();
        out.sort();
        out.dedup();
        out
    };
    // Settings of the script itself, of `lockgate` (read by clap), or of the templates'
    // own steps.
    let elsewhere = [
        "LOCKGATE_SERVER",
        "LOCKGATE_SERVER_TOKEN",
        "LOCKGATE_SOURCE",
        "LOCKGATE_GATEWAY_URL",
        "LOCKGATE_AGENT_CREDENTIAL",
        "LOCKGATE_AGENT_SIGNING_KEY",
    ];
    for f in [
        "action.yml",
        "ci/templates/github/lockgate.yml",
        "ci/templates/gitlab/lockgate.gitlab-ci.yml",
        "ci/templates/jenkins/Jenkinsfile",
    ] {
        let text = read(&root().join(f));
        for name in names(&text) {
            assert!(
                script.contains(&name) || elsewhere.contains(&name.as_str()),
                "{f} sets {name}, which nothing reads"
            );
        }
        if f != "ci/templates/github/lockgate.yml" {
            assert!(
                text.contains("ci/lockgate-ci.sh"),
                "{f} runs the tested script"
            );
        }
    }
}
