//! GitHub integration against a local fake of its REST API, with webhook deliveries
//! built from GitHub's documented payloads and signed (`X-Hub-Signature-256`): the
//! status, labels and one updated comment on the pull request; a reviewer's approval on
//! GitHub counting when they own the change; replayed deliveries ignored; forged ones
//! refused; pushes and merges recorded.

mod common;

use common::hmac_sha256;

use common::fake_http::FakeHttp;
use common::server::{SERVER_CONFIG, http, signed_agent_change, start, token};
use serde_json::{Value, json};

const SECRET: &str = "It's a Secret to Everybody";

#[test]
fn hmac_matches_githubs_documented_example() {
    // docs.github.com, "Validating webhook deliveries": secret "It's a Secret to
    // Everybody", payload "Hello, World!".
    assert_eq!(
        hex::encode(hmac_sha256(SECRET.as_bytes(), b"Hello, World!")),
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

/// Delivers a webhook event; the status and the JSON answer.
fn deliver(url: &str, event: &str, delivery: &str, payload: &Value, secret: &str) -> (u16, Value) {
    let body = serde_json::to_vec(payload).unwrap();
    let signature = format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &body))
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .post(&format!("{url}/api/v1/github/webhook"))
        .header("Content-Type", "application/json")
        .header("User-Agent", "GitHub-Hookshot/044aadd")
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", delivery)
        .header("X-GitHub-Hook-ID", "292430182")
        .header("X-Hub-Signature-256", &signature)
        .send(&body[..])
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn repository() -> Value {
    json!({"id": 1296269, "name": "api", "full_name": "acme/api", "private": true,
           "owner": {"login": "acme", "id": 1, "type": "Organization"}, "default_branch": "main"})
}

/// A `pull_request_review` `submitted` payload.
fn review(login: &str, state: &str, commit: &str, head: &str) -> Value {
    json!({
        "action": "submitted",
        "review": {
            "id": 80, "node_id": "MDE3OlB1bGxSZXF1ZXN0UmV2aWV3ODA=",
            "user": {"login": login, "id": 583231, "type": "User"},
            "body": "Looks good to me.", "commit_id": commit,
            "submitted_at": "2026-11-28T12:00:00Z", "state": state,
            "html_url": "https://github.com/acme/api/pull/1#pullrequestreview-80",
            "author_association": "MEMBER"
        },
        "pull_request": {"number": 1, "state": "open", "head": {"ref": "change", "sha": head}, "base": {"ref": "main"}},
        "repository": repository(),
        "sender": {"login": login, "id": 583231, "type": "User"}
    })
}

#[test]
fn github_status_labels_comment_and_reviews() {
    let (r, code, decision) = signed_agent_change();
    assert_eq!(code, 3);
    let head = decision["head"].as_str().unwrap().to_string();
    // Holds the comments made, as GitHub would.
    let comments = std::sync::Mutex::new(Vec::<Value>::new());
    let github = FakeHttp::new(move |req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", p) if p.starts_with("/repos/acme/api/issues/1/comments") => (
            200,
            "application/json",
            Value::Array(comments.lock().unwrap().clone()).to_string(),
        ),
        ("POST", "/repos/acme/api/issues/1/comments") => {
            let made = json!({"id": 101, "body": req.json()["body"]});
            comments.lock().unwrap().push(made.clone());
            (201, "application/json", made.to_string())
        }
        ("PATCH", "/repos/acme/api/issues/comments/101") => {
            (200, "application/json", json!({"id": 101}).to_string())
        }
        ("POST", p) if p.starts_with("/repos/acme/api/statuses/") => (
            201,
            "application/json",
            json!({"id": 1, "context": "lockgate"}).to_string(),
        ),
        ("POST", "/repos/acme/api/issues/1/labels") => (
            200,
            "application/json",
            json!([{"name": "lockgate"}]).to_string(),
        ),
        _ => (
            404,
            "application/json",
            json!({"message": "Not Found"}).to_string(),
        ),
    });
    std::fs::write(r.path().join(".git/gh.secret"), SECRET).unwrap();
    std::fs::write(
        r.path().join(".git/gh.token"),
        "ghs_test_installation_token\n",
    )
    .unwrap();
    let config = r.path().join(".git/server.toml");
    std::fs::write(
        &config,
        format!(
            "public_url = \"https://lockgate.example\"\n{SERVER_CONFIG}\n[github]\napi_url = \"{}\"\ntoken_file = \"{}\"\nwebhook_secret_file = \"{}\"\n",
            github.url,
            r.path().join(".git/gh.token").display(),
            r.path().join(".git/gh.secret").display()
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", r.path().join(".git/ledger.db").display());
    let ci = token(&r, &config, &db, "ci", "ci");
    let server = start(&r, &config, &db);
    let url = server.url().to_string();

    // The decision is recorded: pending status, labels, the comment made.
    let (s, v) = http(
        "POST",
        &format!("{url}/api/v1/decisions"),
        Some(&ci),
        Some(json!({"repo": "acme/api", "change_ref": "pr/1", "decision": decision})),
    );
    assert_eq!(s, 200, "{v}");
    let calls = github.wait_for(4, 10);
    assert!(
        calls
            .iter()
            .all(|c| c.header("authorization") == Some("Bearer ghs_test_installation_token")),
        "every call carries the token"
    );
    assert_eq!(calls[0].path, format!("/repos/acme/api/statuses/{head}"));
    let status = calls[0].json();
    assert_eq!(
        (&status["state"], &status["context"]),
        (&json!("pending"), &json!("lockgate"))
    );
    assert!(
        status["description"]
            .as_str()
            .unwrap()
            .contains("@org/backend")
    );
    assert!(
        status["target_url"]
            .as_str()
            .unwrap()
            .starts_with("https://lockgate.example/ui/change")
    );
    assert_eq!(
        calls[1].json()["labels"],
        json!(["lockgate:needs_approval", "agent:claude-code"])
    );
    assert_eq!(
        calls[2].method, "GET",
        "looks for an existing comment first"
    );
    let comment = calls[3].json()["body"].as_str().unwrap().to_string();
    assert!(
        comment.contains("<!-- lockgate:summary -->") && comment.contains("waiting for approval"),
        "{comment}"
    );

    // Forged: refused, and nothing else happens.
    let (s, _) = deliver(
        &url,
        "pull_request_review",
        "d-0",
        &review("ada", "approved", &head, &head),
        "not the secret",
    );
    assert_eq!(s, 401);
    // A reviewer Lockgate does not know: acknowledged, not counted.
    let (s, v) = deliver(
        &url,
        "pull_request_review",
        "d-1",
        &review("mallory", "approved", &head, &head),
        SECRET,
    );
    assert_eq!(s, 200);
    assert!(
        v["ignored"]
            .as_str()
            .unwrap()
            .contains("mallory is not mapped"),
        "{v}"
    );
    // An approval of an older commit does not count.
    let base = decision["base"].as_str().unwrap();
    let (s, v) = deliver(
        &url,
        "pull_request_review",
        "d-2",
        &review("ada", "approved", base, &head),
        SECRET,
    );
    assert_eq!(s, 200);
    assert!(v["ignored"].as_str().unwrap().contains("exact head"), "{v}");
    // Bob reviews on GitHub but does not own src/.
    let (_, v) = deliver(
        &url,
        "pull_request_review",
        "d-3",
        &review("bob", "approved", &head, &head),
        SECRET,
    );
    assert!(
        v["ignored"]
            .as_str()
            .unwrap()
            .contains("not among the owners"),
        "{v}"
    );
    assert_eq!(github.received().len(), 4, "nothing changed on GitHub");

    // Ada (an owner) approves on GitHub: it counts; status, labels, the same comment.
    let (s, v) = deliver(
        &url,
        "pull_request_review",
        "d-4",
        &review("Ada", "APPROVED", &head, &head),
        SECRET,
    );
    assert_eq!((s, &v["approved"]), (200, &json!(true)), "{v}");
    let calls = github.wait_for(7, 10);
    assert_eq!(calls[4].json()["state"], "success");
    assert_eq!(
        (calls[6].method.as_str(), calls[6].path.as_str()),
        ("PATCH", "/repos/acme/api/issues/comments/101")
    );
    let updated = calls[6].json()["body"].as_str().unwrap().to_string();
    assert!(
        updated.contains("— approved") && updated.contains("ada approved (via github)"),
        "{updated}"
    );
    let (_, change) = http(
        "GET",
        &format!("{url}/api/v1/change?repo=acme/api&change=pr/1"),
        Some(&ci),
        None,
    );
    assert_eq!(change["state"]["approvals"][0]["source"], "github");
    assert_eq!(
        change["state"]["approvals"][0]["comment"],
        "Looks good to me."
    );

    // The same delivery again is a replay.
    let (s, v) = deliver(
        &url,
        "pull_request_review",
        "d-4",
        &review("Ada", "APPROVED", &head, &head),
        SECRET,
    );
    assert_eq!((s, v), (200, json!({"duplicate": true})));

    // A push: the new head waits for the check.
    let after = "1111111111111111111111111111111111111111";
    let (s, _) = deliver(
        &url,
        "push",
        "d-5",
        &json!({
            "ref": "refs/heads/change", "before": head, "after": after, "created": false, "deleted": false,
            "forced": false, "commits": [], "repository": repository(), "sender": {"login": "claude[bot]"}
        }),
        SECRET,
    );
    assert_eq!(s, 200);
    let calls = github.wait_for(8, 10);
    assert_eq!(calls[7].path, format!("/repos/acme/api/statuses/{after}"));
    assert_eq!(calls[7].json()["state"], "pending");

    // The merge goes into the agent's track record.
    let merge = "2222222222222222222222222222222222222222";
    let (s, v) = deliver(
        &url,
        "pull_request",
        "d-6",
        &json!({
            "action": "closed", "number": 1,
            "pull_request": {"number": 1, "state": "closed", "merged": true, "merge_commit_sha": merge,
                              "head": {"ref": "change", "sha": head}, "base": {"ref": "main"}},
            "repository": repository(), "sender": {"login": "ada"}
        }),
        SECRET,
    );
    assert_eq!((s, &v["outcome"]), (200, &json!("merged")), "{v}");
    let (s, v) = deliver(
        &url,
        "ping",
        "d-7",
        &json!({"zen": "Keep it logically awesome.", "hook_id": 292430182}),
        SECRET,
    );
    assert_eq!((s, v), (200, json!({"pong": true})));
    drop(server);

    let record = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = lockgate_store::Store::open(&db).await.unwrap();
        let record = store.track_record("claude-code").await.unwrap();
        store.close().await;
        record
    });
    assert_eq!((record.merged, record.rejected), (1, 0));
}
