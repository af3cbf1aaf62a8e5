//! Deterministic simulation of the full-consensus network (issue 3).
//!
//! One seed drives everything: N real consensus engines (`kp-consensus`) over the real ledger
//! (`kp-chain`: edge and rules engine), virtual time, a simulated network carrying the real wire
//! bytes (latency, jitter, loss, duplication, delay spikes, partitions that heal), crashes that
//! lose every unsynced write and restart from what was durably persisted, catch-up that verifies
//! every certificate itself, and Byzantine nodes. After each run the checks of [`Report`] say
//! whether agreement, validity, liveness and accountability held; a run's trace digest makes
//! determinism checkable. Nothing here reads a clock or an unseeded random source.

#![allow(clippy::cast_possible_truncation)] // Node indices and counts are small.

mod byzantine;
pub mod scenario;

pub use scenario::{Behaviour, Crash, NetworkFaults, Partition, Scenario};

use kp_chain::{LedgerApp, PendingEvent, select_events};
use kp_consensus::wire::{self, CommittedBlock, MAX_SYNC_BLOCKS};
use kp_consensus::{Config, Engine, Evidence, Input, Message, Output, Record, Refusal, apply_committed};
use kp_crypto::SecretKey;
use kp_domain::{EventPayload, GovernanceAction, Hash32, ParticipantId, Role, Timestamp};
use kp_testkit::{TestNet, act, at, certificate, receipt, seal};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Most catch-up blocks sent in one answer.
const SYNC_BATCH: usize = 64;
/// How long a node waits for a catch-up answer before asking another peer.
const SYNC_RETRY_MS: u64 = 1_000;
/// Hard cap on processed simulation steps: a run never loops without end.
const MAX_STEPS: u64 = 20_000_000;

/// The engine configuration of simulated nodes.
pub fn engine_config() -> Config {
    Config {
        round_timeout_base_ms: 1_000,
        round_timeout_cap_ms: 30_000,
        block_time_bound_ms: 60_000,
        idle_block_ms: 2_000,
    }
}

/// Two-letter participant codes for `n` simulated participants (AA, AB, …).
pub fn participant_codes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{}{}", char::from(b'A' + (i / 26) as u8), char::from(b'A' + (i % 26) as u8))).collect()
}

/// What travels between simulated nodes. The bytes are shared: a broadcast is encoded once and
/// every receiver gets the same bytes, as from one send buffer.
#[derive(Debug, Clone)]
enum Payload {
    Consensus(Rc<[u8]>),
    SyncRequest(u64),
    SyncResponse(Rc<[u8]>),
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Consensus(b) | Payload::SyncResponse(b) => b.len(),
            Payload::SyncRequest(_) => 8,
        }
    }
}

#[derive(Debug)]
enum Event {
    Deliver {
        to: usize,
        from: usize,
        payload: Payload,
    },
    Timer {
        node: usize,
        generation: u64,
    },
    /// The deadline of a leader's request for events.
    EventsDue {
        node: usize,
        height: u64,
        round: u32,
    },
    Crash {
        node: usize,
        mid_step: bool,
    },
    Restart {
        node: usize,
    },
    Submit(Vec<Vec<u8>>),
    PartitionEnd(usize),
    FaultsEnd,
}

#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}
impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// What a node keeps on disk: committed blocks (with the state they imply) and the consensus
/// records that were synced.
#[derive(Debug, Default)]
struct Durable {
    blocks: Vec<CommittedBlock>,
    records: Vec<Record>,
}

#[derive(Debug)]
struct Node {
    id: ParticipantId,
    key_seed: [u8; 32],
    skew_ms: i64,
    up: bool,
    engine: Option<Engine>,
    app: LedgerApp,
    durable: Durable,
    unsynced: Vec<Record>,
    timer_generation: u64,
    pool: Vec<PendingEvent>,
    committed_ids: HashSet<kp_domain::EventId>,
    /// The engine's open request for events (height, round): answered when events arrive or at
    /// its deadline.
    wants_events: Option<(u64, u32)>,
    /// A crash armed to strike after this many outputs of the node's next step.
    crash_mid: Option<usize>,
    sync_until: u64,
    /// Every block this node ever reported committed: (height, hash), across restarts.
    commits: Vec<(u64, Hash32)>,
    missing_reports: Vec<(u64, u32, Vec<ParticipantId>)>,
    evidence: Vec<Evidence>,
    refusals: Vec<(usize, String, bool)>,
}

/// Counters of one run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Deliveries scheduled (a broadcast counts once per receiver), consensus and catch-up.
    pub messages: u64,
    pub bytes: u64,
    pub consensus_messages: u64,
    pub consensus_bytes: u64,
    pub dropped: u64,
    pub decode_errors: u64,
    pub crashes: u64,
    pub syncs_applied: u64,
    /// Wall-clock time spent in decoding, the engines and catch-up verification, all nodes.
    pub cpu: Duration,
    pub steps: u64,
}

