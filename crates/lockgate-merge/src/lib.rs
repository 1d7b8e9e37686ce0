//! The merge queue's git backend: builds the commit a change would land as — a merge
//! commit, a squash or a rebase of its commits — on top of the target branch's current
//! tip, and advances the branch to it only if the tip is still the one it was built on
//! (compare-and-swap), so the tested tree is the merged tree.
//!
//! Everything happens in a [`Workspace`]: a bare repository of Lockgate's own that
//! fetches from the remote, builds results with `git merge-tree --write-tree` and
//! `git commit-tree` (nothing is checked out, no hooks or filters run), and pushes with
//! `--force-with-lease=<branch>:<expected>`. The git CLI is used on purpose: gix (which
//! Lockgate reads repositories with) cannot push, and git's own merge machinery is the
//! reference for what a merge result is.
//!
//! ```no_run
//! use lockgate_merge::{Method, Workspace, Advance};
//! let ws = Workspace::open("/var/lib/lockgate/acme-api.git", "git@example.com:acme/api.git").unwrap();
//! let target = ws.fetch_branch("main").unwrap();
//! let head = ws.fetch_ref("refs/pull/42/head").unwrap();
//! let built = ws.build(&target, &head, Method::Squash, "Add retries (#42)").unwrap();
//! match ws.advance("main", &target, &built.commit).unwrap() {
//!     Advance::Done => println!("landed {}", built.commit),
//!     Advance::Moved => println!("main moved under us: rebuild and re-check"),
//! }
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// How a change lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A merge commit with the target and the change's head as parents.
    Merge,
    /// One commit with the merged tree and the target as its only parent.
    Squash,
    /// The change's commits replayed one by one on the target (authors kept).
    Rebase,
}

/// A built result: the commit to land and its tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub commit: String,
    pub tree: String,
}

/// What advancing the branch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advance {
    /// The branch now points at the result.
    Done,
    /// The branch no longer points where the result was built: nothing was changed;
    /// fetch, rebuild and re-check.
    Moved,
}

/// A git step failed.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The change does not merge cleanly onto the target.
    #[error("the change conflicts with the target in {}", .paths.join(", "))]
    Conflict { paths: Vec<String> },
    #[error("git {args}: {detail}")]
    Git { args: String, detail: String },
    #[error("{0:?} is not a valid {1}")]
    Invalid(String, &'static str),
}

/// A bare repository Lockgate builds results in, with the remote as `origin`.
pub struct Workspace {
    dir: PathBuf,
}

/// Where provenance notes live (the ref `lockgate attest` writes).
const NOTES_REF: &str = "refs/notes/lockgate";

/// Who the built commits are made by (the author of a rebased commit is kept).
const COMMITTER_NAME: &str = "Lockgate merge queue";
const COMMITTER_EMAIL: &str = "merge-queue@lockgate.invalid";

