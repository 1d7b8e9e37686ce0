//! Chat-ops approvals against a local fake of Slack: the summary with buttons posted to
//! the incoming webhook, and interaction callbacks built as Slack documents them
//! (`payload=` form body, `X-Slack-Signature` v0 HMAC, `X-Slack-Request-Timestamp`)
//! — signed right and wrong, stale, from mapped and unmapped users, owners and not.

mod common;

use common::hmac_sha256;

use common::fake_http::FakeHttp;
use common::server::{SERVER_CONFIG, http, signed_agent_change, start, token, urlencode};
use serde_json::{Value, json};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A `block_actions` payload as Slack sends it when `user` presses `action_id`.
fn payload(user: &str, action_id: &str, value: &str, response_url: &str) -> String {
    let p = json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": "T0LOCK"},
        "api_app_id": "A0LOCK",
        "token": "verification-token-not-used",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0LOCK", "is_ephemeral": false},
        "trigger_id": "1234.5678.abcd",
        "team": {"id": "T0LOCK", "domain": "acme"},
        "channel": {"id": "C0LOCK", "name": "reviews"},
        "response_url": response_url,
        "actions": [{
            "action_id": action_id, "block_id": "lockgate", "type": "button",
            "text": {"type": "plain_text", "text": "Approve", "emoji": true},
            "value": value, "action_ts": "1700000001.000200"
        }]
    });
    format!("payload={}", urlencode(&p.to_string()))
}

/// Sends a callback signed with `secret` at `timestamp`; the status.
fn callback(url: &str, body: &str, secret: &str, timestamp: i64) -> u16 {
    send(url, body, body, secret, timestamp)
}

/// Sends `body` with the signature of `signed`.
fn send(url: &str, body: &str, signed: &str, secret: &str, timestamp: i64) -> u16 {
    let mut base = format!("v0:{timestamp}:").into_bytes();
    base.extend_from_slice(signed.as_bytes());
    let signature = format!("v0={}", hex::encode(hmac_sha256(secret.as_bytes(), &base)));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .post(&format!("{url}/api/v1/slack/interactions"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Slack-Request-Timestamp", &timestamp.to_string())
        .header("X-Slack-Signature", &signature)
        .send(body.as_bytes())
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn slack_summary_and_signed_button_presses() {
    let (r, code, decision) = signed_agent_change();
    assert_eq!(code, 3);
    let slack = FakeHttp::ok();
    std::fs::write(r.path().join(".git/slack.secret"), SECRET).unwrap();
    let config = r.path().join(".git/server.toml");
    std::fs::write(
        &config,
        format!(
            "{SERVER_CONFIG}\n[slack]\nwebhook = \"{0}/services/T0LOCK/B0LOCK/xyz\"\nsigning_secret_file = \"{1}\"\nresponse_url_prefixes = [\"{0}/actions/\"]\n",
            slack.url,
            r.path().join(".git/slack.secret").display()
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", r.path().join(".git/ledger.db").display());
    let ci = token(&r, &config, &db, "ci", "ci");
    let server = start(&r, &config, &db);
    let url = server.url().to_string();

    // A change newly needs approval: one summary, with the buttons.
    for _ in 0..2 {
        let (s, v) = http(
            "POST",
            &format!("{url}/api/v1/decisions"),
            Some(&ci),
            Some(json!({"repo": "acme/api", "change_ref": "pr/1", "decision": decision})),
        );
        assert_eq!(s, 200, "{v}");
    }
    let posted = slack.wait_for(1, 10);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        slack.received().len(),
        1,
        "the same decision twice is one message"
    );
    assert_eq!(posted[0].path, "/services/T0LOCK/B0LOCK/xyz");
    let message = posted[0].json();
    let section = message["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        section.contains("acme/api pr/1")
            && section.contains("claude-code")
            && section.contains("@org/backend"),
        "{section}"
    );
    let buttons = message["blocks"][1]["elements"].as_array().unwrap();
    let ids: Vec<&str> = buttons
        .iter()
        .map(|b| b["action_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["lockgate_approve", "lockgate_request_changes"]);
    let value = buttons[0]["value"].as_str().unwrap().to_string();
    let carried: Value = serde_json::from_str(&value).unwrap();
    assert_eq!(
        carried["head_sha"], decision["head"],
        "bound to the exact head"
    );

    let respond = format!("{}/actions/T0LOCK/1/abc", slack.url);
    let approvals = || {
        let (_, v) = http(
            "GET",
            &format!("{url}/api/v1/change?repo=acme/api&change=pr/1"),
            Some(&ci),
            None,
        );
        v["state"]["approvals"].as_array().unwrap().clone()
    };

    // Forged, stale, or unsigned: refused before anything is read.
    let ada = payload("U0ADA", "lockgate_approve", &value, &respond);
    assert_eq!(
        callback(&url, &ada, "wrong-secret-wrong-secret", now()),
        401
    );
    assert_eq!(
        callback(&url, &ada, SECRET, now() - 600),
        401,
        "outside the window"
    );
    let bob = payload("U0BOB", "lockgate_approve", &value, &respond);
    assert_eq!(
        send(&url, &bob, &ada, SECRET, now()),
        401,
        "changed after signing"
    );
    let unsigned = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .post(&format!("{url}/api/v1/slack/interactions"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(ada.as_bytes())
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    assert!(approvals().is_empty(), "nothing recorded");

    // Bob is a person but not an owner: told why, nothing recorded.
    assert_eq!(callback(&url, &bob, SECRET, now()), 200);
    let answers = slack.wait_for(2, 10);
    let to_bob = answers[1].json();
    assert_eq!(answers[1].path, "/actions/T0LOCK/1/abc");
    assert!(
        to_bob["text"]
            .as_str()
            .unwrap()
            .contains("bob is not among the owners"),
        "{to_bob}"
    );
    assert!(approvals().is_empty(), "nothing recorded");

    // Someone Lockgate does not know.
    let stranger = payload("U0NOBODY", "lockgate_approve", &value, &respond);
    assert_eq!(callback(&url, &stranger, SECRET, now()), 200);
    let answers = slack.wait_for(3, 10);
    assert!(
        answers[2].json()["text"]
            .as_str()
            .unwrap()
            .contains("U0NOBODY is not mapped"),
        "{:?}",
        answers[2].json()
    );

    // An answer address on another host is not used.
    let elsewhere = payload(
        "U0ADA",
        "lockgate_request_changes",
        &value,
        &format!("{}/evil/", slack.url),
    );
    assert_eq!(callback(&url, &elsewhere, SECRET, now()), 200);
    let recorded = approvals();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (
            &recorded[0]["approver"],
            &recorded[0]["state"],
            &recorded[0]["source"]
        ),
        (&json!("ada"), &json!("changes_requested"), &json!("slack"))
    );

    // Ada approves from Slack: recorded, and the gate passes.
    assert_eq!(callback(&url, &ada, SECRET, now()), 200);
    let answers = slack.wait_for(4, 10);
    let text = answers[3].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("ada approved acme/api pr/1")
            && text.contains("all required approvals are in"),
        "{text}"
    );
    assert!(
        slack
            .received()
            .iter()
            .all(|r| !r.path.starts_with("/evil")),
        "never posted to an address outside the allowed prefixes"
    );
    let recorded = approvals();
    assert_eq!(recorded[0]["state"], "approved");
    let (_, v) = http(
        "GET",
        &format!("{url}/api/v1/change?repo=acme/api&change=pr/1"),
        Some(&ci),
        None,
    );
    assert_eq!(v["state"]["approved"], true);
}
