//! The store's test suite, run on both backends: the in-memory one and RocksDB on a temporary
//! directory. Every test is generic over [`Env`]; the macro at the end instantiates it twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;

use common::{Workload, ledger_contents, replay};
use kp_chain::LedgerApp;
use kp_consensus::block::{Block, Certificate, VoteBody, VoteKind};
use kp_consensus::{Application, Evidence, Record, Vote};
use kp_crypto::Signature;
use kp_domain::{CertificateNumber, Hash32, ParticipantId, Timestamp};
use kp_rules::CertificateState;
use kp_store::{
    Backend, Batch, Cf, MemBackend, Position, ReadView, RecordSlot, RocksBackend, Store, StoreError, Submitted,
    TradeRole,
};

/// A place a store lives, that can be opened again after the store is dropped.
trait Env {
    type B: Backend;
    fn new() -> Self;
    fn backend(&self) -> Self::B;
}

struct Mem(MemBackend);
impl Env for Mem {
    type B = MemBackend;
    fn new() -> Self {
        Mem(MemBackend::new())
    }
    fn backend(&self) -> MemBackend {
        self.0.clone()
    }
}

struct Rocks(tempfile::TempDir);
impl Env for Rocks {
    type B = RocksBackend;
    fn new() -> Self {
        Rocks(tempfile::tempdir().unwrap())
    }
    fn backend(&self) -> RocksBackend {
        RocksBackend::open(self.0.path()).unwrap()
    }
}

const PARTICIPANTS: usize = 4;

/// A store with `blocks` committed blocks of the workload; returns the blocks too.
fn filled<E: Env>(env: &E, w: &Workload, blocks: u64) -> (Store<E::B>, LedgerApp, Vec<(Block, Certificate)>) {
    let (mut store, mut app) = Store::open(env.backend(), &w.net.genesis).unwrap();
    let mut out = Vec::new();
    for _ in 0..blocks {
        let (b, c) = w.next_block(&mut app);
        store.commit(&b, &c, &mut app).unwrap();
        out.push((b, c));
    }
    (store, app, out)
}

fn integrity_height(e: &StoreError) -> (u64, String) {
    match e {
        StoreError::Integrity { height, reason } => (*height, reason.clone()),
        other => panic!("expected an integrity error, got {other}"),
    }
}

/// Overwrites one stored entry, bypassing the store (as damage on disk would).
fn poke<B: Backend>(b: &B, cf: Cf, key: &[u8], f: impl FnOnce(&mut Vec<u8>)) {
    let mut v = b.get(cf, key).unwrap().expect("entry to damage");
    f(&mut v);
    let mut batch = Batch::default();
    batch.put(cf, key.to_vec(), v);
    b.write(batch, true).unwrap();
}

fn remove<B: Backend>(b: &B, cf: Cf, key: &[u8]) {
    assert!(b.get(cf, key).unwrap().is_some(), "entry to remove exists");
    let mut batch = Batch::default();
    batch.delete(cf, key.to_vec());
    b.write(batch, true).unwrap();
}

/// How many entries a column family holds.
fn entries<B: Backend>(b: &B, cf: Cf) -> u32 {
    let mut n = 0;
    b.scan(cf, &[], &mut |_, _| {
        n += 1;
        true
    })
    .unwrap();
    n
}

fn number(s: &str) -> CertificateNumber {
    CertificateNumber::new(s).unwrap()
}

