//! `lockgate verify`: attestations for a commit, or signatures made by other tools.

use crate::provenance;
use crate::render::exit;
use anyhow::{Context, Result, bail};
use clap::Args;
use lockgate_attest::bundle::{Bundle, verify_blob};
use lockgate_attest::dsse::Envelope;
use lockgate_attest::keys::PublicKey;
use lockgate_attest::verify::{Verification, best};
use lockgate_core::provenance::ProvenanceStatus;
use std::path::PathBuf;

#[derive(Args)]
pub struct VerifyArgs {
    /// The commit whose provenance to verify.
    #[arg(long, default_value = "HEAD")]
    pub head: String,
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Trust root (default: .lockgate/trust.toml in the repository's work tree).
    #[arg(long)]
    pub trust_root: Option<PathBuf>,
    /// Attestation bundle file(s) to consider besides git notes. With --key and --blob:
    /// a message-signature bundle (`cosign sign-blob --bundle`).
    #[arg(long)]
    pub bundle: Vec<PathBuf>,
    /// Verify with this public key (PEM) instead of a trust root: for --blob or --envelope.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// An artifact signed with `cosign sign-blob --key` (needs --key and --signature or --bundle).
    #[arg(long)]
    pub blob: Option<PathBuf>,
    /// Base64 signature file for --blob.
    #[arg(long)]
    pub signature: Option<PathBuf>,
    /// A DSSE envelope (JSON) made by any tool, verified with --key.
    #[arg(long)]
    pub envelope: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: VerifyArgs, now: i64) -> Result<u8> {
    if args.blob.is_some() || args.envelope.is_some() {
        return verify_foreign(&args);
    }
    let repo = lockgate_git::Repo::discover(&args.repo)?;
    let trust_path = args
        .trust_root
        .clone()
        .unwrap_or_else(|| args.repo.join(provenance::TRUST_FILE));
    if !trust_path.exists() {
        bail!(
            "no trust root at {}: pass --trust-root FILE (see `lockgate keygen` for the format)",
            trust_path.display()
        );
    }
    let trust = provenance::trust_root_file(&trust_path)?;
    let head = repo.resolve_commit(&args.head)?.to_string();
    let extra = args
        .bundle
        .iter()
        .map(|p| {
            crate::sources::read_local(p, lockgate_attest::dsse::MAX_ENVELOPE_BYTES as u64)
                .map(String::into_bytes)
        })
        .collect::<Result<Vec<_>>>()?;
    let results = provenance::verify_commit(&repo, &head, &extra, &trust, now, true)?;
    let outcome = best(results.clone());
    if args.json {
        let doc = serde_json::json!({
            "commit": head,
            "status": outcome.as_ref().map(|v| v.status.as_str()).unwrap_or("missing"),
            "best": outcome,
            "attestations": results,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_text(&head, outcome.as_ref(), results.len());
    }
    Ok(match outcome {
        Some(v) if v.status == ProvenanceStatus::Valid => exit::AUTO_MERGE,
        _ => exit::BLOCKED,
    })
}

fn print_text(head: &str, v: Option<&Verification>, found: usize) {
    let short = |s: &str| s.chars().take(12).collect::<String>();
    let Some(v) = v else {
        println!(
            "provenance of {}: missing (no attestation in notes on the commit or its tree, by patch id, or in --bundle)",
            short(head)
        );
        return;
    };
    let binding = v
        .binding
        .map(|b| {
            format!(
                " (bound by {})",
                match b {
                    lockgate_core::provenance::Binding::Commit => "commit",
                    lockgate_core::provenance::Binding::Tree => "tree",
                    lockgate_core::provenance::Binding::PatchId => "patch id",
                }
            )
        })
        .unwrap_or_default();
    println!(
        "provenance of {}: {}{binding} — {found} attestation(s) found",
        short(head),
        v.status.as_str()
    );
    if let Some(s) = &v.signer {
        println!("  signer:     {s}");
    }
    if let Some(l) = &v.logged {
        println!(
            "  logged:     entry {} of transparency log {:?} (inclusion verified at tree size {})",
            l.index, l.log, l.tree_size
        );
    }
    if let Some(s) = &v.session {
        println!(
            "  agent:      {}{}",
            s.agent.name,
            s.agent
                .version
                .as_deref()
                .map(|v| format!(" {v}"))
                .unwrap_or_default()
        );
        println!("  model:      {}/{}", s.model.provider, s.model.id);
        if let Some(d) = s.prompt.digest.as_ref().or(s.prompt.salted_digest.as_ref()) {
            println!(
                "  prompt:     sha256:{}{}",
                d["sha256"],
                if s.prompt.digest.is_none() {
                    " (salted)"
                } else {
                    ""
                }
            );
        }
        if let Some(t) = &s.task {
            println!("  task:       {t}");
        }
        println!(
            "  base:       {}  proposed: {}",
            short(&s.base.commit),
            short(&s.proposed.commit)
        );
        if let Some(t) = &s.transcript {
            println!(
                "  transcript: {} sha256:{} — {} steps, {} tool calls, files: {}",
                t.format,
                t.digest.get("sha256").map(String::as_str).unwrap_or("-"),
                t.steps,
                t.tool_calls,
                if t.files_touched.is_empty() {
                    "-".to_string()
                } else {
                    t.files_touched.join(", ")
                }
            );
        }
        let d = &s.dependencies;
        if !d.lockfiles.is_empty() {
            println!(
                "  dependencies: +{} -{} ~{}",
                d.added.len(),
                d.removed.len(),
                d.changed.len()
            );
        }
        println!("  attested:   {}", s.timestamps.attested);
    }
    for r in &v.reasons {
        println!("  reason:     {r}");
    }
}

/// `--blob` (cosign sign-blob) and `--envelope` (DSSE from other tools) with `--key`.
fn verify_foreign(args: &VerifyArgs) -> Result<u8> {
    let key_path = args
        .key
        .as_ref()
        .context("--blob and --envelope need --key PUBLIC.pem")?;
    let key = PublicKey::from_pem(&crate::sources::read_local(key_path, 64 * 1024)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
    let ok = if let Some(blob) = &args.blob {
        let artifact =
            std::fs::read(blob).with_context(|| format!("reading {}", blob.display()))?;
        match (&args.signature, args.bundle.first()) {
            (Some(sig), None) => {
                let sig = crate::sources::read_local(sig, 64 * 1024)?;
                verify_blob(&artifact, &sig, &key).map_err(|e| e.to_string())
            }
            (None, Some(bundle)) => {
                let bytes = std::fs::read(bundle)
                    .with_context(|| format!("reading {}", bundle.display()))?;
                Bundle::from_json(&bytes)
                    .and_then(|b| b.verify_message(&artifact, &key))
                    .map_err(|e| e.to_string())
            }
            _ => bail!("--blob needs exactly one of --signature or --bundle"),
        }
    } else {
        let path = args.envelope.as_ref().expect("checked by the caller");
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let env = match Envelope::from_json(&bytes) {
            Ok(e) => Ok(e),
            // A Sigstore bundle holding an envelope is accepted too.
            Err(_) => Bundle::from_json(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    b.dsse_envelope
                        .ok_or_else(|| "no DSSE envelope in the bundle".to_string())
                }),
        };
        env.and_then(|e| {
            e.verify(std::slice::from_ref(&key))
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    };
    match ok {
        Ok(()) => {
            println!("Verified OK with {}", key.key_id());
            Ok(exit::AUTO_MERGE)
        }
        Err(e) => {
            println!("verification FAILED: {e}");
            Ok(exit::BLOCKED)
        }
    }
}
