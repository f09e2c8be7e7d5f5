//! Bloom filters over user keys.
//!
//! Layout: the bit array followed by one byte holding the number of probes `k`. Probes use double
//! hashing of one 64-bit xxh3 hash (Kirsch and Mitzenmacher), so a lookup costs one hash.
//! `bits_per_key` is set from a target false-positive rate as `-ln(p) / ln(2)^2`, and
//! `k = round(bits_per_key * ln 2)`; the measured rate is tested to stay within 2x of the target.

use xxhash_rust::xxh3::xxh3_64;

pub(crate) fn hash_key(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// Builds a filter from key hashes.
pub(crate) fn build(hashes: &[u64], bits_per_key: f64) -> Vec<u8> {
    let n = hashes.len().max(1);
    let nbits = ((n as f64 * bits_per_key).ceil() as u64).max(64);
    let nbytes = nbits.div_ceil(8) as usize;
    let nbits = nbytes as u64 * 8;
    let k = (bits_per_key * std::f64::consts::LN_2)
        .round()
        .clamp(1.0, 30.0) as u8;
    let mut out = vec![0u8; nbytes + 1];
    for &h in hashes {
        let mut h1 = h;
        let delta = h.rotate_right(33) | 1;
        for _ in 0..k {
            let bit = h1 % nbits;
            out[(bit / 8) as usize] |= 1 << (bit % 8);
            h1 = h1.wrapping_add(delta);
        }
    }
    out[nbytes] = k;
    out
}

/// True when the key may be in the set; false means it is certainly absent.
pub(crate) fn may_contain(filter: &[u8], hash: u64) -> bool {
    let Some((&k, bits)) = filter.split_last() else {
        return true;
    };
    if bits.is_empty() || k == 0 || k > 30 {
        // Unknown encoding: do not filter.
        return true;
    }
    let nbits = bits.len() as u64 * 8;
    let mut h1 = hash;
    let delta = hash.rotate_right(33) | 1;
    for _ in 0..k {
        let bit = h1 % nbits;
        if bits[(bit / 8) as usize] & (1 << (bit % 8)) == 0 {
            return false;
        }
        h1 = h1.wrapping_add(delta);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured_fpr(n: usize, bits_per_key: f64) -> f64 {
        let hashes: Vec<u64> = (0..n)
            .map(|i| hash_key(format!("key{i:08}").as_bytes()))
            .collect();
        let f = build(&hashes, bits_per_key);
        for &h in &hashes {
            assert!(may_contain(&f, h), "no false negatives");
        }
        let probes = 200_000;
        let fp = (0..probes)
            .filter(|i| may_contain(&f, hash_key(format!("missing{i:08}").as_bytes())))
            .count();
        fp as f64 / probes as f64
    }

    #[test]
    fn measured_false_positive_rate_stays_within_twice_the_target() {
        for target in [0.1, 0.01, 0.001] {
            let bits = -f64::ln(target) / (std::f64::consts::LN_2.powi(2));
            let fpr = measured_fpr(50_000, bits);
            assert!(fpr <= 2.0 * target, "target {target}: measured {fpr}");
            assert!(
                fpr > target / 4.0,
                "target {target}: suspiciously low {fpr}"
            );
        }
    }

    #[test]
    fn empty_or_garbage_filter_never_hides_keys() {
        assert!(may_contain(&[], 1));
        assert!(may_contain(&[0, 0, 0, 200], 1));
    }
}
