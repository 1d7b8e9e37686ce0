//! Interop with other implementations: public DSSE, in-toto and Sigstore vectors.
//! Sources and licenses: tests/data/SOURCES.md.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lockgate_attest::bundle::{Bundle, BundleError, key_hint};
use lockgate_attest::dsse::{Envelope, pae};
use lockgate_attest::intoto::{ResourceDescriptor, Statement, StatementError};
use lockgate_attest::keys::{KeyAlgorithm, PrivateKey, PublicKey};
use serde_json::Value;

fn data(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn text(path: &str) -> String {
    String::from_utf8(data(path)).unwrap()
}

#[test]
fn dsse_spec_test_vector() {
    let v: Value = serde_json::from_slice(&data("dsse/dsse_vectors.json")).unwrap();
    let payload_type = v["payloadType"].as_str().unwrap();
    let payload = v["payload_utf8"].as_str().unwrap().as_bytes();
    assert_eq!(
        pae(payload_type, payload),
        v["pae"].as_str().unwrap().as_bytes()
    );

    let key = PublicKey::from_pem(v["key"]["public_pem_derived"].as_str().unwrap()).unwrap();
    assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
    let env: Envelope = serde_json::from_value(v["envelope"].clone()).unwrap();
    let verified = env.verify(std::slice::from_ref(&key)).unwrap();
    assert_eq!(verified.payload, payload);

    // The same envelope with one bit of the raw r‖s signature flipped fails.
    let mut tampered = env.clone();
    let mut sig = STANDARD.decode(&tampered.signatures[0].sig).unwrap();
    sig[10] ^= 0x01;
    tampered.signatures[0].sig = STANDARD.encode(sig);
    assert!(tampered.verify(&[key]).is_err());
}

#[test]
fn dsse_bundle_from_sigstore_go() {
    let bundle = Bundle::from_json(&data("sigstore-go/bundle-publish.json")).unwrap();
    let key = PublicKey::from_pem(&text("sigstore-go/publish_key.pub")).unwrap();
    let env = bundle.dsse_envelope.as_ref().unwrap();
    let verified = env.verify(std::slice::from_ref(&key)).unwrap();
    assert_eq!(verified.payload_type, "application/vnd.in-toto+json");
    let statement: Statement = serde_json::from_slice(&verified.payload).unwrap();
    statement.validate().unwrap();
    // Hints are free-form: npm writes its own key id format here.
    assert_eq!(
        bundle.hint(),
        Some("SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA")
    );

    let stranger = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    assert!(env.verify(&[stranger.public_key()]).is_err());
}

#[test]
fn sigstore_conformance_managed_key_cases() {
    let artifact = data("sigstore-conformance/a.txt");
    let happy = Bundle::from_json(&data(
        "sigstore-conformance/managed-key-happy-path/bundle.sigstore.json",
    ))
    .unwrap();
    let key =
        PublicKey::from_pem(&text("sigstore-conformance/managed-key-happy-path/key.pub")).unwrap();
    happy.verify_message(&artifact, &key).unwrap();
    assert_eq!(happy.hint(), Some(key_hint(&key).as_str()));
    assert_eq!(
        happy.verify_message(b"not the artifact", &key),
        Err(BundleError::DigestMismatch)
    );

    // "wrong key": the key file is deliberately corrupted.
    assert!(
        PublicKey::from_pem(&text(
            "sigstore-conformance/managed-key-wrong-key_fail/key.pub"
        ))
        .is_err()
    );
    // "no key": a key-signed bundle cannot verify against some other key.
    let no_key = Bundle::from_json(&data(
        "sigstore-conformance/managed-key-no-key_fail/bundle.sigstore.json",
    ))
    .unwrap();
    let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256).public_key();
    assert!(no_key.verify_message(&artifact, &other).is_err());
    // A certificate-based bundle is refused outright.
    assert_eq!(
        Bundle::from_json(&data(
            "sigstore-conformance/message-digest-mismatch_fail/bundle.sigstore.json"
        )),
        Err(BundleError::Keyless)
    );
}

#[test]
fn pkcs8_keys_written_by_another_tool() {
    for (file, alg) in [
        ("sigstore-rs/ecdsa_private.key", KeyAlgorithm::EcdsaP256),
        ("sigstore-rs/ed25519_private.key", KeyAlgorithm::Ed25519),
    ] {
        let key = PrivateKey::from_pem(&text(file), None).unwrap();
        assert_eq!(key.algorithm(), alg, "{file}");
        let sig = key.sign(b"interop");
        key.public_key().verify(b"interop", &sig).unwrap();
    }
}

#[test]
fn in_toto_validation_cases() {
    let v: Value =
        serde_json::from_slice(&data("in-toto/attestation_validation_cases.json")).unwrap();
    let mut checked = 0;
    for case in v["cases"].as_array().unwrap() {
        let json = case["json"].as_str().unwrap();
        let valid = case["valid"].as_bool().unwrap();
        let name = case["name"].as_str().unwrap();
        let result: Result<(), StatementError> = match case["kind"].as_str().unwrap() {
            "statement" => serde_json::from_str::<Statement>(json)
                .map_err(|_| StatementError::PredicateRequired)
                .and_then(|s| s.validate()),
            "resource-descriptor" => serde_json::from_str::<ResourceDescriptor>(json)
                .unwrap()
                .validate(),
            _ => continue, // SLSA provenance predicates are not Lockgate's predicate.
        };
        assert_eq!(result.is_ok(), valid, "{name}: {result:?}");
        if let Some(expected) = case.get("error").and_then(|e| e.as_str()) {
            let ours = format!("{:?}", result.unwrap_err());
            let expected = expected.trim_start_matches("Err").to_lowercase();
            assert!(
                ours.to_lowercase().starts_with(&expected),
                "{name}: {ours} vs {expected}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 15, "{checked}");
}
