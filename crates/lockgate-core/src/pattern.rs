//! Path patterns with GitHub CODEOWNERS semantics, used for CODEOWNERS and for
//! every path rule in `.lockgate.toml`.
//!
//! Hand-written on purpose: GitHub's rules are close to, but not, gitignore's (and not
//! `globset`'s): no `!` negation and no `[...]` classes (brackets are literal); a pattern
//! without a slash matches at any depth; a leading or inner slash anchors it to the root;
//! a trailing slash matches only directory contents; a trailing lone `*` segment matches
//! only direct children (`docs/*` owns `docs/a.md`, not `docs/x/b.md`), while any other
//! pattern that names a directory also matches everything under it. Each pattern is
//! translated to one anchored regular expression; a set of patterns becomes one
//! [`regex::RegexSet`] so a path is matched against all of them in a single pass.
//!
//! ```
//! use lockgate_core::pattern::PathPattern;
//! let p = PathPattern::new("/docs/*").unwrap();
//! assert!(p.is_match("docs/intro.md"));
//! assert!(!p.is_match("docs/guide/intro.md"));
//! assert!(PathPattern::new("*.js").unwrap().is_match("web/app/index.js"));
//! ```

use regex::{Regex, RegexSet};
use std::collections::HashMap;

/// A pattern could not be compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid path pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

/// One compiled path pattern.
#[derive(Debug, Clone)]
pub struct PathPattern {
    source: String,
    regex: Regex,
}

impl PathPattern {
    /// Compiles `pattern`. Fails on empty patterns and on `!` negation, which
    /// CODEOWNERS does not support (silently accepting it would un-own files).
    pub fn new(pattern: &str) -> Result<PathPattern, PatternError> {
        let regex = Regex::new(&to_regex(pattern)?).map_err(|e| PatternError {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })?;
        Ok(PathPattern {
            source: pattern.to_string(),
            regex,
        })
    }