fn commit_reopen_and_query<E: Env>() {
    let env = E::new();
    let w = Workload::new(PARTICIPANTS, 1, 30);
    let (store, mut app, blocks) = filled(&env, &w, 12);
    let head = store.head();
    assert_eq!(head.height, 12);
    assert_eq!(head.events, blocks.iter().map(|(b, _)| b.events().len() as u64).sum::<u64>());
    let contents = ledger_contents(&store);
    let root = app.ledger_mut().state_root();
    drop(store);
    let report = Store::verify(env.backend(), &w.net.genesis).unwrap();
    assert_eq!((report.blocks, report.events), (12, head.events));

    let (store, mut reopened) = Store::open(env.backend(), &w.net.genesis).unwrap();
    assert_eq!(store.head(), head);
    assert_eq!(reopened.ledger_mut().state_root(), root);
    assert_eq!(reopened.last_block(), (head.hash, head.time));
    assert_eq!(ledger_contents(&store), contents);
    // Equal, entry for entry, to a replay of the same blocks through the consensus check.
    assert_eq!(ledger_contents(&replay(&w.net, &blocks)), contents);

    // Blocks and events come back exactly as committed.
    for (b, c) in &blocks {
        let h = b.header().height;
        let stored = store.block(h).unwrap().unwrap();
        assert_eq!((&stored.block, &stored.certificate), (b, c));
        assert_eq!(store.height_of(&b.hash()).unwrap(), Some(h));
    }
    assert!(store.block(13).unwrap().is_none());
    assert_eq!(store.blocks(3, 4, usize::MAX).unwrap().len(), 4);
    assert_eq!(store.blocks(11, 10, 0).unwrap().len(), 1, "at least one block whatever the byte budget");
    let (b5, _) = &blocks[4];
    let id = kp_crypto::event_id(&b5.events()[2]);
    assert_eq!(store.event(&id).unwrap(), Some((Position { height: 5, index: 2 }, b5.events()[2].clone())));
    assert_eq!(store.event(&kp_domain::EventId([9; 32])).unwrap(), None);

    // Custody: issue (block 2; block 1 is empty), seal (3), receipt (4), in order, with block times.
    let first = w.certificate_number(2, 1);
    assert!(!w.voided(2, 1));
    let custody = store.custody(&first).unwrap();
    assert_eq!(custody.iter().map(|c| c.at.height).collect::<Vec<_>>(), vec![2, 3, 4]);
    assert_eq!(custody[2].block_time, Workload::time(4));
    let record = store.certificate(&first).unwrap().unwrap();
    assert_eq!(record.state, CertificateState::Received);
    assert_eq!(
        custody.iter().map(|c| kp_crypto::event_id(&c.envelope)).collect::<Vec<_>>(),
        record.history.iter().map(|s| s.event).collect::<Vec<_>>()
    );
    assert!(store.custody(&number("AA-99999999")).unwrap().is_empty());

    // Review queries: by participant and role over a period, paginated.
    let aa = ParticipantId::new("AA").unwrap();
    let all = store.certificates_of(aa, TradeRole::Exporter, Timestamp(0), Timestamp(u64::MAX), None, 1_000).unwrap();
    assert!(all.len() > 10 && all.windows(2).all(|p| p[0] < p[1]));
    assert!(all.iter().all(|(_, n)| n.as_str().starts_with("AA-")));
    let page1 = store.certificates_of(aa, TradeRole::Exporter, Timestamp(0), Timestamp(u64::MAX), None, 4).unwrap();
    let last = page1.last().unwrap();
    let page2 = store
        .certificates_of(aa, TradeRole::Exporter, Timestamp(0), Timestamp(u64::MAX), Some((last.0, &last.1)), 4)
        .unwrap();
    assert_eq!([page1.clone(), page2].concat(), all[..8].to_vec());
    let in_block_2 =
        store.certificates_of(aa, TradeRole::Exporter, Workload::time(2), Workload::time(3), None, 100).unwrap();
    assert!(!in_block_2.is_empty() && in_block_2.iter().all(|(t, _)| *t == Workload::time(2)));
    let imports =
        store.certificates_of(aa, TradeRole::Importer, Timestamp(0), Timestamp(u64::MAX), None, 1_000).unwrap();
    for (_, n) in &imports {
        assert_eq!(store.certificate(n).unwrap().unwrap().certificate.importer, aa);
    }
    // Awaiting receipt: exactly the certificates sealed in the last block (sealed, not yet received).
    let mut awaiting: Vec<CertificateNumber> = Vec::new();
    for code in common::codes(PARTICIPANTS) {
        let p = ParticipantId::new(&code).unwrap();
        for (n, sealed_at) in store.awaiting_receipt(p).unwrap() {
            let r = store.certificate(&n).unwrap().unwrap();
            assert_eq!(
                (r.state, r.certificate.importer, r.sealed.unwrap().sealed_at),
                (CertificateState::Sealed, p, sealed_at)
            );
            awaiting.push(n);
        }
    }
    let sealed_now = reopened.ledger().certificates().filter(|r| r.state == CertificateState::Sealed).count();
    assert_eq!(awaiting.len(), sealed_now);
    assert!(sealed_now > 0);
    assert_eq!(store.heights_between(Workload::time(4), Workload::time(7)).unwrap(), Some((4, 6)));
    assert_eq!(store.heights_between(Workload::time(40), Workload::time(50)).unwrap(), None);

    // The reopened application continues the chain.
    let mut store = store;
    let (b, c) = w.next_block(&mut reopened);
    store.commit(&b, &c, &mut reopened).unwrap();
    assert_eq!(store.head().height, 13);
}