/// The outcome of one run: what was committed and which checks failed.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub nodes: usize,
    pub kind: &'static str,
    /// Lowest and highest committed height over the nodes at the end.
    pub heights: (u64, u64),
    pub events_committed: u64,
    pub virtual_ms: u64,
    pub stats: Stats,
    pub digest: Hash32,
    /// Each failed check, with what shows it.
    pub violations: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The command that reruns this run.
    pub fn rerun(&self) -> String {
        let gov = if self.kind == "governance" { " --governance" } else { "" };
        format!("scripts/sim.sh --seed {} --nodes {}{gov}", self.seed, self.nodes)
    }
}

/// One simulated network.
#[derive(Debug)]
pub struct Sim {
    pub scenario: Scenario,
    net: TestNet,
    start: u64,
    now: u64,
    rng: StdRng,
    nodes: Vec<Node>,
    index: BTreeMap<ParticipantId, usize>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    held: Vec<(usize, usize, usize, Payload)>,
    faults_on: bool,
    /// Byzantine behaviour per node, while `faults_on` (or forced on, for governance).
    byzantine: BTreeMap<usize, Behaviour>,
    byzantine_forced: BTreeSet<usize>,
    /// Commit certificates kept back by commit-hiding nodes.
    hidden: BTreeMap<usize, kp_consensus::block::Certificate>,
    digest: Sha256,
    /// Print every output (KP_SIM_TRACE set).
    trace: bool,
    pub stats: Stats,
    violations: Vec<String>,
}

impl Sim {
    pub fn new(scenario: Scenario) -> Sim {
        let codes = participant_codes(scenario.nodes);
        let code_refs: Vec<&str> = codes.iter().map(String::as_str).collect();
        let net = TestNet::new(&code_refs, scenario.seed);
        let start = at(1, 0).0;
        let mut rng = StdRng::seed_from_u64(scenario.seed);
        let mut nodes = Vec::new();
        let mut index = BTreeMap::new();
        for (i, p) in net.genesis.participants.iter().enumerate() {
            let skew = scenario.clock_skew_ms as i64;
            index.insert(p.id, i);
            nodes.push(Node {
                id: p.id,
                key_seed: net.keys[&p.id].node.to_seed(),
                skew_ms: if skew > 0 { rng.random_range(-skew..=skew) } else { 0 },
                up: false,
                engine: None,
                app: LedgerApp::new(&net.genesis).unwrap_or_else(|e| unreachable(&e.to_string())),
                durable: Durable::default(),
                unsynced: vec![],
                timer_generation: 0,
                pool: vec![],
                committed_ids: HashSet::new(),
                wants_events: None,
                crash_mid: None,
                sync_until: 0,
                commits: vec![],
                missing_reports: vec![],
                evidence: vec![],
                refusals: vec![],
            });
        }
        let byzantine = scenario.byzantine.iter().copied().collect();
        let mut sim = Sim {
            scenario,
            net,
            start,
            now: start,
            rng,
            nodes,
            index,
            queue: BinaryHeap::new(),
            seq: 0,
            held: vec![],
            faults_on: true,
            byzantine,
            byzantine_forced: BTreeSet::new(),
            hidden: BTreeMap::new(),
            digest: Sha256::new(),
            trace: std::env::var_os("KP_SIM_TRACE").is_some(),
            stats: Stats::default(),
            violations: vec![],
        };
        for i in 0..sim.nodes.len() {
            sim.boot(i);
        }
        sim
    }

    pub fn net(&self) -> &TestNet {
        &self.net
    }

