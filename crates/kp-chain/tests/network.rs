//! The consensus engine and the real ledger together: N nodes on a seeded in-memory network
//! (random latency, virtual time) commit a custody workload. Each run prints its seed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

use kp_chain::LedgerApp;
use kp_consensus::block::Block;
use kp_consensus::{Config, Engine, Input, Message, Output, Record};
use kp_domain::{EventPayload, Hash32, ParticipantId, Role, Timestamp};
use kp_testkit::{TestNet, at, certificate, receipt, seal};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

struct Node {
    id: ParticipantId,
    engine: Engine,
    app: LedgerApp,
    timer: Option<(u64, u32, Timestamp)>,
    records: Vec<Record>,
    committed: Vec<Hash32>,
    missing_reports: Vec<(u64, u32, Vec<ParticipantId>)>,
}

struct Sim {
    seed: u64,
    rng: StdRng,
    now: Timestamp,
    nodes: Vec<Node>,
    /// (deliver at, sequence, to, from, message)
    queue: Vec<(u64, u64, usize, ParticipantId, Message)>,
    seq: u64,
    pool: Vec<Vec<u8>>,
    latency_ms: (u64, u64),
    down: Vec<bool>,
}

fn config() -> Config {
    Config { round_timeout_base_ms: 1_000, round_timeout_cap_ms: 30_000, block_time_bound_ms: 60_000, idle_block_ms: 0 }
}

impl Node {
    fn handle(&mut self, input: Input, now: Timestamp) -> Vec<Output> {
        self.engine.handle(input, now, &mut self.app)
    }
}

impl Sim {
    fn new(net: &TestNet, seed: u64) -> Sim {
        println!("simulation seed {seed}");
        let now = at(1, 0);
        let mut nodes = Vec::new();
        let mut outputs = Vec::new();
        for p in &net.genesis.participants {
            let mut app = LedgerApp::new(&net.genesis).unwrap();
            let key = kp_crypto::SecretKey::from_seed(&net.keys[&p.id].node.to_seed());
            let (engine, out) =
                Engine::new(config(), net.genesis.chain_id.clone(), p.id, key, vec![], now, &mut app).unwrap();
            outputs.push(out);
            nodes.push(Node {
                id: p.id,
                engine,
                app,
                timer: None,
                records: vec![],
                committed: vec![],
                missing_reports: vec![],
            });
        }
        let n = nodes.len();
        let mut sim = Sim {
            seed,
            rng: StdRng::seed_from_u64(seed),
            now,
            nodes,
            queue: vec![],
            seq: 0,
            pool: vec![],
            latency_ms: (1, 40),
            down: vec![false; n],
        };
        for (i, out) in outputs.into_iter().enumerate() {
            sim.carry_out(i, out);
        }
        sim
    }

