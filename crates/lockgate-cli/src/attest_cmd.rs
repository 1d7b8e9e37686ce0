//! `lockgate keygen`, `lockgate attest`: keys and signed agent-session attestations.

use anyhow::{Context, Result, bail};
use clap::Args;
use lockgate_attest::bundle::{Bundle, key_hint};
use lockgate_attest::deps::{self, PackageSet};
use lockgate_attest::dsse::IN_TOTO_PAYLOAD_TYPE;
use lockgate_attest::keys::{KeyAlgorithm, PrivateKey};
use lockgate_attest::predicate::*;
use lockgate_attest::transcript::{self, TranscriptFormat};
use lockgate_attest::trust::format_rfc3339;
use lockgate_core::change::Limits;
use lockgate_core::secrets::{SecretScanner, SecretSettings};
use lockgate_git::Repo;
use std::path::{Path, PathBuf};

/// Environment variable read for key passphrases when no other source is given.
pub const PASSPHRASE_ENV: &str = "LOCKGATE_KEY_PASSPHRASE";
const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Args)]
pub struct KeygenArgs {
    /// Path prefix: writes PREFIX.key (private, PKCS#8, mode 0600) and PREFIX.pub (SPKI).
    #[arg(long)]
    pub out: PathBuf,
    /// Signature algorithm.
    #[arg(long, value_enum, default_value = "ed25519")]
    pub algorithm: Algorithm,
    /// Encrypt the private key with the passphrase in this environment variable.
    #[arg(long)]
    pub passphrase_env: Option<String>,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Algorithm {
    Ed25519,
    EcdsaP256,
}

#[derive(Args)]
pub struct AttestArgs {
    /// Private key (PKCS#8 PEM; encrypted keys read the passphrase from
    /// --passphrase-env or $LOCKGATE_KEY_PASSPHRASE).
    #[arg(long)]
    pub key: PathBuf,
    /// Environment variable holding the key's passphrase.
    #[arg(long)]
    pub passphrase_env: Option<String>,
    /// Agent name as in Lockgate's identity list (claude-code, codex, copilot, …).
    #[arg(long)]
    pub agent: String,
    #[arg(long)]
    pub agent_version: Option<String>,
    /// This run's id (session id, job id).
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Model id (e.g. claude-sonnet-4-5, or provider/model). Default: the single model
    /// named in the transcript.
    #[arg(long)]
    pub model: Option<String>,
    /// Model provider (default: from the model id).
    #[arg(long)]
    pub model_provider: Option<String>,
    /// Digest of local model weights, `sha256:<hex>`.
    #[arg(long)]
    pub model_digest: Option<String>,
    /// The task prompt, from a file.
    #[arg(long, conflicts_with = "prompt")]
    pub prompt_file: Option<PathBuf>,
    /// The task prompt, inline.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Keep the prompt private: record only SHA-256(salt ‖ prompt) with this salt file.
    #[arg(long)]
    pub prompt_salt_file: Option<PathBuf>,
    /// Issue or task reference.
    #[arg(long)]
    pub task: Option<String>,
    /// Repository URL or name.
    #[arg(long)]
    pub repository: Option<String>,
    /// Session transcript (JSONL).
    #[arg(long)]
    pub transcript: Option<PathBuf>,
    /// Transcript format: auto, lockgate-steps-v1, claude-code-jsonl, codex-rollout-jsonl.
    #[arg(long, default_value = "auto")]
    pub transcript_format: String,
    /// Write the redacted transcript (exactly the bytes that were hashed) here.
    #[arg(long)]
    pub transcript_out: Option<PathBuf>,
    /// Agent Trace record(s) produced by the session (JSON); their digests are included.
    #[arg(long)]
    pub agent_trace: Vec<PathBuf>,
    /// Where the session started.
    #[arg(long)]
    pub base: String,
    /// What the session proposes.
    #[arg(long, default_value = "HEAD")]
    pub head: String,
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Session start and end times (RFC 3339).
    #[arg(long)]
    pub started: Option<String>,
    #[arg(long)]
    pub finished: Option<String>,
    /// CI runner or sandbox name.
    #[arg(long)]
    pub runner: Option<String>,
    /// Container image digest.
    #[arg(long)]
    pub image_digest: Option<String>,
    /// Also write the Sigstore bundle to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Append the envelope to this transparency log (a directory, or the URL of
    /// `lockgate log serve`) and store the inclusion proof and checkpoint in the bundle.
    #[arg(long)]
    pub log: Option<String>,
    /// The log's bearer token file (remote logs; or LOCKGATE_LOG_TOKEN).
    #[arg(long, requires = "log")]
    pub log_token_file: Option<PathBuf>,
    /// The log's verifier key (note format or a file; default for a directory:
    /// DIR/log.pub). The log's proof is checked with it before it is stored.
    #[arg(long, requires = "log")]
    pub log_key: Option<String>,
    /// Do not write git notes (refs/notes/lockgate) on the head commit and tree.
    #[arg(long)]
    pub no_note: bool,
    /// Print the attestation as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

pub fn keygen(args: KeygenArgs) -> Result<u8> {
    let private = with_suffix(&args.out, "key");
    let public = with_suffix(&args.out, "pub");
    for p in [&private, &public] {
        if p.exists() && !args.force {
            bail!("{} exists; pass --force to replace it", p.display());
        }
    }
    let algorithm = match args.algorithm {
        Algorithm::Ed25519 => KeyAlgorithm::Ed25519,
        Algorithm::EcdsaP256 => KeyAlgorithm::EcdsaP256,
    };
    let key = PrivateKey::generate(algorithm);
    let passphrase =
        match &args.passphrase_env {
            Some(var) => Some(std::env::var(var).with_context(|| {
                format!("environment variable {var} (the passphrase) is not set")
            })?),
            None => None,
        };
    let pem = key.to_pem(passphrase.as_deref().map(str::as_bytes));
    write_private(&private, pem.as_bytes())?;
    let pub_key = key.public_key();
    std::fs::write(&public, pub_key.to_pem())
        .with_context(|| format!("writing {}", public.display()))?;
    println!(
        "wrote {} ({}{})",
        private.display(),
        algorithm.as_str(),
        if passphrase.is_some() {
            ", encrypted"
        } else {
            ""
        }
    );
    println!("wrote {}", public.display());
    println!("key id: {}", pub_key.key_id());
    println!("sigstore hint: {}", key_hint(&pub_key));
    println!("\nTo trust it, add to .lockgate/trust.toml (through a reviewed change):\n");
    println!(
        "[[key]]\nname = \"{}\"\nagents = [\"<agent-name>\"]\npath = \"<path to {} relative to .lockgate/>\"",
        args.out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        public
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    Ok(0)
}

fn with_suffix(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Reads a private key, asking for its passphrase from the environment if encrypted.
pub fn load_private_key(path: &Path, passphrase_env: Option<&str>) -> Result<PrivateKey> {
    let pem = crate::sources::read_local(path, 64 * 1024)?;
    let var = passphrase_env.unwrap_or(PASSPHRASE_ENV);
    let passphrase = std::env::var(var).ok();
    PrivateKey::from_pem(&pem, passphrase.as_deref().map(str::as_bytes)).map_err(|e| match e {
        lockgate_attest::keys::KeyError::PassphraseRequired => anyhow::anyhow!(
            "{} is encrypted: set its passphrase in ${var}",
            path.display()
        ),
        other => anyhow::anyhow!("{}: {other}", path.display()),
    })
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > MAX_INPUT_BYTES {
        bail!("{} is larger than {MAX_INPUT_BYTES} bytes", path.display());
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// `anthropic` for Claude models, `openai` for GPT/o-series/Codex, … or the part
/// before `/` in `provider/model`.
fn provider_and_id(model: &str, explicit: Option<&str>) -> (String, String) {
    if let Some((p, id)) = model.split_once('/') {
        return (explicit.unwrap_or(p).to_string(), id.to_string());
    }
    let lower = model.to_ascii_lowercase();
    let guessed = if lower.starts_with("claude") {
        "anthropic"
    } else if lower.starts_with("gpt")
        || lower.starts_with("o1")
        || lower.starts_with("o3")
        || lower.starts_with("o4")
        || lower.contains("codex")
    {
        "openai"
    } else if lower.starts_with("gemini") {
        "google"
    } else {
        "unknown"
    };
    (explicit.unwrap_or(guessed).to_string(), model.to_string())
}

pub fn attest(args: AttestArgs, now: i64) -> Result<u8> {
    let key = load_private_key(&args.key, args.passphrase_env.as_deref())?;
    let repo = Repo::discover(&args.repo)?;
    let base = repo.resolve_commit(&args.base)?.to_string();
    let head = repo.resolve_commit(&args.head)?.to_string();
    if !repo.is_ancestor(&base, &head)? {
        bail!(
            "--base {} is not an ancestor of --head {}",
            args.base,
            args.head
        );
    }

    // Prompt.
    let prompt_bytes = match (&args.prompt_file, &args.prompt) {
        (Some(f), None) => read_bytes(f)?,
        (None, Some(p)) => p.clone().into_bytes(),
        _ => bail!("give the task prompt with --prompt-file FILE or --prompt TEXT"),
    };
    let prompt = match &args.prompt_salt_file {
        Some(salt_file) => {
            let mut salted = read_bytes(salt_file)?;
            if salted.len() < 16 {
                bail!("{}: a salt needs at least 16 bytes", salt_file.display());
            }
            salted.extend_from_slice(&prompt_bytes);
            Prompt {
                digest: None,
                salted_digest: Some(sha256_set(&salted)),
            }
        }
        None => Prompt {
            digest: Some(sha256_set(&prompt_bytes)),
            salted_digest: None,
        },
    };

    // Transcript and Agent Trace records.
    let mut transcript = None;
    if let Some(path) = &args.transcript {
        let bytes = read_bytes(path)?;
        let format = match args.transcript_format.as_str() {
            "auto" => transcript::detect(&bytes)?,
            name => TranscriptFormat::parse(name)
                .with_context(|| format!("unknown transcript format {name:?}"))?,
        };
        let scanner = SecretScanner::new(&SecretSettings::default())?;
        let t = transcript::import(&bytes, format, &scanner)
            .with_context(|| format!("reading transcript {}", path.display()))?;
        if let Some(out) = &args.transcript_out {
            std::fs::write(out, &t.redacted)
                .with_context(|| format!("writing {}", out.display()))?;
        }
        transcript = Some(t.summary);
    }
    for path in &args.agent_trace {
        let bytes = read_bytes(path)?;
        let digest = transcript::agent_trace_digest(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        transcript
            .get_or_insert_with(|| TranscriptSummary {
                format: "none".into(),
                ..TranscriptSummary::default()
            })
            .agent_trace
            .push(digest);
    }

    // Model: explicit, or the one the transcript names.
    let model_name = match (
        &args.model,
        transcript.as_ref().map(|t| t.models.as_slice()),
    ) {
        (Some(m), _) => m.clone(),
        (None, Some([only])) => only.clone(),
        (None, Some(many)) if many.len() > 1 => {
            bail!(
                "the transcript names several models ({}); choose one with --model",
                many.join(", ")
            )
        }
        _ => bail!("give the model with --model (e.g. claude-sonnet-4-5)"),
    };
    let (provider, model_id) = provider_and_id(&model_name, args.model_provider.as_deref());
    let model_digest = args
        .model_digest
        .as_deref()
        .map(|d| {
            let hex = d.strip_prefix("sha256:").unwrap_or(d);
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("--model-digest must be sha256:<64 hex>");
            }
            Ok(std::collections::BTreeMap::from([(
                "sha256".to_string(),
                hex.to_ascii_lowercase(),
            )]))
        })
        .transpose()?;

    let check_time = |t: &Option<String>, flag: &str| -> Result<()> {
        if let Some(t) = t
            && lockgate_attest::trust::parse_rfc3339(t).is_none()
        {
            bail!("--{flag} {t:?} is not an RFC 3339 time");
        }
        Ok(())
    };
    check_time(&args.started, "started")?;
    check_time(&args.finished, "finished")?;

    let parts = SessionParts {
        agent: Agent {
            name: args.agent.clone(),
            version: args.agent_version.clone(),
            instance_id: args.instance_id.clone(),
        },
        model: Model {
            provider,
            id: model_id,
            digest: model_digest,
        },
        prompt,
        task: args.task.clone(),
        repository: args.repository.clone(),
        transcript,
        environment: Environment {
            runner: args.runner.clone(),
            image_digest: args.image_digest.clone(),
        },
        started: args.started.clone(),
        finished: args.finished.clone(),
    };
    let (session, statement, mut bundle) = attest_session(&repo, &base, &head, parts, &key, now)?;
    let mut logged = None;
    if let Some(log) = &args.log {
        let location = crate::log_cmd::Location::parse(log)?;
        let remote = crate::log_cmd::RemoteArgs {
            token_file: args.log_token_file.clone(),
            key: args.log_key.clone(),
        };
        let proof = log_bundle(&mut bundle, &location, &remote)
            .with_context(|| format!("logging the attestation in {log}"))?;
        logged = Some((proof.log_index, proof.tree_size));
    }
    let json = bundle.to_json();

    if let Some(out) = &args.out {
        std::fs::write(out, format!("{json}\n"))
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let mut noted = None;
    if !args.no_note {
        let tree = session.proposed.tree.clone();
        noted = Some(repo.append_notes(
            &[&head, &tree],
            &json,
            ("lockgate attest", "attest@lockgate.invalid"),
        )?);
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&statement)?);
        return Ok(0);
    }
    let short = |s: &str| s.chars().take(12).collect::<String>();
    println!(
        "attested {}..{} for {} ({}/{})",
        short(&base),
        short(&head),
        session.agent.name,
        session.model.provider,
        session.model.id
    );
    if let Some((index, size)) = logged {
        println!(
            "  logged: entry {index} of {} (tree size {size}), proof stored in the bundle",
            args.log.as_deref().unwrap_or_default()
        );
    }
    println!(
        "  subjects: commit {}  tree {}",
        short(&head),
        short(&session.proposed.tree)
    );
    if let Some(p) = &session.proposed.patch_id {
        println!("  patch id: {p}");
    }
    match (&session.prompt.digest, &session.prompt.salted_digest) {
        (Some(d), _) => println!("  prompt:   sha256:{}", d["sha256"]),
        (None, Some(d)) => println!("  prompt:   salted sha256:{} (private)", d["sha256"]),
        _ => {}
    }
    if let Some(t) = &session.transcript {
        println!(
            "  transcript: {} — {} steps, {} tool calls, {} files touched, {} secret(s) redacted",
            t.format,
            t.steps,
            t.tool_calls,
            t.files_touched.len(),
            t.redactions
        );
    }
    let d = &session.dependencies;
    if !d.lockfiles.is_empty() {
        println!(
            "  dependencies: +{} -{} ~{} ({})",
            d.added.len(),
            d.removed.len(),
            d.changed.len(),
            d.lockfiles.join(", ")
        );
    }
    println!(
        "  signed by {} ({})",
        key.public_key().key_id(),
        key.algorithm().as_str()
    );
    if let Some(c) = noted {
        println!(
            "  stored in {} (notes commit {}); share it: git push origin '{}'",
            lockgate_git::NOTES_REF,
            short(&c),
            lockgate_git::NOTES_REF
        );
    }
    if let Some(out) = &args.out {
        println!("  bundle written to {}", out.display());
    }
    Ok(0)
}

/// What the caller knows about a session; git supplies the rest.
pub struct SessionParts {
    pub agent: Agent,
    pub model: Model,
    pub prompt: Prompt,
    pub task: Option<String>,
    pub repository: Option<String>,
    pub transcript: Option<TranscriptSummary>,
    pub environment: Environment,
    pub started: Option<String>,
    pub finished: Option<String>,
}

/// Completes a session from git (trees, patch id, dependency delta), builds the
/// statement and signs it as a Sigstore bundle.
pub fn attest_session(
    repo: &Repo,
    base: &str,
    head: &str,
    parts: SessionParts,
    key: &PrivateKey,
    now: i64,
) -> Result<(AgentSession, lockgate_attest::intoto::Statement, Bundle)> {
    let session = AgentSession {
        agent: parts.agent,
        model: parts.model,
        prompt: parts.prompt,
        task: parts.task,
        repository: parts.repository,
        base: GitRevision {
            tree: repo.tree_of(base)?,
            commit: base.to_string(),
        },
        proposed: ProposedRevision {
            tree: repo.tree_of(head)?,
            patch_id: repo.patch_id(base, head)?,
            commit: head.to_string(),
        },
        transcript: parts.transcript,
        dependencies: dependency_delta(repo, base, head)?,
        environment: parts.environment,
        timestamps: Timestamps {
            started: parts.started,
            finished: parts.finished,
            attested: format_rfc3339(now),
        },
    };
    let statement = session.clone().into_statement();
    statement
        .validate()
        .map_err(|e| anyhow::anyhow!("internal: invalid statement: {e}"))?;
    let payload = serde_json::to_vec(&statement)?;
    let bundle = Bundle::sign_dsse(IN_TOTO_PAYLOAD_TYPE, &payload, key);
    Ok((session, statement, bundle))
}

/// Packages added, removed and changed in the lockfiles that `base..head` touches.
fn dependency_delta(repo: &Repo, base: &str, head: &str) -> Result<DependencyDelta> {
    let change = repo.read_change(base, head, &Limits::default())?;
    let mut before = PackageSet::new();
    let mut after = PackageSet::new();
    let mut lockfiles = Vec::new();
    for f in &change.files {
        let paths: Vec<&str> = std::iter::once(f.path.as_str())
            .chain(f.old_path.as_deref())
            .collect();
        if !paths.iter().any(|p| deps::is_lockfile(p)) {
            continue;
        }
        lockfiles.push(f.path.clone());
        for (rev, set) in [(base, &mut before), (head, &mut after)] {
            for p in &paths {
                if let Some(bytes) = repo.read_file_at(rev, p, deps::MAX_LOCKFILE_BYTES as u64)?
                    && let Some(parsed) = deps::packages(p, &bytes)
                {
                    for (k, v) in parsed.map_err(|e| anyhow::anyhow!(e))? {
                        set.entry(k).or_default().extend(v);
                    }
                }
            }
        }
    }
    Ok(deps::delta(&before, &after, lockfiles))
}

/// Appends a bundle's envelope to a transparency log and records the entry, with its
/// verified inclusion proof and checkpoint, in the bundle's `tlogEntries`.
pub fn log_bundle(
    bundle: &mut Bundle,
    location: &crate::log_cmd::Location,
    remote: &crate::log_cmd::RemoteArgs,
) -> Result<lockgate_log::proof::InclusionProofDoc> {
    let envelope = bundle
        .dsse_envelope
        .as_ref()
        .context("only DSSE bundles are logged")?;
    let body = lockgate_attest::tlog::logged_body(envelope);
    let log_id = location.key(remote.key.as_deref())?.log_id();
    let proof = crate::log_cmd::append(location, std::slice::from_ref(&body), remote)?.remove(0);
    let entry = lockgate_attest::tlog::TlogEntry::new(&body, proof.clone(), log_id);
    bundle
        .verification_material
        .tlog_entries
        .push(serde_json::to_value(entry)?);
    Ok(proof)
}