    fn schedule(&mut self, delay_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at: self.now + delay_ms, seq: self.seq, event }));
    }

    fn schedule_at(&mut self, at_ms: u64, event: Event) {
        let delay = (self.start + at_ms).saturating_sub(self.now);
        self.schedule(delay, event);
    }

    fn clock(&self, i: usize) -> Timestamp {
        Timestamp(self.now.saturating_add_signed(self.nodes[i].skew_ms))
    }

    fn key(&self, i: usize) -> SecretKey {
        SecretKey::from_seed(&self.nodes[i].key_seed)
    }

    fn violation(&mut self, what: String) {
        if self.violations.len() < 20 {
            self.violations.push(what);
        }
    }

    /// Starts (or restarts) node `i` from its durable state: the ledger replayed from its
    /// committed blocks, the engine restored from its synced records.
    fn boot(&mut self, i: usize) {
        let genesis = &self.net.genesis;
        let node = &mut self.nodes[i];
        node.app = LedgerApp::new(genesis).unwrap_or_else(|e| unreachable(&e.to_string()));
        for b in &node.durable.blocks {
            use kp_consensus::Application;
            node.app.commit(&b.block, &b.certificate);
        }
        node.unsynced.clear();
        node.crash_mid = None;
        node.up = true;
        node.sync_until = 0;
        self.start_engine(i);
    }

    /// Builds node `i`'s engine at the height after its ledger's last block, restored from the
    /// records it synced, and carries out what it asks first.
    fn start_engine(&mut self, i: usize) {
        let now = self.clock(i);
        let node = &mut self.nodes[i];
        let key = SecretKey::from_seed(&node.key_seed);
        let started = Instant::now();
        let result = Engine::new(
            engine_config(),
            self.net.genesis.chain_id.clone(),
            node.id,
            key,
            node.durable.records.clone(),
            now,
            &mut node.app,
        );
        self.stats.cpu += started.elapsed();
        match result {
            Ok((engine, out)) => {
                self.nodes[i].engine = Some(engine);
                self.carry_out(i, out);
            }
            Err(e) => unreachable(&format!("engine configuration refused: {e}")),
        }
    }

    fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if !node.up {
            return;
        }
        node.up = false;
        node.engine = None;
        node.unsynced.clear(); // Unsynced writes are lost.
        node.wants_events = None;
        node.timer_generation += 1;
        node.crash_mid = None;
        self.stats.crashes += 1;
        self.digest.update(b"crash");
        self.digest.update((i as u64).to_be_bytes());
    }

    fn sync_records(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let unsynced = std::mem::take(&mut node.unsynced);
        node.durable.records.extend(unsynced);
    }

    /// Hands `input` to node `i`'s engine and carries out what it asks.
    fn step(&mut self, i: usize, input: Input) {
        let now = self.clock(i);
        let node = &mut self.nodes[i];
        let Some(engine) = node.engine.as_mut() else { return };
        let started = Instant::now();
        let out = engine.handle(input, now, &mut node.app);
        self.stats.cpu += started.elapsed();
        self.carry_out(i, out);
    }

    fn carry_out(&mut self, i: usize, outputs: Vec<Output>) {
        let crash_after = self.nodes[i].crash_mid;
        for (k, o) in outputs.into_iter().enumerate() {
            if crash_after == Some(k) || !self.nodes[i].up {
                return self.crash(i);
            }
            self.digest_output(i, &o);
            if self.trace {
                let brief = format!("{o:?}");
                println!("t={} {} {}", self.now - self.start, self.nodes[i].id, &brief[..brief.len().min(220)]);
            }
            match o {
                Output::Persist(r) => self.nodes[i].unsynced.push(r),
                Output::Send { to, message } => {
                    self.sync_records(i);
                    if let Some(&to) = self.index.get(&to) {
                        self.transmit(i, Some(to), message);
                    }
                }
                Output::Broadcast(message) => {
                    self.sync_records(i);
                    self.transmit(i, None, message);
                }
                Output::SetTimer { at, .. } => {
                    let node = &mut self.nodes[i];
                    node.timer_generation += 1;
                    let generation = node.timer_generation;
                    let delay = at.0.saturating_sub(self.clock(i).0);
                    self.schedule(delay, Event::Timer { node: i, generation });
                }
                Output::RequestEvents { height, round, deadline } => {
                    self.nodes[i].wants_events = Some((height, round));
                    if self.nodes[i].pool.is_empty() {
                        let delay = deadline.0.saturating_sub(self.clock(i).0);
                        self.schedule(delay, Event::EventsDue { node: i, height, round });
                    } else {
                        self.answer_events(i);
                    }
                }
                Output::Committed { block, certificate } => {
                    self.sync_records(i);
                    self.record_commit(i, CommittedBlock { block, certificate });
                }
                Output::Evidence(e) => self.nodes[i].evidence.push(e),
                Output::Missing { height, round, voters } => {
                    self.nodes[i].missing_reports.push((height, round, voters));
                }
                Output::Refused { from, reason } => {
                    let from = self.index.get(&from).copied().unwrap_or(usize::MAX);
                    let excused = matches!(reason, Refusal::NotAVoter(_));
                    self.nodes[i].refusals.push((from, reason.to_string(), excused));
                }
                Output::Behind { .. } => self.request_sync(i),
            }
        }
        if crash_after.is_some() {
            self.crash(i);
        }
    }

    fn answer_events(&mut self, i: usize) {
        if let Some((height, round)) = self.nodes[i].wants_events.take() {
            let events = select_events(&self.nodes[i].pool, self.scenario.max_block_events);
            self.step(i, Input::EventsReady { height, round, events });
        }
    }

    /// A committed block, durable before anything else happens on the node.
    fn record_commit(&mut self, i: usize, cb: CommittedBlock) {
        let node = &mut self.nodes[i];
        let height = cb.block.header().height;
        node.commits.push((height, cb.block.hash()));
        let ids: HashSet<_> = cb.block.events().iter().map(|e| kp_crypto::event_id(e)).collect();
        node.pool.retain(|p| !ids.contains(&p.id));
        node.committed_ids.extend(ids);
        node.durable.records.retain(|r| match r {
            Record::Voted(v) => v.height > height,
            Record::Locked { certificate, .. } => certificate.body.height > height,
            Record::Proposed(p) => p.height > height,
        });
        node.durable.blocks.push(cb);
    }

    fn request_sync(&mut self, i: usize) {
        if self.nodes[i].sync_until > self.now || self.nodes.len() < 2 {
            return;
        }
        self.nodes[i].sync_until = self.now + SYNC_RETRY_MS;
        let mut peer = self.rng.random_range(0..self.nodes.len() - 1);
        if peer >= i {
            peer += 1;
        }
        let from = self.nodes[i].app_height() + 1;
        self.send(i, peer, Payload::SyncRequest(from));
    }

    fn on_sync_request(&mut self, i: usize, from: usize, height: u64) {
        let blocks = &self.nodes[i].durable.blocks;
        let start = usize::try_from(height.saturating_sub(1)).unwrap_or(usize::MAX);
        if start >= blocks.len() {
            return;
        }
        let end = (start + SYNC_BATCH.min(MAX_SYNC_BLOCKS)).min(blocks.len());
        let bytes = wire::encode_blocks(&blocks[start..end]);
        self.send(i, from, Payload::SyncResponse(bytes.into()));
    }

    fn on_sync_response(&mut self, i: usize, from: usize, bytes: &[u8]) {
        self.nodes[i].sync_until = 0;
        let started = Instant::now();
        let blocks = match wire::decode_blocks(bytes) {
            Ok(b) => b,
            Err(e) => {
                self.stats.cpu += started.elapsed();
                self.stats.decode_errors += 1;
                self.nodes[i].refusals.push((from, format!("catch-up batch: {e}"), false));
                return;
            }
        };
        let full = blocks.len() >= SYNC_BATCH;
        let mut applied = 0;
        for cb in blocks {
            let node = &mut self.nodes[i];
            if cb.block.header().height <= node.app_height() {
                continue;
            }
            let chain_id = self.net.genesis.chain_id.clone();
            match apply_committed(&chain_id, &mut node.app, &cb.block, &cb.certificate) {
                Ok(()) => {
                    self.record_commit(i, cb);
                    applied += 1;
                }
                Err(e) => {
                    node.refusals.push((from, format!("catch-up block: {e}"), false));
                    break;
                }
            }
        }
        self.stats.cpu += started.elapsed();
        if applied > 0 {
            self.stats.syncs_applied += applied;
            // The engine starts again at the new height, with the records it persisted.
            self.start_engine(i);
            if full {
                self.request_sync(i);
            }
        }
    }

    /// Sends a consensus message from node `i` (to one node, or to all others), through the
    /// node's Byzantine behaviour if it has one now.
    fn behaviour(&self, i: usize) -> Option<Behaviour> {
        self.byzantine.get(&i).copied().filter(|_| self.faults_on || self.byzantine_forced.contains(&i))
    }

    fn transmit(&mut self, i: usize, to: Option<usize>, message: Message) {
        let sends = match self.behaviour(i) {
            Some(b) => byzantine::rewrite(self, i, b, to, message),
            None => vec![(to, wire::encode_message(&message))],
        };
        self.send_all(i, sends);
    }

    fn send_all(&mut self, i: usize, sends: byzantine::Sends) {
        for (to, bytes) in sends {
            let bytes: Rc<[u8]> = bytes.into();
            match to {
                Some(to) => self.send(i, to, Payload::Consensus(bytes)),
                None => {
                    for to in 0..self.nodes.len() {
                        if to != i {
                            self.send(i, to, Payload::Consensus(bytes.clone()));
                        }
                    }
                }
            }
        }
    }

    fn cut(&self, a: usize, b: usize) -> Option<(usize, bool)> {
        if !self.faults_on {
            return None;
        }
        let t = self.now - self.start;
        self.scenario.partitions.iter().enumerate().find_map(|(k, p)| {
            let active = p.start_ms <= t && t < p.end_ms;
            (active && p.side.contains(&a) != p.side.contains(&b)).then_some((k, p.hold))
        })
    }

    fn send(&mut self, from: usize, to: usize, payload: Payload) {
        self.stats.messages += 1;
        self.stats.bytes += payload.len() as u64;
        if matches!(payload, Payload::Consensus(_)) {
            self.stats.consensus_messages += 1;
            self.stats.consensus_bytes += payload.len() as u64;
        }
        if let Some((k, hold)) = self.cut(from, to) {
            if hold {
                self.held.push((k, to, from, payload));
            } else {
                self.stats.dropped += 1;
            }
            return;
        }
        let net = self.scenario.net;
        let faulty = self.faults_on;
        if faulty && self.rng.random_range(0..1000) < net.loss_permille {
            self.stats.dropped += 1;
            return;
        }
        let copies = if faulty && self.rng.random_range(0..1000) < net.duplicate_permille { 2 } else { 1 };
        for _ in 0..copies {
            let mut delay = self.rng.random_range(net.latency_ms.0..=net.latency_ms.1);
            if faulty && net.spike_ms > 0 && self.rng.random_range(0..1000) < net.spike_permille {
                delay += self.rng.random_range(0..=net.spike_ms);
            }
            self.schedule(delay, Event::Deliver { to, from, payload: payload.clone() });
        }
    }

    fn deliver(&mut self, to: usize, from: usize, payload: Payload) {
        if !self.nodes[to].up {
            return;
        }
        match payload {
            Payload::Consensus(bytes) => {
                self.digest.update(kp_crypto::sha256(&bytes).0);
                let started = Instant::now();
                let decoded = wire::decode_message(&bytes);
                self.stats.cpu += started.elapsed();
                match decoded {
                    Ok(message) => {
                        if self.behaviour(to) == Some(Behaviour::HideCommit) {
                            let sends = byzantine::observe(self, to, &message);
                            self.send_all(to, sends);
                        }
                        let from = self.nodes[from].id;
                        self.step(to, Input::Message { from, message });
                    }
                    Err(e) => {
                        self.stats.decode_errors += 1;
                        self.nodes[to].refusals.push((from, format!("undecodable message: {e}"), false));
                    }
                }
            }
            Payload::SyncRequest(h) => self.on_sync_request(to, from, h),
            Payload::SyncResponse(bytes) => self.on_sync_response(to, from, &bytes),
        }
    }

    fn digest_output(&mut self, i: usize, o: &Output) {
        let now = self.now;
        let d = &mut self.digest;
        d.update(now.to_be_bytes());
        d.update((i as u64).to_be_bytes());
        match o {
            Output::Persist(Record::Voted(v)) => d.update(v.signing_bytes()),
            Output::Persist(Record::Locked { block, .. }) => d.update(block.hash().0),
            Output::Persist(Record::Proposed(p)) => d.update(p.block.hash().0),
            Output::Committed { block, .. } => d.update(block.hash().0),
            Output::SetTimer { height, round, at } => {
                d.update(height.to_be_bytes());
                d.update(round.to_be_bytes());
                d.update(at.0.to_be_bytes());
            }
            other => d.update([output_kind(other)]),
        }
    }

    /// Processes scheduled events up to `until` (absolute virtual time) or until `done` holds.
    fn run_until(&mut self, until: u64, done: &dyn Fn(&Sim) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let Some(Reverse(next)) = self.queue.peek() else { return false };
            if next.at > until || self.stats.steps >= MAX_STEPS {
                self.now = self.now.max(until);
                return done(self);
            }
            let Some(Reverse(s)) = self.queue.pop() else { return false };
            self.now = self.now.max(s.at);
            self.stats.steps += 1;
            self.process(s.event);
        }
    }

    fn process(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, payload } => self.deliver(to, from, payload),
            Event::Timer { node, generation } => {
                let n = &self.nodes[node];
                if n.up && n.timer_generation == generation {
                    if let Some(e) = &n.engine {
                        let (height, round) = (e.height(), e.round());
                        self.step(node, Input::Timeout { height, round });
                    }
                }
            }
            Event::EventsDue { node, height, round } => {
                if self.nodes[node].up && self.nodes[node].wants_events == Some((height, round)) {
                    self.answer_events(node);
                }
            }
            Event::Crash { node, mid_step } => {
                if mid_step && self.nodes[node].up {
                    let k = self.rng.random_range(0..4);
                    self.nodes[node].crash_mid = Some(k);
                } else {
                    self.crash(node);
                }
            }
            Event::Restart { node } => {
                if self.nodes[node].up && self.nodes[node].crash_mid.is_some() {
                    self.crash(node);
                }
                if !self.nodes[node].up {
                    self.boot(node);
                }
            }
            Event::Submit(envelopes) => {
                for e in envelopes {
                    let pending = PendingEvent::new(e);
                    for n in &mut self.nodes {
                        if !n.committed_ids.contains(&pending.id) && !n.pool.iter().any(|p| p.id == pending.id) {
                            n.pool.push(pending.clone());
                        }
                    }
                }
                for i in 0..self.nodes.len() {
                    if self.nodes[i].up && self.nodes[i].wants_events.is_some() && !self.nodes[i].pool.is_empty() {
                        self.answer_events(i);
                    }
                }
            }
            Event::PartitionEnd(k) => {
                let held: Vec<_> = self.held.iter().filter(|h| h.0 == k).cloned().collect();
                self.held.retain(|h| h.0 != k);
                for (_, to, from, payload) in held {
                    let delay = self.rng.random_range(1..=50);
                    self.schedule(delay, Event::Deliver { to, from, payload });
                }
            }
            Event::FaultsEnd => {
                self.faults_on = false;
                for k in 0..self.scenario.partitions.len() {
                    self.process(Event::PartitionEnd(k));
                }
                for i in 0..self.nodes.len() {
                    if self.nodes[i].crash_mid.is_some() {
                        self.crash(i);
                    }
                    if !self.nodes[i].up {
                        self.boot(i);
                    }
                }
            }
        }
    }

    /// The custody workload: for each certificate, issue, seal and receipt (submitted together,
    /// in order, to every node's pool), between participants `codes[k]` and `codes[k + 1]`.
    fn workload(&self, certificates: usize, codes: &[String], tag: &str) -> Vec<Vec<Vec<u8>>> {
        let net = &self.net;
        (0..certificates)
            .map(|k| {
                let from = &codes[k % codes.len()];
                let to = &codes[(k + 1) % codes.len()];
                let c = certificate(&format!("{from}-{tag}{k}"), from, to, at(1, 0));
                let number = c.number.to_string();
                vec![
                    net.envelope_with(net.key(from, Role::Exporting), &EventPayload::CertificateIssued(c.clone())),
                    net.envelope_with(
                        net.key(from, Role::Exporting),
                        &EventPayload::ShipmentSealed(seal(&number, at(1, 0))),
                    ),
                    net.envelope_with(
                        net.key(to, Role::Importing),
                        &EventPayload::ReceiptConfirmed(receipt(&c, at(1, 0))),
                    ),
                ]
            })
            .collect()
    }

    fn heights(&self) -> (u64, u64) {
        let hs = self.nodes.iter().map(Node::app_height);
        (hs.clone().min().unwrap_or(0), hs.max().unwrap_or(0))
    }

    /// Committed events leave a node's pool when it records the commit.
    fn pools_empty(&self) -> bool {
        self.nodes.iter().all(|n| n.pool.is_empty())
    }

    /// Agreement (one block per height over every commit any node ever reported), validity (the
    /// longest durable chain replays from genesis through the edge, the rules and every
    /// certificate check), and accountability (evidence and refusals only name Byzantine nodes).
    fn check(&mut self) {
        let mut by_height: BTreeMap<u64, (Hash32, usize)> = BTreeMap::new();
        let mut conflicts = vec![];
        for (i, n) in self.nodes.iter().enumerate() {
            for (h, hash) in &n.commits {
                let first = *by_height.entry(*h).or_insert((*hash, i));
                if first.0 != *hash {
                    conflicts.push(format!(
                        "agreement: height {h}: {} committed {} but {} committed {}",
                        self.nodes[first.1].id,
                        first.0.short(),
                        n.id,
                        hash.short()
                    ));
                }
            }
        }
        for c in conflicts {
            self.violation(c);
        }
        // Validity: replay the longest durable chain on a fresh ledger.
        let longest = (0..self.nodes.len()).max_by_key(|i| self.nodes[*i].durable.blocks.len()).unwrap_or(0);
        let mut app = LedgerApp::new(&self.net.genesis).unwrap_or_else(|e| unreachable(&e.to_string()));
        let chain_id = self.net.genesis.chain_id.clone();
        let mut invalid = None;
        for cb in &self.nodes[longest].durable.blocks {
            if let Err(e) = apply_committed(&chain_id, &mut app, &cb.block, &cb.certificate) {
                invalid = Some(format!("validity: block {} does not replay: {e}", cb.block.header().height));
                break;
            }
        }
        if let Some(v) = invalid {
            self.violation(v);
        }
        for i in 0..self.nodes.len() {
            let blocks = &self.nodes[i].durable.blocks;
            let gaps = blocks.iter().enumerate().any(|(k, b)| b.block.header().height != k as u64 + 1);
            if gaps {
                let id = self.nodes[i].id;
                self.violation(format!("durability: {id}'s stored chain has a gap"));
            }
        }
        // Accountability.
        let mut wrong = vec![];
        for n in &self.nodes {
            for e in &n.evidence {
                let accused = match e {
                    Evidence::DoubleProposal { first, .. } => first.proposer,
                    Evidence::DoubleVote { first, .. } => first.voter,
                };
                let idx = self.index.get(&accused).copied().unwrap_or(usize::MAX);
                if !self.byzantine.contains_key(&idx) {
                    wrong.push(format!("accountability: {} holds evidence against honest {accused}", n.id));
                }
            }
            for (from, reason, excused) in &n.refusals {
                if !excused && !self.byzantine.contains_key(from) {
                    let sender = self.nodes.get(*from).map_or_else(|| "?".to_owned(), |s| s.id.to_string());
                    wrong.push(format!("accountability: {} refused honest {sender}: {reason}", n.id));
                }
            }
        }
        for w in wrong {
            self.violation(w);
        }
    }

    fn report(mut self, kind: &'static str) -> Report {
        self.check();
        let events_committed = self.nodes.iter().map(|n| n.app.events_committed()).max().unwrap_or(0);
        let digest = Hash32(self.digest.clone().finalize().into());
        Report {
            seed: self.scenario.seed,
            nodes: self.scenario.nodes,
            kind,
            heights: self.heights(),
            events_committed,
            virtual_ms: self.now - self.start,
            stats: self.stats.clone(),
            digest,
            violations: self.violations,
        }
    }
}