impl Workspace {
    /// Opens the workspace at `dir`, creating it (bare) on first use, with `remote` as
    /// `origin` (a URL or a path).
    pub fn open(dir: impl AsRef<Path>, remote: &str) -> Result<Workspace, MergeError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.join("HEAD").exists() {
            std::fs::create_dir_all(&dir).map_err(|e| MergeError::Git {
                args: "init".into(),
                detail: format!("{}: {e}", dir.display()),
            })?;
            git(&dir, &["init", "--bare", "--quiet"])?;
        }
        let ws = Workspace { dir };
        // The remote may have changed in the config: set it every time.
        if ws.run(&["remote", "get-url", "origin"]).is_ok() {
            ws.run(&["remote", "set-url", "origin", remote])?;
        } else {
            ws.run(&["remote", "add", "origin", remote])?;
        }
        Ok(ws)
    }

    fn run(&self, args: &[&str]) -> Result<String, MergeError> {
        git(&self.dir, args)
    }

    /// Fetches the remote's branch; its tip.
    pub fn fetch_branch(&self, branch: &str) -> Result<String, MergeError> {
        check_ref_name(branch)?;
        self.fetch_ref(&format!("refs/heads/{branch}"))
    }

    /// Fetches any ref of the remote (`refs/heads/x`, `refs/pull/7/head`); its tip.
    pub fn fetch_ref(&self, reference: &str) -> Result<String, MergeError> {
        check_ref_name(reference)?;
        let local = format!(
            "refs/lockgate/fetched/{}",
            reference.trim_start_matches("refs/")
        );
        self.run(&[
            "fetch",
            "--quiet",
            "--no-tags",
            "--force",
            "origin",
            &format!("{reference}:{local}"),
        ])?;
        self.resolve(&local)
    }

    /// The commit a revision names here.
    pub fn resolve(&self, rev: &str) -> Result<String, MergeError> {
        Ok(self
            .run(&[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{rev}^{{commit}}"),
            ])?
            .trim()
            .to_string())
    }

    /// Builds `head` on top of `target` by `method`. `message` is the merge or squash
    /// commit's message (a rebase keeps each commit's own).
    pub fn build(
        &self,
        target: &str,
        head: &str,
        method: Method,
        message: &str,
    ) -> Result<Built, MergeError> {
        check_oid(target)?;
        check_oid(head)?;
        match method {
            Method::Merge => {
                // Authored by the change's head author too: the gate's re-check of the
                // result then sees the same authorship as the change itself.
                let tree = self.merge_tree(None, target, head)?;
                let author = self.author(head)?;
                let args = [
                    "commit-tree",
                    &tree,
                    "-p",
                    target,
                    "-p",
                    head,
                    "-m",
                    message,
                ];
                let commit = self.commit(&args, Some(&author))?;
                Ok(Built { commit, tree })
            }
            Method::Squash => {
                // Authored by whoever wrote the change's head (as forges squash), so
                // who wrote it stays visible in history; committed by the queue.
                let tree = self.merge_tree(None, target, head)?;
                let author = self.author(head)?;
                let args = ["commit-tree", &tree, "-p", target, "-m", message];
                let commit = self.commit(&args, Some(&author))?;
                Ok(Built { commit, tree })
            }
            Method::Rebase => {
                let base = self.run(&["merge-base", target, head])?.trim().to_string();
                let commits = self.run(&[
                    "rev-list",
                    "--reverse",
                    "--topo-order",
                    "--no-merges",
                    &format!("{base}..{head}"),
                ])?;
                let mut tip = target.to_string();
                let mut tree = self.run(&["rev-parse", &format!("{target}^{{tree}}")])?;
                for commit in commits.lines() {
                    let parent = format!("{commit}^");
                    tree = self.merge_tree(Some(&parent), &tip, commit)?;
                    let message = self.run(&["log", "-1", "--format=%B", commit])?;
                    let author = self.author(commit)?;
                    tip = self.commit(
                        &[
                            "commit-tree",
                            tree.trim(),
                            "-p",
                            &tip,
                            "-m",
                            message.trim_end(),
                        ],
                        Some(&author),
                    )?;
                }
                Ok(Built {
                    commit: tip,
                    tree: tree.trim().to_string(),
                })
            }
        }
    }

    /// A commit's author as `name NUL email NUL raw date`.
    fn author(&self, commit: &str) -> Result<String, MergeError> {
        let author = self.run(&[
            "log",
            "-1",
            "--format=%an%x00%ae%x00%ad",
            "--date=raw",
            commit,
        ])?;
        Ok(author.trim_end().to_string())
    }

    /// `git merge-tree --write-tree`: the merged tree, or the conflicted paths.
    fn merge_tree(
        &self,
        base: Option<&str>,
        ours: &str,
        theirs: &str,
    ) -> Result<String, MergeError> {
        let mut args = vec!["merge-tree", "--write-tree", "--name-only", "--no-messages"];
        let merge_base;
        if let Some(b) = base {
            merge_base = format!("--merge-base={b}");
            args.push(&merge_base);
        }
        args.extend([ours, theirs]);
        let out = git_output(&self.dir, &args)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut lines = stdout.lines();
        let tree = lines.next().unwrap_or_default().trim().to_string();
        match out.status.code() {
            Some(0) => Ok(tree),
            Some(1) => Err(MergeError::Conflict {
                paths: lines
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect(),
            }),
            _ => Err(MergeError::Git {
                args: args.join(" "),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }),
        }
    }

    /// `git commit-tree` as the queue (and, for a rebased commit, its author).
    fn commit(&self, args: &[&str], author: Option<&str>) -> Result<String, MergeError> {
        let mut cmd = Command::new("git");
        cmd.current_dir(&self.dir)
            .args(args)
            .env("GIT_COMMITTER_NAME", COMMITTER_NAME)
            .env("GIT_COMMITTER_EMAIL", COMMITTER_EMAIL)
            .env("GIT_AUTHOR_NAME", COMMITTER_NAME)
            .env("GIT_AUTHOR_EMAIL", COMMITTER_EMAIL);
        if let Some(a) = author {
            let mut parts = a.split('\0');
            let (name, email, date) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            cmd.env("GIT_AUTHOR_NAME", name)
                .env("GIT_AUTHOR_EMAIL", email)
                .env("GIT_AUTHOR_DATE", date);
        }
        let out = cmd.output().map_err(|e| MergeError::Git {
            args: args.join(" "),
            detail: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(MergeError::Git {
                args: "commit-tree".into(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The workspace's directory (a bare repository).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fetches the remote's provenance notes (`refs/notes/lockgate`) when it has any;
    /// false when it has none.
    pub fn fetch_notes(&self) -> Result<bool, MergeError> {
        let listed = self.run(&["ls-remote", "origin", NOTES_REF])?;
        if listed.trim().is_empty() {
            return Ok(false);
        }
        self.run(&[
            "fetch",
            "--quiet",
            "--no-tags",
            "--force",
            "origin",
            &format!("{NOTES_REF}:{NOTES_REF}"),
        ])?;
        Ok(true)
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, MergeError> {
        check_oid(ancestor)?;
        check_oid(descendant)?;
        let args = ["merge-base", "--is-ancestor", ancestor, descendant];
        let out = git_output(&self.dir, &args)?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(MergeError::Git {
                args: args.join(" "),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }),
        }
    }

    /// Checks `commit` out into `dir` (a new linked worktree, detached) for a test run;
    /// [`Workspace::remove_checkout`] removes it.
    pub fn checkout(&self, commit: &str, dir: &Path) -> Result<(), MergeError> {
        check_oid(commit)?;
        let path = dir.to_str().ok_or_else(|| {
            MergeError::Invalid(dir.display().to_string(), "checkout path (not UTF-8)")
        })?;
        self.run(&[
            "worktree", "add", "--quiet", "--detach", "--force", path, commit,
        ])?;
        Ok(())
    }

    /// Removes a checkout made by [`Workspace::checkout`], whatever the test left in it.
    pub fn remove_checkout(&self, dir: &Path) -> Result<(), MergeError> {
        let _ = std::fs::remove_dir_all(dir);
        self.run(&["worktree", "prune"])?;
        Ok(())
    }

    /// Pushes `commit` to the remote's `reference` (created or replaced): how a forge
    /// that lands through its API gets the result's objects first.
    pub fn push_ref(&self, commit: &str, reference: &str) -> Result<(), MergeError> {
        check_oid(commit)?;
        check_ref_name(reference)?;
        self.run(&[
            "push",
            "--quiet",
            "--force",
            "origin",
            &format!("{commit}:{reference}"),
        ])?;
        Ok(())
    }

    /// Deletes the remote's `reference` (one [`Workspace::push_ref`] made).
    pub fn delete_remote_ref(&self, reference: &str) -> Result<(), MergeError> {
        check_ref_name(reference)?;
        self.run(&["push", "--quiet", "origin", &format!(":{reference}")])?;
        Ok(())
    }

    /// Points the remote's `branch` at `new` if it still points at `expected`.
    pub fn advance(&self, branch: &str, expected: &str, new: &str) -> Result<Advance, MergeError> {
        check_ref_name(branch)?;
        check_oid(expected)?;
        check_oid(new)?;
        let target = format!("refs/heads/{branch}");
        let lease = format!("--force-with-lease={target}:{expected}");
        let refspec = format!("{new}:{target}");
        let args = ["push", "--porcelain", "--quiet", &lease, "origin", &refspec];
        let out = git_output(&self.dir, &args)?;
        if out.status.success() {
            return Ok(Advance::Done);
        }
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if said.contains("stale info") || said.contains("[rejected]") {
            Ok(Advance::Moved)
        } else {
            Err(MergeError::Git {
                args: args.join(" "),
                detail: said.trim().to_string(),
            })
        }
    }
}

fn git_output(dir: &Path, args: &[&str]) -> Result<Output, MergeError> {
    Command::new("git")
        .current_dir(dir)
        .args(args)
        // No prompts, no user or system config that could change a merge.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .map_err(|e| MergeError::Git {
            args: args.join(" "),
            detail: e.to_string(),
        })
}

fn git(dir: &Path, args: &[&str]) -> Result<String, MergeError> {
    let out = git_output(dir, args)?;
    if !out.status.success() {
        return Err(MergeError::Git {
            args: args.join(" "),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A full hex object id (40 or 64 digits): never an option or a revision expression.
fn check_oid(oid: &str) -> Result<(), MergeError> {
    let ok = matches!(oid.len(), 40 | 64) && oid.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(())
        .ok_or_else(|| MergeError::Invalid(oid.into(), "object id"))
}

/// A ref name git accepts, that cannot be read as an option or a refspec.
fn check_ref_name(name: &str) -> Result<(), MergeError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('-')
        && !name.starts_with('/')
        && !name.contains("..")
        && !name.contains("@{")
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b":~^?*[\\".contains(&b));
    ok.then_some(())
        .ok_or_else(|| MergeError::Invalid(name.into(), "ref name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_be_options_or_expressions_are_refused() {
        for bad in [
            "",
            "-f",
            "--upload-pack=x",
            "a..b",
            "x@{1}",
            "a:b",
            "a b",
            "^x",
            "/x",
        ] {
            assert!(check_ref_name(bad).is_err(), "{bad:?}");
        }
        for good in ["main", "release/1.2", "refs/pull/7/head"] {
            assert!(check_ref_name(good).is_ok(), "{good:?}");
        }
        assert!(check_oid(&"a".repeat(40)).is_ok());
        assert!(check_oid("HEAD").is_err());
        assert!(check_oid(&"g".repeat(40)).is_err());
    }
}