fn commit_refuses_a_block_that_does_not_fit<E: Env>() {
    let env = E::new();
    let w = Workload::new(PARTICIPANTS, 2, 12);
    let (mut store, mut app, blocks) = filled(&env, &w, 3);
    let before = ledger_contents(&store);
    // A block already committed.
    let (b, c) = &blocks[1];
    assert!(matches!(store.commit(b, c, &mut app), Err(StoreError::NotNext { got: 2, head: 3 })));
    // A next block the ledger has not applied.
    let mut other = LedgerApp::new(&w.net.genesis).unwrap();
    for (b, c) in &blocks {
        kp_consensus::apply_committed(w.net.chain_id(), w.net.rule(), &mut other, b, c).unwrap();
    }
    let (b4, c4) = w.next_block(&mut other);
    assert!(matches!(store.commit(&b4, &c4, &mut app), Err(StoreError::LedgerMismatch(_))));
    assert_eq!(ledger_contents(&store), before, "a refused commit writes nothing");
}

fn pending_pool_survives_restarts_and_empties_on_commit<E: Env>() {
    let env = E::new();
    let w = Workload::new(PARTICIPANTS, 3, 12);
    let (mut store, mut app, _) = filled(&env, &w, 2);
    let next = w.events(3);
    let committed = store.block(2).unwrap().unwrap().block.events()[0].clone();
    let mut submitted = next.clone();
    submitted.push(next[0].clone());
    submitted.push(committed);
    let outcome = store.add_pending(&submitted).unwrap();
    assert!(outcome[..next.len()].iter().all(|s| *s == Submitted::Added));
    assert_eq!(outcome[next.len()], Submitted::AlreadyPending);
    assert_eq!(outcome[next.len() + 1], Submitted::AlreadyCommitted(Position { height: 2, index: 0 }));
    assert_eq!(store.add_pending(&next[..1]).unwrap(), vec![Submitted::AlreadyPending]);
    drop(store);

    let (mut store, mut reopened) = Store::open(env.backend(), &w.net.genesis).unwrap();
    assert_eq!(store.pending().unwrap(), next, "submission order survives a restart");
    assert_eq!(store.pending_len(), next.len());
    // Committing the block takes its events out of the pool in the same batch.
    let (b, c) = common::build_block(&w.net, &mut reopened, next[1..].to_vec(), Workload::time(3));
    store.commit(&b, &c, &mut reopened).unwrap();
    assert_eq!(store.pending().unwrap(), vec![next[0].clone()]);
    assert_eq!(store.pending_len(), 1);
    store.remove_pending(&[kp_crypto::event_id(&next[0])]).unwrap();
    assert!(store.pending().unwrap().is_empty());
    // An envelope over the event size limit is refused whole.
    let huge = vec![0u8; kp_domain::MAX_EVENT_BYTES + 1];
    assert_eq!(store.add_pending(&[huge]), Err(StoreError::TooLarge(kp_domain::MAX_EVENT_BYTES + 1)));
    assert!(store.pending().unwrap().is_empty());
    // A full pool refuses more, and stores nothing of the refused submission.
    store.set_pending_limit(3);
    let more = w.events(9);
    assert_eq!(store.add_pending(&more[..2]).unwrap().len(), 2);
    assert_eq!(store.add_pending(&more[2..6]), Err(StoreError::PoolFull(3)));
    assert_eq!(store.pending().unwrap(), more[..2].to_vec());
    let _ = &mut app;
}