impl Node {
    /// One line on where the node stands, for failure reports.
    fn describe(&self) -> String {
        let (h, r) = self.engine.as_ref().map_or((0, 0), |e| (e.height(), e.round()));
        let last = self.missing_reports.last().map(|m| format!("{}/{}:{:?}", m.0, m.1, m.2)).unwrap_or_default();
        let refused = self.refusals.last().map(|r| r.1.clone()).unwrap_or_default();
        format!(
            "{} up={} at {h}/{r} pool {} last missing {last} last refusal {refused}",
            self.id,
            self.up,
            self.pool.len()
        )
    }

    fn app_height(&self) -> u64 {
        use kp_consensus::Application;
        self.app.height()
    }
}

fn output_kind(o: &Output) -> u8 {
    match o {
        Output::Persist(_) => 1,
        Output::Send { .. } => 2,
        Output::Broadcast(_) => 3,
        Output::SetTimer { .. } => 4,
        Output::RequestEvents { .. } => 5,
        Output::Committed { .. } => 6,
        Output::Evidence(_) => 7,
        Output::Missing { .. } => 8,
        Output::Refused { .. } => 9,
        Output::Behind { .. } => 10,
    }
}

/// An internal invariant of the simulator itself failed: the run cannot mean anything.
fn unreachable(what: &str) -> ! {
    // Only the simulator's own fixtures reach this (a test genesis that does not load).
    #[allow(clippy::panic)]
    {
        panic!("simulator invariant: {what}")
    }
}

