//! The RocksDB backend: one column family per [`Cf`], LZ4 compression (Zstandard on the
//! bottommost level), Bloom filters on the point-lookup families, hashed memtables for the
//! families whose keys a block scatters, synced write batches.
//!
//! Crash model: a batch written with `sync` is in the write-ahead log and fsynced before
//! `write` returns; RocksDB's point-in-time WAL recovery replays every synced batch after a
//! crash and never a torn one (batches are atomic in the log). Block checksums are verified
//! on every read, so damaged files surface as [`BackendError::Corruption`].

use crate::backend::{Backend, BackendError, Batch, Cf, Entry, Op, ReadView};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, ErrorKind, MemtableFactory,
    Options, ReadOptions, SliceTransform, WriteBatch, WriteOptions,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Shared block cache for all column families.
const BLOCK_CACHE_BYTES: usize = 128 * 1024 * 1024;

/// Memtable size per column family. Small enough that a memtable's skiplist stays in the
/// processor's cache: with RocksDB's default (64 MiB) inserts of random keys (event ids,
/// certificate numbers) missed the cache at every skiplist level.
const WRITE_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// Hash buckets of a hashed memtable (8 bytes each, taken from the memtable's arena): an
/// 8 MiB memtable holds about 100,000 entries of these families.
const MEMTABLE_BUCKETS: usize = 1 << 16;

/// How a family's memtable is organised. A block's event ids, state records, custody and
/// review entries land all over the key space, and a skiplist insert of such a key misses the
/// cache at most of its levels: that was half of a commit's time. A hashed memtable finds a
/// key's bucket first. The families read by exact key are hashed by their whole key; those read
/// by prefix by that prefix (see [`Backend::scan_prefix`]), so that a prefix scan looks in one
/// bucket. Ordered iteration over a whole hashed memtable sorts it first, which only a flush,
/// `Store::open` and `Store::verify` ask for (`total_order_seek`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hashing {
    /// Event ids and state records: one key (and its versions) a bucket.
    WholeKey,
    /// Custody entries, by certificate (`len || number`): a few entries a bucket.
    Certificate,
    /// Review and pending-receipt entries, by participant (and role): a participant's whole
    /// index in one bucket, kept in order.
    Fixed(usize),
}

fn hashing(cf: Cf) -> Option<Hashing> {
    match cf {
        Cf::EventIds | Cf::State => Some(Hashing::WholeKey),
        Cf::Custody => Some(Hashing::Certificate),
        // Participant ids are two ASCII letters and the role one byte; every key of these
        // families is longer (layout.rs), as RocksDB's fixed-prefix extractor needs.
        Cf::ByParticipant => Some(Hashing::Fixed(3)),
        Cf::PendingReceipts => Some(Hashing::Fixed(2)),
        _ => None,
    }
}

impl Hashing {
    fn transform(self) -> SliceTransform {
        match self {
            Hashing::WholeKey => SliceTransform::create_noop(),
            Hashing::Certificate => {
                SliceTransform::create("kp-custody-certificate", custody_certificate, Some(custody_in_domain))
            }
            Hashing::Fixed(n) => SliceTransform::create_fixed_prefix(n),
        }
    }

    fn memtable(self) -> MemtableFactory {
        match self {
            Hashing::WholeKey | Hashing::Certificate => {
                MemtableFactory::HashLinkList { bucket_count: MEMTABLE_BUCKETS }
            }
            Hashing::Fixed(_) => MemtableFactory::HashSkipList { bucket_count: 1024, height: 12, branching_factor: 4 },
        }
    }

    /// Whether `prefix` is exactly one bucket's prefix.
    fn is_bucket(self, prefix: &[u8]) -> bool {
        match self {
            Hashing::WholeKey => false,
            Hashing::Certificate => custody_in_domain(prefix) && custody_certificate(prefix).len() == prefix.len(),
            Hashing::Fixed(n) => prefix.len() == n,
        }
    }
}

