//! `lockgate log`: a transparency log of attestations, decisions and approvals.
//!
//! A log is a directory (`lockgate log init`) or a URL (a static copy of its `public/`
//! directory, or `lockgate log serve`). Reading commands take either; writing locally
//! needs the directory, remotely the server's token.

mod index;
mod monitor;
pub(crate) mod remote;
mod serve;

use anyhow::{Context, Result, anyhow, bail};
use lockgate_log::checkpoint::{Checkpoint, LogVerifyingKey};
use lockgate_log::dir::LogDir;
use lockgate_log::log::LogReader;
use lockgate_log::merkle;
use lockgate_log::proof::{CheckpointDoc, ConsistencyProofDoc, InclusionProofDoc};
use lockgate_log::storage::Storage;
use lockgate_log::tiles::MAX_ENTRY_BYTES;
use std::io::{Read, Write};
use std::path::PathBuf;

/// Exit code when a proof or audit fails, or a monitor sees a fork or rollback.
pub const EXIT_FAILED: u8 = 4;

#[derive(clap::Subcommand)]
pub enum LogCommand {
    /// Create a log in a new directory: a signing key, and the signed checkpoint of
    /// the empty tree.
    ///
    /// DIR/public is the log as C2SP tlog-tiles (serve it with any static file server
    /// or `lockgate log serve`); DIR/log.pub is the verifier key to give clients;
    /// DIR/log.key is the secret checkpoint key (mode 0600).
    ///
    /// Example:
    ///   lockgate log init /var/lib/lockgate/log --origin lockgate.example.com/agents
    #[command(verbatim_doc_comment)]
    Init {
        dir: PathBuf,
        /// The log's name: the first line of every checkpoint and the key name
        /// (conventionally a URL without scheme; no spaces or '+').
        #[arg(long)]
        origin: String,
        #[arg(long)]
        json: bool,
    },
    /// Append entries (each FILE is one entry; `-` reads standard input) as one batch,
    /// and print each entry's index and inclusion proof.
    ///
    /// LOG is a log directory (appends locally, under its lock) or the URL of
    /// `lockgate log serve` (needs --token-file or LOCKGATE_LOG_TOKEN, and --key to
    /// check the proofs it answers with).
    ///
    /// Example:
    ///   lockgate log append ./log attestation.json
    #[command(verbatim_doc_comment)]
    Append {
        #[arg(value_name = "LOG")]
        location: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        remote: RemoteArgs,
        #[arg(long)]
        json: bool,
    },
    /// Print an entry's bytes, or the current checkpoint.
    Get {
        #[arg(value_name = "LOG")]
        location: String,
        /// The entry to print.
        #[arg(long, required_unless_present = "checkpoint")]
        index: Option<u64>,
        /// Print the verified checkpoint note instead.
        #[arg(long, conflicts_with = "index")]
        checkpoint: bool,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[arg(long)]
        key: Option<String>,
    },
    /// Prove an entry is in the log (an inclusion proof to the current checkpoint), or
    /// that the current checkpoint extends an older one (a consistency proof).
    ///
    /// Proofs are JSON (Sigstore InclusionProof shape) and check offline with
    /// `lockgate log verify --proof`.
    ///
    /// Examples:
    ///   lockgate log prove ./log --index 41 > proof.json
    ///   lockgate log prove https://log.example.com --key log.pub --from old-checkpoint
    #[command(verbatim_doc_comment)]
    Prove {
        #[arg(value_name = "LOG")]
        location: String,
        #[arg(long, required_unless_present = "from", conflicts_with = "from")]
        index: Option<u64>,
        /// A checkpoint note (file) the current one must extend.
        #[arg(long)]
        from: Option<PathBuf>,
        #[arg(long)]
        key: Option<String>,
    },
    /// Audit a whole log, or check a proof offline.
    ///
    /// With LOG: re-hash every entry, rebuild every tile, and check both against the
    /// signed checkpoint. With --proof: check an inclusion proof (with --entry, the
    /// entry's bytes) or a consistency proof, using only the log's key.
    ///
    /// Examples:
    ///   lockgate log verify ./log
    ///   lockgate log verify --key log.pub --proof proof.json --entry attestation.json
    #[command(verbatim_doc_comment)]
    Verify {
        #[arg(required_unless_present = "proof", value_name = "LOG")]
        location: Option<String>,
        #[arg(long, conflicts_with = "location")]
        proof: Option<PathBuf>,
        /// The entry an inclusion proof is for.
        #[arg(long, requires = "proof")]
        entry: Option<PathBuf>,
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Serve a log over HTTP: the C2SP tlog-tiles read API (GET /checkpoint,
    /// /tile/…) and, with a token, an authenticated append endpoint
    /// (POST /lockgate/v1/add, `Authorization: Bearer <token>`) that batches entries.
    ///
    /// Example:
    ///   LOCKGATE_LOG_TOKEN=$(cat token) lockgate log serve ./log --listen 0.0.0.0:8080
    #[command(verbatim_doc_comment)]
    Serve(serve::ServeArgs),
    /// Watch a log: verify each new checkpoint and prove it consistent with the last
    /// verified one, kept in --state. A fork (same size, other root; or no valid
    /// consistency proof) or a rollback (smaller tree) is an alert: exit 4.
    ///
    /// Example:
    ///   lockgate log monitor https://log.example.com --key log.pub --state log.state --interval 60
    #[command(verbatim_doc_comment)]
    Monitor(monitor::MonitorArgs),
    /// Find entries by commit, agent or signing key id in a log directory's index.
    ///
    /// Example:
    ///   lockgate log search ./log --commit 4f2a9c1
    #[command(verbatim_doc_comment)]
    Search {
        dir: PathBuf,
        /// A commit id (a prefix of 7 or more hex digits).
        #[arg(long)]
        commit: Option<String>,
        #[arg(long)]
        agent: Option<String>,
        /// A key id as the envelopes' signatures name it.
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// How to reach a remote log's append endpoint.
#[derive(clap::Args, Default)]
pub struct RemoteArgs {
    /// File holding the bearer token for a remote log (or LOCKGATE_LOG_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The log's verifier key (note format, or a file holding it). Default for a
    /// directory: DIR/log.pub.
    #[arg(long)]
    pub key: Option<String>,
}

pub fn run(cmd: LogCommand) -> Result<u8> {
    match cmd {
        LogCommand::Init { dir, origin, json } => {
            let vkey = LogDir::init(&dir, &origin)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"dir": dir, "origin": origin, "key": vkey.to_note_key()})
                );
            } else {
                println!("created log {origin:?} in {}", dir.display());
                println!("verifier key (give it to clients and monitors; also in log.pub):");
                println!("  {}", vkey.to_note_key());
                println!("trust it in .lockgate/trust.toml:");
                println!(
                    "  [[log]]\n  name = \"{origin}\"\n  key = \"{}\"",
                    vkey.to_note_key()
                );
            }
            Ok(0)
        }
        LogCommand::Append {
            location,
            files,
            remote,
            json,
        } => {
            let entries = files.iter().map(read_entry).collect::<Result<Vec<_>>>()?;
            let location = Location::parse(&location)?;
            let proofs = append(&location, &entries, &remote)?;
            for (file, proof) in files.iter().zip(&proofs) {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"file": file, "inclusionProof": proof})
                    );
                } else {
                    println!(
                        "{}: entry {} (tree size {})",
                        file.display(),
                        proof.log_index,
                        proof.tree_size
                    );
                }
            }
            Ok(0)
        }
        LogCommand::Get {
            location,
            index,
            checkpoint,
            output,
            key,
        } => {
            let location = Location::parse(&location)?;
            let key = location.key(key.as_deref())?;
            let storage = location.storage()?;
            let reader = LogReader::new(storage.as_ref());
            let (cp, note) = reader.checkpoint(&key)?;
            let bytes = if checkpoint {
                note
            } else {
                let index = index.expect("clap requires --index");
                reader.entry(index, cp.size)?
            };
            write_output(output.as_ref(), &bytes)?;
            Ok(0)
        }
        LogCommand::Prove {
            location,
            index,
            from,
            key,
        } => {
            let location = Location::parse(&location)?;
            let key = location.key(key.as_deref())?;
            let storage = location.storage()?;
            let doc = match (index, from) {
                (Some(index), _) => {
                    serde_json::to_value(prove_inclusion(storage.as_ref(), &key, index)?)?
                }
                (None, Some(from)) => {
                    let old_note = std::fs::read(&from)
                        .with_context(|| format!("reading {}", from.display()))?;
                    serde_json::to_value(prove_consistency(storage.as_ref(), &key, &old_note)?)?
                }
                (None, None) => unreachable!("clap requires --index or --from"),
            };
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(0)
        }
        LogCommand::Verify {
            location,
            proof,
            entry,
            key,
            json,
        } => verify(location, proof, entry, key, json),
        LogCommand::Serve(args) => serve::run(args),
        LogCommand::Monitor(args) => monitor::run(args),
        LogCommand::Search {
            dir,
            commit,
            agent,
            key,
            json,
        } => {
            if commit.is_none() && agent.is_none() && key.is_none() {
                bail!("give at least one of --commit, --agent, --key");
            }
            if let Some(c) = &commit
                && (c.len() < 7 || !c.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                bail!("--commit {c:?}: give at least 7 hex digits of a commit id");
            }
            let query = index::Query { commit, agent, key };
            let dir = LogDir::open(&dir)?;
            let storage = dir.storage()?;
            let (cp, _) = LogReader::new(&storage).checkpoint(&dir.verifying_key()?)?;
            // Persist the catch-up only when no other writer holds the log.
            let lock = dir.lock().ok();
            let lines = index::catch_up(&dir.index_path(), &storage, cp.size, lock.is_some())?;
            let hits: Vec<_> = lines.iter().filter(|l| query.matches(l)).collect();
            for hit in &hits {
                if json {
                    println!("{}", serde_json::to_string(hit)?);
                } else {
                    println!(
                        "{}\t{}\t{}\t{}",
                        hit.index,
                        hit.agent.as_deref().unwrap_or("-"),
                        if hit.commits.is_empty() {
                            "-".to_string()
                        } else {
                            hit.commits.join(",")
                        },
                        hit.sha256
                    );
                }
            }
            if hits.is_empty() && !json {
                eprintln!("no entries match (searched {} entries)", lines.len());
            }
            Ok(if hits.is_empty() { 1 } else { 0 })
        }
    }
}

