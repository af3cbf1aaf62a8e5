//! Crash safety on real RocksDB: a child process appends blocks (with the pending-pool and
//! consensus-record writes a node makes around each commit) and reports each commit on stdout
//! once `commit` has returned; the test kills it with SIGKILL at random moments. After every
//! kill the store must reopen and hold every block reported committed — a prefix of the chain,
//! never a torn block — with state and indexes equal, entry for entry, to a replay of that
//! prefix into a fresh store.
//!
//! `KP_STORE_CRASH_KILLS` sets the number of kills (100 by default; the soak script uses more),
//! `KP_STORE_CRASH_SEED` the seed of the kill delays (printed; by default from the clock).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Workload, ledger_contents};
use kp_consensus::block::{VoteBody, VoteKind};
use kp_consensus::{Application, Record};
use kp_domain::Hash32;
use kp_store::{MemBackend, RocksBackend, Store};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CHILD_DIR: &str = "KP_STORE_CRASH_DIR";
const PARTICIPANTS: usize = 4;
const PER_BLOCK: usize = 9;
const WORKLOAD_SEED: u64 = 11;
/// A child stops on its own after this many blocks (every loop is bounded).
const MAX_CHILD_BLOCKS: u64 = 20_000;

/// The voted record a node persists before its prevote at `height`.
fn record(height: u64) -> Record {
    Record::Voted(VoteBody { kind: VoteKind::Prevote, height, round: 0, block_hash: Hash32([7; 32]) })
}

/// The child: started by the test below as this same test, with `KP_STORE_CRASH_DIR` set.
fn child(dir: &str) {
    let w = Workload::new(PARTICIPANTS, WORKLOAD_SEED, PER_BLOCK);
    let (mut store, mut app) = Store::open(RocksBackend::open(dir.as_ref()).unwrap(), &w.net.genesis).unwrap();
    let mut out = std::io::stdout().lock();
    for _ in 0..MAX_CHILD_BLOCKS {
        let height = app.height() + 1;
        // As a node: the block's events were submitted first, and a vote record precedes the vote.
        store.add_pending(&w.events(height)).unwrap();
        store.persist_records(&[record(height)]).unwrap();
        let (b, c) = w.next_block(&mut app);
        store.commit(&b, &c, &mut app).unwrap();
        writeln!(out, "committed {height}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_committed() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        return child(&dir);
    }
    let kills: u32 = std::env::var("KP_STORE_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let seed: u64 = std::env::var("KP_STORE_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs())
    });
    println!("crash test: seed {seed}, {kills} kills (rerun: KP_STORE_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let w = Workload::new(PARTICIPANTS, WORKLOAD_SEED, PER_BLOCK);
    // The replica: the same blocks replayed into a fresh in-memory store.
    let (mut replica, mut replica_app) = Store::open(MemBackend::new(), &w.net.genesis).unwrap();
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut last_head = 0;
    let mut startup = Duration::from_millis(500);
    let mut rounds_committing = 0;
    let mut unreported = 0;
    for round in 0..kills {
        let mut child = Command::new(&exe)
            .args(["sigkill_at_random_moments_loses_nothing_committed", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let spawned = Instant::now();
        let reported = Arc::new(AtomicU64::new(0));
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::clone(&reported);
        let reader = std::thread::spawn(move || {
            let mut first = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(h) = line.strip_prefix("committed ").and_then(|h| h.parse().ok()) {
                    first.get_or_insert_with(|| spawned.elapsed());
                    seen.store(h, Ordering::SeqCst);
                }
            }
            first
        });
        // A third of the kills before the child's first commit (while it starts, recovers and
        // checks the store), the rest while it commits: the window follows the start-up time
        // measured in the previous rounds.
        let ms = u64::try_from(startup.as_millis()).unwrap_or(u64::MAX);
        std::thread::sleep(Duration::from_millis(rng.random_range(ms / 2..ms + 300)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        if let Some(first) = reader.join().unwrap() {
            startup = (startup * 3 + first) / 4;
        }
        assert!(status.code().is_none(), "round {round}: the child ended on its own ({status}); seed {seed}");
        let reported = reported.load(Ordering::SeqCst);

        let (store, mut app) = Store::open(RocksBackend::open(dir.path()).unwrap(), &w.net.genesis)
            .unwrap_or_else(|e| panic!("round {round}: the store does not reopen after SIGKILL: {e}; seed {seed}"));
        let head = store.head();
        assert!(
            head.height >= reported && head.height >= last_head,
            "round {round}: head {} but {reported} was reported committed (previous head {last_head}); seed {seed}",
            head.height
        );
        if reported > 0 {
            rounds_committing += 1;
            if head.height > reported {
                unreported += 1; // killed after a commit returned, before it was reported
            }
        }
        while replica_app.height() < head.height {
            let (b, c) = w.next_block(&mut replica_app);
            replica.commit(&b, &c, &mut replica_app).unwrap();
        }
        assert_eq!(ledger_contents(&store), ledger_contents(&replica), "round {round}: seed {seed}");
        assert_eq!(app.ledger_mut().state_root(), replica_app.ledger_mut().state_root());
        // The pool holds nothing but the next block's events; records only the open height's.
        let pending = store.pending().unwrap();
        assert!(pending.is_empty() || pending == w.events(head.height + 1), "round {round}: stray pending events");
        assert!(store.records().unwrap().iter().all(|r| *r == record(head.height + 1)), "round {round}");
        drop(store);
        if round % 25 == 24 {
            Store::verify(RocksBackend::open(dir.path()).unwrap(), &w.net.genesis)
                .unwrap_or_else(|e| panic!("round {round}: verify: {e}; seed {seed}"));
        }
        last_head = head.height;
    }
    println!(
        "crash test: {kills} kills, {rounds_committing} of them after the child had committed, {unreported} between a \
         commit and its report; {last_head} blocks committed in {:.1} s; child start-up {} ms",
        started.elapsed().as_secs_f64(),
        startup.as_millis()
    );
    assert!(last_head > 0, "no block was ever committed: the kill delays are too short for this machine");
}
