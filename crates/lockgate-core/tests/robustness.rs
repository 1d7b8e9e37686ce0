//! Untrusted input never panics the parsers, on stable Rust in every test run. The
//! coverage-guided versions of these checks are the cargo-fuzz targets in `fuzz/`.

use lockgate_core::codeowners::CodeOwners;
use lockgate_core::config::Config;
use lockgate_core::secrets::{SecretScanner, SecretSettings};
use proptest::prelude::*;

fn codeownerish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("* @org/all".to_string()),
            Just("# comment".to_string()),
            Just("/docs/ @a b@c.de".to_string()),
            Just("!neg @x".to_string()),
            Just("a\\ b @y".to_string()),
            Just("bad owner".to_string()),
            "[ -~]{0,30}",
            "\\PC{0,20}",
        ],
        0..20,
    )
    .prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn codeowners_parsing_never_panics(text in codeownerish(), path in "[a-z/.]{1,20}") {
        let owners = CodeOwners::parse(&text);
        let _ = owners.owners_of(&path);
        let lines = text.lines().count();
        for e in owners.errors() {
            prop_assert!(e.line >= 1 && e.line <= lines);
        }
    }

    #[test]
    fn config_parsing_never_panics(text in "\\PC{0,200}") {
        let _ = Config::from_toml(&text);
    }

    #[test]
    fn config_with_hostile_rules_fails_cleanly(regex in "\\PC{0,40}", pattern in "\\PC{0,20}") {
        let text = format!(
            "[[classify.path]]\nid = \"x\"\ncategories = [\"docs\"]\npaths = [{pattern:?}]\n\n[[secrets.rule]]\nid = \"y\"\ndescription = \"d\"\nregex = {regex:?}\n"
        );
        if let Ok(config) = Config::from_toml(&text) {
            let _ = lockgate_core::assess::Assessor::new(&config);
        }
    }

    #[test]
    fn secret_findings_stay_inside_the_line(line in "\\PC{0,200}") {
        let scanner = SecretScanner::new(&SecretSettings::default()).unwrap();
        let chars = line.chars().count() as u32;
        for f in scanner.scan_line("f", 1, &line) {
            prop_assert!(f.start_column >= 1 && f.start_column <= f.end_column && f.end_column <= chars);
        }
    }
}