fn consensus_records_survive_and_are_pruned_at_commit<E: Env>() {
    let env = E::new();
    let w = Workload::new(PARTICIPANTS, 4, 12);
    let (mut store, mut app, blocks) = filled(&env, &w, 2);
    let (b, c) = &blocks[1];
    let body = VoteBody { kind: VoteKind::Prevote, height: 3, round: 1, block_hash: Hash32([5; 32]) };
    // A lock at the open height (the store does not verify what the engine hands it).
    let lock = Certificate {
        body: VoteBody { block_hash: b.hash(), ..body },
        signatures: c.signatures.clone(),
        withheld: None,
    };
    let records = vec![Record::Voted(body), Record::Locked { block: b.clone(), certificate: lock }];
    store.persist_records(&records[..1]).unwrap();
    store.persist_records(&records[1..]).unwrap();
    let aa = ParticipantId::new("AA").unwrap();
    let vote = |h: u8| Vote {
        body: VoteBody { block_hash: Hash32([h; 32]), ..body },
        voter: aa,
        time: Timestamp(7),
        signature: Signature([1; 64]),
    };
    let evidence = Evidence::DoubleVote { first: vote(1), second: vote(2) };
    assert!(store.add_evidence(3, &evidence).unwrap());
    drop(store);

    let (mut store, mut reopened) = Store::open(env.backend(), &w.net.genesis).unwrap();
    assert_eq!(store.records().unwrap(), records);
    store.persist_records(&[Record::Voted(VoteBody { round: 2, ..body })]).unwrap();
    assert_eq!(
        store.records().unwrap(),
        vec![Record::Voted(VoteBody { round: 2, ..body }), records[1].clone()],
        "a prevote of a higher round replaces the lower one; the lock stays"
    );
    // One of a lower round than its slot holds is covered already: not written.
    store.persist_records(&records[..1]).unwrap();
    assert_eq!(store.records().unwrap()[0], Record::Voted(VoteBody { round: 2, ..body }));
    // A record of another height than the open one is an integrity error, and writes nothing.
    let stray = Record::Voted(VoteBody { height: 9, ..body });
    assert!(matches!(store.persist_records(&[stray]), Err(StoreError::Integrity { height: 3, .. })));
    assert_eq!(store.records().unwrap().len(), 2);
    let (b3, c3) = w.next_block(&mut reopened);
    store.commit(&b3, &c3, &mut reopened).unwrap();
    assert!(store.records().unwrap().is_empty());
    let left = entries(store.backend(), Cf::Consensus);
    assert_eq!(left, 0, "records of a committed height are pruned");
    assert_eq!(store.evidence(3).unwrap(), vec![evidence.clone()]);
    for _ in 0..kp_store::MAX_EVIDENCE_PER_HEIGHT {
        assert!(store.add_evidence(4, &evidence).unwrap());
    }
    assert!(!store.add_evidence(4, &evidence).unwrap(), "evidence per height is capped");
    let _ = &mut app;
}

