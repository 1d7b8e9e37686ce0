//! CODEOWNERS text from a repository is untrusted: parsing and resolving must never
//! panic, and every reported error names a real line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lockgate_core::codeowners::CodeOwners;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let owners = CodeOwners::parse(text);
    let lines = text.lines().count();
    for e in owners.errors() {
        assert!(e.line >= 1 && e.line <= lines);
    }
    for path in ["README.md", "src/a/b.rs", "docs/x", ".github/CODEOWNERS"] {
        let _ = owners.owners_of(path);
    }
});
