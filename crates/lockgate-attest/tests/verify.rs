//! Verification outcomes for every status and binding. Git facts come from a small
//! in-memory table here; the CLI tests run the same checks on real repositories.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lockgate_attest::bundle::Bundle;
use lockgate_attest::dsse::IN_TOTO_PAYLOAD_TYPE;
use lockgate_attest::keys::{KeyAlgorithm, PrivateKey};
use lockgate_attest::predicate::*;
use lockgate_attest::trust::{TrustRoot, parse_rfc3339};
use lockgate_attest::verify::{Binding, GitFacts, ProvenanceStatus, best, verify_bundle};
use std::collections::HashMap;

const BASE: &str = "1111111111111111111111111111111111111111";
const HEAD: &str = "2222222222222222222222222222222222222222";
const TREE: &str = "3333333333333333333333333333333333333333";
const SQUASHED: &str = "4444444444444444444444444444444444444444";
const REBASED: &str = "5555555555555555555555555555555555555555";
const OTHER: &str = "6666666666666666666666666666666666666666";

struct Facts {
    trees: HashMap<&'static str, &'static str>,
    patches: HashMap<&'static str, &'static str>,
    ancestors: Vec<(&'static str, &'static str)>,
}

impl GitFacts for Facts {
    fn tree_of(&self, c: &str) -> Result<String, String> {
        self.trees
            .get(c)
            .map(|t| t.to_string())
            .ok_or_else(|| format!("no commit {c}"))
    }
    fn patch_id_of(&self, c: &str) -> Result<Option<String>, String> {
        Ok(self.patches.get(c).map(|p| p.to_string()))
    }
    fn is_ancestor(&self, a: &str, d: &str) -> Result<bool, String> {
        Ok(a == d || self.ancestors.contains(&(a, d)))
    }
}

fn facts() -> Facts {
    Facts {
        trees: HashMap::from([
            (HEAD, TREE),
            (SQUASHED, TREE),
            (REBASED, "7777777777777777777777777777777777777777"),
            (OTHER, "8888888888888888888888888888888888888888"),
        ]),
        patches: HashMap::from([
            (HEAD, "lockgate-patch-id/v1:aa"),
            (REBASED, "lockgate-patch-id/v1:aa"),
            (OTHER, "lockgate-patch-id/v1:bb"),
        ]),
        ancestors: vec![
            (BASE, HEAD),
            (BASE, SQUASHED),
            (BASE, REBASED),
            (BASE, OTHER),
        ],
    }
}

fn session(agent: &str) -> AgentSession {
    AgentSession {
        agent: Agent {
            name: agent.into(),
            version: None,
            instance_id: Some("run-1".into()),
        },
        model: Model {
            provider: "anthropic".into(),
            id: "claude-sonnet-4-5".into(),
            digest: None,
        },
        prompt: Prompt {
            digest: Some(sha256_set(b"fix it")),
            salted_digest: None,
        },
        task: None,
        repository: None,
        base: GitRevision {
            commit: BASE.into(),
            tree: "9".repeat(40),
        },
        proposed: ProposedRevision {
            commit: HEAD.into(),
            tree: TREE.into(),
            patch_id: Some("lockgate-patch-id/v1:aa".into()),
        },
        transcript: None,
        dependencies: DependencyDelta::default(),
        environment: Environment::default(),
        timestamps: Timestamps {
            started: None,
            finished: None,
            attested: "2026-11-28T00:00:00Z".into(),
        },
    }
}

fn bundle(key: &PrivateKey, s: AgentSession) -> Vec<u8> {
    let statement = serde_json::to_vec(&s.into_statement()).unwrap();
    Bundle::sign_dsse(IN_TOTO_PAYLOAD_TYPE, &statement, key)
        .to_json()
        .into_bytes()
}

fn trust(entries: &[(&str, &PrivateKey, &str, &str)]) -> TrustRoot {
    let mut text = String::new();
    for (name, key, agents, extra) in entries {
        text.push_str(&format!(
            "[[key]]\nname = \"{name}\"\nagents = [{agents}]\npublic_key = '''\n{}'''\n{extra}\n",
            key.public_key().to_pem()
        ));
    }
    TrustRoot::from_toml(&text, &|_| Err("no files".into())).unwrap()
}

fn now() -> i64 {
    parse_rfc3339("2026-11-28T12:00:00Z").unwrap()
}

