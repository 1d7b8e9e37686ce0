//! Attestation benchmarks: verification against the raw signature cost, and
//! `lockgate attest` end to end.

use lockgate_attest::bundle::Bundle;
use lockgate_attest::dsse::{IN_TOTO_PAYLOAD_TYPE, pae};
use lockgate_attest::keys::{KeyAlgorithm, PrivateKey};
use lockgate_attest::predicate::*;
use lockgate_attest::trust::TrustRoot;
use lockgate_attest::verify::{GitFacts, ProvenanceStatus, verify_bundle};
use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Commit binding needs no git lookups beyond ancestry.
struct Facts;
impl GitFacts for Facts {
    fn tree_of(&self, _: &str) -> Result<String, String> {
        Err("not needed".into())
    }
    fn patch_id_of(&self, _: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
    fn is_ancestor(&self, _: &str, _: &str) -> Result<bool, String> {
        Ok(true)
    }
}

/// A realistic session: transcript summary, a few dependency changes.
fn session() -> AgentSession {
    AgentSession {
        agent: Agent {
            name: "claude-code".into(),
            version: Some("2.0.76".into()),
            instance_id: Some("7f3c2a9e-1b4d-4e8f-9a6b-2c1d0e9f8a7b".into()),
        },
        model: Model {
            provider: "anthropic".into(),
            id: "claude-sonnet-4-5".into(),
            digest: None,
        },
        prompt: Prompt {
            digest: Some(sha256_set(b"Fix the login bug and add a test")),
            salted_digest: None,
        },
        task: Some("https://tracker.example.com/ISSUE-4711".into()),
        repository: Some("https://github.com/acme/api".into()),
        base: GitRevision {
            commit: "1".repeat(40),
            tree: "2".repeat(40),
        },
        proposed: ProposedRevision {
            commit: "3".repeat(40),
            tree: "4".repeat(40),
            patch_id: Some(format!("lockgate-patch-id/v1:{}", "5".repeat(64))),
        },
        transcript: Some(TranscriptSummary {
            format: "claude-code-jsonl".into(),
            digest: sha256_set(b"transcript"),
            steps: 184,
            tool_calls: 61,
            tools: [("Bash", 20u32), ("Edit", 25), ("Read", 14), ("Write", 2)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            files_touched: (0..12)
                .map(|i| format!("src/module_{i}/handler.rs"))
                .collect(),
            models: vec!["claude-sonnet-4-5-20250929".into()],
            redactions: 1,
            agent_trace: vec![],
        }),
        dependencies: DependencyDelta {
            added: vec![Package {
                ecosystem: "cargo".into(),
                name: "idna".into(),
                version: "1.0.0".into(),
            }],
            removed: vec![],
            changed: vec![PackageChange {
                ecosystem: "cargo".into(),
                name: "serde".into(),
                from: "1.0.200".into(),
                to: "1.0.210".into(),
            }],
            lockfiles: vec!["Cargo.lock".into()],
        },
        environment: Environment {
            runner: Some("github-actions".into()),
            image_digest: Some(format!("sha256:{}", "6".repeat(64))),
        },
        timestamps: Timestamps {
            started: Some("2026-11-28T00:00:00Z".into()),
            finished: Some("2026-11-28T00:20:00Z".into()),
            attested: "2026-11-28T00:20:05Z".into(),
        },
    }
}

/// Median time per operation of `f` (batches of `n`, `rounds` rounds).
fn per_op(n: u32, rounds: usize, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed() / n
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn signatures() {
    println!(
        "attestation verification vs the raw signature check, same key type and bytes (median of 15 rounds)"
    );
    let payload = serde_json::to_vec(&session().into_statement()).expect("serializes");
    for alg in [KeyAlgorithm::Ed25519, KeyAlgorithm::EcdsaP256] {
        let key = PrivateKey::generate(alg);
        let public = key.public_key();
        let message = pae(IN_TOTO_PAYLOAD_TYPE, &payload);
        let raw_sig = key.sign(&message);
        let bundle = Bundle::sign_dsse(IN_TOTO_PAYLOAD_TYPE, &payload, &key)
            .to_json()
            .into_bytes();
        let trust = TrustRoot::from_toml(
            &format!(
                "[[key]]\nname = \"k\"\nagents = [\"*\"]\npublic_key = '''\n{}'''\n",
                public.to_pem()
            ),
            &|_| Err("none".into()),
        )
        .expect("trust root");
        let commit = "3".repeat(40);
        let check = verify_bundle(&bundle, &trust, &commit, &Facts, 0);
        assert_eq!(check.status, ProvenanceStatus::Valid, "{:?}", check.reasons);

        let n = if alg == KeyAlgorithm::Ed25519 {
            400
        } else {
            200
        };
        let raw = per_op(n, 15, || {
            public
                .verify(black_box(&message), black_box(&raw_sig))
                .expect("verifies");
        });
        let full = per_op(n, 15, || {
            let v = verify_bundle(black_box(&bundle), &trust, &commit, &Facts, 0);
            assert_eq!(v.status, ProvenanceStatus::Valid);
        });
        let sign = per_op(n / 2, 15, || {
            black_box(Bundle::sign_dsse(
                IN_TOTO_PAYLOAD_TYPE,
                black_box(&payload),
                &key,
            ));
        });
        let ratio = full.as_secs_f64() / raw.as_secs_f64();
        println!(
            "  {:<10} raw verify {:>7.1} µs   bundle verify (parse, PAE, signature, statement, trust, binding) {:>7.1} µs   ratio {ratio:.2}× → {}   sign {:>7.1} µs   ({} B payload)",
            alg.as_str(),
            micros(raw),
            micros(full),
            if ratio <= 1.5 {
                "met (≤ 1.5×)"
            } else {
                "NOT met (> 1.5×)"
            },
            micros(sign),
            payload.len()
        );
    }
    println!();
}

/// `lockgate attest` as a process on a typical session: a 12-file agent change with a
/// Claude Code transcript, unencrypted Ed25519 key, git notes written.
pub fn attest_process(lockgate: &Path, dir: &Path, runs: usize) {
    std::fs::create_dir_all(dir).expect("dir");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Ada")
            .env("GIT_AUTHOR_EMAIL", "ada@example.com")
            .env("GIT_COMMITTER_NAME", "Ada")
            .env("GIT_COMMITTER_EMAIL", "ada@example.com")
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    for i in 0..400 {
        let p = dir.join(format!("src/module_{}/file_{i}.rs", i % 20));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
            p,
            (0..60)
                .map(|l| format!("fn f{l}() -> u32 {{ {l} + {i} }}\n"))
                .collect::<String>(),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("Cargo.lock"),
        "version = 4\n[[package]]\nname = \"serde\"\nversion = \"1.0.200\"\n",
    )
    .unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "base"]);
    for i in 0..12 {
        let p = dir.join(format!("src/module_{}/file_{i}.rs", i % 20));
        let mut text = std::fs::read_to_string(&p).unwrap();
        text.push_str("fn added() -> u32 { 42 }\n");
        std::fs::write(p, text).unwrap();
    }
    std::fs::write(
        dir.join("Cargo.lock"),
        "version = 4\n[[package]]\nname = \"serde\"\nversion = \"1.0.210\"\n",
    )
    .unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "agent change"]);
    let transcript = dir.join("session.jsonl");
    let line = r#"{"type":"assistant","sessionId":"s","cwd":"/w","message":{"role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Looking at the handler now and editing it."},{"type":"tool_use","id":"t","name":"Edit","input":{"file_path":"/w/src/module_1/file_1.rs","old_string":"a","new_string":"b"}}]},"timestamp":"2026-11-28T00:00:00Z"}"#;
    std::fs::write(
        &transcript,
        std::iter::repeat_n(line, 300)
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let key = dir.join("agent");
    let out = Command::new(lockgate)
        .args(["keygen", "--out", key.to_str().unwrap()])
        .output()
        .expect("keygen");
    assert!(out.status.success());

    let mut times = Vec::new();
    for i in 0..=runs {
        let start = Instant::now();
        let out = Command::new(lockgate)
            .current_dir(dir)
            .args([
                "attest",
                "--key",
                "agent.key",
                "--agent",
                "claude-code",
                "--prompt",
                "fix it",
                "--transcript",
                "session.jsonl",
                "--base",
                "HEAD~1",
                "--head",
                "HEAD",
            ])
            .output()
            .expect("attest");
        let elapsed = start.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if i > 0 {
            times.push(elapsed);
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "lockgate attest end to end (12-file change, 300-line Claude Code transcript, Ed25519, notes written), {runs} runs: median {:.1} ms, min {:.1} ms → {}",
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        if median < Duration::from_millis(100) {
            "met (< 100 ms)"
        } else {
            "NOT met"
        }
    );
}
