//! The round engine: a pure state machine. See docs/consensus.md for the protocol.
//!
//! Contract with the host: call [`Engine::handle`] with an [`Input`] and the current time; carry
//! out the returned [`Output`]s **in order**. A [`Output::Persist`] must be durable before any
//! message that follows it is sent: that is what makes a restarted voter never sign a second
//! value for the same (height, round, phase). After a crash, build the engine again with the
//! records it persisted ([`Engine::new`]).

use crate::block::{
    Block, BlockHeader, Certificate, VoteBody, VoteKind, VoteSignature, certificate_hash, consensus_time, voters_hash,
};
use crate::messages::*;
use kp_crypto::{SecretKey, Tag};
use kp_domain::{ChainId, Hash32, ParticipantId, PublicKey, SignatureRule, Timestamp};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::Hasher;
use std::sync::Arc;

/// Rounds more than this ahead of the current one are ignored (bounds what a peer can make the
/// engine store).
pub const MAX_ROUNDS_AHEAD: Round = 64;
/// Next-height messages kept per voter until this node reaches that height: a proposal, a vote
/// of each phase and a certificate.
pub const MAX_FUTURE_PER_VOTER: usize = 4;
/// Rounds before the current one whose proposals, votes and reports an engine keeps.
pub const KEPT_ROUNDS: Round = 16;
/// Most blocks whose execution (the voters each requires) an engine remembers at one height;
/// beyond it, those no longer in play are forgotten.
pub const MAX_EXECUTED_PER_HEIGHT: usize = 64;
/// The longest a round may last: a network must never sit for long because its timers grew.
pub const MAX_ROUND_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Config {
    /// Length of round 0; round r lasts `base × 2^r`, capped.
    pub round_timeout_base_ms: u64,
    pub round_timeout_cap_ms: u64,
    /// How long a round-0 leader with nothing to propose waits for events before it proposes an
    /// empty block (a heartbeat that keeps a halted chain visible). Round 0 lasts this much
    /// longer than later rounds, so that an idle leader is not taken for a missing one.
    pub idle_block_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("round_timeout_base_ms must be at least 1 and at most round_timeout_cap_ms")]
    BadBase,
    #[error("round_timeout_cap_ms is {0}, at most {MAX_ROUND_TIMEOUT_MS} allowed")]
    CapTooLong(u64),
    #[error("idle_block_ms is {0}, at most {MAX_ROUND_TIMEOUT_MS} allowed")]
    IdleTooLong(u64),
}

impl Config {
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.round_timeout_cap_ms > MAX_ROUND_TIMEOUT_MS {
            return Err(ConfigError::CapTooLong(self.round_timeout_cap_ms));
        }
        if self.round_timeout_base_ms == 0 || self.round_timeout_base_ms > self.round_timeout_cap_ms {
            return Err(ConfigError::BadBase);
        }
        if self.idle_block_ms > MAX_ROUND_TIMEOUT_MS {
            return Err(ConfigError::IdleTooLong(self.idle_block_ms));
        }
        Ok(())
    }

    /// How long round `round` lasts: `base × 2^round`, capped; round 0 also has the idle wait.
    pub fn round_timeout_ms(&self, round: Round) -> u64 {
        let factor = 1u64.checked_shl(round.min(40)).unwrap_or(u64::MAX);
        let grown = self.round_timeout_base_ms.saturating_mul(factor).min(self.round_timeout_cap_ms);
        if round == 0 { grown + self.idle_block_ms } else { grown }
    }
}

/// What executing a block tentatively tells the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub state_root: Hash32,
    /// The voters whose signatures commit this block, sorted by id.
    pub required: Vec<(ParticipantId, PublicKey)>,
}

/// Why a block cannot be executed: the first invalid event, if one is to blame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionError {
    pub event_index: Option<usize>,
    pub reason: String,
}

/// The ledger the engine drives (the rules engine behind the edge, in the node and the
/// simulator). Pure: no I/O.
pub trait Application {
    /// The last committed height (0: only the genesis).
    fn height(&self) -> Height;
    /// Hash and time of the last committed block (the genesis hash and time at height 0).
    fn last_block(&self) -> (Hash32, Timestamp);
    /// The voters of the next height, sorted by id.
    fn voters(&self) -> Vec<(ParticipantId, PublicKey)>;
    /// The commit certificate this node holds for the last committed block, with the voters it
    /// was checked against (none at height 0): the next block carries a commit certificate of
    /// its parent, and its time derives from it.
    fn last_commit(&self) -> Option<(Certificate, Vec<(ParticipantId, PublicKey)>)>;
    /// Executes `events` at `time` on the committed state. The application may keep the block
    /// applied for the commit that usually follows (the ledger executes each block once), but
    /// `height`, `last_block` and `voters` still answer for the committed state, and executing
    /// another block first undoes this one.
    fn execute(&mut self, time: Timestamp, events: &[Vec<u8>]) -> Result<Execution, ExecutionError>;
    /// Applies a committed block for good.
    fn commit(&mut self, block: &Block, certificate: &Certificate);
}

/// The leader of (height, round): `voters[(height + round) mod n]`, voters sorted by id.
pub fn leader_of(voters: &[(ParticipantId, PublicKey)], height: Height, round: Round) -> Option<ParticipantId> {
    let n = u64::try_from(voters.len()).ok().filter(|n| *n > 0)?;
    let i = usize::try_from(height.wrapping_add(u64::from(round)) % n).ok()?;
    voters.get(i).map(|v| v.0)
}

/// Why a committed block from a peer (catch-up) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("block is for chain {0}")]
    WrongChain(String),
    #[error("block is at height {got}, the next height here is {expected}")]
    WrongHeight { got: Height, expected: Height },
    #[error("block's prev_hash {got} is not the last block {expected}")]
    WrongParent { got: String, expected: String },
    #[error("block time {got} is not {expected}, the consensus time of the commit certificate it carries")]
    Time { got: Timestamp, expected: Timestamp },
    #[error("the parent's commit certificate it carries: {0}")]
    LastCommit(String),
    #[error("the block does not execute: {0}")]
    Execution(String),
    #[error("state root {claimed} differs from the executed {actual}")]
    StateRoot { claimed: String, actual: String },
    #[error("voters_hash does not match the voters this block requires")]
    VotersHash,
    #[error("commit certificate: {0}")]
    Certificate(#[from] crate::block::CertificateError),
}

