//! Everything a log client reads comes from an untrusted server: checkpoint notes,
//! tiles, entry bundles, proof documents and tile paths. Parsing must never panic,
//! and nothing the fuzzer makes may verify under a key it has never seen.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lockgate_log::checkpoint::{Checkpoint, LogSigningKey, LogVerifyingKey};
use lockgate_log::proof::{ConsistencyProofDoc, InclusionProofDoc};
use lockgate_log::tiles::{decode_bundle, decode_tile, encode_bundle, parse_tile_path};
use std::sync::OnceLock;

static KEY: OnceLock<LogVerifyingKey> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let key = KEY.get_or_init(|| LogSigningKey::generate("fuzz.example/log").unwrap().1);
    assert!(Checkpoint::verify(data, key).is_err());
    let _ = Checkpoint::parse_body(data);
    let _ = decode_tile(data);
    if let Ok(entries) = decode_bundle(data) {
        // A bundle that decodes re-encodes to the same bytes.
        assert_eq!(encode_bundle(&entries), data);
    }
    let text = String::from_utf8_lossy(data);
    if let Some(t) = parse_tile_path(&text) {
        assert!(t.width >= 1 && t.width <= 256);
    }
    if let Ok(doc) = serde_json::from_slice::<InclusionProofDoc>(data) {
        assert!(doc.verify(b"entry", key).is_err());
    }
    if let Ok(doc) = serde_json::from_slice::<ConsistencyProofDoc>(data) {
        assert!(doc.verify(key).is_err());
    }
    let _ = LogVerifyingKey::parse(&text);
});
