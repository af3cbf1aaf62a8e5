//! Test and benchmark fixtures: a deterministic chain of real committed blocks (events signed
//! through the real encoder, headers with the executed state root, commit certificates signed
//! by every required voter's node key), and helpers to compare stores.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::cast_possible_truncation
)]

use kp_chain::LedgerApp;
use kp_consensus::Application;
use kp_consensus::block::{Block, BlockHeader, Certificate, VoteBody, VoteKind, VoteSignature, voters_hash};
use kp_crypto::Tag;
use kp_domain::{CertificateVoided, EventPayload, Role, Text, Timestamp};
use kp_store::{Backend, Cf, MemBackend, Store};
use kp_testkit::{TestNet, at, certificate, receipt, seal};

/// A benchmark's ledger from the environment: `KP_BENCH_EVENTS` (default 1,000,000),
/// `KP_BENCH_PARTICIPANTS` (default 59), `KP_BENCH_EVENTS_PER_BLOCK` (default 100), and the
/// directory `KP_BENCH_DIR` (default `fallback`).
pub fn bench_ledger(fallback: &std::path::Path) -> (u64, usize, usize, std::path::PathBuf) {
    let env_or = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    (
        env_or("KP_BENCH_EVENTS", 1_000_000),
        env_or("KP_BENCH_PARTICIPANTS", 59) as usize,
        env_or("KP_BENCH_EVENTS_PER_BLOCK", 100) as usize,
        std::env::var("KP_BENCH_DIR").map_or_else(|_| fallback.to_path_buf(), Into::into),
    )
}

/// Participant codes AA, AB, ... (two letters, as ids must be).
pub fn codes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{}{}", char::from(b'A' + (i / 26) as u8), char::from(b'A' + (i % 26) as u8))).collect()
}

pub fn net(participants: usize, seed: u64) -> TestNet {
    let c = codes(participants);
    let refs: Vec<&str> = c.iter().map(String::as_str).collect();
    TestNet::new(&refs, seed)
}

/// A deterministic custody workload, a pure function of the height: block `k` issues the
/// certificates of batch `k`, seals those of batch `k - 1` (every seventh is voided instead) and
/// confirms receipt of batch `k - 2`; batches start at 2, since block 1 carries no events (its
/// time is the genesis time + 1 ms). About `per_block` events per block.
#[derive(Debug)]
pub struct Workload {
    pub net: TestNet,
    codes: Vec<String>,
    /// Certificates issued per block.
    batch: usize,
}

impl Workload {
    pub fn new(participants: usize, seed: u64, per_block: usize) -> Workload {
        Workload { net: net(participants, seed), codes: codes(participants), batch: per_block.div_ceil(3).max(1) }
    }

    /// The time of block `height` from block 2 on: one second apart from a day after genesis
    /// (the time each block's commit certificate is signed at makes the next block's).
    pub fn time(height: u64) -> Timestamp {
        at(1, height * 1_000)
    }

    /// The number of the `j`-th certificate issued in block `k`.
    pub fn certificate_number(&self, k: u64, j: usize) -> kp_domain::CertificateNumber {
        self.certificate(k, j).0.number
    }

    /// Whether the `j`-th certificate issued in block `k` is voided instead of sealed.
    pub fn voided(&self, k: u64, j: usize) -> bool {
        self.certificate(k, j).1
    }

    /// The `j`-th certificate of the batch issued in block `k`, and whether it is voided.
    fn certificate(&self, k: u64, j: usize) -> (kp_domain::Certificate, bool) {
        let i = usize::try_from(k).unwrap() * self.batch + j;
        let n = self.codes.len();
        let from = &self.codes[i % n];
        let to = &self.codes[(i + 1 + (i / n) % (n - 1)) % n];
        (certificate(&format!("{from}-{i:08}"), from, to, Self::time(k)), i % 7 == 3)
    }

