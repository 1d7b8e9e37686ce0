//! `lockgate serve` end to end over real HTTP on loopback, on SQLite and on PostgreSQL
//! (a scratch database when `LOCKGATE_TEST_DATABASE_URL` is set; else a NOTICE): tokens
//! made by the CLI, decisions posted by `lockgate check --server`, approvals bound to the
//! head, owners-only, no agents, no self-approval, restart without loss.

mod common;

use common::server::{
    SERVER_CONFIG, http, on_postgres, signed_agent_change, start, token, try_post,
};
use common::{agent_key, attest, lockgate};
use lockgate_testkit::{CLAUDE, TestRepo};
use serde_json::{Value, json};

/// The whole approval flow against a server on `db`.
fn approval_flow(db: &str) {
    let r = TestRepo::new();
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
    attest(&r, "claude-code", "claude-sonnet-4-5");
    // Eve wrote a commit in this change too.
    r.write(
        "src/lib.rs",
        "pub fn f() {}\npub fn g() {}\npub fn h() {}\n",
    );
    r.commit_as(
        lockgate_testkit::Ident {
            name: "Eve",
            email: "eve@example.com",
        },
        "feat: h",
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, SERVER_CONFIG).unwrap();
    let ci = token(&r, &config, db, "ci-main", "ci");
    let ada = token(&r, &config, db, "ada", "person");
    let bob = token(&r, &config, db, "bob", "person");
    let eve = token(&r, &config, db, "eve", "person");
    let ci_file = dir.path().join("ci.token");
    std::fs::write(&ci_file, &ci).unwrap();

    let mut server = start(&r, &config, db);
    let url = server.url().to_string();
    let check = |r: &TestRepo, url: &str| {
        lockgate(
            r,
            &[
                "check",
                "--base",
                "main",
                "--server",
                url,
                "--server-token-file",
                ci_file.to_str().unwrap(),
                "--server-repo",
                "acme/api",
                "--change",
                "pr/1",
            ],
        )
    };
    let run = check(&r, &url);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("server: recorded acme/api pr/1"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("not all given"));
    let head = r.head();

    // Who may approve.
    let body = |head: &str| json!({"repo": "acme/api", "change_ref": "pr/1", "head_sha": head, "state": "approved"});
    let approvals = format!("{url}/api/v1/approvals");
    let (s, _) = http("POST", &approvals, None, Some(body(&head)));
    assert_eq!(s, 401);
    let (s, _) = http(
        "POST",
        &approvals,
        Some("lgt_00000000000000000000000000000000_00"),
        Some(body(&head)),
    );
    assert_eq!(s, 401);
    let (s, e) = http("POST", &approvals, Some(&ada), Some(json!({"repo": 1})));
    assert_eq!(s, 422);
    assert!(
        e["error"].as_str().unwrap().starts_with("request body:"),
        "{e}"
    );
    let (s, e) = http("POST", &approvals, Some(&ci), Some(body(&head)));
    assert_eq!(s, 403, "a CI token cannot approve: {e}");
    let (s, e) = http("POST", &approvals, Some(&bob), Some(body(&head)));
    assert_eq!(s, 403, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("not among the owners"),
        "{e}"
    );
    let (s, e) = http("POST", &approvals, Some(&eve), Some(body(&head)));
    assert_eq!(s, 403, "{e}");
    assert!(e["error"].as_str().unwrap().contains("own change"), "{e}");
    let (s, e) = http("POST", &approvals, Some(&ada), Some(body(&"0".repeat(40))));
    assert_eq!(s, 409, "{e}");
    let (s, state) = http("POST", &approvals, Some(&ada), Some(body(&head)));
    assert_eq!(s, 200, "{state}");
    assert_eq!(state["approved"], true, "{state}");
    // Twice is once.
    let (_, again) = http("POST", &approvals, Some(&ada), Some(body(&head)));
    assert_eq!(again["approvals"].as_array().unwrap().len(), 1);

    // The gate now passes at this head.
    let run = check(&r, &url);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("ada approved via api"),
        "{}",
        run.stdout
    );

    // Restart: nothing lost.
    drop(server);
    server = start(&r, &config, db);
    let url = server.url().to_string();
    let (s, view) = http(
        "GET",
        &format!("{url}/api/v1/change?repo=acme/api&change=pr/1"),
        Some(&bob),
        None,
    );
    assert_eq!(s, 200, "{view}");
    assert_eq!(
        view["history"].as_array().unwrap().len(),
        1,
        "the same decision twice is one"
    );
    assert_eq!(view["state"]["approved"], true);

    // A new push: the approval does not carry over.
    r.write(
        "src/lib.rs",
        "pub fn f() {}\npub fn g() {}\npub fn h() {}\npub fn i() {}\n",
    );
    r.commit_as(CLAUDE, "feat: i");
    attest(&r, "claude-code", "claude-sonnet-4-5");
    let run = check(&r, &url);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    let (_, pending) = http("GET", &format!("{url}/api/v1/pending"), Some(&bob), None);
    let pending = pending.as_array().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["head_sha"], r.head());
    let approvals = format!("{url}/api/v1/approvals");
    let (s, _) = http("POST", &approvals, Some(&ada), Some(body(&head)));
    assert_eq!(s, 409, "an approval for the old head is refused");

    // Operations and the spec.
    let (s, _) = http("GET", &format!("{url}/readyz"), None, None);
    assert_eq!(s, 200);
    let (s, spec) = http("GET", &format!("{url}/api/v1/openapi.json"), None, None);
    assert_eq!(s, 200);
    for path in [
        "/api/v1/decisions",
        "/api/v1/approvals",
        "/api/v1/pending",
        "/api/v1/change",
        "/api/v1/commit",
        "/api/v1/holds",
        "/api/v1/holds/release",
        "/api/v1/transcripts",
        "/api/v1/gateway/spend",
        "/api/v1/queue",
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/messages",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "{path} missing from the spec"
        );
    }

    // Holds: an admin places one, CI cannot release it, a person does.
    let admin = token(&r, &config, db, "ada", "admin");
    let holds = format!("{url}/api/v1/holds");
    let freeze = json!({"scope": "agent", "target": "claude-code", "reason": "incident 7"});
    let (s, _) = http("POST", &holds, Some(&bob), Some(freeze.clone()));
    assert_eq!(s, 403, "only admins place holds");
    let (s, hold) = http("POST", &holds, Some(&admin), Some(freeze));
    assert_eq!(s, 200, "{hold}");
    assert_eq!(hold["placed_by"], "ada");
    let (_, active) = http("GET", &holds, Some(&bob), None);
    assert_eq!(active.as_array().unwrap().len(), 1);
    let release = format!("{url}/api/v1/holds/release");
    let (s, _) = http("POST", &release, Some(&ci), Some(json!({"id": hold["id"]})));
    assert_eq!(s, 403, "CI cannot release a hold");
    let (s, released) = http(
        "POST",
        &release,
        Some(&bob),
        Some(json!({"id": hold["id"]})),
    );
    assert_eq!(s, 200, "{released}");
    assert_eq!(released["released_by"], "bob");
    let (_, active) = http("GET", &holds, Some(&bob), None);
    assert!(active.as_array().unwrap().is_empty());

    let (s, metrics) = http("GET", &format!("{url}/metrics"), None, None);
    assert_eq!(s, 200);
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("lockgate_ledger_rows{table=\"decisions\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("lockgate_pending_changes 1"), "{metrics}");
    assert!(
        // Counters are per process: since the restart, one refusal (the stale head).
        metrics.contains("lockgate_approvals_refused_total 1"),
        "{metrics}"
    );

    // Guessing tokens: after 20 failures this address is refused for a minute, even with
    // a good token.
    for _ in 0..20 {
        let (s, _) = http(
            "GET",
            &format!("{url}/api/v1/pending"),
            Some("lgt_guess"),
            None,
        );
        assert_eq!(s, 401);
    }
    let (s, e) = http("GET", &format!("{url}/api/v1/pending"), Some(&bob), None);
    assert_eq!(s, 429, "{e}");
    let (_, metrics) = http("GET", &format!("{url}/metrics"), None, None);
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("lockgate_auth_failures_total"),
        "{metrics}"
    );
    drop(server);
}

