//! Exhaustive model checking of the consensus engine (`kp-consensus`), with stateright.
//!
//! Every node of the model runs the engine that ships — [`kp_consensus::Engine`], unchanged —
//! over a small ledger ([`app::ModelApp`]). The model supplies everything else: it delivers any
//! message in flight to its recipient in any order (reordering), may deliver one twice
//! (duplication) or never (loss), fires any node's timer at any moment (each node's clock moves only then), or (synchronously)
//! only the earliest one once every honest message is delivered), and lets a node behind fetch
//! a committed block from an honest peer as the node does (catch-up: `apply_committed`, then a
//! fresh engine from the persisted records). One voter may be Byzantine: its own engine runs,
//! but none of its messages need ever arrive (it withholds at every point), and it may sign and
//! send what its engine would not — a second proposal as leader, votes for any block of any
//! round (equivocation), and any of its earlier messages again (replay).
//!
//! Checked on every reachable state within the bounds (heights, rounds, budgets):
//! - **agreement**: no two honest nodes commit different blocks at one height;
//! - **validity**: every block an honest node commits was proposed;
//! - **no panic**: no engine call panics or fails an internal assertion;
//! - **withheld-rule bound** (synchronous setups with the act suspending the Byzantine voter
//!   pending): once honest nodes can do nothing more within the rounds allowed, each has
//!   committed the act: a withholding voter delays its own suspension by a bounded number of
//!   rounds (docs/consensus.md, "Withheld precommit").
//!
//! Breadth-first search, so a counterexample is a shortest one; [`trace`] prints it.

pub mod app;

use app::{ModelApp, Voters, suspend, tx};
use kp_consensus::block::{Block, BlockHeader, Certificate, VoteBody, VoteKind, certificate_hash, consensus_time};
use kp_consensus::block::{events_root, voters_hash};
use kp_consensus::{
    Application, Config, Engine, Height, Input, Message, Output, Proposal, Record, Round, Vote, apply_committed,
    leader_of, proposal_signing_bytes,
};
use kp_crypto::{SecretKey, Tag};
use kp_domain::{ChainId, Hash32, ParticipantId, Timestamp};
use stateright::{Model, Property};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// The bounds and the faults of one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    pub name: String,
    /// Number of voters (ids AA, AB, ... in order).
    pub voters: usize,
    /// Index of the Byzantine voter, if any.
    pub byzantine: Option<usize>,
    /// The act suspending the Byzantine voter is pending from this height on: leaders propose
    /// it (alone) until it commits.
    pub suspension: Option<Height>,
    /// One clock for all (moved by the honest timer that fires); timers fire only when no
    /// honest message is in flight, earliest first, and honest
    /// messages are never lost and arrive one after the other in the order of the network's
    /// list: the conditions under which liveness is promised (the Byzantine voter's messages
    /// still arrive whenever it likes, or never).
    pub synchronous: bool,
    /// Heights explored: 1 to this.
    pub max_height: Height,
    /// Rounds explored at each height from 1 (0 to the limit: no timer fires out of the last
    /// round); the last limit holds for the heights after.
    pub rounds: Vec<Round>,
    /// Honest messages the network may lose (asynchronous setups only).
    pub losses: u8,
    /// Messages the network may deliver twice.
    pub duplicates: u8,
    /// Messages the Byzantine voter may sign beyond its engine's, or send again.
    pub byzantine_acts: u8,
    /// Round timeouts honest nodes may take in all (a leader woken within its round to propose
    /// takes none): with the round limits, this bounds how far the nodes' rounds drift apart.
    pub timeouts: u8,
    /// Honest messages on one channel (sender, recipient) arrive in the order sent (streams on
    /// one connection); across channels, and for the Byzantine voter's, any order.
    pub fifo: bool,
}

impl Setup {
    fn checks_bound(&self) -> bool {
        self.synchronous && self.suspension.is_some() && self.byzantine.is_some()
    }

    /// The last round explored at `height`.
    pub fn max_round(&self, height: Height) -> Round {
        let i = usize::try_from(height.saturating_sub(1)).unwrap_or(usize::MAX);
        self.rounds.get(i).or(self.rounds.last()).copied().unwrap_or(0)
    }
}

/// A message in flight. Equal packets are one (the network is a set; duplication is an action).
#[derive(Debug, Clone)]
pub struct Packet {
    pub from: usize,
    pub to: usize,
    /// A hash of the message: packets are told apart and ordered by it.
    pub fp: u64,
    /// Order of sending on a channel kept in order (0 where the order is free). Only the order
    /// it gives enters the state's hash, not the number.
    pub seq: u64,
    pub message: Arc<Message>,
}

