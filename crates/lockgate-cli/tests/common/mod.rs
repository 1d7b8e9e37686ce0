//! Helpers shared by the CLI's end-to-end tests: run the real binary, make an agent
//! key, sign a session.
#![allow(dead_code)] // each test file uses a subset

pub mod browser;
pub mod fake_http;
pub mod server;

use lockgate_testkit::TestRepo;
use serde_json::Value;
use std::process::Command;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `lockgate` binary in the repository.
pub fn lockgate(repo: &TestRepo, args: &[&str]) -> Run {
    lockgate_env(repo, args, &[])
}

/// Runs the `lockgate` binary in the repository with extra environment.
pub fn lockgate_env(repo: &TestRepo, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockgate"));
    cmd.current_dir(repo.path()).args(args);
    cmd.env_remove("GITHUB_BASE_REF")
        .env_remove("LOCKGATE_LEDGER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run lockgate");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `lockgate check --base main --format json` plus `extra`: exit code and document.
pub fn check_json(repo: &TestRepo, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["check", "--base", "main", "--format", "json"];
    args.extend_from_slice(extra);
    let run = lockgate(repo, &args);
    let json = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", run.stdout, run.stderr));
    (run.code, json)
}

/// Generates the agents' signing key inside `.git/` (never committed) and returns the
/// trust-root TOML that trusts it.
pub fn agent_key(r: &TestRepo) -> String {
    let prefix = r.path().join(".git/agent");
    let run = lockgate(r, &["keygen", "--out", prefix.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let public = std::fs::read_to_string(r.path().join(".git/agent.pub")).unwrap();
    format!("[[key]]\nname = \"ci-agents\"\nagents = [\"*\"]\npublic_key = '''\n{public}'''\n")
}

/// Signs the session `main..HEAD` as `agent` with `model`.
pub fn attest(r: &TestRepo, agent: &str, model: &str) {
    attest_with(r, agent, model, &[]);
}

/// [`attest`] with more `lockgate attest` arguments.
pub fn attest_with(r: &TestRepo, agent: &str, model: &str, extra: &[&str]) {
    let key = r.path().join(".git/agent.key");
    let mut args = vec![
        "attest",
        "--key",
        key.to_str().unwrap(),
        "--agent",
        agent,
        "--model",
        model,
        "--prompt",
        "do the task",
        "--base",
        "main",
        "--head",
        "HEAD",
    ];
    args.extend_from_slice(extra);
    let run = lockgate(r, &args);
    assert_eq!(run.code, 0, "attest failed: {}{}", run.stdout, run.stderr);
}

/// The factor named `name` of a decision's trust score.
pub fn factor<'a>(decision: &'a Value, name: &str) -> &'a Value {
    decision["trust"]["factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no factor {name}"))
}

/// The rules of the required approvals.
pub fn approval_rules(decision: &Value) -> Vec<String> {
    decision["required_approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap().to_string())
        .collect()
}

/// HMAC-SHA256 written out from RFC 2104, to check the server's webhook signatures with
/// code that shares nothing with it.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}
