//! SARIF 2.1.0 for code scanning: each finding is a result at its file and line.
//!
//! The document is small and fixed in shape, so it is built directly as JSON; a test
//! validates it against the official SARIF 2.1.0 JSON Schema.

use lockgate_core::decision::{Decision, Verdict};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(super) fn render(d: &Decision) -> String {
    let mut rules: BTreeMap<&str, &str> = BTreeMap::new();
    for f in &d.findings {
        rules.entry(f.rule.as_str()).or_insert(f.message.as_str());
    }
    let rule_index: BTreeMap<&str, usize> =
        rules.keys().enumerate().map(|(i, r)| (*r, i)).collect();
    let rules_json: Vec<Value> = rules
        .iter()
        .map(|(id, description)| {
            json!({
                "id": id,
                "name": id,
                "shortDescription": {"text": description},
                "defaultConfiguration": {"level": "error"},
                "properties": {"tags": ["security", if id.starts_with("input.") { "input" } else { "secret" }]}
            })
        })
        .collect();
    let results: Vec<Value> = d
        .findings
        .iter()
        .map(|f| {
            let mut region = serde_json::Map::new();
            if f.line > 0 {
                region.insert("startLine".into(), json!(f.line));
                if let (Some(s), Some(e)) = (f.start_column, f.end_column) {
                    region.insert("startColumn".into(), json!(s));
                    // SARIF end columns are exclusive.
                    region.insert("endColumn".into(), json!(e + 1));
                }
            }
            let mut physical =
                json!({"artifactLocation": {"uri": uri(&f.path), "uriBaseId": "%SRCROOT%"}});
            if !region.is_empty() {
                physical["region"] = Value::Object(region);
            }
            json!({
                "ruleId": f.rule,
                "ruleIndex": rule_index[f.rule.as_str()],
                "level": "error",
                "message": {"text": format!("{} (value redacted)", f.message)},
                "locations": [{"physicalLocation": physical}],
                "partialFingerprints": {"lockgate/v1": format!("{}:{}:{}", f.rule, f.path, f.line)}
            })
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "lockgate",
                "informationUri": "https://github.com/lockgate/lockgate",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules_json
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": "file:///"}},
            "versionControlProvenance": [{"repositoryUri": "file:///", "revisionId": d.head}],
            "invocations": [{"executionSuccessful": true}],
            "results": results,
            "properties": {
                "verdict": d.verdict.as_str(),
                "blocked": d.verdict == Verdict::Blocked,
                "inputDigest": d.input_digest,
                "trustScore": d.trust.score,
                "trustBand": d.trust.band.as_str(),
                "trustFactors": d.trust.factors.iter().map(|f| json!({
                    "name": f.name, "score": f.score, "weight": f.weight,
                    "measured": f.measured, "detail": f.detail
                })).collect::<Vec<_>>()
            }
        }]
    });
    let mut s = serde_json::to_string_pretty(&doc).expect("SARIF serializes");
    s.push('\n');
    s
}

/// A relative path as a URI reference (percent-encoding what URIs do not allow).
fn uri(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn uris_are_percent_encoded() {
        assert_eq!(super::uri("a b/ü.rs"), "a%20b/%C3%BC.rs");
        assert_eq!(super::uri("src/x#1.rs"), "src/x%231.rs");
    }
}
