//! The merge queue's overhead per entry on a 1,000-commit repository (target: under
//! 200 ms, the test command excluded): `lockgate serve` with a `[merge]` queue over a
//! bare repository on disk, N attested agent changes recorded while a global hold
//! stops the queue, then the hold released and the queue timed until all N landed.
//! Each entry costs the whole path: the ledger checks, fetching target, notes and
//! change, building the squash, the gate's full `lockgate check` of the result,
//! recording `pushing`, the compare-and-swap push, and recording the merge.
//!
//! Side by side, the floor: the git commands alone that land one change the same way
//! (fetch the target and the change, `merge-tree`, `commit-tree`, `push
//! --force-with-lease`), on a workspace of its own, in the same run.

use crate::loadgen::{Process, start_printing_url};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const COMMITS: usize = 1000;
const FILES: usize = 200;

fn git(dir: &Path, args: &[&str]) -> String {
    git_env(dir, args, &[])
}

fn git_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn lockgate(bin: &Path, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run lockgate");
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 3),
        "lockgate {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository of `COMMITS` commits over `FILES` files (git fast-import), whose first
/// commit holds the trust root, CODEOWNERS and docs.
fn build_history(work: &Path, trust_toml: &str) {
    git(work, &["init", "-q", "-b", "main"]);
    let mut stream = String::new();
    let blob = |text: &str| format!("data {}\n{text}\n", text.len() + 1);
    for i in 0..COMMITS {
        let t = 1_700_000_000 + i as u64 * 60;
        let msg = format!("commit {i}");
        stream.push_str(&format!(
            "commit refs/heads/main\nmark :{}\nauthor Dev <dev@example.org> {t} +0000\ncommitter Dev <dev@example.org> {t} +0000\n{}",
            i + 1,
            blob(&msg)
        ));
        if i == 0 {
            for f in 0..FILES {
                stream.push_str(&format!(
                    "M 100644 inline src/m{f}.rs\n{}",
                    blob(&format!("pub fn f{f}() -> u32 {{ {f} }}"))
                ));
            }
            stream.push_str(&format!(
                "M 100644 inline .lockgate/trust.toml\n{}",
                blob(trust_toml)
            ));
            stream.push_str(&format!(
                "M 100644 inline .github/CODEOWNERS\n{}",
                blob("* @org/maintainers\n/docs/ @org/docs")
            ));
            stream.push_str(&format!(
                "M 100644 inline docs/guide.md\n{}",
                blob("# Guide")
            ));
        } else {
            let f = i % FILES;
            stream.push_str(&format!(
                "M 100644 inline src/m{f}.rs\n{}",
                blob(&format!("pub fn f{f}() -> u32 {{ {i} }}"))
            ));
        }
        stream.push('\n');
    }
    let mut child = Command::new("git")
        .current_dir(work)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    git(work, &["checkout", "-q", "-f", "main"]);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn get_json(url: &str, token: &str) -> serde_json::Value {
    let mut r = ureq::get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .expect("GET");
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

fn post_json(url: &str, token: &str, body: serde_json::Value) -> serde_json::Value {
    let mut r = ureq::post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(&body).unwrap().as_slice())
        .expect("POST");
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

pub fn run(bin: &Path, root: &Path, entries: usize) {
    std::fs::create_dir_all(root).unwrap();
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let key = root.join("agent");
    lockgate(bin, root, &["keygen", "--out", key.to_str().unwrap()]);
    let public = std::fs::read_to_string(root.join("agent.pub")).unwrap();
    let trust =
        format!("[[key]]\nname = \"agents\"\nagents = [\"*\"]\npublic_key = '''\n{public}'''");
    build_history(&work, &trust);
    let origin = root.join("origin.git");
    git(root, &["init", "-q", "--bare", origin.to_str().unwrap()]);
    git(
        &work,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    git(&work, &["push", "-q", "origin", "main"]);

    // N attested agent changes, each to its own docs file.
    let claude = [
        ("GIT_AUTHOR_NAME", "Claude"),
        ("GIT_AUTHOR_EMAIL", "noreply@anthropic.com"),
        ("GIT_COMMITTER_NAME", "Claude"),
        ("GIT_COMMITTER_EMAIL", "noreply@anthropic.com"),
    ];
    let key_file = root.join("agent.key");
    for i in 0..entries {
        git(
            &work,
            &["checkout", "-q", "-b", &format!("agent/{i}"), "main"],
        );
        std::fs::write(
            work.join(format!("docs/page{i}.md")),
            format!("# Page {i}\n"),
        )
        .unwrap();
        git(&work, &["add", "-A"]);
        git_env(
            &work,
            &["commit", "-q", "-m", &format!("docs: page {i}")],
            &claude,
        );
        lockgate(
            bin,
            &work,
            &[
                "attest",
                "--key",
                key_file.to_str().unwrap(),
                "--agent",
                "claude-code",
                "--model",
                "claude-sonnet-4-5",
                "--prompt",
                "write a page",
                "--base",
                "main",
                "--head",
                "HEAD",
            ],
        );
        git(&work, &["push", "-q", "origin", &format!("agent/{i}")]);
    }
    git(
        &work,
        &["push", "-q", "-f", "origin", "refs/notes/lockgate"],
    );
    git(&work, &["checkout", "-q", "main"]);

    // The server with the queue (no test command: its overhead is what is measured).
    let config = root.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\ndir = \"{log}\"\n\n[[person]]\nid = \"ada\"\nemails = [\"ada@example.org\"]\n\n\
             [merge]\nworkdir = \"{ws}\"\ninterval = \"50ms\"\nlease = \"5s\"\n\n\
             [[merge.repo]]\nname = \"bench/app\"\nremote = \"{origin}\"\nmethod = \"squash\"\nmin_trust = 0\nrequire_logged = false\n",
            log = root.join("log").display(),
            ws = root.join("merge").display(),
            origin = origin.display()
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", root.join("ledger.db").display());
    let token = |subject: &str, role: &str| {
        lockgate(
            bin,
            root,
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
                &db,
            ],
        )
    };
    let (ci, admin) = (token("ci", "ci"), token("ada", "admin"));
    let ci_file = root.join("ci.token");
    std::fs::write(&ci_file, &ci).unwrap();
    let server: Process = start_printing_url(
        Command::new(bin)
            .current_dir(root)
            .args(["serve", "--config", config.to_str().unwrap()])
            .args(["--database-url", &db, "--listen", "127.0.0.1:0"])
            .env("LOCKGATE_LOG_LEVEL", "error"),
    );
    let url = server.url.clone();
    let hold = post_json(
        &format!("{url}/api/v1/holds"),
        &admin,
        serde_json::json!({"scope": "global", "reason": "benchmark: fill the queue first"}),
    );
    for i in 0..entries {
        git(&work, &["checkout", "-q", &format!("agent/{i}")]);
        lockgate(
            bin,
            &work,
            &[
                "check",
                "--base",
                "main",
                "--format",
                "json",
                "--server",
                &url,
                "--server-token-file",
                ci_file.to_str().unwrap(),
                "--server-repo",
                "bench/app",
                "--change",
                &format!("agent/{i}"),
            ],
        );
    }
    let queued = get_json(&format!("{url}/api/v1/queue"), &admin);
    let waiting = queued["queues"][0]["entries"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(waiting, entries, "every change entered: {queued}");

    let start = Instant::now();
    post_json(
        &format!("{url}/api/v1/holds/release"),
        &admin,
        serde_json::json!({"id": hold["id"]}),
    );
    let deadline = start + Duration::from_secs(600);
    let recent = loop {
        let answer = get_json(&format!("{url}/api/v1/queue?limit=1000"), &admin);
        let recent = answer["recent"].as_array().cloned().unwrap_or_default();
        let done = recent
            .iter()
            .filter(|e| e["state"] == "merged" || e["state"] == "ejected")
            .count();
        if done == entries {
            break recent;
        }
        assert!(
            Instant::now() < deadline,
            "the queue did not finish: {answer}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let total = start.elapsed();
    let merged: Vec<i64> = {
        let mut t: Vec<i64> = recent
            .iter()
            .filter(|e| e["state"] == "merged")
            .map(|e| e["updated_ms"].as_i64().unwrap())
            .collect();
        t.sort();
        t
    };
    assert_eq!(merged.len(), entries, "all landed: {recent:#?}");
    let gaps: Vec<Duration> = merged
        .windows(2)
        .map(|w| Duration::from_millis((w[1] - w[0]).max(0) as u64))
        .collect();
    drop(server);

    // The floor: git alone landing the same changes the same way, one by one.
    let floor_ws = root.join("floor.git");
    git(root, &["init", "-q", "--bare", floor_ws.to_str().unwrap()]);
    git(
        &floor_ws,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    git(
        &floor_ws,
        &["fetch", "-q", "origin", "main:refs/heads/floor-base"],
    );
    git(
        &floor_ws,
        &[
            "push",
            "-q",
            "origin",
            "refs/heads/floor-base:refs/heads/floor",
        ],
    );
    let mut floor = Vec::new();
    for i in 0..entries {
        let t = Instant::now();
        git(
            &floor_ws,
            &[
                "fetch",
                "-q",
                "--force",
                "origin",
                "refs/heads/floor:refs/heads/floor",
            ],
        );
        git(
            &floor_ws,
            &[
                "fetch",
                "-q",
                "--force",
                "origin",
                &format!("refs/heads/agent/{i}:refs/heads/c{i}"),
            ],
        );
        let tip = git(&floor_ws, &["rev-parse", "refs/heads/floor"]);
        let tree = git(
            &floor_ws,
            &[
                "merge-tree",
                "--write-tree",
                &tip,
                &format!("refs/heads/c{i}"),
            ],
        );
        let tree = tree.lines().next().unwrap().to_string();
        let commit = git_env(
            &floor_ws,
            &["commit-tree", &tree, "-p", &tip, "-m", "floor"],
            &[
                ("GIT_AUTHOR_NAME", "f"),
                ("GIT_AUTHOR_EMAIL", "f@f"),
                ("GIT_COMMITTER_NAME", "f"),
                ("GIT_COMMITTER_EMAIL", "f@f"),
            ],
        );
        git(
            &floor_ws,
            &[
                "push",
                "-q",
                &format!("--force-with-lease=refs/heads/floor:{tip}"),
                "origin",
                &format!("{commit}:refs/heads/floor"),
            ],
        );
        floor.push(t.elapsed());
    }

    let per_entry = total / entries as u32;
    let gap = median(gaps);
    let floor = median(floor);
    println!(
        "merge queue: {entries} attested agent changes on a {COMMITS}-commit, {FILES}-file repository (squash, no test command, SQLite ledger)"
    );
    println!(
        "  queue, all {entries} entries                  {:>8.1} ms  ({:.1} ms per entry)",
        ms(total),
        ms(per_entry)
    );
    println!(
        "  queue, median between two merges       {:>8.1} ms",
        ms(gap)
    );
    println!(
        "  floor: git fetch+merge-tree+commit-tree+push, median {:>6.1} ms",
        ms(floor)
    );
    println!(
        "  target: < 200 ms per entry → {} ({:.1} ms median, {:.2}× the target); ratio to the git floor: {:.1}×",
        if gap < Duration::from_millis(200) {
            "met"
        } else {
            "NOT met"
        },
        ms(gap),
        ms(gap) / 200.0,
        ms(gap) / ms(floor)
    );
}
