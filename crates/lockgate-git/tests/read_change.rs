//! Reads changes from real repositories built with the git CLI and compares with what
//! git itself reports.

use lockgate_core::change::{EntryKind, FileChange, FileStatus, Limits};
use lockgate_git::{GitError, Repo};
use lockgate_testkit::{CLAUDE, TestRepo};
use std::collections::BTreeMap;

fn read(repo: &TestRepo, base: &str, head: &str) -> lockgate_core::change::ChangeSet {
    Repo::discover(repo.path())
        .unwrap()
        .read_change(base, head, &Limits::default())
        .unwrap()
}

fn file<'a>(change: &'a lockgate_core::change::ChangeSet, path: &str) -> &'a FileChange {
    change
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| {
            panic!(
                "{path} not in {:?}",
                change.files.iter().map(|f| &f.path).collect::<Vec<_>>()
            )
        })
}

/// `git diff --numstat -M -C base...head` as path → (added, removed); binary = None.
fn numstat(repo: &TestRepo, base: &str, head: &str) -> BTreeMap<String, Option<(u32, u32)>> {
    let range = format!("{base}...{head}");
    repo.git(&["diff", "--numstat", "-M", "-C", "--no-renames", &range])
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, '\t');
            let a = parts.next().unwrap();
            let r = parts.next().unwrap();
            let p = parts.next().unwrap().to_string();
            let counts = if a == "-" {
                None
            } else {
                Some((a.parse().unwrap(), r.parse().unwrap()))
            };
            (p, counts)
        })
        .collect()
}

#[test]
fn statuses_line_counts_and_content_match_git() {
    let r = TestRepo::new();
    r.write("keep.txt", "one\ntwo\nthree\n");
    r.write("gone.txt", "bye\n");
    let long: String = (0..40)
        .map(|i| format!("line number {i} of a long file\n"))
        .collect();
    r.write("old/name.rs", &long);
    r.write("script.sh", "echo hi\n");
    r.write("link-target.txt", "x\n");
    r.write("becomes-link", "plain file\n");
    r.commit("base");
    r.branch("feature");
    r.write("keep.txt", "one\nTWO\nthree\nfour\n");
    std::fs::remove_file(r.file("gone.txt")).unwrap();
    std::fs::create_dir_all(r.file("new")).unwrap();
    r.git(&["mv", "old/name.rs", "new/name.rs"]);
    r.write("new/name.rs", &format!("{long}one more line\n"));
    r.write("added.md", "# Title\n\nbody\n");
    r.write_bytes("image.png", b"\x89PNG\r\n\x1a\n\0\0\0binary");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(r.file("script.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_file(r.file("becomes-link")).unwrap();
    std::os::unix::fs::symlink("link-target.txt", r.file("becomes-link")).unwrap();
    r.commit_as(CLAUDE, "agent work\n\nDetails here.\n\nAgent-Session: abc-123\nCo-authored-by: Ada <ada@example.com>");

    let c = read(&r, "main", "feature");
    assert_eq!(c.commits.len(), 1);
    assert_eq!(c.merge_base, r.git(&["rev-parse", "main"]));

    assert_eq!(file(&c, "keep.txt").status, FileStatus::Modified);
    assert_eq!(file(&c, "gone.txt").status, FileStatus::Deleted);
    assert_eq!(file(&c, "added.md").status, FileStatus::Added);
    let renamed = file(&c, "new/name.rs");
    assert_eq!(renamed.status, FileStatus::Renamed);
    assert_eq!(renamed.old_path.as_deref(), Some("old/name.rs"));
    assert!(
        renamed.similarity.unwrap() >= 90,
        "{:?}",
        renamed.similarity
    );
    assert_eq!(renamed.lines_added, 1);
    let script = file(&c, "script.sh");
    assert_eq!(script.status, FileStatus::ModeChanged);
    assert_eq!(script.new_kind, Some(EntryKind::Executable));
    let link = file(&c, "becomes-link");
    assert_eq!(link.status, FileStatus::TypeChanged);
    assert_eq!(link.new_kind, Some(EntryKind::Symlink));
    assert!(file(&c, "image.png").binary);

    // Added lines carry their new-file line numbers.
    let keep = file(&c, "keep.txt");
    let added: Vec<(u32, &str)> = keep
        .added
        .iter()
        .map(|l| (l.number, l.text.as_str()))
        .collect();
    assert_eq!(added, [(2, "TWO"), (4, "four")]);
    assert_eq!(keep.removed[0].text, "two");

    // Line counts agree with git's own numstat (without rename pairing, per path).
    let git = numstat(&r, "main", "feature");
    for f in &c.files {
        if f.status == FileStatus::Renamed {
            continue;
        }
        let expected = git.get(&f.path).copied().flatten();
        if f.binary {
            assert_eq!(git.get(&f.path), Some(&None), "{}", f.path);
        } else if let Some((a, d)) = expected {
            assert_eq!((f.lines_added, f.lines_removed), (a, d), "{}", f.path);
        }
    }
    assert!(!c.truncated);
}

#[test]
fn merge_base_semantics_ignore_commits_on_the_base_branch() {
    let r = TestRepo::new();
    r.write("a.txt", "a\n");
    r.commit("init");
    r.branch("feature");
    r.write("feature.txt", "f\n");
    r.commit("feature work");
    r.checkout("main");
    r.write("main-only.txt", "m\n");
    r.commit("main moved on");
    let c = read(&r, "main", "feature");
    let paths: Vec<&str> = c.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["feature.txt"]);
    assert_eq!(c.commits.len(), 1);
    assert_eq!(c.commits[0].summary, "feature work");
}

#[test]
fn commits_carry_authors_and_trailers() {
    let r = TestRepo::new();
    r.write("a", "1\n");
    r.commit("init");
    r.branch("f");
    r.write("a", "2\n");
    r.commit_as(
        CLAUDE,
        "Fix the thing\n\nLonger explanation.\n\nAgent-Session: s-42\nCo-authored-by: Ada Lovelace <ada@example.com>",
    );
    let c = read(&r, "main", "f");
    let commit = &c.commits[0];
    assert_eq!(commit.author.email, CLAUDE.email);
    assert_eq!(commit.summary, "Fix the thing");
    assert_eq!(commit.body, "Longer explanation.");
    let trailers: Vec<(&str, &str)> = commit
        .trailers
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    assert_eq!(
        trailers,
        [
            ("Agent-Session", "s-42"),
            ("Co-authored-by", "Ada Lovelace <ada@example.com>")
        ]
    );
}

#[test]
fn copies_and_submodules() {
    let r = TestRepo::new();
    let body: String = (0..30).map(|i| format!("shared line {i}\n")).collect();
    r.write("src/a.rs", &body);
    r.commit("init");
    r.branch("f");
    r.write("src/a.rs", &format!("{body}changed\n"));
    r.write("src/b.rs", &body);
    // A submodule entry (gitlink) pointing at an arbitrary commit.
    let head = r.head();
    r.git(&["add", "-A"]);
    r.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{head},vendor/lib"),
    ]);
    r.git(&["commit", "-q", "-m", "copy and submodule"]);
    let c = read(&r, "main", "f");
    let b = file(&c, "src/b.rs");
    assert_eq!(b.status, FileStatus::Copied);
    assert_eq!(b.old_path.as_deref(), Some("src/a.rs"));
    let sub = file(&c, "vendor/lib");
    assert_eq!(sub.new_kind, Some(EntryKind::Submodule));
    assert!(sub.is_submodule());
}

