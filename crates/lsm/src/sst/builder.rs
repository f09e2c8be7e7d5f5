//! Writes a table file from entries in internal-key order.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::block::BlockBuilder;
use super::{
    BLOCK_TRAILER_LEN, BlockHandle, COMPRESSION_LZ4, COMPRESSION_NONE, FORMAT_VERSION, MAGIC,
    Properties, bloom,
};
use crate::coding::{put_u32, put_u64};
use crate::error::{IoContext, Result};
use crate::options::{Compression, Options};
use crate::types::{self, ValueKind};

/// Settings a builder takes from [`Options`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct BuildOptions {
    pub(crate) block_bytes: usize,
    pub(crate) restart_interval: usize,
    pub(crate) compression: Compression,
    pub(crate) bloom_bits_per_key: Option<f64>,
}

impl BuildOptions {
    pub(crate) fn from_options(o: &Options) -> Self {
        BuildOptions {
            block_bytes: o.block_bytes,
            restart_interval: o.block_restart_interval,
            compression: o.compression,
            bloom_bits_per_key: o.bloom_bits_per_key(),
        }
    }
}

/// Builds one table file.
pub(crate) struct TableBuilder {
    out: BufWriter<File>,
    path: PathBuf,
    offset: u64,
    opts: BuildOptions,
    data: BlockBuilder,
    index: BlockBuilder,
    hashes: Vec<u64>,
    last_user_key: Vec<u8>,
    props: Properties,
    compressed: Vec<u8>,
}

impl TableBuilder {
    pub(crate) fn create(path: &Path, opts: BuildOptions) -> Result<Self> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .at(path)?;
        Ok(TableBuilder {
            out: BufWriter::with_capacity(256 * 1024, file),
            path: path.to_path_buf(),
            offset: 0,
            opts,
            data: BlockBuilder::new(opts.restart_interval),
            index: BlockBuilder::new(1),
            hashes: Vec::new(),
            last_user_key: Vec::new(),
            props: Properties {
                min_seq: u64::MAX,
                ..Default::default()
            },
            compressed: Vec::new(),
        })
    }

    /// Adds an entry; internal keys must be strictly increasing.
    pub(crate) fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        let user = types::user_key(ikey);
        if self.props.num_entries == 0 {
            self.props.smallest = ikey.to_vec();
        }
        if self.props.num_entries == 0 || user != self.last_user_key.as_slice() {
            self.hashes.push(bloom::hash_key(user));
            self.last_user_key.clear();
            self.last_user_key.extend_from_slice(user);
        }
        let seq = types::seq_of(ikey);
        self.props.num_entries += 1;
        if types::kind_of(ikey) == Some(ValueKind::Delete) {
            self.props.num_deletes += 1;
        }
        self.props.raw_key_bytes += ikey.len() as u64;
        self.props.raw_value_bytes += value.len() as u64;
        self.props.min_seq = self.props.min_seq.min(seq);
        self.props.max_seq = self.props.max_seq.max(seq);
        self.data.add(ikey, value);
        if self.data.estimated_size() >= self.opts.block_bytes {
            self.flush_data_block()?;
        }
        Ok(())
    }

    /// Bytes written so far plus the open block.
    pub(crate) fn estimated_size(&self) -> u64 {
        self.offset + self.data.estimated_size() as u64
    }

    fn flush_data_block(&mut self) -> Result<()> {
        if self.data.is_empty() {
            return Ok(());
        }
        let last = self.data.last_key().to_vec();
        self.props.largest.clone_from(&last);
        let raw = self.data.finish();
        let handle = self.write_block(&raw, self.opts.compression)?;
        let mut h = Vec::with_capacity(16);
        handle.encode_to(&mut h);
        self.index.add(&last, &h);
        self.props.num_data_blocks += 1;
        Ok(())
    }

    fn write_block(&mut self, raw: &[u8], compression: Compression) -> Result<BlockHandle> {
        let (contents, kind): (&[u8], u8) = match compression {
            Compression::Lz4 => {
                self.compressed = lz4_flex::block::compress_prepend_size(raw);
                if self.compressed.len() < raw.len() - raw.len() / 8 {
                    (&self.compressed, COMPRESSION_LZ4)
                } else {
                    (raw, COMPRESSION_NONE)
                }
            }
            Compression::None => (raw, COMPRESSION_NONE),
        };
        let crc = crc32c::crc32c_append(crc32c::crc32c(contents), &[kind]);
        let handle = BlockHandle {
            offset: self.offset,
            size: contents.len() as u64,
        };
        self.out.write_all(contents).at(&self.path)?;
        let mut trailer = [0u8; BLOCK_TRAILER_LEN];
        trailer[0] = kind;
        trailer[1..].copy_from_slice(&crc.to_le_bytes());
        self.out.write_all(&trailer).at(&self.path)?;
        self.offset += (contents.len() + BLOCK_TRAILER_LEN) as u64;
        Ok(handle)
    }

    /// Writes the filter, properties, index and footer, and syncs the file.
    pub(crate) fn finish(mut self) -> Result<(u64, Properties)> {
        self.flush_data_block()?;
        if self.props.num_entries == 0 {
            self.props.min_seq = 0;
        }
        let filter = match self.opts.bloom_bits_per_key {
            Some(bits) => bloom::build(&self.hashes, bits),
            None => Vec::new(),
        };
        let filter_handle = self.write_block(&filter, Compression::None)?;
        let props = self.props.encode();
        let props_handle = self.write_block(&props, Compression::None)?;
        let index = self.index.finish();
        let index_handle = self.write_block(&index, Compression::None)?;
        let mut footer = Vec::with_capacity(super::FOOTER_LEN);
        for h in [index_handle, filter_handle, props_handle] {
            put_u64(&mut footer, h.offset);
            put_u64(&mut footer, h.size);
        }
        put_u32(&mut footer, FORMAT_VERSION);
        let crc = crc32c::crc32c(&footer);
        put_u32(&mut footer, crc);
        put_u64(&mut footer, MAGIC);
        self.out.write_all(&footer).at(&self.path)?;
        self.offset += footer.len() as u64;
        let file = self
            .out
            .into_inner()
            .map_err(|e| crate::Error::io(&self.path, e.into_error()))?;
        file.sync_all().at(&self.path)?;
        Ok((self.offset, self.props))
    }
}