fn another_chain_genesis_or_format_is_refused<E: Env>() {
    let env = E::new();
    let w = Workload::new(PARTICIPANTS, 5, 12);
    let (store, _, _) = filled(&env, &w, 2);
    drop(store);
    let other = common::net(PARTICIPANTS, 6);
    match Store::open(env.backend(), &other.genesis) {
        Err(StoreError::WrongChain { found, expected }) => {
            assert_eq!((found.as_str(), expected.as_str()), ("kp-test-5", "kp-test-6"));
        }
        other => panic!("expected WrongChain, got {other:?}"),
    }
    let mut same_name = common::net(PARTICIPANTS, 6).genesis;
    same_name.chain_id = w.net.genesis.chain_id.clone();
    assert!(matches!(Store::open(env.backend(), &same_name), Err(StoreError::WrongGenesis { .. })));
    let b = env.backend();
    let next = kp_store::STORE_FORMAT_VERSION + 1;
    poke(&b, Cf::Meta, b"format", |v| *v = next.to_be_bytes().to_vec());
    drop(b);
    let e = Store::open(env.backend(), &w.net.genesis).unwrap_err();
    assert_eq!(e, StoreError::FormatVersion { found: next, supported: kp_store::STORE_FORMAT_VERSION });
    assert!(e.to_string().contains("migration"), "{e}");

    // Data that is not a store at all.
    let env = E::new();
    let b = env.backend();
    let mut batch = Batch::default();
    batch.put(Cf::Events, b"stray".to_vec(), b"x".to_vec());
    b.write(batch, true).unwrap();
    drop(b);
    assert!(matches!(Store::open(env.backend(), &w.net.genesis), Err(StoreError::NotAStore(_))));
}