/// A custody key `len || number || position` is in the extractor's domain when it holds the
/// whole number; the prefix is `len || number`.
fn custody_in_domain(key: &[u8]) -> bool {
    key.first().is_some_and(|&n| key.len() > usize::from(n))
}

fn custody_certificate(key: &[u8]) -> &[u8] {
    let end = key.first().map_or(0, |&n| usize::from(n) + 1);
    &key[..end.min(key.len())]
}

pub struct RocksBackend {
    /// Shared with the snapshots taken of it, which must not outlive the database.
    db: Arc<DB>,
    path: PathBuf,
}

type DbSnapshot<'a> = rocksdb::SnapshotWithThreadMode<'a, DB>;

self_cell::self_cell!(
    /// A RocksDB snapshot with the database it reads (kept open while the snapshot lives).
    struct RocksSnapshot {
        owner: Arc<DB>,
        #[covariant]
        dependent: DbSnapshot,
    }
);

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
        // Hashed memtables take one writer at a time (the store writes one batch at a time).
        db_opts.set_allow_concurrent_memtable_write(false);
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
            if let Some(h) = hashing(*cf) {
                o.set_prefix_extractor(h.transform());
                o.set_memtable_factory(h.memtable());
            }
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
        let db = DB::open_cf_descriptors(&db_opts, dir, cfs).map_err(error)?;
        Ok(RocksBackend { db: Arc::new(db), path: dir.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes memtables and compacts every column family (benchmarks measure settled size).
    pub fn compact(&self) -> Result<(), BackendError> {
        for cf in Cf::ALL {
            let h = handle(&self.db, cf)?;
            self.db.flush_cf(h).map_err(error)?;
            self.db.compact_range_cf::<&[u8], &[u8]>(h, None, None);
        }
        Ok(())
    }
}

fn handle(db: &DB, cf: Cf) -> Result<&ColumnFamily, BackendError> {
    db.cf_handle(cf.name()).ok_or_else(|| BackendError::Io(format!("column family {} is missing", cf.name())))
}

/// Reads of the database, at its latest state or at a snapshot.
struct Reads<'a> {
    db: &'a DB,
    snapshot: Option<&'a DbSnapshot<'a>>,
}

impl Reads<'_> {
    fn options(&self) -> ReadOptions {
        let mut opts = ReadOptions::default();
        if let Some(s) = self.snapshot {
            opts.set_snapshot(s);
        }
        opts
    }

    fn iterate(
        &self,
        cf: Cf,
        opts: ReadOptions,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), BackendError> {
        let mut it = self.db.raw_iterator_cf_opt(handle(self.db, cf)?, opts);
        it.seek(from);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !visit(k, v) {
                break;
            }
            it.next();
        }
        it.status().map_err(error)
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.db
            .get_pinned_cf_opt(handle(self.db, cf)?, key, &self.options())
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(error)
    }

    fn scan(&self, cf: Cf, from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), BackendError> {
        let mut opts = self.options();
        opts.set_verify_checksums(true);
        opts.set_total_order_seek(true);
        self.iterate(cf, opts, from, visit)
    }

    fn scan_prefix(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), BackendError> {
        debug_assert!(from.starts_with(prefix), "internal invariant: a prefix scan starts within its prefix");
        let mut opts = self.options();
        opts.set_verify_checksums(true);
        if hashing(cf).is_some_and(|h| h.is_bucket(prefix)) {
            // One bucket of the memtable, and the prefix Bloom filter of each table file.
            opts.set_prefix_same_as_start(true);
        } else {
            opts.set_total_order_seek(true);
        }
        self.iterate(cf, opts, from, &mut |k, v| k.starts_with(prefix) && visit(k, v))
    }

    fn last(&self, cf: Cf) -> Result<Option<Entry>, BackendError> {
        let mut opts = self.options();
        opts.set_total_order_seek(true);
        let mut it = self.db.raw_iterator_cf_opt(handle(self.db, cf)?, opts);
        it.seek_to_last();
        let entry = match (it.key(), it.value()) {
            (Some(k), Some(v)) => Some((k.to_vec(), v.to_vec())),
            _ => None,
        };
        it.status().map_err(error)?;
        Ok(entry)
    }
}

