//! The LLM gateway end to end: an agent with a Lockgate credential calls OpenAI Chat
//! Completions and Anthropic Messages (streaming and not) through `lockgate serve`,
//! which calls a local fake upstream with the provider key, passes the answers through
//! unchanged and charges the budget what the answers' usage costs; refusals (no or
//! forged credential, model out of scope, revoked, budget exhausted) come in each API's
//! error shape. On SQLite and on PostgreSQL.

mod common;

use common::fake_http::{FakeHttp, Received};
use common::lockgate;
use common::server::{SERVER_CONFIG, http, on_postgres, start, start_env, token};
use lockgate_testkit::TestRepo;
use serde_json::{Value, json};

const CHAT_ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"cheap-1","choices":[{"index":0,"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":50,"total_tokens":150}}"#;

const MESSAGES_STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-test\",\"usage\":{\"input_tokens\":40,\"output_tokens\":1}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":30}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

/// The fake provider: OpenAI and Anthropic at once; `fail-1` answers 500.
fn upstream() -> FakeHttp {
    FakeHttp::new(|r: &Received| {
        let body = r.json();
        match (r.path.as_str(), body["model"].as_str()) {
            (_, Some("fail-1")) => (
                500,
                "application/json",
                r#"{"error":{"message":"overloaded"}}"#.into(),
            ),
            (_, Some("slow-1")) => {
                std::thread::sleep(std::time::Duration::from_secs(3));
                (200, "application/json", CHAT_ANSWER.into())
            }
            (_, Some("lag-1")) => {
                std::thread::sleep(std::time::Duration::from_millis(400));
                (200, "application/json", CHAT_ANSWER.into())
            }
            (_, Some("big-1")) => (
                200,
                "application/json",
                CHAT_ANSWER.replace(
                    r#""content":"4""#,
                    &format!(r#""content":"{}""#, "4".repeat(2000)),
                ),
            ),
            ("/v1/chat/completions", _) => (200, "application/json", CHAT_ANSWER.into()),
            ("/v1/messages", _) => (200, "text/event-stream", MESSAGES_STREAM.into()),
            _ => (404, "text/plain", "no such path".into()),
        }
    })
}

/// `[gateway]` config for one fake upstream serving `cheap-*`, with `cheap-1` priced at
/// 1 µ$ per input and 2 µ$ per output token.
fn cheap_upstream(url: &str) -> String {
    format!(
        r#"[[gateway.upstream]]
name = "fake"
api = "openai"
base_url = "{url}"
models = ["cheap-*"]

[[gateway.price]]
model = "cheap-1"
input_per_mtok = 1000000
output_per_mtok = 2000000
max_output_tokens = 1000
"#
    )
}

/// POSTs raw JSON with extra headers; status, content type and body text.
fn call(url: &str, headers: &[(&str, &str)], body: &Value) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.post(url).header("Content-Type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut response = request
        .send(serde_json::to_vec(body).unwrap().as_slice())
        .unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (
        response.status().as_u16(),
        content_type,
        response.body_mut().read_to_string().unwrap(),
    )
}

/// POSTs a raw body; status, the `x-lockgate-cache` header, content type and body.
fn call_raw(
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Option<String>, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.post(url).header("Content-Type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut response = request.send(body.as_bytes()).unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (cache, content_type) = (header("x-lockgate-cache"), header("content-type"));
    (
        response.status().as_u16(),
        cache,
        content_type.unwrap_or_default(),
        response.body_mut().read_to_string().unwrap(),
    )
}

/// Revokes a credential with the CLI, straight into the ledger.
fn revoke(r: &TestRepo, credential: &str, db: &str) {
    std::fs::write(r.path().join(".git/cred"), credential).unwrap();
    let run = lockgate(
        r,
        &[
            "token",
            "inspect",
            "--format",
            "json",
            "--credential-file",
            ".git/cred",
        ],
    );
    let scope: Value = serde_json::from_str(&run.stdout).unwrap();
    let id = scope["id"].as_str().unwrap();
    let run = lockgate(
        r,
        &["token", "revoke", id, "--by", "ada", "--database-url", db],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

fn issue(r: &TestRepo, extra: &[&str]) -> String {
    issue_for(r, "claude-code", extra)
}

fn issue_for(r: &TestRepo, agent: &str, extra: &[&str]) -> String {
    issue_in(r, agent, "acme/api", extra)
}

fn issue_in(r: &TestRepo, agent: &str, project: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "token",
        "issue",
        "--key-file",
        ".git/gateway.key",
        "--agent",
        agent,
        "--project",
        project,
        "--ttl",
        "1h",
    ];
    args.extend_from_slice(extra);
    let run = lockgate(r, &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout.trim().to_string()
}

/// The agent's day budget line as the ledger holds it: (spent, reserved).
fn agent_day(db: &str) -> (i64, i64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = lockgate_store::Store::open(db).await.unwrap();
        let day = chrono_day();
        let line = store
            .budget("agent:claude-code", &format!("day:{day}"))
            .await
            .unwrap()
            .expect("the agent's day line exists");
        store.close().await;
        (line.spent_micros, line.reserved_micros)
    })
}

/// The agent's recent model calls, newest first.
fn recent_calls(db: &str) -> Vec<lockgate_store::CallRecord> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = lockgate_store::Store::open(db).await.unwrap();
        let calls = store.recent_calls("claude-code", 10).await.unwrap();
        store.close().await;
        calls
    })
}

