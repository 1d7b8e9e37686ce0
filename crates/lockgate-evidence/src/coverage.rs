//! Line coverage from lcov tracefiles and Cobertura XML, into one shape.
//!
//! Both are streamed. Per-line hit counts are kept only for the files the caller asks
//! for (the changed files: diff coverage needs them); every other file contributes its
//! line totals only, so memory follows the change, not the repository.
//!
//! Totals per file come from the line records themselves (lcov `DA`, Cobertura
//! `<line>`), never from the summary fields (`LF`/`LH`, `line-rate`), which tools fill
//! inconsistently. A line is covered when its hit count is above zero; partially
//! covered branches still count the line as covered (line coverage, as lcov and
//! pycobertura report it).
//!
//! A file appearing in several sections (lcov test-name sections, Cobertura classes of
//! one file) is merged line by line when kept. For the other files, lcov sections (which
//! repeat the same lines per test) take the larger totals, and Cobertura classes (which
//! split a file's lines) are summed.

use crate::xml::{XmlEvent, XmlReader};
use crate::{Bounded, EvidenceError, MAX_ITEMS, MAX_REPORT_BYTES, normalize_path};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read};

/// Coverage of a code base.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CoverageReport {
    /// `lcov` or `cobertura`.
    pub format: String,
    /// Executable lines in all files.
    pub lines_total: u64,
    /// Of those, lines with hits.
    pub lines_covered: u64,
    /// Hit counts per line, for the files that were asked for.
    pub files: BTreeMap<String, BTreeMap<u32, u64>>,
    /// Records that could not be read and were skipped (lenient, like grcov).
    pub skipped_records: u64,
}

impl CoverageReport {
    /// Overall line coverage in [0, 1], or `None` without executable lines.
    pub fn ratio(&self) -> Option<f64> {
        (self.lines_total > 0).then(|| self.lines_covered as f64 / self.lines_total as f64)
    }

    /// Hit counts of the file a repository path names (exact path first, then a
    /// report path that ends with it or that it ends with).
    pub fn lines_of(&self, repo_path: &str) -> Option<&BTreeMap<u32, u64>> {
        self.files.get(repo_path).or_else(|| {
            self.files
                .iter()
                .find(|(p, _)| crate::same_file(p, repo_path))
                .map(|(_, l)| l)
        })
    }
}

/// Which files to keep line detail for, by report path (normalized).
pub type Keep<'a> = &'a dyn Fn(&str) -> bool;

/// Accumulates totals and kept files.
struct Builder<'a> {
    keep: Keep<'a>,
    report: CoverageReport,
    /// Non-kept files seen: (total, covered).
    others: HashMap<String, (u64, u64)>,
    records: usize,
}

