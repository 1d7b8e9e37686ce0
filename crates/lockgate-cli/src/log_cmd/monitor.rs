//! `lockgate log monitor`: keep the last verified checkpoint and prove each new one
//! consistent with it. The state file only ever moves forward to a checkpoint proven
//! to extend the one before; an alert leaves it untouched, as evidence.

use super::{EXIT_FAILED, Location};
use anyhow::{Context, Result};
use lockgate_log::checkpoint::{Checkpoint, LogVerifyingKey};
use lockgate_log::log::{LogError, LogReader};
use lockgate_log::proof::verify_extends;
use lockgate_log::storage::Storage;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args)]
pub struct MonitorArgs {
    /// The log: a URL or a directory.
    #[arg(value_name = "LOG")]
    location: String,
    /// The log's verifier key (note format, or a file holding it). Default for a
    /// directory: DIR/log.pub.
    #[arg(long)]
    key: Option<String>,
    /// Where the last verified checkpoint is kept (created on first run).
    #[arg(long)]
    state: PathBuf,
    /// Seconds between checks; without it, check once and exit.
    #[arg(long)]
    interval: Option<u64>,
    /// One JSON object per check on standard output.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Deserialize)]
struct State {
    origin: String,
    size: u64,
    /// The signed checkpoint note.
    checkpoint: String,
}

/// What one check found.
enum Outcome {
    /// First run: the checkpoint is trusted on first use.
    Started(Checkpoint),
    /// The new checkpoint extends the last one.
    Advanced { old: u64, new: Checkpoint },
    /// Fork or rollback: the log showed two incompatible histories.
    Alert(String),
}

pub fn run(args: MonitorArgs) -> Result<u8> {
    let location = Location::parse(&args.location)?;
    let key = location.key(args.key.as_deref())?;
    let storage = location.storage()?;
    loop {
        let started = std::time::Instant::now();
        match check_once(storage.as_ref(), &key, &args.state) {
            Ok(outcome) => {
                let alert = matches!(outcome, Outcome::Alert(_));
                report(&outcome, &args, started.elapsed());
                if alert {
                    return Ok(EXIT_FAILED);
                }
            }
            // Could not reach or read the log: not evidence of misbehaviour. A single
            // check reports it as an error; a running monitor retries.
            Err(e) if args.interval.is_some() => eprintln!("lockgate: log monitor: {e:#}"),
            Err(e) => return Err(e),
        }
        match args.interval {
            Some(secs) => std::thread::sleep(Duration::from_secs(secs.max(1))),
            None => return Ok(0),
        }
    }
}

fn check_once(storage: &dyn Storage, key: &LogVerifyingKey, state_path: &Path) -> Result<Outcome> {
    let reader = LogReader::new(storage);
    let (new, note) = match reader.checkpoint(key) {
        Ok(c) => c,
        // A checkpoint the log's key did not sign (or for another origin) is served
        // in the log's name: that is an alert, not an outage.
        Err(LogError::Checkpoint(e)) => {
            return Ok(Outcome::Alert(format!(
                "the log serves an invalid checkpoint: {e}"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let Some(state) = load_state(state_path)? else {
        save_state(state_path, &new, &note)?;
        return Ok(Outcome::Started(new));
    };
    let old = Checkpoint::verify(state.checkpoint.as_bytes(), key).with_context(|| {
        format!(
            "{}: the saved checkpoint does not verify",
            state_path.display()
        )
    })?;
    if new.size < old.size {
        return Ok(Outcome::Alert(format!(
            "rollback: the log now has {} entries, fewer than the {} of the last verified checkpoint",
            new.size, old.size
        )));
    }
    if new.size == old.size && new.root != old.root {
        return Ok(Outcome::Alert(format!(
            "fork: two signed checkpoints of size {} with different roots",
            new.size
        )));
    }
    let proof = if old.size == 0 || old.size == new.size {
        Vec::new()
    } else {
        match reader.consistency_proof(old.size, new.size) {
            Ok(p) => p,
            Err(LogError::Storage(e)) => return Err(e.into()),
            Err(e) => {
                return Ok(Outcome::Alert(format!(
                    "fork: the log's tiles cannot prove size {} extends size {}: {e}",
                    new.size, old.size
                )));
            }
        }
    };
    if let Err(e) = verify_extends(&old, &new, &proof) {
        return Ok(Outcome::Alert(format!(
            "fork: the checkpoint of size {} does not extend the last verified one of size {}: {e}",
            new.size, old.size
        )));
    }
    if new.size > old.size {
        save_state(state_path, &new, &note)?;
    }
    Ok(Outcome::Advanced { old: old.size, new })
}

fn load_state(path: &Path) -> Result<Option<State>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!("{} is not a monitor state file", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Replaces the state atomically (write a temporary file, sync, rename).
fn save_state(path: &Path, cp: &Checkpoint, note: &[u8]) -> Result<()> {
    let state = State {
        origin: cp.origin.clone(),
        size: cp.size,
        checkpoint: String::from_utf8(note.to_vec())?,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    serde_json::to_writer_pretty(&mut tmp, &state)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn report(outcome: &Outcome, args: &MonitorArgs, took: Duration) {
    let (event, size, message) = match outcome {
        Outcome::Started(cp) => (
            "started",
            Some(cp.size),
            format!(
                "first checkpoint of {}: size {} (trusted on first use)",
                cp.origin, cp.size
            ),
        ),
        Outcome::Advanced { old, new } if *old == new.size => (
            "unchanged",
            Some(new.size),
            format!("size {} unchanged", new.size),
        ),
        Outcome::Advanced { old, new } => (
            "consistent",
            Some(new.size),
            format!("size {old} -> {}: consistent", new.size),
        ),
        Outcome::Alert(why) => ("alert", None, why.clone()),
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "event": event,
                "size": size,
                "message": message,
                "millis": took.as_millis() as u64,
            })
        );
    } else if event == "alert" {
        eprintln!("ALERT: {message}");
    } else {
        println!("{message}");
    }
}