/// Runs a fault scenario: faults during `faults_end_ms`, then every fault stops and the chain
/// must advance `liveness_heights` and commit every submitted event within the bound.
pub fn run(scenario: Scenario) -> Report {
    let mut sim = Sim::new(scenario);
    let sc = sim.scenario.clone();
    let codes = participant_codes(sc.nodes);
    let batches = sim.workload(sc.certificates, &codes, "W");
    let spacing = sc.faults_end_ms / (batches.len() as u64 + 1);
    for (k, batch) in batches.into_iter().enumerate() {
        sim.schedule_at(spacing * (k as u64), Event::Submit(batch));
    }
    for (k, p) in sc.partitions.iter().enumerate() {
        sim.schedule_at(p.end_ms, Event::PartitionEnd(k));
    }
    for c in &sc.crashes {
        sim.schedule_at(c.at_ms, Event::Crash { node: c.node, mid_step: c.mid_step });
        sim.schedule_at(c.restart_ms, Event::Restart { node: c.node });
    }
    sim.schedule_at(sc.faults_end_ms, Event::FaultsEnd);
    let fault_end = sim.start + sc.faults_end_ms;
    sim.run_until(fault_end, &|_| false);
    let (_, top) = sim.heights();
    let target = top + sc.liveness_heights;
    let deadline = sim.now + sc.liveness_bound_ms;
    let live = sim.run_until(deadline, &|s| s.heights().0 >= target && s.pools_empty());
    if !live {
        let heights: Vec<String> = sim.nodes.iter().map(|n| format!("{}:{}", n.id, n.app_height())).collect();
        let pending = sim.nodes.iter().map(|n| n.pool.len()).max().unwrap_or(0);
        let missing = sim.nodes.iter().rev().find_map(|n| n.missing_reports.last()).cloned();
        sim.violation(format!(
            "liveness: {} ms after the faults ended, not every node reached height {target} with every \
             event committed (heights {}; up to {pending} events pending; last missing report {missing:?})",
            sc.liveness_bound_ms,
            heights.join(" ")
        ));
    }
    sim.report("faults")
}

