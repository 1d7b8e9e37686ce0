//! The log writer: sequences and integrates entries in batches, publishes signed
//! checkpoints, and never publishes a checkpoint for tiles that are not durable.
//!
//! A batch is one atomic step: entry bundles and tiles are written (each atomically,
//! content synced), the storage is synced, and only then the new checkpoint is written.
//! A crash at any point leaves the previous checkpoint in force; files written past it
//! are unpublished and are overwritten by later batches. On open the writer reloads the
//! partial tiles of the published tree and checks them against the checkpoint's root.

use crate::checkpoint::{Checkpoint, CheckpointError, LogSigningKey, LogVerifyingKey};
use crate::merkle::{self, Hash, ProofError};
use crate::storage::{Storage, StorageError};
use crate::tiles::{
    MAX_ENTRY_BYTES, TILE_HEIGHT, TILE_WIDTH, TileCache, TileSource, bundle_path, decode_bundle,
    decode_tile, encode_bundle, tile_path, tile_width,
};

/// Path of the checkpoint in the log's storage.
pub const CHECKPOINT_PATH: &str = "checkpoint";
/// Most entries integrated in one batch.
pub const MAX_BATCH: usize = 1_000_000;

/// A log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("the log has no checkpoint: initialize it first")]
    NotInitialized,
    #[error("the log is already initialized")]
    AlreadyInitialized,
    #[error("entry of {0} bytes is larger than the {MAX_ENTRY_BYTES}-byte limit")]
    EntryTooLarge(usize),
    #[error("batch of {0} entries is larger than the limit of {MAX_BATCH}")]
    BatchTooLarge(usize),
    #[error("the stored log is inconsistent: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Busy(String),
    #[error("index {index} is not in the log of size {size}")]
    NoSuchEntry { index: u64, size: u64 },
}

/// What one batch published.
#[derive(Debug, Clone)]
pub struct Appended {
    /// Index of the batch's first entry.
    pub first_index: u64,
    /// The new tree size.
    pub size: u64,
    pub root: Hash,
    /// The signed checkpoint note.
    pub checkpoint: Vec<u8>,
}

/// A writable log.
pub struct Log<S: Storage> {
    storage: S,
    key: LogSigningKey,
    verifier: LogVerifyingKey,
    size: u64,
    root: Hash,
    checkpoint: Vec<u8>,
    /// Hashes of the current partial tile at each level.
    partial: Vec<Vec<Hash>>,
    /// Entries of the current partial bundle.
    partial_bundle: Vec<Vec<u8>>,
    cache: TileCache,
}

impl<S: Storage> Log<S> {
    /// Creates an empty log: publishes the checkpoint of size 0.
    pub fn create(
        storage: S,
        key: LogSigningKey,
        verifier: LogVerifyingKey,
    ) -> Result<Log<S>, LogError> {
        if storage.read(CHECKPOINT_PATH)?.is_some() {
            return Err(LogError::AlreadyInitialized);
        }
        let cp = Checkpoint {
            origin: verifier.origin().to_string(),
            size: 0,
            root: merkle::empty_root(),
            extension: String::new(),
        };
        let note = cp.sign(&key);
        storage.write(CHECKPOINT_PATH, &note)?;
        storage.sync()?;
        Ok(Log {
            storage,
            key,
            verifier,
            size: 0,
            root: cp.root,
            checkpoint: note,
            partial: Vec::new(),
            partial_bundle: Vec::new(),
            cache: TileCache::default(),
        })
    }

    /// Opens an existing log: verifies the checkpoint, reloads the partial tiles and
    /// checks that the tiles reproduce the checkpoint's root.
    pub fn open(
        storage: S,
        key: LogSigningKey,
        verifier: LogVerifyingKey,
    ) -> Result<Log<S>, LogError> {
        let note = storage
            .read(CHECKPOINT_PATH)?
            .ok_or(LogError::NotInitialized)?;
        let cp = Checkpoint::verify(&note, &verifier)?;
        let mut partial = Vec::new();
        for level in 0u8.. {
            let hashes_at_level = cp.size >> (u32::from(TILE_HEIGHT) * u32::from(level));
            if hashes_at_level == 0 {
                break;
            }
            let index = hashes_at_level / TILE_WIDTH;
            let width = hashes_at_level % TILE_WIDTH;
            if width == 0 {
                partial.push(Vec::new());
                continue;
            }
            let path = tile_path(level, index, width);
            let bytes = storage
                .read(&path)?
                .ok_or_else(|| LogError::Corrupt(format!("{path} is missing")))?;
            partial
                .push(decode_tile(&bytes).map_err(|e| LogError::Corrupt(format!("{path}: {e}")))?);
        }
        let width = cp.size % TILE_WIDTH;
        let partial_bundle = if width == 0 {
            Vec::new()
        } else {
            let path = bundle_path(cp.size / TILE_WIDTH, width);
            let bytes = storage
                .read(&path)?
                .ok_or_else(|| LogError::Corrupt(format!("{path} is missing")))?;
            decode_bundle(&bytes).map_err(|e| LogError::Corrupt(format!("{path}: {e}")))?
        };
        let log = Log {
            storage,
            key,
            verifier,
            size: cp.size,
            root: cp.root,
            checkpoint: note,
            partial,
            partial_bundle,
            cache: TileCache::default(),
        };
        let computed = merkle::tree_root(&log.source(cp.size), cp.size)?;
        if computed != cp.root {
            return Err(LogError::Corrupt(
                "tiles do not reproduce the checkpoint's root".into(),
            ));
        }
        Ok(log)
    }