fn damage_is_found_with_its_height<E: Env>() {
    let w = Workload::new(PARTICIPANTS, 7, 15);
    let setup = || {
        let env = E::new();
        let (store, _, blocks) = filled(&env, &w, 8);
        drop(store);
        (env, blocks)
    };
    let at = |h: u64, i: u32| Position { height: h, index: i }.to_bytes();

    // A flipped byte in an event of block 3: verify names block 3 (open may or may not notice:
    // it checks the last block in full and rebuilds certificate records from their events).
    let (env, _) = setup();
    poke(&env.backend(), Cf::Events, &at(3, 1), |v| {
        let n = v.len();
        v[n / 2] ^= 0x10;
    });
    let (h, why) = integrity_height(&Store::verify(env.backend(), &w.net.genesis).unwrap_err());
    assert_eq!(h, 3, "{why}");
    assert!(why.contains("root"), "{why}");
    // ... and in the last block, open refuses to start.
    let (env, _) = setup();
    poke(&env.backend(), Cf::Events, &at(8, 0), |v| {
        let n = v.len();
        v[n - 3] ^= 1;
    });
    assert_eq!(integrity_height(&Store::open(env.backend(), &w.net.genesis).unwrap_err()).0, 8);

    // A damaged header breaks the hash chain, found at open at the damaged height.
    let (env, _) = setup();
    poke(&env.backend(), Cf::Headers, &5u64.to_be_bytes(), |v| {
        let n = v.len();
        v[n - 40] ^= 4;
    });
    let (h, why) = integrity_height(&Store::open(env.backend(), &w.net.genesis).unwrap_err());
    assert_eq!(h, 5, "{why}");

    // A missing event-index entry and a missing custody entry in block 4: verify names block 4.
    let (env, blocks) = setup();
    let id = kp_crypto::event_id(&blocks[3].0.events()[2]);
    remove(&env.backend(), Cf::EventIds, &id.0);
    let (h, why) = integrity_height(&Store::verify(env.backend(), &w.net.genesis).unwrap_err());
    assert_eq!(h, 4, "{why}");
    assert!(why.contains("event_ids") || why.contains("event index"), "{why}");
    let (env, _) = setup();
    let mut custody_key = None;
    env.backend()
        .scan(Cf::Custody, &[], &mut |k, _| {
            if Position::from_bytes(&k[k.len() - 12..]).unwrap().height == 4 {
                custody_key = Some(k.to_vec());
            }
            custody_key.is_none()
        })
        .unwrap();
    remove(&env.backend(), Cf::Custody, &custody_key.unwrap());
    // Open rebuilds certificate records from the custody index, so the state root covers it.
    let (h, why) = integrity_height(&Store::open(env.backend(), &w.net.genesis).unwrap_err());
    assert_eq!(h, 8, "{why}");
    assert!(why.contains("state root"), "{why}");
    let (h, why) = integrity_height(&Store::verify(env.backend(), &w.net.genesis).unwrap_err());
    assert_eq!(h, 4, "{why}");
    assert!(why.contains("custody") && why.contains("missing"), "{why}");
    // ... the same in the last block is found at open.
    let (env, blocks) = setup();
    remove(&env.backend(), Cf::EventIds, &kp_crypto::event_id(&blocks[7].0.events()[0]).0);
    let (h, why) = integrity_height(&Store::open(env.backend(), &w.net.genesis).unwrap_err());
    assert_eq!(h, 8);
    assert!(why.contains("event index"), "{why}");

    // A state record that no longer matches the state root: open refuses.
    let (env, _) = setup();
    poke(&env.backend(), Cf::State, b"mtime", |v| v[7] ^= 1);
    let (h, why) = integrity_height(&Store::open(env.backend(), &w.net.genesis).unwrap_err());
    assert_eq!(h, 8);
    assert!(why.contains("state root"), "{why}");
    // A state record that does not decode names its key.
    let (env, _) = setup();
    let n = w.certificate_number(2, 1);
    poke(&env.backend(), Cf::State, &kp_rules::certificate_record_key(&n), |v| {
        v.truncate(3);
    });
    let (_, why) = integrity_height(&Store::open(env.backend(), &w.net.genesis).unwrap_err());
    assert!(why.contains(n.as_str()) && why.contains("does not decode"), "{why}");
    // A signature in the last block's certificate, and one in an earlier block's.
    let (env, _) = setup();
    poke(&env.backend(), Cf::Certificates, &8u64.to_be_bytes(), |v| {
        let n = v.len();
        v[n - 1] ^= 1;
    });
    let (h, why) = integrity_height(&Store::open(env.backend(), &w.net.genesis).unwrap_err());
    assert_eq!(h, 8);
    assert!(why.contains("certificate"), "{why}");
    let (env, _) = setup();
    poke(&env.backend(), Cf::Certificates, &2u64.to_be_bytes(), |v| {
        let n = v.len();
        v[n - 1] ^= 1;
    });
    assert!(Store::open(env.backend(), &w.net.genesis).is_ok(), "open checks only the last certificate");
    let (h, why) = integrity_height(&Store::verify(env.backend(), &w.net.genesis).unwrap_err());
    assert_eq!(h, 2, "{why}");

    // A block stored above the head (as if a commit had been half written) is refused.
    let (env, blocks) = setup();
    let mut batch = Batch::default();
    batch.put(Cf::Headers, 9u64.to_be_bytes().to_vec(), blocks[0].0.header_bytes().to_vec());
    env.backend().write(batch, true).unwrap();
    let (h, _) = integrity_height(&Store::open(env.backend(), &w.net.genesis).unwrap_err());
    assert_eq!(h, 9);
}