    fn index(&self, id: ParticipantId) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }

    fn deliver_later(&mut self, to: usize, from: ParticipantId, message: Message) {
        let delay = self.rng.random_range(self.latency_ms.0..=self.latency_ms.1);
        self.seq += 1;
        self.queue.push((self.now.0 + delay, self.seq, to, from, message));
    }

    fn carry_out(&mut self, i: usize, outputs: Vec<Output>) {
        let from = self.nodes[i].id;
        for o in outputs {
            if std::env::var_os("KP_SIM_TRACE").is_some() {
                let brief = format!("{o:?}");
                println!("t={} {} -> {}", self.now.0 % 1_000_000, from, &brief[..brief.len().min(160)]);
            }
            match o {
                Output::Persist(r) => self.nodes[i].records.push(r),
                Output::Send { to, message } => {
                    let to = self.index(to);
                    self.deliver_later(to, from, message);
                }
                Output::Broadcast(message) => {
                    for to in 0..self.nodes.len() {
                        if to != i {
                            self.deliver_later(to, from, message.clone());
                        }
                    }
                }
                Output::SetTimer { height, round, at } => self.nodes[i].timer = Some((height, round, at)),
                Output::RequestEvents { height, round, .. } => {
                    let events: Vec<Vec<u8>> = self.pool.iter().take(100).cloned().collect();
                    let out = self.nodes[i].handle(Input::EventsReady { height, round, events }, self.now);
                    self.carry_out(i, out);
                }
                Output::Committed { block, .. } => self.committed(i, &block),
                Output::Missing { height, round, voters } => {
                    self.nodes[i].missing_reports.push((height, round, voters))
                }
                Output::Evidence(e) => panic!("seed {}: unexpected evidence {e:?}", self.seed),
                Output::Refused { from, reason } => {
                    panic!("seed {}: node {} refused a message of {from}: {reason}", self.seed, self.nodes[i].id)
                }
                Output::Behind { .. } => {}
            }
        }
    }

    fn committed(&mut self, i: usize, block: &Block) {
        self.nodes[i].committed.push(block.hash());
        self.pool.retain(|e| !block.events().contains(e));
    }

    /// Runs until every live node has committed `height`, or virtual time runs out.
    fn run_until(&mut self, height: usize, limit_ms: u64) -> bool {
        let end = self.now.0 + limit_ms;
        loop {
            let live: Vec<usize> = (0..self.nodes.len()).filter(|i| !self.down[*i]).collect();
            if live.iter().all(|i| self.nodes[*i].committed.len() >= height) {
                return true;
            }
            let next_msg = self.queue.iter().enumerate().min_by_key(|(_, m)| (m.0, m.1)).map(|(k, m)| (m.0, k));
            let next_timer = live.iter().filter_map(|i| self.nodes[*i].timer.map(|t| (t.2.0, *i))).min();
            let take_timer = match (next_msg, next_timer) {
                (None, None) => return false,
                (Some((t, _)), Some((tt, _))) => tt < t,
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            if take_timer {
                let (t, i) = next_timer.unwrap();
                self.now = Timestamp(self.now.0.max(t));
                let (height, round, _) = self.nodes[i].timer.take().unwrap();
                let out = self.nodes[i].handle(Input::Timeout { height, round }, self.now);
                self.carry_out(i, out);
            } else {
                let (t, k) = next_msg.unwrap();
                let (_, _, to, from, message) = self.queue.swap_remove(k);
                self.now = Timestamp(self.now.0.max(t));
                if self.down[to] {
                    continue;
                }
                let out = self.nodes[to].handle(Input::Message { from, message }, self.now);
                self.carry_out(to, out);
            }
            if self.now.0 > end {
                return false;
            }
        }
    }

    fn assert_agreement(&self) {
        let mut by_height: BTreeMap<usize, Hash32> = BTreeMap::new();
        for n in &self.nodes {
            for (h, hash) in n.committed.iter().enumerate() {
                let first = *by_height.entry(h).or_insert(*hash);
                assert_eq!(first, *hash, "seed {}: two blocks committed at height {}", self.seed, h + 1);
            }
        }
    }
}

fn workload(net: &TestNet, certificates: usize) -> Vec<Vec<u8>> {
    let codes: Vec<String> = net.genesis.participants.iter().map(|p| p.id.to_string()).collect();
    let mut events = vec![];
    for i in 0..certificates {
        let from = &codes[i % codes.len()];
        let to = &codes[(i + 1) % codes.len()];
        let c = certificate(&format!("{from}-{i}"), from, to, at(1, 0));
        events.push(net.envelope_with(net.key(from, Role::Exporting), &EventPayload::CertificateIssued(c.clone())));
        events.push(net.envelope_with(
            net.key(from, Role::Exporting),
            &EventPayload::ShipmentSealed(seal(&c.number.to_string(), at(1, 0))),
        ));
        events.push(
            net.envelope_with(net.key(to, Role::Importing), &EventPayload::ReceiptConfirmed(receipt(&c, at(1, 0)))),
        );
    }
    events
}

#[test]
fn four_nodes_commit_a_custody_workload_in_agreement() {
    for seed in 1..=5u64 {
        let net = TestNet::new(&["BW", "EU", "CA", "AE"], seed);
        let mut sim = Sim::new(&net, seed);
        let events = workload(&net, 20);
        sim.pool = events.clone();
        assert!(
            sim.run_until(5, 120_000),
            "seed {seed}: no progress (heights {:?})",
            sim.nodes.iter().map(|n| n.committed.len()).collect::<Vec<_>>()
        );
        // Keep going until the pool is empty.
        let mut h = 5;
        while !sim.pool.is_empty() && h < 40 {
            h += 1;
            assert!(sim.run_until(h, 120_000), "seed {seed}: stalled at height {h}");
        }
        sim.assert_agreement();
        assert!(sim.pool.is_empty(), "seed {seed}: {} events never committed", sim.pool.len());
        // Every event committed exactly once, on every node's ledger.
        for n in &sim.nodes {
            assert_eq!(n.app.ledger().events_applied(), events.len() as u64, "seed {seed}");
        }
        let roots: Vec<_> = sim.nodes.iter().map(|n| n.app.ledger().clone().state_root()).collect();
        assert!(roots.windows(2).all(|w| w[0] == w[1]), "seed {seed}: state roots differ");
    }
}

