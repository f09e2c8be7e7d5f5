//! Replication settings: N copies of each key, R replies for a read, W acknowledgements for a
//! write, and the per-request consistency levels that override R and W.
//!
//! **Guarantees.** A [`Quorum`] that exists is valid: `N >= 1` and `1 <= R, W <= N`, checked once
//! by [`Quorum::new`]. [`Quorum::reads`] and [`Quorum::writes`] always return a count between 1
//! and N.
//!
//! **How.** Dynamo 4.5: with `R + W > N` every read quorum overlaps every write quorum, so a read
//! sees the latest acknowledged write ([`Quorum::overlapping`]); smaller R or W trade that for
//! latency and availability. A request may ask for [`Consistency::One`], [`Consistency::Quorum`]
//! (a majority, `N/2 + 1`) or [`Consistency::All`]; without a level the configured R or W
//! applies.
//!
//! **Left out.** Per-key or per-table settings; the quorum is the cluster's.

use std::fmt;

/// A per-request consistency level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// One replica.
    One,
    /// A majority of the N replicas: `N/2 + 1`.
    Quorum,
    /// All N replicas.
    All,
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Consistency::One => "ONE",
            Consistency::Quorum => "QUORUM",
            Consistency::All => "ALL",
        })
    }
}

/// N, R and W, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quorum {
    /// Replicas per key.
    pub n: usize,
    /// Replies a read waits for by default.
    pub r: usize,
    /// Acknowledgements a write waits for by default.
    pub w: usize,
}

/// N, R or W out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuorumConfigError {
    #[error("N must be at least 1, got N={n}")]
    NoReplicas { n: usize },
    #[error("R must be between 1 and N, got R={r}, N={n}")]
    ReadOutOfRange { r: usize, n: usize },
    #[error("W must be between 1 and N, got W={w}, N={n}")]
    WriteOutOfRange { w: usize, n: usize },
}

impl Quorum {
    /// Validates and builds the settings.
    pub fn new(n: usize, r: usize, w: usize) -> Result<Quorum, QuorumConfigError> {
        if n == 0 {
            return Err(QuorumConfigError::NoReplicas { n });
        }
        if !(1..=n).contains(&r) {
            return Err(QuorumConfigError::ReadOutOfRange { r, n });
        }
        if !(1..=n).contains(&w) {
            return Err(QuorumConfigError::WriteOutOfRange { w, n });
        }
        Ok(Quorum { n, r, w })
    }

    /// Replies a read at `level` waits for; the configured R without a level.
    pub fn reads(&self, level: Option<Consistency>) -> usize {
        self.required(level, self.r)
    }

    /// Acknowledgements a write at `level` waits for; the configured W without a level.
    pub fn writes(&self, level: Option<Consistency>) -> usize {
        self.required(level, self.w)
    }

    /// True when `R + W > N`: every read quorum shares a replica with every write quorum.
    pub fn overlapping(&self) -> bool {
        self.r + self.w > self.n
    }

    fn required(&self, level: Option<Consistency>, default: usize) -> usize {
        match level {
            None => default,
            Some(Consistency::One) => 1,
            Some(Consistency::Quorum) => self.n / 2 + 1,
            Some(Consistency::All) => self.n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages() {
        let cases = [
            ((0, 1, 1), "N must be at least 1, got N=0"),
            ((3, 4, 2), "R must be between 1 and N, got R=4, N=3"),
            ((3, 0, 2), "R must be between 1 and N, got R=0, N=3"),
            ((3, 2, 4), "W must be between 1 and N, got W=4, N=3"),
            ((3, 2, 0), "W must be between 1 and N, got W=0, N=3"),
        ];
        for ((n, r, w), want) in cases {
            assert_eq!(Quorum::new(n, r, w).unwrap_err().to_string(), want);
        }
        assert_eq!(Quorum::new(3, 2, 2), Ok(Quorum { n: 3, r: 2, w: 2 }));
        assert_eq!(Quorum::new(1, 1, 1), Ok(Quorum { n: 1, r: 1, w: 1 }));
    }

    #[test]
    fn levels_table() {
        use Consistency::*;
        // (n, r, w, level, reads, writes)
        let cases = [
            (3, 2, 2, None, 2, 2),
            (3, 1, 3, None, 1, 3),
            (3, 2, 2, Some(One), 1, 1),
            (3, 2, 2, Some(Quorum), 2, 2),
            (3, 2, 2, Some(All), 3, 3),
            (4, 1, 1, Some(Quorum), 3, 3),
            (5, 1, 1, Some(Quorum), 3, 3),
            (1, 1, 1, Some(Quorum), 1, 1),
            (1, 1, 1, Some(All), 1, 1),
        ];
        for (n, r, w, level, reads, writes) in cases {
            let q = super::Quorum::new(n, r, w).unwrap();
            assert_eq!(
                (q.reads(level), q.writes(level)),
                (reads, writes),
                "{q:?} {level:?}"
            );
        }
    }

    #[test]
    fn overlap() {
        assert!(Quorum::new(3, 2, 2).unwrap().overlapping());
        assert!(!Quorum::new(3, 1, 2).unwrap().overlapping());
        assert!(Quorum::new(3, 1, 3).unwrap().overlapping());
    }
}