/// Today's UTC date, from `date -u` (the server computes it on its own).
fn chrono_day() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Waits for the agent's day line to settle (streams settle after their last byte;
/// abandoned calls when the sweep finds them).
fn settled(db: &str, spent: i64) {
    for _ in 0..200 {
        if agent_day(db) == (spent, 0) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(agent_day(db), (spent, 0));
}

fn gateway(db: &str) {
    let r = TestRepo::new();
    let provider = upstream();
    let flaky = FakeHttp::new(|_| (503, "application/json", r#"{"error":"busy"}"#.into()));
    std::fs::write(r.path().join(".git/gateway.key"), [42u8; 32]).unwrap();
    std::fs::write(r.path().join(".git/other.key"), [43u8; 32]).unwrap();
    std::fs::write(r.path().join(".git/openai.key"), "sk-test-openai\n").unwrap();
    let config = r.path().join(".git/server.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[log]
dir = ".git/lockgate-log"

[gateway]
key_file = ".git/gateway.key"
abandon_after = "1s"
block_refresh = "100ms"

[gateway.budget]
agent_daily = "0.001"

# A project of its own, with a budget smaller than any call.
[[gateway.budget.project]]
name = "acme/tiny"
daily = "0.0001"

[[gateway.upstream]]
name = "openai-compatible"
api = "openai"
base_url = "{url}"
key_file = ".git/openai.key"
models = ["cheap-*", "fail-*", "slow-*"]

[[gateway.upstream]]
name = "dead"
api = "openai"
base_url = "http://127.0.0.1:1"
models = ["route-*"]

[[gateway.upstream]]
name = "flaky"
api = "openai"
base_url = "{flaky}"
models = ["route-*"]

[[gateway.upstream]]
name = "good"
api = "openai"
base_url = "{url}"
models = ["route-*"]

[[gateway.upstream]]
name = "anthropic"
api = "anthropic"
base_url = "{url}"
key_env = "TEST_ANTHROPIC_KEY"
models = ["claude-*"]

[[gateway.price]]
model = "cheap-1"
input_per_mtok = 1000000
output_per_mtok = 2000000
max_output_tokens = 1000

[[gateway.price]]
model = "claude-test"
input_per_mtok = 1000000
output_per_mtok = 2000000
max_output_tokens = 1000

[[gateway.route]]
task_class = "docs"
model = "cheap-1"

[[gateway.price]]
model = "route-1"
input_per_mtok = 1000000
output_per_mtok = 2000000
max_output_tokens = 100

[[gateway.price]]
model = "slow-1"
input_per_mtok = 1000000
output_per_mtok = 2000000
max_output_tokens = 100

[[gateway.price]]
model = "fail-1"
input_per_mtok = 1000000
output_per_mtok = 2000000
max_output_tokens = 100
"#,
            url = provider.url,
            flaky = flaky.url
        ),
    )
    .unwrap();
    let server = start_env(&r, &config, db, &[("TEST_ANTHROPIC_KEY", "sk-ant-test")]);
    let base = server.url().to_string();
    let credential = issue(
        &r,
        &[
            "--model", "cheap-*", "--model", "claude-*", "--model", "fail-1", "--model", "slow-1",
            "--model", "route-1",
        ],
    );
    let bearer = format!("Bearer {credential}");

    // Chat Completions, not streaming: the answer passes through unchanged; the
    // upstream sees the provider key, never the agent's credential; the body as sent.
    let request = json!({"model": "cheap-1", "max_tokens": 100, "messages": [{"role": "user", "content": "2+2?"}]});
    let (status, ct, body) = call(
        &format!("{base}/v1/chat/completions"),
        &[("Authorization", &bearer)],
        &request,
    );
    assert_eq!((status, ct.as_str()), (200, "application/json"), "{body}");
    assert_eq!(body, CHAT_ANSWER);
    let seen = provider.received();
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(
        seen[0].header("authorization"),
        Some("Bearer sk-test-openai")
    );
    assert_eq!(seen[0].json(), request);
    // 100 input tokens at 1 µ$ + 50 output at 2 µ$.
    settled(db, 200);

    // Anthropic Messages, streaming, credential as x-api-key: the stream passes through
    // byte for byte; the upstream gets the Anthropic key and version.
    let request = json!({"model": "claude-test", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let (status, ct, body) = call(
        &format!("{base}/v1/messages"),
        &[
            ("x-api-key", &credential),
            ("anthropic-version", "2023-06-01"),
        ],
        &request,
    );
    assert_eq!((status, ct.as_str()), (200, "text/event-stream"), "{body}");
    assert_eq!(body, MESSAGES_STREAM);
    let seen = provider.received();
    assert_eq!(seen[1].header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(seen[1].header("anthropic-version"), Some("2023-06-01"));
    assert!(seen[1].header("authorization").is_none());
    // 40 input + 30 output × 2.
    settled(db, 200 + 100);

    // An upstream failure passes through and costs nothing.
    let (status, _, body) = call(
        &format!("{base}/v1/chat/completions"),
        &[("Authorization", &bearer)],
        &json!({"model": "fail-1", "max_tokens": 10, "messages": []}),
    );
    assert_eq!(status, 500, "{body}");
    settled(db, 300);

    // Fallback: the route's first upstream cannot be reached, the second answers 503
    // (neither runs the call), the third answers; the call records where it went.
    let (status, _, body) = call(
        &format!("{base}/v1/chat/completions"),
        &[("Authorization", &bearer)],
        &json!({"model": "route-1", "max_tokens": 10, "messages": []}),
    );
    assert_eq!((status, body.as_str()), (200, CHAT_ANSWER));
    assert_eq!(flaky.received().len(), 1);
    settled(db, 500);
    let calls = recent_calls(db);
    assert_eq!(calls[0].model, "route-1");
    assert_eq!(calls[0].upstream.as_deref(), Some("good"));
    assert_eq!(calls[0].cost_micros, Some(200));
    assert_eq!(calls[0].requested_model, None);

    // A docs task goes to the docs tier's model whatever the agent asked for; the
    // upstream sees the routed model, the ledger both.
    let (status, _, body) = call(
        &format!("{base}/v1/chat/completions"),
        &[
            ("Authorization", &bearer),
            ("X-Lockgate-Task-Class", "docs"),
        ],
        &json!({"model": "route-1", "max_tokens": 10, "messages": [{"role": "user", "content": "document f"}]}),
    );
    assert_eq!((status, body.as_str()), (200, CHAT_ANSWER));
    let routed = provider.received().last().unwrap().json();
    assert_eq!(routed["model"], "cheap-1");
    assert_eq!(
        routed["messages"][0]["content"], "document f",
        "only the model changes"
    );
    settled(db, 700);
    let calls = recent_calls(db);
    assert_eq!(calls[0].model, "cheap-1");
    assert_eq!(calls[0].requested_model.as_deref(), Some("route-1"));
    assert_eq!(calls[0].upstream.as_deref(), Some("openai-compatible"));

    // The agent hangs up on a slow call: its outcome is unknown, so once it has been
    // open past abandon_after the sweep charges the whole reservation (input bounded
    // by the request's bytes at 1 µ$, 10 output tokens at 2 µ$).
    let slow = json!({"model": "slow-1", "max_tokens": 10, "messages": []});
    let impatient: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_millis(300)))
        .build()
        .into();
    let hung_up = impatient
        .post(&format!("{base}/v1/chat/completions"))
        .header("Authorization", &bearer)
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(&slow).unwrap().as_slice());
    assert!(hung_up.is_err(), "the agent gave up");
    let worst = serde_json::to_vec(&slow).unwrap().len() as i64 + 20;
    settled(db, 700 + worst);

    // Refusals, in each API's shape, before any upstream call.
    let calls_before = provider.received().len();
    let chat = format!("{base}/v1/chat/completions");
    let messages = format!("{base}/v1/messages");
    let small = json!({"model": "cheap-1", "max_tokens": 10, "messages": []});
    let (status, _, body) = call(&chat, &[], &small);
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["type"],
        "invalid_api_key"
    );

    let forged = {
        let run = lockgate(
            &r,
            &[
                "token",
                "issue",
                "--key-file",
                ".git/other.key",
                "--agent",
                "claude-code",
                "--project",
                "acme/api",
            ],
        );
        run.stdout.trim().to_string()
    };
    let (status, _, body) = call(
        &messages,
        &[("x-api-key", &forged)],
        &json!({"model": "claude-test", "max_tokens": 5, "messages": []}),
    );
    assert_eq!(status, 401);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (err["type"].as_str(), err["error"]["type"].as_str()),
        (Some("error"), Some("authentication_error"))
    );

    let (status, _, body) = call(
        &chat,
        &[("Authorization", &bearer)],
        &json!({"model": "gpt-4o", "messages": []}),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("does not allow model"), "{body}");

    // The day's budget is 1,000 µ$ with less than 800 spent: a call that may cost up to
    // 2,000 µ$ (1,000 output tokens × 2) is refused up front, naming the budget.
    let (status, _, body) = call(
        &chat,
        &[("Authorization", &bearer)],
        &json!({"model": "cheap-1", "max_tokens": 1000, "messages": []}),
    );
    assert_eq!(status, 429, "{body}");
    let message = serde_json::from_str::<Value>(&body).unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("agent:claude-code") && message.contains("resets"),
        "{message}"
    );
    assert!(!message.contains(&credential));
    settled(db, 700 + worst);

    // A project with a budget of its own: the same call is refused there, naming it.
    let tiny = format!(
        "Bearer {}",
        issue_in(&r, "tiny-bot", "acme/tiny", &["--model", "cheap-*"])
    );
    let (status, _, body) = call(
        &chat,
        &[("Authorization", &tiny)],
        &json!({"model": "cheap-1", "max_tokens": 100, "messages": []}),
    );
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("budget project:acme/tiny for day:"), "{body}");

    // Revoked: refused at once.
    revoke(&r, &credential, db);
    // Revoked in the ledger directly: the server sees it within block_refresh.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let (status, _, body) = call(&chat, &[("Authorization", &bearer)], &small);
    assert_eq!(status, 401);
    assert!(body.contains("revoked"), "{body}");
    assert_eq!(
        provider.received().len(),
        calls_before,
        "no refused call reached the upstream"
    );

    // Spend shows in /metrics.
    let (status, metrics) = http("GET", &format!("{base}/metrics"), None, None);
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("lockgate_gateway_spend_micros_total 700"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lockgate_gateway_refusals_total 6"),
        "{metrics}"
    );
    drop(server);
}

