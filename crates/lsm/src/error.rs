//! Errors of the storage engine.
//!
//! Every failure names what went wrong with structured fields: a corrupt byte is reported with the
//! file and offset where it was found, a bad argument with the limit it broke. Callers decide with
//! [`Error::is_corruption`] and [`Error::is_invalid_argument`] rather than by matching strings.

use std::path::PathBuf;

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O call failed on `path`.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk do not match their checksum or structure.
    #[error("corruption in {file} at offset {offset}: {reason}")]
    Corruption {
        file: PathBuf,
        offset: u64,
        reason: CorruptionKind,
    },
    /// The key is empty; the engine reserves nothing for it and refuses it.
    #[error("key must not be empty")]
    EmptyKey,
    /// The key is longer than [`crate::MAX_KEY_BYTES`] or the configured limit.
    #[error("key is {len} bytes, the limit is {max}")]
    KeyTooLarge { len: usize, max: usize },
    /// The value is longer than [`crate::MAX_VALUE_BYTES`] or the configured limit.
    #[error("value is {len} bytes, the limit is {max}")]
    ValueTooLarge { len: usize, max: usize },
    /// A write batch is larger than the configured limit.
    #[error("write batch is {bytes} bytes, the limit is {max}")]
    BatchTooLarge { bytes: usize, max: usize },
    /// The options given to [`crate::Db::open`] contradict each other.
    #[error("invalid options: {0}")]
    InvalidOptions(&'static str),
    /// Another process (or another `Db` in this one) holds the directory's lock.
    #[error("database directory {0} is locked by another instance")]
    Locked(PathBuf),
    /// The database was closed, or a background error made it read-only.
    #[error("database is closed")]
    Closed,
    /// A background flush or compaction failed; writes are refused until reopen.
    #[error("background work failed, writes are stopped: {0}")]
    Background(String),
}

/// The specific way bytes on disk were found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptionKind {
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("bad magic number")]
    BadMagic,
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u32),
    #[error("truncated: {0}")]
    Truncated(&'static str),
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corruption(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: CorruptionKind,
    ) -> Self {
        Error::Corruption {
            file: file.into(),
            offset,
            reason,
        }
    }

    /// True when bytes on disk were found damaged.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }

    /// True when the caller's input was refused (retrying the same call fails again).
    pub fn is_invalid_argument(&self) -> bool {
        matches!(
            self,
            Error::EmptyKey
                | Error::KeyTooLarge { .. }
                | Error::ValueTooLarge { .. }
                | Error::BatchTooLarge { .. }
                | Error::InvalidOptions(_)
        )
    }
}

/// Attaches a path to I/O errors.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
