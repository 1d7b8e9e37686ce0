//! The web UI end to end in headless Chromium (Debian's chromium and chromedriver,
//! which `.ci/run` installs): sign in with a person's token, the pending queue, the
//! change page (verdict, reasons, trust, files, provenance, transcript viewer), the
//! approve flow, releasing a hold, that everything shown is HTML-escaped, CSRF and the
//! security headers. Without chromedriver the browser test prints a NOTICE (CI sets
//! `LOCKGATE_REQUIRE_BROWSER=1`, which turns that into a failure).

mod common;

use common::browser::{
    Driver, browser, chromedriver, click, sign_in, sign_out, start_driver, text,
};
use common::server::{SERVER_CONFIG, agent_change, http, start, token};
use fantoccini::Locator;
use lockgate_testkit::{Background, TestRepo};
use serde_json::{Value, json};

/// A change name with markup in it: it must come out as text everywhere.
const HOSTILE_CHANGE: &str = "pr/7<script>alert(1)</script>";
const HOSTILE_PROMPT: &str = "<img src=x onerror=alert(2)> add g";

/// What the browser test needs: a server holding one agent change that waits for
/// @org/backend, its uploaded transcript, and tokens.
struct World {
    _repo: TestRepo,
    server: Background,
    decision: Value,
    ci: String,
    admin: String,
    ada: String,
    bob: String,
}

fn world() -> World {
    let transcript = format!(
        "{}\n{}\n{}\n",
        json!({"step": 1, "kind": "prompt", "role": "user", "text": HOSTILE_PROMPT}),
        json!({"step": 2, "kind": "tool_call", "role": "assistant", "tool": "edit", "files_written": ["src/lib.rs"]}),
        json!({"step": 3, "kind": "message", "role": "assistant", "text": "Added g()."}),
    );
    let (r, code, decision) = agent_change(Some(&transcript));
    assert_eq!(code, 3, "needs approval: {decision}");
    let config = r.path().join(".git/server.toml");
    std::fs::write(&config, SERVER_CONFIG).unwrap();
    let db = format!("sqlite://{}", r.path().join(".git/ledger.db").display());
    let ci = token(&r, &config, &db, "ci", "ci");
    let admin = token(&r, &config, &db, "eve", "admin");
    let ada = token(&r, &config, &db, "ada", "person");
    let bob = token(&r, &config, &db, "bob", "person");
    let server = start(&r, &config, &db);
    let base = server.url().to_string();
    let (status, body) = http(
        "POST",
        &format!("{base}/api/v1/decisions"),
        Some(&ci),
        Some(json!({"repo": "acme/api", "change_ref": HOSTILE_CHANGE, "decision": decision})),
    );
    assert_eq!(status, 200, "{body}");
    World {
        _repo: r,
        server,
        decision,
        ci,
        admin,
        ada,
        bob,
    }
}

