//! `lockgate demo`: Lockgate's main job end to end, with no setup.
//!
//! Builds a small repository with gix (no `git` binary needed): a `main` branch with
//! CODEOWNERS and a `.lockgate.toml`, and one branch per scenario written by a coding
//! agent, a dependency bot or a person. Then runs the real `check` pipeline on each
//! and prints the verdicts.

use crate::attest_cmd::{SessionParts, attest_session};
use crate::log_cmd::{Location, RemoteArgs};
use lockgate_log::dir::LogDir;

/// The demo's transparency log, inside the demo repository's directory.
const DEMO_LOG: &str = "transparency-log";
use crate::check::{self, CheckRequest};
use crate::render::{self, Format};
use anyhow::{Context, Result, bail};
use gix::ObjectId;
use gix::objs::tree::EntryKind;
use lockgate_attest::keys::{KeyAlgorithm, PrivateKey};
use lockgate_attest::predicate::{Agent, Environment, Model, Prompt, sha256_set};
use std::path::PathBuf;

struct Who {
    name: &'static str,
    email: &'static str,
}

const HUMAN: Who = Who {
    name: "Ada Lovelace",
    email: "ada@example.com",
};
const CLAUDE: Who = Who {
    name: "anthropic-code-agent[bot]",
    email: "242468646+Claude@users.noreply.github.com",
};
const COPILOT: Who = Who {
    name: "copilot-swe-agent[bot]",
    email: "198982749+Copilot@users.noreply.github.com",
};
const CODEX: Who = Who {
    name: "Codex",
    email: "codex@openai.com",
};
const DEVIN: Who = Who {
    name: "devin-ai-integration[bot]",
    email: "158243242+devin-ai-integration[bot]@users.noreply.github.com",
};
const DEPENDABOT: Who = Who {
    name: "dependabot[bot]",
    email: "49699333+dependabot[bot]@users.noreply.github.com",
};

/// One branch of the demo: who changes what, and what Lockgate should say.
struct Scenario {
    branch: &'static str,
    title: &'static str,
    who: Who,
    message: &'static str,
    edits: &'static [(&'static str, Option<&'static str>)],
    expect: &'static str,
    /// Whether the agent signed its session (`lockgate attest`) with the trusted key.
    attested: bool,
    /// The JUnit XML the scenario's CI run produced, if any (`check --junit`).
    junit: Option<&'static str>,
}

/// A CI test run with one failing test, as pytest or cargo would write it.
const RED_JUNIT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="api_test" tests="3" failures="1" errors="0" skipped="0">
<testcase classname="api_test" name="health" time="0.001"/>
<testcase classname="api_test" name="version" time="0.001"/>
<testcase classname="api_test" name="health_is_json" time="0.002"><failure message="assertion failed: body.starts_with('{')" type="assert"/></testcase>
</testsuite></testsuites>
"#;

const BASE_FILES: &[(&str, &str)] = &[
    ("README.md", "# acme-api\n\nThe Acme API service.\n"),
    ("docs/guide.md", "# Guide\n\nRun `cargo run`.\n"),
    ("src/lib.rs", "pub mod api;\npub mod auth;\n"),
    (
        "src/api/handlers.rs",
        "pub fn health() -> &'static str {\n    \"ok\"\n}\n",
    ),
    (
        "src/auth/session.rs",
        "pub fn session_ttl_secs() -> u64 {\n    3600\n}\n",
    ),
    (
        "tests/api_test.rs",
        "#[test]\nfn health() {\n    assert_eq!(acme::api::health(), \"ok\");\n}\n",
    ),
    (
        "Cargo.toml",
        "[package]\nname = \"acme\"\nversion = \"0.1.0\"\n\n[dependencies]\nserde = \"1.0.200\"\n",
    ),
    (
        "Cargo.lock",
        "[[package]]\nname = \"serde\"\nversion = \"1.0.200\"\n",
    ),
    (
        ".github/workflows/ci.yml",
        "on: pull_request\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - run: cargo test\n",
    ),
    (
        ".github/CODEOWNERS",
        "*              @acme/maintainers\n/src/api/      @acme/backend\n/src/auth/     @acme/security\n/.github/      @acme/platform\n/.lockgate.toml @acme/security\n",
    ),
    (
        ".lockgate.toml",
        "[review]\nfallback_reviewers = [\"@acme/maintainers\"]\n",
    ),
];