impl<'a> Builder<'a> {
    fn new(format: &str, keep: Keep<'a>) -> Builder<'a> {
        Builder {
            keep,
            report: CoverageReport {
                format: format.into(),
                ..CoverageReport::default()
            },
            others: HashMap::new(),
            records: 0,
        }
    }

    /// One section of one file. `sum_others`: sections split a file (Cobertura) rather
    /// than repeat it (lcov).
    fn section(
        &mut self,
        format: &'static str,
        path: String,
        lines: BTreeMap<u32, u64>,
        sum_others: bool,
    ) -> Result<(), EvidenceError> {
        self.records += lines.len();
        if self.records > MAX_ITEMS * 10 {
            return Err(EvidenceError::TooLarge {
                format,
                what: "the number of line records",
                limit: MAX_ITEMS as u64 * 10,
            });
        }
        if (self.keep)(&path) {
            let merged = self.report.files.entry(path).or_default();
            for (line, hits) in lines {
                *merged.entry(line).or_default() += hits;
            }
        } else {
            let total = lines.len() as u64;
            let covered = lines.values().filter(|h| **h > 0).count() as u64;
            let entry = self.others.entry(path).or_default();
            if sum_others {
                entry.0 += total;
                entry.1 += covered;
            } else {
                entry.0 = entry.0.max(total);
                entry.1 = entry.1.max(covered);
            }
        }
        Ok(())
    }

    fn finish(mut self) -> CoverageReport {
        let (mut total, mut covered) = (0, 0);
        for (t, c) in self.others.values() {
            total += t;
            covered += c;
        }
        for lines in self.report.files.values() {
            total += lines.len() as u64;
            covered += lines.values().filter(|h| **h > 0).count() as u64;
        }
        self.report.lines_total = total;
        self.report.lines_covered = covered;
        self.report
    }
}

/// Parses an lcov tracefile (`SF:`, `DA:<line>,<hits>[,<checksum>]`,
/// `end_of_record`). Other records (functions, branches, summaries, MC/DC) are not
/// needed for line coverage and are skipped; a malformed `DA` record is skipped and
/// counted. A file with no `SF:` record at all is not a tracefile: an error.
pub fn parse_lcov(
    reader: impl Read,
    root: Option<&str>,
    keep: Keep<'_>,
) -> Result<CoverageReport, EvidenceError> {
    const FORMAT: &str = "lcov";
    let mut reader = std::io::BufReader::new(Bounded::new(reader, MAX_REPORT_BYTES));
    let mut b = Builder::new(FORMAT, keep);
    let mut current: Option<(String, BTreeMap<u32, u64>)> = None;
    let mut saw_source = false;
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        // Lines are bounded: a tracefile line is a record, never megabytes.
        let n = (&mut reader).take(64 * 1024).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        number += 1;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim().trim_start_matches('\u{feff}');
        if let Some(path) = text.strip_prefix("SF:") {
            if let Some((p, lines)) = current.take() {
                b.section(FORMAT, p, lines, false)?;
            }
            saw_source = true;
            current = Some((normalize_path(path.trim(), root), BTreeMap::new()));
        } else if let Some(rest) = text.strip_prefix("DA:") {
            let mut parts = rest.split(',');
            let parsed = (
                parts.next().and_then(|l| l.trim().parse::<u32>().ok()),
                parts.next().and_then(|h| parse_hits(h.trim())),
            );
            match (parsed, current.as_mut()) {
                ((Some(l), Some(h)), Some((_, lines))) if l > 0 => {
                    *lines.entry(l).or_default() += h;
                }
                _ => b.report.skipped_records += 1,
            }
        } else if text == "end_of_record" {
            if let Some((p, lines)) = current.take() {
                b.section(FORMAT, p, lines, false)?;
            }
        } else if !saw_source && !text.is_empty() && !is_lcov_record(text) {
            return Err(EvidenceError::malformed(
                FORMAT,
                format!("line {number} is not an lcov record: this is not a tracefile"),
            ));
        }
    }
    if let Some((p, lines)) = current.take() {
        b.section(FORMAT, p, lines, false)?;
    }
    if !saw_source {
        return Err(EvidenceError::malformed(
            FORMAT,
            "no SF: record: this is not a tracefile",
        ));
    }
    Ok(b.finish())
}

/// Record names lcov writes (`TN:`, `FN:`, `BRDA:`, …) or a comment.
fn is_lcov_record(text: &str) -> bool {
    text.starts_with('#')
        || text
            .split_once(':')
            .is_some_and(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_uppercase()))
}