/// The consensus-minus-one path end to end: one participant withholds every vote and holds the
/// chain; the others suspend it with an act approved by all of them and continue without it;
/// it is readmitted, catches up and votes again.
pub fn run_governance(seed: u64, nodes: usize) -> Report {
    let mut sc = Scenario::calm(seed, nodes);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x676f_7665_726e);
    let x = rng.random_range(0..nodes);
    sc.byzantine = vec![(x, Behaviour::Withhold)];
    sc.net.loss_permille = 5;
    let mut sim = Sim::new(sc);
    sim.byzantine_forced.insert(x);
    sim.faults_on = false;
    let codes = participant_codes(nodes);
    let xid = sim.nodes[x].id;
    let xcode = xid.to_string();
    let others: Vec<String> = codes.iter().filter(|c| **c != xcode).cloned().collect();
    let step_bound = 240_000;

    // The withholding participant holds the chain: nothing commits, and it is named.
    for batch in sim.workload(2, &others, "A") {
        sim.schedule(0, Event::Submit(batch));
    }
    let halted = !sim.run_until(sim.now + 15_000, &|s| s.heights().1 >= 1);
    if !halted {
        sim.violation("governance: a block committed without the withholding voter".into());
    }
    let named = (0..nodes).filter(|i| *i != x).all(|i| sim.nodes[i].missing_reports.iter().any(|r| r.2.contains(&xid)));
    if !named {
        sim.violation(format!("governance: not every node named {xid} as missing"));
    }

    // Suspension, approved by every other participant: committed without X.
    let proposer = &others[0];
    let suspend = act("KP/2026/SUSPEND", GovernanceAction::Suspend { participant: xid });
    let envelope = sim.net.governance_envelope(proposer, &suspend, &others);
    sim.schedule(0, Event::Submit(vec![envelope]));
    let suspended = |s: &Sim| {
        // The committed state's voters (a suspension executed but not committed does not count).
        s.nodes.iter().all(|n| !kp_consensus::Application::voters(&n.app).iter().any(|(id, _)| *id == xid))
    };
    if !sim.run_until(sim.now + step_bound, &suspended) {
        let state: Vec<String> = sim.nodes.iter().map(Node::describe).collect();
        sim.violation(format!("governance: {xid} was not suspended on every node: {}", state.join("; ")));
        return sim.report("governance");
    }
    let honest = (x + 1) % nodes;
    let signed_without_x = sim.nodes[honest]
        .durable
        .blocks
        .iter()
        .any(|b| b.block.events().len() == 1 && !b.certificate.signatures.iter().any(|(id, _)| *id == xid));
    if !signed_without_x {
        sim.violation("governance: no block was committed without the suspended voter's signature".into());
    }
    // The others continue without X.
    let before = sim.heights().0;
    for batch in sim.workload(3, &others, "B") {
        sim.schedule(0, Event::Submit(batch));
    }
    if !sim.run_until(sim.now + step_bound, &|s| s.heights().0 >= before + 2 && s.pools_empty()) {
        sim.violation(format!("governance: the chain did not continue without {xid} ({:?})", sim.heights()));
    }

    // X comes back to honest behaviour and is readmitted by every voter.
    sim.byzantine_forced.clear();
    sim.byzantine.clear();
    let readmit = act("KP/2026/READMIT", GovernanceAction::Readmit { participant: xid });
    let envelope = sim.net.governance_envelope(proposer, &readmit, &others);
    sim.schedule(0, Event::Submit(vec![envelope]));
    let active =
        |s: &Sim| s.nodes.iter().all(|n| kp_consensus::Application::voters(&n.app).iter().any(|(id, _)| *id == xid));
    if !sim.run_until(sim.now + step_bound, &active) {
        sim.violation(format!("governance: {xid} was not readmitted on every node ({:?})", sim.heights()));
        return sim.report("governance");
    }
    // It votes again: a later block carries its signature, trading with it included.
    let readmitted_at = sim.heights().0;
    for batch in sim.workload(2, &codes, "C") {
        sim.schedule(0, Event::Submit(batch));
    }
    let votes_again = move |s: &Sim| {
        s.pools_empty()
            && s.nodes.iter().all(|n| {
                n.durable.blocks.iter().any(|b| {
                    b.block.header().height > readmitted_at && b.certificate.signatures.iter().any(|(id, _)| *id == xid)
                })
            })
    };
    if !sim.run_until(sim.now + step_bound, &votes_again) {
        sim.violation(format!("governance: readmitted {xid} does not vote again ({:?})", sim.heights()));
    }
    sim.report("governance")
}