impl Packet {
    fn key(&self) -> (usize, usize, u64) {
        (self.to, self.from, self.fp)
    }
    fn order(&self) -> (usize, usize, u64, u64) {
        (self.to, self.from, self.seq, self.fp)
    }
}

impl Hash for Packet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

fn fingerprint<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

/// One node: the engine and what its host keeps (the ledger, the persisted records, the timer,
/// the committed chain).
#[derive(Debug, Clone, Hash)]
pub struct NodeState {
    pub engine: Engine,
    pub app: ModelApp,
    pub records: Vec<Record>,
    pub timer: Option<(Height, Round, Timestamp)>,
    pub chain: Vec<(Block, Certificate)>,
    /// This node's clock. It moves only when the node's timer fires: what a node signs and
    /// decides depends on its own history alone, not on when its peers' timers fired.
    pub now: Timestamp,
}

/// A node shared between states until it changes, with its hash computed once.
#[derive(Debug, Clone)]
pub struct Node {
    pub state: Arc<NodeState>,
    fp: u64,
}

impl Node {
    fn new(state: NodeState) -> Node {
        let fp = fingerprint(&state);
        Node { state: Arc::new(state), fp }
    }
}

#[derive(Debug, Clone)]
pub struct State {
    pub nodes: Vec<Node>,
    /// In flight, sorted by (to, from, fp), no two equal.
    pub network: Vec<Packet>,
    /// What the Byzantine voter has sent, for replays (sorted like `network`).
    pub byzantine_sent: Vec<Packet>,
    /// (height, hash) of every block proposed by anyone, sorted.
    pub proposed: Vec<(Height, Hash32)>,
    pub losses: u8,
    pub duplicates: u8,
    pub byzantine_acts: u8,
    pub timeouts: u8,
    /// An honest node committed with a withheld-precommit certificate.
    pub withheld_commit: bool,
    pub panic: Option<String>,
    /// Messages for the Byzantine voter, handed to its engine at the end of the step.
    to_byzantine: Vec<(usize, Message)>,
    /// Messages sent on ordered channels so far (their `seq`); not part of the hash.
    sent: u64,
}

impl Hash for State {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for n in &self.nodes {
            n.fp.hash(state);
        }
        self.network.hash(state);
        self.byzantine_sent.hash(state);
        (&self.proposed, self.losses, self.duplicates, self.byzantine_acts, self.timeouts).hash(state);
        self.withheld_commit.hash(state);
        self.panic.hash(state);
    }
}

/// Equal when their hashes are (what the checker tells states apart by).
impl PartialEq for State {
    fn eq(&self, other: &State) -> bool {
        fingerprint(self) == fingerprint(other)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Deliver a packet (and, with `keep`, leave a copy in flight: duplication).
    Deliver {
        from: usize,
        to: usize,
        fp: u64,
        keep: bool,
    },
    /// The network loses an honest packet.
    Lose {
        from: usize,
        to: usize,
        fp: u64,
    },
    Timeout {
        node: usize,
    },
    /// `node` fetches its next committed block from honest `peer`.
    CatchUp {
        node: usize,
        peer: usize,
    },
    /// The Byzantine leader proposes a second block for `round`.
    ByzantinePropose {
        round: Round,
    },
    /// The Byzantine voter signs this vote, whatever it voted before.
    ByzantineVote {
        kind: VoteKind,
        round: Round,
        block: Hash32,
    },
    /// The Byzantine voter sends one of its earlier messages again.
    ByzantineReplay {
        to: usize,
        fp: u64,
    },
}

#[derive(Debug)]
pub struct ConsensusModel {
    pub setup: Setup,
    chain_id: ChainId,
    config: Config,
    voters: Voters,
    seeds: Vec<[u8; 32]>,
    genesis: Hash32,
    genesis_time: Timestamp,
}

/// Round 0 lasts 1 s, round r `2^r` s (the model's clock is only an ordering; votes carry it).
pub fn engine_config() -> Config {
    Config { round_timeout_base_ms: 1_000, round_timeout_cap_ms: 30_000, idle_block_ms: 0 }
}

/// The signature rule of the model's chain: the one new networks use.
pub const RULE: kp_domain::SignatureRule = kp_domain::SignatureRule::Cofactored;

impl ConsensusModel {
    pub fn new(setup: Setup) -> anyhow::Result<ConsensusModel> {
        anyhow::ensure!((2..=26).contains(&setup.voters), "between 2 and 26 voters");
        anyhow::ensure!(setup.byzantine.is_none_or(|b| b < setup.voters), "the Byzantine voter is one of the voters");
        anyhow::ensure!(!setup.rounds.is_empty(), "a round limit for height 1 at least");
        let chain_id = ChainId::new("kp-model")?;
        let mut voters = Vec::new();
        let mut seeds = Vec::new();
        for i in 0..setup.voters {
            let letter = char::from(b'A' + u8::try_from(i)?);
            let id = ParticipantId::new(&format!("A{letter}"))?;
            let seed = [u8::try_from(i + 1)?; 32];
            voters.push((id, SecretKey::from_seed(&seed).public()));
            seeds.push(seed);
        }
        let genesis = kp_crypto::sha256_parts(&[b"kp-model/genesis"]);
        Ok(ConsensusModel {
            setup,
            chain_id,
            config: engine_config(),
            voters,
            seeds,
            genesis,
            genesis_time: Timestamp(1_000_000),
        })
    }

