//! The RocksDB backend: one column family per [`Cf`], LZ4 compression (Zstandard on the
//! bottommost level), Bloom filters on the point-lookup families, synced write batches.
//!
//! Crash model: a batch written with `sync` is in the write-ahead log and fsynced before
//! `write` returns; RocksDB's point-in-time WAL recovery replays every synced batch after a
//! crash and never a torn one (batches are atomic in the log). Block checksums are verified
//! on every read, so damaged files surface as [`BackendError::Corruption`].

use crate::backend::{Backend, BackendError, Batch, Cf, Entry, Op};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, ErrorKind, Options,
    ReadOptions, WriteBatch, WriteOptions,
};
use std::path::{Path, PathBuf};

/// Shared block cache for all column families.
const BLOCK_CACHE_BYTES: usize = 128 * 1024 * 1024;

/// Memtable size per column family. Small enough that a memtable's skiplist stays in the
/// processor's cache: with RocksDB's default (64 MiB) inserts of random keys (event ids,
/// certificate numbers) missed the cache at every skiplist level.
const WRITE_BUFFER_BYTES: usize = 8 * 1024 * 1024;

pub struct RocksBackend {
    db: DB,
    path: PathBuf,
}

impl std::fmt::Debug for RocksBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksBackend").field("path", &self.path).finish_non_exhaustive()
    }
}

fn error(e: rocksdb::Error) -> BackendError {
    match e.kind() {
        ErrorKind::Corruption => BackendError::Corruption(e.into_string()),
        _ => BackendError::Io(e.into_string()),
    }
}

impl RocksBackend {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<RocksBackend, BackendError> {
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_paranoid_checks(true);
        db_opts.set_max_background_jobs(2);
        // RocksDB's own info logs: bounded.
        db_opts.set_max_log_file_size(8 * 1024 * 1024);
        db_opts.set_keep_log_file_num(4);
        db_opts.set_bytes_per_sync(1024 * 1024);
        // Column families written rarely (meta, voters, consensus records) would otherwise pin
        // every write-ahead log file until their memtables fill: past this total, RocksDB
        // flushes them so old logs can go (bounded disk use and recovery time).
        db_opts.set_max_total_wal_size(64 * 1024 * 1024);
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut o = Options::default();
            o.set_compression_type(DBCompressionType::Lz4);
            o.set_bottommost_compression_type(DBCompressionType::Zstd);
            o.set_level_compaction_dynamic_level_bytes(true);
            o.set_write_buffer_size(WRITE_BUFFER_BYTES);
            let mut t = BlockBasedOptions::default();
            t.set_block_cache(&cache);
            t.set_block_size(16 * 1024);
            if cf.point_lookups() {
                t.set_bloom_filter(10.0, false);
            }
            o.set_block_based_table_factory(&t);
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
        let db = DB::open_cf_descriptors(&db_opts, dir, cfs).map_err(error)?;
        Ok(RocksBackend { db, path: dir.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, cf: Cf) -> Result<&ColumnFamily, BackendError> {
        self.db.cf_handle(cf.name()).ok_or_else(|| BackendError::Io(format!("column family {} is missing", cf.name())))
    }

    /// Flushes memtables and compacts every column family (benchmarks measure settled size).
    pub fn compact(&self) -> Result<(), BackendError> {
        for cf in Cf::ALL {
            let h = self.cf(cf)?;
            self.db.flush_cf(h).map_err(error)?;
            self.db.compact_range_cf::<&[u8], &[u8]>(h, None, None);
        }
        Ok(())
    }
}

impl Backend for RocksBackend {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.db.get_pinned_cf(self.cf(cf)?, key).map(|v| v.map(|v| v.to_vec())).map_err(error)
    }

    fn scan(&self, cf: Cf, from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), BackendError> {
        let mut opts = ReadOptions::default();
        opts.set_verify_checksums(true);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf)?, opts);
        it.seek(from);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !visit(k, v) {
                break;
            }
            it.next();
        }
        it.status().map_err(error)
    }

    fn last(&self, cf: Cf) -> Result<Option<Entry>, BackendError> {
        let mut it = self.db.raw_iterator_cf(self.cf(cf)?);
        it.seek_to_last();
        let entry = match (it.key(), it.value()) {
            (Some(k), Some(v)) => Some((k.to_vec(), v.to_vec())),
            _ => None,
        };
        it.status().map_err(error)?;
        Ok(entry)
    }

    fn write(&self, batch: Batch, sync: bool) -> Result<(), BackendError> {
        let mut wb = WriteBatch::default();
        for op in in_key_order(batch.ops) {
            match op {
                Op::Put(cf, k, v) => wb.put_cf(self.cf(cf)?, k, v),
                Op::Delete(cf, k) => wb.delete_cf(self.cf(cf)?, k),
                Op::DeleteRange(cf, from, to) => wb.delete_range_cf(self.cf(cf)?, from, to),
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(wb, &opts).map_err(error)
    }
}

/// The batch's operations sorted by column family and key (stable: operations on one key keep
/// their order), when that cannot change the result: no range deletion shares a column family
/// with a point operation. A memtable's skiplist then inserts each key next to the previous
/// one instead of searching from its top, which is most of the cost of a block's commit (its
/// event ids, certificate numbers and review keys are scattered over the key space).
fn in_key_order(mut ops: Vec<Op>) -> Vec<Op> {
    let ranged: Vec<Cf> = ops
        .iter()
        .filter_map(|op| match op {
            Op::DeleteRange(cf, ..) => Some(*cf),
            Op::Put(..) | Op::Delete(..) => None,
        })
        .collect();
    let point_in_ranged = ops.iter().any(|op| match op {
        Op::Put(cf, ..) | Op::Delete(cf, _) => ranged.contains(cf),
        Op::DeleteRange(..) => false,
    });
    if !point_in_ranged {
        ops.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    }
    ops
}

fn sort_key(op: &Op) -> (Cf, &[u8]) {
    match op {
        Op::Put(cf, k, _) | Op::Delete(cf, k) | Op::DeleteRange(cf, k, _) => (*cf, k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorting_keeps_the_order_of_one_key_and_leaves_mixed_range_deletions_alone() {
        let ops = vec![
            Op::Put(Cf::State, b"b".to_vec(), b"1".to_vec()),
            Op::Put(Cf::Events, b"z".to_vec(), Vec::new()),
            Op::Delete(Cf::State, b"b".to_vec()),
            Op::Put(Cf::State, b"a".to_vec(), Vec::new()),
            Op::DeleteRange(Cf::Consensus, Vec::new(), b"x".to_vec()),
        ];
        let sorted = in_key_order(ops.clone());
        let order: Vec<(Cf, &[u8], bool)> =
            sorted.iter().map(|op| (sort_key(op).0, sort_key(op).1, matches!(op, Op::Delete(..)))).collect();
        assert_eq!(
            order,
            vec![
                (Cf::Events, &b"z"[..], false),
                (Cf::State, b"a", false),
                (Cf::State, b"b", false),
                (Cf::State, b"b", true),
                (Cf::Consensus, b"", false),
            ]
        );
        let mut mixed = ops;
        mixed.push(Op::Put(Cf::Consensus, b"c".to_vec(), Vec::new()));
        assert_eq!(in_key_order(mixed.clone()), mixed);
    }
}