#[test]
fn approval_flow_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    approval_flow(&format!(
        "sqlite://{}",
        dir.path().join("ledger.db").display()
    ));
}

#[test]
fn approval_flow_on_postgres() {
    on_postgres("approval_flow_on_postgres", approval_flow);
}

#[test]
fn a_person_config_with_an_agent_identity_is_refused() {
    let r = TestRepo::new();
    r.write("a", "1\n");
    r.commit("init");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        "[[person]]\nid = \"claude\"\nemails = [\"noreply@anthropic.com\"]\n",
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("l.db").display());
    let run = lockgate(
        &r,
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--database-url",
            &db,
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("agents can never approve"),
        "{}",
        run.stderr
    );
}

/// A burst of approvals, the server killed with SIGKILL in the middle of it, a restart:
/// every approval the server acknowledged is still there.
fn kill_during_burst(db: &str) {
    let (r, code, decision) = signed_agent_change();
    assert_eq!(code, 3);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, SERVER_CONFIG).unwrap();
    let ci = token(&r, &config, db, "ci-main", "ci");
    let ada = token(&r, &config, db, "ada", "person");
    let server = start(&r, &config, db);
    let url = server.url().to_string();

    // One decision per change, each at its own head.
    const CHANGES: usize = 160;
    let head = |i: usize| format!("{:040x}", i + 1);
    for i in 0..CHANGES {
        let mut d = decision.clone();
        d["head"] = json!(head(i));
        let body = json!({"repo": "acme/api", "change_ref": format!("pr/{i}"), "decision": d});
        assert_eq!(
            try_post(&format!("{url}/api/v1/decisions"), &ci, &body),
            Some(200)
        );
    }

    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..4 {
        let url = url.clone();
        let ada = ada.clone();
        let acknowledged = acknowledged.clone();
        workers.push(std::thread::spawn(move || {
            for i in (w..CHANGES).step_by(4) {
                let body = json!({"repo": "acme/api", "change_ref": format!("pr/{i}"),
                                  "head_sha": head(i), "state": "approved"});
                match try_post(&format!("{url}/api/v1/approvals"), &ada, &body) {
                    Some(200) => acknowledged.lock().unwrap().push(i),
                    Some(other) => panic!("approval {i}: HTTP {other}"),
                    None => return,
                }
            }
        }));
    }
    // Kill -9 once a third of the burst is acknowledged.
    while acknowledged.lock().unwrap().len() < CHANGES / 3 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    drop(server);
    for w in workers {
        w.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() < CHANGES, "the kill landed mid-burst");

    let server = start(&r, &config, db);
    let url = server.url().to_string();
    for i in &acknowledged {
        let (s, view) = http(
            "GET",
            &format!("{url}/api/v1/change?repo=acme/api&change=pr/{i}"),
            Some(&ada),
            None,
        );
        assert_eq!(s, 200);
        assert_eq!(
            view["state"]["approved"], true,
            "pr/{i} lost its approval: {view}"
        );
    }
    let (_, pending) = http(
        "GET",
        &format!("{url}/api/v1/pending?limit=1000"),
        Some(&ada),
        None,
    );
    assert_eq!(
        pending.as_array().unwrap().len(),
        CHANGES,
        "approvals do not change the latest decision"
    );
    eprintln!(
        "kill -9 during the burst: {} of {CHANGES} approvals acknowledged, all {} present after restart",
        acknowledged.len(),
        acknowledged.len()
    );
}