/// Figures of a fault-free run for the benchmark.
#[derive(Debug, Clone)]
pub struct BenchFigures {
    pub nodes: usize,
    pub blocks: u64,
    pub events: u64,
    pub cpu_ms_per_block: f64,
    pub messages_per_block: f64,
    pub bytes_per_block: f64,
    pub virtual_ms_per_block: f64,
}

/// A fault-free network committing `blocks` blocks of up to `events_per_block` custody events:
/// CPU time of every node's decoding, engine (consensus, re-execution, certificate checks), and
/// messages and bytes per committed block.
#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
pub fn bench(seed: u64, nodes: usize, blocks: u64, events_per_block: usize) -> BenchFigures {
    let mut sc = Scenario::calm(seed, nodes);
    sc.clock_skew_ms = 0;
    sc.max_block_events = events_per_block.max(1);
    let mut sim = Sim::new(sc);
    sim.faults_on = false;
    let codes = participant_codes(nodes);
    let certs = (events_per_block * blocks as usize).div_ceil(3);
    if events_per_block > 0 {
        let all: Vec<Vec<u8>> = sim.workload(certs, &codes, "X").into_iter().flatten().collect();
        sim.schedule(0, Event::Submit(all));
    }
    // Let the first block settle, then measure.
    sim.run_until(sim.now + 600_000, &|s| s.heights().0 >= 1);
    let (h0, s0, t0) = (sim.heights().0, sim.stats.clone(), sim.now);
    sim.run_until(sim.now + 3_600_000, &|s| s.heights().0 >= h0 + blocks);
    let h1 = sim.heights().0;
    let committed = (h1 - h0).max(1);
    let events = sim.nodes[0].app.events_committed();
    let per = |x: f64| x / committed as f64;
    BenchFigures {
        nodes,
        blocks: h1 - h0,
        events,
        cpu_ms_per_block: per((sim.stats.cpu - s0.cpu).as_secs_f64() * 1e3),
        messages_per_block: per((sim.stats.consensus_messages - s0.consensus_messages) as f64),
        bytes_per_block: per((sim.stats.consensus_bytes - s0.consensus_bytes) as f64),
        virtual_ms_per_block: per((sim.now - t0) as f64),
    }
}
