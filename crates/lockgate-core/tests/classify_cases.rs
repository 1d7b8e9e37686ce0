//! Data-driven classification cases: `tests/data/classify/cases.toml`.

use lockgate_core::change::{FileChange, FileStatus, Line};
use lockgate_core::classify::{Classifier, ClassifySettings};
use serde::Deserialize;

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    path: String,
    old_path: Option<String>,
    #[serde(default)]
    added: String,
    #[serde(default)]
    removed: String,
    categories: Vec<String>,
    flags: Option<Vec<String>>,
}

fn lines(text: &str) -> Vec<Line> {
    text.lines()
        .enumerate()
        .map(|(i, t)| Line {
            number: i as u32 + 1,
            text: t.to_string(),
        })
        .collect()
}

#[test]
fn classification_cases() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/classify/cases.toml"
    ))
    .unwrap();
    let cases: Cases = toml::from_str(&text).unwrap();
    let classifier = Classifier::new(&ClassifySettings::default()).unwrap();
    let mut failures = Vec::new();
    for case in &cases.case {
        let mut file = FileChange::new(case.path.clone(), FileStatus::Modified);
        file.old_path = case.old_path.clone();
        file.added = lines(&case.added);
        file.removed = lines(&case.removed);
        let class = classifier.classify(&file, &[]);
        let got: Vec<&str> = class.categories.iter().map(|c| c.as_str()).collect();
        if got != case.categories {
            failures.push(format!(
                "{}: expected {:?}, got {:?} ({:?})",
                case.path, case.categories, got, class.reasons
            ));
        }
        if let Some(flags) = &case.flags
            && &class.flags != flags
        {
            failures.push(format!(
                "{}: expected flags {flags:?}, got {:?}",
                case.path, class.flags
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.case.len(),
        failures.join("\n")
    );
}