/// A log to read: a directory or a URL.
pub enum Location {
    Dir(LogDir),
    Url(String),
}

impl Location {
    pub fn parse(text: &str) -> Result<Location> {
        if text.starts_with("http://") || text.starts_with("https://") {
            Ok(Location::Url(text.to_string()))
        } else {
            Ok(Location::Dir(LogDir::open(text)?))
        }
    }

    /// The log's files.
    pub fn storage(&self) -> Result<Box<dyn Storage>> {
        Ok(match self {
            Location::Dir(d) => Box::new(d.storage()?),
            Location::Url(u) => Box::new(remote::HttpStorage::new(u)),
        })
    }

    /// The verifier key: `explicit` (a note key or a file holding one), else the
    /// directory's `log.pub`. A URL's key is never fetched from the URL itself.
    pub fn key(&self, explicit: Option<&str>) -> Result<LogVerifyingKey> {
        match (explicit, self) {
            (Some(k), _) => parse_key(k),
            (None, Location::Dir(d)) => Ok(d.verifying_key()?),
            (None, Location::Url(u)) => bail!(
                "give the log's verifier key with --key (its log.pub): a key fetched from {u} would prove nothing"
            ),
        }
    }
}

/// A verifier key given inline or as a file.
pub fn parse_key(text: &str) -> Result<LogVerifyingKey> {
    let path = std::path::Path::new(text);
    let key_text = if path.is_file() {
        std::fs::read_to_string(path).with_context(|| format!("reading {text}"))?
    } else if text.contains('+') {
        text.to_string()
    } else {
        bail!("--key {text:?} is neither a file nor a note key (<origin>+<hash>+<key>)");
    };
    LogVerifyingKey::parse(&key_text).map_err(|e| anyhow!("log key: {e}"))
}

