//! Time-boxed escalation end to end: a change whose rules say `escalate_after` waits
//! past it without approval; the server (restarted in between: the state is in the
//! ledger) places a hold on it and notifies a local fake on-call webhook with a signed
//! notice, retrying a failed one, never repeating a delivered one; an approved change
//! is left alone; a person releases the hold. On SQLite and on PostgreSQL.

mod common;

use common::hmac_sha256;

use common::fake_http::FakeHttp;
use common::server::{SERVER_CONFIG, agent_change_under, http, on_postgres, start, token};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn escalation(db: &str) {
    let (r, code, decision) = agent_change_under("[review]\nescalate_after = \"2s\"\n", None);
    assert_eq!(code, 3, "{decision}");
    for req in decision["required_approvals"].as_array().unwrap() {
        assert_eq!(
            req["escalate_after"], "2s",
            "the configured wait is on every rule"
        );
    }
    // On-call fails the first notice, then takes them.
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let oncall = FakeHttp::new(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            (503, "text/plain", "paging system down".into())
        } else {
            (200, "text/plain", "ok".into())
        }
    });
    let secret = "0123456789abcdef0123456789abcdef";
    std::fs::write(r.path().join(".git/oncall.secret"), secret).unwrap();
    let config = r.path().join(".git/server.toml");
    std::fs::write(
        &config,
        format!(
            "public_url = \"https://lockgate.example\"\n{SERVER_CONFIG}\n[escalation]\nwebhook = \"{}/page\"\nsecret_file = \"{}\"\ninterval = \"200ms\"\n",
            oncall.url,
            r.path().join(".git/oncall.secret").display()
        ),
    )
    .unwrap();
    let ci = token(&r, &config, db, "ci", "ci");
    let ada = token(&r, &config, db, "ada", "person");
    let bob = token(&r, &config, db, "bob", "person");

    // Two changes wait; one is approved at once. Then the server goes away.
    let server = start(&r, &config, db);
    let url = server.url().to_string();
    for change in ["pr/1", "pr/2"] {
        let (s, v) = http(
            "POST",
            &format!("{url}/api/v1/decisions"),
            Some(&ci),
            Some(json!({"repo": "acme/api", "change_ref": change, "decision": decision})),
        );
        assert_eq!(s, 200, "{v}");
    }
    let (s, v) = http(
        "POST",
        &format!("{url}/api/v1/approvals"),
        Some(&ada),
        Some(
            json!({"repo": "acme/api", "change_ref": "pr/2", "head_sha": decision["head"], "state": "approved"}),
        ),
    );
    assert_eq!((s, &v["approved"]), (200, &json!(true)), "{v}");
    drop(server);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        oncall.received().is_empty(),
        "nobody was told while the server was down"
    );

    // Back up: the overdue change is escalated (the notice retried after a failure).
    let server = start(&r, &config, db);
    let url = server.url().to_string();
    let pages = oncall.wait_for(2, 15);
    let page = &pages[1];
    assert_eq!(
        (page.method.as_str(), page.path.as_str()),
        ("POST", "/page")
    );
    assert_eq!(page.body, pages[0].body, "the retry sends the same notice");
    let notice = page.json();
    assert_eq!(notice["type"], "lockgate.escalation");
    assert_eq!(
        (&notice["repo"], &notice["change_ref"], &notice["head_sha"]),
        (&json!("acme/api"), &json!("pr/1"), &decision["head"])
    );
    let text = notice["text"].as_str().unwrap();
    assert!(
        text.contains("no approval from @org/backend within 2s")
            && text.contains("https://lockgate.example/ui/change?repo=acme%2Fapi&change=pr%2F1"),
        "{text}"
    );
    // The signature: t=<seconds>,v1=HMAC(secret, "t.body").
    let signature = page.header("x-lockgate-signature").unwrap();
    let (t, v1) = signature
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .unwrap();
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&page.body);
    assert_eq!(v1, hex::encode(hmac_sha256(secret.as_bytes(), &signed)));

    // The hold is on pr/1 only, visible in the API.
    let holds_url = format!("{url}/api/v1/holds");
    let (_, holds) = http("GET", &holds_url, Some(&ci), None);
    let holds = holds.as_array().unwrap().clone();
    assert_eq!(holds.len(), 1, "{holds:?}");
    assert_eq!(
        (
            &holds[0]["scope"],
            &holds[0]["target"],
            &holds[0]["placed_by"]
        ),
        (
            &json!("change"),
            &json!("acme/api#pr/1"),
            &json!("escalation")
        )
    );

    // Scans go on, and a restart: no second notice, no second hold.
    std::thread::sleep(Duration::from_millis(1000));
    drop(server);
    let server = start(&r, &config, db);
    let url = server.url().to_string();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(oncall.received().len(), 2);
    let (_, holds) = http("GET", &format!("{url}/api/v1/holds"), Some(&ci), None);
    assert_eq!(holds.as_array().unwrap().len(), 1);

    // A person releases it; it stays released.
    let (s, released) = http(
        "POST",
        &format!("{url}/api/v1/holds/release"),
        Some(&bob),
        Some(json!({"id": holds[0]["id"]})),
    );
    assert_eq!(s, 200, "{released}");
    std::thread::sleep(Duration::from_millis(800));
    let (_, holds) = http("GET", &format!("{url}/api/v1/holds"), Some(&ci), None);
    assert_eq!(holds, json!([]));
    assert_eq!(oncall.received().len(), 2);
}

#[test]
fn escalation_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    escalation(&format!(
        "sqlite://{}",
        dir.path().join("ledger.db").display()
    ));
}

#[test]
fn escalation_on_postgres() {
    on_postgres("escalation_on_postgres", escalation);
}

#[test]
fn bad_escalation_settings_are_refused() {
    let r = lockgate_testkit::TestRepo::new();
    r.write(".lockgate.toml", "[review]\nescalate_after = \"soon\"\n");
    r.write("README.md", "x\n");
    r.commit("init");
    r.branch("change");
    r.write("README.md", "y\n");
    r.commit("docs");
    let run = common::lockgate(&r, &["check", "--base", "main"]);
    assert_eq!(
        run.code, 1,
        "a bad wait in .lockgate.toml is a config error"
    );
    assert!(
        run.stderr.contains("escalate_after \"soon\""),
        "{}",
        run.stderr
    );
    let config = r.path().join(".git/bad.toml");
    for (toml, says) in [
        (
            "[escalation]\ninterval = \"often\"\n",
            "escalation.interval",
        ),
        ("[escalation]\nwebhook = \"ftp://x\"\n", "http(s) URL"),
        (
            "[escalation]\nwebhook_env = \"LOCKGATE_TEST_UNSET_VARIABLE\"\n",
            "is not set",
        ),
    ] {
        std::fs::write(&config, toml).unwrap();
        let run = common::lockgate(
            &r,
            &[
                "serve",
                "--config",
                config.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ],
        );
        assert_eq!(run.code, 1, "{toml}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{toml}: {}", run.stderr);
    }
}