/// A hit count: a non-negative integer, or a float some tools write (`1.0`, `2e3`).
fn parse_hits(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().or_else(|| {
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

/// Parses Cobertura XML (coverage.py, Istanbul, JaCoCo converters, gcovr…): the
/// `<line number hits>` elements directly under each `<class filename>` (lines under
/// `<method>` repeat them and are skipped). Paths are joined to a `<source>` when that
/// makes them repository-relative.
pub fn parse_cobertura(
    reader: impl Read,
    root: Option<&str>,
    keep: Keep<'_>,
) -> Result<CoverageReport, EvidenceError> {
    const FORMAT: &str = "Cobertura";
    let mut xml = XmlReader::new(std::io::BufReader::new(reader), FORMAT);
    let mut b = Builder::new("cobertura", keep);
    let mut sources: Vec<String> = Vec::new();
    let mut in_source = false;
    let mut source_text = String::new();
    let mut class: Option<(String, BTreeMap<u32, u64>)> = None;
    let mut in_method = 0usize;
    let mut saw_root = false;
    loop {
        match xml.next()? {
            XmlEvent::Start { name, attrs, empty } => match name.as_str() {
                "coverage" => saw_root = true,
                "source" if !empty => {
                    in_source = true;
                    source_text.clear();
                }
                "class" => {
                    let filename = attrs.get("filename").cloned().unwrap_or_default();
                    let path = resolve(&filename, &sources, root);
                    if empty {
                        b.section(FORMAT, path, BTreeMap::new(), true)?;
                    } else {
                        class = Some((path, BTreeMap::new()));
                    }
                }
                "method" if !empty => in_method += 1,
                "line" if in_method == 0 => {
                    if let Some((_, lines)) = class.as_mut() {
                        let number = attrs
                            .get("number")
                            .and_then(|n| n.trim().parse::<u32>().ok());
                        let hits = attrs.get("hits").and_then(|h| parse_hits(h.trim()));
                        match (number, hits) {
                            (Some(n), Some(h)) if n > 0 => *lines.entry(n).or_default() += h,
                            _ => b.report.skipped_records += 1,
                        }
                    }
                }
                _ => {}
            },
            XmlEvent::Text(t) if in_source => source_text.push_str(&t),
            XmlEvent::Text(_) => {}
            XmlEvent::End { name } => match name.as_str() {
                "source" => {
                    in_source = false;
                    sources.push(source_text.trim().to_string());
                }
                "method" => in_method = in_method.saturating_sub(1),
                "class" => {
                    if let Some((p, lines)) = class.take() {
                        b.section(FORMAT, p, lines, true)?;
                    }
                }
                _ => {}
            },
            XmlEvent::Eof => break,
        }
    }
    if !saw_root {
        return Err(EvidenceError::malformed(
            FORMAT,
            "no <coverage> element: this is not a Cobertura report",
        ));
    }
    Ok(b.finish())
}

/// A Cobertura filename as a repository path: joined to the first source that makes it
/// relative to `root`, else as written.
fn resolve(filename: &str, sources: &[String], root: Option<&str>) -> String {
    let direct = normalize_path(filename, root);
    if filename.starts_with('/') || root.is_none() {
        return direct;
    }
    for source in sources {
        let joined = normalize_path(
            &format!("{}/{}", source.trim_end_matches('/'), filename),
            root,
        );
        if !joined.starts_with('/') {
            return joined;
        }
    }
    direct
}

/// Parses either format, told apart by the first non-blank byte (`<`: Cobertura).
pub fn parse_any(
    bytes: &[u8],
    root: Option<&str>,
    keep: Keep<'_>,
) -> Result<CoverageReport, EvidenceError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<') {
        parse_cobertura(bytes, root, keep)
    } else {
        parse_lcov(bytes, root, keep)
    }
}

/// Opens a coverage file of either format, streaming it.
pub fn parse_file(
    path: &std::path::Path,
    root: Option<&str>,
    keep: Keep<'_>,
) -> Result<CoverageReport, EvidenceError> {
    let mut file = std::io::BufReader::new(std::fs::File::open(path)?);
    let first = file
        .fill_buf()?
        .iter()
        .find(|b| !b.is_ascii_whitespace() && **b != 0xEF && **b != 0xBB && **b != 0xBF)
        .copied();
    if first == Some(b'<') {
        parse_cobertura(file, root, keep)
    } else {
        parse_lcov(file, root, keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcov_sections_merge_and_bad_records_are_skipped() {
        let text = "\u{feff}TN:unit\r\nSF:/ci/repo/src/a.rs\nFN:1,main\nDA:1,3\nDA:2,0\nDA:x,1\nDA:3,-1\nLF:9\nLH:9\nend_of_record\nTN:integration\nSF:/ci/repo/src/a.rs\nDA:2,4\nend_of_record\nSF:src/other.rs\nDA:1,0\nDA:2,0\nend_of_record\n";
        let r = parse_lcov(text.as_bytes(), Some("/ci/repo"), &|p| p == "src/a.rs").unwrap();
        assert_eq!(r.files["src/a.rs"], BTreeMap::from([(1, 3), (2, 4)]));
        assert_eq!(r.skipped_records, 2);
        assert_eq!((r.lines_total, r.lines_covered), (4, 2));
        assert_eq!(r.ratio(), Some(0.5));
        assert!(r.lines_of("src/a.rs").is_some());
        assert!(parse_lcov("<html>".as_bytes(), None, &|_| true).is_err());
        assert!(parse_lcov("".as_bytes(), None, &|_| true).is_err());
    }

    #[test]
    fn cobertura_classes_sources_and_methods() {
        let xml = r#"<?xml version="1.0" ?>
<!DOCTYPE coverage SYSTEM "http://cobertura.sourceforge.net/xml/coverage-04.dtd">
<coverage line-rate="0.5" version="7.3">
  <sources><source>/ci/repo/src</source></sources>
  <packages><package name="p"><classes>
    <class filename="pkg/mod.py" name="mod.py">
      <methods><method name="f"><lines><line number="1" hits="1"/></lines></method></methods>
      <lines>
        <line number="1" hits="1"/>
        <line number="2" hits="0" branch="true" condition-coverage="0% (0/2)"/>
        <line number="3" hits="bad"/>
      </lines>
    </class>
    <class filename="pkg/mod.py" name="mod.py$Inner"><lines><line number="7" hits="2"/></lines></class>
    <class filename="other.py" name="o"><lines><line number="1" hits="0"/></lines></class>
  </classes></package></packages>
</coverage>"#;
        let r =
            parse_cobertura(xml.as_bytes(), Some("/ci/repo"), &|p| p == "src/pkg/mod.py").unwrap();
        assert_eq!(
            r.files["src/pkg/mod.py"],
            BTreeMap::from([(1, 1), (2, 0), (7, 2)])
        );
        assert_eq!(r.skipped_records, 1);
        assert_eq!((r.lines_total, r.lines_covered), (4, 2));
        assert!(parse_cobertura("<junit/>".as_bytes(), None, &|_| true).is_err());
        assert!(parse_cobertura("<coverage><class".as_bytes(), None, &|_| true).is_err());
    }
}
