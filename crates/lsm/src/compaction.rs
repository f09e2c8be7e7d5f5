//! Compaction policy: which files to merge next. Pure functions of the current files and the
//! options; the worker in `db` does the I/O.
//!
//! * **Leveled** (default). Each level is scored: L0 by file count over `l0_compaction_trigger`,
//!   deeper levels by bytes over their target (`level1_bytes * multiplier^(level-1)`). The highest
//!   score of at least 1 is compacted. L0 compacts all its files into L1. A deeper level picks the
//!   file whose overlap with the next level is smallest relative to its own size (RocksDB's
//!   "min overlapping ratio"), which keeps write amplification down; a file with no overlap is
//!   moved down without rewriting it.
//! * **Size-tiered**. All runs live in L0, newest first. A window of at least
//!   `l0_compaction_trigger` consecutive runs whose sizes are within 50% of their mean is merged
//!   into one run. If runs pile up past the slowdown trigger without forming such a window, the
//!   newest `l0_compaction_trigger` runs are merged anyway.
//! * **Simple**. When L0 reaches the trigger, all of L0 and L1 are merged into a new L1.
//!
//! Left out: parallel subcompactions, dynamic level sizing, compaction triggered by tombstone
//! density (a manual `compact_range` reclaims tombstones whose TTL has passed).

use crate::options::{CompactionStyle, Options};

/// What the policy needs to know about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub number: u64,
    pub size: u64,
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
}

/// A compaction to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionTask {
    pub input_level: usize,
    pub output_level: usize,
    /// Files taken from `input_level`.
    pub inputs: Vec<u64>,
    /// Files taken from `output_level` (empty when it equals `input_level`).
    pub output_inputs: Vec<u64>,
    /// Move the single input file down a level without rewriting it.
    pub trivial_move: bool,
    /// No older data for these keys lives below the output: tombstones may be dropped here.
    pub bottommost: bool,
}

/// The files of each level, in the order the version keeps them.
pub type LevelFiles<'a> = &'a [Vec<FileSummary>];

fn total(files: &[FileSummary]) -> u64 {
    files.iter().map(|f| f.size).sum()
}

fn key_range<'a>(files: impl IntoIterator<Item = &'a FileSummary>) -> Option<(&'a [u8], &'a [u8])> {
    let mut range: Option<(&[u8], &[u8])> = None;
    for f in files {
        range = Some(match range {
            None => (&f.smallest, &f.largest),
            Some((lo, hi)) => (lo.min(&f.smallest), hi.max(&f.largest)),
        });
    }
    range
}

fn overlapping<'a>(files: &'a [FileSummary], lo: &[u8], hi: &[u8]) -> Vec<&'a FileSummary> {
    files
        .iter()
        .filter(|f| f.smallest.as_slice() <= hi && f.largest.as_slice() >= lo)
        .collect()
}

/// True when no level below `level` holds keys in `[lo, hi]`.
fn nothing_below(levels: LevelFiles<'_>, level: usize, lo: &[u8], hi: &[u8]) -> bool {
    levels[level + 1..]
        .iter()
        .all(|l| overlapping(l, lo, hi).is_empty())
}

/// Chooses the next compaction, if any is due.
pub fn pick(levels: LevelFiles<'_>, opts: &Options) -> Option<CompactionTask> {
    match opts.compaction {
        CompactionStyle::Leveled => pick_leveled(levels, opts),
        CompactionStyle::SizeTiered => pick_tiered(levels, opts),
        CompactionStyle::Simple => pick_simple(levels, opts),
    }
}