/// Checks the commit certificate of the parent that `block` carries against the one this node
/// holds (`known`, from [`Application::last_commit`]): the same one, or another that the
/// parent's voters signed. (Its body — the parent's hash and height — and its hash in the
/// header are checked when the block is built: `Block::from_parts`.)
pub fn check_last_commit(
    chain_id: &ChainId,
    rule: SignatureRule,
    block: &Block,
    known: Option<&(Certificate, Vec<(ParticipantId, PublicKey)>)>,
) -> Result<(), String> {
    match (block.last_commit(), known) {
        (None, _) => Ok(()),
        (Some(c), Some((k, _))) if c == k => Ok(()),
        (Some(c), Some((_, required))) => c.verify(chain_id, rule, required).map_err(|e| e.to_string()),
        (Some(_), None) => Err("this node holds no committed parent".into()),
    }
}

/// Checks a committed block received from a peer against the application's committed state —
/// chain, height, parent and the parent's commit certificate it carries, its time (the
/// consensus time of that certificate), every event re-executed, state root, and a commit
/// certificate signed by every voter this node itself derives for the block — and, if all
/// hold, commits it. Trusts no peer: what it needs is the genesis and the blocks already
/// verified.
pub fn apply_committed(
    chain_id: &ChainId,
    rule: SignatureRule,
    app: &mut dyn Application,
    block: &Block,
    certificate: &Certificate,
) -> Result<(), CommitError> {
    let h = block.header();
    if h.chain_id != *chain_id {
        return Err(CommitError::WrongChain(h.chain_id.to_string()));
    }
    let expected = app.height() + 1;
    if h.height != expected {
        return Err(CommitError::WrongHeight { got: h.height, expected });
    }
    let (prev_hash, prev_time) = app.last_block();
    if h.prev_hash != prev_hash {
        return Err(CommitError::WrongParent { got: h.prev_hash.short(), expected: prev_hash.short() });
    }
    let expected = consensus_time(block.last_commit(), prev_time);
    if h.time != expected {
        return Err(CommitError::Time { got: h.time, expected });
    }
    check_last_commit(chain_id, rule, block, app.last_commit().as_ref()).map_err(CommitError::LastCommit)?;
    let x = app.execute(h.time, block.events()).map_err(|e| CommitError::Execution(e.reason))?;
    if x.state_root != h.state_root {
        return Err(CommitError::StateRoot { claimed: h.state_root.short(), actual: x.state_root.short() });
    }
    if voters_hash(&x.required) != h.voters_hash {
        return Err(CommitError::VotersHash);
    }
    certificate.verify_commit(chain_id, rule, h.height, &block.hash(), &x.required)?;
    app.commit(block, certificate);
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Message { from: ParticipantId, message: Message },
    Timeout { height: Height, round: Round },
    EventsReady { height: Height, round: Round, events: Vec<Vec<u8>> },
}

/// One node's consensus engine.
///
/// `Clone` and `Hash` serve the model checker (`kp-model`), which explores the engine's states:
/// a clone shares the signing key (never copies it), and the hash covers everything the engine
/// decides with but the key (determined by `me` in a network).
#[derive(Debug, Clone)]
pub struct Engine {
    config: Config,
    chain_id: ChainId,
    /// The ledger's signature rule (from its genesis), for every signature the engine checks.
    rule: SignatureRule,
    me: ParticipantId,
    key: Arc<SecretKey>,
    records: Vec<Record>,
    // The current height.
    height: Height,
    round: Round,
    round_started: Timestamp,
    voters: Vec<(ParticipantId, PublicKey)>,
    prev_hash: Hash32,
    prev_time: Timestamp,
    /// The parent's commit certificate this node holds, and the voters it needed.
    last_commit: Option<(Certificate, Vec<(ParticipantId, PublicKey)>)>,
    /// The precommits that NewRound reports carried, one per voter (its highest round).
    reported_precommits: BTreeMap<ParticipantId, Vote>,
    lock: Option<(Round, Block, Certificate)>,
    /// The highest prevote certificate known (own or reported), to re-propose.
    valid: Option<(Round, Block, Certificate)>,
    proposals: BTreeMap<Round, Proposal>,
    required: BTreeMap<Hash32, Option<Vec<(ParticipantId, PublicKey)>>>,
    my_votes: BTreeMap<(Round, VoteKind), Hash32>,
    votes: BTreeMap<(Round, VoteKind), BTreeMap<ParticipantId, Vote>>,
    certified: BTreeSet<(Round, VoteKind)>,
    /// NewRound reports per round: who reported, and whether it reported a lock.
    new_rounds: BTreeMap<Round, BTreeMap<ParticipantId, bool>>,
    /// This node's own proposals of the height (persisted before they are sent).
    my_proposals: BTreeMap<Round, Proposal>,
    proposed: BTreeSet<Round>,
    /// Rounds for which this leader asked its host for events.
    requested: BTreeSet<Round>,
    missing_reported: BTreeSet<Round>,
    /// The highest round each voter reported beyond this engine's window (see
    /// [`Engine::far_round`]): at most one entry per voter.
    far_rounds: BTreeMap<ParticipantId, Round>,
    /// Messages to handle next: this node's own, and those kept for the height it just reached.
    inbox: VecDeque<(ParticipantId, Message)>,
    /// Messages for the next height that arrived before this node committed the current one
    /// (a leader that committed first proposes at once); at most [`MAX_FUTURE_PER_VOTER`] from
    /// each voter of the current height.
    future: Vec<(ParticipantId, Message)>,
    out: Vec<Output>,
}

impl std::hash::Hash for Engine {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Destructured in full, so that a field added to the engine cannot be left out unseen.
        let Engine {
            config,
            chain_id,
            rule,
            me,
            key: _, // Determined by `me` within a network.
            records,
            height,
            round,
            round_started,
            voters,
            prev_hash,
            prev_time,
            last_commit,
            reported_precommits,
            lock,
            valid,
            proposals,
            required,
            my_votes,
            votes,
            certified,
            new_rounds,
            my_proposals,
            proposed,
            requested,
            missing_reported,
            far_rounds,
            inbox,
            future,
            out,
        } = self;
        use std::hash::Hash as H;
        H::hash(&(config, chain_id, rule, me, records, height, round, round_started, voters), state);
        H::hash(&(prev_hash, prev_time, last_commit, reported_precommits, lock, valid, proposals), state);
        H::hash(&(required, my_votes, votes, certified, new_rounds, my_proposals, proposed), state);
        H::hash(&(requested, missing_reported, far_rounds, inbox, future, out), state);
    }
}

