//! The facts of a change: what a diff source (git) reports about `base..head`.
//!
//! These types are plain data. They are produced by `lockgate-git` and consumed by
//! every later stage; nothing here does IO.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Everything Lockgate knows about the range under review.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeSet {
    /// The revision the user named as base (e.g. `origin/main`), as given.
    pub base_ref: String,
    /// The revision the user named as head (e.g. `HEAD`), as given.
    pub head_ref: String,
    /// Full object id of the resolved base commit.
    pub base: String,
    /// Full object id of the resolved head commit.
    pub head: String,
    /// The merge base of base and head: the diff is `merge_base..head`
    /// (three-dot semantics, as a pull request shows it).
    pub merge_base: String,
    /// Commits reachable from head but not from the merge base, newest first.
    pub commits: Vec<Commit>,
    /// Changed files, sorted by path.
    pub files: Vec<FileChange>,
    /// True when a limit was hit and some content was not read (see [`Limits`]).
    /// Downstream stages treat a truncated change as incompletely scanned.
    pub truncated: bool,
    /// Human-readable notes on what was truncated or skipped.
    pub notes: Vec<String>,
}

impl ChangeSet {
    /// Total lines added over all text files.
    pub fn lines_added(&self) -> u64 {
        self.files.iter().map(|f| u64::from(f.lines_added)).sum()
    }

    /// Total lines removed over all text files.
    pub fn lines_removed(&self) -> u64 {
        self.files.iter().map(|f| u64::from(f.lines_removed)).sum()
    }
}

/// One commit in the range.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Commit {
    /// Full object id.
    pub sha: String,
    pub author: Person,
    pub committer: Person,
    /// First line of the message.
    pub summary: String,
    /// The message body after the summary (bounded, see [`Limits::max_message_bytes`]).
    pub body: String,
    /// Git trailers from the last paragraph (`Key: value`).
    pub trailers: Vec<Trailer>,
    /// Number of parents (2 or more for merge commits).
    pub parents: u32,
    /// Author time, seconds since the Unix epoch.
    pub time: i64,
}

/// A name and email as recorded in a commit header or trailer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Person {
    pub name: String,
    pub email: String,
}

impl Person {
    /// Builds a person from its parts.
    pub fn new(name: impl Into<String>, email: impl Into<String>) -> Self {
        Person {
            name: name.into(),
            email: email.into(),
        }
    }

    /// Parses `Name <email>` as written in `Co-authored-by:` trailers.
    /// Returns `None` when there is no `<…>` part.
    pub fn parse_ident(s: &str) -> Option<Person> {
        let open = s.rfind('<')?;
        let close = s[open..].find('>')? + open;
        Some(Person {
            name: s[..open].trim().to_string(),
            email: s[open + 1..close].trim().to_string(),
        })
    }
}

impl std::fmt::Display for Person {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} <{}>", self.name, self.email)
    }
}

/// A `Key: value` trailer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Trailer {
    pub key: String,
    pub value: String,
}

/// What happened to a path between the merge base and head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Added,
    Modified,
    Deleted,
    /// Moved from `old_path`, possibly with edits (`similarity` < 100).
    Renamed,
    /// Copied from `old_path`; the source still exists.
    Copied,
    /// Content unchanged, only the executable bit changed.
    ModeChanged,
    /// The entry kind changed (e.g. file ↔ symlink, file ↔ submodule).
    TypeChanged,
}

impl FileStatus {
    /// The lower-case name used in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Added => "added",
            FileStatus::Modified => "modified",
            FileStatus::Deleted => "deleted",
            FileStatus::Renamed => "renamed",
            FileStatus::Copied => "copied",
            FileStatus::ModeChanged => "mode_changed",
            FileStatus::TypeChanged => "type_changed",
        }
    }
}