#[test]
fn no_acknowledged_approval_is_lost_to_kill_9_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    kill_during_burst(&format!(
        "sqlite://{}",
        dir.path().join("ledger.db").display()
    ));
}

#[test]
fn no_acknowledged_approval_is_lost_to_kill_9_on_postgres() {
    on_postgres(
        "no_acknowledged_approval_is_lost_to_kill_9_on_postgres",
        kill_during_burst,
    );
}

/// Two servers on one database: a decision recorded through one is approved through
/// the other, and the same approval sent to both at once is stored once.
fn two_replicas(db: &str) {
    let (r, _, decision) = signed_agent_change();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, SERVER_CONFIG).unwrap();
    let ci = token(&r, &config, db, "ci-main", "ci");
    let ada = token(&r, &config, db, "ada", "person");
    let a = start(&r, &config, db);
    let b = start(&r, &config, db);
    let (ua, ub) = (a.url().to_string(), b.url().to_string());

    let body = json!({"repo": "acme/api", "change_ref": "pr/7", "decision": decision});
    assert_eq!(
        try_post(&format!("{ua}/api/v1/decisions"), &ci, &body),
        Some(200)
    );
    let approval = json!({"repo": "acme/api", "change_ref": "pr/7", "head_sha": r.head(), "state": "approved"});
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let url = if i % 2 == 0 { ua.clone() } else { ub.clone() };
            let (ada, approval) = (ada.clone(), approval.clone());
            std::thread::spawn(move || {
                try_post(&format!("{url}/api/v1/approvals"), &ada, &approval)
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Some(200));
    }
    for url in [&ua, &ub] {
        let (_, view) = http(
            "GET",
            &format!("{url}/api/v1/change?repo=acme/api&change=pr/7"),
            Some(&ada),
            None,
        );
        assert_eq!(view["state"]["approved"], true, "{view}");
        assert_eq!(
            view["state"]["approvals"].as_array().unwrap().len(),
            1,
            "{view}"
        );
    }
    // A token made while both run works on both; revoked, on neither.
    let bob = token(&r, &config, db, "bob", "person");
    for url in [&ua, &ub] {
        assert_eq!(
            http("GET", &format!("{url}/api/v1/pending"), Some(&bob), None).0,
            200
        );
    }
    let id = bob.split('_').nth(1).unwrap();
    let run = lockgate(
        &r,
        &[
            "serve",
            "token",
            "revoke",
            id,
            "--config",
            config.to_str().unwrap(),
            "--database-url",
            db,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for url in [&ua, &ub] {
        assert_eq!(
            http("GET", &format!("{url}/api/v1/pending"), Some(&bob), None).0,
            401
        );
    }
}

#[test]
fn two_replicas_on_one_sqlite_file_behave_as_one() {
    let dir = tempfile::tempdir().unwrap();
    two_replicas(&format!(
        "sqlite://{}",
        dir.path().join("ledger.db").display()
    ));
}

#[test]
fn two_replicas_on_one_postgres_behave_as_one() {
    on_postgres("two_replicas_on_one_postgres_behave_as_one", two_replicas);
}

/// Waits until every approval at the change's head has a log index; returns them.
fn wait_logged(url: &str, token: &str, change: &str) -> Vec<Value> {
    for _ in 0..100 {
        let (_, view) = http(
            "GET",
            &format!("{url}/api/v1/change?repo=acme/api&change={change}"),
            Some(token),
            None,
        );
        let approvals = view["state"]["approvals"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !approvals.is_empty() && approvals.iter().all(|a| a["log_index"].is_u64()) {
            return approvals;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("approvals were not logged within 10 s");
}

/// Every approval (and every change of its state) becomes a log entry; approvals left
/// unlogged by a crash are published when the server starts again.
fn approvals_are_logged(db: &str) {
    let (r, code, decision) = signed_agent_change();
    assert_eq!(code, 3);
    let config = r.path().join(".git/server.toml");
    std::fs::write(&config, SERVER_CONFIG).unwrap();
    let ci = token(&r, &config, db, "ci", "ci");
    let ada = token(&r, &config, db, "ada", "person");
    let server = start(&r, &config, db);
    let url = server.url().to_string();
    let (s, _) = http(
        "POST",
        &format!("{url}/api/v1/decisions"),
        Some(&ci),
        Some(json!({"repo": "acme/api", "change_ref": "pr/1", "decision": decision})),
    );
    assert_eq!(s, 200);
    let head = decision["head"].as_str().unwrap();
    let approve = |state: &str, comment: &str| {
        let (s, v) = http(
            "POST",
            &format!("{url}/api/v1/approvals"),
            Some(&ada),
            Some(
                json!({"repo": "acme/api", "change_ref": "pr/1", "head_sha": head, "state": state, "comment": comment}),
            ),
        );
        assert_eq!(s, 200, "{v}");
    };
    approve("approved", "lgtm");
    let first = wait_logged(&url, &ci, "pr/1")[0]["log_index"]
        .as_u64()
        .unwrap();
    approve("changes_requested", "wait: the error path");
    let second = wait_logged(&url, &ci, "pr/1")[0]["log_index"]
        .as_u64()
        .unwrap();
    assert_eq!((first, second), (0, 1), "a change of state is a new entry");
    drop(server);

    // A crash between commit and publish: the approval is in the ledger, not the log.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = lockgate_store::Store::open(db).await.unwrap();
        store
            .record_approval(&lockgate_store::NewApproval {
                repo: "acme/api".into(),
                change_ref: "pr/1".into(),
                head_sha: head.into(),
                approver: "eve".into(),
                state: lockgate_store::ApprovalState::Approved,
                source: "api".into(),
                comment: String::new(),
            })
            .await
            .unwrap();
        store.close().await;
    });
    let server = start(&r, &config, db);
    let url = server.url().to_string();
    let logged = wait_logged(&url, &ci, "pr/1");
    assert_eq!(logged.len(), 2);
    drop(server);

    // The log itself: audited whole, and the entries say who said what about which head.
    let log = r.path().join(".git/lockgate-log");
    let log = log.to_str().unwrap();
    let run = lockgate(&r, &["log", "verify", log]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let entry = |index: u64| -> Value {
        let run = lockgate(&r, &["log", "get", log, "--index", &index.to_string()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        serde_json::from_str(&run.stdout).unwrap()
    };
    let e = entry(1);
    assert_eq!(e["_type"], "https://lockgate.dev/approval/v1");
    assert_eq!(
        (
            &e["approver"],
            &e["state"],
            &e["head_sha"],
            &e["repo"],
            &e["change_ref"]
        ),
        (
            &json!("ada"),
            &json!("changes_requested"),
            &json!(head),
            &json!("acme/api"),
            &json!("pr/1")
        )
    );
    assert_eq!(
        e["comment_sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            b"wait: the error path"
        )),
        "the comment by digest only"
    );
    assert_eq!(entry(0)["state"], "approved");
    assert_eq!(entry(2)["approver"], "eve");
    let run = lockgate(&r, &["log", "get", log, "--index", "3"]);
    assert_ne!(run.code, 0, "three entries, no more");
}

#[test]
fn approvals_are_logged_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    approvals_are_logged(&format!(
        "sqlite://{}",
        dir.path().join("ledger.db").display()
    ));
}

#[test]
fn approvals_are_logged_on_postgres() {
    on_postgres("approvals_are_logged_on_postgres", approvals_are_logged);
}