    fn id(&self, i: usize) -> ParticipantId {
        self.voters[i].0
    }

    fn index(&self, id: ParticipantId) -> Option<usize> {
        self.voters.iter().position(|(p, _)| *p == id)
    }

    fn is_honest(&self, i: usize) -> bool {
        self.setup.byzantine != Some(i)
    }

    fn is_done(&self, n: &NodeState) -> bool {
        n.app.height() >= self.setup.max_height
    }

    fn key(&self, i: usize) -> SecretKey {
        SecretKey::from_seed(&self.seeds[i])
    }

    /// The events a leader's host offers: the pending suspension (while its subject votes),
    /// otherwise one ordinary event of the height.
    fn events_for(&self, app: &ModelApp) -> Vec<Vec<u8>> {
        let pending = self.setup.suspension.is_some_and(|from| app.height() + 1 >= from);
        let subject = self.setup.byzantine.filter(|_| pending).map(|b| self.id(b));
        match subject {
            Some(s) if app.voters().iter().any(|(p, _)| *p == s) => vec![suspend(s)],
            _ => vec![tx(u8::try_from(app.height() % 100).unwrap_or(0))],
        }
    }

    /// Runs `input` on node `i` at `now` and carries out what the engine asks, as the host
    /// does: records kept, messages put in flight, timers set, events supplied at once.
    fn run(&self, s: &mut State, i: usize, input: Input, now: Timestamp) {
        let mut node = (*s.nodes[i].state).clone();
        let mut inputs = vec![input];
        while let Some(input) = inputs.pop() {
            let NodeState { engine, app, .. } = &mut node;
            let out = match catch_unwind(AssertUnwindSafe(|| engine.handle(input, now, app))) {
                Ok(out) => out,
                Err(e) => {
                    s.panic = Some(panic_text(&e));
                    return;
                }
            };
            self.carry_out(s, i, &mut node, out, &mut inputs);
        }
        self.store(s, i, node);
    }

    fn carry_out(&self, s: &mut State, i: usize, node: &mut NodeState, out: Vec<Output>, inputs: &mut Vec<Input>) {
        for o in out {
            match o {
                Output::Persist(r) => node.records.push(r),
                Output::Send { to, message } => {
                    if let Some(to) = self.index(to) {
                        self.send(s, i, to, message);
                    }
                }
                Output::Broadcast(message) => {
                    for to in (0..self.voters.len()).filter(|to| *to != i) {
                        self.send(s, i, to, message.clone());
                    }
                }
                Output::SetTimer { height, round, at } => node.timer = Some((height, round, at)),
                Output::RequestEvents { height, round, .. } => {
                    inputs.push(Input::EventsReady { height, round, events: self.events_for(&node.app) });
                }
                Output::Committed { block, certificate } => {
                    if certificate.withheld.is_some() && self.is_honest(i) {
                        s.withheld_commit = true;
                    }
                    node.chain.push((block, certificate));
                    node.timer = None;
                }
                Output::Evidence(_) | Output::Missing { .. } | Output::Refused { .. } | Output::Behind { .. } => {}
            }
        }
    }

    /// Puts a message in flight, unless it is for a height beyond the model's.
    fn send(&self, s: &mut State, from: usize, to: usize, message: Message) {
        if message.height() > self.setup.max_height {
            return;
        }
        if let Message::Proposal(p) = &message {
            insert_sorted(&mut s.proposed, (p.height, p.block.hash()));
        }
        if !self.is_honest(to) {
            // The Byzantine voter hears everything at once (the strongest adversary: it never
            // acts on stale news); when its own messages arrive is up to it.
            s.to_byzantine.push((from, message));
            return;
        }
        let seq = if self.setup.fifo && self.is_honest(from) {
            s.sent = s.sent.wrapping_add(1);
            s.sent
        } else {
            0
        };
        let p = Packet { from, to, fp: fingerprint(&message), seq, message: Arc::new(message) };
        if !self.is_honest(from) {
            insert_packet(&mut s.byzantine_sent, p.clone());
        }
        insert_packet(&mut s.network, p);
    }