    /// Current tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Current root.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The signed checkpoint note currently published.
    pub fn checkpoint(&self) -> &[u8] {
        &self.checkpoint
    }

    /// The log's verifier key.
    pub fn verifier(&self) -> &LogVerifyingKey {
        &self.verifier
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// A subtree source for a tree of `size` (≤ the current size).
    pub fn source(&self, size: u64) -> TileSource<'_> {
        TileSource::with_cache(&self.storage, size, self.cache.clone())
    }

    /// Integrates `entries` as one batch and publishes a checkpoint.
    pub fn append(&mut self, entries: &[Vec<u8>]) -> Result<Appended, LogError> {
        if entries.len() > MAX_BATCH {
            return Err(LogError::BatchTooLarge(entries.len()));
        }
        if let Some(e) = entries.iter().find(|e| e.len() > MAX_ENTRY_BYTES) {
            return Err(LogError::EntryTooLarge(e.len()));
        }
        let first_index = self.size;
        if entries.is_empty() {
            return Ok(Appended {
                first_index,
                size: self.size,
                root: self.root,
                checkpoint: self.checkpoint.clone(),
            });
        }

        // Work on copies: if any write fails, the in-memory state stays at the last
        // published checkpoint.
        let mut partial = self.partial.clone();
        let mut bundle = self.partial_bundle.clone();

        // Entry bundles.
        let mut bundle_index = self.size / TILE_WIDTH;
        for entry in entries {
            bundle.push(entry.clone());
            if bundle.len() as u64 == TILE_WIDTH {
                self.storage.write(
                    &bundle_path(bundle_index, TILE_WIDTH),
                    &encode_bundle(&bundle),
                )?;
                bundle.clear();
                bundle_index += 1;
            }
        }
        if !bundle.is_empty() {
            self.storage.write(
                &bundle_path(bundle_index, bundle.len() as u64),
                &encode_bundle(&bundle),
            )?;
        }

        // Tiles, level by level: a completed tile's subtree hash feeds the level above.
        let mut carry: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
        let mut level: u8 = 0;
        while !carry.is_empty() {
            if partial.len() <= usize::from(level) {
                partial.push(Vec::new());
            }
            let hashes_before = self.size >> (u32::from(TILE_HEIGHT) * u32::from(level));
            let mut index = hashes_before / TILE_WIDTH;
            let tile = &mut partial[usize::from(level)];
            let mut completed = Vec::new();
            for h in carry {
                tile.push(h);
                if tile.len() as u64 == TILE_WIDTH {
                    self.write_tile(level, index, tile)?;
                    completed.push(merkle::root_of(tile));
                    tile.clear();
                    index += 1;
                }
            }
            if !tile.is_empty() {
                let tile = tile.clone();
                self.write_tile(level, index, &tile)?;
            }
            carry = completed;
            level += 1;
        }

        let size = self.size + entries.len() as u64;
        let root = merkle::tree_root(&self.source(size), size)?;
        // Everything the new checkpoint commits to is durable before it is published.
        self.storage.sync()?;
        let cp = Checkpoint {
            origin: self.verifier.origin().to_string(),
            size,
            root,
            extension: String::new(),
        };
        let note = cp.sign(&self.key);
        self.storage.write(CHECKPOINT_PATH, &note)?;
        self.storage.sync()?;

        self.size = size;
        self.root = root;
        self.checkpoint = note.clone();
        self.partial = partial;
        self.partial_bundle = bundle;
        Ok(Appended {
            first_index,
            size,
            root,
            checkpoint: note,
        })
    }

    fn write_tile(&self, level: u8, index: u64, hashes: &[Hash]) -> Result<(), LogError> {
        self.storage.write(
            &tile_path(level, index, hashes.len() as u64),
            &hashes.concat(),
        )?;
        self.cache.insert(level, index, hashes.to_vec());
        Ok(())
    }
}

