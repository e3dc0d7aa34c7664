//! The external key sorter of the relist repair (docs/protocols/repair.md, "Repair I/O: listing,
//! sorting, diffs"): keys in any order and any number, out ascending and de-duplicated, in
//! bounded memory (sorted runs spilled to unlinked files, k-way merged). No decisions.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;

use super::error::{RepairIoError, RepairKind};
use super::spill::{SpillReader, SpillWriter, checked_key_len};

/// Held key bytes at which the in-memory buffer is sorted and spilled as a run.
pub(crate) const SORT_RUN_BYTES: usize = 64 << 20;

/// The most runs kept open at once: reaching it merges every run into one, so open
/// files stay bounded whatever the input size (64 MiB runs: 16 GiB of keys per merge).
pub(crate) const SORT_RUNS_MAX: usize = 256;

/// Accepts keys in any order; [`finish`](KeySorter::finish) yields each once, ascending
/// by bytes (the order of `SnapshotStore::for_each_in_range`).
///
/// Memory: the held keys (each counted as its length plus a `String` header) stay below
/// `run_bytes` plus one key, and a merge holds one key per run.
#[derive(Debug)]
pub(crate) struct KeySorter {
    repair: RepairKind,
    dir: Option<PathBuf>,
    run_bytes_max: usize,
    runs_max: usize,
    held: Vec<String>,
    held_bytes: usize,
    runs: Vec<SpillReader>,
    runs_spilled: usize,
}

impl KeySorter {
    /// A sorter spilling runs of `run_bytes_max` held bytes ([`SORT_RUN_BYTES`] in
    /// production) into `dir` (`None` = the system temp dir).
    pub(crate) fn new(repair: RepairKind, dir: Option<PathBuf>, run_bytes_max: usize) -> Self {
        Self::with_runs_max(repair, dir, run_bytes_max, SORT_RUNS_MAX)
    }

    /// [`new`](KeySorter::new) with a bound on open runs other than
    /// [`SORT_RUNS_MAX`] (at least 2).
    pub(crate) fn with_runs_max(
        repair: RepairKind,
        dir: Option<PathBuf>,
        run_bytes_max: usize,
        runs_max: usize,
    ) -> Self {
        Self {
            repair,
            dir,
            run_bytes_max: run_bytes_max.max(1),
            runs_max: runs_max.max(2),
            held: Vec::new(),
            held_bytes: 0,
            runs: Vec::new(),
            runs_spilled: 0,
        }
    }

    /// Adds one key. A key longer than a spill record may be is refused at once.
    pub(crate) fn push(&mut self, key: String) -> Result<(), RepairIoError> {
        checked_key_len(self.repair, &key)?;
        self.held_bytes = self
            .held_bytes
            .saturating_add(key.len() + size_of::<String>());
        self.held.push(key);
        if self.held_bytes >= self.run_bytes_max {
            self.spill_run()?;
        }
        Ok(())
    }

    #[cfg(any(test, feature = "testkit"))]
    /// How many runs were spilled so far (merged runs included).
    pub(crate) fn runs_spilled(&self) -> usize {
        self.runs_spilled
    }

    /// Sorts, de-duplicates and spills the held keys as one run.
    fn spill_run(&mut self) -> Result<(), RepairIoError> {
        if self.runs.len() + 1 >= self.runs_max {
            self.merge_runs()?;
        }
        let mut held = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        held.sort_unstable();
        held.dedup();
        let mut run = SpillWriter::create(self.repair, self.dir.as_deref())?;
        for key in &held {
            run.push(key)?;
        }
        self.runs.push(run.finish()?);
        self.runs_spilled += 1;
        Ok(())
    }

    /// Merges every open run into one (bounds the open files).
    fn merge_runs(&mut self) -> Result<(), RepairIoError> {
        let runs = std::mem::take(&mut self.runs);
        let mut merged = SpillWriter::create(self.repair, self.dir.as_deref())?;
        for key in Merge::new(runs)? {
            merged.push(&key?)?;
        }
        self.runs.push(merged.finish()?);
        self.runs_spilled += 1;
        Ok(())
    }

    /// Every pushed key once, ascending: in memory when nothing was spilled, else the
    /// remainder is spilled as a last run and the runs are merged.
    pub(crate) fn finish(mut self) -> Result<SortedKeys, RepairIoError> {
        if self.runs.is_empty() {
            let mut held = std::mem::take(&mut self.held);
            held.sort_unstable();
            held.dedup();
            return Ok(SortedKeys(Inner::Memory(held.into_iter())));
        }
        if !self.held.is_empty() {
            self.spill_run()?;
        }
        Ok(SortedKeys(Inner::Merge(Merge::new(std::mem::take(
            &mut self.runs,
        ))?)))
    }
}

/// The sorter's output: ascending, each key once. After an error it yields nothing more.
#[derive(Debug)]
pub(crate) struct SortedKeys(Inner);

#[derive(Debug)]
enum Inner {
    Memory(std::vec::IntoIter<String>),
    Merge(Merge),
}

impl Iterator for SortedKeys {
    type Item = Result<String, RepairIoError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Inner::Memory(keys) => keys.next().map(Ok),
            Inner::Merge(merge) => merge.next(),
        }
    }
}

