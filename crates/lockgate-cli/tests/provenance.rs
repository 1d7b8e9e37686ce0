//! Provenance end to end with the real binary and real repositories: keygen, attest,
//! verify (commit, tree and patch-id bindings; tampering; revocation; untrusted and
//! stale attestations), check's per-commit statuses, foreign signatures, and an
//! independent DSSE implementation verifying what we sign (and the reverse).

use lockgate_testkit::{CLAUDE, HUMAN, TestRepo};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn lockgate_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockgate"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("LOCKGATE_KEY_PASSPHRASE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn lockgate(r: &TestRepo, args: &[&str]) -> Run {
    lockgate_in(r.path(), args, &[])
}

fn attest_data(path: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/../lockgate-attest/tests/data/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// A key pair in `.git/<name>.{key,pub}` and its trust-root entry.
fn keygen(r: &TestRepo, name: &str, extra_toml: &str) -> String {
    let prefix = r.path().join(format!(".git/{name}"));
    let run = lockgate(r, &["keygen", "--out", prefix.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let public = std::fs::read_to_string(r.path().join(format!(".git/{name}.pub"))).unwrap();
    format!(
        "[[key]]\nname = \"{name}\"\nagents = [\"claude-code\"]\npublic_key = '''\n{public}'''\n{extra_toml}\n"
    )
}

fn attest(r: &TestRepo, key: &str, base: &str, extra: &[&str]) -> Run {
    let key = r.path().join(format!(".git/{key}.key"));
    let mut args = vec![
        "attest",
        "--key",
        key.to_str().unwrap(),
        "--agent",
        "claude-code",
        "--model",
        "claude-sonnet-4-5",
        "--prompt",
        "fix the login bug",
        "--base",
        base,
        "--head",
        "HEAD",
    ];
    args.extend_from_slice(extra);
    lockgate(r, &args)
}

fn verify_json(r: &TestRepo, head: &str) -> Value {
    let trust = r.path().join(".lockgate/trust.toml");
    let run = lockgate(
        r,
        &[
            "verify",
            "--head",
            head,
            "--trust-root",
            trust.to_str().unwrap(),
            "--json",
        ],
    );
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr))
}

fn check_json(r: &TestRepo) -> (i32, Value) {
    let run = lockgate(r, &["check", "--base", "main", "--format", "json"]);
    (
        run.code,
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stderr)),
    )
}

/// `main` with a trust root for key `agent`; a `work` branch checked out.
fn setup(extra_toml: &str) -> TestRepo {
    let r = TestRepo::new();
    let trust = keygen(&r, "agent", extra_toml);
    r.write(".lockgate/trust.toml", &trust);
    r.write(
        "src/login.py",
        "def login(email):\n    return User.get(email=email)\n",
    );
    r.write(
        "Cargo.lock",
        "version = 4\n[[package]]\nname = \"serde\"\nversion = \"1.0.200\"\n",
    );
    r.commit("init");
    r.branch("work");
    r
}

