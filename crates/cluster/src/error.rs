//! Errors of the cluster logic.
//!
//! Each concern has its own error type with structured fields: [`DecodeError`] for bytes that are
//! not a valid vector clock or sibling set, [`QuorumConfigError`] for N/R/W settings that make no
//! sense, [`QuorumError`] for a round that could not gather enough replies. [`Error`] wraps them
//! for callers that handle all three in one place, and [`Error::is_retryable`] says whether trying
//! again may help.

use crate::coordinator::QuorumError;
use crate::quorum::QuorumConfigError;

/// Result alias for the cluster logic.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    QuorumConfig(#[from] QuorumConfigError),
    #[error(transparent)]
    Quorum(#[from] QuorumError),
}

impl Error {
    /// True when the same request may succeed later: a quorum that was not reached this time
    /// (replicas slow or down). Bad bytes and bad settings stay bad.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Quorum(_))
    }
}

/// Bytes that do not decode as a [`crate::VectorClock`] or a [`crate::Siblings`].
///
/// Offsets count from the start of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is empty where a format-version byte was required.
    #[error("empty input")]
    Empty,
    /// The first byte names a format this code does not know.
    #[error("unsupported format version {found}")]
    UnsupportedVersion { found: u8 },
    /// The input ends in the middle of `what`.
    #[error("truncated at byte {offset}: expected {what}")]
    Truncated { offset: usize, what: &'static str },
    /// The bytes are complete but break a rule of the format.
    #[error("malformed at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: &'static str },
    /// A complete value is followed by more bytes.
    #[error("{count} trailing bytes at byte {offset}")]
    TrailingBytes { offset: usize, count: usize },
}