fn upload_transcript(base: &str, token: &str, bytes: &[u8]) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(&format!("{base}/api/v1/transcripts"))
        .header("Authorization", &format!("Bearer {token}"))
        .send(bytes)
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn browse(w: &World, driver: &Driver) {
    let base = w.server.url();
    let c = browser(driver).await;

    // Bob is a person but not an owner of src/: he sees the change, cannot approve it.
    sign_in(&c, base, &w.bob).await;
    let row = text(&c, "#pending tbody tr").await;
    assert!(
        row.contains(HOSTILE_CHANGE),
        "queue lists the change: {row}"
    );
    assert!(row.contains("claude-code"), "{row}");
    click(&c, "#pending a").await;
    c.wait()
        .for_element(Locator::Css("#verdict"))
        .await
        .unwrap();
    assert!(
        text(&c, "#cannot-approve")
            .await
            .contains("bob is not among the owners"),
        "a non-owner is told why"
    );
    assert!(c.find(Locator::Css("#approve-button")).await.is_err());
    sign_out(&c).await;

    // Ada owns src/ through @org/backend.
    sign_in(&c, base, &w.ada).await;
    click(&c, "#pending a").await;
    c.wait()
        .for_element(Locator::Css("#verdict"))
        .await
        .unwrap();
    assert_eq!(
        c.title().await.unwrap(),
        format!("acme/api {HOSTILE_CHANGE} · Lockgate")
    );
    assert_eq!(text(&c, "h1").await, format!("acme/api {HOSTILE_CHANGE}"));
    assert_eq!(text(&c, "#verdict").await, "needs_approval");
    assert_eq!(
        text(&c, "#trust-score").await,
        w.decision["trust"]["score"].to_string()
    );
    let reasons = text(&c, "#reasons").await;
    for reason in w.decision["reasons"].as_array().unwrap() {
        assert!(
            reasons.contains(reason["rule"].as_str().unwrap()),
            "{reasons}"
        );
    }
    let trust = text(&c, "#trust").await;
    assert!(
        trust.contains("provenance") && trust.contains("model"),
        "{trust}"
    );
    let files = text(&c, "table.files").await;
    assert!(
        files.contains("src/lib.rs") && files.contains("@org/backend"),
        "{files}"
    );
    let provenance = text(&c, "#provenance").await;
    assert!(
        provenance.contains("valid")
            && provenance.contains("claude-code")
            && provenance.contains("claude-sonnet-4-5")
            && provenance.contains("sha256:"),
        "{provenance}"
    );
    assert!(text(&c, "#requirements").await.contains("@org/backend"));
    assert_eq!(text(&c, "#approval-state").await, "Waiting for approval.");

    // The transcript viewer shows the attested steps, markup as text.
    click(&c, "a.transcript").await;
    c.wait()
        .for_element(Locator::Css("#transcript"))
        .await
        .unwrap();
    let steps = c.find_all(Locator::Css("#transcript li")).await.unwrap();
    assert_eq!(steps.len(), 3);
    assert!(steps[0].text().await.unwrap().contains(HOSTILE_PROMPT));
    assert!(steps[1].text().await.unwrap().contains("wrote src/lib.rs"));
    assert!(
        c.find_all(Locator::Css("main img"))
            .await
            .unwrap()
            .is_empty()
    );
    c.back().await.unwrap();

    // Approve with a comment that is markup.
    c.wait()
        .for_element(Locator::Css("#comment"))
        .await
        .unwrap()
        .send_keys("<b>looks</b> good")
        .await
        .unwrap();
    click(&c, "#approve-button").await;
    c.wait().for_element(Locator::Css(".notice")).await.unwrap();
    assert_eq!(text(&c, ".notice").await, "Your approval was recorded.");
    assert_eq!(text(&c, "#approval-state").await, "Approved at this head.");
    let approvals = text(&c, "#approvals").await;
    assert!(
        approvals.contains("ada approved via web") && approvals.contains("<b>looks</b> good"),
        "{approvals}"
    );
    assert!(
        c.find_all(Locator::Css("#approvals b"))
            .await
            .unwrap()
            .is_empty()
    );
    // No markup from the data became elements anywhere on the page.
    assert!(c.find_all(Locator::Css("script")).await.unwrap().is_empty());
    let source = c.source().await.unwrap();
    assert!(source.contains("pr/7&lt;script&gt;alert(1)&lt;/script&gt;"));

    // The API sees the same approval, from the web, at the head.
    let (status, view) = http(
        "GET",
        &format!(
            "{base}/api/v1/change?repo=acme/api&change={}",
            common::server::urlencode(HOSTILE_CHANGE)
        ),
        Some(&w.ci),
        None,
    );
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"]["approved"], true);
    assert_eq!(view["state"]["approvals"][0]["source"], "web");
    assert_eq!(
        view["state"]["approvals"][0]["comment"],
        "<b>looks</b> good"
    );

    // A hold placed through the API shows on the queue; a person releases it there.
    let (status, hold) = http(
        "POST",
        &format!("{base}/api/v1/holds"),
        Some(&w.admin),
        Some(json!({"scope": "agent", "target": "claude-code", "reason": "<i>incident</i> 42"})),
    );
    assert_eq!(status, 200, "{hold}");
    c.goto(&format!("{base}/ui")).await.unwrap();
    let holds = text(&c, "#holds").await;
    assert!(
        holds.contains("agent claude-code") && holds.contains("<i>incident</i> 42"),
        "{holds}"
    );
    click(&c, "#holds button").await;
    // The form posts and the queue reloads without the hold.
    let mut gone = false;
    for _ in 0..50 {
        if c.find(Locator::Css("#holds")).await.is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the released hold is no longer listed");
    let (_, holds) = http("GET", &format!("{base}/api/v1/holds"), Some(&w.ci), None);
    assert_eq!(holds, json!([]));

    c.close().await.unwrap();
}

#[test]
fn the_web_ui_in_headless_chromium() {
    let Some(path) = chromedriver() else {
        return;
    };
    let w = world();
    let (status, uploaded) = upload_transcript(w.server.url(), &w.ci, &transcript_bytes(&w));
    assert_eq!(status, 200, "{uploaded}");
    assert_eq!(
        uploaded["digest"], w.decision["provenance"]["commits"][0]["transcript"]["digest"],
        "stored under the digest the attestation carries"
    );
    let driver = start_driver(&path);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(browse(&w, &driver));
}

/// The redacted transcript `attest --transcript-out` wrote for the change.
fn transcript_bytes(w: &World) -> Vec<u8> {
    std::fs::read(w._repo.path().join(".git/transcript.redacted.jsonl")).unwrap()
}

/// Raw HTTP with a cookie and a form body: status, headers' `location`, body.
fn form_post(url: &str, cookie: Option<&str>, form: &str) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut r = agent
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        r = r.header("Cookie", c);
    }
    let mut response = r.send(form.as_bytes()).unwrap();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let status = response.status().as_u16();
    (
        status,
        location,
        response.body_mut().read_to_string().unwrap(),
    )
}

