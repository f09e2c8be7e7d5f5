//! The stable half of DistKV's fuzzing: the libFuzzer targets in `fuzz/` run on nightly
//! (`make fuzz`), and each crate with decoders (`distkv-lsm`, `distkv-cluster`, `distkv-node`)
//! replays, in its ordinary tests, every input the fuzzer kept (`fuzz/corpus/<target>/`), every
//! crash it found (`fuzz/regressions/<target>/`, which `cargo fuzz cmin` leaves alone), and the
//! crate's own seeds, through the same entry points. A crate's `fuzzing` module lists its
//! targets; this crate does the file work for all of them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A fuzz target: the name of its corpus directory and of its file in `fuzz/fuzz_targets/`,
/// and its entry point.
pub type Target = (&'static str, fn(&[u8]));

/// The workspace's `fuzz/` directory.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every kept input of `target`: its corpus and its regressions.
pub fn inputs(target: &str) -> Vec<Vec<u8>> {
    ["corpus", "regressions"]
        .iter()
        .filter_map(|kind| std::fs::read_dir(fuzz_dir().join(kind).join(target)).ok())
        .flatten()
        .map(|e| std::fs::read(e.expect("a corpus entry").path()).expect("a corpus file"))
        .collect()
}

/// Runs `seeds` and every kept input of each of `targets` (entry points of the crate named
/// `krate`, e.g. `distkv_lsm`) through its entry point, and checks that each target has seeds,
/// a corpus, and a libFuzzer target file calling that entry point.
pub fn replay(krate: &str, targets: &[Target], seeds: &[(&str, Vec<u8>)]) {
    for (target, run) in targets {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let source = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{target} has no fuzz target {}: {e}", file.display()));
        let call = format!("{krate}::fuzzing::{target}(");
        assert!(
            source.contains(&call),
            "{} does not call {call}",
            file.display()
        );
        let mut seeded = 0;
        for (_, input) in seeds.iter().filter(|(t, _)| t == target) {
            run(input);
            seeded += 1;
        }
        assert!(seeded > 0, "{target} has no seed");
        let kept = inputs(target);
        assert!(!kept.is_empty(), "no corpus for {target} in fuzz/corpus");
        for input in kept {
            run(&input);
        }
    }
}

/// Writes `seeds` into the corpus, as `seed-<n>` in each target's directory, for the fuzzer to
/// start from.
pub fn write_seeds(seeds: &[(&str, Vec<u8>)]) {
    let mut n: HashMap<&str, usize> = HashMap::new();
    for (target, input) in seeds {
        let i = n.entry(target).or_insert(0);
        *i += 1;
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("the corpus directory");
        std::fs::write(dir.join(format!("seed-{i}")), input).expect("a seed written");
    }
}

/// The two tests of a crate's `fuzzing` module, given its crate name (`"distkv_lsm"`): the
/// replay of its seeds and kept inputs through its `TARGETS`, and (ignored) the writing of its
/// `seeds()` into the corpus: `cargo test -p <crate> --lib write_seed_corpus -- --ignored`.
#[macro_export]
macro_rules! corpus_tests {
    ($krate:literal) => {
        #[test]
        fn seeds_and_corpus_replay_clean() {
            $crate::replay($krate, TARGETS, &seeds());
        }

        #[test]
        #[ignore = "writes the checked-in corpus"]
        fn write_seed_corpus() {
            $crate::write_seeds(&seeds());
        }
    };
}