/// Read-side operations on a log's storage, for any tree size it has published.
pub struct LogReader<'a> {
    storage: &'a dyn Storage,
    cache: TileCache,
}

impl<'a> LogReader<'a> {
    /// Reads from `storage`.
    pub fn new(storage: &'a dyn Storage) -> LogReader<'a> {
        LogReader {
            storage,
            cache: TileCache::default(),
        }
    }

    /// The current checkpoint, verified with `key`.
    pub fn checkpoint(&self, key: &LogVerifyingKey) -> Result<(Checkpoint, Vec<u8>), LogError> {
        let note = self
            .storage
            .read(CHECKPOINT_PATH)?
            .ok_or(LogError::NotInitialized)?;
        Ok((Checkpoint::verify(&note, key)?, note))
    }

    fn source(&self, size: u64) -> TileSource<'a> {
        TileSource::with_cache(self.storage, size, self.cache.clone())
    }

    /// Entry `index` of a tree of `size`.
    pub fn entry(&self, index: u64, size: u64) -> Result<Vec<u8>, LogError> {
        if index >= size {
            return Err(LogError::NoSuchEntry { index, size });
        }
        let bundle_index = index / TILE_WIDTH;
        let width = tile_width(0, bundle_index, size);
        let path = bundle_path(bundle_index, width);
        let bytes = self
            .storage
            .read(&path)?
            .ok_or_else(|| LogError::Corrupt(format!("{path} is missing")))?;
        let entries =
            decode_bundle(&bytes).map_err(|e| LogError::Corrupt(format!("{path}: {e}")))?;
        entries
            .into_iter()
            .nth((index % TILE_WIDTH) as usize)
            .ok_or_else(|| LogError::Corrupt(format!("{path} is short")))
    }

    /// Inclusion proof for `index` in the tree of `size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        Ok(merkle::inclusion_proof(&self.source(size), index, size)?)
    }

    /// Consistency proof from `old` to `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        Ok(merkle::consistency_proof(&self.source(new), old, new)?)
    }

    /// The root of the tree of `size`, computed from the tiles.
    pub fn root(&self, size: u64) -> Result<Hash, LogError> {
        Ok(merkle::tree_root(&self.source(size), size)?)
    }

    /// Full audit: re-hashes every entry, rebuilds every tile of the published tree and
    /// compares each with the stored one, and checks the checkpoint's root both from the
    /// entries and from the tiles. Returns the verified checkpoint. Memory: 32 bytes per
    /// entry.
    pub fn audit(&self, key: &LogVerifyingKey) -> Result<Checkpoint, LogError> {
        let (cp, _) = self.checkpoint(key)?;
        let size = cp.size;
        let mut leaves: Vec<Hash> = Vec::with_capacity(size.min(1 << 24) as usize);
        for b in 0..size.div_ceil(TILE_WIDTH) {
            let width = tile_width(0, b, size);
            let path = bundle_path(b, width);
            let bytes = self
                .storage
                .read(&path)?
                .ok_or_else(|| LogError::Corrupt(format!("{path} is missing")))?;
            let entries =
                decode_bundle(&bytes).map_err(|e| LogError::Corrupt(format!("{path}: {e}")))?;
            if entries.len() as u64 != width {
                return Err(LogError::Corrupt(format!(
                    "{path}: {} entries, expected {width}",
                    entries.len()
                )));
            }
            leaves.extend(entries.iter().map(|e| merkle::leaf_hash(e)));
        }
        if merkle::root_of(&leaves) != cp.root {
            return Err(LogError::Corrupt(
                "the entries' root is not the checkpoint's root".into(),
            ));
        }
        let mut hashes = leaves;
        let mut level = 0u8;
        while !hashes.is_empty() {
            let mut next = Vec::with_capacity(hashes.len() / TILE_WIDTH as usize);
            for (index, chunk) in hashes.chunks(TILE_WIDTH as usize).enumerate() {
                let path = tile_path(level, index as u64, chunk.len() as u64);
                let stored = self
                    .storage
                    .read(&path)?
                    .ok_or_else(|| LogError::Corrupt(format!("{path} is missing")))?;
                if stored != chunk.concat() {
                    return Err(LogError::Corrupt(format!(
                        "{path} does not match the entries"
                    )));
                }
                if chunk.len() as u64 == TILE_WIDTH {
                    next.push(merkle::root_of(chunk));
                }
            }
            hashes = next;
            level += 1;
        }
        if self.root(size)? != cp.root {
            return Err(LogError::Corrupt(
                "the tiles' root is not the checkpoint's root".into(),
            ));
        }
        Ok(cp)
    }
}
