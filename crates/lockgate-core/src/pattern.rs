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
#[derive(Debug, Clone)]
pub struct PatternSet {
    sources: Vec<String>,
    set: RegexSet,
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
        let regexes = sources
            .iter()
            .map(|p| to_regex(p))
            .collect::<Result<Vec<_>, _>>()?;
        let set = RegexSet::new(&regexes).map_err(|e| PatternError {
            pattern: sources.join(", "),
            reason: e.to_string(),
        })?;
        Ok(PatternSet { sources, set })
    }

    /// Indexes (in the order given) of the patterns that match `path`.
    pub fn matches(&self, path: &str) -> Vec<usize> {
        self.set.matches(path).into_iter().collect()
    }

    /// Whether any pattern matches.
    pub fn is_match(&self, path: &str) -> bool {
        self.set.is_match(path)
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