#[test]
fn bindings_commit_tree_and_patch_id() {
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519);
    let root = trust(&[("ci", &key, "\"claude-code\"", "")]);
    let b = bundle(&key, session("claude-code"));
    let f = facts();
    let v = verify_bundle(&b, &root, HEAD, &f, now());
    assert_eq!(
        (v.status, v.binding),
        (ProvenanceStatus::Valid, Some(Binding::Commit)),
        "{:?}",
        v.reasons
    );
    assert_eq!(v.signer.as_deref(), Some("ci"));
    let v = verify_bundle(&b, &root, SQUASHED, &f, now());
    assert_eq!(
        (v.status, v.binding),
        (ProvenanceStatus::Valid, Some(Binding::Tree))
    );
    let v = verify_bundle(&b, &root, REBASED, &f, now());
    assert_eq!(
        (v.status, v.binding),
        (ProvenanceStatus::Valid, Some(Binding::PatchId))
    );
    let v = verify_bundle(&b, &root, OTHER, &f, now());
    assert_eq!(v.status, ProvenanceStatus::Stale);
}

#[test]
fn trust_failures() {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    let b = bundle(&key, session("claude-code"));
    let f = facts();
    let stranger = PrivateKey::generate(KeyAlgorithm::Ed25519);
    let v = verify_bundle(
        &b,
        &trust(&[("other", &stranger, "\"*\"", "")]),
        HEAD,
        &f,
        now(),
    );
    assert_eq!(v.status, ProvenanceStatus::UntrustedKey);

    let v = verify_bundle(
        &b,
        &trust(&[("ci", &key, "\"codex\"", "")]),
        HEAD,
        &f,
        now(),
    );
    assert_eq!(v.status, ProvenanceStatus::UntrustedKey);
    assert!(v.reasons[0].contains("claude-code"));

    let v = verify_bundle(
        &b,
        &trust(&[("ci", &key, "\"*\"", "revoked = true")]),
        HEAD,
        &f,
        now(),
    );
    assert_eq!(v.status, ProvenanceStatus::Revoked);

    let expired = "not_after = \"2026-01-01T00:00:00Z\"";
    let v = verify_bundle(
        &b,
        &trust(&[("ci", &key, "\"*\"", expired)]),
        HEAD,
        &f,
        now(),
    );
    assert_eq!(v.status, ProvenanceStatus::UntrustedKey);
    assert!(v.reasons[0].contains("validity"));
}

#[test]
fn tampering_and_bad_input_are_invalid() {
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519);
    let root = trust(&[("ci", &key, "\"*\"", "")]);
    let f = facts();
    let good = bundle(&key, session("claude-code"));

    // Swap the payload for another session: the hint names our key, the signature fails.
    let mut forged: serde_json::Value = serde_json::from_slice(&good).unwrap();
    let mut evil = session("claude-code");
    evil.proposed.commit = OTHER.into();
    let payload = serde_json::to_vec(&evil.into_statement()).unwrap();
    forged["dsseEnvelope"]["payload"] = STANDARD.encode(payload).into();
    let v = verify_bundle(forged.to_string().as_bytes(), &root, OTHER, &f, now());
    assert_eq!(v.status, ProvenanceStatus::Invalid);

    assert_eq!(
        verify_bundle(b"{not json", &root, HEAD, &f, now()).status,
        ProvenanceStatus::Invalid
    );

    let mut wrong_base = session("claude-code");
    wrong_base.base.commit = "0".repeat(40);
    let v = verify_bundle(&bundle(&key, wrong_base), &root, HEAD, &f, now());
    assert_eq!(v.status, ProvenanceStatus::Invalid);
    assert!(v.reasons[0].contains("not an ancestor"));
}

#[test]
fn a_valid_attestation_wins_over_others() {
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519);
    let root = trust(&[("ci", &key, "\"*\"", "")]);
    let f = facts();
    let mut stale = session("claude-code");
    stale.proposed.commit = OTHER.into();
    stale.proposed.tree = "8".repeat(40);
    stale.proposed.patch_id = None;
    let results = vec![
        verify_bundle(&bundle(&key, stale), &root, HEAD, &f, now()),
        verify_bundle(
            &bundle(&key, session("claude-code")),
            &root,
            HEAD,
            &f,
            now(),
        ),
    ];
    assert_eq!(best(results).unwrap().status, ProvenanceStatus::Valid);
}
