//! Notes, patch ids and ancestry, cross-checked with the git CLI.

use lockgate_git::{NOTES_REF, Repo};
use lockgate_testkit::TestRepo;

#[test]
fn notes_written_by_lockgate_are_read_by_git_and_back() {
    let r = TestRepo::new();
    r.write("a.txt", "1\n");
    let commit = r.commit("init");
    let repo = Repo::discover(r.path()).unwrap();
    let tree = repo.tree_of(&commit).unwrap();

    repo.append_notes(
        &[&commit, &tree],
        "{\"bundle\":1}",
        ("lockgate", "lockgate@localhost"),
    )
    .unwrap();
    repo.append_notes(
        &[&commit],
        "{\"bundle\":2}",
        ("lockgate", "lockgate@localhost"),
    )
    .unwrap();
    repo.append_notes(
        &[&commit],
        "{\"bundle\":2}",
        ("lockgate", "lockgate@localhost"),
    )
    .unwrap();

    let ours = String::from_utf8(repo.read_note(&commit).unwrap().unwrap()).unwrap();
    assert_eq!(
        ours, "{\"bundle\":1}\n{\"bundle\":2}\n",
        "appended once each"
    );
    let git = r.git(&["notes", "--ref", "lockgate", "show", &commit]);
    assert_eq!(git, "{\"bundle\":1}\n{\"bundle\":2}");
    assert_eq!(
        r.git(&["notes", "--ref", "lockgate", "show", &tree]),
        "{\"bundle\":1}"
    );
    assert_eq!(
        r.git(&["rev-list", "--count", NOTES_REF]),
        "3",
        "one notes commit per append"
    );

    // A note added by git is read by lockgate, and appending keeps it.
    r.write("b.txt", "2\n");
    let second = r.commit("second");
    r.git(&[
        "notes",
        "--ref",
        "lockgate",
        "add",
        "-m",
        "{\"from\":\"git\"}",
        &second,
    ]);
    let repo = Repo::discover(r.path()).unwrap();
    assert_eq!(
        repo.read_note(&second).unwrap().unwrap(),
        b"{\"from\":\"git\"}\n"
    );
    repo.append_notes(&[&second], "{\"bundle\":3}", ("l", "l@x"))
        .unwrap();
    assert_eq!(
        r.git(&["notes", "--ref", "lockgate", "show", &second]),
        "{\"from\":\"git\"}\n{\"bundle\":3}"
    );
    let all = repo.all_notes().unwrap();
    assert_eq!(all.len(), 3);
    assert!(repo.read_note(&"0".repeat(40)).unwrap().is_none());
    assert!(
        repo.append_notes(&[&second], "two\nlines", ("l", "l@x"))
            .is_err()
    );
}

#[test]
fn fanned_out_notes_are_found() {
    let r = TestRepo::new();
    r.write("a.txt", "1\n");
    let commit = r.commit("init");
    // Build a notes tree with the note at ab/cdef… by hand, as git does for big trees.
    let note_blob = run_with_stdin(&r, &["hash-object", "-w", "--stdin"], "fanned\n");
    let (dir, rest) = commit.split_at(2);
    let inner = run_with_stdin(
        &r,
        &["mktree"],
        &format!("100644 blob {note_blob}\t{rest}\n"),
    );
    let outer = run_with_stdin(&r, &["mktree"], &format!("040000 tree {inner}\t{dir}\n"));
    let notes_commit = r.git(&["commit-tree", &outer, "-m", "notes"]);
    r.git(&["update-ref", NOTES_REF, &notes_commit]);
    assert_eq!(
        r.git(&["notes", "--ref", "lockgate", "show", &commit]),
        "fanned"
    );

    let repo = Repo::discover(r.path()).unwrap();
    assert_eq!(repo.read_note(&commit).unwrap().unwrap(), b"fanned\n");
    repo.append_notes(&[&commit], "more", ("l", "l@x")).unwrap();
    assert_eq!(
        r.git(&["notes", "--ref", "lockgate", "show", &commit]),
        "fanned\nmore"
    );
    assert_eq!(repo.all_notes().unwrap().len(), 1);
}

fn run_with_stdin(r: &TestRepo, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("git")
        .current_dir(r.path())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn patch_ids_survive_rebase_and_whitespace_but_not_other_changes() {
    let r = TestRepo::new();
    r.write("src/lib.rs", "fn a() {}\n\nfn b() {}\n");
    r.write("README.md", "readme\n");
    let base = r.commit("base");
    r.branch("feature");
    r.write("src/lib.rs", "fn a() {}\n\nfn b() { todo() }\n");
    let feature = r.commit("feature");

    // main moves on with an unrelated change; the feature is rebased onto it.
    r.checkout("main");
    r.write("README.md", "readme v2\n");
    r.commit("docs");
    r.git(&["checkout", "-q", "-b", "rebased"]);
    r.git(&["cherry-pick", &feature]);
    let rebased = r.head();
    let rebased_parent = format!("{rebased}~1");

    let repo = Repo::discover(r.path()).unwrap();
    let original = repo.patch_id(&base, &feature).unwrap().unwrap();
    assert!(original.starts_with("lockgate-patch-id/v1:"));
    assert_eq!(
        repo.patch_id(&rebased_parent, &rebased).unwrap().unwrap(),
        original
    );
    assert_ne!(
        repo.tree_of(&rebased).unwrap(),
        repo.tree_of(&feature).unwrap(),
        "different trees"
    );

    // Whitespace-only differences keep the id; a different change does not.
    r.checkout("main");
    r.git(&["checkout", "-q", "-b", "spaced", &base]);
    r.write("src/lib.rs", "fn a() {}\n\nfn b() {  todo()  }\n");
    let spaced = r.commit("spaced");
    assert_eq!(repo.patch_id(&base, &spaced).unwrap().unwrap(), original);
    r.write("src/lib.rs", "fn a() {}\n\nfn b() { other() }\n");
    let other = r.commit("other");
    assert_ne!(repo.patch_id(&spaced, &other).unwrap().unwrap(), original);
    assert_eq!(repo.patch_id(&base, &base).unwrap(), None);
}

#[test]
fn ancestry_and_trees() {
    let r = TestRepo::new();
    r.write("a", "1\n");
    let one = r.commit("one");
    r.write("a", "2\n");
    let two = r.commit("two");
    let repo = Repo::discover(r.path()).unwrap();
    assert!(repo.is_ancestor(&one, &two).unwrap());
    assert!(repo.is_ancestor(&two, &two).unwrap());
    assert!(!repo.is_ancestor(&two, &one).unwrap());
    assert_eq!(
        repo.tree_of(&two).unwrap(),
        r.git(&["rev-parse", "HEAD^{tree}"])
    );
    assert_eq!(
        repo.first_parent(&two).unwrap().as_deref(),
        Some(one.as_str())
    );
    assert_eq!(repo.first_parent(&one).unwrap(), None);
}