/// Appends `entries` and returns a verified inclusion proof for each.
pub fn append(
    location: &Location,
    entries: &[Vec<u8>],
    remote: &RemoteArgs,
) -> Result<Vec<InclusionProofDoc>> {
    if let Some(big) = entries.iter().find(|e| e.len() > MAX_ENTRY_BYTES) {
        bail!(
            "an entry of {} bytes is larger than the log's {MAX_ENTRY_BYTES}-byte limit",
            big.len()
        );
    }
    let key = location.key(remote.key.as_deref())?;
    let proofs = match location {
        Location::Dir(dir) => {
            let (mut log, _lock) = dir.writer()?;
            let appended = log.append(entries)?;
            let reader = LogReader::new(log.storage());
            let mut proofs = Vec::with_capacity(entries.len());
            for i in 0..entries.len() as u64 {
                let index = appended.first_index + i;
                proofs.push(InclusionProofDoc {
                    log_index: index,
                    root_hash: appended.root,
                    tree_size: appended.size,
                    hashes: reader.inclusion_proof(index, appended.size)?,
                    checkpoint: CheckpointDoc {
                        envelope: String::from_utf8(appended.checkpoint.clone())?,
                    },
                });
            }
            // The index follows the published checkpoint (and catches up if a
            // previous writer stopped between the two).
            index::catch_up(&dir.index_path(), log.storage(), appended.size, true)?;
            proofs
        }
        Location::Url(url) => {
            // Concurrently, so the server integrates them in one batch instead of one
            // batch interval per entry.
            let token = token(remote)?;
            let mut proofs = Vec::with_capacity(entries.len());
            for chunk in entries.chunks(32) {
                let answers: Vec<Result<InclusionProofDoc>> = std::thread::scope(|scope| {
                    let handles: Vec<_> = chunk
                        .iter()
                        .map(|e| {
                            let token = &token;
                            scope.spawn(move || {
                                remote::add(url, token, e).map(|r| r.inclusion_proof)
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("append thread"))
                        .collect()
                });
                for answer in answers {
                    proofs.push(answer?);
                }
            }
            proofs
        }
    };
    // Fail closed: a proof that does not check out means the entry is not logged.
    for (entry, proof) in entries.iter().zip(&proofs) {
        proof.verify(entry, &key).with_context(|| {
            format!(
                "the log's proof for entry {} does not verify",
                proof.log_index
            )
        })?;
    }
    Ok(proofs)
}

fn token(remote: &RemoteArgs) -> Result<String> {
    let token = match &remote.token_file {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => std::env::var("LOCKGATE_LOG_TOKEN").map_err(|_| {
            anyhow!("appending to a remote log needs a token: --token-file or LOCKGATE_LOG_TOKEN")
        })?,
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        bail!("the log token is empty");
    }
    Ok(token)
}

/// An inclusion proof for `index` against the current (verified) checkpoint.
fn prove_inclusion(
    storage: &dyn Storage,
    key: &LogVerifyingKey,
    index: u64,
) -> Result<InclusionProofDoc> {
    let reader = LogReader::new(storage);
    let (cp, note) = reader.checkpoint(key)?;
    let doc = InclusionProofDoc {
        log_index: index,
        root_hash: cp.root,
        tree_size: cp.size,
        hashes: reader.inclusion_proof(index, cp.size)?,
        checkpoint: CheckpointDoc {
            envelope: String::from_utf8(note)?,
        },
    };
    let entry = reader.entry(index, cp.size)?;
    doc.verify(&entry, key)
        .context("the log's tiles do not prove its own entry: the log is damaged")?;
    Ok(doc)
}

/// A consistency proof from `old_note` to the current checkpoint.
pub fn prove_consistency(
    storage: &dyn Storage,
    key: &LogVerifyingKey,
    old_note: &[u8],
) -> Result<ConsistencyProofDoc> {
    let reader = LogReader::new(storage);
    let old = Checkpoint::verify(old_note, key).context("the old checkpoint")?;
    let (new, new_note) = reader.checkpoint(key)?;
    if old.size > new.size {
        bail!(
            "rollback: the log's checkpoint has {} entries, fewer than the {} of the old one",
            new.size,
            old.size
        );
    }
    let hashes = if old.size == 0 {
        Vec::new()
    } else {
        reader.consistency_proof(old.size, new.size)?
    };
    let doc = ConsistencyProofDoc {
        old_checkpoint: CheckpointDoc {
            envelope: String::from_utf8(old_note.to_vec())?,
        },
        new_checkpoint: CheckpointDoc {
            envelope: String::from_utf8(new_note)?,
        },
        hashes,
    };
    Ok(doc)
}

fn verify(
    location: Option<String>,
    proof: Option<PathBuf>,
    entry: Option<PathBuf>,
    key: Option<String>,
    json: bool,
) -> Result<u8> {
    let report = |ok: bool, what: String| {
        if json {
            println!("{}", serde_json::json!({"ok": ok, "result": what}));
        } else if ok {
            println!("ok: {what}");
        } else {
            eprintln!("FAILED: {what}");
        }
        if ok { 0 } else { EXIT_FAILED }
    };
    if let Some(log) = location {
        let location = Location::parse(&log)?;
        let key = location.key(key.as_deref())?;
        let storage = location.storage()?;
        let started = std::time::Instant::now();
        return Ok(match LogReader::new(storage.as_ref()).audit(&key) {
            Ok(cp) => report(
                true,
                format!(
                    "{}: {} entries, every entry, tile and the checkpoint agree (root {}, {:.1?})",
                    cp.origin,
                    cp.size,
                    hex::encode(cp.root),
                    started.elapsed()
                ),
            ),
            Err(e) => report(false, format!("{log}: {e}")),
        });
    }
    let proof_path = proof.expect("clap requires LOG or --proof");
    let key =
        parse_key(key.as_deref().ok_or_else(|| {
            anyhow!("checking a proof offline needs the log's verifier key: --key")
        })?)?;
    let text =
        std::fs::read(&proof_path).with_context(|| format!("reading {}", proof_path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not JSON", proof_path.display()))?;
    if value.get("oldCheckpoint").is_some() {
        let doc: ConsistencyProofDoc = serde_json::from_value(value)?;
        return Ok(match doc.verify(&key) {
            Ok((old, new)) => report(
                true,
                format!(
                    "{}: the tree of {} entries extends the tree of {}",
                    new.origin, new.size, old.size
                ),
            ),
            Err(e) => report(false, format!("consistency proof: {e}")),
        });
    }
    // An inclusion proof, bare or inside a Sigstore tlog entry or bundle.
    let doc: InclusionProofDoc = match value.get("inclusionProof") {
        Some(p) => serde_json::from_value(p.clone())?,
        None => serde_json::from_value(value)?,
    };
    let entry_path = entry.ok_or_else(|| anyhow!("an inclusion proof needs --entry FILE"))?;
    let bytes = read_entry(&entry_path)?;
    Ok(match doc.verify(&bytes, &key) {
        Ok(cp) => report(
            true,
            format!(
                "{} is entry {} of {} (tree size {}, leaf {})",
                entry_path.display(),
                doc.log_index,
                cp.origin,
                cp.size,
                hex::encode(merkle::leaf_hash(&bytes))
            ),
        ),
        Err(e) => report(false, format!("inclusion proof: {e}")),
    })
}

/// Reads one entry from a file or `-`, bounded by the entry size limit.
fn read_entry(path: &PathBuf) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let limit = MAX_ENTRY_BYTES as u64 + 1;
    if path.as_os_str() == "-" {
        std::io::stdin().take(limit).read_to_end(&mut bytes)?;
    } else {
        std::fs::File::open(path)
            .with_context(|| format!("reading {}", path.display()))?
            .take(limit)
            .read_to_end(&mut bytes)?;
    }
    if bytes.len() > MAX_ENTRY_BYTES {
        bail!(
            "{} is larger than the log's {MAX_ENTRY_BYTES}-byte entry limit",
            path.display()
        );
    }
    Ok(bytes)
}

fn write_output(path: Option<&PathBuf>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(p) => std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display())),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()?;
            Ok(())
        }
    }
}
