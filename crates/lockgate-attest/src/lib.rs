//! Agent-session provenance: keys, DSSE envelopes, in-toto statements, Sigstore
//! bundles, the Lockgate agent-session predicate, transcripts and trust roots.
//!
//! Pure: nothing here reads files, git or the clock on its own; callers pass bytes
//! and times in. `lockgate-git` computes git digests; the CLI does IO.

pub mod bundle;
pub mod deps;
pub mod dsse;
pub mod intoto;
pub mod keys;
pub mod predicate;
pub mod tlog;
pub mod transcript;
pub mod transcript_view;
pub mod trust;
pub mod verify;

/// Constant-time equality of two byte strings (length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
