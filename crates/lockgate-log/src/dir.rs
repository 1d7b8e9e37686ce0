//! A log directory, the embedded default:
//!
//! ```text
//! DIR/public/      the log itself (checkpoint, tile/…): serve it with any static server
//! DIR/log.key      the checkpoint signing key (Go note format, mode 0600, secret)
//! DIR/log.pub      the verifier key to hand to clients and monitors
//! DIR/index.jsonl  the search index (derived from the entries; rebuildable)
//! DIR/lock         held by the one writer (an exclusive file lock)
//! ```

use crate::checkpoint::{LogSigningKey, LogVerifyingKey};
use crate::log::{Log, LogError};
use crate::storage::DirStorage;
use std::fs::File;
use std::path::{Path, PathBuf};

/// A log directory on disk.
pub struct LogDir {
    root: PathBuf,
}

/// Held while writing; the lock is released when dropped.
pub struct WriterLock {
    _file: File,
}

fn io_err(path: &Path, e: std::io::Error) -> LogError {
    LogError::Io(format!("{}: {e}", path.display()))
}

impl LogDir {
    /// Creates a new log named `origin` in `root` (absent or empty): a fresh key pair
    /// and the signed checkpoint of the empty tree. Returns the verifier key.
    pub fn init(root: impl AsRef<Path>, origin: &str) -> Result<LogVerifyingKey, LogError> {
        let root = root.as_ref();
        if root.exists() {
            let mut entries = std::fs::read_dir(root).map_err(|e| io_err(root, e))?;
            if entries.next().is_some() {
                return Err(LogError::Io(format!(
                    "{} exists and is not empty: a log directory is created fresh",
                    root.display()
                )));
            }
        }
        std::fs::create_dir_all(root).map_err(|e| io_err(root, e))?;
        let (skey, vkey) = LogSigningKey::generate(origin)?;
        let dir = LogDir {
            root: root.to_path_buf(),
        };
        write_secret(&dir.key_path(), skey.to_note_key().as_bytes())?;
        let pub_path = dir.root.join("log.pub");
        std::fs::write(&pub_path, format!("{}\n", vkey.to_note_key()))
            .map_err(|e| io_err(&pub_path, e))?;
        let _lock = dir.lock()?;
        Log::create(dir.storage()?, skey, vkey.clone())?;
        Ok(vkey)
    }

    /// Opens an existing log directory.
    pub fn open(root: impl AsRef<Path>) -> Result<LogDir, LogError> {
        let root = root.as_ref().to_path_buf();
        let dir = LogDir { root };
        if !dir.root.join("log.pub").is_file() || !dir.public().is_dir() {
            return Err(LogError::Io(format!(
                "{} is not a log directory (no log.pub or public/): create one with `lockgate log init`",
                dir.root.display()
            )));
        }
        Ok(dir)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The published log files.
    pub fn public(&self) -> PathBuf {
        self.root.join("public")
    }

    /// The search index file.
    pub fn index_path(&self) -> PathBuf {
        self.root.join("index.jsonl")
    }

    fn key_path(&self) -> PathBuf {
        self.root.join("log.key")
    }

    /// The log's verifier key (`DIR/log.pub`).
    pub fn verifying_key(&self) -> Result<LogVerifyingKey, LogError> {
        let path = self.root.join("log.pub");
        let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
        Ok(LogVerifyingKey::parse(&text)?)
    }

    /// Storage over `DIR/public`.
    pub fn storage(&self) -> Result<DirStorage, LogError> {
        Ok(DirStorage::new(self.public())?)
    }

    /// Takes the writer lock without waiting: a second writer (another `append`, or a
    /// running server) is refused rather than queued.
    pub fn lock(&self) -> Result<WriterLock, LogError> {
        let path = self.root.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(WriterLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LogError::Busy(format!(
                "{} is locked by another writer (a running `lockgate log serve`? append through its URL)",
                self.root.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(io_err(&path, e)),
        }
    }

    /// Locks the log and opens it for writing (verifying its state).
    pub fn writer(&self) -> Result<(Log<DirStorage>, WriterLock), LogError> {
        let lock = self.lock()?;
        let path = self.key_path();
        let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
        let skey = LogSigningKey::parse(&text)?;
        let log = Log::open(self.storage()?, skey, self.verifying_key()?)?;
        Ok((log, lock))
    }
}

/// Writes a new file readable by its owner only.
fn write_secret(path: &Path, data: &[u8]) -> Result<(), LogError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| io_err(path, e))?;
    f.write_all(data).map_err(|e| io_err(path, e))?;
    f.write_all(b"\n").map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogReader;

    #[test]
    fn init_open_write_and_one_writer_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("log");
        let vkey = LogDir::init(&root, "example.com/test").unwrap();
        assert!(LogDir::init(&root, "example.com/test").is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(root.join("log.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let dir = LogDir::open(&root).unwrap();
        assert_eq!(
            dir.verifying_key().unwrap().to_note_key(),
            vkey.to_note_key()
        );
        {
            let (mut log, _lock) = dir.writer().unwrap();
            assert!(matches!(dir.writer(), Err(LogError::Busy(_))));
            log.append(&[b"one".to_vec(), b"two".to_vec()]).unwrap();
        }
        let (log, _lock) = dir.writer().unwrap();
        assert_eq!(log.size(), 2);
        let storage = dir.storage().unwrap();
        let cp = LogReader::new(&storage).audit(&vkey).unwrap();
        assert_eq!(cp.size, 2);
        assert!(LogDir::open(tmp.path()).is_err());
    }
}
