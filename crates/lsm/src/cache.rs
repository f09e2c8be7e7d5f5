//! The block cache: parsed data blocks keyed by (table number, offset), bounded by bytes.

use std::sync::Arc;

use crate::sst::block::Block;

#[derive(Clone, Copy)]
pub(crate) struct BlockWeighter;

impl quick_cache::Weighter<(u64, u64), Arc<Block>> for BlockWeighter {
    fn weight(&self, _key: &(u64, u64), block: &Arc<Block>) -> u64 {
        // Count the block and its bookkeeping; never zero.
        block.size() as u64 + 64
    }
}

pub(crate) type BlockCache = quick_cache::sync::Cache<(u64, u64), Arc<Block>, BlockWeighter>;

pub(crate) fn new_block_cache(capacity_bytes: usize) -> BlockCache {
    let capacity = (capacity_bytes as u64).max(64 * 1024);
    BlockCache::with_weighter((capacity / 4096).max(16) as usize, capacity, BlockWeighter)
}