#[test]
fn gateway_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    gateway(&format!(
        "sqlite://{}",
        dir.path().join("ledger.db").display()
    ));
}

#[test]
fn gateway_on_postgres() {
    on_postgres("gateway on PostgreSQL", gateway);
}

/// An agent whose spend spikes is frozen by the anomaly watch: its calls are refused
/// (other agents' are not), the on-call webhook hears of it once, the hold shows in the
/// API, a CI token cannot release it and a person can; spend from before the release
/// does not count again, and a new spike freezes it again.
fn spike_freeze(db: &str) {
    let r = TestRepo::new();
    let provider = upstream();
    let oncall = FakeHttp::ok();
    std::fs::write(r.path().join(".git/gateway.key"), [42u8; 32]).unwrap();
    let config = r.path().join(".git/server.toml");
    std::fs::write(
        &config,
        format!(
            r#"{SERVER_CONFIG}
[escalation]
webhook = "{oncall}/page"

[gateway]
key_file = ".git/gateway.key"

# 500 µ$ a minute is a spike for an agent with no history: three 200 µ$ calls.
[gateway.anomaly]
window = "1m"
baseline = "1h"
factor = 2
floor = "0.0005"
interval = "1s"

{cheap}"#,
            cheap = cheap_upstream(&provider.url),
            oncall = oncall.url,
        ),
    )
    .unwrap();
    let person = token(&r, &config, db, "ada", "person");
    let ci = token(&r, &config, db, "ci", "ci");
    let server = start(&r, &config, db);
    let base = server.url().to_string();
    let chat = format!("{base}/v1/chat/completions");
    let claude = format!("Bearer {}", issue(&r, &["--model", "cheap-*"]));
    let codex = format!("Bearer {}", issue_for(&r, "codex", &["--model", "cheap-*"]));
    let request = json!({"model": "cheap-1", "max_tokens": 100, "messages": []});
    let spend = |bearer: &str, n: usize| {
        for _ in 0..n {
            let (status, _, body) = call(&chat, &[("Authorization", bearer)], &request);
            assert_eq!(status, 200, "{body}");
        }
    };

    // Two calls stay under the floor; wait for a scan to pass them.
    spend(&claude, 2);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(oncall.received().is_empty(), "no spike yet");
    spend(&claude, 1);
    let notices = oncall.wait_for(1, 20);
    let notice = notices[0].json();
    assert_eq!(notice["type"], "lockgate.agent_frozen");
    assert_eq!(notice["agent"], "claude-code");
    let reason = notice["reason"].as_str().unwrap().to_string();
    assert!(
        reason.starts_with("spend spike: $0.0006") && reason.contains("in the last 1m"),
        "{reason}"
    );

    // Frozen: refused in each API's shape before the upstream; other agents go on.
    let upstream_calls = provider.received().len();
    let (status, _, body) = call(&chat, &[("Authorization", &claude)], &request);
    assert_eq!(status, 403, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["type"], "agent_frozen");
    assert!(
        err["error"]["message"].as_str().unwrap().contains(&reason),
        "{body}"
    );
    let (status, _, body) = call(
        &format!("{base}/v1/messages"),
        &[("Authorization", &claude)],
        &json!({"model": "claude-test", "max_tokens": 5, "messages": []}),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["type"],
        "permission_error"
    );
    assert_eq!(provider.received().len(), upstream_calls);
    spend(&codex, 1);

    // The hold shows; one notice however many scans pass; counted in /metrics.
    let (_, holds) = http("GET", &format!("{base}/api/v1/holds"), Some(&ci), None);
    let holds = holds.as_array().unwrap().clone();
    assert_eq!(holds.len(), 1, "{holds:?}");
    assert_eq!(
        (
            &holds[0]["scope"],
            &holds[0]["target"],
            &holds[0]["placed_by"]
        ),
        (&json!("agent"), &json!("claude-code"), &json!("anomaly"))
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(oncall.received().len(), 1);
    let (_, metrics) = http("GET", &format!("{base}/metrics"), None, None);
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("lockgate_gateway_freezes_total 1"),
        "{metrics}"
    );

    // Only a person releases it.
    let release = format!("{base}/api/v1/holds/release");
    let id = json!({"id": holds[0]["id"]});
    let (status, _) = http("POST", &release, Some(&ci), Some(id.clone()));
    assert_eq!(status, 403);
    let (status, body) = http("POST", &release, Some(&person), Some(id));
    assert_eq!(status, 200, "{body}");

    // Released: the spike before the release does not count again…
    spend(&claude, 2);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(oncall.received().len(), 1);
    // …but a new one does: frozen again under a new hold.
    spend(&claude, 1);
    let notices = oncall.wait_for(2, 20);
    assert_ne!(notices[1].json()["hold_id"], notices[0].json()["hold_id"]);
    let (status, _, _) = call(&chat, &[("Authorization", &claude)], &request);
    assert_eq!(status, 403);

    // Spend per agent, project and model: from the ledger through the API, from this
    // replica's settlements in /metrics, and on the UI's spend page with the freeze.
    let (status, by_agent) = http(
        "GET",
        &format!("{base}/api/v1/gateway/spend?by=agent&since=1h"),
        Some(&ci),
        None,
    );
    assert_eq!(status, 200, "{by_agent}");
    let rows: Vec<_> = by_agent["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap(),
                r["calls"].as_i64().unwrap(),
                r["spent_micros"].as_i64().unwrap(),
                r["spent_usd"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("claude-code", 6, 1200, "$0.0012"),
            ("codex", 1, 200, "$0.0002")
        ]
    );
    let (_, by_model) = http(
        "GET",
        &format!("{base}/api/v1/gateway/spend?by=model"),
        Some(&ci),
        None,
    );
    assert_eq!(by_model["rows"][0]["key"], "cheap-1");
    assert_eq!(by_model["rows"][0]["spent_micros"], 1400);
    let (status, _) = http(
        "GET",
        &format!("{base}/api/v1/gateway/spend?by=mood"),
        Some(&ci),
        None,
    );
    assert_eq!(status, 422);
    let (status, _) = http("GET", &format!("{base}/api/v1/gateway/spend"), None, None);
    assert_eq!(status, 401);
    let (_, metrics) = http("GET", &format!("{base}/metrics"), None, None);
    let metrics = metrics.as_str().unwrap();
    for series in [
        r#"lockgate_gateway_cost_micros_total{agent="claude-code",project="acme/api",model="cheap-1"} 1200"#,
        r#"lockgate_gateway_calls_total{agent="codex",project="acme/api",model="cheap-1"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut page = agent
        .get(&format!("{base}/ui/spend?since=1h"))
        .header("Cookie", &format!("lockgate_session={person}"))
        .call()
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.body_mut().read_to_string().unwrap();
    assert!(html.contains("Model spend, last 1h"), "{html}");
    assert!(html.contains("<td>claude-code</td>"), "{html}");
    assert!(html.contains("$0.0012"), "{html}");
    assert!(html.contains("spend spike"), "the freeze shows: {html}");
    assert!(html.contains(r#"action="/ui/holds/release""#), "{html}");
    drop(server);
}

#[test]
fn spike_freeze_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    spike_freeze(&format!(
        "sqlite://{}",
        dir.path().join("ledger.db").display()
    ));
}

#[test]
fn spike_freeze_on_postgres() {
    on_postgres("spike freeze on PostgreSQL", spike_freeze);
}

/// The response cache: a deterministic request is answered once by the upstream and
/// then from the cache (whatever its key order or spacing), streams replayed as the same
/// stream; nothing is charged for a hit; sampling requests, bypassed requests, other
/// projects, failed answers, oversized answers and expired entries go to the upstream;
/// a revoked credential gets no cached answer. The cache is in memory, so one backend.
#[test]
fn response_cache() {
    let r = TestRepo::new();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let provider = upstream();
    std::fs::write(r.path().join(".git/gateway.key"), [42u8; 32]).unwrap();
    let config = r.path().join(".git/server.toml");
    let price = |model: &str| {
        format!(
            "[[gateway.price]]\nmodel = \"{model}\"\ninput_per_mtok = 1000000\noutput_per_mtok = 2000000\nmax_output_tokens = 1000\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            r#"{SERVER_CONFIG}
[gateway]
key_file = ".git/gateway.key"
block_refresh = "100ms"

# Slices settle soon after the last call, so the ledger can be checked call by call.
[gateway.lease]
idle = "100ms"

[gateway.cache]
ttl = "2s"
max_entry_kib = 1

[[gateway.upstream]]
name = "openai"
api = "openai"
base_url = "{url}"
models = ["cheap-*", "big-*", "fail-*", "lag-*"]

[[gateway.upstream]]
name = "anthropic"
api = "anthropic"
base_url = "{url}"
models = ["claude-*"]

{prices}"#,
            url = provider.url,
            prices = ["cheap-1", "big-1", "fail-1", "lag-1", "claude-test"]
                .map(price)
                .join("\n"),
        ),
    )
    .unwrap();
    let server = start(&r, &config, &db);
    let base = server.url().to_string();
    let chat = format!("{base}/v1/chat/completions");
    let messages = format!("{base}/v1/messages");
    let models = [
        "--model", "cheap-*", "--model", "big-1", "--model", "fail-1", "--model", "claude-*",
        "--model", "lag-1",
    ];
    let credential = issue(&r, &models);
    let bearer = format!("Bearer {credential}");
    let other_project = format!(
        "Bearer {}",
        issue_in(&r, "claude-code", "acme/web", &models)
    );
    let auth = [("Authorization", bearer.as_str())];
    let upstream_calls = || provider.received().len();

    // Miss, then hit — the same request written differently.
    let request = r#"{"model":"cheap-1","temperature":0,"max_tokens":10,"messages":[{"role":"user","content":"2+2?"}]}"#;
    let respaced = r#"{ "messages": [ { "content": "2+2?", "role": "user" } ], "max_tokens": 10, "temperature": 0.0, "model": "cheap-1" }"#;
    let (status, cache, ct, body) = call_raw(&chat, &auth, request);
    assert_eq!(
        (status, cache.as_deref(), body.as_str()),
        (200, Some("miss"), CHAT_ANSWER)
    );
    assert_eq!(upstream_calls(), 1);
    settled(&db, 200);
    let (status, cache, ct2, body) = call_raw(&chat, &auth, respaced);
    assert_eq!(
        (status, cache.as_deref(), body.as_str()),
        (200, Some("hit"), CHAT_ANSWER)
    );
    assert_eq!(ct2, ct);
    assert_eq!(upstream_calls(), 1, "answered from the cache");
    settled(&db, 200);

    // Sampling requests are never cached; a bypass skips the cache; another project has
    // its own entries.
    let sampled = r#"{"model":"cheap-1","max_tokens":10,"messages":[]}"#;
    for _ in 0..2 {
        let (status, cache, _, _) = call_raw(&chat, &auth, sampled);
        assert_eq!((status, cache), (200, None));
    }
    assert_eq!(upstream_calls(), 3);
    let (_, cache, _, _) = call_raw(&chat, &[auth[0], ("X-Lockgate-Cache", "bypass")], request);
    assert_eq!(cache.as_deref(), Some("bypass"));
    assert_eq!(upstream_calls(), 4);
    let (_, cache, _, _) = call_raw(&chat, &[("Authorization", &other_project)], request);
    assert_eq!(cache.as_deref(), Some("miss"));
    assert_eq!(upstream_calls(), 5);

    // A stream is kept once it ended and replayed as the same stream.
    let streamed = r#"{"model":"claude-test","temperature":0,"max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, cache, ct, body) = call_raw(&messages, &[("x-api-key", &credential)], streamed);
    assert_eq!(
        (status, cache.as_deref(), ct.as_str()),
        (200, Some("miss"), "text/event-stream")
    );
    assert_eq!(body, MESSAGES_STREAM);
    let (status, cache, ct, body) = call_raw(&messages, &[("x-api-key", &credential)], streamed);
    assert_eq!(
        (status, cache.as_deref(), ct.as_str()),
        (200, Some("hit"), "text/event-stream")
    );
    assert_eq!(body, MESSAGES_STREAM);
    assert_eq!(upstream_calls(), 6);

    // Failed and oversized answers are not kept.
    let failing = r#"{"model":"fail-1","temperature":0,"max_tokens":10,"messages":[]}"#;
    let big = r#"{"model":"big-1","temperature":0,"max_tokens":10,"messages":[]}"#;
    for _ in 0..2 {
        assert_eq!(call_raw(&chat, &auth, failing).0, 500);
        let (status, cache, _, body) = call_raw(&chat, &auth, big);
        assert_eq!((status, cache.as_deref()), (200, Some("miss")));
        assert!(body.len() > 1024);
    }
    assert_eq!(upstream_calls(), 10);

    // Counted: 2 hits and 7 misses so far.
    let (_, metrics) = http("GET", &format!("{base}/metrics"), None, None);
    let metrics = metrics.as_str().unwrap();
    for line in [
        "lockgate_gateway_cache_hits_total 2\n",
        "lockgate_gateway_cache_misses_total 7\n",
        "lockgate_gateway_cache_hit_ratio 0.2222",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // Entries expire after the TTL.
    std::thread::sleep(std::time::Duration::from_millis(2300));
    let (_, cache, _, _) = call_raw(&chat, &auth, request);
    assert_eq!(cache.as_deref(), Some("miss"));
    assert_eq!(upstream_calls(), 11);

    // Revoked: no answer, cached or not.
    revoke(&r, &credential, &db);
    std::thread::sleep(std::time::Duration::from_millis(600));
    let (status, _, _, _) = call_raw(&chat, &auth, request);
    assert_eq!(status, 401);

    // Five identical calls at once: one reaches the upstream, the others wait for it
    // and get its answer.
    let before = upstream_calls();
    let slow = r#"{"model":"lag-1","temperature":0,"max_tokens":10,"messages":[]}"#;
    let handles: Vec<_> = (0..5)
        .map(|_| {
            let (chat, bearer) = (chat.clone(), other_project.clone());
            std::thread::spawn(move || call_raw(&chat, &[("Authorization", &bearer)], slow))
        })
        .collect();
    let answers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(upstream_calls(), before + 1, "collapsed into one call");
    assert!(
        answers
            .iter()
            .all(|(s, _, _, b)| *s == 200 && b == CHAT_ANSWER)
    );
    let hits = answers
        .iter()
        .filter(|a| a.1.as_deref() == Some("hit"))
        .count();
    assert_eq!(hits, 4);
    let (_, metrics) = http("GET", &format!("{base}/metrics"), None, None);
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("lockgate_gateway_collapsed_total 4\n"),
        "{metrics}"
    );
    drop(server);
}

/// Budget leases across two replicas on one database: 200 concurrent calls, alternating
/// between the replicas, against a budget with room for about 86 worst cases. Calls
/// draw from the replicas' slices in memory; the ledger ends with exactly the cost of
/// the calls answered, never more than the limit, nothing left reserved, and one call
/// record per answered call.
fn leases_across_replicas(db: &str) {
    let r = TestRepo::new();
    let provider = upstream();
    std::fs::write(r.path().join(".git/gateway.key"), [42u8; 32]).unwrap();
    let config = r.path().join(".git/server.toml");
    std::fs::write(
        &config,
        format!(
            r#"{SERVER_CONFIG}
[gateway]
key_file = ".git/gateway.key"

[gateway.budget]
agent_daily = "0.02"

[gateway.lease]
calls = 8
idle = "200ms"

{cheap}"#,
            cheap = cheap_upstream(&provider.url),
        ),
    )
    .unwrap();
    let replicas = [start(&r, &config, db), start(&r, &config, db)];
    let urls: Vec<String> = replicas
        .iter()
        .map(|s| format!("{}/v1/chat/completions", s.url()))
        .collect();
    let bearer = format!("Bearer {}", issue(&r, &["--model", "cheap-*"]));
    // 130 bytes bound the input tokens (100 reported) from above, as for real providers:
    // each call's worst case (130 + 50 × 2 µ$) covers its cost (200 µ$).
    let request = json!({"model": "cheap-1", "max_tokens": 50, "messages": [{"role": "user", "content": "Reply with ok and nothing else, this is a test of budget leases."}]});
    assert!(serde_json::to_vec(&request).unwrap().len() >= 100);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(200));
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let (url, bearer, request, barrier) = (
                urls[i % 2].clone(),
                bearer.clone(),
                request.clone(),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                barrier.wait();
                call(&url, &[("Authorization", &bearer)], &request).0
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let granted = statuses.iter().filter(|s| **s == 200).count() as i64;
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert_eq!(
        provider.received().len() as i64,
        granted,
        "only granted calls ran"
    );
    assert!(granted * 200 <= 20_000, "{granted} calls");
    assert!(
        granted >= 50,
        "the budget was used, not stranded in slices: {granted}"
    );
    // Once the slices settle: exactly what the calls cost, nothing reserved.
    settled(db, granted * 200);
    let calls = (0..100)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            recent_calls_n(db, 1000)
        })
        .find(|c| c.len() as i64 == granted)
        .unwrap_or_else(|| recent_calls_n(db, 1000));
    assert_eq!(calls.len() as i64, granted, "one record per answered call");
    assert!(
        calls
            .iter()
            .all(|c| c.cost_micros == Some(200) && c.upstream.as_deref() == Some("fake"))
    );
    // The calls drew from slices (far fewer slices than calls), and none is held now.
    let mut slices = 0;
    for replica in &replicas {
        let (_, metrics) = http("GET", &format!("{}/metrics", replica.url()), None, None);
        let metrics = metrics.as_str().unwrap().to_string();
        let value = |name: &str| -> i64 {
            let line = metrics
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} in {metrics}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        slices += value("lockgate_gateway_leases_taken_total");
        assert_eq!(value("lockgate_gateway_leases_open"), 0);
    }
    assert!(
        slices > 0 && slices * 4 < granted,
        "{slices} slices for {granted} calls"
    );
    drop(replicas);
}