impl Engine {
    /// An engine at the height after the application's last committed block, restored from the
    /// records this node persisted (votes and locks of that height are honoured; older ones are
    /// ignored). `chain_id` and `rule` come from the genesis, `key` and `records` from the node.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        chain_id: ChainId,
        rule: SignatureRule,
        me: ParticipantId,
        key: SecretKey,
        records: Vec<Record>,
        now: Timestamp,
        app: &mut dyn Application,
    ) -> Result<(Engine, Vec<Output>), ConfigError> {
        config.check()?;
        let mut e = Engine {
            config,
            chain_id,
            rule,
            me,
            key: Arc::new(key),
            records,
            height: 0,
            round: 0,
            round_started: now,
            voters: vec![],
            prev_hash: Hash32::default(),
            prev_time: Timestamp::default(),
            last_commit: None,
            reported_precommits: BTreeMap::new(),
            lock: None,
            valid: None,
            proposals: BTreeMap::new(),
            required: BTreeMap::new(),
            my_votes: BTreeMap::new(),
            votes: BTreeMap::new(),
            certified: BTreeSet::new(),
            new_rounds: BTreeMap::new(),
            my_proposals: BTreeMap::new(),
            proposed: BTreeSet::new(),
            requested: BTreeSet::new(),
            missing_reported: BTreeSet::new(),
            far_rounds: BTreeMap::new(),
            inbox: VecDeque::new(),
            future: Vec::new(),
            out: vec![],
        };
        e.start_height(now, app);
        e.drain(now, app);
        let out = std::mem::take(&mut e.out);
        Ok((e, out))
    }

    pub fn height(&self) -> Height {
        self.height
    }
    pub fn round(&self) -> Round {
        self.round
    }
    /// When the current round times out: its start plus [`Config::round_timeout_ms`].
    pub fn round_deadline(&self) -> Timestamp {
        self.round_started.saturating_add_ms(self.config.round_timeout_ms(self.round))
    }
    pub fn me(&self) -> ParticipantId {
        self.me
    }
    pub fn voters(&self) -> &[(ParticipantId, PublicKey)] {
        &self.voters
    }
    pub fn leader(&self, round: Round) -> ParticipantId {
        leader_of(&self.voters, self.height, round).unwrap_or(self.me)
    }

    /// Handles one input at time `now`; returns what the host must do, in order.
    #[must_use]
    pub fn handle(&mut self, input: Input, now: Timestamp, app: &mut dyn Application) -> Vec<Output> {
        match input {
            Input::Message { from, message } => self.on_message(from, message, now, app),
            Input::Timeout { height, round } => self.on_timeout(height, round, now),
            Input::EventsReady { height, round, events } => {
                let wanted = self.requested.contains(&round) && !self.proposed.contains(&round);
                if height == self.height && round == self.round && wanted {
                    self.proposed.insert(round);
                    self.propose_new(events, now, app);
                }
            }
        }
        self.drain(now, app);
        std::mem::take(&mut self.out)
    }

    fn drain(&mut self, now: Timestamp, app: &mut dyn Application) {
        // Messages to self are handled at once, in order; the number is bounded by the few
        // steps of one round.
        while let Some((from, m)) = self.inbox.pop_front() {
            self.on_message(from, m, now, app);
        }
    }

    fn voter_key(&self, id: &ParticipantId) -> Option<PublicKey> {
        self.voters.iter().find(|(v, _)| v == id).map(|(_, k)| *k)
    }

    fn send(&mut self, to: ParticipantId, message: Message) {
        if to == self.me {
            self.inbox.push_back((self.me, message))
        } else {
            self.out.push(Output::Send { to, message })
        }
    }

    fn broadcast(&mut self, message: Message) {
        self.inbox.push_back((self.me, message.clone()));
        self.out.push(Output::Broadcast(message));
    }

    fn persist(&mut self, record: Record) {
        self.records.push(record.clone());
        self.out.push(Output::Persist(record));
    }

    fn start_height(&mut self, now: Timestamp, app: &mut dyn Application) {
        self.height = app.height() + 1;
        self.voters = app.voters();
        (self.prev_hash, self.prev_time) = app.last_block();
        self.last_commit = app.last_commit();
        self.reported_precommits.clear();
        self.lock = None;
        self.valid = None;
        self.proposals.clear();
        self.required.clear();
        self.my_votes.clear();
        self.votes.clear();
        self.certified.clear();
        self.new_rounds.clear();
        self.my_proposals.clear();
        self.proposed.clear();
        self.requested.clear();
        self.missing_reported.clear();
        self.far_rounds.clear();
        self.inbox.clear();
        let h = self.height;
        // What arrived early for this height is handled now (checked like any message).
        for (from, m) in std::mem::take(&mut self.future) {
            if m.height() == h {
                self.inbox.push_back((from, m));
            }
        }
        // Records of older heights are no longer needed.
        self.records.retain(|r| match r {
            Record::Voted(v) => v.height >= h,
            Record::Locked { certificate, .. } => certificate.body.height >= h,
            Record::Proposed(p) => p.height >= h,
        });
        let mut start_round = 0;
        for r in &self.records {
            match r {
                Record::Voted(v) if v.height == h => {
                    self.my_votes.insert((v.round, v.kind), v.block_hash);
                    start_round = start_round.max(v.round);
                }
                Record::Proposed(p) if p.height == h => {
                    self.my_proposals.insert(p.round, (**p).clone());
                    start_round = start_round.max(p.round);
                }
                Record::Locked { block, certificate } if certificate.body.height == h => {
                    let round = certificate.body.round;
                    if self.lock.as_ref().is_none_or(|(r, _, _)| *r < round) {
                        self.lock = Some((round, block.clone(), certificate.clone()));
                        self.valid = self.lock.clone();
                    }
                }
                _ => {}
            }
        }
        self.enter_round(start_round, now, vec![]);
    }

    fn enter_round(&mut self, round: Round, now: Timestamp, missing: Vec<ParticipantId>) {
        self.round = round;
        self.round_started = now;
        self.forget_old_rounds();
        // A later-round leader is woken a quarter into the round to propose with the reports it
        // has; everyone else (and then the leader again) at the round's end.
        let full = self.config.round_timeout_ms(round);
        let wake = if round > 0 && self.leader(round) == self.me { full / 4 } else { full };
        self.out.push(Output::SetTimer { height: self.height, round, at: now.saturating_add_ms(wake) });
        if cfg!(feature = "broken-lock") {
            self.lock = None;
            self.valid = None;
        }
        if round > 0 {
            let lock = self.lock.as_ref().map(|(_, b, c)| Box::new((b.clone(), c.clone())));
            // Its precommit of the lock, signed again now: with the others', it makes a commit
            // certificate even if one voter withholds its precommit (see `assemble_commit`).
            let precommit = self.lock.as_ref().and_then(|(r, b, _)| {
                let body = VoteBody { kind: VoteKind::Precommit, height: self.height, round: *r, block_hash: b.hash() };
                (self.my_votes.get(&(*r, VoteKind::Precommit)) == Some(&b.hash())).then(|| self.sign_vote(body, now))
            });
            self.broadcast(Message::NewRound(NewRound { height: self.height, round, lock, precommit, missing }));
        }
        // A proposal of this round that arrived before this node entered it.
        if let Some(p) = self.proposals.get(&round) {
            let hash = p.block.hash();
            if let Some(Some(required)) = self.required.get(&hash).cloned() {
                self.prevote(round, hash, &required, now);
            }
        }
        if self.leader(round) == self.me {
            self.try_propose(now, round == 0);
        }
    }

    /// The leader proposes: the highest certified block if any, otherwise new events. In a
    /// round after the first, it waits for every voter's NewRound (or a quarter of the round).
    fn try_propose(&mut self, now: Timestamp, ready: bool) {
        let round = self.round;
        if self.proposed.contains(&round) || self.requested.contains(&round) {
            return;
        }
        // A proposal this node made before a restart is sent again, never replaced.
        if let Some(p) = self.my_proposals.get(&round).cloned() {
            self.proposed.insert(round);
            self.broadcast(Message::Proposal(Box::new(p)));
            return;
        }
        let heard = self.new_rounds.get(&round).map_or(0, BTreeMap::len);
        let waited = now.0 >= self.round_started.0.saturating_add(self.config.round_timeout_ms(round) / 4);
        // `heard` counts this leader too (its own NewRound is delivered to itself).
        if !(ready || heard >= self.voters.len() || waited) {
            return;
        }
        // A locked leader can only re-propose its lock (it would prevote nothing else).
        if let Some((_, block, certificate)) = self.lock.clone() {
            self.proposed.insert(round);
            self.sign_and_send_proposal(block, Some(certificate));
            return;
        }
        // Otherwise it looks at what it would propose fresh before choosing (see propose_new).
        self.requested.insert(round);
        // In round 0 the host may wait for events up to the idle deadline; in a later round
        // something is already late, so it answers with what it has.
        let deadline = if round == 0 { self.round_started.saturating_add_ms(self.config.idle_block_ms) } else { now };
        self.out.push(Output::RequestEvents { height: self.height, round, deadline });
    }

    fn propose_new(&mut self, mut events: Vec<Vec<u8>>, _now: Timestamp, app: &mut dyn Application) {
        // No clock of this node's decides the block's time: the parent's commit certificate does.
        let last_commit = self.last_commit.as_ref().map(|(c, _)| c.clone());
        let time = consensus_time(last_commit.as_ref(), self.prev_time);
        // Drop events the rules refuse, one at a time (bounded by the number of events).
        let execution = loop {
            match app.execute(time, &events) {
                Ok(x) => break x,
                Err(ExecutionError { event_index: Some(i), .. }) if i < events.len() => {
                    events.remove(i);
                }
                Err(_) => {
                    events.clear();
                    match app.execute(time, &events) {
                        Ok(x) => break x,
                        Err(_) => return, // The empty block must execute; if not, the state is broken.
                    }
                }
            }
        };
        let header = BlockHeader {
            chain_id: self.chain_id.clone(),
            height: self.height,
            round: self.round,
            prev_hash: self.prev_hash,
            last_commit_hash: last_commit
                .as_ref()
                .map_or(Hash32::default(), |c| certificate_hash(&crate::wire::encode_certificate(c))),
            proposer: self.me,
            time,
            events_root: crate::block::events_root(&events),
            event_count: u32::try_from(events.len()).unwrap_or(u32::MAX),
            state_root: execution.state_root,
            voters_hash: voters_hash(&execution.required),
        };
        // The highest certified block is re-proposed if any voter this fresh block needs may be
        // locked (it reported a lock, or has not reported this round). Otherwise no voter the
        // fresh block needs can ever precommit another block at this height unless shown a newer
        // certificate, so the fresh block is as safe and keeps the chain live: this is what lets
        // an act suspending a voter that holds a certified block it never precommits through.
        if let Some((_, block, certificate)) = self.valid.clone() {
            let reports = self.new_rounds.get(&self.round);
            let maybe_locked =
                execution.required.iter().any(|(id, _)| reports.and_then(|r| r.get(id)).is_none_or(|locked| *locked));
            if maybe_locked {
                return self.sign_and_send_proposal(block, Some(certificate));
            }
        }
        let Ok(block) = Block::new(header, events, last_commit) else { return };
        self.required.insert(block.hash(), Some(execution.required));
        self.sign_and_send_proposal(block, None);
    }

    fn sign_and_send_proposal(&mut self, block: Block, justify: Option<Certificate>) {
        let bytes =
            proposal_signing_bytes(self.height, self.round, &block.hash(), justify.as_ref().map(|j| j.body.round));
        let signature = self.key.sign(Tag::Proposal, &self.chain_id, &bytes);
        let p = Proposal { height: self.height, round: self.round, block, justify, proposer: self.me, signature };
        // Persisted first: after a restart this node re-sends it rather than sign another.
        self.my_proposals.insert(p.round, p.clone());
        self.persist(Record::Proposed(Box::new(p.clone())));
        self.broadcast(Message::Proposal(Box::new(p)));
    }

    fn refuse(&mut self, from: ParticipantId, reason: Refusal) {
        if from != self.me {
            self.out.push(Output::Refused { from, reason });
        }
    }

    /// Forgets what it kept of rounds more than [`KEPT_ROUNDS`] behind the current one, so that
    /// what an engine holds for one height is bounded whatever the number of rounds (a voter away
    /// for a day leaves the others running thousands, each with a proposal and its events). The
    /// lock and the highest prevote certificate are kept apart with their blocks; this node never
    /// votes or proposes in a round before the current one, so nothing of its safety is lost; a
    /// late commit certificate of a forgotten round makes the host fetch the block.
    fn forget_old_rounds(&mut self) {
        let keep_from = self.round.saturating_sub(KEPT_ROUNDS);
        if keep_from == 0 {
            return;
        }
        self.proposals.retain(|r, _| *r >= keep_from);
        self.my_proposals.retain(|r, _| *r >= keep_from);
        self.my_votes.retain(|(r, _), _| *r >= keep_from);
        self.votes.retain(|(r, _), _| *r >= keep_from);
        self.certified.retain(|(r, _)| *r >= keep_from);
        self.new_rounds.retain(|r, _| *r >= keep_from);
        self.proposed.retain(|r| *r >= keep_from);
        self.requested.retain(|r| *r >= keep_from);
        self.missing_reported.retain(|r| *r >= keep_from);
    }

    /// Whether a message for (height, round) concerns this engine now; reports being behind.
    fn relevant(&mut self, height: Height, round: Round) -> bool {
        if height > self.height {
            self.out.push(Output::Behind { height });
            return false;
        }
        // Rounds forgotten (see `forget_old_rounds`) stay forgotten.
        let window = self.round.saturating_sub(KEPT_ROUNDS)..=self.round.saturating_add(MAX_ROUNDS_AHEAD);
        height == self.height && window.contains(&round)
    }

    fn on_message(&mut self, from: ParticipantId, message: Message, now: Timestamp, app: &mut dyn Application) {
        if self.voter_key(&from).is_none() {
            return self.refuse(from, Refusal::NotAVoter(from));
        }
        let height = message.height();
        if height == self.height + 1 {
            // Kept for when this node commits the current height, at most a round's worth per
            // voter (so no sender can crowd out another). A round timing out or a certificate at
            // the next height means this node is behind, not just a little late.
            if matches!(message, Message::NewRound(_) | Message::Certificate(_)) {
                self.out.push(Output::Behind { height });
            }
            let kept = self.future.iter().filter(|(f, _)| *f == from).count();
            if kept < MAX_FUTURE_PER_VOTER && from != self.me {
                self.future.push((from, message));
            }
            return;
        }
        if let Message::NewRound(n) = &message
            && n.height == self.height
            && n.round > self.round.saturating_add(MAX_ROUNDS_AHEAD)
        {
            return self.far_round(from, n.round, now);
        }
        match message {
            Message::Proposal(p) => self.on_proposal(from, *p, now, app),
            Message::Vote(v) => self.on_vote(from, v, app),
            Message::Certificate(c) => self.on_certificate(from, *c, now, app),
            Message::NewRound(n) => self.on_new_round(from, n, now, app),
        }
    }

    /// The set of voters required to commit `block`, executing it once if needed.
    fn required_for(
        &mut self,
        block: &Block,
        app: &mut dyn Application,
    ) -> Result<Vec<(ParticipantId, PublicKey)>, String> {
        if let Some(known) = self.required.get(&block.hash()) {
            return known.clone().ok_or_else(|| "the block failed execution".to_owned());
        }
        let h = block.header();
        let result = app.execute(h.time, block.events()).map_err(|e| e.reason).and_then(|x| {
            if x.state_root != h.state_root {
                Err(format!("state root {} differs from the executed {}", h.state_root.short(), x.state_root.short()))
            } else if voters_hash(&x.required) != h.voters_hash {
                Err("voters_hash does not match the voters this block requires".to_owned())
            } else {
                Ok(x.required)
            }
        });
        if self.required.len() >= MAX_EXECUTED_PER_HEIGHT {
            // Only blocks still in play are kept: proposals of this height, the lock, the valid.
            let in_play = |hash: &Hash32| {
                self.proposals.values().any(|p| p.block.hash() == *hash)
                    || self.lock.as_ref().is_some_and(|l| l.1.hash() == *hash)
                    || self.valid.as_ref().is_some_and(|v| v.1.hash() == *hash)
            };
            let kept: BTreeMap<Hash32, Option<Vec<(ParticipantId, PublicKey)>>> =
                std::mem::take(&mut self.required).into_iter().filter(|(h, _)| in_play(h)).collect();
            self.required = kept;
        }
        if self.required.len() < MAX_EXECUTED_PER_HEIGHT {
            self.required.insert(block.hash(), result.as_ref().ok().cloned());
        }
        result
    }

    fn check_header(&self, p: &Proposal) -> Result<(), String> {
        let h = p.block.header();
        // A re-proposed block keeps the header it was first proposed with (earlier round, maybe
        // another proposer); a fresh one names this round and its proposer.
        let origin_ok = match &p.justify {
            Some(j) => h.round <= j.body.round && j.body.round < p.round,
            None => h.round == p.round && h.proposer == p.proposer,
        };
        if h.chain_id != self.chain_id || h.height != self.height || !origin_ok {
            return Err("header does not match the proposal's chain, height, round or proposer".into());
        }
        if h.prev_hash != self.prev_hash {
            return Err(format!("prev_hash {} is not the last block {}", h.prev_hash.short(), self.prev_hash.short()));
        }
        // No check against this node's clock: a voter whose clock is off votes as the others do.
        let expected = consensus_time(p.block.last_commit(), self.prev_time);
        if h.time != expected {
            return Err(format!(
                "block time {} is not {expected}, the consensus time of the commit certificate it carries",
                h.time
            ));
        }
        check_last_commit(&self.chain_id, self.rule, &p.block, self.last_commit.as_ref())
            .map_err(|e| format!("the parent's commit certificate it carries: {e}"))
    }

    fn on_proposal(&mut self, from: ParticipantId, p: Proposal, now: Timestamp, app: &mut dyn Application) {
        if !self.relevant(p.height, p.round) {
            return;
        }
        if p.proposer != from {
            return self.refuse(from, Refusal::WrongSender { claimed: p.proposer, sender: from });
        }
        if self.leader(p.round) != from {
            return self.refuse(from, Refusal::NotLeader(from));
        }
        let bytes =
            proposal_signing_bytes(p.height, p.round, &p.block.hash(), p.justify.as_ref().map(|j| j.body.round));
        let key = self.voter_key(&from).unwrap_or_default();
        if kp_crypto::verify(&key, Tag::Proposal, &self.chain_id, self.rule, &bytes, &p.signature).is_err() {
            return self.refuse(from, Refusal::BadSignature(from));
        }
        if let Some(first) = self.proposals.get(&p.round) {
            if first.block.hash() != p.block.hash() || first.justify != p.justify {
                let evidence = Evidence::DoubleProposal { first: Box::new(first.clone()), second: Box::new(p) };
                self.out.push(Output::Evidence(evidence));
            }
            return;
        }
        if let Err(reason) = self.check_header(&p) {
            return self.refuse(from, Refusal::InvalidBlock(reason));
        }
        let required = match self.required_for(&p.block, app) {
            Ok(r) => r,
            Err(reason) => return self.refuse(from, Refusal::InvalidBlock(reason)),
        };
        if let Some(j) = &p.justify {
            let ok = j.body.kind == VoteKind::Prevote
                && j.body.height == p.height
                && j.body.round < p.round
                && j.body.block_hash == p.block.hash();
            if !ok {
                return self.refuse(
                    from,
                    Refusal::InvalidCertificate("justify does not certify this block earlier in the height".into()),
                );
            }
            if let Err(e) = j.verify(&self.chain_id, self.rule, &required) {
                return self.refuse(from, Refusal::InvalidCertificate(e.to_string()));
            }
            if self.valid.as_ref().is_none_or(|(r, _, _)| *r < j.body.round) {
                self.valid = Some((j.body.round, p.block.clone(), j.clone()));
            }
        }
        let round = p.round;
        let hash = p.block.hash();
        self.proposals.insert(round, p);
        // A proposal of a later round waits for this node to enter that round (its prevote
        // then, in `enter_round`): a leader alone cannot cut this node's round short.
        if round == self.round {
            self.prevote(round, hash, &required, now);
        }
    }

    /// The safe-to-vote rule, then the prevote (persisted before it is sent).
    fn prevote(&mut self, round: Round, hash: Hash32, required: &[(ParticipantId, PublicKey)], now: Timestamp) {
        if !required.iter().any(|(id, _)| *id == self.me) {
            return; // Not required (the subject of a consensus-minus-one act): no vote.
        }
        // The `broken-lock` feature exists only to show that the simulator's agreement check
        // catches a broken locking rule; it is never built into a node.
        let allowed = match &self.lock {
            _ if cfg!(feature = "broken-lock") => true,
            None => true,
            Some((locked_round, block, _)) => {
                block.hash() == hash
                    || self
                        .proposals
                        .get(&round)
                        .and_then(|p| p.justify.as_ref())
                        .is_some_and(|j| j.body.round > *locked_round)
            }
        };
        if allowed {
            self.vote(VoteBody { kind: VoteKind::Prevote, height: self.height, round, block_hash: hash }, now);
        }
    }

    /// This node's signature of `body` with its clock's reading.
    fn sign_vote(&self, body: VoteBody, now: Timestamp) -> Vote {
        let signature = self.key.sign(Tag::Vote, &self.chain_id, &body.signing_bytes(now));
        Vote { body, voter: self.me, time: now, signature }
    }

    fn vote(&mut self, body: VoteBody, now: Timestamp) {
        match self.my_votes.get(&(body.round, body.kind)) {
            Some(h) if *h != body.block_hash => return, // Never a second value.
            Some(_) => {}                               // Same vote again (e.g. after a restart).
            None => {
                self.my_votes.insert((body.round, body.kind), body.block_hash);
                self.persist(Record::Voted(body));
            }
        }
        let vote = self.sign_vote(body, now);
        let leader = self.leader(body.round);
        self.send(leader, Message::Vote(vote));
    }

    fn on_vote(&mut self, from: ParticipantId, v: Vote, app: &mut dyn Application) {
        if !self.relevant(v.body.height, v.body.round) || self.leader(v.body.round) != self.me {
            return;
        }
        if v.voter != from {
            return self.refuse(from, Refusal::WrongSender { claimed: v.voter, sender: from });
        }
        let key = self.voter_key(&from).unwrap_or_default();
        if kp_crypto::verify(&key, Tag::Vote, &self.chain_id, self.rule, &v.body.signing_bytes(v.time), &v.signature)
            .is_err()
        {
            return self.refuse(from, Refusal::BadSignature(from));
        }
        let slot = self.votes.entry((v.body.round, v.body.kind)).or_default();
        if let Some(first) = slot.get(&from) {
            if first.body != v.body {
                let evidence = Evidence::DoubleVote { first: *first, second: v };
                self.out.push(Output::Evidence(evidence));
            }
            return;
        }
        slot.insert(from, v);
        self.try_certify(v.body, app);
    }

    fn block_by_hash(&self, hash: &Hash32) -> Option<Block> {
        self.proposals
            .values()
            .map(|p| &p.block)
            .chain(self.lock.as_ref().map(|l| &l.1))
            .chain(self.valid.as_ref().map(|v| &v.1))
            .find(|b| b.hash() == *hash)
            .cloned()
    }

    fn try_certify(&mut self, body: VoteBody, app: &mut dyn Application) {
        let key = (body.round, body.kind);
        if self.certified.contains(&key) {
            return;
        }
        let Some(block) = self.block_by_hash(&body.block_hash) else { return };
        let Ok(required) = self.required_for(&block, app) else { return };
        let Some(slot) = self.votes.get(&key) else { return };
        let signatures: Vec<_> = required
            .iter()
            .filter_map(|(id, _)| slot.get(id).filter(|v| v.body == body).map(Vote::signature))
            .collect();
        if signatures.len() == required.len() {
            self.certified.insert(key);
            self.broadcast(Message::Certificate(Box::new(Certificate { body, signatures, withheld: None })));
        }
    }

    fn on_certificate(&mut self, from: ParticipantId, c: Certificate, now: Timestamp, app: &mut dyn Application) {
        let body = c.body;
        if !self.relevant(body.height, body.round) {
            return;
        }
        let Some(block) = self.block_by_hash(&body.block_hash) else {
            // A commit for a block never seen here: the host fetches it (catch-up).
            if body.kind == VoteKind::Precommit {
                self.out.push(Output::Behind { height: body.height });
            }
            return;
        };
        let required = match self.required_for(&block, app) {
            Ok(r) => r,
            Err(reason) => return self.refuse(from, Refusal::InvalidBlock(reason)),
        };
        if from != self.me {
            let checked = match body.kind {
                VoteKind::Prevote => c.verify(&self.chain_id, self.rule, &required),
                VoteKind::Precommit => {
                    c.verify_commit(&self.chain_id, self.rule, self.height, &block.hash(), &required)
                }
            };
            if let Err(e) = checked {
                return self.refuse(from, Refusal::InvalidCertificate(e.to_string()));
            }
        }
        match body.kind {
            VoteKind::Prevote => {
                if self.valid.as_ref().is_none_or(|(r, _, _)| *r < body.round) {
                    self.valid = Some((body.round, block.clone(), c.clone()));
                }
                self.lock_and_precommit(block, c, now);
            }
            VoteKind::Precommit => {
                app.commit(&block, &c);
                self.out.push(Output::Committed { block, certificate: c });
                self.start_height(now, app);
            }
        }
    }

    /// Whether this node may lock on `hash` at `round` and precommit it: it prevoted that block
    /// in that round, and has prevoted in no later round of the height. In the round itself
    /// that is the usual rule; after it (a prevote certificate learnt late — from a NewRound's
    /// reported lock or a delayed certificate — before this node's next prevote) it is the same
    /// precommit, only later: none of this node's prevotes after it exists, so from here on
    /// every one of them obeys the lock, exactly as if it had locked in the round (docs/
    /// consensus.md). A node that prevoted in a later round must not: a certificate kept hidden
    /// and released after another block committed in a later round would otherwise commit a
    /// second block at the earlier round. The highest-round prevote is what a restart keeps
    /// (`kp_store::RecordSlot::Prevote`), so the rule holds across restarts.
    fn may_precommit(&self, round: Round, hash: &Hash32) -> bool {
        self.my_votes.get(&(round, VoteKind::Prevote)) == Some(hash)
            && !self.my_votes.keys().any(|(r, kind)| *kind == VoteKind::Prevote && *r > round)
    }

    /// On a verified prevote certificate of `block`: lock on it (if higher than the lock) and
    /// precommit it, when [`Engine::may_precommit`] allows.
    fn lock_and_precommit(&mut self, block: Block, c: Certificate, now: Timestamp) {
        let body = c.body;
        if !self.may_precommit(body.round, &body.block_hash) {
            return;
        }
        if self.lock.as_ref().is_none_or(|(r, _, _)| *r < body.round) {
            self.lock = Some((body.round, block.clone(), c.clone()));
            self.persist(Record::Locked { block, certificate: c });
        }
        self.vote(VoteBody { kind: VoteKind::Precommit, ..body }, now);
    }

    /// A voter reports a round beyond this engine's window (a node back after a long absence:
    /// the others ran thousands of rounds meanwhile, and a node follows a single voter's
    /// `NewRound` only within [`MAX_ROUNDS_AHEAD`]). Once every other voter but at most one
    /// (every other, in a network of three or fewer) reports being that far ahead, this node
    /// enters the lowest round they report: at or below an honest reporter's round whenever at
    /// most one reporter is faulty, so no single voter drags the others ahead. Rounds are
    /// liveness only: entering a later round changes nothing of what the locks protect.
    fn far_round(&mut self, from: ParticipantId, round: Round, now: Timestamp) {
        if from == self.me {
            return;
        }
        let seen = self.far_rounds.entry(from).or_insert(round);
        *seen = (*seen).max(round);
        let others = self.voters.iter().filter(|(id, _)| *id != self.me).count();
        let needed = if others <= 2 { others } else { others - 1 };
        if self.far_rounds.len() >= needed.max(1) {
            let target = self.far_rounds.values().copied().min().unwrap_or(round);
            self.far_rounds.clear();
            if target > self.round {
                self.enter_round(target, now, vec![]);
            }
        }
    }

    /// The highest round that at least two other voters (the other voter, in a network of two)
    /// report having entered. A node leaves its round early for that round only, never on one
    /// voter's word: a single Byzantine voter sending NewRounds of later rounds would otherwise
    /// cut every round short, and hold even the act that suspends it (found by the model
    /// checker, `kp-model`; docs/consensus.md, "Liveness").
    fn reported_round(&self) -> Option<Round> {
        let others = self.voters.iter().filter(|(id, _)| *id != self.me).count();
        let needed = others.clamp(1, 2);
        let mut highest: BTreeMap<ParticipantId, Round> = BTreeMap::new();
        for (round, reporters) in self.new_rounds.range(self.round.saturating_add(1)..) {
            for id in reporters.keys().filter(|id| **id != self.me) {
                highest.insert(*id, *round); // Rounds ascend: the last one kept is the highest.
            }
        }
        let mut rounds: Vec<Round> = highest.into_values().collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        rounds.get(needed - 1).copied()
    }

    fn on_new_round(&mut self, from: ParticipantId, n: NewRound, now: Timestamp, app: &mut dyn Application) {
        if !self.relevant(n.height, n.round) || n.round == 0 {
            return;
        }
        let previous = n.round - 1;
        if from == self.leader(previous) && from != self.me && self.missing_reported.insert(previous) {
            self.out.push(Output::Missing { height: self.height, round: previous, voters: n.missing.clone() });
        }
        let locked = n.lock.is_some();
        let reported = n.lock.as_ref().map(|l| (l.1.body.round, l.0.hash()));
        if let Some(lock) = n.lock {
            let (block, cert) = *lock;
            let ok = cert.body.kind == VoteKind::Prevote
                && cert.body.height == self.height
                && cert.body.block_hash == block.hash();
            let higher = self.valid.as_ref().is_none_or(|(r, _, _)| *r < cert.body.round);
            if !ok {
                return self
                    .refuse(from, Refusal::BadLock("not a prevote certificate of this height for its block".into()));
            }
            if higher && from != self.me {
                // The signatures are checked before the block is executed (executing costs the
                // block; anyone can make up a block): a block needs the prevote of every voter of
                // the height, or of every voter but its subject's, so fewer signers, or one that
                // is no voter or does not verify, is refused at the cost of one batch check.
                let signers: Vec<(ParticipantId, PublicKey)> = self
                    .voters
                    .iter()
                    .filter(|(id, _)| cert.signatures.iter().any(|s| s.voter == *id))
                    .copied()
                    .collect();
                let enough = signers.len() == cert.signatures.len() && signers.len() + 1 >= self.voters.len();
                let checked = match enough {
                    true => cert.verify(&self.chain_id, self.rule, &signers).map_err(|e| e.to_string()),
                    false => Err(format!("{} signatures of {} voters", cert.signatures.len(), self.voters.len())),
                };
                if let Err(why) = checked {
                    return self.refuse(from, Refusal::BadLock(why));
                }
                // Then the block, and whether those are exactly the voters it requires.
                match self.required_for(&block, app) {
                    Ok(required) if cert.signed_items(&required).is_ok() => {
                        self.valid = Some((cert.body.round, block.clone(), cert.clone()));
                        // A certificate this node missed in its round: it locks and precommits
                        // now if that is safe, so that its precommit can still count.
                        self.lock_and_precommit(block, cert, now);
                    }
                    Ok(_) => {
                        return self
                            .refuse(from, Refusal::BadLock("not signed by the voters its block requires".into()));
                    }
                    Err(why) => return self.refuse(from, Refusal::BadLock(format!("its block: {why}"))),
                }
            }
        }
        if let Some(v) = n.precommit {
            let fits = v.voter == from
                && v.body.kind == VoteKind::Precommit
                && v.body.height == self.height
                && reported == Some((v.body.round, v.body.block_hash));
            if !fits {
                return self.refuse(from, Refusal::BadLock("its precommit is not one of the lock it reports".into()));
            }
            let key = self.voter_key(&from).unwrap_or_default();
            let bytes = v.body.signing_bytes(v.time);
            if from != self.me
                && kp_crypto::verify(&key, Tag::Vote, &self.chain_id, self.rule, &bytes, &v.signature).is_err()
            {
                return self.refuse(from, Refusal::BadSignature(from));
            }
            let kept = self.reported_precommits.entry(from).or_insert(v);
            if kept.body.round < v.body.round {
                *kept = v;
            }
        }
        self.new_rounds.entry(n.round).or_default().insert(from, locked);
        if let Some(round) = self.reported_round().filter(|r| *r > self.round) {
            self.enter_round(round, now, vec![]);
        }
        self.assemble_commit(app);
        if self.leader(self.round) == self.me {
            self.try_propose(now, false);
        }
    }

    /// A commit certificate of a block certified in an earlier round of this height, from the
    /// precommits that the NewRound reports carry (and those this node collected as leader):
    /// with every required voter's precommit, the ordinary certificate (a leader that kept it
    /// to itself cannot hold the height); with every one but X's, the certificate carries X's
    /// prevote of the same block and round from its prevote certificate instead (docs/
    /// consensus.md, "Withheld precommit"). Only for a round that is over, so a voter that is
    /// merely slow is waited for a whole round; never for two missing voters.
    fn assemble_commit(&mut self, app: &mut dyn Application) {
        // Called on every NewRound: the lock's block (up to a few thousand events) is copied only
        // once enough precommits of it are in — every voter's but at most two (a block needs
        // every voter of the height, or every voter but its subject, and one may be withheld).
        let enough = |body: &VoteBody| {
            let collected = self.votes.get(&(body.round, VoteKind::Precommit)).into_iter().flat_map(BTreeMap::values);
            let voters: BTreeSet<ParticipantId> = self
                .reported_precommits
                .values()
                .chain(collected)
                .filter(|v| v.body == *body)
                .map(|v| v.voter)
                .collect();
            voters.len() + 2 >= self.voters.len()
        };
        let mut candidates: Vec<(Round, Block, Certificate)> = Vec::new();
        for c in self.lock.iter().chain(self.valid.iter()) {
            let body = VoteBody { kind: VoteKind::Precommit, height: self.height, round: c.0, block_hash: c.1.hash() };
            let new = !candidates.iter().any(|k| k.0 == c.0 && k.1.hash() == c.1.hash());
            if c.0 < self.round && new && enough(&body) {
                candidates.push(c.clone());
            }
        }
        for (round, block, prevotes) in candidates {
            let Ok(required) = self.required_for(&block, app) else { continue };
            let body = VoteBody { kind: VoteKind::Precommit, height: self.height, round, block_hash: block.hash() };
            let mut have: BTreeMap<ParticipantId, VoteSignature> = BTreeMap::new();
            let collected = self.votes.get(&(round, VoteKind::Precommit)).into_iter().flat_map(BTreeMap::values);
            for v in self.reported_precommits.values().chain(collected) {
                if v.body == body {
                    have.insert(v.voter, v.signature());
                }
            }
            let missing: Vec<ParticipantId> =
                required.iter().map(|(id, _)| *id).filter(|id| !have.contains_key(id)).collect();
            let withheld = match missing.as_slice() {
                [] => None,
                [x] => match prevotes.signatures.iter().find(|s| s.voter == *x) {
                    Some(s) => Some(*s),
                    None => continue,
                },
                _ => continue,
            };
            if !self.certified.insert((round, VoteKind::Precommit)) {
                return; // Already assembled (or certified as leader): on its way to this node.
            }
            let signatures = required.iter().filter_map(|(id, _)| have.get(id).copied()).collect();
            let certificate = Certificate { body, signatures, withheld };
            self.broadcast(Message::Certificate(Box::new(certificate)));
            return;
        }
    }

    fn on_timeout(&mut self, height: Height, round: Round, now: Timestamp) {
        if height != self.height || round != self.round {
            return;
        }
        // A leader still waiting for reports proposes a quarter into the round; the host is
        // asked to call back then.
        if self.leader(round) == self.me && !self.proposed.contains(&round) {
            self.try_propose(now, true);
        }
        let end = self.round_started.saturating_add_ms(self.config.round_timeout_ms(round));
        if now < end {
            self.out.push(Output::SetTimer { height, round, at: end });
            return;
        }
        let leader = self.leader(round);
        let mut missing = vec![];
        if leader == self.me {
            // Who did not vote in the phase this leader was waiting on.
            if let Some(p) = self.proposals.get(&round) {
                let kind = if self.certified.contains(&(round, VoteKind::Prevote)) {
                    VoteKind::Precommit
                } else {
                    VoteKind::Prevote
                };
                let voted = self.votes.get(&(round, kind));
                let required = self.required.get(&p.block.hash()).cloned().flatten().unwrap_or_default();
                missing =
                    required.iter().map(|(id, _)| *id).filter(|id| voted.is_none_or(|v| !v.contains_key(id))).collect();
            }
            self.missing_reported.insert(round);
            self.out.push(Output::Missing { height, round, voters: missing.clone() });
        } else if !self.proposals.contains_key(&round) && self.missing_reported.insert(round) {
            self.out.push(Output::Missing { height, round, voters: vec![leader] });
        }
        self.enter_round(round.saturating_add(1), now, missing);
    }
}
