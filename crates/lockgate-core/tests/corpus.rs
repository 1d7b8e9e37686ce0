//! Public test vectors: CODEOWNERS matching and parsing (hmarr/codeowners, GitHub
//! docs) and secret detection (gitleaks). Sources and licenses are next to the data
//! in tests/data/*/ (see tests/data/SOURCES.md).

use lockgate_core::codeowners::{CodeOwners, OwnerKind, owner_kind};
use lockgate_core::pattern::PathPattern;
use lockgate_core::secrets::{SecretScanner, SecretSettings};
use serde_json::Value;

fn load(path: &str) -> Value {
    let full = format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&full).unwrap()).unwrap()
}

#[test]
fn hmarr_pattern_vectors() {
    let cases = load("hmarr-codeowners/patterns.json");
    let mut checked = 0;
    for case in cases.as_array().unwrap() {
        let pattern = case["pattern"].as_str().unwrap();
        let compiled = PathPattern::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        for (path, expected) in case["paths"].as_object().unwrap() {
            assert_eq!(
                compiled.is_match(path),
                expected.as_bool().unwrap(),
                "{} — pattern {pattern:?} on {path:?}",
                case["name"]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 153);
}

#[test]
fn hmarr_parse_vectors() {
    let cases = load("hmarr-codeowners/parse_cases.json");
    for case in cases["parse_rule_cases"].as_array().unwrap() {
        let line = case["line"].as_str().unwrap();
        let parsed = CodeOwners::parse(line);
        if let Some(error) = case.get("error") {
            let error = error.as_str().unwrap();
            if error == "unexpected end of rule" {
                // An empty line is simply blank in a file.
                assert!(parsed.rules().is_empty());
                continue;
            }
            assert_eq!(parsed.errors()[0].message, error, "{line}");
            continue;
        }
        assert!(parsed.errors().is_empty(), "{line}: {:?}", parsed.errors());
        let rule = &parsed.rules()[0];
        assert_eq!(
            rule.pattern.as_str(),
            unescape(case["pattern"].as_str().unwrap()),
            "{line}"
        );
        let owners: Vec<(String, &str)> = case["owners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["value"].as_str().unwrap().to_string(),
                    o["type"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(rule.owners.len(), owners.len(), "{line}");
        for (ours, (value, kind)) in rule.owners.iter().zip(&owners) {
            assert_eq!(ours.trim_start_matches('@'), value, "{line}");
            let expected_kind = match *kind {
                "username" => OwnerKind::User,
                "team" => OwnerKind::Team,
                _ => OwnerKind::Email,
            };
            assert_eq!(owner_kind(ours), Some(expected_kind), "{line}");
        }
    }
    for case in cases["parse_file_cases"].as_array().unwrap() {
        let parsed = CodeOwners::parse(case["contents"].as_str().unwrap());
        if let Some(error) = case.get("error") {
            let e = &parsed.errors()[0];
            assert_eq!(
                format!("line {}: {}", e.line, e.message),
                error.as_str().unwrap()
            );
            continue;
        }
        let expected = case["rules"].as_array().unwrap();
        assert_eq!(parsed.rules().len(), expected.len());
        for (rule, exp) in parsed.rules().iter().zip(expected) {
            assert_eq!(rule.line as u64, exp["line_number"].as_u64().unwrap());
            assert_eq!(rule.pattern.as_str(), exp["pattern"].as_str().unwrap());
        }
    }
}

/// hmarr keeps `\ ` in the pattern text; we store the space itself (the escape only
/// protects it from the owner split).
fn unescape(p: &str) -> String {
    p.replace("\\ ", " ")
}

#[test]
fn github_docs_example() {
    let text = std::fs::read_to_string(format!(
        "{}/tests/data/github-docs/CODEOWNERS.example",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let owners = CodeOwners::parse(&text);
    assert!(owners.errors().is_empty(), "{:?}", owners.errors());
    let cases = load("github-docs/expected_owners.derived.json");
    for case in cases["cases"].as_array().unwrap() {
        let path = case["path"].as_str().unwrap();
        let expected: Vec<&str> = case["owners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(
            owners.owners_of(path),
            expected.as_slice(),
            "{path}: {}",
            case["why"]
        );
    }
}

#[test]
fn gitleaks_detect_cases_for_the_rules_we_share() {
    let cases = load("gitleaks/detect_fragment_cases.json");
    let scanner = SecretScanner::new(&SecretSettings::default()).unwrap();
    let scan = |fragment: &str| -> Vec<(String, u32, u32, u32)> {
        fragment
            .lines()
            .enumerate()
            .flat_map(|(i, line)| scanner.scan_line("f", i as u32 + 1, line))
            .map(|f| (f.rule, f.line, f.start_column, f.end_column))
            .collect()
    };
    let by_name = |name: &str| {
        cases["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("case {name}"))
            .clone()
    };

    // Inline allow comments suppress the finding on their own line only.
    for name in ["valid allow comment (1)", "valid allow comment (2)"] {
        let c = by_name(name);
        assert!(
            scan(c["fragment_raw"].as_str().unwrap()).is_empty(),
            "{name}"
        );
    }
    let c = by_name("invalid allow comment");
    let hits = scan(c["fragment_raw"].as_str().unwrap());
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].0, "aws-access-key-id");

    // Same columns as gitleaks (1-based, inclusive).
    let c = by_name("detect finding - aws");
    let hits = scan(c["fragment_raw"].as_str().unwrap());
    let expected = &c["expected_findings"][0];
    assert_eq!(hits.len(), 1);
    assert_eq!(
        u64::from(hits[0].2),
        expected["StartColumn"].as_u64().unwrap()
    );
    assert_eq!(
        u64::from(hits[0].3),
        expected["EndColumn"].as_u64().unwrap()
    );

    // A plain private key block in the "encoded" fragment.
    let c = by_name("detect encoded");
    let hits = scan(c["fragment_raw"].as_str().unwrap());
    assert!(hits.iter().any(|h| h.0 == "private-key"), "{hits:?}");
}
