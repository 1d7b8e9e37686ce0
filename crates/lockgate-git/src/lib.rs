//! Reads a change from a local git repository with gix (no `git` process).
//!
//! [`Repo::read_change`] diffs `merge-base(base, head)..head` (what a pull request
//! shows), with rename and copy detection, and reads the range's commits. Line diffs
//! are computed here from raw blob bytes rather than through git attributes and diff
//! drivers: a change must not be able to hide content from the secret scanner by
//! adding `.gitattributes` (`-diff`) or by naming a textconv driver. Binary means "has
//! a NUL byte in the first 8000 bytes", as git decides by default.
//!
//! Memory is bounded by [`Limits`]: files over `max_file_bytes` are summarized,
//! kept line content is capped per file and per change, and the change records that
//! it was truncated so later stages can fail closed.
//!
//! ```no_run
//! use lockgate_core::change::Limits;
//! let repo = lockgate_git::Repo::discover(".").unwrap();
//! let change = repo.read_change("origin/main", "HEAD", &Limits::default()).unwrap();
//! println!("{} files changed", change.files.len());
//! ```

mod history;
mod notes;
mod patch_id;
mod read;

pub use notes::{MAX_NOTES_SCANNED, NOTES_REF};
pub use patch_id::PATCH_ID_PREFIX;

pub use history::Landed;
pub use read::Repo;

/// Reading the repository failed. Messages say what to do next where that is known.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{path} is not inside a git repository ({detail})")]
    NotARepository { path: String, detail: String },
    #[error(
        "unknown revision {rev:?}: {detail}{}",
        if *.shallow { "\nhint: this is a shallow clone and the revision may lie outside it; fetch more history (e.g. `git fetch --unshallow`, or `fetch-depth: 0` in actions/checkout)" } else { "" }
    )]
    UnknownRevision {
        rev: String,
        detail: String,
        shallow: bool,
    },
    #[error(
        "{base} and {head} have no common ancestor{}",
        if *.shallow { "\nhint: this is a shallow clone, so their merge base is probably outside it; fetch more history (e.g. `git fetch --unshallow`, or `fetch-depth: 0` in actions/checkout)" } else { " (unrelated histories)" }
    )]
    NoMergeBase {
        base: String,
        head: String,
        shallow: bool,
    },
    #[error("the change touches {count} files, more than the limit of {limit} (limits.max_files)")]
    TooManyFiles { count: usize, limit: u32 },
    #[error("{context}: {detail}")]
    Read { context: String, detail: String },
}

impl GitError {
    pub(crate) fn read(context: impl Into<String>, err: impl std::fmt::Display) -> GitError {
        GitError::Read {
            context: context.into(),
            detail: err.to_string(),
        }
    }
}