#[test]
fn attest_then_verify_with_transcript_deps_and_notes() {
    let r = setup("");
    r.write(
        "src/login.py",
        "def login(email):\n    return User.get(email=email.lower())\n",
    );
    r.write("Cargo.lock", "version = 4\n[[package]]\nname = \"serde\"\nversion = \"1.0.210\"\n[[package]]\nname = \"idna\"\nversion = \"1.0.0\"\n");
    r.commit_as(CLAUDE, "fix login");
    let transcript = attest_data("transcripts/claude-code-session.jsonl");
    let trace = attest_data("agent-trace/example-record.json");
    let redacted = r.path().join(".git/redacted.jsonl");
    let run = attest(
        &r,
        "agent",
        "main",
        &[
            "--transcript",
            transcript.to_str().unwrap(),
            "--agent-trace",
            trace.to_str().unwrap(),
            "--transcript-out",
            redacted.to_str().unwrap(),
            "--task",
            "https://tracker/ISSUE-7",
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("7 steps, 4 tool calls, 2 files touched, 1 secret(s) redacted"),
        "{}",
        run.stdout
    );
    assert!(
        !std::fs::read_to_string(&redacted)
            .unwrap()
            .contains("Zr8q2LxT9wVb7Nk3")
    );

    // The note is on the commit and on its tree, readable by git itself.
    let head = r.head();
    let tree = r.git(&["rev-parse", "HEAD^{tree}"]);
    let note = r.git(&["notes", "--ref", "lockgate", "show", &head]);
    assert!(note.contains("application/vnd.dev.sigstore.bundle.v0.3+json"));
    assert_eq!(note, r.git(&["notes", "--ref", "lockgate", "show", &tree]));

    let v = verify_json(&r, "HEAD");
    assert_eq!(v["status"], "valid", "{v:#}");
    assert_eq!(v["best"]["binding"], "commit");
    assert_eq!(v["best"]["signer"], "agent");
    let session = &v["best"]["session"];
    assert_eq!(session["model"]["provider"], "anthropic");
    assert_eq!(session["task"], "https://tracker/ISSUE-7");
    assert_eq!(session["transcript"]["toolCalls"], 4);
    assert_eq!(
        session["transcript"]["agentTrace"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let deps = &session["dependencies"];
    assert_eq!(deps["added"][0]["name"], "idna");
    assert_eq!(deps["changed"][0]["from"], "1.0.200");
    assert!(
        session["proposed"]["patchId"]
            .as_str()
            .unwrap()
            .starts_with("lockgate-patch-id/v1:")
    );
    // The predicate matches its published JSON Schema.
    let schema_path = format!(
        "{}/../../schema/predicate-agent-session.v1.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(session)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    // check reports the agent commit's provenance as valid, so the provenance rule
    // asks for nothing (the auth route still gates the change).
    let (_, json) = check_json(&r);
    assert_eq!(json["provenance"]["commits"][0]["status"], "valid");
    assert_eq!(json["provenance"]["commits"][0]["transcript"]["steps"], 7);
    assert!(
        json["required_approvals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["rule"] != "provenance.required")
    );
}

#[test]
fn squash_and_rebase_keep_the_binding_by_tree_and_by_patch_id() {
    let r = setup("");
    r.write(
        "src/login.py",
        "def login(email):\n    return User.get(email=email.strip())\n",
    );
    r.commit_as(CLAUDE, "strip emails");
    assert_eq!(attest(&r, "agent", "main", &[]).code, 0);

    // Squash-merge onto an unchanged main: a new commit with the same tree.
    r.checkout("main");
    r.git(&["merge", "--squash", "-q", "work"]);
    r.commit_as(HUMAN, "Strip emails (#12)");
    let v = verify_json(&r, "HEAD");
    assert_eq!(
        (v["status"].as_str(), v["best"]["binding"].as_str()),
        (Some("valid"), Some("tree")),
        "{v:#}"
    );

    // Rebase onto a main that moved: new tree, same patch.
    r.git(&["reset", "-q", "--hard", "HEAD~1"]);
    r.write("README.md", "docs moved on\n");
    r.commit("docs");
    r.git(&["checkout", "-q", "-b", "rebased"]);
    r.git(&["cherry-pick", "work"]);
    let v = verify_json(&r, "HEAD");
    assert_eq!(
        (v["status"].as_str(), v["best"]["binding"].as_str()),
        (Some("valid"), Some("patch_id")),
        "{v:#}"
    );

    // A different change is not covered.
    r.write("src/login.py", "def login(email):\n    return None\n");
    r.commit_as(CLAUDE, "different");
    assert_eq!(verify_json(&r, "HEAD")["status"], "missing");
}

#[test]
fn tampered_notes_block_the_change() {
    let r = setup("");
    r.write("src/login.py", "def login(email):\n    return 1\n");
    r.commit_as(CLAUDE, "change");
    assert_eq!(
        attest(
            &r,
            "agent",
            "main",
            &["--no-note", "--out", ".git/bundle.json"]
        )
        .code,
        0
    );
    // Swap the statement's model inside the signed payload and store that as the note.
    let mut bundle: Value =
        serde_json::from_str(&std::fs::read_to_string(r.path().join(".git/bundle.json")).unwrap())
            .unwrap();
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let payload = engine
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let forged = String::from_utf8(payload)
        .unwrap()
        .replace("claude-sonnet-4-5", "claude-opus-4-1");
    bundle["dsseEnvelope"]["payload"] = engine.encode(forged).into();
    r.git(&[
        "notes",
        "--ref",
        "lockgate",
        "add",
        "-m",
        &bundle.to_string(),
        "HEAD",
    ]);

    let v = verify_json(&r, "HEAD");
    assert_eq!(v["status"], "invalid", "{v:#}");
    let (code, json) = check_json(&r);
    assert_eq!(code, 4);
    assert!(
        json["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["rule"] == "provenance.invalid"),
        "{json:#}"
    );

    // The untouched bundle file still verifies when given explicitly.
    let trust = r.path().join(".lockgate/trust.toml");
    let run = lockgate(
        &r,
        &[
            "verify",
            "--trust-root",
            trust.to_str().unwrap(),
            "--bundle",
            ".git/bundle.json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn revoked_untrusted_and_stale_attestations() {
    // Revoked: the trust root at base marks the key revoked.
    let r = setup("revoked = true");
    r.write("src/login.py", "x = 1\n");
    r.commit_as(CLAUDE, "c");
    assert_eq!(attest(&r, "agent", "main", &[]).code, 0);
    assert_eq!(verify_json(&r, "HEAD")["status"], "revoked");
    let (code, json) = check_json(&r);
    assert_eq!(code, 4);
    assert_eq!(json["provenance"]["commits"][0]["status"], "revoked");

    // Untrusted: signed by a key that is not in the trust root.
    let r = setup("");
    keygen(&r, "stranger", "");
    r.write("src/login.py", "x = 2\n");
    r.commit_as(CLAUDE, "c");
    assert_eq!(attest(&r, "stranger", "main", &[]).code, 0);
    assert_eq!(verify_json(&r, "HEAD")["status"], "untrusted_key");
    let (code, json) = check_json(&r);
    assert_eq!(code, 3);
    assert!(
        json["required_approvals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "provenance.required")
    );

    // Stale: an attestation for another tree copied onto this commit.
    let r = setup("");
    r.write("src/login.py", "x = 3\n");
    r.commit_as(CLAUDE, "c");
    assert_eq!(attest(&r, "agent", "main", &[]).code, 0);
    let attested = r.head();
    r.write("src/login.py", "x = 4\n");
    r.git(&["add", "-A"]);
    r.git(&["commit", "-q", "--amend", "--no-edit"]);
    r.git(&["notes", "--ref", "lockgate", "copy", &attested, "HEAD"]);
    assert_eq!(verify_json(&r, "HEAD")["status"], "stale");
}

#[test]
fn check_covers_agent_commits_below_an_attested_head_only() {
    let r = setup("");
    r.write("src/a.py", "a = 1\n");
    let first = r.commit_as(CLAUDE, "one");
    r.write("src/b.py", "b = 1\n");
    r.commit_as(CLAUDE, "two");
    assert_eq!(attest(&r, "agent", "main", &[]).code, 0);
    let (_, json) = check_json(&r);
    let commits = json["provenance"]["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 2);
    assert!(
        commits.iter().all(|c| c["status"] == "valid"),
        "{commits:#?}"
    );
    let covered = commits
        .iter()
        .find(|c| c["commit"] == first.as_str())
        .unwrap();
    assert_eq!(covered["attested_by"], r.head().as_str());

    // A later, unattested agent commit is missing; a human commit needs nothing.
    r.write("src/c.py", "c = 1\n");
    r.commit_as(CLAUDE, "three");
    r.write("README.md", "human\n");
    r.commit_as(HUMAN, "human");
    let (code, json) = check_json(&r);
    let commits = json["provenance"]["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 3);
    assert_eq!(
        commits.iter().filter(|c| c["status"] == "missing").count(),
        1
    );
    assert_eq!(code, 3);
    assert_eq!(json["provenance"]["summary"]["valid"], 2);
}

#[test]
fn encrypted_keys_need_their_passphrase() {
    let r = TestRepo::new();
    r.write("a", "1\n");
    r.commit("init");
    r.write("a", "2\n");
    r.commit_as(CLAUDE, "c");
    let prefix = r.path().join(".git/secret");
    let run = lockgate_in(
        r.path(),
        &[
            "keygen",
            "--out",
            prefix.to_str().unwrap(),
            "--algorithm",
            "ecdsa-p256",
            "--passphrase-env",
            "PASS",
        ],
        &[("PASS", "correct horse battery")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let key = r.path().join(".git/secret.key");
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let args = [
        "attest",
        "--key",
        key.to_str().unwrap(),
        "--agent",
        "codex",
        "--model",
        "gpt-5-codex",
        "--prompt",
        "p",
        "--base",
        "HEAD~1",
        "--no-note",
    ];
    let run = lockgate_in(r.path(), &args, &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("LOCKGATE_KEY_PASSPHRASE"),
        "{}",
        run.stderr
    );
    let run = lockgate_in(r.path(), &args, &[("LOCKGATE_KEY_PASSPHRASE", "wrong")]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("wrong passphrase"), "{}", run.stderr);
    let run = lockgate_in(
        r.path(),
        &args,
        &[("LOCKGATE_KEY_PASSPHRASE", "correct horse battery")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Refuses to overwrite keys.
    let run = lockgate(&r, &["keygen", "--out", prefix.to_str().unwrap()]);
    assert_eq!(run.code, 1);
}

#[test]
fn foreign_signatures_verify_with_the_same_keys() {
    let here = std::env::temp_dir();
    // cosign sign-blob style (Sigstore conformance, managed key).
    let key = attest_data("sigstore-conformance/managed-key-happy-path/key.pub");
    let bundle = attest_data("sigstore-conformance/managed-key-happy-path/bundle.sigstore.json");
    let blob = attest_data("sigstore-conformance/a.txt");
    let run = lockgate_in(
        &here,
        &[
            "verify",
            "--key",
            key.to_str().unwrap(),
            "--blob",
            blob.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    // The same bundle does not verify another file.
    let other = attest_data("sigstore-conformance/README.upstream.md");
    let run = lockgate_in(
        &here,
        &[
            "verify",
            "--key",
            key.to_str().unwrap(),
            "--blob",
            other.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code, 4);
    // A detached base64 signature (cosign sign-blob --output-signature).
    let sig_file = tempfile::NamedTempFile::new().unwrap();
    let bundle_json: Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    std::fs::write(
        sig_file.path(),
        bundle_json["messageSignature"]["signature"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let run = lockgate_in(
        &here,
        &[
            "verify",
            "--key",
            key.to_str().unwrap(),
            "--blob",
            blob.to_str().unwrap(),
            "--signature",
            sig_file.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);

    // A DSSE attestation made by npm / sigstore-js.
    let key = attest_data("sigstore-go/publish_key.pub");
    let envelope = attest_data("sigstore-go/bundle-publish.json");
    let run = lockgate_in(
        &here,
        &[
            "verify",
            "--key",
            key.to_str().unwrap(),
            "--envelope",
            envelope.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
}

/// Python with securesystemslib, as installed by `.ci/run` ($LOCKGATE_PYTHON).
fn python() -> Option<String> {
    let candidates = [
        std::env::var("LOCKGATE_PYTHON").ok(),
        Some("python3".to_string()),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import securesystemslib, cryptography"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn an_independent_dsse_implementation_agrees_both_ways() {
    let Some(python) = python() else {
        // Written past the test harness's capture, so the skip is never silent.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "NOTICE: skipped an_independent_dsse_implementation_agrees_both_ways: no python with securesystemslib (`.ci/run` installs one; or set LOCKGATE_PYTHON)"
        );
        return;
    };
    let script = format!(
        "{}/tests/interop/dsse_interop.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let r = TestRepo::new();
    r.write("a", "1\n");
    r.commit("init");
    r.write("a", "2\n");
    r.commit_as(CLAUDE, "c");
    for alg in ["ed25519", "ecdsa-p256"] {
        let prefix = r.path().join(format!(".git/k-{alg}"));
        assert_eq!(
            lockgate(
                &r,
                &[
                    "keygen",
                    "--out",
                    prefix.to_str().unwrap(),
                    "--algorithm",
                    alg
                ]
            )
            .code,
            0
        );
        let out = r.path().join(format!(".git/b-{alg}.json"));
        let key = r.path().join(format!(".git/k-{alg}.key"));
        let run = lockgate(
            &r,
            &[
                "attest",
                "--key",
                key.to_str().unwrap(),
                "--agent",
                "codex",
                "--model",
                "gpt-5-codex",
                "--prompt",
                "p",
                "--base",
                "HEAD~1",
                "--out",
                out.to_str().unwrap(),
                "--no-note",
            ],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        let public = r.path().join(format!(".git/k-{alg}.pub"));
        let py = Command::new(&python)
            .args([
                &script,
                "verify",
                public.to_str().unwrap(),
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            py.status.success(),
            "securesystemslib rejected our {alg} envelope: {}",
            String::from_utf8_lossy(&py.stderr)
        );

        // The reverse: securesystemslib signs, Lockgate verifies.
        let dir = tempfile::tempdir().unwrap();
        let py_alg = if alg == "ed25519" { "ed25519" } else { "ecdsa" };
        let py = Command::new(&python)
            .args([&script, "sign", dir.path().to_str().unwrap(), py_alg])
            .output()
            .unwrap();
        assert!(
            py.status.success(),
            "{}",
            String::from_utf8_lossy(&py.stderr)
        );
        let run = lockgate_in(
            dir.path(),
            &["verify", "--key", "pub.pem", "--envelope", "envelope.json"],
            &[],
        );
        assert_eq!(run.code, 0, "{}", run.stdout);
    }
}

#[test]
fn an_attestation_for_another_agent_is_flagged() {
    let r = TestRepo::new();
    let trust = keygen(&r, "agent", "").replace("agents = [\"claude-code\"]", "agents = [\"*\"]");
    r.write(".lockgate/trust.toml", &trust);
    r.commit("init");
    r.branch("work");
    r.write("docs/a.md", "x\n");
    r.commit_as(CLAUDE, "docs");
    let key = r.path().join(".git/agent.key");
    let run = lockgate(
        &r,
        &[
            "attest",
            "--key",
            key.to_str().unwrap(),
            "--agent",
            "codex",
            "--model",
            "gpt-5-codex",
            "--prompt",
            "p",
            "--base",
            "main",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (_, json) = check_json(&r);
    let c = &json["provenance"]["commits"][0];
    assert_eq!(c["status"], "valid");
    assert_eq!(c["agent_matches_commit"], false);
    assert!(
        json["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["rule"] == "provenance.agent_mismatch"),
        "{json:#}"
    );
}

#[test]
fn logged_attestations_carry_inclusion_proofs_checked_offline() {
    let logs = tempfile::tempdir().unwrap();
    let log_dir = logs.path().join("log");
    let init = lockgate_in(
        logs.path(),
        &["log", "init", "log", "--origin", "example.com/agents"],
        &[],
    );
    assert_eq!(init.code, 0, "{}", init.stderr);
    let vkey = std::fs::read_to_string(log_dir.join("log.pub")).unwrap();
    let r = setup(&format!(
        "\n[[log]]\nname = \"agents-log\"\nkey = \"{}\"\nrequired = true\n",
        vkey.trim()
    ));
    r.write("src/login.py", "def login(email):\n    return 2\n");
    r.commit_as(CLAUDE, "change");
    let run = attest(
        &r,
        "agent",
        "main",
        &[
            "--log",
            log_dir.to_str().unwrap(),
            "--out",
            ".git/bundle.json",
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("logged: entry 0"), "{}", run.stdout);

    // verify and check both see the inclusion, checked against the trusted log key.
    let v = verify_json(&r, "HEAD");
    assert_eq!(v["status"], "valid", "{v:#}");
    assert_eq!(v["best"]["logged"]["log"], "agents-log");
    assert_eq!(v["best"]["logged"]["index"], 0);
    let (_, json) = check_json(&r);
    assert_eq!(
        json["provenance"]["commits"][0]["logged"]["index"], 0,
        "{json:#}"
    );

    // The bundle's entry is the Sigstore shape, and the log finds it by commit and agent.
    let bundle: Value =
        serde_json::from_str(&std::fs::read_to_string(r.path().join(".git/bundle.json")).unwrap())
            .unwrap();
    let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
    assert_eq!(entry["kindVersion"]["kind"], "lockgate-dsse");
    assert_eq!(entry["inclusionProof"]["treeSize"], "1");
    let head = r.head();
    for query in [["--commit", &head[..10]], ["--agent", "claude-code"]] {
        let found = lockgate_in(
            logs.path(),
            &["log", "search", "log", "--json", query[0], query[1]],
            &[],
        );
        assert_eq!(found.code, 0, "{}", found.stderr);
        let hit: Value = serde_json::from_str(found.stdout.trim()).unwrap();
        assert_eq!(hit["index"], 0);
        assert_eq!(hit["commits"][0], head.as_str());
    }

    // A bundle whose proof was altered, or whose log entry was stripped, is invalid:
    // the trust root requires the log.
    let replace_note = |bundle: &Value| {
        r.git(&[
            "notes",
            "--ref",
            "lockgate",
            "add",
            "-f",
            "-m",
            &bundle.to_string(),
            "HEAD",
        ]);
        let tree = r.git(&["rev-parse", "HEAD^{tree}"]);
        r.git(&[
            "notes",
            "--ref",
            "lockgate",
            "add",
            "-f",
            "-m",
            &bundle.to_string(),
            &tree,
        ]);
    };
    let mut altered = bundle.clone();
    altered["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["rootHash"] =
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    replace_note(&altered);
    let v = verify_json(&r, "HEAD");
    assert_eq!(v["status"], "invalid", "{v:#}");
    assert!(v.to_string().contains("inclusion proof"), "{v:#}");
    let mut stripped = bundle.clone();
    stripped["verificationMaterial"]["tlogEntries"] = serde_json::json!([]);
    replace_note(&stripped);
    let v = verify_json(&r, "HEAD");
    assert_eq!(v["status"], "invalid", "{v:#}");
    assert!(v.to_string().contains("not logged"), "{v:#}");
    let (code, _) = check_json(&r);
    assert_eq!(code, 4);

    // Through `lockgate log serve`: the same log over HTTP, appended with its token.
    std::fs::write(logs.path().join("token"), "a-long-enough-append-token\n").unwrap();
    let server = lockgate_testkit::spawn(
        env!("CARGO_BIN_EXE_lockgate"),
        logs.path(),
        &[
            "log",
            "serve",
            "log",
            "--listen",
            "127.0.0.1:0",
            "--batch-interval-ms",
            "50",
            "--token-file",
            "token",
        ],
        &[],
    );
    r.write("src/login.py", "def login(email):\n    return 3\n");
    r.commit_as(CLAUDE, "another change");
    let key = log_dir.join("log.pub");
    let token = logs.path().join("token");
    let run = attest(
        &r,
        "agent",
        "main",
        &[
            "--log",
            server.url(),
            "--log-key",
            key.to_str().unwrap(),
            "--log-token-file",
            token.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("logged: entry 1"), "{}", run.stdout);
    let v = verify_json(&r, "HEAD");
    assert_eq!(v["status"], "valid", "{v:#}");
    assert_eq!(v["best"]["logged"]["index"], 1);
    // Without the token the server refuses, and attest fails rather than sign unlogged.
    let run = attest(
        &r,
        "agent",
        "main",
        &["--log", server.url(), "--log-key", key.to_str().unwrap()],
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("token"), "{}", run.stderr);
}
