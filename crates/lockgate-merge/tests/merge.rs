//! The merge queue's git backend against real repositories: a bare "origin" on disk, a
//! developer clone that pushes the target branch and an agent's change, and Lockgate's
//! own workspace that builds results and advances the branch — including a human push
//! racing it.

use lockgate_merge::{Advance, MergeError, Method, Workspace};
use lockgate_testkit::{CLAUDE, HUMAN, TestRepo};
use std::path::Path;
use std::process::Command;

struct World {
    origin: tempfile::TempDir,
    dev: TestRepo,
    ws_dir: tempfile::TempDir,
}

fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
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

/// origin with `main` (a.txt) and `change` (an agent adds b.txt and edits a.txt's last
/// line in two commits); then `main` moves on (c.txt).
fn world() -> World {
    let origin = tempfile::tempdir().unwrap();
    git_in(origin.path(), &["init", "--bare", "--quiet", "-b", "main"]);
    let dev = TestRepo::new();
    dev.write("a.txt", "one\ntwo\nthree\n");
    dev.commit_as(HUMAN, "init");
    dev.git(&["remote", "add", "origin", origin.path().to_str().unwrap()]);
    dev.git(&["push", "--quiet", "origin", "main"]);
    dev.branch("change");
    dev.write("b.txt", "new file\n");
    dev.commit_as(CLAUDE, "add b");
    dev.write("a.txt", "one\ntwo\nthree, edited\n");
    dev.commit_as(CLAUDE, "edit three");
    dev.git(&["push", "--quiet", "origin", "change"]);
    dev.checkout("main");
    dev.write("c.txt", "on main\n");
    dev.commit_as(HUMAN, "main moves");
    dev.git(&["push", "--quiet", "origin", "main"]);
    World {
        origin,
        dev,
        ws_dir: tempfile::tempdir().unwrap(),
    }
}

impl World {
    fn workspace(&self) -> Workspace {
        Workspace::open(
            self.ws_dir.path().join("ws.git"),
            self.origin.path().to_str().unwrap(),
        )
        .unwrap()
    }

    fn origin_main(&self) -> String {
        git_in(self.origin.path(), &["rev-parse", "refs/heads/main"])
    }

    fn origin_git(&self, args: &[&str]) -> String {
        git_in(self.origin.path(), args)
    }
}

#[test]
fn a_merge_commit_lands_when_the_target_has_not_moved() {
    let w = world();
    let ws = w.workspace();
    let target = ws.fetch_branch("main").unwrap();
    let head = ws.fetch_branch("change").unwrap();
    assert_eq!(target, w.origin_main());
    let built = ws
        .build(&target, &head, Method::Merge, "Merge change")
        .unwrap();
    assert_eq!(
        ws.advance("main", &target, &built.commit).unwrap(),
        Advance::Done
    );
    assert_eq!(w.origin_main(), built.commit);
    let parents = w.origin_git(&["log", "-1", "--format=%P", "main"]);
    assert_eq!(parents, format!("{target} {head}"));
    assert_eq!(
        w.origin_git(&["show", "main:a.txt"]),
        "one\ntwo\nthree, edited"
    );
    assert_eq!(w.origin_git(&["show", "main:b.txt"]), "new file");
    assert_eq!(w.origin_git(&["show", "main:c.txt"]), "on main");
    assert_eq!(
        w.origin_git(&["log", "-1", "--format=%cn <%ce>|%s", "main"]),
        "Lockgate merge queue <merge-queue@lockgate.invalid>|Merge change"
    );
    // Authored by the change's head author, so a re-check sees the same authorship.
    assert_eq!(
        w.origin_git(&["log", "-1", "--format=%an <%ae>", "main"]),
        w.origin_git(&["log", "-1", "--format=%an <%ae>", &head])
    );
}

