//! `lockgate log` end to end with the real binary: a log directory, the HTTP server on
//! loopback, proofs checked offline, crashes in the middle of appends, and a monitor
//! shown forks, rollbacks and foreign checkpoints.

use lockgate_testkit::{Background, Run, run, spawn};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_lockgate");

fn lockgate(dir: &Path, args: &[&str]) -> Run {
    run(BIN, dir, args, &[])
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let r = lockgate(dir, args);
    assert_eq!(
        r.code,
        Some(0),
        "lockgate {args:?}\n{}{}",
        r.stdout,
        r.stderr
    );
    r.stdout
}

/// A new log in `<tmp>/<name>` with `n` entries `entry-<i>`; returns its directory.
fn log_with(tmp: &Path, name: &str, origin: &str, n: usize) -> PathBuf {
    ok(tmp, &["log", "init", name, "--origin", origin]);
    if n > 0 {
        append_entries(tmp, name, &format!("{name}-e"), 0..n);
    }
    tmp.join(name)
}

/// Writes entries `<prefix><i>` as files and appends them in one batch.
fn append_entries(
    tmp: &Path,
    log: &str,
    prefix: &str,
    range: std::ops::Range<usize>,
) -> Vec<Value> {
    let files = write_entries(tmp, prefix, range);
    let mut args = vec!["log", "append", log, "--json"];
    args.extend(files.iter().map(|s| s.as_str()));
    ok(tmp, &args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_entries(tmp: &Path, prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| {
            let name = format!("{prefix}{i}");
            std::fs::write(tmp.join(&name), format!("entry {prefix} {i}\n")).unwrap();
            name
        })
        .collect()
}

fn size_of(tmp: &Path, log: &str) -> u64 {
    let note = ok(tmp, &["log", "get", log, "--checkpoint"]);
    note.lines().nth(1).unwrap().parse().unwrap()
}

#[test]
fn append_get_prove_and_verify_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = log_with(t, "log", "example.com/test-log", 0);
    let init_again = lockgate(t, &["log", "init", "log", "--origin", "example.com/x"]);
    assert_eq!(init_again.code, Some(1));
    assert!(
        init_again.stderr.contains("not empty"),
        "{}",
        init_again.stderr
    );

    let appended = append_entries(t, "log", "a", 0..300);
    assert_eq!(appended.len(), 300);
    assert_eq!(appended[299]["inclusionProof"]["logIndex"], "299");
    assert_eq!(appended[0]["inclusionProof"]["treeSize"], "300");
    assert_eq!(
        ok(t, &["log", "get", "log", "--index", "257"]),
        "entry a 257\n"
    );
    let missing = lockgate(t, &["log", "get", "log", "--index", "300"]);
    assert_eq!(missing.code, Some(1));

    // An inclusion proof checks offline with the key alone, for that entry only.
    let proof = ok(t, &["log", "prove", "log", "--index", "257"]);
    std::fs::write(t.join("proof.json"), &proof).unwrap();
    let key = dir.join("log.pub");
    let key = key.to_str().unwrap();
    let good = ok(
        t,
        &[
            "log",
            "verify",
            "--key",
            key,
            "--proof",
            "proof.json",
            "--entry",
            "a257",
        ],
    );
    assert!(good.contains("entry 257"), "{good}");
    let wrong = lockgate(
        t,
        &[
            "log",
            "verify",
            "--key",
            key,
            "--proof",
            "proof.json",
            "--entry",
            "a256",
        ],
    );
    assert_eq!(wrong.code, Some(4), "{}", wrong.stdout);
    let mut tampered: Value = serde_json::from_str(&proof).unwrap();
    tampered["logIndex"] = "256".into();
    std::fs::write(t.join("tampered.json"), tampered.to_string()).unwrap();
    let r = lockgate(
        t,
        &[
            "log",
            "verify",
            "--key",
            key,
            "--proof",
            "tampered.json",
            "--entry",
            "a257",
        ],
    );
    assert_eq!(r.code, Some(4));
    // Another log's key (same origin) refuses the checkpoint.
    log_with(t, "other", "example.com/test-log", 0);
    let other_key = t.join("other/log.pub");
    let r = lockgate(
        t,
        &[
            "log",
            "verify",
            "--key",
            other_key.to_str().unwrap(),
            "--proof",
            "proof.json",
            "--entry",
            "a257",
        ],
    );
    assert_eq!(r.code, Some(4));
    assert!(r.stderr.contains("checkpoint"), "{}", r.stderr);

    // Consistency from an old checkpoint to the new one.
    std::fs::write(
        t.join("old-checkpoint"),
        ok(t, &["log", "get", "log", "--checkpoint"]),
    )
    .unwrap();
    append_entries(t, "log", "b", 0..70);
    let consistency = ok(t, &["log", "prove", "log", "--from", "old-checkpoint"]);
    std::fs::write(t.join("consistency.json"), &consistency).unwrap();
    let out = ok(
        t,
        &[
            "log",
            "verify",
            "--key",
            key,
            "--proof",
            "consistency.json",
            "--json",
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert!(
        v["result"]
            .as_str()
            .unwrap()
            .contains("370 entries extends the tree of 300")
    );
    let mut forged: Value = serde_json::from_str(&consistency).unwrap();
    forged["hashes"][0] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    std::fs::write(t.join("forged.json"), forged.to_string()).unwrap();
    let r = lockgate(
        t,
        &["log", "verify", "--key", key, "--proof", "forged.json"],
    );
    assert_eq!(r.code, Some(4));

    // The whole log audits; a flipped byte in any published file is found.
    assert!(ok(t, &["log", "verify", "log"]).contains("370 entries"));
    let bundle = dir.join("public/tile/entries/000");
    let mut bytes = std::fs::read(&bundle).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&bundle, bytes).unwrap();
    let r = lockgate(t, &["log", "verify", "log"]);
    assert_eq!(r.code, Some(4), "{}{}", r.stdout, r.stderr);

    // Limits and usage errors are explained.
    std::fs::write(t.join("huge"), vec![b'x'; 70_000]).unwrap();
    let r = lockgate(t, &["log", "append", "other", "huge"]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("entry limit"), "{}", r.stderr);
    let r = lockgate(t, &["log", "get", "http://127.0.0.1:9/", "--checkpoint"]);
    assert!(r.stderr.contains("--key"), "{}", r.stderr);
}

/// Crash the writer after 0–5 file writes of batches, some spanning tiles (a batch
/// writes entry bundles, tiles at one or two levels, then the checkpoint): the log must reopen at the old or the new size, audit clean, and accept
/// the next batch — and the search index must catch up.
#[test]
fn a_writer_killed_mid_append_leaves_a_log_that_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    log_with(t, "log", "example.com/crash", 250);
    let mut expected = 250u64;
    let mut crashed = 0;
    for round in 0..12 {
        let crash_after = round % 6;
        let files = write_entries(t, &format!("r{round}-"), 0..40);
        let mut args = vec!["log", "append", "log"];
        args.extend(files.iter().map(|s| s.as_str()));
        let after = crash_after.to_string();
        let r = run(BIN, t, &args, &[("LOCKGATE_LOG_CRASH_AFTER", &after)]);
        let size = size_of(t, "log");
        // Every batch writes at least an entry bundle, a level-0 tile and the
        // checkpoint: the first three crash points always land inside it.
        if crash_after < 3 {
            assert_eq!(r.code, None, "round {round} did not crash: {}", r.stderr);
        }
        if r.code.is_none() {
            crashed += 1;
            // Killed: the checkpoint is the old one or, if the crash came after it
            // was written, the new one.
            assert!(
                size == expected || size == expected + 40,
                "round {round}: size {size}"
            );
        } else {
            assert_eq!(r.code, Some(0), "{}", r.stderr);
            assert_eq!(size, expected + 40);
        }
        expected = size;
        let audit = ok(t, &["log", "verify", "log"]);
        assert!(audit.contains(&format!("{size} entries")), "{audit}");
        // And the writer continues from there.
        append_entries(t, "log", &format!("after{round}-"), 0..3);
        expected += 3;
        ok(t, &["log", "verify", "log"]);
    }
    assert!(crashed >= 6, "only {crashed} rounds crashed");
    // Searching brings the index up to the checkpoint (like grep, no hit is exit 1).
    let none = lockgate(t, &["log", "search", "log", "--json", "--key", "none"]);
    assert_eq!(none.code, Some(1));
    assert!(none.stdout.is_empty());
    let index = std::fs::read_to_string(t.join("log/index.jsonl")).unwrap();
    assert_eq!(index.lines().count() as u64, expected);
}

