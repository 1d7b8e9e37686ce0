//! Evidence about a change from the tools around it: static analysis (SARIF 2.1.0),
//! coverage (lcov, Cobertura XML), test results (JUnit XML) and Terraform plans.
//!
//! Parsers read from any `impl Read` and stream where the format allows: reports of
//! tens of megabytes are read without holding their text, and only what the change
//! needs is kept (coverage lines of changed files, findings' locations). Every parser
//! is bounded (sizes, counts, nesting) and tolerant of real-world variants; a report it
//! cannot read is an [`EvidenceError`] naming what went wrong, never a silent zero.
//!
//! [`facts`] combines parsed reports with the change (`lockgate_core::change`) into the
//! facts the trust score and policy see.

pub mod coverage;
pub mod facts;
pub mod junit;
pub mod sarif;
pub mod terraform;
mod xml;

/// A report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("{format}: {message}")]
    Malformed {
        format: &'static str,
        message: String,
    },
    #[error("{format}: {what} exceeds the limit of {limit}")]
    TooLarge {
        format: &'static str,
        what: &'static str,
        limit: u64,
    },
    #[error("reading the report: {0}")]
    Io(#[from] std::io::Error),
}

impl EvidenceError {
    pub(crate) fn malformed(format: &'static str, message: impl Into<String>) -> EvidenceError {
        EvidenceError::Malformed {
            format,
            message: message.into(),
        }
    }
}

/// Largest report read, in bytes (streamed; this bounds time, not memory).
pub const MAX_REPORT_BYTES: u64 = 1 << 30;
/// Most results, test cases, coverage records or resource changes kept per report.
pub const MAX_ITEMS: usize = 2_000_000;
/// Longest message kept (characters); longer ones are cut.
pub const MAX_MESSAGE_CHARS: usize = 500;

pub(crate) fn cut(mut s: String) -> String {
    if let Some((i, _)) = s.char_indices().nth(MAX_MESSAGE_CHARS) {
        s.truncate(i);
        s.push('…');
    }
    s
}

/// A reader that fails once more than `limit` bytes have been read.
pub(crate) struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R> Bounded<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Bounded<R> {
        Bounded { inner, left: limit }
    }
}

impl<R: std::io::Read> std::io::Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(std::io::Error::other(format!(
                "the report is larger than {MAX_REPORT_BYTES} bytes"
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl<R: std::io::BufRead> std::io::BufRead for Bounded<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        if amt as u64 > self.left {
            self.left = 0;
        } else {
            self.left -= amt as u64;
        }
        self.inner.consume(amt)
    }
}

/// Normalizes a path a tool reported to the repository's `/`-separated relative form:
/// strips `file://`, a leading `./`, and `root` (the checkout's absolute path) if given.
pub fn normalize_path(path: &str, root: Option<&str>) -> String {
    let mut p = path
        .strip_prefix("file://")
        .unwrap_or(path)
        .replace('\\', "/");
    if let Some(root) = root {
        let root = root.trim_end_matches('/');
        if let Some(rest) = p.strip_prefix(root).and_then(|r| r.strip_prefix('/')) {
            p = rest.to_string();
        }
    }
    while let Some(rest) = p.strip_prefix("./") {
        p = rest.to_string();
    }
    p
}

/// Whether a path a report names is the repository path `repo_path`: equal, or one
/// ends with the other at a `/` boundary (reports often use absolute or
/// source-relative paths).
pub fn same_file(report_path: &str, repo_path: &str) -> bool {
    report_path == repo_path
        || report_path
            .strip_suffix(repo_path)
            .is_some_and(|pre| pre.ends_with('/'))
        || repo_path
            .strip_suffix(report_path)
            .is_some_and(|pre| pre.ends_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_and_match_at_boundaries() {
        assert_eq!(
            normalize_path("file:///src/app/x.rs", Some("/src/app")),
            "x.rs"
        );
        assert_eq!(normalize_path("./a/b.py", None), "a/b.py");
        assert_eq!(normalize_path("a\\b.cs", None), "a/b.cs");
        assert!(same_file("/home/ci/repo/src/x.rs", "src/x.rs"));
        assert!(same_file("x.rs", "src/x.rs"));
        assert!(!same_file("rc/x.rs", "src/x.rs"));
        assert!(!same_file("prefix-src/x.rs", "src/x.rs"));
        assert!(!same_file("src/x.rs.bak", "src/x.rs"));
    }
}