    fn store(&self, s: &mut State, i: usize, node: NodeState) {
        if self.is_done(&node) {
            // Nothing more reaches a node past the last height.
            s.network.retain(|p| p.to != i);
        }
        // A message of a height this node has left changes nothing if it arrives (the engine
        // ignores it): it is dropped now rather than kept as one more state to visit.
        let height = node.engine.height();
        s.network.retain(|p| p.to != i || p.message.height() >= height);
        s.nodes[i] = Node::new(node);
    }

    /// Whether node `n`'s timer may fire without leaving the rounds explored.
    fn timer_allowed(&self, n: &NodeState) -> Option<Timestamp> {
        let (height, _, at) = n.timer?;
        let within = at < n.engine.round_deadline() || n.engine.round() < self.setup.max_round(height);
        (height == n.engine.height() && !self.is_done(n) && within).then_some(at)
    }

    /// The honest peer a node behind can fetch its next block from.
    fn catch_up_peers(&self, s: &State, i: usize) -> Vec<usize> {
        let n = &s.nodes[i].state;
        if self.is_done(n) {
            return vec![];
        }
        let next = usize::try_from(n.app.height()).unwrap_or(usize::MAX);
        (0..s.nodes.len()).filter(|p| *p != i && self.is_honest(*p) && s.nodes[*p].state.chain.len() > next).collect()
    }

    /// Honest work not yet done: a message from an honest node to an honest node in flight, or
    /// a block an honest node can fetch. Synchronous setups fire no timer while there is some.
    fn honest_pending(&self, s: &State) -> bool {
        s.network.iter().any(|p| self.is_honest(p.from) && self.is_honest(p.to))
            || (0..s.nodes.len()).any(|i| self.is_honest(i) && !self.catch_up_peers(s, i).is_empty())
    }

    fn honest_timers(&self, s: &State) -> Vec<(usize, Timestamp)> {
        (0..s.nodes.len())
            .filter(|i| self.is_honest(*i))
            .filter_map(|i| {
                let n = &s.nodes[i].state;
                let at = self.timer_allowed(n)?;
                (s.timeouts > 0 || at < n.engine.round_deadline()).then_some((i, at))
            })
            .collect()
    }

    fn byzantine_actions(&self, s: &State, b: usize, actions: &mut Vec<Action>) {
        let node = &s.nodes[b].state;
        if s.byzantine_acts == 0 || self.is_done(node) {
            return;
        }
        let h = node.engine.height();
        let voters = node.app.voters();
        if !voters.iter().any(|(p, _)| *p == self.id(b)) {
            return; // Suspended: its messages are refused anyway.
        }
        // Up to the round its engine is in (a message of a later round it can send when there),
        // and only what its engine did not sign: a second proposal, a vote other than its own.
        for round in 0..=node.engine.round().min(self.setup.max_round(h)) {
            if leader_of(&voters, h, round) == Some(self.id(b)) {
                actions.push(Action::ByzantinePropose { round });
            }
            for (_, block) in s.proposed.iter().filter(|(height, _)| *height == h) {
                for kind in [VoteKind::Prevote, VoteKind::Precommit] {
                    let body = VoteBody { kind, height: h, round, block_hash: *block };
                    if !node.records.contains(&Record::Voted(body)) {
                        actions.push(Action::ByzantineVote { kind, round, block: *block });
                    }
                }
            }
        }
        for p in &s.byzantine_sent {
            if !s.network.iter().any(|q| q.key() == p.key()) && !self.is_done(&s.nodes[p.to].state) {
                actions.push(Action::ByzantineReplay { to: p.to, fp: p.fp });
            }
        }
    }

    /// The Byzantine leader's second block for `round`: another event, a header as its engine
    /// would build it.
    fn byzantine_proposal(&self, s: &State, b: usize, round: Round) -> Option<Proposal> {
        let node = &s.nodes[b].state;
        let events = vec![tx(0xa0 + u8::try_from(round).ok()?)];
        fresh_proposal(&self.chain_id, &node.app, &self.key(b), self.id(b), round, events)
    }

    fn take_packet(s: &mut State, key: (usize, usize, u64), keep: bool) -> Option<Packet> {
        let at = s.network.iter().position(|p| p.key() == key)?;
        Some(if keep { s.network[at].clone() } else { s.network.remove(at) })
    }