fn level_to_level(
    levels: LevelFiles<'_>,
    input_level: usize,
    inputs: Vec<&FileSummary>,
) -> CompactionTask {
    let output_level = input_level + 1;
    let (lo, hi) = key_range(inputs.iter().copied()).unwrap_or((&[], &[]));
    let next = overlapping(&levels[output_level], lo, hi);
    let (lo2, hi2) =
        key_range(inputs.iter().copied().chain(next.iter().copied())).unwrap_or((lo, hi));
    let trivial_move = input_level > 0 && next.is_empty() && inputs.len() == 1;
    CompactionTask {
        input_level,
        output_level,
        inputs: inputs.iter().map(|f| f.number).collect(),
        output_inputs: next.iter().map(|f| f.number).collect(),
        trivial_move,
        bottommost: nothing_below(levels, output_level, lo2, hi2),
    }
}

fn pick_leveled(levels: LevelFiles<'_>, opts: &Options) -> Option<CompactionTask> {
    let last = levels.len() - 1;
    let mut best: Option<(f64, usize)> = None;
    let l0_score = levels[0].len() as f64 / opts.l0_compaction_trigger as f64;
    if l0_score >= 1.0 {
        best = Some((l0_score, 0));
    }
    for (level, files) in levels.iter().enumerate().take(last).skip(1) {
        let score = total(files) as f64 / opts.level_target_bytes(level) as f64;
        if score >= 1.0 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, level));
        }
    }
    let (_, level) = best?;
    if level == 0 {
        return Some(level_to_level(levels, 0, levels[0].iter().collect()));
    }
    let next = &levels[level + 1];
    let file = levels[level].iter().min_by(|a, b| {
        let ratio = |f: &FileSummary| {
            total(
                &overlapping(next, &f.smallest, &f.largest)
                    .into_iter()
                    .cloned()
                    .collect::<Vec<_>>(),
            ) as f64
                / f.size.max(1) as f64
        };
        ratio(a).total_cmp(&ratio(b)).then(a.number.cmp(&b.number))
    })?;
    Some(level_to_level(levels, level, vec![file]))
}

fn pick_simple(levels: LevelFiles<'_>, opts: &Options) -> Option<CompactionTask> {
    if levels[0].len() < opts.l0_compaction_trigger {
        return None;
    }
    let inputs = levels[0].iter().map(|f| f.number).collect();
    let l1: Vec<u64> = levels[1].iter().map(|f| f.number).collect();
    let (lo, hi) = key_range(levels[0].iter().chain(&levels[1]))?;
    Some(CompactionTask {
        input_level: 0,
        output_level: 1,
        inputs,
        output_inputs: l1,
        trivial_move: false,
        bottommost: nothing_below(levels, 1, lo, hi),
    })
}

fn pick_tiered(levels: LevelFiles<'_>, opts: &Options) -> Option<CompactionTask> {
    let runs = &levels[0];
    let min = opts.l0_compaction_trigger;
    const MAX_MERGE: usize = 32;
    // Windows of consecutive runs with similar sizes, newest first.
    let mut start = 0;
    while start < runs.len() {
        let mut end = start + 1;
        let mut sum = runs[start].size;
        while end < runs.len() && end - start < MAX_MERGE {
            let mean = (sum + runs[end].size) as f64 / (end - start + 1) as f64;
            let similar = runs[start..=end]
                .iter()
                .all(|r| (r.size as f64) >= mean * 0.5 && (r.size as f64) <= mean * 1.5);
            if !similar {
                break;
            }
            sum += runs[end].size;
            end += 1;
        }
        if end - start >= min {
            return Some(tiered_task(runs, start, end, levels));
        }
        start = end;
    }
    if runs.len() >= opts.l0_slowdown_trigger {
        return Some(tiered_task(runs, 0, min, levels));
    }
    None
}

