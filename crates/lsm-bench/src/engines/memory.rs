//! An in-memory twin of the engines, for testing the workloads and the runner without
//! disks or timing noise. It keeps an ordered map behind a lock; `flush` and
//! `wait_for_compactions` have nothing to do.

use std::collections::BTreeMap;
use std::sync::RwLock;

use anyhow::{Result, anyhow};

use crate::engine::BenchEngine;

#[derive(Default)]
pub struct MemoryEngine {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
    /// When set, `get` returns this instead of the stored value, to test that the
    /// workloads catch a wrong answer.
    corrupt_reads: Option<Vec<u8>>,
}

impl MemoryEngine {
    /// An engine whose every successful read returns `wrong` instead of the value.
    pub fn corrupting(wrong: Vec<u8>) -> Self {
        Self {
            corrupt_reads: Some(wrong),
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.map.read().map_or(0, |m| m.len())
    }
}

impl BenchEngine for MemoryEngine {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn put(&self, key: &[u8], value: &[u8], _sync: bool) -> Result<()> {
        let mut map = self.map.write().map_err(|_| anyhow!("poisoned"))?;
        map.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        let map = self.map.read().map_err(|_| anyhow!("poisoned"))?;
        match (map.get(key), &self.corrupt_reads) {
            (Some(_), Some(wrong)) => out.extend_from_slice(wrong),
            (Some(value), None) => out.extend_from_slice(value),
            (None, _) => return Ok(false),
        }
        Ok(true)
    }

    fn scan(&self, start: &[u8], n: usize) -> Result<usize> {
        let map = self.map.read().map_err(|_| anyhow!("poisoned"))?;
        Ok(map.range(start.to_vec()..).take(n).count())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn wait_for_compactions(&self) -> Result<()> {
        Ok(())
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
