//! SARIF 2.1.0 (OASIS) from any analyzer: Semgrep, CodeQL, clippy-sarif, gitleaks….
//!
//! Streamed with typed deserialization: only the fields a finding needs are kept, the
//! rest of the log (artifacts, code flows, graphs, invocations) is skipped as it is
//! read, so memory follows the number of results, not the size of the file.
//!
//! A result's level is its own `level`, else its rule's `defaultConfiguration.level`,
//! else `warning` (SARIF §3.27.10). Results of kind other than `fail`, and suppressed
//! results, are not findings. GitHub's `security-severity` property (CodeQL, many
//! others), on the result or its rule, refines the severity.

use crate::{Bounded, EvidenceError, MAX_ITEMS, MAX_REPORT_BYTES, cut, normalize_path};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use std::io::Read;

const FORMAT: &str = "SARIF";

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// One analyzer finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub tool: String,
    pub rule_id: String,
    /// SARIF level: `error`, `warning`, `note` or `none`.
    pub level: String,
    pub severity: Severity,
    pub message: String,
    /// Repository-relative path, when the result has a file location.
    pub path: Option<String>,
    pub start_line: Option<u32>,
    pub end_line: Option<u32>,
}

/// What a SARIF log says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SarifReport {
    /// Tool name per run.
    pub tools: Vec<String>,
    pub findings: Vec<Finding>,
    /// Results not counted: suppressed, or of kind pass / informational / notApplicable.
    pub ignored: u64,
}

#[derive(Deserialize)]
struct Log {
    version: Option<String>,
    #[serde(default)]
    runs: Vec<Run>,
}

#[derive(Deserialize)]
struct Run {
    tool: Tool,
    #[serde(default)]
    results: Option<Vec<ResultObj>>,
}

#[derive(Deserialize)]
struct Tool {
    driver: Driver,
}

#[derive(Deserialize)]
struct Driver {
    name: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    #[serde(default)]
    id: String,
    #[serde(rename = "defaultConfiguration", default)]
    default_configuration: Option<RuleConfig>,
    #[serde(default)]
    properties: Option<Properties>,
}

#[derive(Deserialize)]
struct RuleConfig {
    level: Option<String>,
}

#[derive(Deserialize)]
struct Properties {
    #[serde(rename = "security-severity", default)]
    security_severity: Option<SecuritySeverity>,
}

/// A number, or a number in a string (as GitHub documents it).
#[derive(Deserialize)]
#[serde(untagged)]
enum SecuritySeverity {
    Number(f64),
    Text(String),
}