/// An amendment that names another importer moves the certificate in the review index: the
/// first importer no longer lists it, the new one does, and awaits its receipt once sealed.
fn an_amendment_moves_the_certificate_to_its_new_importer<E: Env>() {
    use kp_domain::{CertificateAmended, EventPayload, Role, Text};
    let env = E::new();
    let w = Workload::new(PARTICIPANTS, 1, 6);
    let (mut store, mut app, mut blocks) = filled(&env, &w, 2);
    let (aa, ab, ac) =
        (ParticipantId::new("AA").unwrap(), ParticipantId::new("AB").unwrap(), ParticipantId::new("AC").unwrap());
    let issued = kp_testkit::certificate("AA-AMEND-1", "AA", "AB", Workload::time(3));
    let mut amended = issued.clone();
    amended.importer = ac;
    let exporter = w.net.key("AA", Role::Exporting);
    let steps = [
        EventPayload::CertificateIssued(issued),
        EventPayload::CertificateAmended(CertificateAmended {
            certificate: amended.clone(),
            reason: Text::new("consignee changed").unwrap(),
        }),
        EventPayload::ShipmentSealed(kp_testkit::seal("AA-AMEND-1", Workload::time(5))),
    ];
    for (i, payload) in steps.iter().enumerate() {
        let height = 3 + i as u64;
        let (b, c) =
            common::build_block(&w.net, &mut app, vec![w.net.envelope_with(exporter, payload)], Workload::time(height));
        store.commit(&b, &c, &mut app).unwrap();
        blocks.push((b, c));
    }
    let n = number("AA-AMEND-1");
    let all = |p, role| store.certificates_of(p, role, Timestamp(0), Timestamp(u64::MAX), None, 1_000).unwrap();
    assert!(all(aa, TradeRole::Exporter).iter().any(|(_, x)| *x == n));
    assert!(!all(ab, TradeRole::Importer).iter().any(|(_, x)| *x == n), "the first importer no longer lists it");
    assert_eq!(all(ac, TradeRole::Importer).iter().filter(|(_, x)| *x == n).count(), 1);
    assert_eq!(store.awaiting_receipt(ac).unwrap().iter().filter(|(x, _)| *x == n).count(), 1);
    assert!(!store.awaiting_receipt(ab).unwrap().iter().any(|(x, _)| *x == n));
    let record = store.certificate(&n).unwrap().unwrap();
    assert_eq!((record.revision, record.certificate.importer, record.history.len()), (1, ac, 3));

    let contents = ledger_contents(&store);
    assert_eq!(ledger_contents(&replay(&w.net, &blocks)), contents);
    drop(store);
    Store::verify(env.backend(), &w.net.genesis).unwrap();
    let (store, _) = Store::open(env.backend(), &w.net.genesis).unwrap();
    assert_eq!(ledger_contents(&store), contents);
}

/// A voter away for a day, or one flooded with `NewRound`s, votes in thousands of rounds of one
/// height: the records stay one per slot and the store never fails for them (it used to refuse
/// the 4,097th record with an error that stopped the node, again after every restart).
fn consensus_records_stay_bounded_over_thousands_of_rounds<E: Env>() {
    let env = E::new();
    let w = Workload::new(PARTICIPANTS, 4, 12);
    let (mut store, _app, blocks) = filled(&env, &w, 2);
    let (b, c) = &blocks[1];
    for round in 0..10_000u32 {
        let body = VoteBody { kind: VoteKind::Prevote, height: 3, round, block_hash: b.hash() };
        let lock = Certificate { body, signatures: c.signatures.clone(), withheld: None };
        let records = [
            Record::Voted(body),
            Record::Locked { block: b.clone(), certificate: lock },
            Record::Voted(VoteBody { kind: VoteKind::Precommit, ..body }),
        ];
        store.persist_records(&records).unwrap();
    }
    let kept = store.records().unwrap();
    assert_eq!(kept.len(), 3);
    assert!(kept.iter().all(|r| RecordSlot::of(r).2 == 9_999), "each slot keeps the highest round: {kept:?}");
    let stored = entries(store.backend(), Cf::Consensus);
    assert!(stored <= kp_store::MAX_RECORDS_PER_HEIGHT);
    drop(store);
    let (store, _) = Store::open(env.backend(), &w.net.genesis).unwrap();
    assert_eq!(store.records().unwrap(), kept);
}