fn tiered_task(
    runs: &[FileSummary],
    start: usize,
    end: usize,
    levels: LevelFiles<'_>,
) -> CompactionTask {
    let (lo, hi) = key_range(&runs[start..end]).unwrap_or((&[], &[]));
    let older_overlap = !overlapping(&runs[end..], lo, hi).is_empty();
    CompactionTask {
        input_level: 0,
        output_level: 0,
        inputs: runs[start..end].iter().map(|f| f.number).collect(),
        output_inputs: Vec::new(),
        trivial_move: false,
        bottommost: !older_overlap && nothing_below(levels, 0, lo, hi),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(number: u64, size: u64, lo: &str, hi: &str) -> FileSummary {
        FileSummary {
            number,
            size,
            smallest: lo.as_bytes().to_vec(),
            largest: hi.as_bytes().to_vec(),
        }
    }

    fn opts(style: CompactionStyle) -> Options {
        Options {
            compaction: style,
            level1_bytes: 1000,
            ..Options::default()
        }
    }

    #[test]
    fn leveled_compacts_l0_at_the_trigger_with_overlapping_l1() {
        let mut levels = vec![Vec::new(); 7];
        levels[0] = vec![f(9, 10, "c", "f"), f(8, 10, "a", "d"), f(7, 10, "e", "g")];
        levels[1] = vec![f(1, 100, "a", "b"), f(2, 100, "h", "k")];
        levels[2] = vec![f(3, 100, "x", "z")];
        let o = opts(CompactionStyle::Leveled);
        assert_eq!(pick(&levels, &o), None);
        levels[0].insert(0, f(10, 10, "b", "c"));
        let t = pick(&levels, &o).unwrap();
        assert_eq!(t.input_level, 0);
        assert_eq!(t.output_level, 1);
        assert_eq!(t.inputs, vec![10, 9, 8, 7]);
        assert_eq!(t.output_inputs, vec![1]);
        assert!(t.bottommost);
        assert!(!t.trivial_move);
    }

    #[test]
    fn leveled_picks_the_file_with_least_overlap_and_moves_it_when_free() {
        let mut levels = vec![Vec::new(); 7];
        levels[1] = vec![f(1, 600, "a", "c"), f(2, 600, "d", "f")];
        levels[2] = vec![f(3, 5000, "a", "b"), f(4, 10, "e", "e")];
        let t = pick(&levels, &opts(CompactionStyle::Leveled)).unwrap();
        assert_eq!(
            (t.input_level, t.inputs.clone(), t.output_inputs.clone()),
            (1, vec![2], vec![4])
        );
        levels[2].pop();
        let t = pick(&levels, &opts(CompactionStyle::Leveled)).unwrap();
        assert!(t.trivial_move);
        assert_eq!(t.inputs, vec![2]);
    }

    #[test]
    fn deeper_data_means_not_bottommost() {
        let mut levels = vec![Vec::new(); 7];
        levels[0] = (0..4).map(|i| f(10 + i, 10, "a", "m")).collect();
        levels[5] = vec![f(1, 10, "k", "k")];
        assert!(
            !pick(&levels, &opts(CompactionStyle::Leveled))
                .unwrap()
                .bottommost
        );
    }

    #[test]
    fn tiered_merges_similar_consecutive_runs_only() {
        let mut levels = vec![Vec::new(); 7];
        levels[0] = vec![
            f(9, 10, "a", "z"),
            f(8, 1000, "a", "z"),
            f(7, 1100, "a", "z"),
            f(6, 900, "a", "z"),
            f(5, 1000, "a", "z"),
            f(4, 50_000, "a", "z"),
        ];
        let t = pick(&levels, &opts(CompactionStyle::SizeTiered)).unwrap();
        assert_eq!(t.inputs, vec![8, 7, 6, 5]);
        assert_eq!(t.output_level, 0);
        assert!(!t.bottommost, "an older run overlaps");
        levels[0].pop();
        assert!(
            pick(&levels, &opts(CompactionStyle::SizeTiered))
                .unwrap()
                .bottommost
        );
    }

    #[test]
    fn simple_merges_all_of_l0_and_l1() {
        let mut levels = vec![Vec::new(); 7];
        levels[0] = (0..4).map(|i| f(10 + i, 10, "a", "m")).collect();
        levels[1] = vec![f(1, 10, "x", "y")];
        let t = pick(&levels, &opts(CompactionStyle::Simple)).unwrap();
        assert_eq!(t.inputs.len(), 4);
        assert_eq!(t.output_inputs, vec![1]);
    }
}