/// The kind of tree entry at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Executable,
    Symlink,
    /// A gitlink: the path is a submodule and its "content" is a commit id.
    Submodule,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileChange {
    /// Path at head (for deletions: the deleted path). `/`-separated, relative to the
    /// repository root. Non-UTF-8 bytes are escaped as `\xNN` and `path_not_utf8` is set.
    pub path: String,
    /// Source path of a rename or copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    pub status: FileStatus,
    /// Similarity in percent for renames and copies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<u8>,
    /// Entry kind before (absent for additions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_kind: Option<EntryKind>,
    /// Entry kind after (absent for deletions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_kind: Option<EntryKind>,
    /// Either side is binary; line counts are zero and no content is kept.
    pub binary: bool,
    /// The file was too large to diff; it is summarized (sizes only).
    pub summarized: bool,
    /// Size in bytes at head (0 for deletions and submodules).
    pub size: u64,
    pub lines_added: u32,
    pub lines_removed: u32,
    /// Content of added lines, bounded per file and per change.
    pub added: Vec<Line>,
    /// Content of removed lines, bounded like `added`.
    pub removed: Vec<Line>,
    /// Some added or removed lines were not kept because a limit was reached.
    pub content_truncated: bool,
    /// The path contains bytes that are not valid UTF-8.
    pub path_not_utf8: bool,
}

impl FileChange {
    /// A change record with no content, for building fixtures and summaries.
    pub fn new(path: impl Into<String>, status: FileStatus) -> Self {
        FileChange {
            path: path.into(),
            old_path: None,
            status,
            similarity: None,
            old_kind: None,
            new_kind: None,
            binary: false,
            summarized: false,
            size: 0,
            lines_added: 0,
            lines_removed: 0,
            added: Vec::new(),
            removed: Vec::new(),
            content_truncated: false,
            path_not_utf8: false,
        }
    }

    /// Sets the added lines (numbered from 1) and their count; for fixtures and tests.
    pub fn with_added_text(mut self, text: &str) -> Self {
        self.added = text
            .lines()
            .enumerate()
            .map(|(i, l)| Line {
                number: i as u32 + 1,
                text: l.to_string(),
            })
            .collect();
        self.lines_added = self.added.len() as u32;
        self
    }

    /// True when the path is a submodule on either side.
    pub fn is_submodule(&self) -> bool {
        self.old_kind == Some(EntryKind::Submodule) || self.new_kind == Some(EntryKind::Submodule)
    }
}

/// A line of text with its 1-based number in the new (added) or old (removed) file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Line {
    pub number: u32,
    pub text: String,
}

/// Bounds on what a diff source reads, so memory stays bounded on enormous diffs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Files larger than this (either side) are not diffed, only summarized.
    pub max_file_bytes: u64,
    /// At most this many added (and, separately, removed) lines are kept per file.
    pub max_lines_per_file: u32,
    /// Longer lines are cut to this many bytes (on a character boundary).
    pub max_line_bytes: u32,
    /// Total bytes of line content kept over the whole change.
    pub max_total_content_bytes: u64,
    /// At most this many changed files are read; more is an error (fail closed).
    pub max_files: u32,
    /// At most this many commits are read from the range.
    pub max_commits: u32,
    /// Commit message bodies are cut to this many bytes.
    pub max_message_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 8 * 1024 * 1024,
            max_lines_per_file: 20_000,
            max_line_bytes: 4096,
            max_total_content_bytes: 64 * 1024 * 1024,
            max_files: 200_000,
            max_commits: 10_000,
            max_message_bytes: 16 * 1024,
        }
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate_on_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_co_author_idents() {
        let p =
            Person::parse_ident("Claude Opus 4.1 (1M context) <noreply@anthropic.com>").unwrap();
        assert_eq!(p.name, "Claude Opus 4.1 (1M context)");
        assert_eq!(p.email, "noreply@anthropic.com");
        assert!(Person::parse_ident("just a name").is_none());
    }

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate_on_char_boundary("héllo", 2), "h");
        assert_eq!(truncate_on_char_boundary("héllo", 3), "hé");
        assert_eq!(truncate_on_char_boundary("abc", 10), "abc");
    }
}
