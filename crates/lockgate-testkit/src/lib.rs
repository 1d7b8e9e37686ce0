//! Real git repositories for tests, built with the `git` command-line tool.
//!
//! Lockgate itself reads repositories with gix; tests build them with git so that the
//! two implementations check each other. Every repository lives in its own temporary
//! directory, removed on drop.
//!
//! ```
//! let repo = lockgate_testkit::TestRepo::new();
//! repo.write("README.md", "hello\n");
//! let first = repo.commit("init");
//! assert_eq!(first.len(), 40);
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A person or agent to commit as.
#[derive(Debug, Clone, Copy)]
pub struct Ident<'a> {
    pub name: &'a str,
    pub email: &'a str,
}

/// A human developer.
pub const HUMAN: Ident<'static> = Ident {
    name: "Ada Lovelace",
    email: "ada@example.com",
};
/// Claude Code's GitHub app identity.
pub const CLAUDE: Ident<'static> = Ident {
    name: "anthropic-code-agent[bot]",
    email: "242468646+Claude@users.noreply.github.com",
};
/// The Copilot coding agent.
pub const COPILOT: Ident<'static> = Ident {
    name: "copilot-swe-agent[bot]",
    email: "198982749+Copilot@users.noreply.github.com",
};
/// Dependabot.
pub const DEPENDABOT: Ident<'static> = Ident {
    name: "dependabot[bot]",
    email: "49699333+dependabot[bot]@users.noreply.github.com",
};

/// A git repository in a temporary directory.
pub struct TestRepo {
    dir: tempfile::TempDir,
    clock: std::cell::Cell<u64>,
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRepo {
    /// `git init` on branch `main` in a fresh temporary directory.
    pub fn new() -> TestRepo {
        let dir = tempfile::tempdir().expect("create temp dir");
        let repo = TestRepo {
            dir,
            clock: std::cell::Cell::new(1_700_000_000),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "core.autocrlf", "false"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo.git(&["config", "user.name", HUMAN.name]);
        repo.git(&["config", "user.email", HUMAN.email]);
        repo
    }

    /// The work tree.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs git with `args`; panics with git's stderr when it fails.
    pub fn git(&self, args: &[&str]) -> String {
        let out = self.git_output(args, &[]);
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs git with extra environment; returns the raw output.
    pub fn git_output(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        let mut cmd = Command::new("git");
        cmd.current_dir(self.path())
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", self.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run git")
    }

    /// Writes a file (creating directories).
    pub fn write(&self, path: &str, content: &str) {
        self.write_bytes(path, content.as_bytes());
    }

    /// Writes raw bytes.
    pub fn write_bytes(&self, path: &str, content: &[u8]) {
        let full = self.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(full, content).expect("write file");
    }

    /// Absolute path of a work-tree file.
    pub fn file(&self, path: &str) -> PathBuf {
        self.path().join(path)
    }

    /// Stages everything and commits as [`HUMAN`]; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.commit_as(HUMAN, message)
    }

    /// Stages everything and commits with `who` as author and committer.
    pub fn commit_as(&self, who: Ident<'_>, message: &str) -> String {
        self.git(&["add", "-A"]);
        let t = self.clock.get() + 60;
        self.clock.set(t);
        let date = format!("@{t} +0000");
        let env = [
            ("GIT_AUTHOR_NAME", who.name.to_string()),
            ("GIT_AUTHOR_EMAIL", who.email.to_string()),
            ("GIT_COMMITTER_NAME", who.name.to_string()),
            ("GIT_COMMITTER_EMAIL", who.email.to_string()),
            ("GIT_AUTHOR_DATE", date.clone()),
            ("GIT_COMMITTER_DATE", date),
        ];
        let out = self.git_output(&["commit", "-q", "--allow-empty", "-m", message], &env);
        assert!(
            out.status.success(),
            "git commit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.head()
    }

    /// Merges `branch` into the current branch with a merge commit (`--no-ff`) made
    /// by [`HUMAN`], as a forge's merge button does; returns the merge commit id.
    pub fn merge_no_ff(&self, branch: &str, message: &str) -> String {
        let t = self.clock.get() + 60;
        self.clock.set(t);
        let date = format!("@{t} +0000");
        let env = [
            ("GIT_AUTHOR_DATE", date.clone()),
            ("GIT_COMMITTER_DATE", date),
        ];
        let out = self.git_output(&["merge", "-q", "--no-ff", "-m", message, branch], &env);
        assert!(
            out.status.success(),
            "git merge failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.head()
    }

    /// Commit time of the last commit made through this repository's clock.
    pub fn clock(&self) -> u64 {
        self.clock.get()
    }

    /// The current HEAD commit id.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// Creates and switches to a new branch.
    pub fn branch(&self, name: &str) {
        self.git(&["checkout", "-q", "-b", name]);
    }

    /// Switches to an existing branch.
    pub fn checkout(&self, name: &str) {
        self.git(&["checkout", "-q", name]);
    }
}

/// What a finished command did.
#[derive(Debug)]
pub struct Run {
    /// Exit code, or `None` when a signal ended it (a crash test's abort).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program` in `dir` with `args` and extra environment, and waits for it.
pub fn run(program: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A background process (a server) killed when dropped.
pub struct Background {
    child: std::process::Child,
    /// The first line it printed (a server's "listening on …").
    pub first_line: String,
}

impl Background {
    /// The first `http://…` word of the first line.
    pub fn url(&self) -> &str {
        self.first_line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {:?}", self.first_line))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program` and waits for its first line on stdout.
pub fn spawn(program: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Background {
    use std::io::BufRead;
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    let mut first_line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut first_line)
        .expect("read the first line");
    Background { child, first_line }
}