    fn step(&self, last: &State, action: Action) -> Option<State> {
        let mut s = self.act(last, action)?;
        self.feed_byzantine(&mut s);
        Some(s)
    }

    /// Hands the Byzantine voter's engine what was sent to it (what it sends in turn goes to
    /// honest nodes only: bounded).
    fn feed_byzantine(&self, s: &mut State) {
        let Some(b) = self.setup.byzantine else { return };
        while !s.to_byzantine.is_empty() && s.panic.is_none() {
            let (from, message) = s.to_byzantine.remove(0);
            if self.is_done(&s.nodes[b].state) {
                continue;
            }
            let now = s.nodes[b].state.now;
            self.run(s, b, Input::Message { from: self.id(from), message }, now);
        }
        s.to_byzantine.clear();
    }

    fn act(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Deliver { from, to, fp, keep } => {
                let p = Self::take_packet(&mut s, (to, from, fp), keep)?;
                if keep {
                    s.duplicates = s.duplicates.checked_sub(1)?;
                }
                let input = Input::Message { from: self.id(from), message: (*p.message).clone() };
                let now = s.nodes[to].state.now;
                self.run(&mut s, to, input, now);
            }
            Action::Lose { from, to, fp } => {
                Self::take_packet(&mut s, (to, from, fp), false)?;
                s.losses = s.losses.checked_sub(1)?;
            }
            Action::Timeout { node } => {
                let (height, round, at) = s.nodes[node].state.timer?;
                let mut n = (*s.nodes[node].state).clone();
                if self.is_honest(node) && at >= n.engine.round_deadline() {
                    s.timeouts = s.timeouts.checked_sub(1)?;
                }
                let now = n.now.max(at);
                n.now = now;
                n.timer = None;
                s.nodes[node] = Node::new(n);
                if self.setup.synchronous && self.is_honest(node) {
                    // Synchronous: one clock. Every node's reads at least the time of the
                    // earliest timer that fired, so that a node that entered a round on others'
                    // reports does not count its round from a time long past.
                    for i in 0..s.nodes.len() {
                        if s.nodes[i].state.now < now {
                            let mut other = (*s.nodes[i].state).clone();
                            other.now = now;
                            s.nodes[i] = Node::new(other);
                        }
                    }
                }
                self.run(&mut s, node, Input::Timeout { height, round }, now);
            }
            Action::CatchUp { node, peer } => {
                let mut n = (*s.nodes[node].state).clone();
                let next = usize::try_from(n.app.height()).ok()?;
                let (block, certificate) = s.nodes[peer].state.chain.get(next)?.clone();
                if let Err(e) = apply_committed(&self.chain_id, RULE, &mut n.app, &block, &certificate) {
                    s.panic = Some(format!(
                        "node {} refused block {} from honest {}: {e}",
                        self.id(node),
                        next + 1,
                        self.id(peer)
                    ));
                    return Some(s);
                }
                n.chain.push((block, certificate));
                n.timer = None;
                let records = n.records.clone();
                let now = n.now;
                let NodeState { app, .. } = &mut n;
                let built = catch_unwind(AssertUnwindSafe(|| {
                    Engine::new(
                        self.config.clone(),
                        self.chain_id.clone(),
                        RULE,
                        self.id(node),
                        self.key(node),
                        records,
                        now,
                        app,
                    )
                }));
                let (engine, out) = match built {
                    Ok(Ok(built)) => built,
                    Ok(Err(e)) => {
                        s.panic = Some(format!("engine config refused: {e}"));
                        return Some(s);
                    }
                    Err(e) => {
                        s.panic = Some(panic_text(&e));
                        return Some(s);
                    }
                };
                n.engine = engine;
                let mut inputs = Vec::new();
                self.carry_out(&mut s, node, &mut n, out, &mut inputs);
                self.store(&mut s, node, n);
                // Any events the new engine asked for, as `run` supplies them.
                for input in inputs {
                    self.run(&mut s, node, input, now);
                }
            }
            Action::ByzantinePropose { round } => {
                let b = self.setup.byzantine?;
                let p = self.byzantine_proposal(&s, b, round)?;
                s.byzantine_acts = s.byzantine_acts.checked_sub(1)?;
                let message = Message::Proposal(Box::new(p));
                for to in (0..self.voters.len()).filter(|to| *to != b) {
                    self.send(&mut s, b, to, message.clone());
                }
            }
            Action::ByzantineVote { kind, round, block } => {
                let b = self.setup.byzantine?;
                let node = &s.nodes[b].state;
                let height = node.engine.height();
                let body = VoteBody { kind, height, round, block_hash: block };
                let signature = self.key(b).sign(Tag::Vote, &self.chain_id, &body.signing_bytes(node.now));
                let vote = Vote { body, voter: self.id(b), time: node.now, signature };
                let leader = leader_of(&node.app.voters(), height, round).and_then(|l| self.index(l))?;
                if leader == b {
                    return None;
                }
                s.byzantine_acts = s.byzantine_acts.checked_sub(1)?;
                self.send(&mut s, b, leader, Message::Vote(vote));
            }
            Action::ByzantineReplay { to, fp } => {
                let b = self.setup.byzantine?;
                let p = s.byzantine_sent.iter().find(|p| p.key() == (to, b, fp))?.clone();
                s.byzantine_acts = s.byzantine_acts.checked_sub(1)?;
                insert_packet(&mut s.network, p);
            }
        }
        Some(s)
    }

