//! CODEOWNERS parsing and resolution with GitHub's semantics.
//!
//! GitHub reads the first file that exists of `.github/CODEOWNERS`, `CODEOWNERS`,
//! `docs/CODEOWNERS` ([`LOCATIONS`]); the **last** matching line wins; a matching line
//! with no owners leaves the path unowned; lines GitHub cannot parse are skipped (and
//! reported here as [`LineError`]s so the user can fix them).
//!
//! ```
//! use lockgate_core::codeowners::CodeOwners;
//! let owners = CodeOwners::parse("* @org/everyone\n/docs/ @org/writers\n/docs/generated/\n");
//! assert_eq!(owners.owners_of("src/main.rs"), ["@org/everyone"]);
//! assert_eq!(owners.owners_of("docs/intro.md"), ["@org/writers"]);
//! assert!(owners.owners_of("docs/generated/api.md").is_empty());
//! ```

use crate::pattern::{PathPattern, PatternSet};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where GitHub looks for the file, in order of precedence.
pub const LOCATIONS: [&str; 3] = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"];

/// One parsed CODEOWNERS line.
#[derive(Debug, Clone)]
pub struct Rule {
    pub pattern: PathPattern,
    /// Owners as written: `@user`, `@org/team` or `email@example.com`.
    pub owners: Vec<String>,
    /// 1-based line number in the file.
    pub line: usize,
}

/// A line GitHub would skip, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// A parsed CODEOWNERS file.
#[derive(Debug, Clone)]
pub struct CodeOwners {
    rules: Vec<Rule>,
    set: Option<PatternSet>,
    errors: Vec<LineError>,
}

/// The kind of an owner reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    User,
    Team,
    Email,
}

impl CodeOwners {
    /// Parses the file's text. Never fails: bad lines are skipped and recorded.
    pub fn parse(text: &str) -> CodeOwners {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            match parse_line(raw) {
                Ok(None) => {}
                Ok(Some((pattern, owners))) => match PathPattern::new(&pattern) {
                    Ok(pattern) => rules.push(Rule {
                        pattern,
                        owners,
                        line,
                    }),
                    Err(e) => errors.push(LineError {
                        line,
                        message: e.to_string(),
                    }),
                },
                Err(message) => errors.push(LineError { line, message }),
            }
        }
        // Every pattern already compiled alone, so the set compiles too; if the
        // combined automaton were ever too large we fall back to per-rule matching.
        let set = PatternSet::new(rules.iter().map(|r| r.pattern.as_str())).ok();
        CodeOwners { rules, set, errors }
    }

    /// The rule that decides ownership of `path`: the last one that matches.
    pub fn rule_for(&self, path: &str) -> Option<&Rule> {
        match &self.set {
            Some(set) => set.matches(path).last().map(|&i| &self.rules[i]),
            None => self.rules.iter().rev().find(|r| r.pattern.is_match(path)),
        }
    }

    /// Owners of `path` (empty when unowned).
    pub fn owners_of(&self, path: &str) -> &[String] {
        self.rule_for(path)
            .map(|r| r.owners.as_slice())
            .unwrap_or(&[])
    }

    /// Parsed rules in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Lines that were skipped, with reasons.
    pub fn errors(&self) -> &[LineError] {
        &self.errors
    }
}

/// Classifies an owner reference, or `None` if GitHub would reject it.
pub fn owner_kind(owner: &str) -> Option<OwnerKind> {
    if let Some(name) = owner.strip_prefix('@') {
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match name.split_once('/') {
            Some((org, team)) if valid(org) && valid(team) => Some(OwnerKind::Team),
            None if valid(name) => Some(OwnerKind::User),
            _ => None,
        }
    } else {
        let (local, domain) = owner.split_once('@')?;
        (!local.is_empty() && domain.contains('.') && !domain.starts_with('.'))
            .then_some(OwnerKind::Email)
    }
}

/// Splits one line into pattern and owners; `Ok(None)` for blanks and comments.
fn parse_line(raw: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let mut pattern = String::new();
    let mut chars = raw.trim_start().char_indices().peekable();
    let offset = raw.len() - raw.trim_start().len();
    // The pattern runs to the first unescaped whitespace; `\ ` and `\#` are literal.
    while let Some(&(_, c)) = chars.peek() {
        match c {
            '\\' => {
                chars.next();
                match chars.next() {
                    Some((_, ' ')) => pattern.push(' '),
                    Some((_, '#')) => pattern.push('#'),
                    Some((_, other)) => {
                        pattern.push('\\');
                        pattern.push(other);
                    }
                    None => pattern.push('\\'),
                }
            }
            '#' if pattern.is_empty() => return Ok(None),
            c if c.is_whitespace() => break,
            c => {
                pattern.push(c);
                chars.next();
            }
        }
    }
    if pattern.is_empty() {
        return Ok(None);
    }
    let mut owners = Vec::new();
    let rest_start = chars
        .peek()
        .map(|&(i, _)| i)
        .unwrap_or(raw.trim_start().len());
    let rest = &raw.trim_start()[rest_start..];
    let mut position = offset + rest_start;
    for word in rest.split_inclusive(char::is_whitespace) {
        let token = word.trim();
        let token_start = position + (word.len() - word.trim_start().len());
        position += word.len();
        if token.is_empty() {
            continue;
        }
        if token.starts_with('#') {
            break;
        }
        if owner_kind(token).is_none() {
            return Err(format!(
                "invalid owner format '{token}' at position {}",
                token_start + 1
            ));
        }
        owners.push(token.to_string());
    }
    Ok(Some((pattern, owners)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_match_wins_and_empty_owner_unowns() {
        let co = CodeOwners::parse(
            "# comment\n*       @global\n*.js    @js-owner #inline\n/apps/ @octocat\n/apps/github\n",
        );
        assert_eq!(co.owners_of("README.md"), ["@global"]);
        assert_eq!(co.owners_of("lib/index.js"), ["@js-owner"]);
        assert_eq!(co.owners_of("apps/x.js"), ["@octocat"]);
        assert!(co.owners_of("apps/github/y.js").is_empty());
        assert!(co.errors().is_empty());
    }

    #[test]
    fn bad_lines_are_skipped_with_line_numbers() {
        let co = CodeOwners::parse("ok.txt @a\nmalformed rule\n!neg @b\n");
        assert_eq!(co.rules().len(), 1);
        assert_eq!(co.errors()[0].line, 2);
        assert_eq!(
            co.errors()[0].message,
            "invalid owner format 'rule' at position 11"
        );
        assert_eq!(co.errors()[1].line, 3);
    }

    #[test]
    fn owner_kinds() {
        assert_eq!(owner_kind("@user"), Some(OwnerKind::User));
        assert_eq!(owner_kind("@org/team-x"), Some(OwnerKind::Team));
        assert_eq!(owner_kind("a@b.com"), Some(OwnerKind::Email));
        assert_eq!(owner_kind("missing-at-sign"), None);
        assert_eq!(owner_kind("@"), None);
    }
}
