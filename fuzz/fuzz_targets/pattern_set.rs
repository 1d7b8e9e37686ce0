//! Differential: the literal strategies of `PatternSet` must agree with each pattern's
//! own regex on every path.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lockgate_core::pattern::{PathPattern, PatternSet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.split('\n');
    let Some(path) = parts.next() else { return };
    if path.is_empty() || path.starts_with('/') || path.contains("//") {
        return;
    }
    let patterns: Vec<&str> = parts.take(16).collect();
    let Ok(set) = PatternSet::new(&patterns) else { return };
    let expected: Vec<usize> = patterns
        .iter()
        .enumerate()
        .filter(|(_, p)| PathPattern::new(p).expect("valid in the set").is_match(path))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(set.matches(path), expected, "{patterns:?} on {path:?}");
});
