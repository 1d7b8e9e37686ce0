//! Added lines are attacker-controlled: scanning must not panic, columns must lie in
//! the line, and redaction must remove every reported span.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lockgate_core::secrets::{SecretScanner, SecretSettings};
use std::sync::OnceLock;

static SCANNER: OnceLock<SecretScanner> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    let scanner = SCANNER.get_or_init(|| SecretScanner::new(&SecretSettings::default()).unwrap());
    let findings = scanner.scan_line("f", 1, line);
    let chars = line.chars().count() as u32;
    for f in &findings {
        assert!(f.start_column >= 1 && f.start_column <= f.end_column && f.end_column <= chars);
    }
    if findings.is_empty() {
        return;
    }
    let redacted = scanner.redact_line(line);
    for f in &findings {
        let secret: String = line
            .chars()
            .skip(f.start_column as usize - 1)
            .take((f.end_column - f.start_column + 1) as usize)
            .collect();
        if secret.chars().count() >= 8 {
            assert!(!redacted.contains(&secret), "{} survived redaction", f.rule);
        }
    }
});