#[test]
fn squash_and_rebase_land_the_same_tree_with_their_own_history() {
    let w = world();
    let ws = w.workspace();
    let target = ws.fetch_branch("main").unwrap();
    let head = ws.fetch_branch("change").unwrap();
    let merged = ws.build(&target, &head, Method::Merge, "m").unwrap();
    let squashed = ws
        .build(&target, &head, Method::Squash, "Change (#1)")
        .unwrap();
    let rebased = ws.build(&target, &head, Method::Rebase, "unused").unwrap();
    assert_eq!(squashed.tree, merged.tree);
    assert_eq!(rebased.tree, merged.tree);

    // Squash: one commit on the target, authored by the change's author.
    let squash_author = Command::new("git")
        .current_dir(w.ws_dir.path().join("ws.git"))
        .args(["log", "-1", "--format=%an|%cn|%s", &squashed.commit])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&squash_author.stdout).trim(),
        "anthropic-code-agent[bot]|Lockgate merge queue|Change (#1)"
    );
    assert_eq!(
        ws.resolve(&format!("{}^", squashed.commit)).unwrap(),
        target
    );
    // Rebase: the agent's two commits, in order, authors and messages kept.
    assert_eq!(
        ws.advance("main", &target, &rebased.commit).unwrap(),
        Advance::Done
    );
    let log = w.origin_git(&["log", "--format=%an|%s|%cn", &format!("{target}..main")]);
    assert_eq!(
        log,
        "anthropic-code-agent[bot]|edit three|Lockgate merge queue\n\
         anthropic-code-agent[bot]|add b|Lockgate merge queue"
    );
    assert_eq!(
        w.origin_git(&["rev-parse", "main~2"]),
        target,
        "replayed on the target's tip"
    );
}

#[test]
fn a_conflict_names_the_paths_and_lands_nothing() {
    let w = world();
    w.dev.write("a.txt", "one\ntwo\nthree, differently\n");
    w.dev.commit_as(HUMAN, "conflicting edit");
    w.dev.git(&["push", "--quiet", "origin", "main"]);
    let ws = w.workspace();
    let target = ws.fetch_branch("main").unwrap();
    let head = ws.fetch_branch("change").unwrap();
    for method in [Method::Merge, Method::Squash, Method::Rebase] {
        match ws.build(&target, &head, method, "m") {
            Err(MergeError::Conflict { paths }) => assert_eq!(paths, ["a.txt"], "{method:?}"),
            other => panic!("{method:?}: {other:?}"),
        }
    }
    assert_eq!(w.origin_main(), target);
}

#[test]
fn a_human_push_racing_the_queue_wins_and_the_queue_rebuilds() {
    let w = world();
    let ws = w.workspace();
    let target = ws.fetch_branch("main").unwrap();
    let head = ws.fetch_branch("change").unwrap();
    let built = ws.build(&target, &head, Method::Squash, "Change").unwrap();

    // A person pushes to main after the queue built its result.
    w.dev.write("d.txt", "human\n");
    let human = w.dev.commit_as(HUMAN, "hotfix");
    w.dev.git(&["push", "--quiet", "origin", "main"]);

    assert_eq!(
        ws.advance("main", &target, &built.commit).unwrap(),
        Advance::Moved
    );
    assert_eq!(w.origin_main(), human, "the human's push is kept");

    // Rebuilt on the new tip, it lands, on top of the human's commit.
    let target = ws.fetch_branch("main").unwrap();
    assert_eq!(target, human);
    let rebuilt = ws.build(&target, &head, Method::Squash, "Change").unwrap();
    assert_eq!(
        ws.advance("main", &target, &rebuilt.commit).unwrap(),
        Advance::Done
    );
    assert_eq!(w.origin_main(), rebuilt.commit);
    assert_eq!(w.origin_git(&["show", "main:d.txt"]), "human");
    assert_eq!(w.origin_git(&["show", "main:b.txt"]), "new file");

    // The stale result can never land now.
    assert_eq!(
        ws.advance("main", &target, &built.commit).unwrap(),
        Advance::Moved
    );
    assert_eq!(w.origin_main(), rebuilt.commit);
}

#[test]
fn the_workspace_survives_reopening_and_refuses_odd_names() {
    let w = world();
    let first = w.workspace().fetch_branch("main").unwrap();
    let ws = w.workspace();
    assert_eq!(ws.fetch_branch("main").unwrap(), first);
    assert!(matches!(
        ws.fetch_branch("--upload-pack=touch /tmp/x"),
        Err(MergeError::Invalid(..))
    ));
    assert!(matches!(
        ws.fetch_branch("no-such-branch"),
        Err(MergeError::Git { .. })
    ));
    assert!(matches!(
        ws.advance("main", "HEAD", &first),
        Err(MergeError::Invalid(..))
    ));
}
