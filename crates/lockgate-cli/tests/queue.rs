//! The merge queue end to end: `lockgate serve` with `[merge]` over a real bare
//! repository on disk, changes recorded by `lockgate check --server`, the gate re-run on
//! the exact result, a real test command, a human pushing to the target under the
//! queue, holds, squash provenance following the merged commit, and `kill -9` at the
//! worst moments with no lost and no double merge.

mod common;

use common::fake_http::FakeHttp;
use common::server::{SERVER_CONFIG, http, on_postgres, start_env, token, urlencode};
use common::{agent_key, attest, lockgate, lockgate_env};
use lockgate_testkit::{Background, CLAUDE, TestRepo};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const REPO: &str = "acme/app";

/// The project, pushed to a bare `origin`, and where the queue test keeps its files.
struct World {
    r: TestRepo,
    origin: PathBuf,
    /// Scratch for the test command: its run log, the "move main once" marker.
    scratch: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let r = TestRepo::new();
        let trust = agent_key(&r);
        r.write(".lockgate/trust.toml", &trust);
        r.write(
            ".github/CODEOWNERS",
            "* @org/maintainers\n/src/ @org/backend\n/docs/ @org/docs\n",
        );
        r.write("docs/guide.md", "# Guide\n");
        r.write("src/lib.rs", "pub fn f() {}\n");
        r.commit("init");
        let origin = r.path().join(".git/origin.git");
        r.git(&["init", "-q", "--bare", origin.to_str().unwrap()]);
        r.git(&["remote", "add", "origin", origin.to_str().unwrap()]);
        r.git(&["push", "-q", "origin", "main"]);
        let scratch = tempfile::tempdir().unwrap();
        // A person's clone, for pushing to main under the queue.
        let human = scratch.path().join("human");
        git_in(
            scratch.path(),
            &[
                "clone",
                "-q",
                origin.to_str().unwrap(),
                human.to_str().unwrap(),
            ],
        );
        World { r, origin, scratch }
    }

    /// An attested Claude Code change on branch `name` (from main), pushed with its
    /// notes; its head.
    fn agent_change(&self, name: &str, path: &str, content: &str) -> String {
        let r = &self.r;
        r.checkout("main");
        r.branch(name);
        r.write(path, content);
        let head = r.commit_as(CLAUDE, &format!("agent change {name}"));
        attest(r, "claude-code", "claude-sonnet-4-5");
        r.git(&["push", "-q", "origin", name]);
        r.git(&["push", "-q", "-f", "origin", "refs/notes/lockgate"]);
        head
    }

    /// `lockgate check --server` for the checked-out change; its decision.
    fn record(&self, url: &str, ci_token: &Path, change: &str) -> Value {
        let run = lockgate_env(
            &self.r,
            &[
                "check",
                "--base",
                "main",
                "--format",
                "json",
                "--server",
                url,
                "--server-token-file",
                ci_token.to_str().unwrap(),
                "--server-repo",
                REPO,
                "--change",
                change,
            ],
            &[],
        );
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr))
    }

    /// The test command: fails when docs/FAIL.md exists; logs what it tested; runs
    /// `during-test.sh` once if there is one; the first time it finds the `move-main`
    /// marker, a person pushes to main.
    fn test_script(&self) -> PathBuf {
        let script = self.scratch.path().join("test.sh");
        std::fs::write(
            &script,
            r#"#!/bin/sh
set -e
echo "$LOCKGATE_QUEUE_CHANGE $LOCKGATE_QUEUE_RESULT_SHA $(git rev-parse HEAD)" >> "$QUEUE_SCRATCH/runs.log"
if [ -e docs/FAIL.md ]; then
    echo "docs/FAIL.md must not exist" >&2
    exit 3
fi
if [ -e "$QUEUE_SCRATCH/during-test.sh" ]; then
    mv "$QUEUE_SCRATCH/during-test.sh" "$QUEUE_SCRATCH/during-test.ran"
    sh "$QUEUE_SCRATCH/during-test.ran" >> "$QUEUE_SCRATCH/during-test.log" 2>&1
fi
if [ -e "$QUEUE_SCRATCH/move-main" ]; then
    rm "$QUEUE_SCRATCH/move-main"
    cd "$QUEUE_SCRATCH/human"
    git pull -q --ff-only origin main
    echo "a person was here" > HUMAN.md
    git add HUMAN.md
    git -c user.name=Hu -c user.email=hu@example.com commit -q -m "human: under the queue"
    git push -q origin HEAD:main
fi
"#,
        )
        .unwrap();
        script
    }

    /// The server config; `extra` goes in the queue's table (a `test = …` line there
    /// replaces the test script).
    fn config(&self, notify: &str, extra: &str) -> PathBuf {
        let path = self.scratch.path().join("server.toml");
        let test = if extra.lines().any(|l| l.starts_with("test = ")) {
            String::new()
        } else {
            format!("test = [\"sh\", \"{}\"]\n", self.test_script().display())
        };
        let text = format!(
            "{SERVER_CONFIG}\n[merge]\nworkdir = \"{workdir}\"\ninterval = \"100ms\"\nlease = \"1s\"\nnotify_webhook = \"{notify}\"\n\n\
             [[merge.repo]]\nname = \"{REPO}\"\nremote = \"{origin}\"\ntarget = \"main\"\nmethod = \"squash\"\n\
             {test}test_env = [\"QUEUE_SCRATCH\"]\nmin_trust = 0\nrequire_logged = false\n{extra}",
            workdir = self.scratch.path().join("merge").display(),
            origin = self.origin.display(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A ledger file of this test's own.
    fn sqlite(&self) -> String {
        format!(
            "sqlite://{}",
            self.scratch.path().join("ledger.db").display()
        )
    }

    /// The server config (`extra` goes in the queue's table) and the tokens: the CI
    /// token's file, an admin's, and Ada's (a person).
    fn prepare(&self, notify: &str, extra: &str, db: &str) -> (PathBuf, PathBuf, String, String) {
        let config = self.config(notify, extra);
        let (ci, admin, ada) = tokens(self, &config, db);
        (config, ci, admin, ada)
    }

    fn origin_git(&self, args: &[&str]) -> String {
        git_in(&self.origin, args)
    }
}

fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The queue's entries (recent, newest first) once `done` says so.
fn wait_for(url: &str, token: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, answer) = http(
            "GET",
            &format!("{url}/api/v1/queue?limit=100"),
            Some(token),
            None,
        );
        assert_eq!(status, 200, "{answer}");
        let recent = answer["recent"].as_array().cloned().unwrap_or_default();
        if done(&recent) {
            return recent;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {answer:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn entry<'a>(recent: &'a [Value], change: &str) -> &'a Value {
    recent
        .iter()
        .find(|e| e["change_ref"] == change)
        .unwrap_or_else(|| panic!("no entry for {change}: {recent:#?}"))
}

fn state_of(recent: &[Value], change: &str) -> String {
    recent
        .iter()
        .find(|e| e["change_ref"] == change)
        .map(|e| e["state"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

fn is_final(recent: &[Value], change: &str) -> bool {
    matches!(state_of(recent, change).as_str(), "merged" | "ejected")
}

/// Starts the server; the CI token file and the admin and ada tokens.
fn serve(w: &World, config: &Path, db: &str, env: &[(&str, &str)]) -> Background {
    let scratch = w.scratch.path().to_str().unwrap().to_string();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("QUEUE_SCRATCH", &scratch));
    start_env(&w.r, config, db, &env)
}

fn tokens(w: &World, config: &Path, db: &str) -> (PathBuf, String, String) {
    let ci = token(&w.r, config, db, "ci", "ci");
    let ci_file = w.scratch.path().join("ci.token");
    std::fs::write(&ci_file, ci).unwrap();
    let admin = token(&w.r, config, db, "ada", "admin");
    let ada = token(&w.r, config, db, "ada", "person");
    (ci_file, admin, ada)
}

/// Several entries, one failing in the middle, main moving under the queue, an entry
/// that waited for approval, a hold; what landed is exactly what was tested.
/// On the ledger at `db` (`None`: an SQLite file of its own).
fn queue_flow(db: Option<&str>) {
    let w = World::new();
    let db = db.map_or_else(|| w.sqlite(), String::from);
    let db = db.as_str();
    let notices = FakeHttp::ok();
    let (config, ci, admin, ada) = w.prepare(&notices.url, "", db);

    let a = w.agent_change("agent/a", "docs/a.md", "# A\n");
    let b = w.agent_change("agent/b", "docs/FAIL.md", "# this fails the tests\n");
    let c = w.agent_change("agent/c", "docs/c.md", "# C\n");
    let d = w.agent_change("agent/d", "src/lib.rs", "pub fn f() {}\npub fn g() {}\n");
    std::fs::write(w.scratch.path().join("move-main"), "").unwrap();

    let server = serve(&w, &config, db, &[]);
    let url = server.url().to_string();
    for (name, head) in [("agent/a", &a), ("agent/b", &b), ("agent/c", &c)] {
        w.r.checkout(name);
        let decision = w.record(&url, &ci, name);
        assert_eq!(decision["verdict"], "auto_merge", "{name}: {decision:#}");
        assert_eq!(decision["head"], head.as_str());
    }
    w.r.checkout("agent/d");
    let decision = w.record(&url, &ci, "agent/d");
    assert_eq!(decision["verdict"], "needs_approval", "{decision:#}");

    let recent = wait_for(&url, &ada, "a, b and c to finish", |r| {
        ["agent/a", "agent/b", "agent/c"]
            .iter()
            .all(|c| is_final(r, c))
    });
    assert!(
        state_of(&recent, "agent/d").is_empty(),
        "d waits for its approval outside the queue"
    );
    let ea = entry(&recent, "agent/a");
    assert_eq!(ea["state"], "merged", "{ea:#}");
    assert_eq!(ea["attempts"], 2, "main moved under a: built twice {ea:#}");
    let eb = entry(&recent, "agent/b");
    assert_eq!(eb["state"], "ejected");
    let reason = eb["reason"].as_str().unwrap();
    assert!(reason.contains("test command failed"), "{reason}");
    assert!(reason.contains("docs/FAIL.md must not exist"), "{reason}");
    assert_eq!(entry(&recent, "agent/c")["state"], "merged");

    // The author is told: a signed-or-not notice naming the change and the reason.
    let told = notices.wait_for(3, 10);
    let ejected: Vec<Value> = told
        .iter()
        .map(|n| n.json())
        .filter(|n| n["event"] == "lockgate.queue_ejected")
        .collect();
    assert_eq!(ejected.len(), 1, "{ejected:#?}");
    assert_eq!(ejected[0]["change_ref"], "agent/b");
    assert_eq!(ejected[0]["agent"], "claude-code");
    assert!(
        ejected[0]["reason"]
            .as_str()
            .unwrap()
            .contains("test command failed")
    );

    // A global hold stops the queue; the approved change waits; releasing lets it land.
    let hold = place_hold(
        &url,
        &admin,
        json!({"scope": "global", "reason": "incident 42"}),
    );
    let approved = approve(&url, &ada, "agent/d", &d);
    assert_eq!(approved["approved"], true, "{approved:#}");
    let recent = wait_for(&url, &ada, "d to show the hold", |r| {
        r.iter().any(|e| {
            e["change_ref"] == "agent/d"
                && e["reason"].as_str().unwrap_or("").contains("incident 42")
        })
    });
    assert_eq!(state_of(&recent, "agent/d"), "queued");
    let (_, queues) = http(
        "GET",
        &format!("{url}/api/v1/queue?repo={}", urlencode(REPO)),
        Some(&ada),
        None,
    );
    // The answer is what the OpenAPI document says it is.
    let (_, spec) = http("GET", &format!("{url}/api/v1/openapi.json"), None, None);
    let schema = json!({
        "$ref": "#/components/schemas/QueueAnswer",
        "components": spec["components"],
    });
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&queues)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        queues["queues"][0]["held_by"][0]["reason"], "incident 42",
        "{queues:#}"
    );
    release(&url, &ada, &hold);
    let recent = wait_for(&url, &ada, "d to land", |r| is_final(r, "agent/d"));
    assert_eq!(entry(&recent, "agent/d")["state"], "merged", "{recent:#?}");

    // The target: init, the person's push, then a, c, d squashed — and not b.
    let subjects = w.origin_git(&["log", "--format=%s", "main"]);
    let subjects: Vec<&str> = subjects.lines().collect();
    assert_eq!(
        subjects,
        [
            "Merge agent/d (".to_string() + &d[..12] + ")",
            "Merge agent/c (".to_string() + &c[..12] + ")",
            "Merge agent/a (".to_string() + &a[..12] + ")",
            "human: under the queue".to_string(),
            "init".to_string(),
        ]
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
    );
    assert!(
        w.origin_git(&["ls-tree", "-r", "--name-only", "main"])
            .lines()
            .all(|p| p != "docs/FAIL.md")
    );

    // What landed is what was tested: every merged commit went through the test command
    // at exactly that commit (the checkout's HEAD too).
    let runs = std::fs::read_to_string(w.scratch.path().join("runs.log")).unwrap();
    for change in ["agent/a", "agent/c", "agent/d"] {
        let merged = entry(&recent, change)["result_sha"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            runs.lines()
                .any(|l| l == format!("{change} {merged} {merged}")),
            "{change} {merged} not tested as is:\n{runs}"
        );
        let on_main = w.origin_git(&["rev-list", "main"]);
        assert!(on_main.lines().any(|l| l == merged), "{merged} is on main");
    }

    // Provenance follows the squashed commit: the ledger maps it to the change head, the
    // merge is in the transparency log, and `lockgate verify` binds the agent's
    // attestation to the new commit by patch id.
    let merged_a = entry(&recent, "agent/a")["result_sha"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let commit = loop {
        let (status, commit) = http(
            "GET",
            &format!(
                "{url}/api/v1/commit?repo={}&sha={merged_a}",
                urlencode(REPO)
            ),
            Some(&ada),
            None,
        );
        assert_eq!(status, 200);
        if !commit["merges"][0]["log_index"].is_null() || Instant::now() > deadline {
            break commit;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let merge = &commit["merges"][0];
    assert_eq!(merge["head_sha"], a.as_str(), "{commit:#}");
    assert_eq!(merge["method"], "squash");
    assert!(
        merge["log_index"].is_u64(),
        "the merge is logged: {commit:#}"
    );
    assert!(
        merge["check_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    w.r.git(&["fetch", "-q", "origin", "main"]);
    let trust = w.r.path().join(".lockgate/trust.toml");
    w.r.checkout("main");
    let verify = lockgate(
        &w.r,
        &[
            "verify",
            "--head",
            &merged_a,
            "--trust-root",
            trust.to_str().unwrap(),
            "--json",
        ],
    );
    let v: Value =
        serde_json::from_str(&verify.stdout).unwrap_or_else(|e| panic!("{e}: {}", verify.stderr));
    assert_eq!(v["status"], "valid", "{v:#}");
    drop(server);
}

#[test]
fn the_queue_lands_what_it_tested_and_ejects_what_fails_on_sqlite() {
    queue_flow(None);
}

#[test]
fn the_queue_lands_what_it_tested_and_ejects_what_fails_on_postgres() {
    on_postgres("merge queue on PostgreSQL", |db| queue_flow(Some(db)));
}

/// Waits for the server process to die (it aborts at the crash point).
fn wait_dead(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    while agent.get(&format!("{url}/healthz")).call().is_ok() {
        assert!(Instant::now() < deadline, "the server did not crash");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `kill -9`-like aborts right after the push (landed, not recorded) and right before
/// it (recorded as pushing, not landed): each change lands exactly once.
#[test]
fn a_crash_mid_merge_neither_loses_nor_doubles_a_merge() {
    crash_flow(None);
}

#[test]
fn a_crash_mid_merge_neither_loses_nor_doubles_a_merge_on_postgres() {
    on_postgres("merge queue crash on PostgreSQL", |db| crash_flow(Some(db)));
}

/// [`a_crash_mid_merge_neither_loses_nor_doubles_a_merge`] on the ledger at `db`
/// (`None`: an SQLite file of its own).
fn crash_flow(db: Option<&str>) {
    let w = World::new();
    let db = db.map_or_else(|| w.sqlite(), String::from);
    let notices = FakeHttp::ok();
    let (config, ci, _, ada) = w.prepare(&notices.url, "", &db);
    let a = w.agent_change("agent/a", "docs/a.md", "# A\n");
    let b = w.agent_change("agent/b", "docs/b.md", "# B\n");
    let main_before = w.origin_git(&["rev-parse", "main"]);

    // 1. Abort after pushing a: main moved, the ledger still says `pushing`.
    let server = serve(
        &w,
        &config,
        &db,
        &[("LOCKGATE_QUEUE_CRASH_AT", "after-push")],
    );
    let url = server.url().to_string();
    w.r.checkout("agent/a");
    w.record(&url, &ci, "agent/a");
    wait_dead(&url);
    drop(server);
    let landed_a = w.origin_git(&["rev-parse", "main"]);
    assert_ne!(landed_a, main_before, "a was pushed before the crash");
    assert_eq!(w.origin_git(&["rev-parse", "main^"]), main_before);

    // 2. Restart (aborting before any push now): a is reconciled as merged without a
    // second push; then b is built, checked, tested, and the process dies before its push.
    let server = serve(
        &w,
        &config,
        &db,
        &[("LOCKGATE_QUEUE_CRASH_AT", "before-push")],
    );
    let url = server.url().to_string();
    let recent = wait_for(&url, &ada, "a reconciled", |r| is_final(r, "agent/a"));
    assert_eq!(entry(&recent, "agent/a")["state"], "merged");
    assert_eq!(entry(&recent, "agent/a")["result_sha"], landed_a.as_str());
    w.r.checkout("agent/b");
    w.record(&url, &ci, "agent/b");
    wait_dead(&url);
    drop(server);
    assert_eq!(
        w.origin_git(&["rev-parse", "main"]),
        landed_a,
        "b was not pushed"
    );

    // 3. Restart cleanly: b, found `pushing` with main where it was built, is pushed.
    let server = serve(&w, &config, &db, &[]);
    let url = server.url().to_string();
    let recent = wait_for(&url, &ada, "b landed", |r| is_final(r, "agent/b"));
    let eb = entry(&recent, "agent/b");
    assert_eq!(eb["state"], "merged", "{eb:#}");
    assert_eq!(eb["attempts"], 1, "pushed as built, not rebuilt: {eb:#}");
    let subjects = w.origin_git(&["log", "--format=%s", "main"]);
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        [
            format!("Merge agent/b ({})", &b[..12]),
            format!("Merge agent/a ({})", &a[..12]),
            "init".to_string()
        ],
        "each change landed once"
    );
    for (sha, head) in [
        (landed_a.as_str(), a.as_str()),
        (eb["result_sha"].as_str().unwrap(), b.as_str()),
    ] {
        let (_, commit) = http(
            "GET",
            &format!("{url}/api/v1/commit?repo={}&sha={sha}", urlencode(REPO)),
            Some(&ada),
            None,
        );
        let merges = commit["merges"].as_array().unwrap();
        assert_eq!(merges.len(), 1, "one merge recorded: {commit:#}");
        assert_eq!(merges[0]["head_sha"], head);
    }
}

/// The merge queue page in headless Chromium: an incident freeze of the agent shows on
/// its entry and in the holds; a person releases it there and the change lands.
#[test]
fn the_merge_queue_page_shows_holds_and_releases_them() {
    use common::browser::{browser, chromedriver, click, sign_in, start_driver, text};
    let Some(path) = chromedriver() else {
        return;
    };
    let w = World::new();
    let db = w.sqlite();
    let notices = FakeHttp::ok();
    let (config, ci, admin, ada) = w.prepare(&notices.url, "", &db);
    w.agent_change("agent/a", "docs/a.md", "# A\n");
    let server = serve(&w, &config, &db, &[]);
    let url = server.url().to_string();
    place_hold(
        &url,
        &admin,
        json!({"scope": "agent", "target": "claude-code", "reason": "incident <b>7</b>"}),
    );
    w.r.checkout("agent/a");
    w.record(&url, &ci, "agent/a");
    wait_for(&url, &ada, "the freeze to show on a", |r| {
        entry_state_reason(r, "agent/a")
            .1
            .contains("incident freeze of agent claude-code")
    });

    let driver = start_driver(&path);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let c = browser(&driver).await;
        sign_in(&c, &url, &ada).await;
        c.goto(&format!("{url}/ui/merges")).await.unwrap();
        let row = text(&c, "section.queue table.entries tr[data-change='agent/a']").await;
        assert!(row.contains("queued"), "{row}");
        assert!(
            row.contains("incident freeze of agent claude-code"),
            "{row}"
        );
        let holds = text(&c, "section.queue #holds").await;
        assert!(
            holds.contains("incident <b>7</b>"),
            "shown as text: {holds}"
        );
        click(&c, "section.queue #holds button[type=submit]").await;
        wait_for(&url, &ada, "a to land after the release", |r| {
            is_final(r, "agent/a")
        });
        assert!(
            c.current_url()
                .await
                .unwrap()
                .path()
                .ends_with("/ui/merges"),
            "back on the queue page"
        );
        c.goto(&format!("{url}/ui/merges")).await.unwrap();
        let recent = text(&c, "#recent tr[data-change='agent/a']").await;
        assert!(recent.contains("merged"), "{recent}");
        c.close().await.unwrap();
    });
    let (_, holds) = http("GET", &format!("{url}/api/v1/holds"), Some(&ada), None);
    assert_eq!(holds, json!([]), "released by ada");
}

fn entry_state_reason(recent: &[Value], change: &str) -> (String, String) {
    recent
        .iter()
        .find(|e| e["change_ref"] == change)
        .map(|e| {
            (
                e["state"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .unwrap_or_default()
}

/// A queue that lands through GitHub's API (the fake GitHub: its REST API as documented,
/// over the bare repository standing in for GitHub's git): branch protection refuses
/// any push to main, so the result goes to a private ref and main is fast-forwarded by
/// `PATCH /repos/{repo}/git/refs/heads/main` with `force: false`. Another merge on
/// GitHub moves main first: the fast-forward is refused, and the queue rebuilds. No
/// local test command: the queue waits for the required check `ci/test` on each result
/// (pushed to a `lockgate-queue/` branch for it), which fails for the change adding
/// docs/FAIL.md.
#[test]
fn the_queue_lands_through_the_github_api() {
    let w = World::new();
    let hook = w.origin.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do\n  if [ \"$ref\" = refs/heads/main ]; then echo \"main is protected\" >&2; exit 1; fi\ndone\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .unwrap();
    let a = w.agent_change("agent/a", "docs/a.md", "# A\n");
    w.r.git(&["push", "-q", "origin", "agent/a:refs/pull/7/head"]);
    w.agent_change("agent/f", "docs/FAIL.md", "# fails the tests\n");
    w.r.git(&["push", "-q", "origin", "agent/f:refs/pull/8/head"]);

    let origin = w.origin.clone();
    let patches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = patches.clone();
    let polled = std::sync::Mutex::new(std::collections::HashMap::<String, u32>::new());
    let github = FakeHttp::new(move |req| {
        if req.header("authorization") != Some("Bearer gh-token") {
            return (
                401,
                "application/json",
                json!({"message": "Bad credentials"}).to_string(),
            );
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("PATCH", "/repos/acme/app/git/refs/heads/main") => {
                let body = req.json();
                assert_eq!(body["force"], false, "never a forced update");
                let sha = body["sha"].as_str().unwrap().to_string();
                if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    // Another pull request merges on GitHub first.
                    let tree = git_in(&origin, &["rev-parse", "main^{tree}"]);
                    let other = git_in_env(
                        &origin,
                        &[
                            "commit-tree",
                            &tree,
                            "-p",
                            "main",
                            "-m",
                            "merged elsewhere on GitHub",
                        ],
                    );
                    git_in(&origin, &["update-ref", "refs/heads/main", &other]);
                }
                let current = git_in(&origin, &["rev-parse", "main"]);
                let ff = std::process::Command::new("git")
                    .current_dir(&origin)
                    .args(["merge-base", "--is-ancestor", &current, &sha])
                    .status()
                    .unwrap()
                    .success();
                if !ff {
                    return (
                        422,
                        "application/json",
                        json!({"message": "Update is not a fast forward"}).to_string(),
                    );
                }
                git_in(&origin, &["update-ref", "refs/heads/main", &sha, &current]);
                (
                    200,
                    "application/json",
                    json!({"ref": "refs/heads/main", "object": {"sha": sha, "type": "commit"}})
                        .to_string(),
                )
            }
            ("GET", path) if path.starts_with("/repos/acme/app/commits/") => {
                // The result is on a branch of the queue's while its checks run.
                let sha = path.split('/').nth(5).unwrap().to_string();
                let branches = git_in(
                    &origin,
                    &[
                        "for-each-ref",
                        "--points-at",
                        &sha,
                        "refs/heads/lockgate-queue/",
                    ],
                );
                assert!(!branches.is_empty(), "{sha} is on a lockgate-queue branch");
                if path.ends_with("/status") {
                    return (
                        200,
                        "application/json",
                        json!({"state": "pending", "statuses": []}).to_string(),
                    );
                }
                let fails = std::process::Command::new("git")
                    .current_dir(&origin)
                    .args(["cat-file", "-e", &format!("{sha}:docs/FAIL.md")])
                    .status()
                    .unwrap()
                    .success();
                let mut polls = polled.lock().unwrap();
                let n = polls.entry(sha).or_insert(0);
                *n += 1;
                let run = match (*n, fails) {
                    (1, _) => {
                        json!({"name": "ci/test", "status": "in_progress", "conclusion": null})
                    }
                    (_, true) => {
                        json!({"name": "ci/test", "status": "completed", "conclusion": "failure"})
                    }
                    (_, false) => {
                        json!({"name": "ci/test", "status": "completed", "conclusion": "success"})
                    }
                };
                (
                    200,
                    "application/json",
                    json!({"total_count": 1, "check_runs": [run]}).to_string(),
                )
            }
            ("POST", "/repos/acme/app/issues/7/comments" | "/repos/acme/app/issues/8/comments") => {
                (201, "application/json", json!({"id": 1}).to_string())
            }
            ("PATCH", "/repos/acme/app/pulls/7") => (
                200,
                "application/json",
                json!({"number": 7, "state": "closed"}).to_string(),
            ),
            _ => (
                404,
                "application/json",
                json!({"message": "Not Found"}).to_string(),
            ),
        }
    });
    let token_file = w.scratch.path().join("gh.token");
    std::fs::write(&token_file, "gh-token\n").unwrap();
    let notices = FakeHttp::ok();
    let config = w.config(
        &notices.url,
        &format!(
            "test = []\nrequired_checks = [\"ci/test\"]\nchecks_poll = \"100ms\"\n\
             github = \"acme/app\"\n\n[github]\napi_url = \"{}\"\ntoken_file = \"{}\"\n",
            github.url,
            token_file.display()
        ),
    );
    let db = w.sqlite();
    let (ci, _, ada) = tokens(&w, &config, &db);
    let server = serve(&w, &config, &db, &[]);
    let url = server.url().to_string();
    w.r.checkout("agent/a");
    let decision = w.record(&url, &ci, "pr/7");
    assert_eq!(decision["verdict"], "auto_merge");
    w.r.checkout("agent/f");
    w.record(&url, &ci, "pr/8");

    let recent = wait_for(&url, &ada, "pr/7 and pr/8 to finish", |r| {
        is_final(r, "pr/7") && is_final(r, "pr/8")
    });
    assert_eq!(entry(&recent, "pr/8")["state"], "ejected");
    let e = entry(&recent, "pr/7");
    assert_eq!(e["state"], "merged", "{e:#}");
    assert_eq!(
        e["attempts"], 2,
        "refused once (main moved on GitHub), rebuilt: {e:#}"
    );
    let landed = e["result_sha"].as_str().unwrap();
    assert_eq!(w.origin_git(&["rev-parse", "main"]), landed);
    assert_eq!(
        w.origin_git(&["log", "--format=%s", "main"])
            .lines()
            .collect::<Vec<_>>(),
        [
            format!("Merge pr/7 ({})", &a[..12]),
            "merged elsewhere on GitHub".to_string(),
            "init".to_string()
        ]
    );
    assert_eq!(
        w.origin_git(&["for-each-ref", "refs/lockgate", "refs/heads/lockgate-queue"]),
        "",
        "private refs and check branches removed"
    );
    let calls = github.wait_for(5, 10);
    let told = calls
        .iter()
        .find(|c| c.path == "/repos/acme/app/issues/8/comments")
        .expect("the ejected pull request is told");
    let said = told.json()["body"].as_str().unwrap().to_string();
    assert!(
        said.contains("a required check failed on the result: ci/test: failure"),
        "{said}"
    );
    let comment = calls
        .iter()
        .find(|c| c.path == "/repos/acme/app/issues/7/comments")
        .expect("the pull request is told");
    assert!(comment.json()["body"].as_str().unwrap().contains(landed));
    let close = calls
        .iter()
        .find(|c| c.path == "/repos/acme/app/pulls/7")
        .expect("a squashed pull request is closed");
    assert_eq!(close.json()["state"], "closed");
}

fn git_in_env(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Other")
        .env("GIT_AUTHOR_EMAIL", "other@example.com")
        .env("GIT_COMMITTER_NAME", "GitHub")
        .env("GIT_COMMITTER_EMAIL", "noreply@github.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Batches of three: four changes wait behind a hold, and b fails the tests. The batch
/// [a, b, c] fails; bisecting tests [a, b] (fails), then a alone (passes): a lands, b
/// is ejected, c goes back to be rebuilt. The next batch [c, d] passes and lands with
/// one push, tested once — on exactly the commit that landed.
#[test]
fn batches_are_tested_together_and_bisected_on_failure() {
    let w = World::new();
    let notices = FakeHttp::ok();
    let config = w.config(&notices.url, "batch = 3\n");
    let db = w.sqlite();
    let (ci, admin, ada) = tokens(&w, &config, &db);
    let changes = [
        ("agent/a", "docs/a.md"),
        ("agent/b", "docs/FAIL.md"),
        ("agent/c", "docs/c.md"),
        ("agent/d", "docs/d.md"),
    ];
    for (name, path) in changes {
        w.agent_change(name, path, "# page\n");
    }
    let server = serve(&w, &config, &db, &[]);
    let url = server.url().to_string();
    let hold = place_hold(
        &url,
        &admin,
        json!({"scope": "repo", "target": REPO, "reason": "fill the queue"}),
    );
    for (name, _) in changes {
        w.r.checkout(name);
        w.record(&url, &ci, name);
    }
    release(&url, &admin, &hold);
    let recent = wait_for(&url, &ada, "all four to finish", |r| {
        changes.iter().all(|(c, _)| is_final(r, c))
    });
    let (a, b, c, d) = (
        entry(&recent, "agent/a"),
        entry(&recent, "agent/b"),
        entry(&recent, "agent/c"),
        entry(&recent, "agent/d"),
    );
    assert_eq!(
        (&a["state"], &a["attempts"]),
        (&json!("merged"), &json!(1)),
        "{a:#}"
    );
    assert_eq!(b["state"], "ejected");
    let why = b["reason"].as_str().unwrap();
    assert!(why.contains("bisecting a batch of 3"), "{why}");
    assert!(why.contains("docs/FAIL.md must not exist"), "{why}");
    assert_eq!(
        (&c["state"], &c["attempts"]),
        (&json!("merged"), &json!(2)),
        "rebuilt without b: {c:#}"
    );
    assert_eq!(
        (&d["state"], &d["attempts"]),
        (&json!("merged"), &json!(1)),
        "{d:#}"
    );
    let sha = |e: &Value, k: &str| e[k].as_str().unwrap().to_string();
    assert_eq!(sha(c, "target_sha"), sha(a, "result_sha"), "c built on a");
    assert_eq!(sha(d, "target_sha"), sha(c, "result_sha"), "d built on c");

    let runs = std::fs::read_to_string(w.scratch.path().join("runs.log")).unwrap();
    let runs: Vec<&str> = runs.lines().collect();
    assert_eq!(runs.len(), 4, "{runs:#?}");
    assert!(runs[0].starts_with("agent/a agent/b agent/c "), "{runs:#?}");
    assert!(
        runs[1].starts_with("agent/a agent/b "),
        "bisecting: {runs:#?}"
    );
    let (ra, rd) = (sha(a, "result_sha"), sha(d, "result_sha"));
    assert_eq!(
        runs[2],
        format!("agent/a {ra} {ra}"),
        "bisecting tests a alone"
    );
    assert_eq!(
        runs[3],
        format!("agent/c agent/d {rd} {rd}"),
        "one run for c and d"
    );
    assert_eq!(w.origin_git(&["rev-parse", "main"]), rd);
    let subjects = w.origin_git(&["log", "--format=%s", "main"]);
    let subjects: Vec<&str> = subjects
        .lines()
        .map(|l| l.split(" (").next().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["Merge agent/d", "Merge agent/c", "Merge agent/a", "init"]
    );
}

/// A batch of two lands with one push; the process dies right after it, before either
/// merge is recorded. On restart both are reconciled as merged — once each, no push.
#[test]
fn a_crash_after_a_batch_push_records_every_entry_once() {
    let w = World::new();
    let db = w.sqlite();
    let notices = FakeHttp::ok();
    let (config, ci, admin, ada) = w.prepare(&notices.url, "batch = 2\n", &db);
    w.agent_change("agent/a", "docs/a.md", "# A\n");
    w.agent_change("agent/b", "docs/b.md", "# B\n");

    let server = serve(
        &w,
        &config,
        &db,
        &[("LOCKGATE_QUEUE_CRASH_AT", "after-push")],
    );
    let url = server.url().to_string();
    let hold = place_hold(
        &url,
        &admin,
        json!({"scope": "global", "reason": "fill the queue"}),
    );
    for name in ["agent/a", "agent/b"] {
        w.r.checkout(name);
        w.record(&url, &ci, name);
    }
    release(&url, &admin, &hold);
    wait_dead(&url);
    drop(server);
    let landed = w.origin_git(&["rev-parse", "main"]);
    assert_eq!(
        w.origin_git(&["rev-list", "--count", "main"]),
        "3",
        "both landed in the one push before the crash"
    );

    let server = serve(&w, &config, &db, &[]);
    let url = server.url().to_string();
    let recent = wait_for(&url, &ada, "both reconciled", |r| {
        is_final(r, "agent/a") && is_final(r, "agent/b")
    });
    let (a, b) = (entry(&recent, "agent/a"), entry(&recent, "agent/b"));
    assert_eq!(
        (&a["state"], &b["state"]),
        (&json!("merged"), &json!("merged"))
    );
    assert_eq!(b["result_sha"], landed.as_str());
    assert_eq!(a["landing_sha"], landed.as_str(), "a landed with b's push");
    assert_eq!(
        w.origin_git(&["rev-parse", "main"]),
        landed,
        "no second push"
    );
    for e in [a, b] {
        let sha = e["result_sha"].as_str().unwrap();
        let (_, commit) = http(
            "GET",
            &format!("{url}/api/v1/commit?repo={}&sha={sha}", urlencode(REPO)),
            Some(&ada),
            None,
        );
        assert_eq!(commit["merges"].as_array().unwrap().len(), 1, "{commit:#}");
    }
}

/// Places a hold as an admin; the hold.
fn place_hold(url: &str, admin: &str, body: Value) -> Value {
    let (status, hold) = http(
        "POST",
        &format!("{url}/api/v1/holds"),
        Some(admin),
        Some(body),
    );
    assert_eq!(status, 200, "{hold}");
    hold
}

/// Releases a hold as `token`'s person.
fn release(url: &str, token: &str, hold: &Value) {
    let (status, answer) = http(
        "POST",
        &format!("{url}/api/v1/holds/release"),
        Some(token),
        Some(json!({"id": hold["id"]})),
    );
    assert_eq!(status, 200, "{answer}");
}

/// The change gets a new head while its result is being tested: the entry does not
/// land (the head that would land is no longer the change), it is ejected, saying so.
#[test]
fn a_change_that_moves_on_during_its_tests_does_not_land() {
    let w = World::new();
    let db = w.sqlite();
    let notices = FakeHttp::ok();
    let (config, ci, _, ada) = w.prepare(&notices.url, "", &db);
    w.agent_change("agent/a", "docs/a.md", "# A\n");
    let main_before = w.origin_git(&["rev-parse", "main"]);
    let server = serve(&w, &config, &db, &[]);
    let url = server.url().to_string();
    // While a's result is tested, the agent pushes another commit and CI records it.
    std::fs::write(
        w.scratch.path().join("during-test.sh"),
        format!(
            "set -e\ncd '{repo}'\necho more >> docs/a.md\n\
             git -c user.name=Claude -c user.email=noreply@anthropic.com commit -qam 'more'\n\
             git push -q origin agent/a\n\
             '{bin}' check --base main --format json --server '{url}' --server-token-file '{ci}' \
             --server-repo {REPO} --change agent/a > /dev/null || true\n",
            repo = w.r.path().display(),
            bin = env!("CARGO_BIN_EXE_lockgate"),
            ci = ci.display(),
        ),
    )
    .unwrap();
    w.r.checkout("agent/a");
    w.record(&url, &ci, "agent/a");
    let recent = wait_for(&url, &ada, "the first head to finish", |r| {
        r.iter()
            .any(|e| e["change_ref"] == "agent/a" && e["state"] == "ejected")
    });
    let log = std::fs::read_to_string(w.scratch.path().join("during-test.log")).unwrap_or_default();
    let first = recent
        .iter()
        .find(|e| e["change_ref"] == "agent/a" && e["state"] == "ejected")
        .unwrap();
    let why = first["reason"].as_str().unwrap();
    assert!(why.contains("newer head"), "{why}\n{log}");
    assert_eq!(
        w.origin_git(&["rev-parse", "main"]),
        main_before,
        "nothing landed"
    );
}

/// Approvals stay bound: a change that entered with Ada's approval, where Ada asks for
/// changes while its result is tested, does not land.
#[test]
fn a_withdrawn_approval_stops_the_change_before_it_lands() {
    let w = World::new();
    let db = w.sqlite();
    let notices = FakeHttp::ok();
    let (config, ci, _, ada) = w.prepare(&notices.url, "", &db);
    let d = w.agent_change("agent/d", "src/lib.rs", "pub fn f() {}\npub fn g() {}\n");
    let main_before = w.origin_git(&["rev-parse", "main"]);
    let server = serve(&w, &config, &db, &[]);
    let url = server.url().to_string();
    std::fs::write(
        w.scratch.path().join("during-test.sh"),
        format!(
            "curl -fsS -X POST -H 'Authorization: Bearer {ada}' -H 'Content-Type: application/json' \
             --data '{{\"repo\":\"{REPO}\",\"change_ref\":\"agent/d\",\"head_sha\":\"{d}\",\"state\":\"changes_requested\"}}' \
             '{url}/api/v1/approvals'\n"
        ),
    )
    .unwrap();
    w.r.checkout("agent/d");
    let decision = w.record(&url, &ci, "agent/d");
    assert_eq!(decision["verdict"], "needs_approval");
    approve(&url, &ada, "agent/d", &d);
    let recent = wait_for(&url, &ada, "d to finish", |r| is_final(r, "agent/d"));
    let log = std::fs::read_to_string(w.scratch.path().join("during-test.log")).unwrap_or_default();
    let e = entry(&recent, "agent/d");
    assert_eq!(e["state"], "ejected", "{e:#}\n{log}");
    let why = e["reason"].as_str().unwrap();
    assert!(why.contains("no longer satisfy"), "{why}");
    assert_eq!(
        w.origin_git(&["rev-parse", "main"]),
        main_before,
        "nothing landed"
    );
}

/// Approves a change's head as `token`'s person; the change's state.
fn approve(url: &str, token: &str, change: &str, head: &str) -> Value {
    let (status, state) = http(
        "POST",
        &format!("{url}/api/v1/approvals"),
        Some(token),
        Some(json!({"repo": REPO, "change_ref": change, "head_sha": head, "state": "approved"})),
    );
    assert_eq!(status, 200, "{state}");
    state
}