    fn agreement(&self, s: &State) -> bool {
        let honest: Vec<&NodeState> =
            (0..s.nodes.len()).filter(|i| self.is_honest(*i)).map(|i| &*s.nodes[i].state).collect();
        honest
            .iter()
            .all(|a| honest.iter().all(|b| a.chain.iter().zip(&b.chain).all(|(x, y)| x.0.hash() == y.0.hash())))
    }

    fn validity(&self, s: &State) -> bool {
        (0..s.nodes.len()).filter(|i| self.is_honest(*i)).all(|i| {
            s.nodes[i].state.chain.iter().all(|(b, _)| {
                let key = (b.header().height, b.hash());
                s.proposed.binary_search(&key).is_ok()
            })
        })
    }

    /// Honest nodes can do nothing more within the bounds: every one has committed the act.
    fn bound_holds(&self, s: &State) -> bool {
        let Some(b) = self.setup.byzantine else { return true };
        if self.honest_pending(s) || !self.honest_timers(s).is_empty() {
            return true;
        }
        let subject = self.id(b);
        (0..s.nodes.len()).filter(|i| self.is_honest(*i)).all(|i| s.nodes[i].state.app.suspended() == Some(subject))
    }

    fn honest_reach_last_height(&self, s: &State) -> bool {
        (0..s.nodes.len()).filter(|i| self.is_honest(*i)).all(|i| self.is_done(&s.nodes[i].state))
    }

    /// One line per step of a path: what happened, then where each node stands.
    pub fn describe(&self, before: &State, action: &Action) -> String {
        let name = |i: usize| self.id(i).to_string();
        match action {
            Action::Deliver { from, to, fp, keep } => {
                let what = before
                    .network
                    .iter()
                    .find(|p| p.key() == (*to, *from, *fp))
                    .map_or_else(|| "?".to_owned(), |p| describe_message(&p.message));
                let dup = if *keep { " (a copy stays in flight)" } else { "" };
                format!("{} receives from {}: {what}{dup}", name(*to), name(*from))
            }
            Action::Lose { from, to, fp } => {
                let what = before
                    .network
                    .iter()
                    .find(|p| p.key() == (*to, *from, *fp))
                    .map_or_else(|| "?".to_owned(), |p| describe_message(&p.message));
                format!("the network loses {}'s message to {}: {what}", name(*from), name(*to))
            }
            Action::Timeout { node } => {
                let n = &before.nodes[*node].state;
                let (h, r, at) = n.timer.unwrap_or_default();
                format!(
                    "{}'s timer of height {h} round {r} fires at +{} ms",
                    name(*node),
                    at.0.saturating_sub(self.genesis_time.0)
                )
            }
            Action::CatchUp { node, peer } => {
                let next = before.nodes[*node].state.app.height() + 1;
                format!("{} fetches committed block {next} from {}", name(*node), name(*peer))
            }
            Action::ByzantinePropose { round } => {
                format!("Byzantine leader proposes a second block for round {round}")
            }
            Action::ByzantineVote { kind, round, block } => {
                format!("Byzantine voter signs a {} of round {round} for block {}", kind.name(), block.short())
            }
            Action::ByzantineReplay { to, fp } => {
                let what = before
                    .byzantine_sent
                    .iter()
                    .find(|p| p.key() == (*to, self.setup.byzantine.unwrap_or(0), *fp))
                    .map_or_else(|| "?".to_owned(), |p| describe_message(&p.message));
                format!("Byzantine voter sends {} again: {what}", name(*to))
            }
        }
    }