const SCENARIOS: &[Scenario] = &[
    Scenario {
        branch: "agent/docs",
        title: "Claude Code fixes a typo in the guide",
        who: CLAUDE,
        message: "docs: clarify how to run the service",
        edits: &[(
            "docs/guide.md",
            Some("# Guide\n\nRun `cargo run --release`.\n"),
        )],
        expect: "auto_merge",
        attested: true,
        junit: None,
    },
    Scenario {
        branch: "agent/tests-red",
        title: "Claude Code adds a test, and CI says it fails",
        who: CLAUDE,
        message: "test: health returns JSON",
        edits: &[(
            "tests/api_test.rs",
            Some(
                "#[test]\nfn health() {\n    assert_eq!(acme::api::health(), \"ok\");\n}\n\n#[test]\nfn health_is_json() {\n    assert!(acme::api::health().starts_with('{'));\n}\n",
            ),
        )],
        expect: "needs_approval",
        attested: true,
        junit: Some(RED_JUNIT),
    },
    Scenario {
        branch: "agent/feature",
        title: "Copilot agent adds an endpoint with a test",
        who: COPILOT,
        message: "feat: add version endpoint",
        edits: &[
            (
                "src/api/handlers.rs",
                Some(
                    "pub fn health() -> &'static str {\n    \"ok\"\n}\n\npub fn version() -> &'static str {\n    env!(\"CARGO_PKG_VERSION\")\n}\n",
                ),
            ),
            (
                "tests/api_test.rs",
                Some(
                    "#[test]\nfn health() {\n    assert_eq!(acme::api::health(), \"ok\");\n}\n\n#[test]\nfn version() {\n    assert!(!acme::api::version().is_empty());\n}\n",
                ),
            ),
        ],
        expect: "needs_approval",
        attested: true,
        junit: None,
    },
    Scenario {
        branch: "agent/auth",
        title: "Claude Code changes session lifetime (auth)",
        who: CLAUDE,
        message: "auth: extend session lifetime",
        edits: &[(
            "src/auth/session.rs",
            Some("pub fn session_ttl_secs() -> u64 {\n    30 * 24 * 3600\n}\n"),
        )],
        expect: "needs_approval",
        attested: true,
        junit: None,
    },
    Scenario {
        branch: "agent/leak",
        title: "Codex hard-codes a cloud credential",
        who: CODEX,
        message: "feat: upload reports to S3",
        edits: &[(
            "src/api/upload.rs",
            // A synthetic key in AWS's documented format; not a live credential.
            Some("pub const ACCESS_KEY_ID: &str = \"AKIAQYLPMN5HHHFPZAM2\";\n"), // lockgate:allow (synthetic key)
        )],
        expect: "blocked",
        attested: true,
        junit: None,
    },
    Scenario {
        branch: "agent/own-gate",
        title: "Claude Code edits its own gate (.lockgate.toml)",
        who: CLAUDE,
        message: "chore: let agents automate medium-impact changes",
        edits: &[(
            ".lockgate.toml",
            Some(
                "[review]\nfallback_reviewers = [\"@acme/maintainers\"]\n\n[routing.matrix.medium]\nmedium = \"automate\"\n",
            ),
        )],
        expect: "needs_approval",
        attested: true,
        junit: None,
    },
    Scenario {
        branch: "agent/devin-auth",
        title: "Devin (low trust) rewrites authentication",
        who: DEVIN,
        message: "refactor auth",
        edits: &[(
            "src/auth/session.rs",
            Some("pub fn session_ttl_secs() -> u64 {\n    u64::MAX\n}\n"),
        )],
        expect: "blocked",
        attested: false,
        junit: None,
    },
    Scenario {
        branch: "deps/serde",
        title: "Dependabot bumps serde",
        who: DEPENDABOT,
        message: "Bump serde from 1.0.200 to 1.0.210",
        edits: &[
            (
                "Cargo.toml",
                Some(
                    "[package]\nname = \"acme\"\nversion = \"0.1.0\"\n\n[dependencies]\nserde = \"1.0.210\"\n",
                ),
            ),
            (
                "Cargo.lock",
                Some("[[package]]\nname = \"serde\"\nversion = \"1.0.210\"\n"),
            ),
        ],
        expect: "needs_approval",
        attested: false,
        junit: None,
    },
    Scenario {
        branch: "agent/unsigned",
        title: "Claude Code fixes a typo, but nobody signed the session",
        who: CLAUDE,
        message: "docs: fix typo",
        edits: &[(
            "docs/guide.md",
            Some("# Guide\n\nRun `cargo run` locally.\n"),
        )],
        expect: "needs_approval",
        attested: false,
        junit: None,
    },
    Scenario {
        branch: "human/ci",
        title: "A person changes the CI workflow",
        who: HUMAN,
        message: "ci: cache cargo registry",
        edits: &[(
            ".github/workflows/ci.yml",
            Some(
                "on: pull_request\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/cache@v4\n      - run: cargo test\n",
            ),
        )],
        expect: "auto_merge",
        attested: false,
        junit: None,
    },
];