/// Without a browser: sign-in cookie attributes, CSRF, CI tokens cannot sign in, the
/// security headers, and the transcript upload's refusals.
#[test]
fn sessions_csrf_headers_and_transcript_uploads() {
    let w = world();
    let base = w.server.url();

    let (status, _, page) = form_post(&format!("{base}/ui/login"), None, "token=lgt_nope_nope");
    assert_eq!(status, 401);
    assert!(page.contains("missing or invalid token"), "{page}");
    let (status, _, page) = form_post(
        &format!("{base}/ui/login"),
        None,
        &format!("token={}", w.ci),
    );
    assert_eq!(status, 403, "CI tokens cannot sign in");
    assert!(page.contains("CI tokens cannot sign in"));

    // Signing in sets an HttpOnly, SameSite=Strict cookie.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let response = agent
        .post(&format!("{base}/ui/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("token={}", w.ada).as_bytes())
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let headers = response.headers();
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    // An approval posted without the page's CSRF token is refused, and nothing is recorded.
    let head = w.decision["head"].as_str().unwrap();
    let form = format!(
        "csrf=00&repo=acme%2Fapi&change_ref={}&head_sha={head}&state=approved&comment=",
        common::server::urlencode(HOSTILE_CHANGE)
    );
    let (status, _, _) = form_post(&format!("{base}/ui/approve"), Some(&cookie), &form);
    assert_eq!(status, 403);
    // Without a session: sent to sign in.
    let (status, location, _) = form_post(&format!("{base}/ui/approve"), None, &form);
    assert_eq!((status, location.as_str()), (303, "/ui/login"));
    let (_, view) = http(
        "GET",
        &format!(
            "{base}/api/v1/change?repo=acme/api&change={}",
            common::server::urlencode(HOSTILE_CHANGE)
        ),
        Some(&w.ci),
        None,
    );
    assert_eq!(view["state"]["approvals"], json!([]), "nothing recorded");

    // Transcripts: a person cannot upload; one that still holds a secret is refused.
    let (status, _) = upload_transcript(base, &w.ada, b"{}");
    assert_eq!(status, 403);
    let leaky = format!(
        "{}\n",
        json!({"step": 1, "kind": "prompt", "role": "user", "text": "use AKIAQYLPMN5HHHFPZAM2 as the key"}) // lockgate:allow (synthetic key)
    );
    let (status, body) = upload_transcript(base, &w.ci, leaky.as_bytes());
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("still holds 1 secret"),
        "{body}"
    );
    let (status, body) = upload_transcript(base, &w.ci, b"not json\n");
    assert_eq!(status, 422, "{body}");
    let bytes = transcript_bytes(&w);
    let (status, first) = upload_transcript(base, &w.ci, &bytes);
    assert_eq!((status, &first["new"]), (200, &json!(true)));
    let (status, again) = upload_transcript(base, &w.ci, &bytes);
    assert_eq!((status, &again["new"]), (200, &json!(false)), "idempotent");
}