/// Reads through [`Reads`]: the same code for the database and for its snapshots.
macro_rules! read_view {
    ($ty:ty, $this:ident => $reads:expr) => {
        impl ReadView for $ty {
            fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
                let $this = self;
                $reads.get(cf, key)
            }
            fn scan(
                &self,
                cf: Cf,
                from: &[u8],
                visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
            ) -> Result<(), BackendError> {
                let $this = self;
                $reads.scan(cf, from, visit)
            }
            fn scan_prefix(
                &self,
                cf: Cf,
                prefix: &[u8],
                from: &[u8],
                visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
            ) -> Result<(), BackendError> {
                let $this = self;
                $reads.scan_prefix(cf, prefix, from, visit)
            }
            fn last(&self, cf: Cf) -> Result<Option<Entry>, BackendError> {
                let $this = self;
                $reads.last(cf)
            }
        }
    };
}

read_view!(RocksBackend, this => Reads { db: &this.db, snapshot: None });
read_view!(RocksSnapshot, this => Reads { db: this.borrow_owner(), snapshot: Some(this.borrow_dependent()) });

impl Backend for RocksBackend {
    fn snapshot(&self) -> Result<Box<dyn ReadView>, BackendError> {
        Ok(Box::new(RocksSnapshot::new(Arc::clone(&self.db), |db| db.snapshot())))
    }

