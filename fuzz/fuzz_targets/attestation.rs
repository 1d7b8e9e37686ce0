//! Envelopes, bundles and statements come from git notes anyone can push: parsing and
//! verification must never panic, and nothing unsigned may verify.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lockgate_attest::bundle::Bundle;
use lockgate_attest::dsse::Envelope;
use lockgate_attest::keys::{KeyAlgorithm, PrivateKey, PublicKey};
use lockgate_attest::trust::TrustRoot;
use lockgate_attest::verify::{GitFacts, ProvenanceStatus, verify_bundle};
use std::sync::OnceLock;

struct NoGit;
impl GitFacts for NoGit {
    fn tree_of(&self, _: &str) -> Result<String, String> {
        Err("none".into())
    }
    fn patch_id_of(&self, _: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
    fn is_ancestor(&self, a: &str, d: &str) -> Result<bool, String> {
        Ok(a == d)
    }
}

static KEY: OnceLock<PublicKey> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let key = KEY.get_or_init(|| PrivateKey::generate(KeyAlgorithm::Ed25519).public_key());
    if let Ok(env) = Envelope::from_json(data) {
        // A key the fuzzer has never seen cannot have signed anything.
        assert!(env.verify(std::slice::from_ref(key)).is_err());
    }
    let _ = Bundle::from_json(data);
    let _ = PublicKey::from_pem(&String::from_utf8_lossy(data));
    let _ = PrivateKey::from_pem(&String::from_utf8_lossy(data), Some(b"x"));
    let trust = TrustRoot::default();
    let v = verify_bundle(data, &trust, &"0".repeat(40), &NoGit, 0);
    assert_ne!(v.status, ProvenanceStatus::Valid);
});