impl SecuritySeverity {
    fn value(&self) -> Option<f64> {
        match self {
            SecuritySeverity::Number(n) => Some(*n),
            SecuritySeverity::Text(t) => t.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct ResultObj {
    #[serde(rename = "ruleId")]
    rule_id: Option<String>,
    #[serde(rename = "ruleIndex")]
    rule_index: Option<i64>,
    rule: Option<RuleRef>,
    kind: Option<String>,
    level: Option<String>,
    message: Option<Message>,
    #[serde(default)]
    locations: Vec<Location>,
    #[serde(default)]
    suppressions: Vec<IgnoredAny>,
    #[serde(default)]
    properties: Option<Properties>,
}

#[derive(Deserialize)]
struct RuleRef {
    id: Option<String>,
    index: Option<i64>,
}

#[derive(Deserialize)]
struct Message {
    text: Option<String>,
    id: Option<String>,
}

#[derive(Deserialize)]
struct Location {
    #[serde(rename = "physicalLocation")]
    physical_location: Option<PhysicalLocation>,
}

#[derive(Deserialize)]
struct PhysicalLocation {
    #[serde(rename = "artifactLocation")]
    artifact_location: Option<ArtifactLocation>,
    region: Option<Region>,
}

#[derive(Deserialize)]
struct ArtifactLocation {
    uri: Option<String>,
}

#[derive(Deserialize)]
struct Region {
    #[serde(rename = "startLine")]
    start_line: Option<i64>,
    #[serde(rename = "endLine")]
    end_line: Option<i64>,
}

/// Parses a SARIF log. `root` is the checkout's absolute path, stripped from absolute
/// result paths.
pub fn parse(reader: impl Read, root: Option<&str>) -> Result<SarifReport, EvidenceError> {
    let reader = std::io::BufReader::new(Bounded::new(reader, MAX_REPORT_BYTES));
    let log: Log = serde_json::from_reader(reader).map_err(|e| {
        if e.is_io() {
            EvidenceError::malformed(FORMAT, e.to_string())
        } else {
            EvidenceError::malformed(FORMAT, format!("not a SARIF log: {e}"))
        }
    })?;
    match log.version.as_deref() {
        Some(v) if v.starts_with("2.1") || v.starts_with("2.2") => {}
        Some(v) => {
            return Err(EvidenceError::malformed(
                FORMAT,
                format!("version {v:?} is not supported (SARIF 2.1.0 is)"),
            ));
        }
        None => return Err(EvidenceError::malformed(FORMAT, "no \"version\"")),
    }
    let mut report = SarifReport::default();
    for run in log.runs {
        let tool = run.tool.driver.name;
        let rules = &run.tool.driver.rules;
        report.tools.push(tool.clone());
        for r in run.results.unwrap_or_default() {
            if !r.suppressions.is_empty() || r.kind.as_deref().is_some_and(|k| k != "fail") {
                report.ignored += 1;
                continue;
            }
            if report.findings.len() >= MAX_ITEMS {
                return Err(EvidenceError::TooLarge {
                    format: FORMAT,
                    what: "the number of results",
                    limit: MAX_ITEMS as u64,
                });
            }
            report.findings.push(finding(&tool, rules, r, root));
        }
    }
    Ok(report)
}

fn finding(tool: &str, rules: &[Rule], r: ResultObj, root: Option<&str>) -> Finding {
    let rule_id = r
        .rule_id
        .clone()
        .or_else(|| r.rule.as_ref().and_then(|x| x.id.clone()));
    let index = r
        .rule_index
        .or_else(|| r.rule.as_ref().and_then(|x| x.index));
    let rule = index
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| rules.get(i))
        .or_else(|| {
            rule_id
                .as_deref()
                .and_then(|id| rules.iter().find(|x| x.id == id))
        });
    let level = r
        .level
        .clone()
        .or_else(|| rule.and_then(|x| x.default_configuration.as_ref()?.level.clone()))
        .unwrap_or_else(|| "warning".into());
    let security = r
        .properties
        .as_ref()
        .and_then(|p| p.security_severity.as_ref()?.value())
        .or_else(|| rule.and_then(|x| x.properties.as_ref()?.security_severity.as_ref()?.value()));
    let severity = match security {
        Some(s) if s >= 9.0 => Severity::Critical,
        Some(s) if s >= 7.0 => Severity::High,
        Some(s) if s >= 4.0 => Severity::Medium,
        Some(_) => Severity::Low,
        None => match level.as_str() {
            "error" => Severity::High,
            "warning" => Severity::Medium,
            _ => Severity::Low,
        },
    };
    let physical = r.locations.into_iter().find_map(|l| {
        l.physical_location
            .filter(|p| p.artifact_location.is_some())
    });
    let (path, start_line, end_line) = match physical {
        Some(p) => {
            let line = |v: Option<i64>| v.and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0);
            let start = p.region.as_ref().and_then(|g| line(g.start_line));
            let end = p.region.as_ref().and_then(|g| line(g.end_line)).or(start);
            (
                p.artifact_location
                    .and_then(|a| a.uri)
                    .map(|u| normalize_path(&percent_decode(&u), root)),
                start,
                end,
            )
        }
        None => (None, None, None),
    };
    let message = r.message.and_then(|m| m.text.or(m.id)).unwrap_or_default();
    let rule_id = rule_id.or_else(|| rule.map(|x| x.id.clone()));
    Finding {
        tool: tool.to_string(),
        rule_id: rule_id.unwrap_or_default(),
        level,
        severity,
        message: cut(message),
        path,
        start_line,
        end_line,
    }
}

/// Decodes `%XX` escapes in a URI path (SARIF URIs are URIs, not file paths).
fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_rules_and_security_severity() {
        let log = r#"{
          "version": "2.1.0",
          "runs": [{
            "tool": {"driver": {"name": "semgrep", "rules": [
              {"id": "R1", "defaultConfiguration": {"level": "error"}},
              {"id": "R2", "properties": {"security-severity": "9.1"}}
            ]}},
            "results": [
              {"ruleId": "R1", "message": {"text": "a"},
               "locations": [{"physicalLocation": {"artifactLocation": {"uri": "file:///ci/repo/src/a%20b.py"},
                                                   "region": {"startLine": 3}}}]},
              {"ruleIndex": 1, "level": "note", "message": {"text": "b"}},
              {"ruleId": "R3", "message": {"text": "c"}},
              {"ruleId": "R1", "kind": "pass", "message": {"text": "d"}},
              {"ruleId": "R1", "suppressions": [{"kind": "inSource"}], "message": {"text": "e"}}
            ]
          }]
        }"#;
        let r = parse(log.as_bytes(), Some("/ci/repo")).unwrap();
        assert_eq!(r.tools, ["semgrep"]);
        assert_eq!(r.ignored, 2);
        assert_eq!(r.findings.len(), 3);
        let a = &r.findings[0];
        assert_eq!((a.level.as_str(), a.severity), ("error", Severity::High));
        assert_eq!(a.path.as_deref(), Some("src/a b.py"));
        assert_eq!((a.start_line, a.end_line), (Some(3), Some(3)));
        assert_eq!(r.findings[1].severity, Severity::Critical);
        assert_eq!(r.findings[1].rule_id, "R2");
        assert_eq!(
            (r.findings[2].level.as_str(), r.findings[2].severity),
            ("warning", Severity::Medium)
        );
    }

    #[test]
    fn other_versions_and_garbage_are_refused_by_name() {
        let e = parse(r#"{"version": "1.0.0", "runs": []}"#.as_bytes(), None).unwrap_err();
        assert!(e.to_string().contains("1.0.0"), "{e}");
        let e = parse("not json".as_bytes(), None).unwrap_err();
        assert!(e.to_string().starts_with("SARIF:"), "{e}");
        let e = parse(r#"{"runs": []}"#.as_bytes(), None).unwrap_err();
        assert!(e.to_string().contains("version"), "{e}");
    }

    #[test]
    fn percent_decoding_never_splits_characters() {
        assert_eq!(percent_decode("a%20b%zz%"), "a b%zz%");
        assert_eq!(percent_decode("%é%41"), "%éA");
    }
}