    pub fn describe_nodes(&self, s: &State) -> String {
        let mut parts = Vec::new();
        for (i, n) in s.nodes.iter().enumerate() {
            let n = &n.state;
            let chain: Vec<String> = n
                .chain
                .iter()
                .map(|(b, c)| {
                    let w = if c.withheld.is_some() { "*" } else { "" };
                    format!("{}{w}", b.hash().short())
                })
                .collect();
            let tag = if self.is_honest(i) { "" } else { " (Byzantine)" };
            parts.push(format!(
                "{}{tag}: h{} r{} committed [{}]",
                self.id(i),
                n.engine.height(),
                n.engine.round(),
                chain.join(" ")
            ));
        }
        parts.join("; ")
    }
}

/// A proposal of a fresh block of `events` at the height after `app`'s, for `round`, signed by
/// `proposer` with `key`, built as the engine builds one (None if the events do not execute).
pub fn fresh_proposal(
    chain_id: &ChainId,
    app: &ModelApp,
    key: &SecretKey,
    proposer: ParticipantId,
    round: Round,
    events: Vec<Vec<u8>>,
) -> Option<Proposal> {
    let mut app = app.clone();
    let h = app.height() + 1;
    let (prev_hash, prev_time) = app.last_block();
    let last_commit = app.last_commit().map(|(c, _)| c);
    let time = consensus_time(last_commit.as_ref(), prev_time);
    let x = app.execute(time, &events).ok()?;
    let header = BlockHeader {
        chain_id: chain_id.clone(),
        height: h,
        round,
        prev_hash,
        last_commit_hash: last_commit
            .as_ref()
            .map_or(Hash32::default(), |c| certificate_hash(&kp_consensus::wire::encode_certificate(c))),
        proposer,
        time,
        events_root: events_root(&events),
        event_count: u32::try_from(events.len()).ok()?,
        state_root: x.state_root,
        voters_hash: voters_hash(&x.required),
    };
    let block = Block::new(header, events, last_commit).ok()?;
    let bytes = proposal_signing_bytes(h, round, &block.hash(), None);
    let signature = key.sign(Tag::Proposal, chain_id, &bytes);
    Some(Proposal { height: h, round, block, justify: None, proposer, signature })
}