/// A store written when every record had a key of its own (in order) is compacted to the slots
/// when it is opened, keeping the highest round of each.
fn records_in_the_earlier_layout_are_compacted_at_open<E: Env>() {
    let env = E::new();
    let w = Workload::new(PARTICIPANTS, 4, 12);
    let (store, _app, _) = filled(&env, &w, 2);
    drop(store);
    let vote = |kind, round| Record::Voted(VoteBody { kind, height: 3, round, block_hash: Hash32([7; 32]) });
    let old = [
        vote(VoteKind::Prevote, 0),
        vote(VoteKind::Precommit, 0),
        vote(VoteKind::Prevote, 1),
        vote(VoteKind::Prevote, 5),
        vote(VoteKind::Prevote, 3),
    ];
    let mut batch = Batch::default();
    for (seq, r) in old.iter().enumerate() {
        let mut key = 3u64.to_be_bytes().to_vec();
        key.extend_from_slice(&(seq as u32).to_be_bytes());
        batch.put(Cf::Consensus, key, kp_consensus::wire::encode_record(r));
    }
    env.backend().write(batch, true).unwrap();
    let (store, _) = Store::open(env.backend(), &w.net.genesis).unwrap();
    assert_eq!(store.records().unwrap(), vec![old[3].clone(), old[1].clone()]);
    let stored = entries(store.backend(), Cf::Consensus);
    assert_eq!(stored, 2, "the earlier keys are gone");
}

/// A snapshot answers the review queries at the head it was taken at, whatever is committed
/// after it, and the store commits while it is held.
fn a_snapshot_reads_one_head_while_blocks_commit<E: Env>() {
    let env = E::new();
    let w = Workload::new(PARTICIPANTS, 1, 30);
    let (mut store, mut app, _) = filled(&env, &w, 3);
    let aa = ParticipantId::new("AA").unwrap();
    let list = |r: kp_store::StateReader<'_>| {
        r.certificates_of(aa, TradeRole::Exporter, Timestamp(0), Timestamp(u64::MAX), None, 1_000).unwrap()
    };
    let first = w.certificate_number(2, 1);
    let snapshot = store.snapshot().unwrap();
    assert_eq!(snapshot.head(), store.head());
    let before = list(snapshot.reader());
    assert_eq!(before, list(store.reader()));
    let state_then = snapshot.reader().certificate(&first).unwrap().unwrap().state;
    assert_eq!(state_then, CertificateState::Sealed);
    for _ in 0..3 {
        let (b, c) = w.next_block(&mut app);
        store.commit(&b, &c, &mut app).unwrap();
    }
    let after = list(store.reader());
    assert!(after.len() > before.len(), "the workload issues more of AA's certificates");
    assert_eq!(list(snapshot.reader()), before, "the snapshot does not see later blocks");
    assert_eq!(snapshot.reader().certificate(&first).unwrap().unwrap().state, state_then);
    assert_eq!(snapshot.reader().custody(&first).unwrap().len(), 2);
    assert_eq!(store.certificate(&first).unwrap().unwrap().state, CertificateState::Received);
    assert_eq!(store.custody(&first).unwrap().len(), 3);
    // A later certificate is unknown to the snapshot, known to the store.
    let (_, late) = after.iter().find(|e| !before.contains(e)).unwrap();
    assert!(snapshot.reader().certificate(late).unwrap().is_none());
    assert!(store.certificate(late).unwrap().is_some());
    // The snapshot outlives the store it came from.
    drop(store);
    assert_eq!(list(snapshot.reader()), before);
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod in_memory {
            $( #[test] fn $name() { super::$name::<super::Mem>() } )*
        }
        mod rocksdb {
            $( #[test] fn $name() { super::$name::<super::Rocks>() } )*
        }
    };
}

suite!(
    commit_reopen_and_query,
    commit_refuses_a_block_that_does_not_fit,
    pending_pool_survives_restarts_and_empties_on_commit,
    consensus_records_survive_and_are_pruned_at_commit,
    consensus_records_stay_bounded_over_thousands_of_rounds,
    records_in_the_earlier_layout_are_compacted_at_open,
    another_chain_genesis_or_format_is_refused,
    damage_is_found_with_its_height,
    an_amendment_moves_the_certificate_to_its_new_importer,
    a_snapshot_reads_one_head_while_blocks_commit,
);