/// A k-way merge of ascending runs with a min-heap of `(key, run index)`, skipping a key
/// equal to the last one emitted (runs are de-duplicated within, not across).
#[derive(Debug)]
struct Merge {
    runs: Vec<SpillReader>,
    heap: BinaryHeap<Reverse<(String, usize)>>,
    last: Option<String>,
    failed: bool,
}

impl Merge {
    /// Primes the heap with the first key of every run.
    fn new(mut runs: Vec<SpillReader>) -> Result<Self, RepairIoError> {
        let mut heap = BinaryHeap::with_capacity(runs.len());
        for (index, run) in runs.iter_mut().enumerate() {
            if let Some(key) = run.next_key()? {
                heap.push(Reverse((key, index)));
            }
        }
        Ok(Self {
            runs,
            heap,
            last: None,
            failed: false,
        })
    }

    fn step(&mut self) -> Result<Option<String>, RepairIoError> {
        while let Some(Reverse((key, index))) = self.heap.pop() {
            if let Some(next) = self.runs[index].next_key()? {
                self.heap.push(Reverse((next, index)));
            }
            if self.last.as_ref() != Some(&key) {
                self.last = Some(key.clone());
                return Ok(Some(key));
            }
        }
        Ok(None)
    }
}

impl Iterator for Merge {
    type Item = Result<String, RepairIoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let step = self.step();
        self.failed = step.is_err();
        step.transpose()
    }
}

/// Benchmarks only (`benches/relist_sorter.rs`, testkit): pushes every key of `keys`
/// through the relist's sorter with runs of `run_bytes_max` held bytes (`None`: the
/// production bound, `SORT_RUN_BYTES` = 64 MiB), spilling into
/// `dir` (`None` = the system temp dir), drains the sorted output, and returns how many
/// distinct keys came out and how many runs were spilled.
#[cfg(feature = "testkit")]
pub fn sort_keys_external(
    keys: impl IntoIterator<Item = String>,
    dir: Option<PathBuf>,
    run_bytes_max: Option<usize>,
) -> Result<(u64, usize), String> {
    let run_bytes_max = run_bytes_max.unwrap_or(SORT_RUN_BYTES);
    let mut sorter = KeySorter::new(RepairKind::Relist, dir, run_bytes_max);
    for key in keys {
        sorter.push(key).map_err(|e| e.to_string())?;
    }
    let runs = sorter.runs_spilled();
    let mut distinct = 0u64;
    let mut last: Option<String> = None;
    for key in sorter.finish().map_err(|e| e.to_string())? {
        let key = key.map_err(|e| e.to_string())?;
        if last.as_ref().is_some_and(|l| *l >= key) {
            return Err(format!("out of order: {last:?} then {key:?}"));
        }
        last = Some(key);
        distinct += 1;
    }
    Ok((distinct, runs))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sorted_by(keys: &[String], run_bytes: usize, runs_max: usize) -> (Vec<String>, usize) {
        let mut sorter = KeySorter::with_runs_max(RepairKind::Relist, None, run_bytes, runs_max);
        for k in keys {
            sorter.push(k.clone()).unwrap();
        }
        let runs = sorter.runs_spilled();
        let out = sorter
            .finish()
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        (out, runs)
    }

    fn reference(keys: &[String]) -> Vec<String> {
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        keys
    }

    #[test]
    fn empty_input_sorts_to_nothing_in_memory_and_spilled() {
        assert_eq!(sorted_by(&[], 1, 2), (vec![], 0));
        assert_eq!(sorted_by(&[], SORT_RUN_BYTES, SORT_RUNS_MAX), (vec![], 0));
    }

    #[test]
    fn tiny_runs_spill_every_key_and_merge_to_the_sorted_set() {
        let keys: Vec<String> = ["b", "a", "b", "", "c", "a", "é", "ab"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (out, runs) = sorted_by(&keys, 1, SORT_RUNS_MAX);
        assert_eq!(runs, keys.len(), "a 1-byte run size spills every key");
        assert_eq!(out, reference(&keys));
        let (out, runs) = sorted_by(&keys, 1, 2);
        assert!(runs > keys.len(), "a 2-run bound merges along the way");
        assert_eq!(out, reference(&keys));
    }

    #[test]
    fn the_held_size_counts_the_string_header() {
        // One empty key holds size_of::<String>() bytes: at that run size it spills.
        let (_, runs) = sorted_by(&[String::new()], size_of::<String>(), 4);
        assert_eq!(runs, 1);
        let (_, runs) = sorted_by(&[String::new()], size_of::<String>() + 1, 4);
        assert_eq!(runs, 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn sorter_output_is_sort_plus_dedup_for_every_run_size(
            keys in proptest::collection::vec("[a-c]{0,3}|[\\x00-\\x{10ffff}]{0,4}", 0..60),
            run_bytes in 1usize..400,
            runs_max in 2usize..6,
        ) {
            let (out, _) = sorted_by(&keys, run_bytes, runs_max);
            prop_assert_eq!(out, reference(&keys));
        }
    }
}
