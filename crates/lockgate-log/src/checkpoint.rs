//! Checkpoints (C2SP tlog-checkpoint) signed as C2SP signed notes (Ed25519, Go note key
//! format: `PRIVATE+KEY+<name>+<hash>+<key>` / `<name>+<hash>+<key>`).
//!
//! The note format and keys come from `signed_note` (a port of golang.org/x/mod's
//! `sumdb/note`); the checkpoint body from `tlog_tiles`. This module binds them to
//! Lockgate's hash type and adds the checks a log client needs: the origin must match,
//! and at least one signature must come from the log's key.

use crate::merkle::Hash;
use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};

/// Largest checkpoint note accepted.
pub const MAX_CHECKPOINT_BYTES: usize = 64 * 1024;

/// A checkpoint failed to parse or verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint is larger than {MAX_CHECKPOINT_BYTES} bytes")]
    TooLarge,
    #[error("malformed signed note: {0}")]
    Note(String),
    #[error("no signature by the log's key verifies: {0}")]
    Signature(String),
    #[error("malformed checkpoint body")]
    Body,
    #[error("checkpoint origin {found:?} is not the log's origin {expected:?}")]
    Origin { found: String, expected: String },
    #[error("invalid note key: {0}")]
    Key(String),
}

/// A verified checkpoint: origin, size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Extension lines, each ending with a newline (usually empty).
    pub extension: String,
}

impl Checkpoint {
    /// The C2SP body: `origin\nsize\nbase64(root)\n` plus extension lines.
    pub fn body(&self) -> Vec<u8> {
        tlog_tiles::Checkpoint::new(
            &self.origin,
            self.size,
            tlog_tiles::Hash(self.root),
            &self.extension,
        )
        .expect("a checkpoint built from valid parts formats")
        .to_bytes()
    }

    /// Parses a C2SP checkpoint body (unsigned).
    pub fn parse_body(body: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let c = tlog_tiles::Checkpoint::from_bytes(body).map_err(|_| CheckpointError::Body)?;
        Ok(Checkpoint {
            origin: c.origin().to_string(),
            size: c.size(),
            root: c.hash().0,
            extension: c.extension().to_string(),
        })
    }

    /// Signs the body as a note with `key`.
    pub fn sign(&self, key: &LogSigningKey) -> Vec<u8> {
        let mut note = Note::new(&self.body(), &[]).expect("checkpoint bodies are valid note text");
        note.add_sigs(&[&key.signer])
            .expect("signing cannot fail for a valid key");
        note.to_bytes()
    }

    /// Parses a signed checkpoint note and verifies it with the log's key.
    pub fn verify(note: &[u8], key: &LogVerifyingKey) -> Result<Checkpoint, CheckpointError> {
        if note.len() > MAX_CHECKPOINT_BYTES {
            return Err(CheckpointError::TooLarge);
        }
        let parsed = Note::from_bytes(note).map_err(|e| CheckpointError::Note(e.to_string()))?;
        let verifiers = VerifierList::new(vec![Box::new(key.verifier.clone())]);
        parsed
            .verify(&verifiers)
            .map_err(|e| CheckpointError::Signature(e.to_string()))?;
        let checkpoint = Checkpoint::parse_body(parsed.text())?;
        if checkpoint.origin != key.name {
            return Err(CheckpointError::Origin {
                found: checkpoint.origin,
                expected: key.name.clone(),
            });
        }
        Ok(checkpoint)
    }
}

/// The log's private note key.
pub struct LogSigningKey {
    signer: StandardSigner,
    /// The key in Go note format (`PRIVATE+KEY+…`). Secret: never print it.
    skey: String,
}

/// The log's public note key (`<origin>+<hash>+<base64 key>`).
#[derive(Clone)]
pub struct LogVerifyingKey {
    verifier: StandardVerifier,
    name: String,
    vkey: String,
}

impl LogSigningKey {
    /// A fresh Ed25519 key for a log named `origin`.
    pub fn generate(origin: &str) -> Result<(LogSigningKey, LogVerifyingKey), CheckpointError> {
        if !signed_note::is_key_name_valid(origin) {
            return Err(CheckpointError::Key(format!(
                "{origin:?} is not a valid note key name (no spaces or '+')"
            )));
        }
        let (skey, vkey) = signed_note::generate_key(&mut rand_core::OsRng, origin);
        Ok((LogSigningKey::parse(&skey)?, LogVerifyingKey::parse(&vkey)?))
    }

    /// Reads a `PRIVATE+KEY+…` key.
    pub fn parse(skey: &str) -> Result<LogSigningKey, CheckpointError> {
        let skey = skey.trim().to_string();
        let signer = StandardSigner::new(&skey).map_err(|e| CheckpointError::Key(e.to_string()))?;
        Ok(LogSigningKey { signer, skey })
    }

    /// The key in Go note format, for storing it (secret).
    pub fn to_note_key(&self) -> &str {
        &self.skey
    }
}

impl LogVerifyingKey {
    /// Reads a `<name>+<hash>+<key>` verifier key.
    pub fn parse(vkey: &str) -> Result<LogVerifyingKey, CheckpointError> {
        let vkey = vkey.trim().to_string();
        let verifier =
            StandardVerifier::new(&vkey).map_err(|e| CheckpointError::Key(e.to_string()))?;
        let name = vkey.split('+').next().unwrap_or_default().to_string();
        Ok(LogVerifyingKey {
            verifier,
            name,
            vkey,
        })
    }

    /// The origin (key name).
    pub fn origin(&self) -> &str {
        &self.name
    }

    /// The key in Go note format.
    pub fn to_note_key(&self) -> &str {
        &self.vkey
    }

    /// A stable identifier: base64 of SHA-256 over the note key text (what Lockgate
    /// puts in a Sigstore `logId.keyId`).
    pub fn log_id(&self) -> String {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(self.vkey.as_bytes()))
    }
}