pub fn run(keep: Option<PathBuf>, verbose: bool) -> Result<u8> {
    let temp;
    let dir = match &keep {
        Some(path) => {
            if path.exists() {
                bail!(
                    "{} already exists; --keep needs a new directory",
                    path.display()
                );
            }
            std::fs::create_dir_all(path)?;
            path.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("lockgate-demo-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    // The agents' signing key, trusted in the base revision's .lockgate/trust.toml.
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519);
    build_repo(&dir, &key).context("building the demo repository")?;

    println!(
        "Lockgate demo: {} changes in a throwaway repository",
        SCENARIOS.len()
    );
    println!(
        "repository: {}{}\n",
        dir.display(),
        if keep.is_some() {
            " (kept)"
        } else {
            " (removed on exit; --keep DIR to keep it)"
        }
    );
    println!(
        "  {:<18} {:<30} {:<15} {:<9} {:<9} {:<11} {:<6} first reason",
        "branch", "author", "verdict", "route", "impact", "provenance", "trust"
    );
    let mut mismatches = Vec::new();
    for s in SCENARIOS {
        let mut evidence = lockgate_evidence::facts::EvidencePaths::default();
        if let Some(xml) = s.junit {
            // The CI job's report: an untracked file (check reads commits, not the work tree).
            let path = dir.join(format!("{}.junit.xml", s.branch.replace('/', "-")));
            std::fs::write(&path, xml)?;
            evidence.junit.push(path);
        }
        let request = CheckRequest {
            repo: dir.clone(),
            base: "main".into(),
            head: s.branch.into(),
            config_file: None,
            policy_dir: None,
            rules_at: None,
            evidence,
            ledger: None,
        };
        let result = check::run(&request).with_context(|| format!("checking {}", s.branch))?;
        let d = &result.decision;
        let author = match &d.author.agent {
            Some(a) => format!("{a} ({})", d.author.kind.as_str()),
            None => d.author.kind.as_str().to_string(),
        };
        let route = d
            .route
            .map(|r| r.as_str().to_string())
            .unwrap_or_else(|| "-".into());
        let first = d
            .reasons
            .iter()
            .find(|r| r.severity >= lockgate_core::decision::Severity::Approval)
            .or(d.reasons.first())
            .map(|r| format!("{}: {}", r.rule, r.message))
            .unwrap_or_default();
        let provenance = d
            .provenance
            .commits
            .first()
            .map(|c| c.status.as_str())
            .unwrap_or("-");
        println!(
            "  {:<18} {:<30} {:<15} {:<9} {:<9} {:<11} {:<6} {}",
            s.branch,
            author,
            d.verdict.as_str(),
            route,
            d.impact.as_str(),
            provenance,
            d.trust.score,
            truncate(&first, 72)
        );
        if d.verdict.as_str() != s.expect {
            mismatches.push(format!(
                "{}: expected {}, got {}",
                s.branch,
                s.expect,
                d.verdict.as_str()
            ));
        }
        if verbose {
            println!(
                "\n--- {} — {}\n{}",
                s.branch,
                s.title,
                render::render(Format::Text, d, &result.provenance)
            );
        }
    }
    let log = LogDir::open(dir.join(DEMO_LOG))?;
    let audited =
        lockgate_log::log::LogReader::new(&log.storage()?).audit(&log.verifying_key()?)?;
    println!(
        "\nSigned sessions are in a transparency log the trust root requires ({} entries, audited){}",
        audited.size,
        if keep.is_some() {
            format!(":\n  lockgate log verify {}", log.root().display())
        } else {
            String::new()
        }
    );
    println!(
        "\nTry one yourself: lockgate demo --keep /tmp/lockgate-demo && lockgate check --repo /tmp/lockgate-demo --base main --head agent/auth"
    );
    if !mismatches.is_empty() {
        bail!(
            "the demo did not behave as documented: {}",
            mismatches.join("; ")
        );
    }
    Ok(0)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// Writes the base commit and one branch per scenario, and signs the sessions of the
/// attested scenarios (as `lockgate attest` would, with notes on commit and tree).
fn build_repo(dir: &std::path::Path, key: &PrivateKey) -> Result<()> {
    let repo = gix::init_bare(dir)?;
    let empty = ObjectId::empty_tree(repo.object_hash());
    // Every signed session also goes into a transparency log, which the trust root
    // requires: check verifies each bundle's inclusion proof offline.
    let log_key = LogDir::init(dir.join(DEMO_LOG), "demo.lockgate.dev/agents")?;
    let trust = format!(
        "[[key]]\nname = \"demo-agents\"\nagents = [\"claude-code\", \"copilot-coding-agent\", \"codex\"]\npublic_key = '''\n{}'''\n\n[[log]]\nname = \"demo-log\"\nkey = \"{}\"\nrequired = true\n",
        key.public_key().to_pem(),
        log_key.to_note_key()
    );
    let base_files = BASE_FILES
        .iter()
        .map(|(p, c)| (*p, Some(*c)))
        .chain(std::iter::once((
            ".lockgate/trust.toml",
            Some(trust.as_str()),
        )));
    let base_tree = write_tree(&repo, empty, base_files)?;
    let base = commit(
        &repo,
        "refs/heads/main",
        &HUMAN,
        "Initial import",
        base_tree,
        None,
        0,
    )?;
    for (i, s) in SCENARIOS.iter().enumerate() {
        let tree = write_tree(&repo, base_tree, s.edits.iter().copied())?;
        commit(
            &repo,
            &format!("refs/heads/{}", s.branch),
            &s.who,
            s.message,
            tree,
            Some(base),
            i as i64 + 1,
        )?;
    }

    let lockgate = lockgate_git::Repo::discover(dir)?;
    for s in SCENARIOS.iter().filter(|s| s.attested) {
        let parts = SessionParts {
            agent: Agent {
                name: identity_of(&s.who).into(),
                version: None,
                instance_id: Some(format!("demo-{}", s.branch.replace('/', "-"))),
            },
            model: Model {
                provider: "anthropic".into(),
                id: "claude-sonnet-4-5".into(),
                digest: None,
            },
            prompt: Prompt {
                digest: Some(sha256_set(s.title.as_bytes())),
                salted_digest: None,
            },
            task: Some(s.title.into()),
            repository: None,
            transcript: None,
            environment: Environment::default(),
            started: None,
            finished: None,
        };
        let head = lockgate.resolve_commit(s.branch)?.to_string();
        let (session, _, mut bundle) =
            attest_session(&lockgate, "main", &head, parts, key, crate::now())?;
        crate::attest_cmd::log_bundle(
            &mut bundle,
            &Location::Dir(LogDir::open(dir.join(DEMO_LOG))?),
            &RemoteArgs::default(),
        )?;
        lockgate.append_notes(
            &[&head, &session.proposed.tree],
            &bundle.to_json(),
            ("lockgate demo", "demo@lockgate.invalid"),
        )?;
    }
    Ok(())
}

/// The identity id Lockgate's defaults give each demo author.
fn identity_of(who: &Who) -> &'static str {
    match who.email {
        e if e == CLAUDE.email => "claude-code",
        e if e == COPILOT.email => "copilot-coding-agent",
        e if e == CODEX.email => "codex",
        e if e == DEVIN.email => "devin",
        _ => "unknown",
    }
}

fn write_tree<'a>(
    repo: &gix::Repository,
    from: ObjectId,
    edits: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<ObjectId> {
    let mut editor = repo.edit_tree(from)?;
    for (path, content) in edits {
        match content {
            Some(text) => {
                let blob = repo.write_blob(text.as_bytes())?;
                editor.upsert(path, EntryKind::Blob, blob)?;
            }
            None => {
                editor.remove(path)?;
            }
        }
    }
    Ok(editor.write()?.detach())
}

fn commit(
    repo: &gix::Repository,
    reference: &str,
    who: &Who,
    message: &str,
    tree: ObjectId,
    parent: Option<ObjectId>,
    minutes: i64,
) -> Result<ObjectId> {
    let time = format!("{} +0000", 1_767_225_600 + minutes * 60);
    let sig = gix::actor::SignatureRef {
        name: who.name.into(),
        email: who.email.into(),
        time: &time,
    };
    let id = repo.commit_as(sig, sig, reference, message, tree, parent)?;
    Ok(id.detach())
}
