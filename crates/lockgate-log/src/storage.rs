//! Where a log's files live. The embedded default is a directory; the trait lets a
//! later backend put them in object storage.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StorageError {
    pub path: String,
    pub message: String,
}

/// Files of a log, by `/`-separated relative path.
pub trait Storage: Send + Sync {
    /// The file's bytes, or `None` if it does not exist.
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Replaces the file atomically: readers see the old or the new content, never a
    /// mix. Not durable until [`Storage::sync`].
    fn write(&self, path: &str, data: &[u8]) -> Result<(), StorageError>;
    /// Makes every write so far durable. A checkpoint is only published after this.
    fn sync(&self) -> Result<(), StorageError>;
}

/// A log in a directory: the layout any static file server can serve.
pub struct DirStorage {
    root: PathBuf,
    /// Files and directories written since the last sync.
    pending: Mutex<BTreeSet<PathBuf>>,
    /// Test aid: abort the process after this many writes (`LOCKGATE_LOG_CRASH_AFTER`).
    crash_after: Option<usize>,
    writes: Mutex<usize>,
}

impl DirStorage {
    /// Opens (and creates) the directory.
    pub fn new(root: impl AsRef<Path>) -> Result<DirStorage, StorageError> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root).map_err(|e| StorageError {
            path: root.display().to_string(),
            message: e.to_string(),
        })?;
        let crash_after = std::env::var("LOCKGATE_LOG_CRASH_AFTER")
            .ok()
            .and_then(|v| v.parse().ok());
        Ok(DirStorage {
            root,
            pending: Mutex::new(BTreeSet::new()),
            crash_after,
            writes: Mutex::new(0),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, path: &str) -> Result<PathBuf, StorageError> {
        if path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
            || path.starts_with('/')
        {
            return Err(StorageError {
                path: path.into(),
                message: "not a relative path inside the log".into(),
            });
        }
        Ok(self.root.join(path))
    }

    fn err(path: &Path, e: std::io::Error) -> StorageError {
        StorageError {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}

impl Storage for DirStorage {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let full = self.full(path)?;
        match std::fs::read(&full) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::err(&full, e)),
        }
    }

    fn write(&self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        let full = self.full(path)?;
        let dir = full.parent().expect("paths have a parent").to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| Self::err(&dir, e))?;
        let tmp = dir.join(format!(
            ".{}.tmp",
            full.file_name().and_then(|n| n.to_str()).unwrap_or("file")
        ));
        {
            let mut f = std::fs::File::create(&tmp).map_err(|e| Self::err(&tmp, e))?;
            f.write_all(data).map_err(|e| Self::err(&tmp, e))?;
            // Content reaches the disk before the rename can: a crash leaves the old
            // file or the complete new one.
            f.sync_data().map_err(|e| Self::err(&tmp, e))?;
        }
        if let Some(limit) = self.crash_after {
            let mut n = self.writes.lock().expect("lock");
            *n += 1;
            if *n > limit {
                std::process::abort();
            }
        }
        std::fs::rename(&tmp, &full).map_err(|e| Self::err(&full, e))?;
        self.pending.lock().expect("lock").insert(dir);
        Ok(())
    }

    fn sync(&self) -> Result<(), StorageError> {
        let dirs: Vec<PathBuf> = std::mem::take(&mut *self.pending.lock().expect("lock"))
            .into_iter()
            .collect();
        for dir in dirs {
            // Directory entries (the renames) become durable.
            let d = std::fs::File::open(&dir).map_err(|e| Self::err(&dir, e))?;
            d.sync_all().map_err(|e| Self::err(&dir, e))?;
        }
        Ok(())
    }
}

/// An in-memory store, for tests and benchmarks of the algorithms alone.
#[derive(Default)]
pub struct MemStorage {
    files: Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

impl Storage for MemStorage {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.files.lock().expect("lock").get(path).cloned())
    }

    fn write(&self, path: &str, data: &[u8]) -> Result<(), StorageError> {
        self.files
            .lock()
            .expect("lock")
            .insert(path.to_string(), data.to_vec());
        Ok(())
    }

    fn sync(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