#[test]
fn gitattributes_cannot_hide_content() {
    let r = TestRepo::new();
    r.write("a.txt", "x\n");
    r.commit("init");
    r.branch("f");
    r.write(".gitattributes", "*.py -diff binary\n");
    r.write("hidden.py", "API = 'value'\n");
    r.commit("try to hide");
    let c = read(&r, "main", "f");
    let f = file(&c, "hidden.py");
    assert!(!f.binary);
    assert_eq!(f.added[0].text, "API = 'value'");
}

#[test]
fn non_utf8_paths_are_escaped_and_flagged() {
    let r = TestRepo::new();
    r.write("a.txt", "x\n");
    r.commit("init");
    r.branch("f");
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(b"bad-\xff-name.txt");
    std::fs::write(r.path().join(name), "content\n").unwrap();
    r.commit("odd name");
    let c = read(&r, "main", "f");
    let f = &c.files[0];
    assert_eq!(f.path, "bad-\\xff-name.txt");
    assert!(f.path_not_utf8);
}

#[test]
fn limits_bound_content_and_mark_truncation() {
    let r = TestRepo::new();
    r.write("a.txt", "x\n");
    r.commit("init");
    r.branch("f");
    let many: String = (0..500).map(|i| format!("line {i}\n")).collect();
    r.write("many.txt", &many);
    r.write("huge.txt", &"y".repeat(10_000));
    r.commit("big");
    let limits = Limits {
        max_lines_per_file: 100,
        max_file_bytes: 5_000,
        ..Limits::default()
    };
    let c = Repo::discover(r.path())
        .unwrap()
        .read_change("main", "f", &limits)
        .unwrap();
    let many = file(&c, "many.txt");
    assert_eq!(many.lines_added, 500, "counts stay exact");
    assert_eq!(many.added.len(), 100, "content is bounded");
    assert!(many.content_truncated);
    let huge = file(&c, "huge.txt");
    assert!(huge.summarized);
    assert!(huge.added.is_empty());
    assert!(c.truncated);
    assert!(c.notes.iter().any(|n| n.contains("max_file_bytes")));

    let tight = Limits {
        max_files: 1,
        ..Limits::default()
    };
    let err = Repo::discover(r.path())
        .unwrap()
        .read_change("main", "f", &tight)
        .unwrap_err();
    assert!(matches!(err, GitError::TooManyFiles { .. }), "{err}");
}

