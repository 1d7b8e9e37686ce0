//! SARIF 2.1.0 (OASIS) from any analyzer: Semgrep, CodeQL, clippy-sarif, gitleaks….
//!
//! Streamed: results are deserialized one at a time (only the fields a finding needs)
//! and handed to the caller; the rest of the log (artifacts, code flows, graphs,
//! invocations) is skipped as it is read. Memory stays flat in the size of the file.
//!
//! A result's level is its own `level`, else its rule's `defaultConfiguration.level`,
//! else `warning` (SARIF §3.27.10). Results of kind other than `fail`, and suppressed
//! results, are not findings. GitHub's `security-severity` property (CodeQL, many
//! others), on the result or its rule, refines the severity.

use crate::{Bounded, EvidenceError, MAX_ITEMS, MAX_REPORT_BYTES, cut, normalize_path};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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

/// Parses a SARIF log, keeping every finding. `root` is the checkout's absolute path,
/// stripped from absolute result paths.
pub fn parse(reader: impl Read, root: Option<&str>) -> Result<SarifReport, EvidenceError> {
    let mut findings = Vec::new();
    let mut report = parse_with(reader, root, |f| findings.push(f))?;
    report.findings = findings;
    Ok(report)
}

/// Parses a SARIF log, handing each finding to `sink` as it is read: results are never
/// held all at once, so memory stays flat whatever the number of results (unless a
/// run lists its results before its tool, when that run's results are buffered).
/// The returned report has tools and the ignored count, and no findings.
pub fn parse_with(
    reader: impl Read,
    root: Option<&str>,
    mut sink: impl FnMut(Finding),
) -> Result<SarifReport, EvidenceError> {
    let reader = std::io::BufReader::new(Bounded::new(reader, MAX_REPORT_BYTES));
    let mut state = State {
        sink: &mut sink,
        root,
        report: SarifReport::default(),
        count: 0,
        too_large: false,
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let version = LogSeed { state: &mut state }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    if state.too_large {
        return Err(EvidenceError::TooLarge {
            format: FORMAT,
            what: "the number of results",
            limit: MAX_ITEMS as u64,
        });
    }
    let version = version.map_err(|e| {
        if e.is_io() {
            EvidenceError::malformed(FORMAT, e.to_string())
        } else {
            EvidenceError::malformed(FORMAT, format!("not a SARIF log: {e}"))
        }
    })?;
    match version.as_deref() {
        Some(v) if v.starts_with("2.1") || v.starts_with("2.2") => {}
        Some(v) => {
            return Err(EvidenceError::malformed(
                FORMAT,
                format!("version {v:?} is not supported (SARIF 2.1.0 is)"),
            ));
        }
        None => return Err(EvidenceError::malformed(FORMAT, "no \"version\"")),
    }
    Ok(state.report)
}

/// What the streaming visitors share.
struct State<'a> {
    sink: &'a mut dyn FnMut(Finding),
    root: Option<&'a str>,
    report: SarifReport,
    count: usize,
    too_large: bool,
}

impl State<'_> {
    fn result<E: serde::de::Error>(
        &mut self,
        tool: &str,
        rules: &[Rule],
        r: ResultObj,
    ) -> Result<(), E> {
        if !r.suppressions.is_empty() || r.kind.as_deref().is_some_and(|k| k != "fail") {
            self.report.ignored += 1;
            return Ok(());
        }
        self.count += 1;
        if self.count > MAX_ITEMS {
            self.too_large = true;
            return Err(E::custom("too many results"));
        }
        (self.sink)(finding(tool, rules, r, self.root));
        Ok(())
    }
}

/// The log object: returns its `version`; streams `runs`; skips everything else.
struct LogSeed<'s, 'a> {
    state: &'s mut State<'a>,
}

impl<'de> DeserializeSeed<'de> for LogSeed<'_, '_> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LogSeed<'_, '_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a SARIF log object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut version = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "version" => version = map.next_value::<Option<String>>()?,
                "runs" => map.next_value_seed(RunsSeed {
                    state: &mut *self.state,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(version)
    }
}

/// `runs`: an array of run objects (null tolerated).
struct RunsSeed<'s, 'a> {
    state: &'s mut State<'a>,
}

impl<'de> DeserializeSeed<'de> for RunsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RunsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of runs")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(RunSeed {
                state: &mut *self.state,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// One run: its tool (name and rules), then its results, streamed.
struct RunSeed<'s, 'a> {
    state: &'s mut State<'a>,
}

impl<'de> DeserializeSeed<'de> for RunSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RunSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a run object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut tool: Option<Tool> = None;
        let mut early: Vec<ResultObj> = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "tool" => tool = Some(map.next_value()?),
                "results" => match &tool {
                    Some(t) => map.next_value_seed(ResultsSeed {
                        state: &mut *self.state,
                        tool: t,
                    })?,
                    // Results before the tool: rare; keep them until the rules arrive.
                    None => {
                        early = map
                            .next_value::<Option<Vec<ResultObj>>>()?
                            .unwrap_or_default()
                    }
                },
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let tool = tool.ok_or_else(|| serde::de::Error::missing_field("tool"))?;
        for r in early {
            self.state
                .result(&tool.driver.name, &tool.driver.rules, r)?;
        }
        self.state.report.tools.push(tool.driver.name);
        Ok(())
    }
}

/// `results`: each result object is read, turned into a finding and dropped.
struct ResultsSeed<'s, 'a, 't> {
    state: &'s mut State<'a>,
    tool: &'t Tool,
}

impl<'de> DeserializeSeed<'de> for ResultsSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ResultsSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of results")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(r) = seq.next_element::<ResultObj>()? {
            self.state
                .result(&self.tool.driver.name, &self.tool.driver.rules, r)?;
        }
        Ok(())
    }
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

    #[test]
    fn results_before_the_tool_and_version_last_still_resolve_rules() {
        let log = br#"{"runs":[{"results":[{"ruleIndex":0,"message":{"text":"m"},
            "locations":[{"physicalLocation":{"artifactLocation":{"uri":"a.rs"},"region":{"startLine":3}}}]}],
            "tool":{"driver":{"name":"t","rules":[{"id":"R0","defaultConfiguration":{"level":"error"}}]}}},
            {"tool":{"driver":{"name":"u"}},"results":null}],
            "version":"2.1.0"}"#;
        let r = parse(&log[..], None).unwrap();
        assert_eq!(r.tools, ["t", "u"]);
        assert_eq!(r.findings.len(), 1);
        assert_eq!(
            (r.findings[0].rule_id.as_str(), r.findings[0].severity),
            ("R0", Severity::High)
        );
        let mut seen = 0;
        let streamed = parse_with(&log[..], None, |_| seen += 1).unwrap();
        assert_eq!((seen, streamed.findings.len()), (1, 0));
        // A run without a tool and trailing garbage are errors.
        assert!(parse(&br#"{"version":"2.1.0","runs":[{"results":[]}]}"#[..], None).is_err());
        assert!(parse(&br#"{"version":"2.1.0","runs":[]} {}"#[..], None).is_err());
    }
}
