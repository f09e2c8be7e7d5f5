//! What each benchmark worker does next: a pure function of a seeded RNG.

use rand::distr::{Alphanumeric, Distribution};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The name of key number `index`: fixed width, so that keys sort by number.
pub fn key_name(index: u64) -> String {
    format!("bench-{index:010}")
}

/// One request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Read { key: String },
    Write { key: String, value: Vec<u8> },
}

/// A stream of reads and writes over a key space, uniform over keys.
#[derive(Debug, Clone)]
pub struct Workload {
    rng: StdRng,
    keys: u64,
    read_ratio: f64,
    value_size: usize,
}

impl Workload {
    /// The workload of worker `worker` under `seed`: each worker gets its own stream, and the
    /// same seed gives the same streams.
    pub fn new(seed: u64, worker: u64, keys: u64, read_ratio: f64, value_size: usize) -> Self {
        Workload {
            rng: StdRng::seed_from_u64(mix(seed, worker)),
            keys: keys.max(1),
            read_ratio,
            value_size,
        }
    }

    /// The next request.
    pub fn next_op(&mut self) -> Op {
        let key = key_name(self.rng.random_range(0..self.keys));
        if self.rng.random::<f64>() < self.read_ratio {
            Op::Read { key }
        } else {
            Op::Write {
                key,
                value: self.value(),
            }
        }
    }

    /// A printable random value of the configured size.
    pub fn value(&mut self) -> Vec<u8> {
        Alphanumeric
            .sample_iter(&mut self.rng)
            .take(self.value_size)
            .collect()
    }
}

/// Spreads worker numbers over the seed space (SplitMix64's finalizer), so that neighbouring
/// workers do not get related streams.
fn mix(seed: u64, worker: u64) -> u64 {
    let mut z = seed ^ worker.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(seed: u64, worker: u64, n: usize) -> Vec<Op> {
        let mut w = Workload::new(seed, worker, 100, 0.5, 8);
        (0..n).map(|_| w.next_op()).collect()
    }

    #[test]
    fn same_seed_same_ops() {
        assert_eq!(ops(7, 3, 50), ops(7, 3, 50));
    }

    #[test]
    fn workers_and_seeds_differ() {
        assert_ne!(ops(7, 3, 50), ops(7, 4, 50));
        assert_ne!(ops(7, 3, 50), ops(8, 3, 50));
    }

    #[test]
    fn keys_stay_in_the_key_space() {
        let mut w = Workload::new(1, 0, 10, 0.5, 4);
        for _ in 0..1000 {
            let key = match w.next_op() {
                Op::Read { key } | Op::Write { key, .. } => key,
            };
            let index: u64 = key.strip_prefix("bench-").unwrap().parse().unwrap();
            assert!(index < 10, "{key}");
        }
    }

    #[test]
    fn read_ratio_extremes() {
        let mut reads_only = Workload::new(1, 0, 10, 1.0, 4);
        let mut writes_only = Workload::new(1, 0, 10, 0.0, 4);
        for _ in 0..200 {
            assert!(matches!(reads_only.next_op(), Op::Read { .. }));
            assert!(matches!(writes_only.next_op(), Op::Write { .. }));
        }
    }

    #[test]
    fn read_ratio_is_roughly_honoured() {
        let mut w = Workload::new(42, 0, 10, 0.9, 4);
        let reads = (0..10_000)
            .filter(|_| matches!(w.next_op(), Op::Read { .. }))
            .count();
        assert!((8_700..9_300).contains(&reads), "{reads}");
    }

    #[test]
    fn values_have_the_configured_size_and_are_printable() {
        let mut w = Workload::new(1, 0, 10, 0.0, 100);
        let value = w.value();
        assert_eq!(value.len(), 100);
        assert!(value.iter().all(u8::is_ascii_alphanumeric));
    }

    #[test]
    fn key_names_sort_by_number() {
        assert_eq!(key_name(42), "bench-0000000042");
        assert!(key_name(9) < key_name(10));
    }
}