    fn write(&self, batch: Batch, sync: bool) -> Result<(), BackendError> {
        let mut wb = WriteBatch::default();
        // The batch is sorted by family: each family's handle is looked up once.
        let mut last: Option<(Cf, &ColumnFamily)> = None;
        for op in in_key_order(batch.ops) {
            let cf = match &op {
                Op::Put(cf, ..) | Op::Delete(cf, _) | Op::DeleteRange(cf, ..) => *cf,
            };
            let handle = match last {
                Some((c, h)) if c == cf => h,
                _ => handle(&self.db, cf)?,
            };
            last = Some((cf, handle));
            match op {
                Op::Put(_, k, v) => wb.put_cf(handle, k, v),
                Op::Delete(_, k) => wb.delete_cf(handle, k),
                Op::DeleteRange(_, from, to) => wb.delete_range_cf(handle, from, to),
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

#[cfg(test)]
mod hashed_memtables {
    use super::*;
    use crate::layout::{
        Position, TradeRole, custody_key, custody_prefix, participant_key, participant_prefix, pending_receipt_key,
    };
    use kp_domain::{CertificateNumber, ParticipantId, Timestamp};

    /// The keys `scan_prefix` visits.
    fn scan(db: &RocksBackend, cf: Cf, prefix: &[u8], from: &[u8]) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        db.scan_prefix(cf, prefix, from, &mut |k, _| {
            keys.push(k.to_vec());
            true
        })
        .unwrap();
        keys
    }

    fn custody_of(db: &RocksBackend, number: &CertificateNumber) -> Vec<Vec<u8>> {
        let prefix = custody_prefix(number);
        scan(db, Cf::Custody, &prefix, &prefix)
    }

    /// Every key of the family, in order (a full scan: `total_order_seek`).
    fn all(db: &RocksBackend, cf: Cf) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        db.scan(cf, &[], &mut |k, _| {
            keys.push(k.to_vec());
            true
        })
        .unwrap();
        keys
    }

    /// Numbers where one is a prefix of another: the length byte keeps their custody apart,
    /// in the memtable (one bucket each) and in table files (prefix Bloom filters), and a full
    /// scan still sees every family in key order.
    #[test]
    fn custody_by_certificate_and_full_scans_in_order_before_and_after_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let db = RocksBackend::open(dir.path()).unwrap();
        let numbers: Vec<CertificateNumber> =
            ["BW-1", "BW-12", "BW-123", "ZA-9"].iter().map(|n| CertificateNumber::new(n).unwrap()).collect();
        let mut batch = Batch::default();
        let mut expected = Vec::new();
        for (i, n) in numbers.iter().enumerate() {
            let mut keys = Vec::new();
            for height in [7u64, 3, 12] {
                let k = custody_key(n, Position { height: height + i as u64, index: 1 });
                batch.put(Cf::Custody, k.clone(), height.to_be_bytes().to_vec());
                keys.push(k);
            }
            keys.sort();
            expected.push(keys);
            batch.put(Cf::State, n.as_str().as_bytes().to_vec(), vec![1]);
            batch.put(Cf::EventIds, vec![u8::try_from(i).unwrap(); 32], vec![2]);
        }
        db.write(batch, true).unwrap();
        for round in ["memtable", "table files"] {
            for (n, keys) in numbers.iter().zip(&expected) {
                assert_eq!(&custody_of(&db, n), keys, "{round}: custody of {n}");
            }
            let absent = CertificateNumber::new("BW-1234").unwrap();
            assert!(custody_of(&db, &absent).is_empty(), "{round}");
            let mut every: Vec<Vec<u8>> = expected.concat();
            every.sort();
            assert_eq!(all(&db, Cf::Custody), every, "{round}");
            let mut states: Vec<Vec<u8>> = numbers.iter().map(|n| n.as_str().as_bytes().to_vec()).collect();
            states.sort();
            assert_eq!(all(&db, Cf::State), states, "{round}");
            assert_eq!(all(&db, Cf::EventIds).len(), numbers.len(), "{round}");
            assert_eq!(db.get(Cf::EventIds, &[2; 32]).unwrap(), Some(vec![2]), "{round}");
            assert_eq!(db.last(Cf::State).unwrap().map(|e| e.0), states.last().cloned(), "{round}");
            db.compact().unwrap();
        }
    }

    /// A participant's review entries from a time on, and an importer's pending receipts, come
    /// back in order and alone, whatever other participants (neighbours in key order) hold,
    /// from the memtable and from table files.
    #[test]
    fn review_and_pending_receipt_scans_stay_in_their_bucket_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = RocksBackend::open(dir.path()).unwrap();
        let who: Vec<ParticipantId> = ["BW", "BY", "CA"].iter().map(|p| ParticipantId::new(p).unwrap()).collect();
        let mut batch = Batch::default();
        for (i, p) in who.iter().enumerate() {
            for t in [30u64, 10, 20] {
                let n = CertificateNumber::new(&format!("{p}-{t}-{i}")).unwrap();
                for role in [TradeRole::Exporter, TradeRole::Importer] {
                    batch.put(Cf::ByParticipant, participant_key(*p, role, Timestamp(t), &n), Vec::new());
                }
                batch.put(Cf::PendingReceipts, pending_receipt_key(*p, &n), t.to_be_bytes().to_vec());
            }
        }
        db.write(batch, true).unwrap();
        let bw = who[0];
        let n = |t: u64| CertificateNumber::new(&format!("BW-{t}-0")).unwrap();
        for round in ["memtable", "table files"] {
            let prefix = participant_prefix(bw, TradeRole::Importer);
            let mut from = prefix.clone();
            from.extend_from_slice(&20u64.to_be_bytes());
            let expected: Vec<Vec<u8>> =
                [20, 30].iter().map(|&t| participant_key(bw, TradeRole::Importer, Timestamp(t), &n(t))).collect();
            assert_eq!(scan(&db, Cf::ByParticipant, &prefix, &from), expected, "{round}");
            let pending = scan(&db, Cf::PendingReceipts, b"BW", b"BW");
            let expected: Vec<Vec<u8>> = [10, 20, 30].iter().map(|&t| pending_receipt_key(bw, &n(t))).collect();
            assert_eq!(pending, expected, "{round}");
            assert!(scan(&db, Cf::PendingReceipts, b"BX", b"BX").is_empty(), "{round}");
            db.compact().unwrap();
        }
    }
}
