//! Transparency-log entries in bundles: how `lockgate attest --log` records that an
//! envelope was logged, and how verification checks it offline.
//!
//! The entry is Sigstore's `TransparencyLogEntry` (JSON mapping), as Rekor entries are
//! carried: `canonicalizedBody` is the exact logged bytes — the envelope as compact
//! JSON — and `inclusionProof` is a proof to a checkpoint signed by the log. What is
//! verified: the checkpoint's signature by a trusted log key, the proof from the leaf
//! hash of `canonicalizedBody` to the checkpoint's root, and that the logged envelope
//! is the bundle's envelope.

use crate::dsse::Envelope;
use crate::trust::TrustedLog;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lockgate_log::proof::InclusionProofDoc;
use serde::{Deserialize, Serialize};

/// The entry kind Lockgate writes: the logged body is a DSSE envelope.
pub const ENTRY_KIND: &str = "lockgate-dsse";
/// Version of [`ENTRY_KIND`].
pub const ENTRY_VERSION: &str = "0.0.1";

/// `logId`: which log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogId {
    pub key_id: String,
}

/// `kindVersion`: what the logged body is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindVersion {
    pub kind: String,
    pub version: String,
}

/// A Sigstore `TransparencyLogEntry` as Lockgate writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlogEntry {
    pub log_index: String,
    pub log_id: LogId,
    pub kind_version: KindVersion,
    /// Logs of this kind do not sign an integration time (as in Rekor v2): "0".
    #[serde(default)]
    pub integrated_time: String,
    pub inclusion_proof: InclusionProofDoc,
    /// Base64 of the logged bytes.
    pub canonicalized_body: String,
}

/// The bytes Lockgate logs for an envelope: its compact JSON.
pub fn logged_body(envelope: &Envelope) -> Vec<u8> {
    serde_json::to_vec(envelope).expect("an envelope serializes")
}

impl TlogEntry {
    /// The entry for `body` logged at the proof's index in the log with `log_id`.
    pub fn new(body: &[u8], proof: InclusionProofDoc, log_id: String) -> TlogEntry {
        TlogEntry {
            log_index: proof.log_index.to_string(),
            log_id: LogId { key_id: log_id },
            kind_version: KindVersion {
                kind: ENTRY_KIND.into(),
                version: ENTRY_VERSION.into(),
            },
            integrated_time: "0".into(),
            inclusion_proof: proof,
            canonicalized_body: STANDARD.encode(body),
        }
    }
}

/// Where a verified entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// Trust-root name of the log.
    pub log: String,
    pub index: u64,
    pub tree_size: u64,
}

/// What the bundle's log entries establish.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlogCheck {
    /// Entries that verified, in trusted logs.
    pub logged: Vec<Logged>,
    /// Entries that claim a trusted log but do not verify: the bundle was tampered with.
    pub invalid: Vec<String>,
    /// Entries of logs (or kinds) this trust root does not know; not evidence either way.
    pub ignored: usize,
}

/// Checks every entry in `entries` (a bundle's `tlogEntries`) for `envelope`.
pub fn check_entries(
    entries: &[serde_json::Value],
    envelope: &Envelope,
    logs: &[TrustedLog],
) -> TlogCheck {
    let mut check = TlogCheck::default();
    for value in entries {
        let entry: TlogEntry = match serde_json::from_value(value.clone()) {
            Ok(e) => e,
            Err(_) => {
                check.ignored += 1;
                continue;
            }
        };
        let log = logs
            .iter()
            .find(|l| l.key.log_id() == entry.log_id.key_id)
            .or_else(|| {
                // A log id we do not know, but a checkpoint from a log we do: the id
                // is unauthenticated, the checkpoint's origin and signature decide.
                let origin = entry.inclusion_proof.checkpoint.envelope.lines().next()?;
                logs.iter().find(|l| l.key.origin() == origin)
            });
        let Some(log) = log else {
            check.ignored += 1;
            continue;
        };
        match verify_entry(&entry, envelope, log) {
            Ok(logged) => check.logged.push(logged),
            Err(why) => check.invalid.push(format!("log {:?}: {why}", log.name)),
        }
    }
    check
}

fn verify_entry(
    entry: &TlogEntry,
    envelope: &Envelope,
    log: &TrustedLog,
) -> Result<Logged, String> {
    if entry.kind_version.kind != ENTRY_KIND {
        return Err(format!(
            "unsupported entry kind {:?}",
            entry.kind_version.kind
        ));
    }
    if entry.log_index != entry.inclusion_proof.log_index.to_string() {
        return Err("logIndex differs from the inclusion proof's".into());
    }
    let body = STANDARD
        .decode(&entry.canonicalized_body)
        .map_err(|_| "canonicalizedBody is not base64".to_string())?;
    let logged: Envelope = serde_json::from_slice(&body)
        .map_err(|e| format!("the logged body is not a DSSE envelope: {e}"))?;
    if &logged != envelope {
        return Err("the logged envelope is not this bundle's envelope".into());
    }
    let checkpoint = entry
        .inclusion_proof
        .verify(&body, &log.key)
        .map_err(|e| format!("inclusion proof: {e}"))?;
    Ok(Logged {
        log: log.name.clone(),
        index: entry.inclusion_proof.log_index,
        tree_size: checkpoint.size,
    })
}