/// `lockgate log serve` on a free loopback port, stopped when dropped.
fn serve(dir: &Path, log: &str, token_file: &str) -> Background {
    spawn(
        BIN,
        dir,
        &[
            "log",
            "serve",
            log,
            "--listen",
            "127.0.0.1:0",
            "--batch-interval-ms",
            "100",
            "--token-file",
            token_file,
        ],
        &[],
    )
}

#[test]
fn served_log_appends_with_a_token_and_a_monitor_catches_forks_and_rollbacks() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = log_with(t, "log", "example.com/served", 5);
    let key = dir.join("log.pub").to_str().unwrap().to_string();
    std::fs::write(t.join("token"), "correct-horse-battery-staple\n").unwrap();
    std::fs::write(t.join("bad-token"), "not-the-token-at-all\n").unwrap();
    let server = serve(t, "log", "token");
    let url = server.url();

    // The writer lock keeps local appends out while the server runs.
    let r = lockgate(t, &["log", "append", "log", "log/log.pub"]);
    assert!(r.stderr.contains("locked"), "{}", r.stderr);

    // Several clients at once; the server batches them and proves each.
    let files = write_entries(t, "c", 0..8);
    let children: Vec<Child> = files
        .iter()
        .map(|f| {
            Command::new(BIN)
                .current_dir(t)
                .args([
                    "log",
                    "append",
                    url,
                    f,
                    "--token-file",
                    "token",
                    "--key",
                    &key,
                    "--json",
                ])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut indexes: Vec<u64> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            v["inclusionProof"]["logIndex"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    indexes.sort();
    assert_eq!(indexes, (5..13).collect::<Vec<_>>());

    let r = lockgate(
        t,
        &[
            "log",
            "append",
            url,
            "c0",
            "--token-file",
            "bad-token",
            "--key",
            &key,
        ],
    );
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("401"), "{}", r.stderr);

    // Reads over HTTP: entries, proofs and a full audit, all checked with the key.
    assert_eq!(
        ok(t, &["log", "get", url, "--key", &key, "--index", "7"]),
        ok(t, &["log", "get", "log", "--index", "7"])
    );
    assert!(ok(t, &["log", "verify", url, "--key", &key]).contains("13 entries"));

    // The monitor: first sight, then consistent growth.
    let state = t.join("monitor.json");
    let state = state.to_str().unwrap();
    let mon = |log: &str| {
        lockgate(
            t,
            &[
                "log", "monitor", log, "--key", &key, "--state", state, "--json",
            ],
        )
    };
    let first: Value = serde_json::from_str(&mon(url).stdout).unwrap();
    assert_eq!(first["event"], "started");
    ok(
        t,
        &[
            "log",
            "append",
            url,
            "c0",
            "--token-file",
            "token",
            "--key",
            &key,
        ],
    );
    let next: Value = serde_json::from_str(&mon(url).stdout).unwrap();
    assert_eq!(next["event"], "consistent");
    assert_eq!(next["size"], 14);
    drop(server);

    // A fork: a copy of the log (same key) that rewrote history, then grew.
    let fork = t.join("fork");
    copy_dir(&dir, &fork);
    std::fs::remove_dir_all(fork.join("public")).unwrap();
    std::fs::remove_file(fork.join("index.jsonl")).unwrap();
    forge_log(&fork, &dir, 14, "forged");
    let r = mon("fork");
    assert_eq!(r.code, Some(4), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("fork"), "{}", r.stdout);
    forge_log(&fork, &dir, 30, "forged-more");
    let r = mon("fork");
    assert_eq!(r.code, Some(4), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("does not extend"), "{}", r.stdout);

    // A rollback: a copy of the log as it was at 5 entries.
    let old = t.join("old");
    copy_dir(&dir, &old);
    std::fs::remove_dir_all(old.join("public")).unwrap();
    forge_log(&old, &dir, 5, "e");
    let r = mon("old");
    assert_eq!(r.code, Some(4));
    assert!(r.stdout.contains("rollback"), "{}", r.stdout);

    // A checkpoint signed by someone else in the log's name.
    log_with(t, "stranger", "example.com/served", 3);
    let r = mon("stranger");
    assert_eq!(r.code, Some(4));
    assert!(r.stdout.contains("invalid checkpoint"), "{}", r.stdout);

    // None of that moved the monitor's state; the real log still checks out.
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    assert_eq!(saved["size"], 14);
    let again: Value = serde_json::from_str(&mon("log").stdout).unwrap();
    assert_eq!(again["event"], "unchanged");
}

/// Rebuilds `target/public` as a log of `n` entries `<prefix><i>` signed with
/// `source`'s key: what a log operator rewriting history would publish.
fn forge_log(target: &Path, source: &Path, n: usize, prefix: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let w = s.join("w");
    std::fs::create_dir(&w).unwrap();
    std::fs::copy(source.join("log.key"), w.join("log.key")).unwrap();
    std::fs::copy(source.join("log.pub"), w.join("log.pub")).unwrap();
    let skey = std::fs::read_to_string(w.join("log.key")).unwrap();
    let vkey = std::fs::read_to_string(w.join("log.pub")).unwrap();
    lockgate_log::log::Log::create(
        lockgate_log::storage::DirStorage::new(w.join("public")).unwrap(),
        lockgate_log::checkpoint::LogSigningKey::parse(&skey).unwrap(),
        lockgate_log::checkpoint::LogVerifyingKey::parse(&vkey).unwrap(),
    )
    .unwrap();
    if n > 0 {
        append_entries(s, "w", prefix, 0..n);
    }
    let _ = std::fs::remove_dir_all(target.join("public"));
    copy_dir(&w.join("public"), &target.join("public"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
