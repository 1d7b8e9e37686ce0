//! A `lockgate serve` under test: its people directory, tokens made by the CLI, the
//! server as a child process on a free loopback port, JSON over HTTP, a signed agent
//! change to record, and PostgreSQL-or-NOTICE.

use super::{agent_key, attest, attest_with, lockgate};
use lockgate_store::scratch::{self, TEST_DATABASE_URL};
use lockgate_testkit::{Background, CLAUDE, TestRepo, spawn};
use serde_json::Value;
use std::path::Path;

pub const SERVER_CONFIG: &str = r#"
[log]
dir = ".git/lockgate-log"

[[person]]
id = "ada"
name = "Ada Lovelace"
emails = ["ada@example.com"]
github = "ada"
slack = "U0ADA"
teams = ["@org/backend"]

[[person]]
id = "bob"
name = "Bob"
emails = ["bob@example.com"]
github = "bob"
slack = "U0BOB"

[[person]]
id = "eve"
name = "Eve"
emails = ["eve@example.com"]
github = "eve"
teams = ["@org/backend"]
"#;

/// Makes a token with the CLI (printed once, on stdout).
pub fn token(repo: &TestRepo, config: &Path, db: &str, subject: &str, role: &str) -> String {
    let run = lockgate(
        repo,
        &[
            "serve",
            "token",
            "create",
            "--subject",
            subject,
            "--role",
            role,
            "--config",
            config.to_str().unwrap(),
            "--database-url",
            db,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !run.stderr.contains(run.stdout.trim()),
        "the token is printed once, on stdout"
    );
    run.stdout.trim().to_string()
}

/// Starts `lockgate serve` on a free port.
pub fn start(repo: &TestRepo, config: &Path, db: &str) -> Background {
    start_env(repo, config, db, &[])
}

/// Starts `lockgate serve` on a free port with extra environment.
pub fn start_env(repo: &TestRepo, config: &Path, db: &str, env: &[(&str, &str)]) -> Background {
    let server = spawn(
        env!("CARGO_BIN_EXE_lockgate"),
        repo.path(),
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--database-url",
            db,
            "--listen",
            "127.0.0.1:0",
        ],
        env,
    );
    assert!(
        server.first_line.starts_with("listening on http://"),
        "{}",
        server.first_line
    );
    server
}

/// Sends JSON (or a GET); the status and the JSON (or text) answer.
pub fn http(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(url);
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.call().unwrap()
        }
        (_, body) => {
            let mut r = agent.post(url).header("Content-Type", "application/json");
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.send(
                serde_json::to_vec(&body.unwrap_or(Value::Null))
                    .unwrap()
                    .as_slice(),
            )
            .unwrap()
        }
    };
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A repository whose `change` branch is a signed Claude Code change to `src/` (owned by
/// @org/backend), and `lockgate check`'s exit code and decision for it.
pub fn signed_agent_change() -> (TestRepo, i32, Value) {
    agent_change(None)
}

/// Like [`signed_agent_change`]; with a transcript (JSONL in Lockgate's step format),
/// the attestation carries its digest and the redacted bytes are written to
/// `.git/transcript.redacted.jsonl`.
pub fn agent_change(transcript: Option<&str>) -> (TestRepo, i32, Value) {
    agent_change_under("", transcript)
}

/// [`agent_change`] with `.lockgate.toml` (on the base branch) set to `config`.
pub fn agent_change_under(config: &str, transcript: Option<&str>) -> (TestRepo, i32, Value) {
    let r = TestRepo::new();
    if !config.is_empty() {
        r.write(".lockgate.toml", config);
    }
    let trust = agent_key(&r);
    r.write(".lockgate/trust.toml", &trust);
    r.write(
        ".github/CODEOWNERS",
        "* @org/maintainers\n/src/ @org/backend\n",
    );
    r.write("src/lib.rs", "pub fn f() {}\n");
    r.commit("init");
    r.branch("change");
    r.write("src/lib.rs", "pub fn f() {}\npub fn g() {}\n");
    r.commit_as(CLAUDE, "feat: g");
    match transcript {
        None => attest(&r, "claude-code", "claude-sonnet-4-5"),
        Some(text) => {
            let input = r.path().join(".git/transcript.jsonl");
            std::fs::write(&input, text).unwrap();
            let output = r.path().join(".git/transcript.redacted.jsonl");
            attest_with(
                &r,
                "claude-code",
                "claude-sonnet-4-5",
                &[
                    "--transcript",
                    input.to_str().unwrap(),
                    "--transcript-out",
                    output.to_str().unwrap(),
                ],
            );
        }
    }
    let run = lockgate(&r, &["check", "--base", "main", "--format", "json"]);
    let decision =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stderr));
    (r, run.code, decision)
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Runs `case` on a scratch PostgreSQL database, or says (past the harness's capture)
/// that `name` was skipped when no server is configured.
pub fn on_postgres(name: &str, case: impl FnOnce(&str)) {
    let Ok(admin) = std::env::var(TEST_DATABASE_URL) else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "NOTICE: {name} skipped — set {TEST_DATABASE_URL}=postgres://user@host/db to run it"
        );
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, db) = rt.block_on(scratch::create_database(&admin)).unwrap();
    case(&url);
    rt.block_on(scratch::drop_database(&admin, &db)).unwrap();
}

/// POSTs JSON; `None` when the connection fails (the server is gone).
pub fn try_post(url: &str, token: &str, body: &Value) -> Option<u16> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    agent
        .post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(body).unwrap().as_slice())
        .ok()
        .map(|r| r.status().as_u16())
}