/// The agent's most recent model calls, newest first (up to `n`).
fn recent_calls_n(db: &str, n: u32) -> Vec<lockgate_store::CallRecord> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = lockgate_store::Store::open(db).await.unwrap();
        let calls = store.recent_calls("claude-code", n).await.unwrap();
        store.close().await;
        calls
    })
}

#[test]
fn leases_across_replicas_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    leases_across_replicas(&format!(
        "sqlite://{}",
        dir.path().join("ledger.db").display()
    ));
}

#[test]
fn leases_across_replicas_on_postgres() {
    on_postgres(
        "budget leases across replicas on PostgreSQL",
        leases_across_replicas,
    );
}

/// An upstream whose answer does not begin within its timeout: the call may still run
/// and bill, so that attempt is charged its whole reservation and the next upstream is
/// tried under a reservation of its own; with none left, 504. The ledger records each
/// attempt with its upstream. Calls reserved one by one (`[gateway.lease] calls = 0`).
fn timeout_fallback(db: &str) {
    let r = TestRepo::new();
    let provider = upstream();
    let sleepy = FakeHttp::new(|_| {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        (200, "application/json", CHAT_ANSWER.into())
    });
    std::fs::write(r.path().join(".git/gateway.key"), [42u8; 32]).unwrap();
    let config = r.path().join(".git/server.toml");
    std::fs::write(
        &config,
        format!(
            r#"{SERVER_CONFIG}
[gateway]
key_file = ".git/gateway.key"

[gateway.lease]
calls = 0

[[gateway.upstream]]
name = "sleepy"
api = "openai"
base_url = "{sleepy}"
models = ["hang-*"]
timeout = "300ms"

[[gateway.upstream]]
name = "good"
api = "openai"
base_url = "{url}"
models = ["hang-1"]

# Prices hang-1 and hang-2.
[[gateway.price]]
model = "hang"
input_per_mtok = 1000000
output_per_mtok = 2000000
max_output_tokens = 1000
"#,
            url = provider.url,
            sleepy = sleepy.url,
        ),
    )
    .unwrap();
    let server = start(&r, &config, db);
    let chat = format!("{}/v1/chat/completions", server.url());
    let bearer = format!("Bearer {}", issue(&r, &["--model", "hang-*"]));
    let request = json!({"model": "hang-1", "max_tokens": 10, "messages": []});
    let worst = serde_json::to_vec(&request).unwrap().len() as i64 + 20;

    let (status, _, body) = call(&chat, &[("Authorization", &bearer)], &request);
    assert_eq!((status, body.as_str()), (200, CHAT_ANSWER));
    settled(db, worst + 200);
    let calls = recent_calls(db);
    let mut attempts: Vec<_> = calls
        .iter()
        .map(|c| (c.upstream.clone().unwrap_or_default(), c.cost_micros))
        .collect();
    attempts.sort();
    assert_eq!(
        attempts,
        [
            ("good".to_string(), Some(200)),
            ("sleepy".to_string(), Some(worst))
        ]
    );

    // Only the slow upstream serves hang-2: 504, charged its reservation.
    let request = json!({"model": "hang-2", "max_tokens": 10, "messages": []});
    let (status, _, body) = call(&chat, &[("Authorization", &bearer)], &request);
    assert_eq!(status, 504, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["type"], "upstream_timeout");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sleepy did not answer within 300ms"),
        "{body}"
    );
    settled(db, 2 * worst + 200);
    drop(server);
}

#[test]
fn timeout_fallback_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    timeout_fallback(&format!(
        "sqlite://{}",
        dir.path().join("ledger.db").display()
    ));
}

#[test]
fn timeout_fallback_on_postgres() {
    on_postgres("upstream timeout fallback on PostgreSQL", timeout_fallback);
}