#[test]
fn a_missing_voter_halts_the_chain_and_is_named() {
    let seed = 11;
    let net = TestNet::new(&["BW", "EU", "CA", "AE"], seed);
    let mut sim = Sim::new(&net, seed);
    sim.pool = workload(&net, 2);
    assert!(sim.run_until(1, 60_000));
    let ca = sim.index(kp_testkit::pid("CA"));
    sim.down[ca] = true;
    let before: Vec<usize> = sim.nodes.iter().map(|n| n.committed.len()).collect();
    let target = before.iter().max().unwrap() + 2;
    assert!(!sim.run_until(target, 40_000), "seed {seed}: the chain advanced without CA");
    // Every live node has named CA as missing in some round.
    for (i, n) in sim.nodes.iter().enumerate() {
        if i != ca {
            assert!(
                n.missing_reports.iter().any(|(_, _, v)| v.contains(&kp_testkit::pid("CA"))),
                "seed {seed}: {} never reported CA missing: {:?}",
                n.id,
                n.missing_reports
            );
        }
    }
    // CA comes back: the chain resumes (CA's engine kept its state; it was only cut off).
    sim.down[ca] = false;
    sim.queue.retain(|m| m.2 != ca);
    assert!(sim.run_until(target, 200_000), "seed {seed}: the chain did not resume");
    sim.assert_agreement();
}

/// The block executed last stays applied for its commit, invisibly: the application still
/// answers for the committed state, executing another block first undoes it, and the state a
/// commit leaves is the state of a node that executed nothing else.
#[test]
fn an_executed_block_is_kept_for_its_commit_and_undone_for_another() {
    use kp_consensus::Application;
    use kp_consensus::block::{BlockHeader, Certificate, VoteBody, VoteKind, events_root};
    let net = TestNet::new(&["BW", "EU", "ZA"], 12);
    let t = at(2, 0);
    let issue = |n: &str, by: &str, to: &str| {
        net.envelope_with(net.key(by, Role::Exporting), &EventPayload::CertificateIssued(certificate(n, by, to, t)))
    };
    let a = vec![issue("BW-1", "BW", "EU"), issue("EU-1", "EU", "ZA")];
    let b = vec![issue("ZA-1", "ZA", "BW")];
    let mut app = LedgerApp::new(&net.genesis).unwrap();
    let genesis_root = app.ledger().clone().state_root();
    let voters = app.voters();

    // Executing A leaves it applied, but the application answers for the committed state.
    let xa = app.execute(t, &a).unwrap();
    assert!(app.has_executed());
    assert_eq!((app.height(), app.events_committed(), app.voters()), (0, 0, voters.clone()));
    assert_eq!(app.ledger().events_applied(), 2, "A is applied");
    assert_eq!(app.execute(t, &a).unwrap(), xa, "executing A again is the same execution");

    // Executing B undoes A first: B's execution is that of a node that never saw A.
    let xb = app.execute(t, &b).unwrap();
    let mut fresh = LedgerApp::new(&net.genesis).unwrap();
    assert_eq!(fresh.execute(t, &b).unwrap(), xb);
    assert_eq!(app.ledger().events_applied(), 1);
    // Settling leaves the committed state.
    assert_eq!(app.committed().clone().state_root(), genesis_root);
    assert!(!app.has_executed());

    // A committed block that is the one executed is kept as it is; one that is not (A, after B
    // was executed) is applied from scratch. Either way the state is the block's.
    let block = |events: &[Vec<u8>], x: &kp_consensus::Execution| {
        let header = BlockHeader {
            chain_id: net.genesis.chain_id.clone(),
            height: 1,
            round: 0,
            prev_hash: kp_proto::genesis_hash(&net.genesis),
            proposer: kp_testkit::pid("BW"),
            time: t,
            events_root: events_root(events),
            event_count: events.len() as u32,
            state_root: x.state_root,
            voters_hash: kp_consensus::block::voters_hash(&x.required),
        };
        Block::new(header, events.to_vec()).unwrap()
    };
    let certificate = |b: &Block| Certificate {
        body: VoteBody { kind: VoteKind::Precommit, height: 1, round: 0, block_hash: b.hash() },
        signatures: Vec::new(),
    };
    for executed_first in [&a, &b] {
        let mut app = LedgerApp::new(&net.genesis).unwrap();
        app.execute(t, executed_first).unwrap();
        let committed = block(&a, &xa);
        app.commit(&committed, &certificate(&committed));
        assert!(!app.has_executed());
        assert_eq!((app.height(), app.events_committed()), (1, 2));
        assert_eq!(app.ledger_mut().state_root(), xa.state_root);
        assert_eq!(app.ledger().tentative_depth(), 0);
    }
}