    /// The envelopes of block `height`.
    pub fn events(&self, height: u64) -> Vec<Vec<u8>> {
        let t = Self::time(height);
        let net = &self.net;
        let mut out = Vec::new();
        for j in 0..self.batch {
            if height > 3 {
                let (c, voided) = self.certificate(height - 2, j);
                if !voided {
                    let to = c.importer.as_str().to_owned();
                    out.push(
                        net.envelope_with(
                            net.key(&to, Role::Importing),
                            &EventPayload::ReceiptConfirmed(receipt(&c, t)),
                        ),
                    );
                }
            }
        }
        for j in 0..self.batch {
            if height > 2 {
                let (c, voided) = self.certificate(height - 1, j);
                let payload = if voided {
                    EventPayload::CertificateVoided(CertificateVoided {
                        certificate: c.number.clone(),
                        reason: Text::new("shipment cancelled").unwrap(),
                    })
                } else {
                    EventPayload::ShipmentSealed(seal(c.number.as_str(), t))
                };
                out.push(net.envelope_with(net.key(c.exporter.as_str(), Role::Exporting), &payload));
            }
        }
        for j in 0..self.batch {
            if height < 2 {
                break;
            }
            let (c, _) = self.certificate(height, j);
            out.push(
                net.envelope_with(net.key(c.exporter.as_str(), Role::Exporting), &EventPayload::CertificateIssued(c)),
            );
        }
        out
    }

    /// Builds the next block on `app` (which must be at the chain's head), commits it to `app`,
    /// and returns it with its commit certificate.
    pub fn next_block(&self, app: &mut LedgerApp) -> (Block, Certificate) {
        let height = app.height() + 1;
        build_block(&self.net, app, self.events(height), Self::time(height + 1))
    }
}

/// Executes `events` on `app` at the consensus time of its last commit, builds the block (with
/// that commit), signs its commit certificate with the node key of every required voter at
/// `next_time` (which makes the next block's time), and commits it to `app`.
pub fn build_block(
    net: &TestNet,
    app: &mut LedgerApp,
    events: Vec<Vec<u8>>,
    next_time: Timestamp,
) -> (Block, Certificate) {
    let last_commit = app.last_certificate().cloned();
    let time = kp_consensus::block::consensus_time(last_commit.as_ref(), app.last_block().1);
    let x = app.execute(time, &events).expect("workload block executes");
    let height = app.height() + 1;
    let header = BlockHeader {
        chain_id: net.chain_id().clone(),
        height,
        round: 0,
        prev_hash: app.last_block().0,
        last_commit_hash: last_commit.as_ref().map_or(kp_domain::Hash32::default(), |c| {
            kp_consensus::block::certificate_hash(&kp_consensus::wire::encode_certificate(c))
        }),
        proposer: x.required[usize::try_from(height).unwrap() % x.required.len()].0,
        time,
        events_root: kp_consensus::block::events_root(&events),
        event_count: u32::try_from(events.len()).unwrap(),
        state_root: x.state_root,
        voters_hash: voters_hash(&x.required),
    };
    let block = Block::new(header, events, last_commit).unwrap();
    let body = VoteBody { kind: VoteKind::Precommit, height, round: 0, block_hash: block.hash() };
    let signatures = x
        .required
        .iter()
        .map(|(id, _)| VoteSignature {
            voter: *id,
            time: next_time,
            signature: net.keys[id].node.sign(Tag::Vote, net.chain_id(), &body.signing_bytes(next_time)),
        })
        .collect();
    let certificate = Certificate { body, signatures, withheld: None };
    app.commit(&block, &certificate);
    (block, certificate)
}

/// Every entry of the column families a replay determines (all but the node-local pool,
/// consensus records and evidence).
pub fn ledger_contents<B: Backend>(store: &Store<B>) -> Vec<(Cf, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for cf in Cf::ALL {
        if matches!(cf, Cf::Pending | Cf::Consensus | Cf::Evidence) {
            continue;
        }
        store
            .backend()
            .scan(cf, &[], &mut |k, v| {
                out.push((cf, k.to_vec(), v.to_vec()));
                true
            })
            .unwrap();
    }
    out
}

/// A fresh in-memory store holding `blocks`, replayed through the consensus engine's own
/// check of committed blocks.
pub fn replay(net: &TestNet, blocks: &[(Block, Certificate)]) -> Store<MemBackend> {
    let (mut store, mut app) = Store::open(MemBackend::new(), &net.genesis).unwrap();
    for (b, c) in blocks {
        kp_consensus::apply_committed(net.chain_id(), net.rule(), &mut app, b, c).unwrap();
        store.commit(b, c, &mut app).unwrap();
    }
    store
}