#[test]
fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = Repo::discover(dir.path()).err().unwrap();
    assert!(matches!(err, GitError::NotARepository { .. }), "{err}");

    let r = TestRepo::new();
    r.write("a", "1\n");
    r.commit("init");
    let err = Repo::discover(r.path())
        .unwrap()
        .read_change("no-such-branch", "HEAD", &Limits::default())
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown revision \"no-such-branch\""), "{msg}");
    assert!(!msg.contains("shallow"), "{msg}");
}

#[test]
fn shallow_clones_explain_how_to_fetch_more() {
    let origin = TestRepo::new();
    origin.write("a", "1\n");
    origin.commit("one");
    let base = origin.head();
    origin.write("a", "2\n");
    origin.commit("two");
    origin.write("a", "3\n");
    origin.commit("three");

    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("clone");
    let url = format!("file://{}", origin.path().display());
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--depth", "1", &url])
        .arg(&clone)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let err = Repo::discover(&clone)
        .unwrap()
        .read_change(&base, "HEAD", &Limits::default())
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("shallow clone"), "{msg}");
    assert!(msg.contains("fetch-depth: 0"), "{msg}");
}

#[test]
fn reads_files_and_directories_at_a_revision() {
    let r = TestRepo::new();
    r.write(".lockgate/policies/a.rego", "package lockgate.team.a\n");
    r.write(".lockgate/policies/b.rego", "package lockgate.team.b\n");
    r.write(".lockgate/policies/sub/c.rego", "x");
    r.write("CODEOWNERS", "* @org/all\n");
    r.commit("init");
    r.write("CODEOWNERS", "* @org/changed\n");
    r.commit("change owners");
    let repo = Repo::discover(r.path()).unwrap();
    let first = r.git(&["rev-parse", "HEAD~1"]);
    assert_eq!(
        repo.read_file_at(&first, "CODEOWNERS", 1024)
            .unwrap()
            .unwrap(),
        b"* @org/all\n"
    );
    assert_eq!(repo.read_file_at(&first, "missing", 1024).unwrap(), None);
    assert!(repo.read_file_at(&first, "CODEOWNERS", 3).is_err());
    assert_eq!(
        repo.list_files_at(&first, ".lockgate/policies").unwrap(),
        ["a.rego", "b.rego"]
    );
    assert!(repo.list_files_at(&first, "nope").unwrap().is_empty());
}

#[test]
fn many_files_are_diffed_in_parallel_with_a_deterministic_budget() {
    let r = TestRepo::new();
    for i in 0..300 {
        r.write(&format!("d/f{i:03}.txt"), &format!("base {i}\n"));
    }
    r.commit("base");
    r.branch("f");
    for i in 0..300 {
        r.write(
            &format!("d/f{i:03}.txt"),
            &format!("base {i}\nadded one {i}\nadded two {i}\n"),
        );
    }
    r.commit("many");
    let c = read(&r, "main", "f");
    assert_eq!(c.files.len(), 300);
    for (i, f) in c.files.iter().enumerate() {
        assert_eq!(f.path, format!("d/f{i:03}.txt"));
        assert_eq!((f.lines_added, f.lines_removed), (2, 0));
        assert_eq!(f.added[1].text, format!("added two {i}"));
        assert_eq!(f.added[1].number, 3);
    }

    // Each kept line costs its length plus 8 bytes: "added one 0" = 11 + 8 = 19 for the
    // first ten files, "added one 10" = 12 + 8 = 20 for the eleventh.
    let limits = Limits {
        max_total_content_bytes: 19 * 2 * 10 + 20,
        ..Limits::default()
    };
    let repo = Repo::discover(r.path()).unwrap();
    let first = repo.read_change("main", "f", &limits).unwrap();
    for _ in 0..3 {
        assert_eq!(repo.read_change("main", "f", &limits).unwrap(), first);
    }
    assert!(first.truncated);
    let kept: Vec<usize> = first.files.iter().map(|f| f.added.len()).collect();
    assert_eq!(&kept[..10], &[2; 10], "the first files keep everything");
    assert_eq!(kept[10], 1, "the budget runs out inside the eleventh file");
    assert!(kept[11..].iter().all(|&k| k == 0));
    assert!(first.files[10].content_truncated);
}