fn describe_message(m: &Message) -> String {
    match m {
        Message::Proposal(p) => {
            let j = p.justify.as_ref().map_or(String::new(), |j| format!(", justified by round {}", j.body.round));
            format!(
                "proposal h{} r{} of block {} ({} events{j})",
                p.height,
                p.round,
                p.block.hash().short(),
                p.block.events().len()
            )
        }
        Message::Vote(v) => {
            format!("{} h{} r{} for {}", v.body.kind.name(), v.body.height, v.body.round, v.body.block_hash.short())
        }
        Message::Certificate(c) => {
            let w = c.withheld.map_or(String::new(), |w| format!(", precommit of {} withheld", w.voter));
            format!(
                "{} certificate h{} r{} of {}{w}",
                c.body.kind.name(),
                c.body.height,
                c.body.round,
                c.body.block_hash.short()
            )
        }
        Message::NewRound(n) => {
            let lock = n
                .lock
                .as_ref()
                .map_or("no lock".to_owned(), |l| format!("lock r{} {}", l.1.body.round, l.0.hash().short()));
            let pc = if n.precommit.is_some() { " with its precommit" } else { "" };
            format!("new round h{} r{} ({lock}{pc})", n.height, n.round)
        }
    }
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

fn insert_sorted<T: Ord>(v: &mut Vec<T>, x: T) {
    if let Err(at) = v.binary_search(&x) {
        v.insert(at, x);
    }
}

fn insert_packet(v: &mut Vec<Packet>, p: Packet) {
    if v.iter().any(|q| q.key() == p.key()) {
        return; // The network is a set.
    }
    if let Err(at) = v.binary_search_by(|q| q.order().cmp(&p.order())) {
        v.insert(at, p);
    }
}

impl Model for ConsensusModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let mut s = State {
            nodes: Vec::new(),
            network: Vec::new(),
            byzantine_sent: Vec::new(),
            proposed: Vec::new(),
            losses: if self.setup.synchronous { 0 } else { self.setup.losses },
            duplicates: self.setup.duplicates,
            byzantine_acts: if self.setup.byzantine.is_some() { self.setup.byzantine_acts } else { 0 },
            timeouts: self.setup.timeouts,
            withheld_commit: false,
            panic: None,
            to_byzantine: Vec::new(),
            sent: 0,
        };
        let mut started = Vec::new();
        for i in 0..self.voters.len() {
            let mut app = ModelApp::new(self.genesis, self.genesis_time, self.voters.clone());
            let built = Engine::new(
                self.config.clone(),
                self.chain_id.clone(),
                RULE,
                self.id(i),
                self.key(i),
                vec![],
                self.genesis_time,
                &mut app,
            );
            let Ok((engine, out)) = built else {
                s.panic = Some("the model's engine configuration is refused".to_owned());
                return vec![s];
            };
            s.nodes.push(Node::new(NodeState {
                engine,
                app,
                records: vec![],
                timer: None,
                chain: vec![],
                now: self.genesis_time,
            }));
            started.push(out);
        }
        for (i, out) in started.into_iter().enumerate() {
            let mut n = (*s.nodes[i].state).clone();
            let mut inputs = Vec::new();
            self.carry_out(&mut s, i, &mut n, out, &mut inputs);
            self.store(&mut s, i, n);
            for input in inputs {
                self.run(&mut s, i, input, self.genesis_time);
            }
        }
        self.feed_byzantine(&mut s);
        vec![s]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        if s.panic.is_some() {
            return;
        }
        // Synchronously, honest messages arrive promptly in one order (the first in flight
        // first); only the Byzantine voter's come whenever it likes.
        let first_honest = s.network.iter().position(|p| self.is_honest(p.from));
        for (k, p) in s.network.iter().enumerate() {
            let (from, to, fp) = (p.from, p.to, p.fp);
            if self.setup.synchronous && self.is_honest(from) && Some(k) != first_honest {
                continue;
            }
            // On an ordered channel only the first message in flight can arrive (or be lost).
            let behind = k > 0 && p.seq > 0 && s.network[k - 1].to == to && s.network[k - 1].from == from;
            if behind {
                continue;
            }
            actions.push(Action::Deliver { from, to, fp, keep: false });
            if s.duplicates > 0 {
                actions.push(Action::Deliver { from, to, fp, keep: true });
            }
            if s.losses > 0 && self.is_honest(from) {
                actions.push(Action::Lose { from, to, fp });
            }
        }
        for i in 0..s.nodes.len() {
            for peer in self.catch_up_peers(s, i) {
                actions.push(Action::CatchUp { node: i, peer });
            }
        }
        if self.setup.synchronous {
            if !self.honest_pending(s) {
                let timers = self.honest_timers(s);
                let first = timers.iter().map(|(_, at)| *at).min();
                for (i, at) in timers {
                    if Some(at) == first {
                        actions.push(Action::Timeout { node: i });
                    }
                }
            }
        } else {
            for (i, _) in self.honest_timers(s) {
                actions.push(Action::Timeout { node: i });
            }
        }
        if let Some(b) = self.setup.byzantine {
            if self.timer_allowed(&s.nodes[b].state).is_some() {
                actions.push(Action::Timeout { node: b });
            }
            self.byzantine_actions(s, b, actions);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        self.step(last, action)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut p = vec![
            Property::always("agreement", |m: &Self, s: &State| m.agreement(s)),
            Property::always("validity", |m: &Self, s: &State| m.validity(s)),
            Property::always("no panic", |_: &Self, s: &State| s.panic.is_none()),
            // Non-vacuity: the bounds let the protocol do what it is there to do.
            Property::sometimes("every honest node reaches the last height", |m: &Self, s: &State| {
                m.honest_reach_last_height(s)
            }),
        ];
        // A withheld commit is assembled from the reports of a later round: it needs one.
        if self.setup.byzantine.is_some() && self.setup.rounds.iter().any(|r| *r > 0) {
            p.push(Property::sometimes("a withheld-precommit commit", |_: &Self, s: &State| s.withheld_commit));
        }
        if self.setup.checks_bound() {
            p.push(Property::always("withheld-rule bound", |m: &Self, s: &State| m.bound_holds(s)));
        }
        p
    }
}

/// A path as readable lines: each step, then where every node stands.
pub fn trace(model: &ConsensusModel, path: stateright::Path<State, Action>) -> String {
    let mut lines = Vec::new();
    let steps = path.into_vec();
    for (i, (state, action)) in steps.into_iter().enumerate() {
        if i == 0 {
            lines.push(format!("  start: {}", model.describe_nodes(&state)));
        }
        if let Some(a) = &action {
            lines.push(format!("  {:>3}. {}", i + 1, model.describe(&state, a)));
            if let Some(next) = model.step(&state, a.clone()) {
                lines.push(format!("       -> {}", model.describe_nodes(&next)));
                if let Some(p) = &next.panic {
                    lines.push(format!("       panic: {p}"));
                }
            }
        }
    }
    lines.join("\n")
}