    /// Whether `path` (relative, `/`-separated, no leading slash) matches.
    pub fn is_match(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// Many patterns matched in one pass; reports every pattern that matches.
///
/// Most real patterns are plain literals in disguise — `Makefile`, `*.tf`, `tests/`,
/// `/docs/`, `README*` — so each pattern is first sorted into a literal strategy
/// answered by hash lookups and string comparisons on the path's segments, and only the
/// rest are compiled into one [`RegexSet`]. Building a regex set for hundreds of
/// patterns costs tens of milliseconds, which is most of a typical `lockgate check`;
/// the strategies cost microseconds. (The same idea as `globset`'s match strategies,
/// applied to CODEOWNERS semantics, which globset does not implement.)
#[derive(Debug, Clone)]
pub struct PatternSet {
    sources: Vec<String>,
    strategies: Strategies,
    /// Patterns no literal strategy covers, and their indexes in `sources`.
    regex: Option<(RegexSet, Vec<usize>)>,
}

/// Literal match strategies; every entry maps to pattern indexes.
#[derive(Debug, Clone, Default)]
struct Strategies {
    /// `name` (unanchored, one literal segment): some segment equals it.
    segment: HashMap<String, Vec<usize>>,
    /// `name/` (unanchored directory): some segment before the last equals it.
    directory: HashMap<String, Vec<usize>>,
    /// `*suffix`: some segment ends with it; keyed by the text after its last dot.
    suffix: HashMap<String, Vec<(String, usize)>>,
    /// `*suffix` without a dot.
    suffix_other: Vec<(String, usize)>,
    /// `prefix*`: some segment starts with it.
    segment_prefix: Vec<(String, usize)>,
    /// Anchored literal paths: (path, directory contents only).
    anchored: Vec<(String, bool, usize)>,
}

impl PatternSet {
    /// Compiles all `patterns`; the first invalid one is reported.
    pub fn new<I, S>(patterns: I) -> Result<PatternSet, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let sources: Vec<String> = patterns
            .into_iter()
            .map(|p| p.as_ref().to_string())
            .collect();
        let mut strategies = Strategies::default();
        let mut regexes = Vec::new();
        let mut regex_index = Vec::new();
        for (index, pattern) in sources.iter().enumerate() {
            // Validates the pattern even when a literal strategy will answer for it.
            let regex = to_regex(pattern)?;
            if !strategies.add(pattern, index) {
                regexes.push(regex);
                regex_index.push(index);
            }
        }
        let regex = if regexes.is_empty() {
            None
        } else {
            let set = RegexSet::new(&regexes).map_err(|e| PatternError {
                pattern: sources.join(", "),
                reason: e.to_string(),
            })?;
            Some((set, regex_index))
        };
        Ok(PatternSet {
            sources,
            strategies,
            regex,
        })
    }

    /// Indexes (in the order given) of the patterns that match `path`.
    pub fn matches(&self, path: &str) -> Vec<usize> {
        let mut out = Vec::new();
        self.strategies.matches(path, &mut out);
        if let Some((set, index)) = &self.regex {
            out.extend(set.matches(path).into_iter().map(|i| index[i]));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether any pattern matches.
    pub fn is_match(&self, path: &str) -> bool {
        !self.matches(path).is_empty()
    }

    /// The pattern at `index` as written.
    pub fn source(&self, index: usize) -> &str {
        &self.sources[index]
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// True when the set holds no pattern.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

/// Checks a pattern's syntax without compiling it.
pub fn validate(pattern: &str) -> Result<(), PatternError> {
    to_regex(pattern).map(|_| ())
}

/// A literal: no wildcard, no escape.
fn is_literal(s: &str) -> bool {
    !s.is_empty() && !s.contains(['*', '?', '\\'])
}

impl Strategies {
    /// Files `pattern` under a literal strategy; false if none fits.
    fn add(&mut self, pattern: &str, index: usize) -> bool {
        if let Some(rest) = pattern.strip_prefix('/') {
            // Anchored: `/a/b` (and its contents) or `/a/b/` (contents only).
            let (body, dir_only) = match rest.strip_suffix('/') {
                Some(body) => (body, true),
                None => (rest, false),
            };
            if is_literal(body) && !body.contains("//") {
                self.anchored.push((body.to_string(), dir_only, index));
                return true;
            }
            return false;
        }
        if let Some(dir) = pattern.strip_suffix('/') {
            if is_literal(dir) && !dir.contains('/') {
                self.directory
                    .entry(dir.to_string())
                    .or_default()
                    .push(index);
                return true;
            }
            if is_literal(dir) {
                // `a/b/`: anchored by its inner slash.
                self.anchored.push((dir.to_string(), true, index));
                return true;
            }
            return false;
        }
        if pattern.contains('/') {
            if is_literal(pattern) {
                self.anchored.push((pattern.to_string(), false, index));
                return true;
            }
            return false;
        }
        if is_literal(pattern) {
            self.segment
                .entry(pattern.to_string())
                .or_default()
                .push(index);
            return true;
        }
        if let Some(suffix) = pattern.strip_prefix('*')
            && is_literal(suffix)
        {
            match suffix.rsplit_once('.') {
                Some((_, ext)) => self
                    .suffix
                    .entry(ext.to_string())
                    .or_default()
                    .push((suffix.to_string(), index)),
                None => self.suffix_other.push((suffix.to_string(), index)),
            }
            return true;
        }
        if let Some(prefix) = pattern.strip_suffix('*')
            && is_literal(prefix)
        {
            self.segment_prefix.push((prefix.to_string(), index));
            return true;
        }
        false
    }

    fn matches(&self, path: &str, out: &mut Vec<usize>) {
        let segments: Vec<&str> = path.split('/').collect();
        let last = segments.len() - 1;
        for (i, segment) in segments.iter().enumerate() {
            if let Some(hits) = self.segment.get(*segment) {
                out.extend(hits);
            }
            if i < last
                && let Some(hits) = self.directory.get(*segment)
            {
                out.extend(hits);
            }
            if let Some((_, ext)) = segment.rsplit_once('.')
                && let Some(candidates) = self.suffix.get(ext)
            {
                out.extend(
                    candidates
                        .iter()
                        .filter(|(s, _)| segment.ends_with(s.as_str()))
                        .map(|(_, i)| *i),
                );
            }
            out.extend(
                self.suffix_other
                    .iter()
                    .filter(|(s, _)| segment.ends_with(s.as_str()))
                    .map(|(_, i)| *i),
            );
            out.extend(
                self.segment_prefix
                    .iter()
                    .filter(|(p, _)| segment.starts_with(p.as_str()))
                    .map(|(_, i)| *i),
            );
        }
        for (literal, dir_only, index) in &self.anchored {
            let below = path.len() > literal.len()
                && path.starts_with(literal.as_str())
                && path.as_bytes()[literal.len()] == b'/';
            if below || (!dir_only && path == literal) {
                out.push(*index);
            }
        }
    }
}

/// Translates one pattern to an anchored regular expression.
fn to_regex(pattern: &str) -> Result<String, PatternError> {
    let err = |reason: &str| PatternError {
        pattern: pattern.to_string(),
        reason: reason.to_string(),
    };
    if pattern.is_empty() {
        return Err(err("empty pattern"));
    }
    if pattern.starts_with('!') {
        return Err(err(
            "negation with '!' is not supported by CODEOWNERS semantics",
        ));
    }
    if pattern.contains("***") {
        return Err(err("'***' is not a valid wildcard"));
    }

    let mut segments: Vec<&str> = pattern.split('/').collect();
    if segments[0].is_empty() {
        // Leading slash: anchored at the root.
        segments.remove(0);
    } else if segments.len() == 1 || (segments.len() == 2 && segments[1].is_empty()) {
        // A single segment (optionally with a trailing slash) matches at any depth.
        if segments[0] != "**" {
            segments.insert(0, "**");
        }
    }
    if segments.len() > 1 && segments.last() == Some(&"") {
        // A trailing slash means "everything inside this directory".
        *segments.last_mut().expect("non-empty") = "**";
    }
    if segments.iter().any(|s| s.is_empty()) {
        return Err(err("empty path segment ('//')"));
    }

    let last = segments.len() - 1;
    let mut re = String::from(r"\A");
    let mut need_slash = false;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "**" if i == 0 && i == last => re.push_str(".+"),
            "**" if i == 0 => {
                re.push_str("(?:.+/)?");
                need_slash = false;
            }
            // After a leading `**` there is no segment to separate from.
            "**" if i == last && !need_slash => re.push_str(".+"),
            "**" if i == last => re.push_str("/.*"),
            "**" => {
                re.push_str("(?:/.+)?");
                need_slash = true;
            }
            "*" => {
                if need_slash {
                    re.push('/');
                }
                // A lone `*` segment matches exactly one segment and, unlike every
                // other pattern, not the contents below it.
                re.push_str("[^/]+");
                need_slash = true;
            }
            _ => {
                if need_slash {
                    re.push('/');
                }
                push_segment(&mut re, segment);
                if i == last {
                    // A named file or directory also matches everything below it.
                    re.push_str("(?:/.*)?");
                }
                need_slash = true;
            }
        }
    }
    re.push_str(r"\z");
    Ok(re)
}

/// Appends one literal-with-wildcards segment: `*` and `?` stay within the segment,
/// a backslash escapes the next character, everything else is literal.
fn push_segment(re: &mut String, segment: &str) {
    let mut escape = false;
    for ch in segment.chars() {
        if escape {
            escape = false;
            push_literal(re, ch);
            continue;
        }
        match ch {
            '\\' => escape = true,
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            _ => push_literal(re, ch),
        }
    }
    if escape {
        // A trailing backslash escapes nothing; treat it as a literal backslash.
        push_literal(re, '\\');
    }
}

fn push_literal(re: &mut String, ch: char) {
    let mut buf = [0u8; 4];
    re.push_str(&regex::escape(ch.encode_utf8(&mut buf)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        PathPattern::new(pattern).unwrap().is_match(path)
    }

    #[test]
    fn documented_examples() {
        assert!(m("*", "README.md"));
        assert!(m("*.js", "src/index.js"));
        assert!(m("/build/logs/", "build/logs/today.log"));
        assert!(!m("/build/logs/", "src/build/logs/today.log"));
        assert!(m("docs/*", "docs/getting-started.md"));
        assert!(!m("docs/*", "docs/build-app/troubleshooting.md"));
        assert!(m("apps/", "web/apps/github/x.js"));
        assert!(m("/docs/", "docs/a/b/c.md"));
        assert!(m("**/logs", "deeply/nested/logs/x.log"));
        assert!(!m("/scripts/", "other/scripts/x"));
    }

    #[test]
    fn rejects_what_codeowners_does_not_support() {
        assert!(PathPattern::new("!foo").is_err());
        assert!(PathPattern::new("").is_err());
        assert!(PathPattern::new("a//b").is_err());
    }

    #[test]
    fn brackets_are_literal() {
        assert!(m("/apps/[param]/file.ts", "apps/[param]/file.ts"));
        assert!(!m("/apps/[param]/file.ts", "apps/p/file.ts"));
    }

    #[test]
    fn set_reports_all_matches_in_order() {
        let set = PatternSet::new(["*.md", "docs/", "/src/"]).unwrap();
        assert_eq!(set.matches("docs/a.md"), vec![0, 1]);
        assert_eq!(set.matches("src/lib.rs"), vec![2]);
        assert!(set.matches("lib.rs").is_empty());
    }
}
